/*
 * pop3d sessions: one per connection.  Accepting (with the connection
 * limits), the greeting (after the TLS handshake on pop3s), the input
 * loop that hands each line to the command dispatcher, replies, the idle
 * timeout, the error limit, the streaming of RETR and TOP, and the end of
 * a session with its log line.
 *
 * Input is processed strictly in order.  While the auth service is asked
 * or a mailbox job (job.c) runs (`waiting`; a job also stops the idle
 * timer), or a message is being sent (ST_SENDING), no further line is
 * read, so pipelined commands (RFC 2449 PIPELINING) see the state the
 * earlier ones left and their responses go out in order; responses are
 * queued in the stream and flushed once per loop batch.
 *
 * A message is never read whole: RETR reads POP3D_CHUNK bytes of the
 * file, converts them (CRLF, dot-stuffing) into the output stream, and
 * reads the next chunk only while less than POP3D_OUTPUT_PAUSE bytes are
 * still unsent; otherwise it waits for the stream to drain.  A session
 * therefore holds at most about 3 * 64 KB of a message at any time.
 */
#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
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
#include "pop3d.h"
#include "xalloc.h"

/* Stream limits: a line fits POP3_MAX_LINE (longer lines are skipped by
 * the stream and refused); the output ceiling leaves room for one
 * converted chunk (at most twice its size) above the pause mark. */
#define POP3D_MAX_INPUT (POP3_MAX_LINE + 2048)
#define POP3D_MAX_OUTPUT (POP3D_OUTPUT_PAUSE + 3 * POP3D_CHUNK + 65536)
/* Stop processing pipelined commands while this much output is unsent. */
#define POP3D_INPUT_PAUSE 16384

static void session_input(struct session *s);

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
		return "no";
	snprintf(text, sizeof(text), "%s:%s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	return text;
}

void
session_view(const struct session *s, struct pop3_view *v)
{
	const struct pop3d_settings *set = &s->pd->set;

	memset(v, 0, sizeof(*v));
	v->state = s->pstate;
	v->tls = session_tls(s);
	v->tls_available = s->pd->tls != NULL;
	v->plaintext_ok = v->tls || set->plaintext_auth ||
	    (s->loopback && set->loopback_secure);
	v->have_user = s->user != NULL;
	v->nmsgs = s->nmsgs;
	v->deleted = s->deleted;
}

void
session_write(struct session *s, const void *p, size_t n)
{
	if (s->ios == NULL || s->state == ST_CLOSING)
		return;
	(void)ios_write(s->ios, p, n);
}

void
session_ok(struct session *s, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (s->ios == NULL || s->state == ST_CLOSING)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	(void)ios_printf(s->ios, "+OK %s\r\n", text);
}

void
session_err(struct session *s, enum pop3_code code, const char *fmt, ...)
{
	const char *name = pop3_code_name(code);
	char text[512];
	va_list ap;

	if (s->ios == NULL || s->state == ST_CLOSING)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (name != NULL)
		(void)ios_printf(s->ios, "-ERR [%s] %s\r\n", name, text);
	else
		(void)ios_printf(s->ios, "-ERR %s\r\n", text);
}

void
session_close_after(struct session *s, const char *line)
{
	if (s->ios != NULL && s->state != ST_CLOSING)
		(void)ios_printf(s->ios, "%s\r\n", line);
	s->state = ST_CLOSING;
	if (s->ios != NULL)
		ios_flush_close(s->ios);
}

void
session_refuse(struct session *s, const struct pop3_refusal *r)
{
	log_info("event=reject session=%llu client=%s reason=%s",
	    (unsigned long long)s->id, s->addr, log_safe(r->text));
	if (r->counts)
		s->nerrors++;
	if (r->counts && ++s->errors >= s->pd->set.max_errors) {
		/* One response per command: this one says goodbye. */
		log_info("event=too_many_errors session=%llu client=%s errors=%u",
		    (unsigned long long)s->id, s->addr, s->errors);
		session_close_after(s, "-ERR Too many errors, closing connection");
		return;
	}
	session_err(s, r->code, "%s", r->text);
}

void
session_reset_auth(struct session *s)
{
	cmd_cancel_pending(s);
	xfree(&s->user);
	s->mech[0] = '\0';
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
	if (s->timer != NULL)
		ev_timer_reset(s->timer, s->pd->set.timeout_ms);
	if (s->ios != NULL && s->state != ST_CLOSING && !s->out_blocked)
		ios_set_reading(s->ios, 1);	/* runs on_read if input waits */
}

void
session_job_wait(struct session *s)
{
	/* The idle timeout is for the client's silence, not for our work. */
	ev_timer_del(&s->timer);
	session_wait(s);
}

static void on_timeout(struct ev_timer *t, void *arg);

void
session_job_done(struct session *s)
{
	if (s->timer == NULL)
		s->timer = ev_timer_add(s->pd->d->loop, s->pd->set.timeout_ms, 0,
		    on_timeout, s);
	session_resume(s);
}

/* Stop streaming: close the message file. */
static void
send_stop(struct session *s)
{
	if (s->snd.fd >= 0) {
		(void)close(s->snd.fd);
		s->snd.fd = -1;
	}
}

/* Unlink, release the connection count and free everything. */
static void
session_free(struct session *s, const char *reason)
{
	struct pop3d *pd = s->pd;

	log_info("event=disconnect session=%llu client=%s user=%s retr=%u top=%u "
	    "dele=%u bytes=%llu errors=%u reason=%s", (unsigned long long)s->id,
	    s->addr, s->login != NULL ? log_safe(s->login) : "-", s->nretr,
	    s->ntop, s->ndele, (unsigned long long)s->bytes, s->nerrors,
	    log_safe(reason));
	send_stop(s);
	session_reset_auth(s);
	job_detach(s);		/* a scan is dropped, an UPDATE goes on */
	cmd_close_mailbox(s);	/* no UPDATE: a dropped session changes nothing */
	xfree(&s->login);
	if (s->counted)
		connlimit_leave(pd->conns, (const struct sockaddr *)&s->peer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		pd->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	pd->nsessions--;
	ev_timer_del(&s->timer);
	ios_free(&s->ios);
	free(s);
	if (pd->d->retiring && pd->nsessions == 0 && pd->njobs == 0)
		log_info("event=retired_idle");
}

/* The greeting, once the connection is ready for it. */
static void
session_greet(struct session *s)
{
	s->greeted = 1;
	s->state = ST_CMD;
	session_ok(s, "POP3 server ready");
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

void
session_send_message(struct session *s, size_t i, int64_t body_lines)
{
	const struct mailbox_msg *m = mailbox_msg(s->mb, i);
	const char *error = NULL;
	int fd = -1;
	int r;

	r = mailbox_msg_open(s->mb, i, &fd, &error);
	if (r < 0) {
		log_error("event=message_open_failed session=%llu user=%s msg=%s "
		    "error=\"%s\"", (unsigned long long)s->id, log_safe(s->login),
		    log_safe(m->name), error);
		session_err(s, POP3_CODE_SYS_TEMP, "Cannot read the message");
		return;
	}
	if (r == 0) {
		session_err(s, POP3_CODE_NONE, "Message was removed by another client");
		return;
	}
	if (body_lines < 0)
		session_ok(s, "%llu octets", (unsigned long long)m->vsize);
	else
		session_ok(s, "Top of message follows");
	s->snd.fd = fd;
	s->snd.top = body_lines >= 0;
	s->snd.index = i;
	mailbox_export_init(&s->snd.x, 1, body_lines);
	s->state = ST_SENDING;
}

/* The message has been exported: the terminating line, and count it. */
static void
send_finish(struct session *s)
{
	struct buf *out = &s->pd->out;

	buf_reset(out);
	if (mailbox_export_end(&s->snd.x, out) < 0 || buf_puts(out, ".\r\n") < 0)
		log_panic("event=export_overflow where=end");
	session_write(s, out->data, out->len);
	s->bytes += out->len;
	buf_reset(out);
	send_stop(s);
	if (s->snd.top) {
		s->ntop++;
	} else {
		s->nretr++;
		s->retrieved[s->snd.index] = 1;
	}
	if (s->state == ST_SENDING)
		s->state = ST_CMD;
}

void
session_send_listing(struct session *s, int uidl)
{
	session_ok(s, uidl ? "Unique-ID listing follows" : "Scan listing follows");
	s->snd.listing = uidl ? POP3_UIDL + 1 : POP3_LIST + 1;
	s->snd.next = 0;
	s->state = ST_SENDING;
}

/* Move a listing forward, a batch of lines at a time, while the output
 * stream is below the pause mark.  1 done, 0 waiting for it to drain. */
static int
list_pump(struct session *s)
{
	struct buf *out = &s->pd->out;
	int uidl = s->snd.listing == POP3_UIDL + 1;

	while (s->snd.next < s->nmsgs) {
		if (ios_pending(s->ios) >= POP3D_OUTPUT_PAUSE) {
			s->out_blocked = 1;
			ios_set_reading(s->ios, 0);
			return 0;
		}
		buf_reset(out);
		/* A line is at most 10 + 1 + 70 + 2 octets: 256 fit in out. */
		for (size_t n = 0; n < 256 && s->snd.next < s->nmsgs; n++) {
			size_t i = s->snd.next++;
			const struct mailbox_msg *m;
			int r;

			if (s->deleted[i])
				continue;
			m = mailbox_msg(s->mb, i);
			if (uidl)
				r = buf_printf(out, "%zu %s\r\n", i + 1, m->uidl);
			else
				r = buf_printf(out, "%zu %llu\r\n", i + 1,
				    (unsigned long long)m->vsize);
			if (r < 0)
				log_panic("event=listing_overflow");
		}
		session_write(s, out->data, out->len);
	}
	buf_reset(out);
	session_write(s, ".\r\n", 3);
	s->snd.listing = 0;
	s->state = ST_CMD;
	return 1;
}

/*
 * Move the message or listing forward: read and convert chunks while the
 * output stream is below the pause mark.  1 when the response is done
 * (or the session failed and is closing), 0 while waiting for the
 * stream to drain.
 */
static int
send_pump(struct session *s)
{
	struct pop3d *pd = s->pd;

	if (s->snd.listing)
		return list_pump(s);
	while (s->state == ST_SENDING) {
		ssize_t n;
		int r;

		if (ios_pending(s->ios) >= POP3D_OUTPUT_PAUSE) {
			s->out_blocked = 1;
			ios_set_reading(s->ios, 0);
			return 0;
		}
		n = read(s->snd.fd, pd->chunk, POP3D_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* Half a message is out: no valid response can follow. */
			log_error("event=message_read_failed session=%llu user=%s "
			    "error=\"%s\"", (unsigned long long)s->id,
			    log_safe(s->login), strerror(errno));
			send_stop(s);
			s->state = ST_CLOSING;
			ios_flush_close(s->ios);
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
		session_write(s, pd->out.data, pd->out.len);
		s->bytes += pd->out.len;
		buf_reset(&pd->out);
		if (r == 1) {
			send_finish(s);
			return 1;
		}
	}
	return 1;
}

/* Process buffered input until it runs out or a step must wait. */
static void
session_input(struct session *s)
{
	const char *line;
	size_t len;
	int r;

	while (s->ios != NULL && !s->waiting && s->state != ST_CLOSING &&
	    s->state != ST_TLS_WAIT) {
		if (s->state == ST_SENDING) {
			if (send_pump(s) == 0)
				return;
			continue;
		}
		if (ios_pending(s->ios) > POP3D_INPUT_PAUSE) {
			/* A client that pipelines without reading responses
			 * waits until it has read some. */
			s->out_blocked = 1;
			ios_set_reading(s->ios, 0);
			return;
		}
		r = ios_read_line(s->ios, &line, &len, NULL);
		if (r == 0)
			return;
		ev_timer_reset(s->timer, s->pd->set.timeout_ms);	/* a whole line */
		if (r < 0) {
			static const struct pop3_refusal too_long =
			    { POP3_CODE_NONE, "Line too long", 1 };

			if (s->state != ST_CMD) {
				s->state = ST_CMD;	/* an AUTH exchange ends */
				xfree(&s->user);
			}
			session_refuse(s, &too_long);
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
			session_greet(s);	/* pop3s */
		else
			s->state = ST_CMD;	/* after STLS */
		ev_timer_reset(s->timer, s->pd->set.timeout_ms);
	}
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
	if (s->state == ST_SENDING && s->timer != NULL)	/* progress */
		ev_timer_reset(s->timer, s->pd->set.timeout_ms);
	if (!s->waiting && s->state != ST_CLOSING) {
		ios_set_reading(s->ios, 1);
		session_input(s);
	}
}

/* ios: the connection is gone. */
static void
on_close(struct ios *ios, enum ios_close why, const char *text, void *arg)
{
	struct session *s = arg;

	(void)ios;
	if (s->state == ST_SENDING)
		log_info("event=lost_in_retr session=%llu client=%s",
		    (unsigned long long)s->id, s->addr);
	session_free(s, why == IOS_CLOSE_EOF && s->state == ST_CLOSING ? "quit" : text);
}

static const struct ios_callbacks session_callbacks = { on_read, on_drained, on_close };

/* The idle timer fired.  RFC 1939: close without a response and without
 * entering UPDATE (nothing is deleted). */
static void
on_timeout(struct ev_timer *t, void *arg)
{
	struct session *s = arg;

	(void)t;
	log_info("event=timeout session=%llu client=%s state=%d",
	    (unsigned long long)s->id, s->addr, (int)s->state);
	session_free(s, s->state == ST_TLS_WAIT ? "timeout in TLS handshake" : "timeout");
}

void
pop3d_accept(struct pop3d *pd, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	static const struct ios_limits lim = {
		POP3_MAX_LINE, POP3D_MAX_INPUT, POP3D_MAX_OUTPUT, 0
	};
	struct session *s = xcalloc(1, sizeof(*s));
	const char *which = NULL;

	s->pd = pd;
	s->id = ++pd->next_id;
	s->implicit_tls = strcmp(l->tag, "pop3s") == 0;
	s->peer = *peer;
	s->loopback = net_is_loopback((const struct sockaddr *)peer);
	s->snd.fd = -1;
	s->pstate = POP3_AUTHORIZATION;
	net_addr_text((const struct sockaddr *)peer, s->addr, sizeof(s->addr));
	s->next = pd->sessions;
	if (pd->sessions != NULL)
		pd->sessions->prev = s;
	pd->sessions = s;
	pd->nsessions++;
	s->ios = ios_new(pd->d->loop, fd, &lim, &session_callbacks, s);
	s->timer = ev_timer_add(pd->d->loop, pd->set.timeout_ms, 0, on_timeout, s);
	log_info("event=connect session=%llu client=%s listener=%s",
	    (unsigned long long)s->id, s->addr, s->implicit_tls ? "pop3s" : "pop3");

	if (connlimit_enter(pd->conns, (const struct sockaddr *)peer,
	    pd->set.max_conns, pd->set.max_conns_ip, &which) != 1) {
		log_info("event=reject session=%llu client=%s reason=connection_limit "
		    "limit=%s", (unsigned long long)s->id, s->addr,
		    which ? which : "total");
		s->state = ST_CMD;
		session_close_after(s, which != NULL && strcmp(which, "address") == 0 ?
		    "-ERR [SYS/TEMP] Too many connections from your address" :
		    "-ERR [SYS/TEMP] Too many connections, try again later");
		return;
	}
	s->counted = 1;
	if (s->implicit_tls) {
		if (pd->tls == NULL || ios_starttls_server(s->ios, pd->tls) < 0) {
			log_error("event=tls_unavailable session=%llu client=%s "
			    "detail=\"pop3s listener without a usable TLS context\"",
			    (unsigned long long)s->id, s->addr);
			session_free(s, "no TLS for pop3s");
			return;
		}
		s->state = ST_TLS_WAIT;
		return;
	}
	session_greet(s);
}

/*
 * Shutdown: the loop ends right after this, so the -ERR is written to
 * the socket directly (best effort).  Nothing is deleted: a session
 * ended this way never reaches UPDATE.
 */
void
pop3d_stop_all(struct pop3d *pd)
{
	static const char bye[] = "-ERR [SYS/TEMP] Server shutting down\r\n";

	while (pd->sessions != NULL) {
		struct session *s = pd->sessions;

		if (s->ios != NULL && s->greeted && s->state != ST_CLOSING &&
		    s->state != ST_SENDING)
			ios_write_last(s->ios, bye, sizeof(bye) - 1);
		session_free(s, "shutdown");
	}
}
