/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-lock.c - the robust locks (lib/lock.c): no wait for ever on a lock
 * word that came with the file, and no sharing across PID namespaces.
 *
 * Every test that could hang on a regression runs the call in a forked child
 * under alarm(): a hang is a failed test, not a stuck suite.  Processes
 * synchronise with pipes and waitpid only; the one test that must see a
 * waiter keep waiting counts the waiter's bounded waits (a counter), not
 * time.  The lock words are written through lib/internal.h's view of the
 * header (struct rszshm__shared) and glibc's pthread_mutex_t fields.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

#define CCHECK(cond) HCHECK(cond)

enum which { GROW, USER, HEAP, REC, NLOCKS };

static pthread_mutex_t *lock_of(struct rszshm *r, enum which w)
{
	struct rszshm__shared *s = rszshm__shared(r->hdr);

	switch (w) {
	case GROW: return &s->grow_lock;
	case USER: return &s->user_lock;
	case HEAP: return &s->heap_lock;
	default: return &s->rec_lock;
	}
}

static unsigned *word_of(pthread_mutex_t *m)
{
	return (unsigned *)&m->__data.__lock;
}

static void mk_heap(struct rszshm *r, const char *leaf, char *path, size_t len)
{
	test_path(path, len, "%s", leaf);
	test_track(path);
	ck_assert_msg(rszshm_mk_flags(r, 1 << 20, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL,
		      "mk %s: %s", path, strerror(errno));
	ck_assert_int_eq(rszshm_rec_put(r, "before", 1, "x", 2), 0);
}

/* cp(1): read the file and write a new one. */
static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ssize_t n;

	test_track(to);
	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	close(out);
}

/* Attached in a new process, @path must serve every locking call: the
 * user lock, the heap, the records, growth; and check consistent. */
static void use_in_child(const char *path)
{
	pid_t pid = test_fork();

	if (pid == 0) {
		struct rszshm r;
		char msg[160] = "";
		int rc;

		alarm(20);	/* a hang is a failure */
		CCHECK(rszshm_at(&r, path) != NULL);
		rc = rszshm_lock(&r);
		CCHECK(rc == 0 || rc == 1);
		CCHECK(rszshm_unlock(&r) == 0);
		CCHECK(rszshm_alloc(&r, 100) != NULL);
		CCHECK(rszshm_rec_put(&r, "after", 1, "yz", 3) == 0);
		CCHECK(rszshm_grow(&r) == 1);
		if (rszshm_check(&r, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "check: %s\n", msg);
			_exit(1);
		}
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
}

/* ------------------------------------------------- a file copied while locked */

/*
 * A process holds lock @w of a region and stays alive; the file is copied;
 * a new process attaches the copy.  The copy's lock word names a live thread
 * that holds the lock of the *original*: the copy must still be usable.
 */
static void copy_while_held(enum which w, const char *leaf)
{
	char path[RSZSHM_PATH_MAX], copy[RSZSHM_PATH_MAX + 8];
	int up[2], down[2];
	pid_t holder;

	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	test_path(path, sizeof(path), "%s", leaf);
	test_track(path);
	holder = test_fork();
	if (holder == 0) {
		struct rszshm r;

		CCHECK(rszshm_mk_flags(&r, 1 << 20, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL);
		CCHECK(rszshm_rec_put(&r, "before", 1, "x", 2) == 0);
		CCHECK(rszshm__lock(lock_of(&r, w)) == 0);
		test_post(up[1]);
		test_wait_byte(down[0]);
		_exit(0);
	}
	test_wait_byte(up[0]);
	snprintf(copy, sizeof(copy), "%s.copy", path);
	copy_file(path, copy);
	use_in_child(copy);
	test_post(down[1]);
	ck_assert_int_eq(test_wait(holder), 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
}

START_TEST(test_copy_while_grow_lock_held_is_usable)
{
	copy_while_held(GROW, "copy-grow");
}
END_TEST

START_TEST(test_copy_while_user_lock_held_is_usable)
{
	copy_while_held(USER, "copy-user");
}
END_TEST

START_TEST(test_copy_while_heap_lock_held_is_usable)
{
	copy_while_held(HEAP, "copy-heap");
}
END_TEST

START_TEST(test_copy_while_rec_lock_held_is_usable)
{
	copy_while_held(REC, "copy-rec");
}
END_TEST

/*
 * As above for a lock outside the header (the heap's arena locks are such):
 * a robust lock in a heap block, held by a live process, the file copied.
 * The new process's attach rewrites only the header's locks, so this one is
 * recovered by the holder check: the holder does not map the copy.
 */
START_TEST(test_copy_while_heap_block_lock_held_is_usable)
{
	char path[RSZSHM_PATH_MAX], copy[RSZSHM_PATH_MAX + 8];
	int up[2], down[2];
	uint64_t addr;
	pid_t holder, user;

	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	test_path(path, sizeof(path), "copy-block");
	test_track(path);
	holder = test_fork();
	if (holder == 0) {
		struct rszshm r;
		pthread_mutex_t *m;

		CCHECK(rszshm_mk_flags(&r, 1 << 20, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL);
		CCHECK((m = rszshm_alloc(&r, sizeof(*m))) != NULL);
		CCHECK(rszshm__lock_init(m) == 0);
		CCHECK(rszshm__lock(m) == 0);
		addr = (uintptr_t)m;
		CCHECK(write(up[1], &addr, sizeof(addr)) == sizeof(addr));
		test_wait_byte(down[0]);
		_exit(0);
	}
	ck_assert_int_eq(read(up[0], &addr, sizeof(addr)), sizeof(addr));
	snprintf(copy, sizeof(copy), "%s.copy", path);
	copy_file(path, copy);
	user = test_fork();
	if (user == 0) {
		struct rszshm r;
		pthread_mutex_t *m = (pthread_mutex_t *)(uintptr_t)addr;

		alarm(20);
		CCHECK(rszshm_at(&r, copy) != NULL);
		CCHECK(rszshm__lock(m) == 1);
		CCHECK(rszshm__lock_consistent(m) == 0);
		CCHECK(rszshm__unlock(m) == 0);
		CCHECK(rszshm__lock(m) == 0);
		CCHECK(rszshm__unlock(m) == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(user), 0);
	test_post(down[1]);
	ck_assert_int_eq(test_wait(holder), 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
}
END_TEST

/* ------------------------------------------- holders that cannot be alive */

/* A pid that is free now: a child's, after it is reaped. */
static pid_t dead_pid(void)
{
	pid_t pid = test_fork();

	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(test_wait(pid), 0);
	return pid;
}

/* In a child: take lock @w through the public call that takes it; it must
 * return (having repaired what it guards). */
static void child_takes(struct rszshm *inherited, const char *path, enum which w)
{
	pid_t pid = test_fork();

	if (pid == 0) {
		struct rszshm r;
		char msg[160] = "";

		alarm(20);
		if (inherited)
			CCHECK(rszshm_dt(inherited) == 0);
		CCHECK(rszshm_at(&r, path) != NULL);
		switch (w) {
		case USER:
			CCHECK(rszshm_lock(&r) == 1);	/* as if its holder died */
			CCHECK(rszshm_unlock(&r) == 0);
			CCHECK(rszshm_lock(&r) == 0);
			CCHECK(rszshm_unlock(&r) == 0);
			break;
		case GROW:
			CCHECK(rszshm_grow(&r) == 1);
			break;
		case HEAP:
			/* A large block: taken under the heap lock. */
			CCHECK(rszshm_alloc(&r, 128 << 10) != NULL);
			CCHECK(rszshm__heap_repairs(&r) == 1);
			break;
		default:
			CCHECK(rszshm_rec_put(&r, "after", 1, "yz", 3) == 0);
			break;
		}
		if (rszshm_check(&r, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "check: %s\n", msg);
			_exit(1);
		}
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
}

/*
 * With the region attached here (so a new attacher is not alone and
 * rewrites nothing), each lock word is set to a thread id that does not
 * exist: a new process's call must recover it as if the holder had died.
 */
START_TEST(test_holder_that_does_not_exist_is_recovered)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	enum which w;

	mk_heap(&r, "no-holder", path, sizeof(path));
	for (w = 0; w < NLOCKS; w++) {
		pthread_mutex_t *m = lock_of(&r, w);
		pid_t gone = dead_pid();

		__atomic_store_n(word_of(m), (unsigned)gone, __ATOMIC_RELEASE);
		m->__data.__owner = gone;
		child_takes(&r, path, w);
		ck_assert_uint_eq(__atomic_load_n(word_of(m), __ATOMIC_ACQUIRE), 0);
	}
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* A live process that took the user lock and then detached (unmapped the
 * region) can never unlock it: the next locker recovers it. */
START_TEST(test_holder_that_detached_is_recovered)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	int up[2], down[2];
	pid_t holder;

	mk_heap(&r, "detached", path, sizeof(path));
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	holder = test_fork();
	if (holder == 0) {
		CCHECK(rszshm_lock(&r) == 0);
		CCHECK(rszshm_dt(&r) == 0);
		test_post(up[1]);
		test_wait_byte(down[0]);
		_exit(0);
	}
	test_wait_byte(up[0]);
	child_takes(&r, path, USER);
	test_post(down[1]);
	ck_assert_int_eq(test_wait(holder), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* --------------------------------------------------- a live holder is kept */

struct waiter {
	struct rszshm *r;
	int rc;
	int done;
};

static void *wait_lock(void *arg)
{
	struct waiter *w = arg;

	w->rc = rszshm_lock(w->r);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	if (w->rc == 0 && rszshm_unlock(w->r) < 0)
		w->rc = -2;
	return NULL;
}

/*
 * A live holder that maps the region keeps its lock however long it holds
 * it: a waiter goes through several bounded waits and liveness checks and
 * takes the lock only when the holder unlocks, with 0 (not "holder died").
 */
START_TEST(test_live_holder_is_waited_for)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	int up[2], down[2];
	pid_t holder, waiter;

	mk_heap(&r, "live", path, sizeof(path));
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	holder = test_fork();
	if (holder == 0) {
		CCHECK(rszshm_lock(&r) == 0);
		test_post(up[1]);
		test_wait_byte(down[0]);
		CCHECK(rszshm_unlock(&r) == 0);
		_exit(0);
	}
	test_wait_byte(up[0]);
	waiter = test_fork();
	if (waiter == 0) {
		struct waiter w = { .r = &r };
		pthread_t t;

		alarm(60);
		CCHECK(pthread_create(&t, NULL, wait_lock, &w) == 0);
		while (rszshm__lock_waits() < 4)
			sched_yield();
		CCHECK(!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
		test_post(down[1]);
		CCHECK(pthread_join(t, NULL) == 0);
		CCHECK(w.rc == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(waiter), 0);
	ck_assert_int_eq(test_wait(holder), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ------------------------------------------------------------- garbage */

struct garbage {
	const char *what;
	unsigned word;
	int kind_delta;		/* added to __kind */
};

static const struct garbage garbage[] = {
	{ "waiters bit without a holder", FUTEX_WAITERS, 0 },
	{ "thread id past the kernel's limit", FUTEX_TID_MASK, 0 },
	{ "every bit set", 0xffffffffu, 0 },
	{ "a holder beside the died bit", FUTEX_OWNER_DIED | 5, 0 },
	{ "type fields changed", 0, 1 },
	{ "type fields changed, held", 7, -2 },
	{ "priority-inheritance kind", 0, 32 },
};

/* Each garbage value in the user lock: rszshm_check reports it (but for
 * words that are merely held), and rszshm_lock returns - taken as if its
 * holder died, or refused with EBADMSG - never waits for ever. */
START_TEST(test_garbage_lock_word_never_hangs)
{
	char path[RSZSHM_PATH_MAX], msg[160];
	struct rszshm r;
	size_t i;

	mk_heap(&r, "garbage", path, sizeof(path));
	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		const struct garbage *g = &garbage[i];
		pthread_mutex_t *m = lock_of(&r, USER), saved = *m;
		pid_t pid;

		__atomic_store_n(word_of(m), g->word, __ATOMIC_RELEASE);
		m->__data.__kind += g->kind_delta;
		msg[0] = '\0';
		ck_assert_msg(rszshm_check(&r, msg, sizeof(msg)) == 1, "%s: check passed", g->what);
		pid = test_fork();
		if (pid == 0) {
			struct rszshm c;
			int rc;

			alarm(20);
			CCHECK(rszshm_dt(&r) == 0);
			CCHECK(rszshm_at(&c, path) != NULL);
			rc = rszshm_lock(&c);
			if (rc == -1) {
				CCHECK(errno == EBADMSG);
			} else {
				CCHECK(rc == 1);
				CCHECK(rszshm_unlock(&c) == 0);
			}
			_exit(0);
		}
		ck_assert_msg(test_wait(pid) == 0, "%s: lock did not return as it should", g->what);
		*m = saved;
	}
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* rszshm_check names the damaged lock of the header's lock area. */
START_TEST(test_check_reports_damaged_lock_area)
{
	static const char *const names[] = { "grow lock", "user lock", "heap lock",
					     "record index lock" };
	char path[RSZSHM_PATH_MAX], msg[160];
	struct rszshm r;
	enum which w;

	mk_heap(&r, "check-locks", path, sizeof(path));
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 0);
	for (w = 0; w < NLOCKS; w++) {
		pthread_mutex_t *m = lock_of(&r, w), saved = *m;

		m->__data.__kind ^= 0x40;
		msg[0] = '\0';
		ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
		ck_assert_msg(strstr(msg, names[w]) != NULL, "message: %s", msg);
		*m = saved;
		__atomic_store_n(word_of(m), FUTEX_WAITERS, __ATOMIC_RELEASE);
		ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
		ck_assert_msg(strstr(msg, names[w]) != NULL, "message: %s", msg);
		*m = saved;
		m->__data.__owner = -3;
		ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 1);
		*m = saved;
	}
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * The first writer to attach a region no one has attached rewrites its
 * lock area: damaged type fields are made good and held words become
 * "holder died", even words naming a live thread (the test's own).
 */
START_TEST(test_first_attacher_rewrites_lock_area)
{
	char path[RSZSHM_PATH_MAX], msg[160];
	struct rszshm r;

	mk_heap(&r, "first", path, sizeof(path));
	lock_of(&r, USER)->__data.__kind ^= 0x40;
	__atomic_store_n(word_of(lock_of(&r, GROW)), (unsigned)getpid(), __ATOMIC_RELEASE);
	__atomic_store_n(word_of(lock_of(&r, HEAP)), FUTEX_WAITERS, __ATOMIC_RELEASE);
	ck_assert_int_eq(rszshm_dt(&r), 0);

	pid_t pid = test_fork();

	if (pid == 0) {
		struct rszshm c;

		alarm(20);
		CCHECK(rszshm_at(&c, path) != NULL);
		if (rszshm_check(&c, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "check: %s\n", msg);
			_exit(1);
		}
		CCHECK(rszshm_lock(&c) == 0);
		CCHECK(rszshm_unlock(&c) == 0);
		CCHECK(rszshm_grow(&c) == 1);
		CCHECK(rszshm_alloc(&c, 128 << 10) != NULL);
		CCHECK(rszshm__heap_repairs(&c) == 1);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
}
END_TEST

/* ------------------------------------------- the attach guard in one call */

/*
 * A writer attaching a region whose header needs no rewrite (its locks
 * unheld and sound, this namespace recorded) takes the attach guard with
 * one call, alone or beside another writer; one whose header needs the
 * rewrite takes the exclusive lock and the shared one, and rewrites.
 */
START_TEST(test_settled_header_attaches_with_one_guard_call)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r, c;
	unsigned long before;

	mk_heap(&r, "settled", path, sizeof(path));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	before = rszshm__sys_ofd_locks();
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_uint_eq(rszshm__sys_ofd_locks() - before, 1);
	/* Beside an attached writer: a child drops the handle it inherited
	 * (the parent's descriptor keeps the guard) and attaches by name. */
	pid_t pid = test_fork();

	if (pid == 0) {
		CCHECK(rszshm_dt(&r) == 0);
		before = rszshm__sys_ofd_locks();
		CCHECK(rszshm_at(&c, path) != NULL);
		CCHECK(rszshm__sys_ofd_locks() - before == 1);
		CCHECK(rszshm_dt(&c) == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);

	/* A lock left held (by a thread that does not map the region once
	 * detached): the next first attacher rewrites it. */
	__atomic_store_n(word_of(lock_of(&r, GROW)), (unsigned)getpid(), __ATOMIC_RELEASE);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	before = rszshm__sys_ofd_locks();
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_uint_eq(rszshm__sys_ofd_locks() - before, 2);
	ck_assert_uint_eq(__atomic_load_n(word_of(lock_of(&r, GROW)), __ATOMIC_ACQUIRE),
			  FUTEX_OWNER_DIED);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

static pthread_mutex_t *held_meanwhile;

static void hold_meanwhile(int point)
{
	if (point != 2 || !held_meanwhile)
		return;
	__atomic_store_n(word_of(held_meanwhile), (unsigned)getpid(), __ATOMIC_RELEASE);
	held_meanwhile = NULL;	/* once */
}

/*
 * The header was settled when a first attacher looked, and a lock was
 * left held before it took the shared lock: it looks again under that
 * lock, and rewrites the lock as any first attacher does.
 */
START_TEST(test_lock_held_between_look_and_guard_is_rewritten)
{
	char path[RSZSHM_PATH_MAX];
	pthread_mutex_t *grow;
	struct rszshm r;

	mk_heap(&r, "held-meanwhile", path, sizeof(path));
	grow = lock_of(&r, GROW);	/* the same address once attached again */
	ck_assert_int_eq(rszshm_dt(&r), 0);
	held_meanwhile = grow;
	rszshm__lock_hook = hold_meanwhile;
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	rszshm__lock_hook = NULL;
	ck_assert_ptr_null(held_meanwhile);	/* the hook ran */
	ck_assert_ptr_eq(lock_of(&r, GROW), grow);
	ck_assert_uint_eq(__atomic_load_n(word_of(grow), __ATOMIC_ACQUIRE), FUTEX_OWNER_DIED);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/* ------------------------------------------------------ first attachers */

static void die_here(int point)
{
	if (point == 1)
		raise(SIGKILL);
}

/*
 * First attachers of a region no one has attached, whose lock area is
 * damaged: one killed half-way through rewriting it, then eight at once.
 * None is wedged; the user lock is handed on as "holder died" exactly once;
 * the region checks consistent.
 */
START_TEST(test_first_attachers_race_and_die_midway)
{
	enum { N = 8 };
	char path[RSZSHM_PATH_MAX], msg[160];
	struct rszshm r;
	int go[2], ready[2], go2[2], i, died = 0;
	pid_t pids[N], pid;

	mk_heap(&r, "first-race", path, sizeof(path));
	lock_of(&r, GROW)->__data.__kind ^= 0x40;
	__atomic_store_n(word_of(lock_of(&r, USER)), FUTEX_WAITERS, __ATOMIC_RELEASE);
	__atomic_store_n(word_of(lock_of(&r, REC)), (unsigned)getpid(), __ATOMIC_RELEASE);
	ck_assert_int_eq(rszshm_dt(&r), 0);

	pid = test_fork();
	if (pid == 0) {
		struct rszshm c;

		rszshm__lock_hook = die_here;
		rszshm_at(&c, path);
		_exit(3);	/* the hook did not run */
	}
	ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);

	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go2), 0);
	for (i = 0; i < N; i++) {
		pids[i] = test_fork();
		if (pids[i] == 0) {
			struct rszshm c;
			char ch;
			int rc;

			alarm(20);
			close(go[1]);
			close(go2[1]);
			CCHECK(read(go[0], &ch, 1) == 0);
			CCHECK(rszshm_at(&c, path) != NULL);
			/* All attached before any grows: an attach racing a
			 * grow is the attach path's concern, not this test's. */
			test_post(ready[1]);
			CCHECK(read(go2[0], &ch, 1) == 0);
			rc = rszshm_lock(&c);
			CCHECK(rc == 0 || rc == 1);
			CCHECK(rszshm_unlock(&c) == 0);
			CCHECK(rszshm_rec_put(&c, "k", 1, "v", 2) == 0);
			CCHECK(rszshm_grow(&c) == 1);
			_exit(10 + rc);
		}
	}
	close(go[0]);
	close(go[1]);
	for (i = 0; i < N; i++)
		test_wait_byte(ready[0]);
	close(go2[0]);
	close(go2[1]);
	close(ready[0]);
	close(ready[1]);
	for (i = 0; i < N; i++) {
		int st = test_wait(pids[i]);

		ck_assert_msg(st == 10 || st == 11, "attacher %d: status %d", i, st);
		died += st == 11;
	}
	ck_assert_int_eq(died, 1);
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_msg(rszshm_check(&r, msg, sizeof(msg)) == 0, "check: %s", msg);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* A writer that attaches while another is attached rewrites nothing: the
 * other's held lock stays held. */
START_TEST(test_attach_while_attached_keeps_locks)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	int up[2], down[2];
	pid_t holder, pid;

	mk_heap(&r, "keep", path, sizeof(path));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	holder = test_fork();
	if (holder == 0) {
		struct rszshm c;

		CCHECK(rszshm_at(&c, path) != NULL);
		CCHECK(rszshm_lock(&c) == 0);
		test_post(up[1]);
		test_wait_byte(down[0]);
		CCHECK(rszshm_unlock(&c) == 0);
		_exit(0);
	}
	test_wait_byte(up[0]);
	pid = test_fork();
	if (pid == 0) {
		struct rszshm c;

		alarm(20);
		CCHECK(rszshm_at(&c, path) != NULL);
		CCHECK(rszshm_trylock(&c) == -1 && errno == EBUSY);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	test_post(down[1]);
	ck_assert_int_eq(test_wait(holder), 0);
}
END_TEST

/* ------------------------------------------------------- PID namespaces */

/*
 * Run @fn(arg) as the first process (pid 1) of a new PID namespace; returns
 * the pid of the intermediate child, whose exit status is @fn's.  Skips
 * (returns 0) where PID namespaces cannot be made.
 */
static pid_t in_new_pidns(int (*fn)(const char *, int, int), const char *path, int a, int b)
{
	int p[2];
	pid_t pid;
	char ok;

	ck_assert_int_eq(pipe(p), 0);
	pid = test_fork();
	if (pid == 0) {
		pid_t inner;

		close(p[0]);
		if (unshare(CLONE_NEWPID) < 0) {
			ok = 0;
			CCHECK(write(p[1], &ok, 1) == 1);
			_exit(0);
		}
		ok = 1;
		CCHECK(write(p[1], &ok, 1) == 1);
		inner = fork();
		CCHECK(inner >= 0);
		if (inner == 0)
			_exit(fn(path, a, b));
		_exit(test_wait(inner));
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &ok, 1), 1);
	close(p[0]);
	if (!ok) {
		ck_assert_int_eq(test_wait(pid), 0);
		return 0;
	}
	return pid;
}

/* pid 1 of its namespace: attach, take the user lock, tell @up, wait for
 * @down, unlock. */
static int ns_holder(const char *path, int up, int down)
{
	struct rszshm r;

	alarm(60);
	CCHECK(getpid() == 1);
	CCHECK(rszshm_at(&r, path) != NULL);
	CCHECK(rszshm_lock(&r) == 0);
	test_post(up);
	test_wait_byte(down);
	CCHECK(rszshm_unlock(&r) == 0);
	CCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/* pid 1 of another namespace: same thread id as ns_holder's.  Attaching
 * while that one is attached must fail with EXDEV. */
static int ns_refused(const char *path, int a, int b)
{
	struct rszshm r;

	(void)a;
	(void)b;
	alarm(60);
	CCHECK(getpid() == 1);
	if (rszshm_at(&r, path) != NULL) {
		fprintf(stderr, "attached from a second PID namespace; trylock: %d (errno %d)\n",
			rszshm_trylock(&r), errno);
		return 1;
	}
	CCHECK(errno == EXDEV);
	return 0;
}

/* pid 1 of a third namespace, once no one else is attached: attaches and
 * locks. */
static int ns_alone(const char *path, int a, int b)
{
	struct rszshm r;

	(void)a;
	(void)b;
	alarm(60);
	CCHECK(rszshm_at(&r, path) != NULL);
	CCHECK(rszshm_lock(&r) == 0);
	CCHECK(rszshm_unlock(&r) == 0);
	CCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/*
 * Two processes in two PID namespaces, both pid 1, share one region file:
 * the robust futex protocol could not tell their locks apart, so the second
 * attach is refused with EXDEV while the first is attached; once it has
 * detached, a process of yet another namespace attaches and locks.
 */
START_TEST(test_second_pid_namespace_is_refused)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	int up[2], down[2];
	pid_t first, second, third;

	mk_heap(&r, "pidns", path, sizeof(path));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	first = in_new_pidns(ns_holder, path, up[1], down[0]);
	if (first == 0) {
		fprintf(stderr, "no PID namespaces here (unshare: EPERM?): skipped\n");
		return;
	}
	test_wait_byte(up[0]);
	second = in_new_pidns(ns_refused, path, 0, 0);
	ck_assert_int_ne(second, 0);
	ck_assert_int_eq(test_wait(second), 0);
	test_post(down[1]);
	ck_assert_int_eq(test_wait(first), 0);
	third = in_new_pidns(ns_alone, path, 0, 0);
	ck_assert_int_eq(test_wait(third), 0);
}
END_TEST

/* pid 1 of namespace A, the writers' one: attach; once told (the refused
 * process of namespace B waits as a reader), lock, allocate and free
 * through its thread cache, and put the record B waits for. */
static int ns_writer(const char *path, int up, int down)
{
	char msg[128];
	struct rszshm r;
	void *p;

	alarm(120);
	CCHECK(rszshm_at(&r, path) != NULL);
	test_post(up);
	test_wait_byte(down);
	CCHECK(rszshm_lock(&r) == 0);
	CCHECK(rszshm_unlock(&r) == 0);
	for (int i = 0; i < 200; i++) {
		CCHECK((p = rszshm_alloc(&r, 16 + (size_t)i * 24)) != NULL);
		CCHECK(rszshm_dealloc(&r, p) == 0);
	}
	CCHECK(rszshm_rec_put(&r, "go", 1, "go", 3) == 0);
	CCHECK(rszshm_check(&r, msg, sizeof(msg)) == 0);
	CCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/* pid 1 of namespace B: a writable attach is refused (EXDEV), a read-only
 * one attaches and sleeps until A's writer puts "go". */
static int ns_refused_reader(const char *path, int ready, int unused)
{
	struct rszshm r;
	uint64_t seen = 0;
	char buf[8];

	(void)unused;
	alarm(120);
	CCHECK(rszshm_at(&r, path) == NULL && errno == EXDEV);
	CCHECK(rszshm_at_flags(&r, path, RSZSHM_RDONLY) != NULL);
	test_post(ready);
	CCHECK(rszshm_rec_wait(&r, "go", &seen, -1) == 0);
	CCHECK(rszshm_rec_get(&r, "go", buf, sizeof(buf), NULL) == 3 && !strcmp(buf, "go"));
	CCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/*
 * A process of a second PID namespace, refused as a writer, leaves nothing
 * that blocks the first namespace's writers (a lock, a waiter count, a
 * thread-cache slot): they lock, allocate and put as before; and as a
 * read-only handle it attaches and is woken by their put.
 */
START_TEST(test_refused_namespace_blocks_no_writer_and_reads)
{
	char path[RSZSHM_PATH_MAX], msg[128];
	struct rszshm r;
	int up[2], down[2], ready[2];
	pid_t first, second;

	mk_heap(&r, "pidns-ro", path, sizeof(path));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	ck_assert_int_eq(pipe(ready), 0);
	first = in_new_pidns(ns_writer, path, up[1], down[0]);
	if (first == 0) {
		fprintf(stderr, "no PID namespaces here (unshare: EPERM?): skipped\n");
		return;
	}
	test_wait_byte(up[0]);
	second = in_new_pidns(ns_refused_reader, path, ready[1], 0);
	ck_assert_int_ne(second, 0);
	test_wait_byte(ready[0]);
	test_post(down[1]);
	ck_assert_int_eq(test_wait(first), 0);
	ck_assert_int_eq(test_wait(second), 0);
	/* Everyone gone: this namespace's writer finds the region whole. */
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_int_eq(rszshm_check(&r, msg, sizeof(msg)), 0);
	ck_assert_int_eq(rszshm_rec_get(&r, "go", NULL, 0, NULL), 3);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	for (int i = 0; i < 2; i++) {
		close(up[i]);
		close(down[i]);
		close(ready[i]);
	}
}
END_TEST

/* Processes of one namespace share a region as ever: a second writer joins
 * the first (the namespace check does not refuse its own). */
START_TEST(test_same_pid_namespace_attaches)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	pid_t pid;

	mk_heap(&r, "samens", path, sizeof(path));
	pid = test_fork();
	if (pid == 0) {
		struct rszshm c;

		rszshm_dt(&r);
		CCHECK(rszshm_at(&c, path) != NULL);
		CCHECK(rszshm_lock(&c) == 0);
		CCHECK(rszshm_unlock(&c) == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * The namespace is remembered per process: a child made by a raw clone(2),
 * which runs no fork handlers, into another PID namespace, with a pid other
 * than 1, must look its own namespace up, not use its parent's.  Its parent
 * is attached from the first namespace, so its attach is refused (EXDEV).
 */
static int clone_child_attach(const char *path)
{
	struct rszshm r;

	if (rszshm_at(&r, path) != NULL) {
		fprintf(stderr, "a cloned child of another PID namespace attached\n");
		return 1;
	}
	return errno == EXDEV ? 0 : 2;
}

START_TEST(test_cloned_child_looks_up_its_own_pid_namespace)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	pid_t helper;

	mk_heap(&r, "clonens", path, sizeof(path));
	helper = test_fork();
	if (helper == 0) {
		struct rszshm h;
		int hold[2];
		pid_t first, child;
		long c;
		int st;

		/* Attached afresh, so its namespace is remembered. */
		rszshm_dt(&r);
		CCHECK(rszshm_at(&h, path) != NULL);
		if (unshare(CLONE_NEWPID) < 0)
			_exit(77);
		CCHECK(pipe(hold) == 0);
		first = fork();	/* pid 1 of the new namespace, alive till EOF */
		CCHECK(first >= 0);
		if (first == 0) {
			char b;

			close(hold[1]);
			_exit(read(hold[0], &b, 1) == 0 ? 0 : 1);
		}
		close(hold[0]);
		/* No fork handlers run: the child has the remembered namespace,
		 * and a pid other than 1 in the new one (2, or later where an
		 * emulator's own thread of the first child took 2). */
		c = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
		CCHECK(c >= 0);
		if (c == 0) {
			/* Its copy of the helper's mapping holds the span. */
			rszshm_dt(&h);
			_exit(getpid() > 1 ? clone_child_attach(path) : 3);
		}
		child = (pid_t)c;
		/* The child first: pid 1's exit waits for the others to be reaped. */
		st = test_wait(child);
		close(hold[1]);
		CCHECK(test_wait(first) == 0);
		_exit(st);
	}
	int hst = test_wait(helper);

	if (hst == 77) {
		fprintf(stderr, "no PID namespaces here (unshare: EPERM?): skipped\n");
	} else {
		ck_assert_int_eq(hst, 0);
	}
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("lock");

	TEST_ADD(s, test_copy_while_grow_lock_held_is_usable);
	TEST_ADD(s, test_copy_while_user_lock_held_is_usable);
	TEST_ADD(s, test_copy_while_heap_lock_held_is_usable);
	TEST_ADD(s, test_copy_while_rec_lock_held_is_usable);
	TEST_ADD(s, test_copy_while_heap_block_lock_held_is_usable);
	TEST_ADD(s, test_holder_that_does_not_exist_is_recovered);
	TEST_ADD(s, test_holder_that_detached_is_recovered);
	TEST_ADD(s, test_live_holder_is_waited_for);
	TEST_ADD(s, test_garbage_lock_word_never_hangs);
	TEST_ADD(s, test_check_reports_damaged_lock_area);
	TEST_ADD(s, test_first_attacher_rewrites_lock_area);
	TEST_ADD(s, test_first_attachers_race_and_die_midway);
	TEST_ADD(s, test_attach_while_attached_keeps_locks);
	TEST_ADD(s, test_second_pid_namespace_is_refused);
	TEST_ADD(s, test_refused_namespace_blocks_no_writer_and_reads);
	TEST_ADD(s, test_cloned_child_looks_up_its_own_pid_namespace);
	TEST_ADD(s, test_settled_header_attaches_with_one_guard_call);
	TEST_ADD(s, test_lock_held_between_look_and_guard_is_rewritten);
	TEST_ADD(s, test_same_pid_namespace_attaches);
	return s;
}

const struct test_helper test_helpers[] = {
	{ NULL, NULL },
};
