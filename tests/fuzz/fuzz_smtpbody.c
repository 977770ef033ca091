/*
 * libFuzzer target for smtpd's content scanner (smtpd/body.c, compiled
 * into this target): the first byte picks DATA or BDAT, reject or
 * normalize, and where the input is split in two feeds; the rest is
 * content as a client sends it.  Invariants checked: the split changes
 * nothing; the bytes used are all of the input unless DATA ended, and
 * DATA ends only just after CRLF "." CRLF (or a "." CRLF at the very
 * start), never after a bare CR or LF, so nothing that follows a bare
 * line end can start a second transaction; the pieces of a line hold no
 * CR or LF; a line is never longer than the limit without an error; a
 * message with a bare CR, or (reject) a bare LF, is never error-free.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The scanner lives in smtpd/, not lib/: the fuzz build compiles only
 * this file and lib/'s sources, so it is included here. */
#include "../../smtpd/body.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop with a crash libFuzzer reports, when an invariant is broken. */
#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* What the callbacks saw (a digest, so two runs can be compared). */
struct seen {
	uint64_t hash;
	size_t line_len;
	int errors, too_long;
};

static void
mix(struct seen *w, uint64_t v)
{
	w->hash = (w->hash ^ v) * 1099511628211ull;
}

static void
on_content(void *arg, const char *p, size_t n)
{
	struct seen *w = arg;

	CHECK(n > 0);
	CHECK(memchr(p, '\r', n) == NULL && memchr(p, '\n', n) == NULL);
	w->line_len += n;
	CHECK(w->line_len <= SMTP_MAX_LINE || w->too_long);
	for (size_t i = 0; i < n; i++)
		mix(w, (unsigned char)p[i]);
}

static void
on_line_end(void *arg, int crlf)
{
	struct seen *w = arg;

	w->line_len = 0;
	w->too_long = 0;
	mix(w, crlf ? 256 : 257);
}

static void
on_error(void *arg, enum body_err e)
{
	struct seen *w = arg;

	CHECK(e == BODY_BARE_EOL || e == BODY_TOO_LONG);
	if (e == BODY_TOO_LONG)
		w->too_long = 1;
	/* Counted, not hashed: a split moves an error among the pieces
	 * of its line, which is no difference. */
	w->errors++;
}

static const struct body_scan_ops ops = { on_content, on_line_end, on_error };

/* Scan p[0..n) in two feeds split at cut; the bytes used. */
static size_t
run(const char *p, size_t n, size_t cut, int dot, int norm, struct seen *w, int *ended_r)
{
	struct body_scan sc;
	size_t used;

	memset(w, 0, sizeof(*w));
	body_scan_init(&sc, dot, norm);
	used = body_scan_feed(&sc, p, cut, &ops, w, ended_r);
	if (!*ended_r) {
		CHECK(used == cut);
		used += body_scan_feed(&sc, p + cut, n - cut, &ops, w, ended_r);
	}
	if (!dot)
		body_scan_finish(&sc, &ops, w);
	return used;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	struct seen a, b;
	size_t n, cut, ua, ub;
	int dot, norm, ea, eb;

	if (size < 1)
		return 0;
	dot = data[0] & 1;
	norm = (data[0] >> 1) & 1;
	n = size - 1;
	cut = n > 0 ? (size_t)(data[0] >> 2) % (n + 1) : 0;

	ua = run(p, n, n, dot, norm, &a, &ea);
	ub = run(p, n, cut, dot, norm, &b, &eb);
	CHECK(ua == ub && ea == eb && a.hash == b.hash && a.errors == b.errors);

	CHECK(ua <= n);
	CHECK(ea || ua == n);
	CHECK(!ea || dot);
	if (ea) {
		/* The end marker, after a line that ended with CRLF. */
		CHECK(ua >= 3 && memcmp(p + ua - 3, ".\r\n", 3) == 0);
		CHECK(ua == 3 || (ua >= 5 && memcmp(p + ua - 5, "\r\n", 2) == 0));
	}
	if (memchr(p, '\r', ua) != NULL) {
		/* A CR not followed by LF within what was used is bare. */
		for (size_t i = 0; i + 1 < ua; i++)
			if (p[i] == '\r' && p[i + 1] != '\n')
				CHECK(a.errors > 0);
	}
	if (!norm) {
		for (size_t i = 0; i < ua; i++)
			if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
				CHECK(a.errors > 0);
	}
	return 0;
}
