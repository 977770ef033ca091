/*
 * ev: postern's small level-triggered epoll loop.  One iteration waits in
 * epoll_wait(), dispatches the batch of fd events, fires the timers that
 * are due, runs the deferred calls, and only then frees the watches that
 * were removed (and closes the fds passed to ev_io_close()) meanwhile, so
 * no callback ever sees an event for a watch that is gone or for an fd
 * number that was reused.  Timers live in a binary min-heap ordered by
 * deadline, then by arming order; signals arrive through one signalfd.
 *
 * Adding a watch to epoll (ev_io_add) and removing it (ev_io_del/close)
 * happen at once, but ev_io_set() only notes the new interest; the changes
 * go to epoll just before the next epoll_wait(), so a stream that asks for
 * EV_WRITE and drops it within one batch costs no system call.  Dropping
 * EV_READ (a stream pausing its input while it waits for something) is
 * lazier still: epoll keeps EPOLLIN until an event actually comes for the
 * paused watch, and only then is it taken out, so a pause during which the
 * peer sends nothing costs nothing.  Events are always filtered through the
 * owner's current interest, so a late change never lets one through, and
 * the fd is in epoll for no longer than its watch exists.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "ev.h"
#include "log.h"
#include "xalloc.h"

#define EV_MAX_EVENTS 64
#define EV_NO_HEAP SIZE_MAX

struct ev_io {
	struct ev_loop *loop;
	int fd;
	int interest;		/* what the owner asked for */
	int kernel;		/* what epoll has (differs while dirty) */
	int dirty;		/* on loop->dirty: a change is due */
	int exact;		/* drop the lazily kept EPOLLIN too */
	int dead;		/* removed: no more events, freed at batch end */
	int close_fd;		/* close fd when freed */
	int internal;		/* the loop's own signalfd watch */
	ev_io_fn *fn;
	void *arg;
	struct ev_io *prev, *next;	/* loop->ios, or loop->dead_ios */
	struct ev_io *dprev, *dnext;	/* loop->dirty */
};

struct ev_timer {
	struct ev_loop *loop;
	uint64_t when;		/* deadline, loop clock ms */
	uint64_t seq;		/* arming order, breaks ties */
	uint64_t ms;
	int repeat;
	int dead;
	size_t heap_idx;	/* EV_NO_HEAP when not armed */
	ev_timer_fn *fn;
	void *arg;
	struct ev_timer *prev, *next;	/* loop->timers, or loop->dead_timers */
};

struct ev_deferred {
	ev_defer_fn *fn;
	void *arg;
	struct ev_deferred *next;
};

struct ev_sighandler {
	ev_signal_fn *fn;
	void *arg;
};

struct ev_loop {
	int epfd;
	uint64_t now;
	int broken;
	int dispatching;
	size_t nactive;		/* non-internal watches with interest != 0 */

	struct ev_io *ios;	/* live watches */
	struct ev_io *dead_ios;	/* removed during this batch */
	struct ev_io *dirty;	/* watches with an epoll change due */

	struct ev_timer **heap;	/* armed timers */
	size_t heap_len, heap_cap;
	uint64_t timer_seq;
	struct ev_timer *timers;	/* every live timer, armed or not */
	struct ev_timer *dead_timers;

	struct ev_deferred *defer_head, *defer_tail;	/* queued */
	struct ev_deferred *run_head;	/* being run now */

	int sigfd;
	struct ev_io *sigio;
	sigset_t sigmask;	/* signals delivered through sigfd */
	size_t nsignals;
	struct ev_sighandler sig[_NSIG];

	struct epoll_event events[EV_MAX_EVENTS];
};

/*
 * Process-wide signal state: the mask before the first ev_signal_add(),
 * the signals any loop delivered, and SIGPIPE's original disposition.  It
 * is per process by nature and only read after fork by
 * ev_child_reset_signals().
 */
static struct {
	int mask_saved;
	sigset_t orig_mask;
	sigset_t used;
	int pipe_saved;
	struct sigaction orig_pipe;
} ev_sigstate;

/* The monotonic clock in milliseconds. */
static uint64_t
ev_clock_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		log_fatal("event=clock_gettime_failed error=\"%s\"", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Unlink a watch from a doubly linked list headed by *head. */
static void
io_unlink(struct ev_io **head, struct ev_io *io)
{
	if (io->prev != NULL)
		io->prev->next = io->next;
	else
		*head = io->next;
	if (io->next != NULL)
		io->next->prev = io->prev;
	io->prev = io->next = NULL;
}

/* Push a watch at the front of a doubly linked list. */
static void
io_link(struct ev_io **head, struct ev_io *io)
{
	io->prev = NULL;
	io->next = *head;
	if (*head != NULL)
		(*head)->prev = io;
	*head = io;
}

/* Unlink a timer from a doubly linked list headed by *head. */
static void
timer_unlink(struct ev_timer **head, struct ev_timer *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		*head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
}

/* Push a timer at the front of a doubly linked list. */
static void
timer_link(struct ev_timer **head, struct ev_timer *t)
{
	t->prev = NULL;
	t->next = *head;
	if (*head != NULL)
		(*head)->prev = t;
	*head = t;
}

struct ev_loop *
ev_loop_new(void)
{
	struct ev_loop *loop = xcalloc(1, sizeof(*loop));
	struct sigaction sa;

	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		log_fatal("event=epoll_create_failed error=\"%s\"", strerror(errno));
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	loop->now = ev_clock_ms();

	if (!ev_sigstate.pipe_saved) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGPIPE, &sa, &ev_sigstate.orig_pipe) < 0)
			log_fatal("event=sigaction_failed signal=SIGPIPE error=\"%s\"",
			    strerror(errno));
		ev_sigstate.pipe_saved = 1;
	}
	return loop;
}

/* Free one watch, closing its fd if ev_io_close() asked for it. */
static void
io_destroy(struct ev_io *io)
{
	if (io->close_fd)
		(void)close(io->fd);
	free(io);
}

/* Free the watches and timers removed during the batch just finished. */
static void
ev_reap(struct ev_loop *loop)
{
	struct ev_io *io;
	struct ev_timer *t;

	while ((io = loop->dead_ios) != NULL) {
		io_unlink(&loop->dead_ios, io);
		io_destroy(io);
	}
	while ((t = loop->dead_timers) != NULL) {
		timer_unlink(&loop->dead_timers, t);
		free(t);
	}
}

void
ev_loop_free(struct ev_loop **loopp)
{
	struct ev_loop *loop = *loopp;
	struct ev_io *io;
	struct ev_timer *t;
	struct ev_deferred *d;
	int signo;

	if (loop == NULL)
		return;
	*loopp = NULL;
	for (signo = 1; signo < _NSIG; signo++)
		if (loop->sig[signo].fn != NULL)
			ev_signal_del(loop, signo);
	ev_reap(loop);
	while ((io = loop->ios) != NULL) {
		io_unlink(&loop->ios, io);
		if (io->internal)
			io->close_fd = 1;
		io_destroy(io);
	}
	while ((t = loop->timers) != NULL) {
		timer_unlink(&loop->timers, t);
		free(t);
	}
	while ((d = loop->defer_head) != NULL) {
		loop->defer_head = d->next;
		free(d);
	}
	while ((d = loop->run_head) != NULL) {
		loop->run_head = d->next;
		free(d);
	}
	free(loop->heap);
	(void)close(loop->epfd);
	free(loop);
}

uint64_t
ev_now(struct ev_loop *loop)
{
	return loop->now;
}

void
ev_break(struct ev_loop *loop)
{
	loop->broken = 1;
}

/* ---- fd watches ---- */

/* Take a watch off the loop's dirty list. */
static void
io_undirty(struct ev_io *io)
{
	if (!io->dirty)
		return;
	if (io->dprev != NULL)
		io->dprev->dnext = io->dnext;
	else
		io->loop->dirty = io->dnext;
	if (io->dnext != NULL)
		io->dnext->dprev = io->dprev;
	io->dprev = io->dnext = NULL;
	io->dirty = 0;
}

/* Tell epoll that the watch now wants interest (op ADD, MOD or DEL). */
static void
io_epoll(struct ev_io *io, int op, int interest)
{
	struct epoll_event ee;

	memset(&ee, 0, sizeof(ee));
	ee.data.ptr = io;
	if (interest & EV_READ)
		ee.events |= EPOLLIN;
	if (interest & EV_WRITE)
		ee.events |= EPOLLOUT;
	if (epoll_ctl(io->loop->epfd, op, io->fd, &ee) < 0) {
		/* The owner may already have closed the fd; that removed it. */
		if (op != EPOLL_CTL_DEL)
			log_fatal("event=epoll_ctl_failed fd=%d op=%d "
			    "error=\"%s\"", io->fd, op, strerror(errno));
	}
	io->kernel = interest;
}

/*
 * Bring epoll in line with the watch's interest: exactly if exact != 0,
 * else keeping an EPOLLIN the watch no longer wants (see the file comment).
 */
static void
io_sync(struct ev_io *io, int exact)
{
	int want = io->interest;

	io_undirty(io);
	io->exact = 0;
	if (!exact)
		want |= io->kernel & EV_READ;
	if (want == io->kernel)
		return;
	if (want == 0)
		io_epoll(io, EPOLL_CTL_DEL, 0);
	else if (io->kernel == 0)
		io_epoll(io, EPOLL_CTL_ADD, want);
	else
		io_epoll(io, EPOLL_CTL_MOD, want);
}

/* Put a watch on the dirty list for ev_apply_dirty(). */
static void
io_dirty(struct ev_io *io)
{
	if (io->dirty)
		return;
	io->dirty = 1;
	io->dprev = NULL;
	io->dnext = io->loop->dirty;
	if (io->dnext != NULL)
		io->dnext->dprev = io;
	io->loop->dirty = io;
}

/*
 * Set a watch's interest.  With now != 0 epoll learns it at once; else the
 * watch goes on the dirty list for ev_apply_dirty().
 */
static void
io_apply(struct ev_io *io, int interest, int now)
{
	int old = io->interest;

	io->interest = interest;
	if (!io->internal) {
		if (old == 0 && interest != 0)
			io->loop->nactive++;
		else if (old != 0 && interest == 0)
			io->loop->nactive--;
	}
	if (now)
		io_sync(io, 1);
	else if (interest != io->kernel)
		io_dirty(io);
}

/* Send the interest changes noted during the batch to epoll. */
static void
ev_apply_dirty(struct ev_loop *loop)
{
	while (loop->dirty != NULL)
		io_sync(loop->dirty, loop->dirty->exact);
}

struct ev_io *
ev_io_add(struct ev_loop *loop, int fd, int interest, ev_io_fn *fn, void *arg)
{
	struct ev_io *io = xcalloc(1, sizeof(*io));

	io->loop = loop;
	io->fd = fd;
	io->fn = fn;
	io->arg = arg;
	io_link(&loop->ios, io);
	io_apply(io, interest & (EV_READ | EV_WRITE), 1);
	return io;
}

void
ev_io_set(struct ev_io *io, int interest)
{
	interest &= EV_READ | EV_WRITE;
	if (io->dead)
		log_panic("event=ev_io_set_on_removed_watch fd=%d", io->fd);
	io_apply(io, interest, 0);
}

int
ev_io_interest(const struct ev_io *io)
{
	return io->interest;
}

/* Remove a watch; free it now or, while dispatching, at the batch end. */
static void
io_remove(struct ev_io *io, int close_fd)
{
	struct ev_loop *loop = io->loop;

	io_apply(io, 0, 1);
	io->dead = 1;
	io->close_fd = close_fd;
	io_unlink(&loop->ios, io);
	if (loop->dispatching)
		io_link(&loop->dead_ios, io);
	else
		io_destroy(io);
}

void
ev_io_del(struct ev_io **iop)
{
	struct ev_io *io = *iop;

	if (io == NULL)
		return;
	*iop = NULL;
	io_remove(io, 0);
}

void
ev_io_close(struct ev_io **iop)
{
	struct ev_io *io = *iop;

	if (io == NULL)
		return;
	*iop = NULL;
	io_remove(io, 1);
}

/* ---- timers ---- */

/* Whether timer a fires before timer b. */
static int
timer_before(const struct ev_timer *a, const struct ev_timer *b)
{
	if (a->when != b->when)
		return a->when < b->when;
	return a->seq < b->seq;
}

/* Place t at heap slot i. */
static void
heap_set(struct ev_loop *loop, size_t i, struct ev_timer *t)
{
	loop->heap[i] = t;
	t->heap_idx = i;
}

/* Move the timer at slot i up towards the root while it sorts earlier. */
static void
heap_up(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

/* Move the timer at slot i down while a child sorts earlier. */
static void
heap_down(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= loop->heap_len)
			break;
		if (c + 1 < loop->heap_len &&
		    timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!timer_before(loop->heap[c], t))
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

/* Take t out of the heap if it is armed. */
static void
heap_remove(struct ev_loop *loop, struct ev_timer *t)
{
	size_t i = t->heap_idx;
	struct ev_timer *last;

	if (i == EV_NO_HEAP)
		return;
	t->heap_idx = EV_NO_HEAP;
	last = loop->heap[--loop->heap_len];
	if (last == t)
		return;
	heap_set(loop, i, last);
	heap_up(loop, i);
	heap_down(loop, last->heap_idx);
}

/* Arm t to fire ms from the loop's current time. */
static void
timer_arm(struct ev_timer *t, uint64_t ms)
{
	struct ev_loop *loop = t->loop;

	heap_remove(loop, t);
	t->when = loop->now + ms;
	t->seq = loop->timer_seq++;
	if (loop->heap_len == loop->heap_cap) {
		loop->heap_cap = loop->heap_cap ? xmul(loop->heap_cap, 2) : 16;
		loop->heap = xreallocarray(loop->heap, loop->heap_cap,
		    sizeof(*loop->heap));
	}
	heap_set(loop, loop->heap_len++, t);
	heap_up(loop, t->heap_idx);
}

struct ev_timer *
ev_timer_add(struct ev_loop *loop, uint64_t ms, int repeat, ev_timer_fn *fn,
    void *arg)
{
	struct ev_timer *t = xcalloc(1, sizeof(*t));

	t->loop = loop;
	t->ms = ms;
	t->repeat = repeat != 0;
	t->fn = fn;
	t->arg = arg;
	t->heap_idx = EV_NO_HEAP;
	timer_link(&loop->timers, t);
	timer_arm(t, ms);
	return t;
}

void
ev_timer_reset(struct ev_timer *t, uint64_t ms)
{
	if (t->dead)
		log_panic("event=ev_timer_reset_on_deleted_timer");
	t->ms = ms;
	timer_arm(t, ms);
}

void
ev_timer_del(struct ev_timer **tp)
{
	struct ev_timer *t = *tp;
	struct ev_loop *loop;

	if (t == NULL)
		return;
	*tp = NULL;
	loop = t->loop;
	heap_remove(loop, t);
	timer_unlink(&loop->timers, t);
	t->dead = 1;
	if (loop->dispatching)
		timer_link(&loop->dead_timers, t);
	else
		free(t);
}

/*
 * Fire the timers that are due.  Timers armed during this pass (a repeat,
 * or a reset from a callback) wait for the next iteration, so a zero
 * interval cannot starve the loop.
 */
static void
ev_fire_timers(struct ev_loop *loop)
{
	uint64_t limit = loop->timer_seq;
	struct ev_timer *t;

	while (loop->heap_len > 0) {
		t = loop->heap[0];
		if (t->when > loop->now || t->seq >= limit)
			break;
		heap_remove(loop, t);
		if (t->repeat)
			timer_arm(t, t->ms);
		t->fn(t, t->arg);
	}
}

/* ---- deferred calls ---- */

void
ev_defer(struct ev_loop *loop, ev_defer_fn *fn, void *arg)
{
	struct ev_deferred *d = xmalloc(sizeof(*d));

	d->fn = fn;
	d->arg = arg;
	d->next = NULL;
	if (loop->defer_tail != NULL)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
}

/* Remove the entries for fn/arg from the list at *headp; returns the new
 * last element. */
static struct ev_deferred *
defer_filter(struct ev_deferred **headp, ev_defer_fn *fn, void *arg)
{
	struct ev_deferred **pp = headp, *d, *last = NULL;

	while ((d = *pp) != NULL) {
		if (d->fn == fn && d->arg == arg) {
			*pp = d->next;
			free(d);
		} else {
			last = d;
			pp = &d->next;
		}
	}
	return last;
}

void
ev_defer_cancel(struct ev_loop *loop, ev_defer_fn *fn, void *arg)
{
	loop->defer_tail = defer_filter(&loop->defer_head, fn, arg);
	(void)defer_filter(&loop->run_head, fn, arg);
}

/* Run the deferred calls queued so far; ones they add wait for the next
 * iteration. */
static void
ev_run_deferred(struct ev_loop *loop)
{
	struct ev_deferred *d;

	loop->run_head = loop->defer_head;
	loop->defer_head = loop->defer_tail = NULL;
	while ((d = loop->run_head) != NULL) {
		loop->run_head = d->next;
		d->fn(d->arg);
		free(d);
	}
}

/* ---- signals ---- */

/* Read the queued signals from the signalfd and call their handlers. */
static void
ev_signal_read(struct ev_io *io, int fd, int events, void *arg)
{
	struct ev_loop *loop = arg;
	struct signalfd_siginfo si;
	ssize_t n;

	(void)io;
	(void)events;
	for (;;) {
		n = read(fd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			break;
		if (si.ssi_signo > 0 && si.ssi_signo < _NSIG &&
		    loop->sig[si.ssi_signo].fn != NULL)
			loop->sig[si.ssi_signo].fn((int)si.ssi_signo,
			    loop->sig[si.ssi_signo].arg);
	}
}

int
ev_signal_add(struct ev_loop *loop, int signo, ev_signal_fn *fn, void *arg)
{
	sigset_t one;
	int fd;

	if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP) {
		errno = EINVAL;
		return -1;
	}
	if (!ev_sigstate.mask_saved) {
		if (sigprocmask(SIG_BLOCK, NULL, &ev_sigstate.orig_mask) < 0)
			return -1;
		sigemptyset(&ev_sigstate.used);
		ev_sigstate.mask_saved = 1;
	}
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
		return -1;
	if (sigaddset(&loop->sigmask, signo) < 0)
		return -1;
	fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		int saved = errno;

		sigdelset(&loop->sigmask, signo);
		if (!sigismember(&ev_sigstate.orig_mask, signo))
			(void)sigprocmask(SIG_UNBLOCK, &one, NULL);
		errno = saved;
		return -1;
	}
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		loop->sigio = ev_io_add(loop, fd, 0, ev_signal_read, loop);
		loop->sigio->internal = 1;
		ev_io_set(loop->sigio, EV_READ);
	}
	sigaddset(&ev_sigstate.used, signo);
	if (loop->sig[signo].fn == NULL)
		loop->nsignals++;
	loop->sig[signo].fn = fn;
	loop->sig[signo].arg = arg;
	return 0;
}

void
ev_signal_del(struct ev_loop *loop, int signo)
{
	sigset_t one;

	if (signo <= 0 || signo >= _NSIG || loop->sig[signo].fn == NULL)
		return;
	loop->sig[signo].fn = NULL;
	loop->sig[signo].arg = NULL;
	loop->nsignals--;
	sigdelset(&loop->sigmask, signo);
	if (signalfd(loop->sigfd, &loop->sigmask, 0) < 0)
		log_warn("event=signalfd_update_failed error=\"%s\"", strerror(errno));
	if (!sigismember(&ev_sigstate.orig_mask, signo)) {
		sigemptyset(&one);
		sigaddset(&one, signo);
		(void)sigprocmask(SIG_UNBLOCK, &one, NULL);
	}
	if (loop->nsignals == 0 && loop->sigio != NULL) {
		ev_io_close(&loop->sigio);
		loop->sigfd = -1;
	}
}

void
ev_child_reset_signals(void)
{
	struct sigaction sa;
	int signo;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	if (ev_sigstate.mask_saved) {
		for (signo = 1; signo < _NSIG; signo++)
			if (sigismember(&ev_sigstate.used, signo) == 1)
				(void)sigaction(signo, &sa, NULL);
	}
	if (ev_sigstate.pipe_saved)
		(void)sigaction(SIGPIPE, &ev_sigstate.orig_pipe, NULL);
	if (ev_sigstate.mask_saved)
		(void)sigprocmask(SIG_SETMASK, &ev_sigstate.orig_mask, NULL);
}

/* ---- the loop ---- */

/* Whether anything could still make a callback run. */
static int
ev_has_work(const struct ev_loop *loop)
{
	return loop->nactive > 0 || loop->heap_len > 0 || loop->nsignals > 0 ||
	    loop->defer_head != NULL;
}

/* The epoll_wait timeout: 0 with deferred calls, the next timer, or -1. */
static int
ev_timeout(const struct ev_loop *loop)
{
	uint64_t when;

	if (loop->defer_head != NULL)
		return 0;
	if (loop->heap_len == 0)
		return -1;
	when = loop->heap[0]->when;
	if (when <= loop->now)
		return 0;
	if (when - loop->now > INT_MAX)
		return INT_MAX;
	return (int)(when - loop->now);
}

/* Dispatch one epoll event to its watch, unless it was removed or no
 * longer wants what happened. */
static void
ev_dispatch_io(const struct epoll_event *ee)
{
	struct ev_io *io = ee->data.ptr;
	int events = 0;

	if (io->dead)
		return;
	if ((io->kernel & EV_READ) && !(io->interest & EV_READ) &&
	    (ee->events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
		/* Input for a paused watch: take EPOLLIN out now. */
		io->exact = 1;
		io_dirty(io);
	}
	if (io->interest == 0)
		return;
	if (ee->events & EPOLLIN)
		events |= EV_READ;
	if (ee->events & EPOLLOUT)
		events |= EV_WRITE;
	if (ee->events & (EPOLLERR | EPOLLHUP))
		events |= EV_ERROR | io->interest;
	events &= io->interest | EV_ERROR;
	if ((events & (EV_READ | EV_WRITE)) == 0)
		return;
	io->fn(io, io->fd, events, io->arg);
}

int
ev_run(struct ev_loop *loop)
{
	int i, n;

	loop->broken = 0;
	loop->now = ev_clock_ms();
	while (!loop->broken && ev_has_work(loop)) {
		ev_apply_dirty(loop);
		n = epoll_wait(loop->epfd, loop->events, EV_MAX_EVENTS,
		    ev_timeout(loop));
		if (n < 0 && errno != EINTR) {
			log_error("event=epoll_wait_failed error=\"%s\"",
			    strerror(errno));
			return -1;
		}
		loop->now = ev_clock_ms();
		loop->dispatching = 1;
		for (i = 0; i < n; i++)
			ev_dispatch_io(&loop->events[i]);
		ev_fire_timers(loop);
		ev_run_deferred(loop);
		loop->dispatching = 0;
		ev_reap(loop);
	}
	return 0;
}
