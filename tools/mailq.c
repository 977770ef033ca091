/*
 * mailq(1): list the mail queue, as `postern queue` and `sendmail -bp`
 * do.  It asks qmgr over its control socket (tools/qctl), which only root
 * (or, in dev mode, the instance's own user) may use.  It needs no
 * privilege of its own and is not installed set-id, so it may honour -C
 * and POSTERN_CONFIG for anyone.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "qctl.h"

#define DEFAULT_CONFIG	SYSCONFDIR "/postern/postern.conf"

int
main(int argc, char **argv)
{
	const char *path = getenv("POSTERN_CONFIG");
	const struct cfg_section *g;
	struct buf err = BUF_INIT;
	struct qctl_where w;
	struct config *cfg;
	int ch, status;

	log_init("mailq", LOG_TARGET_STDERR, LOG_LEVEL_FATAL);
	if (path == NULL || path[0] == '\0')
		path = DEFAULT_CONFIG;
	while ((ch = getopt(argc, argv, "C:")) != -1) {
		switch (ch) {
		case 'C':
			path = optarg;
			break;
		default:
			fprintf(stderr, "usage: mailq [-C config]\n");
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usage: mailq [-C config]\n");
		return EX_USAGE;
	}
	if (config_load(path, &cfg, &err) < 0) {
		fputs(buf_cstr(&err), stderr);
		buf_free(&err);
		return 1;
	}
	buf_free(&err);
	g = config_global(cfg);
	w.run_dir = cfg_str(g, "run_dir");
	w.pid_file = cfg_str(g, "pid_file");
	w.root_mode = strcmp(cfg_str(g, "mode"), "root") == 0;
	status = qctl_mailq("mailq", &w);
	config_free(&cfg);
	return status;
}
