/*
 * Unit tests for qmgr's state file (qmgr/state.c): every record kind
 * round-trips through qs_format and qs_parse, malformed lines are
 * refused, untrusted text cannot add a line; the retry back-off doubles
 * from the minimum up to the maximum; destinations (sched.c) are interned
 * per agent and lower-cased domain and freed with their last reference;
 * and wait lists (queue.c) park and wake messages oldest first.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "config.h"
#include "qmgr.h"
#include "xalloc.h"

/* Format r, check the line, parse it back and compare. */
static void
roundtrip(const struct qs_record *r, const char *want)
{
	struct buf b = BUF_INIT;
	struct qs_record got;
	const char *error;
	char *line;

	qs_format(r, &b);
	ck_assert_str_eq(buf_cstr(&b), want);
	line = strndup(b.data, b.len - 1);
	ck_assert_int_eq(qs_parse(line, &got, &error), 0);
	ck_assert_int_eq(got.kind, r->kind);
	ck_assert_uint_eq(got.index, r->index);
	ck_assert_uint_eq(got.next_try, r->next_try);
	ck_assert_uint_eq(got.orig, r->orig);
	free(line);
	buf_free(&b);
}

START_TEST(test_roundtrip)
{
	static const struct {
		struct qs_record r;
		const char *want;
	} cases[] = {
		{ { QS_DONE, 3, 0, 0, "" }, "done 3\n" },
		{ { QS_BOUNCED, 0, 0, 0, "" }, "bounced 0\n" },
		{ { QS_DEFER, 7, 1700000000, 0, "4.4.1 relay agent not available" },
		  "defer 7 1700000000 4.4.1 relay agent not available\n" },
		{ { QS_FAIL, 1, 0, 0, "5.1.1 no such user" }, "fail 1 5.1.1 no such user\n" },
		{ { QS_RCPT, 0, 0, 2, "x@remote.test" }, "rcpt x@remote.test 2\n" },
		{ { QS_OWNER, 0, 0, 1000, "" }, "owner 1000\n" },
		{ { QS_WARNED, 0, 0, 0, "" }, "warned\n" },
		{ { QS_HOLD, 0, 0, 0, "" }, "hold\n" },
		{ { QS_RELEASE, 0, 0, 0, "" }, "release\n" },
		{ { QS_DELIVERED, 4, 0, 0, "2.0.0 delivered" }, "delivered 4 2.0.0 delivered\n" },
		{ { QS_EXPANDED, 0, 0, 0, "2.0.0 ok" }, "expanded 0 2.0.0 ok\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		roundtrip(&cases[i].r, cases[i].want);
}
END_TEST

START_TEST(test_text_parsed)
{
	struct qs_record r;
	const char *error;

	ck_assert_int_eq(qs_parse("defer 2 99 4.2.2 over quota", &r, &error), 0);
	ck_assert_str_eq(r.text, "4.2.2 over quota");
	ck_assert_int_eq(qs_parse("rcpt a@b.test 0", &r, &error), 0);
	ck_assert_uint_eq(strcspn(r.text, " "), strlen("a@b.test"));
}
END_TEST

START_TEST(test_malformed)
{
	static const char *const bad[] = {
		"", "done", "done ", "done x", "done 1 2", "done -1", "done 4294967296",
		"defer 1", "defer 1 x err", "fail", "bounced", "rcpt", "rcpt a@b",
		"rcpt  1", "owner", "owner x", "warned 1", "hold x", "frobnicate 1",
		"done 99999999999999999999999", "fail 1 bad\tbyte", "done 1\r",
		"delivered", "delivered x ok", "expanded", "expanded -1 ok",
	};
	struct qs_record r;
	const char *error = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(qs_parse(bad[i], &r, &error) == -1, "accepted \"%s\"", bad[i]);
		ck_assert_ptr_nonnull(error);
	}
}
END_TEST

/* Control bytes in an agent's text never make a second line. */
START_TEST(test_sanitized)
{
	struct qs_record r = { QS_FAIL, 0, 0, 0, "5.0.0 x\ndone 1\r" };
	struct qs_record a = { QS_RCPT, 0, 0, 4, "a b@c" };
	struct buf b = BUF_INIT;
	char big[2000];

	qs_format(&r, &b);
	ck_assert_str_eq(buf_cstr(&b), "fail 0 5.0.0 x?done 1?\n");
	buf_reset(&b);
	qs_format(&a, &b);
	ck_assert_str_eq(buf_cstr(&b), "rcpt a?b@c 4\n");
	buf_reset(&b);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r.text = big;
	qs_format(&r, &b);
	ck_assert_uint_lt(b.len, 500);
	buf_free(&b);
}
END_TEST

START_TEST(test_backoff)
{
	static const struct {
		uint64_t min, max;
		unsigned attempts;
		uint64_t want;
	} cases[] = {
		{ 300, 3600, 0, 300 }, { 300, 3600, 1, 300 }, { 300, 3600, 2, 600 },
		{ 300, 3600, 3, 1200 }, { 300, 3600, 4, 2400 }, { 300, 3600, 5, 3600 },
		{ 300, 3600, 60000, 3600 }, { 1, 1, 10, 1 }, { 1, 8, 4, 8 },
		{ 0, 0, 3, 1 }, { 10, 5, 2, 10 },
		{ UINT64_MAX / 2 + 1, UINT64_MAX, 3, UINT64_MAX },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(qmgr_backoff(cases[i].min, cases[i].max, cases[i].attempts) ==
		    cases[i].want, "case %zu", i);
}
END_TEST

/* A scheduler without a queue: agents, destinations, a loop. */
static struct qmgr *
sched_new(void)
{
	struct qmgr *q = xcalloc(1, sizeof(*q));

	q->loop = ev_loop_new();
	q->set.run_dir = "/nonexistent";
	for (int i = 0; i < QMGR_AGENTS; i++)
		q->set.agent_limit[i] = 10;
	q->set.domain_limit = 2;
	sched_init(q);
	return q;
}

static void
sched_done(struct qmgr *q)
{
	sched_free(q);
	ck_assert_uint_eq(q->ndests, 0);
	free(q->dests);
	ev_loop_free(&q->loop);
	free(q);
}

START_TEST(test_dests)
{
	struct qmgr *q = sched_new();
	struct agent *local = &q->agents[QMGR_AGENT_LOCAL];
	struct agent *relay = &q->agents[QMGR_AGENT_RELAY];
	struct dest *a = sched_dest_get(q, relay, "x@Big.Example");
	struct dest *b = sched_dest_get(q, relay, "y@big.example");
	struct dest *c = sched_dest_get(q, local, "x@big.example");
	struct dest *n = sched_dest_get(q, local, "postmaster");
	struct dest *many[1000];
	char addr[64];

	ck_assert_ptr_eq(a, b);
	ck_assert_uint_eq(a->refs, 2);
	ck_assert_str_eq(a->domain, "big.example");
	ck_assert_ptr_eq(a->agent, relay);
	ck_assert_ptr_ne(a, c);
	ck_assert_ptr_eq(c->agent, local);
	ck_assert_str_eq(n->domain, "");
	ck_assert_uint_eq(q->ndests, 3);
	/* The hash grows; every domain stays findable. */
	for (int i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "u@d%d.test", i);
		many[i] = sched_dest_get(q, i % 2 ? relay : local, addr);
	}
	ck_assert_uint_eq(q->ndests, 1003);
	for (int i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "v@D%d.TEST", i);
		ck_assert_ptr_eq(sched_dest_get(q, i % 2 ? relay : local, addr), many[i]);
		sched_dest_put(q, many[i]);
		sched_dest_put(q, many[i]);
	}
	ck_assert_uint_eq(q->ndests, 3);
	sched_dest_put(q, a);
	ck_assert_uint_eq(q->ndests, 3);
	sched_dest_put(q, b);
	sched_dest_put(q, c);
	sched_dest_put(q, n);
	sched_done(q);
}
END_TEST

/* Routing through the agent table: local's domains (and addresses with
 * no domain) to local, the rest to the relay agent.  With no domain map,
 * only addresses without a domain are local. */
START_TEST(test_route)
{
	static const struct {
		const char *addr;
		enum qmgr_agent_id want;
	} cases[] = {
		{ "postmaster", QMGR_AGENT_LOCAL },
		{ "u@example.test", QMGR_AGENT_LOCAL },
		{ "u@EXAMPLE.test", QMGR_AGENT_LOCAL },
		{ "u@sub.example.test", QMGR_AGENT_RELAY },
		{ "u@other.test", QMGR_AGENT_RELAY },
		{ "a@b@example.test", QMGR_AGENT_LOCAL },
	};
	struct qmgr *q = sched_new();
	char dir[] = "/tmp/test_qmgr.XXXXXX", path[64], spec[80];
	struct agent *a, *none = NULL;
	const char *error;
	FILE *f;

	a = none;
	ck_assert_int_eq(sched_route(q, "postmaster", &a, &error), 0);
	ck_assert_ptr_eq(a, &q->agents[QMGR_AGENT_LOCAL]);
	ck_assert_int_eq(sched_route(q, "u@example.test", &a, &error), 0);
	ck_assert_ptr_eq(a, &q->agents[QMGR_AGENT_RELAY]);

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/domains", dir);
	snprintf(spec, sizeof(spec), "texthash:%s", path);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("example.test x\n", f);
	fclose(f);
	ck_assert_msg(map_open(spec, &q->domains, &error) == 0, "%s", error);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a = none;
		ck_assert_int_eq(sched_route(q, cases[i].addr, &a, &error), 0);
		ck_assert_msg(a == &q->agents[cases[i].want], "%s", cases[i].addr);
		ck_assert_int_eq(a->id, cases[i].want);
		ck_assert_ptr_eq(a->def, &sched_agents[cases[i].want]);
	}
	map_close(&q->domains);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	sched_done(q);
}
END_TEST

/* Every row names a config key for its limit, which the scheduler takes
 * from the settings; the defaults are today's. */
START_TEST(test_agent_table)
{
	static const long long defaults[QMGR_AGENTS] = {
		[QMGR_AGENT_LOCAL] = 10, [QMGR_AGENT_RELAY] = 20,
	};
	struct config *cfg;
	struct buf err = BUF_INIT;
	struct qmgr *q;

	ck_assert_int_eq(config_parse("empty", "", 0, &cfg, &err), 1);
	q = xcalloc(1, sizeof(*q));
	q->loop = ev_loop_new();
	q->set.run_dir = "/run/x";
	for (int i = 0; i < QMGR_AGENTS; i++) {
		ck_assert_int_eq(cfg_int(config_global(cfg), sched_agents[i].limit_key),
		    defaults[i]);
		q->set.agent_limit[i] = (unsigned)(i + 3);
	}
	sched_init(q);
	for (int i = 0; i < QMGR_AGENTS; i++) {
		ck_assert_uint_eq(q->agents[i].limit, (unsigned)(i + 3));
		ck_assert_int_eq(q->agents[i].id, i);
		ck_assert_str_eq(q->agents[i].path, err_fmt("/run/x/%s",
		    sched_agents[i].socket));
		ck_assert_ptr_nonnull(strstr(sched_agents[i].unavailable,
		    sched_agents[i].name));
	}
	/* Only the relay agent's absence never ages a recipient out. */
	ck_assert_int_eq(sched_agents[QMGR_AGENT_LOCAL].down_never_expires, 0);
	ck_assert_int_eq(sched_agents[QMGR_AGENT_RELAY].down_never_expires, 1);
	config_free(&cfg);
	buf_free(&err);
	sched_done(q);
}
END_TEST

START_TEST(test_park_wake)
{
	struct qmgr *q = sched_new();
	struct qmsg m[4];
	struct waitq w = { NULL, NULL };

	memset(m, 0, sizeof(m));
	for (int i = 0; i < 4; i++)
		qmgr_park(q, &m[i], &w);
	ck_assert_ptr_eq(w.head, &m[0]);
	ck_assert_ptr_eq(w.tail, &m[3]);
	ck_assert_int_eq(m[2].where, QM_PARKED);
	/* Taken off the middle of the list. */
	qmgr_ready_del(q, &m[1]);
	ck_assert_int_eq(m[1].where, QM_NOWHERE);
	ck_assert_ptr_eq(m[0].rnext, &m[2]);
	ck_assert_ptr_eq(m[2].rprev, &m[0]);
	/* Oldest first, into the ring. */
	qmgr_wake(q, &w, 2);
	ck_assert_ptr_eq(q->ready, &m[0]);
	ck_assert_ptr_eq(m[0].rnext, &m[2]);
	ck_assert_int_eq(m[2].where, QM_READY);
	ck_assert_ptr_eq(w.head, &m[3]);
	ck_assert_ptr_eq(w.tail, &m[3]);
	/* Parking a message in the ring takes it out of the ring. */
	qmgr_park(q, &m[0], &w);
	ck_assert_ptr_eq(q->ready, &m[2]);
	ck_assert_ptr_eq(w.tail, &m[0]);
	qmgr_ready_add(q, &m[3]);
	ck_assert_ptr_eq(w.head, &m[0]);
	qmgr_wake(q, &w, 5);
	ck_assert_ptr_null(w.head);
	ck_assert_ptr_null(w.tail);
	for (int i = 0; i < 4; i++)
		qmgr_ready_del(q, &m[i]);
	ck_assert_ptr_null(q->ready);
	sched_done(q);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("qmgr");
	TCase *tc = tcase_create("state");

	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_text_parsed);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_sanitized);
	tcase_add_test(tc, test_backoff);
	tcase_add_test(tc, test_dests);
	tcase_add_test(tc, test_route);
	tcase_add_test(tc, test_agent_table);
	tcase_add_test(tc, test_park_wake);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
