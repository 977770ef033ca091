/*
 * passwd: entries of the password map.  A value is a crypt(3) hash
 * followed by optional attributes:
 *
 *   demo@example.test  $y$j9T$...  quota=2G  enabled=no
 *
 * yescrypt ($y$) is what postern writes; SHA-512 crypt ($6$), SHA-256
 * crypt ($5$) and bcrypt ($2b$, $2y$) are accepted for imported users.
 * Shared by the auth service (verify) and postern user (edit).
 */
#ifndef POSTERN_PASSWD_H
#define POSTERN_PASSWD_H

#include <stddef.h>
#include <stdint.h>

struct passwd_entry {
	char *hash;		/* crypt(3) string */
	uint64_t quota;		/* bytes, 0: none */
	int enabled;		/* 0 after `postern user disable` */
};

/* Parse a map value.  0 with *e_r filled (free with passwd_entry_free),
 * or -1 with *error_r (no hash, unknown attribute, bad quota). */
int passwd_parse(const char *value, struct passwd_entry *e_r, const char **error_r)
	__attribute__((warn_unused_result));
/* The map value for an entry (malloc'd), attributes only when not default. */
char *passwd_format(const struct passwd_entry *e);
void passwd_entry_free(struct passwd_entry *e);

/* A yescrypt hash of password with a fresh random salt (malloc'd), or
 * NULL with *error_r. */
char *passwd_hash(const char *password, const char **error_r);
/*
 * Check a password against a hash: 1 match, 0 no match, -1 a hash this
 * system cannot verify (unknown method, malformed).  The comparison of
 * the computed and stored hash is constant-time.
 */
int passwd_verify(const void *password, size_t len, const char *hash)
	__attribute__((warn_unused_result));
/* A hash of the same method and cost as postern writes, of a random
 * password: verifying against it costs what a real check costs, so an
 * unknown user answers as slowly as a known one. */
const char *passwd_dummy_hash(void);

#endif
