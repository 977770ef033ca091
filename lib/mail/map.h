/*
 * map: lookup tables -- domains, mailboxes, aliases, access lists,
 * passwords -- behind one interface.  A map is named "type:path":
 *
 *   btree:/etc/postern/maps/aliases    Berkeley DB btree, file PATH.db
 *   hash:/etc/postern/maps/aliases     Berkeley DB hash, file PATH.db
 *   lmdb:/etc/postern/maps/aliases     LMDB, file PATH.lmdb
 *   texthash:/etc/postern/maps/aliases the text source itself, read into
 *                                      memory (for tiny setups)
 *   static:VALUE                       every key maps to VALUE
 *   inline:{key=value, key2=value2}    a literal table
 *
 * A spec without "type:" uses the default type (map_set_default_type()).
 * The text source (documented in postern.conf(5), MAPS) is the truth;
 * `postern map PATH` compiles it into the binary file atomically.
 *
 * Keys are case-insensitive: they are folded to lower case (ASCII) when a
 * map is compiled and when it is looked up.  Values are kept as written.
 * Readers open compiled files read-only and notice when `postern map`
 * has replaced one (checked at most once a second per map, and on every
 * lookup that finds nothing), reopening it, so no daemon needs a restart
 * after a map changes and a key is found once the command adding it has
 * returned.
 */
#ifndef POSTERN_MAP_H
#define POSTERN_MAP_H

#include <stddef.h>

#include "buf.h"

/* Limits shared by every backend (LMDB's default key limit is 511). */
#define MAP_MAX_KEY 511
#define MAP_MAX_VALUE 65536

struct map;

/* The type used for specs without a "type:" prefix ("btree" if Berkeley
 * DB is built in, else "lmdb", unless set from default_map_type). */
void map_set_default_type(const char *type);
const char *map_default_type(void);

/*
 * Split a spec into its type and argument without opening anything:
 * 0 with *type_r (static string) and *arg_r (points into spec), or -1
 * with *error_r for an unknown or unbuilt type, a relative path, or a
 * malformed inline table.  Used to validate config values.
 */
int map_parse_spec(const char *spec, const char **type_r, const char **arg_r,
    const char **error_r) __attribute__((warn_unused_result));

/* Open a map.  0 with *map_r, or -1 with *error_r (missing file, not a
 * map of that type, ...). */
int map_open(const char *spec, struct map **map_r, const char **error_r)
	__attribute__((warn_unused_result));
void map_close(struct map **mapp);
/* The spec the map was opened with. */
const char *map_spec(const struct map *m);

/*
 * Look key up (folded to lower case first).  1: found, the value replaces
 * the contents of *value; 0: not found (*value untouched), and not in the
 * file as it is at this moment either (a miss rechecks the file); -1: the
 * map could not be read (*error_r set) -- a temporary failure, never to
 * be taken as "not found".
 */
int map_lookup(struct map *m, const char *key, struct buf *value,
    const char **error_r) __attribute__((warn_unused_result));

/*
 * Parse map source text: each "key value" line (the key is the first
 * whitespace-separated word, the value the rest, trimmed and possibly
 * empty), "#" comment lines, blank lines, and continuation lines that
 * start with whitespace (joined to the previous value with one space).
 * fn is called per entry with the folded key; returning -1 (with
 * *error_r) reports an error at that line.  Errors (NUL byte, key or
 * value too long, continuation without an entry, duplicate key, fn's
 * errors) are appended to err as "NAME:LINE: reason\n", all of them up to
 * a cap.  1 if there were none, else -1.
 */
typedef int map_entry_fn(void *arg, const char *key, const char *value,
    size_t line, const char **error_r);
int map_parse_text(const char *name, const char *text, size_t len,
    map_entry_fn *fn, void *arg, struct buf *err) __attribute__((warn_unused_result));

/*
 * Compile the text source at path into the compiled file of type
 * ("btree", "hash" or "lmdb"; "texthash" only validates): write a new
 * file beside it, fsync, rename over the old one, fsync the directory.
 * A reader sees the old map or the new, never a part.  1 on success, -1
 * with "PATH:LINE: reason" lines appended to err (the old map is kept).
 * A key with no value is such an error unless flags has MAP_BARE_KEYS.
 */
int map_compile(const char *type, const char *path, unsigned flags,
    struct buf *err) __attribute__((warn_unused_result));

/* For map_compile(): a line holding a key alone is an entry with an
 * empty value (a list of keys, such as virtual_domains). */
#define MAP_BARE_KEYS 1u

/* The config keys naming maps whose values are ignored (for messages). */
#define MAP_BARE_KEY_MAPS "virtual_domains, relay_domains"
/* The map_compile() flags for the source of the map named by a config
 * key: MAP_BARE_KEYS for MAP_BARE_KEY_MAPS, else 0. */
unsigned map_config_flags(const char *config_key);
/* The config keys that name maps, NULL-terminated. */
extern const char *const map_config_keys[];
/* The compiled file of a map of this type built from path (malloc'd):
 * path + ".db", ".lmdb", or path itself for texthash. */
char *map_file(const char *type, const char *path);

#endif
