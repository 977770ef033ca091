/*
 * The queue subcommands: `postern queue` lists the queue as mailq(1)
 * does; `postern queue delete|hold|release|requeue ID...|ALL` and
 * `postern flush` ask qmgr to act.  All of it goes through qmgr's control
 * socket (tools/qctl): nothing here touches the spool behind its back.
 * The list ends with the number of files qmgr has quarantined in
 * spool/corrupt, which it only counts (reading the directory).
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "postern.h"
#include "qctl.h"
#include "qfile.h"
#include "qmgrproto.h"

/* A queue action: its subcommand, request type and past tense. */
struct queue_action {
	const char *name;
	uint32_t type;
	const char *done;
};

static const struct queue_action queue_actions[] = {
	{ "delete",  QMGR_DELETE,  "deleted" },
	{ "hold",    QMGR_HOLD,    "held" },
	{ "release", QMGR_RELEASE, "released" },
	{ "requeue", QMGR_REQUEUE, "requeued" },
};

/* Load the config and connect to qmgr; *corrupt_r (unless NULL) gets
 * spool_dir/corrupt.  0, or -1 after printing why. */
static int
queue_open(const char *config, const char *prog, struct qctl *q, char **corrupt_r)
{
	const struct cfg_section *g;
	struct qctl_where w;
	struct config *cfg;
	int r;

	if ((cfg = tool_load_config(config)) == NULL)
		return -1;
	g = config_global(cfg);
	w.run_dir = cfg_str(g, "run_dir");
	w.pid_file = cfg_str(g, "pid_file");
	w.root_mode = strcmp(cfg_str(g, "mode"), "root") == 0;
	r = qctl_open(q, prog, &w);
	if (r == 0 && corrupt_r != NULL)
		*corrupt_r = fs_join(cfg_str(g, "spool_dir"), "corrupt");
	config_free(&cfg);
	return r;
}

/* Say how many files spool/corrupt holds, if any.  0, or -1 after
 * printing why it could not be read. */
static int
print_quarantined(const char *dir, FILE *out)
{
	struct dirent *de;
	unsigned long n = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;	/* nothing was ever quarantined */
		fprintf(stderr, "postern queue: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	if (n > 0)
		fprintf(out, "-- %lu file%s quarantined in %s (qmgr logged each: "
		    "event=corrupt)\n", n, n == 1 ? "" : "s", dir);
	return 0;
}

/* Whether s can be a queue id (lib/mail/qfile: letters and digits). */
static int
is_queue_id(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n >= QFILE_ID_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z')))
			return 0;
	}
	return 1;
}

/* "N message(s) VERB", on standard output. */
static void
print_count(uint32_t n, const char *verb)
{
	printf("%lu message%s %s\n", (unsigned long)n, n == 1 ? "" : "s", verb);
}

/* queue delete|hold|release|requeue ID...|ALL: one request per argument,
 * over one connection. */
static int
queue_act(const char *config, const struct queue_action *a, int argc, char **argv)
{
	struct buf text = BUF_INIT, prog = BUF_INIT;
	struct qctl q;
	uint32_t affected;
	int i, status = EXIT_OK;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "ALL") == 0 && argc > 1) {
			fprintf(stderr, "postern queue %s: ALL goes alone\n", a->name);
			return EXIT_USAGE;
		}
		if (strcmp(argv[i], "ALL") != 0 && !is_queue_id(argv[i])) {
			qctl_put_safe(&text, argv[i], 100);
			fprintf(stderr, "postern queue %s: not a queue id: %s\n",
			    a->name, buf_cstr(&text));
			buf_free(&text);
			return EXIT_USAGE;
		}
	}
	if (buf_printf(&prog, "postern queue %s", a->name) < 0 ||
	    queue_open(config, buf_cstr(&prog), &q, NULL) < 0) {
		buf_free(&prog);
		return EXIT_FAIL;
	}
	for (i = 0; i < argc; i++) {
		if (qctl_request(&q, a->type, argv[i], &affected, &text) < 0) {
			status = EXIT_FAIL;
			break;
		}
		if (affected == 0 && strcmp(argv[i], "ALL") != 0) {
			/* An id qmgr does not have (or could not act on). */
			fprintf(stderr, "%s: %s: %s\n", buf_cstr(&prog), argv[i],
			    text.len > 0 ? buf_cstr(&text) : "no such message");
			status = EXIT_FAIL;
		} else
			print_count(affected, a->done);
	}
	qctl_close(&q);
	buf_free(&text);
	buf_free(&prog);
	return status;
}

int
cmd_queue(const char *config, int argc, char **argv)
{
	struct qctl q;
	size_t i;
	int r;

	if (argc == 1 || (argc == 2 && strcmp(argv[1], "list") == 0)) {
		char *corrupt = NULL;

		if (queue_open(config, "postern queue", &q, &corrupt) < 0)
			return EXIT_FAIL;
		r = qctl_list(&q, stdout);
		qctl_close(&q);
		if (r == 0 && print_quarantined(corrupt, stdout) < 0)
			r = -1;
		free(corrupt);
		return r < 0 ? EXIT_FAIL : EXIT_OK;
	}
	for (i = 0; i < sizeof(queue_actions) / sizeof(queue_actions[0]); i++) {
		if (strcmp(argv[1], queue_actions[i].name) != 0)
			continue;
		if (argc < 3) {
			fprintf(stderr, "usage: postern queue %s ID...|ALL\n",
			    queue_actions[i].name);
			return EXIT_USAGE;
		}
		return queue_act(config, &queue_actions[i], argc - 2, argv + 2);
	}
	fprintf(stderr, "usage: postern queue [list]\n"
	    "       postern queue delete|hold|release|requeue ID...|ALL\n");
	return EXIT_USAGE;
}

int
cmd_flush(const char *config, int argc, char **argv)
{
	struct buf text = BUF_INIT;
	struct qctl q;
	uint32_t affected;
	int r;

	if (argc > 1) {
		fprintf(stderr, "usage: postern flush\n");
		return EXIT_USAGE;
	}
	if (queue_open(config, "postern flush", &q, NULL) < 0)
		return EXIT_FAIL;
	r = qctl_request(&q, QMGR_FLUSH, NULL, &affected, &text);
	qctl_close(&q);
	buf_free(&text);
	if (r < 0)
		return EXIT_FAIL;
	print_count(affected, "scheduled for delivery now");
	return EXIT_OK;
}
