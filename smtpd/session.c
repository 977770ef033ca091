/*
 * smtpd sessions: SMTP's side of lib/core/session, which owns the connection
 * (accepting under the limits, smtps's handshake, in-order input with
 * its pauses, the timers, STARTTLS, replies, stop-all).  Here: the
 * listener kinds, the reply syntax, refusals and the error limit, the
 * transaction and session resets, and the hooks -- the greeting, each
 * line to the command table (cmd.c) or the AUTH exchange, the
 * line-length refusal, the timeout's 421 and the disconnect line.
 *
 * An asynchronous step (a user database lookup, an auth request, the
 * group commit) makes the session wait: pipelined commands then see the
 * state the earlier ones left and their replies go out in order (RFC
 * 2920), flushed once per loop batch.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"
#include "smtpd.h"
#include "xalloc.h"

/* Stream limits: a command line fits max_line (the parser refuses what
 * is longer than SMTP_MAX_COMMAND, the stream what is longer than this);
 * content is read in chunks of at most max_input, which keeps an idle
 * session's buffer small. */
#define SMTPD_MAX_LINE (SMTP_MAX_COMMAND + 1)
#define SMTPD_MAX_INPUT 4096
#define SMTPD_MAX_OUTPUT 65536
/* Stop processing pipelined input while this much output is unsent. */
#define SMTPD_OUTPUT_PAUSE 16384

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

void
smtpd_policy_client(const struct smtpd_session *s, struct policy_client *c)
{
	c->addr = (const struct sockaddr *)&s->ss->peer;
	c->auth_user = s->auth_user;
	/* The policy applies its sender-login rule to "submission" clients:
	 * every listener but port 25, and port 25 once authenticated (AUTH
	 * there relays too, so it must not be a way round the rule). */
	c->submission = (s->kind != KIND_SMTP || s->auth_user != NULL) &&
	    s->sd->set.sender_login_match;
}

void
smtpd_reply(struct smtpd_session *s, int code, const char *esc, const char *fmt, ...)
{
	char prefix[SESSION_REPLY_PREFIX];
	va_list ap;

	if (code < 100 || code > 999)
		log_panic("event=bad_reply_code code=%d", code);
	if (esc != NULL)
		snprintf(prefix, sizeof(prefix), "%d %.16s ", code, esc);
	else
		snprintf(prefix, sizeof(prefix), "%d ", code);
	va_start(ap, fmt);
	session_vreply(s->ss, prefix, fmt, ap);
	va_end(ap);
}

void
smtpd_close_after(struct smtpd_session *s, int code, const char *esc, const char *text)
{
	smtpd_reply(s, code, esc, "%s", text);
	session_close_after(s->ss);
}

void
smtpd_refuse(struct smtpd_session *s, const struct smtp_reply *r, int count)
{
	smtpd_reply(s, r->code, r->esc, "%s", r->text);
	s->nrejects++;
	log_info("event=reject session=%llu client=%s code=%d esc=%s reason=%s",
	    (unsigned long long)s->ss->id, s->ss->addr, r->code, r->esc,
	    log_safe(r->text));
	if (!count)
		return;
	if (++s->errors >= s->sd->set.max_errors) {
		log_info("event=too_many_errors session=%llu client=%s errors=%u",
		    (unsigned long long)s->ss->id, s->ss->addr, s->errors);
		smtpd_close_after(s, 421, "4.7.0", "Too many errors, closing connection");
	}
}

void
smtpd_reset_transaction(struct smtpd_session *s)
{
	smtpd_cmd_cancel_pending(s);
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
smtpd_reset_all(struct smtpd_session *s)
{
	smtpd_reset_transaction(s);
	xfree(&s->helo);
	xfree(&s->auth_user);
	xfree(&s->login_user);
	s->esmtp = 0;
	s->in_auth = 0;
	s->auth_mech[0] = '\0';
}

/* --- lib/core/session's hooks ---------------------------------------------------- */

/* The greeting, once the connection is ready for it. */
static void
on_greet(struct session *ss)
{
	struct smtpd_session *s = ss->owner;

	smtpd_reply(s, 220, NULL, "%s", s->sd->set.banner);
}

/* A command, or a response inside the AUTH exchange. */
static void
on_line(struct session *ss, const char *line, size_t len)
{
	struct smtpd_session *s = ss->owner;

	if (s->in_auth)
		smtpd_cmd_auth_continue(s, line, len);
	else
		smtpd_cmd_dispatch(s, line, len);
}

/* A line past SMTPD_MAX_LINE: refused, and it ends an AUTH exchange. */
static void
on_too_long(struct session *ss)
{
	static const struct smtp_reply r = { 500, "5.5.2", "Line too long" };
	struct smtpd_session *s = ss->owner;

	s->in_auth = 0;
	smtpd_refuse(s, &r, 1);
}

/* The command or data timeout: 421, and the message in progress goes. */
static void
on_timeout(struct session *ss)
{
	struct smtpd_session *s = ss->owner;

	if (ss->mode == SESSION_MODE_BYTES)
		data_abort(s);
	smtpd_close_after(s, 421, "4.4.2", "Timeout exceeded, closing connection");
}

/* The session is going: the disconnect line, and free everything. */
static void
on_closed(struct session *ss, const char *reason)
{
	struct smtpd_session *s = ss->owner;
	struct smtpd *sd = s->sd;

	log_info("event=disconnect session=%llu client=%s msgs=%u rcpts=%u "
	    "rejects=%u errors=%u reason=%s", (unsigned long long)ss->id, ss->addr,
	    s->nmsgs, s->nrcpts_total, s->nrejects, s->errors, log_safe(reason));
	smtpd_reset_all(s);
	data_unbatch(s);
	buf_free(&s->body.hline);
	free(s);
	if (sd->d->retiring && sd->sessions.count == 0)
		log_info("event=retired_idle");
}

static const struct session_proto smtpd_proto = {
	.service = "smtp",
	.limits = { SMTPD_MAX_LINE, SMTPD_MAX_INPUT, SMTPD_MAX_OUTPUT, 0 },
	.input_pause = SMTPD_OUTPUT_PAUSE,
	.produce_pause = SMTPD_OUTPUT_PAUSE,
	.busy_total = "421 4.7.0 Too many connections, try again later",
	.busy_addr = "421 4.7.0 Too many connections from your address",
	.bye = "421 4.3.2 Service shutting down, closing connection",
	.ready = on_greet,
	.line = on_line,
	.too_long = on_too_long,
	.timeout = on_timeout,
	.closed = on_closed,
};

void
smtpd_sessions_init(struct smtpd *sd)
{
	struct session_registry *r = &sd->sessions;

	session_registry_init(r, sd->d->loop, &smtpd_proto, sd);
	r->tls = sd->tls;
	r->conns = sd->conns;
	r->max_conns = sd->set.max_conns;
	r->max_conns_ip = sd->set.max_conns_ip;
	r->auth = sd->auth;
	r->auth_timeout_ms = sd->set.auth_timeout_ms;
	r->timeout_ms[SESSION_PHASE_TLS] = sd->set.timeout_ms;
	r->timeout_ms[SESSION_PHASE_COMMAND] = sd->set.timeout_ms;
	r->timeout_ms[SESSION_PHASE_DATA] = sd->set.data_timeout_ms;
	r->timeout_ms[SESSION_PHASE_CLOSING] = sd->set.timeout_ms;
}

void
smtpd_accept(struct smtpd *sd, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	struct smtpd_session *s = xcalloc(1, sizeof(*s));

	s->sd = sd;
	s->kind = kind_of(l->tag);
	buf_init(&s->body.hline, SMTP_MAX_LINE + 2);
	s->ss = session_new(&sd->sessions, fd, peer, s);
	session_start(s->ss, kind_name(s->kind), s->kind == KIND_SMTPS);
}
