/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rec.c - named records, the writers: making the index, inserting,
 * replacing and removing records under the index lock, doubling the slot
 * array, and the public calls that write (rszshm_rec_add/put/remove/clear).
 * The layout and the index's invariants are in rec.h; the lock is taken,
 * and what a dead writer left is redone, by rec-repair.c.
 *
 * What a writer promises besides rec.h's invariants:
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
 *  - Each step of a write section that the next locker must find done or
 *    not done is fenced off with STEP(), and numbered for tests by hook().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "rec.h"

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
	if ((rc = rszshm__rec_lock_idx(r)) < 0)
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
	rszshm__rec_unlock_idx(r);
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
	if ((rc = rszshm__rec_lock_idx(r)) < 0)
		return rc;
	rszshm__view_of(r, &w->v);
	if ((rc = idx_of(&w->v, &x)) <= 0) {
		rszshm__rec_unlock_idx(r);
		return rc < 0 ? rc : -ENOENT;
	}
	w->x = MUT(x);
	return 0;
}

static void wr_unlock(struct wr *w)
{
	rszshm__rec_unlock_idx(w->r);
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

static int do_rec_add(struct rszshm *r, const char *name, uint32_t type, void *ptr, size_t size)
{
	int rc = publish(r, name, type, ptr, size, false);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rec_add(struct rszshm *r, const char *name, uint32_t type, void *ptr, size_t size)
{
	RSZSHM__GUARDED(r, int, -1, do_rec_add(r, name, type, ptr, size));
}

static int do_rec_put(struct rszshm *r, const char *name, uint32_t type, const void *data,
		   size_t size)
{
	int rc = publish(r, name, type, data, size, true);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rec_put(struct rszshm *r, const char *name, uint32_t type, const void *data,
		   size_t size)
{
	RSZSHM__GUARDED(r, int, -1, do_rec_put(r, name, type, data, size));
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

static int do_rec_remove(struct rszshm *r, const char *name)
{
	int rc = remove_name(r, name);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rec_remove(struct rszshm *r, const char *name)
{
	RSZSHM__GUARDED(r, int, -1, do_rec_remove(r, name));
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

static int do_rec_clear(struct rszshm *r)
{
	int rc = clear_all(r);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rec_clear(struct rszshm *r)
{
	RSZSHM__GUARDED(r, int, -1, do_rec_clear(r));
}
