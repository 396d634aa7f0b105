/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-open.c - rszshm_open(): attach during growth, open-or-create among
 * many processes, the initializer, creation modes and a second uid,
 * complete-or-absent files without O_TMPFILE, a full file system, and the
 * error text (rszshm_errmsg()).
 *
 * Processes synchronise with pipes and waitpid only; shared counters live in
 * a MAP_SHARED anonymous mapping made before fork.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

#define CCHECK(cond) HCHECK(cond)

static size_t pgsz(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* 64-bit builds: spans of their own, @tib TiB up, 1 TiB apart.  A 32-bit
 * address space has no TiB: there @tib picks a start between 1 and 2 GiB,
 * 64 MiB apart, and the spiral hops 64 MiB. */
#define WIDE (UINTPTR_MAX > 0xffffffffu)
#define BIG_SPAN (WIDE && !emulated() ? (size_t)(64ULL << 30) : (size_t)256 << 20)	/* sparse */
#define ERR_SPAN (WIDE ? (size_t)(4ULL << 30) : (size_t)256 << 20)

/* Run under an emulator (qemu-user: $RSZSHM_EXE_WRAPPER)?  It keeps state
 * per page of every mapping, and keeps memory per attach of a large span:
 * 20,000 attaches of a 64 GiB span, or even of 1 GiB, take it minutes and
 * gigabytes (the kernel's OOM killer ends it). */
static bool emulated(void)
{
	const char *w = getenv("RSZSHM_EXE_WRAPPER");

	return w && *w;
}

static struct rszshm_scan scan_at(unsigned tib, size_t len, unsigned iter)
{
	if (!WIDE)
		return (struct rszshm_scan){ (void *)(uintptr_t)((1UL << 30) + (tib % 16) * (64UL << 20)),
					     len, 64UL << 20, iter };
	return (struct rszshm_scan){ (void *)(uintptr_t)((uint64_t)tib << 40), len,
				     (size_t)(1ULL << 40), iter };
}

static void *shared_anon(size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(m, MAP_FAILED);
	return m;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ====================================================== attach during growth */

#define GROW_ATTACHERS 4
#define GROW_ATTACHES 5000	/* per attacher: 20,000 in all */
#define GROW_ATTACHES_EMULATED 256	/* under qemu-user (see emulated()); a multiple of 4 */

struct grow_shared {
	int attachers_left;
	int failures;
	int attaches;
	int views;
	int grows;
	char why[GROW_ATTACHERS][RSZSHM__WHY_MAX];
};

/*
 * Attach by name and detach, again and again, while another process grows
 * the region a page at a time: no attach may fail (20,000 of them).  Every
 * fourth round also opens a view (rszshm-dump's path), which must not fail
 * either.
 */
START_TEST(test_attach_during_growth_never_fails)
{
	struct grow_shared *sh = shared_anon(sizeof(*sh));
	char path[RSZSHM_PATH_MAX];
	pid_t grower, pids[GROW_ATTACHERS];
	int go[2], i;
	struct rszshm r;

	int attaches = emulated() ? GROW_ATTACHES_EMULATED : GROW_ATTACHES;

	if (emulated()) {
		printf("%s: under an emulator: %d attaches of a %zu MiB span, not %d of "
		       "64 GiB\n", __func__, GROW_ATTACHERS * attaches, BIG_SPAN >> 20,
		       GROW_ATTACHERS * GROW_ATTACHES);
		fflush(stdout);
	}
	test_path(path, sizeof(path), "growing");
	/* A sparse span (64 GiB, 1 GiB on 32-bit builds): page-by-page growth
	 * never reaches its end. */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 1, path, scan_at(70, BIG_SPAN, 4)));
	test_track(path);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	sh->attachers_left = GROW_ATTACHERS;
	ck_assert_int_eq(pipe(go), 0);

	grower = test_fork();
	if (grower == 0) {
		struct rszshm g;
		char b;

		close(go[1]);
		CCHECK(rszshm_at(&g, path));
		CCHECK(read(go[0], &b, 1) == 0);
		/* Up to the span's end at most (never reached but under an emulator). */
		while (__atomic_load_n(&sh->attachers_left, __ATOMIC_ACQUIRE) > 0 &&
		       g.flen + pgsz() <= g.max) {
			CCHECK(rszshm_grow_to(&g, g.flen + pgsz()) == 0);
			__atomic_add_fetch(&sh->grows, 1, __ATOMIC_RELAXED);
		}
		CCHECK(rszshm_dt(&g) == 0);
		_exit(0);
	}
	for (i = 0; i < GROW_ATTACHERS; i++) {
		pids[i] = test_fork();
		if (pids[i] == 0) {
			int n, fails = 0;
			char b;

			close(go[1]);
			CCHECK(read(go[0], &b, 1) == 0);
			for (n = 0; n < attaches; n++) {
				struct rszshm a;

				if (!rszshm_at(&a, path)) {
					snprintf(sh->why[i], sizeof(sh->why[i]), "at: %s",
						 rszshm_errmsg());
					fails++;
				} else {
					CCHECK(rszshm_dt(&a) == 0);
					__atomic_add_fetch(&sh->attaches, 1, __ATOMIC_RELAXED);
				}
				if (n % 4 == 3) {
					struct rszshm__view v;
					const char *why;
					int rc = rszshm__view_open(path, &v, &why);

					if (rc < 0) {
						snprintf(sh->why[i], sizeof(sh->why[i]), "view: %s",
							 why ? why : strerror(-rc));
						fails++;
						continue;
					}
					rszshm__view_close(&v);
					__atomic_add_fetch(&sh->views, 1, __ATOMIC_RELAXED);
				}
			}
			__atomic_add_fetch(&sh->failures, fails, __ATOMIC_RELAXED);
			__atomic_sub_fetch(&sh->attachers_left, 1, __ATOMIC_RELEASE);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);	/* EOF: everyone starts at once */
	for (i = 0; i < GROW_ATTACHERS; i++)
		ck_assert_int_eq(test_wait(pids[i]), 0);
	ck_assert_int_eq(test_wait(grower), 0);
	for (i = 0; i < GROW_ATTACHERS; i++)
		ck_assert_msg(sh->why[i][0] == '\0', "attacher %d: %s", i, sh->why[i]);
	ck_assert_int_eq(sh->failures, 0);
	ck_assert_int_eq(sh->attaches, GROW_ATTACHERS * attaches);
	ck_assert_int_gt(sh->grows, 0);
	ck_assert_int_eq(sh->views, GROW_ATTACHERS * attaches / 4);
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/* ========================================================== open or create */

#define RACERS 16
#define ROUNDS 200
#define MARK 0x5a5a1234u

struct race_shared {
	int inits[ROUNDS];		/* initializer runs per round */
	int makers[ROUNDS];		/* processes whose init ran, per round */
	ino_t ino[ROUNDS][RACERS];
	int bad[ROUNDS][RACERS];	/* 1 failed, 2 saw no mark */
	int err[ROUNDS][RACERS];
};

struct race_arg {
	struct race_shared *sh;
	int round;
	bool ran;
};

static int race_init(struct rszshm *r, void *arg)
{
	struct race_arg *a = arg;
	unsigned *mark = r->dat;

	__atomic_add_fetch(&a->sh->inits[a->round], 1, __ATOMIC_RELAXED);
	a->ran = true;
	/* Written last: a process that sees the region sees the mark. */
	*mark = MARK;
	return 0;
}

/*
 * 16 processes start together on one name, 200 times: exactly one makes the
 * region (its initializer runs once), and every one is attached to that
 * region (same inode) with the initializer's work already there.
 */
START_TEST(test_open_or_create_race_one_maker)
{
	struct race_shared *sh = shared_anon(sizeof(*sh));
	char dir[RSZSHM_PATH_MAX];
	int go[RACERS][2], done[2];
	pid_t pids[RACERS];
	int i, round;

	test_subdir(dir, sizeof(dir), "race");
	ck_assert_int_eq(pipe(done), 0);
	for (i = 0; i < RACERS; i++)
		ck_assert_int_eq(pipe(go[i]), 0);
	for (i = 0; i < RACERS; i++) {
		pids[i] = test_fork();
		if (pids[i] == 0) {
			char b, path[RSZSHM_PATH_MAX + 16];
			int j;

			for (j = 0; j < RACERS; j++) {
				close(go[j][1]);
				if (j != i)
					close(go[j][0]);
			}
			close(done[0]);
			for (round = 0; round < ROUNDS; round++) {
				struct race_arg a = { sh, round, false };
				struct rszshm_opts o = {
					.flags = RSZSHM_CREATE, .len = 64,
					.scan = scan_at(40, 1 << 20, 64),
					.init = race_init, .arg = &a,
				};
				struct rszshm r;
				struct stat st;

				CCHECK(read(go[i][0], &b, 1) == 1);
				snprintf(path, sizeof(path), "%s/r%d", dir, round);
				if (!rszshm_open(&r, path, &o)) {
					sh->bad[round][i] = 1;
					sh->err[round][i] = errno;
				} else {
					if (*(unsigned *)r.dat != MARK)
						sh->bad[round][i] = 2;
					CCHECK(fstat(r.fd, &st) == 0);
					sh->ino[round][i] = st.st_ino;
					if (a.ran)
						__atomic_add_fetch(&sh->makers[round], 1, __ATOMIC_RELAXED);
					CCHECK(rszshm_dt(&r) == 0);
				}
				CCHECK(write(done[1], "d", 1) == 1);
			}
			_exit(0);
		}
	}
	close(done[1]);
	for (i = 0; i < RACERS; i++)
		close(go[i][0]);
	for (round = 0; round < ROUNDS; round++) {
		char path[RSZSHM_PATH_MAX + 16], b;

		for (i = 0; i < RACERS; i++)
			ck_assert_int_eq(write(go[i][1], "g", 1), 1);
		for (i = 0; i < RACERS; i++)
			ck_assert_int_eq(read(done[0], &b, 1), 1);
		for (i = 0; i < RACERS; i++) {
			ck_assert_msg(sh->bad[round][i] == 0, "round %d process %d: %s", round, i,
				      sh->bad[round][i] == 1 ? strerror(sh->err[round][i])
							    : "region without the initializer's mark");
			ck_assert_msg(sh->ino[round][i] == sh->ino[round][0],
				      "round %d: process %d on another region", round, i);
		}
		ck_assert_int_eq(sh->inits[round], 1);
		ck_assert_int_eq(sh->makers[round], 1);
		snprintf(path, sizeof(path), "%s/r%d", dir, round);
		ck_assert_int_eq(unlink(path), 0);
	}
	for (i = 0; i < RACERS; i++) {
		close(go[i][1]);
		ck_assert_int_eq(test_wait(pids[i]), 0);
	}
	close(done[0]);
	ck_assert_int_eq(test_dir_count(dir), 0);
}
END_TEST

static int die_init(struct rszshm *r, void *arg)
{
	(void)r;
	(void)arg;
	raise(SIGKILL);
	return 0;
}

static int count_init(struct rszshm *r, void *arg)
{
	(void)r;
	++*(int *)arg;
	return 0;
}

/* A maker killed inside its initializer leaves no region under the name, and
 * the next caller makes one (running its initializer). */
START_TEST(test_open_maker_killed_in_init_leaves_nothing)
{
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	int pass;

	test_subdir(dir, sizeof(dir), "killed");
	test_in_dir(path, dir, "r");
	for (pass = 0; pass < 2; pass++) {
		struct rszshm_opts o = { .flags = RSZSHM_CREATE | (pass ? RSZSHM_HEAP : 0),
					 .len = 4096, .scan = scan_at(41, 1 << 20, 64),
					 .init = die_init };
		struct rszshm r;
		int runs = 0;
		pid_t pid;

		/* The second pass acts as a file system without O_TMPFILE. */
		rszshm__sys_no_tmpfile = pass == 1;
		pid = test_fork();
		if (pid == 0) {
			rszshm_open(&r, path, &o);
			_exit(1);
		}
		ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
		ck_assert(!exists(path));
		ck_assert_ptr_null(rszshm_at(&r, path));
		ck_assert_int_eq(errno, ENOENT);

		o.init = count_init;
		o.arg = &runs;
		ck_assert_ptr_nonnull(rszshm_open(&r, path, &o));
		ck_assert_int_eq(runs, 1);
		ck_assert(exists(path));
		ck_assert_int_eq(rszshm_dt(&r), 0);
		/* Open again: attached, not made. */
		ck_assert_ptr_nonnull(rszshm_open(&r, path, &o));
		ck_assert_int_eq(runs, 1);
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(unlink(path), 0);
		rszshm__sys_no_tmpfile = false;
	}
}
END_TEST

static int fail_init(struct rszshm *r, void *arg)
{
	(void)r;
	(void)arg;
	return EDOM;
}

/* The flags' combinations, EEXIST, a failing initializer, a heap asked of
 * a raw region, and the wrappers' old errors. */
START_TEST(test_open_flags_and_errors)
{
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	struct rszshm_opts o = { .flags = RSZSHM_CREATE | RSZSHM_EXCL, .len = 100,
				 .scan = scan_at(42, 1 << 20, 64) };
	struct rszshm r, h;

	test_subdir(dir, sizeof(dir), "flags");
	test_in_dir(path, dir, "r");
	ck_assert_ptr_null(rszshm_open(&r, path, NULL));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_nonnull(rszshm_open(&r, path, &o));
	ck_assert_uint_ge(r.cap, 100);
	ck_assert_ptr_null(rszshm_open(&h, path, &o));
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(rszshm_dt(&r), 0);

	/* Open without making: the region as its maker made it. */
	ck_assert_ptr_nonnull(rszshm_open(&r, path, NULL));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	o.flags = RSZSHM_CREATE | RSZSHM_HEAP;
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_ptr_nonnull(strstr(rszshm_errmsg(), "not a heap"));
	o.flags = RSZSHM_RDONLY;
	ck_assert_ptr_nonnull(rszshm_open(&r, path, &o));
	ck_assert(r.flags & RSZSHM_RDONLY);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(unlink(path), 0);

	/* A failing initializer: its errno, nothing left. */
	o.flags = RSZSHM_CREATE;
	o.init = fail_init;
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, EDOM);
	ck_assert_ptr_nonnull(strstr(rszshm_errmsg(), "initializer"));
	ck_assert_int_eq(test_dir_count(dir), 0);
	o.init = NULL;

	/* EINVAL: bad combinations, modes and lengths. */
	o.flags = RSZSHM_CREATE | RSZSHM_RDONLY;
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, EINVAL);
	o.flags = RSZSHM_ANON;
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, EINVAL);
	o.flags = RSZSHM_CREATE;
	o.mode = 01777;
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, EINVAL);
	o.mode = 0;
	o.len = 0;
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, EINVAL);
	o.flags = 0x80000000u;
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_open(NULL, path, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_open(&r, NULL, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(test_dir_count(dir), 0);
	/* Open-or-create in a directory that does not exist. */
	o = (struct rszshm_opts){ .flags = RSZSHM_CREATE, .len = 1 };
	test_in_dir(path, dir, "missing/r");
	ck_assert_ptr_null(rszshm_open(&r, path, &o));
	ck_assert_int_eq(errno, ENOENT);

	/* An anonymous heap, with the default scan. */
	o = (struct rszshm_opts){ .flags = RSZSHM_CREATE | RSZSHM_ANON | RSZSHM_HEAP, .len = 4096 };
	ck_assert_ptr_nonnull(rszshm_open(&r, "ignored", &o));
	ck_assert_str_eq(r.fname, "");
	ck_assert_ptr_nonnull(rszshm_alloc(&r, 100));
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* ================================================================== modes */

/* The mode asked for, exactly, whatever the umask; the default is 0600/0700. */
START_TEST(test_open_mode_exact_despite_umask)
{
	static const mode_t masks[] = { 0, 022, 077 };
	static const mode_t modes[] = { 0, 0660, 0644, 0640, 0606 };
	static const mode_t dirs[] = { 0700, 0770, 0755, 0750, 0707 };
	size_t i, j;

	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		umask(masks[i]);
		for (j = 0; j < sizeof(modes) / sizeof(modes[0]); j++) {
			char tmpl[RSZSHM_PATH_MAX], dir[RSZSHM_PATH_MAX], *slash;
			struct rszshm_opts o = { .flags = RSZSHM_CREATE, .mode = modes[j], .len = 1,
						 .scan = scan_at(43, 1 << 20, 64) };
			struct rszshm r;

			test_tmpl(tmpl, sizeof(tmpl), "rszshm_mode");
			ck_assert_ptr_nonnull(rszshm_open(&r, tmpl, &o));
			test_track(r.fname);
			ck_assert_int_eq(mode_of(r.fname), modes[j] ? modes[j] : 0600);
			strcpy(dir, r.fname);
			slash = strrchr(dir, '/');
			*slash = '\0';
			ck_assert_int_eq(mode_of(dir), dirs[j]);
			ck_assert_int_eq(rszshm_dt(&r), 0);
			ck_assert_int_eq(rszshm_rm(&r), 0);
		}
	}
	umask(022);
}
END_TEST

#define OTHER_ID 65534

/* In a child: drop to uid/gid 65534 and try to attach @path read-write. */
static int attach_as_other(const char *path)
{
	pid_t pid = test_fork();

	if (pid == 0) {
		gid_t g = OTHER_ID;
		struct rszshm r;

		CCHECK(setgroups(1, &g) == 0);
		CCHECK(setgid(OTHER_ID) == 0);
		CCHECK(setuid(OTHER_ID) == 0);
		CCHECK(getuid() == OTHER_ID && geteuid() == OTHER_ID);
		if (!rszshm_at(&r, path))
			_exit(errno == EACCES ? 2 : 3);
		/* Read-write: a write goes through to the file. */
		((volatile char *)r.dat)[0] = 'w';
		CCHECK(rszshm_dt(&r) == 0);
		_exit(0);
	}
	return test_wait(pid);
}

/*
 * A second user: a region made with a group mode, its group being that
 * user's group, is attached read-write; one made with the default mode
 * gives EACCES.
 */
START_TEST(test_group_mode_second_uid)
{
	struct rszshm_opts o = { .flags = RSZSHM_CREATE, .mode = 0660, .len = 1,
				 .scan = scan_at(44, 1 << 20, 64) };
	char dir[RSZSHM_PATH_MAX], *slash;
	struct rszshm r;

	/* Under /dev/shm itself: the run's scratch directory is 0700. */
	ck_assert_ptr_nonnull(rszshm_open(&r, NULL, &o));
	test_track(r.fname);
	strcpy(dir, r.fname);
	slash = strrchr(dir, '/');
	*slash = '\0';
	ck_assert_int_eq(chown(dir, (uid_t)-1, OTHER_ID), 0);
	ck_assert_int_eq(fchown(r.fd, (uid_t)-1, OTHER_ID), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(attach_as_other(r.fname), 0);
	ck_assert_ptr_nonnull(rszshm_at(&r, r.fname));
	ck_assert_int_eq(((char *)r.dat)[0], 'w');
	ck_assert_int_eq(rszshm_dt(&r), 0);
	/* The group's bits are what lets it in. */
	ck_assert_int_eq(chmod(r.fname, 0600), 0);
	ck_assert_int_eq(attach_as_other(r.fname), 2);
	ck_assert_int_eq(rszshm_rm(&r), 0);

	/* The default mode: the directory and the file are the owner's. */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 1, NULL, scan_at(44, 1 << 20, 64)));
	test_track(r.fname);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(attach_as_other(r.fname), 2);
	/* Even with the group owning both. */
	strcpy(dir, r.fname);
	slash = strrchr(dir, '/');
	*slash = '\0';
	ck_assert_int_eq(chown(dir, (uid_t)-1, OTHER_ID), 0);
	ck_assert_int_eq(chown(r.fname, (uid_t)-1, OTHER_ID), 0);
	ck_assert_int_eq(attach_as_other(r.fname), 2);
	ck_assert_int_eq(rszshm_rm(&r), 0);
}
END_TEST

/* ===================================================== without O_TMPFILE */

static void remove_tmp_names(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (strncmp(e->d_name, ".rszshm-tmp-", 12) == 0)
			ck_assert_int_eq(unlinkat(dirfd(d), e->d_name, 0), 0);
	closedir(d);
}

static void kill_at_point(int point)
{
	static int target;
	const char *t = getenv("RSZSHM_TEST_KILL_AT");

	if (!target && t)
		target = atoi(t);
	if (point == target)
		raise(SIGKILL);
}

/*
 * Where O_TMPFILE is missing, a maker killed at any point leaves nothing
 * under the region's name, and a new maker then succeeds; every failure
 * that returns removes the temporary file too.
 */
START_TEST(test_no_tmpfile_killed_maker_leaves_no_file)
{
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	struct rszshm r;
	int point, n;

	test_subdir(dir, sizeof(dir), "notmpfile-kill");
	test_in_dir(path, dir, "r");
	for (point = 1; point <= 3; point++) {
		char env[16];
		pid_t pid;

		snprintf(env, sizeof(env), "%d", point);
		setenv("RSZSHM_TEST_KILL_AT", env, 1);
		pid = test_fork();
		if (pid == 0) {
			rszshm__sys_no_tmpfile = true;
			rszshm__map_hook = kill_at_point;
			rszshm_mk(&r, 4096, path, scan_at(45, 1 << 20, 64));
			_exit(1);
		}
		ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
		ck_assert_msg(!exists(path), "a file under the name after a kill at point %d",
			      point);
		/* Only the temporary file, under another name. */
		ck_assert_int_eq(test_dir_count(dir), 1);
		rszshm__sys_no_tmpfile = true;
		ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, path, scan_at(45, 1 << 20, 64)));
		rszshm__sys_no_tmpfile = false;
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(unlink(path), 0);
		/* The dead maker's temporary file: remove it. */
		remove_tmp_names(dir);
		ck_assert_int_eq(test_dir_count(dir), 0);
	}
	unsetenv("RSZSHM_TEST_KILL_AT");

	/* Every failure that returns cleans up its temporary file. */
	rszshm__sys_no_tmpfile = true;
	for (n = 1; n < 60; n++) {
		unsigned long calls;
		void *p;

		rszshm__fault_inject((unsigned long)n, false, EIO);
		p = rszshm_mk(&r, 4096, path, scan_at(45, 1 << 20, 64));
		calls = rszshm__fault_calls();
		rszshm__fault_clear();
		if (p) {
			ck_assert_int_eq(rszshm_dt(&r), 0);
			ck_assert_int_eq(unlink(path), 0);
			/* Failing to unlink the temporary name after the link
			 * only leaves a second name of a complete region. */
			remove_tmp_names(dir);
			if (calls < (unsigned long)n)
				break;	/* no call failed: every one was tried */
			continue;
		}
		ck_assert_int_eq(errno, EIO);
		ck_assert_msg(test_dir_count(dir) == 0, "call %d failing left a file", n);
	}
	ck_assert_int_gt(n, 5);
	ck_assert_int_lt(n, 60);
	/* A name made meanwhile wins: link never replaces it. */
	ck_assert_int_eq(close(open(path, O_CREAT | O_EXCL | O_WRONLY, 0600)), 0);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path, scan_at(45, 1 << 20, 64)));
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(test_dir_count(dir), 1);
	rszshm__sys_no_tmpfile = false;
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/*
 * The same on a real file system without O_TMPFILE: a FUSE mount (bindfs
 * over a scratch directory, in this test's own mount namespace), where the
 * library's fallback is taken because the kernel refuses O_TMPFILE, not
 * because a test switch says so.  Makers are killed at each numbered point
 * of making and at random moments; after each kill the name holds either
 * nothing or a complete region that attaches and checks clean.
 */
static int fuse_mount(const char *src, const char *mnt)
{
	pid_t pid;
	int st;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("bindfs", "bindfs", src, mnt, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return 0;
}

/* 1 if @dir refuses O_TMPFILE (as FUSE does), 0 if it takes it. */
static int refuses_tmpfile(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR, 0600);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL;
}

START_TEST(test_fuse_without_tmpfile_killed_maker_leaves_no_half_file)
{
	char src[RSZSHM_PATH_MAX], mnt[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	int trial, complete = 0, absent = 0;
	struct rszshm r;

	test_subdir(src, sizeof(src), "fuse-src");
	test_subdir(mnt, sizeof(mnt), "fuse-mnt");
	ck_assert_int_eq(fuse_mount(src, mnt), 0);
	ck_assert_int_eq(refuses_tmpfile(mnt), 1);
	test_in_dir(path, mnt, "r");
	srandom(1);
	for (trial = 0; trial < 100; trial++) {
		/* 10 kills at each numbered point, then kills at random moments. */
		int point = trial < 30 ? trial / 10 + 1 : 0;
		char env[16];
		pid_t pid;

		snprintf(env, sizeof(env), "%d", point);
		setenv("RSZSHM_TEST_KILL_AT", env, 1);
		pid = test_fork();
		if (pid == 0) {
			rszshm__map_hook = kill_at_point;
			rszshm_mk(&r, 64 * 1024, path, scan_at(45, 1 << 20, 64));
			_exit(0);
		}
		if (point == 0) {
			volatile unsigned long spin = (unsigned long)random() % 2000000;

			while (spin)
				spin--;
			kill(pid, SIGKILL);
		} else {
			ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
		}
		if (point == 0)
			test_wait(pid);
		if (exists(path)) {
			char msg[200];

			ck_assert_msg(rszshm_at(&r, path) != NULL,
				      "trial %d: a file under the name that does not attach: %s",
				      trial, rszshm_errmsg());
			ck_assert_msg(rszshm_check(&r, msg, sizeof(msg)) == 0, "trial %d: %s", trial,
				      msg);
			ck_assert_int_eq(rszshm_dt(&r), 0);
			ck_assert_int_eq(unlink(path), 0);
			complete++;
		} else {
			absent++;
		}
		/* A dead maker's temporary file, under another name: remove it. */
		remove_tmp_names(mnt);
		ck_assert_int_eq(test_dir_count(mnt), 0);
	}
	unsetenv("RSZSHM_TEST_KILL_AT");
	/* Every kill at a numbered point came before the link: nothing there. */
	ck_assert_int_ge(absent, 30);
	ck_assert_int_eq(complete + absent, 100);
	ck_assert_int_eq(umount2(mnt, MNT_DETACH), 0);
}
END_TEST

/* ====================================================== full file system */

/* A sparse mk on a full file system, raw or heap: ENOSPC, and nothing left
 * behind (no file, no temporary file, no directory). */
START_TEST(test_sparse_mk_full_fs_enospc_leaves_nothing)
{
	char dir[RSZSHM_PATH_MAX];
	pid_t pid;

	test_subdir(dir, sizeof(dir), "fullmk");
	pid = test_fork();
	if (pid == 0) {
		char path[RSZSHM_PATH_MAX + 32], buf[4096];
		struct rszshm r;
		int fd, pass;
		off_t full;

		CCHECK(test_small_tmpfs(dir) == 0);
		snprintf(path, sizeof(path), "%s/filler", dir);
		fd = open(path, O_CREAT | O_WRONLY, 0600);
		CCHECK(fd >= 0);
		memset(buf, 'f', sizeof(buf));
		while (write(fd, buf, sizeof(buf)) > 0)
			;
		CCHECK(errno == ENOSPC);
		full = lseek(fd, 0, SEEK_END);
		for (pass = 0; pass < 8; pass++) {
			bool heap = pass & 4;

			/* A heap pass leaves room for the header page only: the
			 * heap's control block past it must not be SIGBUS. */
			if (heap)
				CCHECK(ftruncate(fd, full - (off_t)pgsz()) == 0);
			rszshm__sys_no_tmpfile = pass & 1;
			snprintf(path, sizeof(path), pass & 2 ? "%s/r" : "%s/rszshm_XXXXXX/0", dir);
			CCHECK(!rszshm_mk_flags(&r, 1 << 20, path, scan_at(46, 64 << 20, 64),
						heap ? RSZSHM_HEAP : 0));
			CCHECK(errno == ENOSPC);
			CCHECK(test_dir_count(dir) == 1);
			CCHECK(rszshm_errmsg() != NULL);
			if (heap)
				CCHECK(pwrite(fd, buf, pgsz(), full - (off_t)pgsz()) == (ssize_t)pgsz());
		}
		close(fd);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	rmdir(dir);
}
END_TEST

/* ================================================ truncated while attaching */

static const char *truncate_path;

static void truncate_at_4(int point)
{
	if (point == 4)
		CCHECK(truncate(truncate_path, 0) == 0);
}

/* A file truncated between the header's read and the mapping: attach fails
 * with ENODATA, and never reads the header through the mapping (SIGBUS). */
START_TEST(test_at_racing_truncation_enodata_not_sigbus)
{
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;

	test_path(path, sizeof(path), "truncated");
	ck_assert_ptr_nonnull(rszshm_mk(&r, 1, path, scan_at(48, 1 << 20, 64)));
	test_track(path);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	truncate_path = path;
	rszshm__map_hook = truncate_at_4;
	ck_assert_ptr_null(rszshm_at(&r, path));
	rszshm__map_hook = NULL;
	ck_assert_int_eq(errno, ENODATA);
	ck_assert_ptr_nonnull(strstr(rszshm_errmsg(), "truncated while attaching"));
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/* ============================================================= error text */

static void *errmsg_thread(void *arg)
{
	(void)arg;
	return (void *)rszshm_errmsg();
}

/* The text names the conflict or the field; it is per thread. */
START_TEST(test_errmsg_names_the_cause)
{
	char path[RSZSHM_PATH_MAX], other[RSZSHM_PATH_MAX], want[RSZSHM_PATH_MAX + 64];
	struct rszshm r, r2;
	pthread_t t;
	void *ret;
	int fd;

	test_path(path, sizeof(path), "err-a");
	test_path(other, sizeof(other), "err-b");
	/* The span in use, by a region attached in this process. */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 1, path, scan_at(47, ERR_SPAN, 1)));
	test_track(path);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	/* A copy of the file: same span. */
	{
		char cmd[3 * RSZSHM_PATH_MAX];

		snprintf(cmd, sizeof(cmd), "cp %s %s", path, other);
		ck_assert_int_eq(system(cmd), 0);
		test_track(other);
	}
	ck_assert_ptr_null(rszshm_at(&r2, other));
	ck_assert_int_eq(errno, ENOSPC);
	snprintf(want, sizeof(want), "span %#" PRIxPTR "+%s is in use in this process (by %s)",
		 (uintptr_t)scan_at(47, ERR_SPAN, 1).start, WIDE ? "4 GiB" : "256 MiB", path);
	ck_assert_str_eq(rszshm_errmsg(), want);
	/* Another thread has its own text. */
	ck_assert_int_eq(pthread_create(&t, NULL, errmsg_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(t, &ret), 0);
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	/* Detached: now it attaches. */
	ck_assert_ptr_nonnull(rszshm_at(&r2, other));
	ck_assert_int_eq(rszshm_dt(&r2), 0);
	/* Still the last failure's text after a success. */
	ck_assert_str_eq(rszshm_errmsg(), want);

	/* A truncated file: the field is named, errno stays ENODATA. */
	fd = open(other, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)pgsz()), 0);
	close(fd);
	ck_assert_ptr_null(rszshm_at(&r2, other));
	ck_assert_int_eq(errno, ENODATA);
	ck_assert_ptr_nonnull(strstr(rszshm_errmsg(), "file is shorter than the length in its header"));
	ck_assert_ptr_nonnull(strstr(rszshm_errmsg(), other));
	/* Without a detail, strerror's text. */
	ck_assert_int_eq(rszshm_grow(NULL), -1);
	ck_assert_str_eq(rszshm_errmsg(), strerror(EINVAL));
	ck_assert_int_eq(unlink(other), 0);
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/* ================================================================ suite */

/* Can this process make a FUSE mount without O_TMPFILE (bindfs, root)? */
static bool can_mount_fuse(void)
{
	const char *scratch = getenv("RSZSHM_TEST_DIR");
	char src[RSZSHM_PATH_MAX], mnt[RSZSHM_PATH_MAX];
	pid_t pid;
	int st;

	if (!scratch || access("/dev/fuse", R_OK | W_OK) < 0 ||
	    snprintf(src, sizeof(src), "%s/fuse-probe-src", scratch) >= (int)sizeof(src) ||
	    snprintf(mnt, sizeof(mnt), "%s/fuse-probe-mnt", scratch) >= (int)sizeof(mnt))
		return false;
	if (mkdir(src, 0700) < 0 || mkdir(mnt, 0700) < 0)
		return false;
	pid = fork();
	if (pid == 0) {
		int ok = fuse_mount(src, mnt) == 0 && refuses_tmpfile(mnt) == 1;

		umount2(mnt, MNT_DETACH);
		_exit(ok ? 0 : 1);
	}
	st = -1;
	if (pid > 0)
		waitpid(pid, &st, 0);
	rmdir(mnt);
	rmdir(src);
	return pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

Suite *test_suite(void)
{
	Suite *s = suite_create("open");

	TEST_ADD(s, test_attach_during_growth_never_fails);
	TEST_ADD(s, test_open_or_create_race_one_maker);
	TEST_ADD(s, test_open_maker_killed_in_init_leaves_nothing);
	TEST_ADD(s, test_open_flags_and_errors);
	TEST_ADD(s, test_open_mode_exact_despite_umask);
	if (geteuid() == 0)
		TEST_ADD(s, test_group_mode_second_uid);
	else
		fprintf(stderr, "test-open: not root: test_group_mode_second_uid not run\n");
	TEST_ADD(s, test_no_tmpfile_killed_maker_leaves_no_file);
	if (can_mount_fuse())
		TEST_ADD(s, test_fuse_without_tmpfile_killed_maker_leaves_no_half_file);
	else
		fprintf(stderr, "test-open: cannot make a FUSE mount here (needs root, /dev/fuse "
			"and bindfs): test_fuse_without_tmpfile_killed_maker_leaves_no_half_file "
			"not run\n");
	if (test_can_mount_tmpfs())
		TEST_ADD(s, test_sparse_mk_full_fs_enospc_leaves_nothing);
	else
		fprintf(stderr, "test-open: cannot mount a tmpfs here (needs root and "
			"unshare(CLONE_NEWNS)): test_sparse_mk_full_fs_enospc_leaves_nothing "
			"not run\n");
	TEST_ADD(s, test_at_racing_truncation_enodata_not_sigbus);
	TEST_ADD(s, test_errmsg_names_the_cause);
	return s;
}

const struct test_helper test_helpers[] = {
	{ NULL, NULL },
};
