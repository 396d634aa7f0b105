/* SPDX-License-Identifier: Apache-2.0 */
/*
 * demo.c - rszshm-demo: the ccan documentation example, made real.
 *
 *   rszshm-demo [-w WORKERS] [-n BYTES] [-k]
 *
 * Makes a region one page long, forks WORKERS processes (default 8) that
 * fill BYTES bytes (default 64M) of it together, then checks every byte.
 * The raw area holds a struct fill: a counter that workers advance with an
 * atomic add to claim the next byte, then the bytes themselves.  A worker
 * that claims a byte past the region's length grows the region
 * (rszshm_grow(), which doubles it unless another worker already did) and
 * writes 'A' + its number into the byte.  So every byte must end up written
 * exactly once, by one worker: a zero byte means a lost write (what ccan's
 * flock()-based growth lets happen when a late grower shrinks the file), a
 * byte found already written means two workers claimed the same byte.
 *
 * The parent only makes the region, waits for the workers and checks; it
 * never calls rszshm_up() before it reads the fill, since the growth the
 * workers made is visible in its mapping as it is.
 *
 * Exit status: 0 the fill is complete and correct; 1 it is not (a worker
 * failed or died, or a byte is missing or wrong); 2 bad usage, or the
 * region could not be made.  The region's file is removed at the end unless
 * -k is given, pass or fail.
 */
#define _GNU_SOURCE
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libutil.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rszshm.h>

#ifndef RSZSHM_TOOLS_VERSION
#define RSZSHM_TOOLS_VERSION "unknown"
#endif

#define MAX_WORKERS 26	/* one letter each, 'A' to 'Z' */

/* The region's raw area. */
struct fill {
	uint64_t next;		/* next byte to claim; advanced atomically */
	char pad_[56];		/* keeps the counter's cache line to itself */
	unsigned char bytes[];	/* the fill: 'A' + worker, one per byte */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: rszshm-demo [-w WORKERS] [-n BYTES] [-k]\n"
		"  -w WORKERS     processes that grow and fill the region (1-%d, default 8)\n"
		"  -n BYTES       bytes to fill, e.g. 4M, 64M, 5G (default 64M)\n"
		"  -k             keep the region's file (it is removed otherwise)\n"
		"  -h, --help     print this help\n"
		"  -V, --version  print the version\n"
		"Exit status: 0 fill correct, 1 fill failed, 2 usage or setup error.\n",
		MAX_WORKERS);
}

/* @n bytes in a short human form: 512B, 4.0KiB, 64MiB, 1.5GiB. */
static const char *human(char buf[8], uint64_t n)
{
	if (humanize_number(buf, 7, (int64_t)n, "B", HN_AUTOSCALE,
			    HN_NOSPACE | HN_DECIMAL | HN_IEC_PREFIXES) < 0)
		snprintf(buf, 8, "?");
	return buf;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One worker: claim bytes until all are claimed; returns the exit status. */
static int work(struct rszshm *r, unsigned w, uint64_t total)
{
	struct fill *f = r->dat;
	uint64_t i;

	while ((i = __atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED)) < total) {
		while (offsetof(struct fill, bytes) + i >= r->cap) {
			if (rszshm_grow(r) == -1) {
				warnx("%s: worker %c: rszshm_grow: %s", r->fname, 'A' + w, rszshm_errmsg());
				return 1;
			}
		}
		if (f->bytes[i] != 0) {
			warnx("%s: worker %c: byte %" PRIu64 " already written by %c",
			      r->fname, 'A' + w, i, f->bytes[i]);
			return 1;
		}
		f->bytes[i] = (unsigned char)('A' + w);
	}
	return 0;
}

/* Wait for every worker; returns how many failed, each named on stderr. */
static unsigned wait_workers(const struct rszshm *r, const pid_t *pids, unsigned n)
{
	unsigned failed = 0;
	int status;

	for (unsigned w = 0; w < n; w++) {
		if (pids[w] <= 0)
			continue;
		while (waitpid(pids[w], &status, 0) == -1) {
			if (errno != EINTR) {
				warn("%s: waitpid for worker %c", r->fname, 'A' + w);
				status = -1;
				break;
			}
		}
		if (status == -1)
			failed++;
		else if (WIFSIGNALED(status)) {
			warnx("%s: worker %c killed by signal %d (%s)", r->fname, 'A' + w,
			      WTERMSIG(status), strsignal(WTERMSIG(status)));
			failed++;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			warnx("%s: worker %c exited with status %d", r->fname, 'A' + w,
			      WEXITSTATUS(status));
			failed++;
		}
	}
	return failed;
}

/* Check the fill and print the counts; returns true if it is correct. */
static bool verify(struct rszshm *r, unsigned workers, uint64_t total)
{
	const struct fill *f = r->dat;
	uint64_t counts[MAX_WORKERS] = { 0 };
	uint64_t zeros = 0, first_zero = 0, bad = 0, first_bad = 0;
	uint64_t need = offsetof(struct fill, bytes) + total;
	uint64_t flen = __atomic_load_n(&r->hdr->flen, __ATOMIC_ACQUIRE);

	if (flen < sizeof(struct rszshm_hdr) + need) {
		warnx("%s: region is %" PRIu64 " bytes long, %" PRIu64 " needed", r->fname,
		      flen, sizeof(struct rszshm_hdr) + need);
		return false;
	}
	for (uint64_t i = 0; i < total; i++) {
		unsigned c = f->bytes[i];

		if (c >= 'A' && c < 'A' + workers) {
			counts[c - 'A']++;
		} else if (c == 0) {
			if (zeros++ == 0)
				first_zero = i;
		} else if (bad++ == 0) {
			first_bad = i;
		}
	}

	printf("worker\tbytes\n");
	for (unsigned w = 0; w < workers; w++)
		printf("%c\t%" PRIu64 "\n", 'A' + w, counts[w]);

	if (zeros) {
		warnx("%s: %" PRIu64 " of %" PRIu64 " bytes never written (first at offset %" PRIu64
		      ")", r->fname, zeros, total, first_zero);
		return false;
	}
	if (bad) {
		warnx("%s: %" PRIu64 " bytes hold no worker's letter (first at offset %" PRIu64 ")",
		      r->fname, bad, first_bad);
		return false;
	}
	/* Each worker stops after one claim past the end: exactly one each. */
	if (f->next != total + workers) {
		warnx("%s: claim counter is %" PRIu64 ", expected %" PRIu64, r->fname, f->next,
		      total + workers);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	unsigned workers = 8;
	uint64_t total = 64 * MiB, need, first;
	bool keep = false, ok;
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	pid_t pids[MAX_WORKERS] = { 0 };
	sigset_t stop, old;
	struct rszshm r;
	char h1[8], h2[8], h3[8];
	double t0, t1;
	unsigned failed;
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":w:n:khV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || v < 1 || v > MAX_WORKERS) {
				warnx("-w %s: want 1 to %d workers", optarg, MAX_WORKERS);
				return 2;
			}
			workers = (unsigned)v;
			break;
		}
		case 'n':
			if (expand_number(optarg, &total) == -1 || total == 0) {
				warnx("-n %s: want a size in bytes, e.g. 4M", optarg);
				return 2;
			}
			break;
		case 'k':
			keep = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			puts("rszshm-demo " RSZSHM_TOOLS_VERSION);
			return 0;
		case ':':
			warnx("-%c needs an argument (try --help)", optopt);
			return 2;
		default:
			if (optopt)
				warnx("unknown option -%c (try --help)", optopt);
			else
				warnx("unknown option %s (try --help)", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc) {
		warnx("unexpected argument %s (try --help)", argv[optind]);
		return 2;
	}

	/* The span must hold the header, the counter and every byte. */
	need = sizeof(struct rszshm_hdr) + offsetof(struct fill, bytes) + total;
	if (need < total || need > SIZE_MAX / 2) {
		warnx("-n: %" PRIu64 " bytes is too large for this machine", total);
		return 2;
	}
	if (scan.len < need)
		scan.len = (size_t)need;

	/* The smallest region to start with, as in ccan's example: the
	 * workers grow it. */
	if (!rszshm_mk(&r, 1, NULL, (scan))) {
		warnx("%s: rszshm_mk: %s", RSZSHM_DFLT_FNAME, rszshm_errmsg());
		return 2;
	}
	first = r.flen;

	printf("rszshm-demo: %u workers fill %s of %s\n", workers, human(h1, total), r.fname);
	fflush(stdout);

	/*
	 * Interrupting the demo stops the workers (they keep the default
	 * action); the parent holds the signal until it has removed the file.
	 */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, &old);

	t0 = now();
	failed = 0;
	for (unsigned w = 0; w < workers; w++) {
		pids[w] = fork();
		if (pids[w] == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			c = work(&r, w, total);
			if (rszshm_dt(&r) == -1 && c == 0) {
				warnx("%s: worker %c: rszshm_dt: %s", r.fname, 'A' + w, rszshm_errmsg());
				c = 1;
			}
			_exit(c);
		}
		if (pids[w] == -1) {
			warn("%s: fork", r.fname);
			failed++;
			/* Let the others finish the fill without it. */
		}
	}
	failed += wait_workers(&r, pids, workers);
	t1 = now();

	ok = failed == 0 && verify(&r, workers, total);
	if (failed)
		warnx("%s: %u of %u workers failed", r.fname, failed, workers);

	printf("file\t%s, %s (grew from %s, span %s), %s\n", r.fname,
	       human(h1, __atomic_load_n(&r.hdr->flen, __ATOMIC_ACQUIRE)),
	       human(h2, first), human(h3, r.max),
	       keep ? "kept" : "removed");
	if (ok)
		printf("OK\t%" PRIu64 " bytes, each written once by one worker, in %.2f s\n", total,
		       t1 - t0);

	if (rszshm_dt(&r) == -1) {
		warnx("%s: rszshm_dt: %s", r.fname, rszshm_errmsg());
		ok = false;
	}
	if (!keep && rszshm_rm(&r) == -1) {
		warnx("%s: removing the region: %s", r.fname, rszshm_errmsg());
		ok = false;
	}
	/* A held SIGINT/SIGTERM/SIGHUP ends the program here, files removed. */
	fflush(stdout);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ok ? 0 : 1;
}
