/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-common.h - what every test suite shares.
 *
 * Each test-<layer>.c is its own program: it defines test_suite() and
 * test_helpers[], and test-common.c supplies main().  main() makes one
 * scratch directory under /dev/shm for the run (test_dir()), runs the suite
 * in Check's fork mode (each test in a child, so the runner survives crashes
 * and failures), then removes the scratch directory and every file the tests
 * handed to test_track(): nothing is left under /dev/shm, pass or fail.
 *
 * Helpers are functions of the test program run in a fresh process with
 * test_exec_helper("name", args..., NULL): the program re-executes itself
 * as `prog --helper name args...`.  That is a real exec, not a fork: the
 * helper attaches regions by name like any unrelated process.  Synchronise
 * with pipes (test_post()/test_wait_byte()) and waitpid (test_wait()), never
 * with sleeps.
 */
#ifndef RSZSHM_TEST_COMMON_H
#define RSZSHM_TEST_COMMON_H

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "rszshm.h"

/* Defined by each suite. */
Suite *test_suite(void);

struct test_helper {
	const char *name;
	int (*fn)(int argc, char **argv);	/* argv[0] is the helper's name */
};
/* Defined by each suite, ended by { NULL, NULL }. */
extern const struct test_helper test_helpers[];

/* Add @fn as a test case of its own, named @name (CK_RUN_CASE=name runs it). */
void test_add(Suite *s, const char *name, const TTest *fn, int timeout_s);
#define TEST_ADD(s, fn) test_add((s), #fn, fn, 0)
#define TEST_ADD_T(s, fn, secs) test_add((s), #fn, fn, (secs))

/* The run's scratch directory, e.g. /dev/shm/rszshm-test-AbC123. */
const char *test_dir(void);
/* A path inside it, printf-style, in @buf. */
char *test_path(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A fresh mkdtemp-style file name in the scratch dir: DIR/NAME_XXXXXX/0. */
char *test_tmpl(char *buf, size_t len, const char *name);
/* Remove @fname (and its directory, if it is an rszshm_XXXXXX dir) at the end. */
void test_track(const char *fname);

/* Run `self --helper name args...` in a new process; returns its pid. */
pid_t test_exec_helper(const char *name, ...) __attribute__((sentinel));
/* The same, the helper running as @uid and its group (0: as the caller). */
pid_t test_exec_helper_as(uid_t uid, const char *name, ...) __attribute__((sentinel));
/*
 * Kernel features some emulators lack (qemu-user: no set_robust_list, so a
 * lock holder's death is never reported; MAP_FIXED_NOREPLACE taken as a
 * hint; no PR_SET_CHILD_SUBREAPER).  test_missing() probes them at run time
 * and returns the name of the first of @need that is missing, or NULL: on a
 * real Linux kernel always NULL.  TEST_NEEDS() passes the test, saying why
 * in its output, where one is missing.
 */
#define TEST_NEED_ROBUST 0x1u		/* robust futexes (set_robust_list) */
#define TEST_NEED_NOREPLACE 0x2u	/* MAP_FIXED_NOREPLACE honoured */
#define TEST_NEED_SUBREAPER 0x4u	/* prctl(PR_SET_CHILD_SUBREAPER) */
const char *test_missing(unsigned need);
#define TEST_NEEDS(need) do {							\
		const char *missing_ = test_missing(need);			\
		if (missing_) {							\
			printf("%s: skipped: the kernel (or emulator) lacks %s\n",	\
			       __func__, missing_);				\
			fflush(stdout);						\
			return;							\
		}								\
	} while (0)

/* execv(2) @path, through the build's exe wrapper ($RSZSHM_EXE_WRAPPER,
 * words separated by spaces: e.g. qemu-user for a cross build) if any.
 * Returns only on failure, as execv. */
int test_execv(const char *path, char *const argv[]);
/* waitpid: the exit status, or 128 + the signal that killed it. */
int test_wait(pid_t pid);
/* fork(), failing the test if it fails. */
pid_t test_fork(void);

/* Write one byte to @fd / read one byte from @fd (fails the test on EOF). */
void test_post(int fd);
void test_wait_byte(int fd);

/* Scratch directories: a fresh directory test_dir()/@name in @buf; @dir/@leaf
 * in @buf (RSZSHM_PATH_MAX bytes); the entries of @path but . and .., or -1
 * if it does not exist. */
char *test_subdir(char *buf, size_t len, const char *name);
char *test_in_dir(char *buf, const char *dir, const char *leaf);
int test_dir_count(const char *path);
/* In a child with its own mount namespace: mount a 1 MiB tmpfs at @dir;
 * 0 or -1.  test_can_mount_tmpfs(): whether this process may (root and
 * unshare(CLONE_NEWNS)); for registering tests, outside any test. */
int test_small_tmpfs(const char *dir);
bool test_can_mount_tmpfs(void);

/* A program's exit status and what it printed, as test_capture() ran it. */
struct test_buf {
	char *p;	/* NUL-terminated, "" when nothing was printed */
	size_t n;
};
struct test_output {
	int status;	/* as test_wait() returns it */
	struct test_buf out;
	struct test_buf err;
};
/*
 * Run @path with @argv in a child, its stdout and stderr captured into @o,
 * and wait for it.  The child runs as @uid (and that group, no supplementary
 * groups) when @uid is not 0 (running @path through a descriptor opened
 * before, so that user needs no access to its directory), exits 126 if it
 * cannot; it goes through the
 * build's exe wrapper (test_execv()) unless @host says @path is a program of
 * this machine's; it dies of SIGALRM after 60 s rather than outlive the test.
 * Release @o with test_output_free().
 */
void test_capture(struct test_output *o, uid_t uid, bool host, const char *path,
		  char *const argv[]);
void test_output_free(struct test_output *o);

/* In helpers, which are not Check tests: print and exit 1 when false. */
#define HCHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: helper check failed: %s (errno %d: %s)\n", \
		__FILE__, __LINE__, #cond, errno, strerror(errno)); \
	exit(1); } } while (0)

#endif
