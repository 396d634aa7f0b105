/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap/heap.c - the heap's public calls, over arena.c, own.c and seg.c.
 *
 * Owns: rszshm_alloc() and friends; what a thread slot's cache holds on the
 * way in and out (the pop and push, the double-free mark and its look
 * through every slot); large runs (a LARGE run from seg.c); the checks of a
 * block handed to free or realloc; making a heap in a new region.  See
 * heap.h for the layout and the invariants a crash may leave.
 *
 * A thread with a slot allocates and frees blocks up to 1 KiB in its cache
 * (no lock, no atomic read-modify-write): rszshm_alloc() and
 * rszshm_dealloc() try that first, inline with no call, and hand whatever
 * it does not cover to the full path whole; an empty cache is refilled from
 * an arena, a full one flushed to the blocks' arenas, CACHE_MOVE at a time
 * (arena.c).  Larger blocks, and threads without a slot, go to the arenas.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"

/*
 * May @p, read from a thread slot, be handed out as a block of class @c?
 * It must lie inside the region's carved part of the file (@len) and be
 * aligned: damage never sends a caller's writes outside the region.
 */
static inline bool cached_ok(struct rszshm *r, uint64_t p, uint64_t len, unsigned c)
{
	uint64_t off = p - (uintptr_t)r->hdr;

	return !(p & (RSZSHM_ALIGN - 1)) && off >= SEG + SEG_HDR && off < len &&
	       len - off >= rszshm__heap_cls_size[c];
}

/*
 * Block @p (or 0) of a cached class, from a cache or an arena, as the caller
 * gets it: without the cache's mark.  A block keeps the mark it had in a
 * cache or a pending slot after it goes back to its arena; left on a live
 * block, every free of it would look for it in every thread's cache.
 */
static inline void *unmarked(uintptr_t p)
{
	if (p)
		((uint64_t *)p)[1] = 0;
	return (void *)p;
}

/*
 * A block of class @c from slot @t's cache, or NULL if it is empty.  Plain
 * loads and stores on this thread's slot; an entry that could send the
 * caller outside the region (damage) is dropped.
 */
static inline __attribute__((always_inline)) void *cache_pop(struct rszshm *r, struct tslot *t,
							      unsigned c, uint64_t len)
{
	uint64_t p;
	uint32_t n;

	for (n = RD(t->n[c]); n - 1u < CACHE_CAP; n--) {
		p = RD(t->blk[c][n - 1]);
		PUT(t->n[c], n - 1);
		if (__builtin_expect(cached_ok(r, p, len, c), 1))
			return unmarked((uintptr_t)p);
	}
	return NULL;
}

static inline __attribute__((always_inline)) void *small_alloc(struct rszshm *r, struct ctl *h,
							      unsigned c, uint64_t len, int *err)
{
	struct tslot *t;
	void *p;

	if (c >= NCACHE)
		return (void *)rszshm__heap_arena_alloc(r, h, c, err);
	if (!(t = my_slot(r, h)))
		return unmarked(rszshm__heap_arena_alloc(r, h, c, err));
	if ((p = cache_pop(r, t, c, len)))
		return p;
	return unmarked(rszshm__heap_refill(r, h, t, c, err));
}

/* Is @p in a thread slot's cache of class @c (a double free)?  Only asked
 * when @p carries the cache's mark, which a live block rarely does. */
static bool is_cached(struct rszshm *r, struct ctl *h, uint64_t p, unsigned c)
{
	uint32_t n, i;
	unsigned k, j;
	void *run;

	for (k = 0; k < NSLOTRUNS && (run = rszshm__heap_slot_run(r, h, k)); k++)
		for (j = 0; j < SLOTS_PER_RUN; j++) {
			struct tslot *t = slot_at(run, j);

			if ((n = RD(t->n[c])) > CACHE_CAP)
				n = CACHE_CAP;
			for (i = 0; i < n; i++)
				if (RD(t->blk[c][i]) == p)
					return true;
		}
	return false;
}

/*
 * Is @p, in SMALL segment @s, a live block start of a cached class, with
 * its class's geometry?  1, its class in *@cls; 0 if it goes to the arenas
 * (class not cached, interior pointer); -EINVAL if it is no live block.
 */
static inline __attribute__((always_inline)) int cached_block(struct seg *s, uintptr_t p,
								unsigned *cls)
{
	unsigned c = RD(s->cls);
	uint32_t bs, idx;
	uint64_t off;

	if (c >= NCACHE || RD(s->arena) >= NARENAS)
		return 0;
	bs = rszshm__heap_cls_size[c];
	if (RD(s->bsize) != bs || RD(s->first) != rszshm__heap_cls_geom[c].first ||
	    RD(s->nblocks) != rszshm__heap_cls_geom[c].nblocks)
		return -EINVAL;
	off = p - ((uintptr_t)s + rszshm__heap_cls_geom[c].first);
	if (off >= (uint64_t)rszshm__heap_cls_geom[c].nblocks * bs)
		return -EINVAL;
	idx = (uint32_t)((off * rszshm__heap_cls_recip[c]) >> 32);
	if ((uint64_t)idx * bs != off)
		return 0;
	if (!bit_get(s, idx))
		return -EINVAL;
	*cls = c;
	return 1;
}

/* Put block @p of class @c in slot @t's cache (room checked), marked. */
static inline __attribute__((always_inline)) void cache_push(struct ctl *h, struct tslot *t,
							      unsigned c, uint32_t n, uintptr_t p)
{
	PUT(t->blk[c][n], (uint64_t)p);
	((uint64_t *)p)[1] = RD(h->key);
	PUT(t->n[c], n + 1);
}

/*
 * Free block @p of SMALL segment @s into this thread's slot: 1 if done, 0
 * if it goes to the arenas (class not cached, no slot, interior pointer),
 * -EINVAL if it is not a live block.  A free block's bit is set while it is
 * cached or pending, so those carry a mark in their second word (ctl->key,
 * random per heap) and a marked block is looked for in every cache and in
 * its arena's pending slots; a live block that holds the mark by chance
 * costs that look, nothing else.
 */
static int small_cache(struct rszshm *r, struct ctl *h, struct seg *s, uintptr_t p)
{
	unsigned c = 0, ai = RD(s->arena);
	struct tslot *t;
	uint32_t n;
	int rc;

	if ((rc = cached_block(s, p, &c)) <= 0)
		return rc;
	if (ai >= NARENAS || !(t = my_slot(r, h)))
		return 0;
	/* Blocks in caches and pending slots carry the mark: only a marked
	 * block is looked for there. */
	if (((uint64_t *)p)[1] == RD(h->key) &&
	    (is_cached(r, h, p, c) || rszshm__heap_is_pending(&h->arenas[ai], p)))
		return -EINVAL;
	if ((n = RD(t->n[c])) >= CACHE_CAP) {
		rszshm__heap_slot_flush(r, h, t, c, CACHE_MOVE);
		if ((n = RD(t->n[c])) >= CACHE_CAP)
			return 0;
	}
	cache_push(h, t, c, n, p);
	return 1;
}

/* ----------------------------------------------------------- large runs */

static void *large_alloc(struct rszshm *r, struct ctl *h, size_t size, size_t align, int *err)
{
	uint64_t room = align > SEG_HDR ? align : SEG_HDR, n, first;
	struct seg *s;
	int rc;

	if (size > span_segs(r) << SEG_SHIFT) {
		*err = -ENOMEM;
		return NULL;
	}
	n = (room + size + SEG - 1) >> SEG_SHIFT;
	if ((rc = rszshm__heap_global_lock(r, h)) < 0) {
		*err = rc;
		return NULL;
	}
	if ((rc = rszshm__heap_run_take(r, h, n, &s)) == 0) {
		first = (((uintptr_t)s + SEG_HDR + align - 1) & ~(uintptr_t)(align - 1)) - (uintptr_t)s;
		s->first = (uint32_t)first;
		s->arena = 0;
		s->cls = 0;
		s->listed = 0;
		s->nblocks = 0;
		s->cursor = 0;
		s->used = 0;
		s->bsize = 0;
		s->prev = 0;
		PUT(s->kind, K_LARGE);
	}
	rszshm__heap_global_unlock(r, h);
	if (rc < 0) {
		*err = rc;
		return NULL;
	}
	return (char *)s + s->first;
}

/*
 * A LARGE run header @s that may be trusted: its length tiles below @top
 * (checked) and its block starts inside its first segment.  The number of
 * usable bytes of its block, or 0 if it is damaged.
 */
static uint64_t large_room(struct rszshm *r, struct seg *s, uint64_t top)
{
	uint64_t i = ((uintptr_t)s - (uintptr_t)r->hdr) >> SEG_SHIFT, n;
	uint32_t first = RD(s->first);

	if (!top_ok(r, top) || i == 0 || i >= top || (n = rszshm__heap_run_len(s, i, top)) == 0 ||
	    first < SEG_HDR || first > SEG || first % RSZSHM_ALIGN || first >= n << SEG_SHIFT)
		return 0;
	return (n << SEG_SHIFT) - first;
}

static int large_free(struct rszshm *r, struct ctl *h, struct seg *s, uintptr_t p)
{
	uint64_t top;
	int rc;

	if ((rc = rszshm__heap_global_lock_top(r, h, &top)) < 0)
		return rc;
	if (s->kind != K_LARGE || p != (uintptr_t)s + s->first)
		rc = -EINVAL;
	else if (large_room(r, s, top) == 0)
		rc = -EBADMSG;
	else
		rszshm__heap_run_release(h, s);
	rszshm__heap_global_unlock(r, h);
	return rc;
}

/* -------------------------------------------------------------- blocks */

/*
 * Bytes usable from @p to the end of its block, or 0 if @p is not live
 * (*err = -EINVAL) or its run header is damaged (*err = -EBADMSG).
 */
static size_t usable(struct rszshm *r, struct ctl *h, uintptr_t p, int *err)
{
	struct seg *s = locate(r, h, p);
	uintptr_t b0, blk;
	uint64_t room;
	uint32_t idx, bs;
	uint8_t c;

	*err = -EINVAL;
	if (!s)
		return 0;
	switch (GET(s->kind)) {
	case K_SMALL:
		c = RD(s->cls);
		bs = RD(s->bsize);
		if (c >= NCLS || !geom_ok(s, c)) {
			*err = -EBADMSG;
			return 0;
		}
		b0 = (uintptr_t)s + RD(s->first);
		if (p < b0 || p - b0 >= (uint64_t)RD(s->nblocks) * bs || RD(s->nblocks) > SEG / 16)
			return 0;
		idx = (uint32_t)(((uint64_t)(p - b0) * rszshm__heap_cls_recip[c]) >> 32);
		blk = b0 + (uintptr_t)idx * bs;
		if (blk != p && *(const uint64_t *)(p - 8) != tag_of(blk, p))
			return 0;
		if (!bit_get(s, idx) || RD(s->arena) >= NARENAS ||
		    rszshm__heap_is_pending(&h->arenas[RD(s->arena)], p))
			return 0;
		if (blk == p && c < NCACHE && RD(((const uint64_t *)p)[1]) == RD(h->key) &&
		    is_cached(r, h, p, c))
			return 0;
		return blk + bs - p;
	case K_LARGE:
		if (p != (uintptr_t)s + RD(s->first))
			return 0;
		/* Its length bounds what realloc copies: never past the run. */
		if ((room = large_room(r, s, GET(h->top))) == 0)
			*err = -EBADMSG;
		return (size_t)room;
	default:
		return 0;
	}
}

static void *alloc_in(struct rszshm *r, struct ctl *h, size_t size, size_t align, int *err)
{
	uint64_t len = rszshm__map_safe_len(r);
	uintptr_t blk, p;

	/* A block of 0 bytes is a block of 1: with size 0 an aligned block
	 * could round up to the first byte after it, its neighbour's start. */
	if (size == 0)
		size = 1;
	if (align <= RSZSHM_ALIGN) {
		if (size <= SMALL_MAX)
			return small_alloc(r, h, size_cls(size), len, err);
		return large_alloc(r, h, size, RSZSHM_ALIGN, err);
	}
	if (align - RSZSHM_ALIGN < SMALL_MAX && size <= SMALL_MAX - (align - RSZSHM_ALIGN)) {
		blk = (uintptr_t)small_alloc(r, h, size_cls(size + align - RSZSHM_ALIGN), len, err);
		if (!blk)
			return NULL;
		p = (blk + align - 1) & ~(uintptr_t)(align - 1);
		if (p != blk)
			*(uint64_t *)(p - 8) = tag_of(blk, p);
		return (void *)p;
	}
	return large_alloc(r, h, size, align, err);
}

/*
 * alloc_in() and, when the span is full, once more after giving this
 * thread's cached blocks back: they may empty a segment another class or a
 * large block can use.
 */
static void *alloc_retry(struct rszshm *r, struct ctl *h, size_t size, size_t align, int *err)
{
	struct tslot *t;
	void *p;
	unsigned c;

	if ((p = alloc_in(r, h, size, align, err)) || *err != -ENOMEM || !(t = my_slot(r, h)))
		return p;
	for (c = 0; c < NCACHE; c++)
		rszshm__heap_slot_flush(r, h, t, c, CACHE_CAP);
	return alloc_in(r, h, size, align, err);
}

/* Free @p, the full path (its cache step is small_cache()); @len is
 * rszshm__map_safe_len(). */
static inline __attribute__((always_inline)) int free_in(struct rszshm *r, struct ctl *h,
							  uintptr_t p, uint64_t len)
{
	struct seg *s = locate_len(r, h, p, len);
	unsigned ai, tries;
	int rc;

	if (!s)
		return -EINVAL;
	for (tries = 0; tries < 4; tries++) {
		switch (GET(s->kind)) {
		case K_LARGE:
			return large_free(r, h, s, p);
		case K_SMALL:
			break;
		default:
			return -EINVAL;
		}
		if ((rc = small_cache(r, h, s, p)) != 0 || (rc = rszshm__heap_small_defer(h, s, p)) != 0)
			return rc < 0 ? rc : 0;
		if ((ai = RD(s->arena)) >= NARENAS)
			return -EINVAL;
		if ((rc = rszshm__heap_arena_take(r, h, ai, false)) < 0)
			return rc;
		/* Only the owner can change a SMALL segment: check again, locked. */
		if (s->kind == K_SMALL && s->arena == ai) {
			rszshm__heap_arena_drain(r, h, ai);
			rc = rszshm__heap_small_put(r, h, ai, s, p);
			rszshm__heap_arena_drop(h, ai);
			return rc;
		}
		rszshm__heap_arena_drop(h, ai);
	}
	return -EINVAL;
}

/* ------------------------------------------------------------ lib/ API */

int rszshm__heap_init(struct rszshm *r)
{
	struct ctl *h = ctl_of(r);
	unsigned i;
	int rc;

	if (rszshm__map_len(r) < HDR_SIZE + sizeof(*h) &&
	    (rc = rszshm__map_grow_to(r, HDR_SIZE + sizeof(*h))) < 0)
		return rc;
	/* A full file system is ENOSPC here, not SIGBUS in the memset. */
	if ((rc = rszshm__map_reserve(r, HDR_SIZE + sizeof(*h))) < 0)
		return rc;
	memset(h, 0, sizeof(*h));
	h->version = HEAP_VERSION;
	h->seg_shift = SEG_SHIFT;
	h->narenas = NARENAS;
	h->nclasses = NCLS;
	h->top = 1;
	h->key = rszshm__sysq_random() | 1;
	for (i = 0; i < NARENAS; i++)
		if ((rc = rszshm__lock_init(&h->arenas[i].lock)) < 0)
			return rc;
	PUT(h->magic, HEAP_MAGIC);
	PUT(rszshm__shared(r->hdr)->heap, (uint64_t)(uintptr_t)h);
	return 0;
}

static inline __attribute__((always_inline)) void *heap_alloc(struct rszshm *r, size_t size,
								int *err)
{
	struct ctl *h;
	uint64_t len;
	void *p;
	int rc;

	if ((rc = get_ctl_len(r, true, &h, &len)) < 0) {
		*err = rc;
		return NULL;
	}
	/* The fast path: a cached class, straight to the thread's cache. */
	if (size - 1 < rszshm__heap_cls_size[NCACHE - 1] &&
	    ((p = small_alloc(r, h, size_cls(size), len, err)) || *err != -ENOMEM))
		return p;
	return alloc_retry(r, h, size, RSZSHM_ALIGN, err);
}

static inline __attribute__((always_inline)) int heap_free(struct rszshm *r, void *p)
{
	struct ctl *h;
	uint64_t len;
	int rc;

	if ((rc = get_ctl_len(r, true, &h, &len)) < 0)
		return rc;
	return p ? free_in(r, h, (uintptr_t)p, len) : 0;
}

void *rszshm__heap_alloc(struct rszshm *r, size_t size, int *err)
{
	return heap_alloc(r, size, err);
}

int rszshm__heap_free(struct rszshm *r, void *p)
{
	return heap_free(r, p);
}

/* Test hook: how many abandoned heap locks were found and repaired. */
uint64_t rszshm__heap_repairs(const struct rszshm *r)
{
	return RD(ctl_of(r)->repairs);
}

/* Test hook: offsets from the region's base of the arenas' lock words. */
unsigned rszshm__heap_lock_offsets(uint64_t *off, unsigned max)
{
	unsigned i;

	for (i = 0; i < NARENAS && i < max; i++)
		off[i] = HDR_SIZE + offsetof(struct ctl, arenas) + i * sizeof(struct arena) +
			 offsetof(struct arena, lock);
	return NARENAS;
}

/* ---------------------------------------------------------- public API */

/*
 * The fast paths: a block of a cached class taken from, or given to, this
 * thread's cache, with no call and no lock.  They make every check the full
 * path makes on the way (the handle, the control block, the cached entry or
 * the block's run header, geometry, bit and mark) and fall back to it for
 * anything else: no slot yet, an empty or full cache, a marked block (a
 * possible double free, which the full path looks for), an interior pointer,
 * damage.  A fault on a truncated file is the guard's, as in the full path.
 */
static inline __attribute__((always_inline)) struct tslot *fast_slot(struct rszshm *r,
								       struct ctl **h, uint64_t *len)
{
	struct tslot *t;

	return get_ctl_len(r, true, h, len) == 0 && slot_known(r, &t) ? t : NULL;
}

static inline __attribute__((always_inline)) void *alloc_fast(struct rszshm *r, size_t size)
{
	struct tslot *t;
	struct ctl *h;
	uint64_t len;

	if (size - 1 >= rszshm__heap_cls_size[NCACHE - 1] || !(t = fast_slot(r, &h, &len)))
		return NULL;
	return cache_pop(r, t, size_cls(size), len);
}

/* 1 if @p went into this thread's cache, 0 if the full path must free it. */
static inline __attribute__((always_inline)) int free_fast(struct rszshm *r, uintptr_t p)
{
	struct tslot *t;
	struct ctl *h;
	struct seg *s;
	uint64_t len;
	unsigned c = 0;
	uint32_t n;

	if (!(t = fast_slot(r, &h, &len)) || !(s = locate_len(r, h, p, len)) ||
	    GET(s->kind) != K_SMALL || cached_block(s, p, &c) != 1 ||
	    ((uint64_t *)p)[1] == RD(h->key) || (n = RD(t->n[c])) >= CACHE_CAP)
		return 0;
	cache_push(h, t, c, n, p);
	return 1;
}

static void *do_alloc(struct rszshm *r, size_t size)
{
	int err = 0;
	void *p = heap_alloc(r, size, &err);

	return p ? p : RSZSHM__FAIL(err, NULL);
}

static __attribute__((noinline)) void *alloc_full(struct rszshm *r, size_t size)
{
	RSZSHM__GUARDED(r, void *, NULL, do_alloc(r, size));
}

/* The fast path in a frame of its own, with no call on its way; what it
 * does not take goes to the full path whole, in a frame of that path's. */
void *rszshm_alloc(struct rszshm *r, size_t size)
{
	struct rszshm__guard g;
	void *p;

	rszshm__guard_enter(&g, r);
	p = alloc_fast(r, size);
	if (__builtin_expect(rszshm__guard_leave(&g), 0))
		return rszshm__guard_fail(), NULL;
	return p ? p : alloc_full(r, size);
}

static void *do_zalloc(struct rszshm *r, size_t size)
{
	void *p = rszshm_alloc(r, size);

	if (p)
		memset(p, 0, size);
	return p;
}

void *rszshm_zalloc(struct rszshm *r, size_t size)
{
	RSZSHM__GUARDED(r, void *, NULL, do_zalloc(r, size));
}

static void *do_alloc_aligned(struct rszshm *r, size_t align, size_t size)
{
	struct ctl *h;
	int err;
	void *p;

	if ((err = get_ctl(r, true, &h)) < 0)
		return RSZSHM__FAIL(err, NULL);
	if (align == 0 || (align & (align - 1)) || align > MAX_ALIGN)
		return RSZSHM__FAIL(-EINVAL, NULL);
	p = alloc_retry(r, h, size, align < RSZSHM_ALIGN ? RSZSHM_ALIGN : align, &err);
	return p ? p : RSZSHM__FAIL(err, NULL);
}

void *rszshm_alloc_aligned(struct rszshm *r, size_t align, size_t size)
{
	RSZSHM__GUARDED(r, void *, NULL, do_alloc_aligned(r, align, size));
}

static void *do_realloc(struct rszshm *r, void *p, size_t size)
{
	struct ctl *h;
	size_t have;
	int err;
	void *q;

	if (!p)
		return rszshm_alloc(r, size);
	if ((err = get_ctl(r, true, &h)) < 0)
		return RSZSHM__FAIL(err, NULL);
	if ((have = usable(r, h, (uintptr_t)p, &err)) == 0)
		return RSZSHM__FAIL(err, NULL);
	/* Shrink in place unless that would waste more than half the block. */
	if (size <= have && (have <= 64 || size >= have / 2))
		return p;
	if (!(q = alloc_retry(r, h, size, RSZSHM_ALIGN, &err)))
		return RSZSHM__FAIL(err, NULL);
	memcpy(q, p, size < have ? size : have);
	if ((err = free_in(r, h, (uintptr_t)p, rszshm__map_safe_len(r))) < 0) {
		free_in(r, h, (uintptr_t)q, rszshm__map_safe_len(r));
		return RSZSHM__FAIL(err, NULL);
	}
	return q;
}

void *rszshm_realloc(struct rszshm *r, void *p, size_t size)
{
	RSZSHM__GUARDED(r, void *, NULL, do_realloc(r, p, size));
}

static int do_dealloc(struct rszshm *r, void *p)
{
	int rc = heap_free(r, p);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

static __attribute__((noinline)) int dealloc_full(struct rszshm *r, void *p)
{
	RSZSHM__GUARDED(r, int, -1, do_dealloc(r, p));
}

int rszshm_dealloc(struct rszshm *r, void *p)
{
	struct rszshm__guard g;
	int done;

	rszshm__guard_enter(&g, r);
	done = free_fast(r, (uintptr_t)p);
	if (__builtin_expect(rszshm__guard_leave(&g), 0))
		return rszshm__guard_fail(), -1;
	return done ? 0 : dealloc_full(r, p);
}

static size_t do_usable_size(struct rszshm *r, const void *p)
{
	struct ctl *h;
	size_t n;
	int rc;

	if ((rc = get_ctl(r, false, &h)) < 0)
		return RSZSHM__FAIL(rc, 0);
	if (!p)
		return RSZSHM__FAIL(-EINVAL, 0);
	if ((n = usable(r, h, (uintptr_t)p, &rc)) == 0)
		return RSZSHM__FAIL(rc, 0);
	return n;
}

size_t rszshm_usable_size(struct rszshm *r, const void *p)
{
	RSZSHM__GUARDED(r, size_t, 0, do_usable_size(r, p));
}
