/*
 * Unit tests for lib/mail/alias.c: alias expansion (fan-out, catch-all,
 * self-reference, loops, depth) and mailbox paths, over texthash maps
 * written to a temporary directory.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alias.h"
#include "check_util.h"
#include "map.h"
#include "xalloc.h"

static char dir[64];

/* A fresh temporary directory for each test. */
static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ptalias-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Remove it again. */
static void
teardown(void)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
}

/* Open a texthash map with this source text. */
static struct map *
text_map(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *spec = xasprintf("texthash:%s", path);
	FILE *f = fopen(path, "w");
	struct map *m;
	const char *error;

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_msg(map_open(spec, &m, &error) == 0, "%s", error);
	free(path);
	free(spec);
	return m;
}

static const char aliases_text[] =
    "# test aliases\n"
    "team@example.test     a@example.test, b@example.test,c@other.test\n"
    "postmaster@example.test  root@example.test\n"
    "root@example.test     admin@example.test\n"
    "keep@example.test     keep@example.test, archive@example.test\n"
    "loop1@example.test    loop2@example.test\n"
    "loop2@example.test    loop1@example.test\n"
    "deep0@example.test    deep1@example.test\n"
    "deep1@example.test    deep2@example.test\n"
    "deep2@example.test    deep3@example.test\n"
    "deep3@example.test    deep4@example.test\n"
    "@catch.test           box@catch.test\n"
    "dup@example.test      a@example.test, A@Example.Test, team@example.test\n"
    "empty@example.test    ,\n";

static const struct {
	const char *in;
	int want;		/* 1, or 0 for a refused expansion */
	const char *out;	/* final addresses, space-separated, in order */
	const char *error;	/* substring of the error for want == 0 */
} cases[] = {
	{ "nobody@example.test", 1, "nobody@example.test", NULL },
	{ "team@example.test", 1, "a@example.test b@example.test c@other.test", NULL },
	{ "TEAM@EXAMPLE.TEST", 1, "a@example.test b@example.test c@other.test", NULL },
	{ "postmaster@example.test", 1, "admin@example.test", NULL },
	{ "keep@example.test", 1, "keep@example.test archive@example.test", NULL },
	{ "anyone@catch.test", 1, "box@catch.test", NULL },
	{ "box@catch.test", 1, "box@catch.test", NULL },
	{ "dup@example.test", 1, "a@example.test b@example.test c@other.test", NULL },
	{ "loop1@example.test", 0, NULL, "loop" },
	{ "deep0@example.test", 0, NULL, "deeper than 3" },
	{ "deep1@example.test", 1, "deep4@example.test", NULL },
	{ "empty@example.test", 0, NULL, "empty" },
};

START_TEST(test_expand)
{
	struct map *m;
	struct alias_result r = { NULL, 0 };
	const char *error = NULL;
	struct buf got = BUF_INIT;
	int ret;

	m = text_map("aliases", aliases_text);
	ret = alias_expand(m, cases[_i].in, 3, &r, &error);
	ck_assert_msg(ret == cases[_i].want, "%s: got %d (%s)", cases[_i].in, ret,
	    error ? error : "");
	if (ret == 1) {
		for (size_t i = 0; i < r.n; i++)
			ck_assert_int_eq(buf_printf(&got, "%s%s", i ? " " : "", r.addrs[i]), 0);
		ck_assert_str_eq(buf_cstr(&got), cases[_i].out);
		alias_result_free(&r);
	} else {
		ck_assert_ptr_nonnull(strstr(error, cases[_i].error));
		ck_assert_ptr_null(r.addrs);
	}
	buf_free(&got);
	map_close(&m);
}
END_TEST

START_TEST(test_no_map_and_long_address)
{
	struct alias_result r;
	const char *error;
	char big[400];

	ck_assert_int_eq(alias_expand(NULL, "User@Example.TEST", 10, &r, &error), 1);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_str_eq(r.addrs[0], "User@example.test");	/* local part kept */
	alias_result_free(&r);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(alias_expand(NULL, big, 10, &r, &error), 0);
}
END_TEST

static const struct {
	const char *address;
	int want;
	const char *path;
} mbox_cases[] = {
	{ "Demo@Example.Test", 1, "example.test/demo/" },
	{ "mapped@example.test", 1, "custom/place/" },
	{ "slash@example.test", 1, "a/b/" },
	{ "escape@example.test", 0, NULL },
	{ "absolute@example.test", 0, NULL },
	{ "dots@example.test", 0, NULL },
	{ "../x@example.test", 0, NULL },
	{ "user@..", 0, NULL },
	{ "noat", 0, NULL },
	{ "@example.test", 0, NULL },
	{ "user@", 0, NULL },
	{ "a/b@example.test", 0, NULL },
};

START_TEST(test_mailbox_path)
{
	struct map *m;
	struct buf out = BUF_INIT;
	const char *error = NULL;
	int r;

	m = text_map("mailboxes",
	    "mapped@example.test custom/place\n"
	    "slash@example.test a/b/\n"
	    "escape@example.test ../../etc\n"
	    "absolute@example.test /etc\n"
	    "dots@example.test a/./b\n");
	r = mailbox_path(m, mbox_cases[_i].address, &out, &error);
	ck_assert_msg(r == mbox_cases[_i].want, "%s: got %d (%s)",
	    mbox_cases[_i].address, r, error ? error : "");
	if (r == 1)
		ck_assert_str_eq(buf_cstr(&out), mbox_cases[_i].path);
	buf_free(&out);
	map_close(&m);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("alias");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_expand, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_no_map_and_long_address);
	tcase_add_loop_test(tc, test_mailbox_path, 0,
	    sizeof(mbox_cases) / sizeof(mbox_cases[0]));
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
