/*
 * ipc: framed, typed messages over Unix stream sockets.  Messages are built
 * with ipc_put_*, parsed from the byte stream by a decoder, read through a
 * strict cursor, and carried either by links on the event loop or by the
 * blocking helpers.
 *
 * fds are tied to frames exactly: the kernel hands a sendmsg's fds to the
 * read that returns its first byte, and a sender starts every frame that
 * carries fds with a new sendmsg, so the fds of a frame arrive with the read
 * that holds its first header byte.  Hence no read may hold the starts of
 * two frames.  The blocking helpers read at most the rest of the current
 * frame (which also lets a blocking reader pass the socket on to a link
 * without losing bytes); a link reads the rest of the current frame plus
 * the next frame's header, one recvmsg per frame when frames queue up, and
 * fds that come with such a read belong to the frame whose header starts
 * in it.  A link writes its queued frames from a deferred call at the end
 * of the loop's batch and asks for EV_WRITE only when the socket is full.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ev.h"
#include "ipc.h"
#include "ipc_impl.h"
#include "log.h"
#include "xalloc.h"

/* Close the fds in fds[0..n) that are still open (>= 0), marking them -1. */
static void
ipc_close_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (fds[i] >= 0) {
			(void)close(fds[i]);
			fds[i] = -1;
		}
	}
}

/* The monotonic clock in milliseconds. */
uint64_t
ipc_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		log_fatal("event=clock_failed error=%s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline as a poll() timeout (-1: no deadline). */
int
ipc_poll_timeout(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = ipc_now_ms();
	if (now >= deadline)
		return 0;
	return deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
}

/* The deadline timeout_ms from now (UINT64_MAX for a negative timeout). */
uint64_t
ipc_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : ipc_now_ms() + (uint64_t)timeout_ms;
}

/* --- Building a message -------------------------------------------------- */

void
ipc_msg_init(struct ipc_msg *m, uint32_t type, uint32_t id)
{
	size_t i;

	m->type = type;
	m->id = id;
	buf_init(&m->payload, 0);
	for (i = 0; i < IPC_MAX_FDS; i++)
		m->fds[i] = -1;
	m->nfds = 0;
}

void
ipc_msg_free(struct ipc_msg *m)
{
	buf_free(&m->payload);
	m->nfds = 0;
}

/* Append raw bytes to the payload (uncapped, so only overflow can fail). */
static void
ipc_put(struct ipc_msg *m, const void *p, size_t n)
{
	if (buf_append(&m->payload, p, n) < 0)
		log_panic("event=ipc_put_overflow len=%zu n=%zu", m->payload.len, n);
}

void
ipc_put_u32(struct ipc_msg *m, uint32_t v)
{
	ipc_put(m, &v, sizeof(v));
}

void
ipc_put_u64(struct ipc_msg *m, uint64_t v)
{
	ipc_put(m, &v, sizeof(v));
}

void
ipc_put_str(struct ipc_msg *m, const char *s)
{
	size_t n;

	if (s == NULL) {
		ipc_put_u32(m, UINT32_MAX);
		return;
	}
	n = strlen(s);
	if (n >= UINT32_MAX)
		log_panic("event=ipc_put_str_too_long len=%zu", n);
	ipc_put_u32(m, (uint32_t)n);
	ipc_put(m, s, n + 1);
}

void
ipc_put_data(struct ipc_msg *m, const void *p, size_t n)
{
	if (n > UINT32_MAX)
		log_panic("event=ipc_put_data_too_long len=%zu", n);
	ipc_put_u32(m, (uint32_t)n);
	ipc_put(m, p, n);
}

void
ipc_put_fd(struct ipc_msg *m, int fd)
{
	if (m->nfds >= IPC_MAX_FDS)
		log_panic("event=ipc_put_fd_too_many max=%d", IPC_MAX_FDS);
	if (fd < 0)
		log_panic("event=ipc_put_fd_invalid fd=%d", fd);
	m->fds[m->nfds++] = fd;
}

/* --- Reading a message ----------------------------------------------------- */

/* Mark the cursor failed, keeping the first reason.  Returns -1. */
static int
ipc_cursor_fail(struct ipc_cursor *c, const char *why)
{
	if (c->error == NULL)
		c->error = why;
	return -1;
}

/* Take n payload bytes: a pointer to them, or NULL (cursor failed with
 * why) if the cursor has failed or fewer remain. */
static const unsigned char *
ipc_take(struct ipc_cursor *c, size_t n, const char *why)
{
	const unsigned char *p;

	if (c->error != NULL)
		return NULL;
	if (c->len - c->off < n) {
		(void)ipc_cursor_fail(c, why);
		return NULL;
	}
	p = c->p + c->off;
	c->off += n;
	return p;
}

/* Read a u32 field, failing with why if it is short. */
static int
ipc_take_u32(struct ipc_cursor *c, uint32_t *v_r, const char *why)
{
	const unsigned char *p = ipc_take(c, sizeof(*v_r), why);

	if (p == NULL)
		return -1;
	memcpy(v_r, p, sizeof(*v_r));
	return 0;
}

int
ipc_get_u32(struct ipc_cursor *c, uint32_t *v_r)
{
	return ipc_take_u32(c, v_r, "short_u32");
}

int
ipc_get_u64(struct ipc_cursor *c, uint64_t *v_r)
{
	const unsigned char *p = ipc_take(c, sizeof(*v_r), "short_u64");

	if (p == NULL)
		return -1;
	memcpy(v_r, p, sizeof(*v_r));
	return 0;
}

int
ipc_get_str(struct ipc_cursor *c, const char **s_r)
{
	const unsigned char *p;
	uint32_t n;

	if (ipc_take_u32(c, &n, "short_string_length") < 0)
		return -1;
	if (n == UINT32_MAX) {
		*s_r = NULL;
		return 0;
	}
	/* n bytes and the NUL: n < remaining, so n + 1 cannot overflow. */
	if (c->len - c->off <= n)
		return ipc_cursor_fail(c, "string_past_end");
	p = c->p + c->off;
	if (p[n] != '\0')
		return ipc_cursor_fail(c, "string_without_nul");
	if (memchr(p, '\0', n) != NULL)
		return ipc_cursor_fail(c, "string_with_nul");
	c->off += (size_t)n + 1;
	*s_r = (const char *)p;
	return 0;
}

int
ipc_get_data(struct ipc_cursor *c, const void **p_r, size_t *n_r)
{
	const unsigned char *p;
	uint32_t n;

	if (ipc_take_u32(c, &n, "short_data_length") < 0)
		return -1;
	if ((p = ipc_take(c, n, "data_past_end")) == NULL)
		return -1;
	*p_r = p;
	*n_r = n;
	return 0;
}

int
ipc_get_fd(struct ipc_cursor *c, int *fd_r)
{
	if (c->error != NULL)
		return -1;
	if (c->fd_off >= c->nfds)
		return ipc_cursor_fail(c, "missing_fd");
	*fd_r = c->fds[c->fd_off];
	c->fds[c->fd_off] = -1;
	c->fd_off++;
	return 0;
}

int
ipc_get_end(struct ipc_cursor *c)
{
	if (c->error != NULL)
		return -1;
	if (c->off != c->len)
		return ipc_cursor_fail(c, "leftover_bytes");
	if (c->fd_off != c->nfds)
		return ipc_cursor_fail(c, "unclaimed_fds");
	return 0;
}

/* Point a cursor at len payload bytes and nfds fds. */
static void
ipc_cursor_set(struct ipc_cursor *c, const struct buf *payload, int *fds,
    size_t nfds)
{
	c->p = (const unsigned char *)buf_cstr(payload);
	c->len = payload->len;
	c->off = 0;
	c->fds = fds;
	c->nfds = nfds;
	c->fd_off = 0;
	c->error = NULL;
}

void
ipc_cursor_init(struct ipc_cursor *c, struct ipc_msg *frame)
{
	ipc_cursor_set(c, &frame->payload, frame->fds, frame->nfds);
}

void
ipc_frame_free(struct ipc_msg *frame)
{
	ipc_close_fds(frame->fds, frame->nfds);
	ipc_msg_free(frame);
}

/* --- Decoding a byte stream ------------------------------------------------- */

/* Panic unless proto's type table is well formed. */
static void
ipc_proto_check(const struct ipc_proto *proto)
{
	size_t i, j;

	if (proto->name == NULL || proto->name[0] == '\0' ||
	    strlen(proto->name) > IPC_NAME_MAX || proto->on_msg == NULL ||
	    proto->on_close == NULL || (proto->ntypes > 0 && proto->types == NULL))
		log_panic("event=ipc_bad_proto name=%s",
		    proto->name != NULL ? proto->name : "(null)");
	for (i = 0; i < proto->ntypes; i++) {
		const struct ipc_type *t = &proto->types[i];

		if (t->type < IPC_TYPE_USER || t->min_len > t->max_len ||
		    t->max_len > IPC_MAX_PAYLOAD || t->max_fds > IPC_MAX_FDS)
			log_panic("event=ipc_bad_proto name=%s type=%" PRIu32,
			    proto->name, t->type);
		for (j = 0; j < i; j++)
			if (proto->types[j].type == t->type)
				log_panic("event=ipc_bad_proto name=%s "
				    "duplicate_type=%" PRIu32, proto->name,
				    t->type);
	}
}

/* The table entry for type, or NULL if proto does not accept it. */
static const struct ipc_type *
ipc_proto_type(const struct ipc_proto *proto, uint32_t type)
{
	size_t i;

	for (i = 0; i < proto->ntypes; i++)
		if (proto->types[i].type == type)
			return &proto->types[i];
	return NULL;
}

struct ipc_decoder *
ipc_decoder_new(const struct ipc_proto *proto)
{
	struct ipc_decoder *d = xcalloc(1, sizeof(*d));
	size_t i;

	if (proto != NULL)
		ipc_proto_check(proto);
	d->proto = proto;
	buf_init(&d->payload, IPC_MAX_PAYLOAD);
	buf_init(&d->peer_name, 0);
	for (i = 0; i < IPC_MAX_FDS; i++)
		d->fds[i] = -1;
	return d;
}

void
ipc_decoder_free(struct ipc_decoder **dp)
{
	struct ipc_decoder *d = *dp;

	if (d == NULL)
		return;
	ipc_close_fds(d->fds, d->nfds);
	buf_free(&d->payload);
	buf_free(&d->peer_name);
	free(d);
	*dp = NULL;
}

size_t
ipc_decoder_want(const struct ipc_decoder *d)
{
	if (d->error != NULL || d->complete)
		return 0;
	if (d->hdr_len < IPC_HEADER_SIZE)
		return IPC_HEADER_SIZE - d->hdr_len;
	return d->len - d->payload.len;
}

/* Mark the stream invalid and drop held fds.  Returns -1. */
static int
ipc_decoder_fail(struct ipc_decoder *d, const char *why, const char **error_r)
{
	if (d->error == NULL)
		d->error = why;
	ipc_close_fds(d->fds, d->nfds);
	*error_r = d->error;
	return -1;
}

/* Forget the finished frame and expect the next header. */
static void
ipc_decoder_reset(struct ipc_decoder *d)
{
	ipc_close_fds(d->fds, d->nfds);
	d->nfds = 0;
	d->hdr_len = 0;
	d->complete = 0;
	buf_reset(&d->payload);
}

/* Check a complete header against the protocol: NULL, or why it fails. */
static const char *
ipc_decoder_check_header(struct ipc_decoder *d)
{
	const struct ipc_type *t;
	uint32_t min_len = 0, max_len = IPC_MAX_PAYLOAD, max_fds = IPC_MAX_FDS;

	memcpy(&d->type, d->hdr, 4);
	memcpy(&d->len, d->hdr + 4, 4);
	memcpy(&d->id, d->hdr + 8, 4);
	if (d->proto != NULL) {
		if (!d->hello_seen) {
			if (d->type != IPC_HELLO)
				return "frame_before_hello";
			min_len = IPC_HELLO_MIN_LEN;
			max_len = IPC_HELLO_MAX_LEN;
			max_fds = 0;
		} else if (d->type == IPC_HELLO) {
			return "duplicate_hello";
		} else if ((t = ipc_proto_type(d->proto, d->type)) == NULL) {
			return "unknown_type";
		} else {
			min_len = t->min_len;
			max_len = t->max_len;
			max_fds = t->max_fds;
		}
	}
	if (d->len < min_len)
		return "length_too_short";
	if (d->len > max_len)
		return "length_too_long";
	if (d->nfds > max_fds)
		return "too_many_fds";
	return NULL;
}

/* Check the peer's hello (a complete HELLO frame) names our protocol. */
static const char *
ipc_decoder_hello(struct ipc_decoder *d)
{
	struct ipc_cursor c;
	const char *name;

	ipc_cursor_set(&c, &d->payload, d->fds, d->nfds);
	if (ipc_get_str(&c, &name) < 0 || ipc_get_end(&c) < 0)
		return c.error;
	if (name == NULL)
		return "hello_without_name";
	buf_reset(&d->peer_name);
	buf_put_safe(&d->peer_name, name, strlen(name), IPC_NAME_MAX);
	if (strcmp(name, d->proto->name) != 0)
		return "protocol_mismatch";
	return NULL;
}

int
ipc_decoder_feed(struct ipc_decoder *d, const void *p, size_t n,
    const int *fds, size_t nfds, const char **error_r)
{
	const char *why;

	if (d->complete)
		log_panic("event=ipc_decoder_misuse reason=frame_pending");
	if (d->error != NULL) {
		for (; nfds > 0; nfds--)
			(void)close(fds[nfds - 1]);
		*error_r = d->error;
		return -1;
	}
	if (n == 0 || n > ipc_decoder_want(d))
		log_panic("event=ipc_decoder_misuse n=%zu want=%zu", n,
		    ipc_decoder_want(d));
	if (nfds > 0) {
		/* Take ownership first, so every path below closes them. */
		size_t i, keep = nfds < IPC_MAX_FDS ? nfds : IPC_MAX_FDS;

		for (i = keep; i < nfds; i++)
			(void)close(fds[i]);
		if (d->hdr_len != 0) {
			for (i = 0; i < keep; i++)
				(void)close(fds[i]);
			return ipc_decoder_fail(d, "fds_mid_frame", error_r);
		}
		memcpy(d->fds, fds, keep * sizeof(int));
		d->nfds = keep;
		if (nfds > IPC_MAX_FDS)
			return ipc_decoder_fail(d, "too_many_fds", error_r);
	}
	if (d->hdr_len < IPC_HEADER_SIZE) {
		memcpy(d->hdr + d->hdr_len, p, n);
		d->hdr_len += n;
		if (d->hdr_len < IPC_HEADER_SIZE)
			return 0;
		if ((why = ipc_decoder_check_header(d)) != NULL)
			return ipc_decoder_fail(d, why, error_r);
		if (buf_reserve(&d->payload, d->len) < 0)
			log_panic("event=ipc_decoder_reserve len=%" PRIu32, d->len);
	} else if (buf_append(&d->payload, p, n) < 0) {
		log_panic("event=ipc_decoder_append len=%zu n=%zu",
		    d->payload.len, n);
	}
	if (d->payload.len < d->len)
		return 0;
	if (d->proto != NULL && d->type == IPC_HELLO) {
		if ((why = ipc_decoder_hello(d)) != NULL)
			return ipc_decoder_fail(d, why, error_r);
		d->hello_seen = 1;
		ipc_decoder_reset(d);
		return 0;
	}
	d->complete = 1;
	return 1;
}

void
ipc_decoder_frame(struct ipc_decoder *d, uint32_t *type_r, uint32_t *id_r,
    struct ipc_cursor *c)
{
	if (!d->complete)
		log_panic("event=ipc_decoder_misuse reason=no_frame");
	*type_r = d->type;
	*id_r = d->id;
	ipc_cursor_set(c, &d->payload, d->fds, d->nfds);
}

int
ipc_decoder_next(struct ipc_decoder *d, struct ipc_cursor *c,
    const char **error_r)
{
	if (!d->complete)
		log_panic("event=ipc_decoder_misuse reason=no_frame");
	if (ipc_get_end(c) < 0) {
		/* Keep the header so the caller can log which frame it was. */
		d->complete = 0;
		return ipc_decoder_fail(d, c->error, error_r);
	}
	ipc_decoder_reset(d);
	return 0;
}

/* --- Socket I/O shared by links and the blocking helpers -------------------- */

/*
 * One non-blocking recvmsg of at most n bytes, collecting the fds that came
 * with them (close-on-exec) into fds[IPC_MAX_FDS].  Returns the byte count
 * (> 0) with *nfds_r set, 0 at EOF, or -1 with errno set: EAGAIN when there
 * is nothing to read, else *error_r says why (fds already closed).
 */
ssize_t
ipc_recv_some(int fd, void *p, size_t n, int *fds, size_t *nfds_r,
    const char **error_r)
{
	union ipc_cmsg cm;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *ch;
	const char *bad = NULL;
	size_t nfds = 0;
	ssize_t r;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = p;
	iov.iov_len = n;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	do {
		r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		*error_r = "read_error";
		return -1;
	}
	for (ch = CMSG_FIRSTHDR(&msg); ch != NULL; ch = CMSG_NXTHDR(&msg, ch)) {
		const unsigned char *data = CMSG_DATA(ch);
		size_t i, k;

		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS ||
		    ch->cmsg_len < CMSG_LEN(0)) {
			bad = "unexpected_control_message";
			continue;
		}
		k = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			int rfd;

			memcpy(&rfd, data + i * sizeof(int), sizeof(int));
			if (nfds < IPC_MAX_FDS) {
				fds[nfds++] = rfd;
			} else {
				(void)close(rfd);
				bad = "too_many_fds";
			}
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		bad = "too_many_fds";
	if (bad != NULL || (r == 0 && nfds > 0)) {
		ipc_close_fds(fds, nfds);
		if (bad == NULL)
			return 0;
		*error_r = bad;
		errno = EPROTO;
		return -1;
	}
	*nfds_r = nfds;
	return r;
}

/* Fill hdr with a frame header for m. */
void
ipc_header(unsigned char hdr[IPC_HEADER_SIZE], const struct ipc_msg *m)
{
	uint32_t len = (uint32_t)m->payload.len;

	memcpy(hdr, &m->type, 4);
	memcpy(hdr + 4, &len, 4);
	memcpy(hdr + 8, &m->id, 4);
}

void
ipc_msg_encode(const struct ipc_msg *m, struct buf *out)
{
	unsigned char hdr[IPC_HEADER_SIZE];

	if (m->nfds > 0 || m->payload.len > IPC_MAX_PAYLOAD)
		log_panic("event=bug where=ipc_msg_encode nfds=%zu len=%zu",
		    m->nfds, m->payload.len);
	ipc_header(hdr, m);
	if (buf_append(out, hdr, sizeof(hdr)) < 0 || (m->payload.len > 0 &&
	    buf_append(out, m->payload.data, m->payload.len) < 0))
		log_panic("event=overflow where=ipc_msg_encode");
}

/* Attach fds[0..nfds) to msg as SCM_RIGHTS, using cm for the storage. */
void
ipc_attach_fds(struct msghdr *msg, union ipc_cmsg *cm, const int *fds,
    size_t nfds)
{
	struct cmsghdr *ch;

	memset(cm, 0, sizeof(*cm));
	msg->msg_control = cm->buf;
	msg->msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	ch = CMSG_FIRSTHDR(msg);
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(ch), fds, nfds * sizeof(int));
}

/* --- Links over the event loop ---------------------------------------------- */

/* One queued outgoing frame: header and payload, and dup'd fds until the
 * first byte is sent. */
struct ipc_out {
	struct ipc_out *next;
	size_t len, off;		/* frame bytes, bytes already sent */
	int fds[IPC_MAX_FDS];		/* owned dups */
	size_t nfds;
	unsigned char data[];
};

struct ipc_link {
	struct ev_loop *loop;
	struct ev_io *io;		/* NULL once closed */
	int fd;
	const struct ipc_proto *proto;
	void *arg;
	struct ipc_decoder *dec;
	struct ipc_out *out_head, **out_tail;
	size_t out_bytes, out_fds;	/* queued, for the backlog limit */
	long peer_pid;			/* for log lines; -1 if unknown */
	int flush_queued;		/* ipc_link_deferred() is queued */
	unsigned char rbuf[IPC_READ_CHUNK];
};

static void ipc_link_deferred(void *arg);

/* Append formatted text to a log line under construction. */
static void __attribute__((format(printf, 2, 3)))
ipc_log_add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	/* Uncapped, so only an encoding error fails, leaving b as it was. */
	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	(void)r;
}

/* Drop every queued frame, closing its fds. */
static void
ipc_link_drop_output(struct ipc_link *l)
{
	struct ipc_out *o;

	while ((o = l->out_head) != NULL) {
		l->out_head = o->next;
		ipc_close_fds(o->fds, o->nfds);
		free(o);
	}
	l->out_tail = &l->out_head;
	l->out_bytes = 0;
	l->out_fds = 0;
}

/*
 * Close the link for reason: log it (err: a saved errno or 0), stop the
 * watch and close the fd at the end of the batch, drop queued output and
 * held fds, then tell the owner, who may free the link.  Returns -1; the
 * caller must not touch l afterwards.
 */
static int
ipc_link_fail(struct ipc_link *l, enum log_level level, const char *reason,
    int err)
{
	struct ipc_decoder *d = l->dec;
	struct buf line = BUF_INIT;

	ipc_log_add(&line, "event=ipc_close proto=%s peer_pid=%ld reason=%s",
	    l->proto->name, l->peer_pid, reason);
	if (err != 0)
		ipc_log_add(&line, " error=\"%s\"", strerror(err));
	if (d->hdr_len == IPC_HEADER_SIZE)
		ipc_log_add(&line, " type=%" PRIu32 " len=%" PRIu32
		    " id=%" PRIu32 " fds=%zu", d->type, d->len, d->id, d->nfds);
	if (d->peer_name.len > 0)
		ipc_log_add(&line, " peer_proto=\"%s\"", buf_cstr(&d->peer_name));
	log_msg(level, "%s", buf_cstr(&line));
	buf_free(&line);

	ev_io_close(&l->io);
	ipc_link_drop_output(l);
	ipc_decoder_free(&l->dec);
	l->proto->on_close(l, reason, l->arg);
	return -1;
}

/* Queue a frame for m (payload already bounded) of which the first sent
 * bytes already went out (with the fds, if sent > 0).  0, or -1 with errno
 * if an fd could not be duplicated. */
static int
ipc_link_queue(struct ipc_link *l, const struct ipc_msg *m, size_t sent)
{
	size_t len = IPC_HEADER_SIZE + m->payload.len, i;
	struct ipc_out *o = xmalloc(xadd(sizeof(*o), len));

	o->next = NULL;
	o->len = len;
	o->off = sent;
	o->nfds = 0;
	for (i = 0; sent == 0 && i < m->nfds; i++) {
		if ((o->fds[i] = fcntl(m->fds[i], F_DUPFD_CLOEXEC, 0)) < 0) {
			int saved = errno;

			ipc_close_fds(o->fds, o->nfds);
			free(o);
			errno = saved;
			return -1;
		}
		o->nfds++;
	}
	ipc_header(o->data, m);
	if (m->payload.len > 0)
		memcpy(o->data + IPC_HEADER_SIZE, m->payload.data, m->payload.len);
	*l->out_tail = o;
	l->out_tail = &o->next;
	l->out_bytes += len - sent;
	l->out_fds += o->nfds;
	/* Write at the end of the batch, unless already waiting for room. */
	if (!l->flush_queued && !(ev_io_interest(l->io) & EV_WRITE)) {
		l->flush_queued = 1;
		ev_defer(l->loop, ipc_link_deferred, l);
	}
	return 0;
}

/* Account for n bytes written from the head of the queue. */
static void
ipc_link_sent(struct ipc_link *l, size_t n)
{
	struct ipc_out *o;

	while (n > 0 && (o = l->out_head) != NULL) {
		size_t left = o->len - o->off;

		if (n < left) {
			o->off += n;
			l->out_bytes -= n;
			return;
		}
		n -= left;
		l->out_bytes -= left;
		l->out_head = o->next;
		if (l->out_head == NULL)
			l->out_tail = &l->out_head;
		free(o);
	}
}

/*
 * Write queued frames until done or the socket is full.  A frame carrying
 * fds always starts a sendmsg, so they travel with its first byte.  0, or
 * -1 if the link was closed (l may be gone).
 */
static int
ipc_link_flush(struct ipc_link *l)
{
	while (l->out_head != NULL) {
		struct ipc_out *head = l->out_head, *o;
		struct iovec iov[IPC_WRITE_IOV];
		union ipc_cmsg cm;
		struct msghdr msg;
		size_t niov = 0;
		ssize_t r;

		memset(&msg, 0, sizeof(msg));
		for (o = head; o != NULL && niov < IPC_WRITE_IOV; o = o->next) {
			if (o != head && o->nfds > 0)
				break;
			iov[niov].iov_base = o->data + o->off;
			iov[niov].iov_len = o->len - o->off;
			niov++;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = niov;
		if (head->nfds > 0)
			ipc_attach_fds(&msg, &cm, head->fds, head->nfds);
		r = sendmsg(l->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_set(l->io, EV_READ | EV_WRITE);
				return 0;
			}
			/* The peer hung up: as ordinary as an EOF (smtpd's
			 * notices to qmgr close before qmgr's hello arrives). */
			if (errno == EPIPE || errno == ECONNRESET)
				return ipc_link_fail(l, LOG_LEVEL_DEBUG, "peer_closed",
				    errno);
			return ipc_link_fail(l, LOG_LEVEL_WARN, "write_error",
			    errno);
		}
		if (head->nfds > 0) {
			/* The kernel holds its own references now. */
			l->out_fds -= head->nfds;
			ipc_close_fds(head->fds, head->nfds);
			head->nfds = 0;
		}
		ipc_link_sent(l, (size_t)r);
	}
	ev_io_set(l->io, EV_READ);
	return 0;
}

/* Hand a complete frame to the protocol's handler, then check it consumed
 * everything.  0, or -1 if the link was closed. */
static int
ipc_link_dispatch(struct ipc_link *l)
{
	struct ipc_cursor c;
	const char *why;
	uint32_t type, id;

	ipc_decoder_frame(l->dec, &type, &id, &c);
	if (l->proto->on_msg(l, type, id, &c, l->arg) < 0)
		return ipc_link_fail(l, LOG_LEVEL_WARN,
		    c.error != NULL ? c.error : "handler_refused", 0);
	if (ipc_decoder_next(l->dec, &c, &why) < 0)
		return ipc_link_fail(l, LOG_LEVEL_WARN, why, 0);
	return 0;
}

/* Feed n read bytes to the decoder (with fds if given) and dispatch a
 * frame they complete.  0, or -1 if the link was closed. */
static int
ipc_link_feed(struct ipc_link *l, const unsigned char *p, size_t n,
    const int *fds, size_t nfds)
{
	const char *why;
	int r;

	r = ipc_decoder_feed(l->dec, p, n, fds, nfds, &why);
	if (r < 0)
		return ipc_link_fail(l, LOG_LEVEL_WARN, why, 0);
	if (r == 1 && ipc_link_dispatch(l) < 0)
		return -1;
	return 0;
}

/*
 * Read and dispatch frames until the socket is drained or the budget is
 * spent.  Once a header is complete, a read asks for the rest of the frame
 * and the next header (see the file comment); fds in it go with the next
 * frame's part if the read reached it, else with the current frame's,
 * where the decoder refuses them unless it is a frame start.  A short read
 * ends the round: the level-triggered watch calls again if more came in
 * meanwhile, which saves the read that would return EAGAIN.  0, or -1 if
 * the link was closed.
 */
static int
ipc_link_read(struct ipc_link *l)
{
	int fds[IPC_MAX_FDS];
	const char *why;
	size_t nfds, rest, want, first;
	ssize_t n;
	int budget;

	for (budget = 0; budget < IPC_READ_BUDGET; budget++) {
		rest = ipc_decoder_want(l->dec);
		want = rest;
		if (l->dec->hdr_len == IPC_HEADER_SIZE)
			want += IPC_HEADER_SIZE;
		if (want > sizeof(l->rbuf))
			want = sizeof(l->rbuf);
		n = ipc_recv_some(l->fd, l->rbuf, want, fds, &nfds, &why);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			/* A reset between frames is a hang-up like an EOF
			 * (a peer that closed with our hello unread). */
			if (errno == ECONNRESET && l->dec->hdr_len == 0)
				return ipc_link_fail(l, LOG_LEVEL_DEBUG, "peer_closed",
				    errno);
			return ipc_link_fail(l, LOG_LEVEL_WARN, why,
			    errno == EPROTO ? 0 : errno);
		}
		if (n == 0) {
			if (l->dec->hdr_len > 0)
				return ipc_link_fail(l, LOG_LEVEL_WARN,
				    "eof_mid_frame", 0);
			return ipc_link_fail(l, LOG_LEVEL_DEBUG, "eof", 0);
		}
		first = (size_t)n < rest ? (size_t)n : rest;
		if (first < (size_t)n) {
			/* The current frame ends inside this read and the
			 * next one starts: the fds are the next frame's. */
			if (ipc_link_feed(l, l->rbuf, first, NULL, 0) < 0) {
				ipc_close_fds(fds, nfds);	/* l is gone */
				return -1;
			}
			if (ipc_link_feed(l, l->rbuf + first, (size_t)n - first,
			    fds, nfds) < 0)
				return -1;
		} else if (ipc_link_feed(l, l->rbuf, first, fds, nfds) < 0) {
			return -1;
		}
		if ((size_t)n < want)
			return 0;
	}
	return 0;
}

/* The deferred call: write what ipc_link_send() queued. */
static void
ipc_link_deferred(void *arg)
{
	struct ipc_link *l = arg;

	l->flush_queued = 0;
	if (l->io != NULL)
		(void)ipc_link_flush(l);
}

/* The loop's callback: write what is queued, then read. */
static void
ipc_link_io(struct ev_io *io, int fd, int events, void *arg)
{
	struct ipc_link *l = arg;

	(void)io;
	(void)fd;
	if ((events & EV_WRITE) && ipc_link_flush(l) < 0)
		return;
	if (events & (EV_READ | EV_ERROR))
		(void)ipc_link_read(l);
}

struct ipc_link *
ipc_link_new(struct ev_loop *loop, int fd, const struct ipc_proto *proto,
    void *arg)
{
	struct ipc_link *l;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct ipc_msg hello;
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) < 0 || (!(fl & O_NONBLOCK) &&
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		log_panic("event=ipc_link_bad_fd fd=%d error=\"%s\"", fd,
		    strerror(errno));
	l = xcalloc(1, sizeof(*l));
	l->dec = ipc_decoder_new(proto);	/* checks the type table */
	l->loop = loop;
	l->fd = fd;
	l->proto = proto;
	l->arg = arg;
	l->out_tail = &l->out_head;
	l->peer_pid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		l->peer_pid = (long)cred.pid;
	l->io = ev_io_add(loop, fd, EV_READ, ipc_link_io, l);

	ipc_msg_init(&hello, IPC_HELLO, 0);
	ipc_put_str(&hello, proto->name);
	if (ipc_link_queue(l, &hello, 0) < 0)
		log_panic("event=ipc_hello_queue_failed");
	ipc_msg_free(&hello);
	return l;
}

void
ipc_link_free(struct ipc_link **lp)
{
	struct ipc_link *l = *lp;

	if (l == NULL)
		return;
	if (l->flush_queued)
		ev_defer_cancel(l->loop, ipc_link_deferred, l);
	if (l->io != NULL)
		ev_io_close(&l->io);
	ipc_link_drop_output(l);
	ipc_decoder_free(&l->dec);
	free(l);
	*lp = NULL;
}

/*
 * A frame with fds and nothing queued before it: try to send it at once,
 * which spares duplicating the fds (the kernel takes its own references).
 * Returns the bytes sent: all of the frame (nothing to queue), part of it
 * (the fds went with the first byte; the rest is queued), or 0 (nothing
 * went out, e.g. EAGAIN; a real error shows again when the queued frame is
 * written from the loop, so no callback runs from here).
 */
static size_t
ipc_link_send_now(struct ipc_link *l, const struct ipc_msg *m)
{
	unsigned char hdr[IPC_HEADER_SIZE];
	struct iovec iov[2];
	union ipc_cmsg cm;
	struct msghdr msg;
	ssize_t r;

	if (m->nfds == 0 || l->out_head != NULL ||
	    (ev_io_interest(l->io) & EV_WRITE))
		return 0;
	ipc_header(hdr, m);
	iov[0].iov_base = hdr;
	iov[0].iov_len = IPC_HEADER_SIZE;
	iov[1].iov_base = m->payload.data;
	iov[1].iov_len = m->payload.len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = m->payload.len > 0 ? 2 : 1;
	ipc_attach_fds(&msg, &cm, m->fds, m->nfds);
	do {
		r = sendmsg(l->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (r < 0 && errno == EINTR);
	return r > 0 ? (size_t)r : 0;
}

int
ipc_link_send(struct ipc_link *l, const struct ipc_msg *m)
{
	size_t len, sent;

	if (l->io == NULL)
		return -1;
	if (m->payload.len > IPC_MAX_PAYLOAD) {
		log_warn("event=ipc_send_refused proto=%s reason=payload_too_large "
		    "type=%" PRIu32 " len=%zu", l->proto->name, m->type,
		    m->payload.len);
		return -1;
	}
	len = IPC_HEADER_SIZE + m->payload.len;
	if (l->out_bytes > IPC_BACKLOG_MAX - len ||
	    l->out_fds + m->nfds > IPC_BACKLOG_FDS) {
		log_warn("event=ipc_send_refused proto=%s reason=backlog_full "
		    "type=%" PRIu32 " queued_bytes=%zu queued_fds=%zu",
		    l->proto->name, m->type, l->out_bytes, l->out_fds);
		return -1;
	}
	sent = ipc_link_send_now(l, m);
	if (sent == len)
		return 0;
	if (ipc_link_queue(l, m, sent) < 0) {
		log_warn("event=ipc_send_refused proto=%s reason=dup_failed "
		    "type=%" PRIu32 " error=\"%s\"", l->proto->name, m->type,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
ipc_link_peer(struct ipc_link *l, pid_t *pid_r, uid_t *uid_r, gid_t *gid_r)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	if (l->io == NULL)
		return -1;
	if (getsockopt(l->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
		return -1;
	*pid_r = cred.pid;
	*uid_r = cred.uid;
	*gid_r = cred.gid;
	return 0;
}

