/* SPDX-License-Identifier: Apache-2.0 */
/*
 * open.c - the entry points that make, attach and detach a region:
 * rszshm_open() and its thin wrappers rszshm_mk(), rszshm_mk_flags(),
 * rszshm_at() and rszshm_at_flags(), and rszshm_dt().
 *
 * This file sits above map.c and heap.c and composes them, so data flows one
 * way: map.c makes the file and maps it (not yet under its name), heap.c
 * lays out a heap in it, the caller's initializer runs, and only then does
 * map.c give the file its name.  Until that link no other process can open
 * the region, so none ever sees one half made; a maker that dies before it
 * leaves no region under the name (an O_TMPFILE file vanishes with its last
 * descriptor).
 *
 * Open-or-create (RSZSHM_CREATE without RSZSHM_EXCL): attach; if the name
 * does not exist, take the name's maker lock (flock on a lock file beside
 * it, see lock_name()), attach again, and only if the name still does not
 * exist make the region and link it.  So among any number of processes
 * starting at once exactly one makes the region and runs the initializer,
 * and every one ends up on it; a maker killed at any point drops the lock
 * with its life, and leaves nothing under the name.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

#include <bsd/string.h>

#include "internal.h"

/* How often the maker lock is tried again when its file keeps vanishing
 * under us (each holder removes it). */
#define OPEN_TRIES 64

#define MAKE_FLAGS (RSZSHM_ALLOCATE | RSZSHM_HEAP | RSZSHM_ANON)
#define OPEN_FLAGS (MAKE_FLAGS | RSZSHM_RDONLY | RSZSHM_CREATE | RSZSHM_EXCL)

/* The handle flags' code for a lock bound of @ms (checked: at most
 * RSZSHM__F_LOCK_MAX - 1 steps, or RSZSHM_LOCK_FOREVER), rounded up. */
static unsigned lock_code(unsigned ms)
{
	if (ms == RSZSHM_LOCK_FOREVER)
		return RSZSHM__F_LOCK_MAX;
	return (ms + RSZSHM__LOCK_STEP_MS - 1) / RSZSHM__LOCK_STEP_MS;
}

/* What mk and at return: the raw area, or the base of a heap region. */
static void *result(const struct rszshm *r)
{
	return (r->flags & RSZSHM_HEAP) ? (void *)r->hdr : r->dat;
}

/* Make the region r->fname, lay it out, run the initializer, link it. */
static int make(struct rszshm *r, const struct rszshm_opts *o)
{
	struct rszshm__making p = {
		.flags = o->flags & MAKE_FLAGS,
		.mode = o->mode ? o->mode : 0600,
	};
	struct rszshm_scan scan = o->scan.len ? o->scan : RSZSHM_DFLT_SCAN;
	int rc;

	if ((rc = rszshm__map_make(r, o->len, scan, &p)) < 0)
		goto fail;
	if ((p.flags & RSZSHM_HEAP) && (rc = rszshm__heap_init(r)) < 0)
		goto fail;
	if (o->init) {
		int e = o->init(r, o->arg);

		if (e != 0) {
			rc = e > 0 ? -e : -ECANCELED;
			rszshm__why(rc, "%s: the initializer failed (%s)",
				    r->fname[0] ? r->fname : "anonymous region", strerror(-rc));
			goto fail;
		}
	}
	if ((rc = rszshm__map_publish(r, &p)) < 0)
		goto fail;
	return 0;
fail:
	rszshm__map_abort(r, &p);
	return rc;
}

/* Attach r->fname as @o asks; a heap asked for must be a heap. */
static int attach(struct rszshm *r, const struct rszshm_opts *o)
{
	int rc = rszshm__map_attach(r, r->fname, o->flags & RSZSHM_RDONLY);

	if (rc < 0)
		return rc;
	if ((o->flags & RSZSHM_CREATE) && (o->flags & RSZSHM_HEAP) && !(r->flags & RSZSHM_HEAP)) {
		rszshm_dt(r);
		rc = -EEXIST;
		rszshm__why(rc, "%s exists as a raw region, not a heap", r->fname);
	}
	return rc;
}

/* The maker's lock, if free (-EAGAIN if not: EWOULDBLOCK is EAGAIN). */
static int flock_try(int fd)
{
	return rszshm__sys_flock(fd, LOCK_EX | LOCK_NB);
}

/*
 * Take the maker's lock of r->fname: flock(2) on "<dir>/.<leaf>.rszshm-lock",
 * created with the region's mode.  The kernel drops it when its holder dies,
 * so a maker killed at any point never blocks the next.  The holder removes
 * the file before unlocking; a waiter that then gets the lock of a removed
 * file sees that it is no longer the one under the name and starts again.
 * A waiter waits for at most the call's lock bound (-ETIMEDOUT): a process
 * that holds the lock for ever must not hold every opener with it.
 * Returns the lock's descriptor, or a negative errno.
 */
static int lock_name(const struct rszshm *r, mode_t mode, char *lock, size_t len)
{
	const char *slash = strrchr(r->fname, '/');
	int dlen = slash ? (int)(slash - r->fname + 1) : 0;
	unsigned tries;
	int fd, rc;

	if ((size_t)snprintf(lock, len, "%.*s.%s.rszshm-lock", dlen, r->fname,
			     r->fname + dlen) >= len)
		return -ENAMETOOLONG;
	for (tries = 0; tries < OPEN_TRIES; tries++) {
		fd = rszshm__sys_open(lock, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd >= 0 && (rc = rszshm__sys_fchmod(fd, mode)) < 0)
			goto fail;
		if (fd == -EEXIST) {
			fd = rszshm__sys_open(lock, O_RDONLY | O_NOFOLLOW, 0);
			if (fd == -ENOENT)
				continue;	/* removed by its holder meanwhile */
		}
		if (fd < 0)
			return fd;
		if ((rc = rszshm__lock_bounded(flock_try, fd)) < 0 ||
		    (rc = rszshm__sys_same_file(fd, lock)) < 0)
			goto fail;
		if (rc == 1)
			return fd;
		rszshm__sys_close(fd);
	}
	return -EAGAIN;
fail:
	rszshm__sys_close(fd);
	return rc;
}

static void unlock_name(int fd, const char *lock)
{
	rszshm__sys_unlink(lock);
	rszshm__sys_close(fd);	/* drops the flock */
}

static int open_or_make(struct rszshm *r, const struct rszshm_opts *o)
{
	bool unique = (o->flags & RSZSHM_ANON) || strstr(r->fname, "XXXXXX/");
	char lock[RSZSHM_PATH_MAX + 32];
	int fd, rc;

	if (!(o->flags & RSZSHM_CREATE))
		return attach(r, o);
	if ((o->flags & RSZSHM_EXCL) || unique)
		return make(r, o);
	/* Most calls find the region: no lock. */
	if ((rc = attach(r, o)) != -ENOENT)
		return rc;
	rszshm__why_clear();
	/*
	 * Under the maker's lock, so that one process makes the region (and
	 * runs the initializer) while the others wait, then attach.  The link
	 * is exclusive all the same: a region made meanwhile by a caller of
	 * rszshm_mk() wins, and is attached.
	 */
	if ((fd = rc = lock_name(r, o->mode ? o->mode : 0600, lock, sizeof(lock))) < 0)
		return rc;
	if ((rc = attach(r, o)) == -ENOENT) {
		rszshm__why_clear();
		if ((rc = make(r, o)) == -EEXIST) {
			rszshm__why_clear();
			rc = attach(r, o);
		}
	}
	unlock_name(fd, lock);
	return rc;
}

void *rszshm_open(struct rszshm *r, const char *fname, const struct rszshm_opts *opts)
{
	static const struct rszshm_opts attach_rw;
	const struct rszshm_opts *o = opts ? opts : &attach_rw;
	char name[RSZSHM_PATH_MAX];
	struct rszshm__guard g;
	size_t n;
	int rc;

	if (!r)
		return RSZSHM__FAIL(-EINVAL, NULL);
	if (o->flags & RSZSHM_ANON)
		fname = "";
	else if (!fname)
		fname = (o->flags & RSZSHM_CREATE) ? RSZSHM_DFLT_FNAME : "";
	/* Copied before the handle is reset: @fname may be @r->fname. */
	n = strlcpy(name, fname, sizeof(name));
	rszshm__map_reset(r);
	r->fname[0] = '\0';
	if ((n == 0 && !(o->flags & RSZSHM_ANON)) || n >= sizeof(name) ||
	    (o->flags & ~(unsigned)OPEN_FLAGS) || (o->mode & ~(mode_t)0777) ||
	    ((o->flags & RSZSHM_RDONLY) && (o->flags & (MAKE_FLAGS | RSZSHM_CREATE))) ||
	    ((o->flags & RSZSHM_ANON) && !(o->flags & RSZSHM_CREATE)))
		return RSZSHM__FAIL(-EINVAL, NULL);
	if (o->lock_timeout_ms != RSZSHM_LOCK_FOREVER &&
	    o->lock_timeout_ms > (RSZSHM__F_LOCK_MAX - 1) * RSZSHM__LOCK_STEP_MS)
		return RSZSHM__FAIL(-EINVAL, NULL);
	memcpy(r->fname, name, n + 1);
	/* The frame guards the handle's span once map.c has filled it in
	 * (map.c guards its own reads before that), and carries the lock
	 * bound asked for to every lock taken on the way. */
	rszshm__guard_enter(&g, r);
	g.lock_ms = o->lock_timeout_ms;
	rc = open_or_make(r, o);
	if (rszshm__guard_leave(&g) && rc == 0) {
		rszshm_dt(r);
		rc = -ENODATA;
		rszshm__why(rc, "%s: the file was truncated while attaching (by another process)",
			    name);
	}
	if (rc < 0) {
		rszshm__map_reset(r);
		return RSZSHM__FAIL(rc, NULL);
	}
	r->flags |= lock_code(o->lock_timeout_ms) << RSZSHM__F_LOCK_SHIFT;
	return result(r);
}

void *rszshm_mk_flags(struct rszshm *r, size_t flen, const char *fname,
		      struct rszshm_scan scan, unsigned flags)
{
	struct rszshm_opts o = {
		.flags = flags | RSZSHM_CREATE | RSZSHM_EXCL,
		.len = flen,
		.scan = scan,
	};

	if (flags & ~(unsigned)MAKE_FLAGS) {
		if (r)
			rszshm__map_reset(r);
		return RSZSHM__FAIL(-EINVAL, NULL);
	}
	/* An explicit scan is used as given: a zero len is EINVAL, not the default. */
	if (scan.len == 0) {
		if (r)
			rszshm__map_reset(r);
		return RSZSHM__FAIL(-EINVAL, NULL);
	}
	return rszshm_open(r, fname ? fname : RSZSHM_DFLT_FNAME, &o);
}

#undef rszshm_mk
void *rszshm_mk(struct rszshm *r, size_t flen, const char *fname, struct rszshm_scan scan)
{
	return rszshm_mk_flags(r, flen, fname, scan, 0);
}

void *rszshm_at_flags(struct rszshm *r, const char *fname, unsigned flags)
{
	struct rszshm_opts o = { .flags = flags };

	if (!fname || !fname[0] || (flags & ~(unsigned)RSZSHM_RDONLY)) {
		if (r)
			rszshm__map_reset(r);
		return RSZSHM__FAIL(-EINVAL, NULL);
	}
	return rszshm_open(r, fname, &o);
}

void *rszshm_at(struct rszshm *r, const char *fname)
{
	return rszshm_at_flags(r, fname, 0);
}

int rszshm_dt(struct rszshm *r)
{
	int rc;

	if (!r)
		return RSZSHM__FAIL(-EINVAL, -1);
	if (!(r->flags & RSZSHM__F_ATTACHED))
		return 0;
	/* The thread slots this process holds go back before the unmap:
	 * their blocks would be out of reach of anyone until the threads died. */
	if ((r->flags & RSZSHM_HEAP) && !(r->flags & RSZSHM_RDONLY)) {
		struct rszshm__guard g;

		/* A fault giving them back is no reason to keep the mapping. */
		rszshm__guard_enter(&g, r);
		rszshm__heap_detach(r);
		rszshm__guard_leave(&g);
	}
	rc = rszshm__map_detach(r);
	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}
