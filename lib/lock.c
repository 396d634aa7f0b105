/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lock.c - robust, process-shared mutexes kept inside a region, and the
 * rules that keep a lock word read from a file from stopping anyone.
 *
 * A holder that dies (killed, or exits with the lock held) does not block the
 * others: the kernel marks the lock "holder died" and the next locker gets it
 * with EOWNERDEAD, which these wrappers turn into a return of 1.  That caller
 * repairs the structure the lock guards and calls rszshm__lock_consistent()
 * before unlocking; a lock unlocked without that becomes unusable
 * (ENOTRECOVERABLE), which is reported, never silently passed on.
 *
 * The kernel only does that for a holder it saw die.  A lock word that came
 * with the file - a file copied while locked, a disk-backed region reopened
 * after a power cut, a word written by a co-writer - names a holder that
 * never dies.  Three rules make sure no one waits on such a word for ever:
 *
 *  1. Attach guard (rszshm__lock_attach).  Every writable handle holds a
 *     shared open-file-description lock on the region's file for as long as
 *     its descriptor is open; the kernel drops it when the last copy of the
 *     descriptor closes, however the process ends.  A maker or attacher that
 *     can take it exclusively is the only one attached: no lock in the header
 *     can have a holder that is still attached, so each held (or damaged)
 *     header lock is rewritten as "holder died, unlocked" and its next locker
 *     repairs what it guards, as after a crash.  Several first attachers at
 *     once: one gets the exclusive lock, the others wait for its downgrade
 *     to shared (an atomic conversion); one killed mid-way releases it and
 *     the rewrite, which is idempotent, is done again by the next.  A header
 *     that needs no rewrite (every lock unheld and sound, this namespace
 *     recorded, before and after the shared lock is taken) is joined with
 *     the shared lock alone: one call, where the rule above takes two.
 *
 *  2. Bounded wait (rszshm__lock).  The fast path is one trylock (one
 *     compare-and-swap); unlock is one exchange.  Only when the lock is busy
 *     does a locker wait, in bounded steps (1 ms doubling to 1 s), and after
 *     each step it asks whether the holder recorded in the futex word (glibc
 *     keeps the holder's thread id there) can be alive.  It cannot when the
 *     word is one no holder writes (thread id 0 with waiters, an id past
 *     PID_MAX_LIMIT, an id beside the died bit), when no such thread exists
 *     (kill(tid, 0) gives ESRCH: /proc may hide other users' threads),
 *     or when that thread does not map this region's file at this address
 *     (/proc/TID/maps against /proc/self/maps: a holder maps what it holds;
 *     a thread of another copy, another boot or a detached process does not;
 *     under an emulator that moves addresses, that file at any address:
 *     addresses_translated()).
 *     Then the word is swapped, from exactly the value read, to "holder died"
 *     and the waiters are woken: the next locker gets EOWNERDEAD and repairs.
 *     Where /proc cannot tell (another user's process, a /proc of another PID
 *     namespace) the holder is presumed alive and the wait goes on.  This
 *     covers every lock of the region, the heap's arena locks included, not
 *     only the header's.  What it cannot catch: a word naming a live thread
 *     that maps the region but does not hold the lock (a co-writer's doing,
 *     no worse than a co-writer holding the lock), waited on while that
 *     thread lives; a word naming the caller's own thread, which glibc
 *     answers with EDEADLK.  rszshm__trylock() never checks: EBUSY.
 *
 *  3. Type fields.  A mutex whose kind is not what rszshm__lock_init() wrote
 *     (it would send glibc down a priority-inheritance or non-robust path) is
 *     refused with EBADMSG before glibc reads it; rszshm__lock_validate()
 *     gives the check the same rules and those of rule 2 on the word.
 *
 *  4. Lock bound.  Rule 2 cannot tell a holder that holds from a live
 *     thread a co-writer named in the word through the file.  So no wait
 *     lasts longer than the call's lock bound (the innermost guard frame's,
 *     from its handle: struct rszshm_opts.lock_timeout_ms, 30 s by default,
 *     or none): lock_slow() then gives -ETIMEDOUT, and the caller has
 *     changed nothing yet.  The same bound covers the waits on locks the
 *     kernel keeps (the maker's flock, the attach guard's shared OFD lock:
 *     rszshm__lock_bounded()), which another process can also hold for ever.
 *
 * Why no epoch (boot id, dev and inode) in the header instead of rule 1:
 * "no one has the file attached" is known from the kernel, not read from the
 * file, so a copy, a reboot, a reused inode number and a forged epoch are all
 * the same case, and no epoch has to be trusted.
 *
 * PID namespaces: the futex word holds a thread id of the holder's PID
 * namespace, and two namespaces can hand out the same id, which the robust
 * futex protocol cannot tell apart.  Exclusion across namespaces cannot be
 * made correct with these mutexes, so it is refused: the attach guard records
 * the namespace of the attached writers (struct rszshm__shared.pid_ns) and a
 * writer from another namespace gets EXDEV while any writer is attached.
 *
 * This file reads glibc's struct __pthread_mutex_s (__lock, __owner, __kind):
 * Linux and glibc only, as the rest of the library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef __GLIBC__
#error "lock.c reads glibc's pthread_mutex_t"
#endif

#define TID_LIMIT (4u * 1024 * 1024)		/* PID_MAX_LIMIT on 64-bit Linux */
#define OWNER_NOTRECOVERABLE (INT_MAX - 1)	/* glibc's __owner values */
#define OWNER_INCONSISTENT INT_MAX
#define WAIT_FIRST_NS 1000000L			/* 1 ms */
#define READER_NAP_NS 100000L			/* 100 us: a lock-free reader outwaits a writer */
#define WAIT_MAX_NS 1000000000L			/* 1 s */

static unsigned *word(const pthread_mutex_t *m)
{
	return (unsigned *)(uintptr_t)&m->__data.__lock;
}

static int init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc;

	if ((rc = pthread_mutexattr_init(&a)) != 0)
		return -rc;
	if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
	    (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
	    (rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) == 0)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

/*
 * The __kind init() writes: robust (16) | error-checking (2) | process-shared
 * (128), glibc's ABI.  A constant, so that checking it costs one load and
 * one compare; rszshm__lock_init() refuses to make a lock of any other kind.
 */
#define KIND (16 | PTHREAD_MUTEX_ERRORCHECK | 128)

static bool kind_ok(const pthread_mutex_t *m)
{
	return __builtin_expect(__atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) == KIND, 1);
}

int rszshm__lock_init(pthread_mutex_t *m)
{
	int rc = init(m);

	if (rc == 0 && !kind_ok(m))
		rc = -ENOTSUP;	/* a glibc whose mutex kinds this file does not know */
	return rc;
}

static int took(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == EOWNERDEAD)
		return 1;
	return -rc;
}

/* --------------------------------------------------- is the holder alive? */

struct mapid {
	unsigned major, minor;
	uint64_t ino, base;		/* base: the mapping's start less its offset */
};

/* Does the /proc maps line @s map @addr (or, @file not NULL, any part of
 * that file)?  Fills @id. */
static bool line_maps(const char *s, uintptr_t addr, const struct mapid *file, struct mapid *id)
{
	unsigned long long start, end, off, ino;
	unsigned major, minor;
	char perms[8];

	if (sscanf(s, "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &off, &major, &minor,
		   &ino) != 7)
		return false;
	if (file ? major != file->major || minor != file->minor || ino != file->ino
		 : addr < start || addr >= end)
		return false;
	*id = (struct mapid){ .major = major, .minor = minor, .ino = ino, .base = start - off };
	return true;
}

/* Find the mapping of @addr (or of @file) in the maps file @path: 1 found,
 * 0 not there, or a negative errno (the file could not be read). */
static int maps_find(const char *path, uintptr_t addr, const struct mapid *file, struct mapid *id)
{
	char buf[4096];
	size_t have = 0;
	bool skip = false;
	int fd, rc = 0;

	if ((fd = rszshm__sys_open(path, O_RDONLY, 0)) < 0)
		return fd;
	for (;;) {
		ssize_t n = rszshm__sys_read(fd, buf + have, sizeof(buf) - 1 - have);
		char *p = buf, *nl;

		if (n < 0) {
			rc = (int)n;
			break;
		}
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = memchr(p, '\n', have - (size_t)(p - buf)))) {
			*nl = '\0';
			if (!skip && line_maps(p, addr, file, id)) {
				rc = 1;
				goto out;
			}
			skip = false;
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		buf[have] = '\0';
		if (n == 0) {
			if (have && !skip && line_maps(buf, addr, file, id))
				rc = 1;
			break;
		}
		if (have == sizeof(buf) - 1) {
			/* A line longer than the buffer (a long path): its
			 * first fields are all we read. */
			if (!skip && line_maps(buf, addr, file, id)) {
				rc = 1;
				break;
			}
			skip = true;
			have = 0;
		}
	}
out:
	rszshm__sys_close(fd);
	return rc;
}

/*
 * Does this process see its own addresses in /proc as its maps file says?
 * On a kernel, always: /proc/PID/task/TID/maps and /proc/self/maps are one
 * view.  Under an emulator that moves the program's address space (qemu-user
 * running a 32-bit program on a 64-bit kernel puts it at a random host
 * offset), /proc/self/maps is the emulator's picture, in the program's
 * addresses, while the maps of a thread read by number are the kernel's, in
 * host addresses: another process's mapping can then be found only by its
 * file.  Decided once, from the mapping @mine of @m.
 */
static bool addresses_translated(const pthread_mutex_t *m, const struct mapid *mine)
{
	static int known;	/* 0 not yet, 1 same view, 2 translated */
	int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
	struct mapid raw;
	char path[64];
	int rc;

	if (k)
		return k == 2;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/maps", (int)getpid(), (int)gettid());
	rc = maps_find(path, (uintptr_t)m, NULL, &raw);
	if (rc < 0)
		return false;	/* cannot tell now: the kernel's view, and ask again */
	k = rc == 1 && raw.major == mine->major && raw.minor == mine->minor &&
			    raw.ino == mine->ino && raw.base == mine->base ? 1 : 2;
	__atomic_store_n(&known, k, __ATOMIC_RELAXED);
	return k == 2;
}

/*
 * Can thread @tid hold @m?  false only when it certainly cannot: it does
 * not exist, or it does not map the file this process maps at @m (at the
 * same address; under an emulator that moves addresses, anywhere).
 */
static bool holder_may_live(unsigned tid, const pthread_mutex_t *m)
{
	struct mapid mine, theirs;
	char path[64];
	bool moved;
	int rc;

	if (!rszshm__sys_proc_ours())
		return true;
	if (maps_find("/proc/self/maps", (uintptr_t)m, NULL, &mine) != 1)
		return true;
	moved = addresses_translated(m, &mine);
	snprintf(path, sizeof(path), "/proc/%u/task/%u/maps", tid, tid);
	rc = maps_find(path, (uintptr_t)m, moved ? &mine : NULL, &theirs);
	if (rc == -ENOENT || rc == -ESRCH)	/* no such thread, or hidden (hidepid) */
		return !rszshm__sys_thread_gone((pid_t)tid);
	if (rc < 0)
		return true;	/* EACCES and the like: cannot tell */
	return rc == 1 && theirs.major == mine.major && theirs.minor == mine.minor &&
	       theirs.ino == mine.ino && (moved || theirs.base == mine.base);
}

/* A word no holder writes: glibc stores TID or TID|WAITERS, the kernel
 * OWNER_DIED or OWNER_DIED|WAITERS. */
static const char *word_impossible(unsigned v)
{
	unsigned tid = v & FUTEX_TID_MASK;

	if (tid > TID_LIMIT)
		return "lock word holds a thread id past the kernel's limit";
	if (tid && (v & FUTEX_OWNER_DIED))
		return "lock word has a holder and the holder-died bit";
	if (!tid && v == FUTEX_WAITERS)
		return "lock word has waiters but no holder";
	return NULL;
}

/*
 * The lock stayed busy for a bounded wait: if its holder cannot be alive,
 * turn the word into "holder died" so that the next locker takes it with
 * EOWNERDEAD.  1 if the word changed (retry at once), 0 to wait again.
 */
static int reclaim(pthread_mutex_t *m)
{
	unsigned *w = word(m);
	unsigned v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
	unsigned tid = v & FUTEX_TID_MASK;

	if (v == 0 || (v & FUTEX_OWNER_DIED))
		return 1;	/* free, or takeable: glibc takes it next */
	if (!word_impossible(v) && tid && holder_may_live(tid, m))
		return 0;
	if (__atomic_compare_exchange_n(w, &v, FUTEX_OWNER_DIED | (v & FUTEX_WAITERS), false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		rszshm__sys_futex_wake(w);
	return 1;
}

static uint64_t waits;	/* bounded waits that timed out, in this process */

uint64_t rszshm__lock_waits(void)
{
	return __atomic_load_n(&waits, __ATOMIC_RELAXED);
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int64_t rszshm__lock_bound_ns(void)
{
	const struct rszshm__guard *g = rszshm__guard_top;
	unsigned ms = g ? rszshm__guard_lock_ms(g) : 0;

	if (ms == UINT_MAX)
		return -1;
	return (int64_t)(ms ? ms : RSZSHM_LOCK_TIMEOUT_DFLT) * 1000000;
}

/*
 * Busy: wait in bounded steps, checking the holder after each (rule 2),
 * for at most the call's lock bound (rule 4): -ETIMEDOUT then.
 */
static int lock_slow(pthread_mutex_t *m)
{
	int64_t bound = rszshm__lock_bound_ns(), start = now_ns(), left, step;
	long wait = WAIT_FIRST_NS;
	struct timespec t;
	int rc;

	for (;;) {
		step = wait;
		if (bound >= 0) {
			if ((left = start + bound - now_ns()) <= 0)
				return -ETIMEDOUT;
			if (step > left)
				step = left;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_nsec += step;
		t.tv_sec += t.tv_nsec / 1000000000L;
		t.tv_nsec %= 1000000000L;
		rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &t);
		if (rc != ETIMEDOUT)
			return took(rc);
		__atomic_fetch_add(&waits, 1, __ATOMIC_RELAXED);
		if (!kind_ok(m))
			return -EBADMSG;
		if (reclaim(m))
			wait = WAIT_FIRST_NS;
		else if (wait < WAIT_MAX_NS)
			wait *= 2;
	}
}

int rszshm__lock(pthread_mutex_t *m)
{
	int rc;

	if (!kind_ok(m))
		return -EBADMSG;
	rc = pthread_mutex_trylock(m);
	if (__builtin_expect(rc != EBUSY, 1))
		return took(rc);
	return lock_slow(m);
}

int rszshm__trylock(pthread_mutex_t *m)
{
	if (!kind_ok(m))
		return -EBADMSG;
	return took(pthread_mutex_trylock(m));
}

bool rszshm__lock_held(const pthread_mutex_t *m)
{
	unsigned v = __atomic_load_n(word((pthread_mutex_t *)(uintptr_t)m), __ATOMIC_ACQUIRE);

	return (v & FUTEX_TID_MASK) && !(v & FUTEX_OWNER_DIED);
}

int rszshm__lock_outwait(const pthread_mutex_t *m, int64_t *since)
{
	int64_t bound = rszshm__lock_bound_ns(), now = now_ns();
	struct timespec t = { 0, READER_NAP_NS };
	unsigned v = __atomic_load_n(word((pthread_mutex_t *)(uintptr_t)m), __ATOMIC_ACQUIRE);

	if (!rszshm__lock_held(m))
		return 1;
	if (!*since) {
		/* Rule 2, read only, once (it reads /proc): a holder that
		 * cannot be alive will never finish. */
		if (word_impossible(v) || !holder_may_live(v & FUTEX_TID_MASK, m))
			return -EAGAIN;
		*since = now;
	} else if (bound >= 0 && now - *since >= bound)
		return -EAGAIN;
	nanosleep(&t, NULL);
	return 0;
}

int rszshm__lock_consistent(pthread_mutex_t *m)
{
	if (!kind_ok(m))
		return -EBADMSG;
	return -pthread_mutex_consistent(m);
}

int rszshm__unlock(pthread_mutex_t *m)
{
	if (!kind_ok(m))
		return -EBADMSG;
	return -pthread_mutex_unlock(m);
}

int rszshm__lock_validate(const pthread_mutex_t *m, const char **why)
{
	unsigned v = __atomic_load_n(word(m), __ATOMIC_RELAXED);
	int owner = __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
	const char *ignore, *bad;

	if (!why)
		why = &ignore;
	if (!kind_ok(m)) {
		*why = "lock type fields are not those of a robust shared mutex";
		return -EBADMSG;
	}
	if ((bad = word_impossible(v))) {
		*why = bad;
		return -EBADMSG;
	}
	if (owner < 0 || (owner > (int)TID_LIMIT && owner != OWNER_INCONSISTENT &&
			  owner != OWNER_NOTRECOVERABLE)) {
		*why = "lock owner field is out of range";
		return -EBADMSG;
	}
	return 0;
}

/* ----------------------------------------------------------- attach guard */

void (*rszshm__lock_hook)(int point);

/* Rewrite a header lock no attached process can hold: fresh type fields,
 * and "holder died" if it was held (or its word was anything but 0). */
static int reset(pthread_mutex_t *m)
{
	unsigned v = __atomic_load_n(word(m), __ATOMIC_RELAXED);
	int owner = m->__data.__owner;
	pthread_mutex_t fresh;
	int rc;

	if (v == 0 && rszshm__lock_validate(m, NULL) == 0)
		return 0;	/* unheld and sound: leave it untouched */
	if ((rc = init(&fresh)) < 0)
		return rc;
	if (v != 0)
		fresh.__data.__lock = FUTEX_OWNER_DIED;
	if (owner == OWNER_NOTRECOVERABLE)
		fresh.__data.__owner = OWNER_NOTRECOVERABLE;
	memcpy(m, &fresh, sizeof(fresh));
	return 0;
}

/*
 * This process's PID namespace, remembered: a process never changes its own
 * (setns and unshare change its children's), and looking it up in /proc is
 * the dearest call of an attach.  The memory is not trusted across a fork or
 * clone: a forked child drops it (pthread_atfork), and a child made without
 * the fork handlers (a raw clone(2)) has another pid than the one that
 * filled it, which is checked on every use.  A pid 1, the one pid a child
 * of another namespace can share with its parent, never uses it.
 */
static struct {
	pid_t pid;		/* who filled it; 0: empty */
	uint64_t ns;
} pidns_cache;
static pthread_once_t pidns_once = PTHREAD_ONCE_INIT;

static void pidns_forget(void)
{
	__atomic_store_n(&pidns_cache.pid, 0, __ATOMIC_RELAXED);
}

static void pidns_init(void)
{
	pthread_atfork(NULL, NULL, pidns_forget);
}

static uint64_t own_pidns(void)
{
	pid_t me = getpid();
	uint64_t ns = 0;

	pthread_once(&pidns_once, pidns_init);
	if (me != 1 && __atomic_load_n(&pidns_cache.pid, __ATOMIC_ACQUIRE) == me)
		return __atomic_load_n(&pidns_cache.ns, __ATOMIC_RELAXED);
	/* No /proc: namespace 0, the same for every process that has none. */
	if (rszshm__sys_pidns(&ns) < 0)
		return 0;
	/* Threads racing here store the same value. */
	__atomic_store_n(&pidns_cache.ns, ns, __ATOMIC_RELAXED);
	__atomic_store_n(&pidns_cache.pid, me, __ATOMIC_RELEASE);
	return ns;
}

/* Would a first attacher leave the header as it is?  Its locks unheld and
 * sound (reset() leaves them untouched), and this namespace recorded. */
static bool settled(const struct rszshm__shared *s, uint64_t ns)
{
	const pthread_mutex_t *m[] = { &s->grow_lock, &s->user_lock, &s->heap_lock, &s->rec_lock };
	size_t i;

	if (__atomic_load_n(&s->pid_ns, __ATOMIC_ACQUIRE) != ns)
		return false;
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (__atomic_load_n(word(m[i]), __ATOMIC_ACQUIRE) != 0 ||
		    rszshm__lock_validate(m[i], NULL) < 0)
			return false;
	return true;
}

/*
 * The guard in one call, for a header that needs nothing: if it is settled
 * (above), take the shared lock and look again.  Settled while the shared
 * lock is held, nothing can be owed to it: either others are attached (and
 * a first attacher would not rewrite), or this is the only one and a
 * rewrite would change nothing.  1 when attached so, 0 to go the careful
 * way (the lock not held), or a negative errno.  Looking before the lock
 * keeps a file that needs the rewrite (a copy with held locks) off this
 * path: two first attachers holding the shared lock at once would each
 * take the other for an attached process and leave the rewrite undone.
 */
static int attach_settled(int fd, const struct rszshm__shared *s, uint64_t ns)
{
	int rc;

	if (!settled(s, ns))
		return 0;
	if (__builtin_expect(rszshm__lock_hook != NULL, 0))
		rszshm__lock_hook(2);
	rc = rszshm__sys_ofd_lock(fd, F_RDLCK, false);
	if (rc == -EAGAIN)
		return 0;	/* a first attacher is rewriting: wait for it */
	if (rc < 0)
		return rc;
	if (settled(s, ns))
		return 1;
	/* Changed meanwhile: let go, and decide the careful way. */
	return (rc = rszshm__sys_ofd_lock(fd, F_UNLCK, false)) < 0 ? rc : 0;
}

int rszshm__lock_bounded(int (*try)(int fd), int fd)
{
	int64_t bound = rszshm__lock_bound_ns(), start = now_ns();
	unsigned us = 100;
	int rc;

	while ((rc = try(fd)) == -EAGAIN) {
		if (bound >= 0 && now_ns() - start >= bound)
			return -ETIMEDOUT;
		rszshm__sysq_pause_us(us);
		if (us < 100000)
			us *= 2;
	}
	return rc;
}

static int ofd_try_shared(int fd)
{
	return rszshm__sys_ofd_lock(fd, F_RDLCK, false);
}

/* Wait for a first attacher's rewrite (its exclusive lock), for at most
 * the call's lock bound: a co-writer holding it for ever must not hold
 * attachers with it. */
static int ofd_wait(int fd)
{
	return rszshm__lock_bounded(ofd_try_shared, fd);
}

int rszshm__lock_attach(int fd, struct rszshm_hdr *h)
{
	struct rszshm__shared *s = rszshm__shared(h);
	uint64_t ns = own_pidns();
	int rc;

	if ((rc = attach_settled(fd, s, ns)) != 0)
		return rc < 0 ? rc : 0;
	rc = rszshm__sys_ofd_lock(fd, F_WRLCK, false);
	if (rc == -EAGAIN) {
		/* Others are attached, or one is making the header fit:
		 * wait for it, then join them if they share our namespace. */
		if ((rc = ofd_wait(fd)) < 0)
			return rc;
		if (__atomic_load_n(&s->pid_ns, __ATOMIC_ACQUIRE) == ns)
			return 0;
		/* They may all have gone meanwhile.  A failed conversion
		 * keeps the shared lock; a record lock converts atomically. */
		rc = rszshm__sys_ofd_lock(fd, F_WRLCK, false);
		if (rc == -EAGAIN)
			return -EXDEV;
	}
	if (rc < 0)
		return rc;
	if ((rc = reset(&s->grow_lock)) < 0)
		return rc;
	if (__builtin_expect(rszshm__lock_hook != NULL, 0))
		rszshm__lock_hook(1);
	if ((rc = reset(&s->user_lock)) < 0 || (rc = reset(&s->heap_lock)) < 0 ||
	    (rc = reset(&s->rec_lock)) < 0)
		return rc;
	__atomic_store_n(&s->pid_ns, ns, __ATOMIC_RELEASE);
	/* Exclusive to shared is one atomic conversion: no one slips in. */
	return rszshm__sys_ofd_lock(fd, F_RDLCK, false);
}
