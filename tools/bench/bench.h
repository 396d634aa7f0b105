/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench.h - what the parts of rszshm-bench share: the helpers (defined in
 * bench-common.c) and each workload file's entry points (called by bench.c).
 *
 * Output: one line per figure, tab-separated:  WORKLOAD SYSTEM VALUE UNIT
 * SYSTEM is "rszshm" or the reference measured in the same run; after each
 * pair a line with SYSTEM "ratio" gives rszshm's figure over the reference's,
 * oriented so that > 1 means rszshm is better (faster or higher throughput),
 * with UNIT naming the reference ("x-malloc", ...).  Each VALUE is the median
 * of opts->runs runs.
 */
#ifndef RSZSHM_BENCH_H
#define RSZSHM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bench_opts {
	bool quick;		/* --quick: small sizes, the whole program < 30 s */
	unsigned runs;		/* runs per figure; the median is printed */
	const char *dir;	/* where to make region files (default /dev/shm) */
	const char *self;	/* path of this program, for fresh exec'd children */
	const char *only;	/* --only NAME: one workload or group, NULL for all */
};

/*
 * Files: main() makes a private scratch directory under --dir and sets
 * opts->dir to it; whatever is left in it is removed when the program ends
 * (also when a workload fails or the program is interrupted).  Remove your
 * files anyway, as soon as you are done with them.
 */

/* Print one figure. */
void bench_print(const char *workload, const char *system, double value, const char *unit);
/* Print the ratio line; @higher_is_better orients it so > 1 favours rszshm. */
void bench_ratio(const char *workload, double rszshm, double ref, bool higher_is_better,
		 const char *unit);
/* Median of @n values (sorts them). */
double bench_median(double *v, unsigned n);
/* Monotonic clock, in seconds. */
double bench_now(void);
/* A fresh region file name under opts->dir, e.g. /dev/shm/rszshm-bench-XXXXXX/0:
 * a mkdtemp template for rszshm_mk(); remove the region with rszshm_rm(). */
void bench_fname(const struct bench_opts *o, char *buf, size_t len);
/* Run `self ARGS...` (@args ends with NULL, self not included) in a fresh
 * exec'd process; returns its exit status, 128 + signal if killed, or -1. */
int bench_exec(const struct bench_opts *o, char *const args[]);
/* Figures printed so far by this process. */
unsigned bench_printed(void);
/* Whether --only selects @workload of @group ("core", "heap", "rec", "wait"). */
bool bench_want(const struct bench_opts *o, const char *group, const char *workload);

/* What each of bench_procs()'s processes runs: @prep (optional) before the
 * start, @body timed, all at once, @post (optional) after; 0 or -1 each. */
struct bench_proc {
	int (*prep)(void *arg, unsigned i);
	int (*body)(void *arg, unsigned i);
	int (*post)(void *arg, unsigned i);
};
#define BENCH_MAX_PROCS 8u
/* @nproc (1 to BENCH_MAX_PROCS) forked processes: the seconds from the
 * moment all were ready to the end of the last body, or -1 if one failed. */
double bench_procs(unsigned nproc, const struct bench_proc *w, void *arg);
/* The scaling line of @workload: the machine's cores, then @rate[k] with
 * 2^k processes (k < @n), and each beside the rate of one. */
void bench_scaling(const char *workload, const double *rate, unsigned n);

/* The workloads, one function per file. */
void bench_core(const struct bench_opts *o);	/* bench-core.c: attach, grow, fill, lock */
void bench_heap(const struct bench_opts *o);	/* bench-heap.c: alloc-free, alloc-free-2proc */
void bench_rec(const struct bench_opts *o);	/* bench-rec.c: insert, lookup, attach-lookup */
void bench_make(const struct bench_opts *o);	/* bench-make.c: make */
void bench_wait(const struct bench_opts *o);	/* bench-wait.c: wake, put-nowait */

/* Children run by bench_exec() as `self --child NAME ARGS...`: each file's
 * dispatcher gets argv[0] = NAME and argv[1..argc-1] = ARGS, and returns an
 * exit status (0..125), or -1 if NAME is not one of its own. */
int bench_core_child(int argc, char **argv);
int bench_heap_child(int argc, char **argv);
int bench_rec_child(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
