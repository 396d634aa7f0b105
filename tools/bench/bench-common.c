/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-common.c - the helpers every part of rszshm-bench shares (bench.h):
 * printing figures and ratios, medians, the clock, region file names, and
 * running this program again as a fresh process.  It depends on nothing
 * else in tools/bench/: the driver (bench.c) and the workload files (bench-*.c)
 * depend on it, never on each other, so there is no cycle among them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static unsigned printed;	/* figures printed so far (for --only) */

static void fmt_value(char *buf, size_t len, double v)
{
	double a = fabs(v);

	if (!isfinite(v))
		snprintf(buf, len, "nan");
	else if (a >= 100)
		snprintf(buf, len, "%.0f", v);
	else if (a >= 10)
		snprintf(buf, len, "%.1f", v);
	else if (a >= 1)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3g", v);
}

void bench_print(const char *workload, const char *system, double value, const char *unit)
{
	char v[64];

	fmt_value(v, sizeof(v), value);
	printf("%s\t%s\t%s\t%s\n", workload, system, v, unit);
	fflush(stdout);
	printed++;
}

void bench_ratio(const char *workload, double rszshm, double ref, bool higher_is_better,
		 const char *unit)
{
	double r = higher_is_better ? rszshm / ref : ref / rszshm;

	bench_print(workload, "ratio", r, unit);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, unsigned n)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_fname(const struct bench_opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s/region-XXXXXX/0", o->dir);
}

int bench_exec(const struct bench_opts *o, char *const args[])
{
	size_t n = 0;
	char **av;
	pid_t pid;
	int st;

	while (args[n])
		n++;
	if (!(av = reallocarray(NULL, n + 2, sizeof(*av))))
		return -1;
	av[0] = (char *)(uintptr_t)o->self;
	memcpy(av + 1, args, (n + 1) * sizeof(*av));
	pid = fork();
	if (pid == 0) {
		execv(o->self, av);
		_exit(127);
	}
	free(av);
	if (pid == -1)
		return -1;
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

double bench_procs(unsigned nproc, const struct bench_proc *w, void *arg)
{
	int ready[2], go[2], status, bad = 0;
	pid_t pids[BENCH_MAX_PROCS];
	double t0, t1;
	unsigned i;
	char c = 1;

	if (nproc < 1 || nproc > BENCH_MAX_PROCS || pipe(ready) < 0 || pipe(go) < 0)
		return -1;
	fflush(NULL);
	for (i = 0; i < nproc; i++) {
		if ((pids[i] = fork()) < 0) {
			nproc = i;
			bad = 1;
			break;
		}
		if (pids[i] == 0) {
			close(ready[0]);
			close(go[1]);
			if (w->prep && w->prep(arg, i) < 0)
				_exit(2);
			if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(2);
			if (w->body(arg, i) < 0)
				_exit(3);
			if (write(ready[1], &c, 1) != 1)
				_exit(2);
			_exit(w->post && w->post(arg, i) < 0 ? 4 : 0);
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
	return bad ? -1 : t1 - t0;
}

void bench_scaling(const char *workload, const double *rate, unsigned n)
{
	char sys[32];

	bench_print(workload, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN), "cores");
	for (unsigned k = 0; k < n; k++) {
		snprintf(sys, sizeof(sys), "rszshm-%uproc", 1u << k);
		bench_print(workload, sys, rate[k], "ops/s");
	}
	for (unsigned k = 1; k < n; k++) {
		snprintf(sys, sizeof(sys), "x-1proc-at-%uproc", 1u << k);
		bench_ratio(workload, rate[k], rate[0], true, sys);
	}
}

bool bench_want(const struct bench_opts *o, const char *group, const char *workload)
{
	return !o->only || strcmp(o->only, group) == 0 || strcmp(o->only, workload) == 0;
}


unsigned bench_printed(void)
{
	return printed;
}
