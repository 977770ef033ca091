/*
 * map_bdb: Berkeley DB 5.3 btree and hash maps.  Each map is one file
 * (PATH.db) opened without a DB_ENV: readers open it DB_RDONLY and never
 * write, the compiler creates a fresh file DB_CREATE|DB_EXCL and the
 * caller renames it into place.  Keys and values are stored without a
 * terminating NUL.
 */
#include "autoconf.h"

#ifdef HAVE_BDB

#include <db.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "map.h"
#include "map_impl.h"
#include "xalloc.h"

struct bdb_map {
	DB *db;
	char *file;
};

/* The last message Berkeley DB reported, for a more useful error. */
static char bdb_errmsg[256];

/* Berkeley DB's error callback: keep the message instead of printing. */
static void
bdb_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	snprintf(bdb_errmsg, sizeof(bdb_errmsg), "%s", msg);
}

/* The access method for a type name. */
static DBTYPE
bdb_dbtype(const char *type)
{
	return strcmp(type, "hash") == 0 ? DB_HASH : DB_BTREE;
}

/* A DB handle with our error callback.  0, or -1 with *error_r. */
static int
bdb_new(DB **db_r, const char **error_r)
{
	int ret = db_create(db_r, NULL, 0);

	if (ret != 0) {
		*error_r = err_fmt("db_create: %s", db_strerror(ret));
		return -1;
	}
	(*db_r)->set_errcall(*db_r, bdb_errcall);
	bdb_errmsg[0] = '\0';
	return 0;
}

/* Describe a failed DB call on file: db_strerror plus BDB's own note. */
static const char *
bdb_error(const char *what, const char *file, int ret)
{
	return err_fmt("%s %s: %s%s%s", what, file, db_strerror(ret),
	    bdb_errmsg[0] != '\0' ? ": " : "", bdb_errmsg);
}

/* Open file read-only as a btree or hash database. */
static int
bdb_open(const char *type, const char *arg, const char *file,
    void **handle_r, struct stat *st_r, const char **error_r)
{
	struct bdb_map *h;
	DB *db;
	int ret, fd;

	(void)arg;
	if (bdb_new(&db, error_r) < 0)
		return -1;
	ret = db->open(db, NULL, file, NULL, bdb_dbtype(type), DB_RDONLY, 0);
	if (ret != 0) {
		if (ret == ENOENT)
			*error_r = err_fmt("open %s: %s (compile it with "
			    "postern map)", file, strerror(ENOENT));
		else if (ret == EINVAL)
			*error_r = err_fmt("open %s: not a Berkeley DB %s file",
			    file, type);
		else
			*error_r = bdb_error("open", file, ret);
		db->close(db, 0);
		return -1;
	}
	if ((ret = db->fd(db, &fd)) != 0 || fstat(fd, st_r) < 0) {
		*error_r = ret != 0 ? bdb_error("fd", file, ret) :
		    err_fmt("fstat %s: %s", file, strerror(errno));
		db->close(db, 0);
		return -1;
	}
	h = xmalloc(sizeof(*h));
	h->db = db;
	h->file = xstrdup(file);
	*handle_r = h;
	return 0;
}

/* Look a key up; the value is copied out of Berkeley DB's own buffer. */
static int
bdb_lookup(void *handle, const char *key, size_t klen, struct buf *value,
    const char **error_r)
{
	struct bdb_map *h = handle;
	DBT k, d;
	int ret;

	memset(&k, 0, sizeof(k));
	memset(&d, 0, sizeof(d));
	k.data = (void *)(uintptr_t)key;	/* DB->get does not write it */
	k.size = (u_int32_t)klen;		/* klen <= MAP_MAX_KEY */
	bdb_errmsg[0] = '\0';
	ret = h->db->get(h->db, NULL, &k, &d, 0);
	if (ret == DB_NOTFOUND)
		return 0;
	if (ret != 0) {
		*error_r = bdb_error("read", h->file, ret);
		return -1;
	}
	return map_set_value(value, d.data, d.size, error_r);
}

/* Close the database. */
static void
bdb_close(void *handle)
{
	struct bdb_map *h = handle;
	int ret = h->db->close(h->db, 0);

	if (ret != 0)
		log_warn("event=map_close_failed file=%s error=\"%s\"",
		    log_safe(h->file), db_strerror(ret));
	free(h->file);
	free(h);
}

/* Write every entry into a new database file at path. */
static int
bdb_create(const char *type, const char *path, const struct map_table *t,
    const char **error_r)
{
	DB *db;
	DBT k, d;
	int ret;

	if (bdb_new(&db, error_r) < 0)
		return -1;
	if (bdb_dbtype(type) == DB_HASH && t->n > 0)
		(void)db->set_h_nelem(db, t->n > UINT32_MAX ? UINT32_MAX :
		    (u_int32_t)t->n);	/* a sizing hint only */
	ret = db->open(db, NULL, path, NULL, bdb_dbtype(type),
	    DB_CREATE | DB_EXCL, 0600);
	if (ret != 0) {
		*error_r = bdb_error("create", path, ret);
		db->close(db, 0);
		return -1;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct map_entry *e = &t->entries[i];

		memset(&k, 0, sizeof(k));
		memset(&d, 0, sizeof(d));
		k.data = e->key;
		k.size = (u_int32_t)e->klen;	/* <= MAP_MAX_KEY */
		d.data = e->value;
		d.size = (u_int32_t)e->vlen;	/* <= MAP_MAX_VALUE */
		ret = db->put(db, NULL, &k, &d, DB_NOOVERWRITE);
		if (ret != 0) {
			*error_r = bdb_error("write", path, ret);
			db->close(db, 0);
			return -1;
		}
	}
	if ((ret = db->sync(db, 0)) != 0) {
		*error_r = bdb_error("sync", path, ret);
		db->close(db, 0);
		return -1;
	}
	if ((ret = db->close(db, 0)) != 0) {
		*error_r = bdb_error("close", path, ret);
		return -1;
	}
	return 0;
}

const struct map_backend map_backend_btree = {
	"btree", 1, bdb_open, bdb_lookup, bdb_close, bdb_create,
};

const struct map_backend map_backend_hash = {
	"hash", 1, bdb_open, bdb_lookup, bdb_close, bdb_create,
};

#endif /* HAVE_BDB */
