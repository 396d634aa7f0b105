/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-core.c - rszshm-bench's core workloads: attach, grow, fill, lock.
 *
 *  attach  a freshly exec'd process attaches a region by file name
 *          (rszshm_at), reads one word, detaches and exits; against an exec'd
 *          process that does open+fstat+mmap of the same file, reads the word
 *          and exits, and an exec'd process that does nothing.  Microseconds
 *          per process, from fork to waitpid; the three are interleaved.
 *          "attach-call" times the same attach, read and detach as calls in
 *          this process, without the exec that dominates the figures above.
 *          "attach-call-span" puts it beside a floor that maps the file over
 *          the region's span (its address, its length: a 4 GiB mapping far
 *          from the process's others): the kernel's page-table work for such
 *          a span, paid by the floor too, so that the ratio is what the
 *          library adds to it.
 *  grow    a sparse region grows from 8 KiB to 16 GiB by doubling
 *          (rszshm_grow), with 8 other processes attached (forked, then
 *          detached from the inherited mapping and attached again by name).
 *          After each grow every one of them reads the new length straight
 *          from the header and reads the new last page; "grow-seen" is the
 *          most calls any of them needed before it could (0: none).  The
 *          reference is ftruncate(2) of a plain file to the same lengths.
 *          Microseconds per call, for lengths up to 1 MiB and from 2 GiB up;
 *          "grow-scaling" is the second over the first (1 = independent of
 *          the region's length).
 *  fill    2 forked workers fill 256 MiB (64 MiB with --quick) in 4 KiB
 *          chunks claimed with an atomic counter, growing the region as they
 *          go (rszshm_grow); the reference is an anonymous MAP_SHARED mapping
 *          of the full size made up front, filled the same way.  GiB/s, from
 *          fork to waitpid, on a fresh region and a fresh mapping each run
 *          (both fault every page in).
 *  lock    uncontended rszshm_lock + rszshm_unlock pairs on one region;
 *          against pthread_mutex_lock + unlock of a robust, process-shared
 *          error-checking mutex in a MAP_SHARED page (the bare primitive the
 *          region's locks are made of).  Nanoseconds per pair.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rszshm.h>

#include "bench.h"


/* One line naming the workload and the problem, then exit: main() sweeps. */
static void fail(const char *workload, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

static void fail(const char *workload, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "rszshm-bench: %s: ", workload);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void write_full(const char *workload, int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail(workload, "pipe write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Read @len bytes, waiting at most @timeout_ms for each part (a safety net
 * against a helper that died; not a synchronisation).  Returns false on EOF. */
static bool read_full(const char *workload, int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int rc = timeout_ms < 0 ? 1 : poll(&pfd, 1, timeout_ms);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0)
			fail(workload, "a helper process did not answer in %d s", timeout_ms / 1000);
		if (rc < 0)
			fail(workload, "poll: %s", strerror(errno));
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(workload, "pipe read: %s", strerror(errno));
		if (n == 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* waitpid for a helper; fails the workload unless it exited with 0. */
static void reap(const char *workload, pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			fail(workload, "waitpid: %s", strerror(errno));
	if (WIFSIGNALED(st))
		fail(workload, "%s killed by signal %d (%s)", what, WTERMSIG(st),
		     strsignal(WTERMSIG(st)));
	if (WEXITSTATUS(st) != 0)
		fail(workload, "%s exited with status %d", what, WEXITSTATUS(st));
}

static size_t page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Detach and remove a region made by a workload; fails loudly. */
static void drop(const char *workload, struct rszshm *r)
{
	if (rszshm_dt(r) == -1)
		fail(workload, "%s: rszshm_dt: %s", r->fname, strerror(errno));
	if (rszshm_rm(r) == -1)
		fail(workload, "%s: rszshm_rm: %s", r->fname, strerror(errno));
}

/* ------------------------------------------------------------ attach */

#define ATTACH_WORD 0x52535a53484d2121ULL

/* --child attach-rszshm FILE (and attach-call): attach by name, read the
 * word, detach. */
static int child_attach_rszshm(const char *fname)
{
	struct rszshm r;
	uint64_t w;

	if (!rszshm_at(&r, fname)) {
		fprintf(stderr, "rszshm-bench: %s: rszshm_at: %s\n", fname, strerror(errno));
		return 2;
	}
	w = *(volatile uint64_t *)r.dat;
	if (rszshm_dt(&r) == -1)
		return 2;
	return w == ATTACH_WORD ? 0 : 3;
}

/* --child attach-mmap FILE (and attach-call): the floor: open, fstat, mmap,
 * read the word, unmap, close. */
static int child_attach_mmap(const char *fname)
{
	struct stat st;
	uint64_t w;
	void *m;
	int fd;

	if ((fd = open(fname, O_RDWR | O_CLOEXEC)) == -1) {
		fprintf(stderr, "rszshm-bench: %s: open: %s\n", fname, strerror(errno));
		return 2;
	}
	if (fstat(fd, &st) == -1 ||
	    (m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
		    MAP_FAILED) {
		fprintf(stderr, "rszshm-bench: %s: fstat/mmap: %s\n", fname, strerror(errno));
		close(fd);
		return 2;
	}
	w = *(volatile uint64_t *)((char *)m + sizeof(struct rszshm_hdr));
	munmap(m, (size_t)st.st_size);
	close(fd);
	return w == ATTACH_WORD ? 0 : 3;
}

/* attach-call-span: the floor at the span: open, fstat, map the file over
 * @addr..+@len (MAP_FIXED_NOREPLACE), read the word, unmap, close. */
static int call_attach_span(const char *fname, void *addr, size_t len)
{
	struct stat st;
	uint64_t w;
	void *m;
	int fd;

	if ((fd = open(fname, O_RDWR | O_CLOEXEC)) == -1)
		return 2;
	if (fstat(fd, &st) == -1 ||
	    (m = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd,
		      0)) == MAP_FAILED) {
		close(fd);
		return 2;
	}
	if (m != addr) {
		munmap(m, len);
		close(fd);
		return 2;
	}
	w = *(volatile uint64_t *)((char *)m + sizeof(struct rszshm_hdr));
	munmap(m, len);
	close(fd);
	return w == ATTACH_WORD ? 0 : 3;
}

static void bench_attach(const struct bench_opts *o)
{
	enum { RSZSHM, MMAP, NOP, NSYS };
	static const char *const sys[NSYS] = { "rszshm", "open+mmap", "exec-nothing" };
	const unsigned iters = o->quick ? 20 : 200;
	const unsigned calls = o->quick ? 200 : 1000;
	double *v[NSYS], *call[3];
	char tmpl[PATH_MAX], fname[RSZSHM_PATH_MAX];
	struct rszshm r;
	void *span;
	size_t span_len;

	bench_fname(o, tmpl, sizeof(tmpl));
	if (!rszshm_mk(&r, page() - sizeof(struct rszshm_hdr), tmpl))
		fail("attach", "%s: rszshm_mk: %s", tmpl, strerror(errno));
	*(uint64_t *)r.dat = ATTACH_WORD;
	strcpy(fname, r.fname);
	span = r.hdr;
	span_len = r.max;
	/* Not kept mapped here: every fork below costs the same. */
	if (rszshm_dt(&r) == -1)
		fail("attach", "%s: rszshm_dt: %s", fname, strerror(errno));

	char *args[NSYS][4] = {
		{ "--child", "attach-rszshm", fname, NULL },
		{ "--child", "attach-mmap", fname, NULL },
		{ "--child", "nothing", NULL, NULL },
	};

	for (unsigned s = 0; s < NSYS; s++)
		v[s] = calloc(o->runs, sizeof(double));
	for (unsigned k = 0; k < 3; k++)
		call[k] = calloc(o->runs, sizeof(double));
	if (!v[RSZSHM] || !v[MMAP] || !v[NOP] || !call[0] || !call[1] || !call[2])
		fail("attach", "out of memory");

	for (unsigned run = 0; run < o->runs; run++) {
		double sum[NSYS] = { 0 };

		/* Interleaved, in a rotating order, so drift hits all three. */
		for (unsigned i = 0; i < iters; i++) {
			for (unsigned k = 0; k < NSYS; k++) {
				unsigned s = (i + k) % NSYS;
				double t0 = bench_now();
				int st = bench_exec(o, args[s]);

				sum[s] += bench_now() - t0;
				if (st != 0)
					fail("attach", "%s: child %s exited with status %d", fname,
					     args[s][1], st);
			}
		}
		for (unsigned s = 0; s < NSYS; s++)
			v[s][run] = sum[s] / iters * 1e6;

		/* The same attach, read and detach as a call in this process;
		 * and the floor, mapped anywhere and over the span. */
		for (unsigned k = 0; k < 3; k++) {
			double t0 = bench_now();

			for (unsigned i = 0; i < calls; i++) {
				int st = k == 0 ? child_attach_rszshm(fname) :
					 k == 1 ? child_attach_mmap(fname) :
						  call_attach_span(fname, span, span_len);

				if (st != 0)
					fail("attach", "%s: attach-call failed", fname);
			}
			call[k][run] = (bench_now() - t0) / calls * 1e6;
		}
	}
	if (rszshm_rm(&r) == -1)
		fail("attach", "%s: rszshm_rm: %s", fname, strerror(errno));

	double m[NSYS];

	for (unsigned s = 0; s < NSYS; s++) {
		m[s] = bench_median(v[s], o->runs);
		bench_print("attach", sys[s], m[s], "us");
	}
	bench_ratio("attach", m[RSZSHM], m[MMAP], false, "x-open+mmap");
	double a = bench_median(call[0], o->runs), b = bench_median(call[1], o->runs);

	bench_print("attach-call", "rszshm", a, "us");
	bench_print("attach-call", "open+mmap", b, "us");
	bench_ratio("attach-call", a, b, false, "x-open+mmap");
	double c = bench_median(call[2], o->runs);

	bench_print("attach-call-span", "rszshm", a, "us");
	bench_print("attach-call-span", "open+mmap-span", c, "us");
	bench_ratio("attach-call-span", a, c, false, "x-open+mmap-span");

	for (unsigned s = 0; s < NSYS; s++)
		free(v[s]);
	for (unsigned k = 0; k < 3; k++)
		free(call[k]);
}

/* -------------------------------------------------------------- grow */

#define GROW_WATCHERS 8
/* The smallest raw region: a page for the header and data, and the spill page. */
#define GROW_FROM (8 * KiB)
#define GROW_TO (16 * GiB)
#define GROW_SPAN (32 * GiB)
#define GROW_STEPS 21			/* 8 KiB * 2^21 = 16 GiB */
#define GROW_SMALL (1 * MiB)		/* "small": new length up to this */
#define GROW_LARGE (2 * GiB)		/* "large": new length from this */
#define TIMEOUT_MS 60000

_Static_assert(GROW_FROM << GROW_STEPS == GROW_TO, "the ladder ends at GROW_TO");

/*
 * A watcher: detach the inherited mapping, attach by name, then for every
 * length the parent sends, see it with no call if it can (a plain read of
 * hdr->flen), read the new last page, and answer with the calls it needed.
 */
static int watch(const char *fname, int tokens, int replies)
{
	struct rszshm r;
	uint64_t want;
	unsigned char calls;

	if (!rszshm_at(&r, fname)) {
		fprintf(stderr, "rszshm-bench: grow: %s: rszshm_at: %s\n", fname, strerror(errno));
		return 2;
	}
	calls = 0;
	write_full("grow", replies, &calls, 1);
	while (read_full("grow", tokens, &want, sizeof(want), -1)) {
		calls = 0;
		if (__atomic_load_n(&r.hdr->flen, __ATOMIC_ACQUIRE) < want) {
			calls++;
			if (rszshm_up(&r) == -1 || r.flen < want) {
				fprintf(stderr, "rszshm-bench: grow: %s: length %zu, %ju expected\n",
					fname, r.flen, (uintmax_t)want);
				return 3;
			}
		}
		/* SIGBUS here (reported by the parent) if the length was a lie. */
		(void)*(volatile char *)((char *)r.hdr + want - 1);
		write_full("grow", replies, &calls, 1);
	}
	rszshm_dt(&r);
	return 0;
}

struct ladder {
	double us[2][GROW_STEPS];	/* microseconds per step: rszshm, ftruncate */
	uint64_t len[GROW_STEPS];	/* length after the step */
	unsigned max_calls;		/* most calls any watcher needed */
};

/*
 * One ladder: a region and a plain file grow side by side, 8 KiB to 16 GiB,
 * while the watchers look at the region after every step.  Each step times
 * rszshm_grow() and ftruncate(2) of the plain file to the same length, in
 * an order that alternates, so both run in the same conditions.
 */
static void ladder(const struct bench_opts *o, struct ladder *l)
{
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	pid_t pids[GROW_WATCHERS];
	int tok[GROW_WATCHERS][2], rep[2], fd;
	char tmpl[PATH_MAX], path[PATH_MAX];
	struct rszshm r;

	scan.len = GROW_SPAN;
	bench_fname(o, tmpl, sizeof(tmpl));
	if (!rszshm_mk(&r, 1, tmpl, (scan)))
		fail("grow", "%s: rszshm_mk: %s", tmpl, strerror(errno));
	if (r.flen != GROW_FROM)
		fail("grow", "%s: made %zu bytes long, not %zu", r.fname, r.flen, (size_t)GROW_FROM);
	snprintf(path, sizeof(path), "%s/ftruncate-XXXXXX", o->dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) == -1)
		fail("grow", "%s: mkostemp: %s", path, strerror(errno));
	if (ftruncate(fd, GROW_FROM) == -1)
		fail("grow", "%s: ftruncate: %s", path, strerror(errno));

	if (pipe2(rep, O_CLOEXEC) == -1)
		fail("grow", "pipe: %s", strerror(errno));
	for (unsigned i = 0; i < GROW_WATCHERS; i++)
		if (pipe2(tok[i], O_CLOEXEC) == -1)
			fail("grow", "pipe: %s", strerror(errno));
	fflush(stdout);
	for (unsigned i = 0; i < GROW_WATCHERS; i++) {
		if ((pids[i] = fork()) == -1)
			fail("grow", "fork: %s", strerror(errno));
		if (pids[i] == 0) {
			char fname[RSZSHM_PATH_MAX];

			strcpy(fname, r.fname);
			for (unsigned j = 0; j < GROW_WATCHERS; j++) {
				close(tok[j][1]);
				if (j != i)
					close(tok[j][0]);
			}
			close(rep[0]);
			close(fd);
			/* Attached afresh by name, like an unrelated process. */
			rszshm_dt(&r);
			_exit(watch(fname, tok[i][0], rep[1]));
		}
	}
	close(rep[1]);
	for (unsigned i = 0; i < GROW_WATCHERS; i++)
		close(tok[i][0]);

	unsigned char c[GROW_WATCHERS];

	if (!read_full("grow", rep[0], c, sizeof(c), TIMEOUT_MS))
		fail("grow", "%s: a watcher failed to attach", r.fname);

	l->max_calls = 0;
	for (unsigned s = 0; s < GROW_STEPS; s++) {
		uint64_t len = (uint64_t)GROW_FROM << (s + 1);

		for (unsigned k = 0; k < 2; k++) {
			unsigned y = (s + k) % 2;
			double t0 = bench_now();
			int rc = y == 0 ? rszshm_grow(&r) : ftruncate(fd, (off_t)len);

			l->us[y][s] = (bench_now() - t0) * 1e6;
			if (y == 0 && rc != 1)
				fail("grow", "%s: rszshm_grow from %zu: %s", r.fname, r.flen,
				     strerror(errno));
			if (y == 1 && rc == -1)
				fail("grow", "%s: ftruncate to %ju: %s", path, (uintmax_t)len,
				     strerror(errno));
		}
		if (r.flen != len)
			fail("grow", "%s: grew to %zu, not %ju", r.fname, r.flen, (uintmax_t)len);
		l->len[s] = len;

		for (unsigned i = 0; i < GROW_WATCHERS; i++)
			write_full("grow", tok[i][1], &len, sizeof(len));
		if (!read_full("grow", rep[0], c, sizeof(c), TIMEOUT_MS))
			fail("grow", "%s: a watcher failed at length %ju", r.fname, (uintmax_t)len);
		for (unsigned i = 0; i < GROW_WATCHERS; i++)
			if (c[i] > l->max_calls)
				l->max_calls = c[i];
	}

	for (unsigned i = 0; i < GROW_WATCHERS; i++)
		close(tok[i][1]);
	close(rep[0]);
	for (unsigned i = 0; i < GROW_WATCHERS; i++)
		reap("grow", pids[i], "a watcher");
	drop("grow", &r);
	close(fd);
	if (unlink(path) == -1)
		fail("grow", "%s: unlink: %s", path, strerror(errno));
}

/* Median microseconds of system @y's steps whose new length is in [lo, hi]. */
static double steps_median(const struct ladder *ls, unsigned n, unsigned y, uint64_t lo,
			   uint64_t hi)
{
	double v[GROW_STEPS * 16];
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		for (unsigned s = 0; s < GROW_STEPS; s++)
			if (ls[i].len[s] >= lo && ls[i].len[s] <= hi && k < sizeof(v) / sizeof(*v))
				v[k++] = ls[i].us[y][s];
	return bench_median(v, k);
}

static void bench_grow(const struct bench_opts *o)
{
	enum { ALL, SMALL, LARGE, NFIG };
	const unsigned per_run = o->quick ? 2 : 10;	/* ladders per run */
	struct ladder ls[16];
	double *fig[2][NFIG];
	unsigned max_calls = 0;

	for (unsigned y = 0; y < 2; y++)
		for (unsigned f = 0; f < NFIG; f++)
			if (!(fig[y][f] = calloc(o->runs, sizeof(double))))
				fail("grow", "out of memory");

	for (unsigned run = 0; run < o->runs; run++) {
		for (unsigned i = 0; i < per_run; i++) {
			ladder(o, &ls[i]);
			if (ls[i].max_calls > max_calls)
				max_calls = ls[i].max_calls;
		}
		for (unsigned y = 0; y < 2; y++) {
			fig[y][ALL][run] = steps_median(ls, per_run, y, 0, UINT64_MAX);
			fig[y][SMALL][run] = steps_median(ls, per_run, y, 0, GROW_SMALL);
			fig[y][LARGE][run] = steps_median(ls, per_run, y, GROW_LARGE, UINT64_MAX);
		}
	}

	static const char *const wl[NFIG] = { "grow", "grow-to-1MiB", "grow-from-2GiB" };
	double m[2][NFIG];

	for (unsigned f = 0; f < NFIG; f++) {
		m[0][f] = bench_median(fig[0][f], o->runs);
		m[1][f] = bench_median(fig[1][f], o->runs);
		bench_print(wl[f], "rszshm", m[0][f], "us");
		bench_print(wl[f], "ftruncate", m[1][f], "us");
		bench_ratio(wl[f], m[0][f], m[1][f], false, "x-ftruncate");
	}
	bench_print("grow-scaling", "rszshm", m[0][LARGE] / m[0][SMALL], "x-large/small");
	bench_print("grow-scaling", "ftruncate", m[1][LARGE] / m[1][SMALL], "x-large/small");
	bench_print("grow-seen", "rszshm", max_calls, "calls");

	for (unsigned y = 0; y < 2; y++)
		for (unsigned f = 0; f < NFIG; f++)
			free(fig[y][f]);
}

/* -------------------------------------------------------------- fill */

#define FILL_WORKERS 2
#define FILL_BYTES (256 * MiB)
#define FILL_BYTES_QUICK (64 * MiB)
#define FILL_CHUNK (4 * KiB)

/*
 * Both sides lay memory out alike: page 0 holds the claim counter (after
 * the header, in the region), chunk c is page c + 1.
 */
static void fill_work(struct rszshm *r, char *base, uint64_t *next, uint64_t chunks, unsigned w)
{
	const size_t pg = page();
	uint64_t c;

	while ((c = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED)) < chunks) {
		if (r) {
			while ((c + 2) * pg > r->flen) {
				if (rszshm_grow(r) != 1) {
					fprintf(stderr, "rszshm-bench: fill: %s: rszshm_grow: %s\n",
						r->fname, strerror(errno));
					_exit(2);
				}
			}
		}
		memset(base + (c + 1) * pg, 'A' + (int)w, FILL_CHUNK);
	}
}

/* Fork the workers, wait for them; returns the seconds it took. */
static double fill_once(const char *what, struct rszshm *r, char *base, uint64_t *next,
			uint64_t chunks)
{
	pid_t pids[FILL_WORKERS];
	double t0, t1;

	fflush(stdout);
	t0 = bench_now();
	for (unsigned w = 0; w < FILL_WORKERS; w++) {
		if ((pids[w] = fork()) == -1)
			fail("fill", "fork: %s", strerror(errno));
		if (pids[w] == 0) {
			fill_work(r, base, next, chunks, w);
			_exit(0);
		}
	}
	for (unsigned w = 0; w < FILL_WORKERS; w++)
		reap("fill", pids[w], what);
	t1 = bench_now();

	for (uint64_t c = 0; c < chunks; c++) {
		const char *p = base + (c + 1) * page();

		if (p[0] == 0 || p[FILL_CHUNK - 1] == 0)
			fail("fill", "%s: chunk %ju was not written", what, (uintmax_t)c);
	}
	return t1 - t0;
}

static double fill_rszshm(const struct bench_opts *o, uint64_t bytes)
{
	const size_t pg = page();
	char tmpl[PATH_MAX];
	struct rszshm r;
	double t;

	bench_fname(o, tmpl, sizeof(tmpl));
	if (!rszshm_mk(&r, pg - sizeof(struct rszshm_hdr), tmpl))
		fail("fill", "%s: rszshm_mk: %s", tmpl, strerror(errno));
	t = fill_once(r.fname, &r, (char *)r.hdr, r.dat, bytes / FILL_CHUNK);
	drop("fill", &r);
	return t;
}

static double fill_anon(uint64_t bytes)
{
	const size_t len = page() + (size_t)bytes;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double t;

	if (m == MAP_FAILED)
		fail("fill", "mmap of %zu bytes: %s", len, strerror(errno));
	t = fill_once("anonymous mapping", NULL, m, (uint64_t *)(void *)m, bytes / FILL_CHUNK);
	munmap(m, len);
	return t;
}

static void bench_fill(const struct bench_opts *o)
{
	const uint64_t bytes = o->quick ? FILL_BYTES_QUICK : FILL_BYTES;
	double *v[2], m[2];

	_Static_assert(FILL_CHUNK % 4096 == 0, "chunks are whole pages");
	if (page() != FILL_CHUNK)
		fail("fill", "needs 4 KiB pages");
	v[0] = calloc(o->runs, sizeof(double));
	v[1] = calloc(o->runs, sizeof(double));
	if (!v[0] || !v[1])
		fail("fill", "out of memory");
	/* One unmeasured round: the first touch of memory can cost more (in a
	 * virtual machine, the host backs the guest's pages then). */
	if (!o->quick) {
		fill_rszshm(o, bytes);
		fill_anon(bytes);
	}
	for (unsigned run = 0; run < o->runs; run++) {
		/* Alternate which goes first, so neither always follows the other. */
		for (unsigned k = 0; k < 2; k++) {
			unsigned s = (run + k) % 2;
			double t = s == 0 ? fill_rszshm(o, bytes) : fill_anon(bytes);

			v[s][run] = (double)bytes / GiB / t;
		}
	}
	m[0] = bench_median(v[0], o->runs);
	m[1] = bench_median(v[1], o->runs);
	bench_print("fill", "rszshm", m[0], "GiB/s");
	bench_print("fill", "anon-shared", m[1], "GiB/s");
	bench_ratio("fill", m[0], m[1], true, "x-anon-shared");
	free(v[0]);
	free(v[1]);
}

/* ------------------------------------------------------------------ lock */

static void bench_lock(const struct bench_opts *o)
{
	unsigned long n = o->quick ? 1000000ul : 10000000ul, i;
	double *a = calloc(o->runs, sizeof(double)), *b = calloc(o->runs, sizeof(double));
	char tmpl[PATH_MAX];
	pthread_mutexattr_t attr;
	pthread_mutex_t *m;
	struct rszshm r;
	unsigned k;

	if (!a || !b)
		fail("lock", "out of memory");
	bench_fname(o, tmpl, sizeof(tmpl));
	if (!rszshm_mk(&r, 4096, tmpl))
		fail("lock", "rszshm_mk: %s", strerror(errno));
	m = mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail("lock", "mmap: %s", strerror(errno));
	if (pthread_mutexattr_init(&attr) || pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) ||
	    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) ||
	    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK) || pthread_mutex_init(m, &attr))
		fail("lock", "pthread_mutex_init failed");
	for (k = 0; k < o->runs; k++) {
		double t = bench_now();

		for (i = 0; i < n; i++)
			if (rszshm_lock(&r) != 0 || rszshm_unlock(&r) != 0)
				fail("lock", "rszshm_lock: %s", strerror(errno));
		a[k] = (bench_now() - t) * 1e9 / (double)n;
		t = bench_now();
		for (i = 0; i < n; i++)
			if (pthread_mutex_lock(m) != 0 || pthread_mutex_unlock(m) != 0)
				fail("lock", "pthread_mutex_lock failed");
		b[k] = (bench_now() - t) * 1e9 / (double)n;
	}
	double ma = bench_median(a, o->runs), mb = bench_median(b, o->runs);

	bench_print("lock", "rszshm", ma, "ns");
	bench_print("lock", "pthread-robust", mb, "ns");
	bench_ratio("lock", ma, mb, false, "x-pthread-robust");
	pthread_mutex_destroy(m);
	pthread_mutexattr_destroy(&attr);
	munmap(m, page());
	if (rszshm_dt(&r) != 0 || rszshm_rm(&r) != 0)
		fail("lock", "%s: rszshm_dt/rm: %s", r.fname, strerror(errno));
	free(a);
	free(b);
}

void bench_core(const struct bench_opts *o)
{
	if (bench_want(o, "core", "attach"))
		bench_attach(o);
	if (bench_want(o, "core", "grow"))
		bench_grow(o);
	if (bench_want(o, "core", "fill"))
		bench_fill(o);
	if (bench_want(o, "core", "lock"))
		bench_lock(o);
}

int bench_core_child(int argc, char **argv)
{
	if (strcmp(argv[0], "nothing") == 0)
		return 0;
	if (strcmp(argv[0], "attach-rszshm") == 0 && argc == 2)
		return child_attach_rszshm(argv[1]);
	if (strcmp(argv[0], "attach-mmap") == 0 && argc == 2)
		return child_attach_mmap(argv[1]);
	return -1;
}
