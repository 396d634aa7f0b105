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
 *    which is consistent; the next grower just goes on.
 *
 * New files appear in the file system complete: the region is built in an
 * unnamed O_TMPFILE and linked under its name last (where the file system
 * has no O_TMPFILE, the file is created O_EXCL directly).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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

static void fill(struct rszshm *r, int fd, struct rszshm_hdr *h, uint64_t max, unsigned flags)
{
	r->fd = fd;
	r->hdr = h;
	r->max = (size_t)max;
	r->flags = flags | RSZSHM__F_ATTACHED;
	r->dat = (flags & RSZSHM_HEAP) ? NULL : (char *)h + HDR_SIZE;
	refresh(r, __atomic_load_n(&h->flen, __ATOMIC_ACQUIRE));
}

static void reset(struct rszshm *r)
{
	r->fd = -1;
	r->flen = 0;
	r->hdr = NULL;
	r->dat = NULL;
	r->cap = 0;
	r->flags = 0;
	r->max = 0;
}

/* What mk and at return: the raw area, or the base of a heap region. */
static void *result(const struct rszshm *r)
{
	return is_heap(r) ? (void *)r->hdr : r->dat;
}

int rszshm__map_usable(const struct rszshm *r, bool write)
{
	if (!r || !(r->flags & RSZSHM__F_ATTACHED) || !r->hdr)
		return -EINVAL;
	if (write && (r->flags & RSZSHM_RDONLY))
		return -EPERM;
	return 0;
}

/* ------------------------------------------------------------------ make */

/*
 * Create the region's file, or an unnamed file to be linked as @fname by
 * publish().  *tmpdir_end is set where a mkdtemp()ed directory's name ends
 * in r->fname, so that cleanup can remove it.
 */
static int create_file(struct rszshm *r, unsigned flags, bool *unnamed, char **tmpdir_end)
{
	char dir[RSZSHM_PATH_MAX];
	char *slash, *tmpl;
	int fd, rc;

	*unnamed = false;
	if (flags & RSZSHM_ANON)
		return rszshm__sys_memfd("rszshm");

	if ((tmpl = strstr(r->fname, "XXXXXX/")) != NULL) {
		tmpl += 6;
		*tmpl = '\0';
		rc = rszshm__sys_mkdtemp(r->fname);
		*tmpl = '/';
		if (rc < 0)
			return rc;
		*tmpdir_end = tmpl;
	}

	strcpy(dir, r->fname);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	fd = rszshm__sys_open(dir, O_TMPFILE | O_RDWR, 0600);
	if (fd >= 0) {
		*unnamed = true;
		return fd;
	}
	if (fd != -EOPNOTSUPP && fd != -EISDIR && fd != -EINVAL)
		return fd;
	return rszshm__sys_open(r->fname, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, 0600);
}

/* Give an O_TMPFILE file its name: never replaces an existing file. */
static int publish(int fd, const char *fname)
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

static int mk(struct rszshm *r, size_t dlen, struct rszshm_scan scan, unsigned flags)
{
	char *tmpdir_end = NULL;
	bool unnamed = false;
	void *span = NULL;
	uint64_t flen, max;
	int fd = -1, rc;

	if (dlen == 0 || !scan.start || scan.len == 0 || scan.hop == 0 || scan.iter == 0 ||
	    (flags & ~(unsigned)RSZSHM__HDR_FLAGS))
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

	if ((rc = rszshm__span_probe(&scan, (size_t)max, &span)) < 0)
		return rc;
	if ((fd = rc = create_file(r, flags, &unnamed, &tmpdir_end)) < 0)
		goto fail;
	if ((rc = extend(fd, 0, flen, flags & RSZSHM_ALLOCATE)) < 0)
		goto fail;
	if ((rc = rszshm__sys_mmap(span, (size_t)max, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_FIXED, fd, &span)) < 0)
		goto fail;

	rszshm__hdr_init(span, span, max, flen, flags);
	if ((rc = init_locks(span)) < 0)
		goto fail;
	fill(r, fd, span, max, flags);
	if ((flags & RSZSHM_HEAP) && (rc = rszshm__heap_init(r)) < 0)
		goto fail;
	if ((rc = rszshm__sys_msync(span, HDR_SIZE)) < 0)
		goto fail;
	if (unnamed && (rc = publish(fd, r->fname)) < 0)
		goto fail;
	return 0;

fail:
	if (span)
		rszshm__sys_munmap(span, (size_t)max);
	if (fd >= 0)
		rszshm__sys_close(fd);
	if (fd >= 0 && !unnamed && !(flags & RSZSHM_ANON))
		rszshm__sys_unlink(r->fname);
	if (tmpdir_end) {
		*tmpdir_end = '\0';
		rszshm__sys_rmdir(r->fname);
		*tmpdir_end = '/';
	}
	reset(r);
	return rc;
}

void *rszshm_mk_flags(struct rszshm *r, size_t flen, const char *fname,
		      struct rszshm_scan scan, unsigned flags)
{
	char name[RSZSHM_PATH_MAX];
	size_t n;
	int rc;

	if (!r)
		return RSZSHM__FAIL(-EINVAL, NULL);
	if (flags & RSZSHM_ANON)
		fname = "";
	else if (!fname)
		fname = RSZSHM_DFLT_FNAME;
	/* Copied before the handle is reset: @fname may be @r->fname. */
	n = strlcpy(name, fname, sizeof(name));
	reset(r);
	r->fname[0] = '\0';
	if ((n == 0 && !(flags & RSZSHM_ANON)) || n >= sizeof(name))
		return RSZSHM__FAIL(-EINVAL, NULL);
	memcpy(r->fname, name, n + 1);
	if ((rc = mk(r, flen, scan, flags)) < 0)
		return RSZSHM__FAIL(rc, NULL);
	return result(r);
}

#undef rszshm_mk
void *rszshm_mk(struct rszshm *r, size_t flen, const char *fname, struct rszshm_scan scan)
{
	return rszshm_mk_flags(r, flen, fname, scan, 0);
}

/* ---------------------------------------------------------------- attach */

static int at(struct rszshm *r, const char *fname, unsigned flags)
{
	bool rdonly = flags & RSZSHM_RDONLY;
	struct rszshm_hdr h, *live;
	uint64_t fsize, flen;
	void *m;
	int fd, rc;

	/* O_NONBLOCK: a FIFO at @fname must not wait for a writer (it is then
	 * refused as not a regular file); no effect on a regular file. */
	if ((fd = rszshm__sys_open(fname, (rdonly ? O_RDONLY : O_RDWR) | O_NONBLOCK, 0)) < 0)
		return fd;
	if ((rc = rszshm__hdr_read(fd, &h, &fsize, NULL)) < 0)
		goto fail_fd;
	if ((rc = rszshm__span_claim(h.addr, (size_t)h.max)) < 0)
		goto fail_fd;
	if ((rc = rszshm__sys_mmap(h.addr, (size_t)h.max, rdonly ? PROT_READ : PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_FIXED, fd, &m)) < 0)
		goto fail_span;

	/* The file may have changed since pread: trust only what checks out. */
	live = m;
	flen = __atomic_load_n(&live->flen, __ATOMIC_ACQUIRE);
	if (memcmp(live, &h, offsetof(struct rszshm_hdr, flen)) != 0 ||
	    flen < h.flen || flen > h.max || flen % rszshm__page_size()) {
		rc = -EBADMSG;
		goto fail_span;
	}
	fill(r, fd, live, h.max, (unsigned)h.flags | (flags & RSZSHM_RDONLY));
	return 0;

fail_span:
	rszshm__sys_munmap(h.addr, (size_t)h.max);
fail_fd:
	rszshm__sys_close(fd);
	return rc;
}

void *rszshm_at_flags(struct rszshm *r, const char *fname, unsigned flags)
{
	int rc;

	if (!r || !fname || !fname[0] || strnlen(fname, RSZSHM_PATH_MAX) == RSZSHM_PATH_MAX ||
	    (flags & ~(unsigned)RSZSHM_RDONLY))
		return RSZSHM__FAIL(-EINVAL, NULL);
	reset(r);
	memmove(r->fname, fname, strlen(fname) + 1);	/* @fname may be @r->fname */
	if ((rc = at(r, fname, flags)) < 0)
		return RSZSHM__FAIL(rc, NULL);
	return result(r);
}

void *rszshm_at(struct rszshm *r, const char *fname)
{
	return rszshm_at_flags(r, fname, 0);
}

/* ---------------------------------------------------------------- detach */

int rszshm_dt(struct rszshm *r)
{
	int rc = 0, rc2;

	if (!r)
		return RSZSHM__FAIL(-EINVAL, -1);
	if (!(r->flags & RSZSHM__F_ATTACHED))
		return 0;
	if (!(r->flags & RSZSHM_RDONLY))
		rc = rszshm__sys_msync(r->hdr, rszshm__map_len(r));
	if ((rc2 = rszshm__sys_munmap(r->hdr, r->max)) < 0 && rc == 0)
		rc = rc2;
	if ((rc2 = rszshm__sys_close(r->fd)) < 0 && rc == 0)
		rc = rc2;
	reset(r);
	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

/* ------------------------------------------------------------------ grow */

/* The header's length, checked: a damaged header never sends us past the span. */
static int current_len(const struct rszshm *r, uint64_t *flen)
{
	uint64_t n = rszshm__map_len(r);

	if (n <= HDR_SIZE || n > r->max || n % rszshm__page_size())
		return -EBADMSG;
	*flen = n;
	return 0;
}

int rszshm_up(struct rszshm *r)
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

static int lock_grow(struct rszshm *r)
{
	pthread_mutex_t *m = &rszshm__shared(r->hdr)->grow_lock;
	int rc = rszshm__lock(m);

	/* A grower died here: the file is at least hdr->flen long, which is
	 * all the invariant asks.  Nothing to repair. */
	if (rc == 1)
		rc = rszshm__lock_consistent(m);
	return rc;
}

static void unlock_grow(struct rszshm *r)
{
	rszshm__unlock(&rszshm__shared(r->hdr)->grow_lock);
}

/* Under the grow lock: make the file @to bytes long and publish that. */
static int extend_locked(struct rszshm *r, uint64_t cur, uint64_t to)
{
	uint64_t fsize;
	int rc;

	if (r->flags & RSZSHM_ALLOCATE) {
		rc = rszshm__sys_fallocate(r->fd, cur, to - cur);
	} else {
		/* Never shrink: a file already longer (a grower that died after
		 * extending) is left as it is. */
		rc = rszshm__sys_fsize(r->fd, &fsize, NULL);
		if (rc == 0 && fsize < to)
			rc = rszshm__sys_ftruncate(r->fd, to);
	}
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
		if ((rc = current_len(r, &cur)) == 0 && cur < want)
			rc = extend_locked(r, cur, want);
		unlock_grow(r);
		if (rc < 0)
			return rc;
		current_len(r, &cur);
	}
	refresh(r, cur);
	return 0;
}

int rszshm_grow_to(struct rszshm *r, size_t flen)
{
	int rc = rszshm__map_grow_to(r, flen);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_grow(struct rszshm *r)
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

/* ----------------------------------------------------------------- flush */

int rszshm_flush(struct rszshm *r, const void *addr, size_t len)
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

/* ---------------------------------------------------------------- remove */

int rszshm_unlink(struct rszshm *r)
{
	int rc;

	if (!r)
		return RSZSHM__FAIL(-EINVAL, -1);
	rc = rszshm__sys_unlink(r->fname);
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

int rszshm_lock(struct rszshm *r)
{
	return user_lock(r, rszshm__lock);
}

int rszshm_trylock(struct rszshm *r)
{
	return user_lock(r, rszshm__trylock);
}

int rszshm_unlock(struct rszshm *r)
{
	int rc;

	if ((rc = rszshm__map_usable(r, true)) < 0 ||
	    (rc = rszshm__unlock(&rszshm__shared(r->hdr)->user_lock)) < 0)
		return RSZSHM__FAIL(rc, -1);
	return 0;
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

void rszshm__view_of(const struct rszshm *r, struct rszshm__view *v)
{
	v->map = (const unsigned char *)r->hdr;
	v->base = (uintptr_t)r->hdr;
	v->len = rszshm__map_len(r);
	if (v->len > r->max)
		v->len = r->max;
	v->fd = -1;
}
