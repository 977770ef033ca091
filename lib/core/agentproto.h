/*
 * agentproto: how qmgr hands a message to a delivery agent -- `local`
 * (Maildirs) now, `relay` (SMTP client) later -- over the agent's Unix
 * socket in run_dir ("local", "relay"), protocol "postern-agent/1"
 * (lib/core/ipc.h framing).  qmgr passes the open queue file, so an agent
 * never needs access to the spool.
 *
 * AGENT_DELIVER (qmgr -> agent), id chosen by qmgr; one fd: the queue
 * file, open read-only (the agent reads with pread from body_offset, so
 * the fd's offset does not matter):
 *   str  queue_id
 *   u64  body_offset     where the message starts (LF line endings)
 *   str  sender          "" for the null sender
 *   u32  nrcpt           1 .. AGENT_MAX_RCPTS
 *   then per recipient:
 *   u32  index           qmgr's number for it, echoed in the result
 *   str  address        the envelope recipient
 *
 * AGENT_RESULT (agent -> qmgr), same id, one per AGENT_DELIVER, the
 * recipients in any order but each exactly once:
 *   u32  nrcpt
 *   then per recipient:
 *   u32  index
 *   u32  status          AGENT_OK, AGENT_TEMP or AGENT_PERM
 *   str  esc             enhanced status code, "2.0.0", "4.2.2", "5.1.1"
 *   str  text            diagnostic for logs, queue listings and DSNs
 *   u32  nforward        addresses in other domains this recipient's
 *                        aliases lead to: qmgr adds them to the message
 *                        (for the relay agent) with this recipient as
 *                        their original recipient
 *   str  forward[nforward]
 *
 * An agent answers every request, even when it fails: a temporary error
 * (mail store unwritable, disk full, over quota, map unreadable) is
 * AGENT_TEMP and qmgr retries later; AGENT_PERM bounces.  If the link
 * breaks before the result, qmgr treats every recipient of the request
 * as AGENT_TEMP (so a recipient may be delivered twice: the window the
 * design accepts).
 */
#ifndef POSTERN_AGENTPROTO_H
#define POSTERN_AGENTPROTO_H

#include "ipc.h"

#define AGENT_PROTO "postern-agent/1"
#define AGENT_LOCAL_SOCKET "local"
#define AGENT_RELAY_SOCKET "relay"

#define AGENT_DELIVER (IPC_TYPE_USER + 0)
#define AGENT_RESULT  (IPC_TYPE_USER + 1)

#define AGENT_OK   0
#define AGENT_TEMP 1
#define AGENT_PERM 2

#define AGENT_MAX_RCPTS 1000		/* per request */
#define AGENT_MAX_FORWARDS 1000		/* per recipient */

#endif
