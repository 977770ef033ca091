/*
 * failtab: the auth service's memory of recent failed logins, one table
 * each keyed by client address, by user, and by the pair.  Bounded: entries older than
 * the forget time expire, and a full table evicts its oldest entry.  Keys
 * come from attackers, so buckets are chosen by a keyed hash (SipHash).
 */
#ifndef POSTERN_AUTH_FAILTAB_H
#define POSTERN_AUTH_FAILTAB_H

#include <stddef.h>
#include <stdint.h>

struct failtab;

/* A table of at most max_entries keys; a failure counts for forget_ms
 * after the key's latest failure. */
struct failtab *failtab_new(size_t max_entries, uint64_t forget_ms);
void failtab_free(struct failtab **tp);

/* Count one more failure for key at now (ms, monotonic); returns the
 * number of recent failures including this one. */
unsigned failtab_add(struct failtab *t, const char *key, uint64_t now);
/* The number of recent failures for key (0: none). */
unsigned failtab_count(struct failtab *t, const char *key, uint64_t now);
/* Forget key's failures (after a successful login). */
void failtab_forget(struct failtab *t, const char *key);
/* Take n failures off key's count (at most all of them: none left
 * forgets the key); its age is unchanged. */
void failtab_sub(struct failtab *t, const char *key, unsigned n);
/* Keys held now (expired ones go as they are met). */
size_t failtab_size(const struct failtab *t);

/* The penalty after n recent failures: base * 2^(n-1), at most max;
 * 0 for n == 0. */
uint64_t failtab_delay(unsigned n, uint64_t base, uint64_t max);

#endif
