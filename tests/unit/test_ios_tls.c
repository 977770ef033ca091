/*
 * Unit tests for lib/core/ios under TLS (and lib/core/tlsctx): a handshake
 * between two streams over a socketpair with a certificate made by
 * tls_make_selfsigned(), a client that verifies the wrong name, records
 * larger than a small input buffer, a reply larger than the socket buffer
 * to a peer that stops reading for a while (output waits for room without
 * spinning), and STARTTLS discarding clear-text input pipelined behind it.
 * The fixtures are in ios_util.h.  Each loop runs under a guard timer so a
 * bug fails the test instead of hanging.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "check_util.h"
#include "ev.h"
#include "ios.h"
#include "ios_util.h"

/* Start a TLS test: the certificate, a loop, and a server peer (with
 * srv_lim) on sv[0] and a client peer on sv[1] of a socketpair. */
static void
tls_pair_init(struct tlsfix *f, struct harness *h, int sv[2],
    struct peer *srv, struct peer *cli, const struct ios_limits *srv_lim)
{
	tlsfix_init(f);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	harness_init(h);
	peer_init(srv, h, sv[0], srv_lim, "server");
	peer_init(cli, h, sv[1], &std_lim, "client");
}

/* End a TLS test: both peers, the loop and the certificate. */
static void
tls_pair_done(struct tlsfix *f, struct harness *h, struct peer *srv,
    struct peer *cli)
{
	peers_done(h, srv, cli);
	tlsfix_done(f);
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

START_TEST(test_tls_echo)
{
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	int sv[2];

	tls_pair_init(&f, &h, sv, &srv, &cli, &std_lim);
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
	tls_pair_done(&f, &h, &srv, &cli);
}
END_TEST

/* Client: the verification against the wrong name fails the handshake. */
START_TEST(test_tls_wrong_name)
{
	struct harness h;
	struct tlsfix f;
	struct peer srv, cli;
	int sv[2];

	tls_pair_init(&f, &h, sv, &srv, &cli, &std_lim);
	ck_assert_int_eq(ios_starttls_server(srv.s, f.server), 0);
	ck_assert_int_eq(ios_starttls_client(cli.s, f.client, "other.example"), 0);
	run_until_closed(&h, &srv, &cli);
	ck_assert_int_eq(cli.why, IOS_CLOSE_TLS);
	ck_assert_int_eq(srv.saw_tls, 0);
	tls_pair_done(&f, &h, &srv, &cli);
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

	tls_pair_init(&f, &h, sv, &srv, &cli, &lim);
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
	tls_pair_done(&f, &h, &srv, &cli);
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
	peer_init(&srv, &h, sv[0], &big_lim, "server");
	srv.on_line = big_on_line;
	memset(&cli, 0, sizeof(cli));
	memset(&k, 0, sizeof(k));
	k.want_tail = 5;
	cli.loop = h.loop;
	cli.ctx = &k;
	cli.s = ios_new(h.loop, sv[1], &big_lim, &cli_cb, &cli);
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
	tls_pair_done(&f, &h, &srv, &cli);
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

	tls_pair_init(&f, &h, sv, &srv, &cli, &std_lim);
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
	tls_pair_done(&f, &h, &srv, &cli);
}
END_TEST

/* The suite. */
static Suite *
ios_tls_suite(void)
{
	Suite *s = suite_create("ios_tls");
	TCase *tc = tcase_create("tls");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_tls_echo);
	tcase_add_test(tc, test_tls_wrong_name);
	tcase_add_test(tc, test_tls_small_buffer);
	tcase_add_test(tc, test_starttls_discard);
	tcase_add_test(tc, test_write_first_tls);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(ios_tls_suite());
}
