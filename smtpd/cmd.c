/*
 * smtpd commands: the command table.  Each verb has flags (allowed before
 * TLS on submission, needs HELO/EHLO, needs MAIL, ends a pipelining group,
 * counts toward the error limit), a *check* step that only looks (syntax
 * through lib/mail/smtp.h, the session's state) and fills the parsed argument
 * or a refusal, and a *proceed* step that acts.  The policy answers MAIL
 * and most RCPTs at once, so a pipelined group is answered in one write;
 * a RCPT that needs the user database (not in the policy's cache) and
 * AUTH are asynchronous: proceed starts them and pauses the session's
 * input; the callback replies and resumes it.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "authclient.h"
#include "log.h"
#include "policy.h"
#include "sasl.h"
#include "smtpd.h"
#include "xalloc.h"

/* A BDAT chunk announced larger than this many times
 * smtpd_max_message_size is not read at all: 552 and the connection
 * closes, so that no client can make us read (and throw away) gigabytes.
 * Smaller chunks that overflow the limit are read and refused as RFC 3030
 * says. */
#define BDAT_FAR_FACTOR 2

/* Command flags. */
#define CMD_PRE_TLS	0x01	/* allowed before TLS on submission */
#define CMD_NEED_HELO	0x02	/* needs HELO/EHLO first */
#define CMD_NEED_MAIL	0x04	/* needs a MAIL transaction */
#define CMD_GROUP_END	0x08	/* may only end a pipelined group (RFC 2920) */
#define CMD_COUNTS	0x10	/* a refusal counts toward smtpd_max_errors */

/* A command's argument after its check. */
struct cmd_arg {
	const char *raw;		/* the text after the verb */
	struct smtp_mail mail;		/* MAIL */
	struct smtp_rcpt rcpt;		/* RCPT */
	int overshoot;			/* RCPT refused for the recipient limits */
	uint64_t bdat_size;		/* BDAT */
	int bdat_last;
	char mech[24];			/* AUTH */
	const char *initial;		/* AUTH initial response or NULL */
};

struct cmd {
	enum smtp_verb verb;
	const char *name;
	unsigned flags;
	/* Pure: 0 to go on with a filled, or -1 with *r. */
	int (*check)(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r);
	/* Act on a checked command. */
	void (*proceed)(struct smtpd_session *s, struct cmd_arg *a);
};

/* The extensions the session offers to the parser. */
static void
ext_of(const struct smtpd_session *s, struct smtp_ext *ext)
{
	ext->esmtp = s->esmtp;
	ext->max_size = s->sd->set.max_size;
}

/* --- HELO / EHLO ------------------------------------------------------------ */

/* HELO/EHLO: the client names itself with a domain or address literal. */
static int
check_helo(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	(void)s;
	return smtp_parse_helo(a->raw, r);
}

/* Record the client's name and start afresh (RFC 5321 4.1.4). */
static void
greet_common(struct smtpd_session *s, const char *arg, int esmtp)
{
	size_t n = strlen(arg);

	/* The parser checked the name without its trailing blanks; keep
	 * none for Received and the envelope either. */
	while (n > 0 && (arg[n - 1] == ' ' || arg[n - 1] == '\t'))
		n--;
	smtpd_reset_transaction(s);
	free(s->helo);
	s->helo = xstrndup(arg, n);
	s->esmtp = esmtp;
}

/* HELO: a plain RFC 821 session, no extensions. */
static void
proceed_helo(struct smtpd_session *s, struct cmd_arg *a)
{
	greet_common(s, a->raw, 0);
	smtpd_reply(s, 250, NULL, "%s", s->sd->set.hostname);
}

/* EHLO: the multi-line reply with exactly the extensions on offer. */
static void
proceed_ehlo(struct smtpd_session *s, struct cmd_arg *a)
{
	struct session *ss = s->ss;
	int tls = session_tls(ss);

	greet_common(s, a->raw, 1);
	session_reply(ss, "250-", "%s", s->sd->set.hostname);
	session_reply(ss, "250-", "PIPELINING");
	session_reply(ss, "250-", "SIZE %llu", (unsigned long long)s->sd->set.max_size);
	session_reply(ss, "250-", "8BITMIME");
	session_reply(ss, "250-", "SMTPUTF8");
	session_reply(ss, "250-", "ENHANCEDSTATUSCODES");
	session_reply(ss, "250-", "DSN");
	if (s->sd->tls != NULL && !tls)
		session_reply(ss, "250-", "STARTTLS");
	if (tls) {
		struct buf mechs = BUF_INIT;

		for (size_t i = 0; sasl_mech_name(i) != NULL; i++)
			if (buf_printf(&mechs, " %s", sasl_mech_name(i)) < 0)
				log_panic("event=ehlo_overflow");
		session_reply(ss, "250-", "AUTH%s", buf_cstr(&mechs));
		buf_free(&mechs);
	}
	session_reply(ss, "250 ", "CHUNKING");
}

/* --- MAIL ------------------------------------------------------------------- */

/* MAIL: no transaction yet, authenticated where required, valid syntax. */
static int
check_mail(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	struct smtp_ext ext;

	if (s->have_mail)
		return smtp_refuse(r, 503, "5.5.1", "Nested MAIL command");
	if (s->kind != KIND_SMTP && s->auth_user == NULL)
		return smtp_refuse(r, 530, "5.7.0", "Authentication required");
	ext_of(s, &ext);
	return smtp_parse_mail(a->raw, &ext, &a->mail, r);
}

/* The bytes a string takes in an envelope (with its NUL), 0 for NULL. */
static uint64_t
str_cost(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

/* Act on the policy's answer about the sender. */
static void
mail_answer(struct smtpd_session *s, const struct policy_result *pr)
{
	struct smtp_mail *m = &s->pending_mail;

	if (pr->verdict == POLICY_ACCEPT || pr->verdict == POLICY_DISCARD) {
		struct envelope *e = &s->env;

		envelope_free(e);
		memset(e, 0, sizeof(*e));
		e->sender = m->sender;
		m->sender = NULL;
		e->envid = m->envid;
		m->envid = NULL;
		e->body_8bit = m->body == SMTP_BODY_8BITMIME;
		e->smtputf8 = m->smtputf8;
		e->ret = (int)m->ret;
		e->client = xstrdup(s->ss->addr);
		e->helo = xstrdup(s->helo);
		if (s->auth_user != NULL)
			e->auth = xstrdup(s->auth_user);
		s->env_bytes = sizeof(*e) + str_cost(e->sender) + str_cost(e->envid) +
		    str_cost(e->client) + str_cost(e->helo) + str_cost(e->auth);
		s->have_mail = 1;
		s->sender_discard = pr->verdict == POLICY_DISCARD;
		s->nrcpt_ok = 0;
		smtpd_reply(s, 250, "2.1.0", "Ok");
	} else {
		struct smtp_reply r = { pr->code, pr->esc, pr->text };

		log_info("event=sender_refused session=%llu client=%s from=%s",
		    (unsigned long long)s->ss->id, s->ss->addr, log_safe(m->sender));
		smtpd_refuse(s, &r, 1);
	}
	smtp_mail_free(m);
	memset(m, 0, sizeof(*m));
}

/* MAIL: a spool short of space (queue_minfree, and the SIZE= declared)
 * refuses first, before the client sends anything more; then the policy
 * decides about the sender at once (its sender rules need no lookup), so
 * a pipelined group goes on without a wait. */
static void
proceed_mail(struct smtpd_session *s, struct cmd_arg *a)
{
	struct policy_client c;
	struct policy_result pr;
	struct smtp_reply r;

	if (data_spool_room(s, a->mail.size, &r) < 0) {
		smtp_mail_free(&a->mail);
		memset(&a->mail, 0, sizeof(a->mail));
		smtpd_refuse(s, &r, 0);	/* our trouble, not the client's */
		return;
	}
	s->pending_mail = a->mail;
	memset(&a->mail, 0, sizeof(a->mail));
	smtpd_policy_client(s, &c);
	policy_decide_sender(s->sd->policy, &c, s->pending_mail.sender, &pr);
	mail_answer(s, &pr);
}

/* --- RCPT ------------------------------------------------------------------- */

/* The envelope memory one recipient takes. */
static uint64_t
rcpt_cost(const char *addr, const char *orcpt)
{
	return sizeof(struct qrcpt) + str_cost(addr) + str_cost(orcpt);
}

/* RCPT: below the recipient limit, valid syntax, and room for it in the
 * envelope (smtpd_max_envelope_size: 452 too, RFC 5321 4.5.3.1.10).  A
 * refusal for either limit is marked as an overshoot: the dispatcher
 * counts it as an error only past smtpd_recipient_overshoot_limit. */
static int
check_rcpt(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	struct smtp_ext ext;

	if (s->nrcpt_ok >= s->sd->set.max_rcpts) {
		a->overshoot = 1;
		return smtp_refuse(r, 452, "4.5.3", "Too many recipients");
	}
	ext_of(s, &ext);
	if (smtp_parse_rcpt(a->raw, &ext, s->env.smtputf8, &a->rcpt, r) < 0)
		return -1;
	if (s->env_bytes + rcpt_cost(a->rcpt.rcpt, a->rcpt.orcpt) >
	    s->sd->set.max_envelope) {
		smtp_rcpt_free(&a->rcpt);
		memset(&a->rcpt, 0, sizeof(a->rcpt));
		a->overshoot = 1;
		return smtp_refuse(r, 452, "4.5.3", "Too many recipients (envelope too large)");
	}
	return 0;
}

/* Whether the envelope already lists addr. */
static int
have_rcpt(const struct envelope *e, const char *addr)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		if (strcmp(e->rcpts[i].addr, addr) == 0)
			return 1;
	return 0;
}

/* Act on the policy's answer about a recipient. */
static void
rcpt_answer(struct smtpd_session *s, const struct policy_result *pr)
{
	if (pr->verdict == POLICY_ACCEPT || pr->verdict == POLICY_DISCARD) {
		if (pr->verdict == POLICY_ACCEPT && !have_rcpt(&s->env, s->pending_rcpt)) {
			envelope_add_rcpt(&s->env, s->pending_rcpt, s->pending_notify,
			    s->pending_orcpt);
			s->env_bytes += rcpt_cost(s->pending_rcpt, s->pending_orcpt);
		}
		if (pr->verdict == POLICY_DISCARD)
			log_info("event=rcpt_discard session=%llu client=%s to=%s",
			    (unsigned long long)s->ss->id, s->ss->addr,
			    log_safe(s->pending_rcpt));
		s->nrcpt_ok++;
		smtpd_reply(s, 250, "2.1.5", "Ok");
	} else {
		struct smtp_reply r = { pr->code, pr->esc, pr->text };

		log_info("event=rcpt_refused session=%llu client=%s to=%s",
		    (unsigned long long)s->ss->id, s->ss->addr, log_safe(s->pending_rcpt));
		smtpd_refuse(s, &r, 1);
	}
	xfree(&s->pending_rcpt);
	xfree(&s->pending_orcpt);
}

/* The policy's answer about a recipient, after a user database lookup. */
static void
rcpt_done(const struct policy_result *pr, void *arg)
{
	struct smtpd_session *s = arg;

	s->pp = NULL;
	rcpt_answer(s, pr);
	session_resume(s->ss);
}

/* RCPT: ask the policy about the recipient.  Most answers come at once
 * (maps, and users the policy's cache knows); only a user database
 * lookup makes the session wait, and its reply follows in order. */
static void
proceed_rcpt(struct smtpd_session *s, struct cmd_arg *a)
{
	struct policy_client c;
	struct policy_result pr;

	s->pending_rcpt = a->rcpt.rcpt;
	s->pending_orcpt = a->rcpt.orcpt;
	s->pending_notify = a->rcpt.notify;
	memset(&a->rcpt, 0, sizeof(a->rcpt));
	smtpd_policy_client(s, &c);
	s->pp = policy_check_rcpt_now(s->sd->policy, &c, s->pending_rcpt, &pr,
	    rcpt_done, s);
	if (s->pp == NULL)
		rcpt_answer(s, &pr);
	else
		session_wait(s->ss);
}

/* --- DATA and BDAT ---------------------------------------------------------- */

/* DATA: no argument, no BDAT before, at least one recipient accepted. */
static int
check_data(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	if (a->raw[0] != '\0')
		return smtp_refuse(r, 501, "5.5.4", "Syntax error: DATA takes no argument");
	if (s->bdat_mode)
		return smtp_refuse(r, 503, "5.5.1", "DATA not allowed after BDAT");
	if (s->nrcpt_ok == 0)
		return smtp_refuse(r, 554, "5.5.1", "No valid recipients");
	return 0;
}

/* DATA: refuse an early talker, open the queue file, send 354. */
static void
proceed_data(struct smtpd_session *s, struct cmd_arg *a)
{
	struct smtp_reply r;
	size_t buffered;

	(void)a;
	/* RFC 2920: the content may only follow our 354.  A client that
	 * sent it already is an early talker (or a smuggler): the bytes
	 * cannot be trusted as content nor as commands, so the session
	 * ends here. */
	buffered = session_buffered(s->ss);
	if (buffered > 0) {
		log_info("event=reject session=%llu client=%s code=554 "
		    "reason=early_talker buffered=%zu", (unsigned long long)s->ss->id,
		    s->ss->addr, buffered);
		s->nrejects++;
		smtpd_close_after(s, 554, "5.5.0",
		    "Error: SMTP protocol synchronization (data sent before 354)");
		return;
	}
	if (data_begin(s, 0, &r) < 0) {
		smtpd_refuse(s, &r, 0);
		return;
	}
	smtpd_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	session_read_bytes(s->ss, SESSION_UNCOUNTED, data_bytes, NULL);
}

/* BDAT's own refusals, once its size is known (the chunk is then read
 * and thrown away so the stream stays in step). */
static int
check_bdat(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	(void)a;
	if (!s->have_mail)
		return smtp_refuse(r, 503, "5.5.1", "Need MAIL command");
	if (s->nrcpt_ok == 0)
		return smtp_refuse(r, 554, "5.5.1", "No valid recipients");
	return 0;
}

/* Read a chunk and throw it away, then send *r. */
static void
bdat_skip(struct smtpd_session *s, const struct cmd_arg *a, const struct smtp_reply *r)
{
	s->body.bdat_last = a->bdat_last;
	s->body.bdat_skip = 1;
	s->body.bdat_reply = *r;
	session_read_bytes(s->ss, a->bdat_size, bdat_bytes, bdat_end);
}

/* BDAT: start the message on the first chunk, then read the chunk. */
static void
proceed_bdat(struct smtpd_session *s, struct cmd_arg *a)
{
	struct smtp_reply r;

	if (!s->bdat_mode) {
		if (data_begin(s, 1, &r) < 0) {
			bdat_skip(s, a, &r);
			return;
		}
		s->bdat_mode = 1;
	}
	s->body.bdat_last = a->bdat_last;
	s->body.bdat_skip = 0;
	session_read_bytes(s->ss, a->bdat_size, bdat_bytes, bdat_end);
}

/* --- Small commands --------------------------------------------------------- */

/* Commands without checks of their own. */
static int
check_none(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	(void)s;
	(void)a;
	(void)r;
	return 0;
}

/* RSET: drop the transaction. */
static void
proceed_rset(struct smtpd_session *s, struct cmd_arg *a)
{
	(void)a;
	smtpd_reset_transaction(s);
	smtpd_reply(s, 250, "2.0.0", "Ok");
}

/* NOOP: nothing. */
static void
proceed_noop(struct smtpd_session *s, struct cmd_arg *a)
{
	(void)a;
	smtpd_reply(s, 250, "2.0.0", "Ok");
}

/* QUIT: say goodbye and close. */
static void
proceed_quit(struct smtpd_session *s, struct cmd_arg *a)
{
	(void)a;
	smtpd_close_after(s, 221, "2.0.0", "Bye");
}

/* HELP: a short list of the commands. */
static void
proceed_help(struct smtpd_session *s, struct cmd_arg *a)
{
	(void)a;
	smtpd_reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT HELP VRFY STARTTLS AUTH (see RFC 5321)");
}

/* VRFY: needs an argument. */
static int
check_vrfy(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	(void)s;
	if (a->raw[0] == '\0')
		return smtp_refuse(r, 501, "5.5.4", "Syntax: VRFY address");
	return 0;
}

/* VRFY never tells whether a user exists. */
static void
proceed_vrfy(struct smtpd_session *s, struct cmd_arg *a)
{
	(void)a;
	smtpd_reply(s, 252, "2.5.0",
	    "Cannot VRFY user, but will accept message and attempt delivery");
}

/* EXPN: never answered. */
static int
check_expn(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	(void)s;
	(void)a;
	return smtp_refuse(r, 502, "5.5.1", "EXPN not available");
}

/* Any verb not in the table. */
static int
check_unknown(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	(void)s;
	(void)a;
	return smtp_refuse(r, 500, "5.5.1", "Command unrecognized");
}

/* --- STARTTLS --------------------------------------------------------------- */

/* STARTTLS: no argument, not yet in TLS, a certificate configured. */
static int
check_starttls(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	if (a->raw[0] != '\0')
		return smtp_refuse(r, 501, "5.5.4", "Syntax error: STARTTLS takes no argument");
	if (session_tls(s->ss))
		return smtp_refuse(r, 503, "5.5.1", "Already in TLS");
	if (s->sd->tls == NULL)
		return smtp_refuse(r, 454, "4.7.0", "TLS not available");
	return 0;
}

/* Start the handshake; whatever the client pipelined after STARTTLS is
 * dropped by ios, and the session starts over (RFC 3207 4.2). */
static void
proceed_starttls(struct smtpd_session *s, struct cmd_arg *a)
{
	(void)a;
	smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
	if (session_starttls(s->ss) < 0) {
		smtpd_close_after(s, 421, "4.7.0", "TLS failed, closing connection");
		return;
	}
	smtpd_reset_all(s);
}

/* --- AUTH ------------------------------------------------------------------- */

/* AUTH: once, outside a transaction, after EHLO, over TLS, PLAIN or LOGIN. */
static int
check_auth(const struct smtpd_session *s, struct cmd_arg *a, struct smtp_reply *r)
{
	if (s->auth_user != NULL)
		return smtp_refuse(r, 503, "5.5.1", "Already authenticated");
	if (s->have_mail)
		return smtp_refuse(r, 503, "5.5.1", "AUTH not allowed during a mail transaction");
	if (!s->esmtp)
		return smtp_refuse(r, 503, "5.5.1", "Send EHLO first");
	if (!session_tls(s->ss))
		return smtp_refuse(r, 538, "5.7.11",
		    "Encryption required for requested authentication mechanism");
	if (smtp_parse_auth(a->raw, a->mech, &a->initial, r) < 0)
		return -1;
	if (!sasl_mech_known(a->mech))
		return smtp_refuse(r, 504, "5.5.4", "Unrecognized authentication type");
	return 0;
}

/* The auth service's answer. */
static void
auth_done(struct session *ss, enum auth_result result, const char *user,
    const char *mailbox, uint64_t quota, const char *reason)
{
	struct smtpd_session *s = ss->owner;

	(void)mailbox;
	(void)quota;
	switch (result) {
	case AUTH_RESULT_OK:
		s->auth_user = xstrdup(user);
		log_info("event=auth session=%llu client=%s user=%s mech=%s",
		    (unsigned long long)s->ss->id, s->ss->addr, log_safe(user), s->auth_mech);
		smtpd_reply(s, 235, "2.7.0", "Authentication successful");
		break;
	case AUTH_RESULT_FAIL: {
		static const struct smtp_reply fail =
		    { 535, "5.7.8", "Authentication credentials invalid" };

		log_info("event=auth_failed session=%llu client=%s user=%s reason=%s",
		    (unsigned long long)s->ss->id, s->ss->addr, log_safe(s->login_user),
		    log_safe(reason));
		smtpd_refuse(s, &fail, 1);
		break;
	}
	default: {
		static const struct smtp_reply temp =
		    { 454, "4.7.0", "Temporary authentication failure" };

		log_warn("event=auth_unavailable session=%llu client=%s reason=%s",
		    (unsigned long long)s->ss->id, s->ss->addr, log_safe(reason));
		smtpd_refuse(s, &temp, 0);
		break;
	}
	}
	xfree(&s->login_user);
	session_resume(s->ss);
}

/* Act on one step of the SASL exchange: prompt, submit, or refuse. */
static void
auth_step(struct smtpd_session *s, enum sasl_step step)
{
	static const struct smtp_reply bad64 =
	    { 501, "5.5.2", "Cannot decode base64 response" };
	static const struct smtp_reply badmsg =
	    { 501, "5.5.2", "Invalid PLAIN authentication message" };
	static const struct smtp_reply cancelled =
	    { 501, "5.0.0", "Authentication cancelled" };
	static const struct smtp_reply badmech =
	    { 504, "5.5.4", "Unrecognized authentication type" };
	const struct smtp_reply *r;

	switch (step) {
	case SASL_CHALLENGE:
		s->in_auth = 1;
		smtpd_reply(s, 334, NULL, "%s", buf_cstr(&s->sasl.challenge));
		return;
	case SASL_DONE:
		/* The auth service decides; the session waits. */
		free(s->login_user);
		s->login_user = xstrdup(s->sasl.user);	/* for the log line */
		s->in_auth = 0;
		session_auth(s->ss, s->auth_mech, s->sasl.user, s->sasl.secret,
		    s->sasl.secret_len, auth_done);
		sasl_server_end(&s->sasl);
		return;
	case SASL_FAILED:
		break;
	}
	switch (s->sasl.failure) {
	case SASL_FAIL_BASE64:
		r = &bad64;
		break;
	case SASL_FAIL_CANCELLED:
		r = &cancelled;
		break;
	case SASL_FAIL_MECHANISM:
		r = &badmech;
		break;
	default:
		r = &badmsg;
		break;
	}
	sasl_server_end(&s->sasl);
	s->in_auth = 0;
	xfree(&s->login_user);
	smtpd_refuse(s, r, 1);
}

/* AUTH: start the exchange with the initial response, if any. */
static void
proceed_auth(struct smtpd_session *s, struct cmd_arg *a)
{
	snprintf(s->auth_mech, sizeof(s->auth_mech), "%s", a->mech);
	auth_step(s, sasl_server_start(&s->sasl, a->mech, a->initial, 2048));
}

void
smtpd_cmd_auth_continue(struct smtpd_session *s, const char *line, size_t len)
{
	auth_step(s, sasl_server_continue(&s->sasl, line, len));
}

/* --- The table and the dispatcher -------------------------------------------- */

static const struct cmd commands[] = {
	{ SMTP_HELO, "HELO", CMD_PRE_TLS | CMD_GROUP_END | CMD_COUNTS, check_helo, proceed_helo },
	{ SMTP_EHLO, "EHLO", CMD_PRE_TLS | CMD_GROUP_END | CMD_COUNTS, check_helo, proceed_ehlo },
	{ SMTP_MAIL, "MAIL", CMD_NEED_HELO | CMD_COUNTS, check_mail, proceed_mail },
	{ SMTP_RCPT, "RCPT", CMD_NEED_HELO | CMD_NEED_MAIL | CMD_COUNTS, check_rcpt, proceed_rcpt },
	{ SMTP_DATA, "DATA", CMD_NEED_HELO | CMD_NEED_MAIL | CMD_GROUP_END | CMD_COUNTS,
	    check_data, proceed_data },
	{ SMTP_BDAT, "BDAT", CMD_NEED_HELO | CMD_NEED_MAIL | CMD_COUNTS, check_bdat, proceed_bdat },
	{ SMTP_RSET, "RSET", CMD_PRE_TLS, check_none, proceed_rset },
	{ SMTP_NOOP, "NOOP", CMD_PRE_TLS | CMD_GROUP_END, check_none, proceed_noop },
	{ SMTP_QUIT, "QUIT", CMD_PRE_TLS | CMD_GROUP_END, check_none, proceed_quit },
	{ SMTP_HELP, "HELP", CMD_PRE_TLS | CMD_GROUP_END, check_none, proceed_help },
	{ SMTP_VRFY, "VRFY", CMD_NEED_HELO | CMD_GROUP_END | CMD_COUNTS, check_vrfy, proceed_vrfy },
	{ SMTP_EXPN, "EXPN", CMD_GROUP_END | CMD_COUNTS, check_expn, NULL },
	{ SMTP_STARTTLS, "STARTTLS", CMD_PRE_TLS | CMD_NEED_HELO | CMD_GROUP_END | CMD_COUNTS,
	    check_starttls, proceed_starttls },
	{ SMTP_AUTH, "AUTH", CMD_NEED_HELO | CMD_GROUP_END | CMD_COUNTS, check_auth, proceed_auth },
	{ SMTP_UNKNOWN, "UNKNOWN", CMD_PRE_TLS | CMD_COUNTS, check_unknown, NULL },
};

/* The table entry for a verb. */
static const struct cmd *
cmd_find(enum smtp_verb verb)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == verb)
			return &commands[i];
	return &commands[sizeof(commands) / sizeof(commands[0]) - 1];
}

/* The checks every command's flags call for (pure). */
static int
check_flags(const struct smtpd_session *s, const struct cmd *c, struct smtp_reply *r)
{
	if (s->kind == KIND_SUBMISSION && !session_tls(s->ss) && !(c->flags & CMD_PRE_TLS))
		return smtp_refuse(r, 530, "5.7.0", "Must issue a STARTTLS command first");
	if ((c->flags & CMD_NEED_HELO) && s->helo == NULL)
		return smtp_refuse(r, 503, "5.5.1", "Send HELO/EHLO first");
	if ((c->flags & CMD_NEED_MAIL) && !s->have_mail)
		return smtp_refuse(r, 503, "5.5.1", "Need MAIL command");
	return 0;
}

void
smtpd_cmd_dispatch(struct smtpd_session *s, const char *line, size_t len)
{
	struct cmd_arg a;
	struct smtp_reply r;
	enum smtp_verb verb;
	const struct cmd *c;

	memset(&a, 0, sizeof(a));
	if (smtp_parse_command(line, len, &verb, &a.raw, &r) < 0) {
		smtpd_refuse(s, &r, 1);
		return;
	}
	c = cmd_find(verb);
	log_debug("event=command session=%llu verb=%s", (unsigned long long)s->ss->id, c->name);
	if (verb == SMTP_BDAT) {
		/* Without a size the stream cannot be followed: end it. */
		if (smtp_parse_bdat(a.raw, &a.bdat_size, &a.bdat_last, &r) < 0) {
			log_info("event=reject session=%llu client=%s code=%d reason=bad_bdat",
			    (unsigned long long)s->ss->id, s->ss->addr, r.code);
			smtpd_close_after(s, r.code, r.esc, r.text);
			return;
		}
		if (a.bdat_size / BDAT_FAR_FACTOR > s->sd->set.max_size) {
			log_info("event=reject session=%llu client=%s code=552 "
			    "reason=bdat_chunk_too_big size=%llu", (unsigned long long)s->ss->id,
			    s->ss->addr, (unsigned long long)a.bdat_size);
			s->nrejects++;
			smtpd_reset_transaction(s);
			smtpd_close_after(s, 552, "5.3.4",
			    "Message size exceeds fixed limit, closing connection");
			return;
		}
		if (check_flags(s, c, &r) < 0 || c->check(s, &a, &r) < 0) {
			bdat_skip(s, &a, &r);
			return;
		}
		c->proceed(s, &a);
		return;
	}
	if (check_flags(s, c, &r) < 0 || c->check(s, &a, &r) < 0) {
		int count = (c->flags & CMD_COUNTS) != 0;

		/* A client that sends more recipients than the limit gets its
		 * 452s and may still send DATA for the accepted ones (RFC 5321
		 * 4.5.3.1.10); only past the overshoot allowance does each
		 * excess recipient count as an error. */
		if (a.overshoot && s->rcpt_overshoot++ < s->sd->set.rcpt_overshoot)
			count = 0;
		smtpd_refuse(s, &r, count);
		return;
	}
	if ((c->flags & CMD_GROUP_END) && verb != SMTP_QUIT && verb != SMTP_DATA &&
	    verb != SMTP_STARTTLS && session_buffered(s->ss) > 0)
		log_info("event=improper_pipelining session=%llu client=%s after=%s",
		    (unsigned long long)s->ss->id, s->ss->addr, c->name);
	c->proceed(s, &a);
}

void
smtpd_cmd_cancel_pending(struct smtpd_session *s)
{
	if (s->pp != NULL) {
		policy_cancel(s->sd->policy, s->pp);
		s->pp = NULL;
	}
	sasl_server_end(&s->sasl);
	smtp_mail_free(&s->pending_mail);
	memset(&s->pending_mail, 0, sizeof(s->pending_mail));
	xfree(&s->pending_rcpt);
	xfree(&s->pending_orcpt);
}
