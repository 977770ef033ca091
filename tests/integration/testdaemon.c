/*
 * testdaemon: a trivial daemon on the shared skeleton, for the integration
 * tests of master(8) only (never installed).  It answers each line on its
 * listeners: "whoami" gets "uid=U gid=G groups=N pid=P", "quit" closes,
 * "forbidden" makes a system call no sandbox profile allows (a packet
 * socket) and says how it went -- under the sandbox the process dies of
 * SIGSYS instead -- and anything else is echoed back prefixed with the
 * listener's tag.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "ios.h"
#include "log.h"
#include "xalloc.h"

struct session {
	struct ios *ios;
	const struct daemon_listener *l;
	struct daemon *d;
	struct session *next;
};

struct testd {
	struct session *sessions;
	size_t active;
};

static void
session_end(struct session *s)
{
	struct testd *t = s->d->ctx;

	for (struct session **p = &t->sessions; *p != NULL; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	t->active--;
	ios_free(&s->ios);
	free(s);
}

/* Answer every complete line. */
static void
on_read(struct ios *ios, void *arg)
{
	struct session *s = arg;
	const char *line;
	size_t len;
	int r;

	while ((r = ios_read_line(ios, &line, &len, NULL)) != 0) {
		if (r < 0) {
			(void)ios_printf(ios, "error line too long\r\n");
			continue;
		}
		if (strcmp(line, "whoami") == 0) {
			(void)ios_printf(ios, "uid=%lu gid=%lu groups=%d pid=%ld\r\n",
			    (unsigned long)getuid(), (unsigned long)getgid(),
			    getgroups(0, NULL), (long)getpid());
		} else if (strcmp(line, "forbidden") == 0) {
			int fd = socket(AF_PACKET, SOCK_DGRAM, 0);

			(void)ios_printf(ios, "forbidden survived result=%s\r\n",
			    fd >= 0 ? "ok" : strerror(errno));
			if (fd >= 0)
				close(fd);
		} else if (strcmp(line, "quit") == 0) {
			(void)ios_printf(ios, "bye\r\n");
			ios_flush_close(ios);
			return;
		} else {
			(void)ios_printf(ios, "%s: %s\r\n", s->l->tag, line);
		}
	}
}

static void
on_close(struct ios *ios, enum ios_close why, const char *text, void *arg)
{
	(void)ios;
	(void)why;
	(void)text;
	session_end(arg);
}

static const struct ios_callbacks callbacks = { on_read, NULL, on_close };

static void
testd_on_accept(struct daemon *d, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	static const struct ios_limits lim = { 1000, 4096, 65536, 60000 };
	struct testd *t = d->ctx;
	struct session *s = xcalloc(1, sizeof(*s));

	(void)peer;
	s->d = d;
	s->l = l;
	s->ios = ios_new(d->loop, fd, &lim, &callbacks, s);
	s->next = t->sessions;
	t->sessions = s;
	t->active++;
	(void)ios_printf(s->ios, "ready %s\r\n", l->tag);
}

static size_t
testd_active(struct daemon *d)
{
	return ((struct testd *)d->ctx)->active;
}

static void
testd_on_stop(struct daemon *d)
{
	struct testd *t = d->ctx;

	while (t->sessions != NULL)
		session_end(t->sessions);
}

static int
testd_post_drop(struct daemon *d, const char **error_r)
{
	(void)error_r;
	d->ctx = xcalloc(1, sizeof(struct testd));
	return 0;
}

static void
testd_cleanup(struct daemon *d)
{
	testd_on_stop(d);
	free(d->ctx);
	d->ctx = NULL;
}

static const struct daemon_hooks hooks = {
	.post_drop = testd_post_drop,
	.on_accept = testd_on_accept,
	.active = testd_active,
	.on_stop = testd_on_stop,
	.cleanup = testd_cleanup,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &hooks);
}
