/*
 * libFuzzer target for the key process's request check (lib/core/keyproc.c,
 * keyproc_sign): what a compromised network process can send it.  The
 * first byte picks the key (bit 0: RSA or EC) and the algorithm (bits
 * 1-2: PKCS#1, PSS, ECDSA or an unknown one); the rest is the request's
 * input.  Invariants: a refusal has a reason and leaves the output
 * empty; a signature fits KEYPROC_MAX_SIG; an RSA signature is exactly
 * the modulus size and, for PSS, the public operation gives back the
 * input -- the raw private operation was applied only to a block the
 * check called a PSS encoding, and to nothing else.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "buf.h"
#include "keyproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static struct keyproc_server *servers[2];	/* RSA, EC */
static EVP_PKEY *keys[2];

/* A key of the kind asked for, in a PEM file the server loads. */
static struct keyproc_server *
server_for(int rsa, EVP_PKEY **key_r)
{
	char path[] = "/tmp/fuzz_keyproc.XXXXXX";
	const char *error;
	struct keyproc_server *ks;
	EVP_PKEY *key;
	FILE *f;
	int fd;

	/* 1024 bits: the check is the same as for 2048, the signing faster. */
	key = rsa ? EVP_RSA_gen(1024) : EVP_EC_gen("P-256");
	CHECK(key != NULL);
	fd = mkstemp(path);
	CHECK(fd >= 0);
	f = fdopen(fd, "w");
	CHECK(f != NULL);
	CHECK(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
	CHECK(fclose(f) == 0);
	ks = keyproc_server_new(path, &error);
	CHECK(ks != NULL);
	(void)unlink(path);
	*key_r = key;
	return ks;
}

/* The RSA public operation on sig: it must give back the block signed. */
static void
check_pss(EVP_PKEY *key, const struct buf *sig, const uint8_t *in, size_t inlen)
{
	unsigned char back[KEYPROC_MAX_SIG];
	size_t backlen = sizeof(back);
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(key, NULL);

	CHECK(pctx != NULL);
	CHECK(EVP_PKEY_verify_recover_init(pctx) == 1);
	CHECK(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_NO_PADDING) == 1);
	CHECK(EVP_PKEY_verify_recover(pctx, back, &backlen,
	    (const unsigned char *)sig->data, sig->len) == 1);
	CHECK(backlen == inlen && memcmp(back, in, inlen) == 0);
	EVP_PKEY_CTX_free(pctx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t algs[] = { KEYPROC_RSA_PKCS1, KEYPROC_RSA_PSS,
	    KEYPROC_ECDSA, 99 };
	struct buf sig = BUF_INIT;
	const char *error = NULL;
	int which, rc;
	uint32_t alg;

	if (servers[0] == NULL) {
		servers[0] = server_for(1, &keys[0]);
		servers[1] = server_for(0, &keys[1]);
	}
	if (size == 0 || size - 1 > KEYPROC_MAX_INPUT)
		return 0;
	which = data[0] & 1;
	alg = algs[(data[0] >> 1) & 3];
	rc = keyproc_sign(servers[which], alg, data + 1, size - 1, &sig, &error);
	if (rc < 0) {
		CHECK(error != NULL && *error != '\0');
		CHECK(sig.len == 0);
	} else {
		CHECK(rc == 0);
		CHECK(sig.len > 0 && sig.len <= KEYPROC_MAX_SIG);
		if (which == 0)
			CHECK(sig.len == (size_t)EVP_PKEY_get_size(keys[0]));
		if (which == 0 && alg == KEYPROC_RSA_PSS)
			check_pss(keys[0], &sig, data + 1, size - 1);
	}
	buf_free(&sig);
	return 0;
}
