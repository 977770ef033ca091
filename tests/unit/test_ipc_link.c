/*
 * Unit tests for lib/core/ipc over sockets: links over socketpair() inside
 * an event loop (hellos, fds in both directions and mixed with plain
 * frames, a wrong protocol, every reason a link closes, pipelined,
 * trickled and queued large frames, the output backlog), the blocking
 * helpers, and the qmgr notice client (lib/core/qmgrproto.c) that writes
 * its frames with ipc_msg_encode().  The test protocol and frame builders
 * are in ipc_util.h.  Every loop test runs under a timer that fails it
 * rather than letting it hang.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "buf.h"
#include "ev.h"
#include "ipc.h"
#include "log.h"
#include "qmgrproto.h"
#include "xalloc.h"
#include "ipc_util.h"

#define TEST_TIMEOUT_MS 5000

/* --- Links over an event loop --------------------------------------------------- */

/* One side of a loop test: its link, what it saw, and how it ended. */
struct side {
	struct ipc_link *link;
	struct fixture *fx;
	size_t msgs;		/* frames handled */
	uint32_t last_type, last_id, last_u32;
	uint64_t last_u64;
	size_t data_len;
	uint32_t data_sum;
	int closed;
	char *why;
	size_t stop_after;	/* break the loop after this many frames */
};

struct fixture {
	struct ev_loop *loop;
	struct ev_timer *timer;
	int timed_out;
	int sv[2];
	struct side a, b;
	struct buf log;		/* captured log lines */
	/* A raw writer that trickles bytes into sv[1]. */
	struct ev_io *writer;
	struct buf out;
	size_t out_off, chunk;
};

/* Fail the test rather than hang: stop the loop and note it. */
static void
on_timeout(struct ev_timer *t, void *arg)
{
	struct fixture *fx = arg;

	(void)t;
	fx->timed_out = 1;
	ev_break(fx->loop);
}

/* Keep log lines for assertions. */
static void
capture_log(enum log_level level, const char *line, void *arg)
{
	struct fixture *fx = arg;

	(void)level;
	ck_assert_int_eq(buf_puts(&fx->log, line), 0);
	ck_assert_int_eq(buf_putc(&fx->log, '\n'), 0);
}

/* The test protocol's handler: parse each type strictly and record it. */
static int
side_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct side *s = arg;
	const unsigned char *p;
	const void *data;
	const char *str;
	size_t i;
	int fd;

	(void)l;
	s->last_type = type;
	s->last_id = id;
	switch (type) {
	case T_PING:
		if (ipc_get_u32(c, &s->last_u32) < 0 || ipc_get_end(c) < 0)
			return -1;
		break;
	case T_FD:
		if (ipc_get_str(c, &str) < 0 || ipc_get_u64(c, &s->last_u64) < 0 ||
		    ipc_get_fd(c, &fd) < 0)
			return -1;
		/* Write the string to the fd we were handed. */
		if (str == NULL ||
		    write(fd, str, strlen(str)) != (ssize_t)strlen(str)) {
			close(fd);
			return -1;
		}
		close(fd);
		if (ipc_get_end(c) < 0)
			return -1;
		break;
	case T_DATA:
		if (ipc_get_data(c, &data, &s->data_len) < 0 || ipc_get_end(c) < 0)
			return -1;
		p = data;
		s->data_sum = 0;
		for (i = 0; i < s->data_len; i++)
			s->data_sum = s->data_sum * 31 + p[i];
		break;
	case T_LAZY:
		/* Reads one u32 and leaves the rest: the library must object. */
		if (ipc_get_u32(c, &s->last_u32) < 0)
			return -1;
		break;
	case T_FDS2:
		if (ipc_get_fd(c, &fd) < 0)
			return -1;
		close(fd);
		break;
	case T_REFUSE:
		log_warn("event=test_refuse");
		return -1;
	default:
		ck_abort_msg("handler got type %" PRIu32, type);
	}
	s->msgs++;
	if (s->stop_after != 0 && s->msgs >= s->stop_after)
		ev_break(s->fx->loop);
	return 0;
}

/* The link closed: note why and stop the loop. */
static void
side_close(struct ipc_link *l, const char *why, void *arg)
{
	struct side *s = arg;

	(void)l;
	s->closed = 1;
	free(s->why);
	s->why = xstrdup(why);
	ev_break(s->fx->loop);
}

static const struct ipc_proto proto_v1 = {
	"test/1", test_types, sizeof(test_types) / sizeof(test_types[0]),
	side_msg, side_close,
};

static const struct ipc_proto proto_v2 = {
	"test/2", test_types, sizeof(test_types) / sizeof(test_types[0]),
	side_msg, side_close,
};

/* A loop, a bounding timer, and a connected socket pair. */
static void
fixture_init(struct fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	fx->a.fx = fx;
	fx->b.fx = fx;
	buf_init(&fx->log, 0);
	buf_init(&fx->out, 0);
	fx->loop = ev_loop_new();
	fx->timer = ev_timer_add(fx->loop, TEST_TIMEOUT_MS, 0, on_timeout, fx);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    fx->sv), 0);
	log_set_hook(capture_log, fx);
}

/* Run the loop until something breaks it; fail on the timer. */
static void
fixture_run(struct fixture *fx)
{
	ck_assert_int_eq(ev_run(fx->loop), 0);
	ck_assert_msg(!fx->timed_out, "timed out");
}

static void
fixture_free(struct fixture *fx)
{
	log_set_hook(NULL, NULL);
	ipc_link_free(&fx->a.link);
	ipc_link_free(&fx->b.link);
	if (fx->writer != NULL)
		ev_io_del(&fx->writer);
	ev_timer_del(&fx->timer);
	ev_loop_free(&fx->loop);
	/* Links own (and closed) their fds; close the rest. */
	if (fx->sv[0] >= 0)
		close(fx->sv[0]);
	if (fx->sv[1] >= 0)
		close(fx->sv[1]);
	free(fx->a.why);
	free(fx->b.why);
	buf_free(&fx->log);
	buf_free(&fx->out);
}

/* Link A on sv[0] speaking proto; sv[0] is the link's from now on. */
static void
fixture_link_a(struct fixture *fx, const struct ipc_proto *proto)
{
	fx->a.link = ipc_link_new(fx->loop, fx->sv[0], proto, &fx->a);
	fx->sv[0] = -1;
}

/* Link B on sv[1]. */
static void
fixture_link_b(struct fixture *fx, const struct ipc_proto *proto)
{
	fx->b.link = ipc_link_new(fx->loop, fx->sv[1], proto, &fx->b);
	fx->sv[1] = -1;
}

/* Assert the captured log has an ipc_close line with this reason. */
static void
assert_close_logged(struct fixture *fx, const char *reason)
{
	struct buf want = BUF_INIT;

	ck_assert_int_eq(buf_printf(&want, "reason=%s", reason), 0);
	ck_assert_msg(strstr(buf_cstr(&fx->log), "event=ipc_close") != NULL &&
	    strstr(buf_cstr(&fx->log), buf_cstr(&want)) != NULL,
	    "log lacks %s: %s", buf_cstr(&want), buf_cstr(&fx->log));
	buf_free(&want);
}

/* Two links exchange hellos, then a ping goes from A to B. */
START_TEST(test_link_hello_ping)
{
	struct fixture fx;
	struct ipc_msg m;
	pid_t pid;
	uid_t uid;
	gid_t gid;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	fixture_link_b(&fx, &proto_v1);
	ipc_msg_init(&m, T_PING, 42);
	ipc_put_u32(&m, 0x01020304);
	ck_assert_int_eq(ipc_link_send(fx.a.link, &m), 0);
	ipc_msg_free(&m);
	fx.b.stop_after = 1;
	fixture_run(&fx);
	ck_assert_uint_eq(fx.b.msgs, 1);
	ck_assert_uint_eq(fx.b.last_type, T_PING);
	ck_assert_uint_eq(fx.b.last_id, 42);
	ck_assert_uint_eq(fx.b.last_u32, 0x01020304);
	ck_assert_int_eq(fx.a.closed + fx.b.closed, 0);
	ck_assert_int_eq(ipc_link_peer(fx.b.link, &pid, &uid, &gid), 0);
	ck_assert_int_eq(pid, getpid());
	ck_assert_int_eq(uid, getuid());
	ck_assert_int_eq(gid, getgid());
	fixture_free(&fx);
}
END_TEST

/* An fd passed from A arrives at B, which writes into it; the bytes come
 * out of the pipe A's end was made from. */
START_TEST(test_link_fd_roundtrip)
{
	struct fixture fx;
	struct ipc_msg m;
	char got[16];
	int p[2];

	fixture_init(&fx);
	ck_assert_int_eq(pipe(p), 0);
	fixture_link_a(&fx, &proto_v1);
	fixture_link_b(&fx, &proto_v1);
	ipc_msg_init(&m, T_FD, 9);
	ipc_put_str(&m, "through");
	ipc_put_u64(&m, UINT64_C(0x1122334455667788));
	ipc_put_fd(&m, p[1]);
	ck_assert_int_eq(ipc_link_send(fx.a.link, &m), 0);
	ipc_msg_free(&m);
	close(p[1]);		/* the link holds its own dup */
	fx.b.stop_after = 1;
	fixture_run(&fx);
	ck_assert_uint_eq(fx.b.msgs, 1);
	ck_assert_uint_eq(fx.b.last_u64, UINT64_C(0x1122334455667788));
	ck_assert_int_eq(read(p[0], got, sizeof(got)), 7);
	ck_assert_mem_eq(got, "through", 7);
	fixture_free(&fx);
	close(p[0]);
}
END_TEST

/* One round of test_link_fd_mixed: NMIXED frames from A to B, fd frames
 * (each with its own pipe) between pings; every fd must reach its frame. */
#define NMIXED 24
static void
fd_mixed_round(struct fixture *fx)
{
	struct ipc_msg m;
	int pipes[NMIXED][2];
	char want[16], got[32];
	size_t i, nfd = 0, before = fx->b.msgs;
	ssize_t r;

	for (i = 0; i < NMIXED; i++) {
		/* Pattern: fd, ping, ping, fd, fd, ping, ... */
		if (i % 3 != 1 && i % 5 != 2) {
			ck_assert_int_eq(pipe(pipes[i]), 0);
			snprintf(want, sizeof(want), "frame%02zu", i);
			ipc_msg_init(&m, T_FD, (uint32_t)i);
			ipc_put_str(&m, want);
			ipc_put_u64(&m, i);
			ipc_put_fd(&m, pipes[i][1]);
			nfd++;
		} else {
			pipes[i][0] = pipes[i][1] = -1;
			ipc_msg_init(&m, T_PING, (uint32_t)i);
			ipc_put_u32(&m, (uint32_t)i * 7);
		}
		ck_assert_int_eq(ipc_link_send(fx->a.link, &m), 0);
		ipc_msg_free(&m);
		if (pipes[i][1] >= 0)
			close(pipes[i][1]);	/* the link or kernel has it */
	}
	ck_assert_uint_gt(nfd, 4);
	fx->b.stop_after = before + NMIXED;
	fixture_run(fx);
	ck_assert_uint_eq(fx->b.msgs, before + NMIXED);
	ck_assert_int_eq(fx->a.closed + fx->b.closed, 0);
	for (i = 0; i < NMIXED; i++) {
		if (pipes[i][0] < 0)
			continue;
		snprintf(want, sizeof(want), "frame%02zu", i);
		ck_assert_int_eq(fcntl(pipes[i][0], F_SETFL, O_NONBLOCK), 0);
		r = read(pipes[i][0], got, sizeof(got));
		ck_assert_int_eq(r, (ssize_t)strlen(want));
		ck_assert_mem_eq(got, want, strlen(want));
		/* Every copy of the write end is closed. */
		ck_assert_int_eq(read(pipes[i][0], got, sizeof(got)), 0);
		close(pipes[i][0]);
	}
}

/*
 * Frames with and without fds reach B with each fd tied to its own frame,
 * although B reads the rest of a frame and the next header in one recvmsg:
 * first all queued behind the hello (frames without fds then share a
 * sendmsg with the fd frame before them), then with the hellos done (an fd
 * frame with nothing queued before it is sent at once, undup'd).
 */
START_TEST(test_link_fd_mixed)
{
	struct fixture fx;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	fixture_link_b(&fx, &proto_v1);
	fd_mixed_round(&fx);
	fd_mixed_round(&fx);
	fixture_free(&fx);
}
END_TEST

/* Different protocol names: both sides close. */
START_TEST(test_link_wrong_proto)
{
	struct fixture fx;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	fixture_link_b(&fx, &proto_v2);
	while (!(fx.a.closed && fx.b.closed) && !fx.timed_out)
		fixture_run(&fx);
	ck_assert_str_eq(fx.a.why, "protocol_mismatch");
	ck_assert_str_eq(fx.b.why, "protocol_mismatch");
	assert_close_logged(&fx, "protocol_mismatch");
	ck_assert_ptr_nonnull(strstr(buf_cstr(&fx.log), "peer_proto=\"test/2\""));
	ck_assert_int_eq(ipc_link_send(fx.a.link, &(struct ipc_msg){ 0 }), -1);
	fixture_free(&fx);
}
END_TEST

/* What a raw peer sends to link A, and how A must close. */
static const struct {
	const char *name;
	int hello;			/* send a correct hello first */
	struct rawframe frames[2];
	size_t nframes;
	size_t nfds;			/* pipe fds with the last frame */
	size_t tail;			/* then this many bytes of a header */
	const char *why;
	size_t msgs;			/* frames handled before closing */
} close_cases[] = {
	{ "unknown type", 1, { { IPC_TYPE_USER + 77,
	    { { P_U32, 1, NULL, 0 } }, 0 } }, 1, 0, 0, "unknown_type", 0 },
	{ "oversize length", 1, { { T_DATA, { { P_END, 0, NULL, 0 } },
	    (uint64_t)IPC_MAX_PAYLOAD + 1 } }, 1, 0, 0, "length_too_long", 0 },
	{ "frame before hello", 0, { { T_PING, { { P_U32, 1, NULL, 0 } }, 0 } },
	    1, 0, 0, "frame_before_hello", 0 },
	{ "half a header then EOF", 1, { { T_PING, { { P_U32, 1, NULL, 0 } },
	    0 } }, 1, 0, 6, "eof_mid_frame", 1 },
	{ "clean EOF", 1, { { T_PING, { { P_U32, 1, NULL, 0 } }, 0 } }, 1, 0, 0,
	    "eof", 1 },
	{ "leftover bytes after handler", 1, { { T_LAZY,
	    { { P_U32, 1, NULL, 0 }, { P_U32, 2, NULL, 0 } }, 0 } }, 1, 0, 0,
	    "leftover_bytes", 1 },
	{ "unclaimed fd after handler", 1, { { T_FDS2,
	    { { P_END, 0, NULL, 0 } }, 0 } }, 1, 2, 0, "unclaimed_fds", 1 },
	{ "too many fds for type", 1, { { T_PING, { { P_U32, 1, NULL, 0 } },
	    0 } }, 1, 1, 0, "too_many_fds", 0 },
	{ "short field in handler", 1, { { T_FD, { { P_STR, 0, "x", 0 },
	    { P_RAW, 0, "12345678", 8 } }, 0 } }, 1, 0, 0, "missing_fd", 0 },
	{ "handler refuses", 1, { { T_REFUSE, { { P_END, 0, NULL, 0 } }, 0 } },
	    1, 0, 0, "handler_refused", 0 },
	{ "duplicate hello", 1, { { IPC_HELLO, { { P_STR, 0, "test/1", 0 } },
	    0 } }, 1, 0, 0, "duplicate_hello", 0 },
	/* The rest of the bad frame and the next header (with its fd) come
	 * in one read: the fd must still be closed. */
	{ "fd behind a failing frame", 1, { { T_LAZY,
	    { { P_U32, 1, NULL, 0 }, { P_U32, 2, NULL, 0 } }, 0 },
	    { T_FD, { { P_STR, 0, "x", 0 }, { P_U64, 5, NULL, 0 } }, 0 } },
	    2, 1, 0, "leftover_bytes", 1 },
};

/* A raw peer writes bytes (and fds) at link A, which must close, log why,
 * and close every fd it was sent. */
START_TEST(test_link_close)
{
	struct fixture fx;
	struct buf in = BUF_INIT;
	size_t i, nfds = close_cases[_i].nfds, last = 0;
	int p[2] = { -1, -1 };
	char c;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	if (close_cases[_i].hello)
		hello_bytes(&in, "test/1");
	for (i = 0; i < close_cases[_i].nframes; i++) {
		const struct rawframe *f = &close_cases[_i].frames[i];

		last = in.len;
		frame_bytes(&in, f->type, (uint32_t)i + 1, f->in,
		    f->len_field == 0 ? UINT64_MAX : f->len_field);
	}
	if (nfds == 0) {
		ck_assert_int_eq(write(fx.sv[1], in.data, in.len),
		    (ssize_t)in.len);
	} else {
		/* The last frame goes by sendmsg with nfds dups of a pipe's
		 * write end attached to its first byte. */
		struct msghdr msg;
		struct iovec iov;
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int) * 2)];
		} cm;
		int fds[2];

		ck_assert_int_eq(pipe(p), 0);
		fds[0] = fds[1] = p[1];
		ck_assert_int_eq(write(fx.sv[1], in.data, last), (ssize_t)last);
		memset(&msg, 0, sizeof(msg));
		memset(&cm, 0, sizeof(cm));
		iov.iov_base = in.data + last;
		iov.iov_len = in.len - last;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm.b;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		CMSG_FIRSTHDR(&msg)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&msg)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&msg)->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&msg)), fds, sizeof(int) * nfds);
		ck_assert_int_eq(sendmsg(fx.sv[1], &msg, 0),
		    (ssize_t)(in.len - last));
		close(p[1]);
	}
	if (close_cases[_i].tail > 0)
		ck_assert_int_eq(write(fx.sv[1], "\x10\0\0\0\4\0\0\0\1\0\0\0",
		    close_cases[_i].tail), (ssize_t)close_cases[_i].tail);
	ck_assert_int_eq(shutdown(fx.sv[1], SHUT_WR), 0);
	fixture_run(&fx);
	ck_assert_msg(fx.a.closed, "%s: not closed", close_cases[_i].name);
	ck_assert_msg(strcmp(fx.a.why, close_cases[_i].why) == 0,
	    "%s: closed for %s, want %s", close_cases[_i].name, fx.a.why,
	    close_cases[_i].why);
	ck_assert_uint_eq(fx.a.msgs, close_cases[_i].msgs);
	if (strcmp(close_cases[_i].why, "eof") != 0)
		assert_close_logged(&fx, close_cases[_i].why);
	if (nfds > 0) {
		/* Every copy of the write end is closed: the pipe reads EOF. */
		ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
		ck_assert_int_eq(read(p[0], &c, 1), 0);
		close(p[0]);
	}
	fixture_free(&fx);
	buf_free(&in);
}
END_TEST

/* Many frames pipelined in one write all arrive, in order. */
START_TEST(test_link_pipelined)
{
	struct fixture fx;
	struct buf in = BUF_INIT;
	size_t i, n = 200;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	hello_bytes(&in, "test/1");
	for (i = 0; i < n; i++) {
		struct piece p[2] = { { P_U32, i * 3, NULL, 0 },
		    { P_END, 0, NULL, 0 } };

		frame_bytes(&in, T_PING, (uint32_t)i, p, UINT64_MAX);
	}
	ck_assert_int_eq(write(fx.sv[1], in.data, in.len), (ssize_t)in.len);
	fx.a.stop_after = n;
	fixture_run(&fx);
	ck_assert_uint_eq(fx.a.msgs, n);
	ck_assert_uint_eq(fx.a.last_id, n - 1);
	ck_assert_uint_eq(fx.a.last_u32, (n - 1) * 3);
	ck_assert_int_eq(fx.a.closed, 0);
	fixture_free(&fx);
	buf_free(&in);
}
END_TEST

/* Trickle fx->out into sv[1] a chunk at a time. */
static void
trickle(struct ev_io *io, int fd, int events, void *arg)
{
	struct fixture *fx = arg;
	size_t n = fx->out.len - fx->out_off;
	ssize_t r;

	(void)io;
	(void)events;
	if (n > fx->chunk)
		n = fx->chunk;
	r = write(fd, fx->out.data + fx->out_off, n);
	if (r < 0 && errno == EAGAIN)
		return;
	ck_assert_int_gt(r, 0);
	fx->out_off += (size_t)r;
	if (fx->out_off == fx->out.len)
		ev_io_set(fx->writer, 0);
}

/* Fill p[0..n) with a reproducible pattern and return its checksum. */
static uint32_t
pattern(unsigned char *p, size_t n)
{
	uint32_t sum = 0, x = 12345;
	size_t i;

	for (i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		p[i] = (unsigned char)(x >> 16);
		sum = sum * 31 + p[i];
	}
	return sum;
}

/* A payload near IPC_MAX_PAYLOAD written in small pieces arrives whole. */
START_TEST(test_link_large_trickled)
{
	size_t n = IPC_MAX_PAYLOAD - 4;
	unsigned char *data = xmalloc(n);
	uint32_t sum = pattern(data, n);
	struct piece p[2] = { { P_DATA, 0, (const char *)data, n },
	    { P_END, 0, NULL, 0 } };
	struct fixture fx;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	hello_bytes(&fx.out, "test/1");
	frame_bytes(&fx.out, T_DATA, 5, p, UINT64_MAX);
	ck_assert_int_eq(fcntl(fx.sv[1], F_SETFL, O_NONBLOCK), 0);
	fx.chunk = 7919;	/* a prime: splits headers and fields */
	fx.writer = ev_io_add(fx.loop, fx.sv[1], EV_WRITE, trickle, &fx);
	fx.a.stop_after = 1;
	fixture_run(&fx);
	ck_assert_uint_eq(fx.a.msgs, 1);
	ck_assert_uint_eq(fx.a.data_len, n);
	ck_assert_uint_eq(fx.a.data_sum, sum);
	fixture_free(&fx);
	free(data);
}
END_TEST

/* Link to link: several near-maximal payloads queue past the socket
 * buffer and are written in partial sendmsgs. */
START_TEST(test_link_large_queued)
{
	size_t n = IPC_MAX_PAYLOAD - 4, i;
	unsigned char *data = xmalloc(n);
	uint32_t sum = pattern(data, n);
	struct fixture fx;
	struct ipc_msg m;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	fixture_link_b(&fx, &proto_v1);
	ipc_msg_init(&m, T_DATA, 3);
	ipc_put_data(&m, data, n);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(ipc_link_send(fx.a.link, &m), 0);
	ipc_msg_free(&m);
	fx.b.stop_after = 3;
	fixture_run(&fx);
	ck_assert_uint_eq(fx.b.msgs, 3);
	ck_assert_uint_eq(fx.b.data_len, n);
	ck_assert_uint_eq(fx.b.data_sum, sum);
	fixture_free(&fx);
	free(data);
}
END_TEST

/* The output backlog is bounded, and oversize payloads are refused. */
START_TEST(test_link_backlog)
{
	struct fixture fx;
	struct ipc_msg m;
	void *zero;
	size_t i;
	int r = 0;

	fixture_init(&fx);
	fixture_link_a(&fx, &proto_v1);
	zero = xcalloc(1, IPC_MAX_PAYLOAD - 4);
	ipc_msg_init(&m, T_DATA, 3);
	ipc_put_data(&m, zero, IPC_MAX_PAYLOAD - 4);
	for (i = 0; i < 64 && r == 0; i++)
		r = ipc_link_send(fx.a.link, &m);
	ck_assert_int_eq(r, -1);
	ck_assert_uint_eq(i, 8);	/* 8 MiB of backlog, hello included */
	ck_assert_ptr_nonnull(strstr(buf_cstr(&fx.log), "reason=backlog_full"));
	ipc_put_u32(&m, 0);
	ck_assert_int_eq(ipc_link_send(fx.a.link, &m), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&fx.log),
	    "reason=payload_too_large"));
	ipc_msg_free(&m);
	fixture_free(&fx);
	free(zero);
}
END_TEST

/* --- Blocking helpers ------------------------------------------------------------- */

/* ipc_recv_blocking: a frame with an fd, then EOF; and a timeout. */
START_TEST(test_blocking_roundtrip)
{
	struct ipc_cursor c;
	struct ipc_msg m, f;
	const char *error = NULL, *s;
	char got[8];
	int sv[2], p[2], fd;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
	    0);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(ipc_recv_blocking(sv[1], &f, 50, &error), -1);
	ck_assert_str_eq(error, "timeout");
	ipc_msg_init(&m, T_FD, 77);
	ipc_put_str(&m, "hi");
	ipc_put_fd(&m, p[1]);
	ck_assert_int_eq(ipc_send_blocking(sv[0], &m), 0);
	ipc_msg_free(&m);
	close(p[1]);
	ck_assert_int_eq(ipc_recv_blocking(sv[1], &f, 1000, &error), 1);
	ck_assert_uint_eq(f.type, T_FD);
	ck_assert_uint_eq(f.id, 77);
	ck_assert_uint_eq(f.nfds, 1);
	ipc_cursor_init(&c, &f);
	ck_assert_int_eq(ipc_get_str(&c, &s), 0);
	ck_assert_str_eq(s, "hi");
	ck_assert_int_eq(ipc_get_fd(&c, &fd), 0);
	ck_assert_int_eq(ipc_get_end(&c), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(write(fd, "ok", 2), 2);
	close(fd);
	ck_assert_int_eq(read(p[0], got, sizeof(got)), 2);
	ipc_frame_free(&f);
	/* Half a header, then EOF. */
	ck_assert_int_eq(write(sv[0], "\x10\0\0", 3), 3);
	close(sv[0]);
	ck_assert_int_eq(ipc_recv_blocking(sv[1], &f, 1000, &error), -1);
	ck_assert_str_eq(error, "eof_mid_frame");
	close(sv[1]);
	close(p[0]);
	/* Half a header, then silence: a timeout, not EOF. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
	    0);
	ck_assert_int_eq(write(sv[0], "\x10\0\0", 3), 3);
	ck_assert_int_eq(ipc_recv_blocking(sv[1], &f, 50, &error), -1);
	ck_assert_str_eq(error, "timeout");
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* ipc_connect against a forked server that answers with name. */
static void
connect_case(const char *server_name, int want_ok, const char *want_error)
{
	char dir[] = "/tmp/test_ipc.XXXXXX";
	struct sockaddr_un sun;
	struct buf path = BUF_INIT;
	const char *error = NULL;
	pid_t pid;
	int lfd, fd, status;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(buf_printf(&path, "%s/sock", dir), 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path.data, path.len);
	ck_assert_int_ge(lfd = socket(AF_UNIX, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0) {
		struct ipc_msg m;
		int cfd = accept(lfd, NULL, NULL);

		alarm(5);
		if (cfd < 0)
			_exit(2);
		ipc_msg_init(&m, IPC_HELLO, 0);
		ipc_put_str(&m, server_name);
		if (ipc_send_blocking(cfd, &m) < 0)
			_exit(3);
		ipc_msg_free(&m);
		if (ipc_recv_blocking(cfd, &m, 5000, &error) != 1 ||
		    m.type != IPC_HELLO)
			_exit(4);
		ipc_frame_free(&m);
		close(cfd);
		close(lfd);
		_exit(0);
	}
	close(lfd);
	fd = ipc_connect(path.data, "test/1", &error);
	if (want_ok) {
		ck_assert_msg(fd >= 0, "ipc_connect: %s", error);
		close(fd);
	} else {
		ck_assert_int_eq(fd, -1);
		ck_assert_str_eq(error, want_error);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(path.data);
	rmdir(dir);
	buf_free(&path);
}

START_TEST(test_connect)
{
	const char *error = NULL;

	connect_case("test/1", 1, NULL);
	connect_case("test/9", 0, "protocol mismatch");
	ck_assert_int_eq(ipc_connect("/nonexistent/sock", "test/1", &error),
	    -1);
	ck_assert_str_eq(error, "connect failed");
}
END_TEST

/* Read one frame of type from fd and return its str field (malloc'd). */
static char *
notice_str(int fd, uint32_t type, uint32_t id)
{
	struct ipc_msg f;
	struct ipc_cursor c;
	const char *error = NULL, *str;
	char *out;

	ck_assert_int_eq(ipc_recv_blocking(fd, &f, TEST_TIMEOUT_MS, &error), 1);
	ck_assert_uint_eq(f.type, type);
	ck_assert_uint_eq(f.id, id);
	ipc_cursor_init(&c, &f);
	ck_assert_int_eq(ipc_get_str(&c, &str), 0);
	ck_assert_int_eq(ipc_get_end(&c), 0);
	out = xstrdup(str);
	ipc_frame_free(&f);
	return out;
}

/* qmgr_notify: the hello and one QMGR_NOTIFY per id, then EOF; no qmgr
 * (no socket, or a socket nobody listens on) is 0, not an error. */
START_TEST(test_qmgr_notify)
{
	char dir[] = "/tmp/test_ipc.XXXXXX", *path, *str, *longp;
	const char *ids[2] = { "id-one", "id-two" }, *error = NULL;
	struct sockaddr_un sun;
	struct ipc_msg f;
	int lfd, fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = xasprintf("%s/qmgr", dir);
	ck_assert_int_eq(qmgr_notify(path, ids, 2, &error), 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(qmgr_notify(path, ids, 2, &error), 0);	/* refused */
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(qmgr_notify(path, ids, 2, &error), 1);
	fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	str = notice_str(fd, IPC_HELLO, 0);
	ck_assert_str_eq(str, QMGR_NOTIFY_PROTO);
	free(str);
	str = notice_str(fd, QMGR_NOTIFY, 1);
	ck_assert_str_eq(str, "id-one");
	free(str);
	str = notice_str(fd, QMGR_NOTIFY, 2);
	ck_assert_str_eq(str, "id-two");
	free(str);
	ck_assert_int_eq(ipc_recv_blocking(fd, &f, TEST_TIMEOUT_MS, &error), 0);
	close(fd);
	close(lfd);

	longp = xmalloc(sizeof(sun.sun_path) + 1);
	memset(longp, 'x', sizeof(sun.sun_path));
	longp[sizeof(sun.sun_path)] = '\0';
	ck_assert_int_eq(qmgr_notify(longp, ids, 1, &error), -1);
	ck_assert_str_eq(error, "socket path too long");
	free(longp);
	unlink(path);
	rmdir(dir);
	free(path);
}
END_TEST

static Suite *
ipc_link_suite(void)
{
	Suite *s = suite_create("ipc_link");
	TCase *tc;

	tc = tcase_create("link");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_link_hello_ping);
	tcase_add_test(tc, test_link_fd_roundtrip);
	tcase_add_test(tc, test_link_fd_mixed);
	tcase_add_test(tc, test_link_wrong_proto);
	tcase_add_loop_test(tc, test_link_close, 0,
	    sizeof(close_cases) / sizeof(close_cases[0]));
	tcase_add_test(tc, test_link_pipelined);
	tcase_add_test(tc, test_link_large_trickled);
	tcase_add_test(tc, test_link_large_queued);
	tcase_add_test(tc, test_link_backlog);
	suite_add_tcase(s, tc);

	tc = tcase_create("blocking");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_blocking_roundtrip);
	tcase_add_test(tc, test_connect);
	tcase_add_test(tc, test_qmgr_notify);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return check_run_suite(ipc_link_suite());
}
