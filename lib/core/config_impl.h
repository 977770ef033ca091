/*
 * config_impl: what config.c (the line and expansion passes, loading)
 * and config_values.c (the value pass) share -- the parsed form of a
 * file and the parser's state.  Not for code outside lib/core/config*.c.
 */
#ifndef POSTERN_CONFIG_IMPL_H
#define POSTERN_CONFIG_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

#define CFG_FILE_MAX	CONFIG_MAX_FILE	/* bytes in the file (1 MiB) */
#define CFG_LINE_MAX	4096		/* bytes in a line, without CR LF */
#define CFG_VALUE_MAX	65536		/* bytes in a value, joined and expanded */
#define CFG_ERRORS_MAX	20		/* errors reported before giving up */
#define CFG_SERVICES_MAX 1024		/* service blocks in a file */
#define CFG_SERVICE_NAME_MAX 32		/* bytes in a service name */
#define CFG_QUOTE_CAP	80		/* bytes of file text quoted in a message */
#define CFG_QUOTE_SLOTS	4		/* quoted strings usable in one message */
#define CFG_TAB_WIDTH	8		/* a tab advances to the next multiple */

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

enum expand_state {
	EXPAND_TODO,
	EXPAND_ACTIVE,		/* on the expansion stack: seeing it again is a loop */
	EXPAND_DONE,
	EXPAND_FAILED,		/* reported; values referring to it fail quietly */
};

/* One declared key's value in a section. */
struct cfg_item {
	struct buf raw;		/* as written (continuations joined) or the default */
	char *val;		/* after $expansion */
	size_t line;		/* of the setting; 0 when defaulted */
	int set;		/* given in the file */
	enum expand_state state;
	union {
		long long i;	/* CFG_INT */
		int b;		/* CFG_BOOL */
		uint64_t u;	/* CFG_TIME (ms), CFG_SIZE (bytes) */
		struct cfg_list list;	/* CFG_LIST */
	} v;
};

struct cfg_section {
	char *name;		/* NULL for the global section */
	size_t line;		/* of the "service NAME {" line */
	const struct cfg_key *keys;
	size_t nkeys;
	struct cfg_item *items;	/* one per key, same order */
};

struct config {
	char *path;
	struct cfg_section global;
	struct cfg_section **services;
	size_t nservices;
};

/* One error found, kept until the end to be reported in line order. */
struct cfg_error {
	size_t line;		/* 0: the file as a whole, or a default */
	size_t seq;		/* order of discovery, to keep the sort stable */
	char *text;		/* "FILE:LINE: reason" */
};

/* State of one config_parse() call. */
struct parser {
	struct config *cfg;
	char *name;		/* the file name, escaped for messages */
	struct buf *err;
	struct cfg_error errors[CFG_ERRORS_MAX];
	size_t nerrors;
	int stop;		/* too many errors: do no more work */
	struct buf quote[CFG_QUOTE_SLOTS];
	size_t qnext;
	struct buf line;	/* the current line, NUL-terminated */
	size_t lineno;

	struct cfg_section *sec;	/* where settings go */
	int in_block;
	size_t skip_depth;	/* inside a refused nested block */
	int seen_statement;
	int have_setting;	/* a continuation line has something to continue */
	struct cfg_item *cur;	/* ...and this is it (NULL: drop the text) */
	size_t cur_indent;

	size_t *stack;		/* global keys being expanded, outermost first */
	size_t depth;
};

/* Append formatted text to an internal, uncapped buffer. */
void cfg_put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record an error at line (0: the file as a whole). */
void cfg_perr(struct parser *p, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* File text, escaped and capped, in one of the parser's quote slots. */
const char *cfg_quote(struct parser *p, const char *s);
/* The line an item was set on, or its section's when defaulted. */
size_t cfg_item_line(const struct cfg_section *sec, const struct cfg_item *it);
/* The value pass: parse every expanded value of sec by its key's type. */
void cfg_parse_values(struct parser *p, const struct cfg_section *sec);

#endif
