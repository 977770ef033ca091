/*
 * commit: smtpd's group commit, off the event loop.  One lib/worker thread per
 * process runs qfile_commit() on a batch of finished messages while the
 * loop keeps serving sessions and gathering the next batch; so each batch
 * holds every message that completed while the previous one was synced,
 * and no session waits for another's fsync to be *started*.
 */
#ifndef POSTERN_SMTPD_COMMIT_H
#define POSTERN_SMTPD_COMMIT_H

#include <stddef.h>

#include "ev.h"
#include "qfile.h"

struct committer;

/* A batch finished: results[i] is qfile_commit's result for the i-th
 * writer submitted; error names the first failure (or NULL).  Called from
 * the loop. */
typedef void commit_done_fn(const int *results, size_t n, const char *error, void *arg);

/* Start the sync thread.  0, or -1 with *error_r. */
int committer_start(struct ev_loop *loop, commit_done_fn *done, void *arg,
    struct committer **c_r, const char **error_r) __attribute__((warn_unused_result));
/* 1 while a batch is being synced (submit only when 0). */
int committer_busy(const struct committer *c);
/* Hand n writers to the thread, which owns them from now on. */
void committer_submit(struct committer *c, struct qfile_writer **ws, size_t n);
/* Wait for a batch in flight (its done() is not called), stop the thread,
 * free, set *cp = NULL. */
void committer_stop(struct committer **cp);

#endif
