/*
 * The run-time subcommands: start, stop, status, reload, check.  start
 * runs master (in the foreground, or detached and waiting until master
 * says it is ready); stop and reload signal the master whose pid file is
 * locked; status asks master over its control socket.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "ipc.h"
#include "log.h"
#include "net.h"
#include "postern.h"
#include "priv.h"
#include "services.h"
#include "xalloc.h"

/* How long `start` waits for master to report ready. */
#define START_WAIT_MS 30000

/* Reject any arguments beyond the command name; 0 if none. */
static int
no_args(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "postern %s: unexpected argument '%s'\n", argv[0], argv[1]);
		return -1;
	}
	return 0;
}

/* The pid of the running master of this config, or 0. */
static pid_t
running_master(const struct config *cfg)
{
	return master_running(cfg_str(config_global(cfg), "pid_file"));
}

/* Whether pid is a live process (not gone, not a zombie). */
static int
process_alive(pid_t pid)
{
	char path[64], stat[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return kill(pid, 0) == 0;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	stat[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	p = strrchr(stat, ')');
	return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Sleep for ms milliseconds. */
static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
cmd_check(const char *config, int argc, char **argv)
{
	struct config *cfg;
	const struct cfg_section *g;
	int dev, problems = 0;
	char *master;

	if (no_args(argc, argv) < 0)
		return EXIT_USAGE;
	if ((cfg = tool_load_config(config)) == NULL)
		return EXIT_FAIL;
	g = config_global(cfg);
	dev = strcmp(cfg_str(g, "mode"), "dev") == 0;
	master = fs_join(tool_daemon_dir(cfg), "master");
	if (access(master, X_OK) < 0) {
		fprintf(stderr, "%s: daemon_dir: %s is not executable: %s\n",
		    config, master, strerror(errno));
		problems++;
	}
	free(master);
	for (size_t i = 0; i < config_nservices(cfg); i++) {
		const struct cfg_section *s = config_service(cfg, i);
		const struct builtin_service *b = builtin_service(cfg_section_name(s));
		const char *user = cfg_str(s, "user");
		char *prog = cfg_str(s, "program")[0] ? xstrdup(cfg_str(s, "program")) :
		    fs_join(tool_daemon_dir(cfg), cfg_section_name(s));
		const char *error;
		uid_t uid;
		gid_t gid;

		if (access(prog, X_OK) < 0)
			printf("%s: service %s: %s is not installed; it will not be started\n",
			    config, cfg_section_name(s), prog);
		free(prog);
		if (dev)
			continue;
		if (user[0] == '\0' && b != NULL)
			user = b->user;
		if (user[0] == '\0') {
			fprintf(stderr, "%s: service %s: no user set (root mode needs one)\n",
			    config, cfg_section_name(s));
			problems++;
		} else if (priv_lookup_user(user, &uid, &gid, &error) < 0) {
			fprintf(stderr, "%s: service %s: %s (run `postern init`)\n",
			    config, cfg_section_name(s), error);
			problems++;
		}
	}
	config_free(&cfg);
	if (problems > 0)
		return EXIT_FAIL;
	printf("%s: OK\n", config);
	return EXIT_OK;
}

/* Open the file that a detached master's output goes to. */
static int
open_log(const struct config *cfg)
{
	const struct cfg_section *g = config_global(cfg);
	const char *error;
	char *path;
	int fd;

	if (strcmp(cfg_str(g, "log_target"), "stderr") != 0)
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fs_ensure_dir(cfg_str(g, "run_dir"), 0700, (uid_t)-1, (gid_t)-1, &error) < 0 &&
	    fs_ensure_dir(cfg_str(g, "run_dir"), 0755, (uid_t)-1, (gid_t)-1, &error) < 0) {
		fprintf(stderr, "postern start: %s\n", error);
		return -1;
	}
	path = fs_join(cfg_str(g, "run_dir"), "postern.log");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		fprintf(stderr, "postern start: open %s: %s\n", path, strerror(errno));
	else
		printf("logging to %s\n", path);
	free(path);
	return fd;
}

int
cmd_start(const char *config, int argc, char **argv)
{
	struct config *cfg;
	char *master, fdtext[16], reply[512];
	int foreground = 0, p[2], logfd;
	size_t got = 0;
	pid_t pid;

	if (argc == 2 && strcmp(argv[1], "-f") == 0)
		foreground = 1;
	else if (no_args(argc, argv) < 0)
		return EXIT_USAGE;
	if ((cfg = tool_load_config(config)) == NULL)
		return EXIT_FAIL;
	if ((pid = running_master(cfg)) > 0) {
		fprintf(stderr, "postern is already running (pid %ld)\n", (long)pid);
		config_free(&cfg);
		return EXIT_FAIL;
	}
	master = fs_join(tool_daemon_dir(cfg), "master");
	if (foreground) {
		config_free(&cfg);
		execl(master, master, "-f", "-c", config, (char *)NULL);
		fprintf(stderr, "postern start: exec %s: %s\n", master, strerror(errno));
		return EXIT_FAIL;
	}

	if ((logfd = open_log(cfg)) < 0 || pipe2(p, O_CLOEXEC) < 0) {
		config_free(&cfg);
		return EXIT_FAIL;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "postern start: fork: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		setsid();
		dup2(null, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		close(p[0]);
		if (fd_set_cloexec(p[1], 0) < 0)
			_exit(127);
		snprintf(fdtext, sizeof(fdtext), "%d", p[1]);
		execl(master, master, "-r", fdtext, "-c", config, (char *)NULL);
		fprintf(stderr, "postern start: exec %s: %s\n", master, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	close(logfd);
	config_free(&cfg);
	for (;;) {
		struct pollfd pfd = { p[0], POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, START_WAIT_MS) <= 0) {
			fprintf(stderr, "postern start: master did not report ready in %d s\n",
			    START_WAIT_MS / 1000);
			return EXIT_FAIL;
		}
		n = read(p[0], reply + got, sizeof(reply) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (got += (size_t)n) >= sizeof(reply) - 1)
			break;
		if (memchr(reply, '\n', got) != NULL)
			break;
	}
	close(p[0]);
	reply[got] = '\0';
	free(master);
	if (strncmp(reply, "ready\n", 6) == 0) {
		printf("postern started (master pid %ld)\n", (long)pid);
		return EXIT_OK;
	}
	fprintf(stderr, "postern start failed: %s", got ? reply : "master exited\n");
	return EXIT_FAIL;
}

int
cmd_stop(const char *config, int argc, char **argv)
{
	struct config *cfg;
	uint64_t waited = 0, limit;
	pid_t pid;

	if (no_args(argc, argv) < 0)
		return EXIT_USAGE;
	if ((cfg = tool_load_control_config(config, "stop")) == NULL)
		return EXIT_FAIL;
	limit = cfg_time_ms(config_global(cfg), "stop_timeout") + 10000;
	if ((pid = running_master(cfg)) == 0) {
		printf("postern is not running\n");
		config_free(&cfg);
		return EXIT_OK;
	}
	if (kill(pid, SIGTERM) < 0) {
		fprintf(stderr, "postern stop: kill %ld: %s\n", (long)pid, strerror(errno));
		config_free(&cfg);
		return EXIT_FAIL;
	}
	/* master releases its pid file lock only after every daemon is gone,
	 * as the last thing it does; then wait for the process itself. */
	while ((running_master(cfg) == pid || process_alive(pid)) && waited < limit) {
		sleep_ms(20);
		waited += 20;
	}
	config_free(&cfg);
	if (waited >= limit) {
		fprintf(stderr, "postern stop: master (pid %ld) still running after %llu s\n",
		    (long)pid, (unsigned long long)(limit / 1000));
		return EXIT_FAIL;
	}
	printf("postern stopped\n");
	return EXIT_OK;
}

int
cmd_reload(const char *config, int argc, char **argv)
{
	struct config *cfg;
	pid_t pid;

	if (no_args(argc, argv) < 0)
		return EXIT_USAGE;
	/* Refuse to reload into a broken config. */
	if ((cfg = tool_load_config(config)) == NULL)
		return EXIT_FAIL;
	pid = running_master(cfg);
	config_free(&cfg);
	if (pid == 0) {
		fprintf(stderr, "postern is not running\n");
		return EXIT_NOT_RUNNING;
	}
	if (kill(pid, SIGHUP) < 0) {
		fprintf(stderr, "postern reload: kill %ld: %s\n", (long)pid, strerror(errno));
		return EXIT_FAIL;
	}
	printf("postern reloading (master pid %ld)\n", (long)pid);
	return EXIT_OK;
}

/* "1h02m", "5m12s", "42s" for a duration in ms. */
static const char *
duration(uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		return err_fmt("%llud%02lluh", (unsigned long long)(s / 86400),
		    (unsigned long long)(s % 86400 / 3600));
	if (s >= 3600)
		return err_fmt("%lluh%02llum", (unsigned long long)(s / 3600),
		    (unsigned long long)(s % 3600 / 60));
	if (s >= 60)
		return err_fmt("%llum%02llus", (unsigned long long)(s / 60),
		    (unsigned long long)(s % 60));
	return err_fmt("%llus", (unsigned long long)s);
}

int
cmd_status(const char *config, int argc, char **argv)
{
	struct config *cfg;
	struct ipc_msg req, reply;
	struct ipc_cursor c;
	const char *error = NULL;
	char *path;
	uint32_t mpid, rows;
	uint64_t mup;
	int fd, r;

	if (no_args(argc, argv) < 0)
		return EXIT_USAGE;
	if ((cfg = tool_load_control_config(config, "status")) == NULL)
		return EXIT_FAIL;
	if (running_master(cfg) == 0) {
		printf("postern is not running\n");
		config_free(&cfg);
		return EXIT_NOT_RUNNING;
	}
	path = fs_join(cfg_str(config_global(cfg), "run_dir"), MASTER_SOCKET_NAME);
	config_free(&cfg);
	fd = ipc_connect(path, MASTER_PROTO, &error);
	free(path);
	if (fd < 0) {
		fprintf(stderr, "postern status: %s\n", error);
		return EXIT_FAIL;
	}
	ipc_msg_init(&req, MASTER_STATUS_REQ, 1);
	r = ipc_send_blocking(fd, &req) < 0 ? -1 :
	    ipc_recv_blocking(fd, &reply, 10000, &error);
	ipc_msg_free(&req);
	close(fd);
	if (r <= 0) {
		fprintf(stderr, "postern status: no answer from master%s%s\n",
		    error ? ": " : "", error ? error : "");
		return EXIT_FAIL;
	}
	if (reply.type != MASTER_STATUS)
		goto bad;
	ipc_cursor_init(&c, &reply);
	if (ipc_get_u32(&c, &mpid) < 0 || ipc_get_u64(&c, &mup) < 0 ||
	    ipc_get_u32(&c, &rows) < 0)
		goto bad;
	printf("master   pid %lu, up %s\n", (unsigned long)mpid, duration(mup));
	printf("%-12s %4s %8s %9s %8s  %s\n", "SERVICE", "PROC", "PID", "UPTIME",
	    "RESTARTS", "STATE");
	for (uint32_t i = 0; i < rows; i++) {
		const char *name, *state;
		uint32_t inst, pid, restarts;
		uint64_t up;

		if (ipc_get_str(&c, &name) < 0 || ipc_get_u32(&c, &inst) < 0 ||
		    ipc_get_u32(&c, &pid) < 0 || ipc_get_u64(&c, &up) < 0 ||
		    ipc_get_u32(&c, &restarts) < 0 || ipc_get_str(&c, &state) < 0)
			goto bad;
		if (pid > 0)
			printf("%-12s %4lu %8lu %9s %8lu  %s\n", name, (unsigned long)inst,
			    (unsigned long)pid, duration(up), (unsigned long)restarts, state);
		else
			printf("%-12s %4lu %8s %9s %8lu  %s\n", name, (unsigned long)inst,
			    "-", "-", (unsigned long)restarts, state);
	}
	if (ipc_get_end(&c) < 0)
		goto bad;
	ipc_frame_free(&reply);
	return EXIT_OK;
bad:
	fprintf(stderr, "postern status: malformed answer from master\n");
	ipc_frame_free(&reply);
	return EXIT_FAIL;
}
