/*
 * Unit tests for lib/core/authclient.c, driven in one event loop against a
 * fake auth service on a Unix socket in a temporary directory: answers,
 * timeouts, a dropped link and reconnecting, an absent service, user
 * lookups beside logins, and the rules that done() is called exactly
 * once, from the loop, and never after auth_client_cancel() or
 * auth_client_free().
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "authclient.h"
#include "authproto.h"
#include "check_util.h"
#include "ev.h"
#include "ipc.h"
#include "net.h"
#include "xalloc.h"

/* How the fake service treats requests. */
enum fake_mode {
	FAKE_ANSWER,	/* OK for password "right", else FAIL */
	FAKE_SILENT,	/* never answer */
	FAKE_DROP,	/* close the link on a request */
	FAKE_TEMP,	/* AUTH_FAIL_TEMPORARY */
	FAKE_CROSSED,	/* answer a lookup with AUTH_OK, a login with AUTH_USER */
};

struct fake {
	struct ev_loop *loop;
	char dir[64], path[128];
	int lfd;
	struct ev_io *accept_io;
	struct ipc_link *links[8];
	size_t nlinks;
	enum fake_mode mode;
	unsigned requests, lookups, accepts;
	char last_service[32], last_client[64];
	uint32_t last_flags;
};

/* One answer seen by a test's done(). */
struct answer {
	unsigned calls;
	enum auth_result result;
	char user[64], mailbox[64], reason[128];
	uint64_t quota;
	int found, enabled;
	int *in_request;	/* set while auth_client_request runs */
	unsigned *outstanding;	/* break the loop when it reaches 0 */
	struct ev_loop *loop;
	/* Cancel this one from inside done() (the rule under test). */
	struct auth_client *cancel_c;
	struct auth_pending *cancel_p;
};

static int fake_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg);
static void fake_on_close(struct ipc_link *l, const char *why, void *arg);

static const struct ipc_type fake_types[] = {
	{ AUTH_REQ, 20, 4096, 0 },
	{ AUTH_LOOKUP, 5, 4096, 0 },
};
static const struct ipc_proto fake_proto = {
	AUTH_PROTO, fake_types, 2, fake_on_msg, fake_on_close,
};

/* Copy a C string into a fixed test field (truncating). */
static void
copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "(null)");
}

/* Remove a link from the fake's table and free it. */
static void
fake_forget(struct fake *f, struct ipc_link *l)
{
	for (size_t i = 0; i < f->nlinks; i++)
		if (f->links[i] == l) {
			f->links[i] = f->links[--f->nlinks];
			break;
		}
	ipc_link_free(&l);
}

/* An AUTH_LOOKUP: "u@..." and "off@..." exist (off disabled), no one else. */
static int
fake_lookup(struct fake *f, struct ipc_link *l, uint32_t id, struct ipc_cursor *c)
{
	const char *user;
	struct ipc_msg m;
	int found, enabled;

	if (ipc_get_str(c, &user) < 0 || ipc_get_end(c) < 0)
		return -1;
	f->lookups++;
	switch (f->mode) {
	case FAKE_SILENT:
		return 0;
	case FAKE_DROP:
		return -1;
	case FAKE_TEMP:
		ipc_msg_init(&m, AUTH_FAIL, id);
		ipc_put_u32(&m, AUTH_FAIL_TEMPORARY);
		ipc_put_str(&m, "map unreadable");
		break;
	case FAKE_CROSSED:
		ipc_msg_init(&m, AUTH_OK, id);
		ipc_put_str(&m, user);
		ipc_put_str(&m, "example.test/u/");
		ipc_put_u64(&m, 0);
		break;
	default:
		found = strncmp(user, "u@", 2) == 0 || strncmp(user, "off@", 4) == 0;
		enabled = strncmp(user, "u@", 2) == 0;
		ipc_msg_init(&m, AUTH_USER, id);
		ipc_put_u32(&m, (uint32_t)found);
		ipc_put_str(&m, user);
		ipc_put_str(&m, found ? "example.test/u/" : "");
		ipc_put_u64(&m, found ? 777 : 0);
		ipc_put_u32(&m, (uint32_t)enabled);
		break;
	}
	ck_assert_int_eq(ipc_link_send(l, &m), 0);
	ipc_msg_free(&m);
	return 0;
}

static int
fake_on_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct fake *f = arg;
	const char *service, *mech, *user, *client;
	const void *pw;
	size_t pwlen;
	uint32_t flags;
	struct ipc_msg m;

	if (type == AUTH_LOOKUP)
		return fake_lookup(f, l, id, c);
	ck_assert_uint_eq(type, AUTH_REQ);
	if (ipc_get_str(c, &service) < 0 || ipc_get_str(c, &mech) < 0 ||
	    ipc_get_str(c, &user) < 0 || ipc_get_data(c, &pw, &pwlen) < 0 ||
	    ipc_get_str(c, &client) < 0 || ipc_get_u32(c, &flags) < 0 ||
	    ipc_get_end(c) < 0)
		return -1;
	f->requests++;
	copy(f->last_service, sizeof(f->last_service), service);
	copy(f->last_client, sizeof(f->last_client), client);
	f->last_flags = flags;
	switch (f->mode) {
	case FAKE_SILENT:
		return 0;
	case FAKE_DROP:
		return -1;
	case FAKE_TEMP:
		ipc_msg_init(&m, AUTH_FAIL, id);
		ipc_put_u32(&m, AUTH_FAIL_TEMPORARY);
		ipc_put_str(&m, "map unreadable");
		break;
	case FAKE_CROSSED:
		ipc_msg_init(&m, AUTH_USER, id);
		ipc_put_u32(&m, 1);
		ipc_put_str(&m, user);
		ipc_put_str(&m, "example.test/u/");
		ipc_put_u64(&m, 0);
		ipc_put_u32(&m, 1);
		break;
	case FAKE_ANSWER:
		if (pwlen == 5 && memcmp(pw, "right", 5) == 0) {
			ipc_msg_init(&m, AUTH_OK, id);
			ipc_put_str(&m, user);
			ipc_put_str(&m, "example.test/u/");
			ipc_put_u64(&m, 12345);
		} else {
			ipc_msg_init(&m, AUTH_FAIL, id);
			ipc_put_u32(&m, AUTH_FAIL_CREDENTIALS);
			ipc_put_str(&m, "bad password");
		}
		break;
	}
	ck_assert_int_eq(ipc_link_send(l, &m), 0);
	ipc_msg_free(&m);
	return 0;
}

static void
fake_on_close(struct ipc_link *l, const char *why, void *arg)
{
	(void)why;
	fake_forget(arg, l);
}

static void
fake_accept(struct ev_io *io, int fd, int events, void *arg)
{
	struct fake *f = arg;
	int cfd;

	(void)io;
	(void)events;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		ck_assert_uint_lt(f->nlinks, 8);
		f->accepts++;
		f->links[f->nlinks++] = ipc_link_new(f->loop, cfd, &fake_proto, f);
	}
}

/* Start the fake service in a fresh directory. */
static void
fake_start(struct fake *f, struct ev_loop *loop)
{
	const char *error;

	memset(f, 0, sizeof(*f));
	f->loop = loop;
	copy(f->dir, sizeof(f->dir), "/tmp/pt-authclient-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/auth", f->dir);
	f->lfd = net_bind_unix(f->path, 0600, (uid_t)-1, (gid_t)-1, 16, &error);
	ck_assert_int_ge(f->lfd, 0);
	f->accept_io = ev_io_add(loop, f->lfd, EV_READ, fake_accept, f);
}

/* Drop every link of the fake service (as if auth restarted). */
static void
fake_drop_links(struct fake *f)
{
	while (f->nlinks > 0)
		fake_forget(f, f->links[0]);
}

static void
fake_stop(struct fake *f)
{
	fake_drop_links(f);
	if (f->accept_io != NULL)
		ev_io_del(&f->accept_io);
	if (f->lfd >= 0)
		close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
}

static void
on_done(enum auth_result result, const char *user, const char *mailbox,
    uint64_t quota, const char *reason, void *arg)
{
	struct answer *a = arg;

	if (a->in_request != NULL)
		ck_assert_msg(!*a->in_request, "done() called inside auth_client_request");
	a->calls++;
	a->result = result;
	copy(a->user, sizeof(a->user), user);
	copy(a->mailbox, sizeof(a->mailbox), mailbox);
	copy(a->reason, sizeof(a->reason), reason);
	a->quota = quota;
	if (a->cancel_p != NULL) {
		auth_client_cancel(a->cancel_c, a->cancel_p);
		a->cancel_p = NULL;
	}
	if (a->outstanding != NULL && --*a->outstanding == 0)
		ev_break(a->loop);
}

/* Send one request, checking done() does not run inside the call. */
static struct auth_pending *
request(struct auth_client *c, const char *user, const char *password,
    uint64_t timeout_ms, struct answer *a)
{
	static int in_request;
	struct auth_request req = {
		"smtp", "PLAIN", user, password, strlen(password), "192.0.2.1", 1,
	};
	struct auth_pending *p;

	a->in_request = &in_request;
	in_request = 1;
	p = auth_client_request(c, &req, timeout_ms, on_done, a);
	in_request = 0;
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(a->calls, 0);
	return p;
}

/* A lookup's done(): recorded like a login's. */
static void
on_lookup(enum auth_result result, int found, const char *user, const char *mailbox,
    uint64_t quota, int enabled, const char *reason, void *arg)
{
	struct answer *a = arg;

	a->found = found;
	a->enabled = enabled;
	on_done(result, user, mailbox, quota, reason, arg);
}

/* Start one lookup, checking done() does not run inside the call. */
static struct auth_pending *
lookup(struct auth_client *c, const char *user, uint64_t timeout_ms, struct answer *a)
{
	static int in_request;
	struct auth_pending *p;

	a->in_request = &in_request;
	in_request = 1;
	p = auth_client_lookup(c, user, timeout_ms, on_lookup, a);
	in_request = 0;
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(a->calls, 0);
	return p;
}

/* Zero n answers and make each count down *outstanding. */
static void
answers_init(struct answer *a, size_t n, unsigned *outstanding, struct ev_loop *loop)
{
	memset(a, 0, n * sizeof(*a));
	for (size_t i = 0; i < n; i++) {
		a[i].outstanding = outstanding;
		a[i].loop = loop;
	}
}

START_TEST(test_ok_and_fail)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a1, a2;
	unsigned outstanding = 2;

	fake_start(&f, loop);
	c = auth_client_new(loop, f.path);
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	a1.outstanding = a2.outstanding = &outstanding;
	a1.loop = a2.loop = loop;
	(void)request(c, "u@example.test", "right", 5000, &a1);
	(void)request(c, "u@example.test", "wrong", 5000, &a2);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a1.calls, 1);
	ck_assert_int_eq(a1.result, AUTH_RESULT_OK);
	ck_assert_str_eq(a1.user, "u@example.test");
	ck_assert_str_eq(a1.mailbox, "example.test/u/");
	ck_assert_uint_eq(a1.quota, 12345);
	ck_assert_uint_eq(a2.calls, 1);
	ck_assert_int_eq(a2.result, AUTH_RESULT_FAIL);
	ck_assert_str_eq(a2.user, "(null)");
	ck_assert_str_eq(a2.reason, "bad password");
	ck_assert_str_eq(f.last_service, "smtp");
	ck_assert_str_eq(f.last_client, "192.0.2.1");
	ck_assert_uint_eq(f.last_flags, AUTH_F_TLS);
	/* One link carried both. */
	ck_assert_uint_eq(f.accepts, 1);
	/* Nothing more arrives later. */
	check_run_loop_for(loop, 100);
	ck_assert_uint_eq(a1.calls, 1);
	ck_assert_uint_eq(a2.calls, 1);
	auth_client_free(&c);
	ck_assert_ptr_null(c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

START_TEST(test_temporary_answer)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a;
	unsigned outstanding = 1;

	fake_start(&f, loop);
	f.mode = FAKE_TEMP;
	c = auth_client_new(loop, f.path);
	memset(&a, 0, sizeof(a));
	a.outstanding = &outstanding;
	a.loop = loop;
	(void)request(c, "u@example.test", "right", 5000, &a);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a.calls, 1);
	ck_assert_int_eq(a.result, AUTH_RESULT_TEMP);
	ck_assert_str_eq(a.reason, "map unreadable");
	auth_client_free(&c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

START_TEST(test_timeout)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a;
	unsigned outstanding = 1;
	uint64_t start;

	fake_start(&f, loop);
	f.mode = FAKE_SILENT;
	c = auth_client_new(loop, f.path);
	memset(&a, 0, sizeof(a));
	a.outstanding = &outstanding;
	a.loop = loop;
	start = ev_now(loop);
	(void)request(c, "u@example.test", "right", 150, &a);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a.calls, 1);
	ck_assert_int_eq(a.result, AUTH_RESULT_TEMP);
	ck_assert_uint_ge(ev_now(loop) - start, 140);
	ck_assert_uint_eq(f.requests, 1);
	/* A late answer to the timed-out request is dropped. */
	f.mode = FAKE_ANSWER;
	check_run_loop_for(loop, 200);
	ck_assert_uint_eq(a.calls, 1);
	auth_client_free(&c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

START_TEST(test_cancel)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a1, a2, a3;
	struct auth_pending *p;
	unsigned outstanding = 1;

	fake_start(&f, loop);
	c = auth_client_new(loop, f.path);
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	memset(&a3, 0, sizeof(a3));
	/* Cancelled at once: never called. */
	p = request(c, "u@example.test", "right", 5000, &a1);
	auth_client_cancel(c, p);
	/* a2 cancels a3 from inside its done(): a3, answered in the same batch
	 * or not yet, must never be called. */
	a2.outstanding = &outstanding;
	a2.loop = loop;
	(void)request(c, "u@example.test", "right", 5000, &a2);
	a2.cancel_c = c;
	a2.cancel_p = request(c, "u@example.test", "wrong", 5000, &a3);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a2.calls, 1);
	check_run_loop_for(loop, 200);
	ck_assert_uint_eq(a1.calls, 0);
	ck_assert_uint_eq(a3.calls, 0);

	/* Cancelled while the immediate failure is still deferred. */
	memset(&a1, 0, sizeof(a1));
	{
		char longuser[AUTH_MAX_USER + 2];

		memset(longuser, 'x', sizeof(longuser) - 1);
		longuser[sizeof(longuser) - 1] = '\0';
		p = request(c, longuser, "right", 5000, &a1);
	}
	auth_client_cancel(c, p);
	check_run_loop_for(loop, 100);
	ck_assert_uint_eq(a1.calls, 0);
	auth_client_free(&c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

/* Requests the service would refuse fail locally, and the link is kept. */
START_TEST(test_local_refusal)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a1, a2;
	unsigned outstanding = 2;
	char longpw[AUTH_MAX_PASSWORD + 2];

	fake_start(&f, loop);
	c = auth_client_new(loop, f.path);
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	a1.outstanding = a2.outstanding = &outstanding;
	a1.loop = a2.loop = loop;
	memset(longpw, 'p', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	(void)request(c, "u@example.test", longpw, 5000, &a1);
	(void)request(c, "", "right", 5000, &a2);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a1.calls, 1);
	ck_assert_int_eq(a1.result, AUTH_RESULT_FAIL);
	ck_assert_uint_eq(a2.calls, 1);
	ck_assert_int_eq(a2.result, AUTH_RESULT_FAIL);
	ck_assert_uint_eq(f.requests, 0);
	auth_client_free(&c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

START_TEST(test_no_service)
{
	struct ev_loop *loop = ev_loop_new();
	struct auth_client *c;
	struct answer a;
	unsigned outstanding = 1;

	c = auth_client_new(loop, "/nonexistent/postern/auth");
	memset(&a, 0, sizeof(a));
	a.outstanding = &outstanding;
	a.loop = loop;
	(void)request(c, "u@example.test", "right", 5000, &a);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a.calls, 1);
	ck_assert_int_eq(a.result, AUTH_RESULT_TEMP);
	auth_client_free(&c);
	ev_loop_free(&loop);
}
END_TEST

/* The link drops with requests in flight: they fail TEMP; the next request
 * reconnects. */
START_TEST(test_drop_and_reconnect)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a1, a2, a3;
	unsigned outstanding = 2;

	fake_start(&f, loop);
	c = auth_client_new(loop, f.path);
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	memset(&a3, 0, sizeof(a3));
	a1.outstanding = a2.outstanding = &outstanding;
	a1.loop = a2.loop = loop;
	f.mode = FAKE_DROP;
	(void)request(c, "u@example.test", "right", 5000, &a1);
	(void)request(c, "u@example.test", "right", 5000, &a2);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a1.calls, 1);
	ck_assert_int_eq(a1.result, AUTH_RESULT_TEMP);
	ck_assert_uint_eq(a2.calls, 1);
	ck_assert_int_eq(a2.result, AUTH_RESULT_TEMP);

	f.mode = FAKE_ANSWER;
	outstanding = 1;
	a3.outstanding = &outstanding;
	a3.loop = loop;
	(void)request(c, "u@example.test", "right", 5000, &a3);
	check_run_loop_for(loop, 5000);
	ck_assert_uint_eq(a3.calls, 1);
	ck_assert_int_eq(a3.result, AUTH_RESULT_OK);
	ck_assert_uint_eq(f.accepts, 2);

	/* The service restarts between requests: the idle link's loss is
	 * noticed, and the next request reconnects. */
	fake_drop_links(&f);
	check_run_loop_for(loop, 100);
	memset(&a3, 0, sizeof(a3));
	outstanding = 1;
	a3.outstanding = &outstanding;
	a3.loop = loop;
	(void)request(c, "u@example.test", "right", 5000, &a3);
	check_run_loop_for(loop, 5000);
	ck_assert_int_eq(a3.result, AUTH_RESULT_OK);
	ck_assert_uint_eq(f.accepts, 3);
	auth_client_free(&c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

/* Freeing the client with requests in flight calls nobody back. */
START_TEST(test_free_outstanding)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a1, a2;

	fake_start(&f, loop);
	f.mode = FAKE_SILENT;
	c = auth_client_new(loop, f.path);
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	(void)request(c, "u@example.test", "right", 100, &a1);
	check_run_loop_for(loop, 50);
	/* a2 fails locally and at once: its done() is deferred. */
	(void)request(c, "", "right", 100, &a2);
	auth_client_free(&c);
	check_run_loop_for(loop, 300);
	ck_assert_uint_eq(a1.calls, 0);
	ck_assert_uint_eq(a2.calls, 0);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

/* Lookups and logins share one link; each gets its own kind of answer. */
START_TEST(test_lookup)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a[5];
	unsigned outstanding = 5;
	char longuser[AUTH_MAX_USER + 2];

	fake_start(&f, loop);
	c = auth_client_new(loop, f.path);
	answers_init(a, 5, &outstanding, loop);
	memset(longuser, 'u', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	(void)lookup(c, "u@example.test", 5000, &a[0]);
	(void)lookup(c, "nobody@example.test", 5000, &a[1]);
	(void)request(c, "u@example.test", "right", 5000, &a[2]);
	(void)lookup(c, "off@example.test", 5000, &a[3]);
	(void)lookup(c, longuser, 5000, &a[4]);
	check_run_loop_for(loop, 5000);
	for (size_t i = 0; i < 5; i++)
		ck_assert_uint_eq(a[i].calls, 1);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_OK);
	ck_assert_int_eq(a[0].found, 1);
	ck_assert_int_eq(a[0].enabled, 1);
	ck_assert_str_eq(a[0].user, "u@example.test");
	ck_assert_str_eq(a[0].mailbox, "example.test/u/");
	ck_assert_uint_eq(a[0].quota, 777);
	ck_assert_int_eq(a[1].result, AUTH_RESULT_OK);
	ck_assert_int_eq(a[1].found, 0);
	ck_assert_uint_eq(a[1].quota, 0);
	ck_assert_int_eq(a[2].result, AUTH_RESULT_OK);
	ck_assert_int_eq(a[3].found, 1);
	ck_assert_int_eq(a[3].enabled, 0);
	/* Too long to be anyone: answered without asking. */
	ck_assert_int_eq(a[4].result, AUTH_RESULT_OK);
	ck_assert_int_eq(a[4].found, 0);
	ck_assert_uint_eq(f.lookups, 3);
	ck_assert_uint_eq(f.requests, 1);
	ck_assert_uint_eq(f.accepts, 1);
	auth_client_free(&c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

/* A lookup fails TEMP on a temporary answer, a timeout, a dropped link
 * and an absent service; cancel works for lookups as for logins. */
START_TEST(test_lookup_failures)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a[3];
	struct auth_pending *p;
	unsigned outstanding;
	enum fake_mode modes[] = { FAKE_TEMP, FAKE_SILENT, FAKE_DROP };

	fake_start(&f, loop);
	c = auth_client_new(loop, f.path);
	for (size_t i = 0; i < 3; i++) {
		f.mode = modes[i];
		outstanding = 1;
		answers_init(a, 1, &outstanding, loop);
		(void)lookup(c, "u@example.test", 150, &a[0]);
		check_run_loop_for(loop, 5000);
		ck_assert_uint_eq(a[0].calls, 1);
		ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
		ck_assert_int_eq(a[0].found, 0);
		ck_assert_str_eq(a[0].user, "(null)");
	}

	/* Cancelled before the answer, and cancelled while the answer is
	 * deferred (a local "not found"): neither is ever called. */
	f.mode = FAKE_ANSWER;
	outstanding = 1;
	answers_init(a, 3, &outstanding, loop);
	p = lookup(c, "u@example.test", 5000, &a[0]);
	auth_client_cancel(c, p);
	p = lookup(c, "", 5000, &a[1]);
	auth_client_cancel(c, p);
	(void)lookup(c, "u@example.test", 5000, &a[2]);
	check_run_loop_for(loop, 5000);
	check_run_loop_for(loop, 100);
	ck_assert_uint_eq(a[0].calls, 0);
	ck_assert_uint_eq(a[1].calls, 0);
	ck_assert_uint_eq(a[2].calls, 1);
	ck_assert_int_eq(a[2].found, 1);
	auth_client_free(&c);
	fake_stop(&f);

	c = auth_client_new(loop, "/nonexistent/postern/auth");
	outstanding = 1;
	answers_init(a, 1, &outstanding, loop);
	(void)lookup(c, "u@example.test", 5000, &a[0]);
	check_run_loop_for(loop, 5000);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
	auth_client_free(&c);
	ev_loop_free(&loop);
}
END_TEST

/* A reply of the wrong kind (AUTH_OK to a lookup, AUTH_USER to a login)
 * is a protocol violation: the link closes, both fail TEMP. */
START_TEST(test_lookup_crossed_reply)
{
	struct ev_loop *loop = ev_loop_new();
	struct fake f;
	struct auth_client *c;
	struct answer a[1];
	unsigned outstanding;

	fake_start(&f, loop);
	f.mode = FAKE_CROSSED;
	c = auth_client_new(loop, f.path);
	outstanding = 1;
	answers_init(a, 1, &outstanding, loop);
	(void)lookup(c, "u@example.test", 5000, &a[0]);
	check_run_loop_for(loop, 5000);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
	outstanding = 1;
	answers_init(a, 1, &outstanding, loop);
	(void)request(c, "u@example.test", "right", 5000, &a[0]);
	check_run_loop_for(loop, 5000);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
	ck_assert_uint_eq(f.accepts, 2);
	auth_client_free(&c);
	fake_stop(&f);
	ev_loop_free(&loop);
}
END_TEST

static Suite *
authclient_suite(void)
{
	Suite *s = suite_create("authclient");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_ok_and_fail);
	tcase_add_test(tc, test_temporary_answer);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_local_refusal);
	tcase_add_test(tc, test_no_service);
	tcase_add_test(tc, test_drop_and_reconnect);
	tcase_add_test(tc, test_free_outstanding);
	tcase_add_test(tc, test_lookup);
	tcase_add_test(tc, test_lookup_failures);
	tcase_add_test(tc, test_lookup_crossed_reply);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(authclient_suite());
}
