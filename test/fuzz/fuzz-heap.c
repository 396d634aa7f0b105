/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-heap.c - libFuzzer target over the writers of a damaged heap region.
 *
 * Once per process: two heap regions, A and B, both RSZSHM_ANON (memfds,
 * nothing in the file system), populated with small, large and aligned
 * blocks, frees that fill pending slots and free runs, and records (copied,
 * replaced, published by pointer, removed).  Their bytes are saved.
 *
 * Per input: A's saved bytes are put back, the input's patches damage A,
 * and a script of calls runs on A: alloc, alloc_aligned, realloc, usable
 * size, free (of blocks live before the damage and of new ones), rec_put,
 * rec_add, rec_remove, rec_find, rec_get, rec_next, lock/unlock, check.
 *
 * Input: two bytes of script seed, then patches as in fuzz-dump.c: OFFSET
 * (24 bits, little-endian, modulo A's length), N, N bytes written there.
 * Lock words are left alone (bytes of a patch that fall on one are
 * skipped): what a garbage lock word does is the locks' business.
 *
 * What counts as a finding (abort, or a signal): a pointer or value handed
 * out that is not inside A past its header and inside A's file; a failure
 * whose errno is not one the API documents for these calls; a lock left
 * held after a call returned; any change to region B; and of course any
 * crash, hang or sanitizer report.
 *
 * Built with -Dfuzz=true, a libFuzzer binary; otherwise replay.c gives it a
 * main() that runs each input of test/fuzz/corpus-heap once, as the test
 * 'fuzz-heap' (suite fuzz).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NLIVE 64
#define NNEW 32
#define NGUARD 32
#define SPAN (4u << 20)

struct side {
	struct rszshm r;
	unsigned char *saved;
	size_t len;
};

static struct side A, B;
static void *live[NLIVE];	/* blocks of A live before the damage */
static unsigned nlive;
static uint64_t guard[NGUARD];	/* offsets of lock words in A */
static unsigned nguard;
static const char *const names[] = { "a", "b", "c", "d", "e", "f", "g", "h", "ptr", "zz" };
#define NNAMES (sizeof(names) / sizeof(names[0]))

static void die(const char *what)
{
	fprintf(stderr, "fuzz-heap: %s (errno %d: %s)\n", what, errno, strerror(errno));
	abort();
}

static void *must(void *p, const char *what)
{
	if (!p)
		die(what);
	return p;
}

/* A heap region with a bit of everything in it. */
static void populate(struct side *s, unsigned scale, bool keep)
{
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	char buf[64];
	void *p[48];
	unsigned i;

	scan.len = SPAN;
	must(rszshm_mk_flags(&s->r, 4096, NULL, scan, RSZSHM_HEAP | RSZSHM_ANON), "mk");
	for (i = 0; i < 48; i++)
		p[i] = must(rszshm_alloc(&s->r, 16 + (i * 97 * scale) % 3000), "alloc small");
	for (i = 0; i < 48; i += 3)
		if (rszshm_dealloc(&s->r, p[i]) < 0)
			die("free small");
	p[0] = must(rszshm_alloc(&s->r, 70000), "alloc large");
	p[3] = must(rszshm_alloc(&s->r, 150000), "alloc large");
	p[6] = must(rszshm_alloc_aligned(&s->r, 4096, 5000), "alloc aligned");
	p[9] = must(rszshm_alloc_aligned(&s->r, 256, 100), "alloc aligned");
	if (rszshm_dealloc(&s->r, p[3]) < 0)
		die("free large");
	p[3] = must(rszshm_alloc(&s->r, 20000), "alloc large");
	for (i = 0; i < 8; i++) {
		memset(buf, 'a' + (int)i, sizeof(buf));
		if (rszshm_rec_put(&s->r, names[i], i, buf, 8 + i * 5) < 0)
			die("put");
	}
	if (rszshm_rec_put(&s->r, "a", 9, buf, 40) < 0 || rszshm_rec_remove(&s->r, "c") < 0 ||
	    rszshm_rec_add(&s->r, "ptr", 1, p[1], 100) < 0)
		die("records");
	if (keep)
		for (i = 0; i < 48 && nlive < NLIVE; i++)
			if (i % 3 != 0 || i == 0 || i == 3 || i == 6 || i == 9)
				live[nlive++] = p[i];
	s->len = s->r.hdr->flen;
	s->saved = must(malloc(s->len), "malloc");
	memcpy(s->saved, s->r.hdr, s->len);
}

static void setup(void)
{
	uint64_t arenas[NGUARD];
	unsigned i, n;

	populate(&A, 1, true);
	populate(&B, 3, false);
	guard[nguard++] = 64 + offsetof(struct rszshm__shared, grow_lock);
	guard[nguard++] = 64 + offsetof(struct rszshm__shared, user_lock);
	guard[nguard++] = 64 + offsetof(struct rszshm__shared, heap_lock);
	guard[nguard++] = 64 + offsetof(struct rszshm__shared, rec_lock);
	n = rszshm__heap_lock_offsets(arenas, NGUARD - nguard);
	for (i = 0; i < n && nguard < NGUARD; i++)
		guard[nguard++] = arenas[i];
}

static bool guarded(uint64_t off)
{
	unsigned i;

	for (i = 0; i < nguard; i++)
		if (off >= guard[i] && off < guard[i] + sizeof(pthread_mutex_t))
			return true;
	return false;
}

/* Every lock word of A must be free again once a call has returned. */
static void locks_free(void)
{
	unsigned i;
	int w;

	for (i = 0; i < nguard; i++) {
		memcpy(&w, (char *)A.r.hdr + guard[i], sizeof(w));
		if (w != 0) {
			fprintf(stderr, "fuzz-heap: lock word at offset %" PRIu64 " is %#x\n",
				guard[i], (unsigned)w);
			die("a call returned with a lock held");
		}
	}
}

/* [p, p + n) must lie in A past its header, and in A's file. */
static void in_a(const void *p, size_t n, const char *what)
{
	uintptr_t base = (uintptr_t)A.r.hdr, a = (uintptr_t)p;
	struct stat st;
	uint64_t end;

	if (fstat(A.r.fd, &st) < 0)
		die("fstat");
	end = (uint64_t)st.st_size < A.r.max ? (uint64_t)st.st_size : A.r.max;
	if (a < base + sizeof(struct rszshm_hdr) || a - base > end || n > end - (a - base)) {
		fprintf(stderr, "fuzz-heap: %s: [%p, +%zu) outside region %p (+%" PRIu64 ")\n",
			what, p, n, (void *)base, end);
		abort();
	}
}

/* The errnos these calls document for a damaged region, or for the
 * script's own misuse (freeing what the damage made a non-block, names
 * that are not there, a full span). */
static void expected(const char *what)
{
	switch (errno) {
	case EBADMSG:
	case ENOTRECOVERABLE:
	case ENOMEM:
	case EINVAL:
	case ENOENT:
	case EEXIST:
	case EOVERFLOW:
		return;
	default:
		die(what);
	}
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void touch(void *p, size_t n, unsigned char c)
{
	in_a(p, n, "block");
	memset(p, c, n);
}

static void run(uint64_t seed)
{
	void *fresh[NNEW] = { NULL }, *old[NLIVE];
	struct rszshm_rec_info info;
	struct rszshm_rec_iter it;
	unsigned char buf[4096];
	unsigned nfresh = 0, op, k;
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t n;
	void *p, **slot;

	memcpy(old, live, sizeof(old));
	for (op = 0; op < 24; op++) {
		uint64_t v = rng(&x);
		const char *nm = names[(v >> 8) % NNAMES];

		slot = (v >> 20) & 1 || !nfresh ? &old[(v >> 24) % nlive] : &fresh[(v >> 24) % nfresh];
		errno = 0;
		switch (v % 16) {
		case 0:
		case 1:
			n = 1 + (v >> 32) % 3000;
			if ((p = rszshm_alloc(&A.r, n)))
				touch(p, n, 0x11);
			else
				expected("alloc");
			if (p && nfresh < NNEW)
				fresh[nfresh++] = p;
			break;
		case 2:
			n = 16385 + (v >> 32) % 200000;
			if ((p = rszshm_alloc(&A.r, n)))
				touch(p, n, 0x22);
			else
				expected("alloc large");
			if (p && nfresh < NNEW)
				fresh[nfresh++] = p;
			break;
		case 3:
			n = 1 + (v >> 32) % 9000;
			if ((p = rszshm_alloc_aligned(&A.r, (size_t)1 << (4 + (v >> 48) % 13), n)))
				touch(p, n, 0x33);
			else
				expected("alloc aligned");
			break;
		case 4:
		case 5:
			if (*slot && rszshm_dealloc(&A.r, *slot) < 0)
				expected("free");
			*slot = NULL;
			break;
		case 6:
			n = 1 + (v >> 32) % 100000;
			if (!*slot)
				break;
			if ((p = rszshm_realloc(&A.r, *slot, n))) {
				touch(p, n, 0x66);
				*slot = p;
			} else {
				expected("realloc");
			}
			break;
		case 7:
			if (*slot && (n = rszshm_usable_size(&A.r, *slot)) != 0)
				touch(*slot, n, 0x77);
			else if (*slot)
				expected("usable_size");
			break;
		case 8:
			memset(buf, (int)v, sizeof(buf));
			if (rszshm_rec_put(&A.r, nm, 3, buf, (v >> 32) % 3000) < 0)
				expected("rec_put");
			break;
		case 9:
			if (*slot && rszshm_rec_add(&A.r, nm, 4, *slot, 16) < 0)
				expected("rec_add");
			break;
		case 10:
			if (rszshm_rec_remove(&A.r, nm) < 0)
				expected("rec_remove");
			break;
		case 11:
			if ((p = rszshm_rec_find(&A.r, nm, &info))) {
				in_a(p, info.size, "rec_find value");
				memcpy(buf, p, info.size < sizeof(buf) ? info.size : sizeof(buf));
			} else {
				expected("rec_find");
			}
			break;
		case 12:
			if (rszshm_rec_get(&A.r, nm, buf, sizeof(buf), &info) < 0)
				expected("rec_get");
			break;
		case 13:
			it = RSZSHM_REC_ITER_INIT;
			for (k = 0; k < 1000; k++) {
				int rc = rszshm_rec_next(&A.r, &it, &info);

				if (rc < 0)
					expected("rec_next");
				if (rc <= 0)
					break;
				in_a(info.ptr, info.size, "rec_next value");
			}
			break;
		case 14:
			if (rszshm_lock(&A.r) < 0)
				expected("lock");
			else if (rszshm_unlock(&A.r) < 0)
				die("unlock");
			break;
		default:
			if (rszshm_check(&A.r, NULL, 0) < 0)
				expected("check");
			break;
		}
		if (getenv("FUZZ_HEAP_TRACE"))
			fprintf(stderr, "op %u: %u errno %d\n", op, (unsigned)(v % 16), errno);
		locks_free();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	size_t i = 2, k;
	uint64_t seed;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 2)
		return 0;
	seed = data[0] | (uint64_t)data[1] << 8;
	memcpy(A.r.hdr, A.saved, A.len);
	while (i + 4 <= size) {
		uint64_t off = (data[i] | (uint64_t)data[i + 1] << 8 | (uint64_t)data[i + 2] << 16) % A.len;
		size_t n = data[i + 3];

		i += 4;
		for (k = 0; k < n && i + k < size && off + k < A.len; k++)
			if (!guarded(off + k))
				((unsigned char *)A.r.hdr)[off + k] = data[i + k];
		i += n;
	}
	run(seed);
	if (B.r.hdr->flen != B.len || memcmp(B.r.hdr, B.saved, B.len) != 0)
		die("region B was changed by calls on region A");
	return 0;
}
