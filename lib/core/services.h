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

/* The group of the auth socket's clients: the daemons that authenticate
 * users (and local, whose mailbox lookups go through auth) get it as a
 * supplementary group, and auth answers only their users. */
#define POSTERN_AUTH_GROUP "postern-auth-client"

/* The most supplementary groups a built-in service has, plus the NULL
 * that ends the list. */
#define SERVICE_MAX_GROUPS 2

/*
 * A postern daemon known by name, the system user it runs as, and its
 * supplementary groups: exactly the groups of the sockets in run_dir it
 * connects to that it cannot reach as their owner or by its primary
 * group (builtin_sockets).
 */
struct builtin_service {
	const char *name;
	const char *user;
	const char *groups[SERVICE_MAX_GROUPS];	/* NULL-terminated */
	const char *doc;
};
extern const struct builtin_service builtin_services[];
extern const size_t builtin_nservices;
/* The built-in entry for name, or NULL. */
const struct builtin_service *builtin_service(const char *name);
/* Whether the service b has group among its supplementary groups. */
int builtin_service_in_group(const struct builtin_service *b, const char *group);

/*
 * A socket in run_dir that postern's own daemons serve, with the owner,
 * group and mode master gives it in root mode: they admit the socket's
 * peers and no one else (root always passes), in addition to the
 * server's own SO_PEERCRED check.  owner NULL: the serving service's
 * user; group NULL: the owner's primary group; POSTERN_DROP_GROUP stands
 * for the configured drop_group.  A socket not in the table (another
 * program's) gets its service's user and primary group, mode 0660.  In
 * dev mode every socket is 0600, the instance user's.
 */
struct builtin_socket {
	const char *name;
	const char *owner;
	const char *group;
	unsigned mode;
	const char *peers;	/* who connects, for the docs and logs */
};
extern const struct builtin_socket builtin_sockets[];
extern const size_t builtin_nsockets;
/* The built-in entry for a socket name, or NULL. */
const struct builtin_socket *builtin_socket(const char *name);

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
