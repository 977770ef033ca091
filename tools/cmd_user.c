/*
 * postern user / postern domain: edit the passwd and virtual_domains maps.
 * The text source is the truth: an edit rewrites it atomically (under a
 * lock, so two admins cannot lose each other's change), then recompiles
 * the map; the daemons notice the new file by themselves.
 *
 *   postern user add USER [--quota SIZE]   password from a TTY or stdin
 *   postern user passwd USER
 *   postern user quota USER SIZE
 *   postern user del USER
 *   postern user disable USER | enable USER
 *   postern user list
 *   postern domain add DOMAIN | del DOMAIN | list
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "authproto.h"
#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "map.h"
#include "passwd.h"
#include "postern.h"
#include "xalloc.h"

/* The text source of a map config key, and its type. */
struct mapref {
	const char *key;
	char *type;
	char *path;
};

/* Resolve a map key of the config to its source path.  0, or -1 after
 * printing why. */
static int
mapref_get(const struct config *cfg, const char *key, struct mapref *r)
{
	const char *spec = cfg_str(config_global(cfg), key), *type, *arg, *error;

	memset(r, 0, sizeof(*r));
	r->key = key;
	if (spec[0] == '\0') {
		fprintf(stderr, "postern: %s is not set in the config: set it to a map, "
		    "e.g. %s = $config_dir/maps/%s\n", key, key, key);
		return -1;
	}
	map_set_default_type(cfg_str(config_global(cfg), "default_map_type"));
	if (map_parse_spec(spec, &type, &arg, &error) < 0) {
		fprintf(stderr, "postern: %s: %s\n", key, error);
		return -1;
	}
	if (strcmp(type, "static") == 0 || strcmp(type, "inline") == 0) {
		fprintf(stderr, "postern: %s is a %s map, which has no file to edit\n",
		    key, type);
		return -1;
	}
	r->type = xstrdup(type);
	r->path = xstrdup(arg);
	return 0;
}

static void
mapref_free(struct mapref *r)
{
	xfree(&r->type);
	xfree(&r->path);
}

/* One entry of a text source: its first and last line (0-based). */
struct span {
	size_t first, last;
};

/* Collect the source's lines and find the entry of key. */
struct source {
	char **lines;
	size_t n;
	struct span found;
	int has;
};

static void
source_free(struct source *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->lines[i]);
	free(s->lines);
}

/* 1 if line starts an entry whose key (folded) is key. */
static int
line_has_key(const char *line, const char *key)
{
	size_t n = strcspn(line, " \t");

	return line[0] != '#' && line[0] != ' ' && line[0] != '\t' && n == strlen(key) &&
	    strncasecmp(line, key, n) == 0;
}

/* Read path into lines (a missing file is empty) and find key. */
static int
source_read(const char *path, const char *key, struct source *s)
{
	struct buf text = BUF_INIT;
	const char *error;
	char *p, *nl;

	memset(s, 0, sizeof(*s));
	if (access(path, F_OK) == 0 && fs_read_file(path, 64 << 20, &text, &error) < 0) {
		fprintf(stderr, "postern: %s\n", error);
		return -1;
	}
	p = text.data;
	while (p != NULL && *p != '\0') {
		nl = strchr(p, '\n');
		s->lines = xreallocarray(s->lines, s->n + 1, sizeof(*s->lines));
		s->lines[s->n++] = nl ? xstrndup(p, (size_t)(nl - p)) : xstrdup(p);
		p = nl ? nl + 1 : NULL;
	}
	buf_free(&text);
	for (size_t i = 0; key != NULL && i < s->n; i++) {
		if (!line_has_key(s->lines[i], key))
			continue;
		s->has = 1;
		s->found.first = s->found.last = i;
		while (s->found.last + 1 < s->n && (s->lines[s->found.last + 1][0] == ' ' ||
		    s->lines[s->found.last + 1][0] == '\t'))
			s->found.last++;
		break;
	}
	return 0;
}

/* The value of the found entry (continuations joined), malloc'd. */
static char *
source_value(const struct source *s)
{
	struct buf v = BUF_INIT;

	for (size_t i = s->found.first; i <= s->found.last; i++) {
		const char *l = s->lines[i];

		if (i == s->found.first)
			l += strcspn(l, " \t");
		l += strspn(l, " \t");
		if (v.len > 0 && buf_putc(&v, ' ') < 0)
			log_panic("event=overflow");
		if (buf_puts(&v, l) < 0)
			log_panic("event=overflow");
	}
	while (v.len > 0 && (v.data[v.len - 1] == ' ' || v.data[v.len - 1] == '\r'))
		buf_truncate(&v, v.len - 1);
	return buf_steal(&v);
}

/*
 * Replace the entry of key with "key value" (value NULL: delete it;
 * absent: append), write the source atomically keeping its mode and
 * group, and recompile.  0, or -1 after printing why.
 */
static int
source_update(const struct mapref *r, struct source *s, const char *key,
    const char *value, mode_t new_mode, const char *new_group)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct stat st;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	const char *error;
	int ret = -1;

	/* Keep the owner, group and mode of an existing source; a new one
	 * gets new_mode and, as root, new_group (the reader's group). */
	if (stat(r->path, &st) == 0) {
		new_mode = st.st_mode & 07777;
		uid = st.st_uid;
		gid = st.st_gid;
	} else if (new_group != NULL && geteuid() == 0) {
		struct group *gr = getgrnam(new_group);

		if (gr != NULL) {
			gid = gr->gr_gid;
			new_mode |= 0040;
		}
	}

	for (size_t i = 0; i < s->n; i++) {
		if (s->has && i >= s->found.first && i <= s->found.last) {
			if (i == s->found.first && value != NULL &&
			    buf_printf(&out, "%s%s%s\n", key, value[0] ? " " : "", value) < 0)
				log_panic("event=overflow");
			continue;
		}
		if (buf_printf(&out, "%s\n", s->lines[i]) < 0)
			log_panic("event=overflow");
	}
	if (!s->has && value != NULL &&
	    buf_printf(&out, "%s%s%s\n", key, value[0] ? " " : "", value) < 0)
		log_panic("event=overflow");
	if (fs_write_atomic(r->path, out.data ? out.data : "", out.len, new_mode, &error) < 0) {
		fprintf(stderr, "postern: %s\n", error);
		goto out;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && geteuid() == 0 &&
	    (chown(r->path, uid, gid) < 0 || chmod(r->path, new_mode) < 0)) {
		fprintf(stderr, "postern: chown %s: %s\n", r->path, strerror(errno));
		goto out;
	}
	if (map_compile(r->type, r->path, map_config_flags(r->key),
	    &err) < 0) {
		fputs(buf_cstr(&err), stderr);
		goto out;
	}
	ret = 0;
out:
	buf_free(&out);
	buf_free(&err);
	return ret;
}

/* Take the edit lock of a source (PATH.lock beside it).  fd or -1. */
static int
source_lock(const char *path)
{
	char *lock = xasprintf("%s.lock", path);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		fprintf(stderr, "postern: lock %s: %s\n", lock, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	free(lock);
	return fd;
}

/* Check and lower-case a user name user@domain (in place). */
static int
user_ok(char *user)
{
	char *at = strrchr(user, '@');
	size_t n = strlen(user);

	if (at == NULL || at == user || at[1] == '\0' || n > AUTH_MAX_USER ||
	    strpbrk(user, " \t\r\n/\\\"'") != NULL) {
		fprintf(stderr, "postern: a user is a full address, user@domain: '%s'\n",
		    log_safe(user));
		return 0;
	}
	for (char *p = user; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x21 || *p == 0x7f) {
			fprintf(stderr, "postern: control characters in '%s'\n", log_safe(user));
			return 0;
		}
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return 1;
}

/* Read a line from fd 0 into out (without its line ending). */
static int
read_line_stdin(struct buf *out)
{
	char c;
	ssize_t n;

	buf_reset(out);
	while ((n = read(0, &c, 1)) == 1 && c != '\n')
		if (buf_putc(out, c) < 0)
			return -1;
	if (n < 0)
		return -1;
	if (out->len > 0 && out->data[out->len - 1] == '\r')
		buf_truncate(out, out->len - 1);
	return 0;
}

/* Ask for a password: twice without echo on a TTY, else one line of
 * standard input.  The caller wipes and frees *pw. */
static int
read_password(struct buf *pw)
{
	struct termios old, quiet;
	struct buf again;
	int tty = isatty(0), r = 0;

	buf_init(pw, AUTH_MAX_PASSWORD);
	if (!tty) {
		if (read_line_stdin(pw) < 0)
			fprintf(stderr, "postern: password longer than %d bytes\n",
			    AUTH_MAX_PASSWORD);
		else if (pw->len == 0)
			fprintf(stderr, "postern: empty password\n");
		else
			return 0;
		return -1;
	}
	buf_init(&again, AUTH_MAX_PASSWORD);
	if (tcgetattr(0, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	fprintf(stderr, "New password: ");
	tcsetattr(0, TCSAFLUSH, &quiet);
	r |= read_line_stdin(pw);
	fprintf(stderr, "\nRepeat password: ");
	r |= read_line_stdin(&again);
	tcsetattr(0, TCSAFLUSH, &old);
	fprintf(stderr, "\n");
	if (r < 0 || pw->len == 0 || pw->len != again.len ||
	    memcmp(pw->data, again.data, pw->len) != 0) {
		fprintf(stderr, "postern: %s\n", r < 0 ? "password too long" :
		    pw->len == 0 ? "empty password" : "the passwords differ");
		r = -1;
	}
	if (again.data != NULL)
		explicit_bzero(again.data, again.len);
	buf_free(&again);
	return r;
}

/* Hash a new password read from the TTY or stdin (malloc'd), or NULL. */
static char *
new_hash(void)
{
	struct buf pw;
	const char *error;
	char *hash = NULL;

	if (read_password(&pw) == 0) {
		hash = passwd_hash(buf_cstr(&pw), &error);
		if (hash == NULL)
			fprintf(stderr, "postern: %s\n", error);
	}
	if (pw.data != NULL)
		explicit_bzero(pw.data, pw.len);
	buf_free(&pw);
	return hash;
}

/* Print usage of the user command and return EXIT_USAGE. */
static int
user_usage(void)
{
	fprintf(stderr, "usage: postern user add USER [--quota SIZE]\n"
	    "       postern user passwd|del|disable|enable USER\n"
	    "       postern user quota USER SIZE\n"
	    "       postern user list\n"
	    "The password is read from the terminal, or one line of standard input.\n");
	return EXIT_USAGE;
}

/* List users: name, state, quota. */
static int
user_list(const struct mapref *r)
{
	struct source s;

	if (source_read(r->path, NULL, &s) < 0)
		return EXIT_FAIL;
	for (size_t i = 0; i < s.n; i++) {
		struct passwd_entry e;
		const char *error;
		char *key, *value;

		if (s.lines[i][0] == '#' || s.lines[i][0] == ' ' || s.lines[i][0] == '\t' ||
		    s.lines[i][0] == '\0')
			continue;
		key = xstrndup(s.lines[i], strcspn(s.lines[i], " \t"));
		s.has = 1;
		s.found.first = s.found.last = i;
		while (s.found.last + 1 < s.n && (s.lines[s.found.last + 1][0] == ' ' ||
		    s.lines[s.found.last + 1][0] == '\t'))
			s.found.last++;
		value = source_value(&s);
		if (passwd_parse(value, &e, &error) < 0) {
			printf("%s\tINVALID (%s)\n", key, error);
		} else {
			printf("%s\t%s", key, e.enabled ? "enabled" : "disabled");
			if (e.quota > 0)
				printf("\tquota=%llu", (unsigned long long)e.quota);
			printf("\n");
			passwd_entry_free(&e);
		}
		free(key);
		free(value);
	}
	source_free(&s);
	return EXIT_OK;
}

int
cmd_user(const char *config, int argc, char **argv)
{
	struct config *cfg;
	struct mapref r;
	struct source s;
	struct passwd_entry e = { NULL, 0, 1 };
	const char *op, *error;
	char *user, *value = NULL;
	int lock, ret = EXIT_FAIL;

	if (argc < 2)
		return user_usage();
	op = argv[1];
	if ((cfg = tool_load_config(config)) == NULL)
		return EXIT_FAIL;
	if (mapref_get(cfg, "passwd", &r) < 0) {
		config_free(&cfg);
		return EXIT_FAIL;
	}
	config_free(&cfg);
	if (strcmp(op, "list") == 0 && argc == 2) {
		ret = user_list(&r);
		mapref_free(&r);
		return ret;
	}
	if (argc < 3) {
		mapref_free(&r);
		return user_usage();
	}
	user = argv[2];
	if (!user_ok(user) || (lock = source_lock(r.path)) < 0) {
		mapref_free(&r);
		return EXIT_FAIL;
	}
	if (source_read(r.path, user, &s) < 0)
		goto out;
	if (s.has) {
		value = source_value(&s);
		if (passwd_parse(value, &e, &error) < 0) {
			fprintf(stderr, "postern: %s: entry of %s: %s\n", r.path, user, error);
			goto out_source;
		}
	}
	if (strcmp(op, "add") == 0) {
		if (s.has) {
			fprintf(stderr, "postern: user %s exists (use postern user passwd)\n", user);
			goto out_source;
		}
		if (argc == 5 && strcmp(argv[3], "--quota") == 0) {
			if (cfg_parse_size(argv[4], &e.quota, &error) < 0) {
				fprintf(stderr, "postern: --quota: %s\n", error);
				goto out_source;
			}
		} else if (argc != 3) {
			ret = user_usage();
			goto out_source;
		}
		if ((e.hash = new_hash()) == NULL)
			goto out_source;
	} else if (!s.has) {
		fprintf(stderr, "postern: no user %s in %s\n", user, r.path);
		goto out_source;
	} else if (strcmp(op, "passwd") == 0 && argc == 3) {
		free(e.hash);
		if ((e.hash = new_hash()) == NULL)
			goto out_source;
	} else if (strcmp(op, "quota") == 0 && argc == 4) {
		if (cfg_parse_size(argv[3], &e.quota, &error) < 0) {
			fprintf(stderr, "postern: quota: %s\n", error);
			goto out_source;
		}
	} else if ((strcmp(op, "disable") == 0 || strcmp(op, "enable") == 0) && argc == 3) {
		e.enabled = strcmp(op, "enable") == 0;
	} else if (strcmp(op, "del") == 0 && argc == 3) {
		if (source_update(&r, &s, user, NULL, 0600, "postern-auth") == 0) {
			printf("deleted user %s\n", user);
			ret = EXIT_OK;
		}
		goto out_source;
	} else {
		ret = user_usage();
		goto out_source;
	}
	free(value);
	value = passwd_format(&e);
	if (source_update(&r, &s, user, value, 0600, "postern-auth") == 0) {
		printf("%s user %s\n", strcmp(op, "add") == 0 ? "added" :
		    strcmp(op, "passwd") == 0 ? "new password for" :
		    strcmp(op, "quota") == 0 ? "new quota for" :
		    e.enabled ? "enabled" : "disabled", user);
		ret = EXIT_OK;
	}
out_source:
	source_free(&s);
	passwd_entry_free(&e);
	free(value);
out:
	close(lock);
	mapref_free(&r);
	return ret;
}

/* Check and lower-case a domain name (in place). */
static int
domain_ok(char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || d[n - 1] == '.' ||
	    strstr(d, "..") != NULL) {
		fprintf(stderr, "postern: not a domain name: '%s'\n", log_safe(d));
		return 0;
	}
	for (char *p = d; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || (unsigned char)*p >= 0x80)) {
			fprintf(stderr, "postern: not a domain name: '%s'\n", log_safe(d));
			return 0;
		}
	}
	return 1;
}

int
cmd_domain(const char *config, int argc, char **argv)
{
	struct config *cfg;
	struct mapref r;
	struct source s;
	int lock, ret = EXIT_FAIL;

	if (argc < 2 || !((strcmp(argv[1], "list") == 0 && argc == 2) ||
	    ((strcmp(argv[1], "add") == 0 || strcmp(argv[1], "del") == 0) && argc == 3))) {
		fprintf(stderr, "usage: postern domain add|del DOMAIN\n"
		    "       postern domain list\n");
		return EXIT_USAGE;
	}
	if ((cfg = tool_load_config(config)) == NULL)
		return EXIT_FAIL;
	if (mapref_get(cfg, "virtual_domains", &r) < 0) {
		config_free(&cfg);
		return EXIT_FAIL;
	}
	config_free(&cfg);
	if (strcmp(argv[1], "list") == 0) {
		if (source_read(r.path, NULL, &s) == 0) {
			for (size_t i = 0; i < s.n; i++)
				if (s.lines[i][0] != '#' && s.lines[i][0] != ' ' &&
				    s.lines[i][0] != '\t' && s.lines[i][0] != '\0')
					printf("%.*s\n", (int)strcspn(s.lines[i], " \t"), s.lines[i]);
			source_free(&s);
			ret = EXIT_OK;
		}
		mapref_free(&r);
		return ret;
	}
	if (!domain_ok(argv[2]) || (lock = source_lock(r.path)) < 0) {
		mapref_free(&r);
		return EXIT_FAIL;
	}
	if (source_read(r.path, argv[2], &s) == 0) {
		int add = strcmp(argv[1], "add") == 0;

		if (add == s.has)
			fprintf(stderr, "postern: domain %s %s\n", argv[2],
			    add ? "is already there" : "is not there");
		else if (source_update(&r, &s, argv[2], add ? "" : NULL, 0644, NULL) == 0) {
			printf("%s domain %s\n", add ? "added" : "deleted", argv[2]);
			ret = EXIT_OK;
		}
		source_free(&s);
	}
	close(lock);
	mapref_free(&r);
	return ret;
}
