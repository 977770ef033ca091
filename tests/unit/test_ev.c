/*
 * Unit tests for lib/core/ev: timer order and repeat, deferred call order,
 * removing and closing watches inside a batch, lazily applied interest
 * changes, signals through signalfd, break, and ev_run() returning when
 * idle.  Every loop that could hang runs with a guard timer that breaks it
 * and fails the test.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_util.h"
#include "ev.h"

#define GUARD_MS 3000

/* Shared state for one test's callbacks. */
struct tstate {
	struct ev_loop *loop;
	struct ev_timer *guard;
	int timed_out;
	char order[32];
	size_t norder;
	int count;
	struct ev_timer *timers[8];
	struct ev_io *ios[2];
	int fds[2][2];
	int fd_open_in_batch;
	int closing_fd;
	int kept;
};

/* The guard timer: the test took too long. */
static void
guard_cb(struct ev_timer *t, void *arg)
{
	struct tstate *st = arg;

	(void)t;
	st->timed_out = 1;
	ev_break(st->loop);
}

/* Start a test: a loop and a guard timer. */
static void
tstate_init(struct tstate *st)
{
	memset(st, 0, sizeof(*st));
	st->loop = ev_loop_new();
	st->guard = ev_timer_add(st->loop, GUARD_MS, 0, guard_cb, st);
}

/* Record one event letter. */
static void
record(struct tstate *st, char c)
{
	ck_assert_uint_lt(st->norder, sizeof(st->order) - 1);
	st->order[st->norder++] = c;
	st->order[st->norder] = '\0';
}

START_TEST(test_idle_returns)
{
	struct ev_loop *loop = ev_loop_new();
	int sv[2];
	struct ev_io *io;

	ck_assert_int_eq(ev_run(loop), 0);
	/* A paused watch is nothing to wait for. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io = ev_io_add(loop, sv[0], 0, NULL, NULL);
	ck_assert_int_eq(ev_io_interest(io), 0);
	ck_assert_int_eq(ev_run(loop), 0);
	ev_io_del(&io);
	ck_assert_ptr_null(io);
	close(sv[0]);
	close(sv[1]);
	ev_loop_free(&loop);
	ck_assert_ptr_null(loop);
}
END_TEST

/* A one-shot timer: record its letter (the index in st->timers). */
static void
order_timer_cb(struct ev_timer *t, void *arg)
{
	struct tstate *st = arg;
	size_t i;

	for (i = 0; i < 8; i++)
		if (st->timers[i] == t)
			record(st, (char)('a' + i));
	if (st->norder == 5)
		ev_timer_del(&st->guard);
}

START_TEST(test_timer_order)
{
	static const uint64_t ms[5] = { 30, 10, 20, 10, 0 };
	struct tstate st;
	uint64_t start;
	size_t i;

	tstate_init(&st);
	start = ev_now(st.loop);
	for (i = 0; i < 5; i++)
		st.timers[i] = ev_timer_add(st.loop, ms[i], 0, order_timer_cb, &st);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(st.timed_out, 0);
	/* By deadline, equal deadlines in the order they were added. */
	ck_assert_str_eq(st.order, "ebdca");
	ck_assert_uint_ge(ev_now(st.loop) - start, 30);
	for (i = 0; i < 5; i++)
		ev_timer_del(&st.timers[i]);
	ev_loop_free(&st.loop);
}
END_TEST

/* A repeating timer that deletes itself on its third run. */
static void
repeat_cb(struct ev_timer *t, void *arg)
{
	struct tstate *st = arg;

	(void)t;
	if (++st->count == 3) {
		ev_timer_del(&st->timers[0]);
		ev_timer_del(&st->guard);
	}
}

START_TEST(test_timer_repeat)
{
	struct tstate st;
	uint64_t start;

	tstate_init(&st);
	start = ev_now(st.loop);
	st.timers[0] = ev_timer_add(st.loop, 5, 1, repeat_cb, &st);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(st.timed_out, 0);
	ck_assert_int_eq(st.count, 3);
	ck_assert_ptr_null(st.timers[0]);
	ck_assert_uint_ge(ev_now(st.loop) - start, 15);
	ev_loop_free(&st.loop);
}
END_TEST

/* A one-shot timer re-armed twice by ev_timer_reset(). */
static void
reset_cb(struct ev_timer *t, void *arg)
{
	struct tstate *st = arg;

	if (++st->count < 3)
		ev_timer_reset(t, 0);
}

START_TEST(test_timer_reset_zero)
{
	struct tstate st;

	tstate_init(&st);
	st.timers[0] = ev_timer_add(st.loop, 0, 0, reset_cb, &st);
	ev_timer_del(&st.guard);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(st.count, 3);
	ev_timer_del(&st.timers[0]);
	ev_loop_free(&st.loop);
}
END_TEST

static void defer_d(void *arg);

/* Deferred calls: each records its letter; 'a' queues 'd'. */
static void
defer_a(void *arg)
{
	struct tstate *st = arg;

	record(st, 'a');
	ev_defer(st->loop, defer_d, st);
}

static void
defer_b(void *arg)
{
	record(arg, 'b');
}

static void
defer_c(void *arg)
{
	record(arg, 'c');
}

static void
defer_d(void *arg)
{
	record(arg, 'd');
}

START_TEST(test_defer_order)
{
	struct tstate st;

	tstate_init(&st);
	ev_timer_del(&st.guard);
	ev_defer(st.loop, defer_a, &st);
	ev_defer(st.loop, defer_b, &st);
	ev_defer(st.loop, defer_c, &st);
	ev_defer(st.loop, defer_b, NULL);
	ev_defer_cancel(st.loop, defer_b, NULL);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_str_eq(st.order, "abcd");
	ev_loop_free(&st.loop);
}
END_TEST

/* Deferred call that cancels another one queued in the same run. */
static void
defer_cancel_b(void *arg)
{
	struct tstate *st = arg;

	record(st, 'x');
	ev_defer_cancel(st->loop, defer_b, st);
}

START_TEST(test_defer_cancel_inside)
{
	struct tstate st;

	tstate_init(&st);
	ev_timer_del(&st.guard);
	ev_defer(st.loop, defer_cancel_b, &st);
	ev_defer(st.loop, defer_b, &st);
	ev_defer(st.loop, defer_c, &st);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_str_eq(st.order, "xc");
	ev_loop_free(&st.loop);
}
END_TEST

/* Make two socketpairs whose first ends are readable. */
static void
make_ready_pairs(struct tstate *st)
{
	int i;

	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK,
		    0, st->fds[i]), 0);
		ck_assert_int_eq(write(st->fds[i][1], "x", 1), 1);
	}
}

/* Both watches are ready in one batch; the first to run removes the
 * other, then itself. */
static void
remove_other_cb(struct ev_io *io, int fd, int events, void *arg)
{
	struct tstate *st = arg;
	int me = st->ios[0] == io ? 0 : 1;

	(void)fd;
	ck_assert(events & EV_READ);
	record(st, (char)('0' + me));
	ev_io_del(&st->ios[1 - me]);
	ev_io_del(&st->ios[me]);
}

START_TEST(test_remove_in_batch)
{
	struct tstate st;
	int i;

	tstate_init(&st);
	ev_timer_del(&st.guard);
	make_ready_pairs(&st);
	for (i = 0; i < 2; i++)
		st.ios[i] = ev_io_add(st.loop, st.fds[i][0], EV_READ,
		    remove_other_cb, &st);
	ck_assert_int_eq(ev_run(st.loop), 0);
	/* Exactly one callback: the other watch got no stale event. */
	ck_assert_uint_eq(st.norder, 1);
	for (i = 0; i < 2; i++) {
		close(st.fds[i][0]);
		close(st.fds[i][1]);
	}
	ev_loop_free(&st.loop);
}
END_TEST

/* Deferred check: the closed fd is still open until the batch ends. */
static void
check_open_cb(void *arg)
{
	struct tstate *st = arg;

	st->fd_open_in_batch = fcntl(st->closing_fd, F_GETFD) >= 0;
}

/* Close the other watch's fd with ev_io_close(), pause our own. */
static void
close_other_cb(struct ev_io *io, int fd, int events, void *arg)
{
	struct tstate *st = arg;
	int me = st->ios[0] == io ? 0 : 1;
	int other = 1 - me;

	(void)fd;
	(void)events;
	record(st, (char)('0' + me));
	if (st->ios[other] != NULL) {
		st->closing_fd = st->fds[other][0];
		st->kept = me;
		ev_io_close(&st->ios[other]);
		ck_assert_int_ge(fcntl(st->closing_fd, F_GETFD), 0);
		ev_defer(st->loop, check_open_cb, st);
	}
	ev_io_set(io, 0);
}

START_TEST(test_close_at_batch_end)
{
	struct tstate st;
	int i;

	tstate_init(&st);
	ev_timer_del(&st.guard);
	make_ready_pairs(&st);
	for (i = 0; i < 2; i++)
		st.ios[i] = ev_io_add(st.loop, st.fds[i][0], EV_READ,
		    close_other_cb, &st);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_uint_eq(st.norder, 1);
	ck_assert_int_eq(st.fd_open_in_batch, 1);
	/* Closed once the batch ended. */
	errno = 0;
	ck_assert_int_lt(fcntl(st.closing_fd, F_GETFD), 0);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_ptr_nonnull(st.ios[st.kept]);
	ev_io_close(&st.ios[st.kept]);	/* outside a batch: closes at once */
	errno = 0;
	ck_assert_int_lt(fcntl(st.fds[st.kept][0], F_GETFD), 0);
	close(st.fds[0][1]);
	close(st.fds[1][1]);
	ev_loop_free(&st.loop);
}
END_TEST

/* Record which events a watch saw; consume nothing. */
static void
count_events_cb(struct ev_io *io, int fd, int events, void *arg)
{
	struct tstate *st = arg;

	(void)io;
	(void)fd;
	if (events & EV_READ)
		record(st, 'r');
	if (events & EV_WRITE)
		record(st, 'w');
	ev_break(st->loop);
}

/* A timer that toggles the watch in one batch and ends up reading. */
static void
toggle_cb(struct ev_timer *t, void *arg)
{
	struct tstate *st = arg;

	(void)t;
	ev_io_set(st->ios[0], EV_READ | EV_WRITE);
	ev_io_set(st->ios[0], 0);
	ev_io_set(st->ios[0], EV_READ);
	ck_assert_int_eq(ev_io_interest(st->ios[0]), EV_READ);
	record(st, 't');
}

/* A timer that ends the loop. */
static void
stop_cb(struct ev_timer *t, void *arg)
{
	struct tstate *st = arg;

	(void)t;
	record(st, 's');
	ev_break(st->loop);
}

/*
 * Interest changes reach epoll lazily, yet no unwanted event gets through:
 * a paused watch on a readable (and writable) fd gets nothing and does not
 * make the loop spin, a write-only watch sees no reads, a change undone
 * within a batch leaves no trace, a watch added and deleted in one batch
 * can have its fd closed, and ev_run() returns when the only watch is
 * paused.
 */
START_TEST(test_set_lazy)
{
	struct tstate st;
	struct ev_timer *t;
	struct ev_io *gone;
	struct timespec c0, c1;
	int sv[2], sv2[2];

	tstate_init(&st);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	ck_assert_int_eq(write(sv[1], "x", 1), 1);	/* sv[0] readable */

	/* Added reading, paused at once: nothing for 100 ms, and no busy
	 * loop on the level-triggered input either. */
	st.ios[0] = ev_io_add(st.loop, sv[0], EV_READ, count_events_cb, &st);
	ev_io_set(st.ios[0], EV_WRITE);
	ev_io_set(st.ios[0], 0);
	t = ev_timer_add(st.loop, 100, 0, stop_cb, &st);
	ck_assert_int_eq(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0), 0);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1), 0);
	ck_assert_str_eq(st.order, "s");
	ck_assert_msg((c1.tv_sec - c0.tv_sec) * 1000 +
	    (c1.tv_nsec - c0.tv_nsec) / 1000000 < 50, "busy while paused");
	ev_timer_del(&t);

	/* Writing only, with input waiting: writes are reported, reads
	 * never. */
	st.norder = 0;
	st.order[0] = '\0';
	ev_io_set(st.ios[0], EV_WRITE);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_str_eq(st.order, "w");
	ev_io_set(st.ios[0], 0);
	st.norder = 0;
	st.order[0] = '\0';

	/* Paused across a wait, then toggled within a batch: reads only. */
	t = ev_timer_add(st.loop, 5, 0, toggle_cb, &st);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_str_eq(st.order, "tr");
	ev_timer_del(&t);

	/* Reading registered, write interest added and dropped in one
	 * batch: a 30 ms wait sees reads only, never a write. */
	st.norder = 0;
	st.order[0] = '\0';
	ev_io_set(st.ios[0], EV_READ | EV_WRITE);
	ev_io_set(st.ios[0], EV_READ);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_str_eq(st.order, "r");

	/* Write interest from a registered read watch: both come. */
	st.norder = 0;
	st.order[0] = '\0';
	ev_io_set(st.ios[0], EV_READ | EV_WRITE);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_str_eq(st.order, "rw");

	/* Added, changed and deleted in one go; its fd closed before the
	 * next wait. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv2), 0);
	gone = ev_io_add(st.loop, sv2[0], EV_READ, count_events_cb, &st);
	ev_io_set(gone, EV_READ | EV_WRITE);
	ev_io_del(&gone);
	close(sv2[0]);
	close(sv2[1]);

	/* Only a paused watch and no timer: ev_run() returns at once. */
	ev_timer_del(&st.guard);
	ev_io_set(st.ios[0], 0);
	st.norder = 0;
	st.order[0] = '\0';
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_str_eq(st.order, "");
	ev_io_del(&st.ios[0]);
	close(sv[0]);
	close(sv[1]);
	ev_loop_free(&st.loop);
}
END_TEST

/* EOF on a watched socket is reported as readable. */
static void
eof_cb(struct ev_io *io, int fd, int events, void *arg)
{
	struct tstate *st = arg;
	char c;

	ck_assert(events & EV_READ);
	ck_assert_int_eq(read(fd, &c, 1), 0);
	st->count++;
	ck_assert_ptr_eq(io, st->ios[0]);
	ev_io_del(&st->ios[0]);
}

START_TEST(test_io_eof)
{
	struct tstate st;
	int sv[2];

	tstate_init(&st);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	st.ios[0] = ev_io_add(st.loop, sv[0], EV_READ, eof_cb, &st);
	close(sv[1]);
	ev_timer_del(&st.guard);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(st.count, 1);
	close(sv[0]);
	ev_loop_free(&st.loop);
}
END_TEST

/* SIGUSR1 handler: count and break. */
static void
usr1_cb(int signo, void *arg)
{
	struct tstate *st = arg;

	ck_assert_int_eq(signo, SIGUSR1);
	st->count++;
	ev_break(st->loop);
}

/* Whether signo is blocked in this thread. */
static int
is_blocked(int signo)
{
	sigset_t cur;

	ck_assert_int_eq(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
	return sigismember(&cur, signo);
}

START_TEST(test_signal)
{
	struct tstate st;
	struct sigaction sa;
	pid_t pid;
	int status;

	tstate_init(&st);
	ck_assert_int_eq(is_blocked(SIGUSR1), 0);
	ck_assert_int_eq(ev_signal_add(st.loop, SIGUSR1, usr1_cb, &st), 0);
	ck_assert_int_eq(is_blocked(SIGUSR1), 1);
	ck_assert_int_eq(raise(SIGUSR1), 0);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(st.timed_out, 0);
	ck_assert_int_eq(st.count, 1);

	/* A child restores the original mask and SIGPIPE before exec. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		ev_child_reset_signals();
		if (is_blocked(SIGUSR1))
			_exit(2);
		if (sigaction(SIGPIPE, NULL, &sa) < 0 || sa.sa_handler != SIG_DFL)
			_exit(3);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);

	ev_signal_del(st.loop, SIGUSR1);
	ck_assert_int_eq(is_blocked(SIGUSR1), 0);
	ck_assert_int_eq(ev_signal_add(st.loop, SIGKILL, usr1_cb, &st), -1);
	ev_timer_del(&st.guard);
	ck_assert_int_eq(ev_run(st.loop), 0);	/* nothing left: idle */
	ev_loop_free(&st.loop);
}
END_TEST

/* A repeating timer that breaks the loop on its third run. */
static void
break_cb(struct ev_timer *t, void *arg)
{
	struct tstate *st = arg;

	(void)t;
	if (++st->count % 3 == 0)
		ev_break(st->loop);
}

START_TEST(test_break)
{
	struct tstate st;

	tstate_init(&st);
	st.timers[0] = ev_timer_add(st.loop, 1, 1, break_cb, &st);
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(st.timed_out, 0);
	ck_assert_int_eq(st.count, 3);
	/* Running again continues where it stopped. */
	ck_assert_int_eq(ev_run(st.loop), 0);
	ck_assert_int_eq(st.timed_out, 0);
	ck_assert_int_eq(st.count, 3 + 3);
	/* Freeing the loop frees the timers still registered. */
	ev_loop_free(&st.loop);
}
END_TEST

/* The suite. */
static Suite *
ev_suite(void)
{
	Suite *s = suite_create("ev");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_idle_returns);
	tcase_add_test(tc, test_timer_order);
	tcase_add_test(tc, test_timer_repeat);
	tcase_add_test(tc, test_timer_reset_zero);
	tcase_add_test(tc, test_defer_order);
	tcase_add_test(tc, test_defer_cancel_inside);
	tcase_add_test(tc, test_remove_in_batch);
	tcase_add_test(tc, test_close_at_batch_end);
	tcase_add_test(tc, test_set_lazy);
	tcase_add_test(tc, test_io_eof);
	tcase_add_test(tc, test_signal);
	tcase_add_test(tc, test_break);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run_suite(ev_suite());
}
