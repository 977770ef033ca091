/*
 * net: listening sockets and small fd utilities.  master binds every
 * listener (so daemons never need privileges to bind port 25) and hands
 * the fds to the daemons.
 */
#ifndef POSTERN_NET_H
#define POSTERN_NET_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A parsed `listen` item: HOST:PORT[/TAG]. */
struct net_listen {
	char host[64];		/* "127.0.0.1", "::1" (no brackets), "*", "localhost" */
	unsigned port;		/* 1..65535 */
	char tag[33];		/* "" when absent */
};

/* Parse "127.0.0.1:25", "[::1]:143/imap", "*:587/submission".  0, or -1
 * with *error_r; *l_r is untouched on failure. */
int net_parse_listen(const char *s, struct net_listen *l_r, const char **error_r)
	__attribute__((warn_unused_result));
/* The canonical text of a listener ("[::1]:143/imap"), into out (>= 128). */
void net_listen_format(const struct net_listen *l, char *out, size_t outlen);

/* Bind and listen on l (SO_REUSEADDR; "*" is the IPv6 wildcard accepting
 * IPv4 too, or 0.0.0.0 where IPv6 is missing).  Returns a non-blocking,
 * close-on-exec fd, or -1 with *error_r. */
int net_bind_inet(const struct net_listen *l, int backlog, const char **error_r)
	__attribute__((warn_unused_result));
/* Bind and listen on the Unix socket path (a stale socket there is
 * removed; any other file is an error), then chown (uid/gid -1: leave) and
 * chmod it.  Returns a non-blocking, close-on-exec fd, or -1 with *error_r. */
int net_bind_unix(const char *path, mode_t mode, uid_t uid, gid_t gid, int backlog,
    const char **error_r) __attribute__((warn_unused_result));
/* Connect to a Unix socket (blocking).  fd, or -1 with *error_r. */
int net_connect_unix(const char *path, const char **error_r) __attribute__((warn_unused_result));
/* Connect to host:port over TCP (blocking, numeric host).  fd or -1. */
int net_connect_inet(const char *host, unsigned port, const char **error_r)
	__attribute__((warn_unused_result));
/* Start connecting to host:port over TCP without waiting (numeric host):
 * a non-blocking, close-on-exec fd whose connect is under way or done
 * (wait for it to be writable, then read SO_ERROR), and the address in
 * *peer_r.  fd, or -1 with *error_r (*peer_r untouched). */
int net_connect_inet_start(const char *host, unsigned port,
    struct sockaddr_storage *peer_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Set or clear O_NONBLOCK / FD_CLOEXEC.  0 or -1 with errno. */
int fd_set_nonblock(int fd, int on) __attribute__((warn_unused_result));
int fd_set_cloexec(int fd, int on) __attribute__((warn_unused_result));
/* Write all n bytes, retrying on EINTR and short writes (blocking fds).
 * 0 or -1 with errno. */
int fd_write_all(int fd, const void *p, size_t n) __attribute__((warn_unused_result));
/* A network in CIDR form: 10.0.0.0/8, 127.0.0.1, [::1]/128, ::1/128. */
struct net_cidr {
	int family;			/* AF_INET or AF_INET6 */
	unsigned char addr[16];		/* network address, host bits cleared */
	unsigned bits;			/* prefix length */
};

/* Parse a CIDR network (a bare address is a /32 or /128).  0, or -1 with
 * *error_r (bad address, prefix too long, host bits set). */
int net_parse_cidr(const char *s, struct net_cidr *c_r, const char **error_r)
	__attribute__((warn_unused_result));
/* 1 if addr (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as IPv4) is
 * inside the network, else 0. */
int net_cidr_match(const struct net_cidr *c, const struct sockaddr *addr);

/* The text form of a socket address ("127.0.0.1", "::1"), into out. */
void net_addr_text(const struct sockaddr *sa, char *out, size_t outlen);
/* 1 if sa is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped
 * 127.0.0.0/8), else 0. */
int net_is_loopback(const struct sockaddr *sa);
/* The host name to use: configured when it is non-empty, else the
 * system's (gethostname, into buf of len bytes), else "localhost".  The
 * result is configured, buf or a constant; never NULL. */
const char *net_hostname(const char *configured, char *buf, size_t len);

#endif
