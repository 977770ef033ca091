/*
 * ios: a buffered, non-blocking stream over a socket, optionally in TLS.
 *
 * The stream owns one ev watch whose interest is recomputed after every
 * state change (ios_update).  Work the owner triggers (writes, resuming
 * reads, errors found inside an ios_* call) is done in one deferred call
 * per stream, so callbacks only ever run from the loop: from the watch,
 * the idle timer or that deferred call, each of which ends in
 * ios_deliver().  While a callback runs the stream is "busy"; ios_free()
 * inside it releases everything but the struct, which ios_deliver() frees
 * when the callback returns.
 *
 * Output is written first and watched for later: while a deferred flush
 * is queued the watch does not ask for EV_WRITE, and the flush (at the end
 * of the batch) sends what it can; only output the socket refused (EAGAIN,
 * or TLS WANT_WRITE/WANT_READ) makes the watch ask for writability.  A
 * reply therefore costs one send() and no epoll change.
 *
 * Both buffers keep a read offset so that consuming from the front is
 * O(1); they are compacted only when the consumed part is at least as
 * large as what is left, which keeps copying linear overall.
 *
 * The peer's EOF (a half-close) only stops reading from the socket: the
 * stream stays open until the owner has seen the input still buffered and
 * its replies are written (ios_eof_check), so pipelined commands followed
 * by a FIN are all answered.  eof_offered says that an on_read ran after
 * the EOF and nothing was consumed since, which is what stops on_read from
 * being offered again for a partial line nobody will complete.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "ev.h"
#include "ios.h"
#include "log.h"
#include "tlsctx.h"
#include "xalloc.h"

/* Bytes read or written per system call / TLS record. */
#define IOS_CHUNK 16384

enum ios_tls {
	IOS_TLS_NONE,
	IOS_TLS_HANDSHAKE,
	IOS_TLS_ACTIVE,
};

/* Work for the deferred call. */
#define IOS_DEFER_FLUSH 0x1	/* write queued output */
#define IOS_DEFER_READ 0x2	/* read decrypted bytes OpenSSL holds */
#define IOS_DEFER_KICK 0x4	/* call on_read for buffered input */

struct ios {
	struct ev_loop *loop;
	int fd;
	struct ev_io *io;
	struct ev_timer *idle;
	struct ios_limits lim;
	struct ios_callbacks cb;
	void *arg;

	struct buf in;		/* live input is in.data[in_off .. in.len) */
	size_t in_off;
	struct buf out;		/* pending output is out.data[out_off .. out.len) */
	size_t out_off;
	size_t clear_out;	/* pending bytes to send in clear before TLS */

	SSL *ssl;
	enum ios_tls tls;
	int hs_want;		/* EV_READ or EV_WRITE the handshake waits for */
	int read_wants_write;	/* SSL_read said WANT_WRITE */
	int write_wants_read;	/* SSL_write said WANT_READ */
	int read_starved;	/* TLS read stopped on a full buffer */

	int reading;		/* the owner wants input */
	int skipping;		/* discarding the rest of an overlong line */
	int flush_closing;	/* ios_flush_close() was called */
	int eof;		/* the peer closed its side: no more reading */
	int eof_offered;	/* on_read ran since the EOF, nothing consumed */
	const char *eof_text;	/* the close text for the EOF (static) */
	int closed;		/* dead: on_close delivered or pending */

	int want_read_cb;	/* on_read is due */
	int want_drained_cb;	/* on_drained is due */
	int close_pending;	/* on_close is due */
	enum ios_close close_why;
	char close_text[256];

	int defer_flags;
	int defer_queued;
	int busy;		/* inside a callback */
	int freed;		/* ios_free() ran during a callback */
};

static void ios_deferred(void *arg);

/* Bytes of live input. */
static size_t
in_live(const struct ios *s)
{
	return s->in.len - s->in_off;
}

/* Queue deferred work for the stream. */
static void
ios_schedule(struct ios *s, int flags)
{
	s->defer_flags |= flags;
	if (!s->defer_queued) {
		s->defer_queued = 1;
		ev_defer(s->loop, ios_deferred, s);
	}
}

/* Mark the stream dead for a reason; on_close follows from the loop. */
static void
ios_fail(struct ios *s, enum ios_close why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
ios_fail(struct ios *s, enum ios_close why, const char *fmt, ...)
{
	va_list ap;

	if (s->closed)
		return;
	s->closed = 1;
	s->close_pending = 1;
	s->close_why = why;
	va_start(ap, fmt);
	(void)vsnprintf(s->close_text, sizeof(s->close_text), fmt, ap);
	va_end(ap);
	ev_timer_del(&s->idle);
	if (s->io != NULL)
		ev_io_set(s->io, 0);
	ios_schedule(s, 0);
}

/* Fail with the TLS error queue as the reason. */
static void
ios_fail_tls(struct ios *s, const char *what)
{
	ios_fail(s, IOS_CLOSE_TLS, "%s: %s", what, tls_last_error());
}

/* Whether the stream should pull more input from the socket now. */
static int
ios_can_read(const struct ios *s)
{
	return !s->closed && !s->eof && s->reading && !s->flush_closing &&
	    s->tls != IOS_TLS_HANDSHAKE && in_live(s) < s->lim.max_input;
}

/* The peer closed its side: stop reading, and let the owner see what is
 * still buffered (the close follows from ios_eof_check). */
static void
ios_peer_eof(struct ios *s, const char *text)
{
	s->eof = 1;
	s->eof_text = text;
	s->read_starved = 0;
	if (in_live(s) > 0)
		s->want_read_cb = 1;
}

/* The owner consumed input: after the EOF, what is left may be worth
 * another on_read, and the close waits for the deferred check. */
static void
ios_in_progress(struct ios *s)
{
	if (!s->eof || s->closed)
		return;
	s->eof_offered = 0;
	ios_schedule(s, 0);
}

/*
 * After the peer's EOF, close once the owner reads (is not paused), has
 * had an on_read for what is buffered without consuming more, and all
 * output is written.  Input that was not offered yet is offered first.
 * Runs only from the loop (ios_deliver), never inside the owner's calls,
 * so replies queued right after ios_set_reading(s, 1) are not lost.
 */
static void
ios_eof_check(struct ios *s)
{
	if (!s->eof || s->closed || s->flush_closing || !s->reading ||
	    s->tls == IOS_TLS_HANDSHAKE)
		return;
	if (in_live(s) > 0 && !s->eof_offered) {
		ios_schedule(s, IOS_DEFER_KICK);
		return;
	}
	if (s->out.len > s->out_off)
		return;		/* the flush comes back here when done */
	ios_fail(s, IOS_CLOSE_EOF, "%s", s->eof_text);
}

/* Recompute the watch's interest from the stream's state. */
static void
ios_update(struct ios *s)
{
	int want = 0;

	if (s->closed || s->io == NULL)
		return;
	if (s->tls == IOS_TLS_HANDSHAKE) {
		want = s->clear_out > 0 ? EV_WRITE : s->hs_want;
	} else {
		if (ios_can_read(s))
			want |= s->read_wants_write ? EV_WRITE : EV_READ;
		/* A queued flush tries the write first. */
		if (s->out.len > s->out_off &&
		    !(s->defer_flags & IOS_DEFER_FLUSH))
			want |= s->write_wants_read ? EV_READ : EV_WRITE;
	}
	ev_io_set(s->io, want);
	if (s->read_starved && ios_can_read(s)) {
		s->read_starved = 0;
		ios_schedule(s, IOS_DEFER_READ);
	}
}

/* Restart the idle timer after progress. */
static void
ios_touch(struct ios *s)
{
	if (s->idle != NULL)
		ev_timer_reset(s->idle, s->lim.idle_ms);
}

/* Drop n sent bytes from the front of the output buffer. */
static void
out_consume(struct ios *s, size_t n)
{
	s->out_off += n;
	if (s->out_off == s->out.len) {
		buf_reset(&s->out);
		s->out_off = 0;
	}
}

/* Finish ios_flush_close() once everything is written. */
static void
ios_finish_close(struct ios *s)
{
	if (s->tls == IOS_TLS_ACTIVE) {
		ERR_clear_error();
		(void)SSL_shutdown(s->ssl);
		ERR_clear_error();
	}
	ios_fail(s, IOS_CLOSE_EOF, "closed");
}

/* Write as much pending output as the socket (or TLS) takes. */
static void
ios_flush(struct ios *s)
{
	int had = s->out.len > s->out_off;
	ssize_t n;

	while (!s->closed && s->out.len > s->out_off) {
		const char *p = s->out.data + s->out_off;
		size_t len = s->out.len - s->out_off;

		if (s->clear_out > 0 || s->tls == IOS_TLS_NONE) {
			if (s->clear_out > 0)
				len = s->clear_out;
			n = send(s->fd, p, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					ios_fail(s, IOS_CLOSE_ERROR, "write: %s",
					    strerror(errno));
				break;
			}
			if (s->clear_out > 0)
				s->clear_out -= (size_t)n;
		} else if (s->tls == IOS_TLS_ACTIVE) {
			int r, err;

			if (len > IOS_CHUNK)
				len = IOS_CHUNK;
			ERR_clear_error();
			errno = 0;
			r = SSL_write(s->ssl, p, (int)len);
			if (r <= 0) {
				err = SSL_get_error(s->ssl, r);
				s->write_wants_read = err == SSL_ERROR_WANT_READ;
				if (err == SSL_ERROR_WANT_READ && s->eof) {
					/* Nothing more will come to read. */
					ios_fail(s, IOS_CLOSE_ERROR, "write: TLS "
					    "needs input after the peer's EOF");
					break;
				}
				if (err == SSL_ERROR_WANT_READ ||
				    err == SSL_ERROR_WANT_WRITE)
					break;
				if (err == SSL_ERROR_SYSCALL && errno != 0)
					ios_fail(s, IOS_CLOSE_ERROR, "write: %s",
					    strerror(errno));
				else
					ios_fail_tls(s, "TLS write");
				break;
			}
			s->write_wants_read = 0;
			n = r;
		} else {
			break;	/* handshake in progress: output waits */
		}
		out_consume(s, (size_t)n);
		ios_touch(s);
	}
	if (s->closed || s->out.len > s->out_off)
		return;
	if (s->flush_closing && s->tls != IOS_TLS_HANDSHAKE)
		ios_finish_close(s);
	else if (had)
		s->want_drained_cb = 1;
}

/* Make room for reading: compact the input when cheap enough. */
static void
in_compact(struct ios *s)
{
	if (s->in_off > 0 && s->in_off >= in_live(s)) {
		buf_consume(&s->in, s->in_off);
		s->in_off = 0;
	}
}

/* Read clear-text bytes from the socket (one call per event). */
static void
ios_read_plain(struct ios *s, size_t room)
{
	ssize_t n;

	if (buf_reserve(&s->in, room) < 0)
		log_panic("event=ios_input_overflow");
	do
		n = recv(s->fd, s->in.data + s->in.len, room, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		s->in.len += (size_t)n;
		s->in.data[s->in.len] = '\0';
		s->want_read_cb = 1;
	} else if (n == 0) {
		ios_peer_eof(s, "connection closed by peer");
	} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
		ios_fail(s, IOS_CLOSE_ERROR, "read: %s", strerror(errno));
	}
}

/* Read and decrypt until OpenSSL needs the socket or the buffer is full. */
static void
ios_read_tls(struct ios *s)
{
	size_t room;
	int r, err;

	s->read_wants_write = 0;
	while (!s->closed) {
		room = s->lim.max_input - in_live(s);
		if (room == 0) {
			s->read_starved = 1;
			return;
		}
		in_compact(s);
		if (room > IOS_CHUNK)
			room = IOS_CHUNK;
		if (buf_reserve(&s->in, room) < 0)
			log_panic("event=ios_input_overflow");
		ERR_clear_error();
		errno = 0;
		r = SSL_read(s->ssl, s->in.data + s->in.len, (int)room);
		if (r > 0) {
			s->in.len += (size_t)r;
			s->in.data[s->in.len] = '\0';
			s->want_read_cb = 1;
			continue;
		}
		err = SSL_get_error(s->ssl, r);
		switch (err) {
		case SSL_ERROR_WANT_READ:
			return;
		case SSL_ERROR_WANT_WRITE:
			s->read_wants_write = 1;
			return;
		case SSL_ERROR_ZERO_RETURN:
			/* close_notify, or a bare EOF with the context's
			 * SSL_OP_IGNORE_UNEXPECTED_EOF (tlsctx sets it), which
			 * leaves the session usable for writing. */
			ios_peer_eof(s, "TLS closed by peer");
			return;
		case SSL_ERROR_SYSCALL:
			if (errno != 0) {
				ios_fail(s, IOS_CLOSE_ERROR, "read: %s",
				    strerror(errno));
				return;
			}
			ios_peer_eof(s, "connection closed by peer");
			return;
		default:
			if (ERR_GET_REASON(ERR_peek_error()) ==
			    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
				/* OpenSSL failed the session: replies
				 * cannot be sent, so the close is now. */
				ERR_clear_error();
				ios_fail(s, IOS_CLOSE_EOF,
				    "connection closed by peer");
				return;
			}
			ios_fail_tls(s, "TLS read");
			return;
		}
	}
}

/* Pull input from the socket if the stream may read now. */
static void
ios_read(struct ios *s)
{
	size_t room;

	if (!ios_can_read(s))
		return;
	if (s->tls == IOS_TLS_ACTIVE) {
		ios_read_tls(s);
		return;
	}
	in_compact(s);
	room = s->lim.max_input - in_live(s);
	ios_read_plain(s, room > IOS_CHUNK ? IOS_CHUNK : room);
}

/* Advance the TLS handshake. */
static void
ios_handshake(struct ios *s)
{
	int r, err;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->tls = IOS_TLS_ACTIVE;
		s->hs_want = 0;
		s->want_read_cb = 1;
		s->read_starved = 1;	/* app data may sit in OpenSSL already */
		return;
	}
	err = SSL_get_error(s->ssl, r);
	if (err == SSL_ERROR_WANT_READ)
		s->hs_want = EV_READ;
	else if (err == SSL_ERROR_WANT_WRITE)
		s->hs_want = EV_WRITE;
	else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		ios_fail(s, IOS_CLOSE_TLS, "TLS handshake: %s",
		    errno != 0 ? strerror(errno) : "connection closed by peer");
	else
		ios_fail_tls(s, "TLS handshake");
}

/*
 * Run the callbacks that are due: on_drained, on_read, then (after the
 * EOF check) on_close.  Returns -1 if the owner freed the stream (s is
 * gone), 0 otherwise.
 */
static int
ios_deliver(struct ios *s)
{
	s->busy++;
	if (s->want_drained_cb) {
		s->want_drained_cb = 0;
		if (s->cb.on_drained != NULL && !s->closed)
			s->cb.on_drained(s, s->arg);
		if (s->freed)
			goto out;
	}
	if (s->want_read_cb) {
		s->want_read_cb = 0;
		if (s->eof)
			s->eof_offered = 1;	/* until the owner consumes */
		s->cb.on_read(s, s->arg);
		if (s->freed)
			goto out;
	}
	ios_eof_check(s);
	if (s->close_pending) {
		s->close_pending = 0;
		s->cb.on_close(s, s->close_why, s->close_text, s->arg);
	}
out:
	s->busy--;
	if (s->freed) {
		if (s->busy == 0)
			free(s);
		return -1;
	}
	return 0;
}

/* The watch fired: move bytes, then run the callbacks. */
static void
ios_io_cb(struct ev_io *io, int fd, int events, void *arg)
{
	struct ios *s = arg;

	(void)io;
	(void)fd;
	if (s->closed)
		return;
	if (events & EV_READ)
		ios_touch(s);
	if (s->tls == IOS_TLS_HANDSHAKE) {
		if (s->clear_out > 0)
			ios_flush(s);
		if (!s->closed && s->clear_out == 0)
			ios_handshake(s);
		if (!s->closed && s->tls == IOS_TLS_ACTIVE)
			ios_flush(s);
	} else {
		if ((events & (EV_WRITE | EV_ERROR)) ||
		    (s->write_wants_read && (events & EV_READ)))
			ios_flush(s);
		if ((events & (EV_READ | EV_ERROR)) ||
		    (s->read_wants_write && (events & EV_WRITE)))
			ios_read(s);
	}
	ios_update(s);
	(void)ios_deliver(s);
}

/* The idle timer fired. */
static void
ios_idle_cb(struct ev_timer *t, void *arg)
{
	struct ios *s = arg;

	(void)t;
	ios_fail(s, IOS_CLOSE_TIMEOUT, "idle timeout");
	(void)ios_deliver(s);
}

/* The deferred call: work the owner asked for from inside ios_* calls. */
static void
ios_deferred(void *arg)
{
	struct ios *s = arg;
	int flags = s->defer_flags;

	s->defer_flags = 0;
	s->defer_queued = 0;
	if (!s->closed && (flags & IOS_DEFER_FLUSH))
		ios_flush(s);
	if (!s->closed && (flags & IOS_DEFER_READ))
		ios_read(s);
	if (!s->closed && (flags & IOS_DEFER_KICK) && s->reading &&
	    in_live(s) > 0)
		s->want_read_cb = 1;
	ios_update(s);
	(void)ios_deliver(s);
}

struct ios *
ios_new(struct ev_loop *loop, int fd, const struct ios_limits *lim,
    const struct ios_callbacks *cb, void *arg)
{
	struct ios *s;
	int fl;

	if (lim->max_line == 0 || lim->max_input < lim->max_line ||
	    lim->max_input - lim->max_line < 2 || lim->max_output == 0)
		log_panic("event=ios_bad_limits max_line=%zu max_input=%zu "
		    "max_output=%zu", lim->max_line, lim->max_input,
		    lim->max_output);
	if (cb->on_read == NULL || cb->on_close == NULL)
		log_panic("event=ios_missing_callback");
	/* accept4(SOCK_NONBLOCK) usually did it already. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) &&
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		log_warn("event=ios_nonblock_failed fd=%d error=\"%s\"", fd,
		    strerror(errno));

	s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->fd = fd;
	s->lim = *lim;
	s->cb = *cb;
	s->arg = arg;
	s->reading = 1;
	/* Compaction keeps the consumed prefix no larger than the live
	 * part, so twice the ceiling is never reached. */
	buf_init(&s->in, xmul(lim->max_input, 2));
	buf_init(&s->out, xmul(lim->max_output, 2));
	s->io = ev_io_add(loop, fd, 0, ios_io_cb, s);
	if (lim->idle_ms > 0)
		s->idle = ev_timer_add(loop, lim->idle_ms, 0, ios_idle_cb, s);
	ios_update(s);
	return s;
}

void
ios_free(struct ios **sp)
{
	struct ios *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->defer_queued)
		ev_defer_cancel(s->loop, ios_deferred, s);
	s->defer_queued = 0;
	ev_timer_del(&s->idle);
	ev_io_close(&s->io);
	SSL_free(s->ssl);
	s->ssl = NULL;
	s->closed = 1;
	buf_free(&s->in);
	buf_free(&s->out);
	if (s->busy > 0)
		s->freed = 1;
	else
		free(s);
}

void
ios_flush_close(struct ios *s)
{
	if (s->closed || s->flush_closing)
		return;
	s->flush_closing = 1;
	ios_schedule(s, IOS_DEFER_FLUSH);
	ios_update(s);
}

/* ios_read_line() without the EOF bookkeeping. */
static int
read_line(struct ios *s, const char **line_r, size_t *len_r, int *ending_r)
{
	char *start, *lf;
	size_t live, len;
	int ending;

	for (;;) {
		live = in_live(s);
		if (live == 0)
			return 0;
		start = s->in.data + s->in_off;
		lf = memchr(start, '\n', live);
		if (lf == NULL) {
			if (live < s->lim.max_line + 2 && !s->skipping)
				return 0;
			/* Too long for any line: drop what is here and skip
			 * to the next LF. */
			s->in_off += live;
			in_compact(s);
			ios_update(s);
			if (s->skipping)
				return 0;
			s->skipping = 1;
			return -1;
		}
		len = (size_t)(lf - start);
		s->in_off += len + 1;
		if (s->skipping) {
			s->skipping = 0;
			continue;
		}
		ending = IOS_EOL_LF;
		if (len > 0 && start[len - 1] == '\r') {
			len--;
			ending = IOS_EOL_CRLF;
		}
		if (len > s->lim.max_line) {
			in_compact(s);
			ios_update(s);
			return -1;
		}
		start[len] = '\0';
		*line_r = start;
		*len_r = len;
		if (ending_r != NULL)
			*ending_r = ending;
		ios_update(s);
		return 1;
	}
}

int
ios_read_line(struct ios *s, const char **line_r, size_t *len_r, int *ending_r)
{
	size_t live = in_live(s);
	int r;

	r = read_line(s, line_r, len_r, ending_r);
	if (in_live(s) < live)
		ios_in_progress(s);
	return r;
}

const char *
ios_peek(struct ios *s, size_t *len_r)
{
	*len_r = in_live(s);
	return s->in.data != NULL ? s->in.data + s->in_off : "";
}

void
ios_consume(struct ios *s, size_t n)
{
	if (n > in_live(s))
		log_panic("event=ios_consume_past_end n=%zu len=%zu", n,
		    in_live(s));
	s->in_off += n;
	if (n > 0)
		ios_in_progress(s);
	ios_update(s);
}

void
ios_set_reading(struct ios *s, int on)
{
	s->reading = on != 0;
	ios_update(s);
	/* After the EOF the deferred call also checks for the close. */
	if (s->reading && !s->closed && (in_live(s) > 0 || s->eof))
		ios_schedule(s, IOS_DEFER_KICK);
}

/* Fail with IOS_CLOSE_OVERFLOW for output past the ceiling. */
static int
ios_overflow(struct ios *s)
{
	ios_fail(s, IOS_CLOSE_OVERFLOW, "output buffer full (%zu bytes)",
	    s->lim.max_output);
	return -1;
}

/* Compact the output buffer before appending, when cheap enough. */
static void
out_compact(struct ios *s)
{
	if (s->out_off > 0 && s->out_off >= s->out.len - s->out_off) {
		buf_consume(&s->out, s->out_off);
		s->out_off = 0;
	}
}

int
ios_write(struct ios *s, const void *p, size_t n)
{
	if (s->closed)
		return -1;
	if (n == 0)
		return 0;
	if (n > s->lim.max_output - ios_pending(s))
		return ios_overflow(s);
	out_compact(s);
	if (buf_append(&s->out, p, n) < 0)
		return ios_overflow(s);
	ios_schedule(s, IOS_DEFER_FLUSH);
	return 0;
}

int
ios_printf(struct ios *s, const char *fmt, ...)
{
	va_list ap;
	size_t old;
	int r;

	if (s->closed)
		return -1;
	out_compact(s);
	old = s->out.len;
	va_start(ap, fmt);
	r = buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	if (r < 0 || ios_pending(s) > s->lim.max_output) {
		buf_truncate(&s->out, old);
		return ios_overflow(s);
	}
	if (s->out.len > old)
		ios_schedule(s, IOS_DEFER_FLUSH);
	return 0;
}

size_t
ios_pending(const struct ios *s)
{
	return s->out.len - s->out_off;
}

void
ios_wipe_consumed(struct ios *s)
{
	if (s->in.data != NULL && s->in_off > 0)
		explicit_bzero(s->in.data, s->in_off);
}

void
ios_write_last(struct ios *s, const void *p, size_t n)
{
	if (ios_pending(s) > 0 || n > INT_MAX)
		return;
	if (s->tls == IOS_TLS_ACTIVE)
		(void)SSL_write(s->ssl, p, (int)n);
	else if (s->ssl == NULL)
		(void)send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Common part of ios_starttls_server() and _client(). */
static int
ios_starttls(struct ios *s, SSL_CTX *ctx, int server, const char *sni)
{
	SSL *ssl;

	if (s->closed || s->ssl != NULL)
		return -1;
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		return -1;
	if (SSL_set_fd(ssl, s->fd) != 1 ||
	    (sni != NULL && !server &&
	    (SSL_set_tlsext_host_name(ssl, sni) != 1 ||
	    SSL_set1_host(ssl, sni) != 1))) {
		SSL_free(ssl);
		return -1;
	}
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	s->ssl = ssl;

	/* Nothing received in clear text may be read as if it came
	 * through TLS. */
	buf_reset(&s->in);
	s->in_off = 0;
	s->skipping = 0;
	s->want_read_cb = 0;
	s->defer_flags &= ~IOS_DEFER_KICK;

	/* Output queued so far (the "ready to start TLS" reply) still
	 * goes out in clear text before the handshake. */
	s->clear_out = ios_pending(s);
	s->tls = IOS_TLS_HANDSHAKE;
	s->hs_want = server ? EV_READ : EV_WRITE;
	s->read_wants_write = s->write_wants_read = 0;
	ios_update(s);
	return 0;
}

int
ios_starttls_server(struct ios *s, SSL_CTX *ctx)
{
	return ios_starttls(s, ctx, 1, NULL);
}

int
ios_starttls_client(struct ios *s, SSL_CTX *ctx, const char *sni)
{
	return ios_starttls(s, ctx, 0, sni);
}

int
ios_tls_active(const struct ios *s)
{
	return s->tls == IOS_TLS_ACTIVE;
}

SSL *
ios_ssl(struct ios *s)
{
	return s->ssl;
}

int
ios_fd(const struct ios *s)
{
	return s->fd;
}

void
ios_set_idle(struct ios *s, uint64_t idle_ms)
{
	s->lim.idle_ms = idle_ms;
	if (s->closed)
		return;
	if (idle_ms == 0)
		ev_timer_del(&s->idle);
	else if (s->idle == NULL)
		s->idle = ev_timer_add(s->loop, idle_ms, 0, ios_idle_cb, s);
	else
		ev_timer_reset(s->idle, idle_ms);
}
