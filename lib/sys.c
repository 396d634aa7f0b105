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
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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

bool rszshm__sys_no_tmpfile;

int rszshm__sys_open(const char *path, int flags, mode_t mode)
{
	int fd;

	FAULT();
	if ((flags & O_TMPFILE) == O_TMPFILE && __atomic_load_n(&rszshm__sys_no_tmpfile, __ATOMIC_RELAXED))
		return -EOPNOTSUPP;
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

/*
 * Does a msync(2) of a file on the mount with unique id @mnt have anything to
 * write?  Not on tmpfs (/dev/shm, memfd), whose pages are the file.  The
 * answer is fstatfs(2)'s f_type, remembered per mount: the last tmpfs mount
 * and the last other one seen, each one 64-bit word, so threads racing here
 * only ever store a true answer.  A unique mount id (statx
 * STATX_MNT_ID_UNIQUE, Linux 6.8) is never reused while the machine runs;
 * without one (an older kernel) the answer is "it may", and nothing is
 * remembered.
 */

static uint64_t mnt_tmpfs, mnt_other;	/* unique mount ids; 0: none yet */

static bool on_memfs(int fd, uint64_t mnt)
{
	struct statfs sf;
	int rc;

	if (mnt == 0)
		return false;
	if (__atomic_load_n(&mnt_tmpfs, __ATOMIC_RELAXED) == mnt)
		return true;
	if (__atomic_load_n(&mnt_other, __ATOMIC_RELAXED) == mnt)
		return false;
	while ((rc = fstatfs(fd, &sf)) < 0 && errno == EINTR)
		;
	if (rc < 0)
		return false;	/* cannot tell: keep the msync */
	if (sf.f_type == TMPFS_MAGIC) {
		__atomic_store_n(&mnt_tmpfs, mnt, __ATOMIC_RELAXED);
		return true;
	}
	__atomic_store_n(&mnt_other, mnt, __ATOMIC_RELAXED);
	return false;
}

int rszshm__sys_fstat(int fd, uint64_t *size, bool *regular, bool *memfs)
{
	const unsigned need = STATX_TYPE | STATX_SIZE;
	struct statx sx;
	struct stat st;

	FAULT();
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, need | STATX_MNT_ID_UNIQUE,
		  &sx) == 0 && (sx.stx_mask & need) == need) {
		*size = (uint64_t)sx.stx_size;
		*regular = S_ISREG(sx.stx_mode);
		*memfs = *regular &&
			 on_memfs(fd, (sx.stx_mask & STATX_MNT_ID_UNIQUE) ? sx.stx_mnt_id : 0);
		return 0;
	}
	/* A kernel before statx (4.11), a sandbox that refuses it (some
	 * seccomp profiles say EPERM), a file system that did not say: fstat,
	 * and "not known". */
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	*regular = S_ISREG(st.st_mode);
	*memfs = false;
	return 0;
}

static unsigned long msyncs;	/* msync calls made (for tests) */

unsigned long rszshm__sys_msyncs(void)
{
	return __atomic_load_n(&msyncs, __ATOMIC_RELAXED);
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

ssize_t rszshm__sys_read(int fd, void *buf, size_t len)
{
	ssize_t n;

	FAULT();
	while ((n = read(fd, buf, len)) < 0 && errno == EINTR)
		;
	return n < 0 ? -errno : n;
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
	__atomic_fetch_add(&msyncs, 1, __ATOMIC_RELAXED);
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

int rszshm__sys_fchmod(int fd, mode_t mode)
{
	FAULT();
	return fchmod(fd, mode) < 0 ? -errno : 0;
}

int rszshm__sys_flock(int fd, int op)
{
	FAULT();
	while (flock(fd, op) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int rszshm__sys_same_file(int fd, const char *path)
{
	struct stat a, b;

	FAULT();
	if (fstat(fd, &a) < 0)
		return -errno;
	if (lstat(path, &b) < 0)
		return errno == ENOENT ? 0 : -errno;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int rszshm__sys_chmod(const char *path, mode_t mode)
{
	FAULT();
	return chmod(path, mode) < 0 ? -errno : 0;
}

int rszshm__sys_link(const char *from, const char *to)
{
	FAULT();
	return link(from, to) < 0 ? -errno : 0;
}

int rszshm__sys_mkstemp(char *tmpl)
{
	int fd;

	FAULT();
	fd = mkostemp(tmpl, O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

ssize_t rszshm__sys_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t put = 0;

	FAULT();
	while (put < len) {
		ssize_t n = pwrite(fd, (const char *)buf + put, len - put, (off_t)(off + put));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		put += (size_t)n;
	}
	return (ssize_t)put;
}

/* ---------------------------------------------------------------- errors
 * The text of the last failure in each thread.  A layer that knows why it
 * fails says so with rszshm__why(rc, ...) just before returning rc; the
 * public edge (rszshm__fail(), through RSZSHM__FAIL) keeps that text when
 * it fails with the same rc, and otherwise words the errno itself. */
static __thread struct {
	int pending;		/* rc the text below was written for, 0 if none */
	bool set;		/* a failure happened in this thread */
	char text[RSZSHM__WHY_MAX];
} last;

void rszshm__why(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last.text, sizeof(last.text), fmt, ap);
	va_end(ap);
	last.pending = rc;
}

void rszshm__why_clear(void)
{
	last.pending = 0;
}

void rszshm__fail(int rc)
{
	int e = -rc;

	if (last.pending != rc || rc >= 0) {
		/* strerror_r (GNU) may return a static string instead of filling buf. */
		char buf[RSZSHM__WHY_MAX];
		const char *t = strerror_r(e, buf, sizeof(buf));

		snprintf(last.text, sizeof(last.text), "%s", t);
	}
	last.pending = 0;
	last.set = true;
	errno = e;
}

const char *rszshm_errmsg(void)
{
	return last.set ? last.text : NULL;
}

static unsigned long ofd_locks;	/* rszshm__sys_ofd_lock calls (for tests) */

unsigned long rszshm__sys_ofd_locks(void)
{
	return __atomic_load_n(&ofd_locks, __ATOMIC_RELAXED);
}

int rszshm__sys_ofd_lock(int fd, short type, bool wait)
{
	/* One byte far past any region's end: open-file-description locks there
	 * conflict with no lock a user is likely to take on the file. */
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = INT64_MAX - 1, .l_len = 1 };

	FAULT();
	__atomic_fetch_add(&ofd_locks, 1, __ATOMIC_RELAXED);
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
		if (errno != EINTR)
			return errno == EACCES ? -EAGAIN : -errno;
	}
	return 0;
}

int rszshm__sys_pidns(uint64_t *ino)
{
	struct stat st;

	/* No fault hook: its caller treats a failure as "no namespace". */
	if (stat("/proc/self/ns/pid", &st) < 0)
		return -errno;
	*ino = (uint64_t)st.st_ino;
	return 0;
}


bool rszshm__sys_thread_gone(pid_t tid)
{
	/* kill(2) finds a thread by its id too; EPERM means it exists. */
	return kill(tid, 0) < 0 && errno == ESRCH;
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

int rszshm__sysq_lstat(const char *path, struct stat *st)
{
	return lstat(path, st) < 0 ? -errno : 0;
}

int rszshm__sysq_ftruncate(int fd, uint64_t len)
{
	while (ftruncate(fd, (off_t)len) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int rszshm__sysq_map(int fd, size_t len, void **out)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	*out = m;
	return 0;
}

void rszshm__sysq_unmap(void *addr, size_t len)
{
	munmap(addr, len);
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

uint64_t rszshm__sysq_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int rszshm__sys_same_fd(int fd, int other)
{
	struct stat a, b;

	FAULT();
	if (fstat(fd, &a) < 0 || fstat(other, &b) < 0)
		return -errno;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static unsigned long futex_waits;	/* FUTEX_WAIT calls made (for tests) */

/*
 * The futex calls are not fault-injected: the wake is on every writer's
 * path when someone waits, and a failed wake or wait only ends a wait early
 * or at its timeout.  Shared (not PRIVATE) futexes: the word is in a file
 * mapping that other processes wait on.
 */
int rszshm__sys_futex_wait(const uint32_t *word, uint32_t val, const struct timespec *rel)
{
	__atomic_fetch_add(&futex_waits, 1, __ATOMIC_RELAXED);
	if (syscall(SYS_futex, word, FUTEX_WAIT, val, rel, NULL, 0) == 0)
		return 0;
	return -errno;
}

unsigned long rszshm__sys_futex_waits(void)
{
	return __atomic_load_n(&futex_waits, __ATOMIC_RELAXED);
}

static unsigned long futex_wakes;	/* FUTEX_WAKE calls made (for tests) */

void rszshm__sys_futex_wake(void *word)
{
	__atomic_fetch_add(&futex_wakes, 1, __ATOMIC_RELAXED);
	syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

unsigned long rszshm__sys_futex_wakes(void)
{
	return __atomic_load_n(&futex_wakes, __ATOMIC_RELAXED);
}

/*
 * membarrier(2), the heavy half of wait.c's asymmetric fence: a process
 * registers once (the registration is the process's, kept across fork and
 * dropped at exec), and a GLOBAL_EXPEDITED call makes every running thread
 * of every registered process pass a full memory barrier before it
 * returns.  Not fault-injected, for the reason the futex calls are not.
 */
#ifndef MEMBARRIER_CMD_QUERY
#define MEMBARRIER_CMD_QUERY 0
#endif
#ifndef MEMBARRIER_CMD_GLOBAL_EXPEDITED
#define MEMBARRIER_CMD_GLOBAL_EXPEDITED (1 << 1)
#endif
#ifndef MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
#define MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED (1 << 2)
#endif

static long membarrier(int cmd)
{
#ifdef SYS_membarrier
	return syscall(SYS_membarrier, cmd, 0, 0);
#else
	(void)cmd;
	errno = ENOSYS;
	return -1;
#endif
}

int rszshm__sys_membarrier_register(void)
{
	long cmds = membarrier(MEMBARRIER_CMD_QUERY);

	if (cmds < 0)
		return -errno;
	if (!(cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
	    !(cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
		return -ENOSYS;
	return membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) < 0 ? -errno : 0;
}

static unsigned long membarriers;	/* GLOBAL_EXPEDITED calls made (for tests) */

int rszshm__sys_membarrier(void)
{
	__atomic_fetch_add(&membarriers, 1, __ATOMIC_RELAXED);
	return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) < 0 ? -errno : 0;
}

unsigned long rszshm__sys_membarriers(void)
{
	return __atomic_load_n(&membarriers, __ATOMIC_RELAXED);
}

/* Is /proc the one of this process's PID namespace?  Another one names
 * other processes and threads by the numbers of ours. */
bool rszshm__sys_proc_ours(void)
{
	char buf[32];
	ssize_t n;
	int fd;

	if ((fd = rszshm__sys_open("/proc/self/stat", O_RDONLY, 0)) < 0)
		return false;
	n = rszshm__sys_read(fd, buf, sizeof(buf) - 1);
	rszshm__sys_close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strtol(buf, NULL, 10) == (long)getpid();
}
