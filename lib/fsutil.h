/*
 * fsutil: directories with the right owner and mode, durable file writes,
 * bounded file reads, free space.
 */
#ifndef POSTERN_FSUTIL_H
#define POSTERN_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/*
 * Make sure path is a directory (creating missing parents with mode 0755)
 * with this mode, and, unless uid and gid are both (uid_t)-1 / (gid_t)-1,
 * this owner.  A symlink or non-directory at path is an error, never
 * followed.  0, or -1 with *error_r.
 */
int fs_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid,
    const char **error_r) __attribute__((warn_unused_result));
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
/* path joined with name by one '/' (malloc'd). */
char *fs_join(const char *dir, const char *name);

#endif
