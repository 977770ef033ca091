/*
 * session: the one session machine of postern's line protocols, server
 * side (smtpd, pop3d, imapd) and client side (the relay client).  It owns
 * the stream (lib/core/ios) and everything every protocol does the same way:
 *
 * - the per-process registry: session ids, peer text, the loopback flag,
 *   the connection limits (lib/core/connlimit), the count for a daemon's
 *   active() and stop-all with the protocol's shutdown notice;
 * - implicit TLS before the greeting, STARTTLS (server and client; the
 *   clear text buffered before it is dropped by ios, the STARTTLS
 *   injection defence), the TLS description and its log line;
 * - strict in-order input: one input mode at a time -- lines, raw bytes
 *   (a count, or until the handler has had enough), or a producer that
 *   writes while output drains -- and no input is looked at while the
 *   session waits on a service (auth, a lookup, the group commit) or more
 *   output than the pause mark is unsent, so pipelined commands see the
 *   state the earlier ones left and their replies go out in order;
 * - one timer per session whose deadline is the phase's (connect, TLS
 *   handshake, command, data, closing); a command line restarts it only
 *   when the whole line is in, raw input with any progress, a producer
 *   whenever the client has read what was sent;
 * - the line-length refusal (the protocol words it), capped formatted
 *   replies, close-after-reply, and the wiping of consumed lines (any
 *   line may carry a password: AUTH, PASS, a SASL response, also a
 *   refused one);
 * - an outbound connect (numeric address) with a connect-phase timeout
 *   and the same reading, timers and TLS.
 *
 * A protocol supplies a struct session_proto (limits, marks, its fixed
 * lines and its hooks) and keeps its own state in the owner it gives
 * each session; it holds only its command table, its check and proceed
 * steps and its reply syntax.  Hooks run from the loop, never from
 * inside a session_* call; none of them may free the session (only the
 * layer does, after proto->closed).
 */
#ifndef POSTERN_SESSION_H
#define POSTERN_SESSION_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "authclient.h"
#include "ev.h"
#include "ios.h"

struct connlimit;
struct session;

/* Which deadline the session's timer runs. */
enum session_phase {
	SESSION_PHASE_CONNECT,	/* outbound: the TCP connect */
	SESSION_PHASE_TLS,	/* a TLS handshake */
	SESSION_PHASE_COMMAND,	/* lines: commands, or a server's replies */
	SESSION_PHASE_DATA,	/* raw bytes in, or a producer's output */
	SESSION_PHASE_CLOSING,	/* the last reply is queued */
	SESSION_PHASES
};

/* What the input loop does next. */
enum session_mode {
	SESSION_MODE_LINES,	/* each line to proto->line */
	SESSION_MODE_BYTES,	/* raw bytes to the handler given */
	SESSION_MODE_PRODUCE,	/* the producer writes, input waits */
};

/* Raw input: use up to n bytes at p, return how many were used. */
typedef size_t session_bytes_fn(struct session *s, const char *p, size_t n);
/* A hook or step with nothing to say back. */
typedef void session_fn(struct session *s);
/* A producer's step: queue some output; 1 when the response is complete
 * (or the session is closing), 0 to be called again. */
typedef int session_produce_fn(struct session *s);
/* The auth service's answer to session_auth() (as auth_done_fn). */
typedef void session_auth_fn(struct session *s, enum auth_result result,
    const char *user, const char *mailbox, uint64_t quota, const char *reason);

/* What a protocol supplies, once per process (static storage). */
struct session_proto {
	const char *service;		/* for auth requests: "smtp", "pop3" */
	struct ios_limits limits;	/* idle_ms must be 0: the timer is ours */
	/* Input is left alone while more than input_pause bytes are unsent;
	 * a producer runs only while fewer than produce_pause are. */
	size_t input_pause;
	size_t produce_pause;
	/* Whole lines without CRLF: the refusals for the connection limits
	 * (all connections, this address) and the shutdown notice (NULL:
	 * none, as for an outbound session). */
	const char *busy_total;
	const char *busy_addr;
	const char *bye;

	/* The connection is ready: greet (server; after implicit TLS) or
	 * start talking (outbound, once connected). */
	session_fn *ready;
	/* A line (without its line ending, NUL-terminated), in lines mode. */
	void (*line)(struct session *s, const char *line, size_t len);
	/* A line longer than limits.max_line was skipped: refuse it. */
	session_fn *too_long;
	/* The command or data deadline passed: queue the goodbye, if the
	 * protocol has one (the session then closes after it).  NULL:
	 * close without a word. */
	session_fn *timeout;
	/* A STARTTLS handshake finished (optional; outbound: EHLO again). */
	session_fn *tls_up;
	/* The session is going (reason for the log): free the owner.  The
	 * session is already off the registry's count. */
	void (*closed)(struct session *s, const char *reason);
};

/* The sessions of one process.  Zero it (session_registry_init), then
 * set what applies; a zeroed registry is safe to stop. */
struct session_registry {
	struct ev_loop *loop;
	const struct session_proto *proto;
	void *ctx;			/* the owner's process state */
	SSL_CTX *tls;			/* server TLS; NULL: none */
	struct connlimit *conns;	/* NULL: no connection limits */
	unsigned max_conns;
	unsigned max_conns_ip;		/* 0: no per-address limit */
	struct auth_client *auth;	/* for session_auth() */
	uint64_t auth_timeout_ms;
	uint64_t timeout_ms[SESSION_PHASES];
	struct session *head;		/* every open session */
	size_t count;			/* how many */
	uint64_t next_id;		/* the last session id given */
};

/*
 * One connection.  The owner reads the first block; the rest is the
 * layer's.
 */
struct session {
	struct session_registry *reg;
	void *owner;			/* the protocol's per-session state */
	uint64_t id;			/* for log lines */
	struct sockaddr_storage peer;
	char addr[64];			/* the peer's address as text */
	int loopback;			/* the peer is a loopback address */
	int outbound;			/* we connected (the relay client) */
	struct ios *ios;		/* NULL only while connecting */
	enum session_mode mode;
	enum session_phase phase;

	struct session *prev, *next;
	struct ev_timer *timer;		/* the phase's deadline */
	struct ev_io *connecting;	/* outbound, until connected */
	int counted;			/* connlimit_enter() counted us */
	int greeted;			/* proto->ready ran */
	int closing;			/* the last reply is queued */
	int waiting;			/* a service's answer is due */
	int untimed;			/* ... and the timer is off meanwhile */
	int out_blocked;		/* input waits for output to drain */
	int tls_logged;
	char tls_text[128];		/* "TLSv1.3:CIPHER" once in TLS */
	/* SESSION_MODE_BYTES */
	session_bytes_fn *bytes_fn;
	session_fn *bytes_end;
	int bytes_counted;
	uint64_t bytes_left;
	/* SESSION_MODE_PRODUCE */
	session_produce_fn *produce_fn;
	/* session_auth() */
	struct auth_pending *auth_pending;
	session_auth_fn *auth_done;
};

/* The longest reply text session_reply() sends, and prefix. */
#define SESSION_REPLY_TEXT 511
#define SESSION_REPLY_PREFIX 32

/* --- The registry ----------------------------------------------------------- */

/* Zero r and set its loop, protocol and owner context. */
void session_registry_init(struct session_registry *r, struct ev_loop *loop,
    const struct session_proto *proto, void *ctx);
/* Shutdown: send each greeted session not closing and not in the middle
 * of a produced response the shutdown notice (best effort, at once:
 * the loop ends after this), then free every session. */
void session_stop_all(struct session_registry *r);

/* --- Starting --------------------------------------------------------------- */

/* A session for the accepted connection fd (ownership passes) from
 * peer, with the protocol's state owner.  Nothing is sent and no hook
 * runs before session_start(). */
struct session *session_new(struct session_registry *r, int fd,
    const struct sockaddr_storage *peer, void *owner);
/* Log the connection on listener, apply the connection limits (a
 * refusal is sent and the session closes after it), then greet -- after
 * the TLS handshake if implicit_tls (no TLS context: the session goes). */
void session_start(struct session *s, const char *listener, int implicit_tls);
/* Connect to host:port (a numeric address) for owner, within the
 * connect deadline; proto->ready runs once connected, proto->closed if
 * that fails.  The session, or NULL with *error_r if no connect could
 * even start. */
struct session *session_connect(struct session_registry *r, const char *host,
    unsigned port, void *owner, const char **error_r);

/* --- Output ----------------------------------------------------------------- */

/* Queue prefix (as is, at most SESSION_REPLY_PREFIX bytes), the text
 * (cut at SESSION_REPLY_TEXT bytes) and CRLF.  Nothing once closing. */
void session_reply(struct session *s, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void session_vreply(struct session *s, const char *prefix, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));
/* Queue raw bytes (multi-line responses).  Nothing once closing. */
void session_write(struct session *s, const void *p, size_t n);
/* Close once the queued output is sent; later replies are dropped. */
void session_close_after(struct session *s);

/* --- Input ------------------------------------------------------------------ */

/* Read lines (the command deadline). */
void session_read_lines(struct session *s);
/* Read raw bytes (the data deadline): fn gets what is buffered, at most
 * the count left of count bytes; when count are used the session reads
 * lines again and end runs.  With count SESSION_UNCOUNTED fn goes on
 * until it calls session_read_lines() itself (end is unused). */
#define SESSION_UNCOUNTED UINT64_MAX
void session_read_bytes(struct session *s, uint64_t count, session_bytes_fn *fn,
    session_fn *end);
/* Run fn (the data deadline) while less than proto->produce_pause bytes
 * are unsent, until it returns 1; then read lines again. */
void session_produce(struct session *s, session_produce_fn *fn);
/* Bytes received and not yet read (an early talker, pipelining). */
size_t session_buffered(struct session *s);

/* --- Waiting on a service --------------------------------------------------- */

/* Input pauses until session_resume(): the deadline goes on (a service
 * that answers within its own timeout), or, untimed, is off meanwhile
 * (our own work, however long it takes). */
void session_wait(struct session *s);
void session_wait_untimed(struct session *s);
/* Input goes on (from the loop); the deadline restarts after an untimed
 * wait or between commands: the wait was not the client's. */
void session_resume(struct session *s);
/* Ask the auth service (registry's auth and auth_timeout_ms; client
 * address and TLS from the session) while the session waits; done gets
 * the answer and calls session_resume() when it is done with it.  A
 * session that goes meanwhile cancels the request. */
void session_auth(struct session *s, const char *mechanism, const char *user,
    const void *password, size_t password_len, session_auth_fn *done);

/* --- TLS -------------------------------------------------------------------- */

/* STARTTLS on an accepted session, after the reply that allows it is
 * queued: the handshake as server with the registry's context, input
 * waiting until it is done.
 * 0, or -1 (logged) if TLS could not start. */
int session_starttls(struct session *s)
	__attribute__((warn_unused_result));
/* The same for an outbound session, as client with ctx, verifying the
 * server's name sni if non-NULL; proto->tls_up runs once it is done. */
int session_starttls_client(struct session *s, SSL_CTX *ctx, const char *sni)
	__attribute__((warn_unused_result));
/* 1 if TLS is up, else 0. */
int session_tls(const struct session *s);
/* "TLSv1.3:CIPHER" while TLS is up (the session's storage), else NULL. */
const char *session_tls_text(struct session *s);

#endif
