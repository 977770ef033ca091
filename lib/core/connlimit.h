/*
 * connlimit: concurrent connection counts shared by every process of a
 * service (smtpd, pop3d, imapd run several), for the limits "at most N
 * connections in all" and "at most M from one client address" (an IPv6
 * client counts by its /64 prefix).
 *
 * A small file in run_dir, mapped shared by each process: one row of
 * counters per process (its instance number), so a process that dies and
 * is restarted simply zeroes its own row -- nothing leaks.  Counts of one
 * address are kept in hashed buckets: a collision can only make a limit
 * stricter, never looser.  Lock-free (atomic adds).
 */
#ifndef POSTERN_CONNLIMIT_H
#define POSTERN_CONNLIMIT_H

#include <stddef.h>
#include <sys/socket.h>

struct connlimit;

/* Map (creating if needed) path for nprocs processes; this process's row
 * is `instance`, zeroed here.  0, or -1 with *error_r. */
int connlimit_open(const char *path, unsigned nprocs, unsigned instance,
    struct connlimit **c_r, const char **error_r) __attribute__((warn_unused_result));
void connlimit_close(struct connlimit **cp);
/*
 * Count a new connection from addr if that keeps the total at most
 * max_total and the address's count at most max_per_addr (0: no limit).
 * 1 counted, 0 refused (0 with *which_r "total" or "address").
 */
int connlimit_enter(struct connlimit *c, const struct sockaddr *addr,
    unsigned max_total, unsigned max_per_addr, const char **which_r);
/* The connection counted by connlimit_enter() ended. */
void connlimit_leave(struct connlimit *c, const struct sockaddr *addr);
/* Current counts, for status and tests. */
unsigned connlimit_total(const struct connlimit *c);
unsigned connlimit_addr(const struct connlimit *c, const struct sockaddr *addr);

#endif
