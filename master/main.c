/*
 * master(8): postern's supervisor.  main() is the table of contents:
 * arguments, config, directories and listeners, pid file, control socket,
 * signals, start the daemons, run, clean up.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "priv.h"
#include "master.h"
#include "net.h"
#include "xalloc.h"

/* The fd on which `postern start` waits to hear "ready" or an error. */
static int ready_fd = -1;
/* The pid file once this master owns it, to remove if start-up fails. */
static const char *owned_pid_file;

/* Tell the starter we failed (if it is listening), log, and exit. */
static void __attribute__((noreturn))
fail(const char *reason)
{
	/* The pid file goes first: the starter may look as soon as it hears. */
	if (owned_pid_file != NULL)
		unlink(owned_pid_file);
	if (ready_fd >= 0) {
		char *msg = xasprintf("error: %s\n", reason);

		(void)!write(ready_fd, msg, strlen(msg));
		free(msg);
	}
	log_fatal("event=start_failed error=\"%s\"", reason);
}

/* Lock and write the pid file; the lock shows that master is running. */
static int
pidfile_open(struct master *m, const char **error_r)
{
	const struct cfg_section *g = config_global(m->cfg);
	char *dir = xstrdup(cfg_str(g, "pid_file"));
	char text[32];
	int fd, r;

	r = fs_ensure_dir(dirname(dir), m->dev_mode ? 0700 : 0755,
	    m->dev_mode ? (uid_t)-1 : 0, m->dev_mode ? (gid_t)-1 : 0, error_r);
	free(dir);
	if (r < 0)
		return -1;
	m->pid_path = xstrdup(cfg_str(g, "pid_file"));
	fd = open(m->pid_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		*error_r = err_fmt("open %s: %s", m->pid_path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = read(fd, text, sizeof(text) - 1);

		text[n > 0 ? n : 0] = '\0';
		text[strcspn(text, "\n")] = '\0';
		*error_r = err_fmt("postern is already running (pid %s, %s)", text,
		    m->pid_path);
		close(fd);
		return -1;
	}
	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, strlen(text), 0) < 0) {
		*error_r = err_fmt("write %s: %s", m->pid_path, strerror(errno));
		close(fd);
		return -1;
	}
	m->pid_fd = fd;
	owned_pid_file = m->pid_path;
	return 0;
}

/* SIGTERM, SIGINT. */
static void
on_stop(int signo, void *arg)
{
	log_info("event=signal signal=%d action=stop", signo);
	master_stop(arg);
}

/* SIGHUP. */
static void
on_reload(int signo, void *arg)
{
	log_info("event=signal signal=%d action=reload", signo);
	master_reload(arg);
}

/* SIGCHLD. */
static void
on_child(int signo, void *arg)
{
	(void)signo;
	master_reap(arg);
}

/* Print usage and exit 2. */
static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: master [-f] [-c CONFIG] [-r FD]\n"
	    "(normally started by `postern start`)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct master m;
	struct config *cfg;
	struct buf err = BUF_INIT;
	const char *config = SYSCONFDIR "/postern/postern.conf", *error;
	char abspath[PATH_MAX];
	enum log_level level;
	int c;

	memset(&m, 0, sizeof(m));
	m.pid_fd = m.control_fd = -1;
	m.pid = getpid();
	log_init("postern/master", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	while ((c = getopt(argc, argv, "c:fr:")) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			m.foreground = 1;
			break;
		case 'r':
			ready_fd = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (realpath(config, abspath) == NULL)
		fail(err_fmt("config %s: %s", config, strerror(errno)));
	m.config_path = xstrdup(abspath);
	/* Every other path in the config is absolute: keep no directory busy
	 * (a build tree, an unmounted home) and resolve nothing against it. */
	if (chdir("/") < 0)
		fail(err_fmt("chdir /: %s", strerror(errno)));

	/* Config. */
	if (master_load_config(&m, &cfg, &m.config_text, &err) < 0) {
		fputs(buf_cstr(&err), stderr);
		fail(err_fmt("%s is not valid (see above, or run `postern check`)",
		    m.config_path));
	}
	buf_free(&err);
	if (log_level_parse(cfg_str(config_global(cfg), "log_level"), &level) < 0)
		level = LOG_LEVEL_INFO;
	log_init("postern/master",
	    strcmp(cfg_str(config_global(cfg), "log_target"), "syslog") == 0 ?
	    LOG_TARGET_SYSLOG : LOG_TARGET_STDERR, level);
	m.dev_mode = strcmp(cfg_str(config_global(cfg), "mode"), "dev") == 0;
	if (!m.dev_mode && geteuid() != 0)
		fail("mode = root needs master to run as root (use mode = dev otherwise)");
	if (m.dev_mode && geteuid() == 0)
		fail("a dev-mode instance never runs as root: `postern start` run as root "
		    "runs it as the owner of its config file, and this one belongs to "
		    "root (make the instance again with `postern init --dev DIR --force`, "
		    "which gives it to " PRIV_DEV_USER ", or chown -R it to a user)");
	umask(022);
	signal(SIGPIPE, SIG_IGN);
	m.loop = ev_loop_new();
	m.started_ms = ev_now(m.loop);

	/* Pid file first, so a second master fails before touching anything. */
	m.cfg = cfg;
	if (pidfile_open(&m, &error) < 0)
		fail(error);
	m.cfg = NULL;

	/* Directories, listeners, services; then the control socket. */
	if (master_configure(&m, cfg, &error) < 0)
		fail(error);
	if (control_open(&m, &error) < 0)
		fail(error);

	/* Signals, then the daemons. */
	if (ev_signal_add(m.loop, SIGTERM, on_stop, &m) < 0 ||
	    ev_signal_add(m.loop, SIGINT, on_stop, &m) < 0 ||
	    ev_signal_add(m.loop, SIGHUP, on_reload, &m) < 0 ||
	    ev_signal_add(m.loop, SIGCHLD, on_child, &m) < 0)
		fail(err_fmt("signalfd: %s", strerror(errno)));
	master_start_all(&m);
	log_info("event=started pid=%ld config=%s mode=%s services=%zu",
	    (long)getpid(), m.config_path, m.dev_mode ? "dev" : "root", m.nservices);
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "ready\n", 6);
		close(ready_fd);
		ready_fd = -1;
	}

	if (ev_run(m.loop) < 0)
		log_error("event=loop_failed error=\"%s\"", strerror(errno));

	/* Clean up: the daemons are gone by now. */
	control_close(&m);
	master_free(&m);
	ev_loop_free(&m.loop);
	unlink(m.pid_path);
	free(m.pid_path);
	free(m.config_path);
	log_info("event=stopped");
	/* The lock on the pid file goes last: `postern stop` waits for it. */
	close(m.pid_fd);
	return 0;
}
