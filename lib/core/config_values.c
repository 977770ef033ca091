/*
 * config_values: the value pass of postern.conf's parser -- each expanded
 * value parsed by its key's type (time, size, bool, integer, choice,
 * list), range-checked, and given to the key's check hook.  The line and
 * expansion passes are in config.c.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "config_impl.h"
#include "xalloc.h"

/* ------------------------------------------------------------------ */
/* Value pass                                                           */

/* Parse leading decimal digits of s into *v_r; *end_r after them.
 * 0, or -1 with *error_r if there are none or they overflow. */
static int
parse_digits(const char *s, uint64_t *v_r, const char **end_r,
    const char **error_r)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9') {
		*error_r = "not a number";
		return -1;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v)) {
			*error_r = "number too large";
			return -1;
		}
	}
	*v_r = v;
	*end_r = p;
	return 0;
}

/* A unit suffix and what it multiplies by. */
struct unit {
	const char *suffix;
	uint64_t mul;
};

static const struct unit time_units[] = {
	{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
	{ "h", 3600000 }, { "d", 86400000 }, { "w", 604800000 },
	{ NULL, 0 },
};

static const struct unit size_units[] = {
	{ "", 1 }, { "k", 1024 }, { "K", 1024 }, { "m", 1048576 },
	{ "M", 1048576 }, { "g", 1073741824 }, { "G", 1073741824 },
	{ NULL, 0 },
};

/* A number with a unit from units, multiplied out. */
static int
parse_with_unit(const char *s, const struct unit *units, uint64_t *v_r,
    const char **error_r, const char *unit_error)
{
	const char *end;
	uint64_t v;
	size_t i;

	if (parse_digits(s, &v, &end, error_r) < 0)
		return -1;
	for (i = 0; units[i].suffix != NULL; i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (__builtin_mul_overflow(v, units[i].mul, &v)) {
			*error_r = "number too large";
			return -1;
		}
		*v_r = v;
		return 0;
	}
	*error_r = unit_error;
	return -1;
}

int
cfg_parse_time_ms(const char *s, uint64_t *v_r, const char **error_r)
{
	return parse_with_unit(s, time_units, v_r, error_r,
	    "bad unit (use ms, s, m, h, d or w)");
}

int
cfg_parse_size(const char *s, uint64_t *v_r, const char **error_r)
{
	return parse_with_unit(s, size_units, v_r, error_r,
	    "bad unit (use none for bytes, k, m or g)");
}

int
cfg_parse_bool(const char *s, int *v_r, const char **error_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*v_r = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*v_r = 0;
			return 0;
		}
	}
	*error_r = "not a boolean (use yes or no)";
	return -1;
}

/* A decimal integer with an optional sign, overflow-checked. */
static int
parse_int(const char *s, long long *v_r, const char **error_r)
{
	const char *end;
	uint64_t mag;
	int neg = 0;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (parse_digits(s, &mag, &end, error_r) < 0)
		return -1;
	if (*end != '\0') {
		*error_r = "not a number";
		return -1;
	}
	if (mag > (uint64_t)LLONG_MAX + neg) {
		*error_r = "number too large";
		return -1;
	}
	*v_r = neg ? -(long long)(mag - 1) - 1 : (long long)mag;
	return 0;
}

/* Append amount in the largest unit of units that divides it exactly. */
static void
put_amount(struct buf *b, enum cfg_type type, long long v)
{
	static const struct unit time_show[] = {
		{ "w", 604800000 }, { "d", 86400000 }, { "h", 3600000 },
		{ "m", 60000 }, { "s", 1000 }, { "ms", 1 },
	};
	static const struct unit size_show[] = {
		{ "g", 1073741824 }, { "m", 1048576 }, { "k", 1024 }, { "", 1 },
	};
	const struct unit *u = NULL;
	size_t i, n = 0;

	if (type == CFG_TIME) {
		u = time_show;
		n = sizeof(time_show) / sizeof(time_show[0]);
	} else if (type == CFG_SIZE) {
		u = size_show;
		n = sizeof(size_show) / sizeof(size_show[0]);
	}
	for (i = 0; i < n; i++)
		if (v != 0 && v % (long long)u[i].mul == 0)
			break;
	if (i < n)
		cfg_put(b, "%lld%s", v / (long long)u[i].mul, u[i].suffix);
	else
		cfg_put(b, "%lld", v);
}

/* Report a bad value of key k (value text v) with a reason. */
static void
bad_value(struct parser *p, const struct cfg_section *sec, size_t k,
    const char *v, const char *reason)
{
	cfg_perr(p, cfg_item_line(sec, &sec->items[k]), "bad value '%s' for '%s': %s",
	    cfg_quote(p, v), sec->keys[k].name, reason);
}

/* Check the parsed number of key k (INT, TIME or SIZE) against the key's
 * [min, max]; both 0 means unbounded.  0, or -1 after reporting. */
static int
check_range(struct parser *p, const struct cfg_section *sec, size_t k)
{
	const struct cfg_key *key = &sec->keys[k];
	const struct cfg_item *it = &sec->items[k];
	struct buf why = BUF_INIT;
	int out;

	if (key->min == 0 && key->max == 0)
		return 0;
	if (key->type == CFG_INT)
		out = it->v.i < key->min || it->v.i > key->max;
	else
		out = key->max < 0 || it->v.u > (uint64_t)key->max ||
		    (key->min > 0 && it->v.u < (uint64_t)key->min);
	if (!out)
		return 0;
	cfg_put(&why, "out of range (");
	put_amount(&why, key->type, key->min);
	cfg_put(&why, " to ");
	put_amount(&why, key->type, key->max);
	cfg_put(&why, ")");
	bad_value(p, sec, k, it->val, buf_cstr(&why));
	buf_free(&why);
	return -1;
}

/* 1 if word is one of the space-separated choices. */
static int
is_choice(const char *choices, const char *word)
{
	size_t n = strlen(word), len;
	const char *s = choices;

	while (*s != '\0') {
		len = strcspn(s, " ");
		if (len == n && n > 0 && memcmp(s, word, n) == 0)
			return 1;
		s += len;
		s += strspn(s, " ");
	}
	return 0;
}

/* Append "one of: a, b, c" from space-separated choices. */
static void
put_choices(struct buf *b, const char *choices)
{
	const char *s = choices + strspn(choices, " ");
	const char *sep = "";
	size_t len;

	cfg_put(b, "not one of: ");
	while (*s != '\0') {
		len = strcspn(s, " ");
		cfg_put(b, "%s%.*s", sep, (int)len, s);
		sep = ", ";
		s += len;
		s += strspn(s, " ");
	}
}

/* Split a list value on whitespace and commas and check each item. */
static int
parse_list(struct parser *p, const struct cfg_section *sec, size_t k)
{
	const struct cfg_key *key = &sec->keys[k];
	struct cfg_item *it = &sec->items[k];
	const char *s = it->val, *error;
	struct cfg_list *l = &it->v.list;
	size_t n;
	int r = 0;

	for (;;) {
		s += strspn(s, " \t,");
		if (*s == '\0')
			break;
		n = strcspn(s, " \t,");
		l->items = xreallocarray(l->items, l->n + 1, sizeof(*l->items));
		l->items[l->n] = xstrndup(s, n);
		error = "";
		if (key->check != NULL && key->check(l->items[l->n], &error) < 0) {
			bad_value(p, sec, k, l->items[l->n], error);
			r = -1;
		}
		l->n++;
		s += n;
	}
	return r;
}

/* Parse the expanded value of key k by its type. */
static void
parse_value(struct parser *p, const struct cfg_section *sec, size_t k)
{
	const struct cfg_key *key = &sec->keys[k];
	struct cfg_item *it = &sec->items[k];
	const char *v = it->val, *error = "";
	struct buf why = BUF_INIT;

	switch (key->type) {
	case CFG_STR:
		break;
	case CFG_PATH:
		if (v[0] != '\0' && v[0] != '/') {
			bad_value(p, sec, k, v, "relative path (it must start "
			    "with '/')");
			return;
		}
		break;
	case CFG_INT:
		if (parse_int(v, &it->v.i, &error) < 0) {
			bad_value(p, sec, k, v, error);
			return;
		}
		if (check_range(p, sec, k) < 0)
			return;
		break;
	case CFG_BOOL:
		if (cfg_parse_bool(v, &it->v.b, &error) < 0) {
			bad_value(p, sec, k, v, error);
			return;
		}
		break;
	case CFG_TIME:
	case CFG_SIZE:
		if ((key->type == CFG_TIME ?
		    cfg_parse_time_ms(v, &it->v.u, &error) :
		    cfg_parse_size(v, &it->v.u, &error)) < 0) {
			bad_value(p, sec, k, v, error);
			return;
		}
		if (check_range(p, sec, k) < 0)
			return;
		break;
	case CFG_ENUM:
		if (!is_choice(key->choices, v)) {
			put_choices(&why, key->choices);
			bad_value(p, sec, k, v, buf_cstr(&why));
			buf_free(&why);
			return;
		}
		break;
	case CFG_LIST:
		(void)parse_list(p, sec, k);
		return;
	}
	if (key->check != NULL && key->check(v, &error) < 0)
		bad_value(p, sec, k, v, error);
}

/* Parse every expanded value of sec. */
void
cfg_parse_values(struct parser *p, const struct cfg_section *sec)
{
	size_t k;

	for (k = 0; k < sec->nkeys && !p->stop; k++)
		if (sec->items[k].state == EXPAND_DONE)
			parse_value(p, sec, k);
}
