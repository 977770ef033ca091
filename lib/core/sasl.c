/*
 * sasl: strict base64 (RFC 4648, section 4: no whitespace, no line
 * breaks, mandatory "=" padding, zero pad bits), the PLAIN message
 * split (RFC 4616), and the one server exchange the network daemons'
 * AUTH commands run: a table of mechanisms, each a step function over
 * its own state, driven by start and continue.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sasl.h"
#include "xalloc.h"

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

/* --- The server exchange ---------------------------------------------------- */

/*
 * A mechanism: its name, the size of its per-exchange state (zeroed at
 * start), a step that takes the decoded response (NULL when the client
 * sent no initial response) and sets s->challenge, s->user/secret or
 * s->failure, and a wipe for whatever the state holds.
 */
struct sasl_mech {
	const char *name;
	size_t state_size;
	enum sasl_step (*step)(struct sasl_server *s, struct buf *in);
	void (*wipe)(void *state);
};

/* Set the failure and its log reason. */
static enum sasl_step
sasl_fail(struct sasl_server *s, enum sasl_failure why, const char *error)
{
	s->failure = why;
	s->error = error;
	return SASL_FAILED;
}

/* Set the challenge to the base64 of text. */
static enum sasl_step
sasl_challenge(struct sasl_server *s, const char *text)
{
	buf_reset(&s->challenge);
	/* The prompts are a few bytes and the buffer has no cap. */
	if (base64_encode(text, strlen(text), &s->challenge) < 0)
		return sasl_fail(s, SASL_FAIL_MESSAGE, "challenge too long");
	return SASL_CHALLENGE;
}

/* PLAIN: an empty challenge, then one message with both credentials. */
static enum sasl_step
plain_step(struct sasl_server *s, struct buf *in)
{
	const char *error;

	if (in == NULL)
		return sasl_challenge(s, "");
	if (sasl_plain_split(in, &s->user, &s->secret, &s->secret_len, &error) < 0)
		return sasl_fail(s, SASL_FAIL_MESSAGE, error);
	return SASL_DONE;
}

/* LOGIN's state: which prompt was answered last, and the user name. */
struct login_state {
	int have_user;
	struct buf user;
};

/* LOGIN: "Username:", then "Password:"; an initial response is the name. */
static enum sasl_step
login_step(struct sasl_server *s, struct buf *in)
{
	struct login_state *st = s->state;

	if (in == NULL)
		return sasl_challenge(s, "Username:");
	if (!st->have_user) {
		buf_wipe(&st->user);
		if (buf_append(&st->user, in->data, in->len) < 0)
			return sasl_fail(s, SASL_FAIL_MESSAGE, "LOGIN user name too long");
		st->have_user = 1;
		return sasl_challenge(s, "Password:");
	}
	/* Both are NUL-terminated by their bufs; a NUL inside the name is
	 * the auth service's to refuse, as it was before. */
	s->user = buf_cstr(&st->user);
	s->secret = buf_cstr(in);
	s->secret_len = in->len;
	return SASL_DONE;
}

/* Wipe LOGIN's state. */
static void
login_wipe(void *state)
{
	struct login_state *st = state;

	buf_wipe(&st->user);
}

static const struct sasl_mech mechs[] = {
	{ "PLAIN", 0, plain_step, NULL },
	{ "LOGIN", sizeof(struct login_state), login_step, login_wipe },
};
#define N_MECHS (sizeof(mechs) / sizeof(mechs[0]))

/* The table entry named name, or NULL. */
static const struct sasl_mech *
mech_find(const char *name)
{
	for (size_t i = 0; i < N_MECHS; i++)
		if (strcmp(mechs[i].name, name) == 0)
			return &mechs[i];
	return NULL;
}

int
sasl_mech_known(const char *name)
{
	return mech_find(name) != NULL;
}

const char *
sasl_mech_name(size_t i)
{
	return i < N_MECHS ? mechs[i].name : NULL;
}

/* Decode a response ("=" is empty, RFC 4954 and 5034) and run one step. */
static enum sasl_step
sasl_step(struct sasl_server *s, const char *text, size_t len)
{
	if (len == 1 && text[0] == '=')
		len = 0;
	if (base64_decode(text, len, &s->in) < 0)
		return sasl_fail(s, SASL_FAIL_BASE64, "bad base64");
	return s->mech->step(s, &s->in);
}

enum sasl_step
sasl_server_start(struct sasl_server *s, const char *mech, const char *initial,
    size_t max)
{
	const struct sasl_mech *m;

	sasl_server_end(s);
	m = mech_find(mech);
	if (m == NULL)
		return sasl_fail(s, SASL_FAIL_MECHANISM, "unknown mechanism");
	s->mech = m;
	s->max = max;
	buf_init(&s->in, max);
	buf_init(&s->challenge, 0);
	if (m->state_size > 0)
		s->state = xcalloc(1, m->state_size);
	if (initial == NULL)
		return m->step(s, NULL);
	return sasl_step(s, initial, strlen(initial));
}

enum sasl_step
sasl_server_continue(struct sasl_server *s, const char *line, size_t len)
{
	if (s->mech == NULL)
		return sasl_fail(s, SASL_FAIL_MECHANISM, "no exchange under way");
	s->user = s->secret = NULL;
	s->secret_len = 0;
	if (len == 1 && line[0] == '*')
		return sasl_fail(s, SASL_FAIL_CANCELLED, "cancelled");
	return sasl_step(s, line, len);
}

void
sasl_server_end(struct sasl_server *s)
{
	if (s->state != NULL) {
		if (s->mech != NULL && s->mech->wipe != NULL)
			s->mech->wipe(s->state);
		explicit_bzero(s->state, s->mech->state_size);
		xfree(&s->state);
	}
	buf_wipe(&s->in);
	buf_wipe(&s->challenge);
	s->mech = NULL;
	s->user = s->secret = NULL;
	s->secret_len = 0;
	s->failure = SASL_FAIL_NONE;
	s->error = NULL;
}
