/*
 * services: the table of postern's own daemons and their users.  A new
 * daemon is a new row.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "services.h"

const struct builtin_service builtin_services[] = {
	{ "smtpd",	"postern-smtpd",	{ POSTERN_AUTH_GROUP, NULL },
	    "SMTP listener: ports 25, 587, 465" },
	{ "qmgr",	"postern-queue",	{ NULL },
	    "queue manager and scheduler" },
	{ "local",	"postern-mail",		{ POSTERN_AUTH_GROUP, NULL },
	    "local delivery into Maildirs" },
	{ "relay",	"postern-relay",	{ NULL },
	    "SMTP client for remote delivery" },
	{ "auth",	"postern-auth",		{ NULL },
	    "authentication service" },
	{ "pop3d",	"postern-mail",		{ POSTERN_AUTH_GROUP, NULL },
	    "POP3 access, ports 110 and 995" },
	{ "imapd",	"postern-mail",		{ POSTERN_AUTH_GROUP, NULL },
	    "IMAP access, ports 143 and 993" },
};
const size_t builtin_nservices = sizeof(builtin_services) / sizeof(builtin_services[0]);

/*
 * Who reaches which socket.  qmgr's notice socket belongs to smtpd's user
 * (so smtpd reaches it as the owner) and the drop group (so sendmail(1),
 * set-group-id drop_group, reaches it before it gives the group up);
 * local and relay serve qmgr alone, by its primary group; qmgr.ctl is
 * root's.
 */
const struct builtin_socket builtin_sockets[] = {
	{ "qmgr",	"postern-smtpd", POSTERN_DROP_GROUP, 0660,
	    "smtpd (owner), sendmail(1) (group drop_group)" },
	{ "qmgr.ctl",	NULL,		NULL,		0600, "root" },
	{ "local",	NULL,		"postern-queue", 0660, "qmgr (group)" },
	{ "relay",	NULL,		"postern-queue", 0660, "qmgr (group)" },
	{ "auth",	NULL,		POSTERN_AUTH_GROUP, 0660,
	    "smtpd, local, pop3d, imapd (group " POSTERN_AUTH_GROUP ")" },
};
const size_t builtin_nsockets = sizeof(builtin_sockets) / sizeof(builtin_sockets[0]);

const struct builtin_service *
builtin_service(const char *name)
{
	for (size_t i = 0; i < builtin_nservices; i++)
		if (strcmp(builtin_services[i].name, name) == 0)
			return &builtin_services[i];
	return NULL;
}

int
builtin_service_in_group(const struct builtin_service *b, const char *group)
{
	for (size_t i = 0; i < SERVICE_MAX_GROUPS && b->groups[i] != NULL; i++)
		if (strcmp(b->groups[i], group) == 0)
			return 1;
	return 0;
}

const struct builtin_socket *
builtin_socket(const char *name)
{
	for (size_t i = 0; i < builtin_nsockets; i++)
		if (strcmp(builtin_sockets[i].name, name) == 0)
			return &builtin_sockets[i];
	return NULL;
}

pid_t
master_running(const char *pid_file)
{
	char text[32];
	ssize_t n;
	pid_t pid = 0;
	int fd = open(pid_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		/* Nobody holds it: a stale file from a crash. */
		close(fd);
		return 0;
	}
	n = read(fd, text, sizeof(text) - 1);
	if (n > 0) {
		text[n] = '\0';
		pid = (pid_t)strtol(text, NULL, 10);
	}
	close(fd);
	return pid > 0 ? pid : 0;
}
