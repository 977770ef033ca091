/*
 * qmgrproto: talking to the queue manager.
 *
 * run_dir/qmgr      notices that a message was queued (smtpd, sendmail):
 *                   protocol "postern-qmgr-notify/1", frames QMGR_NOTIFY
 *                   (str queue id, of a file in incoming/new or
 *                   maildrop/new).  Best effort: qmgr also scans.  Open
 *                   to smtpd (the socket's owner) and sendmail(1) (its
 *                   group, drop_group) in root mode, with no peer check
 *                   beyond that: a notice carries no authority, it only
 *                   makes qmgr scan incoming/new and maildrop/new now
 *                   rather than at the next periodic scan.
 * run_dir/qmgr.ctl  the administrator's control socket (root, or the
 *                   instance's own user in dev mode; SO_PEERCRED):
 *                   protocol "postern-qmgr-ctl/1", one request, one reply
 *                   per id.
 *
 * QMGR_LIST    u32 start, u32 max (at most QMGR_LIST_MAX) -> QMGR_LISTING:
 *              u32 total messages, u32 n (entries that follow, from the
 *              start-th in queue order), per message:
 *                str id, u64 size, u64 arrival (unix seconds),
 *                str sender ("" for <>), u32 state (QMGR_STATE_*),
 *                u32 nrcpt, per recipient still to do:
 *                  str address, u32 rstate (QMGR_RCPT_*),
 *                  str last_error ("" if none), u64 next_try (unix s, 0 = now)
 * QMGR_FLUSH   (empty)               retry every deferred message now
 * QMGR_DELETE  str id, or "ALL"      remove without a bounce
 * QMGR_HOLD    str id, or "ALL"      keep, do not try to deliver
 * QMGR_RELEASE str id, or "ALL"      undo hold
 * QMGR_REQUEUE str id, or "ALL"      forget back-off, retry at once
 * each answered by QMGR_DONE: u32 affected messages, str text.  An
 * unknown id is QMGR_DONE with 0 and "no such message".
 */
#ifndef POSTERN_QMGRPROTO_H
#define POSTERN_QMGRPROTO_H

#include "ipc.h"

#define QMGR_NOTIFY_PROTO "postern-qmgr-notify/1"
#define QMGR_CTL_PROTO "postern-qmgr-ctl/1"
#define QMGR_NOTIFY_SOCKET "qmgr"
#define QMGR_CTL_SOCKET "qmgr.ctl"

#define QMGR_NOTIFY   (IPC_TYPE_USER + 0)

#define QMGR_LIST     (IPC_TYPE_USER + 10)
#define QMGR_LISTING  (IPC_TYPE_USER + 11)
#define QMGR_FLUSH    (IPC_TYPE_USER + 12)
#define QMGR_DELETE   (IPC_TYPE_USER + 13)
#define QMGR_HOLD     (IPC_TYPE_USER + 14)
#define QMGR_RELEASE  (IPC_TYPE_USER + 15)
#define QMGR_REQUEUE  (IPC_TYPE_USER + 16)
#define QMGR_DONE     (IPC_TYPE_USER + 17)

#define QMGR_LIST_MAX 500

#define QMGR_STATE_ACTIVE   0	/* being delivered or due */
#define QMGR_STATE_DEFERRED 1	/* waiting for its next try */
#define QMGR_STATE_HOLD     2	/* held by the administrator */

#define QMGR_RCPT_PENDING   0
#define QMGR_RCPT_DEFERRED  1

/*
 * Tell the qmgr listening at path (run_dir/qmgr) that the messages ids
 * were queued: connect, write our hello and one QMGR_NOTIFY per id in a
 * single non-blocking send, close.  Never waits: 1 sent, 0 no qmgr is
 * listening (no socket, or refused), -1 with *error_r for anything else
 * (a full backlog, a path too long).  Callers ignore a failure beyond
 * logging it: the periodic scan finds the mail anyway.
 */
int qmgr_notify(const char *path, const char *const *ids, size_t n,
    const char **error_r) __attribute__((warn_unused_result));

#endif
