/*
 * Unit tests for lib/mail/dsn.c: the who-gets-a-report decisions as a table
 * (NOTIFY x action x sender), and generated reports checked for their
 * exact structure: one failure, mixed actions with ORCPT and ENVID,
 * RET=HDRS, RET=FULL over the cap, UTF-8 addresses, a body that carries
 * the boundary, hostile diagnostics, and the error paths.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "check_util.h"
#include "dsn.h"
#include "smtp.h"
#include "xalloc.h"

#define NOW	((time_t)1700000000)
#define DB	"double-bounce@mx.example.test"

/* --- decisions ------------------------------------------------------ */

static const struct {
	const char *sender;
	unsigned notify;
	enum dsn_action action;
	int delay_warning;
	enum dsn_route want;
} routes[] = {
	/* NOTIFY absent: failures; delays only with warnings on. */
	{ "a@x", 0, DSN_ACTION_FAILED, 0, DSN_TO_SENDER },
	{ "a@x", 0, DSN_ACTION_DELAYED, 0, DSN_NONE },
	{ "a@x", 0, DSN_ACTION_DELAYED, 1, DSN_TO_SENDER },
	{ "a@x", 0, DSN_ACTION_DELIVERED, 1, DSN_NONE },
	{ "a@x", 0, DSN_ACTION_RELAYED, 1, DSN_NONE },
	{ "a@x", 0, DSN_ACTION_EXPANDED, 1, DSN_NONE },
	/* NOTIFY=NEVER: nothing at all. */
	{ "a@x", SMTP_NOTIFY_NEVER, DSN_ACTION_FAILED, 1, DSN_NONE },
	{ "a@x", SMTP_NOTIFY_NEVER, DSN_ACTION_DELAYED, 1, DSN_NONE },
	{ "a@x", SMTP_NOTIFY_NEVER, DSN_ACTION_DELIVERED, 1, DSN_NONE },
	/* Explicit classes. */
	{ "a@x", SMTP_NOTIFY_FAILURE, DSN_ACTION_FAILED, 0, DSN_TO_SENDER },
	{ "a@x", SMTP_NOTIFY_FAILURE, DSN_ACTION_DELAYED, 1, DSN_NONE },
	{ "a@x", SMTP_NOTIFY_FAILURE, DSN_ACTION_DELIVERED, 1, DSN_NONE },
	{ "a@x", SMTP_NOTIFY_DELAY, DSN_ACTION_FAILED, 1, DSN_NONE },
	{ "a@x", SMTP_NOTIFY_DELAY, DSN_ACTION_DELAYED, 1, DSN_TO_SENDER },
	{ "a@x", SMTP_NOTIFY_DELAY, DSN_ACTION_DELAYED, 0, DSN_NONE },
	{ "a@x", SMTP_NOTIFY_SUCCESS, DSN_ACTION_DELIVERED, 0, DSN_TO_SENDER },
	{ "a@x", SMTP_NOTIFY_SUCCESS, DSN_ACTION_RELAYED, 0, DSN_TO_SENDER },
	{ "a@x", SMTP_NOTIFY_SUCCESS, DSN_ACTION_EXPANDED, 0, DSN_TO_SENDER },
	{ "a@x", SMTP_NOTIFY_SUCCESS, DSN_ACTION_FAILED, 1, DSN_NONE },
	{ "a@x", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY,
	    DSN_ACTION_FAILED, 0, DSN_TO_SENDER },
	/* The null sender: failures go to the postmaster, nothing else. */
	{ "", 0, DSN_ACTION_FAILED, 1, DSN_TO_POSTMASTER },
	{ "", SMTP_NOTIFY_NEVER, DSN_ACTION_FAILED, 1, DSN_TO_POSTMASTER },
	{ "", 0, DSN_ACTION_DELAYED, 1, DSN_NONE },
	{ "", SMTP_NOTIFY_SUCCESS, DSN_ACTION_DELIVERED, 1, DSN_NONE },
	/* A postmaster notice that fails: dropped, never a loop. */
	{ DB, 0, DSN_ACTION_FAILED, 1, DSN_NONE },
	{ "Double-Bounce@MX.example.test", 0, DSN_ACTION_FAILED, 1, DSN_NONE },
	{ DB, SMTP_NOTIFY_SUCCESS, DSN_ACTION_DELIVERED, 1, DSN_NONE },
};

START_TEST(test_route_table)
{
	ck_assert_int_eq(dsn_route(routes[_i].sender, DB, routes[_i].notify,
	    routes[_i].action, routes[_i].delay_warning), routes[_i].want);
}
END_TEST

START_TEST(test_route_without_double_bounce)
{
	ck_assert_int_eq(dsn_route(DB, NULL, 0, DSN_ACTION_FAILED, 0), DSN_TO_SENDER);
	ck_assert_int_eq(dsn_notify_wants(0, DSN_ACTION_FAILED, 0), 1);
	ck_assert_str_eq(dsn_action_name(DSN_ACTION_EXPANDED), "expanded");
}
END_TEST

/* --- generation ----------------------------------------------------- */

/* A sink into a struct buf; fails after `fail_after` calls if set. */
struct sink {
	struct buf b;
	int calls, fail_after;
};

static int
sink_write(void *ctx, const void *p, size_t n)
{
	struct sink *s = ctx;

	if (s->fail_after > 0 && ++s->calls >= s->fail_after)
		return -1;
	return buf_append(&s->b, p, n);
}

/* An fd holding prefix + msg; the message starts after the prefix. */
static int
msg_fd(const char *msg, size_t len, off_t *off_r)
{
	FILE *f = tmpfile();
	int fd;

	ck_assert_ptr_nonnull(f);
	fd = dup(fileno(f));
	fclose(f);
	ck_assert_int_eq(write(fd, "ENVELOPE\n\n", 10), 10);
	ck_assert_int_eq(write(fd, msg, len), (ssize_t)len);
	*off_r = 10;
	return fd;
}

/* A test case's world: an envelope, its report, the output. */
struct world {
	struct envelope env;
	struct dsn_rcpt rr[4];
	struct dsn_request req;
	struct sink out;
	struct dsn_result res;
	int fd;
};

static void
world_init(struct world *w, const char *sender, const char *msg, int ret)
{
	off_t off;

	memset(w, 0, sizeof(*w));
	snprintf(w->env.id, sizeof(w->env.id), "4Xq7Zabc");
	w->env.arrival_us = (uint64_t)(NOW - 3600) * 1000000;
	w->env.sender = xstrdup(sender);
	w->env.ret = ret;
	w->fd = msg_fd(msg, strlen(msg), &off);
	w->req.env = &w->env;
	w->req.rcpts = w->rr;
	w->req.reporting_mta = "mx.example.test";
	w->req.now = NOW;
	w->req.msg_fd = w->fd;
	w->req.msg_offset = off;
	w->req.msg_len = strlen(msg);
	w->req.boundary = "BOUNDARY";
	buf_init(&w->out.b, 0);
}

/* Add a recipient and the outcome to report for it. */
static void
world_rcpt(struct world *w, const char *addr, unsigned notify, const char *orcpt,
    enum dsn_action action, const char *status, const char *diag)
{
	size_t i = w->req.nrcpts;

	envelope_add_rcpt(&w->env, addr, notify, orcpt);
	/* The recipient array may move: point every entry again. */
	for (size_t k = 0; k < i; k++)
		w->rr[k].rcpt = &w->env.rcpts[k];
	w->rr[i].rcpt = &w->env.rcpts[i];
	w->rr[i].action = action;
	w->rr[i].status = status;
	w->rr[i].diagnostic = diag;
	w->rr[i].diag_smtp = 1;
	w->req.nrcpts = i + 1;
}

static const char *
world_run(struct world *w)
{
	const char *error = NULL;

	ck_assert_int_eq(dsn_write(&w->req, sink_write, &w->out, &w->res, &error), 0);
	ck_assert_uint_eq(w->res.size, w->out.b.len);
	ck_assert_ptr_null(memchr(w->out.b.data, '\r', w->out.b.len));
	return buf_cstr(&w->out.b);
}

static void
world_free(struct world *w)
{
	envelope_free(&w->env);
	close(w->fd);
	buf_free(&w->out.b);
}

/* Number of lines in s that start with prefix. */
static int
count_lines(const char *s, const char *prefix)
{
	size_t pl = strlen(prefix);
	int n = 0;

	for (const char *l = s; l != NULL && *l != '\0'; ) {
		if (strncmp(l, prefix, pl) == 0)
			n++;
		l = strchr(l, '\n');
		if (l != NULL)
			l++;
	}
	return n;
}

static const char msg1[] =
	"From: alice@example.org\nSubject: hi\n\nHello.\n";

START_TEST(test_one_failed_exact)
{
	struct world w;
	const char *o;

	world_init(&w, "alice@example.org", msg1, SMTP_RET_NONE);
	world_rcpt(&w, "bob@example.net", 0, NULL, DSN_ACTION_FAILED, "5.1.1",
	    "550 5.1.1 no such user");
	w.rr[0].remote_mta = "mx.example.net";
	w.rr[0].last_attempt = NOW - 60;
	o = world_run(&w);
	ck_assert_ptr_nonnull(strstr(o,
	    "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\n"
	    "To: <alice@example.org>\n"
	    "Subject: Undelivered Mail Returned to Sender\n"
	    "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	    "Message-ID: <20231114221320.4Xq7Zabc."));
	ck_assert_ptr_nonnull(strstr(o, "@mx.example.test>\n"
	    "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\n"
	    " boundary=\"BOUNDARY\"\n\n"));
	ck_assert_ptr_nonnull(strstr(o,
	    "\n--BOUNDARY\nContent-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; mx.example.test\n"
	    "Arrival-Date: Tue, 14 Nov 2023 21:13:20 +0000\n"
	    "\n"
	    "Final-Recipient: rfc822; bob@example.net\n"
	    "Action: failed\n"
	    "Status: 5.1.1\n"
	    "Remote-MTA: dns; mx.example.net\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 no such user\n"
	    "Last-Attempt-Date: Tue, 14 Nov 2023 22:12:20 +0000\n"
	    "\n--BOUNDARY\nContent-Description: Undelivered Message\n"
	    "Content-Type: message/rfc822\n\n"
	    "From: alice@example.org\nSubject: hi\n\nHello.\n"
	    "\n--BOUNDARY--\n"));
	ck_assert_int_eq(count_lines(o, "--BOUNDARY"), 4);
	ck_assert_ptr_nonnull(strstr(o, "\n<bob@example.net>\n"
	    "    Action: failed, status 5.1.1\n"));
	ck_assert_int_eq(w.res.returned, DSN_RETURNED_FULL);
	ck_assert_int_eq(w.res.body_8bit, 0);
	ck_assert_int_eq(w.res.smtputf8, 0);
	world_free(&w);
}
END_TEST

START_TEST(test_mixed_orcpt_envid)
{
	struct world w;
	const char *o;

	world_init(&w, "alice@example.org", msg1, SMTP_RET_HDRS);
	w.env.envid = xstrdup("id+1 x");
	world_rcpt(&w, "a@example.net", 0, "rfc822;orig@example.com",
	    DSN_ACTION_FAILED, "4.4.7", "expired");
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_DELAYED, NULL, NULL);
	w.rr[1].retry_until = NOW + 86400;
	world_rcpt(&w, "c@example.net", SMTP_NOTIFY_SUCCESS, "utf-8;c=1@example.net",
	    DSN_ACTION_DELIVERED, "garbage", NULL);
	o = world_run(&w);
	ck_assert_ptr_nonnull(strstr(o, "Original-Envelope-Id: id+2B1+20x\n"));
	ck_assert_ptr_nonnull(strstr(o, "\nOriginal-Recipient: rfc822; orig@example.com\n"
	    "Final-Recipient: rfc822; a@example.net\nAction: failed\nStatus: 5.4.7\n"
	    "Diagnostic-Code: smtp; expired\n"));
	ck_assert_ptr_nonnull(strstr(o, "\nFinal-Recipient: rfc822; b@example.net\n"
	    "Action: delayed\nStatus: 4.0.0\n"
	    "Will-Retry-Until: Wed, 15 Nov 2023 22:13:20 +0000\n"));
	ck_assert_ptr_nonnull(strstr(o,
	    "\nOriginal-Recipient: utf-8; c\\x{3D}1@example.net\n"
	    "Final-Recipient: rfc822; c@example.net\nAction: delivered\nStatus: 2.0.0\n"));
	ck_assert_int_eq(count_lines(o, "Final-Recipient:"), 3);
	/* RET=HDRS: headers only, without the empty line or the body. */
	ck_assert_ptr_nonnull(strstr(o, "Content-Type: text/rfc822-headers\n\n"
	    "From: alice@example.org\nSubject: hi\n\n--BOUNDARY--\n"));
	ck_assert_ptr_null(strstr(o, "Hello."));
	ck_assert_int_eq(w.res.returned, DSN_RETURNED_HEADERS);
	world_free(&w);
}
END_TEST

START_TEST(test_full_over_cap)
{
	struct world w;
	struct buf big = BUF_INIT;
	const char *o;

	ck_assert_int_eq(buf_puts(&big, "Subject: big\nX-A: 1\n\n"), 0);
	for (int i = 0; i < 5000; i++)
		ck_assert_int_eq(buf_puts(&big, "0123456789012345678901234567890\n"), 0);
	world_init(&w, "alice@example.org", buf_cstr(&big), SMTP_RET_FULL);
	w.req.return_max = 4096;
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.2.3", NULL);
	o = world_run(&w);
	ck_assert_int_eq(w.res.returned, DSN_RETURNED_HEADERS);
	ck_assert_ptr_nonnull(strstr(o, "text/rfc822-headers\n\nSubject: big\nX-A: 1\n"
	    "\n--BOUNDARY--\n"));
	ck_assert_uint_lt(w.out.b.len, 3000);
	/* Within the cap it all comes back. */
	world_free(&w);
	world_init(&w, "alice@example.org", buf_cstr(&big), SMTP_RET_FULL);
	w.req.return_max = big.len;
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.2.3", NULL);
	(void)world_run(&w);
	ck_assert_int_eq(w.res.returned, DSN_RETURNED_FULL);
	ck_assert_uint_gt(w.out.b.len, big.len);
	world_free(&w);
	buf_free(&big);
}
END_TEST

/* A header section larger than the cap is cut after a whole line. */
START_TEST(test_headers_over_cap)
{
	struct world w;
	const char *o;

	world_init(&w, "alice@example.org",
	    "A: 111111111\nB: 222222222\nC: 333333333\n\nbody\n", SMTP_RET_HDRS);
	w.req.return_max = 30;
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.0.0", NULL);
	o = world_run(&w);
	ck_assert_ptr_nonnull(strstr(o, "text/rfc822-headers\n\nA: 111111111\n"
	    "B: 222222222\n\n--BOUNDARY--\n"));
	world_free(&w);
}
END_TEST

START_TEST(test_utf8)
{
	struct world w;
	const char *o;

	world_init(&w, "\xc3\xa5lice@example.org", "Subject: gr\xc3\xbc\xc3\x9f" "e\n\nx\n",
	    SMTP_RET_NONE);
	w.env.smtputf8 = 1;
	world_rcpt(&w, "j\xc3\xb6" "e@b\xc3\xbc" "cher.example", 0,
	    "utf-8;j\xc3\xb6" "e+x@b\xc3\xbc" "cher.example", DSN_ACTION_FAILED,
	    "5.1.1", "bad \xff byte");
	o = world_run(&w);
	ck_assert_ptr_nonnull(strstr(o, "To: <\xc3\xa5lice@example.org>\n"));
	ck_assert_ptr_nonnull(strstr(o,
	    "Original-Recipient: utf-8; j\\x{F6}e\\x{2B}x@b\\x{FC}cher.example\n"
	    "Final-Recipient: utf-8; j\\x{F6}e@b\\x{FC}cher.example\n"));
	ck_assert_ptr_nonnull(strstr(o, "Diagnostic-Code: smtp; bad \\xFF byte\n"));
	ck_assert_ptr_nonnull(strstr(o, "\n<j\xc3\xb6" "e@b\xc3\xbc" "cher.example>\n"));
	ck_assert_ptr_nonnull(strstr(o, "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: 8bit\n"));
	ck_assert_int_eq(w.res.smtputf8, 1);
	ck_assert_int_eq(w.res.body_8bit, 1);
	world_free(&w);
}
END_TEST

START_TEST(test_boundary_in_body)
{
	struct world w;
	const char *o;

	world_init(&w, "alice@example.org",
	    "Subject: x\n\n--BOUNDARY\n--BOUNDARY.1--\nend\n", SMTP_RET_FULL);
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.1.1", NULL);
	o = world_run(&w);
	/* BOUNDARY and BOUNDARY.1 are taken; BOUNDARY.2 is not. */
	ck_assert_ptr_nonnull(strstr(o, " boundary=\"BOUNDARY.2\"\n"));
	ck_assert_int_eq(count_lines(o, "--BOUNDARY.2"), 4);
	world_free(&w);
}
END_TEST

START_TEST(test_random_boundary)
{
	struct world w;
	const char *o, *b;

	world_init(&w, "alice@example.org", msg1, SMTP_RET_NONE);
	w.req.boundary = NULL;
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.1.1", NULL);
	o = world_run(&w);
	b = strstr(o, " boundary=\"=_postern_");
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b[21 + 32], '"');
	world_free(&w);
}
END_TEST

/* Untrusted strings cannot add header lines or part delimiters. */
START_TEST(test_hostile_strings)
{
	struct world w;
	const char *o;

	world_init(&w, "alice@example.org\nBcc: x@y", msg1, SMTP_RET_NONE);
	world_rcpt(&w, "b@example.net\r\nX-Evil: 1", 0, "rfc822;o\n--BOUNDARY",
	    DSN_ACTION_FAILED, "5.1.1\nX: y", "550 no\r\n\r\n--BOUNDARY--\nBcc: v@x");
	w.rr[0].remote_mta = "mx\n--BOUNDARY";
	o = world_run(&w);
	ck_assert_int_eq(count_lines(o, "Bcc"), 0);
	ck_assert_int_eq(count_lines(o, "X-Evil"), 0);
	ck_assert_int_eq(count_lines(o, "X: "), 0);
	ck_assert_int_eq(count_lines(o, "--"), 4);
	ck_assert_ptr_nonnull(strstr(o, "Status: 5.0.0\n"));
	world_free(&w);
}
END_TEST

/* Long diagnostics are folded and capped; no line passes 998. */
START_TEST(test_long_diagnostic)
{
	struct world w;
	struct buf d = BUF_INIT;
	const char *o, *l;

	for (int i = 0; i < 400; i++)
		ck_assert_int_eq(buf_puts(&d, "word "), 0);
	for (int i = 0; i < 400; i++)
		ck_assert_int_eq(buf_puts(&d, "\x01\x02"), 0);
	world_init(&w, "alice@example.org", msg1, SMTP_RET_NONE);
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.1.1",
	    buf_cstr(&d));
	o = world_run(&w);
	for (l = o; (l = strchr(l, '\n')) != NULL; l++) {
		const char *e = strchr(l + 1, '\n');

		if (e != NULL)
			ck_assert_int_le(e - l - 1, 998);
	}
	ck_assert_ptr_nonnull(strstr(o, "Diagnostic-Code: smtp; word word"));
	ck_assert_ptr_nonnull(strstr(o, "...\n"));
	world_free(&w);
	buf_free(&d);
}
END_TEST

START_TEST(test_errors)
{
	struct world w;
	const char *error = NULL;

	world_init(&w, "", msg1, SMTP_RET_NONE);
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.1.1", NULL);
	/* The null sender gets nothing. */
	ck_assert_int_eq(dsn_write(&w.req, sink_write, &w.out, &w.res, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "null sender"));
	/* ...but a postmaster notice can be written. */
	w.req.to = "postmaster@mx.example.test";
	ck_assert_int_eq(dsn_write(&w.req, sink_write, &w.out, &w.res, &error), 0);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&w.out.b), "(the null sender)"));
	/* A bad host name. */
	w.req.reporting_mta = "mx\nX: y";
	ck_assert_int_eq(dsn_write(&w.req, sink_write, &w.out, &w.res, &error), -1);
	w.req.reporting_mta = "mx.example.test";
	/* A message shorter than claimed. */
	w.req.msg_len += 100;
	ck_assert_int_eq(dsn_write(&w.req, sink_write, &w.out, &w.res, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "shorter"));
	w.req.msg_len -= 100;
	/* A sink that fails. */
	w.out.fail_after = 1;
	ck_assert_int_eq(dsn_write(&w.req, sink_write, &w.out, &w.res, &error), -1);
	ck_assert_str_eq(error, "cannot write the report");
	/* No recipient. */
	w.req.nrcpts = 0;
	ck_assert_int_eq(dsn_write(&w.req, sink_write, &w.out, &w.res, &error), -1);
	world_free(&w);
}
END_TEST

/* RET=FULL asks for the message in failure reports (RFC 3461 4.3): a
 * report of successes only returns the headers; with a failure in it,
 * and in a delay warning, the whole message. */
START_TEST(test_success_returns_headers)
{
	static const struct {
		int ret;
		enum dsn_action a1, a2;
		enum dsn_returned want;
	} cases[] = {
		{ SMTP_RET_FULL, DSN_ACTION_DELIVERED, DSN_ACTION_DELIVERED, DSN_RETURNED_HEADERS },
		{ SMTP_RET_FULL, DSN_ACTION_EXPANDED, DSN_ACTION_RELAYED, DSN_RETURNED_HEADERS },
		{ SMTP_RET_NONE, DSN_ACTION_DELIVERED, DSN_ACTION_DELIVERED, DSN_RETURNED_HEADERS },
		{ SMTP_RET_FULL, DSN_ACTION_DELIVERED, DSN_ACTION_FAILED, DSN_RETURNED_FULL },
		{ SMTP_RET_NONE, DSN_ACTION_DELIVERED, DSN_ACTION_FAILED, DSN_RETURNED_FULL },
		{ SMTP_RET_FULL, DSN_ACTION_DELAYED, DSN_ACTION_DELIVERED, DSN_RETURNED_FULL },
		{ SMTP_RET_HDRS, DSN_ACTION_FAILED, DSN_ACTION_FAILED, DSN_RETURNED_HEADERS },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct world w;
		const char *o;

		world_init(&w, "alice@example.org", msg1, cases[i].ret);
		world_rcpt(&w, "a@example.net", SMTP_NOTIFY_SUCCESS, NULL, cases[i].a1,
		    NULL, NULL);
		world_rcpt(&w, "b@example.net", SMTP_NOTIFY_SUCCESS, NULL, cases[i].a2,
		    NULL, NULL);
		o = world_run(&w);
		ck_assert_msg(w.res.returned == cases[i].want, "case %zu", i);
		ck_assert_int_eq(strstr(o, "Hello.") != NULL,
		    cases[i].want == DSN_RETURNED_FULL);
		world_free(&w);
	}
}
END_TEST

/* No message to return: two parts, and dsn_write_fd() works. */
START_TEST(test_no_content_fd)
{
	struct world w;
	const char *error = NULL;
	char out[8192];
	int pfd[2];
	ssize_t n;

	world_init(&w, "alice@example.org", msg1, SMTP_RET_FULL);
	world_rcpt(&w, "b@example.net", 0, NULL, DSN_ACTION_FAILED, "5.1.1", NULL);
	w.req.msg_fd = -1;
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(dsn_write_fd(&w.req, pfd[1], &w.res, &error), 0);
	close(pfd[1]);
	n = read(pfd[0], out, sizeof(out) - 1);
	close(pfd[0]);
	ck_assert_int_gt(n, 0);
	out[n] = '\0';
	ck_assert_int_eq(count_lines(out, "--BOUNDARY"), 3);
	ck_assert_ptr_null(strstr(out, "rfc822\n"));
	ck_assert_int_eq(w.res.returned, DSN_RETURNED_NONE);
	world_free(&w);
}
END_TEST

static Suite *
dsn_suite(void)
{
	Suite *s = suite_create("dsn");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_route_table, 0,
	    (int)(sizeof(routes) / sizeof(routes[0])));
	tcase_add_test(tc, test_route_without_double_bounce);
	tcase_add_test(tc, test_one_failed_exact);
	tcase_add_test(tc, test_mixed_orcpt_envid);
	tcase_add_test(tc, test_full_over_cap);
	tcase_add_test(tc, test_headers_over_cap);
	tcase_add_test(tc, test_utf8);
	tcase_add_test(tc, test_boundary_in_body);
	tcase_add_test(tc, test_random_boundary);
	tcase_add_test(tc, test_hostile_strings);
	tcase_add_test(tc, test_long_diagnostic);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_no_content_fd);
	tcase_add_test(tc, test_success_returns_headers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(dsn_suite());
}
