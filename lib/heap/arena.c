/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap/arena.c - the heap's arenas and small blocks, built on seg.c.
 *
 * Owns: the NARENAS arenas (their robust locks, busy flags, per-class
 * partial lists of SMALL segments with room, pending slots of lock-free
 * frees); the allocation and free of a small block (a bitmap bit in a
 * SMALL segment); the thread's remembered arena; moving blocks between a
 * thread slot's cache and the arenas (refill, flush); and the repair of an
 * arena whose lock holder died, from its segments.  Calls seg.c only; the
 * thread slots (own.c) and the public calls (heap.c) call it.
 *
 * A thread allocates from the arena it used last (a thread-local index,
 * reset in forked children), moving on to the next arena when trylock finds
 * one busy, so threads and processes spread over the arenas; a block is
 * freed into the arena that owns its segment.  A small block is freed
 * without a lock: after checking it, the freer puts it in a pending slot of
 * its arena (CAS from 0), and the arena's next holder clears its bit.  Only
 * when the slots are full does a freer take the lock.  An arena keeps at
 * most one empty segment per class and gives the others back to the
 * free-run list.
 *
 * Repair (rszshm__heap_arena_rebuild()): clear the bits of the arena's
 * pending frees, recount each of its SMALL segments from its bitmap, relink
 * its partial lists.  A damaged SMALL segment is left off the lists for
 * good.  At most the block whose allocation was under way when its holder
 * died is lost (its bit set, nobody holds it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"

/* Is @p waiting in arena @a's pending slots? */
bool rszshm__heap_is_pending(struct arena *a, uintptr_t p)
{
	unsigned i;

	for (i = 0; i < NPENDING; i++)
		if (RD(a->pending[i]) == p)
			return true;
	return false;
}

/* ------------------------------------------------------------- arenas */

/*
 * Is @cur a plausible partial-list member of arena @ai, class @c: a listed
 * SMALL segment below top whose geometry is its class's, so that its
 * bitmap and blocks lie inside it?
 */
static bool listed_ok(struct rszshm *r, struct ctl *h, uint64_t cur, unsigned ai, unsigned c)
{
	struct seg *s = (struct seg *)(uintptr_t)cur;

	return seg_addr_ok(r, cur, RD(h->top)) && s->magic == SEG_MAGIC && s->kind == K_SMALL &&
	       s->arena == ai && s->cls == c && s->nsegs == 1 && s->listed && geom_ok(s, c);
}

/*
 * Under arena @ai's lock: put SMALL segment @s (sane) at the head of its
 * list.  false, with nothing written, if the head is damaged.
 */
bool rszshm__heap_list_push(struct rszshm *r, struct ctl *h, unsigned ai, struct seg *s)
{
	struct arena *a = &h->arenas[ai];
	uint64_t head = a->partial[s->cls];
	struct seg *hd = (struct seg *)(uintptr_t)head;

	if (head && (!listed_ok(r, h, head, ai, s->cls) || hd->prev != 0))
		return false;
	s->prev = 0;
	s->next = head;
	if (head)
		hd->prev = (uint64_t)(uintptr_t)s;
	PUT(a->partial[s->cls], (uint64_t)(uintptr_t)s);
	PUT(s->listed, 1);
	return true;
}

/*
 * Under arena @ai's lock: take listed SMALL segment @s (class in range) off
 * its list.  false, with nothing written, if its links or neighbours are
 * damaged.
 */
static bool list_unlink(struct rszshm *r, struct ctl *h, unsigned ai, struct seg *s)
{
	struct arena *a = &h->arenas[ai];
	uint64_t self = (uint64_t)(uintptr_t)s, prev = s->prev, next = s->next;
	struct seg *p = (struct seg *)(uintptr_t)prev, *n = (struct seg *)(uintptr_t)next;
	unsigned c = s->cls;

	if (prev ? !listed_ok(r, h, prev, ai, c) || p->next != self : a->partial[c] != self)
		return false;
	if (next && (!listed_ok(r, h, next, ai, c) || n->prev != self))
		return false;
	if (prev)
		PUT(p->next, next);
	else
		PUT(a->partial[c], next);
	if (next)
		n->prev = prev;
	PUT(s->listed, 0);
	return true;
}

/* Is no bit of SMALL segment @s (sane) set? */
static bool seg_clear(struct seg *s)
{
	uint32_t w, words = (s->nblocks + 63) / 64;

	for (w = 0; w < words; w++)
		if (RD(bitmap(s)[w]))
			return false;
	return true;
}


/* Under its arena's lock: a clear bit of SMALL segment @s, from its cursor. */
static bool seg_find(struct seg *s, uint32_t *idx)
{
	uint32_t words = (s->nblocks + 63) / 64, w = s->cursor < words ? s->cursor : 0, n;
	uint64_t *bm = bitmap(s), room;

	for (n = 0; n < words; n++) {
		room = ~bm[w];
		if (w == words - 1 && s->nblocks % 64)
			room &= ((uint64_t)1 << (s->nblocks % 64)) - 1;
		if (room) {
			s->cursor = w;
			*idx = w * 64 + (uint32_t)__builtin_ctzll(room);
			return true;
		}
		if (++w == words)
			w = 0;
	}
	return false;
}

int rszshm__heap_arena_take(struct rszshm *r, struct ctl *h, unsigned ai, bool try)
{
	struct arena *a = &h->arenas[ai];
	int rc = try ? rszshm__trylock(&a->lock) : rszshm__lock(&a->lock);

	if (rc < 0)
		return rc;
	if (rc == 1) {
		PUT(a->busy, 1);
		if ((rc = rszshm__heap_arena_rebuild(r, h, ai)) < 0 ||
		    (rc = rszshm__lock_consistent(&a->lock)) < 0) {
			rszshm__unlock(&a->lock);
			return rc;
		}
	}
	PUT(a->busy, 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	return 0;
}

void rszshm__heap_arena_drop(struct ctl *h, unsigned ai)
{
	PUT(h->arenas[ai].busy, 0);
	rszshm__unlock(&h->arenas[ai].lock);
}

/* The arena a thread allocates from, remembered per thread. */
static _Thread_local struct {
	uintptr_t base;		/* region the index is for */
	unsigned arena;
	pid_t tid;		/* 0 until known; reset in forked children */
} mine;

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void forget_arena(void)
{
	mine.base = 0;
	mine.tid = 0;
}

static void watch_forks(void)
{
	pthread_atfork(NULL, NULL, forget_arena);
}

/* Lock an arena to allocate from: the thread's own, or the next free one. */
static int arena_pick(struct rszshm *r, struct ctl *h, unsigned *out)
{
	uintptr_t base = (uintptr_t)r->hdr;
	unsigned i, n;
	int rc;

	if (mine.base != base) {
		if (!mine.tid) {
			pthread_once(&fork_once, watch_forks);
			mine.tid = gettid();
		}
		mine.arena = (unsigned)mine.tid % NARENAS;
		mine.base = base;
	}
	for (i = mine.arena, n = 0; n < NARENAS; n++, i = (i + 1) % NARENAS) {
		if ((rc = rszshm__heap_arena_take(r, h, i, true)) == -EBUSY)
			continue;
		if (rc == 0) {
			mine.arena = i;
			*out = i;
		}
		return rc;
	}
	if ((rc = rszshm__heap_arena_take(r, h, mine.arena, false)) == 0)
		*out = mine.arena;
	return rc;
}

/*
 * Under arena @ai's lock: give its empty segments back (when the span is
 * full).  The number given back, or a negative errno; a damaged list is
 * rebuilt and walked again.
 */
static int arena_reclaim(struct rszshm *r, struct ctl *h, unsigned ai)
{
	struct arena *a = &h->arenas[ai];
	uint64_t cur, next, steps, top;
	bool bad = false, rebuilt = false;
	unsigned c;
	int rc, freed = 0;
	struct seg *s;

again:
	if ((rc = rszshm__heap_global_lock_top(r, h, &top)) < 0)
		return rc;
	for (c = 0; c < NCLS && !bad; c++) {
		for (cur = a->partial[c], steps = 0; cur && a->nempty[c] && steps < top;
		     cur = next, steps++) {
			if (!listed_ok(r, h, cur, ai, c)) {
				bad = true;
				break;
			}
			s = (struct seg *)(uintptr_t)cur;
			next = s->next;
			if (s->used != 0 || !seg_clear(s))
				continue;
			if (!list_unlink(r, h, ai, s)) {
				bad = true;
				break;
			}
			a->nempty[c]--;
			rszshm__heap_run_release(h, s);
			freed++;
		}
	}
	rszshm__heap_global_unlock(r, h);
	if (!bad)
		return freed;
	if (rebuilt)
		return -ENOTRECOVERABLE;
	if ((rc = rszshm__heap_arena_rebuild(r, h, ai)) < 0)
		return rc;
	bad = false;
	rebuilt = true;
	goto again;
}

/* Under arena @ai's lock: a new, empty SMALL segment of class @c, listed. */
static int small_new(struct rszshm *r, struct ctl *h, unsigned ai, unsigned c)
{
	struct arena *a = &h->arenas[ai];
	uint32_t nb, first;
	struct seg *s = NULL;
	int rc, tries;

	for (tries = 0;; tries++) {
		if ((rc = rszshm__heap_global_lock(r, h)) < 0)
			return rc;
		if ((rc = rszshm__heap_run_take(r, h, 1, &s)) == 0) {
			rszshm__heap_geom(c, &nb, &first);
			s->arena = (uint8_t)ai;
			s->cls = (uint8_t)c;
			s->listed = 0;
			s->nblocks = nb;
			s->cursor = 0;
			s->used = 0;
			s->bsize = rszshm__heap_cls_size[c];
			s->first = first;
			s->next = 0;
			s->prev = 0;
			memset(s + 1, 0, first - SEG_HDR);
			PUT(s->kind, K_SMALL);
		}
		rszshm__heap_global_unlock(r, h);
		if (rc == -ENOMEM && tries == 0 && (rc = arena_reclaim(r, h, ai)) >= 0) {
			if (rc > 0)
				continue;
			rc = -ENOMEM;
		}
		if (rc < 0)
			return rc;
		if (!rszshm__heap_list_push(r, h, ai, s))
			return rszshm__heap_arena_rebuild(r, h, ai);	/* which lists @s */
		a->nempty[c]++;
		return 0;
	}
}

/* Under arena @ai's lock: a block of class @c, or 0 with *err set. */
static uintptr_t small_take(struct rszshm *r, struct ctl *h, unsigned ai, unsigned c, int *err)
{
	struct arena *a = &h->arenas[ai];
	unsigned repairs = 0;
	uintptr_t blk;
	uint32_t idx;
	struct seg *s;
	int rc;

	/* Each pass returns, takes a head off the list for good (its listed
	 * flag cleared), lists a new segment, or rebuilds the arena once. */
	for (;;) {
		uint64_t head = a->partial[c];

		if (!head) {
			if ((rc = small_new(r, h, ai, c)) < 0) {
				*err = rc;
				return 0;
			}
			continue;
		}
		s = (struct seg *)(uintptr_t)head;
		if (!listed_ok(r, h, head, ai, c) || s->prev != 0)
			goto damaged;
		if (s->used >= s->nblocks) {
			/* Full: should not have been listed. */
			if (!list_unlink(r, h, ai, s))
				goto damaged;
			continue;
		}
		if (!seg_find(s, &idx)) {
			/* The count was wrong: trust the bitmap. */
			rszshm__heap_seg_rebuild(s);
			if (s->used >= s->nblocks && !list_unlink(r, h, ai, s))
				goto damaged;
			continue;
		}
		/* Off the list before the last block goes: a crash in between
		 * leaves a segment with room unlisted, which is harmless. */
		if (s->used + 1 >= s->nblocks && !list_unlink(r, h, ai, s))
			goto damaged;
		blk = (uintptr_t)s + s->first + (uintptr_t)idx * s->bsize;
		bit_put(s, idx, true);
		if (s->used++ == 0 && a->nempty[c])
			a->nempty[c]--;
		return blk;
damaged:
		/* Rebuild the arena from its segments, leaving damaged ones
		 * off the lists; damage that outlives a rebuild is final. */
		if (repairs++ || (rc = rszshm__heap_arena_rebuild(r, h, ai)) < 0) {
			*err = repairs > 1 ? -ENOTRECOVERABLE : rc;
			return 0;
		}
	}
}


/* Under arena @ai's lock: listed segment @s (sane) has no live block left. */
static int seg_emptied(struct rszshm *r, struct ctl *h, unsigned ai, struct seg *s)
{
	struct arena *a = &h->arenas[ai];
	bool unlinked;

	if (a->nempty[s->cls] == 0) {
		a->nempty[s->cls] = 1;
		return 0;
	}
	if (!seg_clear(s)) {
		/* The count was wrong: trust the bitmap. */
		rszshm__heap_seg_rebuild(s);
		return 0;
	}
	if (rszshm__heap_global_lock(r, h) < 0) {
		a->nempty[s->cls]++;
		return 0;
	}
	if ((unlinked = list_unlink(r, h, ai, s)))
		rszshm__heap_run_release(h, s);
	rszshm__heap_global_unlock(r, h);
	return unlinked ? 0 : rszshm__heap_arena_rebuild(r, h, ai);
}

/* Under arena @ai's lock: free block @p of SMALL segment @s. */
int rszshm__heap_small_put(struct rszshm *r, struct ctl *h, unsigned ai, struct seg *s, uintptr_t p)
{
	uintptr_t blk;
	uint32_t idx;

	if (s->cls >= NCLS || s->nsegs != 1 || !geom_ok(s, s->cls))
		return -EINVAL;
	if (!block_index(s, p, &idx)) {
		/* Maybe an interior pointer from rszshm_alloc_aligned(). */
		uintptr_t b0 = (uintptr_t)s + s->first;

		if (p < b0 || p - b0 >= (uint64_t)s->nblocks * s->bsize)
			return -EINVAL;
		idx = (uint32_t)(((uint64_t)(p - b0) * rszshm__heap_cls_recip[s->cls]) >> 32);
		blk = b0 + (uintptr_t)idx * s->bsize;
		if (*(uint64_t *)(p - 8) != tag_of(blk, p) || !bit_get(s, idx))
			return -EINVAL;
		*(uint64_t *)(p - 8) = 0;
	} else {
		blk = p;
		if (!bit_get(s, idx))
			return -EINVAL;
	}
	bit_put(s, idx, false);
	s->used = s->used ? s->used - 1 : 0;
	if (!s->listed && !rszshm__heap_list_push(r, h, ai, s))
		return rszshm__heap_arena_rebuild(r, h, ai);	/* which lists @s */
	if (s->used == 0)
		return seg_emptied(r, h, ai, s);
	return 0;
}

/* Under arena @ai's lock: free the blocks freed into its pending slots. */
void rszshm__heap_arena_drain(struct rszshm *r, struct ctl *h, unsigned ai)
{
	struct arena *a = &h->arenas[ai];
	struct seg *s;
	uint64_t v;
	unsigned i;

	for (i = 0; i < NPENDING; i++) {
		if ((v = GET(a->pending[i])) == 0)
			continue;
		/* Checked when it was put there; a live block's segment
		 * cannot change owner.  A bad one is dropped. */
		s = locate(r, h, v);
		if (s && s->kind == K_SMALL && s->arena == ai)
			rszshm__heap_small_put(r, h, ai, s, v);
		PUT(a->pending[i], 0);
	}
}

/* Lock an arena and take a block of class @c, or 0 with *err set. */
uintptr_t rszshm__heap_arena_alloc(struct rszshm *r, struct ctl *h, unsigned c, int *err)
{
	unsigned ai = 0;
	uintptr_t blk;
	int rc;

	if ((rc = arena_pick(r, h, &ai)) < 0) {
		*err = rc;
		return 0;
	}
	rszshm__heap_arena_drain(r, h, ai);
	blk = small_take(r, h, ai, c, err);
	rszshm__heap_arena_drop(h, ai);
	return blk;
}

/*
 * Thread slot @t has no usable block of class @c: under one arena lock, put
 * up to CACHE_MOVE blocks in its cache, then take one more for the caller.
 * Each cached block is stored before the count that makes it the cache's,
 * and the caller's is taken last, so a kill at any instruction leaves at
 * most one block in motion, nobody's.
 */
uintptr_t rszshm__heap_refill(struct rszshm *r, struct ctl *h, struct tslot *t, unsigned c,
			      int *err)
{
	uintptr_t blk, last = 0;
	unsigned ai = 0, k;
	uint32_t n;
	int rc;

	if ((rc = arena_pick(r, h, &ai)) < 0) {
		*err = rc;
		return 0;
	}
	rszshm__heap_arena_drain(r, h, ai);
	if ((n = RD(t->n[c])) > CACHE_CAP)
		n = 0;	/* damaged: its entries are not trusted */
	for (k = 0; k < CACHE_MOVE && n < CACHE_CAP; k++, n++) {
		if (!(blk = small_take(r, h, ai, c, err)))
			break;
		die_point();
		PUT(t->blk[c][n], (uint64_t)blk);
		PUT(t->n[c], n + 1);
		last = blk;
		die_point();
	}
	if (!(blk = small_take(r, h, ai, c, err)) && last) {
		/* No block left for the caller: the last one cached (its
		 * value from here, not read back from the region). */
		PUT(t->n[c], n - 1);
		blk = last;
	}
	rszshm__heap_arena_drop(h, ai);
	return blk;
}

void rszshm__heap_slot_flush(struct rszshm *r, struct ctl *h, struct tslot *t, unsigned c,
			     unsigned max)
{
	unsigned held = NARENAS, ai;
	uint64_t p;
	uint32_t n = RD(t->n[c]);
	struct seg *s;

	if (n > CACHE_CAP) {
		PUT(t->n[c], 0);	/* damaged: its entries are not trusted */
		return;
	}
	/* Count each block out before it goes back: a kill in between loses
	 * that one block, never gives one out twice. */
	for (; n > 0 && max > 0; max--) {
		p = RD(t->blk[c][--n]);
		PUT(t->n[c], n);
		die_point();
		if (!(s = locate(r, h, p)) || GET(s->kind) != K_SMALL || (ai = RD(s->arena)) >= NARENAS)
			continue;
		if (ai != held) {
			if (held < NARENAS)
				rszshm__heap_arena_drop(h, held);
			held = NARENAS;
			if (rszshm__heap_arena_take(r, h, ai, false) < 0)
				continue;
			held = ai;
			rszshm__heap_arena_drain(r, h, ai);
		}
		/* Only the owner changes a SMALL segment: check again, locked. */
		if (s->kind == K_SMALL && s->arena == ai)
			rszshm__heap_small_put(r, h, ai, s, p);
		die_point();
	}
	if (held < NARENAS)
		rszshm__heap_arena_drop(h, held);
}

/*
 * Free block @p of SMALL segment @s without a lock: check it, then leave it
 * in a pending slot of its arena.  1 if done, 0 if the caller must take
 * the lock (no free slot, or an interior pointer), or -EINVAL.
 */
int rszshm__heap_small_defer(struct ctl *h, struct seg *s, uintptr_t p)
{
	unsigned ai = RD(s->arena), c = RD(s->cls), i;
	uint32_t bs = RD(s->bsize), first = RD(s->first), nb = RD(s->nblocks), idx;
	uintptr_t b0 = (uintptr_t)s + first;
	struct arena *a;
	uint64_t off, zero;

	if (ai >= NARENAS || c >= NCLS || bs != rszshm__heap_cls_size[c] || first < SEG_HDR ||
	    nb > SEG / 16 || p < b0 || (off = p - b0) >= (uint64_t)nb * bs)
		return -EINVAL;
	idx = (uint32_t)((off * rszshm__heap_cls_recip[c]) >> 32);
	if ((uint64_t)idx * bs != off)
		return 0;
	a = &h->arenas[ai];
	if (!bit_get(s, idx) || rszshm__heap_is_pending(a, p))
		return -EINVAL;
	/* The cache's mark: a thread caching frees finds a double free of a
	 * pending block by it (small_cache() does not scan the slots). */
	if (c < NCACHE)
		((uint64_t *)p)[1] = RD(h->key);
	for (i = 0; i < NPENDING; i++) {
		zero = 0;
		if (RD(a->pending[i]) == 0 &&
		    __atomic_compare_exchange_n(&a->pending[i], &zero, (uint64_t)p, false,
						__ATOMIC_RELEASE, __ATOMIC_RELAXED))
			return 1;
	}
	return 0;
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
