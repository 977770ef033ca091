/*
 * qmgrproto: the client side of qmgr's notice socket, shared by smtpd
 * (after a DATA) and sendmail(1) (after a maildrop submission): a
 * one-way link that is itself the notice (docs/design.md, qmgr).
 */
#include "autoconf.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "ipc.h"
#include "log.h"
#include "qmgrproto.h"

int
qmgr_notify(const char *path, const char *const *ids, size_t n,
    const char **error_r)
{
	struct sockaddr_un sun;
	struct buf out = BUF_INIT;
	size_t plen = strlen(path);
	ssize_t sent;
	int fd, saved;

	if (plen >= sizeof(sun.sun_path)) {
		*error_r = "socket path too long";
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = err_fmt("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		saved = errno;
		close(fd);
		if (saved == ENOENT || saved == ECONNREFUSED)
			return 0;
		*error_r = err_fmt("connect %s: %s", path, strerror(saved));
		return -1;
	}
	for (size_t i = 0; i <= n; i++) {
		struct ipc_msg m;

		if (i == 0) {
			ipc_msg_init(&m, IPC_HELLO, 0);
			ipc_put_str(&m, QMGR_NOTIFY_PROTO);
		} else {
			ipc_msg_init(&m, QMGR_NOTIFY, (uint32_t)i);
			ipc_put_str(&m, ids[i - 1]);
		}
		ipc_msg_encode(&m, &out);
		ipc_msg_free(&m);
	}
	sent = send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	saved = errno;
	buf_free(&out);
	close(fd);
	if (sent < 0) {
		*error_r = err_fmt("send: %s", strerror(saved));
		return -1;
	}
	return 1;
}
