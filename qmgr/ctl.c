/*
 * ctl: qmgr's two sockets (lib/core/qmgrproto.h).  run_dir/qmgr takes
 * QMGR_NOTIFY notices from smtpd and sendmail(1) and triggers a pickup
 * scan; run_dir/qmgr.ctl serves the administrator (root or qmgr's own
 * uid, by SO_PEERCRED): listing, flush, delete, hold, release, requeue.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "qmgr.h"
#include "qmgrproto.h"
#include "xalloc.h"

#define LISTING_BUDGET (IPC_MAX_PAYLOAD - 64 * 1024)	/* bytes per reply */

/* One notice or control connection. */
struct ctl_link {
	struct qmgr *q;
	struct ipc_link *link;
};

static int notify_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg);
static int ctl_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg);
static void link_on_close(struct ipc_link *l, const char *why, void *arg);

#define ID_ARG_MAX (4 + 64 + 1)
static const struct ipc_type notify_types[] = {
	{ QMGR_NOTIFY, 5, 4 + QFILE_ID_MAX + 1, 0 },
};
static const struct ipc_type ctl_types[] = {
	{ QMGR_LIST, 8, 8, 0 },
	{ QMGR_FLUSH, 0, 0, 0 },
	{ QMGR_DELETE, 5, ID_ARG_MAX, 0 },
	{ QMGR_HOLD, 5, ID_ARG_MAX, 0 },
	{ QMGR_RELEASE, 5, ID_ARG_MAX, 0 },
	{ QMGR_REQUEUE, 5, ID_ARG_MAX, 0 },
};
static const struct ipc_proto notify_proto = { QMGR_NOTIFY_PROTO, notify_types, 1,
    notify_on_msg, link_on_close };
static const struct ipc_proto ctl_proto = { QMGR_CTL_PROTO, ctl_types,
    sizeof(ctl_types) / sizeof(ctl_types[0]), ctl_on_msg, link_on_close };

/* A link closed: free it. */
static void
link_on_close(struct ipc_link *l, const char *why, void *arg)
{
	struct ctl_link *cl = arg;

	(void)l;
	log_debug("event=link_closed reason=%s", log_safe(why));
	ipc_link_free(&cl->link);
	cl->q->links--;
	free(cl);
}

/* QMGR_NOTIFY: a message arrived; scan (the id itself is not trusted). */
static int
notify_on_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct ctl_link *cl = arg;
	const char *qid;

	(void)l;
	(void)type;
	(void)id;
	if (ipc_get_str(c, &qid) < 0 || ipc_get_end(c) < 0) {
		log_warn("event=bad_notice");
		return -1;
	}
	qmgr_scan_soon(cl->q);
	return 0;
}

/* Send QMGR_DONE. */
static int
reply_done(struct ctl_link *cl, uint32_t id, uint32_t n, const char *text)
{
	struct ipc_msg m;
	int r;

	ipc_msg_init(&m, QMGR_DONE, id);
	ipc_put_u32(&m, n);
	ipc_put_str(&m, text);
	r = ipc_link_send(cl->link, &m);
	ipc_msg_free(&m);
	return r;
}

/* Append one message's listing entry. */
static void
list_one(struct qmgr *q, struct qmsg *m, struct ipc_msg *out)
{
	struct envelope e;
	const char *error;
	off_t body;
	uint32_t state = QMGR_STATE_DEFERRED, n = 0;
	int fd = qmgr_open_msg(q, m, &e, &body, &error);

	if (fd >= 0)
		close(fd);
	else
		memset(&e, 0, sizeof(e));
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		if (m->rcpts[i].state == QR_PENDING || m->rcpts[i].state == QR_INFLIGHT)
			state = QMGR_STATE_ACTIVE;
		if (m->rcpts[i].state != QR_DONE && m->rcpts[i].state != QR_SUCCESS)
			n++;
	}
	if (m->hold)
		state = QMGR_STATE_HOLD;
	ipc_put_str(out, m->id);
	ipc_put_u64(out, m->size);
	ipc_put_u64(out, m->arrival);
	ipc_put_str(out, fd >= 0 ? e.sender : "");
	ipc_put_u32(out, state);
	ipc_put_u32(out, n);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		const struct qrstate *rs = &m->rcpts[i];

		if (rs->state == QR_DONE || rs->state == QR_SUCCESS)
			continue;	/* delivered (a success report may be due) */
		ipc_put_str(out, fd >= 0 || i >= m->nenv ? qmgr_rcpt_addr(m, &e, i) : "?");
		ipc_put_u32(out, rs->state == QR_DEFERRED ? QMGR_RCPT_DEFERRED : QMGR_RCPT_PENDING);
		ipc_put_str(out, rs->error != NULL ? rs->error : "");
		ipc_put_u64(out, rs->state == QR_DEFERRED ? rs->next_try : 0);
	}
	envelope_free(&e);
}

/* QMGR_LIST: a page of the queue. */
static int
do_list(struct ctl_link *cl, uint32_t id, uint32_t start, uint32_t max)
{
	struct qmgr *q = cl->q;
	struct ipc_msg out, entries;
	struct qmsg *m = q->head;
	uint32_t n = 0;
	int r;

	if (max > QMGR_LIST_MAX)
		max = QMGR_LIST_MAX;
	for (uint32_t i = 0; m != NULL && i < start; i++)
		m = m->next;
	ipc_msg_init(&entries, QMGR_LISTING, id);
	for (; m != NULL && n < max && entries.payload.len < LISTING_BUDGET; m = m->next, n++)
		list_one(q, m, &entries);
	ipc_msg_init(&out, QMGR_LISTING, id);
	ipc_put_u32(&out, q->nmsgs > UINT32_MAX ? UINT32_MAX : (uint32_t)q->nmsgs);
	ipc_put_u32(&out, n);
	if (buf_append(&out.payload, entries.payload.data, entries.payload.len) < 0)
		log_panic("event=listing_overflow");
	r = ipc_link_send(cl->link, &out);
	ipc_msg_free(&entries);
	ipc_msg_free(&out);
	return r;
}

/* Apply one control operation to m.  1 if it changed anything. */
static int
apply(struct qmgr *q, struct qmsg *m, uint32_t type)
{
	struct qs_record r = { .text = "" };
	const char *error;

	switch (type) {
	case QMGR_DELETE:
		log_info("event=deleted id=%s by=admin", m->id);
		qmgr_msg_delete(q, m);
		return 1;
	case QMGR_HOLD:
	case QMGR_RELEASE:
		r.kind = type == QMGR_HOLD ? QS_HOLD : QS_RELEASE;
		if (m->hold == (type == QMGR_HOLD))
			return 0;
		if (qmgr_record(q, m, &r, 1, &error) < 0)
			log_error("event=state_write_failed id=%s error=\"%s\"", m->id, error);
		m->hold = type == QMGR_HOLD;
		if (m->hold)
			qmgr_ready_del(q, m);
		else
			sched_tick(q);
		return 1;
	default:	/* FLUSH, REQUEUE */
		for (uint32_t i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].state == QR_DEFERRED) {
				m->rcpts[i].state = QR_PENDING;
				if (type == QMGR_REQUEUE)
					m->rcpts[i].attempts = 0;
			}
		if (!m->hold)
			qmgr_ready_add(q, m);
		return 1;
	}
}

/* A control request. */
static int
ctl_on_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct ctl_link *cl = arg;
	struct qmgr *q = cl->q;
	const char *qid = "ALL";
	uint32_t start, max, n = 0;
	struct qmsg *m, *next;

	(void)l;
	if (type == QMGR_LIST) {
		if (ipc_get_u32(c, &start) < 0 || ipc_get_u32(c, &max) < 0 ||
		    ipc_get_end(c) < 0)
			return -1;
		return do_list(cl, id, start, max);
	}
	if (type != QMGR_FLUSH && (ipc_get_str(c, &qid) < 0 || qid == NULL))
		return -1;
	if (ipc_get_end(c) < 0)
		return -1;
	if (type == QMGR_FLUSH)
		qmgr_scan_soon(q);
	if (strcmp(qid, "ALL") == 0) {
		for (m = q->head; m != NULL; m = next) {
			next = m->next;
			n += (uint32_t)apply(q, m, type);
		}
	} else if ((m = qmgr_find(q, qid)) != NULL)
		n = (uint32_t)apply(q, m, type);
	else
		return reply_done(cl, id, 0, "no such message");
	log_info("event=control type=%u target=%s affected=%u", type, log_safe(qid), n);
	return reply_done(cl, id, n, "ok");
}

/* A connection on the notice (ctl 0) or control (ctl 1) socket. */
void
ctl_accept(struct qmgr *q, int fd, int ctl)
{
	struct ctl_link *cl;

	if (ctl) {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    (cred.uid != 0 && cred.uid != q->self_uid)) {
			log_warn("event=control_refused uid=%ld", (long)cred.uid);
			close(fd);
			return;
		}
	}
	/* A connection to the notice socket is itself the notice: smtpd
	 * writes its frames and closes at once, often before our hello goes
	 * out, and a link whose hello write fails is closed unread -- the
	 * notice lost, the mail left for the periodic scan seconds later.
	 * The frames carry nothing we trust anyway. */
	if (!ctl)
		qmgr_scan_soon(q);
	cl = xcalloc(1, sizeof(*cl));
	cl->q = q;
	cl->link = ipc_link_new(q->loop, fd, ctl ? &ctl_proto : &notify_proto, cl);
	q->links++;
}
