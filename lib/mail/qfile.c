/*
 * qfile: queue files.  Writing: each message is an anonymous O_TMPFILE
 * inode in new/ (one file creation, invisible and self-cleaning until it
 * is named), written through a 64 KiB buffer; qfile_commit() makes a
 * batch durable with group commit (start write-back of every file, fsync
 * each, link each into new/ under its queue id, fsync new/ once).
 * Filesystems without O_TMPFILE (or a process without /proc) get the
 * classic tmp/ID + fsync + rename into new/ (lib/core/fsutil's
 * fs_rename_unique: never two names for one file).  Which one is probed
 * once per file system (fs_caps).  Reading: a strict parser
 * of the envelope through a bounded buffer, because qmgr trusts neither
 * smtpd nor local users.  The format is described in qfile.h and
 * docs/design.md ("Queue files").
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ascii.h"
#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "qfile.h"
#include "smtp.h"
#include "xalloc.h"

#define QFILE_BUF_SIZE	65536		/* the writer's buffer */
#define QFILE_LINE_MAX	65536		/* an envelope line, without its LF */
#define QFILE_RCPT_MAX	1000000		/* recipients per message */
#define QFILE_ENV_MAX	(256u << 20)	/* a whole envelope, in bytes */
#define QFILE_VERSION	"POSTERN-QUEUE 1"
#define NOTIFY_MASK	(SMTP_NOTIFY_NEVER | SMTP_NOTIFY_SUCCESS | \
			 SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY)

/* Digits of the queue id, in ASCII order so ids sort with strcmp(). */
static const char b62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const char *const protos[] = {
	"SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "LOCAL",
};
/* Indexed by enum smtp_ret. */
static const char *const rets[] = { "NONE", "FULL", "HDRS" };

/* Tests only: always take the tmp/ path. */
static int force_tmp;

struct qfile_writer {
	int fd;			/* the message file */
	int newfd;		/* DIR/new: O_RDONLY, or O_PATH if unreadable */
	struct fs_caps caps;	/* of new/'s file system */
	int newfd_readable;	/* newfd can be fsync'd */
	int tmpfd;		/* DIR/tmp on the fallback path, else -1 */
	dev_t dev;		/* new/'s identity, to sync each directory once */
	ino_t ino;
	int linked;		/* named in new/ */
	int err;		/* errno of the first failure, 0 if none */
	const char *op;		/* what failed */
	char id[QFILE_ID_MAX];
	char *buf;
	size_t len;		/* bytes waiting in buf */
	uint64_t size;		/* message bytes accepted by qfile_write */
};

void
qfile_set_force_tmp(int on)
{
	force_tmp = on;
}

/* --- envelopes ------------------------------------------------------- */

void
envelope_free(struct envelope *e)
{
	size_t i;

	free(e->sender);
	free(e->envid);
	free(e->client);
	free(e->helo);
	free(e->proto);
	free(e->tls);
	free(e->auth);
	for (i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].orcpt);
	}
	free(e->rcpts);
	memset(e, 0, sizeof(*e));
}

void
envelope_add_rcpt(struct envelope *e, const char *addr, unsigned notify,
    const char *orcpt)
{
	size_t n = e->nrcpts;

	/* The capacity is implied: 4, then doubling at each power of two. */
	if (n == 0 || (n >= 4 && (n & (n - 1)) == 0))
		e->rcpts = xreallocarray(e->rcpts, n == 0 ? 4 : xmul(n, 2),
		    sizeof(*e->rcpts));
	e->rcpts[n].addr = xstrdup(addr);
	e->rcpts[n].notify = notify;
	e->rcpts[n].orcpt = orcpt != NULL ? xstrdup(orcpt) : NULL;
	e->nrcpts = n + 1;
}

/* Whether s is one of the n words in list; its index in *i_r. */
static int
word_index(const char *const *list, size_t n, const char *s, size_t len,
    size_t *i_r)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0) {
			*i_r = i;
			return 1;
		}
	}
	return 0;
}

/* Check what the writer is about to record.  0, or -1 with *error_r. */
static int
envelope_check(const struct envelope *e, const char **error_r)
{
	size_t i;

	if (e->sender == NULL || e->client == NULL || e->proto == NULL) {
		*error_r = "envelope without sender, client or proto";
		return -1;
	}
	if (!word_index(protos, sizeof(protos) / sizeof(protos[0]), e->proto,
	    strlen(e->proto), &i)) {
		*error_r = err_fmt("unknown proto %s", log_safe(e->proto));
		return -1;
	}
	if ((e->body_8bit != 0 && e->body_8bit != 1) ||
	    (e->smtputf8 != 0 && e->smtputf8 != 1) ||
	    e->ret < SMTP_RET_NONE || e->ret > SMTP_RET_HDRS) {
		*error_r = "bad body, smtputf8 or ret value";
		return -1;
	}
	if (e->nrcpts == 0 || e->nrcpts > QFILE_RCPT_MAX) {
		*error_r = err_fmt("%zu recipients (1 to %u allowed)", e->nrcpts,
		    QFILE_RCPT_MAX);
		return -1;
	}
	for (i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].addr == NULL || e->rcpts[i].addr[0] == '\0' ||
		    (e->rcpts[i].notify & ~(unsigned)NOTIFY_MASK) != 0) {
			*error_r = "empty recipient or bad NOTIFY bits";
			return -1;
		}
	}
	return 0;
}

/* Whether byte c must be written as %XX. */
static int
must_escape(unsigned char c)
{
	return c <= 0x20 || c >= 0x7f || c == '%';
}

/* Append s, %XX-escaped.  0, or -1 if the line would grow past its cap.
 * Runs of plain bytes are appended at once (smtpd writes an envelope per
 * message). */
static int
put_escaped(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s, *run;
	char esc[3];

	while (*p != '\0') {
		for (run = p; *p != '\0' && !must_escape(*p); p++)
			continue;
		if (p > run && buf_append(b, run, (size_t)(p - run)) < 0)
			return -1;
		if (*p == '\0')
			break;
		esc[0] = '%';
		esc[1] = hex[*p >> 4];
		esc[2] = hex[*p & 0xf];
		if (buf_append(b, esc, sizeof(esc)) < 0)
			return -1;
		p++;
	}
	return 0;
}

/* --- writing --------------------------------------------------------- */

/* Record the first failure of w. */
static void
writer_fail(struct qfile_writer *w, const char *op, int err)
{
	if (w->err == 0) {
		w->op = op;
		w->err = err != 0 ? err : EIO;
	}
}

/* write(2) all of p, or record the failure.  0 or -1. */
static int
write_all(struct qfile_writer *w, const char *p, size_t n)
{
	ssize_t k;

	while (n > 0) {
		k = write(w->fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			writer_fail(w, "write", k < 0 ? errno : ENOSPC);
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Write out the buffered bytes.  0 or -1. */
static int
writer_flush(struct qfile_writer *w)
{
	size_t n = w->len;

	if (w->err != 0)
		return -1;
	w->len = 0;
	return write_all(w, w->buf, n);
}

/* Buffer n bytes (large writes on an empty buffer go straight through). */
static int
writer_put(struct qfile_writer *w, const void *p, size_t n)
{
	const char *s = p;
	size_t k;

	if (w->err != 0)
		return -1;
	while (n > 0) {
		if (w->len == 0 && n >= QFILE_BUF_SIZE)
			return write_all(w, s, n);
		k = QFILE_BUF_SIZE - w->len;
		if (k > n)
			k = n;
		memcpy(w->buf + w->len, s, k);
		w->len += k;
		s += k;
		n -= k;
		if (w->len == QFILE_BUF_SIZE && writer_flush(w) < 0)
			return -1;
	}
	return 0;
}

/* Close whatever w holds and free it (removes nothing). */
static void
writer_free(struct qfile_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->newfd >= 0)
		close(w->newfd);
	if (w->tmpfd >= 0)
		close(w->tmpfd);
	free(w->buf);
	free(w);
}

/* Remove every name w has (tmp/ID, or new/ID if already linked). */
static void
writer_unlink(struct qfile_writer *w)
{
	if (w->linked)
		(void)unlinkat(w->newfd, w->id, 0);
	else if (w->tmpfd >= 0)
		(void)unlinkat(w->tmpfd, w->id, 0);
	w->linked = 0;
}

/* Terminate the current envelope line, check its length, queue it. */
static int
env_emit(struct qfile_writer *w, struct buf *line, uint64_t *total,
    const char **error_r)
{
	if (buf_putc(line, '\n') < 0) {
		*error_r = "envelope line too long";
		return -1;
	}
	*total += line->len;
	if (*total > QFILE_ENV_MAX) {
		*error_r = "envelope too large";
		return -1;
	}
	if (writer_put(w, line->data, line->len) < 0) {
		*error_r = err_fmt("write: %s", strerror(w->err));
		return -1;
	}
	buf_reset(line);
	return 0;
}

/* One "name value" line with an escaped value. */
static int
env_field(struct qfile_writer *w, struct buf *line, uint64_t *total,
    const char *name, const char *value, const char **error_r)
{
	if (buf_printf(line, "%s ", name) < 0 || put_escaped(line, value) < 0) {
		*error_r = err_fmt("envelope line too long (%s)", name);
		return -1;
	}
	return env_emit(w, line, total, error_r);
}

/* Write the whole envelope and its blank line into w.  0 or -1. */
static int
envelope_write(struct qfile_writer *w, const struct envelope *e,
    const char **error_r)
{
	struct buf line;
	uint64_t total = 0;
	size_t i;
	int r = -1;

	buf_init(&line, QFILE_LINE_MAX);	/* the LF makes max + 1 */
	line.max = QFILE_LINE_MAX + 1;
#define TRY(x) do { if ((x) < 0) goto out; } while (0)
#define FMT(...) do { if (buf_printf(&line, __VA_ARGS__) < 0) { \
	*error_r = "envelope line too long"; goto out; } } while (0)
#define ESC(v) do { if (put_escaped(&line, (v)) < 0) { \
	*error_r = "envelope line too long"; goto out; } } while (0)
	FMT("%s", QFILE_VERSION);
	TRY(env_emit(w, &line, &total, error_r));
	FMT("id %s", e->id);
	TRY(env_emit(w, &line, &total, error_r));
	FMT("arrival %" PRIu64 ".%06u", e->arrival_us / 1000000,
	    (unsigned)(e->arrival_us % 1000000));
	TRY(env_emit(w, &line, &total, error_r));
	if (e->sender[0] == '\0' || strcmp(e->sender, "<>") == 0) {
		/* "<>" is the null sender; a literal "<>" is escaped. */
		FMT("sender %s", e->sender[0] == '\0' ? "<>" : "%3C%3E");
		TRY(env_emit(w, &line, &total, error_r));
	} else
		TRY(env_field(w, &line, &total, "sender", e->sender, error_r));
	FMT("body %s", e->body_8bit ? "8BITMIME" : "7BIT");
	TRY(env_emit(w, &line, &total, error_r));
	FMT("smtputf8 %d", e->smtputf8);
	TRY(env_emit(w, &line, &total, error_r));
	FMT("ret %s", rets[e->ret]);
	TRY(env_emit(w, &line, &total, error_r));
	if (e->envid != NULL)
		TRY(env_field(w, &line, &total, "envid", e->envid, error_r));
	TRY(env_field(w, &line, &total, "client", e->client, error_r));
	if (e->helo != NULL)
		TRY(env_field(w, &line, &total, "helo", e->helo, error_r));
	TRY(env_field(w, &line, &total, "proto", e->proto, error_r));
	if (e->tls != NULL)
		TRY(env_field(w, &line, &total, "tls", e->tls, error_r));
	if (e->auth != NULL)
		TRY(env_field(w, &line, &total, "auth", e->auth, error_r));
	for (i = 0; i < e->nrcpts; i++) {
		const struct qrcpt *rc = &e->rcpts[i];

		FMT("rcpt ");
		ESC(rc->addr);
		FMT(" %u ", rc->notify);
		/* "-" is none (an empty ORCPT counts as none); "-" itself
		 * is escaped. */
		if (rc->orcpt == NULL || rc->orcpt[0] == '\0')
			FMT("-");
		else if (strcmp(rc->orcpt, "-") == 0)
			FMT("%%2D");
		else
			ESC(rc->orcpt);
		TRY(env_emit(w, &line, &total, error_r));
	}
	TRY(env_emit(w, &line, &total, error_r));	/* the blank line */
#undef TRY
#undef FMT
#undef ESC
	r = 0;
out:
	buf_free(&line);
	return r;
}

int
qfile_begin(const char *dir, struct envelope *env, struct qfile_writer **w_r,
    const char **error_r)
{
	struct qfile_writer *w;
	struct stat st;
	mode_t mode;
	int dfd;

	if (envelope_check(env, error_r) < 0)
		return -1;
	dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		*error_r = err_fmt("open %s: %s", dir, strerror(errno));
		return -1;
	}
	w = xcalloc(1, sizeof(*w));
	w->fd = w->tmpfd = -1;
	w->newfd_readable = 1;
	w->newfd = openat(dfd, "new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (w->newfd < 0 && errno == EACCES) {
		/* sendmail(1) may write and search maildrop/new but not read
		 * it: commit then syncs the entries through the files. */
		w->newfd_readable = 0;
		w->newfd = openat(dfd, "new", O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	}
	if (w->newfd < 0 || fstat(w->newfd, &st) < 0) {
		*error_r = err_fmt("open %s/new: %s", dir, strerror(errno));
		goto fail;
	}
	w->dev = st.st_dev;
	w->ino = st.st_ino;
	/*
	 * In a set-group-id directory (spool/incoming) the file gets the
	 * reader's group, so 0640; otherwise (spool/maildrop, written by
	 * users through setgid sendmail) its group is the writer's and the
	 * reader needs 0644, while the directory keeps other users out.
	 */
	mode = (st.st_mode & S_ISGID) ? 0640 : 0644;
	qfile_new_id(env->id);
	memcpy(w->id, env->id, sizeof(w->id));
	w->caps = fs_caps(w->newfd, dir);
	if (!force_tmp && w->caps.tmpfile) {
		w->fd = openat(w->newfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
		if (w->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR &&
		    errno != EINVAL) {
			*error_r = err_fmt("create in %s/new: %s", dir, strerror(errno));
			goto fail;
		}
	}
	if (w->fd < 0) {
		w->tmpfd = openat(dfd, "tmp", O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (w->tmpfd < 0) {
			*error_r = err_fmt("open %s/tmp: %s", dir, strerror(errno));
			goto fail;
		}
		w->fd = openat(w->tmpfd, w->id, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, mode);
		if (w->fd < 0) {
			*error_r = err_fmt("create %s/tmp/%s: %s", dir, w->id,
			    strerror(errno));
			close(w->tmpfd);
			w->tmpfd = -1;
			goto fail;
		}
	}
	/* The exact mode, whatever the umask. */
	if (fchmod(w->fd, mode) < 0) {
		*error_r = err_fmt("chmod queue file %s: %s", w->id, strerror(errno));
		goto fail_unlink;
	}
	w->buf = xmalloc(QFILE_BUF_SIZE);
	if (envelope_write(w, env, error_r) < 0)
		goto fail_unlink;
	close(dfd);
	*w_r = w;
	return 0;
fail_unlink:
	writer_unlink(w);
fail:
	writer_free(w);
	close(dfd);
	return -1;
}

int
qfile_write(struct qfile_writer *w, const void *p, size_t n)
{
	if (writer_put(w, p, n) < 0)
		return -1;
	w->size += n;
	return 0;
}

uint64_t
qfile_size(const struct qfile_writer *w)
{
	return w->size;
}

void
qfile_abort(struct qfile_writer **wp)
{
	if (*wp == NULL)
		return;
	writer_unlink(*wp);
	writer_free(*wp);
	*wp = NULL;
}

/* Give w its name in new/.  0, or -1 with the failure recorded. */
static int
writer_link(struct qfile_writer *w)
{
	char path[64];

	if (w->tmpfd < 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", w->fd);
		if (linkat(AT_FDCWD, path, w->newfd, w->id, AT_SYMLINK_FOLLOW) < 0) {
			writer_fail(w, "link into new/", errno);
			return -1;
		}
	} else if (fs_rename_unique(&w->caps, w->tmpfd, w->id, w->newfd, w->id) < 0) {
		writer_fail(w, "rename into new/", errno);
		return -1;
	}
	w->linked = 1;
	return 0;
}

/*
 * Make the names of ws[i] and of every later writer in the same new/
 * durable: one fsync of the directory, or -- when it cannot be opened
 * for reading -- an fsync of each file, whose link count the link just
 * changed, so the journal commit that fsync forces carries the entry
 * (ext4, XFS and btrfs all log it that way).  Marks failures.
 */
static void
sync_names(struct qfile_writer **ws, size_t n, size_t i, char *synced)
{
	struct qfile_writer *d = ws[i];
	size_t j;
	int err = 0;

	if (d->newfd_readable && fs_fsync(d->newfd, "queue-dir") < 0)
		err = errno;
	for (j = i; j < n; j++) {
		struct qfile_writer *w = ws[j];

		if (w == NULL || w->err != 0 || !w->linked || synced[j] ||
		    w->dev != d->dev || w->ino != d->ino)
			continue;
		synced[j] = 1;
		if (!d->newfd_readable && fs_fsync(w->fd, "queue-name") < 0)
			writer_fail(w, "fsync after link", errno);
		else if (err != 0)
			writer_fail(w, "fsync of new/", err);
	}
}

void
qfile_commit(struct qfile_writer **ws, size_t n, int *results, const char **error_r)
{
	char *synced = xcalloc(n ? n : 1, 1);
	size_t i;
	int failed = 0;

	/* Flush and start write-back everywhere first, so the first fsync's
	 * journal commit carries the others' block allocations too. */
	for (i = 0; i < n; i++) {
		if (ws[i] != NULL && writer_flush(ws[i]) == 0)
			(void)sync_file_range(ws[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (i = 0; i < n; i++) {
		if (ws[i] != NULL && ws[i]->err == 0 &&
		    fs_fsync(ws[i]->fd, "queue-file") < 0)
			writer_fail(ws[i], "fsync", errno);
	}
	for (i = 0; i < n; i++) {
		if (ws[i] != NULL && ws[i]->err == 0)
			(void)writer_link(ws[i]);
	}
	for (i = 0; i < n; i++) {
		if (ws[i] != NULL && ws[i]->err == 0 && ws[i]->linked && !synced[i])
			sync_names(ws, n, i, synced);
	}
	for (i = 0; i < n; i++) {
		struct qfile_writer *w = ws[i];

		if (w == NULL) {
			results[i] = -1;
			if (!failed++)
				*error_r = "no writer";
			continue;
		}
		results[i] = w->err == 0 ? 0 : -1;
		if (w->err != 0) {
			if (!failed++)
				*error_r = err_fmt("queue file %s: %s: %s", w->id,
				    w->op, strerror(w->err));
			writer_unlink(w);
		}
		writer_free(w);
		ws[i] = NULL;
	}
	free(synced);
}

/* --- queue ids ------------------------------------------------------- */

/* Write the width lowest base-62 digits of v at p. */
static void
put_b62(char *p, uint64_t v, int width)
{
	while (width-- > 0) {
		p[width] = b62[v % 62];
		v /= 62;
	}
}

void
qfile_new_id(char id[QFILE_ID_MAX])
{
	static pid_t pid;
	static uint64_t last_us, seq, rng;
	struct timespec ts;
	uint64_t us, x;
	pid_t now_pid = getpid();

	if (now_pid != pid) {
		/* First call, or a forked child: fresh state and seed. */
		pid = now_pid;
		last_us = seq = 0;
		if (getrandom(&rng, sizeof(rng), GRND_NONBLOCK) != sizeof(rng))
			rng = 0;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		rng ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)pid;
		rng |= 1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	/* (time, seq) only ever grows within a process, even if the clock
	 * steps back or a microsecond holds more than 62^3 ids. */
	if (us <= last_us) {
		us = last_us;
		if (++seq == 62 * 62 * 62) {
			us++;
			seq = 0;
		}
	} else
		seq = 0;
	last_us = us;
	/* xorshift64*: 5 random digits tell hosts sharing a spool apart. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	x = rng * 0x2545F4914F6CDD1Dull;
	/* 10 time digits last until the year 2500; 62^4 covers pid_max. */
	put_b62(id, us, 10);
	put_b62(id + 10, (uint64_t)pid, 4);
	put_b62(id + 14, seq, 3);
	put_b62(id + 17, x >> 20, 5);
	id[22] = '\0';
}

/* --- reading --------------------------------------------------------- */

/* A window on the file, read with pread() from its start. */
struct reader {
	int fd;
	char *buf;
	size_t cap, start, len;	/* unread bytes: buf[start..len) */
	off_t off;		/* file offset of buf[0] */
	uint64_t total;		/* envelope bytes so far */
	int eof;
};

/* The next line (without its LF).  1, or -1 with *error_r. */
static int
reader_line(struct reader *r, const char **line_r, size_t *n_r,
    const char **error_r)
{
	char *nl;
	ssize_t k;

	for (;;) {
		nl = memchr(r->buf + r->start, '\n', r->len - r->start);
		if (nl != NULL) {
			*line_r = r->buf + r->start;
			*n_r = (size_t)(nl - *line_r);
			r->start += *n_r + 1;
			r->total += *n_r + 1;
			if (*n_r > QFILE_LINE_MAX || r->total > QFILE_ENV_MAX) {
				*error_r = "envelope line or envelope too long";
				return -1;
			}
			return 1;
		}
		if (r->len - r->start > QFILE_LINE_MAX) {
			*error_r = "envelope line too long";
			return -1;
		}
		if (r->eof) {
			*error_r = "truncated envelope (no blank line)";
			return -1;
		}
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->off += (off_t)r->start;
		r->len -= r->start;
		r->start = 0;
		do
			k = pread(r->fd, r->buf + r->len, r->cap - r->len,
			    r->off + (off_t)r->len);
		while (k < 0 && errno == EINTR);
		if (k < 0) {
			*error_r = err_fmt("read: %s", strerror(errno));
			return -1;
		}
		if (k == 0)
			r->eof = 1;
		r->len += (size_t)k;
	}
}

/* Decode an escaped value into a malloc'd string.  0, or -1 for a raw
 * byte that should have been escaped, a bad escape, or an escaped control
 * byte (no field has a use for one, and an address carrying CR or LF
 * would reach the headers of a bounce). */
static int
unescape(const char *s, size_t n, char **out_r)
{
	char *out = xmalloc(n + 1);
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			if (n - i < 3 ||
			    (hi = ascii_hex_value((unsigned char)s[i + 1])) < 0 ||
			    (lo = ascii_hex_value((unsigned char)s[i + 2])) < 0 ||
			    hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f) {
				free(out);
				return -1;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (must_escape(c)) {
			free(out);
			return -1;
		} else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	*out_r = out;
	return 0;
}

/* A canonical decimal number (no sign, no leading zero) up to max. */
static int
parse_dec(const char *s, size_t n, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' ||
		    v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*v_r = v;
	return 0;
}

enum field {
	F_ID, F_ARRIVAL, F_SENDER, F_BODY, F_SMTPUTF8, F_RET, F_ENVID,
	F_CLIENT, F_HELO, F_PROTO, F_TLS, F_AUTH, F_RCPT, F_COUNT
};

static const char *const field_names[F_COUNT] = {
	"id", "arrival", "sender", "body", "smtputf8", "ret", "envid",
	"client", "helo", "proto", "tls", "auth", "rcpt",
};

/* The fields every envelope has (rcpt is counted separately). */
#define REQUIRED ((1u << F_ID) | (1u << F_ARRIVAL) | (1u << F_SENDER) | \
	(1u << F_BODY) | (1u << F_SMTPUTF8) | (1u << F_RET) | \
	(1u << F_CLIENT) | (1u << F_PROTO))

/* Parse "ADDRESS NOTIFY ORCPT" into a new recipient of e.  0 or -1. */
static int
parse_rcpt(struct envelope *e, const char *v, size_t n, const char **error_r)
{
	const char *sp1 = memchr(v, ' ', n), *sp2, *o;
	char *addr, *orcpt = NULL;
	size_t on;
	uint64_t notify;

	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - v)) : NULL;
	if (sp2 == NULL || memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - v)) != NULL) {
		*error_r = "rcpt needs ADDRESS NOTIFY ORCPT";
		return -1;
	}
	if (e->nrcpts >= QFILE_RCPT_MAX) {
		*error_r = "too many recipients";
		return -1;
	}
	if (parse_dec(sp1 + 1, (size_t)(sp2 - sp1 - 1), NOTIFY_MASK, &notify) < 0) {
		*error_r = "bad NOTIFY value";
		return -1;
	}
	if (sp1 == v || unescape(v, (size_t)(sp1 - v), &addr) < 0) {
		*error_r = "bad recipient address";
		return -1;
	}
	o = sp2 + 1;
	on = (size_t)(v + n - o);
	if (addr[0] == '\0' || (!(on == 1 && o[0] == '-') &&
	    (on == 0 || unescape(o, on, &orcpt) < 0))) {
		free(addr);
		*error_r = "bad recipient address or ORCPT";
		return -1;
	}
	envelope_add_rcpt(e, addr, (unsigned)notify, orcpt);
	free(addr);
	free(orcpt);
	return 0;
}

/* Store a string field's decoded value.  0 or -1. */
static int
set_str(char **dst, const char *v, size_t n)
{
	return unescape(v, n, dst);
}

/* Whether all n bytes of s (not NUL-terminated) are in set. */
static int
all_in(const char *s, size_t n, const char *set)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0' || strchr(set, s[i]) == NULL)
			return 0;
	}
	return 1;
}

/* Parse one "name value" envelope line into e.  0, or -1 with *error_r. */
static int
parse_line(struct envelope *e, unsigned *seen, const char *line, size_t n,
    const char **error_r)
{
	const char *sp = memchr(line, ' ', n), *v, *dot;
	size_t f, i, vn;
	uint64_t u, frac;
	int r = 0;

	if (sp == NULL) {
		*error_r = "line without a value";
		return -1;
	}
	if (!word_index(field_names, F_COUNT, line, (size_t)(sp - line), &f)) {
		*error_r = err_fmt("unknown field %s",
		    log_safe_n(line, (size_t)(sp - line)));
		return -1;
	}
	v = sp + 1;
	vn = n - (size_t)(v - line);
	if (f == F_RCPT)
		return parse_rcpt(e, v, vn, error_r);
	if (*seen & (1u << f)) {
		*error_r = err_fmt("repeated field %s", field_names[f]);
		return -1;
	}
	*seen |= 1u << f;
	switch ((enum field)f) {
	case F_ID:
		if (vn == 0 || vn >= QFILE_ID_MAX || !all_in(v, vn, b62))
			r = -1;
		else {
			memcpy(e->id, v, vn);
			e->id[vn] = '\0';
		}
		break;
	case F_ARRIVAL:
		dot = memchr(v, '.', vn);
		if (dot == NULL || v + vn - dot != 7 ||
		    parse_dec(v, (size_t)(dot - v), UINT64_MAX / 1000000 - 1, &u) < 0 ||
		    !all_in(dot + 1, 6, "0123456789"))
			r = -1;
		else {
			for (frac = 0, i = 1; i <= 6; i++)
				frac = frac * 10 + (uint64_t)(dot[i] - '0');
			e->arrival_us = u * 1000000 + frac;
		}
		break;
	case F_SENDER:
		if (vn == 2 && memcmp(v, "<>", 2) == 0)
			e->sender = xstrdup("");
		else if (vn == 0)
			r = -1;		/* the null sender is "<>" */
		else
			r = set_str(&e->sender, v, vn);
		break;
	case F_BODY:
		if (vn == 4 && memcmp(v, "7BIT", 4) == 0)
			e->body_8bit = 0;
		else if (vn == 8 && memcmp(v, "8BITMIME", 8) == 0)
			e->body_8bit = 1;
		else
			r = -1;
		break;
	case F_SMTPUTF8:
		if (vn != 1 || (v[0] != '0' && v[0] != '1'))
			r = -1;
		else
			e->smtputf8 = v[0] - '0';
		break;
	case F_RET:
		if (word_index(rets, 3, v, vn, &i))
			e->ret = (int)i;
		else
			r = -1;
		break;
	case F_PROTO:
		if (word_index(protos, sizeof(protos) / sizeof(protos[0]), v, vn, &i))
			e->proto = xstrdup(protos[i]);
		else
			r = -1;
		break;
	case F_ENVID:
		r = set_str(&e->envid, v, vn);
		break;
	case F_CLIENT:
		r = set_str(&e->client, v, vn);
		break;
	case F_HELO:
		r = set_str(&e->helo, v, vn);
		break;
	case F_TLS:
		r = set_str(&e->tls, v, vn);
		break;
	case F_AUTH:
		r = set_str(&e->auth, v, vn);
		break;
	case F_RCPT:
	case F_COUNT:
		break;
	}
	if (r < 0)
		*error_r = err_fmt("bad %s value", field_names[f]);
	return r;
}

int
qfile_read_envelope(int fd, struct envelope *e_r, off_t *body_offset_r,
    const char **error_r)
{
	struct reader r;
	struct envelope e;
	const char *line, *why = NULL;
	size_t n, lineno = 0;
	unsigned seen = 0;
	int ret = -1;

	memset(&e, 0, sizeof(e));
	memset(&r, 0, sizeof(r));
	r.fd = fd;
	r.cap = QFILE_LINE_MAX + 1 + QFILE_BUF_SIZE;
	r.buf = xmalloc(r.cap);
	for (;;) {
		lineno++;
		if (reader_line(&r, &line, &n, &why) < 0)
			break;
		if (lineno == 1) {
			if (n != strlen(QFILE_VERSION) ||
			    memcmp(line, QFILE_VERSION, n) != 0) {
				why = "not a postern queue file of version 1";
				break;
			}
			continue;
		}
		if (n == 0) {
			for (n = 0; n < F_COUNT; n++) {
				if ((REQUIRED & (1u << n)) && !(seen & (1u << n)))
					break;
			}
			if (n < F_COUNT)
				why = err_fmt("missing field %s", field_names[n]);
			else if (e.nrcpts == 0)
				why = "no recipient";
			else
				ret = 0;
			break;
		}
		if (parse_line(&e, &seen, line, n, &why) < 0)
			break;
	}
	if (ret == 0) {
		*body_offset_r = r.off + (off_t)r.start;
		*e_r = e;
	} else {
		*error_r = err_fmt("queue file line %zu: %s", lineno, why);
		envelope_free(&e);
	}
	free(r.buf);
	return ret;
}

uint64_t
qfile_reserve(uint64_t minfree, uint64_t max_size)
{
	uint64_t half = max_size / 2;
	uint64_t scaled = max_size > UINT64_MAX - half ? UINT64_MAX : max_size + half;

	if (minfree != 0)
		return minfree;
	return scaled > QFILE_RESERVE_FLOOR ? scaled : QFILE_RESERVE_FLOOR;
}

int
qfile_room(uint64_t bytes, uint64_t inodes, uint64_t reserve, uint64_t size,
    const char **why_r)
{
	if (inodes < QFILE_MIN_INODES) {
		*why_r = "too few free inodes";
		return 0;
	}
	if (bytes < reserve) {
		*why_r = "free space below queue_minfree";
		return 0;
	}
	if (size > bytes - reserve) {
		*why_r = "declared size does not fit above queue_minfree";
		return 0;
	}
	return 1;
}
