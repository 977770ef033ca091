/*
 * local: the agent service.  Each qmgr link may carry many AGENT_DELIVER
 * requests at once.  For each recipient the maps are consulted at once
 * (tag stripped, aliases expanded; addresses in other domains become
 * forwards), then every local address is looked up in the user database
 * through auth -- asynchronously -- and, when the answer comes, the
 * message is written into that user's Maildir (blocking the loop only for
 * the file I/O).  When the last lookup of a request is answered, its
 * AGENT_RESULT goes back, so results may come in any order.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentproto.h"
#include "alias.h"
#include "authclient.h"
#include "commit.h"
#include "local.h"
#include "log.h"
#include "maildir.h"
#include "map.h"
#include "xalloc.h"

#define MAX_ADDRESS 1024	/* longest envelope address accepted */
/* A message up to this size is read once per request and written to
 * every mailbox from memory; a larger one is copied from the queue file
 * for each. */
#define MAX_INMEM_MESSAGE (64 * 1024)
/* A request with up to this many local targets delivers to each final
 * address (and +tag) once, as Postfix's duplicate_filter_limit does. */
#define MAX_DEDUP_TARGETS 1000

struct conn;
struct req;

/* One local mailbox a recipient leads to, awaiting its user lookup. */
struct target {
	struct rcpt *rc;
	char *addr;		/* the final address without tag */
	char *tag;		/* its +tag, or NULL */
	struct auth_pending *ap;	/* NULL once answered */
	struct target *dup_of;	/* an earlier target with the same address
				 * and tag: no delivery of its own, it
				 * shares that one's outcome */
};

/* A delivery written into tmp/, in the group commit (lib/core/commit) with
 * its request as the owner. */
struct delivery {
	struct target *t;	/* valid while the owner is */
	struct maildir_pending *p;
	char *user;
};

/* One envelope recipient and its (merged) outcome. */
struct rcpt {
	struct req *rq;
	uint32_t index;
	char *address;
	int status;		/* AGENT_OK, AGENT_TEMP, AGENT_PERM */
	char *esc, *text;
	char **fwd;		/* addresses in other domains */
	size_t nfwd;
};

/* One AGENT_DELIVER in flight. */
struct req {
	struct conn *cn;
	struct req *next;
	uint32_t id;
	int fd;			/* the queue file */
	uint64_t offset, size;
	char *qid, *sender;
	struct rcpt *rcpts;
	size_t nrcpts;
	struct target *targets;
	size_t ntargets, pending;
	struct buf header;	/* read at the first delivery (large messages) */
	char *body;		/* the whole message, if small: read once */
	const char *hdr;	/* the header: in body or header.data */
	size_t hdr_len;
	int header_state;	/* 0 unread, 1 read, -1 unreadable */
};

/* One qmgr link. */
struct conn {
	struct local_server *srv;
	struct conn *next;
	struct ipc_link *link;
	struct req *reqs;
};

struct local_server {
	struct ev_loop *loop;
	struct local_settings set;	/* strings borrowed; peers copied */
	uid_t *peers;
	struct map *domains, *aliases, *mailboxes;
	struct maildir_store *store;
	struct auth_client *auth;
	struct conn *conns;
	size_t nconns;
	struct committer *cm;	/* the group commit of Maildir files */
	int retired;		/* local_server_retire() ran */
};

static int on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg);
static void on_close(struct ipc_link *l, const char *why, void *arg);

static const struct ipc_type agent_types[] = {
	/* str qid, u64 offset, str sender, u32 nrcpt, at least one rcpt */
	{ AGENT_DELIVER, 5 + 8 + 5 + 4 + 4 + 5, IPC_MAX_PAYLOAD, 1 },
};
static const struct ipc_proto agent_proto = { AGENT_PROTO, agent_types,
    sizeof(agent_types) / sizeof(agent_types[0]), on_msg, on_close };

void
local_split_tag(char delim, const char *addr, char **base_r, char **tag_r)
{
	const char *at = strrchr(addr, '@'), *t = NULL;
	struct buf b = BUF_INIT;

	if (at == NULL)
		at = addr + strlen(addr);
	if (delim != '\0' && (t = memchr(addr, delim, (size_t)(at - addr))) == addr)
		t = NULL;
	if (buf_append(&b, addr, (size_t)((t != NULL ? t : at) - addr)) < 0)
		log_panic("event=split_tag error=\"buffer full\"");
	for (const char *s = at; *s != '\0'; s++)
		if (buf_putc(&b, (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s)) < 0)
			log_panic("event=split_tag error=\"buffer full\"");
	*base_r = buf_steal(&b);
	*tag_r = t != NULL ? xstrndup(t + 1, (size_t)(at - t - 1)) : NULL;
}

/* How bad a status is: TEMP beats PERM beats OK. */
static int
severity(int status)
{
	return status == AGENT_TEMP ? 2 : status == AGENT_PERM ? 1 : 0;
}

/* Merge one outcome into a recipient's: the worst one (the first of
 * equals) is kept. */
static void
rcpt_set(struct rcpt *rc, int status, const char *esc, const char *text)
{
	if (rc->esc != NULL && severity(status) <= severity(rc->status))
		return;
	free(rc->esc);
	free(rc->text);
	rc->status = status;
	rc->esc = xstrdup(esc);
	rc->text = xstrdup(text);
}

/* Merge one outcome into target t's recipient and into those of the
 * targets that are t's duplicates. */
static void
target_set(struct target *t, int status, const char *esc, const char *text)
{
	struct req *rq = t->rc->rq;

	rcpt_set(t->rc, status, esc, text);
	for (size_t i = 0; i < rq->ntargets; i++)
		if (rq->targets[i].dup_of == t)
			rcpt_set(rq->targets[i].rc, status, esc, text);
}

/* Free a request (cancelling its lookups) and close its queue file. */
static void
req_free(struct req *rq)
{
	struct local_server *srv = rq->cn->srv;

	/* Deliveries being committed carry on without their request. */
	if (srv->cm != NULL)
		commit_forget(srv->cm, rq);
	for (size_t i = 0; i < rq->ntargets; i++) {
		if (rq->targets[i].ap != NULL)
			auth_client_cancel(srv->auth, rq->targets[i].ap);
		free(rq->targets[i].addr);
		free(rq->targets[i].tag);
	}
	free(rq->targets);
	for (size_t i = 0; i < rq->nrcpts; i++) {
		struct rcpt *rc = &rq->rcpts[i];

		free(rc->address);
		free(rc->esc);
		free(rc->text);
		for (size_t j = 0; j < rc->nfwd; j++)
			free(rc->fwd[j]);
		free(rc->fwd);
	}
	free(rq->rcpts);
	if (rq->fd >= 0)
		(void)close(rq->fd);
	free(rq->qid);
	free(rq->sender);
	buf_free(&rq->header);
	free(rq->body);
	free(rq);
}

/* Unlink rq from its connection's list and free it. */
static void
req_remove(struct req *rq)
{
	for (struct req **pp = &rq->cn->reqs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == rq) {
			*pp = rq->next;
			break;
		}
	req_free(rq);
}

/* Send the request's AGENT_RESULT and free it. */
static void
req_finish(struct req *rq)
{
	struct ipc_msg m;

	ipc_msg_init(&m, AGENT_RESULT, rq->id);
	ipc_put_u32(&m, (uint32_t)rq->nrcpts);
	for (size_t i = 0; i < rq->nrcpts; i++) {
		struct rcpt *rc = &rq->rcpts[i];
		/* Forwards only with success: a retried recipient is expanded
		 * again, so handing them out earlier would duplicate them. */
		size_t nfwd = rc->status == AGENT_OK ? rc->nfwd : 0;

		if (rc->esc == NULL)
			rcpt_set(rc, AGENT_OK, "2.0.0", "forwarded");
		ipc_put_u32(&m, rc->index);
		ipc_put_u32(&m, (uint32_t)rc->status);
		ipc_put_str(&m, rc->esc);
		ipc_put_str(&m, rc->text);
		ipc_put_u32(&m, (uint32_t)nfwd);
		for (size_t j = 0; j < nfwd; j++)
			ipc_put_str(&m, rc->fwd[j]);
		log_info("event=result queue_id=%s rcpt=%s status=%s esc=%s "
		    "forwards=%zu text=%s", log_safe(rq->qid), log_safe(rc->address),
		    rc->status == AGENT_OK ? "ok" : rc->status == AGENT_TEMP ?
		    "temp" : "perm", rc->esc, nfwd, log_safe(rc->text));
	}
	if (ipc_link_send(rq->cn->link, &m) < 0)
		log_warn("event=result_not_sent queue_id=%s", log_safe(rq->qid));
	ipc_msg_free(&m);
	req_remove(rq);
}

/* In the sync thread: make the batch's files durable (maildir_commit
 * reports nothing here; maildir_finish does, on the loop). */
static void
delivery_sync(void *const *items, size_t n, int *results, const char **error_r,
    void *arg)
{
	struct maildir_pending **ps = xcalloc(n ? n : 1, sizeof(*ps));

	(void)results;
	(void)error_r;
	(void)arg;
	for (size_t i = 0; i < n; i++)
		ps[i] = ((struct delivery *)items[i])->p;
	maildir_commit(ps, n);
	free(ps);
}

/* Queue a written delivery for the next batch. */
static void
delivery_commit(struct local_server *srv, struct target *t,
    struct maildir_pending *p, const char *user)
{
	struct delivery *dv = xcalloc(1, sizeof(*dv));

	*dv = (struct delivery){ t, p, xstrdup(user) };
	commit_add(srv->cm, dv, t->rc->rq);
}

/* Report one committed (or abandoned) delivery to its request, if it is
 * still there, and free it. */
static void
delivery_finish(struct delivery *dv, int owned)
{
	struct maildir_result res;
	struct target *t = owned ? dv->t : NULL;

	maildir_finish(&dv->p, &res);
	if (t != NULL) {
		struct rcpt *rc = t->rc;
		struct req *rq = rc->rq;

		log_info("event=delivery queue_id=%s rcpt=%s user=%s %s%sesc=%s "
		    "text=%s", log_safe(rq->qid), log_safe(rc->address),
		    log_safe(dv->user), res.where, res.where[0] != '\0' ? " " : "",
		    res.esc, log_safe(res.text));
		target_set(t, res.status, res.esc, res.text);
		if (--rq->pending == 0)
			req_finish(rq);
	}
	free(dv->user);
	free(dv);
}

/* On the loop: a batch is settled.  A request finished here forgets its
 * later entries itself (req_free), so each owner is read when reached. */
static void
deliveries_done(const struct commit_entry *e, size_t n, const char *error, void *arg)
{
	(void)error;
	(void)arg;
	for (size_t i = 0; i < n; i++)
		delivery_finish(e[i].item, e[i].owner != NULL);
}

/*
 * Read the request's message for its deliveries: a small one whole, once
 * (every mailbox of an alias fan-out is written from memory), a large one
 * only its header (the body is copied from the queue file per mailbox).
 * 0, or -1 with *error_r.
 */
static int
req_read(struct req *rq, const char **error_r)
{
	size_t n = (size_t)rq->size, got = 0;

	if (rq->size > MAX_INMEM_MESSAGE) {
		if (maildir_read_header(rq->fd, rq->offset, rq->size, &rq->header,
		    error_r) < 0)
			return -1;
		rq->hdr = rq->header.data != NULL ? rq->header.data : "";
		rq->hdr_len = rq->header.len;
		return 0;
	}
	rq->body = xmalloc(n + 1);
	while (got < n) {
		ssize_t r = pread(rq->fd, rq->body + got, n - got,
		    (off_t)(rq->offset + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*error_r = r < 0 ? err_fmt("read queue file: %s", strerror(errno)) :
			    "queue file is shorter than announced";
			return -1;
		}
		got += (size_t)r;
	}
	rq->body[n] = '\0';
	rq->hdr = rq->body;
	rq->hdr_len = maildir_header_span(rq->body, n);
	return 0;
}

/* Deliver the request's message to one mailbox of target t: written now,
 * committed with the next batch.  1 if queued for the commit (the outcome
 * comes later), 0 if rc's outcome is set already. */
static int
deliver_one(struct target *t, const char *user, const char *mailbox, uint64_t quota)
{
	struct rcpt *rc = t->rc;
	struct req *rq = rc->rq;
	struct local_server *srv = rq->cn->srv;
	struct maildir_result res;
	struct maildir_msg msg;
	struct maildir_pending *p;
	const char *error = "";

	if (rq->header_state == 0) {
		rq->header_state = req_read(rq, &error) < 0 ? -1 : 1;
		if (rq->header_state < 0)
			log_error("event=queue_file_unreadable queue_id=%s error=\"%s\"",
			    log_safe(rq->qid), error);
	}
	if (rq->header_state < 0) {
		target_set(t, AGENT_TEMP, "4.3.0", "queue file unreadable");
		return 0;
	}
	msg = (struct maildir_msg){ rq->fd, rq->offset, rq->size, rq->sender, user,
	    rq->body };
	maildir_prepare(srv->store, mailbox, srv->set.folder_delivery ? t->tag : NULL,
	    quota, &msg, rq->hdr, rq->hdr_len, &res, &p);
	if (p != NULL) {
		delivery_commit(srv, t, p, user);
		return 1;
	}
	log_info("event=delivery queue_id=%s rcpt=%s user=%s esc=%s text=%s",
	    log_safe(rq->qid), log_safe(rc->address), log_safe(user), res.esc,
	    log_safe(res.text));
	target_set(t, res.status, res.esc, res.text);
	return 0;
}

/* A user not in the password map may still have a virtual_mailboxes
 * entry: deliver there (no quota).  1 delivered or failed, 0 no entry;
 * *queued as deliver_one's result. */
static int
deliver_virtual(struct target *t, int *queued)
{
	struct local_server *srv = t->rc->rq->cn->srv;
	struct buf value, path = BUF_INIT;
	const char *error = "";
	int r;

	if (srv->mailboxes == NULL)
		return 0;
	buf_init(&value, MAP_MAX_VALUE);
	r = map_lookup(srv->mailboxes, t->addr, &value, &error);
	buf_free(&value);
	if (r == 1 && (r = mailbox_path(srv->mailboxes, t->addr, &path, &error)) == 0) {
		log_error("event=config_error map=virtual_mailboxes key=%s error=\"%s\"",
		    log_safe(t->addr), error);
		target_set(t, AGENT_TEMP, "4.3.5", "mailbox map entry unusable");
	} else if (r < 0) {
		log_error("event=map_lookup_failed map=virtual_mailboxes key=%s "
		    "error=\"%s\"", log_safe(t->addr), error);
		target_set(t, AGENT_TEMP, "4.3.0", "mailbox map unreadable");
	} else if (r == 1)
		*queued = deliver_one(t, t->addr, buf_cstr(&path), 0);
	buf_free(&path);
	return r == 0 ? 0 : 1;
}

/* The user database answered for one target. */
static void
on_lookup(enum auth_result result, int found, const char *user,
    const char *mailbox, uint64_t quota, int enabled, const char *reason, void *arg)
{
	struct target *t = arg;
	struct req *rq = t->rc->rq;
	int queued = 0;

	(void)enabled;		/* a disabled account still receives mail */
	t->ap = NULL;
	if (result != AUTH_RESULT_OK) {
		log_error("event=user_lookup_failed rcpt=%s error=%s",
		    log_safe(t->addr), log_safe(reason));
		target_set(t, AGENT_TEMP, "4.3.0", "user database unavailable");
	} else if (found && mailbox != NULL && mailbox[0] != '\0') {
		queued = deliver_one(t, user != NULL && user[0] != '\0' ? user :
		    t->addr, mailbox, quota);
	} else if (found || deliver_virtual(t, &queued) == 0) {
		target_set(t, AGENT_PERM, "5.1.1", err_fmt("no such user: %s",
		    log_safe(t->addr)));
	}
	if (queued)
		return;		/* the commit's end counts it */
	if (--rq->pending == 0)
		req_finish(rq);
}

/* Whether domain is one of ours: 1, 0, or -1 (map unreadable). */
static int
domain_local(struct local_server *srv, const char *domain)
{
	struct buf value;
	const char *error;
	int r;

	if (srv->domains == NULL)
		return 0;
	buf_init(&value, MAP_MAX_VALUE);
	r = map_lookup(srv->domains, domain, &value, &error);
	buf_free(&value);
	if (r < 0)
		log_error("event=map_lookup_failed map=virtual_domains key=%s "
		    "error=\"%s\"", log_safe(domain), error);
	return r;
}

/* Add a local target for rc. */
static void
target_add(struct req *rq, struct rcpt *rc, char *addr, char *tag)
{
	struct target *t;

	rq->targets = xreallocarray(rq->targets, rq->ntargets + 1, sizeof(*t));
	t = &rq->targets[rq->ntargets++];
	t->rc = rc;
	t->addr = addr;
	t->tag = tag;
	t->ap = NULL;
	t->dup_of = NULL;
}

/* Mark each target whose address and tag (in any case) an earlier one
 * has as its duplicate.  Returns how many targets remain to deliver. */
static size_t
targets_dedup(struct req *rq)
{
	size_t n = rq->ntargets;

	if (n > MAX_DEDUP_TARGETS)
		return n;
	for (size_t i = 1; i < rq->ntargets; i++) {
		struct target *t = &rq->targets[i];

		for (size_t j = 0; j < i; j++) {
			struct target *o = &rq->targets[j];

			/* Any case: user lookups and folder names fold it. */
			if (o->dup_of != NULL || strcasecmp(o->addr, t->addr) != 0 ||
			    (o->tag == NULL) != (t->tag == NULL) ||
			    (o->tag != NULL && strcasecmp(o->tag, t->tag) != 0))
				continue;
			t->dup_of = o;
			n--;
			log_info("event=duplicate queue_id=%s rcpt=%s address=%s "
			    "same_as=%s", log_safe(rq->qid), log_safe(t->rc->address),
			    log_safe(t->addr), log_safe(o->rc->address));
			break;
		}
	}
	return n;
}

/*
 * Resolve one recipient through the maps: its local targets are added
 * to rq, its forwards to rc; failures set rc's outcome.
 */
static void
rcpt_resolve(struct req *rq, struct rcpt *rc)
{
	struct local_server *srv = rq->cn->srv;
	struct alias_result res = { NULL, 0 };
	char *base, *tag;
	const char *error;
	int r;

	local_split_tag(srv->set.delim, rc->address, &base, &tag);
	r = alias_expand(srv->aliases, base, srv->set.max_depth, &res, &error);
	if (r < 0) {
		log_error("event=map_lookup_failed map=aliases key=%s error=\"%s\"",
		    log_safe(base), error);
		rcpt_set(rc, AGENT_TEMP, "4.3.0", "alias map unreadable");
	} else if (r == 0) {
		log_warn("event=alias_failed rcpt=%s error=\"%s\"", log_safe(base), error);
		rcpt_set(rc, AGENT_PERM, "5.1.1", err_fmt("alias expansion failed: %s", error));
	}
	for (size_t i = 0; i < res.n; i++) {
		const char *a = res.addrs[i], *at = strrchr(a, '@');
		char *fbase, *ftag;

		r = at == NULL ? -2 : domain_local(srv, at + 1);
		if (r == -2) {
			rcpt_set(rc, AGENT_PERM, "5.1.3", err_fmt("alias target %s "
			    "has no domain", log_safe(a)));
			continue;
		}
		if (r < 0) {
			rcpt_set(rc, AGENT_TEMP, "4.3.0", "domain map unreadable");
			continue;
		}
		if (r == 0) {
			rc->fwd = xreallocarray(rc->fwd, rc->nfwd + 1, sizeof(*rc->fwd));
			rc->fwd[rc->nfwd++] = xstrdup(a);
			continue;
		}
		local_split_tag(srv->set.delim, a, &fbase, &ftag);
		/* The envelope's +tag follows the address when no alias
		 * replaced it. */
		if (ftag == NULL && tag != NULL && strcmp(fbase, base) == 0)
			ftag = xstrdup(tag);
		target_add(rq, rc, fbase, ftag);
	}
	alias_result_free(&res);
	free(base);
	free(tag);
}

/* Whether s is a usable envelope string: no control bytes, bounded. */
static int
str_ok(const char *s)
{
	if (s == NULL || strlen(s) > MAX_ADDRESS)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/*
 * Check an AGENT_DELIVER: read every field into a new request.  0 with
 * *rq_r, or -1 (malformed: the link is closed).
 */
static int
deliver_check(struct conn *cn, uint32_t id, struct ipc_cursor *c, struct req **rq_r)
{
	struct req *rq = xcalloc(1, sizeof(*rq));
	const char *qid, *sender, *addr;
	uint32_t n;
	int fd;

	rq->cn = cn;
	rq->id = id;
	rq->fd = -1;
	buf_init(&rq->header, MAILDIR_MAX_HEADER);
	if (ipc_get_str(c, &qid) < 0 || ipc_get_u64(c, &rq->offset) < 0 ||
	    ipc_get_str(c, &sender) < 0 || ipc_get_u32(c, &n) < 0)
		goto bad;
	if (!str_ok(qid) || !str_ok(sender) || n == 0 || n > AGENT_MAX_RCPTS) {
		c->error = "bad field";
		goto bad;
	}
	rq->qid = xstrdup(qid);
	rq->sender = xstrdup(sender);
	rq->rcpts = xcalloc(n, sizeof(*rq->rcpts));
	for (uint32_t i = 0; i < n; i++) {
		struct rcpt *rc = &rq->rcpts[i];

		if (ipc_get_u32(c, &rc->index) < 0 || ipc_get_str(c, &addr) < 0)
			goto bad;
		if (!str_ok(addr) || addr[0] == '\0') {
			c->error = "bad recipient";
			goto bad;
		}
		rc->rq = rq;
		rc->address = xstrdup(addr);
		rq->nrcpts++;
	}
	if (ipc_get_fd(c, &fd) < 0)
		goto bad;
	rq->fd = fd;
	if (ipc_get_end(c) < 0)
		goto bad;
	*rq_r = rq;
	return 0;
bad:
	req_free(rq);
	return -1;
}

/* Proceed with a checked request: resolve, then look the users up (or
 * answer at once when nothing needs a lookup). */
static void
deliver_start(struct req *rq)
{
	struct local_server *srv = rq->cn->srv;
	struct stat sb;

	rq->next = rq->cn->reqs;
	rq->cn->reqs = rq;
	if (fstat(rq->fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    rq->offset > (uint64_t)sb.st_size) {
		log_error("event=bad_queue_file queue_id=%s", log_safe(rq->qid));
		for (size_t i = 0; i < rq->nrcpts; i++)
			rcpt_set(&rq->rcpts[i], AGENT_TEMP, "4.3.0", "queue file unusable");
		req_finish(rq);
		return;
	}
	rq->size = (uint64_t)sb.st_size - rq->offset;
	for (size_t i = 0; i < rq->nrcpts; i++)
		rcpt_resolve(rq, &rq->rcpts[i]);
	/* The targets array is final now: duplicates may point into it. */
	rq->pending = targets_dedup(rq);
	if (rq->pending == 0) {
		req_finish(rq);
		return;
	}
	for (size_t i = 0; i < rq->ntargets; i++)
		if (rq->targets[i].dup_of == NULL)
			rq->targets[i].ap = auth_client_lookup(srv->auth,
			    rq->targets[i].addr, srv->set.auth_timeout_ms, on_lookup,
			    &rq->targets[i]);
}

/* A frame from qmgr. */
static int
on_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c, void *arg)
{
	struct conn *cn = arg;
	struct req *rq;

	(void)l;
	if (type != AGENT_DELIVER)
		return -1;
	if (deliver_check(cn, id, c, &rq) < 0) {
		log_warn("event=bad_request id=%" PRIu32 " error=\"%s\"", id,
		    c->error != NULL ? c->error : "malformed");
		return -1;
	}
	deliver_start(rq);
	return 0;
}

/* Free a connection and everything in flight on it. */
static void
conn_free(struct conn *cn)
{
	struct local_server *srv = cn->srv;

	while (cn->reqs != NULL) {
		struct req *rq = cn->reqs;

		cn->reqs = rq->next;
		req_free(rq);
	}
	ipc_link_free(&cn->link);
	for (struct conn **pp = &srv->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	srv->nconns--;
	free(cn);
}

/* The link closed. */
static void
on_close(struct ipc_link *l, const char *why, void *arg)
{
	struct conn *cn = arg;

	(void)l;
	log_info("event=disconnect reason=%s", log_safe(why));
	conn_free(cn);
}

void
local_server_accept(struct local_server *srv, int fd)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	struct conn *cn;
	int allowed = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
		log_warn("event=peer_unknown error=\"%s\"", strerror(errno));
		(void)close(fd);
		return;
	}
	for (size_t i = 0; i < srv->set.npeers; i++)
		if (srv->peers[i] == uc.uid)
			allowed = 1;
	if (!allowed) {
		log_warn("event=peer_refused uid=%ld pid=%ld", (long)uc.uid, (long)uc.pid);
		(void)close(fd);
		return;
	}
	cn = xcalloc(1, sizeof(*cn));
	cn->srv = srv;
	cn->next = srv->conns;
	srv->conns = cn;
	srv->nconns++;
	cn->link = ipc_link_new(srv->loop, fd, &agent_proto, cn);
	log_debug("event=connect uid=%ld pid=%ld", (long)uc.uid, (long)uc.pid);
}

/* Open the map at spec unless it is empty.  0 or -1 with *error_r. */
static int
open_map(const char *spec, struct map **m_r, const char **error_r)
{
	*m_r = NULL;
	if (spec == NULL || spec[0] == '\0')
		return 0;
	return map_open(spec, m_r, error_r);
}

int
local_server_new(struct ev_loop *loop, const struct local_settings *s,
    struct local_server **srv_r, const char **error_r)
{
	struct local_server *srv = xcalloc(1, sizeof(*srv));

	srv->loop = loop;
	srv->set = *s;
	srv->peers = xreallocarray(NULL, s->npeers, sizeof(*srv->peers));
	if (s->npeers > 0)
		memcpy(srv->peers, s->peers, s->npeers * sizeof(*srv->peers));
	srv->set.peers = srv->peers;
	if (open_map(s->virtual_domains, &srv->domains, error_r) < 0 ||
	    open_map(s->aliases, &srv->aliases, error_r) < 0 ||
	    open_map(s->virtual_mailboxes, &srv->mailboxes, error_r) < 0 ||
	    maildir_store_open(s->mail_dir, s->hostname, &srv->store, error_r) < 0 ||
	    commit_start(loop, delivery_sync, deliveries_done, srv, &srv->cm,
	    error_r) < 0) {
		local_server_free(&srv);
		return -1;
	}
	maildir_store_cache_size(srv->store, s->maildir_cache);
	srv->auth = auth_client_new(loop, s->auth_socket);
	*srv_r = srv;
	return 0;
}

size_t
local_server_active(const struct local_server *srv)
{
	return srv->nconns;
}

void
local_server_stop(struct local_server *srv)
{
	while (srv->conns != NULL)
		conn_free(srv->conns);
}

void
local_server_retire(struct local_server *srv)
{
	size_t open;
	uint64_t hits, walks;

	if (srv->retired)
		return;
	srv->retired = 1;
	maildir_store_cache_stats(srv->store, &open, &hits, &walks);
	log_info("event=maildir_cache_closed open=%zu hits=%" PRIu64 " walks=%" PRIu64,
	    open, hits, walks);
	maildir_store_cache_size(srv->store, 0);
}

void
local_server_free(struct local_server **srvp)
{
	struct local_server *srv = *srvp;

	if (srv == NULL)
		return;
	local_server_stop(srv);
	/* The batch in flight is finished; deliveries waiting are removed. */
	commit_stop(&srv->cm);
	if (srv->auth != NULL)
		auth_client_free(&srv->auth);
	map_close(&srv->domains);
	map_close(&srv->aliases);
	map_close(&srv->mailboxes);
	maildir_store_close(&srv->store);
	free(srv->peers);
	free(srv);
	*srvp = NULL;
}
