/*
 * log: one severity ladder for every process.  Each event is one line of
 * key=value pairs written by the caller (e.g. "event=accept client=%s"); the
 * logger adds the time (stderr only), the program name, pid and level.
 * Dev mode writes to stderr, root mode to syslog (facility mail).  Any
 * string a peer supplied must pass through log_safe() or buf_put_safe().
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_FATAL,	/* environment broken: log and exit(1) */
	LOG_LEVEL_PANIC,	/* invariant broken: log and abort() */
};

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
};

/* Set the program name, target and lowest level written.  May be called
 * again (e.g. after reading the config); ident is copied. */
void log_init(const char *ident, enum log_target target, enum log_level min);
/* The level name ("debug" ... "panic") or NULL; and the reverse lookup,
 * 0 on success, -1 for an unknown name. */
const char *log_level_name(enum log_level level);
int log_level_parse(const char *name, enum log_level *level_r)
	__attribute__((warn_unused_result));
/* Whether a message at this level would be written. */
int log_enabled(enum log_level level);

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
/* Log and exit(1). */
void log_fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
/* Log and abort(). */
void log_panic(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/*
 * Render untrusted bytes for a log line: escaped as buf_put_safe() does,
 * capped at LOG_SAFE_CAP input bytes, and quoted when empty or containing a
 * space.  Returns one of a small ring of per-thread buffers, so up to
 * LOG_SAFE_SLOTS results may be used in one log call.
 */
#define LOG_SAFE_CAP 200
#define LOG_SAFE_SLOTS 4
const char *log_safe(const char *s);
const char *log_safe_n(const void *p, size_t n);

/*
 * Format a short reason string for an error_r out-parameter.  Returns one
 * of a ring of LOG_SAFE_SLOTS per-thread buffers (512 bytes, truncated), so
 * a reason stays valid across a few further calls in the same thread.
 */
const char *err_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A rate limit for error lines that can repeat once per message (a full
 * disk fails every pickup, every queue file write, every delivery).  A
 * line is "identical" to an earlier one when it comes from the same format
 * string with the same reason (the rest, such as a queue id, may differ):
 * the first is written, identical ones within the interval are only
 * counted, and the next one written after the interval carries
 * " suppressed=N".  A count not yet written is lost if its slot is reused
 * (LOG_LIMIT_SLOTS kinds at once, the least recently written goes first).
 * Zero-initialised it uses LOG_LIMIT_MS.  Not locked: one per thread.
 */
#define LOG_LIMIT_MS	10000
#define LOG_LIMIT_SLOTS	16
struct log_limit {
	uint64_t interval_ms;		/* 0: LOG_LIMIT_MS */
	struct {
		uint64_t key;		/* hash of format and reason; 0: free */
		uint64_t written_ms;	/* when its last line was written */
		unsigned long suppressed;	/* counted since */
	} slot[LOG_LIMIT_SLOTS];
};

/* Log fmt at level unless an identical line (same fmt, same reason, NULL
 * counting as "") was written less than the interval ago.  Returns 1 if
 * the line was written, 0 if it was only counted (or the level is off). */
int log_limited(struct log_limit *ll, enum log_level level, const char *reason,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same at a given time (milliseconds on any monotonic scale), for
 * tests; log_limited() uses CLOCK_MONOTONIC. */
int log_limited_at(struct log_limit *ll, uint64_t now_ms, enum log_level level,
    const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* For tests: send lines to this callback instead of stderr/syslog
 * (NULL restores normal output). */
typedef void log_hook_fn(enum log_level level, const char *line, void *arg);
void log_set_hook(log_hook_fn *fn, void *arg);

#endif
