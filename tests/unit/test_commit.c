/*
 * Unit tests for lib/core/commit.c, the group committer, with real files in a
 * temporary directory: the sync function fsyncs each item's file and then
 * the directory, as smtpd's and local's do.  Covered: items added in one
 * loop iteration form one batch; items added while a batch is in flight
 * form the next; done() sees items in the order added and batches in the
 * order they left; an fsync error (a pipe cannot be fsync'd: EINVAL) fails
 * exactly the items of that batch it hit, with the reason, and neither the
 * batch before nor the one after; cancel and forget; and stop with a
 * batch in flight (finished and reported) and items waiting (reported
 * failed, never synced).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "commit.h"
#include "ev.h"
#include "log.h"

#define MAX_ITEMS 32
#define MAX_BATCHES 8

struct item {
	int fd;			/* fsync'd by the sync function */
	int seq;		/* order of commit_add() */
};

struct ctx {
	struct ev_loop *loop;
	struct committer *c;
	char dir[64];
	int dirfd;
	/* The thread's record (under lock). */
	pthread_mutex_t lock;
	int nsync;
	size_t sync_n[MAX_BATCHES];
	int synced[MAX_ITEMS];		/* seq -> times synced */
	sem_t *sync_started;		/* posted as a sync starts, if set */
	sem_t *sync_release;		/* waited for before it ends, if set */
	int sync_sleep_ms;
	/* The loop's record. */
	int ndone;			/* done() calls */
	size_t done_n[MAX_BATCHES];
	const char *done_error[MAX_BATCHES];	/* NULL or a copy */
	int order[MAX_ITEMS];		/* seqs in done() order */
	int result[MAX_ITEMS];		/* by seq */
	void *owner[MAX_ITEMS];		/* by seq */
	int nreported;
	int want;			/* break after this many items */
};

/* In the thread: fsync each file, then the directory once. */
static void
sync_fn(void *const *items, size_t n, int *results, const char **error_r, void *arg)
{
	struct ctx *x = arg;

	if (x->sync_started != NULL)
		sem_post(x->sync_started);
	if (x->sync_release != NULL)
		sem_wait(x->sync_release);
	if (x->sync_sleep_ms > 0)
		usleep((useconds_t)x->sync_sleep_ms * 1000);
	for (size_t i = 0; i < n; i++) {
		struct item *it = items[i];

		if (fsync(it->fd) < 0) {
			results[i] = -1;
			if (*error_r == NULL)
				*error_r = err_fmt("fsync item %d: %s", it->seq,
				    strerror(errno));
		}
	}
	if (fsync(x->dirfd) < 0) {
		for (size_t i = 0; i < n; i++)
			results[i] = -1;
		*error_r = err_fmt("fsync dir: %s", strerror(errno));
	}
	pthread_mutex_lock(&x->lock);
	if (x->nsync < MAX_BATCHES)
		x->sync_n[x->nsync] = n;
	x->nsync++;
	for (size_t i = 0; i < n; i++)
		x->synced[((struct item *)items[i])->seq]++;
	pthread_mutex_unlock(&x->lock);
}

/* On the loop: record the batch. */
static void
done_fn(const struct commit_entry *e, size_t n, const char *error, void *arg)
{
	struct ctx *x = arg;

	ck_assert_int_lt(x->ndone, MAX_BATCHES);
	x->done_n[x->ndone] = n;
	x->done_error[x->ndone] = error != NULL ? strdup(error) : NULL;
	x->ndone++;
	for (size_t i = 0; i < n; i++) {
		struct item *it = e[i].item;

		x->order[x->nreported++] = it->seq;
		x->result[it->seq] = e[i].result;
		x->owner[it->seq] = e[i].owner;
	}
	if (x->nreported >= x->want)
		ev_break(x->loop);
}

static void
ctx_start(struct ctx *x)
{
	const char *error;

	snprintf(x->dir, sizeof(x->dir), "/tmp/test_commit.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(x->dir));
	x->dirfd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(x->dirfd, 0);
	pthread_mutex_init(&x->lock, NULL);
	x->loop = ev_loop_new();
	ck_assert_int_eq(commit_start(x->loop, sync_fn, done_fn, x, &x->c, &error), 0);
}

/* A file in the directory with a little data, as item seq. */
static void
item_file(struct ctx *x, struct item *it, int seq)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/f%d", x->dir, seq);
	it->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(it->fd, 0);
	ck_assert_int_eq(write(it->fd, "data\n", 5), 5);
	it->seq = seq;
}

/* A pipe's write end as item seq: fsync fails with EINVAL. */
static void
item_pipe(struct item *it, int seq, int *other)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	it->fd = p[1];
	*other = p[0];
	it->seq = seq;
}

static void
items_close(struct item *its, int n)
{
	for (int i = 0; i < n; i++)
		(void)close(its[i].fd);
}

static void
ctx_stop(struct ctx *x)
{
	char cmd[128];

	commit_stop(&x->c);
	ck_assert_ptr_null(x->c);
	ev_loop_free(&x->loop);
	(void)close(x->dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
	ck_assert_int_eq(system(cmd), 0);
	for (int i = 0; i < x->ndone && i < MAX_BATCHES; i++)
		free((void *)x->done_error[i]);
	pthread_mutex_destroy(&x->lock);
}

/* Items added in one iteration are one batch, in order. */
START_TEST(test_one_iteration_one_batch)
{
	struct ctx x = { 0 };
	struct item its[3];

	ctx_start(&x);
	for (int i = 0; i < 3; i++) {
		item_file(&x, &its[i], i);
		commit_add(x.c, &its[i], &its[i]);
	}
	ck_assert_uint_eq(commit_pending(x.c), 3);
	ck_assert_int_eq(x.nsync, 0);		/* nothing leaves before the loop runs */
	x.want = 3;
	check_run_loop_for(x.loop, 5000);
	ck_assert_int_eq(x.nsync, 1);
	ck_assert_uint_eq(x.sync_n[0], 3);
	ck_assert_int_eq(x.ndone, 1);
	ck_assert_ptr_null(x.done_error[0]);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(x.order[i], i);
		ck_assert_int_eq(x.result[i], 0);
		ck_assert_ptr_eq(x.owner[i], &its[i]);
		ck_assert_int_eq(x.synced[i], 1);
	}
	ck_assert_uint_eq(commit_pending(x.c), 0);
	ctx_stop(&x);
	items_close(its, 3);
}
END_TEST

/* What is added while a batch syncs forms the next batch, which leaves
 * when the first is settled; done() order is add order throughout. */
struct inflight_ctx {
	struct ctx *x;
	struct item *its;
	sem_t *started, *release;
	int added;
};

/* A timer on the loop, once batch 1 is held in its sync: add 3..5.  It
 * polls rather than waits: batch 1 leaves from the loop, so a timer that
 * blocked the loop before it had left would wait for ever (as it did on
 * a loaded machine, where the timer was due on the loop's first pass). */
static void
add_more(struct ev_timer *t, void *arg)
{
	struct inflight_ctx *ic = arg;

	(void)t;
	if (ic->added || sem_trywait(ic->started) != 0)
		return;			/* batch 1 is not in the thread yet */
	ic->added = 1;
	for (int i = 3; i < 6; i++)
		commit_add(ic->x->c, &ic->its[i], NULL);
	ck_assert_uint_eq(commit_pending(ic->x->c), 6);
	sem_post(ic->release);		/* batch 1 may end ... */
	sem_post(ic->release);		/* ... and batch 2 will not wait */
}

START_TEST(test_batch_gathers_while_previous_syncs)
{
	struct ctx x = { 0 };
	struct item its[6];
	sem_t started, release;
	struct inflight_ctx ic = { &x, its, &started, &release, 0 };
	struct ev_timer *t;

	sem_init(&started, 0, 0);
	sem_init(&release, 0, 0);
	ctx_start(&x);
	x.sync_started = &started;
	x.sync_release = &release;
	for (int i = 0; i < 6; i++)
		item_file(&x, &its[i], i);
	for (int i = 0; i < 3; i++)
		commit_add(x.c, &its[i], NULL);
	t = ev_timer_add(x.loop, 2, 1, add_more, &ic);
	x.want = 6;
	check_run_loop_for(x.loop, 5000);
	ev_timer_del(&t);
	ck_assert_int_eq(x.nsync, 2);
	ck_assert_uint_eq(x.sync_n[0], 3);
	ck_assert_uint_eq(x.sync_n[1], 3);
	ck_assert_int_eq(x.ndone, 2);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(x.order[i], i);
		ck_assert_int_eq(x.result[i], 0);
		ck_assert_int_eq(x.synced[i], 1);
	}
	ctx_stop(&x);
	items_close(its, 6);
	sem_destroy(&started);
	sem_destroy(&release);
}
END_TEST

/* Three batches; the second holds a pipe whose fsync fails: exactly its
 * items fail, with the reason; the batches around it succeed.  The
 * committer's arg is the ctx (the sync function's) inside error_ctx. */
struct error_ctx {
	struct ctx x;		/* first: the sync function sees a ctx */
	struct item *its;
	int stage;
};

/* done() of the first batches adds the next, so each is its own batch. */
static void
error_done(const struct commit_entry *e, size_t n, const char *error, void *arg)
{
	struct error_ctx *ec = arg;

	done_fn(e, n, error, &ec->x);
	if (ec->stage == 0) {
		commit_add(ec->x.c, &ec->its[2], NULL);	/* the pipe */
		commit_add(ec->x.c, &ec->its[3], NULL);	/* a file */
	} else if (ec->stage == 1) {
		commit_add(ec->x.c, &ec->its[4], NULL);
	}
	ec->stage++;
}

START_TEST(test_fsync_error_fails_that_batch_only)
{
	struct item its[5];
	struct error_ctx ec = { .its = its };
	struct ctx *x = &ec.x;
	const char *error;
	int rd;

	ctx_start(x);
	/* The committer reports to error_done instead. */
	commit_stop(&x->c);
	ck_assert_int_eq(commit_start(x->loop, sync_fn, error_done, &ec, &x->c,
	    &error), 0);
	item_file(x, &its[0], 0);
	item_file(x, &its[1], 1);
	item_pipe(&its[2], 2, &rd);
	item_file(x, &its[3], 3);
	item_file(x, &its[4], 4);
	commit_add(x->c, &its[0], NULL);
	commit_add(x->c, &its[1], NULL);
	x->want = 5;
	check_run_loop_for(x->loop, 5000);
	ck_assert_int_eq(x->ndone, 3);
	ck_assert_uint_eq(x->done_n[0], 2);
	ck_assert_uint_eq(x->done_n[1], 2);
	ck_assert_uint_eq(x->done_n[2], 1);
	ck_assert_ptr_null(x->done_error[0]);
	ck_assert_ptr_nonnull(x->done_error[1]);
	ck_assert_str_eq(x->done_error[1], "fsync item 2: Invalid argument");
	ck_assert_ptr_null(x->done_error[2]);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(x->order[i], i);
		ck_assert_int_eq(x->result[i], i == 2 ? -1 : 0);
	}
	ctx_stop(x);
	items_close(its, 5);
	(void)close(rd);
}
END_TEST

/* A waiting item can be taken back by its owner; a forgotten owner's
 * items are still committed and reported with owner NULL. */
START_TEST(test_cancel_and_forget)
{
	struct ctx x = { 0 };
	struct item its[4];
	int a, b;

	ctx_start(&x);
	for (int i = 0; i < 4; i++)
		item_file(&x, &its[i], i);
	commit_add(x.c, &its[0], &a);
	commit_add(x.c, &its[1], &b);
	commit_add(x.c, &its[2], &a);
	commit_add(x.c, &its[3], &b);
	ck_assert_ptr_eq(commit_cancel(x.c, &a), &its[0]);
	ck_assert_ptr_eq(commit_cancel(x.c, &a), &its[2]);
	ck_assert_ptr_null(commit_cancel(x.c, &a));
	commit_forget(x.c, &b);
	ck_assert_uint_eq(commit_pending(x.c), 2);
	x.want = 2;
	check_run_loop_for(x.loop, 5000);
	ck_assert_int_eq(x.nreported, 2);
	ck_assert_int_eq(x.order[0], 1);
	ck_assert_int_eq(x.order[1], 3);
	ck_assert_ptr_null(x.owner[1]);
	ck_assert_ptr_null(x.owner[3]);
	ck_assert_int_eq(x.synced[0], 0);
	ck_assert_int_eq(x.synced[2], 0);
	ctx_stop(&x);
	items_close(its, 4);
}
END_TEST

/* Stop while a batch syncs: it finishes and is reported durable; what
 * waits behind it is reported failed and never synced. */
struct stop_ctx {
	struct ctx *x;
	struct item *its;
	sem_t *started;
};

/* Polls, as add_more() does, until batch 1 is in the thread. */
static void
stop_now(struct ev_timer *t, void *arg)
{
	struct stop_ctx *sc = arg;

	(void)t;
	if (sem_trywait(sc->started) != 0)
		return;
	commit_add(sc->x->c, &sc->its[2], NULL);
	ev_break(sc->x->loop);
}

START_TEST(test_stop_with_batch_in_flight)
{
	struct ctx x = { 0 };
	struct item its[3];
	sem_t started;
	struct stop_ctx sc = { &x, its, &started };
	struct ev_timer *t;

	sem_init(&started, 0, 0);
	ctx_start(&x);
	x.sync_started = &started;
	x.sync_sleep_ms = 150;		/* still syncing when stop is called */
	for (int i = 0; i < 3; i++)
		item_file(&x, &its[i], i);
	commit_add(x.c, &its[0], NULL);
	commit_add(x.c, &its[1], NULL);
	t = ev_timer_add(x.loop, 2, 1, stop_now, &sc);
	x.want = 100;
	check_run_loop_for(x.loop, 5000);
	ev_timer_del(&t);
	ck_assert_int_eq(x.ndone, 0);		/* the batch is still syncing */
	commit_stop(&x.c);
	ck_assert_int_eq(x.nsync, 1);
	ck_assert_int_eq(x.ndone, 2);
	ck_assert_uint_eq(x.done_n[0], 2);
	ck_assert_ptr_null(x.done_error[0]);
	ck_assert_int_eq(x.result[0], 0);
	ck_assert_int_eq(x.result[1], 0);
	ck_assert_uint_eq(x.done_n[1], 1);
	ck_assert_str_eq(x.done_error[1], "not committed: stopping");
	ck_assert_int_eq(x.result[2], -1);
	ck_assert_int_eq(x.synced[2], 0);
	ctx_stop(&x);		/* commit_stop(NULL) is a no-op */
	items_close(its, 3);
	sem_destroy(&started);
}
END_TEST

/* Stop before the loop ever ran: nothing is synced, all is failed. */
START_TEST(test_stop_before_first_batch)
{
	struct ctx x = { 0 };
	struct item it;

	ctx_start(&x);
	item_file(&x, &it, 0);
	commit_add(x.c, &it, NULL);
	commit_stop(&x.c);
	ck_assert_int_eq(x.nsync, 0);
	ck_assert_int_eq(x.ndone, 1);
	ck_assert_int_eq(x.result[0], -1);
	ctx_stop(&x);
	items_close(&it, 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("commit");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_one_iteration_one_batch);
	tcase_add_test(tc, test_batch_gathers_while_previous_syncs);
	tcase_add_test(tc, test_fsync_error_fails_that_batch_only);
	tcase_add_test(tc, test_cancel_and_forget);
	tcase_add_test(tc, test_stop_with_batch_in_flight);
	tcase_add_test(tc, test_stop_before_first_batch);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
