/*
 * commit: the group committer (contract in commit.h).  Two lists of
 * entries: `wait`, the next batch, which the loop fills, and `fly`, the
 * batch in flight.  While a batch flies the thread reads only items[],
 * nfly and the sync hook and writes only results[] and error; the loop
 * may still disown fly's entries, whose owners the thread never sees.
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
	struct ev_loop *loop;
	struct worker *w;		/* one thread: batches in order */
	commit_sync_fn *sync;
	commit_done_fn *done;
	void *arg;
	struct commit_entry *wait, *fly;
	size_t nwait, capwait, nfly, capfly;
	/* The batch as the thread sees it. */
	void **items;
	int *results;
	size_t capitems;
	char error[512];
	int has_error;
	int in_flight;			/* fly was submitted, not settled */
	int kick_queued;		/* commit_kick_deferred is pending */
	int stopping;
};

/* In the thread (or commit_stop): sync the batch in flight. */
static void
commit_sync_job(void *job)
{
	struct committer *c = job;
	const char *error = NULL;

	c->sync(c->items, c->nfly, c->results, &error, c->arg);
	c->has_error = error != NULL;
	if (error != NULL)
		snprintf(c->error, sizeof(c->error), "%s", error);
}

/* Send the waiting entries as one batch, unless one is in flight. */
static void
commit_kick(struct committer *c)
{
	struct commit_entry *e;
	size_t cap;

	if (c->in_flight || c->nwait == 0 || c->stopping)
		return;
	e = c->fly;
	cap = c->capfly;
	c->fly = c->wait;
	c->capfly = c->capwait;
	c->nfly = c->nwait;
	c->wait = e;
	c->capwait = cap;
	c->nwait = 0;
	if (c->nfly > c->capitems) {
		c->capitems = c->nfly;
		c->items = xreallocarray(c->items, c->capitems, sizeof(*c->items));
		c->results = xreallocarray(c->results, c->capitems, sizeof(*c->results));
	}
	for (size_t i = 0; i < c->nfly; i++) {
		c->items[i] = c->fly[i].item;
		c->results[i] = 0;
	}
	c->has_error = 0;
	c->in_flight = 1;
	worker_submit(c->w, commit_sync_job, c);
}

/* The end of the loop iteration in which the first item was added. */
static void
commit_kick_deferred(void *arg)
{
	struct committer *c = arg;

	c->kick_queued = 0;
	commit_kick(c);
}

/* Report the batch in flight (synced) through done(). */
static void
commit_settle(struct committer *c)
{
	for (size_t i = 0; i < c->nfly; i++)
		c->fly[i].result = c->results[i] == 0 ? 0 : -1;
	c->in_flight = 0;
	c->done(c->fly, c->nfly, c->has_error ? c->error : NULL, c->arg);
	c->nfly = 0;
}

/* worker: the thread finished the batch. */
static void
commit_job_done(void *job, void *arg)
{
	struct committer *c = arg;

	(void)job;
	commit_settle(c);
	commit_kick(c);
}

/* worker_stop: the batch's done() will not come from the pool. */
static void
commit_job_settle(void *job, int ran, void *arg)
{
	(void)arg;
	if (!ran)
		commit_sync_job(job);
}

int
commit_start(struct ev_loop *loop, commit_sync_fn *sync, commit_done_fn *done,
    void *arg, struct committer **c_r, const char **error_r)
{
	struct committer *c = xcalloc(1, sizeof(*c));

	c->loop = loop;
	c->sync = sync;
	c->done = done;
	c->arg = arg;
	if (worker_start(loop, 1, commit_job_done, c, &c->w, error_r) < 0) {
		free(c);
		return -1;
	}
	*c_r = c;
	return 0;
}

void
commit_add(struct committer *c, void *item, void *owner)
{
	if (c->nwait == c->capwait) {
		c->capwait = c->capwait == 0 ? 16 : c->capwait * 2;
		c->wait = xreallocarray(c->wait, c->capwait, sizeof(*c->wait));
	}
	c->wait[c->nwait++] = (struct commit_entry){ item, owner, 0 };
	if (!c->in_flight && !c->kick_queued && !c->stopping) {
		c->kick_queued = 1;
		ev_defer(c->loop, commit_kick_deferred, c);
	}
}

void *
commit_cancel(struct committer *c, const void *owner)
{
	for (size_t i = 0; i < c->nwait; i++) {
		void *item = c->wait[i].item;

		if (c->wait[i].owner != owner)
			continue;
		memmove(&c->wait[i], &c->wait[i + 1],
		    (c->nwait - i - 1) * sizeof(*c->wait));
		c->nwait--;
		return item;
	}
	return NULL;
}

void
commit_forget(struct committer *c, const void *owner)
{
	for (size_t i = 0; i < c->nwait; i++)
		if (c->wait[i].owner == owner)
			c->wait[i].owner = NULL;
	for (size_t i = 0; i < c->nfly; i++)
		if (c->fly[i].owner == owner)
			c->fly[i].owner = NULL;
}

size_t
commit_pending(const struct committer *c)
{
	return c->nwait + c->nfly;
}

void
commit_stop(struct committer **cp)
{
	struct committer *c = *cp;

	if (c == NULL)
		return;
	c->stopping = 1;
	if (c->kick_queued) {
		ev_defer_cancel(c->loop, commit_kick_deferred, c);
		c->kick_queued = 0;
	}
	/* The thread finishes (or we run) the batch in flight. */
	worker_stop(&c->w, commit_job_settle, NULL);
	if (c->in_flight)
		commit_settle(c);
	/* What waits is not synced; done() may add more, reported alike. */
	while (c->nwait > 0) {
		struct commit_entry *e = c->wait;
		size_t n = c->nwait;

		c->wait = NULL;
		c->nwait = c->capwait = 0;
		for (size_t i = 0; i < n; i++)
			e[i].result = -1;
		log_debug("event=commit_dropped items=%zu reason=stopping", n);
		c->done(e, n, "not committed: stopping", c->arg);
		free(e);
	}
	free(c->wait);
	free(c->fly);
	free(c->items);
	free(c->results);
	free(c);
	*cp = NULL;
}
