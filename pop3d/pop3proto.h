/*
 * pop3proto: the POP3 command parser and each command's *check* step,
 * as pure functions of a line and a small view of the session (no I/O,
 * no allocation), so unit tests and the fuzzer (tests/fuzz/fuzz_pop3.c)
 * drive them directly.  pop3d's session code parses a line, checks it
 * against its view, and only then proceeds (cmd.c).
 *
 * Commands (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH):
 * a keyword of 3 or 4 letters, case-insensitive, then arguments
 * separated by single spaces.  USER and PASS take the rest of the line
 * (a password may contain spaces); AUTH a mechanism and an optional
 * initial response.
 */
#ifndef POSTERN_POP3PROTO_H
#define POSTERN_POP3PROTO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Line limits.  RFC 2449 caps a command at 255 octets with its CRLF;
 * POP3_MAX_COMMAND tolerates twice that for sloppy clients.  AUTH (a
 * SASL initial response) and PASS may be longer: a PLAIN response for a
 * 255-byte user and a 1024-byte password is about 1,720 base64 octets,
 * so those two and SASL continuation lines may reach POP3_MAX_LINE.
 */
#define POP3_MAX_COMMAND 512
#define POP3_MAX_LINE 2048
/* The longest SASL mechanism name we keep (RFC 4422: 20). */
#define POP3_MECH_MAX 20

enum pop3_verb {
	POP3_USER,
	POP3_PASS,
	POP3_AUTH,
	POP3_STLS,
	POP3_CAPA,
	POP3_QUIT,
	POP3_STAT,
	POP3_LIST,
	POP3_RETR,
	POP3_DELE,
	POP3_NOOP,
	POP3_RSET,
	POP3_TOP,
	POP3_UIDL,
	POP3_APOP,
	POP3_UNKNOWN,
};

/* The protocol states (RFC 1939 section 3). */
enum pop3_state {
	POP3_AUTHORIZATION,
	POP3_TRANSACTION,
};

/* RFC 2449 / RFC 3206 response codes. */
enum pop3_code {
	POP3_CODE_NONE,
	POP3_CODE_IN_USE,	/* [IN-USE] */
	POP3_CODE_AUTH,		/* [AUTH] */
	POP3_CODE_SYS_TEMP,	/* [SYS/TEMP] */
	POP3_CODE_SYS_PERM,	/* [SYS/PERM] */
};

/* A refusal: the -ERR line's code and text (static storage). */
struct pop3_refusal {
	enum pop3_code code;
	const char *text;
	int counts;		/* counts toward pop3d_max_errors */
};

/* A parsed command.  Pointers point into the parsed line. */
struct pop3_cmd {
	enum pop3_verb verb;
	const char *name;	/* the table's name of the verb ("LIST") */
	const char *arg;	/* USER/PASS: the rest of the line; else "" */
	int has_msg;		/* a message number was given */
	uint32_t msg;		/* 1-based message number */
	int64_t lines;		/* TOP: body lines */
	char mech[POP3_MECH_MAX + 1];	/* AUTH: upper-cased mechanism, "" */
	const char *initial;	/* AUTH: initial response, or NULL */
};

/* What the checks know of a session. */
struct pop3_view {
	enum pop3_state state;
	int tls;		/* TLS is active */
	int tls_available;	/* a certificate is configured (STLS) */
	int plaintext_ok;	/* USER/PASS and AUTH allowed here */
	int have_user;		/* USER was accepted: PASS may follow */
	size_t nmsgs;		/* messages in the maildrop */
	const unsigned char *deleted;	/* nmsgs flags: marked deleted */
};

/* The table flags of a verb. */
#define POP3_F_AUTHZ	0x01	/* allowed in AUTHORIZATION */
#define POP3_F_TRANS	0x02	/* allowed in TRANSACTION */
#define POP3_F_MSG	0x04	/* takes a message number */
#define POP3_F_MSG_OPT	0x08	/* ... which may be absent */

/* The name and flags of a verb. */
const char *pop3_verb_name(enum pop3_verb v);
unsigned pop3_verb_flags(enum pop3_verb v);

/*
 * Parse one command line (without its line ending; len bytes, may hold
 * anything, in a buffer of at least len + 1 bytes).  The line buffer is
 * modified (arguments are NUL-terminated in place).  0 with *c filled, or -1 with *r (syntax errors, NUL bytes,
 * overlong lines; an unknown verb parses as POP3_UNKNOWN and is refused
 * by pop3_check).
 */
int pop3_parse(char *line, size_t len, struct pop3_cmd *c, struct pop3_refusal *r)
	__attribute__((warn_unused_result));

/*
 * The check step: whether the parsed command may run in the session v
 * describes (state, TLS, plaintext policy, message numbers that exist
 * and are not deleted).  No side effects.  0, or -1 with *r.
 */
int pop3_check(const struct pop3_view *v, const struct pop3_cmd *c,
    struct pop3_refusal *r) __attribute__((warn_unused_result));

/* The response code's text without brackets ("IN-USE"), or NULL. */
const char *pop3_code_name(enum pop3_code code);

#endif
