/*
 * auth: the authentication service's logic, apart from the daemon
 * skeleton so tests can drive it in one event loop: the peer check, the
 * AUTH_REQ check and verification, and the failure delays and penalties.
 */
#ifndef POSTERN_AUTH_AUTH_H
#define POSTERN_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ev.h"

/* The tracking tables' size limit (each). */
#define AUTH_FAILTAB_MAX 100000

struct auth_settings {
	const char *passwd;		/* map spec of the password map; "": none */
	const char *mailboxes;		/* virtual_mailboxes map spec; "": none */
	uint64_t fail_delay_ms;		/* added to every failure's answer */
	uint64_t penalty_ms;		/* a client's penalty after one failure */
	uint64_t penalty_max_ms;	/* the penalty's cap */
	uint64_t fail_forget_ms;	/* how long a failure counts */
	size_t failtab_max;		/* entries per tracking table */
	const uid_t *peers;		/* uids allowed to connect */
	size_t npeers;
};

/* A parsed AUTH_REQ, fields pointing into the frame. */
struct auth_req {
	const char *service, *mechanism, *user, *client;
	const void *password;
	size_t password_len;
	uint32_t flags;
};

struct auth_server;

/*
 * The service over loop with settings s (copied).  Opens the maps; a map
 * that cannot be opened is logged and retried at each request (those
 * answer AUTH_FAIL_TEMPORARY meanwhile).  Never fails.
 */
struct auth_server *auth_server_new(struct ev_loop *loop, const struct auth_settings *s);
/* Close every connection (pending replies are dropped), free the state
 * and set *srvp = NULL. */
void auth_server_free(struct auth_server **srvp);
/* A new connection on the service's socket: the server owns fd and
 * closes it at once (with a log line) if the peer is not allowed. */
void auth_server_accept(struct auth_server *srv, int fd);
/* Connections busy now (a reply pending or recent traffic). */
size_t auth_server_active(const struct auth_server *srv);
/* Close every connection now. */
void auth_server_stop(struct auth_server *srv);

/*
 * The check step of a request, without side effects: 0 if the fields are
 * acceptable, with the canonical (lower-case) user in canon (at least
 * AUTH_MAX_USER + 1 bytes); else -1 with *error_r.
 */
int auth_req_check(const struct auth_req *r, char *canon, const char **error_r)
	__attribute__((warn_unused_result));
/*
 * The check step of an AUTH_LOOKUP, without side effects: 0 with the
 * canonical (lower-case) user in canon (at least AUTH_MAX_USER + 1
 * bytes) if user could name an entry of the password map, else -1 with
 * *error_r (empty, too long, a space or a control character).
 */
int auth_lookup_check(const char *user, char *canon, const char **error_r)
	__attribute__((warn_unused_result));
/* Whether uid may use the service. */
int auth_peer_allowed(const struct auth_settings *s, uid_t uid);

#endif
