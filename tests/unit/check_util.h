/*
 * Shared helpers for postern's Check unit tests.
 */
#ifndef POSTERN_CHECK_UTIL_H
#define POSTERN_CHECK_UTIL_H

#include <check.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "ev.h"
#include "log.h"

/*
 * Run one suite with fork mode left to CK_FORK (default: fork) and the
 * normal verbosity, which prints Check's summary line; exit status is
 * 0 when every test passed.  Log lines go to stderr at warn and above.
 */
static inline int
check_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_WARN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Guard timer of check_run_loop_for(): the time is up. */
static inline void
check_loop_guard(struct ev_timer *t, void *arg)
{
	(void)t;
	ev_break(arg);
}

/* Run the loop for at most ms milliseconds (or until something breaks it),
 * so a test that waits for a callback fails instead of hanging. */
static inline void
check_run_loop_for(struct ev_loop *loop, uint64_t ms)
{
	struct ev_timer *t = ev_timer_add(loop, ms, 0, check_loop_guard, loop);

	ck_assert_int_eq(ev_run(loop), 0);
	ev_timer_del(&t);
}

/* Wait for the forked child pid; fail unless it exited 0 (its exit code
 * or its stderr says which step failed). */
static inline void
check_child_ok(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child status %d (its exit code or stderr says which step)", status);
}

#endif
