/*
 * map_impl: what map.c needs from each map backend, and the pieces the
 * backends share (the in-memory entry table, value copying).  Not for
 * code outside the map modules, except the tests' hooks at the end.
 */
#ifndef POSTERN_MAP_IMPL_H
#define POSTERN_MAP_IMPL_H

#include <stddef.h>
#include <sys/stat.h>

#include "buf.h"

struct map;

/* The largest text source map_compile() and texthash read. */
#define MAP_SOURCE_MAX ((size_t)256 * 1024 * 1024)

/* One parsed entry: key (folded, klen bytes) and value (vlen bytes), each
 * followed by a NUL not counted in the length. */
struct map_entry {
	char *key;
	size_t klen;
	char *value;
	size_t vlen;
	size_t line;		/* where it was written (0: not from a file) */
};

/*
 * A table of entries in insertion order, with a hash index on the key.
 * Built by the text parser, used by the texthash and inline backends and
 * handed to the compiled backends' create().
 */
struct map_table {
	struct map_entry *entries;
	size_t n, cap;
	size_t *slots;		/* nslots buckets: entry index + 1, 0 = empty */
	size_t nslots;		/* a power of two, or 0 */
};

/* Empty the table and free everything it holds; reusable afterwards. */
void map_table_free(struct map_table *t);
/* Add a copy of key -> value.  0, or -1 if the key is already present
 * (*line_r is then the existing entry's line, the table unchanged). */
int map_table_add(struct map_table *t, const char *key, size_t klen,
    const char *value, size_t vlen, size_t line, size_t *line_r)
	__attribute__((warn_unused_result));
/* The entry for key, or NULL. */
const struct map_entry *map_table_find(const struct map_table *t,
    const char *key, size_t klen);

/*
 * A backend.  Handles are opaque to map.c and used by one process and
 * one thread at a time.
 */
struct map_backend {
	const char *type;	/* as in specs: "btree", "lmdb", ... */
	/* 1 if the map lives in a file (map_file()) that may be replaced. */
	int has_file;
	/*
	 * Open the map: arg is the spec's argument, file its data file
	 * (NULL if !has_file).  0 with *handle_r and, for a file, *st_r the
	 * fstat() of the file actually opened; -1 with *error_r.
	 */
	int (*open)(const char *type, const char *arg, const char *file,
	    void **handle_r, struct stat *st_r, const char **error_r);
	/* Look up a folded key of klen bytes: 1 found (value set with
	 * map_set_value()), 0 not found, -1 with *error_r. */
	int (*lookup)(void *handle, const char *key, size_t klen,
	    struct buf *value, const char **error_r);
	/* Release a handle from open(). */
	void (*close)(void *handle);
	/*
	 * Write every entry of t into a new file at path, which must not
	 * exist yet, flushed to disk.  0, or -1 with *error_r (path may then
	 * be left behind for the caller to remove).  NULL: the type cannot
	 * be compiled.
	 */
	int (*create)(const char *type, const char *path,
	    const struct map_table *t, const char **error_r);
};

/* The backends, each defined in its own file. */
#ifdef HAVE_BDB
extern const struct map_backend map_backend_btree;
extern const struct map_backend map_backend_hash;
#endif
extern const struct map_backend map_backend_lmdb;
extern const struct map_backend map_backend_texthash;
extern const struct map_backend map_backend_static;
extern const struct map_backend map_backend_inline;

/* The backend for a type name, or NULL if it is unknown or not built. */
const struct map_backend *map_backend_find(const char *type);

/* Replace *value with n bytes at p: 1, or -1 with *error_r (value
 * untouched) if they would pass value->max. */
int map_set_value(struct buf *value, const void *p, size_t n,
    const char **error_r) __attribute__((warn_unused_result));

/*
 * For tests: make the next lookup on m check whether its file was
 * replaced, instead of waiting for the once-a-second throttle.
 */
void map_recheck_now(struct map *m);
/* For tests: how many times m switched to a replaced file. */
unsigned long map_reopens(const struct map *m);

#endif
