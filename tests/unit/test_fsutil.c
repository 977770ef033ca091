/*
 * Unit tests for lib/core/fsutil.c's file-system fallbacks: fs_caps() probes
 * once and leaves nothing behind; fs_rename_unique() never replaces a
 * file, on the RENAME_NOREPLACE path and on the check + rename fallback
 * alike, and never leaves two names; fs_sweep_old() removes only stale
 * plain files.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check_util.h"
#include "fsutil.h"

/* A fresh temporary directory, open. */
static int
tmpdir(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "/tmp/test_fsutil.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(path));
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Entries of dirfd, "." and ".." excluded. */
static int
entries(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
	DIR *d = fdopendir(fd);
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
put(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
expect(int dirfd, const char *name, const char *text)
{
	char buf[64] = { 0 };
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(read(fd, buf, sizeof(buf) - 1), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	close(fd);
	ck_assert_str_eq(buf, text);
	ck_assert_uint_eq(st.st_nlink, 1);
}

static void
cleanup(const char *path, int fd)
{
	char cmd[128];

	close(fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", path);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_caps_probe_leaves_nothing)
{
	char path[64];
	int fd = tmpdir(path, sizeof(path));
	struct fs_caps a = fs_caps(fd, path), b = fs_caps(fd, path);
	int direct, t;

	/* The answer matches what the file system does when asked here. */
	put(fd, "x", "");
	direct = renameat2(fd, "x", fd, "y", RENAME_NOREPLACE) == 0;
	ck_assert_int_eq(unlinkat(fd, direct ? "y" : "x", 0), 0);
	ck_assert_int_eq(a.noreplace, direct);
	t = openat(fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_eq(a.tmpfile, t >= 0);
	if (t >= 0)
		close(t);
	ck_assert_int_eq(b.noreplace, a.noreplace);
	ck_assert_int_eq(b.tmpfile, a.tmpfile);
	ck_assert_int_eq(entries(fd), 0);
	cleanup(path, fd);
}
END_TEST

/* Both paths of fs_rename_unique: _i 0 with the flag, 1 the fallback. */
START_TEST(test_rename_unique_never_replaces)
{
	struct fs_caps c = { 0, _i == 0 };
	char path[64];
	int fd = tmpdir(path, sizeof(path));

	ck_assert_int_eq(mkdirat(fd, "tmp", 0700), 0);
	ck_assert_int_eq(mkdirat(fd, "new", 0700), 0);
	int tmp = openat(fd, "tmp", O_RDONLY | O_DIRECTORY), new = openat(fd, "new",
	    O_RDONLY | O_DIRECTORY);

	put(tmp, "a", "first");
	ck_assert_int_eq(fs_rename_unique(&c, tmp, "a", new, "A"), 0);
	ck_assert_int_eq(entries(tmp), 0);
	expect(new, "A", "first");

	put(tmp, "b", "second");
	errno = 0;
	ck_assert_int_eq(fs_rename_unique(&c, tmp, "b", new, "A"), -1);
	ck_assert_int_eq(errno, EEXIST);
	expect(new, "A", "first");
	expect(tmp, "b", "second");

	/* A missing source is the rename's own error. */
	ck_assert_int_eq(fs_rename_unique(&c, tmp, "nothing", new, "C"), -1);
	ck_assert_int_eq(errno, ENOENT);
	close(tmp);
	close(new);
	cleanup(path, fd);
}
END_TEST

START_TEST(test_sweep_old_removes_only_stale_files)
{
	struct timespec old[2] = { { time(NULL) - FS_TMP_MAX_AGE - 60, 0 },
	    { time(NULL) - FS_TMP_MAX_AGE - 60, 0 } };
	char path[64];
	int fd = tmpdir(path, sizeof(path));

	put(fd, "stale", "x");
	put(fd, "fresh", "y");
	put(fd, ".dot", "z");
	ck_assert_int_eq(mkdirat(fd, "subdir", 0700), 0);
	ck_assert_int_eq(utimensat(fd, "stale", old, 0), 0);
	ck_assert_int_eq(utimensat(fd, ".dot", old, 0), 0);
	ck_assert_int_eq(utimensat(fd, "subdir", old, 0), 0);
	ck_assert_uint_eq(fs_sweep_old(fd, FS_TMP_MAX_AGE, path), 1);
	ck_assert_int_eq(faccessat(fd, "stale", F_OK, 0), -1);
	ck_assert_int_eq(faccessat(fd, "fresh", F_OK, 0), 0);
	ck_assert_int_eq(faccessat(fd, ".dot", F_OK, 0), 0);
	ck_assert_int_eq(faccessat(fd, "subdir", F_OK, 0), 0);
	ck_assert_uint_eq(fs_sweep_old(fd, FS_TMP_MAX_AGE, path), 0);
	cleanup(path, fd);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("fsutil");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_caps_probe_leaves_nothing);
	tcase_add_loop_test(tc, test_rename_unique_never_replaces, 0, 2);
	tcase_add_test(tc, test_sweep_old_removes_only_stale_files);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
