/*
 * config_keys: the declaration of every key postern.conf accepts, with its
 * type, default, bounds and the text of its postern.conf(5) entry.  The
 * man page repeats the doc strings word for word (test_config checks it),
 * so change both together.  The syntax checks for listen addresses and
 * socket names live here too: they are part of what a key means.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "net.h"

/* Installation directories come from configure (Makefile.am AM_CPPFLAGS);
 * a build outside automake (a fuzzer, a one-off compile) gets autoconf's
 * own defaults for prefix /usr/local. */
#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/usr/local/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/usr/local/var/run"
#endif
#ifndef PKGLIBEXECDIR
#define PKGLIBEXECDIR "/usr/local/libexec/postern"
#endif

#define SEC_MS		1000LL
#define MIN_MS		(60 * SEC_MS)
#define HOUR_MS		(60 * MIN_MS)

#define SOCKET_NAME_MAX	64	/* bytes in a unix_listen name */

/* 1 if the n bytes at s are all in [a-z0-9] or in extra. */
static int
all_name_chars(const char *s, size_t n, const char *extra)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))
			continue;
		if (s[i] == '\0' || strchr(extra, s[i]) == NULL)
			return 0;
	}
	return 1;
}

/* A listen item: HOST:PORT[/TAG], as net_parse_listen() reads it. */
static int
check_listen(const char *v, const char **error_r)
{
	struct net_listen l;

	return net_parse_listen(v, &l, error_r);
}

/* A unix_listen item: a socket name in run_dir, [a-z0-9_.-]{1,64}. */
static int
check_socket_name(const char *v, const char **error_r)
{
	size_t n = strlen(v);

	if (n == 0 || n > SOCKET_NAME_MAX || !all_name_chars(v, n, "_.-")) {
		*error_r = "a socket name must be 1 to 64 characters "
		    "from a-z, 0-9, '_', '.' and '-'";
		return -1;
	}
	if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
		*error_r = "a socket name cannot be '.' or '..'";
		return -1;
	}
	return 0;
}

const struct cfg_key config_global_keys[] = {
	{ "mode", CFG_ENUM, "root", 0, 0, "dev root",
	    "How postern runs. dev: everything under one directory, run by "
	    "an ordinary user, with no privilege changes. root: master "
	    "starts as root and each daemon drops to its own system user.",
	    NULL },
	{ "hostname", CFG_STR, "", 0, 0, NULL,
	    "The host name postern uses for itself, in greetings and in the "
	    "mail it generates. Empty: the system's host name.",
	    NULL },
	{ "config_dir", CFG_PATH, SYSCONFDIR "/postern", 0, 0, NULL,
	    "The directory of maps and certificates.",
	    NULL },
	{ "spool_dir", CFG_PATH, LOCALSTATEDIR "/spool/postern", 0, 0, NULL,
	    "The spool: the maildrop, incoming and queue directories.",
	    NULL },
	{ "run_dir", CFG_PATH, RUNSTATEDIR "/postern", 0, 0, NULL,
	    "The directory of the Unix-domain sockets and the pid file.",
	    NULL },
	{ "mail_dir", CFG_PATH, LOCALSTATEDIR "/vmail", 0, 0, NULL,
	    "The mail store: one Maildir per domain/user.",
	    NULL },
	{ "daemon_dir", CFG_PATH, PKGLIBEXECDIR, 0, 0, NULL,
	    "The directory of the daemon programs master starts.",
	    NULL },
	{ "pid_file", CFG_PATH, "$run_dir/master.pid", 0, 0, NULL,
	    "The file where master writes its process id.",
	    NULL },
	{ "log_target", CFG_ENUM, "syslog", 0, 0, "syslog stderr",
	    "Where log lines go: syslog (facility mail) or stderr.",
	    NULL },
	{ "log_level", CFG_ENUM, "info", 0, 0, "debug info warn error",
	    "The lowest severity that is logged.",
	    NULL },
	{ "tls_cert_file", CFG_PATH, "", 0, 0, NULL,
	    "The PEM file with the server's certificate chain, for the "
	    "daemons that offer TLS. Empty: none.",
	    NULL },
	{ "tls_key_file", CFG_PATH, "", 0, 0, NULL,
	    "The PEM file with the private key of tls_cert_file. Empty: none.",
	    NULL },
	{ "restart_delay_max", CFG_TIME, "60s", 1 * SEC_MS, 1 * HOUR_MS, NULL,
	    "The longest back-off before master restarts a daemon that "
	    "keeps dying.",
	    NULL },
	{ "stop_timeout", CFG_TIME, "10s", 1 * SEC_MS, 10 * MIN_MS, NULL,
	    "How long postern stop waits for the daemons to exit before it "
	    "kills them with SIGKILL.",
	    NULL },
	{ "drop_group", CFG_STR, "postern-drop", 0, 0, NULL,
	    "The group that owns sendmail(1)'s maildrop; sendmail is "
	    "installed setgid to it.",
	    NULL },
};
const size_t config_global_nkeys =
    sizeof(config_global_keys) / sizeof(config_global_keys[0]);

const struct cfg_key config_service_keys[] = {
	{ "program", CFG_PATH, "", 0, 0, NULL,
	    "The program to run. Empty: $daemon_dir/NAME, NAME being the "
	    "service's name.",
	    NULL },
	{ "args", CFG_STR, "", 0, 0, NULL,
	    "Arguments added to the program's command line, separated by "
	    "whitespace.",
	    NULL },
	{ "user", CFG_STR, "", 0, 0, NULL,
	    "The system user the daemon runs as in root mode. Empty: the "
	    "built-in user of postern's own daemons; required in root mode "
	    "for any other program.",
	    NULL },
	{ "listen", CFG_LIST, "", 0, 0, NULL,
	    "The TCP addresses master listens on and hands to the daemon, "
	    "each HOST:PORT, HOST being an IPv4 address, an IPv6 address in "
	    "brackets, * (every address) or localhost, optionally followed "
	    "by /TAG, which tells the daemon what the socket is for, as in "
	    "127.0.0.1:10087/submission. A tag is 1 to 32 characters from "
	    "a-z, 0-9, _ and -.",
	    check_listen },
	{ "unix_listen", CFG_LIST, "", 0, 0, NULL,
	    "The names of Unix-domain sockets master creates in run_dir and "
	    "hands to the daemon: 1 to 64 characters from a-z, 0-9, _, . "
	    "and -.",
	    check_socket_name },
	{ "processes", CFG_INT, "1", 1, 256, NULL,
	    "How many processes of the daemon master keeps running.",
	    NULL },
	{ "enable", CFG_BOOL, "yes", 0, 0, NULL,
	    "Whether master starts the service.",
	    NULL },
	{ "chroot", CFG_PATH, "", 0, 0, NULL,
	    "The directory the daemon is confined to with chroot(2) when it "
	    "drops privileges. Empty: none.",
	    NULL },
	{ "max_sessions", CFG_INT, "0", 0, 10000000, NULL,
	    "A process retires after serving this many sessions; 0: never.",
	    NULL },
};
const size_t config_service_nkeys =
    sizeof(config_service_keys) / sizeof(config_service_keys[0]);
