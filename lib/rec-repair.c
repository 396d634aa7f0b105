/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rec-repair.c - named records, the index lock and its repair: taking
 * shared->rec_lock, and, when its holder died (EOWNERDEAD) or left an op
 * pending or seq odd, redoing the op the dead writer wrote in idx->op (its
 * redo record, see rec.h), rebuilding the derived fields (prev links, tail,
 * count, next_id, hashes and the slot array) from the forward list, freeing
 * what the op unlinked, waking every waiter (the dead one may have changed
 * a record without waking anyone) and marking the mutex consistent.  Damage
 * it cannot repair is reported (ENOTRECOVERABLE) to every later caller.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>

#include "rec.h"

static pthread_mutex_t *rec_lock(const struct rszshm *r)
{
	return &rszshm__shared(r->hdr)->rec_lock;
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
int rszshm__rec_lock_idx(struct rszshm *r)
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

void rszshm__rec_unlock_idx(struct rszshm *r)
{
	rszshm__unlock(rec_lock(r));
}
