/*
 * landlock: confining a process to one user's Maildir with the kernel's
 * Landlock LSM (see landlock.h), through the raw system calls: glibc has
 * no wrappers.  The ABI version is probed first and the ruleset handles
 * every file-system right that version knows, so nothing the kernel can
 * restrict is left open by accident.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/landlock.h>) && defined(SYS_landlock_create_ruleset)
#include <linux/landlock.h>
#define HAVE_LANDLOCK 1
#endif
#endif

#include "landlock.h"
#include "log.h"

#ifdef HAVE_LANDLOCK

/* Rights newer than Debian 12's headers (linux-libc-dev 6.1 knows ABI 2);
 * the values are the kernel's ABI and never change. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE	(1ULL << 14)	/* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV	(1ULL << 15)	/* ABI 5 */
#endif

/* ABI 1's thirteen rights, bits 0..12. */
#define LL_FS_ABI1 \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | \
	 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK | \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)

/* Never allowed, not even beneath the user's directory. */
#define LL_FS_NEVER \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR | \
	 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_SYM | \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* The rights a rule on a file (not a directory) may carry. */
#define LL_FS_FILE \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* Each ABI version's file-system rights beyond the one before (ABI 4
 * added network rights, 6 scopes, 7 audit flags: none of the file
 * system). */
static const uint64_t fs_rights_added[] = {
	0,
	LL_FS_ABI1,				/* 1: Linux 5.13 */
	LANDLOCK_ACCESS_FS_REFER,		/* 2: Linux 5.19 */
	LANDLOCK_ACCESS_FS_TRUNCATE,		/* 3: Linux 6.2 */
	0,					/* 4: Linux 6.7, network */
	LANDLOCK_ACCESS_FS_IOCTL_DEV,		/* 5: Linux 6.10 */
};
#define NABI ((int)(sizeof(fs_rights_added) / sizeof(fs_rights_added[0])) - 1)

int
landlock_abi(const char **reason_r)
{
	long abi;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	if (abi >= 1)
		return (int)abi;
	if (abi < 0 && errno == ENOSYS)
		*reason_r = "the kernel has no Landlock (ENOSYS)";
	else if (abi < 0 && errno == EOPNOTSUPP)
		*reason_r = "Landlock is disabled in this kernel (EOPNOTSUPP: "
		    "not in lsm= at boot)";
	else
		*reason_r = err_fmt("Landlock version probe: %s",
		    abi < 0 ? strerror(errno) : "version 0");
	return 0;
}

int
landlock_rights(int abi, uint64_t *handled_r, uint64_t *rw_r, uint64_t *ro_r,
    const char **reason_r)
{
	uint64_t handled = 0;

	if (abi < 2) {
		*reason_r = abi == 1 ?
		    "Landlock ABI 1 has no REFER right: Maildir's renames "
		    "between tmp/, new/ and cur/ would fail" :
		    "no Landlock";
		return 0;
	}
	for (int v = 1; v <= abi && v <= NABI; v++)
		handled |= fs_rights_added[v];
	*handled_r = handled;
	*rw_r = handled & ~LL_FS_NEVER;
	*ro_r = handled & (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR);
	return 1;
}

/* Allow access beneath path in ruleset (masked to a file's rights when
 * path is not a directory; a directory when must_be_dir).  0 or -1. */
static int
add_path_rule(int ruleset, const char *path, uint64_t access, int must_be_dir,
    const char **error_r)
{
	struct landlock_path_beneath_attr rule;
	struct stat st;
	int fd;

	fd = open(path, O_PATH | O_CLOEXEC | (must_be_dir ? O_DIRECTORY : 0));
	if (fd < 0) {
		*error_r = err_fmt("%s: %s", log_safe(path), strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = err_fmt("fstat %s: %s", log_safe(path), strerror(errno));
		close(fd);
		return -1;
	}
	memset(&rule, 0, sizeof(rule));
	rule.allowed_access = S_ISDIR(st.st_mode) ? access : access & LL_FS_FILE;
	rule.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH,
	    &rule, 0) < 0) {
		*error_r = err_fmt("landlock_add_rule %s: %s", log_safe(path), strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* The number of threads in this process, from /proc/self/task; 0 when
 * /proc cannot tell (not mounted, or a chroot without it). */
static size_t
thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int
landlock_confine(const char *dir, const char *const *ro_paths,
    const char **error_r)
{
	struct landlock_ruleset_attr attr;
	uint64_t handled, rw, ro;
	size_t nthreads;
	int abi, ruleset;

	if ((abi = landlock_abi(error_r)) == 0 ||
	    landlock_rights(abi, &handled, &rw, &ro, error_r) == 0)
		return 0;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		*error_r = "Landlock needs no-new-privs set first (priv_no_new_privs)";
		return -1;
	}
	if ((nthreads = thread_count()) > 1) {
		*error_r = err_fmt("the process has %zu threads and Landlock would "
		    "confine only this one: confine before starting threads",
		    nthreads);
		return -1;
	}
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = handled;
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ruleset < 0) {
		*error_r = err_fmt("landlock_create_ruleset: %s", strerror(errno));
		return -1;
	}
	if (add_path_rule(ruleset, dir, rw, 1, error_r) < 0)
		goto fail;
	for (size_t i = 0; ro_paths != NULL && ro_paths[i] != NULL; i++)
		if (add_path_rule(ruleset, ro_paths[i], ro, 0, error_r) < 0)
			goto fail;
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		*error_r = err_fmt("landlock_restrict_self: %s", strerror(errno));
		goto fail;
	}
	close(ruleset);
	return 1;
fail:
	close(ruleset);
	return -1;
}

#else /* !HAVE_LANDLOCK */

int
landlock_abi(const char **reason_r)
{
	*reason_r = "this build has no Landlock (no <linux/landlock.h>)";
	return 0;
}

int
landlock_rights(int abi, uint64_t *handled_r, uint64_t *rw_r, uint64_t *ro_r,
    const char **reason_r)
{
	(void)abi;
	(void)handled_r;
	(void)rw_r;
	(void)ro_r;
	*reason_r = "this build has no Landlock (no <linux/landlock.h>)";
	return 0;
}

int
landlock_confine(const char *dir, const char *const *ro_paths,
    const char **error_r)
{
	(void)dir;
	(void)ro_paths;
	return landlock_abi(error_r);
}

#endif

void
landlock_log_unavailable(const char *reason)
{
	static int logged;

	if (__atomic_exchange_n(&logged, 1, __ATOMIC_RELAXED) == 0)
		log_warn("event=landlock_unavailable reason=\"%s\"", reason);
}
