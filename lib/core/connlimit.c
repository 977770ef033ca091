/*
 * connlimit: connection counts shared by the processes of one service
 * through a file mapped MAP_SHARED (see connlimit.h).
 *
 * The file is a 64-byte header (magic, version, row count, bucket count,
 * a random hash seed) and then rows of counters: a total and one count
 * per hash bucket of client addresses.  Each process writes only its own
 * row, with atomic adds; readers sum every row.  A new connection is
 * counted first and then checked, and taken back if it went over a
 * limit: two processes racing can both refuse, never both accept past
 * the limit.
 *
 * There are two rows per instance: during a reload the retiring process
 * and its replacement run side by side, and each keeps its own row.  A
 * row records its owner's pid; opening takes the instance's first row
 * whose owner is gone (zeroing it), and also zeroes the other if its
 * owner is gone, so a process that died leaks nothing once its instance
 * restarts.
 *
 * A file with another layout (another row count, an older version, a
 * wrong size or owner) is replaced: a new file is written beside it and
 * renamed over it, under an flock() of PATH.lock so that processes
 * starting together agree on one file.  Processes still mapping the old
 * file keep counting there until they exit.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connlimit.h"
#include "log.h"
#include "xalloc.h"

#define CL_MAGIC 0x504c4d43u	/* "CMLP" */
#define CL_VERSION 1u
#define CL_BUCKETS 4096u
/* The most processes one file serves. */
#define CL_MAX_PROCS 1024u

struct cl_header {
	uint32_t magic;
	uint32_t version;
	uint32_t nrows;		/* 2 * nprocs */
	uint32_t nbuckets;
	uint64_t seed;		/* hash seed, random per file */
	uint32_t row_size;	/* bytes per row */
	uint32_t pad[9];
};

struct cl_row {
	uint32_t total;
	int32_t pid;		/* the owner, 0: none */
	uint32_t pad[14];
	uint32_t buckets[CL_BUCKETS];
};

struct connlimit {
	void *base;
	size_t size;
	struct cl_header *hdr;
	struct cl_row *rows;
	unsigned nrows;
	struct cl_row *mine;
	uint64_t seed;
};

_Static_assert(sizeof(struct cl_header) == 64, "connlimit header size");
_Static_assert(sizeof(struct cl_row) % 64 == 0, "connlimit row alignment");

/* The file size for nrows rows. */
static size_t
file_size(unsigned nrows)
{
	return sizeof(struct cl_header) + (size_t)nrows * sizeof(struct cl_row);
}

/* Whether process pid still runs (our own pid counts as gone: a row
 * this process held is its to take again). */
static int
owner_alive(int32_t pid)
{
	if (pid <= 0 || pid == (int32_t)getpid())
		return 0;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Zero every counter of a row and clear its owner. */
static void
row_clear(struct cl_row *row)
{
	for (size_t i = 0; i < CL_BUCKETS; i++)
		__atomic_store_n(&row->buckets[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&row->total, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&row->pid, 0, __ATOMIC_SEQ_CST);
}

/*
 * Map path if it is a table of nrows rows that this user owns.  1 with
 * *c filled, 0 if it is missing or of another layout, -1 on an error
 * (*error_r).
 */
static int
map_existing(const char *path, unsigned nrows, struct connlimit *c,
    const char **error_r)
{
	struct stat st;
	struct cl_header *h;
	void *base;
	int fd;

	if ((fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return 0;
		*error_r = err_fmt("open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = err_fmt("fstat %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 0077) != 0 || (uint64_t)st.st_size != file_size(nrows)) {
		close(fd);
		return 0;
	}
	base = mmap(NULL, file_size(nrows), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED) {
		*error_r = err_fmt("mmap %s: %s", path, strerror(errno));
		return -1;
	}
	h = base;
	if (h->magic != CL_MAGIC || h->version != CL_VERSION || h->nrows != nrows ||
	    h->nbuckets != CL_BUCKETS || h->row_size != sizeof(struct cl_row)) {
		munmap(base, file_size(nrows));
		return 0;
	}
	c->base = base;
	c->size = file_size(nrows);
	c->hdr = h;
	c->rows = (struct cl_row *)((char *)base + sizeof(*h));
	c->nrows = nrows;
	c->seed = h->seed;
	return 1;
}

/* Write a fresh table of nrows rows beside path and rename it over path.
 * 0, or -1 with *error_r. */
static int
create_file(const char *path, unsigned nrows, const char **error_r)
{
	struct cl_header h;
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd;

	memset(&h, 0, sizeof(h));
	h.magic = CL_MAGIC;
	h.version = CL_VERSION;
	h.nrows = nrows;
	h.nbuckets = CL_BUCKETS;
	h.row_size = sizeof(struct cl_row);
	if (getrandom(&h.seed, sizeof(h.seed), 0) != (ssize_t)sizeof(h.seed)) {
		*error_r = err_fmt("getrandom: %s", strerror(errno));
		free(tmp);
		return -1;
	}
	(void)unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)file_size(nrows)) < 0 ||
	    pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    rename(tmp, path) < 0) {
		*error_r = err_fmt("create %s: %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			(void)unlink(tmp);
		}
		free(tmp);
		return -1;
	}
	close(fd);
	free(tmp);
	return 0;
}

/* Take one of instance's two rows (see the top).  Called under the lock. */
static struct cl_row *
claim_row(struct connlimit *c, unsigned instance)
{
	struct cl_row *pick = NULL, *cand[2];

	cand[0] = &c->rows[instance];
	cand[1] = &c->rows[instance + c->nrows / 2];
	for (size_t i = 0; i < 2; i++) {
		if (!owner_alive(__atomic_load_n(&cand[i]->pid, __ATOMIC_SEQ_CST))) {
			row_clear(cand[i]);
			if (pick == NULL)
				pick = cand[i];
		}
	}
	if (pick == NULL) {
		/* Both owners seem alive: a pid reused by another program. */
		log_warn("event=connlimit_row_taken instance=%u pid=%ld",
		    instance, (long)cand[0]->pid);
		pick = cand[0];
		row_clear(pick);
	}
	__atomic_store_n(&pick->pid, (int32_t)getpid(), __ATOMIC_SEQ_CST);
	return pick;
}

int
connlimit_open(const char *path, unsigned nprocs, unsigned instance,
    struct connlimit **c_r, const char **error_r)
{
	struct connlimit c;
	char *lockpath;
	int lfd, r;

	if (nprocs == 0 || nprocs > CL_MAX_PROCS || instance >= nprocs) {
		*error_r = err_fmt("instance %u of %u processes: out of range (at most %u)",
		    instance, nprocs, CL_MAX_PROCS);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	lockpath = xasprintf("%s.lock", path);
	lfd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lfd < 0) {
		*error_r = err_fmt("open %s: %s", lockpath, strerror(errno));
		free(lockpath);
		return -1;
	}
	free(lockpath);
	while (flock(lfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			*error_r = err_fmt("flock %s.lock: %s", path, strerror(errno));
			close(lfd);
			return -1;
		}
	}
	r = map_existing(path, 2 * nprocs, &c, error_r);
	if (r == 0) {
		log_info("event=connlimit_create file=%s processes=%u", path, nprocs);
		if (create_file(path, 2 * nprocs, error_r) == 0) {
			r = map_existing(path, 2 * nprocs, &c, error_r);
			if (r == 0) {
				*error_r = err_fmt("%s: the new file is not usable", path);
				r = -1;
			}
		} else {
			r = -1;
		}
	}
	if (r == 1)
		c.mine = claim_row(&c, instance);
	close(lfd);	/* releases the lock */
	if (r < 0)
		return -1;
	*c_r = xmalloc(sizeof(c));
	**c_r = c;
	return 0;
}

void
connlimit_close(struct connlimit **cp)
{
	struct connlimit *c = *cp;

	if (c == NULL)
		return;
	/* This process no longer counts anything. */
	row_clear(c->mine);
	munmap(c->base, c->size);
	free(c);
	*cp = NULL;
}

/* A strong 64-bit mixer (MurmurHash3's finaliser). */
static uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* The bucket of addr: a seeded hash of its address bytes (an IPv4-mapped
 * IPv6 address counts as the IPv4 address; a native IPv6 address counts
 * by its /64, the least a site is given, so one client cannot escape the
 * per-address limit by hopping through its prefix; other families share
 * bucket 0). */
static unsigned
bucket_of(const struct connlimit *c, const struct sockaddr *addr)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};
	const unsigned char *a;
	size_t n;
	uint64_t h = c->seed;

	if (addr == NULL)
		return 0;
	if (addr->sa_family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr;
		n = 4;
	} else if (addr->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
		n = 8;		/* the /64 */
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			a += 12;
			n = 4;
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;

		for (size_t j = i; j < n && j < i + 8; j++)
			w = w << 8 | a[j];
		h = mix64(h ^ w ^ (uint64_t)n << 56) + c->seed;
	}
	return (unsigned)(mix64(h) % CL_BUCKETS);
}

/* The sum of one counter over every row, capped at UINT_MAX. */
static unsigned
sum(const struct connlimit *c, size_t offset)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < c->nrows; i++) {
		const uint32_t *v = (const uint32_t *)((const char *)&c->rows[i] + offset);

		total += __atomic_load_n(v, __ATOMIC_SEQ_CST);
	}
	return total > UINT32_MAX ? UINT32_MAX : (unsigned)total;
}

/* The offset of bucket b's counter within a row. */
static size_t
bucket_offset(unsigned b)
{
	return offsetof(struct cl_row, buckets) + (size_t)b * sizeof(uint32_t);
}

/* Take one from a counter of our own row, never below zero. */
static void
counter_dec(uint32_t *v, const char *what)
{
	uint32_t old = __atomic_load_n(v, __ATOMIC_SEQ_CST);

	do {
		if (old == 0) {
			log_error("event=connlimit_underflow counter=%s", what);
			return;
		}
	} while (!__atomic_compare_exchange_n(v, &old, old - 1, 0, __ATOMIC_SEQ_CST,
	    __ATOMIC_SEQ_CST));
}

int
connlimit_enter(struct connlimit *c, const struct sockaddr *addr,
    unsigned max_total, unsigned max_per_addr, const char **which_r)
{
	unsigned b = bucket_of(c, addr);

	__atomic_add_fetch(&c->mine->total, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&c->mine->buckets[b], 1, __ATOMIC_SEQ_CST);
	if (max_total != 0 && sum(c, offsetof(struct cl_row, total)) > max_total)
		*which_r = "total";
	else if (max_per_addr != 0 && sum(c, bucket_offset(b)) > max_per_addr)
		*which_r = "address";
	else
		return 1;
	counter_dec(&c->mine->buckets[b], "bucket");
	counter_dec(&c->mine->total, "total");
	return 0;
}

void
connlimit_leave(struct connlimit *c, const struct sockaddr *addr)
{
	unsigned b = bucket_of(c, addr);

	counter_dec(&c->mine->buckets[b], "bucket");
	counter_dec(&c->mine->total, "total");
}

unsigned
connlimit_total(const struct connlimit *c)
{
	return sum(c, offsetof(struct cl_row, total));
}

unsigned
connlimit_addr(const struct connlimit *c, const struct sockaddr *addr)
{
	return sum(c, bucket_offset(bucket_of(c, addr)));
}
