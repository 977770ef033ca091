/*
 * alias: alias expansion and virtual mailbox paths.
 *
 * Expansion is a depth-first walk.  Each address is looked up as itself,
 * then as "@domain" (the catch-all).  An address whose own entry lists
 * it again is delivered to itself there; any other address that comes
 * back while it is still being expanded is a loop and fails the whole
 * expansion, as does going deeper than the limit.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "alias.h"
#include "log.h"
#include "xalloc.h"

/* Longest address we handle (RFC 5321: 64 + 1 + 255, with room). */
#define ALIAS_MAX_ADDRESS 320

struct walk {
	struct map *map;
	unsigned max_depth;
	struct alias_result *r;
	const char **path;	/* addresses being expanded, outermost first */
	size_t depth;
	struct buf value;
	const char *error;
};

void
alias_result_free(struct alias_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->addrs[i]);
	free(r->addrs);
	r->addrs = NULL;
	r->n = 0;
}

/* A copy of address with its domain in lower case. */
static char *
normalize(const char *address, size_t len)
{
	char *a = xstrndup(address, len);
	char *at = strrchr(a, '@');

	if (at != NULL)
		for (char *p = at + 1; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return a;
}

/* Add a final address unless it is already there (case-insensitive). */
static void
add_final(struct alias_result *r, const char *address)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcasecmp(r->addrs[i], address) == 0)
			return;
	r->addrs = xreallocarray(r->addrs, r->n + 1, sizeof(*r->addrs));
	r->addrs[r->n++] = xstrdup(address);
}

/* Look address up: itself, then its @domain.  1 with *value_r, 0, -1. */
static int
lookup(struct walk *w, const char *address, char **value_r)
{
	const char *at = strrchr(address, '@');
	int r;

	r = map_lookup(w->map, address, &w->value, &w->error);
	if (r == 0 && at != NULL && at != address)
		r = map_lookup(w->map, at, &w->value, &w->error);
	if (r == 1)
		*value_r = xstrdup(buf_cstr(&w->value));
	return r;
}

static int expand(struct walk *w, const char *address);

/* Expand every comma-separated address in value, the entry of parent. */
static int
expand_list(struct walk *w, const char *parent, char *value)
{
	char *save = NULL;
	int any = 0;

	for (char *item = strtok_r(value, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		size_t len;
		char *a;
		int r;

		while (*item == ' ' || *item == '\t')
			item++;
		len = strlen(item);
		while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
			len--;
		if (len == 0)
			continue;
		if (len > ALIAS_MAX_ADDRESS) {
			w->error = err_fmt("alias of %s lists an address longer than %d bytes",
			    log_safe(parent), ALIAS_MAX_ADDRESS);
			return 0;
		}
		a = normalize(item, len);
		any = 1;
		if (strcasecmp(a, parent) == 0) {
			/* "user: user, other": user keeps its own copy. */
			add_final(w->r, a);
			r = 1;
		} else {
			r = expand(w, a);
		}
		free(a);
		if (r <= 0)
			return r;
	}
	if (!any) {
		w->error = err_fmt("alias of %s is empty", log_safe(parent));
		return 0;
	}
	return 1;
}

/* Expand one address into w->r.  1, 0 (loop/too deep/empty), -1. */
static int
expand(struct walk *w, const char *address)
{
	char *value = NULL;
	int r;

	for (size_t i = 0; i < w->depth; i++) {
		if (strcasecmp(w->path[i], address) == 0) {
			w->error = err_fmt("alias loop: %s expands to itself via %s",
			    log_safe(address), log_safe(w->path[w->depth - 1]));
			return 0;
		}
	}
	if (w->map == NULL || (r = lookup(w, address, &value)) == 0) {
		add_final(w->r, address);
		return 1;
	}
	if (r < 0)
		return -1;
	if (w->depth >= w->max_depth) {
		w->error = err_fmt("alias expansion of %s is deeper than %u levels",
		    log_safe(w->path[0]), w->max_depth);
		free(value);
		return 0;
	}
	w->path[w->depth++] = address;
	r = expand_list(w, address, value);
	w->depth--;
	free(value);
	return r;
}

int
alias_expand(struct map *aliases, const char *address, unsigned max_depth,
    struct alias_result *r, const char **error_r)
{
	struct walk w;
	struct alias_result res = { NULL, 0 };
	char *a;
	int ret;

	if (strlen(address) > ALIAS_MAX_ADDRESS) {
		*error_r = "address too long";
		return 0;
	}
	memset(&w, 0, sizeof(w));
	w.map = aliases;
	w.max_depth = max_depth;
	w.r = &res;
	w.path = xcalloc(max_depth + 1, sizeof(*w.path));
	buf_init(&w.value, MAP_MAX_VALUE);
	a = normalize(address, strlen(address));
	ret = expand(&w, a);
	free(a);
	free(w.path);
	buf_free(&w.value);
	if (ret <= 0) {
		alias_result_free(&res);
		*error_r = w.error != NULL ? w.error : "alias map unreadable";
		return ret;
	}
	*r = res;
	return 1;
}

/* 1 if s is usable as one path component of a mailbox directory. */
static int
component_ok(const char *s, size_t n)
{
	if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == '\0' || (unsigned char)s[i] < 0x20)
			return 0;
	return 1;
}

/* 1 if rel is a relative path without empty, "." or ".." components. */
static int
relative_ok(const char *rel)
{
	const char *p = rel;

	if (rel[0] == '/' || rel[0] == '\0')
		return 0;
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (!component_ok(p, n) && !(slash == NULL && n == 0))
			return 0;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return 1;
}

int
mailbox_path(struct map *mailboxes, const char *address, struct buf *out,
    const char **error_r)
{
	const char *at = strrchr(address, '@');
	struct buf v = BUF_INIT;
	int r = 0;

	if (at == NULL || at == address || at[1] == '\0' ||
	    !component_ok(address, (size_t)(at - address)) ||
	    !component_ok(at + 1, strlen(at + 1))) {
		*error_r = err_fmt("%s cannot name a mailbox", log_safe(address));
		return 0;
	}
	if (mailboxes != NULL) {
		buf_init(&v, MAP_MAX_VALUE);
		r = map_lookup(mailboxes, address, &v, error_r);
		if (r < 0) {
			buf_free(&v);
			return -1;
		}
	}
	if (r == 1) {
		if (!relative_ok(buf_cstr(&v))) {
			*error_r = err_fmt("virtual_mailboxes entry of %s is not a relative "
			    "path inside the mail store", log_safe(address));
			buf_free(&v);
			return 0;
		}
		buf_reset(out);
		if (buf_append(out, v.data, v.len) < 0 ||
		    (v.data[v.len - 1] != '/' && buf_putc(out, '/') < 0)) {
			buf_free(&v);
			*error_r = "mailbox path too long";
			return 0;
		}
		buf_free(&v);
		return 1;
	}
	buf_reset(out);
	for (const char *p = at + 1; *p != '\0'; p++)
		if (buf_putc(out, (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p)) < 0)
			goto long_path;
	if (buf_putc(out, '/') < 0)
		goto long_path;
	for (const char *p = address; p < at; p++)
		if (buf_putc(out, (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p)) < 0)
			goto long_path;
	if (buf_putc(out, '/') < 0)
		goto long_path;
	return 1;
long_path:
	*error_r = "mailbox path too long";
	return 0;
}
