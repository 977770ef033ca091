/*
 * passwd: parsing and formatting password map entries, hashing and
 * verifying passwords with libcrypt.
 */
#include "autoconf.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "passwd.h"
#include "xalloc.h"

/* Hash methods accepted for verification, by prefix. */
static const char *const accepted_prefixes[] = {
	"$y$", "$6$", "$5$", "$2b$", "$2y$", "$2a$",
};

void
passwd_entry_free(struct passwd_entry *e)
{
	xfree(&e->hash);
}

int
passwd_parse(const char *value, struct passwd_entry *e_r, const char **error_r)
{
	struct passwd_entry e = { NULL, 0, 1 };
	char *copy = xstrdup(value), *save = NULL, *tok;

	tok = strtok_r(copy, " \t", &save);
	if (tok == NULL) {
		*error_r = "no password hash";
		free(copy);
		return -1;
	}
	if (tok[0] != '$' && tok[0] != '*' && tok[0] != '!') {
		*error_r = "the password hash must be in crypt(3) format ($y$..., $6$...)";
		free(copy);
		return -1;
	}
	e.hash = xstrdup(tok);
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		const char *error;

		if (strncmp(tok, "quota=", 6) == 0) {
			if (cfg_parse_size(tok + 6, &e.quota, &error) < 0) {
				*error_r = err_fmt("quota: %s", error);
				goto bad;
			}
		} else if (strncmp(tok, "enabled=", 8) == 0) {
			if (cfg_parse_bool(tok + 8, &e.enabled, &error) < 0) {
				*error_r = err_fmt("enabled: %s", error);
				goto bad;
			}
		} else {
			*error_r = err_fmt("unknown attribute '%s' (quota=, enabled=)",
			    log_safe(tok));
			goto bad;
		}
	}
	free(copy);
	*e_r = e;
	return 0;
bad:
	free(copy);
	free(e.hash);
	return -1;
}

char *
passwd_format(const struct passwd_entry *e)
{
	struct buf b = BUF_INIT;

	if (buf_puts(&b, e->hash) < 0 ||
	    (e->quota > 0 && buf_printf(&b, " quota=%llu",
	    (unsigned long long)e->quota) < 0) ||
	    (!e->enabled && buf_puts(&b, " enabled=no") < 0))
		log_panic("event=passwd_format_overflow");
	return buf_steal(&b);
}

char *
passwd_hash(const char *password, const char **error_r)
{
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *h;
	char *out;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL) {
		*error_r = err_fmt("crypt_gensalt: %s", strerror(errno));
		free(data);
		return NULL;
	}
	h = crypt_r(password, salt, data);
	if (h == NULL || h[0] == '*') {
		*error_r = "crypt failed";
		free(data);
		return NULL;
	}
	out = xstrdup(h);
	explicit_bzero(data, sizeof(*data));
	free(data);
	return out;
}

int
passwd_verify(const void *password, size_t len, const char *hash)
{
	struct crypt_data *data;
	const char *h;
	char *pw;
	size_t hl = strlen(hash);
	int accepted = 0, r;

	for (size_t i = 0; i < sizeof(accepted_prefixes) / sizeof(accepted_prefixes[0]); i++)
		if (strncmp(hash, accepted_prefixes[i], strlen(accepted_prefixes[i])) == 0)
			accepted = 1;
	/* A NUL inside the password could make two passwords equal. */
	if (!accepted || memchr(password, '\0', len) != NULL)
		return accepted ? 0 : -1;
	data = xcalloc(1, sizeof(*data));
	pw = xstrndup(password, len);
	h = crypt_r(pw, hash, data);
	if (h == NULL || h[0] == '*')
		r = -1;
	else
		r = strlen(h) == hl && CRYPTO_memcmp(h, hash, hl) == 0;
	explicit_bzero(pw, len);
	free(pw);
	explicit_bzero(data, sizeof(*data));
	free(data);
	return r;
}

const char *
passwd_dummy_hash(void)
{
	static char *dummy;

	if (dummy == NULL) {
		unsigned char raw[16];
		char pw[33];
		const char *error;

		if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
			log_fatal("event=getrandom_failed error=\"%s\"", strerror(errno));
		for (size_t i = 0; i < sizeof(raw); i++) {
			pw[2 * i] = "0123456789abcdef"[raw[i] >> 4];
			pw[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
		}
		pw[32] = '\0';
		dummy = passwd_hash(pw, &error);
		if (dummy == NULL)
			log_fatal("event=dummy_hash_failed error=\"%s\"", error);
	}
	return dummy;
}
