/*
 * Shared helpers for postern's Check unit tests.
 */
#ifndef POSTERN_CHECK_UTIL_H
#define POSTERN_CHECK_UTIL_H

#include <check.h>
#include <stdlib.h>

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

#endif
