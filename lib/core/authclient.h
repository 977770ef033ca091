/*
 * authclient: how smtpd, pop3d and imapd ask the auth service.  One
 * client per process keeps one link to run_dir/auth (reconnecting when it
 * drops) and multiplexes any number of outstanding requests by id: logins
 * (auth_client_request) and user lookups (auth_client_lookup) alike.
 */
#ifndef POSTERN_AUTHCLIENT_H
#define POSTERN_AUTHCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ev.h"

struct auth_client;
struct auth_pending;

struct auth_request {
	const char *service;	/* "smtp", "pop3", "imap" */
	const char *mechanism;	/* "PLAIN", "LOGIN", "USER" */
	const char *user;
	const void *password;
	size_t password_len;
	const char *client;	/* IP address text */
	int tls;
};

enum auth_result {
	AUTH_RESULT_OK,
	AUTH_RESULT_FAIL,	/* bad credentials: 535 5.7.8 / -ERR [AUTH] / NO */
	AUTH_RESULT_TEMP,	/* service unavailable: 454 4.7.0 / [SYS/TEMP] */
};

/* The answer.  user/mailbox are valid only during the call (NULL unless
 * OK); reason is for the log. */
typedef void auth_done_fn(enum auth_result result, const char *user,
    const char *mailbox, uint64_t quota, const char *reason, void *arg);

/* A client for the service at socket_path (connects lazily). */
struct auth_client *auth_client_new(struct ev_loop *loop, const char *socket_path);
/* Fail every outstanding request with AUTH_RESULT_TEMP (without calling
 * back), close the link, free, set *cp = NULL. */
void auth_client_free(struct auth_client **cp);
/*
 * Send a request; done() is called exactly once, later, from the loop
 * (never from inside this call) -- unless the request is cancelled first.
 * Answers AUTH_RESULT_TEMP if the service cannot be reached or does not
 * answer within timeout_ms.  Returns a handle for auth_client_cancel().
 */
struct auth_pending *auth_client_request(struct auth_client *c,
    const struct auth_request *req, uint64_t timeout_ms, auth_done_fn *done, void *arg);

/*
 * The answer to a lookup.  result is AUTH_RESULT_OK when the user
 * database answered (found says whether the user exists; user, mailbox,
 * quota and enabled as in authproto.h's AUTH_USER), or AUTH_RESULT_TEMP
 * when it could not (found 0, user and mailbox NULL).  Never
 * AUTH_RESULT_FAIL.  Strings are valid only during the call; reason is
 * for the log.
 */
typedef void auth_lookup_fn(enum auth_result result, int found, const char *user,
    const char *mailbox, uint64_t quota, int enabled, const char *reason, void *arg);

/*
 * Ask whether user exists in the user database (no password: for
 * recipient validation).  A name the service could never know (empty,
 * longer than AUTH_MAX_USER) is answered "not found" without asking.
 * done() is called as for auth_client_request(); the handle is cancelled
 * with auth_client_cancel() like any other.
 */
struct auth_pending *auth_client_lookup(struct auth_client *c, const char *user,
    uint64_t timeout_ms, auth_lookup_fn *done, void *arg);
/* Forget a request or lookup whose session went away; done() will not be
 * called. */
void auth_client_cancel(struct auth_client *c, struct auth_pending *p);

#endif
