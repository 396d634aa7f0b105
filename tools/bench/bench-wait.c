/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-wait.c - rszshm-bench's waiting workloads.
 *
 *   wake        latency from a put in one process to the return of the
 *               waiting call in another: the sender reads the clock and
 *               puts it as the record "ping"; a forked receiver sleeping in
 *               rszshm_rec_wait() returns, reads the clock (CLOCK_MONOTONIC
 *               is one clock for every process) and keeps the difference;
 *               then it acknowledges on a bare futex and the sender goes on
 *               (ROUNDS times).  Microseconds, median of the samples;
 *               "wake-p99" their 99th percentile.  Against the floor, the
 *               same notification by a store and FUTEX_WAKE on a bare word
 *               in a shared mapping (the receiver in FUTEX_WAIT), and by
 *               writing the clock into a pipe the receiver reads.
 *   put-nowait  NPUTS rszshm_rec_put() of a 64-byte value under one name
 *               with nobody waiting, ops/s; against the same puts with the
 *               waking path bypassed (an internal switch the library keeps
 *               for this: no counter, no lane, no fence); the two
 *               alternate in blocks of NPUTS/20 within each run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "bench.h"

#define ROUNDS 20000u
#define QUICK_ROUNDS 4000u
#define NPUTS 200000u
#define QUICK_NPUTS 50000u
#define WAIT_MS 10000

enum { RSZSHM, FUTEX, PIPE, NSYS };
static const char *const sys_names[NSYS] = { "rszshm", "futex", "pipe" };

static void die(const char *what)
{
	fflush(stdout);
	fprintf(stderr, "rszshm-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The @q quantile of @n sorted-in-place values. */
static double quantile(double *v, unsigned n, double q)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(unsigned)((n - 1) * q)];
}

/* ------------------------------------------------------------ the sides */

static void wait_rec(struct rszshm *r, const char *name, uint64_t *seen)
{
	if (rszshm_rec_wait(r, name, seen, WAIT_MS) == -1)
		die("wake: rszshm_rec_wait");
}

static void futex_wait(uint32_t *w, uint32_t until)
{
	uint32_t v;

	while ((v = __atomic_load_n(w, __ATOMIC_ACQUIRE)) != until)
		syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void futex_set(uint32_t *w, uint32_t v)
{
	__atomic_store_n(w, v, __ATOMIC_RELEASE);
	syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/*
 * What the two sides share: the sender's clock at each notification, the
 * latencies the receiver measures, and the receiver's acknowledgement (a
 * bare futex for every system, so only the notification differs).
 */
struct shared {
	uint32_t word;		/* FUTEX: 2i+1 = notification i */
	uint32_t ack;		/* i+1 once notification i is measured */
	double t0;		/* FUTEX: when notification i was sent */
	double us[];		/* one-way latencies, filled by the receiver */
};

/* The receiving side of one system, in a child. */
static void receive(int sys, struct rszshm *r, struct shared *sh, int rd, unsigned rounds)
{
	uint64_t seen = 0;
	double t0 = 0, t1;

	for (unsigned i = 0; i < rounds; i++) {
		switch (sys) {
		case RSZSHM:
			wait_rec(r, "ping", &seen);
			t1 = bench_now();
			if (rszshm_rec_get(r, "ping", &t0, sizeof(t0), NULL) != sizeof(t0))
				die("wake: rszshm_rec_get");
			break;
		case FUTEX:
			futex_wait(&sh->word, 2 * i + 1);
			t1 = bench_now();
			t0 = sh->t0;
			break;
		default:
			if (read(rd, &t0, sizeof(t0)) != sizeof(t0))
				die("wake: pipe");
			t1 = bench_now();
		}
		sh->us[i] = (t1 - t0) * 1e6;
		futex_set(&sh->ack, i + 1);
	}
}

/* One run of @sys: @rounds one-way latencies (µs) into @us. */
static void ping_pong(const struct bench_opts *o, int sys, double *us, unsigned rounds)
{
	size_t len = sizeof(struct shared) + rounds * sizeof(double);
	struct shared *sh;
	struct rszshm r;
	char tmpl[256];
	int p[2] = { -1, -1 }, st;
	pid_t pid;
	double t0;

	sh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("wake: mmap");
	if (sys == RSZSHM) {
		bench_fname(o, tmpl, sizeof(tmpl));
		if (!rszshm_mk_flags(&r, 1 << 20, tmpl, RSZSHM_DFLT_SCAN, RSZSHM_HEAP))
			die("wake: rszshm_mk");
	} else if (sys == PIPE && pipe(p) == -1) {
		die("wake: pipe");
	}
	if ((pid = fork()) == -1)
		die("wake: fork");
	if (pid == 0) {
		receive(sys, &r, sh, p[0], rounds);
		_exit(0);
	}
	for (unsigned i = 0; i < rounds; i++) {
		t0 = bench_now();
		switch (sys) {
		case RSZSHM:
			if (rszshm_rec_put(&r, "ping", 0, &t0, sizeof(t0)) == -1)
				die("wake: rszshm_rec_put");
			break;
		case FUTEX:
			sh->t0 = t0;
			futex_set(&sh->word, 2 * i + 1);
			break;
		default:
			if (write(p[1], &t0, sizeof(t0)) != sizeof(t0))
				die("wake: pipe");
		}
		futex_wait(&sh->ack, i + 1);
	}
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "rszshm-bench: wake: the receiving process failed\n");
		exit(1);
	}
	memcpy(us, sh->us, rounds * sizeof(double));
	munmap(sh, len);
	if (sys == RSZSHM) {
		rszshm_unlink(&r);
		rszshm_rmdir(&r);
		rszshm_dt(&r);
	} else if (sys == PIPE) {
		close(p[0]);
		close(p[1]);
	}
}

static void bench_wake(const struct bench_opts *o)
{
	unsigned rounds = o->quick ? QUICK_ROUNDS : ROUNDS;
	double *us = calloc(rounds, sizeof(*us));
	double *med[NSYS], *p99[NSYS], m[NSYS], q[NSYS];

	if (!us)
		die("wake: calloc");
	for (int s = 0; s < NSYS; s++) {
		med[s] = calloc(o->runs, sizeof(double));
		p99[s] = calloc(o->runs, sizeof(double));
		if (!med[s] || !p99[s])
			die("wake: calloc");
	}
	for (unsigned run = 0; run < o->runs; run++) {
		for (int k = 0; k < NSYS; k++) {
			int s = (int)((k + run) % NSYS);	/* rotate who goes first */

			ping_pong(o, s, us, rounds);
			med[s][run] = quantile(us, rounds, 0.5);
			p99[s][run] = quantile(us, rounds, 0.99);
		}
	}
	for (int s = 0; s < NSYS; s++) {
		m[s] = bench_median(med[s], o->runs);
		q[s] = bench_median(p99[s], o->runs);
	}
	for (int s = 0; s < NSYS; s++)
		bench_print("wake", sys_names[s], m[s], "us");
	bench_ratio("wake", m[RSZSHM], m[FUTEX], false, "x-futex");
	bench_ratio("wake", m[RSZSHM], m[PIPE], false, "x-pipe");
	for (int s = 0; s < NSYS; s++)
		bench_print("wake-p99", sys_names[s], q[s], "us");
	bench_ratio("wake-p99", q[RSZSHM], q[FUTEX], false, "x-futex");
	bench_ratio("wake-p99", q[RSZSHM], q[PIPE], false, "x-pipe");
	for (int s = 0; s < NSYS; s++) {
		free(med[s]);
		free(p99[s]);
	}
	free(us);
}

/* ------------------------------------------------------------ put-nowait */

/* Seconds for @n puts, the waking path bypassed or not. */
static double put_time(struct rszshm *r, unsigned n, bool bypass)
{
	unsigned char v[64];
	double t0;

	memset(v, 0x5a, sizeof(v));
	rszshm__wait_off = bypass;
	t0 = bench_now();
	for (unsigned i = 0; i < n; i++) {
		v[0] = (unsigned char)i;
		if (rszshm_rec_put(r, "value", 1, v, sizeof(v)) == -1)
			die("put-nowait: rszshm_rec_put");
	}
	t0 = bench_now() - t0;
	rszshm__wait_off = false;
	return t0;
}

/* One run: the two kinds alternate in BLOCKS blocks each, so that a change
 * in the machine's load hits both alike; ops/s of each into rate[]. */
#define BLOCKS 20u
static void put_rates(struct rszshm *r, unsigned n, unsigned run, double rate[2])
{
	double t[2] = { 0, 0 };

	for (unsigned b = 0; b < 2 * BLOCKS; b++) {
		int s = (int)((b + run) % 2);

		t[s] += put_time(r, n / BLOCKS, s == 1);
	}
	rate[0] = n / t[0];
	rate[1] = n / t[1];
}

static void bench_put_nowait(const struct bench_opts *o)
{
	unsigned n = o->quick ? QUICK_NPUTS : NPUTS;
	double *v[2], m[2];
	struct rszshm r;
	char tmpl[256];

	bench_fname(o, tmpl, sizeof(tmpl));
	if (!rszshm_mk_flags(&r, 1 << 20, tmpl, RSZSHM_DFLT_SCAN, RSZSHM_HEAP))
		die("put-nowait: rszshm_mk");
	v[0] = calloc(o->runs, sizeof(double));
	v[1] = calloc(o->runs, sizeof(double));
	if (!v[0] || !v[1])
		die("put-nowait: calloc");
	put_time(&r, n / 10, false);	/* warm the heap and the caches */
	for (unsigned run = 0; run < o->runs; run++) {
		double rate[2];

		put_rates(&r, n, run, rate);
		v[0][run] = rate[0];
		v[1][run] = rate[1];
	}
	m[0] = bench_median(v[0], o->runs);
	m[1] = bench_median(v[1], o->runs);
	bench_print("put-nowait", "rszshm", m[0], "ops/s");
	bench_print("put-nowait", "put-baseline", m[1], "ops/s");
	bench_ratio("put-nowait", m[0], m[1], true, "x-put-baseline");
	rszshm_unlink(&r);
	rszshm_rmdir(&r);
	rszshm_dt(&r);
	free(v[0]);
	free(v[1]);
}

void bench_wait(const struct bench_opts *o)
{
	if (bench_want(o, "wait", "wake"))
		bench_wake(o);
	if (bench_want(o, "wait", "put-nowait"))
		bench_put_nowait(o);
}
