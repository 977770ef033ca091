/*
 * Shared fixtures of the lib/core/ipc unit tests (test_ipc, test_ipc_link):
 * the message types of a small test protocol, and payloads and whole
 * frames built from a table of pieces.
 */
#ifndef POSTERN_IPC_UTIL_H
#define POSTERN_IPC_UTIL_H

#include <stdint.h>

#include "check_util.h"
#include "buf.h"
#include "ipc.h"

/* Message types of the test protocol. */
#define T_PING	(IPC_TYPE_USER + 0)	/* u32 */
#define T_FD	(IPC_TYPE_USER + 1)	/* str, u64, fd */
#define T_DATA	(IPC_TYPE_USER + 2)	/* data */
#define T_LAZY	(IPC_TYPE_USER + 3)	/* u32 u32, handler reads one */
#define T_FDS2	(IPC_TYPE_USER + 4)	/* two fds, handler takes one */
#define T_REFUSE (IPC_TYPE_USER + 5)	/* handler returns -1 */

static const struct ipc_type test_types[] = {
	{ T_PING, 4, 4, 0 },
	{ T_FD, 4 + 1 + 8, 4 + 64 + 1 + 8, 1 },
	{ T_DATA, 4, IPC_MAX_PAYLOAD, 0 },
	{ T_LAZY, 4, 64, 0 },
	{ T_FDS2, 0, 0, 2 },
	{ T_REFUSE, 0, 0, 0 },
};

/* --- Building payloads from a table ------------------------------------------- */

enum piece_kind { P_END, P_U32, P_U64, P_STR, P_NULLSTR, P_DATA, P_RAW };

struct piece {
	enum piece_kind kind;
	uint64_t v;		/* P_U32, P_U64 */
	const char *s;		/* P_STR, P_DATA, P_RAW */
	size_t n;		/* P_DATA, P_RAW */
};

#define MAX_PIECES 6

/* Append pieces (up to P_END) to m's payload. */
static inline void
put_pieces(struct ipc_msg *m, const struct piece *p)
{
	for (; p->kind != P_END; p++) {
		switch (p->kind) {
		case P_U32:
			ipc_put_u32(m, (uint32_t)p->v);
			break;
		case P_U64:
			ipc_put_u64(m, p->v);
			break;
		case P_STR:
			ipc_put_str(m, p->s);
			break;
		case P_NULLSTR:
			ipc_put_str(m, NULL);
			break;
		case P_DATA:
			ipc_put_data(m, p->s, p->n);
			break;
		case P_RAW:
			ck_assert_int_eq(buf_append(&m->payload, p->s, p->n), 0);
			break;
		case P_END:
			break;
		}
	}
}

/* Append a frame (header then payload, len_field as the declared length
 * or UINT64_MAX for the real one) to out. */
static inline void
frame_bytes(struct buf *out, uint32_t type, uint32_t id,
    const struct piece *pieces, uint64_t len_field)
{
	struct ipc_msg m;
	uint32_t len;

	ipc_msg_init(&m, type, id);
	put_pieces(&m, pieces);
	len = len_field == UINT64_MAX ? (uint32_t)m.payload.len :
	    (uint32_t)len_field;
	ck_assert_int_eq(buf_append(out, &type, 4), 0);
	ck_assert_int_eq(buf_append(out, &len, 4), 0);
	ck_assert_int_eq(buf_append(out, &id, 4), 0);
	ck_assert_int_eq(buf_append(out, m.payload.data != NULL ?
	    m.payload.data : "", m.payload.len), 0);
	ipc_msg_free(&m);
}

/* Append a hello naming name. */
static inline void
hello_bytes(struct buf *out, const char *name)
{
	struct piece p[2] = { { P_STR, 0, name, 0 }, { P_END, 0, NULL, 0 } };

	frame_bytes(out, IPC_HELLO, 0, p, UINT64_MAX);
}

/* A frame in a table: its type, its payload, and the length its header
 * declares. */
struct rawframe {
	uint32_t type;
	struct piece in[MAX_PIECES];
	uint64_t len_field;	/* 0 here means "the real length" */
};

#endif
