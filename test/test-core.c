/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-core.c - the region itself: lib/span.c, hdr.c, map.c (and sys.c's
 * fault injector, and lock.c through the user lock).
 *
 * Sections, in order:
 *   1. ccan compatibility: the API as ccan's rszshm.h documents it, errno
 *      included (ccan's own test/run.c is the model);
 *   2. fault injection: every wrapped kernel call of mk, at, grow, grow_to
 *      and dt fails in turn; the call fails cleanly and leaks nothing;
 *   3. hostile and damaged files: one broken file per rule of lib/hdr.c,
 *      each refused with NULL and the errno of the table in rszshm.h;
 *   4. several processes: exec'd helpers that attach by name, forked
 *      workers growing one region at once, growth without rszshm_up,
 *      faults past the end, read-only, memfd, allocated, mode, flush, lock;
 *   5. a sparse region past 4 GiB;
 *   6. ccan's documented example, run as a program (test/ccan-example.c).
 *
 * Regions that tests place at fixed addresses use their own scans, far from
 * the default one (64 TiB), above ASan's shadow memory and outside its
 * allocator's space (96 to 100 TiB): 72 to 92 TiB, and 104 to 108 TiB.
 * Each test runs in its own process (Check's fork mode), so the fault
 * injector, the umask and the address space are per test.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

#define HDR sizeof(struct rszshm_hdr)

/*
 * Places.  64-bit builds use the TiB addresses above; 32-bit builds, whose
 * whole address space is 4 GiB, map each "TiB" place to 32 MiB steps from
 * 1 GiB (72 TiB is 1 GiB, 108 TiB is 2152 MiB), tries 64 MiB apart, and use
 * the shape of the default 32-bit scan where a test wants the default's.
 * A test whose sizes cannot fit a 32-bit build says so and passes (SKIP_IF).
 */
#if UINTPTR_MAX > 0xffffffffu
#define BITS64 1
#define TIB (1ULL << 40)
#define PLACE(tib) ((uintptr_t)(tib) * TIB)
#define PLACE_HOP ((size_t)1 << 30)
#define FAR_START ((void *)(uintptr_t)(80 * TIB))	/* a default-like scan */
#define FAR_LEN ((size_t)4 << 30)
#define FAR_HOP ((uintptr_t)TIB)
#else
#define BITS64 0
#define PLACE(tib) (((uintptr_t)1 << 30) + ((uintptr_t)(tib) - 72) * ((uintptr_t)32 << 20))
#define PLACE_HOP ((size_t)64 << 20)
#define FAR_START ((void *)((uintptr_t)1536 << 20))
#define FAR_LEN ((size_t)256 << 20)
#define FAR_HOP ((uintptr_t)256 << 20)
#endif

/* Pass a test that cannot run in this build, saying why in its output. */
#define SKIP_IF(cond, reason) do {						\
		if (cond) {							\
			printf("%s: skipped: %s\n", __func__, (reason));	\
			fflush(stdout);						\
			return;							\
		}								\
	} while (0)

static size_t pgsz(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* The documented capacity of a raw area at file length @flen in a span of
 * @max: after the header, less the spill page while the region can grow. */
static size_t raw_cap(size_t flen, size_t max)
{
	return flen - HDR - (flen < max ? pgsz() : 0);
}

/* The file length rszshm_mk gives @dlen raw bytes in a span of @max: the
 * header and @dlen rounded up to a page, plus the spill page if it fits. */
static size_t mk_flen(size_t dlen, size_t max)
{
	size_t f = (dlen + HDR + pgsz() - 1) / pgsz() * pgsz();

	return f < max ? f + pgsz() : f;
}

/* A scan of @iter tries of @len bytes around place @tib (on 64-bit builds
 * @tib TiB), 1 GiB apart (64 MiB on 32-bit builds). */
static struct rszshm_scan scan_at(unsigned tib, size_t len, unsigned iter)
{
	return (struct rszshm_scan){ (void *)PLACE(tib), len, PLACE_HOP, iter };
}

/* The addresses any try of @s can touch. */
static void scan_range(const struct rszshm_scan *s, uintptr_t *lo, uintptr_t *hi)
{
	*lo = (uintptr_t)s->start - (uintptr_t)s->iter * s->hop;
	*hi = (uintptr_t)s->start + (uintptr_t)s->iter * s->hop + s->len;
}

/* Whether anything in this process is mapped in [lo, hi). */
static bool range_mapped(uintptr_t lo, uintptr_t hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool hit = false;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && b > lo)
			hit = true;
	}
	fclose(f);
	return hit;
}

/* Open descriptors of this process. */
static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Make a region in a file of the scratch directory; the file is tracked. */
static void *mk_in(struct rszshm *r, const char *leaf, size_t len, struct rszshm_scan scan,
		   unsigned flags)
{
	char path[RSZSHM_PATH_MAX];
	void *p;

	test_path(path, sizeof(path), "%s", leaf);
	test_track(path);
	p = rszshm_mk_flags(r, len, path, scan, flags);
	ck_assert_msg(p != NULL, "mk %s: %s", path, strerror(errno));
	return p;
}

/* The grow lock is free (not held by anyone, this thread included). */
static void assert_grow_lock_free(struct rszshm *r)
{
	pthread_mutex_t *m = &rszshm__shared(r->hdr)->grow_lock;

	ck_assert_int_eq(rszshm__trylock(m), 0);
	ck_assert_int_eq(rszshm__unlock(m), 0);
}

/* Fork a child that runs @fn(@arg) and exits with its result. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = test_fork();

	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

/* In a child about to fault on purpose: die of the signal, even under
 * AddressSanitizer (which catches SIGSEGV and SIGBUS and exits 1). */
static void default_fault_signals(void)
{
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
}

/* Read or write @p in a child; returns its wait status (128 + signal). */
static int touch(volatile char *p, bool write)
{
	pid_t pid = test_fork();

	if (pid == 0) {
		default_fault_signals();
		if (write)
			*p = 1;
		else
			(void)*p;
		_exit(0);
	}
	return test_wait(pid);
}

/* In a forked child, which is not a Check test: print and exit 1. */
#define CCHECK(cond) HCHECK(cond)

/* ============================================== 1. ccan compatibility */

START_TEST(test_mk_fills_ccan_fields)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	struct stat st;
	void *p;

	test_path(path, sizeof(path), "fields");
	test_track(path);
	p = rszshm_mk(&r, 4096, path);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_eq(p, r.dat);
	ck_assert_str_eq(r.fname, path);
	ck_assert_ptr_eq(r.hdr->addr, r.hdr);
	ck_assert_ptr_eq(r.dat, (char *)r.hdr + sizeof(*r.hdr));
	/* 4096 plus the header, rounded up to a page, plus the spill page. */
	ck_assert_uint_eq(r.flen, mk_flen(4096, RSZSHM_DFLT_SCAN.len));
	ck_assert_uint_eq(r.cap, r.flen - sizeof(*r.hdr) - pgsz());
	ck_assert_uint_ge(r.cap, 4096);
	ck_assert_uint_eq(r.hdr->flen, r.flen);
	ck_assert_uint_eq(r.hdr->max, RSZSHM_DFLT_SCAN.len);
	ck_assert_uint_eq(r.hdr->magic, RSZSHM_MAGIC);
	ck_assert_uint_eq(r.hdr->version, RSZSHM_FORMAT_VERSION);
	ck_assert_uint_eq(r.hdr->hdr_size, HDR);
	ck_assert_uint_eq(r.hdr->page_size, pgsz());
	ck_assert_uint_eq(r.hdr->flags, 0);
	ck_assert_int_ge(fcntl(r.fd, F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(fstat(r.fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, r.flen);
	ck_assert_uint_eq(file_size(path), r.flen);
	/* The whole raw area is usable, and zero. */
	ck_assert_int_eq(((char *)r.dat)[0], 0);
	ck_assert_int_eq(((char *)r.dat)[r.cap - 1], 0);
	memset(r.dat, 0x5a, r.cap);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_ptr_null(r.hdr);
	ck_assert_ptr_null(r.dat);
	ck_assert_int_eq(r.fd, -1);
	ck_assert_uint_eq(r.flen, 0);
	ck_assert_uint_eq(r.cap, 0);
	ck_assert_str_eq(r.fname, path);	/* kept for rszshm_rm */

	/* A small initial length rounds up to one page, plus the spill page. */
	p = mk_in(&r, "small", 1, RSZSHM_DFLT_SCAN, 0);
	ck_assert_uint_eq(r.flen, 2 * pgsz());
	ck_assert_uint_eq(r.cap, pgsz() - HDR);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	test_path(path, sizeof(path), "fields");
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

START_TEST(test_mk_default_name_template)
{
	struct rszshm r;
	struct stat st;
	char dir[RSZSHM_PATH_MAX];

	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, NULL));
	test_track(r.fname);
	/* /dev/shm/rszshm_XXXXXX/0, with XXXXXX made unique. */
	ck_assert_uint_eq(strlen(r.fname), strlen(RSZSHM_DFLT_FNAME));
	ck_assert_int_eq(strncmp(r.fname, "/dev/shm/rszshm_", 16), 0);
	ck_assert_str_eq(r.fname + 22, "/0");
	ck_assert_int_ne(strncmp(r.fname + 16, "XXXXXX", 6), 0);
	ck_assert_int_eq(stat(r.fname, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	strcpy(dir, r.fname);
	*strrchr(dir, '/') = '\0';
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_rm(&r), 0);
	ck_assert_int_eq(stat(r.fname, &st), -1);
	ck_assert_int_eq(stat(dir, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_mk_four_args_compound_literal)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	uintptr_t got, base = (uintptr_t)FAR_START;
	bool on_spiral = false;
	long k;

	test_path(path, sizeof(path), "four");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, path,
					((struct rszshm_scan){ FAR_START, FAR_LEN, FAR_HOP, 10 })));
	got = (uintptr_t)r.hdr;
	for (k = -5; k <= 5; k++)
		on_spiral |= got == base + (uintptr_t)k * FAR_HOP;
	ck_assert_msg(on_spiral, "region at %#lx, not on the spiral around %#lx",
		      (unsigned long)got, (unsigned long)base);
	ck_assert_uint_eq(r.hdr->max, FAR_LEN);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* The spiral: start, start - hop, start + hop, start - 2 hop, ... and
 * never over what is already mapped. */
START_TEST(test_mk_spiral_skips_taken_addresses)
{
	struct rszshm_scan s = scan_at(84, 64 << 20, 10);
	uintptr_t start = (uintptr_t)s.start, hop = s.hop;
	uintptr_t block[3] = { start, start - hop, start + hop };
	char path[RSZSHM_PATH_MAX];
	struct rszshm r;
	int i;

	TEST_NEEDS(TEST_NEED_NOREPLACE);

	for (i = 0; i < 3; i++) {
		char *m = mmap((void *)block[i], pgsz(), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		ck_assert_ptr_eq(m, (void *)block[i]);
		m[0] = (char)(i + 1);
	}
	mk_in(&r, "spiral", 4096, s, 0);
	ck_assert_ptr_eq(r.hdr, (void *)(start - 2 * hop));
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(*(char *)block[i], i + 1);
	ck_assert_int_eq(rszshm_dt(&r), 0);

	/* With every try taken: ENOSPC, blockers intact, no file. */
	s.iter = 3;
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, test_path(path, sizeof(path), "spiral"), s));
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(access(path, F_OK), -1);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(*(char *)block[i], i + 1);
}
END_TEST

START_TEST(test_mk_errors_as_ccan)
{
	struct rszshm r, t;
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	char longname[RSZSHM_PATH_MAX + 8], path[RSZSHM_PATH_MAX];
	int fds = fd_count();

	ck_assert_ptr_null(rszshm_mk(NULL, 0, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk(NULL, 4096, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk(&r, 0, NULL));
	ck_assert_int_eq(errno, EINVAL);
	memset(longname, '.', sizeof(longname));
	longname[RSZSHM_PATH_MAX] = '\0';	/* 128 characters */
	ck_assert_ptr_null(rszshm_mk(&r, 4096, longname));
	ck_assert_int_eq(errno, EINVAL);
	longname[RSZSHM_PATH_MAX + 7] = '\0';
	ck_assert_ptr_null(rszshm_mk(&r, 4096, longname));
	ck_assert_int_eq(errno, EINVAL);

	/* Bad scans. */
	test_path(path, sizeof(path), "badscan");
	test_track(path);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path, ((struct rszshm_scan){ NULL, FAR_LEN, FAR_HOP, 10 })));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path, ((struct rszshm_scan){ FAR_START, 0, FAR_HOP, 10 })));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path, ((struct rszshm_scan){ FAR_START, FAR_LEN, 0, 10 })));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path, ((struct rszshm_scan){ FAR_START, FAR_LEN, FAR_HOP, 0 })));
	ck_assert_int_eq(errno, EINVAL);
	/* A span too small for the initial length and the header. */
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path, ((struct rszshm_scan){ FAR_START, 4096, FAR_HOP, 10 })));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk_flags(&r, 4096, path, RSZSHM_DFLT_SCAN, 0x80));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk_flags(&r, 4096, path, RSZSHM_DFLT_SCAN, RSZSHM_RDONLY));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, ""));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(access(path, F_OK), -1);

	/* One try, at an address already taken. */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, path));
	scan.start = r.hdr;
	scan.iter = 1;
	ck_assert_ptr_null(rszshm_mk(&t, 4096, NULL, scan));
	ck_assert_int_eq(errno, ENOSPC);
	/* The existing file. */
	ck_assert_ptr_null(rszshm_mk(&t, 4096, path));
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_ptr_eq(r.hdr->addr, r.hdr);	/* untouched */
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);

	/* A span larger than the address space. */
	scan = RSZSHM_DFLT_SCAN;
	scan.len = SIZE_MAX - pgsz();
	ck_assert_ptr_null(rszshm_mk(&t, 4096, NULL, scan));
	ck_assert_int_eq(errno, ENOMEM);
	/* 2^62: on a 32-bit build no size_t is larger than the address space
	 * but the one above, and a 3 GiB span hits mappings (ENOSPC). */
	if (BITS64) {
		scan.len = (size_t)1 << (sizeof(size_t) * 8 - 2);
		ck_assert_ptr_null(rszshm_mk(&t, 4096, NULL, scan));
		ck_assert_int_eq(errno, ENOMEM);
	}
	/* A template in a directory that does not exist. */
	ck_assert_ptr_null(rszshm_mk(&t, 4096, "foo/bar_XXXXXX/0"));
	ck_assert_int_eq(errno, ENOENT);
	test_path(path, sizeof(path), "nodir/f");
	ck_assert_ptr_null(rszshm_mk(&t, 4096, path));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(fd_count(), fds);
}
END_TEST

START_TEST(test_mkm_atm_free_rm_macros)
{
	struct rszshm *r, *q;
	char path[RSZSHM_PATH_MAX];
	pid_t pid;

	test_tmpl(path, sizeof(path), "macros");
	ck_assert_ptr_nonnull(rszshm_mkm(r, 4096, path));
	ck_assert_ptr_nonnull(r);
	test_track(r->fname);
	ck_assert_ptr_eq(r->hdr->addr, r->hdr);
	strcpy(path, r->fname);
	*(pid_t *)r->dat = 0;

	/* As in ccan's run.c: a child drops its copy, attaches by name,
	 * writes its pid and grows. */
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_free(r) == 0);
		CCHECK(r == NULL);
		CCHECK(rszshm_atm(q, path) != NULL);
		*(pid_t *)q->dat = getpid();
		CCHECK(rszshm_up(q) == 0);
		CCHECK(rszshm_grow(q) == 1);
		CCHECK(rszshm_free(q) == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_int_eq(*(pid_t *)r->dat, pid);
	ck_assert_int_eq(rszshm_up(r), 1);
	ck_assert_uint_eq(r->flen, 2 * mk_flen(4096, RSZSHM_DFLT_SCAN.len));

	/* rszshm_atm of a missing file: NULL handle. */
	ck_assert_ptr_null(rszshm_atm(q, "/nonexistent/rszshm/file"));
	ck_assert_ptr_null(q);
	ck_assert_int_eq(errno, ENOENT);

	ck_assert_int_eq(rszshm_dt(r), 0);
	ck_assert_int_eq(rszshm_rm(r), 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	*strrchr(path, '/') = '\0';
	ck_assert_int_eq(access(path, F_OK), -1);
	/* ccan: no '/' in the name. */
	r->fname[0] = '\0';
	ck_assert_int_eq(rszshm_rmdir(r), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	strcpy(r->fname, "plain");
	ck_assert_int_eq(rszshm_rmdir(r), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	ck_assert_int_eq(rszshm_free(r), 0);	/* detached already: 0 */
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_at_errors)
{
	struct rszshm r;
	char longname[RSZSHM_PATH_MAX + 1], path[RSZSHM_PATH_MAX];
	int fds = fd_count();

	ck_assert_ptr_null(rszshm_at(NULL, "/dev/shm/x"));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_at(&r, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_at(&r, ""));
	ck_assert_int_eq(errno, EINVAL);
	memset(longname, '.', sizeof(longname));
	longname[RSZSHM_PATH_MAX] = '\0';
	ck_assert_ptr_null(rszshm_at(&r, longname));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(rszshm_at(&r, test_path(path, sizeof(path), "missing")));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(rszshm_at_flags(&r, path, 0x1));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(fd_count(), fds);
}
END_TEST

START_TEST(test_at_roundtrip_same_address)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	void *addr;

	mk_in(&r, "roundtrip", 4096, scan_at(72, 64 << 20, 3), 0);
	test_path(path, sizeof(path), "roundtrip");
	addr = r.hdr;
	strcpy(r.dat, "hello");
	ck_assert_int_eq(rszshm_grow_to(&r, 1 << 20), 0);
	((char *)r.hdr)[(1 << 20) - 1] = 'z';
	ck_assert_int_eq(rszshm_dt(&r), 0);
	/* The handle's own name, kept by dt, is a valid argument. */
	ck_assert_ptr_nonnull(rszshm_at(&r, r.fname));
	ck_assert_str_eq(r.fname, path);
	ck_assert_ptr_eq(r.hdr, addr);
	ck_assert_ptr_eq(r.dat, (char *)addr + HDR);
	ck_assert_str_eq(r.dat, "hello");
	ck_assert_uint_eq(r.flen, 1 << 20);
	ck_assert_uint_eq(r.cap, raw_cap(1 << 20, r.hdr->max));
	ck_assert_uint_eq(r.hdr->max, 64 << 20);
	ck_assert_int_eq(((char *)r.hdr)[(1 << 20) - 1], 'z');
	/* Attaching what this process already maps: the span is taken. */
	{
		struct rszshm t;

		ck_assert_ptr_null(rszshm_at(&t, path));
		ck_assert_int_eq(errno, ENOSPC);
	}
	ck_assert_str_eq(r.dat, "hello");
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	/* Remade under the same name, passed from the handle itself. */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, r.fname, scan_at(72, 64 << 20, 3)));
	ck_assert_str_eq(r.fname, path);
	ck_assert_int_eq(((char *)r.dat)[0], 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_up_sees_growth_by_other_process)
{
	struct rszshm r;
	size_t flen;
	pid_t pid;

	mk_in(&r, "up", 4096, RSZSHM_DFLT_SCAN, 0);
	flen = r.flen;
	ck_assert_int_eq(rszshm_up(&r), 0);
	ck_assert_int_eq(rszshm_up(&r), 0);
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_grow(&r) == 1);
		CCHECK(r.flen == 2 * flen);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_uint_eq(r.flen, flen);	/* stale, until up */
	ck_assert_int_eq(rszshm_up(&r), 1);
	ck_assert_uint_eq(r.flen, 2 * flen);
	ck_assert_uint_eq(r.cap, raw_cap(2 * flen, r.hdr->max));
	ck_assert_int_eq(rszshm_up(&r), 0);
	ck_assert_int_eq(rszshm_up(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* A damaged length in the header is reported, not trusted. */
	r.hdr->flen = r.hdr->max + pgsz();
	ck_assert_int_eq(rszshm_up(&r), -1);
	ck_assert_int_eq(errno, EBADMSG);
	ck_assert_int_eq(rszshm_grow(&r), -1);
	ck_assert_int_eq(errno, EBADMSG);
	r.hdr->flen = 2 * flen;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_up(&r), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_grow_doubles_once_across_processes)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	size_t flen;
	pid_t pid;

	mk_in(&r, "grow", 4096, RSZSHM_DFLT_SCAN, 0);
	test_path(path, sizeof(path), "grow");
	flen = r.flen;
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_eq(r.flen, 2 * flen);
	ck_assert_uint_eq(r.hdr->flen, 2 * flen);
	ck_assert_uint_eq(file_size(path), 2 * flen);
	ck_assert_uint_eq(r.cap, raw_cap(2 * flen, r.hdr->max));
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_eq(r.flen, 4 * flen);

	/* Another process grows first: this handle's grow only catches up. */
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_grow(&r) == 1);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_uint_eq(r.flen, 4 * flen);
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_eq(r.flen, 8 * flen);
	ck_assert_uint_eq(r.hdr->flen, 8 * flen);
	ck_assert_uint_eq(file_size(path), 8 * flen);
	assert_grow_lock_free(&r);
	ck_assert_int_eq(rszshm_grow(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_grow(&r), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_grow_to(&r, 1 << 20), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_grow_at_span_end_enomem)
{
	struct rszshm r;
	struct rszshm_hdr save;
	char path[RSZSHM_PATH_MAX];
	size_t pg = pgsz();

	/* ccan's way: pretend the span ends at the current length. */
	mk_in(&r, "max", 4096, RSZSHM_DFLT_SCAN, 0);
	save = *r.hdr;
	r.hdr->flen = r.flen;
	r.hdr->max = r.flen;
	ck_assert_int_eq(rszshm_grow(&r), -1);
	ck_assert_int_eq(errno, ENOMEM);
	*r.hdr = save;
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);

	/* A real small span of 3 pages: 2 -> 3 (clamped) -> ENOMEM. */
	mk_in(&r, "small", 1, scan_at(88, 3 * pg, 3), 0);
	test_path(path, sizeof(path), "small");
	ck_assert_uint_eq(r.flen, 2 * pg);
	ck_assert_uint_eq(r.hdr->max, 3 * pg);
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_eq(r.flen, 3 * pg);
	ck_assert_uint_eq(file_size(path), 3 * pg);
	ck_assert_int_eq(rszshm_grow(&r), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(rszshm_grow_to(&r, 3 * pg + 1), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(rszshm_grow_to(&r, SIZE_MAX), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(rszshm_grow_to(&r, 3 * pg), 0);
	ck_assert_uint_eq(file_size(path), 3 * pg);
	((char *)r.hdr)[3 * pg - 1] = 1;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* A one-page span (what rszshm_mk accepts) attaches too. */
START_TEST(test_one_page_span_attaches)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	void *addr;

	mk_in(&r, "onepage", 100, scan_at(88, pgsz(), 3), 0);
	test_path(path, sizeof(path), "onepage");
	ck_assert_uint_eq(r.flen, pgsz());
	ck_assert_uint_eq(r.hdr->max, pgsz());
	addr = r.hdr;
	ck_assert_int_eq(rszshm_grow(&r), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_msg(rszshm_at(&r, path) != NULL, "at: %s", strerror(errno));
	ck_assert_ptr_eq(r.hdr, addr);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_grow_to_sets_length)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];

	mk_in(&r, "growto", 4096, RSZSHM_DFLT_SCAN, 0);
	test_path(path, sizeof(path), "growto");
	ck_assert_int_eq(rszshm_grow_to(&r, 1000000), 0);
	ck_assert_uint_eq(r.flen, (1000000 + pgsz() - 1) / pgsz() * pgsz());
	ck_assert_uint_eq(r.hdr->flen, r.flen);
	ck_assert_uint_eq(file_size(path), r.flen);
	ck_assert_uint_eq(r.cap, raw_cap(r.flen, r.hdr->max));
	/* Smaller or equal: left as it is, handle refreshed. */
	ck_assert_int_eq(rszshm_grow_to(&r, 4096), 0);
	ck_assert_int_eq(rszshm_grow_to(&r, 0), 0);
	ck_assert_uint_eq(file_size(path), r.flen);
	ck_assert_uint_eq(r.hdr->flen, r.flen);
	ck_assert_int_eq(rszshm_grow_to(&r, RSZSHM_DFLT_SCAN.len), 0);
	ck_assert_uint_eq(r.flen, RSZSHM_DFLT_SCAN.len);
	ck_assert_int_eq(rszshm_grow_to(&r, RSZSHM_DFLT_SCAN.len + 1), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(rszshm_grow(&r), -1);
	ck_assert_int_eq(errno, ENOMEM);
	assert_grow_lock_free(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_dt_twice_and_access_faults)
{
	struct rszshm r;
	volatile char *p;
	int fds = fd_count();

	mk_in(&r, "dt", 4096, scan_at(76, 64 << 20, 3), 0);
	p = r.dat;
	p[0] = 1;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_dt(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(fd_count(), fds);
	ck_assert(!range_mapped((uintptr_t)p - HDR, (uintptr_t)p - HDR + (64 << 20)));
	ck_assert_int_eq(touch(p, false), 128 + SIGSEGV);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_unlink_rmdir_rm)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX], dir[RSZSHM_PATH_MAX];

	test_tmpl(path, sizeof(path), "rm");
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, path));
	test_track(r.fname);
	strcpy(dir, r.fname);
	*strrchr(dir, '/') = '\0';
	ck_assert_int_eq(rszshm_rmdir(&r), -1);	/* not empty */
	ck_assert_int_eq(errno, ENOTEMPTY);
	ck_assert_int_eq(rszshm_rm(&r), 0);		/* while attached */
	ck_assert_int_eq(access(r.fname, F_OK), -1);
	ck_assert_int_eq(access(dir, F_OK), -1);
	strcpy(r.dat, "still mapped");
	ck_assert_str_eq(r.dat, "still mapped");
	ck_assert_int_eq(rszshm_rm(&r), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_rmdir(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ================================================= 2. fault injection */

#define FAULT_ERR 9000

static void assert_clean_after_mk(struct rszshm_scan *s, const char *dir, int fds, int n)
{
	uintptr_t lo, hi;

	scan_range(s, &lo, &hi);
	ck_assert_msg(!range_mapped(lo, hi), "call %d: mapping left in the scan range", n);
	ck_assert_msg(fd_count() == fds, "call %d: descriptor left open", n);
	ck_assert_msg(test_dir_count(dir) == 0, "call %d: file or directory left in %s", n, dir);
}

/* Fail each call of rszshm_mk_flags in turn; returns the number of calls. */
static int mk_faults(const char *name, bool tmpl, unsigned flags)
{
	struct rszshm_scan s = scan_at(92, 64 << 20, 3);
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	struct rszshm r;
	int n;

	test_subdir(dir, sizeof(dir), name);
	if (tmpl)
		test_in_dir(path, dir, "t_XXXXXX/0");
	else
		test_in_dir(path, dir, "f");
	for (n = 1; n < 100; n++) {
		int fds = fd_count(), err;
		unsigned long calls;
		void *p;

		rszshm__fault_inject((unsigned long)n, false, FAULT_ERR + n);
		p = rszshm_mk_flags(&r, 4096, path, s, flags);
		err = errno;
		calls = rszshm__fault_calls();
		rszshm__fault_clear();
		if (p) {
			ck_assert_msg(calls < (unsigned long)n,
				      "%s: call %d failed but rszshm_mk succeeded", name, n);
			test_track(r.fname);
			ck_assert_ptr_eq(r.hdr->addr, r.hdr);
			ck_assert_int_eq(rszshm_dt(&r), 0);
			if (!(flags & RSZSHM_ANON))
				ck_assert_int_eq(tmpl ? rszshm_rm(&r) : rszshm_unlink(&r), 0);
			assert_clean_after_mk(&s, dir, fds, n);
			return n - 1;
		}
		ck_assert_msg(err == FAULT_ERR + n, "%s: call %d: errno %d, not the injected %d",
			      name, n, err, FAULT_ERR + n);
		ck_assert_ptr_null(r.hdr);
		ck_assert_int_eq(r.fd, -1);
		assert_clean_after_mk(&s, dir, fds, n);
	}
	ck_abort_msg("%s: rszshm_mk never succeeded", name);
	return 0;
}

START_TEST(test_mk_fault_injection_leaves_nothing)
{
	/* probe, [mkdtemp], open, ftruncate/fallocate, mmap, msync at least */
	ck_assert_int_ge(mk_faults("mk-named", false, 0), 5);
	ck_assert_int_ge(mk_faults("mk-tmpl", true, 0), 6);
	ck_assert_int_ge(mk_faults("mk-alloc", true, RSZSHM_ALLOCATE), 6);
	ck_assert_int_ge(mk_faults("mk-anon", false, RSZSHM_ANON), 5);
}
END_TEST

/* Where O_TMPFILE is refused, mk falls back to creating the file by name. */
START_TEST(test_mk_without_tmpfile_creates_by_name)
{
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	struct rszshm r;
	bool fell_back = false;
	int n;

	test_subdir(dir, sizeof(dir), "notmpfile");
	test_in_dir(path, dir, "f");
	for (n = 1; n < 20 && !fell_back; n++) {
		unsigned long calls;
		struct stat st;
		void *p;

		rszshm__fault_inject((unsigned long)n, false, EOPNOTSUPP);
		p = rszshm_mk(&r, 4096, path, scan_at(92, 64 << 20, 3));
		calls = rszshm__fault_calls();
		rszshm__fault_clear();
		if (!p) {
			ck_assert_int_eq(errno, EOPNOTSUPP);
			ck_assert_int_eq(test_dir_count(dir), 0);
			continue;
		}
		test_track(path);
		/* The injected EOPNOTSUPP hit the O_TMPFILE open: the region
		 * is whole all the same. */
		fell_back = calls >= (unsigned long)n;
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_uint_eq(st.st_mode & 07777, 0600);
		ck_assert_ptr_eq(r.hdr->addr, r.hdr);
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_ptr_nonnull(rszshm_at(&r, path));
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_unlink(&r), 0);
	}
	ck_assert_msg(fell_back, "no call of mk took EOPNOTSUPP as 'no O_TMPFILE'");

	/* The fallback refuses an existing file, and leaves it alone. */
	write_file(path, "keep", 4);
	for (n = 1; n < 20; n++) {
		void *p;

		rszshm__fault_inject((unsigned long)n, false, EOPNOTSUPP);
		p = rszshm_mk(&r, 4096, path, scan_at(92, 64 << 20, 3));
		rszshm__fault_clear();
		ck_assert_ptr_null(p);
		if (errno != EOPNOTSUPP) {
			ck_assert_int_eq(errno, EEXIST);
			break;
		}
	}
	ck_assert_uint_eq(file_size(path), 4);
	unlink(path);
}
END_TEST

static int at_faults(const char *path, unsigned flags, void *addr, size_t max)
{
	struct rszshm r;
	int n;

	for (n = 1; n < 100; n++) {
		int fds = fd_count(), err;
		unsigned long calls;
		void *p;

		rszshm__fault_inject((unsigned long)n, false, FAULT_ERR + n);
		p = rszshm_at_flags(&r, path, flags);
		err = errno;
		calls = rszshm__fault_calls();
		rszshm__fault_clear();
		if (p) {
			ck_assert_msg(calls < (unsigned long)n,
				      "call %d failed but rszshm_at succeeded", n);
			ck_assert_ptr_eq(r.hdr, addr);
			ck_assert_str_eq(r.dat, "intact");
			ck_assert_int_eq(rszshm_dt(&r), 0);
			ck_assert_int_eq(fd_count(), fds);
			return n - 1;
		}
		ck_assert_msg(err == FAULT_ERR + n, "call %d: errno %d, not the injected %d",
			      n, err, FAULT_ERR + n);
		ck_assert_ptr_null(r.hdr);
		ck_assert_msg(!range_mapped((uintptr_t)addr, (uintptr_t)addr + max),
			      "call %d: mapping left at the region's address", n);
		ck_assert_msg(fd_count() == fds, "call %d: descriptor left open", n);
	}
	ck_abort_msg("rszshm_at never succeeded");
	return 0;
}

START_TEST(test_at_fault_injection_leaves_nothing)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	void *addr;
	size_t max;

	mk_in(&r, "at-faults", 4096, scan_at(92, 64 << 20, 3), 0);
	test_path(path, sizeof(path), "at-faults");
	strcpy(r.dat, "intact");
	addr = r.hdr;
	max = r.hdr->max;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	/* open, pread, map, statx at least; a writer's attach guard too */
	ck_assert_int_ge(at_faults(path, 0, addr, max), 5);
	ck_assert_int_ge(at_faults(path, RSZSHM_RDONLY, addr, max), 4);
	unlink(path);
}
END_TEST

/* Fail each call of a grow in turn: nothing changes, the lock is free. */
static void grow_faults(unsigned flags, bool to)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	size_t flen;
	int n;

	mk_in(&r, "grow-faults", 4096, scan_at(92, 64 << 20, 3), flags);
	test_path(path, sizeof(path), "grow-faults");
	flen = r.flen;
	for (n = 1; n < 100; n++) {
		int fds = fd_count(), rc, err;
		unsigned long calls;

		rszshm__fault_inject((unsigned long)n, false, FAULT_ERR + n);
		rc = to ? rszshm_grow_to(&r, 1 << 20) : rszshm_grow(&r);
		err = errno;
		calls = rszshm__fault_calls();
		rszshm__fault_clear();
		ck_assert_int_eq(fd_count(), fds);
		assert_grow_lock_free(&r);
		if (rc != -1) {
			ck_assert_int_eq(rc, to ? 0 : 1);
			ck_assert_msg(calls < (unsigned long)n, "call %d failed but grow succeeded", n);
			ck_assert_uint_eq(r.flen, to ? 1 << 20 : 2 * flen);
			ck_assert_uint_eq(r.hdr->flen, r.flen);
			ck_assert_uint_eq(file_size(path), r.flen);
			ck_assert_int_ge(n, 2);
			break;
		}
		ck_assert_msg(err == FAULT_ERR + n, "call %d: errno %d, not the injected %d",
			      n, err, FAULT_ERR + n);
		ck_assert_uint_eq(r.flen, flen);
		ck_assert_uint_eq(r.hdr->flen, flen);
		ck_assert_uint_eq(file_size(path), flen);
	}
	ck_assert_int_lt(n, 100);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}

START_TEST(test_grow_fault_injection_changes_nothing)
{
	grow_faults(0, false);
	grow_faults(RSZSHM_ALLOCATE, false);
}
END_TEST

START_TEST(test_grow_to_fault_injection_changes_nothing)
{
	grow_faults(0, true);
	grow_faults(RSZSHM_ALLOCATE, true);
}
END_TEST

START_TEST(test_flush_fault_injection_reports)
{
	struct rszshm r;

	mk_in(&r, "flush-faults", 4096, scan_at(92, 64 << 20, 3), 0);
	rszshm__fault_inject(1, false, FAULT_ERR);
	ck_assert_int_eq(rszshm_flush(&r, NULL, 0), -1);
	ck_assert_int_eq(errno, FAULT_ERR);
	rszshm__fault_clear();
	ck_assert_int_eq(rszshm_flush(&r, NULL, 0), 0);
	rszshm__fault_inject(1, false, FAULT_ERR + 1);
	ck_assert_int_eq(rszshm_unlink(&r), -1);
	ck_assert_int_eq(errno, FAULT_ERR + 1);
	rszshm__fault_clear();
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* dt reports any failed step and still detaches; of what it releases, only
 * the step that failed can be left behind. */
START_TEST(test_dt_fault_injection_detaches)
{
	struct rszshm_scan s = scan_at(92, 64 << 20, 3);
	uintptr_t lo, hi;
	struct rszshm r;
	int n;

	scan_range(&s, &lo, &hi);
	for (n = 1; n < 100; n++) {
		int fds, fd, rc, err, left = 0;
		unsigned long calls;
		void *addr;

		mk_in(&r, "dt-faults", 4096, s, 0);
		strcpy(r.dat, "kept");
		fd = r.fd;
		addr = r.hdr;
		fds = fd_count();
		rszshm__fault_inject((unsigned long)n, false, FAULT_ERR + n);
		rc = rszshm_dt(&r);
		err = errno;
		calls = rszshm__fault_calls();
		rszshm__fault_clear();
		ck_assert_ptr_null(r.hdr);
		ck_assert_int_eq(r.fd, -1);
		ck_assert_int_eq(rszshm_dt(&r), 0);
		if (range_mapped(lo, hi)) {
			left++;
			ck_assert_int_eq(munmap(addr, 64 << 20), 0);
		}
		if (fd_count() == fds) {
			left++;
			ck_assert_int_eq(close(fd), 0);
		}
		if (rc == 0) {
			ck_assert_msg(calls < (unsigned long)n, "call %d failed but dt returned 0", n);
			ck_assert_int_eq(left, 0);
			ck_assert_int_ge(n, 3);
			ck_assert_int_eq(rszshm_unlink(&r), 0);
			break;
		}
		ck_assert_int_eq(rc, -1);
		ck_assert_msg(err == FAULT_ERR + n, "call %d: errno %d", n, err);
		ck_assert_msg(left <= 1, "call %d: %d resources left", n, left);
		/* The data reached the file whatever failed. */
		ck_assert_ptr_nonnull(rszshm_at(&r, r.fname));
		ck_assert_str_eq(r.dat, "kept");
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_unlink(&r), 0);
	}
	ck_assert_int_lt(n, 100);
}
END_TEST

/* ======================================= 3. hostile and damaged files */

struct bad_case {
	const char *what;
	int err;		/* expected errno */
	int err2;		/* also acceptable (0: none) */
};

/* Attach @path in a forked child, which must get NULL with @c->err (or
 * @c->err2), leak nothing and not crash. */
static void expect_refused(const char *path, const struct bad_case *c, uintptr_t addr, size_t max,
			   unsigned flags)
{
	pid_t pid = test_fork();
	int st;

	if (pid == 0) {
		struct rszshm r;
		int fds = fd_count(), err;
		void *p;

		alarm(20);	/* a hang is a failure, not a stuck suite */
		p = rszshm_at_flags(&r, path, flags);
		err = errno;
		if (p) {
			fprintf(stderr, "%s: attached\n", c->what);
			_exit(1);
		}
		if (err != c->err && (!c->err2 || err != c->err2)) {
			fprintf(stderr, "%s: errno %d (%s), expected %d\n", c->what, err,
				strerror(err), c->err);
			_exit(2);
		}
		if (fd_count() != fds) {
			fprintf(stderr, "%s: descriptor left open\n", c->what);
			_exit(3);
		}
		if (addr && range_mapped(addr, addr + max)) {
			fprintf(stderr, "%s: mapping left\n", c->what);
			_exit(4);
		}
		_exit(0);
	}
	st = test_wait(pid);
	ck_assert_msg(st == 0, "%s (flags %#x): child status %d", c->what, flags, st);
}

enum mod { M_NONE, M_MAGIC, M_VERSION, M_HDR_SIZE, M_PAGE_SIZE, M_FLAGS, M_ADDR, M_MAX, M_FLEN,
	   M_ABI };

struct hdr_case {
	struct bad_case c;
	enum mod field;
	uint64_t val;		/* new value; see below for relative ones */
	int rel;		/* 0: val; 1: old + val; 2: old ^ val; 3: byte-swapped */
	uint64_t size;		/* file size; 0: the region's length */
};

START_TEST(test_at_refuses_damaged_headers)
{
	struct rszshm r;
	struct rszshm_hdr good;
	char path[RSZSHM_PATH_MAX], dir[RSZSHM_PATH_MAX], leaf[32];
	uint64_t pg = pgsz(), flen, max;
	unsigned char *buf;
	uintptr_t addr;
	size_t i;

	mk_in(&r, "good", 4096, scan_at(104, 64 << 20, 3), 0);
	good = *r.hdr;
	addr = (uintptr_t)r.hdr;
	flen = r.flen;
	max = r.hdr->max;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	buf = calloc(1, flen);
	ck_assert_ptr_nonnull(buf);

	const struct hdr_case cases[] = {
		{ { "valid control", 0, 0 }, M_NONE, 0, 0, 0 },
		{ { "bad magic", EPROTO, 0 }, M_MAGIC, 1, 2, 0 },
		{ { "magic zero", EPROTO, 0 }, M_MAGIC, 0, 0, 0 },
		{ { "older version", EPROTONOSUPPORT, 0 }, M_VERSION, RSZSHM_FORMAT_VERSION - 1, 0, 0 },
		{ { "newer version", EPROTONOSUPPORT, 0 }, M_VERSION, RSZSHM_FORMAT_VERSION + 1, 0, 0 },
		{ { "version 0", EPROTONOSUPPORT, 0 }, M_VERSION, 0, 0, 0 },
		{ { "header size 256", EPROTONOSUPPORT, 0 }, M_HDR_SIZE, 256, 0, 0 },
		{ { "header size 1024", EPROTONOSUPPORT, 0 }, M_HDR_SIZE, 1024, 0, 0 },
		{ { "page size 64 KiB", EPROTONOSUPPORT, 0 }, M_PAGE_SIZE, 65536, 0, 0 },
		{ { "page size 0", EPROTONOSUPPORT, 0 }, M_PAGE_SIZE, 0, 0, 0 },
		{ { "unknown flag 0x8", EPROTONOSUPPORT, 0 }, M_FLAGS, 0x8, 0, 0 },
		{ { "unknown flag RDONLY", EPROTONOSUPPORT, 0 }, M_FLAGS, RSZSHM_RDONLY, 0, 0 },
		{ { "unknown flag bit 63", EPROTONOSUPPORT, 0 }, M_FLAGS, 1ULL << 63, 0, 0 },
		{ { "addr zero", EBADMSG, 0 }, M_ADDR, 0, 0, 0 },
		{ { "addr misaligned", EBADMSG, 0 }, M_ADDR, 8, 1, 0 },
		{ { "addr wraps", EBADMSG, 0 }, M_ADDR, UINT64_MAX & ~(pg - 1), 0, 0 },
		{ { "addr wraps by one page", EBADMSG, 0 }, M_ADDR, (UINT64_MAX & ~(pg - 1)) - (64 << 20) + pg, 0, 0 },
		{ { "addr in kernel space", ENOMEM, EBADMSG }, M_ADDR, 0xffff800000000000ULL, 0, 0 },
		{ { "max misaligned", EBADMSG, 0 }, M_MAX, 1, 1, 0 },
		{ { "max zero", EBADMSG, 0 }, M_MAX, 0, 0, 0 },
		{ { "max below flen", EBADMSG, 0 }, M_MAX, pg, 0, 0 },
		{ { "max past address space", EBADMSG, 0 }, M_MAX, UINT64_MAX & ~(pg - 1), 0, 0 },
		{ { "max 2^63", EBADMSG, ENOMEM }, M_MAX, 1ULL << 63, 0, 0 },
		{ { "flen misaligned", EBADMSG, 0 }, M_FLEN, 1, 1, 0 },
		{ { "flen zero", EBADMSG, 0 }, M_FLEN, 0, 0, 0 },
		{ { "flen = header size", EBADMSG, 0 }, M_FLEN, HDR, 0, 0 },
		{ { "flen past max", EBADMSG, 0 }, M_FLEN, max + pg, 0, 0 },
		{ { "flen huge", EBADMSG, 0 }, M_FLEN, UINT64_MAX & ~(pg - 1), 0, 0 },
		{ { "abi zero (format 1's reserved word)", EPROTONOSUPPORT, 0 }, M_ABI, 0, 0, 0 },
		{ { "abi of another machine", EPROTONOSUPPORT, 0 }, M_ABI, 0x1, 2, 0 },
		{ { "abi of another pointer size", EPROTONOSUPPORT, 0 }, M_ABI, 0x0c0000, 2, 0 },
		{ { "abi of another lock size", EPROTONOSUPPORT, 0 }, M_ABI, 0x10000000, 2, 0 },
		{ { "abi of another byte order", EPROTONOSUPPORT, 0 }, M_ABI, 0x300000000ULL, 2, 0 },
		{ { "abi with unknown bits", EPROTONOSUPPORT, 0 }, M_ABI, 1ULL << 40, 2, 0 },
		{ { "byte-swapped magic", EPROTONOSUPPORT, 0 }, M_MAGIC, 0, 3, 0 },
		{ { "shorter than a header", ENODATA, 0 }, M_NONE, 0, 0, 100 },
		{ { "one byte short of a header", ENODATA, 0 }, M_NONE, 0, 0, HDR - 1 },
		{ { "shorter than flen", ENODATA, 0 }, M_NONE, 0, 0, HDR },
		{ { "one page short of flen", ENODATA, 0 }, M_NONE, 0, 0, 0x1 },
		{ { "empty", ENODATA, 0 }, M_NONE, 0, 0, 0x2 },
	};

	/* The size rule on its own (rszshm_at's pread catches it first). */
	{
		const char *why = NULL;

		ck_assert_int_eq(rszshm__hdr_validate(&good, HDR - 1, &why), -ENODATA);
		ck_assert_ptr_nonnull(why);
		ck_assert_int_eq(rszshm__hdr_validate(&good, flen, &why), 0);
	}

	test_subdir(dir, sizeof(dir), "bad");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hdr_case *c = &cases[i];
		struct rszshm_hdr h = good;

		/* Mapping at a kernel address is refused by the kernel, unless
		 * an emulator takes the address as a hint and maps elsewhere. */
		if (c->field == M_ADDR && c->c.err == ENOMEM && test_missing(TEST_NEED_NOREPLACE)) {
			printf("%s: case '%s' skipped: the kernel (or emulator) lacks %s\n", __func__,
			       c->c.what, test_missing(TEST_NEED_NOREPLACE));
			continue;
		}
		uint64_t *f = NULL, size = c->size ? c->size : flen;

		switch (c->field) {
		case M_NONE: break;
		case M_MAGIC: f = &h.magic; break;
		case M_VERSION: h.version = (uint32_t)c->val; break;
		case M_HDR_SIZE: h.hdr_size = (uint32_t)c->val; break;
		case M_PAGE_SIZE: f = &h.page_size; break;
		case M_FLAGS: f = &h.flags; break;
		case M_ADDR: f = &h.addr_bits_; break;
		case M_MAX: f = &h.max; break;
		case M_FLEN: f = &h.flen; break;
		case M_ABI: f = &h.abi; break;
		}
		if (f)
			*f = c->rel == 1 ? *f + c->val : c->rel == 2 ? *f ^ c->val :
			     c->rel == 3 ? __builtin_bswap64(*f) : c->val;
		if (c->size == 0x1)
			size = flen - pg;
		else if (c->size == 0x2)
			size = 0;
		memcpy(buf, &h, sizeof(h));
		snprintf(leaf, sizeof(leaf), "case%zu", i);
		test_in_dir(path, dir, leaf);
		write_file(path, buf, (size_t)size);
		if (c->c.err == 0) {
			/* The unmodified copy attaches: the table tests the rule,
			 * not the copying. */
			ck_assert_ptr_nonnull(rszshm_at(&r, path));
			ck_assert_int_eq(rszshm_dt(&r), 0);
			continue;
		}
		expect_refused(path, &c->c, addr, max, 0);
		expect_refused(path, &c->c, addr, max, RSZSHM_RDONLY);
	}
	free(buf);
}
END_TEST

START_TEST(test_at_refuses_non_files)
{
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	const struct bad_case isdir = { "a directory", EISDIR, EPROTO };
	const struct bad_case fifo = { "a FIFO", EPROTO, 0 };
	const struct bad_case dev = { "/dev/null", EPROTO, 0 };
	const struct bad_case link = { "a dangling symlink", ENOENT, 0 };

	test_subdir(dir, sizeof(dir), "nonfiles");
	expect_refused(dir, &isdir, 0, 0, 0);
	expect_refused(dir, &isdir, 0, 0, RSZSHM_RDONLY);
	test_in_dir(path, dir, "fifo");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	/* Opening a FIFO with no writer blocks, unless done non-blocking. */
	expect_refused(path, &fifo, 0, 0, 0);
	expect_refused(path, &fifo, 0, 0, RSZSHM_RDONLY);
	expect_refused("/dev/null", &dev, 0, 0, 0);
	expect_refused("/dev/null", &dev, 0, 0, RSZSHM_RDONLY);
	test_in_dir(path, dir, "link");
	ck_assert_int_eq(symlink("/nonexistent/rszshm", path), 0);
	expect_refused(path, &link, 0, 0, 0);
}
END_TEST

/* Random bytes, and random headers that pass the first checks. */
START_TEST(test_at_refuses_random_bytes)
{
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX];
	const struct bad_case junk = { "random bytes", EPROTO, 0 };
	size_t len = 2 * pgsz(), i;
	unsigned char *buf = malloc(len);
	unsigned seed = 12345;
	pid_t pid;

	ck_assert_ptr_nonnull(buf);
	test_subdir(dir, sizeof(dir), "random");
	test_in_dir(path, dir, "junk");
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)rand_r(&seed);
	write_file(path, buf, len);
	expect_refused(path, &junk, 0, 0, 0);

	/* 300 headers with a valid magic, version, size and page size, and
	 * random other fields: all refused with an errno of the table (the
	 * few that pass validation land on a mapped or kernel address). */
	pid = test_fork();
	if (pid == 0) {
		int k;

		alarm(60);
		for (k = 0; k < 300; k++) {
			struct rszshm_hdr *h = (struct rszshm_hdr *)buf;
			struct rszshm r;
			uint64_t *w = &h->flags;
			int j, err, fds = fd_count();
			void *p;

			for (i = 0; i < len; i++)
				buf[i] = (unsigned char)rand_r(&seed);
			h->magic = RSZSHM_MAGIC;
			h->version = RSZSHM_FORMAT_VERSION;
			h->hdr_size = HDR;
			h->page_size = pgsz();
			/* Bias some fields to plausible values. */
			for (j = 0; j < 5; j++)
				if (rand_r(&seed) % 2)
					w[j] = (uint64_t)(rand_r(&seed) % 64) * pgsz();
			write_file(path, buf, len);
			p = rszshm_at(&r, path);
			err = errno;
			if (p) {
				/* Only possible if every field made sense. */
				CCHECK(r.hdr == r.hdr->addr);
				CCHECK(rszshm_dt(&r) == 0);
				continue;
			}
			if (err != EPROTONOSUPPORT && err != EBADMSG && err != ENODATA &&
			    err != ENOSPC && err != ENOMEM) {
				fprintf(stderr, "random header %d: errno %d (%s)\n", k, err,
					strerror(err));
				_exit(1);
			}
			CCHECK(fd_count() == fds);
		}
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	free(buf);
}
END_TEST

/* The recorded address is in use: ENOSPC, and what is there stays. */
START_TEST(test_at_never_maps_over_memory_in_use)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	uintptr_t addr, spots[3];
	size_t max, pg = pgsz();
	int i;

	TEST_NEEDS(TEST_NEED_NOREPLACE);

	mk_in(&r, "inuse", 4096, scan_at(106, 64 << 20, 3), 0);
	test_path(path, sizeof(path), "inuse");
	addr = (uintptr_t)r.hdr;
	max = r.hdr->max;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	spots[0] = addr;
	spots[1] = addr + max / 2;
	spots[2] = addr + max - pg;
	for (i = 0; i < 3; i++) {
		const struct bad_case c = { "span in use", ENOSPC, 0 };
		char *m = mmap((void *)spots[i], pg, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		ck_assert_ptr_eq(m, (void *)spots[i]);
		memset(m, 0xa5, pg);
		ck_assert_ptr_null(rszshm_at(&r, path));
		ck_assert_int_eq(errno, ENOSPC);
		ck_assert_ptr_null(rszshm_at_flags(&r, path, RSZSHM_RDONLY));
		ck_assert_int_eq(errno, ENOSPC);
		expect_refused(path, &c, 0, 0, 0);
		ck_assert_int_eq(m[0], (char)0xa5);
		ck_assert_int_eq(m[pg - 1], (char)0xa5);
		/* Nothing else was mapped around it. */
		if (i == 0)
			ck_assert(!range_mapped(addr + pg, addr + max));
		ck_assert_int_eq(munmap(m, pg), 0);
	}
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* ===================================================== 4. processes */

struct node {
	struct node *next;
	uint64_t val;
};

#define LIST_LEN 1000

/* helper walk-list FNAME ADDR: walk the list, append two nodes (one in a
 * page past the current length, after growing). */
static int helper_walk_list(int argc, char **argv)
{
	struct rszshm r;
	struct node *n, *last = NULL, *a, *b;
	uint64_t count = 0, sum = 0;

	HCHECK(argc == 3);
	HCHECK(rszshm_at(&r, argv[1]) != NULL);
	HCHECK((uintptr_t)r.hdr == strtoull(argv[2], NULL, 16));
	for (n = *(struct node **)r.dat; n; n = n->next) {
		HCHECK((char *)n > (char *)r.dat && (char *)n < (char *)r.dat + r.cap);
		HCHECK(n->val == count * count);
		sum += n->val;
		count++;
		last = n;
	}
	HCHECK(count == LIST_LEN);
	HCHECK(sum > 0);
	a = last + 1;
	a->val = 4242;
	last->next = a;
	HCHECK(rszshm_grow_to(&r, r.flen + (1 << 20)) == 0);
	b = (struct node *)((char *)r.hdr + r.flen - sizeof(*b));
	b->val = 4343;
	b->next = NULL;
	a->next = b;
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

START_TEST(test_exec_helper_walks_pointer_list)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX], addr[32];
	struct node *nodes, *n;
	size_t flen;
	uint64_t count = 0;
	int i;

	mk_in(&r, "list", LIST_LEN * sizeof(struct node) + 64, RSZSHM_DFLT_SCAN, 0);
	test_path(path, sizeof(path), "list");
	nodes = (struct node *)((char *)r.dat + 16);
	/* Linked in a shuffled order, so the walk follows pointers. */
	for (i = 0; i < LIST_LEN; i++) {
		nodes[i].val = (uint64_t)i * (uint64_t)i;
		nodes[i].next = i + 1 < LIST_LEN ? &nodes[i + 1] : NULL;
	}
	*(struct node **)r.dat = &nodes[0];
	flen = r.flen;
	snprintf(addr, sizeof(addr), "%lx", (unsigned long)(uintptr_t)r.hdr);
	ck_assert_int_eq(test_wait(test_exec_helper("walk-list", path, addr, NULL)), 0);
	/* The helper's nodes, one in memory grown by the helper: no up. */
	ck_assert_uint_eq(r.flen, flen);
	for (n = *(struct node **)r.dat; n; n = n->next)
		count++;
	ck_assert_uint_eq(count, LIST_LEN + 2);
	ck_assert_uint_eq(nodes[LIST_LEN].val, 4242);
	ck_assert_uint_eq(nodes[LIST_LEN].next->val, 4343);
	ck_assert_ptr_eq(nodes[LIST_LEN].next, (char *)r.hdr + flen + (1 << 20) - sizeof(struct node));
	ck_assert_int_eq(rszshm_up(&r), 1);
	ck_assert_uint_eq(r.flen, flen + (1 << 20));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/*
 * Concurrent growth, the ccan example's workload: workers claim byte
 * indexes one at a time with an atomic counter at the start of the raw
 * area, grow the region when an index is past their view of it, and write
 * their letter.  Half the workers are forked (sharing the creator's handle
 * state), half are exec'd and attach by name.  Not a benchmark.
 */
#define WORKERS 8

struct fill {
	struct rszshm *r;
	int stop;
	char letter;
	int ready, go, out;	/* pipe ends */
};

/* The worker loop; writes its count to @f->out.  0 or a failure code. */
static int fill_loop(struct fill *f)
{
	struct rszshm *r = f->r;
	char *m = (char *)r->dat + sizeof(int);
	uint64_t mine = 0;
	int i;
	char c = 0;

	if (write(f->ready, &c, 1) != 1 || read(f->go, &c, 1) != 1)
		return 10;
	for (i = __sync_fetch_and_add((int *)r->dat, 1); i < f->stop;
	     i = __sync_fetch_and_add((int *)r->dat, 1)) {
		/* rszshm_grow may only catch up with another process's growth
		 * (as in ccan), which need not cover @i yet when this handle
		 * lagged a whole doubling behind: loop until it does.  ccan's
		 * example has `if` here, and then writes past the end. */
		while ((size_t)i >= r->cap - sizeof(int))
			if (rszshm_grow(r) != 1)
				return 11;
		if (m[i] != 0)
			return 12;
		m[i] = f->letter;
		mine++;
	}
	return write(f->out, &mine, sizeof(mine)) == sizeof(mine) ? 0 : 13;
}

static int fill_child(void *arg)
{
	return fill_loop(arg);
}

/* helper fill FNAME STOP LETTER READY GO OUT */
static int helper_fill(int argc, char **argv)
{
	struct rszshm r;
	struct fill f;
	int rc;

	HCHECK(argc == 7);
	HCHECK(rszshm_at(&r, argv[1]) != NULL);
	f.r = &r;
	f.stop = atoi(argv[2]);
	f.letter = argv[3][0];
	f.ready = atoi(argv[4]);
	f.go = atoi(argv[5]);
	f.out = atoi(argv[6]);
	rc = fill_loop(&f);
	HCHECK(rszshm_dt(&r) == 0);
	return rc;
}

static void fill_run(size_t total, int run)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX], leaf[64];
	int ready[2], go[2], out[2], i;
	uint64_t per[WORKERS] = { 0 }, sum = 0, seen[WORKERS] = { 0 };
	pid_t pids[WORKERS];
	struct fill f;
	unsigned char *m;
	size_t stop = total - HDR - sizeof(int);

	snprintf(leaf, sizeof(leaf), "fill-%zu-%d", total, run);
	mk_in(&r, leaf, 4096, RSZSHM_DFLT_SCAN, 0);
	test_path(path, sizeof(path), "%s", leaf);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(out), 0);
	f = (struct fill){ &r, (int)stop, 0, ready[1], go[0], out[1] };
	for (i = 0; i < WORKERS; i++) {
		f.letter = (char)('A' + i);
		if (i % 2 == 0) {
			pids[i] = spawn(fill_child, &f);
		} else {
			char a[6][32];

			snprintf(a[0], 32, "%d", (int)stop);
			snprintf(a[1], 32, "%c", 'A' + i);
			snprintf(a[2], 32, "%d", ready[1]);
			snprintf(a[3], 32, "%d", go[0]);
			snprintf(a[4], 32, "%d", out[1]);
			pids[i] = test_exec_helper("fill", path, a[0], a[1], a[2], a[3], a[4], NULL);
		}
	}
	for (i = 0; i < WORKERS; i++)
		test_wait_byte(ready[0]);
	for (i = 0; i < WORKERS; i++)
		test_post(go[1]);
	for (i = 0; i < WORKERS; i++) {
		int st = test_wait(pids[i]);

		ck_assert_msg(st == 0, "worker %c: status %d", 'A' + i, st);
	}
	close(out[1]);
	for (i = 0; i < WORKERS; i++) {
		ck_assert_int_eq(read(out[0], &per[i], sizeof(per[i])), sizeof(per[i]));
		sum += per[i];
	}
	close(out[0]);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	ck_assert_uint_eq(sum, stop);

	/* Every byte claimed is written, by one of the workers. */
	ck_assert_int_eq(rszshm_up(&r), 1);
	ck_assert_uint_ge(r.flen, total);
	ck_assert_uint_ge(r.cap + sizeof(int), stop);
	ck_assert_uint_eq(file_size(path), r.flen);
	m = (unsigned char *)r.dat + sizeof(int);
	for (size_t k = 0; k < stop; k++) {
		/* One ck_assert per byte would cost a pipe write each. */
		if (m[k] < 'A' || m[k] >= 'A' + WORKERS)
			ck_abort_msg("run %d, %zu bytes: byte %zu is %#x", run, total, k, m[k]);
		seen[m[k] - 'A']++;
	}
	/* The letters' counts add up to the workers' own counts. */
	{
		uint64_t a = 0, b = 0;

		for (i = 0; i < WORKERS; i++) {
			a += seen[i];
			b += per[i];
		}
		ck_assert_uint_eq(a, b);
	}
	ck_assert_int_ge(*(int *)r.dat, (int)stop);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}

START_TEST(test_eight_workers_fill_4mib_20_runs)
{
	int run;

	for (run = 0; run < 20; run++)
		fill_run(4 << 20, run);
}
END_TEST

START_TEST(test_eight_workers_fill_64mib_3_runs)
{
	int run;

	for (run = 0; run < 3; run++)
		fill_run(64 << 20, run);
}
END_TEST

START_TEST(test_growth_visible_without_up)
{
	struct rszshm r;
	int to_parent[2], to_child[2];
	size_t flen;
	volatile char *far;
	pid_t pid;

	mk_in(&r, "visible", 4096, RSZSHM_DFLT_SCAN, 0);
	flen = r.flen;
	ck_assert_int_eq(pipe(to_parent), 0);
	ck_assert_int_eq(pipe(to_child), 0);
	pid = test_fork();
	if (pid == 0) {
		/* Grow by doubling, then to 32 MiB, writing at each new end. */
		CCHECK(rszshm_grow(&r) == 1);
		((char *)r.hdr)[r.flen - 1] = 'a';
		CCHECK(rszshm_grow_to(&r, 32 << 20) == 0);
		((char *)r.hdr)[r.flen - 1] = 'b';
		test_post(to_parent[1]);
		test_wait_byte(to_child[0]);
		CCHECK(((char *)r.hdr)[(32 << 20) - 2] == 'p');
		_exit(0);
	}
	test_wait_byte(to_parent[0]);
	ck_assert_uint_eq(r.flen, flen);	/* stale */
	ck_assert_uint_eq(r.cap, raw_cap(flen, r.hdr->max));
	ck_assert_uint_eq(r.hdr->flen, 32 << 20);
	ck_assert_int_eq(((char *)r.hdr)[2 * flen - 1], 'a');
	far = (char *)r.hdr + (32 << 20) - 1;
	ck_assert_int_eq(*far, 'b');
	far[-1] = 'p';
	ck_assert_uint_eq(r.flen, flen);	/* still stale, memory usable */
	test_post(to_child[1]);
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_int_eq(rszshm_up(&r), 1);
	ck_assert_uint_eq(r.flen, 32 << 20);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* Racers growing to different targets: the file ends at the largest. */
START_TEST(test_grow_to_races_never_shrink)
{
	enum { RACERS = 6, ROUNDS = 15 };
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	int round;

	mk_in(&r, "race", 4096, RSZSHM_DFLT_SCAN, 0);
	test_path(path, sizeof(path), "race");
	for (round = 0; round < ROUNDS; round++) {
		size_t base = r.flen, top = 0;
		int go[2], i;
		pid_t pids[RACERS];

		ck_assert_int_eq(pipe(go), 0);
		for (i = 0; i < RACERS; i++) {
			/* Targets in a rotating order; some mix in doubling. */
			size_t want = base + (size_t)((i + round) % RACERS + 1) * 3 * pgsz();

			if (want > top)
				top = want;
			pids[i] = test_fork();
			if (pids[i] == 0) {
				char c;

				close(go[1]);
				CCHECK(read(go[0], &c, 1) == 0);
				CCHECK(rszshm_grow_to(&r, want) == 0);
				CCHECK(r.flen >= want);
				CCHECK(r.hdr->flen >= want);
				((volatile char *)r.hdr)[want - 1] = 1;
				_exit(0);
			}
		}
		close(go[0]);
		close(go[1]);	/* EOF releases every racer at once */
		for (i = 0; i < RACERS; i++)
			ck_assert_int_eq(test_wait(pids[i]), 0);
		ck_assert_uint_eq(r.hdr->flen, top);
		ck_assert_uint_eq(file_size(path), top);
		ck_assert_int_eq(rszshm_up(&r), 1);
		ck_assert_uint_eq(r.flen, top);
	}
	/* Doubling racers: each round ends at one doubling, not several. */
	for (round = 0; round < 3; round++) {
		size_t flen = r.flen;
		pid_t pids[RACERS];
		int go[2], i;

		ck_assert_int_eq(pipe(go), 0);
		for (i = 0; i < RACERS; i++) {
			pids[i] = test_fork();
			if (pids[i] == 0) {
				char c;

				close(go[1]);
				CCHECK(read(go[0], &c, 1) == 0);
				CCHECK(rszshm_grow(&r) == 1);
				CCHECK(r.flen == 2 * flen);
				_exit(0);
			}
		}
		close(go[0]);
		close(go[1]);
		for (i = 0; i < RACERS; i++)
			ck_assert_int_eq(test_wait(pids[i]), 0);
		ck_assert_uint_eq(r.hdr->flen, 2 * flen);
		ck_assert_uint_eq(file_size(path), 2 * flen);
		ck_assert_int_eq(rszshm_up(&r), 1);
	}
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_access_past_length_sigbus)
{
	struct rszshm r;
	char *base;

	mk_in(&r, "sigbus", 4096, RSZSHM_DFLT_SCAN, 0);
	base = (char *)r.hdr;
	ck_assert_int_eq(touch(base + r.flen - 1, true), 0);
	ck_assert_int_eq(touch(base + r.flen, false), 128 + SIGBUS);
	ck_assert_int_eq(touch(base + r.flen, true), 128 + SIGBUS);
	ck_assert_int_eq(touch(base + r.hdr->max - 1, true), 128 + SIGBUS);
	ck_assert_int_eq(touch(base + (1 << 20), true), 128 + SIGBUS);
	/* Grown: nothing written past the end earlier landed anywhere (the
	 * new pages are zero), and the same address now works. */
	ck_assert_int_eq(rszshm_grow_to(&r, 2 << 20), 0);
	ck_assert_int_eq(base[r.flen - 1], 0);
	ck_assert_int_eq(base[(1 << 20)], 0);
	ck_assert_int_eq(touch(base + (1 << 20), true), 0);
	ck_assert_int_eq(base[(1 << 20)], 1);
	ck_assert_int_eq(touch(base + (2 << 20), true), 128 + SIGBUS);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_rdonly_attach)
{
	struct rszshm r, ro;
	char path[RSZSHM_PATH_MAX];
	struct stat st;
	size_t flen;
	pid_t pid;

	mk_in(&r, "ro", 4096, scan_at(74, 64 << 20, 3), 0);
	test_path(path, sizeof(path), "ro");
	strcpy(r.dat, "readable");
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(stat(path, &st), 0);

	ck_assert_ptr_nonnull(rszshm_at_flags(&ro, path, RSZSHM_RDONLY));
	ck_assert(ro.flags & RSZSHM_RDONLY);
	ck_assert_int_eq(fcntl(ro.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	ck_assert_str_eq(ro.dat, "readable");
	flen = ro.flen;
	ck_assert_int_eq(touch(ro.dat, true), 128 + SIGSEGV);
	ck_assert_int_eq(touch(ro.dat, false), 0);
	ck_assert_int_eq(rszshm_grow(&ro), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(rszshm_grow_to(&ro, 1 << 20), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(rszshm_flush(&ro, NULL, 0), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(rszshm_lock(&ro), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(rszshm_trylock(&ro), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(rszshm_unlock(&ro), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(rszshm_up(&ro), 0);
	ck_assert_uint_eq(file_size(path), flen);

	/* A writer grows and writes; the reader sees it without a call. */
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_dt(&ro) == 0);
		CCHECK(rszshm_at(&r, path) != NULL);
		CCHECK(rszshm_grow_to(&r, 1 << 20) == 0);
		strcpy((char *)r.hdr + (1 << 20) - 16, "grown");
		CCHECK(rszshm_dt(&r) == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_str_eq((char *)ro.hdr + (1 << 20) - 16, "grown");
	ck_assert_int_eq(rszshm_up(&ro), 1);
	ck_assert_uint_eq(ro.flen, 1 << 20);
	ck_assert_int_eq(rszshm_dt(&ro), 0);
	/* Nothing written by the read-only handle: the file's mtime is the
	 * writer's, the header as it was. */
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_str_eq(r.dat, "readable");
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_anon_region_shared_with_children)
{
	struct rszshm r;
	char dir[RSZSHM_PATH_MAX], link[64], target[256];
	ssize_t n;
	pid_t pid;
	int i;

	/* The name is ignored: nothing appears in the file system. */
	test_subdir(dir, sizeof(dir), "anon");
	ck_assert_ptr_nonnull(rszshm_mk_flags(&r, 4096, dir, RSZSHM_DFLT_SCAN, RSZSHM_ANON));
	ck_assert_str_eq(r.fname, "");
	ck_assert_uint_eq(r.hdr->flags, RSZSHM_ANON);
	ck_assert_int_eq(test_dir_count(dir), 0);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", r.fd);
	n = readlink(link, target, sizeof(target) - 1);
	ck_assert_int_gt(n, 0);
	target[n] = '\0';
	ck_assert_msg(strncmp(target, "/memfd:", 7) == 0, "fd is %s", target);
	strcpy(r.dat, "from parent");
	for (i = 0; i < 3; i++) {
		pid = test_fork();
		if (pid == 0) {
			CCHECK(strcmp(r.dat, "from parent") == 0);
			CCHECK(rszshm_grow(&r) == 1);
			((char *)r.hdr)[r.flen - 1] = (char)('x' + i);
			_exit(0);
		}
		ck_assert_int_eq(test_wait(pid), 0);
		ck_assert_int_eq(((char *)r.hdr)[r.hdr->flen - 1], 'x' + i);
		ck_assert_int_eq(rszshm_up(&r), 1);
	}
	ck_assert_ptr_null(rszshm_at(&(struct rszshm){ 0 }, r.fname));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_unlink(&r), -1);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(test_dir_count(dir), 0);
}
END_TEST

static uint64_t blocks_bytes(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

START_TEST(test_allocate_backs_every_page)
{
	struct rszshm r, s;

	mk_in(&r, "alloc", 1 << 20, RSZSHM_DFLT_SCAN, RSZSHM_ALLOCATE);
	ck_assert_uint_eq(r.hdr->flags, RSZSHM_ALLOCATE);
	ck_assert_uint_ge(blocks_bytes(r.fd), r.flen);
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_ge(blocks_bytes(r.fd), r.flen);
	ck_assert_int_eq(rszshm_grow_to(&r, 16 << 20), 0);
	ck_assert_uint_ge(blocks_bytes(r.fd), 16 << 20);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);

	/* Without the flag: sparse. */
	mk_in(&s, "sparse", 1 << 20, RSZSHM_DFLT_SCAN, 0);
	ck_assert_int_eq(rszshm_grow_to(&s, 16 << 20), 0);
	ck_assert_uint_lt(blocks_bytes(s.fd), 1 << 20);
	ck_assert_int_eq(rszshm_dt(&s), 0);
	ck_assert_int_eq(rszshm_unlink(&s), 0);
}
END_TEST

START_TEST(test_allocate_full_fs_enospc)
{
	char dir[RSZSHM_PATH_MAX];
	pid_t pid;

	test_subdir(dir, sizeof(dir), "full");
	pid = test_fork();
	if (pid == 0) {
		char path[RSZSHM_PATH_MAX + 8];
		struct rszshm r;
		size_t flen;

		CCHECK(test_small_tmpfs(dir) == 0);
		test_in_dir(path, dir, "f");
		CCHECK(rszshm_mk_flags(&r, 4096, path, RSZSHM_DFLT_SCAN, RSZSHM_ALLOCATE));
		while (rszshm_grow(&r) == 1)
			CCHECK(r.flen <= (1 << 20));
		CCHECK(errno == ENOSPC);
		flen = r.flen;
		CCHECK(r.hdr->flen == flen);
		CCHECK(file_size(path) == flen);
		CCHECK(rszshm_grow_to(&r, 2 << 20) == -1 && errno == ENOSPC);
		CCHECK(r.flen == flen && file_size(path) == flen);
		/* Every page below the length is backed: touching them all
		 * cannot SIGBUS. */
		memset(r.dat, 1, r.cap);
		CCHECK(rszshm_dt(&r) == 0);
		CCHECK(unlink(path) == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
}
END_TEST

/* ================================================== detach and msync */

/* Does the kernel give unique mount ids (Linux 6.8), which detach needs to
 * know a tmpfs without asking each time? */
static bool unique_mount_ids(void)
{
	struct statx sx;
	bool yes;
	int fd;

	/* Asked as the library asks (a descriptor, AT_EMPTY_PATH): an
	 * emulator may answer a path and not a descriptor, or give 0. */
	if ((fd = open(test_dir(), O_RDONLY | O_DIRECTORY)) < 0)
		return false;
	yes = statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_MNT_ID_UNIQUE, &sx) == 0 &&
	      (sx.stx_mask & STATX_MNT_ID_UNIQUE) && sx.stx_mnt_id != 0;
	close(fd);
	return yes;
}

/* A fresh directory on a file system other than tmpfs, tracked for removal;
 * false if there is none. */
static bool disk_dir(char *buf, size_t len)
{
	const char *bases[] = { getenv("TMPDIR"), "/var/tmp", "/tmp" };
	size_t i;

	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		struct statfs sf;

		if (!bases[i] || statfs(bases[i], &sf) != 0 || sf.f_type == TMPFS_MAGIC)
			continue;
		snprintf(buf, len, "%s/rszshm_flush_XXXXXX", bases[i]);
		if (mkdtemp(buf))
			return true;
	}
	return false;
}

/* Attach a writer of @path, write @word, detach: how many msync calls the
 * detach made. */
static unsigned long dt_msyncs(const char *path, unsigned long word)
{
	struct rszshm r;
	unsigned long before;

	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	*(unsigned long *)r.dat = word;
	before = rszshm__sys_msyncs();
	ck_assert_int_eq(rszshm_dt(&r), 0);
	return rszshm__sys_msyncs() - before;
}

/*
 * Detach flushes (msync) a region on a disk file system, and does not on
 * tmpfs, whose pages are the file: whatever order the two come in (the
 * answer is remembered per mount).  rszshm_flush always flushes.  The data
 * reaches the file either way.
 */
START_TEST(test_dt_flushes_disk_files_not_tmpfs)
{
	char dir[RSZSHM_PATH_MAX], disk[RSZSHM_PATH_MAX + 8], shm[RSZSHM_PATH_MAX];
	bool skips = unique_mount_ids();
	unsigned long got, before, w;
	struct rszshm r;
	int i, fd;

	if (!disk_dir(dir, sizeof(dir) - 4)) {
		printf("%s: skipped: no file system but tmpfs to make a file on\n", __func__);
		return;
	}
	snprintf(disk, sizeof(disk), "%s/0", dir);
	test_track(disk);	/* the file and its directory go, pass or fail */
	ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, disk, RSZSHM_DFLT_SCAN));
	ck_assert_int_eq(rszshm_dt(&r), 0);
	mk_in(&r, "dt-msync", 4096, RSZSHM_DFLT_SCAN, 0);
	test_path(shm, sizeof(shm), "dt-msync");
	ck_assert_int_eq(rszshm_dt(&r), 0);

	for (i = 0; i < 2; i++) {
		got = dt_msyncs(shm, 0x1111u + (unsigned)i);
		ck_assert_msg(got == (skips ? 0u : 1u), "tmpfs: %lu msync at detach", got);
		got = dt_msyncs(disk, 0x2222u + (unsigned)i);
		ck_assert_msg(got == 1, "disk: %lu msync at detach", got);
		fd = open(disk, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pread(fd, &w, sizeof(w), sizeof(struct rszshm_hdr)), (ssize_t)sizeof(w));
		close(fd);
		ck_assert_uint_eq(w, 0x2222u + (unsigned)i);
	}
	/* rszshm_flush is asked for, on tmpfs too. */
	ck_assert_ptr_nonnull(rszshm_at(&r, shm));
	before = rszshm__sys_msyncs();
	ck_assert_int_eq(rszshm_flush(&r, NULL, 0), 0);
	ck_assert_uint_eq(rszshm__sys_msyncs() - before, 1);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	/* The maker's handle, too. */
	ck_assert_ptr_nonnull(rszshm_at(&r, disk));
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	before = rszshm__sys_msyncs();
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_uint_eq(rszshm__sys_msyncs() - before, 1);
	ck_assert_int_eq(unlink(shm), 0);
}
END_TEST

static int mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return (int)(st.st_mode & 07777);
}

START_TEST(test_files_created_0600)
{
	static const mode_t masks[] = { 0, 022, 077 };
	size_t i;

	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		struct rszshm r;
		char path[RSZSHM_PATH_MAX], leaf[32];

		umask(masks[i]);
		snprintf(leaf, sizeof(leaf), "mode%zu", i);
		mk_in(&r, leaf, 4096, RSZSHM_DFLT_SCAN, 0);
		test_path(path, sizeof(path), "%s", leaf);
		ck_assert_int_eq(mode_of(path), 0600);
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_unlink(&r), 0);

		test_tmpl(path, sizeof(path), leaf);
		ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, path));
		test_track(r.fname);
		ck_assert_int_eq(mode_of(r.fname), 0600);
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_rm(&r), 0);

		ck_assert_ptr_nonnull(rszshm_mk(&r, 4096, NULL));
		test_track(r.fname);
		ck_assert_int_eq(mode_of(r.fname), 0600);
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_rm(&r), 0);
	}
}
END_TEST

START_TEST(test_symlink_at_name_eexist)
{
	char dir[RSZSHM_PATH_MAX], path[RSZSHM_PATH_MAX], target[RSZSHM_PATH_MAX];
	char buf[16] = { 0 };
	struct rszshm r;
	int fd, fds = fd_count();

	test_subdir(dir, sizeof(dir), "symlink");
	test_in_dir(target, dir, "target");
	test_in_dir(path, dir, "link");
	write_file(target, "victim", 6);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path));
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_uint_eq(file_size(target), 6);
	fd = open(target, O_RDONLY);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 6);
	close(fd);
	ck_assert_str_eq(buf, "victim");
	ck_assert_int_eq(fd_count(), fds);

	/* A dangling link: its target is not created either. */
	ck_assert_int_eq(unlink(path), 0);
	test_in_dir(target, dir, "created");
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_ptr_null(rszshm_mk(&r, 4096, path));
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(access(target, F_OK), -1);
	ck_assert_int_eq(test_dir_count(dir), 2);
}
END_TEST

START_TEST(test_flush_then_reattach)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	void *addr;
	char *p;

	mk_in(&r, "flush", 4096, scan_at(78, 64 << 20, 3), 0);
	test_path(path, sizeof(path), "flush");
	addr = r.hdr;
	ck_assert_int_eq(rszshm_grow_to(&r, 1 << 20), 0);
	p = (char *)r.hdr + (1 << 19);
	strcpy(r.dat, "header side");
	strcpy(p, "middle");
	ck_assert_int_eq(rszshm_flush(&r, NULL, 0), 0);
	ck_assert_int_eq(rszshm_flush(&r, p, 7), 0);
	ck_assert_int_eq(rszshm_flush(&r, r.dat, 0), 0);
	ck_assert_int_eq(rszshm_flush(&r, r.hdr, r.flen), 0);
	ck_assert_int_eq(rszshm_flush(&r, (char *)r.hdr + r.flen, 0), 0);
	/* Ranges outside the region. */
	ck_assert_int_eq(rszshm_flush(&r, (char *)r.hdr - 1, 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_flush(&r, p, r.flen), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_flush(&r, (char *)r.hdr + r.flen + 1, 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_flush(&r, p, SIZE_MAX), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_flush(NULL, NULL, 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_flush(&r, NULL, 0), -1);
	ck_assert_int_eq(errno, EINVAL);

	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_ptr_eq(r.hdr, addr);
	ck_assert_str_eq(r.dat, "header side");
	ck_assert_str_eq((char *)r.hdr + (1 << 19), "middle");
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

START_TEST(test_user_lock)
{
	struct rszshm r;
	int up[2], down[2];
	pid_t pid;

	TEST_NEEDS(TEST_NEED_ROBUST);

	mk_in(&r, "lock", 4096, RSZSHM_DFLT_SCAN, 0);
	ck_assert_int_eq(rszshm_lock(&r), 0);
	ck_assert_int_eq(rszshm_lock(&r), -1);
	ck_assert_int_eq(errno, EDEADLK);
	ck_assert_int_eq(rszshm_trylock(&r), -1);
	ck_assert(errno == EBUSY || errno == EDEADLK);
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_trylock(&r) == -1 && errno == EBUSY);
		CCHECK(rszshm_unlock(&r) == -1 && errno == EPERM);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_int_eq(rszshm_unlock(&r), 0);
	ck_assert_int_eq(rszshm_unlock(&r), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(rszshm_trylock(&r), 0);
	ck_assert_int_eq(rszshm_unlock(&r), 0);
	ck_assert_int_eq(rszshm_lock(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);

	/* A holder killed with the lock: the next locker gets 1, then the
	 * lock works as before. */
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_lock(&r) == 0);
		*(int *)r.dat = 7;
		test_post(up[1]);
		test_wait_byte(down[0]);	/* never comes */
		_exit(1);
	}
	test_wait_byte(up[0]);
	ck_assert_int_eq(rszshm_trylock(&r), -1);
	ck_assert_int_eq(errno, EBUSY);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
	ck_assert_int_eq(rszshm_lock(&r), 1);
	ck_assert_int_eq(*(int *)r.dat, 7);
	ck_assert_int_eq(rszshm_unlock(&r), 0);
	ck_assert_int_eq(rszshm_lock(&r), 0);
	ck_assert_int_eq(rszshm_unlock(&r), 0);
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_trylock(&r) == 0);
		CCHECK(rszshm_unlock(&r) == 0);
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	/* Same with trylock as the next locker. */
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm_lock(&r) == 0);
		test_post(up[1]);
		test_wait_byte(down[0]);
		_exit(1);
	}
	test_wait_byte(up[0]);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
	ck_assert_int_eq(rszshm_trylock(&r), 1);
	ck_assert_int_eq(rszshm_unlock(&r), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlock(&r), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/*
 * A grower killed after extending the file and before publishing the length
 * leaves the file longer than the header says.  The next grower publishes
 * that length (so the region grows to what the dead one made) and never
 * cuts the file back, however small its own target.
 */
START_TEST(test_grow_after_grower_killed_past_ftruncate_keeps_its_length)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
	size_t flen, pg = pgsz();
	pid_t pid;

	mk_in(&r, "killed-extended", 4096, RSZSHM_DFLT_SCAN, 0);
	test_path(path, sizeof(path), "killed-extended");
	flen = r.flen;
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm__lock(&rszshm__shared(r.hdr)->grow_lock) == 0);
		CCHECK(ftruncate(r.fd, (off_t)(flen + 5 * pg)) == 0);
		_exit(0);	/* holding the lock, the length unpublished */
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_uint_eq(r.hdr->flen, flen);
	ck_assert_int_eq(rszshm_grow_to(&r, flen + pg), 0);
	ck_assert_uint_eq(file_size(path), flen + 5 * pg);
	ck_assert_uint_eq(r.hdr->flen, flen + 5 * pg);
	ck_assert_uint_eq(r.flen, flen + 5 * pg);
	((volatile char *)r.hdr)[flen + 5 * pg - 1] = 1;
	ck_assert_int_eq(rszshm_grow_to(&r, flen + 6 * pg), 0);
	ck_assert_uint_eq(file_size(path), flen + 6 * pg);
	assert_grow_lock_free(&r);

	/* Lengthened by something else, not by whole pages: not published,
	 * and the next grow sets the length it wants. */
	ck_assert_int_eq(ftruncate(r.fd, (off_t)(flen + 6 * pg + 100)), 0);
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_eq(r.flen, 2 * (flen + 6 * pg));
	ck_assert_uint_eq(file_size(path), 2 * (flen + 6 * pg));
	char msg[256] = "";

	ck_assert_msg(rszshm_check(&r, msg, sizeof(msg)) == 0, "check: %s", msg);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* For the tests below: a grower in another process, asked through a pipe
 * when the attach reaches hook point @grow_point. */
static int grow_cmd = -1, grow_ack = -1, grow_point;

static void grow_at_point(int point)
{
	if (point != grow_point || grow_cmd < 0)
		return;
	test_post(grow_cmd);
	test_wait_byte(grow_ack);
	grow_cmd = -1;	/* once */
}

/*
 * Make a region, have a child grow it (doubling) while this process is at
 * @point of @hookp, in the attach (rszshm_at, @view false) or the view
 * (rszshm__view_open, @view true) that this runs; returns the length the
 * attach or view saw, and the length before the grow in *@before.
 */
static uint64_t grown_mid_attach(const char *name, void (**hookp)(int), int point, bool view,
				 size_t *before)
{
	struct rszshm r;
	struct rszshm__view v;
	char path[RSZSHM_PATH_MAX];
	const char *why = NULL;
	int cmd[2], ack[2], err;
	uint64_t seen;
	bool ok;
	pid_t pid;

	mk_in(&r, name, 4096, RSZSHM_DFLT_SCAN, 0);
	test_path(path, sizeof(path), "%s", name);
	*before = r.flen;
	ck_assert_int_eq(pipe(cmd), 0);
	ck_assert_int_eq(pipe(ack), 0);
	pid = test_fork();
	if (pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		test_wait_byte(cmd[0]);
		CCHECK(rszshm_grow(&r) == 1);
		test_post(ack[1]);
		_exit(0);
	}
	close(cmd[0]);
	close(ack[1]);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	grow_cmd = cmd[1];
	grow_ack = ack[0];
	grow_point = point;
	*hookp = grow_at_point;
	if (view) {
		err = -rszshm__view_open(path, &v, &why);
		ok = err == 0;
	} else {
		ok = rszshm_at(&r, path) != NULL;
		err = errno;
	}
	*hookp = NULL;
	ck_assert_msg(ok, "attach: %s (%s)", strerror(err), why ? why : "-");
	ck_assert_int_eq(grow_cmd, -1);	/* the grow did happen in between */
	ck_assert_int_eq(test_wait(pid), 0);
	close(cmd[1]);
	close(ack[0]);
	if (view) {
		seen = v.len;
		rszshm__view_close(&v);
		ck_assert_int_eq(unlink(path), 0);
	} else {
		seen = r.flen;
		ck_assert_int_eq(rszshm_dt(&r), 0);
		ck_assert_int_eq(rszshm_unlink(&r), 0);
	}
	return seen;
}

/*
 * rszshm_at reads the header, then (after mapping) the file's size: a
 * region grown between the two has a size past the header's length, which
 * is fine, and the handle sees the grown region.  Read in the other order,
 * the header's length would be past the size, and look truncated.
 */
START_TEST(test_at_of_a_region_grown_between_header_and_size)
{
	size_t flen;

	ck_assert_uint_eq(grown_mid_attach("grown-mid-attach", &rszshm__map_hook, 4, false, &flen),
			  2 * flen);
}
END_TEST

/*
 * A view (rszshm-dump, check) reads the file's size, then the header: a
 * region grown between the two has a header longer than the size read,
 * which must not look like a truncated file (the header is read again).
 */
START_TEST(test_view_of_a_region_grown_between_size_and_header)
{
	size_t flen;

	ck_assert_uint_eq(grown_mid_attach("grown-mid-view", &rszshm__hdr_hook, 1, true, &flen),
			  2 * flen);
}
END_TEST

/* A grower killed while holding the grow lock does not block growth. */
START_TEST(test_grow_after_grower_killed)
{
	struct rszshm r;
	int up[2], down[2];
	size_t flen;
	pid_t pid;

	TEST_NEEDS(TEST_NEED_ROBUST);

	mk_in(&r, "killed", 4096, RSZSHM_DFLT_SCAN, 0);
	flen = r.flen;
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	pid = test_fork();
	if (pid == 0) {
		CCHECK(rszshm__lock(&rszshm__shared(r.hdr)->grow_lock) == 0);
		test_post(up[1]);
		test_wait_byte(down[0]);
		_exit(1);
	}
	test_wait_byte(up[0]);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_eq(r.flen, 2 * flen);
	ck_assert_int_eq(rszshm_grow_to(&r, 1 << 20), 0);
	assert_grow_lock_free(&r);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
}
END_TEST

/* ============================================ 5. sparse, past 4 GiB */

START_TEST(test_sparse_region_past_4gib)
{
	struct rszshm r;
	char path[RSZSHM_PATH_MAX];
#if BITS64
	const uint64_t g = 1ULL << 30;
	volatile char *far;
	struct stat st;
	pid_t pid;

	mk_in(&r, "big", 4096, scan_at(108, 8 * g, 3), 0);
	test_path(path, sizeof(path), "big");
	ck_assert_uint_eq(r.hdr->max, 8 * g);
	ck_assert_int_eq(rszshm_grow_to(&r, 5 * g), 0);
	ck_assert_uint_eq(r.flen, 5 * g);
	ck_assert_uint_eq(r.cap, raw_cap(5 * g, 8 * g));
	ck_assert_uint_eq(r.hdr->flen, 5 * g);
	ck_assert_uint_eq(file_size(path), 5 * g);
	far = (char *)r.hdr + 4 * g + 12345;
	pid = test_fork();
	if (pid == 0) {
		*far = 'F';
		((volatile char *)r.hdr)[5 * g - 1] = 'L';
		_exit(0);
	}
	ck_assert_int_eq(test_wait(pid), 0);
	ck_assert_int_eq(*far, 'F');
	ck_assert_int_eq(((char *)r.hdr)[5 * g - 1], 'L');
	ck_assert_int_eq(fstat(r.fd, &st), 0);
	ck_assert_uint_lt((uint64_t)st.st_blocks * 512, 1 << 20);
	/* Doubling from 5 GiB is clamped to the 8 GiB span. */
	ck_assert_int_eq(rszshm_grow(&r), 1);
	ck_assert_uint_eq(r.flen, 8 * g);
	ck_assert_uint_eq(file_size(path), 8 * g);
	ck_assert_int_eq(rszshm_grow(&r), -1);
	ck_assert_int_eq(errno, ENOMEM);
	((volatile char *)r.hdr)[8 * g - 1] = 'E';
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_uint_eq(r.flen, 8 * g);
	ck_assert_int_eq(((char *)r.hdr)[4 * g + 12345], 'F');
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);

	/* An initial length past 4 GiB. */
	mk_in(&r, "big2", 5 * g, scan_at(108, 8 * g, 3), 0);
	ck_assert_uint_eq(r.cap, raw_cap(mk_flen(5 * g, 8 * g), 8 * g));
	((volatile char *)r.dat)[5 * g - 1] = 1;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
#else
	(void)r;
	(void)path;
	SKIP_IF(1, "a span of 8 GiB does not fit a 32-bit address space");
#endif
}
END_TEST

/* ====================================== 6. ccan's documented example */

/*
 * Run test/ccan-example.c (its path in RSZSHM_CCAN_EXAMPLE) as a user
 * would: `ccan-example 8 STOP`, reading the file name it prints.  Its
 * workers outlive its main process, so this process becomes their
 * subreaper and waits for every one.  Then every byte after the header
 * and the counter must be a worker's letter.
 */
static void ccan_example_run(size_t total, int run)
{
	const char *exe = getenv("RSZSHM_CCAN_EXAMPLE");
	size_t stop = total - HDR - sizeof(int), k, got = 0, fsize;
	char out[4096], stopstr[32], fname[RSZSHM_PATH_MAX], *nl;
	int pty, tty, st, failed = 0, last = 0, fd;
	struct termios raw;
	unsigned char *buf;
	pid_t pid;
	ssize_t n;

	ck_assert_msg(exe != NULL, "RSZSHM_CCAN_EXAMPLE is not set");
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	snprintf(stopstr, sizeof(stopstr), "%zu", stop);
	/* The example's stdout is a pseudo-terminal, so stdio line-buffers it
	 * and its file name arrives at once: it is tracked before anything (a
	 * timeout) could kill this test, and the runner removes the file
	 * whatever happens.  This process keeps the terminal's other end open
	 * until then, so that a read cannot see "no writer" too early. */
	pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	ck_assert_int_ge(pty, 0);
	ck_assert_int_eq(grantpt(pty), 0);
	ck_assert_int_eq(unlockpt(pty), 0);
	tty = open(ptsname(pty), O_RDWR | O_NOCTTY | O_CLOEXEC);
	ck_assert_int_ge(tty, 0);
	ck_assert_int_eq(tcgetattr(tty, &raw), 0);
	cfmakeraw(&raw);
	ck_assert_int_eq(tcsetattr(tty, TCSANOW, &raw), 0);
	pid = test_fork();
	if (pid == 0) {
		dup2(tty, 1);
		char *av[] = { (char *)exe, (char *)"8", stopstr, NULL };

		test_execv(exe, av);
		_exit(127);
	}
	/* Until every process of the example has closed the terminal: then a
	 * read fails with EIO, the terminal's end of file. */
	fname[0] = '\0';
	for (;;) {
		n = read(pty, out + got, sizeof(out) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		out[got] = '\0';
		if (!fname[0] && (nl = strchr(out, '\n')) != NULL) {
			ck_assert_uint_lt((size_t)(nl - out), sizeof(fname));
			memcpy(fname, out, (size_t)(nl - out));
			fname[nl - out] = '\0';
			test_track(fname);
			close(tty);
			tty = -1;
		}
		if (got == sizeof(out) - 1)
			got = 0;
	}
	ck_assert_msg(n == 0 || errno == EIO, "read: %s", strerror(errno));
	if (tty >= 0)
		close(tty);
	close(pty);
	ck_assert_msg(fname[0] != '\0', "no file name printed");
	while ((pid = wait(&st)) > 0) {
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			failed++;
			last = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
		}
	}
	ck_assert_msg(failed == 0, "run %d: %d example processes failed (last status %d)",
		      run, failed, last);

	fsize = file_size(fname);
	ck_assert_uint_ge(fsize, total);
	buf = malloc(fsize);
	ck_assert_ptr_nonnull(buf);
	fd = open(fname, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, fsize, 0), (ssize_t)fsize);
	close(fd);
	ck_assert_int_ge(*(int *)(buf + HDR), (int)stop);
	/* Every claimed byte written by one of the 8 workers; none past them. */
	for (k = HDR + sizeof(int); k < fsize; k++)
		if (k < total ? buf[k] < 'A' || buf[k] > 'H' : buf[k] != 0)
			ck_abort_msg("run %d: byte %zu of %s is %#x", run, k, fname, buf[k]);
	free(buf);
	ck_assert_int_eq(unlink(fname), 0);
	*strrchr(fname, '/') = '\0';
	ck_assert_int_eq(rmdir(fname), 0);
}

static int env_runs(const char *name, int dflt)
{
	const char *v = getenv(name);

	return v ? atoi(v) : dflt;
}

START_TEST(test_ccan_example_fills_4mib)
{
	int run, runs = env_runs("RSZSHM_CCAN_RUNS_4MIB", 2);

	TEST_NEEDS(TEST_NEED_SUBREAPER);

	for (run = 0; run < runs; run++)
		ccan_example_run(4 << 20, run);
}
END_TEST

START_TEST(test_ccan_example_fills_64mib)
{
	int run, runs = env_runs("RSZSHM_CCAN_RUNS_64MIB", 1);

	TEST_NEEDS(TEST_NEED_SUBREAPER);

	for (run = 0; run < runs; run++)
		ccan_example_run(64 << 20, run);
}
END_TEST

/* ================================================================ suite */

Suite *test_suite(void)
{
	Suite *s = suite_create("core");

	/* 1. ccan compatibility */
	TEST_ADD(s, test_mk_fills_ccan_fields);
	TEST_ADD(s, test_mk_default_name_template);
	TEST_ADD(s, test_mk_four_args_compound_literal);
	TEST_ADD(s, test_mk_spiral_skips_taken_addresses);
	TEST_ADD(s, test_mk_errors_as_ccan);
	TEST_ADD(s, test_mkm_atm_free_rm_macros);
	TEST_ADD(s, test_at_errors);
	TEST_ADD(s, test_at_roundtrip_same_address);
	TEST_ADD(s, test_up_sees_growth_by_other_process);
	TEST_ADD(s, test_grow_doubles_once_across_processes);
	TEST_ADD(s, test_grow_at_span_end_enomem);
	TEST_ADD(s, test_one_page_span_attaches);
	TEST_ADD(s, test_grow_to_sets_length);
	TEST_ADD(s, test_dt_twice_and_access_faults);
	TEST_ADD(s, test_unlink_rmdir_rm);
	/* 2. fault injection */
	TEST_ADD(s, test_mk_fault_injection_leaves_nothing);
	TEST_ADD(s, test_mk_without_tmpfile_creates_by_name);
	TEST_ADD(s, test_at_fault_injection_leaves_nothing);
	TEST_ADD(s, test_grow_fault_injection_changes_nothing);
	TEST_ADD(s, test_grow_to_fault_injection_changes_nothing);
	TEST_ADD(s, test_flush_fault_injection_reports);
	TEST_ADD(s, test_dt_fault_injection_detaches);
	/* 3. hostile files */
	TEST_ADD(s, test_at_refuses_damaged_headers);
	TEST_ADD(s, test_at_refuses_non_files);
	TEST_ADD(s, test_at_refuses_random_bytes);
	TEST_ADD(s, test_at_never_maps_over_memory_in_use);
	/* 4. processes */
	TEST_ADD(s, test_exec_helper_walks_pointer_list);
	TEST_ADD(s, test_eight_workers_fill_4mib_20_runs);
	TEST_ADD(s, test_eight_workers_fill_64mib_3_runs);
	TEST_ADD(s, test_growth_visible_without_up);
	TEST_ADD(s, test_grow_to_races_never_shrink);
	TEST_ADD(s, test_access_past_length_sigbus);
	TEST_ADD(s, test_rdonly_attach);
	TEST_ADD(s, test_anon_region_shared_with_children);
	TEST_ADD(s, test_allocate_backs_every_page);
	if (test_can_mount_tmpfs())
		TEST_ADD(s, test_allocate_full_fs_enospc);
	else
		fprintf(stderr, "test-core: cannot mount a tmpfs here (needs root and "
			"unshare(CLONE_NEWNS)): test_allocate_full_fs_enospc not run\n");
	TEST_ADD(s, test_files_created_0600);
	TEST_ADD(s, test_symlink_at_name_eexist);
	TEST_ADD(s, test_flush_then_reattach);
	TEST_ADD(s, test_dt_flushes_disk_files_not_tmpfs);
	TEST_ADD(s, test_user_lock);
	TEST_ADD(s, test_grow_after_grower_killed);
	TEST_ADD(s, test_at_of_a_region_grown_between_header_and_size);
	TEST_ADD(s, test_view_of_a_region_grown_between_size_and_header);
	TEST_ADD(s, test_grow_after_grower_killed_past_ftruncate_keeps_its_length);
	/* 5. past 4 GiB */
	TEST_ADD(s, test_sparse_region_past_4gib);
	/* 6. ccan's example, as a program */
	TEST_ADD(s, test_ccan_example_fills_4mib);
	if (env_runs("RSZSHM_CCAN_RUNS_64MIB", 0) > 0)
		TEST_ADD(s, test_ccan_example_fills_64mib);
	return s;
}

const struct test_helper test_helpers[] = {
	{ "walk-list", helper_walk_list },
	{ "fill", helper_fill },
	{ NULL, NULL },
};
