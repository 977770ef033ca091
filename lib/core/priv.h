/*
 * priv: the one audited privilege drop, and the process restrictions that
 * follow it.
 */
#ifndef POSTERN_PRIV_H
#define POSTERN_PRIV_H

#include <sys/types.h>

/* Look up a user by name: its uid and primary gid.  0, or -1 with
 * *error_r ("no such user"); out-params untouched on failure. */
int priv_lookup_user(const char *name, uid_t *uid_r, gid_t *gid_r,
    const char **error_r) __attribute__((warn_unused_result));
/* Look up a group by name.  0 or -1 with *error_r. */
int priv_lookup_group(const char *name, gid_t *gid_r, const char **error_r)
	__attribute__((warn_unused_result));

/*
 * Become uid/gid for good: setgroups (no supplementary groups), setresgid,
 * then chroot(chroot_dir) + chdir("/") when chroot_dir is non-NULL and
 * non-empty, then setresuid.  Afterwards prove it: the real, effective and
 * saved ids must all be the new ones, there must be no supplementary
 * groups, and (for a non-root uid) setuid(0) and setgid(0) must fail.
 * 0, or -1 with *error_r; a caller must treat -1 as fatal.
 */
int priv_drop(uid_t uid, gid_t gid, const char *chroot_dir, const char **error_r)
	__attribute__((warn_unused_result));

/* The most supplementary groups priv_drop_groups() gives a process. */
#define PRIV_MAX_GROUPS 8

/*
 * priv_drop() keeping exactly the supplementary groups groups[0..ngroups-1]
 * (at most PRIV_MAX_GROUPS, none of them 0): the groups of the sockets a
 * daemon connects to (services.h).  The proof checks that the process's
 * supplementary groups are exactly these.  priv_drop() is this with none.
 */
int priv_drop_groups(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
    const char *chroot_dir, const char **error_r) __attribute__((warn_unused_result));

/*
 * Root acting on a file that belongs to an ordinary user acts as that
 * user: a dev-mode instance (its config file) or a map source.  When the
 * caller is root and path is owned by someone else, become path's owner
 * for good (priv_drop; the owner's primary group, or the file's group when
 * the uid has no passwd entry) and return 1; 0 when the caller is not
 * root or path belongs to root; -1 with *error_r when path cannot be
 * looked at or the drop fails.
 */
int priv_become_owner_of(const char *path, const char **error_r)
	__attribute__((warn_unused_result));

/* The user `postern init --dev` run as root gives the instance to, so
 * that no daemon of a dev-mode instance runs as root. */
#define PRIV_DEV_USER "postern-dev"

/* Set no-new-privs, so no exec can regain privileges.  0 or -1. */
int priv_no_new_privs(const char **error_r) __attribute__((warn_unused_result));

/* Ask the kernel to send sig when the parent dies, and return -1 if the
 * parent is already gone (getppid() != expected_parent). */
int priv_parent_death_signal(int sig, pid_t expected_parent)
	__attribute__((warn_unused_result));

#endif
