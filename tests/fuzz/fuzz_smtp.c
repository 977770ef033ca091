/*
 * libFuzzer target for the SMTP command parser: the bytes are one command
 * line, split by smtp_parse_command() and handed to the argument parser
 * for its verb (MAIL and RCPT with and without EHLO and SMTPUTF8).  An
 * unknown verb's line goes to every argument parser, so the fuzzer can
 * reach them all directly.  Invariants checked: refusals are 5xx with a
 * 5.x.x code; accepted addresses are within the RFC 5321 limits, free of
 * control bytes, ASCII unless SMTPUTF8, and valid UTF-8; xtext round-trips.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop with a crash libFuzzer reports, when an invariant is broken. */
#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* A refusal is a permanent error with a matching enhanced code. */
static void
check_reply(const struct smtp_reply *r)
{
	CHECK(r->code >= 500 && r->code <= 559);
	CHECK(r->esc != NULL && r->esc[0] == '5' && r->esc[1] == '.');
	CHECK(r->text != NULL && r->text[0] != '\0');
}

/* Text that may go into a queue file: no control bytes, valid UTF-8,
 * ASCII only unless utf8. */
static void
check_text(const char *s, int utf8)
{
	size_t i, n = strlen(s);

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		CHECK(c >= 0x20 && c != 0x7f);
		CHECK(utf8 || c < 0x80);
	}
	CHECK(smtp_utf8_valid(s, n));
}

/* An accepted mailbox: "", "postmaster" or local@domain within limits. */
static void
check_address(const char *a, int utf8)
{
	const char *at;
	size_t n = strlen(a);

	check_text(a, utf8);
	CHECK(n <= SMTP_MAX_PATH - 2);
	if (n == 0 || strcmp(a, "postmaster") == 0)
		return;
	at = strrchr(a, '@');
	CHECK(at != NULL && at > a);
	CHECK((size_t)(at - a) <= SMTP_MAX_LOCAL);
	CHECK(strlen(at + 1) >= 1 && strlen(at + 1) <= SMTP_MAX_DOMAIN);
}

/* MAIL under one set of extensions. */
static void
fuzz_mail(const char *arg, int esmtp, uint64_t max)
{
	struct smtp_ext ext = { esmtp, max };
	struct smtp_mail m;
	struct smtp_reply r;

	if (smtp_parse_mail(arg, &ext, &m, &r) < 0) {
		check_reply(&r);
		return;
	}
	check_address(m.sender, m.smtputf8);
	CHECK(max == 0 || m.size <= max);
	CHECK(esmtp || (m.size == 0 && !m.smtputf8 && m.envid == NULL && m.auth == NULL));
	if (m.envid != NULL) {
		check_text(m.envid, 0);
		CHECK(strlen(m.envid) <= 100);
	}
	if (m.auth != NULL)
		check_text(m.auth, m.smtputf8);
	smtp_mail_free(&m);
}

/* RCPT with or without SMTPUTF8 in the transaction. */
static void
fuzz_rcpt(const char *arg, int esmtp, int smtputf8)
{
	struct smtp_ext ext = { esmtp, 0 };
	struct smtp_rcpt rr;
	struct smtp_reply r;

	if (smtp_parse_rcpt(arg, &ext, smtputf8, &rr, &r) < 0) {
		check_reply(&r);
		return;
	}
	check_address(rr.rcpt, smtputf8);
	CHECK(rr.rcpt[0] != '\0');
	CHECK((rr.notify & ~0xfu) == 0);
	CHECK(!(rr.notify & SMTP_NOTIFY_NEVER) || rr.notify == SMTP_NOTIFY_NEVER);
	if (rr.orcpt != NULL) {
		check_text(rr.orcpt, smtputf8);
		CHECK(strncmp(rr.orcpt, "rfc822;", 7) == 0 || strncmp(rr.orcpt, "utf-8;", 6) == 0);
	}
	smtp_rcpt_free(&rr);
}

/* AUTH: the mechanism fits, the initial response points into arg. */
static void
fuzz_auth(const char *arg)
{
	struct smtp_reply r;
	const char *initial;
	char mech[21];
	size_t i;

	if (smtp_parse_auth(arg, mech, &initial, &r) < 0) {
		check_reply(&r);
		return;
	}
	CHECK(strlen(mech) >= 1 && strlen(mech) <= 20);
	for (i = 0; mech[i] != '\0'; i++)
		CHECK(!(mech[i] >= 'a' && mech[i] <= 'z'));
	if (initial != NULL)
		CHECK(initial > arg && initial < arg + strlen(arg));
}

/* Decode and re-encode xtext; encoding anything must round-trip. */
static void
fuzz_xtext(const char *arg)
{
	char *d, *e, *d2;

	e = smtp_xtext_encode(arg);
	d2 = smtp_xtext_decode(e, strlen(e));
	CHECK(d2 != NULL && strcmp(d2, arg) == 0);
	free(e);
	free(d2);
	if ((d = smtp_xtext_decode(arg, strlen(arg))) == NULL)
		return;
	e = smtp_xtext_encode(d);
	d2 = smtp_xtext_decode(e, strlen(e));
	CHECK(d2 != NULL && strcmp(d2, d) == 0);
	free(d);
	free(e);
	free(d2);
}

/* Run the argument parser(s) for verb. */
static void
dispatch(enum smtp_verb verb, const char *arg)
{
	struct smtp_reply r;
	uint64_t size;
	int last;

	switch (verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		if (smtp_parse_helo(arg, &r) < 0)
			check_reply(&r);
		break;
	case SMTP_MAIL:
		fuzz_mail(arg, 0, 0);
		fuzz_mail(arg, 1, 0);
		fuzz_mail(arg, 1, 10240000);
		break;
	case SMTP_RCPT:
		fuzz_rcpt(arg, 0, 0);
		fuzz_rcpt(arg, 1, 0);
		fuzz_rcpt(arg, 1, 1);
		break;
	case SMTP_BDAT:
		if (smtp_parse_bdat(arg, &size, &last, &r) < 0)
			check_reply(&r);
		else
			CHECK(last == 0 || last == 1);
		break;
	case SMTP_AUTH:
		fuzz_auth(arg);
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum smtp_verb verb;
	struct smtp_reply r;
	const char *arg;
	char *line;

	if (size > 4 * SMTP_MAX_COMMAND)
		return 0;
	/* smtp_parse_command wants line[len] == NUL, as a struct buf gives. */
	line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	(void)smtp_utf8_valid(line, size);

	if (smtp_parse_command(line, size, &verb, &arg, &r) < 0) {
		check_reply(&r);
		CHECK(r.code == 500);
	} else {
		CHECK(arg >= line && arg <= line + size);
		if (verb != SMTP_UNKNOWN)
			dispatch(verb, arg);
		else {
			/* Straight to every argument parser. */
			dispatch(SMTP_HELO, line);
			dispatch(SMTP_MAIL, line);
			dispatch(SMTP_RCPT, line);
			dispatch(SMTP_BDAT, line);
			dispatch(SMTP_AUTH, line);
			fuzz_xtext(line);
		}
	}
	free(line);
	return 0;
}
