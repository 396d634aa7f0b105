/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seeds.c - the region images fuzz-dump starts from (see seeds.h):
 *   raw            a raw region, a few bytes written
 *   raw-allocate   the same with RSZSHM_ALLOCATE
 *   heap-empty     a heap region, nothing allocated
 *   heap-records   the records fuzz-dump shows with --hex (alpha, beta), a
 *                  pointer record, an odd name, a replaced value
 *   heap-churn     small blocks of three classes and two large ones
 *                  allocated and some freed, records added and removed:
 *                  free lists, partial segments, a FREE run, a grown index
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rszshm.h>

#include "seeds.h"

#define TRY(what, ok) do { if (!(ok)) { \
	fprintf(stderr, "seeds: %s: %s\n", (what), strerror(errno)); goto fail; } } while (0)

static int mk(struct rszshm *r, unsigned flags)
{
	/* An explicit scan (ccan's spiral around the default's start), not the
	 * default, which the address plan places anywhere: the seeds keep one
	 * address from build to build. */
	struct rszshm_scan s = RSZSHM_DFLT_SCAN;

	s.iter = 9;
	if (rszshm_mk_flags(r, 4096, NULL, s, flags | RSZSHM_ANON))
		return 0;
	fprintf(stderr, "seeds: making a region: %s\n", strerror(errno));
	return -1;
}

static int put(struct rszshm *r, const char *name, uint32_t type, size_t size, unsigned k)
{
	unsigned char v[1024];

	for (size_t i = 0; i < size && i < sizeof(v); i++)
		v[i] = (unsigned char)(i * 7 + k);
	return rszshm_rec_put(r, name, type, v, size < sizeof(v) ? size : sizeof(v));
}

static void emit_dt(struct rszshm *r, const char *name, seed_emit *emit, void *arg)
{
	emit(name, r->hdr, (size_t)r->hdr->flen, arg);
	rszshm_dt(r);
}

int seeds_make(seed_emit *emit, void *arg)
{
	struct rszshm r;
	void *blocks[64];
	char name[32];

	if (mk(&r, 0) < 0)
		return -1;
	memcpy(r.dat, "raw bytes", 9);
	emit_dt(&r, "raw", emit, arg);
	if (mk(&r, RSZSHM_ALLOCATE) < 0)
		return -1;
	emit_dt(&r, "raw-allocate", emit, arg);

	if (mk(&r, RSZSHM_HEAP) < 0)
		return -1;
	emit_dt(&r, "heap-empty", emit, arg);

	if (mk(&r, RSZSHM_HEAP) < 0)
		return -1;
	TRY("put", put(&r, "alpha", 7, 40, 1) == 0);
	TRY("put", put(&r, "beta", 0x1234abcd, 300, 2) == 0);
	TRY("zalloc", (blocks[0] = rszshm_zalloc(&r, 100)) != NULL);
	TRY("add", rszshm_rec_add(&r, "gamma", 3, blocks[0], 100) == 0);
	TRY("put", put(&r, "odd \"name\" \\ \n\x01\xff", 9, 5, 3) == 0);
	TRY("put", put(&r, "alpha", 7, 48, 4) == 0);
	emit_dt(&r, "heap-records", emit, arg);

	if (mk(&r, RSZSHM_HEAP) < 0)
		return -1;
	/* Three size classes, a free small block in each; two large runs, one
	 * of them freed (a FREE run). */
	for (unsigned i = 0; i < 48; i++) {
		static const size_t sizes[] = { 16, 48, 200 };

		TRY("alloc", (blocks[i] = rszshm_alloc(&r, sizes[i % 3])) != NULL);
	}
	TRY("alloc", (blocks[48] = rszshm_alloc(&r, 20000)) != NULL);
	TRY("alloc", (blocks[49] = rszshm_alloc(&r, 70000)) != NULL);
	for (unsigned i = 0; i < 49; i += 2)
		TRY("dealloc", rszshm_dealloc(&r, blocks[i]) == 0);
	for (unsigned i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "rec-%u", i);
		TRY("put", put(&r, name, i, 8 + i, i) == 0);
	}
	for (unsigned i = 0; i < 40; i += 3) {
		snprintf(name, sizeof(name), "rec-%u", i);
		TRY("remove", rszshm_rec_remove(&r, name) == 0);
	}
	TRY("put", put(&r, "alpha", 1, 16, 5) == 0);
	TRY("put", put(&r, "beta", 2, 64, 6) == 0);
	emit_dt(&r, "heap-churn", emit, arg);
	return 0;
fail:
	rszshm_dt(&r);
	return -1;
}
