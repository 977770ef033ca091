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
 * always called from the loop, never inside the check call.  The user
 * database's "this user exists" answers are remembered per process for
 * smtpd_user_cache_time (in a fixed-size table, so bounded); "no such
 * user" and failures are never remembered.
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

struct auth_client;

/* Open the maps and parse mynetworks from the global config.  0, or -1
 * with *error_r.  auth is the process's client of the auth service (for
 * the user database); the policy borrows it, so it must outlive the
 * policy (close the policy first). */
int policy_open(const struct cfg_section *global, struct ev_loop *loop,
    struct auth_client *auth, struct policy **p_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Cancel every pending check (nobody is called back), free, set *pp = NULL. */
void policy_close(struct policy **pp);

typedef void policy_done_fn(const struct policy_result *r, void *arg);

/* Decide about a sender / a recipient; returns a handle to cancel with. */
struct policy_pending *policy_check_sender(struct policy *p,
    const struct policy_client *c, const char *sender, policy_done_fn *done, void *arg);
struct policy_pending *policy_check_rcpt(struct policy *p,
    const struct policy_client *c, const char *rcpt, policy_done_fn *done, void *arg);
/* The session went away: done() will not be called. */
void policy_cancel(struct policy *p, struct policy_pending *pending);

/*
 * The same decisions without the detour through the loop, for a caller
 * that can take an answer at once (smtpd: a pipelined group is then
 * answered in one write, and no wait toggles its socket's watch).
 * policy_decide_sender() always decides at once (sender rules need no
 * lookup).  policy_check_rcpt_now() decides at once unless the user
 * database must be asked: NULL with *r filled (done() is never called),
 * or the pending check, exactly as from policy_check_rcpt().
 */
void policy_decide_sender(struct policy *p, const struct policy_client *c,
    const char *sender, struct policy_result *r);
struct policy_pending *policy_check_rcpt_now(struct policy *p,
    const struct policy_client *c, const char *rcpt, struct policy_result *r,
    policy_done_fn *done, void *arg);

/* Whether the client address is in mynetworks. */
int policy_in_mynetworks(const struct policy *p, const struct sockaddr *addr);

#endif
