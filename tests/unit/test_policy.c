/*
 * Unit tests for lib/policy.c: the sender and recipient rules driven
 * from tables, with texthash and inline maps in a temporary directory and
 * a fake auth service (answering AUTH_LOOKUP from a list of users) on a
 * Unix socket in the same event loop.  Also: done() is never called
 * inside a check call, exactly once, never after policy_cancel(); an
 * unreadable map or an unavailable auth service is a temporary failure.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "authclient.h"
#include "authproto.h"
#include "buf.h"
#include "check_util.h"
#include "config.h"
#include "ev.h"
#include "ipc.h"
#include "net.h"
#include "policy.h"

/* Users the fake user database knows. */
static const char *const fake_users[] = {
	"alice@example.test", "bob@example.test",
};

static const char aliases_text[] =
    "info@example.test      alice@example.test\n"
    "team@example.test      alice@example.test, bob@example.test\n"
    "partial@example.test   alice@example.test, ghost@example.test\n"
    "ext@example.test       alice@example.test, someone@remote.test\n"
    "mbx@example.test       carol@example.test\n"
    "tagged@example.test    bob+lists@example.test\n"
    "loop1@example.test     loop2@example.test\n"
    "loop2@example.test     loop1@example.test\n"
    "postmaster@example.test alice@example.test\n"
    "@catchall.test         alice@example.test\n";

static const char mailboxes_text[] =
    "carol@example.test     custom/carol\n";

static const char rcpt_access_text[] =
    "blocked@example.test   REJECT Mailbox closed by policy\n"
    "spamtrap@example.test  DISCARD\n"
    "okghost@example.test   OK\n"
    "friendly.test          OK\n"
    "abuse@                 REJECT\n"
    "weird@example.test     FROBNICATE\n";

static const char sender_access_text[] =
    "spammer@bad.test       REJECT Go away\n"
    "good@bad.test          OK\n"
    "bad.test               REJECT\n"
    "quiet@x.test           discard\n";

/* How the fake auth service behaves. */
enum fake_mode {
	FAKE_ANSWER,
	FAKE_TEMP,	/* AUTH_FAIL_TEMPORARY */
	FAKE_SILENT,	/* never answers */
};

struct env {
	struct ev_loop *loop;
	char dir[64], sock[128];
	int lfd;
	struct ev_io *accept_io;
	struct ipc_link *links[8];
	size_t nlinks;
	enum fake_mode mode;
	unsigned lookups;
	struct config *cfg;
	struct auth_client *auth;
	struct policy *p;
};

/* One answer seen by done(). */
struct answer {
	unsigned calls;
	struct policy_result r;
	unsigned *outstanding;
	struct ev_loop *loop;
	/* Cancel this one from inside done(). */
	struct policy *cancel_p;
	struct policy_pending *cancel_pp;
};

/* Set while a check call runs: done() must not see it. */
static int in_check;

/* --- The fake auth service ------------------------------------------------ */

static int fake_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg);
static void fake_on_close(struct ipc_link *l, const char *why, void *arg);

static const struct ipc_type fake_types[] = {
	{ AUTH_LOOKUP, 5, 4096, 0 },
};
static const struct ipc_proto fake_proto = {
	AUTH_PROTO, fake_types, 1, fake_on_msg, fake_on_close,
};

/* Forget one link of the fake service. */
static void
fake_forget(struct env *e, struct ipc_link *l)
{
	for (size_t i = 0; i < e->nlinks; i++)
		if (e->links[i] == l) {
			e->links[i] = e->links[--e->nlinks];
			break;
		}
	ipc_link_free(&l);
}

/* An AUTH_LOOKUP: found if in fake_users. */
static int
fake_on_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct env *e = arg;
	const char *user;
	struct ipc_msg m;
	int found = 0;

	ck_assert_uint_eq(type, AUTH_LOOKUP);
	if (ipc_get_str(c, &user) < 0 || ipc_get_end(c) < 0)
		return -1;
	e->lookups++;
	if (e->mode == FAKE_SILENT)
		return 0;
	if (e->mode == FAKE_TEMP) {
		ipc_msg_init(&m, AUTH_FAIL, id);
		ipc_put_u32(&m, AUTH_FAIL_TEMPORARY);
		ipc_put_str(&m, "map unreadable");
	} else {
		for (size_t i = 0; i < sizeof(fake_users) / sizeof(fake_users[0]); i++)
			if (strcasecmp(user, fake_users[i]) == 0)
				found = 1;
		ipc_msg_init(&m, AUTH_USER, id);
		ipc_put_u32(&m, (uint32_t)found);
		ipc_put_str(&m, user);
		ipc_put_str(&m, found ? "example.test/u/" : "");
		ipc_put_u64(&m, 0);
		ipc_put_u32(&m, (uint32_t)found);
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
	struct env *e = arg;
	int cfd;

	(void)io;
	(void)events;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		ck_assert_uint_lt(e->nlinks, 8);
		e->links[e->nlinks++] = ipc_link_new(e->loop, cfd, &fake_proto, e);
	}
}

/* --- The environment ------------------------------------------------------ */

/* Write text to DIR/name. */
static void
write_file(const struct env *e, const char *name, const char *text)
{
	char path[192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

/* Remove DIR/name. */
static void
remove_file(const struct env *e, const char *name)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	unlink(path);
}

/* The maps, the config (extra appended to it), the fake service (unless
 * auth_path names another socket) and the policy. */
static void
env_start(struct env *e, const char *extra, const char *auth_path)
{
	struct buf conf = BUF_INIT, err = BUF_INIT, longval = BUF_INIT;
	const char *error;

	memset(e, 0, sizeof(*e));
	e->lfd = -1;
	e->loop = ev_loop_new();
	snprintf(e->dir, sizeof(e->dir), "/tmp/pt-policy-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	snprintf(e->sock, sizeof(e->sock), "%s/auth", e->dir);
	write_file(e, "aliases", aliases_text);
	write_file(e, "mailboxes", mailboxes_text);
	write_file(e, "sender_access", sender_access_text);
	/* A value longer than the policy reads: a lookup that fails. */
	ck_assert_int_eq(buf_puts(&longval, rcpt_access_text), 0);
	ck_assert_int_eq(buf_puts(&longval, "longval@example.test REJECT "), 0);
	for (int i = 0; i < 2000; i++)
		ck_assert_int_eq(buf_putc(&longval, 'x'), 0);
	ck_assert_int_eq(buf_putc(&longval, '\n'), 0);
	write_file(e, "recipient_access", buf_cstr(&longval));
	buf_free(&longval);

	ck_assert_int_eq(buf_printf(&conf,
	    "mode = dev\n"
	    "hostname = mx.example.test\n"
	    "virtual_domains = inline:{example.test=yes, catchall.test=yes}\n"
	    "virtual_mailboxes = texthash:%s/mailboxes\n"
	    "aliases = texthash:%s/aliases\n"
	    "relay_domains = inline:{relayed.test=yes}\n"
	    "sender_access = texthash:%s/sender_access\n"
	    "recipient_access = texthash:%s/recipient_access\n"
	    "mynetworks = 127.0.0.0/8, 10.1.0.0/16, [2001:db8::]/32\n"
	    "auth_timeout = 1s\n"
	    "%s", e->dir, e->dir, e->dir, e->dir, extra != NULL ? extra : ""), 0);
	ck_assert_msg(config_parse("t.conf", conf.data, conf.len, &e->cfg, &err) == 1,
	    "config: %s", buf_cstr(&err));
	buf_free(&conf);
	buf_free(&err);
	if (auth_path == NULL) {
		e->lfd = net_bind_unix(e->sock, 0600, (uid_t)-1, (gid_t)-1, 16, &error);
		ck_assert_int_ge(e->lfd, 0);
		e->accept_io = ev_io_add(e->loop, e->lfd, EV_READ, fake_accept, e);
	}
	e->auth = auth_client_new(e->loop, auth_path != NULL ? auth_path : e->sock);
	ck_assert_msg(policy_open(config_global(e->cfg), e->loop, e->auth, &e->p,
	    &error) == 0, "policy_open: %s", error);
}

static void
env_stop(struct env *e)
{
	policy_close(&e->p);
	ck_assert_ptr_null(e->p);
	auth_client_free(&e->auth);
	while (e->nlinks > 0)
		fake_forget(e, e->links[0]);
	if (e->accept_io != NULL)
		ev_io_del(&e->accept_io);
	if (e->lfd >= 0)
		close(e->lfd);
	unlink(e->sock);
	remove_file(e, "aliases");
	remove_file(e, "mailboxes");
	remove_file(e, "sender_access");
	remove_file(e, "recipient_access");
	rmdir(e->dir);
	config_free(&e->cfg);
	ev_loop_free(&e->loop);
}

static void
on_done(const struct policy_result *r, void *arg)
{
	struct answer *a = arg;

	ck_assert_msg(!in_check, "done() called inside the check call");
	a->calls++;
	a->r = *r;
	if (a->cancel_pp != NULL) {
		policy_cancel(a->cancel_p, a->cancel_pp);
		a->cancel_pp = NULL;
	}
	if (a->outstanding != NULL && --*a->outstanding == 0)
		ev_break(a->loop);
}

/* --- Clients ------------------------------------------------------------- */

enum client_kind {
	OUTSIDER,	/* 192.0.2.1, not authenticated */
	MYNET,		/* 10.1.2.3 */
	MAPPED,		/* ::ffff:10.1.2.3 */
	MYNET6,		/* 2001:db8::5 */
	AUTHED,		/* 192.0.2.1, authenticated as alice on port 25 */
	SUBMIT,		/* 192.0.2.1, authenticated as alice on submission */
};

/* Fill c (with its address in storage) for a kind of client. */
static void
client_make(enum client_kind kind, struct policy_client *c,
    struct sockaddr_storage *storage)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)storage;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)storage;

	memset(c, 0, sizeof(*c));
	memset(storage, 0, sizeof(*storage));
	c->addr = (const struct sockaddr *)storage;
	switch (kind) {
	case MAPPED:
	case MYNET6:
		sin6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, kind == MAPPED ?
		    "::ffff:10.1.2.3" : "2001:db8::5", &sin6->sin6_addr), 1);
		return;
	default:
		sin->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, kind == MYNET ? "10.1.2.3" :
		    "192.0.2.1", &sin->sin_addr), 1);
		break;
	}
	if (kind == AUTHED || kind == SUBMIT)
		c->auth_user = "alice@example.test";
	c->submission = kind == SUBMIT;
}

/* Run one check to its answer. */
static void
check_one(struct env *e, int sender, enum client_kind kind, const char *address,
    struct answer *a)
{
	struct policy_client c;
	struct sockaddr_storage ss;
	unsigned outstanding = 1;
	struct policy_pending *pp;

	client_make(kind, &c, &ss);
	memset(a, 0, sizeof(*a));
	a->outstanding = &outstanding;
	a->loop = e->loop;
	in_check = 1;
	pp = sender ? policy_check_sender(e->p, &c, address, on_done, a) :
	    policy_check_rcpt(e->p, &c, address, on_done, a);
	in_check = 0;
	ck_assert_ptr_nonnull(pp);
	ck_assert_uint_eq(a->calls, 0);
	check_run_loop_for(e->loop, 5000);
	ck_assert_uint_eq(a->calls, 1);
}

/* Run one check through the at-once calls (policy_decide_sender,
 * policy_check_rcpt_now), to its answer; 1 if it came at once. */
static int
check_now(struct env *e, int sender, enum client_kind kind, const char *address,
    struct answer *a)
{
	struct policy_client c;
	struct sockaddr_storage ss;
	unsigned outstanding = 1;
	struct policy_pending *pp;
	struct policy_result r;

	client_make(kind, &c, &ss);
	memset(a, 0, sizeof(*a));
	a->outstanding = &outstanding;
	a->loop = e->loop;
	if (sender) {
		policy_decide_sender(e->p, &c, address, &a->r);
		return 1;
	}
	in_check = 1;
	pp = policy_check_rcpt_now(e->p, &c, address, &r, on_done, a);
	in_check = 0;
	if (pp == NULL) {
		a->r = r;
		/* Nothing may come later either. */
		check_run_loop_for(e->loop, 50);
		ck_assert_uint_eq(a->calls, 0);
		return 1;
	}
	ck_assert_uint_eq(a->calls, 0);
	check_run_loop_for(e->loop, 5000);
	ck_assert_uint_eq(a->calls, 1);
	return 0;
}

/* --- The rule tables ----------------------------------------------------- */

static const struct rule_case {
	int sender;			/* 1: MAIL FROM, 0: RCPT TO */
	enum client_kind client;
	const char *address;
	enum policy_verdict verdict;
	int code;
	const char *esc;
	const char *text;		/* NULL: not checked */
	const char *final;		/* NULL: not checked */
} rule_cases[] = {
	/* Local users. */
	{ 0, OUTSIDER, "alice@example.test", POLICY_ACCEPT, 250, "2.1.5", "Ok",
	    "alice@example.test" },
	{ 0, OUTSIDER, "nobody@example.test", POLICY_REJECT, 550, "5.1.1",
	    "Recipient address rejected: User unknown", "" },
	{ 0, OUTSIDER, "alice+news@example.test", POLICY_ACCEPT, 250, "2.1.5", NULL,
	    "alice@example.test" },
	{ 0, OUTSIDER, "Alice+x+y@Example.TEST", POLICY_ACCEPT, 250, "2.1.5", NULL,
	    "Alice@example.test" },
	{ 0, OUTSIDER, "nobody+x@example.test", POLICY_REJECT, 550, "5.1.1", NULL, "" },
	{ 0, OUTSIDER, "carol@example.test", POLICY_ACCEPT, 250, "2.1.5", NULL,
	    "carol@example.test" },
	/* Aliases. */
	{ 0, OUTSIDER, "info@example.test", POLICY_ACCEPT, 250, "2.1.5", NULL,
	    "info@example.test" },
	{ 0, OUTSIDER, "team@example.test", POLICY_ACCEPT, 250, "2.1.5", NULL, NULL },
	{ 0, OUTSIDER, "partial@example.test", POLICY_REJECT, 550, "5.1.1", NULL, "" },
	{ 0, OUTSIDER, "ext@example.test", POLICY_ACCEPT, 250, "2.1.5", NULL, NULL },
	{ 0, OUTSIDER, "mbx@example.test", POLICY_ACCEPT, 250, "2.1.5", NULL, NULL },
	{ 0, OUTSIDER, "tagged@example.test", POLICY_ACCEPT, 250, "2.1.5", NULL, NULL },
	{ 0, OUTSIDER, "anyone@catchall.test", POLICY_ACCEPT, 250, "2.1.5", NULL,
	    "anyone@catchall.test" },
	{ 0, OUTSIDER, "loop1@example.test", POLICY_REJECT, 550, "5.1.1",
	    "Recipient address rejected: alias expansion loops or is too deep", "" },
	/* postmaster and the null recipient: the first virtual domain. */
	{ 0, OUTSIDER, "postmaster", POLICY_ACCEPT, 250, "2.1.5", NULL,
	    "postmaster@example.test" },
	{ 0, OUTSIDER, "PostMaster", POLICY_ACCEPT, 250, "2.1.5", NULL,
	    "postmaster@example.test" },
	{ 0, OUTSIDER, "", POLICY_ACCEPT, 250, "2.1.5", NULL, "postmaster@example.test" },
	{ 0, OUTSIDER, "bob", POLICY_REJECT, 501, "5.1.3", NULL, "" },
	/* Relay control. */
	{ 0, OUTSIDER, "someone@remote.test", POLICY_REJECT, 554, "5.7.1",
	    "Relay access denied", "" },
	{ 0, MYNET, "someone@remote.test", POLICY_ACCEPT, 250, "2.1.5", "Ok", "" },
	{ 0, MAPPED, "someone@remote.test", POLICY_ACCEPT, 250, "2.1.5", NULL, "" },
	{ 0, MYNET6, "someone@remote.test", POLICY_ACCEPT, 250, "2.1.5", NULL, "" },
	{ 0, AUTHED, "someone@remote.test", POLICY_ACCEPT, 250, "2.1.5", NULL, "" },
	{ 0, OUTSIDER, "x@relayed.test", POLICY_ACCEPT, 250, "2.1.5", NULL, "" },
	{ 0, OUTSIDER, "x@sub.relayed.test", POLICY_REJECT, 554, "5.7.1", NULL, "" },
	/* recipient_access. */
	{ 0, OUTSIDER, "blocked@example.test", POLICY_REJECT, 554, "5.7.1",
	    "Mailbox closed by policy", "" },
	{ 0, AUTHED, "blocked+x@example.test", POLICY_REJECT, 554, "5.7.1",
	    "Mailbox closed by policy", "" },
	{ 0, OUTSIDER, "spamtrap@example.test", POLICY_DISCARD, 250, "2.1.5", NULL, "" },
	{ 0, OUTSIDER, "x@friendly.test", POLICY_ACCEPT, 250, "2.1.5", NULL, "" },
	{ 0, OUTSIDER, "okghost@example.test", POLICY_REJECT, 550, "5.1.1", NULL, "" },
	{ 0, MYNET, "abuse@remote.test", POLICY_REJECT, 554, "5.7.1",
	    "Access denied", "" },
	{ 0, OUTSIDER, "weird@example.test", POLICY_TEMPFAIL, 451, "4.3.5",
	    "Server configuration error", "" },
	{ 0, OUTSIDER, "longval@example.test", POLICY_TEMPFAIL, 451, "4.3.0",
	    "Temporary lookup failure", "" },
	/* sender_access. */
	{ 1, OUTSIDER, "", POLICY_ACCEPT, 250, "2.1.0", "Ok", NULL },
	{ 1, OUTSIDER, "someone@remote.test", POLICY_ACCEPT, 250, "2.1.0", "Ok", NULL },
	{ 1, OUTSIDER, "spammer@bad.test", POLICY_REJECT, 554, "5.7.1", "Go away", NULL },
	{ 1, OUTSIDER, "other@bad.test", POLICY_REJECT, 554, "5.7.1", "Access denied",
	    NULL },
	{ 1, OUTSIDER, "good@bad.test", POLICY_ACCEPT, 250, "2.1.0", NULL, NULL },
	{ 1, OUTSIDER, "quiet@x.test", POLICY_DISCARD, 250, "2.1.0", NULL, NULL },
	/* Submission: only the user's own address, or <>. */
	{ 1, SUBMIT, "alice@example.test", POLICY_ACCEPT, 250, "2.1.0", NULL, NULL },
	{ 1, SUBMIT, "ALICE@Example.Test", POLICY_ACCEPT, 250, "2.1.0", NULL, NULL },
	{ 1, SUBMIT, "alice+lists@example.test", POLICY_ACCEPT, 250, "2.1.0", NULL, NULL },
	{ 1, SUBMIT, "", POLICY_ACCEPT, 250, "2.1.0", NULL, NULL },
	{ 1, SUBMIT, "bob@example.test", POLICY_REJECT, 553, "5.7.1",
	    "Sender address rejected: not owned by user alice@example.test", NULL },
	{ 1, SUBMIT, "good@bad.test", POLICY_REJECT, 553, "5.7.1", NULL, NULL },
	{ 1, SUBMIT, "alicex@example.test", POLICY_REJECT, 553, "5.7.1", NULL, NULL },
	{ 1, AUTHED, "bob@example.test", POLICY_ACCEPT, 250, "2.1.0", NULL, NULL },
};

START_TEST(test_rules)
{
	const struct rule_case *t = &rule_cases[_i];
	struct env e;
	struct answer a;

	env_start(&e, NULL, NULL);
	check_one(&e, t->sender, t->client, t->address, &a);
	ck_assert_msg(a.r.verdict == t->verdict && a.r.code == t->code,
	    "case %d %s <%s>: verdict %d code %d (%s %s), want %d %d", _i,
	    t->sender ? "sender" : "rcpt", t->address, a.r.verdict, a.r.code,
	    a.r.esc, a.r.text, t->verdict, t->code);
	ck_assert_str_eq(a.r.esc, t->esc);
	if (t->text != NULL)
		ck_assert_str_eq(a.r.text, t->text);
	if (t->final != NULL)
		ck_assert_str_eq(a.r.final, t->final);
	env_stop(&e);

	/* The at-once calls decide the same, with or without the cache. */
	for (int cache = 0; cache < 2; cache++) {
		struct answer b;

		env_start(&e, cache ? NULL : "smtpd_user_cache_time = 0\n", NULL);
		(void)check_now(&e, t->sender, t->client, t->address, &b);
		(void)check_now(&e, t->sender, t->client, t->address, &b);
		ck_assert_int_eq(b.r.verdict, a.r.verdict);
		ck_assert_int_eq(b.r.code, a.r.code);
		ck_assert_str_eq(b.r.esc, a.r.esc);
		ck_assert_str_eq(b.r.text, a.r.text);
		ck_assert_str_eq(b.r.final, a.r.final);
		env_stop(&e);
	}
}
END_TEST

/* Which rcpt checks answer at once: everything but a user database
 * lookup, and that too once the cache knows the user. */
START_TEST(test_at_once)
{
	struct env e;
	struct answer a;

	env_start(&e, NULL, NULL);
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "someone@remote.test", &a), 1);
	ck_assert_int_eq(a.r.code, 554);
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "carol@example.test", &a), 1);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "blocked@example.test", &a), 1);
	ck_assert_int_eq(a.r.code, 554);
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "loop1@example.test", &a), 1);
	ck_assert_int_eq(a.r.code, 550);
	ck_assert_uint_eq(e.lookups, 0);
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "alice@example.test", &a), 0);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "alice@example.test", &a), 1);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_str_eq(a.r.final, "alice@example.test");
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "nobody@example.test", &a), 0);
	ck_assert_int_eq(a.r.code, 550);
	ck_assert_int_eq(check_now(&e, 0, OUTSIDER, "nobody@example.test", &a), 0);
	ck_assert_uint_eq(e.lookups, 3);
	ck_assert_int_eq(check_now(&e, 1, OUTSIDER, "spammer@bad.test", &a), 1);
	ck_assert_int_eq(a.r.code, 554);
	ck_assert_int_eq(check_now(&e, 1, SUBMIT, "bob@example.test", &a), 1);
	ck_assert_int_eq(a.r.code, 553);
	env_stop(&e);
}
END_TEST

/* --- The user database ---------------------------------------------------- */

/* virtual_mailboxes users, other domains and relaying need no lookup;
 * a fan-out asks once per local target. */
START_TEST(test_lookup_counts)
{
	struct env e;
	struct answer a;

	env_start(&e, "smtpd_user_cache_time = 0\n", NULL);
	check_one(&e, 0, OUTSIDER, "carol@example.test", &a);
	check_one(&e, 0, MYNET, "someone@remote.test", &a);
	check_one(&e, 0, OUTSIDER, "mbx@example.test", &a);
	ck_assert_uint_eq(e.lookups, 0);
	check_one(&e, 0, OUTSIDER, "team@example.test", &a);
	ck_assert_uint_eq(e.lookups, 2);
	check_one(&e, 0, OUTSIDER, "ext@example.test", &a);
	ck_assert_uint_eq(e.lookups, 3);
	env_stop(&e);
}
END_TEST

/* The user cache: "found" answers are remembered for
 * smtpd_user_cache_time, "not found" and failures never. */
START_TEST(test_user_cache)
{
	struct env e;
	struct answer a;

	env_start(&e, "smtpd_user_cache_time = 1s\n", NULL);
	check_one(&e, 0, OUTSIDER, "alice@example.test", &a);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_uint_eq(e.lookups, 1);
	/* The same user, directly, tagged, or through an alias: cached. */
	check_one(&e, 0, OUTSIDER, "alice@example.test", &a);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_str_eq(a.r.final, "alice@example.test");
	check_one(&e, 0, OUTSIDER, "alice+x@example.test", &a);
	ck_assert_int_eq(a.r.code, 250);
	check_one(&e, 0, OUTSIDER, "info@example.test", &a);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_uint_eq(e.lookups, 1);
	/* A fan-out asks only for the user not cached yet. */
	check_one(&e, 0, OUTSIDER, "team@example.test", &a);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_uint_eq(e.lookups, 2);
	/* Unknown users are asked about every time. */
	check_one(&e, 0, OUTSIDER, "nobody@example.test", &a);
	ck_assert_int_eq(a.r.code, 550);
	check_one(&e, 0, OUTSIDER, "nobody@example.test", &a);
	ck_assert_int_eq(a.r.code, 550);
	ck_assert_uint_eq(e.lookups, 4);
	/* A failure is not cached, and does not spoil the cache. */
	e.mode = FAKE_TEMP;
	check_one(&e, 0, OUTSIDER, "ghost@example.test", &a);
	ck_assert_int_eq(a.r.code, 451);
	check_one(&e, 0, OUTSIDER, "alice@example.test", &a);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_uint_eq(e.lookups, 5);
	/* After the cache time the service is asked again. */
	check_run_loop_for(e.loop, 1100);
	e.mode = FAKE_ANSWER;
	check_one(&e, 0, OUTSIDER, "alice@example.test", &a);
	ck_assert_int_eq(a.r.code, 250);
	ck_assert_uint_eq(e.lookups, 6);
	env_stop(&e);
}
END_TEST

/* The auth service answers "temporary", does not answer, or is not there:
 * 451 4.3.0 for users it must know about; other rules still work. */
START_TEST(test_auth_unavailable)
{
	static const enum fake_mode modes[] = { FAKE_TEMP, FAKE_SILENT };
	struct env e;
	struct answer a;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		env_start(&e, NULL, NULL);
		e.mode = modes[i];
		check_one(&e, 0, OUTSIDER, "alice@example.test", &a);
		ck_assert_int_eq(a.r.verdict, POLICY_TEMPFAIL);
		ck_assert_int_eq(a.r.code, 451);
		ck_assert_str_eq(a.r.esc, "4.3.0");
		ck_assert_str_eq(a.r.final, "");
		check_one(&e, 0, OUTSIDER, "team@example.test", &a);
		ck_assert_int_eq(a.r.code, 451);
		check_one(&e, 0, OUTSIDER, "mbx@example.test", &a);
		ck_assert_int_eq(a.r.code, 250);
		env_stop(&e);
	}

	env_start(&e, NULL, "/nonexistent/postern/auth");
	check_one(&e, 0, OUTSIDER, "alice@example.test", &a);
	ck_assert_int_eq(a.r.verdict, POLICY_TEMPFAIL);
	ck_assert_int_eq(a.r.code, 451);
	ck_assert_str_eq(a.r.esc, "4.3.0");
	check_one(&e, 0, OUTSIDER, "carol@example.test", &a);
	ck_assert_int_eq(a.r.verdict, POLICY_ACCEPT);
	check_one(&e, 0, OUTSIDER, "someone@remote.test", &a);
	ck_assert_int_eq(a.r.code, 554);
	env_stop(&e);
}
END_TEST

/* --- done() and cancel ---------------------------------------------------- */

START_TEST(test_cancel)
{
	struct env e;
	struct policy_client c;
	struct sockaddr_storage ss;
	struct answer a[4];
	struct policy_pending *pp;
	unsigned outstanding = 1;

	env_start(&e, NULL, NULL);
	client_make(OUTSIDER, &c, &ss);
	memset(a, 0, sizeof(a));
	/* Cancelled at once: a decided sender, a rcpt waiting on auth. */
	pp = policy_check_sender(e.p, &c, "someone@remote.test", on_done, &a[0]);
	policy_cancel(e.p, pp);
	pp = policy_check_rcpt(e.p, &c, "team@example.test", on_done, &a[1]);
	policy_cancel(e.p, pp);
	/* a[2] cancels a[3] from inside its done(). */
	a[2].outstanding = &outstanding;
	a[2].loop = e.loop;
	(void)policy_check_rcpt(e.p, &c, "someone@remote.test", on_done, &a[2]);
	a[2].cancel_p = e.p;
	a[2].cancel_pp = policy_check_rcpt(e.p, &c, "alice@example.test", on_done, &a[3]);
	check_run_loop_for(e.loop, 5000);
	check_run_loop_for(e.loop, 200);
	ck_assert_uint_eq(a[0].calls, 0);
	ck_assert_uint_eq(a[1].calls, 0);
	ck_assert_uint_eq(a[2].calls, 1);
	ck_assert_uint_eq(a[3].calls, 0);
	policy_cancel(e.p, NULL);

	/* Closing the policy with checks in flight calls nobody back. */
	memset(a, 0, sizeof(a));
	(void)policy_check_rcpt(e.p, &c, "team@example.test", on_done, &a[0]);
	(void)policy_check_sender(e.p, &c, "", on_done, &a[1]);
	policy_close(&e.p);
	check_run_loop_for(e.loop, 200);
	ck_assert_uint_eq(a[0].calls, 0);
	ck_assert_uint_eq(a[1].calls, 0);
	env_stop(&e);
}
END_TEST

/* Many checks at once: each answered exactly once, none inside its call. */
START_TEST(test_many_outstanding)
{
	static const char *const rcpts[] = {
		"alice@example.test", "nobody@example.test", "team@example.test",
		"someone@remote.test", "carol@example.test", "partial@example.test",
	};
	static const int want[] = { 250, 550, 250, 554, 250, 550 };
	enum { N = 6 * 20 };
	struct env e;
	struct policy_client c;
	struct sockaddr_storage ss;
	struct answer a[N];
	unsigned outstanding = N;

	env_start(&e, NULL, NULL);
	client_make(OUTSIDER, &c, &ss);
	memset(a, 0, sizeof(a));
	in_check = 1;
	for (size_t i = 0; i < N; i++) {
		a[i].outstanding = &outstanding;
		a[i].loop = e.loop;
		(void)policy_check_rcpt(e.p, &c, rcpts[i % 6], on_done, &a[i]);
	}
	in_check = 0;
	check_run_loop_for(e.loop, 5000);
	for (size_t i = 0; i < N; i++) {
		ck_assert_uint_eq(a[i].calls, 1);
		ck_assert_int_eq(a[i].r.code, want[i % 6]);
	}
	env_stop(&e);
}
END_TEST

/* --- Opening ---------------------------------------------------------------- */

START_TEST(test_open)
{
	struct env e;
	struct config *cfg;
	struct buf err = BUF_INIT;
	struct policy *p = NULL;
	const char *error = NULL;
	static const char conf[] =
	    "aliases = texthash:/nonexistent/aliases\n";
	static const char conf_host[] =
	    "hostname = mx.example.test\n";
	struct answer a;

	/* A map that cannot be opened is an error at start. */
	ck_assert_int_eq(config_parse("t.conf", conf, strlen(conf), &cfg, &err), 1);
	env_start(&e, NULL, NULL);
	ck_assert_int_eq(policy_open(config_global(cfg), e.loop, e.auth, &p, &error), -1);
	ck_assert_ptr_null(p);
	ck_assert_ptr_nonnull(strstr(error, "aliases"));
	config_free(&cfg);

	/* No virtual domains: postmaster is at the host name, and with no
	 * local domains it is relayed like any other address. */
	ck_assert_int_eq(config_parse("t.conf", conf_host, strlen(conf_host), &cfg,
	    &err), 1);
	ck_assert_int_eq(policy_open(config_global(cfg), e.loop, e.auth, &p, &error), 0);
	policy_close(&e.p);
	e.p = p;
	check_one(&e, 0, AUTHED, "postmaster", &a);
	ck_assert_int_eq(a.r.verdict, POLICY_ACCEPT);
	ck_assert_str_eq(a.r.final, "");
	check_one(&e, 0, OUTSIDER, "postmaster", &a);
	ck_assert_int_eq(a.r.code, 554);
	/* Default mynetworks: loopback only. */
	{
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(policy_in_mynetworks(p, (struct sockaddr *)&sin), 1);
		sin.sin_addr.s_addr = htonl(0x0a010203);
		ck_assert_int_eq(policy_in_mynetworks(p, (struct sockaddr *)&sin), 0);
		ck_assert_int_eq(policy_in_mynetworks(p, NULL), 0);
	}
	env_stop(&e);
	config_free(&cfg);
	buf_free(&err);
}
END_TEST

static Suite *
policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_rules, 0,
	    (int)(sizeof(rule_cases) / sizeof(rule_cases[0])));
	tcase_add_test(tc, test_lookup_counts);
	tcase_add_test(tc, test_user_cache);
	tcase_add_test(tc, test_at_once);
	tcase_add_test(tc, test_auth_unavailable);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_many_outstanding);
	tcase_add_test(tc, test_open);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(policy_suite());
}
