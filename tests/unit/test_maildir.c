/*
 * Unit tests for the Maildir module's writer (lib/mail/maildir_write.c,
 * lib/mail/maildir_quota.c, the header parts of lib/mail/maildir.c): unique names,
 * the written file and its ",S=,W=" sizes, symlink refusal,
 * first-delivery creation, the cache of open Maildirs, maildirsize, the
 * loop check and a full disk, each in a fresh temporary mail store.
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
	struct maildir_msg m = { msg_fd, 5, strlen(message), "s@x.test", "demo@example.test",
	    NULL };

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
	struct maildir_msg m = { msg_fd, 5, strlen(message), "s@x.test", "demo@example.test",
	    NULL };
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

/* Messages whose CRLF size W= must match what a reader sends. */
static const struct {
	const char *text;
} crlf_msgs[] = {
	{ "Subject: crlf\r\n\r\nline 1\r\nline 2\r\n" },
	{ "Subject: lf\n\nline 1\nline 2\n" },
	{ "Subject: last\n\nno newline at the end" },
	{ "Subject: mixed\r\n\nbare\r\r\ncr only\r.\n\n\r\n" },
	{ "" },
	{ "\n" },
	{ "\r" },
};

/* The size of n bytes with every LF not after CR made CRLF, counted the
 * plain way (one byte at a time). */
static uint64_t
crlf_size(const char *p, size_t n)
{
	uint64_t size = 0;

	for (size_t i = 0; i < n; i++)
		size += p[i] == '\n' && (i == 0 || p[i - 1] != '\r') ? 2 : 1;
	return size;
}

/* Read the single file in dir/new into *data_r (malloc'd), its name into
 * name; the file's length is returned. */
static size_t
read_only_file(const char *dir, char *name, size_t namelen, char **data_r)
{
	char path[1024];
	struct stat sb;
	size_t got = 0;
	int fd;

	ck_assert_int_eq(count_dir(dir, name, namelen), 1);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	*data_r = xmalloc((size_t)sb.st_size + 1);
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, *data_r + got, (size_t)sb.st_size - got);

		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	close(fd);
	return got;
}

/* Check the name's ",S=<len>,W=<CRLF size>" against the file content. */
static void
check_sizes(const char *name, const char *data, size_t len)
{
	char want[96];
	const char *s = strstr(name, ",S=");

	ck_assert_ptr_nonnull(s);
	snprintf(want, sizeof(want), ",S=%zu,W=%" PRIu64, len, crlf_size(data, len));
	ck_assert_str_eq(s, want);
}

/* Deliver text (from the queue file, then from memory) and check W=. */
START_TEST(test_crlf_size)
{
	const char *text = crlf_msgs[_i].text;
	size_t tlen = strlen(text);
	char qpath[200], dir[300], name[256], mailbox[64], *data;
	struct maildir_result res;
	int fd;

	snprintf(qpath, sizeof(qpath), "%s/q-crlf", root);
	fd = open(qpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "ENVELOPE\n\n", 10), 10);
	ck_assert_int_eq(write(fd, text, tlen), (ssize_t)tlen);
	for (int mem = 0; mem < 2; mem++) {
		struct maildir_msg m = { fd, 10, tlen, "s@x.test", "demo@example.test",
		    mem ? text : NULL };
		size_t len;

		snprintf(mailbox, sizeof(mailbox), "d/u%d/", mem);
		maildir_deliver(store, mailbox, NULL, 0, &m, "", 0, &res);
		ck_assert_int_eq(res.status, AGENT_OK);
		snprintf(dir, sizeof(dir), "%s/d/u%d/new", store_path, mem);
		len = read_only_file(dir, name, sizeof(name), &data);
		ck_assert_uint_eq(len, tlen + strlen("Return-Path: <s@x.test>\n"
		    "Delivered-To: demo@example.test\n"));
		ck_assert(memcmp(data + len - tlen, text, tlen) == 0);
		check_sizes(name, data, len);
		free(data);
	}
	close(fd);
}
END_TEST

/* A message larger than the copy buffer, with a CR LF pair split across
 * the buffer's edge and bare LFs on both sides. */
START_TEST(test_crlf_size_large)
{
	const size_t size = 3 * 65536 + 17;
	char *text = xmalloc(size), qpath[200], dir[300], name[256], *data;
	struct maildir_result res;
	size_t len;
	int fd;

	for (size_t i = 0; i < size; i++)
		text[i] = i % 61 == 60 ? '\n' : i % 97 == 96 ? '\r' : 'x';
	/* The message starts 10 bytes into the queue file: byte 65526 of the
	 * message is the last of the first chunk. */
	text[65525] = '\r';
	text[65526] = '\n';
	text[65535] = '\r';
	text[65536] = '\n';
	text[2 * 65536 - 1] = '\n';
	text[2 * 65536] = '\n';
	snprintf(qpath, sizeof(qpath), "%s/q-large", root);
	fd = open(qpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "ENVELOPE\n\n", 10), 10);
	ck_assert_int_eq(write(fd, text, size), (ssize_t)size);
	struct maildir_msg m = { fd, 10, size, "", "big@example.test", NULL };
	maildir_deliver(store, "d/big", NULL, 0, &m, "", 0, &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	snprintf(dir, sizeof(dir), "%s/d/big/new", store_path);
	len = read_only_file(dir, name, sizeof(name), &data);
	ck_assert(memcmp(data + len - size, text, size) == 0);
	check_sizes(name, data, len);
	free(data);
	free(text);
	close(fd);
}
END_TEST

/* The writer's W= counting in pieces: each bare LF adds one byte. */
START_TEST(test_bare_lfs)
{
	int prev_cr = 0;

	ck_assert_uint_eq(maildir_crlf_size("a\nb\r\nc\n", 7, &prev_cr), 7 + 2);
	ck_assert_int_eq(prev_cr, 0);
	ck_assert_uint_eq(maildir_crlf_size("x\r", 2, &prev_cr), 2);
	ck_assert_int_eq(prev_cr, 1);
	/* The CR of the last piece pairs with this LF. */
	ck_assert_uint_eq(maildir_crlf_size("\n\n", 2, &prev_cr), 2 + 1);
	ck_assert_uint_eq(maildir_crlf_size("", 0, &prev_cr), 0);
	ck_assert_int_eq(prev_cr, 0);
}
END_TEST

static const struct {
	const char *text;
	size_t span;
} spans[] = {
	{ "A: 1\nB: 2\n\nbody\n", 10 },
	{ "\nbody\n", 0 },
	{ "A: 1\n", 5 },
	{ "A: 1", 4 },
	{ "", 0 },
	{ "A: 1\n \n\nb", 7 },
};

/* maildir_header_span() agrees with maildir_read_header(). */
START_TEST(test_header_span)
{
	const char *text = spans[_i].text;
	size_t n = strlen(text);
	struct buf out;
	const char *error;
	char qpath[200];
	int fd;

	ck_assert_uint_eq(maildir_header_span(text, n), spans[_i].span);
	snprintf(qpath, sizeof(qpath), "%s/q-span", root);
	fd = open(qpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "E\n\n", 3), 3);
	ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
	buf_init(&out, MAILDIR_MAX_HEADER);
	ck_assert_int_eq(maildir_read_header(fd, 3, n, &out, &error), 0);
	ck_assert_uint_eq(out.len, spans[_i].span);
	buf_free(&out);
	close(fd);
}
END_TEST

/* How many files dir (under the store) has. */
static int
store_count(const char *dir)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", store_path, dir);
	return count_dir(path, NULL, 0);
}

/* The cache: hits, a removed Maildir, one renamed away and replaced, a
 * removed tmp/ (the retry), a symlink put in its place, eviction. */
START_TEST(test_dir_cache)
{
	struct maildir_result res;
	char cmd[1024];
	size_t open;
	uint64_t hits, walks;

	deliver("c/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	deliver("c/u", NULL, 0, "", &res);	/* the same Maildir */
	ck_assert_int_eq(res.status, AGENT_OK);
	maildir_store_cache_stats(store, &open, &hits, &walks);
	ck_assert_uint_eq(open, 1);
	ck_assert_uint_eq(hits, 1);
	ck_assert_uint_eq(walks, 1);
	ck_assert_int_eq(store_count("c/u/new"), 2);

	/* Removed: walked again and created afresh. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/c/u'", store_path);
	ck_assert_int_eq(system(cmd), 0);
	deliver("c/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	ck_assert_int_eq(store_count("c/u/new"), 1);

	/* Renamed away and replaced by a new Maildir: the new one gets it. */
	snprintf(cmd, sizeof(cmd), "mv '%s/c/u' '%s/c/old' && mkdir -p "
	    "'%s/c/u/new' '%s/c/u/tmp' '%s/c/u/cur'", store_path, store_path,
	    store_path, store_path, store_path);
	ck_assert_int_eq(system(cmd), 0);
	deliver("c/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	ck_assert_int_eq(store_count("c/u/new"), 1);
	ck_assert_int_eq(store_count("c/old/new"), 1);

	/* Only tmp/ removed: the creation fails in the cached tmp/, one
	 * retry from the store recreates it. */
	maildir_store_cache_stats(store, &open, &hits, &walks);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/c/u/tmp'", store_path);
	ck_assert_int_eq(system(cmd), 0);
	deliver("c/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	ck_assert_int_eq(store_count("c/u/new"), 2);
	ck_assert_int_eq(store_count("c/u/tmp"), 0);
	{
		uint64_t h0 = hits, w0 = walks;

		maildir_store_cache_stats(store, &open, &hits, &walks);
		ck_assert_uint_eq(hits, h0 + 1);
		ck_assert_uint_eq(walks, w0 + 1);
	}

	/* The user directory becomes a symlink out of the store: refused
	 * although the old directory is still open in the cache. */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/new' '%s/tmp' '%s/cur' && "
	    "mv '%s/c/u' '%s/c/u2' && ln -s '%s' '%s/c/u'", outside, outside,
	    outside, store_path, store_path, outside, store_path);
	ck_assert_int_eq(system(cmd), 0);
	deliver("c/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
	ck_assert_ptr_nonnull(strstr(res.text, "symlink"));
	snprintf(cmd, sizeof(cmd), "%s/new", outside);
	ck_assert_int_eq(count_dir(cmd, NULL, 0), 0);
	ck_assert_int_eq(store_count("c/u2/new"), 2);

	/* Bounded: the least recently used goes; 0 caches nothing. */
	maildir_store_cache_size(store, 2);
	deliver("c/a/", NULL, 0, "", &res);
	deliver("c/b/", NULL, 0, "", &res);
	deliver("c/a/", NULL, 0, "", &res);
	deliver("c/d/", NULL, 0, "", &res);
	maildir_store_cache_stats(store, &open, &hits, &walks);
	ck_assert_uint_eq(open, 2);
	{
		uint64_t h0 = hits, w0 = walks;

		deliver("c/a/", NULL, 0, "", &res);	/* kept */
		deliver("c/b/", NULL, 0, "", &res);	/* evicted */
		maildir_store_cache_stats(store, &open, &hits, &walks);
		ck_assert_uint_eq(hits, h0 + 1);
		ck_assert_uint_eq(walks, w0 + 1);
	}
	maildir_store_cache_size(store, 0);
	deliver("c/a/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	maildir_store_cache_stats(store, &open, &hits, &walks);
	ck_assert_uint_eq(open, 0);
	ck_assert_int_eq(store_count("c/a/new"), 4);
}
END_TEST

/* A cached Maildir moved out of the store and a symlink to it put in its
 * place (at the user or the domain level): new/ is still the same inode
 * through the symlink, but the mail must not follow it out of the store. */
START_TEST(test_cache_moved_out_symlinked)
{
	static const char *const level[] = { "m/u", "m" };
	struct maildir_result res;
	char cmd[1400], moved[300], path[400];

	deliver("m/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	snprintf(moved, sizeof(moved), "%s/moved%d", root, _i);
	snprintf(cmd, sizeof(cmd), "mv '%s/%s' '%s' && ln -s '%s' '%s/%s'",
	    store_path, level[_i], moved, moved, store_path, level[_i]);
	ck_assert_int_eq(system(cmd), 0);
	deliver("m/u/", NULL, 0, "", &res);
	ck_assert_int_eq(res.status, AGENT_TEMP);
	ck_assert_ptr_nonnull(strstr(res.text, "symlink"));
	snprintf(path, sizeof(path), "%s%s/new", moved, _i == 0 ? "" : "/u");
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);
}
END_TEST

/* A cached Maildir evicted while a delivery into it is pending: its fds
 * stay open until the delivery is finished. */
START_TEST(test_cache_evict_pending)
{
	struct maildir_pending *p;
	struct maildir_result res;

	prepare("e/a/", &p);
	maildir_store_cache_size(store, 0);	/* drops the cache's reference */
	maildir_commit(&p, 1);
	maildir_finish(&p, &res);
	ck_assert_int_eq(res.status, AGENT_OK);
	ck_assert_int_eq(store_count("e/a/new"), 1);
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
	tcase_add_loop_test(tc, test_crlf_size, 0,
	    (int)(sizeof(crlf_msgs) / sizeof(crlf_msgs[0])));
	tcase_add_test(tc, test_crlf_size_large);
	tcase_add_test(tc, test_bare_lfs);
	tcase_add_loop_test(tc, test_header_span, 0, (int)(sizeof(spans) / sizeof(spans[0])));
	tcase_add_test(tc, test_dir_cache);
	tcase_add_test(tc, test_cache_evict_pending);
	tcase_add_loop_test(tc, test_cache_moved_out_symlinked, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(maildir_suite());
}
