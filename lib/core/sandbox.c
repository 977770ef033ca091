/*
 * sandbox: per-daemon seccomp allow-lists (see sandbox.h).  One table:
 * a base set every daemon needs at run time (glibc, the event loop, the
 * IPC and fd passing, OpenSSL, Berkeley DB, LMDB, libcrypt) plus each
 * daemon's extras.  The lists were taken from what the daemons actually
 * call after set-up during the whole test suite (docs/design.md tells
 * how), not from guesses; a call that only set-up makes (execve, chroot,
 * setresuid, bind, listen...) is deliberately absent.
 *
 * A few calls are allowed only with given arguments: socket() for
 * AF_UNIX (plus AF_INET/AF_INET6 for a profile that talks to the network),
 * kill()/tgkill() only aimed at the process itself (abort(), raise()),
 * and kill(pid, 0), which sends nothing.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "log.h"
#include "sandbox.h"

/* Log instead of kill: see sandbox_apply(). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif
#if defined(POSTERN_SANDBOX_LOG) || defined(__SANITIZE_ADDRESS__) || \
    defined(SANDBOX_ASAN)
#define SANDBOX_LOG_ONLY 1
#else
#define SANDBOX_LOG_ONLY 0
#endif

/* Profile flags. */
#define SB_INET	0x1	/* may create AF_INET/AF_INET6 sockets */

struct profile {
	const char *name;		/* the daemon's program name */
	const char *const *calls;	/* extras to the base set, NULL-ended */
	unsigned flags;
};

/*
 * Every daemon.  Observed in all of them after set-up: memory (brk, mmap,
 * munmap; mprotect, mremap, madvise for malloc's arenas and a thread's
 * stack), the epoll loop and its signalfd (re-armed when signal watches
 * change), reading, writing and closing fds, openat/newfstatat/lseek
 * (map reopen after `postern map`, tzdata for the log's time stamps),
 * fcntl (O_NONBLOCK, FD_CLOEXEC, F_DUPFD_CLOEXEC), accept4, Unix-socket
 * IPC with SCM_RIGHTS (connect, sendmsg, recvmsg, SO_PEERCRED), sendto and
 * recvfrom (plain and TLS sessions), getpid and getuid.  Added on the
 * evidence of some daemons or the code of lib/: futex, exit, rseq and
 * set_robust_list (a worker thread starting or stopping), getrandom
 * (OpenSSL, qfile and DSN ids), pread64 (Berkeley DB, qfile), writev,
 * dup, poll (lib/core/ipc's blocking calls), and the time calls glibc makes
 * when the vDSO cannot answer.
 */
static const char *const base_calls[] = {
	/* memory */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	/* threads and time */
	"futex", "rseq", "set_robust_list", "sched_yield",
	"clock_gettime", "clock_getres", "gettimeofday", "time",
	"clock_nanosleep", "nanosleep",
	/* process identity, signals, exit */
	"getpid", "gettid", "getuid", "geteuid", "getgid", "getegid",
	"rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "restart_syscall",
	"signalfd4", "exit", "exit_group",
	/* the event loop */
	"epoll_wait", "epoll_pwait", "epoll_ctl", "poll", "ppoll",
	/* fds and files */
	"read", "write", "readv", "writev", "pread64", "close", "lseek",
	"fstat", "newfstatat", "openat", "fcntl", "dup", "getrandom",
	/* sockets (socket() itself: see allow_conditional) */
	"accept4", "connect", "sendmsg", "recvmsg", "sendto", "recvfrom",
	"getsockopt",
	NULL
};

/* smtpd: queue files in spool/incoming (lib/mail/qfile: O_TMPFILE + linkat
 * through /proc/self/fd, or the tmp/ + renameat2 fallback, or tmp/ +
 * renameat where the file system refuses RENAME_NOREPLACE), fsync'd by
 * its worker thread in groups. */
static const char *const smtpd_calls[] = {
	"access", "fchmod", "fsync", "fdatasync", "sync_file_range",
	"linkat", "renameat", "renameat2", "unlinkat",
	"statfs",		/* queue_minfree: the spool's free space */
	NULL
};
/* qmgr: moves, links and removes queue files, scans directories, writes
 * bounces through lib/mail/qfile. */
static const char *const qmgr_calls[] = {
	"access", "fchmod", "fsync", "fdatasync", "sync_file_range",
	"linkat", "renameat", "renameat2", "unlinkat", "getdents64",
	NULL
};
/* local: Maildir delivery (tmp/ -> fsync -> new/), folder creation,
 * maildirsize, its group-commit worker thread. */
static const char *const local_calls[] = {
	"fsync", "fdatasync", "sync_file_range", "mkdirat", "linkat",
	"renameat", "renameat2", "unlinkat", "getdents64",
	NULL
};
/* auth: reads its maps; nothing beyond the base. */
static const char *const auth_calls[] = {
	NULL
};
/* pop3d: scans and renames in the mailbox, deletes on QUIT, the flock'd
 * size cache, creates a missing Maildir's directories. */
static const char *const pop3d_calls[] = {
	"flock", "ftruncate", "fsync", "mkdirat", "renameat", "unlinkat",
	"getdents64",
	NULL
};
/* testdaemon: "whoami". */
static const char *const testdaemon_calls[] = {
	"getgroups",
	NULL
};

static const struct profile profiles[] = {
	{ "smtpd", smtpd_calls, 0 },
	{ "qmgr", qmgr_calls, 0 },
	{ "local", local_calls, 0 },
	{ "auth", auth_calls, 0 },
	{ "pop3d", pop3d_calls, 0 },
	{ "testdaemon", testdaemon_calls, 0 },
};
#define NPROFILES (sizeof(profiles) / sizeof(profiles[0]))

/* The profile named name, or NULL. */
static const struct profile *
profile_find(const char *name)
{
	for (size_t i = 0; i < NPROFILES; i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

int
sandbox_profile_exists(const char *profile)
{
	return profile != NULL && profile_find(profile) != NULL;
}

const char *const *
sandbox_profile_names(size_t *n_r)
{
	static const char *names[NPROFILES];

	for (size_t i = 0; i < NPROFILES; i++)
		names[i] = profiles[i].name;
	*n_r = NPROFILES;
	return names;
}

#ifdef HAVE_SECCOMP

int
sandbox_available(void)
{
	return 1;
}

int
sandbox_enforcing(void)
{
	return !SANDBOX_LOG_ONLY;
}

int
sandbox_check_table(const char **error_r)
{
	const char *const *lists[NPROFILES + 1];

	lists[0] = base_calls;
	for (size_t i = 0; i < NPROFILES; i++)
		lists[i + 1] = profiles[i].calls;
	for (size_t i = 0; i < NPROFILES + 1; i++)
		for (const char *const *c = lists[i]; *c != NULL; c++)
			if (seccomp_syscall_resolve_name(*c) == __NR_SCMP_ERROR) {
				*error_r = err_fmt("unknown system call '%s' in %s",
				    *c, i == 0 ? "the base set" : profiles[i - 1].name);
				return -1;
			}
	return 0;
}

/* Allow every call in the NULL-ended list; 0 or -1 with *error_r. */
static int
allow_list(scmp_filter_ctx ctx, const char *const *calls, const char **error_r)
{
	for (; *calls != NULL; calls++) {
		int nr = seccomp_syscall_resolve_name(*calls), r;

		/* A call this architecture lacks (an old name, say) is simply
		 * not there to allow. */
		if (nr == __NR_SCMP_ERROR)
			continue;
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) < 0) {
			*error_r = err_fmt("seccomp_rule_add(%s): %s", *calls,
			    strerror(-r));
			return -1;
		}
	}
	return 0;
}

/* "Argument arg equals v", spelled out: libseccomp's SCMP_A0() macros
 * leave a field to the compound literal, which clang -Wextra flags. */
static struct scmp_arg_cmp
arg_eq(unsigned arg, scmp_datum_t v)
{
	struct scmp_arg_cmp c;

	memset(&c, 0, sizeof(c));
	c.arg = arg;
	c.op = SCMP_CMP_EQ;
	c.datum_a = v;
	return c;
}

/* The argument-checked rules; 0 or -1 with *error_r. */
static int
allow_conditional(scmp_filter_ctx ctx, const struct profile *p,
    const char **error_r)
{
	scmp_datum_t self = (scmp_datum_t)getpid();
	int r;

	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	    arg_eq(0, AF_UNIX))) < 0)
		goto fail;
	if ((p->flags & SB_INET) != 0 &&
	    ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	    arg_eq(0, AF_INET))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	    arg_eq(0, AF_INET6))) < 0))
		goto fail;
	/* abort() and raise() signal the process itself, nothing else. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
	    arg_eq(0, self))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
	    arg_eq(0, self))) < 0)
		goto fail;
	/* kill(pid, 0) only probes whether a process exists (lib/core/connlimit
	 * checks its slots' owners); it sends nothing. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
	    arg_eq(1, 0))) < 0)
		goto fail;
	return 0;
fail:
	*error_r = err_fmt("seccomp_rule_add: %s", strerror(-r));
	return -1;
}

int
sandbox_apply(const char *profile, const char **error_r)
{
	const struct profile *p = profile != NULL ? profile_find(profile) : NULL;
	scmp_filter_ctx ctx;
	/* Built with -DPOSTERN_SANDBOX_LOG (to find a profile's calls), or
	 * with AddressSanitizer (whose leak check at exit uses clone and
	 * ptrace): log what is outside the list to the kernel audit log and
	 * allow it. */
#if SANDBOX_LOG_ONLY
	uint32_t deny = SCMP_ACT_LOG;
	const char *mode = "log";
#else
	uint32_t deny = SCMP_ACT_KILL_PROCESS;
	const char *mode = "kill";
#endif
	int r;

	if (p == NULL) {
		*error_r = err_fmt("no sandbox profile for program '%s' "
		    "(sandbox = no runs it unconfined)",
		    profile != NULL ? log_safe(profile) : "(null)");
		return -1;
	}
	if ((ctx = seccomp_init(deny)) == NULL) {
		*error_r = "seccomp_init failed";
		return -1;
	}
	/* A call through another ABI (i386, x32) is denied the same way;
	 * all threads (the worker) get the filter. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, deny)) < 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		*error_r = err_fmt("seccomp_attr_set: %s", strerror(-r));
		seccomp_release(ctx);
		return -1;
	}
	if (allow_list(ctx, base_calls, error_r) < 0 ||
	    allow_list(ctx, p->calls, error_r) < 0 ||
	    allow_conditional(ctx, p, error_r) < 0) {
		seccomp_release(ctx);
		return -1;
	}
	if ((r = seccomp_load(ctx)) < 0) {
		*error_r = err_fmt("seccomp_load: %s", strerror(-r));
		seccomp_release(ctx);
		return -1;
	}
	seccomp_release(ctx);
	log_info("event=sandbox state=on profile=%s action=%s", p->name, mode);
	return 0;
}

#else /* !HAVE_SECCOMP */

int
sandbox_available(void)
{
	return 0;
}

int
sandbox_enforcing(void)
{
	return 0;
}

int
sandbox_check_table(const char **error_r)
{
	(void)error_r;
	return 0;
}

int
sandbox_apply(const char *profile, const char **error_r)
{
	if (profile == NULL || profile_find(profile) == NULL) {
		*error_r = err_fmt("no sandbox profile for program '%s' "
		    "(sandbox = no runs it unconfined)",
		    profile != NULL ? log_safe(profile) : "(null)");
		return -1;
	}
	log_info("event=sandbox state=off reason=unsupported profile=%s "
	    "detail=\"built without seccomp\"", profile);
	return 0;
}

#endif
