/*
 * services: postern's own daemons as master(8) and postern(8) both know
 * them -- their names and system users -- and master's control protocol.
 */
#ifndef POSTERN_SERVICES_H
#define POSTERN_SERVICES_H

#include <stddef.h>
#include <sys/types.h>

#include "ipc.h"

/* master's control socket, in run_dir, and its protocol:
 * MASTER_STATUS_REQ: empty.
 * MASTER_STATUS: u32 master pid, u64 master uptime ms, u32 count, then per
 * process: str service, u32 instance, u32 pid (0: not running), u64 uptime
 * ms, u32 restarts (of its service), str state. */
#define MASTER_SOCKET_NAME "master.sock"
#define MASTER_PROTO "postern-master/1"
#define MASTER_STATUS_REQ  (IPC_TYPE_USER + 0)
#define MASTER_STATUS      (IPC_TYPE_USER + 1)

/* A postern daemon known by name, and the system user it runs as. */
struct builtin_service {
	const char *name;
	const char *user;
	const char *doc;
};
extern const struct builtin_service builtin_services[];
extern const size_t builtin_nservices;
/* The built-in entry for name, or NULL. */
const struct builtin_service *builtin_service(const char *name);

/*
 * The pid of the master running with this pid file, or 0 if none: master
 * holds a lock on its pid file while it runs, so a file left by a crash
 * (or a recycled pid) does not count.
 */
pid_t master_running(const char *pid_file);

/* The group of sendmail(1)'s maildrop (set-group-id), created by
 * `postern init` with the users. */
#define POSTERN_DROP_GROUP "postern-drop"

#endif
