/*
 * pop3d mailbox jobs: the Maildir work that can take seconds -- the scan
 * at login (it reads every message whose name has no ",W=" once) and the
 * UPDATE at QUIT (one unlink or rename per message) -- runs on a
 * lib/core/worker pool of POP3D_WORKERS threads, so one session's big mailbox
 * never stalls the other sessions of the process.
 *
 * Ownership: while a job is queued or running, the job owns the mailbox
 * (and, for UPDATE, the deleted/retrieved flags); the thread touches
 * only the job's own fields, never the session or the loop.  The session
 * waits (reads no input, idle timer off) until done() on the loop hands
 * the result back.  A waiting session reads nothing, so a client that
 * hangs up is normally noticed when its job is done; a session freed
 * earlier (SIGTERM) is detached (job->s = NULL, written only on the
 * loop): a queued scan is dropped at once, a running one finishes and
 * its mailbox is closed; an UPDATE goes on to the end (the client did
 * send QUIT) unless the process is stopping.  A stopped process waits
 * for the jobs running (one scan or one UPDATE chunk each) and drops the
 * rest: the messages not yet deleted stay, nothing is lost.
 *
 * Fairness: jobs run in FIFO order (the pool's queue); an UPDATE
 * does POP3D_UPDATE_CHUNK unlinks or renames per run and goes back to the
 * end of the queue, so a big QUIT holds a thread for tens of ms at a time.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maildir.h"
#include "pop3d.h"
#include "worker.h"
#include "xalloc.h"

enum job_kind { JOB_SCAN, JOB_UPDATE };

struct pop3d_job {
	struct pop3d_session *s;	/* NULL: detached (loop only) */
	enum job_kind kind;
	uint64_t sid;			/* the session number, for the log */
	char *user;			/* the login, for the log */
	struct mailbox *mb;

	/* JOB_SCAN */
	int move_new;
	int result;			/* mailbox_scan()'s */
	char *error;			/* its reason (the thread's err_fmt copied) */

	/* JOB_UPDATE */
	unsigned char *deleted, *retrieved;
	size_t nmsgs;
	size_t pos;			/* the next message to look at */
	unsigned removed, seen, failed, unflagged;
};

/* --- In the thread ---------------------------------------------------------- */

/* Scan the mailbox. */
static void
scan_run(void *arg)
{
	struct pop3d_job *j = arg;
	const char *error = NULL;

	j->result = mailbox_scan(j->mb, j->move_new, &error);
	if (j->result < 0)
		j->error = xstrdup(error != NULL ? error : "unknown error");
}

/* Do the next POP3D_UPDATE_CHUNK deletions and flag changes. */
static void
update_run(void *arg)
{
	struct pop3d_job *j = arg;
	const char *error = NULL;
	unsigned ops = 0;

	for (; j->pos < j->nmsgs && ops < POP3D_UPDATE_CHUNK; j->pos++) {
		size_t i = j->pos;
		int r;

		if (j->deleted[i]) {
			r = mailbox_msg_expunge(j->mb, i, &error);
			if (r > 0)
				j->removed++;
			else if (r < 0)
				j->failed++;
		} else if (j->retrieved[i]) {
			r = mailbox_msg_flag(j->mb, i, 'S', &error);
			if (r > 0)
				j->seen++;
			else if (r < 0)
				j->unflagged++;
		} else {
			continue;
		}
		ops++;
		if (r < 0)
			log_error("event=update_failed session=%llu user=%s msg=%s "
			    "op=%s error=\"%s\"", (unsigned long long)j->sid,
			    log_safe(j->user), log_safe(mailbox_msg(j->mb, i)->name),
			    j->deleted[i] ? "expunge" : "flag", error);
	}
}

/* --- On the loop ------------------------------------------------------------ */

/* Free a job and whatever it still owns (closing the mailbox releases
 * the session's lock). */
static void
job_free(struct pop3d *pd, struct pop3d_job *j)
{
	if (j->mb != NULL)
		mailbox_close(&j->mb);
	free(j->deleted);
	free(j->retrieved);
	free(j->error);
	free(j->user);
	free(j);
	pd->njobs--;
}

/* Queue a job behind the others; the first idle thread runs it. */
static void
job_queue(struct pop3d *pd, struct pop3d_job *j)
{
	worker_submit(pd->pool, j->kind == JOB_SCAN ? scan_run : update_run, j);
}

/* A scan finished: hand the mailbox to the session, or close it. */
static void
scan_done(struct pop3d *pd, struct pop3d_job *j)
{
	struct pop3d_session *s = j->s;
	const char *tls;

	if (s == NULL) {
		log_info("event=scan_dropped session=%llu user=%s result=%d",
		    (unsigned long long)j->sid, log_safe(j->user), j->result);
		job_free(pd, j);
		return;
	}
	s->job = NULL;
	if (j->result < 0) {
		log_error("event=mailbox_scan_failed session=%llu user=%s error=\"%s\"",
		    (unsigned long long)s->ss->id, log_safe(j->user), j->error);
		pop3d_err(s, POP3_CODE_SYS_TEMP, "Cannot read the mailbox");
	} else {
		s->mb = j->mb;
		j->mb = NULL;
		s->nmsgs = mailbox_count(s->mb);
		s->deleted = xcalloc(s->nmsgs + 1, 1);
		s->retrieved = xcalloc(s->nmsgs + 1, 1);
		s->login = xstrdup(j->user);
		s->pstate = POP3_TRANSACTION;
		tls = session_tls_text(s->ss);
		log_info("event=login session=%llu client=%s user=%s mech=%s "
		    "tls=%s msgs=%zu", (unsigned long long)s->ss->id, s->ss->addr,
		    log_safe(s->login), s->mech, tls != NULL ? tls : "no", s->nmsgs);
		pop3d_ok(s, "Logged in, %zu messages", s->nmsgs);
	}
	job_free(pd, j);
	session_resume(s->ss);
}

/* An UPDATE chunk finished: requeue the rest, or report. */
static void
update_done(struct pop3d *pd, struct pop3d_job *j)
{
	struct pop3d_session *s = j->s;

	if (j->pos < j->nmsgs) {
		if (!pd->stopping) {
			job_queue(pd, j);
			return;
		}
		log_warn("event=update_interrupted session=%llu user=%s deleted=%u "
		    "seen=%u failed=%u left=%zu", (unsigned long long)j->sid,
		    log_safe(j->user), j->removed, j->seen, j->failed,
		    j->nmsgs - j->pos);
		if (s != NULL)
			s->job = NULL;
		job_free(pd, j);
		return;
	}
	log_info("event=update session=%llu user=%s deleted=%u seen=%u failed=%u "
	    "unflagged=%u", (unsigned long long)j->sid, log_safe(j->user),
	    j->removed, j->seen, j->failed, j->unflagged);
	mailbox_close(&j->mb);		/* the lock goes before the reply */
	if (s != NULL) {
		s->job = NULL;
		s->ndele = j->removed;
		if (j->failed > 0)
			pop3d_close_after(s,
			    "-ERR [SYS/TEMP] Some deleted messages were not removed");
		else
			pop3d_close_after(s, "+OK Logging out");
	}
	job_free(pd, j);
	if (s != NULL)
		session_resume(s->ss);
}

/* worker: a job finished in one of the pool's threads. */
static void
job_done(void *job, void *arg)
{
	struct pop3d *pd = arg;
	struct pop3d_job *j = job;

	if (j->kind == JOB_SCAN)
		scan_done(pd, j);
	else
		update_done(pd, j);
}

/* A new job for session s (which then waits). */
static struct pop3d_job *
job_new(struct pop3d_session *s, enum job_kind kind, const char *user)
{
	struct pop3d_job *j = xcalloc(1, sizeof(*j));

	j->s = s;
	j->kind = kind;
	j->sid = s->ss->id;
	j->user = xstrdup(user);
	s->job = j;
	s->pd->njobs++;
	session_wait_untimed(s->ss);
	return j;
}

void
job_scan(struct pop3d_session *s, struct mailbox *mb, const char *user)
{
	struct pop3d_job *j = job_new(s, JOB_SCAN, user);

	j->mb = mb;
	j->move_new = s->pd->set.move_new;
	job_queue(s->pd, j);
}

void
job_update(struct pop3d_session *s)
{
	struct pop3d_job *j = job_new(s, JOB_UPDATE, s->login);

	/* The mailbox and the flags are the job's from now on. */
	j->mb = s->mb;
	j->deleted = s->deleted;
	j->retrieved = s->retrieved;
	j->nmsgs = s->nmsgs;
	s->mb = NULL;
	s->deleted = NULL;
	s->retrieved = NULL;
	s->nmsgs = 0;
	job_queue(s->pd, j);
}

void
job_detach(struct pop3d_session *s)
{
	struct pop3d *pd = s->pd;
	struct pop3d_job *j = s->job;

	if (j == NULL)
		return;
	s->job = NULL;
	j->s = NULL;
	if (j->kind != JOB_SCAN)
		return;		/* QUIT was sent: the UPDATE goes on */
	/* A scan not started yet is dropped; a running one must finish. */
	if (worker_cancel(pd->pool, j))
		job_free(pd, j);
}

int
jobs_start(struct pop3d *pd, const char **error_r)
{
	return worker_start(pd->d->loop, POP3D_WORKERS, job_done, pd, &pd->pool,
	    error_r);
}

/* worker_stop: a job that will not report (ran: it ran to its end). */
static void
job_settle(void *job, int ran, void *arg)
{
	struct pop3d *pd = arg;
	struct pop3d_job *j = job;

	(void)ran;
	if (j->kind == JOB_UPDATE && j->pos < j->nmsgs)
		log_warn("event=update_interrupted session=%llu user=%s "
		    "deleted=%u left=%zu", (unsigned long long)j->sid,
		    log_safe(j->user), j->removed, j->nmsgs - j->pos);
	if (j->s != NULL)
		j->s->job = NULL;
	job_free(pd, j);
}

void
jobs_stop(struct pop3d *pd)
{
	pd->stopping = 1;
	/* Waits for the jobs running; the others never start. */
	worker_stop(&pd->pool, job_settle, pd);
}
