/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rec-walk.c - named records, the walker behind rszshm_check() and
 * rszshm_stats(): reads a view only (it takes no lock, so it works on a
 * read-only or dead process's region), checks every invariant of rec.h
 * with every address bounds-checked and every walk bounded, and names the
 * first damage it finds.  A pass is retried while a writer moves seq.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rec.h"

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
