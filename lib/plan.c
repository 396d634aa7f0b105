/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plan.c - the address plan: which spans the live regions of this user hold.
 *
 * Without a plan every maker probes only its own address space, finds the
 * same free addresses as every other maker, and two regions made by two
 * processes overlap: no third process can attach both.  The plan is a small
 * table shared by every process of one user, so that makers choose disjoint
 * spans.
 *
 * The file: /dev/shm/.rszshm-plan2-<euid> (or $RSZSHM_PLAN, read with
 * secure_getenv; "" or "off" turns the plan off: tests point it at a scratch
 * file).  Mode 0600, opened O_NOFOLLOW and used only if it is a regular file
 * of this user that no one else may write.  It is mapped (MAP_SHARED) once
 * per process and kept mapped, with no descriptor kept open; each use checks
 * the name with one lstat() (still that file, still trusted, still whole)
 * and runs inside a guard frame (guard.c), so a table truncated by another
 * process under a use costs that use a fallback, never a SIGBUS.  A use is
 * a few loads and stores under the table's lock word: its holder's PID
 * namespace tag and pid, taken by compare-and-swap, and taken from a holder
 * that cannot be alive (killed in its use: its pid is gone from our
 * namespace; or a word that names no pid).  A busy word is only ever tried,
 * for a bounded time (0.2 s with no progress, 2 s while its holders keep
 * changing: tab_lock()); a holder that keeps it longer costs a fallback,
 * never a hang, and one whose stamp says it has held the word for 2 s is
 * taken from (stopped, or damage: a damaged word costs one wait, not one
 * per maker for ever).  A holder of another PID namespace sharing this
 * /dev/shm cannot be asked, and is waited for as a live one.  The threads of one
 * process take turns on a mutex of its own; a fork waits for the use under
 * way (pthread_atfork), and the child keeps the mapping.  Version 1 tables
 * (flock and pread, under the name .rszshm-plan-<euid>) are not read: the
 * makers of two library versions at once do not see each other's spans.
 *
 *   header   64 bytes: magic "ZSHMPLAN", version, capacity, high-water mark,
 *            origin and cursor of the default placement, lock word, use
 *            counter
 *   spans    PLAN_CAP x {addr, len, dev, ino}: the hot part, read up to the
 *            high-water mark on every use (len 0: a free entry)
 *   meta     PLAN_CAP x {pid, state, path}: read only for an entry in the way
 *
 * An entry is pending while its maker (pid) lives, between the claim and the
 * file getting its name; then live while a file with its device and inode is
 * at its (absolute) path.  An entry in the way of a candidate span is
 * checked, and dropped if stale: a maker killed or a file removed never holds
 * address space for longer than it takes the next maker to look.  Files whose
 * absolute path does not fit an entry stay pending: held while the maker lives.
 * A maker's pid is checked with kill(pid, 0): a reused pid holds a pending
 * span until that process ends; a maker in another pid namespace sharing
 * this /dev/shm looks dead, and its pending span (only until its file is
 * named) can be given again, which costs an ENOSPC at attach, nothing worse.
 *
 * Placement.  RSZSHM_DFLT_SCAN's start, hop and iter (any len) mean "anywhere
 * the plan likes": next fit from the cursor over [PLAN_LO, PLAN_HI), the free
 * middle of the 47-bit address space (24 to 72 TiB: above the sanitizers'
 * shadow, below where the kernel puts position-independent executables and
 * mmap()s, and below the 72 to 108 TiB the test suites keep for regions at
 * fixed addresses), then round to PLAN_LO; a span longer than PLAN_HEAD
 * starts PLAN_HEAD below a GiB boundary (start_for()).  Each table starts from a random origin, so the tables of
 * two users (which do not see each other) start far apart: with n and m
 * regions their spans meet with a probability of about (n + m) / 12,000 for
 * 4 GiB spans.  Any other scan is ccan's spiral, passing over spans that live
 * regions hold.
 *
 * Trust.  Everything read from the file is checked before use (each entry
 * copied out of the mapping first); a header that does not check out resets
 * the table.  Whatever the table says, the span is
 * claimed with MAP_FIXED_NOREPLACE (span.c), so a wrong plan never maps over
 * memory in use, and when the plan finds nothing (or cannot be used at all)
 * the caller falls back to placement without it: the default scan tries
 * random spans of the area, then the spiral.  A wrong plan can cost a
 * collision at attach time (ENOSPC), never a failed mk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define PLAN_MAGIC 0x4e414c504d48535aULL	/* "ZSHMPLAN" read little-endian */
#define PLAN_VERSION 2u
#define PLAN_CAP 4096u
#define PLAN_PATH 240
#define PLAN_LOCK_WAIT_US 200000u	/* the most a call waits for the lock, no progress seen */
#define PLAN_LOCK_CAP_US 2000000u	/* the most it waits while the table keeps changing */
#define PLAN_LOCK_STUCK_NS 2000000000ull	/* a holder still for this long is taken from */

struct plan_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t cap;
	uint32_t hwm;		/* entries [0, hwm) may be in use */
	uint32_t pad_;
	uint64_t origin;	/* where this table's default placement started */
	uint64_t cursor;	/* where the next default placement looks first */
	uint64_t lock;		/* the holder: its PID namespace's tag << 32 | pid; 0 free */
	uint64_t gen;		/* +1 at the end of each use: progress, for waiters */
	uint64_t since;		/* when the holder took the lock (CLOCK_MONOTONIC, ns) */
};

struct plan_span {
	uint64_t addr, len;	/* len 0: free */
	uint64_t dev, ino;	/* the region's file, once live */
};

enum { ST_PENDING = 1, ST_LIVE = 2 };

struct plan_meta {
	int32_t pid;		/* the maker */
	uint32_t state;
	char path[PLAN_PATH];	/* absolute, NUL-terminated; "" while pending */
	uint64_t reserved_;
};

_Static_assert(sizeof(struct plan_hdr) == 64, "plan header is 64 bytes");
_Static_assert(sizeof(struct plan_span) == 32, "plan span is 32 bytes");
_Static_assert(sizeof(struct plan_meta) == 256, "plan meta is 256 bytes");

#define OFF_SPANS ((uint64_t)sizeof(struct plan_hdr))
#define OFF_META (OFF_SPANS + (uint64_t)PLAN_CAP * sizeof(struct plan_span))
#define PLAN_SIZE (OFF_META + (uint64_t)PLAN_CAP * sizeof(struct plan_meta))

/* The area of the default placement: 64-bit builds only (a 32-bit address
 * space has no room to spread regions over; there mk probes as ccan does). */
#define PLAN_AREA (UINTPTR_MAX > 0xffffffffu)
#define PLAN_LO (24ULL << 40)
#define PLAN_HI (72ULL << 40)
#define PLAN_ALIGN (2ULL << 20)
#define PLAN_GIB (1ULL << 30)
#define PLAN_HEAD (64ULL << 20)	/* see start_for() */
#define DFLT_START (64ULL << 40)
#define DFLT_HOP (1ULL << 40)
#define DFLT_ITER 10u

/*
 * The table, mapped once per process.  A use (plan_open() .. plan_close())
 * holds tab.mu, so the threads of a process take turns, and the table's
 * lock word, so processes do.  Between uses the process keeps the mapping
 * and no descriptor (nothing for a program that closes every descriptor to
 * pull from under it); each use checks with one lstat() that the name still
 * names the file mapped, of this user, writable by no one else and long
 * enough, and maps it again when not.  Every touch of the mapping is inside
 * a guard frame (guard.c): a table truncated under a use costs that use
 * (a fallback), never a signal.  A child forked while no use is running
 * (pthread_atfork holds fork back until the current one ends) keeps the
 * mapping and gets its own lock word.
 */
#define PLAN_PATH_MAX 4096

static struct {
	pthread_mutex_t mu;		/* one use at a time in this process */
	char path[PLAN_PATH_MAX];	/* the name the table was mapped from */
	uint64_t dev, ino;		/* the file mapped */
	unsigned char *map;		/* PLAN_SIZE bytes of it, or NULL */
	uint64_t me;			/* this process's lock word, 0: not known yet */
	uint32_t ns;			/* this process's PID namespace, its tag in me */
} tab = { .mu = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_prepare(void)
{
	pthread_mutex_lock(&tab.mu);
}

static void tab_parent(void)
{
	pthread_mutex_unlock(&tab.mu);
}

static void tab_child(void)
{
	tab.me = 0;	/* another pid */
	pthread_mutex_unlock(&tab.mu);
}

static void tab_watch_forks(void)
{
	pthread_atfork(tab_prepare, tab_parent, tab_child);
}

/* One use of the table: locked, its header checked and copied. */
struct plan {
	struct rszshm__guard g;
	struct plan_hdr h;	/* the header, checked at the start of the use */
	struct plan_hdr *hm;	/* the header in the mapping */
	struct plan_span *s;	/* the entries in the mapping */
	struct plan_meta *m;
	int cancel;		/* the thread's cancel state, restored at close */
	bool locked;		/* the table's lock word is ours */
};

/* The table's file name, or NULL when the plan is off. */
static const char *plan_path(char *buf, size_t len, uid_t euid)
{
	const char *e = secure_getenv("RSZSHM_PLAN");

	if (e)
		return *e && strcmp(e, "off") != 0 && strlen(e) < PLAN_PATH_MAX ? e : NULL;
	snprintf(buf, len, "/dev/shm/.rszshm-plan2-%lu", (unsigned long)euid);
	return buf;
}

/* May a file so be used as the table: a regular file of this user that no
 * one else may write? */
static bool trusted(const struct stat *st, uid_t euid)
{
	return S_ISREG(st->st_mode) && st->st_uid == euid && !(st->st_mode & 022);
}

static void tab_drop(void)
{
	if (tab.map)
		rszshm__sysq_unmap(tab.map, PLAN_SIZE);
	tab.map = NULL;
}

/* Map the table at @path, making it (or making it long enough) if need be.
 * A file shorter than the table only grows: that loses nothing of anyone's,
 * so it needs no lock. */
static int tab_map(const char *path, uid_t euid)
{
	struct stat st;
	void *m = NULL;
	int fd, rc;

	/* O_CREAT only when missing: it takes the directory's lock. */
	fd = rszshm__sysq_open(path, O_RDWR | O_NOFOLLOW, 0);
	if (fd == -ENOENT)
		fd = rszshm__sysq_open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fd;
	if ((rc = rszshm__sysq_stat(NULL, fd, &st)) == 0 && !trusted(&st, euid))
		rc = -EPERM;
	if (rc == 0 && (uint64_t)st.st_size < PLAN_SIZE)
		rc = rszshm__sysq_ftruncate(fd, PLAN_SIZE);
	if (rc == 0)
		rc = rszshm__sysq_map(fd, PLAN_SIZE, &m);
	rszshm__sysq_close(fd);
	if (rc < 0)
		return rc;
	rszshm__guard_arm();
	tab.map = m;
	tab.dev = (uint64_t)st.st_dev;
	tab.ino = (uint64_t)st.st_ino;
	snprintf(tab.path, sizeof(tab.path), "%s", path);
	return 0;
}

/* This process's lock word: its PID namespace's tag above its pid. */
static uint64_t tab_me(void)
{
	uint64_t ino = 0;

	if (!tab.me) {
		tab.ns = rszshm__sys_pidns(&ino) == 0 ? (uint32_t)(ino | 1) : 0;
		tab.me = (uint64_t)tab.ns << 32 | (uint32_t)getpid();
	}
	return tab.me;
}

/* Can the holder a lock word names be alive?  A word with no pid, or with
 * a pid of our namespace that no process has, cannot; a holder in another
 * namespace cannot be asked, and is taken to be alive. */
static bool holder_gone(uint64_t w)
{
	int32_t pid = (int32_t)(uint32_t)w;

	if (pid <= 0)
		return true;
	return (uint32_t)(w >> 32) == tab.ns && rszshm__sys_thread_gone(pid);
}

/*
 * Take the table's lock word.  A free word, or one naming a holder that
 * cannot be alive (killed in its use) or this very process (a dead one's
 * pid, reused), is taken at once.  A busy one is waited for while its
 * holders show progress (the use counter moves, or the holder changes:
 * makers come and go, each slow under an emulator, where mapping a span
 * takes tens of ms); one that stays still for PLAN_LOCK_WAIT_US has a
 * holder that keeps it, and costs a fallback, PLAN_LOCK_CAP_US in all.
 * Unless the holder has kept it PLAN_LOCK_STUCK_NS since it took it (by its
 * stamp; a stamp in the future is junk): then it is stopped, lost in
 * another namespace, or the word is damage, and the word is taken from it
 * (if it was alive after all, two uses at once can cost two regions one
 * span: ENOSPC at attach), so that a damaged word costs one maker a wait,
 * not every maker for ever.
 */
static bool stuck(uint64_t since)
{
	uint64_t now = rszshm__sysq_now_ns();

	return since > now ? since - now > PLAN_LOCK_STUCK_NS : now - since >= PLAN_LOCK_STUCK_NS;
}

/* Swap the word from @cur to ours; stamp it. */
static bool take(struct plan *p, uint64_t cur, uint64_t me)
{
	if (!__atomic_compare_exchange_n(&p->hm->lock, &cur, me, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return false;
	__atomic_store_n(&p->hm->since, rszshm__sysq_now_ns(), __ATOMIC_RELAXED);
	return true;
}

static int tab_lock(struct plan *p)
{
	uint64_t me = tab_me(), cur, gen, since, seen = 0, seen_gen = 0, seen_since = 0;
	unsigned waited = 0, still = 0, pause = 20;

	for (;;) {
		cur = __atomic_load_n(&p->hm->lock, __ATOMIC_ACQUIRE);
		if ((cur == 0 || cur == me || holder_gone(cur)) && take(p, cur, me))
			return 0;
		gen = __atomic_load_n(&p->hm->gen, __ATOMIC_RELAXED);
		since = __atomic_load_n(&p->hm->since, __ATOMIC_RELAXED);
		if (waited && (gen != seen_gen || cur != seen || since != seen_since))
			still = 0;
		seen = cur;
		seen_gen = gen;
		seen_since = since;
		if (still >= PLAN_LOCK_WAIT_US && stuck(since)) {
			if (take(p, cur, me))
				return 0;
			still = 0;	/* it moved after all */
			continue;
		}
		if (still >= PLAN_LOCK_WAIT_US || waited >= PLAN_LOCK_CAP_US)
			return -EWOULDBLOCK;
		rszshm__sysq_pause_us(pause);
		waited += pause;
		still += pause;
		if (pause < 2000)
			pause *= 2;
	}
}

static void tab_unlock(struct plan *p)
{
	uint64_t me = tab.me;

	__atomic_fetch_add(&p->hm->gen, 1, __ATOMIC_RELAXED);
	/* A word no longer ours (taken by one who thought us dead) stays. */
	__atomic_compare_exchange_n(&p->hm->lock, &me, 0, false, __ATOMIC_RELEASE,
				    __ATOMIC_RELAXED);
}

static void put_hwm(struct plan *p, uint32_t hwm)
{
	p->h.hwm = hwm;
	__atomic_store_n(&p->hm->hwm, hwm, __ATOMIC_RELAXED);
}

/* Make the table empty: every field of the header but the lock word and
 * its stamp (ours) and the use counter; the entries past the high-water
 * mark are not read. */
static void reset_table(struct plan *p)
{
	uint64_t slots = (PLAN_HI - PLAN_LO) / (4ULL << 30);
	struct plan_hdr *hm = p->hm;

	memset(&p->h, 0, sizeof(p->h));
	p->h.magic = PLAN_MAGIC;
	p->h.version = PLAN_VERSION;
	p->h.cap = PLAN_CAP;
	p->h.origin = PLAN_LO + (rszshm__sysq_random() % slots) * (4ULL << 30);
	p->h.cursor = p->h.origin;
	hm->version = p->h.version;
	hm->cap = p->h.cap;
	hm->hwm = 0;
	hm->pad_ = 0;
	hm->origin = p->h.origin;
	hm->cursor = p->h.cursor;
	__atomic_store_n(&hm->magic, PLAN_MAGIC, __ATOMIC_RELEASE);
}

static bool hdr_ok(const struct plan_hdr *h)
{
	return h->magic == PLAN_MAGIC && h->version == PLAN_VERSION && h->cap == PLAN_CAP &&
	       h->hwm <= PLAN_CAP && h->origin >= PLAN_LO && h->origin < PLAN_HI &&
	       h->cursor >= PLAN_LO && h->cursor <= PLAN_HI;
}

/*
 * Start a use: the table mapped, checked against its name, locked, its
 * header checked; one that does not check out is reset (@reset) or
 * refused.  0, or a negative errno (the plan cannot be used now).
 */
static int plan_open(struct plan *p, bool reset)
{
	char buf[64];
	uid_t euid = geteuid();
	const char *path;
	struct stat st;
	int rc;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &p->cancel);
	pthread_once(&tab_once, tab_watch_forks);
	pthread_mutex_lock(&tab.mu);
	p->locked = false;
	if (!(path = plan_path(buf, sizeof(buf), euid))) {
		rc = -ENOENT;
		goto out;
	}
	if (tab.map && (strcmp(path, tab.path) != 0 || rszshm__sysq_lstat(path, &st) < 0 ||
			!trusted(&st, euid) || (uint64_t)st.st_dev != tab.dev ||
			(uint64_t)st.st_ino != tab.ino || (uint64_t)st.st_size < PLAN_SIZE))
		tab_drop();
	if (!tab.map && (rc = tab_map(path, euid)) < 0)
		goto out;
	p->hm = (struct plan_hdr *)(void *)tab.map;
	p->s = (struct plan_span *)(void *)(tab.map + OFF_SPANS);
	p->m = (struct plan_meta *)(void *)(tab.map + OFF_META);
	rszshm__guard_enter_range(&p->g, tab.map, PLAN_SIZE, -1, PROT_READ | PROT_WRITE);
	if ((rc = tab_lock(p)) == 0) {
		p->locked = true;
		memcpy(&p->h, p->hm, sizeof(p->h));
		if (hdr_ok(&p->h))
			return 0;
		if (reset) {
			reset_table(p);
			return 0;
		}
		rc = -EBADMSG;
		tab_unlock(p);
		p->locked = false;
	}
	if (rszshm__guard_leave(&p->g))
		tab_drop();
out:
	pthread_mutex_unlock(&tab.mu);
	pthread_setcancelstate(p->cancel, NULL);
	return rc;
}

/* End a use: true if the table was truncated under it (what it read and
 * wrote may be zeros and nothing: its results are not to be trusted). */
static bool plan_close(struct plan *p)
{
	bool hit;

	if (p->locked)
		tab_unlock(p);
	if ((hit = rszshm__guard_leave(&p->g)))
		tab_drop();
	pthread_mutex_unlock(&tab.mu);
	pthread_setcancelstate(p->cancel, NULL);
	return hit;
}

static struct plan_span get_span(const struct plan *p, unsigned i)
{
	struct plan_span e;

	memcpy(&e, &p->s[i], sizeof(e));
	return e;
}

static void clear(struct plan *p, unsigned i)
{
	memset(&p->s[i], 0, sizeof(p->s[i]));
	while (p->h.hwm > 0 && p->s[p->h.hwm - 1].len == 0)
		put_hwm(p, p->h.hwm - 1);
}

static bool span_ok(const struct plan_span *e)
{
	uint64_t pg = rszshm__page_size();

	return e->addr % pg == 0 && e->len % pg == 0 && e->addr != 0 &&
	       e->len <= UINTPTR_MAX - e->addr;
}

/* Is entry @i (read as @e) still held?  Reads its meta; a stale entry is
 * "no". */
static bool alive(const struct plan *p, unsigned i, const struct plan_span *e)
{
	struct plan_meta m;
	struct stat st;
	int rc;

	memcpy(&m, &p->m[i], sizeof(m));
	if (m.state == ST_LIVE && m.path[0] == '/' && memchr(m.path, '\0', sizeof(m.path))) {
		rc = rszshm__sysq_stat(m.path, -1, &st);
		if (rc == -ENOENT || rc == -ENOTDIR)
			return false;
		if (rc < 0)
			return true;	/* cannot tell: keep it */
		return S_ISREG(st.st_mode) && (uint64_t)st.st_dev == e->dev &&
		       (uint64_t)st.st_ino == e->ino;
	}
	if (m.state == ST_LIVE || m.state == ST_PENDING)
		return m.pid > 0 && !rszshm__sys_thread_gone(m.pid);
	return false;
}

/* The first entry that overlaps [a, a + len) and is held, dropping stale
 * ones on the way; -1 when none does.  Its span in *@held. */
static int in_the_way(struct plan *p, uint64_t a, uint64_t len, struct plan_span *held)
{
	struct plan_span e;
	unsigned i;

	for (i = 0; i < p->h.hwm; i++) {
		e = get_span(p, i);
		if (e.len == 0)
			continue;
		if (!span_ok(&e)) {
			clear(p, i);
			continue;
		}
		if (e.addr >= a + len || a >= e.addr + e.len)
			continue;
		if (alive(p, i, &e)) {
			*held = e;
			return (int)i;
		}
		clear(p, i);
	}
	return -1;
}

static bool held(void *ctx, uintptr_t a, size_t len)
{
	struct plan_span e;

	return in_the_way(ctx, a, len, &e) >= 0;
}
static uint64_t align_up(uint64_t x)
{
	return (x + PLAN_ALIGN - 1) & ~(PLAN_ALIGN - 1);
}

/*
 * The first start at or after @x for a span of @len bytes: PLAN_ALIGN
 * aligned, and for a span longer than PLAN_HEAD, PLAN_HEAD below a GiB
 * boundary.  Unmapping a span, the kernel walks the page-table entries (one
 * per 2 MiB) of each GiB of it that the process touched: 512 of them for
 * the first GiB of a span that starts on a boundary, even if only its
 * header was read.  The head of a region (the header, the heap's first
 * segments, the record index) is what a short-lived attach touches; placed
 * so, its walk is of PLAN_HEAD / 2 MiB entries (measured on x86-64: a 4 GiB
 * span mapped, its first page read, unmapped, about 4 us less).  Spans of
 * whole GiBs placed one after another still leave no gap.
 */
static uint64_t start_for(uint64_t x, uint64_t len)
{
	uint64_t a = align_up(x), off;

	if (len <= PLAN_HEAD)
		return a;
	off = (a + PLAN_HEAD) % PLAN_GIB;
	return off ? a + (PLAN_GIB - off) : a;
}

/* Next fit over the area from the cursor; -ENOSPC when nothing fits. */
static int place(struct plan *p, uint64_t len, void **out)
{
	uint64_t cand = start_for(p->h.cursor, len), steps, limit = 3ULL * p->h.hwm + 64;
	struct plan_span e;
	unsigned wraps = 0;
	int rc;

	if (len > PLAN_HI - PLAN_LO)
		return -ENOSPC;
	for (steps = 0; steps < limit; steps++) {
		if (cand < PLAN_LO || cand > PLAN_HI - len) {
			if (wraps++)
				break;
			cand = start_for(PLAN_LO, len);
			continue;
		}
		if (in_the_way(p, cand, len, &e) >= 0) {
			cand = start_for(e.addr + e.len, len);
			continue;
		}
		rc = rszshm__span_try((void *)(uintptr_t)cand, (size_t)len);
		if (rc == 0) {
			*out = (void *)(uintptr_t)cand;
			p->h.cursor = cand + len;
			__atomic_store_n(&p->hm->cursor, p->h.cursor, __ATOMIC_RELAXED);
			return 0;
		}
		if (rc != -EEXIST && rc != -ENOMEM)
			return rc;
		/* Taken in this process only (a mapping the plan does not know). */
		cand = start_for(cand + len, len);
	}
	return -ENOSPC;
}

/* Drop every stale entry: only when the table is full. */
static void prune(struct plan *p)
{
	struct plan_span e;
	unsigned i;

	for (i = 0; i < p->h.hwm; i++) {
		e = get_span(p, i);
		if (e.len && (!span_ok(&e) || !alive(p, i, &e)))
			clear(p, i);
	}
}

static int free_entry(const struct plan *p)
{
	unsigned i;

	for (i = 0; i < p->h.hwm && p->s[i].len; i++)
		;
	return i < PLAN_CAP ? (int)i : -1;
}

/* Enter [a, a + len) as pending; the entry's index or -1.  The meta first,
 * then the span, then the high-water mark: a maker killed in between
 * leaves no entry that names it wrongly. */
static int record(struct plan *p, uint64_t a, uint64_t len)
{
	struct plan_meta m;
	int i;

	if ((i = free_entry(p)) < 0) {
		prune(p);
		if ((i = free_entry(p)) < 0)
			return -1;
	}
	memset(&m, 0, sizeof(m));
	m.pid = (int32_t)(uint32_t)tab.me;	/* this use's: tab_lock() set it */
	m.state = ST_PENDING;
	memcpy(&p->m[i], &m, sizeof(m));
	p->s[i] = (struct plan_span){ .addr = a, .len = len };
	if ((unsigned)i == p->h.hwm)
		put_hwm(p, p->h.hwm + 1);
	return i;
}

/* Placement without the plan. */
static int fallback(const struct rszshm_scan *scan, size_t len, bool dflt, void **out)
{
	uint64_t room = PLAN_HI - PLAN_LO, cand;
	unsigned i;
	int rc;

	/* Random spans of the area first: two makers that cannot share a
	 * plan (another user, no /dev/shm) rarely meet. */
	for (i = 0; dflt && len <= room - PLAN_ALIGN && i < 16; i++) {
		cand = PLAN_LO + (rszshm__sysq_random() % ((room - len) / PLAN_ALIGN)) * PLAN_ALIGN;
		if ((cand = start_for(cand, len)) > PLAN_HI - len)
			continue;
		rc = rszshm__span_try((void *)(uintptr_t)cand, len);
		if (rc == 0) {
			*out = (void *)(uintptr_t)cand;
			return 0;
		}
		if (rc != -EEXIST && rc != -ENOMEM)
			return rc;
	}
	return rszshm__span_probe(scan, len, out);
}

/* RSZSHM_DFLT_SCAN's start, hop and iter (any len): placed anywhere in the
 * plan's area.  A 32-bit build has no area, and no such scan. */
static bool is_default_scan(const struct rszshm_scan *scan)
{
#if UINTPTR_MAX > 0xffffffffu
	return (uintptr_t)scan->start == DFLT_START && scan->hop == DFLT_HOP &&
	       scan->iter == DFLT_ITER;
#else
	(void)scan;
	return false;
#endif
}

int rszshm__plan_claim(const struct rszshm_scan *scan, size_t len, bool rec, void **out,
		       struct rszshm__plan_ticket *t)
{
	bool dflt = false;
	struct plan p;
	int rc;

	t->slot = -1;
	if (!PLAN_AREA)
		return rszshm__span_probe(scan, len, out);
	dflt = is_default_scan(scan);
	if (plan_open(&p, true) < 0)
		return fallback(scan, len, dflt, out);
	if (dflt)
		rc = place(&p, len, out);
	else
		rc = rszshm__span_probe_skip(scan, len, held, &p, out);
	if (rc == 0 && rec)
		t->slot = record(&p, (uintptr_t)*out, len);
	t->dev = tab.dev;
	t->ino = tab.ino;
	/* A table truncated under the use: the span stays ours (claimed in
	 * this process), the entry is not to be trusted. */
	if (plan_close(&p))
		t->slot = -1;
	if (rc == -ENOSPC || (dflt && rc == -ENOMEM))
		return fallback(scan, len, dflt, out);
	return rc;
}

/* Start a use of the ticket's table, and find its entry if it is still
 * [addr, +len): true, with the use open. */
static bool find_own(struct plan *p, void *addr, size_t len, const struct rszshm__plan_ticket *t)
{
	struct plan_span e;

	if (t->slot < 0 || (unsigned)t->slot >= PLAN_CAP || plan_open(p, false) < 0)
		return false;
	e = get_span(p, (unsigned)t->slot);
	if (tab.dev != t->dev || tab.ino != t->ino || e.addr != (uintptr_t)addr || e.len != len) {
		plan_close(p);
		return false;
	}
	return true;
}

void rszshm__plan_note(void *addr, size_t len, struct rszshm__plan_ticket *t, int fd,
		       const char *fname)
{
	struct rszshm__plan_ticket own = *t;
	int slot = t->slot, n = -1;
	struct plan_meta m;
	struct stat st;
	struct plan p;
	char path[PLAN_PATH], cwd[PLAN_PATH];

	if (rszshm__sysq_stat(NULL, fd, &st) == 0) {
		if (fname[0] == '/')
			n = snprintf(path, sizeof(path), "%s", fname);
		else if (getcwd(cwd, sizeof(cwd)))
			n = snprintf(path, sizeof(path), "%s/%s", cwd, fname);
	}
	t->slot = -1;
	/* A path that does not fit leaves the entry pending: held while we live. */
	if (n <= 0 || (size_t)n >= sizeof(path) || !find_own(&p, addr, len, &own))
		return;
	memset(&m, 0, sizeof(m));
	m.pid = (int32_t)(uint32_t)tab.me;	/* this use's: tab_lock() set it */
	m.state = ST_LIVE;
	memcpy(m.path, path, (size_t)n + 1);
	p.s[slot].dev = (uint64_t)st.st_dev;
	p.s[slot].ino = (uint64_t)st.st_ino;
	memcpy(&p.m[slot], &m, sizeof(m));
	plan_close(&p);
}

void rszshm__plan_forget(void *addr, size_t len, struct rszshm__plan_ticket *t)
{
	int slot;
	struct rszshm__plan_ticket own = *t;
	struct plan p;

	t->slot = -1;
	if (!find_own(&p, addr, len, &own))
		return;
	slot = own.slot;
	/* The high-water mark shrinks at the next full use. */
	memset(&p.s[slot], 0, sizeof(p.s[slot]));
	plan_close(&p);
}

void rszshm__plan_file_id(const char *fname, struct rszshm__plan_file *f)
{
	struct stat st;

	f->known = rszshm__sysq_stat(fname, -1, &st) == 0 && S_ISREG(st.st_mode);
	f->dev = f->known ? (uint64_t)st.st_dev : 0;
	f->ino = f->known ? (uint64_t)st.st_ino : 0;
}

void rszshm__plan_drop(const struct rszshm__plan_file *f)
{
	struct plan_span e;
	struct plan p;
	unsigned i;

	if (!f->known || plan_open(&p, false) < 0)
		return;
	for (i = 0; i < p.h.hwm; i++) {
		e = get_span(&p, i);
		if (e.len && e.dev == f->dev && e.ino == f->ino)
			clear(&p, i);
	}
	plan_close(&p);
}
