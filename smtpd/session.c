/*
 * smtpd sessions: one per connection.  Accepting (with the connection
 * limits), the greeting (after the TLS handshake on smtps), the input
 * loop that hands each line to the command table or content bytes to the
 * DATA/BDAT parser, replies, timeouts, the error limit, and the end of a
 * session with its log line.
 *
 * Input is processed strictly in order.  An asynchronous step (a user
 * database lookup, an auth request, the group commit) sets `waiting`, which stops
 * reading until session_resume(): pipelined commands then see the state
 * the earlier ones left and their replies go out in order (RFC 2920).
 * Replies are queued in the stream and flushed once per loop batch, so a
 * pipelined group gets its replies together.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "connlimit.h"
#include "ios.h"
#include "log.h"
#include "net.h"
#include "policy.h"
#include "smtpd.h"
#include "xalloc.h"

/* Stream limits: a command line fits max_line (the parser refuses what
 * is longer than SMTP_MAX_COMMAND, the stream what is longer than this);
 * content is read through peek/consume in chunks of at most max_input,
 * which keeps an idle session's buffer small. */
#define SMTPD_MAX_LINE (SMTP_MAX_COMMAND + 1)
#define SMTPD_MAX_INPUT 4096
#define SMTPD_MAX_OUTPUT 65536
/* Stop processing pipelined input while this much output is unsent. */
#define SMTPD_OUTPUT_PAUSE 16384

static void session_input(struct session *s);

/* The listener kind from its tag (unknown tags are plain smtp). */
static enum smtpd_kind
kind_of(const char *tag)
{
	if (strcmp(tag, "submission") == 0)
		return KIND_SUBMISSION;
	if (strcmp(tag, "smtps") == 0)
		return KIND_SMTPS;
	return KIND_SMTP;
}

/* The listener kind's name for log lines. */
static const char *
kind_name(enum smtpd_kind k)
{
	switch (k) {
	case KIND_SUBMISSION:
		return "submission";
	case KIND_SMTPS:
		return "smtps";
	default:
		return "smtp";
	}
}

int
session_tls(const struct session *s)
{
	return s->ios != NULL && ios_tls_active(s->ios);
}

const char *
session_tls_text(struct session *s)
{
	static char text[128];
	SSL *ssl;

	if (!session_tls(s) || (ssl = ios_ssl(s->ios)) == NULL)
		return NULL;
	snprintf(text, sizeof(text), "%s:%s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	return text;
}

void
session_policy_client(const struct session *s, struct policy_client *c)
{
	c->addr = (const struct sockaddr *)&s->peer;
	c->auth_user = s->auth_user;
	/* The policy applies its sender-login rule to "submission" clients:
	 * every listener but port 25, and port 25 once authenticated (AUTH
	 * there relays too, so it must not be a way round the rule). */
	c->submission = (s->kind != KIND_SMTP || s->auth_user != NULL) &&
	    s->sd->set.sender_login_match;
}

void
session_reply(struct session *s, int code, const char *esc, const char *fmt, ...)
{
	/* "CODE ESC " + up to 511 bytes of text + CRLF, formatted once. */
	char line[3 + 1 + 16 + 1 + 512 + 2];
	size_t n = 0, cap;
	va_list ap;
	int k;

	if (s->ios == NULL || s->state == ST_CLOSING)
		return;
	if (code < 100 || code > 999)
		log_panic("event=bad_reply_code code=%d", code);
	line[n++] = (char)('0' + code / 100);
	line[n++] = (char)('0' + code / 10 % 10);
	line[n++] = (char)('0' + code % 10);
	line[n++] = ' ';
	if (esc != NULL) {
		size_t e = strnlen(esc, 16);

		memcpy(line + n, esc, e);
		n += e;
		line[n++] = ' ';
	}
	cap = n + 512;		/* the text's room, with vsnprintf's NUL */
	va_start(ap, fmt);
	k = vsnprintf(line + n, cap - n, fmt, ap);
	va_end(ap);
	if (k > 0)
		n += (size_t)k < cap - n ? (size_t)k : cap - n - 1;
	line[n++] = '\r';
	line[n++] = '\n';
	(void)ios_write(s->ios, line, n);
}

void
session_close_after(struct session *s, int code, const char *esc, const char *text)
{
	session_reply(s, code, esc, "%s", text);
	s->state = ST_CLOSING;
	if (s->ios != NULL)
		ios_flush_close(s->ios);
}

void
session_refuse(struct session *s, const struct smtp_reply *r, int count)
{
	session_reply(s, r->code, r->esc, "%s", r->text);
	s->nrejects++;
	log_info("event=reject session=%llu client=%s code=%d esc=%s reason=%s",
	    (unsigned long long)s->id, s->addr, r->code, r->esc, log_safe(r->text));
	if (!count)
		return;
	if (++s->errors >= s->sd->set.max_errors) {
		log_info("event=too_many_errors session=%llu client=%s errors=%u",
		    (unsigned long long)s->id, s->addr, s->errors);
		session_close_after(s, 421, "4.7.0", "Too many errors, closing connection");
	}
}

void
session_reset_transaction(struct session *s)
{
	cmd_cancel_pending(s);
	data_abort(s);
	envelope_free(&s->env);
	memset(&s->env, 0, sizeof(s->env));
	s->have_mail = 0;
	s->env_bytes = 0;
	s->nrcpt_ok = 0;
	s->rcpt_overshoot = 0;
	s->sender_discard = 0;
	s->bdat_mode = 0;
}

void
session_reset_all(struct session *s)
{
	session_reset_transaction(s);
	xfree(&s->helo);
	xfree(&s->auth_user);
	xfree(&s->login_user);
	s->esmtp = 0;
	s->auth_mech[0] = '\0';
}

void
session_set_timeout(struct session *s, int data)
{
	if (s->timer != NULL)
		ev_timer_reset(s->timer, data ? s->sd->set.data_timeout_ms :
		    s->sd->set.timeout_ms);
}

void
session_wait(struct session *s)
{
	s->waiting = 1;
	if (s->ios != NULL)
		ios_set_reading(s->ios, 0);
}

void
session_resume(struct session *s)
{
	s->waiting = 0;
	if (s->state == ST_CMD)
		session_set_timeout(s, 0);	/* the wait is not the client's */
	if (s->ios != NULL && s->state != ST_CLOSING && !s->out_blocked)
		ios_set_reading(s->ios, 1);	/* runs on_read if input waits */
}

/* Unlink, release the connection count and free everything. */
static void
session_free(struct session *s, const char *reason)
{
	struct smtpd *sd = s->sd;

	log_info("event=disconnect session=%llu client=%s msgs=%u rcpts=%u "
	    "rejects=%u errors=%u reason=%s", (unsigned long long)s->id, s->addr,
	    s->nmsgs, s->nrcpts_total, s->nrejects, s->errors, log_safe(reason));
	session_reset_all(s);
	data_unbatch(s);
	buf_free(&s->body.hline);
	if (s->counted)
		connlimit_leave(sd->conns, (const struct sockaddr *)&s->peer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sd->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	sd->nsessions--;
	ev_timer_del(&s->timer);
	ios_free(&s->ios);
	free(s);
	if (sd->d->retiring && sd->nsessions == 0)
		log_info("event=retired_idle");
}

/* The greeting, once the connection is ready for it. */
static void
session_greet(struct session *s)
{
	s->greeted = 1;
	s->state = ST_CMD;
	session_reply(s, 220, NULL, "%s", s->sd->set.banner);
}

/* Log the TLS parameters once the handshake is done. */
static void
session_tls_done(struct session *s)
{
	SSL *ssl = ios_ssl(s->ios);

	s->tls_logged = 1;
	if (ssl != NULL)
		SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	log_info("event=tls session=%llu client=%s tls=%s",
	    (unsigned long long)s->id, s->addr, session_tls_text(s));
}

/* Process buffered input until it runs out or a step must wait. */
static void
session_input(struct session *s)
{
	const char *line;
	size_t len;
	int r;

	while (s->ios != NULL && !s->waiting && s->state != ST_CLOSING) {
		if (ios_pending(s->ios) > SMTPD_OUTPUT_PAUSE) {
			/* A client that pipelines without reading replies
			 * waits until it has read some. */
			s->out_blocked = 1;
			ios_set_reading(s->ios, 0);
			return;
		}
		switch (s->state) {
		case ST_DATA:
			if (data_input(s) == 0)
				return;
			continue;
		case ST_BDAT:
			if (bdat_input(s) == 0)
				return;
			continue;
		case ST_TLS_WAIT:
		case ST_CLOSING:
			return;
		default:
			break;
		}
		r = ios_read_line(s->ios, &line, &len, NULL);
		if (r == 0)
			return;
		session_set_timeout(s, 0);	/* a whole line arrived */
		if (r < 0) {
			static const struct smtp_reply too_long =
			    { 500, "5.5.2", "Line too long" };

			if (s->state != ST_CMD)
				s->state = ST_CMD;	/* an AUTH step ends */
			session_refuse(s, &too_long, 1);
			continue;
		}
		if (s->state == ST_CMD)
			cmd_dispatch(s, line, len);
		else
			cmd_auth_continue(s, line, len);
		/* The line may have carried a password (AUTH, PASS, a SASL
		 * response): leave no copy of it in the input buffer. */
		if (s->ios != NULL)
			ios_wipe_consumed(s->ios);
	}
}

/* ios: input arrived, or the TLS handshake finished. */
static void
on_read(struct ios *ios, void *arg)
{
	struct session *s = arg;

	(void)ios;
	if (session_tls(s) && !s->tls_logged)
		session_tls_done(s);
	if (s->state == ST_TLS_WAIT) {
		if (!session_tls(s))
			return;
		if (!s->greeted)
			session_greet(s);	/* smtps */
		else
			s->state = ST_CMD;	/* after STARTTLS */
		session_set_timeout(s, 0);
	}
	/* Content progress restarts the data timeout; the command timeout
	 * restarts only per complete line (session_input), so a client
	 * trickling a byte at a time cannot hold the session forever. */
	if (s->state == ST_DATA || s->state == ST_BDAT)
		session_set_timeout(s, 1);
	session_input(s);
}

/* ios: the output buffer emptied; resume a session paused for it. */
static void
on_drained(struct ios *ios, void *arg)
{
	struct session *s = arg;

	(void)ios;
	if (!s->out_blocked)
		return;
	s->out_blocked = 0;
	if (!s->waiting && s->state != ST_CLOSING)
		ios_set_reading(s->ios, 1);
}

/* ios: the connection is gone. */
static void
on_close(struct ios *ios, enum ios_close why, const char *text, void *arg)
{
	struct session *s = arg;

	(void)ios;
	if (s->state == ST_DATA || s->state == ST_BDAT)
		log_info("event=lost_in_data session=%llu client=%s",
		    (unsigned long long)s->id, s->addr);
	session_free(s, why == IOS_CLOSE_EOF && s->state == ST_CLOSING ? "quit" : text);
}

static const struct ios_callbacks session_callbacks = { on_read, on_drained, on_close };

/* The command or data timeout fired: 421 and close. */
static void
on_timeout(struct ev_timer *t, void *arg)
{
	struct session *s = arg;

	(void)t;
	if (s->state == ST_CLOSING) {
		/* The client does not even read the last reply. */
		session_free(s, "timeout while closing");
		return;
	}
	log_info("event=timeout session=%llu client=%s state=%d",
	    (unsigned long long)s->id, s->addr, (int)s->state);
	if (s->state == ST_DATA || s->state == ST_BDAT)
		data_abort(s);
	if (s->state == ST_TLS_WAIT) {
		session_free(s, "timeout in TLS handshake");
		return;
	}
	session_close_after(s, 421, "4.4.2", "Timeout exceeded, closing connection");
	session_set_timeout(s, 0);	/* bounds the wait for the flush */
}

void
smtpd_accept(struct smtpd *sd, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	static const struct ios_limits lim = {
		SMTPD_MAX_LINE, SMTPD_MAX_INPUT, SMTPD_MAX_OUTPUT, 0
	};
	struct session *s = xcalloc(1, sizeof(*s));
	const char *which = NULL;

	s->sd = sd;
	s->id = ++sd->next_id;
	s->kind = kind_of(l->tag);
	s->peer = *peer;
	net_addr_text((const struct sockaddr *)peer, s->addr, sizeof(s->addr));
	buf_init(&s->body.hline, SMTP_MAX_LINE + 2);
	s->next = sd->sessions;
	if (sd->sessions != NULL)
		sd->sessions->prev = s;
	sd->sessions = s;
	sd->nsessions++;
	s->ios = ios_new(sd->d->loop, fd, &lim, &session_callbacks, s);
	s->timer = ev_timer_add(sd->d->loop, sd->set.timeout_ms, 0, on_timeout, s);
	log_info("event=connect session=%llu client=%s listener=%s",
	    (unsigned long long)s->id, s->addr, kind_name(s->kind));

	if (connlimit_enter(sd->conns, (const struct sockaddr *)peer,
	    sd->set.max_conns, sd->set.max_conns_ip, &which) != 1) {
		log_info("event=reject session=%llu client=%s code=421 "
		    "reason=connection_limit limit=%s", (unsigned long long)s->id,
		    s->addr, which ? which : "total");
		s->state = ST_CMD;
		session_close_after(s, 421, "4.7.0",
		    which != NULL && strcmp(which, "address") == 0 ?
		    "Too many connections from your address" :
		    "Too many connections, try again later");
		return;
	}
	s->counted = 1;
	if (s->kind == KIND_SMTPS) {
		if (sd->tls == NULL || ios_starttls_server(s->ios, sd->tls) < 0) {
			log_error("event=tls_unavailable session=%llu client=%s "
			    "detail=\"smtps listener without a usable TLS context\"",
			    (unsigned long long)s->id, s->addr);
			session_free(s, "no TLS for smtps");
			return;
		}
		s->state = ST_TLS_WAIT;
		return;
	}
	session_greet(s);
}

/*
 * Shutdown: the loop ends right after this, so the 421 is written to the
 * socket directly (best effort; a session with output still queued or in
 * a TLS handshake just closes).
 */
void
smtpd_stop_all(struct smtpd *sd)
{
	static const char bye[] = "421 4.3.2 Service shutting down, closing connection\r\n";

	while (sd->sessions != NULL) {
		struct session *s = sd->sessions;

		if (s->ios != NULL && s->greeted && s->state != ST_CLOSING)
			ios_write_last(s->ios, bye, sizeof(bye) - 1);
		session_free(s, "shutdown");
	}
}
