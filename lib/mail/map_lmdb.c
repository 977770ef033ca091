/*
 * map_lmdb: LMDB maps, one file PATH.lmdb (MDB_NOSUBDIR).  Readers open
 * it MDB_RDONLY | MDB_NOLOCK: no lock file and no reader table, which is
 * safe because a map file is never written in place, only replaced by
 * rename.  A reader keeps one read transaction that it renews for each
 * lookup and resets afterwards, so a lookup allocates nothing.  The
 * compiler writes a fresh file in one transaction, growing the map size
 * and starting over if the estimate was too small.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "map.h"
#include "map_impl.h"
#include "xalloc.h"

/* How often create() doubles the map size before giving up. */
#define LMDB_MAX_GROW 12

struct lmdb_map {
	MDB_env *env;
	MDB_txn *txn;		/* reset between lookups */
	MDB_dbi dbi;
	char *file;
};

/* Open file read-only, without a lock file. */
static int
lmdb_open(const char *type, const char *arg, const char *file,
    void **handle_r, struct stat *st_r, const char **error_r)
{
	struct lmdb_map *h;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc, fd;

	(void)type;
	(void)arg;
	if ((rc = mdb_env_create(&env)) != 0) {
		*error_r = err_fmt("mdb_env_create: %s", mdb_strerror(rc));
		return -1;
	}
	rc = mdb_env_open(env, file, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0);
	if (rc != 0) {
		if (rc == ENOENT)
			*error_r = err_fmt("open %s: %s (compile it with "
			    "postern map)", file, strerror(ENOENT));
		else if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
			*error_r = err_fmt("open %s: not an LMDB file", file);
		else
			*error_r = err_fmt("open %s: %s", file, mdb_strerror(rc));
		mdb_env_close(env);
		return -1;
	}
	if ((rc = mdb_env_get_fd(env, &fd)) != 0 || fstat(fd, st_r) < 0) {
		*error_r = err_fmt("fstat %s: %s", file,
		    rc != 0 ? mdb_strerror(rc) : strerror(errno));
		mdb_env_close(env);
		return -1;
	}
	/* Open the main database once (a committed read transaction keeps
	 * the handle), then keep one reset transaction for lookups. */
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc == 0 && (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
		mdb_txn_abort(txn);
	else if (rc == 0)
		rc = mdb_txn_commit(txn);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = err_fmt("open %s: %s", file, mdb_strerror(rc));
		mdb_env_close(env);
		return -1;
	}
	mdb_txn_reset(txn);
	h = xmalloc(sizeof(*h));
	h->env = env;
	h->txn = txn;
	h->dbi = dbi;
	h->file = xstrdup(file);
	*handle_r = h;
	return 0;
}

/* Look a key up inside a renewed read transaction. */
static int
lmdb_lookup(void *handle, const char *key, size_t klen, struct buf *value,
    const char **error_r)
{
	struct lmdb_map *h = handle;
	MDB_val k, d;
	int rc, ret;

	if ((rc = mdb_txn_renew(h->txn)) != 0) {
		*error_r = err_fmt("read %s: %s", h->file, mdb_strerror(rc));
		return -1;
	}
	k.mv_data = (void *)(uintptr_t)key;	/* mdb_get does not write it */
	k.mv_size = klen;
	rc = mdb_get(h->txn, h->dbi, &k, &d);
	if (rc == 0)
		ret = map_set_value(value, d.mv_data, d.mv_size, error_r);
	else if (rc == MDB_NOTFOUND)
		ret = 0;
	else {
		*error_r = err_fmt("read %s: %s", h->file, mdb_strerror(rc));
		ret = -1;
	}
	mdb_txn_reset(h->txn);
	return ret;
}

/* Close the environment. */
static void
lmdb_close(void *handle)
{
	struct lmdb_map *h = handle;

	mdb_txn_abort(h->txn);
	mdb_env_close(h->env);
	free(h->file);
	free(h);
}

/* A first guess at the map size for t: twice the data plus room for the
 * tree, rounded up to 1 MiB. */
static size_t
lmdb_estimate(const struct map_table *t)
{
	size_t size = 1024 * 1024;

	for (size_t i = 0; i < t->n; i++)
		size = xadd(size, xmul(2, xadd(xadd(t->entries[i].klen,
		    t->entries[i].vlen), 64)));
	return xadd(size, 1024 * 1024 - 1) / (1024 * 1024) * (1024 * 1024);
}

/*
 * One attempt at writing t into a new file at path with this map size.
 * 0, 1 if the map was too small (path removed), or -1 with *error_r.
 */
static int
lmdb_write(const char *path, const struct map_table *t, size_t mapsize,
    const char **error_r)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k, d;
	int rc, fd;

	/* Create the file ourselves so an existing one is never reused;
	 * LMDB makes a new environment in an empty file. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		*error_r = err_fmt("create %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
	    (rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
		goto fail;
	for (size_t i = 0; i < t->n; i++) {
		k.mv_data = t->entries[i].key;
		k.mv_size = t->entries[i].klen;
		d.mv_data = t->entries[i].value;
		d.mv_size = t->entries[i].vlen;
		if ((rc = mdb_put(txn, dbi, &k, &d, MDB_NOOVERWRITE)) != 0)
			goto fail;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0 || (rc = mdb_env_sync(env, 1)) != 0)
		goto fail;
	mdb_env_close(env);
	return 0;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	if (rc == MDB_MAP_FULL && unlink(path) == 0)
		return 1;
	*error_r = err_fmt("write %s: %s", path, mdb_strerror(rc));
	return -1;
}

/* Write every entry into a new LMDB file at path. */
static int
lmdb_create(const char *type, const char *path, const struct map_table *t,
    const char **error_r)
{
	size_t mapsize = lmdb_estimate(t);

	(void)type;
	for (int i = 0; i < LMDB_MAX_GROW; i++) {
		int rc = lmdb_write(path, t, mapsize, error_r);

		if (rc <= 0)
			return rc;
		log_debug("event=map_lmdb_grow file=%s mapsize=%zu",
		    log_safe(path), mapsize);
		mapsize = xmul(mapsize, 2);
	}
	*error_r = err_fmt("write %s: map size %zu too small", path, mapsize);
	return -1;
}

const struct map_backend map_backend_lmdb = {
	"lmdb", 1, lmdb_open, lmdb_lookup, lmdb_close, lmdb_create,
};
