// SPDX-License-Identifier: Apache-2.0
/*
 * bench-boost.cpp - rszshm-bench-boost: the peer users would otherwise pick,
 * Boost.Interprocess's managed_shared_memory, on rszshm-bench's workloads.
 *
 *   rszshm-bench-boost [--quick] [--runs N]
 *
 * Prints the same lines as rszshm-bench (WORKLOAD SYSTEM VALUE UNIT, medians
 * of N runs, bench.h) with SYSTEM "boost-ipc", each beside a reference
 * measured in the same run, and the ratio oriented so that > 1 favours
 * boost-ipc.  The references are the ones rszshm-bench uses, so the two
 * programs' ratios compare rszshm with Boost through a common yardstick:
 *
 *   alloc-free        POOL live blocks of 16..1024 bytes, each op frees a
 *                     random one and allocates a new one (segment.allocate /
 *                     deallocate); against glibc malloc/free.  The same sizes
 *                     and victims as bench-heap.c (same seed and generator).
 *   alloc-free-2proc  the same in 2 forked processes on one segment, against
 *                     one forked process alone on a segment of its own.
 *   insert            NRECS named 64-byte objects "rec-%08u" constructed in
 *                     the segment (segment.construct<Value>(name)), against
 *                     the inline-value open-addressing table of
 *                     bench-rec.c ("hashtable-inline", the same hash).
 *   lookup            NLOOKUPS lookups of random names (segment.find<Value>),
 *                     reading the first word; against the same table.
 *
 * The segment is a POSIX shared memory object named after this process,
 * removed before the program exits (also when a workload fails or the
 * program is interrupted).
 */
#include <boost/interprocess/managed_shared_memory.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <csignal>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

namespace bip = boost::interprocess;

namespace {

// bench-heap.c's workload.
constexpr unsigned POOL = 10000;
constexpr unsigned MIN_SIZE = 16, MAX_SIZE = 1024;
constexpr unsigned long OPS = 2000000, OPS_2PROC = 1000000;
constexpr uint64_t HEAP_SEED = 0x2545f4914f6cdd1dULL;
// bench-rec.c's workload.
constexpr unsigned NRECS = 100000, NLOOKUPS = 1000000;
constexpr unsigned NAME_LEN = 16, VALUE_SIZE = 64;
constexpr uint64_t REC_SEED = 0x9e3779b97f4a7c15ULL;
constexpr unsigned QUICK_DIV_HEAP = 10, QUICK_DIV_REC = 5;
constexpr std::size_t SEGMENT = 256u << 20;

std::string seg_name;
char seg_path[64];	// the same, for the signal handler

// Interrupted: remove the segment, then die of the signal.
extern "C" void on_signal(int sig)
{
	shm_unlink(seg_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

[[noreturn]] void die(const char *workload, const char *what)
{
	std::fflush(stdout);
	std::fprintf(stderr, "rszshm-bench-boost: %s: %s\n", workload, what);
	bip::shared_memory_object::remove(seg_name.c_str());
	std::exit(1);
}

uint64_t xorshift(uint64_t &s)
{
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 0x2545f4914f6cdd1dULL;
}

std::size_t rand_size(uint64_t &s)
{
	return MIN_SIZE + (std::size_t)(xorshift(s) % (MAX_SIZE - MIN_SIZE + 1));
}

/* The pool workload over any allocator: fill (untimed), run @ops, drain. */
template <class Alloc, class Free>
double pool_run(unsigned long ops, uint64_t seed, Alloc alloc, Free dealloc, int ready = -1,
		int go = -1)
{
	std::vector<void *> pool(POOL);
	uint64_t s = seed;
	char c = 1;

	for (auto &p : pool) {
		if (!(p = alloc(rand_size(s))))
			die("alloc-free", "out of memory");
		*(volatile uint64_t *)p = 1;
	}
	if (ready >= 0 && (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1))
		_exit(2);
	double t0 = bench_now();
	for (unsigned long i = 0; i < ops; i++) {
		unsigned k = (unsigned)(xorshift(s) % POOL);

		dealloc(pool[k]);
		if (!(pool[k] = alloc(rand_size(s))))
			die("alloc-free", "out of memory");
		*(volatile uint64_t *)pool[k] = i;
	}
	double t = bench_now() - t0;
	if (ready >= 0 && write(ready, &c, 1) != 1)
		_exit(2);
	for (auto p : pool)
		dealloc(p);
	return t;
}

double alloc_free_boost(unsigned long ops)
{
	bip::shared_memory_object::remove(seg_name.c_str());
	bip::managed_shared_memory seg(bip::create_only, seg_name.c_str(), SEGMENT);
	double t = pool_run(
		ops, HEAP_SEED, [&](std::size_t n) { return seg.allocate(n, std::nothrow); },
		[&](void *p) { seg.deallocate(p); });

	bip::shared_memory_object::remove(seg_name.c_str());
	return (double)ops / t;
}

double alloc_free_glibc(unsigned long ops)
{
	double t = pool_run(ops, HEAP_SEED, [](std::size_t n) { return std::malloc(n); },
			    [](void *p) { std::free(p); });

	return (double)ops / t;
}

/* @nproc forked workers on one segment, started together: aggregate ops/s. */
double alloc_free_procs(unsigned nproc, unsigned long ops)
{
	int ready[2], go[2];
	std::vector<pid_t> pids;
	bool bad = false;
	char c = 1;

	bip::shared_memory_object::remove(seg_name.c_str());
	bip::managed_shared_memory seg(bip::create_only, seg_name.c_str(), SEGMENT);
	if (pipe(ready) < 0 || pipe(go) < 0)
		die("alloc-free-2proc", "pipe");
	std::fflush(nullptr);
	for (unsigned i = 0; i < nproc; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("alloc-free-2proc", "fork");
		if (pid == 0) {
			close(ready[0]);
			close(go[1]);
			pool_run(
				ops, HEAP_SEED + i,
				[&](std::size_t n) { return seg.allocate(n, std::nothrow); },
				[&](void *p) { seg.deallocate(p); }, ready[1], go[0]);
			_exit(0);
		}
		pids.push_back(pid);
	}
	close(ready[1]);
	close(go[0]);
	for (unsigned i = 0; i < nproc; i++)
		bad |= read(ready[0], &c, 1) != 1;
	double t0 = bench_now();
	for (unsigned i = 0; i < nproc; i++)
		bad |= write(go[1], &c, 1) != 1;
	for (unsigned i = 0; i < nproc; i++)
		bad |= read(ready[0], &c, 1) != 1;
	double t = bench_now() - t0;
	close(ready[0]);
	close(go[1]);
	for (pid_t pid : pids) {
		int st = 0;

		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	bip::shared_memory_object::remove(seg_name.c_str());
	if (bad)
		die("alloc-free-2proc", "a worker failed");
	return (double)ops * nproc / t;
}

/* ------------------------------------------------ records: the table */

// bench-rec.c's (and lib/rec.h's) name hash, copied.
uint64_t mix(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

/* lib/rec.h's tail_word(), for a little-endian machine. */
inline uint64_t tail_word(const char *s, std::size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t lo, hi;

	if (n >= 4) {
		std::memcpy(&lo, s, 4);
		std::memcpy(&hi, s + n - 4, 4);
		return (uint64_t)lo | ((uint64_t)hi << ((n - 4) * 8));
	}
	return (uint64_t)u[0] | ((uint64_t)u[n / 2] << (n / 2 * 8)) |
	       ((uint64_t)u[n - 1] << ((n - 1) * 8));
}

uint64_t hash_name(uint64_t seed, const char *s, std::size_t n)
{
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), k;

	for (; n >= 8; s += 8, n -= 8) {
		std::memcpy(&k, s, 8);
		h = (h ^ k) * 0x9e3779b97f4a7c15ULL;
		h = (h << 31) | (h >> 33);
	}
	if (n)
		h = (h ^ tail_word(s, n)) * 0x9e3779b97f4a7c15ULL;
	return mix(h);
}

struct Value {
	uint64_t w[VALUE_SIZE / 8];
};

/* bench-rec.c's "hashtable-inline": linear probing, load <= 1/2, doubling. */
struct ITable {
	struct Slot {
		uint64_t hash;
		char name[NAME_LEN];
		Value val;
	};
	std::vector<Slot> s = std::vector<Slot>(16);
	std::size_t count = 0;
	uint64_t seed = mix(REC_SEED);

	void grow()
	{
		std::vector<Slot> old(s.size() * 2);

		old.swap(s);
		for (const Slot &o : old) {
			if (!o.name[0])
				continue;
			std::size_t j = o.hash & (s.size() - 1);

			while (s[j].name[0])
				j = (j + 1) & (s.size() - 1);
			s[j] = o;
		}
	}

	void put(const char *name, const Value &v)
	{
		std::size_t len = std::strlen(name), i;

		if ((count + 1) * 2 > s.size())
			grow();
		uint64_t h = hash_name(seed, name, len);
		for (i = h & (s.size() - 1); s[i].name[0]; i = (i + 1) & (s.size() - 1)) {
			if (s[i].hash == h && std::memcmp(s[i].name, name, len + 1) == 0) {
				s[i].val = v;
				return;
			}
		}
		s[i].hash = h;
		std::memcpy(s[i].name, name, len + 1);
		s[i].val = v;
		count++;
	}

	const Value *find(const char *name) const
	{
		std::size_t len = strnlen(name, NAME_LEN);
		uint64_t h = hash_name(seed, name, len);

		for (std::size_t i = h & (s.size() - 1); s[i].name[0]; i = (i + 1) & (s.size() - 1))
			if (s[i].hash == h && std::memcmp(s[i].name, name, len + 1) == 0)
				return &s[i].val;
		return nullptr;
	}
};

Value value_of(unsigned i)
{
	Value v;

	for (auto &w : v.w)
		w = i;
	return v;
}

/* Insert then look up, in Boost (@boost) or in the table: ops/s of each. */
void records(bool boost, const std::vector<std::string> &names, unsigned nlook, double &ins,
	     double &look)
{
	unsigned n = (unsigned)names.size();
	uint64_t s = REC_SEED, bad = 0;

	if (boost) {
		bip::shared_memory_object::remove(seg_name.c_str());
		bip::managed_shared_memory seg(bip::create_only, seg_name.c_str(), SEGMENT);
		double t0 = bench_now();

		for (unsigned i = 0; i < n; i++)
			if (!seg.construct<Value>(names[i].c_str(), std::nothrow)(value_of(i)))
				die("insert", "construct failed");
		ins = n / (bench_now() - t0);
		t0 = bench_now();
		for (unsigned k = 0; k < nlook; k++) {
			unsigned i = (unsigned)(xorshift(s) % n);
			Value *v = seg.find<Value>(names[i].c_str()).first;

			if (!v)
				die("lookup", "find failed");
			bad += v->w[0] != i;
		}
		look = nlook / (bench_now() - t0);
		bip::shared_memory_object::remove(seg_name.c_str());
	} else {
		ITable t;
		double t0 = bench_now();

		for (unsigned i = 0; i < n; i++)
			t.put(names[i].c_str(), value_of(i));
		ins = n / (bench_now() - t0);
		t0 = bench_now();
		for (unsigned k = 0; k < nlook; k++) {
			unsigned i = (unsigned)(xorshift(s) % n);
			const Value *v = t.find(names[i].c_str());

			if (!v)
				die("lookup", "table find failed");
			bad += v->w[0] != i;
		}
		look = nlook / (bench_now() - t0);
	}
	if (bad)
		die("lookup", "a wrong value");
}

void usage(FILE *f)
{
	std::fprintf(f, "usage: rszshm-bench-boost [--quick] [--runs N]\n"
			"Output: one line per figure, tab-separated: WORKLOAD SYSTEM VALUE UNIT.\n");
}

} // namespace

int main(int argc, char **argv)
{
	bool quick = false;
	unsigned runs = 0;

	for (int i = 1; i < argc; i++) {
		if (std::strcmp(argv[i], "--quick") == 0) {
			quick = true;
		} else if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = std::strtoul(argv[++i], &end, 10);

			if (*end || v < 1 || v > 1000) {
				std::fprintf(stderr, "rszshm-bench-boost: --runs %s: want 1 to 1000\n",
					     argv[i]);
				return 2;
			}
			runs = (unsigned)v;
		} else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!runs)
		runs = quick ? 3 : 5;
	seg_name = "rszshm-bench-boost-" + std::to_string(getpid());
	std::snprintf(seg_path, sizeof(seg_path), "/%s", seg_name.c_str());
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	unsigned long ops = quick ? OPS / QUICK_DIV_HEAP : OPS;
	unsigned long ops2 = quick ? OPS_2PROC / QUICK_DIV_HEAP : OPS_2PROC;
	unsigned nrecs = quick ? NRECS / QUICK_DIV_REC : NRECS;
	unsigned nlook = quick ? NLOOKUPS / QUICK_DIV_REC : NLOOKUPS;
	std::vector<double> a(runs), b(runs), c(runs), d(runs);

	try {
		for (unsigned r = 0; r < runs; r++) {
			a[r] = alloc_free_boost(ops);
			b[r] = alloc_free_glibc(ops);
		}
		double ma = bench_median(a.data(), runs), mb = bench_median(b.data(), runs);
		bench_print("alloc-free", "boost-ipc", ma, "ops/s");
		bench_print("alloc-free", "glibc", mb, "ops/s");
		bench_ratio("alloc-free", ma, mb, true, "x-glibc");

		for (unsigned r = 0; r < runs; r++) {
			a[r] = alloc_free_procs(2, ops2);
			b[r] = alloc_free_procs(1, ops2);
		}
		ma = bench_median(a.data(), runs);
		mb = bench_median(b.data(), runs);
		bench_print("alloc-free-2proc", "boost-ipc", ma, "ops/s");
		bench_print("alloc-free-2proc", "boost-ipc-1proc", mb, "ops/s");
		bench_ratio("alloc-free-2proc", ma, mb, true, "x-1proc");

		std::vector<std::string> names(nrecs);
		char buf[NAME_LEN];

		for (unsigned i = 0; i < nrecs; i++) {
			std::snprintf(buf, sizeof(buf), "rec-%08u", i);
			names[i] = buf;
		}
		for (unsigned r = 0; r < runs; r++) {
			// Alternate which goes first.
			records(r % 2 == 0, names, nlook, a[r], c[r]);
			records(r % 2 != 0, names, nlook, b[r], d[r]);
			if (r % 2 != 0) {
				std::swap(a[r], b[r]);
				std::swap(c[r], d[r]);
			}
		}
		ma = bench_median(a.data(), runs);
		mb = bench_median(b.data(), runs);
		bench_print("insert", "boost-ipc", ma, "ops/s");
		bench_print("insert", "hashtable-inline", mb, "ops/s");
		bench_ratio("insert", ma, mb, true, "x-hashtable-inline");
		ma = bench_median(c.data(), runs);
		mb = bench_median(d.data(), runs);
		bench_print("lookup", "boost-ipc", ma, "ops/s");
		bench_print("lookup", "hashtable-inline", mb, "ops/s");
		bench_ratio("lookup", ma, mb, true, "x-hashtable-inline");
	} catch (const std::exception &e) {
		die("boost", e.what());
	}
	bip::shared_memory_object::remove(seg_name.c_str());
	return 0;
}
