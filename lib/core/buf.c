/*
 * buf: growable, length-counted byte buffer with a ceiling.  This is one of
 * the few files that does raw pointer arithmetic on strings.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "xalloc.h"

/* The effective ceiling on b->len. */
static size_t
buf_limit(const struct buf *b)
{
	return b->max ? b->max : SIZE_MAX - 1;
}

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_wipe(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Grow storage so that need bytes plus a NUL fit; need is already capped. */
static void
buf_grow(struct buf *b, size_t need)
{
	size_t ncap;

	if (need < b->cap)
		return;
	ncap = b->cap ? b->cap : 64;
	while (ncap <= need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = xadd(need, 1);
			break;
		}
		ncap *= 2;
	}
	b->data = xreallocarray(b->data, ncap, 1);
	b->cap = ncap;
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t need;

	if (__builtin_add_overflow(b->len, n, &need) || need > buf_limit(b))
		return -1;
	buf_grow(b, need);
	b->data[b->len] = '\0';	/* a fresh allocation is terminated too */
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	int n;

	/* Ensure there is some room so the first attempt usually fits. */
	if (buf_reserve(b, 0) < 0)
		return -1;
	if (b->cap - b->len < 64 && buf_limit(b) - b->len >= 64)
		buf_grow(b, b->len + 64);
	else
		buf_grow(b, b->len);
	va_copy(aq, ap);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
	va_end(aq);
	if (n < 0) {
		b->data[b->len] = '\0';
		return -1;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (buf_reserve(b, (size_t)n) < 0) {
			b->data[b->len] = '\0';
			return -1;
		}
		va_copy(aq, ap);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
		va_end(aq);
		if (n < 0) {
			b->data[b->len] = '\0';
			return -1;
		}
	}
	if (b->len + (size_t)n > buf_limit(b)) {
		b->data[b->len] = '\0';
		return -1;
	}
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n > b->len)
		log_panic("event=buf_consume_past_end n=%zu len=%zu", n, b->len);
	if (n == 0)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void
buf_truncate(struct buf *b, size_t n)
{
	if (n > b->len)
		log_panic("event=buf_truncate_past_end n=%zu len=%zu", n, b->len);
	b->len = n;
	if (b->data != NULL)
		b->data[n] = '\0';
}

const char *
buf_cstr(const struct buf *b)
{
	return b->data != NULL ? b->data : "";
}

char *
buf_steal(struct buf *b)
{
	char *p = b->data != NULL ? b->data : xstrdup("");

	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

/* Append without the ceiling check: for renderings that must not fail. */
static void
buf_append_uncapped(struct buf *b, const void *p, size_t n)
{
	buf_grow(b, xadd(b->len, n));
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_put_safe(struct buf *b, const void *p, size_t n, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t i, lim = n < cap ? n : cap;

	for (i = 0; i < lim; i++) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			buf_append_uncapped(b, &c, 1);
		} else {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
			buf_append_uncapped(b, e, sizeof(e));
		}
	}
	if (n > cap)
		buf_append_uncapped(b, "...", 3);
}
