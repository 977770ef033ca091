/*
 * Unit tests for lib/core/ios (and lib/core/tlsctx): streams over socketpairs in one
 * ev loop.  Line splitting, CRLF/LF/bare CR, overlong lines and resync,
 * input back-pressure, output flushing, EOF, idle timeout, flush_close,
 * a TLS handshake between two streams with a certificate made by
 * tls_make_selfsigned(), STARTTLS discarding clear-text input, and
 * replies larger than the socket buffer to a peer that stops reading for a
 * while (clear text and TLS: output waits for room without spinning), and
 * half-closes over TCP (every reply to what came before the FIN is sent,
 * also across paused reading and under TLS with or without close_notify;
 * a partial line at EOF gets one on_read, not a spin; a reset while the
 * reply is queued is an error).  Each loop runs under a guard timer so a
 * bug fails the test instead of hanging.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check_util.h"
#include "ev.h"
#include "ios.h"
#include "tlsctx.h"

#define GUARD_MS 5000
#define MAX_LINES 4096

/* One stream's owner: records what its callbacks saw. */
struct peer {
	struct ev_loop *loop;
	struct ios *s;
	const char *name;
	char *lines[MAX_LINES];
	int endings[MAX_LINES];
	size_t nlines;
	int ntoolong;
	int nread_cb;
	int lazy;		/* on_read does not consume */
	size_t raw_total;	/* bytes consumed with peek/consume */
	int raw_mode;		/* consume with peek/consume, not lines */
	int closed;
	enum ios_close why;
	int ndrained;
	/* Optional behaviour hooks. */
	void (*on_line)(struct peer *p, const char *line, size_t len);
	void (*on_tls)(struct peer *p);
	int saw_tls;
	struct peer *other;
	void *ctx;
};

/* State of one test. */
struct harness {
	struct ev_loop *loop;
	struct ev_timer *guard;
	int timed_out;
};

/* The guard timer: the test took too long. */
static void
guard_cb(struct ev_timer *t, void *arg)
{
	struct harness *h = arg;

	(void)t;
	h->timed_out = 1;
	ev_break(h->loop);
}

/* Start a test: a loop and a guard timer. */
static void
harness_init(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	h->loop = ev_loop_new();
	h->guard = ev_timer_add(h->loop, GUARD_MS, 0, guard_cb, h);
}

/* End a test: nothing may be left on the loop but the guard. */
static void
harness_done(struct harness *h)
{
	ev_timer_del(&h->guard);
	ev_loop_free(&h->loop);
}

/* on_read: pull every line (or raw bytes) and record it. */
static void
peer_read(struct ios *s, void *arg)
{
	struct peer *p = arg;
	const char *line;
	size_t len;
	int r, ending;

	p->nread_cb++;
	if (!p->saw_tls && ios_tls_active(s)) {
		p->saw_tls = 1;
		if (p->on_tls != NULL)
			p->on_tls(p);
		if (p->s == NULL)
			return;
	}
	if (p->lazy)
		return;
	if (p->raw_mode) {
		size_t n;

		(void)ios_peek(s, &n);
		p->raw_total += n;
		ios_consume(s, n);
		return;
	}
	while (p->s != NULL &&
	    (r = ios_read_line(s, &line, &len, &ending)) != 0) {
		if (r < 0) {
			p->ntoolong++;
			continue;
		}
		ck_assert_uint_lt(p->nlines, MAX_LINES);
		ck_assert_int_eq(line[len], '\0');
		p->lines[p->nlines] = strndup(line, len);
		p->endings[p->nlines] = ending;
		p->nlines++;
		if (p->on_line != NULL)
			p->on_line(p, line, len);
	}
}

/* on_drained: count. */
static void
peer_drained(struct ios *s, void *arg)
{
	struct peer *p = arg;

	(void)s;
	p->ndrained++;
}

/* on_close: record the reason and free the stream. */
static void
peer_close(struct ios *s, enum ios_close why, const char *text, void *arg)
{
	struct peer *p = arg;

	ck_assert_ptr_eq(s, p->s);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(p->closed, 0);
	p->closed = 1;
	p->why = why;
	ios_free(&p->s);
	ev_break(p->loop);
}

static const struct ios_callbacks peer_cb = {
	peer_read, peer_drained, peer_close,
};

/* Start recording for a stream over fd. */
static void
peer_init(struct peer *p, struct harness *h, int fd,
    const struct ios_limits *lim, const char *name)
{
	memset(p, 0, sizeof(*p));
	p->loop = h->loop;
	p->name = name;
	p->s = ios_new(h->loop, fd, lim, &peer_cb, p);
}

/* Free what a peer recorded (and its stream, if still open). */
static void
peer_done(struct peer *p)
{
	size_t i;

	for (i = 0; i < p->nlines; i++)
		free(p->lines[i]);
	ios_free(&p->s);
}

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
static const struct ios_limits std_lim = { 1000, 4096, 1 << 20, 0 };

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

/* --- Write-first output: replies larger than the socket buffer, a peer
 * that stops reading for a while, in clear text and in TLS. --- */

#define BIG_REPLY ((size_t)2 << 20)	/* far more than a socketpair holds */
#define STALL_MS 100

/* The byte at offset i of a big reply. */
static unsigned char
big_byte(size_t i)
{
	return (unsigned char)(i * 131 + (i >> 12));
}

/* Queue the big reply (in a few writes) and a final line. */
static void
queue_big_reply(struct ios *s)
{
	static unsigned char chunk[65536];
	size_t off, i, n;

	for (off = 0; off < BIG_REPLY; off += n) {
		n = BIG_REPLY - off < sizeof(chunk) ? BIG_REPLY - off :
		    sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = big_byte(off + i);
		ck_assert_int_eq(ios_write(s, chunk, n), 0);
	}
	ck_assert_int_eq(ios_printf(s, "%s\r\n", "END"), 0);
}

/* Server: on "GO", reply with the big reply from inside on_read. */
static void
big_on_line(struct peer *p, const char *line, size_t len)
{
	(void)len;
	if (strcmp(line, "GO") == 0)
		queue_big_reply(p->s);
}

/* CPU time of the process in milliseconds. */
static uint64_t
cpu_ms(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wall-clock milliseconds. */
static uint64_t
wall_ms(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A timer that ends ev_run(). */
static void
stall_over_cb(struct ev_timer *t, void *arg)
{
	struct harness *h = arg;

	(void)t;
	ev_break(h->loop);
}

/* Run the loop for ms milliseconds. */
static void
run_for(struct harness *h, uint64_t ms)
{
	struct ev_timer *t = ev_timer_add(h->loop, ms, 0, stall_over_cb, h);

	ck_assert_int_eq(ev_run(h->loop), 0);
	ev_timer_del(&t);
	ck_assert_int_eq(h->timed_out, 0);
}

/*
 * Let the writer s write what the peer takes (until its pending output
 * stops changing, and with stuck != 0 is non-zero), then run the loop for
 * STALL_MS more with a peer that does not read: the writer must wait for
 * writability, not spin.
 */
static void
run_stalled(struct harness *h, struct ios *s, int stuck)
{
	uint64_t c0, w0, cpu, wall;
	size_t before;
	int i;

	for (i = 0; i < 100; i++) {
		before = ios_pending(s);
		run_for(h, 20);
		if (ios_pending(s) == before && (before > 0 || !stuck))
			break;
	}
	ck_assert(ios_pending(s) > 0 || !stuck);
	c0 = cpu_ms();
	/* run_for() arms its timer from the loop's cached clock (the same
	 * monotonic milliseconds), which a loaded machine may leave well
	 * behind wall_ms(): measure the stall from that cached time. */
	w0 = ev_now(h->loop);
	run_for(h, STALL_MS);
	cpu = cpu_ms() - c0;
	wall = wall_ms() - w0;
	ck_assert_uint_ge(wall, STALL_MS / 2);
	ck_assert_msg(cpu * 2 < wall, "busy while stalled: cpu %llu ms of "
	    "%llu ms", (unsigned long long)cpu, (unsigned long long)wall);
}

/* A raw reader that checks the big reply byte by byte. */
struct bigsink {
	struct ev_loop *loop;
	struct ev_io *io;
	size_t pos;		/* bytes of the big reply seen */
	size_t bad;		/* bytes that differed */
	char tail[16];		/* what follows it */
	size_t ntail;
	size_t want_tail;	/* break the loop at this many tail bytes */
};

/* Check one piece of the stream against the expected bytes. */
static void
bigsink_take(struct bigsink *k, const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (k->pos < BIG_REPLY) {
			if (b[i] != big_byte(k->pos))
				k->bad++;
			k->pos++;
		} else if (k->ntail < sizeof(k->tail)) {
			k->tail[k->ntail++] = (char)b[i];
		} else {
			k->bad++;
		}
	}
}

/* Watch callback for the raw end. */
static void
bigsink_cb(struct ev_io *io, int fd, int events, void *arg)
{
	struct bigsink *k = arg;
	unsigned char b[32768];
	ssize_t n;

	(void)io;
	(void)events;
	n = read(fd, b, sizeof(b));
	if (n > 0)
		bigsink_take(k, b, (size_t)n);
	if (k->ntail == k->want_tail)
		ev_break(k->loop);
}

START_TEST(test_write_first_plain)
{
	static const struct ios_limits lim = { 1000, 4096, 8 << 20, 0 };
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
	p.s = ios_new(h.loop, sv[0], &lim, &cb, &p);

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

/* TLS test fixture: a certificate in a temporary directory. */
struct tlsfix {
	char dir[64];
	char cert[128];
	char key[128];
	SSL_CTX *server;
	SSL_CTX *client;
};

/* Make a self-signed certificate and both contexts. */
static void
tlsfix_init(struct tlsfix *f)
{
	const char *error = NULL;
	struct stat st;

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_ios.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
	ck_assert_msg(tls_make_selfsigned(f->cert, f->key, "mx.example.org", 2,
	    &error) == 0, "tls_make_selfsigned: %s", error);
	ck_assert_int_eq(stat(f->key, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(f->cert, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0644);
	f->server = tls_server_ctx(f->cert, f->key, &error);
	ck_assert_msg(f->server != NULL, "server ctx: %s", error);
	f->client = tls_client_ctx(1, f->cert, &error);
	ck_assert_msg(f->client != NULL, "client ctx: %s", error);
	ck_assert_int_eq(tls_make_selfsigned(f->cert, f->key, "bad name", 2,
	    &error), -1);
}

/* Remove the certificate files and free the contexts. */
static void
tlsfix_done(struct tlsfix *f)
{
	SSL_CTX_free(f->server);
	SSL_CTX_free(f->client);
	unlink(f->cert);
	unlink(f->key);
	rmdir(f->dir);
}

/* Server: echo every line; nothing special at TLS start. */
static void
echo_line(struct peer *p, const char *line, size_t len)
{
	ck_assert_int_eq(ios_printf(p->s, "echo: %.*s\r\n", (int)len, line), 0);
}

/* Client: after the handshake, send two lines. */
static void
client_tls_up(struct peer *p)
{
	ck_assert_int_eq(ios_write(p->s, "one\r\ntwo\r\n", 10), 0);
}

/* Client: after both echoes, close cleanly. */
static void
client_line(struct peer *p, const char *line, size_t len)
{
	(void)line;
	(void)len;
	if (p->nlines == 2)
		ios_flush_close(p->s);
}

/* Run until both peers closed. */
static void
run_until_closed(struct harness *h, struct peer *a, struct peer *b)
{
	while ((!a->closed || !b->closed) && !h->timed_out)
		ck_assert_int_eq(ev_run(h->loop), 0);
	ck_assert_int_eq(h->timed_out, 0);
}

START_TEST(test_tls_echo)
{
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	int sv[2];

	tlsfix_init(&f);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&srv, &h, sv[0], &std_lim, "server");
	peer_init(&cli, &h, sv[1], &std_lim, "client");
	srv.on_line = echo_line;
	cli.on_tls = client_tls_up;
	cli.on_line = client_line;
	ck_assert_int_eq(ios_starttls_server(srv.s, f.server), 0);
	ck_assert_int_eq(ios_starttls_client(cli.s, f.client, "mx.example.org"), 0);
	ck_assert_int_eq(ios_tls_active(srv.s), 0);
	ck_assert_int_eq(ios_starttls_server(srv.s, f.server), -1);
	ck_assert_ptr_nonnull(ios_ssl(cli.s));
	ck_assert_int_eq(ios_fd(cli.s), sv[1]);
	run_until_closed(&h, &srv, &cli);

	ck_assert(srv.saw_tls);
	ck_assert(cli.saw_tls);
	ck_assert_uint_eq(srv.nlines, 2);
	ck_assert_str_eq(srv.lines[0], "one");
	ck_assert_str_eq(srv.lines[1], "two");
	ck_assert_uint_eq(cli.nlines, 2);
	ck_assert_str_eq(cli.lines[0], "echo: one");
	ck_assert_str_eq(cli.lines[1], "echo: two");
	ck_assert_int_eq(cli.why, IOS_CLOSE_EOF);
	ck_assert_int_eq(srv.why, IOS_CLOSE_EOF);
	peer_done(&srv);
	peer_done(&cli);
	harness_done(&h);
	tlsfix_done(&f);
}
END_TEST

/* Client: the verification against the wrong name fails the handshake. */
START_TEST(test_tls_wrong_name)
{
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	int sv[2];

	tlsfix_init(&f);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&srv, &h, sv[0], &std_lim, "server");
	peer_init(&cli, &h, sv[1], &std_lim, "client");
	ck_assert_int_eq(ios_starttls_server(srv.s, f.server), 0);
	ck_assert_int_eq(ios_starttls_client(cli.s, f.client, "other.example"), 0);
	run_until_closed(&h, &srv, &cli);
	ck_assert_int_eq(cli.why, IOS_CLOSE_TLS);
	ck_assert_int_eq(srv.saw_tls, 0);
	peer_done(&srv);
	peer_done(&cli);
	harness_done(&h);
	tlsfix_done(&f);
}
END_TEST

#define MANY_LINES 2000

/* Client: after the handshake, send many lines in one burst. */
static void
client_many(struct peer *p)
{
	int i;

	for (i = 0; i < MANY_LINES; i++)
		ck_assert_int_eq(ios_printf(p->s, "line %05d padding\r\n", i), 0);
}

/* Server: confirm once every line arrived.  The client closes only then,
 * so the last record's bytes must be read out of OpenSSL's buffer while
 * the socket itself has nothing more to read. */
static void
server_count(struct peer *p, const char *line, size_t len)
{
	(void)line;
	(void)len;
	if (p->nlines == MANY_LINES)
		ck_assert_int_eq(ios_write(p->s, "done\r\n", 6), 0);
}

/* Client: close on the confirmation. */
static void
client_done(struct peer *p, const char *line, size_t len)
{
	(void)len;
	if (strcmp(line, "done") == 0)
		ios_flush_close(p->s);
}

START_TEST(test_tls_small_buffer)
{
	/* A 64-byte input buffer: records decrypt into far more than fits,
	 * so the rest waits inside OpenSSL with the socket not readable. */
	static const struct ios_limits lim = { 32, 64, 1 << 20, 0 };
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	char want[32];
	int sv[2], i;

	tlsfix_init(&f);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&srv, &h, sv[0], &lim, "server");
	peer_init(&cli, &h, sv[1], &std_lim, "client");
	cli.on_tls = client_many;
	cli.on_line = client_done;
	srv.on_line = server_count;
	ck_assert_int_eq(ios_starttls_server(srv.s, f.server), 0);
	ck_assert_int_eq(ios_starttls_client(cli.s, f.client, NULL), 0);
	run_until_closed(&h, &srv, &cli);
	ck_assert_int_eq(srv.why, IOS_CLOSE_EOF);
	ck_assert_uint_eq(cli.nlines, 1);
	ck_assert_int_eq(srv.ntoolong, 0);
	ck_assert_uint_eq(srv.nlines, MANY_LINES);
	for (i = 0; i < (int)srv.nlines; i++) {
		snprintf(want, sizeof(want), "line %05d padding", i);
		ck_assert_str_eq(srv.lines[i], want);
	}
	peer_done(&srv);
	peer_done(&cli);
	harness_done(&h);
	tlsfix_done(&f);
}
END_TEST

/* TLS client for the big reply: once TLS is up, ask for it and stop
 * reading; later check every byte, and close after the last. */
static void
big_client_read(struct ios *s, void *arg)
{
	struct peer *p = arg;
	struct bigsink *k = p->ctx;
	const char *b;
	size_t n;

	p->nread_cb++;
	if (!p->saw_tls) {
		if (!ios_tls_active(s))
			return;
		p->saw_tls = 1;
		ck_assert_int_eq(ios_write(s, "GO\r\n", 4), 0);
		ios_set_reading(s, 0);
		ev_break(p->loop);
		return;
	}
	b = ios_peek(s, &n);
	bigsink_take(k, (const unsigned char *)b, n);
	ios_consume(s, n);
	if (k->ntail == k->want_tail)
		ios_flush_close(s);
}

START_TEST(test_write_first_tls)
{
	static const struct ios_limits lim = { 1000, 4096, 8 << 20, 0 };
	static const struct ios_callbacks cli_cb = {
		big_client_read, peer_drained, peer_close,
	};
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	struct bigsink k;
	int sv[2];

	tlsfix_init(&f);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&srv, &h, sv[0], &lim, "server");
	srv.on_line = big_on_line;
	memset(&cli, 0, sizeof(cli));
	memset(&k, 0, sizeof(k));
	k.want_tail = 5;
	cli.loop = h.loop;
	cli.ctx = &k;
	cli.s = ios_new(h.loop, sv[1], &lim, &cli_cb, &cli);
	ck_assert_int_eq(ios_starttls_server(srv.s, f.server), 0);
	ck_assert_int_eq(ios_starttls_client(cli.s, f.client, "mx.example.org"), 0);
	while (!cli.saw_tls && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);

	/* The server writes far more than the socket holds; the client
	 * reads nothing meanwhile. */
	run_stalled(&h, srv.s, 1);
	ck_assert_uint_eq(srv.nlines, 1);
	ck_assert_uint_gt(ios_pending(srv.s), 0);
	ck_assert_int_eq(srv.closed + cli.closed, 0);
	ck_assert_uint_eq(k.pos, 0);

	/* Reading again: every byte arrives, then both close cleanly. */
	ios_set_reading(cli.s, 1);
	run_until_closed(&h, &srv, &cli);
	ck_assert_uint_eq(k.pos, BIG_REPLY);
	ck_assert_uint_eq(k.bad, 0);
	ck_assert_mem_eq(k.tail, "END\r\n", 5);
	ck_assert_int_ge(srv.ndrained, 1);
	ck_assert_int_eq(cli.why, IOS_CLOSE_EOF);
	ck_assert_int_eq(srv.why, IOS_CLOSE_EOF);
	peer_done(&srv);
	peer_done(&cli);
	harness_done(&h);
	tlsfix_done(&f);
}
END_TEST

/* STARTTLS server: on "STARTTLS", reply and start the handshake at once;
 * anything pipelined behind it in clear text must vanish. */
static void
starttls_server_line(struct peer *p, const char *line, size_t len)
{
	struct tlsfix *f = p->ctx;

	(void)len;
	if (strcmp(line, "STARTTLS") == 0) {
		ck_assert_int_eq(ios_printf(p->s, "220 go ahead\r\n"), 0);
		ck_assert_int_eq(ios_starttls_server(p->s, f->server), 0);
	}
}

/* STARTTLS client: on "220 ...", start TLS; after it, send one line. */
static void
starttls_client_line(struct peer *p, const char *line, size_t len)
{
	struct tlsfix *f = p->ctx;

	(void)len;
	if (strncmp(line, "220 ", 4) == 0)
		ck_assert_int_eq(ios_starttls_client(p->s, f->client,
		    "mx.example.org"), 0);
	else if (strcmp(line, "echo: AFTER") == 0)
		ios_flush_close(p->s);
}

/* STARTTLS client: once TLS is up, send the post-TLS command. */
static void
starttls_client_up(struct peer *p)
{
	ck_assert_int_eq(ios_write(p->s, "AFTER\r\n", 7), 0);
}

/* STARTTLS server: echo only after TLS. */
static void
starttls_server_up(struct peer *p)
{
	p->on_line = echo_line;
}

START_TEST(test_starttls_discard)
{
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	int sv[2];

	tlsfix_init(&f);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(&h);
	peer_init(&srv, &h, sv[0], &std_lim, "server");
	peer_init(&cli, &h, sv[1], &std_lim, "client");
	srv.ctx = cli.ctx = &f;
	srv.on_line = starttls_server_line;
	srv.on_tls = starttls_server_up;
	cli.on_line = starttls_client_line;
	cli.on_tls = starttls_client_up;
	/* One segment: the injected command arrives with STARTTLS. */
	ck_assert_int_eq(ios_write(cli.s, "STARTTLS\r\nINJECTED\r\n", 20), 0);
	run_until_closed(&h, &srv, &cli);
	ck_assert_uint_eq(srv.nlines, 2);
	ck_assert_str_eq(srv.lines[0], "STARTTLS");
	ck_assert_str_eq(srv.lines[1], "AFTER");
	ck_assert_uint_eq(cli.nlines, 2);
	ck_assert_str_eq(cli.lines[0], "220 go ahead");
	ck_assert_str_eq(cli.lines[1], "echo: AFTER");
	ck_assert_int_eq(srv.why, IOS_CLOSE_EOF);
	peer_done(&srv);
	peer_done(&cli);
	harness_done(&h);
	tlsfix_done(&f);
}
END_TEST

/* --- Half-close: the peer sends commands and shuts down its write side;
 * every reply must still arrive before the stream closes. --- */

/* A connected TCP pair over 127.0.0.1 (sv[0] accepted, sv[1] client). */
static void
tcp_pair(int sv[2])
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int lfd, small = 65536;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(sv[1], 0);
	/* Small buffers, so that BIG_REPLY cannot fit in flight. */
	ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small,
	    sizeof(small)), 0);
	ck_assert_int_eq(connect(sv[1], (struct sockaddr *)&sin, sizeof(sin)), 0);
	sv[0] = accept(lfd, NULL, NULL);
	ck_assert_int_ge(sv[0], 0);
	ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small,
	    sizeof(small)), 0);
	close(lfd);
}

/* Read the raw end until EOF (blocking, bounded by a receive timeout). */
static size_t
read_to_eof(int fd, char *b, size_t cap)
{
	struct timeval tv = { 5, 0 };
	size_t n = 0;
	ssize_t r;

	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	while ((r = read(fd, b + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	ck_assert_int_eq(r, 0);
	b[n] = '\0';
	return n;
}

/* Owner state for the pausing echo server. */
struct pauser {
	struct peer *p;
	struct ev_timer *t;
	int paused;
	int npauses;
};

/* Resume the paused owner from a timer. */
static void
pauser_resume(struct ev_timer *t, void *arg)
{
	struct pauser *z = arg;

	ev_timer_del(&z->t);
	(void)t;
	z->paused = 0;
	ios_set_reading(z->p->s, 1);
}

/* Echo one line, then pause reading for a while (like smtpd waiting for
 * its auth service or a disk commit). */
static void
pauser_read(struct ios *s, void *arg)
{
	struct peer *p = arg;
	struct pauser *z = p->ctx;
	const char *line;
	size_t len;
	int r;

	p->nread_cb++;
	ck_assert_int_eq(z->paused, 0);
	if (!p->saw_tls && ios_tls_active(s))
		p->saw_tls = 1;
	r = ios_read_line(s, &line, &len, NULL);
	if (r <= 0)
		return;
	p->lines[p->nlines++] = strndup(line, len);
	ck_assert_int_eq(ios_printf(s, "echo: %.*s\r\n", (int)len, line), 0);
	z->paused = 1;
	z->npauses++;
	ios_set_reading(s, 0);
	z->t = ev_timer_add(p->loop, 20, 0, pauser_resume, z);
}

/* on_close for the pausing server: never while it is paused. */
static void
pauser_close(struct ios *s, enum ios_close why, const char *text, void *arg)
{
	struct peer *p = arg;
	struct pauser *z = p->ctx;

	ck_assert_int_eq(z->paused, 0);
	ck_assert_ptr_null(z->t);
	peer_close(s, why, text, arg);
}

START_TEST(test_halfclose_plain)
{
	static const char req[] = "one\r\ntwo\r\nthree\r\n";
	static const char want[] =
	    "echo: one\r\necho: two\r\necho: three\r\n";
	static const struct ios_callbacks pcb = {
		pauser_read, peer_drained, pauser_close,
	};
	struct harness h;
	struct peer p;
	struct pauser z;
	char b[256];
	int sv[2], pause;

	for (pause = 0; pause <= 1; pause++) {
		tcp_pair(sv);
		harness_init(&h);
		if (pause) {
			memset(&p, 0, sizeof(p));
			memset(&z, 0, sizeof(z));
			p.loop = h.loop;
			p.ctx = &z;
			z.p = &p;
			p.s = ios_new(h.loop, sv[0], &std_lim, &pcb, &p);
		} else {
			peer_init(&p, &h, sv[0], &std_lim, "echo");
			p.on_line = echo_line;
		}
		/* Pipelined commands and the FIN, all before ios runs. */
		ck_assert_int_eq(write(sv[1], req, sizeof(req) - 1),
		    (ssize_t)sizeof(req) - 1);
		ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
		while (!p.closed && !h.timed_out)
			ck_assert_int_eq(ev_run(h.loop), 0);
		ck_assert_int_eq(h.timed_out, 0);
		ck_assert_int_eq(p.why, IOS_CLOSE_EOF);
		ck_assert_uint_eq(p.nlines, 3);
		if (pause)
			ck_assert_int_eq(z.npauses, 3);
		else
			ck_assert_int_le(p.nread_cb, 3);
		ck_assert_uint_eq(read_to_eof(sv[1], b, sizeof(b)),
		    sizeof(want) - 1);
		ck_assert_str_eq(b, want);
		close(sv[1]);
		peer_done(&p);
		harness_done(&h);
	}
}
END_TEST

/* The last close text seen by text_close(). */
static char halfclose_text[64];

/* on_close that also records the text. */
static void
text_close(struct ios *s, enum ios_close why, const char *text, void *arg)
{
	snprintf(halfclose_text, sizeof(halfclose_text), "%s", text);
	peer_close(s, why, text, arg);
}

START_TEST(test_halfclose_partial)
{
	static const struct ios_callbacks cb = {
		peer_read, peer_drained, text_close,
	};
	struct harness h;
	struct peer p;
	uint64_t c0;
	int sv[2], lazy;

	for (lazy = 0; lazy <= 1; lazy++) {
		tcp_pair(sv);
		harness_init(&h);
		memset(&p, 0, sizeof(p));
		p.loop = h.loop;
		p.lazy = lazy;		/* lazy: consumes nothing at all */
		p.s = ios_new(h.loop, sv[0], &std_lim, &cb, &p);
		ck_assert_int_eq(write(sv[1], "full\r\npartial", 13), 13);
		ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
		c0 = cpu_ms();
		while (!p.closed && !h.timed_out)
			ck_assert_int_eq(ev_run(h.loop), 0);
		ck_assert_int_eq(h.timed_out, 0);
		ck_assert_int_eq(p.why, IOS_CLOSE_EOF);
		ck_assert_str_eq(halfclose_text, "connection closed by peer");
		ck_assert_uint_eq(p.nlines, lazy ? 0 : 1);
		/* One on_read for the data, one after the EOF; no spin. */
		ck_assert_int_eq(p.nread_cb, 2);
		ck_assert_uint_lt(cpu_ms() - c0, 1000);
		close(sv[1]);
		peer_done(&p);
		harness_done(&h);
	}
}
END_TEST

START_TEST(test_halfclose_big_reply)
{
	static const struct ios_limits lim = { 1000, 4096, 8 << 20, 0 };
	struct harness h;
	struct peer p;
	struct bigsink k;
	int sv[2];

	/* The reply is far larger than the socket holds: the close must
	 * wait for the peer to read all of it. */
	tcp_pair(sv);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	harness_init(&h);
	peer_init(&p, &h, sv[0], &lim, "big");
	p.on_line = big_on_line;
	ck_assert_int_eq(write(sv[1], "GO\r\n", 4), 4);
	ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
	run_stalled(&h, p.s, 1);
	ck_assert_int_eq(p.closed, 0);
	ck_assert_uint_gt(ios_pending(p.s), 0);

	memset(&k, 0, sizeof(k));
	k.loop = h.loop;
	k.want_tail = 6;	/* never reached: run to the close */
	k.io = ev_io_add(h.loop, sv[1], EV_READ, bigsink_cb, &k);
	while (!p.closed && !h.timed_out)
		ck_assert_int_eq(ev_run(h.loop), 0);
	ck_assert_int_eq(h.timed_out, 0);
	ck_assert_int_eq(p.why, IOS_CLOSE_EOF);
	ck_assert_uint_eq(p.nlines, 1);
	/* The stream closed only after the last byte was written. */
	while (k.ntail < 5 && !h.timed_out)
		run_for(&h, 10);
	ck_assert_uint_eq(k.pos, BIG_REPLY);
	ck_assert_uint_eq(k.bad, 0);
	ck_assert_mem_eq(k.tail, "END\r\n", 5);
	ev_io_del(&k.io);
	close(sv[1]);
	peer_done(&p);
	harness_done(&h);
}
END_TEST

START_TEST(test_halfclose_reset)
{
	static const struct ios_limits lim = { 1000, 4096, 8 << 20, 0 };
	struct linger lg = { 1, 0 };
	struct harness h;
	struct peer p;
	int sv[2], rst;

	/* The peer half-closes, then goes away for good (a close with
	 * unread data, and a plain RST) while the reply is still queued:
	 * on_close(IOS_CLOSE_ERROR), no hang. */
	for (rst = 0; rst <= 1; rst++) {
		tcp_pair(sv);
		harness_init(&h);
		peer_init(&p, &h, sv[0], &lim, "reset");
		p.on_line = big_on_line;
		ck_assert_int_eq(write(sv[1], "GO\r\n", 4), 4);
		ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
		run_stalled(&h, p.s, 1);
		ck_assert_int_eq(p.closed, 0);
		if (rst)
			ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET,
			    SO_LINGER, &lg, sizeof(lg)), 0);
		close(sv[1]);
		while (!p.closed && !h.timed_out)
			ck_assert_int_eq(ev_run(h.loop), 0);
		ck_assert_int_eq(h.timed_out, 0);
		ck_assert_int_eq(p.why, IOS_CLOSE_ERROR);
		peer_done(&p);
		harness_done(&h);
	}
}
END_TEST

/* TLS client state: send the lines, then half-close once they are
 * written. */
struct hc_client {
	int bare;		/* a bare FIN, without close_notify */
	int shut;
};

/* TLS client: once TLS is up, send three lines in one write. */
static void
hc_client_up(struct peer *p)
{
	ck_assert_int_eq(ios_write(p->s, "one\r\ntwo\r\nthree\r\n", 17), 0);
}

/* TLS client: the lines are written; send close_notify (unless bare)
 * and shut the socket's write side, but keep reading. */
static void
hc_client_drained(struct ios *s, void *arg)
{
	struct peer *p = arg;
	struct hc_client *c = p->ctx;

	p->ndrained++;
	if (c->shut || !p->saw_tls)
		return;
	c->shut = 1;
	if (!c->bare)
		ck_assert_int_eq(SSL_shutdown(ios_ssl(s)), 0);
	ck_assert_int_eq(shutdown(ios_fd(s), SHUT_WR), 0);
}

START_TEST(test_halfclose_tls)
{
	static const struct ios_callbacks scb = {
		pauser_read, peer_drained, text_close,
	};
	static const struct ios_callbacks ccb = {
		peer_read, hc_client_drained, peer_close,
	};
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	struct pauser z;
	struct hc_client c;
	int sv[2], bare;

	tlsfix_init(&f);
	for (bare = 0; bare <= 1; bare++) {
		tcp_pair(sv);
		harness_init(&h);
		memset(&srv, 0, sizeof(srv));
		memset(&cli, 0, sizeof(cli));
		memset(&z, 0, sizeof(z));
		memset(&c, 0, sizeof(c));
		c.bare = bare;
		z.p = &srv;
		srv.loop = cli.loop = h.loop;
		srv.ctx = &z;
		cli.ctx = &c;
		cli.on_tls = hc_client_up;
		srv.s = ios_new(h.loop, sv[0], &std_lim, &scb, &srv);
		cli.s = ios_new(h.loop, sv[1], &std_lim, &ccb, &cli);
		ck_assert_int_eq(ios_starttls_server(srv.s, f.server), 0);
		ck_assert_int_eq(ios_starttls_client(cli.s, f.client,
		    "mx.example.org"), 0);
		run_until_closed(&h, &srv, &cli);
		ck_assert_int_eq(c.shut, 1);
		ck_assert_int_eq(srv.why, IOS_CLOSE_EOF);
		/* A bare FIN reads as close_notify (tlsctx sets
		 * SSL_OP_IGNORE_UNEXPECTED_EOF), so the replies can go out. */
		ck_assert_str_eq(halfclose_text, "TLS closed by peer");
		ck_assert_uint_eq(srv.nlines, 3);
		ck_assert_int_eq(z.npauses, 3);
		ck_assert_int_eq(cli.why, IOS_CLOSE_EOF);
		ck_assert_uint_eq(cli.nlines, 3);
		ck_assert_str_eq(cli.lines[0], "echo: one");
		ck_assert_str_eq(cli.lines[1], "echo: two");
		ck_assert_str_eq(cli.lines[2], "echo: three");
		peer_done(&srv);
		peer_done(&cli);
		harness_done(&h);
	}
	tlsfix_done(&f);
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
	tcase_add_test(tc, test_tls_echo);
	tcase_add_test(tc, test_tls_wrong_name);
	tcase_add_test(tc, test_tls_small_buffer);
	tcase_add_test(tc, test_starttls_discard);
	tcase_add_test(tc, test_write_first_tls);
	tcase_add_test(tc, test_halfclose_plain);
	tcase_add_test(tc, test_halfclose_partial);
	tcase_add_test(tc, test_halfclose_big_reply);
	tcase_add_test(tc, test_halfclose_reset);
	tcase_add_test(tc, test_halfclose_tls);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(ios_suite());
}
