/*
 * Unit tests for lib/core/ios: half-closes over TCP on 127.0.0.1.  Every
 * reply to what came before the peer's FIN is sent, also across paused
 * reading, for a reply larger than the socket buffer, and under TLS with
 * or without close_notify; a partial line at EOF gets one on_read, not a
 * spin; a reset while the reply is queued is an error.  The fixtures are
 * in ios_util.h.  Each loop runs under a guard timer so a bug fails the
 * test instead of hanging.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/ssl.h>

#include "check_util.h"
#include "ev.h"
#include "ios.h"
#include "ios_util.h"

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
	struct harness h;
	struct peer p;
	struct bigsink k;
	int sv[2];

	/* The reply is far larger than the socket holds: the close must
	 * wait for the peer to read all of it. */
	tcp_pair(sv);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	harness_init(&h);
	peer_init(&p, &h, sv[0], &big_lim, "big");
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
		peer_init(&p, &h, sv[0], &big_lim, "reset");
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
		peers_done(&h, &srv, &cli);
	}
	tlsfix_done(&f);
}
END_TEST

/* The suite. */
static Suite *
ios_halfclose_suite(void)
{
	Suite *s = suite_create("ios_halfclose");
	TCase *tc = tcase_create("halfclose");

	tcase_set_timeout(tc, 20);
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
	return check_run_suite(ios_halfclose_suite());
}
