/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rec.c - named records: a hash index of names kept in a heap region.
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
 *  - A value replaced by rszshm_rec_put() is a new block: the data are
 *    copied into it before the lock is taken; under the lock only the
 *    record's (val, size, type, flags, gen) change.  Readers never wait for
 *    a writer's copy.
 *  - Every change of a record (insert, replace, remove) gives it, in the
 *    write section, the stamp wait.c's counter will take next, and after
 *    the write section, still under the lock, calls rszshm__wait_changed()
 *    to bump the counter and wake waiters.  A locker that finds the holder
 *    dead wakes every waiter (rszshm__wait_all()): the dead one may have
 *    changed a record without waking anyone.
 *
 * Words: a record is "live" (REC_LIVE magic, on the list), "dead" once
 * unlinked (REC_DEAD, about to be freed); "copied" when the library owns its
 * value.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define IDX_MAGIC 0x5844492d43455252ULL	/* "RREC-IDX" */
#define BKT_MAGIC 0x544b422d43455252ULL	/* "RREC-BKT" */
#define REC_LIVE 0x564c2d4345525252ULL	/* "RRREC-LV" */
#define REC_DEAD 0x44442d4345525252ULL	/* "RRREC-DD" */

#define REC_COPIED 0x1u			/* rec->flags: the value is ours */
#define BKT_MIN 16u			/* slots of a new index */
#define SPINS 32u			/* lock-free tries before taking the lock */
#define RDONLY_STUCK (1u << 18)		/* read-only: tries while seq stays one odd value */
#define RDONLY_TRIES (1u << 24)		/* read-only: tries in all */
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

/*
 * Test hook: called at numbered points inside the index lock, so that a
 * test can kill a writer there.  Points: 1-3 insert, 4-6 replace, 7-8
 * remove, 9-10 rehash.
 */
void (*rszshm__rec_hook)(int point);

static inline void hook(int point)
{
	if (__builtin_expect(rszshm__rec_hook != NULL, 0))
		rszshm__rec_hook(point);
}

/* Relaxed loads and stores of fields that other processes read or write. */
#define LD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define ST(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)
/* Keep the compiler from moving stores across a step: a writer killed
 * between two steps must leave the earlier ones done and the later not. */
#define STEP() __atomic_signal_fence(__ATOMIC_SEQ_CST)

#define A(p) ((uint64_t)(uintptr_t)(p))
#define MUT(p) ((void *)(uintptr_t)(p))

/* ------------------------------------------------------------ the hash */

static uint64_t mix(uint64_t h)
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
static uint64_t hash_name(uint64_t seed, const char *s, size_t n)
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
static const void *blk_at(const struct rszshm__view *v, uint64_t a, uint64_t size)
{
	if ((a & 7) || a < v->base || a - v->base < RSZSHM__HEAP_BLOCKS_FROM)
		return NULL;
	return rszshm__view_ptr(v, a, size);
}

static const struct rec *rec_at(const struct rszshm__view *v, uint64_t a)
{
	return blk_at(v, a, sizeof(struct rec));
}

/*
 * A value's bytes, checked: [val, val + size) inside the region and past its
 * header, where rszshm_rec_add() requires values to be.  NULL if not: every
 * reader and the walker refuse such a record alike.
 */
static const void *val_at(const struct rszshm__view *v, uint64_t val, uint64_t size)
{
	if (val < v->base || val - v->base < sizeof(struct rszshm_hdr))
		return NULL;
	return rszshm__view_ptr(v, val, size);
}

/* Most records a view of this length can hold: bounds every walk. */
static uint64_t max_recs(const struct rszshm__view *v)
{
	return v->len / REC_MIN;
}

static uint64_t walk_limit(const struct rszshm__view *v, const struct idx *x)
{
	uint64_t n = LD(x->count), m = max_recs(v);

	return (n < m ? n : m) + 1;
}

/*
 * The index of a view: 1 with *x set, 0 if there is none yet, -EBADMSG.
 * Its root has one place, RSZSHM__REC_ROOT_OFF into segment 0; any other
 * address in shared->recs is damage.
 */
static int idx_of(const struct rszshm__view *v, const struct idx **x)
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
static int slots_of(const struct rszshm__view *v, const struct idx *x, const struct slot **slot,
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

static int bkt_of(const struct rszshm__view *v, const struct idx *x, const struct slot **slot,
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
static uint64_t slot_of(const struct slot *s, uint64_t n, uint64_t h, uint64_t a)
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
static uint64_t slot_free(const struct slot *s, uint64_t n, uint64_t h)
{
	uint64_t i = h & (n - 1);

	for (uint64_t k = 0; k < n; k++, i = succ(i, n))
		if (!LD(s[i].rec))
			return i;
	return n;
}

/* Put record @a of hash @h in its probe run: 0, or -1 if the array is full. */
static int slot_put(struct slot *s, uint64_t n, uint64_t h, uint64_t a)
{
	uint64_t i = slot_free(s, n, h);

	if (i == n)
		return -1;
	ST(s[i].hash, h);
	ST(s[i].rec, a);
	return 0;
}

/*
 * Empty slot @i and shift back the later slots of its run that may move
 * there (those whose home is not between @i and them), so that every
 * record stays reachable from its home with no empty slot in between.
 */
static void slot_del(struct slot *s, uint64_t n, uint64_t i)
{
	uint64_t j = i, m = n - 1;

	for (uint64_t k = 1; k < n; k++) {
		uint64_t a, home;

		j = succ(j, n);
		if (!(a = LD(s[j].rec)))
			break;
		home = LD(s[j].hash) & m;
		if (((j - home) & m) >= ((j - i) & m)) {
			ST(s[i].hash, LD(s[j].hash));
			ST(s[i].rec, a);
			i = j;
		}
	}
	ST(s[i].rec, 0);
	ST(s[i].hash, 0);
}

/* The name of a record, checked: NULL if out of bounds or malformed. */
static const char *name_of(const struct rszshm__view *v, uint64_t a, const struct rec *p,
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
 * Look @name up: 1 with *at and *out set, 0 if absent, -EBADMSG.  Only a
 * slot whose hash matches leads to a record; a probe run with no empty slot
 * to end it (the load never passes 3/4) is damage.
 */
static int lookup(const struct rszshm__view *v, const struct idx *x, const char *name,
		  size_t nlen, uint64_t h, uint64_t *at, const struct rec **out)
{
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
		if (!(p = rec_at(v, a)) || LD(p->magic) != REC_LIVE)
			return -EBADMSG;
		if (LD(p->namelen) == nlen) {
			const char *nm = rszshm__view_ptr(v, a + offsetof(struct rec, name), nlen + 1);

			if (!nm)
				return -EBADMSG;
			if (memcmp(nm, name, nlen) == 0) {
				*at = a;
				*out = p;
				return 1;
			}
		}
	}
	return -EBADMSG;
}

/* One record's value fields, read once. */
struct snap {
	uint64_t val, size, gen, stamp;
	uint32_t type;
	uint8_t flags;
};

static void snap_of(const struct rec *p, struct snap *s)
{
	s->val = LD(p->val);
	s->size = LD(p->size);
	s->gen = LD(p->gen);
	s->stamp = LD(p->stamp);
	s->type = LD(p->type);
	s->flags = LD(p->flags);
}

/* Fill @info; info->ptr is the recorded address. */
static int fill_info(const struct rszshm__view *v, uint64_t a, const struct rec *p,
		     const struct snap *s, struct rszshm_rec_info *info)
{
	const char *nm;
	size_t n;

	if (!(nm = name_of(v, a, p, &n)))
		return -EBADMSG;
	memcpy(info->name, nm, n);
	info->name[n] = '\0';
	info->type = s->type;
	info->size = (size_t)s->size;
	info->ptr = (void *)(uintptr_t)s->val;
	info->gen = s->gen;
	info->copied = s->flags & REC_COPIED;
	return 0;
}

/*
 * The record after the iterator's position, in insertion order: 1 with
 * @info and @it updated, 0 at the end, -EBADMSG.  O(1) when the last record
 * returned is still there; otherwise a scan from the oldest record for the
 * first id past the last one returned.  A record that looks live but is
 * off the list is damage, not a reason to scan.
 */
static int next_in(const struct rszshm__view *v, const struct idx *x, struct rszshm_rec_iter *it,
		   struct rszshm_rec_info *info)
{
	uint64_t last = it->pos_[0], hint = it->pos_[1], a = 0, p, steps = 0;
	const struct rec *r, *q;
	struct snap s;
	bool resumed = false;
	int rc;

	if (last == 0 && hint == 0) {
		a = LD(x->head);
		resumed = true;
	} else if ((r = rec_at(v, hint)) && LD(r->magic) == REC_LIVE && LD(r->id) == last) {
		/* Still on the list if its predecessor (or the head) points to it. */
		p = LD(r->prev);
		if (p ? ((q = rec_at(v, p)) && LD(q->next) == hint) : LD(x->head) == hint) {
			a = LD(r->next);
			resumed = true;
		} else {
			/* A live record off the list is damage (records are marked
			 * dead in the write section that unlinks them), and
			 * rescanning at every step would cost O(n^2). */
			return -EBADMSG;
		}
	}
	if (!resumed) {
		uint64_t lim = walk_limit(v, x);

		for (a = LD(x->head); a; a = LD(r->next)) {
			if (!(r = rec_at(v, a)) || ++steps > lim)
				return -EBADMSG;
			if (LD(r->id) > last)
				break;
		}
	}
	if (!a)
		return 0;
	if (!(r = rec_at(v, a)) || LD(r->magic) != REC_LIVE || LD(r->id) <= last)
		return -EBADMSG;
	snap_of(r, &s);
	if (!val_at(v, s.val, s.size))
		return -EBADMSG;
	if (info && (rc = fill_info(v, a, r, &s, info)) < 0)
		return rc;
	it->pos_[0] = LD(r->id);
	it->pos_[1] = a;
	return 1;
}

/* --------------------------------------------------------- the locks */

static void relax(unsigned tries)
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

static void wr_begin(struct idx *x)
{
	ST(x->seq, LD(x->seq) + 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void wr_end(struct idx *x)
{
	__atomic_store_n(&x->seq, LD(x->seq) + 1, __ATOMIC_RELEASE);
}

static void set_op(struct idx *x, int kind)
{
	STEP();
	__atomic_store_n(&x->op.kind, (uint64_t)kind, __ATOMIC_RELEASE);
	STEP();
}

static void clear_op(struct idx *x)
{
	STEP();
	__atomic_store_n(&x->op.kind, (uint64_t)OP_NONE, __ATOMIC_RELEASE);
	STEP();
}

static pthread_mutex_t *rec_lock(const struct rszshm *r)
{
	return &rszshm__shared(r->hdr)->rec_lock;
}

/* Blocks to free once the index no longer reaches them. */
struct trash {
	uint64_t a[4];
	unsigned n;
};

static void trash_add(struct trash *t, uint64_t a)
{
	if (a && t->n < sizeof(t->a) / sizeof(t->a[0]))
		t->a[t->n++] = a;
}

static void trash_empty(struct rszshm *r, struct trash *t)
{
	while (t->n)
		rszshm__heap_free(r, (void *)(uintptr_t)t->a[--t->n]);
}

/*
 * Rebuild the derived fields from the forward list: prev links, tail, count,
 * next_id, hashes and the slot array.  Under the lock, seq odd.
 */
static int rebuild(const struct rszshm__view *v, struct idx *x)
{
	uint64_t a, n, cnt = 0, maxid = 0, prev = 0, lim = max_recs(v), seed = LD(x->seed);
	const struct slot *cslot;
	struct slot *slot;
	struct rec *p;
	const char *nm;
	size_t len;

	if (bkt_of(v, x, &cslot, &n) < 0)
		return -ENOTRECOVERABLE;
	slot = MUT(cslot);
	for (a = LD(x->head); a; prev = a, a = LD(p->next)) {
		p = MUT(rec_at(v, a));
		if (!p || LD(p->magic) != REC_LIVE || ++cnt > lim || LD(p->id) <= maxid ||
		    !(nm = name_of(v, a, p, &len)))
			return -ENOTRECOVERABLE;
		maxid = LD(p->id);
		ST(p->prev, prev);
		ST(p->hash, hash_name(seed, nm, len));
	}
	ST(x->tail, prev);
	ST(x->count, cnt);
	if (LD(x->next_id) <= maxid)
		ST(x->next_id, maxid + 1);
	if (cnt >= n)
		return -ENOTRECOVERABLE;	/* more records than the array can hold */
	ST(x->nslots, n);
	for (uint64_t i = 0; i < n; i++) {
		ST(slot[i].rec, 0);
		ST(slot[i].hash, 0);
	}
	for (a = LD(x->head); a; a = LD(p->next)) {
		p = MUT(rec_at(v, a));
		if (slot_put(slot, n, LD(p->hash), a) < 0)
			return -ENOTRECOVERABLE;
	}
	return 0;
}

/* Find @a on the forward list: 1 with *pred set (0 for the head), 0, or <0. */
static int list_find(const struct rszshm__view *v, const struct idx *x, uint64_t a,
		     uint64_t *pred, uint64_t *last)
{
	uint64_t c, prev = 0, steps = 0, lim = max_recs(v);
	const struct rec *p;

	for (c = LD(x->head); c; prev = c, c = LD(p->next)) {
		if (!(p = rec_at(v, c)) || ++steps > lim)
			return -ENOTRECOVERABLE;
		if (c == a) {
			*pred = prev;
			return 1;
		}
	}
	*last = prev;
	return 0;
}

/* Redo the op a dead writer left, then rebuild.  Under the lock. */
static int repair(struct rszshm *r, struct idx *x)
{
	struct rszshm__view v;
	struct trash t = { .n = 0 };
	uint64_t kind = LD(x->op.kind), pred = 0, last = 0, ra = LD(x->op.rec);
	struct rec *p = NULL;
	int rc = 0;

	rszshm__view_of(r, &v);
	if (!(LD(x->seq) & 1))
		wr_begin(x);
	if (kind >= OP_KINDS)
		return -ENOTRECOVERABLE;
	if (kind == OP_INSERT || kind == OP_REPLACE || kind == OP_REMOVE) {
		p = MUT(rec_at(&v, ra));
		if (!p || (LD(p->magic) != REC_LIVE && LD(p->magic) != REC_DEAD))
			return -ENOTRECOVERABLE;
	}
	switch (kind) {
	case OP_INSERT:
		ST(p->magic, REC_LIVE);
		ST(p->id, LD(x->op.aux));
		ST(p->stamp, rszshm__wait_next(r));
		if ((rc = list_find(&v, x, ra, &pred, &last)) < 0)
			return rc;
		if (rc == 0) {
			ST(p->next, 0);
			STEP();
			if (last)
				ST(((struct rec *)MUT(rec_at(&v, last)))->next, ra);
			else
				ST(x->head, ra);
		}
		break;
	case OP_REPLACE:
		ST(p->val, LD(x->op.val));
		ST(p->size, LD(x->op.size));
		ST(p->type, LD(x->op.type));
		ST(p->flags, LD(x->op.flags));
		ST(p->gen, LD(x->op.gen));
		ST(p->stamp, rszshm__wait_next(r));
		if (own_block(ra, LD(p->namelen), LD(x->op.old), LD(x->op.oldflags)) &&
		    LD(x->op.old) != LD(x->op.val))
			trash_add(&t, LD(x->op.old));
		break;
	case OP_REMOVE:
		if ((rc = list_find(&v, x, ra, &pred, &last)) < 0)
			return rc;
		if (rc == 1) {
			if (pred)
				ST(((struct rec *)MUT(rec_at(&v, pred)))->next, LD(p->next));
			else
				ST(x->head, LD(p->next));
		}
		ST(p->magic, REC_DEAD);
		if (own_block(ra, LD(p->namelen), LD(p->val), LD(p->flags)))
			trash_add(&t, LD(p->val));
		trash_add(&t, ra);
		break;
	case OP_REHASH:
		trash_add(&t, LD(x->buckets) == LD(x->op.aux) ? LD(x->op.old) : LD(x->op.aux));
		break;
	default:
		break;
	}
	if ((rc = rebuild(&v, x)) < 0)
		return rc;
	clear_op(x);
	wr_end(x);
	trash_empty(r, &t);
	return 0;
}

/*
 * Take the index lock; repair what a dead holder left.  -EBADMSG if the
 * index's root is damaged (nothing to repair from), -ENOTRECOVERABLE if a
 * repair fails (the pending update stays, so every later locker reports it).
 */
static int lock_idx(struct rszshm *r)
{
	pthread_mutex_t *m = rec_lock(r);
	struct rszshm__view v;
	const struct idx *x;
	int rc, dead;
	bool fixed = false;

	if ((dead = rszshm__lock(m)) < 0)
		return dead;
	rszshm__view_of(r, &v);
	rc = idx_of(&v, &x);
	if (rc == 1 && (dead || LD(x->op.kind) != OP_NONE || (LD(x->seq) & 1))) {
		rc = repair(r, MUT(x));
		fixed = true;
	}
	/* The dead holder may have changed a record without waking its
	 * waiters: wake them all (a spurious wake-up is harmless). */
	if ((dead || fixed) && rc >= 0)
		rszshm__wait_all(r);
	if (dead && rszshm__lock_consistent(m) < 0 && rc >= 0)
		rc = -ENOTRECOVERABLE;
	if (rc < 0) {
		rszshm__unlock(m);
		return rc;
	}
	return 0;
}

static void unlock_idx(struct rszshm *r)
{
	rszshm__unlock(rec_lock(r));
}

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
	bool locked;
};

static void rd_refresh(struct rd *c)
{
	c->v.len = rszshm__map_safe_len(c->r);
}

static int rd_begin(struct rd *c)
{
	uint64_t s;
	int rc;

	for (;;) {
		if (c->tries >= SPINS && !(c->r->flags & RSZSHM_RDONLY)) {
			if ((rc = lock_idx(c->r)) < 0)
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
		}
		if (++c->stuck >= RDONLY_STUCK || ++c->tries >= RDONLY_TRIES)
			return -EAGAIN;
		relax(c->tries);
	}
}

/* True if what was read since rd_begin() is consistent. */
static bool rd_end(struct rd *c)
{
	if (c->locked) {
		unlock_idx(c->r);
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

static int usable(struct rszshm *r, bool write)
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

static int name_ok(const char *name, size_t *len)
{
	if (!name || !name[0])
		return -EINVAL;
	*len = strnlen(name, RSZSHM_NAME_MAX + 1);
	return *len > RSZSHM_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* Start a reader: 1 with c ready, 0 if the region has no index yet. */
static int rd_init(struct rd *c, struct rszshm *r)
{
	c->r = r;
	c->odd = 0;
	c->tries = 0;
	c->stuck = 0;
	c->locked = false;
	rszshm__view_of(r, &c->v);
	return idx_of(&c->v, &c->x);
}

/* ------------------------------------------------------------ writers */

/* The seed of the region's index: a function of where the region lives. */
static uint64_t seed_for(const struct rszshm *r)
{
	return mix(A(r->hdr) ^ 0x5253485a52454331ULL);
}

uint64_t rszshm__rec_hash(const struct rszshm *r, const char *name, size_t nlen)
{
	return hash_name(seed_for(r), name, nlen);
}

static void *heap_alloc(struct rszshm *r, size_t size, int *err)
{
	void *p;

	*err = 0;
	if (!(p = rszshm__heap_alloc(r, size, err)) && *err >= 0)
		*err = -ENOMEM;
	return p;
}

/* Make the index if the region has none.  Takes the lock if so. */
static int ensure_idx(struct rszshm *r)
{
	struct rszshm__shared *sh = rszshm__shared(r->hdr);
	struct idx *x;
	struct bkt *b = NULL;
	int rc;

	if (__atomic_load_n(&sh->recs, __ATOMIC_ACQUIRE))
		return 0;
	if ((rc = lock_idx(r)) < 0)
		return rc;
	if (__atomic_load_n(&sh->recs, __ATOMIC_ACQUIRE))
		goto out;
	/* The array first: a heap block lies past segment 0, so once it is
	 * made the file surely holds the root's place too. */
	if (!(b = heap_alloc(r, sizeof(*b) + BKT_MIN * sizeof(struct slot), &rc)))
		goto out;
	if (rszshm__map_safe_len(r) < RSZSHM__REC_ROOT_OFF + sizeof(*x)) {
		rc = -ENOMEM;
		goto out;
	}
	x = (struct idx *)((char *)r->hdr + RSZSHM__REC_ROOT_OFF);
	memset(b, 0, sizeof(*b) + BKT_MIN * sizeof(struct slot));
	b->magic = BKT_MAGIC;
	b->n = BKT_MIN;
	memset(x, 0, sizeof(*x));
	x->magic = IDX_MAGIC;
	x->seed = seed_for(r);
	x->buckets = A(b);
	x->nslots = BKT_MIN;
	x->next_id = 1;
	__atomic_store_n(&sh->recs, A(x), __ATOMIC_RELEASE);
	b = NULL;
	rc = 0;
out:
	unlock_idx(r);
	if (b)
		rszshm__heap_free(r, b);
	return rc;
}

/* A writer holding the lock. */
struct wr {
	struct rszshm *r;
	struct rszshm__view v;
	struct idx *x;
	struct trash t;
};

static int wr_lock(struct wr *w, struct rszshm *r)
{
	const struct idx *x;
	int rc;

	w->r = r;
	w->t.n = 0;
	if ((rc = lock_idx(r)) < 0)
		return rc;
	rszshm__view_of(r, &w->v);
	if ((rc = idx_of(&w->v, &x)) <= 0) {
		unlock_idx(r);
		return rc < 0 ? rc : -ENOENT;
	}
	w->x = MUT(x);
	return 0;
}

static void wr_unlock(struct wr *w)
{
	unlock_idx(w->r);
	trash_empty(w->r, &w->t);
}

/*
 * A new, unlinked record for @name, with gen 1.  With @copy, @size bytes of
 * @data are copied into the record's own block and the record owns them;
 * otherwise the value is @data as it is.
 */
static struct rec *rec_new(struct rszshm *r, const struct idx *x, const char *name, size_t nlen,
			   const void *data, size_t size, uint32_t type, bool copy, int *err)
{
	size_t bytes;
	struct rec *p;

	/* Check before adding: the sum must not wrap. */
	if (copy && size > SIZE_MAX - val_off(nlen) - 1) {
		*err = -ENOMEM;
		return NULL;
	}
	/* At least one byte past val_off(), in both cases: no other block can
	 * then start at the record's own value address, which is how
	 * own_block() tells an inline value from a block of its own. */
	bytes = (size_t)val_off(nlen) + (copy && size ? size : 1);
	if (!(p = heap_alloc(r, bytes, err)))
		return NULL;
	memset(p, 0, sizeof(*p));
	p->magic = REC_LIVE;
	p->hash = hash_name(LD(x->seed), name, nlen);
	p->namelen = (uint8_t)nlen;
	memcpy(p->name, name, nlen);
	p->name[nlen] = '\0';
	p->gen = 1;
	p->type = type;
	p->size = size;
	if (copy) {
		p->val = A(p) + val_off(nlen);
		p->flags = REC_COPIED;
		if (size)
			memcpy((char *)p + val_off(nlen), data, size);
	} else {
		p->val = A(data);
	}
	return p;
}

/* A block of its own holding a copy of @data; NULL with *err. */
static void *copy_new(struct rszshm *r, const void *data, size_t size, int *err)
{
	void *b = heap_alloc(r, size, err);

	if (b && size)
		memcpy(b, data, size);
	return b;
}

/*
 * Double the slot array when an insert would take the load past 1/2.  The
 * new array is filled from the old one's slots (no record is read) before
 * it is published, under seq odd.  An allocation failure only leaves the
 * load high (insert() refuses past 3/4).
 */
static int rehash(struct wr *w)
{
	struct idx *x = w->x;
	const struct slot *os;
	uint64_t n, n2, a, cnt = LD(x->count), moved = 0;
	struct bkt *b;
	int err;

	if (bkt_of(&w->v, x, &os, &n) < 0)
		return -EBADMSG;
	if (cnt + 1 <= n / 2 || n > (UINT64_MAX >> 5))
		return 0;
	n2 = n * 2;
	if (n2 > (SIZE_MAX - sizeof(*b)) / sizeof(struct slot) ||
	    !(b = heap_alloc(w->r, sizeof(*b) + n2 * sizeof(struct slot), &err)))
		return 0;
	memset(b->slot, 0, n2 * sizeof(struct slot));
	b->magic = BKT_MAGIC;
	b->n = n2;
	rszshm__view_of(w->r, &w->v);

	wr_begin(x);
	ST(x->op.aux, A(b));
	ST(x->op.old, LD(x->buckets));
	set_op(x, OP_REHASH);
	hook(9);
	for (uint64_t i = 0; i < n; i++) {
		if (!(a = LD(os[i].rec)))
			continue;
		if (++moved > cnt || slot_put(b->slot, n2, LD(os[i].hash), a) < 0)
			return -EBADMSG;	/* op left pending: repair rebuilds */
		if (moved == cnt / 2 + 1)
			hook(10);
	}
	if (moved != cnt)
		return -EBADMSG;
	STEP();
	trash_add(&w->t, LD(x->buckets));
	ST(x->buckets, A(b));
	ST(x->nslots, n2);
	clear_op(x);
	wr_end(x);
	return 0;
}

/* Append the complete record @p to the index.  Under the lock. */
static int insert(struct wr *w, struct rec *p)
{
	struct idx *x = w->x;
	const struct slot *cslot;
	struct slot *slot;
	uint64_t n, a = A(p), id, tail, h = LD(p->hash), e;
	struct rec *t = NULL;
	int rc;

	if ((rc = rehash(w)) < 0 || (rc = bkt_of(&w->v, x, &cslot, &n)) < 0)
		return rc;
	if (LD(x->nslots) != n)
		return -EBADMSG;	/* lookups would not see what we write */
	if (LD(x->count) + 1 > n - n / 4)
		return -ENOMEM;		/* the array could not double */
	slot = MUT(cslot);
	if ((e = slot_free(slot, n, h)) == n)
		return -EBADMSG;
	if ((tail = LD(x->tail)) && !(t = MUT(rec_at(&w->v, tail))))
		return -EBADMSG;
	id = LD(x->next_id);

	wr_begin(x);
	ST(x->op.rec, a);
	ST(x->op.aux, id);
	set_op(x, OP_INSERT);
	hook(1);
	ST(p->id, id);
	ST(p->stamp, rszshm__wait_next(w->r));
	ST(p->next, 0);
	ST(p->prev, tail);
	STEP();
	if (t)
		ST(t->next, a);
	else
		ST(x->head, a);
	STEP();
	hook(2);
	ST(x->tail, a);
	ST(slot[e].hash, h);
	ST(slot[e].rec, a);
	ST(x->next_id, id + 1);
	ST(x->count, LD(x->count) + 1);
	hook(3);
	clear_op(x);
	wr_end(x);
	hook(11);
	rszshm__wait_changed(w->r, h);
	return 0;
}

/* Give record @p a new value.  Under the lock; the old copy goes to trash. */
static void replace(struct wr *w, struct rec *p, uint64_t val, uint64_t size, uint32_t type,
		    uint8_t flags)
{
	struct idx *x = w->x;
	uint64_t old = LD(p->val), gen = LD(p->gen) + 1;
	uint8_t oldflags = LD(p->flags);

	wr_begin(x);
	ST(x->op.rec, A(p));
	ST(x->op.val, val);
	ST(x->op.size, size);
	ST(x->op.gen, gen);
	ST(x->op.type, type);
	ST(x->op.flags, flags);
	ST(x->op.old, old);
	ST(x->op.oldflags, oldflags);
	set_op(x, OP_REPLACE);
	hook(4);
	ST(p->val, val);
	STEP();
	hook(5);
	ST(p->size, size);
	ST(p->type, type);
	ST(p->flags, flags);
	ST(p->gen, gen);
	ST(p->stamp, rszshm__wait_next(w->r));
	hook(6);
	clear_op(x);
	wr_end(x);
	hook(11);
	rszshm__wait_changed(w->r, LD(p->hash));
	if (own_block(A(p), LD(p->namelen), old, oldflags) && old != val)
		trash_add(&w->t, old);
}

/* Unlink record @p (at @a).  Under the lock; it and its copy go to trash. */
static int unlink_rec(struct wr *w, uint64_t a, struct rec *p)
{
	struct idx *x = w->x;
	const struct slot *cslot;
	struct slot *slot;
	uint64_t n, i, pa = LD(p->prev), na = LD(p->next);
	struct rec *pp = NULL, *np = NULL;
	int rc;

	if ((rc = bkt_of(&w->v, x, &cslot, &n)) < 0)
		return rc;
	if (LD(x->nslots) != n)
		return -EBADMSG;
	slot = MUT(cslot);
	if ((pa && (!(pp = MUT(rec_at(&w->v, pa))) || LD(pp->next) != a)) ||
	    (!pa && LD(x->head) != a) ||
	    (na && (!(np = MUT(rec_at(&w->v, na))) || LD(np->prev) != a)) ||
	    (!na && LD(x->tail) != a))
		return -EBADMSG;
	if ((i = slot_of(slot, n, LD(p->hash), a)) == n)
		return -EBADMSG;

	wr_begin(x);
	ST(x->op.rec, a);
	set_op(x, OP_REMOVE);
	hook(7);
	if (pp)
		ST(pp->next, na);
	else
		ST(x->head, na);
	STEP();
	hook(8);
	if (np)
		ST(np->prev, pa);
	else
		ST(x->tail, pa);
	slot_del(slot, n, i);
	ST(x->count, LD(x->count) - 1);
	ST(p->magic, REC_DEAD);
	clear_op(x);
	wr_end(x);
	hook(11);
	rszshm__wait_changed(w->r, LD(p->hash));
	if (own_block(a, LD(p->namelen), LD(p->val), LD(p->flags)))
		trash_add(&w->t, LD(p->val));
	trash_add(&w->t, a);
	return 0;
}

/* --------------------------------------------------------- public API */

/*
 * Publish or store a value under @name.  @copy: @data is copied (put:
 * creates or replaces); otherwise @data is published as it is (add: EEXIST
 * if the name exists).  The copy is made before the lock is taken: into a
 * new record's own block if a lock-free lookup says the name is new, else
 * into a block of its own.  If another writer changed the answer meanwhile,
 * what is missing is made under the lock (rare).
 */
static int publish(struct rszshm *r, const char *name, uint32_t type, const void *data,
		   size_t size, bool copy)
{
	struct rec *p = NULL;
	const struct rec *e;
	void *b = NULL;
	uint64_t at, h;
	struct rd c;
	struct wr w;
	size_t nlen;
	int rc, found = 0;

	if ((rc = usable(r, true)) < 0 || (rc = name_ok(name, &nlen)) < 0)
		return rc;
	if (copy && !data && size)
		return -EINVAL;
	if (!copy) {
		uint64_t val = A(data), base = A(r->hdr) + sizeof(struct rszshm_hdr),
			 end = A(r->hdr) + rszshm__map_safe_len(r);

		if (!data || val < base || val > end || size > end - val)
			return -EINVAL;
	}
	if ((rc = ensure_idx(r)) < 0)
		return rc;

	if ((rc = rd_init(&c, r)) < 0)
		return rc;
	if (rc == 1) {
		h = hash_name(LD(c.x->seed), name, nlen);
		if (rd_begin(&c) == 0) {
			found = lookup(&c.v, c.x, name, nlen, h, &at, &e) == 1;
			if (!rd_end(&c))
				found = 0;	/* a guess either way */
		}
		if (found && copy)
			b = copy_new(r, data, size, &rc);
		else if (!found)
			p = rec_new(r, c.x, name, nlen, data, size, type, copy, &rc);
		if (rc < 0)
			return rc;
	}

	if ((rc = wr_lock(&w, r)) < 0)
		goto out;
	h = hash_name(LD(w.x->seed), name, nlen);
	if ((rc = lookup(&w.v, w.x, name, nlen, h, &at, &e)) < 0)
		goto unlock;
	if (rc == 1) {
		if (!copy) {
			rc = -EEXIST;
			goto unlock;
		}
		if (!b && !(b = copy_new(r, data, size, &rc)))
			goto unlock;
		replace(&w, MUT(e), A(b), size, type, REC_COPIED);
		b = NULL;
		rc = 0;
		goto unlock;
	}
	if (!p) {
		if (b)
			p = rec_new(r, w.x, name, nlen, b, size, type, false, &rc);
		else
			p = rec_new(r, w.x, name, nlen, data, size, type, copy, &rc);
		if (!p)
			goto unlock;
		if (b)
			p->flags = REC_COPIED;
		b = NULL;
		rszshm__view_of(r, &w.v);
	}
	if ((rc = insert(&w, p)) == 0)
		p = NULL;
unlock:
	wr_unlock(&w);
out:
	if (p && own_block(A(p), p->namelen, p->val, p->flags))
		rszshm__heap_free(r, (void *)(uintptr_t)p->val);
	if (p)
		rszshm__heap_free(r, p);
	if (b)
		rszshm__heap_free(r, b);
	return rc;
}

int rszshm_rec_add(struct rszshm *r, const char *name, uint32_t type, void *ptr, size_t size)
{
	int rc = publish(r, name, type, ptr, size, false);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rec_put(struct rszshm *r, const char *name, uint32_t type, const void *data,
		   size_t size)
{
	int rc = publish(r, name, type, data, size, true);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

/*
 * Read record @name: its value's fields in *s and, with @buf, the first
 * @len bytes of the value copied there, all from one consistent state.
 */
static int read_rec(struct rszshm *r, const char *name, void *buf, size_t len,
		    struct snap *s, struct rszshm_rec_info *info)
{
	const struct rec *p;
	const void *src;
	uint64_t at, h;
	struct rd c;
	size_t nlen;
	int rc;

	if ((rc = usable(r, false)) < 0 || (rc = name_ok(name, &nlen)) < 0)
		return rc;
	if ((rc = rd_init(&c, r)) <= 0)
		return rc < 0 ? rc : -ENOENT;
	h = hash_name(LD(c.x->seed), name, nlen);
	for (;;) {
		if ((rc = rd_begin(&c)) < 0)
			return rc;
		rc = lookup(&c.v, c.x, name, nlen, h, &at, &p);
		if (rc == 1) {
			snap_of(p, s);
			rc = 0;
			if (!(src = val_at(&c.v, s->val, s->size)))
				rc = -EBADMSG;
			else if (buf && len)
				memcpy(buf, src, s->size < len ? (size_t)s->size : len);
			if (rc == 0 && info)
				rc = fill_info(&c.v, at, p, s, info);
		} else if (rc == 0) {
			rc = -ENOENT;
		}
		if (rd_end(&c))
			return rc;
	}
}

void *rszshm_rec_find(struct rszshm *r, const char *name, struct rszshm_rec_info *info)
{
	struct snap s;
	int rc = read_rec(r, name, NULL, 0, &s, info);

	return rc < 0 ? RSZSHM__FAIL(rc, NULL) : (void *)(uintptr_t)s.val;
}

ssize_t rszshm_rec_get(struct rszshm *r, const char *name, void *buf, size_t len,
		       struct rszshm_rec_info *info)
{
	struct snap s;
	int rc;

	if (!buf && len)
		return RSZSHM__FAIL(-EINVAL, -1);
	if ((rc = read_rec(r, name, buf, len, &s, info)) < 0)
		return RSZSHM__FAIL(rc, -1);
	if (s.size > SSIZE_MAX)
		return RSZSHM__FAIL(-EOVERFLOW, -1);
	return (ssize_t)s.size;
}

int rszshm__rec_stamp(struct rszshm *r, const char *name, uint64_t *stamp)
{
	struct snap s;
	int rc = read_rec(r, name, NULL, 0, &s, NULL);

	*stamp = rc == 0 ? s.stamp : 0;
	return rc == -ENOENT ? 0 : rc;
}

static int remove_name(struct rszshm *r, const char *name)
{
	const struct rec *p;
	uint64_t at, h;
	struct wr w;
	size_t nlen;
	int rc;

	if ((rc = usable(r, true)) < 0 || (rc = name_ok(name, &nlen)) < 0)
		return rc;
	if ((rc = wr_lock(&w, r)) < 0)
		return rc;
	h = hash_name(LD(w.x->seed), name, nlen);
	if ((rc = lookup(&w.v, w.x, name, nlen, h, &at, &p)) == 1)
		rc = unlink_rec(&w, at, MUT(p));
	else if (rc == 0)
		rc = -ENOENT;
	wr_unlock(&w);
	return rc;
}

int rszshm_rec_remove(struct rszshm *r, const char *name)
{
	int rc = remove_name(r, name);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

/* Remove the records inserted before the call, one lock hold each. */
static int clear_all(struct rszshm *r)
{
	uint64_t stop = 0, a;
	const struct rec *p;
	struct wr w;
	int rc;

	if ((rc = usable(r, true)) < 0)
		return rc;
	for (;;) {
		if ((rc = wr_lock(&w, r)) < 0)
			return rc == -ENOENT ? 0 : rc;
		if (!stop)
			stop = LD(w.x->next_id);
		a = LD(w.x->head);
		if (!a) {
			wr_unlock(&w);
			return 0;
		}
		if (!(p = rec_at(&w.v, a)) || LD(p->magic) != REC_LIVE)
			rc = -EBADMSG;
		else if (LD(p->id) >= stop)
			rc = 1;
		else
			rc = unlink_rec(&w, a, MUT(p));
		wr_unlock(&w);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
}

int rszshm_rec_clear(struct rszshm *r)
{
	int rc = clear_all(r);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

static int next_rec(struct rszshm *r, struct rszshm_rec_iter *it, struct rszshm_rec_info *info)
{
	struct rszshm_rec_iter t;
	struct rd c;
	int rc;

	if ((rc = usable(r, false)) < 0)
		return rc;
	if (!it)
		return -EINVAL;
	if ((rc = rd_init(&c, r)) <= 0)
		return rc;
	for (;;) {
		if ((rc = rd_begin(&c)) < 0)
			return rc;
		t = *it;
		rc = next_in(&c.v, c.x, &t, info);
		if (rd_end(&c))
			break;
	}
	if (rc == 1)
		*it = t;
	return rc;
}

int rszshm_rec_next(struct rszshm *r, struct rszshm_rec_iter *it, struct rszshm_rec_info *info)
{
	int rc = next_rec(r, it, info);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : rc;
}

/* --------------------------------------------------------------- views */

int rszshm__rec_view_next(const struct rszshm__view *v, struct rszshm_rec_iter *it,
			  struct rszshm_rec_info *info)
{
	struct rszshm_rec_iter t;
	const struct idx *x;
	uint64_t s;
	int rc;

	if ((rc = idx_of(v, &x)) <= 0)
		return rc;
	for (unsigned i = 0;; i++) {
		s = __atomic_load_n(&x->seq, __ATOMIC_ACQUIRE);
		t = *it;
		rc = next_in(v, x, &t, info);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if ((!(s & 1) && LD(x->seq) == s) || i + 1 >= VIEW_TRIES)
			break;
		relax(i);
	}
	if (rc == 1)
		*it = t;
	return rc;
}

#define SAY(...) (snprintf(msg, msglen, "records: " __VA_ARGS__), 1)

/*
 * Is record @a, named @nm, on its probe run (from its home slot, before an
 * empty one), and alone there with its name?  @work counts the slots read,
 * and must stay within @budget.
 */
static int run_has(const struct rszshm__view *v, const struct slot *s, uint64_t n, uint64_t a,
		   uint64_t h, const char *nm, size_t len, uint64_t *work, uint64_t budget,
		   char *msg, size_t msglen)
{
	uint64_t i = h & (n - 1), c;
	const struct rec *q;
	const char *qn;
	size_t ql;
	bool seen = false;

	for (uint64_t k = 0; k < n && (c = LD(s[i].rec)); k++, i = succ(i, n)) {
		if (++*work > budget)
			return SAY("probe runs are far too long for %" PRIu64 " slots", n);
		if (c == a) {
			seen = true;
			continue;
		}
		if (LD(s[i].hash) != h)
			continue;
		if ((q = rec_at(v, c)) && (qn = name_of(v, c, q, &ql)) && ql == len &&
		    memcmp(qn, nm, len) == 0)
			return SAY("name \"%s\" is on the index twice", nm);
	}
	return seen ? 0 : SAY("record \"%s\" is missing from its probe run", nm);
}

/* One pass over the index; 0 if consistent, 1 with @msg. */
static int walk_once(const struct rszshm__view *v, const struct idx *x, uint64_t *records,
		     char *msg, size_t msglen)
{
	uint64_t n, a, cnt = LD(x->count), seen = 0, prev = 0, lastid = 0, total = 0;
	uint64_t seed = LD(x->seed), next_id = LD(x->next_id), kind = LD(x->op.kind);
	uint64_t work = 0, budget;
	const struct slot *slot;
	const struct rec *p;
	const char *nm;
	size_t len;
	int rc;

	if (kind != OP_NONE)
		return SAY("an update (op %" PRIu64 ") was left unfinished by a writer that died;"
			   " the next writer repairs it", kind);
	if (bkt_of(v, x, &slot, &n) < 0)
		return SAY("bucket array at %#" PRIx64 " is damaged or outside the region",
			   LD(x->buckets));
	if (LD(x->nslots) != n)
		return SAY("the index says %" PRIu64 " slots, its array has %" PRIu64,
			   LD(x->nslots), n);
	if (cnt > max_recs(v) || cnt >= n)
		return SAY("count %" PRIu64 " is impossible in %" PRIu64 " bytes and %" PRIu64
			   " slots", cnt, v->len, n);

	/*
	 * The slots first: each record in them live, with its own hash beside
	 * it, as many as the count.  @work then counts the slots the probe-run
	 * searches of the list pass read: a sound array stays far below the
	 * budget (the load is at most 3/4).
	 */
	budget = 64 * (cnt + n);
	for (uint64_t i = 0; i < n; i++) {
		if (!(a = LD(slot[i].rec)))
			continue;
		if (!(p = rec_at(v, a)))
			return SAY("slot %" PRIu64 " leads outside the region", i);
		if (LD(p->magic) != REC_LIVE)
			return SAY("record at %#" PRIx64 " in slot %" PRIu64 " has a bad magic", a, i);
		if (LD(slot[i].hash) != LD(p->hash))
			return SAY("record at %#" PRIx64 " is in a slot with the wrong hash", a);
		if (++total > cnt)
			return SAY("slots hold more records than the count (%" PRIu64 ")", cnt);
	}
	if (total != cnt)
		return SAY("slots hold %" PRIu64 " records, the count says %" PRIu64, total, cnt);

	/* Then the list, in insertion order; each record found on its probe run. */
	for (a = LD(x->head); a; prev = a, a = LD(p->next)) {
		uint64_t id, val, size;

		if (!(p = rec_at(v, a)))
			return SAY("record #%" PRIu64 " at %#" PRIx64 " is outside the region",
				   seen + 1, a);
		if (LD(p->magic) != REC_LIVE)
			return SAY("record #%" PRIu64 " at %#" PRIx64 " has a bad magic", seen + 1, a);
		if (++seen > cnt)
			return SAY("the list is longer than the count (%" PRIu64 "): a loop?", cnt);
		if (!(nm = name_of(v, a, p, &len)))
			return SAY("record #%" PRIu64 " at %#" PRIx64 " has a malformed name",
				   seen, a);
		if (LD(p->prev) != prev)
			return SAY("record \"%s\": back link is wrong", nm);
		if (LD(p->hash) != hash_name(seed, nm, len))
			return SAY("record \"%s\": stored hash is wrong", nm);
		id = LD(p->id);
		if (id <= lastid || id >= next_id)
			return SAY("record \"%s\": insertion id %" PRIu64 " is out of order", nm, id);
		lastid = id;
		if (LD(p->flags) & ~REC_COPIED)
			return SAY("record \"%s\": unknown flags %#x", nm, (unsigned)LD(p->flags));
		val = LD(p->val);
		size = LD(p->size);
		if (!val_at(v, val, size))
			return SAY("record \"%s\": value [%#" PRIx64 ", +%" PRIu64
				   ") is outside the region or in its header", nm, val, size);
		if ((rc = run_has(v, slot, n, a, LD(p->hash), nm, len, &work, budget, msg, msglen)))
			return rc;
	}
	if (seen != cnt)
		return SAY("the list holds %" PRIu64 " records, the count says %" PRIu64, seen, cnt);
	if (LD(x->tail) != prev)
		return SAY("tail %#" PRIx64 " is not the last record %#" PRIx64, LD(x->tail), prev);
	*records = cnt;
	return 0;
}

int rszshm__rec_walk(const struct rszshm__view *v, struct rszshm_stats *st, char *msg,
		     size_t msglen)
{
	char scratch[8];
	uint64_t records = 0, s;
	const struct idx *x;
	int rc;

	if (!msg || !msglen) {
		msg = scratch;
		msglen = sizeof(scratch);
	}
	if ((rc = idx_of(v, &x)) < 0)
		return SAY("the index at %#" PRIx64 " is damaged or outside the region",
			   rszshm__shared(rszshm__view_hdr(v))->recs);
	if (rc == 0)
		return 0;
	for (unsigned i = 0;; i++) {
		s = __atomic_load_n(&x->seq, __ATOMIC_ACQUIRE);
		if ((s & 1) && i + 1 < VIEW_TRIES) {
			relax(i + 8);
			continue;
		}
		if (s & 1) {
			rc = SAY("an update is in progress, or was left unfinished by a writer"
				 " that died (op %" PRIu64 ")", LD(x->op.kind));
			break;
		}
		rc = walk_once(v, x, &records, msg, msglen);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (LD(x->seq) == s || i + 1 >= VIEW_TRIES)
			break;
		relax(i + 8);
	}
	if (rc == 0)
		st->records += records;
	return rc;
}
