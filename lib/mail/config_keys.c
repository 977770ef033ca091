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
#include "map.h"
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

/* A map spec: "type:argument" or a path, as map_parse_spec() reads it;
 * empty means no map. */
static int
check_map_spec(const char *v, const char **error_r)
{
	const char *type, *arg;

	if (v[0] == '\0')
		return 0;
	return map_parse_spec(v, &type, &arg, error_r);
}

/* A mynetworks item: a network in CIDR form. */
static int
check_cidr(const char *v, const char **error_r)
{
	struct net_cidr c;

	return net_parse_cidr(v, &c, error_r);
}

/* A recipient delimiter: empty or one character other than '@'. */
static int
check_delimiter(const char *v, const char **error_r)
{
	if (strlen(v) > 1 || v[0] == '@' || v[0] == ' ') {
		*error_r = "the delimiter is one character (or empty for none)";
		return -1;
	}
	return 0;
}

/* A map type this build supports. */
static int
check_map_type(const char *v, const char **error_r)
{
#ifndef HAVE_BDB
	if (strcmp(v, "btree") == 0 || strcmp(v, "hash") == 0) {
		*error_r = "this build has no Berkeley DB (configured --without-bdb)";
		return -1;
	}
#endif
	(void)v;
	(void)error_r;
	return 0;
}

#ifdef HAVE_BDB
#define DEFAULT_MAP_TYPE "btree"
#else
#define DEFAULT_MAP_TYPE "lmdb"
#endif

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
	    "The group that owns sendmail(1)'s maildrop and qmgr's notice "
	    "socket; sendmail is installed setgid to it.",
	    NULL },
	{ "default_map_type", CFG_ENUM, DEFAULT_MAP_TYPE, 0, 0, "btree hash lmdb",
	    "The map type used for a map named by its path alone, without "
	    "a type: prefix.",
	    check_map_type },
	{ "virtual_domains", CFG_STR, "", 0, 0, NULL,
	    "The map of the domains postern receives mail for and stores "
	    "in the mail store. Keys are domain names; values are "
	    "ignored. Empty: none.",
	    check_map_spec },
	{ "virtual_mailboxes", CFG_STR, "", 0, 0, NULL,
	    "The map from an address to its mailbox directory, relative "
	    "to mail_dir. An address it does not list gets DOMAIN/USER/. "
	    "Empty: none.",
	    check_map_spec },
	{ "aliases", CFG_STR, "", 0, 0, NULL,
	    "The alias map: an address, or @domain for every address of a "
	    "domain that has no entry of its own, maps to one or more "
	    "addresses separated by commas. Aliases expand recursively up "
	    "to alias_max_depth. Empty: none.",
	    check_map_spec },
	{ "mynetworks", CFG_LIST, "127.0.0.0/8 [::1]/128", 0, 0, NULL,
	    "The networks whose clients may relay mail through smtpd without "
	    "authenticating, as ADDRESS/BITS items.",
	    check_cidr },
	{ "recipient_delimiter", CFG_STR, "+", 0, 0, NULL,
	    "The character that separates a user from an extension in a local "
	    "address (user+tag@domain is delivered to user@domain). Empty: "
	    "none.",
	    check_delimiter },
	{ "alias_max_depth", CFG_INT, "10", 1, 64, NULL,
	    "How many levels of aliases are followed before the expansion "
	    "is refused as a loop.",
	    NULL },
	{ "local_plus_folders", CFG_BOOL, "yes", 0, 0, NULL,
	    "Whether local delivers mail for user+tag@domain into the "
	    "user's Maildir++ folder .tag when that folder exists. No: "
	    "always into the INBOX.",
	    NULL },
	{ "local_maildir_cache", CFG_INT, "128", 0, 1024, NULL,
	    "How many Maildirs each local process keeps open between "
	    "deliveries (three file descriptors each), least recently used "
	    "first out. 0: open every Maildir afresh for each delivery.",
	    NULL },
	{ "relay_domains", CFG_STR, "", 0, 0, NULL,
	    "The map of the domains postern relays mail to from any "
	    "client. Keys are domain names; values are ignored. Empty: "
	    "none.",
	    check_map_spec },
	{ "sender_access", CFG_STR, "", 0, 0, NULL,
	    "The map consulted for the envelope sender: an address, a "
	    "domain or a user@ part maps to OK, REJECT with an optional "
	    "text, or DISCARD. Empty: none.",
	    check_map_spec },
	{ "recipient_access", CFG_STR, "", 0, 0, NULL,
	    "The map consulted for each envelope recipient, with the same "
	    "keys and actions as sender_access. Empty: none.",
	    check_map_spec },
	{ "passwd", CFG_STR, "", 0, 0, NULL,
	    "The password map, read only by the auth service: a user "
	    "(user@domain) maps to a password hash in crypt(3) format "
	    "followed by optional attributes quota=SIZE and enabled=no. "
	    "Empty: no user can log in.",
	    check_map_spec },
	{ "auth_fail_delay", CFG_TIME, "2s", 0, 1 * MIN_MS, NULL,
	    "The fixed delay before the auth service answers each failed "
	    "login, on top of any penalty of the client address. It does "
	    "not grow, and never delays a successful login.",
	    NULL },
	{ "auth_penalty_delay", CFG_TIME, "2s", 0, 1 * MIN_MS, NULL,
	    "The penalty of a client address (an IPv6 client's /64) after "
	    "one recent failed login from it; it doubles with each further "
	    "one, up to auth_penalty_max. Every answer to that address, "
	    "right password or wrong, waits the penalty. Failures from "
	    "other addresses never count. 0: no penalty.",
	    NULL },
	{ "auth_penalty_max", CFG_TIME, "15s", 0, 10 * MIN_MS, NULL,
	    "The largest penalty of a client address.",
	    NULL },
	{ "auth_fail_delay_max", CFG_TIME, "15s", 0, 10 * MIN_MS, NULL,
	    "The old name of auth_penalty_max, still read (with a warning in "
	    "the log) when auth_penalty_max is not set.",
	    NULL },
	{ "auth_fail_forget", CFG_TIME, "15m", 1 * MIN_MS, 24 * HOUR_MS, NULL,
	    "How long a failed login counts towards the penalty of its "
	    "client address (and the user's failure count in the log).",
	    NULL },
	{ "auth_timeout", CFG_TIME, "30s", 1 * SEC_MS, 5 * MIN_MS, NULL,
	    "How long a daemon waits for the auth service to answer "
	    "before it fails the login as a temporary error.",
	    NULL },
	{ "smtpd_banner", CFG_STR, "$hostname ESMTP postern", 0, 0, NULL,
	    "The text of smtpd's 220 greeting. It should begin with the host "
	    "name; when it begins with a space (hostname empty), the system's "
	    "host name is put in front.",
	    NULL },
	{ "smtpd_max_message_size", CFG_SIZE, "25m", 1024, 4LL * 1024 * 1024 * 1024, NULL,
	    "The largest message smtpd accepts, advertised with SIZE and "
	    "enforced both on MAIL FROM's SIZE= and while the content "
	    "arrives (552 5.3.4).",
	    NULL },
	{ "smtpd_max_recipients", CFG_INT, "1000", 1, 100000, NULL,
	    "The most recipients one message may have; further RCPT "
	    "commands get 452 4.5.3.",
	    NULL },
	{ "smtpd_recipient_overshoot_limit", CFG_INT, "1000", 0, 100000, NULL,
	    "How many RCPT commands of one transaction past "
	    "smtpd_max_recipients (or smtpd_max_envelope_size) are answered "
	    "452 4.5.3 without counting toward smtpd_max_errors, so that a "
	    "client sending too many recipients can still send the message "
	    "to those accepted. Each one past this allowance counts as an "
	    "error.",
	    NULL },
	{ "smtpd_max_errors", CFG_INT, "10", 1, 1000, NULL,
	    "How many refused commands a session may send before smtpd "
	    "answers 421 4.7.0 and closes the connection.",
	    NULL },
	{ "smtpd_max_connections", CFG_INT, "10000", 1, 1000000, NULL,
	    "The most concurrent SMTP connections, counted across all of "
	    "smtpd's processes; more get 421 4.7.0.",
	    NULL },
	{ "smtpd_max_connections_per_ip", CFG_INT, "50", 0, 1000000, NULL,
	    "The most concurrent SMTP connections from one client address "
	    "(for IPv6, from one /64 prefix); 0: no limit.",
	    NULL },
	{ "smtpd_timeout", CFG_TIME, "5m", 1 * SEC_MS, 1 * HOUR_MS, NULL,
	    "How long smtpd waits for the next command (RFC 5321 4.5.3.2 asks "
	    "for at least 5 minutes) before it answers 421 4.4.2 and closes.",
	    NULL },
	{ "smtpd_data_timeout", CFG_TIME, "10m", 1 * SEC_MS, 1 * HOUR_MS, NULL,
	    "How long smtpd waits for more message content inside DATA or "
	    "BDAT before it gives up with 421 4.4.2.",
	    NULL },
	{ "smtpd_sender_login_match", CFG_BOOL, "yes", 0, 0, NULL,
	    "Whether an authenticated client (on submission, smtps, or port "
	    "25 after AUTH) may only use its own address (or the null "
	    "sender) as the envelope sender.",
	    NULL },
	{ "smtpd_max_envelope_size", CFG_SIZE, "256k", 4096, 64LL * 1024 * 1024, NULL,
	    "The most memory one transaction's envelope may take (the "
	    "sender, ENVID, and each recipient with its ORCPT): a RCPT "
	    "that would pass it gets 452 4.5.3, like one past "
	    "smtpd_max_recipients.",
	    NULL },
	{ "smtpd_bare_lf", CFG_ENUM, "reject", 0, 0, "reject normalize",
	    "What smtpd does with a bare LF (a line ending without its CR) "
	    "in the message content of a client that has not authenticated "
	    "and is not in mynetworks. reject: refuse the message with 554 "
	    "5.6.0. normalize: take the bare LF as the end of its line. "
	    "Either way only CRLF . CRLF ends DATA and a bare CR is refused, "
	    "so SMTP smuggling stays impossible.",
	    NULL },
	{ "smtpd_bare_lf_trusted", CFG_ENUM, "normalize", 0, 0, "reject normalize",
	    "The same as smtpd_bare_lf, for clients that have authenticated "
	    "or are in mynetworks (scripts and cron jobs that send LF line "
	    "ends).",
	    NULL },
	{ "smtpd_user_cache_time", CFG_TIME, "10s", 0, 1 * HOUR_MS, NULL,
	    "How long each smtpd process remembers that a local user exists, "
	    "as the auth service's user database answered a recipient "
	    "check, so that mail to the same users does not ask the auth "
	    "service at every RCPT. Only existing users are remembered: a "
	    "removed user is still accepted for at most this long (and "
	    "then bounced by local delivery). 0: ask every time.",
	    NULL },
	{ "pop3d_timeout", CFG_TIME, "10m", 1 * SEC_MS, 24 * HOUR_MS, NULL,
	    "How long pop3d waits for the next command, or for the client "
	    "to read a message being sent, before it closes the connection "
	    "without a response and without deleting anything (RFC 1939 "
	    "asks for at least 10 minutes).",
	    NULL },
	{ "pop3d_max_errors", CFG_INT, "20", 1, 1000, NULL,
	    "How many refused commands (unknown, malformed, too long or not "
	    "valid in the session's state) in a row a POP3 session may send "
	    "before pop3d closes the connection; a command that is accepted "
	    "starts the count again.",
	    NULL },
	{ "pop3d_login_attempts", CFG_INT, "3", 1, 100, NULL,
	    "How many failed logins a POP3 connection may make before "
	    "pop3d closes it.",
	    NULL },
	{ "pop3d_move_new_to_cur", CFG_BOOL, "yes", 0, 0, NULL,
	    "Whether pop3d moves the messages in a Maildir's new/ into cur/ "
	    "when a POP3 session opens the mailbox, as Dovecot does, so "
	    "IMAP clients no longer see them as recent.",
	    NULL },
	{ "pop3d_loopback_secure", CFG_BOOL, "yes", 0, 0, NULL,
	    "Whether pop3d treats a client on a loopback address (127.0.0.0/8, "
	    "::1) as secure, allowing USER/PASS and AUTH without TLS, as "
	    "Dovecot does, so local tools and webmail on the same host work.",
	    NULL },
	{ "pop3d_plaintext_auth", CFG_BOOL, "no", 0, 0, NULL,
	    "Whether pop3d allows USER/PASS and AUTH on connections without "
	    "TLS from any client. No: a client must use STLS or port 995 "
	    "first (unless it is on loopback and pop3d_loopback_secure is "
	    "yes).",
	    NULL },
	{ "pop3d_max_connections", CFG_INT, "10000", 1, 1000000, NULL,
	    "The most concurrent POP3 connections, counted across all of "
	    "pop3d's processes; more get -ERR [SYS/TEMP] and are closed.",
	    NULL },
	{ "pop3d_max_connections_per_ip", CFG_INT, "100", 0, 1000000, NULL,
	    "The most concurrent POP3 connections from one client address "
	    "(for IPv6, from one /64 prefix); 0: no limit.",
	    NULL },
	{ "queue_minfree", CFG_SIZE, "0", 0, 65536LL * 1024 * 1024 * 1024, NULL,
	    "The free space the spool's file system keeps: while less is "
	    "free, or fewer than 1000 inodes, smtpd answers MAIL with 452 "
	    "4.3.1 and sendmail(1) refuses the message, and so they do for "
	    "a message whose declared SIZE would leave less. 0: the larger "
	    "of 100m and 1.5 times smtpd_max_message_size.",
	    NULL },
	{ "queue_retry_min", CFG_TIME, "5m", 1 * SEC_MS, 24 * HOUR_MS, NULL,
	    "How long qmgr waits before it retries a recipient that failed "
	    "temporarily for the first time; each further failure doubles "
	    "the wait, up to queue_retry_max.",
	    NULL },
	{ "queue_retry_max", CFG_TIME, "1h", 1 * SEC_MS, 7 * 24 * HOUR_MS, NULL,
	    "The longest wait between two delivery attempts of a deferred "
	    "recipient.",
	    NULL },
	{ "maximal_queue_lifetime", CFG_TIME, "5d", 1 * SEC_MS, 100 * 24 * HOUR_MS, NULL,
	    "How long a message may stay in the queue: a recipient that "
	    "still fails temporarily after this time is bounced. Mail "
	    "waiting for the relay agent to become available is kept.",
	    NULL },
	{ "delay_warning_time", CFG_TIME, "0", 0, 100 * 24 * HOUR_MS, NULL,
	    "After how long in the queue the sender of a message that is "
	    "still deferred gets a delay warning (once). 0: never.",
	    NULL },
	{ "qmgr_local_concurrency", CFG_INT, "10", 1, 1000, NULL,
	    "The most delivery requests qmgr has in flight to the local "
	    "delivery agent at once.",
	    NULL },
	{ "qmgr_destination_concurrency", CFG_INT, "20", 1, 1000, NULL,
	    "The most delivery requests qmgr has in flight to the relay "
	    "agent at once.",
	    NULL },
	{ "qmgr_domain_concurrency", CFG_INT, "20", 1, 1000, NULL,
	    "The most delivery requests qmgr has in flight to one "
	    "destination, a recipient domain of one delivery agent, at "
	    "once. Mail to other domains is not held up by a domain at its "
	    "limit.",
	    NULL },
	{ "postmaster_address", CFG_STR, "", 0, 0, NULL,
	    "Where qmgr sends postmaster notices (a bounce that cannot be "
	    "returned to its sender). Empty: postmaster@ followed by "
	    "hostname, which arrives only if that is a local domain.",
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
	{ "sandbox", CFG_BOOL, "yes", 0, 0, NULL,
	    "Whether the daemon confines itself, once set up, to the system "
	    "calls its job needs (a seccomp allow-list; a call outside it "
	    "kills the process, which master logs and restarts). no: only for "
	    "debugging. Has no effect if postern was built without seccomp.",
	    NULL },
};
const size_t config_service_nkeys =
    sizeof(config_service_keys) / sizeof(config_service_keys[0]);
