/*
 * qmgr(8): the queue manager.  main() is the table of contents: the
 * shared daemon skeleton reads the config, drops privileges and runs the
 * loop; post_drop starts the queue (recovery of spool/queue, pickup) and
 * the once-a-second tick; on_accept hands the notice and control sockets'
 * connections to ctl.c.  The logic is in queue.c, sched.c, bounce.c.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "net.h"
#include "qmgr.h"
#include "qmgrproto.h"
#include "xalloc.h"

#define TICK_MS 1000		/* retries, expiry, warnings */
#define SCAN_MS 5000		/* pickup scan, in case a notice was lost */

/* The daemon's state between hooks. */
struct qmgr_daemon {
	struct qmgr *q;
	char host[256];
	struct ev_timer *tick, *scan;
};

/* Once a second: the scheduler's timed work. */
static void
on_tick(struct ev_timer *t, void *arg)
{
	struct qmgr_daemon *qd = arg;

	(void)t;
	sched_tick(qd->q);
}

/* Every few seconds: scan the pickup directories. */
static void
on_scan(struct ev_timer *t, void *arg)
{
	struct qmgr_daemon *qd = arg;

	(void)t;
	qmgr_scan_soon(qd->q);
}

/* Start the queue after the privilege drop. */
static int
qmgr_post_drop(struct daemon *d, const char **error_r)
{
	struct qmgr_daemon *qd = xcalloc(1, sizeof(*qd));
	const char *hostname = cfg_str(d->global, "hostname");
	struct qmgr_settings s;

	d->ctx = qd;
	hostname = net_hostname(hostname, qd->host, sizeof(qd->host));
	s = (struct qmgr_settings){
		.spool_dir = cfg_str(d->global, "spool_dir"),
		.run_dir = cfg_str(d->global, "run_dir"),
		.hostname = hostname,
		.virtual_domains = cfg_str(d->global, "virtual_domains"),
		.retry_min = cfg_time_ms(d->global, "queue_retry_min") / 1000,
		.retry_max = cfg_time_ms(d->global, "queue_retry_max") / 1000,
		.lifetime = cfg_time_ms(d->global, "maximal_queue_lifetime") / 1000,
		.delay_warning = cfg_time_ms(d->global, "delay_warning_time") / 1000,
		.domain_limit = (unsigned)cfg_int(d->global, "qmgr_domain_concurrency"),
		.postmaster = cfg_str(d->global, "postmaster_address"),
	};
	for (int i = 0; i < QMGR_AGENTS; i++)
		s.agent_limit[i] = (unsigned)cfg_int(d->global, sched_agents[i].limit_key);
	if (qmgr_new(d->loop, &s, &qd->q, error_r) < 0)
		return -1;
	qd->tick = ev_timer_add(d->loop, TICK_MS, 1, on_tick, qd);
	qd->scan = ev_timer_add(d->loop, SCAN_MS, 1, on_scan, qd);
	return 0;
}

/* A connection on qmgr (notices) or qmgr.ctl (control). */
static void
qmgr_on_accept(struct daemon *d, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	struct qmgr_daemon *qd = d->ctx;

	(void)peer;
	if (!l->is_unix) {
		log_error("event=tcp_listener_refused");
		close(fd);
		return;
	}
	ctl_accept(qd->q, fd, strcmp(l->tag, QMGR_CTL_SOCKET) == 0);
}

/* Free the state before exit (the queue stays on disk). */
static void
qmgr_cleanup(struct daemon *d)
{
	struct qmgr_daemon *qd = d->ctx;

	if (qd == NULL)
		return;
	ev_timer_del(&qd->tick);
	ev_timer_del(&qd->scan);
	qmgr_free(&qd->q);
	free(qd);
	d->ctx = NULL;
}

static const struct daemon_hooks hooks = {
	.post_drop = qmgr_post_drop,
	.on_accept = qmgr_on_accept,
	.cleanup = qmgr_cleanup,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &hooks);
}
