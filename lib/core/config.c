/*
 * config: reads postern.conf in three passes.  The line pass splits the
 * text into settings and service blocks and records each raw value with
 * its line; the expansion pass fills in defaults and replaces $references
 * to global settings (memoized, with loop detection); the value pass parses
 * each expanded value by its key's type and runs the key's check hook.
 * Every pass keeps going after an error so that one run reports them all,
 * up to CFG_ERRORS_MAX.  The file is untrusted input for the purpose of
 * robustness (the fuzzer feeds it anything): lines, values and the file are
 * capped, and text from it is escaped before it reaches a message.
 * The value pass is in config_values.c; what the two share is in
 * config_impl.h.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "config_impl.h"
#include "log.h"
#include "xalloc.h"


/* Append formatted text to an internal, uncapped buffer. */
void
cfg_put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	if (r < 0)
		log_panic("event=bug where=config uncapped_buffer_full");
}

/* Append a whole message line to the caller's error buffer, starting a
 * new line if needed.  Past the buffer's ceiling the line is dropped: the
 * load fails all the same. */
static void
err_line(struct buf *err, const char *line)
{
	size_t mark = err->len;

	if (err->len > 0 && err->data[err->len - 1] != '\n' &&
	    buf_putc(err, '\n') < 0)
		return;
	if (buf_puts(err, line) < 0 ||
	    buf_putc(err, '\n') < 0)
		buf_truncate(err, mark);
}

/* Record one error at line (0: no line); stop after CFG_ERRORS_MAX. */
void
cfg_perr(struct parser *p, size_t line, const char *fmt, ...)
{
	struct cfg_error *e;
	struct buf msg = BUF_INIT;
	va_list ap;
	int r;

	if (p->stop)
		return;
	if (line > 0)
		cfg_put(&msg, "%s:%zu: ", p->name, line);
	else
		cfg_put(&msg, "%s: ", p->name);
	va_start(ap, fmt);
	r = buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		log_panic("event=bug where=config uncapped_buffer_full");
	e = &p->errors[p->nerrors];
	e->line = line;
	e->seq = p->nerrors;
	e->text = buf_steal(&msg);
	if (++p->nerrors == CFG_ERRORS_MAX)
		p->stop = 1;
}

/* qsort order of errors: by line, file-wide ones last, then as found. */
static int
error_cmp(const void *a, const void *b)
{
	const struct cfg_error *x = a, *y = b;
	size_t lx = x->line > 0 ? x->line : SIZE_MAX;
	size_t ly = y->line > 0 ? y->line : SIZE_MAX;

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Append the recorded errors to the caller's buffer, in line order. */
static void
flush_errors(struct parser *p)
{
	struct buf msg = BUF_INIT;
	size_t i;

	qsort(p->errors, p->nerrors, sizeof(p->errors[0]), error_cmp);
	for (i = 0; i < p->nerrors; i++) {
		err_line(p->err, p->errors[i].text);
		free(p->errors[i].text);
	}
	if (p->stop) {
		cfg_put(&msg, "%s: too many errors, stopping", p->name);
		err_line(p->err, buf_cstr(&msg));
	}
	buf_free(&msg);
}

/* n bytes of file text, escaped and capped, valid for a few calls. */
static const char *
quote_n(struct parser *p, const char *s, size_t n)
{
	struct buf *b = &p->quote[p->qnext++ % CFG_QUOTE_SLOTS];

	buf_reset(b);
	buf_put_safe(b, s, n, CFG_QUOTE_CAP);
	return buf_cstr(b);
}

/* A NUL-terminated string of file text, as quote_n(). */
const char *
cfg_quote(struct parser *p, const char *s)
{
	return quote_n(p, s, strlen(s));
}

/* The index of the key named by n bytes at name, or -1. */
static ssize_t
key_index(const struct cfg_key *keys, size_t nkeys, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < nkeys; i++)
		if (strlen(keys[i].name) == n && memcmp(keys[i].name, name, n) == 0)
			return (ssize_t)i;
	return -1;
}

/* Edit distance (insert, delete, substitute, swap neighbours) of a and b,
 * or 3 if it is more than 2. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, d, best = 0;
	size_t *r0, *r1, *r2, *t;

	if ((la > lb ? la - lb : lb - la) > 2)
		return 3;
	r0 = xcalloc(lb + 1, sizeof(*r0));	/* row i - 2 */
	r1 = xcalloc(lb + 1, sizeof(*r1));	/* row i - 1 */
	r2 = xcalloc(lb + 1, sizeof(*r2));	/* row i */
	for (j = 0; j <= lb; j++)
		r1[j] = j;
	for (i = 1; i <= la; i++) {
		r2[0] = i;
		best = i;
		for (j = 1; j <= lb; j++) {
			d = r1[j - 1] + (a[i - 1] != b[j - 1]);
			if (r1[j] + 1 < d)
				d = r1[j] + 1;
			if (r2[j - 1] + 1 < d)
				d = r2[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && r0[j - 2] + 1 < d)
				d = r0[j - 2] + 1;
			r2[j] = d;
			if (d < best)
				best = d;
		}
		t = r0;
		r0 = r1;
		r1 = r2;
		r2 = t;
		if (best > 2)
			break;
	}
	d = best > 2 ? 3 : r1[lb];
	free(r0);
	free(r1);
	free(r2);
	return d > 2 ? 3 : d;
}

/* The declared key closest to name within edit distance 2, or NULL. */
static const char *
closest_key(const struct cfg_key *keys, size_t nkeys, const char *name)
{
	const char *best = NULL;
	size_t i, d, bestd = 3;

	for (i = 0; i < nkeys; i++) {
		d = edit_distance(name, keys[i].name);
		if (d < bestd) {
			bestd = d;
			best = keys[i].name;
		}
	}
	return best;
}

/* Set up sec for the given key table; sec takes name (may be NULL). */
static void
section_init(struct cfg_section *sec, char *name, size_t line,
    const struct cfg_key *keys, size_t nkeys)
{
	size_t i;

	sec->name = name;
	sec->line = line;
	sec->keys = keys;
	sec->nkeys = nkeys;
	sec->items = xcalloc(nkeys ? nkeys : 1, sizeof(*sec->items));
	for (i = 0; i < nkeys; i++)
		buf_init(&sec->items[i].raw, CFG_VALUE_MAX);
}

/* Release what section_init() and the passes allocated. */
static void
section_clear(struct cfg_section *sec)
{
	struct cfg_item *it;
	size_t i, j;

	for (i = 0; i < sec->nkeys; i++) {
		it = &sec->items[i];
		buf_free(&it->raw);
		free(it->val);
		if (sec->keys[i].type == CFG_LIST) {
			for (j = 0; j < it->v.list.n; j++)
				free(it->v.list.items[j]);
			free(it->v.list.items);
		}
	}
	free(sec->items);
	free(sec->name);
}

/* The line to blame for an item: its own, else its block's (0: none). */
size_t
cfg_item_line(const struct cfg_section *sec, const struct cfg_item *it)
{
	return it->line > 0 ? it->line : sec->line;
}

/* ------------------------------------------------------------------ */
/* Line pass                                                            */

/* Stop adding continuation text to anything (after a refused statement). */
static void
drop_continuations(struct parser *p, size_t indent)
{
	p->have_setting = 1;
	p->cur = NULL;
	p->cur_indent = p->in_block ? indent : 0;
}

/* 1 if name is a valid service name: [a-z0-9_-]{1,32}. */
static int
valid_service_name(const char *name, size_t n)
{
	size_t i;

	if (n == 0 || n > CFG_SERVICE_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= '0' && name[i] <= '9') ||
		    name[i] == '_' || name[i] == '-'))
			return 0;
	return 1;
}

/* A "service NAME {" line; rest follows the word "service". */
static void
parse_service(struct parser *p, const char *rest)
{
	struct config *cfg = p->cfg;
	struct cfg_section *sec;
	const char *name, *s;
	size_t n, i;

	p->have_setting = 0;
	p->cur = NULL;
	if (p->in_block) {
		cfg_perr(p, p->lineno, "nested service block (a service block "
		    "cannot contain another)");
		p->skip_depth = 1;
		return;
	}
	if (cfg->nservices >= CFG_SERVICES_MAX) {
		cfg_perr(p, p->lineno, "more than %d service blocks",
		    CFG_SERVICES_MAX);
		p->skip_depth = 1;
		return;
	}
	name = rest + strspn(rest, " \t");
	n = strcspn(name, " \t{");
	s = name + n;
	s += strspn(s, " \t");
	if (n == 0)
		cfg_perr(p, p->lineno, "missing service name: expected "
		    "'service NAME {'");
	else if (!valid_service_name(name, n))
		cfg_perr(p, p->lineno, "invalid service name '%s' (1 to %d "
		    "characters from a-z, 0-9, '_' and '-')",
		    quote_n(p, name, n), CFG_SERVICE_NAME_MAX);
	else if (*s != '{')
		cfg_perr(p, p->lineno, "expected '{' after 'service %s'",
		    quote_n(p, name, n));
	else if (s[1 + strspn(s + 1, " \t")] != '\0')
		cfg_perr(p, p->lineno, "unexpected text after '{' (put settings "
		    "on lines of their own)");
	for (i = 0; n > 0 && i < cfg->nservices; i++) {
		if (strlen(cfg->services[i]->name) == n &&
		    memcmp(cfg->services[i]->name, name, n) == 0) {
			cfg_perr(p, p->lineno, "duplicate service '%s' (first "
			    "defined at line %zu)", quote_n(p, name, n),
			    cfg->services[i]->line);
			break;
		}
	}
	/* Open the block even after an error, so its settings are still
	 * checked and its '}' matches. */
	sec = xcalloc(1, sizeof(*sec));
	section_init(sec, xstrndup(name, n), p->lineno, config_service_keys,
	    config_service_nkeys);
	cfg->services = xreallocarray(cfg->services, cfg->nservices + 1,
	    sizeof(*cfg->services));
	cfg->services[cfg->nservices++] = sec;
	p->sec = sec;
	p->in_block = 1;
}

/* A "key = value" line (body has no leading or trailing whitespace). */
static void
parse_setting(struct parser *p, const char *body, size_t indent)
{
	struct cfg_section *sec = p->sec;
	const char *eq = strchr(body, '='), *value, *hint;
	struct cfg_item *it;
	size_t klen;
	ssize_t k;

	drop_continuations(p, indent);
	if (eq == NULL) {
		cfg_perr(p, p->lineno, "missing '=' in '%s' (expected 'key = "
		    "value')", cfg_quote(p, body));
		return;
	}
	klen = (size_t)(eq - body);
	while (klen > 0 && (body[klen - 1] == ' ' || body[klen - 1] == '\t'))
		klen--;
	value = eq + 1 + strspn(eq + 1, " \t");
	if (klen == 0) {
		cfg_perr(p, p->lineno, "empty key before '='");
		return;
	}
	k = key_index(sec->keys, sec->nkeys, body, klen);
	if (k < 0) {
		if (sec->name != NULL && key_index(config_global_keys,
		    config_global_nkeys, body, klen) >= 0)
			cfg_perr(p, p->lineno, "'%s' is a global setting: it cannot "
			    "be set in a service block", quote_n(p, body, klen));
		else if (sec->name == NULL && key_index(config_service_keys,
		    config_service_nkeys, body, klen) >= 0)
			cfg_perr(p, p->lineno, "'%s' can only be set in a service "
			    "block", quote_n(p, body, klen));
		else if (klen == 7 && memcmp(body, "service", 7) == 0)
			cfg_perr(p, p->lineno, "expected 'service NAME {'");
		else {
			char *key = xstrndup(body, klen);

			hint = closest_key(sec->keys, sec->nkeys, key);
			if (hint != NULL)
				cfg_perr(p, p->lineno, "unknown key '%s' (did you "
				    "mean '%s'?)", cfg_quote(p, key), hint);
			else
				cfg_perr(p, p->lineno, "unknown key '%s'",
				    cfg_quote(p, key));
			free(key);
		}
		return;
	}
	it = &sec->items[k];
	if (it->set) {
		cfg_perr(p, p->lineno, "duplicate key '%s' (first set at line %zu)",
		    sec->keys[k].name, it->line);
		return;
	}
	it->set = 1;
	it->line = p->lineno;
	if (buf_puts(&it->raw, value) < 0)
		log_panic("event=bug where=config value_longer_than_line");
	p->cur = it;
}

/* A line that continues the current setting's value. */
static void
parse_continuation(struct parser *p, const char *body)
{
	struct cfg_item *it = p->cur;

	if (it == NULL)
		return;
	if ((it->raw.len > 0 && buf_putc(&it->raw, ' ') < 0) ||
	    buf_puts(&it->raw, body) < 0) {
		cfg_perr(p, it->line, "the value is longer than %d bytes",
		    CFG_VALUE_MAX);
		it->state = EXPAND_FAILED;
		p->cur = NULL;
	}
}

/* 1 if body opens a service block: the word "service" not followed by '='. */
static int
is_service_line(const char *body)
{
	if (strncmp(body, "service", 7) != 0 ||
	    (body[7] != '\0' && body[7] != ' ' && body[7] != '\t' &&
	    body[7] != '{'))
		return 0;
	return body[7 + strspn(body + 7, " \t")] != '=';
}

/* One line without its terminator; s is NUL-terminated and NUL-free. */
static void
parse_line(struct parser *p, char *s)
{
	size_t indent = 0, i, n;
	char *body;

	for (i = 0; s[i] == ' ' || s[i] == '\t'; i++)
		indent = s[i] == '\t' ?
		    (indent / CFG_TAB_WIDTH + 1) * CFG_TAB_WIDTH : indent + 1;
	body = s + i;
	n = strlen(body);
	while (n > 0 && (body[n - 1] == ' ' || body[n - 1] == '\t'))
		body[--n] = '\0';
	if (n == 0 || body[0] == '#')
		return;		/* blank lines and comments continue nothing */

	if (p->skip_depth > 0) {
		if (strcmp(body, "}") == 0)
			p->skip_depth--;
		else if (is_service_line(body))
			p->skip_depth++;
		return;
	}
	if (strcmp(body, "}") == 0) {
		if (!p->in_block)
			cfg_perr(p, p->lineno, "'}' without a service block");
		p->in_block = 0;
		p->sec = &p->cfg->global;
		p->have_setting = 0;
		p->cur = NULL;
		p->seen_statement = 1;
		return;
	}
	if (indent > 0 && (!p->in_block ||
	    (p->have_setting && indent > p->cur_indent))) {
		if (p->have_setting)
			parse_continuation(p, body);
		else if (!p->seen_statement)
			cfg_perr(p, p->lineno, "continuation line at start of file "
			    "(settings start at the beginning of a line)");
		else
			cfg_perr(p, p->lineno, "continuation line with no setting "
			    "to continue (global settings start at the "
			    "beginning of a line)");
		return;
	}
	p->seen_statement = 1;
	if (is_service_line(body))
		parse_service(p, body + 7);
	else
		parse_setting(p, body, indent);
}

/* Split text into lines and parse each; catches long lines and NULs. */
static void
parse_lines(struct parser *p, const char *text, size_t len)
{
	const char *s, *nl;
	size_t pos = 0, n;

	while (pos < len && !p->stop) {
		s = text + pos;
		nl = memchr(s, '\n', len - pos);
		n = nl != NULL ? (size_t)(nl - s) : len - pos;
		pos += nl != NULL ? n + 1 : n;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		p->lineno++;
		if (n > CFG_LINE_MAX) {
			cfg_perr(p, p->lineno, "line longer than %d bytes",
			    CFG_LINE_MAX);
			drop_continuations(p, p->cur_indent);
			continue;
		}
		if (memchr(s, '\0', n) != NULL) {
			cfg_perr(p, p->lineno, "NUL byte in line");
			drop_continuations(p, p->cur_indent);
			continue;
		}
		buf_reset(&p->line);
		if (buf_append(&p->line, s, n) < 0)
			log_panic("event=bug where=config line_buffer");
		parse_line(p, p->line.data);	/* allocated even for n == 0 */
	}
	if (!p->stop && p->in_block)
		cfg_perr(p, p->sec->line, "service block '%s' is not closed "
		    "(missing '}')", cfg_quote(p, p->sec->name));
}

/* ------------------------------------------------------------------ */
/* Expansion pass                                                       */

static int expand_global(struct parser *, size_t);

/* 1 if c may appear in a $name. */
static int
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

/* Report the loop closed by referring to global key ref from it. */
static void
report_loop(struct parser *p, const struct cfg_section *sec,
    const struct cfg_item *it, size_t ref)
{
	const struct cfg_key *keys = config_global_keys;
	struct cfg_item *target = &p->cfg->global.items[ref];
	struct buf path = BUF_INIT;
	size_t i = 0, line;

	while (i < p->depth && p->stack[i] != ref)
		i++;
	for (; i < p->depth; i++)
		cfg_put(&path, "$%s -> ", keys[p->stack[i]].name);
	cfg_put(&path, "$%s", keys[ref].name);
	line = cfg_item_line(sec, it);
	if (line == 0)
		line = target->line;
	cfg_perr(p, line, "reference loop: %s", buf_cstr(&path));
	buf_free(&path);
}

/* Expand it->raw into it->val.  0, or -1 after reporting (or quietly if
 * a referenced setting already failed). */
static int
expand_item(struct parser *p, const struct cfg_section *sec, size_t k)
{
	struct cfg_item *it = &sec->items[k];
	const char *key = sec->keys[k].name;
	const char *s = buf_cstr(&it->raw), *name, *end, *run;
	size_t n = it->raw.len, i = 0, nlen;
	struct buf out;
	ssize_t ref;

	buf_init(&out, CFG_VALUE_MAX);
	while (i < n) {
		if (s[i] != '$') {
			run = memchr(s + i, '$', n - i);
			nlen = run != NULL ? (size_t)(run - (s + i)) : n - i;
			if (buf_append(&out, s + i, nlen) < 0)
				goto too_long;
			i += nlen;
			continue;
		}
		if (i + 1 < n && s[i + 1] == '$') {
			if (buf_putc(&out, '$') < 0)
				goto too_long;
			i += 2;
			continue;
		}
		if (i + 1 < n && s[i + 1] == '{') {
			name = s + i + 2;
			end = memchr(name, '}', n - i - 2);
			if (end == NULL) {
				cfg_perr(p, cfg_item_line(sec, it), "'%s': '${' without "
				    "'}'", key);
				goto fail;
			}
			nlen = (size_t)(end - name);
			i += nlen + 3;
		} else {
			name = s + i + 1;
			for (nlen = 0; i + 1 + nlen < n &&
			    is_name_char(name[nlen]); nlen++)
				;
			if (nlen == 0) {
				cfg_perr(p, cfg_item_line(sec, it), "'%s': '$' must be "
				    "followed by a name, '{name}' or '$' (write "
				    "'$$' for a '$')", key);
				goto fail;
			}
			i += nlen + 1;
		}
		ref = key_index(config_global_keys, config_global_nkeys, name,
		    nlen);
		if (ref < 0) {
			cfg_perr(p, cfg_item_line(sec, it), "'%s': unknown reference "
			    "'$%s' (only global settings can be referred to)",
			    key, quote_n(p, name, nlen));
			goto fail;
		}
		if (p->cfg->global.items[ref].state == EXPAND_ACTIVE) {
			report_loop(p, sec, it, (size_t)ref);
			goto fail;
		}
		if (expand_global(p, (size_t)ref) < 0)
			goto fail;
		if (buf_puts(&out, p->cfg->global.items[ref].val) < 0)
			goto too_long;
	}
	it->val = buf_steal(&out);
	return 0;

too_long:
	cfg_perr(p, cfg_item_line(sec, it), "'%s': the value is longer than %d bytes "
	    "after expansion", key, CFG_VALUE_MAX);
fail:
	buf_free(&out);
	return -1;
}

/* Expand global key k once, whatever refers to it. */
static int
expand_global(struct parser *p, size_t k)
{
	struct cfg_item *it = &p->cfg->global.items[k];
	int r;

	if (it->state == EXPAND_DONE)
		return 0;
	if (it->state == EXPAND_FAILED)
		return -1;
	it->state = EXPAND_ACTIVE;
	p->stack[p->depth++] = k;
	r = expand_item(p, &p->cfg->global, k);
	p->depth--;
	it->state = r == 0 ? EXPAND_DONE : EXPAND_FAILED;
	return r;
}

/* Give every unset key its default text. */
static void
fill_defaults(struct cfg_section *sec)
{
	struct cfg_item *it;
	size_t i;

	for (i = 0; i < sec->nkeys; i++) {
		it = &sec->items[i];
		if (!it->set && sec->keys[i].def != NULL &&
		    buf_puts(&it->raw, sec->keys[i].def) < 0)
			log_panic("event=bug where=config key=%s "
			    "default_too_long", sec->keys[i].name);
	}
}

/* Expand every value of every section. */
static void
expand_all(struct parser *p)
{
	struct config *cfg = p->cfg;
	struct cfg_section *sec;
	struct cfg_item *it;
	size_t i, k;

	p->stack = xcalloc(config_global_nkeys ? config_global_nkeys : 1,
	    sizeof(*p->stack));
	for (k = 0; k < config_global_nkeys && !p->stop; k++)
		(void)expand_global(p, k);
	for (i = 0; i < cfg->nservices && !p->stop; i++) {
		sec = cfg->services[i];
		for (k = 0; k < sec->nkeys; k++) {
			it = &sec->items[k];
			if (it->state == EXPAND_TODO)
				it->state = expand_item(p, sec, k) == 0 ?
				    EXPAND_DONE : EXPAND_FAILED;
		}
	}
}


/* ------------------------------------------------------------------ */
/* Loading                                                              */

int
config_parse(const char *name, const char *text, size_t len,
    struct config **cfg_r, struct buf *err)
{
	struct parser p;
	struct buf qname = BUF_INIT;
	struct config *cfg;
	size_t i;

	memset(&p, 0, sizeof(p));
	buf_put_safe(&qname, name, strlen(name), 256);
	p.name = buf_steal(&qname);
	p.err = err;
	if (len > CFG_FILE_MAX) {
		cfg_perr(&p, 0, "larger than %d bytes", CFG_FILE_MAX);
		flush_errors(&p);
		free(p.name);
		return -1;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(name);
	section_init(&cfg->global, NULL, 0, config_global_keys,
	    config_global_nkeys);
	p.cfg = cfg;
	p.sec = &cfg->global;
	for (i = 0; i < CFG_QUOTE_SLOTS; i++)
		buf_init(&p.quote[i], 0);
	buf_init(&p.line, CFG_LINE_MAX);

	parse_lines(&p, text, len);
	fill_defaults(&cfg->global);
	for (i = 0; i < cfg->nservices; i++)
		fill_defaults(cfg->services[i]);
	if (!p.stop)
		expand_all(&p);
	cfg_parse_values(&p, &cfg->global);
	for (i = 0; i < cfg->nservices && !p.stop; i++)
		cfg_parse_values(&p, cfg->services[i]);

	for (i = 0; i < CFG_QUOTE_SLOTS; i++)
		buf_free(&p.quote[i]);
	buf_free(&p.line);
	free(p.stack);
	flush_errors(&p);
	free(p.name);
	if (p.nerrors > 0) {
		config_free(&cfg);
		return -1;
	}
	*cfg_r = cfg;
	return 1;
}

int
config_load(const char *path, struct config **cfg_r, struct buf *err)
{
	struct buf text = BUF_INIT, msg = BUF_INIT;
	const char *why = NULL;
	struct stat st;
	ssize_t n;
	int fd, saved, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		why = "cannot open";
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		why = "cannot stat";
		goto fail;
	}
	errno = 0;
	if (!S_ISREG(st.st_mode)) {
		why = "not a regular file";
		goto fail;
	}
	if (st.st_size > CFG_FILE_MAX) {
		why = "larger than " STRINGIFY(CFG_FILE_MAX) " bytes";
		goto fail;
	}
	for (;;) {
		if (buf_reserve(&text, 65536) < 0)
			log_panic("event=bug where=config read_buffer");
		n = read(fd, text.data + text.len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			why = "cannot read";
			goto fail;
		}
		if (n == 0)
			break;
		text.len += (size_t)n;
		text.data[text.len] = '\0';
		if (text.len > CFG_FILE_MAX) {
			errno = 0;
			why = "larger than " STRINGIFY(CFG_FILE_MAX) " bytes";
			goto fail;
		}
	}
	close(fd);
	r = config_parse(path, buf_cstr(&text), text.len, cfg_r, err);
	buf_free(&text);
	return r;

fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	buf_free(&text);
	buf_put_safe(&msg, path, strlen(path), 256);
	cfg_put(&msg, ": %s", why);
	if (saved != 0)
		cfg_put(&msg, ": %s", strerror(saved));
	err_line(err, buf_cstr(&msg));
	buf_free(&msg);
	return -1;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;
	size_t i;

	if (cfg == NULL)
		return;
	section_clear(&cfg->global);
	for (i = 0; i < cfg->nservices; i++) {
		section_clear(cfg->services[i]);
		free(cfg->services[i]);
	}
	free(cfg->services);
	free(cfg->path);
	free(cfg);
	*cfgp = NULL;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                            */

const char *
config_path(const struct config *cfg)
{
	return cfg->path;
}

const struct cfg_section *
config_global(const struct config *cfg)
{
	return &cfg->global;
}

size_t
config_nservices(const struct config *cfg)
{
	return cfg->nservices;
}

const struct cfg_section *
config_service(const struct config *cfg, size_t i)
{
	if (i >= cfg->nservices)
		log_panic("event=bug where=config service_index=%zu "
		    "nservices=%zu", i, cfg->nservices);
	return cfg->services[i];
}

const struct cfg_section *
config_service_find(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nservices; i++)
		if (strcmp(cfg->services[i]->name, name) == 0)
			return cfg->services[i];
	return NULL;
}

const char *
cfg_section_name(const struct cfg_section *sec)
{
	return sec->name;
}

/* The item of key, which must be declared with one of the types in mask
 * (a bit per enum cfg_type; 0 accepts any). */
static const struct cfg_item *
lookup(const struct cfg_section *sec, const char *key, unsigned mask)
{
	ssize_t k = key_index(sec->keys, sec->nkeys, key, strlen(key));

	if (k < 0)
		log_panic("event=bug where=config undeclared_key=%s section=%s",
		    log_safe(key), sec->name != NULL ? sec->name : "global");
	if (mask != 0 && (mask & (1u << sec->keys[k].type)) == 0)
		log_panic("event=bug where=config type_mismatch key=%s", key);
	return &sec->items[k];
}

int
cfg_is_set(const struct cfg_section *sec, const char *key)
{
	return lookup(sec, key, 0)->set;
}

const char *
cfg_str(const struct cfg_section *sec, const char *key)
{
	return lookup(sec, key, 1u << CFG_STR | 1u << CFG_PATH |
	    1u << CFG_ENUM)->val;
}

long long
cfg_int(const struct cfg_section *sec, const char *key)
{
	return lookup(sec, key, 1u << CFG_INT)->v.i;
}

int
cfg_bool(const struct cfg_section *sec, const char *key)
{
	return lookup(sec, key, 1u << CFG_BOOL)->v.b;
}

uint64_t
cfg_time_ms(const struct cfg_section *sec, const char *key)
{
	return lookup(sec, key, 1u << CFG_TIME)->v.u;
}

uint64_t
cfg_size(const struct cfg_section *sec, const char *key)
{
	return lookup(sec, key, 1u << CFG_SIZE)->v.u;
}

const struct cfg_list *
cfg_list(const struct cfg_section *sec, const char *key)
{
	return &lookup(sec, key, 1u << CFG_LIST)->v.list;
}
