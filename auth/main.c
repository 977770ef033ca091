/*
 * auth(8): the authentication service, the only process that reads
 * password hashes.  main() is the table of contents: the shared daemon
 * skeleton does the config, the privilege drop and the loop; the hooks
 * below learn who may connect (before the drop, while /etc/passwd is
 * surely reachable), start the service after the drop, and hand it each
 * connection.  The logic is in auth.c.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <unistd.h>

#include "auth.h"
#include "daemon.h"
#include "log.h"
#include "priv.h"
#include "services.h"
#include "xalloc.h"

/* The daemon's state between hooks. */
struct auth_daemon {
	uid_t *peers;
	size_t npeers;
	struct auth_server *srv;
};

/* Add uid to the allowed peers unless already there. */
static void
add_peer(struct auth_daemon *ad, uid_t uid)
{
	for (size_t i = 0; i < ad->npeers; i++)
		if (ad->peers[i] == uid)
			return;
	ad->peers = xreallocarray(ad->peers, ad->npeers + 1, sizeof(*ad->peers));
	ad->peers[ad->npeers++] = uid;
}

/* Who may connect: root, and in root mode the users of the daemons that
 * authenticate users (those in POSTERN_AUTH_GROUP, services.c), in dev
 * mode our own uid (root started the instance as another user, or could
 * read every file of it anyway). */
static int
auth_pre_drop(struct daemon *d, const char **error_r)
{
	struct auth_daemon *ad = xcalloc(1, sizeof(*ad));

	(void)error_r;
	d->ctx = ad;
	add_peer(ad, 0);
	if (d->dev_mode) {
		if (getuid() != 0)
			add_peer(ad, getuid());
		return 0;
	}
	for (size_t i = 0; i < builtin_nservices; i++) {
		const char *error;
		uid_t uid;
		gid_t gid;

		if (!builtin_service_in_group(&builtin_services[i], POSTERN_AUTH_GROUP))
			continue;
		if (priv_lookup_user(builtin_services[i].user, &uid, &gid, &error) < 0) {
			log_warn("event=peer_user_missing user=%s error=\"%s\"",
			    builtin_services[i].user, error);
			continue;
		}
		add_peer(ad, uid);
	}
	return 0;
}

/* Start the service with the configured maps, delays and penalties. */
static int
auth_post_drop(struct daemon *d, const char **error_r)
{
	struct auth_daemon *ad = d->ctx;
	struct auth_settings s = {
		.passwd = cfg_str(d->global, "passwd"),
		.mailboxes = cfg_str(d->global, "virtual_mailboxes"),
		.fail_delay_ms = cfg_time_ms(d->global, "auth_fail_delay"),
		.penalty_ms = cfg_time_ms(d->global, "auth_penalty_delay"),
		.penalty_max_ms = cfg_time_ms(d->global, "auth_penalty_max"),
		.fail_forget_ms = cfg_time_ms(d->global, "auth_fail_forget"),
		.failtab_max = AUTH_FAILTAB_MAX,
		.peers = ad->peers,
		.npeers = ad->npeers,
	};

	(void)error_r;
	/* auth_fail_delay_max is auth_penalty_max's old name. */
	if (cfg_is_set(d->global, "auth_fail_delay_max")) {
		if (!cfg_is_set(d->global, "auth_penalty_max"))
			s.penalty_max_ms = cfg_time_ms(d->global, "auth_fail_delay_max");
		log_warn("event=deprecated_key key=auth_fail_delay_max "
		    "detail=\"read as auth_penalty_max unless that is set\"");
	}
	if (s.passwd[0] == '\0')
		log_warn("event=no_passwd_map detail=\"passwd is empty: no user can log in\"");
	ad->srv = auth_server_new(d->loop, &s);
	return 0;
}

/* A connection on the auth socket: the service checks the peer. */
static void
auth_on_accept(struct daemon *d, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	struct auth_daemon *ad = d->ctx;

	(void)l;
	(void)peer;
	auth_server_accept(ad->srv, fd);
}

/* Connections still busy, for a retiring process. */
static size_t
auth_active(struct daemon *d)
{
	struct auth_daemon *ad = d->ctx;

	return auth_server_active(ad->srv);
}

/* SIGTERM: drop every connection. */
static void
auth_on_stop(struct daemon *d)
{
	struct auth_daemon *ad = d->ctx;

	auth_server_stop(ad->srv);
}

/* Free the state before exit. */
static void
auth_cleanup(struct daemon *d)
{
	struct auth_daemon *ad = d->ctx;

	if (ad == NULL)
		return;
	auth_server_free(&ad->srv);
	free(ad->peers);
	free(ad);
	d->ctx = NULL;
}

static const struct daemon_hooks hooks = {
	.pre_drop = auth_pre_drop,
	.post_drop = auth_post_drop,
	.on_accept = auth_on_accept,
	.active = auth_active,
	.on_stop = auth_on_stop,
	.cleanup = auth_cleanup,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &hooks);
}
