/*
 * pop3d sessions: POP3's side of lib/core/session, which owns the connection
 * (accepting under the limits, pop3s's handshake, in-order input with
 * its pauses, the idle timer, STLS, replies, stop-all).  Here: the reply
 * syntax (+OK, -ERR [CODE]), refusals and the error limit, the checks'
 * view of a session, the streaming of RETR, TOP, LIST and UIDL, and the
 * hooks -- the greeting, each line to the dispatcher (cmd.c) or the AUTH
 * exchange, the line-length refusal and the disconnect line.  The idle
 * timeout closes without a response, as RFC 1939 says.
 *
 * While the auth service is asked or a mailbox job (job.c) runs (the
 * session waits; a job also stops the idle timer), or a response is
 * being streamed, no further line is read, so pipelined commands (RFC
 * 2449 PIPELINING) see the state the earlier ones left and their
 * responses go out in order, flushed once per loop batch.
 *
 * A message is never read whole: RETR reads POP3D_CHUNK bytes of the
 * file, converts them (CRLF, dot-stuffing) into the output stream, and
 * the next chunk follows only while less than POP3D_OUTPUT_PAUSE bytes
 * are still unsent (lib/core/session's producer); otherwise it waits for the
 * stream to drain.  A session therefore holds at most about 3 * 64 KB of
 * a message at any time.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pop3d.h"
#include "xalloc.h"

/* Stream limits: a line fits POP3_MAX_LINE (longer lines are skipped by
 * the stream and refused); the output ceiling leaves room for one
 * converted chunk (at most twice its size) above the pause mark. */
#define POP3D_MAX_INPUT (POP3_MAX_LINE + 2048)
#define POP3D_MAX_OUTPUT (POP3D_OUTPUT_PAUSE + 3 * POP3D_CHUNK + 65536)
/* Stop processing pipelined commands while this much output is unsent. */
#define POP3D_INPUT_PAUSE 16384

void
pop3d_view(const struct pop3d_session *s, struct pop3_view *v)
{
	const struct pop3d_settings *set = &s->pd->set;

	memset(v, 0, sizeof(*v));
	v->state = s->pstate;
	v->tls = session_tls(s->ss);
	v->tls_available = s->pd->tls != NULL;
	v->plaintext_ok = v->tls || set->plaintext_auth ||
	    (s->ss->loopback && set->loopback_secure);
	v->have_user = s->user != NULL;
	v->nmsgs = s->nmsgs;
	v->deleted = s->deleted;
}

void
pop3d_ok(struct pop3d_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s->ss, "+OK ", fmt, ap);
	va_end(ap);
}

void
pop3d_err(struct pop3d_session *s, enum pop3_code code, const char *fmt, ...)
{
	const char *name = pop3_code_name(code);
	char prefix[SESSION_REPLY_PREFIX];
	va_list ap;

	if (name != NULL)
		snprintf(prefix, sizeof(prefix), "-ERR [%s] ", name);
	else
		snprintf(prefix, sizeof(prefix), "-ERR ");
	va_start(ap, fmt);
	session_vreply(s->ss, prefix, fmt, ap);
	va_end(ap);
}

void
pop3d_close_after(struct pop3d_session *s, const char *line)
{
	session_reply(s->ss, "", "%s", line);
	session_close_after(s->ss);
}

void
pop3d_refuse(struct pop3d_session *s, const struct pop3_refusal *r)
{
	log_info("event=reject session=%llu client=%s reason=%s",
	    (unsigned long long)s->ss->id, s->ss->addr, log_safe(r->text));
	if (r->counts)
		s->nerrors++;
	if (r->counts && ++s->errors >= s->pd->set.max_errors) {
		/* One response per command: this one says goodbye. */
		log_info("event=too_many_errors session=%llu client=%s errors=%u",
		    (unsigned long long)s->ss->id, s->ss->addr, s->errors);
		pop3d_close_after(s, "-ERR Too many errors, closing connection");
		return;
	}
	pop3d_err(s, r->code, "%s", r->text);
}

void
pop3d_reset_auth(struct pop3d_session *s)
{
	sasl_server_end(&s->sasl);
	xfree(&s->user);
	s->in_auth = 0;
	s->mech[0] = '\0';
}

/* --- Streaming -------------------------------------------------------------- */

/* Stop streaming: close the message file. */
static void
send_stop(struct pop3d_session *s)
{
	if (s->snd.fd >= 0) {
		(void)close(s->snd.fd);
		s->snd.fd = -1;
	}
}

/* The message has been exported: the terminating line, and count it. */
static void
send_finish(struct pop3d_session *s)
{
	struct buf *out = &s->pd->out;

	buf_reset(out);
	if (mailbox_export_end(&s->snd.x, out) < 0 || buf_puts(out, ".\r\n") < 0)
		log_panic("event=export_overflow where=end");
	session_write(s->ss, out->data, out->len);
	s->bytes += out->len;
	buf_reset(out);
	send_stop(s);
	if (s->snd.top) {
		s->ntop++;
	} else {
		s->nretr++;
		s->retrieved[s->snd.index] = 1;
	}
}

/* The producer of RETR and TOP: read and convert one chunk.  1 when the
 * response is done (or the session failed and is closing), 0 for more. */
static int
message_step(struct session *ss)
{
	struct pop3d_session *s = ss->owner;
	struct pop3d *pd = s->pd;
	ssize_t n;
	int r;

	do
		n = read(s->snd.fd, pd->chunk, POP3D_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		/* Half a message is out: no valid response can follow. */
		log_error("event=message_read_failed session=%llu user=%s "
		    "error=\"%s\"", (unsigned long long)ss->id, log_safe(s->login),
		    strerror(errno));
		send_stop(s);
		session_close_after(ss);
		return 1;
	}
	if (n == 0) {
		send_finish(s);
		return 1;
	}
	buf_reset(&pd->out);
	r = mailbox_export_feed(&s->snd.x, pd->chunk, (size_t)n, &pd->out);
	if (r < 0)
		log_panic("event=export_overflow where=feed");
	session_write(ss, pd->out.data, pd->out.len);
	s->bytes += pd->out.len;
	buf_reset(&pd->out);
	if (r == 1) {
		send_finish(s);
		return 1;
	}
	return 0;
}

void
pop3d_send_message(struct pop3d_session *s, size_t i, int64_t body_lines)
{
	const struct mailbox_msg *m = mailbox_msg(s->mb, i);
	const char *error = NULL;
	int fd = -1;
	int r;

	r = mailbox_msg_open(s->mb, i, &fd, &error);
	if (r < 0) {
		log_error("event=message_open_failed session=%llu user=%s msg=%s "
		    "error=\"%s\"", (unsigned long long)s->ss->id, log_safe(s->login),
		    log_safe(m->name), error);
		pop3d_err(s, POP3_CODE_SYS_TEMP, "Cannot read the message");
		return;
	}
	if (r == 0) {
		pop3d_err(s, POP3_CODE_NONE, "Message was removed by another client");
		return;
	}
	if (body_lines < 0)
		pop3d_ok(s, "%llu octets", (unsigned long long)m->vsize);
	else
		pop3d_ok(s, "Top of message follows");
	s->snd.fd = fd;
	s->snd.top = body_lines >= 0;
	s->snd.index = i;
	mailbox_export_init(&s->snd.x, 1, body_lines);
	session_produce(s->ss, message_step);
}

/* The producer of LIST and UIDL: a batch of lines.  1 when the listing
 * is done, 0 for more. */
static int
listing_step(struct session *ss)
{
	struct pop3d_session *s = ss->owner;
	struct buf *out = &s->pd->out;

	buf_reset(out);
	/* A line is at most 10 + 1 + 70 + 2 octets: 256 fit in out. */
	for (size_t n = 0; n < 256 && s->snd.next < s->nmsgs; n++) {
		size_t i = s->snd.next++;
		const struct mailbox_msg *m;
		int r;

		if (s->deleted[i])
			continue;
		m = mailbox_msg(s->mb, i);
		if (s->snd.uidl)
			r = buf_printf(out, "%zu %s\r\n", i + 1, m->uidl);
		else
			r = buf_printf(out, "%zu %llu\r\n", i + 1,
			    (unsigned long long)m->vsize);
		if (r < 0)
			log_panic("event=listing_overflow");
	}
	session_write(ss, out->data, out->len);
	buf_reset(out);
	if (s->snd.next < s->nmsgs)
		return 0;
	session_write(ss, ".\r\n", 3);
	return 1;
}

void
pop3d_send_listing(struct pop3d_session *s, int uidl)
{
	pop3d_ok(s, uidl ? "Unique-ID listing follows" : "Scan listing follows");
	s->snd.uidl = uidl;
	s->snd.next = 0;
	session_produce(s->ss, listing_step);
}

/* --- lib/core/session's hooks ---------------------------------------------------- */

/* The greeting, once the connection is ready for it. */
static void
on_greet(struct session *ss)
{
	pop3d_ok(ss->owner, "POP3 server ready");
}

/* A command, or a response inside the AUTH exchange. */
static void
on_line(struct session *ss, const char *line, size_t len)
{
	struct pop3d_session *s = ss->owner;

	if (s->in_auth)
		pop3d_cmd_auth_continue(s, line, len);
	else
		pop3d_cmd_dispatch(s, line, len);
}

/* A line past POP3_MAX_LINE: refused, and it ends an AUTH exchange. */
static void
on_too_long(struct session *ss)
{
	static const struct pop3_refusal r = { POP3_CODE_NONE, "Line too long", 1 };
	struct pop3d_session *s = ss->owner;

	if (s->in_auth) {
		s->in_auth = 0;
		xfree(&s->user);
	}
	pop3d_refuse(s, &r);
}

/* The session is going: the disconnect line, and free everything (a
 * session that did not reach UPDATE changes nothing). */
static void
on_closed(struct session *ss, const char *reason)
{
	struct pop3d_session *s = ss->owner;
	struct pop3d *pd = s->pd;

	log_info("event=disconnect session=%llu client=%s user=%s retr=%u top=%u "
	    "dele=%u bytes=%llu errors=%u reason=%s", (unsigned long long)ss->id,
	    ss->addr, s->login != NULL ? log_safe(s->login) : "-", s->nretr,
	    s->ntop, s->ndele, (unsigned long long)s->bytes, s->nerrors,
	    log_safe(reason));
	send_stop(s);
	pop3d_reset_auth(s);
	job_detach(s);		/* a scan is dropped, an UPDATE goes on */
	pop3d_cmd_close_mailbox(s);
	xfree(&s->login);
	free(s);
	if (pd->d->retiring && pd->sessions.count == 0 && pd->njobs == 0)
		log_info("event=retired_idle");
}

static const struct session_proto pop3d_proto = {
	.service = "pop3",
	.limits = { POP3_MAX_LINE, POP3D_MAX_INPUT, POP3D_MAX_OUTPUT, 0 },
	.input_pause = POP3D_INPUT_PAUSE,
	.produce_pause = POP3D_OUTPUT_PAUSE,
	.busy_total = "-ERR [SYS/TEMP] Too many connections, try again later",
	.busy_addr = "-ERR [SYS/TEMP] Too many connections from your address",
	.bye = "-ERR [SYS/TEMP] Server shutting down",
	.ready = on_greet,
	.line = on_line,
	.too_long = on_too_long,
	.closed = on_closed,
};

void
pop3d_sessions_init(struct pop3d *pd)
{
	struct session_registry *r = &pd->sessions;

	session_registry_init(r, pd->d->loop, &pop3d_proto, pd);
	r->tls = pd->tls;
	r->conns = pd->conns;
	r->max_conns = pd->set.max_conns;
	r->max_conns_ip = pd->set.max_conns_ip;
	r->auth = pd->auth;
	r->auth_timeout_ms = pd->set.auth_timeout_ms;
	for (int p = 0; p < SESSION_PHASES; p++)
		r->timeout_ms[p] = pd->set.timeout_ms;
}

void
pop3d_accept(struct pop3d *pd, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	struct pop3d_session *s = xcalloc(1, sizeof(*s));
	int implicit_tls = strcmp(l->tag, "pop3s") == 0;

	s->pd = pd;
	s->snd.fd = -1;
	s->pstate = POP3_AUTHORIZATION;
	s->ss = session_new(&pd->sessions, fd, peer, s);
	session_start(s->ss, implicit_tls ? "pop3s" : "pop3", implicit_tls);
}
