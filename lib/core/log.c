/*
 * log: key=value event lines to stderr (dev mode) or syslog (root mode),
 * with a sanitizer for peer-supplied strings.
 *
 * A stderr line is built in one buffer and written with one call.  The
 * "ident[pid]" part is cached per thread (invalidated in a fork()ed child
 * and by log_init()), and so is the date and time to the second, so a line
 * costs no getpid() and one strftime() per second at most.
 *
 * The rate limiter (log_limited) keeps a 64-bit hash of each kind of line
 * and when it was last written, never the text.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

/* Process-wide logger state: set once at start, read everywhere. */
static struct {
	char ident[64];
	enum log_target target;
	enum log_level min;
	log_hook_fn *hook;
	void *hook_arg;
	int syslog_open;
	unsigned gen;		/* bumped by log_init(): caches are stale */
	int atfork_done;
} logger = { "postern", LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL, NULL, 0,
    1, 0 };

/* Per-thread caches for the stderr prefix (see the file comment). */
static _Thread_local struct {
	unsigned gen;		/* logger.gen when who[] was made; 0: none */
	size_t who_len;
	char who[96];		/* "ident[pid]: " */
	time_t when_sec;	/* the second when[] holds */
	int when_ok;
	char when[32];		/* "%Y-%m-%dT%H:%M:%S" */
} logcache;

/* The longest message text kept, without the newline. */
#define LOG_LINE_MAX 2047

static const char *const level_names[] = {
	"debug", "info", "warn", "error", "fatal", "panic",
};

static const int syslog_prio[] = {
	LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT, LOG_ALERT,
};

/* In a fork()ed child (which runs only the forking thread) the cached pid
 * is the parent's. */
static void
log_forget_pid(void)
{
	logcache.gen = 0;
}

void
log_init(const char *ident, enum log_target target, enum log_level min)
{
	size_t n = strlen(ident);

	if (++logger.gen == 0)
		logger.gen = 1;
	if (n >= sizeof(logger.ident))
		n = sizeof(logger.ident) - 1;
	memcpy(logger.ident, ident, n);
	logger.ident[n] = '\0';
	logger.target = target;
	logger.min = min;
	if (logger.syslog_open) {
		closelog();
		logger.syslog_open = 0;
	}
	if (target == LOG_TARGET_SYSLOG) {
		openlog(logger.ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
		logger.syslog_open = 1;
	}
}

const char *
log_level_name(enum log_level level)
{
	if ((size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
		return NULL;
	return level_names[level];
}

int
log_level_parse(const char *name, enum log_level *level_r)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int
log_enabled(enum log_level level)
{
	return level >= logger.min || level >= LOG_LEVEL_FATAL;
}

void
log_set_hook(log_hook_fn *fn, void *arg)
{
	logger.hook = fn;
	logger.hook_arg = arg;
}

/* Append n bytes to out[*len], which has room (the caller sized it). */
static void
log_put(char *out, size_t *len, const char *p, size_t n)
{
	memcpy(out + *len, p, n);
	*len += n;
}

/*
 * Write "WHEN.mmmZ ident[pid]: level=LEVEL " into out (at least
 * LOG_PREFIX_MAX bytes); returns its length.  Same bytes as
 * "%s.%03ldZ %s[%ld]: level=%s " with strftime's "%Y-%m-%dT%H:%M:%S".
 */
#define LOG_PREFIX_MAX (sizeof(logcache.when) + 6 + sizeof(logcache.who) + 16)
static size_t
log_prefix(char *out, enum log_level level)
{
	struct timespec ts;
	struct tm tm;
	size_t len = 0, n;
	long ms;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (!logcache.when_ok || ts.tv_sec != logcache.when_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		if (strftime(logcache.when, sizeof(logcache.when),
		    "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			logcache.when[0] = '\0';
		logcache.when_sec = ts.tv_sec;
		logcache.when_ok = 1;
	}
	if (logcache.gen != logger.gen) {
		if (!logger.atfork_done &&
		    pthread_atfork(NULL, NULL, log_forget_pid) == 0)
			logger.atfork_done = 1;
		r = snprintf(logcache.who, sizeof(logcache.who), "%s[%ld]: ",
		    logger.ident, (long)getpid());
		logcache.who_len = r > 0 && (size_t)r < sizeof(logcache.who) ?
		    (size_t)r : strlen(logcache.who);
		logcache.gen = logger.gen;
	}
	log_put(out, &len, logcache.when, strlen(logcache.when));
	ms = ts.tv_nsec / 1000000;
	out[len++] = '.';
	out[len++] = (char)('0' + ms / 100);
	out[len++] = (char)('0' + ms / 10 % 10);
	out[len++] = (char)('0' + ms % 10);
	out[len++] = 'Z';
	out[len++] = ' ';
	log_put(out, &len, logcache.who, logcache.who_len);
	log_put(out, &len, "level=", 6);
	n = strlen(level_names[level]);
	log_put(out, &len, level_names[level], n);
	out[len++] = ' ';
	return len;
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char out[LOG_PREFIX_MAX + LOG_LINE_MAX + 2];
	int saved_errno = errno;
	int to_stderr, n;
	size_t pre = 0, len;
	char *line;

	if (!log_enabled(level))
		return;
	to_stderr = logger.hook == NULL && logger.target != LOG_TARGET_SYSLOG;
	if (to_stderr)
		pre = log_prefix(out, level);
	line = out + pre;
	n = vsnprintf(line, LOG_LINE_MAX + 1, fmt, ap);
	if (n < 0)
		snprintf(line, LOG_LINE_MAX + 1, "event=log_format_error");
	/* A newline inside a message would forge a second log line. */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (logger.hook != NULL) {
		logger.hook(level, line, logger.hook_arg);
	} else if (logger.target == LOG_TARGET_SYSLOG) {
		syslog(syslog_prio[level], "level=%s %s", level_names[level], line);
	} else {
		len = pre + strlen(line);
		out[len++] = '\n';
		(void)fwrite(out, 1, len, stderr);
	}
	errno = saved_errno;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_PANIC, fmt, ap);
	va_end(ap);
	abort();
}

const char *
log_safe_n(const void *p, size_t n)
{
	/* Each slot holds the worst case: 4 bytes per input byte, quotes, "...". */
	static _Thread_local char slots[LOG_SAFE_SLOTS][LOG_SAFE_CAP * 4 + 8];
	static _Thread_local unsigned next;
	char *out = slots[next++ % LOG_SAFE_SLOTS];
	struct buf b = BUF_INIT;
	int quote = n == 0 || memchr(p, ' ', n < LOG_SAFE_CAP ? n : LOG_SAFE_CAP) != NULL;
	size_t len;

	buf_put_safe(&b, p, n, LOG_SAFE_CAP);
	len = b.len;
	if (len > sizeof(slots[0]) - 3)
		len = sizeof(slots[0]) - 3;
	if (quote) {
		out[0] = '"';
		memcpy(out + 1, buf_cstr(&b), len);
		out[len + 1] = '"';
		out[len + 2] = '\0';
	} else {
		memcpy(out, buf_cstr(&b), len);
		out[len] = '\0';
	}
	buf_free(&b);
	return out;
}

const char *
log_safe(const char *s)
{
	if (s == NULL)
		return "-";
	return log_safe_n(s, strlen(s));
}

const char *
err_fmt(const char *fmt, ...)
{
	static _Thread_local char slots[LOG_SAFE_SLOTS][512];
	static _Thread_local unsigned next;
	char *out = slots[next++ % LOG_SAFE_SLOTS];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(out, sizeof(slots[0]), fmt, ap) < 0)
		snprintf(out, sizeof(slots[0]), "(unformattable error)");
	va_end(ap);
	return out;
}

/* FNV-1a over a string and a separator, continuing from h. */
static uint64_t
limit_hash(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= 0xff;		/* no byte of a C string: "ab"+"c" != "a"+"bc" */
	return h * 0x100000001b3ULL;
}

/* The slot for key: its own, else a free one, else the least recently
 * written (whose count is dropped). */
static size_t
limit_slot(struct log_limit *ll, uint64_t key, int *found_r)
{
	size_t i, pick = 0;

	for (i = 0; i < LOG_LIMIT_SLOTS; i++) {
		if (ll->slot[i].key == key) {
			*found_r = 1;
			return i;
		}
	}
	*found_r = 0;
	for (i = 0; i < LOG_LIMIT_SLOTS; i++) {
		if (ll->slot[i].key == 0)
			return i;
		if (ll->slot[i].written_ms < ll->slot[pick].written_ms)
			pick = i;
	}
	return pick;
}

/* log_limited_at() with its arguments in a va_list. */
static int
log_vlimited(struct log_limit *ll, uint64_t now_ms, enum log_level level,
    const char *reason, const char *fmt, va_list ap)
{
	uint64_t interval = ll->interval_ms != 0 ? ll->interval_ms : LOG_LIMIT_MS;
	uint64_t key;
	unsigned long n;
	char line[LOG_LINE_MAX + 1 - 32];	/* room left for the count */
	size_t i;
	int found;

	if (!log_enabled(level))
		return 0;
	key = limit_hash(limit_hash(0xcbf29ce484222325ULL, fmt),
	    reason != NULL ? reason : "");
	if (key == 0)
		key = 1;
	i = limit_slot(ll, key, &found);
	if (found && now_ms - ll->slot[i].written_ms < interval) {
		ll->slot[i].suppressed++;
		return 0;
	}
	n = found ? ll->slot[i].suppressed : 0;
	ll->slot[i].key = key;
	ll->slot[i].written_ms = now_ms;
	ll->slot[i].suppressed = 0;
	if (n == 0) {
		log_vmsg(level, fmt, ap);
		return 1;
	}
	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		snprintf(line, sizeof(line), "event=log_format_error");
	log_msg(level, "%s suppressed=%lu", line, n);
	return 1;
}

int
log_limited_at(struct log_limit *ll, uint64_t now_ms, enum log_level level,
    const char *reason, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_vlimited(ll, now_ms, level, reason, fmt, ap);
	va_end(ap);
	return r;
}

int
log_limited(struct log_limit *ll, enum log_level level, const char *reason,
    const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	va_start(ap, fmt);
	r = log_vlimited(ll, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
	    level, reason, fmt, ap);
	va_end(ap);
	return r;
}
