/*
 * Unit tests for lib/worker.c: a job runs in the thread, done() runs on
 * the loop afterwards, busy covers exactly that span, and stop waits for a
 * job in flight without calling done().
 */
#include "autoconf.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "check_util.h"
#include "ev.h"
#include "worker.h"

struct job {
	pthread_t ran_in;
	int ran;
	int sleep_ms;
};

struct ctx {
	struct ev_loop *loop;
	struct worker *w;
	struct job *done_job;
	int done_calls;
	int busy_in_done;
};

static void
job_fn(void *arg)
{
	struct job *j = arg;

	if (j->sleep_ms > 0)
		usleep((useconds_t)j->sleep_ms * 1000);
	j->ran_in = pthread_self();
	j->ran = 1;
}

static void
done_fn(void *job, void *arg)
{
	struct ctx *c = arg;

	c->done_job = job;
	c->done_calls++;
	c->busy_in_done = worker_busy(c->w);
	ev_break(c->loop);
}

/* Fail the test instead of hanging. */
static void
too_slow(struct ev_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	ck_abort_msg("worker job never finished");
}

START_TEST(test_job_runs_in_thread_then_done_on_loop)
{
	struct ctx c = { 0 };
	struct job j = { 0 };
	struct ev_timer *guard;
	const char *error;

	c.loop = ev_loop_new();
	ck_assert_int_eq(worker_start(c.loop, done_fn, &c, &c.w, &error), 0);
	ck_assert_int_eq(worker_busy(c.w), 0);
	j.sleep_ms = 50;
	worker_submit(c.w, job_fn, &j);
	ck_assert_int_eq(worker_busy(c.w), 1);
	guard = ev_timer_add(c.loop, 5000, 0, too_slow, NULL);
	ck_assert_int_eq(ev_run(c.loop), 0);
	ck_assert_int_eq(j.ran, 1);
	ck_assert(!pthread_equal(j.ran_in, pthread_self()));
	ck_assert_int_eq(c.done_calls, 1);
	ck_assert_ptr_eq(c.done_job, &j);
	ck_assert_int_eq(c.busy_in_done, 0);	/* a new job may go from done() */
	ev_timer_del(&guard);
	worker_stop(&c.w);
	ck_assert_ptr_null(c.w);
	ev_loop_free(&c.loop);
}
END_TEST

START_TEST(test_stop_waits_for_job_in_flight)
{
	struct ctx c = { 0 };
	struct job j = { 0 };
	const char *error;

	c.loop = ev_loop_new();
	ck_assert_int_eq(worker_start(c.loop, done_fn, &c, &c.w, &error), 0);
	j.sleep_ms = 100;
	worker_submit(c.w, job_fn, &j);
	worker_stop(&c.w);
	ck_assert_int_eq(j.ran, 1);		/* finished before stop returned */
	ck_assert_int_eq(c.done_calls, 0);	/* the owner settles it itself */
	ev_loop_free(&c.loop);
}
END_TEST

START_TEST(test_submit_while_busy_panics)
{
	struct ctx c = { 0 };
	struct job j = { 0 };
	const char *error;

	c.loop = ev_loop_new();
	ck_assert_int_eq(worker_start(c.loop, done_fn, &c, &c.w, &error), 0);
	j.sleep_ms = 200;
	worker_submit(c.w, job_fn, &j);
	worker_submit(c.w, job_fn, &j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_job_runs_in_thread_then_done_on_loop);
	tcase_add_test(tc, test_stop_waits_for_job_in_flight);
	tcase_add_test_raise_signal(tc, test_submit_while_busy_panics, SIGABRT);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
