/*
 * maildir_read: one Maildir read by an access daemon (the mailbox_*
 * functions of maildir.h).  A scan lists new/ and cur/ (optionally moving
 * new mail to cur/), drops duplicates of one base name, sorts by arrival
 * with a precomputed key and fills in each message's UIDL and CRLF size:
 * from ",W=" in the name, else from the size cache file, else by reading
 * the file once.  Messages are opened, flagged and expunged by name; a
 * name that changed under us (another client) is found again by its base
 * name.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "maildir_impl.h"
#include "xalloc.h"

#define READ_CHUNK 65536
#define CACHE_TMP "postern-vsize.tmp"
#define CACHE_MAX (256u * 1024 * 1024)	/* a bigger cache file is ignored */
#define REFIND_TRIES 3			/* renames chased per operation */

/* One listed message and what sorting and finding it need. */
struct entry {
	struct mailbox_msg msg;
	size_t base_len;	/* msg.name's base: up to the first ',' or ':' */
	uint64_t sec;		/* arrival, when has_time */
	uint32_t usec;
	int has_time;
	int gone;		/* expunged through this mailbox */
};

/* One line of the size cache. */
struct cache_ent {
	char *base;
	uint64_t disk, vsize;
	int used;		/* matched a message in this scan */
};

struct mailbox {
	struct maildir_dirs md;
	char *path;		/* for messages */
	int lock_fd;
	struct entry *msgs;
	size_t count, cap;
	struct cache_ent *cache;	/* loaded (sorted by base), then added */
	size_t cache_count, cache_cap;
	size_t cache_sorted;	/* the loaded entries, searched by base */
	int cache_dirty;	/* the file must be rewritten */
};


int
mailbox_open(int storefd, const char *path, struct mailbox **mb_r,
    const char **error_r)
{
	struct maildir_dirs md = MAILDIR_DIRS_INIT;
	struct mailbox *mb;

	if (maildir_path_open(storefd, path, 1, &md.fd, error_r) <= 0)
		return -1;
	if (maildir_dirs_open(&md, error_r) < 0) {
		maildir_dirs_close(&md);
		return -1;
	}
	/* A reader never uses tmp/ (it only had to exist): one descriptor
	 * fewer for each of the thousands of sessions a process holds. */
	(void)close(md.tmp);
	md.tmp = -1;
	mb = xcalloc(1, sizeof(*mb));
	mb->md = md;
	mb->path = xstrdup(path);
	mb->lock_fd = -1;
	*mb_r = mb;
	return 0;
}

/* Free the message list. */
static void
msgs_clear(struct mailbox *mb)
{
	for (size_t i = 0; i < mb->count; i++)
		free(mb->msgs[i].msg.name);
	mb->count = 0;
}

/* Free the loaded size cache. */
static void
cache_clear(struct mailbox *mb)
{
	for (size_t i = 0; i < mb->cache_count; i++)
		free(mb->cache[i].base);
	xfree(&mb->cache);
	mb->cache_count = 0;
	mb->cache_cap = 0;
	mb->cache_sorted = 0;
	mb->cache_dirty = 0;
}

void
mailbox_close(struct mailbox **mbp)
{
	struct mailbox *mb = *mbp;

	if (mb == NULL)
		return;
	msgs_clear(mb);
	free(mb->msgs);
	cache_clear(mb);
	if (mb->lock_fd >= 0)
		(void)close(mb->lock_fd);
	maildir_dirs_close(&mb->md);
	free(mb->path);
	free(mb);
	*mbp = NULL;
}

int
mailbox_lock(struct mailbox *mb, const char *lockname, const char **error_r)
{
	int fd;

	if (mb->lock_fd >= 0) {
		*error_r = "mailbox already locked by this session";
		return -1;
	}
	if (lockname[0] == '\0' || strchr(lockname, '/') != NULL) {
		*error_r = err_fmt("bad lock name %s", log_safe(lockname));
		return -1;
	}
	fd = openat(mb->md.fd, lockname,
	    O_CREAT | O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = err_fmt("open %s/%s: %s", log_safe(mb->path),
		    log_safe(lockname), strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		(void)close(fd);
		if (e == EWOULDBLOCK)
			return 0;
		*error_r = err_fmt("flock %s/%s: %s", log_safe(mb->path),
		    log_safe(lockname), strerror(e));
		return -1;
	}
	mb->lock_fd = fd;
	return 1;
}

/* --- the size cache --- */

/* Order cache entries by base. */
static int
cache_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cache_ent *)a)->base,
	    ((const struct cache_ent *)b)->base);
}

/* The loaded cache entry for base[0..n), or NULL. */
static struct cache_ent *
cache_find(struct mailbox *mb, const char *base, size_t n)
{
	size_t lo = 0, hi = mb->cache_sorted;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *b = mb->cache[mid].base;
		int c = strncmp(b, base, n);

		if (c == 0)
			c = b[n] == '\0' ? 0 : 1;
		if (c == 0)
			return &mb->cache[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Append an entry to the cache array. */
static void
cache_append(struct mailbox *mb, const struct cache_ent *e)
{
	if (mb->cache_count == mb->cache_cap) {
		mb->cache_cap = mb->cache_cap == 0 ? 64 : xmul(mb->cache_cap, 2);
		mb->cache = xreallocarray(mb->cache, mb->cache_cap, sizeof(*mb->cache));
	}
	mb->cache[mb->cache_count++] = *e;
}

/*
 * Parse the cache text (len bytes, NUL-terminated) into mb->cache.  Each
 * line is "BASE DISKSIZE VSIZE\n"; 0, or -1 if any line is malformed (a
 * partial file, a duplicate, sizes that cannot be) and nothing is kept.
 */
static int
cache_parse(struct mailbox *mb, const char *text, size_t len)
{
	const char *s = text, *end = text + len;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *sp1, *sp2;
		struct cache_ent e;

		if (nl == NULL || (sp1 = memchr(s, ' ', (size_t)(nl - s))) == NULL ||
		    (sp2 = memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1))) == NULL ||
		    !maildir_printable(s, (size_t)(sp1 - s), NAME_MAX) ||
		    memchr(s, ',', (size_t)(sp1 - s)) != NULL ||
		    memchr(s, ':', (size_t)(sp1 - s)) != NULL ||
		    !maildir_parse_u64(sp1 + 1, (size_t)(sp2 - sp1 - 1), &e.disk) ||
		    !maildir_parse_u64(sp2 + 1, (size_t)(nl - sp2 - 1), &e.vsize) ||
		    e.vsize < e.disk || e.vsize - e.disk > e.disk)
			goto bad;
		e.base = xstrndup(s, (size_t)(sp1 - s));
		e.used = 0;
		cache_append(mb, &e);
		s = nl + 1;
	}
	if (mb->cache_count > 0)
		qsort(mb->cache, mb->cache_count, sizeof(*mb->cache), cache_cmp);
	for (size_t i = 1; i < mb->cache_count; i++)
		if (strcmp(mb->cache[i - 1].base, mb->cache[i].base) == 0)
			goto bad;
	mb->cache_sorted = mb->cache_count;
	return 0;
bad:
	cache_clear(mb);
	return -1;
}

/* Load the cache file; a missing one is empty, a damaged one is dropped
 * (and marked for rewriting). */
static void
cache_load(struct mailbox *mb)
{
	struct stat sb;
	char *text;
	size_t len = 0;
	int fd;

	cache_clear(mb);
	fd = openat(mb->md.fd, MAILBOX_VSIZE_CACHE,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT) {
			log_info("event=vsize_cache_ignored mailbox=%s error=\"%s\"",
			    log_safe(mb->path), strerror(errno));
			mb->cache_dirty = 1;
		}
		return;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size > CACHE_MAX) {
		log_info("event=vsize_cache_ignored mailbox=%s error=\"not a regular file or too big\"",
		    log_safe(mb->path));
		(void)close(fd);
		mb->cache_dirty = 1;
		return;
	}
	text = xmalloc((size_t)sb.st_size + 1);
	while (len < (size_t)sb.st_size) {
		ssize_t n = read(fd, text + len, (size_t)sb.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	text[len] = '\0';
	if (len != (size_t)sb.st_size || cache_parse(mb, text, len) < 0) {
		log_info("event=vsize_cache_ignored mailbox=%s error=\"malformed\"",
		    log_safe(mb->path));
		mb->cache_dirty = 1;
	}
	free(text);
}

/*
 * Write the cache back (tmp file, then rename; no fsync: it is a cache)
 * with every entry a message of this scan used.  The tmp file is flock()ed
 * so two sessions never write it at once; if another one is writing, this
 * one leaves it.  Failure only costs a rebuild later, so it is logged.
 */
static void
cache_store(struct mailbox *mb)
{
	struct buf text = BUF_INIT;
	struct stat a, b;
	int fd, err;

	if (mb->cache_count > mb->cache_sorted)
		qsort(mb->cache, mb->cache_count, sizeof(*mb->cache), cache_cmp);
	mb->cache_sorted = 0;	/* no more lookups */
	for (size_t i = 0; i < mb->cache_count; i++) {
		const struct cache_ent *e = &mb->cache[i];

		if (e->used && buf_printf(&text, "%s %" PRIu64 " %" PRIu64 "\n",
		    e->base, e->disk, e->vsize) < 0)
			log_panic("event=vsize_cache error=\"buffer full\"");
	}
	fd = openat(mb->md.fd, CACHE_TMP,
	    O_CREAT | O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	/* Locked, and still the file under that name (not renamed away). */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &a) < 0 ||
	    fstatat(mb->md.fd, CACHE_TMP, &b, AT_SYMLINK_NOFOLLOW) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino || !S_ISREG(a.st_mode)) {
		(void)close(fd);
		buf_free(&text);
		return;
	}
	if (ftruncate(fd, 0) < 0 || maildir_write_all(fd, text.data, text.len) < 0 ||
	    renameat(mb->md.fd, CACHE_TMP, mb->md.fd, MAILBOX_VSIZE_CACHE) < 0) {
		err = errno;
		(void)close(fd);
		errno = err;
		goto fail;
	}
	(void)close(fd);
	buf_free(&text);
	mb->cache_dirty = 0;
	return;
fail:
	log_warn("event=vsize_cache_write mailbox=%s error=\"%s\"",
	    log_safe(mb->path), strerror(errno));
	buf_free(&text);
}

/* Add (or replace) the cache entry for base[0..n). */
static void
cache_put(struct mailbox *mb, const char *base, size_t n, uint64_t disk,
    uint64_t vsize)
{
	struct cache_ent *e = cache_find(mb, base, n), ne;

	mb->cache_dirty = 1;
	if (e != NULL) {
		e->disk = disk;
		e->vsize = vsize;
		e->used = 1;
		return;
	}
	/* After the sorted part: base names are unique within a scan, so an
	 * added entry is never looked up; cache_store() sorts. */
	ne.base = xstrndup(base, n);
	ne.disk = disk;
	ne.vsize = vsize;
	ne.used = 1;
	cache_append(mb, &ne);
}

/* --- scanning --- */

/* Fill e's arrival key from its name: "SECONDS." then, in the next
 * dot-separated part, "M<usec>" if present. */
static void
entry_key(struct entry *e)
{
	const char *s = e->msg.name;
	size_t n = strspn(s, "0123456789");
	uint64_t usec = 0;

	e->has_time = 0;
	if (s[n] != '.' || !maildir_parse_u64(s, n, &e->sec))
		return;
	e->has_time = 1;
	e->usec = 0;
	for (s += n + 1; *s != '\0' && *s != '.' && *s != ',' && *s != ':'; s++)
		if (*s == 'M' && s[1] >= '0' && s[1] <= '9') {
			size_t d = strspn(s + 1, "0123456789");

			if (maildir_parse_u64(s + 1, d, &usec) && usec <= UINT32_MAX)
				e->usec = (uint32_t)usec;
			break;
		}
}

/* Arrival order: timed names first by (seconds, usec), then by base
 * name, then cur/ before new/, then by whole name. */
static int
entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	size_t n = a->base_len < b->base_len ? a->base_len : b->base_len;
	int c;

	if (a->has_time != b->has_time)
		return a->has_time ? -1 : 1;
	if (a->has_time) {
		if (a->sec != b->sec)
			return a->sec < b->sec ? -1 : 1;
		if (a->usec != b->usec)
			return a->usec < b->usec ? -1 : 1;
	}
	if ((c = memcmp(a->msg.name, b->msg.name, n)) != 0)
		return c;
	if (a->base_len != b->base_len)
		return a->base_len < b->base_len ? -1 : 1;
	if (a->msg.in_new != b->msg.in_new)
		return a->msg.in_new ? 1 : -1;
	return strcmp(a->msg.name, b->msg.name);
}

/* Append a message to the list (name is taken over). */
static void
list_add(struct mailbox *mb, char *name, int in_new)
{
	struct entry *e;

	if (mb->count == mb->cap) {
		mb->cap = mb->cap == 0 ? 64 : xmul(mb->cap, 2);
		mb->msgs = xreallocarray(mb->msgs, mb->cap, sizeof(*mb->msgs));
	}
	e = &mb->msgs[mb->count++];
	memset(e, 0, sizeof(*e));
	e->msg.name = name;
	e->msg.in_new = in_new;
	e->base_len = maildir_base_len(name);
	entry_key(e);
}

/* A fresh directory stream on the subdirectory sub, open at dfd
 * (reopened, so its permissions are checked now).  NULL with *error_r. */
static DIR *
dir_stream(struct mailbox *mb, int dfd, const char *sub, const char **error_r)
{
	return maildir_dir_stream(dfd, err_fmt("%s/%s", log_safe(mb->path), sub),
	    error_r);
}

/* Whether the entry de of the directory dfd is a regular file (not a
 * symlink); 0 also when it vanished. */
static int
is_regular(int dfd, const struct dirent *de)
{
	struct stat sb;

	if (de->d_type == DT_REG)
		return 1;
	if (de->d_type != DT_UNKNOWN)
		return 0;
	return fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(sb.st_mode);
}

/*
 * Read one subdirectory into the list; if move (new/ only), rename each
 * file into cur/ as "NAME:2," instead (it is then listed when cur/ is
 * read).  0, or -1 with *error_r.
 */
static int
read_dir(struct mailbox *mb, int in_new, int move, const char **error_r)
{
	int dfd = in_new ? mb->md.new : mb->md.cur;
	const char *sub = in_new ? "new" : "cur";
	struct dirent *de;
	size_t unmoved = 0;
	DIR *d;

	if ((d = dir_stream(mb, dfd, sub, error_r)) == NULL)
		return -1;
	for (;;) {
		char *to;

		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (de->d_name[0] == '.' || !is_regular(dfd, de))
			continue;
		if (!move) {
			list_add(mb, xstrdup(de->d_name), in_new);
			continue;
		}
		to = strchr(de->d_name, ':') != NULL ? xstrdup(de->d_name) :
		    xasprintf("%s:2,", de->d_name);
		if (renameat(dfd, de->d_name, mb->md.cur, to) < 0 && errno != ENOENT) {
			/* Still readable where it is: list it there.  Log
			 * once per scan (a read-only Maildir fails for all). */
			if (unmoved++ == 0)
				log_warn("event=mailbox_move mailbox=%s name=%s error=\"%s\"",
				    log_safe(mb->path), log_safe(de->d_name), strerror(errno));
			list_add(mb, xstrdup(de->d_name), in_new);
		}
		free(to);
	}
	if (errno != 0) {
		*error_r = err_fmt("read %s/%s: %s", log_safe(mb->path), sub,
		    strerror(errno));
		(void)closedir(d);
		return -1;
	}
	(void)closedir(d);
	return 0;
}

/* The CRLF size of the file name in dfd by reading it, and its size on
 * disk.  1, 0 if it vanished, -1 with *error_r. */
static int
read_vsize(struct mailbox *mb, int in_new, const char *name, uint64_t *disk_r,
    uint64_t *vsize_r, const char **error_r)
{
	char *chunk;
	uint64_t vsize = 0, disk = 0;
	int fd, prev_cr = 0, r = 1;
	const char *sub = in_new ? "new" : "cur";
	struct stat sb;

	fd = openat(in_new ? mb->md.new : mb->md.cur, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = err_fmt("open %s/%s/%s: %s", log_safe(mb->path), sub,
		    log_safe(name), strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		*error_r = err_fmt("%s/%s/%s: not a regular file", log_safe(mb->path),
		    sub, log_safe(name));
		(void)close(fd);
		return -1;
	}
	chunk = xmalloc(READ_CHUNK);
	for (;;) {
		ssize_t n = read(fd, chunk, READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = err_fmt("read %s/%s/%s: %s", log_safe(mb->path),
			    sub, log_safe(name), strerror(errno));
			r = -1;
			break;
		}
		if (n == 0)
			break;
		disk += (uint64_t)n;
		vsize += maildir_crlf_size(chunk, (size_t)n, &prev_cr);
	}
	free(chunk);
	(void)close(fd);
	if (r == 1) {
		*disk_r = disk;
		*vsize_r = vsize;
	}
	return r;
}

/*
 * Fill e's vsize: ",W=", else a cache entry whose disk size still
 * matches, else by reading the file (and caching it), else (unreadable)
 * ",S=" or the disk size.  1, or 0 if the file vanished.
 */
static int
entry_vsize(struct mailbox *mb, struct entry *e)
{
	const char *error;
	int dfd = e->msg.in_new ? mb->md.new : mb->md.cur;
	const char *name = e->msg.name;
	int cacheable = maildir_printable(name, e->base_len, NAME_MAX);
	struct cache_ent *c;
	struct stat sb;
	uint64_t disk, vsize;
	int r;

	if (maildir_name_size(name, 'W', &e->msg.vsize))
		return 1;
	if (cacheable && (c = cache_find(mb, name, e->base_len)) != NULL) {
		int st = fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW);

		if (st < 0 && errno == ENOENT)
			return 0;
		/* Another error: reading it reports that. */
		if (st == 0 && (uint64_t)sb.st_size == c->disk) {
			c->used = 1;
			e->msg.vsize = c->vsize;
			return 1;
		}
	}
	if ((r = read_vsize(mb, e->msg.in_new, name, &disk, &vsize, &error)) == 0)
		return 0;
	if (r < 0) {
		/* Listed all the same: opening it reports the error. */
		log_warn("event=mailbox_vsize mailbox=%s error=\"%s\"",
		    log_safe(mb->path), error);
		if (!maildir_name_size(name, 'S', &e->msg.vsize))
			e->msg.vsize = fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 ?
			    (uint64_t)sb.st_size : 0;
		return 1;
	}
	e->msg.vsize = vsize;
	if (cacheable)
		cache_put(mb, name, e->base_len, disk, vsize);
	return 1;
}

int
mailbox_scan(struct mailbox *mb, int move_new, const char **error_r)
{
	size_t i, j, used = 0;

	msgs_clear(mb);
	/* new/ first: a file moved to cur/ meanwhile is then seen there. */
	if (read_dir(mb, 1, move_new, error_r) < 0 ||
	    read_dir(mb, 0, 0, error_r) < 0) {
		msgs_clear(mb);
		return -1;
	}
	if (mb->count > 1)
		qsort(mb->msgs, mb->count, sizeof(*mb->msgs), entry_cmp);
	/* One base name, one message: its first (cur/) copy. */
	for (i = 0, j = 0; i < mb->count; i++) {
		struct entry *e = &mb->msgs[i];

		if (j > 0 && mb->msgs[j - 1].base_len == e->base_len &&
		    memcmp(mb->msgs[j - 1].msg.name, e->msg.name, e->base_len) == 0) {
			free(e->msg.name);
			continue;
		}
		mb->msgs[j++] = *e;
	}
	mb->count = j;

	cache_load(mb);
	for (i = 0, j = 0; i < mb->count; i++) {
		struct entry *e = &mb->msgs[i];

		if (entry_vsize(mb, e) == 0) {	/* vanished since readdir */
			free(e->msg.name);
			continue;
		}
		maildir_uidl(e->msg.name, e->msg.uidl);
		mb->msgs[j++] = *e;
	}
	mb->count = j;
	for (i = 0; i < mb->cache_count; i++)
		used += mb->cache[i].used;
	if (mb->cache_dirty || used != mb->cache_count)
		cache_store(mb);
	cache_clear(mb);
	return 0;
}

size_t
mailbox_count(const struct mailbox *mb)
{
	return mb->count;
}

const struct mailbox_msg *
mailbox_msg(const struct mailbox *mb, size_t i)
{
	if (i >= mb->count)
		log_panic("event=mailbox_msg index=%zu count=%zu", i, mb->count);
	return &mb->msgs[i].msg;
}

/* --- operations on one message --- */

/* The entry for index i (panics past the end). */
static struct entry *
entry_get(struct mailbox *mb, size_t i)
{
	if (i >= mb->count)
		log_panic("event=mailbox_msg index=%zu count=%zu", i, mb->count);
	return &mb->msgs[i];
}

/*
 * Find e's message again by its base name, in cur/ then new/, and update
 * its name and place.  1 found, 0 gone, -1 with *error_r.
 */
static int
refind(struct mailbox *mb, struct entry *e, const char **error_r)
{
	for (int in_new = 0; in_new <= 1; in_new++) {
		int dfd = in_new ? mb->md.new : mb->md.cur;
		struct dirent *de;
		DIR *d;

		if ((d = dir_stream(mb, dfd, in_new ? "new" : "cur", error_r)) == NULL)
			return -1;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' ||
			    maildir_base_len(de->d_name) != e->base_len ||
			    memcmp(de->d_name, e->msg.name, e->base_len) != 0)
				continue;
			free(e->msg.name);
			e->msg.name = xstrdup(de->d_name);
			e->msg.in_new = in_new;
			(void)closedir(d);
			return 1;
		}
		(void)closedir(d);
	}
	e->gone = 1;
	return 0;
}

/* The error for an operation on e that failed with errno e. */
static const char *
msg_error(struct mailbox *mb, const struct entry *e, const char *what, int err)
{
	const char *sub = e->msg.in_new ? "new" : "cur";

	if (err == ELOOP)
		return err_fmt("%s %s/%s/%s: refusing to follow a symlink", what,
		    log_safe(mb->path), sub, log_safe(e->msg.name));
	return err_fmt("%s %s/%s/%s: %s", what, log_safe(mb->path), sub,
	    log_safe(e->msg.name), strerror(err));
}

/*
 * One try of an operation on e's file under the name e has now (struct
 * msg_op).  1 done, 0 the name is gone (ENOENT: another client renamed
 * or removed it), -1 failed with errno.
 */
struct msg_op {
	const char *what;	/* for the error: "open", "rename", "unlink" */
	int (*try)(struct mailbox *mb, struct entry *e, void *arg);
};

/*
 * Run op on e, finding the message again by its base name whenever its
 * name is gone, up to REFIND_TRIES times.  1 done, 0 the message is gone,
 * -1 with *error_r.
 */
static int
msg_retry(struct mailbox *mb, struct entry *e, const struct msg_op *op,
    void *arg, const char **error_r)
{
	int r;

	for (int tries = 0; !e->gone && tries < REFIND_TRIES; tries++) {
		if ((r = op->try(mb, e, arg)) > 0)
			return 1;
		if (r < 0) {
			*error_r = msg_error(mb, e, op->what, errno);
			return -1;
		}
		if ((r = refind(mb, e, error_r)) <= 0)
			return r;
	}
	if (e->gone)
		return 0;
	*error_r = msg_error(mb, e, op->what, EAGAIN);
	return -1;
}

/* Open e's file into *(int *)arg: a regular file, no symlink, blocking. */
static int
try_open(struct mailbox *mb, struct entry *e, void *arg)
{
	int dfd = e->msg.in_new ? mb->md.new : mb->md.cur;
	struct stat sb;
	/* O_NONBLOCK: a FIFO put in its place must not hang us. */
	int fd = openat(dfd, e->msg.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || fcntl(fd, F_SETFL, 0) < 0) {
		(void)close(fd);
		errno = EINVAL;
		return -1;
	}
	*(int *)arg = fd;
	return 1;
}

int
mailbox_msg_open(struct mailbox *mb, size_t i, int *fd_r, const char **error_r)
{
	static const struct msg_op op = { "open", try_open };
	int fd = -1, r;

	if ((r = msg_retry(mb, entry_get(mb, i), &op, &fd, error_r)) == 1)
		*fd_r = fd;
	return r;
}

/* The file name for e with flag added: in cur/ form, flags sorted and
 * unique (malloc'd). */
static char *
flagged_name(const struct entry *e, char flag)
{
	const char *name = e->msg.name, *info = strchr(name, ':');
	unsigned char have[256] = { 0 };
	struct buf b = BUF_INIT;

	if (info != NULL && strncmp(info, ":2,", 3) == 0)
		for (const char *f = info + 3; *f != '\0'; f++)
			have[(unsigned char)*f] = 1;
	have[(unsigned char)flag] = 1;
	if (buf_append(&b, name, info != NULL ? (size_t)(info - name) : strlen(name)) < 0 ||
	    buf_puts(&b, ":2,") < 0)
		log_panic("event=mailbox_flag error=\"buffer full\"");
	for (int c = 1; c < 256; c++)
		if (have[c] && buf_putc(&b, (char)c) < 0)
			log_panic("event=mailbox_flag error=\"buffer full\"");
	return buf_steal(&b);
}

/* Add the flag *(char *)arg to e's name (moving it into cur/). */
static int
try_flag(struct mailbox *mb, struct entry *e, void *arg)
{
	int dfd = e->msg.in_new ? mb->md.new : mb->md.cur;
	char *to = flagged_name(e, *(const char *)arg);
	int err;

	if (!e->msg.in_new && strcmp(to, e->msg.name) == 0) {
		free(to);
		return 1;	/* already set */
	}
	if (renameat(dfd, e->msg.name, mb->md.cur, to) == 0) {
		free(e->msg.name);
		e->msg.name = to;
		e->msg.in_new = 0;
		return 1;
	}
	err = errno;
	free(to);
	errno = err;
	return err == ENOENT ? 0 : -1;
}

int
mailbox_msg_flag(struct mailbox *mb, size_t i, char flag, const char **error_r)
{
	static const struct msg_op op = { "rename", try_flag };
	struct entry *e = entry_get(mb, i);

	if (!((flag >= 'A' && flag <= 'Z') || (flag >= 'a' && flag <= 'z'))) {
		*error_r = err_fmt("bad maildir flag 0x%02x", (unsigned char)flag);
		return -1;
	}
	return msg_retry(mb, e, &op, &flag, error_r);
}

/* Unlink e's file. */
static int
try_expunge(struct mailbox *mb, struct entry *e, void *arg)
{
	int dfd = e->msg.in_new ? mb->md.new : mb->md.cur;

	(void)arg;
	if (unlinkat(dfd, e->msg.name, 0) == 0) {
		e->gone = 1;
		return 1;
	}
	return errno == ENOENT ? 0 : -1;
}

int
mailbox_msg_expunge(struct mailbox *mb, size_t i, const char **error_r)
{
	static const struct msg_op op = { "unlink", try_expunge };

	return msg_retry(mb, entry_get(mb, i), &op, NULL, error_r);
}
