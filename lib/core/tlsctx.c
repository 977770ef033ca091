/*
 * tlsctx: OpenSSL 3 server and client contexts (TLS 1.2 or later, no
 * renegotiation, compression off) and the self-signed certificate for dev
 * mode: an EC P-256 key, SHA-256, subjectAltName for the name, written
 * atomically (temporary file, fsync, rename) with the key at mode 0600.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tlsctx.h"
#include "xalloc.h"

/* Longest certificate validity accepted, in days (about 100 years). */
#define TLS_MAX_DAYS 36500

/* Storage for *error_r texts; like tls_last_error(), not thread-safe. */
static char tls_errbuf[512];

/* Format an error_r text: what failed, then the OpenSSL error queue. */
static const char *
tls_fail(const char *what)
{
	(void)snprintf(tls_errbuf, sizeof(tls_errbuf), "%s: %s", what,
	    tls_last_error());
	return tls_errbuf;
}

/* Format an error_r text: what failed on path, then errno's text. */
static const char *
tls_fail_errno(const char *what, const char *path)
{
	(void)snprintf(tls_errbuf, sizeof(tls_errbuf), "%s %s: %s", what, path,
	    strerror(errno));
	return tls_errbuf;
}

const char *
tls_last_error(void)
{
	static char line[256];
	char one[160];
	size_t used = 0;
	unsigned long e;
	int n;

	line[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		if (used + 1 >= sizeof(line))
			continue;	/* keep draining */
		ERR_error_string_n(e, one, sizeof(one));
		n = snprintf(line + used, sizeof(line) - used, "%s%s",
		    used > 0 ? "; " : "", one);
		if (n < 0)
			break;
		used += (size_t)n;
		if (used >= sizeof(line))
			used = sizeof(line) - 1;
	}
	if (used == 0)
		return "unknown TLS error";
	return line;
}

/* Settings both kinds of context share. */
static int
tls_ctx_common(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		return -1;
	/* Mail peers often close after QUIT without close_notify; the
	 * protocols frame their own ends, so that counts as a clean EOF. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return 0;
}

SSL_CTX *
tls_server_ctx(const char *cert_file, const char *key_file,
    const char **error_r)
{
	static const unsigned char sid_ctx[] = "postern";
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = tls_fail("SSL_CTX_new");
		return NULL;
	}
	if (tls_ctx_common(ctx) < 0) {
		*error_r = tls_fail("TLS settings");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Built-in DH groups for TLS 1.2 DHE suites. */
	(void)SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx,
	    sizeof(sid_ctx) - 1) != 1) {
		*error_r = tls_fail("session id context");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		(void)snprintf(tls_errbuf, sizeof(tls_errbuf),
		    "certificate %s: %s", cert_file, tls_last_error());
		*error_r = tls_errbuf;
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		(void)snprintf(tls_errbuf, sizeof(tls_errbuf),
		    "private key %s: %s", key_file, tls_last_error());
		*error_r = tls_errbuf;
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		(void)snprintf(tls_errbuf, sizeof(tls_errbuf),
		    "private key %s does not match certificate %s", key_file,
		    cert_file);
		ERR_clear_error();
		*error_r = tls_errbuf;
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx(int verify, const char *ca_file, const char **error_r)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		*error_r = tls_fail("SSL_CTX_new");
		return NULL;
	}
	if (tls_ctx_common(ctx) < 0) {
		*error_r = tls_fail("TLS settings");
		goto fail;
	}
	if (verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (ca_file != NULL) {
			if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
				(void)snprintf(tls_errbuf, sizeof(tls_errbuf),
				    "CA file %s: %s", ca_file, tls_last_error());
				*error_r = tls_errbuf;
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			*error_r = tls_fail("system CA store");
			goto fail;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Whether cn is usable as a DNS name (or an IP literal) in a certificate. */
static int
tls_name_ok(const char *cn)
{
	size_t i, n = strlen(cn);

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		char c = cn[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '*' || c == ':'))
			return 0;
	}
	return 1;
}

/* Add subjectAltName: IP:cn for an address literal, DNS:cn otherwise. */
static int
tls_add_san(X509 *x, const char *cn)
{
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	unsigned char addr[16];
	int ok = 0;

	if (names == NULL || gn == NULL)
		goto out;
	if (inet_pton(AF_INET, cn, addr) == 1 ||
	    inet_pton(AF_INET6, cn, addr) == 1) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(cn);

		if (ip == NULL)
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
	} else {
		ASN1_IA5STRING *dns = ASN1_IA5STRING_new();

		if (dns == NULL)
			goto out;
		if (ASN1_STRING_set(dns, cn, (int)strlen(cn)) != 1) {
			ASN1_IA5STRING_free(dns);
			goto out;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	}
	if (sk_GENERAL_NAME_push(names, gn) <= 0)
		goto out;
	gn = NULL;
	ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0) == 1;
out:
	GENERAL_NAME_free(gn);
	sk_GENERAL_NAME_pop_free(names, GENERAL_NAME_free);
	return ok ? 0 : -1;
}

/* Add one extension given in OpenSSL's config syntax (constant text). */
static int
tls_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* Build and sign the certificate for pkey. */
static X509 *
tls_build_cert(EVP_PKEY *pkey, const char *cn, int days)
{
	X509 *x = X509_new();
	X509_NAME *name;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;

	if (x == NULL)
		return NULL;
	if (X509_set_version(x, X509_VERSION_3) != 1)
		goto fail;
	bn = BN_new();
	if (bn == NULL || BN_rand(bn, 127, BN_RAND_TOP_ANY,
	    BN_RAND_BOTTOM_ANY) != 1)
		goto fail;
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	if (serial == NULL || X509_set_serialNumber(x, serial) != 1)
		goto fail;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) == NULL)
		goto fail;
	if (X509_set_pubkey(x, pkey) != 1)
		goto fail;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto fail;
	if (tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    tls_add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
	    tls_add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    tls_add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
	    tls_add_san(x, cn) < 0)
		goto fail;
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto fail;
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	return x;
fail:
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	X509_free(x);
	return NULL;
}

/*
 * Write the PEM text in bio to a new temporary file next to path, with
 * the given mode, and fsync it.  Returns the temporary name (malloc'd)
 * or NULL with *error_r.
 */
static char *
tls_write_temp(const char *path, BIO *bio, mode_t mode, const char **error_r)
{
	char *tmp = xasprintf("%s.tmpXXXXXX", path);
	char *data;
	long len;
	ssize_t n;
	size_t off = 0;
	int fd;

	fd = mkstemp(tmp);	/* created 0600 */
	if (fd < 0) {
		*error_r = tls_fail_errno("create", tmp);
		free(tmp);
		return NULL;
	}
	len = BIO_get_mem_data(bio, &data);
	if (fchmod(fd, mode) < 0) {
		*error_r = tls_fail_errno("chmod", tmp);
		goto fail;
	}
	while (len > 0 && off < (size_t)len) {
		n = write(fd, data + off, (size_t)len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = tls_fail_errno("write", tmp);
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		*error_r = tls_fail_errno("fsync", tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		*error_r = tls_fail_errno("close", tmp);
		goto fail;
	}
	return tmp;
fail:
	if (fd >= 0)
		(void)close(fd);
	(void)unlink(tmp);
	free(tmp);
	return NULL;
}

/* fsync the directory holding path, so a rename into it is durable. */
static void
tls_sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		(void)close(fd);
	}
	free(dir);
}

int
tls_make_selfsigned(const char *cert_path, const char *key_path,
    const char *cn, int days, const char **error_r)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	BIO *kbio = NULL, *cbio = NULL;
	char *ktmp = NULL, *ctmp = NULL;
	int ret = -1;

	if (!tls_name_ok(cn)) {
		*error_r = "certificate name is empty, too long or has "
		    "characters other than letters, digits, '-', '.', '*', ':'";
		return -1;
	}
	if (days <= 0 || days > TLS_MAX_DAYS) {
		*error_r = "certificate validity must be 1 to 36500 days";
		return -1;
	}
	ERR_clear_error();
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (pkey == NULL) {
		*error_r = tls_fail("key generation");
		goto out;
	}
	x = tls_build_cert(pkey, cn, days);
	if (x == NULL) {
		*error_r = tls_fail("certificate");
		goto out;
	}
	kbio = BIO_new(BIO_s_mem());
	cbio = BIO_new(BIO_s_mem());
	if (kbio == NULL || cbio == NULL ||
	    PEM_write_bio_PrivateKey(kbio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cbio, x) != 1) {
		*error_r = tls_fail("PEM encoding");
		goto out;
	}
	ktmp = tls_write_temp(key_path, kbio, 0600, error_r);
	if (ktmp == NULL)
		goto out;
	ctmp = tls_write_temp(cert_path, cbio, 0644, error_r);
	if (ctmp == NULL)
		goto out;
	if (rename(ktmp, key_path) < 0) {
		*error_r = tls_fail_errno("rename to", key_path);
		goto out;
	}
	xfree(&ktmp);
	if (rename(ctmp, cert_path) < 0) {
		*error_r = tls_fail_errno("rename to", cert_path);
		goto out;
	}
	xfree(&ctmp);
	tls_sync_dir(key_path);
	tls_sync_dir(cert_path);
	ret = 0;
out:
	if (ktmp != NULL)
		(void)unlink(ktmp);
	if (ctmp != NULL)
		(void)unlink(ctmp);
	free(ktmp);
	free(ctmp);
	BIO_free(kbio);
	BIO_free(cbio);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ret;
}
