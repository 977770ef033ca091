/*
 * Unit tests for the maps (lib/mail/map.c, map_text.c, map_bdb.c, map_lmdb.c,
 * mapspec.c): the source parser driven from memory by tables, and the
 * same file-based tests run for every backend built in (btree, hash,
 * lmdb, texthash) -- formats, case folding, limits, binary bytes, 10,000
 * entries, atomic replacement noticed by open maps, and a writer
 * replacing a map 50 times while a reader keeps looking it up.
 */
#include "autoconf.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "check_util.h"
#include "fsutil.h"
#include "map.h"
#include "map_impl.h"
#include "xalloc.h"

/* The backends every file test runs against. */
static const char *const backends[] = {
#ifdef HAVE_BDB
	"btree",
	"hash",
#endif
	"lmdb",
	"texthash",
};
#define NBACKENDS ((int)(sizeof(backends) / sizeof(backends[0])))

/* ---------------------------------------------------------------- */
/* Helpers                                                            */

static char tdir[64];		/* this test's scratch directory */

/* Make a fresh scratch directory. */
static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/test_map.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
}

/* Remove the scratch directory and everything in it (no subdirectories
 * except the ones tests make empty). */
static void
teardown(void)
{
	DIR *d = opendir(tdir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = fs_join(tdir, de->d_name);
		if (unlink(p) < 0)
			(void)rmdir(p);
		free(p);
	}
	closedir(d);
	(void)rmdir(tdir);
}

/* The path of name in the scratch directory (malloc'd). */
static char *
tpath(const char *name)
{
	return fs_join(tdir, name);
}

/* Replace the source at path with len bytes of text (atomically, as an
 * editor that renames would). */
static void
write_source(const char *path, const char *text, size_t len)
{
	const char *error;

	if (fs_write_atomic(path, text, len, 0644, &error) < 0)
		ck_abort_msg("write %s: %s", path, error);
}

/* Write the source and compile it with flags; returns map_compile()'s
 * result with its messages in err (which may be NULL). */
static int
install_flags(const char *type, const char *path, const char *text,
    size_t len, unsigned flags, struct buf *err)
{
	struct buf e = BUF_INIT;
	int ret;

	write_source(path, text, len);
	ret = map_compile(type, path, flags, err != NULL ? err : &e);
	buf_free(&e);
	return ret;
}

/* install_flags() for a map of KEY VALUE lines. */
static int
install(const char *type, const char *path, const char *text, size_t len,
    struct buf *err)
{
	return install_flags(type, path, text, len, 0, err);
}

/* Open type:path, failing the test if that fails. */
static struct map *
open_map(const char *type, const char *path)
{
	char *spec = xasprintf("%s:%s", type, path);
	const char *error;
	struct map *m;

	if (map_open(spec, &m, &error) < 0)
		ck_abort_msg("open %s: %s", spec, error);
	free(spec);
	return m;
}

/* Look key up, failing on an error: the value (static storage) or NULL
 * for not found. */
static const char *
get(struct map *m, const char *key)
{
	static struct buf value = BUF_INIT;
	const char *error = NULL;
	int ret = map_lookup(m, key, &value, &error);

	ck_assert_msg(ret >= 0, "lookup %s: %s", key, error);
	return ret > 0 ? buf_cstr(&value) : NULL;
}

/* Assert that key maps to want (NULL: not found). */
#define ck_get(m, key, want) do { \
	const char *got_ = get((m), (key)); \
	const char *want_ = (want); \
	if (want_ == NULL) \
		ck_assert_msg(got_ == NULL, "%s: got '%s', want not found", \
		    (key), got_); \
	else { \
		ck_assert_msg(got_ != NULL, "%s: not found, want '%s'", \
		    (key), want_); \
		ck_assert_str_eq(got_, want_); \
	} \
} while (0)

/* Assert that no temporary file is left in the scratch directory. */
static void
assert_no_tmp(void)
{
	DIR *d = opendir(tdir);
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		ck_assert_msg(strstr(de->d_name, ".tmp.") == NULL,
		    "left behind: %s", de->d_name);
	closedir(d);
}

/* ---------------------------------------------------------------- */
/* The parser, from memory                                           */

/* Collects entries as "key=value;" for comparison. */
static int
collect(void *arg, const char *key, const char *value, size_t line,
    const char **error_r)
{
	struct buf *out = arg;

	if (strcmp(key, "fail") == 0) {
		*error_r = "refused by fn";
		return -1;
	}
	ck_assert_int_gt(line, 0);
	ck_assert_int_eq(buf_printf(out, "%s=%s;", key, value), 0);
	return 0;
}

static const struct {
	const char *text;
	size_t len;
	int rc;
	const char *entries;	/* "key=value;" ... */
	const char *errors;	/* the exact error text */
} parse_cases[] = {
#define T(s) s, sizeof(s) - 1
	{ T(""), 1, "", "" },
	{ T("\n\n# only comments\n   # indented\n\t\n"), 1, "", "" },
	{ T("a b"), 1, "a=b;", "" },
	{ T("a\tb\t c \t\n"), 1, "a=b\t c;", "" },
	{ T("key\n"), 1, "key=;", "" },
	{ T("Key VaLuE\n"), 1, "key=VaLuE;", "" },
	{ T("a one\n  two\n\tthree  \n"), 1, "a=one two three;", "" },
	{ T("a\n  two\n"), 1, "a=two;", "" },
	{ T("a one\n\n# c\n  two\nb x\n"), 1, "a=one two;b=x;", "" },
	{ T("a 1\r\nb 2\r\n  3\r\n"), 1, "a=1;b=2 3;", "" },
	{ T("a x\ry\n"), 1, "a=x\ry;", "" },
	{ T("a \xff\xfe\x80\n\xc3\x84X y\n"), 1, "a=\xff\xfe\x80;\xc3\x84x=y;", "" },
	{ T("  lead\n"), -1, "",
	    "t:1: continuation line without an entry (keys start at the "
	    "beginning of a line)\n" },
	{ T("a 1\nb 2\nA 3\n"), -1, "a=1;b=2;",
	    "t:3: duplicate key 'a' (first at line 1)\n" },
	{ T("a 1\nb\0x 2\n  more\nc 3\n"), -1, "a=1;c=3;",
	    "t:2: NUL byte in line\n" },
	{ T("a 1\n  m\0re\n  more\nc 3\n"), -1, "c=3;",
	    "t:2: NUL byte in line\n" },
	{ T("a 1\nfail x\n  y\nb 2\n"), -1, "a=1;b=2;",
	    "t:2: refused by fn\n" },
	{ T("a 1\na 2\n  x\nb\0\n"), -1, "a=1;",
	    "t:2: duplicate key 'a' (first at line 1)\nt:4: NUL byte in line\n" },
};
#undef T

START_TEST(test_parse_table)
{
	struct buf entries = BUF_INIT, err = BUF_INIT;
	int rc;

	rc = map_parse_text("t", parse_cases[_i].text, parse_cases[_i].len,
	    collect, &entries, &err);
	ck_assert_msg(rc == parse_cases[_i].rc, "case %d: rc %d", _i, rc);
	ck_assert_str_eq(buf_cstr(&entries), parse_cases[_i].entries);
	ck_assert_str_eq(buf_cstr(&err), parse_cases[_i].errors);
	buf_free(&entries);
	buf_free(&err);
}
END_TEST

/* Keys and values at their limits and one past. */
START_TEST(test_parse_limits)
{
	struct buf text = BUF_INIT, entries = BUF_INIT, err = BUF_INIT;
	char want[64];

	/* A key of exactly MAP_MAX_KEY bytes, a value of MAP_MAX_VALUE. */
	for (int i = 0; i < MAP_MAX_KEY; i++)
		ck_assert_int_eq(buf_putc(&text, 'k'), 0);
	ck_assert_int_eq(buf_putc(&text, ' '), 0);
	for (int i = 0; i < MAP_MAX_VALUE; i++)
		ck_assert_int_eq(buf_putc(&text, 'v'), 0);
	ck_assert_int_eq(buf_puts(&text, "\n"), 0);
	ck_assert_int_eq(map_parse_text("t", text.data, text.len, collect,
	    &entries, &err), 1);
	ck_assert_uint_eq(entries.len, MAP_MAX_KEY + 1 + MAP_MAX_VALUE + 1);

	/* One more byte of value, through a continuation line. */
	buf_reset(&entries);
	ck_assert_int_eq(buf_puts(&text, " x\n"), 0);
	ck_assert_int_eq(map_parse_text("t", text.data, text.len, collect,
	    &entries, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "t:1: value of key"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "longer than 65536 bytes"));
	ck_assert_uint_eq(entries.len, 0);

	/* One more byte of key. */
	buf_reset(&text);
	buf_reset(&err);
	ck_assert_int_eq(buf_puts(&text, "a 1\n"), 0);
	for (int i = 0; i <= MAP_MAX_KEY; i++)
		ck_assert_int_eq(buf_putc(&text, 'K'), 0);
	ck_assert_int_eq(buf_puts(&text, " v\n  cont\nb 2\n"), 0);
	buf_reset(&entries);
	ck_assert_int_eq(map_parse_text("t", text.data, text.len, collect,
	    &entries, &err), -1);
	snprintf(want, sizeof(want), "t:2: key longer than %d bytes\n",
	    MAP_MAX_KEY);
	ck_assert_str_eq(buf_cstr(&err), want);
	ck_assert_str_eq(buf_cstr(&entries), "a=1;b=2;");
	buf_free(&text);
	buf_free(&entries);
	buf_free(&err);
}
END_TEST

/* Errors stop at a cap; the error buffer's own max is respected. */
START_TEST(test_parse_error_cap)
{
	struct buf text = BUF_INIT, entries = BUF_INIT, err = BUF_INIT;
	size_t lines = 0;

	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(buf_printf(&text, "dup %d\n", i), 0);
	ck_assert_int_eq(map_parse_text("t", text.data, text.len, collect,
	    &entries, &err), -1);
	for (size_t i = 0; i < err.len; i++)
		lines += err.data[i] == '\n';
	ck_assert_uint_ge(lines, 15);
	ck_assert_uint_le(lines, 25);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "too many errors"));

	buf_free(&err);
	buf_init(&err, 40);
	ck_assert_int_eq(map_parse_text("t", text.data, text.len, collect,
	    &entries, &err), -1);
	ck_assert_uint_le(err.len, 40);
	buf_free(&text);
	buf_free(&entries);
	buf_free(&err);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Specs, static and inline                                           */

START_TEST(test_bad_specs)
{
	static const char *const bad[] = {
		"relative/path", "lmdb:relative", "texthash:", "nosuch:/x",
		"inline:a=b", "inline:{a}", "inline:{a=1, A=2}", "inline:{=x}",
		"inline:{{a=1}", "",
#ifndef HAVE_BDB
		"btree:/x", "hash:/x",
#endif
	};
	struct map *m;
	const char *error;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		ck_assert_msg(map_open(bad[i], &m, &error) == -1, "%s opened", bad[i]);
		ck_assert_ptr_nonnull(error);
	}
	ck_assert_int_eq(map_open("nosuch:/x", &m, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "unknown map type"));
}
END_TEST

START_TEST(test_static_inline)
{
	struct buf small;
	struct map *m;
	const char *error;

	m = open_map("static", "Some Value");
	ck_get(m, "anything", "Some Value");
	ck_get(m, "X", "Some Value");
	ck_assert_str_eq(map_spec(m), "static:Some Value");
	/* A value longer than the caller allows is an error, value kept. */
	buf_init(&small, 4);
	ck_assert_int_eq(buf_puts(&small, "old"), 0);
	ck_assert_int_eq(map_lookup(m, "a", &small, &error), -1);
	ck_assert_str_eq(buf_cstr(&small), "old");
	buf_free(&small);
	map_close(&m);
	ck_assert_ptr_null(m);
	map_close(&m);

	m = open_map("static", "");
	ck_get(m, "a", "");
	map_close(&m);

	ck_assert_int_eq(map_open("inline:{a=1, B = two words ,{c=x, y},, "
	    "empty=}", &m, &error), 0);
	ck_get(m, "a", "1");
	ck_get(m, "b", "two words");
	ck_get(m, "C", "x, y");
	ck_get(m, "empty", "");
	ck_get(m, "d", NULL);
	ck_get(m, "", NULL);
	map_close(&m);
	ck_assert_int_eq(map_open("inline:{}", &m, &error), 0);
	ck_get(m, "a", NULL);
	map_close(&m);
}
END_TEST

/* map_compile on types that have no compiled form, or do not exist. */
START_TEST(test_compile_bad_type)
{
	struct buf err = BUF_INIT;
	char *src = tpath("src");

	write_source(src, "a b\n", 4);
	ck_assert_int_eq(map_compile("static", src, 0, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "no source file"));
	buf_reset(&err);
	ck_assert_int_eq(map_compile("nosuch", src, 0, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "unknown map type"));
#ifndef HAVE_BDB
	buf_reset(&err);
	ck_assert_int_eq(map_compile("btree", src, 0, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "--without-bdb"));
#endif
	buf_free(&err);
	free(src);
}
END_TEST

/* ---------------------------------------------------------------- */
/* The same tests for every backend (_i indexes backends[])          */

START_TEST(test_empty)
{
	const char *type = backends[_i];
	char *src = tpath("empty");
	struct map *m;

	ck_assert_int_eq(install(type, src, "", 0, NULL), 1);
	m = open_map(type, src);
	ck_get(m, "a", NULL);
	ck_get(m, "", NULL);
	ck_get(m, "#", NULL);
	map_close(&m);

	ck_assert_int_eq(install(type, src, "# nothing\n\n", 11, NULL), 1);
	m = open_map(type, src);
	ck_get(m, "#", NULL);
	ck_get(m, "nothing", NULL);
	map_close(&m);
	assert_no_tmp();
	free(src);
}
END_TEST

START_TEST(test_format)
{
	static const char text[] =
	    "# a comment\r\n"
	    "\r\n"
	    "alpha one\r\n"
	    "beta  two\twords  \r\n"
	    "  continued here\r\n"
	    "\n"
	    "   # an indented comment\n"
	    "\tmore\n"
	    "gamma\n"
	    "delta\n"
	    "   on-the-next-line\n"
	    "User@Example.COM Mixed Case Value\n"
	    "last no-newline";
	const char *type = backends[_i];
	char *src = tpath("format");
	struct map *m;

	ck_assert_int_eq(install_flags(type, src, text, sizeof(text) - 1,
	    MAP_BARE_KEYS, NULL), 1);
	m = open_map(type, src);
	ck_get(m, "alpha", "one");
	ck_get(m, "beta", "two\twords continued here more");
	ck_get(m, "gamma", "");
	ck_get(m, "delta", "on-the-next-line");
	ck_get(m, "last", "no-newline");
	ck_get(m, "#", NULL);
	ck_get(m, "more", NULL);
	ck_get(m, "continued", NULL);
	/* Keys fold to lower case, values keep theirs. */
	ck_get(m, "user@example.com", "Mixed Case Value");
	ck_get(m, "USER@EXAMPLE.COM", "Mixed Case Value");
	ck_get(m, "User@Example.Com", "Mixed Case Value");
	ck_get(m, "ALPHA", "one");
	map_close(&m);
	free(src);
}
END_TEST

/*
 * A key alone on its line: refused with FILE:LINE (the old map kept)
 * unless the map is a list of keys; a value on a continuation line is a
 * value.
 */
START_TEST(test_bare_keys)
{
	static const char text[] =
	    "good value\n"
	    "badline-without-value\n"
	    "spaces-only   \t\n"
	    "continued\n"
	    "  on the next line\n";
	const char *type = backends[_i];
	char *src = tpath("bare"), *want;
	struct buf err = BUF_INIT;
	struct map *m;

	ck_assert_int_eq(install(type, src, "good old\n", 9, NULL), 1);
	m = open_map(type, src);
	ck_assert_int_eq(install(type, src, text, sizeof(text) - 1, &err), -1);
	want = xasprintf(
	    "%s:2: key 'badline-without-value' has no value (write KEY VALUE; "
	    "a key alone is an entry only in the sources of virtual_domains, "
	    "relay_domains)\n"
	    "%s:3: key 'spaces-only' has no value (write KEY VALUE; a key "
	    "alone is an entry only in the sources of virtual_domains, "
	    "relay_domains)\n", src, src);
	ck_assert_str_eq(buf_cstr(&err), want);
	free(want);
	/* The compiled map stays (a texthash source is the map itself, read
	 * by daemons as written: checking it is postern map's job). */
	if (strcmp(type, "texthash") != 0) {
		map_recheck_now(m);
		ck_get(m, "good", "old");
	}
	assert_no_tmp();
	/* A list of keys takes them. */
	ck_assert_int_eq(install_flags(type, src, text, sizeof(text) - 1,
	    MAP_BARE_KEYS, NULL), 1);
	map_recheck_now(m);
	ck_get(m, "good", "value");
	ck_get(m, "badline-without-value", "");
	ck_get(m, "spaces-only", "");
	ck_get(m, "continued", "on the next line");
	map_close(&m);
	buf_free(&err);
	free(src);
}
END_TEST

/* Which config keys name lists of keys. */
START_TEST(test_config_flags)
{
	ck_assert_uint_eq(map_config_flags("virtual_domains"), MAP_BARE_KEYS);
	ck_assert_uint_eq(map_config_flags("relay_domains"), MAP_BARE_KEYS);
	for (size_t i = 2; map_config_keys[i] != NULL; i++)
		ck_assert_uint_eq(map_config_flags(map_config_keys[i]), 0);
	ck_assert_uint_eq(map_config_flags("aliases"), 0);
	ck_assert_uint_eq(map_config_flags("nosuch"), 0);
}
END_TEST

START_TEST(test_duplicate)
{
	const char *type = backends[_i];
	char *src = tpath("dup"), *want;
	struct buf err = BUF_INIT;
	struct map *m;

	ck_assert_int_eq(install(type, src, "a old\n", 6, NULL), 1);
	m = open_map(type, src);
	ck_get(m, "a", "old");
	ck_assert_int_eq(install(type, src, "a 1\nb 2\nA 3\n", 12, &err), -1);
	want = xasprintf("%s:3: duplicate key 'a' (first at line 1)\n", src);
	ck_assert_str_eq(buf_cstr(&err), want);
	free(want);
	/* The old map stays: for texthash the open map keeps its table. */
	map_recheck_now(m);
	ck_get(m, "a", "old");
	ck_get(m, "b", NULL);
	map_close(&m);
	if (strcmp(type, "texthash") != 0) {
		m = open_map(type, src);
		ck_get(m, "a", "old");
		map_close(&m);
	}
	assert_no_tmp();
	buf_free(&err);
	free(src);
}
END_TEST

START_TEST(test_limits)
{
	const char *type = backends[_i];
	char *src = tpath("limits");
	struct buf text = BUF_INIT, err = BUF_INIT;
	char key[MAP_MAX_KEY + 2], *value;
	struct map *m;

	memset(key, 'K', MAP_MAX_KEY);
	key[MAP_MAX_KEY] = '\0';
	value = xmalloc(MAP_MAX_VALUE + 1);
	for (size_t i = 0; i < MAP_MAX_VALUE; i++)
		value[i] = (char)('a' + i % 26);
	value[MAP_MAX_VALUE] = '\0';
	ck_assert_int_eq(buf_printf(&text, "%s %s\nshort v\n", key, value), 0);
	ck_assert_int_eq(install(type, src, text.data, text.len, &err), 1);
	m = open_map(type, src);
	ck_get(m, key, value);
	ck_get(m, "short", "v");
	/* A longer key cannot be in any map. */
	key[MAP_MAX_KEY] = 'K';
	key[MAP_MAX_KEY + 1] = '\0';
	ck_get(m, key, NULL);
	map_close(&m);

	/* One byte over on the key, then on the value: refused. */
	buf_reset(&text);
	ck_assert_int_eq(buf_printf(&text, "ok 1\n%s x\n", key), 0);
	ck_assert_int_eq(install(type, src, text.data, text.len, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), ":2: key longer than 511"));
	buf_reset(&text);
	buf_reset(&err);
	ck_assert_int_eq(buf_printf(&text, "ok 1\nv %s\n  x\n", value), 0);
	ck_assert_int_eq(install(type, src, text.data, text.len, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), ":2: value of key 'v' "
	    "longer than 65536 bytes"));
	if (strcmp(type, "texthash") != 0) {
		/* The compiled map is still the first one. */
		m = open_map(type, src);
		ck_get(m, "short", "v");
		ck_get(m, "ok", NULL);
		map_close(&m);
	}
	buf_free(&text);
	buf_free(&err);
	free(value);
	free(src);
}
END_TEST

START_TEST(test_binary)
{
	static const char good[] = "a \xff\xfe\x01\x80 end\n\xc3\x84" "Bc \xe2\x82\xac\n";
	static const char bad[] = "a 1\nb \0 2\nc 3\n";
	const char *type = backends[_i];
	char *src = tpath("bin"), *want;
	struct buf err = BUF_INIT;
	struct map *m;

	ck_assert_int_eq(install(type, src, good, sizeof(good) - 1, &err), 1);
	m = open_map(type, src);
	ck_get(m, "a", "\xff\xfe\x01\x80 end");
	ck_get(m, "\xc3\x84" "bc", "\xe2\x82\xac");
	ck_get(m, "\xc3\x84" "BC", "\xe2\x82\xac");
	ck_get(m, "\xe3\x84" "bc", NULL);	/* only ASCII folds */
	map_close(&m);
	ck_assert_int_eq(install(type, src, bad, sizeof(bad) - 1, &err), -1);
	want = xasprintf("%s:2: NUL byte in line\n", src);
	ck_assert_str_eq(buf_cstr(&err), want);
	free(want);
	free(src);
	buf_free(&err);
}
END_TEST

START_TEST(test_many)
{
	const char *type = backends[_i];
	char *src = tpath("many");
	struct buf text = BUF_INIT;
	char key[32], want[64];
	struct map *m;

	for (int i = 0; i < 10000; i++)
		ck_assert_int_eq(buf_printf(&text, "Key%05d value %d of 10000\n",
		    i, i), 0);
	ck_assert_int_eq(install(type, src, text.data, text.len, NULL), 1);
	m = open_map(type, src);
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "key%05d", i);
		snprintf(want, sizeof(want), "value %d of 10000", i);
		ck_get(m, key, want);
	}
	ck_get(m, "key10000", NULL);
	ck_get(m, "key0000", NULL);
	map_close(&m);
	buf_free(&text);
	free(src);
}
END_TEST

START_TEST(test_missing)
{
	const char *type = backends[_i];
	char *src = tpath("missing"), *spec = xasprintf("%s:%s", type, src);
	struct buf err = BUF_INIT;
	const char *error = NULL;
	struct map *m;

	ck_assert_int_eq(map_open(spec, &m, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_msg(strstr(error, src) != NULL, "error: %s", error);
	ck_assert_int_eq(map_compile(type, src, 0, &err), -1);
	ck_assert_msg(strstr(buf_cstr(&err), src) != NULL, "%s", buf_cstr(&err));
	/* A file that is not a map of this type. */
	if (strcmp(type, "texthash") != 0) {
		char *file = map_file(type, src);

		write_source(file, "junk junk junk\n", 15);
		ck_assert_int_eq(map_open(spec, &m, &error), -1);
		ck_assert_msg(strstr(error, file) != NULL, "error: %s", error);
		free(file);
	}
	buf_free(&err);
	free(spec);
	free(src);
}
END_TEST

START_TEST(test_replace)
{
	const char *type = backends[_i];
	char *src = tpath("repl"), *lock;
	struct map *m;
	struct stat st;

	ck_assert_int_eq(install(type, src, "a one\nb gone\n", 13, NULL), 1);
	m = open_map(type, src);
	ck_get(m, "a", "one");
	ck_assert_int_eq(install(type, src, "a two\nc new\n", 12, NULL), 1);
	map_recheck_now(m);
	ck_get(m, "a", "two");
	ck_get(m, "b", NULL);
	ck_get(m, "c", "new");
	/* Unchanged file: the handle stays. */
	map_recheck_now(m);
	ck_get(m, "a", "two");
	/* The compiled file vanishes: the open map keeps serving. */
	if (strcmp(type, "texthash") != 0) {
		char *file = map_file(type, src);

		ck_assert_int_eq(unlink(file), 0);
		map_recheck_now(m);
		ck_get(m, "a", "two");
		free(file);
	}
	map_close(&m);
	/* LMDB readers leave no lock file. */
	lock = xasprintf("%s.lmdb-lock", src);
	ck_assert_int_eq(stat(lock, &st), -1);
	free(lock);
	free(src);
}
END_TEST

/* The throttle itself, without the test hook: one 1.1 s sleep. */
START_TEST(test_replace_throttle)
{
	const char *type = backends[_i];
	char *src = tpath("thr");
	struct timespec ts = { 1, 100 * 1000 * 1000 };
	struct map *m;

	ck_assert_int_eq(install(type, src, "a one\n", 6, NULL), 1);
	m = open_map(type, src);
	ck_assert_int_eq(install(type, src, "a two\n", 6, NULL), 1);
	ck_get(m, "a", "one");		/* checked less than 1 s ago */
	nanosleep(&ts, NULL);
	ck_get(m, "a", "two");
	map_close(&m);
	free(src);
}
END_TEST

/*
 * A miss rechecks the file at once (no test hook, no sleep): a key just
 * added is found while a hit is still served from the old file; a storm
 * of misses on an unchanged file reopens nothing.
 */
START_TEST(test_replace_miss)
{
	const char *type = backends[_i];
	char *src = tpath("miss");
	struct map *m;

	ck_assert_int_eq(install(type, src, "a one\n", 6, NULL), 1);
	m = open_map(type, src);
	for (int i = 0; i < 10000; i++)
		ck_get(m, "nobody", NULL);
	ck_assert_uint_eq(map_reopens(m), 0);
	ck_assert_int_eq(install(type, src, "a two\nb new\n", 12, NULL), 1);
	ck_get(m, "a", "one");		/* a hit: throttled as before */
	ck_get(m, "b", "new");		/* a miss: rechecked, found */
	ck_get(m, "a", "two");
	ck_assert_uint_eq(map_reopens(m), 1);
	for (int i = 0; i < 10000; i++)
		ck_get(m, "nobody", NULL);
	ck_assert_uint_eq(map_reopens(m), 1);
	/* Added and removed again at once: the miss is current too. */
	ck_assert_int_eq(install(type, src, "a two\nc more\n", 13, NULL), 1);
	ck_get(m, "c", "more");
	ck_assert_int_eq(install(type, src, "a two\n", 6, NULL), 1);
	ck_get(m, "c", "more");		/* a hit, within the second */
	ck_get(m, "b", NULL);
	ck_assert_uint_eq(map_reopens(m), 3);
	ck_get(m, "c", NULL);
	map_close(&m);
	free(src);
}
END_TEST

/* A compile that fails leaves the old map and no temporary file. */
START_TEST(test_compile_fails)
{
	const char *type = backends[_i];
	char *src = tpath("half"), *file;
	struct buf text = BUF_INIT, err = BUF_INIT;
	struct map *m;

	ck_assert_int_eq(install(type, src, "a old\n", 6, NULL), 1);
	for (int i = 0; i < 500; i++)
		ck_assert_int_eq(buf_printf(&text, "k%d v\n", i), 0);
	ck_assert_int_eq(buf_append(&text, "  \n  x\nbad\0line\n", 16), 0);
	ck_assert_int_eq(install(type, src, text.data, text.len, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), ":503: NUL byte in line"));
	assert_no_tmp();
	if (strcmp(type, "texthash") == 0)
		goto out;
	m = open_map(type, src);
	ck_get(m, "a", "old");
	ck_get(m, "k1", NULL);
	map_close(&m);

	/* Fail after the new file was written: rename onto a directory. */
	file = map_file(type, src);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(mkdir(file, 0700), 0);
	buf_reset(&err);
	ck_assert_int_eq(install(type, src, "a new\n", 6, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "rename"));
	assert_no_tmp();
	ck_assert_int_eq(rmdir(file), 0);
	free(file);
out:
	buf_free(&text);
	buf_free(&err);
	free(src);
}
END_TEST

/* The compiled file gets the source's permission bits. */
START_TEST(test_compile_mode)
{
	const char *type = backends[_i];
	char *src = tpath("mode"), *file = map_file(type, src);
	struct buf err = BUF_INIT;
	struct stat st;

	write_source(src, "a b\n", 4);
	ck_assert_int_eq(chmod(src, 0640), 0);
	ck_assert_int_eq(map_compile(type, src, 0, &err), 1);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	buf_free(&err);
	free(file);
	free(src);
}
END_TEST

/* Values that tell the two versions in test_concurrent apart. */
#define CONC_KEYS 20
static void
conc_text(int version, struct buf *out)
{
	buf_reset(out);
	for (int k = 0; k < CONC_KEYS; k++)
		ck_assert_int_eq(buf_printf(out, "key%d v%d-%d%s\n", k, version, k,
		    version == 1 ? "" : "-with-a-longer-tail"), 0);
}

START_TEST(test_concurrent)
{
	const char *type = backends[_i];
	char *src = tpath("conc");
	struct buf v1 = BUF_INIT, v2 = BUF_INIT, value = BUF_INIT;
	char key[16], want1[64], want2[64];
	unsigned long lookups = 0;
	struct map *m;
	pid_t pid;
	int status, done = 0;

	conc_text(1, &v1);
	conc_text(2, &v2);
	ck_assert_int_eq(install(type, src, v1.data, v1.len, NULL), 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct buf err = BUF_INIT;

		for (int i = 0; i < 50; i++) {
			const struct buf *v = i % 2 == 0 ? &v2 : &v1;

			if (install(type, src, v->data, v->len, &err) < 0) {
				fputs(buf_cstr(&err), stderr);
				_exit(1);
			}
		}
		_exit(0);
	}
	/* Opened after the fork: a map handle belongs to one process. */
	m = open_map(type, src);
	while (!done) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		ck_assert_int_ge(w, 0);
		done = w == pid;
		for (int k = 0; k < CONC_KEYS; k++) {
			const char *error = NULL;
			int ret;

			snprintf(key, sizeof(key), "KEY%d", k);
			snprintf(want1, sizeof(want1), "v1-%d", k);
			snprintf(want2, sizeof(want2), "v2-%d-with-a-longer-tail", k);
			map_recheck_now(m);
			ret = map_lookup(m, key, &value, &error);
			ck_assert_msg(ret == 1, "lookup %s: %d %s", key, ret,
			    error != NULL ? error : "");
			ck_assert_msg(strcmp(buf_cstr(&value), want1) == 0 ||
			    strcmp(buf_cstr(&value), want2) == 0,
			    "%s: got '%s'", key, buf_cstr(&value));
			lookups++;
		}
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "writer failed");
	/* The last version written was v1. */
	map_recheck_now(m);
	ck_get(m, "key3", "v1-3");
	ck_assert_uint_gt(lookups, 0);
	map_close(&m);
	buf_free(&v1);
	buf_free(&v2);
	buf_free(&value);
	free(src);
}
END_TEST

static Suite *
map_suite(void)
{
	Suite *s = suite_create("map");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_table, 0,
	    (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
	tcase_add_test(tc, test_parse_limits);
	tcase_add_test(tc, test_parse_error_cap);
	suite_add_tcase(s, tc);

	tc = tcase_create("spec");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_bad_specs);
	tcase_add_test(tc, test_static_inline);
	tcase_add_test(tc, test_compile_bad_type);
	tcase_add_test(tc, test_config_flags);
	suite_add_tcase(s, tc);

	tc = tcase_create("backends");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_empty, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_format, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_bare_keys, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_duplicate, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_limits, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_binary, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_many, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_missing, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_replace, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_replace_throttle, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_replace_miss, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_compile_fails, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_compile_mode, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_concurrent, 0, NBACKENDS);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(map_suite());
}
