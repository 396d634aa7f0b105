/* SPDX-License-Identifier: Apache-2.0 */
/*
 * span.c - claiming a span of addresses.
 *
 * A span is a PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE mapping:
 * it costs address space only, no memory and no commit charge.  It is always
 * made with MAP_FIXED_NOREPLACE, so it never replaces anything already mapped;
 * on a kernel that ignores that flag (before 4.17) the address is a hint, and
 * a mapping that landed elsewhere is unmapped and counted as "taken".
 *
 * rszshm__span_probe() is the spiral search of struct rszshm_scan: start,
 * start - hop, start + hop, start - 2*hop, ...; rszshm__span_probe_skip() is
 * the same search passing over the tries its caller refuses (plan.c: spans
 * that live regions hold).  rszshm__span_try() claims one address and says
 * why not (-EEXIST: something is there); rszshm__span_claim() wants exactly
 * one address, and the caller later maps the region's file over the span
 * with MAP_FIXED, which is safe because the span is ours.
 * rszshm__span_claim_file() (rszshm_at()) claims the span by mapping the
 * file over all of it at once, with the same flag: one mapping, not two.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* 0 when @addr..+@len is now ours, -EEXIST when something is there, or the
 * kernel's error (ENOMEM: the span does not fit the address space). */
static int claim(void *addr, size_t len)
{
	void *m;
	int rc = rszshm__sys_mmap(addr, len, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
				  -1, &m);

	if (rc < 0)
		return rc;
	if (m != addr) {
		rszshm__sys_munmap(m, len);
		return -EEXIST;
	}
	return 0;
}

int rszshm__span_probe_skip(const struct rszshm_scan *scan, size_t len,
			    bool (*skip)(void *ctx, uintptr_t addr, size_t len), void *ctx,
			    void **out)
{
	uintptr_t tgt = (uintptr_t)scan->start;
	bool taken = false;
	unsigned i;

	for (i = 1; i <= scan->iter; i++) {
		int rc = -EEXIST;

		/* A try at NULL or misaligned is "taken"; one that would wrap
		 * around the address space cannot hold the span (ENOMEM); one
		 * that @skip refuses (a live region holds it) is "taken". */
		if (tgt != 0 && tgt % rszshm__page_size() == 0) {
			if (len > UINTPTR_MAX - tgt)
				rc = -ENOMEM;
			else if (!skip || !skip(ctx, tgt, len))
				rc = claim((void *)tgt, len);
		}
		if (rc == 0) {
			*out = (void *)tgt;
			return 0;
		}
		/* ENOMEM: this address cannot hold the span; others may. */
		if (rc == -EEXIST)
			taken = true;
		else if (rc != -ENOMEM)
			return rc;
		/* The spiral: -1, +2, -3, +4, ... hops from the previous try. */
		if (i % 2 == 0)
			tgt += (uintptr_t)i * scan->hop;
		else
			tgt -= (uintptr_t)i * scan->hop;
	}
	/* Only ENOMEM everywhere: the span is larger than the address space. */
	return taken ? -ENOSPC : -ENOMEM;
}

int rszshm__span_probe(const struct rszshm_scan *scan, size_t len, void **out)
{
	return rszshm__span_probe_skip(scan, len, NULL, NULL, out);
}

int rszshm__span_try(void *addr, size_t len)
{
	return claim(addr, len);
}

int rszshm__span_claim(void *addr, size_t len)
{
	int rc = claim(addr, len);

	return rc == -EEXIST ? -ENOSPC : rc;
}

int rszshm__span_claim_file(void *addr, size_t len, int prot, int fd)
{
	void *m;
	int rc = rszshm__sys_mmap(addr, len, prot, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, &m);

	if (rc == -EEXIST)
		return -ENOSPC;
	if (rc < 0)
		return rc;
	if (m != addr) {
		rszshm__sys_munmap(m, len);
		return -ENOSPC;
	}
	return 0;
}
