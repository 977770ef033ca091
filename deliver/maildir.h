/*
 * maildir: writing one message into a Maildir (or a Maildir++ folder) of
 * the mail store, safely: every path below the store is opened component
 * by component with O_NOFOLLOW relative to the store's directory fd, so a
 * symlink anywhere below the store is refused, never followed; missing
 * directories are created with mode 0700; the message goes to tmp/ under
 * a unique name, is fsync'd, renamed into new/ and new/ is fsync'd -- for
 * a batch of messages at once (group commit: maildir_prepare, then
 * maildir_commit, then maildir_finish), each new/ synced once.  Also
 * the Maildir++ quota (maildirsize) and the Delivered-To loop check.
 *
 * The name in new/ is "UNIQUE,S=<bytes on disk>,W=<bytes with CRLF line
 * ends>" (Dovecot's convention: readers such as lib/mailbox list sizes
 * without opening a message); W counts each LF not preceded by CR twice.
 *
 * The store keeps recently used Maildirs open (an LRU of their directory
 * fds, keyed by mailbox path): a cached Maildir is revalidated before
 * each use with one fstatat() of its new/ through the store (a removed,
 * renamed or replaced Maildir is walked again), and a file creation that
 * fails with ENOENT or ESTALE in a cached tmp/ walks again once.
 *
 * Failures carry the agent protocol's status (lib/agentproto.h) and an
 * enhanced status code from the start: a full disk, an unwritable or
 * unsafe mailbox, or a full quota are temporary (AGENT_TEMP).
 */
#ifndef POSTERN_MAILDIR_H
#define POSTERN_MAILDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/* The largest message header the loop check reads. */
#define MAILDIR_MAX_HEADER (1024 * 1024)
/* maildirsize is recalculated once it grows past this (Maildir++). */
#define MAILDIR_SIZE_MAX_FILE 5120
/* Maildirs a store keeps open unless told otherwise. */
#define MAILDIR_CACHE_DEFAULT 128

struct maildir_store;

/* A delivery's outcome: status is AGENT_OK, AGENT_TEMP or AGENT_PERM;
 * esc and text are static or err_fmt() strings (valid briefly).  Where
 * maildir_finish() delivered, where is "mailbox=M folder=F file=NAME
 * size=N" for the caller's log line (finish logs no success of its
 * own), else "". */
struct maildir_result {
	int status;
	const char *esc;
	const char *text;
	const char *where;
};

/* One message to write. */
struct maildir_msg {
	int fd;			/* the queue file (read with pread) */
	uint64_t offset;	/* where the message starts */
	uint64_t size;		/* its length in bytes */
	const char *return_path;	/* the sender, "" for <> */
	const char *delivered_to;	/* the final address */
	const char *data;	/* NULL, or the whole message (size bytes) in
				 * memory: then fd is not read */
};

/*
 * Open the mail store at path (a directory, owned by whoever runs us) for
 * deliveries; hostname goes into the unique names (encoded: '/' as \057,
 * ':' as \072).  0 with *store_r, or -1 with *error_r.
 */
int maildir_store_open(const char *path, const char *hostname,
    struct maildir_store **store_r, const char **error_r)
	__attribute__((warn_unused_result));
void maildir_store_close(struct maildir_store **storep);

/*
 * Keep up to n Maildirs open (three fds each; n is lowered to what
 * RLIMIT_NOFILE leaves room for).  0 closes every cached Maildir and
 * caches no more (a retiring process).  Deliveries in progress keep
 * their own reference.  The default is MAILDIR_CACHE_DEFAULT.
 */
void maildir_store_cache_size(struct maildir_store *st, size_t n);

/* Cache statistics for tests and logs: Maildirs open now, lookups that
 * used an open one, and walks from the store. */
void maildir_store_cache_stats(const struct maildir_store *st, size_t *open_r,
    uint64_t *hits_r, uint64_t *walks_r);

/*
 * The next unique file name (without ",S=") into out:
 * "SECONDS.M<usec>P<pid>Q<counter>.HOST".  Exposed for unit tests.
 */
void maildir_unique_name(struct maildir_store *st, struct buf *out);

/*
 * Deliver m into the Maildir at mailbox (relative to the store, e.g.
 * "example.test/demo/"), or into its folder ".TAG" if tag is not NULL,
 * consists of safe characters ([A-Za-z0-9_-]) and a folder of that name
 * (compared case-insensitively) exists.  quota in bytes (0: none) is
 * checked and kept in the Maildir's maildirsize.  The file written is
 * "Return-Path: <SENDER>\nDelivered-To: ADDRESS\n" then the message,
 * named "UNIQUE,S=<size>,W=<CRLF size>" in new/.
 * header/header_len is the message's header (for the loop check; see
 * maildir_read_header).  Fills *res (never fails otherwise); on a
 * failure nothing is left in new/ or tmp/.
 */
void maildir_deliver(struct maildir_store *st, const char *mailbox,
    const char *tag, uint64_t quota, const struct maildir_msg *m,
    const char *header, size_t header_len, struct maildir_result *res);

/* A message written into tmp/ but not yet synced or in new/. */
struct maildir_pending;

/*
 * maildir_deliver's first half: the same checks, then the file written
 * into tmp/ without fsync.  A failure fills *res (never AGENT_OK) with
 * *p_r NULL; otherwise *p_r is set (res says AGENT_OK provisionally) and
 * the delivery is not done until maildir_commit() and maildir_finish().
 * *p_r refers to st (its log limit), which must outlive it.
 */
void maildir_prepare(struct maildir_store *st, const char *mailbox,
    const char *tag, uint64_t quota, const struct maildir_msg *m,
    const char *header, size_t header_len, struct maildir_result *res,
    struct maildir_pending **p_r);

/*
 * Commit n prepared messages together: start every file's writeback,
 * fsync each file, rename it into new/ under its final name (never
 * replacing a file: RENAME_NOREPLACE, or link and unlink where the file
 * system lacks it), then fsync each distinct new/ directory once.  A message that fails at any step is removed from tmp/
 * and new/ (whole message or none).  Thread-safe: touches nothing but
 * ps (no logging, no shared state); maildir_finish() reports.
 */
void maildir_commit(struct maildir_pending *const *ps, size_t n);

/*
 * The outcome of a prepared message into *res (AGENT_OK only if
 * maildir_commit() made it durable in new/; a message never committed
 * is removed and AGENT_TEMP), the quota updated and logged; frees *pp.
 */
void maildir_finish(struct maildir_pending **pp, struct maildir_result *res);

/*
 * Read the message's header (up to and including the empty line, at most
 * MAILDIR_MAX_HEADER bytes) from fd at offset into out.  0, or -1 with
 * *error_r (a read error).
 */
int maildir_read_header(int fd, uint64_t offset, uint64_t size, struct buf *out,
    const char **error_r) __attribute__((warn_unused_result));

/*
 * The length of the header at the start of the n bytes at p, as
 * maildir_read_header() would read it: up to and including the LF before
 * the empty line (at most MAILDIR_MAX_HEADER bytes); 0 if p starts with
 * the empty line.
 */
size_t maildir_header_span(const char *p, size_t n);

/*
 * How many LFs in the n bytes at p are not preceded by CR (the bytes a
 * CRLF conversion adds).  *prev_cr says whether the byte before p was CR
 * and is updated for the next piece.  Exposed for unit tests.
 */
uint64_t maildir_bare_lfs(const char *p, size_t n, int *prev_cr);

/*
 * Whether header (the message's header lines, LF endings) has a
 * Delivered-To field (any case, possibly folded, address optionally in
 * angle brackets) whose value is address (case-insensitively).  1 or 0.
 */
int maildir_has_delivered_to(const char *header, size_t len, const char *address);

/*
 * Maildir++ quota of the Maildir open at dirfd: the bytes and messages in
 * use, from maildirsize, recalculated (and the file rewritten) when it is
 * missing, unparsable, over MAILDIR_SIZE_MAX_FILE bytes or names another
 * quota.  0 with *bytes_r and *count_r, or -1 with *error_r.  Exposed for
 * unit tests.
 */
int maildir_quota_usage(struct maildir_store *st, int dirfd, uint64_t quota,
    uint64_t *bytes_r, uint64_t *count_r, const char **error_r)
	__attribute__((warn_unused_result));

/*
 * Parse maildirsize contents: 1 with the sums (and *quota_r from the
 * first line's "<bytes>S"), 0 if it is not valid Maildir++ syntax.
 */
int maildir_size_parse(const char *text, size_t len, uint64_t *quota_r,
    uint64_t *bytes_r, uint64_t *count_r);

#endif
