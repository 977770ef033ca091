/*
 * mailbox: reading one Maildir for the access daemons (pop3d now, imapd
 * later): listing new/ and cur/ in arrival order, each message's unique
 * id and its size as the network sees it (CRLF line ends), moving new
 * mail to cur/, flags in the file name, deletion by unlink, a per-session
 * lock that never blocks delivery, and exporting a message as CRLF text
 * (dot-stuffed for POP3, optionally cut after N body lines for TOP).
 *
 * Sizes: local(8) names its files "...,S=<bytes on disk>,W=<bytes with
 * CRLF line ends>" (the Dovecot convention), so listing a mailbox reads
 * no message.  A file without ",W=" is read once and its size kept in the
 * cache file MAILBOX_VSIZE_CACHE inside the Maildir (rebuilt from the
 * messages alone whenever it is missing or damaged).
 *
 * The directory walk is lib/mstore's: a symlink below the store is refused.
 */
#ifndef POSTERN_MAILBOX_H
#define POSTERN_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* RFC 1939: a unique-id is 1 to 70 characters 0x21..0x7E. */
#define MAILBOX_UIDL_MAX 70
/* The size cache, in the Maildir's own directory. */
#define MAILBOX_VSIZE_CACHE "postern-vsize"

/*
 * A listed message, owned by the mailbox: valid until the next scan or
 * close.  name is replaced (the old string freed) when an operation on
 * the message renames it or finds it renamed, so do not keep name itself.
 */
struct mailbox_msg {
	char *name;		/* file name in new/ or cur/ (may change: flags) */
	int in_new;		/* 1: the file is in new/ */
	/* size with CRLF line ends: mailbox_crlf_size() of the file, i.e.
	 * what RETR sends before the terminator, without dot-stuffing and
	 * without the CRLF mailbox_export_end() adds to a last line that has
	 * none (Dovecot counts the same way) */
	uint64_t vsize;
	char uidl[MAILBOX_UIDL_MAX + 1];	/* see mailbox_uidl() */
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

/*
 * The unique id of a maildir file name, stable while its flags change or
 * it moves from new/ to cur/: the base name (up to the first ',' or ':')
 * if that is 1..MAILBOX_UIDL_MAX characters of 0x21..0x7E, else 40 hex
 * digits of the SHA-1 of the base name.  Writes a NUL-terminated string.
 */
void mailbox_uidl(const char *name, char out[MAILBOX_UIDL_MAX + 1]);

/*
 * The value of the ",KEY=<digits>" field (key 'S' or 'W') of a maildir
 * file name, before any ':'.  1 with *size_r, 0 if absent or malformed.
 */
int mailbox_name_size(const char *name, char key, uint64_t *size_r);

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
 * The CRLF size of n bytes of text (n plus the bare LFs), for callers
 * that compute a vsize themselves.  To size a file in chunks, start with
 * *prev_cr = 0 and pass the same prev_cr to each call (it carries whether
 * the last byte so far was CR); prev_cr may be NULL for a single chunk.
 */
uint64_t mailbox_crlf_size(const char *p, size_t n, int *prev_cr);

#endif
