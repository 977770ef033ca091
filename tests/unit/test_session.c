/*
 * Unit tests for lib/core/session: a small test protocol served over real
 * loopback TCP connections, with raw sockets as clients (and, for the
 * outbound side, lib/core/session's own connect against a real listener).
 * Lines, counted and uncounted raw bytes, a producer held back by a
 * client that does not read, strict in-order dispatch of pipelined
 * input that pauses for a service and for unsent output, the phase
 * timers (command, a trickled line, data, an untimed wait, the TLS
 * handshake, closing, connect), the line-length refusal, the wiping of
 * consumed lines, STARTTLS through real OpenSSL handshakes (the clear
 * text pipelined after it dropped), the connection limits, stop-all,
 * and connect failures.  Every loop runs in slices under a deadline, so
 * a bug fails the test instead of hanging it.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "buf.h"
#include "check_util.h"
#include "connlimit.h"
#include "net.h"
#include "session.h"
#include "tlsctx.h"
#include "xalloc.h"

#define DEADLINE_MS 8000	/* the longest any condition may take */
#define MAX_LINES 64
#define BIG_REPLY 65536		/* one BIG command's reply */
#define CHUNK 4096		/* one PRODUCE step */
#define SMALL_BUF 32768		/* socket buffers of a slow client */

/* The test protocol's process state. */
struct srv {
	struct ev_loop *loop;
	struct session_registry reg;
	char *lines[MAX_LINES];		/* every line dispatched, in order */
	size_t nlines;
	int ntoolong;
	int ntimeouts;
	enum session_phase timeout_phase;
	enum session_mode timeout_mode;
	int nclosed;
	char reason[160];		/* the last closed session's */
	int secret_wiped;		/* CHECK found SECRET's bytes zeroed */
	size_t nwaiting;		/* lines seen when a WAIT ended */
	SSL_CTX *client_tls;		/* outbound: for STARTTLS */
	int tls_up;
};

/* One session's owner. */
struct conn {
	struct srv *v;
	struct session *ss;
	struct buf got;			/* raw bytes received */
	size_t produce_left;		/* PRODUCE steps still to go */
	const char *secret;		/* where SECRET's line was */
	size_t secret_len;
	struct ev_timer *wait;		/* WAIT / JOB: the "service" */
};

/* Record a line (copied). */
static void
record(struct srv *v, const char *line, size_t len)
{
	ck_assert_uint_lt(v->nlines, MAX_LINES);
	v->lines[v->nlines++] = xstrndup(line, len);
}

/* The "service" answers: reply and resume. */
static void
wait_over(struct ev_timer *t, void *arg)
{
	struct conn *c = arg;

	(void)t;
	ev_timer_del(&c->wait);
	c->v->nwaiting = c->v->nlines;
	session_reply(c->ss, "250 ", "waited");
	session_resume(c->ss);
}

/* Raw input for BYTES n: keep it all. */
static size_t
bytes_take(struct session *ss, const char *p, size_t n)
{
	struct conn *c = ss->owner;

	ck_assert_int_eq(ss->mode, SESSION_MODE_BYTES);
	ck_assert_int_eq(buf_append(&c->got, p, n), 0);
	return n;
}

/* BYTES n is complete. */
static void
bytes_done(struct session *ss)
{
	struct conn *c = ss->owner;

	ck_assert_int_eq(ss->mode, SESSION_MODE_LINES);
	session_reply(ss, "250 ", "got %s", buf_cstr(&c->got));
	buf_reset(&c->got);
}

/* Raw input for DATA: everything up to and including a '.'. */
static size_t
data_take(struct session *ss, const char *p, size_t n)
{
	struct conn *c = ss->owner;
	const char *dot = memchr(p, '.', n);
	size_t used = dot != NULL ? (size_t)(dot - p) + 1 : n;

	ck_assert_int_eq(buf_append(&c->got, p, used), 0);
	if (dot != NULL) {
		session_read_lines(ss);
		session_reply(ss, "250 ", "data %s", buf_cstr(&c->got));
		buf_reset(&c->got);
	}
	return used;
}

/* PRODUCE: one chunk a step, then the end line. */
static int
produce_step(struct session *ss)
{
	struct conn *c = ss->owner;
	static char chunk[CHUNK];

	ck_assert_uint_lt(ss->ios != NULL ? ios_pending(ss->ios) : 0,
	    ss->reg->proto->produce_pause);
	memset(chunk, 'p', sizeof(chunk));
	session_write(ss, chunk, sizeof(chunk));
	if (--c->produce_left > 0)
		return 0;
	session_reply(ss, "250 ", "produced");
	return 1;
}

/* The test protocol: a command per line. */
static void
srv_line(struct session *ss, const char *line, size_t len)
{
	struct conn *c = ss->owner;
	struct srv *v = c->v;
	static char big[BIG_REPLY];
	unsigned long n;

	record(v, line, len);
	if (strcmp(line, "WAIT") == 0 || strcmp(line, "JOB") == 0) {
		if (line[0] == 'J')
			session_wait_untimed(ss);
		else
			session_wait(ss);
		c->wait = ev_timer_add(v->loop, line[0] == 'J' ? 400 : 50, 0,
		    wait_over, c);
	} else if (sscanf(line, "BYTES %lu", &n) == 1) {
		session_read_bytes(ss, n, bytes_take, bytes_done);
	} else if (strcmp(line, "DATA") == 0) {
		session_read_bytes(ss, SESSION_UNCOUNTED, data_take, NULL);
	} else if (sscanf(line, "PRODUCE %lu", &n) == 1) {
		c->produce_left = n;
		session_produce(ss, produce_step);
	} else if (strcmp(line, "BIG") == 0 || strcmp(line, "BIGQUIT") == 0) {
		memset(big, 'b', sizeof(big) - 2);
		memcpy(big + sizeof(big) - 2, "\r\n", 2);
		for (int i = 0; i < (line[3] == 'Q' ? 32 : 1); i++)
			session_write(ss, big, sizeof(big));
		if (line[3] == 'Q')
			session_close_after(ss);
	} else if (strncmp(line, "SECRET ", 7) == 0) {
		c->secret = line;
		c->secret_len = len;
		session_reply(ss, "250 ", "noted");
	} else if (strcmp(line, "CHECK") == 0) {
		v->secret_wiped = c->secret != NULL;
		for (size_t i = 0; c->secret != NULL && i < c->secret_len; i++)
			if (c->secret[i] != '\0')
				v->secret_wiped = 0;
		session_reply(ss, "250 ", "checked");
	} else if (strcmp(line, "STARTTLS") == 0) {
		session_reply(ss, "220 ", "go");
		ck_assert_int_eq(session_starttls(ss), 0);
	} else if (strcmp(line, "QUIT") == 0) {
		session_reply(ss, "221 ", "bye");
		session_close_after(ss);
	} else {
		session_reply(ss, "250 ", "%s", line);
	}
}

static void
srv_ready(struct session *ss)
{
	session_reply(ss, "220 ", "hello");
}

static void
srv_too_long(struct session *ss)
{
	struct conn *c = ss->owner;

	c->v->ntoolong++;
	session_reply(ss, "500 ", "too long");
}

static void
srv_timeout(struct session *ss)
{
	struct conn *c = ss->owner;

	c->v->ntimeouts++;
	c->v->timeout_phase = ss->phase;
	c->v->timeout_mode = ss->mode;
	session_reply(ss, "421 ", "timeout");
}

static void
srv_closed(struct session *ss, const char *reason)
{
	struct conn *c = ss->owner;

	c->v->nclosed++;
	snprintf(c->v->reason, sizeof(c->v->reason), "%s", reason);
	ev_timer_del(&c->wait);
	buf_free(&c->got);
	free(c);
}

static const struct session_proto srv_proto = {
	.service = "test",
	.limits = { 64, 512, 4 << 20, 0 },
	.input_pause = 16384,
	.produce_pause = 16384,
	.busy_total = "421 busy",
	.busy_addr = "421 busy here",
	.bye = "421 shutting down",
	.ready = srv_ready,
	.line = srv_line,
	.too_long = srv_too_long,
	.timeout = srv_timeout,
	.closed = srv_closed,
};

/* A server with the phase deadlines cmd, data, tls, closing (ms). */
static void
srv_init(struct srv *v, uint64_t cmd, uint64_t data, uint64_t tls, uint64_t closing)
{
	memset(v, 0, sizeof(*v));
	v->loop = ev_loop_new();
	session_registry_init(&v->reg, v->loop, &srv_proto, v);
	v->reg.timeout_ms[SESSION_PHASE_CONNECT] = 300;
	v->reg.timeout_ms[SESSION_PHASE_COMMAND] = cmd;
	v->reg.timeout_ms[SESSION_PHASE_DATA] = data;
	v->reg.timeout_ms[SESSION_PHASE_TLS] = tls;
	v->reg.timeout_ms[SESSION_PHASE_CLOSING] = closing;
}

static void
srv_done(struct srv *v)
{
	session_stop_all(&v->reg);
	for (size_t i = 0; i < v->nlines; i++)
		free(v->lines[i]);
	ev_loop_free(&v->loop);
}

/* A TCP listener on 127.0.0.1 (an ephemeral port, into *port). */
static int
listener(unsigned *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A raw client of the listener on port; small buffers if slow, so that
 * what it does not read soon fills them. */
static int
client(unsigned port, int slow)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = SMALL_BUF;

	ck_assert_int_ge(fd, 0);
	if (slow)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small,
		    sizeof(small)), 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

/* Accept one connection on lfd and serve it (small send buffer if slow). */
static struct conn *
serve(struct srv *v, int lfd, int implicit_tls, int slow)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	struct conn *c = xcalloc(1, sizeof(*c));
	int small = SMALL_BUF;
	int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	if (slow)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small,
		    sizeof(small)), 0);
	c->v = v;
	buf_init(&c->got, 1 << 20);
	c->ss = session_new(&v->reg, fd, &peer, c);
	session_start(c->ss, "test", implicit_tls);
	return c;
}

/* A server session and its raw client. */
static struct conn *
pair(struct srv *v, int *cfd, int implicit_tls, int slow)
{
	unsigned port;
	int lfd = listener(&port);
	struct conn *c;

	*cfd = client(port, slow);
	c = serve(v, lfd, implicit_tls, slow);
	close(lfd);
	return c;
}

/* Send text on the raw client (one write). */
static void
say(int fd, const char *text)
{
	size_t n = strlen(text);

	ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
}

/* Append what the raw client can read now to b; 1 at EOF. */
static int
hear(int fd, struct buf *b)
{
	char tmp[65536];
	ssize_t n;

	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		ck_assert_int_eq(buf_append(b, tmp, (size_t)n), 0);
	if (n == 0)
		return 1;
	ck_assert(errno == EAGAIN || errno == ECONNRESET);
	return errno == ECONNRESET;
}

/* Run the loop in slices until done(arg) says so, reading the raw client
 * fd (if >= 0) into b meanwhile; fail after DEADLINE_MS. */
static void
run_until(struct srv *v, int (*done)(struct srv *, void *), void *arg, int fd,
    struct buf *b)
{
	uint64_t start = ev_now(v->loop);

	while (!done(v, arg)) {
		ck_assert_msg(ev_now(v->loop) - start < DEADLINE_MS, "deadline passed");
		check_run_loop_for(v->loop, 5);
		if (fd >= 0)
			(void)hear(fd, b);
	}
}

/* Run the loop for ms, reading fd (if >= 0) into b. */
static void
run_for(struct srv *v, uint64_t ms, int fd, struct buf *b)
{
	uint64_t start = ev_now(v->loop);

	while (ev_now(v->loop) - start < ms) {
		check_run_loop_for(v->loop, 5);
		if (fd >= 0)
			(void)hear(fd, b);
	}
}

/* Conditions for run_until. */
static int
heard(struct srv *v, void *arg)
{
	struct buf *b = ((struct buf **)arg)[0];
	const char *want = ((const char **)arg)[1];

	(void)v;
	return b->len >= strlen(want) && strstr(buf_cstr(b), want) != NULL;
}

static int
closed_n(struct srv *v, void *arg)
{
	return v->nclosed >= *(int *)arg;
}

static int
lines_n(struct srv *v, void *arg)
{
	return v->nlines >= *(size_t *)arg;
}

/* Run until the raw client has heard want (and read it into b). */
static void
until_heard(struct srv *v, int fd, struct buf *b, const char *want)
{
	void *arg[2] = { b, (void *)(uintptr_t)want };

	run_until(v, heard, arg, fd, b);
}

/* Run until n sessions have closed. */
static void
until_closed(struct srv *v, int n, int fd, struct buf *b)
{
	run_until(v, closed_n, &n, fd, b);
}

/* --- Lines, raw bytes, producers -------------------------------------------- */

START_TEST(test_lines)
{
	struct srv v;
	struct buf b = BUF_INIT;
	struct conn *c;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	c = pair(&v, &fd, 0, 0);
	ck_assert_int_eq(c->ss->loopback, 1);
	ck_assert_str_eq(c->ss->addr, "127.0.0.1");
	ck_assert_uint_eq(v.reg.count, 1);
	ck_assert_uint_eq(c->ss->id, 1);
	say(fd, "ONE\r\nTWO\nTHREE\r\nQUIT\r\n");
	until_closed(&v, 1, fd, &b);
	(void)hear(fd, &b);
	ck_assert_str_eq(buf_cstr(&b), "220 hello\r\n250 ONE\r\n250 TWO\r\n"
	    "250 THREE\r\n221 bye\r\n");
	ck_assert_str_eq(v.reason, "quit");
	ck_assert_uint_eq(v.reg.count, 0);
	ck_assert_ptr_null(v.reg.head);
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_bytes_counted)
{
	struct srv v;
	struct buf b = BUF_INIT;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	/* The count holds even though more is buffered behind it. */
	say(fd, "BYTES 5\r\nab\r\ndNEXT\r\nBYTES 0\r\nZERO\r\n");
	until_heard(&v, fd, &b, "250 ZERO\r\n");
	ck_assert_str_eq(buf_cstr(&b), "220 hello\r\n250 got ab\r\nd\r\n250 NEXT\r\n"
	    "250 got \r\n250 ZERO\r\n");
	/* A count that arrives in pieces. */
	buf_reset(&b);
	say(fd, "BYTES 6\r\nab");
	run_for(&v, 50, fd, &b);
	ck_assert_uint_eq(b.len, 0);
	say(fd, "cd");
	run_for(&v, 50, fd, &b);
	say(fd, "efAFTER\r\n");
	until_heard(&v, fd, &b, "250 AFTER\r\n");
	ck_assert_str_eq(buf_cstr(&b), "250 got abcdef\r\n250 AFTER\r\n");
	ck_assert_uint_eq(v.nlines, 6);	/* only the command lines */
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_bytes_uncounted)
{
	struct srv v;
	struct buf b = BUF_INIT;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	/* The handler takes up to the '.', the rest is lines again. */
	say(fd, "DATA\r\nhello\r\nworld.REST\r\nAFTER\r\n");
	until_heard(&v, fd, &b, "250 AFTER\r\n");
	ck_assert_str_eq(buf_cstr(&b), "220 hello\r\n250 data hello\r\nworld.\r\n"
	    "250 REST\r\n250 AFTER\r\n");
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_produce)
{
	struct srv v;
	struct buf b = BUF_INIT;
	struct conn *c;
	size_t want = 200 * CHUNK, before;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	c = pair(&v, &fd, 0, 1);
	until_heard(&v, fd, &b, "220 hello\r\n");
	buf_reset(&b);
	/* A slow client: the producer stops while output is unsent, and
	 * the line pipelined behind PRODUCE waits for the response. */
	say(fd, "PRODUCE 200\r\nAFTER\r\n");
	run_for(&v, 200, -1, NULL);
	ck_assert_int_eq(c->ss->mode, SESSION_MODE_PRODUCE);
	ck_assert_uint_gt(c->produce_left, 0);
	ck_assert_uint_le(ios_pending(c->ss->ios), 16384 + CHUNK);
	ck_assert_uint_eq(v.nlines, 1);
	before = c->produce_left;
	run_for(&v, 100, -1, NULL);
	ck_assert_uint_eq(c->produce_left, before);	/* held, not spinning */
	/* The client reads: the rest comes, then the next command. */
	until_heard(&v, fd, &b, "250 AFTER\r\n");
	ck_assert_uint_eq(b.len, want + strlen("250 produced\r\n250 AFTER\r\n"));
	for (size_t i = 0; i < want; i++)
		if (b.data[i] != 'p')
			ck_abort_msg("byte %zu is %d", i, b.data[i]);
	ck_assert_str_eq(buf_cstr(&b) + want, "250 produced\r\n250 AFTER\r\n");
	ck_assert_int_eq(c->ss->mode, SESSION_MODE_LINES);
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

/* --- In-order dispatch ------------------------------------------------------ */

START_TEST(test_pipelined_wait)
{
	struct srv v;
	struct buf b = BUF_INIT;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	say(fd, "A\r\nWAIT\r\nB\r\nWAIT\r\nC\r\n");
	until_heard(&v, fd, &b, "250 C\r\n");
	/* Nothing after a WAIT was looked at before its answer. */
	ck_assert_uint_eq(v.nwaiting, 4);
	ck_assert_uint_eq(v.nlines, 5);
	ck_assert_str_eq(v.lines[2], "B");
	ck_assert_str_eq(buf_cstr(&b), "220 hello\r\n250 A\r\n250 waited\r\n"
	    "250 B\r\n250 waited\r\n250 C\r\n");
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_output_mark)
{
	struct srv v;
	struct buf b = BUF_INIT;
	struct conn *c;
	size_t n = 12, seen;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	c = pair(&v, &fd, 0, 1);
	until_heard(&v, fd, &b, "220 hello\r\n");
	buf_reset(&b);
	/* A client that pipelines and does not read: the commands stop
	 * being looked at once the replies back up. */
	say(fd, "BIG\r\nBIG\r\nBIG\r\nBIG\r\nBIG\r\nBIG\r\nBIG\r\nBIG\r\nBIG\r\n"
	    "BIG\r\nBIG\r\nEND\r\n");
	run_for(&v, 200, -1, NULL);
	seen = v.nlines;
	ck_assert_uint_lt(seen, n);
	ck_assert_uint_gt(ios_pending(c->ss->ios), 0);
	ck_assert_int_eq(c->ss->out_blocked, 1);
	run_for(&v, 100, -1, NULL);
	ck_assert_uint_eq(v.nlines, seen);
	/* Reading resumes them, in order. */
	run_until(&v, lines_n, &n, fd, &b);
	until_heard(&v, fd, &b, "250 END\r\n");
	ck_assert_uint_eq(b.len, (n - 1) * BIG_REPLY + strlen("250 END\r\n"));
	ck_assert_str_eq(v.lines[n - 1], "END");
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

/* --- Line length and secrets ------------------------------------------------ */

START_TEST(test_too_long)
{
	struct srv v;
	struct buf b = BUF_INIT;
	char line[200];
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	memset(line, 'x', 100);
	memcpy(line + 100, "\r\nOK\r\n", 7);
	say(fd, line);
	until_heard(&v, fd, &b, "250 OK\r\n");
	ck_assert_str_eq(buf_cstr(&b), "220 hello\r\n500 too long\r\n250 OK\r\n");
	ck_assert_int_eq(v.ntoolong, 1);
	ck_assert_uint_eq(v.nlines, 1);
	/* 64 bytes is still a line. */
	buf_reset(&b);
	memset(line, 'y', 64);
	memcpy(line + 64, "\r\n", 3);
	say(fd, line);
	until_heard(&v, fd, &b, "\r\n");
	ck_assert_int_eq(v.ntoolong, 1);
	ck_assert_uint_eq(strlen(v.lines[1]), 64);
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_secret_wiped)
{
	struct srv v;
	struct buf b = BUF_INIT;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	/* One segment: CHECK looks at SECRET's bytes, still in the buffer. */
	say(fd, "SECRET hunter2\r\nCHECK\r\n");
	until_heard(&v, fd, &b, "250 checked\r\n");
	ck_assert_int_eq(v.secret_wiped, 1);
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

/* --- Phase timers ----------------------------------------------------------- */

START_TEST(test_timer_command)
{
	struct srv v;
	struct buf b = BUF_INIT;
	uint64_t start;
	int fd;

	srv_init(&v, 300, 5000, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	start = ev_now(v.loop);
	/* A line trickled a byte at a time does not restart the command
	 * deadline; only a whole line does. */
	for (int i = 0; i < 40 && v.nclosed == 0; i++) {
		say(fd, "x");
		run_for(&v, 25, fd, &b);
	}
	until_closed(&v, 1, fd, &b);
	ck_assert_uint_ge(ev_now(v.loop) - start, 250);
	ck_assert_uint_lt(ev_now(v.loop) - start, 900);
	ck_assert_int_eq(v.ntimeouts, 1);
	ck_assert_int_eq(v.timeout_phase, SESSION_PHASE_COMMAND);
	ck_assert_str_eq(buf_cstr(&b), "220 hello\r\n421 timeout\r\n");
	ck_assert_str_eq(v.reason, "quit");	/* the 421 went out */
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_timer_data)
{
	struct srv v;
	struct buf b = BUF_INIT;
	uint64_t start;
	int fd;

	srv_init(&v, 200, 800, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	/* Raw input runs the data deadline, restarted by any progress. */
	say(fd, "BYTES 100\r\nabc");
	start = ev_now(v.loop);
	for (int i = 0; i < 6; i++) {
		run_for(&v, 100, fd, &b);
		say(fd, "d");
	}
	ck_assert_int_eq(v.ntimeouts, 0);
	until_closed(&v, 1, fd, &b);
	ck_assert_uint_ge(ev_now(v.loop) - start, 600 + 700);
	ck_assert_int_eq(v.ntimeouts, 1);
	ck_assert_int_eq(v.timeout_phase, SESSION_PHASE_DATA);
	ck_assert_int_eq(v.timeout_mode, SESSION_MODE_BYTES);
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_timer_untimed_wait)
{
	struct srv v;
	struct buf b = BUF_INIT;
	uint64_t start;
	int fd;

	srv_init(&v, 150, 5000, 5000, 5000);
	(void)pair(&v, &fd, 0, 0);
	/* JOB waits 400 ms with the timer off; a WAIT keeps it on, but its
	 * answer (50 ms) comes first and restarts it. */
	say(fd, "WAIT\r\nJOB\r\nAFTER\r\n");
	start = ev_now(v.loop);
	until_heard(&v, fd, &b, "250 AFTER\r\n");
	ck_assert_uint_ge(ev_now(v.loop) - start, 400);
	ck_assert_int_eq(v.ntimeouts, 0);
	/* Then the command deadline runs again. */
	until_closed(&v, 1, fd, &b);
	ck_assert_int_eq(v.ntimeouts, 1);
	ck_assert_str_eq(buf_cstr(&b), "220 hello\r\n250 waited\r\n250 waited\r\n"
	    "250 AFTER\r\n421 timeout\r\n");
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

START_TEST(test_timer_closing)
{
	struct srv v;
	struct buf b = BUF_INIT;
	int fd;

	srv_init(&v, 5000, 5000, 5000, 300);
	(void)pair(&v, &fd, 0, 1);
	/* 2 MB queued, then close: a client that never reads is dropped at
	 * the closing deadline, without the 421 of the command phase. */
	say(fd, "BIGQUIT\r\n");
	until_closed(&v, 1, -1, NULL);
	ck_assert_str_eq(v.reason, "timeout while closing");
	ck_assert_int_eq(v.ntimeouts, 0);
	close(fd);
	buf_free(&b);
	srv_done(&v);
}
END_TEST

/* --- TLS -------------------------------------------------------------------- */

/* A certificate for mx.example.org in a temporary directory, and the
 * server and client contexts. */
struct certs {
	char dir[64], cert[96], key[96];
	SSL_CTX *server, *client;
};

static void
certs_make(struct certs *k)
{
	const char *error = NULL;

	snprintf(k->dir, sizeof(k->dir), "/tmp/test_session.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(k->dir));
	snprintf(k->cert, sizeof(k->cert), "%s/c.pem", k->dir);
	snprintf(k->key, sizeof(k->key), "%s/k.pem", k->dir);
	ck_assert_msg(tls_make_selfsigned(k->cert, k->key, "mx.example.org", 1,
	    &error) == 0, "%s", error);
	ck_assert_ptr_nonnull(k->server = tls_server_ctx(k->cert, k->key, &error));
	ck_assert_ptr_nonnull(k->client = tls_client_ctx(1, k->cert, &error));
}

static void
certs_free(struct certs *k)
{
	SSL_CTX_free(k->server);
	SSL_CTX_free(k->client);
	ck_assert_int_eq(unlink(k->cert), 0);
	ck_assert_int_eq(unlink(k->key), 0);
	ck_assert_int_eq(rmdir(k->dir), 0);
}

START_TEST(test_timer_tls)
{
	struct srv v;
	struct certs k;
	struct buf b = BUF_INIT;
	struct conn *c;
	int fd;

	certs_make(&k);
	srv_init(&v, 5000, 5000, 300, 5000);
	v.reg.tls = k.server;
	/* Implicit TLS: a client that never says hello is dropped at the
	 * handshake deadline, and nobody was greeted. */
	c = pair(&v, &fd, 1, 0);
	ck_assert_int_eq(c->ss->phase, SESSION_PHASE_TLS);
	until_closed(&v, 1, fd, &b);
	ck_assert_str_eq(v.reason, "timeout in TLS handshake");
	ck_assert_uint_eq(b.len, 0);
	close(fd);
	/* No TLS context: the implicit-TLS session goes at once. */
	v.reg.tls = NULL;
	(void)pair(&v, &fd, 1, 0);
	ck_assert_int_eq(v.nclosed, 2);
	ck_assert_str_eq(v.reason, "no TLS for test");
	close(fd);
	buf_free(&b);
	srv_done(&v);
	certs_free(&k);
}
END_TEST

/* --- Outbound sessions ------------------------------------------------------ */

/* The outbound side of the STARTTLS test: a client protocol. */
static void
cli_ready(struct session *ss)
{
	(void)ss;		/* the server speaks first */
}

static void
cli_line(struct session *ss, const char *line, size_t len)
{
	struct srv *v = ss->reg->ctx;

	record(v, line, len);
	if (strcmp(line, "220 hello") == 0) {
		/* One segment: the injected line rides along in clear text. */
		session_write(ss, "STARTTLS\r\nINJECTED\r\n", 20);
	} else if (strcmp(line, "220 go") == 0) {
		ck_assert_int_eq(session_starttls_client(ss, v->client_tls,
		    "mx.example.org"), 0);
	} else if (strcmp(line, "221 bye") == 0) {
		session_close_after(ss);
	}
}

static void
cli_tls_up(struct session *ss)
{
	struct srv *v = ss->reg->ctx;

	v->tls_up++;
	ck_assert_ptr_nonnull(session_tls_text(ss));
	session_write(ss, "AFTER\r\nQUIT\r\n", 13);
}

static void
cli_closed(struct session *ss, const char *reason)
{
	struct srv *v = ss->reg->ctx;

	(void)ss;
	v->nclosed++;
	snprintf(v->reason, sizeof(v->reason), "%s", reason);
}

static const struct session_proto cli_proto = {
	.service = "test",
	.limits = { 512, 2048, 65536, 0 },
	.input_pause = 16384,
	.produce_pause = 16384,
	.ready = cli_ready,
	.line = cli_line,
	.too_long = srv_too_long,
	.tls_up = cli_tls_up,
	.closed = cli_closed,
};

/* Both v and the other srv at arg have closed a session. */
static int
out_closed(struct srv *v, void *arg)
{
	return v->nclosed > 0 && ((struct srv *)arg)->nclosed > 0;
}

/* A server session once the listener has a connection. */
struct acceptor {
	struct srv *v;
	struct conn *c;
};

static void
on_acceptable(struct ev_io *io, int fd, int events, void *arg)
{
	struct acceptor *a = arg;

	(void)io;
	(void)events;
	if (a->c == NULL)
		a->c = serve(a->v, fd, 0, 0);
}

START_TEST(test_starttls_connect)
{
	struct srv v, out;
	struct certs k;
	struct acceptor a;
	struct ev_io *io;
	struct session *cs;
	const char *error = NULL;
	unsigned port;
	int lfd;

	certs_make(&k);
	srv_init(&v, 5000, 5000, 5000, 5000);
	v.reg.tls = k.server;
	/* The outbound registry shares the loop. */
	memset(&out, 0, sizeof(out));
	out.loop = v.loop;
	out.client_tls = k.client;
	session_registry_init(&out.reg, v.loop, &cli_proto, &out);
	for (int p = 0; p < SESSION_PHASES; p++)
		out.reg.timeout_ms[p] = 5000;
	lfd = listener(&port);
	a.v = &v;
	a.c = NULL;
	io = ev_io_add(v.loop, lfd, EV_READ, on_acceptable, &a);
	cs = session_connect(&out.reg, "127.0.0.1", port, NULL, &error);
	ck_assert_msg(cs != NULL, "session_connect: %s", error);
	ck_assert_int_eq(cs->outbound, 1);
	ck_assert_int_eq(cs->phase, SESSION_PHASE_CONNECT);
	ck_assert_uint_eq(out.reg.count, 1);
	/* Both ends close: the client after 221, the server after QUIT. */
	run_until(&v, out_closed, &out, -1, NULL);
	ck_assert_int_eq(out.nclosed, 1);
	ck_assert_str_eq(out.reason, "quit");
	ck_assert_str_eq(v.reason, "quit");
	ck_assert_int_eq(out.tls_up, 1);
	/* The server never saw the injected clear text. */
	ck_assert_uint_eq(v.nlines, 3);
	ck_assert_str_eq(v.lines[0], "STARTTLS");
	ck_assert_str_eq(v.lines[1], "AFTER");
	ck_assert_str_eq(v.lines[2], "QUIT");
	ck_assert_uint_eq(out.nlines, 4);
	ck_assert_str_eq(out.lines[0], "220 hello");
	ck_assert_str_eq(out.lines[1], "220 go");
	ck_assert_str_eq(out.lines[2], "250 AFTER");
	ck_assert_str_eq(out.lines[3], "221 bye");
	ck_assert_uint_eq(out.reg.count, 0);
	ev_io_del(&io);
	close(lfd);
	for (size_t i = 0; i < out.nlines; i++)
		free(out.lines[i]);
	srv_done(&v);
	certs_free(&k);
}
END_TEST


START_TEST(test_connect_fails)
{
	struct srv v;
	const char *error = NULL;
	unsigned port;
	int lfd, fill[8], nfill = 0;
	uint64_t start;

	srv_init(&v, 5000, 5000, 5000, 5000);
	v.reg.proto = &cli_proto;
	/* Not a numeric address: no session at all. */
	ck_assert_ptr_null(session_connect(&v.reg, "mx.example.org", 25, NULL, &error));
	ck_assert_ptr_nonnull(strstr(error, "not a numeric address"));
	ck_assert_uint_eq(v.reg.count, 0);
	/* A port nobody listens on: refused. */
	lfd = listener(&port);
	close(lfd);
	ck_assert_ptr_nonnull(session_connect(&v.reg, "127.0.0.1", port, NULL, &error));
	run_until(&v, out_closed, &v, -1, NULL);
	ck_assert_str_eq(v.reason, "connect failed: Connection refused");
	/* A listener whose queue is full never answers: the connect
	 * deadline (300 ms) ends it. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		ck_assert_int_eq(listen(lfd, 0), 0);
		ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
		port = ntohs(sin.sin_port);
		for (; nfill < 2; nfill++) {
			fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			(void)connect(fill[nfill], (struct sockaddr *)&sin, sizeof(sin));
		}
	}
	check_run_loop_for(v.loop, 50);
	v.nclosed = 0;
	start = ev_now(v.loop);
	ck_assert_ptr_nonnull(session_connect(&v.reg, "127.0.0.1", port, NULL, &error));
	run_until(&v, out_closed, &v, -1, NULL);
	ck_assert_str_eq(v.reason, "timeout in connect");
	ck_assert_uint_ge(ev_now(v.loop) - start, 250);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
	srv_done(&v);
}
END_TEST

/* --- The registry ----------------------------------------------------------- */

START_TEST(test_connection_limit)
{
	struct srv v;
	struct buf b1 = BUF_INIT, b2 = BUF_INIT;
	struct connlimit *cl = NULL;
	const char *error = NULL;
	char dir[] = "/tmp/test_session.XXXXXX", path[64], lock[80];
	struct conn *c1;
	int fd1, fd2;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/conns", dir);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert_msg(connlimit_open(path, 1, 0, &cl, &error) == 0, "%s", error);
	srv_init(&v, 5000, 5000, 5000, 5000);
	v.reg.conns = cl;
	v.reg.max_conns = 10;
	v.reg.max_conns_ip = 1;
	c1 = pair(&v, &fd1, 0, 0);
	ck_assert_int_eq(c1->ss->counted, 1);
	ck_assert_uint_eq(connlimit_total(cl), 1);
	/* A second one from the address: refused and closed. */
	(void)pair(&v, &fd2, 0, 0);
	until_closed(&v, 1, fd2, &b2);
	(void)hear(fd2, &b2);
	ck_assert_str_eq(buf_cstr(&b2), "421 busy here\r\n");
	ck_assert_uint_eq(connlimit_total(cl), 1);
	/* The first still works; its end releases the count. */
	say(fd1, "QUIT\r\n");
	until_closed(&v, 2, fd1, &b1);
	ck_assert_uint_eq(connlimit_total(cl), 0);
	close(fd1);
	close(fd2);
	buf_free(&b1);
	buf_free(&b2);
	srv_done(&v);
	connlimit_close(&cl);
	unlink(path);
	unlink(lock);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_stop_all)
{
	struct srv v;
	struct buf b1 = BUF_INIT, b2 = BUF_INIT;
	struct conn *c2;
	int fd1, fd2;

	srv_init(&v, 5000, 5000, 5000, 5000);
	(void)pair(&v, &fd1, 0, 0);
	c2 = pair(&v, &fd2, 0, 1);
	until_heard(&v, fd1, &b1, "220 hello\r\n");
	until_heard(&v, fd2, &b2, "220 hello\r\n");
	/* The second is in the middle of a produced response. */
	say(fd2, "PRODUCE 1000\r\n");
	run_for(&v, 100, -1, NULL);
	ck_assert_int_eq(c2->ss->mode, SESSION_MODE_PRODUCE);
	ck_assert_uint_eq(v.reg.count, 2);
	session_stop_all(&v.reg);
	ck_assert_uint_eq(v.reg.count, 0);
	ck_assert_int_eq(v.nclosed, 2);
	ck_assert_str_eq(v.reason, "shutdown");
	check_run_loop_for(v.loop, 20);
	ck_assert_int_eq(hear(fd1, &b1), 1);
	ck_assert_str_eq(buf_cstr(&b1), "220 hello\r\n421 shutting down\r\n");
	while (hear(fd2, &b2) == 0)
		check_run_loop_for(v.loop, 5);
	ck_assert_ptr_null(strstr(buf_cstr(&b2), "421"));
	close(fd1);
	close(fd2);
	buf_free(&b1);
	buf_free(&b2);
	srv_done(&v);
}
END_TEST

static Suite *
session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_bytes_counted);
	tcase_add_test(tc, test_bytes_uncounted);
	tcase_add_test(tc, test_produce);
	tcase_add_test(tc, test_pipelined_wait);
	tcase_add_test(tc, test_output_mark);
	tcase_add_test(tc, test_too_long);
	tcase_add_test(tc, test_secret_wiped);
	tcase_add_test(tc, test_timer_command);
	tcase_add_test(tc, test_timer_data);
	tcase_add_test(tc, test_timer_untimed_wait);
	tcase_add_test(tc, test_timer_closing);
	tcase_add_test(tc, test_timer_tls);
	tcase_add_test(tc, test_starttls_connect);
	tcase_add_test(tc, test_connect_fails);
	tcase_add_test(tc, test_connection_limit);
	tcase_add_test(tc, test_stop_all);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(session_suite());
}
