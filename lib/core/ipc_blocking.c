/*
 * ipc_blocking: the blocking helpers over lib/core/ipc's frames, for tools
 * and for a daemon's start-up before its loop runs: send a frame, receive
 * one under a deadline, and connect to a socket with the hello exchange.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "ev.h"
#include "ipc.h"
#include "ipc_impl.h"
#include "log.h"
#include "xalloc.h"

/* --- Blocking helpers ----------------------------------------------------------- */

/* Wait until fd is ready for events or deadline passes.  1 ready, 0 timed
 * out, -1 error. */
static int
ipc_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd;
	int r;

	pfd.fd = fd;
	pfd.events = events;
	do {
		pfd.revents = 0;
		r = poll(&pfd, 1, ipc_poll_timeout(deadline));
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : r;
}

int
ipc_send_blocking(int fd, const struct ipc_msg *m)
{
	unsigned char hdr[IPC_HEADER_SIZE];
	size_t total, sent = 0;
	union ipc_cmsg cm;

	if (m->payload.len > IPC_MAX_PAYLOAD) {
		errno = EMSGSIZE;
		return -1;
	}
	ipc_header(hdr, m);
	total = IPC_HEADER_SIZE + m->payload.len;
	while (sent < total) {
		struct iovec iov[2];
		struct msghdr msg;
		size_t niov = 0;
		ssize_t r;

		memset(&msg, 0, sizeof(msg));
		if (sent < IPC_HEADER_SIZE) {
			iov[niov].iov_base = hdr + sent;
			iov[niov].iov_len = IPC_HEADER_SIZE - sent;
			niov++;
		}
		if (m->payload.len > 0) {
			size_t poff = sent > IPC_HEADER_SIZE ?
			    sent - IPC_HEADER_SIZE : 0;

			iov[niov].iov_base = m->payload.data + poff;
			iov[niov].iov_len = m->payload.len - poff;
			niov++;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = niov;
		if (sent == 0 && m->nfds > 0)
			ipc_attach_fds(&msg, &cm, m->fds, m->nfds);
		r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
			    ipc_wait(fd, POLLOUT, UINT64_MAX) > 0)
				continue;
			return -1;
		}
		sent += (size_t)r;
	}
	return 0;
}

int
ipc_recv_blocking(int fd, struct ipc_msg *frame, int timeout_ms,
    const char **error_r)
{
	uint64_t deadline = ipc_deadline(timeout_ms);
	struct ipc_decoder *d = ipc_decoder_new(NULL);
	unsigned char *chunk = xmalloc(IPC_READ_CHUNK);
	int fds[IPC_MAX_FDS];
	const char *why = NULL;
	size_t want, nfds;
	ssize_t n;
	int r;

	for (;;) {
		want = ipc_decoder_want(d);
		if (want > IPC_READ_CHUNK)
			want = IPC_READ_CHUNK;
		n = ipc_recv_some(fd, chunk, want, fds, &nfds, &why);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = ipc_wait(fd, POLLIN, deadline);

			if (w > 0)
				continue;
			why = w == 0 ? "timeout" : "poll_error";
			r = -1;
		} else if (n < 0) {
			r = -1;
		} else if (n == 0) {
			why = "eof_mid_frame";
			r = d->hdr_len > 0 ? -1 : 0;
		} else if ((r = ipc_decoder_feed(d, chunk, (size_t)n, fds, nfds,
		    &why)) == 0) {
			continue;
		}
		break;
	}
	if (r == 1) {
		/* Move the payload and fds out of the decoder. */
		frame->type = d->type;
		frame->id = d->id;
		frame->payload = d->payload;
		buf_init(&d->payload, 0);
		memcpy(frame->fds, d->fds, sizeof(frame->fds));
		frame->nfds = d->nfds;
		d->nfds = 0;
	} else if (r < 0) {
		*error_r = why;
	}
	free(chunk);
	ipc_decoder_free(&d);
	return r;
}

int
ipc_connect(const char *path, const char *protocol, const char **error_r)
{
	uint64_t deadline = ipc_now_ms() + IPC_CONNECT_TIMEOUT_MS;
	struct sockaddr_un sun;
	struct ipc_cursor c;
	struct ipc_msg m;
	const char *name, *why;
	int fd, fl, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = "socket path too long";
		return -1;
	}
	if (strlen(protocol) > IPC_NAME_MAX || protocol[0] == '\0') {
		*error_r = "bad protocol name";
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*error_r = "socket failed";
		return -1;
	}
	/* A full listen backlog gives EAGAIN: retry until the deadline. */
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && ipc_poll_timeout(deadline) > 0) {
			(void)poll(NULL, 0, 10);
			continue;
		}
		*error_r = errno == EAGAIN ? "connect timed out" : "connect failed";
		goto fail;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		*error_r = "fcntl failed";
		goto fail;
	}
	ipc_msg_init(&m, IPC_HELLO, 0);
	ipc_put_str(&m, protocol);
	r = ipc_send_blocking(fd, &m);
	ipc_msg_free(&m);
	if (r < 0) {
		*error_r = "sending hello failed";
		goto fail;
	}
	r = ipc_recv_blocking(fd, &m, ipc_poll_timeout(deadline), &why);
	if (r <= 0) {
		*error_r = r == 0 ? "closed before hello" :
		    strcmp(why, "timeout") == 0 ? "hello timed out" :
		    "receiving hello failed";
		goto fail;
	}
	ipc_cursor_init(&c, &m);
	if (m.type != IPC_HELLO || ipc_get_str(&c, &name) < 0 ||
	    ipc_get_end(&c) < 0 || name == NULL) {
		*error_r = "malformed hello";
	} else if (strcmp(name, protocol) != 0) {
		*error_r = "protocol mismatch";
	} else {
		ipc_frame_free(&m);
		return fd;
	}
	ipc_frame_free(&m);
fail:
	(void)close(fd);
	return -1;
}
