/*
 * Unit tests for lib/core/worker.c, the job pool: a job runs in a thread and
 * its done() on the loop afterwards; jobs queue in FIFO order behind a
 * busy thread; N threads really run N jobs at once; a queued job can be
 * taken back; stop waits for the jobs running and settles every job whose
 * done() never came (ran or not) without calling done().
 */
#include "autoconf.h"

#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include "check_util.h"
#include "ev.h"
#include "worker.h"

#define MAX_JOBS 16

struct job {
	pthread_t ran_in;
	int ran;
	int sleep_ms;
	sem_t *started;			/* posted when the job starts, if set */
	sem_t *release;			/* waited for before it ends, if set */
	pthread_barrier_t *barrier;	/* waited at, if set */
};

struct ctx {
	struct ev_loop *loop;
	struct worker *w;
	struct job *done[MAX_JOBS];	/* in done() order */
	int ndone;
	size_t pending_in_done;
	int want;			/* break the loop after this many */
	struct job *settled[MAX_JOBS];
	int settled_ran[MAX_JOBS];
	int nsettled;
};

static void
job_fn(void *arg)
{
	struct job *j = arg;

	if (j->started != NULL)
		sem_post(j->started);
	if (j->barrier != NULL)
		(void)pthread_barrier_wait(j->barrier);
	if (j->release != NULL)
		sem_wait(j->release);
	if (j->sleep_ms > 0)
		usleep((useconds_t)j->sleep_ms * 1000);
	j->ran_in = pthread_self();
	j->ran = 1;
}

static void
done_fn(void *job, void *arg)
{
	struct ctx *c = arg;

	ck_assert_int_lt(c->ndone, MAX_JOBS);
	c->done[c->ndone++] = job;
	c->pending_in_done = worker_pending(c->w);
	if (c->ndone >= c->want)
		ev_break(c->loop);
}

static void
settle_fn(void *job, int ran, void *arg)
{
	struct ctx *c = arg;

	ck_assert_int_lt(c->nsettled, MAX_JOBS);
	c->settled_ran[c->nsettled] = ran;
	c->settled[c->nsettled++] = job;
}

/* A pool of n threads on a new loop. */
static void
ctx_start(struct ctx *c, unsigned n)
{
	const char *error;

	c->loop = ev_loop_new();
	ck_assert_int_eq(worker_start(c->loop, n, done_fn, c, &c->w, &error), 0);
}

/* Stop the pool (settling into c) and free the loop. */
static void
ctx_stop(struct ctx *c)
{
	worker_stop(&c->w, settle_fn, c);
	ck_assert_ptr_null(c->w);
	ev_loop_free(&c->loop);
}

START_TEST(test_job_runs_in_thread_then_done_on_loop)
{
	struct ctx c = { 0 };
	struct job j = { 0 };

	ctx_start(&c, 1);
	ck_assert_uint_eq(worker_pending(c.w), 0);
	j.sleep_ms = 50;
	c.want = 1;
	worker_submit(c.w, job_fn, &j);
	ck_assert_uint_eq(worker_pending(c.w), 1);
	check_run_loop_for(c.loop, 5000);
	ck_assert_int_eq(j.ran, 1);
	ck_assert(!pthread_equal(j.ran_in, pthread_self()));
	ck_assert_int_eq(c.ndone, 1);
	ck_assert_ptr_eq(c.done[0], &j);
	ck_assert_uint_eq(c.pending_in_done, 0);	/* counted out before done() */
	ctx_stop(&c);
	ck_assert_int_eq(c.nsettled, 0);
}
END_TEST

/* One thread: jobs submitted while it is busy wait and run in order. */
START_TEST(test_queue_is_fifo)
{
	struct ctx c = { 0 };
	struct job j[5] = { { 0 } };

	ctx_start(&c, 1);
	c.want = 5;
	for (int i = 0; i < 5; i++) {
		j[i].sleep_ms = i == 0 ? 50 : 1;
		worker_submit(c.w, job_fn, &j[i]);
	}
	ck_assert_uint_eq(worker_pending(c.w), 5);
	check_run_loop_for(c.loop, 5000);
	ck_assert_int_eq(c.ndone, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_ptr_eq(c.done[i], &j[i]);
	ck_assert_uint_eq(worker_pending(c.w), 0);
	ctx_stop(&c);
}
END_TEST

/* Four threads run four jobs at once: each job waits at a barrier that
 * opens only when all four are inside (fewer threads: it never opens and
 * the guard ends the test with too few done). */
START_TEST(test_pool_runs_jobs_concurrently)
{
	struct ctx c = { 0 };
	struct job j[4] = { { 0 } };
	pthread_barrier_t barrier;

	pthread_barrier_init(&barrier, NULL, 4);
	ctx_start(&c, 4);
	c.want = 4;
	for (int i = 0; i < 4; i++) {
		j[i].barrier = &barrier;
		worker_submit(c.w, job_fn, &j[i]);
	}
	check_run_loop_for(c.loop, 3000);
	ck_assert_int_eq(c.ndone, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(j[i].ran, 1);
		for (int k = 0; k < i; k++)
			ck_assert(!pthread_equal(j[i].ran_in, j[k].ran_in));
	}
	ctx_stop(&c);
	pthread_barrier_destroy(&barrier);
}
END_TEST

/* Many short jobs on a few threads: each done() exactly once. */
START_TEST(test_every_job_done_once)
{
	struct ctx c = { 0 };
	struct job j[MAX_JOBS] = { { 0 } };
	int seen[MAX_JOBS] = { 0 };

	ctx_start(&c, 3);
	c.want = MAX_JOBS;
	for (int i = 0; i < MAX_JOBS; i++) {
		j[i].sleep_ms = i % 3;
		worker_submit(c.w, job_fn, &j[i]);
	}
	check_run_loop_for(c.loop, 5000);
	ck_assert_int_eq(c.ndone, MAX_JOBS);
	for (int i = 0; i < MAX_JOBS; i++)
		seen[c.done[i] - j]++;
	for (int i = 0; i < MAX_JOBS; i++)
		ck_assert_int_eq(seen[i], 1);
	ctx_stop(&c);
}
END_TEST

/* A queued job can be taken back; a running one cannot. */
START_TEST(test_cancel_queued_only)
{
	struct ctx c = { 0 };
	struct job a = { 0 }, b = { 0 };
	sem_t started, release;

	sem_init(&started, 0, 0);
	sem_init(&release, 0, 0);
	ctx_start(&c, 1);
	a.started = &started;
	a.release = &release;
	worker_submit(c.w, job_fn, &a);
	worker_submit(c.w, job_fn, &b);
	sem_wait(&started);			/* a holds the only thread */
	ck_assert_int_eq(worker_cancel(c.w, &b), 1);
	ck_assert_int_eq(worker_cancel(c.w, &b), 0);	/* gone already */
	ck_assert_int_eq(worker_cancel(c.w, &a), 0);	/* running */
	ck_assert_uint_eq(worker_pending(c.w), 1);
	sem_post(&release);
	c.want = 1;
	check_run_loop_for(c.loop, 5000);
	ck_assert_int_eq(c.ndone, 1);
	ck_assert_ptr_eq(c.done[0], &a);
	/* b never runs, even given time. */
	c.want = 2;
	check_run_loop_for(c.loop, 100);
	ck_assert_int_eq(c.ndone, 1);
	ck_assert_int_eq(b.ran, 0);
	ctx_stop(&c);
	ck_assert_int_eq(c.nsettled, 0);
	sem_destroy(&started);
	sem_destroy(&release);
}
END_TEST

/* Stop waits for the job running, starts none of the queued ones, and
 * settles all of them (never through done()). */
START_TEST(test_stop_waits_for_running_and_settles_the_rest)
{
	struct ctx c = { 0 };
	struct job a = { 0 }, b = { 0 }, d = { 0 };
	sem_t started;

	sem_init(&started, 0, 0);
	ctx_start(&c, 1);
	a.started = &started;
	a.sleep_ms = 150;		/* stop is called well before it ends */
	worker_submit(c.w, job_fn, &a);
	worker_submit(c.w, job_fn, &b);
	worker_submit(c.w, job_fn, &d);
	sem_wait(&started);
	ctx_stop(&c);
	ck_assert_int_eq(a.ran, 1);		/* finished before stop returned */
	ck_assert_int_eq(b.ran, 0);
	ck_assert_int_eq(d.ran, 0);
	ck_assert_int_eq(c.ndone, 0);		/* the owner settles them */
	ck_assert_int_eq(c.nsettled, 3);
	ck_assert_ptr_eq(c.settled[0], &a);
	ck_assert_int_eq(c.settled_ran[0], 1);
	ck_assert_ptr_eq(c.settled[1], &b);
	ck_assert_int_eq(c.settled_ran[1], 0);
	ck_assert_ptr_eq(c.settled[2], &d);
	ck_assert_int_eq(c.settled_ran[2], 0);
	sem_destroy(&started);
}
END_TEST

/* A job that finished but was not collected by the loop yet is settled
 * as ran. */
START_TEST(test_stop_settles_finished_uncollected)
{
	struct ctx c = { 0 };
	struct job a = { 0 };

	ctx_start(&c, 2);
	worker_submit(c.w, job_fn, &a);
	usleep(100 * 1000);			/* the loop never runs */
	ctx_stop(&c);
	ck_assert_int_eq(a.ran, 1);
	ck_assert_int_eq(c.ndone, 0);
	ck_assert_int_eq(c.nsettled, 1);
	ck_assert_int_eq(c.settled_ran[0], 1);
}
END_TEST

START_TEST(test_zero_threads_refused)
{
	struct ev_loop *loop = ev_loop_new();
	struct worker *w = NULL;
	const char *error = NULL;

	ck_assert_int_eq(worker_start(loop, 0, done_fn, NULL, &w, &error), -1);
	ck_assert_ptr_null(w);
	ck_assert_ptr_nonnull(error);
	ev_loop_free(&loop);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_job_runs_in_thread_then_done_on_loop);
	tcase_add_test(tc, test_queue_is_fifo);
	tcase_add_test(tc, test_pool_runs_jobs_concurrently);
	tcase_add_test(tc, test_every_job_done_once);
	tcase_add_test(tc, test_cancel_queued_only);
	tcase_add_test(tc, test_stop_waits_for_running_and_settles_the_rest);
	tcase_add_test(tc, test_stop_settles_finished_uncollected);
	tcase_add_test(tc, test_zero_threads_refused);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
