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
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

int rszshm__sys_same_file(int fd, int other)
{
	struct stat a, b;

	FAULT();
	if (fstat(fd, &a) < 0 || fstat(other, &b) < 0)
		return -errno;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * The futex calls are not fault-injected: the wake is on every writer's
 * path when someone waits, and a failed wake or wait only ends a wait early
 * or at its timeout.  Shared (not PRIVATE) futexes: the word is in a file
 * mapping that other processes wait on.
 */
int rszshm__sys_futex_wait(const uint32_t *word, uint32_t val, const struct timespec *rel)
{
	if (syscall(SYS_futex, word, FUTEX_WAIT, val, rel, NULL, 0) == 0)
		return 0;
	return -errno;
}

static unsigned long futex_wakes;	/* FUTEX_WAKE calls made (for tests) */

void rszshm__sys_futex_wake(uint32_t *word)
{
	__atomic_fetch_add(&futex_wakes, 1, __ATOMIC_RELAXED);
	syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

unsigned long rszshm__sys_futex_wakes(void)
{
	return __atomic_load_n(&futex_wakes, __ATOMIC_RELAXED);
}
