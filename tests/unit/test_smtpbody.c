/*
 * Unit tests for smtpd/body.c: the content scanner of DATA and BDAT,
 * driven from memory.  A table of {input, mode, expected lines, errors,
 * end}: each input is fed whole and again one byte at a time, which must
 * give the same result.  The smuggling cases (a "." line after a bare
 * LF or CR, or ended by one, followed by smuggled commands) must never
 * end DATA before the real CRLF "." CRLF, in either mode.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "buf.h"
#include "check_util.h"
#include "smtp.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* What the callbacks saw: the lines, each followed by "|" (CRLF) or "/"
 * (bare LF), and the errors. */
struct seen {
	struct buf out;
	enum body_err first;
	unsigned nerrors, ntoolong;
};

static void
on_content(void *arg, const char *p, size_t n)
{
	struct seen *w = arg;

	ck_assert_int_eq(buf_append(&w->out, p, n), 0);
}

static void
on_line_end(void *arg, int crlf)
{
	struct seen *w = arg;

	ck_assert_int_eq(buf_append(&w->out, crlf ? "|" : "/", 1), 0);
}

static void
on_error(void *arg, enum body_err e)
{
	struct seen *w = arg;

	ck_assert(e == BODY_BARE_EOL || e == BODY_TOO_LONG);
	if (w->nerrors++ == 0)
		w->first = e;
	if (e == BODY_TOO_LONG)
		w->ntoolong++;
}

static const struct body_scan_ops ops = { on_content, on_line_end, on_error };

/* Modes. */
#define DATA_REJECT	0
#define DATA_NORM	1
#define BDAT_REJECT	2
#define BDAT_NORM	3

struct scan_case {
	const char *in;
	int mode;
	const char *want;	/* the lines as the callbacks saw them */
	enum body_err err;	/* the first error, or BODY_OK */
	int ended;		/* DATA: the end marker was found */
	size_t used;		/* DATA: bytes used (0: all of in) */
};

/* The smuggled transaction every smuggling case carries. */
#define SMUGGLED "MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nevil\r\n"
#define SMUGGLED_SEEN "MAIL FROM:<evil@x>|RCPT TO:<v@y>|DATA|evil|"

static const struct scan_case cases[] = {
	/* Plain DATA, dot-unstuffing, the end marker and what follows it. */
	{ "a\r\nb\r\n.\r\n", DATA_REJECT, "a|b|", BODY_OK, 1, 0 },
	{ ".\r\n", DATA_REJECT, "", BODY_OK, 1, 0 },
	{ "..x\r\n.\r\n", DATA_REJECT, ".x|", BODY_OK, 1, 0 },
	{ "..\r\n.\r\n", DATA_REJECT, ".|", BODY_OK, 1, 0 },
	{ "a\r\n.\r\nNOOP\r\n", DATA_REJECT, "a|", BODY_OK, 1, 6 },
	{ "a\r\nb", DATA_REJECT, "a|b", BODY_OK, 0, 0 },
	/* Bare LF: refused, or a line end when normalizing. */
	{ "a\nb\r\n.\r\n", DATA_REJECT, "a/b|", BODY_BARE_EOL, 1, 0 },
	{ "a\nb\r\n.\r\n", DATA_NORM, "a/b|", BODY_OK, 1, 0 },
	{ "a\n\r\n.\r\n", DATA_NORM, "a/|", BODY_OK, 1, 0 },
	{ "a\n..x\n.\r\n", DATA_NORM, "a/.x/|", BODY_OK, 0, 0 },
	{ "a\n..x\n\r\n.\r\n", DATA_NORM, "a/.x/|", BODY_OK, 1, 0 },
	/* Bare CR: refused in both modes. */
	{ "a\rb\r\n.\r\n", DATA_REJECT, "ab|", BODY_BARE_EOL, 1, 0 },
	{ "a\rb\r\n.\r\n", DATA_NORM, "ab|", BODY_BARE_EOL, 1, 0 },
	/* Smuggling: the "." line never ends DATA, the smuggled commands
	 * are content, and only the real end marker ends it. */
	{ "hi\n.\n" SMUGGLED ".\r\n", DATA_NORM, "hi//" SMUGGLED_SEEN, BODY_OK, 1, 0 },
	{ "hi\n.\n" SMUGGLED ".\r\n", DATA_REJECT, "hi//" SMUGGLED_SEEN, BODY_BARE_EOL, 1, 0 },
	{ "hi\n.\r\n" SMUGGLED ".\r\n", DATA_NORM, "hi/|" SMUGGLED_SEEN, BODY_OK, 1, 0 },
	{ "hi\n.\r\n" SMUGGLED ".\r\n", DATA_REJECT, "hi/|" SMUGGLED_SEEN, BODY_BARE_EOL, 1, 0 },
	{ "hi\r\n.\n" SMUGGLED ".\r\n", DATA_NORM, "hi|/" SMUGGLED_SEEN, BODY_OK, 1, 0 },
	{ "hi\r\n.\n" SMUGGLED ".\r\n", DATA_REJECT, "hi|/" SMUGGLED_SEEN, BODY_BARE_EOL, 1, 0 },
	{ "hi\r.\r\n" SMUGGLED ".\r\n", DATA_NORM, "hi.|" SMUGGLED_SEEN, BODY_BARE_EOL, 1, 0 },
	{ "hi\r.\n" SMUGGLED ".\r\n", DATA_NORM, "hi./" SMUGGLED_SEEN, BODY_BARE_EOL, 1, 0 },
	{ "hi\r\n.\r" SMUGGLED ".\r\n", DATA_NORM, "hi|" SMUGGLED_SEEN, BODY_BARE_EOL, 1, 0 },
	{ "hi\n.\r" SMUGGLED ".\r\n", DATA_NORM, "hi/" SMUGGLED_SEEN, BODY_BARE_EOL, 1, 0 },
	{ "hi\n\n.\n\n" SMUGGLED ".\r\n", DATA_NORM, "hi////" SMUGGLED_SEEN, BODY_OK, 1, 0 },
	/* After a bare LF even a whole CRLF "." CRLF is no end. */
	{ "hi\n.\r\n.\r\n", DATA_NORM, "hi/|", BODY_OK, 1, 0 },
	{ "hi\n.\r\n", DATA_NORM, "hi/|", BODY_OK, 0, 0 },
	/* BDAT: no dots, no end marker; the last line may lack its end. */
	{ ".\r\na\r\n", BDAT_REJECT, ".|a|", BODY_OK, 0, 0 },
	{ "a\nb", BDAT_REJECT, "a/b|", BODY_BARE_EOL, 0, 0 },
	{ "a\nb", BDAT_NORM, "a/b|", BODY_OK, 0, 0 },
	{ "a\r\nb\r", BDAT_NORM, "a|b", BODY_BARE_EOL, 0, 0 },
	{ "a\r\nb\rc\r\n", BDAT_NORM, "a|bc|", BODY_BARE_EOL, 0, 0 },
};

/* Scan in with the case's mode, in pieces of at most step bytes
 * (BDAT: then finish).  Returns the bytes used, *ended_r, and *w. */
static size_t
scan(const struct scan_case *c, size_t step, struct seen *w, int *ended_r,
    uint64_t *bare_lf_r)
{
	struct body_scan sc;
	size_t n = strlen(c->in), used = 0;
	int bdat = c->mode == BDAT_REJECT || c->mode == BDAT_NORM;

	memset(w, 0, sizeof(*w));
	buf_init(&w->out, 0);
	body_scan_init(&sc, !bdat, c->mode == DATA_NORM || c->mode == BDAT_NORM);
	*ended_r = 0;
	while (used < n && !*ended_r) {
		size_t k = n - used < step ? n - used : step;
		size_t u = body_scan_feed(&sc, c->in + used, k, &ops, w, ended_r);

		ck_assert_uint_le(u, k);
		if (!*ended_r)
			ck_assert_uint_eq(u, k);
		used += u;
	}
	if (bdat)
		body_scan_finish(&sc, &ops, w);
	*bare_lf_r = sc.bare_lf;
	return used;
}

/* How many times ch occurs in text. */
static uint64_t
count_of(const char *text, char ch)
{
	uint64_t n = 0;

	for (; *text != '\0'; text++)
		n += *text == ch;
	return n;
}

START_TEST(test_scan_table)
{
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct scan_case *c = &cases[i];
		size_t steps[] = { (size_t)-1, 1, 3 };

		for (size_t j = 0; j < NELEM(steps); j++) {
			struct seen w;
			uint64_t bare_lf;
			int ended;
			size_t used = scan(c, steps[j], &w, &ended, &bare_lf);

			ck_assert_msg(strcmp(buf_cstr(&w.out), c->want) == 0,
			    "case %zu step %zu: saw \"%s\", want \"%s\"", i, steps[j],
			    buf_cstr(&w.out), c->want);
			ck_assert_msg(ended == c->ended, "case %zu step %zu: ended %d",
			    i, steps[j], ended);
			ck_assert_msg(used == (c->used ? c->used : strlen(c->in)),
			    "case %zu step %zu: used %zu", i, steps[j], used);
			ck_assert_msg(c->err == BODY_OK ? w.nerrors == 0 : w.first == c->err,
			    "case %zu step %zu: %u errors, first %d", i, steps[j],
			    w.nerrors, (int)w.first);
			/* Normalizing counts the bare LFs it took. */
			ck_assert_uint_eq(bare_lf, c->mode == DATA_REJECT ||
			    c->mode == BDAT_REJECT ? 0 : count_of(c->want, '/'));
			buf_free(&w.out);
		}
	}
}
END_TEST

/* The line limit: 998 bytes pass, 999 are one error however they are
 * fed, and the next line starts afresh. */
START_TEST(test_line_limit)
{
	char in[2 * SMTP_MAX_LINE + 16];
	struct scan_case c = { in, DATA_NORM, NULL, BODY_OK, 1, 0 };
	struct seen w;
	uint64_t bare_lf;
	int ended;

	memset(in, 'x', SMTP_MAX_LINE);
	memcpy(in + SMTP_MAX_LINE, "\r\n.\r\n", 6);
	(void)scan(&c, 7, &w, &ended, &bare_lf);
	ck_assert_uint_eq(w.nerrors, 0);
	ck_assert_int_eq(ended, 1);
	buf_free(&w.out);

	memset(in, 'x', SMTP_MAX_LINE + 1);
	memcpy(in + SMTP_MAX_LINE + 1, "\nshort\r\n.\r\n", 12);
	for (size_t step = 1; step <= 1000; step += 333) {
		(void)scan(&c, step, &w, &ended, &bare_lf);
		ck_assert_uint_eq(w.nerrors, 1);
		ck_assert_uint_eq(w.ntoolong, 1);
		ck_assert_int_eq(ended, 1);
		ck_assert_uint_eq(bare_lf, 1);
		ck_assert_uint_eq(w.out.len, SMTP_MAX_LINE + 1 + strlen("/short|"));
		buf_free(&w.out);
	}
}
END_TEST

static Suite *
smtpbody_suite(void)
{
	Suite *s = suite_create("smtpbody");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_scan_table);
	tcase_add_test(tc, test_line_limit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(smtpbody_suite());
}
