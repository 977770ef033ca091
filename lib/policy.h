/*
 * policy: who may send what to whom through smtpd.  Decides, per MAIL
 * FROM and RCPT TO, from the maps (virtual_domains, aliases,
 * virtual_mailboxes, relay_domains, sender_access, recipient_access),
 * mynetworks, the client's authentication, and the user database behind
 * the auth service (whether a local user exists -- smtpd never reads
 * password hashes).
 *
 * Recipient rules, in order:
 *   1. recipient_access: REJECT [text] -> 554 5.7.1, DISCARD -> accepted
 *      and dropped, OK -> skip relay control (not local validation).
 *   2. A local domain (virtual_domains): the address, with a +tag removed
 *      (recipient_delimiter), must expand through aliases to final
 *      addresses that each exist (a user known to the user database, or
 *      a virtual_mailboxes entry) or are in other domains; else
 *      550 5.1.1.  Never accept-then-bounce for local domains.
 *   3. relay_domains: accepted.
 *   4. Otherwise relaying: only for authenticated clients and clients in
 *      mynetworks; else 554 5.7.1 Relay access denied.
 * Sender rules: sender_access (REJECT/DISCARD/OK), and on submission with
 * sender-login matching the authenticated user may only use its own
 * address (or the null sender): else 553 5.7.1.
 *
 * Decisions that need the user database are asynchronous; done() is
 * always called from the loop, never inside the check call.
 */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "ev.h"

struct policy;
struct policy_pending;

enum policy_verdict {
	POLICY_ACCEPT,
	POLICY_REJECT,		/* permanent: code 5xx */
	POLICY_TEMPFAIL,	/* temporary: 4xx (a map or auth unreadable) */
	POLICY_DISCARD,		/* accept and drop silently */
};

struct policy_result {
	enum policy_verdict verdict;
	int code;		/* 250, 550, 554, 451, ... */
	char esc[8];		/* "5.1.1" */
	char text[256];		/* reply text */
	char final[320];	/* for accepted local recipients: the address
				 * with +tag removed (else "") */
};

struct policy_client {
	const struct sockaddr *addr;	/* the peer */
	const char *auth_user;		/* NULL unless authenticated */
	int submission;			/* port 587/465: sender-login rules */
};

/* Open the maps and parse mynetworks from the global config.  0, or -1
 * with *error_r.  auth_socket is run_dir/auth. */
int policy_open(const struct cfg_section *global, struct ev_loop *loop,
    const char *auth_socket, struct policy **p_r, const char **error_r)
	__attribute__((warn_unused_result));
void policy_close(struct policy **pp);

typedef void policy_done_fn(const struct policy_result *r, void *arg);

/* Decide about a sender / a recipient; returns a handle to cancel with. */
struct policy_pending *policy_check_sender(struct policy *p,
    const struct policy_client *c, const char *sender, policy_done_fn *done, void *arg);
struct policy_pending *policy_check_rcpt(struct policy *p,
    const struct policy_client *c, const char *rcpt, policy_done_fn *done, void *arg);
/* The session went away: done() will not be called. */
void policy_cancel(struct policy *p, struct policy_pending *pending);

/* Whether the client address is in mynetworks. */
int policy_in_mynetworks(const struct policy *p, const struct sockaddr *addr);

#endif
