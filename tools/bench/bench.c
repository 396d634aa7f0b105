/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench.c - rszshm-bench: main(), which runs the workloads (bench-*.c) in
 * a child process and sweeps their files; the helpers they share are in
 * bench-common.c.
 *
 *   rszshm-bench [--quick] [--runs N] [--dir DIR] [--only NAME]
 *   rszshm-bench --child NAME ARGS...      (internal: a fresh process)
 *
 * main() makes a private scratch directory under DIR and runs the workloads
 * in a child process, the runner, in a process group of its own; when the
 * runner ends, however it ends (done, failed, killed), main() ends and reaps
 * whatever the runner left running, then removes the scratch directory and
 * everything in it, so no region file outlives the program.  Workloads remove their own files as
 * soon as they are done with them, and on an error print one line and exit
 * 1, leaving the rest to that sweep.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rszshm.h>

#include "bench.h"


static const char *const core_names[] = { "core", "attach", "grow", "fill", "lock", NULL };
static const char *const heap_names[] = { "heap", "alloc-free", "alloc-free-2proc", "alloc-free-scale", "alloc-xfree",
						   "overhead", NULL };
static const char *const rec_names[] = { "rec", "insert", "lookup", "lookup-scale", "attach-lookup", NULL };
static const char *const make_names[] = { "make", NULL };
static const char *const wait_names[] = { "wait", "wake", "put-nowait", NULL };

static bool in(const char *name, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(name, *names) == 0)
			return true;
	return false;
}

/* -------------------------------------------------------------- main */

#ifndef RSZSHM_TOOLS_VERSION
#define RSZSHM_TOOLS_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rszshm-bench [--quick] [--runs N] [--dir DIR] [--only NAME]\n"
		"  -h, --help   print this help;  -V, --version  print the version\n"
		"  --quick      smaller workloads, 3 runs: the whole program in < 30 s\n"
		"  --runs N     runs per figure, the median is printed (default 5)\n"
		"  --dir DIR    where to make region files (default /dev/shm)\n"
		"  --only NAME  one workload or group:\n"
		"               core: attach grow fill\n"
		"               heap: alloc-free alloc-free-2proc alloc-free-scale alloc-xfree overhead\n"
		"               rec: insert lookup lookup-scale attach-lookup\n"
		"               make: make\n"
		"               wait: wake put-nowait\n"
		"Output: one line per figure, tab-separated: WORKLOAD SYSTEM VALUE UNIT.\n"
		"Exit status: 0 done, 1 a workload failed, 2 bad usage or setup.\n");
}

static unsigned swept;	/* entries the sweep found left in the scratch dir */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		swept++;
	if (remove(path) == -1)
		fprintf(stderr, "rszshm-bench: %s: %s\n", path, strerror(errno));
	return 0;
}

static volatile sig_atomic_t runner;

/* The supervisor passes an interrupt on to the runner's process group. */
static void forward(int sig)
{
	if (runner > 0)
		kill(-(pid_t)runner, sig);
}

/* The workloads, in the runner process: returns its exit status. */
static int run(const struct bench_opts *o)
{
	if (!o->only || in(o->only, core_names))
		bench_core(o);
	if (!o->only || in(o->only, heap_names))
		bench_heap(o);
	if (!o->only || in(o->only, rec_names))
		bench_rec(o);
	if (!o->only || in(o->only, make_names))
		bench_make(o);
	if (!o->only || in(o->only, wait_names))
		bench_wait(o);
	if (o->only && bench_printed() == 0) {
		fprintf(stderr, "rszshm-bench: --only %s: printed nothing\n", o->only);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "runs", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static char self[PATH_MAX];
	char scratch[PATH_MAX];
	struct bench_opts o = { .runs = 0, .dir = "/dev/shm" };
	struct sigaction sa;
	ssize_t n;
	pid_t pid;
	int c, st;

	if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
		int rc = bench_core_child(argc - 2, argv + 2);

		if (rc == -1)
			rc = bench_heap_child(argc - 2, argv + 2);
		if (rc == -1)
			rc = bench_rec_child(argc - 2, argv + 2);
		if (rc == -1) {
			fprintf(stderr, "rszshm-bench: --child %s: unknown\n", argv[2]);
			return 127;
		}
		return rc;
	}

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o.quick = true;
			break;
		case 'r': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || v < 1 || v > 1000) {
				fprintf(stderr, "rszshm-bench: --runs %s: want 1 to 1000\n", optarg);
				return 2;
			}
			o.runs = (unsigned)v;
			break;
		}
		case 'd':
			o.dir = optarg;
			break;
		case 'o':
			o.only = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			puts("rszshm-bench " RSZSHM_TOOLS_VERSION);
			return 0;
		default:
			if (optopt)
				fprintf(stderr, "rszshm-bench: unknown option or missing argument: -%c"
					" (try --help)\n", optopt);
			else
				fprintf(stderr, "rszshm-bench: unknown option or missing argument: %s"
					" (try --help)\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "rszshm-bench: unexpected argument %s (try --help)\n", argv[optind]);
		return 2;
	}
	if (o.runs == 0)
		o.runs = o.quick ? 3 : 5;
	if (o.only && !in(o.only, core_names) && !in(o.only, heap_names) &&
	    !in(o.only, rec_names) && !in(o.only, make_names) && !in(o.only, wait_names)) {
		fprintf(stderr, "rszshm-bench: --only %s: no such workload (try --help)\n", o.only);
		return 2;
	}

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0)
		self[n] = '\0';
	else
		strlcpy(self, argv[0], sizeof(self));
	o.self = self;

	/* Region names are scratch/region-XXXXXX/0: they must fit RSZSHM_PATH_MAX. */
	if ((size_t)snprintf(scratch, sizeof(scratch), "%s/rszshm-bench-XXXXXX", o.dir) >=
	    RSZSHM_PATH_MAX - sizeof("/region-XXXXXX/0")) {
		fprintf(stderr, "rszshm-bench: --dir %s: too long for region names\n", o.dir);
		return 2;
	}
	if (!mkdtemp(scratch)) {
		fprintf(stderr, "rszshm-bench: %s: mkdtemp: %s\n", scratch, strerror(errno));
		return 2;
	}
	o.dir = scratch;

	/*
	 * The runner and every process it starts form a process group of their
	 * own; this process adopts any of them left orphaned (subreaper), so
	 * that when the runner ends, the stragglers of a failed workload can be
	 * ended and reaped before the sweep.
	 */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	fflush(stdout);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "rszshm-bench: fork: %s\n", strerror(errno));
		rmdir(scratch);
		return 2;
	}
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		c = run(&o);
		fflush(NULL);
		_exit(c);
	}
	setpgid(pid, pid);
	runner = pid;
	while (waitpid(pid, &st, 0) == -1) {
		if (errno != EINTR) {
			fprintf(stderr, "rszshm-bench: waitpid: %s\n", strerror(errno));
			st = 1 << 8;
			break;
		}
	}
	runner = 0;
	kill(-pid, SIGKILL);
	while (waitpid(-1, NULL, 0) != -1 || errno == EINTR)
		;
	nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (swept && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		fprintf(stderr, "rszshm-bench: note: %u files or directories were left in %s\n",
			swept, scratch);

	if (WIFSIGNALED(st)) {
		signal(WTERMSIG(st), SIG_DFL);
		raise(WTERMSIG(st));
		return 128 + WTERMSIG(st);
	}
	return WEXITSTATUS(st);
}
