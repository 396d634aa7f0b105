/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-make.c - the make workload: what making a region costs.
 *
 *  make  rszshm_mk + rszshm_dt + rszshm_rm of a small region (4 KiB of data,
 *        the default 4 GiB span, a fresh mkdtemp directory as the default
 *        name has), in microseconds per cycle.  The floor is the same system
 *        calls done bare in the same run: mkdtemp, open(O_CREAT | O_EXCL),
 *        ftruncate, mmap of the same span length, munmap, close, unlink,
 *        rmdir.  "rszshm" runs with no other region alive; "rszshm-1000-live"
 *        with 1,000 other regions alive (made, detached and left on file),
 *        so the address plan holds 1,000 entries that every make reads past.
 *        Each run interleaves rszshm and the floor in slices of 50 cycles,
 *        so that the machine's load weighs on both alike; the floor printed
 *        is the median of all floor runs (with and without the live
 *        regions), each other figure the median over runs of a run's mean.
 *        "floor-fixed" is the floor of a region at a fixed address: the
 *        same calls, and the 512-byte header written (pwrite), the file
 *        mapped at an address far from the process's other mappings, as
 *        a region's span is (MAP_FIXED_NOREPLACE, 4 GiB apart in the middle
 *        of the address space), and one store through the mapping, as any
 *        first use makes.  That store needs page-table pages of its own
 *        (one for each level the process has none at there yet), which the
 *        plain floor's untouched mapping never does; a region's address is
 *        one every process must find free, so it cannot share the page
 *        tables of a process's other mappings.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rszshm.h>

#include "bench.h"

#define LIVE 1000

/* One line naming the file and the failed call, then exit: main() sweeps. */
static void die(const char *what, const char *call)
{
	fprintf(stderr, "rszshm-bench: make: %s: %s: %s\n", what, call, strerror(errno));
	exit(1);
}

static double cycles_rszshm(const struct bench_opts *o, unsigned n)
{
	struct rszshm r;
	char name[RSZSHM_PATH_MAX];
	double t0 = bench_now();
	unsigned i;

	for (i = 0; i < n; i++) {
		bench_fname(o, name, sizeof(name));
		if (!rszshm_mk(&r, 4096, name))
			die(name, "rszshm_mk");
		if (rszshm_dt(&r) == -1)
			die(r.fname, "rszshm_dt");
		if (rszshm_rm(&r) == -1)
			die(r.fname, "rszshm_rm");
	}
	return (bench_now() - t0) * 1e6 / n;
}

/* The fixed-address floor (above): 64 slots, 4 GiB apart from 24 TiB. */
#define FIXED_BASE (24ULL << 40)
#define FIXED_SLOTS 64u

/* Map @fd's file over the span: anywhere, or (@fixed) at the next free
 * slot far from the process's other mappings. */
static void *map_span(int fd, size_t span, bool fixed)
{
	static unsigned slot;
	unsigned tries;
	void *m;

	if (!fixed)
		return mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	for (tries = 0, m = MAP_FAILED; m == MAP_FAILED && tries < FIXED_SLOTS; tries++) {
		void *at = (void *)(uintptr_t)(FIXED_BASE + (uint64_t)(slot++ % FIXED_SLOTS) * span);

		m = mmap(at, span, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fd, 0);
	}
	return m;
}

/* @n cycles of the floor (@fixed: floor-fixed), in us per cycle. */
static double cycles_floor(const struct bench_opts *o, unsigned n, bool fixed)
{
	size_t span = RSZSHM_DFLT_SCAN.len;
	char dir[RSZSHM_PATH_MAX], file[RSZSHM_PATH_MAX + 8], hdr[512];
	double t0;
	unsigned i;
	void *m;
	int fd;

	memset(hdr, 0x5a, sizeof(hdr));
	t0 = bench_now();
	for (i = 0; i < n; i++) {
		snprintf(dir, sizeof(dir), "%s/floor-XXXXXX", o->dir);
		if (!mkdtemp(dir))
			die(dir, "mkdtemp");
		snprintf(file, sizeof(file), "%s/0", dir);
		if ((fd = open(file, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600)) == -1)
			die(file, "open");
		if (ftruncate(fd, 8192) == -1)
			die(file, "ftruncate");
		if (fixed && pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
			die(file, "pwrite");
		if ((m = map_span(fd, span, fixed)) == MAP_FAILED)
			die(file, "mmap");
		if (fixed)
			((volatile char *)m)[64] = 1;
		munmap(m, span);
		close(fd);
		if (unlink(file) == -1 || rmdir(dir) == -1)
			die(dir, "unlink/rmdir");
	}
	return (bench_now() - t0) * 1e6 / n;
}

/* One run: @n cycles of each, in interleaved slices of SLICE, so that a
 * change in the machine's load weighs on both alike. */
#define SLICE 50u

static void run_pair(const struct bench_opts *o, unsigned n, double *floor_us, double *fixed_us,
		     double *rszshm_us)
{
	double f = 0, x = 0, r = 0;
	unsigned done;

	for (done = 0; done < n; done += SLICE) {
		f += cycles_floor(o, SLICE, false) * SLICE;
		x += cycles_floor(o, SLICE, true) * SLICE;
		r += cycles_rszshm(o, SLICE) * SLICE;
	}
	*floor_us = f / done;
	*fixed_us = x / done;
	*rszshm_us = r / done;
}

static void bench_make_cycle(const struct bench_opts *o)
{
	unsigned n = o->quick ? 300 : 2000, i, runs = o->runs;
	double *fl = calloc(2 * runs, sizeof(double)), *rs = calloc(runs, sizeof(double));
	double *fx = calloc(2 * runs, sizeof(double)), *lv = calloc(runs, sizeof(double));
	struct rszshm *live = calloc(LIVE, sizeof(*live));
	char name[RSZSHM_PATH_MAX];
	double f, x, r0, r1;

	if (!fl || !fx || !rs || !lv || !live)
		die("setup", "calloc");
	run_pair(o, SLICE, &f, &x, &r0);	/* warm up */
	for (i = 0; i < runs; i++)
		run_pair(o, n, &fl[i], &fx[i], &rs[i]);
	for (i = 0; i < LIVE; i++) {
		bench_fname(o, name, sizeof(name));
		if (!rszshm_mk(&live[i], 4096, name))
			die(name, "rszshm_mk");
		if (rszshm_dt(&live[i]) == -1)
			die(name, "rszshm_dt");
	}
	for (i = 0; i < runs; i++)
		run_pair(o, n, &fl[runs + i], &fx[runs + i], &lv[i]);
	for (i = 0; i < LIVE; i++)
		if (rszshm_rm(&live[i]) == -1)
			die(live[i].fname, "rszshm_rm");

	f = bench_median(fl, 2 * runs);
	x = bench_median(fx, 2 * runs);
	r0 = bench_median(rs, runs);
	r1 = bench_median(lv, runs);
	bench_print("make", "floor", f, "us");
	bench_print("make", "floor-fixed", x, "us");
	bench_print("make", "rszshm", r0, "us");
	bench_ratio("make", r0, f, false, "x-floor");
	bench_ratio("make", r0, x, false, "x-floor-fixed");
	bench_print("make", "rszshm-1000-live", r1, "us");
	bench_ratio("make", r1, f, false, "x-floor");
	bench_ratio("make", r1, x, false, "x-floor-fixed");
	free(fl);
	free(fx);
	free(rs);
	free(lv);
	free(live);
}

void bench_make(const struct bench_opts *o)
{
	if (bench_want(o, "make", "make"))
		bench_make_cycle(o);
}
