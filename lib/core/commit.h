/*
 * commit: the group committer of every daemon that makes files durable
 * before it answers (smtpd's queue files, local's Maildir deliveries).
 *
 * The contract: an item joins the next batch with commit_add(); while no
 * batch is in flight the batch leaves at the end of the loop iteration
 * (ev_defer), otherwise as soon as the batch before it is settled, so a
 * batch holds everything that finished while the previous one synced and
 * no caller waits for another's fsync to be *started*.  A worker thread
 * (lib/core/worker) runs the owner's sync function on the whole batch -- file
 * data, then the directories, as few syncs as the owner's format allows --
 * and only then does done() run on the loop with each item's result, in
 * the order the items were added; batches settle in the order they left.
 * The caller answers its client from done(), never earlier.  A failure
 * fails the items the sync function marks (with the batch's first error
 * text), never the batch before or after it.
 *
 * Owners: each item has an owner pointer (a session, a request) that the
 * caller may take back before the item leaves (commit_cancel) or disown
 * (commit_forget: done() then sees NULL) when the owner goes away.
 */
#ifndef POSTERN_COMMIT_H
#define POSTERN_COMMIT_H

#include <stddef.h>

#include "ev.h"

struct committer;

/* One item of a settled batch, as done() sees it. */
struct commit_entry {
	void *item;		/* as given to commit_add(); the caller's again */
	void *owner;		/* NULL if commit_forget() was called for it */
	int result;		/* 0 durable; -1 not: removed by the sync
				 * function, or never synced (commit_stop) */
};

/*
 * Runs in the worker thread: make items[0..n) durable.  results[] starts
 * all 0; set results[i] = -1 for each item that is not, and *error_r to
 * the first failure's reason (it may point into the thread's err_fmt
 * ring: it is copied before the thread moves on).  It must touch nothing
 * but the items (no loop, no sessions, no shared state).
 */
typedef void commit_sync_fn(void *const *items, size_t n, int *results,
    const char **error_r, void *arg);
/* Runs on the loop when a batch is settled: e[0..n) in the order added;
 * error names the batch's first failure, or is NULL.  It may add items:
 * they go with the next batch. */
typedef void commit_done_fn(const struct commit_entry *e, size_t n,
    const char *error, void *arg);

/* Start the committer and its sync thread.  0, or -1 with *error_r. */
int commit_start(struct ev_loop *loop, commit_sync_fn *sync, commit_done_fn *done,
    void *arg, struct committer **c_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Add item (owner's) to the next batch; the committer holds it until
 * done(). */
void commit_add(struct committer *c, void *item, void *owner);
/* Take back the first item of owner's still waiting for a batch: the item
 * (no longer the committer's), or NULL if none waits.  Items in flight
 * stay in flight. */
void *commit_cancel(struct committer *c, const void *owner);
/* Owner is going: its items (waiting or in flight) are still committed,
 * and done() sees them with owner NULL. */
void commit_forget(struct committer *c, const void *owner);
/* Items added and not yet settled: waiting and in flight. */
size_t commit_pending(const struct committer *c);
/* Let the batch in flight finish its syncs (a batch not yet started by
 * the thread is synced here), report it through done(), then report the
 * items still waiting as failed (error "not committed: stopping") without
 * syncing them; stop the thread, free, set *cp = NULL. */
void commit_stop(struct committer **cp);

#endif
