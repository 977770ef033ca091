/*
 * Unit tests for lib/mail/passwd.c: known-answer checks of passwd_verify with
 * hashes made by mkpasswd(1) (Debian's whois package) for every accepted
 * method, refusal of unknown methods and of passwords with a NUL, the
 * map-value parser and formatter, and fresh yescrypt hashes.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "passwd.h"

#define PW "correct horse"

/* mkpasswd -m METHOD 'correct horse' */
static const struct {
	const char *method, *hash;
} known[] = {
	{ "yescrypt", "$y$j9T$YbkVhbJOUsayjQy5B30DO/$uINo8ObxrYUyFQONAUyljFcBsfwPj2r/FGWm..6TV44" },
	{ "sha512crypt", "$6$YD6aGj3rWPDCqw7z$iqmFRzGtCSGvcEpIfPmBbTSdf/.JnPvmY/mWxY8HgDJYlXiTgTGycQT1guFVsGR8dSWOcKumb8mgsLYaDA.k01" },
	{ "sha256crypt", "$5$0fL8uXg.f2AvJg/n$nPO9TFUyUSv1odiHAk6f23VVr/iK8G6Qg7N4G4bQBv2" },
	{ "bcrypt", "$2b$05$YShFxtG2jxWGbrcVYfdSTexyojHAAiCHBWdQu5AiJkbP6YsmzrHbO" },
	/* The same bcrypt hash with the $2y$ prefix (PHP, older tools). */
	{ "bcrypt-2y", "$2y$05$YShFxtG2jxWGbrcVYfdSTexyojHAAiCHBWdQu5AiJkbP6YsmzrHbO" },
};

/* mkpasswd -m METHOD '' */
static const char *const empty_hashes[] = {
	"$y$j9T$0VmCsxeonuLwAeO2dsvCs.$ExWR3odC/qtq4RkyK6ZyVBbJxgBK5GTWFC2ReQuZAc/",
	"$5$AYiL7lNbg3yOFWIP$uCLykQC/GXbTzk5G3rsS1mXzytpNnHnXoQFl9VIPJ86",
	"$2b$05$6cXsfaboBCfMzI3LNlNpd.RPIAAbumM5lEUs0vizgupSYSDjg9fzC",
};

/* mkpasswd -m METHOD 'pässwörd' (UTF-8) */
static const char *const utf8_hashes[] = {
	"$y$j9T$IbNrQuHQux/XG0a7tsJkN/$bzV.vAz1pKo6dU.g61gDrnmfUSKP80hrFpRi99yFGf6",
	"$6$.loNOGL8OeooiuYt$o5Q98H1Cs8d.s3s2M8osK8oJjr0CtIme9CTQS0JM66mTU3hCwtxwTmiRHSgpW45uDgkU91AbIHGZ2ctFMg7601",
};

START_TEST(test_known_right_and_wrong)
{
	const char *h = known[_i].hash;

	ck_assert_msg(passwd_verify(PW, strlen(PW), h) == 1, "%s: right password",
	    known[_i].method);
	ck_assert_int_eq(passwd_verify("correct horsE", 13, h), 0);
	ck_assert_int_eq(passwd_verify("correct hors", 12, h), 0);
	ck_assert_int_eq(passwd_verify("correct horse ", 14, h), 0);
	ck_assert_int_eq(passwd_verify("", 0, h), 0);
	/* A NUL never matches: not at the end, not in the middle. */
	ck_assert_int_eq(passwd_verify(PW "\0", strlen(PW) + 1, h), 0);
	ck_assert_int_eq(passwd_verify("correct\0horse", 13, h), 0);
	ck_assert_int_eq(passwd_verify("\0", 1, h), 0);
	/* The length is honoured: a prefix of the buffer is another password. */
	ck_assert_int_eq(passwd_verify(PW "xyz", strlen(PW), h), 1);
}
END_TEST

START_TEST(test_empty_password)
{
	for (size_t i = 0; i < sizeof(empty_hashes) / sizeof(empty_hashes[0]); i++) {
		ck_assert_int_eq(passwd_verify("", 0, empty_hashes[i]), 1);
		ck_assert_int_eq(passwd_verify(" ", 1, empty_hashes[i]), 0);
		ck_assert_int_eq(passwd_verify("\0", 1, empty_hashes[i]), 0);
	}
}
END_TEST

START_TEST(test_utf8_password)
{
	for (size_t i = 0; i < sizeof(utf8_hashes) / sizeof(utf8_hashes[0]); i++) {
		ck_assert_int_eq(passwd_verify("p\xc3\xa4ssw\xc3\xb6rd", 10, utf8_hashes[i]), 1);
		/* The same letters in Latin-1 are other bytes. */
		ck_assert_int_eq(passwd_verify("p\xe4ssw\xf6rd", 8, utf8_hashes[i]), 0);
	}
}
END_TEST

START_TEST(test_unknown_methods)
{
	static const char *const unknown[] = {
		"$1$saltsalt$2vnaRpHa6Jxjz5n83ok8Z0",	/* MD5 crypt: refused */
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
		"abJnggxhB/yWI",			/* DES crypt */
		"plaintext",
		"",
		"*",
		"!",
		"!$y$j9T$YbkVhbJOUsayjQy5B30DO/$uINo8ObxrYUyFQONAUyljFcBsfwPj2r/FGWm..6TV44",
		/* An accepted prefix, but malformed. */
		"$y$",
		"$y$!!!",
		"$2b$99$YShFxtG2jxWGbrcVYfdSTexyojHAAiCHBWdQu5AiJkbP6YsmzrHbO",
	};

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		ck_assert_msg(passwd_verify(PW, strlen(PW), unknown[i]) == -1,
		    "hash #%zu was not refused", i);
	/* A bare prefix is a (salt-less) setting, not a hash: no match. */
	ck_assert_int_le(passwd_verify(PW, strlen(PW), "$6$"), 0);
	ck_assert_int_le(passwd_verify(PW, strlen(PW), "$5$"), 0);
}
END_TEST

START_TEST(test_parse_plain)
{
	struct passwd_entry e;
	const char *error;

	ck_assert_int_eq(passwd_parse(known[0].hash, &e, &error), 0);
	ck_assert_str_eq(e.hash, known[0].hash);
	ck_assert_uint_eq(e.quota, 0);
	ck_assert_int_eq(e.enabled, 1);
	passwd_entry_free(&e);
	ck_assert_ptr_null(e.hash);
}
END_TEST

START_TEST(test_parse_attributes)
{
	struct passwd_entry e;
	const char *error;
	char *s;

	ck_assert_int_eq(passwd_parse("$6$x$y \tquota=2G  enabled=no", &e, &error), 0);
	ck_assert_str_eq(e.hash, "$6$x$y");
	ck_assert_uint_eq(e.quota, 2ULL * 1024 * 1024 * 1024);
	ck_assert_int_eq(e.enabled, 0);
	s = passwd_format(&e);
	ck_assert_str_eq(s, "$6$x$y quota=2147483648 enabled=no");
	free(s);
	passwd_entry_free(&e);

	ck_assert_int_eq(passwd_parse("$y$a$b enabled=yes quota=0", &e, &error), 0);
	ck_assert_int_eq(e.enabled, 1);
	ck_assert_uint_eq(e.quota, 0);
	/* Defaults are not written back. */
	s = passwd_format(&e);
	ck_assert_str_eq(s, "$y$a$b");
	free(s);
	passwd_entry_free(&e);

	/* A locked hash parses (verification refuses it). */
	ck_assert_int_eq(passwd_parse("!$y$a$b", &e, &error), 0);
	ck_assert_str_eq(e.hash, "!$y$a$b");
	passwd_entry_free(&e);
}
END_TEST

/* format(parse(v)) == v for canonical values, and parse(format(e)) == e. */
START_TEST(test_round_trip)
{
	static const char *const values[] = {
		"$y$j9T$abc$def",
		"$y$j9T$abc$def quota=1048576",
		"$6$salt$hash enabled=no",
		"$2b$05$xyz quota=5 enabled=no",
	};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct passwd_entry e, e2;
		const char *error;
		char *s;

		ck_assert_int_eq(passwd_parse(values[i], &e, &error), 0);
		s = passwd_format(&e);
		ck_assert_str_eq(s, values[i]);
		ck_assert_int_eq(passwd_parse(s, &e2, &error), 0);
		ck_assert_str_eq(e2.hash, e.hash);
		ck_assert_uint_eq(e2.quota, e.quota);
		ck_assert_int_eq(e2.enabled, e.enabled);
		free(s);
		passwd_entry_free(&e);
		passwd_entry_free(&e2);
	}
}
END_TEST

START_TEST(test_parse_errors)
{
	static const char *const bad[] = {
		"",
		"   ",
		"secret",			/* not crypt(3) format */
		"$y$a$b foo=bar",		/* unknown attribute */
		"$y$a$b quota=lots",
		"$y$a$b quota=",
		"$y$a$b enabled=maybe",
		"$y$a$b extra",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct passwd_entry e = { (char *)"untouched", 7, 7 };
		const char *error = NULL;

		ck_assert_msg(passwd_parse(bad[i], &e, &error) == -1,
		    "accepted bad value #%zu", i);
		ck_assert_ptr_nonnull(error);
		/* The out-param is untouched on failure. */
		ck_assert_str_eq(e.hash, "untouched");
		ck_assert_uint_eq(e.quota, 7);
	}
}
END_TEST

START_TEST(test_hash_fresh)
{
	const char *error = NULL;
	char *h1 = passwd_hash("s3cret pass", &error);
	char *h2 = passwd_hash("s3cret pass", &error);

	ck_assert_ptr_nonnull(h1);
	ck_assert_ptr_nonnull(h2);
	ck_assert_int_eq(strncmp(h1, "$y$", 3), 0);
	/* A fresh salt each time. */
	ck_assert_str_ne(h1, h2);
	ck_assert_int_eq(passwd_verify("s3cret pass", 11, h1), 1);
	ck_assert_int_eq(passwd_verify("s3cret pass", 11, h2), 1);
	ck_assert_int_eq(passwd_verify("s3cret pasS", 11, h1), 0);
	free(h1);
	free(h2);
}
END_TEST

START_TEST(test_dummy_hash)
{
	const char *d = passwd_dummy_hash();

	ck_assert_int_eq(strncmp(d, "$y$", 3), 0);
	/* The same cost parameters as what postern writes. */
	ck_assert_int_eq(strncmp(d, known[0].hash, 7), 0);
	ck_assert_ptr_eq(passwd_dummy_hash(), d);
	ck_assert_int_eq(passwd_verify(PW, strlen(PW), d), 0);
	ck_assert_int_eq(passwd_verify("", 0, d), 0);
}
END_TEST

static Suite *
passwd_suite(void)
{
	Suite *s = suite_create("passwd");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_known_right_and_wrong, 0,
	    (int)(sizeof(known) / sizeof(known[0])));
	tcase_add_test(tc, test_empty_password);
	tcase_add_test(tc, test_utf8_password);
	tcase_add_test(tc, test_unknown_methods);
	tcase_add_test(tc, test_parse_plain);
	tcase_add_test(tc, test_parse_attributes);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_hash_fresh);
	tcase_add_test(tc, test_dummy_hash);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(passwd_suite());
}
