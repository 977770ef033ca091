/*
 * keyproc: the TLS private key kept out of the network-facing processes.
 *
 * One small key process (or master) loads tls_key_file as root and serves
 * sign requests over a Unix socket or socketpair (lib/core/ipc framing,
 * protocol "postern-keyproc/1").  smtpd and the login processes load only
 * the certificate: keyproc_ctx_use() gives their SSL_CTX a key that holds
 * the certificate's public key and forwards the one private operation, the
 * handshake signature, to the key process.  The key process never sends
 * key material; it answers a request only if its shape is that of a TLS
 * signature input (see below), so it is a signing oracle for handshakes
 * and not a raw RSA decryption oracle.
 *
 * Only signing is forwarded, so the server context must offer only
 * (EC)DHE key exchange: TLS 1.3 always does; for TLS 1.2
 * keyproc_ctx_use() removes static-RSA key exchange (kRSA, which would
 * need a private decryption) from the cipher list and checks that every
 * suite left is ECDHE or DHE.
 *
 * How the key forwards: through OpenSSL's legacy RSA_METHOD and
 * EC_KEY_METHOD hooks (deprecated in OpenSSL 3.0 but supported; a key
 * with a non-default method is "foreign" and stays on the legacy EVP
 * path, where libssl signs through it).  A provider (keymgmt + signature)
 * would be the OpenSSL 3 way, but needs some ten dispatch functions per
 * key type for the same effect.  With RSA_METHOD the hook is rsa_priv_enc:
 *   - PKCS#1 v1.5 (TLS 1.2): OpenSSL hands it the DigestInfo with
 *     RSA_PKCS1_PADDING; the request is KEYPROC_RSA_PKCS1 with the
 *     DigestInfo, which the key process re-encodes from the digest it
 *     finds (SHA-1, -224, -256, -384, -512) and compares byte for byte;
 *   - RSA-PSS (TLS 1.3, and TLS 1.2 when the client prefers it): OpenSSL
 *     pads (EMSA-PSS) before calling it with RSA_NO_PADDING; the request
 *     is KEYPROC_RSA_PSS with the modulus-sized encoded block, and the key
 *     process checks it is a PSS encoding (trailer 0xbc, unmasked DB of
 *     zeros, 0x01, a salt as long as the hash) for SHA-256, -384 or -512
 *     before the raw private operation;
 *   - ECDSA: EC_KEY_METHOD's sign gets the digest; the request is
 *     KEYPROC_ECDSA with it (20 to 64 bytes) and the answer a DER ECDSA
 *     signature.
 * RSA-PSS-only keys (id-RSASSA-PSS) and EdDSA are not supported.
 *
 * The network side's request is blocking: it runs inside SSL_do_handshake
 * (or SSL_accept/SSL_read driving the handshake), which cannot return
 * to the event loop mid-signature without SSL_MODE_ASYNC.  The cost per
 * full handshake is one round trip to the key process (two small frames
 * over a local socket, plus the signature itself, which the network
 * process would otherwise compute): a few tens of microseconds of wait
 * beside the ~1 ms (RSA-2048) or ~50 us (P-256) of signing.  Resumed
 * sessions sign nothing.  The wait is bounded by the client's timeout;
 * a lost key process fails the handshake (an OpenSSL error, no crash).
 *
 * Not thread-safe: a keyproc_client serves one thread (the loop's).
 */
#ifndef POSTERN_KEYPROC_H
#define POSTERN_KEYPROC_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "ev.h"
#include "ipc.h"

#define KEYPROC_PROTOCOL "postern-keyproc/1"

/* The messages. */
#define KEYPROC_SIGN (IPC_TYPE_USER + 0)	/* u32 alg, data input */
#define KEYPROC_SIG (IPC_TYPE_USER + 1)		/* data signature */
#define KEYPROC_REFUSED (IPC_TYPE_USER + 2)	/* str reason */

/* The request's algorithm (what its input is). */
#define KEYPROC_RSA_PKCS1 1	/* a DigestInfo, PKCS#1 v1.5 signature */
#define KEYPROC_RSA_PSS 2	/* an EMSA-PSS block, raw private op */
#define KEYPROC_ECDSA 3		/* a digest, DER ECDSA signature */

#define KEYPROC_MAX_INPUT 1024	/* an RSA-8192 block */
#define KEYPROC_MAX_SIG 1024
#define KEYPROC_TIMEOUT_MS 5000	/* default wait for an answer */

/* --- The key-holding side ---------------------------------------------------- */

struct keyproc_server;

/* Load the PEM private key (RSA or EC) from key_file.  NULL with
 * *error_r if it cannot be read or is of another type. */
struct keyproc_server *keyproc_server_new(const char *key_file,
    const char **error_r);
/* Free the key and close every link; sets *ksp = NULL. */
void keyproc_server_free(struct keyproc_server **ksp);
/* Call on_empty(arg) each time the last link closes (a key process
 * serving one network process exits then).  NULL: nothing. */
void keyproc_server_on_empty(struct keyproc_server *ks,
    void (*on_empty)(void *arg), void *arg);
/* Serve sign requests on the connected Unix stream socket fd (owned from
 * now on) over loop.  A frame that breaks the framing closes the link; a
 * request of the wrong shape is answered KEYPROC_REFUSED. */
void keyproc_server_add(struct keyproc_server *ks, struct ev_loop *loop,
    int fd);
/* Links open now. */
size_t keyproc_server_links(const struct keyproc_server *ks);
/*
 * Check one request and sign it: 0 with the signature appended to sig_r,
 * or -1 with *error_r (sig_r untouched) if alg is unknown or does not fit
 * the key, or the input has not the shape alg requires.  This is the
 * whole of what a request can make the key do.
 */
int keyproc_sign(const struct keyproc_server *ks, uint32_t alg,
    const void *in, size_t inlen, struct buf *sig_r, const char **error_r)
	__attribute__((warn_unused_result));

/* --- The network side -------------------------------------------------------- */

struct keyproc_client;

/* Take the connected socket fd (owned from now on; made blocking),
 * exchange hellos with the key process, and wait at most timeout_ms for
 * each answer later.  NULL with *error_r (fd closed) on failure. */
struct keyproc_client *keyproc_client_new(int fd, int timeout_ms,
    const char **error_r);
/* Close the link; sets *kcp = NULL.  Keys made from the client must be
 * freed first (an SSL_CTX holding one, too). */
void keyproc_client_free(struct keyproc_client **kcp);
/* 1 while the link is usable; after a lost or broken link every request
 * fails (the owner makes a new client). */
int keyproc_client_up(const struct keyproc_client *kc);
/*
 * A key with cert's public key (RSA or EC) whose private operation is a
 * request to kc; it holds no private component.  The caller owns it and
 * must free it before kc.  NULL with *error_r for another key type.
 */
EVP_PKEY *keyproc_remote_key(struct keyproc_client *kc, X509 *cert,
    const char **error_r);
/*
 * Give the server context ctx the PEM certificate chain from cert_file
 * and a remote key through kc; restrict TLS 1.2 to (EC)DHE suites; and
 * prove the pair by signing a test message through the key process and
 * verifying it with the certificate.  0, or -1 with *error_r (ctx then
 * unusable).  kc must outlive ctx.
 */
int keyproc_ctx_use(SSL_CTX *ctx, const char *cert_file,
    struct keyproc_client *kc, const char **error_r)
	__attribute__((warn_unused_result));

#endif
