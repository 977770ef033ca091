/*
 * bounce: qmgr's delivery status notifications.  A message's permanently
 * failed recipients and its delivered ones whose NOTIFY asked for
 * SUCCESS (or, for a delay warning, its deferred ones) are reported in
 * one RFC 3464 report per destination (lib/mail/dsn.h decides: the sender
 * from <>, or the postmaster -- postmaster_address -- from the
 * double-bounce address, or nobody), written as a new queue file into
 * spool/incoming and picked up like any message.  Only once the report
 * is committed are the recipients recorded as bounced (reported); a crash
 * in between can at worst send a report twice, never lose one.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "log.h"
#include "qmgr.h"
#include "smtp.h"
#include "xalloc.h"

/* qfile_write() as a dsn_write_fn. */
static int
sink(void *ctx, const void *p, size_t n)
{
	return qfile_write(ctx, p, n);
}

/* Queue one report to `to` from `from` on rcpts[0..n).  0 or -1. */
static int
queue_report(struct qmgr *q, const struct envelope *orig, int fd, off_t body,
    uint64_t size, const struct dsn_rcpt *rcpts, size_t n, const char *from,
    const char *to)
{
	struct envelope ne;
	struct qfile_writer *w;
	struct dsn_request req;
	struct dsn_result res;
	const char *error = NULL;
	int result;

	memset(&ne, 0, sizeof(ne));
	ne.sender = xstrdup(from);
	ne.body_8bit = 1;
	ne.smtputf8 = orig->smtputf8;
	ne.ret = SMTP_RET_NONE;
	ne.client = xstrdup("local");
	ne.proto = xstrdup("LOCAL");
	envelope_add_rcpt(&ne, to, SMTP_NOTIFY_NEVER, NULL);
	if (qfile_begin(q->incoming_dir, &ne, &w, &error) < 0) {
		log_error("event=dsn_failed id=%s error=\"%s\"", orig->id, error);
		envelope_free(&ne);
		return -1;
	}
	req = (struct dsn_request){ .env = orig, .rcpts = rcpts, .nrcpts = n,
	    .reporting_mta = q->set.hostname, .to = to, .msg_fd = fd,
	    .msg_offset = body, .msg_len = size > (uint64_t)body ? size - (uint64_t)body : 0 };
	if (dsn_write(&req, sink, w, &res, &error) < 0) {
		log_error("event=dsn_failed id=%s error=\"%s\"", orig->id, error);
		qfile_abort(&w);
		envelope_free(&ne);
		return -1;
	}
	qfile_commit(&w, 1, &result, &error);
	if (result < 0) {
		log_error("event=dsn_failed id=%s error=\"%s\"", orig->id, error);
		envelope_free(&ne);
		return -1;
	}
	log_info("event=dsn_queued id=%s dsn_id=%s to=<%s> nrcpt=%zu", orig->id, ne.id,
	    log_safe(to), n);
	envelope_free(&ne);
	qmgr_scan_soon(q);
	return 0;
}

/* Send the failure report (or the delay warning) for m. */
int
bounce_send(struct qmgr *q, struct qmsg *m, int warn)
{
	struct envelope e;
	struct dsn_rcpt *dr[2];
	struct qrcpt *added;
	struct qs_record *recs;
	size_t nd[2] = { 0, 0 }, nrec = 0;
	const char *error;
	off_t body;
	int fd, ret = 0;

	fd = qmgr_open_msg(q, m, &e, &body, &error);
	if (fd < 0) {
		log_error("event=dsn_open_failed id=%s error=\"%s\"", m->id, error);
		return -1;
	}
	dr[0] = xcalloc(m->nrcpt, sizeof(*dr[0]));
	dr[1] = xcalloc(m->nrcpt, sizeof(*dr[1]));
	added = xcalloc(m->nrcpt - m->nenv + 1, sizeof(*added));
	recs = xcalloc(m->nrcpt + 1, sizeof(*recs));
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *qr;
		enum dsn_route route;
		enum dsn_action action;
		uint8_t st = m->rcpts[i].state;
		const char *err = m->rcpts[i].error != NULL ? m->rcpts[i].error : "";
		size_t sp = strcspn(err, " ");
		struct dsn_rcpt *d;

		if (warn ? st != QR_DEFERRED : st != QR_FAILED && st != QR_SUCCESS)
			continue;
		action = warn ? DSN_ACTION_DELAYED : st == QR_FAILED ? DSN_ACTION_FAILED :
		    (m->rcpts[i].flags & QRF_EXPANDED) ? DSN_ACTION_EXPANDED :
		    DSN_ACTION_DELIVERED;
		if (i < m->nenv)
			qr = &e.rcpts[i];
		else {
			added[i - m->nenv].addr = m->added[i - m->nenv];
			qr = &added[i - m->nenv];
		}
		route = dsn_route(e.sender, q->double_bounce, qr->notify, action,
		    q->set.delay_warning > 0);
		if (!warn)
			recs[nrec++] = (struct qs_record){ .kind = QS_BOUNCED, .index = i, .text = "" };
		if (route == DSN_NONE)
			continue;
		d = &dr[route == DSN_TO_POSTMASTER][nd[route == DSN_TO_POSTMASTER]++];
		d->rcpt = qr;
		d->action = action;
		d->status = err[sp] == ' ' ? xstrndup(err, sp) : NULL;
		d->diagnostic = err[sp] == ' ' ? err + sp + 1 : err;
		d->last_attempt = time(NULL);
		if (warn)
			d->retry_until = (time_t)(m->arrival + q->set.lifetime);
	}
	if (nd[0] > 0 && queue_report(q, &e, fd, body, m->size, dr[0], nd[0], "",
	    e.sender) < 0)
		ret = -1;
	if (ret == 0 && nd[1] > 0 && queue_report(q, &e, fd, body, m->size, dr[1], nd[1],
	    q->double_bounce, q->postmaster) < 0)
		ret = -1;
	if (ret == 0) {
		if (warn) {
			recs[nrec++] = (struct qs_record){ .kind = QS_WARNED, .text = "" };
			m->warned = 1;
		}
		if (qmgr_record(q, m, recs, nrec, &error) < 0) {
			log_error("event=state_write_failed id=%s error=\"%s\"", m->id, error);
			ret = -1;
		} else
			for (size_t k = 0; k < nrec; k++)
				if (recs[k].kind == QS_BOUNCED)
					m->rcpts[recs[k].index].state = QR_DONE;
	}
	for (int j = 0; j < 2; j++) {
		for (size_t k = 0; k < nd[j]; k++)
			free((char *)dr[j][k].status);
		free(dr[j]);
	}
	free(added);
	free(recs);
	close(fd);
	envelope_free(&e);
	return ret;
}
