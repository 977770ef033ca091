/*
 * config: postern.conf, the one configuration file.
 *
 * Grammar (documented in postern.conf(5)):
 *   # comment                    whole-line comments only
 *   key = value                  a global setting
 *   key = first part             a line starting with whitespace continues
 *       second part              the previous value (joined with one space)
 *   service NAME {               a block of settings for one daemon
 *       key = value
 *   }
 * Values may refer to global settings as $name or ${name}; "$$" is a
 * literal "$".  Expansion happens after the whole file is read, so order
 * does not matter; a reference loop or an unknown name is an error.
 *
 * Every key is declared in a table (config_keys.c) with its type, default,
 * bounds and the text of its man page entry.  Unknown keys, duplicate keys,
 * bad values and syntax errors are refused with "FILE:LINE: reason".
 * Accessors for undeclared keys panic: that is a programming error.
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The largest config file accepted. */
#define CONFIG_MAX_FILE 1048576

enum cfg_type {
	CFG_STR,	/* any text */
	CFG_PATH,	/* absolute path, or empty */
	CFG_INT,	/* decimal integer in [min, max] */
	CFG_BOOL,	/* yes/no, true/false, on/off, 1/0 */
	CFG_TIME,	/* number with unit ms, s (default), m, h, d, w: stored in ms, in [min, max] ms */
	CFG_SIZE,	/* number with unit (none=bytes), k, m, g (powers of 1024), in [min, max] bytes */
	CFG_ENUM,	/* one of the words in 'choices' (space-separated) */
	CFG_LIST,	/* words separated by whitespace and/or commas */
};

struct cfg_key {
	const char *name;
	enum cfg_type type;
	const char *def;	/* default as text, before $expansion; NULL = "" */
	long long min, max;	/* for INT, TIME (ms), SIZE (bytes); both 0 = unbounded */
	const char *choices;	/* for ENUM */
	const char *doc;	/* one-paragraph description, as in the man page */
	/* Optional extra validation of the expanded value (for a LIST, called
	 * per item): 0 ok, -1 with *error_r set; reported as FILE:LINE. */
	int (*check)(const char *value, const char **error_r);
};

/* The declared keys: global ones, and those allowed in a service block. */
extern const struct cfg_key config_global_keys[];
extern const size_t config_global_nkeys;
extern const struct cfg_key config_service_keys[];
extern const size_t config_service_nkeys;

/* A list value. */
struct cfg_list {
	char **items;
	size_t n;
};

struct config;
struct cfg_section;	/* the global settings, or one service block */

/*
 * Read and validate the file at path.  1 on success with *cfg_r set;
 * -1 on failure with a "FILE:LINE: reason" message (one per line if
 * several) appended to err.  All errors found are reported, up to a limit.
 */
int config_load(const char *path, struct config **cfg_r, struct buf *err)
	__attribute__((warn_unused_result));
/* Same, from a string; name is used in messages in place of the file. */
int config_parse(const char *name, const char *text, size_t len,
    struct config **cfg_r, struct buf *err) __attribute__((warn_unused_result));
void config_free(struct config **cfgp);

/* The path it was loaded from (or the name given to config_parse). */
const char *config_path(const struct config *cfg);
/* The global section. */
const struct cfg_section *config_global(const struct config *cfg);
/* Service blocks, in file order. */
size_t config_nservices(const struct config *cfg);
const struct cfg_section *config_service(const struct config *cfg, size_t i);
/* The service block of this name, or NULL. */
const struct cfg_section *config_service_find(const struct config *cfg, const char *name);
/* A service block's name (NULL for the global section). */
const char *cfg_section_name(const struct cfg_section *sec);
/* 1 if the key was set in the file (not defaulted), else 0. */
int cfg_is_set(const struct cfg_section *sec, const char *key);

/* Typed values (defaults applied, $references expanded).  Each panics if
 * key is not declared for the section, or is of another type. */
const char *cfg_str(const struct cfg_section *sec, const char *key);	/* STR, PATH, ENUM */
long long cfg_int(const struct cfg_section *sec, const char *key);
int cfg_bool(const struct cfg_section *sec, const char *key);
uint64_t cfg_time_ms(const struct cfg_section *sec, const char *key);
uint64_t cfg_size(const struct cfg_section *sec, const char *key);
const struct cfg_list *cfg_list(const struct cfg_section *sec, const char *key);

/* Value parsers shared with tools (0 or -1 with *error_r). */
int cfg_parse_bool(const char *s, int *v_r, const char **error_r) __attribute__((warn_unused_result));
int cfg_parse_time_ms(const char *s, uint64_t *v_r, const char **error_r) __attribute__((warn_unused_result));
int cfg_parse_size(const char *s, uint64_t *v_r, const char **error_r) __attribute__((warn_unused_result));

#endif
