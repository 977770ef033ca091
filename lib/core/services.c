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
	{ "smtpd",	"postern-smtpd",	"SMTP listener: ports 25, 587, 465" },
	{ "qmgr",	"postern-queue",	"queue manager and scheduler" },
	{ "local",	"postern-mail",		"local delivery into Maildirs" },
	{ "relay",	"postern-relay",	"SMTP client for remote delivery" },
	{ "auth",	"postern-auth",		"authentication service" },
	{ "pop3d",	"postern-mail",		"POP3 access, ports 110 and 995" },
	{ "imapd",	"postern-mail",		"IMAP access, ports 143 and 993" },
};
const size_t builtin_nservices = sizeof(builtin_services) / sizeof(builtin_services[0]);

const struct builtin_service *
builtin_service(const char *name)
{
	for (size_t i = 0; i < builtin_nservices; i++)
		if (strcmp(builtin_services[i].name, name) == 0)
			return &builtin_services[i];
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
