/*
 * postern map: compile map sources, or query a map.
 *
 *   postern map [-t TYPE] FILE...
 *     Compile each text source FILE into its compiled form (FILE.db,
 *     FILE.lmdb; texthash sources are only checked), atomically.
 *   postern map [-t TYPE] -q KEY FILE
 *     Print the value of KEY: exit 0 found, 1 not found, 2 error.
 *
 * TYPE defaults to the config's default_map_type when the config file
 * exists and loads, else to the build's default.  A source line holding
 * a key alone is refused, except in a source the config names only as
 * a list of keys (virtual_domains, relay_domains: values ignored).
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "map.h"
#include "postern.h"
#include "priv.h"
#include "xalloc.h"

/* The map types a FILE argument can name. */
static const char *const map_file_types[] = { "btree", "hash", "lmdb", "texthash" };

/* Print the subcommand's usage and return EXIT_USAGE. */
static int
map_usage(void)
{
	fprintf(stderr, "usage: postern map [-t TYPE] FILE...\n"
	    "       postern map [-t TYPE] -q KEY FILE\n"
	    "TYPE: btree, hash, lmdb or texthash\n");
	return EXIT_USAGE;
}

/* The config, if its file exists and loads (NULL otherwise, after saying
 * so if it exists). */
static struct config *
map_load_config(const char *path)
{
	struct config *cfg;
	struct buf err = BUF_INIT;

	if (access(path, F_OK) < 0)
		return NULL;
	if (config_load(path, &cfg, &err) < 0) {
		fprintf(stderr, "postern map: %s does not load, using map type "
		    "%s and refusing keys without values\n", path,
		    map_default_type());
		cfg = NULL;
	}
	buf_free(&err);
	return cfg;
}

/* The default type: the config's default_map_type, else the build's.
 * Returns a static string. */
static const char *
map_type_from_config(const struct config *cfg)
{
	const char *type;

	if (cfg == NULL)
		return map_default_type();
	type = cfg_str(config_global(cfg), "default_map_type");
	for (size_t i = 0; i < sizeof(map_file_types) / sizeof(map_file_types[0]); i++)
		if (strcmp(type, map_file_types[i]) == 0)
			return map_file_types[i];	/* outlives cfg */
	return map_default_type();
}

/*
 * The map_compile() flags for the source at file: MAP_BARE_KEYS if the
 * config names it (the same file, by realpath) and only as a list of keys,
 * else 0 -- a source the config does not name is held to KEY VALUE.
 */
static unsigned
map_flags_from_config(const struct config *cfg, const char *file)
{
	char *want, *have;
	unsigned flags = 0;
	int named = 0;

	if (cfg == NULL || (want = realpath(file, NULL)) == NULL)
		return 0;
	for (size_t i = 0; map_config_keys[i] != NULL; i++) {
		const char *spec = cfg_str(config_global(cfg), map_config_keys[i]);
		const char *type, *arg, *error;

		if (spec[0] == '\0' || map_parse_spec(spec, &type, &arg, &error) < 0 ||
		    (have = realpath(arg, NULL)) == NULL)
			continue;
		if (strcmp(have, want) == 0) {
			if (!named++)
				flags = map_config_flags(map_config_keys[i]);
			else
				flags &= map_config_flags(map_config_keys[i]);
		}
		free(have);
	}
	free(want);
	return flags;
}

/* Look key up in the map of this type built from file and print it. */
static int
map_query(const char *type, const char *key, const char *file)
{
	struct buf value = BUF_INIT;
	struct map *m;
	const char *error;
	char cwd[PATH_MAX], *spec;
	int ret;

	if (file[0] == '/')
		spec = xasprintf("%s:%s", type, file);
	else if (getcwd(cwd, sizeof(cwd)) != NULL)
		spec = xasprintf("%s:%s/%s", type, cwd, file);
	else {
		fprintf(stderr, "postern map: getcwd: %s\n", strerror(errno));
		return EXIT_USAGE;
	}
	if (map_open(spec, &m, &error) < 0) {
		fprintf(stderr, "postern map: %s\n", error);
		free(spec);
		return EXIT_USAGE;
	}
	ret = map_lookup(m, key, &value, &error);
	if (ret < 0)
		fprintf(stderr, "postern map: %s\n", error);
	else if (ret > 0)
		printf("%s\n", buf_cstr(&value));
	map_close(&m);
	buf_free(&value);
	free(spec);
	return ret > 0 ? EXIT_OK : ret == 0 ? EXIT_FAIL : EXIT_USAGE;
}

int
cmd_map(const char *config, int argc, char **argv)
{
	const char *type = NULL, *key = NULL;
	struct buf err = BUF_INIT;
	struct config *cfg;
	int i, status = EXIT_OK, known = 0;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
			type = argv[++i];
		else if (strcmp(argv[i], "-q") == 0 && i + 1 < argc)
			key = argv[++i];
		else
			return map_usage();
	}
	if (i >= argc || (key != NULL && i + 1 != argc))
		return map_usage();
	cfg = map_load_config(config);
	if (type == NULL)
		type = map_type_from_config(cfg);
	for (size_t j = 0; j < sizeof(map_file_types) / sizeof(map_file_types[0]); j++)
		known |= strcmp(type, map_file_types[j]) == 0;
	if (!known) {
		fprintf(stderr, "postern map: unknown map type '%s'\n", type);
		config_free(&cfg);
		return map_usage();
	}
	if (key != NULL) {
		config_free(&cfg);
		return map_query(type, key, argv[i]);
	}

	/* As postmap(1): root compiles a user's map source as that user, so
	 * the compiled map keeps the owner the instance's daemons read it as. */
	{
		const char *error;

		if (priv_become_owner_of(argv[i], &error) < 0) {
			fprintf(stderr, "postern map: %s\n", error);
			return EXIT_FAIL;
		}
	}
	for (; i < argc; i++) {
		buf_reset(&err);
		if (map_compile(type, argv[i], map_flags_from_config(cfg, argv[i]),
		    &err) < 0) {
			fputs(buf_cstr(&err), stderr);
			status = EXIT_FAIL;
		}
	}
	config_free(&cfg);
	buf_free(&err);
	return status;
}
