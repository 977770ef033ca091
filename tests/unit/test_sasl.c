/*
 * Unit tests for lib/core/sasl.c: base64 against the RFC 4648 test vectors,
 * strict refusal of malformed base64, splitting PLAIN messages, and every
 * path of the server exchange (PLAIN and LOGIN, initial responses, "=",
 * "*", bad base64, authzid, unknown mechanisms, wiping at the end).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check_util.h"
#include "sasl.h"

/* RFC 4648, section 10. */
static const struct {
	const char *plain, *b64;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

START_TEST(test_encode_vectors)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		buf_reset(&b);
		ck_assert_int_eq(base64_encode(vectors[i].plain,
		    strlen(vectors[i].plain), &b), 0);
		ck_assert_str_eq(buf_cstr(&b), vectors[i].b64);
	}
	buf_free(&b);
}
END_TEST

START_TEST(test_decode_vectors)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		ck_assert_int_eq(base64_decode(vectors[i].b64,
		    strlen(vectors[i].b64), &b), 0);
		ck_assert_uint_eq(b.len, strlen(vectors[i].plain));
		ck_assert_str_eq(buf_cstr(&b), vectors[i].plain);
	}
	buf_free(&b);
}
END_TEST

/* Every byte value survives a round trip, at every length mod 3. */
START_TEST(test_round_trip_binary)
{
	unsigned char raw[256];
	struct buf enc = BUF_INIT, dec = BUF_INIT;

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= sizeof(raw); n++) {
		buf_reset(&enc);
		ck_assert_int_eq(base64_encode(raw, n, &enc), 0);
		ck_assert_uint_eq(enc.len, (n + 2) / 3 * 4);
		ck_assert_int_eq(base64_decode(enc.data, enc.len, &dec), 0);
		ck_assert_uint_eq(dec.len, n);
		if (n > 0)
			ck_assert_mem_eq(dec.data, raw, n);
	}
	buf_free(&enc);
	buf_free(&dec);
}
END_TEST

/* The alphabet's last two characters (not the URL-safe variant). */
START_TEST(test_plus_slash)
{
	struct buf b = BUF_INIT;
	static const unsigned char raw[] = { 0xfb, 0xff, 0xbf };

	ck_assert_int_eq(base64_encode(raw, sizeof(raw), &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "+/+/");
	ck_assert_int_eq(base64_decode("+/+/", 4, &b), 0);
	ck_assert_mem_eq(b.data, raw, sizeof(raw));
	ck_assert_int_eq(base64_decode("-_-_", 4, &b), -1);
	buf_free(&b);
}
END_TEST

static const char *const malformed[] = {
	"Zg",		/* no padding */
	"Zg=",		/* short padding */
	"Zm9",		/* length not a multiple of 4 */
	"Z===",		/* too much padding */
	"====",
	"Zg==Zg==",	/* padding in the middle */
	"Zm=v",		/* data after padding */
	"Zh==",		/* non-zero bits under the padding */
	"Zm9=",		/* same, one pad */
	"Zm9v\r\n",	/* line break */
	"Zm 9v",	/* embedded space */
	" Zm9v",	/* leading space */
	"Zm9v ",	/* trailing space */
	"Zm9\tv",	/* tab */
	"Zm9v!===",	/* bad character */
	"Zm9v\x80\x80\x80\x80",	/* 8-bit bytes */
	"Z*9v",
	"=Zm9",
};

START_TEST(test_decode_malformed)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		ck_assert_int_eq(buf_puts(&b, "junk"), 0);
		ck_assert_msg(base64_decode(malformed[i], strlen(malformed[i]), &b) == -1,
		    "accepted malformed input #%zu", i);
		/* A refused input leaves nothing behind. */
		ck_assert_uint_eq(b.len, 0);
	}
	/* An embedded NUL is not part of the alphabet either. */
	ck_assert_int_eq(base64_decode("Zm\0v", 4, &b), -1);
	buf_free(&b);
}
END_TEST

/* The output ceiling is honoured by both directions. */
START_TEST(test_ceiling)
{
	struct buf b;

	buf_init(&b, 4);
	ck_assert_int_eq(base64_encode("foo", 3, &b), 0);
	ck_assert_int_eq(base64_encode("f", 1, &b), -1);
	ck_assert_str_eq(buf_cstr(&b), "Zm9v");
	buf_free(&b);
	buf_init(&b, 5);
	ck_assert_int_eq(base64_decode("Zm9vYmFy", 8, &b), -1);
	ck_assert_int_eq(base64_decode("Zm9vYg==", 8, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "foob");
	buf_free(&b);
}
END_TEST

/* Decode a PLAIN message given with its length (it contains NULs). */
static int
split(const char *raw, size_t n, struct buf *b, const char **user,
    const char **pw, size_t *pwlen, const char **error)
{
	buf_reset(b);
	ck_assert_int_eq(buf_append(b, raw, n), 0);
	return sasl_plain_split(b, user, pw, pwlen, error);
}

#define SPLIT(lit, b, u, p, l, e) split(lit, sizeof(lit) - 1, b, u, p, l, e)

START_TEST(test_plain_ok)
{
	struct buf b = BUF_INIT;
	const char *user, *pw, *error;
	size_t len;

	ck_assert_int_eq(SPLIT("\0tim\0tanstaaftanstaaf", &b, &user, &pw, &len,
	    &error), 0);
	ck_assert_str_eq(user, "tim");
	ck_assert_str_eq(pw, "tanstaaftanstaaf");
	ck_assert_uint_eq(len, 16);

	/* authzid equal to authcid is allowed. */
	ck_assert_int_eq(SPLIT("u@x\0u@x\0p w", &b, &user, &pw, &len, &error), 0);
	ck_assert_str_eq(user, "u@x");
	ck_assert_str_eq(pw, "p w");
	ck_assert_uint_eq(len, 3);

	/* From the wire: RFC 4616's example, base64-decoded first. */
	ck_assert_int_eq(base64_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 28, &b), 0);
	ck_assert_int_eq(sasl_plain_split(&b, &user, &pw, &len, &error), 0);
	ck_assert_str_eq(user, "tim");
	ck_assert_str_eq(pw, "tanstaaftanstaaf");
	buf_free(&b);
}
END_TEST

START_TEST(test_plain_bad)
{
	static const struct {
		const char *raw;
		size_t n;
	} bad[] = {
#define B(lit) { lit, sizeof(lit) - 1 }
		B(""),			/* empty */
		B("tim"),		/* no NUL */
		B("\0tim"),		/* one NUL: no password */
		B("\0\0secret"),	/* empty user */
		B("\0tim\0"),		/* empty password */
		B("\0tim\0pass\0"),	/* extra NUL at the end */
		B("\0tim\0pa\0ss"),	/* extra NUL inside */
		B("admin\0tim\0secret"),	/* proxy login */
		B("Tim\0tim\0secret"),	/* authzid must be exactly equal */
#undef B
	};
	struct buf b = BUF_INIT;
	const char *user = "untouched", *pw = "untouched", *error;
	size_t len = 99;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		ck_assert_msg(split(bad[i].raw, bad[i].n, &b, &user, &pw, &len,
		    &error) == -1, "accepted bad PLAIN #%zu", i);
		ck_assert_ptr_nonnull(error);
	}
	ck_assert_str_eq(user, "untouched");
	ck_assert_str_eq(pw, "untouched");
	ck_assert_uint_eq(len, 99);
	buf_free(&b);
}
END_TEST

/* One scripted exchange: mechanism, initial response, client lines, and
 * the expected outcome. */
struct exch {
	const char *mech, *initial;
	const char *lines[3];
	const char *challenges[3];	/* expected prompts, base64, in order */
	enum sasl_step want;
	enum sasl_failure why;
	const char *user, *secret;
};

/* "\0u\0p" is AHUAcA==; "u\0u\0p" dQB1AHA=; "x\0u\0p" eAB1AHA=. */
static const struct exch exchanges[] = {
	{ "PLAIN", "AHUAcA==", { NULL }, { NULL }, SASL_DONE, SASL_FAIL_NONE, "u", "p" },
	{ "PLAIN", "dQB1AHA=", { NULL }, { NULL }, SASL_DONE, SASL_FAIL_NONE, "u", "p" },
	{ "PLAIN", "eAB1AHA=", { NULL }, { NULL }, SASL_FAILED, SASL_FAIL_MESSAGE, NULL, NULL },
	{ "PLAIN", NULL, { "AHUAcA==" }, { "" }, SASL_DONE, SASL_FAIL_NONE, "u", "p" },
	{ "PLAIN", "=", { NULL }, { NULL }, SASL_FAILED, SASL_FAIL_MESSAGE, NULL, NULL },
	{ "PLAIN", "A", { NULL }, { NULL }, SASL_FAILED, SASL_FAIL_BASE64, NULL, NULL },
	{ "PLAIN", NULL, { "*" }, { "" }, SASL_FAILED, SASL_FAIL_CANCELLED, NULL, NULL },
	{ "PLAIN", NULL, { "!!!!" }, { "" }, SASL_FAILED, SASL_FAIL_BASE64, NULL, NULL },
	{ "LOGIN", NULL, { "dQ==", "cA==" }, { "VXNlcm5hbWU6", "UGFzc3dvcmQ6" },
	    SASL_DONE, SASL_FAIL_NONE, "u", "p" },
	{ "LOGIN", "dQ==", { "cA==" }, { "UGFzc3dvcmQ6" }, SASL_DONE, SASL_FAIL_NONE, "u", "p" },
	{ "LOGIN", "=", { "=" }, { "UGFzc3dvcmQ6" }, SASL_DONE, SASL_FAIL_NONE, "", "" },
	{ "LOGIN", NULL, { "dQ==", "*" }, { "VXNlcm5hbWU6", "UGFzc3dvcmQ6" },
	    SASL_FAILED, SASL_FAIL_CANCELLED, NULL, NULL },
	{ "LOGIN", NULL, { "dQ=" }, { "VXNlcm5hbWU6" }, SASL_FAILED, SASL_FAIL_BASE64, NULL, NULL },
	{ "LOGIN", "x", { NULL }, { NULL }, SASL_FAILED, SASL_FAIL_BASE64, NULL, NULL },
	{ "CRAM-MD5", NULL, { NULL }, { NULL }, SASL_FAILED, SASL_FAIL_MECHANISM, NULL, NULL },
};

START_TEST(test_exchange)
{
	const struct exch *e = &exchanges[_i];
	struct sasl_server s = SASL_SERVER_INIT;
	enum sasl_step st;
	size_t n = 0;

	st = sasl_server_start(&s, e->mech, e->initial, 2048);
	while (st == SASL_CHALLENGE) {
		ck_assert_ptr_nonnull(e->lines[n]);
		ck_assert_str_eq(buf_cstr(&s.challenge), e->challenges[n]);
		st = sasl_server_continue(&s, e->lines[n], strlen(e->lines[n]));
		n++;
	}
	ck_assert_int_eq(st, e->want);
	if (st == SASL_DONE) {
		ck_assert_str_eq(s.user, e->user);
		ck_assert_str_eq(s.secret, e->secret);
		ck_assert_uint_eq(s.secret_len, strlen(e->secret));
	} else {
		ck_assert_int_eq(s.failure, e->why);
		ck_assert_ptr_nonnull(s.error);
	}
	ck_assert_ptr_null(e->lines[n]);
	sasl_server_end(&s);
	ck_assert_ptr_null(s.mech);
	ck_assert_ptr_null(s.state);
	ck_assert_ptr_null(s.in.data);
	ck_assert_ptr_null(s.user);
}
END_TEST

/* The table: known names, the listing order, and continue without start. */
START_TEST(test_mech_table)
{
	struct sasl_server s = SASL_SERVER_INIT;

	ck_assert_int_eq(sasl_mech_known("PLAIN"), 1);
	ck_assert_int_eq(sasl_mech_known("LOGIN"), 1);
	ck_assert_int_eq(sasl_mech_known("plain"), 0);
	ck_assert_str_eq(sasl_mech_name(0), "PLAIN");
	ck_assert_str_eq(sasl_mech_name(1), "LOGIN");
	ck_assert_ptr_null(sasl_mech_name(2));
	ck_assert_int_eq(sasl_server_continue(&s, "AA==", 4), SASL_FAILED);
	ck_assert_int_eq(s.failure, SASL_FAIL_MECHANISM);
	/* A second start ends the first exchange (LOGIN's name is freed). */
	ck_assert_int_eq(sasl_server_start(&s, "LOGIN", "dQ==", 2048), SASL_CHALLENGE);
	ck_assert_int_eq(sasl_server_start(&s, "PLAIN", NULL, 2048), SASL_CHALLENGE);
	ck_assert_str_eq(buf_cstr(&s.challenge), "");
	sasl_server_end(&s);
	sasl_server_end(&s);	/* idempotent */
}
END_TEST

/* A response whose decoding is past the cap fails as bad base64. */
START_TEST(test_exchange_cap)
{
	struct sasl_server s = SASL_SERVER_INIT;

	ck_assert_int_eq(sasl_server_start(&s, "LOGIN", NULL, 2), SASL_CHALLENGE);
	ck_assert_int_eq(sasl_server_continue(&s, "Zm9vYmFy", 8), SASL_FAILED);
	ck_assert_int_eq(s.failure, SASL_FAIL_BASE64);
	sasl_server_end(&s);
}
END_TEST

static Suite *
sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_encode_vectors);
	tcase_add_test(tc, test_decode_vectors);
	tcase_add_test(tc, test_round_trip_binary);
	tcase_add_test(tc, test_plus_slash);
	tcase_add_test(tc, test_decode_malformed);
	tcase_add_test(tc, test_ceiling);
	tcase_add_test(tc, test_plain_ok);
	tcase_add_test(tc, test_plain_bad);
	tcase_add_loop_test(tc, test_exchange, 0,
	    (int)(sizeof(exchanges) / sizeof(exchanges[0])));
	tcase_add_test(tc, test_mech_table);
	tcase_add_test(tc, test_exchange_cap);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(sasl_suite());
}
