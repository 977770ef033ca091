/*
 * ev: postern's event loop.  Small and level-triggered over epoll, one per
 * process.  It offers fd watches, timers, signals (via signalfd), deferred
 * calls and run/break.  Watches removed while a batch of events is being
 * dispatched are only freed at the end of the batch, and no further events
 * are delivered for them, so a callback may remove any watch (its own or
 * another) at any time without a stale event firing.
 *
 * Callbacks run one at a time on the loop's thread; nothing here is
 * thread-safe.
 */
#ifndef POSTERN_EV_H
#define POSTERN_EV_H

#include <stdint.h>

struct ev_loop;
struct ev_io;
struct ev_timer;

/* Interest and readiness bits for ev_io. */
#define EV_READ  0x1
#define EV_WRITE 0x2
/* Only reported: hang-up or error on the fd, delivered together with the
 * watch's interest bits (EV_READ and/or EV_WRITE) so the next read or write
 * sees the error.  A paused watch (interest 0) gets nothing. */
#define EV_ERROR 0x4

typedef void ev_io_fn(struct ev_io *io, int fd, int events, void *arg);
typedef void ev_timer_fn(struct ev_timer *t, void *arg);
typedef void ev_signal_fn(int signo, void *arg);
typedef void ev_defer_fn(void *arg);

/* A new loop.  Exits (log_fatal) if epoll cannot be created.  The first
 * call also sets SIGPIPE to ignored for the process (writes then fail with
 * EPIPE instead); ev_child_reset_signals() restores it. */
struct ev_loop *ev_loop_new(void);
/* Free the loop and every watch, timer and signal still registered (their
 * fds are not closed), and set *loopp = NULL. */
void ev_loop_free(struct ev_loop **loopp);

/*
 * Run until ev_break() is called or nothing is left to wait for (no fd
 * watch with a non-zero interest, no timer, no signal, no deferred call).
 * Returns 0 after a break or when idle, -1 if epoll_wait failed.
 */
int ev_run(struct ev_loop *loop);
/* Make ev_run() return after the current batch of callbacks. */
void ev_break(struct ev_loop *loop);
/* The loop's cached monotonic clock, in milliseconds, updated once per
 * iteration. */
uint64_t ev_now(struct ev_loop *loop);

/*
 * Watch fd for the events in interest (EV_READ | EV_WRITE, or 0 for a
 * paused watch).  The fd should be non-blocking.  One watch per fd, and
 * the fd must stay open until ev_io_del() (or use ev_io_close()): epoll
 * may still hold a paused watch's fd.  Returns the watch, owned by the
 * loop until ev_io_del().
 */
struct ev_io *ev_io_add(struct ev_loop *loop, int fd, int interest,
    ev_io_fn *fn, void *arg);
/* Change the interest set.  Costs no system call: epoll learns the change
 * before the loop next waits, and only if it still matters then. */
void ev_io_set(struct ev_io *io, int interest);
/* The current interest set. */
int ev_io_interest(const struct ev_io *io);
/* Stop watching (the fd stays open) and set *iop = NULL.  Safe inside any
 * callback. */
void ev_io_del(struct ev_io **iop);
/* Stop watching and close the fd at the end of the current batch (or at
 * once if the loop is not dispatching).  Sets *iop = NULL. */
void ev_io_close(struct ev_io **iop);

/* Call fn after ms milliseconds, once (repeat == 0) or every ms
 * milliseconds (repeat != 0).  Owned by the loop until ev_timer_del(). */
struct ev_timer *ev_timer_add(struct ev_loop *loop, uint64_t ms, int repeat,
    ev_timer_fn *fn, void *arg);
/* Re-arm to fire ms milliseconds from now. */
void ev_timer_reset(struct ev_timer *t, uint64_t ms);
/* Cancel and set *tp = NULL.  Safe inside any callback, including t's own.
 * A one-shot timer that has fired must still be deleted by its owner. */
void ev_timer_del(struct ev_timer **tp);

/*
 * Deliver signo through the loop (signalfd; the signal is blocked for
 * the process).  One handler per signal; adding again replaces it.
 * 0 on success, -1 on failure with errno set.
 */
int ev_signal_add(struct ev_loop *loop, int signo, ev_signal_fn *fn, void *arg)
	__attribute__((warn_unused_result));
/* Stop delivering signo and unblock it. */
void ev_signal_del(struct ev_loop *loop, int signo);

/* Call fn(arg) once, after the current batch of events (or on the next
 * iteration).  Deferred calls run in the order they were added. */
void ev_defer(struct ev_loop *loop, ev_defer_fn *fn, void *arg);
/* Drop every pending deferred call of fn with arg (e.g. before freeing
 * arg).  Safe inside any callback, including a deferred one. */
void ev_defer_cancel(struct ev_loop *loop, ev_defer_fn *fn, void *arg);

/*
 * Before exec'ing a child: restore the signal mask that the process had
 * before any ev_signal_add() (signalfd blocks signals, and a blocked mask
 * is inherited across exec), reset the signals the loop delivered to their
 * default action, and restore SIGPIPE's original disposition (an ignored
 * signal stays ignored across exec).  Call in the child after fork; uses
 * only async-signal-safe calls.
 */
void ev_child_reset_signals(void);

#endif
