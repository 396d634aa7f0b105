/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap/seg.c - size classes and the heap's global part: the layer the other
 * heap files build on, calling none of them.
 *
 * Owns: the size-class tables and their geometry in a 64 KiB segment; the
 * runs that tile segments 1 .. top-1 (their headers, kind and length); the
 * free-run list and its counters; the heap lock (shared->heap_lock) with its
 * busy flag; carving new segments at the top, growing the region through
 * rszshm__map_grow_to(); the check of a SLOTS run ctl->slot_runs names;
 * and the repairs below any arena: the global part rebuilt from the run
 * headers when the heap lock's holder died, and one SMALL segment's
 * counts from its bitmap.  Everything here runs under the heap lock except
 * the read-only tables and the one-segment checks.
 *
 * Crash safety (see heap.h for the whole list): a split writes the tail's
 * header before shrinking the head, top is raised only after the new run's
 * header is written, and a run leaves the free-run list before it changes.
 * The next holder of a lock whose holder died rebuilds the free-run list
 * from the run headers (rszshm__heap_runs_rebuild(), below); counters may
 * be off until then.  The run headers and bitmaps are the truth: they are
 * never rebuilt.  Damage no crash can leave (run headers that do not tile,
 * top outside the region) is not repaired: the caller gets ENOTRECOVERABLE
 * and leaves the lock unrecoverable.
 *
 * Every address read from the region (free-run links, top) passes
 * seg_addr_ok()/top_ok() (heap.h) before it is followed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "heap.h"

/* The test hook's countdown (heap.h's die_point()). */
unsigned long rszshm__heap_die_at;

void rszshm__heap_die_step(void)
{
	if (--rszshm__heap_die_at == 0)
		raise(SIGKILL);
}

void rszshm__heap_die_after(unsigned long n)
{
	rszshm__heap_die_at = n;
}

/* Size classes: 16 .. 128 by 16, then four per doubling up to 16 KiB. */
#define C4(b) (b) * 5 / 4, (b) * 6 / 4, (b) * 7 / 4, (b) * 2
const uint32_t rszshm__heap_cls_size[NCLS] = {
	16, 32, 48, 64, 80, 96, 112, 128,
	C4(128), C4(256), C4(512), C4(1024), C4(2048), C4(4096), C4(8192),
};
/* ceil(2^32 / size): (off * recip) >> 32 == off / size for off < 2^16. */
#define R1(d) (0xffffffffu / (d) + 1u)
#define R4(b) R1((b) * 5 / 4), R1((b) * 6 / 4), R1((b) * 7 / 4), R1((b) * 2)
const uint32_t rszshm__heap_cls_recip[NCLS] = {
	R1(16), R1(32), R1(48), R1(64), R1(80), R1(96), R1(112), R1(128),
	R4(128), R4(256), R4(512), R4(1024), R4(2048), R4(4096), R4(8192),
};

void rszshm__heap_geom(unsigned c, uint32_t *nblocks, uint32_t *first)
{
	uint32_t bs = rszshm__heap_cls_size[c], n = (uint32_t)((SEG - SEG_HDR) / bs), f;

	for (;;) {
		f = ((uint32_t)SEG_HDR + (n + 63u) / 64u * 8u + 63u) & ~63u;
		if (f + (uint64_t)n * bs <= SEG)
			break;
		n--;
	}
	*nblocks = n;
	*first = f;
}

/* rszshm__heap_geom() of every class, filled in when the library is loaded:
 * the exact check of a SMALL header costs two compares on the allocation
 * path. */
struct rszshm__heap_geom rszshm__heap_cls_geom[NCLS];

__attribute__((constructor)) static void geom_table(void)
{
	unsigned c;

	for (c = 0; c < NCLS; c++)
		rszshm__heap_geom(c, &rszshm__heap_cls_geom[c].nblocks, &rszshm__heap_cls_geom[c].first);
}

/* ------------------------------------------------------- the global part */

/*
 * A run header at segment @i below @top that the tiling may rely on: its
 * length, or 0 if it is damaged.
 */
uint64_t rszshm__heap_run_len(struct seg *s, uint64_t i, uint64_t top)
{
	uint64_t n = GET(s->nsegs);
	uint8_t k = GET(s->kind);

	if (RD(s->magic) != SEG_MAGIC || n == 0 || n > top - i ||
	    (k != K_FREE && k != K_SMALL && k != K_LARGE && k != K_SLOTS) ||
	    ((k == K_SMALL || k == K_SLOTS) && n != 1))
		return 0;
	return n;
}

int rszshm__heap_global_lock(struct rszshm *r, struct ctl *h)
{
	pthread_mutex_t *m = heap_lock(r);
	int rc = rszshm__lock(m);

	if (rc < 0)
		return rc;
	if (rc == 1) {
		PUT(h->gbusy, 1);
		if ((rc = rszshm__heap_runs_rebuild(r, h)) < 0) {
			/* Left inconsistent: the mutex becomes unrecoverable. */
			rszshm__unlock(m);
			return rc;
		}
		h->repairs++;
		if ((rc = rszshm__lock_consistent(m)) < 0) {
			rszshm__unlock(m);
			return rc;
		}
	}
	PUT(h->gbusy, 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	return 0;
}

void rszshm__heap_global_unlock(struct rszshm *r, struct ctl *h)
{
	PUT(h->gbusy, 0);
	rszshm__unlock(heap_lock(r));
}

/* rszshm__heap_global_lock(), and the heap's top, checked: ENOTRECOVERABLE (unlocked)
 * when it is outside the region. */
int rszshm__heap_global_lock_top(struct rszshm *r, struct ctl *h, uint64_t *top)
{
	int rc;

	if ((rc = rszshm__heap_global_lock(r, h)) < 0)
		return rc;
	*top = RD(h->top);
	if (!top_ok(r, *top)) {
		rszshm__heap_global_unlock(r, h);
		return -ENOTRECOVERABLE;
	}
	return 0;
}


/* Under the heap lock: put run @s on the free-run list. */
void rszshm__heap_run_release(struct ctl *h, struct seg *s)
{
	PUT(s->kind, K_FREE);
	s->next = h->free_runs;
	PUT(h->free_runs, (uint64_t)(uintptr_t)s);
	h->free_segs += s->nsegs;
	h->merge_due = 1;
}

/*
 * Under the heap lock: first fit of @n segments on the free-run list.
 * 1 with *out off the list (still FREE), 0 if none fits, -EAGAIN if the
 * list is damaged.
 */
static int run_fit(struct rszshm *r, struct ctl *h, uint64_t n, struct seg **out)
{
	uintptr_t base = (uintptr_t)r->hdr;
	uint64_t *link = &h->free_runs, cur, top = RD(h->top), steps = 0, off;
	struct seg *s, *rem;

	while ((cur = *link) != 0) {
		off = cur - base;
		if (!seg_addr_ok(r, cur, top) || ++steps > top)
			return -EAGAIN;
		s = (struct seg *)(uintptr_t)cur;
		if (rszshm__heap_run_len(s, off >> SEG_SHIFT, top) == 0 || s->kind != K_FREE)
			return -EAGAIN;
		if (s->nsegs < n) {
			link = &s->next;
			continue;
		}
		PUT(*link, s->next);
		if (s->nsegs > n) {
			rem = (struct seg *)(void *)((char *)s + (n << SEG_SHIFT));
			rem->magic = SEG_MAGIC;
			rem->kind = K_FREE;
			rem->nsegs = (uint32_t)(s->nsegs - n);
			rem->next = 0;
			PUT(s->nsegs, (uint32_t)n);
			rem->next = h->free_runs;
			PUT(h->free_runs, (uint64_t)(uintptr_t)rem);
		}
		h->free_segs = h->free_segs >= n ? h->free_segs - n : 0;
		*out = s;
		return 1;
	}
	return 0;
}

/*
 * Under the heap lock: a run of @n segments, FREE and on no list, from the
 * free-run list or carved at the top (growing the region).  The caller
 * fills it in and sets its kind.
 */
int rszshm__heap_run_take(struct rszshm *r, struct ctl *h, uint64_t n, struct seg **out)
{
	uint64_t top, max = span_segs(r), want;
	struct seg *s;
	int rc, pass;

	for (pass = 0; pass < 3; pass++) {
		if ((rc = run_fit(r, h, n, out)) == 1)
			return 0;
		if (rc == 0 && (!h->merge_due || h->free_segs < n))
			break;
		if ((rc = rszshm__heap_runs_rebuild(r, h)) < 0)
			return rc;
	}
	top = RD(h->top);
	if (!top_ok(r, top))
		return -ENOTRECOVERABLE;
	if (n > max || top > max - n)
		return -ENOMEM;
	/* Carving touches the pages from top on: the file must really reach
	 * them (rszshm__map_grow_to() compares with its size). */
	want = (top + n) << SEG_SHIFT;
	if (want > rszshm__map_safe_len(r) && (rc = rszshm__map_grow_to(r, want)) < 0)
		return rc;
	s = seg_at(r, top);
	s->magic = SEG_MAGIC;
	s->kind = K_FREE;
	s->nsegs = (uint32_t)n;
	s->next = 0;
	PUT(h->top, top + n);
	*out = s;
	return 0;
}

/* ------------------------------------------------------------ repair */

/* Does ctl->slot_runs name SLOTS run @s? */
static bool slots_named(struct ctl *h, struct seg *s)
{
	unsigned k;

	for (k = 0; k < NSLOTRUNS; k++)
		if (RD(h->slot_runs[k]) == (uint64_t)(uintptr_t)s)
			return true;
	return false;
}

/*
 * Under the heap lock: merge neighbouring FREE runs and relink them all, in
 * address order, on the free-run list.  The repair of the global part, and
 * the cure for a fragmented or damaged list.
 */
int rszshm__heap_runs_rebuild(struct rszshm *r, struct ctl *h)
{
	uint64_t i, n, top = RD(h->top), nfree = 0, *tail = &h->free_runs;
	struct seg *s, *open = NULL;
	unsigned k;

	if (!top_ok(r, top))
		return -ENOTRECOVERABLE;
	/* A name of no SLOTS run is forgotten (no slot was ever claimed in
	 * it: claims follow only names of SLOTS runs). */
	for (k = 0; k < NSLOTRUNS; k++)
		if (RD(h->slot_runs[k]) && !rszshm__heap_slot_run(r, h, k))
			PUT(h->slot_runs[k], 0);
	PUT(h->free_runs, 0);
	for (i = 1; i < top; i += n) {
		s = seg_at(r, i);
		if ((n = rszshm__heap_run_len(s, i, top)) == 0)
			return -ENOTRECOVERABLE;
		/* A SLOTS run nobody names was being made when its maker
		 * died: it is free. */
		if (s->kind == K_SLOTS && !slots_named(h, s))
			PUT(s->kind, K_FREE);
		if (s->kind != K_FREE) {
			open = NULL;
			continue;
		}
		if (open) {
			/* The tail's header becomes part of the head's run. */
			PUT(open->nsegs, (uint32_t)(open->nsegs + n));
			nfree += n;
			continue;
		}
		open = s;
		s->next = 0;
		PUT(*tail, (uint64_t)(uintptr_t)s);
		tail = &s->next;
		nfree += n;
	}
	h->free_segs = nfree;
	h->merge_due = 0;
	return 0;
}

/* A SMALL header whose geometry matches its class (safe to rebuild). */
bool rszshm__heap_seg_sane(struct seg *s)
{
	return s->magic == SEG_MAGIC && s->kind == K_SMALL && s->cls < NCLS &&
	       s->arena < NARENAS && s->nsegs == 1 && geom_ok(s, s->cls);
}

/* Recount a SMALL segment from its bitmap (bits past the last block cleared). */
void rszshm__heap_seg_rebuild(struct seg *s)
{
	uint64_t *bm = bitmap(s);
	uint32_t w, words = (s->nblocks + 63) / 64, nb = s->nblocks, used = 0;

	for (w = 0; w < words; w++) {
		if (nb - w * 64 < 64)
			PUT(bm[w], bm[w] & (((uint64_t)1 << (nb - w * 64)) - 1));
		used += (uint32_t)__builtin_popcountll(bm[w]);
	}
	s->cursor = 0;
	s->used = used;
}

/* -------------------------------------------------------- SLOTS runs */

/* The SLOTS run ctl->slot_runs[@k] names, checked, or NULL. */
void *rszshm__heap_slot_run(struct rszshm *r, struct ctl *h, unsigned k)
{
	uint64_t a = GET(h->slot_runs[k]);
	struct seg *s = (struct seg *)(uintptr_t)a;

	if (!a || !seg_addr_ok(r, a, GET(h->top)) || RD(s->magic) != SEG_MAGIC ||
	    RD(s->kind) != K_SLOTS || RD(s->nsegs) != 1)
		return NULL;
	return s;
}
