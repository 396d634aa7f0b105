/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap/walk.c - the heap's read-only walker, behind rszshm_check(),
 * rszshm_stats() and rszshm-dump.
 *
 * Reads a view (rszshm__view_ptr() bounds every read), never writes, never
 * takes a lock: on a region in use it checks the invariants a crash cannot
 * break everywhere, and those a writer may have in progress (counts, listed
 * flags, stale prev links, pending slots) only where the lock's busy flag
 * is clear.  Returns the first violation found, in words.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "heap.h"

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
	uint64_t nslots;		/* SLOTS runs */
	uint64_t *spare;		/* blocks free though live: pending, cached */
	size_t nspare, spare_cap;
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
	rszshm__heap_geom(c, &nb, &first);
	if (bsize != rszshm__heap_cls_size[c] || RD(s->nblocks) != nb || RD(s->first) != first)
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
		case K_SLOTS:
			if (n != 1 || RD(s->first) != 64 || RD(s->nblocks) != SLOTS_PER_RUN ||
			    RD(s->bsize) != sizeof(struct tslot))
				return damaged(w, "segment %" PRIu64 ": thread slots of a wrong geometry", i);
			w->nslots++;
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

static int spare_add(struct walk *w, uint64_t v)
{
	uint64_t *n;

	if (w->nspare == w->spare_cap) {
		w->spare_cap = w->spare_cap ? w->spare_cap * 2 : 256;
		if (!(n = realloc(w->spare, w->spare_cap * sizeof(*n))))
			return -ENOMEM;
		w->spare = n;
	}
	w->spare[w->nspare++] = v;
	return 0;
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

/* The run whose first segment holds block address @v, in *i; false if none. */
static bool run_of(const struct walk *w, uint64_t v, uint64_t *i)
{
	return v > w->v->base && run_start(w, w->v->base + ((v - 1 - w->v->base) & ~(SEG - 1)), i);
}

/*
 * Is @v a block start of the SMALL segment @s at segment @i, of blocks of
 * @bs bytes: -1 no, else whether its bitmap bit is set (1) or not (0).
 */
static int block_bit(const struct walk *w, uint64_t i, const struct seg *s, uint64_t v, uint32_t bs)
{
	uint64_t b0 = w->v->base + (i << SEG_SHIFT) + RD(s->first), off, idx;
	const uint64_t *word;

	if (v < b0 || (off = v - b0) % bs || (idx = off / bs) >= RD(s->nblocks))
		return -1;
	word = rszshm__view_ptr(w->v, w->v->base + (i << SEG_SHIFT) + SEG_HDR + idx / 64 * 8, 8);
	return word && ((RD(*word) >> (idx % 64)) & 1);
}

/* Block @v of @bs bytes, live in its bitmap, is free (pending or cached):
 * count it so, and remember it for walk_spare(). */
static int count_spare(struct walk *w, uint64_t v, uint32_t bs)
{
	w->st->blocks--;
	w->st->used_bytes -= bs;
	w->st->free_bytes += bs;
	return spare_add(w, v);
}

/* Blocks freed into arena @ai's pending slots: free, though live in bitmaps. */
static int walk_pending(struct walk *w, unsigned ai)
{
	const struct arena *a = &w->c->arenas[ai];
	const struct seg *s;
	unsigned k, j;
	uint32_t bs, c;
	uint64_t v, i;
	int bit;

	for (k = 0; k < NPENDING; k++) {
		if ((v = RD(a->pending[k])) == 0)
			continue;
		for (j = 0; j < k; j++)
			if (RD(a->pending[j]) == v)
				return damaged(w, "arena %u: block 0x%" PRIx64 " pending twice", ai, v);
		if (!run_of(w, v, &i))
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not in a run", ai, v);
		s = wseg(w, i);
		if (RD(s->kind) != K_SMALL || RD(s->arena) != ai)
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not a block of the arena",
				       ai, v);
		/* Read the geometry again: walk_small() checked it, but on a
		 * region in use the segment may have been reused since. */
		c = RD(s->cls);
		bs = RD(s->bsize);
		if (c >= NCLS || bs != rszshm__heap_cls_size[c]) {
			if (w->busy[ai])
				continue;	/* its segment is being reused */
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is in a segment of no class",
				       ai, v);
		}
		if ((bit = block_bit(w, i, s, v, bs)) < 0)
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not a block start", ai, v);
		if (!bit) {
			if (w->busy[ai])
				continue;	/* its free was under way */
			return damaged(w, "arena %u: pending 0x%" PRIx64 " is not live", ai, v);
		}
		if (count_spare(w, v, bs) < 0)
			return -ENOMEM;
	}
	return 0;
}

/*
 * The cached blocks of thread slot @t (slot @k of the run at segment @i):
 * each a live block of its class, free though its bit is set.
 */
static int walk_slot(struct walk *w, uint64_t i, uint32_t k, const struct tslot *t)
{
	const struct seg *s;
	uint32_t n, j, bs;
	uint64_t v, seg;
	unsigned c;
	int bit;

	for (c = 0; c < NCACHE; c++) {
		if ((n = RD(t->n[c])) > CACHE_CAP)
			return damaged(w, "thread slot %" PRIu64 ".%u caches %u blocks of class %u",
				       i, k, n, c);
		bs = rszshm__heap_cls_size[c];
		for (j = 0; j < n; j++) {
			v = RD(t->blk[c][j]);
			if (!run_of(w, v, &seg))
				return damaged(w, "thread slot %" PRIu64 ".%u caches 0x%" PRIx64
					       ", not in a run", i, k, v);
			s = wseg(w, seg);
			if (RD(s->kind) != K_SMALL || RD(s->cls) != c ||
			    (bit = block_bit(w, seg, s, v, bs)) < 0)
				return damaged(w, "thread slot %" PRIu64 ".%u caches 0x%" PRIx64
					       ", not a block of class %u", i, k, v, c);
			if (!bit)
				return damaged(w, "thread slot %" PRIu64 ".%u caches 0x%" PRIx64
					       ", which is free", i, k, v);
			if (count_spare(w, v, bs) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* The SLOTS runs: named by the control block, each one once. */
static int walk_slots(struct walk *w)
{
	uint64_t a, i, named = 0;
	const struct seg *s;
	const struct tslot *t;
	unsigned k, j;
	uint32_t m;
	int rc;

	for (k = 0; k < NSLOTRUNS; k++) {
		if ((a = RD(w->c->slot_runs[k])) == 0)
			continue;
		if (!run_start(w, a, &i) || RD((s = wseg(w, i))->kind) != K_SLOTS) {
			if (w->gbusy)
				continue;
			return damaged(w, "thread slots at 0x%" PRIx64 " are not a slots run", a);
		}
		for (j = 0; j < k; j++)
			if (RD(w->c->slot_runs[j]) == a)
				return damaged(w, "thread slots at 0x%" PRIx64 " named twice", a);
		named++;
		for (m = 0; m < SLOTS_PER_RUN; m++) {
			if (!(t = rszshm__view_ptr(w->v, a + 64 + (uint64_t)m * sizeof(*t), sizeof(*t))))
				return damaged(w, "thread slots at 0x%" PRIx64 " past the end", a);
			if ((rc = walk_slot(w, i, m, t)) != 0)
				return rc;
		}
	}
	if (!w->gbusy && named != w->nslots)
		return damaged(w, "%" PRIu64 " runs of thread slots are not named", w->nslots - named);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* No block is free twice: in two caches, or cached and pending. */
static int walk_spare(struct walk *w)
{
	size_t i;

	if (w->nspare < 2)
		return 0;
	qsort(w->spare, w->nspare, sizeof(uint64_t), cmp_u64);
	for (i = 1; i < w->nspare; i++)
		if (w->spare[i] == w->spare[i - 1])
			return damaged(w, "block 0x%" PRIx64 " is free twice (cached or pending)",
				       w->spare[i]);
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
	if ((rc = walk_slots(w)) != 0 || (rc = walk_spare(w)) != 0)
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
	free(w->spare);
	free(w);
	return rc;
}

