/*
 * ipc_impl: what lib/core/ipc.c (framing, decoding, links) shares with
 * lib/core/ipc_blocking.c (the blocking helpers) and nothing else: limits,
 * the control-message buffer, the clock and the socket primitives.
 */
#ifndef POSTERN_IPC_IMPL_H
#define POSTERN_IPC_IMPL_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stdint.h>

#include "buf.h"
#include "ipc.h"

#define IPC_NAME_MAX 255		/* longest protocol name in a hello */
#define IPC_HELLO_MIN_LEN (4 + 1 + 1)	/* u32 length, a byte, the NUL */
#define IPC_HELLO_MAX_LEN (4 + IPC_NAME_MAX + 1)
#define IPC_BACKLOG_MAX (8 * 1024 * 1024)	/* queued output bytes per link */
#define IPC_BACKLOG_FDS 256		/* queued output fds per link */
#define IPC_READ_CHUNK 65536		/* largest single read */
#define IPC_READ_BUDGET 64		/* reads per readiness callback */
#define IPC_WRITE_IOV 16		/* frames gathered per sendmsg */
#define IPC_CONNECT_TIMEOUT_MS 10000	/* ipc_connect: connect + hellos */

/* Room for the most fds a frame may carry, in a control message. */
union ipc_cmsg {
	struct cmsghdr hdr;
	char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
};

/* A decoder: the frame being assembled from the byte stream. */
struct ipc_decoder {
	const struct ipc_proto *proto;	/* NULL: generic (blocking reads) */
	int hello_seen;			/* the peer's hello has arrived */
	int complete;			/* a frame awaits ipc_decoder_next */
	const char *error;		/* set once the stream is invalid */
	unsigned char hdr[IPC_HEADER_SIZE];
	size_t hdr_len;			/* header bytes so far */
	uint32_t type, len, id;		/* valid once hdr_len is complete */
	struct buf payload;		/* capped at IPC_MAX_PAYLOAD */
	int fds[IPC_MAX_FDS];		/* owned; -1 once taken or closed */
	size_t nfds;
	struct buf peer_name;		/* the peer's hello, for log lines */
};

/* The socket primitives and clock of lib/core/ipc.c (see there). */
void ipc_attach_fds(struct msghdr *msg, union ipc_cmsg *cm, const int *fds, size_t nfds);
uint64_t ipc_deadline(int timeout_ms);
void ipc_header(unsigned char hdr[IPC_HEADER_SIZE], const struct ipc_msg *m);
uint64_t ipc_now_ms(void);
int ipc_poll_timeout(uint64_t deadline);
ssize_t ipc_recv_some(int fd, void *p, size_t n, int *fds, size_t *nfds_r, const char **error_r);

#endif
