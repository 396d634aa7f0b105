/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-rec.c - rszshm-bench's record workloads.
 *
 *   insert         NRECS records named rec-%08u with 64-byte values put into
 *                  a fresh heap region (rszshm_rec_put), ops/s; against the
 *                  same inserts into two in-process hash tables.
 *   lookup         then NLOOKUPS lookups of random existing names
 *                  (rszshm_rec_find, reading the value's first word), ops/s;
 *                  against the same lookups in the in-process tables.
 *   lookup-scale   the lookups in 1, 2, 4 and 8 forked processes at once on
 *                  one region of NRECS records (and the machine's cores,
 *                  said): aggregate ops/s, each beside one process.
 *   attach-lookup  a freshly exec'd process attaches a region of NRECS
 *                  records by file name and looks one up ("--child
 *                  attach-lookup": rszshm_at, rszshm_rec_find, check the
 *                  value, rszshm_dt), microseconds for the whole
 *                  fork+exec+attach+lookup+exit; against the floor, an
 *                  exec'd process that opens, fstats and mmaps the same file
 *                  and reads one word ("--child mmap-read").
 *                  "attach-lookup-call" times the same two bodies as calls in
 *                  this process, without the fork and exec that dominate.
 *
 * The in-process reference is an open-addressing table (linear probing,
 * load at most 1/2, doubling) of { hash, name, value } slots in malloc'd
 * memory, the values malloc'd 64-byte copies.  It hashes with a copy of
 * lib/rec.h's name hash, so the figures compare the two indexes, not two
 * hash functions.  Its slots hold names up to 15 bytes inline (all this
 * workload needs), which favours it: no pointer to follow per probe.
 * "hashtable-inline" is the same table with the 64-byte value inline in the
 * slot instead of malloc'd: what a user storing fixed-size values writes,
 * with one cache miss per hit where the first table has two.
 * "rszshm-layout" (lookup only) is rszshm's own layout in malloc'd memory
 * with none of the library's checks, seqlock or fault guard: 16-byte
 * { hash, address } slots leading to record-shaped blocks (head, name,
 * value) carved in order, as the heap carves blocks of one class.  What a
 * hit costs with a record kept apart from its slot, whatever the code.
 *
 * Both systems see the same names, values and lookup sequence (a
 * fixed-seed xorshift).  Runs alternate which system goes first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "rszshm.h"

#define NRECS 100000u
#define NLOOKUPS 1000000u
#define QUICK_DIV 5u
#define VALUE_SIZE 64u
#define NAME_LEN 16u
#define ATTACH_ITERS 200u
#define ATTACH_ITERS_QUICK 40u
#define SEED 0x9e3779b97f4a7c15ULL

static void die(const char *workload, const char *what)
{
	fflush(stdout);
	fprintf(stderr, "rszshm-bench: %s: %s: %s\n", workload, what, strerror(errno));
	exit(1);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* ------------------------------------------- the in-process reference */

/* lib/rec.h's hash_name(), mix() and tail_word(), copied. */
static uint64_t mix(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

/* lib/rec.h's tail_word(), for a little-endian machine. */
static inline uint64_t tail_word(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t lo, hi;

	if (n >= 4) {
		memcpy(&lo, s, 4);
		memcpy(&hi, s + n - 4, 4);
		return (uint64_t)lo | ((uint64_t)hi << ((n - 4) * 8));
	}
	return (uint64_t)u[0] | ((uint64_t)u[n / 2] << (n / 2 * 8)) |
	       ((uint64_t)u[n - 1] << ((n - 1) * 8));
}

static uint64_t hash_name(uint64_t seed, const char *s, size_t n)
{
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), k;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&k, s, 8);
		h = (h ^ k) * 0x9e3779b97f4a7c15ULL;
		h = (h << 31) | (h >> 33);
	}
	if (n)
		h = (h ^ tail_word(s, n)) * 0x9e3779b97f4a7c15ULL;
	return mix(h);
}

struct slot {
	uint64_t hash;
	char name[NAME_LEN];
	void *val;		/* NULL: empty */
};

struct table {
	struct slot *s;
	size_t n, count;
	uint64_t seed;
};

static void tab_init(struct table *t)
{
	t->n = 16;
	t->count = 0;
	t->seed = mix(SEED);
	if (!(t->s = calloc(t->n, sizeof(*t->s))))
		die("insert", "calloc");
}

static void tab_grow(struct table *t)
{
	struct slot *old = t->s;
	size_t n = t->n;

	t->n *= 2;
	if (!(t->s = calloc(t->n, sizeof(*t->s))))
		die("insert", "calloc");
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (!old[i].val)
			continue;
		for (j = old[i].hash & (t->n - 1); t->s[j].val; j = (j + 1) & (t->n - 1))
			;
		t->s[j] = old[i];
	}
	free(old);
}

/* Store a copy of @data under @name, replacing an older one. */
static void tab_put(void *tv, const char *name, const void *data, size_t size)
{
	struct table *t = tv;
	size_t len = strlen(name), i;
	uint64_t h;
	void *copy = NULL;	/* clang cannot see that die() does not return */

	if (len >= NAME_LEN || !(copy = malloc(size)))
		die("insert", "tab_put");
	memcpy(copy, data, size);
	if ((t->count + 1) * 2 > t->n)
		tab_grow(t);
	h = hash_name(t->seed, name, len);
	for (i = h & (t->n - 1); t->s[i].val; i = (i + 1) & (t->n - 1)) {
		if (t->s[i].hash == h && memcmp(t->s[i].name, name, len + 1) == 0) {
			free(t->s[i].val);
			t->s[i].val = copy;
			return;
		}
	}
	t->s[i].hash = h;
	memcpy(t->s[i].name, name, len + 1);
	t->s[i].val = copy;
	t->count++;
}

static const void *tab_find(const void *tv, const char *name)
{
	const struct table *t = tv;
	size_t len = strnlen(name, NAME_LEN), i;
	uint64_t h = hash_name(t->seed, name, len);

	for (i = h & (t->n - 1); t->s[i].val; i = (i + 1) & (t->n - 1))
		if (t->s[i].hash == h && memcmp(t->s[i].name, name, len + 1) == 0)
			return t->s[i].val;
	return NULL;
}

static void tab_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->s[i].val);
	free(t->s);
}

/*
 * The table a user would write for fixed-size values: the same probing and
 * load, with the 64-byte value inline in the slot, so a hit costs one miss
 * (the slot) instead of two (slot, then value).  An empty name marks an
 * empty slot (names are never empty).
 */
struct islot {
	uint64_t hash;
	char name[NAME_LEN];
	uint64_t val[VALUE_SIZE / 8];
};

struct itable {
	struct islot *s;
	size_t n, count;
	uint64_t seed;
};

static void itab_init(struct itable *t)
{
	t->n = 16;
	t->count = 0;
	t->seed = mix(SEED);
	if (!(t->s = calloc(t->n, sizeof(*t->s))))
		die("insert", "calloc");
}

static void itab_grow(struct itable *t)
{
	struct islot *old = t->s;
	size_t n = t->n;

	t->n *= 2;
	if (!(t->s = calloc(t->n, sizeof(*t->s))))
		die("insert", "calloc");
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (!old[i].name[0])
			continue;
		for (j = old[i].hash & (t->n - 1); t->s[j].name[0]; j = (j + 1) & (t->n - 1))
			;
		t->s[j] = old[i];
	}
	free(old);
}

static void itab_put(void *tv, const char *name, const void *data, size_t size)
{
	struct itable *t = tv;
	size_t len = strlen(name), i;
	uint64_t h;

	if (len >= NAME_LEN || size != VALUE_SIZE)
		die("insert", "itab_put");
	if ((t->count + 1) * 2 > t->n)
		itab_grow(t);
	h = hash_name(t->seed, name, len);
	for (i = h & (t->n - 1); t->s[i].name[0]; i = (i + 1) & (t->n - 1)) {
		if (t->s[i].hash == h && memcmp(t->s[i].name, name, len + 1) == 0) {
			memcpy(t->s[i].val, data, size);
			return;
		}
	}
	t->s[i].hash = h;
	memcpy(t->s[i].name, name, len + 1);
	memcpy(t->s[i].val, data, size);
	t->count++;
}

static const void *itab_find(const void *tv, const char *name)
{
	const struct itable *t = tv;
	size_t len = strnlen(name, NAME_LEN), i;
	uint64_t h = hash_name(t->seed, name, len);

	for (i = h & (t->n - 1); t->s[i].name[0]; i = (i + 1) & (t->n - 1))
		if (t->s[i].hash == h && memcmp(t->s[i].name, name, len + 1) == 0)
			return t->s[i].val;
	return NULL;
}

/*
 * rszshm's own layout, with none of its checks: 16-byte slots { hash,
 * address } (the same probing and load) leading to blocks laid out as
 * lib/rec.h's records (an 80-byte head with the value's address, the name,
 * the 64-byte value after it, 16-aligned), carved one after another from
 * one array, as the heap's blocks of one size class are.  A hit reads the
 * slot, then the block: what any index that keeps a record apart from its
 * slot pays, the floor of rszshm's lookup on a machine.
 */
struct lslot {
	uint64_t hash;
	const struct lblk *blk;	/* NULL: empty */
};

struct lblk {
	uint64_t magic;
	uint8_t namelen, flags, pad_[2];
	uint32_t type;
	const uint64_t *val;
	uint64_t size, gen, stamp, hash, id, next, prev;
	char name[];
};

#define LBLK_OF(namelen) ((sizeof(struct lblk) + (namelen) + 1 + 15) & ~(size_t)15)

struct ltable {
	struct lslot *s;
	size_t n, count;
	uint64_t seed;
	unsigned char *blocks;	/* room for every block, carved in order */
	size_t used, room;
};

static void ltab_init(struct ltable *t, unsigned nrecs)
{
	t->n = 16;
	t->count = 0;
	t->seed = mix(SEED);
	t->used = 0;
	t->room = (size_t)nrecs * (LBLK_OF(NAME_LEN - 1) + VALUE_SIZE);
	if (!(t->s = calloc(t->n, sizeof(*t->s))) || !(t->blocks = malloc(t->room)))
		die("insert", "calloc");
}

static void ltab_grow(struct ltable *t)
{
	struct lslot *old = t->s;
	size_t n = t->n;

	t->n *= 2;
	if (!(t->s = calloc(t->n, sizeof(*t->s))))
		die("insert", "calloc");
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (!old[i].blk)
			continue;
		for (j = old[i].hash & (t->n - 1); t->s[j].blk; j = (j + 1) & (t->n - 1))
			;
		t->s[j] = old[i];
	}
	free(old);
}

/* Insert @name (new: the workload's names are distinct) with a copy of @data. */
static void ltab_put(void *tv, const char *name, const void *data, size_t size)
{
	struct ltable *t = tv;
	size_t len = strlen(name), i, bs = LBLK_OF(len) + VALUE_SIZE;
	struct lblk *b;
	uint64_t h;

	if (len >= NAME_LEN || size != VALUE_SIZE || t->used + bs > t->room)
		die("insert", "ltab_put");
	if ((t->count + 1) * 2 > t->n)
		ltab_grow(t);
	b = (struct lblk *)(void *)(t->blocks + t->used);
	t->used += bs;
	h = hash_name(t->seed, name, len);
	memset(b, 0, sizeof(*b));
	b->magic = 1;
	b->namelen = (uint8_t)len;
	b->hash = h;
	b->size = size;
	memcpy(b->name, name, len + 1);
	b->val = (const uint64_t *)(void *)((unsigned char *)b + LBLK_OF(len));
	memcpy((void *)(uintptr_t)b->val, data, size);
	for (i = h & (t->n - 1); t->s[i].blk; i = (i + 1) & (t->n - 1))
		;
	t->s[i].hash = h;
	t->s[i].blk = b;
	t->count++;
}

static const void *ltab_find(const void *tv, const char *name)
{
	const struct ltable *t = tv;
	size_t len = strnlen(name, NAME_LEN), i;
	uint64_t h = hash_name(t->seed, name, len);

	for (i = h & (t->n - 1); t->s[i].blk; i = (i + 1) & (t->n - 1)) {
		const struct lblk *b = t->s[i].blk;

		if (t->s[i].hash == h && b->namelen == len && memcmp(b->name, name, len) == 0)
			return b->val;
	}
	return NULL;
}

static void ltab_free(struct ltable *t)
{
	free(t->s);
	free(t->blocks);
}

/* ------------------------------------------------- insert and lookup */

struct names {
	char (*name)[NAME_LEN];
	unsigned n;
};

static void value_of(unsigned i, uint64_t v[VALUE_SIZE / 8])
{
	for (unsigned w = 0; w < VALUE_SIZE / 8; w++)
		v[w] = i;
}

static void make_region(const struct bench_opts *o, struct rszshm *r, const char *workload)
{
	char tmpl[PATH_MAX];

	bench_fname(o, tmpl, sizeof(tmpl));
	if (strlen(tmpl) >= RSZSHM_PATH_MAX) {
		errno = ENAMETOOLONG;
		die(workload, tmpl);
	}
	if (!rszshm_mk_flags(r, 1 * MiB, tmpl, RSZSHM_DFLT_SCAN, RSZSHM_HEAP))
		die(workload, "rszshm_mk_flags");
}

static void drop_region(struct rszshm *r, const char *workload)
{
	if (rszshm_dt(r) == -1)
		die(workload, "rszshm_dt");
	if (rszshm_rm(r) == -1)
		die(workload, r->fname);
}

/*
 * The timed loops, one for every index.  Each is inlined with a constant
 * @put or @find, so every index gets a loop of its own with its calls
 * inlined, as if written out for it.
 */
typedef void put_fn(void *t, const char *name, const void *data, size_t size);
typedef const void *find_fn(const void *t, const char *name);

static void rs_put(void *r, const char *name, const void *data, size_t size)
{
	if (rszshm_rec_put(r, name, 0, data, size) == -1)
		die("insert", "rszshm_rec_put");
}

static const void *rs_find(const void *r, const char *name)
{
	return rszshm_rec_find((struct rszshm *)(uintptr_t)r, name, NULL);
}

/* Seconds to put every name into @t. */
static inline __attribute__((always_inline)) double insert_all(void *t, put_fn *put,
								const struct names *nm)
{
	uint64_t v[VALUE_SIZE / 8];
	double t0 = bench_now();

	for (unsigned i = 0; i < nm->n; i++) {
		value_of(i, v);
		put(t, nm->name[i], v, sizeof(v));
	}
	return bench_now() - t0;
}

/* Seconds for @count lookups of random names in @t with @find (called
 * @what in errors); each value's word is checked. */
static inline __attribute__((always_inline)) double lookup_all(const void *t, find_fn *find,
								const char *what,
								const struct names *nm,
								unsigned count)
{
	uint64_t s = SEED, bad = 0;
	double t0 = bench_now();
	char msg[64];

	for (unsigned k = 0; k < count; k++) {
		unsigned i = (unsigned)(next_rand(&s) % nm->n);
		const uint64_t *v = find(t, nm->name[i]);

		if (!v)
			die("lookup", what);
		bad += *v != i;
	}
	t0 = bench_now() - t0;
	if (bad) {
		snprintf(msg, sizeof(msg), "%s gave a wrong value", what);
		errno = EBADMSG;
		die("lookup", msg);
	}
	return t0;
}

/* lookup-scale: each process looks up @count random names, its own sequence. */
struct scale {
	struct rszshm *r;
	const struct names *nm;
	unsigned count;
};

static int scale_body(void *arg, unsigned i)
{
	const struct scale *w = arg;
	uint64_t s = SEED + i, bad = 0;

	for (unsigned k = 0; k < w->count; k++) {
		unsigned n = (unsigned)(next_rand(&s) % w->nm->n);
		const uint64_t *v = rszshm_rec_find(w->r, w->nm->name[n], NULL);

		if (!v)
			return -1;
		bad += *v != n;
	}
	return bad ? -1 : 0;
}

static void bench_lookup_scale(const struct bench_opts *o, const struct names *nm, unsigned count)
{
	static const struct bench_proc w = { NULL, scale_body, NULL };
	double rate[4], *v;
	struct rszshm r;
	struct scale sc;

	if (!(v = calloc(o->runs, sizeof(*v))))
		die("lookup-scale", "calloc");
	make_region(o, &r, "lookup-scale");
	insert_all(&r, rs_put, nm);
	sc = (struct scale){ &r, nm, count };
	for (unsigned k = 0; k < 4; k++) {
		for (unsigned run = 0; run < o->runs; run++) {
			double t = bench_procs(1u << k, &w, &sc);

			if (t < 0) {
				errno = EBADMSG;
				die("lookup-scale", "a process failed");
			}
			v[run] = (double)count * (1u << k) / t;
		}
		rate[k] = bench_median(v, o->runs);
	}
	bench_scaling("lookup-scale", rate, 4);
	drop_region(&r, "lookup-scale");
	free(v);
}

static void bench_insert_lookup(const struct bench_opts *o, bool insert, bool lookup)
{
	unsigned nrecs = o->quick ? NRECS / QUICK_DIV : NRECS;
	unsigned nlook = o->quick ? NLOOKUPS / QUICK_DIV : NLOOKUPS;
	enum { RSZSHM, TABLE, INLINE, LAYOUT, NSYS };
	static const char *const sys[NSYS] = { "rszshm", "hashtable", "hashtable-inline",
					       "rszshm-layout" };
	static const char *const unit[NSYS] = { NULL, "x-hashtable", "x-hashtable-inline",
						"x-rszshm-layout" };
	double *ins[NSYS], *look[NSYS], mi[NSYS], ml[NSYS];
	struct names nm;

	nm.n = nrecs;
	if (!(nm.name = calloc(nrecs, sizeof(*nm.name))))
		die("insert", "calloc");
	for (unsigned i = 0; i < nrecs; i++)
		snprintf(nm.name[i], NAME_LEN, "rec-%08u", i);
	for (unsigned k = 0; k < NSYS; k++)
		if (!(ins[k] = calloc(o->runs, sizeof(double))) ||
		    !(look[k] = calloc(o->runs, sizeof(double))))
			die("insert", "calloc");

	for (unsigned run = 0; run < o->runs; run++) {
		/* A rotating order, so that none always goes first. */
		for (unsigned k = 0; k < NSYS; k++) {
			unsigned s = (run + k) % NSYS;

			if (s == RSZSHM) {
				struct rszshm r;

				make_region(o, &r, "insert");
				ins[s][run] = nrecs / insert_all(&r, rs_put, &nm);
				look[s][run] = nlook / lookup_all(&r, rs_find, "rszshm_rec_find", &nm, nlook);
				drop_region(&r, "insert");
			} else if (s == TABLE) {
				struct table t;

				tab_init(&t);
				ins[s][run] = nrecs / insert_all(&t, tab_put, &nm);
				look[s][run] = nlook / lookup_all(&t, tab_find, "tab_find", &nm, nlook);
				tab_free(&t);
			} else if (s == INLINE) {
				struct itable t;

				itab_init(&t);
				ins[s][run] = nrecs / insert_all(&t, itab_put, &nm);
				look[s][run] = nlook / lookup_all(&t, itab_find, "itab_find", &nm, nlook);
				free(t.s);
			} else {
				struct ltable t;

				ltab_init(&t, nrecs);
				ins[s][run] = nrecs / insert_all(&t, ltab_put, &nm);
				look[s][run] = nlook / lookup_all(&t, ltab_find, "ltab_find", &nm, nlook);
				ltab_free(&t);
			}
		}
	}
	for (unsigned k = 0; k < NSYS; k++) {
		mi[k] = bench_median(ins[k], o->runs);
		ml[k] = bench_median(look[k], o->runs);
	}
	/* The layout's inserts skip what a record's insert does (a heap
	 * block, the lock, the redo record): a floor for lookups only. */
	for (unsigned k = 0; k < LAYOUT; k++) {
		if (insert)
			bench_print("insert", sys[k], mi[k], "ops/s");
	}
	for (unsigned k = 1; insert && k < LAYOUT; k++)
		bench_ratio("insert", mi[RSZSHM], mi[k], true, unit[k]);
	for (unsigned k = 0; k < NSYS; k++) {
		if (lookup)
			bench_print("lookup", sys[k], ml[k], "ops/s");
	}
	for (unsigned k = 1; lookup && k < NSYS; k++)
		bench_ratio("lookup", ml[RSZSHM], ml[k], true, unit[k]);
	for (unsigned k = 0; k < NSYS; k++) {
		free(ins[k]);
		free(look[k]);
	}
	free(nm.name);
}

/* ------------------------------------------------------ attach-lookup */

/* --child attach-lookup FILE NAME INDEX: attach, find, check the value. */
static int child_attach_lookup(const char *fname, const char *name, const char *index)
{
	const uint64_t *v;
	struct rszshm r;
	int rc;

	if (!rszshm_at(&r, fname)) {
		fprintf(stderr, "rszshm-bench: %s: rszshm_at: %s\n", fname, strerror(errno));
		return 2;
	}
	if (!(v = rszshm_rec_find(&r, name, NULL))) {
		fprintf(stderr, "rszshm-bench: %s: find %s: %s\n", fname, name, strerror(errno));
		return 3;
	}
	rc = *v == strtoull(index, NULL, 10) ? 0 : 4;
	if (rszshm_dt(&r) == -1)
		return 2;
	return rc;
}

/* --child mmap-read FILE: the floor: open, fstat, mmap, read one word. */
static int child_mmap_read(const char *fname)
{
	struct stat st;
	uint64_t w;
	void *m;
	int fd;

	if ((fd = open(fname, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		fprintf(stderr, "rszshm-bench: %s: %s\n", fname, strerror(errno));
		return 2;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 2;
	w = *(volatile const uint64_t *)m;
	munmap(m, (size_t)st.st_size);
	return w == RSZSHM_MAGIC ? 0 : 3;
}

static void bench_attach_lookup(const struct bench_opts *o)
{
	unsigned nrecs = o->quick ? NRECS / QUICK_DIV : NRECS;
	unsigned iters = o->quick ? ATTACH_ITERS_QUICK : ATTACH_ITERS;
	uint64_t val[VALUE_SIZE / 8];
	char name[NAME_LEN], index[24], fname[RSZSHM_PATH_MAX];
	unsigned calls = o->quick ? 100 : 300;
	double *v[2], *call[2], m[2];
	struct rszshm r;

	make_region(o, &r, "attach-lookup");
	for (unsigned i = 0; i < nrecs; i++) {
		snprintf(name, sizeof(name), "rec-%08u", i);
		value_of(i, val);
		if (rszshm_rec_put(&r, name, 0, val, sizeof(val)) == -1)
			die("attach-lookup", "rszshm_rec_put");
	}
	strcpy(fname, r.fname);
	/* Not kept mapped here: every fork below costs the same. */
	if (rszshm_dt(&r) == -1)
		die("attach-lookup", "rszshm_dt");
	snprintf(name, sizeof(name), "rec-%08u", nrecs / 2 + 17);
	snprintf(index, sizeof(index), "%u", nrecs / 2 + 17);

	char *args[2][6] = {
		{ "--child", "attach-lookup", fname, name, index, NULL },
		{ "--child", "mmap-read", fname, NULL, NULL, NULL },
	};

	for (unsigned k = 0; k < 2; k++)
		if (!(v[k] = calloc(o->runs, sizeof(double))) ||
		    !(call[k] = calloc(o->runs, sizeof(double))))
			die("attach-lookup", "calloc");
	for (unsigned run = 0; run < o->runs; run++) {
		double sum[2] = { 0, 0 };

		/* Interleaved, alternating first, so drift hits both. */
		for (unsigned i = 0; i < iters; i++) {
			for (unsigned k = 0; k < 2; k++) {
				unsigned s = (i + k) % 2;
				double t0 = bench_now();
				int st = bench_exec(o, args[s]);

				sum[s] += bench_now() - t0;
				if (st != 0) {
					fflush(stdout);
					fprintf(stderr, "rszshm-bench: attach-lookup: %s: child %s"
						" exited with status %d\n", fname, args[s][1], st);
					exit(1);
				}
			}
		}
		for (unsigned k = 0; k < 2; k++)
			v[k][run] = sum[k] / iters * 1e6;
		for (unsigned k = 0; k < 2; k++) {
			double t0 = bench_now();

			for (unsigned i = 0; i < calls; i++)
				if ((k == 0 ? child_attach_lookup(fname, name, index)
					    : child_mmap_read(fname)) != 0) {
					errno = EIO;
					die("attach-lookup-call", fname);
				}
			call[k][run] = (bench_now() - t0) / calls * 1e6;
		}
	}
	if (rszshm_rm(&r) == -1)
		die("attach-lookup", fname);
	for (unsigned k = 0; k < 2; k++)
		m[k] = bench_median(v[k], o->runs);
	bench_print("attach-lookup", "rszshm", m[0], "us");
	bench_print("attach-lookup", "mmap-read", m[1], "us");
	bench_ratio("attach-lookup", m[0], m[1], false, "x-mmap-read");
	for (unsigned k = 0; k < 2; k++)
		m[k] = bench_median(call[k], o->runs);
	bench_print("attach-lookup-call", "rszshm", m[0], "us");
	bench_print("attach-lookup-call", "mmap-read", m[1], "us");
	bench_ratio("attach-lookup-call", m[0], m[1], false, "x-mmap-read");
	for (unsigned k = 0; k < 2; k++) {
		free(v[k]);
		free(call[k]);
	}
}

/* ------------------------------------------------------------ entries */

void bench_rec(const struct bench_opts *o)
{
	bool insert = bench_want(o, "rec", "insert"), lookup = bench_want(o, "rec", "lookup");

	if (insert || lookup)
		bench_insert_lookup(o, insert, lookup);
	if (bench_want(o, "rec", "lookup-scale")) {
		unsigned nrecs = o->quick ? NRECS / QUICK_DIV : NRECS;
		struct names nm = { calloc(nrecs, sizeof(*nm.name)), nrecs };

		if (!nm.name)
			die("lookup-scale", "calloc");
		for (unsigned i = 0; i < nrecs; i++)
			snprintf(nm.name[i], NAME_LEN, "rec-%08u", i);
		bench_lookup_scale(o, &nm, o->quick ? NLOOKUPS / QUICK_DIV : NLOOKUPS);
		free(nm.name);
	}
	if (bench_want(o, "rec", "attach-lookup"))
		bench_attach_lookup(o);
}

int bench_rec_child(int argc, char **argv)
{
	if (strcmp(argv[0], "attach-lookup") == 0 && argc == 4)
		return child_attach_lookup(argv[1], argv[2], argv[3]);
	if (strcmp(argv[0], "mmap-read") == 0 && argc == 2)
		return child_mmap_read(argv[1]);
	return -1;
}
