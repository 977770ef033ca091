/*
 * state: the per-message state file, spool/queue/ID.state.  Append-only
 * lines, each fsync'd before qmgr acts on it:
 *
 *   done INDEX                     recipient delivered (or dropped)
 *   defer INDEX NEXT_TRY ERROR     temporary failure, retry at NEXT_TRY
 *   fail INDEX ERROR               permanent failure, report still due
 *   delivered INDEX TEXT           delivered; the success report (NOTIFY=
 *                                  SUCCESS) is still due
 *   expanded INDEX TEXT            the same, delivered by alias expansion
 *   bounced INDEX                  the report (failure or success) is queued
 *   rcpt ADDRESS ORIG_INDEX        a recipient added by alias expansion
 *   warned                         the delay warning is queued
 *   hold / release                 the administrator's hold
 *   owner UID                      a maildrop message's submitter
 *
 * A torn last line (no LF, after a crash) is ignored by the reader.  Also
 * here: the retry back-off.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "qmgr.h"

#define QS_TEXT_MAX 400		/* bytes of error text kept */

/* Parse a decimal u64 ending at a space or the end; advances *sp. */
static int
get_num(const char **sp, uint64_t *v_r)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s != ' ' && *s != '\0')
		return -1;
	*sp = *s == ' ' ? s + 1 : s;
	*v_r = v;
	return 0;
}

/* Parse a recipient index. */
static int
get_index(const char **sp, uint32_t *v_r)
{
	uint64_t v;

	if (get_num(sp, &v) < 0 || v > UINT32_MAX)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

/* Whether every byte of s is printable ASCII (spaces allowed or not). */
static int
printable(const char *s, int spaces)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e ||
		    (!spaces && *s == ' '))
			return 0;
	return 1;
}

/* Parse one state file line. */
int
qs_parse(const char *line, struct qs_record *r, const char **error_r)
{
	const char *p, *sp = strchr(line, ' ');
	size_t kw = sp != NULL ? (size_t)(sp - line) : strlen(line);
	struct qs_record rec;
	uint64_t v;

	memset(&rec, 0, sizeof(rec));
	rec.text = "";
	p = sp != NULL ? sp + 1 : line + kw;
	if (!printable(line, 1))
		goto bad;
#define KW(s) (kw == sizeof(s) - 1 && memcmp(line, s, kw) == 0)
	if (KW("done") || KW("bounced")) {
		rec.kind = KW("done") ? QS_DONE : QS_BOUNCED;
		if (sp == NULL || get_index(&p, &rec.index) < 0 || *p != '\0')
			goto bad;
	} else if (KW("defer")) {
		rec.kind = QS_DEFER;
		if (sp == NULL || get_index(&p, &rec.index) < 0 ||
		    get_num(&p, &rec.next_try) < 0)
			goto bad;
		rec.text = p;
	} else if (KW("fail") || KW("delivered") || KW("expanded")) {
		rec.kind = KW("fail") ? QS_FAIL : KW("delivered") ? QS_DELIVERED : QS_EXPANDED;
		if (sp == NULL || get_index(&p, &rec.index) < 0)
			goto bad;
		rec.text = p;
	} else if (KW("rcpt")) {
		const char *end = sp != NULL ? strchr(p, ' ') : NULL;

		rec.kind = QS_RCPT;
		if (end == NULL || end == p)
			goto bad;
		end++;
		if (get_num(&end, &rec.orig) < 0 || *end != '\0' || rec.orig > UINT32_MAX)
			goto bad;
		rec.text = p;	/* up to the space: the caller copies that */
	} else if (KW("owner")) {
		rec.kind = QS_OWNER;
		if (sp == NULL || get_num(&p, &v) < 0 || *p != '\0' || v > UINT32_MAX)
			goto bad;
		rec.orig = v;
	} else if (KW("warned") || KW("hold") || KW("release")) {
		rec.kind = KW("warned") ? QS_WARNED : KW("hold") ? QS_HOLD : QS_RELEASE;
		if (sp != NULL)
			goto bad;
	} else
		goto bad;
#undef KW
	*r = rec;
	return 0;
bad:
	*error_r = "malformed state line";
	return -1;
}

/* Append text with control bytes replaced and capped (no LF ever). */
static void
put_text(struct buf *out, const char *s, int spaces)
{
	size_t n = 0;

	for (; *s != '\0' && n < QS_TEXT_MAX; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c > 0x7e || (!spaces && c == ' '))
			c = '?';
		if (buf_putc(out, (char)c) < 0)
			log_panic("event=state_overflow");
	}
}

/* Append one record as a line. */
void
qs_format(const struct qs_record *r, struct buf *out)
{
	int rc = 0;

	switch (r->kind) {
	case QS_DONE:
		rc = buf_printf(out, "done %u", r->index);
		break;
	case QS_BOUNCED:
		rc = buf_printf(out, "bounced %u", r->index);
		break;
	case QS_DEFER:
		rc = buf_printf(out, "defer %u %llu ", r->index,
		    (unsigned long long)r->next_try);
		put_text(out, r->text, 1);
		break;
	case QS_FAIL:
	case QS_DELIVERED:
	case QS_EXPANDED:
		rc = buf_printf(out, "%s %u ", r->kind == QS_FAIL ? "fail" :
		    r->kind == QS_DELIVERED ? "delivered" : "expanded", r->index);
		put_text(out, r->text, 1);
		break;
	case QS_RCPT:
		rc = buf_puts(out, "rcpt ");
		put_text(out, r->text, 0);
		if (rc == 0)
			rc = buf_printf(out, " %llu", (unsigned long long)r->orig);
		break;
	case QS_OWNER:
		rc = buf_printf(out, "owner %llu", (unsigned long long)r->orig);
		break;
	case QS_WARNED:
		rc = buf_puts(out, "warned");
		break;
	case QS_HOLD:
		rc = buf_puts(out, "hold");
		break;
	case QS_RELEASE:
		rc = buf_puts(out, "release");
		break;
	}
	if (rc < 0 || buf_putc(out, '\n') < 0)
		log_panic("event=state_overflow");
}

/* The back-off after the attempts-th deferral. */
uint64_t
qmgr_backoff(uint64_t min, uint64_t max, unsigned attempts)
{
	uint64_t d = min;

	if (min == 0)
		min = d = 1;
	if (max < min)
		max = min;
	for (unsigned i = 1; i < attempts && d < max; i++)
		d = d > max / 2 ? max : d * 2;
	return d < max ? d : max;
}
