/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wait.c - sleeping until a record, or the record index, changes.
 *
 * The words live in the header (struct rszshm__wait in the shared area):
 *
 *   changes          +1 per change of the index (add, put, remove, and each
 *                    record a clear removes); also the stamp of the record
 *                    changed.  rszshm_rec_wait_any() sleeps on its low half.
 *   lane[16]         +1 per change of a record whose name hashes to the
 *                    lane; rszshm_rec_wait() sleeps on its name's lane.
 *   *_waiters        how many callers sleep on a word: a writer makes its
 *                    FUTEX_WAKE call only when the count is not 0.
 *
 * Writer (rec.c, or rec-repair.c after a dead writer, under the index lock,
 *   once the change is visible):
 *   store changes, lane (release); fence; load the waiter counts;
 *   FUTEX_WAKE the words that have waiters.
 * Waiter: add itself to the count (full fence); load the word; compare the
 *   record's stamp (or the counter) with what the caller saw; if equal and
 *   it has not yet done so in this call, make the heavy barrier and look
 *   again; if still equal, FUTEX_WAIT while the word still holds what it
 *   loaded.
 *
 * The fence is asymmetric (membarrier(2), as userspace RCU does it): a
 * writer's process registers for global expedited barriers once, and its
 * writers then need only a compiler barrier between the bump and the load
 * of the counts; the waiter, before its first sleep, makes every running
 * thread of every registered process pass a full barrier (an IPI each, a
 * microsecond or two).  Writes are many and sleeps are few: the fence, the
 * one cost of waking on the put path, moves to the side that is about to
 * sleep anyway.  A process the kernel will not register (no membarrier, or
 * a filter forbids it) keeps the full fence; a waiter whose barrier call
 * fails cannot know that every writer fenced, and sleeps in slices of
 * WAIT_SLICE_MS, looking again after each.
 *
 * No lost wake-up: if the writer's load of the count missed the waiter, it
 * ran before the waiter's count was visible to it, so before the waiter's
 * barrier; the barrier (or the writer's own fence) makes the bump, earlier
 * in the writer's order, visible to the waiter's load after the barrier,
 * and the waiter sees the change itself; if the bump came after the
 * waiter's load, the kernel's compare in FUTEX_WAIT refuses to sleep, or
 * the writer's FUTEX_WAKE finds it asleep.
 *
 * Robustness: a waiter killed asleep leaves its count one too high for
 * good: writers of its lane then make a FUTEX_WAKE call nobody needed, and
 * that is all.  A writer killed between its change and its wake-up dies
 * holding the index lock; the next writer gets it back as EOWNERDEAD and
 * rszshm__wait_all() bumps every word and wakes every waiter.  The words
 * are untrusted: a co-writer that scribbles on them makes waiters wake
 * early (they compare stamps, and go back to sleep) or sleep to their
 * timeout, never longer, and nothing here follows a value read from them.
 *
 * A read-only handle cannot write its count in its own mapping: it maps the
 * header's first page again, writable, through the region's file (when the
 * caller may open it O_RDWR) for the length of the wait.  Without that
 * right it sleeps in slices of WAIT_SLICE_MS and looks again after each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

#define WAIT_SLICE_MS 10	/* a waiter that cannot announce itself */

bool rszshm__wait_off;
int rszshm__wait_light;

#define LD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)

static struct rszshm__wait *words(const struct rszshm *r)
{
	return &rszshm__shared(r->hdr)->wait;
}

/* The futex word of rszshm_rec_wait_any(): the half of changes that moves. */
static uint32_t *low_half(uint64_t *c)
{
	return (uint32_t *)(void *)c + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}

/* ------------------------------------------------------ writers' half */

/* Does this process's writer skip the full fence?  Registered on first
 * need; every thread of the process may then skip it. */
static bool light_writer(void)
{
	int s = __atomic_load_n(&rszshm__wait_light, __ATOMIC_ACQUIRE);

	if (__builtin_expect(s == 0, 0)) {
		s = rszshm__sys_membarrier_register() == 0 ? 1 : -1;
		__atomic_store_n(&rszshm__wait_light, s, __ATOMIC_RELEASE);
	}
	return s > 0;
}

uint64_t rszshm__wait_next(const struct rszshm *r)
{
	return LD(words(r)->changes) + 1;
}

void rszshm__wait_changed(struct rszshm *r, uint64_t h)
{
	struct rszshm__wait *w = words(r);
	unsigned l = (unsigned)(h % RSZSHM__WAIT_LANES);

	if (__builtin_expect(rszshm__wait_off, 0))
		return;
	__atomic_store_n(&w->changes, LD(w->changes) + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&w->lane[l], LD(w->lane[l]) + 1, __ATOMIC_RELEASE);
	if (light_writer())
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__builtin_expect(rszshm__rec_hook != NULL, 0))
		rszshm__rec_hook(12);
	if (LD(w->lane_waiters[l]))
		rszshm__sys_futex_wake(&w->lane[l]);
	if (LD(w->any_waiters))
		rszshm__sys_futex_wake(low_half(&w->changes));
}

void rszshm__wait_all(struct rszshm *r)
{
	struct rszshm__wait *w = words(r);

	__atomic_store_n(&w->changes, LD(w->changes) + 1, __ATOMIC_RELEASE);
	for (unsigned l = 0; l < RSZSHM__WAIT_LANES; l++)
		__atomic_store_n(&w->lane[l], LD(w->lane[l]) + 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (unsigned l = 0; l < RSZSHM__WAIT_LANES; l++)
		rszshm__sys_futex_wake(&w->lane[l]);
	rszshm__sys_futex_wake(low_half(&w->changes));
}

/* ------------------------------------------------------ waiters' half */

/* A waiter's announcement: its count, in a writable view of the header. */
struct ann {
	uint32_t *count;	/* NULL: cannot announce (sleep in slices) */
	void *page;		/* a writable mapping of the header's page, or NULL */
	size_t len;
	bool barrier_due;	/* the heavy barrier is still to be made */
	bool slices;		/* sleep in slices: not announced, or no barrier */
};

/* Add @d to the announced count.  The page of a read-only handle's own
 * mapping lies outside its handle's frame: guard it here (a fault leaves
 * the page inaccessible until withdraw() unmaps it). */
static void count_add(struct ann *a, int d)
{
	struct rszshm__guard g;

	if (!a->count)
		return;
	if (a->page)
		rszshm__guard_enter_range(&g, a->page, a->len, -1, PROT_READ | PROT_WRITE);
	__atomic_fetch_add(a->count, (uint32_t)d, __ATOMIC_SEQ_CST);
	if (a->page && rszshm__guard_leave(&g))
		a->count = NULL;
}

static void announce(struct rszshm *r, uint32_t *count, struct ann *a)
{
	void *m;
	int fd, rc;

	a->count = NULL;
	a->page = NULL;
	a->len = rszshm__page_size();
	if (!(r->flags & RSZSHM_RDONLY)) {
		a->count = count;
	} else if (r->fname[0] &&
		   (fd = rszshm__sys_open(r->fname, O_RDWR | O_NOFOLLOW | O_NONBLOCK, 0)) >= 0) {
		/* Same file as the handle's (not one made since under its name)? */
		rc = rszshm__sys_same_fd(fd, r->fd);
		if (rc == 1 && rszshm__sys_mmap(NULL, a->len, PROT_READ | PROT_WRITE, MAP_SHARED,
						fd, &m) == 0) {
			a->page = m;
			a->count = (uint32_t *)(void *)((char *)m +
							((char *)count - (char *)r->hdr));
		}
		rszshm__sys_close(fd);
	}
	count_add(a, 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	a->barrier_due = a->count != NULL;
	a->slices = a->count == NULL;
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Before the first sleep of a call: the heavy half of the fence (see the
 * top).  true when it was made now: the caller looks at the word again.
 * None for a call past its @deadline (a poll, timeout 0): it will not sleep. */
static bool barrier_first(struct ann *a, int64_t deadline)
{
	if (!a->barrier_due || (deadline >= 0 && now_ns() >= deadline))
		return false;
	a->barrier_due = false;
	if (rszshm__sys_membarrier() < 0)
		a->slices = true;
	return true;
}

static void withdraw(struct ann *a)
{
	count_add(a, -1);
	if (a->page)
		rszshm__sys_munmap(a->page, a->len);
}

/*
 * Sleep on @word while it holds @val, until @deadline (ns, CLOCK_MONOTONIC;
 * -1: none); @slice: at most WAIT_SLICE_MS.  0 (look again), -ETIMEDOUT
 * past the deadline, -EINTR.
 */
static int sleep_on(const uint32_t *word, uint32_t val, int64_t deadline, bool slice)
{
	struct timespec ts, *rel = NULL;
	int64_t left = -1;
	int rc;

	if (deadline >= 0) {
		left = deadline - now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
	}
	if (slice && (left < 0 || left > WAIT_SLICE_MS * 1000000LL))
		left = WAIT_SLICE_MS * 1000000LL;
	if (left >= 0) {
		ts.tv_sec = (time_t)(left / 1000000000);
		ts.tv_nsec = (long)(left % 1000000000);
		rel = &ts;
	}
	/* A word read from a page patched over (guard.c) lies in private
	 * memory that no writer wakes: the call fails instead of sleeping. */
	if (rszshm__guard_hit())
		return -ENODATA;
	rc = rszshm__sys_futex_wait(word, val, rel);
	if (rc == -EFAULT)
		return -ENODATA;	/* the file was cut under the word */
	return rc == -EINTR ? rc : 0;
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ns() + (int64_t)timeout_ms * 1000000;
}

static int usable(struct rszshm *r)
{
	int rc;

	if ((rc = rszshm__map_usable(r, false)) < 0)
		return rc;
	return (r->flags & RSZSHM_HEAP) ? 0 : -EINVAL;
}

static int rec_wait(struct rszshm *r, const char *name, uint64_t *gen, int timeout_ms)
{
	struct rszshm__wait *w;
	uint64_t stamp;
	size_t nlen;
	unsigned l;
	struct ann a;
	int64_t deadline;
	uint32_t v;
	int rc;

	if ((rc = usable(r)) < 0)
		return rc;
	if (!name || !name[0] || !gen)
		return -EINVAL;
	if ((nlen = strnlen(name, RSZSHM_NAME_MAX + 1)) > RSZSHM_NAME_MAX)
		return -ENAMETOOLONG;
	w = words(r);
	l = (unsigned)(rszshm__rec_hash(r, name, nlen) % RSZSHM__WAIT_LANES);
	deadline = deadline_of(timeout_ms);
	announce(r, &w->lane_waiters[l], &a);
	for (;;) {
		v = __atomic_load_n(&w->lane[l], __ATOMIC_SEQ_CST);
		if ((rc = rszshm__rec_stamp(r, name, &stamp)) < 0)
			break;
		if (stamp != *gen) {
			*gen = stamp;
			break;
		}
		if (barrier_first(&a, deadline))
			continue;
		if ((rc = sleep_on(&w->lane[l], v, deadline, a.slices)) < 0)
			break;
	}
	withdraw(&a);
	return rc;
}

static int rec_wait_any(struct rszshm *r, uint64_t *seen, int timeout_ms)
{
	struct rszshm__wait *w;
	struct ann a;
	int64_t deadline;
	uint64_t c;
	int rc;

	if ((rc = usable(r)) < 0)
		return rc;
	if (!seen)
		return -EINVAL;
	w = words(r);
	deadline = deadline_of(timeout_ms);
	announce(r, &w->any_waiters, &a);
	for (;;) {
		c = __atomic_load_n(&w->changes, __ATOMIC_SEQ_CST);
		if (c != *seen) {
			*seen = c;
			rc = 0;
			break;
		}
		if (barrier_first(&a, deadline))
			continue;
		if ((rc = sleep_on(low_half(&w->changes), (uint32_t)c, deadline, a.slices)) < 0)
			break;
	}
	withdraw(&a);
	return rc;
}

/* --------------------------------------------------------- public API */

static int do_rec_wait(struct rszshm *r, const char *name, uint64_t *gen, int timeout_ms)
{
	int rc = rec_wait(r, name, gen, timeout_ms);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rec_wait(struct rszshm *r, const char *name, uint64_t *gen, int timeout_ms)
{
	RSZSHM__GUARDED(r, int, -1, do_rec_wait(r, name, gen, timeout_ms));
}

static int do_rec_wait_any(struct rszshm *r, uint64_t *seen, int timeout_ms)
{
	int rc = rec_wait_any(r, seen, timeout_ms);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rec_wait_any(struct rszshm *r, uint64_t *seen, int timeout_ms)
{
	RSZSHM__GUARDED(r, int, -1, do_rec_wait_any(r, seen, timeout_ms));
}

static uint64_t do_rec_changes(struct rszshm *r)
{
	int rc = usable(r);

	if (rc < 0)
		return RSZSHM__FAIL(rc, 0);
	return __atomic_load_n(&words(r)->changes, __ATOMIC_ACQUIRE);
}

uint64_t rszshm_rec_changes(struct rszshm *r)
{
	RSZSHM__GUARDED(r, uint64_t, 0, do_rec_changes(r));
}
