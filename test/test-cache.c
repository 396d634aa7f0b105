/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-cache.c - the heap's thread caches (lib/heap/own.c, and the cached
 * paths of lib/heap/heap.c and lib/heap/arena.c): who owns a slot, what an
 * exit, a detach or a fork gives back, double frees of cached blocks,
 * damaged slots, and kill -9 of an owner or an adopter at random points.
 *
 * The kill tests are correctness tests, not benchmarks: a child runs the
 * library with no system call in its loop and the parent kills it once a
 * counter in the region passes a random mark, or (adoption, too quick for
 * a signal from outside to land in reliably) the child dies by SIGKILL at a
 * random one of the library's points where a block is in motion; then the
 * parent checks the heap (rszshm_check()), counts what was lost with
 * rszshm_stats(), and lets a new thread adopt what the dead left.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

/*
 * Kill trials: 200 on a real kernel.  Under an emulator (a cross build run
 * through qemu-user) each trial's 48 threads and its killed child cost a
 * hundred times more (the adoption test took 51 s alone, 145 s beside the
 * other suites, under qemu-aarch64 on 2 cores): 40 there, which still puts
 * kills at every point of an adoption (the test says how many landed).
 */
static unsigned trials(void)
{
	const char *w = getenv("RSZSHM_EXE_WRAPPER");

	return w && *w ? 40u : 200u;
}
#define TRIALS trials()

static void mk_heap(struct rszshm *r, const char *leaf)
{
	char path[256];

	test_path(path, sizeof(path), "%s", leaf);
	test_track(path);
	ck_assert_msg(rszshm_mk_flags(r, 4096, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL,
		      "mk %s: %s", path, strerror(errno));
}

static void assert_consistent(struct rszshm *r)
{
	char msg[256] = "";

	ck_assert_msg(rszshm_check(r, msg, sizeof(msg)) == 0, "check: %s", msg);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static uint64_t live_blocks(struct rszshm *r)
{
	struct rszshm_stats st;

	ck_assert_int_eq(rszshm_stats(r, &st), 0);
	return st.blocks;
}

/* Allocate and free @n blocks of 16..1024 bytes: the caller's cache fills. */
static void churn(struct rszshm *r, unsigned n, uint64_t seed)
{
	void *p[64];
	unsigned i, k;

	for (k = 0; k < n; k += 64) {
		for (i = 0; i < 64; i++) {
			p[i] = rszshm_alloc(r, 16 + (size_t)(xorshift(&seed) % 1009));
			ck_assert_ptr_nonnull(p[i]);
		}
		for (i = 0; i < 64; i++)
			ck_assert_int_eq(rszshm_dealloc(r, p[i]), 0);
	}
}

/* A slot that names @owner, or -1. */
static int slot_of(struct rszshm *r, uint64_t owner, struct rszshm__slot_view *v)
{
	unsigned k;

	for (k = 0; rszshm__heap_slot_peek(r, k, v) == 0; k++)
		if (__atomic_load_n(v->owner, __ATOMIC_ACQUIRE) == owner)
			return (int)k;
	return -1;
}

static uint64_t slot_blocks(const struct rszshm__slot_view *v)
{
	uint64_t n = 0;
	unsigned c;

	for (c = 0; c < v->ncache; c++)
		n += __atomic_load_n(&v->n[c], __ATOMIC_RELAXED);
	return n;
}

/* The owner word of the slot the calling thread uses in @r. */
static uint64_t my_owner(struct rszshm *r)
{
	struct rszshm__slot_view v;
	void *p = rszshm_alloc(r, 16);
	unsigned k;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(rszshm_dealloc(r, p), 0);
	/* The slot whose class-0 cache has p on top. */
	for (k = 0; rszshm__heap_slot_peek(r, k, &v) == 0; k++)
		if (v.n[0] && v.blk[v.n[0] - 1] == (uintptr_t)p)
			return *v.owner;
	ck_abort_msg("no slot holds the block just freed");
	return 0;
}

/* --------------------------------------------------------- ownership */

static void *churn_thread(void *arg)
{
	struct rszshm *r = arg;

	churn(r, 512, (uint64_t)(uintptr_t)&arg);
	return (void *)(uintptr_t)rszshm__heap_cached(r);
}

START_TEST(test_thread_exit_gives_its_cache_back)
{
	struct rszshm r;
	pthread_t t;
	void *held;

	mk_heap(&r, "exit");
	ck_assert_int_eq(pthread_create(&t, NULL, churn_thread, &r), 0);
	ck_assert_int_eq(pthread_join(t, &held), 0);
	ck_assert_uint_gt((uintptr_t)held, 0);		/* it did cache blocks */
	ck_assert_uint_eq(rszshm__heap_cached(&r), 0);	/* and gave them back */
	ck_assert_uint_eq(live_blocks(&r), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

struct parked {
	struct rszshm *r;
	int go[2], done[2];
	int rc;
};

/* Churn, then wait for a byte, then allocate again (after the detach and
 * the attach again in the main thread). */
static void *parked_thread(void *arg)
{
	struct parked *pk = arg;
	void *p;

	churn(pk->r, 256, 7);
	test_post(pk->done[1]);
	test_wait_byte(pk->go[0]);
	p = rszshm_alloc(pk->r, 40);
	pk->rc = p && rszshm_dealloc(pk->r, p) == 0 ? 0 : 1;
	return NULL;
}

START_TEST(test_detach_gives_back_every_thread_cache)
{
	struct parked pk = { 0 };
	struct rszshm r;
	char fname[RSZSHM_PATH_MAX];
	pthread_t t;

	mk_heap(&r, "detach");
	pk.r = &r;
	ck_assert_int_eq(pipe(pk.go), 0);
	ck_assert_int_eq(pipe(pk.done), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, parked_thread, &pk), 0);
	test_wait_byte(pk.done[0]);
	churn(&r, 256, 8);
	ck_assert_uint_gt(rszshm__heap_cached(&r), 0);
	strcpy(fname, r.fname);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	/* Attached again (at the same address): nothing cached, by anyone. */
	ck_assert_ptr_nonnull(rszshm_at(&r, fname));
	ck_assert_uint_eq(rszshm__heap_cached(&r), 0);
	ck_assert_uint_eq(live_blocks(&r), 0);
	assert_consistent(&r);
	/* The parked thread's old slot is gone: it claims a new one. */
	test_post(pk.go[1]);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(pk.rc, 0);
	ck_assert_uint_eq(rszshm__heap_cached(&r), 0);	/* it exited */
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

START_TEST(test_forked_child_never_uses_the_parent_cache)
{
	struct rszshm r;
	void *x, *y, *c;
	int fds[2];
	pid_t pid;

	mk_heap(&r, "fork");
	x = rszshm_alloc(&r, 100);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(rszshm_dealloc(&r, x), 0);	/* x on top of our cache */
	ck_assert_int_eq(pipe(fds), 0);
	pid = test_fork();
	if (pid == 0) {
		void *p = rszshm_alloc(&r, 100);

		ck_assert_int_eq(write(fds[1], &p, sizeof(p)), (ssize_t)sizeof(p));
		_exit(0);
	}
	ck_assert_int_eq(read(fds[0], &c, sizeof(c)), (ssize_t)sizeof(c));
	ck_assert_int_eq(test_wait(pid), 0);
	y = rszshm_alloc(&r, 100);
	ck_assert_ptr_eq(y, x);		/* ours, from our cache */
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_ne(c, x);		/* the child's, from its own */
	ck_assert_int_eq(rszshm_dealloc(&r, y), 0);
	assert_consistent(&r);
	close(fds[0]);
	close(fds[1]);
	rszshm_dt(&r);
}
END_TEST

static void *claim_thread(void *arg)
{
	struct rszshm *r = arg;
	void *p = rszshm_alloc(r, 24);

	return (void *)(uintptr_t)(p && rszshm_dealloc(r, p) == 0);
}

static void claim_in_new_thread(struct rszshm *r)
{
	pthread_t t;
	void *ok;

	ck_assert_int_eq(pthread_create(&t, NULL, claim_thread, r), 0);
	ck_assert_int_eq(pthread_join(t, &ok), 0);
	ck_assert_ptr_eq(ok, (void *)1);
}

/*
 * An owner word naming a live thread but another start time is a dead
 * owner whose thread id was given out again: the next claim adopts it.
 * The thread it names really is alive (this one), and must not go on
 * using the slot: it claims a new one.
 */
START_TEST(test_owner_with_a_reused_thread_id_is_adopted)
{
	struct rszshm__slot_view v;
	uint64_t me, adopted;
	struct rszshm r;
	int k;

	mk_heap(&r, "reused");
	churn(&r, 256, 3);
	me = my_owner(&r);
	ck_assert_int_ge(k = slot_of(&r, me, &v), 0);
	ck_assert_uint_gt(slot_blocks(&v), 0);
	adopted = rszshm__heap_adoptions(&r);
	__atomic_store_n(v.owner, me + ((uint64_t)1 << 22), __ATOMIC_RELEASE);
	claim_in_new_thread(&r);
	ck_assert_uint_eq(rszshm__heap_adoptions(&r), adopted + 1);
	ck_assert_uint_eq(slot_blocks(&v), 0);
	ck_assert_uint_eq(live_blocks(&r), 0);
	/* This thread finds its slot gone and claims another. */
	churn(&r, 128, 4);
	ck_assert_int_ge(slot_of(&r, me, &v), 0);
	ck_assert_uint_eq(live_blocks(&r), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

#define CROWD 120u

struct many {
	struct rszshm *r;
	pthread_barrier_t parked, go;
};

static void *many_thread(void *arg)
{
	struct many *m = arg;

	churn(m->r, 128, (uint64_t)(uintptr_t)&arg);
	pthread_barrier_wait(&m->parked);	/* all alive at once */
	pthread_barrier_wait(&m->go);
	churn(m->r, 64, 1);
	return NULL;
}

/* More threads than slots: the slots fill, the others allocate through
 * the arenas, everything is right, and every slot is given back. */
START_TEST(test_threads_past_the_slots_allocate_through_the_arenas)
{
	struct rszshm__slot_view v;
	pthread_t t[CROWD];
	struct many m;
	struct rszshm r;
	unsigned i, k, owned = 0, nslots = 0;

	mk_heap(&r, "many");
	m.r = &r;
	ck_assert_int_eq(pthread_barrier_init(&m.parked, NULL, CROWD + 1), 0);
	ck_assert_int_eq(pthread_barrier_init(&m.go, NULL, CROWD + 1), 0);
	for (i = 0; i < CROWD; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, many_thread, &m), 0);
	pthread_barrier_wait(&m.parked);
	for (k = 0; rszshm__heap_slot_peek(&r, k, &v) == 0; k++)
		owned += __atomic_load_n(v.owner, __ATOMIC_ACQUIRE) != 0;
	nslots = v.nslots;
	ck_assert_uint_lt(nslots, CROWD);
	ck_assert_uint_eq(owned, nslots);	/* every slot taken, no more */
	assert_consistent(&r);
	pthread_barrier_wait(&m.go);
	for (i = 0; i < CROWD; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_uint_eq(rszshm__heap_cached(&r), 0);
	ck_assert_uint_eq(live_blocks(&r), 0);
	for (owned = 0, k = 0; rszshm__heap_slot_peek(&r, k, &v) == 0; k++)
		owned += __atomic_load_n(v.owner, __ATOMIC_ACQUIRE) != 0;
	ck_assert_uint_eq(owned, 0);
	assert_consistent(&r);
	pthread_barrier_destroy(&m.parked);
	pthread_barrier_destroy(&m.go);
	rszshm_dt(&r);
}
END_TEST

struct two {
	struct rszshm *a, *b;
};

/* Claim a slot in a (so the thread's start time is known), then claim one
 * in b with a cancel pending: the claim's look at /proc for the owner of
 * this process's main thread's slot is a cancellation point. */
static void *cancelled_thread(void *arg)
{
	struct two *w = arg;
	void *p = rszshm_alloc(w->a, 16);

	if (!p || rszshm_dealloc(w->a, p) != 0)
		return NULL;
	pthread_cancel(pthread_self());
	p = rszshm_alloc(w->b, 16);
	if (p)
		rszshm_dealloc(w->b, p);
	pthread_testcancel();
	return NULL;
}

/* A thread cancelled inside a claim leaves no lock behind: its exit, and
 * the next claim in the process, go through. */
START_TEST(test_cancel_during_a_claim_leaves_no_lock_held)
{
	struct rszshm a, b;
	struct two w = { &a, &b };
	pthread_t t;
	void *rc;

	mk_heap(&a, "cancel-a");
	mk_heap(&b, "cancel-b");
	churn(&b, 64, 9);	/* this thread owns a slot in b */
	ck_assert_int_eq(pthread_create(&t, NULL, cancelled_thread, &w), 0);
	ck_assert_int_eq(pthread_join(t, &rc), 0);
	ck_assert_ptr_eq(rc, PTHREAD_CANCELED);
	claim_in_new_thread(&b);
	claim_in_new_thread(&a);
	ck_assert_uint_eq(live_blocks(&a), 0);
	ck_assert_uint_eq(live_blocks(&b), 0);
	assert_consistent(&a);
	assert_consistent(&b);
	rszshm_dt(&a);
	rszshm_dt(&b);
}
END_TEST

/* ------------------------------------------------------- double frees */

static void *free_thread(void *arg)
{
	void **a = arg;

	errno = 0;
	return (void *)(uintptr_t)(rszshm_dealloc(a[0], a[1]) == -1 && errno == EINVAL);
}

START_TEST(test_cached_and_pending_blocks_cannot_be_freed_again)
{
	struct rszshm r;
	char *p, *q;
	void *args[2], *ok;
	pthread_t t;

	mk_heap(&r, "double");
	p = rszshm_alloc(&r, 48);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);	/* into our cache */
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, p), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_uint_eq(rszshm_usable_size(&r, p), 0);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(rszshm_realloc(&r, p, 100));
	ck_assert_int_eq(errno, EINVAL);
	/* From another thread, whose cache does not hold it. */
	args[0] = &r;
	args[1] = p;
	ck_assert_int_eq(pthread_create(&t, NULL, free_thread, args), 0);
	ck_assert_int_eq(pthread_join(t, &ok), 0);
	ck_assert_ptr_eq(ok, (void *)1);
	ck_assert_uint_eq(live_blocks(&r), 0);

	/* A block freed by a thread with no cache waits in a pending slot;
	 * a caching thread must not take it for live. */
	q = rszshm_alloc(&r, 48);
	ck_assert_ptr_nonnull(q);
	ck_assert_ptr_eq(q, p);
	rszshm__heap_nocache(&r);
	ck_assert_int_eq(rszshm_dealloc(&r, q), 0);
	args[1] = q;
	ck_assert_int_eq(pthread_create(&t, NULL, free_thread, args), 0);
	ck_assert_int_eq(pthread_join(t, &ok), 0);
	ck_assert_ptr_eq(ok, (void *)1);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* A thread that frees one block of a cached class and exits: its cache,
 * that block in it, goes back to the arena (the block keeps the mark). */
static void *free_and_exit_thread(void *arg)
{
	void **a = arg;

	a[1] = rszshm_alloc(a[0], 48);
	return (void *)(uintptr_t)(a[1] && rszshm_dealloc(a[0], a[1]) == 0);
}

START_TEST(test_block_given_back_to_its_arena_cannot_be_freed_again)
{
	struct rszshm r;
	void *args[2], *ok;
	pthread_t t;

	mk_heap(&r, "given-back");
	args[0] = &r;
	ck_assert_int_eq(pthread_create(&t, NULL, free_and_exit_thread, args), 0);
	ck_assert_int_eq(pthread_join(t, &ok), 0);
	ck_assert_ptr_eq(ok, (void *)1);
	ck_assert_uint_eq(rszshm__heap_cached(&r), 0);
	ck_assert_uint_eq(live_blocks(&r), 0);
	/* Its bit is clear now: a free through this thread's cache must
	 * look at the bitmap, not only at the mark. */
	ck_assert_ptr_nonnull(rszshm_alloc(&r, 16));	/* this thread has a slot */
	errno = 0;
	ck_assert_int_eq(rszshm_dealloc(&r, args[1]), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(live_blocks(&r), 1);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* Blocks flushed from a cache keep its mark in their arena; handed out
 * again through refills, they must carry none, or each of their frees
 * would look through every thread's cache.  Blocks of 1 KiB, two
 * segments' worth: the second round gets only blocks the first marked. */
START_TEST(test_blocks_from_an_arena_carry_no_mark)
{
	enum { N = 128 };
	uint64_t *p[N];
	struct rszshm r;
	unsigned i, round;

	mk_heap(&r, "unmarked");
	for (round = 0; round < 3; round++) {
		for (i = 0; i < N; i++) {
			p[i] = rszshm_alloc(&r, 1024);
			ck_assert_ptr_nonnull(p[i]);
			ck_assert_uint_eq(p[i][1], 0);
		}
		for (i = 0; i < N; i++)
			ck_assert_int_eq(rszshm_dealloc(&r, p[i]), 0);
	}
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* A live block that holds the cache's mark by chance is still freed. */
START_TEST(test_live_block_holding_the_mark_is_freed)
{
	uint64_t *p, *q, mark;
	struct rszshm r;

	mk_heap(&r, "mark");
	p = rszshm_alloc(&r, 32);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(rszshm_dealloc(&r, p), 0);
	mark = p[1];		/* what the cache wrote in the free block */
	ck_assert_uint_ne(mark, 0);
	q = rszshm_alloc(&r, 32);
	ck_assert_ptr_eq(q, p);
	ck_assert_uint_eq(q[1], 0);	/* taken off when handed out */
	q[1] = mark;			/* user data that looks like it */
	ck_assert_int_eq(rszshm_dealloc(&r, q), 0);
	q = rszshm_alloc(&r, 32);
	ck_assert_ptr_eq(q, p);
	ck_assert_int_eq(rszshm_dealloc(&r, q), 0);
	ck_assert_uint_eq(live_blocks(&r), 0);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* ------------------------------------------------------------- damage */

START_TEST(test_damaged_slot_is_reported_and_never_followed)
{
	struct rszshm__slot_view v;
	char msg[256];
	struct rszshm r;
	uint64_t save, me;
	uint32_t n0;
	char *p;
	int k;

	mk_heap(&r, "damage");
	churn(&r, 64, 5);
	me = my_owner(&r);
	ck_assert_int_ge(k = slot_of(&r, me, &v), 0);
	ck_assert_uint_gt(n0 = v.n[0], 1);

	v.n[0] = v.cap + 1;				/* count past the cache */
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "caches") != NULL, "%s", msg);
	v.n[0] = n0;

	save = v.blk[0];
	v.blk[0] = (uintptr_t)r.hdr - 4096;		/* outside the region */
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "not in a run") != NULL, "%s", msg);
	v.blk[0] = v.blk[1];				/* one block cached twice */
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
	ck_assert_msg(strstr(msg, "free twice") != NULL, "%s", msg);
	v.blk[0] = save;
	assert_consistent(&r);

	/* An entry outside the region is dropped, never handed out. */
	v.blk[n0 - 1] = (uintptr_t)r.hdr + r.hdr->max + 4096;
	p = rszshm_alloc(&r, 16);
	ck_assert_ptr_nonnull(p);
	ck_assert(p > (char *)r.hdr && p + 16 <= (char *)r.hdr + r.hdr->flen);
	/* Two bad entries on top of a nearly full cache: both dropped. */
	{
		void *q[40];
		unsigned i, m;

		for (i = 0; i < 40; i++)
			ck_assert_ptr_nonnull(q[i] = rszshm_alloc(&r, 16));
		/* Free until the cache holds 12: frees count up to 16, a flush
		 * drops to 8, so 12 comes within 40. */
		for (m = 0; m < 40 && v.n[0] != 12; m++)
			ck_assert_int_eq(rszshm_dealloc(&r, q[m]), 0);
		ck_assert_uint_eq(v.n[0], 12);
		v.blk[11] = (uintptr_t)r.hdr + r.hdr->max + 4096;
		v.blk[10] = (uintptr_t)r.hdr - 65536;
		p = rszshm_alloc(&r, 16);
		ck_assert_ptr_nonnull(p);
		ck_assert(p > (char *)r.hdr && p + 16 <= (char *)r.hdr + r.hdr->flen);
		ck_assert_uint_eq(v.n[0], 9);
		for (i = m; i < 40; i++)
			ck_assert_int_eq(rszshm_dealloc(&r, q[i]), 0);
		n0 = v.n[0];
	}
	v.n[0] = 1000;					/* a damaged count */
	p = rszshm_alloc(&r, 16);
	ck_assert_ptr_nonnull(p);
	ck_assert(p > (char *)r.hdr && p + 16 <= (char *)r.hdr + r.hdr->flen);
	ck_assert_uint_le(v.n[0], v.cap);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

/* ---------------------------------------------------------- kill -9 */

struct progress {
	uint64_t count;		/* operations done by the child */
	uint64_t tab[64];	/* its live blocks */
};

/*
 * Each trial: a child allocates and frees its own blocks of 16..1024 bytes
 * (its thread cache's fast path, refills and flushes), recording each live
 * block in a table in the region and counting, with no system call in its
 * loop; the parent kills it once the count passes a random mark, frees
 * what the table names, and checks that at most one block per killed
 * child is lost, the heap checks clean, and that each child's claim
 * adopted the cache its killed predecessor left.
 */
START_TEST(test_kill_during_cached_alloc_and_free_loses_at_most_one_block)
{
	uint64_t seed = 77, lost = 0, adopted0, want;
	struct progress *pg;
	struct rszshm r;
	unsigned t, i;
	pid_t pid;

	mk_heap(&r, "kill-own");
	pg = rszshm_zalloc(&r, sizeof(*pg));
	ck_assert_ptr_nonnull(pg);
	adopted0 = rszshm__heap_adoptions(&r);
	for (t = 0; t < TRIALS; t++) {
		memset(pg, 0, sizeof(*pg));
		pid = test_fork();
		if (pid == 0) {
			uint64_t g = seed + t;

			for (i = 0;; i = (i + 1) % 64) {
				void *p;

				if (pg->tab[i]) {
					if (rszshm_dealloc(&r, (void *)(uintptr_t)pg->tab[i]) != 0)
						_exit(1);
					pg->tab[i] = 0;
				}
				if (!(p = rszshm_alloc(&r, 16 + (size_t)(xorshift(&g) % 1009))))
					_exit(2);
				__atomic_store_n(&pg->tab[i], (uintptr_t)p, __ATOMIC_RELEASE);
				__atomic_store_n(&pg->count, pg->count + 1, __ATOMIC_RELEASE);
			}
		}
		want = 1 + xorshift(&seed) % 2000;
		while (__atomic_load_n(&pg->count, __ATOMIC_ACQUIRE) < want)
			sched_yield();
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
		/* A block whose free was under way may already be free. */
		for (i = 0; i < 64; i++)
			if (pg->tab[i] && rszshm_dealloc(&r, (void *)(uintptr_t)pg->tab[i]) != 0)
				ck_assert_int_eq(errno, EINVAL);
		assert_consistent(&r);
		ck_assert_uint_le(live_blocks(&r) - 1, lost + 1);
		lost = live_blocks(&r) - 1;
	}
	ck_assert_uint_le(lost, TRIALS);
	/* Each child's claim adopted its predecessor's cache. */
	ck_assert_uint_ge(rszshm__heap_adoptions(&r) - adopted0, TRIALS - 1);
	claim_in_new_thread(&r);
	ck_assert_uint_eq(rszshm__heap_adoptions(&r) - adopted0, TRIALS);
	assert_consistent(&r);
	rszshm_dt(&r);
}
END_TEST

#define NTHREADS 48u

struct crowd {
	struct rszshm *r;
	int ready[2], hold[2];
};

static void *crowd_thread(void *arg)
{
	struct crowd *cw = arg;

	churn(cw->r, 192, (uint64_t)(uintptr_t)&arg);
	test_post(cw->ready[1]);
	test_wait_byte(cw->hold[0]);	/* never comes: the process ends */
	return NULL;
}

/* A child whose NTHREADS threads fill their caches, then ends without
 * detaching: NTHREADS dead slots full of blocks. */
static void leave_dead_slots(struct rszshm *r)
{
	struct crowd cw = { .r = r };
	pthread_t t;
	unsigned i;
	pid_t pid;

	ck_assert_int_eq(pipe(cw.ready), 0);
	ck_assert_int_eq(pipe(cw.hold), 0);
	pid = test_fork();
	if (pid == 0) {
		for (i = 0; i < NTHREADS; i++)
			if (pthread_create(&t, NULL, crowd_thread, &cw) != 0)
				_exit(1);
		for (i = 0; i < NTHREADS; i++)
			test_wait_byte(cw.ready[0]);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	close(cw.ready[0]);
	close(cw.ready[1]);
	close(cw.hold[0]);
	close(cw.hold[1]);
}

/* Fork a child that claims a slot (adopting every dead slot's cache),
 * killing itself at the @die-th point where a block is in motion. */
static pid_t adopter(struct rszshm *r, unsigned long die)
{
	pid_t pid = test_fork();

	if (pid == 0) {
		void *p;

		rszshm__heap_die_after(die);
		p = rszshm_alloc(r, 24);
		_exit(p && rszshm_dealloc(r, p) == 0 ? 0 : 1);
	}
	return pid;
}

/*
 * Each trial: NTHREADS threads of a child fill their caches and die with
 * it; a second child claims a slot, which adopts those NTHREADS caches one
 * after the other, and dies by SIGKILL at a random one of the points where
 * a block is in motion (taken over, counted out of a cache, given back to
 * its arena; the library's test hook raises the signal there).  Then a
 * thread of this process claims a slot, adopting what is left (the killed
 * adopter's own slot included): the heap checks clean, no cache is left
 * behind, and at most one block per killed adopter is lost.
 */
START_TEST(test_kill_during_adoption_loses_at_most_one_block)
{
	uint64_t seed = 4711, lost = 0, a0, a1, full, killed = 0, mid = 0;
	struct rszshm r;
	unsigned t;
	pid_t pid;
	int st;

	mk_heap(&r, "kill-adopt");
	for (t = 0; t < TRIALS; t++) {
		leave_dead_slots(&r);
		ck_assert_uint_gt(full = rszshm__heap_cached(&r), NTHREADS);
		a0 = rszshm__heap_adoptions(&r);
		/* Two points per block and three per slot: most draws land
		 * inside the adoption, a few past it. */
		pid = adopter(&r, 1 + xorshift(&seed) % (2 * full + 4 * NTHREADS));
		st = test_wait(pid);
		ck_assert_msg(st == 128 + SIGKILL || st == 0, "adopter: %d", st);	/* or done */
		a1 = rszshm__heap_adoptions(&r);
		killed += st != 0;
		mid += st != 0 && a1 - a0 < NTHREADS;
		assert_consistent(&r);
		claim_in_new_thread(&r);
		ck_assert_uint_eq(rszshm__heap_cached(&r), 0);	/* the claimer exited too */
		assert_consistent(&r);
		ck_assert_uint_le(live_blocks(&r), lost + 1);
		lost = live_blocks(&r);
	}
	/* The draws did land inside adoptions. */
	ck_assert_msg(mid >= TRIALS / 2, "only %" PRIu64 " of %" PRIu64 " kills landed mid-adoption",
		      mid, killed);
	rszshm_dt(&r);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("cache");

	TEST_ADD(s, test_thread_exit_gives_its_cache_back);
	TEST_ADD(s, test_detach_gives_back_every_thread_cache);
	TEST_ADD(s, test_forked_child_never_uses_the_parent_cache);
	TEST_ADD(s, test_owner_with_a_reused_thread_id_is_adopted);
	TEST_ADD(s, test_threads_past_the_slots_allocate_through_the_arenas);
	TEST_ADD_T(s, test_cancel_during_a_claim_leaves_no_lock_held, 20);
	TEST_ADD(s, test_cached_and_pending_blocks_cannot_be_freed_again);
	TEST_ADD(s, test_block_given_back_to_its_arena_cannot_be_freed_again);
	TEST_ADD(s, test_blocks_from_an_arena_carry_no_mark);
	TEST_ADD(s, test_live_block_holding_the_mark_is_freed);
	TEST_ADD(s, test_damaged_slot_is_reported_and_never_followed);
	TEST_ADD_T(s, test_kill_during_cached_alloc_and_free_loses_at_most_one_block, 120);
	TEST_ADD_T(s, test_kill_during_adoption_loses_at_most_one_block, 180);
	return s;
}

const struct test_helper test_helpers[] = {
	{ NULL, NULL },
};
