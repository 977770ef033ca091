/*
 * Unit tests for lib/mail/smtp.c: command splitting, HELO/EHLO, MAIL and RCPT
 * paths and parameters, BDAT, AUTH, xtext and UTF-8.  Most tests are
 * tables of {input, expected reply or result}; the length limits are
 * tested with generated strings at and just past each limit.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "smtp.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define UTF8_O "\xc3\xb6"	/* U+00F6 */
#define UTF8_U "\xc3\xbc"	/* U+00FC */

/* A string of n copies of c (n < sizeof the returned buffer), in one of
 * a few static slots. */
static const char *
rep(char c, size_t n)
{
	static char slot[4][1200];
	static int next;
	char *s = slot[next++ % 4];

	ck_assert_uint_lt(n, sizeof(slot[0]));
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A domain of exactly n octets: 63-octet labels of 'd' joined by dots. */
static const char *
domain_of(size_t n)
{
	static char slot[2][1200];
	static int next;
	char *s = slot[next++ % 2];
	size_t i;

	ck_assert_uint_lt(n, sizeof(slot[0]));
	for (i = 0; i < n; i++)
		s[i] = (i % 64 == 63) ? '.' : 'd';
	if (n > 0 && s[n - 1] == '.')
		s[n - 1] = 'e', s[n - 2] = '.';	/* never end on a dot */
	s[n] = '\0';
	return s;
}

/* Check a refusal: code and enhanced code. */
static void
want_reply(const struct smtp_reply *r, int code, const char *esc, const char *what)
{
	ck_assert_msg(r->code == code, "%s: code %d, want %d", what, r->code, code);
	ck_assert_msg(strcmp(r->esc, esc) == 0, "%s: esc %s, want %s", what, r->esc, esc);
	ck_assert_ptr_nonnull(r->text);
}

/* ---- smtp_parse_command ---- */

static const struct cmd_case {
	const char *line;
	int rc;
	enum smtp_verb verb;
	const char *arg;
} cmd_cases[] = {
	{ "HELO example.com", 0, SMTP_HELO, "example.com" },
	{ "helo example.com", 0, SMTP_HELO, "example.com" },
	{ "HeLo x", 0, SMTP_HELO, "x" },
	{ "EHLO example.com", 0, SMTP_EHLO, "example.com" },
	{ "ehlo example.com", 0, SMTP_EHLO, "example.com" },
	{ "eHlO [1.2.3.4]", 0, SMTP_EHLO, "[1.2.3.4]" },
	{ "MAIL FROM:<a@b>", 0, SMTP_MAIL, "FROM:<a@b>" },
	{ "mail from:<>", 0, SMTP_MAIL, "from:<>" },
	{ "Mail From: <a@b> SIZE=1", 0, SMTP_MAIL, "From: <a@b> SIZE=1" },
	{ "RCPT TO:<a@b>", 0, SMTP_RCPT, "TO:<a@b>" },
	{ "rcpt to:<a@b>", 0, SMTP_RCPT, "to:<a@b>" },
	{ "DATA", 0, SMTP_DATA, "" },
	{ "data", 0, SMTP_DATA, "" },
	{ "DATA x", 0, SMTP_DATA, "x" },
	{ "BDAT 100 LAST", 0, SMTP_BDAT, "100 LAST" },
	{ "bdat 0", 0, SMTP_BDAT, "0" },
	{ "RSET", 0, SMTP_RSET, "" },
	{ "rset", 0, SMTP_RSET, "" },
	{ "NOOP", 0, SMTP_NOOP, "" },
	{ "noop hello there", 0, SMTP_NOOP, "hello there" },
	{ "QUIT", 0, SMTP_QUIT, "" },
	{ "Quit", 0, SMTP_QUIT, "" },
	{ "HELP", 0, SMTP_HELP, "" },
	{ "help MAIL", 0, SMTP_HELP, "MAIL" },
	{ "VRFY postmaster", 0, SMTP_VRFY, "postmaster" },
	{ "vrfy", 0, SMTP_VRFY, "" },
	{ "EXPN list", 0, SMTP_EXPN, "list" },
	{ "STARTTLS", 0, SMTP_STARTTLS, "" },
	{ "starttls", 0, SMTP_STARTTLS, "" },
	{ "StartTLS", 0, SMTP_STARTTLS, "" },
	{ "AUTH PLAIN", 0, SMTP_AUTH, "PLAIN" },
	{ "auth login dXNlcg==", 0, SMTP_AUTH, "login dXNlcg==" },
	/* spacing */
	{ "  QUIT", 0, SMTP_QUIT, "" },
	{ "QUIT   ", 0, SMTP_QUIT, "" },
	{ "\tNOOP", 0, SMTP_NOOP, "" },
	{ "NOOP\t", 0, SMTP_NOOP, "" },
	{ "HELO   x  ", 0, SMTP_HELO, "x  " },
	{ "MAIL  FROM:<a@b>", 0, SMTP_MAIL, "FROM:<a@b>" },
	{ "HELO\tx", 0, SMTP_HELO, "x" },
	/* unknown verbs */
	{ "", 0, SMTP_UNKNOWN, "" },
	{ "   ", 0, SMTP_UNKNOWN, "" },
	{ "FOO", 0, SMTP_UNKNOWN, "" },
	{ "FOO bar", 0, SMTP_UNKNOWN, "bar" },
	{ "MAILFROM:<a@b>", 0, SMTP_UNKNOWN, "" },
	{ "MAIL:FROM", 0, SMTP_UNKNOWN, "" },
	{ "QUI", 0, SMTP_UNKNOWN, "" },
	{ "QUITS", 0, SMTP_UNKNOWN, "" },
	{ "DATA2", 0, SMTP_UNKNOWN, "" },
	{ "STARTTLSX", 0, SMTP_UNKNOWN, "" },
	{ "HELO\x01", 0, SMTP_UNKNOWN, "" },
	{ "\x01HELO", 0, SMTP_UNKNOWN, "" },
	{ "MAIL\rFROM:<a@b>", 0, SMTP_UNKNOWN, "" },
	{ "GET / HTTP/1.1", 0, SMTP_UNKNOWN, "/ HTTP/1.1" },
	{ "EHL", 0, SMTP_UNKNOWN, "" },
	{ "X-EXT arg", 0, SMTP_UNKNOWN, "arg" },
	/* 8-bit in the verb is refused, in the argument left to the parsers */
	{ "QU\xc3\x8dT", -1, SMTP_UNKNOWN, NULL },
	{ "\xffHELO x", -1, SMTP_UNKNOWN, NULL },
	{ "HELO\x80", -1, SMTP_UNKNOWN, NULL },
	{ "  \xc3\xa9", -1, SMTP_UNKNOWN, NULL },
	{ "HELO \xff", 0, SMTP_HELO, "\xff" },
	{ "MAIL FROM:<j" UTF8_O "@b>", 0, SMTP_MAIL, "FROM:<j" UTF8_O "@b>" },
};

START_TEST(test_command_table)
{
	const struct cmd_case *c = &cmd_cases[_i];
	struct smtp_reply r = { 0, NULL, NULL };
	enum smtp_verb verb = SMTP_HELO;
	const char *arg = NULL;
	int rc;

	rc = smtp_parse_command(c->line, strlen(c->line), &verb, &arg, &r);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->line, rc);
	if (rc < 0) {
		want_reply(&r, 500, "5.5.2", c->line);
		return;
	}
	ck_assert_msg(verb == c->verb, "\"%s\": verb %d, want %d", c->line, verb, c->verb);
	if (c->verb != SMTP_UNKNOWN || c->arg[0] != '\0')
		ck_assert_str_eq(arg, c->arg);
	ck_assert(arg >= c->line && arg <= c->line + strlen(c->line));
}
END_TEST

/* NUL bytes anywhere in the counted line are refused. */
START_TEST(test_command_nul)
{
	static const struct {
		const char *line;
		size_t len;
	} cases[] = {
		{ "\0", 1 }, { "QUIT\0", 5 }, { "\0QUIT", 5 }, { "QU\0IT", 5 },
		{ "MAIL FROM:<a\0@b>", 17 }, { "NOOP \0", 6 },
	};
	struct smtp_reply r;
	enum smtp_verb verb;
	const char *arg;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		ck_assert_int_eq(smtp_parse_command(cases[i].line, cases[i].len, &verb,
		    &arg, &r), -1);
		want_reply(&r, 500, "5.5.2", "nul");
	}
}
END_TEST

/* A command line of exactly SMTP_MAX_COMMAND octets passes, one more fails. */
START_TEST(test_command_length)
{
	static char line[SMTP_MAX_COMMAND + 100];
	struct smtp_reply r;
	enum smtp_verb verb;
	const char *arg;
	size_t n;

	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', sizeof(line) - 6);
	for (n = SMTP_MAX_COMMAND - 2; n <= SMTP_MAX_COMMAND + 2; n++) {
		char save = line[n];
		int rc;

		line[n] = '\0';
		rc = smtp_parse_command(line, n, &verb, &arg, &r);
		if (n <= SMTP_MAX_COMMAND) {
			ck_assert_int_eq(rc, 0);
			ck_assert_int_eq(verb, SMTP_NOOP);
			ck_assert_uint_eq(strlen(arg), n - 5);
		} else {
			ck_assert_int_eq(rc, -1);
			want_reply(&r, 500, "5.5.2", "long");
		}
		line[n] = save;
	}
	ck_assert_int_eq(smtp_parse_command(line, sizeof(line) - 1, &verb, &arg, &r), -1);
}
END_TEST

/* ---- smtp_parse_helo ---- */

static const struct helo_case {
	const char *arg;
	int rc;
} helo_cases[] = {
	{ "example.com", 0 }, { "EXAMPLE.COM", 0 }, { "localhost", 0 }, { "a", 0 },
	{ "mail-1.example.co.uk", 0 }, { "1.2.3.4", 0 }, { "xn--bcher-kva.example", 0 },
	{ "[1.2.3.4]", 0 }, { "[255.255.255.255]", 0 }, { "[0.0.0.0]", 0 },
	{ "[IPv6:::1]", 0 }, { "[ipv6:2001:db8::1]", 0 }, { "[IPV6:::ffff:1.2.3.4]", 0 },
	{ "example.com  ", 0 }, { "example.com\t", 0 },
	{ "my_host", 0 }, { "DESKTOP-AB_12.local", 0 },
	{ "", -1 }, { "   ", -1 }, { "-x.com", -1 }, { "x-.com", -1 }, { "x..com", -1 },
	{ ".x.com", -1 }, { "x.com.", -1 }, { ".", -1 }, { "host name", -1 },
	{ "h" UTF8_O "st", -1 }, { "a/b", -1 }, { "a@b", -1 }, { "[]", -1 },
	{ "[1.2.3.400]", -1 }, { "[1.2.3]", -1 }, { "[1.2.3.4", -1 }, { "1.2.3.4]", -1 },
	{ "[01.2.3.4]", -1 }, { "[IPv6:1.2.3.4]", -1 }, { "[IPv6:]", -1 },
	{ "[IPv6:fe80::1%eth0]", -1 }, { "[::1]", -1 }, { "[tag:x]", -1 },
	{ "[1.2.3.4] x", -1 }, { "x\x01", -1 }, { "x\xff", -1 }, { " x", -1 },
};

START_TEST(test_helo_table)
{
	const struct helo_case *c = &helo_cases[_i];
	struct smtp_reply r = { 0, NULL, NULL };

	ck_assert_msg(smtp_parse_helo(c->arg, &r) == c->rc, "\"%s\"", c->arg);
	if (c->rc < 0)
		want_reply(&r, 501, "5.5.4", c->arg);
}
END_TEST

/* Label of 63 octets passes, 64 fails; domain of 255 passes, 256 fails. */
START_TEST(test_helo_lengths)
{
	struct smtp_reply r;

	ck_assert_int_eq(smtp_parse_helo(rep('a', 63), &r), 0);
	ck_assert_int_eq(smtp_parse_helo(rep('a', 64), &r), -1);
	ck_assert_int_eq(smtp_parse_helo(domain_of(255), &r), 0);
	ck_assert_int_eq(smtp_parse_helo(domain_of(256), &r), -1);
	want_reply(&r, 501, "5.5.4", "helo 256");
}
END_TEST

/* ---- smtp_parse_mail ---- */

#define SYN_S 501, "5.1.7"	/* bad sender address */
#define SYN_P 501, "5.5.4"	/* bad parameter / argument syntax */
#define UNK_P 555, "5.5.4"	/* parameter not recognised or allowed */
#define OK 0, NULL

static const struct mail_case {
	const char *arg;
	int esmtp;
	uint64_t max;
	int code;
	const char *esc;
	const char *sender;	/* expected on success */
} mail_cases[] = {
	/* the keyword and spacing */
	{ "FROM:<a@b.c>", 1, 0, OK, "a@b.c" },
	{ "from:<a@b.c>", 1, 0, OK, "a@b.c" },
	{ "From:<a@b.c>", 0, 0, OK, "a@b.c" },
	{ "FROM: <a@b.c>", 1, 0, OK, "a@b.c" },
	{ "FROM:   <a@b.c>", 1, 0, OK, "a@b.c" },
	{ "FROM:<a@b.c>   ", 1, 0, OK, "a@b.c" },
	{ "FROM:<a@b.c>\t", 1, 0, OK, "a@b.c" },
	{ "FROM :<a@b.c>", 1, 0, SYN_P, NULL },
	{ "FROM<a@b.c>", 1, 0, SYN_P, NULL },
	{ "FRM:<a@b.c>", 1, 0, SYN_P, NULL },
	{ "TO:<a@b.c>", 1, 0, SYN_P, NULL },
	{ "", 1, 0, SYN_P, NULL },
	{ "FROM:", 1, 0, SYN_S, NULL },
	{ "FROM:   ", 1, 0, SYN_S, NULL },
	{ "FROM:\t<a@b.c>", 1, 0, SYN_S, NULL },
	/* brackets */
	{ "FROM:a@b.c", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b.c", 1, 0, SYN_S, NULL },
	{ "FROM:a@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<<a@b.c>>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b.c>>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b.c>x", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b.c><d@e.f>", 1, 0, SYN_S, NULL },
	{ "FROM:<", 1, 0, SYN_S, NULL },
	{ "FROM:>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b.c> <d@e.f>", 1, 0, SYN_P, NULL },
	/* the null path */
	{ "FROM:<>", 1, 0, OK, "" },
	{ "FROM:<>", 0, 0, OK, "" },
	{ "FROM: <>", 1, 0, OK, "" },
	{ "from:<> SIZE=100", 1, 0, OK, "" },
	{ "FROM:< >", 1, 0, SYN_S, NULL },
	{ "FROM:<<>>", 1, 0, SYN_S, NULL },
	{ "FROM:<>x", 1, 0, SYN_S, NULL },
	{ "FROM:<postmaster>", 1, 0, SYN_S, NULL },
	{ "FROM:<postmaster@x.y>", 1, 0, OK, "postmaster@x.y" },
	/* dot-string local parts */
	{ "FROM:<a.b.c@d.e>", 1, 0, OK, "a.b.c@d.e" },
	{ "FROM:<A.B@D.E>", 1, 0, OK, "A.B@D.E" },
	{ "FROM:<!#$%&'*+-/=?^_`{|}~@x.y>", 1, 0, OK, "!#$%&'*+-/=?^_`{|}~@x.y" },
	{ "FROM:<.a@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a.@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a..b@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<.@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@>", 1, 0, SYN_S, NULL },
	{ "FROM:<a>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a b@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a(b)@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a,b@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a;b@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a\\b@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a[b]@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a\x01" "b@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a\x7f" "b@c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b\x7f>", 1, 0, SYN_S, NULL },
	/* quoted local parts */
	{ "FROM:<\"a b\"@c.d>", 1, 0, OK, "\"a b\"@c.d" },
	{ "FROM:<\"ab\"@c.d>", 1, 0, OK, "ab@c.d" },
	{ "FROM:<\"a.b\"@c.d>", 1, 0, OK, "a.b@c.d" },
	{ "FROM:<\".a\"@c.d>", 1, 0, OK, "\".a\"@c.d" },
	{ "FROM:<\"a..b\"@c.d>", 1, 0, OK, "\"a..b\"@c.d" },
	{ "FROM:<\"a\\\"b\"@c.d>", 1, 0, OK, "\"a\\\"b\"@c.d" },
	{ "FROM:<\"a\\\\b\"@c.d>", 1, 0, OK, "\"a\\\\b\"@c.d" },
	{ "FROM:<\"\\a\"@c.d>", 1, 0, OK, "a@c.d" },
	{ "FROM:<\"\"@c.d>", 1, 0, OK, "\"\"@c.d" },
	{ "FROM:<\"a@b\"@c.d>", 1, 0, OK, "\"a@b\"@c.d" },
	{ "FROM:<\"a>b\"@c.d>", 1, 0, OK, "\"a>b\"@c.d" },
	{ "FROM:<\"a,b:c\"@c.d>", 1, 0, OK, "\"a,b:c\"@c.d" },
	{ "FROM:<\" \"@c.d>", 1, 0, OK, "\" \"@c.d" },
	{ "FROM:<\"ab@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<\"ab\\\"@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<\"a\tb\"@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<\"a\\\tb\"@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<\"a\\\x01" "b\"@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<\"a\"b@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<a\"b\"@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<\"a\".\"b\"@c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<\"a\">", 1, 0, SYN_S, NULL },
	/* domains */
	{ "FROM:<a@b>", 1, 0, OK, "a@b" },
	{ "FROM:<a@B.EXAMPLE>", 1, 0, OK, "a@B.EXAMPLE" },
	{ "FROM:<a@b--c.d>", 1, 0, OK, "a@b--c.d" },
	{ "FROM:<a@123.45>", 1, 0, OK, "a@123.45" },
	{ "FROM:<a@xn--bcher-kva.example>", 1, 0, OK, "a@xn--bcher-kva.example" },
	{ "FROM:<a@-b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b-.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b..c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@.b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b.c.>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b_c.d>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b/c>", 1, 0, SYN_S, NULL },
	/* address literals */
	{ "FROM:<a@[1.2.3.4]>", 1, 0, OK, "a@[1.2.3.4]" },
	{ "FROM:<a@[255.255.255.255]>", 1, 0, OK, "a@[255.255.255.255]" },
	{ "FROM:<a@[1.2.3.256]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[1.2.3]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[1.2.3.4.5]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[01.2.3.4]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[1.2.3.-4]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[ 1.2.3.4]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[1.2.3.4>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@1.2.3.4]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[[1.2.3.4]]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[IPv6:::1]>", 1, 0, OK, "a@[IPv6:::1]" },
	{ "FROM:<a@[ipv6:2001:db8::1]>", 1, 0, OK, "a@[ipv6:2001:db8::1]" },
	{ "FROM:<a@[IPv6:1:2:3:4:5:6:7:8]>", 1, 0, OK, "a@[IPv6:1:2:3:4:5:6:7:8]" },
	{ "FROM:<a@[IPv6:::ffff:1.2.3.4]>", 1, 0, OK, "a@[IPv6:::ffff:1.2.3.4]" },
	{ "FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[IPv6:1::2::3]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[IPv6:1.2.3.4]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[IPv6:]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[IPv6:fe80::1%eth0]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[IPv6:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2550]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[::1]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[x-tag:foo]>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[1.2.3.4]x>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@x.[1.2.3.4]>", 1, 0, SYN_S, NULL },
	/* source routes are checked, then dropped */
	{ "FROM:<@r.s:a@b.c>", 1, 0, OK, "a@b.c" },
	{ "FROM:<@r.s,@t.u:a@b.c>", 1, 0, OK, "a@b.c" },
	{ "FROM:<@[1.2.3.4]:a@b.c>", 1, 0, OK, "a@b.c" },
	{ "FROM:<@r:\"x y\"@b.c>", 1, 0, OK, "\"x y\"@b.c" },
	{ "FROM:<@r.s a@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<@r.s,a@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<@r.s,:a@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<@:a@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<@r..s:a@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<@r.s:>", 1, 0, SYN_S, NULL },
	{ "FROM:<@r.s:@t.u:a@b>", 1, 0, SYN_S, NULL },
	{ "FROM:<@r.s,@:a@b>", 1, 0, SYN_S, NULL },
	{ "FROM:<@[1.2.3]:a@b>", 1, 0, SYN_S, NULL },
	/* SIZE */
	{ "FROM:<a@b> SIZE=1000", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> size=1000", 1, 0, OK, "a@b" },
	{ "FROM:<a@b>  SIZE=1000  ", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> SIZE=0", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> SIZE=", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=-1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=+1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=1k", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=0x10", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE= 1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE==1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=1 SIZE=1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=1 size=2", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=18446744073709551615", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> SIZE=18446744073709551616", 1, 0, 552, "5.3.4", NULL },
	{ "FROM:<a@b> SIZE=99999999999999999999", 1, 0, 552, "5.3.4", NULL },
	{ "FROM:<a@b> SIZE=00000000000000000001", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> SIZE=000000000000000000001", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=999999999999999999999", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=1000", 1, 1000, OK, "a@b" },
	{ "FROM:<a@b> SIZE=999", 1, 1000, OK, "a@b" },
	{ "FROM:<a@b> SIZE=1001", 1, 1000, 552, "5.3.4", NULL },
	{ "FROM:<a@b> SIZE=18446744073709551615", 1, 18446744073709551615u, OK, "a@b" },
	{ "FROM:<a@b> SIZE=18446744073709551616", 1, 18446744073709551615u, 552, "5.3.4", NULL },
	{ "FROM:<a@b> SIZE=1001 FOO=1", 1, 1000, UNK_P, NULL },
	{ "FROM:<a@b>SIZE=1", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b> SIZE=1", 0, 0, UNK_P, NULL },
	{ "FROM:<> SIZE=1", 0, 0, UNK_P, NULL },
	/* BODY */
	{ "FROM:<a@b> BODY=7BIT", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> BODY=8BITMIME", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> body=8bitmime", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> BODY=BINARYMIME", 1, 0, UNK_P, NULL },
	{ "FROM:<a@b> BODY=8BIT", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> BODY=7BITS", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> BODY", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> BODY=", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> BODY=7BIT BODY=7BIT", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> BODY=8BITMIME", 0, 0, UNK_P, NULL },
	/* SMTPUTF8 */
	{ "FROM:<a@b> SMTPUTF8", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> smtputf8", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> SMTPUTF8=YES", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SMTPUTF8 SMTPUTF8", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SMTPUTF8", 0, 0, UNK_P, NULL },
	/* RET */
	{ "FROM:<a@b> RET=FULL", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> RET=hdrs", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> RET=NONE", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> RET", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> RET=FULL RET=HDRS", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> RET=FULL", 0, 0, UNK_P, NULL },
	/* ENVID */
	{ "FROM:<a@b> ENVID=abc", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> ENVID=a+2Bb", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> ENVID=a+2bb", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> ENVID=a+20b", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> ENVID=a+ZZ", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=a+2", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=a+", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=+00", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=+0A", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=+7F", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=+C3+A9", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=a=b", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=" UTF8_O, 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=a ENVID=b", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> ENVID=a", 0, 0, UNK_P, NULL },
	/* AUTH */
	{ "FROM:<a@b> AUTH=<>", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> AUTH=u@x.y", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> AUTH=u+2Bv@x.y", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> AUTH=", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> AUTH", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> AUTH=+ZZ", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> AUTH=a+0Db", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> AUTH=<> AUTH=<>", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> AUTH=<>", 0, 0, UNK_P, NULL },
	{ "FROM:<a@b> AUTH=j" UTF8_O "@x", 1, 0, 553, "5.6.7", NULL },
	{ "FROM:<a@b> AUTH=j" UTF8_O "@x SMTPUTF8", 1, 0, OK, "a@b" },
	{ "FROM:<a@b> AUTH=j\xc3@x SMTPUTF8", 1, 0, SYN_P, NULL },
	/* unknown and malformed parameters */
	{ "FROM:<a@b> FOO=1", 1, 0, UNK_P, NULL },
	{ "FROM:<a@b> X-FOO", 1, 0, UNK_P, NULL },
	{ "FROM:<a@b> NOTIFY=NEVER", 1, 0, UNK_P, NULL },
	{ "FROM:<a@b> ORCPT=rfc822;a@b", 1, 0, UNK_P, NULL },
	{ "FROM:<a@b> -X=1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> =1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> A_B=1", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> SIZE=1\tBODY=7BIT", 1, 0, SYN_P, NULL },
	{ "FROM:<a@b> FOO", 0, 0, UNK_P, NULL },
	{ "FROM:<a@b> SIZE=1 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=x AUTH=<>", 1, 0, OK, "a@b" },
	/* UTF-8 needs SMTPUTF8, and must be valid */
	{ "FROM:<j" UTF8_O "rg@b.c> SMTPUTF8", 1, 0, OK, "j" UTF8_O "rg@b.c" },
	{ "FROM:<j" UTF8_O "rg@b.c>", 1, 0, 553, "5.6.7", NULL },
	{ "FROM:<j" UTF8_O "rg@b.c>", 0, 0, 553, "5.6.7", NULL },
	{ "FROM:<j" UTF8_O "rg@b.c> BODY=8BITMIME", 1, 0, 553, "5.6.7", NULL },
	{ "FROM:<a@b" UTF8_U "c.de> SMTPUTF8", 1, 0, OK, "a@b" UTF8_U "c.de" },
	{ "FROM:<a@b" UTF8_U "c.de>", 1, 0, 553, "5.6.7", NULL },
	{ "FROM:<@r" UTF8_U ":a@b> SMTPUTF8", 1, 0, OK, "a@b" },
	{ "FROM:<@r" UTF8_U ":a@b>", 1, 0, 553, "5.6.7", NULL },
	{ "FROM:<\"j" UTF8_O " rg\"@b.c> SMTPUTF8", 1, 0, OK, "\"j" UTF8_O " rg\"@b.c" },
	{ "FROM:<\"j" UTF8_O "\"@b.c> SMTPUTF8", 1, 0, OK, "j" UTF8_O "@b.c" },
	{ "FROM:<j\xf0\x9f\x98\x80@b.c> SMTPUTF8", 1, 0, OK, "j\xf0\x9f\x98\x80@b.c" },
	{ "FROM:<\xe2\x80\x8b@b> SMTPUTF8", 1, 0, OK, "\xe2\x80\x8b@b" },
	{ "FROM:<j\xc3rg@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xc3@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xc0\xafrg@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xe0\x80\xaf@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xed\xa0\x80@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xf4\x90\x80\x80@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xf8\x88\x80\x80\x80@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\x80@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xff@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<j\xc3@b.c>", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b\xc3.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<a@b" UTF8_U "-.de> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<\"j\xc3\"@b.c> SMTPUTF8", 1, 0, SYN_S, NULL },
	{ "FROM:<a@[1.2.3.4]> SMTPUTF8", 1, 0, OK, "a@[1.2.3.4]" },
	{ "FROM:<a@[1.2.3." UTF8_O "]> SMTPUTF8", 1, 0, SYN_S, NULL },
};

START_TEST(test_mail_table)
{
	const struct mail_case *c = &mail_cases[_i];
	struct smtp_ext ext = { c->esmtp, c->max };
	struct smtp_mail m;
	struct smtp_reply r = { 0, NULL, NULL };
	int rc;

	memset(&m, 0x5a, sizeof(m));
	rc = smtp_parse_mail(c->arg, &ext, &m, &r);
	if (c->code == 0) {
		ck_assert_msg(rc == 0, "\"%s\": refused %d %s %s", c->arg, r.code,
		    r.esc, r.text);
		ck_assert_str_eq(m.sender, c->sender);
		smtp_mail_free(&m);
		ck_assert_ptr_null(m.sender);
	} else {
		ck_assert_msg(rc == -1, "\"%s\": accepted", c->arg);
		want_reply(&r, c->code, c->esc, c->arg);
		ck_assert_msg(((unsigned char *)&m)[0] == 0x5a, "m_r touched on failure");
	}
}
END_TEST

/* The fields of an accepted MAIL. */
START_TEST(test_mail_fields)
{
	struct smtp_ext ext = { 1, 0 };
	struct smtp_mail m;
	struct smtp_reply r;

	ck_assert_int_eq(smtp_parse_mail("FROM:<a@b>", &ext, &m, &r), 0);
	ck_assert_uint_eq(m.size, 0);
	ck_assert_int_eq(m.body, SMTP_BODY_7BIT);
	ck_assert_int_eq(m.smtputf8, 0);
	ck_assert_int_eq(m.ret, SMTP_RET_NONE);
	ck_assert_ptr_null(m.envid);
	ck_assert_ptr_null(m.auth);
	smtp_mail_free(&m);

	ck_assert_int_eq(smtp_parse_mail("from: <> size=18446744073709551615 "
	    "body=8bitmime smtputf8 ret=hdrs envid=Q+2B+3dx+20y auth=<>", &ext, &m, &r), 0);
	ck_assert_str_eq(m.sender, "");
	ck_assert_uint_eq(m.size, UINT64_MAX);
	ck_assert_int_eq(m.body, SMTP_BODY_8BITMIME);
	ck_assert_int_eq(m.smtputf8, 1);
	ck_assert_int_eq(m.ret, SMTP_RET_HDRS);
	ck_assert_str_eq(m.envid, "Q+=x y");
	ck_assert_str_eq(m.auth, "<>");
	smtp_mail_free(&m);
	smtp_mail_free(&m);	/* twice is harmless */

	ck_assert_int_eq(smtp_parse_mail("FROM:<a@b> RET=FULL BODY=7BIT AUTH=u+2Bv@x.y",
	    &ext, &m, &r), 0);
	ck_assert_int_eq(m.ret, SMTP_RET_FULL);
	ck_assert_int_eq(m.body, SMTP_BODY_7BIT);
	ck_assert_str_eq(m.auth, "u+v@x.y");
	smtp_mail_free(&m);

	ext.max_size = 5000;
	ck_assert_int_eq(smtp_parse_mail("FROM:<a@b> SIZE=5000", &ext, &m, &r), 0);
	ck_assert_uint_eq(m.size, 5000);
	smtp_mail_free(&m);

	/* A NULL ext is a HELO session. */
	ck_assert_int_eq(smtp_parse_mail("FROM:<a@b>", NULL, &m, &r), 0);
	smtp_mail_free(&m);
	ck_assert_int_eq(smtp_parse_mail("FROM:<a@b> SIZE=1", NULL, &m, &r), -1);
	want_reply(&r, 555, "5.5.4", "null ext");
	smtp_mail_free(NULL);
}
END_TEST

/* Run one MAIL that should fail with code/esc. */
static void
mail_refused(const char *arg, int code, const char *esc)
{
	struct smtp_ext ext = { 1, 0 };
	struct smtp_mail m;
	struct smtp_reply r;

	ck_assert_msg(smtp_parse_mail(arg, &ext, &m, &r) == -1, "accepted: %.60s...", arg);
	want_reply(&r, code, esc, arg);
}

/* Run one MAIL that should be accepted with the given sender. */
static void
mail_accepted(const char *arg, const char *sender)
{
	struct smtp_ext ext = { 1, 0 };
	struct smtp_mail m;
	struct smtp_reply r;

	ck_assert_msg(smtp_parse_mail(arg, &ext, &m, &r) == 0, "refused: %.60s... %s",
	    arg, r.text);
	ck_assert_str_eq(m.sender, sender);
	smtp_mail_free(&m);
}

/* Lengths of the local part, domain, label and path, at and past each. */
START_TEST(test_mail_lengths)
{
	char arg[1500], want[1500];

	/* local part: 64 octets, then 65 */
	snprintf(arg, sizeof(arg), "FROM:<%s@b.c>", rep('l', 64));
	snprintf(want, sizeof(want), "%s@b.c", rep('l', 64));
	mail_accepted(arg, want);
	snprintf(arg, sizeof(arg), "FROM:<%s@b.c>", rep('l', 65));
	mail_refused(arg, 501, "5.5.2");
	/* a quoted local part counts its quotes */
	snprintf(arg, sizeof(arg), "FROM:<\"%s \"@b.c>", rep('q', 61));
	snprintf(want, sizeof(want), "\"%s \"@b.c", rep('q', 61));
	mail_accepted(arg, want);
	snprintf(arg, sizeof(arg), "FROM:<\"%s \"@b.c>", rep('q', 62));
	mail_refused(arg, 501, "5.5.2");
	snprintf(arg, sizeof(arg), "FROM:<\"%s\"@b.c>", rep('q', 300));
	mail_refused(arg, 501, "5.5.2");
	/* labels: 63, then 64 */
	snprintf(arg, sizeof(arg), "FROM:<a@%s.c>", rep('d', 63));
	snprintf(want, sizeof(want), "a@%s.c", rep('d', 63));
	mail_accepted(arg, want);
	snprintf(arg, sizeof(arg), "FROM:<a@%s.c>", rep('d', 64));
	mail_refused(arg, 501, "5.5.2");
	/* the path: <a@D> with |D| = 252 is 256 octets; 253 is one too many */
	snprintf(arg, sizeof(arg), "FROM:<a@%s>", domain_of(252));
	snprintf(want, sizeof(want), "a@%s", domain_of(252));
	mail_accepted(arg, want);
	snprintf(arg, sizeof(arg), "FROM:<a@%s>", domain_of(253));
	mail_refused(arg, 501, "5.5.2");
	snprintf(arg, sizeof(arg), "FROM:<%s@%s>", rep('l', 64), domain_of(189));
	snprintf(want, sizeof(want), "%s@%s", rep('l', 64), domain_of(189));
	mail_accepted(arg, want);
	snprintf(arg, sizeof(arg), "FROM:<%s@%s>", rep('l', 64), domain_of(190));
	mail_refused(arg, 501, "5.5.2");
	/* a domain over 255 is refused as such */
	snprintf(arg, sizeof(arg), "FROM:<a@%s>", domain_of(255));
	mail_refused(arg, 501, "5.5.2");
	snprintf(arg, sizeof(arg), "FROM:<a@%s>", domain_of(256));
	mail_refused(arg, 501, "5.5.2");
	/* a source route counts toward the path: <@R:a@b> is |R| + 7 */
	snprintf(arg, sizeof(arg), "FROM:<@%s:a@b>", domain_of(249));
	mail_accepted(arg, "a@b");
	snprintf(arg, sizeof(arg), "FROM:<@%s:a@b>", domain_of(250));
	mail_refused(arg, 501, "5.5.2");
	/* ENVID: 100 octets as sent, then 101 */
	snprintf(arg, sizeof(arg), "FROM:<a@b> ENVID=%s", rep('e', 100));
	mail_accepted(arg, "a@b");
	snprintf(arg, sizeof(arg), "FROM:<a@b> ENVID=%s", rep('e', 101));
	mail_refused(arg, 501, "5.5.4");
}
END_TEST

/* ---- smtp_parse_rcpt ---- */

#define SYN_R 501, "5.1.3"	/* bad recipient address */

static const struct rcpt_case {
	const char *arg;
	int esmtp, smtputf8;
	int code;
	const char *esc;
	const char *rcpt;
	unsigned notify;
	const char *orcpt;
} rcpt_cases[] = {
	{ "TO:<a@b.c>", 1, 0, OK, "a@b.c", 0, NULL },
	{ "to:<a@b.c>", 0, 0, OK, "a@b.c", 0, NULL },
	{ "To: <a@b.c>", 1, 0, OK, "a@b.c", 0, NULL },
	{ "TO:<a@b.c>  ", 1, 0, OK, "a@b.c", 0, NULL },
	{ "TO :<a@b.c>", 1, 0, SYN_P, NULL, 0, NULL },
	{ "FROM:<a@b.c>", 1, 0, SYN_P, NULL, 0, NULL },
	{ "T0:<a@b.c>", 1, 0, SYN_P, NULL, 0, NULL },
	{ "", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<> NOTIFY=NEVER", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:a@b.c", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<a@b.c", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:a@b.c>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<a>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<a@b.c>x", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<a..b@c>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<a@[1.2.3.4]>", 1, 0, OK, "a@[1.2.3.4]", 0, NULL },
	{ "TO:<a@[IPv6:::1]>", 1, 0, OK, "a@[IPv6:::1]", 0, NULL },
	{ "TO:<a@[300.1.1.1]>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<\"a b\"@c>", 1, 0, OK, "\"a b\"@c", 0, NULL },
	{ "TO:<@r.s,@t.u:a@b.c>", 1, 0, OK, "a@b.c", 0, NULL },
	{ "TO:<@r.s;a@b.c>", 1, 0, SYN_R, NULL, 0, NULL },
	/* postmaster */
	{ "TO:<postmaster>", 1, 0, OK, "postmaster", 0, NULL },
	{ "TO:<PostMaster>", 0, 0, OK, "postmaster", 0, NULL },
	{ "TO:<POSTMASTER>", 1, 0, OK, "postmaster", 0, NULL },
	{ "TO: <postmaster> NOTIFY=NEVER", 1, 0, OK, "postmaster", SMTP_NOTIFY_NEVER, NULL },
	{ "TO:<postmaster@x.y>", 1, 0, OK, "postmaster@x.y", 0, NULL },
	{ "TO:<@r:postmaster>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<\"postmaster\">", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<postmastery>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<postmaste>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:<post.master>", 1, 0, SYN_R, NULL, 0, NULL },
	{ "TO:postmaster", 1, 0, SYN_R, NULL, 0, NULL },
	/* NOTIFY */
	{ "TO:<a@b> NOTIFY=NEVER", 1, 0, OK, "a@b", SMTP_NOTIFY_NEVER, NULL },
	{ "TO:<a@b> notify=never", 1, 0, OK, "a@b", SMTP_NOTIFY_NEVER, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS", 1, 0, OK, "a@b", SMTP_NOTIFY_SUCCESS, NULL },
	{ "TO:<a@b> NOTIFY=FAILURE", 1, 0, OK, "a@b", SMTP_NOTIFY_FAILURE, NULL },
	{ "TO:<a@b> NOTIFY=DELAY", 1, 0, OK, "a@b", SMTP_NOTIFY_DELAY, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,FAILURE", 1, 0, OK, "a@b",
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, NULL },
	{ "TO:<a@b> NOTIFY=success,failure,delay", 1, 0, OK, "a@b",
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, NULL },
	{ "TO:<a@b> NOTIFY=DELAY,SUCCESS", 1, 0, OK, "a@b",
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY, NULL },
	{ "TO:<a@b> NOTIFY=FAILURE,DELAY", 1, 0, OK, "a@b",
	  SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, NULL },
	{ "TO:<a@b> NOTIFY=NEVER,SUCCESS", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,NEVER", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=NEVER,NEVER", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,SUCCESS", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=,SUCCESS", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,,DELAY", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS;DELAY", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=,", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SOMETIMES", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=NEVER", 0, 0, UNK_P, NULL, 0, NULL },
	/* ORCPT */
	{ "TO:<a@b> ORCPT=rfc822;a@b", 1, 0, OK, "a@b", 0, "rfc822;a@b" },
	{ "TO:<a@b> ORCPT=RFC822;a+2Bb@c", 1, 0, OK, "a@b", 0, "rfc822;a+b@c" },
	{ "TO:<a@b> orcpt=Rfc822;a+2bb@c", 1, 0, OK, "a@b", 0, "rfc822;a+b@c" },
	{ "TO:<a@b> ORCPT=rfc822;\"a+20b\"@c", 1, 0, OK, "a@b", 0, "rfc822;\"a b\"@c" },
	{ "TO:<a@b> ORCPT=utf-8;a@b", 1, 0, OK, "a@b", 0, "utf-8;a@b" },
	{ "TO:<a@b> ORCPT=UTF-8;a@b", 1, 1, OK, "a@b", 0, "utf-8;a@b" },
	{ "TO:<a@b> ORCPT=utf-8;j" UTF8_O "@b", 1, 1, OK, "a@b", 0, "utf-8;j" UTF8_O "@b" },
	{ "TO:<a@b> ORCPT=utf-8;j+C3+B6@b", 1, 1, OK, "a@b", 0, "utf-8;j" UTF8_O "@b" },
	{ "TO:<a@b> ORCPT=utf-8;j\\x{00F6}@b", 1, 0, OK, "a@b", 0, "utf-8;j\\x{00F6}@b" },
	{ "TO:<a@b> ORCPT=utf-8;j" UTF8_O "@b", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=utf-8;j+C3+B6@b", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=utf-8;j+C3@b", 1, 1, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=utf-8;j\xc3@b", 1, 1, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;j" UTF8_O "@b", 1, 1, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;+C3+B6@b", 1, 1, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=x400;abc", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=;a@b", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+ZZ", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+0D+0A", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+00", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a=b", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a@b", 0, 0, UNK_P, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=FAILURE ORCPT=rfc822;x@y", 1, 0, OK, "a@b",
	  SMTP_NOTIFY_FAILURE, "rfc822;x@y" },
	{ "TO:<a@b> ORCPT=rfc822;x@y NOTIFY=FAILURE NOTIFY=DELAY", 1, 0, SYN_P, NULL, 0, NULL },
	/* other parameters */
	{ "TO:<a@b> SIZE=10", 1, 0, UNK_P, NULL, 0, NULL },
	{ "TO:<a@b> BODY=8BITMIME", 1, 0, UNK_P, NULL, 0, NULL },
	{ "TO:<a@b> FOO", 1, 0, UNK_P, NULL, 0, NULL },
	{ "TO:<a@b> -FOO", 1, 0, SYN_P, NULL, 0, NULL },
	{ "TO:<a@b>NOTIFY=NEVER", 1, 0, SYN_R, NULL, 0, NULL },
	/* UTF-8 follows the transaction's SMTPUTF8 */
	{ "TO:<j" UTF8_O "@b>", 1, 1, OK, "j" UTF8_O "@b", 0, NULL },
	{ "TO:<j" UTF8_O "@b>", 1, 0, 553, "5.6.7", NULL, 0, NULL },
	{ "TO:<a@" UTF8_U "ber.de>", 1, 1, OK, "a@" UTF8_U "ber.de", 0, NULL },
	{ "TO:<a@" UTF8_U "ber.de>", 0, 0, 553, "5.6.7", NULL, 0, NULL },
	{ "TO:<j\xed\xbf\xbf@b>", 1, 1, SYN_R, NULL, 0, NULL },
	{ "TO:<j\xc1\x81@b>", 1, 1, SYN_R, NULL, 0, NULL },
	{ "TO:<j\xf5\x80\x80\x80@b>", 1, 1, SYN_R, NULL, 0, NULL },
	{ "TO:<postmaster> NOTIFY=SUCCESS,DELAY", 1, 0, OK, "postmaster",
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY, NULL },
};

START_TEST(test_rcpt_table)
{
	const struct rcpt_case *c = &rcpt_cases[_i];
	struct smtp_ext ext = { c->esmtp, 0 };
	struct smtp_rcpt rr;
	struct smtp_reply r = { 0, NULL, NULL };
	int rc;

	memset(&rr, 0x5a, sizeof(rr));
	rc = smtp_parse_rcpt(c->arg, &ext, c->smtputf8, &rr, &r);
	if (c->code == 0) {
		ck_assert_msg(rc == 0, "\"%s\": refused %d %s %s", c->arg, r.code,
		    r.esc, r.text);
		ck_assert_str_eq(rr.rcpt, c->rcpt);
		ck_assert_uint_eq(rr.notify, c->notify);
		if (c->orcpt == NULL)
			ck_assert_ptr_null(rr.orcpt);
		else
			ck_assert_str_eq(rr.orcpt, c->orcpt);
		smtp_rcpt_free(&rr);
		ck_assert_ptr_null(rr.rcpt);
		ck_assert_ptr_null(rr.orcpt);
	} else {
		ck_assert_msg(rc == -1, "\"%s\": accepted", c->arg);
		want_reply(&r, c->code, c->esc, c->arg);
		ck_assert_msg(((unsigned char *)&rr)[0] == 0x5a, "r_r touched on failure");
	}
}
END_TEST

/* RCPT lengths and the ORCPT limit. */
START_TEST(test_rcpt_lengths)
{
	struct smtp_ext ext = { 1, 0 };
	struct smtp_rcpt rr;
	struct smtp_reply r;
	char arg[1500];

	snprintf(arg, sizeof(arg), "TO:<%s@b>", rep('l', 64));
	ck_assert_int_eq(smtp_parse_rcpt(arg, &ext, 0, &rr, &r), 0);
	smtp_rcpt_free(&rr);
	snprintf(arg, sizeof(arg), "TO:<%s@b>", rep('l', 65));
	ck_assert_int_eq(smtp_parse_rcpt(arg, &ext, 0, &rr, &r), -1);
	want_reply(&r, 501, "5.5.2", "local 65");
	snprintf(arg, sizeof(arg), "TO:<a@%s>", domain_of(252));
	ck_assert_int_eq(smtp_parse_rcpt(arg, &ext, 0, &rr, &r), 0);
	smtp_rcpt_free(&rr);
	snprintf(arg, sizeof(arg), "TO:<a@%s>", domain_of(253));
	ck_assert_int_eq(smtp_parse_rcpt(arg, &ext, 0, &rr, &r), -1);
	want_reply(&r, 501, "5.5.2", "path 257");
	snprintf(arg, sizeof(arg), "TO:<a@b> ORCPT=rfc822;%s", rep('o', 493));
	ck_assert_int_eq(smtp_parse_rcpt(arg, &ext, 0, &rr, &r), 0);
	ck_assert_uint_eq(strlen(rr.orcpt), 500);
	smtp_rcpt_free(&rr);
	snprintf(arg, sizeof(arg), "TO:<a@b> ORCPT=rfc822;%s", rep('o', 494));
	ck_assert_int_eq(smtp_parse_rcpt(arg, &ext, 0, &rr, &r), -1);
	want_reply(&r, 501, "5.5.4", "orcpt 501");
	/* NULL ext: HELO session */
	ck_assert_int_eq(smtp_parse_rcpt("TO:<a@b>", NULL, 0, &rr, &r), 0);
	smtp_rcpt_free(&rr);
	smtp_rcpt_free(NULL);
}
END_TEST

/* ---- smtp_parse_bdat ---- */

static const struct bdat_case {
	const char *arg;
	int rc;
	uint64_t size;
	int last;
} bdat_cases[] = {
	{ "0", 0, 0, 0 }, { "1000", 0, 1000, 0 }, { "1000 LAST", 0, 1000, 1 },
	{ "1000 last", 0, 1000, 1 }, { "1000 Last", 0, 1000, 1 },
	{ "1000  LAST", 0, 1000, 1 }, { "1000 LAST  ", 0, 1000, 1 }, { "7 ", 0, 7, 0 },
	{ "0 LAST", 0, 0, 1 }, { "18446744073709551615", 0, UINT64_MAX, 0 },
	{ "00000000000000000001", 0, 1, 0 },
	{ "", -1, 0, 0 }, { " ", -1, 0, 0 }, { "LAST", -1, 0, 0 }, { " 10", -1, 0, 0 },
	{ "-1", -1, 0, 0 }, { "+1", -1, 0, 0 }, { "1 0", -1, 0, 0 },
	{ "10 LASTX", -1, 0, 0 }, { "10 LAS", -1, 0, 0 }, { "10 LAST x", -1, 0, 0 },
	{ "10LAST", -1, 0, 0 }, { "0x10", -1, 0, 0 }, { "1e3", -1, 0, 0 },
	{ "10\tLAST", -1, 0, 0 }, { "18446744073709551616", -1, 0, 0 },
	{ "99999999999999999999", -1, 0, 0 }, { "000000000000000000001", -1, 0, 0 },
	{ "\xd9\xa1", -1, 0, 0 },
};

START_TEST(test_bdat_table)
{
	const struct bdat_case *c = &bdat_cases[_i];
	struct smtp_reply r;
	uint64_t size = 12345;
	int last = 7;

	ck_assert_msg(smtp_parse_bdat(c->arg, &size, &last, &r) == c->rc, "\"%s\"", c->arg);
	if (c->rc == 0) {
		ck_assert_uint_eq(size, c->size);
		ck_assert_int_eq(last, c->last);
	} else {
		want_reply(&r, 501, "5.5.4", c->arg);
		ck_assert_uint_eq(size, 12345);
		ck_assert_int_eq(last, 7);
	}
}
END_TEST

/* ---- smtp_parse_auth ---- */

static const struct auth_case {
	const char *arg;
	int rc;
	const char *mech;
	const char *initial;	/* NULL: none */
} auth_cases[] = {
	{ "PLAIN", 0, "PLAIN", NULL }, { "plain", 0, "PLAIN", NULL },
	{ "PLAIN ", 0, "PLAIN", NULL }, { "LOGIN   ", 0, "LOGIN", NULL },
	{ "PLAIN dGVzdA==", 0, "PLAIN", "dGVzdA==" },
	{ "PLAIN  dGVzdA==", 0, "PLAIN", "dGVzdA==" },
	{ "PLAIN dGVzdDE=", 0, "PLAIN", "dGVzdDE=" },
	{ "PLAIN dGVzdDEy", 0, "PLAIN", "dGVzdDEy" },
	{ "PLAIN AGEAYg+/", 0, "PLAIN", "AGEAYg+/" },
	{ "PLAIN =", 0, "PLAIN", "=" },
	{ "cram-md5", 0, "CRAM-MD5", NULL }, { "SCRAM-SHA-256", 0, "SCRAM-SHA-256", NULL },
	{ "X_MECH", 0, "X_MECH", NULL }, { "XOAUTH2 dXNlcg==", 0, "XOAUTH2", "dXNlcg==" },
	{ "ABCDEFGHIJKLMNOPQRST", 0, "ABCDEFGHIJKLMNOPQRST", NULL },
	{ "ABCDEFGHIJKLMNOPQRSTU", -1, NULL, NULL },
	{ "", -1, NULL, NULL }, { " PLAIN", -1, NULL, NULL }, { "PL@IN", -1, NULL, NULL },
	{ "PLAIN\tdGVz", -1, NULL, NULL }, { "PLAIN dGVzdA", -1, NULL, NULL },
	{ "PLAIN dGVz dA==", -1, NULL, NULL }, { "PLAIN dGVzdA==x", -1, NULL, NULL },
	{ "PLAIN dG=zdA==", -1, NULL, NULL }, { "PLAIN ====", -1, NULL, NULL },
	{ "PLAIN a===", -1, NULL, NULL }, { "PLAIN ==", -1, NULL, NULL },
	{ "PLAIN dGVzdA== ", -1, NULL, NULL }, { "PLAIN *", -1, NULL, NULL },
	{ "PLAIN dGVz\x01", -1, NULL, NULL }, { "PL\xc3\x8dN", -1, NULL, NULL },
	{ "PLAIN d-Vz", -1, NULL, NULL },
};

START_TEST(test_auth_table)
{
	const struct auth_case *c = &auth_cases[_i];
	struct smtp_reply r;
	char mech[21];
	const char *initial = (const char *)1;

	memset(mech, 'Z', sizeof(mech));
	ck_assert_msg(smtp_parse_auth(c->arg, mech, &initial, &r) == c->rc, "\"%s\"", c->arg);
	if (c->rc < 0) {
		want_reply(&r, 501, "5.5.4", c->arg);
		ck_assert_ptr_eq(initial, (const char *)1);
		return;
	}
	ck_assert_str_eq(mech, c->mech);
	if (c->initial == NULL)
		ck_assert_ptr_null(initial);
	else {
		ck_assert_str_eq(initial, c->initial);
		ck_assert(initial >= c->arg && initial < c->arg + strlen(c->arg));
	}
}
END_TEST

/* ---- xtext and UTF-8 ---- */

static const struct xtext_case {
	const char *in;
	const char *out;	/* NULL: malformed */
} xdecode_cases[] = {
	{ "", "" }, { "abc", "abc" }, { "a+2Bb", "a+b" }, { "a+2bb", "a+b" },
	{ "+3D", "=" }, { "+3d", "=" }, { "+20", " " }, { "+ff", "\xff" }, { "+FF", "\xff" },
	{ "~!\"#<>", "~!\"#<>" }, { "+2B+2B", "++" },
	{ "a+", NULL }, { "a+2", NULL }, { "a+G0", NULL }, { "a+0g", NULL },
	{ "+00", NULL }, { "a=b", NULL }, { "a b", NULL }, { "a\x80", NULL },
	{ "a\x7f", NULL }, { "a\tb", NULL }, { "++20", NULL }, { "+-1", NULL },
	{ UTF8_O, NULL },
}, xencode_cases[] = {
	{ "", "" }, { "abc", "abc" }, { "a+b", "a+2Bb" }, { "a=b", "a+3Db" },
	{ " ", "+20" }, { UTF8_O, "+C3+B6" }, { "\x7f", "+7F" }, { "~", "~" },
	{ "\x01", "+01" }, { "<>", "<>" }, { "a@b", "a@b" },
};

START_TEST(test_xtext_decode_table)
{
	const struct xtext_case *c = &xdecode_cases[_i];
	char *d = smtp_xtext_decode(c->in, strlen(c->in));

	if (c->out == NULL)
		ck_assert_msg(d == NULL, "\"%s\" decoded", c->in);
	else {
		ck_assert_msg(d != NULL, "\"%s\" refused", c->in);
		ck_assert_str_eq(d, c->out);
	}
	free(d);
}
END_TEST

START_TEST(test_xtext_encode_table)
{
	const struct xtext_case *c = &xencode_cases[_i];
	char *e = smtp_xtext_encode(c->in);

	ck_assert_str_eq(e, c->out);
	free(e);
}
END_TEST

/* Every byte round-trips, and only the counted length is decoded. */
START_TEST(test_xtext_round_trip)
{
	char all[256], *e, *d;
	unsigned seed = 1;
	int i, round;

	for (i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	e = smtp_xtext_encode(all);
	ck_assert_ptr_null(strchr(e, '='));
	ck_assert_ptr_null(strchr(e, ' '));
	d = smtp_xtext_decode(e, strlen(e));
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d, all);
	free(e);
	free(d);
	for (round = 0; round < 200; round++) {
		char s[40];
		int n = (int)(seed % 39);

		for (i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			s[i] = (char)(1 + (seed >> 16) % 255);
		}
		s[n] = '\0';
		e = smtp_xtext_encode(s);
		d = smtp_xtext_decode(e, strlen(e));
		ck_assert_ptr_nonnull(d);
		ck_assert_str_eq(d, s);
		free(e);
		free(d);
	}
	d = smtp_xtext_decode("ab+41zz", 5);
	ck_assert_str_eq(d, "abA");
	free(d);
	ck_assert_ptr_null(smtp_xtext_decode("ab+4", 4));
	ck_assert_ptr_null(smtp_xtext_decode("a\0b", 3));
}
END_TEST

static const struct utf8_case {
	const char *s;
	size_t len;
	int valid;
} utf8_cases[] = {
	{ "", 0, 1 }, { "ascii", 5, 1 }, { "\xc3\xa9", 2, 1 }, { "\xc3", 1, 0 },
	{ "\xc0\x80", 2, 0 }, { "\xc1\xbf", 2, 0 }, { "\xc2\x80", 2, 1 },
	{ "\xdf\xbf", 2, 1 }, { "\xe0\x80\x80", 3, 0 }, { "\xe0\x9f\xbf", 3, 0 },
	{ "\xe0\xa0\x80", 3, 1 }, { "\xed\x9f\xbf", 3, 1 }, { "\xed\xa0\x80", 3, 0 },
	{ "\xed\xbf\xbf", 3, 0 }, { "\xee\x80\x80", 3, 1 }, { "\xef\xbf\xbf", 3, 1 },
	{ "\xf0\x80\x80\x80", 4, 0 }, { "\xf0\x8f\xbf\xbf", 4, 0 },
	{ "\xf0\x90\x80\x80", 4, 1 }, { "\xf4\x8f\xbf\xbf", 4, 1 },
	{ "\xf4\x90\x80\x80", 4, 0 }, { "\xf5\x80\x80\x80", 4, 0 },
	{ "\xf8\x88\x80\x80\x80", 5, 0 }, { "\xff", 1, 0 }, { "\xfe", 1, 0 },
	{ "\x80", 1, 0 }, { "\xbf", 1, 0 }, { "a\0b", 3, 0 }, { "\0", 1, 0 },
	{ "\xe2\x82", 2, 0 }, { "\xe2\x82\xac", 3, 1 }, { "\xe2\x28\xa1", 3, 0 },
	{ "\xc3\x28", 2, 0 }, { "\xf0\x9f\x98", 3, 0 }, { "\xf0\x9f\x98\x80", 4, 1 },
	{ "a\xc3\xa9z\xe2\x82\xac", 7, 1 }, { "\xc3\xa9\xc3", 3, 0 },
	/* only len bytes are looked at */
	{ "ab\xff", 2, 1 }, { "\xc3\xa9", 1, 0 },
};

START_TEST(test_utf8_table)
{
	const struct utf8_case *c = &utf8_cases[_i];

	ck_assert_msg(smtp_utf8_valid(c->s, c->len) == c->valid, "case %d", _i);
}
END_TEST

/* Header field starts: a name of printable ASCII, then a colon. */
static const struct field_case {
	const char *s;
	size_t len;
	int field;
} field_cases[] = {
	{ "Subject: hi\n", 12, 1 }, { "X-A:b", 5, 1 }, { "a:", 2, 1 },
	{ "~!#:", 4, 1 }, { ":x", 2, 0 }, { " Subject: x", 11, 0 },
	{ "\tfolded", 8, 0 }, { "Sub ject: x", 11, 0 }, { "Subject", 7, 0 },
	{ "", 0, 0 }, { "\n", 1, 0 }, { "Sub\x7fj: x", 10, 0 },
	{ "Sub\xc3\xa9: x", 11, 0 }, { "a\0b: x", 7, 0 },
	/* only len bytes are looked at */
	{ "From: x", 4, 0 }, { "From: x", 5, 1 },
	/* an mbox "From " line is not a field */
	{ "From someone Mon Dec  7\n", 24, 0 },
};

START_TEST(test_field_table)
{
	const struct field_case *c = &field_cases[_i];

	ck_assert_msg(smtp_is_field(c->s, c->len) == c->field, "case %d", _i);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("smtp");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_command_table, 0, NELEM(cmd_cases));
	tcase_add_test(tc, test_command_nul);
	tcase_add_test(tc, test_command_length);
	tcase_add_loop_test(tc, test_helo_table, 0, NELEM(helo_cases));
	tcase_add_test(tc, test_helo_lengths);
	tcase_add_loop_test(tc, test_mail_table, 0, NELEM(mail_cases));
	tcase_add_test(tc, test_mail_fields);
	tcase_add_test(tc, test_mail_lengths);
	tcase_add_loop_test(tc, test_rcpt_table, 0, NELEM(rcpt_cases));
	tcase_add_test(tc, test_rcpt_lengths);
	tcase_add_loop_test(tc, test_bdat_table, 0, NELEM(bdat_cases));
	tcase_add_loop_test(tc, test_auth_table, 0, NELEM(auth_cases));
	tcase_add_loop_test(tc, test_xtext_decode_table, 0, NELEM(xdecode_cases));
	tcase_add_loop_test(tc, test_xtext_encode_table, 0, NELEM(xencode_cases));
	tcase_add_test(tc, test_xtext_round_trip);
	tcase_add_loop_test(tc, test_utf8_table, 0, NELEM(utf8_cases));
	tcase_add_loop_test(tc, test_field_table, 0, NELEM(field_cases));
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
