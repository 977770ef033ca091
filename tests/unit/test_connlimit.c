/*
 * Unit tests for lib/core/connlimit.c: the total and per-address limits, IPv4
 * and IPv4-mapped IPv6 addresses counting as one, processes (forked)
 * sharing the file, a restarted process zeroing its row, a retiring and
 * a new process of one instance side by side, and files of another
 * layout being replaced.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_util.h"
#include "connlimit.h"

struct tmp {
	char dir[64], path[128], lock[160];
};

static void
tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/pt-connlimit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/smtpd.conn", t->dir);
	snprintf(t->lock, sizeof(t->lock), "%s.lock", t->path);
}

static void
tmp_remove(struct tmp *t)
{
	unlink(t->path);
	unlink(t->lock);
	ck_assert_int_eq(rmdir(t->dir), 0);
}

/* An address from its text form. */
static const struct sockaddr *
addr(struct sockaddr_storage *ss, const char *text)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		sin->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

/* An address of the form prefix+N whose bucket is empty now (so a hash
 * collision cannot disturb a test), in ss. */
static const struct sockaddr *
addr_apart(struct connlimit *c, struct sockaddr_storage *ss, const char *prefix)
{
	char text[64];

	for (unsigned i = 1; i < 250; i++) {
		snprintf(text, sizeof(text), "%s%u", prefix, i);
		if (connlimit_addr(c, addr(ss, text)) == 0)
			return (const struct sockaddr *)ss;
	}
	ck_abort_msg("no free bucket");
	return NULL;
}

static struct connlimit *
open_ok(const char *path, unsigned nprocs, unsigned instance)
{
	struct connlimit *c = NULL;
	const char *error = NULL;

	ck_assert_msg(connlimit_open(path, nprocs, instance, &c, &error) == 0,
	    "connlimit_open: %s", error);
	ck_assert_ptr_nonnull(c);
	return c;
}

START_TEST(test_limits)
{
	struct tmp t;
	struct connlimit *c;
	struct sockaddr_storage ssa, ssb;
	const struct sockaddr *a, *b;
	const char *which = NULL;
	struct stat st;

	tmp_make(&t);
	c = open_ok(t.path, 2, 0);
	ck_assert_int_eq(stat(t.path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	a = addr(&ssa, "192.0.2.1");
	b = addr_apart(c, &ssb, "198.51.100.");
	ck_assert_int_eq(connlimit_enter(c, a, 3, 2, &which), 1);
	ck_assert_int_eq(connlimit_enter(c, a, 3, 2, &which), 1);
	ck_assert_int_eq(connlimit_enter(c, a, 3, 2, &which), 0);
	ck_assert_str_eq(which, "address");
	ck_assert_int_eq(connlimit_enter(c, b, 3, 2, &which), 1);
	ck_assert_int_eq(connlimit_enter(c, b, 3, 2, &which), 0);
	ck_assert_str_eq(which, "total");
	ck_assert_uint_eq(connlimit_total(c), 3);
	ck_assert_uint_eq(connlimit_addr(c, a), 2);
	ck_assert_uint_eq(connlimit_addr(c, b), 1);
	connlimit_leave(c, a);
	ck_assert_uint_eq(connlimit_total(c), 2);
	ck_assert_uint_eq(connlimit_addr(c, a), 1);
	ck_assert_int_eq(connlimit_enter(c, a, 3, 2, &which), 1);
	/* 0: no limit. */
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(connlimit_enter(c, a, 0, 0, &which), 1);
	ck_assert_uint_eq(connlimit_addr(c, a), 102);
	ck_assert_int_eq(connlimit_enter(c, b, 0, 1, &which), 0);
	ck_assert_int_eq(connlimit_enter(c, b, 103, 0, &which), 0);
	ck_assert_str_eq(which, "total");
	for (int i = 0; i < 102; i++)
		connlimit_leave(c, a);
	connlimit_leave(c, b);
	ck_assert_uint_eq(connlimit_total(c), 0);
	/* A leave without an enter never goes below zero. */
	connlimit_leave(c, b);
	ck_assert_uint_eq(connlimit_total(c), 0);
	ck_assert_uint_eq(connlimit_addr(c, b), 0);
	connlimit_close(&c);
	ck_assert_ptr_null(c);
	connlimit_close(&c);
	tmp_remove(&t);
}
END_TEST

/* An IPv4-mapped IPv6 client is its IPv4 address. */
START_TEST(test_mapped)
{
	struct tmp t;
	struct connlimit *c;
	struct sockaddr_storage s4, s6, sx;
	const struct sockaddr *v6;
	const char *which;

	tmp_make(&t);
	c = open_ok(t.path, 1, 0);
	ck_assert_int_eq(connlimit_enter(c, addr(&s6, "::ffff:192.0.2.9"), 0, 2, &which), 1);
	ck_assert_uint_eq(connlimit_addr(c, addr(&s4, "192.0.2.9")), 1);
	ck_assert_int_eq(connlimit_enter(c, addr(&s4, "192.0.2.9"), 0, 2, &which), 1);
	ck_assert_int_eq(connlimit_enter(c, addr(&s6, "::ffff:192.0.2.9"), 0, 2, &which), 0);
	ck_assert_str_eq(which, "address");
	v6 = addr_apart(c, &sx, "2001:db8::");
	ck_assert_int_eq(connlimit_enter(c, v6, 0, 2, &which), 1);
	ck_assert_uint_eq(connlimit_addr(c, v6), 1);
	ck_assert_uint_eq(connlimit_total(c), 3);
	connlimit_close(&c);
	tmp_remove(&t);
}
END_TEST

/* Native IPv6 clients count by their /64: hopping through one's own
 * prefix does not escape the per-address limit. */
START_TEST(test_ipv6_prefix)
{
	struct tmp t;
	struct connlimit *c;
	struct sockaddr_storage ss, so;
	const struct sockaddr *other;
	const char *which = NULL;

	tmp_make(&t);
	c = open_ok(t.path, 1, 0);
	(void)addr_apart(c, &ss, "2001:db8:1:2::");
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "2001:db8:1:2::1"), 0, 2, &which), 1);
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "2001:db8:1:2:ffff::9"), 0, 2, &which), 1);
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "2001:db8:1:2:dead:beef:0:1"), 0, 2,
	    &which), 0);
	ck_assert_str_eq(which, "address");
	ck_assert_uint_eq(connlimit_addr(c, addr(&ss, "2001:db8:1:2::77")), 2);
	/* Another /64 has its own count (one whose bucket is empty). */
	other = NULL;
	for (unsigned i = 3; i < 250 && other == NULL; i++) {
		char text[64];

		snprintf(text, sizeof(text), "2001:db8:1:%u::1", i);
		if (connlimit_addr(c, addr(&so, text)) == 0)
			other = (const struct sockaddr *)&so;
	}
	ck_assert_ptr_nonnull(other);
	ck_assert_int_eq(connlimit_enter(c, other, 0, 2, &which), 1);
	connlimit_leave(c, other);
	connlimit_leave(c, addr(&ss, "2001:db8:1:2::5"));
	connlimit_leave(c, addr(&ss, "2001:db8:1:2::6"));
	ck_assert_uint_eq(connlimit_addr(c, addr(&ss, "2001:db8:1:2::1")), 0);
	connlimit_close(&c);
	tmp_remove(&t);
}
END_TEST

/* Wait for one byte on fd. */
static void
wait_byte(int fd)
{
	char ch;

	ck_assert_int_eq(read(fd, &ch, 1), 1);
}

static void
send_byte(int fd)
{
	ck_assert_int_eq(write(fd, "x", 1), 1);
}

/* A child process: open instance, enter addr n times, tell the parent,
 * wait for the word, then leave `leaves` times, tell, wait, and exit
 * (without closing when crash is set). */
static pid_t
child_run(const char *path, unsigned instance, const char *text, int n, int leaves,
    int crash, int to_parent, int from_parent)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct connlimit *c = NULL;
		struct sockaddr_storage ss;
		const char *error, *which;
		char ch;

		if (connlimit_open(path, 2, instance, &c, &error) < 0)
			_exit(2);
		for (int i = 0; i < n; i++)
			if (connlimit_enter(c, addr(&ss, text), 0, 0, &which) != 1)
				_exit(3);
		if (write(to_parent, "x", 1) != 1 || read(from_parent, &ch, 1) != 1)
			_exit(4);
		for (int i = 0; i < leaves; i++)
			connlimit_leave(c, addr(&ss, text));
		if (write(to_parent, "x", 1) != 1 || read(from_parent, &ch, 1) != 1)
			_exit(4);
		if (!crash)
			connlimit_close(&c);
		_exit(0);
	}
	return pid;
}

/* Reap pid and check it exited 0. */
static void
reap(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child status %d", status);
}

/* Two processes count into one file; a process that dies leaves its
 * counts until its instance restarts, which zeroes them. */
START_TEST(test_processes)
{
	struct tmp t;
	struct connlimit *c;
	struct sockaddr_storage ss;
	const char *which;
	int up[2], down[2];
	pid_t pid;

	tmp_make(&t);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	c = open_ok(t.path, 2, 0);
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "192.0.2.1"), 0, 0, &which), 1);

	pid = child_run(t.path, 1, "192.0.2.1", 2, 1, 1, up[1], down[0]);
	wait_byte(up[0]);
	ck_assert_uint_eq(connlimit_total(c), 3);
	ck_assert_uint_eq(connlimit_addr(c, addr(&ss, "192.0.2.1")), 3);
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "192.0.2.1"), 0, 3, &which), 0);
	ck_assert_str_eq(which, "address");
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "192.0.2.1"), 3, 0, &which), 0);
	ck_assert_str_eq(which, "total");
	send_byte(down[1]);
	wait_byte(up[0]);
	ck_assert_uint_eq(connlimit_total(c), 2);
	send_byte(down[1]);
	reap(pid);
	/* It died with one connection counted. */
	ck_assert_uint_eq(connlimit_total(c), 2);

	/* Its instance restarts: the row is zeroed. */
	pid = child_run(t.path, 1, "192.0.2.1", 0, 0, 0, up[1], down[0]);
	wait_byte(up[0]);
	ck_assert_uint_eq(connlimit_total(c), 1);
	ck_assert_uint_eq(connlimit_addr(c, addr(&ss, "192.0.2.1")), 1);
	send_byte(down[1]);
	wait_byte(up[0]);
	send_byte(down[1]);
	reap(pid);

	connlimit_close(&c);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	tmp_remove(&t);
}
END_TEST

/* During a reload the retiring process and its replacement (the same
 * instance) run together: neither wipes the other's counts. */
START_TEST(test_same_instance)
{
	struct tmp t;
	struct connlimit *c;
	struct sockaddr_storage ss;
	const char *which;
	int up[2], down[2];
	pid_t pid;

	tmp_make(&t);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	c = open_ok(t.path, 2, 0);
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "192.0.2.1"), 0, 0, &which), 1);
	pid = child_run(t.path, 0, "192.0.2.1", 2, 2, 0, up[1], down[0]);
	wait_byte(up[0]);
	ck_assert_uint_eq(connlimit_total(c), 3);
	send_byte(down[1]);
	wait_byte(up[0]);
	ck_assert_uint_eq(connlimit_total(c), 1);
	send_byte(down[1]);
	reap(pid);
	ck_assert_uint_eq(connlimit_total(c), 1);
	connlimit_close(&c);

	/* Reopened by the same process after closing: a clean row. */
	c = open_ok(t.path, 2, 0);
	ck_assert_uint_eq(connlimit_total(c), 0);
	connlimit_close(&c);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	tmp_remove(&t);
}
END_TEST

/* A file of another layout is replaced by a new one; a process that
 * mapped the old one keeps counting there. */
START_TEST(test_layout)
{
	struct tmp t;
	struct connlimit *c, *c2;
	struct sockaddr_storage ss;
	const char *which, *error;
	char target[192];
	FILE *f;
	struct stat st;

	tmp_make(&t);
	c = open_ok(t.path, 2, 0);
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "192.0.2.1"), 0, 0, &which), 1);
	/* Another process count (after a reload): a new file. */
	c2 = open_ok(t.path, 3, 0);
	ck_assert_uint_eq(connlimit_total(c2), 0);
	ck_assert_uint_eq(connlimit_total(c), 1);
	ck_assert_int_eq(connlimit_enter(c2, addr(&ss, "192.0.2.1"), 0, 0, &which), 1);
	ck_assert_uint_eq(connlimit_total(c), 1);
	ck_assert_uint_eq(connlimit_total(c2), 1);
	connlimit_close(&c);
	connlimit_close(&c2);

	/* Garbage, and a file of the right size with a wrong header. */
	ck_assert_ptr_nonnull(f = fopen(t.path, "w"));
	ck_assert_int_ge(fputs("not a connection table\n", f), 0);
	ck_assert_int_eq(fclose(f), 0);
	c = open_ok(t.path, 3, 2);
	ck_assert_uint_eq(connlimit_total(c), 0);
	connlimit_close(&c);
	ck_assert_int_eq(stat(t.path, &st), 0);
	ck_assert_ptr_nonnull(f = fopen(t.path, "r+"));
	ck_assert_int_ge(fputs("XXXX", f), 0);
	ck_assert_int_eq(fclose(f), 0);
	c = open_ok(t.path, 3, 1);
	ck_assert_int_eq(connlimit_enter(c, addr(&ss, "192.0.2.1"), 0, 0, &which), 1);
	connlimit_close(&c);

	/* A symlink is replaced, never followed. */
	snprintf(target, sizeof(target), "%s/target", t.dir);
	ck_assert_ptr_nonnull(f = fopen(target, "w"));
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(unlink(t.path), 0);
	ck_assert_int_eq(symlink(target, t.path), 0);
	c = open_ok(t.path, 1, 0);
	ck_assert_int_eq(lstat(t.path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(stat(target, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	connlimit_close(&c);
	unlink(target);

	/* Bad arguments. */
	ck_assert_int_eq(connlimit_open(t.path, 0, 0, &c, &error), -1);
	ck_assert_int_eq(connlimit_open(t.path, 2, 2, &c, &error), -1);
	ck_assert_int_eq(connlimit_open("/nonexistent/dir/x", 2, 0, &c, &error), -1);
	ck_assert_ptr_nonnull(error);
	tmp_remove(&t);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("connlimit");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_mapped);
	tcase_add_test(tc, test_ipv6_prefix);
	tcase_add_test(tc, test_processes);
	tcase_add_test(tc, test_same_instance);
	tcase_add_test(tc, test_layout);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
