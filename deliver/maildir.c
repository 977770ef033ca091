/*
 * maildir: one message into a Maildir of the mail store, per the maildir
 * spec (tmp/ -> fsync -> new/ -> fsync new/), with Maildir++ folders and
 * quota, never following a symlink below the store.  See maildir.h.
 * Delivery is split in two so that local(8) can commit in groups:
 * maildir_prepare() checks and writes the file into tmp/ (no fsync);
 * maildir_commit() -- thread-safe, only syscalls on its own fds -- starts
 * every file's writeback, fsyncs each file, links it into new/ and then
 * fsyncs each distinct new/ once for the whole batch; maildir_finish()
 * reports, updates maildirsize and frees.
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
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "agentproto.h"
#include "log.h"
#include "maildir.h"
#include "mstore.h"
#include "xalloc.h"

#define COPY_CHUNK 65536

struct maildir_store {
	int fd;			/* the mail store directory */
	char *host;		/* hostname, encoded for file names */
	pid_t pid;
	unsigned long counter;	/* deliveries by this process */
};

/* Set *res. */
static void
result(struct maildir_result *res, int status, const char *esc, const char *text)
{
	res->status = status;
	res->esc = esc;
	res->text = text;
}

/* Close an fd if open and mark it closed. */
static void
close_fd(int *fdp)
{
	if (*fdp >= 0)
		(void)close(*fdp);
	*fdp = -1;
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
	*store_r = st;
	return 0;
}

void
maildir_store_close(struct maildir_store **storep)
{
	struct maildir_store *st = *storep;

	if (st == NULL)
		return;
	close_fd(&st->fd);
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
	int fd, r;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (d = fdopendir(fd)) == NULL) {
		*error_r = err_fmt("read mailbox: %s", strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] == '.' && strcasecmp(de->d_name + 1, tag) == 0) {
			found = xstrdup(de->d_name);
			break;
		}
	(void)closedir(d);
	if (found == NULL)
		return 0;
	r = mstore_dir_open(dirfd, found, 0, fd_r, error_r);
	free(found);
	return r;
}

/* Write all n bytes.  0, or -1 with errno. */
static int
write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Copy size bytes from in at offset to out.  0, or -1 with *error_r. */
static int
copy_body(int in, uint64_t offset, uint64_t size, int out, const char **error_r)
{
	char *chunk = xmalloc(COPY_CHUNK);
	int ret = 0;

	while (size > 0) {
		size_t want = size > COPY_CHUNK ? COPY_CHUNK : (size_t)size;
		ssize_t n = pread(in, chunk, want, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = n < 0 ? err_fmt("read queue file: %s", strerror(errno)) :
			    "queue file is shorter than announced";
			ret = -1;
			break;
		}
		if (write_all(out, chunk, (size_t)n) < 0) {
			*error_r = err_fmt("write: %s", strerror(errno));
			ret = -1;
			break;
		}
		offset += (uint64_t)n;
		size -= (uint64_t)n;
	}
	free(chunk);
	return ret;
}

static void quota_add(int dirfd, uint64_t size);

/* A written message awaiting maildir_commit(). */
struct maildir_pending {
	int fd;			/* the file in tmp/, written, not yet synced */
	int tmp, new;		/* its Maildir's tmp/ and new/ (dups) */
	int top;		/* the Maildir for maildirsize; -1: no quota */
	dev_t new_dev;		/* new/'s identity, to sync it once a batch */
	ino_t new_ino;
	uint64_t size;
	char *name, *mailbox, *folder;
	int committed;		/* maildir_commit() ran on it */
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
 * Write the file name in m->tmp (the prefix, then the message), not yet
 * synced or linked: maildir_commit() does that.  0 with *p_r, or -1 with
 * *error_r and nothing left behind.
 */
static int
write_message(const struct mstore_maildir *m, const char *name, const struct buf *prefix,
    const struct maildir_msg *msg, struct maildir_pending **p_r,
    const char **error_r)
{
	struct maildir_pending *p;
	struct stat sb;
	int fd;

	fd = openat(m->tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = err_fmt("create tmp/%s: %s", name, strerror(errno));
		return -1;
	}
	if (write_all(fd, prefix->data, prefix->len) < 0) {
		*error_r = err_fmt("write: %s", strerror(errno));
		goto fail;
	}
	if (copy_body(msg->fd, msg->offset, msg->size, fd, error_r) < 0)
		goto fail;
	if (fstat(m->new, &sb) < 0) {
		*error_r = err_fmt("stat new/: %s", strerror(errno));
		goto fail;
	}
	p = xcalloc(1, sizeof(*p));
	p->fd = fd;
	p->tmp = p->new = p->top = -1;
	if ((p->tmp = fcntl(m->tmp, F_DUPFD_CLOEXEC, 0)) < 0 ||
	    (p->new = fcntl(m->new, F_DUPFD_CLOEXEC, 0)) < 0) {
		*error_r = err_fmt("dup: %s", strerror(errno));
		close_fd(&p->tmp);
		free(p);
		goto fail;
	}
	p->new_dev = sb.st_dev;
	p->new_ino = sb.st_ino;
	p->name = xstrdup(name);
	*p_r = p;
	return 0;
fail:
	(void)close(fd);
	(void)unlinkat(m->tmp, name, 0);
	return -1;
}

void
maildir_commit(struct maildir_pending *const *ps, size_t n)
{
	size_t i, j;

	/* Start every file's writeback, then wait for each: the disk sees
	 * the whole batch at once. */
	for (i = 0; i < n; i++)
		(void)sync_file_range(ps[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < n; i++) {
		struct maildir_pending *p = ps[i];

		p->committed = 1;
		if (fsync(p->fd) < 0)
			pending_fail(p, "fsync", errno);
		else if (close(p->fd) < 0) {
			p->fd = -1;
			pending_fail(p, "close", errno);
		}
		p->fd = -1;
		if (p->failed)
			continue;
		if (linkat(p->tmp, p->name, p->new, p->name, 0) < 0) {
			if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS) {
				pending_fail(p, "link into new/", errno);
				continue;
			}
			/* No hard links here: rename (the name is unique). */
			if (renameat(p->tmp, p->name, p->new, p->name) < 0) {
				pending_fail(p, "rename into new/", errno);
				continue;
			}
		}
		p->linked = 1;
		(void)unlinkat(p->tmp, p->name, 0);
	}
	/* Each new/ directory once, for every file linked into it. */
	for (i = 0; i < n; i++) {
		struct maildir_pending *p = ps[i];
		int err = 0;

		if (!p->linked || p->failed || p->dir_synced)
			continue;
		if (fsync(p->new) < 0)
			err = errno;
		for (j = i; j < n; j++) {
			struct maildir_pending *q = ps[j];

			if (!q->linked || q->failed || q->dir_synced ||
			    q->new_dev != p->new_dev || q->new_ino != p->new_ino)
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
		(void)unlinkat(p->tmp, p->name, 0);
		if (p->linked)
			(void)unlinkat(p->new, p->name, 0);
	}
}

void
maildir_finish(struct maildir_pending **pp, struct maildir_result *res)
{
	struct maildir_pending *p = *pp;

	if (p == NULL)
		return;
	if (!p->committed) {
		close_fd(&p->fd);
		(void)unlinkat(p->tmp, p->name, 0);
		pending_fail(p, "delivery abandoned", ECANCELED);
	}
	if (p->failed) {
		log_error("event=maildir_write_failed mailbox=%s error=\"%s\"",
		    log_safe(p->mailbox), p->error);
		result(res, AGENT_TEMP, "4.3.0", err_fmt("mail store write failed: %s",
		    p->error));
	} else {
		if (p->top >= 0)
			quota_add(p->top, p->size);
		log_info("event=delivered mailbox=%s folder=%s file=%s size=%" PRIu64,
		    log_safe(p->mailbox), p->folder != NULL ? log_safe(p->folder) :
		    "INBOX", log_safe(p->name), p->size);
		result(res, AGENT_OK, "2.0.0", "delivered to mailbox");
	}
	close_fd(&p->fd);
	close_fd(&p->tmp);
	close_fd(&p->new);
	close_fd(&p->top);
	free(p->name);
	free(p->mailbox);
	free(p->folder);
	free(p);
	*pp = NULL;
}

/* Skip spaces and tabs. */
static const char *
skip_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	return s;
}

/* Parse an optionally signed decimal at *sp, advancing it.  0 or -1. */
static int
parse_num(const char **sp, const char *end, int64_t *v_r)
{
	const char *s = *sp;
	int neg = 0;
	int64_t v = 0;

	if (s < end && *s == '-') {
		neg = 1;
		s++;
	}
	if (s >= end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*v_r = neg ? -v : v;
	*sp = s;
	return 0;
}

int
maildir_size_parse(const char *text, size_t len, uint64_t *quota_r,
    uint64_t *bytes_r, uint64_t *count_r)
{
	const char *s = text, *end = text + len;
	uint64_t quota = 0;
	int64_t bytes = 0, count = 0;

	/* "<bytes>S" and/or "<count>C", comma-separated. */
	for (;;) {
		int64_t v;

		if (parse_num(&s, end, &v) < 0 || v < 0 || s >= end)
			return 0;
		if (*s == 'S')
			quota = (uint64_t)v;
		else if (*s != 'C')
			return 0;
		s++;
		if (s < end && *s == ',') {
			s++;
			continue;
		}
		break;
	}
	if (s >= end || *s++ != '\n')
		return 0;
	while (s < end) {
		int64_t b, c;

		s = skip_ws(s, end);
		if (parse_num(&s, end, &b) < 0)
			return 0;
		s = skip_ws(s, end);
		if (parse_num(&s, end, &c) < 0)
			return 0;
		s = skip_ws(s, end);
		if (s >= end || *s++ != '\n')
			return 0;	/* a partial last line: recalculate */
		if ((b > 0 && bytes > INT64_MAX - b) || (c > 0 && count > INT64_MAX - c))
			return 0;
		bytes += b;
		count += c;
	}
	*quota_r = quota;
	*bytes_r = bytes < 0 ? 0 : (uint64_t)bytes;
	*count_r = count < 0 ? 0 : (uint64_t)count;
	return 1;
}

/* Add the messages in subdirectory sub of dirfd to the sums.  0 or -1. */
static int
sum_dir(int dirfd, const char *sub, uint64_t *bytes, uint64_t *count,
    const char **error_r)
{
	DIR *d;
	struct dirent *de;
	int fd, r;

	if ((r = mstore_dir_open(dirfd, sub, 0, &fd, error_r)) <= 0)
		return r;
	if ((d = fdopendir(fd)) == NULL) {
		*error_r = err_fmt("read %s: %s", sub, strerror(errno));
		(void)close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		const char *sz;
		struct stat sb;
		uint64_t size = 0;

		if (de->d_name[0] == '.')
			continue;
		if ((sz = strstr(de->d_name, ",S=")) != NULL &&
		    sz[3] >= '0' && sz[3] <= '9')
			size = strtoull(sz + 3, NULL, 10);
		else if (fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			size = (uint64_t)sb.st_size;
		else
			continue;	/* gone meanwhile (expunged) */
		*bytes += size;
		(*count)++;
	}
	(void)closedir(d);
	return 0;
}

/* Recalculate the usage of the Maildir at dirfd (INBOX and every
 * folder) and rewrite maildirsize.  0 or -1. */
static int
quota_recalc(struct maildir_store *st, int dirfd, uint64_t quota,
    uint64_t *bytes_r, uint64_t *count_r, const char **error_r)
{
	uint64_t bytes = 0, count = 0;
	struct buf name = BUF_INIT, text = BUF_INIT;
	DIR *d;
	struct dirent *de;
	int fd, tmp = -1, ret = -1;

	if (sum_dir(dirfd, "new", &bytes, &count, error_r) < 0 ||
	    sum_dir(dirfd, "cur", &bytes, &count, error_r) < 0)
		return -1;
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (d = fdopendir(fd)) == NULL) {
		*error_r = err_fmt("read mailbox: %s", strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		int ffd;

		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (mstore_dir_open(dirfd, de->d_name, 0, &ffd, error_r) <= 0)
			continue;	/* not a folder (or a symlink): not counted */
		if (sum_dir(ffd, "new", &bytes, &count, error_r) < 0 ||
		    sum_dir(ffd, "cur", &bytes, &count, error_r) < 0) {
			(void)close(ffd);
			(void)closedir(d);
			return -1;
		}
		(void)close(ffd);
	}
	(void)closedir(d);

	/* Write it beside the messages in tmp/, then rename into place. */
	maildir_unique_name(st, &name);
	if (buf_puts(&name, ".maildirsize") < 0 ||
	    buf_printf(&text, "%" PRIu64 "S\n%" PRIu64 " %" PRIu64 "\n",
	    quota, bytes, count) < 0)
		log_panic("event=maildirsize error=\"buffer full\"");
	if (mstore_dir_open(dirfd, "tmp", 1, &tmp, error_r) < 0)
		goto out;
	fd = openat(tmp, name.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text.data, text.len) < 0 ||
	    renameat(tmp, name.data, dirfd, "maildirsize") < 0) {
		*error_r = err_fmt("write maildirsize: %s", strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		(void)unlinkat(tmp, name.data, 0);
		goto out;
	}
	(void)close(fd);
	*bytes_r = bytes;
	*count_r = count;
	ret = 0;
out:
	close_fd(&tmp);
	buf_free(&name);
	buf_free(&text);
	return ret;
}

int
maildir_quota_usage(struct maildir_store *st, int dirfd, uint64_t quota,
    uint64_t *bytes_r, uint64_t *count_r, const char **error_r)
{
	char text[MAILDIR_SIZE_MAX_FILE + 1];
	struct stat sb;
	uint64_t q, bytes, count;
	ssize_t n = -1;
	int fd;

	fd = openat(dirfd, "maildirsize", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    sb.st_size <= MAILDIR_SIZE_MAX_FILE)
			n = pread(fd, text, sizeof(text), 0);
		(void)close(fd);
	}
	if (n >= 0 && n <= MAILDIR_SIZE_MAX_FILE &&
	    maildir_size_parse(text, (size_t)n, &q, &bytes, &count) == 1 && q == quota) {
		*bytes_r = bytes;
		*count_r = count;
		return 0;
	}
	return quota_recalc(st, dirfd, quota, bytes_r, count_r, error_r);
}

/* Append one "<size> 1" line to maildirsize (best effort: a lost line is
 * corrected at the next recalculation). */
static void
quota_add(int dirfd, uint64_t size)
{
	char line[64];
	int fd, n;

	fd = openat(dirfd, "maildirsize", O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%" PRIu64 " 1\n", size);
	if (n > 0 && write_all(fd, line, (size_t)n) < 0)
		log_warn("event=maildirsize_append_failed error=\"%s\"", strerror(errno));
	(void)close(fd);
}

int
maildir_read_header(int fd, uint64_t offset, uint64_t size, struct buf *out,
    const char **error_r)
{
	uint64_t limit = size < MAILDIR_MAX_HEADER ? size : MAILDIR_MAX_HEADER;
	size_t scanned = 0;

	buf_reset(out);
	if (limit > 0) {
		/* A message opening with the empty line has no header. */
		char c;

		if (pread(fd, &c, 1, (off_t)offset) == 1 && c == '\n')
			return 0;
	}
	while (out->len < limit) {
		size_t want = limit - out->len > COPY_CHUNK ? COPY_CHUNK :
		    (size_t)(limit - out->len);
		ssize_t n;
		char *end;

		if (buf_reserve(out, want) < 0)
			log_panic("event=maildir_header error=\"buffer full\"");
		n = pread(fd, out->data + out->len, want, (off_t)(offset + out->len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = err_fmt("read queue file: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if ((end = memmem(out->data + (scanned > 0 ? scanned - 1 : 0),
		    out->len - (scanned > 0 ? scanned - 1 : 0), "\n\n", 2)) != NULL) {
			buf_truncate(out, (size_t)(end - out->data) + 1);
			return 0;
		}
		scanned = out->len;
	}
	return 0;
}

/* Whether one field (name:value, continuation lines included) is a
 * Delivered-To naming address. */
static int
field_matches(const char *f, size_t n, const char *address)
{
	static const char name[] = "delivered-to";
	const size_t nlen = sizeof(name) - 1;
	const char *s, *end = f + n, *v, *ve;
	size_t alen = strlen(address);

	if (n <= nlen || strncasecmp(f, name, nlen) != 0)
		return 0;
	s = skip_ws(f + nlen, end);
	if (s >= end || *s != ':')
		return 0;
	/* The value without surrounding white space (folding included). */
	v = s + 1;
	while (v < end && (*v == ' ' || *v == '\t' || *v == '\n'))
		v++;
	ve = end;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\n'))
		ve--;
	if (ve - v >= 2 && *v == '<' && ve[-1] == '>') {
		v++;
		ve--;
	}
	return (size_t)(ve - v) == alen && strncasecmp(v, address, alen) == 0;
}

int
maildir_has_delivered_to(const char *header, size_t len, const char *address)
{
	const char *s = header, *end = header + len;

	while (s < end) {
		const char *f = s, *nl;

		/* A field runs to the end of the line, plus any line that
		 * starts with white space (folding). */
		for (;;) {
			nl = memchr(s, '\n', (size_t)(end - s));
			s = nl == NULL ? end : nl + 1;
			if (s >= end || (*s != ' ' && *s != '\t'))
				break;
		}
		if (field_matches(f, (size_t)(s - f), address))
			return 1;
	}
	return 0;
}

/* Open the delivery target: the Maildir at mailbox (created if missing)
 * and, when a folder for tag exists, that folder instead.  *top is the
 * Maildir itself (for maildirsize).  0 or -1 with *error_r. */
static int
target_open(struct maildir_store *st, const char *mailbox, const char *tag,
    struct mstore_maildir *top, struct mstore_maildir *dst, const char **error_r)
{
	int ffd, r;

	if (mstore_path_open(st->fd, mailbox, 1, &top->fd, error_r) < 0 ||
	    mstore_maildir_subdirs(top, error_r) < 0)
		return -1;
	if (tag == NULL || !tag_safe(tag))
		return 0;
	if ((r = folder_open(top->fd, tag, &ffd, error_r)) < 0)
		return -1;
	if (r == 0)
		return 0;
	dst->fd = ffd;
	return mstore_maildir_subdirs(dst, error_r);
}

void
maildir_prepare(struct maildir_store *st, const char *mailbox,
    const char *tag, uint64_t quota, const struct maildir_msg *m,
    const char *header, size_t header_len, struct maildir_result *res,
    struct maildir_pending **p_r)
{
	struct maildir_pending *p;
	struct mstore_maildir top = MSTORE_MAILDIR_INIT, folder = MSTORE_MAILDIR_INIT;
	const struct mstore_maildir *dst;
	struct buf prefix = BUF_INIT, name = BUF_INIT;
	const char *error;
	uint64_t size, used = 0, count = 0;

	/* Check: a loop, then the target, then the quota. */
	if (maildir_has_delivered_to(header, header_len, m->delivered_to)) {
		result(res, AGENT_PERM, "5.4.6", err_fmt("mail forwarding loop for %s",
		    log_safe(m->delivered_to)));
		return;
	}
	if (target_open(st, mailbox, tag, &top, &folder, &error) < 0) {
		log_error("event=mailbox_unusable mailbox=%s error=\"%s\"",
		    log_safe(mailbox), error);
		result(res, AGENT_TEMP, "4.3.0", err_fmt("mailbox unusable: %s", error));
		goto out;
	}
	dst = folder.fd >= 0 ? &folder : &top;
	if (buf_printf(&prefix, "Return-Path: <%s>\nDelivered-To: %s\n",
	    m->return_path, m->delivered_to) < 0)
		log_panic("event=maildir_prefix error=\"buffer full\"");
	size = xadd(prefix.len, m->size);
	if (quota > 0) {
		if (maildir_quota_usage(st, top.fd, quota, &used, &count, &error) < 0) {
			log_error("event=quota_failed mailbox=%s error=\"%s\"",
			    log_safe(mailbox), error);
			result(res, AGENT_TEMP, "4.3.0", err_fmt("quota check failed: %s", error));
			goto out;
		}
		if (used > quota || size > quota - used) {
			result(res, AGENT_TEMP, "4.2.2", err_fmt("mailbox full (quota "
			    "%" PRIu64 " bytes, %" PRIu64 " in use, message %" PRIu64 ")",
			    quota, used, size));
			goto out;
		}
	}

	/* Proceed: write it. */
	maildir_unique_name(st, &name);
	if (buf_printf(&name, ",S=%" PRIu64, size) < 0)
		log_panic("event=maildir_name error=\"buffer full\"");
	if (write_message(dst, name.data, &prefix, m, &p, &error) < 0) {
		log_error("event=maildir_write_failed mailbox=%s error=\"%s\"",
		    log_safe(mailbox), error);
		result(res, AGENT_TEMP, "4.3.0", err_fmt("mail store write failed: %s", error));
		goto out;
	}
	if (quota > 0) {
		p->top = top.fd;
		top.fd = -1;
	}
	p->size = size;
	p->mailbox = xstrdup(mailbox);
	p->folder = dst == &folder ? xstrdup(tag) : NULL;
	*p_r = p;
	result(res, AGENT_OK, "2.0.0", "written, not yet committed");
out:
	mstore_maildir_close(&top);
	mstore_maildir_close(&folder);
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
