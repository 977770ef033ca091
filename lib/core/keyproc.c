/*
 * keyproc: the key process's sign service and the network side's
 * forwarding key (contract and design in keyproc.h).  The forwarding uses
 * OpenSSL's RSA_METHOD and EC_KEY_METHOD, deprecated in 3.0: this file
 * alone asks for the 1.1.1 API level (OPENSSL_API_COMPAT below) so they
 * are declared without deprecation warnings; nothing else in postern uses
 * them.
 */
#define OPENSSL_API_COMPAT 0x10101000L

#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "ev.h"
#include "ipc.h"
#include "keyproc.h"
#include "log.h"
#include "tlsctx.h"
#include "xalloc.h"

/* Cipher list for TLS 1.2: OpenSSL's default without static-RSA key
 * exchange (and without the suites that need no certificate). */
#define KEYPROC_CIPHERS "DEFAULT:!kRSA:!PSK:!SRP:!aNULL"

/* Storage for *error_r texts (not thread-safe, like tlsctx's). */
static char keyproc_errbuf[512];

/* --- The key-holding side ---------------------------------------------------- */

struct keyproc_server {
	EVP_PKEY *key;
	int is_rsa;
	struct ipc_link **links;	/* open links, owned */
	size_t nlinks, cap;
	void (*on_empty)(void *arg);
	void *on_empty_arg;
};

static int keyproc_server_on_msg(struct ipc_link *l, uint32_t type,
    uint32_t id, struct ipc_cursor *c, void *arg);
static void keyproc_server_on_close(struct ipc_link *l, const char *why,
    void *arg);

static const struct ipc_type keyproc_server_types[] = {
	{ KEYPROC_SIGN, 4 + 4 + 1, 4 + 4 + KEYPROC_MAX_INPUT, 0 },
};
static const struct ipc_proto keyproc_server_proto = {
	KEYPROC_PROTOCOL, keyproc_server_types, 1,
	keyproc_server_on_msg, keyproc_server_on_close,
};

struct keyproc_server *
keyproc_server_new(const char *key_file, const char **error_r)
{
	struct keyproc_server *ks;
	EVP_PKEY *key;
	FILE *f;

	f = fopen(key_file, "re");
	if (f == NULL) {
		(void)snprintf(keyproc_errbuf, sizeof(keyproc_errbuf),
		    "private key %s: %s", key_file, strerror(errno));
		*error_r = keyproc_errbuf;
		return NULL;
	}
	ERR_clear_error();
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	(void)fclose(f);
	if (key == NULL) {
		(void)snprintf(keyproc_errbuf, sizeof(keyproc_errbuf),
		    "private key %s: %s", key_file, tls_last_error());
		*error_r = keyproc_errbuf;
		return NULL;
	}
	if (!EVP_PKEY_is_a(key, "RSA") && !EVP_PKEY_is_a(key, "EC")) {
		EVP_PKEY_free(key);
		(void)snprintf(keyproc_errbuf, sizeof(keyproc_errbuf),
		    "private key %s: neither RSA nor EC", key_file);
		*error_r = keyproc_errbuf;
		return NULL;
	}
	ks = xcalloc(1, sizeof(*ks));
	ks->key = key;
	ks->is_rsa = EVP_PKEY_is_a(key, "RSA");
	return ks;
}

void
keyproc_server_free(struct keyproc_server **ksp)
{
	struct keyproc_server *ks = *ksp;

	size_t i;

	if (ks == NULL)
		return;
	for (i = 0; i < ks->nlinks; i++)
		ipc_link_free(&ks->links[i]);
	free(ks->links);
	EVP_PKEY_free(ks->key);
	free(ks);
	*ksp = NULL;
}

void
keyproc_server_on_empty(struct keyproc_server *ks,
    void (*on_empty)(void *arg), void *arg)
{
	ks->on_empty = on_empty;
	ks->on_empty_arg = arg;
}

void
keyproc_server_add(struct keyproc_server *ks, struct ev_loop *loop, int fd)
{
	if (ks->nlinks == ks->cap) {
		ks->cap = ks->cap == 0 ? 4 : ks->cap * 2;
		ks->links = xreallocarray(ks->links, ks->cap,
		    sizeof(*ks->links));
	}
	ks->links[ks->nlinks++] = ipc_link_new(loop, fd,
	    &keyproc_server_proto, ks);
}

size_t
keyproc_server_links(const struct keyproc_server *ks)
{
	return ks->nlinks;
}

/* A link closed: free it, and tell the owner when none is left. */
static void
keyproc_server_on_close(struct ipc_link *l, const char *why, void *arg)
{
	struct keyproc_server *ks = arg;
	size_t i;

	log_debug("keyproc: link closed reason=%s", why);
	for (i = 0; i < ks->nlinks && ks->links[i] != l; i++)
		continue;
	if (i == ks->nlinks)
		log_panic("keyproc: closed link not in the list");
	ks->links[i] = ks->links[--ks->nlinks];
	ipc_link_free(&l);
	if (ks->nlinks == 0 && ks->on_empty != NULL)
		ks->on_empty(ks->on_empty_arg);
}

/* One sign request: check its fields, sign, answer. */
static int
keyproc_server_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg)
{
	struct keyproc_server *ks = arg;
	const char *error = NULL;
	const void *in;
	struct buf sig;
	struct ipc_msg m;
	uint32_t alg;
	size_t inlen;
	int r;

	if (type != KEYPROC_SIGN || ipc_get_u32(c, &alg) < 0 ||
	    ipc_get_data(c, &in, &inlen) < 0 || ipc_get_end(c) < 0) {
		log_warn("keyproc: malformed request reason=%s",
		    c->error != NULL ? c->error : "type");
		return -1;
	}
	buf_init(&sig, 0);
	if (keyproc_sign(ks, alg, in, inlen, &sig, &error) < 0) {
		log_warn("keyproc: request refused alg=%u len=%zu reason=%s",
		    alg, inlen, error);
		ipc_msg_init(&m, KEYPROC_REFUSED, id);
		ipc_put_str(&m, error);
	} else {
		ipc_msg_init(&m, KEYPROC_SIG, id);
		ipc_put_data(&m, sig.data, sig.len);
	}
	buf_wipe(&sig);
	r = ipc_link_send(l, &m);
	ipc_msg_free(&m);
	if (r < 0) {
		log_warn("keyproc: answer not sent reason=backlog");
		return -1;
	}
	return 0;
}

/* The hashes a DigestInfo (PKCS#1 v1.5) request may carry. */
static const EVP_MD *
keyproc_pkcs1_md(size_t i)
{
	switch (i) {
	case 0: return EVP_sha256();
	case 1: return EVP_sha384();
	case 2: return EVP_sha512();
	case 3: return EVP_sha224();
	case 4: return EVP_sha1();
	default: return NULL;
	}
}

/* The DER DigestInfo of digest d (n bytes) under md, appended to out. */
static int
keyproc_digestinfo(const EVP_MD *md, const unsigned char *d, size_t n,
    struct buf *out)
{
	X509_SIG *xs = X509_SIG_new();
	X509_ALGOR *alg;
	ASN1_OCTET_STRING *digest;
	unsigned char *der = NULL;
	int len = -1;

	if (xs == NULL)
		return -1;
	X509_SIG_getm(xs, &alg, &digest);
	if (X509_ALGOR_set0(alg, OBJ_nid2obj(EVP_MD_get_type(md)), V_ASN1_NULL,
	    NULL) == 1 && ASN1_OCTET_STRING_set(digest, d, (int)n) == 1)
		len = i2d_X509_SIG(xs, &der);
	X509_SIG_free(xs);
	if (len <= 0)
		return -1;
	len = buf_append(out, der, (size_t)len);
	OPENSSL_free(der);
	return len;
}

/* The hash whose DigestInfo in is (n bytes), or NULL. */
static const EVP_MD *
keyproc_check_pkcs1(const unsigned char *in, size_t n)
{
	const EVP_MD *md;
	struct buf want;
	size_t i, dlen;
	int same;

	for (i = 0; (md = keyproc_pkcs1_md(i)) != NULL; i++) {
		dlen = (size_t)EVP_MD_get_size(md);
		if (n <= dlen)
			continue;
		buf_init(&want, 0);
		same = keyproc_digestinfo(md, in + n - dlen, dlen, &want) == 0 &&
		    want.len == n && memcmp(want.data, in, n) == 0;
		buf_free(&want);
		if (same)
			return md;
	}
	return NULL;
}

/*
 * Whether in (the modulus size, n bytes) is an EMSA-PSS encoding for a
 * modulus of mod_bits bits under md, MGF1 with md and a salt as long as
 * the hash (what TLS 1.3 requires).  RFC 8017 9.1.2 steps 4-10, without
 * the final hash comparison, which needs the message.
 */
static int
keyproc_is_pss(const unsigned char *in, size_t n, int mod_bits,
    const EVP_MD *md)
{
	size_t hlen = (size_t)EVP_MD_get_size(md), em_len = n, db_len, i;
	unsigned int msbits = (unsigned int)(mod_bits - 1) & 7;
	const unsigned char *em = in;
	unsigned char *db;
	int ok;

	if (msbits == 0) {
		if (em[0] != 0)
			return 0;
		em++;
		em_len--;
	}
	if (em_len < 2 * hlen + 2 || em[em_len - 1] != 0xbc)
		return 0;
	if (msbits != 0 && (em[0] & (0xff << msbits)) != 0)
		return 0;
	db_len = em_len - hlen - 1;
	db = xmalloc(db_len);
	if (PKCS1_MGF1(db, (long)db_len, em + db_len, (long)hlen, md) < 0) {
		free(db);
		return 0;
	}
	for (i = 0; i < db_len; i++)
		db[i] ^= em[i];
	if (msbits != 0)
		db[0] &= (unsigned char)(0xff >> (8 - msbits));
	ok = db[db_len - hlen - 1] == 0x01;
	for (i = 0; ok && i < db_len - hlen - 1; i++)
		ok = db[i] == 0;
	OPENSSL_cleanse(db, db_len);
	free(db);
	return ok;
}

int
keyproc_sign(const struct keyproc_server *ks, uint32_t alg, const void *in,
    size_t inlen, struct buf *sig_r, const char **error_r)
{
	const unsigned char *tbs = in;
	size_t tbslen = inlen, ksize = (size_t)EVP_PKEY_get_size(ks->key);
	int bits = EVP_PKEY_get_bits(ks->key), pad = 0, ok;
	unsigned char out[KEYPROC_MAX_SIG];
	size_t outlen = sizeof(out);
	const EVP_MD *md = NULL;
	EVP_PKEY_CTX *pctx;

	if ((alg == KEYPROC_RSA_PKCS1 || alg == KEYPROC_RSA_PSS) && !ks->is_rsa) {
		*error_r = "RSA request for an EC key";
		return -1;
	}
	if (alg == KEYPROC_ECDSA && ks->is_rsa) {
		*error_r = "ECDSA request for an RSA key";
		return -1;
	}
	switch (alg) {
	case KEYPROC_RSA_PKCS1:
		md = keyproc_check_pkcs1(in, inlen);
		if (md == NULL) {
			*error_r = "not a DigestInfo";
			return -1;
		}
		/* Sign the digest (the DigestInfo's tail) under md: OpenSSL
		 * re-encodes the DigestInfo just compared. */
		tbslen = (size_t)EVP_MD_get_size(md);
		tbs += inlen - tbslen;
		pad = RSA_PKCS1_PADDING;
		break;
	case KEYPROC_RSA_PSS:
		if (inlen != ksize) {
			*error_r = "PSS block is not the modulus size";
			return -1;
		}
		if (!keyproc_is_pss(in, inlen, bits, EVP_sha256()) &&
		    !keyproc_is_pss(in, inlen, bits, EVP_sha384()) &&
		    !keyproc_is_pss(in, inlen, bits, EVP_sha512())) {
			*error_r = "not a PSS encoding";
			return -1;
		}
		pad = RSA_NO_PADDING;
		break;
	case KEYPROC_ECDSA:
		if (inlen != 20 && inlen != 28 && inlen != 32 && inlen != 48 &&
		    inlen != 64) {
			*error_r = "not a digest length";
			return -1;
		}
		break;
	default:
		*error_r = "unknown algorithm";
		return -1;
	}
	if (ksize > sizeof(out)) {
		*error_r = "key too large";
		return -1;
	}
	ERR_clear_error();
	pctx = EVP_PKEY_CTX_new(ks->key, NULL);
	ok = pctx != NULL && EVP_PKEY_sign_init(pctx) == 1;
	if (ok && pad != 0)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, pad) == 1;
	if (ok && md != NULL)
		ok = EVP_PKEY_CTX_set_signature_md(pctx, md) == 1;
	if (ok)
		ok = EVP_PKEY_sign(pctx, out, &outlen, tbs, tbslen) == 1;
	EVP_PKEY_CTX_free(pctx);
	if (!ok) {
		(void)snprintf(keyproc_errbuf, sizeof(keyproc_errbuf),
		    "signing failed: %s", tls_last_error());
		*error_r = keyproc_errbuf;
		return -1;
	}
	ok = buf_append(sig_r, out, outlen);
	OPENSSL_cleanse(out, sizeof(out));
	if (ok < 0) {
		*error_r = "signature past the buffer's ceiling";
		return -1;
	}
	return 0;
}

/* --- The network side -------------------------------------------------------- */

struct keyproc_client {
	int fd;			/* -1 once the link is lost */
	int timeout_ms;
	uint32_t next_id;
};

/* The hook methods and the ex_data slots that point a key at its client,
 * made once for the process (constant afterwards). */
static pthread_once_t keyproc_once = PTHREAD_ONCE_INIT;
static RSA_METHOD *keyproc_rsa_meth;
static EC_KEY_METHOD *keyproc_ec_meth;
static int keyproc_rsa_idx = -1, keyproc_ec_idx = -1;

/* Close the link after a failure, with a log line. */
static void
keyproc_client_lost(struct keyproc_client *kc, const char *why)
{
	log_error("keyproc: link to the key process lost reason=%s", why);
	(void)close(kc->fd);
	kc->fd = -1;
}

struct keyproc_client *
keyproc_client_new(int fd, int timeout_ms, const char **error_r)
{
	struct keyproc_client *kc;
	struct ipc_cursor c;
	struct ipc_msg m;
	const char *name = NULL, *why = "hello";
	int fl, r;

	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		*error_r = "fcntl failed";
		(void)close(fd);
		return NULL;
	}
	ipc_msg_init(&m, IPC_HELLO, 0);
	ipc_put_str(&m, KEYPROC_PROTOCOL);
	r = ipc_send_blocking(fd, &m);
	ipc_msg_free(&m);
	if (r < 0) {
		*error_r = "sending hello failed";
		(void)close(fd);
		return NULL;
	}
	r = ipc_recv_blocking(fd, &m, timeout_ms, &why);
	if (r == 1) {
		ipc_cursor_init(&c, &m);
		if (m.type != IPC_HELLO || ipc_get_str(&c, &name) < 0 ||
		    ipc_get_end(&c) < 0 || name == NULL ||
		    strcmp(name, KEYPROC_PROTOCOL) != 0)
			r = -1;
		ipc_frame_free(&m);
	}
	if (r != 1) {
		*error_r = r == 0 ? "key process closed the link" :
		    "no valid hello from the key process";
		(void)close(fd);
		return NULL;
	}
	kc = xcalloc(1, sizeof(*kc));
	kc->fd = fd;
	kc->timeout_ms = timeout_ms;
	return kc;
}

void
keyproc_client_free(struct keyproc_client **kcp)
{
	struct keyproc_client *kc = *kcp;

	if (kc == NULL)
		return;
	if (kc->fd >= 0)
		(void)close(kc->fd);
	free(kc);
	*kcp = NULL;
}

int
keyproc_client_up(const struct keyproc_client *kc)
{
	return kc->fd >= 0;
}

/*
 * Ask the key process to sign: alg and in (inlen bytes) out, the answer
 * (at most outmax bytes) into out.  The length, or -1 (the reason on
 * OpenSSL's error queue; the link is closed unless the key process only
 * refused the request).
 */
static int
keyproc_request(struct keyproc_client *kc, uint32_t alg,
    const unsigned char *in, size_t inlen, unsigned char *out, size_t outmax)
{
	const char *why = NULL, *reason;
	struct ipc_cursor c;
	struct ipc_msg m;
	const void *sig;
	size_t siglen;
	uint32_t id;
	int r;

	if (kc == NULL || kc->fd < 0) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
		    "keyproc: no link to the key process");
		return -1;
	}
	id = ++kc->next_id;
	ipc_msg_init(&m, KEYPROC_SIGN, id);
	ipc_put_u32(&m, alg);
	ipc_put_data(&m, in, inlen);
	r = ipc_send_blocking(kc->fd, &m);
	ipc_msg_free(&m);
	if (r < 0) {
		keyproc_client_lost(kc, "send");
		goto lost;
	}
	r = ipc_recv_blocking(kc->fd, &m, kc->timeout_ms, &why);
	if (r != 1) {
		keyproc_client_lost(kc, r == 0 ? "eof" : why);
		goto lost;
	}
	ipc_cursor_init(&c, &m);
	r = -1;
	if (m.id != id) {
		why = "answer_id";
	} else if (m.type == KEYPROC_SIG) {
		if (ipc_get_data(&c, &sig, &siglen) < 0 || ipc_get_end(&c) < 0)
			why = c.error;
		else if (siglen == 0 || siglen > outmax)
			why = "signature_length";
		else {
			memcpy(out, sig, siglen);
			r = (int)siglen;
		}
	} else if (m.type == KEYPROC_REFUSED) {
		if (ipc_get_str(&c, &reason) < 0 || ipc_get_end(&c) < 0) {
			why = c.error;
		} else {
			log_error("keyproc: request refused alg=%u reason=%s",
			    alg, log_safe(reason));
			ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
			    "keyproc: request refused");
			ipc_frame_free(&m);
			return -1;
		}
	} else {
		why = "answer_type";
	}
	ipc_frame_free(&m);
	if (r > 0)
		return r;
	keyproc_client_lost(kc, why != NULL ? why : "malformed");
lost:
	ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
	    "keyproc: key process unreachable");
	return -1;
}

/* RSA_METHOD rsa_priv_enc: PKCS#1 v1.5 DigestInfo or a PSS block. */
static int
keyproc_rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	struct keyproc_client *kc = RSA_get_ex_data(rsa, keyproc_rsa_idx);
	size_t size = (size_t)RSA_size(rsa);
	uint32_t alg;
	int n;

	if (padding == RSA_PKCS1_PADDING)
		alg = KEYPROC_RSA_PKCS1;
	else if (padding == RSA_NO_PADDING)
		alg = KEYPROC_RSA_PSS;
	else
		return -1;
	if (flen <= 0)
		return -1;
	n = keyproc_request(kc, alg, from, (size_t)flen, to, size);
	return n == (int)size ? n : -1;
}

/* RSA_METHOD rsa_priv_dec: never (no static-RSA key exchange). */
static int
keyproc_rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	(void)flen;
	(void)from;
	(void)to;
	(void)rsa;
	(void)padding;
	ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
	    "keyproc: no private decryption");
	return -1;
}

/* EC_KEY_METHOD sign: the digest to the key process, a DER signature back. */
static int
keyproc_ec_sign(int type, const unsigned char *dgst, int dlen,
    unsigned char *sig, unsigned int *siglen, const BIGNUM *kinv,
    const BIGNUM *r, EC_KEY *eckey)
{
	struct keyproc_client *kc = EC_KEY_get_ex_data(eckey, keyproc_ec_idx);
	int n;

	(void)type;
	(void)kinv;
	(void)r;
	if (dlen <= 0)
		return 0;
	n = keyproc_request(kc, KEYPROC_ECDSA, dgst, (size_t)dlen, sig,
	    (size_t)ECDSA_size(eckey));
	if (n < 0)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

/* EC_KEY_METHOD sign_sig: keyproc_ec_sign, decoded. */
static ECDSA_SIG *
keyproc_ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
    const BIGNUM *r, EC_KEY *eckey)
{
	unsigned char der[KEYPROC_MAX_SIG];
	const unsigned char *p = der;
	unsigned int len = 0;

	if ((size_t)ECDSA_size(eckey) > sizeof(der) ||
	    keyproc_ec_sign(0, dgst, dlen, der, &len, kinv, r, eckey) != 1)
		return NULL;
	return d2i_ECDSA_SIG(NULL, &p, (long)len);
}

/* Make the methods and ex_data slots (once). */
static void
keyproc_init_methods(void)
{
	int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;

	keyproc_rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL());
	keyproc_ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	if (keyproc_rsa_meth == NULL || keyproc_ec_meth == NULL)
		log_fatal("keyproc: cannot make the key methods");
	if (RSA_meth_set1_name(keyproc_rsa_meth, "postern keyproc") != 1 ||
	    RSA_meth_set_priv_enc(keyproc_rsa_meth, keyproc_rsa_priv_enc) != 1 ||
	    RSA_meth_set_priv_dec(keyproc_rsa_meth, keyproc_rsa_priv_dec) != 1)
		log_fatal("keyproc: cannot set the RSA hooks");
	EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), NULL, &sign_setup, NULL);
	EC_KEY_METHOD_set_sign(keyproc_ec_meth, keyproc_ec_sign, sign_setup,
	    keyproc_ec_sign_sig);
	keyproc_rsa_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	keyproc_ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (keyproc_rsa_idx < 0 || keyproc_ec_idx < 0)
		log_fatal("keyproc: cannot get ex_data slots");
}

/* The DER SubjectPublicKeyInfo of cert, in a buffer the caller frees. */
static int
keyproc_spki(X509 *cert, unsigned char **der_r, long *len_r)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	unsigned char *der = NULL;
	int len;

	if (pub == NULL || (len = i2d_PUBKEY(pub, &der)) <= 0)
		return -1;
	*der_r = der;
	*len_r = len;
	return 0;
}

EVP_PKEY *
keyproc_remote_key(struct keyproc_client *kc, X509 *cert, const char **error_r)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert), *key = NULL;
	const unsigned char *p;
	unsigned char *der;
	RSA *rsa = NULL;
	EC_KEY *ec = NULL;
	const char *error = NULL;
	long len;

	(void)pthread_once(&keyproc_once, keyproc_init_methods);
	ERR_clear_error();
	if (pub == NULL || keyproc_spki(cert, &der, &len) < 0) {
		*error_r = "certificate has no usable public key";
		return NULL;
	}
	/* Fresh legacy key objects from the encoding: the certificate's
	 * own key stays untouched. */
	p = der;
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
		rsa = d2i_RSA_PUBKEY(NULL, &p, len);
		if (rsa != NULL && RSA_set_method(rsa, keyproc_rsa_meth) == 1 &&
		    RSA_set_ex_data(rsa, keyproc_rsa_idx, kc) == 1 &&
		    (key = EVP_PKEY_new()) != NULL &&
		    EVP_PKEY_assign_RSA(key, rsa) == 1)
			rsa = NULL;
		else
			error = "cannot build the RSA remote key";
	} else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
		ec = d2i_EC_PUBKEY(NULL, &p, len);
		if (ec != NULL && EC_KEY_set_method(ec, keyproc_ec_meth) == 1 &&
		    EC_KEY_set_ex_data(ec, keyproc_ec_idx, kc) == 1 &&
		    (key = EVP_PKEY_new()) != NULL &&
		    EVP_PKEY_assign_EC_KEY(key, ec) == 1)
			ec = NULL;
		else
			error = "cannot build the EC remote key";
	} else {
		error = "certificate key is neither RSA nor EC";
	}
	OPENSSL_free(der);
	if (error != NULL) {
		RSA_free(rsa);
		EC_KEY_free(ec);
		EVP_PKEY_free(key);
		*error_r = error;
		return NULL;
	}
	return key;
}

/* Sign a fixed message with key and verify it with the certificate's key. */
static int
keyproc_prove(EVP_PKEY *key, X509 *cert)
{
	static const unsigned char msg[] = "postern keyproc pair check";
	unsigned char sig[KEYPROC_MAX_SIG];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	ok = md != NULL &&
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    (size_t)EVP_PKEY_get_size(key) <= sizeof(sig) &&
	    EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return -1;
	md = EVP_MD_CTX_new();
	ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    X509_get0_pubkey(cert)) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* Whether every TLS 1.2 suite ctx offers has ephemeral key exchange. */
static int
keyproc_ciphers_ok(SSL_CTX *ctx)
{
	STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
	int i, kx;

	if (list == NULL)
		return 0;
	for (i = 0; i < sk_SSL_CIPHER_num(list); i++) {
		kx = SSL_CIPHER_get_kx_nid(sk_SSL_CIPHER_value(list, i));
		if (kx != NID_kx_ecdhe && kx != NID_kx_dhe && kx != NID_kx_any)
			return 0;
	}
	return 1;
}

int
keyproc_ctx_use(SSL_CTX *ctx, const char *cert_file,
    struct keyproc_client *kc, const char **error_r)
{
	const char *error = NULL;
	EVP_PKEY *key;
	X509 *cert;
	int ok;

	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
	    (cert = SSL_CTX_get0_certificate(ctx)) == NULL) {
		(void)snprintf(keyproc_errbuf, sizeof(keyproc_errbuf),
		    "certificate %s: %s", cert_file, tls_last_error());
		*error_r = keyproc_errbuf;
		return -1;
	}
	if (SSL_CTX_set_cipher_list(ctx, KEYPROC_CIPHERS) != 1 ||
	    !keyproc_ciphers_ok(ctx)) {
		*error_r = "cannot restrict TLS 1.2 to (EC)DHE key exchange";
		return -1;
	}
	key = keyproc_remote_key(kc, cert, &error);
	if (key == NULL) {
		*error_r = error;
		return -1;
	}
	ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
	    SSL_CTX_check_private_key(ctx) == 1;
	if (!ok) {
		(void)snprintf(keyproc_errbuf, sizeof(keyproc_errbuf),
		    "remote key for %s: %s", cert_file, tls_last_error());
		*error_r = keyproc_errbuf;
	} else if (keyproc_prove(key, cert) < 0) {
		(void)snprintf(keyproc_errbuf, sizeof(keyproc_errbuf),
		    "key process's key does not sign for certificate %s: %s",
		    cert_file, tls_last_error());
		*error_r = keyproc_errbuf;
		ok = 0;
	}
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}
