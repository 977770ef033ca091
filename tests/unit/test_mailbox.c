/*
 * Unit tests for the Maildir module's reader (lib/mail/maildir_read.c, the
 * mailbox_* functions) and the format it reads (lib/mail/maildir.c): opening
 * (and refusing symlinks), scanning and sorting, new/cur duplicates, the
 * size cache, reopening renamed messages, flags, expunge, the session
 * lock (in one process and across a fork), UIDLs, name fields, and the
 * export state machine fed at every chunk boundary.  Each test runs in a
 * fresh temporary mail store.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_util.h"
#include "maildir.h"
#include "xalloc.h"

#define MBOX "example.test/demo"

static char root[64];		/* the test's directory */
static char store_path[128];	/* root/store */
static char md_path[256];	/* the Maildir */
static int storefd = -1;

static void
setup(void)
{
	snprintf(root, sizeof(root), "/tmp/test_mailbox.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(store_path, sizeof(store_path), "%s/store", root);
	snprintf(md_path, sizeof(md_path), "%s/" MBOX, store_path);
	ck_assert_int_eq(mkdir(store_path, 0700), 0);
	storefd = open(store_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(storefd, 0);
}

static void
teardown(void)
{
	char cmd[200];

	(void)close(storefd);
	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s'; rm -rf '%s'", root, root);
	ck_assert_int_eq(system(cmd), 0);
}

/* A path below the Maildir. */
static const char *
md_file(const char *sub, const char *name)
{
	static char path[2][1024];
	static int slot;

	slot = !slot;
	snprintf(path[slot], sizeof(path[slot]), "%s/%s/%s", md_path, sub, name);
	return path[slot];
}

/* Write a file. */
static void
put_path(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(close(fd), 0);
}

/* Write a file below the Maildir. */
static void
put(const char *sub, const char *name, const char *text)
{
	put_path(md_file(sub, name), text);
}

/* The contents of a file (at most 4095 bytes) in a static buffer, or
 * NULL if it cannot be opened. */
static const char *
slurp(const char *path)
{
	static char text[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	ck_assert_int_ge(n, 0);
	text[n] = '\0';
	return text;
}

/* Whether a file exists (without following a symlink). */
static int
exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* Open the test mailbox (creating it), asserting success. */
static struct mailbox *
open_mb(void)
{
	struct mailbox *mb = NULL;
	const char *error = NULL;

	ck_assert_msg(mailbox_open(storefd, MBOX, &mb, &error) == 0, "%s", error);
	return mb;
}

/* Scan, asserting success. */
static void
scan(struct mailbox *mb, int move_new)
{
	const char *error = NULL;

	ck_assert_msg(mailbox_scan(mb, move_new, &error) == 0, "%s", error);
}

/* The descriptors this process has open. */
static size_t
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

START_TEST(test_open_fd_budget)
{
	const char *error = NULL;
	size_t before = open_fds();
	struct mailbox *mb = open_mb();

	/* The Maildir, new/ and cur/; then the lock. */
	ck_assert_uint_eq(open_fds() - before, 3);
	ck_assert_int_eq(mailbox_lock(mb, "test.lock", &error), 1);
	ck_assert_uint_eq(open_fds() - before, 4);
	scan(mb, 1);
	ck_assert_uint_eq(open_fds() - before, 4);
	mailbox_close(&mb);
	ck_assert_uint_eq(open_fds(), before);
}
END_TEST

START_TEST(test_open_creates)
{
	const char *dirs[] = { "example.test", MBOX, MBOX "/tmp", MBOX "/new", MBOX "/cur" };
	struct mailbox *mb = open_mb();
	char path[300];
	struct stat sb;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", store_path, dirs[i]);
		ck_assert_int_eq(lstat(path, &sb), 0);
		ck_assert(S_ISDIR(sb.st_mode));
		ck_assert_int_eq(sb.st_mode & 07777, 0700);
	}
	scan(mb, 1);
	ck_assert_uint_eq(mailbox_count(mb), 0);
	/* Nothing to cache, no cache file. */
	ck_assert(!exists(md_file(".", MAILBOX_VSIZE_CACHE)));
	mailbox_close(&mb);
	ck_assert_ptr_null(mb);
	mailbox_close(&mb);
}
END_TEST

/* Symlinks planted at each level of the path. */
static const char *const symlink_at[] = {
	"example.test", MBOX, MBOX "/new", MBOX "/cur", MBOX "/tmp",
};

START_TEST(test_open_symlink_refused)
{
	struct mailbox *mb = NULL;
	const char *error = NULL;
	char path[300], target[300], cmd[1200];

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/new %s/cur %s/tmp %s/outside/new "
	    "%s/outside/cur %s/outside/tmp && rm -rf %s/%s", md_path, md_path,
	    md_path, root, root, root, store_path, symlink_at[_i]);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/%s", store_path, symlink_at[_i]);
	snprintf(target, sizeof(target), "%s/outside", root);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(mailbox_open(storefd, MBOX, &mb, &error), -1);
	ck_assert_ptr_null(mb);
	ck_assert_msg(strstr(error, "symlink") != NULL, "%s", error);
}
END_TEST

START_TEST(test_scan_order)
{
	struct mailbox *mb = open_mb();
	char path[256];
	/* In the order the scan must return them. */
	static const char *const want[][2] = {
		{ "cur", "999.P1.h:2,S" },
		{ "new", "1000.M000001P9Q1.h,S=1" },
		{ "cur", "1000.M000002P1Q1.h,S=1:2," },
		{ "cur", "1000.M000010P1Q1.h,S=1:2,RS" },	/* new/ copy dropped */
		{ "new", "1001.x.h" },		/* no microseconds: 0 */
		{ "new", "1001.y.h" },
		{ "new", "1001.M5P1Q1.h" },
		{ "cur", "1001.M5P1Q2.h:2," },
		{ "cur", "A-no-time:2," },
		{ "new", "B-no-time" },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		put(want[i][0], want[i][1], "x");
	put("new", "1000.M000010P1Q1.h,S=1", "x");	/* a racing move */
	put("new", ".hidden", "x");
	put("cur", ".hidden:2,", "x");
	ck_assert_int_eq(mkdir(md_file("cur", "500.M1P1Q1.dir"), 0700), 0);
	ck_assert_int_eq(symlink(md_file("cur", "999.P1.h:2,S"), md_file("cur", "600.M1P1Q1.link")), 0);
	ck_assert_int_eq(mkfifo(md_file("new", "700.M1P1Q1.fifo"), 0600), 0);
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct mailbox_msg *m = mailbox_msg(mb, i);

		ck_assert_str_eq(m->name, want[i][1]);
		ck_assert_int_eq(m->in_new, strcmp(want[i][0], "new") == 0);
		ck_assert_uint_eq(m->vsize, 1);
	}
	ck_assert_str_eq(mailbox_msg(mb, 1)->uidl, "1000.M000001P9Q1.h");
	ck_assert_str_eq(mailbox_msg(mb, 8)->uidl, "A-no-time");
	/* Rescanning gives the same list; moving new mail renames it. */
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), sizeof(want) / sizeof(want[0]));
	ck_assert_int_eq(unlink(md_file("new", "1000.M000010P1Q1.h,S=1")), 0);
	scan(mb, 1);
	ck_assert_uint_eq(mailbox_count(mb), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct mailbox_msg *m = mailbox_msg(mb, i);

		ck_assert_int_eq(m->in_new, 0);
		if (strcmp(want[i][0], "new") == 0) {
			snprintf(path, sizeof(path), "%s:2,", want[i][1]);
			ck_assert_str_eq(m->name, path);
			ck_assert(exists(md_file("cur", path)));
			ck_assert(!exists(md_file("new", want[i][1])));
		} else
			ck_assert_str_eq(m->name, want[i][1]);
	}
	/* What is not a message stays where it is. */
	ck_assert(exists(md_file("new", ".hidden")));
	ck_assert(exists(md_file("new", "700.M1P1Q1.fifo")));
	mailbox_close(&mb);
}
END_TEST

/* A xorshift generator, for reproducible "random" data. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* 10,000 messages named with ",W=" that disagrees with their (empty)
 * contents: the sizes come from the names, so no file was read, and the
 * sort is right and quick. */
START_TEST(test_scan_10000_with_w)
{
	enum { N = 10000 };
	struct mailbox *mb = open_mb();
	unsigned *perm = xcalloc(N, sizeof(*perm));
	uint64_t seed = 88172645463325252ull;
	struct timespec t0, t1;
	char name[128];
	double secs;
	int dfd;

	for (unsigned i = 0; i < N; i++)
		perm[i] = i;
	for (unsigned i = N - 1; i > 0; i--) {
		unsigned j = (unsigned)(rnd(&seed) % (i + 1)), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	dfd = open(md_file("cur", "."), O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
	for (unsigned i = 0; i < N; i++) {
		unsigned k = perm[i];
		int fd;

		/* Key k: seconds k / 7, microseconds (k % 7) * 11. */
		snprintf(name, sizeof(name), "%u.M%uP%uQ1.host,S=%u,W=%u:2,S",
		    1700000000 + k / 7, (k % 7) * 11, 40000 - k, k, k + 5);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		ck_assert_int_ge(fd, 0);
		close(fd);
	}
	close(dfd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	scan(mb, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs < 10, "scan of 10,000 took %.2f s", secs);
	ck_assert_uint_eq(mailbox_count(mb), N);
	for (unsigned k = 0; k < N; k++) {
		const struct mailbox_msg *m = mailbox_msg(mb, k);

		snprintf(name, sizeof(name), "%u.M%uP%uQ1.host,S=%u,W=%u:2,S",
		    1700000000 + k / 7, (k % 7) * 11, 40000 - k, k, k + 5);
		ck_assert_str_eq(m->name, name);
		ck_assert_uint_eq(m->vsize, k + 5);
	}
	/* Every size came from a name: nothing to cache. */
	ck_assert(!exists(md_file(".", MAILBOX_VSIZE_CACHE)));
	mailbox_close(&mb);
	free(perm);
}
END_TEST

#define CBASE1 "1000.M1P1Q1.h"
#define CBASE2 "1001.M1P1Q2.h"

/* The cache file's inode, or 0 when missing. */
static ino_t
cache_ino(void)
{
	struct stat sb;

	return stat(md_file(".", MAILBOX_VSIZE_CACHE), &sb) == 0 ? sb.st_ino : 0;
}

START_TEST(test_vsize_cache)
{
	struct mailbox *mb = open_mb();
	const char *odd = "1002.M1P1Q3.h h";	/* a space: not cacheable */
	char want_uidl[MAILDIR_UIDL_MAX + 1];
	ino_t ino;

	put("cur", CBASE1 ",S=4:2,", "a\nb\n");
	put("new", CBASE2, "x\r\ny");
	put("new", odd, "\n\n");
	put("new", "1003.M1P1Q4.h,S=3,W=4", "a\nb");
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), 4);
	ck_assert_uint_eq(mailbox_msg(mb, 0)->vsize, 6);
	ck_assert_uint_eq(mailbox_msg(mb, 1)->vsize, 4);
	ck_assert_uint_eq(mailbox_msg(mb, 2)->vsize, 4);
	ck_assert_uint_eq(mailbox_msg(mb, 3)->vsize, 4);
	maildir_uidl(odd, want_uidl);
	ck_assert_str_eq(mailbox_msg(mb, 2)->uidl, want_uidl);
	ck_assert_uint_eq(strlen(want_uidl), 40);
	ck_assert_str_eq(slurp(md_file(".", MAILBOX_VSIZE_CACHE)),
	    CBASE1 " 4 6\n" CBASE2 " 4 4\n");
	ino = cache_ino();

	/* Same size, other content: the cache is trusted (and not rewritten),
	 * also after the flags (the name) changed. */
	put("cur", CBASE1 ",S=4:2,", "a\r\nb");
	ck_assert_int_eq(rename(md_file("cur", CBASE1 ",S=4:2,"),
	    md_file("cur", CBASE1 ",S=4:2,S")), 0);
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_msg(mb, 0)->vsize, 6);
	ck_assert_uint_eq(cache_ino(), ino);

	/* Moving to cur/ keeps the entry too. */
	scan(mb, 1);
	ck_assert_uint_eq(mailbox_msg(mb, 1)->vsize, 4);
	ck_assert_uint_eq(cache_ino(), ino);

	/* Another size on disk: read again, cache rewritten. */
	put("cur", CBASE1 ",S=4:2,S", "a\nb\nc\n");
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_msg(mb, 0)->vsize, 9);
	ck_assert_str_eq(slurp(md_file(".", MAILBOX_VSIZE_CACHE)),
	    CBASE1 " 6 9\n" CBASE2 " 4 4\n");
	ck_assert_uint_ne(cache_ino(), ino);

	/* A vanished message's entry is dropped. */
	ck_assert_int_eq(unlink(md_file("cur", CBASE2 ":2,")), 0);
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), 3);
	ck_assert_str_eq(slurp(md_file(".", MAILBOX_VSIZE_CACHE)), CBASE1 " 6 9\n");
	ck_assert(!exists(md_file(".", "postern-vsize.tmp")));
	mailbox_close(&mb);
}
END_TEST

/* Caches with one damaged line beside a trusted-looking wrong entry. */
static const char *const bad_caches[] = {
	"garbage\n",
	"\n",
	"X 1\n",
	"X 1 2 3\n",
	"X  1 2\n",
	"X 1 2\r\n",
	"X 5 11\n",		/* more than twice the disk size */
	"X 5 4\n",		/* less than the disk size */
	"X 5 -6\n",
	"X 5 99999999999999999999\n",
	"X,S=5 5 6\n",
	"X:2, 5 6\n",
	"X 5 6",		/* no line end */
	CBASE1 " 6 8\n",	/* a duplicate */
	"X\x01 5 6\n",
};

START_TEST(test_vsize_cache_damaged)
{
	struct mailbox *mb = open_mb();
	char text[200];

	put("cur", CBASE1 ":2,", "a\nb\nc\n");	/* 6 on disk, vsize 9 */
	/* First the control: a well-formed wrong entry is trusted. */
	put(".", MAILBOX_VSIZE_CACHE, CBASE1 " 6 7\n");
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_msg(mb, 0)->vsize, 7);
	/* With a damaged line, the whole cache is ignored and rebuilt. */
	snprintf(text, sizeof(text), "%s%s", CBASE1 " 6 7\n", bad_caches[_i]);
	put(".", MAILBOX_VSIZE_CACHE, text);
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_msg(mb, 0)->vsize, 9);
	ck_assert_str_eq(slurp(md_file(".", MAILBOX_VSIZE_CACHE)), CBASE1 " 6 9\n");
	mailbox_close(&mb);
}
END_TEST

/* A symlink or directory in place of the cache is replaced. */
START_TEST(test_vsize_cache_symlink)
{
	struct mailbox *mb = open_mb();
	char outside[300];

	snprintf(outside, sizeof(outside), "%s/outside", root);
	put("cur", CBASE1 ":2,", "a\n");
	ck_assert_int_eq(symlink(outside, md_file(".", MAILBOX_VSIZE_CACHE)), 0);
	ck_assert_int_eq(symlink(outside, md_file(".", "postern-vsize.tmp")), 0);
	/* The tmp name is a symlink too: nothing written, nothing followed. */
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_msg(mb, 0)->vsize, 3);
	ck_assert(!exists(outside));
	ck_assert_int_eq(unlink(md_file(".", "postern-vsize.tmp")), 0);
	scan(mb, 0);
	ck_assert_str_eq(slurp(md_file(".", MAILBOX_VSIZE_CACHE)), CBASE1 " 2 3\n");
	mailbox_close(&mb);
}
END_TEST

/* Read all of fd into a static buffer. */
static const char *
read_fd(int fd)
{
	static char text[4096];
	ssize_t n = read(fd, text, sizeof(text) - 1);

	ck_assert_int_ge(n, 0);
	text[n] = '\0';
	return text;
}

START_TEST(test_msg_open)
{
	struct mailbox *mb = open_mb();
	const char *error = NULL;
	char outside[300];
	int fd = -1;

	snprintf(outside, sizeof(outside), "%s/secret", root);
	put("cur", "1.M1P1Q1.h:2,", "one\n");
	put("new", "2.M1P1Q1.h", "two\n");
	put("cur", "3.M1P1Q1.h:2,", "three\n");
	put("cur", "4.M1P1Q1.h:2,", "four\n");
	put("cur", "5.M1P1Q1.h:2,", "five\n");
	put("new", "6.M1P1Q1.h", "six\n");
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), 6);

	/* Plain. */
	ck_assert_int_eq(mailbox_msg_open(mb, 0, &fd, &error), 1);
	ck_assert_str_eq(read_fd(fd), "one\n");
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	/* Another client set a flag. */
	ck_assert_int_eq(rename(md_file("cur", "1.M1P1Q1.h:2,"), md_file("cur", "1.M1P1Q1.h:2,S")), 0);
	ck_assert_int_eq(mailbox_msg_open(mb, 0, &fd, &error), 1);
	ck_assert_str_eq(read_fd(fd), "one\n");
	close(fd);
	ck_assert_str_eq(mailbox_msg(mb, 0)->name, "1.M1P1Q1.h:2,S");
	/* Another client moved it to cur/. */
	ck_assert_int_eq(rename(md_file("new", "2.M1P1Q1.h"), md_file("cur", "2.M1P1Q1.h:2,")), 0);
	ck_assert_int_eq(mailbox_msg_open(mb, 1, &fd, &error), 1);
	ck_assert_str_eq(read_fd(fd), "two\n");
	close(fd);
	ck_assert_str_eq(mailbox_msg(mb, 1)->name, "2.M1P1Q1.h:2,");
	ck_assert_int_eq(mailbox_msg(mb, 1)->in_new, 0);
	/* Expunged by another client between scan and open. */
	ck_assert_int_eq(unlink(md_file("cur", "3.M1P1Q1.h:2,")), 0);
	ck_assert_int_eq(mailbox_msg_open(mb, 2, &fd, &error), 0);
	/* A symlink in its place is refused, not followed. */
	put_path(outside, "secret\n");
	ck_assert_int_eq(unlink(md_file("cur", "4.M1P1Q1.h:2,")), 0);
	ck_assert_int_eq(symlink(outside, md_file("cur", "4.M1P1Q1.h:2,")), 0);
	error = NULL;
	ck_assert_int_eq(mailbox_msg_open(mb, 3, &fd, &error), -1);
	ck_assert_msg(strstr(error, "symlink") != NULL, "%s", error);
	/* So is a FIFO, without hanging. */
	ck_assert_int_eq(unlink(md_file("cur", "5.M1P1Q1.h:2,")), 0);
	ck_assert_int_eq(mkfifo(md_file("cur", "5.M1P1Q1.h:2,"), 0600), 0);
	ck_assert_int_eq(mailbox_msg_open(mb, 4, &fd, &error), -1);
	/* The others are unharmed; a symlink is not even listed. */
	ck_assert_int_eq(mailbox_msg_open(mb, 5, &fd, &error), 1);
	ck_assert_str_eq(read_fd(fd), "six\n");
	close(fd);
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), 3);
	mailbox_close(&mb);
}
END_TEST

START_TEST(test_msg_flag)
{
	struct mailbox *mb = open_mb();
	const char *error = NULL;

	put("new", "1.M1P1Q1.h,S=2", "x\n");
	put("cur", "2.M1P1Q1.h:2,S", "y\n");
	put("cur", "3.M1P1Q1.h:2,", "z\n");
	put("new", "4.M1P1Q1.h:2,S", "w\n");
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), 4);

	ck_assert_int_eq(mailbox_msg_flag(mb, 0, 'S', &error), 1);
	ck_assert_str_eq(mailbox_msg(mb, 0)->name, "1.M1P1Q1.h,S=2:2,S");
	ck_assert_int_eq(mailbox_msg(mb, 0)->in_new, 0);
	ck_assert(exists(md_file("cur", "1.M1P1Q1.h,S=2:2,S")));
	ck_assert(!exists(md_file("new", "1.M1P1Q1.h,S=2")));
	ck_assert_int_eq(mailbox_msg_flag(mb, 0, 'F', &error), 1);
	ck_assert_int_eq(mailbox_msg_flag(mb, 0, 'S', &error), 1);
	ck_assert_int_eq(mailbox_msg_flag(mb, 0, 'a', &error), 1);
	ck_assert_int_eq(mailbox_msg_flag(mb, 0, 'D', &error), 1);
	ck_assert_str_eq(mailbox_msg(mb, 0)->name, "1.M1P1Q1.h,S=2:2,DFSa");
	ck_assert(exists(md_file("cur", "1.M1P1Q1.h,S=2:2,DFSa")));
	ck_assert_int_eq(mailbox_msg_flag(mb, 0, '/', &error), -1);
	ck_assert_int_eq(mailbox_msg_flag(mb, 0, '\0', &error), -1);

	/* Already set: nothing moves. */
	ck_assert_int_eq(mailbox_msg_flag(mb, 1, 'S', &error), 1);
	ck_assert_str_eq(mailbox_msg(mb, 1)->name, "2.M1P1Q1.h:2,S");
	/* Renamed by another client meanwhile: found, flags merged. */
	ck_assert_int_eq(rename(md_file("cur", "3.M1P1Q1.h:2,"), md_file("cur", "3.M1P1Q1.h:2,T")), 0);
	ck_assert_int_eq(mailbox_msg_flag(mb, 2, 'R', &error), 1);
	ck_assert_str_eq(mailbox_msg(mb, 2)->name, "3.M1P1Q1.h:2,RT");
	ck_assert(exists(md_file("cur", "3.M1P1Q1.h:2,RT")));
	/* In new/ with the flag already: it still moves to cur/. */
	ck_assert_int_eq(mailbox_msg_flag(mb, 3, 'S', &error), 1);
	ck_assert(exists(md_file("cur", "4.M1P1Q1.h:2,S")));
	ck_assert(!exists(md_file("new", "4.M1P1Q1.h:2,S")));
	/* Gone. */
	ck_assert_int_eq(unlink(md_file("cur", "2.M1P1Q1.h:2,S")), 0);
	ck_assert_int_eq(mailbox_msg_flag(mb, 1, 'R', &error), 0);
	mailbox_close(&mb);
}
END_TEST

START_TEST(test_msg_expunge)
{
	struct mailbox *mb = open_mb();
	const char *error = NULL;
	int fd;

	put("new", "1.M1P1Q1.h", "x\n");
	put("cur", "2.M1P1Q1.h:2,", "y\n");
	put("cur", "3.M1P1Q1.h:2,", "z\n");
	scan(mb, 0);
	ck_assert_int_eq(mailbox_msg_expunge(mb, 0, &error), 1);
	ck_assert(!exists(md_file("new", "1.M1P1Q1.h")));
	ck_assert_int_eq(mailbox_msg_expunge(mb, 0, &error), 0);
	ck_assert_int_eq(mailbox_msg_open(mb, 0, &fd, &error), 0);
	ck_assert_int_eq(mailbox_msg_flag(mb, 0, 'S', &error), 0);
	/* Renamed by another client: found and removed. */
	ck_assert_int_eq(rename(md_file("cur", "2.M1P1Q1.h:2,"), md_file("cur", "2.M1P1Q1.h:2,S")), 0);
	ck_assert_int_eq(mailbox_msg_expunge(mb, 1, &error), 1);
	ck_assert(!exists(md_file("cur", "2.M1P1Q1.h:2,S")));
	/* Removed by another client. */
	ck_assert_int_eq(unlink(md_file("cur", "3.M1P1Q1.h:2,")), 0);
	ck_assert_int_eq(mailbox_msg_expunge(mb, 2, &error), 0);
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), 0);
	mailbox_close(&mb);
}
END_TEST

START_TEST(test_lock)
{
	struct mailbox *a = open_mb(), *b = open_mb();
	const char *error = NULL;
	pid_t pid;
	int status;

	ck_assert_int_eq(mailbox_lock(a, "postern-pop3.lock", &error), 1);
	ck_assert_int_eq(mailbox_lock(a, "postern-pop3.lock", &error), -1);
	/* Another session in the same process. */
	ck_assert_int_eq(mailbox_lock(b, "postern-pop3.lock", &error), 0);
	/* Another lock name is another lock. */
	ck_assert_int_eq(mailbox_lock(b, "postern-imap.lock", &error), 1);
	mailbox_close(&b);
	/* Another process. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct mailbox *c = NULL;
		int r = -1;

		if (mailbox_open(storefd, MBOX, &c, &error) == 0) {
			r = mailbox_lock(c, "postern-pop3.lock", &error);
			mailbox_close(&c);
		}
		_exit(r == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Closing releases it. */
	mailbox_close(&a);
	b = open_mb();
	ck_assert_int_eq(mailbox_lock(b, "postern-pop3.lock", &error), 1);
	mailbox_close(&b);
	/* Bad names, and a symlink in place of the lock file. */
	b = open_mb();
	ck_assert_int_eq(mailbox_lock(b, "a/b", &error), -1);
	ck_assert_int_eq(mailbox_lock(b, "", &error), -1);
	ck_assert_int_eq(symlink("/nonexistent", md_file(".", "postern-x.lock")), 0);
	ck_assert_int_eq(mailbox_lock(b, "postern-x.lock", &error), -1);
	ck_assert_int_eq(mailbox_lock(b, "postern-pop3.lock", &error), 1);
	mailbox_close(&b);
}
END_TEST

/*
 * An unreadable cur/: opening fails, and a scan after it became
 * unreadable fails.  root bypasses permissions, so as root this runs in a
 * child under uid/gid 65534.  Returns 0 when all went as expected.
 */
static int
unreadable_child(void)
{
	struct mailbox *mb = NULL;
	const char *error = NULL;
	int fd;

	if (getuid() == 0 && (setgroups(0, NULL) < 0 ||
	    setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0))
		return 10;
	if (mailbox_open(storefd, MBOX, &mb, &error) < 0)
		return 11;
	if (chmod(md_file(".", "cur"), 0) < 0)
		return 12;
	if (mailbox_scan(mb, 0, &error) != -1 || strstr(error, "cur") == NULL)
		return 13;
	mailbox_close(&mb);
	if (mailbox_open(storefd, MBOX, &mb, &error) != -1 || strstr(error, "cur") == NULL)
		return 14;
	if (chmod(md_file(".", "cur"), 0700) < 0)
		return 15;
	if (mailbox_open(storefd, MBOX, &mb, &error) < 0)
		return 16;
	if (mailbox_scan(mb, 0, &error) < 0 || mailbox_count(mb) != 2)
		return 17;
	/* An unreadable message is listed, with its S= size, and fails to
	 * open. */
	if (mailbox_msg(mb, 1)->vsize != 5 || mailbox_msg_open(mb, 1, &fd, &error) != -1 ||
	    strstr(error, "Permission denied") == NULL)
		return 18;
	if (mailbox_msg_open(mb, 0, &fd, &error) != 1)
		return 19;
	(void)close(fd);
	mailbox_close(&mb);
	return 0;
}

START_TEST(test_unreadable_cur)
{
	char cmd[300];
	pid_t pid;
	int status;
	struct mailbox *mb = open_mb();

	mailbox_close(&mb);
	put("cur", "1.M1P1Q1.h:2,", "x\n");
	put("cur", "2.M1P1Q1.h,S=5:2,", "x\n");
	ck_assert_int_eq(chmod(md_file("cur", "2.M1P1Q1.h,S=5:2,"), 0), 0);
	if (getuid() == 0) {
		snprintf(cmd, sizeof(cmd), "chown -R 65534:65534 '%s'", root);
		ck_assert_int_eq(system(cmd), 0);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(unreadable_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child status %d", status);
}
END_TEST

static const struct {
	const char *name;
	const char *uidl;	/* NULL: the SHA-1 of the base, given in sha */
	const char *sha;
} uidls[] = {
	{ "1700000000.M123P45Q6.host,S=10,W=12:2,S", "1700000000.M123P45Q6.host", NULL },
	{ "1700000000.M123P45Q6.host:2,S", "1700000000.M123P45Q6.host", NULL },
	{ "1700000000.M123P45Q6.host", "1700000000.M123P45Q6.host", NULL },
	{ "x", "x", NULL },
	{ "~!", "~!", NULL },
	/* 70 characters: kept; 71: hashed. */
	{ "0123456789012345678901234567890123456789012345678901234567890123456789",
	    "0123456789012345678901234567890123456789012345678901234567890123456789", NULL },
	{ "01234567890123456789012345678901234567890123456789012345678901234567890,S=1",
	    NULL, "01234567890123456789012345678901234567890123456789012345678901234567890" },
	{ "", NULL, "" },
	{ ",S=1", NULL, "" },
	{ ":2,S", NULL, "" },
	{ "a b", NULL, "a b" },
	{ "caf\xc3\xa9", NULL, "caf\xc3\xa9" },
	{ "tab\there:2,", NULL, "tab\there" },
	{ "del\x7f", NULL, "del\x7f" },
};

START_TEST(test_uidl)
{
	char out[MAILDIR_UIDL_MAX + 1], cmd[400];
	FILE *p;

	maildir_uidl(uidls[_i].name, out);
	if (uidls[_i].uidl != NULL) {
		ck_assert_str_eq(out, uidls[_i].uidl);
		return;
	}
	/* Compare with sha1sum(1) of the base name. */
	ck_assert_uint_eq(strlen(out), 40);
	ck_assert_uint_eq(strspn(out, "0123456789abcdef"), 40);
	snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | sha1sum", uidls[_i].sha);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(cmd, sizeof(cmd), p));
	pclose(p);
	cmd[40] = '\0';
	ck_assert_str_eq(out, cmd);
}
END_TEST

static const struct {
	const char *name;
	char key;
	int ret;
	uint64_t size;
} sizes[] = {
	{ "1.M1P1Q1.h,S=123", 'S', 1, 123 },
	{ "1.M1P1Q1.h,S=123,W=130", 'S', 1, 123 },
	{ "1.M1P1Q1.h,S=123,W=130", 'W', 1, 130 },
	{ "1.M1P1Q1.h,S=123,W=130:2,S", 'W', 1, 130 },
	{ "1.M1P1Q1.h,W=130,S=123:2,S", 'S', 1, 123 },
	{ "1.M1P1Q1.h,S=0", 'S', 1, 0 },
	{ "1.M1P1Q1.h,S=18446744073709551615", 'S', 1, UINT64_MAX },
	{ "1.M1P1Q1.h,S=18446744073709551616", 'S', 0, 0 },
	{ "1.M1P1Q1.h,S=123456789012345678901", 'S', 0, 0 },
	{ "1.M1P1Q1.h,S=", 'S', 0, 0 },
	{ "1.M1P1Q1.h,S=12a", 'S', 0, 0 },
	{ "1.M1P1Q1.h,S=-1", 'S', 0, 0 },
	{ "1.M1P1Q1.h,S= 1", 'S', 0, 0 },
	{ "1.M1P1Q1.h,S=123", 'W', 0, 0 },
	{ "1.M1P1Q1.h:2,S=123", 'S', 0, 0 },
	{ "1.M1P1Q1.h:2,,S=123", 'S', 0, 0 },
	{ "1.M1P1Q1.h,s=123", 'S', 0, 0 },
	{ "1.M1P1Q1.hS=123", 'S', 0, 0 },
	{ "1.M1P1Q1.h,,S=5", 'S', 1, 5 },
	{ "1.M1P1Q1.h,XS=5,S=6", 'S', 1, 6 },
	{ "S=5", 'S', 0, 0 },
	{ ",S=5", 'S', 1, 5 },
	{ "", 'S', 0, 0 },
};

START_TEST(test_name_size)
{
	uint64_t size = 777;

	ck_assert_int_eq(maildir_name_size(sizes[_i].name, sizes[_i].key, &size), sizes[_i].ret);
	ck_assert_uint_eq(size, sizes[_i].ret ? sizes[_i].size : 777);
}
END_TEST

/* --- export --- */

static const struct {
	const char *in;
	int dotstuff;
	int64_t body_lines;
	const char *want;	/* including what mailbox_export_end adds */
	int done;		/* feed returned 1 */
} exports[] = {
	{ "", 0, -1, "", 0 },
	{ "", 1, 0, "", 0 },
	{ "a\nb\n", 0, -1, "a\r\nb\r\n", 0 },
	{ "a\r\nb\r\n", 0, -1, "a\r\nb\r\n", 0 },
	{ "a\rb\n", 0, -1, "a\rb\r\n", 0 },
	{ "a\r\r\n", 0, -1, "a\r\r\n", 0 },
	{ "a\nb", 0, -1, "a\r\nb\r\n", 0 },
	{ "a\r", 0, -1, "a\r\r\n", 0 },
	{ "\n\n\n", 0, -1, "\r\n\r\n\r\n", 0 },
	{ ".x\n..y\n.\n", 1, -1, "..x\r\n...y\r\n..\r\n", 0 },
	{ ".x\n..y\n.\n", 0, -1, ".x\r\n..y\r\n.\r\n", 0 },
	{ "a.\n.", 1, -1, "a.\r\n..\r\n", 0 },
	{ "a\r.b\n", 1, -1, "a\r.b\r\n", 0 },
	{ "\r\n.\r\n", 1, -1, "\r\n..\r\n", 0 },
	/* TOP */
	{ "H: v\n\nb1\nb2\n", 0, 0, "H: v\r\n\r\n", 1 },
	{ "H: v\n\nb1\nb2\n", 0, 1, "H: v\r\n\r\nb1\r\n", 1 },
	{ "H: v\n\nb1\nb2\n", 0, 2, "H: v\r\n\r\nb1\r\nb2\r\n", 1 },
	{ "H: v\n\nb1\nb2\n", 0, 3, "H: v\r\n\r\nb1\r\nb2\r\n", 0 },
	{ "H: v\n\nb1\nb2", 0, 5, "H: v\r\n\r\nb1\r\nb2\r\n", 0 },
	{ "H: v\r\n\r\nb1\r\n", 0, 0, "H: v\r\n\r\n", 1 },
	{ "H: v\nX: y\n", 0, 0, "H: v\r\nX: y\r\n", 0 },
	{ "H: v\nX: y", 0, 0, "H: v\r\nX: y\r\n", 0 },
	{ "H: v\n\r\r\nb\n\nc\n", 0, 0, "H: v\r\n\r\r\nb\r\n\r\n", 1 },
	{ "H: v\n \nb\n\nc\n", 0, 0, "H: v\r\n \r\nb\r\n\r\n", 1 },
	{ "\nbody\n", 0, 0, "\r\n", 1 },
	{ "\r\nbody\n", 0, 1, "\r\nbody\r\n", 1 },
	{ "H: v\n\n.a\n.b\n", 1, 1, "H: v\r\n\r\n..a\r\n", 1 },
	{ ".H: v\n\n\n\nx\n", 1, 2, "..H: v\r\n\r\n\r\n\r\n", 1 },
	{ "H: v\n\nb\rc\nd\n", 0, 1, "H: v\r\n\r\nb\rc\r\n", 1 },
};

/* Export in[0..n) in chunks ending at the offsets cuts[0..ncuts) (then
 * the rest), appending to out.  Returns whether feed said done. */
static int
export_split(const char *in, size_t n, int dotstuff, int64_t body_lines,
    const size_t *cuts, size_t ncuts, struct buf *out)
{
	struct mailbox_export x;
	size_t at = 0;
	int r = 0;

	mailbox_export_init(&x, dotstuff, body_lines);
	for (size_t i = 0; i <= ncuts && r == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : n;

		r = mailbox_export_feed(&x, in + at, to - at, out);
		ck_assert_int_ge(r, 0);
		at = to;
	}
	ck_assert_int_eq(mailbox_export_end(&x, out), 0);
	return r;
}

START_TEST(test_export)
{
	const char *in = exports[_i].in, *want = exports[_i].want;
	size_t n = strlen(in), *cuts = xcalloc(n + 2, sizeof(*cuts));
	struct buf out = BUF_INIT;
	int done;

	/* Whole. */
	done = export_split(in, n, exports[_i].dotstuff, exports[_i].body_lines, NULL, 0, &out);
	ck_assert_str_eq(buf_cstr(&out), want);
	ck_assert_int_eq(done, exports[_i].done);
	/* Byte by byte. */
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	buf_reset(&out);
	done = export_split(in, n, exports[_i].dotstuff, exports[_i].body_lines, cuts, n, &out);
	ck_assert_str_eq(buf_cstr(&out), want);
	ck_assert_int_eq(done, exports[_i].done);
	/* Every 2-way split, and with an empty chunk there too. */
	for (size_t k = 0; k <= n; k++) {
		cuts[0] = k;
		cuts[1] = k;
		for (size_t nc = 1; nc <= 2; nc++) {
			buf_reset(&out);
			done = export_split(in, n, exports[_i].dotstuff,
			    exports[_i].body_lines, cuts, nc, &out);
			ck_assert_msg(strcmp(buf_cstr(&out), want) == 0, "split at %zu", k);
			ck_assert_int_eq(done, exports[_i].done);
		}
	}
	/* The undotstuffed whole message is maildir_crlf_size() bytes, before
	 * the CRLF that end adds to a last line without one. */
	if (!exports[_i].dotstuff && exports[_i].body_lines < 0) {
		int prev_cr = 0;
		uint64_t end = n > 0 && in[n - 1] != '\n' ? 2 : 0;

		ck_assert_uint_eq(maildir_crlf_size(in, n, &prev_cr) + end, strlen(want));
		ck_assert_uint_eq(maildir_crlf_size(in, n, NULL) + end, strlen(want));
	}
	buf_free(&out);
	free(cuts);
}
END_TEST

/* After done, feed adds nothing and keeps saying done. */
START_TEST(test_export_done)
{
	struct mailbox_export x;
	struct buf out = BUF_INIT;

	mailbox_export_init(&x, 1, 0);
	ck_assert_int_eq(mailbox_export_feed(&x, "A: b\n\nbody", 10, &out), 1);
	ck_assert_int_eq(mailbox_export_feed(&x, "more\n", 5, &out), 1);
	ck_assert_int_eq(mailbox_export_end(&x, &out), 0);
	ck_assert_str_eq(buf_cstr(&out), "A: b\r\n\r\n");
	buf_free(&out);
}
END_TEST

/* A full output buffer is -1 wherever it fills up. */
START_TEST(test_export_full)
{
	const char *in = ".a\nbb\r\n.\nc";
	const char *want = "..a\r\nbb\r\n..\r\nc\r\n";
	struct mailbox_export x;
	struct buf out;

	for (size_t max = 1; max < strlen(want); max++) {
		int r;

		buf_init(&out, max);
		mailbox_export_init(&x, 1, -1);
		r = mailbox_export_feed(&x, in, strlen(in), &out);
		if (r == 0)
			r = mailbox_export_end(&x, &out);
		ck_assert_int_eq(r, -1);
		ck_assert_uint_le(out.len, max);
		ck_assert(memcmp(out.data == NULL ? "" : out.data, want, out.len) == 0);
		buf_free(&out);
	}
	buf_init(&out, strlen(want));
	mailbox_export_init(&x, 1, -1);
	ck_assert_int_eq(mailbox_export_feed(&x, in, strlen(in), &out), 0);
	ck_assert_int_eq(mailbox_export_end(&x, &out), 0);
	ck_assert_str_eq(buf_cstr(&out), want);
	buf_free(&out);
}
END_TEST

/* Random texts over "a\r\n.": the full undotstuffed export is
 * maildir_crlf_size() bytes (plus 2 from end without a final LF), at
 * every split, and crlf_size itself is split-invariant.  Also checks the
 * scan's vsize for such a file equals it. */
START_TEST(test_crlf_size_property)
{
	static const char alphabet[] = "a\r\n.";
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	struct buf out = BUF_INIT;
	char in[24];

	for (int round = 0; round < 3000; round++) {
		size_t n = (size_t)(rnd(&seed) % sizeof(in));
		uint64_t whole;

		for (size_t i = 0; i < n; i++)
			in[i] = alphabet[rnd(&seed) % 4];
		whole = maildir_crlf_size(in, n, NULL);
		for (size_t k = 0; k <= n; k++) {
			int prev_cr = 0;
			uint64_t parts = maildir_crlf_size(in, k, &prev_cr);
			int had_cr = prev_cr;

			parts += maildir_crlf_size(in + k, n - k, &prev_cr);
			ck_assert_uint_eq(parts, whole);
			ck_assert_int_eq(had_cr, k > 0 && in[k - 1] == '\r');
			buf_reset(&out);
			(void)export_split(in, n, 0, -1, &k, 1, &out);
			ck_assert_uint_eq(out.len, whole + (n > 0 && in[n - 1] != '\n' ? 2 : 0));
		}
	}
	buf_free(&out);
}
END_TEST

/* A scanned file's vsize is the byte count of its export. */
START_TEST(test_vsize_is_export_size)
{
	static const char *const texts[] = {
		"", "a", "a\n", "a\r\n", "\r", "\n\n", "H: v\r\n\nb\r\rc\n.\n", "x\n\r",
	};
	struct mailbox *mb = open_mb();
	struct buf out = BUF_INIT;
	char name[64];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		snprintf(name, sizeof(name), "%zu.M1P1Q1.h:2,", 100 + i);
		put("cur", name, texts[i]);
	}
	scan(mb, 0);
	ck_assert_uint_eq(mailbox_count(mb), sizeof(texts) / sizeof(texts[0]));
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct mailbox_export x;
		const char *error;
		char chunk[3];
		ssize_t n;
		int fd;

		ck_assert_int_eq(mailbox_msg_open(mb, i, &fd, &error), 1);
		buf_reset(&out);
		mailbox_export_init(&x, 0, -1);
		while ((n = read(fd, chunk, sizeof(chunk))) > 0)
			ck_assert_int_eq(mailbox_export_feed(&x, chunk, (size_t)n, &out), 0);
		close(fd);
		ck_assert_uint_eq(mailbox_msg(mb, i)->vsize, out.len);
	}
	buf_free(&out);
	mailbox_close(&mb);
}
END_TEST

static Suite *
mailbox_suite(void)
{
	Suite *s = suite_create("mailbox");
	TCase *tc = tcase_create("mailbox");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_creates);
	tcase_add_test(tc, test_open_fd_budget);
	tcase_add_loop_test(tc, test_open_symlink_refused, 0,
	    (int)(sizeof(symlink_at) / sizeof(symlink_at[0])));
	tcase_add_test(tc, test_scan_order);
	tcase_add_test(tc, test_scan_10000_with_w);
	tcase_add_test(tc, test_vsize_cache);
	tcase_add_loop_test(tc, test_vsize_cache_damaged, 0,
	    (int)(sizeof(bad_caches) / sizeof(bad_caches[0])));
	tcase_add_test(tc, test_vsize_cache_symlink);
	tcase_add_test(tc, test_msg_open);
	tcase_add_test(tc, test_msg_flag);
	tcase_add_test(tc, test_msg_expunge);
	tcase_add_test(tc, test_lock);
	tcase_add_test(tc, test_unreadable_cur);
	tcase_add_loop_test(tc, test_uidl, 0, (int)(sizeof(uidls) / sizeof(uidls[0])));
	tcase_add_loop_test(tc, test_name_size, 0, (int)(sizeof(sizes) / sizeof(sizes[0])));
	tcase_add_loop_test(tc, test_export, 0, (int)(sizeof(exports) / sizeof(exports[0])));
	tcase_add_test(tc, test_export_done);
	tcase_add_test(tc, test_export_full);
	tcase_add_test(tc, test_crlf_size_property);
	tcase_add_test(tc, test_vsize_is_export_size);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(mailbox_suite());
}
