/*
 * maildir: the Maildir format that writer and readers share (see
 * maildir.h): file names and their fields (base, UIDL, ",S=" and ",W="),
 * CRLF sizes and the export of a message as network text, a message's
 * header and the Delivered-To loop check; and, for the module's other
 * files (maildir_impl.h), the symlink-safe directory walks of the store
 * and small I/O helpers.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "maildir.h"
#include "maildir_impl.h"
#include "xalloc.h"

#define READ_CHUNK 65536

/* --- directories of the store --- */

int
maildir_dir_open(int dfd, const char *name, int create, int *fd_r,
    const char **error_r)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	struct stat sb;
	int fd, e;

	fd = openat(dfd, name, flags);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST) {
			*error_r = err_fmt("mkdir %s: %s", log_safe(name), strerror(errno));
			return -1;
		}
		fd = openat(dfd, name, flags);
	}
	if (fd >= 0) {
		*fd_r = fd;
		return 1;
	}
	e = errno;
	if (e == ENOENT)
		*error_r = err_fmt("%s does not exist", log_safe(name));
	else if ((e == ELOOP || e == ENOTDIR) &&
	    fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
		*error_r = err_fmt("refusing to follow the symlink %s", log_safe(name));
	else
		*error_r = err_fmt("open %s: %s", log_safe(name), strerror(e));
	return e == ENOENT && !create ? 0 : -1;
}

int
maildir_path_open(int rootfd, const char *path, int create, int *fd_r,
    const char **error_r)
{
	char *copy = xstrdup(path), *save = NULL;
	int fd, r = -1, any = 0;

	if ((fd = dup(rootfd)) < 0) {
		*error_r = err_fmt("dup: %s", strerror(errno));
		free(copy);
		return -1;
	}
	for (char *c = strtok_r(copy, "/", &save); c != NULL;
	    c = strtok_r(NULL, "/", &save)) {
		int next;

		any = 1;
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
			*error_r = err_fmt("unsafe mailbox path %s", log_safe(path));
			r = -1;
			goto out;
		}
		if ((r = maildir_dir_open(fd, c, create, &next, error_r)) <= 0)
			goto out;
		(void)close(fd);
		fd = next;
	}
	if (!any) {
		*error_r = err_fmt("empty mailbox path");
		r = -1;
		goto out;
	}
	*fd_r = fd;
	fd = -1;
	r = 1;
out:
	if (fd >= 0)
		(void)close(fd);
	free(copy);
	return r;
}

int
maildir_dirs_open(struct maildir_dirs *m, const char **error_r)
{
	if (maildir_dir_open(m->fd, "tmp", 1, &m->tmp, error_r) < 0 ||
	    maildir_dir_open(m->fd, "new", 1, &m->new, error_r) < 0 ||
	    maildir_dir_open(m->fd, "cur", 1, &m->cur, error_r) < 0)
		return -1;
	return 0;
}

void
maildir_dirs_close(struct maildir_dirs *m)
{
	maildir_close_fd(&m->fd);
	maildir_close_fd(&m->tmp);
	maildir_close_fd(&m->new);
	maildir_close_fd(&m->cur);
}

DIR *
maildir_dir_stream(int dfd, const char *what, const char **error_r)
{
	DIR *d;
	int fd;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		*error_r = err_fmt("read %s: %s", what, strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		return NULL;
	}
	return d;
}

/* --- small helpers --- */

void
maildir_close_fd(int *fdp)
{
	if (*fdp >= 0)
		(void)close(*fdp);
	*fdp = -1;
}

int
maildir_writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int
maildir_write_all(int fd, const void *p, size_t n)
{
	struct iovec iov = { (void *)(uintptr_t)p, n };

	return maildir_writev_all(fd, &iov, 1);
}

size_t
maildir_base_len(const char *name)
{
	return strcspn(name, ",:");
}

int
maildir_printable(const char *p, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
			return 0;
	return 1;
}

int
maildir_parse_u64(const char *p, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 20)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return 0;
		d = (unsigned)(p[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	*v = x;
	return 1;
}

const char *
maildir_skip_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	return s;
}

/* --- file names --- */

void
maildir_uidl(const char *name, char out[MAILDIR_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t n = maildir_base_len(name);

	if (maildir_printable(name, n, MAILDIR_UIDL_MAX)) {
		memcpy(out, name, n);
		out[n] = '\0';
		return;
	}
	if (EVP_Digest(name, n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
		log_panic("event=mailbox_uidl error=\"SHA-1 failed\"");
	for (unsigned int i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[2 * mdlen] = '\0';
}

int
maildir_name_size(const char *name, char key, uint64_t *size_r)
{
	const char *end = name + strcspn(name, ":");
	const char *f = name + maildir_base_len(name);

	/* f is at the ',' before a field, or at the end. */
	while (f < end && *f == ',') {
		const char *s = f + 1, *e = s + strcspn(s, ",:");

		if (e > end)
			e = end;
		if (e - s >= 2 && s[0] == key && s[1] == '=')
			return maildir_parse_u64(s + 2, (size_t)(e - s - 2), size_r);
		f = e;
	}
	return 0;
}

/* --- network text --- */

uint64_t
maildir_crlf_size(const char *p, size_t n, int *prev_cr)
{
	const char *s = p, *end = p + n, *lf;
	int cr = prev_cr != NULL ? *prev_cr : 0;
	uint64_t size = n;

	while (s < end && (lf = memchr(s, '\n', (size_t)(end - s))) != NULL) {
		if (!(lf > p ? lf[-1] == '\r' : cr))
			size++;
		s = lf + 1;
	}
	if (prev_cr != NULL && n > 0)
		*prev_cr = p[n - 1] == '\r';
	return size;
}

void
mailbox_export_init(struct mailbox_export *x, int dotstuff, int64_t body_lines)
{
	memset(x, 0, sizeof(*x));
	x->dotstuff = dotstuff;
	x->body_lines = body_lines;
	x->bol = 1;
	x->header_empty = 1;
}

int
mailbox_export_feed(struct mailbox_export *x, const char *p, size_t n,
    struct buf *out)
{
	size_t start = 0;	/* input not yet copied: p[start..i) */

	if (x->done)
		return 1;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (x->bol) {
			x->bol = 0;
			x->header_empty = 1;
			if (c == '.' && x->dotstuff) {
				if (buf_append(out, p + start, i - start) < 0 ||
				    buf_putc(out, '.') < 0)
					return -1;
				start = i;
			}
		}
		if (c == '\r') {
			if (x->prev_cr)
				x->header_empty = 0;	/* that CR was lone */
			x->prev_cr = 1;
			continue;
		}
		if (c != '\n') {
			x->header_empty = 0;
			x->prev_cr = 0;
			continue;
		}
		/* A line end: a bare LF gets its CR. */
		if (!x->prev_cr) {
			if (buf_append(out, p + start, i - start) < 0 ||
			    buf_putc(out, '\r') < 0)
				return -1;
			start = i;
		}
		x->prev_cr = 0;
		x->bol = 1;
		if (x->in_body)
			x->lines++;
		else if (x->header_empty)
			x->in_body = 1;
		if (x->in_body && x->body_lines >= 0 && x->lines >= x->body_lines) {
			x->done = 1;
			return buf_append(out, p + start, i + 1 - start) < 0 ? -1 : 1;
		}
	}
	return buf_append(out, p + start, n - start) < 0 ? -1 : 0;
}

int
mailbox_export_end(struct mailbox_export *x, struct buf *out)
{
	if (x->done || x->bol)
		return 0;
	if (buf_append(out, "\r\n", 2) < 0)
		return -1;
	x->bol = 1;
	x->prev_cr = 0;
	return 0;
}

/* --- a message's header --- */

size_t
maildir_header_span(const char *p, size_t n)
{
	const char *end;

	if (n > MAILDIR_MAX_HEADER)
		n = MAILDIR_MAX_HEADER;
	if (n > 0 && p[0] == '\n')
		return 0;
	if ((end = memmem(p, n, "\n\n", 2)) != NULL)
		return (size_t)(end - p) + 1;
	return n;
}

int
maildir_read_header(int fd, uint64_t offset, uint64_t size, struct buf *out,
    const char **error_r)
{
	uint64_t limit = size < MAILDIR_MAX_HEADER ? size : MAILDIR_MAX_HEADER;
	size_t scanned = 0;

	buf_reset(out);
	if (limit > 0) {
		/* A message opening with the empty line has no header. */
		char c;

		if (pread(fd, &c, 1, (off_t)offset) == 1 && c == '\n')
			return 0;
	}
	while (out->len < limit) {
		size_t want = limit - out->len > READ_CHUNK ? READ_CHUNK :
		    (size_t)(limit - out->len);
		ssize_t n;
		char *end;

		if (buf_reserve(out, want) < 0)
			log_panic("event=maildir_header error=\"buffer full\"");
		n = pread(fd, out->data + out->len, want, (off_t)(offset + out->len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = err_fmt("read queue file: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if ((end = memmem(out->data + (scanned > 0 ? scanned - 1 : 0),
		    out->len - (scanned > 0 ? scanned - 1 : 0), "\n\n", 2)) != NULL) {
			buf_truncate(out, (size_t)(end - out->data) + 1);
			return 0;
		}
		scanned = out->len;
	}
	return 0;
}

/* Whether one field (name:value, continuation lines included) is a
 * Delivered-To naming address. */
static int
field_matches(const char *f, size_t n, const char *address)
{
	static const char name[] = "delivered-to";
	const size_t nlen = sizeof(name) - 1;
	const char *s, *end = f + n, *v, *ve;
	size_t alen = strlen(address);

	if (n <= nlen || strncasecmp(f, name, nlen) != 0)
		return 0;
	s = maildir_skip_ws(f + nlen, end);
	if (s >= end || *s != ':')
		return 0;
	/* The value without surrounding white space (folding included). */
	v = s + 1;
	while (v < end && (*v == ' ' || *v == '\t' || *v == '\n'))
		v++;
	ve = end;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\n'))
		ve--;
	if (ve - v >= 2 && *v == '<' && ve[-1] == '>') {
		v++;
		ve--;
	}
	return (size_t)(ve - v) == alen && strncasecmp(v, address, alen) == 0;
}

int
maildir_has_delivered_to(const char *header, size_t len, const char *address)
{
	const char *s = header, *end = header + len;

	while (s < end) {
		const char *f = s, *nl;

		/* A field runs to the end of the line, plus any line that
		 * starts with white space (folding). */
		for (;;) {
			nl = memchr(s, '\n', (size_t)(end - s));
			s = nl == NULL ? end : nl + 1;
			if (s >= end || (*s != ' ' && *s != '\t'))
				break;
		}
		if (field_matches(f, (size_t)(s - f), address))
			return 1;
	}
	return 0;
}
