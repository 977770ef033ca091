/*
 * fsutil: directories with the right owner and mode, durable file writes,
 * bounded file reads, free space, and what each file system under the
 * spool and the mail store can do (probed once, used by every writer).
 */
#ifndef POSTERN_FSUTIL_H
#define POSTERN_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

/*
 * Make sure path is a directory (creating missing parents with mode 0755)
 * with this mode, and, unless uid and gid are both (uid_t)-1 / (gid_t)-1,
 * this owner.  A symlink or non-directory at path is an error, never
 * followed.  0, or -1 with *error_r.
 */
int fs_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid,
    const char **error_r) __attribute__((warn_unused_result));
/*
 * fsync(2) fd, one of the durability points docs/design.md ("Durability
 * order") lists: "queue-file", "queue-dir", "queue-name", "maildir-file",
 * "maildir-dir".  A test build (configure --enable-test-skip-fsync=POINTS)
 * skips the listed points, logging the first skip, so that the
 * durability-order test can prove its checker sees a missing fsync.
 * fsync's result.
 */
int fs_fsync(int fd, const char *point) __attribute__((warn_unused_result));
/* fsync the directory at path.  0, or -1 with *error_r. */
int fs_fsync_dir(const char *path, const char **error_r) __attribute__((warn_unused_result));
/*
 * Replace path with data durably: write PATH.tmp.PID (mode), fsync, rename
 * over path, fsync the directory.  Readers see the old or the new file,
 * never a part.  0, or -1 with *error_r (the temporary file is removed).
 */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
    const char **error_r) __attribute__((warn_unused_result));
/* Append the contents of path to out, refusing files over max bytes.
 * 0, or -1 with *error_r. */
int fs_read_file(const char *path, size_t max, struct buf *out, const char **error_r)
	__attribute__((warn_unused_result));
/*
 * The free space and inodes of the file system holding path, as an
 * unprivileged writer may use them (statvfs f_bavail, f_favail);
 * *inodes_r is UINT64_MAX for a file system without an inode limit
 * (btrfs reports none).  0, or -1 with *error_r and nothing set.
 */
int fs_space(const char *path, uint64_t *bytes_r, uint64_t *inodes_r,
    const char **error_r) __attribute__((warn_unused_result));
/*
 * What the file system holding a directory offers postern's writers:
 * O_TMPFILE (an anonymous file linked in once it is durable) and
 * renameat2(RENAME_NOREPLACE).  Probed once per file system (st_dev) by
 * fs_caps(), with throw-away dot files in that directory, and logged
 * once (event=fs_probe); FUSE, many NFS and overlay set-ups and older
 * kernels have neither.
 */
struct fs_caps {
	int tmpfile;		/* O_TMPFILE + linkat works */
	int noreplace;		/* RENAME_NOREPLACE works */
};
/* The capabilities of dirfd's file system (label names it in the log).
 * Thread-safe; never fails (what cannot be probed counts as missing). */
struct fs_caps fs_caps(int dirfd, const char *label);
/*
 * Move olddirfd/oldname to newdirfd/newname, never replacing a file.
 * With RENAME_NOREPLACE where the file system has it (c, from fs_caps()); elsewhere: check
 * that the new name is free, then rename(2).  That fallback is only for
 * names that are unique by construction and written by one process
 * (queue ids, Maildir unique names), so nothing can take the name between
 * the check and the rename; it never links and unlinks, which would give
 * the file two names for a moment -- and for as long as a FUSE or NFS
 * client caches its link count.  0, or -1 with errno (EEXIST if the
 * name is taken).
 */
int fs_rename_unique(const struct fs_caps *c, int olddirfd, const char *oldname,
    int newdirfd, const char *newname) __attribute__((warn_unused_result));
/*
 * Remove the files in directory dirfd (a tmp/ of the spool or of a
 * Maildir) not modified for max_age seconds: what a writer killed between
 * creating and naming a message left (RFC-less Maildir convention: 36
 * hours).  Dot names (the probe's) are skipped, as are subdirectories.
 * Each removal is logged with label.  Returns how many were removed.
 */
unsigned long fs_sweep_old(int dirfd, time_t max_age, const char *label);
#define FS_TMP_MAX_AGE (36 * 3600)
/* path joined with name by one '/' (malloc'd). */
char *fs_join(const char *dir, const char *name);

#endif
