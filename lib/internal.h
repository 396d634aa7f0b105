/* SPDX-License-Identifier: Apache-2.0 */
/*
 * internal.h - what the files of lib/ promise each other.
 *
 * One section per file, in layer order; data flows one way:
 *
 *   sys -> span -> plan -> hdr -> lock -> map -> heap -> open -> rec -> wait -> check -> (tools)
 *
 * (rec.c and rec-repair.c call wait.c's writer half, under the index lock,
 * after each change: the one call that goes against the flow.)
 *
 * Conventions inside lib/: functions return 0 (or a count) on success and a
 * negative errno on failure; only the public functions (rszshm_*) set errno,
 * once, at the edge.  Cross-file names are rszshm__<layer>_<verb>; they are
 * not exported from the shared library (tests and tools link the static one).
 */
#ifndef RSZSHM_INTERNAL_H
#define RSZSHM_INTERNAL_H

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "rszshm.h"

#define RSZSHM__INTERNAL __attribute__((visibility("hidden")))

/* Set errno (and rszshm_errmsg()'s text) from a negative errno and return
 * @ret: the edge of the API. */
#define RSZSHM__FAIL(rc, ret) (rszshm__fail(rc), (ret))

/* ---------------------------------------------------------------- sys.c
 * Every kernel call the library makes, and a fault injector for tests: the
 * Nth wrapped call from now fails with @err (once, or from then on). */
RSZSHM__INTERNAL void rszshm__fault_inject(unsigned long nth, bool persist, int err);
RSZSHM__INTERNAL void rszshm__fault_clear(void);
RSZSHM__INTERNAL unsigned long rszshm__fault_calls(void);

RSZSHM__INTERNAL size_t rszshm__page_size(void);
/* Test knob: act as a file system without O_TMPFILE (EOPNOTSUPP). */
RSZSHM__INTERNAL extern bool rszshm__sys_no_tmpfile;
RSZSHM__INTERNAL int rszshm__sys_open(const char *path, int flags, mode_t mode);
RSZSHM__INTERNAL int rszshm__sys_memfd(const char *name);
RSZSHM__INTERNAL int rszshm__sys_close(int fd);
RSZSHM__INTERNAL int rszshm__sys_fsize(int fd, uint64_t *size, bool *regular);
/* As rszshm__sys_fsize() (statx), and *memfs: msync(2) has nothing to write
 * for this file (tmpfs: /dev/shm, memfd).  Known from a unique mount id
 * (Linux 6.8), one fstatfs(2) per mount and process; false where the kernel
 * gives none.  One wrapped call. */
RSZSHM__INTERNAL int rszshm__sys_fstat(int fd, uint64_t *size, bool *regular, bool *memfs);
/* How many msync calls this process has made (for tests). */
RSZSHM__INTERNAL unsigned long rszshm__sys_msyncs(void);
RSZSHM__INTERNAL ssize_t rszshm__sys_pread(int fd, void *buf, size_t len, uint64_t off);
RSZSHM__INTERNAL ssize_t rszshm__sys_read(int fd, void *buf, size_t len);
RSZSHM__INTERNAL int rszshm__sys_ftruncate(int fd, uint64_t len);
RSZSHM__INTERNAL int rszshm__sys_fallocate(int fd, uint64_t off, uint64_t len);
RSZSHM__INTERNAL int rszshm__sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
				      void **out);
RSZSHM__INTERNAL int rszshm__sys_munmap(void *addr, size_t len);
RSZSHM__INTERNAL int rszshm__sys_msync(void *addr, size_t len);
RSZSHM__INTERNAL int rszshm__sys_mkdtemp(char *tmpl);
RSZSHM__INTERNAL int rszshm__sys_unlink(const char *path);
RSZSHM__INTERNAL int rszshm__sys_rmdir(const char *path);
RSZSHM__INTERNAL int rszshm__sys_fchmod(int fd, mode_t mode);
RSZSHM__INTERNAL int rszshm__sys_chmod(const char *path, mode_t mode);
RSZSHM__INTERNAL int rszshm__sys_flock(int fd, int op);
/* 1 if @path names the file open as @fd, 0 if not (or @path is gone). */
RSZSHM__INTERNAL int rszshm__sys_same_file(int fd, const char *path);
RSZSHM__INTERNAL int rszshm__sys_link(const char *from, const char *to);
RSZSHM__INTERNAL int rszshm__sys_mkstemp(char *tmpl);
RSZSHM__INTERNAL ssize_t rszshm__sys_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/*
 * Error text (rszshm_errmsg()), per thread.  rszshm__why(rc, fmt, ...)
 * words the failure @rc that the caller is about to return; the public edge
 * (RSZSHM__FAIL -> rszshm__fail) keeps it if it fails with that same rc and
 * words the bare errno otherwise.  rszshm__why_clear() drops a text whose
 * failure was recovered from.
 */
#define RSZSHM__WHY_MAX 256
RSZSHM__INTERNAL void rszshm__why(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
RSZSHM__INTERNAL void rszshm__why_clear(void);
RSZSHM__INTERNAL void rszshm__fail(int rc);
/* An open-file-description lock (F_RDLCK/F_WRLCK/F_UNLCK) on one byte far past
 * any region's end; -EAGAIN when held elsewhere and !@wait. */
RSZSHM__INTERNAL int rszshm__sys_ofd_lock(int fd, short type, bool wait);
/* How many open-file-description lock calls this process has made (tests). */
RSZSHM__INTERNAL unsigned long rszshm__sys_ofd_locks(void);
/* The inode of this process's PID namespace (/proc/self/ns/pid). */
RSZSHM__INTERNAL int rszshm__sys_pidns(uint64_t *ino);
RSZSHM__INTERNAL void rszshm__sys_futex_wake(void *word);
/* true only if no thread of id @tid exists in this PID namespace. */
RSZSHM__INTERNAL bool rszshm__sys_thread_gone(pid_t tid);

/* The plan's calls (plan.c): not fault-injected, see sys.c. */
struct stat;
RSZSHM__INTERNAL int rszshm__sysq_open(const char *path, int flags, mode_t mode);
RSZSHM__INTERNAL void rszshm__sysq_close(int fd);
/* stat(@path), or fstat(@fd) when @path is NULL. */
RSZSHM__INTERNAL int rszshm__sysq_stat(const char *path, int fd, struct stat *st);
RSZSHM__INTERNAL int rszshm__sysq_lstat(const char *path, struct stat *st);
RSZSHM__INTERNAL int rszshm__sysq_ftruncate(int fd, uint64_t len);
/* MAP_SHARED, read and write, anywhere: the plan's table. */
RSZSHM__INTERNAL int rszshm__sysq_map(int fd, size_t len, void **out);
RSZSHM__INTERNAL void rszshm__sysq_unmap(void *addr, size_t len);
RSZSHM__INTERNAL void rszshm__sysq_pause_us(unsigned us);
RSZSHM__INTERNAL uint64_t rszshm__sysq_random(void);
/* CLOCK_MONOTONIC in ns: one clock for every process of the machine. */
RSZSHM__INTERNAL uint64_t rszshm__sysq_now_ns(void);
/* Is /proc the /proc of this process's PID namespace (/proc/self/stat
 * names getpid())?  Asked afresh at each call. */
RSZSHM__INTERNAL bool rszshm__sys_proc_ours(void);
/* What older C library headers lack (sys.c's tmpfs test, and its tests). */
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
/* 1 if @fd and @other are the same file, 0 if not, or a negative errno. */
RSZSHM__INTERNAL int rszshm__sys_same_fd(int fd, int other);
struct timespec;
/* FUTEX_WAIT (shared) on @word while it holds @val, for at most @rel (NULL:
 * no limit): 0 when woken, -EAGAIN (the word differed), -ETIMEDOUT, -EINTR. */
RSZSHM__INTERNAL int rszshm__sys_futex_wait(const uint32_t *word, uint32_t val,
					    const struct timespec *rel);
/* How many FUTEX_WAIT calls this process has made (for tests). */
RSZSHM__INTERNAL unsigned long rszshm__sys_futex_waits(void);
/* rszshm__sys_futex_wake(), declared above, wakes every waiter (shared). */
/* How many FUTEX_WAKE calls this process has made (for tests). */
RSZSHM__INTERNAL unsigned long rszshm__sys_futex_wakes(void);
/* membarrier(2) for wait.c: register this process for global expedited
 * barriers (0, or -ENOSYS and the like: the kernel cannot); one global
 * expedited barrier (0 or a negative errno); how many this process made. */
RSZSHM__INTERNAL int rszshm__sys_membarrier_register(void);
RSZSHM__INTERNAL int rszshm__sys_membarrier(void);
RSZSHM__INTERNAL unsigned long rszshm__sys_membarriers(void);

/* -------------------------------------------------------------- guard.c
 * The library's accesses through a mapping never raise SIGBUS (see the top
 * of guard.c).  A public call that touches a mapping runs between
 * rszshm__guard_enter() (or _enter_range()) and rszshm__guard_leave(); a
 * fault of its own inside the frame's range is patched over, and leave
 * returns true: the call then fails with ENODATA.  rszshm__guard_arm()
 * installs the handler; it runs before anything is read through a new
 * mapping (map.c's make and attach, a view).  Frames nest.  A frame also
 * carries the lock bound of its call (a handle's, from its flags; a range's,
 * its outer frame's), which lock.c reads from the innermost frame.
 */
#define RSZSHM__GUARD_TLS __attribute__((tls_model("initial-exec")))
struct rszshm__guard {
	struct rszshm__guard *outer;
	const struct rszshm *r;		/* the handle whose span is guarded, or */
	uintptr_t lo, hi, base;		/* a range of file @fd mapped from @base */
	int fd, prot;
	unsigned lock_ms;		/* lock.c's bound (0 default, UINT_MAX none), or
					 * RSZSHM__GUARD_MS_OF_R: @r's, read when needed */
	uintptr_t hit_lo, hit_hi;	/* pages patched (hit_hi 0: none) */
	unsigned hits;			/* faults patched in this frame */
};
RSZSHM__INTERNAL extern _Thread_local struct rszshm__guard *rszshm__guard_top RSZSHM__GUARD_TLS;
RSZSHM__INTERNAL void rszshm__guard_arm(void);
RSZSHM__INTERNAL bool rszshm__guard_mend(struct rszshm__guard *g);
/* A guarded call met a fault: set errno to ENODATA and the reason. */
RSZSHM__INTERNAL void rszshm__guard_fail(void);
/* Pages patched in this process so far (for tests). */
RSZSHM__INTERNAL unsigned long rszshm__guard_patches(void);

/* The handle flags' lock bound (struct rszshm_opts.lock_timeout_ms): in
 * steps of 100 ms; 0 the default, all ones no bound. */
#define RSZSHM__F_LOCK_SHIFT 18
#define RSZSHM__F_LOCK_MAX 0x3fffu
#define RSZSHM__LOCK_STEP_MS 100u
static inline unsigned rszshm__lock_ms_of(unsigned flags)
{
	unsigned code = flags >> RSZSHM__F_LOCK_SHIFT;

	return code == RSZSHM__F_LOCK_MAX ? UINT_MAX : code * RSZSHM__LOCK_STEP_MS;
}

/* The frame and the accesses it guards stay in program order: the compiler
 * must neither sink the push below them, nor hoist them above it, nor
 * assume the handler left hit_hi alone (a compiler barrier, no instruction). */
static inline void rszshm__guard_fence(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__asm__ __volatile__("" ::: "memory");
}

/* A frame's lock bound: what rszshm__lock_bound_ns() (lock.c) and a range
 * frame inside it use.  A handle's frame reads it from the handle's flags
 * only then: few calls wait for a lock, and every call enters a frame. */
#define RSZSHM__GUARD_MS_OF_R (UINT_MAX - 1u)
_Static_assert(RSZSHM_LOCK_TIMEOUT_MAX < RSZSHM__GUARD_MS_OF_R, "no bound is the mark");
static inline unsigned rszshm__guard_lock_ms(const struct rszshm__guard *g)
{
	if (g->lock_ms != RSZSHM__GUARD_MS_OF_R)
		return g->lock_ms;
	return g->r ? rszshm__lock_ms_of(g->r->flags) : 0;
}

static inline void rszshm__guard_enter(struct rszshm__guard *g, const struct rszshm *r)
{
	g->outer = rszshm__guard_top;
	g->r = r;
	g->lo = 0;
	g->lock_ms = RSZSHM__GUARD_MS_OF_R;
	g->hit_hi = 0;
	g->hits = 0;
	rszshm__guard_top = g;
	rszshm__guard_fence();
}

/* A range not (yet) a handle's: @len bytes at @map, the file @fd's bytes
 * from offset 0. */
static inline void rszshm__guard_enter_range(struct rszshm__guard *g, const void *map, size_t len,
					     int fd, int prot)
{
	g->outer = rszshm__guard_top;
	g->r = NULL;
	g->lo = g->base = (uintptr_t)map;
	g->hi = g->lo + len;
	g->fd = fd;
	g->prot = prot;
	g->lock_ms = g->outer ? rszshm__guard_lock_ms(g->outer) : 0;
	g->hit_hi = 0;
	g->hits = 0;
	rszshm__guard_top = g;
	rszshm__guard_fence();
}

/* A view's mapping (a view of a handle's own mapping, fd -1, is guarded
 * by its handle's frame). */
#define rszshm__guard_enter_view(g, v) \
	rszshm__guard_enter_range((g), (v)->map, (size_t)(v)->len, (v)->fd, PROT_READ)

/* Has a fault been patched inside any of this thread's frames so far? */
static inline bool rszshm__guard_hit(void)
{
	const struct rszshm__guard *g;

	rszshm__guard_fence();
	for (g = rszshm__guard_top; g; g = g->outer)
		if (g->hit_hi)
			return true;
	return false;
}

/* Leave the frame: true if a fault was met inside it (its pages are the
 * file's again; the call must fail with ENODATA). */
static inline bool rszshm__guard_leave(struct rszshm__guard *g)
{
	rszshm__guard_fence();
	rszshm__guard_top = g->outer;
	return __builtin_expect(g->hit_hi != 0, 0) && rszshm__guard_mend(g);
}

/* The public edge of a guarded call: @expr evaluated inside a frame on
 * handle @r; on a fault, return @failval with ENODATA. */
#define RSZSHM__GUARDED(r, type, failval, expr)                                    \
	do {                                                                       \
		struct rszshm__guard g_;                                           \
		type v_;                                                           \
		rszshm__guard_enter(&g_, (r));                                     \
		v_ = (expr);                                                       \
		if (rszshm__guard_leave(&g_)) {                                    \
			rszshm__guard_fail();                                      \
			return failval;                                            \
		}                                                                  \
		return v_;                                                         \
	} while (0)

/* --------------------------------------------------------------- span.c
 * Claiming address space: PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,
 * never over anything already mapped. */
RSZSHM__INTERNAL int rszshm__span_probe(const struct rszshm_scan *scan, size_t len, void **out);
/* The same spiral, passing over the tries @skip refuses (counted as taken). */
RSZSHM__INTERNAL int rszshm__span_probe_skip(const struct rszshm_scan *scan, size_t len,
					     bool (*skip)(void *ctx, uintptr_t addr, size_t len),
					     void *ctx, void **out);
/* 0: @addr..+@len is now ours; -EEXIST: something is mapped there; -ENOMEM:
 * it does not fit the address space; or another error of mmap. */
RSZSHM__INTERNAL int rszshm__span_try(void *addr, size_t len);
RSZSHM__INTERNAL int rszshm__span_claim(void *addr, size_t len);
/* Claim exactly @addr..+@len by mapping @fd there (MAP_SHARED, @prot), never
 * over anything mapped: 0, -ENOSPC if something is there, or mmap's error. */
RSZSHM__INTERNAL int rszshm__span_claim_file(void *addr, size_t len, int prot, int fd);

/* --------------------------------------------------------------- plan.c
 * The address plan: a per-user table of the spans live regions hold, so that
 * regions made by different processes get disjoint spans (see plan.c).  The
 * plan is advice: when it is absent, busy, damaged or foreign, mk falls back
 * to the plain probe; nothing here ever makes a call fail that would have
 * succeeded without it.  None of these calls go through the fault injector.
 *
 * rszshm__plan_claim() finds and claims (span_try) a span of @len bytes for
 * @scan: RSZSHM_DFLT_SCAN's start/hop/iter ask for placement anywhere in the
 * plan's area; any other scan is searched as ccan documents, passing over
 * spans the plan says live regions hold.  With @record, the span is entered
 * in the plan as pending (held while this process lives) and @t names the
 * entry for one of: rszshm__plan_note(), which marks the entry live once the
 * file has its name (held while a file with the same device and inode is at
 * @fname), or rszshm__plan_forget(), which drops it (mk failed); call at most
 * one after a successful claim (a ticket holds nothing: one dropped costs
 * only an entry held while this process lives).  Returns 0 or
 * rszshm__span_probe()'s errors.  rszshm__plan_file_id() and
 * rszshm__plan_drop() drop a file's entries after it is unlinked.  Safe in
 * threads; a process keeps the table mapped between calls (see plan.c). */
struct rszshm__plan_ticket {
	uint64_t dev, ino;	/* the table the entry is in */
	int slot;		/* the entry, -1 when nothing was recorded */
};
struct rszshm__plan_file {
	uint64_t dev, ino;
	bool known;
};
RSZSHM__INTERNAL int rszshm__plan_claim(const struct rszshm_scan *scan, size_t len, bool record,
					void **out, struct rszshm__plan_ticket *t);
RSZSHM__INTERNAL void rszshm__plan_note(void *addr, size_t len, struct rszshm__plan_ticket *t,
					int fd, const char *fname);
RSZSHM__INTERNAL void rszshm__plan_forget(void *addr, size_t len, struct rszshm__plan_ticket *t);
RSZSHM__INTERNAL void rszshm__plan_file_id(const char *fname, struct rszshm__plan_file *f);
RSZSHM__INTERNAL void rszshm__plan_drop(const struct rszshm__plan_file *f);

/* ---------------------------------------------------------------- hdr.c
 * The on-file header: its layout is struct rszshm_hdr (public), the
 * library's part of it is struct rszshm__shared below. */
/*
 * wait.c's words: a change counter and a few futex lanes a record's name
 * hashes onto.  Writers bump them under rec_lock; waiters read them with no
 * lock and announce themselves in the waiter counts (which only decide
 * whether a writer makes a FUTEX_WAKE call).
 */
#define RSZSHM__WAIT_LANES 16u
struct rszshm__wait {
	uint64_t changes;		/* record index changes; futex on its low half */
	uint32_t any_waiters;		/* rszshm_rec_wait_any() callers asleep */
	uint32_t pad_;
	uint32_t lane[RSZSHM__WAIT_LANES];	/* +1 per change of a name of the lane */
	uint32_t lane_waiters[RSZSHM__WAIT_LANES];
};

struct rszshm__shared {
	pthread_mutex_t grow_lock;	/* serializes growth of the file */
	pthread_mutex_t user_lock;	/* rszshm_lock() */
	pthread_mutex_t heap_lock;	/* heap/seg.c: segments and the heap's top */
	pthread_mutex_t rec_lock;	/* rec.c: the record index */
	uint64_t heap;			/* address of heap.c's control block, 0 if none */
	uint64_t recs;			/* address of rec.c's index, 0 until made */
	uint64_t pid_ns;		/* lock.c: PID namespace of the attached writers */
	struct rszshm__wait wait;	/* wait.c */
};
_Static_assert(sizeof(struct rszshm__shared) <= sizeof(((struct rszshm_hdr *)0)->private_),
	       "shared state must fit the header's private area");

static inline struct rszshm__shared *rszshm__shared(const struct rszshm_hdr *h)
{
	return (struct rszshm__shared *)(uintptr_t)h->private_;
}

#define RSZSHM__HDR_FLAGS (RSZSHM_ALLOCATE | RSZSHM_HEAP | RSZSHM_ANON)

RSZSHM__INTERNAL void rszshm__hdr_init(struct rszshm_hdr *h, void *addr, uint64_t max,
				       uint64_t flen, unsigned flags);
/* Check every field of a header copy against the file's size.  Returns 0 or
 * -ENODATA/-EPROTO/-EPROTONOSUPPORT/-EBADMSG, with *why naming the field
 * (static text, or for another ABI per-thread text naming both ABIs, valid
 * until the thread's next refusal). */
RSZSHM__INTERNAL int rszshm__hdr_validate(const struct rszshm_hdr *h, uint64_t file_size,
					  const char **why);
/* The first address past this machine's user address space (probed once:
 * 47 or 56 bits on x86-64); no span may reach past it. */
RSZSHM__INTERNAL uintptr_t rszshm__hdr_user_end(void);
/* This build's ABI word (hdr.c's comment), and its text: "x86-64 (64-bit
 * pointers, little-endian, 40-byte locks)"; snprintf's return. */
RSZSHM__INTERNAL uint64_t rszshm__hdr_abi(void);
RSZSHM__INTERNAL int rszshm__hdr_abi_name(uint64_t abi, char *buf, size_t len);
/* The careful read (views, and attach's path for a header that does not
 * pass): fstat @fd, pread its header and validate it against that size; if it does
 * not fit, again with the size read after the header (in that order: a
 * grower extends the file before it publishes a length, so a region being
 * grown never looks truncated); *file_size gets the file's size. */
RSZSHM__INTERNAL int rszshm__hdr_read(int fd, struct rszshm_hdr *h, uint64_t *file_size,
				      const char **why);
/* Test hook: called inside rszshm__hdr_read() at point 1, between the first
 * fstat and the first pread. */
RSZSHM__INTERNAL extern void (*rszshm__hdr_hook)(int point);

/* --------------------------------------------------------------- lock.c
 * Robust, process-shared mutexes.  rszshm__lock() returns 0 when taken,
 * 1 when taken after the holder died (the caller repairs what the lock
 * guards, then calls rszshm__lock_consistent()), or a negative errno:
 * -EBADMSG for a mutex whose type fields are not what rszshm__lock_init()
 * wrote.  It never waits for ever on a holder that cannot be alive (see the
 * top of lock.c): such a lock is taken as if its holder had died.
 * Uncontended, a lock and an unlock are one atomic operation each. */
RSZSHM__INTERNAL int rszshm__lock_init(pthread_mutex_t *m);
RSZSHM__INTERNAL int rszshm__lock(pthread_mutex_t *m);
RSZSHM__INTERNAL int rszshm__trylock(pthread_mutex_t *m);
/* Does @m's word name a holder (a thread id without the died bit)?  A
 * read of the word, no wait: for readers that take no lock. */
RSZSHM__INTERNAL bool rszshm__lock_held(const pthread_mutex_t *m);
/* For a reader that takes no lock and has spun long on what @m's holder is
 * changing: 0 after a short sleep if @m is still held and the call's lock
 * bound has not passed since *since (0 on the first call: set to now); 1 at
 * once if @m has no holder (the change may have ended since the reader
 * looked: it looks again before it gives up); -EAGAIN if held too long (a
 * co-writer's word, or a holder that will not let go or cannot live). */
RSZSHM__INTERNAL int rszshm__lock_outwait(const pthread_mutex_t *m, int64_t *since);
RSZSHM__INTERNAL int rszshm__lock_consistent(pthread_mutex_t *m);
RSZSHM__INTERNAL int rszshm__unlock(pthread_mutex_t *m);
/* Could rszshm__lock_init() and the lock functions have left @m so (read
 * only, any copy)?  0, or -EBADMSG with *why naming what is wrong. */
/* Bounded waits of rszshm__lock() that ended with the lock still busy and
 * its holder's liveness checked, in this process (for tests). */
RSZSHM__INTERNAL uint64_t rszshm__lock_waits(void);
RSZSHM__INTERNAL int rszshm__lock_validate(const pthread_mutex_t *m, const char **why);
/* The calling thread's lock bound (its innermost guard frame's, see
 * guard.c), in ns; -1 for none. */
RSZSHM__INTERNAL int64_t rszshm__lock_bound_ns(void);
/* Call @try(@fd) until it gives anything but -EAGAIN, pausing between tries
 * (100 us doubling to 100 ms), for at most the lock bound: -ETIMEDOUT. */
RSZSHM__INTERNAL int rszshm__lock_bounded(int (*try)(int fd), int fd);
/*
 * At make and attach of a writable handle, with @fd the region's open file
 * and @h its mapped header: mark @fd as attached (an open-file-description
 * lock held until the descriptor's last copy is closed); when no other
 * descriptor is attached, make the header's locks fit for this boot and
 * namespace (a held or damaged lock becomes "holder died", so its next
 * locker repairs) and record this PID namespace.  -EXDEV when writers from
 * another PID namespace are attached.  The caller's namespace is looked up
 * once per process (again in a forked or cloned child, and always in a
 * pid 1).
 */
RSZSHM__INTERNAL int rszshm__lock_attach(int fd, struct rszshm_hdr *h);
/* Test hook: called inside rszshm__lock_attach() at point 1, when the grow
 * lock is rewritten and the other header locks are not yet; at point 2,
 * when the header was found settled and the shared lock is not yet taken
 * (the one-call path: locks unheld and sound, this namespace recorded). */
RSZSHM__INTERNAL extern void (*rszshm__lock_hook)(int point);

/* ---------------------------------------------------------------- map.c
 * Making, attaching, growing and detaching the mapping of one region; the
 * public mk/at entry points compose these in open.c. */
#define RSZSHM__F_ATTACHED 0x10000u	/* handle flag: mapped */
#define RSZSHM__F_MEMFS 0x20000u	/* handle flag: on tmpfs, detach has nothing to msync */

/* A region being made, between rszshm__map_make() and publish/abort. */
struct rszshm__making {
	unsigned flags;			/* in: RSZSHM__HDR_FLAGS */
	mode_t mode;			/* in: the file's mode (0777 bits) */
	bool unnamed;			/* an O_TMPFILE file, to be linked */
	char tmpname[RSZSHM_PATH_MAX + 32];	/* else its temporary name, or "" */
	size_t dir_end;			/* where a mkdtemp()ed dir's name ends in fname */
	int fd;
	void *span;
	uint64_t max;
	bool planned;			/* @plan holds a claim: note or forget it */
	struct rszshm__plan_ticket plan;
};
/*
 * Make the region named r->fname (a template's XXXXXX/ made unique in place)
 * and map it, filling @r, but do not give it its name yet: no other process
 * can see it.  Then exactly one of publish (link it under its name; -EEXIST
 * if that name exists, which is left alone) or abort (undo everything: no
 * mapping, descriptor, file, temporary name or made directory is left).
 * A failed publish still needs the abort.
 */
RSZSHM__INTERNAL int rszshm__map_make(struct rszshm *r, size_t dlen, struct rszshm_scan scan,
				      struct rszshm__making *p);
RSZSHM__INTERNAL int rszshm__map_publish(struct rszshm *r, struct rszshm__making *p);
RSZSHM__INTERNAL void rszshm__map_abort(struct rszshm *r, struct rszshm__making *p);
/* Attach @fname (which may be r->fname) with RSZSHM_RDONLY or 0; says why
 * it failed with rszshm__why().  The header is read (pread) before the
 * mapping, the file's size (statx) after it and before anything is read
 * through it; a header that does not pass takes rszshm__hdr_read(). */
RSZSHM__INTERNAL int rszshm__map_attach(struct rszshm *r, const char *fname, unsigned flags);
/* Test hook: called at numbered points of making a file, so a test can kill
 * the maker there (1 file created, 2 mapped and laid out, 3 before link),
 * and of attaching (4 header read, before mapping; 5 mapped and its size
 * checked, before the first read through the mapping). */
RSZSHM__INTERNAL extern void (*rszshm__map_hook)(int point);
/* Reset a handle to detached. */
RSZSHM__INTERNAL void rszshm__map_reset(struct rszshm *r);
/* Unmap attached handle @r and close its file (flushed first if it is
 * writable); 0 or the first negative errno.  rszshm_dt() (open.c). */
RSZSHM__INTERNAL int rszshm__map_detach(struct rszshm *r);

/* 0 if @r is an attached handle (and writable, with @write), else -EINVAL/-EPERM.
 * Inline: every call asks it first. */
static inline int rszshm__map_usable(const struct rszshm *r, bool write)
{
	if (!r || !(r->flags & RSZSHM__F_ATTACHED) || !r->hdr)
		return -EINVAL;
	if (write && (r->flags & RSZSHM_RDONLY))
		return -EPERM;
	return 0;
}
/* Allocate the file's blocks for its first @len bytes (at most its length),
 * so that a layer about to write there through the mapping of a sparse file
 * gets ENOSPC now instead of SIGBUS then; 0 or a negative errno. */
RSZSHM__INTERNAL int rszshm__map_reserve(struct rszshm *r, uint64_t len);
/* Grow the file to at least @flen (page-rounded); 0 or a negative errno. */
RSZSHM__INTERNAL int rszshm__map_grow_to(struct rszshm *r, uint64_t flen);
/*
 * The region's length that this process may touch: hdr->flen when it lies
 * in the span and, if it is longer than the handle's r->flen, the file is
 * really that long (fstat; then r->flen is refreshed); otherwise the
 * handle's last checked length.  A co-writer that raises hdr->flen past the
 * file therefore never makes the library touch pages past its end; a file
 * truncated by someone else after the check still can (SIGBUS).
 */
RSZSHM__INTERNAL uint64_t rszshm__map_safe_len_slow(struct rszshm *r);
/* The region's current length, read atomically from the header: unchecked,
 * only for comparisons, never as a bound to touch memory by. */
static inline uint64_t rszshm__map_len(const struct rszshm *r)
{
	return __atomic_load_n(&r->hdr->flen, __ATOMIC_ACQUIRE);
}
/* The common case inline: the header's length is the one the handle last
 * checked and recorded (in the span, not past the file). */
static inline uint64_t rszshm__map_safe_len(struct rszshm *r)
{
	uint64_t n = rszshm__map_len(r);

	return n == __atomic_load_n(&r->flen, __ATOMIC_RELAXED) ? n : rszshm__map_safe_len_slow(r);
}

/*
 * A view: a region's bytes mapped read-only at any address, for inspection
 * (rszshm-dump) and for the consistency check.  Pointers stored in the region
 * hold addresses relative to @base (the region's recorded address); read them
 * only through rszshm__view_ptr(), which bounds-checks and translates.
 */
struct rszshm__view {
	const unsigned char *map;	/* the region's first byte, in this process */
	uint64_t base;			/* the region's recorded address (hdr->addr) */
	uint64_t len;			/* bytes readable from @map */
	int fd;				/* -1 when borrowed from a handle */
};

static inline const void *rszshm__view_ptr(const struct rszshm__view *v, uint64_t addr,
					   uint64_t size)
{
	if (addr < v->base || size > v->len || addr - v->base > v->len - size)
		return NULL;
	return v->map + (addr - v->base);
}

static inline const struct rszshm_hdr *rszshm__view_hdr(const struct rszshm__view *v)
{
	return (const struct rszshm_hdr *)v->map;
}

/* Open @path read-only, validate its header, map it at any address. */
RSZSHM__INTERNAL int rszshm__view_open(const char *path, struct rszshm__view *v,
				       const char **why);
RSZSHM__INTERNAL void rszshm__view_close(struct rszshm__view *v);
/* A view of an attached handle's own mapping (no new mapping), as long as
 * rszshm__map_safe_len(). */
static inline void rszshm__view_of(struct rszshm *r, struct rszshm__view *v)
{
	v->map = (const unsigned char *)r->hdr;
	v->base = (uintptr_t)r->hdr;
	v->len = rszshm__map_safe_len(r);
	v->fd = -1;
}

/* --------------------------------------------------------------- heap/
 * The heap is a folder of five files sharing lib/heap/heap.h (its layout,
 * and the bounds checks inlined on the fast path), each calling only the
 * ones before it: seg.c (size classes, runs, the free-run list and the heap
 * lock, and rebuilding them from the run headers after the lock's holder
 * died), arena.c (arenas and small blocks, pending frees, refill and flush
 * of a thread's cache, rebuilding an arena), own.c (thread slots: claim,
 * ownership by thread id and start time, adoption of dead owners' caches,
 * the process's record of its slots, given back at thread exit and
 * rszshm_dt()), heap.c (the public calls: the cached fast path, large
 * blocks, the checks of a block to free), walk.c (the read-only walker
 * below, on seg.c's tables).  Nothing outside them includes heap.h.  A
 * thread killed at any instruction of a heap call loses at most one block;
 * its cache is adopted by the next claim of a slot.
 * Every segment address the writers read from the region (the top, list
 * links, pending frees, blocks to free) is checked against the handle's
 * span and rszshm__map_safe_len() before it is followed: damage never sends
 * them outside the region, nor past the end of its file.  */
/* No heap block starts before base + this: the first 64 KiB segment holds
 * the header and the heap's control block, locks included.  Record
 * structures, which writers write through, are refused below it. */
#define RSZSHM__HEAP_BLOCKS_FROM ((uint64_t)1 << 16)
/* rec.c's index root lies at base + this, at most RSZSHM__REC_ROOT_MAX
 * bytes: in segment 0, past the heap's control block (heap.h asserts that
 * the control block ends before it), and so in the 64 KiB that attaching
 * has already mapped in. */
#define RSZSHM__REC_ROOT_OFF (RSZSHM__HEAP_BLOCKS_FROM - 512)
#define RSZSHM__REC_ROOT_MAX 512u
/* Lay out an empty heap in a new RSZSHM_HEAP region; 0 or a negative errno. */
RSZSHM__INTERNAL int rszshm__heap_init(struct rszshm *r);
RSZSHM__INTERNAL void *rszshm__heap_alloc(struct rszshm *r, size_t size, int *err);
RSZSHM__INTERNAL int rszshm__heap_free(struct rszshm *r, void *p);
/*
 * Walk the heap of a view, read-only and bounded, adding its figures to @st.
 * Returns 0 if consistent, 1 if damaged (the first violation in @msg), or a
 * negative errno.  Never follows a pointer without rszshm__view_ptr().
 */
/* How many times a lock of this heap was taken from a dead holder and its
 * structure repaired (for tests). */
RSZSHM__INTERNAL uint64_t rszshm__heap_repairs(const struct rszshm *r);
RSZSHM__INTERNAL int rszshm__heap_walk(const struct rszshm__view *v, struct rszshm_stats *st,
				       char *msg, size_t msglen);
/* Where the arenas' lock words lie, as offsets from the region's base, in
 * @off (up to @max); returns how many there are (for the writer fuzzer). */
RSZSHM__INTERNAL unsigned rszshm__heap_lock_offsets(uint64_t *off, unsigned max);
/* Give back the thread slots this process's threads hold in @r's heap
 * (heap/own.c), before @r is unmapped. */
RSZSHM__INTERNAL void rszshm__heap_detach(struct rszshm *r);
/* Test hook: how many dead owners' thread caches were adopted in @r. */
RSZSHM__INTERNAL uint64_t rszshm__heap_adoptions(struct rszshm *r);
/* Test hook: where thread slot @k of @r's heap keeps its words (blk[c *
 * cap + i] is entry i of class c); 0, or -1 if there is no such slot. */
struct rszshm__slot_view {
	uint64_t *owner;
	uint32_t *n;
	uint64_t *blk;
	unsigned ncache, cap, nslots;
};
RSZSHM__INTERNAL int rszshm__heap_slot_peek(struct rszshm *r, unsigned k,
					    struct rszshm__slot_view *out);
/* Test hook: the process kills itself (SIGKILL) at the @n-th point, from
 * now, where a heap block is in motion between a thread cache and an arena
 * (refill, flush, adoption); 0 turns it off. */
RSZSHM__INTERNAL void rszshm__heap_die_after(unsigned long n);
/* Test hook: blocks held in all of @r's thread caches. */
RSZSHM__INTERNAL uint64_t rszshm__heap_cached(struct rszshm *r);
/* Test hook: the calling thread allocates in @r with no thread cache (as
 * one that found no free slot), until the process next detaches a region. */
RSZSHM__INTERNAL void rszshm__heap_nocache(struct rszshm *r);

/* --------------------------------------------------------------- open.c
 * rszshm_open() and the mk/at wrappers, and rszshm_dt() (public only):
 * composes map.c's make/publish/abort, attach and detach with heap.c's
 * layout, its thread slots and the caller's initializer.  Nothing below
 * calls up into it. */

/* ---------------------------------------------------------------- rec.c
 * The records are four files sharing lib/rec.h (the index's layout, and the
 * bounded readers and seqlock read protocol inlined on the lookup path):
 * rec.c (the writers and the public calls that write: rszshm_rec_add, put,
 * remove, clear; rszshm__rec_hash and the test hook), rec-read.c (the
 * lock-free readers: rszshm_rec_find, get, next, rszshm__rec_stamp and
 * rszshm__rec_view_next), rec-repair.c (taking the index lock, and redoing
 * what a writer that died under it left), rec-walk.c (rszshm__rec_walk, the
 * read-only walker below).  Nothing outside them includes rec.h.
 * The index's root is read only at its fixed place (RSZSHM__REC_ROOT_OFF,
 * in segment 0; shared->recs naming anything else is damage).  Slot arrays
 * and records are followed only inside the region and past its first
 * segment (RSZSHM__HEAP_BLOCKS_FROM); a value only inside the region and
 * past its header, by every reader and by the walker alike.  A slot array
 * is open addressing ({ hash, record } slots, load at most 3/4), so every
 * probe run ends at an empty slot or after one lap, never loops. */
/* As rszshm__heap_walk(), for the record index: counts records into @st. */
RSZSHM__INTERNAL int rszshm__rec_walk(const struct rszshm__view *v, struct rszshm_stats *st,
				      char *msg, size_t msglen);
/*
 * Iterate the records of a view, read-only: as rszshm_rec_next(), but
 * info->ptr is the value's recorded address (translate with
 * rszshm__view_ptr()).  Returns 1 with @info filled, 0 at the end, or a
 * negative errno (-EBADMSG for a damaged index).
 */
RSZSHM__INTERNAL int rszshm__rec_view_next(const struct rszshm__view *v, struct rszshm_rec_iter *it,
					   struct rszshm_rec_info *info);

/* Test hook: called at numbered points inside the index lock, so a test can
 * kill a writer there (1-3 insert, 4-6 replace, 7-8 remove, 9-10 rehash,
 * 11 a change made and not yet announced to waiters, 12 announced and
 * waiters not yet woken); and at 20 in a read-only reader that has read one
 * odd seq long and is about to look for its writer (rec.h rd_begin()). */
RSZSHM__INTERNAL extern void (*rszshm__rec_hook)(int point);
/* The hash of @name that picks its wait lane (the index's own hash). */
RSZSHM__INTERNAL uint64_t rszshm__rec_hash(const struct rszshm *r, const char *name, size_t nlen);
/* Lock-free: *stamp = the stamp of record @name (see wait.c), 0 if there is
 * no such record.  0 or a negative errno (those of rszshm_rec_find()). */
RSZSHM__INTERNAL int rszshm__rec_stamp(struct rszshm *r, const char *name, uint64_t *stamp);

/* --------------------------------------------------------------- wait.c
 * Waiting for the record index to change (rszshm_rec_wait*); rec.c calls
 * the writer's half under the index lock.  A record's stamp is the value
 * of wait.changes its last change made: unique for the region's life, so a
 * name removed and made again never shows an old stamp. */
/* The stamp the next change will make (under the index lock). */
RSZSHM__INTERNAL uint64_t rszshm__wait_next(const struct rszshm *r);
/* After a change of a record whose name hashes to @h (under the index lock,
 * the change visible): bump the counter and the lane, wake their waiters. */
RSZSHM__INTERNAL void rszshm__wait_changed(struct rszshm *r, uint64_t h);
/* After repairing what a dead writer left: bump everything, wake everyone. */
RSZSHM__INTERNAL void rszshm__wait_all(struct rszshm *r);
/* Test switch: writers skip the waking path (bench put-baseline only). */
RSZSHM__INTERNAL extern bool rszshm__wait_off;
/* This process's writers: 0 not yet decided, 1 registered for membarrier
 * (no full fence on the put path), -1 they fence (tests may set -1). */
RSZSHM__INTERNAL extern int rszshm__wait_light;

/* -------------------------------------------------------------- check.c */
/* Header (its locks by rszshm__lock_validate()), heap and records of a view:
 * 0 consistent, 1 damaged, or -errno. */
RSZSHM__INTERNAL int rszshm__check_view(const struct rszshm__view *v, struct rszshm_stats *st,
					char *msg, size_t msglen);

#endif /* RSZSHM_INTERNAL_H */
