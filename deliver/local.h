/*
 * local: the local delivery agent's service -- AGENT_PROTO links from
 * qmgr, alias expansion, user lookups through auth, and delivery into
 * Maildirs (lib/mail/maildir.h).  local_main.c wraps it in the daemon skeleton.
 */
#ifndef POSTERN_LOCAL_H
#define POSTERN_LOCAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ev.h"

struct local_settings {
	const char *mail_dir;		/* the mail store */
	const char *hostname;		/* for Maildir file names */
	const char *auth_socket;	/* run_dir/auth */
	const char *virtual_domains;	/* map specs; "" for none */
	const char *aliases;
	const char *virtual_mailboxes;
	unsigned max_depth;		/* alias_max_depth */
	char delim;			/* recipient_delimiter, '\0' for none */
	int folder_delivery;		/* user+tag into folder .tag if it exists */
	size_t maildir_cache;		/* Maildirs kept open (0: none) */
	uint64_t auth_timeout_ms;
	const uid_t *peers;		/* uids allowed to connect (copied) */
	size_t npeers;
};

struct local_server;

/* Open the maps and the mail store and start the service.  0 with
 * *srv_r, or -1 with *error_r. */
int local_server_new(struct ev_loop *loop, const struct local_settings *s,
    struct local_server **srv_r, const char **error_r)
	__attribute__((warn_unused_result));
/* A connection on the agent socket: checks the peer, then serves it
 * (the server owns fd). */
void local_server_accept(struct local_server *srv, int fd);
/* Connections open. */
size_t local_server_active(const struct local_server *srv);
/* Close every connection (requests in flight are dropped: qmgr treats
 * them as temporary failures). */
void local_server_stop(struct local_server *srv);
/* The process retires (SIGHUP, max_sessions): close the cached Maildirs
 * and cache no more; links still open are served to the end. */
void local_server_retire(struct local_server *srv);
void local_server_free(struct local_server **srvp);

/*
 * Split addr into the address without its +tag (domain folded to lower
 * case; malloc'd, *base_r) and the tag (malloc'd or NULL, *tag_r).  A
 * delimiter at the start of the local part is not a tag.
 */
void local_split_tag(char delim, const char *addr, char **base_r, char **tag_r);

#endif
