/*
 * sandbox: the seccomp allow-list each daemon puts on itself once its
 * set-up is done (after the privilege drop, no-new-privs and post_drop),
 * so that a compromised daemon can make only the system calls its job
 * needs.  The profiles are a table in sandbox.c keyed by the daemon's
 * program name; any call outside the profile kills the whole process
 * with SIGSYS, which master logs (event=daemon_died ... signal=31) before
 * restarting the daemon.
 *
 * Built without libseccomp (configure --disable-seccomp, or libseccomp
 * not found), sandbox_apply() only checks the profile's name and logs once
 * that this build has no sandbox.
 */
#ifndef POSTERN_SANDBOX_H
#define POSTERN_SANDBOX_H

#include <stddef.h>

/*
 * Confine the calling process -- every one of its threads -- to the
 * profile named profile (a daemon's program name, "smtpd").  Irreversible.
 * 0 on success (or, in a build without seccomp, after logging that);
 * -1 with *error_r if there is no such profile or the kernel refused the
 * filter.  A daemon must treat -1 as fatal.
 */
int sandbox_apply(const char *profile, const char **error_r)
	__attribute__((warn_unused_result));

/* 1 if a profile of this name exists, else 0. */
int sandbox_profile_exists(const char *profile);

/* 1 if this build has seccomp filtering, else 0. */
int sandbox_available(void);
/* 1 if a call outside the profile kills the process; 0 if this build
 * only logs it (built with -DPOSTERN_SANDBOX_LOG or AddressSanitizer) or
 * has no seccomp. */
int sandbox_enforcing(void);

/* The names of the built-in profiles, in table order, for tests:
 * *n_r gets their number; the array is static. */
const char *const *sandbox_profile_names(size_t *n_r);

/*
 * Check the table against this machine's system call table: every name in
 * every profile must be a system call libseccomp knows for the native
 * architecture.  0, or -1 with *error_r naming the first unknown one.
 * Without seccomp: always 0.
 */
int sandbox_check_table(const char **error_r) __attribute__((warn_unused_result));

#endif
