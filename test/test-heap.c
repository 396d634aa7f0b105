/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-heap.c - the in-region allocator (lib/heap/) and its walker.
 *
 * Every test that changes a heap ends with rszshm_check() == 0.  The
 * multi-process tests fork workers (or exec helpers, for processes that
 * attach by name) and synchronise with pipes and waitpid only.  The stress
 * tests (four workers, the kill loop) are correctness tests, not benchmarks:
 * they check contents, errnos and the consistency walk, never timings.
 *
 * The walker tests are white-box: they corrupt a copy of a heap at places
 * that lib/heap/heap.h's layout defines (run headers at every 64 KiB from the
 * base, each followed by its segment's allocation bitmap).  The writer
 * tests corrupt one field of a live run header the same way and check that
 * the next allocation neither crashes nor hangs (each test runs in a forked
 * child, under a short timeout) nor hands out memory outside the region.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

#define SEG (64 * 1024)

static void mk_heap(struct rszshm *r, const char *leaf, size_t flen)
{
	char path[256];

	test_path(path, sizeof(path), "%s", leaf);
	test_track(path);
	ck_assert_msg(rszshm_mk_flags(r, flen, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL,
		      "mk %s: %s", path, strerror(errno));
}

static void assert_consistent(struct rszshm *r)
{
	char msg[256] = "";

	ck_assert_msg(rszshm_check(r, msg, sizeof(msg)) == 0, "check: %s", msg);
}

static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		c[i] = (unsigned char)(seed * 131 + i * 7);
}

static bool filled(const void *p, size_t n, unsigned seed)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed * 131 + i * 7))
			return false;
	return true;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void put_ptr(int fd, const void *p)
{
	uint64_t v = (uintptr_t)p;

	ck_assert_msg(write(fd, &v, sizeof(v)) == (ssize_t)sizeof(v), "write: %s", strerror(errno));
}

static void *get_ptr(int fd)
{
	uint64_t v;

	ck_assert_msg(read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v), "pipe closed early");
	return (void *)(uintptr_t)v;
}

/* ------------------------------------------------------------- basics */

START_TEST(test_alloc_sizes_are_usable_and_distinct)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 1000, 1024, 4097,
					16384, 16385, 65536, 1 << 20 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	struct rszshm r;
	void *p[N];
	size_t i, j;

	mk_heap(&r, "sizes", 4096);
	for (i = 0; i < N; i++) {
		p[i] = rszshm_alloc(&r, sizes[i]);
		ck_assert_msg(p[i] != NULL, "alloc %zu: %s", sizes[i], strerror(errno));
		ck_assert_uint_eq((uintptr_t)p[i] % RSZSHM_ALIGN, 0);
		ck_assert_uint_ge(rszshm_usable_size(&r, p[i]), sizes[i] ? sizes[i] : 1);
		fill(p[i], rszshm_usable_size(&r, p[i]), (unsigned)i);
	}
	for (i = 0; i < N; i++) {
		ck_assert(filled(p[i], rszshm_usable_size(&r, p[i]), (unsigned)i));
		for (j = 0; j < N; j++) {
			char *a = p[i], *b = p[j];

			if (i != j)
				ck_assert(a + rszshm_usable_size(&r, a) <= b ||
					  b + rszshm_usable_size(&r, b) <= a);
		}
	}
	assert_consistent(&r);
	for (i = 0; i < N; i++)
		ck_assert_int_eq(rszshm_dealloc(&r, p[i]), 0);
	ck_assert_int_eq(rszshm_dealloc(&r, NULL), 0);
	assert_consistent(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_zalloc_zeroes_reused_memory)
{
	struct rszshm r;
	size_t sizes[] = { 24, 3000, 100000 }, i, k;
	unsigned char *p;

	mk_heap(&r, "zalloc", 4096);
	for (i = 0; i < 3; i++) {
		p = rszshm_alloc(&r, sizes[i]);
		ck_assert_ptr_nonnull(p);
		memset(p, 0xa5, sizes[i]);
		ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
		p = rszshm_zalloc(&r, sizes[i]);
		ck_assert_ptr_nonnull(p);
		for (k = 0; k < sizes[i]; k++)
			ck_assert_uint_eq(p[k], 0);
		ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	}
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_realloc_keeps_contents)
{
	struct rszshm r;
	char *p, *q;
	size_t n;

	mk_heap(&r, "realloc", 4096);
	p = rszshm_realloc(&r, NULL, 40);
	ck_assert_ptr_nonnull(p);
	fill(p, 40, 1);
	for (n = 80; n <= 400000; n *= 3) {
		q = rszshm_realloc(&r, p, n);
		ck_assert_msg(q != NULL, "realloc %zu: %s", n, strerror(errno));
		ck_assert(filled(q, 40, 1));
		ck_assert_uint_ge(rszshm_usable_size(&r, q), n);
		p = q;
	}
	q = rszshm_realloc(&r, p, 20);
	ck_assert_ptr_nonnull(q);
	ck_assert(filled(q, 20, 1));
	ck_assert_uint_ge(rszshm_usable_size(&r, q), 20);
	/* A failed realloc leaves the block as it was. */
	errno = 0;
	ck_assert_ptr_null(rszshm_realloc(&r, q, (size_t)1 << (sizeof(size_t) * 8 - 2)));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert(filled(q, 20, 1));
	ck_assert_int_eq(rszshm_dealloc(&r, q), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_alloc_aligned_honours_alignment)
{
	static const size_t aligns[] = { 1, 16, 32, 64, 256, 4096, 32768, 65536 };
	static const size_t sizes[] = { 1, 100, 5000, 40000 };
	struct rszshm r;
	void *p[8][4];
	size_t a, s;

	mk_heap(&r, "aligned", 4096);
	for (a = 0; a < 8; a++) {
		for (s = 0; s < 4; s++) {
			p[a][s] = rszshm_alloc_aligned(&r, aligns[a], sizes[s]);
			ck_assert_msg(p[a][s] != NULL, "align %zu size %zu: %s", aligns[a], sizes[s],
				      strerror(errno));
			ck_assert_uint_eq((uintptr_t)p[a][s] % aligns[a], 0);
			ck_assert_uint_ge(rszshm_usable_size(&r, p[a][s]), sizes[s]);
			fill(p[a][s], sizes[s], (unsigned)(a * 4 + s));
		}
	}
	assert_consistent(&r);
	for (a = 0; a < 8; a++) {
		for (s = 0; s < 4; s++) {
			ck_assert(filled(p[a][s], sizes[s], (unsigned)(a * 4 + s)));
			ck_assert_int_eq(rszshm_dealloc(&r, p[a][s]), 0);
		}
	}
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc_aligned(&r, 0, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc_aligned(&r, 48, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc_aligned(&r, 128 * 1024, 10));
	ck_assert_int_eq(errno, EINVAL);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/*
 * A 0-byte aligned block is a block of its own: for alignments whose padded
 * class is exactly align - 16 bytes (32, 64, 128), rounding up could land on
 * the next block's start, and freeing it would free that neighbour; at 64 KiB
 * it could land on the next run.  Blocks of the neighbouring class are
 * interleaved with them and must survive every free.
 */
START_TEST(test_aligned_zero_size_blocks_are_their_own)
{
	static const size_t aligns[] = { 32, 64, 128, 65536 };
	enum { N = 48 };
	struct rszshm r;
	char *z[4][N], *n[4][N];
	size_t a, i, nsize;

	mk_heap(&r, "alignzero", 4096);
	for (a = 0; a < 4; a++) {
		nsize = aligns[a] < 65536 ? aligns[a] - 16 : 16;
		for (i = 0; i < N; i++) {
			z[a][i] = rszshm_alloc_aligned(&r, aligns[a], 0);
			ck_assert_ptr_nonnull(z[a][i]);
			ck_assert_uint_eq((uintptr_t)z[a][i] % aligns[a], 0);
			ck_assert_uint_ge(rszshm_usable_size(&r, z[a][i]), 1);
			n[a][i] = rszshm_alloc(&r, nsize);
			ck_assert_ptr_nonnull(n[a][i]);
			memset(n[a][i], (int)(0xa0 + a), nsize);
		}
	}
	assert_consistent(&r);
	for (a = 0; a < 4; a++)
		for (i = 0; i < N; i++)
			ck_assert_int_eq(rszshm_dealloc(&r, z[a][i]), 0);
	/* Reuse what was freed, then check no neighbour was among it. */
	for (a = 0; a < 4; a++)
		for (i = 0; i < N; i++)
			memset(rszshm_alloc(&r, aligns[a] < 65536 ? aligns[a] - 16 : 16), 0x55,
			       aligns[a] < 65536 ? aligns[a] - 16 : 16);
	for (a = 0; a < 4; a++) {
		nsize = aligns[a] < 65536 ? aligns[a] - 16 : 16;
		for (i = 0; i < N; i++) {
			for (size_t k = 0; k < nsize; k++)
				ck_assert_int_eq((unsigned char)n[a][i][k], 0xa0 + a);
			ck_assert_int_eq(rszshm_dealloc(&r, n[a][i]), 0);
		}
	}
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* -------------------------------------------------------------- errnos */

START_TEST(test_raw_region_refuses_heap_calls)
{
	struct rszshm r;
	char path[256];
	int x;

	test_path(path, sizeof(path), "raw");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, path));
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc(&r, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(rszshm_zalloc(&r, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc_aligned(&r, 64, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(rszshm_realloc(&r, r.dat, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, r.dat), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_uint_eq(rszshm_usable_size(&r, r.dat), 0);
	ck_assert_int_eq(errno, EINVAL);
	/* The raw area is untouched and still the caller's. */
	memset(r.dat, 0x5a, r.cap);
	assert_consistent(&r);
	rszshm_dt(&r);

	errno = 0;
	ck_assert_ptr_null(rszshm_alloc(NULL, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc(&r, 10));	/* detached */
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(NULL, &x), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static int helper_rdonly(int argc, char **argv)
{
	struct rszshm r;
	void *p;

	HCHECK(argc == 3);
	p = (void *)(uintptr_t)strtoull(argv[2], NULL, 10);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY) != NULL);
	errno = 0;
	HCHECK(rszshm_alloc(&r, 10) == NULL && errno == EPERM);
	errno = 0;
	HCHECK(rszshm_zalloc(&r, 10) == NULL && errno == EPERM);
	errno = 0;
	HCHECK(rszshm_alloc_aligned(&r, 64, 10) == NULL && errno == EPERM);
	errno = 0;
	HCHECK(rszshm_realloc(&r, p, 10) == NULL && errno == EPERM);
	errno = 0;
	HCHECK(rszshm_dealloc(&r, p) == -1 && errno == EPERM);
	/* Reading is allowed. */
	HCHECK(rszshm_usable_size(&r, p) >= 100);
	HCHECK(filled(p, 100, 9));
	HCHECK(rszshm_check(&r, NULL, 0) == 0);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

START_TEST(test_readonly_attach_gets_eperm)
{
	struct rszshm r;
	char addr[32];
	void *p;

	mk_heap(&r, "rdonly", 4096);
	p = rszshm_alloc(&r, 100);
	ck_assert_ptr_nonnull(p);
	fill(p, 100, 9);
	snprintf(addr, sizeof(addr), "%" PRIu64, (uint64_t)(uintptr_t)p);
	ck_assert_int_eq(test_wait(test_exec_helper("rdonly", r.fname, addr, NULL)), 0);
	/* The helper changed nothing. */
	ck_assert_uint_ge(rszshm_usable_size(&r, p), 100);
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_full_span_gives_enomem)
{
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	struct rszshm_stats st;
	struct rszshm r;
	char path[256];
	void *p[512];
	unsigned n = 0, i;

	scan.len = 1 << 20;	/* 16 segments of 64 KiB, the first for the header */
	test_path(path, sizeof(path), "full");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk_flags(&r, 4096, path, scan, RSZSHM_HEAP));
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc(&r, 2 << 20));
	ck_assert_int_eq(errno, ENOMEM);
	while (n < 512 && (p[n] = rszshm_alloc(&r, 4000)) != NULL)
		fill(p[n], 4000, n), n++;
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_gt(n, 100);
	ck_assert_uint_lt(n, 512);
	ck_assert_uint_eq(r.hdr->flen, r.hdr->max);
	errno = 0;
	ck_assert_ptr_null(rszshm_alloc(&r, 100000));
	ck_assert_int_eq(errno, ENOMEM);
	assert_consistent(&r);
	/* Room again once a block is freed. */
	ck_assert_int_eq(rszshm_dealloc(&r, p[n / 2]), 0);
	p[n / 2] = rszshm_alloc(&r, 4000);
	ck_assert_ptr_nonnull(p[n / 2]);
	fill(p[n / 2], 4000, n / 2);
	for (i = 0; i < n; i++) {
		ck_assert(filled(p[i], 4000, i));
		ck_assert_int_eq(rszshm_dealloc(&r, p[i]), 0);
	}
	/* Everything freed: a large block fits in the freed segments. */
	p[0] = rszshm_alloc(&r, 500000);
	ck_assert_msg(p[0] != NULL, "large after free: %s", strerror(errno));
	ck_assert_int_eq(rszshm_dealloc(&r, p[0]), 0);
	assert_consistent(&r);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 0);
	ck_assert_uint_eq(st.used_bytes, 0);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_bad_pointers_get_einval)
{
	struct rszshm r;
	char *p, *big, *q;
	int local;

	mk_heap(&r, "badptr", 4096);
	p = rszshm_alloc(&r, 100);
	big = rszshm_alloc(&r, 100000);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(big);
	char *bad[] = { (char *)&local, (char *)r.hdr, (char *)r.hdr + 512, p + 1, p + 16,
			big + 16, big - 64, (char *)r.hdr + r.hdr->max - 16 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(rszshm_dealloc(&r, bad[i]) == -1 && errno == EINVAL, "bad[%zu]", i);
		errno = 0;
		ck_assert_msg(rszshm_usable_size(&r, bad[i]) == 0 && errno == EINVAL, "bad[%zu]", i);
		errno = 0;
		ck_assert_msg(rszshm_realloc(&r, bad[i], 10) == NULL && errno == EINVAL, "bad[%zu]", i);
	}
	/* Double frees, of small and large blocks. */
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, p), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_uint_eq(rszshm_usable_size(&r, p), 0);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_dealloc(&r, big), 0);
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, big), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* Once the freed block went through its arena, still refused. */
	q = rszshm_alloc(&r, 3000);
	ck_assert_ptr_nonnull(q);
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, p), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* An aligned block is freed by the pointer it was given as. */
	p = rszshm_alloc_aligned(&r, 256, 50);
	ck_assert_ptr_nonnull(p);
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, p + 16), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	ck_assert_int_eq(rszshm_dealloc(&r, q), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* ------------------------------------------------------ multi-process */

static void *claim_in_new_thread(void *arg)
{
	struct rszshm *r = arg;
	void *p = rszshm_alloc(r, 16);

	return (void *)(uintptr_t)(p && rszshm_dealloc(r, p) == 0);
}

/*
 * A block freed by another process is free for everyone: never freed twice,
 * never counted live, and back in its arena for any thread once the freer's
 * cache is adopted (here: the freer exited without detaching, and a new
 * thread's claim of a slot adopts its cache).
 */
START_TEST(test_block_freed_by_another_process_is_free)
{
	struct rszshm_stats st;
	struct rszshm r;
	pthread_t th;
	void *x, *c, *got[400], *rc;
	unsigned i, n;
	bool seen = false;
	pid_t pid;
	int fds[2], back[2];

	mk_heap(&r, "reuse", 4096);
	x = rszshm_alloc(&r, 200);
	ck_assert_ptr_nonnull(x);
	pid = test_fork();
	if (pid == 0)
		_exit(rszshm_dealloc(&r, x) == 0 ? 0 : 1);
	ck_assert_int_eq(test_wait(pid), 0);
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, x), -1);	/* already freed, by the child */
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_uint_eq(rszshm_usable_size(&r, x), 0);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 0);
	assert_consistent(&r);

	ck_assert_uint_eq(rszshm__heap_adoptions(&r), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, claim_in_new_thread, &r), 0);
	ck_assert_int_eq(pthread_join(th, &rc), 0);
	ck_assert_ptr_eq(rc, (void *)1);
	ck_assert_uint_ge(rszshm__heap_adoptions(&r), 1);
	/* Back in its segment's bitmap: the arena hands it out again. */
	rszshm__heap_nocache(&r);
	for (n = 0; n < 400 && !seen; n++) {
		got[n] = rszshm_alloc(&r, 200);
		ck_assert_ptr_nonnull(got[n]);
		seen = got[n] == x;
	}
	ck_assert_msg(seen, "the adopted block never came back");
	for (i = 0; i < n; i++)
		ck_assert_int_eq(rszshm_dealloc(&r, got[i]), 0);

	/* The other way round: the child's block, freed here, is free there. */
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(pipe(back), 0);
	pid = test_fork();
	if (pid == 0) {
		c = rszshm_alloc(&r, 700);
		put_ptr(fds[1], c);
		test_wait_byte(back[0]);
		errno = 0;
		_exit(rszshm_dealloc(&r, c) == -1 && errno == EINVAL ? 0 : 1);
	}
	c = get_ptr(fds[0]);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(rszshm_dealloc(&r, c), 0);
	test_post(back[1]);
	ck_assert_int_eq(test_wait(pid), 0);
	close(fds[0]);
	close(fds[1]);
	close(back[0]);
	close(back[1]);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_region_grows_on_demand)
{
	struct rszshm_stats st;
	struct rszshm r;
	uint64_t flen0;
	void *p[64];
	unsigned i;

	mk_heap(&r, "grow", 4096);
	flen0 = r.hdr->flen;
	ck_assert_uint_le(flen0, 64 * 1024);
	for (i = 0; i < 64; i++) {
		p[i] = rszshm_alloc(&r, 100000);
		ck_assert_ptr_nonnull(p[i]);
		fill(p[i], 100000, i);
	}
	ck_assert_uint_ge(r.hdr->flen, flen0 + 64 * 100000);
	ck_assert_uint_le(r.hdr->flen, r.hdr->max);
	ck_assert_uint_eq(r.flen, r.hdr->flen);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.region_bytes, r.hdr->flen);
	for (i = 0; i < 64; i++) {
		ck_assert(filled(p[i], 100000, i));
		ck_assert_int_eq(rszshm_dealloc(&r, p[i]), 0);
	}
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_grow_by_child_is_seen_by_parent)
{
	struct rszshm r;
	size_t flen0;
	int fds[2];
	char *p;
	pid_t pid;

	mk_heap(&r, "childgrow", 4096);
	flen0 = r.flen;
	ck_assert_int_eq(pipe(fds), 0);
	pid = test_fork();
	if (pid == 0) {
		char *c = rszshm_alloc(&r, 8 << 20);

		if (c)
			fill(c, 8 << 20, 77);
		put_ptr(fds[1], c);
		_exit(c ? 0 : 1);
	}
	p = get_ptr(fds[0]);
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(r.flen, flen0);		/* the handle lags ... */
	ck_assert_uint_ge(r.hdr->flen, flen0 + (8 << 20));	/* ... the region does not */
	ck_assert_int_eq(rszshm_up(&r), 1);
	ck_assert_uint_eq(r.flen, r.hdr->flen);
	ck_assert(filled(p, 8 << 20, 77));
	ck_assert_uint_ge(rszshm_usable_size(&r, p), 8 << 20);
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	close(fds[0]);
	close(fds[1]);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

struct node {
	struct node *next;
	uint64_t value;
};

struct tnode {
	struct tnode *left, *right;
	uint64_t key;
};

#define LIST_N 1000
#define TREE_N 1000

/* In-order walk: counts nodes, checks order, sums keys; false if out of order. */
static bool tree_walk(const struct tnode *t, uint64_t *last, uint64_t *n, uint64_t *sum,
		      unsigned depth)
{
	if (!t)
		return true;
	if (depth > TREE_N || !tree_walk(t->left, last, n, sum, depth + 1))
		return false;
	if (*n && t->key <= *last)
		return false;
	*last = t->key;
	(*n)++;
	*sum += t->key;
	return tree_walk(t->right, last, n, sum, depth + 1);
}

static int helper_walk(int argc, char **argv)
{
	struct node *l;
	struct tnode *t;
	uint64_t i = 0, last = 0, n = 0, sum = 0;
	struct rszshm r;

	HCHECK(argc == 5);
	HCHECK(rszshm_at(&r, argv[1]) != NULL);
	l = (struct node *)(uintptr_t)strtoull(argv[2], NULL, 10);
	t = (struct tnode *)(uintptr_t)strtoull(argv[3], NULL, 10);
	/* Plain pointers, as the other process stored them. */
	for (; l; l = l->next, i++)
		HCHECK(i < LIST_N && l->value == i * i);
	HCHECK(i == LIST_N);
	HCHECK(tree_walk(t, &last, &n, &sum, 0));
	HCHECK(n == TREE_N);
	HCHECK(sum == strtoull(argv[4], NULL, 10));
	HCHECK(rszshm_check(&r, NULL, 0) == 0);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

START_TEST(test_list_and_tree_walked_by_exec_helper)
{
	char a1[32], a2[32], a3[32];
	struct node *head = NULL, **tail = &head;
	struct tnode *root = NULL, **slot;
	uint64_t seed = 42, key, sum = 0;
	struct rszshm r;
	unsigned i, made = 0;

	mk_heap(&r, "structs", 4096);
	for (i = 0; i < LIST_N; i++) {
		struct node *nd = rszshm_alloc(&r, sizeof(*nd));

		ck_assert_ptr_nonnull(nd);
		nd->value = (uint64_t)i * i;
		nd->next = NULL;
		*tail = nd;
		tail = &nd->next;
	}
	while (made < TREE_N) {
		key = xorshift(&seed) % 1000000;
		for (slot = &root; *slot; slot = key < (*slot)->key ? &(*slot)->left : &(*slot)->right)
			if ((*slot)->key == key)
				break;
		if (*slot)
			continue;
		*slot = rszshm_zalloc(&r, sizeof(**slot));
		ck_assert_ptr_nonnull(*slot);
		(*slot)->key = key;
		sum += key;
		made++;
	}
	snprintf(a1, sizeof(a1), "%" PRIu64, (uint64_t)(uintptr_t)head);
	snprintf(a2, sizeof(a2), "%" PRIu64, (uint64_t)(uintptr_t)root);
	snprintf(a3, sizeof(a3), "%" PRIu64, sum);
	ck_assert_int_eq(test_wait(test_exec_helper("walk", r.fname, a1, a2, a3, NULL)), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/*
 * Stress, not a benchmark: each worker keeps up to LIVE blocks of random
 * sizes (mostly small, some large), fills each with its own pattern, and
 * checks the pattern before freeing it.
 */
#define LIVE 64

static int churn(struct rszshm *r, unsigned id, unsigned ops, uint64_t seed)
{
	void *p[LIVE] = { 0 };
	size_t n[LIVE] = { 0 };
	unsigned i, k, tag[LIVE] = { 0 };

	for (i = 0; i < ops; i++) {
		k = (unsigned)(xorshift(&seed) % LIVE);
		if (p[k]) {
			if (!filled(p[k], n[k], tag[k]))
				return 2;
			if (rszshm_dealloc(r, p[k]) != 0)
				return 3;
		}
		n[k] = xorshift(&seed) % 50 == 0 ? 16384 + xorshift(&seed) % 100000 :
						   1 + xorshift(&seed) % 3000;
		tag[k] = id * 100000 + i;
		if (!(p[k] = rszshm_alloc(r, n[k])))
			return 4;
		fill(p[k], n[k], tag[k]);
	}
	for (k = 0; k < LIVE; k++) {
		if (!filled(p[k], n[k], tag[k]))
			return 2;
		if (rszshm_dealloc(r, p[k]) != 0)
			return 3;
	}
	return 0;
}

START_TEST(test_four_processes_alloc_and_free_at_once)
{
	struct rszshm_stats st;
	struct rszshm r;
	pid_t pid[4];
	int go[2];
	unsigned i;

	mk_heap(&r, "four", 4096);
	ck_assert_int_eq(pipe(go), 0);
	for (i = 0; i < 4; i++) {
		pid[i] = test_fork();
		if (pid[i] == 0) {
			char c;

			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(5);
			_exit(churn(&r, i, 20000, 1000 + i));
		}
	}
	close(go[0]);
	close(go[1]);	/* EOF starts them all at once */
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(test_wait(pid[i]), 0);
	assert_consistent(&r);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 0);
	ck_assert_uint_eq(st.used_bytes, 0);
	ck_assert_int_eq(churn(&r, 9, 2000, 7), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

static void *thread_churn(void *arg)
{
	struct rszshm *r = arg;
	static unsigned next;
	unsigned id = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);

	return (void *)(uintptr_t)churn(r, id, 10000, 500 + id);
}

START_TEST(test_threads_share_one_handle)
{
	pthread_t t[4];
	struct rszshm r;
	void *rc;
	unsigned i;

	mk_heap(&r, "threads", 4096);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, thread_churn, &r), 0);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(t[i], &rc), 0);
		ck_assert_uint_eq((uintptr_t)rc, 0);
	}
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/*
 * A worker killed with SIGKILL at an arbitrary point of an alloc/free loop
 * (so, most of the time, inside the allocator, often holding a lock).  The
 * kill point is chosen by a pipe handshake: the worker says it is running,
 * then the parent kills it.  Survivors (the parent and a long-lived worker)
 * carry on; the repaired heap passes the check.
 */
#define KILLS 300

static void hammer(struct rszshm *r, int fd, uint64_t seed)
{
	void *keep[8] = { 0 };
	void *m = rszshm_alloc(r, 48);
	unsigned k;

	put_ptr(fd, m);
	for (;;) {
		k = (unsigned)(xorshift(&seed) % 8);
		if (keep[k])
			rszshm_dealloc(r, keep[k]);
		keep[k] = rszshm_alloc(r, 1 + xorshift(&seed) % (xorshift(&seed) % 16 ? 2000 : 70000));
		if (keep[k])
			*(uint64_t *)keep[k] = seed;
	}
}

START_TEST(test_kill_during_alloc_leaves_heap_repairable)
{
	struct rszshm_stats st;
	struct rszshm r;
	void *mine[32];
	int fds[2], stop[2];
	pid_t pid, survivor;
	unsigned i, k;

	TEST_NEEDS(TEST_NEED_ROBUST);

	mk_heap(&r, "kill", 4096);
	for (k = 0; k < 32; k++) {
		mine[k] = rszshm_alloc(&r, 100 + k);
		ck_assert_ptr_nonnull(mine[k]);
		fill(mine[k], 100 + k, k);
	}
	ck_assert_int_eq(pipe(stop), 0);
	survivor = test_fork();
	if (survivor == 0) {
		unsigned rounds = 0;
		char c;
		int rc;

		close(stop[1]);
		/* Churn until the parent closes the pipe, checking every block. */
		if (fcntl(stop[0], F_SETFL, O_NONBLOCK) != 0)
			_exit(6);
		while ((rc = churn(&r, 7, 500, 99 + rounds++)) == 0 && read(stop[0], &c, 1) != 0)
			;
		_exit(rc);
	}
	close(stop[0]);
	ck_assert_int_eq(pipe(fds), 0);
	for (i = 0; i < KILLS; i++) {
		void *m;

		pid = test_fork();
		if (pid == 0)
			hammer(&r, fds[1], 1 + i);
		m = get_ptr(fds[0]);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
		/* The marker was live: freeing it must work (and may repair). */
		ck_assert_ptr_nonnull(m);
		ck_assert_int_eq(rszshm_dealloc(&r, m), 0);
		k = i % 32;
		ck_assert(filled(mine[k], 100 + k, k));
		ck_assert_int_eq(rszshm_dealloc(&r, mine[k]), 0);
		mine[k] = rszshm_alloc(&r, 100 + k);
		ck_assert_ptr_nonnull(mine[k]);
		fill(mine[k], 100 + k, k);
	}
	close(stop[1]);
	ck_assert_int_eq(test_wait(survivor), 0);
	close(fds[0]);
	close(fds[1]);
	ck_assert_uint_gt(rszshm__heap_repairs(&r), 0);
	assert_consistent(&r);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	/* Ours are live; each dead worker may have left its own few behind. */
	ck_assert_uint_ge(st.blocks, 32);
	ck_assert_uint_le(st.blocks, 32 + KILLS * 10);
	ck_assert_uint_le(st.used_bytes + st.free_bytes, st.region_bytes);
	for (k = 0; k < 32; k++) {
		ck_assert(filled(mine[k], 100 + k, k));
		ck_assert_int_eq(rszshm_dealloc(&r, mine[k]), 0);
	}
	ck_assert_int_eq(churn(&r, 3, 3000, 5), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_stats_agree_with_allocations)
{
	static const size_t sizes[] = { 1, 16, 100, 1000, 5000, 16384, 20000, 300000 };
	struct rszshm_stats st;
	struct rszshm r;
	void *p[8 * 10];
	uint64_t used = 0;
	unsigned i, n = 0;

	mk_heap(&r, "stats", 4096);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 0);
	ck_assert_uint_eq(st.used_bytes, 0);
	for (i = 0; i < 80; i++) {
		p[n] = rszshm_alloc(&r, sizes[i % 8]);
		ck_assert_ptr_nonnull(p[n]);
		used += rszshm_usable_size(&r, p[n]);
		n++;
	}
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, n);
	ck_assert_uint_eq(st.used_bytes, used);
	ck_assert_uint_eq(st.region_bytes, r.hdr->flen);
	ck_assert_uint_eq(st.span_bytes, r.hdr->max);
	ck_assert_uint_le(st.used_bytes + st.free_bytes, st.region_bytes);
	ck_assert_uint_gt(st.largest_free_bytes, 0);
	ck_assert_uint_le(st.largest_free_bytes, st.free_bytes);
	for (i = 0; i < n; i += 2) {
		used -= rszshm_usable_size(&r, p[i]);
		ck_assert_int_eq(rszshm_dealloc(&r, p[i]), 0);
	}
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, n / 2);
	ck_assert_uint_eq(st.used_bytes, used);
	for (i = 1; i < n; i += 2)
		ck_assert_int_eq(rszshm_dealloc(&r, p[i]), 0);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 0);
	ck_assert_uint_eq(st.used_bytes, 0);
	ck_assert_uint_ge(st.largest_free_bytes, 300000);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* -------------------------------------------------------------- walker */

/* A private copy of a region's bytes, as a view recorded at its base. */
static unsigned char *copy_of(struct rszshm *r, struct rszshm__view *v)
{
	size_t len = r->hdr->flen;
	unsigned char *buf = aligned_alloc(4096, len);

	ck_assert_ptr_nonnull(buf);
	memcpy(buf, r->hdr, len);
	v->map = buf;
	v->base = (uintptr_t)r->hdr;
	v->len = len;
	v->fd = -1;
	return buf;
}

static int walk(const struct rszshm__view *v, char *msg, size_t len)
{
	struct rszshm_stats st;

	memset(&st, 0, sizeof(st));
	msg[0] = '\0';
	return rszshm__heap_walk(v, &st, msg, len);
}

/* A heap with small blocks (two freed, all the way into their segment) and a large one. */
static void small_heap(struct rszshm *r, const char *leaf, char **a, char **b, char **live)
{
	void *big, *drain;

	mk_heap(r, leaf, 4096);
	/* Through the arenas: the layout below is the one the tests know. */
	rszshm__heap_nocache(r);
	*a = rszshm_alloc(r, 64);
	*live = rszshm_alloc(r, 64);
	*b = rszshm_alloc(r, 64);
	big = rszshm_alloc(r, 200000);
	ck_assert(*a && *b && *live && big);
	ck_assert_int_eq(rszshm_dealloc(r, *a), 0);
	ck_assert_int_eq(rszshm_dealloc(r, *b), 0);
	/* An allocation in the same arena finishes the two frees. */
	drain = rszshm_alloc(r, 3000);
	ck_assert_ptr_nonnull(drain);
	assert_consistent(r);
}

START_TEST(test_walker_reads_a_copy_at_another_address)
{
	struct rszshm_stats st, live;
	struct rszshm__view v;
	char path[256], msg[256];
	struct rszshm r;
	char *a, *b, *l;
	FILE *f;

	small_heap(&r, "copy", &a, &b, &l);
	ck_assert_int_eq(rszshm_stats(&r, &live), 0);
	test_path(path, sizeof(path), "copy.bin");
	test_track(path);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(r.hdr, 1, r.hdr->flen, f), r.hdr->flen);
	fclose(f);
	ck_assert_int_eq(rszshm__view_open(path, &v, &(const char *){ NULL }), 0);
	ck_assert_ptr_ne(v.map, (void *)r.hdr);
	ck_assert_int_eq(rszshm__check_view(&v, &st, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(st.blocks, live.blocks);
	ck_assert_uint_eq(st.used_bytes, live.used_bytes);
	ck_assert_uint_eq(st.free_bytes, live.free_bytes);
	ck_assert_uint_eq(st.largest_free_bytes, live.largest_free_bytes);
	rszshm__view_close(&v);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_walker_reports_damaged_run_headers)
{
	struct rszshm__view v;
	struct rszshm r;
	char *a, *b, *l, msg[256];
	unsigned char *buf, *seg1;
	uint32_t x;

	small_heap(&r, "hdrs", &a, &b, &l);
	buf = copy_of(&r, &v);
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 0);
	seg1 = buf + SEG;

	seg1[0] ^= 0xff;	/* magic */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "magic") != NULL, "%s", msg);
	seg1[0] ^= 0xff;

	memcpy(&x, seg1 + 8, 4);	/* run length */
	memcpy(seg1 + 8, &(uint32_t){ 0xfffffff }, 4);
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "tiling") != NULL, "%s", msg);
	memcpy(seg1 + 8, &x, 4);

	seg1[4] = 9;		/* kind */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	seg1[4] = 2;

	seg1[6] ^= 1;		/* class, against the geometry */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	seg1[6] ^= 1;

	buf[512] ^= 1;		/* the control block's magic */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	buf[512] ^= 1;
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 0);
	free(buf);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_walker_reports_damaged_bitmaps)
{
	struct rszshm__view v;
	struct rszshm r;
	char *a, *b, *l, msg[256];
	unsigned char *buf, *bm;

	small_heap(&r, "bitmaps", &a, &b, &l);
	buf = copy_of(&r, &v);
	/* Segment 1 holds the 64-byte blocks a, l, b (blocks 0, 1, 2); its
	 * bitmap follows its 64-byte run header, 1021 blocks in 16 words. */
	bm = buf + SEG + 64;
	ck_assert_ptr_eq(a, (char *)r.hdr + SEG + 192);
	ck_assert_uint_eq(bm[0] & 7, 2);

	bm[0] |= 1;				/* a freed block marked live */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "live blocks") != NULL, "%s", msg);
	bm[0] &= (unsigned char)~1;

	bm[0] &= (unsigned char)~2;		/* a live block marked free */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	bm[0] |= 2;

	bm[15 * 8 + 7] |= 0x80;			/* block 1023 of 1021 */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "past the last block") != NULL, "%s", msg);
	bm[15 * 8 + 7] &= 0x7f;

	buf[SEG + 16] = 200;			/* the cursor */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "cursor") != NULL, "%s", msg);
	buf[SEG + 16] = 0;

	buf[SEG + 7] = 0;			/* the listed flag */
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 1);
	buf[SEG + 7] = 1;
	ck_assert_int_eq(walk(&v, msg, sizeof(msg)), 0);
	free(buf);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_walker_survives_random_damage)
{
	struct rszshm__view v;
	struct rszshm r;
	char *a, *b, *l, msg[256];
	unsigned char *buf, *orig;
	uint64_t seed = 12345, off;
	unsigned i, k, damaged = 0;
	int rc;

	small_heap(&r, "fuzz", &a, &b, &l);
	ck_assert_int_eq(churn(&r, 1, 300, 3), 0);
	orig = copy_of(&r, &v);
	buf = copy_of(&r, &v);
	for (i = 0; i < 3000; i++) {
		memcpy(buf, orig, v.len);
		for (k = 0; k < 1 + i % 4; k++) {
			/* Mostly headers, bitmaps and the control block. */
			if (xorshift(&seed) % 4)
				off = (xorshift(&seed) % (v.len / SEG)) * SEG + xorshift(&seed) % 256;
			else
				off = 512 + xorshift(&seed) % 12000;
			if (off < 512 || off >= v.len)
				continue;
			buf[off] = (unsigned char)xorshift(&seed);
		}
		rc = walk(&v, msg, sizeof(msg));
		ck_assert_msg(rc == 0 || rc == 1, "walk returned %d", rc);
		damaged += rc;
	}
	ck_assert_uint_gt(damaged, 100);
	free(buf);
	free(orig);
	rszshm_dt(&r);
}
END_TEST

/* ------------------------------------------------- damaged run headers */

/* Offsets in a run header (struct seg in lib/heap/heap.h). */
#define SEG_NBLOCKS 12
#define SEG_FIRST 28
#define SEG_NEXT 40
#define SEG_PREV 48
#define BIG 16384		/* a class of three blocks per segment */
#define BIG_FILL 0x5a

/* A heap with a LARGE block (filled) and a SMALL segment of class BIG with
 * two of its three blocks live: the head of its arena's partial list. */
struct damage {
	struct rszshm r;
	unsigned char *seg;	/* the run header of b[0] and b[1] */
	void *b[2];
	unsigned char *big;
	size_t bigsz;
};

/* The run header of block @p: blocks never start at a segment's first byte. */
static unsigned char *seg_of(struct rszshm *r, const void *p)
{
	uintptr_t base = (uintptr_t)r->hdr;

	return (unsigned char *)(base + (((uintptr_t)p - 1 - base) & ~(uintptr_t)(SEG - 1)));
}

static void damage_setup(struct damage *d, const char *leaf)
{
	mk_heap(&d->r, leaf, 4096);
	d->bigsz = 200000;
	d->big = rszshm_alloc(&d->r, d->bigsz);
	d->b[0] = rszshm_alloc(&d->r, BIG);
	d->b[1] = rszshm_alloc(&d->r, BIG);
	ck_assert(d->big && d->b[0] && d->b[1]);
	memset(d->big, BIG_FILL, d->bigsz);
	d->seg = seg_of(&d->r, d->b[0]);
	ck_assert_ptr_eq(seg_of(&d->r, d->b[1]), d->seg);
	ck_assert_ptr_ne(seg_of(&d->r, d->big), d->seg);
	assert_consistent(&d->r);
}

static void put32(unsigned char *at, uint32_t v)
{
	memcpy(at, &v, sizeof(v));
}

static void put64(unsigned char *at, uint64_t v)
{
	memcpy(at, &v, sizeof(v));
}

/* Damage is reported by the walker. */
static void assert_damaged(struct rszshm *r)
{
	char msg[256] = "";

	ck_assert_int_eq(rszshm_check(r, msg, sizeof(msg)), 1);
	ck_assert_msg(strncmp(msg, "heap: ", 6) == 0, "%s", msg);
}

/*
 * Allocate BIG blocks @n times after damage: each either fails with
 * EBADMSG/ENOTRECOVERABLE or is a live block inside the region, clear of
 * the LARGE block, the live blocks and, if @avoid, the damaged segment.
 * Returns how many succeeded.
 */
static unsigned alloc_after_damage(struct damage *d, unsigned n, bool avoid)
{
	uintptr_t base = (uintptr_t)d->r.hdr, s = (uintptr_t)d->seg, p;
	unsigned i, ok = 0;
	void *q;

	for (i = 0; i < n; i++) {
		errno = 0;
		if (!(q = rszshm_alloc(&d->r, BIG))) {
			ck_assert_msg(errno == EBADMSG || errno == ENOTRECOVERABLE,
				      "alloc failed with %s", strerror(errno));
			continue;
		}
		p = (uintptr_t)q;
		ck_assert_msg(p > base + SEG && p + BIG <= base + d->r.hdr->flen,
			      "block %p outside the region", q);
		if (avoid)
			ck_assert_msg(p + BIG <= s || p >= s + SEG,
				      "block %p in the damaged segment", q);
		ck_assert_msg(p + BIG <= (uintptr_t)d->big || p >= (uintptr_t)d->big + d->bigsz,
			      "block %p inside the large block", q);
		ck_assert_ptr_ne(q, d->b[0]);
		ck_assert_ptr_ne(q, d->b[1]);
		ck_assert_uint_ge(rszshm_usable_size(&d->r, q), BIG);
		memset(q, 0xa5, BIG);
		ok++;
	}
	for (i = 0; i < d->bigsz; i++)
		ck_assert_msg(d->big[i] == BIG_FILL, "the large block was written at %u", i);
	return ok;
}

START_TEST(test_alloc_skips_segment_with_huge_block_count)
{
	struct damage d;

	damage_setup(&d, "nblocks");
	put32(d.seg + SEG_NBLOCKS, 0x40000000u);
	assert_damaged(&d.r);
	ck_assert_uint_eq(alloc_after_damage(&d, 4, true), 4);
	/* The segment stays damaged, and reported. */
	assert_damaged(&d.r);
	rszshm_dt(&d.r);
}
END_TEST

START_TEST(test_alloc_skips_segment_with_huge_first_offset)
{
	struct damage d;

	damage_setup(&d, "first");
	put32(d.seg + SEG_FIRST, 0xfff00000u);
	assert_damaged(&d.r);
	ck_assert_uint_eq(alloc_after_damage(&d, 4, true), 4);
	assert_damaged(&d.r);
	rszshm_dt(&d.r);
}
END_TEST

/* A stale prev on the list head: the segment fills up, and taking it off
 * the list must neither write through prev nor leave it at the head. */
START_TEST(test_alloc_repairs_list_head_with_stale_prev)
{
	struct damage d;

	damage_setup(&d, "prev");
	put64(d.seg + SEG_PREV, (uintptr_t)d.big);
	assert_damaged(&d.r);
	ck_assert_uint_eq(alloc_after_damage(&d, 4, false), 4);
	/* The links are rebuilt from the runs: nothing is left damaged. */
	assert_consistent(&d.r);
	rszshm_dt(&d.r);
}
END_TEST

/* A next link outside the region: taking the segment off the list when it
 * fills up must not write through it. */
START_TEST(test_alloc_repairs_next_link_outside_the_region)
{
	struct damage d;

	damage_setup(&d, "next-out");
	put64(d.seg + SEG_NEXT, 4096);
	assert_damaged(&d.r);
	ck_assert_uint_eq(alloc_after_damage(&d, 4, false), 4);
	assert_consistent(&d.r);
	rszshm_dt(&d.r);
}
END_TEST

/* A next link into a live block, not a run header: the block must not be
 * written. */
START_TEST(test_alloc_repairs_next_link_to_a_block)
{
	struct damage d;

	damage_setup(&d, "next-blk");
	put64(d.seg + SEG_NEXT, (uintptr_t)d.big);
	assert_damaged(&d.r);
	ck_assert_uint_eq(alloc_after_damage(&d, 4, false), 4);
	assert_consistent(&d.r);
	rszshm_dt(&d.r);
}
END_TEST

/* ------------------------------------------- damage the writers refuse */

/* Where lib/heap/heap.h's control block keeps the heap's top (in segments) and
 * the head of its free-run list: right after the 512-byte file header,
 * one cache line in. */
#define CTL_TOP (512 + 64)
#define CTL_FREE_RUNS (512 + 72)
#define ARENA_PENDING 512	/* from an arena's lock word to its pending slots */
#define SEG_NSEGS 8

static uint64_t *ctl_word(struct rszshm *r, size_t off)
{
	return (uint64_t *)(void *)((char *)r->hdr + off);
}

static uint64_t heap_top(struct rszshm *r)
{
	uint64_t top = *ctl_word(r, CTL_TOP);

	ck_assert_msg(top >= 1 && top <= r->hdr->flen / SEG, "test's idea of the top is stale");
	return top;
}

#define FAILS_WITH_DAMAGE(call) do {								errno = 0;									ck_assert_msg(!(call), #call " succeeded on a damaged heap");			ck_assert_msg(errno == EBADMSG || errno == ENOTRECOVERABLE,				      #call ": errno %d (%s)", errno, strerror(errno));		} while (0)

/*
 * A top far past the region, with a free-run link and a pending free that
 * lead far past it: the writers that follow them (the global part for a
 * large block or a new segment, the arena's drain of its pending frees)
 * refuse, and never read or write there.
 */
START_TEST(test_alloc_refuses_a_damaged_top)
{
	struct damage d;
	uint64_t *top, *runs, good_top, good_runs, far;

	uint64_t locks[16], *slot = NULL;
	unsigned na, i, k;

	damage_setup(&d, "top");
	/* A freed small block waits in a pending slot of its arena (the
	 * slots are 512 bytes past the arena's lock word) for the arena's
	 * next holder to drain it. */
	ck_assert_int_eq(rszshm_dealloc(&d.r, d.b[1]), 0);
	na = rszshm__heap_lock_offsets(locks, 16);
	for (i = 0; i < na && i < 16; i++)
		for (k = 0; k < 8; k++)
			if (*ctl_word(&d.r, locks[i] + ARENA_PENDING + 8 * k) == (uintptr_t)d.b[1])
				slot = ctl_word(&d.r, locks[i] + ARENA_PENDING + 8 * k);
	ck_assert_msg(slot, "test's idea of the pending slots is stale");
	top = ctl_word(&d.r, CTL_TOP);
	runs = ctl_word(&d.r, CTL_FREE_RUNS);
	good_top = heap_top(&d.r);
	good_runs = *runs;
	far = (uintptr_t)d.r.hdr + ((uint64_t)1 << 40);
	*top = (uint64_t)1 << 30;
	*runs = far;
	/* ... and a pending free far past the region, in every arena. */
	*slot = far + 4096;
	for (i = 0; i < na && i < 16; i++)
		*ctl_word(&d.r, locks[i] + ARENA_PENDING + 8 * 7) = far + 8192;
	assert_damaged(&d.r);
	FAILS_WITH_DAMAGE(rszshm_alloc(&d.r, 3 * SEG));
	FAILS_WITH_DAMAGE(rszshm_alloc(&d.r, 100000));
	/* Small allocations either fit in a listed segment or need a new
	 * one, which the damage refuses. */
	for (i = 0; i < 8; i++) {
		void *p = rszshm_alloc(&d.r, BIG);

		if (!p) {
			ck_assert(errno == EBADMSG || errno == ENOTRECOVERABLE);
			continue;
		}
		ck_assert_msg((uintptr_t)p > (uintptr_t)d.r.hdr + SEG &&
			      (uintptr_t)p + BIG <= (uintptr_t)d.r.hdr + good_top * SEG,
			      "block %p outside the carved segments", p);
	}
	/* A block that would lie past the region is no block to free. */
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&d.r, (void *)(uintptr_t)(far + 1024)), -1);
	ck_assert_int_eq(errno, EINVAL);
	(void)good_runs;
	rszshm_dt(&d.r);
}
END_TEST

/*
 * A large run's segment count past the top: its block's usable size would
 * reach past the region, and realloc would copy that much.  Both refuse.
 */
START_TEST(test_usable_size_and_realloc_refuse_an_oversized_large_run)
{
	unsigned char *big_seg;
	struct damage d;
	uint32_t good;
	size_t n;

	damage_setup(&d, "nsegs");
	big_seg = seg_of(&d.r, d.big);
	memcpy(&good, big_seg + SEG_NSEGS, sizeof(good));
	ck_assert_uint_ge(rszshm_usable_size(&d.r, d.big), d.bigsz);
	for (unsigned k = 0; k < 2; k++) {
		put32(big_seg + SEG_NSEGS, k ? 0x7fffffffu : (uint32_t)(heap_top(&d.r) + 1));
		assert_damaged(&d.r);
		errno = 0;
		n = rszshm_usable_size(&d.r, d.big);
		ck_assert_msg(n == 0 && errno == EBADMSG, "usable size %zu, errno %d", n, errno);
		FAILS_WITH_DAMAGE(rszshm_realloc(&d.r, d.big, d.bigsz + 1));
		FAILS_WITH_DAMAGE(rszshm_realloc(&d.r, d.big, 1 << 20));
		errno = 0;
		ck_assert_int_eq(rszshm_dealloc(&d.r, d.big), -1);
		ck_assert_int_eq(errno, EBADMSG);
	}
	put32(big_seg + SEG_NSEGS, good);
	assert_consistent(&d.r);
	rszshm_dt(&d.r);
}
END_TEST

/*
 * Two heap regions in one process, B mapped above A.  Damage in A (its
 * top reaching over B, its free-run list naming B's free run) must not make
 * calls on A allocate, free or write in B: every address A's metadata holds
 * is checked against A's own span and file.
 */
START_TEST(test_damage_in_one_region_never_touches_another)
{
	struct rszshm a, b;
	struct rszshm_scan sa = RSZSHM_DFLT_SCAN, sb;
	char pa[256], pb[256], msg[256];
	unsigned char *saved, *bfree, *blive;
	uintptr_t abase, bend;
	size_t blen;
	void *p, *q;

	test_path(pa, sizeof(pa), "region-a");
	test_path(pb, sizeof(pb), "region-b");
	test_track(pa);
	test_track(pb);
	sa.len = 64 << 20;
	ck_assert(rszshm_mk_flags(&a, 4096, pa, sa, RSZSHM_HEAP) != NULL);
	sb = (struct rszshm_scan){ (char *)a.hdr + a.max + (1 << 30), 64 << 20, 1 << 30, 10 };
	ck_assert(rszshm_mk_flags(&b, 4096, pb, sb, RSZSHM_HEAP) != NULL);
	ck_assert((uintptr_t)b.hdr > (uintptr_t)a.hdr);
	/* B: a live block, a small one, and a free run on its list. */
	blive = rszshm_alloc(&b, 100000);
	q = rszshm_alloc(&b, 64);
	p = rszshm_alloc(&b, 3 * SEG);
	ck_assert(blive && q && p);
	bfree = seg_of(&b, p);
	ck_assert_int_eq(rszshm_dealloc(&b, p), 0);
	memset(blive, 0x42, 100000);
	ck_assert(rszshm_alloc(&a, 64) != NULL);
	blen = b.hdr->flen;
	saved = malloc(blen);
	ck_assert_ptr_nonnull(saved);
	memcpy(saved, b.hdr, blen);

	abase = (uintptr_t)a.hdr;
	bend = (uintptr_t)b.hdr + b.max;
	*ctl_word(&a, CTL_TOP) = (bend - abase) / SEG + 1;
	*ctl_word(&a, CTL_FREE_RUNS) = (uintptr_t)bfree;
	FAILS_WITH_DAMAGE(rszshm_alloc(&a, 2 * SEG));
	for (int i = 0; i < 40; i++) {
		void *x = rszshm_alloc(&a, BIG);

		ck_assert_msg(!x || ((uintptr_t)x > abase && (uintptr_t)x < abase + a.max),
			      "region A handed out %p, outside it", x);
	}
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&a, blive), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_dealloc(&a, q), -1);
	ck_assert_uint_eq(rszshm_usable_size(&a, blive), 0);
	ck_assert_ptr_null(rszshm_realloc(&a, blive, 10));

	ck_assert_msg(b.hdr->flen == blen && memcmp(saved, b.hdr, blen) == 0,
		      "calls on region A changed region B");
	ck_assert_msg(rszshm_check(&b, msg, sizeof(msg)) == 0, "B: %s", msg);
	free(saved);
	rszshm_dt(&a);
	rszshm_dt(&b);
}
END_TEST

/*
 * A co-writer raised the header's length past the file's real size (and
 * the top with it): the library compares with the file (fstat) before it
 * touches those pages.  The check reports it, allocations that would carve
 * there refuse, and nothing raises SIGBUS.
 */
START_TEST(test_length_past_the_file_is_refused_not_a_sigbus)
{
	uint64_t flen, top, *topw;
	struct rszshm r;
	char msg[256] = "";

	mk_heap(&r, "flen-past", 4096);
	ck_assert(rszshm_alloc(&r, 64) != NULL);
	assert_consistent(&r);
	flen = r.hdr->flen;
	topw = ctl_word(&r, CTL_TOP);
	top = heap_top(&r);

	r.hdr->flen = r.hdr->max;
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	FAILS_WITH_DAMAGE(rszshm_alloc(&r, 4 * SEG));
	FAILS_WITH_DAMAGE(rszshm_alloc_aligned(&r, 4096, 2 * SEG));
	errno = 0;
	ck_assert_int_eq(rszshm_grow_to(&r, flen + 2 * SEG), -1);
	ck_assert_int_eq(errno, EBADMSG);

	/* The top too: the walker and the writers would read run headers in
	 * pages past the end of the file. */
	*topw = r.hdr->max / SEG;
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	FAILS_WITH_DAMAGE(rszshm_alloc(&r, 4 * SEG));
	for (int i = 0; i < 20; i++) {
		void *p = rszshm_alloc(&r, 4000);

		ck_assert_msg(p || errno == EBADMSG || errno == ENOTRECOVERABLE,
			      "errno %d", errno);
		ck_assert_msg(!p || (uintptr_t)p + 4000 <= (uintptr_t)r.hdr + flen,
			      "block %p past the file", p);
	}
	*topw = top;
	r.hdr->flen = flen;
	assert_consistent(&r);
	ck_assert(rszshm_alloc(&r, 4 * SEG) != NULL);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/*
 * The file truncated under an attached handle, below the header's length
 * and the heap's top: rszshm_check() and rszshm_stats() report it instead of
 * raising SIGBUS in the walk.
 */
START_TEST(test_check_of_a_truncated_file_reports_it)
{
	struct rszshm_stats st;
	struct rszshm r;
	char msg[256] = "";
	uint64_t flen;

	mk_heap(&r, "truncated", 4096);
	ck_assert(rszshm_alloc(&r, 64) != NULL);
	ck_assert(rszshm_alloc(&r, 5 * SEG) != NULL);
	assert_consistent(&r);
	flen = r.hdr->flen;
	ck_assert_int_eq(ftruncate(r.fd, 2 * SEG), 0);
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "truncated") != NULL, "check said \"%s\"", msg);
	errno = 0;
	ck_assert_int_eq(rszshm_stats(&r, &st), -1);
	ck_assert_int_eq(errno, EBADMSG);
	/* Lengthened again, the lost pages read as zeros: damage, still. */
	ck_assert_int_eq(ftruncate(r.fd, (off_t)flen), 0);
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	rszshm_dt(&r);
}
END_TEST

/* ------------------------------------------- frees across processes */

/* A single-producer single-consumer ring of blocks, inside the region. */
#define QSLOTS 256u
struct xq {
	uint64_t head __attribute__((aligned(64)));
	uint64_t tail __attribute__((aligned(64)));
	uint32_t stop;			/* the producer is to stop */
	uint64_t slot[QSLOTS];
};

static void xq_put(struct xq *q, void *p)
{
	uint64_t h = __atomic_load_n(&q->head, __ATOMIC_RELAXED);

	while (h - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) >= QSLOTS)
		sched_yield();
	q->slot[h % QSLOTS] = (uintptr_t)p;
	__atomic_store_n(&q->head, h + 1, __ATOMIC_RELEASE);
}

static void *xq_get(struct xq *q)
{
	uint64_t t = __atomic_load_n(&q->tail, __ATOMIC_RELAXED);
	void *p;

	while (__atomic_load_n(&q->head, __ATOMIC_ACQUIRE) == t)
		sched_yield();
	p = (void *)(uintptr_t)q->slot[t % QSLOTS];
	__atomic_store_n(&q->tail, t + 1, __ATOMIC_RELEASE);
	return p;
}

#define XFREE_N 20000u

/* Block @i's size: mostly small, now and then a large run. */
static size_t xfree_size(unsigned i, uint64_t *g)
{
	return i % 997 == 0 ? 20000 + i % 5000 : 16 + (size_t)(xorshift(g) % 1009);
}

START_TEST(test_producer_process_allocs_consumer_process_frees)
{
	struct rszshm_stats st;
	struct rszshm r;
	struct xq *q;
	pid_t prod, cons;

	mk_heap(&r, "xfree", 4096);
	q = rszshm_zalloc(&r, sizeof(*q));
	ck_assert_ptr_nonnull(q);
	prod = test_fork();
	if (prod == 0) {
		uint64_t g = 77;
		unsigned i;

		for (i = 0; i < XFREE_N; i++) {
			size_t n = xfree_size(i, &g);
			uint32_t *p = rszshm_alloc(&r, n);

			if (!p)
				_exit(1);
			fill(p + 1, n - 4, i);
			*p = (uint32_t)n;
			xq_put(q, p);
		}
		_exit(0);
	}
	cons = test_fork();
	if (cons == 0) {
		unsigned i;

		for (i = 0; i < XFREE_N; i++) {
			uint32_t *p = xq_get(q);

			/* Each block whole, as the producer wrote it. */
			if (*p < 16 || !filled(p + 1, *p - 4, i))
				_exit(2);
			if (rszshm_dealloc(&r, p) != 0)
				_exit(3);
		}
		_exit(0);
	}
	ck_assert_int_eq(test_wait(prod), 0);
	ck_assert_int_eq(test_wait(cons), 0);
	assert_consistent(&r);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 1);	/* the queue */
	ck_assert_int_eq(rszshm_dealloc(&r, q), 0);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	ck_assert_uint_eq(st.blocks, 0);
	rszshm_dt(&r);
}
END_TEST

/*
 * Helper: a fresh process attaches @argv[1] by name, checks it, and fails
 * unless the heap holds between @argv[2] and @argv[3] live blocks.
 */
static int helper_check_blocks(int argc, char **argv)
{
	struct rszshm_stats st;
	struct rszshm r;
	char msg[256] = "";

	HCHECK(argc == 4);
	HCHECK(rszshm_at(&r, argv[1]) != NULL);
	if (rszshm_check(&r, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "check: %s\n", msg);
		return 1;
	}
	HCHECK(rszshm_stats(&r, &st) == 0);
	if (st.blocks < strtoull(argv[2], NULL, 10) || st.blocks > strtoull(argv[3], NULL, 10)) {
		fprintf(stderr, "%" PRIu64 " live blocks, want %s..%s\n", st.blocks, argv[2], argv[3]);
		return 1;
	}
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

static void check_in_fresh_process(struct rszshm *r, uint64_t lo, uint64_t hi)
{
	char a[24], b[24];

	snprintf(a, sizeof(a), "%" PRIu64, lo);
	snprintf(b, sizeof(b), "%" PRIu64, hi);
	ck_assert_int_eq(test_wait(test_exec_helper("check-blocks", r->fname, a, b, NULL)), 0);
}

#define KTRIALS 300u
#define KBLOCKS 64u

/*
 * A block: one in four of 16..2015 bytes, the others of 16..112 bytes
 * aligned to 64, in classes (80, 96, 112, 160 bytes) where that is most
 * often an interior pointer, whose free takes the owning arena's lock.
 */
static void *xfree_block(struct rszshm *r, uint64_t *seed)
{
	uint64_t v = xorshift(seed);
	void *p = v % 4 ? rszshm_alloc_aligned(r, 64, 16 + (size_t)(v / 4 % 97))
			: rszshm_alloc(r, 16 + (size_t)(v / 4 % 2000));

	ck_assert_ptr_nonnull(p);
	return p;
}

/*
 * Each trial: a producer child allocates blocks and hands them to a
 * consumer child through a ring in the region; the consumer frees each (a
 * free from another process: lock-free into a pending slot, or under the
 * owning arena's lock), then moves the ring's tail past it.  Both run on
 * their own, with no system call per block (one would be where the child
 * is preempted, and so where it dies), so when this process kills the
 * consumer, once the tail passes a random count, the kill lands anywhere in
 * its loop, often inside rszshm_dealloc().  Then the producer is stopped.
 * The block at the tail may or may not be free (its free was under way);
 * every other block still in the ring is live, and once they are freed the
 * heap holds the ring and at most one block per killed freer (the one it
 * was moving between its cache and an arena); the blocks in the killed
 * freer's cache are free, and adopted by a later claim.
 */
START_TEST(test_kill_during_remote_free_loses_at_most_one_block)
{
	struct rszshm_stats st;
	struct rszshm r;
	uint64_t seed = 4242, k, tail, head, want, lost = 0;
	pid_t prod, cons;
	struct xq *q;
	unsigned t;

	mk_heap(&r, "kill-xfree", 4096);
	q = rszshm_zalloc(&r, sizeof(*q));
	ck_assert_ptr_nonnull(q);
	for (t = 0; t < KTRIALS; t++) {
		q->head = q->tail = 0;
		__atomic_store_n(&q->stop, 0, __ATOMIC_RELEASE);
		seed += t;
		prod = test_fork();
		if (prod == 0) {
			for (;;) {
				uint64_t h = __atomic_load_n(&q->head, __ATOMIC_RELAXED);
				void *p = xfree_block(&r, &seed);

				while (h - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) >= QSLOTS)
					if (__atomic_load_n(&q->stop, __ATOMIC_ACQUIRE))
						_exit(rszshm_dealloc(&r, p) == 0 ? 0 : 1);
				q->slot[h % QSLOTS] = (uintptr_t)p;
				__atomic_store_n(&q->head, h + 1, __ATOMIC_RELEASE);
			}
		}
		cons = test_fork();
		if (cons == 0) {
			for (;;) {
				uint64_t tl = __atomic_load_n(&q->tail, __ATOMIC_RELAXED);

				while (__atomic_load_n(&q->head, __ATOMIC_ACQUIRE) == tl)
					;
				if (rszshm_dealloc(&r, (void *)(uintptr_t)q->slot[tl % QSLOTS]) != 0)
					_exit(1);
				__atomic_store_n(&q->tail, tl + 1, __ATOMIC_RELEASE);
			}
		}
		want = 1 + xorshift(&seed) % QSLOTS;
		while (__atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) < want)
			sched_yield();
		ck_assert_int_eq(kill(cons, SIGKILL), 0);
		ck_assert_int_eq(test_wait(cons), 128 + SIGKILL);
		__atomic_store_n(&q->stop, 1, __ATOMIC_RELEASE);
		ck_assert_int_eq(test_wait(prod), 0);
		tail = q->tail;
		head = q->head;
		for (k = tail; k < head; k++) {
			uint64_t j;
			int rc;

			/* A block at the tail that was freed and handed out
			 * again is in the ring twice: free it once. */
			for (j = k + 1; k == tail && j < head; j++)
				if (q->slot[j % QSLOTS] == q->slot[k % QSLOTS])
					break;
			if (k == tail && j < head)
				continue;
			errno = 0;
			rc = rszshm_dealloc(&r, (void *)(uintptr_t)q->slot[k % QSLOTS]);
			ck_assert_msg(rc == 0 || (k == tail && errno == EINVAL),
				      "trial %u: block %" PRIu64 " of %" PRIu64 "..%" PRIu64 ": %s",
				      t, k, tail, head, strerror(errno));
		}
		/* Live now: the ring and what killed freers lost. */
		ck_assert_int_eq(rszshm_stats(&r, &st), 0);
		ck_assert_msg(st.blocks - 1 <= lost + 1, "trial %u: %" PRIu64 " blocks live, %" PRIu64
			      " lost before", t, st.blocks, lost);
		lost = st.blocks - 1;
		if (t % 30 == 0 || t == KTRIALS - 1)
			check_in_fresh_process(&r, 1, 1 + lost);
	}
	ck_assert_uint_le(lost, KTRIALS);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/*
 * Each trial: a child allocates blocks, recording each in a table in the
 * region and posting one byte after each; the parent kills it after a
 * random count, frees what the table names, and checks in a fresh process
 * that at most one block per killed child is lost (the one whose handing
 * out was under way).
 */
START_TEST(test_kill_during_alloc_loses_at_most_one_block)
{
	struct rszshm r;
	uint64_t seed = 99, *tab, lost = 0;
	unsigned t, i, want;
	int fds[2];
	pid_t pid;

	mk_heap(&r, "kill-alloc", 4096);
	tab = rszshm_zalloc(&r, KBLOCKS * sizeof(*tab));
	ck_assert_ptr_nonnull(tab);
	for (t = 0; t < KTRIALS; t++) {
		struct rszshm_stats st;

		memset(tab, 0, KBLOCKS * sizeof(*tab));
		ck_assert_int_eq(pipe(fds), 0);
		pid = test_fork();
		if (pid == 0) {
			uint64_t g = seed + t;
			char c = 1;

			close(fds[0]);
			for (i = 0;; i = (i + 1) % KBLOCKS) {
				void *p;

				if (tab[i]) {
					if (rszshm_dealloc(&r, (void *)(uintptr_t)tab[i]) != 0)
						_exit(1);
					tab[i] = 0;
				}
				if (!(p = rszshm_alloc(&r, 16 + (size_t)(xorshift(&g) % 3000))))
					_exit(2);
				__atomic_store_n(&tab[i], (uintptr_t)p, __ATOMIC_RELEASE);
				if (write(fds[1], &c, 1) != 1)
					_exit(3);
			}
		}
		close(fds[1]);
		want = 1 + (unsigned)(xorshift(&seed) % (3 * KBLOCKS));
		for (i = 0; i < want; i++)
			test_wait_byte(fds[0]);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
		close(fds[0]);
		/* A block whose free was under way may already be free. */
		for (i = 0; i < KBLOCKS; i++)
			if (tab[i] && rszshm_dealloc(&r, (void *)(uintptr_t)tab[i]) != 0)
				ck_assert_int_eq(errno, EINVAL);
		ck_assert_int_eq(rszshm_stats(&r, &st), 0);
		ck_assert_uint_ge(st.blocks, 1);		/* the table */
		lost = st.blocks - 1;
		ck_assert_msg(lost <= t + 1, "%" PRIu64 " blocks lost after %u kills", lost, t + 1);
		if (t % 30 == 0 || t == KTRIALS - 1)
			check_in_fresh_process(&r, 1, 1 + (uint64_t)t + 1);
	}
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("heap");

	TEST_ADD(s, test_alloc_sizes_are_usable_and_distinct);
	TEST_ADD(s, test_zalloc_zeroes_reused_memory);
	TEST_ADD(s, test_realloc_keeps_contents);
	TEST_ADD(s, test_alloc_aligned_honours_alignment);
	TEST_ADD(s, test_aligned_zero_size_blocks_are_their_own);
	TEST_ADD(s, test_raw_region_refuses_heap_calls);
	TEST_ADD(s, test_readonly_attach_gets_eperm);
	TEST_ADD(s, test_full_span_gives_enomem);
	TEST_ADD(s, test_bad_pointers_get_einval);
	TEST_ADD(s, test_block_freed_by_another_process_is_free);
	TEST_ADD(s, test_region_grows_on_demand);
	TEST_ADD(s, test_grow_by_child_is_seen_by_parent);
	TEST_ADD(s, test_list_and_tree_walked_by_exec_helper);
	TEST_ADD(s, test_four_processes_alloc_and_free_at_once);
	TEST_ADD(s, test_threads_share_one_handle);
	TEST_ADD(s, test_kill_during_alloc_leaves_heap_repairable);
	TEST_ADD(s, test_stats_agree_with_allocations);
	TEST_ADD(s, test_walker_reads_a_copy_at_another_address);
	TEST_ADD(s, test_walker_reports_damaged_run_headers);
	TEST_ADD(s, test_walker_reports_damaged_bitmaps);
	TEST_ADD(s, test_walker_survives_random_damage);
	TEST_ADD_T(s, test_alloc_skips_segment_with_huge_block_count, 20);
	TEST_ADD_T(s, test_alloc_skips_segment_with_huge_first_offset, 20);
	TEST_ADD_T(s, test_alloc_repairs_list_head_with_stale_prev, 20);
	TEST_ADD_T(s, test_alloc_repairs_next_link_outside_the_region, 20);
	TEST_ADD_T(s, test_alloc_repairs_next_link_to_a_block, 20);
	TEST_ADD_T(s, test_alloc_refuses_a_damaged_top, 20);
	TEST_ADD_T(s, test_usable_size_and_realloc_refuse_an_oversized_large_run, 20);
	TEST_ADD_T(s, test_damage_in_one_region_never_touches_another, 20);
	TEST_ADD_T(s, test_length_past_the_file_is_refused_not_a_sigbus, 20);
	TEST_ADD_T(s, test_check_of_a_truncated_file_reports_it, 20);
	TEST_ADD_T(s, test_producer_process_allocs_consumer_process_frees, 60);
	TEST_ADD_T(s, test_kill_during_remote_free_loses_at_most_one_block, 60);
	TEST_ADD_T(s, test_kill_during_alloc_loses_at_most_one_block, 60);
	return s;
}

const struct test_helper test_helpers[] = {
	{ "rdonly", helper_rdonly },
	{ "walk", helper_walk },
	{ "check-blocks", helper_check_blocks },
	{ NULL, NULL },
};
