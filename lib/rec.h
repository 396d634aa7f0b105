/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rec.h - what the record files share: the layout of the named-record index
 * kept in a heap region, the bounded readers of a view that every one of
 * them follows the index with, and the steps of the index's write section.
 *
 * The files, each one concern:
 *   rec.c         the writers: making the index, inserting, replacing and
 *                 removing records (and doubling the slot array), and the
 *                 public calls that write: rszshm_rec_add/put/remove/clear
 *   rec-read.c    the lock-free readers: rszshm_rec_find/get/next,
 *                 rszshm__rec_stamp() and rszshm__rec_view_next()
 *   rec-repair.c  taking the index lock, and redoing what a writer that
 *                 died under it left, then rebuilding the derived fields
 *   rec-walk.c    the read-only, bounded walker behind rszshm_check()
 *                 and rszshm_stats()
 * A lookup's path (the seqlock read protocol, the hash, the probe and the
 * bounded readers it calls) is static inline here, so that splitting the
 * files costs a lookup no call.  Nothing outside these files includes rec.h.
 *
 * The index's root (struct idx) has a fixed place in the region's first
 * segment (RSZSHM__REC_ROOT_OFF), which attaching maps in anyway; the rest
 * lives in heap blocks of the region, and every stored address is
 * absolute (a uint64_t), so a list or tree published by one process is walked
 * by another with no translation, and a view mapped elsewhere (rszshm-dump)
 * translates each address through rszshm__view_ptr():
 *
 *   shared->recs --> struct idx --buckets--> struct bkt { n, slot[n] }
 *    (segment 0)      head, tail, nslots         slot = { hash, rec }
 *                       |                                    | rec
 *                       |                                    v
 *                       '--> rec --next--> rec --next--> rec     (ids 1 < 2 < 3)
 *                             |val          |val
 *                             v             v
 *                           value         value
 *
 * The bucket array is open addressing with linear probing: a slot holds a
 * record's address beside its full name hash, so a lookup reads slots (four
 * to a cache line) and follows an address only when the hash matches: one
 * record read per hit, none for most misses.  The load stays at most 1/2
 * (the array doubles); if a doubling cannot be allocated, inserts go on up
 * to 3/4 and then fail with ENOMEM.  A removal shifts the later slots of
 * its run back (no tombstones), so a probe ends at the first empty slot.
 *
 * A value is a copy owned by the record (rszshm_rec_put(): the first one in
 * the record's own block, after the name; each replacement in a block of its
 * own) or a pointer published by rszshm_rec_add() and owned by the caller.
 *
 * Invariants (all changes under shared->rec_lock, a robust mutex):
 *  - The forward list (idx->head, rec->next) holds every record once, in
 *    increasing insertion id; it is the source of truth.  prev, tail, count,
 *    next_id and the slot array are derived from it and can be rebuilt.
 *  - Every change of the forward list is one pointer store: an append
 *    publishes a record that is complete, a removal unpublishes one.
 *  - Before changing anything a writer writes what it is about to do in
 *    idx->op (a redo record), and makes idx->seq odd; afterwards it clears the
 *    op and makes seq even again.  A writer that dies under the lock leaves
 *    the op behind: the next locker gets EOWNERDEAD, redoes the op, rebuilds
 *    the derived fields from the forward list, frees what the op unlinked,
 *    and marks the mutex consistent.  Damage it cannot repair is reported
 *    (ENOTRECOVERABLE) to every later caller, never passed on.
 *  - Readers take no lock (a PROT_READ mapping cannot take one): they read
 *    seq, follow the index with every address bounds-checked and every walk
 *    bounded by the record count, copy what they need, and read seq again;
 *    if it moved they retry.  After a few tries a writable handle falls back
 *    to the lock; a read-only handle keeps trying (yielding) for a while and
 *    then gives up with EAGAIN.
 *  - Memory unlinked from the index (an old value, a removed record, an old
 *    bucket array) is freed only after the seq bump that unlinked it, so a
 *    reader copying from it is sure to see seq move.  The region never
 *    shrinks, so such a copy reads mapped memory.
 * rec.c says what else a writer promises, rec-repair.c how a dead one's op
 * is redone.
 *
 * Words: a record is "live" (REC_LIVE magic, on the list), "dead" once
 * unlinked (REC_DEAD, about to be freed); "copied" when the library owns its
 * value.
 */
#ifndef RSZSHM_REC_H
#define RSZSHM_REC_H

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define IDX_MAGIC 0x5844492d43455252ULL	/* "RREC-IDX" */
#define BKT_MAGIC 0x544b422d43455252ULL	/* "RREC-BKT" */
#define REC_LIVE 0x564c2d4345525252ULL	/* "RRREC-LV" */
#define REC_DEAD 0x44442d4345525252ULL	/* "RRREC-DD" */

#define REC_COPIED 0x1u			/* rec->flags: the value is ours */
#define BKT_MIN 16u			/* slots of a new index */
#define SPINS 32u			/* lock-free tries before taking the lock */
#define RDONLY_STUCK (1u << 14)		/* read-only: tries while seq stays one odd value */
#define RDONLY_TRIES (1u << 16)		/* read-only: tries in all */
#define RDONLY_ORPHAN 64u		/* read-only: tries on one odd seq before looking for its writer */
#define RDONLY_UNHELD 8u		/* read-only: looks, that odd seq still there, finding no writer */
#define VIEW_TRIES 100u			/* tries of the view walkers */

enum { OP_NONE, OP_INSERT, OP_REPLACE, OP_REMOVE, OP_REHASH, OP_KINDS };

/*
 * A record: one heap block.  What a lookup reads comes first; the first
 * value stored by rszshm_rec_put() is kept in the same block, right after
 * the name (at val_off()), so a lookup touches one block, not two.  A
 * replacement moves the value to a block of its own.
 */
struct rec {
	uint64_t magic;		/* REC_LIVE, REC_DEAD once unlinked */
	uint8_t namelen;	/* 1..RSZSHM_NAME_MAX */
	uint8_t flags;		/* REC_COPIED */
	uint8_t pad_[2];
	uint32_t type;		/* the caller's tag */
	uint64_t val;		/* address of the value */
	uint64_t size;		/* its size */
	uint64_t gen;		/* 1 when made, +1 per replacement */
	uint64_t stamp;		/* wait.c's change count at its last change */
	uint64_t hash;		/* of the name, with idx->seed */
	uint64_t id;		/* insertion id, from idx->next_id */
	uint64_t next;		/* insertion order (the source of truth) */
	uint64_t prev;		/* derived */
	char name[];		/* namelen bytes and a NUL */
};
#define REC_MIN (sizeof(struct rec) + 2)

/* Offset of a value kept in its record's block: after the name, aligned. */
static inline uint64_t val_off(uint64_t namelen)
{
	uint64_t a = RSZSHM_ALIGN;

	return (sizeof(struct rec) + namelen + 1 + a - 1) & ~(a - 1);
}

/* Is the value at @val (of record @a with @flags) a block of its own, ours to free? */
static inline bool own_block(uint64_t a, uint64_t namelen, uint64_t val, uint8_t flags)
{
	return (flags & REC_COPIED) && val != a + val_off(namelen);
}

/* A slot of the bucket array: empty while rec is 0. */
struct slot {
	uint64_t hash;		/* the record's hash: a lookup reads the record only if it matches */
	uint64_t rec;		/* the record's address, 0 if empty */
};

struct bkt {
	uint64_t magic;		/* BKT_MAGIC */
	uint64_t n;		/* slots: a power of two, >= BKT_MIN */
	struct slot slot[];	/* record i sits in its probe run from slot hash & (n - 1) */
};

/* What a writer is about to do: enough for the next locker to redo it. */
struct op {
	uint64_t kind;		/* OP_*, written last */
	uint64_t rec;		/* the record */
	uint64_t val;		/* OP_REPLACE: new value, size, gen */
	uint64_t size;
	uint64_t gen;
	uint64_t old;		/* OP_REPLACE: the old value; OP_REHASH: old buckets */
	uint64_t aux;		/* OP_INSERT: the new id; OP_REHASH: new buckets */
	uint32_t type;
	uint8_t flags;		/* OP_REPLACE: new flags */
	uint8_t oldflags;	/* OP_REPLACE: flags of the old value */
	uint8_t pad_[2];
};

struct idx {
	uint64_t magic;		/* IDX_MAGIC */
	uint64_t seq;		/* odd while a writer changes the index */
	uint64_t seed;		/* of the name hash */
	uint64_t buckets;	/* struct bkt */
	uint64_t head;		/* oldest record */
	uint64_t tail;		/* newest record (derived) */
	uint64_t count;		/* records (derived) */
	uint64_t next_id;	/* next insertion id; ids start at 1 */
	struct op op;
	uint64_t nslots;	/* slots of the array at buckets (a copy of its n,
				 * so that a lookup need not read the array's head) */
};
_Static_assert(sizeof(struct idx) <= RSZSHM__REC_ROOT_MAX, "the index root fits its place");

/* Relaxed loads and stores of fields that other processes read or write. */
#define LD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define ST(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)
/* Keep the compiler from moving stores across a step: a writer killed
 * between two steps must leave the earlier ones done and the later not. */
#define STEP() __atomic_signal_fence(__ATOMIC_SEQ_CST)

#define A(p) ((uint64_t)(uintptr_t)(p))
#define MUT(p) ((void *)(uintptr_t)(p))

/* ------------------------------------------------------------ the hash */

static inline uint64_t mix(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

/*
 * The last 1..7 bytes of a name as one word: what a memcpy() of @n bytes
 * into a zeroed word gives.  On a little-endian machine it is built from
 * two overlapping loads (the bytes they share are the same) rather than a
 * copy of variable length, which costs a call per hash.
 */
static inline uint64_t tail_word(const char *s, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const unsigned char *u = (const unsigned char *)s;
	uint32_t lo, hi;

	if (n >= 4) {
		memcpy(&lo, s, 4);
		memcpy(&hi, s + n - 4, 4);
		return (uint64_t)lo | ((uint64_t)hi << ((n - 4) * 8));
	}
	return (uint64_t)u[0] | ((uint64_t)u[n / 2] << (n / 2 * 8)) |
	       ((uint64_t)u[n - 1] << ((n - 1) * 8));
#else
	uint64_t k = 0;

	memcpy(&k, s, n);
	return k;
#endif
}

/* 8 bytes at a time, then a finalizer; names are short. */
static inline uint64_t hash_name(uint64_t seed, const char *s, size_t n)
{
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), k;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&k, s, 8);
		h = (h ^ k) * 0x9e3779b97f4a7c15ULL;
		h = (h << 31) | (h >> 33);
	}
	if (n)
		h = (h ^ tail_word(s, n)) * 0x9e3779b97f4a7c15ULL;
	return mix(h);
}

/* ------------------------------------------------- reading the index */

/*
 * A structure of the index (the index, a bucket array, a record) at @a,
 * checked: aligned, inside the region, and in a heap block, so never in the
 * first segment, where the header and the heap's control block (and their
 * locks) lie.  Writers write through these pointers: a damaged link must
 * not make them write over a lock.
 */
static inline const void *blk_at(const struct rszshm__view *v, uint64_t a, uint64_t size)
{
	if ((a & 7) || a < v->base || a - v->base < RSZSHM__HEAP_BLOCKS_FROM)
		return NULL;
	return rszshm__view_ptr(v, a, size);
}

static inline const struct rec *rec_at(const struct rszshm__view *v, uint64_t a)
{
	return blk_at(v, a, sizeof(struct rec));
}

/*
 * A value's bytes, checked: [val, val + size) inside the region and past its
 * header, where rszshm_rec_add() requires values to be.  NULL if not: every
 * reader and the walker refuse such a record alike.
 */
static inline const void *val_at(const struct rszshm__view *v, uint64_t val, uint64_t size)
{
	if (val < v->base || val - v->base < sizeof(struct rszshm_hdr))
		return NULL;
	return rszshm__view_ptr(v, val, size);
}

/* Most records a view of this length can hold: bounds every walk. */
static inline uint64_t max_recs(const struct rszshm__view *v)
{
	return v->len / REC_MIN;
}

static inline uint64_t walk_limit(const struct rszshm__view *v, const struct idx *x)
{
	uint64_t n = LD(x->count), m = max_recs(v);

	return (n < m ? n : m) + 1;
}

/*
 * The index of a view: 1 with *x set, 0 if there is none yet, -EBADMSG.
 * Its root has one place, RSZSHM__REC_ROOT_OFF into segment 0; any other
 * address in shared->recs is damage.
 */
static inline int idx_of(const struct rszshm__view *v, const struct idx **x)
{
	const struct rszshm__shared *sh = rszshm__shared(rszshm__view_hdr(v));
	uint64_t a = __atomic_load_n(&sh->recs, __ATOMIC_ACQUIRE);
	const struct idx *p;

	*x = NULL;
	if (!a)
		return 0;
	if (a != v->base + RSZSHM__REC_ROOT_OFF ||
	    !(p = rszshm__view_ptr(v, a, sizeof(*p))) || LD(p->magic) != IDX_MAGIC)
		return -EBADMSG;
	*x = p;
	return 1;
}

/*
 * The slot array as a lookup sees it, from the root alone (address and
 * count), checked: past segment 0 and inside the region.  Writers and the
 * walker also check the array's own head (bkt_of()).
 */
static inline int slots_of(const struct rszshm__view *v, const struct idx *x, const struct slot **slot,
		    uint64_t *n)
{
	uint64_t a = LD(x->buckets), k = LD(x->nslots);
	const struct slot *s;

	if ((a & 15) || a < v->base || a - v->base < RSZSHM__HEAP_BLOCKS_FROM ||
	    k < BKT_MIN || (k & (k - 1)) || k > v->len / sizeof(struct slot) ||
	    !(s = rszshm__view_ptr(v, a + sizeof(struct bkt), k * sizeof(struct slot))))
		return -EBADMSG;
	*slot = s;
	*n = k;
	return 0;
}

static inline int bkt_of(const struct rszshm__view *v, const struct idx *x, const struct slot **slot,
		  uint64_t *n)
{
	uint64_t a = LD(x->buckets), k;
	const struct bkt *b = blk_at(v, a, sizeof(*b));

	if (!b || (a & 15) || LD(b->magic) != BKT_MAGIC)
		return -EBADMSG;
	k = LD(b->n);
	if (k < BKT_MIN || (k & (k - 1)) || k > v->len / sizeof(struct slot) ||
	    !rszshm__view_ptr(v, a + sizeof(*b), k * sizeof(struct slot)))
		return -EBADMSG;
	*slot = b->slot;
	*n = k;
	return 0;
}

/* Slot @i's successor on a probe run of an array of @n slots. */
static inline uint64_t succ(uint64_t i, uint64_t n)
{
	return (i + 1) & (n - 1);
}

/* The slot holding record @a of hash @h: its index, or @n if not found
 * before an empty slot (or within n probes). */
static inline uint64_t slot_of(const struct slot *s, uint64_t n, uint64_t h, uint64_t a)
{
	uint64_t i = h & (n - 1), c;

	for (uint64_t k = 0; k < n; k++, i = succ(i, n)) {
		if ((c = LD(s[i].rec)) == a)
			return i;
		if (!c)
			break;
	}
	return n;
}

/* The first empty slot of @h's probe run: its index, or @n if none. */
static inline uint64_t slot_free(const struct slot *s, uint64_t n, uint64_t h)
{
	uint64_t i = h & (n - 1);

	for (uint64_t k = 0; k < n; k++, i = succ(i, n))
		if (!LD(s[i].rec))
			return i;
	return n;
}

/* Put record @a of hash @h in its probe run: 0, or -1 if the array is full. */
static inline int slot_put(struct slot *s, uint64_t n, uint64_t h, uint64_t a)
{
	uint64_t i = slot_free(s, n, h);

	if (i == n)
		return -1;
	ST(s[i].hash, h);
	ST(s[i].rec, a);
	return 0;
}

/* The name of a record, checked: NULL if out of bounds or malformed. */
static inline const char *name_of(const struct rszshm__view *v, uint64_t a, const struct rec *p,
			   size_t *len)
{
	size_t n = LD(p->namelen);
	const char *s;

	if (n == 0 || n > RSZSHM_NAME_MAX)
		return NULL;
	s = rszshm__view_ptr(v, a + offsetof(struct rec, name), n + 1);
	if (!s || s[n] != '\0' || memchr(s, '\0', n))
		return NULL;
	*len = n;
	return s;
}

/*
 * Are the @n (1..RSZSHM_NAME_MAX) bytes at @a and @b the same?  Word loads
 * that never read outside either range: the two ends of a short name as
 * overlapping words, as tail_word() does.  Inline, where memcmp() would be
 * a call per lookup.
 */
static inline bool name_eq(const char *a, const char *b, size_t n)
{
	uint64_t x, y;
	uint32_t p, q, s, t;

	if (n >= 8) {
		for (; n > 8; a += 8, b += 8, n -= 8) {
			memcpy(&x, a, 8);
			memcpy(&y, b, 8);
			if (x != y)
				return false;
		}
		memcpy(&x, a + n - 8, 8);
		memcpy(&y, b + n - 8, 8);
		return x == y;
	}
	if (n >= 4) {
		memcpy(&p, a, 4);
		memcpy(&q, b, 4);
		memcpy(&s, a + n - 4, 4);
		memcpy(&t, b + n - 4, 4);
		return p == q && s == t;
	}
	return a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1];
}

/*
 * Look @name up: 1 with *at and *out set, 0 if absent, -EBADMSG.  Only a
 * slot whose hash matches leads to a record; a probe run with no empty slot
 * to end it (the load never passes 3/4) is damage.  A record is checked
 * once, as far as the end of a name of @nlen bytes (what rec_at() and
 * name_of() would check, in one comparison): aligned, in a heap block,
 * inside the view.
 */
static inline __attribute__((always_inline)) int lookup(const struct rszshm__view *v,
							const struct idx *x, const char *name,
							size_t nlen, uint64_t h, uint64_t *at,
							const struct rec **out)
{
	const uint64_t span = offsetof(struct rec, name) + nlen + 1;
	const struct slot *s;
	const struct rec *p;
	uint64_t n, a, i;
	int rc;

	if ((rc = slots_of(v, x, &s, &n)) < 0)
		return rc;
	i = h & (n - 1);
	for (uint64_t k = 0; k < n; k++, i = succ(i, n)) {
		if (!(a = LD(s[i].rec)))
			return 0;
		if (LD(s[i].hash) != h)
			continue;
		/* The record's name and an inline value are on the lines after
		 * its head: ask for them now rather than one after the other (a
		 * hint only: it reads nothing). */
		__builtin_prefetch((const void *)(uintptr_t)(A(v->map) + (a - v->base) +
							     offsetof(struct rec, name)));
		__builtin_prefetch((const void *)(uintptr_t)(A(v->map) + (a - v->base) +
							     val_off(nlen)));
		if (!(p = blk_at(v, a, span))) {
			/* Short of a name as long as this one: damage, unless
			 * it is a record with a shorter name near the end. */
			if (!(p = rec_at(v, a)) || LD(p->magic) != REC_LIVE ||
			    LD(p->namelen) == nlen)
				return -EBADMSG;
			continue;
		}
		if (LD(p->magic) != REC_LIVE)
			return -EBADMSG;
		if (LD(p->namelen) == nlen && name_eq(p->name, name, nlen)) {
			*at = a;
			*out = p;
			return 1;
		}
	}
	return -EBADMSG;
}

/* --------------------------------------------------------- the locks */

static inline void relax(unsigned tries)
{
	if (tries < 8) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ __volatile__("yield");
#endif
	} else {
		sched_yield();
	}
}

static inline void wr_begin(struct idx *x)
{
	ST(x->seq, LD(x->seq) + 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void wr_end(struct idx *x)
{
	__atomic_store_n(&x->seq, LD(x->seq) + 1, __ATOMIC_RELEASE);
}

static inline void set_op(struct idx *x, int kind)
{
	STEP();
	__atomic_store_n(&x->op.kind, (uint64_t)kind, __ATOMIC_RELEASE);
	STEP();
}

static inline void clear_op(struct idx *x)
{
	STEP();
	__atomic_store_n(&x->op.kind, (uint64_t)OP_NONE, __ATOMIC_RELEASE);
	STEP();
}

/* Blocks to free once the index no longer reaches them. */
struct trash {
	uint64_t a[4];
	unsigned n;
};

static inline void trash_add(struct trash *t, uint64_t a)
{
	if (a && t->n < sizeof(t->a) / sizeof(t->a[0]))
		t->a[t->n++] = a;
}

static inline void trash_empty(struct rszshm *r, struct trash *t)
{
	while (t->n)
		rszshm__heap_free(r, (void *)(uintptr_t)t->a[--t->n]);
}

/*
 * Take the index lock (rec-repair.c); repair what a dead holder left.
 * 0, -EBADMSG if the index's root is damaged (nothing to repair from),
 * -ENOTRECOVERABLE if a repair fails, or the lock's errors.
 */
RSZSHM__INTERNAL int rszshm__rec_lock_idx(struct rszshm *r);
RSZSHM__INTERNAL void rszshm__rec_unlock_idx(struct rszshm *r);

/* ------------------------------------------------------ lock-free reads */

/*
 * A reader's state: a seqlock read of the index, falling back to the lock
 * on a writable handle after SPINS inconsistent tries.
 */
struct rd {
	struct rszshm *r;
	struct rszshm__view v;
	const struct idx *x;
	uint64_t seq;
	uint64_t odd;		/* the odd seq last seen */
	unsigned tries;
	unsigned stuck;		/* tries since seq last moved while odd */
	unsigned unheld;	/* looks at the lock since then that found it free */
	unsigned late;		/* writers found gone with seq moved (the lock bound's looks) */
	int64_t since;		/* when the spinning ran out (rszshm__lock_outwait) */
	bool locked;
};

static inline void rd_refresh(struct rd *c)
{
	c->v.len = rszshm__map_safe_len(c->r);
}

/* rd_begin() past its first try: the spinning, the lock, the give-up. */
static __attribute__((noinline, unused)) int rd_begin_slow(struct rd *c)
{
	const pthread_mutex_t *lock = &rszshm__shared(c->r->hdr)->rec_lock;
	uint64_t s;
	int rc;

	for (;;) {
		if (c->tries >= SPINS && !(c->r->flags & RSZSHM_RDONLY)) {
			if ((rc = rszshm__rec_lock_idx(c->r)) < 0)
				return rc;
			c->locked = true;
			rd_refresh(c);
			return 0;
		}
		s = __atomic_load_n(&c->x->seq, __ATOMIC_ACQUIRE);
		if (!(s & 1)) {
			c->seq = s;
			rd_refresh(c);
			return 0;
		}
		/* A writer at work moves seq on; one stuck on an odd value for
		 * long died mid-update, and only a writer can repair that. */
		if (s != c->odd) {
			c->odd = s;
			c->stuck = 0;
			c->unheld = 0;
		}
		++c->stuck;
		++c->tries;
		/* Odd with nobody holding the index lock: the writer that made
		 * it odd died (or a co-writer wrote it); no wait will help.  One
		 * look proves nothing: the writer may have finished between the
		 * read of seq and the look (the next read of seq then moves).
		 * Only looks with seq still at this value, each after a read of
		 * it, count. */
		if (c->stuck >= RDONLY_ORPHAN) {
			if (__builtin_expect(rszshm__rec_hook != NULL, 0))
				rszshm__rec_hook(20);
			if (!rszshm__lock_held(lock)) {
				if (++c->unheld >= RDONLY_UNHELD)
					return -EAGAIN;
				relax(c->tries);
				continue;
			}
			c->unheld = 0;
		}
		if (c->stuck >= RDONLY_STUCK || c->tries >= RDONLY_TRIES) {
			/* Spun long with a writer in the lock: it may only be
			 * descheduled, so sleep, for at most the lock bound. */
			if ((rc = rszshm__lock_outwait(lock, &c->since)) < 0)
				return rc;
			/* 1: no holder.  Seq still at this value: its writer is
			 * gone (above).  Moved on: the writer finished after the
			 * read; a co-writer moving it with no lock held gets a
			 * few such looks, no more. */
			if (rc == 1 && (__atomic_load_n(&c->x->seq, __ATOMIC_ACQUIRE) == s ||
					++c->late >= RDONLY_UNHELD))
				return -EAGAIN;
			continue;
		}
		relax(c->tries);
	}
}

/*
 * Begin a read: 0 once seq is even (or the lock is held), with the view's
 * length read again; or the errors of the lock, or -EAGAIN (read-only).
 * The first try, with nobody writing, is inline.
 */
static inline int rd_begin(struct rd *c)
{
	uint64_t s;

	if (__builtin_expect(c->tries < SPINS, 1) &&
	    !((s = __atomic_load_n(&c->x->seq, __ATOMIC_ACQUIRE)) & 1)) {
		c->seq = s;
		rd_refresh(c);
		return 0;
	}
	return rd_begin_slow(c);
}

/* True if what was read since rd_begin() is consistent. */
static inline bool rd_end(struct rd *c)
{
	if (c->locked) {
		rszshm__rec_unlock_idx(c->r);
		c->locked = false;
		return true;
	}
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (LD(c->x->seq) == c->seq)
		return true;
	c->tries++;
	relax(c->tries);
	return false;
}

/* ---------------------------------------------------------- arguments */

static inline int usable(struct rszshm *r, bool write)
{
	int rc;

	if ((rc = rszshm__map_usable(r, false)) < 0)
		return rc;
	if (!(r->flags & RSZSHM_HEAP))
		return -EINVAL;
	if (write && (r->flags & RSZSHM_RDONLY))
		return -EPERM;
	return 0;
}

static inline int name_ok(const char *name, size_t *len)
{
	if (!name || !name[0])
		return -EINVAL;
	*len = strnlen(name, RSZSHM_NAME_MAX + 1);
	return *len > RSZSHM_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* Start a reader: 1 with c ready, 0 if the region has no index yet. */
static inline int rd_init(struct rd *c, struct rszshm *r)
{
	c->r = r;
	c->odd = 0;
	c->tries = 0;
	c->stuck = 0;
	c->unheld = 0;
	c->late = 0;
	c->since = 0;
	c->locked = false;
	rszshm__view_of(r, &c->v);
	return idx_of(&c->v, &c->x);
}

#endif /* RSZSHM_REC_H */
