/*
 * sasl: strict base64 (RFC 4648, section 4: no whitespace, no line
 * breaks, mandatory "=" padding, zero pad bits) and the PLAIN message
 * split (RFC 4616) for the network daemons' AUTH commands.
 */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "sasl.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of a base64 character, or -1 for anything else. */
static int
b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

int
base64_decode(const char *in, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;

	buf_reset(out);
	if (len % 4 != 0)
		return -1;
	/* One allocation of the exact size up front, so a decoded secret is
	 * never left behind in a block that realloc() freed. */
	if (len > 0 && buf_reserve(out, len / 4 * 3 - (in[len - 1] == '=') -
	    (in[len - 2] == '=')) < 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		unsigned char bytes[3];

		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			/* Data after "=" ("a=b=") or an alphabet error. */
			if (pad > 0 || (v[k] = b64_value(s[i + k])) < 0)
				goto bad;
		}
		bytes[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		bytes[1] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
		bytes[2] = (unsigned char)((v[2] & 0x3) << 6 | v[3]);
		/* Canonical encodings only: the bits under the padding are 0. */
		if ((pad == 2 && (v[1] & 0xf) != 0) || (pad == 1 && (v[2] & 0x3) != 0))
			goto bad;
		if (buf_append(out, bytes, (size_t)(3 - pad)) < 0)
			goto bad;
	}
	return 0;
bad:
	explicit_bzero(out->data, out->len);
	buf_reset(out);
	return -1;
}

int
base64_encode(const void *p, size_t n, struct buf *out)
{
	const unsigned char *s = p;
	size_t groups = n / 3 + (n % 3 != 0), need;

	if (n == 0)
		return 0;
	if (__builtin_mul_overflow(groups, (size_t)4, &need) ||
	    buf_reserve(out, need) < 0)
		return -1;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		char q[4];
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)s[i + 1] << 8;
		if (left > 2)
			v |= s[i + 2];
		q[0] = b64_alphabet[v >> 18 & 0x3f];
		q[1] = b64_alphabet[v >> 12 & 0x3f];
		q[2] = left > 1 ? b64_alphabet[v >> 6 & 0x3f] : '=';
		q[3] = left > 2 ? b64_alphabet[v & 0x3f] : '=';
		/* Cannot fail: the room was reserved above. */
		if (buf_append(out, q, sizeof(q)) < 0)
			return -1;
	}
	return 0;
}

int
sasl_plain_split(struct buf *msg, const char **user_r, const char **password_r,
    size_t *password_len_r, const char **error_r)
{
	const char *authzid, *authcid, *password, *end;
	const char *nul1, *nul2;

	if (msg->len == 0 || msg->data == NULL) {
		*error_r = "empty PLAIN message";
		return -1;
	}
	authzid = msg->data;
	end = msg->data + msg->len;
	nul1 = memchr(authzid, '\0', msg->len);
	if (nul1 == NULL) {
		*error_r = "PLAIN message without NUL separators";
		return -1;
	}
	authcid = nul1 + 1;
	nul2 = memchr(authcid, '\0', (size_t)(end - authcid));
	if (nul2 == NULL) {
		*error_r = "PLAIN message without a password";
		return -1;
	}
	password = nul2 + 1;
	if (memchr(password, '\0', (size_t)(end - password)) != NULL) {
		*error_r = "PLAIN message with an extra NUL";
		return -1;
	}
	if (authcid == nul2) {
		*error_r = "PLAIN message with an empty user name";
		return -1;
	}
	if (password == end) {
		*error_r = "PLAIN message with an empty password";
		return -1;
	}
	if (authzid != nul1 && strcmp(authzid, authcid) != 0) {
		*error_r = "PLAIN authorization identity differs from the user";
		return -1;
	}
	/* The fields are already NUL-terminated in place: by the separators,
	 * and by the NUL that always follows a buf's data. */
	*user_r = authcid;
	*password_r = password;
	*password_len_r = (size_t)(end - password);
	return 0;
}
