/*
 * Unit tests for lib/core/log.c: levels, the line format, newline injection,
 * the sanitizer, err_fmt, and the rate limiter.
 */
#include "autoconf.h"

#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Check one stderr line: the prefix's shape, the pid and the text. */
static void
check_stderr_line(const char *line, long pid, const char *text)
{
	static const char *const re =
	    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	    "tst\\[([0-9]+)\\]: level=(info|warn) (.*)$";
	regex_t rx;
	regmatch_t m[4];

	ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED), 0);
	ck_assert_msg(regexec(&rx, line, 4, m, 0) == 0, "bad line: %s", line);
	ck_assert_int_eq(strtol(line + m[1].rm_so, NULL, 10), pid);
	ck_assert_str_eq(line + m[3].rm_so, text);
	regfree(&rx);
}

/* The stderr format: one line per event, the pid right after fork(), the
 * time's shape, newlines flattened, long text cut at 2047 bytes. */
START_TEST(test_stderr_format)
{
	char path[] = "/tmp/test_log.XXXXXX";
	char *big = malloc(3000), *data, *line, *save = NULL;
	int fd = mkstemp(path), saved = dup(2), status, n = 0;
	long lines_pid[5];
	const char *texts[5];
	pid_t child;
	FILE *f;
	size_t len;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(saved, 0);
	ck_assert_ptr_nonnull(big);
	memset(big, 'z', 2999);
	big[2999] = '\0';
	fflush(stderr);
	ck_assert_int_eq(dup2(fd, 2), 2);
	log_set_hook(NULL, NULL);
	log_init("tst", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	log_info("event=one n=%d", 1);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		log_info("event=child");
		_exit(0);
	}
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(status, 0);
	log_warn("event=two text=\"a\nb\rc\"");
	log_info("event=big value=%s", big);
	log_info("event=three");
	fflush(stderr);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);

	f = fdopen(fd, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	len = (size_t)ftell(f);
	rewind(f);
	data = calloc(1, len + 1);
	ck_assert_uint_eq(fread(data, 1, len, f), len);
	fclose(f);
	unlink(path);
	ck_assert(len > 0 && data[len - 1] == '\n');
	texts[0] = "event=one n=1";
	texts[1] = "event=child";
	texts[2] = "event=two text=\"a b c\"";
	texts[3] = NULL;
	texts[4] = "event=three";
	lines_pid[0] = lines_pid[2] = lines_pid[3] = lines_pid[4] = getpid();
	lines_pid[1] = child;
	for (line = strtok_r(data, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), n++) {
		ck_assert_int_lt(n, 5);
		if (texts[n] != NULL) {
			check_stderr_line(line, lines_pid[n], texts[n]);
		} else {
			/* Cut at 2047 bytes of text. */
			const char *t = strstr(line, "event=big value=");

			ck_assert_ptr_nonnull(t);
			ck_assert_uint_eq(strlen(t), 2047);
		}
	}
	ck_assert_int_eq(n, 5);
	free(data);
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

/* Identical lines (same format, same reason) within the interval are
 * counted, and the next one written says how many were left out. */
START_TEST(test_limited_repeats)
{
	struct log_limit ll = { 0 };

	ck_assert_int_eq(log_limited_at(&ll, 1000, LOG_LEVEL_ERROR, "No space left on device",
	    "event=pickup_failed id=%s error=\"%s\"", "A1", "No space left on device"), 1);
	ck_assert_str_eq(last, "event=pickup_failed id=A1 error=\"No space left on device\"");
	for (int i = 0; i < 687; i++)
		ck_assert_int_eq(log_limited_at(&ll, 1000 + (uint64_t)i * 10, LOG_LEVEL_ERROR,
		    "No space left on device", "event=pickup_failed id=%s error=\"%s\"",
		    "A2", "No space left on device"), 0);
	ck_assert_int_eq(lines, 1);
	/* LOG_LIMIT_MS after the first line: written, with the count. */
	ck_assert_int_eq(log_limited_at(&ll, 1000 + LOG_LIMIT_MS, LOG_LEVEL_ERROR,
	    "No space left on device", "event=pickup_failed id=%s error=\"%s\"", "A3",
	    "No space left on device"), 1);
	ck_assert_str_eq(last, "event=pickup_failed id=A3 error=\"No space left on device\" "
	    "suppressed=687");
	ck_assert_int_eq(last_level, LOG_LEVEL_ERROR);
	/* The count starts again from that line. */
	ck_assert_int_eq(log_limited_at(&ll, 1001 + LOG_LIMIT_MS, LOG_LEVEL_ERROR,
	    "No space left on device", "event=pickup_failed id=%s error=\"%s\"", "A4",
	    "No space left on device"), 0);
	ck_assert_int_eq(log_limited_at(&ll, 1000 + 2 * LOG_LIMIT_MS, LOG_LEVEL_ERROR,
	    "No space left on device", "event=pickup_failed id=%s error=\"%s\"", "A5",
	    "No space left on device"), 1);
	ck_assert_str_eq(last, "event=pickup_failed id=A5 error=\"No space left on device\" "
	    "suppressed=1");
	/* Quiet for an interval: the next one has nothing to report. */
	ck_assert_int_eq(log_limited_at(&ll, 1000 + 4 * LOG_LIMIT_MS, LOG_LEVEL_ERROR,
	    "No space left on device", "event=pickup_failed id=%s error=\"%s\"", "A6",
	    "No space left on device"), 1);
	ck_assert_str_eq(last, "event=pickup_failed id=A6 error=\"No space left on device\"");
	ck_assert_int_eq(lines, 4);
}
END_TEST

/* Another reason or another format is another kind of line. */
START_TEST(test_limited_kinds)
{
	struct log_limit ll = { .interval_ms = 500 };

	ck_assert_int_eq(log_limited_at(&ll, 0, LOG_LEVEL_ERROR, "ENOSPC", "event=a"), 1);
	ck_assert_int_eq(log_limited_at(&ll, 1, LOG_LEVEL_ERROR, "EIO", "event=a"), 1);
	ck_assert_int_eq(log_limited_at(&ll, 2, LOG_LEVEL_ERROR, "ENOSPC", "event=b"), 1);
	ck_assert_int_eq(log_limited_at(&ll, 3, LOG_LEVEL_ERROR, NULL, "event=b"), 1);
	ck_assert_int_eq(log_limited_at(&ll, 4, LOG_LEVEL_ERROR, "", "event=b"), 0);
	/* The hash separates the two strings: "event=a"+"b" is not "event=ab"+"". */
	ck_assert_int_eq(log_limited_at(&ll, 5, LOG_LEVEL_ERROR, "", "event=ab"), 1);
	ck_assert_int_eq(log_limited_at(&ll, 6, LOG_LEVEL_ERROR, "b", "event=a"), 1);
	ck_assert_int_eq(lines, 6);
	/* The interval given is used: 499 ms later is still within it. */
	ck_assert_int_eq(log_limited_at(&ll, 499, LOG_LEVEL_ERROR, "ENOSPC", "event=a"), 0);
	ck_assert_int_eq(log_limited_at(&ll, 500, LOG_LEVEL_ERROR, "ENOSPC", "event=a"), 1);
	ck_assert_str_eq(last, "event=a suppressed=1");
}
END_TEST

/* A level that is off is neither written nor counted. */
START_TEST(test_limited_level_off)
{
	struct log_limit ll = { 0 };

	ck_assert_int_eq(log_limited_at(&ll, 0, LOG_LEVEL_DEBUG, "x", "event=d"), 0);
	ck_assert_int_eq(lines, 0);
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_DEBUG);
	ck_assert_int_eq(log_limited_at(&ll, 1, LOG_LEVEL_DEBUG, "x", "event=d"), 1);
	ck_assert_str_eq(last, "event=d");
}
END_TEST

/* More kinds than slots: the least recently written kind gives way, and
 * the others keep being limited. */
START_TEST(test_limited_slots)
{
	struct log_limit ll = { 0 };
	char reason[16];

	for (int i = 0; i <= LOG_LIMIT_SLOTS; i++) {
		snprintf(reason, sizeof(reason), "r%d", i);
		ck_assert_int_eq(log_limited_at(&ll, (uint64_t)i, LOG_LEVEL_WARN, reason,
		    "event=e error=%s", reason), 1);
	}
	ck_assert_int_eq(lines, LOG_LIMIT_SLOTS + 1);
	/* r0 was the oldest: its slot went to the last kind. */
	ck_assert_int_eq(log_limited_at(&ll, 100, LOG_LEVEL_WARN, "r0", "event=e error=%s",
	    "r0"), 1);
	for (int i = 2; i <= LOG_LIMIT_SLOTS; i++) {
		snprintf(reason, sizeof(reason), "r%d", i);
		ck_assert_int_eq(log_limited_at(&ll, 101, LOG_LEVEL_WARN, reason,
		    "event=e error=%s", reason), 0);
	}
}
END_TEST

/* A line as long as a line can be still ends with its count. */
START_TEST(test_limited_long_line)
{
	struct log_limit ll = { 0 };
	static char big[5000];

	memset(big, 'x', sizeof(big) - 1);
	ck_assert_int_eq(log_limited_at(&ll, 0, LOG_LEVEL_ERROR, "r", "event=long %s", big), 1);
	ck_assert_int_eq(log_limited_at(&ll, 1, LOG_LEVEL_ERROR, "r", "event=long %s", big), 0);
	ck_assert_int_eq(log_limited_at(&ll, LOG_LIMIT_MS, LOG_LEVEL_ERROR, "r",
	    "event=long %s", big), 1);
	ck_assert_ptr_nonnull(strstr(last, "xxx suppressed=1"));
	ck_assert_uint_le(strlen(last), 2047);
}
END_TEST

/* log_limited() reads the monotonic clock: two calls at once are within
 * the interval. */
START_TEST(test_limited_clock)
{
	struct log_limit ll = { 0 };

	ck_assert_int_eq(log_limited(&ll, LOG_LEVEL_ERROR, "r", "event=now"), 1);
	ck_assert_int_eq(log_limited(&ll, LOG_LEVEL_ERROR, "r", "event=now"), 0);
	ck_assert_int_eq(lines, 1);
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
	tcase_add_test(tc, test_stderr_format);
	tcase_add_loop_test(tc, test_safe, 0, sizeof(safe_cases) / sizeof(safe_cases[0]));
	tcase_add_test(tc, test_safe_cap_and_slots);
	tcase_add_test(tc, test_err_fmt);
	tcase_add_test(tc, test_limited_repeats);
	tcase_add_test(tc, test_limited_kinds);
	tcase_add_test(tc, test_limited_level_off);
	tcase_add_test(tc, test_limited_slots);
	tcase_add_test(tc, test_limited_long_line);
	tcase_add_test(tc, test_limited_clock);
	tcase_add_exit_test(tc, test_fatal_exits_1, 1);
	tcase_add_test_raise_signal(tc, test_panic_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
