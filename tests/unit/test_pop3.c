/*
 * Unit tests for pop3d/pop3proto.c: the POP3 command parser and the
 * per-command checks, driven from memory.  Tables of {line, state,
 * expected verb / argument / refusal}; the length limits are tested at
 * and just past each limit.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "pop3proto.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Parse a copy of text (length n) into *c.  Returns pop3_parse's result. */
static int
parse_n(const char *text, size_t n, struct pop3_cmd *c, struct pop3_refusal *r,
    char *buf, size_t bufsize)
{
	ck_assert_uint_lt(n, bufsize);
	memcpy(buf, text, n);
	buf[n] = '\0';
	return pop3_parse(buf, n, c, r);
}

/* A session view in state st with nmsgs messages, none deleted. */
static struct pop3_view
view(enum pop3_state st, size_t nmsgs, const unsigned char *deleted)
{
	struct pop3_view v;

	memset(&v, 0, sizeof(v));
	v.state = st;
	v.tls_available = 1;
	v.plaintext_ok = 1;
	v.nmsgs = nmsgs;
	v.deleted = deleted;
	return v;
}

START_TEST(test_parse_table)
{
	static const struct {
		const char *line;
		int ok;
		enum pop3_verb verb;
		const char *arg;	/* USER/PASS argument, or NULL */
		int has_msg;
		uint32_t msg;
		int64_t lines;
	} t[] = {
		{ "STAT", 0, POP3_STAT, NULL, 0, 0, -1 },
		{ "stat", 0, POP3_STAT, NULL, 0, 0, -1 },
		{ "StAt  ", 0, POP3_STAT, NULL, 0, 0, -1 },
		{ "STAT 1", -1, POP3_STAT, NULL, 0, 0, -1 },
		{ "LIST", 0, POP3_LIST, NULL, 0, 0, -1 },
		{ "LIST 7", 0, POP3_LIST, NULL, 1, 7, -1 },
		{ "LIST 4294967295", 0, POP3_LIST, NULL, 1, 4294967295u, -1 },
		{ "LIST 4294967296", -1, POP3_LIST, NULL, 0, 0, -1 },
		{ "LIST 12345678901", -1, POP3_LIST, NULL, 0, 0, -1 },
		{ "LIST x", -1, POP3_LIST, NULL, 0, 0, -1 },
		{ "LIST -1", -1, POP3_LIST, NULL, 0, 0, -1 },
		{ "LIST +1", -1, POP3_LIST, NULL, 0, 0, -1 },
		{ "LIST 1 2", -1, POP3_LIST, NULL, 0, 0, -1 },
		{ "RETR", -1, POP3_RETR, NULL, 0, 0, -1 },
		{ "RETR 3", 0, POP3_RETR, NULL, 1, 3, -1 },
		{ "DELE 0", 0, POP3_DELE, NULL, 1, 0, -1 },
		{ "TOP 1 0", 0, POP3_TOP, NULL, 1, 1, 0 },
		{ "TOP 2 10", 0, POP3_TOP, NULL, 1, 2, 10 },
		{ "TOP 2", -1, POP3_TOP, NULL, 0, 0, -1 },
		{ "TOP 2 x", -1, POP3_TOP, NULL, 0, 0, -1 },
		{ "TOP 1 2 3", -1, POP3_TOP, NULL, 0, 0, -1 },
		{ "TOP 1 -1", -1, POP3_TOP, NULL, 0, 0, -1 },
		{ "TOP 1 +1", -1, POP3_TOP, NULL, 0, 0, -1 },
		{ "TOP 1 9999999999", 0, POP3_TOP, NULL, 1, 1, 9999999999 },
		{ "TOP 1 99999999999", -1, POP3_TOP, NULL, 0, 0, -1 },
		{ "TOP 4294967295 0", 0, POP3_TOP, NULL, 1, 4294967295u, 0 },
		{ "TOP 4294967296 0", -1, POP3_TOP, NULL, 0, 0, -1 },
		{ "UIDL", 0, POP3_UIDL, NULL, 0, 0, -1 },
		{ "UIDL 9", 0, POP3_UIDL, NULL, 1, 9, -1 },
		{ "USER demo@example.test", 0, POP3_USER, "demo@example.test", 0, 0, -1 },
		{ "USER demo@example.test  ", 0, POP3_USER, "demo@example.test", 0, 0, -1 },
		{ "USER", -1, POP3_USER, NULL, 0, 0, -1 },
		{ "USER ", -1, POP3_USER, NULL, 0, 0, -1 },
		{ "USER   ", -1, POP3_USER, NULL, 0, 0, -1 },
		{ "PASS a b  c", 0, POP3_PASS, "a b  c", 0, 0, -1 },
		{ "PASS  lead", 0, POP3_PASS, " lead", 0, 0, -1 },
		{ "PASS", -1, POP3_PASS, NULL, 0, 0, -1 },
		{ "QUIT", 0, POP3_QUIT, NULL, 0, 0, -1 },
		{ "NOOP", 0, POP3_NOOP, NULL, 0, 0, -1 },
		{ "RSET", 0, POP3_RSET, NULL, 0, 0, -1 },
		{ "CAPA", 0, POP3_CAPA, NULL, 0, 0, -1 },
		{ "STLS", 0, POP3_STLS, NULL, 0, 0, -1 },
		{ "STLS now", -1, POP3_STLS, NULL, 0, 0, -1 },
		{ "APOP a b", 0, POP3_APOP, NULL, 0, 0, -1 },
		{ "", 0, POP3_UNKNOWN, NULL, 0, 0, -1 },
		{ " STAT", 0, POP3_UNKNOWN, NULL, 0, 0, -1 },
		{ "STATS", 0, POP3_UNKNOWN, NULL, 0, 0, -1 },
		{ "XY", 0, POP3_UNKNOWN, NULL, 0, 0, -1 },
		{ "HELO x", 0, POP3_UNKNOWN, NULL, 0, 0, -1 },
	};
	char buf[POP3_MAX_LINE + 2];

	for (size_t i = 0; i < NELEM(t); i++) {
		struct pop3_cmd c;
		struct pop3_refusal r;
		int got = parse_n(t[i].line, strlen(t[i].line), &c, &r, buf, sizeof(buf));

		ck_assert_msg(got == t[i].ok, "%s: got %d", t[i].line, got);
		if (got < 0) {
			ck_assert_ptr_nonnull(r.text);
			ck_assert_int_eq(r.counts, 1);
			continue;
		}
		ck_assert_msg(c.verb == t[i].verb, "%s: verb %d", t[i].line, (int)c.verb);
		if (t[i].arg != NULL)
			ck_assert_str_eq(c.arg, t[i].arg);
		ck_assert_int_eq(c.has_msg, t[i].has_msg);
		if (t[i].has_msg)
			ck_assert_uint_eq(c.msg, t[i].msg);
		ck_assert_int_eq(c.lines, t[i].lines);
	}
}
END_TEST

START_TEST(test_parse_auth)
{
	char buf[POP3_MAX_LINE + 2];
	struct pop3_cmd c;
	struct pop3_refusal r;

	ck_assert_int_eq(parse_n("AUTH", 4, &c, &r, buf, sizeof(buf)), 0);
	ck_assert_str_eq(c.mech, "");
	ck_assert_ptr_null(c.initial);
	ck_assert_int_eq(parse_n("auth plain", 10, &c, &r, buf, sizeof(buf)), 0);
	ck_assert_str_eq(c.mech, "PLAIN");
	ck_assert_ptr_null(c.initial);
	ck_assert_int_eq(parse_n("AUTH PLAIN AGEAYg==", 19, &c, &r, buf, sizeof(buf)), 0);
	ck_assert_str_eq(c.mech, "PLAIN");
	ck_assert_str_eq(c.initial, "AGEAYg==");
	ck_assert_int_eq(parse_n("AUTH LOGIN =", 12, &c, &r, buf, sizeof(buf)), 0);
	ck_assert_str_eq(c.initial, "=");
	ck_assert_int_eq(parse_n("AUTH PLAIN a b", 14, &c, &r, buf, sizeof(buf)), -1);
	ck_assert_int_eq(parse_n("AUTH PL/AIN", 11, &c, &r, buf, sizeof(buf)), -1);
	ck_assert_int_eq(parse_n("AUTH ABCDEFGHIJKLMNOPQRSTU", 26, &c, &r, buf,
	    sizeof(buf)), -1);
}
END_TEST

START_TEST(test_parse_limits)
{
	static char line[POP3_MAX_LINE + 8];
	char buf[POP3_MAX_LINE + 10];
	struct pop3_cmd c;
	struct pop3_refusal r;
	size_t n;

	/* An ordinary command: up to POP3_MAX_COMMAND. */
	memset(line, ' ', sizeof(line));
	memcpy(line, "NOOP", 4);
	ck_assert_int_eq(parse_n(line, POP3_MAX_COMMAND, &c, &r, buf, sizeof(buf)), 0);
	ck_assert_int_eq(parse_n(line, POP3_MAX_COMMAND + 1, &c, &r, buf, sizeof(buf)), -1);
	ck_assert_str_eq(r.text, "Line too long");
	/* AUTH and PASS: up to POP3_MAX_LINE. */
	memset(line, 'A', sizeof(line));
	memcpy(line, "AUTH PLAIN ", 11);
	ck_assert_int_eq(parse_n(line, POP3_MAX_LINE, &c, &r, buf, sizeof(buf)), 0);
	ck_assert_uint_eq(strlen(c.initial), POP3_MAX_LINE - 11);
	ck_assert_int_eq(parse_n(line, POP3_MAX_LINE + 1, &c, &r, buf, sizeof(buf)), -1);
	memcpy(line, "PASS ", 5);
	ck_assert_int_eq(parse_n(line, POP3_MAX_LINE, &c, &r, buf, sizeof(buf)), 0);
	/* NUL, CR and LF inside a line. */
	n = 8;
	ck_assert_int_eq(parse_n("STAT\0abc", n, &c, &r, buf, sizeof(buf)), -1);
	ck_assert_int_eq(parse_n("USER a\rb", n, &c, &r, buf, sizeof(buf)), -1);
	ck_assert_int_eq(parse_n("USER a\nb", n, &c, &r, buf, sizeof(buf)), -1);
}
END_TEST

/* Check a line in a view: 0 allowed, else -1 with the code and counting. */
static int
check_line(const char *line, const struct pop3_view *v, struct pop3_refusal *r)
{
	char buf[POP3_MAX_LINE + 2];
	struct pop3_cmd c;

	if (parse_n(line, strlen(line), &c, r, buf, sizeof(buf)) < 0)
		return -2;
	return pop3_check(v, &c, r);
}

START_TEST(test_check_states)
{
	static const unsigned char deleted[3] = { 0, 1, 0 };
	struct pop3_view authz = view(POP3_AUTHORIZATION, 0, NULL);
	struct pop3_view trans = view(POP3_TRANSACTION, 3, deleted);
	static const char *const authz_only[] = {
		"USER a", "AUTH PLAIN", "AUTH", "STLS",
	};
	static const char *const trans_only[] = {
		"STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP", "RSET",
		"TOP 1 0", "UIDL", "UIDL 3",
	};
	static const char *const both[] = { "CAPA", "QUIT" };
	struct pop3_refusal r;

	for (size_t i = 0; i < NELEM(authz_only); i++) {
		ck_assert_msg(check_line(authz_only[i], &authz, &r) == 0, "%s", authz_only[i]);
		ck_assert_msg(check_line(authz_only[i], &trans, &r) == -1, "%s", authz_only[i]);
		ck_assert_int_eq(r.counts, 1);
	}
	for (size_t i = 0; i < NELEM(trans_only); i++) {
		ck_assert_msg(check_line(trans_only[i], &trans, &r) == 0, "%s", trans_only[i]);
		ck_assert_msg(check_line(trans_only[i], &authz, &r) == -1, "%s", trans_only[i]);
		ck_assert_str_eq(r.text, "Not logged in");
	}
	for (size_t i = 0; i < NELEM(both); i++) {
		ck_assert_int_eq(check_line(both[i], &authz, &r), 0);
		ck_assert_int_eq(check_line(both[i], &trans, &r), 0);
	}
	ck_assert_int_eq(check_line("FOO", &authz, &r), -1);
	ck_assert_str_eq(r.text, "Unknown command");
	ck_assert_int_eq(check_line("FOO", &trans, &r), -1);
	ck_assert_int_eq(check_line("APOP a b", &authz, &r), -1);
}
END_TEST

START_TEST(test_check_messages)
{
	static const unsigned char deleted[3] = { 0, 1, 0 };
	struct pop3_view trans = view(POP3_TRANSACTION, 3, deleted);
	struct pop3_refusal r;

	ck_assert_int_eq(check_line("RETR 1", &trans, &r), 0);
	ck_assert_int_eq(check_line("RETR 3", &trans, &r), 0);
	ck_assert_int_eq(check_line("RETR 0", &trans, &r), -1);
	ck_assert_str_eq(r.text, "No such message");
	ck_assert_int_eq(r.counts, 0);
	ck_assert_int_eq(check_line("RETR 4", &trans, &r), -1);
	ck_assert_int_eq(check_line("RETR 2", &trans, &r), -1);
	ck_assert_str_eq(r.text, "Message is deleted");
	ck_assert_int_eq(check_line("DELE 2", &trans, &r), -1);
	ck_assert_int_eq(check_line("LIST 2", &trans, &r), -1);
	ck_assert_int_eq(check_line("UIDL 2", &trans, &r), -1);
	ck_assert_int_eq(check_line("TOP 2 0", &trans, &r), -1);
	ck_assert_int_eq(check_line("LIST", &trans, &r), 0);
	/* An empty maildrop. */
	trans = view(POP3_TRANSACTION, 0, NULL);
	ck_assert_int_eq(check_line("RETR 1", &trans, &r), -1);
	ck_assert_int_eq(check_line("STAT", &trans, &r), 0);
}
END_TEST

START_TEST(test_check_logins)
{
	struct pop3_view v = view(POP3_AUTHORIZATION, 0, NULL);
	struct pop3_refusal r;

	/* PASS needs USER first. */
	ck_assert_int_eq(check_line("PASS x", &v, &r), -1);
	v.have_user = 1;
	ck_assert_int_eq(check_line("PASS x", &v, &r), 0);
	/* Not secure: USER, PASS and AUTH with a mechanism get [AUTH]. */
	v.plaintext_ok = 0;
	ck_assert_int_eq(check_line("USER a", &v, &r), -1);
	ck_assert_int_eq(r.code, POP3_CODE_AUTH);
	ck_assert_int_eq(check_line("PASS a", &v, &r), -1);
	ck_assert_int_eq(r.code, POP3_CODE_AUTH);
	ck_assert_int_eq(check_line("AUTH PLAIN", &v, &r), -1);
	ck_assert_int_eq(r.code, POP3_CODE_AUTH);
	ck_assert_int_eq(check_line("AUTH", &v, &r), 0);
	ck_assert_int_eq(check_line("AUTH CRAM-MD5", &v, &r), -1);
	ck_assert_int_eq(r.code, POP3_CODE_NONE);
	/* STLS: once, and only with a certificate. */
	ck_assert_int_eq(check_line("STLS", &v, &r), 0);
	v.tls = 1;
	ck_assert_int_eq(check_line("STLS", &v, &r), -1);
	v.tls = 0;
	v.tls_available = 0;
	ck_assert_int_eq(check_line("STLS", &v, &r), -1);
	ck_assert_int_eq(r.code, POP3_CODE_SYS_PERM);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(pop3_verb_name(POP3_TOP), "TOP");
	ck_assert_str_eq(pop3_verb_name(POP3_UNKNOWN), "UNKNOWN");
	ck_assert_str_eq(pop3_code_name(POP3_CODE_IN_USE), "IN-USE");
	ck_assert_str_eq(pop3_code_name(POP3_CODE_SYS_TEMP), "SYS/TEMP");
	ck_assert_ptr_null(pop3_code_name(POP3_CODE_NONE));
}
END_TEST

static Suite *
pop3_suite(void)
{
	Suite *s = suite_create("pop3");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_table);
	tcase_add_test(tc, test_parse_auth);
	tcase_add_test(tc, test_parse_limits);
	tcase_add_test(tc, test_check_states);
	tcase_add_test(tc, test_check_messages);
	tcase_add_test(tc, test_check_logins);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(pop3_suite());
}
