/*
 * mstore: symlink-safe opening of mail store directories (see mstore.h).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mstore.h"
#include "xalloc.h"

int
mstore_dir_open(int dfd, const char *name, int create, int *fd_r,
    const char **error_r)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	struct stat sb;
	int fd, e;

	fd = openat(dfd, name, flags);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST) {
			*error_r = err_fmt("mkdir %s: %s", log_safe(name), strerror(errno));
			return -1;
		}
		fd = openat(dfd, name, flags);
	}
	if (fd >= 0) {
		*fd_r = fd;
		return 1;
	}
	e = errno;
	if (e == ENOENT)
		*error_r = err_fmt("%s does not exist", log_safe(name));
	else if ((e == ELOOP || e == ENOTDIR) &&
	    fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
		*error_r = err_fmt("refusing to follow the symlink %s", log_safe(name));
	else
		*error_r = err_fmt("open %s: %s", log_safe(name), strerror(e));
	return e == ENOENT && !create ? 0 : -1;
}

int
mstore_path_open(int rootfd, const char *path, int create, int *fd_r,
    const char **error_r)
{
	char *copy = xstrdup(path), *save = NULL;
	int fd, r = -1, any = 0;

	if ((fd = dup(rootfd)) < 0) {
		*error_r = err_fmt("dup: %s", strerror(errno));
		free(copy);
		return -1;
	}
	for (char *c = strtok_r(copy, "/", &save); c != NULL;
	    c = strtok_r(NULL, "/", &save)) {
		int next;

		any = 1;
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
			*error_r = err_fmt("unsafe mailbox path %s", log_safe(path));
			r = -1;
			goto out;
		}
		if ((r = mstore_dir_open(fd, c, create, &next, error_r)) <= 0)
			goto out;
		(void)close(fd);
		fd = next;
	}
	if (!any) {
		*error_r = err_fmt("empty mailbox path");
		r = -1;
		goto out;
	}
	*fd_r = fd;
	fd = -1;
	r = 1;
out:
	if (fd >= 0)
		(void)close(fd);
	free(copy);
	return r;
}

int
mstore_maildir_subdirs(struct mstore_maildir *m, const char **error_r)
{
	if (mstore_dir_open(m->fd, "tmp", 1, &m->tmp, error_r) < 0 ||
	    mstore_dir_open(m->fd, "new", 1, &m->new, error_r) < 0 ||
	    mstore_dir_open(m->fd, "cur", 1, &m->cur, error_r) < 0)
		return -1;
	return 0;
}

void
mstore_maildir_close(struct mstore_maildir *m)
{
	int *fds[] = { &m->fd, &m->tmp, &m->new, &m->cur };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			(void)close(*fds[i]);
		*fds[i] = -1;
	}
}
