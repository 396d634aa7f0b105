/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-heap.c - rszshm-bench's heap workloads.
 *
 *   alloc-free        a pool of POOL live blocks, random sizes uniform in
 *                     16..1024 bytes; each op frees a random live block and
 *                     allocates a new one, writing its first 8 bytes.  The
 *                     pool is filled first, untimed.  rszshm_alloc/dealloc
 *                     against glibc malloc/free, in the same run.
 *   alloc-free-2proc  the same in 2 forked processes at once on one region,
 *                     aggregate ops/s, against one forked process doing the
 *                     same alone on a region of its own.
 *
 * Both systems draw the same sizes and victims from the same fixed-seed
 * xorshift generator, so they do identical work.  Forked workers fill their
 * pools, say so on a pipe, and start together when the parent writes "go";
 * the parent times from "go" to the last "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "rszshm.h"

#define POOL 10000u
#define MIN_SIZE 16u
#define MAX_SIZE 1024u
#define OPS 2000000u
#define OPS_2PROC 1000000u
#define QUICK_DIV 10u
#define MAX_RUNS 64u
#define SEED 0x2545f4914f6cdd1dULL

struct rng {
	uint64_t s;
};

static uint64_t next_rand(struct rng *g)
{
	g->s ^= g->s >> 12;
	g->s ^= g->s << 25;
	g->s ^= g->s >> 27;
	return g->s * 0x2545f4914f6cdd1dULL;
}

static size_t rand_size(struct rng *g)
{
	return MIN_SIZE + (size_t)(next_rand(g) % (MAX_SIZE - MIN_SIZE + 1));
}

static void die(const char *what)
{
	fprintf(stderr, "rszshm-bench: alloc-free: %s: %s\n", what, strerror(errno));
	exit(1);
}

/*
 * One system's loop, written out twice so that neither pays for an
 * indirect call.  Returns the seconds taken by @ops ops.
 */
#define POOL_FILL(ALLOC) do {						\
	for (unsigned i_ = 0; i_ < POOL; i_++) {			\
		if (!(pool[i_] = ALLOC(rand_size(&g))))			\
			die("fill");					\
		*(uint64_t *)pool[i_] = i_;				\
	}								\
} while (0)

#define POOL_RUN(ALLOC, FREE, ops) do {					\
	for (unsigned long n_ = 0; n_ < (ops); n_++) {			\
		unsigned i_ = (unsigned)(next_rand(&g) % POOL);		\
		FREE(pool[i_]);						\
		if (!(pool[i_] = ALLOC(rand_size(&g))))			\
			die("alloc");					\
		*(uint64_t *)pool[i_] = n_;				\
	}								\
} while (0)

#define POOL_DRAIN(FREE) do {						\
	for (unsigned i_ = 0; i_ < POOL; i_++)				\
		FREE(pool[i_]);						\
} while (0)

static struct rszshm *shm;

static void *shm_alloc(size_t n)
{
	return rszshm_alloc(shm, n);
}

static void shm_free(void *p)
{
	if (rszshm_dealloc(shm, p) != 0)
		die("dealloc");
}

static void make_region(const struct bench_opts *o, struct rszshm *r)
{
	char fname[RSZSHM_PATH_MAX];

	bench_fname(o, fname, sizeof(fname));
	if (!rszshm_mk_flags(r, 1 << 20, fname, RSZSHM_DFLT_SCAN, RSZSHM_HEAP))
		die("rszshm_mk_flags");
}

static void drop_region(struct rszshm *r)
{
	rszshm_dt(r);
	rszshm_rm(r);
}

static double run_glibc(unsigned long ops, void **pool)
{
	struct rng g = { SEED };
	double t0, t1;

	POOL_FILL(malloc);
	t0 = bench_now();
	POOL_RUN(malloc, free, ops);
	t1 = bench_now();
	POOL_DRAIN(free);
	return t1 - t0;
}

static double run_rszshm(const struct bench_opts *o, unsigned long ops, void **pool)
{
	struct rszshm r;
	struct rng g = { SEED };
	double t0, t1;

	make_region(o, &r);
	shm = &r;
	POOL_FILL(shm_alloc);
	t0 = bench_now();
	POOL_RUN(shm_alloc, shm_free, ops);
	t1 = bench_now();
	POOL_DRAIN(shm_free);
	shm = NULL;
	drop_region(&r);
	return t1 - t0;
}

/* A forked worker: fill, say ready on @ready, wait for go on @go, run, say done. */
static void worker(struct rszshm *r, unsigned long ops, uint64_t seed, int ready, int go,
		   void **pool)
{
	struct rng g = { seed };
	char c = 1;

	shm = r;
	POOL_FILL(shm_alloc);
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
		_exit(2);
	POOL_RUN(shm_alloc, shm_free, ops);
	if (write(ready, &c, 1) != 1)
		_exit(2);
	POOL_DRAIN(shm_free);
	_exit(0);
}

/* @nproc forked workers at once on one region: aggregate ops/s. */
static double run_procs(const struct bench_opts *o, unsigned nproc, unsigned long ops, void **pool)
{
	int ready[2], go[2], status, bad = 0;
	pid_t pids[2];
	struct rszshm r;
	double t0, t1;
	unsigned i;
	char c = 1;

	make_region(o, &r);
	if (pipe(ready) < 0 || pipe(go) < 0)
		die("pipe");
	fflush(NULL);
	for (i = 0; i < nproc; i++) {
		if ((pids[i] = fork()) < 0)
			die("fork");
		if (pids[i] == 0) {
			close(ready[0]);
			close(go[1]);
			worker(&r, ops, SEED + i, ready[1], go[0], pool);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (i = 0; i < nproc; i++)
		if (read(ready[0], &c, 1) != 1)
			bad = 1;
	t0 = bench_now();
	for (i = 0; i < nproc; i++)
		if (write(go[1], &c, 1) != 1)
			bad = 1;
	for (i = 0; i < nproc; i++)
		if (read(ready[0], &c, 1) != 1)
			bad = 1;
	t1 = bench_now();
	close(ready[0]);
	close(go[1]);
	for (i = 0; i < nproc; i++) {
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad = 1;
	}
	drop_region(&r);
	if (bad) {
		fprintf(stderr, "rszshm-bench: alloc-free-2proc: a worker failed\n");
		exit(1);
	}
	return (double)ops * nproc / (t1 - t0);
}

void bench_heap(const struct bench_opts *o)
{
	unsigned long ops = o->quick ? OPS / QUICK_DIV : OPS;
	unsigned long ops2 = o->quick ? OPS_2PROC / QUICK_DIV : OPS_2PROC;
	double shm_v[MAX_RUNS], libc_v[MAX_RUNS], two_v[MAX_RUNS], one_v[MAX_RUNS];
	unsigned runs = o->runs ? o->runs : 1, i;
	double a, b;
	void **pool;

	if (runs > MAX_RUNS)
		runs = MAX_RUNS;
	if (!(pool = calloc(POOL, sizeof(*pool))))
		die("calloc");
	for (i = 0; i < runs; i++) {
		shm_v[i] = (double)ops / run_rszshm(o, ops, pool);
		libc_v[i] = (double)ops / run_glibc(ops, pool);
	}
	a = bench_median(shm_v, runs);
	b = bench_median(libc_v, runs);
	bench_print("alloc-free", "rszshm", a, "ops/s");
	bench_print("alloc-free", "glibc", b, "ops/s");
	bench_ratio("alloc-free", a, b, true, "x-glibc");

	for (i = 0; i < runs; i++) {
		two_v[i] = run_procs(o, 2, ops2, pool);
		one_v[i] = run_procs(o, 1, ops2, pool);
	}
	a = bench_median(two_v, runs);
	b = bench_median(one_v, runs);
	bench_print("alloc-free-2proc", "rszshm", a, "ops/s");
	bench_print("alloc-free-2proc", "rszshm-1proc", b, "ops/s");
	bench_ratio("alloc-free-2proc", a, b, true, "x-1proc");
	free(pool);
}

int bench_heap_child(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return -1;
}
