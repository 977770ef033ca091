/*
 * maildir_quota: the Maildir++ quota (see maildir.h).  maildirsize holds
 * the quota ("<bytes>S") and lines of "<bytes> <count>" to be summed; it
 * is recalculated from the messages (INBOX and every folder, sizes from
 * ",S=" or the disk) and rewritten when it is missing, damaged, too big
 * or names another quota, and a delivery appends its own line.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "maildir_impl.h"

/* Parse an optionally signed decimal at *sp, advancing it.  0 or -1. */
static int
parse_num(const char **sp, const char *end, int64_t *v_r)
{
	const char *s = *sp;
	int neg = 0;
	int64_t v = 0;

	if (s < end && *s == '-') {
		neg = 1;
		s++;
	}
	if (s >= end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*v_r = neg ? -v : v;
	*sp = s;
	return 0;
}

int
maildir_size_parse(const char *text, size_t len, uint64_t *quota_r,
    uint64_t *bytes_r, uint64_t *count_r)
{
	const char *s = text, *end = text + len;
	uint64_t quota = 0;
	int64_t bytes = 0, count = 0;

	/* "<bytes>S" and/or "<count>C", comma-separated. */
	for (;;) {
		int64_t v;

		if (parse_num(&s, end, &v) < 0 || v < 0 || s >= end)
			return 0;
		if (*s == 'S')
			quota = (uint64_t)v;
		else if (*s != 'C')
			return 0;
		s++;
		if (s < end && *s == ',') {
			s++;
			continue;
		}
		break;
	}
	if (s >= end || *s++ != '\n')
		return 0;
	while (s < end) {
		int64_t b, c;

		s = maildir_skip_ws(s, end);
		if (parse_num(&s, end, &b) < 0)
			return 0;
		s = maildir_skip_ws(s, end);
		if (parse_num(&s, end, &c) < 0)
			return 0;
		s = maildir_skip_ws(s, end);
		if (s >= end || *s++ != '\n')
			return 0;	/* a partial last line: recalculate */
		if ((b > 0 && bytes > INT64_MAX - b) || (c > 0 && count > INT64_MAX - c))
			return 0;
		bytes += b;
		count += c;
	}
	*quota_r = quota;
	*bytes_r = bytes < 0 ? 0 : (uint64_t)bytes;
	*count_r = count < 0 ? 0 : (uint64_t)count;
	return 1;
}

/* Add the messages in subdirectory sub of dirfd to the sums (a missing
 * sub adds nothing).  0 or -1. */
static int
sum_dir(int dirfd, const char *sub, uint64_t *bytes, uint64_t *count,
    const char **error_r)
{
	DIR *d;
	struct dirent *de;
	int fd, r;

	if ((r = maildir_dir_open(dirfd, sub, 0, &fd, error_r)) <= 0)
		return r;
	if ((d = fdopendir(fd)) == NULL) {
		*error_r = err_fmt("read %s: %s", sub, strerror(errno));
		(void)close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat sb;
		uint64_t size = 0;

		if (de->d_name[0] == '.')
			continue;
		if (!maildir_name_size(de->d_name, 'S', &size)) {
			if (fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
				continue;	/* gone meanwhile (expunged) */
			size = (uint64_t)sb.st_size;
		}
		*bytes += size;
		(*count)++;
	}
	(void)closedir(d);
	return 0;
}

/* Recalculate the usage of the Maildir at dirfd (INBOX and every
 * folder) and rewrite maildirsize.  0 or -1. */
static int
quota_recalc(struct maildir_store *st, int dirfd, uint64_t quota,
    uint64_t *bytes_r, uint64_t *count_r, const char **error_r)
{
	uint64_t bytes = 0, count = 0;
	struct buf name = BUF_INIT, text = BUF_INIT;
	DIR *d;
	struct dirent *de;
	int fd, tmp = -1, ret = -1;

	if (sum_dir(dirfd, "new", &bytes, &count, error_r) < 0 ||
	    sum_dir(dirfd, "cur", &bytes, &count, error_r) < 0)
		return -1;
	if ((d = maildir_dir_stream(dirfd, "mailbox", error_r)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		int ffd;

		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (maildir_dir_open(dirfd, de->d_name, 0, &ffd, error_r) <= 0)
			continue;	/* not a folder (or a symlink): not counted */
		if (sum_dir(ffd, "new", &bytes, &count, error_r) < 0 ||
		    sum_dir(ffd, "cur", &bytes, &count, error_r) < 0) {
			(void)close(ffd);
			(void)closedir(d);
			return -1;
		}
		(void)close(ffd);
	}
	(void)closedir(d);

	/* Write it beside the messages in tmp/, then rename into place. */
	maildir_unique_name(st, &name);
	if (buf_puts(&name, ".maildirsize") < 0 ||
	    buf_printf(&text, "%" PRIu64 "S\n%" PRIu64 " %" PRIu64 "\n",
	    quota, bytes, count) < 0)
		log_panic("event=maildirsize error=\"buffer full\"");
	if (maildir_dir_open(dirfd, "tmp", 1, &tmp, error_r) < 0)
		goto out;
	fd = openat(tmp, name.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || maildir_write_all(fd, text.data, text.len) < 0 ||
	    renameat(tmp, name.data, dirfd, "maildirsize") < 0) {
		*error_r = err_fmt("write maildirsize: %s", strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		(void)unlinkat(tmp, name.data, 0);
		goto out;
	}
	(void)close(fd);
	*bytes_r = bytes;
	*count_r = count;
	ret = 0;
out:
	maildir_close_fd(&tmp);
	buf_free(&name);
	buf_free(&text);
	return ret;
}

int
maildir_quota_usage(struct maildir_store *st, int dirfd, uint64_t quota,
    uint64_t *bytes_r, uint64_t *count_r, const char **error_r)
{
	char text[MAILDIR_SIZE_MAX_FILE + 1];
	struct stat sb;
	uint64_t q, bytes, count;
	ssize_t n = -1;
	int fd;

	fd = openat(dirfd, "maildirsize", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    sb.st_size <= MAILDIR_SIZE_MAX_FILE)
			n = pread(fd, text, sizeof(text), 0);
		(void)close(fd);
	}
	if (n >= 0 && n <= MAILDIR_SIZE_MAX_FILE &&
	    maildir_size_parse(text, (size_t)n, &q, &bytes, &count) == 1 && q == quota) {
		*bytes_r = bytes;
		*count_r = count;
		return 0;
	}
	return quota_recalc(st, dirfd, quota, bytes_r, count_r, error_r);
}

void
maildir_quota_add(int dirfd, uint64_t size)
{
	char line[64];
	int fd, n;

	fd = openat(dirfd, "maildirsize", O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%" PRIu64 " 1\n", size);
	if (n > 0 && maildir_write_all(fd, line, (size_t)n) < 0)
		log_warn("event=maildirsize_append_failed error=\"%s\"", strerror(errno));
	(void)close(fd);
}
