/*
 * policy: smtpd's decisions about MAIL FROM and RCPT TO (the rules are
 * listed in policy.h).  Everything but the user database is answered
 * from memory and the maps at once; the user database is behind the
 * auth service, asked with auth_client_lookup() for each local address a
 * recipient expands to that virtual_mailboxes does not already list --
 * unless the user cache remembers that the user exists: a small table
 * of fixed size per process, entries expiring after
 * smtpd_user_cache_time, filled only by "found" answers (so a new user
 * is never refused because of it, and a removed one is accepted for at
 * most that long, then bounced by local delivery).
 *
 * Every decision, however quick, reaches its caller through ev_defer(),
 * so done() never runs inside a check call and a session can always
 * cancel what it asked.  Peer-supplied addresses never appear in reply
 * texts; they are logged through log_safe().
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alias.h"
#include "authclient.h"
#include "buf.h"
#include "log.h"
#include "map.h"
#include "net.h"
#include "policy.h"
#include "xalloc.h"

/* The longest address handled: what fits policy_result.final. */
#define POLICY_MAX_ADDRESS (sizeof(((struct policy_result *)0)->final) - 1)
/* The longest access map value used; a longer one is unusable, and is
 * reported like a read error of the map. */
#define POLICY_MAX_ACCESS_VALUE 1024
/* How much of a virtual_domains source is read to find its first key. */
#define POLICY_MAX_SOURCE_LINE 4096
/* Slots of the user cache (a power of two): one user each, the newest
 * answer taking the slot, so the cache never holds more than this many
 * names (POLICY_MAX_ADDRESS bytes at most each). */
#define POLICY_CACHE_SLOTS 1024

/* The maps a policy consults, in the order of policy_map_keys. */
enum policy_map {
	PM_DOMAINS,
	PM_MAILBOXES,
	PM_ALIASES,
	PM_RELAY,
	PM_SENDER,
	PM_RCPT,
	PM_COUNT,
};

static const char *const policy_map_keys[PM_COUNT] = {
	"virtual_domains", "virtual_mailboxes", "aliases", "relay_domains",
	"sender_access", "recipient_access",
};

/* What an access map said about an address. */
enum access {
	ACCESS_NONE,		/* no entry: the other rules decide */
	ACCESS_OK,		/* OK: skip what the caller may skip */
	ACCESS_DECIDED,		/* REJECT, DISCARD or a failure: result set */
};

/* One user database lookup of a pending recipient check. */
struct lookup {
	struct policy_pending *pp;
	struct auth_pending *ap;	/* NULL once answered */
	char *user;
};

struct policy_pending {
	struct policy *p;
	struct policy_pending *prev, *next;
	policy_done_fn *done;
	void *arg;
	struct policy_result r;
	struct lookup *lookups;
	size_t nlookups, waiting;	/* started, and still unanswered */
	int temp, missing;		/* a lookup failed / found no user */
	int scheduled;			/* done() is deferred */
};

/* A user the user database said exists, until expires (ev_now() ms). */
struct cache_slot {
	char *user;		/* NULL: empty */
	uint64_t expires;
};

struct policy {
	struct ev_loop *loop;
	struct map *maps[PM_COUNT];	/* NULL: not configured */
	struct net_cidr *nets;		/* mynetworks */
	size_t nnets;
	unsigned max_depth;
	char delim;			/* recipient_delimiter, '\0': none */
	uint64_t auth_timeout_ms;
	char *postmaster;		/* postmaster@DOMAIN */
	struct auth_client *auth;	/* borrowed from the caller */
	struct policy_pending *pending;	/* every check not yet delivered */
	uint64_t cache_ms;		/* smtpd_user_cache_time; 0: no cache */
	struct cache_slot *cache;	/* POLICY_CACHE_SLOTS, or NULL */
};

/* ---------------------------------------------------------------- */
/* Results                                                           */

/* Fill r; text is copied with anything but printable ASCII made '?'. */
static void
result_set(struct policy_result *r, enum policy_verdict v, int code,
    const char *esc, const char *text)
{
	size_t i;

	r->verdict = v;
	r->code = code;
	snprintf(r->esc, sizeof(r->esc), "%s", esc);
	for (i = 0; text[i] != '\0' && i < sizeof(r->text) - 1; i++)
		r->text[i] = text[i] >= ' ' && text[i] <= '~' ? text[i] : '?';
	r->text[i] = '\0';
	if (v != POLICY_ACCEPT)
		r->final[0] = '\0';
}

/* A map could not be read: try again later. */
static void
result_lookup_failed(struct policy_result *r)
{
	result_set(r, POLICY_TEMPFAIL, 451, "4.3.0", "Temporary lookup failure");
}

/* A map entry makes no sense: the admin must fix it; try again later. */
static void
result_config_error(struct policy_result *r)
{
	result_set(r, POLICY_TEMPFAIL, 451, "4.3.5", "Server configuration error");
}

/* ---------------------------------------------------------------- */
/* Addresses and map lookups                                         */

/* addr without the +tag of its local part (if it has one and something
 * precedes it), into out (at least strlen(addr) + 1 bytes), with the
 * domain in lower case.  1 if a tag was removed, else 0. */
static int
strip_tag(const struct policy *p, const char *addr, char *out)
{
	const char *at = strrchr(addr, '@');
	const char *tag = NULL;
	size_t n;
	int stripped = 0;

	if (at == NULL)
		at = addr + strlen(addr);
	if (p->delim != '\0') {
		tag = memchr(addr, p->delim, (size_t)(at - addr));
		if (tag == addr)
			tag = NULL;
	}
	n = (size_t)((tag != NULL ? tag : at) - addr);
	memcpy(out, addr, n);
	stripped = tag != NULL;
	for (const char *s = at; *s != '\0'; s++)
		out[n++] = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
	out[n] = '\0';
	return stripped;
}

/* Look key up in map m (NULL: not configured, nothing found) into value.
 * 1, 0, or -1 with the failure logged. */
static int
lookup(struct policy *p, enum policy_map which, const char *key, struct buf *value)
{
	const char *error;
	int r;

	if (p->maps[which] == NULL)
		return 0;
	r = map_lookup(p->maps[which], key, value, &error);
	if (r < 0)
		log_error("event=map_lookup_failed map=%s key=%s error=\"%s\"",
		    policy_map_keys[which], log_safe(key), error);
	return r;
}

/* Whether domain has an entry in a domain map: 1, 0, or -1. */
static int
domain_in(struct policy *p, enum policy_map which, const char *domain)
{
	struct buf value;
	int r;

	buf_init(&value, MAP_MAX_VALUE);
	r = lookup(p, which, domain, &value);
	buf_free(&value);
	return r;
}

/* Act on an access map value for key: set *r and return ACCESS_DECIDED,
 * or return ACCESS_OK. */
static enum access
access_value(enum policy_map which, const char *key, const char *value,
    struct policy_result *r)
{
	size_t n;

	while (*value == ' ' || *value == '\t')
		value++;
	n = strcspn(value, " \t");
	if (n == 2 && strncasecmp(value, "OK", 2) == 0 &&
	    value[n + strspn(value + n, " \t")] == '\0')
		return ACCESS_OK;
	if (n == 6 && strncasecmp(value, "REJECT", 6) == 0) {
		value += 6;
		while (*value == ' ' || *value == '\t')
			value++;
		result_set(r, POLICY_REJECT, 554, "5.7.1",
		    *value != '\0' ? value : "Access denied");
		return ACCESS_DECIDED;
	}
	if (n == 7 && strncasecmp(value, "DISCARD", 7) == 0) {
		result_set(r, POLICY_DISCARD, 250, which == PM_SENDER ? "2.1.0" : "2.1.5",
		    "Ok");
		return ACCESS_DECIDED;
	}
	log_error("event=config_error map=%s key=%s value=%s "
	    "error=\"not OK, REJECT [text] or DISCARD\"", policy_map_keys[which],
	    log_safe(key), log_safe(value));
	result_config_error(r);
	return ACCESS_DECIDED;
}

/*
 * Consult an access map about addr: the address, the address without its
 * +tag, its domain, "local@" and "local-without-tag@", the first entry
 * found deciding.  ACCESS_DECIDED fills *r (REJECT, DISCARD, a config
 * error or a read error).
 */
static enum access
access_check(struct policy *p, enum policy_map which, const char *addr,
    struct policy_result *r)
{
	char stripped[POLICY_MAX_ADDRESS + 1];
	const char *at = strrchr(addr, '@');
	struct buf value;
	enum access a = ACCESS_NONE;
	int tagged, ret = 0;
	size_t nkeys = 0;
	const char *keys[5];
	char *owned[5];

	if (p->maps[which] == NULL)
		return ACCESS_NONE;
	tagged = strip_tag(p, addr, stripped);
	keys[nkeys] = addr, owned[nkeys++] = NULL;
	if (tagged)
		keys[nkeys] = stripped, owned[nkeys++] = NULL;
	if (at != NULL && at[1] != '\0')
		keys[nkeys] = at + 1, owned[nkeys++] = NULL;
	if (at != NULL && at != addr) {
		keys[nkeys] = owned[nkeys] = xstrndup(addr, (size_t)(at - addr) + 1);
		nkeys++;
		if (tagged) {
			keys[nkeys] = owned[nkeys] = xstrndup(stripped,
			    strcspn(stripped, "@") + 1);
			nkeys++;
		}
	}
	buf_init(&value, POLICY_MAX_ACCESS_VALUE);
	for (size_t i = 0; i < nkeys && ret == 0; i++) {
		ret = lookup(p, which, keys[i], &value);
		if (ret < 0) {
			result_lookup_failed(r);
			a = ACCESS_DECIDED;
		} else if (ret == 1) {
			a = access_value(which, keys[i], buf_cstr(&value), r);
		}
	}
	for (size_t i = 0; i < nkeys; i++)
		free(owned[i]);
	buf_free(&value);
	return a;
}

/* ---------------------------------------------------------------- */
/* The user cache                                                    */

/* The slot for user (FNV-1a of the name). */
static struct cache_slot *
cache_slot(const struct policy *p, const char *user)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *s = (const unsigned char *)user; *s != '\0'; s++)
		h = (h ^ *s) * 16777619u;
	return &p->cache[h & (POLICY_CACHE_SLOTS - 1)];
}

/* Whether the user database said recently that user exists. */
static int
cache_has(const struct policy *p, const char *user)
{
	const struct cache_slot *c;

	if (p->cache == NULL)
		return 0;
	c = cache_slot(p, user);
	return c->user != NULL && strcmp(c->user, user) == 0 &&
	    ev_now(p->loop) < c->expires;
}

/* Remember that user exists (evicting whatever shared its slot). */
static void
cache_put(struct policy *p, const char *user)
{
	struct cache_slot *c;

	if (p->cache == NULL)
		return;
	c = cache_slot(p, user);
	if (c->user == NULL || strcmp(c->user, user) != 0) {
		free(c->user);
		c->user = xstrdup(user);
	}
	c->expires = ev_now(p->loop) + p->cache_ms;
}

/* ---------------------------------------------------------------- */
/* Pending checks                                                    */

/* A new check on p's list. */
static struct policy_pending *
pending_new(struct policy *p, policy_done_fn *done, void *arg)
{
	struct policy_pending *pp = xcalloc(1, sizeof(*pp));

	pp->p = p;
	pp->done = done;
	pp->arg = arg;
	pp->next = p->pending;
	if (p->pending != NULL)
		p->pending->prev = pp;
	p->pending = pp;
	return pp;
}

/* Take pp off its policy's list. */
static void
pending_unlink(struct policy_pending *pp)
{
	if (pp->prev != NULL)
		pp->prev->next = pp->next;
	else
		pp->p->pending = pp->next;
	if (pp->next != NULL)
		pp->next->prev = pp->prev;
	pp->prev = pp->next = NULL;
}

/* Free an unlinked check, cancelling its unanswered lookups. */
static void
pending_free(struct policy_pending *pp)
{
	for (size_t i = 0; i < pp->nlookups; i++) {
		if (pp->lookups[i].ap != NULL)
			auth_client_cancel(pp->p->auth, pp->lookups[i].ap);
		free(pp->lookups[i].user);
	}
	free(pp->lookups);
	free(pp);
}

/* The deferred call: hand the result over, then forget the check. */
static void
pending_deliver(void *arg)
{
	struct policy_pending *pp = arg;

	pending_unlink(pp);
	/* done() may cancel other checks or close the policy: pp is already
	 * off the list, and nothing of p is touched after the call. */
	pp->done(&pp->r, pp->arg);
	pending_free(pp);
}

/* The result is final: deliver it from the loop. */
static void
pending_schedule(struct policy_pending *pp)
{
	pp->scheduled = 1;
	ev_defer(pp->p->loop, pending_deliver, pp);
}

/* Every lookup of a recipient check has been answered: decide. */
static void
pending_lookups_done(struct policy_pending *pp)
{
	if (pp->missing)
		result_set(&pp->r, POLICY_REJECT, 550, "5.1.1",
		    "Recipient address rejected: User unknown");
	else if (pp->temp)
		result_lookup_failed(&pp->r);
	pending_schedule(pp);
}

/* The user database answered one lookup. */
static void
on_lookup(enum auth_result result, int found, const char *user,
    const char *mailbox, uint64_t quota, int enabled, const char *reason, void *arg)
{
	struct lookup *lk = arg;
	struct policy_pending *pp = lk->pp;

	(void)user;
	(void)mailbox;
	(void)quota;
	(void)enabled;
	lk->ap = NULL;		/* the client frees it after this call */
	if (result != AUTH_RESULT_OK) {
		log_warn("event=user_lookup_failed user=%s reason=\"%s\"",
		    log_safe(lk->user), reason != NULL ? reason : "");
		pp->temp = 1;
	} else if (!found) {
		pp->missing = 1;
	} else {
		cache_put(pp->p, lk->user);
	}
	if (--pp->waiting == 0)
		pending_lookups_done(pp);
}

/* Queue a user database lookup for user (started by lookups_start). */
static void
lookup_add(struct policy_pending *pp, const char *user)
{
	struct lookup *lk;

	pp->lookups = xreallocarray(pp->lookups, pp->nlookups + 1, sizeof(*pp->lookups));
	lk = &pp->lookups[pp->nlookups++];
	lk->pp = pp;
	lk->ap = NULL;
	lk->user = xstrdup(user);
}

/* Send every queued lookup; their answers arrive from the loop. */
static void
lookups_start(struct policy_pending *pp)
{
	pp->waiting = pp->nlookups;
	for (size_t i = 0; i < pp->nlookups; i++)
		pp->lookups[i].ap = auth_client_lookup(pp->p->auth, pp->lookups[i].user,
		    pp->p->auth_timeout_ms, on_lookup, &pp->lookups[i]);
}

/* ---------------------------------------------------------------- */
/* Recipients                                                        */

/*
 * Check one final address of a local recipient's expansion: another
 * domain's is fine, a virtual_mailboxes entry exists, a user the cache
 * knows exists; anything else is queued for the user database.  0, or -1
 * when a map cannot be read.
 */
static int
local_target(struct policy_pending *pp, const char *addr)
{
	struct policy *p = pp->p;
	char base[POLICY_MAX_ADDRESS + 1];
	const char *at = strrchr(addr, '@');
	struct buf value;
	int r;

	if (at == NULL || at == addr || at[1] == '\0' ||
	    strlen(addr) > POLICY_MAX_ADDRESS) {
		log_error("event=config_error map=aliases target=%s "
		    "error=\"not a deliverable address\"", log_safe(addr));
		pp->missing = 1;
		return 0;
	}
	if ((r = domain_in(p, PM_DOMAINS, at + 1)) <= 0)
		return r;	/* another domain's: delivered by relay */
	(void)strip_tag(p, addr, base);
	buf_init(&value, MAP_MAX_VALUE);
	r = lookup(p, PM_MAILBOXES, base, &value);
	buf_free(&value);
	if (r < 0)
		return -1;
	if (r == 0 && !cache_has(p, base))
		lookup_add(pp, base);
	return 0;
}

/* A recipient in a local domain: expand it, check every target. */
static void
local_rcpt(struct policy_pending *pp, const char *addr)
{
	struct policy *p = pp->p;
	struct alias_result res = { NULL, 0 };
	const char *error;
	int r;

	(void)strip_tag(p, addr, pp->r.final);
	r = alias_expand(p->maps[PM_ALIASES], pp->r.final, p->max_depth, &res, &error);
	if (r < 0) {
		log_error("event=map_lookup_failed map=aliases key=%s error=\"%s\"",
		    log_safe(pp->r.final), error);
		result_lookup_failed(&pp->r);
		return;
	}
	if (r == 0) {
		log_warn("event=alias_failed rcpt=%s error=\"%s\"",
		    log_safe(pp->r.final), error);
		result_set(&pp->r, POLICY_REJECT, 550, "5.1.1",
		    "Recipient address rejected: alias expansion loops or is too deep");
		return;
	}
	for (size_t i = 0; i < res.n && r >= 0; i++)
		r = local_target(pp, res.addrs[i]);
	alias_result_free(&res);
	if (r < 0 && !pp->missing) {
		result_lookup_failed(&pp->r);
		return;
	}
	result_set(&pp->r, POLICY_ACCEPT, 250, "2.1.5", "Ok");
	if (pp->missing) {
		pending_lookups_done(pp);
		return;
	}
	lookups_start(pp);
}

/* Decide about rcpt, or start the lookups that will. */
static void
rcpt_decide(struct policy_pending *pp, const struct policy_client *c, const char *rcpt)
{
	struct policy *p = pp->p;
	char addr[POLICY_MAX_ADDRESS + 1];
	enum access a;
	const char *at;
	int r;

	if (rcpt[0] == '\0' || strcasecmp(rcpt, "postmaster") == 0)
		rcpt = p->postmaster;
	if (strlen(rcpt) > POLICY_MAX_ADDRESS) {
		result_set(&pp->r, POLICY_REJECT, 501, "5.1.3",
		    "Recipient address too long");
		return;
	}
	snprintf(addr, sizeof(addr), "%s", rcpt);
	at = strrchr(addr, '@');
	if (at == NULL || at == addr || at[1] == '\0') {
		result_set(&pp->r, POLICY_REJECT, 501, "5.1.3",
		    "Recipient address must be user@domain");
		return;
	}
	if ((a = access_check(p, PM_RCPT, addr, &pp->r)) == ACCESS_DECIDED)
		return;
	if ((r = domain_in(p, PM_DOMAINS, at + 1)) < 0) {
		result_lookup_failed(&pp->r);
		return;
	}
	if (r == 1) {
		local_rcpt(pp, addr);
		return;
	}
	if ((r = domain_in(p, PM_RELAY, at + 1)) < 0) {
		result_lookup_failed(&pp->r);
		return;
	}
	if (r == 1 || a == ACCESS_OK || c->auth_user != NULL ||
	    policy_in_mynetworks(p, c->addr)) {
		result_set(&pp->r, POLICY_ACCEPT, 250, "2.1.5", "Ok");
		return;
	}
	result_set(&pp->r, POLICY_REJECT, 554, "5.7.1", "Relay access denied");
}

struct policy_pending *
policy_check_rcpt(struct policy *p, const struct policy_client *c, const char *rcpt,
    policy_done_fn *done, void *arg)
{
	struct policy_pending *pp = pending_new(p, done, arg);

	rcpt_decide(pp, c, rcpt);
	/* Decided now, unless lookups are on their way (their last answer
	 * schedules it). */
	if (pp->waiting == 0 && !pp->scheduled)
		pending_schedule(pp);
	return pp;
}

struct policy_pending *
policy_check_rcpt_now(struct policy *p, const struct policy_client *c,
    const char *rcpt, struct policy_result *r, policy_done_fn *done, void *arg)
{
	struct policy_pending *pp = pending_new(p, done, arg);

	rcpt_decide(pp, c, rcpt);
	if (pp->waiting > 0)
		return pp;	/* the last lookup's answer schedules done() */
	/* Decided (a refusal found during the expansion may already have
	 * scheduled its delivery: take it back). */
	if (pp->scheduled)
		ev_defer_cancel(p->loop, pending_deliver, pp);
	*r = pp->r;
	pending_unlink(pp);
	pending_free(pp);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Senders                                                           */

/* Whether sender is user's own address, with or without a +tag. */
static int
sender_owned(const struct policy *p, const char *user, const char *sender)
{
	char base[POLICY_MAX_ADDRESS + 1];

	if (strcasecmp(sender, user) == 0)
		return 1;
	if (strlen(sender) > POLICY_MAX_ADDRESS)
		return 0;
	return strip_tag(p, sender, base) && strcasecmp(base, user) == 0;
}

/* Decide about sender into *r. */
static void
sender_decide(struct policy *p, const struct policy_client *c, const char *sender,
    struct policy_result *r)
{
	char text[sizeof(r->text)];

	if (strlen(sender) > POLICY_MAX_ADDRESS) {
		result_set(r, POLICY_REJECT, 501, "5.1.7", "Sender address too long");
		return;
	}
	/* The null sender has no entry to look up. */
	if (sender[0] != '\0' &&
	    access_check(p, PM_SENDER, sender, r) == ACCESS_DECIDED)
		return;
	/* An OK from sender_access does not lift this rule. */
	if (c->submission && c->auth_user != NULL && sender[0] != '\0' &&
	    !sender_owned(p, c->auth_user, sender)) {
		snprintf(text, sizeof(text),
		    "Sender address rejected: not owned by user %s", c->auth_user);
		result_set(r, POLICY_REJECT, 553, "5.7.1", text);
		return;
	}
	result_set(r, POLICY_ACCEPT, 250, "2.1.0", "Ok");
}

void
policy_decide_sender(struct policy *p, const struct policy_client *c,
    const char *sender, struct policy_result *r)
{
	memset(r, 0, sizeof(*r));
	sender_decide(p, c, sender, r);
}

struct policy_pending *
policy_check_sender(struct policy *p, const struct policy_client *c,
    const char *sender, policy_done_fn *done, void *arg)
{
	struct policy_pending *pp = pending_new(p, done, arg);

	sender_decide(p, c, sender, &pp->r);
	pending_schedule(pp);
	return pp;
}

void
policy_cancel(struct policy *p, struct policy_pending *pp)
{
	if (pp == NULL)
		return;
	if (pp->scheduled)
		ev_defer_cancel(p->loop, pending_deliver, pp);
	pending_unlink(pp);
	pending_free(pp);
}

int
policy_in_mynetworks(const struct policy *p, const struct sockaddr *addr)
{
	if (addr == NULL)
		return 0;
	for (size_t i = 0; i < p->nnets; i++)
		if (net_cidr_match(&p->nets[i], addr))
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Opening                                                           */

/* The first key of an inline table "{key=value, ...}" (malloc'd), or NULL. */
static char *
inline_first_key(const char *arg)
{
	size_t n;

	if (*arg == '{')
		arg++;
	arg += strspn(arg, " \t");
	n = strcspn(arg, "=,} \t");
	return n > 0 ? xstrndup(arg, n) : NULL;
}

/* The first key of a map's text source at path (malloc'd), or NULL. */
static char *
source_first_key(const char *path)
{
	char line[POLICY_MAX_SOURCE_LINE];
	char *key = NULL;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return NULL;
	while (key == NULL && fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, " \t\r\n");

		if (n > 0 && line[0] != '#')
			key = xstrndup(line, n);
	}
	fclose(f);
	return key;
}

/* The domain of the postmaster address: the first virtual domain (from
 * the map's source), else the host name (malloc'd). */
static char *
postmaster_domain(const struct cfg_section *global)
{
	const char *spec = cfg_str(global, "virtual_domains"), *type, *arg, *error;
	const char *host = cfg_str(global, "hostname");
	char name[256];
	char *d = NULL;

	if (spec[0] != '\0' && map_parse_spec(spec, &type, &arg, &error) == 0) {
		if (strcmp(type, "inline") == 0)
			d = inline_first_key(arg);
		else if (strcmp(type, "static") != 0)
			d = source_first_key(arg);
	}
	if (d != NULL)
		return d;
	return xstrdup(net_hostname(host, name, sizeof(name)));
}

int
policy_open(const struct cfg_section *global, struct ev_loop *loop,
    struct auth_client *auth, struct policy **p_r, const char **error_r)
{
	struct policy *p = xcalloc(1, sizeof(*p));
	const struct cfg_list *nets = cfg_list(global, "mynetworks");
	const char *delim = cfg_str(global, "recipient_delimiter");
	const char *error;
	char *domain;

	p->loop = loop;
	for (size_t i = 0; i < PM_COUNT; i++) {
		const char *spec = cfg_str(global, policy_map_keys[i]);

		if (spec[0] != '\0' && map_open(spec, &p->maps[i], &error) < 0) {
			*error_r = err_fmt("%s: %s", policy_map_keys[i], error);
			policy_close(&p);
			return -1;
		}
	}
	p->nets = xcalloc(nets->n ? nets->n : 1, sizeof(*p->nets));
	for (size_t i = 0; i < nets->n; i++) {
		if (net_parse_cidr(nets->items[i], &p->nets[i], &error) < 0) {
			*error_r = err_fmt("mynetworks: %s: %s",
			    log_safe(nets->items[i]), error);
			policy_close(&p);
			return -1;
		}
		p->nnets++;
	}
	p->delim = delim[0];
	p->max_depth = (unsigned)cfg_int(global, "alias_max_depth");
	p->auth_timeout_ms = cfg_time_ms(global, "auth_timeout");
	domain = postmaster_domain(global);
	p->postmaster = xasprintf("postmaster@%s", domain);
	free(domain);
	p->auth = auth;
	p->cache_ms = cfg_time_ms(global, "smtpd_user_cache_time");
	if (p->cache_ms > 0)
		p->cache = xcalloc(POLICY_CACHE_SLOTS, sizeof(*p->cache));
	*p_r = p;
	return 0;
}

void
policy_close(struct policy **pp)
{
	struct policy *p = *pp;
	struct policy_pending *pend;

	if (p == NULL)
		return;
	while ((pend = p->pending) != NULL)
		policy_cancel(p, pend);
	if (p->cache != NULL)
		for (size_t i = 0; i < POLICY_CACHE_SLOTS; i++)
			free(p->cache[i].user);
	free(p->cache);
	for (size_t i = 0; i < PM_COUNT; i++)
		map_close(&p->maps[i]);
	free(p->nets);
	free(p->postmaster);
	free(p);
	*pp = NULL;
}
