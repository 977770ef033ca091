/*
 * Unit tests for lib/core/ios: streams in clear text over socketpairs in
 * one ev loop.  Line splitting, CRLF/LF/bare CR, overlong lines and resync,
 * wiping a consumed secret, input back-pressure, output flushing, EOF,
 * write errors, the idle timeout, flush_close, and a reply larger than the
 * socket buffer to a peer that stops reading for a while (output waits for
 * room without spinning).  TLS is in test_ios_tls.c, half-closes over TCP
 * in test_ios_halfclose.c; the fixtures in ios_util.h.  Each loop runs
 * under a guard timer so a bug fails the test instead of hanging.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_util.h"
#include "ev.h"
#include "ios.h"
#include "ios_util.h"

/* A timer-driven writer on the raw end of a socketpair. */
struct script {
	int fd;
	const char *const *chunks;
	size_t i;
	int close_at_end;
	struct ev_timer *t;
};

/* Write the next chunk; at the end, optionally close the raw end. */
static void
script_cb(struct ev_timer *t, void *arg)
{
	struct script *sc = arg;
	const char *c = sc->chunks[sc->i];

	(void)t;
	if (c == NULL) {
		if (sc->close_at_end) {
			close(sc->fd);
			sc->fd = -1;
		}
		ev_timer_del(&sc->t);
		return;
	}
	ck_assert_int_eq(write(sc->fd, c, strlen(c)), (ssize_t)strlen(c));
	sc->i++;
}

static const struct ios_limits small_lim = { 8, 16, 1 << 20, 0 };

/* Run a script of chunks against a line reader until EOF. */
static void
run_script(const struct ios_limits *lim, const char *const *chunks,
    struct peer *p, struct harness *h)
{
	struct script sc;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(h);
	peer_init(p, h, sv[0], lim, "reader");
	memset(&sc, 0, sizeof(sc));
	sc.fd = sv[1];
	sc.chunks = chunks;
	sc.close_at_end = 1;
	sc.t = ev_timer_add(h->loop, 2, 1, script_cb, &sc);
	ev_timer_del(&h->guard);
	h->guard = ev_timer_add(h->loop, GUARD_MS, 0, guard_cb, h);
	/* Run until the reader closes (the guard keeps the loop alive). */
	while (!p->closed && !h->timed_out)
		ck_assert_int_eq(ev_run(h->loop), 0);
	ck_assert_int_eq(h->timed_out, 0);
	ck_assert_ptr_null(sc.t);
}

START_TEST(test_lines_split)
{
	static const char *const chunks[] = {
		"HEL", "LO\r\nWOR", "LD\n", "A\rB\r\n", "\r\n\n", "C\r", "\r\n",
		"last", "\n", NULL,
	};
	static const struct { const char *line; int ending; } want[] = {
		{ "HELLO", IOS_EOL_CRLF }, { "WORLD", IOS_EOL_LF },
		{ "A\rB", IOS_EOL_CRLF }, { "", IOS_EOL_CRLF },
		{ "", IOS_EOL_LF }, { "C\r", IOS_EOL_CRLF },
		{ "last", IOS_EOL_LF },
	};
	struct harness h;
	struct peer p;
	size_t i;

	run_script(&std_lim, chunks, &p, &h);
	ck_assert_int_eq(p.why, IOS_CLOSE_EOF);
	ck_assert_uint_eq(p.nlines, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < p.nlines; i++) {
		ck_assert_str_eq(p.lines[i], want[i].line);
		ck_assert_int_eq(p.endings[i], want[i].ending);
	}
	ck_assert_int_eq(p.ntoolong, 0);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

/* ios_wipe_consumed: the reader of a password line wipes it. */
struct wipe_case {
	struct harness *h;
	int checked;
};

static void
wipe_on_read(struct ios *ios, void *arg)
{
	struct wipe_case *w = arg;
	const char *line, *rest;
	size_t len, n;
	char *copy;

	if (w->checked || ios_read_line(ios, &line, &len, NULL) != 1)
		return;
	ck_assert_str_eq(line, "PASS hunter2");
	copy = (char *)(uintptr_t)line;	/* still the buffer's memory */
	ios_wipe_consumed(ios);
	for (size_t i = 0; i < len; i++)
		ck_assert_int_eq(copy[i], 0);
	rest = ios_peek(ios, &n);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(memcmp(rest, "NOOP\r\n", 6), 0);
	w->checked = 1;
	ev_break(w->h->loop);
}

static void
wipe_on_close(struct ios *ios, enum ios_close why, const char *text, void *arg)
{
	(void)ios;
	(void)why;
	(void)text;
	(void)arg;
}

START_TEST(test_wipe_consumed)
{
	static const struct ios_callbacks cb = { wipe_on_read, NULL, wipe_on_close };
	static const char input[] = "PASS hunter2\r\nNOOP\r\n";
	struct harness h;
	struct wipe_case w = { &h, 0 };
	struct ios *s;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], input, sizeof(input) - 1), (ssize_t)sizeof(input) - 1);
	harness_init(&h);
	s = ios_new(h.loop, sv[0], &std_lim, &cb, &w);
	while (!w.checked && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(w.checked, 1);
	ios_free(&s);
	close(sv[1]);
	harness_done(&h);
}
END_TEST

START_TEST(test_overlong)
{
	/* max_line 8, max_input 16. */
	static const char *const chunks[] = {
		"12345678\r\n",			/* exactly max_line: fine */
		"123456789\r\n",		/* one too long, whole */
		"ok1\n",
		"0123456789", "ABCDEFGHIJ",	/* too long, split, no LF */
		"KLMNOPQRSTUVWXYZ", "abc\r\nok2\r\n",
		"123456789\r", "\nok3\n",	/* too long with CR split */
		NULL,
	};
	struct harness h;
	struct peer p;

	run_script(&small_lim, chunks, &p, &h);
	ck_assert_int_eq(p.why, IOS_CLOSE_EOF);
	ck_assert_int_eq(p.ntoolong, 3);
	ck_assert_uint_eq(p.nlines, 4);
	ck_assert_str_eq(p.lines[0], "12345678");
	ck_assert_str_eq(p.lines[1], "ok1");
	ck_assert_str_eq(p.lines[2], "ok2");
	ck_assert_str_eq(p.lines[3], "ok3");
	peer_done(&p);
	harness_done(&h);
}
END_TEST

/* Back-pressure test: after a pause, check and start consuming. */
static void
resume_cb(struct ev_timer *t, void *arg)
{
	struct peer *p = arg;
	size_t n;

	(void)t;
	(void)ios_peek(p->s, &n);
	ck_assert_uint_eq(n, 16);	/* stopped at max_input */
	ck_assert_int_le(p->nread_cb, 2);	/* and no busy loop */
	p->lazy = 0;
	p->raw_mode = 1;
	p->raw_total += n;
	ios_consume(p->s, n);
}

/* Stop once every byte arrived. */
static void
done_check_cb(struct ev_timer *t, void *arg)
{
	struct peer *p = arg;

	if (p->raw_total == 64)
		ev_break(p->loop);
	else
		ev_timer_reset(t, 2);
}

START_TEST(test_backpressure)
{
	struct harness h;
	struct peer p;
	struct ev_timer *resume, *done;
	char data[64];
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&p, &h, sv[0], &small_lim, "reader");
	p.lazy = 1;
	memset(data, 'x', sizeof(data));
	ck_assert_int_eq(write(sv[1], data, sizeof(data)), (ssize_t)sizeof(data));
	resume = ev_timer_add(h.loop, 50, 0, resume_cb, &p);
	done = ev_timer_add(h.loop, 60, 0, done_check_cb, &p);
	ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_uint_eq(p.raw_total, 64);
	ck_assert_int_eq(p.closed, 0);

	/* Pausing reading keeps bytes in the socket; resuming delivers. */
	ios_set_reading(p.s, 0);
	ck_assert_int_eq(write(sv[1], "abc\n", 4), 4);
	p.raw_mode = 0;
	ev_timer_reset(done, 20);
	ck_assert_int_eq(ev_run(h.loop), 0);	/* done_check breaks */
	ck_assert_uint_eq(p.nlines, 0);
	ios_set_reading(p.s, 1);
	close(sv[1]);
	while (!p.closed && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_uint_eq(p.nlines, 1);
	ck_assert_str_eq(p.lines[0], "abc");
	ev_timer_del(&resume);
	ev_timer_del(&done);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

/* A raw reader on the other end of a socketpair. */
struct sink {
	struct ev_io *io;
	size_t total;
	size_t want;
	int eof;
	struct ev_loop *loop;
	char last[16];
};

/* Read what is there; stop at EOF. */
static void
sink_cb(struct ev_io *io, int fd, int events, void *arg)
{
	struct sink *k = arg;
	char b[65536];
	ssize_t n;

	(void)io;
	(void)events;
	n = read(fd, b, sizeof(b));
	if (n > 0) {
		k->total += (size_t)n;
		memcpy(k->last, b, (size_t)n < sizeof(k->last) - 1 ?
		    (size_t)n : sizeof(k->last) - 1);
		return;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		k->eof = 1;
		ev_io_del(&k->io);
		ev_break(k->loop);
	}
}

/* Stop the loop when the sink has everything and the writer drained. */
static void
flush_drained(struct ios *s, void *arg)
{
	struct peer *p = arg;

	(void)s;
	p->ndrained++;
}

START_TEST(test_flush_drained)
{
	static const struct ios_limits lim = { 1000, 4096, 4 << 20, 0 };
	static const struct ios_callbacks cb = {
		peer_read, flush_drained, peer_close,
	};
	struct harness h;
	struct peer p;
	struct sink k;
	char *big;
	size_t n = 3 << 20;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	harness_init(&h);
	memset(&p, 0, sizeof(p));
	p.loop = h.loop;
	p.s = ios_new(h.loop, sv[0], &lim, &cb, &p);
	memset(&k, 0, sizeof(k));
	k.loop = h.loop;
	k.io = ev_io_add(h.loop, sv[1], EV_READ, sink_cb, &k);

	big = malloc(n);
	ck_assert_ptr_nonnull(big);
	memset(big, 'z', n);
	ck_assert_int_eq(ios_write(p.s, big, n), 0);
	ck_assert_int_eq(ios_printf(p.s, "%s\r\n", "END"), 0);
	ck_assert_uint_eq(ios_pending(p.s), n + 5);
	/* Too much: fails, but on_close comes from the loop, not here. */
	ck_assert_int_eq(ios_write(p.s, big, (size_t)2 << 20), -1);
	ck_assert_int_eq(p.closed, 0);
	ck_assert_int_eq(ios_write(p.s, "x", 1), -1);	/* dead now */
	free(big);
	while (!k.eof && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_int_eq(p.closed, 1);
	ck_assert_int_eq(p.why, IOS_CLOSE_OVERFLOW);
	ck_assert(k.eof);
	ev_io_del(&k.io);
	close(sv[1]);
	peer_done(&p);

	/* Now a successful flush with on_drained. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	memset(&p, 0, sizeof(p));
	p.loop = h.loop;
	p.s = ios_new(h.loop, sv[0], &lim, &cb, &p);
	memset(&k, 0, sizeof(k));
	k.loop = h.loop;
	k.io = ev_io_add(h.loop, sv[1], EV_READ, sink_cb, &k);
	big = malloc(n);
	ck_assert_ptr_nonnull(big);
	memset(big, 'z', n);
	ck_assert_int_eq(ios_write(p.s, big, n), 0);
	free(big);
	ck_assert_int_eq(ios_printf(p.s, "%s\r\n", "END"), 0);
	/* flush_close: everything is sent, then on_close(EOF). */
	ios_flush_close(p.s);
	while (!k.eof && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_uint_eq(k.total, n + 5);
	ck_assert(k.eof);
	ck_assert_int_eq(p.closed, 1);
	ck_assert_int_eq(p.why, IOS_CLOSE_EOF);
	close(sv[1]);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

/* on_drained fires after the output empties. */
static void
drained_break(struct ios *s, void *arg)
{
	struct peer *p = arg;

	(void)s;
	p->ndrained++;
	ev_break(p->loop);
}

START_TEST(test_drained_and_eof)
{
	static const struct ios_callbacks cb = {
		peer_read, drained_break, peer_close,
	};
	struct harness h;
	struct peer p;
	char b[64];
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	memset(&p, 0, sizeof(p));
	p.loop = h.loop;
	p.s = ios_new(h.loop, sv[0], &std_lim, &cb, &p);
	ck_assert_int_eq(ios_printf(p.s, "250 %s\r\n", "ok"), 0);
	ck_assert_int_eq(ios_write(p.s, "220 hi\r\n", 8), 0);
	ck_assert_int_eq(p.ndrained, 0);	/* not from inside ios_write */
	ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_int_eq(p.ndrained, 1);
	ck_assert_uint_eq(ios_pending(p.s), 0);
	ck_assert_int_eq(read(sv[1], b, sizeof(b)), 16);
	ck_assert(memcmp(b, "250 ok\r\n220 hi\r\n", 16) == 0);

	/* The peer goes away: on_close(EOF) once. */
	close(sv[1]);
	while (!p.closed && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(p.why, IOS_CLOSE_EOF);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

START_TEST(test_write_error)
{
	struct harness h;
	struct peer p;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&p, &h, sv[0], &std_lim, "writer");
	ios_set_reading(p.s, 0);	/* only the write can notice */
	close(sv[1]);
	ck_assert_int_eq(ios_write(p.s, "x\r\n", 3), 0);
	ck_assert_int_eq(p.closed, 0);
	while (!p.closed && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_int_eq(p.why, IOS_CLOSE_ERROR);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

START_TEST(test_idle_timeout)
{
	static const struct ios_limits lim = { 100, 200, 1000, 30 };
	struct harness h;
	struct peer p;
	uint64_t start;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&p, &h, sv[0], &lim, "idle");
	start = ev_now(h.loop);
	while (!p.closed && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_int_eq(p.why, IOS_CLOSE_TIMEOUT);
	ck_assert_uint_ge(ev_now(h.loop) - start, 30);

	/* ios_set_idle(0) disables it. */
	close(sv[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peer_done(&p);
	peer_init(&p, &h, sv[0], &lim, "idle");
	ios_set_idle(p.s, 0);
	ev_timer_reset(h.guard, 100);
	ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 1);	/* only the guard fired */
	ck_assert_int_eq(p.closed, 0);
	close(sv[1]);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

START_TEST(test_write_first_plain)
{
	static const struct ios_callbacks cb = {
		peer_read, peer_drained, peer_close,
	};
	struct harness h;
	struct peer p;
	struct bigsink k;
	size_t pending;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	harness_init(&h);
	memset(&p, 0, sizeof(p));
	p.loop = h.loop;
	p.on_line = big_on_line;
	p.s = ios_new(h.loop, sv[0], &big_lim, &cb, &p);

	/* A small reply goes out within the batch of its request. */
	ck_assert_int_eq(write(sv[1], "HI\r\n", 4), 4);
	ck_assert_int_eq(ios_write(p.s, "ok\r\n", 4), 0);
	run_stalled(&h, p.s, 0);
	ck_assert_int_eq(p.ndrained, 1);
	memset(&k, 0, sizeof(k));
	ck_assert_int_eq(read(sv[1], k.tail, sizeof(k.tail)), 4);
	ck_assert_mem_eq(k.tail, "ok\r\n", 4);

	/* The request for a reply larger than the socket buffer; the peer
	 * then reads nothing for a while. */
	ck_assert_int_eq(write(sv[1], "GO\r\n", 4), 4);
	run_stalled(&h, p.s, 1);
	pending = ios_pending(p.s);
	ck_assert_uint_gt(pending, 0);
	ck_assert_uint_lt(pending, BIG_REPLY + 5);
	ck_assert_int_eq(p.ndrained, 1);
	ck_assert_int_eq(p.closed, 0);

	/* More output joins the queue while it waits for room. */
	ck_assert_int_eq(ios_write(p.s, "MORE\r\n", 6), 0);
	ck_assert_uint_eq(ios_pending(p.s), pending + 6);

	/* The peer reads again: everything arrives in order, then drained. */
	memset(&k, 0, sizeof(k));
	k.loop = h.loop;
	k.want_tail = 11;
	k.io = ev_io_add(h.loop, sv[1], EV_READ, bigsink_cb, &k);
	while (k.ntail < k.want_tail && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_uint_eq(k.pos, BIG_REPLY);
	ck_assert_uint_eq(k.bad, 0);
	ck_assert_mem_eq(k.tail, "END\r\nMORE\r\n", 11);
	while (p.ndrained < 2 && !h.timed_out)
		run_for(&h, 20);
	ck_assert_int_eq(p.ndrained, 2);
	ck_assert_uint_eq(ios_pending(p.s), 0);
	ev_io_del(&k.io);
	close(sv[1]);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

/* The suite. */
static Suite *
ios_suite(void)
{
	Suite *s = suite_create("ios");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_lines_split);
	tcase_add_test(tc, test_wipe_consumed);
	tcase_add_test(tc, test_overlong);
	tcase_add_test(tc, test_backpressure);
	tcase_add_test(tc, test_flush_drained);
	tcase_add_test(tc, test_drained_and_eof);
	tcase_add_test(tc, test_write_error);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_write_first_plain);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(ios_suite());
}
