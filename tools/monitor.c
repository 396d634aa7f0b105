/* SPDX-License-Identifier: Apache-2.0 */
/*
 * monitor.c - rszshm-monitor: a producer that keeps a histogram up to date
 * in a record, and consumers that show each new version without polling
 * (ROOT's hprod/hcons pair, TMapFile's job).
 *
 *   rszshm-monitor produce FILE [UPDATES [RATE]]
 *   rszshm-monitor consume FILE [LINES]
 *
 * produce makes the heap region FILE (it must not exist) and the record
 * "hpx", a struct hist: 100 bins over [-4, 4), the entry count, the sum
 * and sum of squares, a version, and a done flag.  Then it goes on in the
 * background (the command returns once the record exists, so a consumer
 * started next finds it): UPDATES times (default 1000), RATE times a
 * second (default 100), it fills 100 more entries (a sum of uniform
 * numbers: roughly normal) and puts the whole struct again.  At the end it
 * sets done, puts once more and removes FILE (attached consumers keep
 * their mapping).
 *
 * consume attaches FILE read-only and sleeps in rszshm_rec_wait() until
 * "hpx" changes; then it copies it (rszshm_rec_get(): never a torn
 * version) and prints one line.  It stops after LINES lines (default: when
 * the producer is done).  A consumer that falls behind skips versions: it
 * always shows the newest.
 *
 * Exit status: 0 done; 1 a call failed; 2 bad usage.
 */
#define _GNU_SOURCE
#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rszshm.h>

#define NBINS 100
#define LO (-4.0)
#define HI 4.0
#define HPX_TYPE 0x68707831u	/* "hpx1" */
#define WAIT_MS 5000

struct hist {
	uint64_t version;	/* +1 per put */
	uint64_t entries;
	double sum, sum2;
	uint64_t bins[NBINS];
	uint32_t done;		/* the producer has finished */
	uint32_t pad_;
};

static void usage(void)
{
	fprintf(stderr, "usage: rszshm-monitor produce FILE [UPDATES [RATE]]\n"
			"       rszshm-monitor consume FILE [LINES]\n");
	exit(2);
}

static unsigned long number(const char *s, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		usage();
	return v;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static double uniform(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static void fill(struct hist *h, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		double x = 0;
		int b;

		for (int k = 0; k < 12; k++)
			x += uniform();
		x -= 6;
		b = (int)floor((x - LO) / (HI - LO) * NBINS);
		if (b >= 0 && b < NBINS)
			h->bins[b]++;
		h->entries++;
		h->sum += x;
		h->sum2 += x * x;
	}
}

static int produce(const char *file, unsigned long updates, unsigned long rate)
{
	struct timespec next, step = { 0, (long)(1000000000UL / rate) };
	struct hist h;
	struct rszshm r;
	int p[2];
	char c = 0;
	pid_t pid;

	if (pipe(p) == -1)
		err(1, "pipe");
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid > 0) {
		/* Return once the record exists (or the child failed). */
		close(p[1]);
		return read(p[0], &c, 1) == 1 && c == 'y' ? 0 : 1;
	}
	close(p[0]);
	if (!rszshm_mk_flags(&r, 64 * 1024, file, RSZSHM_DFLT_SCAN, RSZSHM_HEAP))
		err(1, "%s", file);
	memset(&h, 0, sizeof(h));
	if (rszshm_rec_put(&r, "hpx", HPX_TYPE, &h, sizeof(h)) == -1)
		err(1, "rszshm_rec_put");
	c = 'y';
	if (write(p[1], &c, 1) != 1)
		err(1, "write");
	close(p[1]);

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (unsigned long u = 1; u <= updates; u++) {
		fill(&h, 100);
		h.version = u;
		h.done = u == updates;
		if (rszshm_rec_put(&r, "hpx", HPX_TYPE, &h, sizeof(h)) == -1)
			err(1, "rszshm_rec_put");
		if (u == updates)
			break;
		/* Pace the updates (this is the producer's rate, not a poll). */
		next.tv_nsec += step.tv_nsec;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	rszshm_unlink(&r);
	rszshm_dt(&r);
	return 0;
}

static int consume(const char *file, unsigned long lines)
{
	struct rszshm r;
	struct rszshm_rec_info info;
	struct hist h;
	uint64_t seen = 0, shown_gen = 0;
	unsigned long shown = 0;

	if (!rszshm_at_flags(&r, file, RSZSHM_RDONLY))
		err(1, "%s", file);
	for (;;) {
		unsigned fullest = 0;
		double mean, rms;

		if (rszshm_rec_wait(&r, "hpx", &seen, WAIT_MS) == -1) {
			if (errno == ETIMEDOUT) {
				printf("no update for %d s\n", WAIT_MS / 1000);
				fflush(stdout);
				continue;
			}
			err(1, "rszshm_rec_wait");
		}
		if (seen == 0)
			errx(1, "the record is gone");
		if (rszshm_rec_get(&r, "hpx", &h, sizeof(h), &info) != (ssize_t)sizeof(h))
			err(1, "rszshm_rec_get");
		/* The copy after the last wait may already have been this one. */
		if (info.gen == shown_gen)
			continue;
		shown_gen = info.gen;
		for (unsigned b = 1; b < NBINS; b++)
			if (h.bins[b] > h.bins[fullest])
				fullest = b;
		mean = h.entries ? h.sum / (double)h.entries : 0;
		rms = h.entries ? sqrt(h.sum2 / (double)h.entries - mean * mean) : 0;
		printf("version %" PRIu64 ": %" PRIu64 " entries, mean %+.3f, rms %.3f,"
		       " fullest bin [%+.2f, %+.2f) with %" PRIu64 "%s\n", h.version, h.entries,
		       mean, rms, LO + (HI - LO) * fullest / NBINS,
		       LO + (HI - LO) * (fullest + 1) / NBINS, h.bins[fullest],
		       h.done ? " (done)" : "");
		fflush(stdout);
		if (h.done || (lines && ++shown >= lines))
			break;
	}
	rszshm_dt(&r);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "produce") == 0)
		return produce(argv[2], argc > 3 ? number(argv[3], 1, 100000000) : 1000,
			       argc > 4 ? number(argv[4], 1, 100000) : 100);
	if (argc >= 3 && argc <= 4 && strcmp(argv[1], "consume") == 0)
		return consume(argv[2], argc > 3 ? number(argv[3], 0, ULONG_MAX) : 0);
	usage();
}
