/*
 * commit: the sync thread of smtpd's group commit.  The thread only runs
 * qfile_commit() -- blocking syscalls on writers nobody else touches --
 * and copies the error text; everything else (replies, logging, the
 * sessions) stays on the loop, which hears of a finished batch through a
 * pipe.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit.h"
#include "log.h"
#include "xalloc.h"

struct committer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pipe[2];			/* thread -> loop: a batch is done */
	struct ev_io *io;
	commit_done_fn *done;
	void *arg;
	/* The batch; the thread owns it while work is set. */
	struct qfile_writer **ws;
	int *results;
	size_t n, cap;
	char error[512];
	int has_error;
	int work;			/* a batch waits for the thread */
	int quit;
	int busy;			/* loop side: submitted, not collected */
};

/* The thread: commit each batch it is given, then ring the loop. */
static void *
sync_thread(void *arg)
{
	struct committer *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		const char *error = NULL;

		while (!c->work && !c->quit)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!c->work)
			break;
		pthread_mutex_unlock(&c->lock);
		qfile_commit(c->ws, c->n, c->results, &error);
		c->has_error = error != NULL;
		if (error != NULL)
			snprintf(c->error, sizeof(c->error), "%s", error);
		pthread_mutex_lock(&c->lock);
		c->work = 0;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		while (write(c->pipe[1], "", 1) < 0 && errno == EINTR)
			;
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* The loop side: the thread finished a batch. */
static void
batch_done(struct ev_io *io, int fd, int events, void *arg)
{
	struct committer *c = arg;
	char b[64];

	(void)io;
	(void)events;
	if (read(fd, b, sizeof(b)) <= 0 || !c->busy)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->work) {		/* a stale wake-up: not finished yet */
		pthread_mutex_unlock(&c->lock);
		return;
	}
	pthread_mutex_unlock(&c->lock);
	c->busy = 0;
	c->done(c->results, c->n, c->has_error ? c->error : NULL, c->arg);
}

int
committer_start(struct ev_loop *loop, commit_done_fn *done, void *arg,
    struct committer **c_r, const char **error_r)
{
	struct committer *c = xcalloc(1, sizeof(*c));
	int r;

	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = err_fmt("pipe: %s", strerror(errno));
		free(c);
		return -1;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->done = done;
	c->arg = arg;
	if ((r = pthread_create(&c->thread, NULL, sync_thread, c)) != 0) {
		*error_r = err_fmt("pthread_create: %s", strerror(r));
		close(c->pipe[0]);
		close(c->pipe[1]);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
		free(c);
		return -1;
	}
	c->io = ev_io_add(loop, c->pipe[0], EV_READ, batch_done, c);
	*c_r = c;
	return 0;
}

int
committer_busy(const struct committer *c)
{
	return c->busy;
}

void
committer_submit(struct committer *c, struct qfile_writer **ws, size_t n)
{
	if (c->busy)
		log_panic("event=bug where=committer_submit reason=busy");
	if (n > c->cap) {
		c->cap = n;
		c->ws = xreallocarray(c->ws, n, sizeof(*c->ws));
		c->results = xreallocarray(c->results, n, sizeof(*c->results));
	}
	memcpy(c->ws, ws, n * sizeof(*ws));
	c->n = n;
	c->has_error = 0;
	c->busy = 1;
	pthread_mutex_lock(&c->lock);
	c->work = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void
committer_stop(struct committer **cp)
{
	struct committer *c = *cp;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->work)
		pthread_cond_wait(&c->cond, &c->lock);
	c->quit = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	ev_io_close(&c->io);
	close(c->pipe[1]);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c->ws);
	free(c->results);
	free(c);
	*cp = NULL;
}
