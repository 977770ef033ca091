/*
 * worker: one background thread that runs blocking jobs (the fsyncs of a
 * group commit) while the event loop goes on; the loop hears of each
 * finished job through a pipe and runs its done() callback.  One job at a
 * time: the owner gathers the next batch meanwhile and submits it from
 * done().  The job function must touch only what the job owns -- no ev,
 * no sessions; err_fmt/log_safe buffers are per thread, so it may use them.
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include "ev.h"

struct worker;

/* Runs in the thread. */
typedef void worker_job_fn(void *job);
/* Runs on the loop once fn(job) returned. */
typedef void worker_done_fn(void *job, void *arg);

/* Start the thread.  0, or -1 with *error_r. */
int worker_start(struct ev_loop *loop, worker_done_fn *done, void *arg,
    struct worker **w_r, const char **error_r) __attribute__((warn_unused_result));
/* 1 from worker_submit() until done() has been called. */
int worker_busy(const struct worker *w);
/* Run fn(job) in the thread (panics if busy). */
void worker_submit(struct worker *w, worker_job_fn *fn, void *job);
/* Wait for a job in flight to finish (its done() is not called: the
 * owner settles it), stop the thread, free, set *wp = NULL. */
void worker_stop(struct worker **wp);

#endif
