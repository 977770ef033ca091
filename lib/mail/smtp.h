/*
 * smtp: parsing SMTP commands and their arguments (RFC 5321, with the
 * ESMTP extensions postern offers: SIZE 1870, 8BITMIME 6152, SMTPUTF8
 * 6531, DSN 3461, CHUNKING 3030, AUTH 4954).  Every function here is a
 * pure *check* step: no side effects, no I/O, so unit tests and the fuzzer
 * drive it directly.  Failures come back as an SMTP reply (code, enhanced
 * status code, text) that smtpd sends as it is.
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1 limits. */
#define SMTP_MAX_LOCAL 64
#define SMTP_MAX_DOMAIN 255
#define SMTP_MAX_PATH 256	/* the whole <local@domain> path */
#define SMTP_MAX_LINE 998	/* a text line, without CRLF */
/* A command line, without CRLF.  RFC 5321 says 512 with CRLF, but its
 * extensions lengthen lines (SIZE, DSN ORCPT/ENVID, AUTH with an initial
 * response of a long password: RFC 4954 allows 12288); like Postfix we
 * accept 2048. */
#define SMTP_MAX_COMMAND 2048

enum smtp_verb {
	SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT,
	SMTP_RSET, SMTP_NOOP, SMTP_QUIT, SMTP_HELP, SMTP_VRFY, SMTP_EXPN,
	SMTP_STARTTLS, SMTP_AUTH,
	SMTP_UNKNOWN,	/* any other verb: 500 5.5.1 */
};

/* A reply to send for a refused command. */
struct smtp_reply {
	int code;		/* 501, 553, 555, ... */
	const char *esc;	/* enhanced status code, "5.5.4" */
	const char *text;	/* static text */
};

/* Fill *r and return -1, so that a refusal is one statement. */
int smtp_refuse(struct smtp_reply *r, int code, const char *esc,
    const char *text);

/* DSN NOTIFY bits (RFC 3461); 0 means not given. */
#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

enum smtp_body { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

/* What the session has offered/negotiated, which decides what parameters
 * are acceptable. */
struct smtp_ext {
	int esmtp;		/* EHLO (not HELO) was used */
	uint64_t max_size;	/* SIZE limit, 0: none */
};

struct smtp_mail {
	char *sender;		/* "local@domain", or "" for <> (malloc'd) */
	uint64_t size;		/* SIZE=, 0 if absent */
	enum smtp_body body;
	int smtputf8;
	enum smtp_ret ret;
	char *envid;		/* ENVID decoded from xtext, or NULL */
	char *auth;		/* AUTH= decoded from xtext, or NULL ("<>" kept) */
};

struct smtp_rcpt {
	char *rcpt;		/* "local@domain" (malloc'd); "postmaster" alone allowed */
	unsigned notify;	/* SMTP_NOTIFY_* bits, 0 if absent */
	char *orcpt;		/* ORCPT as given, "rfc822;" + decoded xtext, or NULL */
};

/*
 * Split a command line (without CRLF) into verb and argument.  The verb is
 * case-insensitive; *arg_r points after the verb and the following
 * spaces (or at "" if none).  Returns 0; -1 with *reply_r for a line with
 * a NUL, a non-ASCII byte in the verb, or longer than SMTP_MAX_COMMAND
 * (500 5.5.2).  MAIL/RCPT are recognised as "MAIL" followed by the rest.
 * line[len] must be a NUL (as a struct buf's data always is), so that
 * *arg_r is a C string.
 */
int smtp_parse_command(const char *line, size_t len, enum smtp_verb *verb_r,
    const char **arg_r, struct smtp_reply *reply_r) __attribute__((warn_unused_result));

/*
 * HELO/EHLO argument: a domain or an address literal ([1.2.3.4],
 * [IPv6:...]).  0, or -1 with *reply_r (501 5.5.4).
 */
int smtp_parse_helo(const char *arg, struct smtp_reply *reply_r)
	__attribute__((warn_unused_result));

/*
 * "FROM:<path> [params]" (the argument of MAIL).  Accepts the null path
 * <>, strips a source route, checks the address grammar (dot-string or
 * quoted-string local part, domain or address literal; UTF-8 in either
 * only with SMTPUTF8 given), lengths, and each parameter (known names
 * only, each at most once, valid values; SIZE over ext->max_size is
 * 552 5.3.4).  0 with *m_r filled (free with smtp_mail_free), or -1 with
 * *reply_r and *m_r untouched.
 */
int smtp_parse_mail(const char *arg, const struct smtp_ext *ext, struct smtp_mail *m_r,
    struct smtp_reply *reply_r) __attribute__((warn_unused_result));
void smtp_mail_free(struct smtp_mail *m);

/* "TO:<path> [params]" (the argument of RCPT); smtputf8 says whether the
 * transaction's MAIL had SMTPUTF8.  As smtp_parse_mail. */
int smtp_parse_rcpt(const char *arg, const struct smtp_ext *ext, int smtputf8,
    struct smtp_rcpt *r_r, struct smtp_reply *reply_r) __attribute__((warn_unused_result));
void smtp_rcpt_free(struct smtp_rcpt *r);

/* "SIZE [LAST]" (the argument of BDAT).  0 with the chunk size and last
 * flag, or -1 with *reply_r (501 5.5.4). */
int smtp_parse_bdat(const char *arg, uint64_t *size_r, int *last_r,
    struct smtp_reply *reply_r) __attribute__((warn_unused_result));

/* "MECHANISM [initial-response]" (the argument of AUTH).  *mech_r is
 * upper-cased into mech (>= 21 bytes); *initial_r points into arg or is
 * NULL.  0 or -1 with *reply_r (501 5.5.4). */
int smtp_parse_auth(const char *arg, char *mech, const char **initial_r,
    struct smtp_reply *reply_r) __attribute__((warn_unused_result));

/* xtext (RFC 3461 4): decode into a malloc'd string, or NULL if
 * malformed (or if it would decode to a NUL); and encode (upper-case
 * hex, malloc'd). */
char *smtp_xtext_decode(const char *s, size_t len);
char *smtp_xtext_encode(const char *s);

/* Whether s is valid UTF-8 (no overlongs, no surrogates, no NUL). */
int smtp_utf8_valid(const char *s, size_t len);

/* Whether the len bytes at line start a header field (RFC 5322 2.2): a
 * name of printable ASCII other than ':', then ':'. */
int smtp_is_field(const char *line, size_t len);

#endif
