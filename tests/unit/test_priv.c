/*
 * Unit tests for lib/core/priv.c.  The privilege drop itself needs root: as
 * root each drop runs in a forked child and is checked from outside too;
 * as an ordinary user the drop must fail cleanly.
 */
#include "autoconf.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_util.h"
#include "priv.h"

#define NOBODY_UID 65534

START_TEST(test_lookup)
{
	uid_t uid = 12345;
	gid_t gid = 12345;
	const char *error = NULL;

	ck_assert_int_eq(priv_lookup_user("root", &uid, &gid, &error), 0);
	ck_assert_uint_eq(uid, 0);
	ck_assert_uint_eq(gid, 0);
	uid = 12345;
	ck_assert_int_eq(priv_lookup_user("no-such-user-postern", &uid, &gid, &error), -1);
	ck_assert_uint_eq(uid, 12345);
	ck_assert_ptr_nonnull(strstr(error, "does not exist"));
	ck_assert_int_eq(priv_lookup_group("root", &gid, &error), 0);
	ck_assert_uint_eq(gid, 0);
	ck_assert_int_eq(priv_lookup_group("no-such-group-postern", &gid, &error), -1);
}
END_TEST

/* As root: drop to nobody in a child and report what the child sees. */
START_TEST(test_drop_as_root)
{
	pid_t pid;

	if (geteuid() != 0)
		return;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *error;

		if (setgroups(1, (gid_t[]){ 4 }) < 0)
			_exit(10);
		if (priv_drop(NOBODY_UID, NOBODY_UID, NULL, &error) < 0) {
			fprintf(stderr, "priv_drop: %s\n", error);
			_exit(11);
		}
		if (getuid() != NOBODY_UID || geteuid() != NOBODY_UID ||
		    getgid() != NOBODY_UID || getegid() != NOBODY_UID)
			_exit(12);
		if (getgroups(0, NULL) != 0)
			_exit(13);
		if (setuid(0) == 0 || setgid(0) == 0)
			_exit(14);
		_exit(0);
	}
	check_child_ok(pid);
}
END_TEST

/* As root: drop keeping two supplementary groups; exactly those remain.
 * Group 0 and too many groups are refused before anything changes. */
START_TEST(test_drop_groups_as_root)
{
	pid_t pid;

	if (geteuid() != 0)
		return;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const gid_t keep[] = { 20, 4 }, root_too[] = { 4, 0 };
		gid_t many[PRIV_MAX_GROUPS + 1], have[8];
		const char *error;

		for (size_t i = 0; i < PRIV_MAX_GROUPS + 1; i++)
			many[i] = (gid_t)(100 + i);
		if (setgroups(3, (gid_t[]){ 4, 5, 6 }) < 0)
			_exit(10);
		if (priv_drop_groups(NOBODY_UID, NOBODY_UID, root_too, 2, NULL, &error) == 0 ||
		    strstr(error, "group 0") == NULL || getuid() != 0)
			_exit(11);
		if (priv_drop_groups(NOBODY_UID, NOBODY_UID, many, PRIV_MAX_GROUPS + 1,
		    NULL, &error) == 0 || getuid() != 0)
			_exit(12);
		if (priv_drop_groups(NOBODY_UID, NOBODY_UID, keep, 2, NULL, &error) < 0) {
			fprintf(stderr, "priv_drop_groups: %s\n", error);
			_exit(13);
		}
		if (getgroups(8, have) != 2 || (have[0] != 4 && have[1] != 4) ||
		    (have[0] != 20 && have[1] != 20))
			_exit(14);
		if (getuid() != NOBODY_UID || getgid() != NOBODY_UID || setuid(0) == 0)
			_exit(15);
		/* Nor can the process give itself a group back. */
		if (setgroups(1, (gid_t[]){ 5 }) == 0)
			_exit(16);
		_exit(0);
	}
	check_child_ok(pid);
}
END_TEST

/* As root: drop with a chroot; "/" in the child is the chroot directory. */
START_TEST(test_drop_chroot_as_root)
{
	char dir[] = "/tmp/ptchroot-XXXXXX";
	pid_t pid;

	if (geteuid() != 0)
		return;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *error;
		struct stat st;

		if (priv_drop(NOBODY_UID, NOBODY_UID, dir, &error) < 0)
			_exit(11);
		/* The temporary directory is empty: /tmp does not exist inside. */
		if (stat("/tmp", &st) == 0)
			_exit(12);
		if (chroot("/") == 0)
			_exit(13);
		_exit(0);
	}
	check_child_ok(pid);
	rmdir(dir);
}
END_TEST

/* As an ordinary user the drop cannot change groups: it must say so. */
START_TEST(test_drop_unprivileged_fails)
{
	const char *error = NULL;

	if (geteuid() == 0)
		return;
	ck_assert_int_eq(priv_drop(getuid(), getgid(), NULL, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "setgroups"));
}
END_TEST

START_TEST(test_no_new_privs)
{
	const char *error;

	ck_assert_int_eq(priv_no_new_privs(&error), 0);
	ck_assert_int_eq(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1);
}
END_TEST

START_TEST(test_parent_death_signal)
{
	ck_assert_int_eq(priv_parent_death_signal(SIGTERM, getppid()), 0);
	ck_assert_int_eq(priv_parent_death_signal(SIGTERM, getppid() + 1), -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("priv");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_lookup);
	tcase_add_test(tc, test_drop_as_root);
	tcase_add_test(tc, test_drop_groups_as_root);
	tcase_add_test(tc, test_drop_chroot_as_root);
	tcase_add_test(tc, test_drop_unprivileged_fails);
	tcase_add_test(tc, test_no_new_privs);
	tcase_add_test(tc, test_parent_death_signal);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
