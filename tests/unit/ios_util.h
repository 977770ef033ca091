/*
 * Shared fixtures of the lib/core/ios unit tests (test_ios, test_ios_tls,
 * test_ios_halfclose): a "peer" that owns one stream and records what its
 * callbacks saw, a loop under a guard timer, replies larger than the socket
 * buffer with a reader that checks them byte by byte and a check that a
 * stalled writer does not spin, and a TLS fixture with a certificate made
 * by tls_make_selfsigned().
 */
#ifndef POSTERN_IOS_UTIL_H
#define POSTERN_IOS_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

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
static inline void
guard_cb(struct ev_timer *t, void *arg)
{
	struct harness *h = arg;

	(void)t;
	h->timed_out = 1;
	ev_break(h->loop);
}

/* Start a test: a loop and a guard timer. */
static inline void
harness_init(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	h->loop = ev_loop_new();
	h->guard = ev_timer_add(h->loop, GUARD_MS, 0, guard_cb, h);
}

/* End a test: nothing may be left on the loop but the guard. */
static inline void
harness_done(struct harness *h)
{
	ev_timer_del(&h->guard);
	ev_loop_free(&h->loop);
}

/* on_read: pull every line (or raw bytes) and record it. */
static inline void
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
static inline void
peer_drained(struct ios *s, void *arg)
{
	struct peer *p = arg;

	(void)s;
	p->ndrained++;
}

/* on_close: record the reason and free the stream. */
static inline void
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
static inline void
peer_init(struct peer *p, struct harness *h, int fd,
    const struct ios_limits *lim, const char *name)
{
	memset(p, 0, sizeof(*p));
	p->loop = h->loop;
	p->name = name;
	p->s = ios_new(h->loop, fd, lim, &peer_cb, p);
}

/* Free what a peer recorded (and its stream, if still open). */
static inline void
peer_done(struct peer *p)
{
	size_t i;

	for (i = 0; i < p->nlines; i++)
		free(p->lines[i]);
	ios_free(&p->s);
}

/* End a test of two peers: what they recorded, their streams, the loop. */
static inline void
peers_done(struct harness *h, struct peer *a, struct peer *b)
{
	peer_done(a);
	peer_done(b);
	harness_done(h);
}

/* The limits most tests use. */
static const struct ios_limits std_lim = { 1000, 4096, 1 << 20, 0 };

/* Server: echo every line; nothing special at TLS start. */
static inline void
echo_line(struct peer *p, const char *line, size_t len)
{
	ck_assert_int_eq(ios_printf(p->s, "echo: %.*s\r\n", (int)len, line), 0);
}

/* Run until both peers closed. */
static inline void
run_until_closed(struct harness *h, struct peer *a, struct peer *b)
{
	while ((!a->closed || !b->closed) && !h->timed_out)
		ck_assert_int_eq(ev_run(h->loop), 0);
	ck_assert_int_eq(h->timed_out, 0);
}

/* --- Write-first output: replies larger than the socket buffer, a peer
 * that stops reading for a while, in clear text and in TLS. --- */

#define BIG_REPLY ((size_t)2 << 20)	/* far more than a socketpair holds */
#define STALL_MS 100

/* The limits of a stream that queues the big reply. */
static const struct ios_limits big_lim = { 1000, 4096, 8 << 20, 0 };

/* The byte at offset i of a big reply. */
static inline unsigned char
big_byte(size_t i)
{
	return (unsigned char)(i * 131 + (i >> 12));
}

/* Queue the big reply (in a few writes) and a final line. */
static inline void
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
static inline void
big_on_line(struct peer *p, const char *line, size_t len)
{
	(void)len;
	if (strcmp(line, "GO") == 0)
		queue_big_reply(p->s);
}

/* CPU time of the process in milliseconds. */
static inline uint64_t
cpu_ms(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wall-clock milliseconds. */
static inline uint64_t
wall_ms(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A timer that ends ev_run(). */
static inline void
stall_over_cb(struct ev_timer *t, void *arg)
{
	struct harness *h = arg;

	(void)t;
	ev_break(h->loop);
}

/* Run the loop for ms milliseconds. */
static inline void
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
static inline void
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
static inline void
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
static inline void
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

/* TLS test fixture: a certificate in a temporary directory. */
struct tlsfix {
	char dir[64];
	char cert[128];
	char key[128];
	SSL_CTX *server;
	SSL_CTX *client;
};

/* Make a self-signed certificate and both contexts. */
static inline void
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
static inline void
tlsfix_done(struct tlsfix *f)
{
	SSL_CTX_free(f->server);
	SSL_CTX_free(f->client);
	unlink(f->cert);
	unlink(f->key);
	rmdir(f->dir);
}

#endif
