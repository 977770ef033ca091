/*
 * fsutil: directory set-up, durable, atomic file replacement, and the
 * probe of each file system's fast paths.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <sys/random.h>
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
fs_fsync(int fd, const char *point)
{
#ifdef TEST_SKIP_FSYNC
	static int warned;
	char key[32];

	snprintf(key, sizeof(key), ",%s,", point);
	if (strstr(TEST_SKIP_FSYNC, key) != NULL) {
		if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
			log_warn("event=fsync_skipped point=%s build=test-only", point);
		return 0;
	}
#else
	(void)point;
#endif
	return fsync(fd);
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

/* --- file-system capabilities ------------------------------------------ */

#define CAPS_MAX 32		/* file systems remembered per process */

static struct {
	dev_t dev;
	struct fs_caps caps;
} caps_tab[CAPS_MAX];
static size_t caps_n;
static pthread_mutex_t caps_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether errno says "this file system does not offer that". */
static int
unsupported(int e)
{
	return e == EINVAL || e == EOPNOTSUPP || e == ENOSYS || e == EISDIR;
}

/* Probe dirfd's file system with throw-away files (dot names, which no
 * scan takes).  What cannot be tried (no write access) counts as absent. */
static struct fs_caps
caps_probe(int dirfd, const char *label)
{
	struct fs_caps c = { 0, 0 };
	struct stat st;
	char a[64], b[64];
	unsigned int r = 0;
	int fd, e = 0;

	fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		int proc;

		/* Naming it takes linkat() through /proc/self/fd. */
		(void)close(fd);
		proc = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
		c.tmpfile = proc >= 0;
		if (proc >= 0)
			(void)close(proc);
	}
	(void)getrandom(&r, sizeof(r), GRND_NONBLOCK);
	snprintf(a, sizeof(a), ".fsprobe.%ld.%08x.a", (long)getpid(), r);
	snprintf(b, sizeof(b), ".fsprobe.%ld.%08x.b", (long)getpid(), r);
	fd = openat(dirfd, a, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)close(fd);
		if (renameat2(dirfd, a, dirfd, b, RENAME_NOREPLACE) == 0) {
			c.noreplace = 1;
			(void)unlinkat(dirfd, b, 0);
		} else {
			e = errno;
			(void)unlinkat(dirfd, a, 0);
		}
	} else
		e = errno;
	if (fstat(dirfd, &st) < 0)
		st.st_dev = 0;
	log_info("event=fs_probe dir=%s dev=%u:%u tmpfile=%s noreplace=%s%s%s%s",
	    log_safe(label), major(st.st_dev), minor(st.st_dev),
	    c.tmpfile ? "yes" : "no", c.noreplace ? "yes" : "no",
	    e != 0 && !unsupported(e) ? " error=\"" : "",
	    e != 0 && !unsupported(e) ? strerror(e) : "",
	    e != 0 && !unsupported(e) ? "\"" : "");
	return c;
}

struct fs_caps
fs_caps(int dirfd, const char *label)
{
	struct fs_caps c = { 0, 0 };
	struct stat st;
	size_t i;

	if (fstat(dirfd, &st) < 0)
		return c;
	pthread_mutex_lock(&caps_lock);
	for (i = 0; i < caps_n; i++)
		if (caps_tab[i].dev == st.st_dev) {
			c = caps_tab[i].caps;
			pthread_mutex_unlock(&caps_lock);
			return c;
		}
	c = caps_probe(dirfd, label);
	if (caps_n < CAPS_MAX) {
		caps_tab[caps_n].dev = st.st_dev;
		caps_tab[caps_n].caps = c;
		caps_n++;
	}
	pthread_mutex_unlock(&caps_lock);
	return c;
}

int
fs_rename_unique(const struct fs_caps *c, int olddirfd, const char *oldname,
    int newdirfd, const char *newname)
{
	struct stat st;

	if (c->noreplace) {
		if (renameat2(olddirfd, oldname, newdirfd, newname,
		    RENAME_NOREPLACE) == 0)
			return 0;
		if (!unsupported(errno))
			return -1;
		/* Probed yes, refused now (a different mount over the same
		 * device number?): the fallback below, for this call. */
	}
	if (fstatat(newdirfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	return renameat(olddirfd, oldname, newdirfd, newname);
}

unsigned long
fs_sweep_old(int dirfd, time_t max_age, const char *label)
{
	time_t now = time(NULL);
	unsigned long n = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode) || st.st_mtime + max_age > now)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0) {
			n++;
			log_info("event=tmp_swept dir=%s name=%s size=%lld age=%llds",
			    log_safe(label), log_safe(de->d_name), (long long)st.st_size,
			    (long long)(now - st.st_mtime));
		}
	}
	(void)closedir(d);
	return n;
}
