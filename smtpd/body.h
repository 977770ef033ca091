/*
 * body: the byte-level scanner of SMTP message content (DATA and BDAT),
 * a pure state machine over the bytes as they arrive: no I/O, no
 * allocation, nothing of the session.  It finds line ends, drops DATA's
 * stuffing dots, recognises DATA's end marker, counts line lengths, and
 * polices bare CR and bare LF; what the bytes mean (the queue file, the
 * header fixes, SIZE) is the caller's, through three callbacks.  So unit
 * tests (tests/unit/test_smtpbody.c) and the fuzzer
 * (tests/fuzz/fuzz_smtpbody.c) drive it from memory.
 *
 * The SMTP smuggling defence (CVE-2023-51764) lives here: only CRLF "."
 * CRLF ends DATA -- a "." line after a bare line end, or one ended by a
 * bare LF, never does -- and a bare CR is always an error.  A bare LF is
 * an error too, unless the scanner normalizes: then it ends its line as
 * CRLF would (Postfix 3.9's smtpd_forbid_bare_newline = normalize), and
 * still never helps to end DATA.
 */
#ifndef POSTERN_BODY_H
#define POSTERN_BODY_H

#include <stddef.h>
#include <stdint.h>

/* Errors found in message content; the first one decides the reply. */
enum body_err {
	BODY_OK,
	BODY_BARE_EOL,		/* bare CR or LF: 554 5.6.0 */
	BODY_TOO_LONG,		/* a line over 998 bytes: 500 5.5.2 */
	BODY_TOO_BIG,		/* over SIZE: 552 5.3.4 */
	BODY_IO,		/* spool write failed: 451 4.3.0 */
};

/* Where the scanner is. */
enum body_st {
	B_BOL,			/* at the start of a line */
	B_BOL_DOT,		/* a '.' at the start of a line (DATA only) */
	B_DOT_CR,		/* ".\r" at the start of a line (DATA only) */
	B_LINE,			/* inside a line */
	B_CR,			/* a '\r' inside a line */
};

struct body_scan {
	enum body_st st;
	int dot;		/* DATA: dot-unstuffing and the end marker */
	int normalize;		/* a bare LF ends a line (else an error) */
	int prev_crlf;		/* the last line ended with CRLF */
	size_t line_len;	/* bytes of the current line so far */
	uint64_t bare_lf;	/* bare LFs taken as line ends */
};

/* What the scanner found.  content: bytes of the current line (without
 * its ending or a stuffing dot; a line may come in several pieces).
 * line_end: the line ended, with CRLF (crlf 1) or a bare LF.  error:
 * BODY_BARE_EOL or BODY_TOO_LONG (once per line); scanning goes on, so
 * the caller reads to the real end of the data and stays in step. */
struct body_scan_ops {
	void (*content)(void *arg, const char *p, size_t n);
	void (*line_end)(void *arg, int crlf);
	void (*error)(void *arg, enum body_err e);
};

/* Start scanning a message: dot for DATA (0: BDAT), normalize as above. */
void body_scan_init(struct body_scan *sc, int dot, int normalize);
/* Scan n bytes.  Returns the bytes used: all n, or (DATA) those up to
 * and including the end marker, and then *ended_r is 1. */
size_t body_scan_feed(struct body_scan *sc, const char *p, size_t n,
    const struct body_scan_ops *ops, void *arg, int *ended_r);
/* BDAT's last chunk ended: a final line without its line end still
 * counts as a line, but a CR at the very end is bare. */
void body_scan_finish(struct body_scan *sc, const struct body_scan_ops *ops, void *arg);

#endif
