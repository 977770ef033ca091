/*
 * Unit tests for deliver/maildir.c: unique names, the written file,
 * symlink refusal, first-delivery creation, maildirsize, the loop check
 * and a full disk, each in a fresh temporary mail store.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentproto.h"
#include "check_util.h"
#include "maildir.h"
#include "xalloc.h"

static char root[64];		/* the test's directory */
static char store_path[128];	/* root/store */
static char outside[128];	/* root/outside */
static struct maildir_store *store;
static int msg_fd = -1;

static const char message[] =
    "Subject: hi\nFrom: a@b.test\n\nbody line\n.\nno newline at end";

/* A fresh store and a "queue file" with a 5-byte envelope before the
 * message. */
static void
setup(void)
{
	const char *error;
	char qpath[160];

	snprintf(root, sizeof(root), "/tmp/test_maildir.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(store_path, sizeof(store_path), "%s/store", root);
	snprintf(outside, sizeof(outside), "%s/outside", root);
	ck_assert_int_eq(mkdir(store_path, 0700), 0);
	ck_assert_int_eq(mkdir(outside, 0700), 0);
	ck_assert_int_eq(maildir_store_open(store_path, "host/a:b", &store, &error), 0);
	snprintf(qpath, sizeof(qpath), "%s/qfile", root);
	msg_fd = open(qpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(msg_fd, 0);
	ck_assert_int_eq(write(msg_fd, "ENV\n\n", 5), 5);
	ck_assert_int_eq(write(msg_fd, message, strlen(message)), (ssize_t)strlen(message));
}

static void
teardown(void)
{
	char cmd[200];

	maildir_store_close(&store);
	(void)close(msg_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}

/* Deliver the test message to mailbox (tag, quota) with header hdr. */
static void
deliver(const char *mailbox, const char *tag, uint64_t quota, const char *hdr,
    struct maildir_result *res)
{
	struct maildir_msg m = { msg_fd, 5, strlen(message), "s@x.test", "demo@example.test" };

	maildir_deliver(store, mailbox, tag, quota, &m, hdr, strlen(hdr), res);
}

/* How many entries (not "." or "..") dir has; the last name into name. */
static int
count_dir(const char *dir, char *name, size_t namelen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (name != NULL)
			snprintf(name, namelen, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

START_TEST(test_unique_names)
{
	struct buf b = BUF_INIT;
	char **names = xcalloc(10000, sizeof(*names));

	for (int i = 0; i < 10000; i++) {
		maildir_unique_name(store, &b);
		names[i] = xstrdup(b.data);
	}
	ck_assert_ptr_nonnull(strstr(names[0], ".host\\057a\\072b"));
	ck_assert_ptr_nonnull(strstr(names[0], ".M"));
	for (int i = 0; i < 10000; i++)
		for (int j = i + 1; j < i + 50 && j < 10000; j++)
			ck_assert_str_ne(names[i], names[j]);
	/* Names are distinct in their counter: sorting-free full check. */
	for (int i = 1; i < 10000; i++) {
		char want[32];

		snprintf(want, sizeof(want), "Q%d.", i + 1);
		ck_assert_ptr_nonnull(strstr(names[i], want));
	}
	for (int i = 0; i < 10000; i++)
		free(names[i]);
	free(names);
	buf_free(&b);
}
END_TEST

START_TEST(test_delivery_bytes_and_modes)
{
	struct maildir_result res;
	char dir[256], name[256], path[600], want[512], got[512];
	const char *size;
	struct stat sb;
	int fd;
	ssize_t n;

	deliver("example.test/demo/", NULL, 0, "Subject: hi\n", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	snprintf(dir, sizeof(dir), "%s/example.test/demo/new", store_path);
	ck_assert_int_eq(count_dir(dir, name, sizeof(name)), 1);
	snprintf(want, sizeof(want), "Return-Path: <s@x.test>\nDelivered-To: "
	    "demo@example.test\n%s", message);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, got, sizeof(got));
	close(fd);
	ck_assert_int_eq(n, (ssize_t)strlen(want));
	ck_assert(memcmp(got, want, (size_t)n) == 0);
	size = strstr(name, ",S=");
	ck_assert_ptr_nonnull(size);
	ck_assert_int_eq(strtoull(size + 3, NULL, 10), strlen(want));
	/* Created with 0700 on first delivery, tmp/ left empty. */
	const char *dirs[] = { "example.test", "example.test/demo",
	    "example.test/demo/new", "example.test/demo/cur", "example.test/demo/tmp" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", store_path, dirs[i]);
		ck_assert_int_eq(lstat(path, &sb), 0);
		ck_assert(S_ISDIR(sb.st_mode));
		ck_assert_int_eq(sb.st_mode & 07777, 0700);
	}
	snprintf(path, sizeof(path), "%s/example.test/demo/tmp", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/example.test/demo/new/%s", store_path, name);
	ck_assert_int_eq(lstat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
}
END_TEST

/* Symlinks planted at each level, pointing outside the store. */
static const char *const symlink_at[] = {
	"example.test", "example.test/demo", "example.test/demo/new",
	"example.test/demo/tmp",
};

START_TEST(test_symlink_refused)
{
	struct maildir_result res;
	char path[300], cmd[2048];

	/* The levels above the symlink exist. */
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/example.test/demo/cur "
	    "%s/example.test/demo/new %s/example.test/demo/tmp && rm -rf %s/%s && "
	    "mkdir -p %s/new %s/tmp %s/cur", store_path, store_path, store_path,
	    store_path, symlink_at[_i], outside, outside, outside);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/%s", store_path, symlink_at[_i]);
	ck_assert_int_eq(symlink(outside, path), 0);
	deliver("example.test/demo/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
	ck_assert_ptr_nonnull(strstr(res.text, "symlink"));
	snprintf(path, sizeof(path), "%s/new", outside);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/tmp", outside);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
	ck_assert_int_eq(count_dir(outside, NULL, 0), 3);
}
END_TEST

START_TEST(test_unsafe_paths)
{
	struct maildir_result res;

	deliver("example.test/../x/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
	deliver("/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
}
END_TEST

START_TEST(test_folder)
{
	struct maildir_result res;
	char path[300];

	/* No folder: INBOX. */
	deliver("d/u/", "Lists", 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	snprintf(path, sizeof(path), "%s/d/u/new", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);
	/* The folder exists (another case): there. */
	snprintf(path, sizeof(path), "%s/d/u/.lists", store_path);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	deliver("d/u/", "LISTS", 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	snprintf(path, sizeof(path), "%s/d/u/.lists/new", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);
	/* Unsafe tag characters: INBOX. */
	deliver("d/u/", "lists/../x", 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	snprintf(path, sizeof(path), "%s/d/u/new", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 2);
}
END_TEST

static const struct {
	const char *text;
	int valid;
	uint64_t quota, bytes, count;
} sizes[] = {
	{ "1000S\n100 1\n200 2\n", 1, 1000, 300, 3 },
	{ "1000S,10C\n100 1\n-50 -1\n", 1, 1000, 50, 0 },
	{ "5C,2000S\n  7   1 \n", 1, 2000, 7, 1 },
	{ "1000S\n", 1, 1000, 0, 0 },
	{ "1000S\n100 1\n200", 0, 0, 0, 0 },
	{ "1000X\n", 0, 0, 0, 0 },
	{ "", 0, 0, 0, 0 },
	{ "1000S\nabc 1\n", 0, 0, 0, 0 },
	{ "1000S\n-500 -3\n", 1, 1000, 0, 0 },
};

START_TEST(test_size_parse)
{
	uint64_t q = 0, b = 0, c = 0;
	int r = maildir_size_parse(sizes[_i].text, strlen(sizes[_i].text), &q, &b, &c);

	ck_assert_int_eq(r, sizes[_i].valid);
	if (r == 1) {
		ck_assert_uint_eq(q, sizes[_i].quota);
		ck_assert_uint_eq(b, sizes[_i].bytes);
		ck_assert_uint_eq(c, sizes[_i].count);
	}
}
END_TEST

/* Read maildirsize of d/u into buf. */
static void
read_size_file(char *buf, size_t len)
{
	char path[300];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/d/u/maildirsize", store_path);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, len - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
}

START_TEST(test_quota)
{
	struct maildir_result res;
	char text[8192], path[300], line[64];
	uint64_t one = strlen(message) + strlen("Return-Path: <s@x.test>\n"
	    "Delivered-To: demo@example.test\n");
	uint64_t b, c;
	const char *error;
	int fd;

	/* Two fit, the third does not (the new message counts). */
	deliver("d/u/", NULL, 2 * one + 10, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	read_size_file(text, sizeof(text));
	snprintf(line, sizeof(line), "%" PRIu64 "S\n0 0\n%" PRIu64 " 1\n", 2 * one + 10, one);
	ck_assert_str_eq(text, line);
	deliver("d/u/", NULL, 2 * one + 10, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	deliver("d/u/", NULL, 2 * one + 10, "", &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
	ck_assert_str_eq(res.esc, "4.2.2");
	ck_assert_ptr_nonnull(strstr(res.text, "mailbox full"));
	snprintf(path, sizeof(path), "%s/d/u/new", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 2);

	/* A file past 5120 bytes is recalculated from the messages. */
	snprintf(path, sizeof(path), "%s/d/u/maildirsize", store_path);
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 1500; i++)
		ck_assert_int_eq(write(fd, "1 1\n", 4), 4);
	close(fd);
	fd = open(store_path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "d/u");
	int ufd = openat(fd, path, O_RDONLY | O_DIRECTORY);
	ck_assert_int_eq(maildir_quota_usage(store, ufd, 2 * one + 10, &b, &c, &error), 0);
	ck_assert_uint_eq(b, 2 * one);
	ck_assert_uint_eq(c, 2);
	read_size_file(text, sizeof(text));
	snprintf(line, sizeof(line), "%" PRIu64 "S\n%" PRIu64 " 2\n", 2 * one + 10, 2 * one);
	ck_assert_str_eq(text, line);
	/* A changed quota recalculates too; folders count. */
	snprintf(path, sizeof(path), "%s/d/u/.Sent/cur", store_path);
	char *cmd = xasprintf("mkdir -p %s && echo x > '%s/1.M1P1Q1.h,S=100:2,S'",
	    path, path);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	ck_assert_int_eq(maildir_quota_usage(store, ufd, 99999, &b, &c, &error), 0);
	ck_assert_uint_eq(b, 2 * one + 100);
	ck_assert_uint_eq(c, 3);
	/* Missing: recalculated. */
	ck_assert_int_eq(unlinkat(ufd, "maildirsize", 0), 0);
	ck_assert_int_eq(maildir_quota_usage(store, ufd, 99999, &b, &c, &error), 0);
	ck_assert_uint_eq(b, 2 * one + 100);
	close(ufd);
	close(fd);
}
END_TEST

static const struct {
	const char *header;
	int loop;
} loops[] = {
	{ "Delivered-To: demo@example.test\n", 1 },
	{ "delivered-to:demo@example.test\n", 1 },
	{ "DELIVERED-TO:   DEMO@Example.Test  \n", 1 },
	{ "Delivered-To:\n demo@example.test\n", 1 },
	{ "Delivered-To:\n\t<demo@example.test>\n", 1 },
	{ "Delivered-To : demo@example.test\n", 1 },
	{ "Subject: x\nDelivered-To: other@example.test\nDelivered-To: demo@example.test\n", 1 },
	{ "Delivered-To: other@example.test\n", 0 },
	{ "Delivered-To: demo@example.test.evil\n", 0 },
	{ "X-Delivered-To: demo@example.test\n", 0 },
	{ "Subject: Delivered-To: demo@example.test\n", 0 },
	{ "Subject: x\n Delivered-To: demo@example.test\n", 0 },
	{ "", 0 },
};

START_TEST(test_loop)
{
	struct maildir_result res;

	ck_assert_int_eq(maildir_has_delivered_to(loops[_i].header,
	    strlen(loops[_i].header), "demo@example.test"), loops[_i].loop);
	deliver("d/u/", NULL, 0, loops[_i].header, &res);
	ck_assert_int_eq(res.status, loops[_i].loop ? AGENT_PERM : AGENT_OK);
	if (loops[_i].loop)
		ck_assert_str_eq(res.esc, "5.4.6");
}
END_TEST

START_TEST(test_read_header)
{
	struct buf b = BUF_INIT;
	const char *error;

	ck_assert_int_eq(maildir_read_header(msg_fd, 5, strlen(message), &b, &error), 0);
	ck_assert_str_eq(buf_cstr(&b), "Subject: hi\nFrom: a@b.test\n");
	/* A message with no empty line: all of it. */
	ck_assert_int_eq(maildir_read_header(msg_fd, 5, 12, &b, &error), 0);
	ck_assert_str_eq(buf_cstr(&b), "Subject: hi\n");
	/* Opening with the empty line: no header. */
	ck_assert_int_eq(maildir_read_header(msg_fd, 4, 5, &b, &error), 0);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_disk_full)
{
	char path[300];
	pid_t pid;
	int status;

	/* Create the Maildir first so only the message write can fail. */
	struct maildir_result res;
	deliver("d/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { 70, 70 };

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(3);
		deliver("d/u/", NULL, 0, "", &res);
		_exit(res.status == AGENT_TEMP && strcmp(res.esc, "4.3.0") == 0 &&
		    strstr(res.text, "write") != NULL ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	snprintf(path, sizeof(path), "%s/d/u/new", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);
	snprintf(path, sizeof(path), "%s/d/u/tmp", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
}
END_TEST

/* Prepare the test message for mailbox into *p_r. */
static void
prepare(const char *mailbox, struct maildir_pending **p_r)
{
	struct maildir_msg m = { msg_fd, 5, strlen(message), "s@x.test", "demo@example.test" };
	struct maildir_result res;

	maildir_prepare(store, mailbox, NULL, 0, &m, "", 0, &res, p_r);
	ck_assert_int_eq(res.status, AGENT_OK);
	ck_assert_ptr_nonnull(*p_r);
}

/* A group commit where one delivery fails: the others are delivered,
 * the failed one leaves nothing; an uncommitted one is removed. */
START_TEST(test_group_commit)
{
	struct maildir_pending *ps[3], *abandoned;
	struct maildir_result res;
	char path[300], cmd[400];

	/* Create both Maildirs first. */
	deliver("g/a/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	deliver("g/b/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	prepare("g/a/", &ps[0]);
	prepare("g/b/", &ps[1]);
	prepare("g/a/", &ps[2]);
	prepare("g/a/", &abandoned);
	snprintf(path, sizeof(path), "%s/g/a/tmp", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 3);
	snprintf(path, sizeof(path), "%s/g/a/new", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);	/* nothing visible yet */
	/* b's new/ disappears: its link fails. */
	snprintf(path, sizeof(path), "%s/g/b/new", store_path);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	ck_assert_int_eq(system(cmd), 0);
	maildir_commit(ps, 3);
	maildir_finish(&ps[0], &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	maildir_finish(&ps[1], &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
	ck_assert_str_eq(res.esc, "4.3.0");
	ck_assert_ptr_nonnull(strstr(res.text, "new/"));
	maildir_finish(&ps[2], &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	maildir_finish(&abandoned, &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
	ck_assert_ptr_null(abandoned);
	snprintf(path, sizeof(path), "%s/g/a/new", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 3);
	snprintf(path, sizeof(path), "%s/g/a/tmp", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/g/b/tmp", store_path);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
}
END_TEST

static Suite *
maildir_suite(void)
{
	Suite *s = suite_create("maildir");
	TCase *tc = tcase_create("maildir");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_unique_names);
	tcase_add_test(tc, test_delivery_bytes_and_modes);
	tcase_add_loop_test(tc, test_symlink_refused, 0,
	    (int)(sizeof(symlink_at) / sizeof(symlink_at[0])));
	tcase_add_test(tc, test_unsafe_paths);
	tcase_add_test(tc, test_folder);
	tcase_add_loop_test(tc, test_size_parse, 0,
	    (int)(sizeof(sizes) / sizeof(sizes[0])));
	tcase_add_test(tc, test_quota);
	tcase_add_loop_test(tc, test_loop, 0, (int)(sizeof(loops) / sizeof(loops[0])));
	tcase_add_test(tc, test_read_header);
	tcase_add_test(tc, test_disk_full);
	tcase_add_test(tc, test_group_commit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(maildir_suite());
}
