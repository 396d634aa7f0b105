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
 * The file: /dev/shm/.rszshm-plan-<euid> (or $RSZSHM_PLAN, read with
 * secure_getenv; "" or "off" turns the plan off: tests point it at a scratch
 * file).  Mode 0600, opened O_NOFOLLOW and used only if it is a regular file
 * of this user that no one else may write; read and written with
 * pread/pwrite (never mapped: a truncated file cannot fault) under flock(),
 * which the kernel drops when a holder dies.  The lock is only ever tried
 * (LOCK_NB) for a bounded time (0.2 s with the table still, 2 s while its
 * holders keep changing it: plan_open_()); a holder that keeps it longer
 * costs a fallback, never a hang.  (A child forked by another thread while a call
 * holds the lock shares the locked descriptor until it closes or execs it:
 * that too costs at most a fallback.)
 *
 *   header   64 bytes: magic "ZSHMPLAN", version, capacity, high-water mark,
 *            origin and cursor of the default placement
 *   spans    PLAN_CAP x {addr, len, dev, ino}: the hot part, read whole up to
 *            the high-water mark on every use (len 0: a free entry)
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
 * Trust.  Everything read from the file is checked before use; a header that
 * does not check out resets the table.  Whatever the table says, the span is
 * claimed with MAP_FIXED_NOREPLACE (span.c), so a wrong plan never maps over
 * memory in use, and when the plan finds nothing (or cannot be used at all)
 * the caller falls back to placement without it: the default scan tries
 * random spans of the area, then the spiral.  A wrong plan can cost a
 * collision at attach time (ENOSPC), never a failed mk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define PLAN_MAGIC 0x4e414c504d48535aULL	/* "ZSHMPLAN" read little-endian */
#define PLAN_VERSION 1u
#define PLAN_CAP 4096u
#define PLAN_PATH 240
#define PLAN_LOCK_WAIT_US 200000u	/* the most a call waits for the lock, no progress seen */
#define PLAN_LOCK_CAP_US 2000000u	/* the most it waits while the table keeps changing */

struct plan_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t cap;
	uint32_t hwm;		/* entries [0, hwm) may be in use */
	uint32_t pad_;
	uint64_t origin;	/* where this table's default placement started */
	uint64_t cursor;	/* where the next default placement looks first */
	uint64_t reserved_[3];
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

/* One use of the table: open, locked, header and hot part in memory. */
#define SMALL 127u	/* entries read with the header, in one 4 KiB read */
struct plan {
	int fd;
	bool dirty;		/* header changed */
	struct plan_hdr h;
	struct plan_span *s;	/* h.hwm entries, room for one more */
	struct plan_span small[SMALL + 1];
};

/* The table's file name, or NULL when the plan is off. */
static const char *plan_path(char *buf, size_t len)
{
	const char *e = secure_getenv("RSZSHM_PLAN");

	if (e)
		return *e && strcmp(e, "off") != 0 ? e : NULL;
	snprintf(buf, len, "/dev/shm/.rszshm-plan-%lu", (unsigned long)geteuid());
	return buf;
}

/* The table's descriptor: its own open file description per call, so the
 * flock excludes threads and processes alike. */
static int plan_file(void)
{
	char buf[64];
	const char *path = plan_path(buf, sizeof(buf));
	struct stat st;
	int fd, rc;

	if (!path)
		return -ENOENT;
	/* O_CREAT only when missing: it takes the directory's lock. */
	fd = rszshm__sysq_open(path, O_RDWR | O_NOFOLLOW, 0);
	if (fd == -ENOENT)
		fd = rszshm__sysq_open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fd;
	/* Only a regular file of this user that no one else may write. */
	if ((rc = rszshm__sysq_stat(NULL, fd, &st)) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 022)) {
		rszshm__sysq_close(fd);
		return rc < 0 ? rc : -EPERM;
	}
	return fd;
}

static void free_spans(struct plan *p)
{
	if (p->s != p->small)
		free(p->s);
	p->s = NULL;
}

/* Unlock; close the descriptor unless @keep (handed on in a ticket). */
static void plan_close(struct plan *p, bool keep)
{
	if (p->fd >= 0) {
		if (p->dirty)
			rszshm__sysq_pwrite(p->fd, &p->h, sizeof(p->h), 0);
		if (keep)
			rszshm__sysq_unlock(p->fd);
		else
			rszshm__sysq_close(p->fd);	/* drops the flock too */
	}
	free_spans(p);
	p->fd = -1;
}

static int reset_table(struct plan *p)
{
	uint64_t slots = (PLAN_HI - PLAN_LO) / (4ULL << 30);
	int rc;

	free_spans(p);
	if ((rc = rszshm__sysq_ftruncate(p->fd, 0)) < 0 ||
	    (rc = rszshm__sysq_ftruncate(p->fd, PLAN_SIZE)) < 0)
		return rc;
	memset(&p->h, 0, sizeof(p->h));
	p->h.magic = PLAN_MAGIC;
	p->h.version = PLAN_VERSION;
	p->h.cap = PLAN_CAP;
	p->h.origin = PLAN_LO + (rszshm__sysq_random() % slots) * (4ULL << 30);
	p->h.cursor = p->h.origin;
	p->dirty = true;
	p->s = p->small;
	memset(p->s, 0, sizeof(*p->s));
	return 0;
}

static bool hdr_ok(const struct plan_hdr *h)
{
	return h->magic == PLAN_MAGIC && h->version == PLAN_VERSION && h->cap == PLAN_CAP &&
	       h->hwm <= PLAN_CAP && h->origin >= PLAN_LO && h->origin < PLAN_HI &&
	       h->cursor >= PLAN_LO && h->cursor <= PLAN_HI;
}

/* Under the lock: the header and the hot part, or a fresh table. */
static int load(struct plan *p)
{
	unsigned char buf[sizeof(struct plan_hdr) + SMALL * sizeof(struct plan_span)];
	uint64_t first, n;

	if (rszshm__sysq_pread(p->fd, buf, sizeof(buf), 0) < 0)
		return reset_table(p);
	memcpy(&p->h, buf, sizeof(p->h));
	if (!hdr_ok(&p->h))
		return reset_table(p);
	p->s = p->small;
	if (p->h.hwm > SMALL && !(p->s = calloc(p->h.hwm + 1u, sizeof(*p->s))))
		return -ENOMEM;
	n = (uint64_t)p->h.hwm * sizeof(*p->s);
	first = n < SMALL * sizeof(*p->s) ? n : SMALL * sizeof(*p->s);
	memcpy(p->s, buf + OFF_SPANS, first);
	memset((char *)p->s + n, 0, sizeof(*p->s));
	if (n > first &&
	    rszshm__sysq_pread(p->fd, (char *)p->s + first, n - first, OFF_SPANS + first) < 0)
		return reset_table(p);
	return 0;
}

/* Has the table file changed (its mtime moved) since *@seen?  Updates it. */
static bool table_moved(int fd, struct timespec *seen)
{
	struct stat st;
	bool moved;

	if (rszshm__sysq_stat(NULL, fd, &st) < 0)
		return false;
	moved = st.st_mtim.tv_sec != seen->tv_sec || st.st_mtim.tv_nsec != seen->tv_nsec;
	*seen = st.st_mtim;
	return moved;
}

/*
 * Lock the table (on @fd, or a descriptor of its own when @fd < 0) and load
 * its header and hot part (unless @light).  A busy lock is waited for while
 * its holders show progress: makers write the table, so a file whose mtime
 * moves has holders coming and going (each slow under an emulator, where
 * mapping a span takes tens of ms), and one that stays still for
 * PLAN_LOCK_WAIT_US has a holder that keeps it.  PLAN_LOCK_CAP_US in all.
 */
static int plan_open_(struct plan *p, bool light, int fd)
{
	unsigned waited = 0, still = 0, pause = 20;
	struct timespec seen = { 0, 0 };
	int rc;

	p->s = NULL;
	p->dirty = false;
	if ((p->fd = fd) < 0 && (rc = p->fd = plan_file()) < 0)
		return rc;
	while ((rc = rszshm__sysq_trylock(p->fd)) == -EWOULDBLOCK) {
		if (!waited)
			table_moved(p->fd, &seen);
		else if (table_moved(p->fd, &seen))
			still = 0;
		if (still >= PLAN_LOCK_WAIT_US || waited >= PLAN_LOCK_CAP_US)
			break;
		rszshm__sysq_pause_us(pause);
		waited += pause;
		still += pause;
		if (pause < 2000)
			pause *= 2;
	}
	if (rc < 0 || (!light && (rc = load(p)) < 0)) {
		p->dirty = false;
		if (rc == -EWOULDBLOCK && fd < 0)
			rszshm__sysq_close(p->fd);
		else
			plan_close(p, fd >= 0);
		p->fd = -1;
		return rc;
	}
	return 0;
}

static int plan_open(struct plan *p)
{
	return plan_open_(p, false, -1);
}

/* The entries this process made live lately, so that dropping a file after
 * unlink reads one entry instead of the table (checked before use).  Guarded
 * by a try-only spin flag: a busy cache is skipped, never waited for. */
#define RECENT 64
static struct { uint64_t dev, ino; int slot; } recent[RECENT];
static unsigned recent_next;
static bool recent_busy;

static bool recent_take(void)
{
	return !__atomic_test_and_set(&recent_busy, __ATOMIC_ACQUIRE);
}

static void recent_give(void)
{
	__atomic_clear(&recent_busy, __ATOMIC_RELEASE);
}

static int put_span(struct plan *p, unsigned i)
{
	return rszshm__sysq_pwrite(p->fd, &p->s[i], sizeof(p->s[i]),
				   OFF_SPANS + (uint64_t)i * sizeof(p->s[i]));
}

static void clear(struct plan *p, unsigned i)
{
	memset(&p->s[i], 0, sizeof(p->s[i]));
	put_span(p, i);
	while (p->h.hwm > 0 && p->s[p->h.hwm - 1].len == 0) {
		p->h.hwm--;
		p->dirty = true;
	}
}

static bool span_ok(const struct plan_span *e)
{
	uint64_t pg = rszshm__page_size();

	return e->addr % pg == 0 && e->len % pg == 0 && e->addr != 0 &&
	       e->len <= UINTPTR_MAX - e->addr;
}

/* Is entry @i still held?  Reads its meta; a stale entry is "no". */
static bool alive(struct plan *p, unsigned i)
{
	struct plan_meta m;
	struct stat st;
	int rc;

	if (rszshm__sysq_pread(p->fd, &m, sizeof(m), OFF_META + (uint64_t)i * sizeof(m)) < 0)
		return false;
	if (m.state == ST_LIVE && m.path[0] == '/' && memchr(m.path, '\0', sizeof(m.path))) {
		rc = rszshm__sysq_stat(m.path, -1, &st);
		if (rc == -ENOENT || rc == -ENOTDIR)
			return false;
		if (rc < 0)
			return true;	/* cannot tell: keep it */
		return S_ISREG(st.st_mode) && (uint64_t)st.st_dev == p->s[i].dev &&
		       (uint64_t)st.st_ino == p->s[i].ino;
	}
	if (m.state == ST_LIVE || m.state == ST_PENDING)
		return m.pid > 0 && !rszshm__sys_thread_gone(m.pid);
	return false;
}

/* The first entry that overlaps [a, a + len) and is held, dropping stale
 * ones on the way; -1 when none does. */
static int in_the_way(struct plan *p, uint64_t a, uint64_t len)
{
	unsigned i;

	for (i = 0; i < p->h.hwm; i++) {
		const struct plan_span *e = &p->s[i];

		if (e->len == 0)
			continue;
		if (!span_ok(e)) {
			clear(p, i);
			continue;
		}
		if (e->addr >= a + len || a >= e->addr + e->len)
			continue;
		if (alive(p, i))
			return (int)i;
		clear(p, i);
	}
	return -1;
}

static bool held(void *ctx, uintptr_t a, size_t len)
{
	return in_the_way(ctx, a, len) >= 0;
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
	unsigned wraps = 0;
	int i, rc;

	if (len > PLAN_HI - PLAN_LO)
		return -ENOSPC;
	for (steps = 0; steps < limit; steps++) {
		if (cand < PLAN_LO || cand > PLAN_HI - len) {
			if (wraps++)
				break;
			cand = start_for(PLAN_LO, len);
			continue;
		}
		if ((i = in_the_way(p, cand, len)) >= 0) {
			cand = start_for(p->s[i].addr + p->s[i].len, len);
			continue;
		}
		rc = rszshm__span_try((void *)(uintptr_t)cand, (size_t)len);
		if (rc == 0) {
			*out = (void *)(uintptr_t)cand;
			p->h.cursor = cand + len;
			p->dirty = true;
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
	unsigned i;

	for (i = 0; i < p->h.hwm; i++)
		if (p->s[i].len && (!span_ok(&p->s[i]) || !alive(p, i)))
			clear(p, i);
}

/* Enter [a, a + len) as pending; the entry's index or -1. */
static int record(struct plan *p, uint64_t a, uint64_t len)
{
	struct plan_meta m;
	unsigned i;

	for (i = 0; i < p->h.hwm && p->s[i].len; i++)
		;
	if (i == PLAN_CAP) {
		prune(p);
		for (i = 0; i < p->h.hwm && p->s[i].len; i++)
			;
		if (i == PLAN_CAP)
			return -1;
	}
	memset(&m, 0, sizeof(m));
	m.pid = (int32_t)getpid();
	m.state = ST_PENDING;
	if (rszshm__sysq_pwrite(p->fd, &m, sizeof(m), OFF_META + (uint64_t)i * sizeof(m)) < 0)
		return -1;
	p->s[i] = (struct plan_span){ .addr = a, .len = len };
	if (put_span(p, i) < 0)
		return -1;
	if (i == p->h.hwm) {
		p->h.hwm++;
		p->dirty = true;
	}
	return (int)i;
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

	t->fd = -1;
	t->slot = -1;
	if (!PLAN_AREA)
		return rszshm__span_probe(scan, len, out);
	dflt = is_default_scan(scan);
	if (plan_open(&p) < 0)
		return fallback(scan, len, dflt, out);
	if (dflt)
		rc = place(&p, len, out);
	else
		rc = rszshm__span_probe_skip(scan, len, held, &p, out);
	if (rc == 0 && rec && (t->slot = record(&p, (uintptr_t)*out, len)) >= 0)
		t->fd = p.fd;	/* kept for note/forget */
	plan_close(&p, t->fd >= 0);
	if (rc == -ENOSPC || (dflt && rc == -ENOMEM))
		return fallback(scan, len, dflt, out);
	return rc;
}

/* Lock the ticket's table and find its entry if it is still [addr, +len). */
static bool find_own(struct plan *p, void *addr, size_t len, struct rszshm__plan_ticket *t,
		     struct plan_span *e)
{
	int fd = t->fd, slot = t->slot;

	t->fd = -1;
	if (fd < 0)
		return false;
	if (slot < 0 || (unsigned)slot >= PLAN_CAP || plan_open_(p, true, fd) < 0) {
		rszshm__sysq_close(fd);
		return false;
	}
	if (rszshm__sysq_pread(p->fd, e, sizeof(*e), OFF_SPANS + (uint64_t)slot * sizeof(*e)) < 0 ||
	    e->addr != (uintptr_t)addr || e->len != len) {
		plan_close(p, false);
		return false;
	}
	return true;
}

void rszshm__plan_note(void *addr, size_t len, struct rszshm__plan_ticket *t, int fd,
		       const char *fname)
{
	int slot = t->slot, n = -1;
	struct plan_span e;
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
	if (!find_own(&p, addr, len, t, &e))
		return;
	/* A path that does not fit leaves the entry pending: held while we live. */
	if (n > 0 && (size_t)n < sizeof(path)) {
		memset(&m, 0, sizeof(m));
		m.pid = (int32_t)getpid();
		m.state = ST_LIVE;
		memcpy(m.path, path, (size_t)n + 1);
		e.dev = (uint64_t)st.st_dev;
		e.ino = (uint64_t)st.st_ino;
		if (rszshm__sysq_pwrite(p.fd, &e, sizeof(e),
					OFF_SPANS + (uint64_t)slot * sizeof(e)) == 0)
			rszshm__sysq_pwrite(p.fd, &m, sizeof(m),
					    OFF_META + (uint64_t)slot * sizeof(m));
		if (recent_take()) {
			recent[recent_next % RECENT].dev = e.dev;
			recent[recent_next % RECENT].ino = e.ino;
			recent[recent_next % RECENT].slot = slot;
			recent_next++;
			recent_give();
		}
	}
	plan_close(&p, false);
}

void rszshm__plan_forget(void *addr, size_t len, struct rszshm__plan_ticket *t)
{
	uint64_t off = OFF_SPANS + (uint64_t)t->slot * sizeof(struct plan_span);
	struct plan_span e;
	struct plan p;

	if (!find_own(&p, addr, len, t, &e))
		return;
	/* The high-water mark shrinks at the next full use. */
	memset(&e, 0, sizeof(e));
	rszshm__sysq_pwrite(p.fd, &e, sizeof(e), off);
	plan_close(&p, false);
}

void rszshm__plan_file_id(const char *fname, struct rszshm__plan_file *f)
{
	struct stat st;

	f->known = rszshm__sysq_stat(fname, -1, &st) == 0 && S_ISREG(st.st_mode);
	f->dev = f->known ? (uint64_t)st.st_dev : 0;
	f->ino = f->known ? (uint64_t)st.st_ino : 0;
}

/* The entry this process made for the file, from the recent cache: its
 * index, or -1. */
static int recent_slot(const struct rszshm__plan_file *f)
{
	int slot = -1;
	unsigned i;

	if (!recent_take())
		return -1;
	for (i = 0; i < RECENT && slot < 0; i++) {
		if (recent[i].ino == f->ino && recent[i].dev == f->dev) {
			slot = recent[i].slot;
			recent[i].ino = 0;
		}
	}
	recent_give();
	return slot >= 0 && (unsigned)slot < PLAN_CAP ? slot : -1;
}

void rszshm__plan_drop(const struct rszshm__plan_file *f)
{
	int slot = f->known ? recent_slot(f) : -1;
	struct plan_span e;
	struct plan p;
	uint64_t off;
	unsigned i;

	if (!f->known || plan_open_(&p, true, -1) < 0)
		return;
	if (slot >= 0) {
		off = OFF_SPANS + (uint64_t)slot * sizeof(e);
		if (rszshm__sysq_pread(p.fd, &e, sizeof(e), off) == 0 && e.dev == f->dev &&
		    e.ino == f->ino && e.len) {
			memset(&e, 0, sizeof(e));
			rszshm__sysq_pwrite(p.fd, &e, sizeof(e), off);
			plan_close(&p, false);
			return;
		}
	}
	if (load(&p) == 0)
		for (i = 0; i < p.h.hwm; i++)
			if (p.s[i].len && p.s[i].dev == f->dev && p.s[i].ino == f->ino)
				clear(&p, i);
	plan_close(&p, false);
}
