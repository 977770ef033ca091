/*
 * master.c: services, listeners and child processes.  Children are forked
 * and exec'd with their listeners at fds 3.., every other fd closed, a
 * minimal environment, and the user to become; the daemon skeleton
 * (lib/core/daemon.c) drops privileges after exec.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "master.h"
#include "net.h"
#include "priv.h"
#include "xalloc.h"

#define LISTEN_BACKLOG 511
/* A daemon that ran this long before dying is restarted at once. */
#define STABLE_UPTIME_MS 10000
#define BACKOFF_FIRST_MS 250

/* --- listeners ----------------------------------------------------------- */

/* The listener with this key, or NULL. */
static struct listener *
listener_find(struct master *m, const char *key)
{
	for (size_t i = 0; i < m->nlisteners; i++)
		if (strcmp(m->listeners[i]->key, key) == 0)
			return m->listeners[i];
	return NULL;
}

/* Find or bind the listener for a `listen` item.  NULL with *error_r. */
static struct listener *
listener_inet(struct master *m, const char *item, const char **error_r)
{
	struct net_listen nl;
	struct listener *l;
	char canon[160], *key;
	int fd;

	if (net_parse_listen(item, &nl, error_r) < 0)
		return NULL;
	net_listen_format(&nl, canon, sizeof(canon));
	key = xasprintf("inet:%s", canon);
	if ((l = listener_find(m, key)) != NULL) {
		free(key);
		return l;
	}
	if ((fd = net_bind_inet(&nl, LISTEN_BACKLOG, error_r)) < 0) {
		free(key);
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->key = key;
	l->fd = fd;
	{
		char addr[160];
		struct net_listen bare = nl;

		bare.tag[0] = '\0';
		net_listen_format(&bare, addr, sizeof(addr));
		l->spec = xasprintf("inet:%s:%s", nl.tag[0] ? nl.tag : "-", addr);
	}
	m->listeners = xreallocarray(m->listeners, m->nlisteners + 1, sizeof(*m->listeners));
	m->listeners[m->nlisteners++] = l;
	log_info("event=listen address=%s", canon);
	return l;
}

/*
 * The owner, group and mode of the socket run_dir/name served by a
 * service running as user (services.c's builtin_sockets; the user and
 * its primary group, 0660, for a socket not in the table).  Dev mode:
 * 0600, owned by whoever runs the instance.  0 or -1 with *error_r.
 */
static int
socket_access(const struct cfg_section *g, const char *name, const char *user,
    uid_t *uid_r, gid_t *gid_r, mode_t *mode_r, const char **error_r)
{
	const struct builtin_socket *bs = builtin_socket(name);
	const char *owner = bs != NULL && bs->owner != NULL ? bs->owner : user;
	const char *group = bs != NULL ? bs->group : NULL;
	uid_t uid;
	gid_t gid;

	if (user == NULL) {
		*uid_r = (uid_t)-1;
		*gid_r = (gid_t)-1;
		*mode_r = 0600;
		return 0;
	}
	if (priv_lookup_user(owner, &uid, &gid, error_r) < 0)
		return -1;
	if (group != NULL && priv_lookup_group(strcmp(group, POSTERN_DROP_GROUP) == 0 ?
	    cfg_str(g, "drop_group") : group, &gid, error_r) < 0) {
		*error_r = err_fmt("%s (run `postern init` to create postern's "
		    "users and groups)", *error_r);
		return -1;
	}
	*uid_r = uid;
	*gid_r = gid;
	*mode_r = bs != NULL ? (mode_t)bs->mode : 0660;
	return 0;
}

/* Find or bind the Unix listener run_dir/name for a service's user (NULL
 * in dev mode). */
static struct listener *
listener_unix(struct master *m, const struct cfg_section *g, const char *name,
    const char *user, const char **error_r)
{
	struct listener *l;
	char *path = fs_join(cfg_str(g, "run_dir"), name);
	char *key = xasprintf("unix:%s", path);
	uid_t uid;
	gid_t gid;
	mode_t mode;
	int fd;

	if ((l = listener_find(m, key)) != NULL) {
		free(path);
		free(key);
		return l;
	}
	/*
	 * Only the socket's peers may connect (its owner, group and mode);
	 * the server checks its peer's credentials (SO_PEERCRED) as well.
	 * In dev mode the run directory itself is private to the instance's
	 * user.
	 */
	if (socket_access(g, name, user, &uid, &gid, &mode, error_r) < 0 ||
	    (fd = net_bind_unix(path, mode, uid, gid, LISTEN_BACKLOG, error_r)) < 0) {
		free(path);
		free(key);
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->key = key;
	l->fd = fd;
	l->spec = xasprintf("unix:%s:%s", name, path);
	free(path);
	m->listeners = xreallocarray(m->listeners, m->nlisteners + 1, sizeof(*m->listeners));
	m->listeners[m->nlisteners++] = l;
	log_info("event=listen socket=%s mode=%04o uid=%ld gid=%ld", l->key + 5,
	    (unsigned)mode, (long)(int)uid, (long)(int)gid);
	return l;
}

/* Close the listeners no service uses any more. */
static void
listeners_prune(struct master *m)
{
	size_t i, j = 0;

	for (i = 0; i < m->nlisteners; i++) {
		struct listener *l = m->listeners[i];

		if (l->used) {
			m->listeners[j++] = l;
			continue;
		}
		log_info("event=unlisten key=%s", l->key);
		close(l->fd);
		if (strncmp(l->key, "unix:", 5) == 0)
			unlink(l->key + 5);
		free(l->key);
		free(l->spec);
		free(l);
	}
	m->nlisteners = j;
}

/* --- services ------------------------------------------------------------ */

/* Release a service definition (its children must be gone or moved). */
static void
service_free(struct service *s)
{
	for (unsigned i = 0; i < s->processes; i++) {
		if (s->children[i].restart_timer != NULL)
			ev_timer_del(&s->children[i].restart_timer);
		if (s->children[i].ready_io != NULL)
			ev_io_close(&s->children[i].ready_io);
	}
	free(s->name);
	free(s->program);
	free(s->args);
	free(s->user);
	free(s->listeners);
	free(s->children);
}

/* Build the service for a config block, binding its listeners. */
static int
service_build(struct master *m, const struct cfg_section *g,
    const struct cfg_section *sec, int dev_mode, struct service *s,
    const char **error_r)
{
	const struct builtin_service *b = builtin_service(cfg_section_name(sec));
	const struct cfg_list *inet = cfg_list(sec, "listen");
	const struct cfg_list *unx = cfg_list(sec, "unix_listen");
	const char *user = cfg_str(sec, "user");
	uid_t uid;
	gid_t gid;

	memset(s, 0, sizeof(*s));
	s->master = m;
	s->name = xstrdup(cfg_section_name(sec));
	s->program = cfg_str(sec, "program")[0] != '\0' ?
	    xstrdup(cfg_str(sec, "program")) :
	    fs_join(cfg_str(g, "daemon_dir"), s->name);
	s->args = xstrdup(cfg_str(sec, "args"));
	s->processes = (unsigned)cfg_int(sec, "processes");
	s->installed = access(s->program, X_OK) == 0;
	if (!dev_mode) {
		if (user[0] == '\0' && b != NULL)
			user = b->user;
		if (user[0] == '\0') {
			*error_r = err_fmt("service %s: no user set (root mode needs one)", s->name);
			return -1;
		}
		if (priv_lookup_user(user, &uid, &gid, error_r) < 0)
			return -1;
		if (uid == 0) {
			*error_r = err_fmt("service %s: user %s has uid 0", s->name, user);
			return -1;
		}
		s->user = xstrdup(user);
	}
	s->children = xcalloc(s->processes, sizeof(*s->children));
	for (unsigned i = 0; i < s->processes; i++) {
		s->children[i].svc = s;
		s->children[i].instance = i;
	}
	if (!s->installed)
		return 0;
	s->listeners = xcalloc(inet->n + unx->n + 1, sizeof(*s->listeners));
	for (size_t i = 0; i < inet->n; i++) {
		struct listener *l = listener_inet(m, inet->items[i], error_r);

		if (l == NULL)
			return -1;
		l->used = 1;
		s->listeners[s->nlisteners++] = l;
	}
	for (size_t i = 0; i < unx->n; i++) {
		struct listener *l = listener_unix(m, g, unx->items[i], s->user, error_r);

		if (l == NULL)
			return -1;
		l->used = 1;
		s->listeners[s->nlisteners++] = l;
	}
	return 0;
}

/* Create the directories in master_dirs with their owners and modes. */
static int
make_dirs(const struct cfg_section *g, int dev_mode, const char **error_r)
{
	for (size_t i = 0; i < master_ndirs; i++) {
		const struct master_dir *d = &master_dirs[i];
		char *path = d->sub[0] ? fs_join(cfg_str(g, d->base_key), d->sub) :
		    xstrdup(cfg_str(g, d->base_key));
		uid_t uid = (uid_t)-1;
		gid_t gid = (gid_t)-1;
		mode_t mode = d->mode;
		int r;

		if (dev_mode) {
			/* One user owns everything: keep the owner's bits only. */
			mode = 0700;
		} else {
			uid = 0;
			gid = 0;
			if (d->user != NULL &&
			    priv_lookup_user(d->user, &uid, &gid, error_r) < 0) {
				*error_r = err_fmt("%s (run `postern init` to create "
				    "postern's users)", *error_r);
				free(path);
				return -1;
			}
			/* The maildrop's group is configurable (drop_group). */
			if (d->group != NULL && priv_lookup_group(
			    strcmp(d->group, POSTERN_DROP_GROUP) == 0 ?
			    cfg_str(g, "drop_group") : d->group, &gid, error_r) < 0) {
				*error_r = err_fmt("%s (run `postern init` to create "
				    "postern's users)", *error_r);
				free(path);
				return -1;
			}
		}
		r = fs_ensure_dir(path, mode, uid, gid, error_r);
		free(path);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Tell a child to finish its sessions and exit; it will not be restarted. */
static void
child_retire(struct master *m, struct child *c)
{
	struct child *r;

	if (c->restart_timer != NULL)
		ev_timer_del(&c->restart_timer);
	if (c->ready_io != NULL)
		ev_io_close(&c->ready_io);
	if (c->pid <= 0)
		return;
	kill(c->pid, SIGHUP);
	r = xcalloc(1, sizeof(*r));
	*r = *c;
	r->svc = NULL;
	r->state = CHILD_RETIRING;
	r->next_retiring = m->retiring;
	m->retiring = r;
	c->pid = 0;
}

int
master_configure(struct master *m, struct config *cfg, const char **error_r)
{
	const struct cfg_section *g = config_global(cfg);
	int dev_mode = strcmp(cfg_str(g, "mode"), "dev") == 0;
	struct service *svcs;
	size_t n = 0, total = config_nservices(cfg);

	if (m->services != NULL && dev_mode != m->dev_mode) {
		*error_r = "mode cannot change on reload: stop and start instead";
		return -1;
	}
	if (make_dirs(g, dev_mode, error_r) < 0)
		return -1;
	for (size_t i = 0; i < m->nlisteners; i++)
		m->listeners[i]->used = 0;
	svcs = xcalloc(total + 1, sizeof(*svcs));
	for (size_t i = 0; i < total; i++) {
		const struct cfg_section *sec = config_service(cfg, i);

		if (!cfg_bool(sec, "enable"))
			continue;
		if (service_build(m, g, sec, dev_mode, &svcs[n], error_r) < 0) {
			*error_r = err_fmt("service %s: %s", cfg_section_name(sec), *error_r);
			service_free(&svcs[n]);
			for (size_t j = 0; j < n; j++)
				service_free(&svcs[j]);
			free(svcs);
			/* Keep every listener the old services still use. */
			for (size_t j = 0; j < m->nservices; j++)
				for (size_t k = 0; k < m->services[j].nlisteners; k++)
					m->services[j].listeners[k]->used = 1;
			listeners_prune(m);
			return -1;
		}
		if (!svcs[n].installed)
			log_info("event=service_skipped service=%s reason=not_installed "
			    "program=%s", svcs[n].name, svcs[n].program);
		n++;
	}
	/* The old processes finish their sessions under the old config; the
	 * restart count of a service that stays carries over. */
	for (size_t i = 0; i < m->nservices; i++) {
		for (size_t j = 0; j < n; j++)
			if (strcmp(svcs[j].name, m->services[i].name) == 0)
				svcs[j].restarts = m->services[i].restarts;
		for (unsigned j = 0; j < m->services[i].processes; j++)
			child_retire(m, &m->services[i].children[j]);
		service_free(&m->services[i]);
	}
	free(m->services);
	m->services = svcs;
	m->nservices = n;
	m->dev_mode = dev_mode;
	listeners_prune(m);
	if (m->cfg != NULL && m->cfg != cfg)
		config_free(&m->cfg);
	m->cfg = cfg;
	return 0;
}

/* Append an environment entry "NAME=value" to the list. */
static void
env_add(char ***envp, size_t *n, char *entry)
{
	*envp = xreallocarray(*envp, *n + 2, sizeof(**envp));
	(*envp)[(*n)++] = entry;
	(*envp)[*n] = NULL;
}

/* Variables a child inherits from master's environment (sanitizers and
 * the time zone); everything else is left behind. */
static const char *const env_keep[] = {
	"TZ", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "VALGRIND_OPTS",
};

/*
 * In the child after fork: arrange fds, environment and exec.  Never
 * returns.  fds 3.. are the listeners, then the config text (a memfd)
 * and the write end of the readiness pipe.
 */
static void __attribute__((noreturn))
child_exec(struct master *m, struct child *c, int ready_w)
{
	struct service *s = c->svc;
	size_t nl = s->nlisteners, nenv = 0, nargv = 0;
	int *tmp = xcalloc(nl + 2, sizeof(int));
	int cfg_fd, cfg_at = (int)(3 + nl), ready_at = (int)(4 + nl);
	char **envp = NULL, **argv = NULL;
	struct buf spec = BUF_INIT;
	int devnull;

	ev_child_reset_signals();
	cfg_fd = memfd_create("postern.conf", MFD_CLOEXEC);
	if (cfg_fd < 0 || fd_write_all(cfg_fd, m->config_text.data,
	    m->config_text.len) < 0 || lseek(cfg_fd, 0, SEEK_SET) < 0)
		_exit(126);
	/* Move every fd out of the way of fds 3.., then into place. */
	for (size_t i = 0; i < nl; i++)
		tmp[i] = fcntl(s->listeners[i]->fd, F_DUPFD, ready_at + 1);
	tmp[nl] = fcntl(cfg_fd, F_DUPFD, ready_at + 1);
	tmp[nl + 1] = fcntl(ready_w, F_DUPFD, ready_at + 1);
	for (size_t i = 0; i < nl + 2; i++) {
		if (tmp[i] < 0 || dup2(tmp[i], (int)(3 + i)) < 0 ||
		    fd_set_cloexec((int)(3 + i), 0) < 0)
			_exit(126);
		if (i < nl && buf_printf(&spec, "%s%zu:%s", i ? " " : "", 3 + i,
		    s->listeners[i]->spec) < 0)
			_exit(126);
	}
	if (syscall(SYS_close_range, ready_at + 1, ~0U, 0) < 0) {
		for (int fd = ready_at + 1; fd < 65536; fd++)
			close(fd);
	}
	devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0 && devnull != 0) {
		dup2(devnull, 0);
		close(devnull);
	}

	env_add(&envp, &nenv, xstrdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"));
	env_add(&envp, &nenv, xasprintf("POSTERN_LISTENERS=%s", buf_cstr(&spec)));
	env_add(&envp, &nenv, xasprintf("POSTERN_CONFIG_FD=%d", cfg_at));
	env_add(&envp, &nenv, xasprintf("POSTERN_READY_FD=%d", ready_at));
	env_add(&envp, &nenv, xasprintf("POSTERN_MASTER_PID=%ld", (long)m->pid));
	if (s->user != NULL)
		env_add(&envp, &nenv, xasprintf("POSTERN_USER=%s", s->user));
	for (size_t i = 0; i < sizeof(env_keep) / sizeof(env_keep[0]); i++) {
		const char *v = getenv(env_keep[i]);

		if (v != NULL)
			env_add(&envp, &nenv, xasprintf("%s=%s", env_keep[i], v));
	}

	env_add(&argv, &nargv, s->program);
	env_add(&argv, &nargv, "-c");
	env_add(&argv, &nargv, m->config_path);
	env_add(&argv, &nargv, "-s");
	env_add(&argv, &nargv, s->name);
	env_add(&argv, &nargv, "-i");
	env_add(&argv, &nargv, xasprintf("%u", c->instance));
	for (char *a = strtok(s->args, " \t"); a != NULL; a = strtok(NULL, " \t"))
		env_add(&argv, &nargv, a);

	execve(s->program, argv, envp);
	fprintf(stderr, "postern master: exec %s: %s\n", s->program, strerror(errno));
	_exit(127);
}

/* The daemon wrote to its readiness pipe (or closed it). */
static void
child_ready(struct ev_io *io, int fd, int events, void *arg)
{
	struct child *c = arg;
	char b[16];
	ssize_t n = read(fd, b, sizeof(b));

	(void)events;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		c->ready = 1;
		log_debug("event=daemon_ready service=%s instance=%u pid=%ld",
		    c->svc->name, c->instance, (long)c->pid);
	}
	(void)io;
	ev_io_close(&c->ready_io);
}

static void restart_due(struct ev_timer *t, void *arg);

/* Fork and exec one child. */
static void
child_start(struct master *m, struct child *c)
{
	pid_t pid;
	int p[2];

	if (c->restart_timer != NULL)
		ev_timer_del(&c->restart_timer);
	if (c->ready_io != NULL)
		ev_io_close(&c->ready_io);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0 || (pid = fork()) < 0) {
		log_error("event=fork_failed service=%s error=\"%s\"", c->svc->name,
		    strerror(errno));
		c->state = CHILD_BACKOFF;
		c->restart_timer = ev_timer_add(m->loop, BACKOFF_FIRST_MS, 0, restart_due, c);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		child_exec(m, c, p[1]);
	}
	close(p[1]);
	c->ready = 0;
	c->ready_io = ev_io_add(m->loop, p[0], EV_READ, child_ready, c);
	c->pid = pid;
	c->state = CHILD_RUNNING;
	c->started_ms = ev_now(m->loop);
	log_info("event=daemon_start service=%s instance=%u pid=%ld user=%s",
	    c->svc->name, c->instance, (long)pid, c->svc->user ? c->svc->user : "-");
}

/* Restart timer for a child in back-off. */
static void
restart_due(struct ev_timer *t, void *arg)
{
	struct child *c = arg;

	(void)t;
	ev_timer_del(&c->restart_timer);
	child_start(c->svc->master, c);
}

void
master_start_all(struct master *m)
{
	if (m->stopping)
		return;
	for (size_t i = 0; i < m->nservices; i++) {
		struct service *s = &m->services[i];

		if (!s->installed)
			continue;
		for (unsigned j = 0; j < s->processes; j++)
			if (s->children[j].pid <= 0 && s->children[j].restart_timer == NULL)
				child_start(m, &s->children[j]);
	}
}

size_t
master_alive(const struct master *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nservices; i++)
		for (unsigned j = 0; j < m->services[i].processes; j++)
			if (m->services[i].children[j].pid > 0)
				n++;
	for (const struct child *r = m->retiring; r != NULL; r = r->next_retiring)
		n++;
	return n;
}

/* Describe a wait status for the log: "exit=N" or "signal=N". */
static const char *
status_text(int status)
{
	if (WIFEXITED(status))
		return err_fmt("exit=%d", WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return err_fmt("signal=%d%s", WTERMSIG(status),
		    WCOREDUMP(status) ? " core=yes" : "");
	return err_fmt("status=%d", status);
}

/* A current child died unexpectedly: schedule its restart with back-off. */
static void
child_died(struct master *m, struct child *c, int status)
{
	uint64_t now = ev_now(m->loop), up = now - c->started_ms;
	uint64_t max = cfg_time_ms(config_global(m->cfg), "restart_delay_max");

	c->pid = 0;
	c->svc->restarts++;
	if (c->ready_io != NULL)
		ev_io_close(&c->ready_io);
	if (up >= STABLE_UPTIME_MS)
		c->backoff_ms = 0;
	else
		c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_FIRST_MS :
		    (c->backoff_ms * 2 > max ? max : c->backoff_ms * 2);
	log_warn("event=daemon_died service=%s instance=%u %s uptime_ms=%llu "
	    "restart_in_ms=%llu", c->svc->name, c->instance, status_text(status),
	    (unsigned long long)up, (unsigned long long)c->backoff_ms);
	if (c->backoff_ms == 0) {
		child_start(m, c);
		return;
	}
	c->state = CHILD_BACKOFF;
	c->restart_timer = ev_timer_add(m->loop, c->backoff_ms, 0, restart_due, c);
}

/* Remove a retiring process from the list; 1 if pid was one. */
static int
retiring_reaped(struct master *m, pid_t pid, int status)
{
	for (struct child **rp = &m->retiring; *rp != NULL; rp = &(*rp)->next_retiring) {
		struct child *r = *rp;

		if (r->pid != pid)
			continue;
		log_info("event=daemon_retired pid=%ld %s", (long)pid, status_text(status));
		*rp = r->next_retiring;
		free(r);
		return 1;
	}
	return 0;
}

void
master_reap(struct master *m)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct child *found = NULL;

		if (retiring_reaped(m, pid, status))
			continue;
		for (size_t i = 0; i < m->nservices && found == NULL; i++)
			for (unsigned j = 0; j < m->services[i].processes; j++)
				if (m->services[i].children[j].pid == pid) {
					found = &m->services[i].children[j];
					break;
				}
		if (found == NULL)
			continue;
		if (m->stopping) {
			log_info("event=daemon_stopped service=%s instance=%u pid=%ld %s",
			    found->svc->name, found->instance, (long)pid,
			    status_text(status));
			found->pid = 0;
			continue;
		}
		child_died(m, found, status);
	}
	if (m->stopping && master_alive(m) == 0)
		ev_break(m->loop);
}

/* stop_timeout passed: kill whatever is left. */
static void
stop_deadline(struct ev_timer *t, void *arg)
{
	struct master *m = arg;

	(void)t;
	ev_timer_del(&m->stop_timer);
	for (size_t i = 0; i < m->nservices; i++)
		for (unsigned j = 0; j < m->services[i].processes; j++)
			if (m->services[i].children[j].pid > 0) {
				log_warn("event=daemon_kill service=%s pid=%ld reason=stop_timeout",
				    m->services[i].name, (long)m->services[i].children[j].pid);
				kill(m->services[i].children[j].pid, SIGKILL);
			}
	for (struct child *r = m->retiring; r != NULL; r = r->next_retiring)
		kill(r->pid, SIGKILL);
}

void
master_stop(struct master *m)
{
	if (m->stopping)
		return;
	m->stopping = 1;
	log_info("event=stopping daemons=%zu", master_alive(m));
	for (size_t i = 0; i < m->nservices; i++)
		for (unsigned j = 0; j < m->services[i].processes; j++) {
			struct child *c = &m->services[i].children[j];

			if (c->restart_timer != NULL)
				ev_timer_del(&c->restart_timer);
			if (c->pid > 0)
				kill(c->pid, SIGTERM);
		}
	for (struct child *r = m->retiring; r != NULL; r = r->next_retiring)
		kill(r->pid, SIGTERM);
	if (master_alive(m) == 0) {
		ev_break(m->loop);
		return;
	}
	m->stop_timer = ev_timer_add(m->loop,
	    cfg_time_ms(config_global(m->cfg), "stop_timeout"), 0, stop_deadline, m);
}

int
master_load_config(struct master *m, struct config **cfg_r, struct buf *text,
    struct buf *err)
{
	struct buf t = BUF_INIT;
	const char *error;

	if (fs_read_file(m->config_path, CONFIG_MAX_FILE, &t, &error) < 0) {
		if (buf_printf(err, "%s\n", error) < 0)
			log_panic("event=overflow");
		buf_free(&t);
		return -1;
	}
	if (config_parse(m->config_path, t.data ? t.data : "", t.len, cfg_r, err) < 0) {
		buf_free(&t);
		return -1;
	}
	buf_free(text);
	*text = t;
	return 0;
}

void
master_reload(struct master *m)
{
	struct config *cfg;
	struct buf err = BUF_INIT, text;
	const char *error;

	if (m->stopping)
		return;
	buf_init(&text, 0);
	if (master_load_config(m, &cfg, &text, &err) < 0) {
		/* Each reason on its own log line; the old config stays. */
		for (char *line = strtok(err.data, "\n"); line != NULL; line = strtok(NULL, "\n"))
			log_error("event=reload_failed error=%s", log_safe(line));
		buf_free(&err);
		buf_free(&text);
		return;
	}
	buf_free(&err);
	if (master_configure(m, cfg, &error) < 0) {
		log_error("event=reload_failed error=\"%s\"", error);
		config_free(&cfg);
		buf_free(&text);
		return;
	}
	buf_free(&m->config_text);
	m->config_text = text;
	log_info("event=reloaded services=%zu retiring=%zu", m->nservices,
	    master_alive(m));
	master_start_all(m);
}

void
master_free(struct master *m)
{
	for (size_t i = 0; i < m->nservices; i++)
		service_free(&m->services[i]);
	free(m->services);
	m->services = NULL;
	m->nservices = 0;
	while (m->retiring != NULL) {
		struct child *r = m->retiring;

		m->retiring = r->next_retiring;
		free(r);
	}
	for (size_t i = 0; i < m->nlisteners; i++)
		m->listeners[i]->used = 0;
	listeners_prune(m);
	free(m->listeners);
	m->listeners = NULL;
	if (m->stop_timer != NULL)
		ev_timer_del(&m->stop_timer);
	config_free(&m->cfg);
	buf_free(&m->config_text);
}
