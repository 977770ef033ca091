/*
 * libFuzzer target for the Maildir format's pure parts (lib/mail/maildir.c):
 * the export state machine, maildir_crlf_size(), maildir_uidl() and
 * maildir_name_size().
 * Input: byte 0 picks the export mode (bit 0 dotstuff, bits 1-3 the TOP
 * line count, 0 meaning the whole message, bit 4 a capped output buffer),
 * bytes 1-2 a split point, byte 3 the cap, the rest is the message (and,
 * up to its first NUL, a file name).  Invariants: any chunking gives the
 * same output; every LF leaves as CRLF; the whole undotstuffed export is
 * maildir_crlf_size() bytes; undoing the dot-stuffing gives the plain
 * export; TOP output is a prefix of the whole; a feed appends at most
 * twice its input; a capped buffer holds a prefix; UIDLs are 1..70 printable characters, unchanged by flags.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "maildir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop with a crash libFuzzer reports, when an invariant is broken. */
#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/*
 * Export p[0..n) in chunks of at most step bytes (0: whole) after a first
 * chunk of first bytes, into out.  Returns feed's last result or end's -1;
 * *done_r says whether feed said done.
 */
static int
do_export(const char *p, size_t n, int dotstuff, int64_t lines, size_t first,
    size_t step, struct buf *out, int *done_r)
{
	struct mailbox_export x;
	size_t at = first < n ? first : n;
	int r;

	mailbox_export_init(&x, dotstuff, lines);
	*done_r = 0;
	/* The first chunk may be empty.  Each appends at most twice its size. */
	r = mailbox_export_feed(&x, p, at, out);
	CHECK(out->len <= 2 * at);
	while (r == 0 && at < n) {
		size_t k = n - at, before = out->len;

		if (step > 0 && step < k)
			k = step;
		r = mailbox_export_feed(&x, p + at, k, out);
		CHECK(out->len - before <= 2 * k);
		at += k;
	}
	if (r < 0)
		return -1;
	*done_r = r;
	return mailbox_export_end(&x, out) < 0 ? -1 : r;
}

/* Every LF in b comes after a CR. */
static void
check_crlf(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == '\n')
			CHECK(i > 0 && b->data[i - 1] == '\r');
}

/* Undo the dot-stuffing of s into out: a line starting with '.' must
 * start with "..", and loses one. */
static void
unstuff(const struct buf *s, struct buf *out)
{
	int bol = 1;

	for (size_t i = 0; i < s->len; i++) {
		char c = s->data[i];

		if (bol && c == '.') {
			CHECK(i + 1 < s->len && s->data[i + 1] == '.');
			i++;
		}
		CHECK(buf_putc(out, c) == 0);
		bol = c == '\n';
	}
}

/* The name checks, on the input up to its first NUL. */
static void
fuzz_name(const uint8_t *data, size_t size)
{
	char uidl[MAILDIR_UIDL_MAX + 1], uidl2[MAILDIR_UIDL_MAX + 1];
	size_t n = strnlen((const char *)data, size > 300 ? 300 : size), len;
	char *name = malloc(n + 8);
	uint64_t v;

	if (name == NULL)
		return;
	memcpy(name, data, n);
	name[n] = '\0';
	maildir_uidl(name, uidl);
	len = strlen(uidl);
	CHECK(len >= 1 && len <= MAILDIR_UIDL_MAX);
	for (size_t i = 0; i < len; i++)
		CHECK(uidl[i] >= 0x21 && uidl[i] <= 0x7e);
	/* Flags do not change it. */
	memcpy(name + n, ":2,FS", 6);
	maildir_uidl(name, uidl2);
	CHECK(strcmp(uidl, uidl2) == 0);
	name[n] = '\0';
	for (int k = 0; k < 2; k++) {
		char key = k ? 'W' : 'S', field[4] = { ',', key, '=', '\0' };
		const char *info = strchr(name, ':'), *f = strstr(name, field);
		int r = maildir_name_size(name, key, &v);

		CHECK(r == 0 || r == 1);
		if (r == 1)
			CHECK(f != NULL && (info == NULL || f < info));
	}
	free(name);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf whole = BUF_INIT, split = BUF_INIT, bytes = BUF_INIT;
	struct buf plain = BUF_INIT, un = BUF_INIT, capped;
	const char *p;
	size_t n, k;
	int64_t lines;
	int dotstuff, d1, d2, d3, r, r2, pr = 0;
	uint64_t crlf;

	if (size < 4)
		return 0;
	dotstuff = data[0] & 1;
	lines = ((data[0] >> 1) & 7) == 0 ? -1 : ((data[0] >> 1) & 7) - 1;
	p = (const char *)data + 4;
	n = size - 4;
	k = ((size_t)data[1] << 8 | data[2]) % (n + 1);
	fuzz_name(data + 4, n);

	/* Chunking never matters. */
	r = do_export(p, n, dotstuff, lines, n, 0, &whole, &d1);
	CHECK(r >= 0);
	CHECK(do_export(p, n, dotstuff, lines, k, 0, &split, &d2) >= 0);
	CHECK(d1 == d2 && whole.len == split.len &&
	    memcmp(buf_cstr(&whole), buf_cstr(&split), whole.len) == 0);
	if (n <= 4096) {
		CHECK(do_export(p, n, dotstuff, lines, k, 1, &bytes, &d3) >= 0);
		CHECK(d1 == d3 && whole.len == bytes.len &&
		    memcmp(buf_cstr(&whole), buf_cstr(&bytes), whole.len) == 0);
	}
	check_crlf(&whole);

	/* The plain whole export is the CRLF size (+2 for a last line without
	 * LF), however crlf_size is chunked; its TOP is a prefix of it. */
	CHECK(do_export(p, n, 0, -1, n, 0, &plain, &d2) == 0 && d2 == 0);
	crlf = maildir_crlf_size(p, k, &pr);
	crlf += maildir_crlf_size(p + k, n - k, &pr);
	CHECK(crlf == maildir_crlf_size(p, n, NULL));
	CHECK(plain.len == crlf + (n > 0 && p[n - 1] != '\n' ? 2 : 0));
	if (dotstuff)
		unstuff(&whole, &un);
	else
		CHECK(buf_append(&un, buf_cstr(&whole), whole.len) == 0);
	if (lines < 0)
		CHECK(un.len == plain.len);
	CHECK(un.len <= plain.len && memcmp(buf_cstr(&un), buf_cstr(&plain), un.len) == 0);

	/* A capped buffer: a prefix, and -1 exactly when it did not fit. */
	if (data[0] & 0x10) {
		buf_init(&capped, (size_t)data[3] + 1);
		r2 = do_export(p, n, dotstuff, lines, k, 7, &capped, &d3);
		CHECK(capped.len <= whole.len &&
		    memcmp(buf_cstr(&capped), buf_cstr(&whole), capped.len) == 0);
		CHECK((r2 < 0) == (whole.len > capped.max));
		buf_free(&capped);
	}
	buf_free(&whole);
	buf_free(&split);
	buf_free(&bytes);
	buf_free(&plain);
	buf_free(&un);
	return 0;
}
