/*
 * qctl: the client side of qmgr's control socket (lib/core/qmgrproto.h), shared
 * by postern(8)'s queue commands, mailq(1) and sendmail -bp.  Every
 * function prints its own errors on stderr, prefixed with the program
 * name given to qctl_open(), and every string from the server is printed
 * escaped.
 */
#ifndef POSTERN_QCTL_H
#define POSTERN_QCTL_H

#include <stdint.h>
#include <stdio.h>

#include "buf.h"

/* Where the instance lives, from its config. */
struct qctl_where {
	const char *run_dir;	/* holds qmgr.ctl */
	const char *pid_file;	/* master's, locked while it runs */
	int root_mode;		/* mode = root: only root may connect */
};

/* An open control connection. */
struct qctl {
	const char *prog;	/* message prefix, e.g. "mailq" */
	int fd;
	uint32_t next_id;	/* id of the next request */
};

/*
 * Check that the caller may use the control socket (root in root mode),
 * that master runs (its pid file is locked) and that qmgr.ctl exists,
 * then connect and exchange hellos.  0, or -1 after printing why.
 * prog must outlive the connection.
 */
int qctl_open(struct qctl *q, const char *prog, const struct qctl_where *w)
	__attribute__((warn_unused_result));
/* Close the connection (if open). */
void qctl_close(struct qctl *q);

/*
 * List the whole queue on out, page by page (QMGR_LIST_MAX messages a
 * request), in mailq's format, ending with the summary line or "Mail
 * queue is empty".  0, or -1 after printing why on stderr (pages already
 * complete stay printed; a malformed page is not printed).
 */
int qctl_list(struct qctl *q, FILE *out) __attribute__((warn_unused_result));

/*
 * Send one request of type (QMGR_FLUSH, QMGR_DELETE, ...) with arg as its
 * str field (NULL: no field, for QMGR_FLUSH) and read the QMGR_DONE
 * answer: the affected count into *affected_r, the server's text,
 * escaped for printing, into text (emptied first).  0, or -1 after
 * printing why (outputs untouched).
 */
int qctl_request(struct qctl *q, uint32_t type, const char *arg,
    uint32_t *affected_r, struct buf *text) __attribute__((warn_unused_result));

/*
 * Append s for a terminal: printable ASCII and well-formed UTF-8 as they
 * are; control characters, C1 and bidirectional controls, malformed
 * UTF-8 and backslash as \xHH (backslash as \\); at most cap bytes of s,
 * then "...".
 */
void qctl_put_safe(struct buf *b, const char *s, size_t cap);

/* mailq and sendmail -bp: open, list, close.  Returns the exit status
 * (0, or 1 after printing why). */
int qctl_mailq(const char *prog, const struct qctl_where *w);

#endif
