/*
 * mapspec: naming maps.  Splits "type:argument" specs, knows which file
 * each type keeps its data in and which config keys name maps whose
 * sources may list bare keys; opening and reading is map.c's job.
 */
#include "autoconf.h"

#include <string.h>

#include "log.h"
#include "map.h"
#include "xalloc.h"

/* The map types, whether they name a file, and their compiled file's
 * suffix (NULL: the text source itself, or no file at all). */
static const struct {
	const char *name;
	int has_path;
	const char *suffix;
	int built;
} map_types[] = {
#ifdef HAVE_BDB
	{ "btree", 1, ".db", 1 },
	{ "hash", 1, ".db", 1 },
#else
	{ "btree", 1, ".db", 0 },
	{ "hash", 1, ".db", 0 },
#endif
	{ "lmdb", 1, ".lmdb", 1 },
	{ "texthash", 1, NULL, 1 },
	{ "static", 0, NULL, 1 },
	{ "inline", 0, NULL, 1 },
};

/* The config keys that name maps; the first two are lists of keys whose
 * values are ignored. */
const char *const map_config_keys[] = {
	"virtual_domains", "relay_domains", "virtual_mailboxes", "aliases",
	"sender_access", "recipient_access", "passwd", NULL,
};
#define MAP_LIST_KEYS 2	/* the MAP_BARE_KEY_MAPS */

#ifdef HAVE_BDB
static const char *default_type = "btree";
#else
static const char *default_type = "lmdb";
#endif

void
map_set_default_type(const char *type)
{
	for (size_t i = 0; i < sizeof(map_types) / sizeof(map_types[0]); i++)
		if (strcmp(map_types[i].name, type) == 0 && map_types[i].has_path &&
		    map_types[i].built) {
			default_type = map_types[i].name;
			return;
		}
	log_panic("event=bad_default_map_type type=%s", log_safe(type));
}

const char *
map_default_type(void)
{
	return default_type;
}

int
map_parse_spec(const char *spec, const char **type_r, const char **arg_r,
    const char **error_r)
{
	const char *colon = strchr(spec, ':');
	const char *arg;
	size_t tlen;

	/* A path alone: the default type. */
	if (spec[0] == '/' || colon == NULL) {
		if (spec[0] != '/') {
			*error_r = "a map needs an absolute path or a type: prefix";
			return -1;
		}
		*type_r = default_type;
		*arg_r = spec;
		return 0;
	}
	tlen = (size_t)(colon - spec);
	arg = colon + 1;
	for (size_t i = 0; i < sizeof(map_types) / sizeof(map_types[0]); i++) {
		if (strlen(map_types[i].name) != tlen ||
		    memcmp(map_types[i].name, spec, tlen) != 0)
			continue;
		if (!map_types[i].built) {
			*error_r = err_fmt("map type %s is not built in "
			    "(configured --without-bdb)", map_types[i].name);
			return -1;
		}
		if (map_types[i].has_path && arg[0] != '/') {
			*error_r = err_fmt("a %s map needs an absolute path", map_types[i].name);
			return -1;
		}
		if (strcmp(map_types[i].name, "inline") == 0) {
			size_t n = strlen(arg);

			if (n < 2 || arg[0] != '{' || arg[n - 1] != '}') {
				*error_r = "an inline map is written inline:{key=value, ...}";
				return -1;
			}
		}
		*type_r = map_types[i].name;
		*arg_r = arg;
		return 0;
	}
	*error_r = err_fmt("unknown map type '%.*s' (btree, hash, lmdb, texthash, "
	    "static, inline)", (int)(tlen < 32 ? tlen : 32), spec);
	return -1;
}

char *
map_file(const char *type, const char *path)
{
	for (size_t i = 0; i < sizeof(map_types) / sizeof(map_types[0]); i++)
		if (strcmp(map_types[i].name, type) == 0 && map_types[i].suffix != NULL)
			return xasprintf("%s%s", path, map_types[i].suffix);
	return xstrdup(path);
}

unsigned
map_config_flags(const char *config_key)
{
	for (size_t i = 0; i < MAP_LIST_KEYS; i++)
		if (strcmp(config_key, map_config_keys[i]) == 0)
			return MAP_BARE_KEYS;
	return 0;
}
