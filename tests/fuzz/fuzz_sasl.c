/*
 * libFuzzer target for the SASL server exchange (lib/core/sasl.c): the first
 * byte picks the mechanism and whether there is an initial response,
 * the rest is split at LF into the initial response and the client's
 * lines.  Invariants checked: a challenge is base64 the decoder takes
 * back; a finished exchange has a user and a secret of the stated
 * length; a failure has a reason; ending leaves nothing behind.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop with a crash libFuzzer reports, when an invariant is broken. */
#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "PLAIN", "LOGIN", "SCRAM-SHA-256", "" };
	struct sasl_server s = SASL_SERVER_INIT;
	struct buf dec = BUF_INIT;
	const char *p, *end, *nl;
	char *initial = NULL;
	enum sasl_step st;
	int steps = 0;

	if (size == 0)
		return 0;
	p = (const char *)data + 1;
	end = (const char *)data + size;
	if (data[0] & 4) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		initial = strndup(p, (size_t)(nl - p));
		CHECK(initial != NULL);
		p = nl < end ? nl + 1 : end;
	}
	st = sasl_server_start(&s, names[data[0] & 3], initial, 512);
	for (;;) {
		if (st == SASL_CHALLENGE) {
			CHECK(base64_decode(s.challenge.data, s.challenge.len, &dec) == 0);
			if (p >= end || ++steps > 8)
				break;
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				nl = end;
			st = sasl_server_continue(&s, p, (size_t)(nl - p));
			p = nl < end ? nl + 1 : end;
			continue;
		}
		if (st == SASL_DONE) {
			CHECK(s.user != NULL && s.secret != NULL);
			CHECK(strlen(s.secret) <= s.secret_len);
		} else {
			CHECK(st == SASL_FAILED && s.failure != SASL_FAIL_NONE && s.error != NULL);
		}
		break;
	}
	sasl_server_end(&s);
	CHECK(s.mech == NULL && s.state == NULL && s.user == NULL);
	buf_free(&dec);
	free(initial);
	return 0;
}
