/*
 * dirs: the directories master prepares for postern's daemons, with
 * their owners and modes.  A table, so a new directory is a new row.
 */
#include "autoconf.h"

#include <string.h>

#include "master.h"

/*
 * The spool layout (DESIGN.md).  incoming/ is written by smtpd and read
 * and emptied by qmgr: files inherit the postern-queue group from the
 * set-group-id directories, so qmgr can read them without sharing a user.
 * maildrop/ is sendmail(1)'s (set-group-id postern-drop): sticky and
 * group-writable but not group-readable, so local users can drop mail
 * but not read or remove each other's.
 */
const struct master_dir master_dirs[] = {
	{ "run_dir",	"",		NULL,		NULL,		0755 },
	{ "spool_dir",	"",		NULL,		NULL,		0755 },
	{ "spool_dir",	"incoming",	"postern-smtpd", "postern-queue", 02750 },
	{ "spool_dir",	"incoming/tmp",	"postern-smtpd", "postern-queue", 02750 },
	{ "spool_dir",	"incoming/new",	"postern-smtpd", "postern-queue", 02770 },
	{ "spool_dir",	"maildrop",	"postern-queue", POSTERN_DROP_GROUP, 01730 },
	{ "spool_dir",	"maildrop/tmp",	"postern-queue", POSTERN_DROP_GROUP, 01730 },
	{ "spool_dir",	"maildrop/new",	"postern-queue", POSTERN_DROP_GROUP, 01730 },
	{ "spool_dir",	"queue",	"postern-queue", NULL,		0700 },
	{ "spool_dir",	"corrupt",	"postern-queue", NULL,		0700 },
	{ "mail_dir",	"",		"postern-mail",	NULL,		0700 },
};
const size_t master_ndirs = sizeof(master_dirs) / sizeof(master_dirs[0]);
