/*
 * fsutil: directory set-up and durable, atomic file replacement.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "net.h"
#include "xalloc.h"

char *
fs_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return xasprintf("%.*s/%s", (int)n, dir, name);
}

/* mkdir -p for the parents of path (not path itself). */
static int
make_parents(const char *path, const char **error_r)
{
	char *copy = xstrdup(path);
	char *p;

	for (p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
			*error_r = err_fmt("mkdir %s: %s", copy, strerror(errno));
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	return 0;
}

int
fs_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid,
    const char **error_r)
{
	struct stat st;

	if (path[0] != '/') {
		*error_r = err_fmt("not an absolute path: %s", path);
		return -1;
	}
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT) {
			*error_r = err_fmt("stat %s: %s", path, strerror(errno));
			return -1;
		}
		if (make_parents(path, error_r) < 0)
			return -1;
		if (mkdir(path, mode & 0777) < 0 && errno != EEXIST) {
			*error_r = err_fmt("mkdir %s: %s", path, strerror(errno));
			return -1;
		}
		if (lstat(path, &st) < 0) {
			*error_r = err_fmt("stat %s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		*error_r = err_fmt("%s exists and is not a directory", path);
		return -1;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    (st.st_uid != uid || st.st_gid != gid) && lchown(path, uid, gid) < 0) {
		*error_r = err_fmt("chown %s: %s", path, strerror(errno));
		return -1;
	}
	/* chown clears set-id bits, so set the mode last. */
	if ((st.st_mode & 07777) != (mode & 07777) && chmod(path, mode) < 0) {
		*error_r = err_fmt("chmod %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
fs_fsync_dir(const char *path, const char **error_r)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		*error_r = err_fmt("open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fsync(fd) < 0) {
		*error_r = err_fmt("fsync %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
    const char **error_r)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *dircopy = xstrdup(path);
	int fd, ret = -1;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		*error_r = err_fmt("create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) < 0 || fd_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		*error_r = err_fmt("write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0) {
		*error_r = err_fmt("close %s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		*error_r = err_fmt("rename %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (fs_fsync_dir(dirname(dircopy), error_r) < 0)
		goto out;
	ret = 0;
out:
	free(tmp);
	free(dircopy);
	return ret;
}

int
fs_read_file(const char *path, size_t max, struct buf *out, const char **error_r)
{
	char chunk[8192];
	size_t total = 0, orig = out->len;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		*error_r = err_fmt("open %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = err_fmt("read %s: %s", path, strerror(errno));
			close(fd);
			buf_truncate(out, orig);
			return -1;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > max || buf_append(out, chunk, (size_t)n) < 0) {
			*error_r = err_fmt("%s is larger than %zu bytes", path, max);
			close(fd);
			buf_truncate(out, orig);
			return -1;
		}
	}
	close(fd);
	return 0;
}

int
fs_space(const char *path, uint64_t *bytes_r, uint64_t *inodes_r, const char **error_r)
{
	struct statvfs sv;
	uint64_t unit;

	if (statvfs(path, &sv) < 0) {
		*error_r = err_fmt("statvfs %s: %s", path, strerror(errno));
		return -1;
	}
	unit = sv.f_frsize != 0 ? sv.f_frsize : sv.f_bsize;
	*bytes_r = (uint64_t)sv.f_bavail > UINT64_MAX / (unit ? unit : 1) ?
	    UINT64_MAX : (uint64_t)sv.f_bavail * unit;
	*inodes_r = sv.f_files == 0 ? UINT64_MAX : (uint64_t)sv.f_favail;
	return 0;
}
