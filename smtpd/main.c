/*
 * smtpd(8): the SMTP listener for ports 25 (smtp), 587 (submission) and
 * 465 (smtps).  main() is the table of contents: the shared skeleton reads
 * the config, drops privileges and runs the loop; the hooks below load
 * the TLS key and map the connection counters while still privileged,
 * open the policy and the auth client after the drop, and hand each
 * connection to a session (session.c).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authclient.h"
#include "config.h"
#include "connlimit.h"
#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "net.h"
#include "policy.h"
#include "commit.h"
#include "smtpd.h"
#include "tlsctx.h"
#include "xalloc.h"

/* The host name for greetings: the config's, else the system's. */
static char *
resolve_hostname(const struct cfg_section *global)
{
	char name[256];

	return xstrdup(net_hostname(cfg_str(global, "hostname"), name, sizeof(name)));
}

/* Read the settings (the banner gets the host name in front when
 * $hostname expanded to nothing). */
static void
load_settings(struct daemon *d, struct smtpd_settings *set)
{
	const struct cfg_section *g = d->global;
	const char *banner = cfg_str(g, "smtpd_banner");

	set->hostname = resolve_hostname(g);
	if (banner[0] == '\0' || banner[0] == ' ')
		set->banner = xasprintf("%s%s", set->hostname, banner);
	else
		set->banner = xstrdup(banner);
	set->incoming = fs_join(cfg_str(g, "spool_dir"), "incoming");
	set->qmgr_socket = fs_join(cfg_str(g, "run_dir"), "qmgr");
	set->max_size = cfg_size(g, "smtpd_max_message_size");
	set->reserve = qfile_reserve(cfg_size(g, "queue_minfree"), set->max_size);
	set->max_envelope = cfg_size(g, "smtpd_max_envelope_size");
	set->max_rcpts = (unsigned)cfg_int(g, "smtpd_max_recipients");
	set->rcpt_overshoot = (unsigned)cfg_int(g, "smtpd_recipient_overshoot_limit");
	set->max_errors = (unsigned)cfg_int(g, "smtpd_max_errors");
	set->bare_lf_normalize = strcmp(cfg_str(g, "smtpd_bare_lf"), "normalize") == 0;
	set->bare_lf_trusted_normalize =
	    strcmp(cfg_str(g, "smtpd_bare_lf_trusted"), "normalize") == 0;
	set->max_conns = (unsigned)cfg_int(g, "smtpd_max_connections");
	set->max_conns_ip = (unsigned)cfg_int(g, "smtpd_max_connections_per_ip");
	set->timeout_ms = cfg_time_ms(g, "smtpd_timeout");
	set->data_timeout_ms = cfg_time_ms(g, "smtpd_data_timeout");
	set->auth_timeout_ms = cfg_time_ms(g, "auth_timeout");
	set->sender_login_match = cfg_bool(g, "smtpd_sender_login_match");
}

/* Privileged: the TLS key (root-only in root mode), the file limit, and
 * the shared connection counters (created in run_dir, which only root may
 * write in root mode; the mapping outlives the drop). */
static int
smtpd_pre_drop(struct daemon *d, const char **error_r)
{
	struct smtpd *sd = xcalloc(1, sizeof(*sd));

	sd->d = d;
	d->ctx = sd;
	return daemon_net_setup(d, "smtpd.conns",
	    "no STARTTLS, no AUTH, smtps refused", &sd->tls, &sd->conns, error_r);
}

/* After the drop: settings, policy (maps) and the auth service client. */
static int
smtpd_post_drop(struct daemon *d, const char **error_r)
{
	struct smtpd *sd = d->ctx;
	char *auth = fs_join(cfg_str(d->global, "run_dir"), "auth");
	int r;

	load_settings(d, &sd->set);
	/* One link to the auth service for AUTH and the policy's user
	 * lookups alike. */
	sd->auth = auth_client_new(d->loop, auth);
	free(auth);
	smtpd_sessions_init(sd);
	r = policy_open(d->global, d->loop, sd->auth, &sd->policy, error_r);
	if (r < 0 || data_committer_start(sd, error_r) < 0)
		return -1;
	return 0;
}

/* A new connection on one of the listeners. */
static void
smtpd_on_accept(struct daemon *d, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	smtpd_accept(d->ctx, l, fd, peer);
}

/* Sessions still open, for a retiring process. */
static size_t
smtpd_active(struct daemon *d)
{
	return ((struct smtpd *)d->ctx)->sessions.count;
}

/* SIGTERM: 421 to every session, then close them all. */
static void
smtpd_on_stop(struct daemon *d)
{
	session_stop_all(&((struct smtpd *)d->ctx)->sessions);
}

/* Free the state before exit. */
static void
smtpd_cleanup(struct daemon *d)
{
	struct smtpd *sd = d->ctx;

	if (sd == NULL)
		return;
	session_stop_all(&sd->sessions);
	/* A batch in flight finishes its syncs before the process exits. */
	commit_stop(&sd->committer);
	/* The policy borrows the auth client: close it first. */
	if (sd->policy != NULL)
		policy_close(&sd->policy);
	if (sd->auth != NULL)
		auth_client_free(&sd->auth);
	if (sd->conns != NULL)
		connlimit_close(&sd->conns);
	SSL_CTX_free(sd->tls);
	free(sd->set.hostname);
	free(sd->set.banner);
	free(sd->set.incoming);
	free(sd->set.qmgr_socket);
	free(sd);
	d->ctx = NULL;
}

static const struct daemon_hooks hooks = {
	.pre_drop = smtpd_pre_drop,
	.post_drop = smtpd_post_drop,
	.on_accept = smtpd_on_accept,
	.active = smtpd_active,
	.on_stop = smtpd_on_stop,
	.cleanup = smtpd_cleanup,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &hooks);
}
