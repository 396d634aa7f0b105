/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-wait.c - rszshm_rec_wait(), rszshm_rec_wait_any(), rszshm_rec_changes().
 *
 * Waiters run in forked children or exec'd helpers.  Where a test needs a
 * waiter to be asleep before it acts, it watches the waiter counts in the
 * header (the waiter announces itself before sleeping) or the waiter's
 * /proc state; it never sleeps to synchronise.  Timeouts given to the
 * calls under test only turn a lost wake-up into a failure instead of a
 * hang.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

#define REGION_LEN (1 * MiB)
#define ROUNDS 100000
/*
 * Waits that must be woken wait for ever: a wait that ends at its timeout
 * looks once more and reports a change made meanwhile, which would hide a
 * lost wake-up.  A waiter that hangs dies of SIGALRM after ALARM_S (its
 * status then fails the test), and the test's own Check timeout fails a
 * hang in the test process.
 */
#define FOREVER (-1)
#define ALARM_S 60
#define CASE_S 120

static void mk_heap(struct rszshm *r, char path[256], const char *name)
{
	test_path(path, 256, "%s", name);
	test_track(path);
	ck_assert_msg(rszshm_mk_flags(r, REGION_LEN, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL,
		      "mk %s: %s", path, strerror(errno));
}

static void put_u64(struct rszshm *r, const char *name, uint64_t v)
{
	ck_assert_msg(rszshm_rec_put(r, name, 0, &v, sizeof(v)) == 0, "put %s: %s", name,
		      strerror(errno));
}

static uint64_t get_u64(struct rszshm *r, const char *name)
{
	uint64_t v = 0;

	if (rszshm_rec_get(r, name, &v, sizeof(v), NULL) != (ssize_t)sizeof(v))
		return UINT64_MAX;
	return v;
}

/* Waiters announced in the header, all lanes and wait-any together. */
static uint64_t waiters(const struct rszshm *r)
{
	const struct rszshm__wait *w = &rszshm__shared(r->hdr)->wait;
	uint64_t n = __atomic_load_n(&w->any_waiters, __ATOMIC_ACQUIRE);

	for (unsigned l = 0; l < RSZSHM__WAIT_LANES; l++)
		n += __atomic_load_n(&w->lane_waiters[l], __ATOMIC_ACQUIRE);
	return n;
}

/* Until at least @n waiters have announced themselves. */
static void until_waiters(const struct rszshm *r, uint64_t n)
{
	while (waiters(r) < n)
		sched_yield();
}

/* Until process @pid sleeps (state S in /proc/pid/stat). */
static void until_asleep(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (;;) {
		int fd = open(path, O_RDONLY);
		ssize_t n;

		ck_assert_int_ge(fd, 0);
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		ck_assert_int_gt(n, 0);
		buf[n] = '\0';
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'S')
			return;
		sched_yield();
	}
}

/* ------------------------------------------------------ no lost wake-up */

/*
 * Ping-pong: the producer puts "val" = n and waits for "ack" = n; the
 * consumer waits for "val", checks it moved past the last value it saw,
 * and acks it.  A lost wake-up leaves one side asleep: its wait times out.
 */
static int helper_pong(int argc, char **argv)
{
	struct rszshm r;
	uint64_t seen = 0, last = 0, v;

	alarm(ALARM_S);
	HCHECK(argc == 2 || (argc == 3 && strcmp(argv[2], "fenced") == 0));
	if (argc == 3)
		rszshm__wait_light = -1;	/* this side's writers fence */
	HCHECK(rszshm_at(&r, argv[1]) != NULL);
	while (last < ROUNDS) {
		HCHECK(rszshm_rec_wait(&r, "val", &seen, FOREVER) == 0);
		if (!seen)
			continue;
		v = get_u64(&r, "val");
		HCHECK(v != UINT64_MAX && v > last);
		last = v;
		HCHECK(rszshm_rec_put(&r, "ack", 0, &v, sizeof(v)) == 0);
	}
	rszshm_dt(&r);
	return 0;
}

/* @fenced false: both sides' writers as the kernel allows (membarrier
 * where it registers); true: the helper's writers make the full fence. */
static void ping_pong(bool fenced)
{
	char path[256];
	struct rszshm r;
	uint64_t seen = 0, n;
	pid_t pid;

	mk_heap(&r, path, fenced ? "pingpong-fenced" : "pingpong");
	pid = test_exec_helper("pong", path, fenced ? "fenced" : NULL, NULL);
	for (n = 1; n <= ROUNDS; n++) {
		put_u64(&r, "val", n);
		for (;;) {
			ck_assert_msg(rszshm_rec_wait(&r, "ack", &seen, FOREVER) == 0,
				      "round %" PRIu64 ": wait for the ack: %s", n, strerror(errno));
			if (seen && get_u64(&r, "ack") == n)
				break;
		}
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}

START_TEST(test_wait_loses_no_wakeup_in_100000_ping_pong_rounds)
{
	ping_pong(false);
}
END_TEST

START_TEST(test_wait_loses_no_wakeup_with_a_fencing_writer)
{
	ping_pong(true);
}
END_TEST

/*
 * A free-running producer: the consumer sees values that never go back,
 * and the last.  A value may show twice: the copy after one wait can
 * already be the version that ends the next wait.
 */
static int helper_follow(int argc, char **argv)
{
	struct rszshm r;
	uint64_t seen = 0, last = 0, v;

	alarm(ALARM_S);
	HCHECK(argc == 2);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY) != NULL);
	while (last < ROUNDS) {
		HCHECK(rszshm_rec_wait(&r, "val", &seen, FOREVER) == 0);
		v = get_u64(&r, "val");
		HCHECK(v != UINT64_MAX && v >= last);
		last = v;
	}
	rszshm_dt(&r);
	return 0;
}

START_TEST(test_wait_sees_the_last_of_100000_free_running_puts)
{
	char path[256];
	struct rszshm r;
	pid_t pid;

	mk_heap(&r, path, "follow");
	put_u64(&r, "val", 0);
	pid = test_exec_helper("follow", path, NULL);
	for (uint64_t n = 1; n <= ROUNDS; n++)
		put_u64(&r, "val", n);
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * The asymmetric fence: a process the kernel registers for membarrier
 * writes without the full fence; a waiter makes one barrier before its
 * first sleep, and none in a wait that finds its change at once or a poll.
 */
START_TEST(test_wait_barrier_is_made_once_and_only_before_a_sleep)
{
	char path[256];
	struct rszshm r;
	uint64_t seen = 0, got[2] = { UINT64_MAX, UINT64_MAX };
	unsigned long before, slept;
	pid_t pid;
	int p[2];

	mk_heap(&r, path, "barrier");
	put_u64(&r, "a", 1);
	ck_assert_int_eq(rszshm__wait_light, rszshm__sys_membarrier_register() == 0 ? 1 : -1);
	before = rszshm__sys_membarriers();
	ck_assert_int_eq(rszshm_rec_wait(&r, "a", &seen, FOREVER), 0);
	ck_assert_uint_ne(seen, 0);
	ck_assert_uint_eq(rszshm__sys_membarriers(), before);
	/* A poll (timeout 0) that finds nothing new sleeps not: no barrier. */
	ck_assert_int_eq(rszshm_rec_wait(&r, "a", &seen, 0), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_uint_eq(rszshm__sys_membarriers(), before);
	/* A wait that nothing ends sleeps, however often it wakes: one barrier. */
	slept = rszshm__sys_futex_waits();
	ck_assert_int_eq(rszshm_rec_wait(&r, "a", &seen, 200), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_uint_gt(rszshm__sys_futex_waits(), slept);
	ck_assert_uint_eq(rszshm__sys_membarriers(), before + 1);

	/* Another process's wait, ended by a put: at most one barrier, and
	 * one before any sleep.  (The parent puts once it has announced itself
	 * and sleeps, which on an emulator may be a sleep of the emulator's: the
	 * wait may then find the put before or just after its barrier.) */
	ck_assert_int_eq(pipe(p), 0);
	pid = test_fork();
	if (pid == 0) {
		uint64_t m0 = rszshm__sys_membarriers(), w0 = rszshm__sys_futex_waits();

		alarm(ALARM_S);
		HCHECK(rszshm_rec_wait(&r, "a", &seen, FOREVER) == 0);
		got[0] = rszshm__sys_membarriers() - m0;
		got[1] = rszshm__sys_futex_waits() - w0;
		HCHECK(write(p[1], got, sizeof(got)) == (ssize_t)sizeof(got));
		_exit(0);
	}
	until_waiters(&r, 1);
	until_asleep(pid);
	put_u64(&r, "a", 2);
	ck_assert_int_eq(read(p[0], got, sizeof(got)), (ssize_t)sizeof(got));
	ck_assert_uint_le(got[0], 1);
	if (got[1])
		ck_assert_uint_eq(got[0], 1);
	ck_assert_int_eq(test_wait(pid), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* Writers make a FUTEX_WAKE call only when someone waits on the word. */
START_TEST(test_wait_put_with_nobody_waiting_makes_no_wake_call)
{
	char path[256];
	struct rszshm r;
	unsigned long before;
	uint64_t *blk;
	pid_t pid;
	int p[2];

	mk_heap(&r, path, "nowake");
	blk = rszshm_alloc(&r, sizeof(*blk));
	ck_assert_ptr_nonnull(blk);
	before = rszshm__sys_futex_wakes();
	for (uint64_t i = 0; i < 1000; i++)
		put_u64(&r, i % 2 ? "a" : "b", i);
	ck_assert_int_eq(rszshm_rec_add(&r, "c", 0, blk, sizeof(*blk)), 0);
	ck_assert_int_eq(rszshm_rec_remove(&r, "c"), 0);
	ck_assert_int_eq(rszshm_rec_clear(&r), 0);
	ck_assert_uint_eq(rszshm__sys_futex_wakes(), before);

	/* With a waiter counted, the put that ends its wait makes the call. */
	ck_assert_int_eq(pipe(p), 0);
	pid = test_fork();
	if (pid == 0) {
		uint64_t seen = 0;

		alarm(ALARM_S);
		HCHECK(rszshm_rec_wait(&r, "a", &seen, FOREVER) == 0);
		test_post(p[1]);
		_exit(0);
	}
	until_waiters(&r, 1);
	put_u64(&r, "a", 1);
	test_wait_byte(p[0]);
	ck_assert_uint_gt(rszshm__sys_futex_wakes(), before);
	ck_assert_int_eq(test_wait(pid), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ----------------------------------------------------- timeout, signals */

START_TEST(test_wait_times_out_when_nothing_changes)
{
	char path[256];
	struct rszshm r;
	uint64_t seen = 0, s, c;

	mk_heap(&r, path, "timeout");
	put_u64(&r, "x", 1);
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 0), 0);	/* the current stamp */
	ck_assert_uint_ne(seen, 0);
	s = seen;
	errno = 0;
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 0), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	errno = 0;
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 30), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_uint_eq(seen, s);
	c = rszshm_rec_changes(&r);
	errno = 0;
	ck_assert_int_eq(rszshm_rec_wait_any(&r, &c, 30), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_uint_eq(c, rszshm_rec_changes(&r));
	/* Not absent either: a name nobody makes. */
	seen = 0;
	errno = 0;
	ck_assert_int_eq(rszshm_rec_wait(&r, "nobody", &seen, 30), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

static volatile sig_atomic_t caught;

static void on_usr1(int sig)
{
	(void)sig;
	caught++;
}

/* A child waits with no timeout, a handler installed without SA_RESTART;
 * another process signals it once it sleeps: the wait returns EINTR. */
START_TEST(test_wait_returns_eintr_on_a_signal)
{
	char path[256];
	struct rszshm r;
	pid_t pid, killer;

	mk_heap(&r, path, "eintr");
	put_u64(&r, "x", 1);
	for (int any = 0; any < 2; any++) {
		int p[2];

		ck_assert_int_eq(pipe(p), 0);
		pid = test_fork();
		if (pid == 0) {
			struct sigaction sa;
			uint64_t seen = 0;
			int rc;

			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = on_usr1;
			sigemptyset(&sa.sa_mask);
			sa.sa_flags = 0;
			HCHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
			alarm(ALARM_S);
			HCHECK(rszshm_rec_wait(&r, "x", &seen, 0) == 0);
			seen = rszshm_rec_changes(&r);
			/* The first look (counted for a moment too) is over. */
			HCHECK(write(p[1], "w", 1) == 1);
			errno = 0;
			rc = any ? rszshm_rec_wait_any(&r, &seen, -1) :
				   rszshm_rec_wait(&r, "x", &seen, -1);
			_exit(rc == -1 && errno == EINTR && caught == 1 ? 0 : 1);
		}
		close(p[1]);
		test_wait_byte(p[0]);
		close(p[0]);
		until_waiters(&r, 1);
		until_asleep(pid);
		killer = test_fork();
		if (killer == 0)
			_exit(kill(pid, SIGUSR1) == 0 ? 0 : 1);
		ck_assert_int_eq(test_wait(killer), 0);
		ck_assert_int_eq(test_wait(pid), 0);
	}
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* -------------------------------------------------------- who can wait */

/* Attached read-only: announce, then wake on the parent's put.  The byte
 * on argv[2] says the first look is over: that look counts itself too, for
 * a moment, and a put the parent made then would be what it saw. */
static int helper_ro_waiter(int argc, char **argv)
{
	struct rszshm r;
	uint64_t seen = 0, first;
	char c = 'r';

	alarm(ALARM_S);
	HCHECK(argc == 3);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY) != NULL);
	HCHECK(rszshm_rec_wait(&r, "x", &seen, 0) == 0 && seen != 0);
	first = seen;
	HCHECK(write(atoi(argv[2]), &c, 1) == 1);
	HCHECK(rszshm_rec_wait(&r, "x", &seen, FOREVER) == 0);
	HCHECK(seen != first && get_u64(&r, "x") == 2);
	rszshm_dt(&r);
	return 0;
}

START_TEST(test_wait_works_on_a_read_only_attachment)
{
	char path[256], fd[16];
	struct rszshm r;
	pid_t pid;
	int p[2];

	mk_heap(&r, path, "ro");
	put_u64(&r, "x", 1);
	ck_assert_int_eq(pipe(p), 0);
	snprintf(fd, sizeof(fd), "%d", p[1]);
	pid = test_exec_helper("ro-waiter", path, fd, NULL);
	test_wait_byte(p[0]);
	/* It can only be counted through its own writable view of the header. */
	until_waiters(&r, 1);
	put_u64(&r, "x", 2);
	ck_assert_int_eq(test_wait(pid), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_uint_eq(waiters(&r), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * Read-only, and not allowed to open the file for writing (every wrapped
 * call fails from the wait on: the open of the header's writable view
 * first): the waiter cannot count itself, writers make no wake-up call
 * for it, and it still sees the change, looking again every slice.
 */
static int helper_ro_nowrite(int argc, char **argv)
{
	struct rszshm r;
	uint64_t seen = 0, first;
	char c = 'r';

	alarm(ALARM_S);
	HCHECK(argc == 3);
	HCHECK(rszshm_at_flags(&r, argv[1], RSZSHM_RDONLY) != NULL);
	HCHECK(rszshm_rec_wait(&r, "x", &seen, 0) == 0 && seen != 0);
	first = seen;
	HCHECK(write(atoi(argv[2]), &c, 1) == 1);
	rszshm__fault_inject(1, true, EACCES);
	HCHECK(rszshm_rec_wait(&r, "x", &seen, FOREVER) == 0);
	rszshm__fault_clear();
	HCHECK(seen != first && get_u64(&r, "x") == 2);
	rszshm_dt(&r);
	return 0;
}

START_TEST(test_wait_read_only_without_write_permission_still_sees_changes)
{
	char path[256], fd[16];
	struct rszshm r;
	pid_t pid;
	int p[2];

	mk_heap(&r, path, "ronowrite");
	put_u64(&r, "x", 1);
	ck_assert_int_eq(pipe(p), 0);
	snprintf(fd, sizeof(fd), "%d", p[1]);
	pid = test_exec_helper("ro-nowrite", path, fd, NULL);
	test_wait_byte(p[0]);
	until_asleep(pid);
	ck_assert_uint_eq(waiters(&r), 0);	/* it could not count itself */
	put_u64(&r, "x", 2);
	ck_assert_int_eq(test_wait(pid), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* Seen 0 = "no such record": the wait ends when it is made, even in a
 * region that has no index yet; and again when it is removed. */
START_TEST(test_wait_for_a_record_that_does_not_exist_yet)
{
	char path[256];
	struct rszshm r;
	int p[2];
	pid_t pid;

	mk_heap(&r, path, "later");
	ck_assert_int_eq(pipe(p), 0);
	pid = test_fork();
	if (pid == 0) {
		uint64_t seen = 0;

		alarm(ALARM_S);
		HCHECK(rszshm_rec_wait(&r, "later", &seen, FOREVER) == 0);
		HCHECK(seen != 0 && get_u64(&r, "later") == 7);
		test_post(p[1]);
		HCHECK(rszshm_rec_wait(&r, "later", &seen, FOREVER) == 0);
		HCHECK(seen == 0 && get_u64(&r, "later") == UINT64_MAX);
		_exit(0);
	}
	until_waiters(&r, 1);
	ck_assert_uint_eq(rszshm__shared(r.hdr)->recs, 0);	/* no index yet */
	put_u64(&r, "other", 1);				/* another name: no return */
	put_u64(&r, "later", 7);
	test_wait_byte(p[0]);
	until_waiters(&r, 1);
	ck_assert_int_eq(rszshm_rec_remove(&r, "later"), 0);
	ck_assert_int_eq(test_wait(pid), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* A name removed and made again never shows the stamp the waiter saw. */
START_TEST(test_wait_sees_a_record_removed_and_made_again)
{
	char path[256];
	struct rszshm r;
	uint64_t seen = 0, first;

	mk_heap(&r, path, "again");
	put_u64(&r, "x", 1);
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 0), 0);
	first = seen;
	ck_assert_int_eq(rszshm_rec_remove(&r, "x"), 0);
	put_u64(&r, "x", 1);
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 0), 0);
	ck_assert_uint_gt(seen, first);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* --------------------------------------------------------------- any */

START_TEST(test_wait_any_ends_on_add_put_remove_and_clear)
{
	char path[256];
	struct rszshm r;
	uint64_t c, was, *blk;
	pid_t pid;
	int p[2];

	mk_heap(&r, path, "any");
	c = rszshm_rec_changes(&r);
	ck_assert_uint_eq(c, 0);
	blk = rszshm_alloc(&r, sizeof(*blk));
	ck_assert_ptr_nonnull(blk);

	/* In one process: each kind of change moves the count. */
	was = c;
	ck_assert_int_eq(rszshm_rec_add(&r, "a", 0, blk, sizeof(*blk)), 0);
	ck_assert_int_eq(rszshm_rec_wait_any(&r, &c, 0), 0);
	ck_assert_uint_eq(c, was + 1);
	put_u64(&r, "b", 1);
	put_u64(&r, "b", 2);
	ck_assert_int_eq(rszshm_rec_wait_any(&r, &c, 0), 0);
	ck_assert_uint_eq(c, was + 3);
	ck_assert_int_eq(rszshm_rec_remove(&r, "a"), 0);
	ck_assert_int_eq(rszshm_rec_wait_any(&r, &c, 0), 0);
	ck_assert_uint_eq(c, was + 4);
	put_u64(&r, "c", 1);
	ck_assert_int_eq(rszshm_rec_clear(&r), 0);	/* b and c */
	ck_assert_int_eq(rszshm_rec_wait_any(&r, &c, 0), 0);
	ck_assert_uint_eq(c, was + 7);
	ck_assert_int_eq(rszshm_rec_clear(&r), 0);	/* nothing: no change */
	errno = 0;
	ck_assert_int_eq(rszshm_rec_wait_any(&r, &c, 0), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);

	/* Across processes: a sleeping waiter wakes on each kind. */
	put_u64(&r, "d", 1);	/* for the clear */
	c = rszshm_rec_changes(&r);
	ck_assert_int_eq(pipe(p), 0);
	pid = test_fork();
	if (pid == 0) {
		uint64_t s = c;

		alarm(ALARM_S);
		for (int i = 0; i < 4; i++) {
			HCHECK(rszshm_rec_wait_any(&r, &s, FOREVER) == 0);
			test_post(p[1]);
		}
		_exit(0);
	}
	for (int i = 0; i < 4; i++) {
		until_waiters(&r, 1);
		until_asleep(pid);
		switch (i) {
		case 0: ck_assert_int_eq(rszshm_rec_add(&r, "a", 0, blk, sizeof(*blk)), 0); break;
		case 1: put_u64(&r, "a", 5); break;
		case 2: ck_assert_int_eq(rszshm_rec_remove(&r, "a"), 0); break;
		default: ck_assert_int_eq(rszshm_rec_clear(&r), 0); break;
		}
		test_wait_byte(p[0]);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ---------------------------------------------------------- robustness */

/* A waiter of "x" in a child: 0 if woken with x = @want before its timeout.
 * Returns once the child's first look is over: that look counts itself too,
 * for a moment, and a put made then would be what it saw. */
static pid_t fork_waiter(struct rszshm *r, uint64_t want)
{
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = test_fork();
	if (pid == 0) {
		uint64_t seen = 0, first;

		close(p[0]);
		alarm(ALARM_S);
		HCHECK(rszshm_rec_wait(r, "x", &seen, 0) == 0 && seen);
		first = seen;
		test_post(p[1]);
		HCHECK(rszshm_rec_wait(r, "x", &seen, FOREVER) == 0);
		HCHECK(seen != first && get_u64(r, "x") == want);
		_exit(0);
	}
	close(p[1]);
	test_wait_byte(p[0]);
	close(p[0]);
	return pid;
}

START_TEST(test_wait_others_wake_after_a_waiter_is_killed_mid_wait)
{
	char path[256];
	struct rszshm r;
	pid_t dead, a, b;

	mk_heap(&r, path, "killwaiter");
	put_u64(&r, "x", 1);
	dead = fork_waiter(&r, 99);
	until_waiters(&r, 1);
	until_asleep(dead);
	kill(dead, SIGKILL);
	ck_assert_int_eq(test_wait(dead), 128 + SIGKILL);
	/* Its count stays: writers make a wake-up call nobody needs. */
	ck_assert_uint_eq(waiters(&r), 1);
	a = fork_waiter(&r, 2);
	b = fork_waiter(&r, 2);
	until_waiters(&r, 3);
	put_u64(&r, "x", 2);
	ck_assert_int_eq(test_wait(a), 0);
	ck_assert_int_eq(test_wait(b), 0);
	put_u64(&r, "x", 3);	/* no hang, no error from the stale count */
	ck_assert_uint_eq(get_u64(&r, "x"), 3);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

static void die_here(int point)
{
	if (point == (int)strtol(getenv("RSZSHM_TEST_DIE_AT"), NULL, 10))
		raise(SIGKILL);
}

/*
 * A writer killed after its change and before its wake-up (point 11:
 * not even counted; point 12: counted, nobody woken).  The waiters still
 * sleep; the next change by anyone, of any record, wakes them.
 */
START_TEST(test_wait_others_wake_after_a_writer_is_killed_before_its_wake)
{
	char path[256];
	struct rszshm r;

	mk_heap(&r, path, "killwriter");
	for (int point = 11; point <= 12; point++) {
		char at[8];
		pid_t a, b, any, w;
		uint64_t c;

		put_u64(&r, "x", 1);
		c = rszshm_rec_changes(&r);
		a = fork_waiter(&r, 2);
		b = fork_waiter(&r, 2);
		any = test_fork();
		if (any == 0) {
			alarm(ALARM_S);
			HCHECK(rszshm_rec_wait_any(&r, &c, FOREVER) == 0);
			_exit(0);
		}
		until_waiters(&r, 3);
		until_asleep(a);
		until_asleep(b);
		until_asleep(any);
		snprintf(at, sizeof(at), "%d", point);
		setenv("RSZSHM_TEST_DIE_AT", at, 1);
		w = test_fork();
		if (w == 0) {
			rszshm__rec_hook = die_here;
			put_u64(&r, "x", 2);
			_exit(0);
		}
		ck_assert_int_eq(test_wait(w), 128 + SIGKILL);
		ck_assert_uint_eq(get_u64(&r, "x"), 2);	/* the change is made */
		put_u64(&r, "some other record", 1);
		ck_assert_int_eq(test_wait(a), 0);
		ck_assert_int_eq(test_wait(b), 0);
		ck_assert_int_eq(test_wait(any), 0);
		ck_assert_int_eq(rszshm_rec_clear(&r), 0);
	}
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* Scribbled words: waits end early or at their timeout, never hang or crash. */
START_TEST(test_wait_survives_scribbled_wait_words)
{
	struct rszshm__wait *w;
	char path[256];
	struct rszshm r;
	uint64_t seen = 0, c;

	mk_heap(&r, path, "scribble");
	put_u64(&r, "x", 1);
	w = &rszshm__shared(r.hdr)->wait;
	memset(w, 0xff, sizeof(*w));
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 0), 0);
	errno = 0;
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 20), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	c = rszshm_rec_changes(&r);
	ck_assert_uint_eq(c, UINT64_MAX);
	put_u64(&r, "x", 2);	/* the counter wraps; the stamp still moves */
	ck_assert_int_eq(rszshm_rec_wait(&r, "x", &seen, 0), 0);
	ck_assert_int_eq(rszshm_rec_wait_any(&r, &c, 0), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_wait_refuses_bad_arguments)
{
	char path[256], big[RSZSHM_NAME_MAX + 2];
	struct rszshm r, raw;
	uint64_t seen = 0;

	mk_heap(&r, path, "args");
	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
#define FAILS(call, err) do { errno = 0; ck_assert_int_eq((call), -1); \
		ck_assert_int_eq(errno, (err)); } while (0)
	FAILS(rszshm_rec_wait(NULL, "x", &seen, 0), EINVAL);
	FAILS(rszshm_rec_wait(&r, NULL, &seen, 0), EINVAL);
	FAILS(rszshm_rec_wait(&r, "", &seen, 0), EINVAL);
	FAILS(rszshm_rec_wait(&r, "x", NULL, 0), EINVAL);
	FAILS(rszshm_rec_wait(&r, big, &seen, 0), ENAMETOOLONG);
	FAILS(rszshm_rec_wait_any(NULL, &seen, 0), EINVAL);
	FAILS(rszshm_rec_wait_any(&r, NULL, 0), EINVAL);
	errno = 0;
	ck_assert_uint_eq(rszshm_rec_changes(NULL), 0);
	ck_assert_int_eq(errno, EINVAL);
	test_path(path, sizeof(path), "args-raw");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk(&raw, 4096, path));
	FAILS(rszshm_rec_wait(&raw, "x", &seen, 0), EINVAL);
	FAILS(rszshm_rec_wait_any(&raw, &seen, 0), EINVAL);
#undef FAILS
	ck_assert_int_eq(rszshm_dt(&raw), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("wait");

	TEST_ADD_T(s, test_wait_loses_no_wakeup_in_100000_ping_pong_rounds, CASE_S);
	TEST_ADD_T(s, test_wait_loses_no_wakeup_with_a_fencing_writer, CASE_S);
	TEST_ADD_T(s, test_wait_barrier_is_made_once_and_only_before_a_sleep, CASE_S);
	TEST_ADD_T(s, test_wait_sees_the_last_of_100000_free_running_puts, CASE_S);
	TEST_ADD_T(s, test_wait_put_with_nobody_waiting_makes_no_wake_call, CASE_S);
	TEST_ADD_T(s, test_wait_times_out_when_nothing_changes, CASE_S);
	TEST_ADD_T(s, test_wait_returns_eintr_on_a_signal, CASE_S);
	TEST_ADD_T(s, test_wait_works_on_a_read_only_attachment, CASE_S);
	TEST_ADD_T(s, test_wait_read_only_without_write_permission_still_sees_changes, CASE_S);
	TEST_ADD_T(s, test_wait_for_a_record_that_does_not_exist_yet, CASE_S);
	TEST_ADD_T(s, test_wait_sees_a_record_removed_and_made_again, CASE_S);
	TEST_ADD_T(s, test_wait_any_ends_on_add_put_remove_and_clear, CASE_S);
	TEST_ADD_T(s, test_wait_others_wake_after_a_waiter_is_killed_mid_wait, CASE_S);
	TEST_ADD_T(s, test_wait_others_wake_after_a_writer_is_killed_before_its_wake, CASE_S);
	TEST_ADD_T(s, test_wait_survives_scribbled_wait_words, CASE_S);
	TEST_ADD_T(s, test_wait_refuses_bad_arguments, CASE_S);
	return s;
}

const struct test_helper test_helpers[] = {
	{ "pong", helper_pong },
	{ "follow", helper_follow },
	{ "ro-waiter", helper_ro_waiter },
	{ "ro-nowrite", helper_ro_nowrite },
	{ NULL, NULL },
};
