/*
 * tlsctx: OpenSSL 3 contexts for postern's servers and clients, and the
 * self-signed certificate that `postern init --dev` makes.
 */
#ifndef POSTERN_TLSCTX_H
#define POSTERN_TLSCTX_H

#include <openssl/ssl.h>

/* A server context (TLS 1.2 or later) with the PEM certificate chain and
 * private key from these files.  NULL with *error_r on failure (file
 * unreadable, key does not match certificate, ...). */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file,
    const char **error_r);
/* A client context (TLS 1.2 or later).  verify != 0: verify the peer
 * against ca_file (NULL: the system store).  NULL with *error_r. */
SSL_CTX *tls_client_ctx(int verify, const char *ca_file, const char **error_r);
/* Write a new self-signed certificate (RSA 2048 or EC P-256, SHA-256,
 * subjectAltName DNS:cn) for cn valid `days` days: key to key_path (mode
 * 0600), certificate to cert_path (mode 0644).  0, or -1 with *error_r. */
int tls_make_selfsigned(const char *cert_path, const char *key_path,
    const char *cn, int days, const char **error_r)
	__attribute__((warn_unused_result));
/* The OpenSSL error queue, drained into one short line (static storage). */
const char *tls_last_error(void);

#endif
