/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap.h - what the heap's files share: the layout of a RSZSHM_HEAP region's
 * allocator, all its state inside the region, and the checks every writer
 * applies before it follows a pointer read from it.
 *
 * The files, each one concern (in the spirit of mimalloc's segment.c,
 * page.c, alloc.c and free.c), each calling only those above it here:
 *   seg.c    size classes and the global part: segments, runs, the
 *            free-run list, the heap lock, carving at the top, the SLOTS
 *            runs' check; rebuilding the global part (after the heap
 *            lock's holder died) and one segment's counts from the truth
 *   arena.c  arenas and small blocks: partial lists, arena locks, taking
 *            and freeing a block, pending frees, refill and flush of a
 *            thread's cache, rebuilding an arena after its holder died
 *   own.c    thread slots: claim, owners, adoption of dead owners'
 *            caches, giving slots back at thread exit and detach
 *   heap.c   the public calls: the cache's fast path and the double-free
 *            mark, large runs, checks of a block to free, the heap's making
 *   walk.c   the read-only, bounded walker behind rszshm_check() and
 *            rszshm_stats(), reading seg.c's tables only
 * Fast-path helpers are static inline here, so that splitting the files
 * costs the allocation path no call.
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
 *   SLOTS  one segment of thread slots (struct tslot), named by
 *          ctl->slot_runs; made on first need, never taken back
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
 * Thread caches.  A thread allocating or freeing a block of a class up to
 * 1 KiB uses its slot (own.c): entries 0 .. n-1 of a class are free
 * blocks whose bits stay set; a pop and a push are two plain stores each,
 * ordered so a kill leaves at most the one block in motion lost.  A cached
 * or pending block carries ctl->key in its second word, so a double free of
 * one is found by a scan that only a marked block costs.  Refill and flush
 * move blocks under one arena lock, through small_take()/small_put().
 *
 * Blocks are found by scanning a segment's bitmap from a cursor, not by a
 * free list threaded through the blocks: allocating and freeing touch only
 * the segment's header and bitmap, never the block, so the atomic
 * instructions of the locks do not wait for a cache miss on it.  A small
 * block is freed without a lock: after checking it, the freer puts it in a
 * pending slot of its arena (CAS from 0), and the arena's next holder clears
 * its bit.  Only when the slots are full does a freer take the lock.
 */
#ifndef RSZSHM_HEAP_H
#define RSZSHM_HEAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define SEG_SHIFT 16
#define SEG ((uint64_t)1 << SEG_SHIFT)
#define HDR_SIZE ((uint64_t)sizeof(struct rszshm_hdr))
#define NARENAS 16u
#define NCLS 36u
#define SMALL_MAX 16384u
#define MAX_ALIGN (64u * 1024u)
#define NPENDING 8u
#define NCACHE 20u		/* classes a thread caches: 16 B .. 1 KiB */
#define CACHE_CAP 16u		/* blocks a thread caches per class */
#define CACHE_MOVE 8u		/* blocks moved per refill or flush */
#define NSLOTRUNS 4u		/* runs of thread slots a heap may have */
#define OWNER_TID_BITS 22u	/* pid_max is at most 2^22 */

#define HEAP_MAGIC 0x50414548534d5352ULL	/* "RSMSHEAP" */
#define HEAP_VERSION 2u
#define SEG_MAGIC 0x21474553u			/* "SEG!" */
#define TAG_MAGIC 0x9e3779b97f4a7c15ULL		/* interior-pointer tags */

enum { K_FREE = 1, K_SMALL = 2, K_LARGE = 3, K_SLOTS = 4 };

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
	uint64_t key;		/* marks blocks in thread caches (own.c) */
	/* SLOTS runs of thread slots, published under the heap lock, never
	 * taken back (own.c). */
	uint64_t slot_runs[NSLOTRUNS];
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
_Static_assert(sizeof(struct rszshm_hdr) + sizeof(struct ctl) <= RSZSHM__REC_ROOT_OFF,
	       "the control block fits segment 0, before the record index's root");

/*
 * A thread slot (own.c): the blocks one thread keeps free for itself,
 * per cached class, taken and given with plain loads and stores.  Entries
 * 0 .. n[c]-1 of blk[c] are free blocks of class c whose bits are set: the
 * owner stores an entry before it raises n, and lowers n before it hands
 * the entry out or gives it back to its arena.  Owned by the thread named
 * in @owner (tid | start time << 22, 0 when free), adopted when it is dead.
 */
struct tslot {
	uint64_t owner;
	uint64_t adoptions;		/* dead owners' caches taken over here */
	uint32_t n[NCACHE];
	uint64_t blk[NCACHE][CACHE_CAP];
} __attribute__((aligned(64)));
#define SLOTS_PER_RUN ((uint32_t)((SEG - 64) / sizeof(struct tslot)))
_Static_assert(SLOTS_PER_RUN >= 16, "a SLOTS run holds enough slots");
/* Slot @k of SLOTS run @s: after the run header, 64-byte aligned. */
static inline struct tslot *slot_at(void *run, uint32_t k)
{
	return (struct tslot *)(void *)((char *)run + 64 + (uint64_t)k * sizeof(struct tslot));
}

/* Size classes (seg.c): block sizes, ceil(2^32 / size) for divisions,
 * and each class's geometry in a segment, filled in at load time. */
RSZSHM__INTERNAL extern const uint32_t rszshm__heap_cls_size[NCLS];
RSZSHM__INTERNAL extern const uint32_t rszshm__heap_cls_recip[NCLS];
struct rszshm__heap_geom {
	uint32_t nblocks, first;
};
RSZSHM__INTERNAL extern struct rszshm__heap_geom rszshm__heap_cls_geom[NCLS];
/* Blocks of class @c in a segment, and where block 0 starts (after the
 * run header and a bitmap of one bit per block, 64-byte aligned). */
RSZSHM__INTERNAL void rszshm__heap_geom(unsigned c, uint32_t *nblocks, uint32_t *first);

static inline unsigned size_cls(size_t size)
{
	size_t n;
	unsigned b;

	if (size <= 128)
		return size ? (unsigned)(size - 1) >> 4 : 0;
	n = size - 1;
	b = 63u - (unsigned)__builtin_clzll(n);
	return 8u + (b - 7u) * 4u + (unsigned)((n >> (b - 2u)) & 3u);
}

/* Has SMALL header @s the geometry of class @c (< NCLS)? */
static inline bool geom_ok(const struct seg *s, unsigned c)
{
	return s->bsize == rszshm__heap_cls_size[c] && s->nblocks == rszshm__heap_cls_geom[c].nblocks &&
	       s->first == rszshm__heap_cls_geom[c].first;
}

static inline uint64_t *bitmap(struct seg *s)
{
	return (uint64_t *)(void *)(s + 1);
}

static inline bool bit_get(struct seg *s, uint32_t i)
{
	return (RD(bitmap(s)[i / 64]) >> (i % 64)) & 1;
}

static inline void bit_put(struct seg *s, uint32_t i, bool on)
{
	uint64_t *w = &bitmap(s)[i / 64], m = (uint64_t)1 << (i % 64);

	PUT(*w, on ? RD(*w) | m : RD(*w) & ~m);
}

static inline uint64_t tag_of(uintptr_t blk, uintptr_t p)
{
	return (uint64_t)blk ^ (uint64_t)p ^ TAG_MAGIC;
}

static inline struct ctl *ctl_of(const struct rszshm *r)
{
	return (struct ctl *)(void *)((char *)r->hdr + HDR_SIZE);
}

static inline pthread_mutex_t *heap_lock(const struct rszshm *r)
{
	return &rszshm__shared(r->hdr)->heap_lock;
}

static inline struct seg *seg_at(const struct rszshm *r, uint64_t i)
{
	return (struct seg *)(void *)((char *)r->hdr + (i << SEG_SHIFT));
}

/* Segments the span can hold, for this handle. */
static inline uint64_t span_segs(const struct rszshm *r)
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
static inline bool top_ok(struct rszshm *r, uint64_t top)
{
	return top == 1 ||
	       (top > 1 && top <= span_segs(r) && top << SEG_SHIFT <= rszshm__map_safe_len(r));
}

/*
 * Is @addr the start of a segment in 1 .. @top-1, with @top checked?  Every
 * segment address read from the region (list links, pending blocks, blocks
 * to free) passes this before it is followed.
 */
static inline bool seg_addr_ok(struct rszshm *r, uint64_t addr, uint64_t top)
{
	uint64_t off = addr - (uintptr_t)r->hdr;

	return addr > (uintptr_t)r->hdr && !(off & (SEG - 1)) && off >> SEG_SHIFT < top &&
	       top_ok(r, top);
}

/* 0 and the control block if @r is a usable heap region; *@len is
 * rszshm__map_safe_len(). */
static inline int get_ctl_len(struct rszshm *r, bool write, struct ctl **out, uint64_t *len)
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
	    (*len = rszshm__map_safe_len(r)) < HDR_SIZE + sizeof(*h) || RD(h->magic) != HEAP_MAGIC)
		return -EBADMSG;
	*out = h;
	return 0;
}

static inline int get_ctl(struct rszshm *r, bool write, struct ctl **out)
{
	uint64_t len;

	return get_ctl_len(r, write, out, &len);
}

/*
 * The run header of block @p, or NULL if @p cannot be a block: @p lies in a
 * carved segment, below top, with top inside the span and the file's
 * rszshm__map_safe_len() (@len, read by the caller before top: a top past
 * it may be a grower's since, so the length is read again then).
 */
static inline struct seg *locate_len(struct rszshm *r, struct ctl *h, uintptr_t p, uint64_t len)
{
	uintptr_t base = (uintptr_t)r->hdr;
	uint64_t i, top = GET(h->top);
	struct seg *s;

	if (p & (RSZSHM_ALIGN - 1) || p <= base + SEG)
		return NULL;
	i = (p - 1 - base) >> SEG_SHIFT;
	if (i >= top || top > span_segs(r) ||
	    (top << SEG_SHIFT > len && top << SEG_SHIFT > rszshm__map_safe_len(r)))
		return NULL;
	s = seg_at(r, i);
	return RD(s->magic) == SEG_MAGIC ? s : NULL;
}

static inline struct seg *locate(struct rszshm *r, struct ctl *h, uintptr_t p)
{
	return locate_len(r, h, p, rszshm__map_safe_len(r));
}

/* Index of block @p of SMALL segment @s, if @p is a block start. */
static inline bool block_index(struct seg *s, uintptr_t p, uint32_t *idx)
{
	uintptr_t b0 = (uintptr_t)s + s->first;
	uint64_t off;
	uint32_t i;

	if (p < b0 || (off = p - b0) >= (uint64_t)s->nblocks * s->bsize)
		return false;
	i = (uint32_t)((off * rszshm__heap_cls_recip[s->cls]) >> 32);
	*idx = i;
	return (uint64_t)i * s->bsize == off;
}

/* seg.c: the global part, under shared->heap_lock. */
RSZSHM__INTERNAL uint64_t rszshm__heap_run_len(struct seg *s, uint64_t i, uint64_t top);
RSZSHM__INTERNAL int rszshm__heap_global_lock(struct rszshm *r, struct ctl *h);
RSZSHM__INTERNAL void rszshm__heap_global_unlock(struct rszshm *r, struct ctl *h);
RSZSHM__INTERNAL int rszshm__heap_global_lock_top(struct rszshm *r, struct ctl *h, uint64_t *top);
RSZSHM__INTERNAL void rszshm__heap_run_release(struct ctl *h, struct seg *s);
RSZSHM__INTERNAL int rszshm__heap_run_take(struct rszshm *r, struct ctl *h, uint64_t n,
					   struct seg **out);
/* The SLOTS run ctl->slot_runs[@k] names, checked, or NULL. */
RSZSHM__INTERNAL void *rszshm__heap_slot_run(struct rszshm *r, struct ctl *h, unsigned k);
/* seg.c: rebuilding from the truth (run headers, bitmaps). */
RSZSHM__INTERNAL int rszshm__heap_runs_rebuild(struct rszshm *r, struct ctl *h);
RSZSHM__INTERNAL bool rszshm__heap_seg_sane(struct seg *s);
RSZSHM__INTERNAL void rszshm__heap_seg_rebuild(struct seg *s);

/*
 * Test hook (seg.c): a countdown of the points where a block is in motion
 * (arena.c's refill and flush, own.c's adoption); the process kills itself
 * with SIGKILL where it reaches 0.  0 (the default) never fires.
 */
RSZSHM__INTERNAL extern unsigned long rszshm__heap_die_at;
RSZSHM__INTERNAL void rszshm__heap_die_step(void);
static inline void die_point(void)
{
	if (__builtin_expect(rszshm__heap_die_at != 0, 0))
		rszshm__heap_die_step();
}

/* arena.c: the arenas.  Lock arena @ai (trylock with @try): 0, -EBUSY, or
 * the lock's errors; a dead holder's arena is rebuilt first. */
RSZSHM__INTERNAL int rszshm__heap_arena_take(struct rszshm *r, struct ctl *h, unsigned ai,
					     bool try);
RSZSHM__INTERNAL void rszshm__heap_arena_drop(struct ctl *h, unsigned ai);
/* Under arena @ai's lock: free the blocks freed into its pending slots. */
RSZSHM__INTERNAL void rszshm__heap_arena_drain(struct rszshm *r, struct ctl *h, unsigned ai);
/* Is @p waiting in arena @a's pending slots? */
RSZSHM__INTERNAL bool rszshm__heap_is_pending(struct arena *a, uintptr_t p);
/* Under arena @ai's lock: put SMALL segment @s (sane) at the head of its
 * list; false, with nothing written, if the head is damaged. */
RSZSHM__INTERNAL bool rszshm__heap_list_push(struct rszshm *r, struct ctl *h, unsigned ai,
					     struct seg *s);
/* Under arena @ai's lock: free block @p of SMALL segment @s: 0, -EINVAL if
 * it is no live block, or a rebuild's error. */
RSZSHM__INTERNAL int rszshm__heap_small_put(struct rszshm *r, struct ctl *h, unsigned ai,
					    struct seg *s, uintptr_t p);
/* Free block @p of SMALL segment @s into a pending slot, no lock: 1 done,
 * 0 the caller must take the lock, -EINVAL. */
RSZSHM__INTERNAL int rszshm__heap_small_defer(struct ctl *h, struct seg *s, uintptr_t p);
/* Lock an arena and take a block of class @c, or 0 with *err set. */
RSZSHM__INTERNAL uintptr_t rszshm__heap_arena_alloc(struct rszshm *r, struct ctl *h, unsigned c,
						    int *err);
/* Under arena @ai's lock, after its holder died (or on damage): rebuild it. */
RSZSHM__INTERNAL int rszshm__heap_arena_rebuild(struct rszshm *r, struct ctl *h, unsigned ai);

/* own.c: thread slots.  The slot a thread uses in a region is
 * remembered in rszshm__heap_tl; rszshm__heap_epoch moves whenever a slot
 * the process held is given back (detach, fork), which sends every thread
 * back to rszshm__heap_slot_claim() to look again. */
#define RSZSHM__HEAP_TLS __attribute__((tls_model("initial-exec")))
struct rszshm__heap_tl {
	uintptr_t base;		/* region the slot is for */
	uint64_t epoch;		/* rszshm__heap_epoch when it was found */
	struct tslot *slot;	/* NULL: allocate through the arenas */
	uint64_t me;		/* the slot's owner word when it is ours */
};
RSZSHM__INTERNAL extern _Thread_local struct rszshm__heap_tl rszshm__heap_tl RSZSHM__HEAP_TLS;
RSZSHM__INTERNAL extern uint64_t rszshm__heap_epoch;

/* arena.c: a thread slot's cache and the arenas.  Slot @t (the caller's)
 * has no usable block of class @c: refill it and take one more for the
 * caller, or 0 with *err set. */
RSZSHM__INTERNAL uintptr_t rszshm__heap_refill(struct rszshm *r, struct ctl *h, struct tslot *t,
					       unsigned c, int *err);
/* Give back up to @max cached blocks of class @c of slot @t (owned by the
 * caller) to their arenas. */
RSZSHM__INTERNAL void rszshm__heap_slot_flush(struct rszshm *r, struct ctl *h, struct tslot *t,
					      unsigned c, unsigned max);

/* own.c: this thread's slot in @r, claimed (NULL: none to be had). */
RSZSHM__INTERNAL struct tslot *rszshm__heap_slot_claim(struct rszshm *r, struct ctl *h);

/*
 * Is what this thread remembers of its slot in @r still good?  Then true,
 * with *@t its slot (NULL: allocate through the arenas).  Compares the
 * region and the epoch, and checks that the slot still names this thread (a
 * slot taken over by another, as only damage or a forged word can do, is
 * claimed anew): the owner word shares a cache line with the first classes'
 * counts.
 */
static inline bool slot_known(struct rszshm *r, struct tslot **t)
{
	*t = rszshm__heap_tl.slot;
	return __builtin_expect(rszshm__heap_tl.base == (uintptr_t)r->hdr &&
				rszshm__heap_tl.epoch == RD(rszshm__heap_epoch) &&
				(!*t || RD((*t)->owner) == rszshm__heap_tl.me), 1);
}

/* This thread's slot in @r, or NULL. */
static inline struct tslot *my_slot(struct rszshm *r, struct ctl *h)
{
	struct tslot *t;

	return slot_known(r, &t) ? t : rszshm__heap_slot_claim(r, h);
}

#endif
