/*
 * postern init: set up an instance.
 *
 *   postern init --dev DIR [--port-base N] [--force]
 *     A self-contained dev-mode instance in DIR: config, self-signed
 *     certificate, map sources with a demo domain and user, and (made by
 *     master at start) spool, mail store and sockets.  Listeners on
 *     127.0.0.1 at fixed offsets from the port base (default 10000).
 *
 *   postern init [--port-base N] [--force] [DIR]
 *     Root mode: create postern's system users and group (idempotent),
 *     then write a root-mode config.  With DIR, everything lives under DIR
 *     (listeners on 127.0.0.1 when --port-base is given); without, the
 *     config goes to SYSCONFDIR/postern with FHS paths and standard ports.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <grp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "map.h"
#include "passwd.h"
#include "postern.h"
#include "priv.h"
#include "services.h"
#include "tlsctx.h"
#include "xalloc.h"

extern char **environ;

/* The listeners every instance gets: tag, standard port, dev offset. */
static const struct {
	const char *service;
	const char *tag;
	unsigned port;
	unsigned offset;
} init_listeners[] = {
	{ "smtpd", "smtp",	 25,  25 },
	{ "smtpd", "submission", 587, 87 },
	{ "smtpd", "smtps",	 465, 65 },
	{ "pop3d", "pop3",	 110, 10 },
	{ "pop3d", "pop3s",	 995, 95 },
	{ "imapd", "imap",	 143, 43 },
	{ "imapd", "imaps",	 993, 93 },
};

/* Unix sockets of the internal services. */
static const struct {
	const char *service;
	const char *socket;	/* a service may have several rows */
} init_sockets[] = {
	{ "qmgr", "qmgr" },
	{ "qmgr", "qmgr.ctl" },
	{ "local", "local" },
	{ "relay", "relay" },
	{ "auth", "auth" },
};

#define DEMO_DOMAIN "example.test"
#define DEMO_USER "demo@" DEMO_DOMAIN

struct init_opts {
	int dev;
	int force;
	long port_base;		/* -1: standard ports */
	const char *dir;	/* NULL: system-wide */
};

/* The path this very program runs from (tools/postern in a build tree,
 * the installed one otherwise), so the "start it with" line works when
 * pasted; "postern" if /proc cannot tell. */
static const char *
self_path(void)
{
	static char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return "postern";
	self[n] = '\0';
	return self;
}

/* Run a command (argv[0] looked up in PATH); 0 if it exited 0. */
static int
run(char *const argv[])
{
	pid_t pid;
	int status;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0) {
		fprintf(stderr, "postern init: cannot run %s: %s\n", argv[0], strerror(errno));
		return -1;
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "postern init: %s failed\n", argv[0]);
		return -1;
	}
	return 0;
}

/* Create a system user with its own group unless it exists; 0 or -1. */
static int
create_user(const char *user, const char *comment)
{
	char *argv[] = { "useradd", "--system", "--user-group",
	    "--home-dir", "/nonexistent", "--no-create-home",
	    "--shell", "/usr/sbin/nologin", "--comment", (char *)comment,
	    (char *)user, NULL };

	if (getpwnam(user) != NULL)
		return 0;
	if (run(argv) < 0)
		return -1;
	printf("created user %s\n", user);
	return 0;
}

/* Create a system group unless it exists; 0 or -1. */
static int
create_group(const char *group)
{
	char *argv[] = { "groupadd", "--system", (char *)group, NULL };

	if (getgrnam(group) != NULL)
		return 0;
	if (run(argv) < 0)
		return -1;
	printf("created group %s\n", group);
	return 0;
}

/* Create postern's system groups and users where missing. */
static int
create_users(void)
{
	if (create_group(POSTERN_DROP_GROUP) < 0 || create_group(POSTERN_AUTH_GROUP) < 0)
		return -1;
	for (size_t i = 0; i < builtin_nservices; i++)
		if (create_user(builtin_services[i].user, "postern daemon") < 0)
			return -1;
	return 0;
}

/*
 * Root making a dev-mode instance gives it to PRIV_DEV_USER (created on
 * demand) and becomes that user for the rest of init, so every file is
 * the instance's and no daemon of it ever runs as root.  dir exists.
 * 0, or -1 (reported).
 */
static int
become_dev_user(const char *dir, const char *libexec)
{
	const char *error;
	uid_t uid;
	gid_t gid;

	if (create_user(PRIV_DEV_USER, "postern dev-mode instances") < 0 ||
	    priv_lookup_user(PRIV_DEV_USER, &uid, &gid, &error) < 0) {
		fprintf(stderr, "postern init: no user %s\n", PRIV_DEV_USER);
		return -1;
	}
	if (chown(dir, uid, gid) < 0) {
		fprintf(stderr, "postern init: chown %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (priv_drop(uid, gid, NULL, &error) < 0) {
		fprintf(stderr, "postern init: %s\n", error);
		return -1;
	}
	if (access(dir, R_OK | W_OK | X_OK) < 0 ||
	    (libexec != NULL && access(libexec, R_OK | X_OK) < 0)) {
		fprintf(stderr, "postern init: run as root, a dev-mode instance belongs "
		    "to the user %s, who cannot reach %s: %s (make its parent "
		    "directories searchable, or make the instance somewhere else)\n",
		    PRIV_DEV_USER, access(dir, X_OK) < 0 ? dir : libexec, strerror(errno));
		return -1;
	}
	printf("running as root: the instance belongs to the user %s, "
	    "and its daemons run as %s\n", PRIV_DEV_USER, PRIV_DEV_USER);
	return 0;
}

/* A random password of 16 characters from an unambiguous alphabet. */
static void
random_password(char out[17])
{
	static const char alphabet[] = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679";
	unsigned char raw[16];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		log_fatal("event=getrandom_failed error=\"%s\"", strerror(errno));
	for (size_t i = 0; i < sizeof(raw); i++)
		out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	out[16] = '\0';
}

/* Write a file unless it exists (or --force); 0 or -1. */
static int
write_file(const struct init_opts *o, const char *path, const char *text, mode_t mode)
{
	const char *error;

	if (!o->force && access(path, F_OK) == 0) {
		fprintf(stderr, "postern init: %s exists (use --force to replace it)\n", path);
		return -1;
	}
	if (fs_write_atomic(path, text, strlen(text), mode, &error) < 0) {
		fprintf(stderr, "postern init: %s\n", error);
		return -1;
	}
	return 0;
}

/* Append the service blocks with their listeners to the config text. */
static void
put_services(struct buf *c, const struct init_opts *o)
{
	const char *host = o->port_base >= 0 ? "127.0.0.1" : "*";

	for (size_t i = 0; i < builtin_nservices; i++) {
		const char *name = builtin_services[i].name;
		int any = 0;

		if (buf_printf(c, "\n# %s\nservice %s {\n", builtin_services[i].doc, name) < 0)
			log_panic("event=config_text_overflow");
		for (size_t j = 0; j < sizeof(init_listeners) / sizeof(init_listeners[0]); j++) {
			unsigned port;

			if (strcmp(init_listeners[j].service, name) != 0)
				continue;
			port = o->port_base >= 0 ?
			    (unsigned)o->port_base + init_listeners[j].offset :
			    init_listeners[j].port;
			if (buf_printf(c, "%s%s:%u/%s", any ? " " : "    listen = ", host,
			    port, init_listeners[j].tag) < 0)
				log_panic("event=config_text_overflow");
			any = 1;
		}
		if (any && buf_putc(c, '\n') < 0)
			log_panic("event=config_text_overflow");
		any = 0;
		for (size_t j = 0; j < sizeof(init_sockets) / sizeof(init_sockets[0]); j++)
			if (strcmp(init_sockets[j].service, name) == 0) {
				if (buf_printf(c, "%s%s", any ? " " : "    unix_listen = ",
				    init_sockets[j].socket) < 0)
					log_panic("event=config_text_overflow");
				any = 1;
			}
		if (any && buf_putc(c, '\n') < 0)
			log_panic("event=config_text_overflow");
		/* smtpd: one process per core (issue 4), as at init time. */
		if (strcmp(name, "smtpd") == 0) {
			long n = sysconf(_SC_NPROCESSORS_ONLN);

			if (buf_printf(c, "    processes = %ld\n",
			    n < 1 ? 1 : n > 256 ? 256 : n) < 0)
				log_panic("event=config_text_overflow");
		}
		if (buf_puts(c, "}\n") < 0)
			log_panic("event=config_text_overflow");
	}
}

/* Parse the options; 0 or -1 (usage printed). */
static int
parse_opts(int argc, char **argv, struct init_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->port_base = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dev") == 0) {
			o->dev = 1;
		} else if (strcmp(argv[i], "--force") == 0) {
			o->force = 1;
		} else if (strcmp(argv[i], "--port-base") == 0 && i + 1 < argc) {
			char *end;

			errno = 0;
			o->port_base = strtol(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || o->port_base < 0 ||
			    o->port_base > 65535 - 95) {
				fprintf(stderr, "postern init: --port-base must be 0-%d\n",
				    65535 - 95);
				return -1;
			}
		} else if (argv[i][0] == '-' || o->dir != NULL) {
			fprintf(stderr, "postern init: unexpected argument '%s'\n", argv[i]);
			return -1;
		} else {
			o->dir = argv[i];
		}
	}
	if (o->dev && o->dir == NULL) {
		fprintf(stderr, "usage: postern init --dev DIR [--port-base N] [--force]\n");
		return -1;
	}
	if (o->dev && o->port_base < 0)
		o->port_base = 10000;
	return 0;
}

/* The map sources an instance starts with: file name, mode, and the
 * text for a dev and a root instance. */
static const struct {
	const char *name;
	mode_t mode;
	const char *dev_text;
	const char *root_text;
} init_maps[] = {
	{ "virtual_domains", 0644,
	    "# domains this instance receives mail for (postern domain add)\n"
	    DEMO_DOMAIN "\n",
	    "# domains this host receives mail for (postern domain add)\n" },
	{ "aliases", 0644,
	    "# address  address, address...   (@domain: catch-all)\n"
	    "postmaster@" DEMO_DOMAIN " " DEMO_USER "\n",
	    "# address  address, address...   (@domain: catch-all)\n" },
	{ "passwd", 0640,
	    "# user password-hash [quota=SIZE] [enabled=no]   (postern user add)\n",
	    "# user password-hash [quota=SIZE] [enabled=no]   (postern user add)\n" },
};

/*
 * Write and compile the map sources: a demo domain, postmaster alias and
 * user (whose password is printed and kept in DIR/demo-password) in dev
 * mode, empty maps in root mode.
 * In root mode the password map is readable by the auth service's group
 * only.  0 or -1.
 */
static int
write_maps(const struct init_opts *o, const char *dir, const char *maps)
{
	const char *error;
	char password[17];
	struct buf err = BUF_INIT;

	for (size_t i = 0; i < sizeof(init_maps) / sizeof(init_maps[0]); i++) {
		char *path = fs_join(maps, init_maps[i].name);
		char *text;
		int r;

		if (!o->dev) {
			text = xstrdup(init_maps[i].root_text);
		} else if (strcmp(init_maps[i].name, "passwd") == 0) {
			char *hash;

			random_password(password);
			if ((hash = passwd_hash(password, &error)) == NULL) {
				fprintf(stderr, "postern init: %s\n", error);
				free(path);
				return -1;
			}
			text = xasprintf("%s%s %s\n", init_maps[i].dev_text, DEMO_USER, hash);
			free(hash);
		} else {
			text = xstrdup(init_maps[i].dev_text);
		}
		r = write_file(o, path, text, o->dev ? 0600 : init_maps[i].mode);
		free(text);
		if (r == 0 && !o->dev && init_maps[i].mode == 0640) {
			struct group *gr = getgrnam(builtin_service("auth")->user);

			if (gr == NULL || chown(path, 0, gr->gr_gid) < 0) {
				fprintf(stderr, "postern init: chown %s: %s\n", path,
				    gr == NULL ? "no group postern-auth" : strerror(errno));
				r = -1;
			}
		}
		if (r == 0 && map_compile(map_default_type(), path,
		    map_config_flags(init_maps[i].name), &err) < 0) {
			fputs(buf_cstr(&err), stderr);
			r = -1;
		}
		free(path);
		if (r < 0) {
			buf_free(&err);
			return -1;
		}
	}
	buf_free(&err);
	if (o->dev) {
		/* Also in a file private to the instance's user, so the
		 * README's examples can use it: "$(cat run/demo-password)". */
		char *file = fs_join(dir, "demo-password"), *text;
		int r;

		text = xasprintf("%s\n", password);
		r = write_file(o, file, text, 0600);
		free(text);
		free(file);
		if (r < 0)
			return -1;
		printf("demo user: %s  password: %s (also in %s/demo-password)\n",
		    DEMO_USER, password, dir);
	}
	return 0;
}

/*
 * Say where everything went: the paths as master will read them from the
 * config just written (so what is printed is what runs), the ones master
 * creates at start marked so.  0, or -1 if the config does not load.
 */
static int
print_paths(const char *conf)
{
	static const struct {
		const char *key;
		const char *what;
	} rows[] = {
		{ "config_dir",	"maps, certificate and key" },
		{ "spool_dir",	"the queue; master makes it at start" },
		{ "run_dir",	"sockets and pid file; master makes it at start" },
		{ "mail_dir",	"the mail store; master makes it at start" },
		{ "daemon_dir",	"the daemon programs" },
	};
	struct config *cfg;
	struct buf err = BUF_INIT;

	if (config_load(conf, &cfg, &err) < 0) {
		fputs(buf_cstr(&err), stderr);
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	printf("  %-12s %s  (%s)\n", "config", conf, "the configuration");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		printf("  %-12s %s  (%s)\n", rows[i].key,
		    cfg_str(config_global(cfg), rows[i].key), rows[i].what);
	config_free(&cfg);
	return 0;
}

int
cmd_init(const char *config, int argc, char **argv)
{
	struct init_opts o;
	struct buf c = BUF_INIT;
	char dir[PATH_MAX];
	const char *error, *libexec = tool_build_libexec();
	char *cert, *key, *conf, *maps, *path;
	int ret = EXIT_FAIL;

	(void)config;
	if (parse_opts(argc, argv, &o) < 0)
		return EXIT_USAGE;
	if (!o.dev) {
		if (geteuid() != 0) {
			fprintf(stderr, "postern init: root mode needs root "
			    "(for a private instance use --dev DIR)\n");
			return EXIT_FAIL;
		}
		if (create_users() < 0)
			return EXIT_FAIL;
	}
	if (o.dir == NULL)
		o.dir = SYSCONFDIR "/postern";
	if (o.dir[0] == '/')
		path = xstrdup(o.dir);
	else if (getcwd(dir, sizeof(dir)) != NULL)
		path = fs_join(dir, o.dir);
	else {
		fprintf(stderr, "postern init: getcwd: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	if (access(path, F_OK) != 0 &&
	    fs_ensure_dir(path, o.dev ? 0700 : 0755, (uid_t)-1, (gid_t)-1, &error) < 0) {
		fprintf(stderr, "postern init: %s\n", error);
		free(path);
		return EXIT_FAIL;
	}
	if (realpath(path, dir) == NULL) {
		fprintf(stderr, "postern init: %s: %s\n", path, strerror(errno));
		free(path);
		return EXIT_FAIL;
	}
	free(path);
	if (o.dev && geteuid() == 0 && become_dev_user(dir, libexec) < 0)
		return EXIT_FAIL;
	conf = fs_join(dir, "postern.conf");
	cert = fs_join(dir, "cert.pem");
	key = fs_join(dir, "key.pem");
	maps = fs_join(dir, "maps");
	if (!o.force && access(conf, F_OK) == 0) {
		fprintf(stderr, "postern init: %s exists (use --force to replace it)\n", conf);
		goto out;
	}

	/* The configuration. */
	if (buf_printf(&c, "# postern.conf(5), written by postern init\n") < 0 ||
	    buf_printf(&c, "mode = %s\n", o.dev ? "dev" : "root") < 0)
		log_panic("event=config_text_overflow");
	if (o.dev || strcmp(dir, SYSCONFDIR "/postern") != 0) {
		if (buf_printf(&c, "config_dir = %s\nspool_dir = $config_dir/spool\n"
		    "run_dir = $config_dir/run\nmail_dir = $config_dir/mail\n", dir) < 0)
			log_panic("event=config_text_overflow");
	}
	if (libexec != NULL && buf_printf(&c, "# postern runs from its build tree\n"
	    "daemon_dir = %s\n", libexec) < 0)
		log_panic("event=config_text_overflow");
	if (buf_printf(&c, "virtual_domains = $config_dir/maps/virtual_domains\n"
	    "aliases = $config_dir/maps/aliases\n"
	    "passwd = $config_dir/maps/passwd\n") < 0)
		log_panic("event=config_text_overflow");
	/* Postmaster notices reach the demo domain's postmaster alias
	 * (postmaster@hostname would arrive only if hostname were local);
	 * a root-mode instance has no domain yet: the admin names one. */
	if (buf_printf(&c, o.dev ? "postmaster_address = postmaster@" DEMO_DOMAIN "\n" :
	    "# postmaster_address = postmaster@YOUR-DOMAIN   (default: "
	    "postmaster@$hostname)\n") < 0)
		log_panic("event=config_text_overflow");
	if (buf_printf(&c, "log_target = %s\n", o.dev ? "stderr" : "syslog") < 0 ||
	    buf_printf(&c, "tls_cert_file = $config_dir/cert.pem\n"
	    "tls_key_file = $config_dir/key.pem\n") < 0)
		log_panic("event=config_text_overflow");
	put_services(&c, &o);

	/* Certificate, maps with the demo domain and user, config last. */
	if (!o.force && access(key, F_OK) == 0)
		printf("keeping the existing %s\n", key);
	else if (tls_make_selfsigned(cert, key, "localhost", 825, &error) < 0) {
		fprintf(stderr, "postern init: certificate: %s\n", error);
		goto out;
	}
	if (fs_ensure_dir(maps, 0755, (uid_t)-1, (gid_t)-1, &error) < 0) {
		fprintf(stderr, "postern init: %s\n", error);
		goto out;
	}
	if (write_maps(&o, dir, maps) < 0)
		goto out;
	if (write_file(&o, conf, buf_cstr(&c), 0644) < 0)
		goto out;

	printf("postern instance written to %s (%s mode)\n", dir, o.dev ? "dev" : "root");
	if (print_paths(conf) < 0)
		goto out;
	if (o.dev) {
		printf("listeners: 127.0.0.1, SMTP %ld, submission %ld, SMTPS %ld, "
		    "POP3 %ld, POP3S %ld, IMAP %ld, IMAPS %ld\n",
		    o.port_base + 25, o.port_base + 87, o.port_base + 65, o.port_base + 10,
		    o.port_base + 95, o.port_base + 43, o.port_base + 93);
	}
	printf("start it with: %s -c %s start\n", self_path(), conf);
	ret = EXIT_OK;
out:
	buf_free(&c);
	free(conf);
	free(cert);
	free(key);
	free(maps);
	return ret;
}
