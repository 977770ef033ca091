/*
 * dsn: delivery status notifications (RFC 3461, 3464, 6522, 3834, 6533).
 * qmgr decides with dsn_route() whether and to whom a report is due, then
 * writes the report with dsn_write() into a new queue file.
 *
 * Who gets a report (dsn_route):
 *   - a message whose sender is the double-bounce address (the envelope
 *     sender of postmaster notices) gets none: a bounce never loops;
 *   - a message from the null sender <> that fails gets a notice to the
 *     postmaster (a "double bounce"), whatever its NOTIFY; delays and
 *     successes of <> mail are never reported;
 *   - otherwise the sender, when NOTIFY asks for it: NOTIFY=NEVER never;
 *     NOTIFY absent: failures, and delays when delay warnings are on;
 *     NOTIFY=FAILURE: failures; NOTIFY=DELAY: delays, but only when delay
 *     warnings are on (RFC 3461 makes delay notices optional);
 *     NOTIFY=SUCCESS: delivered, relayed (to a non-DSN MTA) and expanded.
 * The caller sends a report to the sender with the null envelope sender
 * (RFC 5321 6.1), and a postmaster notice with the double-bounce address
 * as envelope sender, so that its own failure is dropped (logged).
 *
 * The report (dsn_write), LF line endings, 7-bit headers except where an
 * address is non-ASCII (then the caller must queue it with SMTPUTF8):
 *
 *   From: Mail Delivery System <MAILER-DAEMON@HOST>
 *   To: <SENDER>
 *   Subject: Undelivered Mail Returned to Sender       (any failed)
 *            Delayed Mail (still being retried)        (else any delayed)
 *            Successful Mail Delivery Report           (else)
 *   Date, Message-ID: <ARRIVALSTAMP.QUEUEID.RANDOM@HOST>
 *   Auto-Submitted: auto-replied
 *   MIME-Version: 1.0
 *   Content-Type: multipart/report; report-type=delivery-status;
 *    boundary="..."
 *
 *   part 1  text/plain; charset=utf-8: an explanation, then each recipient
 *           as "<addr>" followed by indented lines (action, status,
 *           remote host, diagnostic, retry limit).
 *   part 2  message/delivery-status (RFC 3464), all ASCII:
 *             Reporting-MTA: dns; HOST
 *             Original-Envelope-Id: ENVID (xtext), when given
 *             Arrival-Date: DATE
 *           then per recipient, after a blank line:
 *             Original-Recipient: TYPE;ADDR, when ORCPT was given
 *             Final-Recipient: rfc822; ADDR
 *             Action: failed|delayed|delivered|relayed|expanded
 *             Status: C.S.D (the class always matches the action:
 *                     5 failed, 4 delayed, 2 otherwise; a missing or
 *                     malformed status becomes C.0.0)
 *             Remote-MTA: dns; HOST, when known
 *             Diagnostic-Code: smtp; TEXT  (X-Postern; TEXT for a local
 *                     reason), when known; folded at spaces
 *             Last-Attempt-Date: DATE, when known
 *             Will-Retry-Until: DATE, delayed only, when known
 *           A non-ASCII address (SMTPUTF8) is written "utf-8; " in the
 *           utf-8-addr-xtext form of RFC 6533 3: printable ASCII except
 *           SP, '\', '+' and '=' as is, every other code point as
 *           \x{HEX} (invalid UTF-8 bytes become U+FFFD).  A utf-8 ORCPT is
 *           always written in that form.
 *   part 3  the returned message, when one is available (msg_fd >= 0):
 *             message/rfc822        the whole message, when it fits in
 *                                   return_max and RET=FULL (on a report
 *                                   with a failure or delay), or RET was
 *                                   not given and some recipient failed;
 *             text/rfc822-headers   its header section otherwise (RET=HDRS,
 *                                   too big, RET absent on a delay report,
 *                                   or a report of successes only, whatever
 *                                   RET says: RFC 3461 4.3 asks for the
 *                                   message in "failed" DSNs), cut after
 *                                   the last whole line within return_max;
 *           with Content-Transfer-Encoding: 8bit when it has 8-bit bytes.
 *
 * Dates are RFC 5322 in UTC.  The boundary is 128 random bits, and is
 * also checked against every line of the returned content (a new one is
 * drawn on a match), so nothing in it can end a part.  Untrusted strings
 * (addresses, ORCPT, ENVID, remote host names, diagnostics) are stripped
 * of control characters and capped, so none can add a header line or a
 * line that starts with "-"; every line this module writes itself starts
 * with a letter, "<" or a space.  Memory is bounded: the message is read
 * with pread in 64 KiB chunks and streamed to the sink.
 */
#ifndef POSTERN_DSN_H
#define POSTERN_DSN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "qfile.h"

/* What happened to a recipient (RFC 3464 2.3.3 Action). */
enum dsn_action {
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,	/* handed to an MTA that does not do DSN */
	DSN_ACTION_EXPANDED,	/* alias/list expansion, NOTIFY=SUCCESS */
};

/* Where a report goes (dsn_route). */
enum dsn_route {
	DSN_NONE,		/* no report */
	DSN_TO_SENDER,		/* to the envelope sender, from <> */
	DSN_TO_POSTMASTER,	/* to the postmaster, from the double-bounce address */
};

/* The local part of the double-bounce address; the caller appends
 * "@" and its host name. */
#define DSN_DOUBLE_BOUNCE_LOCAL "double-bounce"

/* Default cap on the bytes of returned content (Postfix's is 50000). */
#define DSN_RETURN_MAX_DEFAULT ((size_t)100 * 1024)

/*
 * Whether a recipient's NOTIFY (SMTP_NOTIFY_* bits, 0: absent) asks for a
 * report of this action, given whether delay warnings are configured
 * (delay_warning nonzero).  1 or 0.  Ignores who the sender is.
 */
int dsn_notify_wants(unsigned notify, enum dsn_action action, int delay_warning);

/*
 * Whether and to whom a report of this action on one recipient goes.
 * sender is the envelope sender ("" for <>); double_bounce is this
 * host's double-bounce address (DSN_DOUBLE_BOUNCE_LOCAL@host, compared
 * case-insensitively), or NULL.  The rules are at the top of this file.
 */
enum dsn_route dsn_route(const char *sender, const char *double_bounce,
    unsigned notify, enum dsn_action action, int delay_warning);

/* One recipient to report on.  All strings are borrowed, may be NULL
 * unless stated, and may hold anything (they are sanitized). */
struct dsn_rcpt {
	const struct qrcpt *rcpt;	/* address and ORCPT (required) */
	enum dsn_action action;
	const char *status;		/* "5.1.1"; NULL: derived from action */
	const char *diagnostic;		/* reply text or local reason */
	int diag_smtp;			/* 1: diagnostic is an SMTP reply */
	const char *remote_mta;		/* host name of the remote MTA */
	time_t last_attempt;		/* 0: unknown */
	time_t retry_until;		/* delayed: give up time; 0: unknown */
};

/* What to report on, and where the original message is. */
struct dsn_request {
	const struct envelope *env;	/* id, arrival, sender, envid, ret, smtputf8 */
	const struct dsn_rcpt *rcpts;	/* at least one */
	size_t nrcpts;
	const char *reporting_mta;	/* this host's name (required) */
	const char *to;			/* To: address; NULL: env->sender */
	time_t now;			/* Date:; 0: time(NULL) */
	int msg_fd;			/* the original message; -1: none returned */
	off_t msg_offset;		/* where it starts in msg_fd */
	uint64_t msg_len;		/* its length */
	size_t return_max;		/* cap on returned bytes; 0: the default */
	const char *boundary;		/* tests only: a fixed boundary; NULL: random */
};

/* What kind of content dsn_write() returned. */
enum dsn_returned {
	DSN_RETURNED_NONE,
	DSN_RETURNED_HEADERS,
	DSN_RETURNED_FULL,
};

/* Facts about a written report that the caller needs to queue it. */
struct dsn_result {
	uint64_t size;			/* bytes written */
	int body_8bit;			/* needs BODY=8BITMIME */
	int smtputf8;			/* needs SMTPUTF8 (a non-ASCII address
					 * in a header, or UTF-8 headers returned) */
	enum dsn_returned returned;
};

/* The sink: write all n bytes, 0 on success, -1 on failure.
 * qfile_write() fits with a one-line wrapper. */
typedef int dsn_write_fn(void *ctx, const void *p, size_t n);

/*
 * Write the report for req to fn(ctx, ...).  0 with *result_r filled, or
 * -1 with *error_r (no recipient, empty To, bad reporting_mta, a read
 * error or short read of the message, a sink failure); on -1 part of the
 * report may have been written and the caller discards it.
 */
int dsn_write(const struct dsn_request *req, dsn_write_fn *fn, void *ctx,
    struct dsn_result *result_r, const char **error_r)
	__attribute__((warn_unused_result));

/* The same into fd (write(2), retried on EINTR and short writes). */
int dsn_write_fd(const struct dsn_request *req, int fd,
    struct dsn_result *result_r, const char **error_r)
	__attribute__((warn_unused_result));

/* The Action field's keyword for action ("failed", ...). */
const char *dsn_action_name(enum dsn_action action);

#endif
