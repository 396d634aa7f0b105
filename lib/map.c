/* SPDX-License-Identifier: Apache-2.0 */
/*
 * map.c - making, attaching, growing and detaching regions.
 *
 * Every process maps the region's file MAP_SHARED over the *whole* span, not
 * only over the file's current length.  Pages past the end of the file fault
 * (SIGBUS) until the file is extended; then they appear in every process at
 * once, with no remap.  So:
 *
 *  - growing is: take the grow lock, extend the file (ftruncate, or
 *    fallocate for RSZSHM_ALLOCATE), publish the new length in hdr->flen,
 *    unlock.  O(1) in the region's length; no page is touched or copied.
 *  - the file is only ever extended under the grow lock, and only when it is
 *    shorter than the new length: a late grower can never shrink it.
 *  - the lock is a robust process-shared mutex in the header, so it excludes
 *    threads, forked children and processes that attached by name alike
 *    (flock() cannot: forked children share its open file description).  A
 *    grower that dies mid-grow leaves a file at least as long as hdr->flen,
 *    which is consistent.  The next locker, told the holder died, publishes
 *    the length the dead grower made (if the file is longer than hdr->flen,
 *    by whole pages, within the span), so that under a consistent lock the
 *    file is exactly hdr->flen long and a grower extends it with one
 *    ftruncate, no fstat first.  A file lengthened by anything but a grower
 *    (not by whole pages, or past the span) is not published, and the next
 *    ftruncate cuts it back to the grower's new length: only lengths the
 *    library published are kept.
 *
 * New files appear in the file system complete: the region is built in an
 * unnamed O_TMPFILE and linked under its name last (where the file system
 * has no O_TMPFILE, under a temporary name in the same directory, linked
 * under the real name last).  Making is three steps, so that the caller
 * (open.c) can lay out the region's contents between them:
 * rszshm__map_make(), then rszshm__map_publish() or rszshm__map_abort().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define HDR_SIZE sizeof(struct rszshm_hdr)

static uint64_t pgup(uint64_t x)
{
	uint64_t pg = rszshm__page_size();

	return (x + pg - 1) & ~(pg - 1);
}

static bool is_heap(const struct rszshm *r)
{
	return r->flags & RSZSHM_HEAP;
}

/*
 * The raw area's capacity at file length @flen: everything after the header
 * but the spill page.  The last page of a raw region that can still grow is
 * left out of @cap.  ccan's documented pattern (claim an index with an atomic
 * counter, grow once if it is past cap, write) lets a worker whose handle was
 * stale refresh instead of growing and then write a few bytes past the
 * capacity it just read, before the worker that owns the next doubling has
 * published it: at most one such write per worker per doubling.  The spill
 * page puts those writes in the shared file, where every process sees them,
 * instead of past its end (SIGBUS here; silently lost in ccan, whose private
 * span lies there).  Access past hdr->flen still faults.
 */
static uint64_t raw_cap(uint64_t flen, uint64_t max)
{
	return flen - HDR_SIZE - (flen < max ? rszshm__page_size() : 0);
}

/* Record the region's length @flen in the handle; any thread may do this. */
static void refresh(struct rszshm *r, uint64_t flen)
{
	__atomic_store_n(&r->flen, (size_t)flen, __ATOMIC_RELAXED);
	__atomic_store_n(&r->cap, is_heap(r) ? 0 : (size_t)raw_cap(flen, r->max), __ATOMIC_RELAXED);
}

/* @flen: the region's length, checked against the file's size. */
static void fill(struct rszshm *r, int fd, struct rszshm_hdr *h, uint64_t max, uint64_t flen,
		 unsigned flags)
{
	r->fd = fd;
	r->hdr = h;
	r->max = (size_t)max;
	r->flags = flags | RSZSHM__F_ATTACHED;
	r->dat = (flags & RSZSHM_HEAP) ? NULL : (char *)h + HDR_SIZE;
	refresh(r, flen);
}

void rszshm__map_reset(struct rszshm *r)
{
	r->fd = -1;
	r->flen = 0;
	r->hdr = NULL;
	r->dat = NULL;
	r->cap = 0;
	r->flags = 0;
	r->max = 0;
}

/* ------------------------------------------------- attached spans (diag) */

/*
 * The spans this process has attached, with their names: only so that an
 * attach refused because its span is in use can say by what.  A list under
 * a process-private mutex (held for a few instructions; reset in a forked
 * child, which inherits the list with the mappings).
 */
struct live {
	struct live *next;
	uintptr_t addr;
	size_t len;
	char name[RSZSHM_PATH_MAX];
};
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct live *live_head;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;

static void live_prepare(void)
{
	pthread_mutex_lock(&live_lock);
}

static void live_parent(void)
{
	pthread_mutex_unlock(&live_lock);
}

static void live_child(void)
{
	pthread_mutex_init(&live_lock, NULL);
}

static void live_setup(void)
{
	pthread_atfork(live_prepare, live_parent, live_child);
}

static void live_add(const struct rszshm *r)
{
	struct live *l = malloc(sizeof(*l));

	if (!l)
		return;		/* only a diagnostic is lost */
	pthread_once(&live_once, live_setup);
	l->addr = (uintptr_t)r->hdr;
	l->len = r->max;
	strlcpy(l->name, r->fname[0] ? r->fname : "an anonymous region", sizeof(l->name));
	pthread_mutex_lock(&live_lock);
	l->next = live_head;
	live_head = l;
	pthread_mutex_unlock(&live_lock);
}

static void live_remove(const void *addr)
{
	struct live **pp, *l = NULL;

	pthread_mutex_lock(&live_lock);
	for (pp = &live_head; *pp; pp = &(*pp)->next) {
		if ((*pp)->addr == (uintptr_t)addr) {
			l = *pp;
			*pp = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	free(l);
}

/* "4 GiB", "64 MiB", "12 KiB" or "4097 bytes" for @n. */
static void human(char *buf, size_t len, uint64_t n)
{
	static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
	unsigned u = 0;

	while (n && n % 1024 == 0 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		n /= 1024;
		u++;
	}
	snprintf(buf, len, "%" PRIu64 " %s", n, unit[u]);
}

/* Word why the span @addr+@len could not be claimed in this process. */
static void why_span_busy(int rc, uintptr_t addr, size_t len)
{
	char by[RSZSHM_PATH_MAX + 32] = "another mapping of this process";
	char size[32];
	struct live *l;

	human(size, sizeof(size), len);
	pthread_mutex_lock(&live_lock);
	for (l = live_head; l; l = l->next) {
		if (l->addr < addr + len && addr < l->addr + l->len) {
			snprintf(by, sizeof(by), "%s", l->name);
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	rszshm__why(rc, "span %#" PRIxPTR "+%s is in use in this process (by %s)", addr, size, by);
}

/* ------------------------------------------------------------------ make */

/* Point hook: a test may kill the maker at numbered points (see internal.h). */
void (*rszshm__map_hook)(int point);

static void hook(int point)
{
	if (rszshm__map_hook)
		rszshm__map_hook(point);
}

/* The directory part of @fname in @dir ("." if none). */
static void dir_of(const char *fname, char *dir, size_t len)
{
	char *slash;

	strlcpy(dir, fname, len);
	slash = strrchr(dir, '/');
	if (!slash)
		strlcpy(dir, ".", len);
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
}

/*
 * The mode of a directory made for files of mode @mode: the owner may do
 * anything; the group and others get @mode's bits, and search (x) wherever
 * they may read or write (0660 -> 0770, 0644 -> 0755, 0600 -> 0700).
 */
static mode_t dir_mode(mode_t mode)
{
	mode_t d = 0700 | (mode & 0077);

	if (mode & 0060)
		d |= 0010;
	if (mode & 0006)
		d |= 0001;
	return d;
}

/*
 * Create the region's file, not yet under its name: an unnamed O_TMPFILE
 * file, or (where the file system has none) a file under a temporary name in
 * the same directory, recorded in @p->tmpname.  A mkdtemp()ed directory is
 * recorded in @p->dir_end, so that abort can remove it.
 */
static int create_file(struct rszshm *r, struct rszshm__making *p)
{
	char dir[RSZSHM_PATH_MAX];
	char *tmpl;
	int fd, rc;

	if (p->flags & RSZSHM_ANON)
		return rszshm__sys_memfd("rszshm");

	if ((tmpl = strstr(r->fname, "XXXXXX/")) != NULL) {
		tmpl += 6;
		*tmpl = '\0';
		rc = rszshm__sys_mkdtemp(r->fname);
		if (rc == 0) {
			p->dir_end = (size_t)(tmpl - r->fname);
			if (p->mode != 0600)
				rc = rszshm__sys_chmod(r->fname, dir_mode(p->mode));
		}
		*tmpl = '/';
		if (rc < 0)
			return rc;
	}

	dir_of(r->fname, dir, sizeof(dir));
	fd = rszshm__sys_open(dir, O_TMPFILE | O_RDWR, 0600);
	if (fd >= 0) {
		p->unnamed = true;
		return fd;
	}
	if (fd != -EOPNOTSUPP && fd != -EISDIR && fd != -EINVAL)
		return fd;
	/* No O_TMPFILE: a temporary name beside the real one, linked last. */
	snprintf(p->tmpname, sizeof(p->tmpname), "%s/.rszshm-tmp-XXXXXX", dir);
	fd = rszshm__sys_mkstemp(p->tmpname);
	if (fd < 0)
		p->tmpname[0] = '\0';
	return fd;
}

/* Give an O_TMPFILE file its name: never replaces an existing file. */
static int link_unnamed(int fd, const char *fname)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, fname, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	/* No /proc: this form needs CAP_DAC_READ_SEARCH. */
	return linkat(fd, "", AT_FDCWD, fname, AT_EMPTY_PATH) == 0 ? 0 : -errno;
}

static int extend(int fd, uint64_t from, uint64_t to, bool allocate)
{
	if (allocate)
		return rszshm__sys_fallocate(fd, from, to - from);
	return rszshm__sys_ftruncate(fd, to);
}

static int init_locks(struct rszshm_hdr *h)
{
	struct rszshm__shared *s = rszshm__shared(h);
	int rc;

	if ((rc = rszshm__lock_init(&s->grow_lock)) < 0 ||
	    (rc = rszshm__lock_init(&s->user_lock)) < 0 ||
	    (rc = rszshm__lock_init(&s->heap_lock)) < 0 ||
	    (rc = rszshm__lock_init(&s->rec_lock)) < 0)
		return rc;
	return 0;
}

int rszshm__map_make(struct rszshm *r, size_t dlen, struct rszshm_scan scan,
		     struct rszshm__making *p)
{
	struct rszshm__guard g;
	struct rszshm_hdr h;
	void *span = NULL;
	uint64_t flen, flen2, max;
	bool regular, memfs;
	unsigned flags = p->flags;
	ssize_t n;
	int fd = -1, rc;

	p->unnamed = false;
	p->tmpname[0] = '\0';
	p->dir_end = 0;
	p->fd = -1;
	p->span = NULL;
	p->max = 0;
	p->planned = false;
	if (dlen == 0 || !scan.start || scan.len == 0 || scan.hop == 0 || scan.iter == 0 ||
	    (flags & ~(unsigned)RSZSHM__HDR_FLAGS) || (p->mode & ~(mode_t)0777))
		return -EINVAL;
	if (dlen > UINT64_MAX - 2 * HDR_SIZE - 2 * rszshm__page_size() ||
	    scan.len < dlen + HDR_SIZE)
		return -EINVAL;
	if (scan.len > SIZE_MAX - rszshm__page_size())
		return -ENOMEM;
	max = pgup(scan.len);
	if (max > SIZE_MAX)
		return -ENOMEM;
	/* A raw area of at least @dlen bytes, the spill page beyond it
	 * (see raw_cap()) unless that would pass the span. */
	flen = pgup(dlen + HDR_SIZE);
	if (!(flags & RSZSHM_HEAP) && flen < max)
		flen += rszshm__page_size();

	/* The address plan (plan.c) picks the span and records it as pending;
	 * publish marks it live, abort releases it. */
	if ((rc = rszshm__plan_claim(&scan, (size_t)max, !(flags & RSZSHM_ANON), &span,
				     &p->plan)) < 0) {
		char size[32];

		human(size, sizeof(size), max);
		if (rc == -ENOSPC)
			rszshm__why(rc, "no free span of %s at any of the %u addresses of the scan "
				    "from %p", size, scan.iter, scan.start);
		else if (rc == -ENOMEM)
			rszshm__why(rc, "a span of %s does not fit the address space", size);
		return rc;
	}
	p->span = span;
	p->max = max;
	p->planned = true;
	if ((fd = p->fd = rc = create_file(r, p)) < 0)
		return rc;
	hook(1);
	/* fchmod: the mode is exactly @mode, whatever the umask. */
	if (!(flags & RSZSHM_ANON) && (rc = rszshm__sys_fchmod(fd, p->mode)) < 0)
		return rc;
	if ((rc = extend(fd, 0, flen, flags & RSZSHM_ALLOCATE)) < 0)
		return rc;
	/*
	 * The header is written with pwrite, not through the mapping: on a full
	 * file system a sparse file's first page cannot be allocated, and that
	 * is ENOSPC here instead of SIGBUS at the first store.
	 */
	rszshm__hdr_init(&h, span, max, flen, flags);
	if ((n = rszshm__sys_pwrite(fd, &h, sizeof(h), 0)) < 0) {
		rszshm__why((int)n, "%s: writing the header: %s",
			    r->fname[0] ? r->fname : "anonymous region", strerror((int)-n));
		return (int)n;
	}
	rszshm__guard_arm();
	if ((rc = rszshm__sys_mmap(span, (size_t)max, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_FIXED, fd, &span)) < 0)
		return rc;
	/* A memfd, or a file under a temporary name, can be cut by whoever
	 * else has it open (guard.c). */
	rszshm__guard_enter_range(&g, span, (size_t)max, fd, PROT_READ | PROT_WRITE);
	if ((rc = init_locks(span)) == 0)
		rc = rszshm__lock_attach(fd, span);
	if (rszshm__guard_leave(&g) && rc == 0)
		rc = -ENODATA;
	if (rc < 0)
		return rc;
	if ((rc = rszshm__sys_fstat(fd, &flen2, &regular, &memfs)) < 0)
		return rc;
	fill(r, fd, span, max, flen, flags | (memfs ? RSZSHM__F_MEMFS : 0));
	hook(2);
	return 0;
}

int rszshm__map_reserve(struct rszshm *r, uint64_t len)
{
	int rc;

	if ((rc = rszshm__map_usable(r, true)) < 0)
		return rc;
	if (len > rszshm__map_len(r))
		return -EINVAL;
	if ((rc = rszshm__sys_fallocate(r->fd, 0, pgup(len))) < 0)
		rszshm__why(rc, "%s: allocating the first %" PRIu64 " bytes: %s",
			    r->fname[0] ? r->fname : "anonymous region", pgup(len), strerror(-rc));
	return rc;
}

int rszshm__map_publish(struct rszshm *r, struct rszshm__making *p)
{
	int rc;

	if ((rc = rszshm__sys_msync(r->hdr, HDR_SIZE)) < 0)
		return rc;
	hook(3);
	if (p->unnamed) {
		if ((rc = link_unnamed(p->fd, r->fname)) < 0)
			return rc;
	} else if (p->tmpname[0]) {
		/* link, not rename: never replaces a file made meanwhile. */
		if ((rc = rszshm__sys_link(p->tmpname, r->fname)) < 0)
			return rc;
		rszshm__sys_unlink(p->tmpname);
		p->tmpname[0] = '\0';
	}
	p->unnamed = false;
	if (p->planned) {
		rszshm__plan_note(p->span, (size_t)p->max, &p->plan, p->fd, r->fname);
		p->planned = false;
	}
	live_add(r);
	return 0;
}

void rszshm__map_abort(struct rszshm *r, struct rszshm__making *p)
{
	if (p->planned)
		rszshm__plan_forget(p->span, (size_t)p->max, &p->plan);
	p->planned = false;
	if (p->span)
		rszshm__sys_munmap(p->span, (size_t)p->max);
	if (p->fd >= 0)
		rszshm__sys_close(p->fd);
	if (p->tmpname[0])
		rszshm__sys_unlink(p->tmpname);
	if (p->dir_end) {
		r->fname[p->dir_end] = '\0';
		rszshm__sys_rmdir(r->fname);
		r->fname[p->dir_end] = '/';
	}
	p->span = NULL;
	p->fd = -1;
	p->tmpname[0] = '\0';
	p->dir_end = 0;
	rszshm__map_reset(r);
}

/* ---------------------------------------------------------------- attach */

/*
 * Attach, in as few calls as the checks allow: open, pread the header, map
 * the span, statx, and for a writer the attach guard (one fcntl; two when
 * the header's locks need the first attacher's rewrite, see lock.c).
 *
 * The header is read first and checked in every field but those that need
 * the file's size; the size (and that it is a regular file) is read after
 * the mapping is made, and before anything is read through it.  In that
 * order a region being grown never looks truncated (a grower extends the
 * file before it publishes the length the header was read with), and a
 * file truncated at any point before that statx is an error here, never
 * SIGBUS at the first read through the mapping.  A header that does not
 * pass, or a file pread refuses (a directory, a FIFO), takes the careful
 * path, rszshm__hdr_read(), which says what is wrong.
 */
int rszshm__map_attach(struct rszshm *r, const char *fname, unsigned flags)
{
	bool rdonly = flags & RSZSHM_RDONLY, regular, memfs;
	int prot = rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
	struct rszshm__guard g;
	struct rszshm_hdr h, *live;
	uint64_t fsize, flen;
	const char *why;
	ssize_t n;
	void *m;
	int fd, rc;

	/* O_NONBLOCK: a FIFO at @fname must not wait for a writer (it is then
	 * refused as not a regular file); no effect on a regular file. */
	if ((fd = rszshm__sys_open(fname, (rdonly ? O_RDONLY : O_RDWR) | O_NONBLOCK, 0)) < 0) {
		rszshm__why(fd, "%s: %s", fname, strerror(-fd));
		return fd;
	}
	n = rszshm__sys_pread(fd, &h, sizeof(h), 0);
	/* A file that refuses pread is no region; any other error is one. */
	if (n < 0 && n != -EISDIR && n != -ESPIPE && n != -EINVAL) {
		rc = (int)n;
		goto fail_fd;
	}
	if (n != (ssize_t)sizeof(h) || rszshm__hdr_validate(&h, UINT64_MAX, NULL) < 0) {
		if ((rc = rszshm__hdr_read(fd, &h, &fsize, &why)) < 0) {
			if (why)
				rszshm__why(rc, "%s: %s", fname, why);
			goto fail_fd;
		}
	}
	hook(4);
	rszshm__guard_arm();
	if ((rc = rszshm__span_claim_file(h.addr, (size_t)h.max, prot, fd)) < 0) {
		if (rc == -ENOSPC)
			why_span_busy(rc, (uintptr_t)h.addr, (size_t)h.max);
		goto fail_fd;
	}
	m = h.addr;
	/* From here the file may be cut under us at any moment: a fault of
	 * ours is patched over and fails the attach (guard.c). */
	rszshm__guard_enter_range(&g, m, (size_t)h.max, fd, prot);

	/* Nothing is read through the mapping before this. */
	if ((rc = rszshm__sys_fstat(fd, &fsize, &regular, &memfs)) < 0)
		goto fail_guard;
	if (!regular) {
		rc = -EPROTO;
		rszshm__why(rc, "%s: not a regular file", fname);
		goto fail_guard;
	}
	if (fsize < h.flen) {
		rc = -ENODATA;
		rszshm__why(rc, "%s: file is shorter than the length in its header "
			    "(truncated while attaching, or before)", fname);
		goto fail_guard;
	}
	hook(5);
	/* The file may have changed since pread: trust only what checks out. */
	live = m;
	flen = __atomic_load_n(&live->flen, __ATOMIC_ACQUIRE);
	if (memcmp(live, &h, offsetof(struct rszshm_hdr, flen)) != 0 ||
	    flen < h.flen || flen > h.max || flen % rszshm__page_size()) {
		rc = -EBADMSG;
		rszshm__why(rc, "%s: header changed while attaching", fname);
		goto fail_guard;
	}
	/* Writers only: a read-only handle never takes a lock. */
	if (!rdonly && (rc = rszshm__lock_attach(fd, live)) < 0) {
		if (rc == -EXDEV)
			rszshm__why(rc, "%s: writers in another PID namespace are attached", fname);
		goto fail_guard;
	}
	if (rszshm__guard_leave(&g)) {
		rc = -ENODATA;
		rszshm__why(rc, "%s: file truncated while attaching (by another process)", fname);
		goto fail_span;
	}
	/* A length published after the statx is taken once it is checked
	 * (rszshm__map_safe_len()): the handle records what the file holds. */
	fill(r, fd, live, h.max, flen <= fsize ? flen : h.flen,
	     (unsigned)h.flags | (flags & RSZSHM_RDONLY) | (memfs ? RSZSHM__F_MEMFS : 0));
	live_add(r);
	return 0;

fail_guard:
	if (rszshm__guard_leave(&g) && rc != -ENODATA) {
		rc = -ENODATA;
		rszshm__why(rc, "%s: file truncated while attaching (by another process)", fname);
	}
fail_span:
	rszshm__sys_munmap(h.addr, (size_t)h.max);
fail_fd:
	rszshm__sys_close(fd);
	return rc;
}

/* ---------------------------------------------------------------- detach */

int rszshm__map_detach(struct rszshm *r)
{
	int rc = 0, rc2;

	/* tmpfs: the pages are the file, there is nothing to write. */
	if (!(r->flags & (RSZSHM_RDONLY | RSZSHM__F_MEMFS)))
		rc = rszshm__sys_msync(r->hdr, rszshm__map_safe_len(r));
	live_remove(r->hdr);
	if ((rc2 = rszshm__sys_munmap(r->hdr, r->max)) < 0 && rc == 0)
		rc = rc2;
	if ((rc2 = rszshm__sys_close(r->fd)) < 0 && rc == 0)
		rc = rc2;
	rszshm__map_reset(r);
	return rc;
}

/* ------------------------------------------------------------------ grow */

/*
 * The header's length, checked: a damaged header never sends us past the
 * span, nor past the end of the file.  A length longer than the one this
 * handle last recorded is compared with the file's real size (fstat): a
 * co-writer that raised hdr->flen past the file must get EBADMSG here, not
 * SIGBUS from the pages in between.  Lengths up to the recorded one were
 * checked when they were recorded, and the library never shrinks a file.
 */
static int current_len(const struct rszshm *r, uint64_t *flen)
{
	uint64_t n = rszshm__map_len(r), fsize;
	int rc;

	if (n <= HDR_SIZE || n > r->max || n % rszshm__page_size())
		return -EBADMSG;
	if (n > __atomic_load_n(&r->flen, __ATOMIC_RELAXED)) {
		if ((rc = rszshm__sys_fsize(r->fd, &fsize, NULL)) < 0)
			return rc;
		if (fsize < n)
			return -EBADMSG;
	}
	*flen = n;
	return 0;
}

uint64_t rszshm__map_safe_len_slow(struct rszshm *r)
{
	uint64_t n;

	if (current_len(r, &n) == 0) {
		if (n != __atomic_load_n(&r->flen, __ATOMIC_RELAXED))
			refresh(r, n);
		return n;
	}
	n = __atomic_load_n(&r->flen, __ATOMIC_RELAXED);
	return n < r->max ? n : r->max;
}

static int do_up(struct rszshm *r)
{
	uint64_t flen;
	int rc;

	if ((rc = rszshm__map_usable(r, false)) < 0 || (rc = current_len(r, &flen)) < 0)
		return RSZSHM__FAIL(rc, -1);
	if (flen == __atomic_load_n(&r->flen, __ATOMIC_RELAXED))
		return 0;
	refresh(r, flen);
	return 1;
}

int rszshm_up(struct rszshm *r)
{
	RSZSHM__GUARDED(r, int, -1, do_up(r));
}

static uint64_t span_of(const struct rszshm *r);

/*
 * A grower died holding the lock, maybe between extending the file and
 * publishing its length: publish what it made, so that under a consistent
 * lock the file is hdr->flen long (see the top of this file).
 */
static int adopt_length(struct rszshm *r)
{
	uint64_t cur, fsize;
	int rc;

	if ((rc = current_len(r, &cur)) < 0 || (rc = rszshm__sys_fsize(r->fd, &fsize, NULL)) < 0)
		return rc;
	if (fsize > cur && fsize % rszshm__page_size() == 0 && fsize <= span_of(r))
		__atomic_store_n(&r->hdr->flen, fsize, __ATOMIC_RELEASE);
	return 0;
}

static int lock_grow(struct rszshm *r)
{
	pthread_mutex_t *m = &rszshm__shared(r->hdr)->grow_lock;
	int rc = rszshm__lock(m), rc2;

	if (rc == 1) {
		/* Consistent either way: a failed adoption only leaves the
		 * file longer than hdr->flen, as a dead grower always did. */
		rc2 = adopt_length(r);
		rc = rszshm__lock_consistent(m);
		if (rc == 0 && rc2 < 0) {
			rszshm__unlock(m);
			rc = rc2;
		}
	}
	return rc;
}

static void unlock_grow(struct rszshm *r)
{
	rszshm__unlock(&rszshm__shared(r->hdr)->grow_lock);
}

/* Under the grow lock: make the file @to bytes long and publish that. */
static int extend_locked(struct rszshm *r, uint64_t cur, uint64_t to)
{
	int rc;

	if (r->flags & RSZSHM_ALLOCATE)
		rc = rszshm__sys_fallocate(r->fd, cur, to - cur);
	else
		/* The file is @cur long: a grower that died after extending
		 * it had its length published by lock_grow(). */
		rc = rszshm__sys_ftruncate(r->fd, to);
	if (rc < 0)
		return rc;
	__atomic_store_n(&r->hdr->flen, to, __ATOMIC_RELEASE);
	return 0;
}

static uint64_t span_of(const struct rszshm *r)
{
	uint64_t hmax = __atomic_load_n(&r->hdr->max, __ATOMIC_RELAXED);

	return hmax < r->max ? hmax : r->max;
}

int rszshm__map_grow_to(struct rszshm *r, uint64_t want)
{
	uint64_t cur;
	int rc;

	if ((rc = rszshm__map_usable(r, true)) < 0)
		return rc;
	if (want > span_of(r))
		return -ENOMEM;
	want = pgup(want);
	if ((rc = current_len(r, &cur)) < 0)
		return rc;
	if (cur < want) {
		if ((rc = lock_grow(r)) < 0)
			return rc;
		/* The file is now at least @want long, or as long as what
		 * current_len() checked: no need to look again. */
		if ((rc = current_len(r, &cur)) == 0 && cur < want &&
		    (rc = extend_locked(r, cur, want)) == 0)
			cur = want;
		unlock_grow(r);
		if (rc < 0)
			return rc;
	}
	refresh(r, cur);
	return 0;
}

static int do_grow_to(struct rszshm *r, size_t flen)
{
	int rc = rszshm__map_grow_to(r, flen);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_grow_to(struct rszshm *r, size_t flen)
{
	RSZSHM__GUARDED(r, int, -1, do_grow_to(r, flen));
}

static int do_grow(struct rszshm *r)
{
	uint64_t seen, cur, max, to;
	int rc;

	if ((rc = rszshm__map_usable(r, true)) < 0)
		return RSZSHM__FAIL(rc, -1);
	/* Grown by someone else since this handle looked: that is the growth. */
	if ((rc = rszshm_up(r)) != 0)
		return rc;
	seen = r->flen;
	max = span_of(r);
	if (seen >= max)
		return RSZSHM__FAIL(-ENOMEM, -1);

	if ((rc = lock_grow(r)) < 0)
		return RSZSHM__FAIL(rc, -1);
	if ((rc = current_len(r, &cur)) == 0 && cur == seen) {
		to = cur > max / 2 ? max : cur * 2;
		rc = extend_locked(r, cur, to);
		cur = to;
	}
	unlock_grow(r);
	if (rc < 0)
		return RSZSHM__FAIL(rc, -1);
	refresh(r, cur);
	return 1;
}

int rszshm_grow(struct rszshm *r)
{
	RSZSHM__GUARDED(r, int, -1, do_grow(r));
}

/* ----------------------------------------------------------------- flush */

static int do_flush(struct rszshm *r, const void *addr, size_t len)
{
	uintptr_t base, start, end, pg = rszshm__page_size();
	uint64_t flen;
	int rc;

	if ((rc = rszshm__map_usable(r, true)) < 0 || (rc = current_len(r, &flen)) < 0)
		return RSZSHM__FAIL(rc, -1);
	base = (uintptr_t)r->hdr;
	if (!addr) {
		start = base;
		end = base + flen;
	} else {
		start = (uintptr_t)addr;
		if (start < base || start - base > flen || len > flen - (start - base))
			return RSZSHM__FAIL(-EINVAL, -1);
		end = start + len;
		start &= ~(pg - 1);
	}
	if (end == start)
		return 0;
	rc = rszshm__sys_msync((void *)start, end - start);
	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_flush(struct rszshm *r, const void *addr, size_t len)
{
	RSZSHM__GUARDED(r, int, -1, do_flush(r, addr, len));
}

/* ---------------------------------------------------------------- remove */

int rszshm_unlink(struct rszshm *r)
{
	struct rszshm__plan_file pf;
	int rc;

	if (!r)
		return RSZSHM__FAIL(-EINVAL, -1);
	rszshm__plan_file_id(r->fname, &pf);
	rc = rszshm__sys_unlink(r->fname);
	if (rc == 0)
		rszshm__plan_drop(&pf);		/* plan: the span is free again */
	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_rmdir(struct rszshm *r)
{
	char dir[RSZSHM_PATH_MAX];
	char *slash;
	int rc;

	if (!r)
		return RSZSHM__FAIL(-EINVAL, -1);
	strlcpy(dir, r->fname, sizeof(dir));
	if ((slash = strrchr(dir, '/')) == NULL)
		return RSZSHM__FAIL(-ENOTDIR, -1);
	*slash = '\0';
	rc = rszshm__sys_rmdir(dir);
	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

/* ------------------------------------------------------------ user lock */

static int user_lock(struct rszshm *r, int (*take)(pthread_mutex_t *))
{
	pthread_mutex_t *m;
	int rc;

	if ((rc = rszshm__map_usable(r, true)) < 0)
		return RSZSHM__FAIL(rc, -1);
	m = &rszshm__shared(r->hdr)->user_lock;
	rc = take(m);
	if (rc == 1 && rszshm__lock_consistent(m) < 0)
		rc = -ENOTRECOVERABLE;
	return rc < 0 ? RSZSHM__FAIL(rc, -1) : rc;
}

static int do_lock(struct rszshm *r)
{
	return user_lock(r, rszshm__lock);
}

int rszshm_lock(struct rszshm *r)
{
	RSZSHM__GUARDED(r, int, -1, do_lock(r));
}

static int do_trylock(struct rszshm *r)
{
	return user_lock(r, rszshm__trylock);
}

int rszshm_trylock(struct rszshm *r)
{
	RSZSHM__GUARDED(r, int, -1, do_trylock(r));
}

static int do_unlock(struct rszshm *r)
{
	int rc;

	if ((rc = rszshm__map_usable(r, true)) < 0 ||
	    (rc = rszshm__unlock(&rszshm__shared(r->hdr)->user_lock)) < 0)
		return RSZSHM__FAIL(rc, -1);
	return 0;
}

int rszshm_unlock(struct rszshm *r)
{
	RSZSHM__GUARDED(r, int, -1, do_unlock(r));
}

/* ----------------------------------------------------------------- views */

int rszshm__view_open(const char *path, struct rszshm__view *v, const char **why)
{
	struct rszshm_hdr h;
	uint64_t fsize;
	void *m;
	int fd, rc;

	*why = NULL;
	v->fd = -1;
	v->map = NULL;
	if ((fd = rszshm__sys_open(path, O_RDONLY | O_NONBLOCK, 0)) < 0)
		return fd;
	if ((rc = rszshm__hdr_read(fd, &h, &fsize, why)) < 0)
		goto fail;
	rszshm__guard_arm();
	if ((rc = rszshm__sys_mmap(NULL, (size_t)h.flen, PROT_READ, MAP_SHARED, fd, &m)) < 0)
		goto fail;
	v->map = m;
	v->base = h.addr_bits_;
	v->len = h.flen;
	v->fd = fd;
	return 0;
fail:
	rszshm__sys_close(fd);
	return rc;
}

void rszshm__view_close(struct rszshm__view *v)
{
	if (v->fd >= 0) {
		rszshm__sys_munmap((void *)(uintptr_t)v->map, (size_t)v->len);
		rszshm__sys_close(v->fd);
	}
	v->fd = -1;
	v->map = NULL;
}
