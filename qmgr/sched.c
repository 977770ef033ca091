/*
 * sched: qmgr's scheduler.  A destination is an agent and a recipient
 * domain (struct dest).  Messages with due recipients sit in a ring; each
 * turn takes the next message and sends at most one request per agent,
 * for the due recipients of ONE destination that has room (up to
 * AGENT_MAX_RCPTS of them), then puts the message back at the tail if it
 * could send more.  Each agent has a concurrency limit (requests in
 * flight on its link) and each destination one more
 * (qmgr_domain_concurrency).  A message whose due recipients are all at
 * full destinations (or a full agent) does not block the ring: it is
 * parked on that destination's (or agent's) wait list and woken, oldest
 * first, when a request there finishes -- so a huge mailing to one
 * domain cannot starve mail to others.  Results are recorded durably in
 * the message's state file before they are acted upon; a message whose
 * recipients are all delivered is simply removed (the removal is the
 * record).  The agents are one table, sched_agents[]: a recipient goes
 * to the first row that takes it (local's domains to local, the rest to
 * the relay agent); while the relay agent is not available its
 * recipients stay deferred and are never bounced for that.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agentproto.h"
#include "log.h"
#include "qmgr.h"
#include "xalloc.h"

#define AGENT_RECONNECT_S 1	/* wait after a failed connect */

#define DEST_HASH_MIN 64

/* One request in flight. */
struct request {
	uint32_t id;
	struct qmsg *m;
	struct dest *d;
	uint32_t *idx;
	uint32_t n;
	struct request *next;
};

static int agent_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg);
static void agent_on_close(struct ipc_link *l, const char *why, void *arg);

static const struct ipc_type agent_types[] = {
	{ AGENT_RESULT, 4, IPC_MAX_PAYLOAD, 0 },
};
static const struct ipc_proto agent_proto = { AGENT_PROTO, agent_types, 1,
    agent_on_msg, agent_on_close };

/* Whether addr is local's: no domain, or one in virtual_domains (with no
 * map, no domain is local). */
static int
takes_local(struct qmgr *q, const char *addr, const char **error_r)
{
	const char *at = strrchr(addr, '@');
	struct buf v = BUF_INIT;
	int r;

	if (at == NULL)
		return 1;
	if (q->domains == NULL)
		return 0;
	r = map_lookup(q->domains, at + 1, &v, error_r);
	buf_free(&v);
	return r;
}

/* Any address (the last row: whatever no earlier one took). */
static int
takes_any(struct qmgr *q, const char *addr, const char **error_r)
{
	(void)q;
	(void)addr;
	(void)error_r;
	return 1;
}

const struct agent_def sched_agents[QMGR_AGENTS] = {
	[QMGR_AGENT_LOCAL] = { "local", AGENT_LOCAL_SOCKET, takes_local,
	    "qmgr_local_concurrency", "4.3.0 local delivery agent not available", 0 },
	[QMGR_AGENT_RELAY] = { "relay", AGENT_RELAY_SOCKET, takes_any,
	    "qmgr_destination_concurrency", "4.4.1 relay agent not available", 1 },
};

int
sched_route(struct qmgr *q, const char *addr, struct agent **agent_r,
    const char **error_r)
{
	for (int i = 0; i < QMGR_AGENTS; i++) {
		int r = sched_agents[i].takes(q, addr, error_r);

		if (r < 0)
			return -1;
		if (r == 1) {
			*agent_r = &q->agents[i];
			return 0;
		}
	}
	log_panic("event=no_agent addr=%s", log_safe(addr));
}

/* The hash of (agent, domain). */
static size_t
dest_hash(enum qmgr_agent_id agent, const char *domain, size_t size)
{
	size_t h = 5381 + (size_t)agent;

	for (; *domain != '\0'; domain++)
		h = h * 33 + (unsigned char)*domain;
	return h % size;
}

/* Double the destination hash. */
static void
dest_grow(struct qmgr *q)
{
	size_t nsize = q->dests_size < DEST_HASH_MIN ? DEST_HASH_MIN : q->dests_size * 2;
	struct dest **nh = xcalloc(nsize, sizeof(*nh));

	for (size_t i = 0; i < q->dests_size; i++)
		while (q->dests[i] != NULL) {
			struct dest *d = q->dests[i];
			size_t h = dest_hash(d->agent->id, d->domain, nsize);

			q->dests[i] = d->hnext;
			d->hnext = nh[h];
			nh[h] = d;
		}
	free(q->dests);
	q->dests = nh;
	q->dests_size = nsize;
}

/* The destination of addr, interned, with a reference taken. */
struct dest *
sched_dest_get(struct qmgr *q, struct agent *a, const char *addr)
{
	const char *at = strrchr(addr, '@');
	char dom[256];
	size_t n = 0, h;
	struct dest *d;

	/* Lower case; a longer "domain" is no valid one and is cut. */
	for (const char *p = at != NULL ? at + 1 : ""; *p != '\0' && n < sizeof(dom) - 1; p++)
		dom[n++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
	dom[n] = '\0';
	if (q->ndests >= q->dests_size)
		dest_grow(q);
	h = dest_hash(a->id, dom, q->dests_size);
	for (d = q->dests[h]; d != NULL; d = d->hnext)
		if (d->agent == a && strcmp(d->domain, dom) == 0) {
			d->refs++;
			return d;
		}
	d = xcalloc(1, sizeof(*d) + n + 1);
	memcpy(d->domain, dom, n + 1);
	d->agent = a;
	d->refs = 1;
	d->hnext = q->dests[h];
	q->dests[h] = d;
	q->ndests++;
	return d;
}

/* Drop a reference; the last one frees d. */
void
sched_dest_put(struct qmgr *q, struct dest *d)
{
	struct dest **pp;

	if (d == NULL || --d->refs > 0)
		return;
	pp = &q->dests[dest_hash(d->agent->id, d->domain, q->dests_size)];
	while (*pp != d)
		pp = &(*pp)->hnext;
	*pp = d->hnext;
	q->ndests--;
	free(d);
}

/* Whether a request to d may start now. */
static int
dest_room(const struct qmgr *q, const struct dest *d)
{
	return d->agent->inflight < d->agent->limit && d->inflight < q->set.domain_limit;
}

/* Whether m has a due recipient (whose destination has room, if
 * need_room). */
static int
due_with_room(const struct qmgr *q, const struct qmsg *m, int need_room)
{
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == QR_PENDING &&
		    (!need_room || dest_room(q, m->rcpts[i].dest)))
			return 1;
	return 0;
}

/* Wake the messages waiting for the room a finished request left. */
static void
dest_wake(struct qmgr *q, struct dest *d)
{
	struct agent *a = d->agent;

	if (a->inflight < a->limit)
		qmgr_wake(q, &a->wait, a->limit - a->inflight);
	if (d->inflight < q->set.domain_limit)
		qmgr_wake(q, &d->wait, q->set.domain_limit - d->inflight);
}

/* A temporary failure of recipient i: defer it, or fail it past the
 * lifetime. */
void
sched_defer(struct qmgr *q, struct qmsg *m, uint32_t i, const char *error,
    int never_expire, struct qs_record *r, struct buf *text)
{
	struct qrstate *rs = &m->rcpts[i];
	time_t now = time(NULL);

	buf_reset(text);
	if (!never_expire && (uint64_t)now >= m->arrival + q->set.lifetime) {
		rs->state = QR_FAILED;
		if (buf_printf(text, "5.4.7 delivery time expired; last error: %s", error) < 0)
			log_panic("event=text_overflow");
		*r = (struct qs_record){ .kind = QS_FAIL, .index = i, .text = buf_cstr(text) };
	} else {
		if (rs->attempts < UINT16_MAX)
			rs->attempts++;
		rs->state = QR_DEFERRED;
		rs->next_try = (uint32_t)((uint64_t)now +
		    qmgr_backoff(q->set.retry_min, q->set.retry_max, rs->attempts));
		if (buf_puts(text, error) < 0)
			log_panic("event=text_overflow");
		*r = (struct qs_record){ .kind = QS_DEFER, .index = i,
		    .next_try = rs->next_try, .text = buf_cstr(text) };
	}
	free(rs->error);
	rs->error = xstrdup(buf_cstr(text));
}

/* Record rs for m (logging a failure: the in-memory state goes on). */
static void
record(struct qmgr *q, struct qmsg *m, const struct qs_record *rs, size_t n)
{
	const char *error;

	if (n > 0 && qmgr_record(q, m, rs, n, &error) < 0)
		log_error("event=state_write_failed id=%s error=\"%s\"", m->id, error);
}

/* Connect an agent's link, unless it is down.  0 or -1. */
static int
agent_connect(struct agent *a)
{
	struct sockaddr_un sun;
	int fd;

	if (a->link != NULL)
		return 0;
	if (time(NULL) < a->down_until)
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(a->path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, a->path, strlen(a->path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (fd >= 0)
			close(fd);
		a->down_until = time(NULL) + AGENT_RECONNECT_S;
		log_debug("event=agent_unavailable agent=%s", a->def->name);
		return -1;
	}
	a->link = ipc_link_new(a->q->loop, fd, &agent_proto, a);
	return 0;
}

/* Free a request. */
static void
request_free(struct request *r)
{
	free(r->idx);
	free(r);
}

/* Apply the results of request r (status per recipient; NULL: all TEMP
 * with reason why). */
static void
request_finish(struct agent *a, struct request *r, const uint32_t *status,
    const char *const *texts, const uint8_t *expanded, const char *why)
{
	struct qmsg *m = r->m;
	struct qs_record *recs = xcalloc(r->n, sizeof(*recs));
	struct buf *bufs = xcalloc(r->n, sizeof(*bufs));
	size_t nrec = 0;
	int all_done;

	for (uint32_t k = 0; k < r->n; k++) {
		uint32_t i = r->idx[k];
		uint32_t st = status != NULL ? status[k] : AGENT_TEMP;
		const char *text = status != NULL ? texts[k] : why;
		struct qrstate *rs = &m->rcpts[i];

		if (rs->state != QR_INFLIGHT)
			continue;
		if (m->deleted) {
			rs->state = QR_DONE;
			continue;
		}
		if (st == AGENT_OK && (rs->flags & QRF_NOTIFY_SUCCESS)) {
			/* Delivered, and the sender asked to be told. */
			rs->state = QR_SUCCESS;
			if (expanded != NULL && expanded[k])
				rs->flags |= QRF_EXPANDED;
			free(rs->error);
			rs->error = xstrdup(text);
			recs[nrec++] = (struct qs_record){ .kind = (rs->flags & QRF_EXPANDED) ?
			    QS_EXPANDED : QS_DELIVERED, .index = i, .text = rs->error };
		} else if (st == AGENT_OK) {
			rs->state = QR_DONE;
			recs[nrec++] = (struct qs_record){ .kind = QS_DONE, .index = i, .text = "" };
		} else if (st == AGENT_PERM) {
			rs->state = QR_FAILED;
			free(rs->error);
			rs->error = xstrdup(text);
			recs[nrec++] = (struct qs_record){ .kind = QS_FAIL, .index = i,
			    .text = rs->error };
		} else
			sched_defer(a->q, m, i, text, 0, &recs[nrec++], &bufs[k]);
	}
	m->busy--;
	all_done = m->busy == 0;
	for (uint32_t i = 0; all_done && i < m->nrcpt; i++)
		if (m->rcpts[i].state != QR_DONE)
			all_done = 0;
	/* All delivered: removing the file is the record. */
	if (!all_done && !m->deleted)
		record(a->q, m, recs, nrec);
	for (uint32_t k = 0; k < r->n; k++)
		buf_free(&bufs[k]);
	free(bufs);
	free(recs);
	/* Due recipients (alias expansion adds some) get a turn -- a
	 * parked message too when one of them can go now: its wait list
	 * may be a full destination that is none of theirs. */
	if (!m->hold && !m->deleted && m->where != QM_READY && due_with_room(a->q, m,
	    m->where == QM_PARKED))
		qmgr_ready_add(a->q, m);
	request_free(r);
	qmgr_msg_check_done(a->q, m);
	sched_kick(a->q);
}

/* Unlink request id from a's list, or NULL. */
static struct request *
request_take(struct agent *a, uint32_t id)
{
	for (struct request **pp = &a->reqs; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct request *r = *pp;

			*pp = r->next;
			a->inflight--;
			r->d->inflight--;
			dest_wake(a->q, r->d);
			return r;
		}
	return NULL;
}

/* The link broke: every request in flight is a temporary failure. */
static void
agent_on_close(struct ipc_link *l, const char *why, void *arg)
{
	struct agent *a = arg;
	struct request *r;

	(void)l;
	/* With nothing in flight an agent going away (a stop, a reload, its
	 * retirement) loses nothing: worth a warning only otherwise. */
	log_msg(a->inflight > 0 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
	    "event=agent_link_closed agent=%s reason=%s inflight=%u", a->def->name,
	    log_safe(why), a->inflight);
	ipc_link_free(&a->link);
	while ((r = a->reqs) != NULL) {
		a->reqs = r->next;
		a->inflight--;
		r->d->inflight--;
		dest_wake(a->q, r->d);
		request_finish(a, r, NULL, NULL, NULL, "4.4.2 delivery agent connection lost");
	}
}

/* Add forwarded addresses of recipient orig to m, durably. */
static void
add_forwards(struct qmgr *q, struct qmsg *m, uint32_t orig, const char *const *fw,
    uint32_t n)
{
	struct qs_record *recs = xcalloc(n, sizeof(*recs));
	size_t nrec = 0;

	for (uint32_t j = 0; j < n; j++) {
		if (fw[j][0] == '\0' || strpbrk(fw[j], " \t\r\n") != NULL) {
			log_warn("event=bad_forward id=%s addr=%s", m->id, log_safe(fw[j]));
			continue;
		}
		recs[nrec++] = (struct qs_record){ .kind = QS_RCPT, .orig = orig, .text = fw[j] };
	}
	/* Durable first, then in memory (recovery replays the same lines). */
	record(q, m, recs, nrec);
	for (size_t j = 0; j < nrec; j++)
		qmgr_msg_add_rcpt(q, m, recs[j].text);
	free(recs);
}

/* AGENT_RESULT: read it whole, check it, then apply it. */
static int
agent_on_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct agent *a = arg;
	struct request *r;
	uint32_t n, *status = NULL;
	const char **texts = NULL;
	uint8_t *expanded = NULL;
	int ret = -1;

	(void)l;
	(void)type;
	for (r = a->reqs; r != NULL && r->id != id; r = r->next)
		;
	if (r == NULL || ipc_get_u32(c, &n) < 0 || n != r->n) {
		log_error("event=agent_bad_result agent=%s id=%u", a->def->name, id);
		return -1;
	}
	status = xcalloc(n, sizeof(*status));
	texts = xcalloc(n, sizeof(*texts));
	expanded = xcalloc(n, sizeof(*expanded));
	for (uint32_t k = 0; k < n; k++)
		status[k] = UINT32_MAX;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t idx, st, nfw, pos;
		const char *esc, *text, **fw;

		if (ipc_get_u32(c, &idx) < 0 || ipc_get_u32(c, &st) < 0 ||
		    ipc_get_str(c, &esc) < 0 || ipc_get_str(c, &text) < 0 ||
		    ipc_get_u32(c, &nfw) < 0 || st > AGENT_PERM || esc == NULL ||
		    text == NULL || nfw > AGENT_MAX_FORWARDS)
			goto out;
		for (pos = 0; pos < r->n && r->idx[pos] != idx; pos++)
			;
		if (pos == r->n || status[pos] != UINT32_MAX)
			goto out;
		status[pos] = st;
		texts[pos] = xasprintf("%s %s", esc, text);
		fw = xcalloc(nfw + 1, sizeof(*fw));
		for (uint32_t j = 0; j < nfw; j++)
			if (ipc_get_str(c, &fw[j]) < 0 || fw[j] == NULL) {
				free(fw);
				goto out;
			}
		if (nfw > 0 && st == AGENT_OK) {
			add_forwards(a->q, r->m, idx, fw, nfw);
			expanded[pos] = 1;
		}
		free(fw);
	}
	if (ipc_get_end(c) < 0)
		goto out;
	r = request_take(a, id);
	request_finish(a, r, status, texts, expanded, NULL);
	ret = 0;
out:
	if (ret < 0)
		log_error("event=agent_bad_result agent=%s id=%u", a->def->name, id);
	for (uint32_t k = 0; k < n; k++)
		free((char *)texts[k]);
	free(texts);
	free(status);
	free(expanded);
	return ret;
}

/* Send one request for m's due recipients at destination d (up to
 * AGENT_MAX_RCPTS of them); d's agent is connected. */
static void
send_request(struct qmgr *q, struct dest *d, struct qmsg *m, int fd,
    const struct envelope *e, off_t body)
{
	struct agent *a = d->agent;
	struct request *r;
	struct ipc_msg msg;
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->nrcpt && n < AGENT_MAX_RCPTS; i++)
		if (m->rcpts[i].state == QR_PENDING && m->rcpts[i].dest == d)
			n++;
	if (n == 0)
		return;
	r = xcalloc(1, sizeof(*r));
	r->id = ++a->next_id;
	r->m = m;
	r->d = d;
	r->idx = xcalloc(n, sizeof(*r->idx));
	ipc_msg_init(&msg, AGENT_DELIVER, r->id);
	ipc_put_str(&msg, m->id);
	ipc_put_u64(&msg, (uint64_t)body);
	ipc_put_str(&msg, e->sender);
	ipc_put_u32(&msg, n);
	for (uint32_t i = 0; i < m->nrcpt && r->n < n; i++) {
		if (m->rcpts[i].state != QR_PENDING || m->rcpts[i].dest != d)
			continue;
		ipc_put_u32(&msg, i);
		ipc_put_str(&msg, qmgr_rcpt_addr(m, e, i));
		m->rcpts[i].state = QR_INFLIGHT;
		r->idx[r->n++] = i;
	}
	ipc_put_fd(&msg, fd);
	m->busy++;
	r->next = a->reqs;
	a->reqs = r;
	a->inflight++;
	d->inflight++;
	if (ipc_link_send(a->link, &msg) < 0) {
		ipc_msg_free(&msg);
		request_take(a, r->id);
		request_finish(a, r, NULL, NULL, NULL, "4.3.0 cannot send to the delivery agent");
		return;
	}
	ipc_msg_free(&msg);
}

/*
 * Defer m's due recipients of agent a, which is unavailable.  Only a
 * deferral past the lifetime (a failure) is written to the state file:
 * "agent not available" is no delivery result, and after a crash that
 * lost it the recipient is simply due at once, tried, and deferred again
 * -- nothing lost, nothing delivered twice.  So a backlog waiting for an
 * agent costs no fsync per retry.
 */
static void
defer_unavailable(struct qmgr *q, struct agent *a, struct qmsg *m)
{
	struct qs_record *recs = xcalloc(m->nrcpt, sizeof(*recs));
	struct buf *bufs = xcalloc(m->nrcpt, sizeof(*bufs));
	size_t nrec = 0;

	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == QR_PENDING && m->rcpts[i].dest->agent == a) {
			sched_defer(q, m, i, a->def->unavailable,
			    a->def->down_never_expires, &recs[nrec], &bufs[i]);
			if (recs[nrec].kind == QS_FAIL)
				nrec++;
		}
	record(q, m, recs, nrec);
	for (uint32_t i = 0; i < m->nrcpt; i++)
		buf_free(&bufs[i]);
	free(bufs);
	free(recs);
}

/*
 * Where m goes after its turn: back into the ring if a due recipient's
 * destination has room, onto the wait list of what blocks it if all are
 * blocked, else nowhere (nothing due, or results pending bring it back).
 */
static void
place(struct qmgr *q, struct qmsg *m)
{
	struct waitq *blocked = NULL;

	for (uint32_t i = 0; i < m->nrcpt; i++) {
		struct dest *d = m->rcpts[i].dest;

		if (m->rcpts[i].state != QR_PENDING)
			continue;
		if (dest_room(q, d)) {
			qmgr_ready_add(q, m);
			return;
		}
		if (blocked == NULL)
			blocked = d->agent->inflight >= d->agent->limit ? &d->agent->wait : &d->wait;
	}
	if (blocked != NULL)
		qmgr_park(q, m, blocked);
}

/* One turn of m: a request to one destination with room per agent.  0,
 * or -1 if the queue file cannot be opened (m is then left alone: the
 * tick retries it). */
static int
turn(struct qmgr *q, struct qmsg *m)
{
	struct dest *pick[QMGR_AGENTS] = { NULL };
	struct envelope e;
	const char *error;
	off_t body;
	int fd, any = 0;

	for (uint32_t i = 0; i < m->nrcpt; i++) {
		struct dest *d = m->rcpts[i].dest;

		if (m->rcpts[i].state == QR_PENDING && pick[d->agent->id] == NULL &&
		    dest_room(q, d))
			pick[d->agent->id] = d;
	}
	for (int k = 0; k < QMGR_AGENTS; k++)
		if (pick[k] != NULL && agent_connect(pick[k]->agent) < 0) {
			defer_unavailable(q, pick[k]->agent, m);
			pick[k] = NULL;
		} else if (pick[k] != NULL)
			any = 1;
	if (!any)
		return 0;
	fd = qmgr_open_msg(q, m, &e, &body, &error);
	if (fd < 0) {
		/* Stays queued; the next start sorts it out. */
		log_error("event=open_failed id=%s error=\"%s\"", m->id, error);
		return -1;
	}
	for (int k = 0; k < QMGR_AGENTS; k++)
		if (pick[k] != NULL)
			send_request(q, pick[k], m, fd, &e, body);
	close(fd);
	envelope_free(&e);
	return 0;
}

/*
 * One scheduling round: every message in the ring gets a turn.  It ends:
 * a message goes back into the ring only when a destination of its has
 * room, and each turn that finds room uses some (or defers recipients).
 */
static void
sched_run(void *arg)
{
	struct qmgr *q = arg;

	q->dispatch_pending = 0;
	while (q->ready != NULL) {
		struct qmsg *m = q->ready;
		int r;

		qmgr_ready_del(q, m);
		if (m->hold || m->deleted)
			continue;
		/* Held busy during its turn: a send that fails at once finishes
		 * its request there, and must not remove m under us. */
		m->busy++;
		r = turn(q, m);
		m->busy--;
		if (r == 0 && m->where == QM_NOWHERE)
			place(q, m);
		qmgr_msg_check_done(q, m);
	}
}

/* Schedule a round at the end of this batch. */
void
sched_kick(struct qmgr *q)
{
	if (q->dispatch_pending)
		return;
	q->dispatch_pending = 1;
	ev_defer(q->loop, sched_run, q);
}

/* Once a second: due retries, expiry, delay warnings, pending reports;
 * and a safety net that wakes waiters wherever there is room. */
void
sched_tick(struct qmgr *q)
{
	time_t now = time(NULL);
	struct qmsg *m, *next;

	for (m = q->head; m != NULL; m = next) {
		int due = 0, promoted = 0, deferred = 0, report = 0;

		next = m->next;
		if (m->hold)
			continue;
		for (uint32_t i = 0; i < m->nrcpt; i++) {
			struct qrstate *rs = &m->rcpts[i];

			if (rs->state == QR_DEFERRED && (time_t)rs->next_try <= now) {
				rs->state = QR_PENDING;
				due = promoted = 1;
			} else if (rs->state == QR_DEFERRED)
				deferred = 1;
			else if (rs->state == QR_PENDING)
				due = 1;
			else if (rs->state == QR_FAILED || rs->state == QR_SUCCESS)
				report = 1;
		}
		/*
		 * Due: into the ring, unless it is there, or parked and none of
		 * its due recipients can go now (its wait list wakes it).  A
		 * parked message is checked here because it waits on the list
		 * of ONE full destination: a retry that came due, or room at
		 * another of its destinations, must not wait for that one.
		 */
		if (due && !m->deleted && m->where != QM_READY &&
		    (promoted || m->where == QM_NOWHERE || due_with_room(q, m, 1)))
			qmgr_ready_add(q, m);
		if (m->busy > 0)
			continue;
		if (deferred && !m->warned && q->set.delay_warning > 0 &&
		    (uint64_t)now >= m->arrival + q->set.delay_warning)
			(void)bounce_send(q, m, 1);
		/* Nothing due: reports to send (retried here if the last try
		 * failed), or -- after a crash between the last record and
		 * the removal -- nothing left to do at all: check_done
		 * reports, and removes what is finished. */
		if (!due && (report || !deferred) && m->where == QM_NOWHERE)
			qmgr_msg_check_done(q, m);
	}
	for (int k = 0; k < QMGR_AGENTS; k++) {
		struct agent *a = &q->agents[k];

		if (a->inflight < a->limit)
			qmgr_wake(q, &a->wait, a->limit - a->inflight);
	}
	for (size_t h = 0; h < q->dests_size; h++)
		for (struct dest *d = q->dests[h]; d != NULL; d = d->hnext)
			if (d->wait.head != NULL && dest_room(q, d))
				qmgr_wake(q, &d->wait, q->set.domain_limit - d->inflight);
}

/* Set up the agents, one per row of the table. */
void
sched_init(struct qmgr *q)
{
	for (int i = 0; i < QMGR_AGENTS; i++)
		q->agents[i] = (struct agent){ .q = q, .def = &sched_agents[i],
		    .id = (enum qmgr_agent_id)i,
		    .path = xasprintf("%s/%s", q->set.run_dir, sched_agents[i].socket),
		    .limit = q->set.agent_limit[i] };
}

/* Close the agents' links (requests in flight stay recorded as they were). */
void
sched_free(struct qmgr *q)
{
	ev_defer_cancel(q->loop, sched_run, q);
	for (int i = 0; i < QMGR_AGENTS; i++) {
		struct agent *a = &q->agents[i];
		struct request *r;

		ipc_link_free(&a->link);
		while ((r = a->reqs) != NULL) {
			a->reqs = r->next;
			request_free(r);
		}
		free(a->path);
		a->path = NULL;
	}
}
