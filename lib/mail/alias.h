/*
 * alias: where mail for an address goes -- alias expansion (recursive,
 * with loop detection and a depth limit) and the mailbox directory of a
 * virtual user.  Shared by smtpd (is this recipient valid?) and local
 * delivery (deliver it).
 */
#ifndef POSTERN_ALIAS_H
#define POSTERN_ALIAS_H

#include <stddef.h>

#include "buf.h"
#include "map.h"

/* The result of expanding one address. */
struct alias_result {
	char **addrs;		/* final addresses, lower-case domain, no duplicates */
	size_t n;
};

void alias_result_free(struct alias_result *r);

/*
 * Expand address through the alias map (NULL: no aliases).  An address
 * with an entry of its own is replaced by the entry's addresses; else an
 * "@domain" entry applies (a catch-all); else the address is final.
 * An address that reappears in its own expansion stays final there (so
 * "user: user, copy@x" keeps a copy for user).  1 with *r filled, 0 if
 * the expansion is empty or went deeper than max_depth (a loop: *error_r
 * says which), -1 if the map could not be read (temporary, *error_r).
 */
int alias_expand(struct map *aliases, const char *address, unsigned max_depth,
    struct alias_result *r, const char **error_r) __attribute__((warn_unused_result));

/*
 * The mailbox directory of a virtual user, relative to mail_dir, into out:
 * the virtual_mailboxes entry if the map (may be NULL) has one, else
 * "DOMAIN/LOCALPART/" (lower case).  The result never starts with "/",
 * never contains ".." components.  1 ok, 0 the address or entry is
 * unusable (*error_r), -1 the map could not be read.
 */
int mailbox_path(struct map *mailboxes, const char *address, struct buf *out,
    const char **error_r) __attribute__((warn_unused_result));

#endif
