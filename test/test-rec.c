/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-rec.c - named records (lib/rec*.c): the API and its errnos (a full
 * span included), the hash index at scale, insertion-order iteration (also
 * while another process changes the records), threads sharing a handle,
 * pointer-linked structures shared with an exec'd process, untorn copies
 * under a writer replacing the value a million times, writers killed inside
 * the index lock, read-only attachments, and the walkers on damaged views,
 * on random damage and on views at another address.
 *
 * Every test ends with rszshm_check() == 0 where the region is meant to be
 * consistent.  The stress tests are correctness tests, not benchmarks: they
 * assert what every read saw, never how long anything took.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

/* rec.h's on-region layout, mirrored to damage it on purpose.  The damage
 * test first checks that the mirror matches what it finds. */
struct m_rec {
	uint64_t magic;
	uint8_t namelen, flags, pad_[2];
	uint32_t type;
	uint64_t val, size, gen, stamp, hash, id, next, prev;
	char name[];
};
struct m_idx {
	uint64_t magic, seq, seed, buckets, head, tail, count, next_id;
	uint64_t op_[8], nslots;
};
struct m_slot {
	uint64_t hash, rec;
};
struct m_bkt {
	uint64_t magic, n;
	struct m_slot slot[];
};
#define M_IDX_MAGIC 0x5844492d43455252ULL
#define M_REC_LIVE 0x564c2d4345525252ULL

#define REGION_LEN (1 * MiB)

/* A new heap region named @name in the scratch directory; @path gets its path. */
static void mk_heap(struct rszshm *r, char path[256], const char *name)
{
	test_path(path, 256, "%s", name);
	test_track(path);
	ck_assert_msg(rszshm_mk_flags(r, REGION_LEN, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL,
		      "mk %s: %s", path, strerror(errno));
}

static void check_ok(struct rszshm *r)
{
	char msg[256] = "";

	ck_assert_msg(rszshm_check(r, msg, sizeof(msg)) == 0, "check: %s", msg);
}

static void put_str(struct rszshm *r, const char *name, const char *s)
{
	ck_assert_msg(rszshm_rec_put(r, name, 0, s, strlen(s) + 1) == 0, "put %s: %s", name,
		      strerror(errno));
}

static void expect_str(struct rszshm *r, const char *name, const char *s)
{
	char buf[256];
	ssize_t n = rszshm_rec_get(r, name, buf, sizeof(buf), NULL);

	ck_assert_msg(n == (ssize_t)strlen(s) + 1, "get %s: %zd (%s)", name, n, strerror(errno));
	ck_assert_str_eq(buf, s);
}

#define ERRNO_IS(call, err) do {						\
	errno = 0;								\
	ck_assert_msg((call) && errno == (err), "%s: errno %d (%s), want %d", #call,	\
		      errno, strerror(errno), (err));				\
} while (0)

static uint64_t heap_blocks(struct rszshm *r)
{
	struct rszshm_stats st;

	ck_assert_int_eq(rszshm_stats(r, &st), 0);
	return st.blocks;
}

static uint64_t record_count(struct rszshm *r)
{
	struct rszshm_stats st;

	ck_assert_int_eq(rszshm_stats(r, &st), 0);
	return st.records;
}

/* Every name the iteration gives, joined by spaces, in @out. */
static void names_in_order(struct rszshm *r, char *out, size_t len)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	int rc;

	out[0] = '\0';
	while ((rc = rszshm_rec_next(r, &it, &info)) == 1) {
		if (out[0])
			strlcat(out, " ", len);
		strlcat(out, info.name, len);
	}
	ck_assert_msg(rc == 0, "next: %s", strerror(errno));
}

/* ------------------------------------------------------------ the API */

START_TEST(test_rec_refuses_null_raw_and_detached_handles)
{
	struct rszshm raw, heap;
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm *handles[3];
	char path[256], buf[8];
	int x = 0;

	test_path(path, sizeof(path), "raw");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk(&raw, 4096, path));
	mk_heap(&heap, path, "detached");
	ck_assert_int_eq(rszshm_dt(&heap), 0);
	handles[0] = NULL;
	handles[1] = &raw;
	handles[2] = &heap;
	for (int i = 0; i < 3; i++) {
		struct rszshm *r = handles[i];

		ERRNO_IS(rszshm_rec_add(r, "a", 0, &x, sizeof(x)) == -1, EINVAL);
		ERRNO_IS(rszshm_rec_put(r, "a", 0, &x, sizeof(x)) == -1, EINVAL);
		ERRNO_IS(rszshm_rec_find(r, "a", NULL) == NULL, EINVAL);
		ERRNO_IS(rszshm_rec_get(r, "a", buf, sizeof(buf), NULL) == -1, EINVAL);
		ERRNO_IS(rszshm_rec_remove(r, "a") == -1, EINVAL);
		ERRNO_IS(rszshm_rec_clear(r) == -1, EINVAL);
		ERRNO_IS(rszshm_rec_next(r, &it, NULL) == -1, EINVAL);
	}
	ck_assert_int_eq(rszshm_dt(&raw), 0);
}
END_TEST

START_TEST(test_rec_checks_names)
{
	char path[256], longest[RSZSHM_NAME_MAX + 1], toolong[RSZSHM_NAME_MAX + 2], buf[8];
	struct rszshm r;
	int v = 5;
	void *p;

	mk_heap(&r, path, "names");
	memset(longest, 'n', RSZSHM_NAME_MAX);
	longest[RSZSHM_NAME_MAX] = '\0';
	memset(toolong, 'n', RSZSHM_NAME_MAX + 1);
	toolong[RSZSHM_NAME_MAX + 1] = '\0';
	ck_assert_ptr_nonnull(p = rszshm_alloc(&r, 16));

	ERRNO_IS(rszshm_rec_put(&r, NULL, 0, &v, sizeof(v)) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_put(&r, "", 0, &v, sizeof(v)) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_put(&r, toolong, 0, &v, sizeof(v)) == -1, ENAMETOOLONG);
	ERRNO_IS(rszshm_rec_add(&r, NULL, 0, p, 16) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_add(&r, "", 0, p, 16) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_add(&r, toolong, 0, p, 16) == -1, ENAMETOOLONG);
	ERRNO_IS(rszshm_rec_find(&r, "", NULL) == NULL, EINVAL);
	ERRNO_IS(rszshm_rec_find(&r, toolong, NULL) == NULL, ENAMETOOLONG);
	ERRNO_IS(rszshm_rec_get(&r, NULL, buf, sizeof(buf), NULL) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_get(&r, toolong, buf, sizeof(buf), NULL) == -1, ENAMETOOLONG);
	ERRNO_IS(rszshm_rec_remove(&r, "") == -1, EINVAL);
	ERRNO_IS(rszshm_rec_remove(&r, toolong) == -1, ENAMETOOLONG);

	/* The longest name works; a duplicate add is refused, put replaces. */
	put_str(&r, longest, "long");
	expect_str(&r, longest, "long");
	ERRNO_IS(rszshm_rec_add(&r, longest, 0, p, 16) == -1, EEXIST);
	ck_assert_int_eq(rszshm_rec_add(&r, "pub", 0, p, 16), 0);
	ERRNO_IS(rszshm_rec_add(&r, "pub", 0, p, 16) == -1, EEXIST);
	ck_assert_uint_eq(record_count(&r), 2);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_rec_add_publishes_a_pointer)
{
	struct rszshm_rec_info info;
	char path[256], buf[128];
	struct rszshm r;
	unsigned char *p;
	int local = 0;

	mk_heap(&r, path, "add");
	ck_assert_ptr_nonnull(p = rszshm_alloc(&r, 100));
	for (int i = 0; i < 100; i++)
		p[i] = (unsigned char)i;
	ERRNO_IS(rszshm_rec_find(&r, "obj", NULL) == NULL, ENOENT);	/* no index yet */
	ck_assert_int_eq(rszshm_rec_add(&r, "obj", 7, p, 100), 0);
	ck_assert_ptr_eq(rszshm_rec_find(&r, "obj", &info), p);
	ck_assert_str_eq(info.name, "obj");
	ck_assert_uint_eq(info.type, 7);
	ck_assert_uint_eq(info.size, 100);
	ck_assert_ptr_eq(info.ptr, p);
	ck_assert_uint_eq(info.gen, 1);
	ck_assert(!info.copied);
	/* get copies from the published pointer. */
	ck_assert_int_eq(rszshm_rec_get(&r, "obj", buf, sizeof(buf), NULL), 100);
	ck_assert_mem_eq(buf, p, 100);

	/* The pointer must lie inside the region, past the header. */
	ERRNO_IS(rszshm_rec_add(&r, "null", 0, NULL, 0) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_add(&r, "stack", 0, &local, sizeof(local)) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_add(&r, "hdr", 0, r.hdr, 8) == -1, EINVAL);
	ERRNO_IS(rszshm_rec_add(&r, "over", 0, p, rszshm__map_len(&r)) == -1, EINVAL);
	ck_assert_int_eq(rszshm_rec_add(&r, "empty", 0, p, 0), 0);
	ERRNO_IS(rszshm_rec_find(&r, "absent", NULL) == NULL, ENOENT);
	ERRNO_IS(rszshm_rec_get(&r, "absent", buf, sizeof(buf), NULL) == -1, ENOENT);
	ck_assert_uint_eq(record_count(&r), 2);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_rec_put_copies_and_replaces)
{
	struct rszshm_rec_info info;
	char path[256], buf[2048];
	unsigned char big[1000];
	struct rszshm r;
	void *q, *p;

	mk_heap(&r, path, "put");
	ck_assert_int_eq(rszshm_rec_put(&r, "v", 1, "hello", 6), 0);
	q = rszshm_rec_find(&r, "v", &info);
	ck_assert_ptr_nonnull(q);
	ck_assert(info.copied);
	ck_assert_uint_eq(info.gen, 1);
	ck_assert_uint_eq(info.size, 6);
	ck_assert_str_eq((char *)q, "hello");
	ck_assert((char *)q > (char *)r.hdr && (char *)q < (char *)r.hdr + rszshm__map_len(&r));

	/* Like snprintf: the size is returned, at most @len bytes copied. */
	memset(buf, 'x', sizeof(buf));
	ck_assert_int_eq(rszshm_rec_get(&r, "v", buf, 3, NULL), 6);
	ck_assert_mem_eq(buf, "helx", 4);
	ck_assert_int_eq(rszshm_rec_get(&r, "v", NULL, 0, NULL), 6);
	ERRNO_IS(rszshm_rec_get(&r, "v", NULL, 5, NULL) == -1, EINVAL);

	/* Replacing: new size, type and generation; the old copy is freed. */
	memset(big, 0xab, sizeof(big));
	ck_assert_int_eq(rszshm_rec_put(&r, "v", 2, big, sizeof(big)), 0);
	ck_assert_int_eq(rszshm_rec_get(&r, "v", buf, sizeof(buf), &info), 1000);
	ck_assert_mem_eq(buf, big, 1000);
	ck_assert_uint_eq(info.type, 2);
	ck_assert_uint_eq(info.gen, 2);
	ck_assert_uint_eq(record_count(&r), 1);
	ck_assert_uint_eq(heap_blocks(&r), 1 + 2);	/* slot array, record, new value (the root is in segment 0) */

	/* A zero-sized value still has an address. */
	ck_assert_int_eq(rszshm_rec_put(&r, "zero", 0, NULL, 0), 0);
	ck_assert_ptr_nonnull(rszshm_rec_find(&r, "zero", &info));
	ck_assert_uint_eq(info.size, 0);
	ERRNO_IS(rszshm_rec_put(&r, "bad", 0, NULL, 5) == -1, EINVAL);

	/* Put over a published pointer makes a copy and leaves the pointer alone. */
	ck_assert_ptr_nonnull(p = rszshm_alloc(&r, 32));
	strcpy(p, "published");
	ck_assert_int_eq(rszshm_rec_add(&r, "pub", 3, p, 10), 0);
	put_str(&r, "pub", "copied");
	ck_assert_ptr_ne(rszshm_rec_find(&r, "pub", &info), p);
	ck_assert(info.copied);
	ck_assert_uint_eq(info.gen, 2);
	ck_assert_str_eq((char *)p, "published");
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_rec_remove_frees_copies_only)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	char path[256], name[32];
	uint64_t base;
	struct rszshm r;
	void *p;

	mk_heap(&r, path, "remove");
	ERRNO_IS(rszshm_rec_remove(&r, "none") == -1, ENOENT);	/* no index yet */
	ck_assert_int_eq(rszshm_rec_clear(&r), 0);
	put_str(&r, "first", "1");
	base = heap_blocks(&r);
	put_str(&r, "copy", "2");
	ck_assert_uint_eq(heap_blocks(&r), base + 1);	/* a first value shares the record's block */
	put_str(&r, "copy", "3");
	ck_assert_uint_eq(heap_blocks(&r), base + 2);	/* a replacement has its own */
	ck_assert_int_eq(rszshm_rec_remove(&r, "copy"), 0);
	ck_assert_uint_eq(heap_blocks(&r), base);
	ERRNO_IS(rszshm_rec_remove(&r, "copy") == -1, ENOENT);
	ERRNO_IS(rszshm_rec_find(&r, "copy", NULL) == NULL, ENOENT);

	/* Removing a published pointer frees the record, not the pointer. */
	ck_assert_ptr_nonnull(p = rszshm_alloc(&r, 64));
	ck_assert_int_eq(rszshm_rec_add(&r, "pub", 0, p, 64), 0);
	ck_assert_uint_eq(heap_blocks(&r), base + 2);
	ck_assert_int_eq(rszshm_rec_remove(&r, "pub"), 0);
	ck_assert_uint_eq(heap_blocks(&r), base + 1);
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	check_ok(&r);

	/* clear removes everything; the region stays usable. */
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		put_str(&r, name, name);
	}
	ck_assert_uint_eq(record_count(&r), 51);
	ck_assert_int_eq(rszshm_rec_clear(&r), 0);
	ck_assert_uint_eq(record_count(&r), 0);
	ck_assert_uint_eq(heap_blocks(&r), base - 1);	/* the index stays */
	ck_assert_int_eq(rszshm_rec_next(&r, &it, NULL), 0);
	ERRNO_IS(rszshm_rec_find(&r, "c7", NULL) == NULL, ENOENT);
	check_ok(&r);
	put_str(&r, "again", "yes");
	expect_str(&r, "again", "yes");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_rec_put_fails_cleanly_when_the_span_is_full)
{
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	char path[256], name[32];
	static char chunk[64 * KiB];
	struct rszshm r;
	unsigned made = 0;

	test_path(path, sizeof(path), "full");
	test_track(path);
	scan.len = 2 * MiB;
	ck_assert_ptr_nonnull(rszshm_mk_flags(&r, 64 * KiB, path, scan, RSZSHM_HEAP));
	ERRNO_IS(rszshm_rec_put(&r, "huge", 0, chunk, 4 * MiB) == -1, ENOMEM);
	/* Sizes whose sum with the record's own bytes would wrap around. */
	for (size_t k = 0; k < 256; k++)
		ERRNO_IS(rszshm_rec_put(&r, "wrap", 0, chunk, SIZE_MAX - k) == -1, ENOMEM);
	for (;;) {
		snprintf(name, sizeof(name), "c%u", made);
		if (rszshm_rec_put(&r, name, 0, chunk, sizeof(chunk)) == -1)
			break;
		made++;
	}
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_gt(made, 4);
	ERRNO_IS(rszshm_rec_find(&r, name, NULL) == NULL, ENOENT);
	ck_assert_uint_eq(record_count(&r), made);
	check_ok(&r);
	/* Removing makes room again. */
	ck_assert_int_eq(rszshm_rec_remove(&r, "c0"), 0);
	ck_assert_int_eq(rszshm_rec_put(&r, name, 0, chunk, sizeof(chunk)), 0);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ------------------------------------------------------- index at scale */

#define MANY 100000u

START_TEST(test_rec_finds_each_of_many_records)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	char path[256], name[32];
	struct rszshm r;
	uint64_t v;
	unsigned n = 0;
	int rc;

	mk_heap(&r, path, "many");
	for (uint64_t i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "rec-%08u", (unsigned)i);
		v = i * 3;
		ck_assert_int_eq(rszshm_rec_put(&r, name, (uint32_t)i, &v, sizeof(v)), 0);
	}
	ck_assert_uint_eq(record_count(&r), MANY);
	for (uint64_t i = 0; i < MANY; i++) {
		const uint64_t *p;

		snprintf(name, sizeof(name), "rec-%08u", (unsigned)i);
		p = rszshm_rec_find(&r, name, &info);
		ck_assert_msg(p != NULL, "find %s: %s", name, strerror(errno));
		ck_assert_uint_eq(*p, i * 3);
		ck_assert_uint_eq(info.type, i);
	}
	ERRNO_IS(rszshm_rec_find(&r, "rec-00100000", NULL) == NULL, ENOENT);
	check_ok(&r);

	/* Insertion order survives the index's resizes. */
	while ((rc = rszshm_rec_next(&r, &it, &info)) == 1) {
		snprintf(name, sizeof(name), "rec-%08u", n++);
		ck_assert_str_eq(info.name, name);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(n, MANY);

	for (unsigned i = 0; i < MANY; i += 2) {
		snprintf(name, sizeof(name), "rec-%08u", i);
		ck_assert_int_eq(rszshm_rec_remove(&r, name), 0);
	}
	for (unsigned i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "rec-%08u", i);
		ck_assert((rszshm_rec_find(&r, name, NULL) != NULL) == (i % 2 == 1));
	}
	ck_assert_uint_eq(record_count(&r), MANY / 2);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ----------------------------------------------------------- iteration */

START_TEST(test_rec_iterates_in_insertion_order)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT, saved;
	struct rszshm_rec_info info;
	char path[256], seen[512];
	struct rszshm r;

	mk_heap(&r, path, "order");
	ck_assert_int_eq(rszshm_rec_next(&r, &it, &info), 0);	/* no index yet */
	ERRNO_IS(rszshm_rec_next(&r, NULL, &info) == -1, EINVAL);
	put_str(&r, "m", "1");
	put_str(&r, "c", "1");
	put_str(&r, "x", "1");
	put_str(&r, "a", "1");
	put_str(&r, "q", "1");
	names_in_order(&r, seen, sizeof(seen));
	ck_assert_str_eq(seen, "m c x a q");

	/* Replacing keeps the place; removing and putting again moves to the end. */
	put_str(&r, "c", "2");
	ck_assert_int_eq(rszshm_rec_remove(&r, "x"), 0);
	put_str(&r, "x", "3");
	names_in_order(&r, seen, sizeof(seen));
	ck_assert_str_eq(seen, "m c a q x");

	/* An iterator whose record is removed carries on after it. */
	it = RSZSHM_REC_ITER_INIT;
	ck_assert_int_eq(rszshm_rec_next(&r, &it, &info), 1);
	ck_assert_int_eq(rszshm_rec_next(&r, &it, &info), 1);
	ck_assert_str_eq(info.name, "c");
	saved = it;
	ck_assert_int_eq(rszshm_rec_remove(&r, "c"), 0);
	ck_assert_int_eq(rszshm_rec_remove(&r, "a"), 0);
	ck_assert_int_eq(rszshm_rec_next(&r, &it, &info), 1);
	ck_assert_str_eq(info.name, "q");
	/* ... even when its record's memory now holds a newer record. */
	put_str(&r, "c", "4");
	ck_assert_int_eq(rszshm_rec_next(&r, &saved, &info), 1);
	ck_assert_str_eq(info.name, "q");
	ck_assert_int_eq(rszshm_rec_next(&r, &saved, &info), 1);
	ck_assert_str_eq(info.name, "x");
	ck_assert_int_eq(rszshm_rec_next(&r, &saved, &info), 1);
	ck_assert_str_eq(info.name, "c");
	ck_assert_int_eq(rszshm_rec_next(&r, &saved, &info), 0);
	ck_assert_int_eq(rszshm_rec_next(&r, &saved, &info), 0);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

#define KEEP 1000
#define CHURN 20000

/*
 * A forked child inserts tmp-N in increasing N, removes older ones and
 * replaces keep-* values, while the parent iterates again and again: every
 * pass must give each keep-* exactly once, in order, and tmp-* in
 * increasing N.
 */
START_TEST(test_rec_iteration_survives_concurrent_changes)
{
	int go[2], wstatus;
	char path[256], name[32];
	unsigned passes = 0;
	struct rszshm r;
	pid_t pid;
	bool done = false;

	mk_heap(&r, path, "churn");
	for (int i = 0; i < KEEP; i++) {
		snprintf(name, sizeof(name), "keep-%04d", i);
		put_str(&r, name, name);
	}
	ck_assert_int_eq(pipe(go), 0);
	if ((pid = test_fork()) == 0) {
		char n2[32];

		close(go[0]);
		test_post(go[1]);
		for (int i = 0; i < CHURN; i++) {
			snprintf(n2, sizeof(n2), "tmp-%06d", i);
			if (rszshm_rec_put(&r, n2, 0, n2, sizeof(n2)) != 0)
				_exit(1);
			if (i >= 50) {
				snprintf(n2, sizeof(n2), "tmp-%06d", i - 50);
				if (rszshm_rec_remove(&r, n2) != 0)
					_exit(2);
			}
			snprintf(n2, sizeof(n2), "keep-%04d", i % KEEP);
			if (rszshm_rec_put(&r, n2, 1, n2, sizeof(n2)) != 0)
				_exit(3);
		}
		_exit(0);
	}
	close(go[1]);
	test_wait_byte(go[0]);
	close(go[0]);
	while (!done) {
		struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
		struct rszshm_rec_info info;
		int next_keep = 0, last_tmp = -1, rc;

		done = waitpid(pid, &wstatus, WNOHANG) == pid;
		while ((rc = rszshm_rec_next(&r, &it, &info)) == 1) {
			int k;

			if (sscanf(info.name, "keep-%d", &k) == 1) {
				ck_assert_int_eq(k, next_keep);
				next_keep++;
			} else {
				ck_assert_int_eq(sscanf(info.name, "tmp-%d", &k), 1);
				ck_assert_int_gt(k, last_tmp);
				last_tmp = k;
			}
		}
		ck_assert_msg(rc == 0, "next: %s", strerror(errno));
		ck_assert_int_eq(next_keep, KEEP);
		passes++;
	}
	ck_assert(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
	ck_assert_uint_ge(passes, 1);
	ck_assert_uint_eq(record_count(&r), KEEP + 50);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

#define THREADS 4
#define THREAD_OPS 5000

struct worker {
	struct rszshm *r;
	int id;
	int failed;	/* the line of the first failed check, 0 if none */
};

/* One thread: put, read back and remove its own names, read the others'. */
static void *thread_churn(void *arg)
{
	struct worker *w = arg;
	char name[32], buf[64];
	int v;

#define WCHECK(c) do { if (!(c) && !w->failed) w->failed = __LINE__; } while (0)
	for (int i = 0; i < THREAD_OPS; i++) {
		snprintf(name, sizeof(name), "t%d-%d", w->id, i);
		v = i;
		WCHECK(rszshm_rec_put(w->r, name, (uint32_t)w->id, &v, sizeof(v)) == 0);
		WCHECK(rszshm_rec_get(w->r, name, buf, sizeof(buf), NULL) == sizeof(v));
		WCHECK(memcmp(buf, &v, sizeof(v)) == 0);
		if (i % 2) {
			snprintf(name, sizeof(name), "t%d-%d", w->id, i - 1);
			WCHECK(rszshm_rec_remove(w->r, name) == 0);
		}
		snprintf(name, sizeof(name), "t%d-%d", (w->id + 1) % THREADS, i);
		if (rszshm_rec_get(w->r, name, buf, sizeof(buf), NULL) == -1)
			WCHECK(errno == ENOENT);
	}
#undef WCHECK
	return NULL;
}

START_TEST(test_rec_threads_share_a_handle)
{
	struct worker w[THREADS];
	pthread_t th[THREADS];
	char path[256], name[32];
	struct rszshm r;

	mk_heap(&r, path, "threads");
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .r = &r, .id = i, .failed = 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, thread_churn, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_msg(w[i].failed == 0, "thread %d failed at line %d", i, w[i].failed);
	}
	ck_assert_uint_eq(record_count(&r), THREADS * THREAD_OPS / 2);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < THREAD_OPS; i++) {
			snprintf(name, sizeof(name), "t%d-%d", t, i);
			ck_assert((rszshm_rec_find(&r, name, NULL) != NULL) == (i % 2 == 1));
		}
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ------------------------------------------- structures across processes */

#define NODES 1000
#define T_LIST 0x4c495354u
#define T_TREE 0x54524545u

struct lnode {
	struct lnode *next;
	uint64_t value;
};

struct tnode {
	struct tnode *left, *right;
	uint64_t key;
};

static uint64_t tree_walk(const struct tnode *t, uint64_t *last, int *ordered, unsigned depth)
{
	uint64_t n;

	if (!t || depth > NODES)
		return 0;
	n = tree_walk(t->left, last, ordered, depth + 1);
	if (t->key <= *last)
		*ordered = 0;
	*last = t->key;
	return n + 1 + tree_walk(t->right, last, ordered, depth + 1);
}

/* Exec'd: attach by name, find the list and tree, walk the raw pointers. */
static int helper_walk(int argc, char **argv)
{
	struct rszshm_rec_info info;
	const struct lnode *l;
	const struct tnode *t;
	uint64_t n = 0, sum = 0, last = 0, count;
	struct rszshm r;
	int ordered = 1;
	char msg[64];

	HCHECK(argc == 2);
	HCHECK(rszshm_at(&r, argv[1]) != NULL);
	HCHECK((l = rszshm_rec_find(&r, "list", &info)) != NULL);
	HCHECK(info.type == T_LIST && !info.copied);
	for (; l && n <= NODES; l = l->next, n++) {
		HCHECK(l->value == n);
		sum += l->value;
	}
	HCHECK(n == NODES && sum == (uint64_t)NODES * (NODES - 1) / 2);
	HCHECK((t = rszshm_rec_find(&r, "tree", &info)) != NULL);
	HCHECK(info.type == T_TREE);
	count = tree_walk(t, &last, &ordered, 0);
	HCHECK(count == NODES && ordered);
	snprintf(msg, sizeof(msg), "list %" PRIu64 " tree %" PRIu64, n, count);
	HCHECK(rszshm_rec_put(&r, "walked", 0, msg, strlen(msg) + 1) == 0);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

START_TEST(test_rec_exec_helper_walks_published_list_and_tree)
{
	struct lnode *head = NULL, **tail = &head;
	struct tnode *root = NULL;
	char path[256];
	struct rszshm r;
	pid_t pid;

	mk_heap(&r, path, "structs");
	for (uint64_t i = 0; i < NODES; i++) {
		struct lnode *l = rszshm_alloc(&r, sizeof(*l));

		ck_assert_ptr_nonnull(l);
		l->value = i;
		l->next = NULL;
		*tail = l;
		tail = &l->next;
	}
	for (uint64_t i = 0; i < NODES; i++) {
		struct tnode *t = rszshm_alloc(&r, sizeof(*t)), **at = &root;
		uint64_t key = (i * 7919) % NODES + 1;	/* a permutation of 1..NODES */

		ck_assert_ptr_nonnull(t);
		t->key = key;
		t->left = t->right = NULL;
		while (*at)
			at = key < (*at)->key ? &(*at)->left : &(*at)->right;
		*at = t;
	}
	ck_assert_int_eq(rszshm_rec_add(&r, "list", T_LIST, head, sizeof(*head)), 0);
	ck_assert_int_eq(rszshm_rec_add(&r, "tree", T_TREE, root, sizeof(*root)), 0);
	pid = test_exec_helper("walk", path, NULL);
	ck_assert_int_eq(test_wait(pid), 0);
	expect_str(&r, "walked", "list 1000 tree 1000");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ------------------------------------------------------ untorn copies */

#define VERSIONS 1000000u
#define MAX_WORDS 64

static size_t words_of(uint64_t v)
{
	return 1 + (v * 7) % MAX_WORDS;
}

/*
 * Read "hot" until "done" exists; every copy must be one whole version:
 * each word equal to the version, the size the version's, the type and
 * generation the version too, and versions never going back.
 */
static int read_untorn(struct rszshm *r, uint64_t *reads, const char **why)
{
	uint64_t buf[MAX_WORDS + 1], last = 0;
	struct rszshm_rec_info info;
	ssize_t n;

	*reads = 0;
	for (;;) {
		bool done = rszshm_rec_find(r, "done", NULL) != NULL;
		/* Every other read without info: the call's first try, which
		 * has its own seqlock read (rec-read.c's read_fast()). */
		bool with_info = *reads % 2 == 0;

		n = rszshm_rec_get(r, "hot", buf, sizeof(buf), with_info ? &info : NULL);
		if (n < 0)
			return *why = "get failed", -1;
		if (n % 8 || n == 0 || (size_t)n / 8 != words_of(buf[0]))
			return *why = "size does not match the version", -1;
		for (size_t i = 1; i < (size_t)n / 8; i++)
			if (buf[i] != buf[0])
				return *why = "torn value", -1;
		if (with_info &&
		    (info.type != (uint32_t)buf[0] || info.gen != buf[0] || info.size != (size_t)n))
			return *why = "info does not match the value", -1;
		if (buf[0] < last)
			return *why = "version went back", -1;
		last = buf[0];
		++*reads;
		if (done)
			return last == VERSIONS ? 0 : (*why = "missed the last version", -1);
	}
}

static int helper_torn_reader(int argc, char **argv)
{
	const char *why = "";
	uint64_t reads;
	struct rszshm r;
	int rc;

	HCHECK(argc == 3);
	HCHECK(rszshm_at_flags(&r, argv[1], strcmp(argv[2], "ro") == 0 ? RSZSHM_RDONLY : 0));
	rc = read_untorn(&r, &reads, &why);
	if (rc)
		fprintf(stderr, "torn-reader: %s after %" PRIu64 " reads\n", why, reads);
	HCHECK(rc == 0);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

START_TEST(test_rec_get_is_never_torn_by_a_million_replacements)
{
	uint64_t buf[MAX_WORDS], reads;
	int go[2];
	const char *why = "";
	char path[256];
	struct rszshm r;
	pid_t writer, ro;

	mk_heap(&r, path, "torn");
	for (size_t i = 0; i < words_of(1); i++)
		buf[i] = 1;
	ck_assert_int_eq(rszshm_rec_put(&r, "hot", 1, buf, words_of(1) * 8), 0);
	ro = test_exec_helper("torn-reader", path, "ro", NULL);
	ck_assert_int_eq(pipe(go), 0);
	if ((writer = test_fork()) == 0) {
		close(go[1]);
		test_wait_byte(go[0]);
		for (uint64_t v = 2; v <= VERSIONS; v++) {
			size_t n = words_of(v);

			for (size_t i = 0; i < n; i++)
				buf[i] = v;
			if (rszshm_rec_put(&r, "hot", (uint32_t)v, buf, n * 8) != 0)
				_exit(1);
		}
		_exit(rszshm_rec_put(&r, "done", 0, "", 1) == 0 ? 0 : 2);
	}
	close(go[0]);
	test_post(go[1]);
	close(go[1]);
	ck_assert_msg(read_untorn(&r, &reads, &why) == 0, "%s after %" PRIu64 " reads", why, reads);
	ck_assert_int_eq(test_wait(writer), 0);
	ck_assert_int_eq(test_wait(ro), 0);
	ck_assert_uint_gt(reads, 1);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ------------------------------------------------- writers killed in the lock */

#define BASE_RECS 16	/* fills a new index's buckets: the next insert rehashes */
#define POINTS 10

static int hook_fd = -1, hook_target;

static void stop_here(int point)
{
	char c = (char)point;

	if (point != hook_target)
		return;
	if (write(hook_fd, &c, 1) != 1)
		_exit(4);
	for (;;)
		pause();
}

/* Exec'd, read-only: the index is mid-update and nobody can repair it. */
static int helper_ro_busy(int argc, char **argv)
{
	char buf[16];
	struct rszshm r;

	HCHECK(argc == 2);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY));
	errno = 0;
	HCHECK(rszshm_rec_get(&r, "base-2", buf, sizeof(buf), NULL) == -1 && errno == EAGAIN);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/* Exec'd, read-only: a co-writer keeps the index's seq odd and moving
 * with no writer holding the index lock; every lookup ends with EAGAIN
 * (a reader's wait on it is bounded by the lock word, not by the seq). */
static int helper_ro_moving(int argc, char **argv)
{
	char buf[16];
	struct rszshm r;

	HCHECK(argc == 2);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY));
	for (int i = 0; i < 20; i++) {
		errno = 0;
		HCHECK(rszshm_rec_get(&r, "base-2", buf, sizeof(buf), NULL) == -1 &&
		       errno == EAGAIN);
	}
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

static void killed_at(int point, int round)
{
	char path[256], name[32], msg[256];
	int pfd[2], expect_new, expect_base1;
	const char *base0;
	struct rszshm r;
	pid_t pid;

	test_path(path, sizeof(path), "kill-%d-%d", point, round);
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk_flags(&r, REGION_LEN, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP));
	for (int i = 0; i < BASE_RECS; i++) {
		snprintf(name, sizeof(name), "base-%d", i);
		put_str(&r, name, name);
	}
	ck_assert_int_eq(pipe(pfd), 0);
	if ((pid = test_fork()) == 0) {
		close(pfd[0]);
		hook_fd = pfd[1];
		hook_target = point;
		rszshm__rec_hook = stop_here;
		/* Insert (rehash first: points 9, 10; then 1-3), replace (4-6), remove (7-8). */
		if (rszshm_rec_put(&r, "new", 0, "new", 4) != 0 ||
		    rszshm_rec_put(&r, "base-0", 0, "replaced", 9) != 0 ||
		    rszshm_rec_remove(&r, "base-1") != 0)
			_exit(2);
		_exit(3);	/* the point was never reached */
	}
	close(pfd[1]);
	test_wait_byte(pfd[0]);
	close(pfd[0]);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);

	/* Until a writer repairs it, the check reports the unfinished update. */
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "unfinished") != NULL, "check said: %s", msg);
	if (point == 1 && round == 0)
		ck_assert_int_eq(test_wait(test_exec_helper("ro-busy", path, NULL)), 0);

	/* The next writer repairs (rolling the dead writer's update forward). */
	put_str(&r, "after", "after");
	check_ok(&r);
	expect_new = point >= 1 && point <= 8;
	base0 = point >= 4 && point <= 8 ? "replaced" : "base-0";
	expect_base1 = !(point == 7 || point == 8);
	expect_str(&r, "base-0", base0);
	if (expect_new)
		expect_str(&r, "new", "new");
	else
		ERRNO_IS(rszshm_rec_find(&r, "new", NULL) == NULL, ENOENT);
	if (expect_base1)
		expect_str(&r, "base-1", "base-1");
	else
		ERRNO_IS(rszshm_rec_find(&r, "base-1", NULL) == NULL, ENOENT);
	for (int i = 2; i < BASE_RECS; i++) {
		snprintf(name, sizeof(name), "base-%d", i);
		expect_str(&r, name, name);
	}
	expect_str(&r, "after", "after");
	ck_assert_uint_eq(record_count(&r), BASE_RECS + expect_new + 1 - !expect_base1);

	/* And the index goes on working: the dead writer's ops, done again. */
	ck_assert_int_eq(rszshm_rec_put(&r, "base-0", 0, "again", 6), 0);
	rszshm_rec_remove(&r, "base-1");
	rszshm_rec_put(&r, "new", 0, "new2", 5);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "more-%d", i);
		put_str(&r, name, name);
	}
	expect_str(&r, "new", "new2");
	expect_str(&r, "more-99", "more-99");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}

START_TEST(test_rec_survives_writers_killed_in_the_index_lock)
{
	TEST_NEEDS(TEST_NEED_ROBUST);

	for (int round = 0; round < 3; round++)
		for (int point = 1; point <= POINTS; point++)
			killed_at(point, round);
}
END_TEST

/* --------------------------------------------------------- read-only */

static int helper_ro_read(int argc, char **argv)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	char buf[64];
	struct rszshm r;
	int n = 0, x = 0;

	HCHECK(argc == 2);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY));
	HCHECK(rszshm_rec_find(&r, "alpha", &info) != NULL && info.size == 6 && info.copied);
	HCHECK(rszshm_rec_get(&r, "beta", buf, sizeof(buf), NULL) == 5 && !strcmp(buf, "beta"));
	errno = 0;
	HCHECK(rszshm_rec_find(&r, "gamma", NULL) == NULL && errno == ENOENT);
	while (rszshm_rec_next(&r, &it, &info) == 1)
		HCHECK(!strcmp(info.name, n++ ? "beta" : "alpha"));
	HCHECK(n == 2);
	errno = 0;
	HCHECK(rszshm_rec_put(&r, "x", 0, &x, sizeof(x)) == -1 && errno == EPERM);
	errno = 0;
	HCHECK(rszshm_rec_add(&r, "x", 0, info.ptr, 1) == -1 && errno == EPERM);
	errno = 0;
	HCHECK(rszshm_rec_remove(&r, "alpha") == -1 && errno == EPERM);
	errno = 0;
	HCHECK(rszshm_rec_clear(&r) == -1 && errno == EPERM);
	HCHECK(rszshm_check(&r, NULL, 0) == 0);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

START_TEST(test_rec_readonly_attach_finds_gets_and_iterates)
{
	char path[256];
	struct rszshm r;

	mk_heap(&r, path, "ro");
	put_str(&r, "alpha", "alpha");
	put_str(&r, "beta", "beta");
	ck_assert_int_eq(test_wait(test_exec_helper("ro-read", path, NULL)), 0);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ------------------------------------------------------------ walkers */

static struct m_idx *m_idx(struct rszshm *r)
{
	struct m_idx *x = (struct m_idx *)(uintptr_t)rszshm__shared(r->hdr)->recs;

	ck_assert_ptr_nonnull(x);
	ck_assert_msg(x->magic == M_IDX_MAGIC, "test's mirror of the index is out of date");
	return x;
}

static struct m_rec *m_rec(uint64_t a, const char *name)
{
	struct m_rec *p = (struct m_rec *)(uintptr_t)a;

	ck_assert_msg(p && p->magic == M_REC_LIVE && p->namelen == strlen(name) &&
		      !strcmp(p->name, name), "test's mirror of a record is out of date");
	return p;
}

/* The slot of record @a. */
static struct m_slot *m_slot_of(struct m_idx *x, uint64_t a)
{
	struct m_bkt *b = (struct m_bkt *)(uintptr_t)x->buckets;

	for (uint64_t i = 0; i < b->n; i++)
		if (b->slot[i].rec == a)
			return &b->slot[i];
	ck_abort_msg("record %#" PRIx64 " is in no slot", a);
	return NULL;
}

/* Damage one word, expect the check to say @what, restore, expect it clean. */
static void damaged(struct rszshm *r, uint64_t *word, uint64_t bad, const char *what)
{
	uint64_t good = *word;
	char msg[256] = "";

	*word = bad;
	ck_assert_int_eq(rszshm_check(r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, what) != NULL, "check said \"%s\", want \"%s\"", msg, what);
	*word = good;
	check_ok(r);
}

START_TEST(test_rec_walker_reports_damage_without_crashing)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	struct m_rec *first, *second, *last;
	uint64_t outside, saved;
	char path[256], name[32];
	struct m_idx *x;
	struct rszshm r;
	int rc, hits = 0, steps = 0;

	mk_heap(&r, path, "damage");
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		put_str(&r, name, name);
	}
	x = m_idx(&r);
	first = m_rec(x->head, "d0");
	second = m_rec(first->next, "d1");
	last = m_rec(x->tail, "d7");
	outside = (uintptr_t)r.hdr + r.max + 4096;

	damaged(&r, &first->next, outside, "outside the region");
	damaged(&r, &last->next, x->head, "longer than the count");
	damaged(&r, &second->magic, 0x1234, "bad magic");
	damaged(&r, &second->prev, 0, "back link");
	damaged(&r, &second->hash, second->hash ^ 1, "hash");
	damaged(&r, &x->count, 9, "count");
	damaged(&r, &x->buckets, outside, "bucket array");
	damaged(&r, &m_slot_of(x, (uintptr_t)second)->hash, second->hash ^ 1, "wrong hash");
	damaged(&r, &m_slot_of(x, (uintptr_t)second)->rec, outside, "outside the region");
	damaged(&r, &rszshm__shared(r.hdr)->recs, outside, "index");

	/* Live readers on a damaged index return, with EBADMSG, and never hang. */
	saved = last->next;
	last->next = x->head;
	while ((rc = rszshm_rec_next(&r, &it, &info)) == 1)
		ck_assert_int_lt(++steps, 9);
	ck_assert(rc == -1 && errno == EBADMSG);
	last->next = saved;

	/* A slot array with no empty slot (the load never passes 3/4): every
	 * probe run ends, and a name that is not there is EBADMSG. */
	{
		struct m_bkt *b = (struct m_bkt *)(uintptr_t)x->buckets;
		struct m_slot *keep = malloc(b->n * sizeof(*keep));

		ck_assert_ptr_nonnull(keep);
		memcpy(keep, b->slot, b->n * sizeof(*keep));
		for (uint64_t i = 0; i < b->n; i++)
			if (!b->slot[i].rec)
				b->slot[i] = (struct m_slot){ ~0ULL, (uintptr_t)second };
		for (int i = 0; i < 2000; i++) {
			snprintf(name, sizeof(name), "probe-%d", i);
			if (!rszshm_rec_find(&r, name, NULL)) {
				ck_assert(errno == ENOENT || errno == EBADMSG);
				hits += errno == EBADMSG;
			}
		}
		ck_assert_int_eq(hits, 2000);
		ck_assert_ptr_nonnull(rszshm_rec_find(&r, "d1", NULL));
		memcpy(b->slot, keep, b->n * sizeof(*keep));
		free(keep);
	}
	check_ok(&r);

	/* A damaged root is reported to readers and writers alike. */
	saved = rszshm__shared(r.hdr)->recs;
	rszshm__shared(r.hdr)->recs = outside;
	ERRNO_IS(rszshm_rec_put(&r, "w", 0, "w", 2) == -1, EBADMSG);
	ERRNO_IS(rszshm_rec_remove(&r, "d1") == -1, EBADMSG);
	ERRNO_IS(rszshm_rec_find(&r, "d1", NULL) == NULL, EBADMSG);
	rszshm__shared(r.hdr)->recs = saved;
	expect_str(&r, "d1", "d1");
	check_ok(&r);

	/* An update left pending over a damaged list cannot be repaired: every
	 * writer says so (and lock-falling readers too) until the list is fixed. */
	saved = first->next;
	first->next = outside;
	x->seq |= 1;
	ERRNO_IS(rszshm_rec_put(&r, "w", 0, "w", 2) == -1, ENOTRECOVERABLE);
	ERRNO_IS(rszshm_rec_remove(&r, "d2") == -1, ENOTRECOVERABLE);
	ERRNO_IS(rszshm_rec_get(&r, "d1", name, sizeof(name), NULL) == -1, ENOTRECOVERABLE);
	first->next = saved;
	put_str(&r, "w", "w");
	expect_str(&r, "d1", "d1");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * A co-writer that keeps the index's seq odd and moving, holding no lock
 * (it writes the word through the file): a read-only reader, who cannot
 * take the lock to repair, gives EAGAIN after a bounded wait each time
 * instead of following the seq for 2^24 tries a call.  Writers then repair.
 */
START_TEST(test_rec_readonly_reader_of_a_seq_kept_odd_ends)
{
	char path[256], name[32];
	struct rszshm r;
	struct m_idx *x;
	int pfd[2];
	pid_t pid;

	mk_heap(&r, path, "odd-moving");
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "base-%d", i);
		put_str(&r, name, name);
	}
	x = (struct m_idx *)(uintptr_t)rszshm__shared(r.hdr)->recs;
	ck_assert_uint_eq(x->magic, M_IDX_MAGIC);
	__atomic_fetch_or(&x->seq, 1, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
	if ((pid = test_fork()) == 0) {
		char c;

		close(pfd[1]);
		while (read(pfd[0], &c, 1) < 0)
			__atomic_fetch_add(&x->seq, 2, __ATOMIC_RELEASE);
		_exit(0);
	}
	close(pfd[0]);
	ck_assert_int_eq(test_wait(test_exec_helper("ro-moving", path, NULL)), 0);
	test_post(pfd[1]);
	close(pfd[1]);
	ck_assert_int_eq(test_wait(pid), 0);
	/* A writer finds seq odd with no holder: it repairs and goes on. */
	put_str(&r, "after", "after");
	expect_str(&r, "base-2", "base-2");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * A read-only reader outwaits a live writer that stays inside the index
 * lock (descheduled, stopped by a debugger, on a loaded machine) for longer
 * than the reader spins: it sleeps and reads once the writer is done, it
 * does not give up with EAGAIN while a writer is at work.
 */
static int go_fd = -1;

static void hold_here(int point)
{
	char c = (char)point;

	if (point != hook_target)
		return;
	if (write(hook_fd, &c, 1) != 1)
		_exit(4);
	test_wait_byte(go_fd);
}

/* Exec'd, read-only: says "ready" on fd argv[2], then looks a record up. */
static int helper_ro_outwait(int argc, char **argv)
{
	char buf[16];
	struct rszshm r;

	HCHECK(argc == 3);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY));
	HCHECK(write(atoi(argv[2]), "", 1) == 1);
	HCHECK(rszshm_rec_get(&r, "base-2", buf, sizeof(buf), NULL) == 7);
	HCHECK(strcmp(buf, "base-2") == 0);
	HCHECK(rszshm_rec_find(&r, "new", NULL) != NULL);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/* Exec'd, read-only: stops (once) where it is about to look for the writer
 * of an odd seq, saying so on fd argv[2] and waiting for a byte on argv[3];
 * then the lookup must go on to the value the writer finished meanwhile. */
static int late_ready = -1, late_go = -1;

static void stop_before_the_look(int point)
{
	ssize_t n;
	char c;

	if (point != 20 || late_go < 0)
		return;
	if (write(late_ready, "", 1) != 1)
		_exit(4);
	/* Not test_wait_byte(): Check's asserts report to a test runner, and
	 * an exec'd helper has none. */
	while ((n = read(late_go, &c, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(5);
	late_go = -1;
}

static int helper_ro_late(int argc, char **argv)
{
	char buf[16];
	struct rszshm r;

	HCHECK(argc == 4);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY));
	late_ready = atoi(argv[2]);
	late_go = atoi(argv[3]);
	rszshm__rec_hook = stop_before_the_look;
	HCHECK(rszshm_rec_get(&r, "base-2", buf, sizeof(buf), NULL) == 7);
	HCHECK(late_go == -1);	/* it stopped there */
	HCHECK(strcmp(buf, "base-2") == 0);
	HCHECK(rszshm_rec_find(&r, "new", NULL) != NULL);
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/* The state letter of /proc/PID/stat ('R', 'S', ...), or 0. */
static char proc_state(pid_t pid)
{
	char path[64], line[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	if (!p || !(p = strrchr(line, ')')) || p[1] != ' ')
		return 0;
	return p[2];
}

/*
 * A heap region at @path with BASE_RECS - 1 records, and a forked writer
 * held inside the index lock at an insert's first step (seq odd) until a
 * byte on *@go (the write end, the caller's to post and close).
 */
static pid_t writer_held_in_the_lock(struct rszshm *r, char *path, const char *tag, int *go)
{
	int hook[2], g[2];
	char name[32];
	pid_t writer;

	mk_heap(r, path, tag);
	for (int i = 0; i < BASE_RECS - 1; i++) {
		snprintf(name, sizeof(name), "base-%d", i);
		put_str(r, name, name);
	}
	ck_assert_int_eq(pipe2(hook, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(g, O_CLOEXEC), 0);
	if ((writer = test_fork()) == 0) {
		close(hook[0]);
		close(g[1]);
		hook_fd = hook[1];
		go_fd = g[0];
		hook_target = 1;	/* an insert's first step, seq odd */
		rszshm__rec_hook = hold_here;
		_exit(rszshm_rec_put(r, "new", 0, "new", 4) == 0 ? 0 : 2);
	}
	close(hook[1]);
	close(g[0]);
	test_wait_byte(hook[0]);
	close(hook[0]);
	*go = g[1];
	return writer;
}

START_TEST(test_rec_readonly_reader_outwaits_a_writer_in_the_lock)
{
	char path[256], arg[16];
	int go, ready[2], st = 0;
	struct rszshm r;
	pid_t writer, reader;

	writer = writer_held_in_the_lock(&r, path, "outwait", &go);

	/* Only the reader's end passes the exec. */
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(fcntl(ready[0], F_SETFD, FD_CLOEXEC), 0);
	snprintf(arg, sizeof(arg), "%d", ready[1]);
	reader = test_exec_helper("ro-outwait", path, arg, NULL);
	close(ready[1]);
	test_wait_byte(ready[0]);
	close(ready[0]);
	/* Wait until the reader has spun out and sleeps (or has ended). */
	for (;;) {
		ck_assert_msg(waitpid(reader, &st, WNOHANG) == 0, "the reader ended (status %#x) while the writer held the lock", st);
		if (proc_state(reader) == 'S')
			break;
		sched_yield();
	}
	test_post(go);
	close(go);
	ck_assert_int_eq(test_wait(writer), 0);
	ck_assert_int_eq(test_wait(reader), 0);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * A read-only reader reads an odd seq, and the writer finishes before the
 * reader looks at the lock: the lock is free, yet nobody died.  The reader
 * reads seq again and goes on, never an EAGAIN for an update that ended.
 */
START_TEST(test_rec_readonly_reader_whose_writer_ends_before_its_look_goes_on)
{
	int go, ready[2], rgo[2];
	char path[256], a1[16], a2[16];
	struct rszshm r;
	pid_t writer, reader;

	writer = writer_held_in_the_lock(&r, path, "late", &go);

	/* Only the reader's ends pass the exec. */
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(rgo), 0);
	ck_assert_int_eq(fcntl(ready[0], F_SETFD, FD_CLOEXEC), 0);
	ck_assert_int_eq(fcntl(rgo[1], F_SETFD, FD_CLOEXEC), 0);
	snprintf(a1, sizeof(a1), "%d", ready[1]);
	snprintf(a2, sizeof(a2), "%d", rgo[0]);
	reader = test_exec_helper("ro-late", path, a1, a2, NULL);
	close(ready[1]);
	close(rgo[0]);
	test_wait_byte(ready[0]);	/* it read seq odd, the lock held */
	close(ready[0]);
	test_post(go);			/* the writer finishes and lets go */
	close(go);
	ck_assert_int_eq(test_wait(writer), 0);
	test_post(rgo[1]);		/* now the reader looks: no holder */
	close(rgo[1]);
	ck_assert_int_eq(test_wait(reader), 0);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ------------------------------------------------------ the slot array */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Removals in every order keep each remaining name findable: a removal
 * shifts the rest of its probe run back, and a record left behind an empty
 * slot would be lost to lookups (and to the check).
 */
START_TEST(test_rec_removals_keep_every_probe_run_whole)
{
	enum { N = 700 };
	static bool live[N];
	uint64_t s = 0x2545f4914f6cdd1dULL;
	char path[256], name[32];
	struct rszshm r;

	mk_heap(&r, path, "runs");
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "run-%d", i);
		put_str(&r, name, name);
		live[i] = true;
	}
	for (int round = 0; round < 6; round++) {
		/* Remove (or put back) a pseudo-random third, then look all up. */
		for (int k = 0; k < N / 3; k++) {
			int i = (int)(rnd(&s) % N);

			snprintf(name, sizeof(name), "run-%d", i);
			if (live[i])
				ck_assert_int_eq(rszshm_rec_remove(&r, name), 0);
			else
				put_str(&r, name, name);
			live[i] = !live[i];
		}
		for (int i = 0; i < N; i++) {
			snprintf(name, sizeof(name), "run-%d", i);
			if (live[i])
				expect_str(&r, name, name);
			else
				ERRNO_IS(rszshm_rec_find(&r, name, NULL) == NULL, ENOENT);
		}
		check_ok(&r);
	}
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * The index root has one place, in segment 0; a root anywhere else, even a
 * faithful copy of it, is refused by readers, writers and the check alike.
 */
START_TEST(test_rec_index_root_has_one_place_in_segment_0)
{
	struct rszshm__shared *sh;
	char path[256], msg[256];
	struct rszshm r;
	uint64_t saved;
	void *copy;

	mk_heap(&r, path, "root");
	put_str(&r, "a", "a");
	sh = rszshm__shared(r.hdr);
	ck_assert_uint_eq(sh->recs, (uintptr_t)r.hdr + RSZSHM__REC_ROOT_OFF);
	ck_assert_ptr_nonnull(copy = rszshm_alloc(&r, RSZSHM__REC_ROOT_MAX));
	memcpy(copy, (const void *)(uintptr_t)sh->recs, RSZSHM__REC_ROOT_MAX);
	saved = sh->recs;
	sh->recs = (uintptr_t)copy;
	ERRNO_IS(rszshm_rec_find(&r, "a", NULL) == NULL, EBADMSG);
	ERRNO_IS(rszshm_rec_put(&r, "b", 0, "b", 2) == -1, EBADMSG);
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "index") != NULL, "check said: %s", msg);
	sh->recs = saved;
	expect_str(&r, "a", "a");
	ck_assert_int_eq(rszshm_dealloc(&r, copy), 0);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * The slot count lookups read from the root is checked against the region
 * (a lookup never reads past it) and, by the check, against the array's
 * own head.
 */
#define NSLOTS_RECS 70	/* past 1/2 of 128 slots, not past 3/4 */
START_TEST(test_rec_slot_count_in_the_root_is_checked)
{
	const uint64_t bad[] = { 0, 8, 24, 1ULL << 40, ~0ULL, 0 };
	char path[256], name[32], msg[256];
	struct m_idx *x;
	struct rszshm r;
	uint64_t good;

	mk_heap(&r, path, "nslots");
	for (int i = 0; i < NSLOTS_RECS; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		put_str(&r, name, name);
	}
	x = m_idx(&r);
	good = x->nslots;
	ck_assert_uint_eq(good, ((struct m_bkt *)(uintptr_t)x->buckets)->n);
	ck_assert_uint_ge(good, 2 * NSLOTS_RECS);	/* the load stays at most 1/2 */
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		x->nslots = k + 1 < sizeof(bad) / sizeof(bad[0]) ? bad[k] : good / 2;
		for (int i = 0; i < NSLOTS_RECS; i++) {
			snprintf(name, sizeof(name), "n%d", i);
			if (!rszshm_rec_find(&r, name, NULL))
				ck_assert(errno == ENOENT || errno == EBADMSG);
		}
		ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
		ck_assert_msg(strstr(msg, "slots") != NULL, "check said: %s", msg);
		/* Writers refuse too: lookups would not see what they wrote. */
		ERRNO_IS(rszshm_rec_put(&r, "fresh", 0, "x", 2) == -1, EBADMSG);
		errno = 0;
		ck_assert_int_eq(rszshm_rec_remove(&r, "n5"), -1);
		ck_assert(errno == EBADMSG || errno == ENOENT);
	}
	x->nslots = good;
	ERRNO_IS(rszshm_rec_find(&r, "fresh", NULL) == NULL, ENOENT);
	expect_str(&r, "n5", "n5");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * A record whose value lies outside the region, or in its header, is
 * refused by every reader alike (EBADMSG), never handed out: rec_get,
 * rec_find (with and without info), rec_next; and the check reports it.
 */
static void value_refused(struct rszshm *r, struct m_rec *p, uint64_t val, uint64_t size)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	uint64_t gval = p->val, gsize = p->size;
	char buf[16], msg[256] = "";
	int rc;

	p->val = val;
	p->size = size;
	ERRNO_IS(rszshm_rec_get(r, "v", buf, sizeof(buf), NULL) == -1, EBADMSG);
	ERRNO_IS(rszshm_rec_find(r, "v", &info) == NULL, EBADMSG);
	ERRNO_IS(rszshm_rec_find(r, "v", NULL) == NULL, EBADMSG);
	while ((rc = rszshm_rec_next(r, &it, &info)) == 1)
		ck_assert_msg(strcmp(info.name, "v") != 0, "rec_next handed out %p",
			      info.ptr);
	ck_assert(rc == -1 && errno == EBADMSG);
	ck_assert_int_eq(rszshm_check(r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "value") != NULL, "check said \"%s\"", msg);
	p->val = gval;
	p->size = gsize;
	check_ok(r);
}

START_TEST(test_rec_readers_refuse_values_outside_the_region_or_in_its_header)
{
	char path[256];
	struct m_idx *x;
	struct m_rec *p;
	struct rszshm r;
	uint64_t base;

	mk_heap(&r, path, "bad-value");
	put_str(&r, "u", "before");
	put_str(&r, "v", "value");
	put_str(&r, "w", "after");
	x = m_idx(&r);
	p = m_rec(m_rec(x->head, "u")->next, "v");
	base = (uintptr_t)r.hdr;

	value_refused(&r, p, base + r.max + 4096, 6);		/* past the span */
	value_refused(&r, p, base - 4096, 6);			/* before the region */
	value_refused(&r, p, base + 64, 6);			/* the header's locks */
	value_refused(&r, p, base + 500, 16);			/* ends past the header */
	value_refused(&r, p, base + r.hdr->flen - 4, 8);	/* ends past the end */
	expect_str(&r, "v", "value");
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * Writers write through the index's links: a link into the first segment
 * (the header and the heap's control block, with their locks) is damage,
 * refused, never written through.
 */
START_TEST(test_rec_writers_never_write_through_a_link_into_the_header)
{
	char path[256], lock[64];
	struct m_idx *x;
	struct rszshm r;
	uint64_t tail;

	mk_heap(&r, path, "tail-hdr");
	put_str(&r, "a", "a");
	x = m_idx(&r);
	memcpy(lock, r.hdr->private_, sizeof(lock));
	tail = x->tail;
	/* The tail's next field would fall on the first lock word. */
	x->tail = (uintptr_t)r.hdr + 64 - offsetof(struct m_rec, next);
	ERRNO_IS(rszshm_rec_put(&r, "b", 0, "b", 2) == -1, EBADMSG);
	ck_assert_msg(memcmp(lock, r.hdr->private_, sizeof(lock)) == 0,
		      "a record writer wrote over the header's locks");
	x->tail = tail;
	put_str(&r, "b", "b");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* Where damage goes: the index, its buckets, the records' headers and names. */
struct targets {
	uint64_t a[64];
	uint64_t words[64];
	unsigned n;
};

static void add_target(struct targets *t, uint64_t a, uint64_t words)
{
	if (t->n < 64) {
		t->a[t->n] = a;
		t->words[t->n++] = words;
	}
}


/* A damaging value: zero, all ones, random, or an address in the region. */
static uint64_t bad_value(uint64_t *s, const struct targets *t, uint64_t base, uint64_t len)
{
	switch (rnd(s) % 6) {
	case 0: return 0;
	case 1: return ~0ULL;
	case 2: return rnd(s);
	case 3: return base + (rnd(s) % len & ~7ULL);
	case 4: return t->a[rnd(s) % t->n];
	default: return t->a[rnd(s) % t->n] + 8 * (rnd(s) % 4);
	}
}

#define FUZZ_ROUNDS 1500

/*
 * Random damage to a copy of a region, seen through a view at another
 * address, and to the live region itself (readers only): the walker and the
 * iterators must return (0/1, or an error), never crash (ASan watches) or
 * loop, and most damage must be reported.
 */
START_TEST(test_rec_walkers_survive_random_damage)
{
	struct rszshm_rec_info info;
	struct rszshm_stats st;
	struct rszshm__view v;
	struct targets t = { .n = 0 };
	char path[256], name[32], msg[256], buf[256];
	unsigned char *orig, *copy;
	uint64_t seed = 0x1234567887654321ULL, base, len, a;
	unsigned flagged = 0;
	struct m_idx *x;
	struct rszshm r;

	mk_heap(&r, path, "fuzz");
	memset(buf, 0x5a, sizeof(buf));
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		ck_assert_int_eq(rszshm_rec_put(&r, name, 0, buf, 8 + (size_t)i * 5), 0);
	}
	for (int i = 0; i < 40; i += 3) {
		snprintf(name, sizeof(name), "f%02d", i);
		if (i % 2)
			ck_assert_int_eq(rszshm_rec_remove(&r, name), 0);
		else
			ck_assert_int_eq(rszshm_rec_put(&r, name, 1, buf, 100), 0);
	}
	check_ok(&r);
	x = m_idx(&r);
	add_target(&t, (uintptr_t)x, 8);
	add_target(&t, x->buckets, 2 + 2 * ((struct m_bkt *)(uintptr_t)x->buckets)->n);
	for (a = x->head; a; a = ((struct m_rec *)(uintptr_t)a)->next)
		add_target(&t, a, sizeof(struct m_rec) / 8 + 1);
	base = (uintptr_t)r.hdr;
	len = rszshm__map_len(&r);
	ck_assert_ptr_nonnull(orig = malloc(len));
	ck_assert_ptr_nonnull(copy = aligned_alloc(4096, len));
	memcpy(orig, r.hdr, len);
	v.map = copy;
	v.base = base;
	v.len = len;
	v.fd = -1;

	for (unsigned round = 0; round < FUZZ_ROUNDS; round++) {
		struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
		bool live = round % 4 == 3;
		unsigned char *m = live ? (unsigned char *)r.hdr : copy;
		unsigned hits = 1 + (unsigned)(rnd(&seed) % 3), steps = 0;
		int rc;

		memcpy(copy, orig, len);
		for (unsigned k = 0; k < hits; k++) {
			unsigned i = (unsigned)(rnd(&seed) % t.n);
			uint64_t w = rnd(&seed) % t.words[i];

			if (live && i == 0 && w == 1)
				w = 0;	/* seq: live readers would take the lock and repair */
			*(uint64_t *)(m + (t.a[i] - base) + 8 * w) = bad_value(&seed, &t, base, len);
		}
		if (!live) {
			memset(&st, 0, sizeof(st));
			rc = rszshm__rec_walk(&v, &st, msg, sizeof(msg));
			ck_assert(rc == 0 || rc == 1);
			flagged += rc == 1;
			while ((rc = rszshm__rec_view_next(&v, &it, &info)) == 1)
				ck_assert_uint_lt(++steps, 100);
			ck_assert(rc == 0 || rc == -EBADMSG);
			continue;
		}
		rc = rszshm_check(&r, msg, sizeof(msg));
		ck_assert(rc == 0 || rc == 1);
		while ((rc = rszshm_rec_next(&r, &it, &info)) == 1)
			ck_assert_uint_lt(++steps, 100);
		ck_assert(rc == 0 || errno == EBADMSG);
		for (int i = 0; i < 40; i += 7) {
			snprintf(name, sizeof(name), "f%02d", i);
			rszshm_rec_get(&r, name, buf, sizeof(buf), &info);
		}
		memcpy(r.hdr, orig, len);
	}
	ck_assert_uint_gt(flagged, FUZZ_ROUNDS / 2);
	check_ok(&r);
	free(orig);
	free(copy);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_rec_view_lists_records_at_another_address)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	struct rszshm_stats st;
	struct rszshm__view v;
	const char *why = NULL;
	char path[256], name[32], msg[128];
	void *where[20];
	struct rszshm r;
	int n = 0, rc;

	mk_heap(&r, path, "view");
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "v%02d", i);
		put_str(&r, name, name);
		where[i] = rszshm_rec_find(&r, name, NULL);
	}
	ck_assert_int_eq(rszshm_rec_remove(&r, "v03"), 0);
	ck_assert_int_eq(rszshm_flush(&r, NULL, 0), 0);
	ck_assert_int_eq(rszshm__view_open(path, &v, &why), 0);
	ck_assert_ptr_ne(v.map, (const void *)r.hdr);
	while ((rc = rszshm__rec_view_next(&v, &it, &info)) == 1) {
		const char *val;

		if (n == 3)
			n++;
		snprintf(name, sizeof(name), "v%02d", n);
		ck_assert_str_eq(info.name, name);
		ck_assert_ptr_eq(info.ptr, where[n]);	/* the recorded address */
		ck_assert_ptr_nonnull(val = rszshm__view_ptr(&v, (uintptr_t)info.ptr, info.size));
		ck_assert_str_eq(val, name);
		n++;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(n, 20);
	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(rszshm__rec_walk(&v, &st, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(st.records, 19);
	rszshm__view_close(&v);
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* The name hash as the file format defines it: words copied from the name,
 * the last partial one zero-extended (lib/rec.c keeps it in every record,
 * and rszshm-dump --check recomputes it). */
static uint64_t ref_mix(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

static uint64_t ref_hash(uint64_t seed, const char *s, size_t n)
{
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), k;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&k, s, 8);
		h = (h ^ k) * 0x9e3779b97f4a7c15ULL;
		h = (h << 31) | (h >> 33);
	}
	if (n) {
		k = 0;
		memcpy(&k, s, n);
		h = (h ^ k) * 0x9e3779b97f4a7c15ULL;
	}
	return ref_mix(h);
}

/* Every name length, every byte value in every tail position: the hash is
 * the defined one (a faster tail must not change a stored hash). */
START_TEST(test_rec_hash_is_the_defined_function_for_every_length)
{
	uint64_t seed;
	struct rszshm r;
	char path[256], name[RSZSHM_NAME_MAX + 1];

	mk_heap(&r, path, "hash");
	seed = ref_mix((uint64_t)(uintptr_t)r.hdr ^ 0x5253485a52454331ULL);
	for (size_t n = 1; n <= RSZSHM_NAME_MAX; n++) {
		for (unsigned b = 1; b < 256; b++) {
			for (size_t i = 0; i < n; i++)
				name[i] = (char)(1 + (b * 31 + i * 7) % 255);
			name[n - 1 - (b % n)] = (char)b;
			name[n] = '\0';
			ck_assert_msg(rszshm__rec_hash(&r, name, n) == ref_hash(seed, name, n),
				      "length %zu, byte %u", n, b);
		}
	}
	/* And what the index stores is the same hash: the walker recomputes it. */
	put_str(&r, "abc", "x");
	put_str(&r, "abcdefghijk", "y");
	expect_str(&r, "abc", "x");
	expect_str(&r, "abcdefghijk", "y");
	check_ok(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/*
 * A slot's hash only says where to look: a record is found only if every
 * byte of its name is the name asked for.  The record's stored name is
 * changed one byte at a time (its hash, in the slot, stays), for every
 * length, and the name must then not be found; put back, it must be.
 */
START_TEST(test_rec_lookup_compares_every_byte_of_the_name)
{
	char path[256], name[RSZSHM_NAME_MAX + 1];
	struct rszshm r;

	for (size_t n = 1; n <= RSZSHM_NAME_MAX; n++) {
		char *stored, *again;

		mk_heap(&r, path, "nameeq");
		for (size_t i = 0; i < n; i++)
			name[i] = (char)('A' + (i * 7 + n) % 26);
		name[n] = '\0';
		put_str(&r, name, "v");
		/* A fresh region holds the name's bytes once: in its record. */
		stored = memmem(r.hdr, (size_t)r.flen, name, n + 1);
		ck_assert_msg(stored != NULL, "length %zu: the name is not in the region", n);
		again = memmem(stored + 1, (size_t)r.flen - (size_t)(stored + 1 - (char *)r.hdr), name,
			       n + 1);
		ck_assert_msg(again == NULL, "length %zu: the name is in the region twice", n);
		for (size_t i = 0; i < n; i++) {
			stored[i] ^= 0x20;
			errno = 0;
			ck_assert_msg(rszshm_rec_find(&r, name, NULL) == NULL && errno == ENOENT,
				      "length %zu, byte %zu changed: found, or errno %d", n, i, errno);
			stored[i] ^= 0x20;
			expect_str(&r, name, "v");
		}
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_unlink(&r), 0);
	}
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("records");

	TEST_ADD(s, test_rec_refuses_null_raw_and_detached_handles);
	TEST_ADD(s, test_rec_checks_names);
	TEST_ADD(s, test_rec_hash_is_the_defined_function_for_every_length);
	TEST_ADD(s, test_rec_lookup_compares_every_byte_of_the_name);
	TEST_ADD(s, test_rec_add_publishes_a_pointer);
	TEST_ADD(s, test_rec_put_copies_and_replaces);
	TEST_ADD(s, test_rec_remove_frees_copies_only);
	TEST_ADD(s, test_rec_put_fails_cleanly_when_the_span_is_full);
	TEST_ADD_T(s, test_rec_finds_each_of_many_records, 240);
	TEST_ADD(s, test_rec_iterates_in_insertion_order);
	TEST_ADD_T(s, test_rec_iteration_survives_concurrent_changes, 240);
	TEST_ADD_T(s, test_rec_threads_share_a_handle, 240);
	TEST_ADD(s, test_rec_exec_helper_walks_published_list_and_tree);
	TEST_ADD_T(s, test_rec_get_is_never_torn_by_a_million_replacements, 240);
	TEST_ADD_T(s, test_rec_survives_writers_killed_in_the_index_lock, 240);
	TEST_ADD(s, test_rec_readonly_attach_finds_gets_and_iterates);
	TEST_ADD(s, test_rec_walker_reports_damage_without_crashing);
	TEST_ADD(s, test_rec_removals_keep_every_probe_run_whole);
	TEST_ADD(s, test_rec_index_root_has_one_place_in_segment_0);
	TEST_ADD(s, test_rec_slot_count_in_the_root_is_checked);
	TEST_ADD(s, test_rec_readers_refuse_values_outside_the_region_or_in_its_header);
	TEST_ADD(s, test_rec_writers_never_write_through_a_link_into_the_header);
	TEST_ADD(s, test_rec_view_lists_records_at_another_address);
	TEST_ADD_T(s, test_rec_walkers_survive_random_damage, 240);
	TEST_ADD_T(s, test_rec_readonly_reader_of_a_seq_kept_odd_ends, 60);
	TEST_ADD_T(s, test_rec_readonly_reader_outwaits_a_writer_in_the_lock, 60);
	TEST_ADD_T(s, test_rec_readonly_reader_whose_writer_ends_before_its_look_goes_on, 60);
	return s;
}

const struct test_helper test_helpers[] = {
	{ "walk", helper_walk },
	{ "torn-reader", helper_torn_reader },
	{ "ro-busy", helper_ro_busy },
	{ "ro-moving", helper_ro_moving },
	{ "ro-outwait", helper_ro_outwait },
	{ "ro-late", helper_ro_late },
	{ "ro-read", helper_ro_read },
	{ NULL, NULL },
};
