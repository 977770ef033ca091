/*
 * log: key=value event lines to stderr (dev mode) or syslog (root mode),
 * with a sanitizer for peer-supplied strings.
 */
#include "autoconf.h"

#include <errno.h>
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
} logger = { "postern", LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL, NULL, 0 };

static const char *const level_names[] = {
	"debug", "info", "warn", "error", "fatal", "panic",
};

static const int syslog_prio[] = {
	LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT, LOG_ALERT,
};

void
log_init(const char *ident, enum log_target target, enum log_level min)
{
	size_t n = strlen(ident);

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

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int saved_errno = errno;
	int n;

	if (!log_enabled(level))
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		snprintf(line, sizeof(line), "event=log_format_error");
	/* A newline inside a message would forge a second log line. */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (logger.hook != NULL) {
		logger.hook(level, line, logger.hook_arg);
	} else if (logger.target == LOG_TARGET_SYSLOG) {
		syslog(syslog_prio[level], "level=%s %s", level_names[level], line);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%ld]: level=%s %s\n", when,
		    ts.tv_nsec / 1000000, logger.ident, (long)getpid(),
		    level_names[level], line);
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
