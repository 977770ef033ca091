/*
 * sasl: the server side of SASL PLAIN (RFC 4616) and LOGIN, shared by
 * smtpd, pop3d and imapd: base64 (RFC 4648) and splitting the PLAIN
 * message.  The network daemons hand the results to the auth service.
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

#endif
