/*
 * smtpd: the SMTP listener's shared declarations.  One struct smtpd per
 * process (the settings, the TLS context, the policy, connection counts
 * and the auth client, the registry of open sessions and the group
 * committer of finished messages) and one struct smtpd_session per
 * connection, the owner of its lib/core/session.
 *
 * The code is split by job: main.c is the table of contents (daemon
 * hooks), session.c SMTP's side of lib/core/session (the hooks, the reply
 * syntax, refusals and the error limit, the resets),
 * cmd.c the command table with each verb's check and proceed steps,
 * data.c message content (DATA and BDAT), the Received header, the spool
 * and the group commit, body.c the pure byte scanner data.c feeds.
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "body.h"
#include "buf.h"
#include "daemon.h"
#include "ev.h"
#include "ipc.h"
#include "log.h"
#include "qfile.h"
#include "sasl.h"
#include "session.h"
#include "smtp.h"

struct policy;
struct policy_pending;
struct policy_client;
struct connlimit;
struct auth_client;
struct committer;

/* What a listener is for, from its listen tag. */
enum smtpd_kind {
	KIND_SMTP,		/* port 25: MX, AUTH only after STARTTLS */
	KIND_SUBMISSION,	/* port 587: STARTTLS and AUTH before MAIL */
	KIND_SMTPS,		/* port 465: implicit TLS, AUTH before MAIL */
};

/* Settings read once from the config. */
struct smtpd_settings {
	char *hostname;		/* for the greeting, Received, Message-ID */
	char *banner;		/* the 220 text */
	char *incoming;		/* spool_dir/incoming */
	char *qmgr_socket;	/* run_dir/qmgr */
	uint64_t max_size;	/* SIZE, bytes */
	uint64_t reserve;	/* queue_minfree in effect, bytes */
	uint64_t max_envelope;	/* envelope bytes per transaction */
	unsigned max_rcpts;
	unsigned rcpt_overshoot;	/* excess RCPTs before they count as errors */
	unsigned max_errors;
	int bare_lf_normalize;		/* smtpd_bare_lf = normalize */
	int bare_lf_trusted_normalize;	/* smtpd_bare_lf_trusted = normalize */
	unsigned max_conns;
	unsigned max_conns_ip;	/* 0: no limit */
	uint64_t timeout_ms;	/* between commands */
	uint64_t data_timeout_ms;	/* inside DATA / BDAT */
	uint64_t auth_timeout_ms;	/* for the auth service's answer */
	int sender_login_match;		/* submission: own addresses only */
};

/* The process's state (daemon->ctx). */
struct smtpd {
	struct daemon *d;
	struct smtpd_settings set;
	SSL_CTX *tls;			/* NULL: no TLS configured */
	struct policy *policy;
	struct connlimit *conns;
	struct auth_client *auth;
	struct session_registry sessions;	/* every open session */
	/* The group commit of finished messages (lib/core/commit; data.c). */
	struct committer *committer;
	/* The spool's free space (bytes, inodes) as read at space_ms (loop
	 * time): at most once a second, not at every MAIL. */
	uint64_t space_bytes, space_inodes, space_ms;
	int space_known;
	/* Spool errors repeat for every message while the disk is full:
	 * one line per kind and interval (lib/core/log.h). */
	struct log_limit loglimit;
};

/* A message being received (DATA or BDAT). */
struct body {
	struct qfile_writer *w;	/* NULL when discarding or failed */
	int discard;		/* every recipient discarded: write nothing */
	struct body_scan scan;	/* line ends, dots, bare CR and LF */
	enum body_err err;
	uint64_t size;		/* bytes of content, as on the wire */
	int in_header;		/* still in the header section */
	int fix_header;		/* add Date/Message-ID when missing */
	int have_date, have_msgid;
	struct buf hline;	/* the current header line (fix_header) */
	int bdat_last;		/* the current chunk is the last */
	int bdat_skip;		/* chunk is read and thrown away */
	struct smtp_reply bdat_reply;	/* reply after a skipped chunk */
};

/* One SMTP session: the state around its lib/core/session. */
struct smtpd_session {
	struct smtpd *sd;
	struct session *ss;		/* the connection: id, peer, stream */
	enum smtpd_kind kind;
	int in_auth;			/* lines are SASL responses */

	/* Session (reset by STARTTLS). */
	char *helo;			/* NULL until HELO/EHLO */
	int esmtp;
	char *auth_user;		/* after AUTH */
	char *login_user;		/* the user being verified, for the log */
	struct sasl_server sasl;	/* the AUTH exchange under way */
	char auth_mech[24];
	unsigned errors;

	/* Transaction (reset by RSET, HELO, after each message). */
	int have_mail;
	struct envelope env;		/* sender, parameters, recipients */
	uint64_t env_bytes;		/* memory env's strings take (about) */
	size_t nrcpt_ok;		/* accepted, including discarded */
	unsigned rcpt_overshoot;	/* RCPTs refused for the recipient limits */
	int sender_discard;		/* sender_access said DISCARD */
	int bdat_mode;			/* BDAT used: DATA is refused */
	struct body body;

	/* Async steps in flight. */
	struct policy_pending *pp;
	char *pending_rcpt;		/* RCPT being checked */
	unsigned pending_notify;
	char *pending_orcpt;
	struct smtp_mail pending_mail;	/* MAIL being checked */

	/* Counts for the disconnect line. */
	unsigned nmsgs, nrcpts_total, nrejects;
};

/* --- session.c ------------------------------------------------------------ */

/* Queue a one-line reply "CODE ESC TEXT" (esc may be NULL: no enhanced
 * code, for the greeting and HELO/EHLO). */
void smtpd_reply(struct smtpd_session *s, int code, const char *esc,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Queue a refusal from the parser or policy, log it and count the error
 * if count says so; may queue 421 and close past smtpd_max_errors. */
void smtpd_refuse(struct smtpd_session *s, const struct smtp_reply *r, int count);
/* Queue the reply, then close after it is sent. */
void smtpd_close_after(struct smtpd_session *s, int code, const char *esc,
    const char *text);
/* Forget the transaction (envelope, writer, pending checks). */
void smtpd_reset_transaction(struct smtpd_session *s);
/* Forget the whole session state (after STARTTLS). */
void smtpd_reset_all(struct smtpd_session *s);
/* The policy's view of the client. */
void smtpd_policy_client(const struct smtpd_session *s, struct policy_client *c);

/* Process-wide: the session registry from the settings (post_drop), and
 * a new connection (main.c's on_accept). */
void smtpd_sessions_init(struct smtpd *sd);
void smtpd_accept(struct smtpd *sd, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer);

/* --- cmd.c ---------------------------------------------------------------- */

/* Handle one command line (without its line ending). */
void smtpd_cmd_dispatch(struct smtpd_session *s, const char *line, size_t len);
/* Handle one AUTH continuation line. */
void smtpd_cmd_auth_continue(struct smtpd_session *s, const char *line, size_t len);
/* Cancel async checks a closing session still has pending. */
void smtpd_cmd_cancel_pending(struct smtpd_session *s);

/* --- data.c --------------------------------------------------------------- */

/* Whether the spool keeps queue_minfree free with a message of size bytes
 * (0: not declared) more: 0, or -1 with *r (452 4.3.1; 451 4.3.0 if the
 * free space cannot be read).  The space is read at most once a second. */
int data_spool_room(struct smtpd_session *s, uint64_t size, struct smtp_reply *r);
/* Start a message after DATA (bdat 0) or the first BDAT (bdat 1): open the
 * queue file and write the Received header.  0, or -1 with *r set. */
int data_begin(struct smtpd_session *s, int bdat, struct smtp_reply *r);
/* lib/core/session's raw input after DATA's 354: feed the parser; at the end
 * of the content the message goes to the commit or is refused, and the
 * session reads commands again.  Returns the bytes used. */
size_t data_bytes(struct session *ss, const char *p, size_t n);
/* The same for a BDAT chunk (all of it is used, or skipped), and the
 * chunk's end: its reply, or the message's after the last chunk. */
size_t bdat_bytes(struct session *ss, const char *p, size_t n);
void bdat_end(struct session *ss);
/* Tell qmgr (run_dir/qmgr) that these messages are in incoming/new:
 * best effort, never blocking; a no-op while qmgr's socket is absent. */
void smtpd_notify_qmgr(struct smtpd *sd, const char *const *ids, size_t n);
/* Throw away the message in progress (nothing stays behind). */
void data_abort(struct smtpd_session *s);
/* Remove a session from the pending commit (its writer is aborted). */
void data_unbatch(struct smtpd_session *s);
/* Start the group commit and its sync thread (post_drop).  0 or -1. */
int data_committer_start(struct smtpd *sd, const char **error_r)
	__attribute__((warn_unused_result));

#endif
