/*
 * pop3d(8): the POP3 server for ports 110 (pop3, STLS) and 995 (pop3s,
 * implicit TLS).  main() is the table of contents: the shared skeleton
 * reads the config, drops privileges (to postern-mail in root mode) and
 * runs the loop; the hooks below load the TLS key and map the connection
 * counters while still privileged, open the mail store and the auth
 * client after the drop, and hand each connection to a session
 * (session.c).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authclient.h"
#include "config.h"
#include "connlimit.h"
#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "pop3d.h"
#include "tlsctx.h"
#include "xalloc.h"

/* Read the settings. */
static void
load_settings(struct daemon *d, struct pop3d_settings *set)
{
	const struct cfg_section *g = d->global;

	set->mail_dir = xstrdup(cfg_str(g, "mail_dir"));
	set->timeout_ms = cfg_time_ms(g, "pop3d_timeout");
	set->auth_timeout_ms = cfg_time_ms(g, "auth_timeout");
	set->max_errors = (unsigned)cfg_int(g, "pop3d_max_errors");
	set->login_attempts = (unsigned)cfg_int(g, "pop3d_login_attempts");
	set->max_conns = (unsigned)cfg_int(g, "pop3d_max_connections");
	set->max_conns_ip = (unsigned)cfg_int(g, "pop3d_max_connections_per_ip");
	set->move_new = cfg_bool(g, "pop3d_move_new_to_cur");
	set->loopback_secure = cfg_bool(g, "pop3d_loopback_secure");
	set->plaintext_auth = cfg_bool(g, "pop3d_plaintext_auth");
}

/* Privileged: the TLS key (root-only in root mode), the file limit, and
 * the shared connection counters in run_dir. */
static int
pop3d_pre_drop(struct daemon *d, const char **error_r)
{
	struct pop3d *pd = xcalloc(1, sizeof(*pd));

	pd->d = d;
	pd->storefd = -1;
	d->ctx = pd;
	return daemon_net_setup(d, "pop3d.conns",
	    "no STLS, pop3s refused, logins only from secure clients",
	    &pd->tls, &pd->conns, error_r);
}

/* After the drop (as the mail store's owner): settings, the mail store
 * and the auth service client. */
static int
pop3d_post_drop(struct daemon *d, const char **error_r)
{
	struct pop3d *pd = d->ctx;
	char *auth = fs_join(cfg_str(d->global, "run_dir"), "auth");

	load_settings(d, &pd->set);
	pd->storefd = open(pd->set.mail_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pd->storefd < 0) {
		*error_r = err_fmt("open %s: %s", pd->set.mail_dir, strerror(errno));
		free(auth);
		return -1;
	}
	pd->auth = auth_client_new(d->loop, auth);
	free(auth);
	pop3d_sessions_init(pd);
	pd->chunk = xmalloc(POP3D_CHUNK);
	/* A converted chunk is at most twice as long (LF -> CRLF, "." -> ".."),
	 * plus the line end and terminator of the last line. */
	buf_init(&pd->out, 2 * POP3D_CHUNK + 16);
	/* The threads for the mailbox scans and UPDATEs (job.c). */
	return jobs_start(pd, error_r);
}

/* A new connection on one of the listeners. */
static void
pop3d_on_accept(struct daemon *d, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer)
{
	pop3d_accept(d->ctx, l, fd, peer);
}

/* Sessions still open and jobs still running, for a retiring process. */
static size_t
pop3d_active(struct daemon *d)
{
	struct pop3d *pd = d->ctx;

	/* An UPDATE whose client has gone still counts until it is done. */
	return pd->sessions.count + pd->njobs;
}

/* SIGTERM: tell every session and close them (nothing more is deleted:
 * an UPDATE under way stops after its current chunk, in cleanup). */
static void
pop3d_on_stop(struct daemon *d)
{
	struct pop3d *pd = d->ctx;

	pd->stopping = 1;
	session_stop_all(&pd->sessions);
}

/* Free the state before exit. */
static void
pop3d_cleanup(struct daemon *d)
{
	struct pop3d *pd = d->ctx;

	if (pd == NULL)
		return;
	session_stop_all(&pd->sessions);
	jobs_stop(pd);		/* waits for the jobs running */
	if (pd->auth != NULL)
		auth_client_free(&pd->auth);
	if (pd->conns != NULL)
		connlimit_close(&pd->conns);
	if (pd->storefd >= 0)
		(void)close(pd->storefd);
	SSL_CTX_free(pd->tls);
	buf_free(&pd->out);
	free(pd->chunk);
	free(pd->set.mail_dir);
	free(pd);
	d->ctx = NULL;
}

static const struct daemon_hooks hooks = {
	.pre_drop = pop3d_pre_drop,
	.post_drop = pop3d_post_drop,
	.on_accept = pop3d_on_accept,
	.active = pop3d_active,
	.on_stop = pop3d_on_stop,
	.cleanup = pop3d_cleanup,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &hooks);
}
