/*
 * pop3d commands: the dispatcher and each command's proceed step.  A
 * line is parsed and checked by pop3proto.c (pure, no side effects);
 * only a command that passed its check reaches a proceed function here.
 *
 * Logins (USER/PASS, AUTH PLAIN, AUTH LOGIN) are asynchronous: the
 * credentials go to the auth service, the session's input pauses until
 * the answer comes, then the mailbox is opened, locked for this session
 * ([IN-USE] if another session has it) and listed -- the listing, like
 * the UPDATE state of QUIT in TRANSACTION (messages marked deleted are
 * removed and retrieved ones flagged seen), is a job on a thread (job.c)
 * while the session waits.  Any other end of the session changes nothing.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authclient.h"
#include "log.h"
#include "maildir.h"
#include "pop3d.h"
#include "sasl.h"
#include "xalloc.h"

/* --- CAPA, NOOP, QUIT in AUTHORIZATION ------------------------------------- */

/* CAPA (RFC 2449): what this session may use now. */
static void
proceed_capa(struct pop3d_session *s)
{
	struct pop3_view v;
	struct buf b = BUF_INIT;

	pop3d_view(s, &v);
	if (buf_puts(&b, "+OK Capability list follows\r\n"
	    "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n") < 0)
		log_panic("event=capa_overflow");
	if (v.state == POP3_AUTHORIZATION) {
		if (v.plaintext_ok && buf_puts(&b, "USER\r\nSASL PLAIN LOGIN\r\n") < 0)
			log_panic("event=capa_overflow");
		if (v.tls_available && !v.tls && buf_puts(&b, "STLS\r\n") < 0)
			log_panic("event=capa_overflow");
	}
	if (buf_puts(&b, "IMPLEMENTATION postern\r\n.\r\n") < 0)
		log_panic("event=capa_overflow");
	session_write(s->ss, b.data, b.len);
	buf_free(&b);
}

/* --- STLS ------------------------------------------------------------------- */

/* Start the handshake; whatever the client pipelined after STLS is
 * dropped by ios (the plaintext injection defence), and the session
 * starts over (RFC 2595 4). */
static void
proceed_stls(struct pop3d_session *s)
{
	pop3d_ok(s, "Begin TLS negotiation");
	if (session_starttls(s->ss) < 0) {
		pop3d_close_after(s, "-ERR [SYS/TEMP] TLS failed, closing connection");
		return;
	}
	pop3d_reset_auth(s);
}

/* --- Logins ----------------------------------------------------------------- */

/* The login succeeded: open and lock the mailbox, then list it on a job
 * thread (job.c; the session waits for it).  1 when the scan is queued,
 * or -1 after a -ERR (the session stays in AUTHORIZATION). */
static int
open_maildrop(struct pop3d_session *s, const char *user, const char *mailbox)
{
	const char *error = NULL;
	struct mailbox *mb = NULL;
	int r;

	if (mailbox_open(s->pd->storefd, mailbox, &mb, &error) < 0) {
		log_error("event=mailbox_open_failed session=%llu user=%s mailbox=%s "
		    "error=\"%s\"", (unsigned long long)s->ss->id, log_safe(user),
		    log_safe(mailbox), error);
		pop3d_err(s, POP3_CODE_SYS_TEMP, "Cannot open the mailbox");
		return -1;
	}
	r = mailbox_lock(mb, POP3D_LOCK_NAME, &error);
	if (r <= 0) {
		if (r == 0) {
			log_info("event=mailbox_in_use session=%llu client=%s user=%s",
			    (unsigned long long)s->ss->id, s->ss->addr, log_safe(user));
			pop3d_err(s, POP3_CODE_IN_USE,
			    "Mailbox is locked by another POP3 session");
		} else {
			log_error("event=mailbox_lock_failed session=%llu user=%s "
			    "error=\"%s\"", (unsigned long long)s->ss->id,
			    log_safe(user), error);
			pop3d_err(s, POP3_CODE_SYS_TEMP, "Cannot lock the mailbox");
		}
		mailbox_close(&mb);
		return -1;
	}
	/* Reading every message without ",W=" can take seconds: off the loop. */
	job_scan(s, mb, user);
	return 1;
}

/* The auth service's answer. */
static void
auth_done(struct session *ss, enum auth_result result, const char *user,
    const char *mailbox, uint64_t quota, const char *reason)
{
	struct pop3d_session *s = ss->owner;

	(void)quota;
	switch (result) {
	case AUTH_RESULT_OK:
		if (open_maildrop(s, user, mailbox) > 0) {
			/* job.c logs the login, replies and resumes. */
			xfree(&s->user);
			return;
		}
		break;
	case AUTH_RESULT_FAIL:
		s->failed_logins++;
		log_info("event=auth_failed session=%llu client=%s user=%s mech=%s "
		    "reason=%s", (unsigned long long)s->ss->id, s->ss->addr,
		    log_safe(s->user), s->mech, log_safe(reason));
		if (s->failed_logins >= s->pd->set.login_attempts) {
			log_info("event=too_many_logins session=%llu client=%s failures=%u",
			    (unsigned long long)s->ss->id, s->ss->addr, s->failed_logins);
			pop3d_close_after(s, "-ERR [AUTH] Authentication failed, "
			    "too many attempts: closing connection");
		} else {
			pop3d_err(s, POP3_CODE_AUTH, "Authentication failed");
		}
		break;
	default:
		log_warn("event=auth_unavailable session=%llu client=%s reason=%s",
		    (unsigned long long)s->ss->id, s->ss->addr, log_safe(reason));
		pop3d_err(s, POP3_CODE_SYS_TEMP, "Temporary authentication failure");
		break;
	}
	xfree(&s->user);
	session_resume(s->ss);
}

/* Ask the auth service; the session waits for the answer. */
static void
auth_submit(struct pop3d_session *s, const char *user, const char *password, size_t len)
{
	if (s->user != user) {
		free(s->user);
		s->user = xstrdup(user);	/* for the log line */
	}
	s->in_auth = 0;
	session_auth(s->ss, s->mech, user, password, len, auth_done);
}

/* USER: remember the name; PASS sends both. */
static void
proceed_user(struct pop3d_session *s, const struct pop3_cmd *c)
{
	free(s->user);
	s->user = xstrdup(c->arg);
	snprintf(s->mech, sizeof(s->mech), "USER");
	pop3d_ok(s, "Send your password");
}

/* PASS: the login with USER's name. */
static void
proceed_pass(struct pop3d_session *s, const struct pop3_cmd *c)
{
	snprintf(s->mech, sizeof(s->mech), "USER");
	auth_submit(s, s->user, c->arg, strlen(c->arg));
}

/* Act on one step of the SASL exchange: prompt, submit, or refuse. */
static void
auth_step(struct pop3d_session *s, enum sasl_step step)
{
	struct pop3_refusal r = { POP3_CODE_NONE, "Invalid PLAIN authentication message", 1 };

	switch (step) {
	case SASL_CHALLENGE:
		s->in_auth = 1;
		session_reply(s->ss, "+ ", "%s", buf_cstr(&s->sasl.challenge));
		return;
	case SASL_DONE:
		auth_submit(s, s->sasl.user, s->sasl.secret, s->sasl.secret_len);
		sasl_server_end(&s->sasl);
		return;
	case SASL_FAILED:
		break;
	}
	s->in_auth = 0;
	xfree(&s->user);
	if (s->sasl.failure == SASL_FAIL_CANCELLED) {
		sasl_server_end(&s->sasl);
		pop3d_err(s, POP3_CODE_NONE, "Authentication cancelled");
		return;
	}
	if (s->sasl.failure == SASL_FAIL_BASE64)
		r.text = "Cannot decode base64 response";
	else if (s->sasl.failure == SASL_FAIL_MECHANISM)
		r.text = "Unsupported authentication mechanism";
	sasl_server_end(&s->sasl);
	pop3d_refuse(s, &r);
}

/* AUTH (RFC 5034): without a mechanism, list them; else start the
 * exchange with the initial response, if any. */
static void
proceed_auth(struct pop3d_session *s, const struct pop3_cmd *c)
{
	if (c->mech[0] == '\0') {
		pop3d_ok(s, "Mechanisms follow");
		for (size_t i = 0; sasl_mech_name(i) != NULL; i++)
			session_reply(s->ss, "", "%s", sasl_mech_name(i));
		session_write(s->ss, ".\r\n", 3);
		return;
	}
	snprintf(s->mech, sizeof(s->mech), "%s", c->mech);
	auth_step(s, sasl_server_start(&s->sasl, c->mech, c->initial, POP3_MAX_LINE));
}

void
pop3d_cmd_auth_continue(struct pop3d_session *s, const char *line, size_t len)
{
	auth_step(s, sasl_server_continue(&s->sasl, line, len));
}

/* --- TRANSACTION ------------------------------------------------------------ */

/* STAT: the count and octets of the messages not marked deleted. */
static void
proceed_stat(struct pop3d_session *s)
{
	uint64_t octets = 0;
	size_t n = 0;

	for (size_t i = 0; i < s->nmsgs; i++) {
		if (s->deleted[i])
			continue;
		n++;
		octets += mailbox_msg(s->mb, i)->vsize;
	}
	pop3d_ok(s, "%zu %llu", n, (unsigned long long)octets);
}

/* LIST and UIDL: one message, or (streamed) every message not marked
 * deleted. */
static void
proceed_list(struct pop3d_session *s, const struct pop3_cmd *c)
{
	const struct mailbox_msg *m;

	if (!c->has_msg) {
		pop3d_send_listing(s, c->verb == POP3_UIDL);
		return;
	}
	m = mailbox_msg(s->mb, c->msg - 1);
	if (c->verb == POP3_UIDL)
		pop3d_ok(s, "%u %s", c->msg, m->uidl);
	else
		pop3d_ok(s, "%u %llu", c->msg, (unsigned long long)m->vsize);
}

/* DELE: mark; the message goes at QUIT. */
static void
proceed_dele(struct pop3d_session *s, const struct pop3_cmd *c)
{
	s->deleted[c->msg - 1] = 1;
	pop3d_ok(s, "Message %u marked for deletion", c->msg);
}

/* RSET: unmark every deleted message. */
static void
proceed_rset(struct pop3d_session *s)
{
	memset(s->deleted, 0, s->nmsgs);
	pop3d_ok(s, "%zu messages", s->nmsgs);
}

void
pop3d_cmd_close_mailbox(struct pop3d_session *s)
{
	if (s->mb != NULL)
		mailbox_close(&s->mb);
	xfree(&s->deleted);
	xfree(&s->retrieved);
	s->nmsgs = 0;
}

/*
 * QUIT in TRANSACTION: the UPDATE state (RFC 1939 6), done by a job
 * (job.c) in chunks on a thread while the session waits; the reply comes
 * when it is complete.  Only a deletion that failed makes the reply -ERR,
 * since that is what -ERR tells the client (RFC 1939 6: "some deleted
 * messages not removed"); a \Seen flag that could not be set (a name
 * too long for ":2,S", say) is logged, and the client that did get its
 * deletions is told so.
 */
static void
proceed_update(struct pop3d_session *s)
{
	job_update(s);
}

/* --- The dispatcher ---------------------------------------------------------- */

void
pop3d_cmd_dispatch(struct pop3d_session *s, const char *line, size_t len)
{
	char copy[POP3_MAX_LINE + 1];
	struct pop3_refusal r;
	struct pop3_view v;
	struct pop3_cmd c;

	if (len > POP3_MAX_LINE) {
		static const struct pop3_refusal too_long = { POP3_CODE_NONE, "Line too long", 1 };

		pop3d_refuse(s, &too_long);
		return;
	}
	memcpy(copy, line, len);
	copy[len] = '\0';
	pop3d_view(s, &v);
	if (pop3_parse(copy, len, &c, &r) < 0 || pop3_check(&v, &c, &r) < 0) {
		pop3d_refuse(s, &r);
		goto out;
	}
	log_debug("event=command session=%llu verb=%s", (unsigned long long)s->ss->id, c.name);
	/* A command that passes its check ends a run of errors: a client
	 * that recovers is not closed for mistakes spread over a session. */
	s->errors = 0;
	switch (c.verb) {
	case POP3_CAPA:
		proceed_capa(s);
		break;
	case POP3_STLS:
		proceed_stls(s);
		break;
	case POP3_USER:
		proceed_user(s, &c);
		break;
	case POP3_PASS:
		proceed_pass(s, &c);
		break;
	case POP3_AUTH:
		proceed_auth(s, &c);
		break;
	case POP3_QUIT:
		if (s->pstate == POP3_TRANSACTION)
			proceed_update(s);
		else
			pop3d_close_after(s, "+OK Bye");
		break;
	case POP3_STAT:
		proceed_stat(s);
		break;
	case POP3_LIST:
	case POP3_UIDL:
		proceed_list(s, &c);
		break;
	case POP3_RETR:
		pop3d_send_message(s, c.msg - 1, -1);
		break;
	case POP3_TOP:
		pop3d_send_message(s, c.msg - 1, c.lines);
		break;
	case POP3_DELE:
		proceed_dele(s, &c);
		break;
	case POP3_NOOP:
		pop3d_ok(s, "Nothing to do");
		break;
	case POP3_RSET:
		proceed_rset(s);
		break;
	default:
		/* The check refuses every other verb. */
		log_panic("event=unchecked_verb verb=%d", (int)c.verb);
	}
out:
	explicit_bzero(copy, len + 1);
}
