/*
 * pop3d: the POP3 server's shared declarations.  One struct pop3d per
 * process (settings, TLS context, connection counts, the auth client,
 * the mail store's directory fd, the open sessions and the scratch
 * buffers of the message streamer) and one struct pop3d_session per
 * connection, the owner of its lib/core/session.
 *
 * The code is split by job: main.c is the table of contents (daemon
 * hooks), session.c POP3's side of lib/core/session (the hooks, the reply
 * syntax, refusals) and the streaming of RETR/TOP and listings, cmd.c
 * the proceed step of each command
 * (the parser and the checks are pop3proto.c's, pure), job.c the login
 * scan and QUIT's UPDATE on a pool of threads.
 */
#ifndef POSTERN_POP3D_H
#define POSTERN_POP3D_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "daemon.h"
#include "ev.h"
#include "maildir.h"
#include "pop3proto.h"
#include "sasl.h"
#include "session.h"

struct connlimit;
struct auth_client;

/* The lock file a POP3 session holds in the Maildir. */
#define POP3D_LOCK_NAME "postern-pop3.lock"
/* RETR/TOP read the message file in chunks of this size ... */
#define POP3D_CHUNK 65536
/* ... and read the next one only while less than this is unsent. */
#define POP3D_OUTPUT_PAUSE 65536
/* Threads for the mailbox jobs (login scan, UPDATE) of one process ... */
#define POP3D_WORKERS 4
/* ... and the unlinks or renames an UPDATE does before it requeues. */
#define POP3D_UPDATE_CHUNK 500

/* Settings read once from the config. */
struct pop3d_settings {
	char *mail_dir;
	uint64_t timeout_ms;		/* idle timeout (RFC 1939: >= 10 min) */
	uint64_t auth_timeout_ms;	/* for the auth service's answer */
	unsigned max_errors;		/* refused commands in a row before closing */
	unsigned login_attempts;	/* failed logins before closing */
	unsigned max_conns;
	unsigned max_conns_ip;		/* 0: no limit */
	int move_new;			/* move new/ to cur/ at login */
	int loopback_secure;		/* a loopback client counts as secure */
	int plaintext_auth;		/* logins allowed without TLS anywhere */
};

struct worker;
struct pop3d_job;

/* The process's state (daemon->ctx). */
struct pop3d {
	struct daemon *d;
	struct pop3d_settings set;
	SSL_CTX *tls;			/* NULL: no TLS configured */
	struct connlimit *conns;
	struct auth_client *auth;
	int storefd;			/* mail_dir, -1 until opened */
	struct session_registry sessions;	/* every open session */
	char *chunk;			/* POP3D_CHUNK bytes read from a file */
	struct buf out;			/* the export of one chunk */
	struct worker *pool;		/* the mailbox jobs' threads (job.c) */
	size_t njobs;			/* queued or running */
	int stopping;			/* SIGTERM: start no more jobs */
};

/* A message (RETR, TOP) or a listing (LIST, UIDL) being streamed. */
struct sending {
	int uidl;			/* the listing is UIDL's, not LIST's */
	size_t next;			/* listing: the next message */
	int fd;				/* the message file, -1 when idle */
	size_t index;			/* the message (0-based) */
	struct mailbox_export x;
	int top;			/* TOP: not counted as retrieved */
};

/* One POP3 session: the state around its lib/core/session. */
struct pop3d_session {
	struct pop3d *pd;
	struct session *ss;		/* the connection: id, peer, stream */

	/* AUTHORIZATION (reset by STLS). */
	int in_auth;			/* lines are SASL responses */
	char *user;			/* USER's argument, or the user being verified */
	struct sasl_server sasl;	/* the AUTH exchange under way */
	char mech[POP3_MECH_MAX + 1];	/* "USER", "PLAIN", "LOGIN" */
	unsigned errors;		/* refusals since the last good command */
	unsigned nerrors;		/* refusals in all, for the log */
	unsigned failed_logins;

	/* TRANSACTION. */
	enum pop3_state pstate;
	char *login;			/* the canonical user after login */
	struct mailbox *mb;
	size_t nmsgs;
	unsigned char *deleted;		/* nmsgs flags */
	unsigned char *retrieved;	/* nmsgs flags: RETR sent it */
	struct sending snd;
	struct pop3d_job *job;		/* the scan or UPDATE being done for us */

	/* Counts for the disconnect line. */
	unsigned nretr, ndele, ntop;
	uint64_t bytes;			/* message bytes sent */
};

/* --- session.c ------------------------------------------------------------ */

/* Queue "+OK text". */
void pop3d_ok(struct pop3d_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Queue "-ERR [CODE] text" (no brackets for POP3_CODE_NONE). */
void pop3d_err(struct pop3d_session *s, enum pop3_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Queue a refusal, log it and count it if it counts; closes at
 * pop3d_max_errors refusals in a row. */
void pop3d_refuse(struct pop3d_session *s, const struct pop3_refusal *r);
/* Queue "-ERR ..." or "+OK ..." text as is, then close after it is sent. */
void pop3d_close_after(struct pop3d_session *s, const char *line);
/* Fill the checks' view of the session. */
void pop3d_view(const struct pop3d_session *s, struct pop3_view *v);
/* Start streaming message i (0-based): RETR (body_lines -1) or TOP. */
void pop3d_send_message(struct pop3d_session *s, size_t i, int64_t body_lines);
/* Start streaming the multi-line LIST (uidl 0) or UIDL (uidl 1) of every
 * message not marked deleted. */
void pop3d_send_listing(struct pop3d_session *s, int uidl);
/* Forget the AUTHORIZATION state (after STLS). */
void pop3d_reset_auth(struct pop3d_session *s);

/* Process-wide: the session registry from the settings (post_drop), and
 * a new connection (main.c's on_accept). */
void pop3d_sessions_init(struct pop3d *pd);
void pop3d_accept(struct pop3d *pd, const struct daemon_listener *l, int fd,
    const struct sockaddr_storage *peer);

/* --- cmd.c ---------------------------------------------------------------- */

/* Handle one command line (without its line ending). */
void pop3d_cmd_dispatch(struct pop3d_session *s, const char *line, size_t len);
/* Handle one AUTH continuation line. */
void pop3d_cmd_auth_continue(struct pop3d_session *s, const char *line, size_t len);
/* Leave TRANSACTION without updating: close the mailbox (its lock). */
void pop3d_cmd_close_mailbox(struct pop3d_session *s);

/* --- job.c ---------------------------------------------------------------- */

/* Start / stop the job threads (stop: waits for the jobs running, drops
 * the queued ones; an unfinished UPDATE leaves its messages in place). */
int jobs_start(struct pop3d *pd, const char **error_r)
	__attribute__((warn_unused_result));
void jobs_stop(struct pop3d *pd);
/* Scan mb (opened and locked; the job owns it) for user's login: the
 * session waits, then gets the mailbox and its +OK, or a -ERR. */
void job_scan(struct pop3d_session *s, struct mailbox *mb, const char *user);
/* QUIT in TRANSACTION: the UPDATE, with the session's mailbox and flags;
 * the session waits, then closes with the reply. */
void job_update(struct pop3d_session *s);
/* The session is going: its job no longer reports to it. */
void job_detach(struct pop3d_session *s);

#endif
