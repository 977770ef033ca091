/*
 * body: the content scanner (see body.h).  A small byte-level state
 * machine; inside a line it skips ahead with memchr, since the content
 * of a message is the bulk of smtpd's instructions per message.
 */
#include "autoconf.h"

#include <string.h>

#include "body.h"
#include "smtp.h"

void
body_scan_init(struct body_scan *sc, int dot, int normalize)
{
	sc->st = B_BOL;
	sc->dot = dot;
	sc->normalize = normalize;
	sc->prev_crlf = 1;
	sc->line_len = 0;
	sc->bare_lf = 0;
}

/* The index of the first CR or LF in p[i..n), or n.  Two memchr() calls
 * (vectorised in libc) instead of a byte loop. */
static size_t
line_span(const char *p, size_t i, size_t n)
{
	const char *lf = memchr(p + i, '\n', n - i);
	size_t end = lf != NULL ? (size_t)(lf - p) : n;
	const char *cr = memchr(p + i, '\r', end - i);

	return cr != NULL ? (size_t)(cr - p) : end;
}

/* Bytes inside a line: counted against the line limit, then passed on. */
static void
scan_content(struct body_scan *sc, const char *p, size_t n,
    const struct body_scan_ops *ops, void *arg)
{
	if (sc->line_len <= SMTP_MAX_LINE && sc->line_len + n > SMTP_MAX_LINE)
		ops->error(arg, BODY_TOO_LONG);
	sc->line_len += n;
	ops->content(arg, p, n);
}

/* The end of a line. */
static void
scan_line_end(struct body_scan *sc, int crlf, const struct body_scan_ops *ops, void *arg)
{
	sc->prev_crlf = crlf;
	sc->line_len = 0;
	sc->st = B_BOL;
	ops->line_end(arg, crlf);
}

/* A bare LF: a line end when normalizing, else an error that ends the
 * line all the same (so the scanner keeps its place). */
static void
scan_bare_lf(struct body_scan *sc, const struct body_scan_ops *ops, void *arg)
{
	if (sc->normalize)
		sc->bare_lf++;
	else
		ops->error(arg, BODY_BARE_EOL);
	scan_line_end(sc, 0, ops, arg);
}

size_t
body_scan_feed(struct body_scan *sc, const char *p, size_t n,
    const struct body_scan_ops *ops, void *arg, int *ended_r)
{
	size_t i = 0, j;

	*ended_r = 0;
	while (i < n) {
		switch (sc->st) {
		case B_BOL:
			if (sc->dot && p[i] == '.') {
				sc->st = B_BOL_DOT;
				sc->line_len = 1;
				i++;
			} else {
				sc->st = B_LINE;
			}
			break;
		case B_BOL_DOT:
			if (p[i] == '\r') {
				sc->st = B_DOT_CR;
				i++;
			} else {
				/* The leading dot is dropped.  A bare LF
				 * right after it ends an empty line, never
				 * the data. */
				sc->st = B_LINE;
			}
			break;
		case B_DOT_CR:
			if (p[i] != '\n') {
				ops->error(arg, BODY_BARE_EOL);
				sc->st = B_LINE;
				break;
			}
			i++;
			if (sc->prev_crlf) {
				*ended_r = 1;
				return i;
			}
			/* "." CRLF after a bare line end: not the end. */
			scan_line_end(sc, 1, ops, arg);
			break;
		case B_LINE:
			j = line_span(p, i, n);
			if (j > i)
				scan_content(sc, p + i, j - i, ops, arg);
			i = j;
			if (i == n)
				break;
			if (p[i] == '\r')
				sc->st = B_CR;
			else
				scan_bare_lf(sc, ops, arg);
			i++;
			break;
		case B_CR:
			if (p[i] == '\n') {
				i++;
				scan_line_end(sc, 1, ops, arg);
			} else {
				/* A bare CR is refused in every mode. */
				ops->error(arg, BODY_BARE_EOL);
				sc->st = B_LINE;
			}
			break;
		}
	}
	return i;
}

void
body_scan_finish(struct body_scan *sc, const struct body_scan_ops *ops, void *arg)
{
	if (sc->st == B_CR)
		ops->error(arg, BODY_BARE_EOL);
	else if (sc->st == B_LINE && sc->line_len > 0)
		scan_line_end(sc, 1, ops, arg);
}
