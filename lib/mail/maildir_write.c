/*
 * maildir_write: delivery into a Maildir of the mail store (see
 * maildir.h), per the maildir spec (tmp/ -> fsync -> new/ -> fsync new/),
 * with Maildir++ folders and quota (maildir_quota.c), never following a
 * symlink below the store.  Delivery is split in two so that local(8)
 * can commit in groups: maildir_prepare() checks and writes the file into
 * tmp/ (no fsync), counting its CRLF size for the name's W= on the way;
 * maildir_commit() -- thread-safe, only syscalls on its own fds -- starts
 * every file's writeback, fsyncs each file, renames it into new/ under
 * its final name and then fsyncs each distinct new/ once for the whole
 * batch; maildir_finish() reports, updates maildirsize and frees.
 *
 * Open Maildirs (struct mdir: the Maildir's, tmp/'s and new/'s fds) are
 * reference-counted: the store's LRU cache holds one reference, each
 * pending delivery another, so an entry evicted (or dropped as stale)
 * while the sync thread still uses its fds is closed only afterwards.
 * References change on the loop's thread only.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agentproto.h"
#include "fsutil.h"
#include "log.h"
#include "maildir.h"
#include "maildir_impl.h"
#include "xalloc.h"

#define COPY_CHUNK 65536

/* fds a process keeps for itself besides the Maildir cache. */
#define CACHE_FD_RESERVE 256

/* An open Maildir (or folder): its directory, tmp/ and new/. */
struct mdir {
	char *key;		/* the mailbox path (cached ones), else NULL */
	char *newpath;		/* key "/new", for the revalidation */
	int fd, tmp, new;
	dev_t new_dev;		/* new/'s identity */
	ino_t new_ino;
	struct fs_caps caps;	/* of its file system (probed in tmp/) */
	unsigned refs;		/* the cache's and each pending delivery's */
	uint32_t hash;
	struct mdir *hnext;	/* hash chain */
	struct mdir *prev, *next;	/* LRU order, most recent first */
};

struct maildir_store {
	int fd;			/* the mail store directory */
	char *host;		/* hostname, encoded for file names */
	pid_t pid;
	unsigned long counter;	/* deliveries by this process */
	/* The cache of open Maildirs. */
	size_t cache_max, ncached;
	struct mdir **buckets;	/* cache_max * 2 rounded up to a power of 2 */
	size_t nbuckets;
	struct mdir *lru_head, *lru_tail;
	uint64_t hits, walks;
	/* Write errors repeat for every delivery while the store's disk is
	 * full: one line per kind and interval (lib/core/log.h). */
	struct log_limit loglimit;
};

/* Set *res. */
static void
result(struct maildir_result *res, int status, const char *esc, const char *text)
{
	res->status = status;
	res->esc = esc;
	res->text = text;
	res->where = "";
}


int
maildir_store_open(const char *path, const char *hostname,
    struct maildir_store **store_r, const char **error_r)
{
	struct maildir_store *st;
	struct buf host = BUF_INIT;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = err_fmt("open %s: %s", path, strerror(errno));
		return -1;
	}
	for (const char *s = hostname; *s != '\0'; s++) {
		int r;

		if (*s == '/')
			r = buf_puts(&host, "\\057");
		else if (*s == ':')
			r = buf_puts(&host, "\\072");
		else
			r = buf_putc(&host, *s);
		if (r < 0)
			log_panic("event=maildir_hostname error=\"buffer full\"");
	}
	st = xcalloc(1, sizeof(*st));
	st->fd = fd;
	st->host = buf_steal(&host);
	st->pid = getpid();
	maildir_store_cache_size(st, MAILDIR_CACHE_DEFAULT);
	*store_r = st;
	return 0;
}

/* Drop one reference to d; the last closes it. */
static void
mdir_unref(struct mdir **dp)
{
	struct mdir *d = *dp;

	if (d == NULL)
		return;
	*dp = NULL;
	if (--d->refs > 0)
		return;
	maildir_close_fd(&d->fd);
	maildir_close_fd(&d->tmp);
	maildir_close_fd(&d->new);
	free(d->key);
	free(d->newpath);
	free(d);
}

/* FNV-1a of a mailbox path. */
static uint32_t
key_hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *s = (const unsigned char *)key; *s != '\0'; s++)
		h = (h ^ *s) * 16777619u;
	return h;
}

/* Take d out of the cache (dropping the cache's reference). */
static void
cache_remove(struct maildir_store *st, struct mdir *d)
{
	for (struct mdir **pp = &st->buckets[d->hash & (st->nbuckets - 1)];
	    *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == d) {
			*pp = d->hnext;
			break;
		}
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		st->lru_head = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	else
		st->lru_tail = d->prev;
	d->prev = d->next = d->hnext = NULL;
	st->ncached--;
	mdir_unref(&d);
}

/* Make d the most recently used. */
static void
cache_touch(struct maildir_store *st, struct mdir *d)
{
	if (st->lru_head == d)
		return;
	d->prev->next = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	else
		st->lru_tail = d->prev;
	d->prev = NULL;
	d->next = st->lru_head;
	st->lru_head->prev = d;
	st->lru_head = d;
}

/* Add d (with a key) to the cache, which takes a reference; the least
 * recently used entries go if it is full.  Nothing if caching is off. */
static void
cache_insert(struct maildir_store *st, struct mdir *d)
{
	struct mdir **bucket;

	if (st->cache_max == 0)
		return;
	while (st->ncached >= st->cache_max)
		cache_remove(st, st->lru_tail);
	bucket = &st->buckets[d->hash & (st->nbuckets - 1)];
	d->hnext = *bucket;
	*bucket = d;
	d->prev = NULL;
	d->next = st->lru_head;
	if (st->lru_head != NULL)
		st->lru_head->prev = d;
	st->lru_head = d;
	if (st->lru_tail == NULL)
		st->lru_tail = d;
	st->ncached++;
	d->refs++;
}

/* The cached Maildir for key, or NULL. */
static struct mdir *
cache_find(struct maildir_store *st, const char *key, uint32_t hash)
{
	if (st->cache_max == 0)
		return NULL;
	for (struct mdir *d = st->buckets[hash & (st->nbuckets - 1)]; d != NULL;
	    d = d->hnext)
		if (d->hash == hash && strcmp(d->key, key) == 0)
			return d;
	return NULL;
}

void
maildir_store_cache_size(struct maildir_store *st, size_t n)
{
	struct rlimit rl;
	size_t nb = 1;

	if (n > 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY) {
		size_t room = rl.rlim_cur > CACHE_FD_RESERVE ?
		    (size_t)(rl.rlim_cur - CACHE_FD_RESERVE) / 3 : 0;

		if (n > room) {
			log_warn("event=maildir_cache_limited want=%zu open_files=%llu "
			    "entries=%zu", n, (unsigned long long)rl.rlim_cur, room);
			n = room;
		}
	}
	while (st->lru_head != NULL)
		cache_remove(st, st->lru_head);
	free(st->buckets);
	st->buckets = NULL;
	st->nbuckets = 0;
	st->cache_max = n;
	if (n == 0)
		return;
	while (nb < n * 2)
		nb *= 2;
	st->buckets = xcalloc(nb, sizeof(*st->buckets));
	st->nbuckets = nb;
}

void
maildir_store_cache_stats(const struct maildir_store *st, size_t *open_r,
    uint64_t *hits_r, uint64_t *walks_r)
{
	*open_r = st->ncached;
	*hits_r = st->hits;
	*walks_r = st->walks;
}

void
maildir_store_close(struct maildir_store **storep)
{
	struct maildir_store *st = *storep;

	if (st == NULL)
		return;
	maildir_store_cache_size(st, 0);
	maildir_close_fd(&st->fd);
	free(st->host);
	free(st);
	*storep = NULL;
}

void
maildir_unique_name(struct maildir_store *st, struct buf *out)
{
	struct timeval tv;

	(void)gettimeofday(&tv, NULL);
	st->counter++;
	buf_reset(out);
	if (buf_printf(out, "%lld.M%06ldP%ldQ%lu.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)st->pid, st->counter, st->host) < 0)
		log_panic("event=maildir_name error=\"buffer full\"");
}

/* Whether tag may name a folder: 1..64 of [A-Za-z0-9_-]. */
static int
tag_safe(const char *tag)
{
	size_t n = strlen(tag);

	if (n == 0 || n > 64)
		return 0;
	for (const char *s = tag; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

/*
 * Open the folder ".TAG" (any case) of the Maildir at dirfd.  1 with
 * *fd_r, 0 if there is none, -1 with *error_r (e.g. a symlink).
 */
static int
folder_open(int dirfd, const char *tag, int *fd_r, const char **error_r)
{
	DIR *d;
	struct dirent *de;
	char *found = NULL;
	int r;

	if ((d = maildir_dir_stream(dirfd, "mailbox", error_r)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] == '.' && strcasecmp(de->d_name + 1, tag) == 0) {
			found = xstrdup(de->d_name);
			break;
		}
	(void)closedir(d);
	if (found == NULL)
		return 0;
	r = maildir_dir_open(dirfd, found, 0, fd_r, error_r);
	free(found);
	return r;
}


/*
 * Write the prefix and then the message (size bytes of in at offset, or
 * data if not NULL) to out.  0 with *crlf_r, the CRLF size of what was
 * written (for the name's W=), or -1 with *error_r.
 */
static int
copy_message(const struct buf *prefix, const struct maildir_msg *m, int out,
    uint64_t *crlf_r, const char **error_r)
{
	uint64_t offset = m->offset, size = m->size, crlf;
	struct iovec iov[2];
	char *chunk;
	int prev_cr = 0, first = 1, ret = 0;

	crlf = maildir_crlf_size(prefix->data, prefix->len, &prev_cr);
	iov[0] = (struct iovec){ prefix->data, prefix->len };
	if (m->data != NULL) {
		crlf += maildir_crlf_size(m->data, (size_t)size, &prev_cr);
		iov[1] = (struct iovec){ (void *)(uintptr_t)m->data, (size_t)size };
		if (maildir_writev_all(out, iov, 2) < 0) {
			*error_r = err_fmt("write: %s", strerror(errno));
			return -1;
		}
		*crlf_r = crlf;
		return 0;
	}
	chunk = xmalloc(COPY_CHUNK);
	/* The prefix goes out with the first chunk. */
	while (size > 0 || first) {
		size_t want = size > COPY_CHUNK ? COPY_CHUNK : (size_t)size;
		ssize_t n = want > 0 ? pread(m->fd, chunk, want, (off_t)offset) : 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n == 0 && want > 0)) {
			*error_r = n < 0 ? err_fmt("read queue file: %s", strerror(errno)) :
			    "queue file is shorter than announced";
			ret = -1;
			break;
		}
		crlf += maildir_crlf_size(chunk, (size_t)n, &prev_cr);
		iov[first ? 1 : 0] = (struct iovec){ chunk, (size_t)n };
		if (maildir_writev_all(out, iov, first ? 2 : 1) < 0) {
			*error_r = err_fmt("write: %s", strerror(errno));
			ret = -1;
			break;
		}
		first = 0;
		offset += (uint64_t)n;
		size -= (uint64_t)n;
	}
	free(chunk);
	if (ret == 0)
		*crlf_r = crlf;
	return ret;
}

/* A written message awaiting maildir_commit(). */
struct maildir_pending {
	struct maildir_store *st;	/* for its log limit */
	int fd;			/* the file in tmp/, written, not yet synced */
	struct mdir *dir;	/* its Maildir or folder (a reference) */
	struct mdir *top;	/* the Maildir for maildirsize; NULL: no quota */
	uint64_t size;
	char *tmpname;		/* its name in tmp/ */
	char *name;		/* its name in new/, with S= and W= */
	char *mailbox, *folder;
	int committed;		/* maildir_commit() ran on it */
	int in_tmp;		/* still (or also) in tmp/ */
	int linked;		/* in new/ */
	int dir_synced;		/* new/ fsync'd after the link */
	int failed;
	char error[256];	/* when failed (no err_fmt: a thread writes it) */
};

/* Mark p failed with "what: errno's text" (thread-safe). */
static void
pending_fail(struct maildir_pending *p, const char *what, int err)
{
	char text[128];

	if (p->failed)
		return;
	p->failed = 1;
	/* GNU strerror_r: returns the text, in text or a static string. */
	snprintf(p->error, sizeof(p->error), "%s: %s", what,
	    strerror_r(err, text, sizeof(text)));
}

/*
 * Write the file base (the unique name) into d's tmp/: the prefix, then
 * the message; not yet synced or in new/: maildir_commit() does that.
 * 0 with *p_r (holding a new reference to d), or -1 with *errno_r (0 if
 * not a system error on the create) and *error_r, nothing left behind.
 */
static int
write_message(struct mdir *d, const char *base, const struct buf *prefix,
    const struct maildir_msg *msg, struct maildir_pending **p_r,
    int *errno_r, const char **error_r)
{
	struct maildir_pending *p;
	uint64_t size, crlf = 0;
	int fd;

	*errno_r = 0;
	fd = openat(d->tmp, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		*errno_r = errno;
		*error_r = err_fmt("create tmp/%s: %s", base, strerror(errno));
		return -1;
	}
	if (copy_message(prefix, msg, fd, &crlf, error_r) < 0) {
		(void)close(fd);
		(void)unlinkat(d->tmp, base, 0);
		return -1;
	}
	size = xadd(prefix->len, msg->size);
	p = xcalloc(1, sizeof(*p));
	p->fd = fd;
	p->dir = d;
	d->refs++;
	p->size = size;
	p->tmpname = xstrdup(base);
	p->name = xasprintf("%s,S=%" PRIu64 ",W=%" PRIu64, base, size, crlf);
	p->in_tmp = 1;
	*p_r = p;
	return 0;
}

/* Move p's file from tmp/ into new/ under its final name, never replacing
 * a file (lib/core/fsutil: RENAME_NOREPLACE, or check + rename where the file
 * system refuses it -- the name is unique).  0, or -1 with errno. */
static int
move_into_new(struct maildir_pending *p)
{
	if (fs_rename_unique(&p->dir->caps, p->dir->tmp, p->tmpname, p->dir->new, p->name) < 0)
		return -1;
	p->in_tmp = 0;
	return 0;
}

void
maildir_commit(struct maildir_pending *const *ps, size_t n)
{
	size_t i, j;

	/* Start every file's writeback, then wait for each: the disk sees
	 * the whole batch at once (a batch of one just waits). */
	for (i = 0; n > 1 && i < n; i++)
		(void)sync_file_range(ps[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < n; i++) {
		struct maildir_pending *p = ps[i];

		p->committed = 1;
		if (fs_fsync(p->fd, "maildir-file") < 0)
			pending_fail(p, "fsync", errno);
		else if (close(p->fd) < 0) {
			p->fd = -1;
			pending_fail(p, "close", errno);
		}
		p->fd = -1;
		if (p->failed)
			continue;
		if (move_into_new(p) < 0) {
			pending_fail(p, "move into new/", errno);
			continue;
		}
		p->linked = 1;
	}
	/* Each new/ directory once, for every file moved into it. */
	for (i = 0; i < n; i++) {
		struct maildir_pending *p = ps[i];
		int err = 0;

		if (!p->linked || p->failed || p->dir_synced)
			continue;
		if (fs_fsync(p->dir->new, "maildir-dir") < 0)
			err = errno;
		for (j = i; j < n; j++) {
			struct maildir_pending *q = ps[j];

			if (!q->linked || q->failed || q->dir_synced ||
			    q->dir->new_dev != p->dir->new_dev ||
			    q->dir->new_ino != p->dir->new_ino)
				continue;
			q->dir_synced = 1;
			if (err != 0)
				pending_fail(q, "fsync new/", err);
		}
	}
	/* A failure leaves nothing behind. */
	for (i = 0; i < n; i++) {
		struct maildir_pending *p = ps[i];

		if (!p->failed)
			continue;
		if (p->in_tmp)
			(void)unlinkat(p->dir->tmp, p->tmpname, 0);
		p->in_tmp = 0;
		if (p->linked)
			(void)unlinkat(p->dir->new, p->name, 0);
	}
}

void
maildir_finish(struct maildir_pending **pp, struct maildir_result *res)
{
	struct maildir_pending *p = *pp;

	if (p == NULL)
		return;
	if (!p->committed) {
		maildir_close_fd(&p->fd);
		(void)unlinkat(p->dir->tmp, p->tmpname, 0);
		pending_fail(p, "delivery abandoned", ECANCELED);
	}
	if (p->failed) {
		(void)log_limited(&p->st->loglimit, LOG_LEVEL_ERROR, p->error,
		    "event=maildir_write_failed mailbox=%s error=\"%s\"",
		    log_safe(p->mailbox), p->error);
		result(res, AGENT_TEMP, "4.3.0", err_fmt("mail store write failed: %s",
		    p->error));
	} else {
		if (p->top != NULL)
			maildir_quota_add(p->top->fd, p->size);
		result(res, AGENT_OK, "2.0.0", "delivered to mailbox");
		res->where = err_fmt("mailbox=%s folder=%s file=%s size=%" PRIu64,
		    log_safe(p->mailbox), p->folder != NULL ? log_safe(p->folder) :
		    "INBOX", log_safe(p->name), p->size);
	}
	maildir_close_fd(&p->fd);
	mdir_unref(&p->dir);
	mdir_unref(&p->top);
	free(p->tmpname);
	free(p->name);
	free(p->mailbox);
	free(p->folder);
	free(p);
	*pp = NULL;
}


/*
 * Make an mdir of the Maildir open at fd (taken over: closed on failure):
 * tmp/ and new/ opened, cur/ created if missing, all without following
 * symlinks.  0 with *d_r (one reference, no key), or -1 with *error_r.
 */
static int
mdir_from_fd(int fd, struct mdir **d_r, const char **error_r)
{
	struct maildir_dirs m = MAILDIR_DIRS_INIT;
	struct stat sb;
	struct mdir *d;

	m.fd = fd;
	if (maildir_dirs_open(&m, error_r) < 0) {
		maildir_dirs_close(&m);
		return -1;
	}
	if (fstat(m.new, &sb) < 0) {
		*error_r = err_fmt("stat new/: %s", strerror(errno));
		maildir_dirs_close(&m);
		return -1;
	}
	maildir_close_fd(&m.cur);
	d = xcalloc(1, sizeof(*d));
	d->fd = m.fd;
	d->tmp = m.tmp;
	d->new = m.new;
	d->new_dev = sb.st_dev;
	d->new_ino = sb.st_ino;
	/* Probed in tmp/ (the same file system as new/, which the rename
	 * needs anyway), so no reader listing new/ meets a probe's file. */
	d->caps = fs_caps(m.tmp, "(a maildir's tmp/)");
	/* Opened once per cache lifetime: a good moment to drop what a
	 * killed delivery left in tmp/ long ago. */
	(void)fs_sweep_old(m.tmp, FS_TMP_MAX_AGE, "(a maildir's tmp/)");
	d->refs = 1;
	*d_r = d;
	return 0;
}

/*
 * Whether every component of key (a cached Maildir's path in the store)
 * is still a directory and no symlink.  new/ reached through the store
 * being the cached inode is not enough: a Maildir moved out of the store
 * with a symlink to it left in its place is the same inode, outside.
 */
static int
key_real_dirs(int storefd, char *key)
{
	struct stat sb;
	char *p = key;
	int ok = 1;

	for (;;) {
		char *slash = strchr(p, '/');

		if (slash != NULL)
			*slash = '\0';
		if (slash == NULL || slash != p)	/* "a//b": nothing between */
			ok = fstatat(storefd, key, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(sb.st_mode);
		if (slash == NULL)
			return ok;
		*slash = '/';
		if (!ok)
			return 0;
		p = slash + 1;
	}
}

/*
 * The Maildir at mailbox (created if missing), from the cache if it is
 * there and its new/ is still the one reached through the store -- unless
 * walk -- else walked from the store (and cached).  0 with *d_r (a
 * reference for the caller) and *hit_r (1: from the cache), or -1 with
 * *error_r.
 */
static int
mdir_get(struct maildir_store *st, const char *mailbox, int walk,
    struct mdir **d_r, int *hit_r, const char **error_r)
{
	size_t klen = strlen(mailbox);
	struct mdir *d;
	struct stat sb;
	uint32_t hash;
	char *key;
	int fd;

	/* "example.test/demo/" and "example.test/demo" are one Maildir. */
	while (klen > 1 && mailbox[klen - 1] == '/')
		klen--;
	key = xstrndup(mailbox, klen);
	hash = key_hash(key);
	if ((d = cache_find(st, key, hash)) != NULL) {
		if (!walk && key_real_dirs(st->fd, d->key) &&
		    fstatat(st->fd, d->newpath, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(sb.st_mode) && sb.st_dev == d->new_dev &&
		    sb.st_ino == d->new_ino) {
			st->hits++;
			cache_touch(st, d);
			d->refs++;
			free(key);
			*d_r = d;
			*hit_r = 1;
			return 0;
		}
		/* Removed, renamed or replaced since: walk again. */
		log_debug("event=maildir_cache_stale mailbox=%s", log_safe(key));
		cache_remove(st, d);
	}
	st->walks++;
	if (maildir_path_open(st->fd, mailbox, 1, &fd, error_r) < 0 ||
	    mdir_from_fd(fd, &d, error_r) < 0) {
		free(key);
		return -1;
	}
	d->key = key;
	d->newpath = xasprintf("%s/new", key);
	d->hash = hash;
	cache_insert(st, d);
	*d_r = d;
	*hit_r = 0;
	return 0;
}

/*
 * Open the delivery target: the Maildir at mailbox (created if missing;
 * *top_r) and, when a folder for tag exists, that folder (*dst_r, else
 * top again).  Both are references for the caller.  *hit_r as mdir_get's.
 * 0, or -1 with *error_r.
 */
static int
target_open(struct maildir_store *st, const char *mailbox, const char *tag,
    int walk, struct mdir **top_r, struct mdir **dst_r, int *hit_r,
    const char **error_r)
{
	struct mdir *top;
	int ffd, r;

	if (mdir_get(st, mailbox, walk, &top, hit_r, error_r) < 0)
		return -1;
	*top_r = top;
	if (tag != NULL && tag_safe(tag)) {
		if ((r = folder_open(top->fd, tag, &ffd, error_r)) < 0 ||
		    (r == 1 && mdir_from_fd(ffd, dst_r, error_r) < 0)) {
			mdir_unref(top_r);
			return -1;
		}
		if (r == 1)
			return 0;
	}
	top->refs++;
	*dst_r = top;
	return 0;
}

void
maildir_prepare(struct maildir_store *st, const char *mailbox,
    const char *tag, uint64_t quota, const struct maildir_msg *m,
    const char *header, size_t header_len, struct maildir_result *res,
    struct maildir_pending **p_r)
{
	struct maildir_pending *p = NULL;
	struct mdir *top = NULL, *dst = NULL;
	struct buf prefix = BUF_INIT, name = BUF_INIT;
	const char *error;
	uint64_t size, used = 0, count = 0;
	int hit = 0, err;

	*p_r = NULL;
	/* Check: a loop, then the target, then the quota. */
	if (maildir_has_delivered_to(header, header_len, m->delivered_to)) {
		result(res, AGENT_PERM, "5.4.6", err_fmt("mail forwarding loop for %s",
		    log_safe(m->delivered_to)));
		return;
	}
	if (buf_printf(&prefix, "Return-Path: <%s>\nDelivered-To: %s\n",
	    m->return_path, m->delivered_to) < 0)
		log_panic("event=maildir_prefix error=\"buffer full\"");
	size = xadd(prefix.len, m->size);
	maildir_unique_name(st, &name);
	for (int walk = 0; walk < 2; walk++) {
		if (target_open(st, mailbox, tag, walk, &top, &dst, &hit, &error) < 0) {
			(void)log_limited(&st->loglimit, LOG_LEVEL_ERROR, error,
			    "event=mailbox_unusable mailbox=%s error=\"%s\"",
			    log_safe(mailbox), error);
			result(res, AGENT_TEMP, "4.3.0", err_fmt("mailbox unusable: %s",
			    error));
			goto out;
		}
		if (quota > 0 && walk == 0) {
			if (maildir_quota_usage(st, top->fd, quota, &used, &count,
			    &error) < 0) {
				(void)log_limited(&st->loglimit, LOG_LEVEL_ERROR, error,
				    "event=quota_failed mailbox=%s error=\"%s\"",
				    log_safe(mailbox), error);
				result(res, AGENT_TEMP, "4.3.0", err_fmt("quota check "
				    "failed: %s", error));
				goto out;
			}
			if (used > quota || size > quota - used) {
				result(res, AGENT_TEMP, "4.2.2", err_fmt("mailbox full "
				    "(quota %" PRIu64 " bytes, %" PRIu64 " in use, "
				    "message %" PRIu64 ")", quota, used, size));
				goto out;
			}
		}

		/* Proceed: write it. */
		if (write_message(dst, name.data, &prefix, m, &p, &err, &error) == 0)
			break;
		/* A cached tmp/ that went away: once more from the store. */
		if (hit && walk == 0 && (err == ENOENT || err == ESTALE)) {
			log_debug("event=maildir_cache_retry mailbox=%s error=\"%s\"",
			    log_safe(mailbox), error);
			mdir_unref(&top);
			mdir_unref(&dst);
			continue;
		}
		/* The text names the file: the errno is the kind. */
		(void)log_limited(&st->loglimit, LOG_LEVEL_ERROR,
		    err != 0 ? strerror(err) : error,
		    "event=maildir_write_failed mailbox=%s error=\"%s\"",
		    log_safe(mailbox), error);
		result(res, AGENT_TEMP, "4.3.0", err_fmt("mail store write failed: %s",
		    error));
		goto out;
	}
	p->st = st;
	p->folder = dst != top ? xstrdup(tag) : NULL;
	p->mailbox = xstrdup(mailbox);
	if (quota > 0) {
		p->top = top;
		top = NULL;
	}
	*p_r = p;
	result(res, AGENT_OK, "2.0.0", "written, not yet committed");
out:
	mdir_unref(&top);
	mdir_unref(&dst);
	buf_free(&prefix);
	buf_free(&name);
}

void
maildir_deliver(struct maildir_store *st, const char *mailbox,
    const char *tag, uint64_t quota, const struct maildir_msg *m,
    const char *header, size_t header_len, struct maildir_result *res)
{
	struct maildir_pending *p = NULL;

	maildir_prepare(st, mailbox, tag, quota, m, header, header_len, res, &p);
	if (p == NULL)
		return;
	maildir_commit(&p, 1);
	maildir_finish(&p, res);
}
