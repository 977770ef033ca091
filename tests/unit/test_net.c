/*
 * Unit tests for lib/core/net.c (listen addresses, binding, CIDR networks), lib/core/fsutil.c
 * (directories, atomic writes) and the listener hand-over parsing in
 * lib/core/daemon.c.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "check_util.h"
#include "daemon.h"
#include "fsutil.h"
#include "net.h"
#include "xalloc.h"

static const struct {
	const char *in;
	int ok;
	const char *host;
	unsigned port;
	const char *tag;
	const char *canon;
} listen_cases[] = {
	{ "127.0.0.1:25", 1, "127.0.0.1", 25, "", "127.0.0.1:25" },
	{ "[::1]:143/imap", 1, "::1", 143, "imap", "[::1]:143/imap" },
	{ "*:587/submission", 1, "*", 587, "submission", "*:587/submission" },
	{ "localhost:1", 1, "localhost", 1, "", "localhost:1" },
	{ "0.0.0.0:65535/a-b_c", 1, "0.0.0.0", 65535, "a-b_c", "0.0.0.0:65535/a-b_c" },
	{ "127.0.0.1", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:0", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:65536", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:99999999999999999999", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:+25", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:25x", 0, NULL, 0, NULL, NULL },
	{ "[::1:25", 0, NULL, 0, NULL, NULL },
	{ "[::1]25", 0, NULL, 0, NULL, NULL },
	{ "[1.2.3.4]:25", 0, NULL, 0, NULL, NULL },
	{ "300.1.1.1:25", 0, NULL, 0, NULL, NULL },
	{ "mail.example:25", 0, NULL, 0, NULL, NULL },
	{ ":25", 0, NULL, 0, NULL, NULL },
	{ "", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:25/", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:25/BAD", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:25/has space", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1:25/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, NULL, 0, NULL, NULL },
	{ "127.0.0.1/x:25", 0, NULL, 0, NULL, NULL },
};

START_TEST(test_parse_listen)
{
	struct net_listen l;
	const char *error = NULL;
	char canon[128];
	int r;

	memset(&l, 0x5a, sizeof(l));
	r = net_parse_listen(listen_cases[_i].in, &l, &error);
	if (!listen_cases[_i].ok) {
		ck_assert_msg(r == -1, "accepted '%s'", listen_cases[_i].in);
		ck_assert_ptr_nonnull(error);
		ck_assert_int_eq(((unsigned char *)&l)[0], 0x5a);	/* untouched */
		return;
	}
	ck_assert_msg(r == 0, "refused '%s': %s", listen_cases[_i].in, error);
	ck_assert_str_eq(l.host, listen_cases[_i].host);
	ck_assert_uint_eq(l.port, listen_cases[_i].port);
	ck_assert_str_eq(l.tag, listen_cases[_i].tag);
	net_listen_format(&l, canon, sizeof(canon));
	ck_assert_str_eq(canon, listen_cases[_i].canon);
}
END_TEST

/* Bind to an ephemeral-range port, connect, and see the conflict error. */
START_TEST(test_bind_inet)
{
	struct net_listen l;
	const char *error;
	int fd = -1, fd2, c;

	for (unsigned port = 40000 + (unsigned)(getpid() % 10000); fd < 0; port++) {
		char spec[32];

		snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
		ck_assert_int_eq(net_parse_listen(spec, &l, &error), 0);
		fd = net_bind_inet(&l, 5, &error);
	}
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	c = net_connect_inet("127.0.0.1", l.port, &error);
	ck_assert_int_ge(c, 0);
	close(c);
	fd2 = net_bind_inet(&l, 5, &error);
	ck_assert_int_eq(fd2, -1);
	ck_assert_ptr_nonnull(strstr(error, "in use"));
	ck_assert_int_eq(net_connect_inet("not-an-address", 25, &error), -1);
	close(fd);
}
END_TEST

START_TEST(test_bind_unix)
{
	char dir[] = "/tmp/ptnet-XXXXXX", *path, *file;
	const char *error;
	struct stat st;
	int fd, fd2, c;
	char longpath[200];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = fs_join(dir, "sock");
	fd = net_bind_unix(path, 0660, (uid_t)-1, (gid_t)-1, 5, &error);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
	c = net_connect_unix(path, &error);
	ck_assert_int_ge(c, 0);
	close(c);
	close(fd);
	/* A stale socket from a crash is replaced. */
	fd2 = net_bind_unix(path, 0600, (uid_t)-1, (gid_t)-1, 5, &error);
	ck_assert_int_ge(fd2, 0);
	close(fd2);
	/* Anything else in the way is an error, and is left alone. */
	file = fs_join(dir, "file");
	close(open(file, O_CREAT | O_WRONLY, 0600));
	ck_assert_int_eq(net_bind_unix(file, 0600, (uid_t)-1, (gid_t)-1, 5, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "not a socket"));
	ck_assert_int_eq(access(file, F_OK), 0);
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(net_bind_unix(longpath, 0600, (uid_t)-1, (gid_t)-1, 5, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "too long"));
	ck_assert_int_eq(net_connect_unix(longpath, &error), -1);
	unlink(path);
	unlink(file);
	rmdir(dir);
	free(path);
	free(file);
}
END_TEST

START_TEST(test_ensure_dir)
{
	char dir[] = "/tmp/ptfs-XXXXXX";
	char *deep, *file, *link;
	const char *error;
	struct stat st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	deep = xasprintf("%s/a/b/c", dir);
	ck_assert_int_eq(fs_ensure_dir(deep, 0750, (uid_t)-1, (gid_t)-1, &error), 0);
	ck_assert_int_eq(stat(deep, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0750);
	/* An existing directory gets its mode fixed. */
	ck_assert_int_eq(chmod(deep, 0777), 0);
	ck_assert_int_eq(fs_ensure_dir(deep, 0700, (uid_t)-1, (gid_t)-1, &error), 0);
	ck_assert_int_eq(stat(deep, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	/* A file or a symlink in the way is refused, not followed. */
	file = fs_join(dir, "f");
	close(open(file, O_CREAT | O_WRONLY, 0600));
	ck_assert_int_eq(fs_ensure_dir(file, 0700, (uid_t)-1, (gid_t)-1, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "not a directory"));
	link = fs_join(dir, "l");
	ck_assert_int_eq(symlink(deep, link), 0);
	ck_assert_int_eq(fs_ensure_dir(link, 0700, (uid_t)-1, (gid_t)-1, &error), -1);
	ck_assert_int_eq(fs_ensure_dir("relative/path", 0700, (uid_t)-1, (gid_t)-1, &error), -1);
	{
		char *j = fs_join("/a//", "b");

		ck_assert_str_eq(j, "/a/b");
		free(j);
	}
	{
		char *cmd = xasprintf("rm -rf %s", dir);

		ck_assert_int_eq(system(cmd), 0);
		free(cmd);
	}
	free(deep);
	free(file);
	free(link);
}
END_TEST

START_TEST(test_write_atomic_and_read)
{
	char dir[] = "/tmp/ptfs-XXXXXX";
	struct buf b = BUF_INIT;
	const char *error;
	struct stat st;
	char *path, *missing;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = fs_join(dir, "file");
	ck_assert_int_eq(fs_write_atomic(path, "one", 3, 0640, &error), 0);
	ck_assert_int_eq(fs_write_atomic(path, "second", 6, 0600, &error), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(fs_read_file(path, 100, &b, &error), 0);
	ck_assert_str_eq(buf_cstr(&b), "second");
	/* Over the size limit: refused, and the buffer is as it was. */
	ck_assert_int_eq(fs_read_file(path, 5, &b, &error), -1);
	ck_assert_str_eq(buf_cstr(&b), "second");
	ck_assert_ptr_nonnull(strstr(error, "larger than"));
	/* Into a missing directory: an error, nothing left behind. */
	missing = fs_join(dir, "nodir/file");
	ck_assert_int_eq(fs_write_atomic(missing, "x", 1, 0600, &error), -1);
	ck_assert_int_eq(fs_read_file(missing, 5, &b, &error), -1);
	ck_assert_int_eq(fs_fsync_dir(dir, &error), 0);
	ck_assert_int_eq(fs_fsync_dir(missing, &error), -1);
	/* Only the file itself is in the directory: no temporary left. */
	{
		char *cmd = xasprintf("ls -A %s", dir);
		FILE *p = popen(cmd, "r");
		char line[256];
		int n = 0;

		while (fgets(line, sizeof(line), p) != NULL)
			n++;
		pclose(p);
		ck_assert_int_eq(n, 1);
		free(cmd);
	}
	unlink(path);
	rmdir(dir);
	free(path);
	free(missing);
	buf_free(&b);
}
END_TEST

static const struct {
	const char *spec;
	int ok;
	size_t n;
} listener_cases[] = {
	{ "", 1, 0 },
	{ "3:inet:smtp:127.0.0.1:25", 1, 1 },
	{ "3:inet:smtp:127.0.0.1:25 4:unix:qmgr:/run/postern/qmgr", 1, 2 },
	{ "3:inet:-:[::1]:25  ", 1, 1 },
	{ "3:inet:smtp", 0, 0 },
	{ "3:inet:smtp:", 0, 0 },
	{ "2:inet:smtp:127.0.0.1:25", 0, 0 },
	{ "x:inet:smtp:127.0.0.1:25", 0, 0 },
	{ "3x:inet:smtp:127.0.0.1:25", 0, 0 },
	{ "3:tcp:smtp:127.0.0.1:25", 0, 0 },
	{ "3:inet:smtp:127.0.0.1:25 junk", 0, 0 },
	{ "99999999999:inet:a:b", 0, 0 },
};

START_TEST(test_parse_listeners)
{
	struct daemon_listener *l = NULL;
	size_t n = 99;
	const char *error = NULL;
	int r = daemon_parse_listeners(listener_cases[_i].spec, &l, &n, &error);

	if (!listener_cases[_i].ok) {
		ck_assert_msg(r == -1, "accepted '%s'", listener_cases[_i].spec);
		ck_assert_ptr_nonnull(error);
		ck_assert_uint_eq(n, 99);
		return;
	}
	ck_assert_msg(r == 0, "refused '%s': %s", listener_cases[_i].spec, error);
	ck_assert_uint_eq(n, listener_cases[_i].n);
	if (n >= 1) {
		ck_assert_int_eq(l[0].fd, 3);
		ck_assert_int_eq(l[0].is_unix, 0);
	}
	if (n == 2) {
		ck_assert_int_eq(l[1].is_unix, 1);
		ck_assert_str_eq(l[1].tag, "qmgr");
		ck_assert_str_eq(l[1].addr, "/run/postern/qmgr");
	}
	daemon_free_listeners(l, n);
}
END_TEST

START_TEST(test_write_all)
{
	int p[2];
	char out[6] = { 0 };

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(fd_write_all(p[1], "hello", 5), 0);
	ck_assert_int_eq(read(p[0], out, 5), 5);
	ck_assert_str_eq(out, "hello");
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(fd_write_all(p[1], "x", 1), -1);
	ck_assert_int_eq(errno, EPIPE);
	close(p[1]);
}
END_TEST

/* CIDR networks: parsing (good and bad) and matching, IPv4-mapped
 * IPv6 clients counting as IPv4. */
static const struct {
	const char *net;	/* NULL ends a group */
	int ok;
	const char *addr;	/* an address to match, or NULL */
	int match;
} cidr_cases[] = {
	{ "10.0.0.0/8", 1, "10.200.3.4", 1 },
	{ "10.0.0.0/8", 1, "11.0.0.1", 0 },
	{ "10.0.0.0/8", 1, "::ffff:10.1.2.3", 1 },
	{ "10.0.0.0/8", 1, "::ffff:11.1.2.3", 0 },
	{ "10.0.0.0/8", 1, "::a00:1", 0 },
	{ "127.0.0.1", 1, "127.0.0.1", 1 },
	{ "127.0.0.1", 1, "127.0.0.2", 0 },
	{ "192.168.1.128/25", 1, "192.168.1.200", 1 },
	{ "192.168.1.128/25", 1, "192.168.1.127", 0 },
	{ "0.0.0.0/0", 1, "203.0.113.9", 1 },
	{ "0.0.0.0/0", 1, "2001:db8::1", 0 },
	{ "[::1]/128", 1, "::1", 1 },
	{ "::1/128", 1, "::2", 0 },
	{ "::1", 1, "127.0.0.1", 0 },
	{ "2001:db8::/32", 1, "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32", 1, "2001:db9::1", 0 },
	{ "2001:db8::/33", 1, "2001:db8:8000::1", 0 },
	{ "::ffff:0:0/96", 1, "::ffff:1.2.3.4", 1 },
	{ "10.0.0.1/8", 0, NULL, 0 },
	{ "10.0.0.0/33", 0, NULL, 0 },
	{ "10.0.0.0/", 0, NULL, 0 },
	{ "10.0.0.0/-1", 0, NULL, 0 },
	{ "10.0.0.0/8x", 0, NULL, 0 },
	{ "10.0.0/8", 0, NULL, 0 },
	{ "2001:db8::1/32", 0, NULL, 0 },
	{ "::/129", 0, NULL, 0 },
	{ "example.com", 0, NULL, 0 },
	{ "", 0, NULL, 0 },
	{ "[]", 0, NULL, 0 },
	{ "/8", 0, NULL, 0 },
};

START_TEST(test_cidr)
{
	struct net_cidr c, untouched;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	const char *error = NULL;
	int r;

	memset(&c, 0x5a, sizeof(c));
	untouched = c;
	r = net_parse_cidr(cidr_cases[_i].net, &c, &error);
	if (!cidr_cases[_i].ok) {
		ck_assert_msg(r == -1, "%s accepted", cidr_cases[_i].net);
		ck_assert_ptr_nonnull(error);
		ck_assert(memcmp(&c, &untouched, sizeof(c)) == 0);
		return;
	}
	ck_assert_msg(r == 0, "%s refused: %s", cidr_cases[_i].net, error);
	memset(&ss, 0, sizeof(ss));
	if (strchr(cidr_cases[_i].addr, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, cidr_cases[_i].addr,
		    &sin6->sin6_addr), 1);
	} else {
		sin->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, cidr_cases[_i].addr,
		    &sin->sin_addr), 1);
	}
	ck_assert_msg(net_cidr_match(&c, (struct sockaddr *)&ss) == cidr_cases[_i].match,
	    "%s in %s", cidr_cases[_i].addr, cidr_cases[_i].net);
	/* Other families never match. */
	ss.ss_family = AF_UNIX;
	ck_assert_int_eq(net_cidr_match(&c, (struct sockaddr *)&ss), 0);
}
END_TEST

/* Loopback or not, by address text: {address, want}. */
static const struct {
	const char *addr;
	int want;
} loopback_cases[] = {
	{ "127.0.0.1", 1 }, { "127.255.1.2", 1 }, { "128.0.0.1", 0 },
	{ "10.0.0.1", 0 }, { "::1", 1 }, { "::2", 0 }, { "::ffff:127.0.0.9", 1 },
	{ "::ffff:10.0.0.1", 0 }, { "2001:db8::1", 0 },
};

START_TEST(test_is_loopback)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(loopback_cases[_i].addr, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, loopback_cases[_i].addr,
		    &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, loopback_cases[_i].addr,
		    &in->sin_addr), 1);
	}
	ck_assert_int_eq(net_is_loopback((struct sockaddr *)&ss),
	    loopback_cases[_i].want);
}
END_TEST

/* The configured name wins; else the system's, NUL-terminated in buf. */
START_TEST(test_hostname)
{
	char buf[256], sys[256];
	const char *h;

	ck_assert_str_eq(net_hostname("mx.example", buf, sizeof(buf)), "mx.example");
	ck_assert_int_eq(gethostname(sys, sizeof(sys) - 1), 0);
	sys[sizeof(sys) - 1] = '\0';
	h = net_hostname("", buf, sizeof(buf));
	ck_assert_str_eq(h, sys[0] != '\0' ? sys : "localhost");
	ck_assert_str_eq(net_hostname(NULL, buf, 1), "localhost");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_parse_listen, 0,
	    sizeof(listen_cases) / sizeof(listen_cases[0]));
	tcase_add_test(tc, test_bind_inet);
	tcase_add_test(tc, test_bind_unix);
	tcase_add_test(tc, test_ensure_dir);
	tcase_add_test(tc, test_write_atomic_and_read);
	tcase_add_loop_test(tc, test_parse_listeners, 0,
	    sizeof(listener_cases) / sizeof(listener_cases[0]));
	tcase_add_test(tc, test_write_all);
	tcase_add_loop_test(tc, test_cidr, 0,
	    sizeof(cidr_cases) / sizeof(cidr_cases[0]));
	tcase_add_loop_test(tc, test_is_loopback, 0,
	    sizeof(loopback_cases) / sizeof(loopback_cases[0]));
	tcase_add_test(tc, test_hostname);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
