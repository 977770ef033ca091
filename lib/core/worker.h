/*
 * worker: a pool of threads beside the event loop for blocking jobs (the
 * fsyncs of a group commit, a big mailbox's scan or UPDATE).  Jobs wait in
 * one FIFO queue and each idle thread takes the next; the loop hears of a
 * finished job through a pipe and runs done() for it there, in the order
 * the jobs finished.  A job function must touch only what its job owns --
 * no ev, no sessions; err_fmt/log_safe buffers are per thread, so it may
 * use them (and copy the text before it returns).
 *
 * The threads are created by worker_start(), never later: a daemon starts
 * its pool before its seccomp filter is loaded, which has no clone().
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include <stddef.h>

#include "ev.h"

struct worker;

/* Runs in a thread. */
typedef void worker_job_fn(void *job);
/* Runs on the loop once fn(job) returned. */
typedef void worker_done_fn(void *job, void *arg);
/* Runs in worker_stop() for a job whose done() will never come: ran is 1
 * if fn(job) ran to its end, 0 if it never started. */
typedef void worker_settle_fn(void *job, int ran, void *arg);

/* Start nthreads (at least 1) threads.  0, or -1 with *error_r (no thread
 * is left running). */
int worker_start(struct ev_loop *loop, unsigned nthreads, worker_done_fn *done,
    void *arg, struct worker **w_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Jobs submitted whose done() has not been called yet: queued, running
 * or finished and not yet collected by the loop. */
size_t worker_pending(const struct worker *w);
/* Queue fn(job) behind the jobs already waiting; the first idle thread
 * runs it.  Never blocks. */
void worker_submit(struct worker *w, worker_job_fn *fn, void *job);
/* Take back a job that no thread has started: 1 (its done() will not be
 * called, the caller owns it again), or 0 (running or finished: done()
 * comes as usual). */
int worker_cancel(struct worker *w, const void *job);
/* Wait for the jobs running to finish, start no queued one, stop the
 * threads; then settle(job, ran, arg) for every job whose done() was not
 * called (finished ones first, in the order they finished, then those
 * never started, in queue order); settle may be NULL.  Frees the pool
 * and sets *wp = NULL. */
void worker_stop(struct worker **wp, worker_settle_fn *settle, void *arg);

#endif
