/*
 * libFuzzer target for queue-file envelopes, which qmgr reads from
 * spool/incoming and spool/maildrop without trusting their writers: the
 * bytes go into a memfd and through qfile_read_envelope().  On success
 * the envelope must be whole (an id, at least one recipient, every string
 * free of control bytes) and the body offset within the file; everything
 * is freed each round (LeakSanitizer checks).
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort unless s is a string without control bytes. */
static void
check_str(const char *s, int may_be_null)
{
	if (s == NULL) {
		if (!may_be_null)
			abort();
		return;
	}
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct envelope e;
	const char *error = NULL;
	off_t body;

	if (fd < 0 && (fd = memfd_create("fuzz_qfile", MFD_CLOEXEC)) < 0)
		abort();
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort();
	memset(&e, 0, sizeof(e));
	if (qfile_read_envelope(fd, &e, &body, &error) < 0) {
		if (error == NULL || error[0] == '\0')
			abort();
		return 0;
	}
	if (body < 0 || (size_t)body > size || e.id[0] == '\0' ||
	    memchr(e.id, '\0', QFILE_ID_MAX) == NULL || e.nrcpts == 0)
		abort();
	check_str(e.sender, 0);
	check_str(e.envid, 1);
	check_str(e.client, 1);
	check_str(e.helo, 1);
	check_str(e.proto, 1);
	check_str(e.tls, 1);
	check_str(e.auth, 1);
	for (size_t i = 0; i < e.nrcpts; i++) {
		check_str(e.rcpts[i].addr, 0);
		check_str(e.rcpts[i].orcpt, 1);
	}
	envelope_free(&e);
	return 0;
}
