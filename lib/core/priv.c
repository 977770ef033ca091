/*
 * priv: dropping privileges, once, in one place, and checking that it
 * worked.  Every daemon goes through priv_drop() in root mode.
 */
#include "autoconf.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "priv.h"

int
priv_lookup_user(const char *name, uid_t *uid_r, gid_t *gid_r, const char **error_r)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		*error_r = errno != 0 ?
		    err_fmt("user %s: %s", log_safe(name), strerror(errno)) :
		    err_fmt("user %s does not exist", log_safe(name));
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

int
priv_lookup_group(const char *name, gid_t *gid_r, const char **error_r)
{
	struct group *gr;

	errno = 0;
	gr = getgrnam(name);
	if (gr == NULL) {
		*error_r = errno != 0 ?
		    err_fmt("group %s: %s", log_safe(name), strerror(errno)) :
		    err_fmt("group %s does not exist", log_safe(name));
		return -1;
	}
	*gid_r = gr->gr_gid;
	return 0;
}

/* Whether the process's supplementary groups are exactly groups[0..n-1]
 * (in any order, as the kernel sorts them). */
static int
groups_are(const gid_t *groups, size_t n)
{
	gid_t have[PRIV_MAX_GROUPS + 1];
	int got = getgroups(PRIV_MAX_GROUPS + 1, have);

	if (got < 0 || (size_t)got != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int found = 0;

		for (int j = 0; j < got; j++)
			if (have[j] == groups[i])
				found = 1;
		if (!found)
			return 0;
	}
	return 1;
}

int
priv_drop(uid_t uid, gid_t gid, const char *chroot_dir, const char **error_r)
{
	return priv_drop_groups(uid, gid, NULL, 0, chroot_dir, error_r);
}

int
priv_drop_groups(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
    const char *chroot_dir, const char **error_r)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (ngroups > PRIV_MAX_GROUPS) {
		*error_r = err_fmt("%zu supplementary groups (at most %d)", ngroups,
		    PRIV_MAX_GROUPS);
		return -1;
	}
	for (size_t i = 0; i < ngroups; i++)
		if (groups[i] == 0) {
			*error_r = "supplementary group 0 (root's) refused";
			return -1;
		}
	if (setgroups(ngroups, ngroups > 0 ? groups : NULL) < 0) {
		*error_r = err_fmt("setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) < 0) {
		*error_r = err_fmt("setresgid(%lu): %s", (unsigned long)gid, strerror(errno));
		return -1;
	}
	if (chroot_dir != NULL && chroot_dir[0] != '\0') {
		if (chroot(chroot_dir) < 0) {
			*error_r = err_fmt("chroot %s: %s", chroot_dir, strerror(errno));
			return -1;
		}
		if (chdir("/") < 0) {
			*error_r = err_fmt("chdir / in chroot: %s", strerror(errno));
			return -1;
		}
	}
	if (setresuid(uid, uid, uid) < 0) {
		*error_r = err_fmt("setresuid(%lu): %s", (unsigned long)uid, strerror(errno));
		return -1;
	}

	/* Prove it. */
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid) {
		*error_r = "user ids did not all change";
		return -1;
	}
	if (getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid) {
		*error_r = "group ids did not all change";
		return -1;
	}
	if (!groups_are(groups, ngroups)) {
		*error_r = ngroups == 0 ? "supplementary groups remain" :
		    "supplementary groups are not exactly the ones asked for";
		return -1;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		*error_r = "setuid(0) still succeeds after dropping privileges";
		return -1;
	}
	if (uid != 0 && gid != 0 && (setgid(0) == 0 || setegid(0) == 0)) {
		*error_r = "setgid(0) still succeeds after dropping privileges";
		return -1;
	}
	return 0;
}

int
priv_become_owner_of(const char *path, const char **error_r)
{
	struct stat st;
	struct passwd *pw;
	gid_t gid;

	if (geteuid() != 0)
		return 0;
	if (stat(path, &st) < 0) {
		*error_r = err_fmt("%s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_uid == 0)
		return 0;
	pw = getpwuid(st.st_uid);
	gid = pw != NULL ? pw->pw_gid : st.st_gid;
	if (priv_drop(st.st_uid, gid, NULL, error_r) < 0)
		return -1;
	return 1;
}

int
priv_no_new_privs(const char **error_r)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*error_r = err_fmt("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
priv_parent_death_signal(int sig, pid_t expected_parent)
{
	if (prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) < 0)
		return -1;
	return getppid() == expected_parent ? 0 : -1;
}
