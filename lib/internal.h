/* SPDX-License-Identifier: Apache-2.0 */
/*
 * internal.h - what the files of lib/ promise each other.
 *
 * One section per file, in layer order; data flows one way:
 *
 *   sys -> span -> hdr -> lock -> map -> heap -> rec -> check -> (tools)
 *
 * Conventions inside lib/: functions return 0 (or a count) on success and a
 * negative errno on failure; only the public functions (rszshm_*) set errno,
 * once, at the edge.  Cross-file names are rszshm__<layer>_<verb>; they are
 * not exported from the shared library (tests and tools link the static one).
 */
#ifndef RSZSHM_INTERNAL_H
#define RSZSHM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rszshm.h"

#define RSZSHM__INTERNAL __attribute__((visibility("hidden")))

/* Set errno from a negative errno and return @ret: the edge of the API. */
#define RSZSHM__FAIL(rc, ret) ((errno = -(rc)), (ret))

/* ---------------------------------------------------------------- sys.c
 * Every kernel call the library makes, and a fault injector for tests: the
 * Nth wrapped call from now fails with @err (once, or from then on). */
RSZSHM__INTERNAL void rszshm__fault_inject(unsigned long nth, bool persist, int err);
RSZSHM__INTERNAL void rszshm__fault_clear(void);
RSZSHM__INTERNAL unsigned long rszshm__fault_calls(void);

RSZSHM__INTERNAL size_t rszshm__page_size(void);
RSZSHM__INTERNAL int rszshm__sys_open(const char *path, int flags, mode_t mode);
RSZSHM__INTERNAL int rszshm__sys_memfd(const char *name);
RSZSHM__INTERNAL int rszshm__sys_close(int fd);
RSZSHM__INTERNAL int rszshm__sys_fsize(int fd, uint64_t *size, bool *regular);
RSZSHM__INTERNAL ssize_t rszshm__sys_pread(int fd, void *buf, size_t len, uint64_t off);
RSZSHM__INTERNAL int rszshm__sys_ftruncate(int fd, uint64_t len);
RSZSHM__INTERNAL int rszshm__sys_fallocate(int fd, uint64_t off, uint64_t len);
RSZSHM__INTERNAL int rszshm__sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
				      void **out);
RSZSHM__INTERNAL int rszshm__sys_munmap(void *addr, size_t len);
RSZSHM__INTERNAL int rszshm__sys_msync(void *addr, size_t len);
RSZSHM__INTERNAL int rszshm__sys_mkdtemp(char *tmpl);
RSZSHM__INTERNAL int rszshm__sys_unlink(const char *path);
RSZSHM__INTERNAL int rszshm__sys_rmdir(const char *path);

/* --------------------------------------------------------------- span.c
 * Claiming address space: PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,
 * never over anything already mapped. */
RSZSHM__INTERNAL int rszshm__span_probe(const struct rszshm_scan *scan, size_t len, void **out);
RSZSHM__INTERNAL int rszshm__span_claim(void *addr, size_t len);

/* ---------------------------------------------------------------- hdr.c
 * The on-file header: its layout is struct rszshm_hdr (public), the
 * library's part of it is struct rszshm__shared below. */
struct rszshm__shared {
	pthread_mutex_t grow_lock;	/* serializes growth of the file */
	pthread_mutex_t user_lock;	/* rszshm_lock() */
	pthread_mutex_t heap_lock;	/* heap.c: segments and the heap's top */
	pthread_mutex_t rec_lock;	/* rec.c: the record index */
	uint64_t heap;			/* address of heap.c's control block, 0 if none */
	uint64_t recs;			/* address of rec.c's index, 0 until made */
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
/* This build's ABI word (hdr.c's comment), and its text: "x86-64 (64-bit
 * pointers, little-endian, 40-byte locks)"; snprintf's return. */
RSZSHM__INTERNAL uint64_t rszshm__hdr_abi(void);
RSZSHM__INTERNAL int rszshm__hdr_abi_name(uint64_t abi, char *buf, size_t len);
/* pread the header of @fd and validate it; *file_size gets the file's size. */
RSZSHM__INTERNAL int rszshm__hdr_read(int fd, struct rszshm_hdr *h, uint64_t *file_size,
				      const char **why);

/* --------------------------------------------------------------- lock.c
 * Robust, process-shared mutexes.  rszshm__lock() returns 0 when taken,
 * 1 when taken after the holder died (the caller repairs what the lock
 * guards, then calls rszshm__lock_consistent()), or a negative errno. */
RSZSHM__INTERNAL int rszshm__lock_init(pthread_mutex_t *m);
RSZSHM__INTERNAL int rszshm__lock(pthread_mutex_t *m);
RSZSHM__INTERNAL int rszshm__trylock(pthread_mutex_t *m);
RSZSHM__INTERNAL int rszshm__lock_consistent(pthread_mutex_t *m);
RSZSHM__INTERNAL int rszshm__unlock(pthread_mutex_t *m);

/* ---------------------------------------------------------------- map.c
 * mk/at/grow/up/dt (public) and these helpers for the layers above. */
#define RSZSHM__F_ATTACHED 0x10000u	/* handle flag: mapped */

/* 0 if @r is an attached handle (and writable, with @write), else -EINVAL/-EPERM. */
RSZSHM__INTERNAL int rszshm__map_usable(const struct rszshm *r, bool write);
/* Grow the file to at least @flen (page-rounded); 0 or a negative errno. */
RSZSHM__INTERNAL int rszshm__map_grow_to(struct rszshm *r, uint64_t flen);
/* The region's current length, read atomically from the header. */
static inline uint64_t rszshm__map_len(const struct rszshm *r)
{
	return __atomic_load_n(&r->hdr->flen, __ATOMIC_ACQUIRE);
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
/* A view of an attached handle's own mapping (no new mapping). */
RSZSHM__INTERNAL void rszshm__view_of(const struct rszshm *r, struct rszshm__view *v);

/* --------------------------------------------------------------- heap.c */
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

/* ---------------------------------------------------------------- rec.c */
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
 * kill a writer there (1-3 insert, 4-6 replace, 7-8 remove, 9-10 rehash). */
RSZSHM__INTERNAL extern void (*rszshm__rec_hook)(int point);

/* -------------------------------------------------------------- check.c */
/* Header, heap and records of a view: 0 consistent, 1 damaged, or -errno. */
RSZSHM__INTERNAL int rszshm__check_view(const struct rszshm__view *v, struct rszshm_stats *st,
					char *msg, size_t msglen);

#endif /* RSZSHM_INTERNAL_H */
