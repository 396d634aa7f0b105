/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-plan.c - the address plan (lib/plan.c): regions made by different
 * processes get disjoint spans, so one process can attach any set of them.
 *
 * Each test points the plan at a scratch table of its own in the run's
 * scratch directory ($RSZSHM_PLAN, which exec'd helpers and forked children
 * inherit), so the machine's real table (/dev/shm/.rszshm-plan2-<uid>) is
 * never touched, and the table goes with the scratch directory.
 *
 * Sections: many makers and one attacher; stale entries; ccan's spiral; a
 * damaged, foreign or busy table.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

#define TIB (1ULL << 40)
#define GIB (1ULL << 30)
#define WORD 0x504c414e00000000ULL	/* "PLAN" + the region's index */

/*
 * The plan is for 64-bit builds only (lib/plan.c: a 32-bit address space
 * has no room to spread regions over, and mk probes as ccan does), and these
 * tests place spans TiB apart: on a 32-bit build they pass, saying why.
 */
#define NEEDS_64_BIT() do {							\
		if (UINTPTR_MAX <= 0xffffffffu) {				\
			printf("%s: skipped: the address plan and its TiB "	\
			       "spans are for 64-bit builds only\n", __func__);	\
			fflush(stdout);						\
			return;							\
		}								\
	} while (0)

/*
 * Under an emulator (qemu-user: $RSZSHM_EXE_WRAPPER) a maker holds the
 * table's lock many times longer (mapping a 4 GiB span takes qemu tens of
 * ms), and dozens of emulated makers at once on a busy machine make others
 * wait past the 2 s a call waits for a table that its holders keep
 * changing: those fall back to random placement, which may meet another
 * span (an ENOSPC at attach, as lib/plan.c allows).  There the racing tests
 * start their makers a few at a time: still racing, no longer starved.
 */
static unsigned racers(unsigned native)
{
	const char *w = getenv("RSZSHM_EXE_WRAPPER");

	return w && *w && native > 4 ? 4 : native;
}

/* Point the plan at a fresh scratch table for this test; its path in @buf. */
static const char *use_plan(char *buf, size_t len, const char *name)
{
	test_path(buf, len, "plan-%s", name);
	unlink(buf);
	ck_assert_int_eq(setenv("RSZSHM_PLAN", buf, 1), 0);
	return buf;
}

/* Attach @fname and check the word its maker wrote; the handle stays attached. */
static void attach_and_check(struct rszshm *r, const char *fname, unsigned idx)
{
	void *p = rszshm_at(r, fname);

	ck_assert_msg(p != NULL, "attach %s (index %u): %s", fname, idx, strerror(errno));
	ck_assert_uint_eq(*(volatile uint64_t *)r->dat, WORD + idx);
}

/* --helper make NAME IDX HOW: make a region with the default scan, the
 * three-argument way (HOW "3") or spelled out (HOW "4"), write its word,
 * detach and leave the file. */
static int helper_make(int argc, char **argv)
{
	struct rszshm r;
	unsigned idx;
	void *p;

	HCHECK(argc == 4);
	idx = (unsigned)strtoul(argv[2], NULL, 10);
	if (strcmp(argv[3], "3") == 0)
		p = rszshm_mk(&r, 4096, argv[1]);
	else
		p = rszshm_mk_flags(&r, 4096, argv[1], RSZSHM_DFLT_SCAN, 0);
	HCHECK(p != NULL);
	*(uint64_t *)r.dat = WORD + idx;
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/* ------------------------------------------- many makers, one attacher */

#define MAKERS 64

START_TEST(test_64_makers_then_one_process_attaches_all)
{
	static struct rszshm r[MAKERS];
	char plan[RSZSHM_PATH_MAX], name[MAKERS][RSZSHM_PATH_MAX], idx[16];
	pid_t pid[MAKERS];
	unsigned i, j, n;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "64");
	/* All at once (a few at a time under an emulator: racers()): the
	 * makers race for the table. */
	for (i = 0; i < MAKERS; i += n) {
		n = racers(MAKERS);
		for (j = i; j < i + n && j < MAKERS; j++) {
			test_path(name[j], sizeof(name[j]), "m64-%u", j);
			test_track(name[j]);
			snprintf(idx, sizeof(idx), "%u", j);
			pid[j] = test_exec_helper("make", name[j], idx, j % 2 ? "3" : "4", NULL);
		}
		for (j = i; j < i + n && j < MAKERS; j++)
			ck_assert_int_eq(test_wait(pid[j]), 0);
	}

	for (i = 0; i < MAKERS; i++)
		attach_and_check(&r[i], name[i], i);
	/* Disjoint spans, each in the plan's area. */
	for (i = 0; i < MAKERS; i++) {
		uintptr_t a = (uintptr_t)r[i].hdr;

		ck_assert_uint_eq(r[i].max, RSZSHM_DFLT_SCAN.len);
		for (j = 0; j < i; j++) {
			uintptr_t b = (uintptr_t)r[j].hdr;

			ck_assert_msg(a + r[i].max <= b || b + r[j].max <= a,
				      "regions %u and %u overlap", i, j);
		}
	}
	for (i = 0; i < MAKERS; i++) {
		ck_assert_int_eq(rszshm_dt(&r[i]), 0);
		ck_assert_int_eq(rszshm_unlink(&r[i]), 0);
	}
}
END_TEST

#define LIVE 1000
#define PICK 64
#define BATCH 16

START_TEST(test_1000_live_regions_any_64_attach_together)
{
	static struct rszshm r[PICK];
	static char name[LIVE][RSZSHM_PATH_MAX];
	char plan[RSZSHM_PATH_MAX];
	bool picked[LIVE] = { false };
	pid_t pid[BATCH];
	unsigned i, b, n, pick[PICK];

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "1000");
	/* 1,000 short-lived makers, BATCH at a time. */
	for (i = 0; i < LIVE; i += n) {
		n = LIVE - i < racers(BATCH) ? LIVE - i : racers(BATCH);
		for (b = 0; b < n; b++) {
			test_path(name[i + b], sizeof(name[i + b]), "l-%u", i + b);
			if ((pid[b] = test_fork()) == 0) {
				struct rszshm m;

				if (!rszshm_mk(&m, 64, name[i + b]))
					_exit(1);
				*(uint64_t *)m.dat = WORD + i + b;
				_exit(rszshm_dt(&m) == 0 ? 0 : 2);
			}
		}
		for (b = 0; b < n; b++)
			ck_assert_int_eq(test_wait(pid[b]), 0);
	}

	srandom((unsigned)getpid());
	for (i = 0; i < PICK; i++) {
		do
			pick[i] = (unsigned)random() % LIVE;
		while (picked[pick[i]]);
		picked[pick[i]] = true;
		attach_and_check(&r[i], name[pick[i]], pick[i]);
	}
	for (i = 0; i < PICK; i++)
		ck_assert_int_eq(rszshm_dt(&r[i]), 0);
	for (i = 0; i < LIVE; i++)
		ck_assert_int_eq(unlink(name[i]), 0);
}
END_TEST

/* A region made in this process with the default scan, then another made
 * while the first is still attached, and a third after both were removed:
 * never on top of a live one, in the plan's area. */
START_TEST(test_default_placement_skips_live_spans_and_reuses_freed_ones)
{
	struct rszshm a, b;
	char plan[RSZSHM_PATH_MAX], na[RSZSHM_PATH_MAX], nb[RSZSHM_PATH_MAX];
	uintptr_t pa, pb;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "reuse");
	test_path(na, sizeof(na), "reuse-a");
	test_path(nb, sizeof(nb), "reuse-b");
	ck_assert_ptr_nonnull(rszshm_mk(&a, 4096, na));
	ck_assert_int_eq(rszshm_dt(&a), 0);	/* not mapped here any more */
	ck_assert_ptr_nonnull(rszshm_mk(&b, 4096, nb));
	pa = (uintptr_t)rszshm_at(&a, na);
	ck_assert_uint_ne(pa, 0);
	pb = (uintptr_t)b.hdr;
	ck_assert(pb + b.max <= (uintptr_t)a.hdr || (uintptr_t)a.hdr + a.max <= pb);
	ck_assert_uint_ge((uintptr_t)a.hdr, 24 * TIB);
	ck_assert_uint_le((uintptr_t)a.hdr + a.max, 72 * TIB);
	ck_assert_int_eq(rszshm_dt(&a), 0);
	ck_assert_int_eq(rszshm_dt(&b), 0);
	ck_assert_int_eq(rszshm_unlink(&a), 0);
	ck_assert_int_eq(rszshm_unlink(&b), 0);
}
END_TEST

/* ------------------------------------------------- where a span starts */

#define HEAD (64ULL << 20)

/* Make a region of span @len with the default scan; where it starts. */
static uintptr_t placed(const char *name, size_t len)
{
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	struct rszshm r;
	uintptr_t at;

	scan.len = len;
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, name, scan));
	at = (uintptr_t)r.hdr;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	return at;
}

/*
 * A default span longer than 64 MiB starts 64 MiB below a GiB boundary
 * (lib/plan.c start_for(): unmapping it after touching only its head walks
 * 32 page-table entries, not 512), whether the plan places it or, with the
 * plan off, the random fallback does; several in a row (the plan's cursor)
 * too.  A shorter span is only 2 MiB aligned.
 */
START_TEST(test_default_span_starts_its_head_below_a_gib)
{
	char plan[RSZSHM_PATH_MAX], n[RSZSHM_PATH_MAX];
	uintptr_t at;
	int i, off;

	NEEDS_64_BIT();
	test_path(n, sizeof(n), "head");
	for (off = 0; off < 2; off++) {
		if (off)
			ck_assert_int_eq(setenv("RSZSHM_PLAN", "off", 1), 0);
		else
			use_plan(plan, sizeof(plan), "head");
		for (i = 0; i < 3; i++) {
			at = placed(n, (size_t)(4 * GIB));
			ck_assert_msg((at + HEAD) % GIB == 0, "plan %s: 4 GiB span at %#lx",
				      off ? "off" : "on", (unsigned long)at);
			at = placed(n, (size_t)(3 * GIB / 2));
			ck_assert_msg((at + HEAD) % GIB == 0, "plan %s: 1.5 GiB span at %#lx",
				      off ? "off" : "on", (unsigned long)at);
			at = placed(n, (size_t)(32ULL << 20));
			ck_assert_msg(at % (2ULL << 20) == 0, "plan %s: 32 MiB span at %#lx",
				      off ? "off" : "on", (unsigned long)at);
		}
	}
}
END_TEST

/* ------------------------------------------------------ stale entries */

/* Explicit scans at X, then X - hop: where the second region goes tells
 * whether the plan holds X. */
#define X_ADDR (88 * TIB)
#define X_HOP (8 * GIB)

static struct rszshm_scan scan_x(unsigned iter)
{
	return (struct rszshm_scan){ (void *)(uintptr_t)X_ADDR, (size_t)GIB, (size_t)X_HOP, iter };
}

/* Make a region with scan_x(2) in this process and say where it went. */
static uintptr_t probe_x(const char *name)
{
	struct rszshm r;
	uintptr_t at;

	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, name, scan_x(2)));
	at = (uintptr_t)r.hdr;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	return at;
}

START_TEST(test_removed_file_frees_its_span)
{
	char plan[RSZSHM_PATH_MAX], na[RSZSHM_PATH_MAX], nb[RSZSHM_PATH_MAX];
	struct rszshm a;
	pid_t pid;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "removed");
	test_path(na, sizeof(na), "removed-a");
	test_path(nb, sizeof(nb), "removed-b");
	if ((pid = test_fork()) == 0)
		_exit(rszshm_mk(&a, 4096, na, scan_x(1)) && rszshm_dt(&a) == 0 ? 0 : 1);
	ck_assert_int_eq(test_wait(pid), 0);

	/* The file is there: X is held, the next region goes to X - hop. */
	ck_assert_uint_eq(probe_x(nb), X_ADDR - X_HOP);
	/* Removed behind the library's back (not rszshm_unlink): the entry is
	 * stale, and the next maker takes X. */
	ck_assert_int_eq(unlink(na), 0);
	ck_assert_uint_eq(probe_x(nb), X_ADDR);
}
END_TEST

START_TEST(test_killed_maker_frees_its_span)
{
	char plan[RSZSHM_PATH_MAX], nb[RSZSHM_PATH_MAX];
	int ready[2], hold[2];
	pid_t pid;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "killed");
	test_path(nb, sizeof(nb), "killed-b");
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(hold), 0);
	if ((pid = test_fork()) == 0) {
		/* A maker between its claim and its file's name: pending. */
		struct rszshm_scan s = scan_x(1);
		struct rszshm__plan_ticket t;
		void *span;
		char c;

		close(hold[1]);
		if (rszshm__plan_claim(&s, s.len, true, &span, &t) < 0 || t.slot < 0)
			_exit(1);
		test_post(ready[1]);
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	test_wait_byte(ready[0]);
	/* Its maker lives: X is held. */
	ck_assert_uint_eq(probe_x(nb), X_ADDR - X_HOP);
	kill(pid, SIGKILL);
	ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
	/* Its maker is gone: X is free again. */
	ck_assert_uint_eq(probe_x(nb), X_ADDR);
	close(ready[0]);
	close(hold[1]);
}
END_TEST

/* ------------------------------------------------------- ccan's spiral */

START_TEST(test_explicit_scan_keeps_ccan_order)
{
	char plan[RSZSHM_PATH_MAX], n[RSZSHM_PATH_MAX];
	struct rszshm_scan s = { (void *)(uintptr_t)(74 * TIB), 1 * GIB, 2 * GIB, 5 };
	struct rszshm r;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "spiral");
	test_path(n, sizeof(n), "spiral");
	/* Nothing held: the first try, as ccan documents. */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, n, s));
	ck_assert_uint_eq((uintptr_t)r.hdr, 74 * TIB);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	/* The plan off: the same. */
	ck_assert_int_eq(setenv("RSZSHM_PLAN", "off", 1), 0);
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, n, s));
	ck_assert_uint_eq((uintptr_t)r.hdr, 74 * TIB);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* ---------------------------------------- a damaged, foreign, busy table */

/* Two makers in two processes with the default scan, then both attached
 * here: the table works (again) or mk fell back; either way both exist. */
static void two_makers_succeed(const char *tag)
{
	char n[2][RSZSHM_PATH_MAX];
	struct rszshm r[2];
	unsigned i;

	for (i = 0; i < 2; i++) {
		test_path(n[i], sizeof(n[i]), "%s-%u", tag, i);
		ck_assert_int_eq(test_wait(test_exec_helper("make", n[i], i ? "1" : "0", "3",
							    NULL)), 0);
	}
	for (i = 0; i < 2; i++) {
		void *p = rszshm_at(&r[i], n[i]);

		/* Without a usable table, two makers may (rarely) meet: that
		 * costs the second attach ENOSPC, never a failed mk. */
		if (!p) {
			ck_assert_int_eq(errno, ENOSPC);
			continue;
		}
		ck_assert_uint_eq(*(volatile uint64_t *)r[i].dat, WORD + i);
		ck_assert_int_eq(rszshm_dt(&r[i]), 0);
	}
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(unlink(n[i]), 0);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

START_TEST(test_random_bytes_in_the_table_cost_a_reset)
{
	static unsigned char junk[1 << 20];
	char plan[RSZSHM_PATH_MAX];
	unsigned round, i;

	use_plan(plan, sizeof(plan), "junk");
	srandom((unsigned)getpid());
	for (round = 0; round < 8; round++) {
		char tag[16];

		for (i = 0; i < sizeof(junk); i++)
			junk[i] = (unsigned char)random();
		if (round % 2) {
			/* Keep the header valid if the table exists: junk in
			 * the entries only. */
			int fd = open(plan, O_RDWR | O_CLOEXEC);

			if (fd >= 0) {
				ck_assert_int_eq(pread(fd, junk, 64, 0), 64);
				ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), 0),
						 (ssize_t)sizeof(junk));
				close(fd);
			}
		} else {
			write_file(plan, junk, (size_t)random() % sizeof(junk));
		}
		snprintf(tag, sizeof(tag), "junk%u", round);
		two_makers_succeed(tag);
	}
}
END_TEST

/*
 * A well-formed table that says every span of the area is held, by an entry
 * whose maker is alive (this process): the plan finds no room, and mk still
 * makes the region (the placement falls back to trying without the plan).
 * The layout is lib/plan.c's, repeated here on purpose: a change to it
 * should be a change to this test too.
 */
struct t_hdr { uint64_t magic; uint32_t version, cap, hwm, pad; uint64_t origin, cursor, lock, gen, since; };
struct t_span { uint64_t addr, len, dev, ino; };
struct t_meta { int32_t pid; uint32_t state; char path[240]; uint64_t r; };
#define T_CAP 4096u

START_TEST(test_table_that_holds_everything_costs_a_fallback)
{
	char plan[RSZSHM_PATH_MAX], n[RSZSHM_PATH_MAX];
	struct rszshm_scan s = { (void *)(uintptr_t)(30 * TIB), 1 * GIB, 2 * GIB, 3 };
	struct t_hdr h = { .magic = 0x4e414c504d48535aULL, .version = 2, .cap = T_CAP, .hwm = 16,
			   .origin = 24 * TIB, .cursor = 24 * TIB };
	struct t_span e;
	struct t_meta m;
	struct rszshm r;
	unsigned i;
	int fd;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "full");
	fd = open(plan, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 64 + T_CAP * (off_t)(sizeof(e) + sizeof(m))), 0);
	ck_assert_int_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	for (i = 0; i < h.hwm; i++) {
		e = (struct t_span){ .addr = 24 * TIB + i * 3 * TIB, .len = 3 * TIB };
		m = (struct t_meta){ .pid = getpid(), .state = 1 };	/* pending */
		ck_assert_int_eq(pwrite(fd, &e, sizeof(e), 64 + i * sizeof(e)), (ssize_t)sizeof(e));
		ck_assert_int_eq(pwrite(fd, &m, sizeof(m),
					64 + T_CAP * sizeof(e) + i * sizeof(m)), (ssize_t)sizeof(m));
	}
	close(fd);

	test_path(n, sizeof(n), "full");
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, n));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	/* An explicit scan whose every try the table says is held: ccan's
	 * first try, since nothing is mapped there. */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, n, s));
	ck_assert_uint_eq((uintptr_t)r.hdr, 30 * TIB);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_truncated_and_empty_tables_cost_a_reset)
{
	char plan[RSZSHM_PATH_MAX];
	struct rszshm r;
	char n[RSZSHM_PATH_MAX];

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "trunc");
	test_path(n, sizeof(n), "trunc");
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, n));	/* a real table */
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(truncate(plan, 100), 0);
	two_makers_succeed("trunc");
	ck_assert_int_eq(truncate(plan, 0), 0);
	two_makers_succeed("empty");
	ck_assert_int_eq(unlink(n), 0);
}
END_TEST

START_TEST(test_foreign_table_is_not_used)
{
	char plan[RSZSHM_PATH_MAX], other[RSZSHM_PATH_MAX];

	use_plan(plan, sizeof(plan), "foreign");
	/* Writable by others: not trusted, mk falls back. */
	write_file(plan, "x", 1);
	ck_assert_int_eq(chmod(plan, 0666), 0);
	two_makers_succeed("mode");
	/* A symlink: not followed. */
	unlink(plan);
	test_path(other, sizeof(other), "plan-foreign-target");
	write_file(other, "", 0);
	ck_assert_int_eq(symlink(other, plan), 0);
	two_makers_succeed("link");
	/* Another user's (as root): not used, never changed. */
	unlink(plan);
	write_file(plan, "untouched", 9);
	if (geteuid() == 0) {
		struct stat st;

		ck_assert_int_eq(chown(plan, 65534, 65534), 0);
		two_makers_succeed("owner");
		ck_assert_int_eq(stat(plan, &st), 0);
		ck_assert_int_eq(st.st_size, 9);
	}
	/* No table at all (a directory that does not exist). */
	test_path(plan, sizeof(plan), "no-such-dir/plan");
	ck_assert_int_eq(setenv("RSZSHM_PLAN", plan, 1), 0);
	two_makers_succeed("none");
}
END_TEST

/* ------------------------------------------------- the table's lock */

/* The lock word (lib/plan.c): its holder's PID namespace tag above its pid. */
#define T_LOCK_OFF 40
#define T_GEN_OFF 48
#define T_SINCE_OFF 56
#define T_SIZE (64 + T_CAP * (off_t)(sizeof(struct t_span) + sizeof(struct t_meta)))

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t word_of(pid_t pid)
{
	struct stat st;

	ck_assert_int_eq(stat("/proc/self/ns/pid", &st), 0);
	return (uint64_t)((uint32_t)st.st_ino | 1) << 32 | (uint32_t)pid;
}

static void put_u64(const char *plan, off_t off, uint64_t v)
{
	int fd = open(plan, O_WRONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &v, sizeof(v), off), (ssize_t)sizeof(v));
	close(fd);
}

static uint64_t get_u64(const char *plan, off_t off)
{
	int fd = open(plan, O_RDONLY | O_CLOEXEC);
	uint64_t v = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &v, sizeof(v), off), (ssize_t)sizeof(v));
	close(fd);
	return v;
}

/* Make a region with the default scan; true if it was placed through the
 * plan: next fit, within a GiB of the end of @prev (a fallback lands at
 * random in 48 TiB).  Its end in *@end; it is removed. */
static bool placed_after(const char *name, uintptr_t prev, uintptr_t *end)
{
	struct rszshm r;
	uintptr_t at;

	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, name));
	at = (uintptr_t)r.hdr;
	*end = at + r.max;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	return at >= prev && at - prev < GIB;
}

/* A live process of this namespace, to name as a lock holder: it stays
 * until *@release (the write end of its pipe) is closed.  Its pid. */
static pid_t live_process(int *release)
{
	int ready[2], hold[2];
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(hold), 0);
	if ((pid = test_fork()) == 0) {
		char c;

		close(hold[1]);
		test_post(ready[1]);
		(void)!read(hold[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	test_wait_byte(ready[0]);
	close(ready[0]);
	*release = hold[1];
	return pid;
}

/* Point the plan at a fresh table for this test, make it real with one
 * region placed through it (removed), and name regions @n after @tag:
 * the end of that region's span. */
static uintptr_t fresh_table(char *plan, char *n, const char *tag)
{
	uintptr_t end;

	use_plan(plan, RSZSHM_PATH_MAX, tag);
	test_path(n, RSZSHM_PATH_MAX, "%s", tag);
	test_track(n);
	(void)placed_after(n, 0, &end);
	return end;
}

START_TEST(test_table_locked_forever_costs_a_fallback)
{
	char plan[RSZSHM_PATH_MAX], n[RSZSHM_PATH_MAX];
	int release;
	pid_t pid;

	fresh_table(plan, n, "locked");
	pid = live_process(&release);
	put_u64(plan, T_LOCK_OFF, word_of(pid));
	/* Taken 1.5 s from now, by its stamp: makers have 3.5 s before it
	 * counts as stuck (a test below). */
	put_u64(plan, T_SINCE_OFF, now_ns() + 1500000000u);
	two_makers_succeed("locked");
	/* A live holder's word is never taken from it. */
	ck_assert_uint_eq(get_u64(plan, T_LOCK_OFF), word_of(pid));
	close(release);
	ck_assert_int_eq(test_wait(pid), 0);
}
END_TEST

/*
 * A lock word left by a holder killed in its use, or one that names no
 * process, is taken at once: the next maker still places through the plan.
 * One of another PID namespace is never taken (its holder cannot be asked).
 */
START_TEST(test_lock_of_a_dead_holder_is_taken_at_once)
{
	char plan[RSZSHM_PATH_MAX], n[RSZSHM_PATH_MAX];
	uint64_t junk[] = { 0xffffffffffffffffULL, 0x80000000ULL, 0x123400000000ULL };
	uintptr_t end;
	unsigned i;
	pid_t pid;

	NEEDS_64_BIT();
	end = fresh_table(plan, n, "dead");
	if ((pid = test_fork()) == 0) {
		put_u64(plan, T_LOCK_OFF, word_of(getpid()));
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
	ck_assert_msg(placed_after(n, end, &end), "a dead holder's lock was not taken");
	ck_assert_uint_eq(get_u64(plan, T_LOCK_OFF), 0);
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		put_u64(plan, T_LOCK_OFF, junk[i]);
		ck_assert_msg(placed_after(n, end, &end), "lock word %#" PRIx64 " was not taken",
			      junk[i]);
	}
	/* A dead pid, but of another namespace (the tag differs), taken a
	 * moment ago by its stamp: waited for, then a fallback. */
	put_u64(plan, T_LOCK_OFF, word_of(pid) ^ (2ULL << 32));
	put_u64(plan, T_SINCE_OFF, now_ns());
	placed_after(n, end, &end);
	ck_assert_uint_eq(get_u64(plan, T_LOCK_OFF), word_of(pid) ^ (2ULL << 32));
}
END_TEST

/*
 * A word held, still, since more than 2 s ago by its stamp (a holder
 * stopped in its use, one of another namespace lost, or damage) is taken
 * after the wait: one maker waits, the next ones do not, and the table is
 * used again.  So is one whose stamp lies in the future.
 */
START_TEST(test_lock_held_still_for_long_is_taken_after_the_wait)
{
	char plan[RSZSHM_PATH_MAX], n[RSZSHM_PATH_MAX];
	uint64_t stamps[2];
	uintptr_t end;
	unsigned i;
	int release;
	pid_t pid;

	NEEDS_64_BIT();
	end = fresh_table(plan, n, "stuck");
	pid = live_process(&release);	/* a live holder, of this namespace */
	stamps[0] = now_ns() - 3000000000ull;
	stamps[1] = now_ns() + 60000000000ull;
	for (i = 0; i < 2; i++) {
		put_u64(plan, T_LOCK_OFF, word_of(pid));
		put_u64(plan, T_SINCE_OFF, stamps[i]);
		ck_assert_msg(placed_after(n, end, &end), "a word held since %s was not taken",
			      i ? "the future" : "3 s ago");
		ck_assert_uint_eq(get_u64(plan, T_LOCK_OFF), 0);
	}
	close(release);
	ck_assert_int_eq(test_wait(pid), 0);
}
END_TEST

/*
 * A table whose lock passes from maker to maker, each slow (as under an
 * emulator), is waited for while it keeps changing: the next maker still
 * places through the plan, right after the last span, instead of falling
 * back to a random one after 0.2 s.  The holder here keeps the lock for
 * 0.6 s, counting a use every 20 ms, then lets go.
 */
START_TEST(test_table_busy_with_progress_is_waited_for)
{
	char plan[RSZSHM_PATH_MAX], n[2][RSZSHM_PATH_MAX];
	int ready[2];
	struct rszshm a, b;
	uintptr_t a_end;
	pid_t pid;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "progress");
	test_path(n[0], sizeof(n[0]), "progress-a");
	test_path(n[1], sizeof(n[1]), "progress-b");
	test_track(n[0]);
	test_track(n[1]);
	ck_assert_ptr_nonnull(rszshm_mk(&a, 4096, n[0]));
	a_end = (uintptr_t)a.hdr + a.max;
	ck_assert_int_eq(pipe(ready), 0);
	if ((pid = test_fork()) == 0) {
		struct timespec t = { 0, 20 * 1000 * 1000 };

		put_u64(plan, T_LOCK_OFF, word_of(getpid()));
		test_post(ready[1]);
		for (uint64_t i = 1; i <= 30; i++) {
			put_u64(plan, T_GEN_OFF, get_u64(plan, T_GEN_OFF) + i);
			nanosleep(&t, NULL);
		}
		put_u64(plan, T_LOCK_OFF, 0);
		_exit(0);
	}
	close(ready[1]);
	test_wait_byte(ready[0]);
	close(ready[0]);
	ck_assert_ptr_nonnull(rszshm_mk(&b, 4096, n[1]));
	ck_assert_int_eq(test_wait(pid), 0);
	/* Next fit from the cursor: the span starts within a GiB of a's end
	 * (a random fallback lands anywhere in 48 TiB). */
	ck_assert_msg((uintptr_t)b.hdr >= a_end && (uintptr_t)b.hdr - a_end < GIB,
		      "b at %p, a ends at %#" PRIxPTR ": not placed through the plan", (void *)b.hdr, a_end);
	ck_assert_int_eq(rszshm_dt(&a), 0);
	ck_assert_int_eq(rszshm_dt(&b), 0);
	ck_assert_int_eq(rszshm_unlink(&a), 0);
	ck_assert_int_eq(rszshm_unlink(&b), 0);
}
END_TEST

/*
 * The table is mapped: another process cutting it to any length at any
 * moment costs a maker at most a fallback, never a signal.
 */
START_TEST(test_table_truncated_under_makers_never_raises_a_signal)
{
	static const off_t cuts[] = { 0, 100, 4096, 40000, T_SIZE / 2, T_SIZE };
	char plan[RSZSHM_PATH_MAX], n[RSZSHM_PATH_MAX];
	struct rszshm r;
	int stop[2];
	pid_t pid;

	NEEDS_64_BIT();
	if (getenv("RSZSHM_EXE_WRAPPER") && strstr(getenv("RSZSHM_EXE_WRAPPER"), "aarch64")) {
		printf("%s: skipped: under qemu-aarch64 a fault on a cut page is fatal after "
		       "the handler patched it (the native legs run this race)\n", __func__);
		fflush(stdout);
		return;
	}
	use_plan(plan, sizeof(plan), "cut");
	test_path(n, sizeof(n), "cut");
	test_track(n);
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, n));	/* a real table, mapped here */
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	ck_assert_int_eq(pipe(stop), 0);
	if ((pid = test_fork()) == 0) {
		char c;

		close(stop[1]);
		fcntl(stop[0], F_SETFL, O_NONBLOCK);
		for (unsigned i = 0; read(stop[0], &c, 1) < 0; i++)
			if (truncate(plan, cuts[i % (sizeof(cuts) / sizeof(cuts[0]))]) < 0)
				_exit(1);
		_exit(0);
	}
	close(stop[0]);
	for (unsigned i = 0; i < 300; i++) {
		ck_assert_msg(rszshm_mk(&r, 4096, n) != NULL, "make %u: %s", i, strerror(errno));
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_unlink(&r), 0);
	}
	close(stop[1]);
	ck_assert_int_eq(test_wait(pid), 0);
}
END_TEST

/* Threads of one process take turns: every region they make has its entry. */
#define THREADS 4
#define PER_THREAD 32

struct maker {
	unsigned id;
	struct rszshm r[PER_THREAD];
	char n[PER_THREAD][RSZSHM_PATH_MAX];
	bool ok;
};

static void *thread_maker(void *arg)
{
	struct maker *m = arg;
	unsigned i;

	m->ok = true;
	for (i = 0; i < PER_THREAD; i++)
		if (!rszshm_mk(&m->r[i], 4096, m->n[i]))
			m->ok = false;
	return NULL;
}

START_TEST(test_threads_of_one_process_each_get_an_entry)
{
	static struct maker mk[THREADS];
	char plan[RSZSHM_PATH_MAX];
	pthread_t th[THREADS];
	unsigned t, i, found = 0, e;
	struct t_span *spans;
	struct stat st;
	int fd;

	NEEDS_64_BIT();
	use_plan(plan, sizeof(plan), "threads");
	for (t = 0; t < THREADS; t++)
		for (i = 0; i < PER_THREAD; i++) {
			test_path(mk[t].n[i], sizeof(mk[t].n[i]), "threads-%u-%u", t, i);
			test_track(mk[t].n[i]);
		}
	for (t = 0; t < THREADS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, thread_maker, &mk[t]), 0);
	for (t = 0; t < THREADS; t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert(mk[t].ok);
	}
	spans = calloc(T_CAP, sizeof(*spans));
	ck_assert_ptr_nonnull(spans);
	ck_assert_int_ge(fd = open(plan, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_eq(pread(fd, spans, T_CAP * sizeof(*spans), 64),
			 (ssize_t)(T_CAP * sizeof(*spans)));
	close(fd);
	for (t = 0; t < THREADS; t++)
		for (i = 0; i < PER_THREAD; i++) {
			ck_assert_int_eq(stat(mk[t].n[i], &st), 0);
			for (e = 0; e < T_CAP; e++)
				if (spans[e].dev == (uint64_t)st.st_dev &&
				    spans[e].ino == (uint64_t)st.st_ino &&
				    spans[e].addr == (uintptr_t)mk[t].r[i].hdr &&
				    spans[e].len == mk[t].r[i].max)
					break;
			found += e < T_CAP;
			ck_assert_int_eq(rszshm_dt(&mk[t].r[i]), 0);
			ck_assert_int_eq(rszshm_unlink(&mk[t].r[i]), 0);
		}
	free(spans);
	ck_assert_uint_eq(found, THREADS * PER_THREAD);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("plan");

	TEST_ADD_T(s, test_64_makers_then_one_process_attaches_all, 240);
	TEST_ADD_T(s, test_1000_live_regions_any_64_attach_together, 480);
	TEST_ADD(s, test_default_placement_skips_live_spans_and_reuses_freed_ones);
	TEST_ADD(s, test_default_span_starts_its_head_below_a_gib);
	TEST_ADD(s, test_removed_file_frees_its_span);
	TEST_ADD(s, test_killed_maker_frees_its_span);
	TEST_ADD(s, test_explicit_scan_keeps_ccan_order);
	TEST_ADD_T(s, test_random_bytes_in_the_table_cost_a_reset, 240);
	TEST_ADD(s, test_table_that_holds_everything_costs_a_fallback);
	TEST_ADD(s, test_truncated_and_empty_tables_cost_a_reset);
	TEST_ADD(s, test_foreign_table_is_not_used);
	TEST_ADD(s, test_table_locked_forever_costs_a_fallback);
	TEST_ADD(s, test_lock_of_a_dead_holder_is_taken_at_once);
	TEST_ADD(s, test_lock_held_still_for_long_is_taken_after_the_wait);
	TEST_ADD(s, test_table_busy_with_progress_is_waited_for);
	TEST_ADD_T(s, test_table_truncated_under_makers_never_raises_a_signal, 240);
	TEST_ADD(s, test_threads_of_one_process_each_get_an_entry);
	return s;
}

const struct test_helper test_helpers[] = {
	{ "make", helper_make },
	{ NULL, NULL },
};
