/*
 * fuzz_ipc: libFuzzer target for the IPC stream decoder and read cursor,
 * the code a link runs on every byte a peer sends.
 *
 * Input: byte 0 picks the mode (bit 0: the generic decoder that
 * ipc_recv_blocking uses instead of a protocol with a hello; bit 1: feed
 * whole wanted chunks instead of small random ones), bytes 1-4 seed the
 * read sizes and where fds arrive, the rest is the byte stream.  Each
 * complete frame is read through a cursor (fields chosen by its type, or by
 * its id for the free-form type).  Beyond the sanitizers, it checks that
 * every fd handed to the decoder ends up closed.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"

#define F_U32S	(IPC_TYPE_USER + 0)	/* u32 u32 */
#define F_FD	(IPC_TYPE_USER + 1)	/* str u64 fd */
#define F_DATA	(IPC_TYPE_USER + 2)	/* data fd fd */
#define F_EMPTY	(IPC_TYPE_USER + 3)	/* nothing */
#define F_FREE	(IPC_TYPE_USER + 4)	/* fields chosen by the frame id */

#define MAX_TRACKED 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ipc_type fuzz_types[] = {
	{ F_U32S, 8, 8, 0 },
	{ F_FD, 13, 4096, 1 },
	{ F_DATA, 4, 65536, 2 },
	{ F_EMPTY, 0, 0, 0 },
	{ F_FREE, 0, 1024, IPC_MAX_FDS },
};

/* Links are never made here; the decoder only checks these exist. */
static int
fuzz_msg(struct ipc_link *l, uint32_t type, uint32_t id, struct ipc_cursor *c,
    void *arg)
{
	(void)l; (void)type; (void)id; (void)c; (void)arg;
	return 0;
}

static void
fuzz_close(struct ipc_link *l, const char *why, void *arg)
{
	(void)l; (void)why; (void)arg;
}

static const struct ipc_proto fuzz_proto = {
	"fuzz/1", fuzz_types, sizeof(fuzz_types) / sizeof(fuzz_types[0]),
	fuzz_msg, fuzz_close,
};

/* A small PRNG for read sizes (xorshift32). */
static uint32_t
next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Read a frame the way a handler would: the fields its type declares, or
 * for F_FREE and unknown types a sequence picked by the id. */
static void
read_frame(uint32_t type, uint32_t id, struct ipc_cursor *c)
{
	const char *ops, *s;
	const void *p;
	uint64_t v64;
	uint32_t v32;
	size_t n, i;
	int fd;
	char free_ops[11];

	switch (type) {
	case F_U32S: ops = "uu"; break;
	case F_FD: ops = "sUf"; break;
	case F_DATA: ops = "dff"; break;
	case F_EMPTY: ops = ""; break;
	default:
		/* Ten ops, three bits of the id each. */
		for (i = 0; i < 10; i++)
			free_ops[i] = "uUsdf"[((id >> (3 * i)) & 7) % 5];
		free_ops[10] = '\0';
		ops = free_ops;
		break;
	}
	for (; *ops != '\0'; ops++) {
		switch (*ops) {
		case 'u':
			(void)!ipc_get_u32(c, &v32);
			break;
		case 'U':
			(void)!ipc_get_u64(c, &v64);
			break;
		case 's':
			if (ipc_get_str(c, &s) == 0 && s != NULL &&
			    strlen(s) + 1 > c->len)
				abort();
			break;
		case 'd':
			if (ipc_get_data(c, &p, &n) == 0 &&
			    (n > c->len || (const unsigned char *)p < c->p))
				abort();
			break;
		case 'f':
			if (ipc_get_fd(c, &fd) == 0)
				close(fd);
			break;
		}
	}
	(void)!ipc_get_end(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1;
	int tracked[MAX_TRACKED];
	size_t ntracked = 0, off, i;
	struct ipc_decoder *d;
	const char *error;
	uint32_t seed;
	uint8_t mode;

	if (size < 5)
		return 0;
	if (devnull < 0 && (devnull = open("/dev/null", O_RDONLY)) < 0)
		abort();
	mode = data[0];
	memcpy(&seed, data + 1, 4);
	if (seed == 0)
		seed = 1;
	data += 5;
	size -= 5;
	d = ipc_decoder_new((mode & 1) ? NULL : &fuzz_proto);
	for (off = 0; off < size; ) {
		size_t want = ipc_decoder_want(d), n, nfds = 0;
		uint32_t r = next_rand(&seed);
		int fds[IPC_MAX_FDS + 2];
		int got;

		if (want == 0)
			break;
		n = (mode & 2) ? want : 1 + r % 61;
		if (n > want)
			n = want;
		if (n > size - off)
			n = size - off;
		/* Now and then some fds (occasionally more than allowed). */
		if ((r >> 8) % 4 == 0) {
			nfds = 1 + (r >> 12) % 3;
			if ((r >> 16) % 16 == 0)
				nfds = IPC_MAX_FDS + 2;
		}
		for (i = 0; i < nfds; i++) {
			if (ntracked == MAX_TRACKED ||
			    (fds[i] = dup(devnull)) < 0)
				break;
			tracked[ntracked++] = fds[i];
		}
		nfds = i;
		got = ipc_decoder_feed(d, data + off, n, fds, nfds, &error);
		off += n;
		if (got < 0)
			break;
		if (got == 1) {
			struct ipc_cursor c;
			uint32_t type, id;

			ipc_decoder_frame(d, &type, &id, &c);
			read_frame(type, id, &c);
			if (ipc_decoder_next(d, &c, &error) < 0)
				break;
		}
	}
	ipc_decoder_free(&d);
	/* Every fd the decoder was given is closed by now, one way or another
	 * (nothing else opened an fd meanwhile, so a live number is a leak). */
	for (i = 0; i < ntracked; i++)
		if (fcntl(tracked[i], F_GETFD) != -1)
			abort();
	return 0;
}
