/*
 * worker: a job thread beside the event loop, for blocking work such as
 * the syncs of a group commit (smtpd's spool, local's Maildirs).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"
#include "xalloc.h"

struct worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pipe[2];			/* thread -> loop: a job is done */
	struct ev_io *io;
	worker_done_fn *done;
	void *arg;
	worker_job_fn *fn;		/* the job; the thread's while work is set */
	void *job;
	int work;			/* a job waits for (or runs in) the thread */
	int quit;
	int busy;			/* loop side: submitted, not collected */
};

/* The thread: run each job it is given, then ring the loop. */
static void *
worker_thread(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->work && !w->quit)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->work)
			break;
		pthread_mutex_unlock(&w->lock);
		w->fn(w->job);
		pthread_mutex_lock(&w->lock);
		w->work = 0;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		while (write(w->pipe[1], "", 1) < 0 && errno == EINTR)
			;
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The loop side: the thread finished a job. */
static void
worker_ready(struct ev_io *io, int fd, int events, void *arg)
{
	struct worker *w = arg;
	char b[64];

	(void)io;
	(void)events;
	if (read(fd, b, sizeof(b)) <= 0 || !w->busy)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->work) {		/* a stale wake-up: not finished yet */
		pthread_mutex_unlock(&w->lock);
		return;
	}
	pthread_mutex_unlock(&w->lock);
	w->busy = 0;
	w->done(w->job, w->arg);
}

int
worker_start(struct ev_loop *loop, worker_done_fn *done, void *arg,
    struct worker **w_r, const char **error_r)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	int r;

	if (pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = err_fmt("pipe: %s", strerror(errno));
		free(w);
		return -1;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done = done;
	w->arg = arg;
	if ((r = pthread_create(&w->thread, NULL, worker_thread, w)) != 0) {
		*error_r = err_fmt("pthread_create: %s", strerror(r));
		close(w->pipe[0]);
		close(w->pipe[1]);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		free(w);
		return -1;
	}
	w->io = ev_io_add(loop, w->pipe[0], EV_READ, worker_ready, w);
	*w_r = w;
	return 0;
}

int
worker_busy(const struct worker *w)
{
	return w->busy;
}

void
worker_submit(struct worker *w, worker_job_fn *fn, void *job)
{
	if (w->busy)
		log_panic("event=bug where=worker_submit reason=busy");
	w->busy = 1;
	pthread_mutex_lock(&w->lock);
	w->fn = fn;
	w->job = job;
	w->work = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void
worker_stop(struct worker **wp)
{
	struct worker *w = *wp;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	while (w->work)
		pthread_cond_wait(&w->cond, &w->lock);
	w->quit = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	ev_io_close(&w->io);
	close(w->pipe[1]);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
	*wp = NULL;
}
