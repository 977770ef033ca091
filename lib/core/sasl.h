/*
 * sasl: the server side of SASL (RFC 4422), shared by smtpd, pop3d and
 * imapd: one exchange over a table of mechanisms (PLAIN, RFC 4616, and
 * LOGIN now), base64 (RFC 4648) and splitting the PLAIN message.  A
 * daemon only frames the prompt ("334 " in SMTP, "+ " in POP3 and IMAP)
 * and hands the outcome to the auth service.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stddef.h>

#include "buf.h"

/* Decode base64 text (no whitespace inside, "=" padding required, "" is
 * empty) into out (replacing its contents).  0, or -1 if malformed. */
int base64_decode(const char *in, size_t len, struct buf *out)
	__attribute__((warn_unused_result));
/* Append the base64 encoding of n bytes to out.  0, or -1 past out->max. */
int base64_encode(const void *p, size_t n, struct buf *out)
	__attribute__((warn_unused_result));

/*
 * Split a decoded PLAIN message "authzid NUL authcid NUL password".  The
 * authorization identity must be empty or equal to the authentication
 * identity (no proxy logins).  0 with *user_r and *password_r pointing
 * into msg (NUL-terminated: msg is modified), or -1 with *error_r.
 */
int sasl_plain_split(struct buf *msg, const char **user_r, const char **password_r,
    size_t *password_len_r, const char **error_r) __attribute__((warn_unused_result));


/* --- The server exchange ---------------------------------------------------- */

/* What one step of an exchange produced. */
enum sasl_step {
	SASL_CHALLENGE,		/* send sasl_server.challenge, read a line */
	SASL_DONE,		/* verify sasl_server.user and .secret */
	SASL_FAILED,		/* the exchange is over: see .failure */
};

/* Why an exchange failed; the daemon maps each to its own reply. */
enum sasl_failure {
	SASL_FAIL_NONE,
	SASL_FAIL_MECHANISM,	/* not a mechanism in the table */
	SASL_FAIL_BASE64,	/* a response that is not strict base64 */
	SASL_FAIL_MESSAGE,	/* decoded, but not a valid message */
	SASL_FAIL_CANCELLED,	/* the client sent "*" */
};

struct sasl_mech;

/*
 * One exchange.  Zero it (or SASL_SERVER_INIT) before sasl_server_start;
 * free it with sasl_server_end, which wipes everything it held.
 */
struct sasl_server {
	const struct sasl_mech *mech;	/* NULL before start and after end */
	void *state;			/* the mechanism's own, mech->state_size */
	size_t max;			/* cap on a decoded response */
	struct buf in;			/* the decoded response */
	struct buf challenge;		/* the prompt, base64: after CHALLENGE */
	/* After SASL_DONE: valid until the next call or sasl_server_end. */
	const char *user;
	const char *secret;
	size_t secret_len;
	/* After SASL_FAILED. */
	enum sasl_failure failure;
	const char *error;		/* a log reason, static */
};
#define SASL_SERVER_INIT { NULL, NULL, 0, BUF_INIT, BUF_INIT, NULL, NULL, 0, SASL_FAIL_NONE, NULL }

/* 1 if name (upper case, as the daemons' parsers leave it) is a
 * mechanism the exchange offers, else 0. */
int sasl_mech_known(const char *name);
/* The name of the i-th offered mechanism (in the order a daemon lists
 * them), or NULL past the end. */
const char *sasl_mech_name(size_t i);

/*
 * Start an exchange with mechanism mech and the initial response
 * (base64, "=" for an empty one) or NULL if the client sent none.  max
 * caps a decoded response.  Any exchange s held before is ended first.
 */
enum sasl_step sasl_server_start(struct sasl_server *s, const char *mech,
    const char *initial, size_t max);
/* Feed the client's next line (base64, or "*" to cancel). */
enum sasl_step sasl_server_continue(struct sasl_server *s, const char *line, size_t len);
/* End the exchange: wipe and free what it held; s may be started again. */
void sasl_server_end(struct sasl_server *s);

#endif
