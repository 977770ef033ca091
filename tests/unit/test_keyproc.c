/*
 * Unit tests for lib/core/keyproc: a forked key process holds an RSA-2048
 * or EC P-256 key (made by the openssl command, so the test process never
 * reads it); the test process builds a server SSL_CTX from the certificate
 * and the forwarding key alone (its key has no private component) and
 * runs real TLS 1.3 and TLS 1.2 (ECDHE) handshakes against a client that
 * verifies the certificate: RSA-PSS and PKCS#1 v1.5, ECDSA.  Then: static
 * RSA key exchange is refused, a handshake fails cleanly once the key
 * process is gone, and the key process refuses requests of the wrong
 * shape and closes the link on a malformed frame.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>

#include "check_util.h"
#include "ev.h"
#include "ipc.h"
#include "keyproc.h"
#include "tlsctx.h"

#define HOST "mx.example.org"

/* One test's key pair and key process. */
struct fix {
	char dir[64];
	char cert[128];
	char key[128];
	pid_t pid;		/* the key process */
	int fd;			/* our end of its socketpair */
	struct keyproc_client *kc;
	SSL_CTX *server, *client;
};

/* The key process: serve sv until the link closes, then exit. */
static void
keyproc_child_empty(void *arg)
{
	ev_break(arg);
}

/* Make the pair with the openssl command (rsa: RSA-2048, else P-256). */
static void
fix_keys(struct fix *f, int rsa)
{
	char cmd[1024];

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_keyproc.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey %s -nodes "
	    "-keyout %s -out %s -days 2 -subj /CN=" HOST " -addext "
	    "subjectAltName=DNS:" HOST " 2>/dev/null",
	    rsa ? "rsa:2048" : "ec -pkeyopt ec_paramgen_curve:P-256",
	    f->key, f->cert);
	ck_assert_int_eq(system(cmd), 0);
}

/* Fork the key process on a socketpair; f->fd is our end. */
static void
fix_start(struct fix *f)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	f->pid = fork();
	ck_assert_int_ge(f->pid, 0);
	if (f->pid == 0) {
		struct keyproc_server *ks;
		struct ev_loop *loop;
		const char *error = NULL;

		(void)close(sv[0]);
		ks = keyproc_server_new(f->key, &error);
		if (ks == NULL)
			_exit(2);
		loop = ev_loop_new();
		keyproc_server_on_empty(ks, keyproc_child_empty, loop);
		keyproc_server_add(ks, loop, sv[1]);
		(void)ev_run(loop);
		ev_loop_free(&loop);
		keyproc_server_free(&ks);
		_exit(0);
	}
	(void)close(sv[1]);
	f->fd = sv[0];
}

/* Keys, key process, and both contexts (the server's from the
 * certificate and the forwarding key). */
static void
fix_init(struct fix *f, int rsa)
{
	const char *error = NULL;

	memset(f, 0, sizeof(*f));
	fix_keys(f, rsa);
	fix_start(f);
	f->kc = keyproc_client_new(f->fd, 5000, &error);
	ck_assert_msg(f->kc != NULL, "client: %s", error);
	f->server = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(f->server);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(f->server,
	    TLS1_2_VERSION), 1);
	ck_assert_msg(keyproc_ctx_use(f->server, f->cert, f->kc, &error) == 0,
	    "keyproc_ctx_use: %s", error);
	f->client = tls_client_ctx(1, f->cert, &error);
	ck_assert_msg(f->client != NULL, "client ctx: %s", error);
}

/* Free everything, stop the key process and remove the files. */
static void
fix_done(struct fix *f)
{
	int st;

	SSL_CTX_free(f->server);
	SSL_CTX_free(f->client);
	keyproc_client_free(&f->kc);
	if (f->pid > 0) {
		ck_assert_int_eq(waitpid(f->pid, &st, 0), f->pid);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	unlink(f->cert);
	unlink(f->key);
	rmdir(f->dir);
}

/* The server context's key holds the public key and no private part. */
static void
check_no_private(SSL_CTX *ctx, int rsa)
{
	EVP_PKEY *k = SSL_CTX_get0_privatekey(ctx);
	unsigned char pub[256];
	BIGNUM *bn = NULL;
	size_t len = 0;
	BIO *bio;

	ck_assert_ptr_nonnull(k);
	if (rsa) {
		ck_assert_int_eq(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N,
		    &bn), 1);
		BN_free(bn);
		bn = NULL;
		ck_assert_int_eq(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_D,
		    &bn), 0);
	} else {
		ck_assert_int_eq(EVP_PKEY_get_octet_string_param(k,
		    OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
		ck_assert_uint_gt(len, 0);
		/* OpenSSL's legacy-key translation reports a missing
		 * private scalar as 0, which no EC key has. */
		if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY,
		    &bn) == 1) {
			ck_assert(BN_is_zero(bn));
			BN_free(bn);
			bn = NULL;
		}
	}
	ck_assert_ptr_null(bn);
	/* Nor can it be written out as a private key. */
	bio = BIO_new(BIO_s_mem());
	ck_assert_int_ne(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL,
	    NULL), 1);
	BIO_free(bio);
	ERR_clear_error();
}

/*
 * One handshake over a socketpair: version (TLS1_2_VERSION or
 * TLS1_3_VERSION) only; sigalgs and ciphers (TLS 1.2) for the client if
 * not NULL.  1 if both ends completed, with the signature type and key
 * exchange the client saw; 0 if either failed.
 */
static int
handshake(struct fix *f, int version, const char *sigalgs,
    const char *ciphers, int *sig_nid_r, int *kx_nid_r)
{
	SSL *s, *c;
	int sv[2], i, sdone = 0, cdone = 0, failed = 0, r;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	s = SSL_new(f->server);
	c = SSL_new(f->client);
	ck_assert(s != NULL && c != NULL);
	ck_assert_int_eq(SSL_set_fd(s, sv[0]), 1);
	ck_assert_int_eq(SSL_set_fd(c, sv[1]), 1);
	ck_assert_int_eq(SSL_set_min_proto_version(c, version), 1);
	ck_assert_int_eq(SSL_set_max_proto_version(c, version), 1);
	ck_assert_int_eq(SSL_set1_host(c, HOST), 1);
	if (sigalgs != NULL)
		ck_assert_int_eq(SSL_set1_sigalgs_list(c, sigalgs), 1);
	if (ciphers != NULL)
		ck_assert_int_eq(SSL_set_cipher_list(c, ciphers), 1);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	for (i = 0; i < 1000 && !failed && !(sdone && cdone); i++) {
		if (!cdone) {
			r = SSL_do_handshake(c);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
				failed = 1;
		}
		if (!sdone && !failed) {
			r = SSL_do_handshake(s);
			if (r == 1)
				sdone = 1;
			else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
				failed = 1;
		}
	}
	if (!failed && sdone && cdone) {
		ck_assert_int_eq(SSL_get_verify_result(c), X509_V_OK);
		ck_assert_int_eq(SSL_version(c), version);
		ck_assert_int_eq(SSL_get_peer_signature_type_nid(c, sig_nid_r),
		    1);
		*kx_nid_r = SSL_CIPHER_get_kx_nid(SSL_get_current_cipher(c));
	}
	SSL_free(s);
	SSL_free(c);
	(void)close(sv[0]);
	(void)close(sv[1]);
	ERR_clear_error();
	return !failed && sdone && cdone;
}

START_TEST(test_rsa)
{
	struct fix f;
	int sig = 0, kx = 0;

	fix_init(&f, 1);
	check_no_private(f.server, 1);
	/* TLS 1.3: RSA-PSS, padded by OpenSSL, raw private op remote. */
	ck_assert(handshake(&f, TLS1_3_VERSION, NULL, NULL, &sig, &kx));
	ck_assert_int_eq(sig, EVP_PKEY_RSA_PSS);
	ck_assert_int_eq(kx, NID_kx_any);
	/* TLS 1.2 ECDHE with PKCS#1 v1.5 and with PSS. */
	ck_assert(handshake(&f, TLS1_2_VERSION, "RSA+SHA256", NULL, &sig, &kx));
	ck_assert_int_eq(sig, EVP_PKEY_RSA);
	ck_assert_int_eq(kx, NID_kx_ecdhe);
	ck_assert(handshake(&f, TLS1_2_VERSION, "RSA+SHA512", NULL, &sig, &kx));
	ck_assert_int_eq(sig, EVP_PKEY_RSA);
	ck_assert(handshake(&f, TLS1_2_VERSION, "rsa_pss_rsae_sha384", NULL,
	    &sig, &kx));
	ck_assert_int_eq(sig, EVP_PKEY_RSA_PSS);
	ck_assert_int_eq(kx, NID_kx_ecdhe);
	/* A client offering only static-RSA key exchange finds nothing. */
	ck_assert(!handshake(&f, TLS1_2_VERSION, NULL, "AES128-GCM-SHA256",
	    &sig, &kx));
	ck_assert(keyproc_client_up(f.kc));
	fix_done(&f);
}
END_TEST

START_TEST(test_ecdsa)
{
	struct fix f;
	int sig = 0, kx = 0;

	fix_init(&f, 0);
	check_no_private(f.server, 0);
	ck_assert(handshake(&f, TLS1_3_VERSION, NULL, NULL, &sig, &kx));
	ck_assert_int_eq(sig, EVP_PKEY_EC);
	ck_assert(handshake(&f, TLS1_2_VERSION, "ECDSA+SHA256", NULL, &sig,
	    &kx));
	ck_assert_int_eq(sig, EVP_PKEY_EC);
	ck_assert_int_eq(kx, NID_kx_ecdhe);
	ck_assert(handshake(&f, TLS1_2_VERSION, "ECDSA+SHA384", NULL, &sig,
	    &kx));
	fix_done(&f);
}
END_TEST

/* The key process dies: the next handshake fails, and so do the later. */
START_TEST(test_keyproc_gone)
{
	struct fix f;
	int sig = 0, kx = 0, st;

	fix_init(&f, 0);
	ck_assert(handshake(&f, TLS1_3_VERSION, NULL, NULL, &sig, &kx));
	ck_assert_int_eq(kill(f.pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(f.pid, &st, 0), f.pid);
	f.pid = 0;
	ck_assert(!handshake(&f, TLS1_3_VERSION, NULL, NULL, &sig, &kx));
	ck_assert(!keyproc_client_up(f.kc));
	ck_assert(!handshake(&f, TLS1_2_VERSION, NULL, NULL, &sig, &kx));
	fix_done(&f);
}
END_TEST

/* Exchange hellos on a raw fd to the key process. */
static void
raw_hello(int fd)
{
	const char *why = NULL, *name = NULL;
	struct ipc_cursor c;
	struct ipc_msg m;

	ipc_msg_init(&m, IPC_HELLO, 0);
	ipc_put_str(&m, KEYPROC_PROTOCOL);
	ck_assert_int_eq(ipc_send_blocking(fd, &m), 0);
	ipc_msg_free(&m);
	ck_assert_int_eq(ipc_recv_blocking(fd, &m, 5000, &why), 1);
	ipc_cursor_init(&c, &m);
	ck_assert_int_eq(m.type, IPC_HELLO);
	ck_assert_int_eq(ipc_get_str(&c, &name), 0);
	ck_assert_str_eq(name, KEYPROC_PROTOCOL);
	ipc_frame_free(&m);
}

/* Send one request; the answer's type, and its data into sig (if any). */
static uint32_t
raw_request(int fd, uint32_t id, uint32_t alg, const void *in, size_t n,
    int extra, unsigned char *sig, size_t *siglen)
{
	const char *why = NULL;
	struct ipc_cursor c;
	struct ipc_msg m;
	const void *p;
	size_t len;
	uint32_t type;

	ipc_msg_init(&m, KEYPROC_SIGN, id);
	ipc_put_u32(&m, alg);
	ipc_put_data(&m, in, n);
	if (extra)
		ipc_put_u32(&m, 0);
	ck_assert_int_eq(ipc_send_blocking(fd, &m), 0);
	ipc_msg_free(&m);
	if (ipc_recv_blocking(fd, &m, 5000, &why) != 1)
		return 0;	/* the link closed */
	ck_assert_uint_eq(m.id, id);
	type = m.type;
	ipc_cursor_init(&c, &m);
	if (type == KEYPROC_SIG && sig != NULL) {
		ck_assert_int_eq(ipc_get_data(&c, &p, &len), 0);
		memcpy(sig, p, len);
		*siglen = len;
	}
	ipc_frame_free(&m);
	return type;
}

/* Requests of the wrong shape are refused; a correct one is answered
 * with a signature the certificate verifies; a malformed frame closes. */
START_TEST(test_refused)
{
	static const char hello[] = "hello";
	unsigned char dgst[32], di[128], blk[256], sig[512];
	unsigned char *dip = di;
	size_t diglen, siglen = 0;
	struct fix f;
	EVP_PKEY *pub;
	EVP_PKEY_CTX *pctx;
	X509_SIG *xs;
	X509_ALGOR *alg;
	ASN1_OCTET_STRING *os;
	X509 *cert;
	FILE *fp;
	int dilen;

	memset(&f, 0, sizeof(f));
	fix_keys(&f, 1);
	fix_start(&f);
	raw_hello(f.fd);
	ck_assert_int_eq(EVP_Digest(hello, 5, dgst, NULL, EVP_sha256(), NULL),
	    1);
	diglen = sizeof(dgst);
	/* A DigestInfo for SHA-256, built here. */
	xs = X509_SIG_new();
	X509_SIG_getm(xs, &alg, &os);
	ck_assert_int_eq(X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256),
	    V_ASN1_NULL, NULL), 1);
	ck_assert_int_eq(ASN1_OCTET_STRING_set(os, dgst, (int)diglen), 1);
	dilen = i2d_X509_SIG(xs, &dip);
	X509_SIG_free(xs);
	ck_assert_int_eq(dilen, 19 + 32);

	/* Wrong algorithm for the key, unknown algorithm, bare digest,
	 * a DigestInfo with a wrong length, random PSS blocks. */
	ck_assert_uint_eq(raw_request(f.fd, 1, KEYPROC_ECDSA, dgst, 32, 0,
	    NULL, NULL), KEYPROC_REFUSED);
	ck_assert_uint_eq(raw_request(f.fd, 2, 99, di, (size_t)dilen, 0,
	    NULL, NULL), KEYPROC_REFUSED);
	ck_assert_uint_eq(raw_request(f.fd, 3, KEYPROC_RSA_PKCS1, dgst, 32, 0,
	    NULL, NULL), KEYPROC_REFUSED);
	ck_assert_uint_eq(raw_request(f.fd, 4, KEYPROC_RSA_PKCS1, di,
	    (size_t)dilen - 1, 0, NULL, NULL), KEYPROC_REFUSED);
	ck_assert_int_eq(RAND_bytes(blk, sizeof(blk)), 1);
	blk[0] = 0x00;
	blk[255] = 0xbc;	/* a trailer does not make it PSS */
	ck_assert_uint_eq(raw_request(f.fd, 5, KEYPROC_RSA_PSS, blk, 256, 0,
	    NULL, NULL), KEYPROC_REFUSED);
	ck_assert_uint_eq(raw_request(f.fd, 6, KEYPROC_RSA_PSS, blk, 255, 0,
	    NULL, NULL), KEYPROC_REFUSED);

	/* The right shape is signed, and the certificate verifies it. */
	ck_assert_uint_eq(raw_request(f.fd, 7, KEYPROC_RSA_PKCS1, di,
	    (size_t)dilen, 0, sig, &siglen), KEYPROC_SIG);
	ck_assert_uint_eq(siglen, 256);
	fp = fopen(f.cert, "r");
	ck_assert_ptr_nonnull(fp);
	cert = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	ck_assert_ptr_nonnull(cert);
	pub = X509_get0_pubkey(cert);
	pctx = EVP_PKEY_CTX_new(pub, NULL);
	ck_assert_int_eq(EVP_PKEY_verify_init(pctx), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING),
	    1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()), 1);
	ck_assert_int_eq(EVP_PKEY_verify(pctx, sig, siglen, dgst, diglen), 1);
	EVP_PKEY_CTX_free(pctx);
	X509_free(cert);

	/* A leftover field breaks the framing: the link closes, and the key
	 * process, left with no link, exits. */
	ck_assert_uint_eq(raw_request(f.fd, 8, KEYPROC_RSA_PKCS1, di,
	    (size_t)dilen, 1, NULL, NULL), 0);
	(void)close(f.fd);
	fix_done(&f);
}
END_TEST

/* The EC key process refuses digests of odd lengths and RSA requests. */
START_TEST(test_refused_ec)
{
	unsigned char dgst[64];
	unsigned char sig[256];
	size_t siglen = 0;
	struct fix f;

	memset(&f, 0, sizeof(f));
	memset(dgst, 0x5a, sizeof(dgst));
	fix_keys(&f, 0);
	fix_start(&f);
	raw_hello(f.fd);
	ck_assert_uint_eq(raw_request(f.fd, 1, KEYPROC_ECDSA, dgst, 7, 0,
	    NULL, NULL), KEYPROC_REFUSED);
	ck_assert_uint_eq(raw_request(f.fd, 2, KEYPROC_ECDSA, dgst, 33, 0,
	    NULL, NULL), KEYPROC_REFUSED);
	ck_assert_uint_eq(raw_request(f.fd, 3, KEYPROC_RSA_PSS, dgst, 64, 0,
	    NULL, NULL), KEYPROC_REFUSED);
	ck_assert_uint_eq(raw_request(f.fd, 4, KEYPROC_ECDSA, dgst, 32, 0,
	    sig, &siglen), KEYPROC_SIG);
	ck_assert_uint_gt(siglen, 8);
	(void)close(f.fd);
	fix_done(&f);
}
END_TEST

/* In-process server: links are counted, a peer's close drops its link,
 * and freeing the server closes the rest; an unreadable key fails. */
START_TEST(test_server_links)
{
	struct keyproc_server *ks;
	struct ev_loop *loop;
	const char *error = NULL;
	struct fix f;
	char b[256];
	int a[2], c[2];
	ssize_t n;

	memset(&f, 0, sizeof(f));
	fix_keys(&f, 0);
	ck_assert_ptr_null(keyproc_server_new("/nonexistent/key.pem", &error));
	ck_assert_ptr_nonnull(strstr(error, "/nonexistent/key.pem"));
	ck_assert_ptr_null(keyproc_server_new(f.cert, &error));
	ks = keyproc_server_new(f.key, &error);
	ck_assert_msg(ks != NULL, "%s", error);
	loop = ev_loop_new();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	keyproc_server_add(ks, loop, a[0]);
	keyproc_server_add(ks, loop, c[0]);
	ck_assert_uint_eq(keyproc_server_links(ks), 2);
	(void)close(c[1]);
	check_run_loop_for(loop, 200);
	ck_assert_uint_eq(keyproc_server_links(ks), 1);
	keyproc_server_free(&ks);
	ck_assert_ptr_null(ks);
	check_run_loop_for(loop, 50);
	/* The server's hello, then EOF. */
	while ((n = read(a[1], b, sizeof(b))) > 0)
		continue;
	ck_assert_int_eq(n, 0);
	(void)close(a[1]);
	ev_loop_free(&loop);
	fix_done(&f);
}
END_TEST

static Suite *
keyproc_suite(void)
{
	Suite *s = suite_create("keyproc");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rsa);
	tcase_add_test(tc, test_ecdsa);
	tcase_add_test(tc, test_keyproc_gone);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_refused_ec);
	tcase_add_test(tc, test_server_links);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(keyproc_suite());
}
