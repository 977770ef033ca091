/*
 * Unit tests for the auth service (auth/auth.c, auth/failtab.c): the
 * request check and the failure tables from memory, then the real
 * service and the real client (lib/core/authclient.c) in one event loop over
 * a Unix socket, with a texthash password map in a temporary directory:
 * logins and user lookups (AUTH_LOOKUP).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "authclient.h"
#include "authproto.h"
#include "buf.h"
#include "check_util.h"
#include "ev.h"
#include "failtab.h"
#include "log.h"
#include "net.h"

/* mkpasswd -m yescrypt right; mkpasswd -m sha512crypt right */
#define HASH_Y "$y$j9T$9k2aFuyz.PXiTuH.i8LSv.$UHifFr58/VLILiSqRZ8ACcGvjP0f61lim5IvM2VfkaC"
#define HASH_6 "$6$Wfzu22BmJjIsdqiK$vJ1h/GpfN3W/yXQdTTgHK4Eh2Qz2ulrPcUSRtlI1/r6cLwf3GI15p3KnjvbuDqe5E9U1omXeQpKYwCVatAJ821"

static const char passwd_text[] =
    "# test users\n"
    "alice@example.test " HASH_Y " quota=1M\n"
    "bob@example.test " HASH_6 "\n"
    "off@example.test " HASH_Y " enabled=no\n"
    "locked@example.test !" HASH_Y "\n"
    "md5@example.test $1$saltsalt$2vnaRpHa6Jxjz5n83ok8Z0\n"
    "junk@example.test " HASH_Y " colour=blue\n"
    "nodomain " HASH_Y "\n";

/* --- The check step ----------------------------------------------------- */

START_TEST(test_req_check)
{
	static const struct {
		const char *service, *mech, *user, *client;
		size_t pwlen;
		const char *canon;	/* NULL: refused */
	} cases[] = {
		{ "smtp", "PLAIN", "Alice@Example.TEST", "192.0.2.1", 5, "alice@example.test" },
		{ "pop3", "USER", "bob@example.test", "", 0, "bob@example.test" },
		{ "imap", "LOGIN", "\xc3\xa9@example.test", "::1", 5, "\xc3\xa9@example.test" },
		{ "ftp", "PLAIN", "a@b", "", 1, NULL },
		{ "smtp", "CRAM-MD5", "a@b", "", 1, NULL },
		{ "smtp", "plain", "a@b", "", 1, NULL },
		{ "smtp", "PLAIN", "", "", 1, NULL },
		{ "smtp", "PLAIN", "a b@c", "", 1, NULL },
		{ "smtp", "PLAIN", "a\tb@c", "", 1, NULL },
		{ "smtp", "PLAIN", "a\x7f@c", "", 1, NULL },
		{ "smtp", "PLAIN", "a@b", "", AUTH_MAX_PASSWORD + 1, NULL },
		{ "smtp", "PLAIN", "a@b", "", AUTH_MAX_PASSWORD, "a@b" },
	};
	char canon[AUTH_MAX_USER + 1], longuser[AUTH_MAX_USER + 2];
	struct auth_req r;
	const char *error;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r.service = cases[i].service;
		r.mechanism = cases[i].mech;
		r.user = cases[i].user;
		r.client = cases[i].client;
		r.password = "";
		r.password_len = cases[i].pwlen;
		r.flags = 0;
		error = NULL;
		if (cases[i].canon == NULL) {
			ck_assert_msg(auth_req_check(&r, canon, &error) == -1,
			    "case %zu accepted", i);
			ck_assert_ptr_nonnull(error);
		} else {
			ck_assert_msg(auth_req_check(&r, canon, &error) == 0,
			    "case %zu refused: %s", i, error);
			ck_assert_str_eq(canon, cases[i].canon);
		}
	}
	memset(longuser, 'u', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	r.user = longuser;
	r.password_len = 1;
	ck_assert_int_eq(auth_req_check(&r, canon, &error), -1);
	longuser[AUTH_MAX_USER] = '\0';
	ck_assert_int_eq(auth_req_check(&r, canon, &error), 0);
}
END_TEST

/* --- The failure tables -------------------------------------------------- */

START_TEST(test_failtab_counts)
{
	struct failtab *t = failtab_new(10, 1000);

	ck_assert_uint_eq(failtab_count(t, "a", 0), 0);
	ck_assert_uint_eq(failtab_add(t, "a", 0), 1);
	ck_assert_uint_eq(failtab_add(t, "a", 500), 2);
	ck_assert_uint_eq(failtab_add(t, "b", 600), 1);
	ck_assert_uint_eq(failtab_count(t, "a", 700), 2);
	/* Forgotten forget_ms after the latest failure. */
	ck_assert_uint_eq(failtab_count(t, "a", 1499), 2);
	ck_assert_uint_eq(failtab_count(t, "a", 1500), 0);
	ck_assert_uint_eq(failtab_count(t, "b", 1500), 1);
	ck_assert_uint_eq(failtab_size(t), 1);
	failtab_forget(t, "b");
	failtab_forget(t, "nothing");
	ck_assert_uint_eq(failtab_count(t, "b", 1500), 0);
	ck_assert_uint_eq(failtab_size(t), 0);
	/* Taking some failures off keeps the rest; taking all forgets. */
	ck_assert_uint_eq(failtab_add(t, "c", 2000), 1);
	ck_assert_uint_eq(failtab_add(t, "c", 2000), 2);
	ck_assert_uint_eq(failtab_add(t, "c", 2100), 3);
	failtab_sub(t, "c", 2);
	failtab_sub(t, "nothing", 2);
	ck_assert_uint_eq(failtab_count(t, "c", 2200), 1);
	ck_assert_uint_eq(failtab_add(t, "c", 2300), 2);
	failtab_sub(t, "c", 5);
	ck_assert_uint_eq(failtab_count(t, "c", 2300), 0);
	ck_assert_uint_eq(failtab_size(t), 0);
	failtab_free(&t);
	ck_assert_ptr_null(t);
}
END_TEST

/* A full table evicts its least recently failed key, and stays bounded
 * under a flood of distinct keys. */
START_TEST(test_failtab_bounded)
{
	struct failtab *t = failtab_new(3, 100000);
	char key[32];

	ck_assert_uint_eq(failtab_add(t, "a", 1), 1);
	ck_assert_uint_eq(failtab_add(t, "b", 2), 1);
	ck_assert_uint_eq(failtab_add(t, "c", 3), 1);
	ck_assert_uint_eq(failtab_add(t, "a", 4), 2);	/* a is now newest */
	ck_assert_uint_eq(failtab_add(t, "d", 5), 1);	/* evicts b */
	ck_assert_uint_eq(failtab_size(t), 3);
	ck_assert_uint_eq(failtab_count(t, "b", 6), 0);
	ck_assert_uint_eq(failtab_count(t, "a", 6), 2);
	ck_assert_uint_eq(failtab_count(t, "c", 6), 1);
	failtab_free(&t);

	t = failtab_new(1000, 100000);
	for (unsigned i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "198.51.100.%u", i);
		ck_assert_uint_eq(failtab_add(t, key, i), 1);
	}
	ck_assert_uint_eq(failtab_size(t), 1000);
	ck_assert_uint_eq(failtab_count(t, "198.51.100.19999", 20000), 1);
	ck_assert_uint_eq(failtab_count(t, "198.51.100.0", 20000), 0);
	failtab_free(&t);
}
END_TEST

START_TEST(test_failtab_delay)
{
	ck_assert_uint_eq(failtab_delay(0, 2000, 30000), 0);
	ck_assert_uint_eq(failtab_delay(1, 2000, 30000), 2000);
	ck_assert_uint_eq(failtab_delay(2, 2000, 30000), 4000);
	ck_assert_uint_eq(failtab_delay(4, 2000, 30000), 16000);
	ck_assert_uint_eq(failtab_delay(5, 2000, 30000), 30000);
	ck_assert_uint_eq(failtab_delay(UINT32_MAX, 2000, 30000), 30000);
	ck_assert_uint_eq(failtab_delay(UINT32_MAX, UINT64_MAX / 3, UINT64_MAX), UINT64_MAX);
	ck_assert_uint_eq(failtab_delay(7, 0, 30000), 0);
	ck_assert_uint_eq(failtab_delay(1, 5000, 1000), 1000);
}
END_TEST

/* --- The service and the client in one loop ------------------------------- */

struct env {
	struct ev_loop *loop;
	char dir[64], sock[128], map[128], spec[160];
	int lfd;
	struct ev_io *accept_io;
	struct auth_server *srv;
	struct auth_client *client;
	uid_t peer;
};

struct answer {
	unsigned calls;
	enum auth_result result;
	char user[64], mailbox[64];
	int found, enabled;
	uint64_t quota, at;
	struct env *env;
	unsigned *outstanding;
};

static void
env_accept(struct ev_io *io, int fd, int events, void *arg)
{
	struct env *e = arg;
	int cfd;

	(void)io;
	(void)events;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		auth_server_accept(e->srv, cfd);
}

/* A service with the test map (or spec if given), the failure delay and
 * the address penalty (first step, cap) in ms, and only peer allowed. */
static void
env_start(struct env *e, const char *spec, uint64_t delay, uint64_t penalty,
    uint64_t penalty_max, uid_t peer)
{
	struct auth_settings s;
	const char *error;
	FILE *f;

	memset(e, 0, sizeof(*e));
	e->loop = ev_loop_new();
	snprintf(e->dir, sizeof(e->dir), "/tmp/pt-authtest-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	snprintf(e->sock, sizeof(e->sock), "%s/auth", e->dir);
	snprintf(e->map, sizeof(e->map), "%s/passwd", e->dir);
	snprintf(e->spec, sizeof(e->spec), "texthash:%s", e->map);
	ck_assert_ptr_nonnull(f = fopen(e->map, "w"));
	ck_assert_int_eq(fputs(passwd_text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	e->peer = peer;
	memset(&s, 0, sizeof(s));
	s.passwd = spec != NULL ? spec : e->spec;
	s.mailboxes = "inline:{bob@example.test=custom/bob}";
	s.fail_delay_ms = delay;
	s.penalty_ms = penalty;
	s.penalty_max_ms = penalty_max;
	s.fail_forget_ms = 60000;
	s.failtab_max = 100;
	s.peers = &e->peer;
	s.npeers = 1;
	e->srv = auth_server_new(e->loop, &s);
	e->lfd = net_bind_unix(e->sock, 0600, (uid_t)-1, (gid_t)-1, 16, &error);
	ck_assert_int_ge(e->lfd, 0);
	e->accept_io = ev_io_add(e->loop, e->lfd, EV_READ, env_accept, e);
	e->client = auth_client_new(e->loop, e->sock);
}

static void
env_stop(struct env *e)
{
	auth_client_free(&e->client);
	auth_server_free(&e->srv);
	ev_io_del(&e->accept_io);
	close(e->lfd);
	unlink(e->sock);
	unlink(e->map);
	rmdir(e->dir);
	ev_loop_free(&e->loop);
}

static void
on_done(enum auth_result result, const char *user, const char *mailbox,
    uint64_t quota, const char *reason, void *arg)
{
	struct answer *a = arg;

	(void)reason;
	a->calls++;
	a->result = result;
	snprintf(a->user, sizeof(a->user), "%s", user != NULL ? user : "(null)");
	snprintf(a->mailbox, sizeof(a->mailbox), "%s", mailbox != NULL ? mailbox : "(null)");
	a->quota = quota;
	a->at = ev_now(a->env->loop);
	if (--*a->outstanding == 0)
		ev_break(a->env->loop);
}

/* Send requests for users[i] with passwords[i] from clients[i] (NULL:
 * all from 192.0.2.7), and run until all are answered (10 s at most). */
static void
ask_from(struct env *e, size_t n, const char *const *users,
    const char *const *passwords, const char *const *clients, struct answer *answers)
{
	unsigned outstanding = (unsigned)n;

	for (size_t i = 0; i < n; i++) {
		struct auth_request req = {
			"imap", "LOGIN", users[i], passwords[i], strlen(passwords[i]),
			clients != NULL ? clients[i] : "192.0.2.7", 0,
		};

		memset(&answers[i], 0, sizeof(answers[i]));
		answers[i].env = e;
		answers[i].outstanding = &outstanding;
		(void)auth_client_request(e->client, &req, 10000, on_done, &answers[i]);
	}
	check_run_loop_for(e->loop, 10000);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(answers[i].calls, 1);
}

/* ask_from() with every request from 192.0.2.7. */
static void
ask(struct env *e, size_t n, const char *const *users, const char *const *passwords,
    struct answer *answers)
{
	ask_from(e, n, users, passwords, NULL, answers);
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

/* Look users[i] up, and run until all are answered (10 s at most). */
static void
ask_lookup(struct env *e, size_t n, const char *const *users, struct answer *answers)
{
	unsigned outstanding = (unsigned)n;

	for (size_t i = 0; i < n; i++) {
		memset(&answers[i], 0, sizeof(answers[i]));
		answers[i].env = e;
		answers[i].outstanding = &outstanding;
		(void)auth_client_lookup(e->client, users[i], 10000, on_lookup, &answers[i]);
	}
	check_run_loop_for(e->loop, 10000);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(answers[i].calls, 1);
}

START_TEST(test_service_answers)
{
	static const char *const users[] = {
		"Alice@Example.Test", "alice@example.test", "bob@example.test",
		"nobody@example.test", "off@example.test", "locked@example.test",
		"md5@example.test", "junk@example.test", "nodomain",
	};
	static const char *const pws[] = {
		"right", "wrong", "right", "right", "right", "right", "right",
		"right", "right",
	};
	static const enum auth_result want[] = {
		AUTH_RESULT_OK, AUTH_RESULT_FAIL, AUTH_RESULT_OK, AUTH_RESULT_FAIL,
		AUTH_RESULT_FAIL, AUTH_RESULT_FAIL, AUTH_RESULT_FAIL, AUTH_RESULT_FAIL,
		AUTH_RESULT_TEMP,
	};
	struct answer a[sizeof(users) / sizeof(users[0])];
	struct env e;

	env_start(&e, NULL, 0, 0, 0, getuid());
	ask(&e, sizeof(users) / sizeof(users[0]), users, pws, a);
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		ck_assert_msg(a[i].result == want[i], "user %s: result %d, want %d",
		    users[i], a[i].result, want[i]);
	ck_assert_str_eq(a[0].user, "alice@example.test");
	ck_assert_str_eq(a[0].mailbox, "example.test/alice/");
	ck_assert_uint_eq(a[0].quota, 1024 * 1024);
	/* bob has a virtual_mailboxes entry. */
	ck_assert_str_eq(a[2].user, "bob@example.test");
	ck_assert_str_eq(a[2].mailbox, "custom/bob/");
	ck_assert_uint_eq(a[2].quota, 0);
	env_stop(&e);
}
END_TEST

/* An unreadable password map is a temporary failure, never "no user". */
START_TEST(test_service_map_missing)
{
	static const char *const users[] = { "alice@example.test" };
	static const char *const pws[] = { "right" };
	struct answer a[1];
	struct env e;

	env_start(&e, "texthash:/nonexistent/passwd", 0, 0, 0, getuid());
	ask(&e, 1, users, pws, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
	env_stop(&e);
}
END_TEST

/* The service's log lines since the last reset. */
static struct buf logged = BUF_INIT;

static void
capture_log(enum log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	ck_assert_int_eq(buf_puts(&logged, line), 0);
	ck_assert_int_eq(buf_putc(&logged, '\n'), 0);
}

/* Whether a captured line has "client=client", then want. */
static int
log_has(const char *client, const char *want)
{
	const char *p = buf_cstr(&logged), *end;
	char c[64];

	snprintf(c, sizeof(c), "client=%s ", client);
	for (; (p = strstr(p, c)) != NULL; p = end) {
		const char *w = strstr(p, want);

		end = strchr(p, '\n');
		if (w != NULL && (end == NULL || w < end))
			return 1;
	}
	return 0;
}

/* Run one request (user, password, client) and return how long its
 * answer took, in ms; the result goes to *a.  The log is reset first. */
static uint64_t
timed(struct env *e, const char *user, const char *password, const char *client,
    struct answer *a)
{
	uint64_t t0 = ev_now(e->loop);

	buf_reset(&logged);
	ask_from(e, 1, &user, &password, &client, a);
	return a->at - t0;
}

#define ck_logged(client, want) \
	ck_assert_msg(log_has(client, want), "no \"%s\" for %s in:\n%s", want, \
	    client, buf_cstr(&logged))

/*
 * Every failure waits the fixed delay (100 ms); every answer to a client
 * address with n recent failures, right or wrong, also waits the penalty
 * 400 ms * 2^(n-1), at most 1000 ms.  Failures from one address never
 * slow a login from another, whoever they were for; a success forgives
 * the failures its address made for that user only.  The delays applied
 * are read from the log lines; the wall times are lower bounds only, as
 * a loaded machine adds to them.
 */
START_TEST(test_service_delays)
{
	static const char *const par_u[] = { "bob@example.test", "alice@example.test" };
	static const char *const par_p[] = { "wrong", "right" };
	static const char *const par_c[] = { "192.0.2.66", "198.51.100.1" };
	static const char *const four_u[] = {
		"bob@example.test", "bob@example.test", "alice@example.test", "x@y",
	};
	static const char *const four_p[] = { "a", "b", "c", "d" };
	static const char *const four_c[] = {
		"203.0.113.5", "203.0.113.5", "203.0.113.5", "203.0.113.5",
	};
	const char *atk = "192.0.2.66", *home = "198.51.100.1", *net = "203.0.113.5";
	struct answer a[4];
	struct env e;
	uint64_t t;

	env_start(&e, NULL, 100, 400, 1000, getuid());
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	log_set_hook(capture_log, NULL);
	/* The first failure: the fixed delay only. */
	t = timed(&e, "alice@example.test", "wrong", atk, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_FAIL);
	ck_assert_uint_ge(t, 90);
	ck_logged(atk, "failures=1 user_failures=1 penalty_ms=0 delay_ms=100");
	/* The second: penalty 400 ms, then the fixed 100. */
	t = timed(&e, "alice@example.test", "wrong", atk, a);
	ck_assert_uint_ge(t, 490);
	ck_logged(atk, "failures=2 user_failures=2 penalty_ms=400 delay_ms=500");

	/* A third failure (800 + 100 ms) and, in flight with it, alice's
	 * right password from her own address: not held at all, although
	 * her user has two recent failures. */
	buf_reset(&logged);
	t = ev_now(e.loop);
	ask_from(&e, 2, par_u, par_p, par_c, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_FAIL);
	ck_assert_int_eq(a[1].result, AUTH_RESULT_OK);
	ck_assert_uint_ge(a[0].at - t, 890);
	ck_assert_uint_lt(a[1].at, a[0].at);
	ck_logged(atk, "failures=3 user_failures=1 penalty_ms=800 delay_ms=900");
	ck_logged(home, "delay_ms=0");
	/* Nor is a typo of hers there: the fixed delay, no penalty. */
	t = timed(&e, "alice@example.test", "typo", home, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_FAIL);
	ck_assert_uint_ge(t, 90);
	ck_logged(home, "failures=1 user_failures=1 penalty_ms=0 delay_ms=100");

	/* From the guessing address the right password waits the penalty
	 * (three failures: capped at 1000 ms), so a guesser that hangs up
	 * early learns nothing.  The success forgives that address its two
	 * failures for alice, not its one for bob. */
	t = timed(&e, "alice@example.test", "right", atk, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_OK);
	ck_assert_uint_ge(t, 990);
	ck_logged(atk, "delay_ms=1000");
	t = timed(&e, "alice@example.test", "right", atk, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_OK);
	ck_assert_uint_ge(t, 390);
	ck_logged(atk, "delay_ms=400");
	/* bob's success forgives the rest: the address is clean again. */
	t = timed(&e, "bob@example.test", "right", atk, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_OK);
	t = timed(&e, "alice@example.test", "right", atk, a);
	ck_logged(atk, "delay_ms=0");

	/* Four guesses in flight at once gain nothing: each counts as it
	 * arrives, so they wait 100, 400 + 100, 800 + 100 and 1000 (the
	 * cap) + 100 ms; and so does a fifth. */
	buf_reset(&logged);
	t = ev_now(e.loop);
	ask_from(&e, 4, four_u, four_p, four_c, a);
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(a[i].result, AUTH_RESULT_FAIL);
	ck_assert_uint_ge(a[0].at - t, 90);
	ck_assert_uint_ge(a[1].at - t, 490);
	ck_assert_uint_ge(a[2].at - t, 890);
	ck_assert_uint_ge(a[3].at - t, 1090);
	ck_logged(net, "failures=4 user_failures=1 penalty_ms=1000 delay_ms=1100");
	t = timed(&e, "bob@example.test", "e", net, a);
	ck_assert_uint_ge(t, 1090);
	ck_logged(net, "failures=5 user_failures=3 penalty_ms=1000 delay_ms=1100");
	log_set_hook(NULL, NULL);
	buf_free(&logged);
	env_stop(&e);
}
END_TEST

/* A peer with another uid is refused: its requests fail TEMP. */
START_TEST(test_service_peer_refused)
{
	static const char *const users[] = { "alice@example.test" };
	static const char *const pws[] = { "right" };
	struct answer a[1];
	struct env e;

	env_start(&e, NULL, 0, 0, 0, getuid() + 1);
	ask(&e, 1, users, pws, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
	ck_assert_uint_eq(auth_server_active(e.srv), 0);
	env_stop(&e);
}
END_TEST

/* --- User lookups -------------------------------------------------------- */

START_TEST(test_lookup_check)
{
	static const struct {
		const char *user, *canon;	/* canon NULL: refused */
	} cases[] = {
		{ "Alice@Example.TEST", "alice@example.test" },
		{ "\xc3\xa9@example.test", "\xc3\xa9@example.test" },
		{ "", NULL },
		{ "a b@c", NULL },
		{ "a\tb@c", NULL },
		{ "a\x7f@c", NULL },
	};
	char canon[AUTH_MAX_USER + 1], longuser[AUTH_MAX_USER + 2];
	const char *error;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		error = NULL;
		if (cases[i].canon == NULL) {
			ck_assert_msg(auth_lookup_check(cases[i].user, canon, &error) == -1,
			    "case %zu accepted", i);
			ck_assert_ptr_nonnull(error);
		} else {
			ck_assert_msg(auth_lookup_check(cases[i].user, canon, &error) == 0,
			    "case %zu refused: %s", i, error);
			ck_assert_str_eq(canon, cases[i].canon);
		}
	}
	memset(longuser, 'u', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	ck_assert_int_eq(auth_lookup_check(longuser, canon, &error), -1);
	longuser[AUTH_MAX_USER] = '\0';
	ck_assert_int_eq(auth_lookup_check(longuser, canon, &error), 0);
}
END_TEST

/* Every kind of entry, answered at once even with failure delays set, and
 * lookups never count as failures. */
START_TEST(test_service_lookup)
{
	static const char *const users[] = {
		"Alice@Example.Test", "bob@example.test", "off@example.test",
		"locked@example.test", "junk@example.test", "nobody@example.test",
		"a b@example.test", "nodomain",
	};
	static const struct {
		enum auth_result result;
		int found, enabled;
		const char *user, *mailbox;
	} want[] = {
		{ AUTH_RESULT_OK, 1, 1, "alice@example.test", "example.test/alice/" },
		{ AUTH_RESULT_OK, 1, 1, "bob@example.test", "custom/bob/" },
		{ AUTH_RESULT_OK, 1, 0, "off@example.test", "example.test/off/" },
		{ AUTH_RESULT_OK, 1, 0, "locked@example.test", "example.test/locked/" },
		/* A broken entry still names an account. */
		{ AUTH_RESULT_OK, 1, 0, "junk@example.test", "example.test/junk/" },
		{ AUTH_RESULT_OK, 0, 0, "nobody@example.test", "" },
		{ AUTH_RESULT_OK, 0, 0, "", "" },
		/* An entry that cannot have a mailbox: a configuration error. */
		{ AUTH_RESULT_TEMP, 0, 0, "(null)", "(null)" },
	};
	static const char *const u1[] = { "alice@example.test" };
	static const char *const wrong[] = { "wrong" };
	struct answer a[sizeof(users) / sizeof(users[0])];
	struct env e;
	uint64_t t0;

	env_start(&e, NULL, 1000, 1000, 1000, getuid());
	t0 = ev_now(e.loop);
	ask_lookup(&e, sizeof(users) / sizeof(users[0]), users, a);
	ck_assert_uint_lt(ev_now(e.loop) - t0, 900);
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		ck_assert_msg(a[i].result == want[i].result, "user %s: result %d",
		    users[i], a[i].result);
		ck_assert_msg(a[i].found == want[i].found && a[i].enabled == want[i].enabled,
		    "user %s: found %d enabled %d", users[i], a[i].found, a[i].enabled);
		ck_assert_str_eq(a[i].user, want[i].user);
		ck_assert_str_eq(a[i].mailbox, want[i].mailbox);
	}
	ck_assert_uint_eq(a[0].quota, 1024 * 1024);
	ck_assert_uint_eq(a[1].quota, 0);
	/* None of that counted: the first wrong password waits the first
	 * delay (1 s), not more. */
	t0 = ev_now(e.loop);
	ask(&e, 1, u1, wrong, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_FAIL);
	ck_assert_uint_lt(a[0].at - t0, 1900);
	env_stop(&e);

	/* An unreadable password map: TEMP, never "not found". */
	env_start(&e, "texthash:/nonexistent/passwd", 0, 0, 0, getuid());
	ask_lookup(&e, 1, u1, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
	env_stop(&e);

	/* A refused peer learns nothing. */
	env_start(&e, NULL, 0, 0, 0, getuid() + 1);
	ask_lookup(&e, 1, u1, a);
	ck_assert_int_eq(a[0].result, AUTH_RESULT_TEMP);
	env_stop(&e);
}
END_TEST

static Suite *
auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("check");
	TCase *ts = tcase_create("service");

	tcase_add_test(tc, test_req_check);
	tcase_add_test(tc, test_failtab_counts);
	tcase_add_test(tc, test_failtab_bounded);
	tcase_add_test(tc, test_failtab_delay);
	tcase_add_test(tc, test_lookup_check);
	suite_add_tcase(s, tc);
	tcase_set_timeout(ts, 60);
	tcase_add_test(ts, test_service_answers);
	tcase_add_test(ts, test_service_map_missing);
	tcase_add_test(ts, test_service_delays);
	tcase_add_test(ts, test_service_peer_refused);
	tcase_add_test(ts, test_service_lookup);
	suite_add_tcase(s, ts);
	return s;
}

int
main(void)
{
	return check_run_suite(auth_suite());
}
