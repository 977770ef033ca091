/*
 * authclient: the network daemons' side of the auth protocol.  One link
 * per client, opened lazily by a non-blocking connect and reopened by the
 * first request after it drops; requests are matched to replies by id.
 * Every answer reaches its caller through ev_defer(), so done() never runs
 * inside auth_client_request() or inside the link's own callbacks, where
 * freeing the session (and with it, perhaps, the client) would be unsafe.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "authclient.h"
#include "authproto.h"
#include "ipc.h"
#include "log.h"
#include "xalloc.h"

/* How long to wait before retrying a connect the kernel refused with
 * EAGAIN (the service's listen queue is full). */
#define AUTH_CONNECT_RETRY_MS 100
/* Connect failures are logged at most this often. */
#define AUTH_ERROR_LOG_MS 10000

enum pending_kind {
	PENDING_LOGIN,		/* AUTH_REQ, answered AUTH_OK or AUTH_FAIL */
	PENDING_LOOKUP,		/* AUTH_LOOKUP, answered AUTH_USER or AUTH_FAIL */
};

enum pending_state {
	PENDING_UNSENT,		/* waiting for the link */
	PENDING_SENT,		/* waiting for the reply */
	PENDING_DONE,		/* answered; done() is deferred */
};

struct auth_pending {
	struct auth_client *c;
	struct auth_pending **list;	/* the list p is on */
	struct auth_pending *prev, *next;
	enum pending_kind kind;
	enum pending_state state;
	uint32_t id;
	struct ipc_msg msg;	/* the request until sent (holds the password) */
	struct ev_timer *timer;
	auth_done_fn *done;		/* PENDING_LOGIN */
	auth_lookup_fn *lookup_done;	/* PENDING_LOOKUP */
	void *arg;
	/* The answer, kept for the deferred call. */
	enum auth_result result;
	char *user, *mailbox, *reason;
	uint64_t quota;
	int found, enabled;		/* PENDING_LOOKUP */
};

struct auth_client {
	struct ev_loop *loop;
	char *path;
	struct ipc_link *link;		/* NULL when not connected */
	int connecting_fd;		/* -1, or a connect in progress */
	struct ev_io *connect_io;	/* its write watch (EINPROGRESS) */
	struct ev_timer *retry;		/* EAGAIN: try again soon */
	struct auth_pending *head;	/* every unanswered request */
	struct auth_pending *answered;	/* answered, done() deferred */
	uint32_t next_id;
	uint64_t last_error_log;	/* ev_now() of the last logged failure */
};

static int auth_client_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *cur, void *arg);
static void auth_client_on_close(struct ipc_link *l, const char *why, void *arg);
static void auth_client_connect(struct auth_client *c);

static const struct ipc_type auth_client_types[] = {
	{ AUTH_OK, 4 + 1 + 4 + 1 + 8,
	    4 + AUTH_MAX_USER + 1 + 4 + AUTH_MAX_MAILBOX + 1 + 8, 0 },
	{ AUTH_FAIL, 4 + 4 + 1, 4 + 4 + AUTH_MAX_REASON + 1, 0 },
	{ AUTH_USER, 4 + 4 + 1 + 4 + 1 + 8 + 4,
	    4 + 4 + AUTH_MAX_USER + 1 + 4 + AUTH_MAX_MAILBOX + 1 + 8 + 4, 0 },
};

static const struct ipc_proto auth_client_proto = {
	AUTH_PROTO, auth_client_types,
	sizeof(auth_client_types) / sizeof(auth_client_types[0]),
	auth_client_on_msg, auth_client_on_close,
};

/* Wipe and release a request message (it carries the password). */
static void
pending_wipe_msg(struct auth_pending *p)
{
	if (p->msg.payload.data != NULL)
		explicit_bzero(p->msg.payload.data, p->msg.payload.len);
	ipc_msg_free(&p->msg);
}

/* Put p at the head of a list (the unanswered or the answered). */
static void
pending_link(struct auth_pending *p, struct auth_pending **list)
{
	p->list = list;
	p->prev = NULL;
	p->next = *list;
	if (*list != NULL)
		(*list)->prev = p;
	*list = p;
}

/* Take p off the list it is on. */
static void
pending_unlink(struct auth_pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else if (p->list != NULL && *p->list == p)
		*p->list = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	p->list = NULL;
}

/* Free a request that is no longer linked anywhere. */
static void
pending_free(struct auth_pending *p)
{
	if (p->timer != NULL)
		ev_timer_del(&p->timer);
	pending_wipe_msg(p);
	free(p->user);
	free(p->mailbox);
	free(p->reason);
	free(p);
}

/* The deferred half of an answer: call done() and free the request. */
static void
pending_deliver(void *arg)
{
	struct auth_pending *p = arg;

	pending_unlink(p);
	if (p->kind == PENDING_LOOKUP)
		p->lookup_done(p->result, p->found, p->user, p->mailbox, p->quota,
		    p->enabled, p->reason, p->arg);
	else
		p->done(p->result, p->user, p->mailbox, p->quota, p->reason, p->arg);
	pending_free(p);
}

/* Answer p: record the result, take it off the list and defer done(). */
static void
pending_finish(struct auth_pending *p, enum auth_result result, const char *user,
    const char *mailbox, uint64_t quota, const char *reason)
{
	pending_unlink(p);
	if (p->timer != NULL)
		ev_timer_del(&p->timer);
	pending_wipe_msg(p);
	p->state = PENDING_DONE;
	p->result = result;
	p->user = user != NULL ? xstrdup(user) : NULL;
	p->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	p->quota = quota;
	p->reason = xstrdup(reason != NULL ? reason : "");
	pending_link(p, &p->c->answered);
	ev_defer(p->c->loop, pending_deliver, p);
}

/* Fail every unanswered request (in state, or all if state < 0) as TEMP. */
static void
fail_pending(struct auth_client *c, int state, const char *reason)
{
	struct auth_pending *p = c->head, *next;

	for (; p != NULL; p = next) {
		next = p->next;
		if (state < 0 || p->state == (enum pending_state)state)
			pending_finish(p, AUTH_RESULT_TEMP, NULL, NULL, 0, reason);
	}
}

/* Log a connection problem, at most once per AUTH_ERROR_LOG_MS. */
static void
log_link_error(struct auth_client *c, const char *what, const char *detail)
{
	uint64_t now = ev_now(c->loop);

	if (c->last_error_log != 0 && now - c->last_error_log < AUTH_ERROR_LOG_MS)
		return;
	c->last_error_log = now;
	log_warn("event=auth_unavailable socket=%s reason=%s error=\"%s\"",
	    c->path, what, detail);
}

/* Queue p on the link; a refused send answers it at once (TEMP). */
static void
pending_send(struct auth_pending *p)
{
	struct auth_client *c = p->c;

	if (ipc_link_send(c->link, &p->msg) < 0) {
		pending_finish(p, AUTH_RESULT_TEMP, NULL, NULL, 0,
		    "cannot queue the request to the auth service");
		return;
	}
	pending_wipe_msg(p);
	p->state = PENDING_SENT;
}

/* The link is up: send everything that was waiting for it. */
static void
send_unsent(struct auth_client *c)
{
	struct auth_pending *p = c->head, *next;

	for (; p != NULL; p = next) {
		next = p->next;
		if (p->state == PENDING_UNSENT)
			pending_send(p);
	}
}

/* Give up the connect in progress (if any). */
static void
connect_abort(struct auth_client *c)
{
	if (c->connect_io != NULL)
		ev_io_del(&c->connect_io);
	if (c->retry != NULL)
		ev_timer_del(&c->retry);
	if (c->connecting_fd >= 0) {
		close(c->connecting_fd);
		c->connecting_fd = -1;
	}
}

/* The socket is connected: wrap it in a link and flush the queue. */
static void
connect_done(struct auth_client *c)
{
	int fd = c->connecting_fd;

	if (c->connect_io != NULL)
		ev_io_del(&c->connect_io);
	c->connecting_fd = -1;
	c->link = ipc_link_new(c->loop, fd, &auth_client_proto, c);
	send_unsent(c);
}

/* A connect that could not complete: fail what was waiting for it. */
static void
connect_failed(struct auth_client *c, const char *what, int err)
{
	connect_abort(c);
	log_link_error(c, what, strerror(err));
	fail_pending(c, PENDING_UNSENT, "auth service unavailable");
}

/* EINPROGRESS resolved: check how the connect ended. */
static void
connect_ready(struct ev_io *io, int fd, int events, void *arg)
{
	struct auth_client *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)io;
	(void)events;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0)
		connect_failed(c, "connect_failed", err);
	else
		connect_done(c);
}

/* The retry timer: the listen queue may have room now. */
static void
connect_retry(struct ev_timer *t, void *arg)
{
	struct auth_client *c = arg;

	(void)t;
	ev_timer_del(&c->retry);
	if (c->head != NULL)
		auth_client_connect(c);
}

/* Start connecting (non-blocking) unless connected or already trying. */
static void
auth_client_connect(struct auth_client *c)
{
	struct sockaddr_un sun;
	int fd;

	if (c->link != NULL || c->connecting_fd >= 0 || c->retry != NULL)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(c->path) >= sizeof(sun.sun_path)) {
		log_link_error(c, "path_too_long", c->path);
		fail_pending(c, PENDING_UNSENT, "auth socket path too long");
		return;
	}
	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_link_error(c, "socket_failed", strerror(errno));
		fail_pending(c, PENDING_UNSENT, "auth service unavailable");
		return;
	}
	c->connecting_fd = fd;
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			c->connect_io = ev_io_add(c->loop, fd, EV_WRITE,
			    connect_ready, c);
			return;
		}
		if (errno == EAGAIN) {
			close(fd);
			c->connecting_fd = -1;
			c->retry = ev_timer_add(c->loop, AUTH_CONNECT_RETRY_MS, 0,
			    connect_retry, c);
			return;
		}
		connect_failed(c, "connect_failed", errno);
		return;
	}
	connect_done(c);
}

/* Find the unanswered, sent request with this id. */
static struct auth_pending *
find_sent(struct auth_client *c, uint32_t id)
{
	for (struct auth_pending *p = c->head; p != NULL; p = p->next)
		if (p->id == id && p->state == PENDING_SENT)
			return p;
	return NULL;
}

/* An AUTH_USER reply: the answer to a lookup. */
static int
on_user(struct auth_client *c, uint32_t id, struct ipc_cursor *cur)
{
	struct auth_pending *p;
	const char *user, *mailbox;
	uint32_t found, enabled;
	uint64_t quota;

	if (ipc_get_u32(cur, &found) < 0 || ipc_get_str(cur, &user) < 0 ||
	    ipc_get_str(cur, &mailbox) < 0 || ipc_get_u64(cur, &quota) < 0 ||
	    ipc_get_u32(cur, &enabled) < 0 || ipc_get_end(cur) < 0)
		return -1;
	if (user == NULL || mailbox == NULL || found > 1 || enabled > 1 ||
	    (found && (user[0] == '\0' || mailbox[0] == '\0'))) {
		cur->error = "malformed_auth_user";
		return -1;
	}
	if ((p = find_sent(c, id)) == NULL)
		return 0;
	if (p->kind != PENDING_LOOKUP) {
		cur->error = "auth_user_to_a_login";
		return -1;
	}
	p->found = (int)found;
	p->enabled = found ? (int)enabled : 0;
	pending_finish(p, AUTH_RESULT_OK, user, mailbox, found ? quota : 0,
	    found ? "user found" : "no such user");
	return 0;
}

/* A reply from the service. */
static int
auth_client_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *cur, void *arg)
{
	struct auth_client *c = arg;
	struct auth_pending *p;
	const char *user, *mailbox, *reason;
	uint64_t quota;
	uint32_t code;

	(void)l;
	if (type == AUTH_USER)
		return on_user(c, id, cur);
	if (type == AUTH_OK) {
		if (ipc_get_str(cur, &user) < 0 || ipc_get_str(cur, &mailbox) < 0 ||
		    ipc_get_u64(cur, &quota) < 0 || ipc_get_end(cur) < 0)
			return -1;
		if (user == NULL || mailbox == NULL || user[0] == '\0') {
			cur->error = "auth_ok_without_user";
			return -1;
		}
		if ((p = find_sent(c, id)) != NULL) {
			if (p->kind != PENDING_LOGIN) {
				cur->error = "auth_ok_to_a_lookup";
				return -1;
			}
			pending_finish(p, AUTH_RESULT_OK, user, mailbox, quota,
			    "authenticated");
		}
		return 0;
	}
	if (ipc_get_u32(cur, &code) < 0 || ipc_get_str(cur, &reason) < 0 ||
	    ipc_get_end(cur) < 0)
		return -1;
	if (code != AUTH_FAIL_CREDENTIALS && code != AUTH_FAIL_TEMPORARY) {
		cur->error = "unknown_failure_code";
		return -1;
	}
	/* A reply to a cancelled or timed-out request finds nothing. */
	if ((p = find_sent(c, id)) != NULL && p->kind == PENDING_LOOKUP &&
	    code != AUTH_FAIL_TEMPORARY) {
		cur->error = "credentials_failure_to_a_lookup";
		return -1;
	}
	if (p != NULL)
		pending_finish(p, code == AUTH_FAIL_TEMPORARY ? AUTH_RESULT_TEMP :
		    AUTH_RESULT_FAIL, NULL, NULL, 0, reason != NULL ? reason : "");
	return 0;
}

/* The link dropped: everything in flight fails; the next request
 * reconnects. */
static void
auth_client_on_close(struct ipc_link *l, const char *why, void *arg)
{
	struct auth_client *c = arg;

	ipc_link_free(&l);
	c->link = NULL;
	if (c->head != NULL)
		log_link_error(c, "connection_lost", why);
	fail_pending(c, -1, "connection to the auth service lost");
}

/* A request's deadline passed. */
static void
pending_timeout(struct ev_timer *t, void *arg)
{
	struct auth_pending *p = arg;

	(void)t;
	log_warn("event=auth_timeout socket=%s id=%u", p->c->path, (unsigned)p->id);
	pending_finish(p, AUTH_RESULT_TEMP, NULL, NULL, 0,
	    "the auth service did not answer in time");
}

struct auth_client *
auth_client_new(struct ev_loop *loop, const char *socket_path)
{
	struct auth_client *c = xcalloc(1, sizeof(*c));

	c->loop = loop;
	c->path = xstrdup(socket_path);
	c->connecting_fd = -1;
	c->next_id = 1;
	return c;
}

void
auth_client_free(struct auth_client **cp)
{
	struct auth_client *c = *cp;
	struct auth_pending *p;

	if (c == NULL)
		return;
	/* Neither the unanswered nor the answered get their done() call. */
	while ((p = c->head) != NULL) {
		pending_unlink(p);
		pending_free(p);
	}
	while ((p = c->answered) != NULL) {
		ev_defer_cancel(c->loop, pending_deliver, p);
		pending_unlink(p);
		pending_free(p);
	}
	connect_abort(c);
	ipc_link_free(&c->link);
	free(c->path);
	free(c);
	*cp = NULL;
}

/* A new unanswered request of kind, with an empty message of type and a
 * fresh id, on the client's list. */
static struct auth_pending *
pending_new(struct auth_client *c, enum pending_kind kind, uint32_t type, void *arg)
{
	struct auth_pending *p = xcalloc(1, sizeof(*p));

	p->c = c;
	p->kind = kind;
	p->arg = arg;
	/* Ids are only matched against unanswered requests, so a late reply
	 * to a forgotten one (after wrap-around too) is dropped. */
	while (c->next_id == 0 || find_sent(c, c->next_id) != NULL)
		c->next_id++;
	p->id = c->next_id++;
	pending_link(p, &c->head);
	p->state = PENDING_UNSENT;
	ipc_msg_init(&p->msg, type, p->id);
	return p;
}

/* The length check of one request field against its limit. */
static int
field_ok(const char *s, size_t max)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

struct auth_pending *
auth_client_request(struct auth_client *c, const struct auth_request *req,
    uint64_t timeout_ms, auth_done_fn *done, void *arg)
{
	struct auth_pending *p = pending_new(c, PENDING_LOGIN, AUTH_REQ, arg);

	p->done = done;

	/* What the service would refuse anyway is refused here, so one bad
	 * request can never break the link the others share. */
	if (!field_ok(req->service, AUTH_MAX_NAME) ||
	    !field_ok(req->mechanism, AUTH_MAX_NAME) ||
	    (req->client != NULL && strlen(req->client) > AUTH_MAX_NAME)) {
		pending_finish(p, AUTH_RESULT_TEMP, NULL, NULL, 0,
		    "malformed auth request");
		return p;
	}
	if (!field_ok(req->user, AUTH_MAX_USER) ||
	    req->password_len > AUTH_MAX_PASSWORD) {
		pending_finish(p, AUTH_RESULT_FAIL, NULL, NULL, 0,
		    "user name or password too long");
		return p;
	}
	/* Room for every field at once: no realloc leaves password copies. */
	if (buf_reserve(&p->msg.payload, 6 * 4 + 3 * AUTH_MAX_NAME + AUTH_MAX_USER +
	    AUTH_MAX_PASSWORD + 8) < 0)
		log_panic("event=auth_request_overflow");
	ipc_put_str(&p->msg, req->service);
	ipc_put_str(&p->msg, req->mechanism);
	ipc_put_str(&p->msg, req->user);
	ipc_put_data(&p->msg, req->password, req->password_len);
	ipc_put_str(&p->msg, req->client != NULL ? req->client : "");
	ipc_put_u32(&p->msg, req->tls ? AUTH_F_TLS : 0);
	p->timer = ev_timer_add(c->loop, timeout_ms, 0, pending_timeout, p);

	if (c->link != NULL)
		pending_send(p);
	else
		auth_client_connect(c);
	return p;
}

struct auth_pending *
auth_client_lookup(struct auth_client *c, const char *user, uint64_t timeout_ms,
    auth_lookup_fn *done, void *arg)
{
	struct auth_pending *p = pending_new(c, PENDING_LOOKUP, AUTH_LOOKUP, arg);

	p->lookup_done = done;

	/* A name the service would refuse cannot be a user: say so here. */
	if (user == NULL || user[0] == '\0' || strlen(user) > AUTH_MAX_USER) {
		pending_finish(p, AUTH_RESULT_OK, "", "", 0,
		    "not a possible user name");
		return p;
	}
	ipc_put_str(&p->msg, user);
	p->timer = ev_timer_add(c->loop, timeout_ms, 0, pending_timeout, p);
	if (c->link != NULL)
		pending_send(p);
	else
		auth_client_connect(c);
	return p;
}

void
auth_client_cancel(struct auth_client *c, struct auth_pending *p)
{
	if (p->state == PENDING_DONE)
		ev_defer_cancel(c->loop, pending_deliver, p);
	pending_unlink(p);
	pending_free(p);
}
