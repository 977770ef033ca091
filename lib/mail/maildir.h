/*
 * maildir: the Maildir module, the one place that knows the Maildir
 * format and the mail store.  The writer (local(8), later imapd's APPEND)
 * and the readers (pop3d, later imapd) share it.
 *
 * Names: maildir_* is the format and the store -- file names and their
 * fields, CRLF sizes, a message's header and the loop check, delivery
 * (the store, maildir_prepare/commit/finish), the Maildir++ quota;
 * mailbox_* is one Maildir opened by an access daemon -- listing, flags,
 * expunge, the session lock -- and the export of its messages as network
 * text.  The files:
 *
 *   maildir.c        the format: names, sizes, CRLF export, headers, and
 *                    the symlink-safe directory walks
 *   maildir_write.c  delivery: the store, its cache of open Maildirs,
 *                    tmp/ -> fsync -> new/ -> fsync new/ in groups
 *   maildir_quota.c  the Maildir++ quota (maildirsize)
 *   maildir_read.c   the reader (mailbox_*) and its size cache
 *   maildir_impl.h   what those files share, for them only
 *
 * Safety: every path below the store is opened one component at a time
 * with O_NOFOLLOW relative to a directory fd, so a symlink anywhere below
 * the store is refused, never followed; directories created here get
 * mode 0700.
 *
 * The name in new/ is "UNIQUE,S=<bytes on disk>,W=<bytes with CRLF line
 * ends>" (Dovecot's convention), so a reader lists sizes without opening
 * a message; W counts each LF not preceded by CR twice.  A file without
 * ",W=" is read once and its size kept in the cache file
 * MAILBOX_VSIZE_CACHE inside the Maildir (rebuilt from the messages alone
 * whenever it is missing or damaged).
 *
 * Delivery failures carry the agent protocol's status (lib/core/agentproto.h)
 * and an enhanced status code from the start: a full disk, an unwritable
 * or unsafe mailbox, or a full quota are temporary (AGENT_TEMP).
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
/* RFC 1939: a unique-id is 1 to 70 characters 0x21..0x7E. */
#define MAILDIR_UIDL_MAX 70
/* The readers' size cache, in the Maildir's own directory. */
#define MAILBOX_VSIZE_CACHE "postern-vsize"

/* --- the format: names, sizes, network text, headers (maildir.c) ------ */

/*
 * The unique id of a maildir file name, stable while its flags change or
 * it moves from new/ to cur/: the base name (up to the first ',' or ':')
 * if that is 1..MAILDIR_UIDL_MAX characters of 0x21..0x7E, else 40 hex
 * digits of the SHA-1 of the base name.  Writes a NUL-terminated string.
 */
void maildir_uidl(const char *name, char out[MAILDIR_UIDL_MAX + 1]);

/*
 * The value of the ",KEY=<digits>" field (key 'S' or 'W') of a maildir
 * file name, before any ':'.  1 with *size_r, 0 if absent or malformed.
 */
int maildir_name_size(const char *name, char key, uint64_t *size_r);

/*
 * The CRLF size of n bytes of text: n plus the LFs not preceded by CR
 * (the bytes a CRLF conversion adds).  To size a file in chunks, start
 * with *prev_cr = 0 and pass the same prev_cr to each call (it carries
 * whether the last byte so far was CR); prev_cr may be NULL for a single
 * chunk.
 */
uint64_t maildir_crlf_size(const char *p, size_t n, int *prev_cr);

/*
 * Exporting a message as network text: bare LF becomes CRLF, CRLF stays,
 * a lone CR is passed through unchanged; if dotstuff, a line starting
 * with '.' gets another '.' in front (RFC 1939); if body_lines >= 0, the
 * output ends after the header, the empty line, and that many body lines
 * (POP3 TOP).  The output never contains the terminating ".".
 */
struct mailbox_export {
	int dotstuff;
	int64_t body_lines;	/* -1: the whole message */
	/* private state */
	int bol;		/* at the start of a line */
	int prev_cr;		/* the last byte seen was CR */
	int in_body;		/* past the empty line ending the header */
	int done;		/* body_lines reached */
	int64_t lines;		/* body lines sent */
	int header_empty;	/* the current header line is empty so far */
};

/* Start an export. */
void mailbox_export_init(struct mailbox_export *x, int dotstuff, int64_t body_lines);
/*
 * Convert n bytes of the file, appending to out (at most 2 * n bytes:
 * size out->max for that).  Any chunking of the file gives the same
 * output.  Returns 1 if the export is complete (TOP's line count reached:
 * feed no more; further calls append nothing and return 1), 0 to go on,
 * -1 if out is full (out->max; out then holds a prefix: treat as an
 * error).
 */
int mailbox_export_feed(struct mailbox_export *x, const char *p, size_t n,
    struct buf *out) __attribute__((warn_unused_result));
/*
 * End the export: appends CRLF if the last line had no line end (so the
 * caller's ".\r\n" terminator starts a line; a file ending in a lone CR
 * thus ends "\r\r\n").  Nothing after a TOP that completed.  0, or -1 if
 * out is full.
 */
int mailbox_export_end(struct mailbox_export *x, struct buf *out)
	__attribute__((warn_unused_result));

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
 * Whether header (the message's header lines, LF endings) has a
 * Delivered-To field (any case, possibly folded, address optionally in
 * angle brackets) whose value is address (case-insensitively).  1 or 0.
 */
int maildir_has_delivered_to(const char *header, size_t len, const char *address);

/* --- delivery (maildir_write.c) --------------------------------------- */

/*
 * The store keeps recently used Maildirs open (an LRU of their directory
 * fds, keyed by mailbox path): a cached Maildir is revalidated before
 * each use with one fstatat() of its new/ through the store (a removed,
 * renamed or replaced Maildir is walked again), and a file creation that
 * fails with ENOENT or ESTALE in a cached tmp/ walks again once.
 *
 * A message goes to tmp/ under a unique name, is fsync'd, renamed into
 * new/ and new/ is fsync'd -- for a batch of messages at once (group
 * commit: maildir_prepare on the event loop, maildir_commit on a sync
 * thread, then maildir_finish on the loop), each new/ synced once.
 */
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
 * fsync each file (fs_fsync "maildir-file"), rename it into new/ under
 * its final name (never replacing a file: RENAME_NOREPLACE, or link and
 * unlink where the file system lacks it), then fsync each distinct new/
 * directory once (fs_fsync "maildir-dir").  A message that fails at any
 * step is removed from tmp/ and new/ (whole message or none).
 * Thread-safe: touches nothing but ps (no logging, no shared state);
 * maildir_finish() reports.
 */
void maildir_commit(struct maildir_pending *const *ps, size_t n);

/*
 * The outcome of a prepared message into *res (AGENT_OK only if
 * maildir_commit() made it durable in new/; a message never committed
 * is removed and AGENT_TEMP), the quota updated and logged; frees *pp.
 */
void maildir_finish(struct maildir_pending **pp, struct maildir_result *res);

/* --- the Maildir++ quota (maildir_quota.c) ---------------------------- */

/*
 * Maildir++ quota of the Maildir open at dirfd: the bytes and messages in
 * use, from maildirsize, recalculated (and the file rewritten; its
 * temporary name is one of st's unique names) when it is missing,
 * unparsable, over MAILDIR_SIZE_MAX_FILE bytes or names another quota.
 * 0 with *bytes_r and *count_r, or -1 with *error_r.  Exposed for unit
 * tests.
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

/* --- one Maildir read by an access daemon (maildir_read.c) ------------ */

/*
 * A listed message, owned by the mailbox: valid until the next scan or
 * close.  name is replaced (the old string freed) when an operation on
 * the message renames it or finds it renamed, so do not keep name itself.
 */
struct mailbox_msg {
	char *name;		/* file name in new/ or cur/ (may change: flags) */
	int in_new;		/* 1: the file is in new/ */
	/* size with CRLF line ends: maildir_crlf_size() of the file, i.e.
	 * what RETR sends before the terminator, without dot-stuffing and
	 * without the CRLF mailbox_export_end() adds to a last line that has
	 * none (Dovecot counts the same way) */
	uint64_t vsize;
	char uidl[MAILDIR_UIDL_MAX + 1];	/* see maildir_uidl() */
};

struct mailbox;

/*
 * Open the Maildir at path (relative to the mail store's directory fd
 * storefd, e.g. "example.test/demo"), creating it and its tmp/ new/ cur/
 * (0700) when missing: a user who never got mail has an empty mailbox.
 * 0 with *mb_r, or -1 with *error_r.
 */
int mailbox_open(int storefd, const char *path, struct mailbox **mb_r,
    const char **error_r) __attribute__((warn_unused_result));
/* Close the mailbox (releasing its lock); sets *mbp to NULL. */
void mailbox_close(struct mailbox **mbp);

/*
 * Take the exclusive lock named lockname (a file in the Maildir's
 * directory, e.g. "postern-pop3.lock", flock()ed without waiting) for as
 * long as the mailbox stays open.  Delivery never takes it.  1 locked,
 * 0 held by another session (in this or any process), -1 with *error_r
 * (also if this mailbox already holds a lock, or lockname has a '/').
 */
int mailbox_lock(struct mailbox *mb, const char *lockname, const char **error_r)
	__attribute__((warn_unused_result));

/*
 * Read new/ and cur/ into the message list, sorted by arrival (the
 * seconds, then microseconds, at the start of the maildir name; names
 * that do not start that way sort after, by name).  Files whose names
 * start with '.' and non-regular files are skipped.  If move_new, each
 * message in new/ is first renamed into cur/ as "NAME:2," (as Dovecot
 * does when a session sees it; one that cannot be moved is listed in
 * new/).  Copies of one base name in new/ and cur/ (another client moving
 * it meanwhile) are listed once, the cur/ one.  A file that vanishes
 * during the scan is left out.  The list replaces the previous one.
 * Sizes not in the names are taken from, or added to, the cache file
 * ("BASE DISKSIZE VSIZE" lines; an entry counts only while the file
 * still has DISKSIZE bytes), which is rewritten only when it changed.
 * A message that cannot be read to size it is logged and listed with its
 * ",S=" or disk size (opening it will fail).  0, or -1 with *error_r
 * (new/ or cur/ unreadable).
 */
int mailbox_scan(struct mailbox *mb, int move_new, const char **error_r)
	__attribute__((warn_unused_result));

/* The number of messages the last scan found, and message i (0-based). */
size_t mailbox_count(const struct mailbox *mb);
const struct mailbox_msg *mailbox_msg(const struct mailbox *mb, size_t i);

/*
 * Open message i for reading (a blocking, close-on-exec fd the caller
 * closes).  If its file was renamed since the scan (another client
 * changed flags or moved it to cur/), it is found again by its base name.
 * 1 with *fd_r, 0 if it is gone (expunged, by another client or by
 * mailbox_msg_expunge()), -1 with *error_r (a symlink or other
 * non-regular file in its place is refused, never followed).
 */
int mailbox_msg_open(struct mailbox *mb, size_t i, int *fd_r, const char **error_r)
	__attribute__((warn_unused_result));

/*
 * Add the flag letter (e.g. 'S' for \Seen) to message i: the file moves
 * into cur/ if in new/, its ":2," flags stay sorted and unique.  flag
 * must be a letter (A-Z, or a-z for keywords).  1 done (or already set),
 * 0 gone, -1 with *error_r.
 */
int mailbox_msg_flag(struct mailbox *mb, size_t i, char flag, const char **error_r)
	__attribute__((warn_unused_result));

/* Delete message i (unlink).  1 removed, 0 already gone, -1 with *error_r. */
int mailbox_msg_expunge(struct mailbox *mb, size_t i, const char **error_r)
	__attribute__((warn_unused_result));

#endif
