/*
 * maildir_impl.h: what the Maildir module's files (maildir.c,
 * maildir_write.c, maildir_quota.c, maildir_read.c) share; no other
 * module includes it.  Chiefly the symlink-safe walks of the mail store:
 * every path below the store is opened one component at a time with
 * O_NOFOLLOW relative to a directory fd, so a symlink anywhere below the
 * store is refused, never followed.  Directories created here get mode
 * 0700.
 */
#ifndef POSTERN_MAILDIR_IMPL_H
#define POSTERN_MAILDIR_IMPL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Open directory name inside dfd without following a symlink, creating
 * it (0700) first if create and it is missing.  1 with *fd_r, 0 if it is
 * missing (and not created; *error_r says so), -1 with *error_r (a
 * symlink, not a directory, or a system error).
 */
int maildir_dir_open(int dfd, const char *name, int create, int *fd_r,
    const char **error_r) __attribute__((warn_unused_result));

/*
 * Walk path (relative, '/'-separated, no "." or ".." components, not
 * empty) from the directory rootfd, creating what is missing if create.
 * 1 with *fd_r, 0 if a component is missing and create is 0 (*error_r
 * says which), or -1 with *error_r.
 */
int maildir_path_open(int rootfd, const char *path, int create, int *fd_r,
    const char **error_r) __attribute__((warn_unused_result));

/* A Maildir's directory and its three subdirectories (-1 when closed). */
struct maildir_dirs {
	int fd, tmp, new, cur;
};
#define MAILDIR_DIRS_INIT { -1, -1, -1, -1 }

/*
 * Open tmp/, new/ and cur/ of the Maildir at m->fd (already open),
 * creating any that is missing.  0, or -1 with *error_r (m's subdirectory
 * fds then as far as they got; maildir_dirs_close() them).
 */
int maildir_dirs_open(struct maildir_dirs *m, const char **error_r)
	__attribute__((warn_unused_result));

/* Close every open fd of m and mark it closed. */
void maildir_dirs_close(struct maildir_dirs *m);

/*
 * A directory stream on the directory dfd, through a fresh open of "."
 * (so its permissions are checked now, and dfd stays open and unread).
 * NULL with *error_r "read WHAT: reason".
 */
DIR *maildir_dir_stream(int dfd, const char *what, const char **error_r);

/* Close *fdp if open and mark it closed. */
void maildir_close_fd(int *fdp);

/* Write the n iovecs completely (advancing them) / all n bytes at p.
 * 0, or -1 with errno. */
int maildir_writev_all(int fd, struct iovec *iov, int n);
int maildir_write_all(int fd, const void *p, size_t n);

/* Length of a file name's base: up to the first ',' or ':'. */
size_t maildir_base_len(const char *name);

/* Whether the n bytes at p are 1..max characters 0x21..0x7E. */
int maildir_printable(const char *p, size_t n, size_t max);

/* Parse the decimal digits p[0..n) into *v: 1..20 digits, no overflow.
 * 1 or 0. */
int maildir_parse_u64(const char *p, size_t n, uint64_t *v);

/* s advanced past spaces and tabs (not beyond end). */
const char *maildir_skip_ws(const char *s, const char *end);

/* (maildir_quota.c) Append one delivered message of size bytes to the
 * maildirsize of the Maildir at dirfd: best effort, a lost line is
 * corrected at the next recalculation; a failure is logged. */
void maildir_quota_add(int dirfd, uint64_t size);

#endif
