/*
 * Unit tests for lib/core/config.c and the key tables in lib/mail/config_keys.c:
 * tables of {text, expected error or value} fed to config_parse() from
 * memory, the value parsers at their edges, config_load() on real files,
 * the accessors' panics, and that postern.conf(5) carries every doc string.
 */
#include "autoconf.h"

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "check_util.h"
#include "xalloc.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/usr/local/var/run"
#endif

/* ---------------------------------------------------------------- */
/* Helpers                                                            */

/* Parse text (len 0: strlen) as "t.conf"; returns config_parse()'s result
 * and leaves messages in err. */
static int
parse(const char *text, size_t len, struct config **cfg_r, struct buf *err)
{
	return config_parse("t.conf", text, len ? len : strlen(text), cfg_r,
	    err);
}

/* The declared key of this name in the service or global table. */
static const struct cfg_key *
find_key(int service, const char *name)
{
	const struct cfg_key *keys = service ? config_service_keys :
	    config_global_keys;
	size_t n = service ? config_service_nkeys : config_global_nkeys, i;

	for (i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	ck_abort_msg("no key %s", name);
	return NULL;
}

/* A value rendered as text whatever its type: lists joined with '|',
 * booleans 0/1, times in ms, sizes in bytes.  Caller frees. */
static char *
render(const struct cfg_section *sec, const char *name)
{
	const struct cfg_key *key = find_key(cfg_section_name(sec) != NULL,
	    name);
	const struct cfg_list *l;
	struct buf b = BUF_INIT;
	size_t i;

	switch (key->type) {
	case CFG_STR:
	case CFG_PATH:
	case CFG_ENUM:
		return xstrdup(cfg_str(sec, name));
	case CFG_INT:
		return xasprintf("%lld", cfg_int(sec, name));
	case CFG_BOOL:
		return xasprintf("%d", cfg_bool(sec, name));
	case CFG_TIME:
		return xasprintf("%" PRIu64, cfg_time_ms(sec, name));
	case CFG_SIZE:
		return xasprintf("%" PRIu64, cfg_size(sec, name));
	case CFG_LIST:
		l = cfg_list(sec, name);
		for (i = 0; i < l->n; i++)
			ck_assert_int_eq(buf_printf(&b, "%s%s", i ? "|" : "",
			    l->items[i]), 0);
		return buf_steal(&b);
	}
	ck_abort_msg("bad type");
	return NULL;
}

/* A string of n copies of c. */
static char *
repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---------------------------------------------------------------- */
/* Whole files: accepted, or refused with a given message             */

struct parse_case {
	const char *text;
	const char *want_err;	/* NULL: must load; else a substring of err */
};

static const struct parse_case parse_cases[] = {
	/* Accepted shapes. */
	{ "", NULL },
	{ "\n\n\n", NULL },
	{ "# only a comment\n", NULL },
	{ "# c\n\n   \n\t\n  # indented comment\nmode = dev\n", NULL },
	{ "mode = dev\r\nlog_level = debug\r\n", NULL },
	{ "mode=dev\nlog_level\t=\tdebug   \n", NULL },
	{ "hostname =\n", NULL },
	{ "mode = dev", NULL },			/* no final newline */
	{ "service smtpd {\n}\n", NULL },
	{ "service smtpd{\n}\n", NULL },
	{ "service a-b_c9 {\n\tprocesses = 2\n}\nservice imapd {\n"
	    "processes = 3\n}\n", NULL },
	{ "service x {\n  }\n", NULL },
	{ "service x {\n#\n}\n# after\n", NULL },

	/* Syntax. */
	{ "mode dev\n", "t.conf:1: missing '=' in 'mode dev'" },
	{ "\n\n= dev\n", "t.conf:3: empty key before '='" },
	{ "  = dev\n", "t.conf:1: continuation line at start of file" },
	{ "  mode = dev\n", "t.conf:1: continuation line at start of file" },
	{ "# c\n\n\tmode = dev\n", "t.conf:3: continuation line at start of file" },
	{ "service a {\n}\n  mode = dev\n",
	    "t.conf:3: continuation line with no setting to continue" },
	{ "}\n", "t.conf:1: '}' without a service block" },
	{ "mode = dev\n}\n", "t.conf:2: '}' without a service block" },
	{ "service a {\nprocesses = 2\n",
	    "t.conf:1: service block 'a' is not closed" },
	{ "mode = dev\nservice a {\n", "t.conf:2: service block 'a' is not closed" },
	{ "service a {\nservice b {\nprocesses = 2\n}\n}\n",
	    "t.conf:2: nested service block" },
	{ "service a {\n}\nservice a {\n}\n",
	    "t.conf:3: duplicate service 'a' (first defined at line 1)" },
	{ "service Smtpd {\n}\n", "t.conf:1: invalid service name 'Smtpd'" },
	{ "service a/b {\n}\n", "t.conf:1: invalid service name 'a/b'" },
	{ "service a.b {\n}\n", "t.conf:1: invalid service name 'a.b'" },
	{ "service abcdefghijabcdefghijabcdefghij12 {\n}\n", NULL },
	{ "service abcdefghijabcdefghijabcdefghij123 {\n}\n",
	    "t.conf:1: invalid service name" },
	{ "service {\n}\n", "t.conf:1: missing service name" },
	{ "service\n}\n", "t.conf:1: missing service name" },
	{ "service a\n}\n", "t.conf:1: expected '{' after 'service a'" },
	{ "service a { processes = 2\n}\n",
	    "t.conf:1: unexpected text after '{'" },
	{ "service = x\n", "t.conf:1: expected 'service NAME {'" },

	/* Keys. */
	{ "frobnicate = 1\n", "t.conf:1: unknown key 'frobnicate'\n" },
	{ "Mode = dev\n", "t.conf:1: unknown key 'Mode' (did you mean 'mode'?)" },
	{ "log_levle = info\n",
	    "t.conf:1: unknown key 'log_levle' (did you mean 'log_level'?)" },
	{ "service smtpd {\n    procesess = 2\n}\n",
	    "t.conf:2: unknown key 'procesess' (did you mean 'processes'?)" },
	{ "mode = dev\nmode = root\n",
	    "t.conf:2: duplicate key 'mode' (first set at line 1)" },
	{ "service a {\nprocesses = 1\n\n processes = 2\n}\n",
	    "t.conf:2: bad value '1 processes = 2' for 'processes': not a "
	    "number" },
	{ "service a {\n  processes = 1\n  processes = 2\n}\n",
	    "t.conf:3: duplicate key 'processes' (first set at line 2)" },
	{ "service a {\nprocesses = 1\n}\nservice b {\nprocesses = 1\n}\n", NULL },
	{ "processes = 2\n",
	    "t.conf:1: 'processes' can only be set in a service block" },
	{ "service a {\nmode = dev\n}\n",
	    "t.conf:2: 'mode' is a global setting: it cannot be set in a "
	    "service block" },
	{ "x\x01y = 1\n", "t.conf:1: unknown key 'x\\x01y'" },

	/* INT bounds (processes 1..256, max_sessions 0..10000000). */
	{ "service a {\nprocesses = 1\n}\n", NULL },
	{ "service a {\nprocesses = 256\n}\n", NULL },
	{ "service a {\nprocesses = 0\n}\n",
	    "t.conf:2: bad value '0' for 'processes': out of range (1 to 256)" },
	{ "service a {\nprocesses = 257\n}\n",
	    "t.conf:2: bad value '257' for 'processes': out of range (1 to 256)" },
	{ "service a {\nprocesses = -1\n}\n",
	    "t.conf:2: bad value '-1' for 'processes': out of range" },
	{ "service a {\nprocesses = 99999999999999999999\n}\n",
	    "t.conf:2: bad value '99999999999999999999' for 'processes': "
	    "number too large" },
	{ "service a {\nprocesses = 9223372036854775808\n}\n",
	    "number too large" },
	{ "service a {\nprocesses = 9223372036854775807\n}\n",
	    "out of range (1 to 256)" },
	{ "service a {\nprocesses = -9223372036854775808\n}\n",
	    "out of range (1 to 256)" },
	{ "service a {\nprocesses = -9223372036854775809\n}\n",
	    "number too large" },
	{ "service a {\nprocesses = abc\n}\n",
	    "t.conf:2: bad value 'abc' for 'processes': not a number" },
	{ "service a {\nprocesses = 4x\n}\n", "not a number" },
	{ "service a {\nprocesses = 1 2\n}\n", "not a number" },
	{ "service a {\nprocesses =\n}\n",
	    "t.conf:2: bad value '' for 'processes': not a number" },
	{ "service a {\nprocesses = -\n}\n", "not a number" },
	{ "service a {\nprocesses = +4\n}\n", NULL },
	{ "service a {\nmax_sessions = 0\n}\n", NULL },
	{ "service a {\nmax_sessions = 10000000\n}\n", NULL },
	{ "service a {\nmax_sessions = 10000001\n}\n",
	    "out of range (0 to 10000000)" },
	{ "service a {\nmax_sessions = -1\n}\n", "out of range (0 to 10000000)" },

	/* TIME bounds (restart_delay_max 1s..1h, stop_timeout 1s..10m). */
	{ "restart_delay_max = 1s\n", NULL },
	{ "restart_delay_max = 1000ms\n", NULL },
	{ "restart_delay_max = 1h\n", NULL },
	{ "restart_delay_max = 3600\n", NULL },
	{ "restart_delay_max = 60m\n", NULL },
	{ "restart_delay_max = 3600001ms\n",
	    "t.conf:1: bad value '3600001ms' for 'restart_delay_max': out of "
	    "range (1s to 1h)" },
	{ "restart_delay_max = 999ms\n", "out of range (1s to 1h)" },
	{ "restart_delay_max = 500ms\n", "out of range (1s to 1h)" },
	{ "restart_delay_max = 0\n", "out of range (1s to 1h)" },
	{ "restart_delay_max = 2d\n", "out of range (1s to 1h)" },
	{ "restart_delay_max = 1w\n", "out of range (1s to 1h)" },
	{ "stop_timeout = 10m\n", NULL },
	{ "stop_timeout = 601s\n", "out of range (1s to 10m)" },
	{ "stop_timeout = 5x\n",
	    "t.conf:1: bad value '5x' for 'stop_timeout': bad unit" },
	{ "stop_timeout = 5 s\n", "bad unit" },
	{ "stop_timeout = -5s\n", "not a number" },
	{ "stop_timeout = 99999999999999999999\n", "number too large" },
	{ "stop_timeout = 18446744073709551615s\n", "number too large" },

	/* BOOL, ENUM, PATH. */
	{ "service a {\nenable = no\n}\n", NULL },
	{ "service a {\nenable = maybe\n}\n",
	    "t.conf:2: bad value 'maybe' for 'enable': not a boolean" },
	{ "service a {\nenable =\n}\n", "not a boolean" },
	{ "mode = user\n",
	    "t.conf:1: bad value 'user' for 'mode': not one of: dev, root" },
	{ "mode = Dev\n", "not one of: dev, root" },
	{ "mode = dev root\n", "not one of: dev, root" },
	{ "mode =\n", "bad value '' for 'mode'" },
	{ "log_level = trace\n", "not one of: debug, info, warn, error" },
	{ "run_dir = run\n",
	    "t.conf:1: bad value 'run' for 'run_dir': relative path" },
	{ "run_dir = ./run\n", "relative path" },
	{ "tls_cert_file =\n", NULL },
	{ "service a {\nchroot = var/empty\n}\n", "t.conf:2: bad value "
	    "'var/empty' for 'chroot': relative path" },

	/* Expansion. */
	{ "hostname = $nope\n",
	    "t.conf:1: 'hostname': unknown reference '$nope'" },
	{ "hostname = ${nope}\n", "unknown reference '$nope'" },
	{ "hostname = ${}\n", "unknown reference '$'" },
	{ "hostname = $processes\n", "unknown reference '$processes'" },
	{ "service a {\nargs = -x $processes\n}\n",
	    "t.conf:2: 'args': unknown reference '$processes'" },
	{ "hostname = a $ b\n", "t.conf:1: 'hostname': '$' must be followed" },
	{ "hostname = a$\n", "'$' must be followed" },
	{ "hostname = ${run_dir\n", "t.conf:1: 'hostname': '${' without '}'" },
	{ "hostname = x$hostname\n",
	    "t.conf:1: reference loop: $hostname -> $hostname" },
	{ "hostname = $drop_group\ndrop_group = $hostname\n",
	    "t.conf:2: reference loop: $hostname -> $drop_group -> $hostname" },
	{ "\nrun_dir = $pid_file\n",
	    "t.conf:2: reference loop: $run_dir -> $pid_file -> $run_dir" },
	{ "mode = $hostname\nhostname = dev\n", NULL },
	{ "mode = $hostname\nhostname = user\n",
	    "t.conf:1: bad value 'user' for 'mode'" },
	{ "run_dir = $hostname\nhostname = rel\n",
	    "t.conf:1: bad value 'rel' for 'run_dir': relative path" },
	{ "run_dir = $hostname\nhostname = rel\n",
	    "t.conf: bad value 'rel/master.pid' for 'pid_file': relative path" },

	/* listen (check hook, per item). */
	{ "service a {\nlisten = 127.0.0.1:25\n}\n", NULL },
	{ "service a {\nlisten = [::1]:143/imap\n}\n", NULL },
	{ "service a {\nlisten = *:587/submission\n}\n", NULL },
	{ "service a {\nlisten = localhost:10025, 0.0.0.0:65535/a_b-9\n}\n",
	    NULL },
	{ "service a {\nlisten = 127.0.0.1:25,[::]:25 ,*:465/smtps,,\n}\n",
	    NULL },
	{ "service a {\nlisten = 127.0.0.1\n}\n",
	    "t.conf:2: bad value '127.0.0.1' for 'listen': missing ':PORT'" },
	{ "service a {\nlisten = 1.2.3.4:0\n}\n",
	    "bad value '1.2.3.4:0' for 'listen': the port must be a number "
	    "from 1 to 65535" },
	{ "service a {\nlisten = 1.2.3.4:65536\n}\n",
	    "bad value '1.2.3.4:65536' for 'listen': the port must be" },
	{ "service a {\nlisten = 1.2.3.4:\n}\n", "the port must be" },
	{ "service a {\nlisten = 1.2.3.4:smtp\n}\n", "the port must be" },
	{ "service a {\nlisten = 1.2.3.4:000025\n}\n", "the port must be" },
	{ "service a {\nlisten = [::1:25\n}\n",
	    "bad value '[::1:25' for 'listen': missing ']'" },
	{ "service a {\nlisten = [::1]\n}\n", "missing ':PORT'" },
	{ "service a {\nlisten = [1.2.3.4]:25\n}\n", "not an IPv6 address" },
	{ "service a {\nlisten = ::1:25\n}\n", "must be written in brackets" },
	{ "service a {\nlisten = 300.1.1.1:25\n}\n",
	    "bad value '300.1.1.1:25' for 'listen': the host must be" },
	{ "service a {\nlisten = :25\n}\n", "the host must be" },
	{ "service a {\nlisten = example.org:25\n}\n", "the host must be" },
	{ "service a {\nlisten = host:25/BAD TAG\n}\n",
	    "bad value 'host:25/BAD' for 'listen': the host must be" },
	{ "service a {\nlisten = 127.0.0.1:25/BAD\n}\n",
	    "bad value '127.0.0.1:25/BAD' for 'listen': the tag" },
	{ "service a {\nlisten = 127.0.0.1:25/\n}\n", "the tag" },
	{ "service a {\nlisten = 127.0.0.1:25/a/b\n}\n", "the tag" },
	{ "service a {\nlisten = 127.0.0.1:25/abcdefghijabcdefghijabcdefghij12\n"
	    "}\n", NULL },
	{ "service a {\nlisten = 127.0.0.1:25/abcdefghijabcdefghijabcdefghij123\n"
	    "}\n", "the tag" },
	{ "service a {\nlisten = 127.0.0.1:25\n    1.2.3.4:0\n}\n",
	    "t.conf:2: bad value '1.2.3.4:0' for 'listen'" },

	/* unix_listen (check hook). */
	{ "service a {\nunix_listen = qmgr, auth.sock, x_y-z\n}\n", NULL },
	{ "service a {\nunix_listen = a/b\n}\n",
	    "t.conf:2: bad value 'a/b' for 'unix_listen': a socket name" },
	{ "service a {\nunix_listen = ..\n}\n", "cannot be '.' or '..'" },
	{ "service a {\nunix_listen = Qmgr\n}\n", "a socket name" },

	/* Several errors in one file are all reported. */
	{ "frob = 1\nmode = x\n}\n", "t.conf:1: unknown key 'frob'\n"
	    "t.conf:2: bad value 'x' for 'mode': not one of: dev, root\n"
	    "t.conf:3: '}' without a service block\n" },
	{ "run_dir = $hostname\nhostname = rel\n",
	    "t.conf:1: bad value 'rel' for 'run_dir': relative path (it must "
	    "start with '/')\nt.conf: bad value 'rel/master.pid' for "
	    "'pid_file'" },
};

/* One parse_cases[] entry. */
START_TEST(test_parse_case)
{
	const struct parse_case *c = &parse_cases[_i];
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;
	int r;

	r = parse(c->text, 0, &cfg, &err);
	if (c->want_err == NULL) {
		ck_assert_msg(r == 1, "case %d: want success, got:\n%s", _i,
		    buf_cstr(&err));
		ck_assert_ptr_nonnull(cfg);
		ck_assert_uint_eq(err.len, 0);
		config_free(&cfg);
		ck_assert_ptr_null(cfg);
	} else {
		ck_assert_msg(r == -1, "case %d: want failure with '%s'", _i,
		    c->want_err);
		ck_assert_ptr_null(cfg);
		ck_assert_msg(strstr(buf_cstr(&err), c->want_err) != NULL,
		    "case %d: want '%s' in:\n%s", _i, c->want_err,
		    buf_cstr(&err));
		ck_assert_msg(err.len > 0 && err.data[err.len - 1] == '\n',
		    "case %d: message not newline-terminated", _i);
	}
	buf_free(&err);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Values after loading                                               */

struct value_case {
	const char *text;
	const char *service;	/* NULL: the global section */
	const char *key;
	const char *want;	/* as render() prints it */
};

static const struct value_case value_cases[] = {
	/* Defaults, including one that refers to another key. */
	{ "", NULL, "mode", "root" },
	{ "", NULL, "hostname", "" },
	{ "", NULL, "log_target", "syslog" },
	{ "", NULL, "log_level", "info" },
	{ "", NULL, "pid_file", RUNSTATEDIR "/postern/master.pid" },
	{ "", NULL, "restart_delay_max", "60000" },
	{ "", NULL, "stop_timeout", "10000" },
	{ "", NULL, "drop_group", "postern-drop" },
	{ "run_dir = /r\n", NULL, "pid_file", "/r/master.pid" },
	{ "pid_file = /p.pid\n", NULL, "pid_file", "/p.pid" },

	/* Whitespace, comments, continuation, CRLF. */
	{ "mode=dev\n", NULL, "mode", "dev" },
	{ "mode \t=\t dev \t\n", NULL, "mode", "dev" },
	{ "hostname =\n", NULL, "hostname", "" },
	{ "hostname = a  b\n", NULL, "hostname", "a  b" },
	{ "hostname = x # not a comment\n", NULL, "hostname",
	    "x # not a comment" },
	{ "hostname = a\n  b\n\tc  \n", NULL, "hostname", "a b c" },
	{ "hostname =\n   a\n", NULL, "hostname", "a" },
	{ "hostname = a\n# comment\n\n  b\n", NULL, "hostname", "a b" },
	{ "hostname = a\r\n b\r\nmode = dev\r\n", NULL, "hostname", "a b" },
	{ "hostname = a\r\n b\r\nmode = dev\r\n", NULL, "mode", "dev" },
	{ "hostname = a=b\n", NULL, "hostname", "a=b" },

	/* Expansion. */
	{ "hostname = $drop_group\n", NULL, "hostname", "postern-drop" },
	{ "run_dir = /r\nhostname = ${run_dir}x $run_dir/y $$z $$$run_dir\n",
	    NULL, "hostname", "/rx /r/y $z $/r" },
	{ "hostname = $$\n", NULL, "hostname", "$" },
	{ "hostname = $$hostname\n", NULL, "hostname", "$hostname" },
	{ "hostname = $drop_group-$drop_group\ndrop_group = g\n", NULL,
	    "hostname", "g-g" },
	{ "spool_dir = $config_dir/spool\nconfig_dir = /c\n", NULL, "spool_dir",
	    "/c/spool" },
	{ "mode = $hostname\nhostname = dev\n", NULL, "mode", "dev" },

	/* Types. */
	{ "stop_timeout = 1500ms\n", NULL, "stop_timeout", "1500" },
	{ "stop_timeout = 5m\n", NULL, "stop_timeout", "300000" },
	{ "stop_timeout = 30\n", NULL, "stop_timeout", "30000" },
	{ "restart_delay_max = 1h\n", NULL, "restart_delay_max", "3600000" },
	{ "log_target = stderr\n", NULL, "log_target", "stderr" },

	/* Service blocks. */
	{ "service smtpd {\n}\n", "smtpd", "processes", "1" },
	{ "service smtpd {\n}\n", "smtpd", "enable", "1" },
	{ "service smtpd {\n}\n", "smtpd", "max_sessions", "0" },
	{ "service smtpd {\n}\n", "smtpd", "listen", "" },
	{ "service smtpd {\n}\n", "smtpd", "program", "" },
	{ "service smtpd {\nenable = no\n}\n", "smtpd", "enable", "0" },
	{ "service smtpd {\nenable = TRUE\n}\n", "smtpd", "enable", "1" },
	{ "service smtpd {\nenable = off\n}\n", "smtpd", "enable", "0" },
	{ "service smtpd {\n    listen = 127.0.0.1:25, [::1]:25\n"
	    "        *:587/submission\n    processes = 4\n}\n", "smtpd",
	    "listen", "127.0.0.1:25|[::1]:25|*:587/submission" },
	{ "service smtpd {\n    listen = 127.0.0.1:25, [::1]:25\n"
	    "        *:587/submission\n    processes = 4\n}\n", "smtpd",
	    "processes", "4" },
	/* Indentation: a tab is 8 columns; deeper than the key continues it. */
	{ "service smtpd {\n\tlisten = *:25\n        processes = 4\n}\n",
	    "smtpd", "processes", "4" },
	{ "service smtpd {\n    args = -v\n\tprocesses = 4\n}\n", "smtpd",
	    "args", "-v processes = 4" },
	{ "service x {\nargs = a\n}\nservice y {\nargs = b\n}\n", "x", "args",
	    "a" },
	{ "service x {\nargs = a\n}\nservice y {\nargs = b\n}\n", "y", "args",
	    "b" },
	{ "service x {\nunix_listen = ,a,,b c,\n}\n", "x", "unix_listen",
	    "a|b|c" },
	{ "daemon_dir = /d\nservice x {\nprogram = $daemon_dir/x\n}\n", "x",
	    "program", "/d/x" },
	{ "service x {\nargs = -c ${config_dir}/x.conf\n}\nconfig_dir = /etc/p\n",
	    "x", "args", "-c /etc/p/x.conf" },
	{ "service x {\nmax_sessions = 10000000\n}\n", "x", "max_sessions",
	    "10000000" },
};

/* One value_cases[] entry. */
START_TEST(test_value_case)
{
	const struct value_case *c = &value_cases[_i];
	const struct cfg_section *sec;
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;
	char *got;

	ck_assert_msg(parse(c->text, 0, &cfg, &err) == 1, "case %d:\n%s", _i,
	    buf_cstr(&err));
	if (c->service != NULL) {
		sec = config_service_find(cfg, c->service);
		ck_assert_ptr_nonnull(sec);
		ck_assert_str_eq(cfg_section_name(sec), c->service);
	} else {
		sec = config_global(cfg);
		ck_assert_ptr_null(cfg_section_name(sec));
	}
	got = render(sec, c->key);
	ck_assert_msg(strcmp(got, c->want) == 0, "case %d: %s = '%s', want "
	    "'%s'", _i, c->key, got, c->want);
	free(got);
	config_free(&cfg);
	buf_free(&err);
}
END_TEST

/* Service order, lookup, cfg_is_set and config_path. */
START_TEST(test_services)
{
	static const char text[] =
	    "mode = dev\n"
	    "service smtpd {\n"
	    "    processes = 2\n"
	    "}\n"
	    "service qmgr {\n"
	    "}\n";
	const struct cfg_section *g, *s;
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;

	ck_assert_int_eq(parse(text, 0, &cfg, &err), 1);
	ck_assert_str_eq(config_path(cfg), "t.conf");
	ck_assert_uint_eq(config_nservices(cfg), 2);
	ck_assert_str_eq(cfg_section_name(config_service(cfg, 0)), "smtpd");
	ck_assert_str_eq(cfg_section_name(config_service(cfg, 1)), "qmgr");
	ck_assert_ptr_null(config_service_find(cfg, "imapd"));
	g = config_global(cfg);
	ck_assert_int_eq(cfg_is_set(g, "mode"), 1);
	ck_assert_int_eq(cfg_is_set(g, "log_level"), 0);
	s = config_service_find(cfg, "smtpd");
	ck_assert_int_eq(cfg_is_set(s, "processes"), 1);
	ck_assert_int_eq(cfg_is_set(s, "enable"), 0);
	ck_assert_int_eq(cfg_int(s, "processes"), 2);
	ck_assert_int_eq(cfg_int(config_service_find(cfg, "qmgr"),
	    "processes"), 1);
	config_free(&cfg);
	config_free(&cfg);	/* a second free is harmless */
	buf_free(&err);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Limits and hostile bytes                                           */

/* A line of exactly 4096 bytes loads; 4097 does not, nor with CR LF
 * counted against the 4096. */
START_TEST(test_line_length)
{
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;
	char *pad = repeat('x', 4096 - strlen("hostname = "));
	char *text;

	text = xasprintf("hostname = %s\n", pad);
	ck_assert_msg(parse(text, 0, &cfg, &err) == 1, "%s", buf_cstr(&err));
	ck_assert_uint_eq(strlen(cfg_str(config_global(cfg), "hostname")),
	    strlen(pad));
	config_free(&cfg);
	free(text);

	text = xasprintf("hostname = %s\r\n", pad);
	ck_assert_msg(parse(text, 0, &cfg, &err) == 1, "%s", buf_cstr(&err));
	config_free(&cfg);
	free(text);

	text = xasprintf("hostname = %sy", pad);	/* 4097, no newline */
	ck_assert_int_eq(parse(text, 0, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "t.conf:1: line longer than 4096 bytes"));
	free(text);

	/* The error does not swallow the rest of the file. */
	buf_reset(&err);
	text = xasprintf("mode = dev\nhostname = %sy\n  more\nfrob = 1\n", pad);
	ck_assert_int_eq(parse(text, 0, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "t.conf:2: line longer than 4096 bytes"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "t.conf:4: unknown key 'frob'"));
	free(text);
	free(pad);
	buf_free(&err);
}
END_TEST

/* Continuation lines are joined up to 64 KiB per value. */
START_TEST(test_value_length)
{
	struct config *cfg = NULL;
	struct buf text = BUF_INIT, err = BUF_INIT;
	char *pad = repeat('x', 4000);
	size_t i;

	ck_assert_int_eq(buf_puts(&text, "hostname = x\n"), 0);
	for (i = 0; i < 17; i++)
		ck_assert_int_eq(buf_printf(&text, "  %s\n", pad), 0);
	ck_assert_int_eq(parse(buf_cstr(&text), text.len, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "t.conf:1: the value is longer than 65536 bytes"));
	buf_free(&text);
	buf_free(&err);

	/* Expansion is capped too: 4 x 20000 bytes. */
	free(pad);
	pad = repeat('y', 20000);
	ck_assert_int_eq(buf_printf(&text, "drop_group = %.4000s\n", pad), 0);
	for (i = 1; i < 5; i++)
		ck_assert_int_eq(buf_printf(&text, "  %.4000s\n", pad), 0);
	ck_assert_int_eq(buf_puts(&text,
	    "hostname = $drop_group$drop_group$drop_group$drop_group\n"), 0);
	ck_assert_int_eq(parse(buf_cstr(&text), text.len, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "t.conf:6: 'hostname': "
	    "the value is longer than 65536 bytes after expansion"));
	free(pad);
	buf_free(&text);
	buf_free(&err);
}
END_TEST

/* A NUL byte is an error on its line, not the end of the file. */
START_TEST(test_nul_byte)
{
	static const char text[] = "mode = dev\nhost\0name = x\nfrob = 1\n";
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;

	ck_assert_int_eq(parse(text, sizeof(text) - 1, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "t.conf:2: NUL byte in line"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "t.conf:3: unknown key 'frob'"));
	buf_free(&err);

	ck_assert_int_eq(parse("\0", 1, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "t.conf:1: NUL byte"));
	buf_free(&err);
}
END_TEST

/* Reporting stops after 20 errors, with a closing line. */
START_TEST(test_error_cap)
{
	struct config *cfg = NULL;
	struct buf text = BUF_INIT, err = BUF_INIT;
	const char *s;
	size_t i, lines = 0;

	for (i = 0; i < 30; i++)
		ck_assert_int_eq(buf_printf(&text, "frob%zu = 1\n", i), 0);
	ck_assert_int_eq(parse(buf_cstr(&text), text.len, &cfg, &err), -1);
	for (s = buf_cstr(&err); *s != '\0'; s++)
		lines += *s == '\n';
	ck_assert_uint_eq(lines, 21);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "t.conf:20: unknown key"));
	ck_assert_ptr_null(strstr(buf_cstr(&err), "t.conf:21:"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "t.conf: too many errors, stopping\n"));
	buf_free(&text);
	buf_free(&err);
}
END_TEST

/* Messages go after what err already holds, and respect its ceiling. */
START_TEST(test_err_buffer)
{
	struct config *cfg = NULL;
	struct buf err;

	buf_init(&err, 0);
	ck_assert_int_eq(buf_puts(&err, "earlier"), 0);
	ck_assert_int_eq(parse("frob = 1\n", 0, &cfg, &err), -1);
	ck_assert_str_eq(buf_cstr(&err),
	    "earlier\nt.conf:1: unknown key 'frob'\n");
	buf_free(&err);

	buf_init(&err, 10);
	ck_assert_int_eq(parse("frob = 1\n", 0, &cfg, &err), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_le(err.len, 10);
	buf_free(&err);
}
END_TEST

/* Text from the file is escaped in messages. */
START_TEST(test_escaping)
{
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;

	ck_assert_int_eq(parse("mode = \x1b[31mred\n", 0, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err),
	    "bad value '\\x1b[31mred' for 'mode'"));
	ck_assert_ptr_null(strchr(buf_cstr(&err), '\x1b'));
	buf_free(&err);
}
END_TEST

/* ---------------------------------------------------------------- */
/* The shared value parsers                                           */

enum parser_kind { P_TIME, P_SIZE, P_BOOL };

struct number_case {
	enum parser_kind kind;
	const char *text;
	int ok;
	uint64_t want;
};

static const struct number_case number_cases[] = {
	{ P_TIME, "500ms", 1, 500 },
	{ P_TIME, "5s", 1, 5000 },
	{ P_TIME, "5", 1, 5000 },
	{ P_TIME, "0", 1, 0 },
	{ P_TIME, "5m", 1, 300000 },
	{ P_TIME, "5h", 1, 18000000 },
	{ P_TIME, "2d", 1, 172800000 },
	{ P_TIME, "1w", 1, 604800000 },
	{ P_TIME, "18446744073709551615ms", 1, UINT64_MAX },
	{ P_TIME, "18446744073709551616ms", 0, 0 },
	{ P_TIME, "99999999999999999999", 0, 0 },
	{ P_TIME, "18446744073709551615s", 0, 0 },
	{ P_TIME, "30500w", 1, 30500ULL * 604800000 },
	{ P_TIME, "5x", 0, 0 },
	{ P_TIME, "5S", 0, 0 },
	{ P_TIME, "5sec", 0, 0 },
	{ P_TIME, "-5s", 0, 0 },
	{ P_TIME, "+5s", 0, 0 },
	{ P_TIME, "", 0, 0 },
	{ P_TIME, "s", 0, 0 },
	{ P_TIME, " 5s", 0, 0 },
	{ P_TIME, "1.5h", 0, 0 },
	{ P_SIZE, "100", 1, 100 },
	{ P_SIZE, "0", 1, 0 },
	{ P_SIZE, "10k", 1, 10240 },
	{ P_SIZE, "10K", 1, 10240 },
	{ P_SIZE, "10m", 1, 10485760 },
	{ P_SIZE, "10M", 1, 10485760 },
	{ P_SIZE, "1g", 1, 1073741824 },
	{ P_SIZE, "1G", 1, 1073741824 },
	{ P_SIZE, "18446744073709551615", 1, UINT64_MAX },
	{ P_SIZE, "18446744073709551616", 0, 0 },
	{ P_SIZE, "17179869183g", 1, 17179869183ULL * 1073741824 },
	{ P_SIZE, "17179869184g", 0, 0 },
	{ P_SIZE, "1t", 0, 0 },
	{ P_SIZE, "1kb", 0, 0 },
	{ P_SIZE, "-1", 0, 0 },
	{ P_SIZE, "", 0, 0 },
	{ P_BOOL, "yes", 1, 1 },
	{ P_BOOL, "no", 1, 0 },
	{ P_BOOL, "true", 1, 1 },
	{ P_BOOL, "false", 1, 0 },
	{ P_BOOL, "on", 1, 1 },
	{ P_BOOL, "off", 1, 0 },
	{ P_BOOL, "1", 1, 1 },
	{ P_BOOL, "0", 1, 0 },
	{ P_BOOL, "YES", 1, 1 },
	{ P_BOOL, "Off", 1, 0 },
	{ P_BOOL, "maybe", 0, 0 },
	{ P_BOOL, "", 0, 0 },
	{ P_BOOL, "yes ", 0, 0 },
	{ P_BOOL, "2", 0, 0 },
};

/* One number_cases[] entry; a failure leaves the out-param untouched. */
START_TEST(test_number_case)
{
	const struct number_case *c = &number_cases[_i];
	const char *error = NULL;
	uint64_t u = 12345;
	int b = 7, r = 0;

	switch (c->kind) {
	case P_TIME:
		r = cfg_parse_time_ms(c->text, &u, &error);
		break;
	case P_SIZE:
		r = cfg_parse_size(c->text, &u, &error);
		break;
	case P_BOOL:
		r = cfg_parse_bool(c->text, &b, &error);
		u = (uint64_t)b;
		break;
	}
	if (c->ok) {
		ck_assert_msg(r == 0, "case %d '%s': %s", _i, c->text, error);
		ck_assert_msg(u == c->want, "case %d '%s': got %" PRIu64, _i,
		    c->text, u);
	} else {
		ck_assert_msg(r == -1, "case %d '%s' accepted", _i, c->text);
		ck_assert_ptr_nonnull(error);
		ck_assert_msg(u == 12345 || (c->kind == P_BOOL && b == 7),
		    "case %d: out-param changed", _i);
	}
}
END_TEST

/* ---------------------------------------------------------------- */
/* Files                                                              */

/* A fresh directory for this test's files. */
static char *
make_tmpdir(void)
{
	char *dir = xstrdup("/tmp/test_config.XXXXXX");

	ck_assert_ptr_nonnull(mkdtemp(dir));
	return dir;
}

/* Write n bytes to path. */
static void
write_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_load)
{
	static const char text[] = "mode = dev\nservice smtpd {\n"
	    "listen = 127.0.0.1:2525\n}\n";
	char *dir = make_tmpdir(), *path, *big;
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;
	int fd;

	/* A good file. */
	path = xasprintf("%s/postern.conf", dir);
	write_file(path, text, strlen(text));
	ck_assert_msg(config_load(path, &cfg, &err) == 1, "%s", buf_cstr(&err));
	ck_assert_str_eq(config_path(cfg), path);
	ck_assert_str_eq(cfg_str(config_global(cfg), "mode"), "dev");
	ck_assert_uint_eq(cfg_list(config_service_find(cfg, "smtpd"),
	    "listen")->n, 1);
	config_free(&cfg);

	/* Errors name the file. */
	write_file(path, "mode = dev\nfrob = 1\n", 20);
	ck_assert_int_eq(config_load(path, &cfg, &err), -1);
	big = xasprintf("%s:2: unknown key 'frob'\n", path);
	ck_assert_str_eq(buf_cstr(&err), big);
	free(big);
	buf_reset(&err);
	ck_assert_int_eq(unlink(path), 0);

	/* Missing file. */
	ck_assert_int_eq(config_load(path, &cfg, &err), -1);
	ck_assert_ptr_null(cfg);
	big = xasprintf("%s: cannot open: No such file or directory", path);
	ck_assert_msg(strstr(buf_cstr(&err), big) != NULL, "%s",
	    buf_cstr(&err));
	free(big);
	buf_reset(&err);

	/* A directory. */
	ck_assert_int_eq(config_load(dir, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "not a regular file"));
	buf_reset(&err);

	/* Exactly 1 MiB of comment loads; one byte more does not. */
	big = repeat('#', 1024 * 1024);
	big[1024 * 1024 - 1] = '\n';
	for (fd = 4000; fd < 1024 * 1024; fd += 4000)
		big[fd] = '\n';
	write_file(path, big, 1024 * 1024);
	ck_assert_msg(config_load(path, &cfg, &err) == 1, "%s", buf_cstr(&err));
	config_free(&cfg);
	write_file(path, big, 1024 * 1024);
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\n", 1), 1);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(config_load(path, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "larger than 1048576"));
	buf_reset(&err);
	ck_assert_int_eq(parse(big, 1024 * 1024 + 1, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "larger than 1048576"));
	free(big);

	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	free(path);
	free(dir);
	buf_free(&err);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Accessor misuse panics (run only in fork mode)                      */

/* Parse the empty file for a panic test. */
static struct config *
empty_config(void)
{
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;

	ck_assert_int_eq(parse("service s {\n}\n", 0, &cfg, &err), 1);
	buf_free(&err);
	return cfg;
}

START_TEST(test_panic_undeclared)
{
	struct config *cfg = empty_config();

	(void)cfg_str(config_global(cfg), "no_such_key");
}
END_TEST

START_TEST(test_panic_service_key_in_global)
{
	struct config *cfg = empty_config();

	(void)cfg_int(config_global(cfg), "processes");
}
END_TEST

START_TEST(test_panic_type)
{
	struct config *cfg = empty_config();

	(void)cfg_int(config_global(cfg), "mode");
}
END_TEST

START_TEST(test_panic_list_as_str)
{
	struct config *cfg = empty_config();

	(void)cfg_str(config_service(cfg, 0), "listen");
}
END_TEST

/* ---------------------------------------------------------------- */
/* The man page and the tables agree                                   */

/* Collapse every run of whitespace to one space. */
static char *
squeeze(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;
	int space = 0;

	for (; *s != '\0'; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\n') {
			space = 1;
			continue;
		}
		if (space && o != out)
			*o++ = ' ';
		space = 0;
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* Every key's doc string appears in postern.conf(5), word for word. */
START_TEST(test_man_page)
{
	const char *srcdir = getenv("srcdir");
	struct buf text = BUF_INIT;
	char *path, *page, *doc, chunk[4096];
	size_t i, n;
	FILE *f;

	if (srcdir == NULL)
		return;		/* run by hand, not by make check */
	path = xasprintf("%s/man/postern.conf.5", srcdir);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ck_assert_int_eq(buf_append(&text, chunk, n), 0);
	fclose(f);
	page = squeeze(buf_cstr(&text));
	for (i = 0; i < config_global_nkeys + config_service_nkeys; i++) {
		const struct cfg_key *k = i < config_global_nkeys ?
		    &config_global_keys[i] :
		    &config_service_keys[i - config_global_nkeys];

		doc = squeeze(k->doc);
		ck_assert_msg(strstr(page, doc) != NULL,
		    "%s: doc of '%s' not in the man page", path, k->name);
		free(doc);
	}
	free(page);
	free(path);
	buf_free(&text);
}
END_TEST

/* Every declared default is valid by itself, and keys are unique. */
START_TEST(test_tables)
{
	size_t i, j;

	for (i = 0; i < config_global_nkeys; i++) {
		ck_assert_ptr_nonnull(config_global_keys[i].doc);
		for (j = 0; j < config_service_nkeys; j++)
			ck_assert_str_ne(config_global_keys[i].name,
			    config_service_keys[j].name);
		for (j = i + 1; j < config_global_nkeys; j++)
			ck_assert_str_ne(config_global_keys[i].name,
			    config_global_keys[j].name);
	}
	for (i = 0; i < config_service_nkeys; i++) {
		ck_assert_ptr_nonnull(config_service_keys[i].doc);
		for (j = i + 1; j < config_service_nkeys; j++)
			ck_assert_str_ne(config_service_keys[i].name,
			    config_service_keys[j].name);
	}
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	const char *fork_mode = getenv("CK_FORK");

	tcase_add_loop_test(tc, test_parse_case, 0,
	    (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
	tcase_add_loop_test(tc, test_value_case, 0,
	    (int)(sizeof(value_cases) / sizeof(value_cases[0])));
	tcase_add_loop_test(tc, test_number_case, 0,
	    (int)(sizeof(number_cases) / sizeof(number_cases[0])));
	tcase_add_test(tc, test_services);
	tcase_add_test(tc, test_line_length);
	tcase_add_test(tc, test_value_length);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_error_cap);
	tcase_add_test(tc, test_err_buffer);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_tables);
	tcase_add_test(tc, test_man_page);
	if (fork_mode == NULL || strcmp(fork_mode, "no") != 0) {
		tcase_add_test_raise_signal(tc, test_panic_undeclared, SIGABRT);
		tcase_add_test_raise_signal(tc,
		    test_panic_service_key_in_global, SIGABRT);
		tcase_add_test_raise_signal(tc, test_panic_type, SIGABRT);
		tcase_add_test_raise_signal(tc, test_panic_list_as_str,
		    SIGABRT);
	}
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(config_suite());
}
