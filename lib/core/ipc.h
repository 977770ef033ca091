/*
 * ipc: framed, typed messages between postern processes over Unix-domain
 * stream sockets, with file descriptors passed by SCM_RIGHTS.
 *
 * Frame: a fixed 12-byte header in host byte order (both ends are on the
 * same machine) -- u32 type, u32 payload length, u32 id -- then the payload.
 * File descriptors travel with the first byte of their frame's header.
 * Payload fields are written with ipc_put_* and read through a cursor
 * (ipc_get_*) that fails on any short field or missing NUL; a handler calls
 * ipc_get_end() last, which fails on leftover bytes or unclaimed fds.  Any
 * failure closes the link with a log line: nothing malformed is trusted.
 *
 * Every link opens with an IPC_HELLO frame from each side naming the
 * protocol and version (a string like "postern-qmgr/1"); a mismatch closes
 * the link.  Types below IPC_TYPE_USER are reserved for the library.
 */
#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "ev.h"

#define IPC_HEADER_SIZE 12
#define IPC_MAX_PAYLOAD (1024 * 1024)	/* hard ceiling for any frame */
#define IPC_MAX_FDS 8			/* per frame */

#define IPC_HELLO 1		/* payload: str protocol */
#define IPC_TYPE_USER 16	/* first type free for protocols */

/* --- Building a message -------------------------------------------------- */

struct ipc_msg {
	uint32_t type;
	uint32_t id;
	struct buf payload;
	int fds[IPC_MAX_FDS];	/* not owned: the sender keeps its fds */
	size_t nfds;
};

/* Start an empty message of the given type and id. */
void ipc_msg_init(struct ipc_msg *m, uint32_t type, uint32_t id);
void ipc_msg_free(struct ipc_msg *m);
void ipc_put_u32(struct ipc_msg *m, uint32_t v);
void ipc_put_u64(struct ipc_msg *m, uint64_t v);
/* A string: u32 length, the bytes, then a NUL (s may be NULL: length
 * UINT32_MAX, read back as NULL). */
void ipc_put_str(struct ipc_msg *m, const char *s);
/* Opaque bytes: u32 length then the bytes. */
void ipc_put_data(struct ipc_msg *m, const void *p, size_t n);
/* Attach an fd (panics past IPC_MAX_FDS). */
void ipc_put_fd(struct ipc_msg *m, int fd);
/* Append m as a whole frame (header and payload) to out, for a sender
 * that writes several frames with one call of its own.  m must carry no
 * fds; a payload past IPC_MAX_PAYLOAD panics. */
void ipc_msg_encode(const struct ipc_msg *m, struct buf *out);

/* --- Reading a message ----------------------------------------------------- */

struct ipc_cursor {
	const unsigned char *p;
	size_t len, off;
	int *fds;		/* fds received with the frame */
	size_t nfds, fd_off;
	const char *error;	/* first failure, for the log line */
};

/* Each returns 0 and stores the value, or -1 (value untouched, cursor
 * marked failed) if the payload is short or malformed. */
int ipc_get_u32(struct ipc_cursor *c, uint32_t *v_r) __attribute__((warn_unused_result));
int ipc_get_u64(struct ipc_cursor *c, uint64_t *v_r) __attribute__((warn_unused_result));
/* *s_r points into the frame (valid during the handler); NUL-terminated,
 * without embedded NULs; NULL if the sender put NULL. */
int ipc_get_str(struct ipc_cursor *c, const char **s_r) __attribute__((warn_unused_result));
int ipc_get_data(struct ipc_cursor *c, const void **p_r, size_t *n_r)
	__attribute__((warn_unused_result));
/* Take the next received fd: the caller owns it from now on (its slot in
 * the frame is set to -1, so nothing else closes it). */
int ipc_get_fd(struct ipc_cursor *c, int *fd_r) __attribute__((warn_unused_result));
/* 0 if every byte and fd was consumed, else -1.  Closes nothing: the
 * link, ipc_frame_free() or ipc_decoder_next() close unclaimed fds. */
int ipc_get_end(struct ipc_cursor *c) __attribute__((warn_unused_result));

/* --- Links over the event loop ---------------------------------------------- */

struct ipc_link;

/* The message types a protocol accepts, with payload bounds. */
struct ipc_type {
	uint32_t type;
	uint32_t min_len, max_len;	/* payload length bounds */
	uint32_t max_fds;		/* fds allowed with this type */
};

/*
 * A protocol is a name, a table and two callbacks, e.g.:
 *
 *	#define QMGR_DELIVER (IPC_TYPE_USER + 0)  // u64 queue id, str rcpt, fd
 *	static const struct ipc_type qmgr_types[] = {
 *		{ QMGR_DELIVER, 8 + 4 + 1, 8 + 4 + 1024 + 1, 1 },
 *	};
 *	static const struct ipc_proto qmgr_proto = { "postern-qmgr/1",
 *	    qmgr_types, 1, qmgr_on_msg, qmgr_on_close };
 *
 * on_msg switches on the type, reads every field through the cursor and
 * ends with ipc_get_end(); frames outside the table never reach it.
 */
struct ipc_proto {
	const char *name;		/* e.g. "postern-master/1" */
	const struct ipc_type *types;	/* accepted types */
	size_t ntypes;
	/*
	 * A valid frame arrived.  Return 0 to continue, or -1 to close the link
	 * (after logging why); fds the handler did not take are closed.  It may
	 * call ipc_link_send() but must not free the link (return -1 instead).
	 */
	int (*on_msg)(struct ipc_link *l, uint32_t type, uint32_t id,
	    struct ipc_cursor *c, void *arg);
	/* The link closed (peer EOF, error, or a protocol violation). The owner
	 * must call ipc_link_free() (it may do so here). */
	void (*on_close)(struct ipc_link *l, const char *why, void *arg);
};

/* Wrap a connected Unix stream socket (made non-blocking) and send our
 * hello.  The peer's hello must come first and name the same protocol.
 * The link owns fd from now on and closes it.  proto must outlive the link;
 * a malformed type table (reserved or duplicate types, bounds past
 * IPC_MAX_PAYLOAD or IPC_MAX_FDS) panics. */
struct ipc_link *ipc_link_new(struct ev_loop *loop, int fd,
    const struct ipc_proto *proto, void *arg);
/* Close the link if still open (no on_close call), free it, set *lp = NULL. */
void ipc_link_free(struct ipc_link **lp);
/* Queue a message (its fds are dup'd, so the caller keeps its own).
 * 0, or -1 if the link is closed or the output backlog is too large. */
int ipc_link_send(struct ipc_link *l, const struct ipc_msg *m)
	__attribute__((warn_unused_result));
/* The peer's credentials (SO_PEERCRED), 0 on success. */
int ipc_link_peer(struct ipc_link *l, pid_t *pid_r, uid_t *uid_r, gid_t *gid_r)
	__attribute__((warn_unused_result));

/* --- Blocking helpers for command-line tools and tests ----------------------- */

/* Connect to the Unix socket at path and exchange hellos for protocol.
 * Returns the fd, or -1 with *error_r set. */
int ipc_connect(const char *path, const char *protocol, const char **error_r)
	__attribute__((warn_unused_result));
/* Send one message, blocking.  0 or -1. */
int ipc_send_blocking(int fd, const struct ipc_msg *m) __attribute__((warn_unused_result));
/*
 * Receive one frame, blocking up to timeout_ms (-1: forever), into *frame
 * (payload in frame->payload, received fds in frame->fds).  1 got one,
 * 0 EOF, -1 error or malformed (with *error_r).  *frame need not be
 * initialised; after 1 the caller owns it and releases it with
 * ipc_frame_free().  Any type is accepted (the caller checks it); lengths
 * and fd counts are bounded by IPC_MAX_PAYLOAD and IPC_MAX_FDS.  Never
 * reads past the frame, so the fd can be handed to ipc_link_new() after.
 * After -1 the stream position is lost: close the fd.
 */
int ipc_recv_blocking(int fd, struct ipc_msg *frame, int timeout_ms,
    const char **error_r) __attribute__((warn_unused_result));
/* A cursor over a received frame's payload and fds. */
void ipc_cursor_init(struct ipc_cursor *c, struct ipc_msg *frame);
/* Release a frame from ipc_recv_blocking(): free the payload and close
 * the fds no cursor took. */
void ipc_frame_free(struct ipc_msg *frame);

/* --- Decoding a byte stream (used by links; also for tests and fuzzers) ---- */

/*
 * A decoder turns the bytes (and fds) read from a socket into validated
 * frames.  It asks for at most the rest of the current frame, so each read
 * ends at a frame boundary; fds must arrive with a frame's first header
 * byte.  With a proto it enforces the hello (handled inside, never handed
 * out) and the type table; with proto NULL it accepts any type with at most
 * IPC_MAX_PAYLOAD bytes and IPC_MAX_FDS fds.
 */
struct ipc_decoder;

struct ipc_decoder *ipc_decoder_new(const struct ipc_proto *proto);
/* Free the decoder, closing any fds it still holds; sets *dp = NULL. */
void ipc_decoder_free(struct ipc_decoder **dp);
/* How many bytes to feed next (> 0), or 0 after a failure or while a
 * complete frame awaits ipc_decoder_next(). */
size_t ipc_decoder_want(const struct ipc_decoder *d);
/*
 * Feed n bytes (1 <= n <= ipc_decoder_want()) and the nfds fds read with
 * them; the decoder owns those fds from now on.  1 a frame is complete
 * (see ipc_decoder_frame), 0 more is needed, -1 the stream is invalid
 * (*error_r is a short reason token; the decoder accepts nothing more).
 */
int ipc_decoder_feed(struct ipc_decoder *d, const void *p, size_t n,
    const int *fds, size_t nfds, const char **error_r)
	__attribute__((warn_unused_result));
/* After feed returned 1: the frame's type and id, and a cursor over it
 * (valid until ipc_decoder_next). */
void ipc_decoder_frame(struct ipc_decoder *d, uint32_t *type_r, uint32_t *id_r,
    struct ipc_cursor *c);
/* Finish the frame read through c: close the fds it left, and fail (-1,
 * *error_r) if it failed or left bytes or fds; else 0 and ready for more. */
int ipc_decoder_next(struct ipc_decoder *d, struct ipc_cursor *c,
    const char **error_r) __attribute__((warn_unused_result));

#endif
