/*
 * sendmail: the sendmail(1)-compatible command that cron, PHP and scripts
 * use to submit mail.  It reads one message on standard input, adds the
 * From:, Date: and Message-ID: headers a local submission may lack,
 * removes Bcc:, and drops the message with its envelope into
 * spool_dir/maildrop as a queue file (lib/mail/qfile), then tells qmgr over
 * its notice socket (as smtpd does), so qmgr picks it up at once; if qmgr
 * is not there the submission still succeeds and its periodic scan finds
 * the file.
 *
 * Installed set-group-id drop_group (postern-drop) and run by anyone, so
 * it trusts nothing it is handed: the environment is cleared, -C and
 * POSTERN_CONFIG are honoured only when it is not privileged (or for
 * root), fds 0-2 are made to exist, and the maildrop is never entered
 * through a symlink.  Exit codes follow sysexits.h.
 *
 * -bp lists the queue instead, as mailq(1) does (tools/qctl), through
 * qmgr's control socket: root only in root mode, so for anyone else it
 * says "permission denied" and exits 1.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "net.h"
#include "qctl.h"
#include "priv.h"
#include "qfile.h"
#include "qmgrproto.h"
#include "smtp.h"
#include "xalloc.h"

#define DEFAULT_CONFIG	SYSCONFDIR "/postern/postern.conf"
#define HARD_MAX_SIZE	(50ull * 1024 * 1024)	/* without a size key */
#define PIECE_MAX	65536			/* longest piece of a line */
#define ENVID_MAX	100			/* RFC 3461 */

/* Size-limit keys, in order of preference, used if the config declares
 * them. */
static const char *const size_keys[] = {
	"message_size_limit", "smtpd_max_message_size",
};

struct opts {
	const char *config;	/* -C */
	const char *sender;	/* -f / -r */
	const char *fullname;	/* -F */
	const char *envid;	/* -V */
	int extract;		/* -t */
	int ignore_dots;	/* -i, -oi */
	int verbose;		/* -v */
	int list;		/* -bp: list the queue */
	int body;		/* -B: -1 not given, 0 7BIT, 1 8BITMIME */
	int ret;		/* -R, SMTP_RET_* */
	unsigned notify;	/* -N, SMTP_NOTIFY_* */
};

/* Standard input, read in blocks. */
struct input {
	int fd;
	size_t pos, len;
	int eof;
	char data[65536];
};

/* One header field: its lines (continuations included) in the header
 * buffer. */
struct header {
	size_t off, len;
};

struct ctx {
	struct opts o;
	int privileged;		/* running set-group-id */
	int root_mode;
	char *config_env;	/* POSTERN_CONFIG, if it may be used */
	char *config_path;	/* the config file read */
	char *login;
	char *gecos;		/* full name from the passwd entry, or NULL */
	char *hostname;
	char *spool;		/* spool_dir/maildrop */
	char *run_dir;		/* for -bp */
	char *pid_file;
	uint64_t max_size;
	uint64_t reserve;	/* queue_minfree in effect */
	struct envelope env;
	struct buf head;	/* the header section, LF line endings */
	struct header *hdrs;
	size_t nhdrs;
	struct buf first;	/* a body line that ended the headers, or "" */
	int done;		/* input ended (EOF or a lone ".") */
	int at_line_start;
	struct input in;
};

/* Print "sendmail: message" to stderr, log it in root mode, and exit. */
static void __attribute__((format(printf, 2, 3), noreturn))
die(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sendmail: %s\n", msg);
	log_msg(LOG_LEVEL_WARN, "event=refused uid=%u status=%d reason=%s",
	    (unsigned)getuid(), code, log_safe(msg));
	exit(code);
}

/* Make fds 0-2 exist, keep what is needed of the environment, clear the
 * rest, and set signals and umask to known values. */
static void
sanitize_process(struct ctx *c)
{
	const char *v;
	char *tz = NULL;
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			_exit(EX_OSERR);
	}
	c->privileged = getegid() != getgid() || geteuid() != getuid();
	if ((!c->privileged || getuid() == 0) &&
	    (v = getenv("POSTERN_CONFIG")) != NULL && v[0] != '\0')
		c->config_env = xstrdup(v);
	if (!c->privileged && (v = getenv("TZ")) != NULL)
		tz = xstrdup(v);
	if (clearenv() != 0)
		_exit(EX_OSERR);
	if (setenv("PATH", "/usr/bin:/bin", 1) < 0 ||
	    (tz != NULL && setenv("TZ", tz, 1) < 0))
		_exit(EX_OSERR);
	free(tz);
	signal(SIGXFSZ, SIG_IGN);	/* a file size limit is an error, not death */
	signal(SIGPIPE, SIG_IGN);
	umask(022);
}

/* Exit EX_USAGE for a mode this sendmail does not offer. */
static void __attribute__((noreturn))
unsupported(const char *opt)
{
	die(EX_USAGE, "%s is not supported by postern's sendmail "
	    "(it only submits mail; see sendmail(1))", opt);
}

/* -N: "never" or a comma-separated list of success, failure, delay. */
static unsigned
parse_notify(const char *s)
{
	char *copy = xstrdup(s), *tok, *save = NULL;
	unsigned bits = 0;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "never") == 0)
			bits |= SMTP_NOTIFY_NEVER;
		else if (strcasecmp(tok, "success") == 0)
			bits |= SMTP_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "failure") == 0)
			bits |= SMTP_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "delay") == 0)
			bits |= SMTP_NOTIFY_DELAY;
		else
			die(EX_USAGE, "-N: unknown notification %s", log_safe(tok));
	}
	free(copy);
	if (bits == 0 || ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER))
		die(EX_USAGE, "-N: \"never\" or a list of success, failure, delay");
	return bits;
}

/* Parse the options; returns the index of the first recipient. */
static int
parse_options(struct ctx *c, int argc, char **argv)
{
	struct opts *o = &c->o;
	const char *p;
	int ch;

	o->body = -1;
	o->ret = SMTP_RET_NONE;
	opterr = 0;
	while ((ch = getopt(argc, argv,
	    ":A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q:r:tvx")) != -1) {
		switch (ch) {
		case 'B':
			if (strcasecmp(optarg, "7BIT") == 0)
				o->body = 0;
			else if (strcasecmp(optarg, "8BITMIME") == 0)
				o->body = 1;
			else
				die(EX_USAGE, "-B: 7BIT or 8BITMIME");
			break;
		case 'C':
			o->config = optarg;
			break;
		case 'F':
			o->fullname = optarg;
			break;
		case 'I':
			unsupported("-I (newaliases)");
		case 'N':
			o->notify = parse_notify(optarg);
			break;
		case 'R':
			if (strcasecmp(optarg, "full") == 0)
				o->ret = SMTP_RET_FULL;
			else if (strcasecmp(optarg, "hdrs") == 0)
				o->ret = SMTP_RET_HDRS;
			else
				die(EX_USAGE, "-R: full or hdrs");
			break;
		case 'V':
			for (p = optarg; *p > 0x20 && *p < 0x7f && *p != '+' &&
			    *p != '='; p++)
				;
			if (*p != '\0' || p == optarg || p - optarg > ENVID_MAX)
				die(EX_USAGE, "-V: 1 to %d printable ASCII "
				    "characters other than + and =", ENVID_MAX);
			o->envid = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "p") == 0)
				o->list = 1;
			else if (strcmp(optarg, "m") == 0)
				o->list = 0;
			else {
				char opt[8];

				snprintf(opt, sizeof(opt), "-b%.4s", optarg);
				unsupported(opt);
			}
			break;
		case 'f':
		case 'r':
			o->sender = optarg;
			break;
		case 'i':
			o->ignore_dots = 1;
			break;
		case 'o':
			/* -oi is -i; other -o options are ignored, as Postfix does. */
			if (strcmp(optarg, "i") == 0)
				o->ignore_dots = 1;
			break;
		case 'q':
			unsupported("-q (queue runs)");
		case 't':
			o->extract = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'A': case 'G': case 'L': case 'O': case 'U': case 'X':
		case 'c': case 'e': case 'h': case 'm': case 'n': case 'p':
		case 'x':
			break;	/* accepted for compatibility, no effect */
		case ':':
			die(EX_USAGE, "option -%c needs a value", optopt);
		default:
			die(EX_USAGE, "unknown option -%c (usage: sendmail "
			    "[-t] [-i] [-f sender] [-F name] [recipient ...])",
			    optopt > 0x20 && optopt < 0x7f ? optopt : '?');
		}
	}
	return optind;
}

/* Read the config and the settings sendmail needs from it. */
static void
load_config(struct ctx *c)
{
	struct buf err = BUF_INIT;
	struct config *cfg;
	const struct cfg_section *g;
	const char *path = DEFAULT_CONFIG;
	char host[256];
	size_t i, k;

	if (c->o.config != NULL) {
		if (c->privileged && getuid() != 0)
			fprintf(stderr, "sendmail: ignoring -C: sendmail is "
			    "set-group-id and only root may choose its config\n");
		else
			path = c->o.config;
	} else if (c->config_env != NULL)
		path = c->config_env;
	if (config_load(path, &cfg, &err) < 0)
		die(EX_CONFIG, "%s", buf_cstr(&err));
	buf_free(&err);
	g = config_global(cfg);
	c->config_path = xstrdup(path);
	c->root_mode = strcmp(cfg_str(g, "mode"), "root") == 0;
	c->spool = fs_join(cfg_str(g, "spool_dir"), "maildrop");
	c->run_dir = xstrdup(cfg_str(g, "run_dir"));
	c->pid_file = xstrdup(cfg_str(g, "pid_file"));
	c->max_size = HARD_MAX_SIZE;
	for (k = 0; k < sizeof(size_keys) / sizeof(size_keys[0]); k++) {
		for (i = 0; i < config_global_nkeys; i++) {
			if (strcmp(config_global_keys[i].name, size_keys[k]) == 0 &&
			    config_global_keys[i].type == CFG_SIZE)
				break;
		}
		if (i < config_global_nkeys) {
			c->max_size = cfg_size(g, size_keys[k]);
			break;
		}
	}
	c->reserve = qfile_reserve(cfg_size(g, "queue_minfree"), c->max_size);
	c->hostname = xstrdup(net_hostname(cfg_str(g, "hostname"), host, sizeof(host)));
	config_free(&cfg);
}

/* Who is sending: the login name and full name of the real uid (never
 * $USER or getlogin(), which the caller controls). */
static void
load_identity(struct ctx *c)
{
	struct passwd *pw = getpwuid(getuid());
	size_t n;

	if (pw == NULL) {
		c->login = xasprintf("uid%u", (unsigned)getuid());
		return;
	}
	c->login = xstrdup(pw->pw_name);
	if (pw->pw_gecos != NULL && (n = strcspn(pw->pw_gecos, ",")) > 0)
		c->gecos = xstrndup(pw->pw_gecos, n);
}

/* In dev mode, or once the maildrop is no longer needed, give up the
 * set-group-id privilege for good. */
static void
drop_group(void)
{
	gid_t g = getgid();

	if (setresgid(g, g, g) < 0)
		die(EX_OSERR, "setresgid: %s", strerror(errno));
}

/* -bp: list the queue as mailq(1) does, without the set-group-id
 * privilege.  Returns the exit status. */
static int
list_queue(struct ctx *c, int nargs)
{
	struct qctl_where w;
	int status;

	if (nargs > 0)
		die(EX_USAGE, "-bp takes no recipients");
	if (c->privileged)
		drop_group();
	w.run_dir = c->run_dir;
	w.pid_file = c->pid_file;
	w.root_mode = c->root_mode;
	status = qctl_mailq("sendmail", &w);
	free(c->run_dir);
	free(c->pid_file);
	free(c->spool);
	free(c->hostname);
	free(c->config_env);
	free(c->config_path);
	return status;
}

/*
 * Check one bare address (no display name or angle brackets): a
 * non-empty local part, quoted or not, and an optional non-empty domain;
 * no control characters, no unquoted specials.  Non-ASCII is allowed
 * (it makes the message SMTPUTF8).  0 or -1.
 */
static int
check_address(const char *a)
{
	const char *p, *at = NULL;
	int quoted = 0;

	if (a[0] == '\0' || strlen(a) > SMTP_MAX_PATH)
		return -1;
	for (p = a; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x20 || ch == 0x7f)
			return -1;
		if (quoted) {
			if (ch == '\\' && p[1] != '\0')
				p++;
			else if (ch == '"')
				quoted = 0;
			continue;
		}
		if (ch == '"' && (p == a || p[-1] == '.'))
			quoted = 1;
		else if (ch == '@')
			at = p;
		else if (strchr(" \t\"<>(),;:\\", ch) != NULL &&
		    !(at != NULL && strchr("[]:", ch) != NULL))
			return -1;
	}
	if (quoted || at == a || (at != NULL && at[1] == '\0'))
		return -1;
	return 0;
}

/* A checked address with @hostname added when it has no domain
 * (malloc'd), or NULL. */
static char *
qualify(struct ctx *c, const char *a)
{
	const char *p;
	int quoted = 0, at = 0;

	if (check_address(a) < 0)
		return NULL;
	for (p = a; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '@')
			at = 1;
	}
	return at ? xstrdup(a) : xasprintf("%s@%s", a, c->hostname);
}

/* Whether s has a byte outside ASCII. */
static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return 1;
	}
	return 0;
}

/* Add one recipient address (from an argument or a header). */
static void
add_recipient(struct ctx *c, const char *addr)
{
	char *q = qualify(c, addr);

	if (q == NULL)
		die(EX_NOUSER, "malformed recipient address: %s", log_safe(addr));
	if (has_8bit(q))
		c->env.smtputf8 = 1;
	envelope_add_rcpt(&c->env, q, c->o.notify, NULL);
	free(q);
}

/* Copy a quoted string or domain literal starting at s[*i] (the opening
 * character) into out, through its closing character.  0 or -1. */
static int
copy_delimited(const char *s, size_t n, size_t *i, char close, struct buf *out)
{
	size_t j = *i + 1;

	while (j < n && s[j] != close) {
		if (s[j] == '\\' && j + 1 < n)
			j++;
		j++;
	}
	if (j >= n)
		return -1;
	if (buf_append(out, s + *i, j + 1 - *i) < 0)
		return -1;
	*i = j;
	return 0;
}

/* Skip a (possibly nested) comment starting at s[*i].  0 or -1. */
static int
skip_comment(const char *s, size_t n, size_t *i)
{
	size_t j = *i, depth = 0;

	for (; j < n; j++) {
		if (s[j] == '\\' && j + 1 < n)
			j++;
		else if (s[j] == '(')
			depth++;
		else if (s[j] == ')' && --depth == 0) {
			*i = j;
			return 0;
		}
	}
	return -1;
}

/* The address of one list item: the angle address if there was one
 * (without a source route), else the bare words. */
static void
flush_item(struct ctx *c, struct buf *plain, struct buf *angle, int have_angle,
    int words)
{
	const char *a;
	const char *colon;

	if (have_angle) {
		a = buf_cstr(angle);
		if (a[0] == '@' && (colon = strchr(a, ':')) != NULL)
			a = colon + 1;		/* <@relay,@relay:user@domain> */
		if (a[0] != '\0')
			add_recipient(c, a);
	} else if (plain->len > 0) {
		if (words > 1)
			die(EX_NOUSER, "malformed recipient address: %s",
			    log_safe(buf_cstr(plain)));
		add_recipient(c, buf_cstr(plain));
	}
	buf_reset(plain);
	buf_reset(angle);
}

/*
 * Add every address of an RFC 5322 address list: "Name <addr>", bare
 * addresses, quoted strings, comments, groups ("team: a@x, b@y;", and
 * "undisclosed-recipients:;"), folded over several lines.  Exits
 * EX_NOUSER for an unterminated quote, comment or angle bracket.
 */
static void
add_address_list(struct ctx *c, const char *s, size_t n)
{
	struct buf plain = BUF_INIT, angle = BUF_INIT;
	int in_angle = 0, have_angle = 0, words = 0, space = 0, bad = 0;
	size_t i;

	for (i = 0; i < n && !bad; i++) {
		char ch = s[i];
		struct buf *cur = in_angle ? &angle : &plain;

		switch (ch) {
		case ' ': case '\t': case '\r': case '\n':
			space = 1;
			continue;
		case '(':
			bad = skip_comment(s, n, &i) < 0;
			space = 1;
			continue;
		case '<':
			bad = in_angle || have_angle;
			in_angle = 1;
			break;
		case '>':
			bad = !in_angle;
			in_angle = 0;
			have_angle = 1;
			break;
		case ',':
		case ';':
			if (in_angle) {
				bad = 1;
				break;
			}
			flush_item(c, &plain, &angle, have_angle, words);
			have_angle = words = 0;
			break;
		case ':':
			if (!in_angle && !have_angle) {
				/* A group: what came before is its name. */
				buf_reset(&plain);
				words = 0;
				break;
			}
			/* A source route's ':' inside <...> is kept. */
			/* FALLTHROUGH */
		default:
			if (!in_angle && (plain.len == 0 || space))
				words++;
			if (ch == '"')
				bad = copy_delimited(s, n, &i, '"', cur) < 0;
			else if (ch == '[')
				bad = copy_delimited(s, n, &i, ']', cur) < 0;
			else if (buf_putc(cur, ch) < 0)
				bad = 1;
			break;
		}
		space = 0;
	}
	if (bad || in_angle)
		die(EX_NOUSER, "malformed address list: %s", log_safe_n(s, n));
	flush_item(c, &plain, &angle, have_angle, words);
	buf_free(&plain);
	buf_free(&angle);
}

/*
 * The next piece of input appended to out: a line through its LF, or
 * PIECE_MAX bytes of a longer one (never splitting CR from LF), or the
 * unterminated rest at end of input.  1 with *complete_r saying whether
 * it ends with LF, or 0 at end of input.
 */
static int
input_piece(struct input *in, struct buf *out, int *complete_r)
{
	size_t start = out->len, take, room;
	const char *p, *nl;
	ssize_t k;

	for (;;) {
		if (in->pos == in->len) {
			if (in->eof)
				break;
			do
				k = read(in->fd, in->data, sizeof(in->data));
			while (k < 0 && errno == EINTR);
			if (k < 0)
				die(EX_IOERR, "reading the message: %s", strerror(errno));
			in->pos = 0;
			in->len = (size_t)k;
			in->eof = k == 0;
			continue;
		}
		p = in->data + in->pos;
		nl = memchr(p, '\n', in->len - in->pos);
		take = nl != NULL ? (size_t)(nl - p) + 1 : in->len - in->pos;
		room = PIECE_MAX - (out->len - start);
		if (take > room) {
			take = room;
			nl = NULL;
		}
		if (buf_append(out, p, take) < 0)
			die(EX_DATAERR, "message too large");
		in->pos += take;
		if (nl != NULL) {
			*complete_r = 1;
			return 1;
		}
		if (out->len - start == PIECE_MAX) {
			if (out->data[out->len - 1] == '\r') {
				buf_truncate(out, out->len - 1);
				in->pos--;
			}
			*complete_r = 0;
			return 1;
		}
	}
	*complete_r = 0;
	return out->len > start;
}

/*
 * Read the next line or piece into out (emptied first) with LF line
 * endings: CRLF becomes LF and a last line without one gets it.  Returns
 * 0 at the end of the message (end of input, or a lone "." without -i),
 * else 1; *start_r says whether the piece starts a line.
 */
static int
next_piece(struct ctx *c, struct buf *out, int *start_r)
{
	int complete;

	buf_reset(out);
	if (c->done)
		return 0;
	*start_r = c->at_line_start;
	if (input_piece(&c->in, out, &complete) == 0) {
		c->done = 1;
		return 0;
	}
	if (complete || c->in.eof) {
		if (out->len > 0 && out->data[out->len - 1] == '\n')
			buf_truncate(out, out->len - 1);
		if (out->len > 0 && out->data[out->len - 1] == '\r')
			buf_truncate(out, out->len - 1);
		if (buf_putc(out, '\n') < 0)
			die(EX_DATAERR, "message too large");
		complete = 1;
	}
	c->at_line_start = complete;
	if (*start_r && complete && !c->o.ignore_dots && out->len == 2 &&
	    out->data[0] == '.') {
		c->done = 1;
		return 0;
	}
	return 1;
}

/* Whether a header line names this field (case-insensitively). */
static int
header_is(const struct ctx *c, const struct header *h, const char *name)
{
	size_t n = strlen(name);

	return h->len > n && c->head.data[h->off + n] == ':' &&
	    strncasecmp(c->head.data + h->off, name, n) == 0;
}

/*
 * Read the header section into c->head, one struct header per field.
 * It ends at an empty line (consumed), at a line that is not a header
 * (kept in c->first as the first body line), or at the end of input.
 * A leading mbox "From " line is dropped, as other sendmails do.
 */
static void
read_headers(struct ctx *c)
{
	struct buf line = BUF_INIT;
	int start, lineno = 0;

	buf_init(&c->head, (size_t)c->max_size);
	while (next_piece(c, &line, &start)) {
		const char *s = buf_cstr(&line);

		if (!start) {
			/* The rest of a long line. */
			if (c->first.len > 0) {
				if (buf_append(&c->first, line.data, line.len) < 0)
					die(EX_DATAERR, "message too large");
				if (c->at_line_start)
					break;
				continue;
			}
			if (c->nhdrs == 0)
				die(EX_SOFTWARE, "header continuation without a header");
			if (buf_append(&c->head, line.data, line.len) < 0)
				die(EX_DATAERR, "message too large");
			c->hdrs[c->nhdrs - 1].len += line.len;
			continue;
		}
		if (lineno++ == 0 && line.len > 5 && memcmp(s, "From ", 5) == 0 &&
		    c->at_line_start)
			continue;
		if (line.len == 1)
			break;		/* the empty line */
		if ((s[0] == ' ' || s[0] == '\t') && c->nhdrs > 0) {
			if (buf_append(&c->head, line.data, line.len) < 0)
				die(EX_DATAERR, "message too large");
			c->hdrs[c->nhdrs - 1].len += line.len;
			continue;
		}
		if (!smtp_is_field(s, line.len)) {
			if (buf_append(&c->first, line.data, line.len) < 0)
				die(EX_DATAERR, "message too large");
			if (c->at_line_start)
				break;
			continue;
		}
		c->hdrs = xreallocarray(c->hdrs, c->nhdrs + 1, sizeof(*c->hdrs));
		c->hdrs[c->nhdrs].off = c->head.len;
		c->hdrs[c->nhdrs].len = line.len;
		c->nhdrs++;
		if (buf_append(&c->head, line.data, line.len) < 0)
			die(EX_DATAERR, "message too large");
	}
	buf_free(&line);
}

/* -t: the recipients of the To:, Cc: and Bcc: fields. */
static void
extract_recipients(struct ctx *c)
{
	static const char *const fields[] = { "to", "cc", "bcc" };
	size_t i, k, n;

	for (i = 0; i < c->nhdrs; i++) {
		for (k = 0; k < 3; k++) {
			if (header_is(c, &c->hdrs[i], fields[k])) {
				n = strlen(fields[k]) + 1;
				add_address_list(c, c->head.data + c->hdrs[i].off + n,
				    c->hdrs[i].len - n);
			}
		}
	}
}

/* Whether a field of this name is present. */
static int
has_header(const struct ctx *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nhdrs; i++) {
		if (header_is(c, &c->hdrs[i], name))
			return 1;
	}
	return 0;
}

/* Append a display name: as is if it is plain words, else quoted, or
 * RFC 2047-encoded if it has non-ASCII; control characters dropped. */
static void
put_display_name(struct buf *b, const char *name)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)name, *end;
	int plain = 1, ok = 0;

	for (; *p != '\0'; p++) {
		if (*p >= 0x80)
			plain = -1;
		else if (plain > 0 && !(*p == ' ' || (*p > 0x20 && *p < 0x7f &&
		    strchr("()<>[]:;@\\,.\"", *p) == NULL)))
			plain = 0;
	}
	p = (const unsigned char *)name;
	if (plain < 0) {
		/* Encoded words of at most 30 input bytes, split between
		 * UTF-8 characters. */
		while (*p != '\0') {
			size_t n = strlen((const char *)p), i;

			if (n > 30) {
				n = 30;
				while (n > 1 && (p[n] & 0xc0) == 0x80)
					n--;
			}
			end = p + n;
			ok |= buf_puts(b, p == (const unsigned char *)name ?
			    "=?UTF-8?B?" : " =?UTF-8?B?");
			for (i = 0; i < n; i += 3) {
				unsigned v = (unsigned)p[i] << 16 |
				    (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
				    (i + 2 < n ? p[i + 2] : 0);

				ok |= buf_putc(b, b64[v >> 18 & 63]);
				ok |= buf_putc(b, b64[v >> 12 & 63]);
				ok |= buf_putc(b, i + 1 < n ? b64[v >> 6 & 63] : '=');
				ok |= buf_putc(b, i + 2 < n ? b64[v & 63] : '=');
			}
			ok |= buf_puts(b, "?=");
			p = end;
		}
	} else {
		if (!plain)
			ok |= buf_putc(b, '"');
		for (; *p != '\0'; p++) {
			if (*p < 0x20 || *p == 0x7f)
				continue;
			if (!plain && (*p == '"' || *p == '\\'))
				ok |= buf_putc(b, '\\');
			ok |= buf_putc(b, (char)*p);
		}
		if (!plain)
			ok |= buf_putc(b, '"');
	}
	if (ok < 0)
		die(EX_SOFTWARE, "display name too long");
}

/* The headers sendmail adds when the message lacks them. */
static void
added_headers(struct ctx *c, struct buf *out)
{
	const char *name = c->o.fullname != NULL ? c->o.fullname : c->gecos;
	char date[64];
	struct tm tm;
	time_t now = time(NULL);
	int r = 0;

	if (!has_header(c, "from")) {
		r |= buf_puts(out, "From: ");
		if (name != NULL && name[0] != '\0') {
			put_display_name(out, name);
			r |= buf_printf(out, " <%s@%s>\n", c->login, c->hostname);
		} else
			r |= buf_printf(out, "%s@%s\n", c->login, c->hostname);
	}
	if (!has_header(c, "date")) {
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		r |= buf_printf(out, "Date: %s\n", date);
	}
	if (!has_header(c, "message-id"))
		r |= buf_printf(out, "Message-ID: <%s@%s>\n", c->env.id, c->hostname);
	if (r < 0)
		die(EX_SOFTWARE, "header too long");
}

/* The envelope: sender, recipients (already added) and submission
 * details. */
static void
build_envelope(struct ctx *c)
{
	struct envelope *e = &c->env;
	struct timeval tv;
	const char *s = c->o.sender;
	size_t n;

	gettimeofday(&tv, NULL);
	e->arrival_us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	if (s == NULL)
		e->sender = xasprintf("%s@%s", c->login, c->hostname);
	else if (s[0] == '\0' || strcmp(s, "<>") == 0)
		e->sender = xstrdup("");
	else {
		n = strlen(s);
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			char *inner = xstrndup(s + 1, n - 2);

			e->sender = qualify(c, inner);
			free(inner);
		} else
			e->sender = qualify(c, s);
		if (e->sender == NULL)
			die(EX_NOUSER, "malformed sender address: %s", log_safe(s));
	}
	if (has_8bit(e->sender))
		e->smtputf8 = 1;
	/* Without -B the body is declared 8BITMIME: never a false claim
	 * that matters, since 7-bit text is valid 8BITMIME. */
	e->body_8bit = c->o.body != 0;
	e->ret = c->o.ret;
	e->envid = c->o.envid != NULL ? xstrdup(c->o.envid) : NULL;
	e->client = xstrdup("local");
	e->proto = xstrdup("LOCAL");
	e->auth = xstrdup(c->login);
}

/* Write n bytes of message, enforcing the size limit.  0, or exits
 * after aborting the file. */
static void
put(struct ctx *c, struct qfile_writer **w, const void *p, size_t n)
{
	if (qfile_size(*w) + n > c->max_size) {
		qfile_abort(w);
		die(EX_DATAERR, "message too large (the limit is %llu bytes)",
		    (unsigned long long)c->max_size);
	}
	if (qfile_write(*w, p, n) < 0) {
		qfile_abort(w);
		die(EX_TEMPFAIL, "cannot write to the mail queue (disk full?); "
		    "try again later");
	}
}

/* Write the queue file into the maildrop and commit it. */
static void
queue_message(struct ctx *c)
{
	struct qfile_writer *w = NULL;
	struct buf extra = BUF_INIT, piece = BUF_INIT;
	const char *err = NULL;
	uint64_t bytes, inodes;
	size_t i;
	int result, start;

	/* As smtpd at MAIL: a spool short of space takes nothing, so the
	 * caller keeps the message and tries again. */
	if (fs_space(c->spool, &bytes, &inodes, &err) < 0)
		die(EX_TEMPFAIL, "cannot queue the message: %s", err);
	if (!qfile_room(bytes, inodes, c->reserve, 0, &err))
		die(EX_TEMPFAIL, "the mail queue is short of space (%s: %llu bytes "
		    "and %llu inodes free, queue_minfree is %llu bytes); try again later",
		    err, (unsigned long long)bytes, (unsigned long long)inodes,
		    (unsigned long long)c->reserve);
	if (qfile_begin(c->spool, &c->env, &w, &err) < 0)
		die(EX_TEMPFAIL, "cannot queue the message: %s%s", err,
		    c->root_mode && !c->privileged && getuid() != 0 ?
		    " (is sendmail installed set-group-id drop_group?)" : "");
	for (i = 0; i < c->nhdrs; i++) {
		if (!header_is(c, &c->hdrs[i], "bcc"))
			put(c, &w, c->head.data + c->hdrs[i].off, c->hdrs[i].len);
	}
	added_headers(c, &extra);
	put(c, &w, extra.data, extra.len);
	put(c, &w, "\n", 1);
	if (c->first.len > 0)
		put(c, &w, c->first.data, c->first.len);
	while (next_piece(c, &piece, &start))
		put(c, &w, piece.data, piece.len);
	qfile_commit(&w, 1, &result, &err);
	if (result < 0)
		die(EX_TEMPFAIL, "cannot queue the message: %s", err);
	buf_free(&extra);
	buf_free(&piece);
}

/* Tell qmgr the message is in maildrop/new.  In root mode the notice
 * socket admits smtpd's user and the drop group, which this set-group-id
 * program still has; the notice carries no authority, it only wakes a
 * pickup scan.  A failure is logged and otherwise ignored: the periodic
 * scan finds the mail. */
static void
notify_qmgr(struct ctx *c)
{
	const char *ids[1] = { c->env.id }, *error;
	char *path = fs_join(c->run_dir, QMGR_NOTIFY_SOCKET);

	if (qmgr_notify(path, ids, 1, &error) < 0)
		log_info("event=qmgr_notify_failed id=%s error=\"%s\" "
		    "action=left_for_scan", c->env.id, error);
	free(path);
}

int
main(int argc, char **argv)
{
	struct ctx c;
	const struct qrcpt *r;
	int i;

	memset(&c, 0, sizeof(c));
	sanitize_process(&c);
	log_init("sendmail", LOG_TARGET_STDERR, LOG_LEVEL_FATAL);
	i = parse_options(&c, argc, argv);
	load_config(&c);
	if (c.root_mode)
		log_init("postern/sendmail", LOG_TARGET_SYSLOG, LOG_LEVEL_INFO);
	else if (c.privileged)
		drop_group();		/* dev mode: write as the invoking user */
	if (c.o.list)
		return list_queue(&c, argc - i);
	load_identity(&c);
	if (!c.root_mode) {
		/* Root submitting to a dev-mode instance writes as the
		 * instance's owner (postern(8) runs the instance as that user). */
		const char *error;

		if (priv_become_owner_of(c.config_path, &error) < 0)
			die(EX_OSERR, "%s", error);
	}
	for (; i < argc; i++)
		add_address_list(&c, argv[i], strlen(argv[i]));
	if (c.env.nrcpts == 0 && !c.o.extract)
		die(EX_USAGE, "no recipients given (use -t to take them "
		    "from the To:, Cc: and Bcc: headers)");

	c.in.fd = 0;
	c.at_line_start = 1;
	read_headers(&c);
	if (c.o.extract)
		extract_recipients(&c);
	if (c.env.nrcpts == 0)
		die(EX_DATAERR, "no recipient addresses found in the message "
		    "headers");
	build_envelope(&c);
	queue_message(&c);
	/* The notice socket admits the drop group (services.c): notify
	 * while we still have it, then give it up. */
	notify_qmgr(&c);
	if (c.privileged)
		drop_group();

	r = &c.env.rcpts[0];
	log_info("event=queued id=%s uid=%u user=%s sender=%s rcpt=%s nrcpt=%zu",
	    c.env.id, (unsigned)getuid(), log_safe(c.login),
	    log_safe(c.env.sender), log_safe(r->addr), c.env.nrcpts);
	if (c.o.verbose)
		fprintf(stderr, "sendmail: queued as %s\n", c.env.id);
	envelope_free(&c.env);
	buf_free(&c.head);
	buf_free(&c.first);
	free(c.hdrs);
	free(c.login);
	free(c.gecos);
	free(c.hostname);
	free(c.spool);
	free(c.run_dir);
	free(c.pid_file);
	free(c.config_env);
	free(c.config_path);
	return EX_OK;
}
