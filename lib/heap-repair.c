/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap-repair.c - rebuilding the heap's lists and counters from the truth.
 *
 * Owns what the next holder of a lock does when rszshm__lock() says its
 * last holder died (EOWNERDEAD), and what a writer does when a cheap check
 * finds a list or a count that disagrees with the run headers and bitmaps:
 *   - the global part: walk the run headers from segment 1 to top, merge
 *     neighbouring FREE runs, relink the free-run list, recount it;
 *   - an arena: clear the bits of its pending frees, recount each of its
 *     SMALL segments from its bitmap, relink its partial lists.
 * The run headers and bitmaps are the truth: they are never rebuilt.  Damage
 * no crash can leave (run headers that do not tile, top outside the region)
 * is not repaired: the caller gets ENOTRECOVERABLE and leaves the lock
 * unrecoverable.  A damaged SMALL segment is left off the lists for good.
 * At most the block whose allocation was under way when its holder died is
 * lost (its bit set, nobody holds it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "heap.h"

/*
 * Under the heap lock: merge neighbouring FREE runs and relink them all, in
 * address order, on the free-run list.  The repair of the global part, and
 * the cure for a fragmented or damaged list.
 */
/* Does ctl->slot_runs name SLOTS run @s? */
static bool slots_named(struct ctl *h, struct seg *s)
{
	unsigned k;

	for (k = 0; k < NSLOTRUNS; k++)
		if (RD(h->slot_runs[k]) == (uint64_t)(uintptr_t)s)
			return true;
	return false;
}

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

/*
 * Under arena @ai's lock, after its holder died: rebuild the arena from its
 * segments.  Takes the heap lock, so the runs hold still.
 */
int rszshm__heap_arena_rebuild(struct rszshm *r, struct ctl *h, unsigned ai)
{
	struct arena *a = &h->arenas[ai];
	uint64_t i, n, top;
	struct seg *s;
	unsigned c;
	int rc;

	if ((rc = rszshm__heap_global_lock_top(r, h, &top)) < 0)
		return rc;
	/* Pending frees first: once their bits are clear the rebuild below
	 * makes them free blocks. */
	for (c = 0; c < NPENDING; c++) {
		uint64_t v = GET(a->pending[c]);
		uint32_t idx;

		/* An empty slot may be filled by a lock-free free right now:
		 * leave it.  A full one cannot change while the lock is held. */
		if (!v)
			continue;
		s = locate(r, h, v);
		if (s && s->kind == K_SMALL && s->arena == ai && rszshm__heap_seg_sane(s) &&
		    block_index(s, v, &idx))
			bit_put(s, idx, false);
		PUT(a->pending[c], 0);
	}
	for (c = 0; c < NCLS; c++) {
		PUT(a->partial[c], 0);
		a->nempty[c] = 0;
	}
	for (i = 1; i < top; i += n) {
		s = seg_at(r, i);
		if ((n = rszshm__heap_run_len(s, i, top)) == 0) {
			rc = -ENOTRECOVERABLE;
			break;
		}
		if (s->kind != K_SMALL || s->arena != ai)
			continue;
		if (!rszshm__heap_seg_sane(s)) {
			/* Never allocate from a damaged segment again. */
			s->listed = 0;
			continue;
		}
		rszshm__heap_seg_rebuild(s);
		if (s->used < s->nblocks) {
			/* Onto a list this loop made: fails only if another
			 * process writes over the arena meanwhile. */
			if (!rszshm__heap_list_push(r, h, ai, s)) {
				rc = -ENOTRECOVERABLE;
				break;
			}
			if (s->used == 0)
				a->nempty[s->cls]++;
		} else {
			s->listed = 0;
		}
	}
	h->repairs++;
	rszshm__heap_global_unlock(r, h);
	return rc;
}

