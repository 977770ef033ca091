/*
 * postern(8): start, stop, inspect and set up a postern instance.  main()
 * picks the subcommand from a table.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "postern.h"
#include "priv.h"
#include "xalloc.h"

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

/* The settings tool_load_control_config() keeps from a broken file (and
 * the global settings their values refer to, as $name or ${name}). */
static const char *const control_keys[] = { "run_dir", "pid_file", "stop_timeout" };

/* One top-level setting of the file: its key and its text (with any
 * continuation lines). */
struct setting {
	char *key;
	struct buf text;
	int keep;
};

/* Whether value text refers to key as $key or ${key}. */
static int
refers_to(const struct buf *text, const char *key)
{
	const char *s = buf_cstr(text), *eq = strchr(s, '='), *p;
	size_t k = strlen(key);

	for (p = eq != NULL ? eq : s; (p = strchr(p, '$')) != NULL; p++) {
		const char *name = p[1] == '{' ? p + 2 : p + 1;
		char after = name[k];

		if (strncmp(name, key, k) == 0 && (p[1] == '{' ? after == '}' :
		    !(after == '_' || (after >= 'a' && after <= 'z') ||
		    (after >= '0' && after <= '9'))))
			return 1;
	}
	return 0;
}

/*
 * Keep from text only the top-level control settings, the settings they
 * refer to (transitively), and their continuation lines, outside service
 * blocks (a line "service ... {" opens one, "}" closes it).
 */
static void
control_lines(const char *text, size_t len, struct buf *out)
{
	struct setting *set = NULL;
	size_t nset = 0, pos = 0;
	int depth = 0, changed = 1;
	struct setting *cur = NULL;

	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - s) : len - pos, b = 0, e = n, k;

		pos += nl != NULL ? n + 1 : n;
		while (b < n && (s[b] == ' ' || s[b] == '\t'))
			b++;
		while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r'))
			e--;
		if (e == b || s[b] == '#')
			continue;
		if (e - b == 1 && s[b] == '}') {
			depth -= depth > 0;
			cur = NULL;
			continue;
		}
		if (e - b > 7 && memcmp(s + b, "service", 7) == 0 && s[e - 1] == '{') {
			depth++;
			cur = NULL;
			continue;
		}
		if (depth > 0)
			continue;
		if (b > 0) {
			if (cur != NULL && (buf_append(&cur->text, s, e) < 0 ||
			    buf_putc(&cur->text, '\n') < 0))
				cur = NULL;
			continue;
		}
		for (k = 0; k < e && s[k] != '=' && s[k] != ' ' && s[k] != '\t'; k++)
			;
		set = xreallocarray(set, nset + 1, sizeof(*set));
		cur = &set[nset++];
		cur->key = xstrndup(s, k);
		buf_init(&cur->text, 0);
		cur->keep = 0;
		for (size_t i = 0; i < sizeof(control_keys) / sizeof(control_keys[0]); i++)
			cur->keep |= strcmp(cur->key, control_keys[i]) == 0;
		if (buf_append(&cur->text, s, e) < 0 || buf_putc(&cur->text, '\n') < 0)
			cur = NULL;
	}
	while (changed) {
		changed = 0;
		for (size_t i = 0; i < nset; i++)
			for (size_t j = 0; j < nset && set[i].keep; j++)
				if (!set[j].keep && refers_to(&set[i].text, set[j].key))
					set[j].keep = changed = 1;
	}
	for (size_t i = 0; i < nset; i++) {
		if (set[i].keep && buf_append(out, set[i].text.data, set[i].text.len) < 0)
			break;
	}
	for (size_t i = 0; i < nset; i++) {
		free(set[i].key);
		buf_free(&set[i].text);
	}
	free(set);
}

struct config *
tool_load_control_config(const char *path, const char *cmd)
{
	struct config *cfg;
	struct buf err = BUF_INIT, text = BUF_INIT;
	char chunk[65536];
	ssize_t n;
	int fd;

	if (config_load(path, &cfg, &err) > 0) {
		buf_free(&err);
		return cfg;
	}
	fputs(buf_cstr(&err), stderr);
	buf_reset(&err);
	cfg = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		goto out;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(&text, chunk, (size_t)n) < 0)
			break;
	(void)close(fd);
	if (n != 0)
		goto out;
	{
		struct buf keep = BUF_INIT;

		control_lines(buf_cstr(&text), text.len, &keep);
		if (config_parse(path, buf_cstr(&keep), keep.len, &cfg, &err) < 0)
			cfg = NULL;
		buf_free(&keep);
	}
	if (cfg != NULL)
		fprintf(stderr, "postern %s: the config has errors; using only its "
		    "run_dir, pid_file and stop_timeout settings (and what they refer to)\n", cmd);
out:
	if (cfg == NULL && err.len > 0)
		fputs(buf_cstr(&err), stderr);
	buf_free(&err);
	buf_free(&text);
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

/*
 * A dev-mode instance never runs as root: root acting on one (the
 * quickstart run as root, a test suite) becomes the instance's owner
 * first, so that master, every daemon it starts and every file an admin
 * command writes belong to that user.  A config that does not load, or a
 * root-mode one, is left to the command itself.  0, or -1 (reported).
 */
static int
become_dev_owner(const char *config)
{
	struct config *cfg;
	struct buf err = BUF_INIT;
	const char *error;
	int dev;

	if (geteuid() != 0)
		return 0;
	if (config_load(config, &cfg, &err) < 0) {
		buf_free(&err);
		return 0;
	}
	buf_free(&err);
	dev = strcmp(cfg_str(config_global(cfg), "mode"), "dev") == 0;
	config_free(&cfg);
	if (dev && priv_become_owner_of(config, &error) < 0) {
		fprintf(stderr, "postern: %s\n", error);
		return -1;
	}
	return 0;
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
			if (commands[i].fn != cmd_init && commands[i].fn != cmd_map &&
			    become_dev_owner(config) < 0)
				return EXIT_FAIL;
			optind++;
			return commands[i].fn(config, argc - optind + 1, argv + optind - 1);
		}
	}
	fprintf(stderr, "postern: unknown command '%s'\n", argv[optind]);
	return usage();
}
