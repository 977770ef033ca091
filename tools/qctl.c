/*
 * qctl: talk to qmgr over its control socket, run_dir/qmgr.ctl, for the
 * administrator's tools: list the queue (postern queue, mailq,
 * sendmail -bp) and act on messages (delete, hold, release, requeue,
 * flush).  Every reply is read strictly through the ipc cursor: a wrong
 * type or id, a short field, an unknown state or a leftover byte is a
 * malformed answer, reported as such.  What the server says (addresses,
 * errors) is untrusted and printed escaped.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "ipc.h"
#include "qctl.h"
#include "services.h"
#include "qmgrproto.h"

#define QCTL_TIMEOUT_MS 30000	/* for each answer */
#define QCTL_FIELD_CAP 1000	/* bytes of one server string printed */
/* The listing's columns; recipients line up under the sender. */
#define QCTL_ID_WIDTH 23	/* a 22-character queue id and its mark */
#define QCTL_RCPT_INDENT 54

int
qctl_open(struct qctl *q, const char *prog, const struct qctl_where *w)
{
	struct stat st;
	const char *error = NULL;
	char *path;
	int fd, e;

	q->prog = prog;
	q->fd = -1;
	q->next_id = 1;
	if (w->root_mode && getuid() != 0) {
		fprintf(stderr, "%s: permission denied (ask the administrator, "
		    "or run as root)\n", prog);
		return -1;
	}
	if (!master_running(w->pid_file)) {
		fprintf(stderr, "%s: postern is not running\n", prog);
		return -1;
	}
	path = fs_join(w->run_dir, QMGR_CTL_SOCKET);
	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		if (errno == EACCES)
			fprintf(stderr, "%s: permission denied (%s)\n", prog, path);
		else
			fprintf(stderr, "%s: the queue manager is not running "
			    "(no %s)\n", prog, path);
		free(path);
		return -1;
	}
	fd = ipc_connect(path, QMGR_CTL_PROTO, &error);
	e = errno;	/* connect()'s, when error says so */
	if (fd < 0) {
		if (strcmp(error, "connect failed") == 0 && e == ECONNREFUSED)
			fprintf(stderr, "%s: the queue manager is not running "
			    "(nobody listens on %s)\n", prog, path);
		else if (strcmp(error, "connect failed") == 0 && e == EACCES)
			fprintf(stderr, "%s: permission denied (%s)\n", prog, path);
		else if (strcmp(error, "closed before hello") == 0)
			fprintf(stderr, "%s: the queue manager refused the "
			    "connection (only root, or in dev mode the instance's "
			    "user, may use %s)\n", prog, path);
		else
			fprintf(stderr, "%s: %s: %s\n", prog, path, error);
		free(path);
		return -1;
	}
	free(path);
	q->fd = fd;
	return 0;
}

void
qctl_close(struct qctl *q)
{
	if (q->fd >= 0) {
		(void)close(q->fd);
		q->fd = -1;
	}
}

/* Whether the UTF-8 sequence at p (n bytes available) is well formed and
 * printable; its length in *len_r. */
static int
utf8_printable(const unsigned char *p, size_t n, size_t *len_r)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates, past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	/* C1 controls; line separators and bidirectional overrides, which
	 * could make a line show something other than it holds. */
	if (cp < 0xa0 || cp == 0x2028 || cp == 0x2029 ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
	    cp == 0x200e || cp == 0x200f || cp == 0x061c)
		return 0;
	*len_r = len;
	return 1;
}

void
qctl_put_safe(struct buf *b, const char *s, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, len;
	int r = 0;

	while (i < n && i < cap) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			r |= buf_putc(b, (char)p[i]);
			i++;
		} else if (p[i] == '\\') {
			r |= buf_puts(b, "\\\\");
			i++;
		} else if (p[i] >= 0x80 && utf8_printable(p + i, n - i, &len) &&
		    i + len <= cap) {
			r |= buf_append(b, p + i, len);
			i += len;
		} else {
			char e[4] = { '\\', 'x', hex[p[i] >> 4], hex[p[i] & 15] };

			r |= buf_append(b, e, sizeof(e));
			i++;
		}
	}
	if (i < n)
		r |= buf_puts(b, "...");
	if (r < 0)
		buf_truncate(b, 0);	/* only past SIZE_MAX: nothing sane to show */
}

/* Append a time as "Sun Nov 22 12:00:00" (local time), or "?" if it
 * cannot be one. */
static int
put_time(struct buf *b, uint64_t t)
{
	char text[64];
	struct tm tm;
	time_t tt;

	if (t > (uint64_t)INT32_MAX * 1024)	/* far past any real date */
		return buf_puts(b, "?");
	tt = (time_t)t;
	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(text, sizeof(text), "%a %b %e %H:%M:%S", &tm) == 0)
		return buf_puts(b, "?");
	return buf_puts(b, text);
}

/* Send a request and receive its answer, which must have the given type
 * and the request's id.  1 with *frame filled (the caller frees it), or
 * -1 after printing why. */
static int
roundtrip(struct qctl *q, struct ipc_msg *req, uint32_t want, struct ipc_msg *frame)
{
	const char *error = NULL;
	int r;

	if (ipc_send_blocking(q->fd, req) < 0) {
		fprintf(stderr, "%s: the queue manager closed the connection\n",
		    q->prog);
		return -1;
	}
	r = ipc_recv_blocking(q->fd, frame, QCTL_TIMEOUT_MS, &error);
	if (r <= 0) {
		fprintf(stderr, "%s: no answer from the queue manager%s%s\n",
		    q->prog, r < 0 ? ": " : "", r < 0 ? error : "");
		return -1;
	}
	if (frame->type != want || frame->id != req->id) {
		fprintf(stderr, "%s: malformed answer from the queue manager "
		    "(type %lu id %lu, expected type %lu id %lu)\n", q->prog,
		    (unsigned long)frame->type, (unsigned long)frame->id,
		    (unsigned long)want, (unsigned long)req->id);
		ipc_frame_free(frame);
		return -1;
	}
	return 1;
}

/* Render one recipient of a listing entry.  0, or -1 if malformed. */
static int
render_rcpt(struct ipc_cursor *c, struct buf *out)
{
	const char *addr, *error;
	uint32_t rstate;
	uint64_t next;
	int r = 0;

	if (ipc_get_str(c, &addr) < 0 || ipc_get_u32(c, &rstate) < 0 ||
	    ipc_get_str(c, &error) < 0 || ipc_get_u64(c, &next) < 0)
		return -1;
	if (addr == NULL || error == NULL ||
	    (rstate != QMGR_RCPT_PENDING && rstate != QMGR_RCPT_DEFERRED)) {
		c->error = "bad recipient";
		return -1;
	}
	r |= buf_printf(out, "%*s", QCTL_RCPT_INDENT, "");
	qctl_put_safe(out, addr, QCTL_FIELD_CAP);
	r |= buf_printf(out, "\n%*s(", QCTL_RCPT_INDENT + 2, "");
	if (rstate == QMGR_RCPT_PENDING)
		r |= buf_puts(out, "pending");
	else
		r |= buf_puts(out, "deferred");
	r |= buf_puts(out, ", next try ");
	if (next == 0 || next <= (uint64_t)time(NULL))
		r |= buf_puts(out, "now");
	else
		r |= put_time(out, next);
	r |= buf_puts(out, ")\n");
	if (error[0] != '\0') {
		r |= buf_printf(out, "%*s(", QCTL_RCPT_INDENT + 2, "");
		qctl_put_safe(out, error, QCTL_FIELD_CAP);
		r |= buf_puts(out, ")\n");
	}
	return r < 0 ? -1 : 0;
}

/* Render one message of a listing, adding its size to *bytes.  0, or -1
 * if malformed. */
static int
render_message(struct ipc_cursor *c, struct buf *out, uint64_t *bytes)
{
	static const char marks[] = { '*', ' ', '!' };	/* by QMGR_STATE_* */
	const char *id, *sender;
	uint32_t state, nrcpt, i;
	uint64_t size, arrival;
	size_t start;
	int r = 0;

	if (ipc_get_str(c, &id) < 0 || ipc_get_u64(c, &size) < 0 ||
	    ipc_get_u64(c, &arrival) < 0 || ipc_get_str(c, &sender) < 0 ||
	    ipc_get_u32(c, &state) < 0 || ipc_get_u32(c, &nrcpt) < 0)
		return -1;
	if (id == NULL || id[0] == '\0' || sender == NULL ||
	    state >= sizeof(marks)) {
		c->error = "bad message";
		return -1;
	}
	start = out->len;
	qctl_put_safe(out, id, QCTL_FIELD_CAP);
	if (state != QMGR_STATE_DEFERRED)
		r |= buf_putc(out, marks[state]);
	if (out->len - start < QCTL_ID_WIDTH)
		r |= buf_printf(out, "%*s", (int)(QCTL_ID_WIDTH - (out->len - start)), "");
	r |= buf_printf(out, " %8llu ", (unsigned long long)size);
	r |= put_time(out, arrival);
	r |= buf_puts(out, "  ");
	if (sender[0] == '\0')
		r |= buf_puts(out, "<>");
	else
		qctl_put_safe(out, sender, QCTL_FIELD_CAP);
	r |= buf_putc(out, '\n');
	for (i = 0; i < nrcpt; i++) {
		if (render_rcpt(c, out) < 0)
			return -1;
	}
	r |= buf_putc(out, '\n');
	*bytes = size > UINT64_MAX - *bytes ? UINT64_MAX : *bytes + size;
	return r < 0 ? -1 : 0;
}

int
qctl_list(struct qctl *q, FILE *out)
{
	struct buf page = BUF_INIT;
	struct ipc_msg req, frame;
	struct ipc_cursor c;
	uint64_t bytes = 0, kbytes;
	uint32_t start = 0, total, n, i;
	unsigned long long count = 0;
	int r;

	for (;;) {
		ipc_msg_init(&req, QMGR_LIST, q->next_id++);
		ipc_put_u32(&req, start);
		ipc_put_u32(&req, QMGR_LIST_MAX);
		r = roundtrip(q, &req, QMGR_LISTING, &frame);
		ipc_msg_free(&req);
		if (r < 0)
			goto fail;
		buf_reset(&page);
		ipc_cursor_init(&c, &frame);
		if (ipc_get_u32(&c, &total) < 0 || ipc_get_u32(&c, &n) < 0)
			goto malformed;
		if (n > QMGR_LIST_MAX) {
			c.error = "too many entries";
			goto malformed;
		}
		if (count == 0 && n > 0 && buf_printf(&page, "%-*s %8s %-19s  %s\n",
		    QCTL_ID_WIDTH, "-Queue ID--------------", "--Size--",
		    "----Arrival Time---", "-Sender/Recipient-------") < 0)
			goto malformed;
		for (i = 0; i < n; i++) {
			if (render_message(&c, &page, &bytes) < 0)
				goto malformed;
		}
		if (ipc_get_end(&c) < 0)
			goto malformed;
		ipc_frame_free(&frame);
		if (page.len > 0 && fwrite(page.data, 1, page.len, out) != page.len)
			goto write_error;
		count += n;
		/* The queue may change between pages: stop at its end as the
		 * latest answer gives it. */
		if (n == 0 || (uint64_t)start + n >= total)
			break;
		start += n;
	}
	buf_free(&page);
	if (count == 0)
		fprintf(out, "Mail queue is empty\n");
	else {
		kbytes = bytes / 1024 + (bytes % 1024 != 0);
		fprintf(out, "-- %llu Kbytes in %llu message%s\n",
		    (unsigned long long)kbytes, count, count == 1 ? "" : "s");
	}
	if (fflush(out) != 0 || ferror(out))
		goto write_error;
	return 0;

malformed:
	fprintf(stderr, "%s: malformed answer from the queue manager (%s)\n",
	    q->prog, c.error != NULL ? c.error : "leftover bytes");
	ipc_frame_free(&frame);
	goto fail;
write_error:
	fprintf(stderr, "%s: writing the listing: %s\n", q->prog, strerror(errno));
fail:
	buf_free(&page);
	return -1;
}

int
qctl_request(struct qctl *q, uint32_t type, const char *arg,
    uint32_t *affected_r, struct buf *text)
{
	struct ipc_msg req, frame;
	struct ipc_cursor c;
	const char *s;
	uint32_t affected;
	int r;

	ipc_msg_init(&req, type, q->next_id++);
	if (arg != NULL)
		ipc_put_str(&req, arg);
	r = roundtrip(q, &req, QMGR_DONE, &frame);
	ipc_msg_free(&req);
	if (r < 0)
		return -1;
	ipc_cursor_init(&c, &frame);
	if (ipc_get_u32(&c, &affected) < 0 || ipc_get_str(&c, &s) < 0 ||
	    ipc_get_end(&c) < 0 || s == NULL) {
		fprintf(stderr, "%s: malformed answer from the queue manager "
		    "(%s)\n", q->prog, c.error != NULL ? c.error : "null text");
		ipc_frame_free(&frame);
		return -1;
	}
	buf_reset(text);
	qctl_put_safe(text, s, QCTL_FIELD_CAP);
	*affected_r = affected;
	ipc_frame_free(&frame);
	return 0;
}

int
qctl_mailq(const char *prog, const struct qctl_where *w)
{
	struct qctl q;
	int r;

	if (qctl_open(&q, prog, w) < 0)
		return 1;
	r = qctl_list(&q, stdout);
	qctl_close(&q);
	return r < 0 ? 1 : 0;
}
