/*
 * queue: qmgr's durable queue.  Pickup moves committed messages from
 * incoming/new and maildrop/new into spool/queue/ (a rename: same
 * filesystem), after checking the envelope; anything malformed goes to
 * spool/corrupt/ with a log line.  Recovery rebuilds the in-memory queue
 * from spool/queue/ and the state files, so kill -9 at any instant loses
 * nothing.  A message whose recipients are all done is removed: queue
 * file first, then its state file (an orphaned state file is removed at
 * the next start).
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsn.h"
#include "fsutil.h"
#include "log.h"
#include "qmgr.h"
#include "xalloc.h"

#define STATE_MAX (4 * 1024 * 1024)	/* largest state file read */

/* The hash of a queue id. */
static size_t
id_hash(const char *id, size_t size)
{
	size_t h = 5381;

	for (; *id != '\0'; id++)
		h = h * 33 + (unsigned char)*id;
	return h % size;
}

/* Whether name is a well-formed queue id. */
static int
valid_id(const char *name)
{
	size_t n = 0;

	for (; name[n] != '\0'; n++)
		if (!((name[n] >= '0' && name[n] <= '9') || (name[n] >= 'a' && name[n] <= 'z') ||
		    (name[n] >= 'A' && name[n] <= 'Z')))
			return 0;
	return n > 0 && n < QFILE_ID_MAX;
}

/* Find a message by id. */
struct qmsg *
qmgr_find(struct qmgr *q, const char *id)
{
	struct qmsg *m;

	for (m = q->hash[id_hash(id, q->hash_size)]; m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* Grow the id hash when it gets crowded. */
static void
hash_grow(struct qmgr *q)
{
	size_t nsize = q->hash_size * 2;
	struct qmsg **nh = xcalloc(nsize, sizeof(*nh));

	for (struct qmsg *m = q->head; m != NULL; m = m->next) {
		size_t h = id_hash(m->id, nsize);

		m->hnext = nh[h];
		nh[h] = m;
	}
	free(q->hash);
	q->hash = nh;
	q->hash_size = nsize;
}

/* Take m off its wait list. */
static void
unpark(struct qmsg *m)
{
	struct waitq *w = m->parked;

	if (m->rprev != NULL)
		m->rprev->rnext = m->rnext;
	else
		w->head = m->rnext;
	if (m->rnext != NULL)
		m->rnext->rprev = m->rprev;
	else
		w->tail = m->rprev;
	m->rnext = m->rprev = NULL;
	m->parked = NULL;
	m->where = QM_NOWHERE;
}

/* Put m into the ready ring (at the tail). */
void
qmgr_ready_add(struct qmgr *q, struct qmsg *m)
{
	if (m->where == QM_READY)
		return;
	if (m->where == QM_PARKED)
		unpark(m);
	m->where = QM_READY;
	if (q->ready == NULL) {
		m->rnext = m->rprev = m;
		q->ready = m;
	} else {
		m->rnext = q->ready;
		m->rprev = q->ready->rprev;
		m->rprev->rnext = m;
		q->ready->rprev = m;
	}
	sched_kick(q);
}

/* Take m out of the ready ring, or off its wait list. */
void
qmgr_ready_del(struct qmgr *q, struct qmsg *m)
{
	if (m->where == QM_PARKED)
		unpark(m);
	if (m->where != QM_READY)
		return;
	m->where = QM_NOWHERE;
	if (m->rnext == m)
		q->ready = NULL;
	else {
		m->rprev->rnext = m->rnext;
		m->rnext->rprev = m->rprev;
		if (q->ready == m)
			q->ready = m->rnext;
	}
	m->rnext = m->rprev = NULL;
}

/* Move m onto wait list w. */
void
qmgr_park(struct qmgr *q, struct qmsg *m, struct waitq *w)
{
	qmgr_ready_del(q, m);
	m->rnext = NULL;
	m->rprev = w->tail;
	if (w->tail != NULL)
		w->tail->rnext = m;
	else
		w->head = m;
	w->tail = m;
	m->parked = w;
	m->where = QM_PARKED;
}

/* Move up to n waiting messages into the ready ring, oldest first. */
void
qmgr_wake(struct qmgr *q, struct waitq *w, unsigned n)
{
	while (n-- > 0 && w->head != NULL)
		qmgr_ready_add(q, w->head);
}

/* A new message record in the queue's lists. */
static struct qmsg *
msg_add(struct qmgr *q, const struct envelope *e, uint64_t size, long owner)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));
	size_t h;

	memcpy(m->id, e->id, sizeof(m->id));
	m->arrival = e->arrival_us / 1000000;
	m->size = size;
	m->owner = (int32_t)owner;
	if (e->nrcpts > UINT32_MAX / 2)
		log_panic("event=too_many_rcpts");
	m->nrcpt = m->nenv = (uint32_t)e->nrcpts;
	m->rcpts = xcalloc(m->nrcpt, sizeof(*m->rcpts));
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		struct agent *a;
		const char *error;
		int r = sched_route(q, e->rcpts[i].addr, &a, &error);

		/* A failed lookup: local's, deferred below (due at once). */
		if (r < 0)
			a = &q->agents[QMGR_AGENT_LOCAL];
		m->rcpts[i].state = QR_PENDING;
		m->rcpts[i].dest = sched_dest_get(q, a, e->rcpts[i].addr);
		/* Remembered here, because the envelope stays on disk. */
		if (dsn_route(e->sender, q->double_bounce, e->rcpts[i].notify,
		    DSN_ACTION_DELIVERED, 0) == DSN_TO_SENDER)
			m->rcpts[i].flags |= QRF_NOTIFY_SUCCESS;
		if (r < 0) {
			m->rcpts[i].state = QR_DEFERRED;
			m->rcpts[i].next_try = (uint32_t)time(NULL);
			m->rcpts[i].error = xasprintf("4.3.0 %s", error);
		}
	}
	/* Grow before m is on the list: hash_grow() rehashes the list, and
	 * m must enter the hash once only (twice made a cycle). */
	if (q->nmsgs + 1 > q->hash_size)
		hash_grow(q);
	m->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->nmsgs++;
	h = id_hash(m->id, q->hash_size);
	m->hnext = q->hash[h];
	q->hash[h] = m;
	return m;
}

/* Unlink m from every list and free it. */
static void
msg_free(struct qmgr *q, struct qmsg *m)
{
	struct qmsg **pp = &q->hash[id_hash(m->id, q->hash_size)];

	qmgr_ready_del(q, m);
	while (*pp != m)
		pp = &(*pp)->hnext;
	*pp = m->hnext;
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		q->head = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	else
		q->tail = m->prev;
	q->nmsgs--;
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		free(m->rcpts[i].error);
		sched_dest_put(q, m->rcpts[i].dest);
	}
	for (uint32_t i = m->nenv; i < m->nrcpt; i++)
		free(m->added[i - m->nenv]);
	free(m->added);
	free(m->rcpts);
	free(m);
}

/* Add a recipient found by alias expansion (in memory). */
void
qmgr_msg_add_rcpt(struct qmgr *q, struct qmsg *m, const char *addr)
{
	uint32_t k = m->nrcpt - m->nenv;
	struct agent *a;
	const char *error;

	m->rcpts = xreallocarray(m->rcpts, (size_t)m->nrcpt + 1, sizeof(*m->rcpts));
	m->added = xreallocarray(m->added, (size_t)k + 1, sizeof(*m->added));
	m->added[k] = xstrdup(addr);
	memset(&m->rcpts[m->nrcpt], 0, sizeof(m->rcpts[0]));
	/* A failed lookup: the relay agent's, as an address in another domain. */
	if (sched_route(q, addr, &a, &error) < 0)
		a = &q->agents[QMGR_AGENT_RELAY];
	m->rcpts[m->nrcpt].dest = sched_dest_get(q, a, addr);
	m->rcpts[m->nrcpt].state = QR_PENDING;
	m->nrcpt++;
}

/* The address of recipient i. */
const char *
qmgr_rcpt_addr(const struct qmsg *m, const struct envelope *e, uint32_t i)
{
	return i < m->nenv ? e->rcpts[i].addr : m->added[i - m->nenv];
}

/* Apply one state record to m during recovery. */
static void
msg_apply(struct qmgr *q, struct qmsg *m, const struct qs_record *r)
{
	struct qrstate *rs;

	switch (r->kind) {
	case QS_RCPT: {
		size_t n = strcspn(r->text, " ");
		char *addr = xstrndup(r->text, n);

		qmgr_msg_add_rcpt(q, m, addr);
		free(addr);
		return;
	}
	case QS_WARNED:
		m->warned = 1;
		return;
	case QS_HOLD:
		m->hold = 1;
		return;
	case QS_RELEASE:
		m->hold = 0;
		return;
	case QS_OWNER:
		m->owner = (int32_t)r->orig;
		return;
	default:
		break;
	}
	if (r->index >= m->nrcpt) {
		log_warn("event=state_bad_index id=%s index=%u", m->id, r->index);
		return;
	}
	rs = &m->rcpts[r->index];
	switch (r->kind) {
	case QS_DONE:
	case QS_BOUNCED:
		rs->state = QR_DONE;
		break;
	case QS_DEFER:
		rs->state = QR_DEFERRED;
		rs->next_try = r->next_try > UINT32_MAX ? UINT32_MAX : (uint32_t)r->next_try;
		if (rs->attempts < UINT16_MAX)
			rs->attempts++;
		free(rs->error);
		rs->error = xstrdup(r->text);
		break;
	case QS_FAIL:
		rs->state = QR_FAILED;
		free(rs->error);
		rs->error = xstrdup(r->text);
		break;
	case QS_DELIVERED:
	case QS_EXPANDED:
		rs->state = QR_SUCCESS;
		if (r->kind == QS_EXPANDED)
			rs->flags |= QRF_EXPANDED;
		free(rs->error);
		rs->error = xstrdup(r->text);
		break;
	default:
		break;
	}
}

/* Read ID.state into m.  0, or -1 with *error_r (unreadable). */
static int
msg_load_state(struct qmgr *q, struct qmsg *m, const char **error_r)
{
	char *path = xasprintf("%s/%s.state", q->queue_dir, m->id);
	struct buf b = BUF_INIT;
	const char *p, *end, *error;
	struct qs_record r;

	if (fs_read_file(path, STATE_MAX, &b, error_r) < 0) {
		int missing = errno == ENOENT;

		free(path);
		buf_free(&b);
		return missing ? 0 : -1;
	}
	free(path);
	m->state_exists = 1;
	p = buf_cstr(&b);
	end = p + b.len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *line;

		if (nl == NULL)
			break;		/* a torn last line: never acted upon */
		line = xstrndup(p, (size_t)(nl - p));
		if (qs_parse(line, &r, &error) < 0)
			log_warn("event=state_bad_line id=%s line=%s", m->id, log_safe(line));
		else
			msg_apply(q, m, &r);
		free(line);
		p = nl + 1;
	}
	buf_free(&b);
	return 0;
}

/* Append records to ID.state durably. */
int
qmgr_record(struct qmgr *q, struct qmsg *m, const struct qs_record *rs, size_t n,
    const char **error_r)
{
	char *path = xasprintf("%s.state", m->id);
	struct buf b = BUF_INIT;
	ssize_t w;
	int fd, ret = -1;

	for (size_t i = 0; i < n; i++)
		qs_format(&rs[i], &b);
	fd = openat(q->queue_fd, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		*error_r = err_fmt("open %s: %s", path, strerror(errno));
		goto out;
	}
	w = write(fd, b.data, b.len);
	if (w < 0 || (size_t)w != b.len || fsync(fd) < 0) {
		*error_r = err_fmt("write %s: %s", path, w < 0 ? strerror(errno) : "short write");
		close(fd);
		goto out;
	}
	close(fd);
	if (!m->state_exists) {
		/* The new name must survive a crash too. */
		if (fsync(q->queue_fd) < 0) {
			*error_r = err_fmt("fsync %s: %s", q->queue_dir, strerror(errno));
			goto out;
		}
		m->state_exists = 1;
	}
	ret = 0;
out:
	free(path);
	buf_free(&b);
	return ret;
}

/* Open a queued message and read its envelope. */
int
qmgr_open_msg(struct qmgr *q, const struct qmsg *m, struct envelope *e_r,
    off_t *body_r, const char **error_r)
{
	int fd = openat(q->queue_fd, m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		*error_r = err_fmt("open %s/%s: %s", q->queue_dir, m->id, strerror(errno));
		return -1;
	}
	memset(e_r, 0, sizeof(*e_r));
	if (qfile_read_envelope(fd, e_r, body_r, error_r) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Remove m's files and free it. */
static void
msg_remove(struct qmgr *q, struct qmsg *m)
{
	char *state = xasprintf("%s.state", m->id);

	if (unlinkat(q->queue_fd, m->id, 0) < 0 && errno != ENOENT)
		log_error("event=unlink_failed path=%s/%s error=\"%s\"", q->queue_dir, m->id,
		    strerror(errno));
	if (m->state_exists && unlinkat(q->queue_fd, state, 0) < 0 && errno != ENOENT)
		log_error("event=unlink_failed path=%s/%s error=\"%s\"", q->queue_dir, state,
		    strerror(errno));
	free(state);
	msg_free(q, m);
}

/*
 * Report and finish: once no request of m is in flight and none of its
 * recipients is due, its failures and successes are reported (one round
 * of deliveries, one report); a message whose recipients are all done is
 * removed.
 */
void
qmgr_msg_check_done(struct qmgr *q, struct qmsg *m)
{
	int report = 0, done = 1;

	if (m->busy > 0)
		return;
	if (m->deleted) {
		msg_remove(q, m);
		return;
	}
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		uint8_t st = m->rcpts[i].state;

		if (st == QR_PENDING || st == QR_INFLIGHT)
			return;
		if (st == QR_FAILED || st == QR_SUCCESS)
			report = 1;
		if (st != QR_DONE)
			done = 0;
	}
	if (report) {
		if (bounce_send(q, m, 0) < 0)
			return;		/* retried on a later tick */
		done = 1;
		for (uint32_t i = 0; i < m->nrcpt && done; i++)
			done = m->rcpts[i].state == QR_DONE;
	}
	if (!done)
		return;
	log_info("event=removed id=%s", m->id);
	msg_remove(q, m);
}

/* Remove a message now, without a report. */
void
qmgr_msg_delete(struct qmgr *q, struct qmsg *m)
{
	m->deleted = 1;
	qmgr_ready_del(q, m);
	if (m->busy == 0)
		msg_remove(q, m);
}

/* Append what a quarantined file looks like to out: its type, size,
 * links and age, and its first bytes (escaped). */
static void
corrupt_evidence(int dirfd, const char *name, struct buf *out)
{
	unsigned char head[48];
	struct buf text = BUF_INIT;
	struct stat st;
	ssize_t n = -1;
	int fd;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (buf_printf(out, " stat_error=\"%s\"", strerror(errno)) < 0)
			log_error("event=corrupt_evidence_lost");
		return;
	}
	if (S_ISREG(st.st_mode) &&
	    (fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) >= 0) {
		n = read(fd, head, sizeof(head));
		close(fd);
	}
	if (n >= 0)
		buf_put_safe(&text, head, (size_t)n, sizeof(head));
	if (buf_printf(out, " type=%s size=%lld links=%lu age=%llds%s%s%s",
	    S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" :
	    S_ISLNK(st.st_mode) ? "symlink" : "other", (long long)st.st_size,
	    (unsigned long)st.st_nlink, (long long)(time(NULL) - st.st_ctime),
	    n >= 0 ? " head=\"" : "", buf_cstr(&text), n >= 0 ? "\"" : "") < 0)
		log_error("event=corrupt_evidence_lost");
	buf_free(&text);
}

/* Move a bad file from dirfd/name into spool/corrupt, logging why and
 * the evidence. */
static void
to_corrupt(struct qmgr *q, int dirfd, const char *name, const char *why)
{
	struct buf ev = BUF_INIT;
	const char *error;
	char *dst;

	corrupt_evidence(dirfd, name, &ev);
	/* Created on first use: master may not have made it. */
	if (fs_ensure_dir(q->corrupt_dir, 0700, (uid_t)-1, (gid_t)-1, &error) < 0) {
		log_error("event=corrupt name=%s reason=%s%s kept_in_place=1 "
		    "error=\"%s\"", log_safe(name), log_safe(why), buf_cstr(&ev), error);
		buf_free(&ev);
		return;
	}
	dst = valid_id(name) ? xasprintf("%s/%s", q->corrupt_dir, name) :
	    xasprintf("%s/bad.%lld.%d", q->corrupt_dir, (long long)time(NULL), rand());

	if (renameat(dirfd, name, AT_FDCWD, dst) < 0)
		log_error("event=corrupt_move_failed name=%s reason=%s%s error=\"%s\"",
		    log_safe(name), log_safe(why), buf_cstr(&ev), strerror(errno));
	else
		log_error("event=corrupt name=%s reason=%s%s moved_to=%s",
		    log_safe(name), log_safe(why), buf_cstr(&ev), dst);
	buf_free(&ev);
	free(dst);
}

/*
 * Whether a pickup file with more than one link is still in transition
 * rather than damaged: an older postern (or another writer) that moved it
 * by link + unlink, or a FUSE or NFS client whose cached attributes still
 * show the link count from before the unlink.  Such a file is looked at
 * again shortly; only one that keeps its extra link for a long time is
 * quarantined.
 */
#define PICKUP_LINK_GRACE 120	/* seconds */
#define PICKUP_RESCAN_MS 200

static int
in_transition(const struct stat *st)
{
	time_t now = time(NULL);

	return S_ISREG(st->st_mode) && st->st_nlink == 2 &&
	    st->st_ctime + PICKUP_LINK_GRACE > now;
}

/* A later scan, soon, for files in transition. */
static void
rescan_due(struct ev_timer *t, void *arg)
{
	struct qmgr *q = arg;

	(void)t;
	ev_timer_del(&q->rescan);
	qmgr_scan_soon(q);
}

/* Pick up one file from a pickup directory (maildrop: untrusted). */
static void
pickup_one(struct qmgr *q, int dirfd, const char *name, int maildrop)
{
	struct envelope e;
	struct stat st;
	off_t body;
	const char *error, *why;
	struct qmsg *m;
	long owner = -1;
	int fd;

	if (!valid_id(name)) {
		to_corrupt(q, dirfd, name, "bad file name");
		return;
	}
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		why = strerror(errno);
		if (errno == ELOOP)
			to_corrupt(q, dirfd, name, "symbolic link");
		else if (errno != ENOENT)
			(void)log_limited(&q->loglimit, LOG_LEVEL_ERROR, why,
			    "event=pickup_open_failed name=%s error=\"%s\"", name, why);
		return;
	}
	if (fstat(fd, &st) < 0) {
		/* Not evidence of damage: left for the next scan. */
		why = strerror(errno);
		close(fd);
		(void)log_limited(&q->loglimit, LOG_LEVEL_ERROR, why,
		    "event=pickup_stat_failed name=%s error=\"%s\"", name, why);
		return;
	}
	if (in_transition(&st)) {
		close(fd);
		(void)log_limited(&q->loglimit, LOG_LEVEL_INFO, "pickup_wait",
		    "event=pickup_wait name=%s links=%lu", name,
		    (unsigned long)st.st_nlink);
		if (q->rescan == NULL)
			q->rescan = ev_timer_add(q->loop, PICKUP_RESCAN_MS, 0,
			    rescan_due, q);
		return;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		to_corrupt(q, dirfd, name, "not a plain file");
		return;
	}
	memset(&e, 0, sizeof(e));
	why = qfile_read_envelope(fd, &e, &body, &error) < 0 ? error :
	    strcmp(e.id, name) != 0 ? "id does not match" :
	    qmgr_find(q, name) != NULL ? "duplicate id" : NULL;
	if (why != NULL) {
		close(fd);
		to_corrupt(q, dirfd, name, why);
		envelope_free(&e);
		return;
	}
	close(fd);
	if (maildrop)
		owner = (long)st.st_uid;
	if (renameat(dirfd, name, q->queue_fd, name) < 0) {
		/* Left in place for the next scan, which fails the same way
		 * while the disk is full: rate-limited. */
		why = strerror(errno);
		(void)log_limited(&q->loglimit, LOG_LEVEL_ERROR, why,
		    "event=pickup_failed id=%s error=\"%s\"", name, why);
		envelope_free(&e);
		return;
	}
	m = msg_add(q, &e, (uint64_t)st.st_size, owner);
	if (maildrop) {
		struct qs_record r = { .kind = QS_OWNER, .orig = (uint64_t)st.st_uid, .text = "" };

		/* Recorded after the move: a crash in between only loses the
		 * owner note, never the message. */
		if (qmgr_record(q, m, &r, 1, &error) < 0)
			log_error("event=state_write_failed id=%s error=\"%s\"", m->id, error);
	}
	log_info("event=queued id=%s from=<%s> nrcpt=%zu size=%llu%s", m->id,
	    log_safe(e.sender), e.nrcpts, (unsigned long long)st.st_size,
	    maildrop ? " origin=maildrop" : "");
	envelope_free(&e);
	qmgr_ready_add(q, m);
}

/* Now and then (at start, then hourly), remove what killed writers left
 * in incoming/tmp and maildrop/tmp (never acknowledged: a message is
 * acknowledged only once named in new/). */
#define TMP_SWEEP_EVERY 3600

static void
sweep_tmp(struct qmgr *q)
{
	time_t now = time(NULL);

	if (q->tmp_swept != 0 && q->tmp_swept + TMP_SWEEP_EVERY > now)
		return;
	q->tmp_swept = now;
	for (int i = 0; i < 2; i++) {
		char *tmp = xasprintf("%.*s/tmp", (int)(strrchr(q->pickup_dirs[i], '/') -
		    q->pickup_dirs[i]), q->pickup_dirs[i]);
		int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd >= 0) {
			(void)fs_sweep_old(fd, FS_TMP_MAX_AGE, tmp);
			(void)close(fd);
		}
		free(tmp);
	}
}

/* Scan incoming/new and maildrop/new. */
static void
scan_pickup(void *arg)
{
	struct qmgr *q = arg;

	q->scan_pending = 0;
	sweep_tmp(q);
	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(q->pickup_dirs[i]);
		struct dirent *de;

		if (d == NULL) {
			const char *why = strerror(errno);

			(void)log_limited(&q->loglimit, LOG_LEVEL_WARN, why,
			    "event=scan_failed dir=%s error=\"%s\"", q->pickup_dirs[i], why);
			continue;
		}
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				pickup_one(q, dirfd(d), de->d_name, i == 1);
		closedir(d);
	}
}

/* Scan the pickup directories soon. */
void
qmgr_scan_soon(struct qmgr *q)
{
	if (q->scan_pending)
		return;
	q->scan_pending = 1;
	ev_defer(q->loop, scan_pickup, q);
}

/* Rebuild the queue from spool/queue/. */
static int
recover(struct qmgr *q, const char **error_r)
{
	DIR *d = opendir(q->queue_dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL) {
		*error_r = err_fmt("opendir %s: %s", q->queue_dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		const char *dot = strchr(de->d_name, '.');
		struct envelope e;
		struct stat st;
		struct qmsg *m;
		off_t body;
		const char *error;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		if (dot != NULL) {
			char *id = xstrndup(de->d_name, (size_t)(dot - de->d_name));

			if (strcmp(dot, ".state") == 0 &&
			    faccessat(dirfd(d), id, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
				log_info("event=orphan_state_removed id=%s", log_safe(id));
				(void)unlinkat(dirfd(d), de->d_name, 0);
			}
			free(id);
			continue;
		}
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		memset(&e, 0, sizeof(e));
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    qfile_read_envelope(fd, &e, &body, &error) < 0 ||
		    strcmp(e.id, de->d_name) != 0) {
			if (fd >= 0)
				close(fd);
			envelope_free(&e);
			to_corrupt(q, dirfd(d), de->d_name, "unreadable in the queue");
			continue;
		}
		close(fd);
		m = msg_add(q, &e, (uint64_t)st.st_size, -1);
		envelope_free(&e);
		if (msg_load_state(q, m, &error) < 0) {
			log_error("event=state_read_failed id=%s error=\"%s\"", m->id, error);
			/* Keep it deferred rather than deliver it again. */
			for (uint32_t i = 0; i < m->nrcpt; i++)
				m->rcpts[i].state = QR_DEFERRED;
		}
		for (uint32_t i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].state == QR_PENDING || m->rcpts[i].state == QR_FAILED ||
			    m->rcpts[i].state == QR_SUCCESS) {
				qmgr_ready_add(q, m);
				break;
			}
		n++;
	}
	closedir(d);
	log_info("event=recovered messages=%zu", n);
	return 0;
}

/* Start the queue. */
int
qmgr_new(struct ev_loop *loop, const struct qmgr_settings *s, struct qmgr **q_r,
    const char **error_r)
{
	struct qmgr *q = xcalloc(1, sizeof(*q));

	q->loop = loop;
	q->set = *s;
	q->self_uid = getuid();
	q->queue_dir = fs_join(s->spool_dir, "queue");
	q->corrupt_dir = fs_join(s->spool_dir, "corrupt");
	q->incoming_dir = fs_join(s->spool_dir, "incoming");
	q->pickup_dirs[0] = fs_join(s->spool_dir, "incoming/new");
	q->pickup_dirs[1] = fs_join(s->spool_dir, "maildrop/new");
	q->double_bounce = xasprintf("%s@%s", DSN_DOUBLE_BOUNCE_LOCAL, s->hostname);
	q->postmaster = s->postmaster != NULL && s->postmaster[0] != '\0' ?
	    xstrdup(s->postmaster) : xasprintf("postmaster@%s", s->hostname);
	q->queue_fd = -1;
	q->hash_size = 1024;
	q->hash = xcalloc(q->hash_size, sizeof(*q->hash));
	if (fs_ensure_dir(q->queue_dir, 0700, (uid_t)-1, (gid_t)-1, error_r) < 0)
		goto fail;
	q->queue_fd = open(q->queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->queue_fd < 0) {
		*error_r = err_fmt("open %s: %s", q->queue_dir, strerror(errno));
		goto fail;
	}
	if (s->virtual_domains[0] != '\0' &&
	    map_open(s->virtual_domains, &q->domains, error_r) < 0)
		goto fail;
	sched_init(q);
	if (recover(q, error_r) < 0)
		goto fail;
	qmgr_scan_soon(q);
	*q_r = q;
	return 0;
fail:
	qmgr_free(&q);
	return -1;
}

/* Free the queue (files stay). */
void
qmgr_free(struct qmgr **qp)
{
	struct qmgr *q = *qp;

	if (q == NULL)
		return;
	sched_free(q);
	ev_defer_cancel(q->loop, scan_pickup, q);
	if (q->rescan != NULL)
		ev_timer_del(&q->rescan);
	while (q->head != NULL)
		msg_free(q, q->head);
	if (q->domains != NULL)
		map_close(&q->domains);
	if (q->queue_fd >= 0)
		close(q->queue_fd);
	free(q->hash);
	free(q->queue_dir);
	free(q->corrupt_dir);
	free(q->incoming_dir);
	free(q->pickup_dirs[0]);
	free(q->pickup_dirs[1]);
	free(q->double_bounce);
	free(q->postmaster);
	free(q->dests);
	free(q);
	*qp = NULL;
}
