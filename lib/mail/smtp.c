/*
 * smtp: the check step for every SMTP command a stranger can send.  The
 * grammar is RFC 5321's (Path, Mailbox, Dot-string / Quoted-string local
 * parts, domains and address literals, source routes), widened by RFC
 * 6531 for UTF-8 when SMTPUTF8 is in force, plus the parameters of SIZE,
 * 8BITMIME, SMTPUTF8, DSN, CHUNKING and AUTH.  Nothing here does I/O or
 * keeps state: input is a NUL-terminated argument, output an SMTP reply or
 * freshly allocated results.  Character classes are ASCII tests, never
 * <ctype.h>, so the locale cannot change what is accepted.
 *
 * Tolerated for real clients, as Postfix does: spaces or tabs before the
 * verb and around the argument, spaces after "FROM:" / "TO:", several
 * spaces between parameters, and '_' in a HELO name.  Not tolerated: a
 * path without angle brackets, a mailbox without a domain (except RCPT
 * <postmaster>), address literals with leading zeros ("[010.0.0.1]", which
 * some resolvers read as octal), general (tagged) address literals.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ascii.h"
#include "buf.h"
#include "smtp.h"
#include "xalloc.h"

/* Longest value RFC 3461 allows for ENVID and ORCPT (as sent, encoded). */
#define ENVID_MAX 100
#define ORCPT_MAX 500
/* Longest AUTH mechanism name (RFC 4422 3.1). */
#define MECH_MAX 20
/* Digits in a SIZE or BDAT chunk size (RFC 1870: 1*20DIGIT). */
#define SIZE_DIGITS_MAX 20

/* Outcome of parsing a path or a domain. */
enum addr_err {
	ADDR_OK = 0,
	ADDR_SYNTAX,		/* grammar violated */
	ADDR_LOCAL_LONG,	/* local part over SMTP_MAX_LOCAL */
	ADDR_DOMAIN_LONG,	/* domain over SMTP_MAX_DOMAIN, label over 63 */
	ADDR_PATH_LONG,		/* whole path over SMTP_MAX_PATH */
};

/* What a path may be: MAIL allows <>, RCPT allows <postmaster>. */
#define PATH_NULL_OK		0x1
#define PATH_POSTMASTER_OK	0x2

/* The MAIL and RCPT parameters seen so far, to refuse repeats. */
#define SEEN_SIZE	0x01
#define SEEN_BODY	0x02
#define SEEN_SMTPUTF8	0x04
#define SEEN_RET	0x08
#define SEEN_ENVID	0x10
#define SEEN_AUTH	0x20
#define SEEN_NOTIFY	0x40
#define SEEN_ORCPT	0x80

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "HELO", SMTP_HELO }, { "EHLO", SMTP_EHLO },
	{ "MAIL", SMTP_MAIL }, { "RCPT", SMTP_RCPT },
	{ "DATA", SMTP_DATA }, { "BDAT", SMTP_BDAT },
	{ "RSET", SMTP_RSET }, { "NOOP", SMTP_NOOP },
	{ "QUIT", SMTP_QUIT }, { "HELP", SMTP_HELP },
	{ "VRFY", SMTP_VRFY }, { "EXPN", SMTP_EXPN },
	{ "STARTTLS", SMTP_STARTTLS }, { "AUTH", SMTP_AUTH },
};

int
smtp_refuse(struct smtp_reply *r, int code, const char *esc, const char *text)
{
	r->code = code;
	r->esc = esc;
	r->text = text;
	return -1;
}

/* ASCII letter or digit. */
static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* ASCII digit. */
static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext (ASCII part). */
static int
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* ASCII upper-casing, independent of the locale. */
static unsigned char
to_upper(unsigned char c)
{
	return c >= 'a' && c <= 'z' ? (unsigned char)(c - 'a' + 'A') : c;
}

/* Whether the n bytes at s equal the upper-case word w, ignoring case. */
static int
word_eq(const char *s, size_t n, const char *w)
{
	size_t i;

	if (strlen(w) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (to_upper((unsigned char)s[i]) != (unsigned char)w[i])
			return 0;
	return 1;
}

/* Whether s starts with the upper-case word w, ignoring case. */
static int
prefix_eq(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);

	return n >= wl && word_eq(s, wl, w);
}

/*
 * Length of the strict UTF-8 sequence of a non-ASCII lead byte at p with
 * avail bytes available, or 0 if it is not one (overlong, surrogate,
 * above U+10FFFF, truncated, stray continuation byte).
 */
static size_t
utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* Whether len bytes at s are strict UTF-8 with no NUL. */
int
smtp_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if (p[i] == '\0')
			return 0;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_seq(p + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* Whether the n bytes at s are all ASCII. */
static int
all_ascii(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/*
 * Whether decoded parameter text may be kept: no control characters and
 * no DEL; non-ASCII only when utf8 is set, and then valid UTF-8.
 */
static int
text_ok(const char *s, int utf8)
{
	size_t i, n = strlen(s);

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	if (all_ascii(s, n))
		return 1;
	return utf8 && smtp_utf8_valid(s, n);
}

/*
 * Decode xtext; with utf8 set, raw UTF-8 sequences are also accepted
 * (RFC 6533 unitext).  NULL for a bad '+' escape, a character outside
 * xchar, or an escape that decodes to NUL.
 */
static char *
xtext_decode(const char *s, size_t len, int utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	struct buf b;
	size_t i = 0, n;
	int hi, lo;

	buf_init(&b, 0);
	if (buf_reserve(&b, len) < 0) {
		buf_free(&b);
		return NULL;
	}
	while (i < len) {
		if (p[i] == '+') {
			if (len - i < 3 ||
			    (hi = ascii_hex_value(p[i + 1])) < 0 ||
			    (lo = ascii_hex_value(p[i + 2])) < 0 ||
			    (hi | lo) == 0)
				goto bad;
			if (buf_putc(&b, (char)(hi << 4 | lo)) < 0)
				goto bad;
			i += 3;
		} else if (p[i] >= 33 && p[i] <= 126 && p[i] != '=') {
			if (buf_putc(&b, (char)p[i]) < 0)
				goto bad;
			i++;
		} else if (utf8 && p[i] >= 0x80 && (n = utf8_seq(p + i, len - i)) > 0) {
			if (buf_append(&b, p + i, n) < 0)
				goto bad;
			i += n;
		} else
			goto bad;
	}
	return buf_steal(&b);
bad:
	buf_free(&b);
	return NULL;
}

/* Decode xtext (ASCII xchars and +HH only) into a malloc'd string. */
char *
smtp_xtext_decode(const char *s, size_t len)
{
	return xtext_decode(s, len, 0);
}

/* Encode s as xtext with upper-case hex, into a malloc'd string. */
char *
smtp_xtext_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, n = strlen(s), o = 0;
	char *out = xmalloc(xadd(xmul(n, 3), 1));

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 33 && c <= 126 && c != '+' && c != '=')
			out[o++] = (char)c;
		else {
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
	return out;
}

/*
 * Parse 1 to SIZE_DIGITS_MAX decimal digits.  0 with *v_r set, -1 for a
 * syntax error, 1 for a syntactically valid number above UINT64_MAX.
 */
static int
parse_u64(const char *s, size_t n, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;
	int over = 0;

	if (n == 0 || n > SIZE_DIGITS_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			over = 1;
	}
	if (over)
		return 1;
	*v_r = v;
	return 0;
}

/* Validate an address literal's content (between the brackets). */
static int
check_literal(const char *s, size_t n)
{
	char tmp[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];

	if (prefix_eq(s, n, "IPV6:")) {
		s += 5;
		n -= 5;
		if (n == 0 || n >= sizeof(tmp))
			return -1;
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		return inet_pton(AF_INET6, tmp, bin) == 1 ? 0 : -1;
	}
	/* Dotted quad; general literals (tag:content) are not supported.
	 * inet_pton refuses leading zeros, which some resolvers read as
	 * octal, so "[010.0.0.1]" is refused too. */
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET, tmp, bin) == 1 ? 0 : -1;
}

/*
 * Validate a domain (sub-domains or an address literal) of n bytes.
 * utf8 allows U-labels; underscore allows '_' in labels (HELO only).
 */
static enum addr_err
check_domain(const char *s, size_t n, int utf8, int underscore)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start, k;
	int ascii;

	if (n == 0)
		return ADDR_SYNTAX;
	if (p[0] == '[') {
		if (n < 3 || p[n - 1] != ']' || check_literal(s + 1, n - 2) < 0)
			return ADDR_SYNTAX;
		return n > SMTP_MAX_DOMAIN ? ADDR_DOMAIN_LONG : ADDR_OK;
	}
	for (;;) {
		/* One label: starts and ends with a letter or digit. */
		start = i;
		ascii = 1;
		while (i < n && p[i] != '.') {
			if (is_alnum(p[i]) || p[i] == '-' || (underscore && p[i] == '_'))
				i++;
			else if (utf8 && p[i] >= 0x80 && (k = utf8_seq(p + i, n - i)) > 0) {
				ascii = 0;
				i += k;
			} else
				return ADDR_SYNTAX;
		}
		if (i == start || p[start] == '-' || p[i - 1] == '-')
			return ADDR_SYNTAX;
		if (ascii && i - start > 63)
			return ADDR_DOMAIN_LONG;
		if (i == n)
			break;
		i++;		/* the dot; a trailing one leaves an empty label */
	}
	return n > SMTP_MAX_DOMAIN ? ADDR_DOMAIN_LONG : ADDR_OK;
}

/*
 * Scan a domain in a path starting at s[*pos]: an address literal up to
 * its ']' or a run of label characters and dots.  Returns its length
 * and advances *pos; the caller validates it with check_domain().
 */
static size_t
scan_domain(const char *s, size_t len, size_t *pos)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = *pos;

	if (i < len && p[i] == '[') {
		/* dcontent is %d33-90 / %d94-126: no brackets, no backslash */
		for (i++; i < len && p[i] >= 33 && p[i] <= 126 && p[i] != '[' &&
		    p[i] != '\\' && p[i] != ']'; i++)
			;
		if (i < len && p[i] == ']')
			i++;
	} else
		while (i < len && (is_alnum(p[i]) || p[i] == '-' || p[i] == '.' ||
		    p[i] >= 0x80))
			i++;
	len = i - *pos;
	*pos = i;
	return len;
}

/*
 * Scan a Dot-string at s[*pos] (atoms of atext, UTF-8 too when utf8 is
 * set, separated by single dots).  0 and *pos past it, or -1.
 */
static int
scan_dot_string(const char *s, size_t len, size_t *pos, int utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = *pos, start, k;

	for (;;) {
		start = i;
		while (i < len) {
			if (is_atext(p[i]))
				i++;
			else if (utf8 && p[i] >= 0x80 && (k = utf8_seq(p + i, len - i)) > 0)
				i += k;
			else
				break;
		}
		if (i == start)
			return -1;	/* empty atom: leading, trailing or double dot */
		if (i < len && p[i] == '.') {
			i++;
			continue;
		}
		break;
	}
	*pos = i;
	return 0;
}

/*
 * Scan a Quoted-string at s[*pos] (which is '"'), appending its unescaped
 * content to *content.  0 and *pos past the closing quote, or -1.
 */
static int
scan_quoted(const char *s, size_t len, size_t *pos, int utf8, struct buf *content)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = *pos + 1, k;

	while (i < len && p[i] != '"') {
		if (p[i] == '\\') {
			/* quoted-pairSMTP = "\" %d32-126 */
			if (i + 1 >= len || p[i + 1] < 32 || p[i + 1] > 126)
				return -1;
			if (buf_putc(content, (char)p[i + 1]) < 0)
				return -1;
			i += 2;
		} else if (p[i] >= 32 && p[i] <= 126) {
			if (buf_putc(content, (char)p[i]) < 0)
				return -1;
			i++;
		} else if (utf8 && p[i] >= 0x80 && (k = utf8_seq(p + i, len - i)) > 0) {
			if (buf_append(content, p + i, k) < 0)
				return -1;
			i += k;
		} else
			return -1;
	}
	if (i >= len)
		return -1;
	*pos = i + 1;
	return 0;
}

/*
 * Parse a Path at s[*pos] (which must be '<'): "<" [A-d-l ":"] Mailbox
 * ">", or "<>" / "<postmaster>" as flags allow.  Any UTF-8 is accepted
 * and reported in *utf8_r, for the caller to weigh against SMTPUTF8.  On
 * success *addr_r is the malloc'd mailbox: source route dropped, a quoted
 * local part unquoted when its content is a valid Dot-string, otherwise
 * as sent.
 */
static enum addr_err
parse_path(const char *s, size_t len, size_t *pos, int flags, char **addr_r,
    int *utf8_r)
{
	const unsigned char *p = (const unsigned char *)s;
	struct buf content, out;
	size_t start = *pos, i = *pos + 1, lstart, llen, dstart, dlen, k;
	enum addr_err err = ADDR_SYNTAX, e;
	int route = 0;

	if (i > len || p[start] != '<')
		return ADDR_SYNTAX;
	if (i < len && p[i] == '>') {
		if (!(flags & PATH_NULL_OK))
			return ADDR_SYNTAX;
		*addr_r = xstrdup("");
		*utf8_r = 0;
		*pos = i + 1;
		return ADDR_OK;
	}
	/* Source route: "@one,@two:", checked and then dropped. */
	while (i < len && p[i] == '@') {
		route = 1;
		i++;
		dstart = i;
		dlen = scan_domain(s, len, &i);
		if ((e = check_domain(s + dstart, dlen, 1, 0)) != ADDR_OK)
			return e;
		if (i < len && p[i] == ',') {
			if (i + 1 >= len || p[i + 1] != '@')
				return ADDR_SYNTAX;
			i++;
			continue;
		}
		if (i >= len || p[i] != ':')
			return ADDR_SYNTAX;
		i++;
		break;
	}

	buf_init(&content, 0);
	buf_init(&out, SMTP_MAX_PATH);
	lstart = i;
	if (i < len && p[i] == '"') {
		if (scan_quoted(s, len, &i, 1, &content) < 0)
			goto done;
	} else if (scan_dot_string(s, len, &i, 1) < 0)
		goto done;
	llen = i - lstart;

	if (i < len && p[i] == '>' && (flags & PATH_POSTMASTER_OK) && !route &&
	    word_eq(s + lstart, llen, "POSTMASTER")) {
		*addr_r = xstrdup("postmaster");
		*utf8_r = 0;
		*pos = i + 1;
		err = ADDR_OK;
		goto done;
	}
	if (i >= len || p[i] != '@')
		goto done;
	i++;
	dstart = i;
	dlen = scan_domain(s, len, &i);
	if ((e = check_domain(s + dstart, dlen, 1, 0)) != ADDR_OK) {
		err = e;
		goto done;
	}
	if (i >= len || p[i] != '>')
		goto done;
	i++;

	if (llen > SMTP_MAX_LOCAL) {
		err = ADDR_LOCAL_LONG;
		goto done;
	}
	if (i - start > SMTP_MAX_PATH) {
		err = ADDR_PATH_LONG;
		goto done;
	}

	/* A quoted local part that needs no quotes is stored bare. */
	if (p[lstart] == '"') {
		k = 0;
		if (content.len > 0 && memchr(content.data, '\0', content.len) == NULL &&
		    scan_dot_string(content.data, content.len, &k, 1) == 0 &&
		    k == content.len)
			err = buf_append(&out, content.data, content.len) < 0 ?
			    ADDR_PATH_LONG : ADDR_OK;
		else
			err = buf_append(&out, s + lstart, llen) < 0 ?
			    ADDR_PATH_LONG : ADDR_OK;
	} else
		err = buf_append(&out, s + lstart, llen) < 0 ? ADDR_PATH_LONG : ADDR_OK;
	if (err == ADDR_OK && (buf_putc(&out, '@') < 0 ||
	    buf_append(&out, s + dstart, dlen) < 0))
		err = ADDR_PATH_LONG;
	if (err == ADDR_OK) {
		*utf8_r = !all_ascii(s + start, i - start);
		*addr_r = buf_steal(&out);
		*pos = i;
	}
done:
	buf_free(&content);
	buf_free(&out);
	return err;
}

/* Turn a path error into the reply for a sender (rcpt = 0) or recipient. */
static int
refuse_path(struct smtp_reply *r, enum addr_err err, int rcpt)
{
	switch (err) {
	case ADDR_LOCAL_LONG:
		return smtp_refuse(r, 501, "5.5.2", "Local part too long");
	case ADDR_DOMAIN_LONG:
		return smtp_refuse(r, 501, "5.5.2", "Domain name too long");
	case ADDR_PATH_LONG:
		return smtp_refuse(r, 501, "5.5.2", "Path too long");
	case ADDR_OK:
	case ADDR_SYNTAX:
		break;
	}
	return rcpt ? smtp_refuse(r, 501, "5.1.3", "Bad recipient address syntax") :
	    smtp_refuse(r, 501, "5.1.7", "Bad sender address syntax");
}

/* One "keyword[=value]" taken from an argument. */
struct param {
	const char *key;
	size_t keylen;
	const char *value;	/* NULL when there is no "=" */
	size_t valuelen;
};

/*
 * Take the next parameter from s[*pos] (spaces before it skipped).  1
 * with *pm filled, 0 at the end of the argument, -1 for a malformed
 * keyword or an empty value.
 */
static int
next_param(const char *s, size_t len, size_t *pos, struct param *pm)
{
	size_t i = *pos, k;

	while (i < len && s[i] == ' ')
		i++;
	if (i == len) {
		*pos = i;
		return 0;
	}
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	k = i;
	while (i < len && (is_alnum((unsigned char)s[i]) || (i > k && s[i] == '-')))
		i++;
	pm->key = s + k;
	pm->keylen = i - k;
	pm->value = NULL;
	pm->valuelen = 0;
	if (pm->keylen == 0)
		return -1;
	if (i < len && s[i] == '=') {
		k = ++i;
		while (i < len && s[i] != ' ')
			i++;
		pm->value = s + k;
		pm->valuelen = i - k;
		if (pm->valuelen == 0)
			return -1;
	}
	if (i < len && s[i] != ' ')
		return -1;
	*pos = i;
	return 1;
}

/* Record a parameter as seen; 501 5.5.4 if it already was (RFC 3461 4). */
static int
once(unsigned *seen, unsigned bit, struct smtp_reply *r)
{
	if (*seen & bit)
		return smtp_refuse(r, 501, "5.5.4", "Duplicate parameter");
	*seen |= bit;
	return 0;
}

/* Check "FROM:" / "TO:" and the '<' that must follow (after any spaces);
 * *pos is left at the '<'. */
static int
path_start(const char *arg, size_t len, const char *word, size_t *pos)
{
	size_t i = strlen(word);

	if (!prefix_eq(arg, len, word))
		return -1;
	while (i < len && arg[i] == ' ')
		i++;
	*pos = i;
	return 0;
}

/* Length of arg without trailing spaces. */
static size_t
trimmed_len(const char *arg)
{
	size_t n = strlen(arg);

	while (n > 0 && (arg[n - 1] == ' ' || arg[n - 1] == '\t'))
		n--;
	return n;
}

/* Whether a path is followed by the end or a space. */
static int
path_end_ok(const char *s, size_t len, size_t pos)
{
	return pos == len || s[pos] == ' ';
}

/* Apply one MAIL parameter to *m.  0, or -1 with *r. */
static int
mail_param(const struct param *pm, const struct smtp_ext *ext, unsigned *seen,
    struct smtp_mail *m, int *oversize, struct smtp_reply *r)
{
	const char *v = pm->value;
	size_t vn = pm->valuelen;
	int rc;

	if (word_eq(pm->key, pm->keylen, "SIZE")) {
		if (once(seen, SEEN_SIZE, r) < 0)
			return -1;
		if (v == NULL || (rc = parse_u64(v, vn, &m->size)) < 0)
			return smtp_refuse(r, 501, "5.5.4", "Bad SIZE syntax");
		if (rc > 0 || (ext->max_size != 0 && m->size > ext->max_size))
			*oversize = 1;
		return 0;
	}
	if (word_eq(pm->key, pm->keylen, "BODY")) {
		if (once(seen, SEEN_BODY, r) < 0)
			return -1;
		if (v != NULL && word_eq(v, vn, "7BIT"))
			m->body = SMTP_BODY_7BIT;
		else if (v != NULL && word_eq(v, vn, "8BITMIME"))
			m->body = SMTP_BODY_8BITMIME;
		else if (v != NULL && word_eq(v, vn, "BINARYMIME"))
			return smtp_refuse(r, 555, "5.5.4", "BODY=BINARYMIME is not supported");
		else
			return smtp_refuse(r, 501, "5.5.4", "Bad BODY value");
		return 0;
	}
	if (word_eq(pm->key, pm->keylen, "SMTPUTF8")) {
		if (once(seen, SEEN_SMTPUTF8, r) < 0)
			return -1;
		if (v != NULL)
			return smtp_refuse(r, 501, "5.5.4", "SMTPUTF8 takes no value");
		m->smtputf8 = 1;
		return 0;
	}
	if (word_eq(pm->key, pm->keylen, "RET")) {
		if (once(seen, SEEN_RET, r) < 0)
			return -1;
		if (v != NULL && word_eq(v, vn, "FULL"))
			m->ret = SMTP_RET_FULL;
		else if (v != NULL && word_eq(v, vn, "HDRS"))
			m->ret = SMTP_RET_HDRS;
		else
			return smtp_refuse(r, 501, "5.5.4", "Bad RET value");
		return 0;
	}
	if (word_eq(pm->key, pm->keylen, "ENVID")) {
		if (once(seen, SEEN_ENVID, r) < 0)
			return -1;
		if (v == NULL || vn > ENVID_MAX ||
		    (m->envid = xtext_decode(v, vn, 0)) == NULL || !text_ok(m->envid, 0))
			return smtp_refuse(r, 501, "5.5.4", "Bad ENVID value");
		return 0;
	}
	if (word_eq(pm->key, pm->keylen, "AUTH")) {
		if (once(seen, SEEN_AUTH, r) < 0)
			return -1;
		/* Decoded now; UTF-8 is weighed once SMTPUTF8 is known. */
		if (v == NULL || (m->auth = xtext_decode(v, vn, 1)) == NULL ||
		    m->auth[0] == '\0' || !text_ok(m->auth, 1))
			return smtp_refuse(r, 501, "5.5.4", "Bad AUTH value");
		return 0;
	}
	return smtp_refuse(r, 555, "5.5.4", "Unsupported MAIL parameter");
}

/* Free what smtp_parse_mail allocated; safe to call twice. */
void
smtp_mail_free(struct smtp_mail *m)
{
	if (m == NULL)
		return;
	xfree(&m->sender);
	xfree(&m->envid);
	xfree(&m->auth);
}

/* Check the argument of MAIL: the path, then the parameters. */
int
smtp_parse_mail(const char *arg, const struct smtp_ext *ext, struct smtp_mail *m_r,
    struct smtp_reply *reply_r)
{
	static const struct smtp_ext helo = { 0, 0 };
	struct smtp_mail m;
	struct param pm;
	size_t len = trimmed_len(arg), pos;
	enum addr_err err;
	unsigned seen = 0;
	int utf8 = 0, oversize = 0, rc;

	if (ext == NULL)
		ext = &helo;
	memset(&m, 0, sizeof(m));
	m.body = SMTP_BODY_7BIT;
	m.ret = SMTP_RET_NONE;
	if (path_start(arg, len, "FROM:", &pos) < 0)
		return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
	if ((err = parse_path(arg, len, &pos, PATH_NULL_OK, &m.sender, &utf8)) != ADDR_OK)
		return refuse_path(reply_r, err, 0);
	if (!path_end_ok(arg, len, pos)) {
		smtp_mail_free(&m);
		return refuse_path(reply_r, ADDR_SYNTAX, 0);
	}
	while ((rc = next_param(arg, len, &pos, &pm)) != 0) {
		if (rc < 0) {
			smtp_mail_free(&m);
			return smtp_refuse(reply_r, 501, "5.5.4", "Bad parameter syntax");
		}
		if (!ext->esmtp) {
			smtp_mail_free(&m);
			return smtp_refuse(reply_r, 555, "5.5.4",
			    "MAIL parameters are only allowed after EHLO");
		}
		if (mail_param(&pm, ext, &seen, &m, &oversize, reply_r) < 0) {
			smtp_mail_free(&m);
			return -1;
		}
	}
	if ((utf8 || (m.auth != NULL && !all_ascii(m.auth, strlen(m.auth)))) &&
	    !m.smtputf8) {
		smtp_mail_free(&m);
		return smtp_refuse(reply_r, 553, "5.6.7",
		    "Must declare SMTPUTF8 to send unicode address");
	}
	if (oversize) {
		smtp_mail_free(&m);
		return smtp_refuse(reply_r, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
	}
	*m_r = m;
	return 0;
}

/* Parse the value of NOTIFY (RFC 3461 4.1) into SMTP_NOTIFY_* bits. */
static int
parse_notify(const char *v, size_t n, unsigned *bits_r)
{
	unsigned bits = 0, bit;
	size_t i = 0, k;

	if (word_eq(v, n, "NEVER")) {
		*bits_r = SMTP_NOTIFY_NEVER;
		return 0;
	}
	for (;;) {
		for (k = i; i < n && v[i] != ','; i++)
			;
		if (word_eq(v + k, i - k, "SUCCESS"))
			bit = SMTP_NOTIFY_SUCCESS;
		else if (word_eq(v + k, i - k, "FAILURE"))
			bit = SMTP_NOTIFY_FAILURE;
		else if (word_eq(v + k, i - k, "DELAY"))
			bit = SMTP_NOTIFY_DELAY;
		else
			return -1;	/* includes NEVER in a list and empty items */
		if (bits & bit)
			return -1;
		bits |= bit;
		if (i == n)
			break;
		i++;
	}
	*bits_r = bits;
	return 0;
}

/*
 * Parse the value of ORCPT (RFC 3461 4.2, RFC 6533 3): "rfc822;xtext" or
 * "utf-8;xtext" (raw UTF-8 allowed with SMTPUTF8).  Returns the malloc'd
 * "type;decoded" with the type in lower case, or NULL.
 */
static char *
parse_orcpt(const char *v, size_t n, int smtputf8)
{
	const char *semi = memchr(v, ';', n);
	const char *type;
	char *dec, *out;
	size_t tn;
	int utf8;

	if (n > ORCPT_MAX || semi == NULL)
		return NULL;
	tn = (size_t)(semi - v);
	if (word_eq(v, tn, "RFC822")) {
		type = "rfc822";
		utf8 = 0;
	} else if (word_eq(v, tn, "UTF-8")) {
		type = "utf-8";
		utf8 = smtputf8;
	} else
		return NULL;
	if (n - tn - 1 == 0 || (dec = xtext_decode(semi + 1, n - tn - 1, utf8)) == NULL)
		return NULL;
	if (!text_ok(dec, utf8)) {
		free(dec);
		return NULL;
	}
	out = xasprintf("%s;%s", type, dec);
	free(dec);
	return out;
}

/* Free what smtp_parse_rcpt allocated; safe to call twice. */
void
smtp_rcpt_free(struct smtp_rcpt *r)
{
	if (r == NULL)
		return;
	xfree(&r->rcpt);
	xfree(&r->orcpt);
}

/* Check the argument of RCPT: the path, then NOTIFY and ORCPT. */
int
smtp_parse_rcpt(const char *arg, const struct smtp_ext *ext, int smtputf8,
    struct smtp_rcpt *r_r, struct smtp_reply *reply_r)
{
	static const struct smtp_ext helo = { 0, 0 };
	struct smtp_rcpt r;
	struct param pm;
	size_t len = trimmed_len(arg), pos;
	enum addr_err err;
	unsigned seen = 0;
	int utf8 = 0, rc;

	if (ext == NULL)
		ext = &helo;
	memset(&r, 0, sizeof(r));
	if (path_start(arg, len, "TO:", &pos) < 0)
		return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: RCPT TO:<address>");
	if ((err = parse_path(arg, len, &pos, PATH_POSTMASTER_OK, &r.rcpt, &utf8)) != ADDR_OK)
		return refuse_path(reply_r, err, 1);
	if (!path_end_ok(arg, len, pos)) {
		smtp_rcpt_free(&r);
		return refuse_path(reply_r, ADDR_SYNTAX, 1);
	}
	while ((rc = next_param(arg, len, &pos, &pm)) != 0) {
		if (rc < 0) {
			smtp_rcpt_free(&r);
			return smtp_refuse(reply_r, 501, "5.5.4", "Bad parameter syntax");
		}
		if (!ext->esmtp) {
			smtp_rcpt_free(&r);
			return smtp_refuse(reply_r, 555, "5.5.4",
			    "RCPT parameters are only allowed after EHLO");
		}
		if (word_eq(pm.key, pm.keylen, "NOTIFY")) {
			rc = once(&seen, SEEN_NOTIFY, reply_r);
			if (rc == 0 && (pm.value == NULL ||
			    parse_notify(pm.value, pm.valuelen, &r.notify) < 0))
				rc = smtp_refuse(reply_r, 501, "5.5.4", "Bad NOTIFY value");
		} else if (word_eq(pm.key, pm.keylen, "ORCPT")) {
			rc = once(&seen, SEEN_ORCPT, reply_r);
			if (rc == 0 && (pm.value == NULL || (r.orcpt =
			    parse_orcpt(pm.value, pm.valuelen, smtputf8)) == NULL))
				rc = smtp_refuse(reply_r, 501, "5.5.4", "Bad ORCPT value");
		} else
			rc = smtp_refuse(reply_r, 555, "5.5.4", "Unsupported RCPT parameter");
		if (rc < 0) {
			smtp_rcpt_free(&r);
			return -1;
		}
	}
	if (utf8 && !smtputf8) {
		smtp_rcpt_free(&r);
		return smtp_refuse(reply_r, 553, "5.6.7",
		    "Must declare SMTPUTF8 to send unicode address");
	}
	*r_r = r;
	return 0;
}

/* Split a command line into its verb and argument. */
int
smtp_parse_command(const char *line, size_t len, enum smtp_verb *verb_r,
    const char **arg_r, struct smtp_reply *reply_r)
{
	const unsigned char *p = (const unsigned char *)line;
	size_t i = 0, v, vn, k;

	if (len > SMTP_MAX_COMMAND)
		return smtp_refuse(reply_r, 500, "5.5.2", "Line too long");
	if (memchr(line, '\0', len) != NULL)
		return smtp_refuse(reply_r, 500, "5.5.2", "NUL byte in command");
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	for (v = i; i < len && p[i] != ' ' && p[i] != '\t'; i++)
		if (p[i] >= 0x80)
			return smtp_refuse(reply_r, 500, "5.5.2", "Non-ASCII byte in command");
	vn = i - v;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	*verb_r = SMTP_UNKNOWN;
	for (k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		if (word_eq(line + v, vn, verbs[k].name)) {
			*verb_r = verbs[k].verb;
			break;
		}
	*arg_r = line + i;
	return 0;
}

/* Check the argument of HELO/EHLO. */
int
smtp_parse_helo(const char *arg, struct smtp_reply *reply_r)
{
	size_t n = trimmed_len(arg);

	if (n == 0)
		return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: EHLO hostname");
	/* Underscores are tolerated: many Windows hosts have them in their
	 * names.  UTF-8 is not: SMTPUTF8 is not negotiated yet. */
	if (check_domain(arg, n, 0, 1) != ADDR_OK)
		return smtp_refuse(reply_r, 501, "5.5.4", "Invalid domain name");
	return 0;
}

/* Check the argument of BDAT: a chunk size and an optional LAST. */
int
smtp_parse_bdat(const char *arg, uint64_t *size_r, int *last_r,
    struct smtp_reply *reply_r)
{
	size_t n = trimmed_len(arg), i = 0, k;
	uint64_t size;
	int last = 0;

	while (i < n && is_digit((unsigned char)arg[i]))
		i++;
	if (parse_u64(arg, i, &size) != 0)
		return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: BDAT size [LAST]");
	if (i < n) {
		if (arg[i] != ' ')
			return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		for (k = i; k < n && arg[k] == ' '; k++)
			;
		if (!word_eq(arg + k, n - k, "LAST"))
			return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		last = 1;
	}
	*size_r = size;
	*last_r = last;
	return 0;
}

/* Whether the n bytes at s are base64 (RFC 4648, padded), or "=" alone. */
static int
is_base64(const char *s, size_t n)
{
	size_t i, pad = 0;

	if (n == 1 && s[0] == '=')
		return 1;
	if (n == 0 || n % 4 != 0)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || !(is_alnum(c) || c == '+' || c == '/'))
			return 0;
	}
	return pad <= 2;
}

/* Check the argument of AUTH: a mechanism and an optional response. */
int
smtp_parse_auth(const char *arg, char *mech, const char **initial_r,
    struct smtp_reply *reply_r)
{
	size_t n = strlen(arg), i, k;

	/* Trailing spaces are only trimmed after a lone mechanism: the
	 * initial response is handed back as a pointer into arg. */
	for (i = 0; i < n && (is_alnum((unsigned char)arg[i]) || arg[i] == '-' ||
	    arg[i] == '_'); i++)
		;
	if (i == 0 || i > MECH_MAX)
		return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
	if (i < n && arg[i] != ' ')
		return smtp_refuse(reply_r, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
	for (k = i; k < n && arg[k] == ' '; k++)
		;
	if (k < n && !is_base64(arg + k, n - k))
		return smtp_refuse(reply_r, 501, "5.5.4", "Bad initial response");
	*initial_r = k < n ? arg + k : NULL;
	for (k = 0; k < i; k++)
		mech[k] = (char)to_upper((unsigned char)arg[k]);
	mech[i] = '\0';
	return 0;
}

int
smtp_is_field(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == ':')
			return i > 0;
		if (c < 33 || c > 126)
			return 0;
	}
	return 0;
}
