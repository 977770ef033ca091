/*
 * daemon: the one server skeleton every postern daemon's main() calls.
 *
 * master starts each daemon as
 *     PROGRAM -c CONFIG -s SERVICE -i INSTANCE
 * with its listening sockets already bound, passed as inherited fds and
 * described in the environment variable POSTERN_LISTENERS (space-separated
 * "FD:inet:TAG:ADDRESS" and "FD:unix:NAME:PATH"), the user to become in
 * POSTERN_USER (root mode) and master's pid in POSTERN_MASTER_PID.
 *
 * daemon_main() then: reads the config, calls the pre_drop hook (still
 * privileged: open keys and files), drops privileges with priv_drop() and
 * proves it, sets no-new-privs and a parent-death signal, calls post_drop,
 * and runs the event loop.  It accepts connections on every listener and
 * hands each to on_accept.  Signals: SIGTERM/SIGINT stop at once (on_stop,
 * then exit); SIGHUP retires gracefully (stop accepting, exit once the
 * active hook says no sessions remain).  After max_sessions accepted
 * sessions the process retires the same way and master starts a fresh one.
 */
#ifndef POSTERN_DAEMON_H
#define POSTERN_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "ev.h"

struct daemon_listener {
	int fd;
	int is_unix;		/* 1: Unix socket in run_dir, 0: TCP */
	char *tag;		/* the listen tag ("" if none) or the socket name */
	char *addr;		/* "127.0.0.1:25" or the socket path */
	struct ev_io *io;	/* the accept watch */
};

struct daemon {
	const char *program;	/* argv[0]'s base name */
	const char *service;	/* the service block's name */
	unsigned instance;	/* 0 .. processes-1 */
	struct config *cfg;
	const struct cfg_section *global;
	const struct cfg_section *svc;
	int dev_mode;		/* mode = dev: no privilege changes */
	struct ev_loop *loop;
	struct daemon_listener *listeners;
	size_t nlisteners;
	uint64_t sessions;	/* accepted so far */
	int retiring;		/* no longer accepting; exits when idle */
	void *ctx;		/* the daemon's own state */
};

struct daemon_hooks {
	/* Privileged set-up, before the drop (optional).  0 or -1 with *error_r. */
	int (*pre_drop)(struct daemon *d, const char **error_r);
	/* Set-up after the drop (optional).  0 or -1 with *error_r. */
	int (*post_drop)(struct daemon *d, const char **error_r);
	/* A new connection: fd is non-blocking and close-on-exec; the hook owns
	 * it.  peer is the peer address (AF_UNIX for Unix sockets). */
	void (*on_accept)(struct daemon *d, const struct daemon_listener *l,
	    int fd, const struct sockaddr_storage *peer);
	/* Sessions still open (optional; default 0): a retiring process exits
	 * when this reaches 0. */
	size_t (*active)(struct daemon *d);
	/* Stop now: end every session (optional). */
	void (*on_stop)(struct daemon *d);
	/* Free the daemon's state before exit (optional). */
	void (*cleanup)(struct daemon *d);
};

/* Raise the open-file soft limit to the hard limit (network daemons,
 * whose sessions are a descriptor each, call it before the drop); logs
 * the result. */
void daemon_raise_nofile(void);

struct ssl_ctx_st;
struct connlimit;

/*
 * The privileged set-up every network daemon shares (call it from
 * pre_drop): raise the file limit; load tls_cert_file and tls_key_file
 * into *tls_r, or leave it NULL and log a warning that says what the
 * daemon then goes without (without, e.g. "no STARTTLS, smtps refused")
 * when either is empty; and map the connection counters shared by the
 * service's processes, run_dir/CONNS (created in run_dir, which only root
 * may write in root mode; the mapping outlives the drop).  0, or -1 with
 * *error_r.
 */
int daemon_net_setup(struct daemon *d, const char *conns, const char *without,
    struct ssl_ctx_st **tls_r, struct connlimit **conns_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Run the daemon; returns the process exit status for main() to return. */
int daemon_main(int argc, char **argv, const struct daemon_hooks *hooks);

/* Stop accepting and exit once no session is active (also used on SIGHUP
 * and after max_sessions). */
void daemon_retire(struct daemon *d);

/* Parse a POSTERN_LISTENERS value into a new array (*out_r, *n_r).
 * 0, or -1 with *error_r.  Exposed for unit tests. */
int daemon_parse_listeners(const char *spec, struct daemon_listener **out_r,
    size_t *n_r, const char **error_r) __attribute__((warn_unused_result));
void daemon_free_listeners(struct daemon_listener *l, size_t n);

#endif
