/*
 * worker: a pool of job threads beside the event loop, for blocking work
 * such as the syncs of a group commit (lib/core/commit) or pop3d's mailbox
 * jobs.  The queue, the finished list and the quit flag are shared under
 * one mutex; everything else (the pending count, the ev watch) is the
 * loop's alone.
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

/* One submitted job, on the queue or the finished list. */
struct worker_node {
	struct worker_node *next;
	worker_job_fn *fn;
	void *job;
};

/* A FIFO list of nodes. */
struct worker_list {
	struct worker_node *head, *tail;
};

struct worker {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a job was queued, or quit was set */
	pthread_t *threads;
	unsigned nthreads;		/* started */
	int pipe[2];			/* threads -> loop: a job is done */
	struct ev_io *io;
	worker_done_fn *done;
	void *arg;
	/* Under lock. */
	struct worker_list queue;	/* submitted, not started */
	struct worker_list finished;	/* run, not yet collected */
	int quit;
	/* Loop only. */
	size_t pending;
};

/* Append n to l. */
static void
list_push(struct worker_list *l, struct worker_node *n)
{
	n->next = NULL;
	if (l->tail != NULL)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
}

/* Remove and return l's first node, or NULL. */
static struct worker_node *
list_pop(struct worker_list *l)
{
	struct worker_node *n = l->head;

	if (n != NULL) {
		l->head = n->next;
		if (l->head == NULL)
			l->tail = NULL;
		n->next = NULL;
	}
	return n;
}

/* A thread: run queued jobs until told to quit, ringing the loop after
 * each. */
static void *
worker_thread(void *arg)
{
	struct worker *w = arg;
	struct worker_node *n;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->queue.head == NULL && !w->quit)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->quit)
			break;
		n = list_pop(&w->queue);
		pthread_mutex_unlock(&w->lock);
		n->fn(n->job);
		pthread_mutex_lock(&w->lock);
		list_push(&w->finished, n);
		pthread_mutex_unlock(&w->lock);
		/* A full pipe is rung already. */
		while (write(w->pipe[1], "", 1) < 0 && errno == EINTR)
			;
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The loop side: collect the finished jobs and run their done(). */
static void
worker_ready(struct ev_io *io, int fd, int events, void *arg)
{
	struct worker *w = arg;
	struct worker_list got;
	struct worker_node *n;
	char b[64];

	(void)io;
	(void)events;
	while (read(fd, b, sizeof(b)) > 0)
		;
	pthread_mutex_lock(&w->lock);
	got = w->finished;
	w->finished.head = w->finished.tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while ((n = list_pop(&got)) != NULL) {
		void *job = n->job;

		free(n);
		w->pending--;
		w->done(job, w->arg);
	}
}

/* Tell the threads to quit and join them. */
static void
worker_join(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->quit = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	w->nthreads = 0;
}

/* Free what worker_start() set up (the threads are joined). */
static void
worker_free(struct worker *w)
{
	ev_io_close(&w->io);
	close(w->pipe[0]);
	close(w->pipe[1]);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->threads);
	free(w);
}

int
worker_start(struct ev_loop *loop, unsigned nthreads, worker_done_fn *done,
    void *arg, struct worker **w_r, const char **error_r)
{
	struct worker *w;
	int r;

	if (nthreads == 0) {
		*error_r = "worker pool of 0 threads";
		return -1;
	}
	w = xcalloc(1, sizeof(*w));
	if (pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = err_fmt("pipe: %s", strerror(errno));
		free(w);
		return -1;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done = done;
	w->arg = arg;
	w->threads = xcalloc(nthreads, sizeof(*w->threads));
	for (; w->nthreads < nthreads; w->nthreads++) {
		r = pthread_create(&w->threads[w->nthreads], NULL, worker_thread, w);
		if (r != 0) {
			*error_r = err_fmt("pthread_create: %s", strerror(r));
			worker_join(w);
			worker_free(w);
			return -1;
		}
	}
	w->io = ev_io_add(loop, w->pipe[0], EV_READ, worker_ready, w);
	*w_r = w;
	return 0;
}

size_t
worker_pending(const struct worker *w)
{
	return w->pending;
}

void
worker_submit(struct worker *w, worker_job_fn *fn, void *job)
{
	struct worker_node *n = xcalloc(1, sizeof(*n));

	n->fn = fn;
	n->job = job;
	w->pending++;
	pthread_mutex_lock(&w->lock);
	list_push(&w->queue, n);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int
worker_cancel(struct worker *w, const void *job)
{
	struct worker_node *n, *prev = NULL;

	pthread_mutex_lock(&w->lock);
	for (n = w->queue.head; n != NULL; prev = n, n = n->next)
		if (n->job == job)
			break;
	if (n != NULL) {
		if (prev != NULL)
			prev->next = n->next;
		else
			w->queue.head = n->next;
		if (w->queue.tail == n)
			w->queue.tail = prev;
	}
	pthread_mutex_unlock(&w->lock);
	if (n == NULL)
		return 0;
	free(n);
	w->pending--;
	return 1;
}

void
worker_stop(struct worker **wp, worker_settle_fn *settle, void *arg)
{
	struct worker *w = *wp;
	struct worker_node *n;

	if (w == NULL)
		return;
	/* Running jobs end on the finished list; queued ones stay queued. */
	worker_join(w);
	while ((n = list_pop(&w->finished)) != NULL) {
		if (settle != NULL)
			settle(n->job, 1, arg);
		free(n);
	}
	while ((n = list_pop(&w->queue)) != NULL) {
		if (settle != NULL)
			settle(n->job, 0, arg);
		free(n);
	}
	worker_free(w);
	*wp = NULL;
}
