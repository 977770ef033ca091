/*
 * qmgr: the queue manager's shared declarations.  The in-memory queue is
 * small per message (no bodies, no envelope strings but what the
 * scheduler needs); everything durable lives in spool/queue/ as the queue
 * file ID and an append-only state file ID.state (state.c).
 *
 *   main.c    the daemon skeleton's hooks
 *   state.c   the state file format and the back-off computation
 *   queue.c   pickup, recovery, the in-memory queue and its durable records
 *   sched.c   scheduling: the agent table, requests and results
 *   bounce.c  delivery status notifications (lib/mail/dsn.h)
 *   ctl.c     the notice and control sockets (lib/core/qmgrproto.h)
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "ev.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "qfile.h"

/* Per-recipient states. */
enum qr_state {
	QR_PENDING,	/* due now */
	QR_INFLIGHT,	/* in a request to an agent */
	QR_DEFERRED,	/* waiting for next_try */
	QR_FAILED,	/* failed for good; the report is still due */
	QR_SUCCESS,	/* delivered; the success report (NOTIFY=SUCCESS) is due */
	QR_DONE,	/* delivered, or failed and reported */
};

/* qrstate flags. */
#define QRF_NOTIFY_SUCCESS 0x01	/* the sender gets a report of delivery */
#define QRF_EXPANDED	   0x02	/* delivered by alias expansion (forwards) */

struct dest;

/* One recipient's scheduling state (its address stays on disk). */
struct qrstate {
	struct dest *dest;	/* its destination: agent and domain (sched.c) */
	char *error;		/* last error ("ESC text"), or NULL; for
				 * QR_SUCCESS the agent's "ESC text" */
	uint32_t next_try;	/* unix seconds, for QR_DEFERRED */
	uint16_t attempts;	/* deferrals so far */
	uint8_t state;		/* enum qr_state */
	uint8_t flags;		/* QRF_* */
};

/* A state file record (state.c). */
enum qs_kind {
	QS_DONE,	/* done INDEX */
	QS_DEFER,	/* defer INDEX NEXT_TRY ERROR */
	QS_FAIL,	/* fail INDEX ERROR */
	QS_BOUNCED,	/* bounced INDEX */
	QS_RCPT,	/* rcpt ADDRESS ORIG_INDEX: an added recipient */
	QS_WARNED,	/* warned: the delay warning went out */
	QS_HOLD,	/* hold */
	QS_RELEASE,	/* release */
	QS_OWNER,	/* owner UID: a maildrop message's submitter */
	QS_DELIVERED,	/* delivered INDEX TEXT: delivered, success report due */
	QS_EXPANDED,	/* expanded INDEX TEXT: the same, by alias expansion */
};

struct qs_record {
	enum qs_kind kind;
	uint32_t index;
	uint64_t next_try;
	uint64_t orig;		/* owner uid, or an added recipient's origin */
	const char *text;	/* error or address (points into the line) */
};

struct qmgr;
struct agent;

/* The delivery agents, by their row in sched_agents[]. */
enum qmgr_agent_id {
	QMGR_AGENT_LOCAL,	/* local(8): the local domains' recipients */
	QMGR_AGENT_RELAY,	/* relay: every other recipient (not yet written) */
	QMGR_AGENTS
};

/*
 * A delivery agent qmgr knows: one row of sched_agents[] (sched.c).  A
 * recipient goes to the first row whose takes() says so.
 */
struct agent_def {
	const char *name;		/* for logs: "local", "relay" */
	const char *socket;		/* its socket in run_dir (lib/core/agentproto.h) */
	/* Whether the agent takes recipient addr: 1, 0, or -1 with *error_r
	 * (a map lookup failed). */
	int (*takes)(struct qmgr *q, const char *addr, const char **error_r);
	const char *limit_key;		/* the config key: requests in flight */
	const char *unavailable;	/* "ESC text" while it cannot be reached */
	int down_never_expires;		/* waiting for it never expires a recipient */
};

/* The table, indexed by enum qmgr_agent_id. */
extern const struct agent_def sched_agents[QMGR_AGENTS];

/* Where a message sits in the scheduler (qmsg.where). */
enum qm_where {
	QM_NOWHERE,	/* nothing due, or requests in flight */
	QM_READY,	/* in the ready ring */
	QM_PARKED,	/* on a full destination's or agent's wait list */
};

/* A list of messages waiting for room at a destination or an agent
 * (linked through qmsg.rnext/rprev, NULL-terminated). */
struct waitq {
	struct qmsg *head, *tail;
};

/* One queued message.  Kept small: a 100,000-message backlog must fit in
 * about 100 MB (a few hundred bytes each, see qmgr(8)). */
struct qmsg {
	char id[QFILE_ID_MAX];
	uint64_t arrival;	/* unix seconds */
	uint64_t size;		/* bytes of the queue file */
	struct qrstate *rcpts;
	char **added;		/* addresses of recipients nenv.. */
	struct qmsg *next, *prev;	/* all messages, in arrival order */
	struct qmsg *rnext, *rprev;	/* the ready ring, or a wait list */
	struct waitq *parked;		/* the wait list, when QM_PARKED */
	struct qmsg *hnext;		/* id hash chain */
	uint32_t nrcpt;		/* including added ones */
	uint32_t nenv;		/* recipients in the envelope */
	uint32_t busy;		/* requests in flight */
	int32_t owner;		/* maildrop submitter's uid, or -1 */
	uint8_t where;		/* enum qm_where */
	uint8_t hold;
	uint8_t warned;
	uint8_t state_exists;	/* ID.state is on disk */
	uint8_t deleted;	/* removed by the administrator */
};

/* A destination: one agent and one recipient domain (for the relay
 * agent the next hop, which is the recipient domain until transports
 * exist).  Interned in qmgr.dests; freed when no recipient refers to it. */
struct dest {
	struct agent *agent;
	struct dest *hnext;		/* hash chain */
	uint32_t refs;			/* recipients pointing here */
	unsigned inflight;		/* requests in flight */
	struct waitq wait;		/* messages blocked on its limit */
	char domain[];			/* lower case; "" for none */
};

/* A delivery agent (a row of sched_agents[]), over its socket in run_dir. */
struct agent {
	struct qmgr *q;
	const struct agent_def *def;	/* its row */
	enum qmgr_agent_id id;		/* and the row's index */
	char *path;
	struct ipc_link *link;
	unsigned inflight, limit;
	uint32_t next_id;
	struct request *reqs;		/* in flight */
	struct waitq wait;		/* messages blocked on limit */
	time_t down_until;		/* after a failed connect */
};

struct qmgr_settings {
	const char *spool_dir;
	const char *run_dir;
	const char *hostname;
	const char *virtual_domains;	/* map spec, "" for none */
	uint64_t retry_min, retry_max;	/* seconds */
	uint64_t lifetime;		/* seconds */
	uint64_t delay_warning;		/* seconds, 0: off */
	const char *postmaster;		/* postmaster notices; "": postmaster@hostname */
	unsigned agent_limit[QMGR_AGENTS];	/* per agent (its limit_key) */
	unsigned domain_limit;		/* per destination (agent, domain) */
};

struct qmgr {
	struct ev_loop *loop;
	struct qmgr_settings set;
	char *queue_dir, *corrupt_dir, *incoming_dir;
	int queue_fd;			/* spool/queue, open for the *at() calls */
	char *pickup_dirs[2];		/* incoming/new, maildrop/new */
	char *double_bounce;
	char *postmaster;		/* where postmaster notices go */
	struct map *domains;
	struct qmsg *head, *tail;	/* all messages */
	size_t nmsgs;
	struct qmsg *ready;		/* ring of messages with due work */
	struct qmsg **hash;
	size_t hash_size;
	struct agent agents[QMGR_AGENTS];	/* by enum qmgr_agent_id */
	struct dest **dests;		/* destination hash */
	size_t dests_size, ndests;
	struct ev_timer *tick;
	struct ev_timer *rescan;	/* a pickup file in transition: look again */
	time_t tmp_swept;		/* last sweep of the pickup tmp/ dirs */
	int scan_pending, dispatch_pending;
	unsigned links;			/* notice and control links open */
	uid_t self_uid;
	/* Pickup errors repeat at every scan for every file (a full disk):
	 * one line per kind and interval (lib/core/log.h). */
	struct log_limit loglimit;
};

/* --- state.c ---------------------------------------------------------- */

/*
 * Parse one state file line (without its LF).  0 with *r filled (text
 * points into line), or -1 with *error_r for anything malformed.
 */
int qs_parse(const char *line, struct qs_record *r, const char **error_r)
	__attribute__((warn_unused_result));
/* Append r as one line (with LF) to out; its text is sanitized (no
 * control bytes, capped). */
void qs_format(const struct qs_record *r, struct buf *out);
/* The delay before the next try after the attempts-th deferral:
 * min doubled per earlier attempt, capped at max (seconds). */
uint64_t qmgr_backoff(uint64_t min, uint64_t max, unsigned attempts);

/* --- queue.c ---------------------------------------------------------- */

/* Start: directories, maps, recovery of spool/queue.  0 or -1. */
int qmgr_new(struct ev_loop *loop, const struct qmgr_settings *s,
    struct qmgr **q_r, const char **error_r) __attribute__((warn_unused_result));
void qmgr_free(struct qmgr **qp);
/* Scan the pickup directories soon (coalesced). */
void qmgr_scan_soon(struct qmgr *q);
/* Find a message by id, or NULL. */
struct qmsg *qmgr_find(struct qmgr *q, const char *id);
/* Append records to ID.state and fsync it.  0, or -1 with *error_r. */
int qmgr_record(struct qmgr *q, struct qmsg *m, const struct qs_record *rs,
    size_t n, const char **error_r) __attribute__((warn_unused_result));
/* Open the queue file read-only and read its envelope.  The fd, or -1
 * with *error_r. */
int qmgr_open_msg(struct qmgr *q, const struct qmsg *m, struct envelope *e_r,
    off_t *body_r, const char **error_r) __attribute__((warn_unused_result));
/* The address of recipient i (envelope or added). */
const char *qmgr_rcpt_addr(const struct qmsg *m, const struct envelope *e, uint32_t i);
/* Finish a message whose recipients are all done: remove its files and
 * free it (unless requests are in flight). */
void qmgr_msg_check_done(struct qmgr *q, struct qmsg *m);
/* Put m into the ready ring (at the tail; off any wait list first) /
 * take it out of the ring or its wait list. */
void qmgr_ready_add(struct qmgr *q, struct qmsg *m);
void qmgr_ready_del(struct qmgr *q, struct qmsg *m);
/* Move m onto wait list w (out of the ring). */
void qmgr_park(struct qmgr *q, struct qmsg *m, struct waitq *w);
/* Move up to n messages from the head of w into the ready ring. */
void qmgr_wake(struct qmgr *q, struct waitq *w, unsigned n);
/* Add a recipient (alias expansion) in memory; the caller has recorded it. */
void qmgr_msg_add_rcpt(struct qmgr *q, struct qmsg *m, const char *addr);
/* Remove a message now, without a report. */
void qmgr_msg_delete(struct qmgr *q, struct qmsg *m);

/* --- sched.c ---------------------------------------------------------- */

void sched_init(struct qmgr *q);
void sched_free(struct qmgr *q);
/* Start requests for ready messages (deferred to the end of the batch). */
void sched_kick(struct qmgr *q);
/* Once a second: due deferrals, expiry, delay warnings. */
void sched_tick(struct qmgr *q);
/*
 * The agent for recipient address addr: the first row of sched_agents[]
 * that takes it.  0 with *agent_r, or -1 with *error_r (a map lookup
 * failed; *agent_r untouched).
 */
int sched_route(struct qmgr *q, const char *addr, struct agent **agent_r,
    const char **error_r) __attribute__((warn_unused_result));
/* The destination of a recipient address for agent a, with a reference
 * taken; release it with sched_dest_put. */
struct dest *sched_dest_get(struct qmgr *q, struct agent *a, const char *addr);
void sched_dest_put(struct qmgr *q, struct dest *d);
/* A temporary failure of recipient i: defer it with back-off, or fail it
 * once the message has outlived maximal_queue_lifetime.  Appends the
 * record to rs (one slot). */
void sched_defer(struct qmgr *q, struct qmsg *m, uint32_t i, const char *error,
    int never_expire, struct qs_record *rs, struct buf *text);

/* --- bounce.c --------------------------------------------------------- */

/* Send the reports for m's QR_FAILED recipients (failed) and QR_SUCCESS
 * ones (delivered or expanded, NOTIFY=SUCCESS) -- or a delay warning for
 * its deferred ones if warn --, then record them as reported.  0, or -1
 * (retried on the next tick). */
int bounce_send(struct qmgr *q, struct qmsg *m, int warn);

/* --- ctl.c ------------------------------------------------------------ */

/* A connection on the notice (ctl 0) or control (ctl 1) socket. */
void ctl_accept(struct qmgr *q, int fd, int ctl);

#endif
