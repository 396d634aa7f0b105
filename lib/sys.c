/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys.c - every kernel call the library makes, in one place.
 *
 * Each wrapper returns 0 (or a count/descriptor) or a negative errno, so the
 * layers above never read errno.  Each one first asks fault(), the test hook:
 * rszshm__fault_inject(N, persist, err) makes the Nth wrapped call from then
 * on fail with err, once or (persist) for every call after it too.  Tests
 * loop N = 1, 2, ... to drive every failure path.  Unused, it costs one
 * relaxed atomic load per call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static struct {
	unsigned long countdown;	/* 0: off; else calls left before failing */
	unsigned long calls;		/* wrapped calls since the last inject */
	bool persist;
	bool failing;
	int err;
} faults;

void rszshm__fault_inject(unsigned long nth, bool persist, int err)
{
	faults.calls = 0;
	faults.persist = persist;
	faults.failing = false;
	faults.err = err;
	__atomic_store_n(&faults.countdown, nth, __ATOMIC_RELEASE);
}

void rszshm__fault_clear(void)
{
	rszshm__fault_inject(0, false, 0);
}

unsigned long rszshm__fault_calls(void)
{
	return faults.calls;
}

/* 0, or the negative errno this call must fail with. */
static int fault(void)
{
	if (__builtin_expect(__atomic_load_n(&faults.countdown, __ATOMIC_RELAXED) == 0, 1))
		return 0;
	faults.calls++;
	if (faults.failing)
		return -faults.err;
	if (faults.calls < faults.countdown)
		return 0;
	if (faults.persist)
		faults.failing = true;
	else
		faults.countdown = 0;
	return -faults.err;
}

#define FAULT() do { int f_ = fault(); if (f_) return f_; } while (0)

size_t rszshm__page_size(void)
{
	static size_t pgsz;
	size_t p = __atomic_load_n(&pgsz, __ATOMIC_RELAXED);

	if (!p) {
		p = (size_t)sysconf(_SC_PAGESIZE);
		__atomic_store_n(&pgsz, p, __ATOMIC_RELAXED);
	}
	return p;
}

int rszshm__sys_open(const char *path, int flags, mode_t mode)
{
	int fd;

	FAULT();
	fd = open(path, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

int rszshm__sys_memfd(const char *name)
{
	int fd;

	FAULT();
	fd = memfd_create(name, MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int rszshm__sys_close(int fd)
{
	FAULT();
	/* Linux closes the descriptor even when close() reports an error. */
	return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

int rszshm__sys_fsize(int fd, uint64_t *size, bool *regular)
{
	struct stat st;

	FAULT();
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	if (regular)
		*regular = S_ISREG(st.st_mode);
	return 0;
}

ssize_t rszshm__sys_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	FAULT();
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int rszshm__sys_ftruncate(int fd, uint64_t len)
{
	FAULT();
	if (len > (uint64_t)INT64_MAX)
		return -EFBIG;
	while (ftruncate(fd, (off_t)len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int rszshm__sys_fallocate(int fd, uint64_t off, uint64_t len)
{
	int rc;

	FAULT();
	if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
		return -EFBIG;
	/* posix_fallocate returns the error; it never reports it in errno. */
	while ((rc = posix_fallocate(fd, (off_t)off, (off_t)len)) == EINTR)
		;
	return -rc;
}

int rszshm__sys_mmap(void *addr, size_t len, int prot, int flags, int fd, void **out)
{
	void *m;

	FAULT();
	m = mmap(addr, len, prot, flags, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	*out = m;
	return 0;
}

int rszshm__sys_munmap(void *addr, size_t len)
{
	FAULT();
	return munmap(addr, len) < 0 ? -errno : 0;
}

int rszshm__sys_msync(void *addr, size_t len)
{
	FAULT();
	return msync(addr, len, MS_SYNC) < 0 ? -errno : 0;
}

int rszshm__sys_mkdtemp(char *tmpl)
{
	FAULT();
	return mkdtemp(tmpl) ? 0 : -errno;
}

int rszshm__sys_unlink(const char *path)
{
	FAULT();
	return unlink(path) < 0 ? -errno : 0;
}

int rszshm__sys_rmdir(const char *path)
{
	FAULT();
	return rmdir(path) < 0 ? -errno : 0;
}

/*
 * The address plan's calls (plan.c).  They skip the fault injector on
 * purpose: every failure of the plan is a fallback, never an error of the
 * call that consults it, so an injected fault there would only shift the
 * faults the mk/at tests aim at.  The plan's own failures are tested by
 * damaging its file instead (test-plan.c).
 */
int rszshm__sysq_open(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags | O_CLOEXEC, mode);

	return fd < 0 ? -errno : fd;
}

void rszshm__sysq_close(int fd)
{
	close(fd);
}

int rszshm__sysq_stat(const char *path, int fd, struct stat *st)
{
	int rc = path ? stat(path, st) : fstat(fd, st);

	return rc < 0 ? -errno : 0;
}

int rszshm__sysq_pread(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -ENODATA;
}

int rszshm__sysq_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do
		n = pwrite(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int rszshm__sysq_ftruncate(int fd, uint64_t len)
{
	while (ftruncate(fd, (off_t)len) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int rszshm__sysq_trylock(int fd)
{
	while (flock(fd, LOCK_EX | LOCK_NB) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

void rszshm__sysq_unlock(int fd)
{
	flock(fd, LOCK_UN);
}

bool rszshm__sysq_pid_gone(pid_t pid)
{
	return pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH);
}

void rszshm__sysq_pause_us(unsigned us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000 };

	nanosleep(&ts, NULL);
}

uint64_t rszshm__sysq_random(void)
{
	uint64_t v = 0;
	struct timespec ts;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)getpid() << 32) ^
	       (uint64_t)ts.tv_sec;
}
