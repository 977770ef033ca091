/*
 * Unit tests for lib/core/ipc's framing, driven from memory and
 * table-driven: the read cursor (round trips of every field type, fds,
 * and failures that stick), and the stream decoder fed whole, byte by
 * byte and in small steps (wrong and missing hellos, unknown and reserved
 * types, lengths out of bounds, fds with the wrong frame, unclaimed fds).
 * Links over sockets, the blocking helpers and the qmgr notice client are
 * in test_ipc_link.c; the test protocol and frame builders in ipc_util.h.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "buf.h"
#include "ipc.h"
#include "ipc_util.h"

/* 300 bytes of payload for an over-long frame. */
static const char zeros300[300];

/* --- Cursor round trips --------------------------------------------------------- */

static const struct {
	const char *name;
	struct piece in[MAX_PIECES];
} roundtrip_cases[] = {
	{ "u32 zero", { { P_U32, 0, NULL, 0 } } },
	{ "u32 max", { { P_U32, UINT32_MAX, NULL, 0 } } },
	{ "u64 max", { { P_U64, UINT64_MAX, NULL, 0 } } },
	{ "string", { { P_STR, 0, "hello", 0 } } },
	{ "empty string", { { P_STR, 0, "", 0 } } },
	{ "NULL string", { { P_NULLSTR, 0, NULL, 0 } } },
	{ "data with NULs", { { P_DATA, 0, "a\0b\0", 4 } } },
	{ "empty data", { { P_DATA, 0, "", 0 } } },
	{ "mixed", { { P_U32, 7, NULL, 0 }, { P_STR, 0, "x y", 0 },
	    { P_NULLSTR, 0, NULL, 0 }, { P_U64, 1ULL << 40, NULL, 0 },
	    { P_DATA, 0, "\xff\x00", 2 } } },
};

/* Put each case's pieces, read them back, and check nothing is left. */
START_TEST(test_cursor_roundtrip)
{
	const struct piece *p;
	struct ipc_cursor c;
	struct ipc_msg m;

	ipc_msg_init(&m, T_PING, 1);
	put_pieces(&m, roundtrip_cases[_i].in);
	ipc_cursor_init(&c, &m);
	for (p = roundtrip_cases[_i].in; p->kind != P_END; p++) {
		const char *s;
		const void *d;
		uint32_t v32;
		uint64_t v64;
		size_t n;

		switch (p->kind) {
		case P_U32:
			ck_assert_int_eq(ipc_get_u32(&c, &v32), 0);
			ck_assert_uint_eq(v32, p->v);
			break;
		case P_U64:
			ck_assert_int_eq(ipc_get_u64(&c, &v64), 0);
			ck_assert_uint_eq(v64, p->v);
			break;
		case P_STR:
			ck_assert_int_eq(ipc_get_str(&c, &s), 0);
			ck_assert_str_eq(s, p->s);
			break;
		case P_NULLSTR:
			s = "unset";
			ck_assert_int_eq(ipc_get_str(&c, &s), 0);
			ck_assert_ptr_null(s);
			break;
		case P_DATA:
			ck_assert_int_eq(ipc_get_data(&c, &d, &n), 0);
			ck_assert_uint_eq(n, p->n);
			ck_assert_mem_eq(d, p->s, n);
			break;
		case P_RAW:
		case P_END:
			break;
		}
	}
	ck_assert_msg(ipc_get_end(&c) == 0, "%s: %s", roundtrip_cases[_i].name,
	    c.error);
	ck_assert_ptr_null(c.error);
	ipc_msg_free(&m);
}
END_TEST

/* An fd put in a message comes back out of the cursor, once. */
START_TEST(test_cursor_fd)
{
	struct ipc_cursor c;
	struct ipc_msg m;
	int p[2], fd;

	ck_assert_int_eq(pipe(p), 0);
	ipc_msg_init(&m, T_FD, 1);
	ipc_put_u32(&m, 5);
	ipc_put_fd(&m, p[1]);
	ipc_cursor_init(&c, &m);
	ck_assert_int_eq(ipc_get_fd(&c, &fd), 0);
	ck_assert_int_eq(fd, p[1]);
	ck_assert_int_eq(m.fds[0], -1);	/* taken: nothing else closes it */
	ck_assert_int_eq(ipc_get_fd(&c, &fd), -1);
	ck_assert_str_eq(c.error, "missing_fd");
	ipc_msg_free(&m);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* --- Cursor failures ------------------------------------------------------------ */

static const struct {
	const char *name;
	struct piece in[MAX_PIECES];
	size_t nfds;
	const char *ops;	/* u u32, U u64, s str, d data, f fd, e end */
	size_t fail_at;		/* index in ops of the failing call */
	const char *error;
} fail_cases[] = {
	{ "short u32", { { P_RAW, 0, "abc", 3 } }, 0, "u", 0, "short_u32" },
	{ "short u64", { { P_RAW, 0, "abcdefg", 7 } }, 0, "U", 0, "short_u64" },
	{ "short string length", { { P_RAW, 0, "ab", 2 } }, 0, "s", 0,
	    "short_string_length" },
	{ "string without NUL", { { P_U32, 3, NULL, 0 },
	    { P_RAW, 0, "abcd", 4 } }, 0, "s", 0, "string_without_nul" },
	{ "string NUL past end", { { P_U32, 3, NULL, 0 },
	    { P_RAW, 0, "abc", 3 } }, 0, "s", 0, "string_past_end" },
	{ "string length past payload", { { P_U32, 100, NULL, 0 },
	    { P_RAW, 0, "abc", 4 } }, 0, "s", 0, "string_past_end" },
	{ "string length UINT32_MAX-1", { { P_U32, UINT32_MAX - 1, NULL, 0 },
	    { P_RAW, 0, "a", 2 } }, 0, "s", 0, "string_past_end" },
	{ "string with embedded NUL", { { P_U32, 3, NULL, 0 },
	    { P_RAW, 0, "a\0b", 4 } }, 0, "s", 0, "string_with_nul" },
	{ "data length past payload", { { P_U32, 10, NULL, 0 },
	    { P_RAW, 0, "xy", 2 } }, 0, "d", 0, "data_past_end" },
	{ "short data length", { { P_RAW, 0, "x", 1 } }, 0, "d", 0,
	    "short_data_length" },
	{ "leftover bytes", { { P_U32, 1, NULL, 0 }, { P_RAW, 0, "z", 1 } }, 0,
	    "ue", 1, "leftover_bytes" },
	{ "unclaimed fd", { { P_U32, 1, NULL, 0 } }, 1, "ue", 1,
	    "unclaimed_fds" },
	{ "missing fd", { { P_U32, 1, NULL, 0 } }, 0, "uf", 1, "missing_fd" },
	{ "failure is sticky", { { P_RAW, 0, "ab", 2 } }, 0, "uue", 0,
	    "short_u32" },
	{ "empty payload, u32", { { P_END, 0, NULL, 0 } }, 0, "u", 0,
	    "short_u32" },
};

/* Each op before fail_at succeeds; that one and all after fail, keeping
 * the first reason. */
START_TEST(test_cursor_fail)
{
	const char *ops = fail_cases[_i].ops, *s;
	const void *d;
	struct ipc_cursor c;
	struct ipc_msg m;
	uint32_t v32;
	uint64_t v64;
	size_t i, n;
	int p[2] = { -1, -1 }, fd, r = 0;

	ipc_msg_init(&m, T_PING, 1);
	put_pieces(&m, fail_cases[_i].in);
	if (fail_cases[_i].nfds > 0) {
		ck_assert_int_eq(pipe(p), 0);
		ipc_put_fd(&m, p[0]);
	}
	ipc_cursor_init(&c, &m);
	for (i = 0; ops[i] != '\0'; i++) {
		switch (ops[i]) {
		case 'u': r = ipc_get_u32(&c, &v32); break;
		case 'U': r = ipc_get_u64(&c, &v64); break;
		case 's': r = ipc_get_str(&c, &s); break;
		case 'd': r = ipc_get_data(&c, &d, &n); break;
		case 'f': r = ipc_get_fd(&c, &fd); break;
		case 'e': r = ipc_get_end(&c); break;
		default: ck_abort_msg("bad op");
		}
		ck_assert_msg(r == (i < fail_cases[_i].fail_at ? 0 : -1),
		    "%s: op %zu returned %d", fail_cases[_i].name, i, r);
	}
	ck_assert_msg(c.error != NULL &&
	    strcmp(c.error, fail_cases[_i].error) == 0, "%s: error %s",
	    fail_cases[_i].name, c.error != NULL ? c.error : "(none)");
	ipc_msg_free(&m);
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
}
END_TEST

/* --- The stream decoder ------------------------------------------------------- */

static int
noop_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	(void)l; (void)type; (void)id; (void)c; (void)arg;
	return 0;
}

static void
noop_close(struct ipc_link *l, const char *why, void *arg)
{
	(void)l; (void)why; (void)arg;
}

static const struct ipc_proto decoder_proto = {
	"test/1", test_types, sizeof(test_types) / sizeof(test_types[0]),
	noop_msg, noop_close,
};

static const struct {
	const char *name;
	const char *hello;	/* NULL: no hello first */
	struct rawframe frames[3];
	size_t nframes;
	size_t fd_frame;	/* 0: no fd; 1: with the hello; 2: frames[0] */
	size_t fd_delta;	/* the fd comes with this byte of that frame */
	size_t frames_ok;	/* complete frames handed out */
	const char *error;	/* NULL: the stream is valid */
} decoder_cases[] = {
	{ "hello then ping", "test/1", { { T_PING, { { P_U32, 9, NULL, 0 } },
	    0 } }, 1, 0, 0, 1, NULL },
	{ "empty-payload type", "test/1", { { T_REFUSE, { { P_END, 0, NULL, 0 } },
	    0 } }, 1, 0, 0, 1, NULL },
	{ "wrong protocol name", "test/2", { { 0, { { P_END, 0, NULL, 0 } }, 0 } },
	    0, 0, 0, 0, "protocol_mismatch" },
	{ "hello with NULL name", NULL, { { IPC_HELLO,
	    { { P_NULLSTR, 0, NULL, 0 }, { P_RAW, 0, "xx", 2 } }, 0 } }, 1, 0, 0,
	    0, "leftover_bytes" },
	{ "hello name cut short", NULL, { { IPC_HELLO,
	    { { P_U32, 9, NULL, 0 }, { P_RAW, 0, "test/1", 7 } }, 0 } }, 1, 0, 0,
	    0, "string_past_end" },
	{ "hello with trailing byte", NULL, { { IPC_HELLO,
	    { { P_STR, 0, "test/1", 0 }, { P_RAW, 0, "x", 1 } }, 0 } }, 1, 0, 0,
	    0, "leftover_bytes" },
	{ "hello too long", NULL, { { IPC_HELLO, { { P_DATA, 0, zeros300, 300 } },
	    0 } }, 1, 0, 0, 0, "length_too_long" },
	{ "frame before hello", NULL, { { T_PING, { { P_U32, 9, NULL, 0 } }, 0 } },
	    1, 0, 0, 0, "frame_before_hello" },
	{ "unknown type", "test/1", { { IPC_TYPE_USER + 99,
	    { { P_U32, 9, NULL, 0 } }, 0 } }, 1, 0, 0, 0, "unknown_type" },
	{ "reserved type", "test/1", { { 2, { { P_U32, 9, NULL, 0 } }, 0 } },
	    1, 0, 0, 0, "unknown_type" },
	{ "duplicate hello", "test/1", { { IPC_HELLO,
	    { { P_STR, 0, "test/1", 0 } }, 0 } }, 1, 0, 0, 0, "duplicate_hello" },
	{ "length over type max", "test/1", { { T_PING,
	    { { P_U64, 9, NULL, 0 } }, 0 } }, 1, 0, 0, 0, "length_too_long" },
	{ "length under type min", "test/1", { { T_PING,
	    { { P_RAW, 0, "ab", 2 } }, 0 } }, 1, 0, 0, 0, "length_too_short" },
	{ "length past IPC_MAX_PAYLOAD", "test/1", { { T_DATA,
	    { { P_END, 0, NULL, 0 } }, (uint64_t)IPC_MAX_PAYLOAD + 1 } }, 1, 0, 0,
	    0, "length_too_long" },
	{ "length UINT32_MAX", "test/1", { { T_DATA,
	    { { P_END, 0, NULL, 0 } }, UINT32_MAX } }, 1, 0, 0, 0,
	    "length_too_long" },
	{ "fd with the hello", "test/1", { { 0, { { P_END, 0, NULL, 0 } }, 0 } },
	    0, 1, 0, 0, "too_many_fds" },
	{ "fd mid-header", "test/1", { { T_FD, { { P_STR, 0, "x", 0 },
	    { P_U64, 1, NULL, 0 } }, 0 } }, 1, 2, 5, 0, "fds_mid_frame" },
	{ "fd mid-payload", "test/1", { { T_FD, { { P_STR, 0, "x", 0 },
	    { P_U64, 1, NULL, 0 } }, 0 } }, 1, 2, 14, 0, "fds_mid_frame" },
	{ "fd with a type that allows none", "test/1", { { T_PING,
	    { { P_U32, 1, NULL, 0 } }, 0 } }, 1, 2, 0, 0, "too_many_fds" },
	{ "three frames", "test/1", { { T_PING, { { P_U32, 1, NULL, 0 } }, 0 },
	    { T_DATA, { { P_DATA, 0, "abc", 3 } }, 0 },
	    { T_REFUSE, { { P_END, 0, NULL, 0 } }, 0 } }, 3, 0, 0, 3, NULL },
};

/*
 * Feed one case's bytes through a decoder in chunks of at most step bytes
 * (0: as much as it wants), passing each complete frame's cursor straight
 * to ipc_decoder_next after consuming the fields it declares.
 */
static void
run_decoder_case(size_t ci, size_t step)
{
	struct ipc_decoder *d = ipc_decoder_new(&decoder_proto);
	struct buf in = BUF_INIT;
	size_t i, off = 0, frames = 0, fd_pos = SIZE_MAX;
	size_t starts[4] = { 0, 0, 0, 0 };	/* frame offsets, hello first */
	const char *error = NULL;
	int fd = -1;

	if (decoder_cases[ci].hello != NULL)
		hello_bytes(&in, decoder_cases[ci].hello);
	for (i = 0; i < decoder_cases[ci].nframes; i++) {
		const struct rawframe *f = &decoder_cases[ci].frames[i];

		starts[i + 1] = in.len;
		frame_bytes(&in, f->type, (uint32_t)i + 1, f->in,
		    f->len_field == 0 ? UINT64_MAX : f->len_field);
	}
	if (decoder_cases[ci].fd_frame > 0)
		fd_pos = starts[decoder_cases[ci].fd_frame - 1] +
		    decoder_cases[ci].fd_delta;
	while (off < in.len && error == NULL) {
		size_t n = ipc_decoder_want(d), nfds = 0;
		int r;

		if (step > 0 && n > step)
			n = step;
		if (n > in.len - off)
			n = in.len - off;
		/* A read ends before the fd's byte, and the next carries it. */
		if (off < fd_pos && n > fd_pos - off)
			n = fd_pos - off;
		if (off == fd_pos) {
			ck_assert_int_ge(fd = open("/dev/null", O_RDONLY), 0);
			nfds = 1;
		}
		r = ipc_decoder_feed(d, in.data + off, n, &fd, nfds, &error);
		off += n;
		if (r == 1) {
			struct ipc_cursor c;
			uint32_t type, id, v;
			const void *p;
			size_t dn;

			ipc_decoder_frame(d, &type, &id, &c);
			ck_assert_uint_eq(id, frames + 1);
			if (type == T_PING)
				ck_assert_int_eq(ipc_get_u32(&c, &v), 0);
			else if (type == T_DATA)
				ck_assert_int_eq(ipc_get_data(&c, &p, &dn), 0);
			ck_assert_int_eq(ipc_decoder_next(d, &c, &error), 0);
			frames++;
		} else if (r < 0) {
			ck_assert_ptr_nonnull(error);
			ck_assert_uint_eq(ipc_decoder_want(d), 0);
		}
	}
	ck_assert_msg(frames == decoder_cases[ci].frames_ok,
	    "%s (step %zu): %zu frames", decoder_cases[ci].name, step, frames);
	if (decoder_cases[ci].error == NULL)
		ck_assert_msg(error == NULL, "%s (step %zu): error %s",
		    decoder_cases[ci].name, step, error);
	else
		ck_assert_msg(error != NULL &&
		    strcmp(error, decoder_cases[ci].error) == 0,
		    "%s (step %zu): error %s, want %s", decoder_cases[ci].name,
		    step, error != NULL ? error : "(none)",
		    decoder_cases[ci].error);
	/* Whatever happened, the decoder closed the fd it was given. */
	if (fd >= 0)
		ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ipc_decoder_free(&d);
	buf_free(&in);
}

/* Each decoder case, whole and byte by byte. */
START_TEST(test_decoder)
{
	run_decoder_case((size_t)_i, 0);
	run_decoder_case((size_t)_i, 1);
	run_decoder_case((size_t)_i, 5);
}
END_TEST

/* A frame left unread by the handler is refused at ipc_decoder_next, and
 * its unclaimed fd is closed. */
START_TEST(test_decoder_unclaimed)
{
	struct ipc_decoder *d = ipc_decoder_new(&decoder_proto);
	struct piece none[1] = { { P_END, 0, NULL, 0 } };
	struct ipc_cursor c;
	struct buf in = BUF_INIT;
	const char *error = NULL;
	uint32_t type, id;
	int fds[2], r;

	hello_bytes(&in, "test/1");
	frame_bytes(&in, T_FDS2, 7, none, UINT64_MAX);
	ck_assert_int_eq(ipc_decoder_feed(d, in.data, 12, NULL, 0, &error), 0);
	ck_assert_int_eq(ipc_decoder_feed(d, in.data + 12, in.len - 24, NULL, 0,
	    &error), 0);
	ck_assert_int_eq(pipe(fds), 0);
	r = ipc_decoder_feed(d, in.data + in.len - 12, 12, fds, 2, &error);
	ck_assert_int_eq(r, 1);
	ipc_decoder_frame(d, &type, &id, &c);
	ck_assert_uint_eq(type, T_FDS2);
	ck_assert_uint_eq(id, 7);
	ck_assert_int_eq(ipc_decoder_next(d, &c, &error), -1);
	ck_assert_str_eq(error, "unclaimed_fds");
	ck_assert_int_eq(fcntl(fds[0], F_GETFD), -1);
	ck_assert_int_eq(fcntl(fds[1], F_GETFD), -1);
	ck_assert_uint_eq(ipc_decoder_want(d), 0);
	ipc_decoder_free(&d);
	buf_free(&in);
}
END_TEST

static Suite *
ipc_suite(void)
{
	Suite *s = suite_create("ipc");
	TCase *tc;

	tc = tcase_create("cursor");
	tcase_add_loop_test(tc, test_cursor_roundtrip, 0,
	    sizeof(roundtrip_cases) / sizeof(roundtrip_cases[0]));
	tcase_add_test(tc, test_cursor_fd);
	tcase_add_loop_test(tc, test_cursor_fail, 0,
	    sizeof(fail_cases) / sizeof(fail_cases[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("decoder");
	tcase_add_loop_test(tc, test_decoder, 0,
	    sizeof(decoder_cases) / sizeof(decoder_cases[0]));
	tcase_add_test(tc, test_decoder_unclaimed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(ipc_suite());
}
