/*
 * smtpd message content: DATA and BDAT.  Bytes are parsed as they arrive
 * (never a whole message in memory) by the content scanner (body.c):
 * dot-unstuffing and the end marker for DATA, the 998-byte line limit,
 * and the SMTP smuggling defence -- only CRLF "." CRLF ends DATA (a "."
 * line after a bare LF or CR never does; see CVE-2023-51764), a bare CR
 * refuses the message, and a bare LF does too unless the client's
 * smtpd_bare_lf setting (smtpd_bare_lf_trusted for authenticated and
 * mynetworks clients) says normalize: then it ends its line.  SIZE is
 * counted here.  Errors never stop the parser: it reads on to the end of
 * the data so the session stays in step, then answers.
 *
 * Content is written LF-normalised to a queue file (lib/mail/qfile.h) after a
 * Received header.  On submission and smtps the header section is
 * followed line by line so Date and Message-ID can be added when missing.
 * A complete message joins the process's group commit (lib/core/commit): its
 * sync thread commits one batch at a time with one round of syncs
 * (qfile_commit) while the loop goes on serving sessions; every message
 * completed meanwhile forms the next batch.  Only after a batch is
 * durable do its 250s go out.
 */
#include "autoconf.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "commit.h"
#include "ios.h"
#include "ipc.h"
#include "log.h"
#include "policy.h"
#include "qmgrproto.h"
#include "smtp.h"
#include "smtpd.h"
#include "xalloc.h"

/* The fields submission adds when the header lacks them. */
#define FIELD_DATE "date:"
#define FIELD_MSGID "message-id:"

/* An RFC 5322 date for now, into out (formatted once a second: every
 * message's Received header has one; only the loop's thread calls this). */
static void
rfc5322_date(char *out, size_t len)
{
	static time_t last = (time_t)-1;
	static char text[64];
	time_t now = time(NULL);
	struct tm tm;

	if (now != last) {
		if (localtime_r(&now, &tm) == NULL ||
		    strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
			snprintf(text, sizeof(text), "Thu, 01 Jan 1970 00:00:00 +0000");
		last = now;
	}
	snprintf(out, len, "%s", text);
}

/* The first content error decides the reply; the file goes at once. */
static void
body_error(struct smtpd_session *s, enum body_err e)
{
	struct body *b = &s->body;

	if (b->err != BODY_OK)
		return;
	b->err = e;
	qfile_abort(&b->w);
	log_debug("event=content_error session=%llu error=%d",
	    (unsigned long long)s->ss->id, (int)e);
}

/* Write message bytes unless discarding or failed. */
static void
body_write(struct smtpd_session *s, const void *p, size_t n)
{
	struct body *b = &s->body;

	if (b->err != BODY_OK || b->discard || b->w == NULL || n == 0)
		return;
	if (qfile_write(b->w, p, n) < 0) {
		(void)log_limited(&s->sd->loglimit, LOG_LEVEL_ERROR, NULL,
		    "event=spool_write_failed session=%llu id=%s",
		    (unsigned long long)s->ss->id, s->env.id);
		body_error(s, BODY_IO);
	}
}

/* The header section ended: add the missing fields (and a blank line
 * when the body starts without one). */
static void
header_finish(struct smtpd_session *s, int add_blank)
{
	struct body *b = &s->body;
	char date[64], *text;

	b->in_header = 0;
	if (!b->fix_header)
		return;
	if (!b->have_date) {
		rfc5322_date(date, sizeof(date));
		text = xasprintf("Date: %s\n", date);
		body_write(s, text, strlen(text));
		free(text);
	}
	if (!b->have_msgid) {
		text = xasprintf("Message-ID: <%s@%s>\n", s->env.id, s->sd->set.hostname);
		body_write(s, text, strlen(text));
		free(text);
	}
	if (add_blank)
		body_write(s, "\n", 1);
}

/* A complete line of the header section (fix_header only). */
static void
header_line_end(struct smtpd_session *s)
{
	struct body *b = &s->body;
	const char *line = buf_cstr(&b->hline);
	size_t len = b->hline.len;

	if (len == 0) {
		header_finish(s, 0);
	} else if (line[0] == ' ' || line[0] == '\t') {
		/* a continuation line */
	} else if (smtp_is_field(line, len)) {
		if (len >= strlen(FIELD_DATE) &&
		    strncasecmp(line, FIELD_DATE, strlen(FIELD_DATE)) == 0)
			b->have_date = 1;
		if (len >= strlen(FIELD_MSGID) &&
		    strncasecmp(line, FIELD_MSGID, strlen(FIELD_MSGID)) == 0)
			b->have_msgid = 1;
	} else {
		header_finish(s, 1);	/* the body starts without a blank line */
	}
	body_write(s, line, len);
	body_write(s, "\n", 1);
	buf_reset(&b->hline);
}

/* Count bytes against SIZE. */
static void
body_count(struct smtpd_session *s, size_t n)
{
	struct body *b = &s->body;

	b->size += n;
	if (b->size > s->sd->set.max_size)
		body_error(s, BODY_TOO_BIG);
}

/* The scanner's callbacks.  Bytes inside a line. */
static void
body_content(void *arg, const char *p, size_t n)
{
	struct smtpd_session *s = arg;
	struct body *b = &s->body;

	body_count(s, n);
	if (b->err != BODY_OK)
		return;
	if (b->in_header && b->fix_header) {
		if (buf_append(&b->hline, p, n) < 0)
			body_error(s, BODY_TOO_LONG);
		return;
	}
	body_write(s, p, n);
}

/* The end of a line (crlf: it ended with CRLF, else a bare LF). */
static void
body_line_end(void *arg, int crlf)
{
	struct smtpd_session *s = arg;
	struct body *b = &s->body;

	body_count(s, crlf ? 2 : 1);
	if (b->err != BODY_OK)
		return;
	if (b->in_header && b->fix_header)
		header_line_end(s);
	else
		body_write(s, "\n", 1);
}

/* A bare CR or LF, or a line too long. */
static void
body_scan_error(void *arg, enum body_err e)
{
	body_error(arg, e);
}

static const struct body_scan_ops scan_ops = {
	body_content, body_line_end, body_scan_error
};

/* The Received header (RFC 5321 4.4), folded, LF line endings. */
static char *
received_header(struct smtpd_session *s)
{
	struct buf h = BUF_INIT;
	const char *tls = s->env.tls;
	char date[64];
	int v6 = strchr(s->ss->addr, ':') != NULL;

	rfc5322_date(date, sizeof(date));
	if (buf_printf(&h, "Received: from %s ([%s%s])\n\tby %s (postern) with %s id %s",
	    s->helo != NULL ? s->helo : "unknown", v6 ? "IPv6:" : "", s->ss->addr,
	    s->sd->set.hostname, s->env.proto, s->env.id) < 0)
		log_panic("event=overflow");
	if (tls != NULL) {
		const char *colon = strchr(tls, ':');

		if (buf_printf(&h, "\n\t(using %.*s with cipher %s)",
		    (int)(colon ? colon - tls : (ptrdiff_t)strlen(tls)), tls,
		    colon ? colon + 1 : "unknown") < 0)
			log_panic("event=overflow");
	}
	if (s->auth_user != NULL &&
	    buf_printf(&h, "\n\t(authenticated as %s)", s->auth_user) < 0)
		log_panic("event=overflow");
	if (s->env.nrcpts == 1 &&
	    buf_printf(&h, "\n\tfor <%s>", s->env.rcpts[0].addr) < 0)
		log_panic("event=overflow");
	if (buf_printf(&h, "; %s\n", date) < 0)
		log_panic("event=overflow");
	return buf_steal(&h);
}

/* Whether a bare LF in this client's content is a line end: the
 * setting for authenticated and mynetworks clients, or the one for
 * everyone else. */
static int
bare_lf_normalize(const struct smtpd_session *s)
{
	const struct smtpd_settings *set = &s->sd->set;

	if (s->auth_user != NULL ||
	    policy_in_mynetworks(s->sd->policy, (const struct sockaddr *)&s->ss->peer))
		return set->bare_lf_trusted_normalize;
	return set->bare_lf_normalize;
}

int
data_begin(struct smtpd_session *s, int bdat, struct smtp_reply *r)
{
	struct body *b = &s->body;
	struct envelope *e = &s->env;
	const char *tls = session_tls_text(s->ss), *error;
	struct timespec now;
	char *received;

	data_abort(s);
	body_scan_init(&b->scan, !bdat, bare_lf_normalize(s));
	b->err = BODY_OK;
	b->size = 0;
	b->in_header = 1;
	b->fix_header = s->kind != KIND_SMTP;
	b->have_date = b->have_msgid = 0;
	b->discard = s->sender_discard || e->nrcpts == 0;
	buf_reset(&b->hline);

	if (clock_gettime(CLOCK_REALTIME, &now) == 0)
		e->arrival_us = (uint64_t)now.tv_sec * 1000000u +
		    (uint64_t)now.tv_nsec / 1000u;
	free(e->proto);
	e->proto = xasprintf("%s%s%s", s->esmtp ? "ESMTP" : "SMTP",
	    s->esmtp && tls != NULL ? "S" : "", s->esmtp && s->auth_user ? "A" : "");
	free(e->tls);
	e->tls = tls != NULL ? xstrdup(tls) : NULL;
	if (b->discard) {
		qfile_new_id(e->id);
	} else if (qfile_begin(s->sd->set.incoming, e, &b->w, &error) < 0) {
		(void)log_limited(&s->sd->loglimit, LOG_LEVEL_ERROR, error,
		    "event=spool_open_failed session=%llu error=\"%s\"",
		    (unsigned long long)s->ss->id, error);
		r->code = 451;
		r->esc = "4.3.0";
		r->text = "Error: cannot queue the message now, try again later";
		return -1;
	}
	received = received_header(s);
	body_write(s, received, strlen(received));
	free(received);
	log_debug("event=data_begin session=%llu id=%s bdat=%d",
	    (unsigned long long)s->ss->id, e->id, bdat);
	return 0;
}

/* How long a reading of the spool's free space is used (loop time). */
#define SPACE_CACHE_MS 1000

int
data_spool_room(struct smtpd_session *s, uint64_t size, struct smtp_reply *r)
{
	struct smtpd *sd = s->sd;
	uint64_t now = ev_now(sd->d->loop);
	const char *error, *why;

	if (!sd->space_known || now - sd->space_ms >= SPACE_CACHE_MS) {
		if (fs_space(sd->set.incoming, &sd->space_bytes, &sd->space_inodes,
		    &error) < 0) {
			sd->space_known = 0;
			(void)log_limited(&sd->loglimit, LOG_LEVEL_ERROR, error,
			    "event=spool_space_failed error=\"%s\"", error);
			*r = (struct smtp_reply){ 451, "4.3.0",
			    "Error: cannot check the spool's free space, try again later" };
			return -1;
		}
		sd->space_known = 1;
		sd->space_ms = now;
	}
	if (!qfile_room(sd->space_bytes, sd->space_inodes, sd->set.reserve, size, &why)) {
		(void)log_limited(&sd->loglimit, LOG_LEVEL_WARN, why,
		    "event=spool_full session=%llu free=%llu inodes=%llu "
		    "queue_minfree=%llu size=%llu reason=\"%s\"",
		    (unsigned long long)s->ss->id, (unsigned long long)sd->space_bytes,
		    (unsigned long long)sd->space_inodes,
		    (unsigned long long)sd->set.reserve, (unsigned long long)size, why);
		*r = (struct smtp_reply){ 452, "4.3.1", "Insufficient system storage" };
		return -1;
	}
	return 0;
}

/* The reply for a content error. */
static void
body_err_reply(enum body_err e, struct smtp_reply *r)
{
	switch (e) {
	case BODY_BARE_EOL:
		*r = (struct smtp_reply){ 554, "5.6.0",
		    "Message refused: bare CR or LF in the content "
		    "(lines must end with CRLF)" };
		break;
	case BODY_TOO_LONG:
		*r = (struct smtp_reply){ 500, "5.5.2", "Line too long (over 998 bytes)" };
		break;
	case BODY_TOO_BIG:
		*r = (struct smtp_reply){ 552, "5.3.4", "Message size exceeds fixed limit" };
		break;
	default:
		*r = (struct smtp_reply){ 451, "4.3.0",
		    "Error: queue file write error, try again later" };
		break;
	}
}

/* A message in the group commit (lib/core/commit): its writer, until the
 * sync thread commits (and frees) it, and its id for the log. */
struct spool_item {
	struct qfile_writer *w;
	char id[QFILE_ID_MAX];
};

/* In the sync thread: commit the batch's queue files with one round of
 * syncs (qfile_commit). */
static void
batch_sync(void *const *items, size_t n, int *results, const char **error_r,
    void *arg)
{
	struct qfile_writer **ws = xcalloc(n ? n : 1, sizeof(*ws));

	(void)arg;
	for (size_t i = 0; i < n; i++) {
		struct spool_item *it = items[i];

		ws[i] = it->w;
		it->w = NULL;		/* qfile_commit frees the writers */
	}
	qfile_commit(ws, n, results, error_r);
	free(ws);
}

/* A batch is settled: answer its sessions (those still there), then tell
 * qmgr about the queued messages. */
static void
batch_done(const struct commit_entry *e, size_t n, const char *error, void *arg)
{
	struct smtpd *sd = arg;
	size_t queued = 0;
	char **ids = xcalloc(n ? n : 1, sizeof(*ids));

	for (size_t i = 0; i < n; i++) {
		struct spool_item *it = e[i].item;
		struct smtpd_session *s = e[i].owner;
		int ok = e[i].result == 0;

		qfile_abort(&it->w);	/* a message never synced (stopping) */
		if (ok)
			ids[queued++] = xstrdup(it->id);
		if (s == NULL) {
			/* The client left before its answer: the message is
			 * queued (or not) all the same. */
			log_info("event=%s id=%s reason=client_gone",
			    ok ? "queued" : "commit_failed", it->id);
		} else if (ok) {
			log_info("event=queued session=%llu id=%s from=<%s> nrcpt=%zu "
			    "size=%llu client=%s tls=%s auth=%s",
			    (unsigned long long)s->ss->id, s->env.id, log_safe(s->env.sender),
			    s->env.nrcpts, (unsigned long long)s->body.size, s->ss->addr,
			    s->env.tls ? s->env.tls : "none",
			    s->auth_user ? log_safe(s->auth_user) : "none");
			smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", s->env.id);
			s->nmsgs++;
			s->nrcpts_total += (unsigned)s->env.nrcpts;
		} else {
			/* The reason names the queue file: limited per site. */
			(void)log_limited(&sd->loglimit, LOG_LEVEL_ERROR, NULL,
			    "event=commit_failed session=%llu id=%s error=\"%s\"",
			    (unsigned long long)s->ss->id, s->env.id, error ? error : "unknown");
			smtpd_reply(s, 451, "4.3.0",
			    "Error: queue file write error, try again later");
		}
		if (s != NULL) {
			smtpd_reset_transaction(s);
			session_resume(s->ss);
		}
		free(it);
	}
	if (queued > 0)
		smtpd_notify_qmgr(sd, (const char *const *)ids, queued);
	for (size_t i = 0; i < queued; i++)
		free(ids[i]);
	free(ids);
}

/* Hand a complete message to the group commit; the session waits.  Its
 * batch leaves at the end of this loop iteration, or as soon as the batch
 * before it is durable. */
static void
batch_add(struct smtpd_session *s)
{
	struct spool_item *it = xcalloc(1, sizeof(*it));

	it->w = s->body.w;
	s->body.w = NULL;
	memcpy(it->id, s->env.id, sizeof(it->id));
	session_wait(s->ss);
	commit_add(s->sd->committer, it, s);
}

int
data_committer_start(struct smtpd *sd, const char **error_r)
{
	return commit_start(sd->d->loop, batch_sync, batch_done, sd, &sd->committer,
	    error_r);
}

void
data_unbatch(struct smtpd_session *s)
{
	struct committer *c = s->sd->committer;
	struct spool_item *it;

	if (c == NULL)
		return;
	/* Not sent to the sync thread yet: the message goes. */
	while ((it = commit_cancel(c, s)) != NULL) {
		qfile_abort(&it->w);
		free(it);
	}
	/* In flight: it is committed all the same; only forget the session. */
	commit_forget(c, s);
}

void
data_abort(struct smtpd_session *s)
{
	data_unbatch(s);
	qfile_abort(&s->body.w);
	s->body.bdat_skip = 0;
	buf_reset(&s->body.hline);
}

/* The content is complete: answer an error, or queue it. */
static void
data_finish(struct smtpd_session *s)
{
	struct body *b = &s->body;
	struct smtp_reply r;

	session_read_lines(s->ss);
	if (b->err == BODY_OK && b->in_header)
		header_finish(s, 0);
	if (b->scan.bare_lf > 0)
		log_info("event=bare_lf_normalized session=%llu id=%s client=%s "
		    "count=%llu", (unsigned long long)s->ss->id, s->env.id, s->ss->addr,
		    (unsigned long long)b->scan.bare_lf);
	if (b->err != BODY_OK) {
		body_err_reply(b->err, &r);
		log_info("event=message_refused session=%llu id=%s size=%llu",
		    (unsigned long long)s->ss->id, s->env.id, (unsigned long long)b->size);
		smtpd_reset_transaction(s);
		smtpd_refuse(s, &r, b->err != BODY_IO);
		return;
	}
	if (b->discard) {
		log_info("event=discarded session=%llu id=%s from=<%s> size=%llu client=%s",
		    (unsigned long long)s->ss->id, s->env.id, log_safe(s->env.sender),
		    (unsigned long long)b->size, s->ss->addr);
		smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", s->env.id);
		s->nmsgs++;
		smtpd_reset_transaction(s);
		return;
	}
	batch_add(s);
}

size_t
data_bytes(struct session *ss, const char *p, size_t n)
{
	struct smtpd_session *s = ss->owner;
	size_t used;
	int ended;

	used = body_scan_feed(&s->body.scan, p, n, &scan_ops, s, &ended);
	if (ended)
		data_finish(s);
	return used;
}

size_t
bdat_bytes(struct session *ss, const char *p, size_t n)
{
	struct smtpd_session *s = ss->owner;
	int ended;

	if (!s->body.bdat_skip)
		(void)body_scan_feed(&s->body.scan, p, n, &scan_ops, s, &ended);
	return n;
}

void
bdat_end(struct session *ss)
{
	struct smtpd_session *s = ss->owner;
	struct body *b = &s->body;
	struct smtp_reply r;

	if (b->bdat_skip) {
		r = b->bdat_reply;
		b->bdat_skip = 0;
		smtpd_refuse(s, &r, 1);
		return;
	}
	if (!b->bdat_last) {
		if (b->err != BODY_OK) {
			body_err_reply(b->err, &r);
			smtpd_reset_transaction(s);
			smtpd_refuse(s, &r, b->err != BODY_IO);
			return;
		}
		smtpd_reply(s, 250, "2.0.0", "Ok: %llu octets received",
		    (unsigned long long)b->size);
		return;
	}
	body_scan_finish(&b->scan, &scan_ops, s);
	data_finish(s);
}

/*
 * Tell qmgr that messages arrived: best effort, never waiting.  When its
 * socket is absent or refuses this is a no-op, and qmgr's periodic scan
 * of incoming/new finds the mail anyway, so a lost notice only delays it.
 */
void
smtpd_notify_qmgr(struct smtpd *sd, const char *const *ids, size_t n)
{
	const char *error;

	if (qmgr_notify(sd->set.qmgr_socket, ids, n, &error) < 0)
		log_debug("event=qmgr_notify_failed error=\"%s\"", error);
}
