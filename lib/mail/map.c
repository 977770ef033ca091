/*
 * map: open a map by its spec, fold keys, dispatch lookups to the
 * backend, and notice when `postern map` has replaced the compiled file:
 * the file is stat()ed at most once a second per map, and again on every
 * lookup that finds nothing, so a key just added (a user, a domain, an
 * alias) is found as soon as the command that added it has returned.  If
 * the file is another one (inode, device, size or mtime differ) the new
 * one is opened before the old handle is dropped; a miss storm costs one
 * stat() per miss and reopens nothing while the file stays the same.  If
 * the reopen fails the old handle keeps serving and a warning is logged,
 * once per replacement.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "map.h"
#include "map_impl.h"
#include "xalloc.h"

/* How often a map's file is checked for replacement. */
#define MAP_CHECK_MS 1000

struct map {
	char *spec;
	const char *arg;	/* the spec's argument, inside spec */
	const struct map_backend *be;
	char *file;		/* the data file, NULL for static/inline */
	void *handle;
	struct stat st;		/* the file handle reads from */
	uint64_t checked_ms;	/* when the file was last stat()ed */
	int force_check;	/* check at the next lookup (tests) */
	int stat_failed;	/* the last stat() failed (warned once) */
	int reopen_failed;	/* failed_st could not be opened (warned) */
	struct stat failed_st;
	unsigned long reopens;	/* how often the file was switched (tests) */
};

/* What map_check_file() did. */
enum map_check {
	MC_SKIPPED,	/* checked too recently: no stat() */
	MC_SAME,	/* stat()ed: the same file (or an unusable one) */
	MC_REOPENED,	/* switched to the new file */
};

static const struct map_backend *const map_backends[] = {
#ifdef HAVE_BDB
	&map_backend_btree,
	&map_backend_hash,
#endif
	&map_backend_lmdb,
	&map_backend_texthash,
	&map_backend_static,
	&map_backend_inline,
};

const struct map_backend *
map_backend_find(const char *type)
{
	for (size_t i = 0; i < sizeof(map_backends) / sizeof(map_backends[0]); i++)
		if (strcmp(map_backends[i]->type, type) == 0)
			return map_backends[i];
	return NULL;
}

/* A coarse monotonic clock in milliseconds (a vDSO call, no syscall). */
static uint64_t
map_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) < 0 &&
	    clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		log_panic("event=bug where=map clock_gettime errno=%d", errno);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* 1 if a and b describe the same version of a file. */
static int
map_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int
map_open(const char *spec, struct map **map_r, const char **error_r)
{
	const struct map_backend *be;
	const char *type, *arg, *error;
	struct map *m;

	if (map_parse_spec(spec, &type, &arg, &error) < 0) {
		*error_r = err_fmt("map %s: %s", log_safe(spec), error);
		return -1;
	}
	if ((be = map_backend_find(type)) == NULL)
		log_panic("event=bug where=map_open type=%s", type);
	m = xcalloc(1, sizeof(*m));
	m->spec = xstrdup(spec);
	m->arg = m->spec + (arg - spec);
	m->be = be;
	if (be->has_file)
		m->file = map_file(type, arg);
	if (be->open(type, arg, m->file, &m->handle, &m->st, error_r) < 0) {
		free(m->file);
		free(m->spec);
		free(m);
		return -1;
	}
	m->checked_ms = map_now_ms();
	*map_r = m;
	return 0;
}

void
map_close(struct map **mapp)
{
	struct map *m = *mapp;

	if (m == NULL)
		return;
	m->be->close(m->handle);
	free(m->file);
	free(m->spec);
	free(m);
	*mapp = NULL;
}

const char *
map_spec(const struct map *m)
{
	return m->spec;
}

void
map_recheck_now(struct map *m)
{
	m->force_check = 1;
}

unsigned long
map_reopens(const struct map *m)
{
	return m->reopens;
}

/* If the file was replaced, switch to the new one (see the top); force
 * skips the once-a-second throttle. */
static enum map_check
map_check_file(struct map *m, int force)
{
	struct stat st, new_st;
	const char *error;
	void *handle;
	uint64_t now = map_now_ms();

	if (!force && !m->force_check && now - m->checked_ms < MAP_CHECK_MS)
		return MC_SKIPPED;
	m->force_check = 0;
	m->checked_ms = now;
	if (stat(m->file, &st) < 0) {
		if (!m->stat_failed)
			log_warn("event=map_stat_failed map=%s file=%s error=\"%s\" "
			    "action=keep_old", log_safe(m->spec), log_safe(m->file),
			    strerror(errno));
		m->stat_failed = 1;
		return MC_SAME;
	}
	m->stat_failed = 0;
	if (map_same_file(&st, &m->st) ||
	    (m->reopen_failed && map_same_file(&st, &m->failed_st)))
		return MC_SAME;
	if (m->be->open(m->be->type, m->arg, m->file, &handle, &new_st,
	    &error) < 0) {
		log_warn("event=map_reopen_failed map=%s error=%s action=keep_old",
		    log_safe(m->spec), log_safe(error));
		m->reopen_failed = 1;
		m->failed_st = st;
		return MC_SAME;
	}
	m->be->close(m->handle);
	m->handle = handle;
	m->st = new_st;
	m->reopen_failed = 0;
	m->reopens++;
	log_debug("event=map_reopened map=%s", log_safe(m->spec));
	return MC_REOPENED;
}

int
map_lookup(struct map *m, const char *key, struct buf *value,
    const char **error_r)
{
	char folded[MAP_MAX_KEY + 1];
	size_t klen = strnlen(key, MAP_MAX_KEY + 1);
	enum map_check checked = MC_SKIPPED;
	int r;

	/* No key this long (or empty) can be in any map. */
	if (klen == 0 || klen > MAP_MAX_KEY)
		return 0;
	for (size_t i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)key[i];

		folded[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	folded[klen] = '\0';
	if (m->file != NULL)
		checked = map_check_file(m, 0);
	r = m->be->lookup(m->handle, folded, klen, value, error_r);
	/* A miss is never answered from a file older than this instant:
	 * the key may have been added a moment ago (a stat() from the
	 * throttled check above, even one this millisecond, may predate
	 * the rename that put it in place). */
	if (r == 0 && checked == MC_SKIPPED && m->file != NULL &&
	    map_check_file(m, 1) == MC_REOPENED)
		r = m->be->lookup(m->handle, folded, klen, value, error_r);
	return r;
}

int
map_set_value(struct buf *value, const void *p, size_t n, const char **error_r)
{
	if (value->max != 0 && n > value->max) {
		*error_r = err_fmt("map value of %zu bytes is longer than the "
		    "%zu allowed here", n, value->max);
		return -1;
	}
	buf_reset(value);
	if (buf_append(value, p, n) < 0)
		log_panic("event=bug where=map_set_value len=%zu", n);
	return 1;
}
