/*
 * daemon: the shared server skeleton.  A daemon's main() supplies hooks;
 * this file does argument parsing, config, the privilege drop and its
 * proof, signals, accepting, retiring and exit.
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "connlimit.h"
#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "net.h"
#include "priv.h"
#include "sandbox.h"
#include "services.h"
#include "tlsctx.h"
#include "xalloc.h"

/* How often a retiring daemon checks whether it is idle. */
#define DAEMON_RETIRE_POLL_MS 200

struct skeleton {
	struct daemon d;
	const struct daemon_hooks *hooks;
	struct ev_timer *retire_timer;
	int exit_status;
};

void
daemon_free_listeners(struct daemon_listener *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].tag);
		free(l[i].addr);
	}
	free(l);
}

int
daemon_parse_listeners(const char *spec, struct daemon_listener **out_r,
    size_t *n_r, const char **error_r)
{
	struct daemon_listener *l = NULL;
	size_t n = 0;
	const char *p = spec;

	while (*p != '\0') {
		const char *end, *c1, *c2, *c3;
		char *num;
		long fd;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		end = strchr(p, ' ');
		if (end == NULL)
			end = p + strlen(p);
		/* FD:KIND:TAG:ADDRESS -- the address may itself contain ':'. */
		c1 = memchr(p, ':', (size_t)(end - p));
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		c3 = c2 ? memchr(c2 + 1, ':', (size_t)(end - c2 - 1)) : NULL;
		if (c3 == NULL || c3 + 1 == end) {
			*error_r = err_fmt("malformed listener '%.*s'", (int)(end - p), p);
			daemon_free_listeners(l, n);
			return -1;
		}
		num = xstrndup(p, (size_t)(c1 - p));
		errno = 0;
		fd = strtol(num, NULL, 10);
		if (errno != 0 || fd < 3 || fd > 65535 || strspn(num, "0123456789") != strlen(num)) {
			*error_r = err_fmt("malformed listener fd '%s'", num);
			free(num);
			daemon_free_listeners(l, n);
			return -1;
		}
		free(num);
		l = xreallocarray(l, n + 1, sizeof(*l));
		memset(&l[n], 0, sizeof(l[n]));
		l[n].fd = (int)fd;
		if ((size_t)(c2 - c1 - 1) == 4 && memcmp(c1 + 1, "unix", 4) == 0)
			l[n].is_unix = 1;
		else if ((size_t)(c2 - c1 - 1) == 4 && memcmp(c1 + 1, "inet", 4) == 0)
			l[n].is_unix = 0;
		else {
			*error_r = err_fmt("listener kind must be inet or unix in '%.*s'",
			    (int)(end - p), p);
			daemon_free_listeners(l, n);
			return -1;
		}
		l[n].tag = xstrndup(c2 + 1, (size_t)(c3 - c2 - 1));
		l[n].addr = xstrndup(c3 + 1, (size_t)(end - c3 - 1));
		n++;
		p = end;
	}
	*out_r = l;
	*n_r = n;
	return 0;
}

/* Every session is one descriptor (two while pop3d sends a message), and
 * thousands may be idle at once. */
void
daemon_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("event=rlimit_failed error=\"%s\"", strerror(errno));
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("event=rlimit_failed error=\"%s\"", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("event=nofile soft=%llu hard=%llu",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

int
daemon_net_setup(struct daemon *d, const char *conns, const char *without,
    struct ssl_ctx_st **tls_r, struct connlimit **conns_r, const char **error_r)
{
	const char *cert = cfg_str(d->global, "tls_cert_file");
	const char *key = cfg_str(d->global, "tls_key_file");
	char *path;
	int r;

	daemon_raise_nofile();
	*tls_r = NULL;
	if (cert[0] != '\0' && key[0] != '\0') {
		if ((*tls_r = tls_server_ctx(cert, key, error_r)) == NULL)
			return -1;
	} else {
		log_warn("event=no_tls detail=\"tls_cert_file or tls_key_file is "
		    "empty: %s\"", without);
	}
	path = fs_join(cfg_str(d->global, "run_dir"), conns);
	r = connlimit_open(path, (unsigned)cfg_int(d->svc, "processes"), d->instance,
	    conns_r, error_r);
	free(path);
	return r;
}

/* How long a listener rests after accept() ran out of descriptors or
 * memory: the connection stays queued in the kernel meanwhile. */
#define ACCEPT_PAUSE_MS 100

/* What an accept watch needs: its daemon and its listener. */
struct accept_ctx {
	struct skeleton *sk;
	struct daemon_listener *l;
	struct ev_timer *resume;	/* set while paused */
	uint64_t pauses;		/* since the last log line */
};

/* The pause is over: watch the listener again (unless retiring closed it). */
static void
accept_resume(struct ev_timer *t, void *arg)
{
	struct accept_ctx *ac = arg;

	(void)t;
	ev_timer_del(&ac->resume);
	if (ac->l->io != NULL)
		ev_io_set(ac->l->io, EV_READ);
}

/*
 * accept() failed for want of descriptors or memory (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM).  The pending connection keeps the listener readable,
 * so retrying at once would spin and flood the log: stop watching it for
 * ACCEPT_PAUSE_MS instead, and log once per pause run, not per attempt.
 */
static void
accept_pause(struct accept_ctx *ac, int err)
{
	struct daemon *d = &ac->sk->d;

	if (ac->pauses++ == 0)
		log_warn("event=accept_paused listener=%s error=\"%s\" pause_ms=%d",
		    ac->l->addr, strerror(err), ACCEPT_PAUSE_MS);
	ev_io_set(ac->l->io, 0);
	if (ac->resume == NULL)
		ac->resume = ev_timer_add(d->loop, ACCEPT_PAUSE_MS, 0, accept_resume, ac);
}

/* Accept loop for one listener: takes connections until EAGAIN. */
static void
accept_ready(struct ev_io *io, int fd, int events, void *arg)
{
	struct accept_ctx *ac = arg;
	struct daemon *d = &ac->sk->d;

	(void)io;
	(void)events;
	while (!d->retiring) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int cfd;
		long long max;

		memset(&peer, 0, sizeof(peer));
		cfd = accept4(fd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				accept_pause(ac, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("event=accept_failed listener=%s error=\"%s\"",
				    ac->l->addr, strerror(errno));
			return;
		}
		if (ac->pauses > 0) {
			log_info("event=accept_resumed listener=%s pauses=%llu",
			    ac->l->addr, (unsigned long long)ac->pauses);
			ac->pauses = 0;
		}
		d->sessions++;
		ac->sk->hooks->on_accept(d, ac->l, cfd, &peer);
		max = cfg_int(d->svc, "max_sessions");
		if (max > 0 && d->sessions >= (uint64_t)max) {
			log_info("event=retire reason=max_sessions sessions=%llu",
			    (unsigned long long)d->sessions);
			daemon_retire(d);
		}
	}
}

/* Exit the loop if a retiring daemon has no sessions left. */
static void
retire_check(struct ev_timer *t, void *arg)
{
	struct skeleton *sk = arg;
	size_t active = sk->hooks->active ? sk->hooks->active(&sk->d) : 0;

	(void)t;
	if (active == 0)
		ev_break(sk->d.loop);
}

void
daemon_retire(struct daemon *d)
{
	struct skeleton *sk = (struct skeleton *)d;

	if (d->retiring)
		return;
	d->retiring = 1;
	for (size_t i = 0; i < d->nlisteners; i++) {
		if (d->listeners[i].io != NULL)
			ev_io_close(&d->listeners[i].io);
		d->listeners[i].fd = -1;
	}
	sk->retire_timer = ev_timer_add(d->loop, DAEMON_RETIRE_POLL_MS, 1,
	    retire_check, sk);
	retire_check(sk->retire_timer, sk);
}

/* SIGTERM/SIGINT: end sessions and leave the loop. */
static void
on_stop_signal(int signo, void *arg)
{
	struct skeleton *sk = arg;

	log_info("event=stop signal=%d sessions=%llu", signo,
	    (unsigned long long)sk->d.sessions);
	if (sk->hooks->on_stop != NULL)
		sk->hooks->on_stop(&sk->d);
	ev_break(sk->d.loop);
}

/* SIGHUP: retire gracefully; master has started our replacement. */
static void
on_hup_signal(int signo, void *arg)
{
	struct skeleton *sk = arg;

	(void)signo;
	log_info("event=retire reason=reload");
	daemon_retire(&sk->d);
}

/* The supplementary groups of a built-in service (services.c), looked
 * up; none for any other service.  0 or -1 with *error_r. */
static int
service_groups(const char *service, gid_t *groups, size_t *n_r, const char **error_r)
{
	const struct builtin_service *b = builtin_service(service);
	size_t n = 0;

	for (; b != NULL && n < SERVICE_MAX_GROUPS && b->groups[n] != NULL; n++)
		if (priv_lookup_group(b->groups[n], &groups[n], error_r) < 0) {
			*error_r = err_fmt("%s (run `postern init` to create "
			    "postern's users and groups)", *error_r);
			return -1;
		}
	*n_r = n;
	return 0;
}

/* Drop to the configured user (root mode), leave the start directory and
 * restrict the process. */
static int
drop_privileges(struct skeleton *sk, const char **error_r)
{
	const char *user = getenv("POSTERN_USER");
	const char *master = getenv("POSTERN_MASTER_PID");
	const char *chroot_dir = cfg_str(sk->d.svc, "chroot");
	uid_t uid;
	gid_t gid, groups[SERVICE_MAX_GROUPS];
	size_t ngroups = 0;

	if (!sk->d.dev_mode) {
		if (user == NULL || user[0] == '\0') {
			*error_r = "root mode but no user to run as (POSTERN_USER unset)";
			return -1;
		}
		if (priv_lookup_user(user, &uid, &gid, error_r) < 0)
			return -1;
		if (uid == 0) {
			*error_r = err_fmt("refusing to run as %s: uid 0", user);
			return -1;
		}
		if (service_groups(sk->d.service, groups, &ngroups, error_r) < 0 ||
		    priv_drop_groups(uid, gid, groups, ngroups, chroot_dir, error_r) < 0)
			return -1;
	}
	/* Not the directory master was started in (a build tree, a home):
	 * every path a daemon uses is absolute (config.c), and a chroot's
	 * "/" is where priv_drop already went. */
	if (chdir("/") < 0) {
		*error_r = err_fmt("chdir /: %s", strerror(errno));
		return -1;
	}
	if (master != NULL && priv_parent_death_signal(SIGTERM,
	    (pid_t)strtol(master, NULL, 10)) < 0) {
		*error_r = "master is gone";
		return -1;
	}
	return priv_no_new_privs(error_r);
}

/*
 * The config: the text master validated and passed in POSTERN_CONFIG_FD,
 * so that master and its daemons always agree even if the file has been
 * edited since; the file itself when run without master (tests, by hand).
 */
static int
load_config(const char *path, struct config **cfg_r, struct buf *err)
{
	const char *env = getenv("POSTERN_CONFIG_FD");
	char *proc;
	struct buf text = BUF_INIT;
	const char *error;
	int r;

	if (env == NULL)
		return config_load(path, cfg_r, err);
	/* Read through /proc so the fd's offset does not matter. */
	proc = xasprintf("/proc/self/fd/%s", env);
	r = fs_read_file(proc, CONFIG_MAX_FILE, &text, &error);
	free(proc);
	close((int)strtol(env, NULL, 10));
	if (r < 0) {
		if (buf_printf(err, "%s: %s\n", path, error) < 0)
			log_panic("event=overflow");
		return -1;
	}
	r = config_parse(path, text.data ? text.data : "", text.len, cfg_r, err);
	buf_free(&text);
	return r;
}

/* Tell master that set-up is done (POSTERN_READY_FD), once. */
static void
say_ready(void)
{
	const char *env = getenv("POSTERN_READY_FD");
	int fd;

	if (env == NULL)
		return;
	fd = (int)strtol(env, NULL, 10);
	if (fd_write_all(fd, "ready\n", 6) < 0)
		log_warn("event=ready_notice_failed error=\"%s\"", strerror(errno));
	close(fd);
}

/* Print usage and return the exit status for it. */
static int
usage(const char *prog)
{
	fprintf(stderr, "usage: %s -c CONFIG -s SERVICE [-i INSTANCE]\n"
	    "(postern daemons are started by master(8), not by hand)\n", prog);
	return 2;
}

int
daemon_main(int argc, char **argv, const struct daemon_hooks *hooks)
{
	struct skeleton sk;
	struct daemon *d = &sk.d;
	struct accept_ctx *acs = NULL;
	const char *config_path = NULL, *error = NULL, *env;
	struct buf err = BUF_INIT;
	enum log_level level;
	int c;

	memset(&sk, 0, sizeof(sk));
	sk.hooks = hooks;
	d->program = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	log_init(d->program, LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	while ((c = getopt(argc, argv, "c:s:i:")) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 's':
			d->service = optarg;
			break;
		case 'i':
			d->instance = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			return usage(d->program);
		}
	}
	if (config_path == NULL || d->service == NULL || optind != argc)
		return usage(d->program);

	if (load_config(config_path, &d->cfg, &err) < 0) {
		fprintf(stderr, "%s", buf_cstr(&err));
		buf_free(&err);
		log_fatal("event=config_error path=%s", config_path);
	}
	buf_free(&err);
	d->global = config_global(d->cfg);
	d->svc = config_service_find(d->cfg, d->service);
	if (d->svc == NULL)
		log_fatal("event=no_service service=%s", log_safe(d->service));
	d->dev_mode = strcmp(cfg_str(d->global, "mode"), "dev") == 0;
	if (log_level_parse(cfg_str(d->global, "log_level"), &level) < 0)
		level = LOG_LEVEL_INFO;
	{
		char ident[64];

		snprintf(ident, sizeof(ident), "postern/%s", d->service);
		log_init(ident, strcmp(cfg_str(d->global, "log_target"), "syslog") == 0 ?
		    LOG_TARGET_SYSLOG : LOG_TARGET_STDERR, level);
	}

	env = getenv("POSTERN_LISTENERS");
	if (daemon_parse_listeners(env ? env : "", &d->listeners, &d->nlisteners,
	    &error) < 0)
		log_fatal("event=bad_listeners error=\"%s\"", error);
	signal(SIGPIPE, SIG_IGN);
	d->loop = ev_loop_new();

	if (hooks->pre_drop != NULL && hooks->pre_drop(d, &error) < 0)
		log_fatal("event=setup_failed stage=pre_drop error=\"%s\"", error);
	if (drop_privileges(&sk, &error) < 0)
		log_fatal("event=privilege_drop_failed error=\"%s\"", error);
	if (ev_signal_add(d->loop, SIGTERM, on_stop_signal, &sk) < 0 ||
	    ev_signal_add(d->loop, SIGINT, on_stop_signal, &sk) < 0 ||
	    ev_signal_add(d->loop, SIGHUP, on_hup_signal, &sk) < 0)
		log_fatal("event=signal_setup_failed error=\"%s\"", strerror(errno));
	if (hooks->post_drop != NULL && hooks->post_drop(d, &error) < 0)
		log_fatal("event=setup_failed stage=post_drop error=\"%s\"", error);
	if (!cfg_bool(d->svc, "sandbox"))
		log_warn("event=sandbox state=off reason=config profile=%s", d->program);
	else if (sandbox_apply(d->program, &error) < 0)
		log_fatal("event=sandbox_failed error=\"%s\"", error);

	if (d->nlisteners > 0 && hooks->on_accept == NULL)
		log_fatal("event=setup_failed error=\"listeners but no on_accept hook\"");
	acs = xcalloc(d->nlisteners ? d->nlisteners : 1, sizeof(*acs));
	for (size_t i = 0; i < d->nlisteners; i++) {
		if (fd_set_nonblock(d->listeners[i].fd, 1) < 0 ||
		    fd_set_cloexec(d->listeners[i].fd, 1) < 0)
			log_fatal("event=bad_listener fd=%d error=\"%s\"",
			    d->listeners[i].fd, strerror(errno));
		acs[i].sk = &sk;
		acs[i].l = &d->listeners[i];
		d->listeners[i].io = ev_io_add(d->loop, d->listeners[i].fd, EV_READ,
		    accept_ready, &acs[i]);
	}
	log_info("event=start service=%s instance=%u uid=%lu listeners=%zu",
	    d->service, d->instance, (unsigned long)getuid(), d->nlisteners);
	say_ready();

	if (ev_run(d->loop) < 0)
		sk.exit_status = 1;

	if (hooks->cleanup != NULL)
		hooks->cleanup(d);
	if (sk.retire_timer != NULL)
		ev_timer_del(&sk.retire_timer);
	for (size_t i = 0; i < d->nlisteners; i++) {
		if (acs[i].resume != NULL)
			ev_timer_del(&acs[i].resume);
		if (d->listeners[i].io != NULL)
			ev_io_close(&d->listeners[i].io);
	}
	ev_loop_free(&d->loop);
	daemon_free_listeners(d->listeners, d->nlisteners);
	free(acs);
	config_free(&d->cfg);
	return sk.exit_status;
}
