/*
 * mstore: opening directories of the mail store safely, shared by the
 * writer (deliver/local) and the readers (pop3d, imapd).  Every path below
 * the store is opened one component at a time with O_NOFOLLOW relative to
 * a directory fd, so a symlink anywhere below the store is refused, never
 * followed.  Directories created here get mode 0700.
 */
#ifndef POSTERN_MSTORE_H
#define POSTERN_MSTORE_H

/*
 * Open directory name inside dfd without following a symlink, creating
 * it (0700) first if create and it is missing.  1 with *fd_r, 0 if it is
 * missing (and not created; *error_r says so), -1 with *error_r (a
 * symlink, not a directory, or a system error).
 */
int mstore_dir_open(int dfd, const char *name, int create, int *fd_r,
    const char **error_r) __attribute__((warn_unused_result));

/*
 * Walk path (relative, '/'-separated, no "." or ".." components, not
 * empty) from the directory rootfd, creating what is missing if create.
 * 1 with *fd_r, 0 if a component is missing and create is 0 (*error_r
 * says which), or -1 with *error_r.
 */
int mstore_path_open(int rootfd, const char *path, int create, int *fd_r,
    const char **error_r) __attribute__((warn_unused_result));

/* A Maildir's directory and its three subdirectories (-1 when closed). */
struct mstore_maildir {
	int fd, tmp, new, cur;
};
#define MSTORE_MAILDIR_INIT { -1, -1, -1, -1 }

/*
 * Open tmp/, new/ and cur/ of the Maildir at m->fd (already open),
 * creating any that is missing.  0, or -1 with *error_r (m's subdirectory
 * fds then as far as they got; mstore_maildir_close() them).
 */
int mstore_maildir_subdirs(struct mstore_maildir *m, const char **error_r)
	__attribute__((warn_unused_result));

/* Close every open fd of m and mark it closed. */
void mstore_maildir_close(struct mstore_maildir *m);

#endif
