/*
 * Unit tests for lib/mail/qfile.c: queue ids, the envelope round trip, the
 * durability contract (nothing visible before commit, not even after a
 * crash; nothing left after abort or a full disk), group commit, the
 * strict reader, and the tmp/ fallback path.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_util.h"
#include "qfile.h"
#include "smtp.h"
#include "xalloc.h"

static char spool[64];

/* A fresh spool directory with tmp/ and new/ (mode 0700, no setgid). */
static void
setup(void)
{
	char path[128];

	snprintf(spool, sizeof(spool), "/tmp/test-qfile-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(spool));
	snprintf(path, sizeof(path), "%s/tmp", spool);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/new", spool);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	qfile_set_force_tmp(0);
}

/* Remove every file in spool/sub. */
static void
empty_dir(const char *sub)
{
	char path[256];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/%s", spool, sub);
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	(void)rmdir(path);
}

static void
teardown(void)
{
	empty_dir("tmp");
	empty_dir("new");
	(void)rmdir(spool);
}

/* Entries in spool/sub, other than . and .. */
static int
count(const char *sub)
{
	char path[256];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", spool, sub);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* A minimal valid envelope (free with envelope_free). */
static void
simple_env(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->arrival_us = 1700000000123456ull;
	e->sender = xstrdup("from@example.test");
	e->client = xstrdup("192.0.2.1");
	e->proto = xstrdup("ESMTP");
	envelope_add_rcpt(e, "to@example.test", 0, NULL);
}

/* Begin a message with the simple envelope and write body into it. */
static struct qfile_writer *
begin_simple(const char *body, char id[QFILE_ID_MAX])
{
	struct envelope e;
	struct qfile_writer *w = NULL;
	const char *err = NULL;

	simple_env(&e);
	ck_assert_msg(qfile_begin(spool, &e, &w, &err) == 0, "begin: %s", err);
	ck_assert_int_eq(qfile_write(w, body, strlen(body)), 0);
	if (id != NULL)
		memcpy(id, e.id, QFILE_ID_MAX);
	envelope_free(&e);
	return w;
}

/* Commit one writer; returns its result. */
static int
commit_one(struct qfile_writer *w)
{
	int result = 7;
	const char *err = NULL;

	qfile_commit(&w, 1, &result, &err);
	ck_assert_ptr_null(w);
	return result;
}

/* Open spool/new/id, read its envelope (0/-1) and body. */
static int
read_queued(const char *id, struct envelope *e, char *body, size_t bodymax)
{
	char path[256];
	const char *err = NULL;
	off_t off = -1;
	ssize_t n;
	int fd, r;

	snprintf(path, sizeof(path), "%s/new/%s", spool, id);
	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	r = qfile_read_envelope(fd, e, &off, &err);
	ck_assert_msg(r == 0, "read: %s", err);
	n = pread(fd, body, bodymax - 1, off);
	ck_assert_int_ge(n, 0);
	body[n] = '\0';
	close(fd);
	return r;
}

START_TEST(test_ids_unique_sorted)
{
	enum { N = 100000 };
	char (*ids)[QFILE_ID_MAX] = xcalloc(N, QFILE_ID_MAX);
	size_t i, j;

	for (i = 0; i < N; i++)
		qfile_new_id(ids[i]);
	for (i = 0; i < N; i++) {
		size_t len = strlen(ids[i]);

		ck_assert_uint_gt(len, 0);
		ck_assert_uint_lt(len, QFILE_ID_MAX);
		for (j = 0; j < len; j++) {
			char c = ids[i][j];

			ck_assert((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
			    (c >= 'a' && c <= 'z'));
		}
		/* Strictly increasing: sorted by time, and so all different. */
		if (i > 0)
			ck_assert_msg(strcmp(ids[i - 1], ids[i]) < 0, "%s !< %s",
			    ids[i - 1], ids[i]);
	}
	free(ids);
}
END_TEST

/* Ids from another process differ (the pid is part of them). */
START_TEST(test_ids_across_fork)
{
	char a[QFILE_ID_MAX], b[QFILE_ID_MAX];
	int p[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	memset(b, 0, sizeof(b));
	qfile_new_id(a);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		qfile_new_id(b);
		_exit(write(p[1], b, sizeof(b)) == sizeof(b) ? 0 : 1);
	}
	ck_assert_int_eq(read(p[0], b, sizeof(b)), sizeof(b));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_str_ne(a, b);
	ck_assert_int_ne(memcmp(a + 10, b + 10, 4), 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Every field with awkward values survives writing and reading. */
START_TEST(test_roundtrip)
{
	struct envelope e, r;
	struct qfile_writer *w = NULL;
	const char *err = NULL;
	char body[256], addr[64], *envid;
	const char *text = "Subject: x\n\nline 1\n.\nline 3\n";
	size_t i;

	memset(&e, 0, sizeof(e));
	e.arrival_us = 1700000000000001ull;
	e.sender = xstrdup("we ird %41 \xc3\xa9@exa mple.test");
	e.body_8bit = 1;
	e.smtputf8 = 1;
	e.ret = SMTP_RET_HDRS;
	envid = xmalloc(20001);
	for (i = 0; i < 20000; i++)
		envid[i] = "a %~z"[i % 4];
	envid[20000] = '\0';
	e.envid = envid;
	e.client = xstrdup("2001:db8::1");
	e.helo = xstrdup("");
	e.proto = xstrdup("ESMTPSA");
	e.tls = xstrdup("TLSv1.3:TLS_AES_256_GCM_SHA384");
	e.auth = xstrdup("user name\xe2\x82\xac");
	for (i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "r%zu %%@d\xc3\xa9.test", i);
		envelope_add_rcpt(&e, addr, (unsigned)(i % 16),
		    i % 3 == 0 ? NULL : i % 3 == 1 ? "-" : "rfc822;x y%");
	}
	ck_assert_msg(qfile_begin(spool, &e, &w, &err) == 0, "begin: %s", err);
	ck_assert_uint_eq(qfile_size(w), 0);
	ck_assert_int_eq(qfile_write(w, text, strlen(text)), 0);
	ck_assert_uint_eq(qfile_size(w), strlen(text));
	ck_assert_int_eq(commit_one(w), 0);
	ck_assert_int_eq(count("new"), 1);
	ck_assert_int_eq(count("tmp"), 0);

	read_queued(e.id, &r, body, sizeof(body));
	ck_assert_str_eq(body, text);
	ck_assert_str_eq(r.id, e.id);
	ck_assert_uint_eq(r.arrival_us, e.arrival_us);
	ck_assert_str_eq(r.sender, e.sender);
	ck_assert_int_eq(r.body_8bit, 1);
	ck_assert_int_eq(r.smtputf8, 1);
	ck_assert_int_eq(r.ret, SMTP_RET_HDRS);
	ck_assert_str_eq(r.envid, e.envid);
	ck_assert_str_eq(r.client, e.client);
	ck_assert_str_eq(r.helo, "");
	ck_assert_str_eq(r.proto, "ESMTPSA");
	ck_assert_str_eq(r.tls, e.tls);
	ck_assert_str_eq(r.auth, e.auth);
	ck_assert_uint_eq(r.nrcpts, 1000);
	for (i = 0; i < 1000; i++) {
		ck_assert_str_eq(r.rcpts[i].addr, e.rcpts[i].addr);
		ck_assert_uint_eq(r.rcpts[i].notify, e.rcpts[i].notify);
		if (e.rcpts[i].orcpt == NULL)
			ck_assert_ptr_null(r.rcpts[i].orcpt);
		else
			ck_assert_str_eq(r.rcpts[i].orcpt, e.rcpts[i].orcpt);
	}
	envelope_free(&r);
	envelope_free(&e);
	ck_assert_ptr_null(e.rcpts);
}
END_TEST

/* The null sender, a literal "<>", and absent optional fields. */
START_TEST(test_roundtrip_null_sender)
{
	const char *senders[] = { "", "<>" };
	struct envelope e, r;
	struct qfile_writer *w = NULL;
	const char *err = NULL;
	char body[64];
	size_t i;

	for (i = 0; i < 2; i++) {
		simple_env(&e);
		free(e.sender);
		e.sender = xstrdup(senders[i]);
		ck_assert_int_eq(qfile_begin(spool, &e, &w, &err), 0);
		ck_assert_int_eq(commit_one(w), 0);
		read_queued(e.id, &r, body, sizeof(body));
		ck_assert_str_eq(r.sender, senders[i]);
		ck_assert_ptr_null(r.envid);
		ck_assert_ptr_null(r.helo);
		ck_assert_ptr_null(r.tls);
		ck_assert_ptr_null(r.auth);
		ck_assert_str_eq(body, "");
		envelope_free(&r);
		envelope_free(&e);
	}
}
END_TEST

/* The exact envelope text, as documented in qfile.h. */
START_TEST(test_format)
{
	struct envelope e, r;
	struct qfile_writer *w = NULL;
	const char *err = NULL;
	char path[256], got[1024], want[1024];
	ssize_t n;
	int fd;

	simple_env(&e);
	envelope_add_rcpt(&e, "b@x", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
	    "rfc822;b@x");
	e.auth = xstrdup("bob");
	ck_assert_int_eq(qfile_begin(spool, &e, &w, &err), 0);
	ck_assert_int_eq(qfile_write(w, "body\n", 5), 0);
	ck_assert_int_eq(commit_one(w), 0);
	snprintf(path, sizeof(path), "%s/new/%s", spool, e.id);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, got, sizeof(got) - 1);
	ck_assert_int_gt(n, 0);
	got[n] = '\0';
	snprintf(want, sizeof(want), "POSTERN-QUEUE 1\nid %s\n"
	    "arrival 1700000000.123456\nsender from@example.test\nbody 7BIT\n"
	    "smtputf8 0\nret NONE\nclient 192.0.2.1\nproto ESMTP\nauth bob\n"
	    "rcpt to@example.test 0 -\nrcpt b@x 6 rfc822;b@x\n\nbody\n", e.id);
	ck_assert_str_eq(got, want);
	/* The reader is positioned by offset, not by the fd's position. */
	ck_assert_int_eq(lseek(fd, 3, SEEK_SET), 3);
	{
		off_t off;

		ck_assert_int_eq(qfile_read_envelope(fd, &r, &off, &err), 0);
		ck_assert_int_eq(off, (off_t)strlen(want) - 5);
		envelope_free(&r);
	}
	close(fd);
	envelope_free(&e);
}
END_TEST

/* File modes: 0644 in a plain new/, 0640 in a set-group-id one, and
 * neither depends on the umask. */
START_TEST(test_modes)
{
	char id[QFILE_ID_MAX], path[256];
	struct stat st;
	mode_t old = umask(077);

	ck_assert_int_eq(commit_one(begin_simple("x\n", id)), 0);
	snprintf(path, sizeof(path), "%s/new/%s", spool, id);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	snprintf(path, sizeof(path), "%s/new", spool);
	ck_assert_int_eq(chmod(path, 02770), 0);
	ck_assert_int_eq(commit_one(begin_simple("x\n", id)), 0);
	snprintf(path, sizeof(path), "%s/new/%s", spool, id);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	umask(old);
}
END_TEST

/* Begun but not committed: nothing in new/ or tmp/; abort: nothing left. */
START_TEST(test_uncommitted_invisible)
{
	struct qfile_writer *w = begin_simple("hello\n", NULL);
	char big[100000];

	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(qfile_write(w, big, sizeof(big)), 0);	/* flushed */
	ck_assert_int_eq(count("new"), 0);
	ck_assert_int_eq(count("tmp"), 0);
	qfile_abort(&w);
	ck_assert_ptr_null(w);
	qfile_abort(&w);	/* harmless on NULL */
	ck_assert_int_eq(count("new"), 0);
	ck_assert_int_eq(count("tmp"), 0);
}
END_TEST

/* A process that dies before committing leaves nothing anywhere. */
START_TEST(test_killed_before_commit)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct envelope e;
		struct qfile_writer *w = NULL;
		const char *err;
		char big[200000];

		simple_env(&e);
		memset(big, 'y', sizeof(big));
		if (qfile_begin(spool, &e, &w, &err) < 0 ||
		    qfile_write(w, big, sizeof(big)) < 0)
			_exit(2);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(count("new"), 0);
	ck_assert_int_eq(count("tmp"), 0);
}
END_TEST

/* Group commit of 50 writers: all queued, each under its own id. */
START_TEST(test_batch_commit)
{
	enum { N = 50 };
	struct qfile_writer *ws[N];
	char ids[N][QFILE_ID_MAX], body[128], want[64];
	int results[N], i;
	const char *err = NULL;
	struct envelope r;

	for (i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "message %d\n", i);
		ws[i] = begin_simple(want, ids[i]);
	}
	ck_assert_int_eq(count("new"), 0);
	qfile_commit(ws, N, results, &err);
	ck_assert_ptr_null(err);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(results[i], 0);
		ck_assert_ptr_null(ws[i]);
		read_queued(ids[i], &r, body, sizeof(body));
		snprintf(want, sizeof(want), "message %d\n", i);
		ck_assert_str_eq(body, want);
		ck_assert_str_eq(r.id, ids[i]);
		envelope_free(&r);
	}
	ck_assert_int_eq(count("new"), N);
	ck_assert_int_eq(count("tmp"), 0);
	qfile_commit(ws, 0, results, &err);	/* an empty batch is fine */
}
END_TEST

/*
 * In a child with a small RLIMIT_FSIZE and SIGXFSZ ignored, writes fail
 * with EFBIG.  bodylen decides whether qfile_write (past the 64 KiB
 * buffer) or qfile_commit (the final flush) sees it.  Exit codes: 0 the
 * failure was reported, 3 qfile_write failed as expected, else a bug.
 */
static void
disk_full(size_t bodylen, int want_write_fail)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { 4096, 4096 };
		struct envelope e;
		struct qfile_writer *w = NULL;
		const char *err = NULL;
		char *body = xmalloc(bodylen);
		int result = 0, wr;

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(10);
		memset(body, 'z', bodylen);
		simple_env(&e);
		if (qfile_begin(spool, &e, &w, &err) < 0)
			_exit(11);
		wr = qfile_write(w, body, bodylen);
		if (wr < 0 && !want_write_fail)
			_exit(12);
		if (wr == 0 && want_write_fail)
			_exit(13);
		if (wr < 0) {
			/* Only good for abort now; commit must fail too. */
			if (qfile_write(w, "x", 1) != -1)
				_exit(14);
		}
		qfile_commit(&w, 1, &result, &err);
		free(body);
		envelope_free(&e);
		if (result != -1 || err == NULL || strstr(err, "large") == NULL)
			_exit(15);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child status %d", status);
	ck_assert_int_eq(count("new"), 0);
	ck_assert_int_eq(count("tmp"), 0);
}

START_TEST(test_disk_full_in_write)
{
	disk_full(300000, 1);
}
END_TEST

START_TEST(test_disk_full_in_commit)
{
	disk_full(10000, 0);
}
END_TEST

START_TEST(test_disk_full_fallback)
{
	qfile_set_force_tmp(1);
	disk_full(300000, 1);
	disk_full(10000, 0);
}
END_TEST

/* qfile_begin refuses envelopes the reader would refuse. */
START_TEST(test_begin_refuses)
{
	struct envelope e;
	struct qfile_writer *w = NULL;
	const char *err = NULL;
	char *huge = xmalloc(30000);

	simple_env(&e);
	free(e.proto);
	e.proto = xstrdup("UUCP");
	ck_assert_int_eq(qfile_begin(spool, &e, &w, &err), -1);
	ck_assert_ptr_nonnull(err);
	envelope_free(&e);

	memset(&e, 0, sizeof(e));	/* no sender, no recipient */
	ck_assert_int_eq(qfile_begin(spool, &e, &w, &err), -1);

	/* 30,000 spaces escape to 90,000 bytes: past the line limit. */
	simple_env(&e);
	memset(huge, ' ', 29999);
	huge[29999] = '\0';
	envelope_add_rcpt(&e, huge, 0, NULL);
	ck_assert_int_eq(qfile_begin(spool, &e, &w, &err), -1);
	ck_assert_ptr_null(w);
	envelope_free(&e);
	free(huge);

	simple_env(&e);
	e.rcpts[0].notify = 16;
	ck_assert_int_eq(qfile_begin(spool, &e, &w, &err), -1);
	envelope_free(&e);

	simple_env(&e);
	ck_assert_int_eq(qfile_begin("/nonexistent/spool", &e, &w, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/spool"));
	envelope_free(&e);
	ck_assert_int_eq(count("new"), 0);
	ck_assert_int_eq(count("tmp"), 0);
}
END_TEST

/* A symlink in place of new/ is refused, never followed. */
START_TEST(test_symlink_refused)
{
	struct envelope e;
	struct qfile_writer *w = NULL;
	const char *err = NULL;
	char path[256], target[256];

	snprintf(path, sizeof(path), "%s/new", spool);
	snprintf(target, sizeof(target), "%s/tmp", spool);
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(symlink(target, path), 0);
	simple_env(&e);
	ck_assert_int_eq(qfile_begin(spool, &e, &w, &err), -1);
	envelope_free(&e);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
}
END_TEST

#define HEAD "POSTERN-QUEUE 1\nid A1\narrival 1.000000\nsender <>\nbody 7BIT\n" \
	"smtputf8 0\nret NONE\nclient local\nproto LOCAL\n"
#define RCPT "rcpt a@b 0 -\n"

static const struct {
	const char *text;
	int ok;
} envelopes[] = {
	{ HEAD RCPT "\nbody", 1 },
	{ HEAD RCPT "rcpt c%20d@e 15 rfc822;x\n\n", 1 },
	{ "POSTERN-QUEUE 2\nid A1\n" RCPT "\n", 0 },		/* version */
	{ "postern-queue 1\n" RCPT "\n", 0 },
	{ "\n", 0 },
	{ "", 0 },
	{ HEAD RCPT, 0 },					/* no blank line */
	{ HEAD RCPT "\r\n", 0 },
	{ HEAD "\n", 0 },					/* no recipient */
	{ HEAD RCPT "color red\n\n", 0 },			/* unknown field */
	{ HEAD RCPT "sender x@y\n\n", 0 },			/* repeated */
	{ HEAD RCPT "id B2\n\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.000000\nsender <>\nbody 7BIT\n"
	  "smtputf8 0\nret NONE\nproto LOCAL\n" RCPT "\n", 0 },	/* no client */
	{ "POSTERN-QUEUE 1\nsender <>\n" RCPT "\n", 0 },
	{ HEAD "rcpt a%2@b 0 -\n\n", 0 },			/* bad escapes */
	{ HEAD "rcpt a%zz@b 0 -\n\n", 0 },
	{ HEAD "rcpt a%00b 0 -\n\n", 0 },
	{ HEAD "rcpt a%0Db 0 -\n\n", 0 },			/* control bytes */
	{ HEAD "rcpt a%0ab 0 -\n\n", 0 },
	{ HEAD "rcpt a%1Fb 0 -\n\n", 0 },
	{ HEAD "rcpt a%7Fb 0 -\n\n", 0 },
	{ HEAD "rcpt a%20b 0 -\n\n", 1 },
	{ HEAD "rcpt a@b% 0 -\n\n", 0 },
	{ HEAD "rcpt a\x01@b 0 -\n\n", 0 },			/* raw bytes */
	{ HEAD "rcpt a\xc3\xa9@b 0 -\n\n", 0 },
	{ HEAD "rcpt a\t@b 0 -\n\n", 0 },
	{ HEAD "rcpt a@b 16 -\n\n", 0 },			/* NOTIFY */
	{ HEAD "rcpt a@b 01 -\n\n", 0 },
	{ HEAD "rcpt a@b -1 -\n\n", 0 },
	{ HEAD "rcpt a@b x -\n\n", 0 },
	{ HEAD "rcpt a@b 0\n\n", 0 },				/* fields */
	{ HEAD "rcpt a@b 0 - x\n\n", 0 },
	{ HEAD "rcpt a@b  0 -\n\n", 0 },
	{ HEAD "rcpt  0 -\n\n", 0 },
	{ HEAD "rcpt a@b 0 \n\n", 0 },
	{ HEAD "rcpt\n\n", 0 },
	{ HEAD RCPT "envid\n\n", 0 },
	{ HEAD RCPT " x\n\n", 0 },
	{ "POSTERN-QUEUE 1\nid A-1\narrival 1.000000\nsender <>\nbody 7BIT\n"
	  "smtputf8 0\nret NONE\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.00000\nsender <>\nbody 7BIT\n"
	  "smtputf8 0\nret NONE\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.0000000\nsender <>\nbody 7BIT\n"
	  "smtputf8 0\nret NONE\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 99999999999999999999.000000\n"
	  "sender <>\nbody 7BIT\n"
	  "smtputf8 0\nret NONE\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.000000\nsender \nbody 7BIT\n"
	  "smtputf8 0\nret NONE\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.000000\nsender <>\nbody 8BIT\n"
	  "smtputf8 0\nret NONE\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.000000\nsender <>\nbody 7BIT\n"
	  "smtputf8 2\nret NONE\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.000000\nsender <>\nbody 7BIT\n"
	  "smtputf8 0\nret ALL\nclient local\nproto LOCAL\n" RCPT "\n", 0 },
	{ "POSTERN-QUEUE 1\nid A1\narrival 1.000000\nsender <>\nbody 7BIT\n"
	  "smtputf8 0\nret NONE\nclient local\nproto LMTP\n" RCPT "\n", 0 },
};

/* The strict reader against a table of good and malformed envelopes. */
START_TEST(test_reader_table)
{
	const char *text = envelopes[_i].text;
	struct envelope e;
	const char *err = NULL;
	char path[256];
	off_t off = -1;
	int fd, r;

	snprintf(path, sizeof(path), "%s/tmp/case", spool);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	memset(&e, 0, sizeof(e));
	r = qfile_read_envelope(fd, &e, &off, &err);
	close(fd);
	unlink(path);
	if (envelopes[_i].ok) {
		ck_assert_msg(r == 0, "case %d refused: %s", _i, err);
		ck_assert_int_eq(off, (off_t)(strstr(text, "\n\n") + 2 - text));
		envelope_free(&e);
	} else {
		ck_assert_msg(r == -1, "case %d accepted", _i);
		ck_assert_ptr_nonnull(err);
		ck_assert_ptr_null(e.sender);	/* untouched */
	}
}
END_TEST

/* Write text made of head, n copies of line, and tail to a file; return
 * the reader's verdict. */
static int
read_generated(const char *head, const char *line, size_t n, const char *tail,
    struct envelope *e, const char **err)
{
	char path[256];
	FILE *f;
	off_t off;
	size_t i;
	int fd, r;

	snprintf(path, sizeof(path), "%s/tmp/gen", spool);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(head, f);
	for (i = 0; i < n; i++)
		fputs(line, f);
	fputs(tail, f);
	ck_assert_int_eq(fclose(f), 0);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	r = qfile_read_envelope(fd, e, &off, err);
	close(fd);
	unlink(path);
	return r;
}

/* The line limit (64 KiB) and the recipient limit (1,000,000). */
START_TEST(test_reader_limits)
{
	struct envelope e;
	const char *err = NULL;
	char *line = xmalloc(70000);

	memset(&e, 0, sizeof(e));
	/* A 65,536-byte line is allowed, one more byte is not. */
	memcpy(line, "envid ", 6);
	memset(line + 6, 'e', 65530);
	strcpy(line + 65536, "\n");
	ck_assert_msg(read_generated(HEAD RCPT, line, 1, "\n", &e, &err) == 0,
	    "%s", err);
	ck_assert_uint_eq(strlen(e.envid), 65530);
	envelope_free(&e);
	memset(line + 6, 'e', 65531);
	strcpy(line + 65537, "\n");
	ck_assert_int_eq(read_generated(HEAD RCPT, line, 1, "\n", &e, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	/* Even without any LF in the file. */
	line[65537] = '\0';
	ck_assert_int_eq(read_generated(HEAD, line, 1, "", &e, &err), -1);
	free(line);

	ck_assert_int_eq(read_generated(HEAD, "rcpt a 0 -\n", 1000000, "\n",
	    &e, &err), 0);
	ck_assert_uint_eq(e.nrcpts, 1000000);
	envelope_free(&e);
	ck_assert_int_eq(read_generated(HEAD, "rcpt a 0 -\n", 1000001, "\n",
	    &e, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "too many"));
}
END_TEST

/* The tmp/ + rename path: the same contract, with a name in tmp/ until
 * commit. */
START_TEST(test_fallback)
{
	enum { N = 5 };
	struct qfile_writer *ws[N], *w;
	char ids[N][QFILE_ID_MAX], body[64];
	int results[N], i, status;
	const char *err = NULL;
	struct envelope r;
	pid_t pid;

	qfile_set_force_tmp(1);
	w = begin_simple("abort me\n", NULL);
	ck_assert_int_eq(count("tmp"), 1);
	ck_assert_int_eq(count("new"), 0);
	qfile_abort(&w);
	ck_assert_int_eq(count("tmp"), 0);

	for (i = 0; i < N; i++)
		ws[i] = begin_simple("fallback\n", ids[i]);
	ck_assert_int_eq(count("tmp"), N);
	ck_assert_int_eq(count("new"), 0);
	qfile_commit(ws, N, results, &err);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(results[i], 0);
		read_queued(ids[i], &r, body, sizeof(body));
		ck_assert_str_eq(body, "fallback\n");
		envelope_free(&r);
	}
	ck_assert_int_eq(count("tmp"), 0);
	ck_assert_int_eq(count("new"), N);

	/* Killed before commit: a leftover in tmp/ (for qmgr to clean),
	 * never anything in new/. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		w = begin_simple("killed\n", NULL);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(count("new"), N);
	ck_assert_int_eq(count("tmp"), 1);
}
END_TEST

/* A name already taken in new/ is never replaced: that writer fails,
 * the rest of the batch is queued. */
START_TEST(test_no_replace)
{
	int mode;

	for (mode = 0; mode < 2; mode++) {
		struct qfile_writer *ws[2];
		char ids[2][QFILE_ID_MAX], path[256];
		int results[2], fd;
		const char *err = NULL;

		qfile_set_force_tmp(mode);
		ws[0] = begin_simple("first\n", ids[0]);
		ws[1] = begin_simple("second\n", ids[1]);
		snprintf(path, sizeof(path), "%s/new/%s", spool, ids[0]);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		ck_assert_int_ge(fd, 0);
		close(fd);
		qfile_commit(ws, 2, results, &err);
		ck_assert_int_eq(results[0], -1);
		ck_assert_int_eq(results[1], 0);
		ck_assert_ptr_nonnull(strstr(err, ids[0]));
		ck_assert_int_eq(count("tmp"), 0);
		ck_assert_int_eq(count("new"), 2);
		empty_dir("new");
		snprintf(path, sizeof(path), "%s/new", spool);
		ck_assert_int_eq(mkdir(path, 0700), 0);
	}
}
END_TEST

/* queue_minfree: the reserve in effect, and what fits above it. */
#define MB (1024ULL * 1024)
static const struct {
	uint64_t minfree, max_size;	/* the settings */
	uint64_t bytes, inodes, size;	/* free, and the message */
	uint64_t want_reserve;
	int want_room;
	const char *want_why;
} room_cases[] = {
	{ 0, 25 * MB, 200 * MB, 5000, 0, 100 * MB, 1, NULL },	/* floor: 100m */
	{ 0, 200 * MB, 200 * MB, 5000, 0, 300 * MB, 0,
	    "free space below queue_minfree" },		/* 1.5 x the limit */
	{ 0, UINT64_MAX, UINT64_MAX, UINT64_MAX, 0, UINT64_MAX, 1, NULL },	/* no overflow */
	{ 1 * MB, 25 * MB, 1 * MB, 5000, 0, 1 * MB, 1, NULL },	/* given: as is */
	{ 1 * MB, 25 * MB, 1 * MB - 1, 5000, 0, 1 * MB, 0,
	    "free space below queue_minfree" },
	{ 1 * MB, 25 * MB, 4 * MB, 5000, 3 * MB, 1 * MB, 1, NULL },	/* just fits */
	{ 1 * MB, 25 * MB, 4 * MB, 5000, 3 * MB + 1, 1 * MB, 0,
	    "declared size does not fit above queue_minfree" },
	{ 1 * MB, 25 * MB, 4 * MB, 999, 0, 1 * MB, 0, "too few free inodes" },
	{ 1 * MB, 25 * MB, 4 * MB, 1000, 0, 1 * MB, 1, NULL },
	{ 1 * MB, 25 * MB, 4 * MB, UINT64_MAX, 0, 1 * MB, 1, NULL },	/* no limit */
};

START_TEST(test_room)
{
	const char *why = NULL;
	uint64_t reserve = qfile_reserve(room_cases[_i].minfree, room_cases[_i].max_size);

	ck_assert_uint_eq(reserve, room_cases[_i].want_reserve);
	ck_assert_int_eq(qfile_room(room_cases[_i].bytes, room_cases[_i].inodes, reserve,
	    room_cases[_i].size, &why), room_cases[_i].want_room);
	if (room_cases[_i].want_why != NULL)
		ck_assert_str_eq(why, room_cases[_i].want_why);
}
END_TEST

static Suite *
qfile_suite(void)
{
	Suite *s = suite_create("qfile");
	TCase *tc = tcase_create("qfile");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ids_unique_sorted);
	tcase_add_test(tc, test_ids_across_fork);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_roundtrip_null_sender);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_modes);
	tcase_add_test(tc, test_uncommitted_invisible);
	tcase_add_test(tc, test_killed_before_commit);
	tcase_add_test(tc, test_batch_commit);
	tcase_add_test(tc, test_disk_full_in_write);
	tcase_add_test(tc, test_disk_full_in_commit);
	tcase_add_test(tc, test_disk_full_fallback);
	tcase_add_test(tc, test_begin_refuses);
	tcase_add_test(tc, test_symlink_refused);
	tcase_add_loop_test(tc, test_reader_table, 0,
	    (int)(sizeof(envelopes) / sizeof(envelopes[0])));
	tcase_add_test(tc, test_reader_limits);
	tcase_add_test(tc, test_fallback);
	tcase_add_test(tc, test_no_replace);
	tcase_add_loop_test(tc, test_room, 0,
	    (int)(sizeof(room_cases) / sizeof(room_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(qfile_suite());
}
