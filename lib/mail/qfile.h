/*
 * qfile: queue files.  One file per message: a versioned text envelope,
 * a blank line, then the message with LF line endings.  smtpd writes
 * them into spool/incoming, sendmail(1) into spool/maildrop, and qmgr
 * reads them (strictly: it does not trust their writers).
 *
 * Envelope lines (each "name value", values %XX-escaped so they never
 * contain spaces, control bytes, '%' or non-ASCII raw bytes):
 *
 *   POSTERN-QUEUE 1            format and version, always first
 *   id QUEUEID
 *   arrival SECONDS.MICROS     wall clock
 *   sender ADDRESS             "<>" for the null sender
 *   body 7BIT|8BITMIME
 *   smtputf8 0|1
 *   ret NONE|FULL|HDRS
 *   envid TEXT                 optional
 *   client ADDRESS             peer IP, or "local" for sendmail(1)
 *   helo NAME                  optional
 *   proto SMTP|ESMTP|ESMTPS|ESMTPA|ESMTPSA|LOCAL
 *   tls PROTOCOL:CIPHER        optional
 *   auth USER                  optional (authenticated user or local uid)
 *   rcpt ADDRESS NOTIFY ORCPT  one per recipient; NOTIFY is a number
 *                              (SMTP_NOTIFY_* bits), ORCPT "-" if none
 *   (blank line)
 *
 * Durability (DESIGN.md): nothing is acknowledged before the file is
 * fsync'd, named in new/ and the directory fsync'd.  qfile_commit() does
 * that for a batch of messages at once -- group commit -- so concurrent
 * sessions share one round of syncs.
 */
#ifndef POSTERN_QFILE_H
#define POSTERN_QFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QFILE_ID_MAX 32		/* bytes in a queue id, with the NUL */

struct qrcpt {
	char *addr;
	unsigned notify;	/* SMTP_NOTIFY_* bits */
	char *orcpt;		/* NULL if none */
};

struct envelope {
	char id[QFILE_ID_MAX];
	uint64_t arrival_us;
	char *sender;		/* "" for <> */
	int body_8bit;
	int smtputf8;
	int ret;		/* SMTP_RET_* */
	char *envid;
	char *client;		/* IP text, or "local" */
	char *helo;
	char *proto;
	char *tls;
	char *auth;
	struct qrcpt *rcpts;
	size_t nrcpts;
};

/* Free everything an envelope owns (not the struct). */
void envelope_free(struct envelope *e);
/* Append a recipient (copies the strings). */
void envelope_add_rcpt(struct envelope *e, const char *addr, unsigned notify,
    const char *orcpt);

/*
 * A new queue id: sortable by time, unique across processes and hosts
 * sharing a spool, safe as a file name ([0-9A-Za-z] only), at most
 * QFILE_ID_MAX - 1 bytes.
 */
void qfile_new_id(char id[QFILE_ID_MAX]);

struct qfile_writer;

/*
 * Start a message in dir (spool/incoming or spool/maildrop; its new/
 * subdirectory is where committed messages go).  The envelope's id is
 * set here.  The file is invisible in new/ until committed.  0 with *w_r,
 * or -1 with *error_r (a temporary failure: 451 4.3.0).
 */
int qfile_begin(const char *dir, struct envelope *env, struct qfile_writer **w_r,
    const char **error_r) __attribute__((warn_unused_result));
/* Append message bytes (LF line endings already).  Buffered.  0, or -1
 * (disk full, I/O error; the writer is then only good for qfile_abort). */
int qfile_write(struct qfile_writer *w, const void *p, size_t n)
	__attribute__((warn_unused_result));
/* Bytes of message written so far. */
uint64_t qfile_size(const struct qfile_writer *w);
/* Throw the message away; nothing stays behind.  Sets *wp = NULL. */
void qfile_abort(struct qfile_writer **wp);

/*
 * Group commit: make every writer in ws[0..n) durable and visible in new/
 * with as few syncs as possible (each file fsync'd -- after the first,
 * the journal has usually flushed the rest --, then named in new/, then
 * one fsync of new/).  results[i] is 0 for each message now safely
 * queued, -1 for one that is not (and has been removed); *error_r names
 * the first failure.  The writers are freed and the array entries set to
 * NULL either way.  Blocks for the syncs: call it once per loop batch.
 */
void qfile_commit(struct qfile_writer **ws, size_t n, int *results, const char **error_r);

/*
 * Read and check the envelope of the queue file open on fd (from its
 * start).  0 with *e_r filled and *body_offset_r the offset of the
 * message, or -1 with *error_r for anything malformed (unknown version,
 * missing or repeated field, bad escape, no recipient, too long).
 */
int qfile_read_envelope(int fd, struct envelope *e_r, off_t *body_offset_r,
    const char **error_r) __attribute__((warn_unused_result));

/*
 * The spool's free-space reserve (queue_minfree, as Postfix's): a writer
 * takes no new message while less than the reserve is free on the
 * spool's file system, or fewer than QFILE_MIN_INODES inodes, and none
 * whose declared size would leave less than the reserve.  So the queue
 * never fills the disk to the last block, and a client hears 452 4.3.1
 * before it sends the content rather than 451 after.
 */
#define QFILE_MIN_INODES	1000
#define QFILE_RESERVE_FLOOR	(100ULL * 1024 * 1024)
/* The reserve for queue_minfree = minfree: minfree itself, or for 0 the
 * larger of QFILE_RESERVE_FLOOR and 1.5 times the size limit. */
uint64_t qfile_reserve(uint64_t minfree, uint64_t max_size);
/* Whether a message of size bytes (0: not declared) may be taken with
 * bytes and inodes free: 1, or 0 with *why_r (static text). */
int qfile_room(uint64_t bytes, uint64_t inodes, uint64_t reserve, uint64_t size,
    const char **why_r) __attribute__((warn_unused_result));

/* For tests: 1 makes qfile_begin() use the tmp/ + rename path that
 * filesystems without O_TMPFILE get; 0 restores the normal choice. */
void qfile_set_force_tmp(int on);

#endif
