/*
 * postern(8): start, stop, inspect and set up a postern instance.  main()
 * picks the subcommand from a table.
 */
#include "autoconf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "postern.h"

struct command {
	const char *name;
	int (*fn)(const char *config, int argc, char **argv);
	const char *usage;
};

static const struct command commands[] = {
	{ "start",  cmd_start,  "start [-f]            start master and the daemons (-f: in the foreground)" },
	{ "stop",   cmd_stop,   "stop                  stop every daemon and master" },
	{ "status", cmd_status, "status                list the daemons, pids, uptimes, restarts" },
	{ "reload", cmd_reload, "reload                re-read the config; daemons restart gracefully" },
	{ "check",  cmd_check,  "check                 validate the config without starting" },
	{ "queue",  cmd_queue,  "queue [list]          list the mail queue (as mailq does)\n"
	    "       queue delete|hold|release|requeue ID...|ALL\n"
	    "                               act on queued messages through the queue manager" },
	{ "flush",  cmd_flush,  "flush                 retry every deferred message now" },
	{ "user",   cmd_user,   "user add USER [--quota SIZE] | passwd|del|disable|enable USER\n"
	    "       user quota USER SIZE | user list\n"
	    "                               manage users (password from a TTY or stdin)" },
	{ "domain", cmd_domain, "domain add|del DOMAIN | domain list\n"
	    "                               manage the virtual domains" },
	{ "map",    cmd_map,    "map [-t TYPE] FILE... compile each map source FILE (atomically)\n"
	    "       map [-t TYPE] -q KEY FILE\n"
	    "                               print KEY's value (exit 0 found, 1 not found, 2 error)" },
	{ "init",   cmd_init,   "init --dev DIR [--port-base N] [--force]\n"
	    "                               write a self-contained dev-mode instance\n"
	    "       init [--port-base N] [--force] [DIR]\n"
	    "                               create postern's system users and a root-mode config" },
};

/* Print usage and return EXIT_USAGE. */
static int
usage(void)
{
	fprintf(stderr, "usage: postern [-c CONFIG] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  %s\n", commands[i].usage);
	fprintf(stderr, "\nCONFIG defaults to $POSTERN_CONFIG or %s\n",
	    SYSCONFDIR "/postern/postern.conf");
	return EXIT_USAGE;
}

struct config *
tool_load_config(const char *path)
{
	struct config *cfg;
	struct buf err = BUF_INIT;

	if (config_load(path, &cfg, &err) < 0) {
		fputs(buf_cstr(&err), stderr);
		buf_free(&err);
		return NULL;
	}
	buf_free(&err);
	return cfg;
}

const char *
tool_daemon_dir(const struct config *cfg)
{
	return cfg_str(config_global(cfg), "daemon_dir");
}

const char *
tool_build_libexec(void)
{
	static char dir[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	if (strcmp(self, BUILDDIR "/tools/postern") != 0)
		return NULL;
	snprintf(dir, sizeof(dir), "%s/libexec", BUILDDIR);
	return dir;
}

int
main(int argc, char **argv)
{
	const char *config = getenv("POSTERN_CONFIG");
	int c;

	log_init("postern", LOG_TARGET_STDERR, LOG_LEVEL_WARN);
	if (config == NULL || config[0] == '\0')
		config = SYSCONFDIR "/postern/postern.conf";
	while ((c = getopt(argc, argv, "+c:hV")) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'V':
			printf("postern %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		default:
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			optind++;
			return commands[i].fn(config, argc - optind + 1, argv + optind - 1);
		}
	}
	fprintf(stderr, "postern: unknown command '%s'\n", argv[optind]);
	return usage();
}
