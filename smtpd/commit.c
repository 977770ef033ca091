/*
 * commit: smtpd's group commit on a lib/worker thread.  The job is one
 * qfile_commit() of a batch of writers nobody else touches; the error text
 * is copied into the committer before the loop hears of the result.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "log.h"
#include "worker.h"
#include "xalloc.h"

struct committer {
	struct worker *w;
	commit_done_fn *done;
	void *arg;
	/* The batch; the worker's while it is busy. */
	struct qfile_writer **ws;
	int *results;
	size_t n, cap;
	char error[512];
	int has_error;
};

/* In the worker thread: make the batch durable. */
static void
commit_job(void *job)
{
	struct committer *c = job;
	const char *error = NULL;

	qfile_commit(c->ws, c->n, c->results, &error);
	c->has_error = error != NULL;
	if (error != NULL)
		snprintf(c->error, sizeof(c->error), "%s", error);
}

/* On the loop: the batch is done. */
static void
commit_job_done(void *job, void *arg)
{
	struct committer *c = arg;

	(void)job;
	c->done(c->results, c->n, c->has_error ? c->error : NULL, c->arg);
}

int
committer_start(struct ev_loop *loop, commit_done_fn *done, void *arg,
    struct committer **c_r, const char **error_r)
{
	struct committer *c = xcalloc(1, sizeof(*c));

	c->done = done;
	c->arg = arg;
	if (worker_start(loop, 1, commit_job_done, c, &c->w, error_r) < 0) {
		free(c);
		return -1;
	}
	*c_r = c;
	return 0;
}

int
committer_busy(const struct committer *c)
{
	return worker_pending(c->w) != 0;
}

void
committer_submit(struct committer *c, struct qfile_writer **ws, size_t n)
{
	if (n > c->cap) {
		c->cap = n;
		c->ws = xreallocarray(c->ws, n, sizeof(*c->ws));
		c->results = xreallocarray(c->results, n, sizeof(*c->results));
	}
	memcpy(c->ws, ws, n * sizeof(*ws));
	c->n = n;
	c->has_error = 0;
	worker_submit(c->w, commit_job, c);
}

void
committer_stop(struct committer **cp)
{
	struct committer *c = *cp;

	if (c == NULL)
		return;
	worker_stop(&c->w, NULL, NULL);
	free(c->ws);
	free(c->results);
	free(c);
	*cp = NULL;
}
