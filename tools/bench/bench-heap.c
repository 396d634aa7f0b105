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
 *                     same alone on a region of its own; and the spread
 *                     of the ratio over the runs (min, max).  Beside it,
 *                     the machine's own ceiling: glibc malloc in 2 forked
 *                     processes against 1 (nothing shared), its ratio
 *                     x-1proc as system glibc.
 *   alloc-free-scale  the same with 1, 2, 4 and 8 processes on one region
 *                     (and the machine's cores, said): aggregate ops/s, and
 *                     each beside one process.
 *   alloc-xfree       blocks allocated by one party and freed by another: a
 *                     producer allocates (random sizes as above) and writes
 *                     a sequence number into each block, a consumer reads it
 *                     and frees the block; the blocks pass through a ring of
 *                     RING slots (single producer, single consumer, acquire
 *                     and release).  rszshm: two forked processes on one
 *                     region, the ring in the region; glibc-2threads: two
 *                     threads of one process with malloc/free.  Blocks
 *                     handed over per second.
 *   overhead          memory used per live byte at POOL live blocks of
 *                     random sizes (each written in full): rszshm, the
 *                     resident bytes the region file gained (tmpfs blocks,
 *                     st_blocks) over an empty heap; glibc, the heap growth
 *                     (mallinfo2() arena + hblkhd) of a fresh exec'd process.
 *                     Unit x-live: bytes used / bytes asked for; the ratio
 *                     line is glibc's over rszshm's (> 1: rszshm uses less).
 *
 * Both systems draw the same sizes and victims from the same fixed-seed
 * xorshift generator, so they do identical work.  Forked workers fill their
 * pools, say so on a pipe, and start together when the parent writes "go";
 * the parent times from "go" to the last "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "rszshm.h"

#define POOL 10000u
#define MIN_SIZE 16u
#define MAX_SIZE 1024u
#define OPS 2000000u
#define OPS_2PROC 1000000u
#define OPS_XFREE 1000000u
#define RING 1024u
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

/* A forked worker of run_procs(): its own pool, its own random sizes. */
struct procs {
	struct rszshm *r;
	unsigned long ops;
	void **pool;
	struct rng g;
};

/* A worker's three steps, on the region (w->r) or, with no region, on
 * glibc's heap of its own process. */
static int proc_fill(void *arg, unsigned i)
{
	struct procs *w = arg;
	void **pool = w->pool;
	struct rng g = { SEED + i };

	if ((shm = w->r))
		POOL_FILL(shm_alloc);
	else
		POOL_FILL(malloc);
	w->g = g;
	return 0;
}

static int proc_run(void *arg, unsigned i)
{
	struct procs *w = arg;
	void **pool = w->pool;
	struct rng g = w->g;

	(void)i;
	if (w->r)
		POOL_RUN(shm_alloc, shm_free, w->ops);
	else
		POOL_RUN(malloc, free, w->ops);
	return 0;
}

static int proc_drain(void *arg, unsigned i)
{
	struct procs *w = arg;
	void **pool = w->pool;

	(void)i;
	if (w->r)
		POOL_DRAIN(shm_free);
	else
		POOL_DRAIN(free);
	return 0;
}

static const struct bench_proc proc_steps = { proc_fill, proc_run, proc_drain };

/* The same forked workers with glibc malloc, each in its own heap. */
static double run_procs_glibc(unsigned nproc, unsigned long ops, void **pool)
{
	struct procs p = { NULL, ops, pool, { 0 } };
	double t = bench_procs(nproc, &proc_steps, &p);

	if (t < 0) {
		fprintf(stderr, "rszshm-bench: alloc-free (glibc) with %u processes: a worker failed\n",
			nproc);
		exit(1);
	}
	return (double)ops * nproc / t;
}

/* @nproc forked workers at once on one region: aggregate ops/s. */
static double run_procs(const struct bench_opts *o, unsigned nproc, unsigned long ops, void **pool)
{
	struct rszshm r;
	struct procs p;
	double t;

	make_region(o, &r);
	p = (struct procs){ &r, ops, pool, { 0 } };
	t = bench_procs(nproc, &proc_steps, &p);
	drop_region(&r);
	if (t < 0) {
		fprintf(stderr, "rszshm-bench: alloc-free with %u processes: a worker failed\n", nproc);
		exit(1);
	}
	return (double)ops * nproc / t;
}

/* ------------------------------------------------------ alloc-xfree */

/* A single-producer single-consumer ring of block addresses. */
struct ring {
	uint64_t head __attribute__((aligned(64)));	/* next slot to fill */
	uint64_t tail __attribute__((aligned(64)));	/* next slot to empty */
	uint64_t slot[RING] __attribute__((aligned(64)));
};

static void ring_put(struct ring *q, void *p)
{
	uint64_t h = __atomic_load_n(&q->head, __ATOMIC_RELAXED);

	while (h - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) >= RING)
		sched_yield();
	q->slot[h % RING] = (uint64_t)(uintptr_t)p;
	__atomic_store_n(&q->head, h + 1, __ATOMIC_RELEASE);
}

static void *ring_get(struct ring *q)
{
	uint64_t t = __atomic_load_n(&q->tail, __ATOMIC_RELAXED);
	void *p;

	while (__atomic_load_n(&q->head, __ATOMIC_ACQUIRE) == t)
		sched_yield();
	p = (void *)(uintptr_t)q->slot[t % RING];
	__atomic_store_n(&q->tail, t + 1, __ATOMIC_RELEASE);
	return p;
}

/* The two loops, written out per system (no indirect call). */
#define PRODUCE(ALLOC, q, ops) do {					\
	struct rng g_ = { SEED };					\
	for (unsigned long n_ = 0; n_ < (ops); n_++) {			\
		uint64_t *p_ = ALLOC(rand_size(&g_));			\
		if (!p_)						\
			die("alloc");					\
		*p_ = n_;						\
		ring_put((q), p_);					\
	}								\
} while (0)

#define CONSUME(FREE, q, ops, bad) do {					\
	for (unsigned long n_ = 0; n_ < (ops); n_++) {			\
		uint64_t *p_ = ring_get(q);				\
		if (*p_ != n_)						\
			(bad) = 1;					\
		FREE(p_);						\
	}								\
} while (0)

struct xfree_arg {
	struct ring *q;
	unsigned long ops;
	int bad;
};

static void *glibc_consumer(void *arg)
{
	struct xfree_arg *a = arg;

	CONSUME(free, a->q, a->ops, a->bad);
	return NULL;
}

/* glibc: producer (this thread) and consumer (a new one); blocks/s. */
static double xfree_glibc(unsigned long ops)
{
	struct xfree_arg a = { 0 };
	pthread_t t;
	double t0, t1;

	if (!(a.q = aligned_alloc(64, sizeof(*a.q))))
		die("aligned_alloc");
	memset(a.q, 0, sizeof(*a.q));
	a.ops = ops;
	t0 = bench_now();
	if ((errno = pthread_create(&t, NULL, glibc_consumer, &a)) != 0)
		die("pthread_create");
	PRODUCE(malloc, a.q, ops);
	if ((errno = pthread_join(t, NULL)) != 0)
		die("pthread_join");
	t1 = bench_now();
	free(a.q);
	if (a.bad) {
		fprintf(stderr, "rszshm-bench: alloc-xfree: glibc consumer saw a wrong block\n");
		exit(1);
	}
	return (double)ops / (t1 - t0);
}

/* rszshm: producer and consumer are forked processes on one region, the
 * ring in the region; timed from "go" to both "done". */
static double xfree_rszshm(const struct bench_opts *o, unsigned long ops)
{
	int ready[2], go[2], status, bad = 0;
	pid_t pids[2];
	struct rszshm r;
	struct ring *q;
	double t0, t1;
	unsigned i;
	char c = 1;

	make_region(o, &r);
	if (!(q = rszshm_zalloc(&r, sizeof(*q))))
		die("rszshm_zalloc");
	if (pipe(ready) < 0 || pipe(go) < 0)
		die("pipe");
	fflush(NULL);
	for (i = 0; i < 2; i++) {
		if ((pids[i] = fork()) < 0)
			die("fork");
		if (pids[i] == 0) {
			int wrong = 0;

			close(ready[0]);
			close(go[1]);
			shm = &r;
			if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(2);
			if (i == 0)
				PRODUCE(shm_alloc, q, ops);
			else
				CONSUME(shm_free, q, ops, wrong);
			if (write(ready[1], &c, 1) != 1)
				_exit(2);
			_exit(wrong ? 3 : 0);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (i = 0; i < 2; i++)
		if (read(ready[0], &c, 1) != 1)
			bad = 1;
	t0 = bench_now();
	for (i = 0; i < 2; i++)
		if (write(go[1], &c, 1) != 1)
			bad = 1;
	for (i = 0; i < 2; i++)
		if (read(ready[0], &c, 1) != 1)
			bad = 1;
	t1 = bench_now();
	close(ready[0]);
	close(go[1]);
	for (i = 0; i < 2; i++) {
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad = 1;
	}
	rszshm_dealloc(&r, q);
	drop_region(&r);
	if (bad) {
		fprintf(stderr, "rszshm-bench: alloc-xfree: a worker failed\n");
		exit(1);
	}
	return (double)ops / (t1 - t0);
}

/* --------------------------------------------------------- overhead */

/* Fill @pool with POOL blocks of random sizes, each written in full; the
 * bytes asked for. */
#define OVER_FILL(ALLOC, live) do {					\
	struct rng g_ = { SEED };					\
	for (unsigned i_ = 0; i_ < POOL; i_++) {			\
		size_t n_ = rand_size(&g_);				\
		if (!(pool[i_] = ALLOC(n_)))				\
			die("fill");					\
		memset(pool[i_], 0xa5, n_);				\
		(live) += n_;						\
	}								\
} while (0)

static uint64_t file_bytes(const char *fname)
{
	struct stat st;

	if (stat(fname, &st) < 0)
		die("stat");
	return (uint64_t)st.st_blocks * 512u;
}

static double over_rszshm(const struct bench_opts *o, void **pool)
{
	uint64_t live = 0, before;
	struct rszshm r;
	double x;

	make_region(o, &r);
	shm = &r;
	before = file_bytes(r.fname);
	OVER_FILL(shm_alloc, live);
	/* The region's resident bytes: what tmpfs charges for the file. */
	x = (double)(file_bytes(r.fname) - before) / (double)live;
	POOL_DRAIN(shm_free);
	shm = NULL;
	drop_region(&r);
	return x;
}

/* In a fresh exec'd process (`--child overhead-glibc FD`): glibc's heap
 * growth per live byte, written as text on FD. */
static int child_over_glibc(const char *fdarg)
{
	uint64_t live = 0, before, after;
	struct mallinfo2 m;
	void **pool;
	char buf[64];
	int fd = atoi(fdarg), n;

	if (!(pool = calloc(POOL, sizeof(*pool))))
		return 2;
	m = mallinfo2();
	before = m.arena + m.hblkhd;
	OVER_FILL(malloc, live);
	m = mallinfo2();
	after = m.arena + m.hblkhd;
	n = snprintf(buf, sizeof(buf), "%.6f\n", (double)(after - before) / (double)live);
	if (n <= 0 || write(fd, buf, (size_t)n) != n)
		return 2;
	POOL_DRAIN(free);
	free(pool);
	return 0;
}

static double over_glibc(const struct bench_opts *o)
{
	char fdarg[16], buf[64] = "";
	char *args[] = { "--child", "overhead-glibc", fdarg, NULL };
	int fds[2], rc;
	ssize_t n;

	if (pipe(fds) < 0)
		die("pipe");
	snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
	rc = bench_exec(o, args);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	if (rc != 0 || n <= 0) {
		fprintf(stderr, "rszshm-bench: overhead: the glibc child failed (%d)\n", rc);
		exit(1);
	}
	return strtod(buf, NULL);
}

void bench_heap(const struct bench_opts *o)
{
	unsigned long ops = o->quick ? OPS / QUICK_DIV : OPS;
	unsigned long ops2 = o->quick ? OPS_2PROC / QUICK_DIV : OPS_2PROC;
	unsigned long opsx = o->quick ? OPS_XFREE / QUICK_DIV : OPS_XFREE;
	double shm_v[MAX_RUNS], libc_v[MAX_RUNS], two_v[MAX_RUNS], one_v[MAX_RUNS];
	unsigned runs = o->runs ? o->runs : 1, i;
	double a, b;
	void **pool;

	if (runs > MAX_RUNS)
		runs = MAX_RUNS;
	if (!(pool = calloc(POOL, sizeof(*pool))))
		die("calloc");
	if (!bench_want(o, "heap", "alloc-free"))
		goto two;
	for (i = 0; i < runs; i++) {
		shm_v[i] = (double)ops / run_rszshm(o, ops, pool);
		libc_v[i] = (double)ops / run_glibc(ops, pool);
	}
	a = bench_median(shm_v, runs);
	b = bench_median(libc_v, runs);
	bench_print("alloc-free", "rszshm", a, "ops/s");
	bench_print("alloc-free", "glibc", b, "ops/s");
	bench_ratio("alloc-free", a, b, true, "x-glibc");
two:
	if (!bench_want(o, "heap", "alloc-free-2proc"))
		goto scale;
	for (i = 0; i < runs; i++) {
		two_v[i] = run_procs(o, 2, ops2, pool);
		one_v[i] = run_procs(o, 1, ops2, pool);
	}
	a = bench_median(two_v, runs);
	b = bench_median(one_v, runs);
	bench_print("alloc-free-2proc", "rszshm", a, "ops/s");
	bench_print("alloc-free-2proc", "rszshm-1proc", b, "ops/s");
	bench_ratio("alloc-free-2proc", a, b, true, "x-1proc");
	/* The spread: on a small machine the figure is noisy. */
	for (i = 0; i < runs; i++)
		two_v[i] /= one_v[i];
	bench_median(two_v, runs);	/* sorts */
	bench_print("alloc-free-2proc", "x-1proc-min", two_v[0], "x");
	bench_print("alloc-free-2proc", "x-1proc-max", two_v[runs - 1], "x");
	for (i = 0; i < runs; i++) {
		two_v[i] = run_procs_glibc(2, ops2, pool);
		one_v[i] = run_procs_glibc(1, ops2, pool);
	}
	bench_print("alloc-free-2proc", "glibc",
		    bench_median(two_v, runs) / bench_median(one_v, runs), "x-1proc");
scale:
	if (!bench_want(o, "heap", "alloc-free-scale"))
		goto xfree;
	{
		double rate[4], v[MAX_RUNS];

		for (unsigned k = 0; k < 4; k++) {
			for (i = 0; i < runs; i++)
				v[i] = run_procs(o, 1u << k, ops2, pool);
			rate[k] = bench_median(v, runs);
		}
		bench_scaling("alloc-free-scale", rate, 4);
	}
xfree:
	if (!bench_want(o, "heap", "alloc-xfree"))
		goto over;
	for (i = 0; i < runs; i++) {
		shm_v[i] = xfree_rszshm(o, opsx);
		libc_v[i] = xfree_glibc(opsx);
	}
	a = bench_median(shm_v, runs);
	b = bench_median(libc_v, runs);
	bench_print("alloc-xfree", "rszshm", a, "ops/s");
	bench_print("alloc-xfree", "glibc-2threads", b, "ops/s");
	bench_ratio("alloc-xfree", a, b, true, "x-glibc-2threads");
over:
	if (!bench_want(o, "heap", "overhead"))
		goto out;
	for (i = 0; i < runs; i++) {
		shm_v[i] = over_rszshm(o, pool);
		libc_v[i] = over_glibc(o);
	}
	a = bench_median(shm_v, runs);
	b = bench_median(libc_v, runs);
	bench_print("overhead", "rszshm", a, "x-live");
	bench_print("overhead", "glibc", b, "x-live");
	bench_ratio("overhead", a, b, false, "x-glibc");
out:
	free(pool);
}

int bench_heap_child(int argc, char **argv)
{
	if (strcmp(argv[0], "overhead-glibc") == 0 && argc == 2)
		return child_over_glibc(argv[1]);
	return -1;
}
