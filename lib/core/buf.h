/*
 * buf: the one length-counted, growable byte buffer used for every string
 * that comes from outside.  Lengths are size_t, growth is overflow-checked,
 * and each buffer has an optional ceiling (max): an append that would pass
 * it fails with -1 and leaves the buffer as it was.  The data is always
 * followed by a NUL (not counted in len), so buf_cstr() is always valid;
 * the data itself may contain NULs.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;	/* len bytes, then a NUL; NULL until first growth */
	size_t len;	/* bytes in use */
	size_t cap;	/* bytes allocated, including room for the NUL */
	size_t max;	/* ceiling on len; 0 means SIZE_MAX - 1 */
};

#define BUF_INIT { NULL, 0, 0, 0 }

/* Initialise an empty buffer whose length may never exceed max (0: no cap). */
void buf_init(struct buf *b, size_t max);
/* Release the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Overwrite the whole allocation with zeros (for secrets), then free it. */
void buf_wipe(struct buf *b);
/* Set the length to zero, keeping the storage. */
void buf_reset(struct buf *b);

/* Make room for n more bytes.  0 on success, -1 if len + n passes max. */
int buf_reserve(struct buf *b, size_t n) __attribute__((warn_unused_result));
/* Append n bytes.  0, or -1 (buffer unchanged) if it would pass max. */
int buf_append(struct buf *b, const void *p, size_t n) __attribute__((warn_unused_result));
/* Append a NUL-terminated string.  0 or -1 as buf_append. */
int buf_puts(struct buf *b, const char *s) __attribute__((warn_unused_result));
/* Append one byte.  0 or -1 as buf_append. */
int buf_putc(struct buf *b, char c) __attribute__((warn_unused_result));
/* Append formatted text.  0, or -1 (buffer unchanged) past max. */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0), warn_unused_result));

/* Remove the first n bytes (n > len panics). */
void buf_consume(struct buf *b, size_t n);
/* Shorten to n bytes (n > len panics). */
void buf_truncate(struct buf *b, size_t n);
/* The contents as a C string ("" for an empty buffer).  Owned by b. */
const char *buf_cstr(const struct buf *b);
/* Take the storage: returns a malloc'd NUL-terminated copy and empties b. */
char *buf_steal(struct buf *b);

/*
 * Append a printable, length-capped rendering of untrusted bytes: printable
 * ASCII except backslash and double quote is copied, everything else becomes
 * \xHH, and after cap input bytes "..." is appended and the rest dropped.
 * For log lines and error replies.  Never fails (ignores b->max).
 */
void buf_put_safe(struct buf *b, const void *p, size_t n, size_t cap);

#endif
