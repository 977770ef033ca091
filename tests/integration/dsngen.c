/*
 * dsngen: write a delivery status notification to stdout, for
 * test_dsn_format.py.  Reads a queue file (lib/mail/qfile.h format: envelope,
 * then the message) and a report file with one line per recipient to
 * report on, tab-separated:
 *
 *   INDEX ACTION STATUS REMOTE-MTA DIAG-TYPE DIAGNOSTIC LAST-ATTEMPT RETRY-UNTIL
 *
 * INDEX is the recipient's position in the envelope, ACTION one of
 * failed/delayed/delivered/relayed/expanded, DIAG-TYPE smtp or local,
 * times in seconds since the epoch; "-" leaves a field out.  The
 * diagnostic is %XX-unescaped so tests can put any byte in it.  Prints
 * the dsn_result on stderr as key=value.
 *
 * usage: dsngen [-h host] [-m return_max] [-b boundary] [-t now] [-T to]
 *               QUEUEFILE REPORTFILE
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "log.h"
#include "qfile.h"
#include "xalloc.h"

#define MAX_LINES 64

/* "-" is absent; otherwise a copy with %XX decoded. */
static char *
field(const char *s)
{
	char *out, *o;

	if (strcmp(s, "-") == 0)
		return NULL;
	out = o = xstrdup(s);
	while (*s != '\0') {
		unsigned int c;

		if (s[0] == '%' && sscanf(s + 1, "%2x", &c) == 1 && c != 0) {
			*o++ = (char)c;
			s += 3;
		} else
			*o++ = *s++;
	}
	*o = '\0';
	return out;
}

/* The action named s, or exit. */
static enum dsn_action
parse_action(const char *s)
{
	for (int a = DSN_ACTION_FAILED; a <= DSN_ACTION_EXPANDED; a++)
		if (strcmp(s, dsn_action_name((enum dsn_action)a)) == 0)
			return (enum dsn_action)a;
	log_fatal("dsngen: bad action %s", s);
}

int
main(int argc, char **argv)
{
	struct dsn_request req;
	struct dsn_rcpt rcpts[MAX_LINES];
	char *owned[MAX_LINES][4];
	struct envelope env;
	struct dsn_result res;
	const char *error = NULL;
	char line[4096];
	off_t body;
	FILE *rf;
	size_t n = 0, i;
	int c, fd;

	log_init("dsngen", LOG_TARGET_STDERR, LOG_LEVEL_WARN);
	memset(&req, 0, sizeof(req));
	memset(&env, 0, sizeof(env));
	req.reporting_mta = "mx.example.test";
	while ((c = getopt(argc, argv, "h:m:b:t:T:")) != -1) {
		switch (c) {
		case 'h': req.reporting_mta = optarg; break;
		case 'm': req.return_max = strtoul(optarg, NULL, 10); break;
		case 'b': req.boundary = optarg; break;
		case 't': req.now = (time_t)strtoll(optarg, NULL, 10); break;
		case 'T': req.to = optarg; break;
		default: return 64;
		}
	}
	if (argc - optind != 2)
		log_fatal("usage: dsngen [-h host] [-m max] [-b boundary] [-t now] "
		    "[-T to] QUEUEFILE REPORTFILE");
	if ((fd = open(argv[optind], O_RDONLY)) < 0)
		log_fatal("dsngen: open %s: %s", argv[optind], strerror(errno));
	if (qfile_read_envelope(fd, &env, &body, &error) < 0)
		log_fatal("dsngen: envelope: %s", error);
	if ((rf = fopen(argv[optind + 1], "r")) == NULL)
		log_fatal("dsngen: open %s: %s", argv[optind + 1], strerror(errno));
	while (fgets(line, sizeof(line), rf) != NULL && n < MAX_LINES) {
		char *f[8], *save = NULL, *p = line;
		size_t k = 0;
		unsigned long idx;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		while (k < 8 && (f[k] = strtok_r(p, "\t", &save)) != NULL)
			k++, p = NULL;
		if (k != 8)
			log_fatal("dsngen: report line needs 8 fields");
		idx = strtoul(f[0], NULL, 10);
		if (idx >= env.nrcpts)
			log_fatal("dsngen: no recipient %lu", idx);
		memset(&rcpts[n], 0, sizeof(rcpts[n]));
		rcpts[n].rcpt = &env.rcpts[idx];
		rcpts[n].action = parse_action(f[1]);
		rcpts[n].status = owned[n][0] = field(f[2]);
		rcpts[n].remote_mta = owned[n][1] = field(f[3]);
		rcpts[n].diag_smtp = strcmp(f[4], "smtp") == 0;
		rcpts[n].diagnostic = owned[n][2] = field(f[5]);
		owned[n][3] = NULL;
		rcpts[n].last_attempt = strcmp(f[6], "-") == 0 ? 0 :
		    (time_t)strtoll(f[6], NULL, 10);
		rcpts[n].retry_until = strcmp(f[7], "-") == 0 ? 0 :
		    (time_t)strtoll(f[7], NULL, 10);
		n++;
	}
	fclose(rf);
	req.env = &env;
	req.rcpts = rcpts;
	req.nrcpts = n;
	req.msg_fd = fd;
	req.msg_offset = body;
	req.msg_len = (uint64_t)(lseek(fd, 0, SEEK_END) - body);
	if (dsn_write_fd(&req, STDOUT_FILENO, &res, &error) < 0)
		log_fatal("dsngen: %s", error);
	fprintf(stderr, "size=%" PRIu64 " returned=%d body_8bit=%d smtputf8=%d\n",
	    res.size, (int)res.returned, res.body_8bit, res.smtputf8);
	for (i = 0; i < n; i++)
		for (int k = 0; k < 3; k++)
			free(owned[i][k]);
	envelope_free(&env);
	close(fd);
	return 0;
}
