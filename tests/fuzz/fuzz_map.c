/*
 * libFuzzer target for map sources: feeds the bytes to map_parse_text()
 * and checks what it hands out -- folded, bounded, blank-free keys, each
 * once, in line order; trimmed, bounded, NUL-free values; errors only in
 * "NAME:LINE: reason" form and only when it reports failure.  The same
 * bytes are also tried as an inline:{...} map.  Everything is freed each
 * round (LeakSanitizer checks).
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "map.h"
#include "map_impl.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	struct map_table t;
	size_t last_line;
};

/* Check one entry and remember it. */
static int
check_entry(void *arg, const char *key, const char *value, size_t line,
    const char **error_r)
{
	struct seen *s = arg;
	size_t klen = strlen(key), vlen = strlen(value), first;

	if (klen == 0 || klen > MAP_MAX_KEY || vlen > MAP_MAX_VALUE ||
	    line <= s->last_line)
		abort();
	for (size_t i = 0; i < klen; i++)
		if ((key[i] >= 'A' && key[i] <= 'Z') || key[i] == ' ' ||
		    key[i] == '\t' || key[i] == '\n')
			abort();
	if (vlen > 0 && (value[0] == ' ' || value[0] == '\t' ||
	    value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		abort();
	if (memchr(value, '\n', vlen) != NULL)
		abort();
	if (map_table_add(&s->t, key, klen, value, vlen, line, &first) < 0)
		abort();	/* the parser lets no duplicate through */
	s->last_line = line;
	/* Refuse some entries to exercise the callback's error path. */
	if (klen == 4 && memcmp(key, "fail", 4) == 0) {
		*error_r = "refused";
		return -1;
	}
	return 0;
}

/* Every error line must read "f:LINE: reason". */
static void
check_errors(const struct buf *err)
{
	const char *p = buf_cstr(err), *nl;

	while (*p != '\0') {
		if ((nl = strchr(p, '\n')) == NULL)
			abort();
		if (strncmp(p, "f:", 2) != 0)
			abort();
		p = nl + 1;
	}
}

/* The bytes as an inline:{...} spec, opened and looked up. */
static void
try_inline(const uint8_t *data, size_t size)
{
	struct buf spec = BUF_INIT, value = BUF_INIT;
	const char *error;
	struct map *m;

	if (size == 0 || data[0] != '{' || memchr(data, '\0', size) != NULL)
		return;
	if (buf_puts(&spec, "inline:") < 0 || buf_append(&spec, data, size) < 0)
		abort();
	if (map_open(buf_cstr(&spec), &m, &error) == 0) {
		if (map_lookup(m, "a", &value, &error) < 0 ||
		    map_lookup(m, "KEY", &value, &error) < 0)
			abort();
		map_close(&m);
	}
	buf_free(&spec);
	buf_free(&value);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	struct seen s;
	struct buf err = BUF_INIT;
	int rc;

	if (!init) {
		log_init("fuzz_map", LOG_TARGET_STDERR, LOG_LEVEL_FATAL);
		init = 1;
	}
	memset(&s, 0, sizeof(s));
	rc = map_parse_text("f", (const char *)data, size, check_entry, &s, &err);
	if ((rc == 1) != (err.len == 0) || (rc != 1 && rc != -1))
		abort();
	check_errors(&err);
	/* Every entry handed out is findable. */
	for (size_t i = 0; i < s.t.n; i++)
		if (map_table_find(&s.t, s.t.entries[i].key,
		    s.t.entries[i].klen) != &s.t.entries[i])
			abort();
	map_table_free(&s.t);
	buf_free(&err);
	try_inline(data, size);
	return 0;
}
