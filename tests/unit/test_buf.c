/*
 * Unit tests for lib/core/buf.c: growth, the ceiling, formatting, consuming,
 * and the safe rendering of untrusted bytes.
 */
#include "autoconf.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check_util.h"

START_TEST(test_wipe)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_puts(&b, "secret"), 0);
	buf_wipe(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	buf_wipe(&b);		/* an empty buffer is fine */
}
END_TEST

START_TEST(test_empty)
{
	struct buf b = BUF_INIT;

	ck_assert_str_eq(buf_cstr(&b), "");
	ck_assert_uint_eq(b.len, 0);
	buf_reset(&b);
	buf_truncate(&b, 0);
	buf_consume(&b, 0);
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_str_eq(buf_cstr(&b), "");
	buf_free(&b);
	buf_free(&b);	/* twice is harmless */
	ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_append_grows_and_terminates)
{
	struct buf b;
	char big[10000];

	buf_init(&b, 0);
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(buf_append(&b, big, sizeof(big)), 0);
	ck_assert_uint_eq(b.len, 100000);
	ck_assert_int_eq(b.data[b.len], '\0');
	ck_assert_uint_ge(b.cap, b.len + 1);
	buf_free(&b);
}
END_TEST

START_TEST(test_embedded_nul)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_append(&b, "a\0b", 3), 0);
	ck_assert_uint_eq(b.len, 3);
	ck_assert_mem_eq(b.data, "a\0b", 3);
	buf_free(&b);
}
END_TEST

/* The ceiling: exactly max fits; one more byte fails and changes nothing. */
START_TEST(test_max_is_exact)
{
	struct buf b;

	buf_init(&b, 8);
	ck_assert_int_eq(buf_append(&b, "12345678", 8), 0);
	ck_assert_int_eq(buf_append(&b, "9", 1), -1);
	ck_assert_int_eq(buf_putc(&b, '9'), -1);
	ck_assert_int_eq(buf_puts(&b, "9"), -1);
	ck_assert_int_eq(buf_printf(&b, "%d", 9), -1);
	ck_assert_str_eq(buf_cstr(&b), "12345678");
	buf_consume(&b, 4);
	ck_assert_str_eq(buf_cstr(&b), "5678");
	ck_assert_int_eq(buf_printf(&b, "%s", "abcd"), 0);
	ck_assert_str_eq(buf_cstr(&b), "5678abcd");
	ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
	buf_free(&b);
}
END_TEST

/* Reserving on an empty buffer leaves a valid empty string. */
START_TEST(test_reserve_terminates)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_reserve(&b, 100), 0);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_str_eq(buf_cstr(&b), "");
	buf_free(&b);
}
END_TEST

START_TEST(test_reserve_overflow)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX), -1);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX - 2), -1);
	ck_assert_str_eq(buf_cstr(&b), "abc");
	buf_free(&b);
}
END_TEST

START_TEST(test_printf_long_and_partial_failure)
{
	struct buf b;
	char want[5001];

	buf_init(&b, 0);
	memset(want, 'y', 5000);
	want[5000] = '\0';
	ck_assert_int_eq(buf_printf(&b, "%s", want), 0);
	ck_assert_str_eq(buf_cstr(&b), want);
	buf_free(&b);

	/* A format that would pass the ceiling leaves the old contents. */
	buf_init(&b, 10);
	ck_assert_int_eq(buf_puts(&b, "abc"), 0);
	ck_assert_int_eq(buf_printf(&b, "%s", "0123456789"), -1);
	ck_assert_str_eq(buf_cstr(&b), "abc");
	ck_assert_uint_eq(b.len, 3);
	buf_free(&b);
}
END_TEST

START_TEST(test_consume_truncate_steal)
{
	struct buf b = BUF_INIT;
	char *s;

	ck_assert_int_eq(buf_puts(&b, "hello world"), 0);
	buf_consume(&b, 6);
	ck_assert_str_eq(buf_cstr(&b), "world");
	buf_truncate(&b, 3);
	ck_assert_str_eq(buf_cstr(&b), "wor");
	buf_consume(&b, 3);
	ck_assert_str_eq(buf_cstr(&b), "");
	ck_assert_int_eq(buf_puts(&b, "x"), 0);
	s = buf_steal(&b);
	ck_assert_str_eq(s, "x");
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	free(s);
	s = buf_steal(&b);	/* empty buffer: an empty string */
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

static const struct {
	const char *in;
	size_t len, cap;
	const char *want;
} safe_cases[] = {
	{ "plain", 5, 100, "plain" },
	{ "", 0, 100, "" },
	{ "a\r\nb", 4, 100, "a\\x0d\\x0ab" },
	{ "q\"b\\", 4, 100, "q\\x22b\\x5c" },
	{ "\0\x7f\xff", 3, 100, "\\x00\\x7f\\xff" },
	{ "abcdef", 6, 3, "abc..." },
	{ "abc", 3, 3, "abc" },
	{ "abc", 3, 0, "..." },
};

START_TEST(test_put_safe)
{
	struct buf b;

	buf_init(&b, 2);	/* the ceiling does not apply */
	buf_put_safe(&b, safe_cases[_i].in, safe_cases[_i].len, safe_cases[_i].cap);
	ck_assert_str_eq(buf_cstr(&b), safe_cases[_i].want);
	buf_free(&b);
}
END_TEST

/* Misuse is an invariant violation: abort, never silent corruption. */
START_TEST(test_consume_past_end_aborts)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_puts(&b, "ab"), 0);
	buf_consume(&b, 3);
}
END_TEST

START_TEST(test_truncate_past_end_aborts)
{
	struct buf b = BUF_INIT;

	buf_truncate(&b, 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_wipe);
	tcase_add_test(tc, test_append_grows_and_terminates);
	tcase_add_test(tc, test_embedded_nul);
	tcase_add_test(tc, test_max_is_exact);
	tcase_add_test(tc, test_reserve_terminates);
	tcase_add_test(tc, test_reserve_overflow);
	tcase_add_test(tc, test_printf_long_and_partial_failure);
	tcase_add_test(tc, test_consume_truncate_steal);
	tcase_add_loop_test(tc, test_put_safe, 0, sizeof(safe_cases) / sizeof(safe_cases[0]));
	tcase_add_test_raise_signal(tc, test_consume_past_end_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, test_truncate_past_end_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
