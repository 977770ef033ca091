/*
 * auth: the service that answers "is this user with this password
 * allowed?" for smtpd, pop3d and imapd, and "does this user exist?" for
 * smtpd's recipient checks (AUTH_LOOKUP: answered at once, without the
 * hash, the delays or the failure counts).  Each connection is an ipc link
 * speaking AUTH_PROTO with any number of requests outstanding.  A request
 * is checked, then verified against the password map (unknown, disabled
 * and broken entries cost a verification of a dummy hash, so timing tells
 * nothing).  Two delays slow a guesser, as Dovecot's: every failure is
 * answered after a fixed delay, and every answer to a client address (an
 * IPv6 client's /64) with recent failures, right password or wrong, waits
 * a penalty that doubles with those failures, so hanging up early tells a
 * guesser nothing.  Only the client address is penalised: failures for a
 * user from elsewhere never slow that user's own logins (the per-user
 * count is only logged), and a success forgives the failures that address
 * made for that same user, so a typo costs nothing later while a sprayer
 * stays slow.  Delays are loop timers: the service keeps serving everyone
 * else meanwhile.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alias.h"
#include "auth.h"
#include "authproto.h"
#include "failtab.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "passwd.h"
#include "xalloc.h"

/* A map that failed to open is retried at most this often. */
#define AUTH_MAP_RETRY_MS 1000
/* A connection counts as busy this long after its last request. */
#define AUTH_BUSY_MS 1000
/* An AUTH_REQ: six fields, each bounded. */
#define AUTH_REQ_MIN ((4 + 1) * 5 + 4)
#define AUTH_REQ_MAX ((4 + AUTH_MAX_NAME + 1) * 3 + (4 + AUTH_MAX_USER + 1) + \
	(4 + AUTH_MAX_PASSWORD) + 4)
/* An AUTH_LOOKUP: one string. */
#define AUTH_LOOKUP_MIN (4 + 1)
#define AUTH_LOOKUP_MAX (4 + AUTH_MAX_USER + 1)

struct auth_conn;

/* A failure reply waiting for its delay. */
struct delayed {
	struct auth_conn *conn;
	struct delayed *prev, *next;
	struct ev_timer *timer;
	struct ipc_msg msg;
};

struct auth_conn {
	struct auth_server *srv;
	struct auth_conn *prev, *next;
	struct ipc_link *link;
	unsigned long seq;		/* for log lines */
	long pid;
	unsigned long uid;
	uint64_t last_request;		/* ev_now() */
	struct delayed *delayed;
};

/* A named map opened lazily (and retried after a failure). */
struct auth_map {
	const char *what;		/* "passwd", "virtual_mailboxes" */
	char *spec;			/* "" : none configured */
	struct map *map;
	uint64_t tried;			/* ev_now() of the last failed open */
};

struct auth_server {
	struct ev_loop *loop;
	struct auth_settings s;		/* peers points at our copy */
	uid_t *peers;
	struct auth_map passwd, mailboxes;
	struct failtab *by_client;	/* feeds the penalty */
	struct failtab *by_user;	/* only logged */
	struct failtab *by_pair;	/* client and user: what a success forgives */
	struct auth_conn *conns;
	size_t nconns, ndelayed;
	unsigned long seq;
};

/* What a verification concluded, for the reply and the log. */
enum verdict {
	V_OK,
	V_UNKNOWN,	/* no such user */
	V_PASSWORD,	/* wrong password */
	V_DISABLED,	/* enabled=no, or a locked hash */
	V_BADHASH,	/* an entry or hash that cannot be verified */
	V_BADREQ,	/* the request failed its check */
	V_TEMP,		/* a map could not be read */
};

static const char *const verdict_names[] = {
	"ok", "unknown_user", "bad_password", "disabled", "bad_hash",
	"bad_request", "temporary",
};

static int conn_on_msg(struct ipc_link *l, uint32_t type, uint32_t id,
    struct ipc_cursor *c, void *arg);
static int lookup_on_msg(struct auth_conn *conn, uint32_t id, struct ipc_cursor *c);
static void conn_on_close(struct ipc_link *l, const char *why, void *arg);

static const struct ipc_type auth_types[] = {
	{ AUTH_REQ, AUTH_REQ_MIN, AUTH_REQ_MAX, 0 },
	{ AUTH_LOOKUP, AUTH_LOOKUP_MIN, AUTH_LOOKUP_MAX, 0 },
};

static const struct ipc_proto auth_proto = {
	AUTH_PROTO, auth_types, sizeof(auth_types) / sizeof(auth_types[0]),
	conn_on_msg, conn_on_close,
};

static const char *const services[] = { "smtp", "pop3", "imap" };
static const char *const mechanisms[] = { "PLAIN", "LOGIN", "USER" };

/* s if it is one of the n words in list, else NULL. */
static const char *
one_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return list[i];
	return NULL;
}

int
auth_peer_allowed(const struct auth_settings *s, uid_t uid)
{
	for (size_t i = 0; i < s->npeers; i++)
		if (s->peers[i] == uid)
			return 1;
	return 0;
}

int
auth_req_check(const struct auth_req *r, char *canon, const char **error_r)
{
	size_t len;

	if (one_of(r->service, services, sizeof(services) / sizeof(services[0])) == NULL) {
		*error_r = "unknown service";
		return -1;
	}
	if (one_of(r->mechanism, mechanisms,
	    sizeof(mechanisms) / sizeof(mechanisms[0])) == NULL) {
		*error_r = "unknown mechanism";
		return -1;
	}
	if (strlen(r->client) > AUTH_MAX_NAME) {
		*error_r = "client address too long";
		return -1;
	}
	if (r->password_len > AUTH_MAX_PASSWORD) {
		*error_r = "password too long";
		return -1;
	}
	len = strlen(r->user);
	if (len == 0 || len > AUTH_MAX_USER) {
		*error_r = len == 0 ? "empty user name" : "user name too long";
		return -1;
	}
	/* Map keys are words of printable ASCII or UTF-8: a user with a
	 * space or a control character can never match one. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)r->user[i];

		if (ch <= ' ' || ch == 0x7f) {
			*error_r = "invalid character in user name";
			return -1;
		}
		canon[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	canon[len] = '\0';
	return 0;
}

/* Open m unless open, not configured, or recently failed.  0 open or not
 * configured (m->map NULL then), -1 could not open. */
static int
map_ready(struct auth_server *srv, struct auth_map *m)
{
	const char *error;
	uint64_t now = ev_now(srv->loop);

	if (m->map != NULL || m->spec[0] == '\0')
		return 0;
	if (m->tried != 0 && now - m->tried < AUTH_MAP_RETRY_MS)
		return -1;
	if (map_open(m->spec, &m->map, &error) < 0) {
		log_error("event=map_open_failed map=%s spec=%s error=\"%s\"",
		    m->what, log_safe(m->spec), error);
		m->tried = now ? now : 1;
		return -1;
	}
	if (m->tried != 0)
		log_info("event=map_opened map=%s spec=%s", m->what, log_safe(m->spec));
	m->tried = 0;
	return 0;
}

/* Burn one verification's worth of time against the dummy hash. */
static void
verify_dummy(const void *password, size_t len)
{
	int r = passwd_verify(password, len, passwd_dummy_hash());

	(void)r;
}

/*
 * Verify canon's password.  Fills *quota_r on V_OK; *error_r says why on
 * V_TEMP and V_BADHASH (for the log).
 */
static enum verdict
verify(struct auth_server *srv, const char *canon, const void *password,
    size_t len, uint64_t *quota_r, const char **error_r)
{
	struct buf value;
	struct passwd_entry e;
	enum verdict v;
	int r = 0;

	if (map_ready(srv, &srv->passwd) < 0) {
		*error_r = "the password map cannot be opened";
		return V_TEMP;
	}
	buf_init(&value, MAP_MAX_VALUE);
	if (srv->passwd.map != NULL &&
	    (r = map_lookup(srv->passwd.map, canon, &value, error_r)) < 0) {
		buf_free(&value);
		return V_TEMP;
	}
	if (r == 0) {
		buf_free(&value);
		verify_dummy(password, len);
		return V_UNKNOWN;
	}
	r = passwd_parse(buf_cstr(&value), &e, error_r);
	buf_free(&value);
	if (r < 0) {
		verify_dummy(password, len);
		return V_BADHASH;
	}
	if (!e.enabled || e.hash[0] == '!' || e.hash[0] == '*') {
		verify_dummy(password, len);
		v = V_DISABLED;
	} else {
		switch (passwd_verify(password, len, e.hash)) {
		case 1:
			*quota_r = e.quota;
			v = V_OK;
			break;
		case 0:
			v = V_PASSWORD;
			break;
		default:
			/* Refused before any hashing: spend the time anyway. */
			verify_dummy(password, len);
			*error_r = "the hash method is not supported";
			v = V_BADHASH;
			break;
		}
	}
	passwd_entry_free(&e);
	return v;
}

/* Free a delayed reply (unlinked from its connection). */
static void
delayed_free(struct auth_server *srv, struct delayed *dr)
{
	struct auth_conn *conn = dr->conn;

	if (dr->prev != NULL)
		dr->prev->next = dr->next;
	else
		conn->delayed = dr->next;
	if (dr->next != NULL)
		dr->next->prev = dr->prev;
	if (dr->timer != NULL)
		ev_timer_del(&dr->timer);
	ipc_msg_free(&dr->msg);
	free(dr);
	srv->ndelayed--;
}

/* A delay is over: send the failure. */
static void
delayed_fire(struct ev_timer *t, void *arg)
{
	struct delayed *dr = arg;
	struct auth_conn *conn = dr->conn;

	(void)t;
	if (ipc_link_send(conn->link, &dr->msg) < 0)
		log_warn("event=reply_dropped conn=%lu id=%u", conn->seq,
		    (unsigned)dr->msg.id);
	delayed_free(conn->srv, dr);
}

/* Send m now, or after delay_ms (taking m over). */
static void
reply(struct auth_conn *conn, struct ipc_msg *m, uint64_t delay_ms)
{
	struct delayed *dr;

	if (delay_ms == 0) {
		if (ipc_link_send(conn->link, m) < 0)
			log_warn("event=reply_dropped conn=%lu id=%u", conn->seq,
			    (unsigned)m->id);
		ipc_msg_free(m);
		return;
	}
	dr = xcalloc(1, sizeof(*dr));
	dr->conn = conn;
	dr->msg = *m;
	dr->next = conn->delayed;
	if (conn->delayed != NULL)
		conn->delayed->prev = dr;
	conn->delayed = dr;
	dr->timer = ev_timer_add(conn->srv->loop, delay_ms, 0, delayed_fire, dr);
	conn->srv->ndelayed++;
}

/* Answer AUTH_FAIL with code and reason after delay_ms. */
static void
reply_fail(struct auth_conn *conn, uint32_t id, uint32_t code, const char *reason,
    uint64_t delay_ms)
{
	struct ipc_msg m;

	ipc_msg_init(&m, AUTH_FAIL, id);
	ipc_put_u32(&m, code);
	ipc_put_str(&m, reason);
	reply(conn, &m, delay_ms);
}

/* The key failures of a client address are counted under: the address,
 * or for native IPv6 its /64 (one customer's whole prefix), so hopping
 * through a prefix does not reset the count. */
static const char *
client_key(const char *client, char out[INET6_ADDRSTRLEN + 4])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];

	if (strchr(client, ':') == NULL || inet_pton(AF_INET6, client, a) != 1 ||
	    memcmp(a, mapped, sizeof(mapped)) == 0)
		return client;
	memset(a + 8, 0, 8);
	if (inet_ntop(AF_INET6, a, text, sizeof(text)) == NULL)
		return client;
	snprintf(out, INET6_ADDRSTRLEN + 4, "%s/64", text);
	return out;
}

/* The key of a client and user pair in pair (initialised here): the
 * client's key, a space and the user (which has no space). */
static void
pair_key(const char *client, const char *canon, struct buf *pair)
{
	char key[INET6_ADDRSTRLEN + 4];

	buf_init(pair, 0);
	if (buf_printf(pair, "%s %s", client_key(client, key), canon) < 0)
		log_panic("pair key past an unbounded buffer");
}

/* How long any answer to this client waits, right password or wrong:
 * what the recent failures of its address have earned. */
static uint64_t
penalty_ms(struct auth_server *srv, const struct auth_req *r)
{
	char key[INET6_ADDRSTRLEN + 4];
	unsigned n;

	n = failtab_count(srv->by_client, client_key(r->client, key), ev_now(srv->loop));
	return failtab_delay(n, srv->s.penalty_ms, srv->s.penalty_max_ms);
}

/* Count a failure and answer it after the client's penalty and the fixed
 * failure delay. */
static void
fail_credentials(struct auth_conn *conn, uint32_t id, const struct auth_req *r,
    const char *canon, enum verdict v, const char *detail, uint64_t penalty)
{
	struct auth_server *srv = conn->srv;
	uint64_t now = ev_now(srv->loop), delay;
	char key[INET6_ADDRSTRLEN + 4];
	struct buf pair;
	unsigned nc, nu = 0;

	nc = failtab_add(srv->by_client, client_key(r->client, key), now);
	if (canon != NULL) {
		nu = failtab_add(srv->by_user, canon, now);
		pair_key(r->client, canon, &pair);
		(void)failtab_add(srv->by_pair, buf_cstr(&pair), now);
		buf_free(&pair);
	}
	/* Both are at most 10 minutes (config_keys.c): no overflow. */
	delay = penalty + srv->s.fail_delay_ms;
	log_warn("event=auth_fail conn=%lu id=%u user=%s client=%s service=%s "
	    "mechanism=%s reason=%s%s%s%s failures=%u user_failures=%u "
	    "penalty_ms=%llu delay_ms=%llu",
	    conn->seq, (unsigned)id, log_safe(r->user), log_safe(r->client),
	    log_safe(r->service), log_safe(r->mechanism), verdict_names[v],
	    detail != NULL ? " detail=\"" : "", detail != NULL ? detail : "",
	    detail != NULL ? "\"" : "", nc, nu, (unsigned long long)penalty,
	    (unsigned long long)delay);
	reply_fail(conn, id, AUTH_FAIL_CREDENTIALS,
	    v == V_BADREQ && detail != NULL ? detail : "authentication failed", delay);
}

/* After a success: the user's count goes, and the client address keeps
 * only the failures it made for other users. */
static void
forgive(struct auth_server *srv, const struct auth_req *r, const char *canon)
{
	char key[INET6_ADDRSTRLEN + 4];
	struct buf pair;
	unsigned n;

	pair_key(r->client, canon, &pair);
	n = failtab_count(srv->by_pair, buf_cstr(&pair), ev_now(srv->loop));
	if (n > 0) {
		failtab_sub(srv->by_client, client_key(r->client, key), n);
		failtab_forget(srv->by_pair, buf_cstr(&pair));
	}
	buf_free(&pair);
	failtab_forget(srv->by_user, canon);
}

/* Answer a successful login with the user's mailbox and quota. */
static void
succeed(struct auth_conn *conn, uint32_t id, const struct auth_req *r,
    const char *canon, uint64_t quota, uint64_t hold)
{
	struct auth_server *srv = conn->srv;
	struct buf mailbox = BUF_INIT;
	const char *error = NULL;
	struct ipc_msg m;
	int ret;

	if (map_ready(srv, &srv->mailboxes) < 0)
		ret = -1, error = "the virtual_mailboxes map cannot be opened";
	else
		ret = mailbox_path(srv->mailboxes.map, canon, &mailbox, &error);
	if (ret == 1 && mailbox.len > AUTH_MAX_MAILBOX)
		ret = 0, error = "mailbox path too long";
	if (ret != 1) {
		log_error("event=auth_temp conn=%lu id=%u user=%s client=%s service=%s "
		    "reason=no_mailbox error=\"%s\"", conn->seq, (unsigned)id,
		    log_safe(canon), log_safe(r->client), r->service, error);
		/* Held like any answer: it tells the password was right. */
		reply_fail(conn, id, AUTH_FAIL_TEMPORARY, "no usable mailbox", hold);
		buf_free(&mailbox);
		return;
	}
	forgive(srv, r, canon);
	log_info("event=auth_ok conn=%lu id=%u user=%s client=%s service=%s "
	    "mechanism=%s tls=%s delay_ms=%llu", conn->seq, (unsigned)id,
	    log_safe(canon), log_safe(r->client), r->service, r->mechanism,
	    (r->flags & AUTH_F_TLS) ? "yes" : "no", (unsigned long long)hold);
	ipc_msg_init(&m, AUTH_OK, id);
	ipc_put_str(&m, canon);
	ipc_put_str(&m, buf_cstr(&mailbox));
	ipc_put_u64(&m, quota);
	reply(conn, &m, hold);
	buf_free(&mailbox);
}

/* Handle one AUTH_REQ: check, verify, answer. */
static void
handle_request(struct auth_conn *conn, uint32_t id, const struct auth_req *r)
{
	char canon[AUTH_MAX_USER + 1];
	const char *error = NULL;
	uint64_t quota = 0, hold;
	enum verdict v;

	hold = penalty_ms(conn->srv, r);
	if (auth_req_check(r, canon, &error) < 0) {
		fail_credentials(conn, id, r, NULL, V_BADREQ, error, hold);
		return;
	}
	v = verify(conn->srv, canon, r->password, r->password_len, &quota, &error);
	switch (v) {
	case V_OK:
		succeed(conn, id, r, canon, quota, hold);
		break;
	case V_TEMP:
		log_error("event=auth_temp conn=%lu id=%u user=%s client=%s "
		    "service=%s error=\"%s\"", conn->seq, (unsigned)id,
		    log_safe(canon), log_safe(r->client), r->service, error);
		reply_fail(conn, id, AUTH_FAIL_TEMPORARY,
		    "the password map cannot be read", 0);
		break;
	default:
		fail_credentials(conn, id, r, canon, v,
		    v == V_BADHASH ? error : NULL, hold);
		break;
	}
}

/* A frame from a peer: read every field, then handle it. */
static int
conn_on_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	struct auth_conn *conn = arg;
	struct auth_req r;

	(void)l;
	if (type == AUTH_LOOKUP)
		return lookup_on_msg(conn, id, c);
	/* Else AUTH_REQ: the table lets in nothing more. */
	if (ipc_get_str(c, &r.service) < 0 || ipc_get_str(c, &r.mechanism) < 0 ||
	    ipc_get_str(c, &r.user) < 0 ||
	    ipc_get_data(c, &r.password, &r.password_len) < 0 ||
	    ipc_get_str(c, &r.client) < 0 || ipc_get_u32(c, &r.flags) < 0 ||
	    ipc_get_end(c) < 0)
		return -1;
	if (r.service == NULL || r.mechanism == NULL || r.user == NULL ||
	    r.client == NULL) {
		c->error = "null_field";
		return -1;
	}
	conn->last_request = ev_now(conn->srv->loop);
	handle_request(conn, id, &r);
	/* The password is in the frame's buffer, which is ours until this
	 * handler returns: wipe it. */
	explicit_bzero((void *)(uintptr_t)r.password, r.password_len);
	return 0;
}

int
auth_lookup_check(const char *user, char *canon, const char **error_r)
{
	size_t len = strlen(user);

	if (len == 0 || len > AUTH_MAX_USER) {
		*error_r = len == 0 ? "empty user name" : "user name too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)user[i];

		if (ch <= ' ' || ch == 0x7f) {
			*error_r = "invalid character in user name";
			return -1;
		}
		canon[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	canon[len] = '\0';
	return 0;
}

/* Answer AUTH_USER. */
static void
reply_user(struct auth_conn *conn, uint32_t id, int found, const char *canon,
    const char *mailbox, uint64_t quota, int enabled)
{
	struct ipc_msg m;

	ipc_msg_init(&m, AUTH_USER, id);
	ipc_put_u32(&m, found ? 1 : 0);
	ipc_put_str(&m, canon);
	ipc_put_str(&m, mailbox);
	ipc_put_u64(&m, quota);
	ipc_put_u32(&m, enabled ? 1 : 0);
	reply(conn, &m, 0);
}

/* Answer an AUTH_LOOKUP for user: found or not, or a temporary failure
 * when a map cannot be read.  Never touches the failure tables. */
static void
handle_lookup(struct auth_conn *conn, uint32_t id, const char *user)
{
	struct auth_server *srv = conn->srv;
	char canon[AUTH_MAX_USER + 1];
	struct buf value, mailbox = BUF_INIT;
	struct passwd_entry e;
	const char *error = NULL;
	uint64_t quota = 0;
	int r = 0, enabled = 0;

	if (auth_lookup_check(user, canon, &error) < 0) {
		log_debug("event=lookup conn=%lu id=%u user=%s found=no reason=\"%s\"",
		    conn->seq, (unsigned)id, log_safe(user), error);
		reply_user(conn, id, 0, "", "", 0, 0);
		return;
	}
	if (map_ready(srv, &srv->passwd) < 0) {
		error = "the password map cannot be opened";
		goto temp;
	}
	buf_init(&value, MAP_MAX_VALUE);
	if (srv->passwd.map != NULL &&
	    (r = map_lookup(srv->passwd.map, canon, &value, &error)) < 0) {
		buf_free(&value);
		goto temp;
	}
	if (r == 0) {
		buf_free(&value);
		log_debug("event=lookup conn=%lu id=%u user=%s found=no", conn->seq,
		    (unsigned)id, log_safe(canon));
		reply_user(conn, id, 0, canon, "", 0, 0);
		return;
	}
	/* A broken entry still names an account: it exists, cannot log in. */
	if (passwd_parse(buf_cstr(&value), &e, &error) < 0) {
		log_error("event=bad_passwd_entry conn=%lu id=%u user=%s error=\"%s\"",
		    conn->seq, (unsigned)id, log_safe(canon), error);
	} else {
		quota = e.quota;
		enabled = e.enabled && e.hash[0] != '!' && e.hash[0] != '*';
		passwd_entry_free(&e);
	}
	buf_free(&value);
	if (map_ready(srv, &srv->mailboxes) < 0) {
		error = "the virtual_mailboxes map cannot be opened";
		goto temp;
	}
	r = mailbox_path(srv->mailboxes.map, canon, &mailbox, &error);
	if (r == 1 && mailbox.len > AUTH_MAX_MAILBOX)
		r = 0, error = "mailbox path too long";
	if (r != 1) {
		buf_free(&mailbox);
		goto temp;
	}
	log_debug("event=lookup conn=%lu id=%u user=%s found=yes enabled=%s",
	    conn->seq, (unsigned)id, log_safe(canon), enabled ? "yes" : "no");
	reply_user(conn, id, 1, canon, buf_cstr(&mailbox), quota, enabled);
	buf_free(&mailbox);
	return;
temp:
	log_error("event=lookup_temp conn=%lu id=%u user=%s error=\"%s\"",
	    conn->seq, (unsigned)id, log_safe(canon), error);
	reply_fail(conn, id, AUTH_FAIL_TEMPORARY, "the user database cannot be read", 0);
}

/* An AUTH_LOOKUP frame: read it, then answer it. */
static int
lookup_on_msg(struct auth_conn *conn, uint32_t id, struct ipc_cursor *c)
{
	const char *user;

	if (ipc_get_str(c, &user) < 0 || ipc_get_end(c) < 0)
		return -1;
	if (user == NULL) {
		c->error = "null_field";
		return -1;
	}
	conn->last_request = ev_now(conn->srv->loop);
	handle_lookup(conn, id, user);
	return 0;
}

/* Close and free a connection and its pending replies. */
static void
conn_free(struct auth_conn *conn)
{
	struct auth_server *srv = conn->srv;

	while (conn->delayed != NULL)
		delayed_free(srv, conn->delayed);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	srv->nconns--;
	ipc_link_free(&conn->link);
	free(conn);
}

/* The link closed (EOF, error or a malformed frame): forget it. */
static void
conn_on_close(struct ipc_link *l, const char *why, void *arg)
{
	struct auth_conn *conn = arg;

	(void)l;
	log_debug("event=disconnect conn=%lu pid=%ld reason=%s", conn->seq,
	    conn->pid, why);
	conn_free(conn);
}

void
auth_server_accept(struct auth_server *srv, int fd)
{
	struct auth_conn *conn;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("event=peer_refused reason=no_credentials error=\"%s\"",
		    strerror(errno));
		close(fd);
		return;
	}
	if (!auth_peer_allowed(&srv->s, cred.uid)) {
		log_warn("event=peer_refused uid=%lu pid=%ld reason=not_a_postern_daemon",
		    (unsigned long)cred.uid, (long)cred.pid);
		close(fd);
		return;
	}
	conn = xcalloc(1, sizeof(*conn));
	conn->srv = srv;
	conn->seq = ++srv->seq;
	conn->pid = (long)cred.pid;
	conn->uid = (unsigned long)cred.uid;
	conn->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = conn;
	srv->conns = conn;
	srv->nconns++;
	conn->link = ipc_link_new(srv->loop, fd, &auth_proto, conn);
	log_debug("event=connect conn=%lu pid=%ld uid=%lu", conn->seq, conn->pid,
	    conn->uid);
}

struct auth_server *
auth_server_new(struct ev_loop *loop, const struct auth_settings *s)
{
	struct auth_server *srv = xcalloc(1, sizeof(*srv));

	srv->loop = loop;
	srv->s = *s;
	srv->peers = xcalloc(s->npeers ? s->npeers : 1, sizeof(*srv->peers));
	if (s->npeers > 0)
		memcpy(srv->peers, s->peers, s->npeers * sizeof(*srv->peers));
	srv->s.peers = srv->peers;
	srv->passwd.what = "passwd";
	srv->passwd.spec = xstrdup(s->passwd != NULL ? s->passwd : "");
	srv->mailboxes.what = "virtual_mailboxes";
	srv->mailboxes.spec = xstrdup(s->mailboxes != NULL ? s->mailboxes : "");
	srv->s.passwd = srv->passwd.spec;
	srv->s.mailboxes = srv->mailboxes.spec;
	srv->by_client = failtab_new(s->failtab_max, s->fail_forget_ms);
	srv->by_user = failtab_new(s->failtab_max, s->fail_forget_ms);
	srv->by_pair = failtab_new(s->failtab_max, s->fail_forget_ms);
	/* Open now, so a broken map is reported at start; and make the dummy
	 * hash now, not during the first unknown user's request. */
	(void)map_ready(srv, &srv->passwd);
	(void)map_ready(srv, &srv->mailboxes);
	(void)passwd_dummy_hash();
	return srv;
}

void
auth_server_stop(struct auth_server *srv)
{
	while (srv->conns != NULL)
		conn_free(srv->conns);
}

void
auth_server_free(struct auth_server **srvp)
{
	struct auth_server *srv = *srvp;

	if (srv == NULL)
		return;
	auth_server_stop(srv);
	map_close(&srv->passwd.map);
	map_close(&srv->mailboxes.map);
	free(srv->passwd.spec);
	free(srv->mailboxes.spec);
	failtab_free(&srv->by_client);
	failtab_free(&srv->by_user);
	failtab_free(&srv->by_pair);
	free(srv->peers);
	free(srv);
	*srvp = NULL;
}

size_t
auth_server_active(const struct auth_server *srv)
{
	uint64_t now = ev_now(srv->loop);
	size_t n = 0;

	for (const struct auth_conn *c = srv->conns; c != NULL; c = c->next)
		if (c->delayed != NULL ||
		    (c->last_request != 0 && now - c->last_request < AUTH_BUSY_MS))
			n++;
	return n;
}
