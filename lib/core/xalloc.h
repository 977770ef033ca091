/*
 * xalloc: allocation wrappers that never return NULL.  On failure they log
 * a fatal error and exit, so callers never test the result.  Sizes are
 * overflow-checked.
 */
#ifndef POSTERN_XALLOC_H
#define POSTERN_XALLOC_H

#include <stddef.h>

/* Allocate n bytes (n == 0 allocates 1).  Never returns NULL. */
void *xmalloc(size_t n);
/* Allocate nmemb * size zeroed bytes; exits on overflow.  Never NULL. */
void *xcalloc(size_t nmemb, size_t size);
/* Resize p to nmemb * size bytes; exits on overflow.  Never NULL. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
/* Copy of the NUL-terminated string s.  Never NULL. */
char *xstrdup(const char *s);
/* Copy of n bytes of s plus a NUL.  Never NULL. */
char *xstrndup(const char *s, size_t n);
/* Formatted allocation like asprintf; exits on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* free(*pp) and set *pp = NULL.  pp is a pointer to any object pointer. */
#define xfree(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

/* a * b, or exit on overflow. */
size_t xmul(size_t a, size_t b);
/* a + b, or exit on overflow. */
size_t xadd(size_t a, size_t b);

#endif
