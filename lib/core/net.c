/*
 * net: parsing of listen addresses, binding of TCP and Unix listeners, and
 * fd utilities.  Listeners are bound by master and passed to daemons.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

/* Whether s is a valid tag: [a-z0-9_-]{1,32}. */
static int
tag_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32)
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_' || *s == '-'))
			return 0;
	return 1;
}

int
net_parse_listen(const char *s, struct net_listen *l_r, const char **error_r)
{
	struct net_listen l;
	const char *slash = strchr(s, '/');
	size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
	const char *host, *port, *rb;
	unsigned char bin[sizeof(struct in6_addr)];
	size_t hostlen, portlen;

	memset(&l, 0, sizeof(l));
	if (s[0] == '[') {
		rb = memchr(s, ']', n);
		if (rb == NULL) {
			*error_r = "missing ']' after the IPv6 address";
			return -1;
		}
		host = s + 1;
		hostlen = (size_t)(rb - host);
		if (rb + 1 == s + n || rb[1] != ':') {
			*error_r = "missing ':PORT' after the address";
			return -1;
		}
		port = rb + 2;
	} else {
		port = memchr(s, ':', n);
		if (port == NULL) {
			*error_r = "missing ':PORT' after the address";
			return -1;
		}
		host = s;
		hostlen = (size_t)(port - s);
		port++;
		if (memchr(port, ':', (size_t)(s + n - port)) != NULL) {
			*error_r = "an IPv6 address must be written in brackets, as in [::1]:25";
			return -1;
		}
	}
	if (hostlen == 0 || hostlen >= sizeof(l.host)) {
		*error_r = s[0] == '[' ? "not an IPv6 address between '[' and ']'" :
		    "the host must be an IPv4 address, an IPv6 address in brackets, "
		    "'*' or 'localhost'";
		return -1;
	}
	memcpy(l.host, host, hostlen);
	l.host[hostlen] = '\0';
	if (s[0] == '[') {
		if (inet_pton(AF_INET6, l.host, bin) != 1) {
			*error_r = "not an IPv6 address between '[' and ']'";
			return -1;
		}
	} else if (strcmp(l.host, "*") != 0 && strcmp(l.host, "localhost") != 0 &&
	    inet_pton(AF_INET, l.host, bin) != 1) {
		*error_r = "the host must be an IPv4 address, an IPv6 address in "
		    "brackets, '*' or 'localhost'";
		return -1;
	}
	portlen = (size_t)(s + n - port);
	if (portlen == 0 || portlen > 5 || strspn(port, "0123456789") < portlen) {
		*error_r = "the port must be a number from 1 to 65535";
		return -1;
	}
	for (size_t i = 0; i < portlen; i++)
		l.port = l.port * 10 + (unsigned)(port[i] - '0');
	if (l.port < 1 || l.port > 65535) {
		*error_r = "the port must be a number from 1 to 65535";
		return -1;
	}
	if (slash != NULL) {
		if (!tag_ok(slash + 1)) {
			*error_r = "the tag after '/' must be 1 to 32 characters from "
			    "a-z, 0-9, '_' and '-'";
			return -1;
		}
		memcpy(l.tag, slash + 1, strlen(slash + 1) + 1);
	}
	*l_r = l;
	return 0;
}

void
net_listen_format(const struct net_listen *l, char *out, size_t outlen)
{
	int v6 = strchr(l->host, ':') != NULL;

	snprintf(out, outlen, "%s%s%s:%u%s%s", v6 ? "[" : "", l->host,
	    v6 ? "]" : "", l->port, l->tag[0] ? "/" : "", l->tag);
}

int
fd_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl) < 0 ? -1 : 0;
}

int
fd_set_cloexec(int fd, int on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -1;
	fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
	return fcntl(fd, F_SETFD, fl) < 0 ? -1 : 0;
}

int
fd_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Create a listening socket bound to sa; -1 with *error_r on failure. */
static int
bind_sockaddr(const struct sockaddr *sa, socklen_t salen, int v6only,
    int backlog, const char *what, const char **error_r)
{
	int fd, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = err_fmt("socket for %s: %s", what, strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)) {
		*error_r = err_fmt("setsockopt for %s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, sa, salen) < 0) {
		*error_r = err_fmt("bind %s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, backlog) < 0) {
		*error_r = err_fmt("listen %s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
net_bind_inet(const struct net_listen *l, int backlog, const char **error_r)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char what[128];
	int fd;

	net_listen_format(l, what, sizeof(what));
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)l->port);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((uint16_t)l->port);
	if (strcmp(l->host, "*") == 0) {
		sin6.sin6_addr = in6addr_any;
		fd = bind_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), 0,
		    backlog, what, error_r);
		if (fd >= 0 || errno != EAFNOSUPPORT)
			return fd;
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (strcmp(l->host, "localhost") == 0) {
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (strchr(l->host, ':') != NULL) {
		if (inet_pton(AF_INET6, l->host, &sin6.sin6_addr) != 1) {
			*error_r = err_fmt("bad IPv6 address in %s", what);
			return -1;
		}
		return bind_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), 1,
		    backlog, what, error_r);
	} else if (inet_pton(AF_INET, l->host, &sin.sin_addr) != 1) {
		*error_r = err_fmt("bad IPv4 address in %s", what);
		return -1;
	}
	return bind_sockaddr((struct sockaddr *)&sin, sizeof(sin), 0, backlog,
	    what, error_r);
}

/* Fill a sockaddr_un for path; -1 with *error_r if it is too long. */
static int
unix_addr(const char *path, struct sockaddr_un *sun, const char **error_r)
{
	size_t n = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sun->sun_path)) {
		*error_r = err_fmt("socket path too long (max %zu bytes): %s",
		    sizeof(sun->sun_path) - 1, path);
		return -1;
	}
	memcpy(sun->sun_path, path, n + 1);
	return 0;
}

int
net_bind_unix(const char *path, mode_t mode, uid_t uid, gid_t gid, int backlog,
    const char **error_r)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (unix_addr(path, &sun, error_r) < 0)
		return -1;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*error_r = err_fmt("%s exists and is not a socket", path);
			return -1;
		}
		if (unlink(path) < 0) {
			*error_r = err_fmt("unlink stale socket %s: %s", path, strerror(errno));
			return -1;
		}
	}
	fd = bind_sockaddr((struct sockaddr *)&sun, sizeof(sun), 0, backlog,
	    path, error_r);
	if (fd < 0)
		return -1;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0) {
		*error_r = err_fmt("chown %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, mode) < 0) {
		*error_r = err_fmt("chmod %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
net_connect_unix(const char *path, const char **error_r)
{
	struct sockaddr_un sun;
	int fd;

	if (unix_addr(path, &sun, error_r) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = err_fmt("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		*error_r = err_fmt("connect %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The socket address of a numeric host and a port.  0, or -1 with
 * *error_r. */
static int
inet_address(const char *host, unsigned port, struct sockaddr_storage *ss,
    socklen_t *len_r, const char **error_r)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len_r = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*sin6);
	} else {
		*error_r = err_fmt("not a numeric address: %s", log_safe(host));
		return -1;
	}
	return 0;
}

/* A TCP socket for host:port, connected (blocking) or with the connect
 * under way (nonblock).  fd, or -1 with *error_r. */
static int
inet_connect(const char *host, unsigned port, int nonblock,
    struct sockaddr_storage *ss, const char **error_r)
{
	socklen_t salen;
	int fd;

	if (inet_address(host, port, ss, &salen, error_r) < 0)
		return -1;
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		*error_r = err_fmt("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)ss, salen) < 0 &&
	    !(nonblock && errno == EINPROGRESS)) {
		*error_r = err_fmt("connect %s port %u: %s", host, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
net_connect_inet(const char *host, unsigned port, const char **error_r)
{
	struct sockaddr_storage ss;

	return inet_connect(host, port, 0, &ss, error_r);
}

int
net_connect_inet_start(const char *host, unsigned port,
    struct sockaddr_storage *peer_r, const char **error_r)
{
	struct sockaddr_storage ss;
	int fd = inet_connect(host, port, 1, &ss, error_r);

	if (fd >= 0)
		*peer_r = ss;
	return fd;
}

void
net_addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	const void *a;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else {
		snprintf(out, outlen, "%s", sa->sa_family == AF_UNIX ? "unix" : "unknown");
		return;
	}
	if (inet_ntop(sa->sa_family, a, out, (socklen_t)outlen) == NULL)
		snprintf(out, outlen, "unknown");
}

int
net_parse_cidr(const char *s, struct net_cidr *c_r, const char **error_r)
{
	struct net_cidr c;
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hn = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long bits;
	unsigned maxbits;

	memset(&c, 0, sizeof(c));
	if (hn >= 2 && s[0] == '[' && s[hn - 1] == ']') {
		s++;
		hn -= 2;
	}
	if (hn == 0 || hn >= sizeof(host)) {
		*error_r = "a network is ADDRESS or ADDRESS/BITS";
		return -1;
	}
	memcpy(host, s, hn);
	host[hn] = '\0';
	if (inet_pton(AF_INET, host, c.addr) == 1) {
		c.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, c.addr) == 1) {
		c.family = AF_INET6;
		maxbits = 128;
	} else {
		*error_r = "not an IPv4 or IPv6 address";
		return -1;
	}
	bits = maxbits;
	if (slash != NULL) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3) {
			*error_r = "the prefix length must be a number";
			return -1;
		}
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > maxbits) {
			*error_r = err_fmt("the prefix length must be 0 to %u", maxbits);
			return -1;
		}
	}
	c.bits = (unsigned)bits;
	for (unsigned i = c.bits; i < maxbits; i++) {
		if (c.addr[i / 8] & (0x80 >> (i % 8))) {
			*error_r = "host bits set after the prefix (write the network address)";
			return -1;
		}
	}
	*c_r = c;
	return 0;
}

int
net_cidr_match(const struct net_cidr *c, const struct sockaddr *addr)
{
	const unsigned char *a;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	int family = addr->sa_family;

	if (family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr;
	} else if (family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
		if (c->family == AF_INET && memcmp(a, mapped, 12) == 0) {
			a += 12;
			family = AF_INET;
		}
	} else {
		return 0;
	}
	if (family != c->family)
		return 0;
	for (unsigned i = 0; i < c->bits / 8; i++)
		if (a[i] != c->addr[i])
			return 0;
	if (c->bits % 8) {
		unsigned char m = (unsigned char)(0xff << (8 - c->bits % 8));

		if ((a[c->bits / 8] & m) != c->addr[c->bits / 8])
			return 0;
	}
	return 1;
}

/* Whether sa is a loopback address (v4, v6 or IPv4-mapped v4). */
int
net_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
		    in6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* The configured host name, else the system's, else "localhost". */
const char *
net_hostname(const char *configured, char *buf, size_t len)
{
	if (configured != NULL && configured[0] != '\0')
		return configured;
	if (len < 2 || gethostname(buf, len - 1) < 0)
		return "localhost";
	buf[len - 1] = '\0';
	return buf[0] != '\0' ? buf : "localhost";
}
