/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guard.c - the library's own reads and writes of a mapping never raise
 * SIGBUS, whatever another process does to the file.
 *
 * A region's file can be truncated by anyone who may write it, at any
 * moment: a page of the mapping past the new end then faults (SIGBUS) at
 * its next touch.  Checking the file's size first cannot help (the file can
 * shrink between the check and the touch), so the touches themselves are
 * made safe.
 *
 * Every public call that reads or writes through a mapping runs inside a
 * guard: a frame on a per-thread stack naming the range it touches (a
 * handle's span, or a view), its file and its protection.  A SIGBUS handler,
 * installed when the first region is mapped in this process, looks at the
 * fault: when it is a fault of this thread (si_code > 0) at an address
 * inside a range of this thread's frames, the handler maps private
 * anonymous memory over the faulting page and the rest of the range, all of
 * it past the file's end now (reads then see zeros, writes go nowhere), and
 * returns, so the faulting instruction is retried and the call
 * goes on.  Zeros are bytes like any other in an untrusted region: every
 * walk is bounded and every address checked, so the call ends with a result
 * or an error.  When the frame is left, the pages patched are mapped from
 * the file again (MAP_SHARED | MAP_FIXED at their offsets, as the mapping
 * was), and the call fails with ENODATA whatever it found: nothing read
 * through a patched page is handed out.  The process keeps running, with
 * its mapping as it was; its own later accesses past the file's new end
 * fault as they would have (that is the caller's SIGBUS, documented).
 *
 * Why not a recovery point (sigsetjmp/siglongjmp): a jump out of the middle
 * of a call would leave the process's own locks held (the thread-slot
 * registry, the plan's) and half-done work undone; continuing over a zero
 * page needs no unwinding, and costs nothing until a fault.  The cost of a
 * frame: a few stores to thread-local memory per call.
 *
 * Other faults are not ours: an access of the application (no frame, or an
 * address outside every frame), or a SIGBUS sent by kill(2), goes to the
 * action that was installed before ours (called as it asked, SA_SIGINFO or
 * not), or, if that was the default, the default action runs: the handler
 * restores it and returns, and the faulting instruction faults again.
 * A program that installs its own SIGBUS handler after attaching a region
 * must call the one it replaced for faults it does not know (as any
 * chaining handler does); attaching a region again re-installs ours if it
 * was replaced.
 *
 * Futex words: a wait on a patched page would sleep on private memory no
 * writer wakes, so waiters ask rszshm__guard_hit() before they sleep; and a
 * futex call on a truncated page fails with EFAULT (the kernel raises no
 * signal for its own reads), which wait.c turns into ENODATA.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

_Thread_local struct rszshm__guard *rszshm__guard_top RSZSHM__GUARD_TLS;

static struct sigaction before;		/* the action ours replaced */
static size_t pagesz;			/* set before the handler is installed */
static pthread_mutex_t arm_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long patches;		/* pages patched, in this process (tests) */

unsigned long rszshm__guard_patches(void)
{
	return __atomic_load_n(&patches, __ATOMIC_RELAXED);
}

/* The range a frame guards, its protection: from its handle, read now (a
 * frame may be entered before its handle is filled in). */
static bool frame_range(const struct rszshm__guard *g, uintptr_t *lo, uintptr_t *hi, int *prot)
{
	if (g->lo) {
		*lo = g->lo;
		*hi = g->hi;
		*prot = g->prot;
		return true;
	}
	if (!g->r || !(g->r->flags & RSZSHM__F_ATTACHED) || !g->r->hdr)
		return false;
	*lo = (uintptr_t)g->r->hdr;
	*hi = *lo + g->r->max;
	*prot = (g->r->flags & RSZSHM_RDONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
	return true;
}

/* Where the patch of a fault at @a in frame @g's range [@lo, @hi) starts:
 * at the file's end as fstat(2) now has it (every page from there on lies
 * past it), or at the page of @a if that is lower.  The file's size, not
 * only the address the kernel reports, so that an inexact si_addr (qemu-user
 * reports a page off for a 32-bit program) still patches the page that
 * faulted.  After a few patches in one frame (a file cut again and again),
 * the whole range: the call cannot meet another fault, and fails anyway. */
static uintptr_t patch_start(const struct rszshm__guard *g, uintptr_t a, uintptr_t lo)
{
	uintptr_t page = a & ~(uintptr_t)(pagesz - 1), base, start;
	struct stat st;
	int fd;

	if (g->hits >= 4)
		return lo & ~(uintptr_t)(pagesz - 1);
	base = g->lo ? g->base : lo;
	fd = g->lo ? g->fd : g->r->fd;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 0)
		return page;
	if ((uint64_t)st.st_size >= (uint64_t)(page - base))
		return page;
	start = base + ((uintptr_t)st.st_size & ~(uintptr_t)(pagesz - 1));
	return start < lo ? lo & ~(uintptr_t)(pagesz - 1) : start;
}

/* In the handler: is @a inside one of this thread's frames?  Then patch it
 * and say so.  Only async-signal-safe calls (fstat and mmap are system
 * calls). */
static bool patch(uintptr_t a)
{
	struct rszshm__guard *g;
	uintptr_t lo, hi, start, end;
	void *m;
	int prot;

	for (g = rszshm__guard_top; g; g = g->outer) {
		if (!frame_range(g, &lo, &hi, &prot) || a < lo || a >= hi)
			continue;
		/* Past the patch of the whole range nothing of the file is
		 * left to fault: a fault then is not ours to hide. */
		if (g->hits > 4)
			return false;
		/* From the file's end to the end of the range: all of it lies
		 * past the file's end now, so one patch stands for every fault
		 * the call would meet further on (a walk of a cut file costs
		 * one fault, not one per page). */
		start = patch_start(g, a, lo);
		end = (hi + pagesz - 1) & ~(uintptr_t)(pagesz - 1);
		m = mmap((void *)start, end - start, prot,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
		if (m == MAP_FAILED)
			return false;
		if (!g->hit_hi || start < g->hit_lo)
			g->hit_lo = start;
		if (end > g->hit_hi)
			g->hit_hi = end;
		g->hits++;
		__atomic_fetch_add(&patches, 1, __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;
	struct sigaction dfl;

	if (si && si->si_code > 0 && patch((uintptr_t)si->si_addr)) {
		errno = saved;
		return;
	}
	errno = saved;
	if (before.sa_flags & SA_SIGINFO) {
		if (before.sa_sigaction) {
			before.sa_sigaction(sig, si, ctx);
			return;
		}
	} else if (before.sa_handler != SIG_DFL && before.sa_handler != SIG_IGN) {
		before.sa_handler(sig);
		return;
	}
	/* The default action, as if we had never been here: a fault retried
	 * faults again; a sent signal is sent again (blocked until we return). */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGBUS, &dfl, NULL);
	if (!si || si->si_code <= 0)
		raise(SIGBUS);
}

static bool ours(const struct sigaction *a)
{
	return (a->sa_flags & SA_SIGINFO) && a->sa_sigaction == on_sigbus;
}

void rszshm__guard_arm(void)
{
	struct sigaction cur, act, old;

	if (sigaction(SIGBUS, NULL, &cur) == 0 && ours(&cur))
		return;
	pthread_mutex_lock(&arm_lock);
	if (sigaction(SIGBUS, NULL, &cur) == 0 && !ours(&cur)) {
		pagesz = rszshm__page_size();
		memset(&act, 0, sizeof(act));
		act.sa_sigaction = on_sigbus;
		act.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&act.sa_mask);
		/* The action ours replaces is kept before ours is in place, so
		 * the handler never chains to a stale one. */
		before = cur;
		if (sigaction(SIGBUS, &act, &old) == 0 && !ours(&old))
			before = old;
	}
	pthread_mutex_unlock(&arm_lock);
}

/* The library is unloaded: put back the action ours replaced, if ours is
 * still the one installed. */
__attribute__((destructor)) static void guard_fini(void)
{
	struct sigaction cur;

	if (sigaction(SIGBUS, NULL, &cur) == 0 && ours(&cur))
		sigaction(SIGBUS, &before, NULL);
}

bool rszshm__guard_mend(struct rszshm__guard *g)
{
	uintptr_t lo, hi, base;
	int prot, fd;
	void *m;

	if (!frame_range(g, &lo, &hi, &prot))
		return true;
	base = g->lo ? g->base : lo;
	fd = g->lo ? g->fd : g->r->fd;
	/* The pages between hit_lo and hit_hi that were not patched are the
	 * same file pages at the same offsets: mapping them again changes
	 * nothing.  A file shorter than the range still maps (its pages
	 * fault, as before the patch). */
	m = mmap((void *)g->hit_lo, g->hit_hi - g->hit_lo, prot, MAP_SHARED | MAP_FIXED, fd,
		 (off_t)(g->hit_lo - base));
	if (m == MAP_FAILED)
		/* Leave no private page where the file should be. */
		mmap((void *)g->hit_lo, g->hit_hi - g->hit_lo, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	g->hit_lo = g->hit_hi = 0;
	return true;
}

void rszshm__guard_fail(void)
{
	rszshm__why(-ENODATA, "the region's file was truncated under this call (by another process)");
	rszshm__fail(-ENODATA);
}
