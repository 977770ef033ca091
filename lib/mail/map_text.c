/*
 * map_text: the text side of maps.  The source parser (map_parse_text),
 * the in-memory entry table it fills, the backends that need no compiled
 * file -- texthash (the source read into memory), static and inline --
 * and map_compile(), which turns a source into a btree, hash or lmdb file
 * and puts it in place atomically.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "map.h"
#include "map_impl.h"
#include "xalloc.h"

/* How many errors one parse reports before giving up. */
#define MAP_MAX_ERRORS 20

/* ---------------------------------------------------------------- */
/* The entry table                                                   */

/* FNV-1a over the key bytes. */
static uint64_t
map_hash(const char *key, size_t klen)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < klen; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t
map_table_slot(const struct map_table *t, const char *key, size_t klen)
{
	size_t mask = t->nslots - 1, i = (size_t)map_hash(key, klen) & mask;

	while (t->slots[i] != 0) {
		const struct map_entry *e = &t->entries[t->slots[i] - 1];

		if (e->klen == klen && memcmp(e->key, key, klen) == 0)
			break;
		i = (i + 1) & mask;
	}
	return i;
}

/* Double the index (or create it) and re-insert every entry. */
static void
map_table_rehash(struct map_table *t)
{
	size_t nslots = t->nslots ? xmul(t->nslots, 2) : 16;

	free(t->slots);
	t->slots = xcalloc(nslots, sizeof(*t->slots));
	t->nslots = nslots;
	for (size_t i = 0; i < t->n; i++) {
		size_t s = map_table_slot(t, t->entries[i].key, t->entries[i].klen);

		t->slots[s] = i + 1;
	}
}

void
map_table_free(struct map_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->entries[i].key);	/* value shares the allocation */
	free(t->entries);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

int
map_table_add(struct map_table *t, const char *key, size_t klen,
    const char *value, size_t vlen, size_t line, size_t *line_r)
{
	struct map_entry *e;
	size_t s;

	/* Keep the index at most half full. */
	if (t->nslots == 0 || t->n >= t->nslots / 2)
		map_table_rehash(t);
	s = map_table_slot(t, key, klen);
	if (t->slots[s] != 0) {
		*line_r = t->entries[t->slots[s] - 1].line;
		return -1;
	}
	if (t->n == t->cap) {
		t->cap = t->cap ? xmul(t->cap, 2) : 16;
		t->entries = xreallocarray(t->entries, t->cap, sizeof(*t->entries));
	}
	e = &t->entries[t->n];
	e->key = xmalloc(xadd(xadd(klen, vlen), 2));
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	e->klen = klen;
	e->value = e->key + klen + 1;
	memcpy(e->value, value, vlen);
	e->value[vlen] = '\0';
	e->vlen = vlen;
	e->line = line;
	t->slots[s] = ++t->n;
	return 0;
}

const struct map_entry *
map_table_find(const struct map_table *t, const char *key, size_t klen)
{
	size_t s;

	if (t->nslots == 0)
		return NULL;
	s = map_table_slot(t, key, klen);
	return t->slots[s] != 0 ? &t->entries[t->slots[s] - 1] : NULL;
}

/* ---------------------------------------------------------------- */
/* The source parser                                                 */

/* Where the parser is relative to entries. */
enum pstate {
	PS_NONE,	/* no entry yet: a continuation line is an error */
	PS_OPEN,	/* an entry is being built */
	PS_BAD,		/* the last entry was refused: drop its continuations */
};

struct parser {
	const char *name;
	map_entry_fn *fn;
	void *arg;
	struct buf *err;
	size_t nerrors;
	int stop;		/* too many errors */
	struct map_table seen;	/* every key so far, with its line */
	enum pstate state;
	struct buf key;		/* the open entry: folded key, */
	size_t key_line;	/* the line it starts on, */
	struct buf value;	/* its value so far (max MAP_MAX_VALUE), */
	int value_long;		/* and whether the value passed the limit */
};

/* Append "NAME:LINE: reason\n" to the error list, up to the cap. */
static void __attribute__((format(printf, 3, 4)))
perr(struct parser *p, size_t line, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (p->stop)
		return;
	if (++p->nerrors > MAP_MAX_ERRORS) {
		if (buf_printf(p->err, "%s: too many errors, giving up\n",
		    p->name) < 0)
			log_debug("event=map_errors_truncated");
		p->stop = 1;
		return;
	}
	va_start(ap, fmt);
	rc = buf_printf(p->err, "%s:%zu: ", p->name, line);
	if (rc == 0)
		rc = buf_vprintf(p->err, fmt, ap);
	if (rc == 0)
		rc = buf_putc(p->err, '\n');
	va_end(ap);
	if (rc < 0)
		p->stop = 1;	/* the caller's error buffer is full */
}

/* 1 for the blanks that separate words and indent continuation lines. */
static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Hand the open entry to fn unless it was refused or is a duplicate. */
static void
flush_entry(struct parser *p)
{
	const char *key = buf_cstr(&p->key), *error = "unknown error";
	size_t first;

	if (p->state != PS_OPEN)
		return;
	p->state = PS_BAD;
	if (p->value_long) {
		perr(p, p->key_line, "value of key '%s' longer than %d bytes",
		    log_safe_n(key, p->key.len), MAP_MAX_VALUE);
		return;
	}
	if (map_table_add(&p->seen, key, p->key.len, "", 0, p->key_line,
	    &first) < 0) {
		perr(p, p->key_line, "duplicate key '%s' (first at line %zu)",
		    log_safe_n(key, p->key.len), first);
		return;
	}
	if (p->fn(p->arg, key, buf_cstr(&p->value), p->key_line, &error) < 0)
		perr(p, p->key_line, "%s", error);
}

/* Add text (trimmed, non-empty) to the open entry's value, after one
 * space if the value already has something. */
static void
add_value(struct parser *p, const char *s, size_t n)
{
	if (p->value_long)
		return;
	if ((p->value.len > 0 && buf_putc(&p->value, ' ') < 0) ||
	    buf_append(&p->value, s, n) < 0)
		p->value_long = 1;
}

/* One line without its terminator (NUL-free, trailing blanks removed). */
static void
parse_line(struct parser *p, size_t lineno, const char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n && is_blank(s[i]))
		i++;
	if (i == n || s[i] == '#')
		return;		/* blank lines and comments */
	if (i > 0) {
		/* A continuation line. */
		if (p->state == PS_OPEN)
			add_value(p, s + i, n - i);
		else if (p->state == PS_NONE)
			perr(p, lineno, "continuation line without an entry "
			    "(keys start at the beginning of a line)");
		return;
	}
	flush_entry(p);
	for (k = 0; k < n && !is_blank(s[k]); k++)
		;
	if (k > MAP_MAX_KEY) {
		perr(p, lineno, "key longer than %d bytes", MAP_MAX_KEY);
		p->state = PS_BAD;
		return;
	}
	buf_reset(&p->key);
	for (size_t j = 0; j < k; j++) {
		unsigned char c = (unsigned char)s[j];

		if (buf_putc(&p->key, (char)(c >= 'A' && c <= 'Z' ?
		    c + ('a' - 'A') : c)) < 0)
			log_panic("event=bug where=map_parse key");
	}
	p->key_line = lineno;
	p->state = PS_OPEN;
	p->value_long = 0;
	buf_reset(&p->value);
	for (i = k; i < n && is_blank(s[i]); i++)
		;
	if (i < n)
		add_value(p, s + i, n - i);
}

int
map_parse_text(const char *name, const char *text, size_t len,
    map_entry_fn *fn, void *arg, struct buf *err)
{
	struct parser p;
	size_t pos = 0, lineno = 0;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.fn = fn;
	p.arg = arg;
	p.err = err;
	p.state = PS_NONE;
	buf_init(&p.key, MAP_MAX_KEY);
	buf_init(&p.value, MAP_MAX_VALUE);
	while (pos < len && !p.stop) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - s) : len - pos;

		pos += nl != NULL ? n + 1 : n;
		lineno++;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (memchr(s, '\0', n) != NULL) {
			/* The entry this line starts or continues is refused;
			 * one it ends is finished first, keeping errors in
			 * line order. */
			if (!is_blank(s[0]))
				flush_entry(&p);
			perr(&p, lineno, "NUL byte in line");
			if (p.state == PS_OPEN || !is_blank(s[0]))
				p.state = PS_BAD;
			continue;
		}
		while (n > 0 && is_blank(s[n - 1]))
			n--;
		parse_line(&p, lineno, s, n);
	}
	if (!p.stop)
		flush_entry(&p);
	map_table_free(&p.seen);
	buf_free(&p.key);
	buf_free(&p.value);
	return p.nerrors == 0 ? 1 : -1;
}

/* ---------------------------------------------------------------- */
/* Reading a source into a table                                     */

/* Where table_add_fn puts entries, and what it refuses. */
struct table_add {
	struct map_table *t;
	unsigned flags;		/* MAP_BARE_KEYS */
};

/* map_entry_fn adding each entry to a struct map_table (duplicates were
 * already refused by the parser); a key without a value is refused
 * unless the map is a list of keys. */
static int
table_add_fn(void *arg, const char *key, const char *value, size_t line,
    const char **error_r)
{
	struct table_add *ta = arg;
	size_t first;

	if (value[0] == '\0' && !(ta->flags & MAP_BARE_KEYS)) {
		*error_r = err_fmt("key '%s' has no value (write KEY VALUE; a "
		    "key alone is an entry only in the sources of "
		    MAP_BARE_KEY_MAPS ")", log_safe(key));
		return -1;
	}
	if (map_table_add(ta->t, key, strlen(key), value, strlen(value), line,
	    &first) < 0) {
		*error_r = err_fmt("duplicate key (first at line %zu)", first);
		return -1;
	}
	return 0;
}

/*
 * Read and parse the source at path into t.  *st_r is the stat() taken
 * before reading (so a replacement during the read is noticed later, not
 * missed).  1, or -1 with messages appended to err (t is then emptied).
 */
static int
map_load_source(const char *path, unsigned flags, struct map_table *t,
    struct stat *st_r, struct buf *err)
{
	struct table_add ta = { t, flags };
	struct buf text = BUF_INIT;
	const char *error;
	int ret;

	if (stat(path, st_r) < 0) {
		if (buf_printf(err, "%s: %s\n", path, strerror(errno)) < 0)
			log_debug("event=map_errors_truncated");
		return -1;
	}
	if (!S_ISREG(st_r->st_mode)) {
		if (buf_printf(err, "%s: not a regular file\n", path) < 0)
			log_debug("event=map_errors_truncated");
		return -1;
	}
	if (fs_read_file(path, MAP_SOURCE_MAX, &text, &error) < 0) {
		if (buf_printf(err, "%s\n", error) < 0)
			log_debug("event=map_errors_truncated");
		return -1;
	}
	ret = map_parse_text(path, text.data != NULL ? text.data : "", text.len,
	    table_add_fn, &ta, err);
	buf_free(&text);
	if (ret < 0)
		map_table_free(t);
	return ret;
}

/* ---------------------------------------------------------------- */
/* texthash, static and inline                                        */

/* Look key up in a table (the handle of texthash and inline maps). */
static int
table_lookup(void *handle, const char *key, size_t klen, struct buf *value,
    const char **error_r)
{
	const struct map_entry *e = map_table_find(handle, key, klen);

	if (e == NULL)
		return 0;
	return map_set_value(value, e->value, e->vlen, error_r);
}

/* Free a table handle. */
static void
table_close(void *handle)
{
	struct map_table *t = handle;

	map_table_free(t);
	free(t);
}

/* A texthash handle: the entries, and the source kept open so that its
 * inode number cannot be reused while we compare against it. */
struct texthash {
	struct map_table t;
	int fd;
};

/* Read the text source into a table; errors report the first problem. */
static int
texthash_open(const char *type, const char *arg, const char *file,
    void **handle_r, struct stat *st_r, const char **error_r)
{
	struct texthash *h;
	struct buf err = BUF_INIT;
	struct stat st;
	size_t nl;
	int fd;

	(void)type;
	(void)arg;
	/* Identity first, then contents: if the file is replaced in
	 * between, the next check sees a change and reads it again. */
	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		*error_r = err_fmt("open %s: %s", file, strerror(errno));
		return -1;
	}
	if (fstat(fd, st_r) < 0) {
		*error_r = err_fmt("fstat %s: %s", file, strerror(errno));
		close(fd);
		return -1;
	}
	h = xcalloc(1, sizeof(*h));
	h->fd = fd;
	/* A reader does not know which map this is: `postern map` has
	 * already refused what this map may not hold. */
	if (map_load_source(file, MAP_BARE_KEYS, &h->t, &st, &err) < 0) {
		nl = strcspn(buf_cstr(&err), "\n");
		*error_r = err_fmt("%.*s%s", (int)(nl < 400 ? nl : 400),
		    buf_cstr(&err), err.len > nl + 1 ? " (and more)" : "");
		buf_free(&err);
		close(fd);
		free(h);
		return -1;
	}
	buf_free(&err);
	*handle_r = h;
	return 0;
}

/* Look key up in the texthash table. */
static int
texthash_lookup(void *handle, const char *key, size_t klen,
    struct buf *value, const char **error_r)
{
	struct texthash *h = handle;

	return table_lookup(&h->t, key, klen, value, error_r);
}

/* Free the table and close the source. */
static void
texthash_close(void *handle)
{
	struct texthash *h = handle;

	map_table_free(&h->t);
	close(h->fd);
	free(h);
}

const struct map_backend map_backend_texthash = {
	"texthash", 1, texthash_open, texthash_lookup, texthash_close, NULL,
};

/* static:VALUE -- the handle is the value as a struct buf. */
static int
static_open(const char *type, const char *arg, const char *file,
    void **handle_r, struct stat *st_r, const char **error_r)
{
	struct buf *v;

	(void)type;
	(void)file;
	memset(st_r, 0, sizeof(*st_r));
	if (strlen(arg) > MAP_MAX_VALUE) {
		*error_r = err_fmt("static map value longer than %d bytes",
		    MAP_MAX_VALUE);
		return -1;
	}
	v = xmalloc(sizeof(*v));
	buf_init(v, 0);
	if (buf_puts(v, arg) < 0)
		log_panic("event=bug where=static_open");
	*handle_r = v;
	return 0;
}

/* Every key maps to the value. */
static int
static_lookup(void *handle, const char *key, size_t klen, struct buf *value,
    const char **error_r)
{
	const struct buf *v = handle;

	(void)key;
	(void)klen;
	return map_set_value(value, buf_cstr(v), v->len, error_r);
}

/* Free the static value. */
static void
static_close(void *handle)
{
	struct buf *v = handle;

	buf_free(v);
	free(v);
}

const struct map_backend map_backend_static = {
	"static", 0, static_open, static_lookup, static_close, NULL,
};

/* s[0..n) without leading and trailing blanks: sets *s and *n. */
static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_blank((*s)[*n - 1]))
		(*n)--;
}

/* Add one "key=value" item of an inline table.  0, or -1 with *error_r. */
static int
inline_item(struct map_table *t, const char *s, size_t n,
    const char **error_r)
{
	const char *eq = memchr(s, '=', n), *end = s + n, *v;
	size_t klen, vlen, first;
	char key[MAP_MAX_KEY + 1];

	if (eq == NULL) {
		*error_r = err_fmt("inline map item '%s' is not key=value",
		    log_safe_n(s, n));
		return -1;
	}
	klen = (size_t)(eq - s);
	trim(&s, &klen);
	v = eq + 1;
	vlen = (size_t)(end - v);
	trim(&v, &vlen);
	if (klen == 0 || klen > MAP_MAX_KEY) {
		*error_r = klen == 0 ? "inline map item with an empty key" :
		    err_fmt("inline map key longer than %d bytes", MAP_MAX_KEY);
		return -1;
	}
	if (vlen > MAP_MAX_VALUE) {
		*error_r = err_fmt("inline map value longer than %d bytes",
		    MAP_MAX_VALUE);
		return -1;
	}
	for (size_t i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)s[i];

		key[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	if (map_table_add(t, key, klen, v, vlen, 0, &first) < 0) {
		*error_r = err_fmt("inline map has key '%s' twice",
		    log_safe_n(key, klen));
		return -1;
	}
	return 0;
}

/*
 * inline:{key=value, key2=value2}: items are separated by commas; an item
 * in braces, {key=text, with commas}, may contain commas.
 */
static int
inline_open(const char *type, const char *arg, const char *file,
    void **handle_r, struct stat *st_r, const char **error_r)
{
	struct map_table *t = xcalloc(1, sizeof(*t));
	size_t len = strlen(arg), pos, end;

	(void)type;
	(void)file;
	memset(st_r, 0, sizeof(*st_r));
	if (len < 2 || arg[0] != '{' || arg[len - 1] != '}') {
		*error_r = "an inline map is written inline:{key=value, ...}";
		goto fail;
	}
	/* Walk the text between the outer braces. */
	for (pos = 1, end = len - 1; pos < end; ) {
		const char *item;
		size_t n;

		if (is_blank(arg[pos]) || arg[pos] == ',') {
			pos++;
			continue;
		}
		if (arg[pos] == '{') {
			const char *close = memchr(arg + pos, '}', end - pos);

			if (close == NULL) {
				*error_r = "inline map item '{' without '}'";
				goto fail;
			}
			item = arg + pos + 1;
			n = (size_t)(close - item);
			pos = (size_t)(close - arg) + 1;
		} else {
			const char *comma = memchr(arg + pos, ',', end - pos);

			item = arg + pos;
			n = comma != NULL ? (size_t)(comma - item) : end - pos;
			pos += n;
		}
		trim(&item, &n);
		if (n > 0 && inline_item(t, item, n, error_r) < 0)
			goto fail;
	}
	*handle_r = t;
	return 0;
fail:
	map_table_free(t);
	free(t);
	return -1;
}

const struct map_backend map_backend_inline = {
	"inline", 0, inline_open, table_lookup, table_close, NULL,
};

/* ---------------------------------------------------------------- */
/* Compiling                                                         */

/* Append one "formatted\n" line to err (dropped if err is full). */
static void __attribute__((format(printf, 2, 3)))
cerr(struct buf *err, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(err, fmt, ap);
	va_end(ap);
	if (rc < 0 || buf_putc(err, '\n') < 0)
		log_debug("event=map_errors_truncated");
}

/*
 * Give the new file at tmp the source's permission bits (and, when run as
 * root, its owner, so a daemon that may read the source may read the
 * map) and flush it to disk.  0, or -1 with *error_r.
 */
static int
map_finish_file(const char *tmp, const struct stat *src, const char **error_r)
{
	int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		*error_r = err_fmt("open %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, src->st_mode & 0666) < 0 ||
	    (geteuid() == 0 && fchown(fd, src->st_uid, src->st_gid) < 0) ||
	    fsync(fd) < 0) {
		*error_r = err_fmt("%s: %s", tmp, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = err_fmt("close %s: %s", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

int
map_compile(const char *type, const char *path, unsigned flags,
    struct buf *err)
{
	static unsigned int counter;
	const struct map_backend *be = map_backend_find(type);
	struct map_table t = { NULL, 0, 0, NULL, 0 };
	struct stat st;
	const char *error;
	char *file, *tmp, *dir, *slash;
	int ret = -1;

	if (be == NULL || !be->has_file) {
		if (be != NULL)
			cerr(err, "%s: a %s map has no source file to compile",
			    path, type);
		else if (strcmp(type, "btree") == 0 || strcmp(type, "hash") == 0)
			cerr(err, "%s: map type %s is not built in (configured "
			    "--without-bdb)", path, type);
		else
			cerr(err, "%s: unknown map type '%s' (btree, hash, lmdb, "
			    "texthash)", path, log_safe(type));
		return -1;
	}
	if (map_load_source(path, flags, &t, &st, err) < 0)
		return -1;
	if (be->create == NULL) {
		/* texthash is read as it is: it only needed checking. */
		map_table_free(&t);
		return 1;
	}

	file = map_file(type, path);
	tmp = xasprintf("%s.tmp.%ld.%u", file, (long)getpid(), counter++);
	slash = strrchr(file, '/');
	dir = slash == NULL ? xstrdup(".") : slash == file ? xstrdup("/") :
	    xstrndup(file, (size_t)(slash - file));

	/* A leftover of a dead process with our pid is no one's. */
	if (unlink(tmp) < 0 && errno != ENOENT)
		cerr(err, "%s: %s", tmp, strerror(errno));
	else if (be->create(type, tmp, &t, &error) < 0 ||
	    map_finish_file(tmp, &st, &error) < 0)
		cerr(err, "%s: %s", file, error);
	else if (rename(tmp, file) < 0)
		cerr(err, "rename %s to %s: %s", tmp, file, strerror(errno));
	else if (fs_fsync_dir(dir, &error) < 0)
		cerr(err, "%s: %s", file, error);	/* in place, not durable */
	else
		ret = 1;
	if (ret < 0 && unlink(tmp) < 0 && errno != ENOENT)
		log_warn("event=map_tmp_unlink_failed file=%s error=\"%s\"",
		    log_safe(tmp), strerror(errno));
	map_table_free(&t);
	free(dir);
	free(tmp);
	free(file);
	return ret;
}
