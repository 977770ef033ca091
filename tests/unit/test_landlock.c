/*
 * Unit tests for lib/core/landlock.c.  Each confinement runs in a forked
 * child (it is irreversible) over a temporary tree of two Maildirs, A and
 * B, and a read-only directory R.  Confined to A, the child works in A as
 * a mail process does and every step into B, out of A through "..", a
 * symlink or an absolute path, gets the kernel's error.  The same table of
 * steps run unconfined succeeds, so the table can fail.  The unavailable
 * path is driven by a seccomp filter that makes the kernel's
 * landlock_create_ruleset answer ENOSYS or EOPNOTSUPP, as a kernel without
 * Landlock, or with Landlock off, does.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_util.h"
#include "landlock.h"
#include "priv.h"

/* The temporary tree: root/A and root/B are Maildirs with a message in
 * cur/, root/R a read-only directory, root/single.txt and root/other.txt
 * files beside them. */
static char root[64];
static char dir_a[128], dir_b[128], dir_r[128];

/* root/rel as a path in a static ring of buffers. */
static const char *
at(const char *rel)
{
	static char bufs[8][256];
	static unsigned n;
	char *b = bufs[n++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", root, rel);
	return b;
}

/* Create path with contents s. */
static void
put_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	ck_assert_int_eq(close(fd), 0);
}

/* A Maildir (tmp, new, cur) at root/name with messages in cur/. */
static void
make_maildir(const char *name)
{
	static const char *const subs[] = { "", "/tmp", "/new", "/cur" };
	char path[256];

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s%s", root, name, subs[i]);
		ck_assert_int_eq(mkdir(path, 0700), 0);
	}
	snprintf(path, sizeof(path), "%s/%s/cur/1.msg", root, name);
	put_file(path, "message one\r\n");
	snprintf(path, sizeof(path), "%s/%s/cur/2.msg", root, name);
	put_file(path, "message two\r\n");
	snprintf(path, sizeof(path), "%s/%s/cur/del.msg", root, name);
	put_file(path, "to delete\r\n");
	snprintf(path, sizeof(path), "%s/%s/cur/trunc.msg", root, name);
	put_file(path, "to truncate\r\n");
	snprintf(path, sizeof(path), "%s/%s/cur/steal.msg", root, name);
	put_file(path, "to steal\r\n");
}

static void
setup(void)
{
	snprintf(root, sizeof(root), "/tmp/ptland-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(dir_a, sizeof(dir_a), "%s/A", root);
	snprintf(dir_b, sizeof(dir_b), "%s/B", root);
	snprintf(dir_r, sizeof(dir_r), "%s/R", root);
	make_maildir("A");
	make_maildir("B");
	ck_assert_int_eq(mkdir(dir_r, 0700), 0);
	put_file(at("R/ro.txt"), "read only\n");
	put_file(at("single.txt"), "single\n");
	put_file(at("other.txt"), "other\n");
	/* Made before confinement: symlinks in A that lead into B. */
	ck_assert_int_eq(symlink(at("B/cur/1.msg"), at("A/cur/toB.msg")), 0);
	ck_assert_int_eq(symlink("../../B/cur", at("A/cur/toBdir")), 0);
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}

/* In a child: report a failed expectation and exit 1. */
#define WANT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: want %s\n", __FILE__, __LINE__, #cond); \
		_exit(1); \
	} \
} while (0)
/* In a child: step must end with error e (0: succeed). */
#define WANT_ERR(step, e) do { \
	int got_ = (step); \
	if (got_ != (e)) { \
		fprintf(stderr, "%s:%d: %s: got %s, want %s\n", __FILE__, \
		    __LINE__, #step, got_ ? strerror(got_) : "success", \
		    (e) ? strerror(e) : "success"); \
		_exit(1); \
	} \
} while (0)

/* 0 if a syscall-style result r is not -1, else errno. */
static int
err_of(long r)
{
	return r == -1 ? errno : 0;
}

/* Open path with flags (and close it): 0 or errno. */
static int
try_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0600);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* List a directory: 0 when it opens and has a "." entry, else errno. */
static int
try_list(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int found = 0;

	if (d == NULL)
		return errno;
	while ((de = readdir(d)) != NULL)
		found |= strcmp(de->d_name, ".") == 0;
	closedir(d);
	return found ? 0 : ENOENT;
}

/* Read path whole into buf (NUL-terminated): 0 or errno. */
static int
try_read(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return errno;
	buf[n] = '\0';
	return 0;
}

/* open ../B/cur/1.msg relative to A/cur (chdir itself is never denied). */
static int
try_dotdot_relative(void)
{
	if (chdir(at("A/cur")) < 0)
		return errno;
	return try_open("../../B/cur/1.msg", O_RDONLY);
}

/*
 * Every step out of A, with the error the kernel gives it under
 * confinement to A.  Link and rename that would move a file of B into A
 * get EXDEV: Landlock's REFER denial, for a file that would land in a
 * tree less restricted than the one it comes from.
 */
static void
steps_out_of_a(int confined)
{
	char buf[64];
#define OUT(step, e) WANT_ERR(step, confined ? (e) : 0)
	OUT(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), EACCES);
	OUT(try_open(at("B/cur/2.msg"), O_WRONLY | O_APPEND), EACCES);
	OUT(try_list(at("B/cur")), EACCES);
	OUT(try_list(dir_b), EACCES);
	OUT(try_open(at("B/tmp/new.msg"), O_WRONLY | O_CREAT | O_EXCL), EACCES);
	OUT(err_of(mkdir(at("B/.Evil"), 0700)), EACCES);
	OUT(err_of(rename(at("A/cur/2.msg"), at("B/new/2.msg"))), EACCES);
	OUT(err_of(link(at("A/cur/1.msg"), at("B/new/1.msg"))), EACCES);
	OUT(err_of(unlink(at("B/cur/del.msg"))), EACCES);
	OUT(err_of(rename(at("B/cur/steal.msg"), at("A/new/stolen.msg"))), EACCES);
	OUT(err_of(link(at("B/cur/2.msg"), at("A/tmp/linked.msg"))), EXDEV);
	OUT(err_of(truncate(at("B/cur/trunc.msg"), 0)), EACCES);
	/* ".." out of A, in a path and from a cwd inside A. */
	OUT(try_open(at("A/cur/../../B/cur/1.msg"), O_RDONLY), EACCES);
	OUT(try_open(at("A/../B/cur/2.msg"), O_RDONLY), EACCES);
	OUT(try_dotdot_relative(), EACCES);
	/* Symlinks in A that point into B. */
	OUT(try_read(at("A/cur/toB.msg"), buf, sizeof(buf)), EACCES);
	OUT(try_list(at("A/cur/toBdir")), EACCES);
	/* Anything else on the file system, R included. */
	OUT(try_open("/etc/passwd", O_RDONLY), EACCES);
	OUT(try_list("/"), EACCES);
	OUT(try_read(at("R/ro.txt"), buf, sizeof(buf)), EACCES);
	OUT(try_open(at("new-in-root"), O_WRONLY | O_CREAT | O_EXCL), EACCES);
#undef OUT
}

/* Mail work inside A: deliver through tmp/ -> new/ -> cur/, read, list,
 * flag, truncate, link, make and remove a folder, expunge. */
static void
steps_inside_a(void)
{
	static const char body[] = "Subject: hi\r\n\r\nbody\r\n";
	char buf[64];
	int fd;

	fd = open(at("A/tmp/3.msg"), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	WANT(fd >= 0);
	WANT(write(fd, body, sizeof(body) - 1) == (ssize_t)(sizeof(body) - 1));
	WANT(fsync(fd) == 0);
	WANT(close(fd) == 0);
	WANT_ERR(err_of(rename(at("A/tmp/3.msg"), at("A/new/3.msg"))), 0);
	WANT_ERR(err_of(rename(at("A/new/3.msg"), at("A/cur/3.msg:2,"))), 0);
	WANT_ERR(err_of(rename(at("A/cur/3.msg:2,"), at("A/cur/3.msg:2,S"))), 0);
	WANT_ERR(try_read(at("A/cur/3.msg:2,S"), buf, sizeof(buf)), 0);
	WANT(strcmp(buf, body) == 0);
	WANT_ERR(try_list(at("A/cur")), 0);
	WANT_ERR(try_list(dir_a), 0);
	WANT_ERR(try_open(at("A/cur/1.msg"), O_RDWR), 0);
	WANT_ERR(err_of(truncate(at("A/cur/trunc.msg"), 2)), 0);
	WANT_ERR(try_open(at("A/cur/trunc.msg"), O_WRONLY | O_TRUNC), 0);
	WANT_ERR(err_of(link(at("A/cur/1.msg"), at("A/tmp/1.link"))), 0);
	WANT_ERR(err_of(unlink(at("A/tmp/1.link"))), 0);
	WANT_ERR(err_of(mkdir(at("A/.Sub"), 0700)), 0);
	WANT_ERR(err_of(mkdir(at("A/.Sub/cur"), 0700)), 0);
	WANT_ERR(err_of(rename(at("A/cur/3.msg:2,S"), at("A/.Sub/cur/3.msg:2,S"))), 0);
	WANT_ERR(err_of(unlink(at("A/.Sub/cur/3.msg:2,S"))), 0);
	WANT_ERR(err_of(rmdir(at("A/.Sub/cur"))), 0);
	WANT_ERR(err_of(rmdir(at("A/.Sub"))), 0);
	WANT_ERR(err_of(unlink(at("A/cur/del.msg"))), 0);
}

/* What is denied even inside A: symlinks, FIFOs, executing. */
static void
steps_denied_inside_a(void)
{
	WANT_ERR(err_of(symlink("/etc/passwd", at("A/tmp/sl"))), EACCES);
	WANT_ERR(err_of(mkfifo(at("A/tmp/fifo"), 0600)), EACCES);
}

/* Fork; in the child set no-new-privs and run fn; the child must exit 0. */
static void
in_child(void (*fn)(void))
{
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *error;

		if (priv_no_new_privs(&error) < 0) {
			fprintf(stderr, "%s\n", error);
			_exit(2);
		}
		fn();
		_exit(0);
	}
	check_child_ok(pid);
}

/* In a child: confine to dir and ro, which must be enforced. */
static void
confine(const char *dir, const char *const *ro)
{
	const char *error = "none";
	int r = landlock_confine(dir, ro, &error);

	if (r != 1) {
		fprintf(stderr, "landlock_confine %s: %d: %s\n", dir, r, error);
		_exit(3);
	}
}

/* 1 when this kernel has a Landlock that can confine a Maildir. */
static int
have_landlock(void)
{
	const char *reason = NULL;
	uint64_t h, rw, ro;
	int abi = landlock_abi(&reason);

	if (abi == 0 || landlock_rights(abi, &h, &rw, &ro, &reason) == 0) {
		fprintf(stderr, "test_landlock: not enforced here (%s); "
		    "confinement tests skipped\n", reason);
		return 0;
	}
	return 1;
}

static void
child_unconfined(void)
{
	steps_out_of_a(0);
}

static void
child_confined(void)
{
	confine(dir_a, NULL);
	steps_inside_a();
	steps_denied_inside_a();
	steps_out_of_a(1);
}

/* Without confinement every step of the table succeeds (the control). */
START_TEST(test_unconfined_steps_succeed)
{
	in_child(child_unconfined);
}
END_TEST

START_TEST(test_confined_to_a)
{
	if (!have_landlock())
		return;
	in_child(child_confined);
}
END_TEST

static void
child_read_only(void)
{
	static const char *ro[3];
	char buf[64];

	ro[0] = dir_r;
	ro[1] = at("single.txt");
	ro[2] = NULL;
	confine(dir_a, ro);
	WANT_ERR(try_read(at("R/ro.txt"), buf, sizeof(buf)), 0);
	WANT(strcmp(buf, "read only\n") == 0);
	WANT_ERR(try_list(dir_r), 0);
	WANT_ERR(try_read(at("single.txt"), buf, sizeof(buf)), 0);
	WANT_ERR(try_open(at("R/ro.txt"), O_WRONLY), EACCES);
	WANT_ERR(try_open(at("R/ro.txt"), O_RDONLY | O_TRUNC), EACCES);
	WANT_ERR(try_open(at("R/new.txt"), O_WRONLY | O_CREAT | O_EXCL), EACCES);
	WANT_ERR(err_of(unlink(at("R/ro.txt"))), EACCES);
	WANT_ERR(err_of(rename(at("R/ro.txt"), at("A/tmp/ro.txt"))), EACCES);
	WANT_ERR(try_open(at("single.txt"), O_WRONLY), EACCES);
	WANT_ERR(try_open(at("other.txt"), O_RDONLY), EACCES);
	WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), EACCES);
	steps_inside_a();
}

/* Read-only paths: a directory and a single file, read but not changed. */
START_TEST(test_read_only_paths)
{
	if (!have_landlock())
		return;
	in_child(child_read_only);
}
END_TEST

static void
child_second_call(void)
{
	char buf[64];

	confine(dir_a, NULL);
	/* A second layer over the whole tree, or "/", widens nothing. */
	confine(root, NULL);
	confine("/", NULL);
	WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), EACCES);
	WANT_ERR(try_open(at("B/tmp/x"), O_WRONLY | O_CREAT | O_EXCL), EACCES);
	WANT_ERR(try_open("/etc/passwd", O_RDONLY), EACCES);
	WANT_ERR(try_read(at("A/cur/1.msg"), buf, sizeof(buf)), 0);
	/* A layer on B: access must pass both, so now A is shut too. */
	confine(dir_b, NULL);
	WANT_ERR(try_read(at("A/cur/1.msg"), buf, sizeof(buf)), EACCES);
	WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), EACCES);
}

START_TEST(test_second_call_cannot_widen)
{
	if (!have_landlock())
		return;
	in_child(child_second_call);
}
END_TEST

static void
child_bad_paths(void)
{
	static const char *ro_missing[] = { "/nonexistent-postern-ro", NULL };
	const char *error = NULL;
	char buf[64];

	WANT(landlock_confine(at("nonexistent"), NULL, &error) == -1);
	WANT(error != NULL && strstr(error, "No such file") != NULL);
	error = NULL;
	WANT(landlock_confine(at("single.txt"), NULL, &error) == -1);
	WANT(error != NULL && strstr(error, "Not a directory") != NULL);
	error = NULL;
	WANT(landlock_confine(dir_a, ro_missing, &error) == -1);
	WANT(error != NULL && strstr(error, "nonexistent-postern-ro") != NULL);
	/* A refused call leaves nothing behind. */
	WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), 0);
}

/* A directory or read-only path that cannot be opened is an error (-1),
 * not a silent half-confinement. */
START_TEST(test_bad_paths)
{
	if (!have_landlock())
		return;
	in_child(child_bad_paths);
}
END_TEST

/* A second thread: waits until its pipe is closed. */
static void *
waiting_thread(void *arg)
{
	char c;

	return (void *)(intptr_t)read(*(int *)arg, &c, 1);
}

static void
child_threaded(void)
{
	const char *error = NULL;
	pthread_t t;
	char buf[64];
	int p[2];

	WANT(pipe(p) == 0);
	WANT(pthread_create(&t, NULL, waiting_thread, &p[0]) == 0);
	WANT(landlock_confine(dir_a, NULL, &error) == -1);
	WANT(error != NULL && strstr(error, "2 threads") != NULL);
	WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), 0);
	close(p[1]);
	WANT(pthread_join(t, NULL) == 0);
	/* One thread again: now it confines. */
	confine(dir_a, NULL);
	WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), EACCES);
}

/* Landlock would confine only the calling thread: with another thread
 * running, landlock_confine refuses instead of half-confining. */
START_TEST(test_refuses_threaded_process)
{
	if (!have_landlock())
		return;
	in_child(child_threaded);
}
END_TEST

/* Landlock needs no-new-privs; without it landlock_confine says so. */
START_TEST(test_needs_no_new_privs)
{
	pid_t pid;

	if (!have_landlock())
		return;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) {
		fprintf(stderr, "test_needs_no_new_privs: already set; skipped\n");
		return;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *error = NULL;
		char buf[64];

		WANT(landlock_confine(dir_a, NULL, &error) == -1);
		WANT(error != NULL && strstr(error, "no-new-privs") != NULL);
		WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), 0);
		_exit(0);
	}
	check_child_ok(pid);
}
END_TEST

/* From now on landlock_create_ruleset fails with e, as on a kernel
 * without Landlock (ENOSYS) or with it off (EOPNOTSUPP).  The filter
 * looks at the call number only: the test binary is native. */
static void
kernel_without_landlock(int e)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_landlock_create_ruleset, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)e & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(insns) / sizeof(insns[0]), insns };

	WANT(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0);
}

static int logged_lines;

static void
count_unavailable(enum log_level level, const char *line, void *arg)
{
	(void)arg;
	if (level == LOG_LEVEL_WARN && strstr(line, "event=landlock_unavailable") != NULL &&
	    strstr(line, "reason=") != NULL)
		logged_lines++;
}

/* The unavailable path: 0 from both calls with a reason naming the
 * kernel's answer, nothing enforced, and the log line only once. */
static void
unavailable(int e, const char *want_reason)
{
	const char *reason = NULL;
	char buf[64];

	kernel_without_landlock(e);
	WANT(landlock_abi(&reason) == 0);
	WANT(reason != NULL && strstr(reason, want_reason) != NULL);
	reason = NULL;
	WANT(landlock_confine(dir_a, NULL, &reason) == 0);
	WANT(reason != NULL && strstr(reason, want_reason) != NULL);
	WANT_ERR(try_read(at("B/cur/1.msg"), buf, sizeof(buf)), 0);
	log_set_hook(count_unavailable, NULL);
	landlock_log_unavailable(reason);
	landlock_log_unavailable(reason);
	log_set_hook(NULL, NULL);
	WANT(logged_lines == 1);
}

static void
child_enosys(void)
{
	unavailable(ENOSYS, "ENOSYS");
}

static void
child_eopnotsupp(void)
{
	unavailable(EOPNOTSUPP, "EOPNOTSUPP");
}

START_TEST(test_unavailable_enosys)
{
	in_child(child_enosys);
}
END_TEST

START_TEST(test_unavailable_eopnotsupp)
{
	in_child(child_eopnotsupp);
}
END_TEST

/* The rights by ABI version: ABI 1 cannot confine a Maildir; later ones
 * handle every file-system right they know and allow beneath the user's
 * directory all but execute, special files, symlinks and device ioctls. */
START_TEST(test_rights_by_abi)
{
	const uint64_t refer = 1ULL << 13, truncate_ = 1ULL << 14, ioctl_dev = 1ULL << 15;
	const uint64_t execute = 1ULL << 0, read_file = 1ULL << 2, read_dir = 1ULL << 3;
	const uint64_t make_sym = 1ULL << 12, make_reg = 1ULL << 8;
	uint64_t h = 7, rw = 7, ro = 7;
	const char *reason = NULL;

	ck_assert_int_eq(landlock_rights(0, &h, &rw, &ro, &reason), 0);
	ck_assert_int_eq(landlock_rights(1, &h, &rw, &ro, &reason), 0);
	ck_assert_ptr_nonnull(strstr(reason, "REFER"));
	ck_assert(h == 7 && rw == 7 && ro == 7);
	ck_assert_int_eq(landlock_rights(2, &h, &rw, &ro, &reason), 1);
	ck_assert(h == ((1ULL << 14) - 1));
	ck_assert(rw & refer);
	ck_assert(rw & make_reg);
	ck_assert(!(rw & (execute | make_sym)));
	ck_assert(ro == (read_file | read_dir));
	ck_assert_int_eq(landlock_rights(3, &h, &rw, &ro, &reason), 1);
	ck_assert(h & rw & truncate_);
	ck_assert(!(h & ioctl_dev));
	ck_assert_int_eq(landlock_rights(5, &h, &rw, &ro, &reason), 1);
	ck_assert(h & ioctl_dev);
	ck_assert(!(rw & ioctl_dev));
	/* A newer kernel: only the rights this build knows. */
	ck_assert_int_eq(landlock_rights(99, &h, &rw, &ro, &reason), 1);
	ck_assert(h == ((1ULL << 16) - 1));
}
END_TEST

/* The probe answers what the kernel answers. */
START_TEST(test_abi_matches_kernel)
{
	const char *reason = NULL;
	long k = syscall(SYS_landlock_create_ruleset, NULL, 0, 1U);

	ck_assert_int_eq(landlock_abi(&reason), k > 0 ? (int)k : 0);
	if (k <= 0)
		ck_assert_ptr_nonnull(reason);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("landlock");
	TCase *tc = tcase_create("landlock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_unconfined_steps_succeed);
	tcase_add_test(tc, test_confined_to_a);
	tcase_add_test(tc, test_read_only_paths);
	tcase_add_test(tc, test_second_call_cannot_widen);
	tcase_add_test(tc, test_bad_paths);
	tcase_add_test(tc, test_needs_no_new_privs);
	tcase_add_test(tc, test_refuses_threaded_process);
	tcase_add_test(tc, test_unavailable_enosys);
	tcase_add_test(tc, test_unavailable_eopnotsupp);
	tcase_add_test(tc, test_rights_by_abi);
	tcase_add_test(tc, test_abi_matches_kernel);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
