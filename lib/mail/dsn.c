/*
 * dsn: decide whether a delivery status notification is due, and write
 * one as an RFC 3464 multipart/report.  The format is described at the
 * top of dsn.h.  Output is staged in a small buffer and handed to the
 * caller's sink; the returned message is read with pread in chunks, once
 * to choose the boundary and the content type, once to copy it.
 */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dsn.h"
#include "log.h"
#include "smtp.h"
#include "xalloc.h"

#define CHUNK		(64 * 1024)	/* bytes per pread */
#define FLUSH_AT	(16 * 1024)	/* staged output handed to the sink */
#define VALUE_MAX	900		/* output cap on one untrusted value */
#define HOST_MAX	255
#define FOLD_AT		78
#define BOUNDARY_TRIES	8
#define BOUNDARY_SIZE	80		/* room for a boundary and its NUL */

/* The staged output and where it goes. */
struct out {
	struct buf b;
	dsn_write_fn *fn;
	void *ctx;
	uint64_t total;
	int failed;
};

/* What a scan of the returned content found. */
struct scan {
	uint64_t len;		/* bytes to return */
	int eightbit;		/* a byte >= 0x80 in them */
	int collide;		/* a line starting with "--" + boundary */
};

static const char *const action_names[] = {
	"failed", "delayed", "delivered", "relayed", "expanded",
};

const char *
dsn_action_name(enum dsn_action action)
{
	if ((unsigned)action >= sizeof(action_names) / sizeof(action_names[0]))
		log_panic("dsn: bad action %d", (int)action);
	return action_names[action];
}

int
dsn_notify_wants(unsigned notify, enum dsn_action action, int delay_warning)
{
	if (notify & SMTP_NOTIFY_NEVER)
		return 0;
	switch (action) {
	case DSN_ACTION_FAILED:
		return notify == 0 || (notify & SMTP_NOTIFY_FAILURE) != 0;
	case DSN_ACTION_DELAYED:
		return delay_warning &&
		    (notify == 0 || (notify & SMTP_NOTIFY_DELAY) != 0);
	case DSN_ACTION_DELIVERED:
	case DSN_ACTION_RELAYED:
	case DSN_ACTION_EXPANDED:
		return (notify & SMTP_NOTIFY_SUCCESS) != 0;
	}
	return 0;
}

enum dsn_route
dsn_route(const char *sender, const char *double_bounce, unsigned notify,
    enum dsn_action action, int delay_warning)
{
	if (double_bounce != NULL && double_bounce[0] != '\0' &&
	    strcasecmp(sender, double_bounce) == 0)
		return DSN_NONE;
	if (sender[0] == '\0')
		return action == DSN_ACTION_FAILED ? DSN_TO_POSTMASTER : DSN_NONE;
	return dsn_notify_wants(notify, action, delay_warning) ?
	    DSN_TO_SENDER : DSN_NONE;
}

/* --- output ------------------------------------------------------- */

/* Hand the staged bytes to the sink. */
static void
out_flush(struct out *o)
{
	if (o->b.len == 0)
		return;
	if (!o->failed && o->fn(o->ctx, o->b.data, o->b.len) < 0)
		o->failed = 1;
	o->total += o->b.len;
	buf_reset(&o->b);
}

/* Stage n bytes. */
static void
out_raw(struct out *o, const void *p, size_t n)
{
	if (buf_append(&o->b, p, n) < 0)
		o->failed = 1;
	if (o->b.len >= FLUSH_AT)
		out_flush(o);
}

/* Stage a C string. */
static void
out_puts(struct out *o, const char *s)
{
	out_raw(o, s, strlen(s));
}

/* Stage formatted text. */
static void __attribute__((format(printf, 2, 3)))
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&o->b, fmt, ap);
	va_end(ap);
	if (r < 0)
		o->failed = 1;
	if (o->b.len >= FLUSH_AT)
		out_flush(o);
}

/* Stage "Name: value\n", folded before spaces to keep lines near 78
 * columns.  value holds no LF and no run of spaces (see put_clean). */
static void
out_field(struct out *o, const char *name, const char *v, size_t len)
{
	size_t nlen = strlen(name), col = nlen + 2, i = 0, j;

	out_puts(o, name);
	out_puts(o, ": ");
	while (i < len) {
		for (j = i + 1; j < len && v[j] != ' '; j++)
			;
		if (v[i] == ' ' && col > nlen + 2 && col + (j - i) > FOLD_AT) {
			out_puts(o, "\n");
			col = 0;
		}
		out_raw(o, v + i, j - i);
		col += j - i;
		i = j;
	}
	out_puts(o, "\n");
}

/* Stage a field whose value is in a scratch buffer, then empty it. */
static void
out_field_buf(struct out *o, const char *name, struct buf *v)
{
	out_field(o, name, buf_cstr(v), v->len);
	buf_reset(v);
}

/* --- text ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left) and its code
 * point, or 0 if the bytes there are not valid UTF-8. */
static size_t
utf8_seq(const unsigned char *s, size_t n, uint32_t *cp_r)
{
	uint32_t cp, min;
	size_t len, i;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		len = 2, cp = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, cp = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

/* Whether s has a byte outside printable ASCII and space. */
static int
not_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 1;
	return 0;
}

/* Whether s has a byte >= 0x80. */
static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * Append untrusted text to v for a header value or a text line: printable
 * ASCII kept, valid UTF-8 kept when utf8 is set, other bytes as \xHH;
 * control characters become spaces, runs of spaces collapse, leading and
 * trailing spaces go.  After about cap output bytes "..." ends it.
 */
static void
put_clean(struct buf *v, const char *s, size_t cap, int utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), start = v->len, i = 0, sl;
	uint32_t cp;
	int space = 0, r = 0;

	while (i < n && r == 0) {
		if (v->len - start >= cap) {
			r = buf_puts(v, "...");
			break;
		}
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == ' ') {
			space = 1;
			i++;
			continue;
		}
		if (space && v->len > start)
			r = buf_putc(v, ' ');
		space = 0;
		if (p[i] < 0x80) {
			r |= buf_putc(v, (char)p[i]);
			i++;
		} else if (utf8 && (sl = utf8_seq(p + i, n - i, &cp)) > 0) {
			r |= buf_append(v, p + i, sl);
			i += sl;
		} else {
			r |= buf_printf(v, "\\x%02X", p[i]);
			i++;
		}
	}
	if (r != 0)
		log_panic("dsn: scratch buffer overflow");
}

/*
 * Append s in RFC 6533's utf-8-addr-xtext form: QCHAR (printable ASCII
 * but SP, '\', '+', '=') as is, every other code point as \x{HEX};
 * bytes that are not UTF-8 as \x{FFFD}.  Stops before passing cap bytes.
 */
static void
put_utf8_xtext(struct buf *v, const char *s, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), start = v->len, i = 0, sl;
	uint32_t cp;
	char tmp[16];
	int tl;

	while (i < n) {
		if ((sl = utf8_seq(p + i, n - i, &cp)) == 0) {
			cp = 0xfffd;
			sl = 1;
		}
		if (cp > 0x20 && cp < 0x7f && cp != '\\' && cp != '+' && cp != '=')
			tl = snprintf(tmp, sizeof(tmp), "%c", (char)cp);
		else
			tl = snprintf(tmp, sizeof(tmp), "\\x{%02" PRIX32 "}", cp);
		if (tl < 0 || v->len - start + (size_t)tl > cap)
			break;
		if (buf_append(v, tmp, (size_t)tl) < 0)
			log_panic("dsn: scratch buffer overflow");
		i += sl;
	}
}

/* Append "rfc822; ADDR", or "utf-8; XTEXT" for an address that is not
 * printable ASCII. */
static void
put_address(struct buf *v, const char *addr)
{
	if (!not_printable(addr)) {
		if (buf_puts(v, "rfc822; ") < 0)
			log_panic("dsn: scratch buffer overflow");
		put_clean(v, addr, VALUE_MAX, 0);
	} else {
		if (buf_puts(v, "utf-8; ") < 0)
			log_panic("dsn: scratch buffer overflow");
		put_utf8_xtext(v, addr, VALUE_MAX);
	}
}

/* Append an ORCPT ("type;decoded", as the envelope stores it) as an
 * Original-Recipient value. */
static void
put_orcpt(struct buf *v, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	size_t tn = semi != NULL ? (size_t)(semi - orcpt) : 0;

	if (semi != NULL && tn == 6 && strncasecmp(orcpt, "rfc822", 6) == 0)
		put_address(v, semi + 1);
	else if (semi != NULL && tn == 5 && strncasecmp(orcpt, "utf-8", 5) == 0) {
		if (buf_puts(v, "utf-8; ") < 0)
			log_panic("dsn: scratch buffer overflow");
		put_utf8_xtext(v, semi + 1, VALUE_MAX);
	} else {
		/* Not a type smtpd accepts: keep it readable, call it
		 * unknown (RFC 3464 2.3.1). */
		if (buf_puts(v, "unknown; ") < 0)
			log_panic("dsn: scratch buffer overflow");
		put_clean(v, orcpt, VALUE_MAX, 0);
	}
}

/* Append an RFC 5322 date (UTC) for t. */
static void
put_date(struct buf *v, time_t t)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	if (buf_printf(v, "%s, %d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec) < 0)
		log_panic("dsn: scratch buffer overflow");
}

/* The status to report: st if it is a well-formed "C.S.D" (1-3 digit
 * subject and detail), with its class forced to the action's; else
 * "C.0.0".  Written into out[16]. */
static void
norm_status(const char *st, enum dsn_action action, char out[16])
{
	char cls = action == DSN_ACTION_FAILED ? '5' :
	    action == DSN_ACTION_DELAYED ? '4' : '2';
	size_t i = 2, d1 = 0, d2 = 0;

	if (st != NULL && (st[0] == '2' || st[0] == '4' || st[0] == '5') &&
	    st[1] == '.') {
		while (st[i] >= '0' && st[i] <= '9' && d1 < 4)
			i++, d1++;
		if (st[i] == '.') {
			i++;
			while (st[i] >= '0' && st[i] <= '9' && d2 < 4)
				i++, d2++;
		}
		if (d1 >= 1 && d1 <= 3 && d2 >= 1 && d2 <= 3 && st[i] == '\0') {
			memcpy(out, st, i + 1);
			out[0] = cls;
			return;
		}
	}
	out[0] = cls;
	memcpy(out + 1, ".0.0", 5);
}

/* Whether h is a plausible host name: 1-255 of [A-Za-z0-9.-_]. */
static int
host_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > HOST_MAX)
		return 0;
	return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-_") == n;
}

/* Fill p with n random bytes; if the kernel will not, with bytes mixed
 * from the clock and pid (the boundary is checked against the content
 * anyway, and the Message-ID also carries the queue id and time). */
static void
fill_random(unsigned char *p, size_t n)
{
	size_t got = 0;
	ssize_t r;
	struct timespec ts;
	uint64_t x;

	while (got < n) {
		r = getrandom(p + got, n - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got == n)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
	    ((uint64_t)getpid() << 40);
	for (; got < n; got++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[got] = (unsigned char)x;
	}
}

/* Write n random bytes as 2n hex digits plus a NUL into out. */
static void
random_hex(char *out, size_t n)
{
	unsigned char raw[32];
	size_t i;

	if (n > sizeof(raw))
		log_panic("dsn: random_hex(%zu)", n);
	fill_random(raw, n);
	for (i = 0; i < n; i++) {
		out[2 * i] = "0123456789abcdef"[raw[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
	}
	out[2 * n] = '\0';
}

/* --- the returned content ------------------------------------------- */

/* Read up to want (> 0) bytes of the message from pos into chunk: how
 * many (never 0), or -1 with *error_r. */
static ssize_t
read_chunk(const struct dsn_request *req, uint64_t pos, unsigned char *chunk,
    size_t want, const char **error_r)
{
	ssize_t r;

	do
		r = pread(req->msg_fd, chunk, want, req->msg_offset + (off_t)pos);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		*error_r = err_fmt("read message: %s", strerror(errno));
		return -1;
	}
	if (r == 0) {
		*error_r = "message shorter than the queue file says";
		return -1;
	}
	return r;
}

/*
 * Read up to limit bytes of the message: with headers set, stop at the
 * end of the header section (the empty line, not included) and, if there
 * is none within limit, return through the last whole line (all of it if
 * the message ends there).  Finds 8-bit bytes and lines starting with
 * pat.  0 with *s filled, or -1 with *error_r.
 */
static int
scan_content(const struct dsn_request *req, uint64_t limit, int headers,
    const char *pat, unsigned char *chunk, struct scan *s,
    const char **error_r)
{
	size_t plen = strlen(pat), m = 0, i;
	uint64_t pos = 0, last_lf_end = 0, end = UINT64_MAX;
	unsigned char prev = '\n';
	ssize_t r;

	memset(s, 0, sizeof(*s));
	while (pos < limit && end == UINT64_MAX) {
		size_t want = limit - pos < CHUNK ? (size_t)(limit - pos) : CHUNK;

		if ((r = read_chunk(req, pos, chunk, want, error_r)) < 0)
			return -1;
		for (i = 0; i < (size_t)r; i++) {
			unsigned char c = chunk[i];

			if (c == '\n') {
				if (headers && prev == '\n') {
					end = pos + i;	/* the empty line */
					break;
				}
				last_lf_end = pos + i + 1;
				m = 0;
			} else if (m != SIZE_MAX) {
				if (m < plen && c == (unsigned char)pat[m]) {
					if (++m == plen)
						s->collide = 1;
				} else if (m < plen)
					m = SIZE_MAX;
			}
			if (c >= 0x80)
				s->eightbit = 1;
			prev = c;
		}
		pos += (uint64_t)r;
	}
	if (end != UINT64_MAX)
		s->len = end;
	else if (!headers || limit == req->msg_len)
		s->len = limit;
	else
		s->len = last_lf_end;
	return 0;
}

/* Copy len bytes of the message to the sink.  0 or -1 with *error_r. */
static int
copy_content(const struct dsn_request *req, uint64_t len, unsigned char *chunk,
    struct out *o, const char **error_r)
{
	uint64_t pos = 0;
	ssize_t r;

	out_flush(o);
	while (pos < len && !o->failed) {
		size_t want = len - pos < CHUNK ? (size_t)(len - pos) : CHUNK;

		if ((r = read_chunk(req, pos, chunk, want, error_r)) < 0)
			return -1;
		if (o->fn(o->ctx, chunk, (size_t)r) < 0)
			o->failed = 1;
		o->total += (uint64_t)r;
		pos += (uint64_t)r;
	}
	return 0;
}

/* --- the report ----------------------------------------------------- */

/* The human-readable part's body. */
static void
write_text_part(struct out *o, const struct dsn_request *req, int any_failed,
    int any_delayed, struct buf *v)
{
	const struct envelope *env = req->env;
	size_t i;
	char st[16];

	out_printf(o, "This is the mail system at host %s.\n\n", req->reporting_mta);
	if (any_failed)
		out_puts(o, "Your message could not be delivered to one or more\n"
		    "recipients; the details are below.  The mail system has\n"
		    "given up on them and will not try again.\n");
	else if (any_delayed)
		out_puts(o, "Your message has not yet been delivered to one or more\n"
		    "recipients; the details are below.  The mail system will\n"
		    "keep trying: you do not need to send it again.\n");
	else
		out_puts(o, "Your message was delivered or passed on to the\n"
		    "recipients below, as you asked to be told.\n");
	if (req->to != NULL) {
		put_clean(v, env->sender[0] != '\0' ? env->sender : "",
		    VALUE_MAX, 1);
		out_printf(o, "\nThis report is for the postmaster: the message's "
		    "sender\nwas <%s>%s.\n", buf_cstr(v),
		    env->sender[0] == '\0' ? " (the null sender)" : "");
		buf_reset(v);
	}
	for (i = 0; i < req->nrcpts; i++) {
		const struct dsn_rcpt *r = &req->rcpts[i];

		put_clean(v, r->rcpt->addr, VALUE_MAX, 1);
		out_printf(o, "\n<%s>\n", buf_cstr(v));
		buf_reset(v);
		norm_status(r->status, r->action, st);
		out_printf(o, "    Action: %s, status %s\n",
		    dsn_action_name(r->action), st);
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			put_clean(v, r->remote_mta, HOST_MAX, 0);
			out_printf(o, "    Remote host: %s\n", buf_cstr(v));
			buf_reset(v);
		}
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			put_clean(v, r->diagnostic, VALUE_MAX, 1);
			out_printf(o, "    Diagnostic: %s\n", buf_cstr(v));
			buf_reset(v);
		}
		if (r->action == DSN_ACTION_DELAYED && r->retry_until != 0) {
			put_date(v, r->retry_until);
			out_printf(o, "    Will retry until: %s\n", buf_cstr(v));
			buf_reset(v);
		}
	}
}

/* The message/delivery-status part's body. */
static void
write_status_part(struct out *o, const struct dsn_request *req, struct buf *v)
{
	const struct envelope *env = req->env;
	size_t i;
	char st[16];

	out_printf(o, "Reporting-MTA: dns; %s\n", req->reporting_mta);
	if (env->envid != NULL && env->envid[0] != '\0') {
		char *x = smtp_xtext_encode(env->envid);

		/* xtext is printable ASCII; the cap keeps the line short. */
		put_clean(v, x, VALUE_MAX, 0);
		free(x);
		out_field_buf(o, "Original-Envelope-Id", v);
	}
	put_date(v, (time_t)(env->arrival_us / 1000000));
	out_field_buf(o, "Arrival-Date", v);
	for (i = 0; i < req->nrcpts; i++) {
		const struct dsn_rcpt *r = &req->rcpts[i];

		out_puts(o, "\n");
		if (r->rcpt->orcpt != NULL && r->rcpt->orcpt[0] != '\0') {
			put_orcpt(v, r->rcpt->orcpt);
			out_field_buf(o, "Original-Recipient", v);
		}
		put_address(v, r->rcpt->addr);
		out_field_buf(o, "Final-Recipient", v);
		norm_status(r->status, r->action, st);
		out_printf(o, "Action: %s\nStatus: %s\n",
		    dsn_action_name(r->action), st);
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			if (buf_puts(v, "dns; ") < 0)
				log_panic("dsn: scratch buffer overflow");
			put_clean(v, r->remote_mta, HOST_MAX, 0);
			out_field_buf(o, "Remote-MTA", v);
		}
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			if (buf_puts(v, r->diag_smtp ? "smtp; " : "X-Postern; ") < 0)
				log_panic("dsn: scratch buffer overflow");
			put_clean(v, r->diagnostic, VALUE_MAX, 0);
			out_field_buf(o, "Diagnostic-Code", v);
		}
		if (r->last_attempt != 0) {
			put_date(v, r->last_attempt);
			out_field_buf(o, "Last-Attempt-Date", v);
		}
		if (r->action == DSN_ACTION_DELAYED && r->retry_until != 0) {
			put_date(v, r->retry_until);
			out_field_buf(o, "Will-Retry-Until", v);
		}
	}
}

/* Whether a test boundary uses only bchars (RFC 2046) and fits. */
static int
boundary_ok(const char *b)
{
	size_t n = strlen(b);

	return n >= 1 && n <= 60 &&
	    strspn(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789'()+_,-./:=?") == n;
}

/* Choose the returned content and a boundary that no line of it starts
 * with.  0, or -1 with *error_r. */
static int
prepare(const struct dsn_request *req, int any_failed, int any_delayed,
    char boundary[BOUNDARY_SIZE], unsigned char *chunk, struct scan *s,
    enum dsn_returned *kind_r, const char **error_r)
{
	const struct envelope *env = req->env;
	size_t cap = req->return_max != 0 ? req->return_max : DSN_RETURN_MAX_DEFAULT;
	int want_full, tries;
	char pat[BOUNDARY_SIZE + 2], rnd[33];

	/* RFC 3461 4.3: RET=FULL asks for the message in a "failed" DSN; a
	 * report of successes only (delivered, relayed, expanded) returns
	 * the headers, whatever RET says. */
	want_full = (env->ret == SMTP_RET_FULL && (any_failed || any_delayed)) ||
	    (env->ret != SMTP_RET_HDRS && any_failed);
	*kind_r = DSN_RETURNED_NONE;
	if (req->msg_fd >= 0)
		*kind_r = want_full && req->msg_len <= cap ?
		    DSN_RETURNED_FULL : DSN_RETURNED_HEADERS;
	memset(s, 0, sizeof(*s));
	for (tries = 0; tries < BOUNDARY_TRIES; tries++) {
		if (req->boundary != NULL && tries == 0)
			snprintf(boundary, BOUNDARY_SIZE, "%s", req->boundary);
		else if (req->boundary != NULL)
			snprintf(boundary, BOUNDARY_SIZE, "%s.%d", req->boundary, tries);
		else {
			random_hex(rnd, 16);
			snprintf(boundary, BOUNDARY_SIZE, "=_postern_%s", rnd);
		}
		if (*kind_r == DSN_RETURNED_NONE)
			return 0;
		snprintf(pat, sizeof(pat), "--%s", boundary);
		if (scan_content(req, *kind_r == DSN_RETURNED_FULL ? req->msg_len :
		    (req->msg_len < cap ? req->msg_len : cap),
		    *kind_r == DSN_RETURNED_HEADERS, pat, chunk, s, error_r) < 0)
			return -1;
		if (!s->collide)
			return 0;
	}
	*error_r = "no boundary found that the message does not contain";
	return -1;
}

int
dsn_write(const struct dsn_request *req, dsn_write_fn *fn, void *ctx,
    struct dsn_result *result_r, const char **error_r)
{
	const struct envelope *env = req->env;
	const char *to = req->to != NULL ? req->to : env->sender;
	int any_failed = 0, any_delayed = 0, text_8bit = 0, r = -1;
	enum dsn_returned kind;
	unsigned char *chunk = NULL;
	char boundary[BOUNDARY_SIZE], rnd[17];
	struct scan s;
	struct out o;
	struct buf v;
	time_t now = req->now != 0 ? req->now : time(NULL);
	size_t i;

	if (req->nrcpts == 0) {
		*error_r = "no recipient to report on";
		return -1;
	}
	if (to == NULL || to[0] == '\0') {
		*error_r = "the report has no recipient (null sender)";
		return -1;
	}
	if (req->reporting_mta == NULL || !host_ok(req->reporting_mta)) {
		*error_r = "bad reporting MTA host name";
		return -1;
	}
	if (req->boundary != NULL && !boundary_ok(req->boundary)) {
		*error_r = "bad test boundary";
		return -1;
	}
	for (i = 0; i < req->nrcpts; i++) {
		if (req->rcpts[i].action == DSN_ACTION_FAILED)
			any_failed = 1;
		else if (req->rcpts[i].action == DSN_ACTION_DELAYED)
			any_delayed = 1;
		if (has_8bit(req->rcpts[i].rcpt->addr) ||
		    (req->to != NULL && has_8bit(env->sender)))
			text_8bit = 1;
		(void)dsn_action_name(req->rcpts[i].action);	/* checks it */
	}
	chunk = xmalloc(CHUNK);
	if (prepare(req, any_failed, any_delayed, boundary, chunk, &s,
	    &kind, error_r) < 0)
		goto out;

	buf_init(&o.b, 0);
	o.fn = fn;
	o.ctx = ctx;
	o.total = 0;
	o.failed = 0;
	buf_init(&v, 0);

	/* The message header. */
	out_printf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\n",
	    req->reporting_mta);
	put_clean(&v, to, VALUE_MAX, 1);
	out_printf(&o, "To: <%s>\n", buf_cstr(&v));
	buf_reset(&v);
	out_printf(&o, "Subject: %s\n", any_failed ?
	    "Undelivered Mail Returned to Sender" : any_delayed ?
	    "Delayed Mail (still being retried)" : "Successful Mail Delivery Report");
	put_date(&v, now);
	out_field_buf(&o, "Date", &v);
	{
		struct tm tm;
		char stamp[32];

		if (gmtime_r(&now, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
			snprintf(stamp, sizeof(stamp), "%lld", (long long)now);
		random_hex(rnd, 8);
		out_printf(&o, "Message-ID: <%s.%.*s.%s@%s>\n", stamp,
		    (int)strspn(env->id, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), env->id, rnd,
		    req->reporting_mta);
	}
	out_puts(&o, "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
	out_printf(&o, "Content-Type: multipart/report; report-type=delivery-status;\n"
	    " boundary=\"%s\"\n", boundary);
	if (text_8bit || (kind != DSN_RETURNED_NONE && s.eightbit))
		out_puts(&o, "Content-Transfer-Encoding: 8bit\n");
	out_puts(&o, "\nThis is a MIME-encapsulated message.\n");

	/* Part 1: for people. */
	out_printf(&o, "\n--%s\nContent-Description: Notification\n"
	    "Content-Type: text/plain; charset=%s\n", boundary,
	    text_8bit ? "utf-8" : "us-ascii");
	if (text_8bit)
		out_puts(&o, "Content-Transfer-Encoding: 8bit\n");
	out_puts(&o, "\n");
	write_text_part(&o, req, any_failed, any_delayed, &v);

	/* Part 2: for programs. */
	out_printf(&o, "\n--%s\nContent-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\n", boundary);
	write_status_part(&o, req, &v);

	/* Part 3: what was sent. */
	if (kind != DSN_RETURNED_NONE) {
		out_printf(&o, "\n--%s\nContent-Description: %s\nContent-Type: %s\n",
		    boundary, kind == DSN_RETURNED_FULL ? "Undelivered Message" :
		    "Undelivered Message Headers", kind == DSN_RETURNED_FULL ?
		    "message/rfc822" : "text/rfc822-headers");
		if (s.eightbit)
			out_puts(&o, "Content-Transfer-Encoding: 8bit\n");
		out_puts(&o, "\n");
		if (copy_content(req, s.len, chunk, &o, error_r) < 0)
			goto out_bufs;
	}
	out_printf(&o, "\n--%s--\n", boundary);
	out_flush(&o);
	if (o.failed) {
		*error_r = "cannot write the report";
		goto out_bufs;
	}
	memset(result_r, 0, sizeof(*result_r));
	result_r->size = o.total;
	result_r->returned = kind;
	result_r->body_8bit = text_8bit || (kind != DSN_RETURNED_NONE && s.eightbit);
	result_r->smtputf8 = has_8bit(to) ||
	    (env->smtputf8 && kind != DSN_RETURNED_NONE && s.eightbit);
	r = 0;
out_bufs:
	buf_free(&o.b);
	buf_free(&v);
out:
	free(chunk);
	return r;
}

/* dsn_write_fn over a file descriptor. */
static int
fd_sink(void *ctx, const void *p, size_t n)
{
	int fd = *(int *)ctx;
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int
dsn_write_fd(const struct dsn_request *req, int fd, struct dsn_result *result_r,
    const char **error_r)
{
	return dsn_write(req, fd_sink, &fd, result_r, error_r);
}
