/*
 * landlock: per-user confinement by the kernel.  A mail process that
 * serves one user, after login, restricts itself with Landlock (Linux
 * >= 5.13) so that it can read, write, create, rename, remove and list
 * only beneath that user's Maildir, plus read beneath a few given paths,
 * and touch nothing else on the file system -- whatever path a bug lets
 * it compute.  The kernel answers EACCES (EXDEV for a link or rename that
 * would carry a file out of a more restricted tree); the module makes no
 * path checks of its own.
 *
 * Landlock restricts a thread, and the threads it creates afterwards.
 * So landlock_confine() must be called while the process has one thread
 * (before lib/core/worker starts its pool): then it confines the whole
 * process, and it refuses (-1) when /proc shows other threads.
 * Confining a worker thread alone is possible but is no security
 * boundary -- the other threads share its memory and its fds and are
 * not confined -- so postern confines processes, one user per process.
 *
 * Order in a daemon: priv_drop, priv_no_new_privs (Landlock requires
 * no-new-privs), landlock_confine, then sandbox_apply.  The seccomp rows
 * hold no landlock_* calls, so confining after the filter is in place
 * would kill the process (see docs/design.md, "Per-user confinement").
 *
 * Confinement is irreversible and only narrows: a second call adds a
 * layer, and an access must be allowed by every layer.
 */
#ifndef POSTERN_LANDLOCK_H
#define POSTERN_LANDLOCK_H

#include <stdint.h>

/*
 * The highest Landlock ABI version the running kernel offers, or 0 with
 * *reason_r when it offers none: the kernel lacks Landlock (ENOSYS), it
 * is built in but disabled at boot (EOPNOTSUPP), or the build had no
 * <linux/landlock.h>.
 */
int landlock_abi(const char **reason_r);

/*
 * The access rights confinement uses under ABI version abi: *handled_r
 * every file-system right that version knows (all of them are denied
 * unless a rule allows them), *rw_r what is allowed beneath the user's
 * directory, *ro_r what is allowed beneath a read-only path.  1 when the
 * version can confine a Maildir; 0 with *reason_r when it cannot (ABI 1
 * has no REFER, so Maildir's tmp -> new -> cur renames would fail with
 * EXDEV); out-params untouched then.
 */
int landlock_rights(int abi, uint64_t *handled_r, uint64_t *rw_r,
    uint64_t *ro_r, const char **reason_r) __attribute__((warn_unused_result));

/*
 * Confine the calling thread and the threads it creates afterwards: it
 * may read, write, truncate, create (regular files and directories),
 * rename, link, remove and list beneath dir, only read files and list
 * directories beneath each of ro_paths (NULL-ended; NULL for none; a path
 * may be a file), and do nothing else on the file system.  Executing,
 * and making symlinks, device nodes, FIFOs and sockets are denied beneath
 * dir too.  Paths are resolved now (symlinks followed); fds already open
 * keep working.
 *
 * 1: enforced.  0: not enforced, *error_r says why (no Landlock, or ABI
 * 1): the caller logs it once (landlock_log_unavailable) and goes on
 * with the confinement it has without Landlock.  -1 with *error_r: dir
 * or a read-only path cannot be opened, no-new-privs is not set, the
 * process has other threads (when /proc can tell), or the kernel refused
 * the ruleset; the caller must treat it as fatal.
 */
int landlock_confine(const char *dir, const char *const *ro_paths,
    const char **error_r) __attribute__((warn_unused_result));

/* Log `event=landlock_unavailable reason="..."` at warn, the first time
 * this process calls it; later calls log nothing. */
void landlock_log_unavailable(const char *reason);

#endif
