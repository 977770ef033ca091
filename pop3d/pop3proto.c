/*
 * pop3proto: POP3 command parsing and the per-command checks (see
 * pop3proto.h).  Everything here is pure: a line and a view in, a parsed
 * command or a refusal out.  The command table gives each verb its name
 * and flags (the states it is valid in, its message-number argument).
 */
#include "autoconf.h"

#include <string.h>

#include "pop3proto.h"
#include "sasl.h"

struct verb_def {
	enum pop3_verb verb;
	const char *name;
	unsigned flags;
};

static const struct verb_def verbs[] = {
	{ POP3_USER, "USER", POP3_F_AUTHZ },
	{ POP3_PASS, "PASS", POP3_F_AUTHZ },
	{ POP3_AUTH, "AUTH", POP3_F_AUTHZ },
	{ POP3_STLS, "STLS", POP3_F_AUTHZ },
	{ POP3_CAPA, "CAPA", POP3_F_AUTHZ | POP3_F_TRANS },
	{ POP3_QUIT, "QUIT", POP3_F_AUTHZ | POP3_F_TRANS },
	{ POP3_STAT, "STAT", POP3_F_TRANS },
	{ POP3_LIST, "LIST", POP3_F_TRANS | POP3_F_MSG | POP3_F_MSG_OPT },
	{ POP3_RETR, "RETR", POP3_F_TRANS | POP3_F_MSG },
	{ POP3_DELE, "DELE", POP3_F_TRANS | POP3_F_MSG },
	{ POP3_NOOP, "NOOP", POP3_F_TRANS },
	{ POP3_RSET, "RSET", POP3_F_TRANS },
	{ POP3_TOP, "TOP", POP3_F_TRANS | POP3_F_MSG },
	{ POP3_UIDL, "UIDL", POP3_F_TRANS | POP3_F_MSG | POP3_F_MSG_OPT },
	{ POP3_APOP, "APOP", POP3_F_AUTHZ },
	{ POP3_UNKNOWN, "UNKNOWN", POP3_F_AUTHZ | POP3_F_TRANS },
};
#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

/* The table row of a verb (UNKNOWN for anything else). */
static const struct verb_def *
verb_def(enum pop3_verb v)
{
	for (size_t i = 0; i < NVERBS; i++)
		if (verbs[i].verb == v)
			return &verbs[i];
	return &verbs[NVERBS - 1];
}

const char *
pop3_verb_name(enum pop3_verb v)
{
	return verb_def(v)->name;
}

unsigned
pop3_verb_flags(enum pop3_verb v)
{
	return verb_def(v)->flags;
}

const char *
pop3_code_name(enum pop3_code code)
{
	switch (code) {
	case POP3_CODE_IN_USE:
		return "IN-USE";
	case POP3_CODE_AUTH:
		return "AUTH";
	case POP3_CODE_SYS_TEMP:
		return "SYS/TEMP";
	case POP3_CODE_SYS_PERM:
		return "SYS/PERM";
	default:
		return NULL;
	}
}

/* Fill *r and return -1, so a refusal is one statement. */
static int
refuse(struct pop3_refusal *r, enum pop3_code code, const char *text, int counts)
{
	r->code = code;
	r->text = text;
	r->counts = counts;
	return -1;
}

/* ASCII upper case of one byte. */
static char
upper(char ch)
{
	return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

/* The verb of the n bytes at p (case-insensitive), or POP3_UNKNOWN. */
static enum pop3_verb
find_verb(const char *p, size_t n)
{
	if (n < 3 || n > 4)
		return POP3_UNKNOWN;
	for (size_t i = 0; i < NVERBS - 1; i++) {
		const char *name = verbs[i].name;
		size_t j;

		if (strlen(name) != n)
			continue;
		for (j = 0; j < n && upper(p[j]) == name[j]; j++)
			;
		if (j == n)
			return verbs[i].verb;
	}
	return POP3_UNKNOWN;
}

/* A decimal number of 1..10 digits, at most max.  0 or -1. */
static int
parse_number(const char *s, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t n = 0;

	for (; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n >= 10)
			return -1;
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	if (n == 0 || s[n] != '\0' || v > max)
		return -1;
	*v_r = v;
	return 0;
}

/* Split the arguments at p (NUL-terminated, modified) on runs of spaces
 * into at most max words.  Returns the count, or max + 1 if there are
 * more. */
static size_t
split_args(char *p, char **words, size_t max)
{
	size_t n = 0;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return n;
		if (n == max)
			return max + 1;
		words[n++] = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p == ' ')
			*p++ = '\0';
	}
}

int
pop3_parse(char *line, size_t len, struct pop3_cmd *c, struct pop3_refusal *r)
{
	char *words[2];
	size_t vlen, nargs;
	char *rest;
	uint64_t v;

	memset(c, 0, sizeof(*c));
	c->arg = "";
	c->lines = -1;
	if (len > POP3_MAX_LINE)
		return refuse(r, POP3_CODE_NONE, "Line too long", 1);
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return refuse(r, POP3_CODE_NONE, "Invalid characters in command", 1);
	line[len] = '\0';
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	c->verb = find_verb(line, vlen);
	c->name = pop3_verb_name(c->verb);
	if (c->verb == POP3_UNKNOWN)
		return 0;	/* the check refuses it */
	if (len > POP3_MAX_COMMAND && c->verb != POP3_AUTH && c->verb != POP3_PASS)
		return refuse(r, POP3_CODE_NONE, "Line too long", 1);
	rest = line + vlen;
	if (*rest == ' ')
		rest++;

	switch (c->verb) {
	case POP3_USER:
		/* The rest of the line, without trailing blanks. */
		while (len > 0 && line[len - 1] == ' ')
			line[--len] = '\0';
		if (rest >= line + len || *rest == '\0')
			return refuse(r, POP3_CODE_NONE, "Syntax: USER name", 1);
		c->arg = rest;
		return 0;
	case POP3_PASS:
		/* The rest of the line as it is: a password may hold spaces. */
		if (*rest == '\0')
			return refuse(r, POP3_CODE_NONE, "Syntax: PASS password", 1);
		c->arg = rest;
		return 0;
	case POP3_APOP:
		return 0;	/* refused by the check */
	case POP3_AUTH:
		nargs = split_args(rest, words, 2);
		if (nargs > 2)
			return refuse(r, POP3_CODE_NONE, "Syntax: AUTH mechanism [initial-response]", 1);
		if (nargs == 0)
			return 0;	/* list the mechanisms */
		vlen = strlen(words[0]);
		if (vlen > POP3_MECH_MAX)
			return refuse(r, POP3_CODE_NONE, "Unsupported authentication mechanism", 1);
		for (size_t i = 0; i < vlen; i++) {
			char ch = upper(words[0][i]);

			if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			    ch == '-' || ch == '_'))
				return refuse(r, POP3_CODE_NONE,
				    "Unsupported authentication mechanism", 1);
			c->mech[i] = ch;
		}
		c->mech[vlen] = '\0';
		c->initial = nargs == 2 ? words[1] : NULL;
		return 0;
	default:
		break;
	}

	nargs = split_args(rest, words, 2);
	if (pop3_verb_flags(c->verb) & POP3_F_MSG) {
		size_t want = c->verb == POP3_TOP ? 2 : 1;

		if (nargs == 0 && (pop3_verb_flags(c->verb) & POP3_F_MSG_OPT))
			return 0;
		if (nargs != want)
			return refuse(r, POP3_CODE_NONE, c->verb == POP3_TOP ?
			    "Syntax: TOP message lines" : "Syntax: command message-number", 1);
		if (parse_number(words[0], UINT32_MAX, &v) < 0)
			return refuse(r, POP3_CODE_NONE, "Invalid message number", 1);
		c->has_msg = 1;
		c->msg = (uint32_t)v;
		if (c->verb == POP3_TOP) {
			if (parse_number(words[1], INT64_MAX, &v) < 0)
				return refuse(r, POP3_CODE_NONE, "Invalid number of lines", 1);
			c->lines = (int64_t)v;
		}
		return 0;
	}
	if (nargs != 0)
		return refuse(r, POP3_CODE_NONE, "Syntax error: no argument expected", 1);
	return 0;
}

int
pop3_check(const struct pop3_view *v, const struct pop3_cmd *c, struct pop3_refusal *r)
{
	unsigned flags = pop3_verb_flags(c->verb);

	if (c->verb == POP3_UNKNOWN)
		return refuse(r, POP3_CODE_NONE, "Unknown command", 1);
	if (v->state == POP3_AUTHORIZATION && !(flags & POP3_F_AUTHZ))
		return refuse(r, POP3_CODE_NONE, "Not logged in", 1);
	if (v->state == POP3_TRANSACTION && !(flags & POP3_F_TRANS))
		return refuse(r, POP3_CODE_NONE, "Command not valid in TRANSACTION state", 1);

	switch (c->verb) {
	case POP3_APOP:
		return refuse(r, POP3_CODE_NONE, "APOP not supported", 1);
	case POP3_USER:
	case POP3_PASS:
		if (!v->plaintext_ok)
			return refuse(r, POP3_CODE_AUTH, "Plaintext authentication "
			    "disallowed on non-secure connections: use STLS first", 1);
		if (c->verb == POP3_PASS && !v->have_user)
			return refuse(r, POP3_CODE_NONE, "No user name given: send USER first", 1);
		return 0;
	case POP3_AUTH:
		if (c->mech[0] == '\0')
			return 0;
		if (!sasl_mech_known(c->mech))
			return refuse(r, POP3_CODE_NONE, "Unsupported authentication mechanism", 1);
		if (!v->plaintext_ok)
			return refuse(r, POP3_CODE_AUTH, "Plaintext authentication "
			    "disallowed on non-secure connections: use STLS first", 1);
		return 0;
	case POP3_STLS:
		if (v->tls)
			return refuse(r, POP3_CODE_NONE, "Already in TLS", 1);
		if (!v->tls_available)
			return refuse(r, POP3_CODE_SYS_PERM, "TLS not available", 1);
		return 0;
	default:
		break;
	}
	if (c->has_msg) {
		/* A client's honest mistake: not counted as an error. */
		if (c->msg == 0 || c->msg > v->nmsgs)
			return refuse(r, POP3_CODE_NONE, "No such message", 0);
		if (v->deleted != NULL && v->deleted[c->msg - 1])
			return refuse(r, POP3_CODE_NONE, "Message is deleted", 0);
	}
	return 0;
}
