// SPDX-License-Identifier: Apache-2.0
/*
 * test-cxx.cpp - rszshm.hpp across processes: standard containers built by
 * one process and walked by a freshly exec'd one (this program, run again
 * with a role as argv[1]), find_or_construct raced by 8 processes, kill -9
 * inside a constructor, bytes given back, bad_alloc, the errnos.  Returns
 * nonzero when a check fails; every region it makes is removed on every path.
 */
#include <rszshm.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

int failures;

#define CHECK(c) do { if (!(c)) { std::fprintf(stderr, "%s:%d: check failed: %s\n", \
	__FILE__, __LINE__, #c); failures++; } } while (0)

using str = std::basic_string<char, std::char_traits<char>, rsz::allocator<char>>;
using vec = std::vector<int, rsz::allocator<int>>;
using table = std::map<str, vec, std::less<str>,
	std::scoped_allocator_adaptor<rsz::allocator<std::pair<const str, vec>>>>;
using ivec = std::vector<long, rsz::allocator<long>>;

/* A fresh heap region under a mkdtemp name; removed by the destructor. */
struct scratch {
	rsz::region r;
	explicit scratch(size_t span = 256 << 20)
		: r(nullptr, rsz::options{}.excl().heap().len(64 << 10).span(span)) {}
	~scratch()
	{
		if (r) {
			struct rszshm *h = r.get();
			rszshm_unlink(h);
			rszshm_rmdir(h);
		}
	}
};

const char *self_exe;

/* Run this program with a role; returns its exit status (or -1). */
int run_self(const char *role, const char *fname)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl(self_exe, self_exe, role, fname, static_cast<char *>(nullptr));
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

str key(rsz::region &r, int i)
{
	char b[32];
	std::snprintf(b, sizeof(b), "key-%05d", i);
	return str(b, r.get_allocator<char>());
}

/* Roles of the exec'd processes. */
int role_consumer(const char *fname)
{
	rsz::region r(fname);
	table *t = r.find<table>("table");
	if (!t || t->size() != 1000)
		return 2;
	int i = 0;
	for (const auto &kv : *t) {
		if (kv.first != key(r, i) || kv.second.size() != static_cast<size_t>(i % 50))
			return 3;
		for (int j = 0; j < i % 50; j++)
			if (kv.second[static_cast<size_t>(j)] != i * 100 + j)
				return 4;
		i++;
	}
	return 0;
}

int role_modifier(const char *fname)
{
	rsz::region r(fname);
	table *t = r.find<table>("table");
	if (!t)
		return 2;
	rsz::lock_guard g(r);
	(*t)[key(r, 7)].push_back(-7);
	t->emplace(key(r, 5000), vec(r.get_allocator<int>()));
	return 0;
}

void test_producer_consumer()
{
	scratch s;
	rsz::region &r = s.r;
	table *t = r.construct<table>("table", r.get_allocator<int>());
	for (int i = 0; i < 1000; i++) {
		vec &v = (*t)[key(r, i)];
		CHECK(v.get_allocator() == r.get_allocator<int>());
		for (int j = 0; j < i % 50; j++)
			v.push_back(i * 100 + j);
	}
	CHECK(run_self("consumer", r.name()) == 0);
	CHECK(run_self("modifier", r.name()) == 0);
	{
		rsz::lock_guard g(r);
		CHECK(t->size() == 1001);
		CHECK(t->count(key(r, 5000)) == 1);
		const vec &v = t->at(key(r, 7));
		CHECK(v.size() == 8 && v.back() == -7);
	}
	CHECK(r.destroy<table>("table"));
	CHECK(r.find<table>("table") == nullptr);
}

void test_vector_grows_with_reader()
{
	const long n = 1000000;
	scratch s;
	rsz::region &r = s.r;
	size_t len0 = r.stats().region_bytes;
	ivec *v = r.construct<ivec>("v", r.get_allocator<long>());
	int go[2];
	CHECK(pipe(go) == 0);
	pid_t reader = fork();
	if (reader == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(9);
		size_t seen = 0, looks = 0;
		try {
		while (seen < static_cast<size_t>(n)) {
			rsz::lock_guard g(r);
			size_t sz = v->size();
			if (sz < seen)
				_exit(2);
			for (size_t i = seen; i < sz; i++)
				if ((*v)[i] != static_cast<long>(i))
					_exit(3);
			seen = sz;
			looks++;
		}
		} catch (...) {
			_exit(5);
		}
		_exit(looks > 1 ? 0 : 4);
	}
	close(go[0]);
	CHECK(write(go[1], "g", 1) == 1);
	close(go[1]);
	for (long i = 0; i < n; i += 1000) {
		rsz::lock_guard g(r);
		for (long j = i; j < i + 1000; j++)
			v->push_back(j);
	}
	int st = 0;
	CHECK(waitpid(reader, &st, 0) == reader);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(r.stats().region_bytes > len0 + 8 * static_cast<size_t>(n));
	CHECK(r.destroy<ivec>("v"));
}

struct counted {
	long payload[8];
	explicit counted(long *count) : payload{1, 2, 3, 4, 5, 6, 7, 8} { ++*count; }
};

void test_find_or_construct_race()
{
	scratch s;
	rsz::region &r = s.r;
	long *count = r.construct<long>("count", 0L);
	int go[2], back[2];
	CHECK(pipe(go) == 0 && pipe(back) == 0);
	pid_t kids[8];
	for (pid_t &k : kids) {
		k = fork();
		if (k == 0) {
			char c;
			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(9);
			uintptr_t a = 0;
			try {
				a = reinterpret_cast<uintptr_t>(r.find_or_construct<counted>("obj", count));
			} catch (...) {
				_exit(7);
			}
			_exit(write(back[1], &a, sizeof(a)) == sizeof(a) ? 0 : 8);
		}
	}
	close(go[0]);
	close(back[1]);
	close(go[1]); /* all start at once: read() returns 0 */
	uintptr_t first = 0;
	int got = 0;
	uintptr_t a;
	while (read(back[0], &a, sizeof(a)) == sizeof(a)) {
		if (!got++)
			first = a;
		CHECK(a == first && a != 0);
	}
	close(back[0]);
	for (pid_t k : kids) {
		int st = 0;
		CHECK(waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	CHECK(got == 8);
	CHECK(*count == 1);
	CHECK(reinterpret_cast<uintptr_t>(r.find<counted>("obj")) == first);
}

struct stuck {
	long v;
	stuck(int ready, int never) : v(0)
	{
		char c;
		v = 1;
		if (write(ready, "r", 1) != 1 || read(never, &c, 1) >= 0)
			v = 2;
		v = 3;
	}
};

void test_kill_in_constructor()
{
	scratch s;
	rsz::region &r = s.r;
	int ready[2], never[2];
	CHECK(pipe(ready) == 0 && pipe(never) == 0);
	pid_t k = fork();
	if (k == 0) {
		close(ready[0]);
		try {
			r.construct<stuck>("stuck", ready[1], never[0]);
		} catch (...) {
		}
		_exit(0);
	}
	close(ready[1]);
	char c;
	CHECK(read(ready[0], &c, 1) == 1);
	CHECK(kill(k, SIGKILL) == 0);
	int st = 0;
	CHECK(waitpid(k, &st, 0) == k && WIFSIGNALED(st));
	close(ready[0]);
	close(never[0]);
	close(never[1]);
	CHECK(r.find<stuck>("stuck") == nullptr);
	char msg[256] = "";
	CHECK(rszshm_check(r.get(), msg, sizeof(msg)) == 0);
	{
		rsz::user_lock l(r);
		std::unique_lock<rsz::user_lock> g(l);
		CHECK(l.previous_holder_died());
	}
	long *p = r.find_or_construct<long>("stuck2", 5L);
	CHECK(p && *p == 5);
}

void test_bytes_back()
{
	scratch s;
	rsz::region &r = s.r;
	/* The first record makes the index's slot array, which stays. */
	r.construct<int>("first", 1);
	struct rszshm_stats a = r.stats();
	table *t = r.construct<table>("t", r.get_allocator<int>());
	for (int i = 0; i < 300; i++)
		(*t)[key(r, i)].assign(static_cast<size_t>(i), i);
	struct rszshm_stats mid = r.stats();
	CHECK(mid.used_bytes > a.used_bytes && mid.records == a.records + 1);
	CHECK(r.destroy<table>("t"));
	struct rszshm_stats b = r.stats();
	if (b.used_bytes != a.used_bytes || b.blocks != a.blocks)
		std::fprintf(stderr, "used %llu -> %llu, blocks %llu -> %llu\n",
			     (unsigned long long)a.used_bytes, (unsigned long long)b.used_bytes,
			     (unsigned long long)a.blocks, (unsigned long long)b.blocks);
	CHECK(b.used_bytes == a.used_bytes && b.blocks == a.blocks && b.records == a.records);
	{
		ivec v(r.get_allocator<long>());
		for (long i = 0; i < 100000; i++)
			v.push_back(i);
		ivec w(std::move(v));
		CHECK(r.stats().used_bytes > a.used_bytes);
	}
	b = r.stats();
	CHECK(b.used_bytes == a.used_bytes && b.blocks == a.blocks);
}

void test_bad_alloc()
{
	scratch s(4 << 20);
	rsz::region &r = s.r;
	ivec v(r.get_allocator<long>());
	bool threw = false;
	try {
		for (long i = 0; i < (8L << 20); i++)
			v.push_back(i);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw);
	CHECK(v.size() > 1000 && v.size() < (4u << 20) / sizeof(long));
}

void test_errors()
{
	char dir[] = "/dev/shm/rszshm-cxx-XXXXXX";
	CHECK(mkdtemp(dir) != nullptr);
	std::string missing = std::string(dir) + "/missing";
	try {
		rsz::region r(missing);
		CHECK(!"attached a missing file");
	} catch (const rsz::error &e) {
		CHECK(e.errnum() == ENOENT);
		CHECK(std::strstr(e.what(), "missing") != nullptr);
	}
	std::error_code ec;
	rsz::region q = rsz::region::open(missing.c_str(), rsz::options{}, ec);
	CHECK(ec.value() == ENOENT && !q);
	rmdir(dir);

	scratch s;
	s.r.construct<int>("i", 1);
	try {
		s.r.find<long>("i");
		CHECK(!"found an int as a long");
	} catch (const rsz::error &e) {
		CHECK(e.errnum() == EPROTOTYPE);
	}
	try {
		s.r.find<unsigned>("i"); /* same size, another type */
		CHECK(!"found an int as an unsigned");
	} catch (const rsz::error &e) {
		CHECK(e.errnum() == EPROTOTYPE);
	}
	/* A read-only handle: allocations fail with EPERM.  (A forked child:
	 * this process maps the region already.) */
	pid_t k = fork();
	if (k == 0) {
		std::string name = s.r.name();
		s.r.close();
		try {
		rsz::region ro(name, rsz::options{}.read_only());
		if (!ro.find<int>("i") || *ro.find<int>("i") != 1)
			_exit(2);
		try {
			ivec v(ro.get_allocator<long>());
			v.push_back(1);
			_exit(3);
		} catch (const rsz::error &e) {
			_exit(e.errnum() == EPERM ? 0 : 4);
		}
		} catch (...) {
			_exit(5);
		}
	}
	int st = 0;
	CHECK(waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* A raw region gives no allocator. */
	rsz::region raw(nullptr, rsz::options{}.excl().len(4096));
	try {
		(void)raw.get_allocator<int>();
		CHECK(!"allocator of a raw region");
	} catch (const rsz::error &e) {
		CHECK(e.errnum() == EINVAL);
	}
	rszshm_unlink(raw.get());
	rszshm_rmdir(raw.get());

	/* The initializer: runs before the name appears, may allocate; its
	 * errno fails the constructor and leaves no file. */
	char idir[] = "/dev/shm/rszshm-cxx-XXXXXX";
	CHECK(mkdtemp(idir) != nullptr);
	std::string iname = std::string(idir) + "/r";
	try {
		rsz::region bad(iname, rsz::options{}.excl().heap().len(1 << 16).init(
			[](struct rszshm *) { return EBADF; }));
		CHECK(!"initializer's error ignored");
	} catch (const rsz::error &e) {
		CHECK(e.errnum() == EBADF);
	}
	CHECK(access(iname.c_str(), F_OK) == -1 && errno == ENOENT);
	try {
		rsz::region good(iname, rsz::options{}.excl().heap().len(1 << 16).init(
			[](struct rszshm *h) {
				rsz::allocator<long> a(h->hdr);
				long *p = a.allocate(1);
				*p = 42;
				return rszshm_rec_add(h, "answer", 0, p, sizeof(*p)) == 0 ? 0 : errno;
			}));
		const long *p = static_cast<const long *>(rszshm_rec_find(good.get(), "answer", nullptr));
		CHECK(p && *p == 42);
		good.unlink();
	} catch (const rsz::error &e) {
		CHECK(!"initializer failed");
		unlink(iname.c_str());
	}
	rmdir(idir);

	/* A base no region of this process is at. */
	rsz::allocator<int> stray(reinterpret_cast<const void *>(0x1000));
	try {
		(void)stray.allocate(1);
		CHECK(!"allocated from an unattached region");
	} catch (const rsz::error &e) {
		CHECK(e.errnum() == EINVAL && std::strstr(e.what(), "0x1000"));
	}
}

} // namespace

int main(int argc, char **argv)
{
	self_exe = "/proc/self/exe";
	if (argc == 3) {
		try {
			if (!std::strcmp(argv[1], "consumer"))
				return role_consumer(argv[2]);
			if (!std::strcmp(argv[1], "modifier"))
				return role_modifier(argv[2]);
		} catch (const std::exception &e) {
			std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
			return 5;
		}
		return 6;
	}
	struct { const char *name; void (*fn)(); } tests[] = {
		{ "producer_consumer", test_producer_consumer },
		{ "vector_grows_with_reader", test_vector_grows_with_reader },
		{ "find_or_construct_race", test_find_or_construct_race },
		{ "kill_in_constructor", test_kill_in_constructor },
		{ "bytes_back", test_bytes_back },
		{ "bad_alloc", test_bad_alloc },
		{ "errors", test_errors },
	};
	for (auto &t : tests) {
		int before = failures;
		try {
			t.fn();
		} catch (const std::exception &e) {
			std::fprintf(stderr, "%s: exception: %s\n", t.name, e.what());
			failures++;
		}
		std::printf("%s: %s\n", t.name, failures == before ? "ok" : "FAILED");
	}
	return failures ? 1 : 0;
}
