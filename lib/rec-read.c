/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rec-read.c - named records, the lock-free readers: rszshm_rec_find(),
 * rszshm_rec_get(), rszshm_rec_next(), rszshm__rec_stamp() (for wait.c) and
 * rszshm__rec_view_next() (for rszshm-dump's view of a region mapped
 * elsewhere).  Each reads under rec.h's seqlock protocol (rd_begin(),
 * rd_end(): retry while a writer moved seq, fall back to the lock on a
 * writable handle), follows the index only through rec.h's bounded readers,
 * and copies what it returns before it checks seq again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "rec.h"

/* One record's value fields, read once. */
struct snap {
	uint64_t val, size, gen, stamp;
	uint32_t type;
	uint8_t flags;
};

static inline void snap_of(const struct rec *p, struct snap *s)
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

/*
 * The first try of a lookup, in the public call's own frame, with no call
 * and no reader state: the checks of read_rec() on the way (the handle, the
 * name, the index's root, the slot array, the record, the value's bounds)
 * and one seqlock read.  True with the value's address and size in *val
 * and *size, and @len bytes of it copied to @buf; false for anything else
 * (no index, a writer at work or seq moved, an absent name, damage, a bad
 * argument), which read_rec() then does whole and reports.
 */
static inline __attribute__((always_inline)) bool read_fast(struct rszshm *r, const char *name,
							     void *buf, size_t len, uint64_t *val,
							     uint64_t *size)
{
	struct rszshm__view v;
	const struct idx *x;
	const struct rec *p;
	const void *src;
	uint64_t seq, h, at;
	size_t nlen;

	if (usable(r, false) < 0 || name_ok(name, &nlen) < 0)
		return false;
	rszshm__view_of(r, &v);
	if (idx_of(&v, &x) <= 0)
		return false;
	h = hash_name(LD(x->seed), name, nlen);
	seq = __atomic_load_n(&x->seq, __ATOMIC_ACQUIRE);
	if (seq & 1)
		return false;
	v.len = rszshm__map_safe_len(r);
	if (lookup(&v, x, name, nlen, h, &at, &p) != 1)
		return false;
	*val = LD(p->val);
	*size = LD(p->size);
	if (!(src = val_at(&v, *val, *size)))
		return false;
	if (buf && len)
		memcpy(buf, src, *size < len ? (size_t)*size : len);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return LD(x->seq) == seq;
}

static void *do_rec_find(struct rszshm *r, const char *name, struct rszshm_rec_info *info)
{
	struct snap s;
	int rc = read_rec(r, name, NULL, 0, &s, info);

	return rc < 0 ? RSZSHM__FAIL(rc, NULL) : (void *)(uintptr_t)s.val;
}

static __attribute__((noinline)) void *rec_find_full(struct rszshm *r, const char *name,
						     struct rszshm_rec_info *info)
{
	RSZSHM__GUARDED(r, void *, NULL, do_rec_find(r, name, info));
}

/* A lookup without @info tries read_fast() first, in a frame of its own;
 * what it does not take goes to the full path whole, as rszshm_alloc()'s. */
void *rszshm_rec_find(struct rszshm *r, const char *name, struct rszshm_rec_info *info)
{
	struct rszshm__guard g;
	uint64_t val, size;
	bool hit;

	if (info)
		return rec_find_full(r, name, info);
	rszshm__guard_enter(&g, r);
	hit = read_fast(r, name, NULL, 0, &val, &size);
	if (__builtin_expect(rszshm__guard_leave(&g), 0))
		return rszshm__guard_fail(), NULL;
	return hit ? (void *)(uintptr_t)val : rec_find_full(r, name, NULL);
}

static ssize_t do_rec_get(struct rszshm *r, const char *name, void *buf, size_t len,
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

static __attribute__((noinline)) ssize_t rec_get_full(struct rszshm *r, const char *name, void *buf,
						      size_t len, struct rszshm_rec_info *info)
{
	RSZSHM__GUARDED(r, ssize_t, -1, do_rec_get(r, name, buf, len, info));
}

ssize_t rszshm_rec_get(struct rszshm *r, const char *name, void *buf, size_t len,
		       struct rszshm_rec_info *info)
{
	struct rszshm__guard g;
	uint64_t val, size;
	bool hit;

	if (info || (!buf && len))
		return rec_get_full(r, name, buf, len, info);
	rszshm__guard_enter(&g, r);
	hit = read_fast(r, name, buf, len, &val, &size) && size <= SSIZE_MAX;
	if (__builtin_expect(rszshm__guard_leave(&g), 0))
		return rszshm__guard_fail(), -1;
	return hit ? (ssize_t)size : rec_get_full(r, name, buf, len, NULL);
}

int rszshm__rec_stamp(struct rszshm *r, const char *name, uint64_t *stamp)
{
	struct snap s;
	int rc = read_rec(r, name, NULL, 0, &s, NULL);

	*stamp = rc == 0 ? s.stamp : 0;
	return rc == -ENOENT ? 0 : rc;
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

static int do_rec_next(struct rszshm *r, struct rszshm_rec_iter *it, struct rszshm_rec_info *info)
{
	int rc = next_rec(r, it, info);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : rc;
}

int rszshm_rec_next(struct rszshm *r, struct rszshm_rec_iter *it, struct rszshm_rec_info *info)
{
	RSZSHM__GUARDED(r, int, -1, do_rec_next(r, it, info));
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
