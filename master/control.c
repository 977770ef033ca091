/*
 * control.c: master's control socket, run_dir/master.sock (mode 0600, the
 * owner only).  `postern status` asks for the state of every daemon.
 *
 * MASTER_STATUS_REQ: empty.
 * MASTER_STATUS: u32 master pid, u64 master uptime ms, u32 count, then
 * per process: str service, u32 instance, u32 pid (0: not running),
 * u64 uptime ms, u32 restarts (of its service), str state.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fsutil.h"
#include "ipc.h"
#include "log.h"
#include "master.h"
#include "net.h"
#include "xalloc.h"

struct control_client {
	struct master *m;
	struct ipc_link *link;
	struct control_client *next;
};

static const struct ipc_type control_types[] = {
	{ MASTER_STATUS_REQ, 0, 0, 0 },
};

/* Put one status row. */
static void
put_row(struct ipc_msg *r, const char *service, unsigned instance, pid_t pid,
    uint64_t uptime, unsigned restarts, const char *state)
{
	ipc_put_str(r, service);
	ipc_put_u32(r, instance);
	ipc_put_u32(r, (uint32_t)(pid > 0 ? pid : 0));
	ipc_put_u64(r, uptime);
	ipc_put_u32(r, restarts);
	ipc_put_str(r, state);
}

/* Answer a status request. */
static int
send_status(struct master *m, struct ipc_link *l, uint32_t id)
{
	struct ipc_msg r;
	uint64_t now = ev_now(m->loop);
	uint32_t rows = 0;
	int ret;

	for (size_t i = 0; i < m->nservices; i++)
		rows += m->services[i].installed ? m->services[i].processes : 1;
	for (const struct child *c = m->retiring; c != NULL; c = c->next_retiring)
		rows++;
	ipc_msg_init(&r, MASTER_STATUS, id);
	ipc_put_u32(&r, (uint32_t)getpid());
	ipc_put_u64(&r, now - m->started_ms);
	ipc_put_u32(&r, rows);
	for (size_t i = 0; i < m->nservices; i++) {
		struct service *s = &m->services[i];

		if (!s->installed) {
			put_row(&r, s->name, 0, 0, 0, 0, "not-installed");
			continue;
		}
		for (unsigned j = 0; j < s->processes; j++) {
			struct child *c = &s->children[j];

			put_row(&r, s->name, j, c->pid,
			    c->pid > 0 ? now - c->started_ms : 0, s->restarts,
			    c->pid <= 0 ? "restarting" : c->ready ? "running" : "starting");
		}
	}
	for (const struct child *c = m->retiring; c != NULL; c = c->next_retiring)
		put_row(&r, "(retiring)", c->instance, c->pid, now - c->started_ms, 0,
		    "retiring");
	ret = ipc_link_send(l, &r);
	ipc_msg_free(&r);
	return ret;
}

/* A request from a control client. */
static int
control_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct control_client *cl = arg;

	if (ipc_get_end(c) < 0)
		return -1;
	switch (type) {
	case MASTER_STATUS_REQ:
		return send_status(cl->m, l, id);
	default:
		return -1;
	}
}

/* A control client went away. */
static void
control_gone(struct ipc_link *l, const char *why, void *arg)
{
	struct control_client *cl = arg;
	struct master *m = cl->m;

	(void)l;
	(void)why;
	for (struct control_client **p = &m->clients; *p != NULL; p = &(*p)->next)
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	ipc_link_free(&cl->link);
	free(cl);
}

static const struct ipc_proto control_proto = {
	MASTER_PROTO, control_types, sizeof(control_types) / sizeof(control_types[0]),
	control_msg, control_gone,
};

/* Accept control connections (same user as master only). */
static void
control_accept(struct ev_io *io, int fd, int events, void *arg)
{
	struct master *m = arg;
	struct control_client *cl;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int cfd;

	(void)io;
	(void)events;
	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != getuid())) {
		log_warn("event=control_refused uid=%ld", (long)cred.uid);
		close(cfd);
		return;
	}
	cl = xcalloc(1, sizeof(*cl));
	cl->m = m;
	cl->next = m->clients;
	m->clients = cl;
	cl->link = ipc_link_new(m->loop, cfd, &control_proto, cl);
}

int
control_open(struct master *m, const char **error_r)
{
	m->control_path = fs_join(cfg_str(config_global(m->cfg), "run_dir"),
	    MASTER_SOCKET_NAME);
	m->control_fd = net_bind_unix(m->control_path, 0600, (uid_t)-1, (gid_t)-1,
	    16, error_r);
	if (m->control_fd < 0)
		return -1;
	m->control_io = ev_io_add(m->loop, m->control_fd, EV_READ, control_accept, m);
	return 0;
}

void
control_close(struct master *m)
{
	while (m->clients != NULL) {
		struct control_client *cl = m->clients;

		m->clients = cl->next;
		ipc_link_free(&cl->link);
		free(cl);
	}
	if (m->control_io != NULL)
		ev_io_close(&m->control_io);
	if (m->control_path != NULL) {
		unlink(m->control_path);
		xfree(&m->control_path);
	}
}
