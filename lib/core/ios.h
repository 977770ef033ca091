/*
 * ios: a non-blocking, buffered byte stream over a socket, optionally
 * wrapped in TLS (OpenSSL 3), driven by the ev loop.  The protocol
 * daemons (smtpd, pop3d, imapd) and the relay client read lines and
 * blocks from it and queue replies into it.
 *
 * Reading: when new bytes arrive (or TLS records decrypt) the owner's
 * on_read callback runs; it pulls lines with ios_read_line() or raw bytes
 * with ios_peek()/ios_consume() until they say "need more".  Bytes left in
 * the input buffer stay there for the next callback.  Input is capped at
 * limits.max_input bytes; the stream stops reading (back-pressure) while
 * the buffer is full.
 *
 * Writing: ios_write()/ios_printf() append to the output buffer, which is
 * flushed as the socket allows; on_drained runs when it empties after a
 * flush.  Output beyond limits.max_output is an error.
 *
 * TLS: ios_starttls_server()/_client() begin a handshake on the existing
 * connection; input buffered in clear text before it is discarded (the
 * STARTTLS injection defence), and ios_tls_active() tells when it is
 * done.  OpenSSL's WANT_READ/WANT_WRITE are mapped to the ev watch.
 *
 * End of input: the peer's EOF (a FIN, i.e. possibly only a half-close,
 * TLS close_notify, or a bare EOF under TLS) stops reading from the
 * socket but does not end the stream at once.  Bytes already buffered
 * still reach the owner through on_read as usual -- also after it
 * resumes with ios_set_reading(s, 1) if it had paused -- and output it
 * queues is still sent.  on_close(IOS_CLOSE_EOF) follows once the owner
 * is reading (not paused), an on_read ran after the EOF and the owner
 * consumed nothing more (the input is empty, or holds a partial line it
 * cannot complete: on_read is not offered again without progress), and
 * the output buffer is empty.  A write error (the peer closed fully)
 * closes with IOS_CLOSE_ERROR at once, and the idle timer still applies.
 * So a client that pipelines commands and then shuts down its write side
 * gets every reply.  ios_flush_close() is unaffected: it ends the stream
 * once its output is written, whatever input is left.
 *
 * Errors and EOF call on_close once with a reason; the owner then calls
 * ios_free().  Callbacks are never invoked from inside an ios_* call made by
 * the owner; they run from the loop (or a deferred call), so the owner may
 * free the stream in any callback.
 */
#ifndef POSTERN_IOS_H
#define POSTERN_IOS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "ev.h"

struct ios;

struct ios_limits {
	size_t max_line;	/* longest line, without CRLF/LF; > 0 */
	size_t max_input;	/* input buffer ceiling (>= max_line + 2) */
	size_t max_output;	/* output buffer ceiling */
	uint64_t idle_ms;	/* no input for this long closes (0: never) */
};

/* Why a stream closed. */
enum ios_close {
	IOS_CLOSE_EOF,		/* peer closed cleanly (and its input was
				 * offered and replies written, see above),
				 * or ios_flush_close() finished */
	IOS_CLOSE_ERROR,	/* read/write error, reset */
	IOS_CLOSE_TLS,		/* TLS handshake or record error */
	IOS_CLOSE_TIMEOUT,	/* idle_ms passed without input */
	IOS_CLOSE_OVERFLOW,	/* output would exceed max_output */
};

struct ios_callbacks {
	/* New input is available (or TLS finished its handshake). */
	void (*on_read)(struct ios *s, void *arg);
	/* The output buffer became empty after being non-empty.  Optional. */
	void (*on_drained)(struct ios *s, void *arg);
	/* The stream is dead; reason and a short text (static or owned by s,
	 * valid until ios_free). */
	void (*on_close)(struct ios *s, enum ios_close why, const char *text, void *arg);
};

/* Take ownership of the connected socket fd (made non-blocking here). */
struct ios *ios_new(struct ev_loop *loop, int fd, const struct ios_limits *lim,
    const struct ios_callbacks *cb, void *arg);
/* Close the fd (deferred to the end of the loop batch), free buffers and the
 * TLS session, and set *sp = NULL.  Pending output is dropped: call
 * ios_flush_close() to send it first. */
void ios_free(struct ios **sp);
/* Stop reading, send pending output, then close: on_close(IOS_CLOSE_EOF)
 * follows once the output is written (or an error occurs). */
void ios_flush_close(struct ios *s);

/*
 * Line reading.  Returns:
 *   1  a line: *line_r points at it (without the line ending, NUL-terminated,
 *      valid until the next ios_* call), *len_r its length, and *ending_r
 *      (if non-NULL) is IOS_EOL_CRLF or IOS_EOL_LF;
 *   0  need more input;
 *  -1  the line was longer than limits.max_line: the stream skips to the
 *      next LF; the call returns -1 once per overlong line.
 * A bare CR is part of the line; the protocol decides what to do with it.
 */
#define IOS_EOL_CRLF 1
#define IOS_EOL_LF 2
int ios_read_line(struct ios *s, const char **line_r, size_t *len_r, int *ending_r)
	__attribute__((warn_unused_result));
/* The bytes buffered for reading (for BDAT / literals); pointer valid until
 * the next ios_* call. */
const char *ios_peek(struct ios *s, size_t *len_r);
/* Drop n buffered input bytes (n <= the peeked length). */
void ios_consume(struct ios *s, size_t n);
/* Overwrite the input already read and consumed (lines returned by
 * ios_read_line, bytes dropped by ios_consume) with zeros, so a password
 * a client sent does not linger in the buffer; the pointers those calls
 * returned are then dead.  Unread input is kept. */
void ios_wipe_consumed(struct ios *s);
/* Stop (0) or resume (1) reading from the socket.  While stopped, no
 * on_read and no EOF close happen; resuming offers buffered input again
 * (from the loop). */
void ios_set_reading(struct ios *s, int on);

/* Queue bytes for output.  0, or -1 if max_output would be passed (the
 * stream is then closed with IOS_CLOSE_OVERFLOW from the loop). */
int ios_write(struct ios *s, const void *p, size_t n);
int ios_printf(struct ios *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Bytes waiting in the output buffer. */
size_t ios_pending(const struct ios *s);
/*
 * A daemon's last words before it exits (a shutdown notice): write p to
 * the peer at once, bypassing the buffer and the loop.  Best effort:
 * nothing is written while output is still queued or a TLS handshake is
 * under way, and a short or failed write is ignored.
 */
void ios_write_last(struct ios *s, const void *p, size_t n);

/* Start TLS as server / client on the connection.  Clear-text input that
 * was buffered is discarded.  0 started, -1 could not create the session. */
int ios_starttls_server(struct ios *s, SSL_CTX *ctx)
	__attribute__((warn_unused_result));
int ios_starttls_client(struct ios *s, SSL_CTX *ctx, const char *sni)
	__attribute__((warn_unused_result));
/* 1 once the TLS handshake completed, 0 otherwise. */
int ios_tls_active(const struct ios *s);
/* The TLS session (NULL without TLS), e.g. for the version and cipher. */
SSL *ios_ssl(struct ios *s);
/* The socket fd (still owned by the stream). */
int ios_fd(const struct ios *s);
/* Reset the idle timer's deadline to a new value (0: none). */
void ios_set_idle(struct ios *s, uint64_t idle_ms);

#endif
