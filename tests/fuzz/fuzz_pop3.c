/*
 * libFuzzer target for pop3d's command parser and checks
 * (pop3d/pop3proto.c, pure functions compiled into this target): the
 * first byte picks a session view (state, TLS, plaintext policy, a few
 * messages some of them deleted), the rest is one command line.  The
 * parsed command must then pass or fail pop3_check() without crashing.
 * Invariants checked: a refusal has a text; an accepted command's
 * message number is within the maildrop and not deleted; a command that
 * passed its check is valid in the view's state; arguments point into
 * the line.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The parser lives in pop3d/, not lib/: the fuzz build compiles only
 * this file and lib/'s sources, so it is included here. */
#include "../../pop3d/pop3proto.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop with a crash libFuzzer reports, when an invariant is broken. */
#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char deleted[4] = { 0, 1, 0, 1 };
	struct pop3_view v;
	struct pop3_refusal r;
	struct pop3_cmd c;
	unsigned flags;
	char *line;
	size_t len;

	if (size < 1)
		return 0;
	memset(&v, 0, sizeof(v));
	v.state = (data[0] & 1) ? POP3_TRANSACTION : POP3_AUTHORIZATION;
	v.tls = (data[0] >> 1) & 1;
	v.tls_available = (data[0] >> 2) & 1;
	v.plaintext_ok = (data[0] >> 3) & 1;
	v.have_user = (data[0] >> 4) & 1;
	v.nmsgs = (data[0] >> 5) & 3;
	v.deleted = deleted;
	len = size - 1;
	line = malloc(len + 1);
	CHECK(line != NULL);
	memcpy(line, data + 1, len);
	if (pop3_parse(line, len, &c, &r) < 0) {
		CHECK(r.text != NULL && r.text[0] != '\0');
		free(line);
		return 0;
	}
	CHECK(c.name != NULL);
	CHECK(c.arg != NULL);
	CHECK(c.arg == line + len || (c.arg >= line && c.arg <= line + len) ||
	    c.arg[0] == '\0');
	if (c.initial != NULL)
		CHECK(c.initial > line && c.initial < line + len);
	CHECK(strlen(c.mech) <= POP3_MECH_MAX);
	if (pop3_check(&v, &c, &r) < 0) {
		CHECK(r.text != NULL && r.text[0] != '\0');
		free(line);
		return 0;
	}
	flags = pop3_verb_flags(c.verb);
	CHECK(c.verb != POP3_UNKNOWN && c.verb != POP3_APOP);
	CHECK(flags & (v.state == POP3_TRANSACTION ? POP3_F_TRANS : POP3_F_AUTHZ));
	if (c.has_msg) {
		CHECK(c.msg >= 1 && c.msg <= v.nmsgs);
		CHECK(!deleted[c.msg - 1]);
	}
	if (c.verb == POP3_TOP)
		CHECK(c.has_msg && c.lines >= 0);
	if (c.verb == POP3_USER || c.verb == POP3_PASS)
		CHECK(v.plaintext_ok && c.arg[0] != '\0');
	free(line);
	return 0;
}
