/*
 * session: the session machine of the line protocols (see session.h).
 *
 * The input loop (session_input) looks at one thing at a time, in order:
 * a produced response first, then -- unless more than the pause mark of
 * output is unsent -- raw bytes or the next line.  It stops whenever the
 * session waits, closes or starts a TLS handshake, and the stream brings
 * it back (on_read when input arrives or reading resumes, on_drained when
 * the output it waited for is gone).  Hooks cannot free the session, so
 * the loop may look at it after each one.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connlimit.h"
#include "log.h"
#include "net.h"
#include "session.h"
#include "xalloc.h"

static const char *const phase_names[SESSION_PHASES] = {
	"connect", "tls", "command", "data", "closing",
};

static void session_input(struct session *s);

/* "client" or "server": who the peer is, for log lines. */
static const char *
role(const struct session *s)
{
	return s->outbound ? "server" : "client";
}

/* Enter phase p and restart the timer with its deadline (unless an
 * untimed wait has it off). */
static void
set_phase(struct session *s, enum session_phase p)
{
	if (s->closing && p != SESSION_PHASE_CLOSING)
		return;		/* the closing deadline stays */
	s->phase = p;
	if (s->untimed)
		return;
	ev_timer_reset(s->timer, s->reg->timeout_ms[p]);
}

/* Unlink, release the connection count, let the owner go and free. */
static void
session_free(struct session *s, const char *reason)
{
	struct session_registry *r = s->reg;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		r->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	r->count--;
	if (s->counted)
		connlimit_leave(r->conns, (const struct sockaddr *)&s->peer);
	if (s->auth_pending != NULL)
		auth_client_cancel(r->auth, s->auth_pending);
	r->proto->closed(s, reason);
	ev_timer_del(&s->timer);
	ev_io_close(&s->connecting);
	ios_free(&s->ios);
	free(s);
}

/* A session on the registry, without a stream yet. */
static struct session *
session_alloc(struct session_registry *r, const struct sockaddr_storage *peer,
    void *owner)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->reg = r;
	s->owner = owner;
	s->id = ++r->next_id;
	s->peer = *peer;
	net_addr_text((const struct sockaddr *)peer, s->addr, sizeof(s->addr));
	s->loopback = net_is_loopback((const struct sockaddr *)peer);
	s->next = r->head;
	if (r->head != NULL)
		r->head->prev = s;
	r->head = s;
	r->count++;
	return s;
}

/* The connection is ready for the protocol. */
static void
session_ready(struct session *s)
{
	s->greeted = 1;
	s->reg->proto->ready(s);
}

/* Log the TLS parameters once the handshake is done. */
static void
tls_done(struct session *s)
{
	SSL *ssl = ios_ssl(s->ios);

	s->tls_logged = 1;
	if (ssl != NULL)
		SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	log_info("event=tls session=%llu %s=%s tls=%s", (unsigned long long)s->id,
	    role(s), s->addr, session_tls_text(s));
}

/* Stop looking at input until the output drains. */
static void
block(struct session *s)
{
	s->out_blocked = 1;
	ios_set_reading(s->ios, 0);
}

/* Counted raw input is complete: lines again, then the handler's end. */
static void
bytes_end(struct session *s)
{
	session_fn *end = s->bytes_end;

	session_read_lines(s);
	end(s);
}

/* Hand buffered bytes to the raw handler.  1 to go on, 0 while more
 * input is needed. */
static int
bytes_input(struct session *s)
{
	const char *p;
	size_t n, used;

	if (s->bytes_counted && s->bytes_left == 0) {
		bytes_end(s);
		return 1;
	}
	p = ios_peek(s->ios, &n);
	if (n == 0)
		return 0;
	if (s->bytes_counted && n > s->bytes_left)
		n = (size_t)s->bytes_left;
	used = s->bytes_fn(s, p, n);
	if (used > n)
		log_panic("event=session_bytes_overrun used=%zu n=%zu", used, n);
	ios_consume(s->ios, used);
	if (s->mode != SESSION_MODE_BYTES)
		return 1;		/* the handler has had enough */
	if (!s->bytes_counted)
		return 0;
	s->bytes_left -= used;
	if (s->bytes_left > 0)
		return 0;
	bytes_end(s);
	return 1;
}

/* Process buffered input until it runs out or the session must wait. */
static void
session_input(struct session *s)
{
	const struct session_proto *p = s->reg->proto;
	const char *line;
	size_t len;
	int r;

	while (s->ios != NULL && !s->waiting && !s->closing &&
	    s->phase != SESSION_PHASE_TLS) {
		if (s->mode == SESSION_MODE_PRODUCE) {
			if (ios_pending(s->ios) >= p->produce_pause) {
				block(s);
				return;
			}
			if (s->produce_fn(s) == 1 && !s->closing)
				session_read_lines(s);
			continue;
		}
		if (ios_pending(s->ios) > p->input_pause) {
			/* A client that pipelines without reading replies
			 * waits until it has read some. */
			block(s);
			return;
		}
		if (s->mode == SESSION_MODE_BYTES) {
			if (bytes_input(s) == 0)
				return;
			continue;
		}
		r = ios_read_line(s->ios, &line, &len, NULL);
		if (r == 0)
			return;
		set_phase(s, SESSION_PHASE_COMMAND);	/* a whole line arrived */
		if (r < 0) {
			p->too_long(s);
			continue;
		}
		p->line(s, line, len);
		/* The line may have carried a password: leave no copy of
		 * it in the input buffer. */
		ios_wipe_consumed(s->ios);
	}
}

/* ios: input arrived, reading resumed, or a TLS handshake finished. */
static void
on_read(struct ios *ios, void *arg)
{
	struct session *s = arg;

	if (!s->tls_logged && ios_tls_active(ios))
		tls_done(s);
	if (s->phase == SESSION_PHASE_TLS) {
		if (!ios_tls_active(ios))
			return;
		set_phase(s, SESSION_PHASE_COMMAND);
		if (!s->greeted)
			session_ready(s);	/* implicit TLS */
		else if (s->reg->proto->tls_up != NULL)
			s->reg->proto->tls_up(s);
	}
	/* Raw input restarts the data deadline with any progress; a line
	 * restarts the command deadline only once it is whole, so a peer
	 * trickling a byte at a time cannot hold the session forever. */
	if (s->mode == SESSION_MODE_BYTES)
		set_phase(s, SESSION_PHASE_DATA);
	session_input(s);
}

/* ios: the output buffer emptied; go on where the session paused. */
static void
on_drained(struct ios *ios, void *arg)
{
	struct session *s = arg;

	if (!s->out_blocked)
		return;
	s->out_blocked = 0;
	if (s->mode == SESSION_MODE_PRODUCE)
		set_phase(s, SESSION_PHASE_DATA);	/* the client reads */
	if (!s->waiting && !s->closing) {
		ios_set_reading(ios, 1);
		session_input(s);
	}
}

/* ios: the connection is gone. */
static void
on_close(struct ios *ios, enum ios_close why, const char *text, void *arg)
{
	struct session *s = arg;

	(void)ios;
	if (s->mode != SESSION_MODE_LINES && !s->closing)
		log_info("event=lost_in_%s session=%llu %s=%s",
		    s->mode == SESSION_MODE_BYTES ? "data" : "output",
		    (unsigned long long)s->id, role(s), s->addr);
	session_free(s, why == IOS_CLOSE_EOF && s->closing ? "quit" : text);
}

static const struct ios_callbacks session_callbacks = { on_read, on_drained, on_close };

/* The phase's deadline passed. */
static void
on_timeout(struct ev_timer *t, void *arg)
{
	struct session *s = arg;
	enum session_phase p = s->phase;

	(void)t;
	if (p == SESSION_PHASE_CLOSING) {
		/* The peer does not even read the last reply. */
		session_free(s, "timeout while closing");
		return;
	}
	log_info("event=timeout session=%llu %s=%s phase=%s",
	    (unsigned long long)s->id, role(s), s->addr, phase_names[p]);
	if (p == SESSION_PHASE_CONNECT || p == SESSION_PHASE_TLS ||
	    s->reg->proto->timeout == NULL) {
		session_free(s, p == SESSION_PHASE_CONNECT ? "timeout in connect" :
		    p == SESSION_PHASE_TLS ? "timeout in TLS handshake" : "timeout");
		return;
	}
	s->reg->proto->timeout(s);
	session_close_after(s);
}

/* --- The registry ----------------------------------------------------------- */

void
session_registry_init(struct session_registry *r, struct ev_loop *loop,
    const struct session_proto *proto, void *ctx)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->proto = proto;
	r->ctx = ctx;
}

void
session_stop_all(struct session_registry *r)
{
	char bye[SESSION_REPLY_TEXT + 3];
	size_t n = 0;
	int k;

	if (r->proto != NULL && r->proto->bye != NULL &&
	    (k = snprintf(bye, sizeof(bye), "%s\r\n", r->proto->bye)) > 0 &&
	    (size_t)k < sizeof(bye))
		n = (size_t)k;
	while (r->head != NULL) {
		struct session *s = r->head;

		if (n > 0 && s->ios != NULL && s->greeted && !s->closing &&
		    s->mode != SESSION_MODE_PRODUCE)
			ios_write_last(s->ios, bye, n);
		session_free(s, "shutdown");
	}
}

/* --- Starting --------------------------------------------------------------- */

struct session *
session_new(struct session_registry *r, int fd, const struct sockaddr_storage *peer,
    void *owner)
{
	struct session *s = session_alloc(r, peer, owner);

	s->ios = ios_new(r->loop, fd, &r->proto->limits, &session_callbacks, s);
	s->phase = SESSION_PHASE_COMMAND;
	s->timer = ev_timer_add(r->loop, r->timeout_ms[s->phase], 0, on_timeout, s);
	return s;
}

void
session_start(struct session *s, const char *listener, int implicit_tls)
{
	struct session_registry *r = s->reg;
	const char *which = NULL;
	char reason[64];

	log_info("event=connect session=%llu client=%s listener=%s",
	    (unsigned long long)s->id, s->addr, listener);
	if (r->conns != NULL && connlimit_enter(r->conns,
	    (const struct sockaddr *)&s->peer, r->max_conns, r->max_conns_ip,
	    &which) != 1) {
		int addr = which != NULL && strcmp(which, "address") == 0;

		log_info("event=reject session=%llu client=%s reason=connection_limit "
		    "limit=%s", (unsigned long long)s->id, s->addr,
		    which != NULL ? which : "total");
		session_reply(s, "", "%s", addr ? r->proto->busy_addr :
		    r->proto->busy_total);
		session_close_after(s);
		return;
	}
	s->counted = r->conns != NULL;
	if (!implicit_tls) {
		session_ready(s);
		return;
	}
	if (r->tls == NULL || ios_starttls_server(s->ios, r->tls) < 0) {
		log_error("event=tls_unavailable session=%llu client=%s "
		    "detail=\"%s listener without a usable TLS context\"",
		    (unsigned long long)s->id, s->addr, listener);
		snprintf(reason, sizeof(reason), "no TLS for %s", listener);
		session_free(s, reason);
		return;
	}
	set_phase(s, SESSION_PHASE_TLS);
}

/* The outbound connect finished (or failed). */
static void
on_connected(struct ev_io *io, int fd, int events, void *arg)
{
	struct session *s = arg;
	socklen_t len = sizeof(int);
	int err = 0;
	char reason[160];

	(void)io;
	(void)events;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0 || s->closing) {
		log_info("event=connect_failed session=%llu server=%s error=\"%s\"",
		    (unsigned long long)s->id, s->addr,
		    err != 0 ? strerror(err) : "closed");
		snprintf(reason, sizeof(reason), "connect failed: %s",
		    err != 0 ? strerror(err) : "closed");
		session_free(s, reason);
		return;
	}
	ev_io_del(&s->connecting);	/* the stream watches fd now */
	s->ios = ios_new(s->reg->loop, fd, &s->reg->proto->limits,
	    &session_callbacks, s);
	log_info("event=connected session=%llu server=%s", (unsigned long long)s->id,
	    s->addr);
	set_phase(s, SESSION_PHASE_COMMAND);
	session_ready(s);
}

struct session *
session_connect(struct session_registry *r, const char *host, unsigned port,
    void *owner, const char **error_r)
{
	struct sockaddr_storage peer;
	struct session *s;
	int fd;

	fd = net_connect_inet_start(host, port, &peer, error_r);
	if (fd < 0)
		return NULL;
	s = session_alloc(r, &peer, owner);
	s->outbound = 1;
	s->phase = SESSION_PHASE_CONNECT;
	s->connecting = ev_io_add(r->loop, fd, EV_WRITE, on_connected, s);
	s->timer = ev_timer_add(r->loop, r->timeout_ms[s->phase], 0, on_timeout, s);
	log_info("event=connect session=%llu server=%s port=%u",
	    (unsigned long long)s->id, s->addr, port);
	return s;
}

/* --- Output ----------------------------------------------------------------- */

void
session_vreply(struct session *s, const char *prefix, const char *fmt, va_list ap)
{
	char line[SESSION_REPLY_PREFIX + SESSION_REPLY_TEXT + 1 + 2];
	size_t n;
	int k;

	if (s->ios == NULL || s->closing)
		return;
	n = strnlen(prefix, SESSION_REPLY_PREFIX);
	memcpy(line, prefix, n);
	k = vsnprintf(line + n, SESSION_REPLY_TEXT + 1, fmt, ap);
	if (k > 0)
		n += (size_t)k < SESSION_REPLY_TEXT ? (size_t)k : SESSION_REPLY_TEXT;
	line[n++] = '\r';
	line[n++] = '\n';
	(void)ios_write(s->ios, line, n);
}

void
session_reply(struct session *s, const char *prefix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, prefix, fmt, ap);
	va_end(ap);
}

void
session_write(struct session *s, const void *p, size_t n)
{
	if (s->ios != NULL && !s->closing)
		(void)ios_write(s->ios, p, n);
}

void
session_close_after(struct session *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	set_phase(s, SESSION_PHASE_CLOSING);
	if (s->ios != NULL)
		ios_flush_close(s->ios);
}

/* --- Input ------------------------------------------------------------------ */

void
session_read_lines(struct session *s)
{
	s->mode = SESSION_MODE_LINES;
	set_phase(s, SESSION_PHASE_COMMAND);
}

void
session_read_bytes(struct session *s, uint64_t count, session_bytes_fn *fn,
    session_fn *end)
{
	s->mode = SESSION_MODE_BYTES;
	s->bytes_fn = fn;
	s->bytes_end = end;
	s->bytes_counted = count != SESSION_UNCOUNTED;
	s->bytes_left = count;
	set_phase(s, SESSION_PHASE_DATA);
}

void
session_produce(struct session *s, session_produce_fn *fn)
{
	s->mode = SESSION_MODE_PRODUCE;
	s->produce_fn = fn;
	set_phase(s, SESSION_PHASE_DATA);
}

size_t
session_buffered(struct session *s)
{
	size_t n = 0;

	if (s->ios != NULL)
		(void)ios_peek(s->ios, &n);
	return n;
}

/* --- Waiting on a service --------------------------------------------------- */

void
session_wait(struct session *s)
{
	s->waiting = 1;
	if (s->ios != NULL)
		ios_set_reading(s->ios, 0);
}

void
session_wait_untimed(struct session *s)
{
	ev_timer_del(&s->timer);
	s->untimed = 1;
	session_wait(s);
}

void
session_resume(struct session *s)
{
	s->waiting = 0;
	if (s->untimed) {
		s->untimed = 0;
		s->timer = ev_timer_add(s->reg->loop, s->reg->timeout_ms[s->phase], 0,
		    on_timeout, s);
	} else if (s->phase == SESSION_PHASE_COMMAND) {
		set_phase(s, s->phase);
	}
	if (s->ios != NULL && !s->closing && !s->out_blocked)
		ios_set_reading(s->ios, 1);	/* runs on_read if input waits */
}

/* authclient: the answer to session_auth(). */
static void
auth_answer(enum auth_result result, const char *user, const char *mailbox,
    uint64_t quota, const char *reason, void *arg)
{
	struct session *s = arg;

	s->auth_pending = NULL;
	s->auth_done(s, result, user, mailbox, quota, reason);
}

void
session_auth(struct session *s, const char *mechanism, const char *user,
    const void *password, size_t password_len, session_auth_fn *done)
{
	struct auth_request req = {
		.service = s->reg->proto->service,
		.mechanism = mechanism,
		.user = user,
		.password = password,
		.password_len = password_len,
		.client = s->addr,
		.tls = session_tls(s),
	};

	s->auth_done = done;
	session_wait(s);
	s->auth_pending = auth_client_request(s->reg->auth, &req,
	    s->reg->auth_timeout_ms, auth_answer, s);
}

/* --- TLS -------------------------------------------------------------------- */

/* Start a TLS handshake on the stream (ctx NULL: none configured). */
static int
starttls(struct session *s, SSL_CTX *ctx, const char *sni)
{
	if (s->ios == NULL || ctx == NULL || (s->outbound ?
	    ios_starttls_client(s->ios, ctx, sni) :
	    ios_starttls_server(s->ios, ctx)) < 0) {
		log_error("event=starttls_failed session=%llu %s=%s",
		    (unsigned long long)s->id, role(s), s->addr);
		return -1;
	}
	set_phase(s, SESSION_PHASE_TLS);
	return 0;
}

int
session_starttls(struct session *s)
{
	return starttls(s, s->reg->tls, NULL);
}

int
session_starttls_client(struct session *s, SSL_CTX *ctx, const char *sni)
{
	return starttls(s, ctx, sni);
}

int
session_tls(const struct session *s)
{
	return s->ios != NULL && ios_tls_active(s->ios);
}

const char *
session_tls_text(struct session *s)
{
	SSL *ssl;

	if (!session_tls(s) || (ssl = ios_ssl(s->ios)) == NULL)
		return NULL;
	if (s->tls_text[0] == '\0')
		snprintf(s->tls_text, sizeof(s->tls_text), "%s:%s",
		    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	return s->tls_text;
}
