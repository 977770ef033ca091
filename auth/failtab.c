/*
 * failtab: recent failed logins per key, in a chained hash table (keyed
 * SipHash-2-4, so a client cannot pick colliding keys) whose entries are
 * also on a list from least to most recently failed: expiry and eviction
 * both take from the front of that list, so every operation is O(1).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "failtab.h"
#include "log.h"
#include "xalloc.h"

#define FAILTAB_MIN_BUCKETS 256

struct fail_entry {
	struct fail_entry *chain;		/* same bucket */
	struct fail_entry *older, *newer;	/* by latest failure */
	uint64_t last;				/* latest failure, ms */
	uint64_t hash;
	unsigned count;
	char key[];
};

struct failtab {
	struct fail_entry **buckets;
	size_t nbuckets;		/* a power of two */
	size_t n, max;
	uint64_t forget_ms;
	struct fail_entry *oldest, *newest;
	uint64_t k0, k1;		/* the hash key */
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

/* SipHash-2-4 of n bytes under the key (k0, k1). */
static uint64_t
siphash(uint64_t k0, uint64_t k1, const unsigned char *p, size_t n)
{
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)n << 56;
	size_t i, tail = n & 7;

	for (i = 0; i + 8 <= n; i += 8) {
		m = 0;
		for (int k = 7; k >= 0; k--)
			m = m << 8 | p[i + (size_t)k];
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t k = 0; k < tail; k++)
		b |= (uint64_t)p[i + k] << (8 * k);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

struct failtab *
failtab_new(size_t max_entries, uint64_t forget_ms)
{
	struct failtab *t = xcalloc(1, sizeof(*t));
	uint64_t key[2];

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		log_fatal("event=getrandom_failed error=\"%s\"", strerror(errno));
	t->k0 = key[0];
	t->k1 = key[1];
	t->max = max_entries > 0 ? max_entries : 1;
	t->forget_ms = forget_ms;
	t->nbuckets = FAILTAB_MIN_BUCKETS;
	t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
	return t;
}

void
failtab_free(struct failtab **tp)
{
	struct failtab *t = *tp;
	struct fail_entry *e, *next;

	if (t == NULL)
		return;
	for (e = t->oldest; e != NULL; e = next) {
		next = e->newer;
		free(e);
	}
	free(t->buckets);
	free(t);
	*tp = NULL;
}

/* Take e off the age list. */
static void
age_unlink(struct failtab *t, struct fail_entry *e)
{
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	e->older = e->newer = NULL;
}

/* Put e at the young end of the age list. */
static void
age_append(struct failtab *t, struct fail_entry *e)
{
	e->newer = NULL;
	e->older = t->newest;
	if (t->newest != NULL)
		t->newest->newer = e;
	else
		t->oldest = e;
	t->newest = e;
}

/* Remove and free e. */
static void
entry_remove(struct failtab *t, struct fail_entry *e)
{
	struct fail_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	age_unlink(t, e);
	t->n--;
	free(e);
}

/* Drop the entries whose latest failure is older than the forget time. */
static void
expire(struct failtab *t, uint64_t now)
{
	while (t->oldest != NULL && now - t->oldest->last >= t->forget_ms)
		entry_remove(t, t->oldest);
}

/* Double the bucket array (keeping at most about one entry per bucket). */
static void
grow(struct failtab *t)
{
	size_t nb = t->nbuckets * 2;
	struct fail_entry **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < t->nbuckets; i++) {
		struct fail_entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->chain;
			e->chain = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

/* The entry for key, or NULL; *hash_r gets the key's hash. */
static struct fail_entry *
find(struct failtab *t, const char *key, uint64_t *hash_r)
{
	size_t len = strlen(key);
	uint64_t h = siphash(t->k0, t->k1, (const unsigned char *)key, len);

	*hash_r = h;
	for (struct fail_entry *e = t->buckets[h & (t->nbuckets - 1)]; e != NULL;
	    e = e->chain)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

unsigned
failtab_add(struct failtab *t, const char *key, uint64_t now)
{
	struct fail_entry *e;
	uint64_t h;
	size_t len;

	expire(t, now);
	if ((e = find(t, key, &h)) != NULL) {
		if (e->count < UINT32_MAX)
			e->count++;
		e->last = now;
		age_unlink(t, e);
		age_append(t, e);
		return e->count;
	}
	if (t->n >= t->max)
		entry_remove(t, t->oldest);
	if (t->n >= t->nbuckets && t->nbuckets < SIZE_MAX / 2 / sizeof(*t->buckets))
		grow(t);
	len = strlen(key);
	e = xmalloc(xadd(sizeof(*e), xadd(len, 1)));
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->count = 1;
	e->last = now;
	e->chain = t->buckets[h & (t->nbuckets - 1)];
	t->buckets[h & (t->nbuckets - 1)] = e;
	age_append(t, e);
	t->n++;
	return 1;
}

unsigned
failtab_count(struct failtab *t, const char *key, uint64_t now)
{
	struct fail_entry *e;
	uint64_t h;

	expire(t, now);
	e = find(t, key, &h);
	return e != NULL ? e->count : 0;
}

void
failtab_forget(struct failtab *t, const char *key)
{
	struct fail_entry *e;
	uint64_t h;

	if ((e = find(t, key, &h)) != NULL)
		entry_remove(t, e);
}

void
failtab_sub(struct failtab *t, const char *key, unsigned n)
{
	struct fail_entry *e;
	uint64_t h;

	if ((e = find(t, key, &h)) == NULL)
		return;
	if (n >= e->count)
		entry_remove(t, e);
	else
		e->count -= n;
}

size_t
failtab_size(const struct failtab *t)
{
	return t->n;
}

uint64_t
failtab_delay(unsigned n, uint64_t base, uint64_t max)
{
	uint64_t d = base;

	if (n == 0 || base == 0)
		return 0;
	for (unsigned i = 1; i < n && d < max; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	return d < max ? d : max;
}
