/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap.c - the allocator of a RSZSHM_HEAP region, with all its state inside
 * the region.
 *
 * Layout.  The region is cut into 64 KiB segments counted from its base:
 * segment i starts at base + i * SEG.  Segment 0 holds the file header and,
 * right after it, the heap's control block (struct ctl).  Segments 1 .. top-1
 * are tiled by runs of whole segments; each run starts with a 64-byte run
 * header (struct seg) that says what the run is:
 *
 *   SMALL  one segment of equal blocks of one size class (16 B .. 16 KiB),
 *          owned by one arena: run header, allocation bitmap, blocks
 *   LARGE  one block bigger than 16 KiB (or aligned beyond what a small
 *          block can hold): run header, block
 *   FREE   unused segments, on the global free-run list
 *
 *   base     +512                 +SEG                           +2 SEG
 *   | hdr | ctl |  ...            | seg | bitmap | b0 | b1 | ... | seg | large
 *
 * Segments from top to the region's length are not carved yet; the region
 * grows (rszshm__map_grow_to()) when top must pass its length.  Every stored
 * pointer is an absolute address, the same in every process.  A block never
 * starts at a segment's first byte, so the run header of a block p is found
 * by rounding p - 1 down to a segment.  Blocks carry no header of their own;
 * a block of rszshm_alloc_aligned() may be an interior pointer into a small
 * block, with a tag in the 8 bytes before it that names the block.
 *
 * Locks.  The global heap_lock (in the file header) guards top, the free-run
 * list and every change of a run's kind or length.  Each of NARENAS arenas
 * has a robust lock of its own, guarding its per-class lists of SMALL
 * segments that are not full ("partial" lists) and the contents of the
 * segments it owns.  Lock order: arena, then global.  A thread allocates from
 * the arena it used last (a thread-local index, reset in forked children),
 * moving on to the next arena when trylock finds one busy, so threads and
 * processes spread over the arenas; a block is freed into the arena that
 * owns its segment.  An arena keeps at most one empty segment per class and
 * gives the others back to the free-run list.
 *
 * Invariants, and what a crash may leave.  The allocation bitmap of a SMALL
 * segment is the truth: a block is live iff its bit is set.  Writers order
 * their stores so that a process killed at any instruction leaves the heap
 * in one of these states, all harmless until repaired:
 *  - runs always tile segments 1 .. top-1: a split writes the tail's header
 *    before shrinking the head, a merge grows the head over the tail, top
 *    is raised only after the new run's header is written;
 *  - the chains (free-run list, partial lists) only hold members of the
 *    right kind: a segment leaves its partial list before it becomes FREE
 *    and joins it after it becomes SMALL; a run leaves the free-run list
 *    before it changes;
 *  - a FREE run may be missing from its list, a segment with room from its
 *    partial list; counters (used, free_segs, nempty) may be off, partial
 *    lists' prev links stale; a pending slot may name a block already freed.
 * Each lock has a busy flag (arena->busy, ctl->gbusy) that its holder sets
 * while it changes things; the walker checks the last group of invariants
 * only where the flag is clear.  The next holder of a lock whose holder died
 * gets EOWNERDEAD and repairs from the truth: the global part by walking the
 * runs (merging neighbouring FREE runs and relinking the free-run list), an
 * arena by walking the runs for its SMALL segments (recounting each from its
 * bitmap, after clearing the bits of its pending frees, and relinking the
 * partial lists).  At
 * most the block whose allocation was under way is leaked.  Damage no crash
 * can leave (run headers that do not tile) is not repaired: the lock is left
 * unrecoverable and every later call fails with ENOTRECOVERABLE.
 *
 * Cheap checks guard the writers too: a pointer to free must lie in a carved
 * segment with a valid header, be a block start (or a tagged interior
 * pointer) and have its bit set (double frees fail with EINVAL); a segment
 * whose count disagrees with its bitmap is recounted.  A writer follows or
 * writes through a partial-list link only after checking that it names a
 * carved SMALL segment of the arena and class with its class's exact
 * geometry (listed_ok()), that a head has no prev and that the neighbours
 * link back.  A list that fails these checks is rebuilt from the runs, as
 * after a crash, which leaves damaged segments off the lists for good (the
 * walker goes on reporting them); if it fails them again, or top is outside
 * the region, the call fails with ENOTRECOVERABLE.
 *
 * Blocks are found by scanning a segment's bitmap from a cursor, not by a
 * free list threaded through the blocks: allocating and freeing touch only
 * the segment's header and bitmap, never the block, so the atomic
 * instructions of the locks do not wait for a cache miss on it.  A small
 * block is freed without a lock: after checking it, the freer puts it in a
 * pending slot of its arena (CAS from 0), and the arena's next holder clears
 * its bit.  Only when the slots are full does a freer take the lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SEG_SHIFT 16
#define SEG ((uint64_t)1 << SEG_SHIFT)
#define HDR_SIZE ((uint64_t)sizeof(struct rszshm_hdr))
#define NARENAS 16u
#define NCLS 36u
#define SMALL_MAX 16384u
#define MAX_ALIGN (64u * 1024u)
#define NPENDING 8u

#define HEAP_MAGIC 0x50414548534d5352ULL	/* "RSMSHEAP" */
#define HEAP_VERSION 1u
#define SEG_MAGIC 0x21474553u			/* "SEG!" */
#define TAG_MAGIC 0x9e3779b97f4a7c15ULL		/* interior-pointer tags */

enum { K_FREE = 1, K_SMALL = 2, K_LARGE = 3 };

/* Ordered stores and loads: what a crash or another process may observe. */
#define PUT(lv, v) __atomic_store_n(&(lv), (v), __ATOMIC_RELEASE)
#define GET(lv) __atomic_load_n(&(lv), __ATOMIC_ACQUIRE)
#define RD(lv) __atomic_load_n(&(lv), __ATOMIC_RELAXED)

/* The header at the start of every run. */
struct seg {
	uint32_t magic;		/* SEG_MAGIC */
	uint8_t kind;		/* K_FREE, K_SMALL, K_LARGE */
	uint8_t arena;		/* SMALL: owning arena */
	uint8_t cls;		/* SMALL: size class */
	uint8_t listed;		/* SMALL: on its arena's partial list */
	uint32_t nsegs;		/* length of the run, in segments */
	uint32_t nblocks;	/* SMALL: blocks in the segment */
	uint32_t cursor;	/* SMALL: bitmap word where the last block was found */
	uint32_t used;		/* SMALL: live blocks (the bitmap is the truth) */
	uint32_t bsize;		/* SMALL: block size */
	uint32_t first;		/* SMALL: offset of block 0; LARGE: of the block */
	uint64_t spare1_;
	uint64_t next;		/* SMALL: partial list; FREE: free-run list */
	uint64_t prev;		/* SMALL: partial list */
	uint64_t spare_;
};
_Static_assert(sizeof(struct seg) == 64, "run headers are 64 bytes");
_Static_assert(SEG == RSZSHM__HEAP_BLOCKS_FROM, "blocks start past segment 0");
#define SEG_HDR ((uint64_t)sizeof(struct seg))

struct arena {
	pthread_mutex_t lock;
	uint32_t busy;			/* the holder is changing the arena */
	uint32_t nempty[NCLS];		/* listed segments with no live block */
	uint64_t partial[NCLS];		/* SMALL segments that are not full */
	/* Blocks freed without the lock, still live in their bitmaps: the
	 * next holder frees them.  Filled by CAS from 0, emptied by holders. */
	uint64_t pending[NPENDING] __attribute__((aligned(64)));
} __attribute__((aligned(64)));

struct ctl {
	/* Set at creation, read-only after. */
	uint64_t magic;
	uint32_t version;
	uint32_t seg_shift;
	uint32_t narenas;
	uint32_t nclasses;
	uint64_t spare0_[5];
	/* The global part, under shared->heap_lock. */
	uint64_t top __attribute__((aligned(64)));	/* first segment not carved */
	uint64_t free_runs;	/* first FREE run of the free-run list */
	uint64_t free_segs;	/* segments in listed FREE runs */
	uint64_t repairs;	/* locks found abandoned and repaired */
	uint32_t gbusy;		/* the heap_lock's holder is changing things */
	uint32_t merge_due;	/* runs were freed since the last merge */
	uint64_t spare1_[3];
	struct arena arenas[NARENAS];
};
_Static_assert(sizeof(struct rszshm_hdr) + sizeof(struct ctl) <= SEG,
	       "the control block fits segment 0");

/* Size classes: 16 .. 128 by 16, then four per doubling up to 16 KiB. */
#define C4(b) (b) * 5 / 4, (b) * 6 / 4, (b) * 7 / 4, (b) * 2
static const uint32_t cls_size[NCLS] = {
	16, 32, 48, 64, 80, 96, 112, 128,
	C4(128), C4(256), C4(512), C4(1024), C4(2048), C4(4096), C4(8192),
};
/* ceil(2^32 / size): (off * recip) >> 32 == off / size for off < 2^16. */
#define R1(d) (0xffffffffu / (d) + 1u)
#define R4(b) R1((b) * 5 / 4), R1((b) * 6 / 4), R1((b) * 7 / 4), R1((b) * 2)
static const uint32_t cls_recip[NCLS] = {
	R1(16), R1(32), R1(48), R1(64), R1(80), R1(96), R1(112), R1(128),
	R4(128), R4(256), R4(512), R4(1024), R4(2048), R4(4096), R4(8192),
};

static unsigned size_cls(size_t size)
{
	size_t n;
	unsigned b;

	if (size <= 128)
		return size ? (unsigned)(size - 1) >> 4 : 0;
	n = size - 1;
	b = 63u - (unsigned)__builtin_clzll(n);
	return 8u + (b - 7u) * 4u + (unsigned)((n >> (b - 2u)) & 3u);
}

/* Blocks of class @c in a segment, and where block 0 starts (after the
 * run header and a bitmap of one bit per block, 64-byte aligned). */
static void geom(unsigned c, uint32_t *nblocks, uint32_t *first)
{
	uint32_t bs = cls_size[c], n = (uint32_t)((SEG - SEG_HDR) / bs), f;

	for (;;) {
		f = ((uint32_t)SEG_HDR + (n + 63u) / 64u * 8u + 63u) & ~63u;
		if (f + (uint64_t)n * bs <= SEG)
			break;
		n--;
	}
	*nblocks = n;
	*first = f;
}

/* geom() of every class, filled in when the library is loaded: the exact
 * check of a SMALL header costs two compares on the allocation path. */
static struct {
	uint32_t nblocks, first;
} cls_geom[NCLS];

__attribute__((constructor)) static void geom_table(void)
{
	unsigned c;

	for (c = 0; c < NCLS; c++)
		geom(c, &cls_geom[c].nblocks, &cls_geom[c].first);
}

/* Has SMALL header @s the geometry of class @c (< NCLS)? */
static bool geom_ok(const struct seg *s, unsigned c)
{
	return s->bsize == cls_size[c] && s->nblocks == cls_geom[c].nblocks &&
	       s->first == cls_geom[c].first;
}

static uint64_t *bitmap(struct seg *s)
{
	return (uint64_t *)(void *)(s + 1);
}

static bool bit_get(struct seg *s, uint32_t i)
{
	return (RD(bitmap(s)[i / 64]) >> (i % 64)) & 1;
}

static void bit_put(struct seg *s, uint32_t i, bool on)
{
	uint64_t *w = &bitmap(s)[i / 64], m = (uint64_t)1 << (i % 64);

	PUT(*w, on ? RD(*w) | m : RD(*w) & ~m);
}

static uint64_t tag_of(uintptr_t blk, uintptr_t p)
{
	return (uint64_t)blk ^ (uint64_t)p ^ TAG_MAGIC;
}

static struct ctl *ctl_of(const struct rszshm *r)
{
	return (struct ctl *)(void *)((char *)r->hdr + HDR_SIZE);
}

static pthread_mutex_t *heap_lock(const struct rszshm *r)
{
	return &rszshm__shared(r->hdr)->heap_lock;
}

static struct seg *seg_at(const struct rszshm *r, uint64_t i)
{
	return (struct seg *)(void *)((char *)r->hdr + (i << SEG_SHIFT));
}

/* Segments the span can hold, for this handle. */
static uint64_t span_segs(const struct rszshm *r)
{
	uint64_t m = RD(r->hdr->max);

	if (m > r->max)
		m = r->max;
	return m >> SEG_SHIFT;
}

/*
 * Does a @top of carved segments lie inside the span and the file?  The
 * bound is rszshm__map_safe_len(): never past this handle's span (so never
 * into another region mapped after it) nor past the file's real end.
 */
static bool top_ok(struct rszshm *r, uint64_t top)
{
	return top == 1 ||
	       (top > 1 && top <= span_segs(r) && top << SEG_SHIFT <= rszshm__map_safe_len(r));
}

/*
 * Is @addr the start of a segment in 1 .. @top-1, with @top checked?  Every
 * segment address read from the region (list links, pending blocks, blocks
 * to free) passes this before it is followed.
 */
static bool seg_addr_ok(struct rszshm *r, uint64_t addr, uint64_t top)
{
	uint64_t off = addr - (uintptr_t)r->hdr;

	return addr > (uintptr_t)r->hdr && !(off & (SEG - 1)) && off >> SEG_SHIFT < top &&
	       top_ok(r, top);
}

/* 0 and the control block if @r is a usable heap region. */
static int get_ctl(struct rszshm *r, bool write, struct ctl **out)
{
	struct ctl *h;

	/* rszshm__map_usable(), inline: this is every call's fast path. */
	if (!r || !(r->flags & RSZSHM__F_ATTACHED) || !r->hdr)
		return -EINVAL;
	if (write && (r->flags & RSZSHM_RDONLY))
		return -EPERM;
	if (!(r->flags & RSZSHM_HEAP))
		return -EINVAL;
	h = ctl_of(r);
	if (RD(rszshm__shared(r->hdr)->heap) != (uintptr_t)h ||
	    rszshm__map_safe_len(r) < HDR_SIZE + sizeof(*h) || RD(h->magic) != HEAP_MAGIC)
		return -EBADMSG;
	*out = h;
	return 0;
}

/* The run header of block @p, or NULL if @p cannot be a block. */
static struct seg *locate(struct rszshm *r, struct ctl *h, uintptr_t p)
{
	uintptr_t base = (uintptr_t)r->hdr;
	uint64_t i;
	struct seg *s;

	if (p & (RSZSHM_ALIGN - 1) || p <= base + SEG)
		return NULL;
	i = (p - 1 - base) >> SEG_SHIFT;
	if (!seg_addr_ok(r, base + (i << SEG_SHIFT), GET(h->top)))
		return NULL;
	s = seg_at(r, i);
	return RD(s->magic) == SEG_MAGIC ? s : NULL;
}

/* Is @p waiting in arena @a's pending slots? */
static bool is_pending(struct arena *a, uintptr_t p)
{
	unsigned i;

	for (i = 0; i < NPENDING; i++)
		if (RD(a->pending[i]) == p)
			return true;
	return false;
}

/* ------------------------------------------------------- the global part */

/*
 * A run header at segment @i below @top that the tiling may rely on: its
 * length, or 0 if it is damaged.
 */
static uint64_t run_len(struct seg *s, uint64_t i, uint64_t top)
{
	uint64_t n = GET(s->nsegs);
	uint8_t k = GET(s->kind);

	if (RD(s->magic) != SEG_MAGIC || n == 0 || n > top - i ||
	    (k != K_FREE && k != K_SMALL && k != K_LARGE) || (k == K_SMALL && n != 1))
		return 0;
	return n;
}

/*
 * Under the heap lock: merge neighbouring FREE runs and relink them all, in
 * address order, on the free-run list.  The repair of the global part, and
 * the cure for a fragmented or damaged list.
 */
static int runs_rebuild(struct rszshm *r, struct ctl *h)
{
	uint64_t i, n, top = RD(h->top), nfree = 0, *tail = &h->free_runs;
	struct seg *s, *open = NULL;

	if (!top_ok(r, top))
		return -ENOTRECOVERABLE;
	PUT(h->free_runs, 0);
	for (i = 1; i < top; i += n) {
		s = seg_at(r, i);
		if ((n = run_len(s, i, top)) == 0)
			return -ENOTRECOVERABLE;
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

static int global_lock(struct rszshm *r, struct ctl *h)
{
	pthread_mutex_t *m = heap_lock(r);
	int rc = rszshm__lock(m);

	if (rc < 0)
		return rc;
	if (rc == 1) {
		PUT(h->gbusy, 1);
		if ((rc = runs_rebuild(r, h)) < 0) {
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

static void global_unlock(struct rszshm *r, struct ctl *h)
{
	PUT(h->gbusy, 0);
	rszshm__unlock(heap_lock(r));
}

/* global_lock(), and the heap's top, checked: ENOTRECOVERABLE (unlocked)
 * when it is outside the region. */
static int global_lock_top(struct rszshm *r, struct ctl *h, uint64_t *top)
{
	int rc;

	if ((rc = global_lock(r, h)) < 0)
		return rc;
	*top = RD(h->top);
	if (!top_ok(r, *top)) {
		global_unlock(r, h);
		return -ENOTRECOVERABLE;
	}
	return 0;
}


/* Under the heap lock: put run @s on the free-run list. */
static void run_release(struct ctl *h, struct seg *s)
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
		if (run_len(s, off >> SEG_SHIFT, top) == 0 || s->kind != K_FREE)
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
static int run_take(struct rszshm *r, struct ctl *h, uint64_t n, struct seg **out)
{
	uint64_t top, max = span_segs(r), want;
	struct seg *s;
	int rc, pass;

	for (pass = 0; pass < 3; pass++) {
		if ((rc = run_fit(r, h, n, out)) == 1)
			return 0;
		if (rc == 0 && (!h->merge_due || h->free_segs < n))
			break;
		if ((rc = runs_rebuild(r, h)) < 0)
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

/* ------------------------------------------------------------- arenas */

/*
 * Is @cur a plausible partial-list member of arena @ai, class @c: a listed
 * SMALL segment below top whose geometry is its class's, so that its
 * bitmap and blocks lie inside it?
 */
static bool listed_ok(struct rszshm *r, struct ctl *h, uint64_t cur, unsigned ai, unsigned c)
{
	struct seg *s = (struct seg *)(uintptr_t)cur;

	return seg_addr_ok(r, cur, RD(h->top)) && s->magic == SEG_MAGIC && s->kind == K_SMALL && s->arena == ai && s->cls == c &&
	       s->nsegs == 1 && s->listed && geom_ok(s, c);
}

/*
 * Under arena @ai's lock: put SMALL segment @s (sane) at the head of its
 * list.  false, with nothing written, if the head is damaged.
 */
static bool list_push(struct rszshm *r, struct ctl *h, unsigned ai, struct seg *s)
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

/* A SMALL header whose geometry matches its class (safe to rebuild). */
static bool seg_sane(struct seg *s)
{
	return s->magic == SEG_MAGIC && s->kind == K_SMALL && s->cls < NCLS &&
	       s->arena < NARENAS && s->nsegs == 1 && geom_ok(s, s->cls);
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

/* Index of block @p of SMALL segment @s, if @p is a block start. */
static bool block_index(struct seg *s, uintptr_t p, uint32_t *idx)
{
	uintptr_t b0 = (uintptr_t)s + s->first;
	uint64_t off;
	uint32_t i;

	if (p < b0 || (off = p - b0) >= (uint64_t)s->nblocks * s->bsize)
		return false;
	i = (uint32_t)((off * cls_recip[s->cls]) >> 32);
	*idx = i;
	return (uint64_t)i * s->bsize == off;
}

/* Recount a SMALL segment from its bitmap (bits past the last block cleared). */
static void seg_rebuild(struct seg *s)
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

/*
 * Under arena @ai's lock, after its holder died: rebuild the arena from its
 * segments.  Takes the heap lock, so the runs hold still.
 */
static int arena_rebuild(struct rszshm *r, struct ctl *h, unsigned ai)
{
	struct arena *a = &h->arenas[ai];
	uint64_t i, n, top;
	struct seg *s;
	unsigned c;
	int rc;

	if ((rc = global_lock_top(r, h, &top)) < 0)
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
		if (s && s->kind == K_SMALL && s->arena == ai && seg_sane(s) &&
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
		if ((n = run_len(s, i, top)) == 0) {
			rc = -ENOTRECOVERABLE;
			break;
		}
		if (s->kind != K_SMALL || s->arena != ai)
			continue;
		if (!seg_sane(s)) {
			/* Never allocate from a damaged segment again. */
			s->listed = 0;
			continue;
		}
		seg_rebuild(s);
		if (s->used < s->nblocks) {
			/* Onto a list this loop made: fails only if another
			 * process writes over the arena meanwhile. */
			if (!list_push(r, h, ai, s)) {
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
	global_unlock(r, h);
	return rc;
}

static int arena_take(struct rszshm *r, struct ctl *h, unsigned ai, bool try)
{
	struct arena *a = &h->arenas[ai];
	int rc = try ? rszshm__trylock(&a->lock) : rszshm__lock(&a->lock);

	if (rc < 0)
		return rc;
	if (rc == 1) {
		PUT(a->busy, 1);
		if ((rc = arena_rebuild(r, h, ai)) < 0 ||
		    (rc = rszshm__lock_consistent(&a->lock)) < 0) {
			rszshm__unlock(&a->lock);
			return rc;
		}
	}
	PUT(a->busy, 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	return 0;
}

static void arena_drop(struct ctl *h, unsigned ai)
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
		if ((rc = arena_take(r, h, i, true)) == -EBUSY)
			continue;
		if (rc == 0) {
			mine.arena = i;
			*out = i;
		}
		return rc;
	}
	if ((rc = arena_take(r, h, mine.arena, false)) == 0)
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
	if ((rc = global_lock_top(r, h, &top)) < 0)
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
			run_release(h, s);
			freed++;
		}
	}
	global_unlock(r, h);
	if (!bad)
		return freed;
	if (rebuilt)
		return -ENOTRECOVERABLE;
	if ((rc = arena_rebuild(r, h, ai)) < 0)
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
		if ((rc = global_lock(r, h)) < 0)
			return rc;
		if ((rc = run_take(r, h, 1, &s)) == 0) {
			geom(c, &nb, &first);
			s->arena = (uint8_t)ai;
			s->cls = (uint8_t)c;
			s->listed = 0;
			s->nblocks = nb;
			s->cursor = 0;
			s->used = 0;
			s->bsize = cls_size[c];
			s->first = first;
			s->next = 0;
			s->prev = 0;
			memset(s + 1, 0, first - SEG_HDR);
			PUT(s->kind, K_SMALL);
		}
		global_unlock(r, h);
		if (rc == -ENOMEM && tries == 0 && (rc = arena_reclaim(r, h, ai)) >= 0) {
			if (rc > 0)
				continue;
			rc = -ENOMEM;
		}
		if (rc < 0)
			return rc;
		if (!list_push(r, h, ai, s))
			return arena_rebuild(r, h, ai);	/* which lists @s */
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
			seg_rebuild(s);
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
		if (repairs++ || (rc = arena_rebuild(r, h, ai)) < 0) {
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
		seg_rebuild(s);
		return 0;
	}
	if (global_lock(r, h) < 0) {
		a->nempty[s->cls]++;
		return 0;
	}
	if ((unlinked = list_unlink(r, h, ai, s)))
		run_release(h, s);
	global_unlock(r, h);
	return unlinked ? 0 : arena_rebuild(r, h, ai);
}

/* Under arena @ai's lock: free block @p of SMALL segment @s. */
static int small_put(struct rszshm *r, struct ctl *h, unsigned ai, struct seg *s, uintptr_t p)
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
		idx = (uint32_t)(((uint64_t)(p - b0) * cls_recip[s->cls]) >> 32);
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
	if (!s->listed && !list_push(r, h, ai, s))
		return arena_rebuild(r, h, ai);	/* which lists @s */
	if (s->used == 0)
		return seg_emptied(r, h, ai, s);
	return 0;
}

/* Under arena @ai's lock: free the blocks freed into its pending slots. */
static void arena_drain(struct rszshm *r, struct ctl *h, unsigned ai)
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
			small_put(r, h, ai, s, v);
		PUT(a->pending[i], 0);
	}
}

static void *small_alloc(struct rszshm *r, struct ctl *h, unsigned c, int *err)
{
	unsigned ai = 0;
	uintptr_t blk;
	int rc;

	if ((rc = arena_pick(r, h, &ai)) < 0) {
		*err = rc;
		return NULL;
	}
	arena_drain(r, h, ai);
	blk = small_take(r, h, ai, c, err);
	arena_drop(h, ai);
	return (void *)blk;
}

/*
 * Free block @p of SMALL segment @s without a lock: check it, then leave it
 * in a pending slot of its arena.  1 if done, 0 if the caller must take
 * the lock (no free slot, or an interior pointer), or -EINVAL.
 */
static int small_defer(struct ctl *h, struct seg *s, uintptr_t p)
{
	unsigned ai = RD(s->arena), c = RD(s->cls), i;
	uint32_t bs = RD(s->bsize), first = RD(s->first), nb = RD(s->nblocks), idx;
	uintptr_t b0 = (uintptr_t)s + first;
	struct arena *a;
	uint64_t off, zero;

	if (ai >= NARENAS || c >= NCLS || bs != cls_size[c] || first < SEG_HDR ||
	    nb > SEG / 16 || p < b0 || (off = p - b0) >= (uint64_t)nb * bs)
		return -EINVAL;
	idx = (uint32_t)((off * cls_recip[c]) >> 32);
	if ((uint64_t)idx * bs != off)
		return 0;
	a = &h->arenas[ai];
	if (!bit_get(s, idx) || is_pending(a, p))
		return -EINVAL;
	for (i = 0; i < NPENDING; i++) {
		zero = 0;
		if (RD(a->pending[i]) == 0 &&
		    __atomic_compare_exchange_n(&a->pending[i], &zero, (uint64_t)p, false,
						__ATOMIC_RELEASE, __ATOMIC_RELAXED))
			return 1;
	}
	return 0;
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
	if ((rc = global_lock(r, h)) < 0) {
		*err = rc;
		return NULL;
	}
	if ((rc = run_take(r, h, n, &s)) == 0) {
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
	global_unlock(r, h);
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

	if (!top_ok(r, top) || i == 0 || i >= top || (n = run_len(s, i, top)) == 0 ||
	    first < SEG_HDR || first > SEG || first % RSZSHM_ALIGN || first >= n << SEG_SHIFT)
		return 0;
	return (n << SEG_SHIFT) - first;
}

static int large_free(struct rszshm *r, struct ctl *h, struct seg *s, uintptr_t p)
{
	uint64_t top;
	int rc;

	if ((rc = global_lock_top(r, h, &top)) < 0)
		return rc;
	if (s->kind != K_LARGE || p != (uintptr_t)s + s->first)
		rc = -EINVAL;
	else if (large_room(r, s, top) == 0)
		rc = -EBADMSG;
	else
		run_release(h, s);
	global_unlock(r, h);
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
		idx = (uint32_t)(((uint64_t)(p - b0) * cls_recip[c]) >> 32);
		blk = b0 + (uintptr_t)idx * bs;
		if (blk != p && *(const uint64_t *)(p - 8) != tag_of(blk, p))
			return 0;
		if (!bit_get(s, idx) || RD(s->arena) >= NARENAS ||
		    is_pending(&h->arenas[RD(s->arena)], p))
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
	uintptr_t blk, p;

	/* A block of 0 bytes is a block of 1: with size 0 an aligned block
	 * could round up to the first byte after it, its neighbour's start. */
	if (size == 0)
		size = 1;
	if (align <= RSZSHM_ALIGN) {
		if (size <= SMALL_MAX)
			return small_alloc(r, h, size_cls(size), err);
		return large_alloc(r, h, size, RSZSHM_ALIGN, err);
	}
	if (align - RSZSHM_ALIGN < SMALL_MAX && size <= SMALL_MAX - (align - RSZSHM_ALIGN)) {
		blk = (uintptr_t)small_alloc(r, h, size_cls(size + align - RSZSHM_ALIGN), err);
		if (!blk)
			return NULL;
		p = (blk + align - 1) & ~(uintptr_t)(align - 1);
		if (p != blk)
			*(uint64_t *)(p - 8) = tag_of(blk, p);
		return (void *)p;
	}
	return large_alloc(r, h, size, align, err);
}

static int free_in(struct rszshm *r, struct ctl *h, uintptr_t p)
{
	struct seg *s = locate(r, h, p);
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
		if ((rc = small_defer(h, s, p)) != 0)
			return rc < 0 ? rc : 0;
		if ((ai = RD(s->arena)) >= NARENAS)
			return -EINVAL;
		if ((rc = arena_take(r, h, ai, false)) < 0)
			return rc;
		/* Only the owner can change a SMALL segment: check again, locked. */
		if (s->kind == K_SMALL && s->arena == ai) {
			arena_drain(r, h, ai);
			rc = small_put(r, h, ai, s, p);
			arena_drop(h, ai);
			return rc;
		}
		arena_drop(h, ai);
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
	for (i = 0; i < NARENAS; i++)
		if ((rc = rszshm__lock_init(&h->arenas[i].lock)) < 0)
			return rc;
	PUT(h->magic, HEAP_MAGIC);
	PUT(rszshm__shared(r->hdr)->heap, (uint64_t)(uintptr_t)h);
	return 0;
}

void *rszshm__heap_alloc(struct rszshm *r, size_t size, int *err)
{
	struct ctl *h;
	int rc;

	if ((rc = get_ctl(r, true, &h)) < 0) {
		*err = rc;
		return NULL;
	}
	return alloc_in(r, h, size, RSZSHM_ALIGN, err);
}

int rszshm__heap_free(struct rszshm *r, void *p)
{
	struct ctl *h;
	int rc;

	if ((rc = get_ctl(r, true, &h)) < 0)
		return rc;
	return p ? free_in(r, h, (uintptr_t)p) : 0;
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

void *rszshm_alloc(struct rszshm *r, size_t size)
{
	int err = 0;
	void *p = rszshm__heap_alloc(r, size, &err);

	return p ? p : RSZSHM__FAIL(err, NULL);
}

void *rszshm_zalloc(struct rszshm *r, size_t size)
{
	void *p = rszshm_alloc(r, size);

	if (p)
		memset(p, 0, size);
	return p;
}

void *rszshm_alloc_aligned(struct rszshm *r, size_t align, size_t size)
{
	struct ctl *h;
	int err;
	void *p;

	if ((err = get_ctl(r, true, &h)) < 0)
		return RSZSHM__FAIL(err, NULL);
	if (align == 0 || (align & (align - 1)) || align > MAX_ALIGN)
		return RSZSHM__FAIL(-EINVAL, NULL);
	p = alloc_in(r, h, size, align < RSZSHM_ALIGN ? RSZSHM_ALIGN : align, &err);
	return p ? p : RSZSHM__FAIL(err, NULL);
}

void *rszshm_realloc(struct rszshm *r, void *p, size_t size)
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
	if (!(q = alloc_in(r, h, size, RSZSHM_ALIGN, &err)))
		return RSZSHM__FAIL(err, NULL);
	memcpy(q, p, size < have ? size : have);
	if ((err = free_in(r, h, (uintptr_t)p)) < 0) {
		free_in(r, h, (uintptr_t)q);
		return RSZSHM__FAIL(err, NULL);
	}
	return q;
}

int rszshm_dealloc(struct rszshm *r, void *p)
{
	int rc = rszshm__heap_free(r, p);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

size_t rszshm_usable_size(struct rszshm *r, const void *p)
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

/* -------------------------------------------------------------- walker */

struct walk {
	const struct rszshm__view *v;
	const struct ctl *c;
	struct rszshm_stats *st;
	char *msg;
	size_t msglen;
	uint64_t top;
	uint64_t *runs;			/* bit i: a run starts at segment i */
	uint64_t *seen;			/* bit i: met on a list */
	uint64_t nfree;			/* FREE runs */
	uint64_t free_segs;		/* segments in them */
	uint64_t nsmall;		/* SMALL segments */
	bool busy[NARENAS], gbusy;
	uint64_t nonfull[NARENAS];	/* SMALL segments with room, per arena */
	uint32_t empty[NARENAS][NCLS];	/* ... and with no live block */
};

__attribute__((format(printf, 2, 3)))
static int damaged(struct walk *w, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (w->msg && w->msglen) {
		n = snprintf(w->msg, w->msglen, "heap: ");
		if (n < 0 || (size_t)n >= w->msglen)
			return 1;
		va_start(ap, fmt);
		vsnprintf(w->msg + n, w->msglen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return 1;
}

static bool bit_test(const uint64_t *m, uint64_t i)
{
	return (m[i / 64] >> (i % 64)) & 1;
}

static void bit_mark(uint64_t *m, uint64_t i)
{
	m[i / 64] |= (uint64_t)1 << (i % 64);
}

static const struct seg *wseg(const struct walk *w, uint64_t i)
{
	return rszshm__view_ptr(w->v, w->v->base + (i << SEG_SHIFT), SEG_HDR);
}

/* A SMALL segment: its geometry and bitmap. */
static int walk_small(struct walk *w, uint64_t i, const struct seg *s)
{
	uint64_t a = w->v->base + (i << SEG_SHIFT), live = 0, bits;
	uint32_t nb, first, bsize, words, k, used;
	unsigned c = RD(s->cls), ai = RD(s->arena);
	const uint64_t *bm;
	bool quiet;

	if (ai >= NARENAS || c >= NCLS)
		return damaged(w, "segment %" PRIu64 ": arena %u or class %u out of range", i, ai, c);
	quiet = !w->busy[ai];
	bsize = RD(s->bsize);
	geom(c, &nb, &first);
	if (bsize != cls_size[c] || RD(s->nblocks) != nb || RD(s->first) != first)
		return damaged(w, "segment %" PRIu64 ": geometry does not match class %u", i, c);
	words = (nb + 63) / 64;
	if (RD(s->cursor) >= words)
		return damaged(w, "segment %" PRIu64 ": cursor past the bitmap", i);
	if (!(bm = rszshm__view_ptr(w->v, a + SEG_HDR, (uint64_t)words * 8)))
		return damaged(w, "segment %" PRIu64 ": bitmap past the end", i);
	for (k = 0; k < words; k++) {
		bits = RD(bm[k]);
		if (nb - k * 64 < 64 && bits >> (nb - k * 64))
			return damaged(w, "segment %" PRIu64 ": bits set past the last block", i);
		live += (uint64_t)__builtin_popcountll(bits);
	}
	used = RD(s->used);
	if (quiet && used != live)
		return damaged(w, "segment %" PRIu64 ": counts %u live blocks, bitmap %" PRIu64, i,
			       used, live);
	if (quiet && RD(s->listed) != (live < nb))
		return damaged(w, "segment %" PRIu64 ": listed flag is wrong", i);
	if (live < nb) {
		w->nonfull[ai]++;
		if (live == 0)
			w->empty[ai][c]++;
	}
	w->nsmall++;
	w->st->blocks += live;
	w->st->used_bytes += live * bsize;
	w->st->free_bytes += (nb - live) * bsize;
	if (live < nb && bsize > w->st->largest_free_bytes)
		w->st->largest_free_bytes = bsize;
	return 0;
}

/* The runs, from segment 1 to top. */
static int walk_runs(struct walk *w)
{
	uint64_t i, n, big;
	const struct seg *s;
	uint32_t first;
	int rc;

	for (i = 1; i < w->top; i += n) {
		if (!(s = wseg(w, i)))
			return damaged(w, "segment %" PRIu64 " is past the end", i);
		n = RD(s->nsegs);
		if (RD(s->magic) != SEG_MAGIC)
			return damaged(w, "segment %" PRIu64 ": bad run header magic", i);
		if (n == 0 || n > w->top - i)
			return damaged(w, "segment %" PRIu64 ": run length %" PRIu64 " breaks the tiling",
				       i, n);
		bit_mark(w->runs, i);
		switch (RD(s->kind)) {
		case K_FREE:
			w->nfree++;
			w->free_segs += n;
			w->st->free_bytes += n << SEG_SHIFT;
			big = (n << SEG_SHIFT) - SEG_HDR;
			if (big > w->st->largest_free_bytes)
				w->st->largest_free_bytes = big;
			break;
		case K_SMALL:
			if (n != 1)
				return damaged(w, "segment %" PRIu64 ": small run of %" PRIu64 " segments",
					       i, n);
			if ((rc = walk_small(w, i, s)) != 0)
				return rc;
			break;
		case K_LARGE:
			first = RD(s->first);
			if (first < SEG_HDR || first % RSZSHM_ALIGN || first > SEG ||
			    first >= n << SEG_SHIFT)
				return damaged(w, "segment %" PRIu64 ": large block offset %u", i, first);
			w->st->blocks++;
			w->st->used_bytes += (n << SEG_SHIFT) - first;
			break;
		default:
			return damaged(w, "segment %" PRIu64 ": unknown run kind %u", i, RD(s->kind));
		}
	}
	return 0;
}

/* Is @addr the start of a run? Its segment index in *i. */
static bool run_start(const struct walk *w, uint64_t addr, uint64_t *i)
{
	uint64_t off = addr - w->v->base;

	if (addr < w->v->base || off & (SEG - 1) || off >> SEG_SHIFT >= w->top)
		return false;
	*i = off >> SEG_SHIFT;
	return bit_test(w->runs, *i);
}

static int walk_free_list(struct walk *w)
{
	uint64_t cur, i, n = 0, segs = 0;
	const struct seg *s;

	for (cur = RD(w->c->free_runs); cur; cur = RD(s->next)) {
		if (!run_start(w, cur, &i))
			return damaged(w, "free-run list holds 0x%" PRIx64 ", not a run", cur);
		s = wseg(w, i);
		if (RD(s->kind) != K_FREE)
			return damaged(w, "free-run list holds segment %" PRIu64 ", not free", i);
		if (bit_test(w->seen, i))
			return damaged(w, "free-run list loops at segment %" PRIu64, i);
		bit_mark(w->seen, i);
		n++;
		segs += RD(s->nsegs);
	}
	if (!w->gbusy && n != w->nfree)
		return damaged(w, "%" PRIu64 " free runs missing from the free-run list",
			       w->nfree - n);
	if (!w->gbusy && segs != RD(w->c->free_segs))
		return damaged(w, "free-run list counts %" PRIu64 " segments, holds %" PRIu64,
			       RD(w->c->free_segs), segs);
	return 0;
}

/* Blocks freed into arena @ai's pending slots: free, though live in bitmaps. */
static int walk_pending(struct walk *w, unsigned ai)
{
	const struct arena *a = &w->c->arenas[ai];
	uint64_t v, i, off, b0, idx;
	const uint64_t *word;
	const struct seg *s;
	unsigned k, j;
	uint32_t bs, c;

	for (k = 0; k < NPENDING; k++) {
		if ((v = RD(a->pending[k])) == 0)
			continue;
		for (j = 0; j < k; j++)
			if (RD(a->pending[j]) == v)
				return damaged(w, "arena %u: block 0x%" PRIx64 " pending twice", ai, v);
		if (v <= w->v->base || !run_start(w, w->v->base + ((v - 1 - w->v->base) & ~(SEG - 1)), &i))
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not in a run", ai, v);
		s = wseg(w, i);
		if (RD(s->kind) != K_SMALL || RD(s->arena) != ai)
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not a block of the arena",
				       ai, v);
		/* Read the geometry again: walk_small() checked it, but on a
		 * region in use the segment may have been reused since. */
		c = RD(s->cls);
		bs = RD(s->bsize);
		if (c >= NCLS || bs != cls_size[c]) {
			if (w->busy[ai])
				continue;	/* its segment is being reused */
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is in a segment of no class",
				       ai, v);
		}
		b0 = w->v->base + (i << SEG_SHIFT) + RD(s->first);
		if (v < b0 || (off = v - b0) % bs || (idx = off / bs) >= RD(s->nblocks))
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not a block start", ai, v);
		word = rszshm__view_ptr(w->v, w->v->base + (i << SEG_SHIFT) + SEG_HDR + idx / 64 * 8, 8);
		if (!word || !((RD(*word) >> (idx % 64)) & 1)) {
			if (w->busy[ai])
				continue;	/* its free was under way */
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not live", ai, v);
		}
		w->st->blocks--;
		w->st->used_bytes -= bs;
		w->st->free_bytes += bs;
	}
	return 0;
}

static int walk_partial(struct walk *w, unsigned ai)
{
	const struct arena *a = &w->c->arenas[ai];
	uint64_t cur, prev, i, n = 0, empty;
	const struct seg *s;
	unsigned c;
	bool quiet = !w->busy[ai];

	for (c = 0; c < NCLS; c++) {
		empty = 0;
		for (prev = 0, cur = RD(a->partial[c]); cur; prev = cur, cur = RD(s->next)) {
			if (!run_start(w, cur, &i))
				return damaged(w, "arena %u class %u: list holds 0x%" PRIx64 ", not a run",
					       ai, c, cur);
			s = wseg(w, i);
			if (RD(s->kind) != K_SMALL || RD(s->arena) != ai || RD(s->cls) != c)
				return damaged(w, "arena %u class %u: list holds segment %" PRIu64
					       " of another kind, arena or class", ai, c, i);
			if (bit_test(w->seen, i))
				return damaged(w, "arena %u class %u: list loops at segment %" PRIu64,
					       ai, c, i);
			bit_mark(w->seen, i);
			n++;
			if (!quiet)
				continue;
			if (RD(s->prev) != prev || !RD(s->listed))
				return damaged(w, "arena %u class %u: segment %" PRIu64
					       " has a stale link", ai, c, i);
			if (RD(s->used) >= RD(s->nblocks))
				return damaged(w, "arena %u class %u: full segment %" PRIu64 " listed",
					       ai, c, i);
			if (RD(s->used) == 0)
				empty++;
		}
		if (quiet && (empty != w->empty[ai][c] || RD(a->nempty[c]) != empty))
			return damaged(w, "arena %u class %u: counts %u empty segments, holds %" PRIu64,
				       ai, c, RD(a->nempty[c]), empty);
	}
	if (quiet && n != w->nonfull[ai])
		return damaged(w, "arena %u: %" PRIu64 " segments with room are not listed", ai,
			       w->nonfull[ai] - n);
	return 0;
}

int rszshm__heap_walk(const struct rszshm__view *v, struct rszshm_stats *st, char *msg,
		      size_t msglen)
{
	const struct rszshm_hdr *hd = rszshm__view_hdr(v);
	uint64_t addr, flen, tail, words;
	struct walk *w;
	unsigned i;
	int rc;

	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->v = v;
	w->st = st;
	w->msg = msg;
	w->msglen = msglen;
	flen = RD(hd->flen) < v->len ? RD(hd->flen) : v->len;
	addr = RD(rszshm__shared(hd)->heap);
	if (addr != v->base + HDR_SIZE ||
	    !(w->c = rszshm__view_ptr(v, addr, sizeof(struct ctl)))) {
		rc = damaged(w, "control block missing or misplaced (0x%" PRIx64 ")", addr);
		goto out;
	}
	if (RD(w->c->magic) != HEAP_MAGIC || RD(w->c->version) != HEAP_VERSION ||
	    RD(w->c->seg_shift) != SEG_SHIFT || RD(w->c->narenas) != NARENAS ||
	    RD(w->c->nclasses) != NCLS) {
		rc = damaged(w, "control block has a bad magic, version or geometry");
		goto out;
	}
	w->top = RD(w->c->top);
	/* Segment 0 may be partly in the file; the others are whole. */
	if (w->top < 1 || (w->top > 1 && w->top > flen >> SEG_SHIFT)) {
		rc = damaged(w, "top %" PRIu64 " is outside the region", w->top);
		goto out;
	}
	words = (w->top + 63) / 64;
	w->runs = calloc(words, sizeof(uint64_t));
	w->seen = calloc(words, sizeof(uint64_t));
	if (!w->runs || !w->seen) {
		rc = -ENOMEM;
		goto out;
	}
	w->gbusy = RD(w->c->gbusy) != 0;
	for (i = 0; i < NARENAS; i++)
		w->busy[i] = RD(w->c->arenas[i].busy) != 0;

	if ((rc = walk_runs(w)) != 0 || (rc = walk_free_list(w)) != 0)
		goto out;
	for (i = 0; i < NARENAS; i++)
		if ((rc = walk_partial(w, i)) != 0 || (rc = walk_pending(w, i)) != 0)
			goto out;
	/* Segments in the file but not carved yet. */
	tail = flen >> SEG_SHIFT > w->top ? (flen >> SEG_SHIFT) - w->top : 0;
	if (tail) {
		st->free_bytes += tail << SEG_SHIFT;
		if ((tail << SEG_SHIFT) - SEG_HDR > st->largest_free_bytes)
			st->largest_free_bytes = (tail << SEG_SHIFT) - SEG_HDR;
	}
out:
	free(w->runs);
	free(w->seen);
	free(w);
	return rc;
}
