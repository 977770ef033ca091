/*
 * local(8): the local delivery agent.  main() is the table of contents:
 * the shared daemon skeleton does the config, the privilege drop and the
 * loop; the hooks learn who may connect (qmgr's user, before the drop),
 * start the service after the drop and hand it each connection.  The
 * logic is in local.c; the Maildir format and writes are lib/mail/maildir's.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <unistd.h>

#include "daemon.h"
#include "local.h"
#include "log.h"
#include "net.h"
#include "priv.h"
#include "xalloc.h"

/* The user qmgr runs as in root mode. */
#define QMGR_USER "postern-queue"

/* The daemon's state between hooks. */
struct local_daemon {
	uid_t peers[2];
	size_t npeers;
	char *auth_socket;
	struct local_server *srv;
};

/* Who may connect: root, and qmgr's user in root mode or our own uid in
 * dev mode. */
static int
local_pre_drop(struct daemon *d, const char **error_r)
{
	struct local_daemon *ld = xcalloc(1, sizeof(*ld));
	uid_t uid;
	gid_t gid;

	d->ctx = ld;
	ld->peers[ld->npeers++] = 0;
	if (d->dev_mode) {
		if (getuid() != 0)
			ld->peers[ld->npeers++] = getuid();
		return 0;
	}
	if (priv_lookup_user(QMGR_USER, &uid, &gid, error_r) < 0)
		return -1;
	ld->peers[ld->npeers++] = uid;
	return 0;
}

/* Start the service with the configured maps and mail store. */
static int
local_post_drop(struct daemon *d, const char **error_r)
{
	struct local_daemon *ld = d->ctx;
	const char *delim = cfg_str(d->global, "recipient_delimiter");
	const char *hostname = cfg_str(d->global, "hostname");
	char host[256];
	struct local_settings s;

	hostname = net_hostname(hostname, host, sizeof(host));
	ld->auth_socket = xasprintf("%s/auth", cfg_str(d->global, "run_dir"));
	s = (struct local_settings){
		.mail_dir = cfg_str(d->global, "mail_dir"),
		.hostname = hostname,
		.auth_socket = ld->auth_socket,
		.virtual_domains = cfg_str(d->global, "virtual_domains"),
		.aliases = cfg_str(d->global, "aliases"),
		.virtual_mailboxes = cfg_str(d->global, "virtual_mailboxes"),
		.max_depth = (unsigned)cfg_int(d->global, "alias_max_depth"),
		.delim = delim[0],
		.folder_delivery = cfg_bool(d->global, "local_plus_folders"),
		.maildir_cache = (size_t)cfg_int(d->global, "local_maildir_cache"),
		.auth_timeout_ms = cfg_time_ms(d->global, "auth_timeout"),
		.peers = ld->peers,
		.npeers = ld->npeers,
	};
	return local_server_new(d->loop, &s, &ld->srv, error_r);
}

/* A connection on the agent socket: the service checks the peer. */
static void
local_on_accept(struct daemon *d, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	struct local_daemon *ld = d->ctx;

	(void)l;
	(void)peer;
	local_server_accept(ld->srv, fd);
}

/* Links still open, for a retiring process (asked first as soon as it
 * retires: the moment to close the cached Maildirs). */
static size_t
local_active(struct daemon *d)
{
	struct local_daemon *ld = d->ctx;

	if (ld->srv == NULL)
		return 0;
	if (d->retiring)
		local_server_retire(ld->srv);
	return local_server_active(ld->srv);
}

/* SIGTERM: drop every link (qmgr retries what was in flight). */
static void
local_on_stop(struct daemon *d)
{
	struct local_daemon *ld = d->ctx;

	if (ld->srv != NULL)
		local_server_stop(ld->srv);
}

/* Free the state before exit. */
static void
local_cleanup(struct daemon *d)
{
	struct local_daemon *ld = d->ctx;

	if (ld == NULL)
		return;
	local_server_free(&ld->srv);
	free(ld->auth_socket);
	free(ld);
	d->ctx = NULL;
}

static const struct daemon_hooks hooks = {
	.pre_drop = local_pre_drop,
	.post_drop = local_post_drop,
	.on_accept = local_on_accept,
	.active = local_active,
	.on_stop = local_on_stop,
	.cleanup = local_cleanup,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &hooks);
}
