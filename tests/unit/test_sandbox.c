/*
 * Unit tests for lib/core/sandbox: the profile table covers every built-in
 * daemon program, names only real system calls, an unknown profile is
 * refused, and (built with seccomp) a confined child may do its job but
 * dies of SIGSYS on a call outside its profile.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_util.h"
#include "sandbox.h"

/* Every program built on lib/core/daemon.c, which applies its profile. */
static const char *const daemon_programs[] = {
	"smtpd", "qmgr", "local", "auth", "pop3d", "testdaemon",
};

START_TEST(test_every_daemon_has_a_profile)
{
	for (size_t i = 0; i < sizeof(daemon_programs) / sizeof(daemon_programs[0]); i++)
		ck_assert_msg(sandbox_profile_exists(daemon_programs[i]),
		    "no sandbox profile for %s", daemon_programs[i]);
}
END_TEST

START_TEST(test_profile_names)
{
	size_t n = 0;
	const char *const *names = sandbox_profile_names(&n);

	ck_assert_uint_ge(n, sizeof(daemon_programs) / sizeof(daemon_programs[0]));
	for (size_t i = 0; i < n; i++) {
		ck_assert(sandbox_profile_exists(names[i]));
		for (size_t j = i + 1; j < n; j++)
			ck_assert_str_ne(names[i], names[j]);
	}
	ck_assert(!sandbox_profile_exists("nosuchdaemon"));
	ck_assert(!sandbox_profile_exists(""));
	ck_assert(!sandbox_profile_exists(NULL));
}
END_TEST

START_TEST(test_table_names_real_calls)
{
	const char *error = NULL;

	ck_assert_msg(sandbox_check_table(&error) == 0, "%s", error);
}
END_TEST

START_TEST(test_unknown_profile_fails)
{
	const char *error = NULL;

	ck_assert_int_eq(sandbox_apply("nosuchdaemon", &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_nonnull(strstr(error, "nosuchdaemon"));
	error = NULL;
	ck_assert_int_eq(sandbox_apply(NULL, &error), -1);
	ck_assert_ptr_nonnull(error);
}
END_TEST

/* The test process, for the child to aim at (getppid is not allowed). */
static pid_t test_parent;

/* Fork a child that applies profile and then runs body; its wait status. */
static int
run_confined(const char *profile, void (*body)(void))
{
	pid_t pid;
	int status;

	test_parent = getpid();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *error;

		alarm(10);
		if (sandbox_apply(profile, &error) < 0)
			_exit(100);
		body();
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* What every daemon does: pipes, files, Unix sockets, memory, time. */
static void
allowed_body(void)
{
	int fd, sv;
	char c = 'x';
	void *mem;
	struct timespec ts;

	if ((fd = open("/dev/zero", O_RDONLY | O_CLOEXEC)) < 0 ||
	    read(fd, &c, 1) != 1 || close(fd) < 0)
		_exit(101);
	if ((fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0 ||
	    write(fd, &c, 1) != 1 || close(fd) < 0)
		_exit(105);
	if ((sv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		_exit(102);
	close(sv);
	if ((mem = malloc(1 << 20)) == NULL)
		_exit(103);
	memset(mem, 1, 1 << 20);
	free(mem);
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		_exit(104);
}

static void
packet_socket_body(void)
{
	(void)socket(AF_PACKET, SOCK_DGRAM, 0);
	_exit(106);
}

static void
probe_other_body(void)
{
	/* Signal 0 only asks whether the process exists: allowed. */
	if (kill(test_parent, 0) < 0)
		_exit(108);
}

static void
signal_other_body(void)
{
	(void)kill(test_parent, SIGCONT);
	_exit(107);
}

static void
ptrace_body(void)
{
	(void)syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
	_exit(109);
}

static void
abort_body(void)
{
	abort();
}

START_TEST(test_confined_child)
{
	int status;

	if (!sandbox_enforcing())
		return;		/* no seccomp, or a log-only (ASan) build */
	/* Under valgrind, seccomp(2) is not available (ENOSYS): the child
	 * cannot confine itself, and there is nothing to test. */
	status = run_confined("testdaemon", allowed_body);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 100) {
		fprintf(stderr, "test_sandbox: cannot load a filter here "
		    "(valgrind?): confinement not tested\n");
		return;
	}
	for (size_t i = 0; i < sizeof(daemon_programs) / sizeof(daemon_programs[0]); i++) {
		status = run_confined(daemon_programs[i], allowed_body);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "%s: allowed calls: status %d", daemon_programs[i], status);
		status = run_confined(daemon_programs[i], packet_socket_body);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
		    "%s: packet socket: status %d", daemon_programs[i], status);
	}
	status = run_confined("testdaemon", probe_other_body);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "kill(other, 0): status %d", status);
	status = run_confined("testdaemon", ptrace_body);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
	    "ptrace: status %d", status);
	status = run_confined("testdaemon", signal_other_body);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
	    "kill(other): status %d", status);
	/* abort() still works: a panic must stay a SIGABRT, not a SIGSYS. */
	status = run_confined("testdaemon", abort_body);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
	    "abort: status %d", status);
}
END_TEST

START_TEST(test_unavailable_is_noop)
{
	const char *error = NULL;
	pid_t pid;
	int status;

	if (sandbox_available())
		return;
	/* Without seccomp, applying a known profile succeeds and restricts
	 * nothing. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (sandbox_apply("testdaemon", &error) < 0)
			_exit(1);
		_exit(kill(test_parent, 0) == 0 ? 0 : 2);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_every_daemon_has_a_profile);
	tcase_add_test(tc, test_profile_names);
	tcase_add_test(tc, test_table_names_real_calls);
	tcase_add_test(tc, test_unknown_profile_fails);
	tcase_add_test(tc, test_confined_child);
	tcase_add_test(tc, test_unavailable_is_noop);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
