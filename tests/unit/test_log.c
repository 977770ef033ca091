/*
 * Unit tests for lib/log.c: levels, the line format, newline injection,
 * the sanitizer, and err_fmt.
 */
#include "autoconf.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "log.h"

static char last[4096];
static enum log_level last_level;
static int lines;

static void
hook(enum log_level level, const char *line, void *arg)
{
	(void)arg;
	last_level = level;
	snprintf(last, sizeof(last), "%s", line);
	lines++;
}

static void
setup(void)
{
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	log_set_hook(hook, NULL);
	last[0] = '\0';
	lines = 0;
}

static void
teardown(void)
{
	log_set_hook(NULL, NULL);
}

START_TEST(test_levels_filter)
{
	log_debug("event=hidden");
	ck_assert_int_eq(lines, 0);
	log_info("event=shown n=%d", 1);
	ck_assert_int_eq(lines, 1);
	ck_assert_str_eq(last, "event=shown n=1");
	ck_assert_int_eq(last_level, LOG_LEVEL_INFO);
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	log_warn("event=hidden");
	ck_assert_int_eq(lines, 1);
	log_error("event=err");
	ck_assert_int_eq(lines, 2);
	ck_assert_int_eq(last_level, LOG_LEVEL_ERROR);
}
END_TEST

START_TEST(test_level_names)
{
	enum log_level l;

	ck_assert_int_eq(log_level_parse("warn", &l), 0);
	ck_assert_int_eq(l, LOG_LEVEL_WARN);
	l = LOG_LEVEL_PANIC;
	ck_assert_int_eq(log_level_parse("WARN", &l), -1);
	ck_assert_int_eq(log_level_parse("", &l), -1);
	ck_assert_int_eq(l, LOG_LEVEL_PANIC);	/* untouched on failure */
	ck_assert_str_eq(log_level_name(LOG_LEVEL_DEBUG), "debug");
	ck_assert_ptr_null(log_level_name((enum log_level)99));
}
END_TEST

/* A peer-controlled newline must not forge a second log line. */
START_TEST(test_no_newline_injection)
{
	log_info("event=x value=%s", "a\nlevel=info event=forged\r");
	ck_assert_int_eq(lines, 1);
	ck_assert_ptr_null(strchr(last, '\n'));
	ck_assert_ptr_null(strchr(last, '\r'));
}
END_TEST

START_TEST(test_long_line_is_truncated_not_overflowed)
{
	char *big = malloc(10000);

	memset(big, 'z', 9999);
	big[9999] = '\0';
	log_info("event=big value=%s", big);
	ck_assert_int_eq(lines, 1);
	ck_assert_uint_lt(strlen(last), 2048);
	free(big);
}
END_TEST

static const struct {
	const char *in;
	size_t len;
	const char *want;
} safe_cases[] = {
	{ "user@example.test", 17, "user@example.test" },
	{ "", 0, "\"\"" },
	{ "two words", 9, "\"two words\"" },
	{ "evil\"=x", 7, "evil\\x22=x" },
	{ "nl\nx", 4, "nl\\x0ax" },
};

START_TEST(test_safe)
{
	ck_assert_str_eq(log_safe_n(safe_cases[_i].in, safe_cases[_i].len),
	    safe_cases[_i].want);
}
END_TEST

START_TEST(test_safe_cap_and_slots)
{
	char big[1000];
	const char *a, *b, *r;

	memset(big, 'a', sizeof(big));
	r = log_safe_n(big, sizeof(big));
	ck_assert_uint_eq(strlen(r), LOG_SAFE_CAP + 3);
	ck_assert_str_eq(r + LOG_SAFE_CAP, "...");
	/* Several results stay valid within one log call. */
	a = log_safe("first");
	b = log_safe("second");
	ck_assert_str_eq(a, "first");
	ck_assert_str_eq(b, "second");
	ck_assert_str_eq(log_safe(NULL), "-");
}
END_TEST

START_TEST(test_err_fmt)
{
	const char *a = err_fmt("one %d", 1);
	const char *b = err_fmt("two %s", "x");
	char big[2000];

	ck_assert_str_eq(a, "one 1");
	ck_assert_str_eq(b, "two x");
	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_uint_eq(strlen(err_fmt("%s", big)), 511);
}
END_TEST

START_TEST(test_fatal_exits_1)
{
	log_fatal("event=fatal_test");
}
END_TEST

START_TEST(test_panic_aborts)
{
	log_panic("event=panic_test");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_levels_filter);
	tcase_add_test(tc, test_level_names);
	tcase_add_test(tc, test_no_newline_injection);
	tcase_add_test(tc, test_long_line_is_truncated_not_overflowed);
	tcase_add_loop_test(tc, test_safe, 0, sizeof(safe_cases) / sizeof(safe_cases[0]));
	tcase_add_test(tc, test_safe_cap_and_slots);
	tcase_add_test(tc, test_err_fmt);
	tcase_add_exit_test(tc, test_fatal_exits_1, 1);
	tcase_add_test_raise_signal(tc, test_panic_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
