// SPDX-License-Identifier: Apache-2.0
/*
 * bench-cxx.cpp - the standard containers with rsz::allocator in a region,
 * against the default allocator and against Boost.Interprocess's containers
 * in managed_shared_memory: std::vector push_back of 10^7 ints, std::map
 * insert then lookup of 10^6 keys, std::unordered_map the same.  Prints the
 * median of RUNS runs (argv[1], default 5) per workload, in ms, and the
 * ratios to the default allocator.
 */
#include <rszshm.hpp>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/map.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/unordered_map.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace bip = boost::interprocess;

namespace {

const long nvec = 10000000, nmap = 1000000;

/* Keys in a fixed pseudo-random order (same for every variant). */
std::vector<long> keys()
{
	std::vector<long> k(static_cast<size_t>(nmap));
	unsigned long x = 88172645463325252UL;
	for (auto &v : k) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		v = static_cast<long>(x >> 1);
	}
	return k;
}

template <class V> long vec_work(V &v)
{
	for (long i = 0; i < nvec; i++)
		v.push_back(static_cast<int>(i));
	return static_cast<long>(v.size());
}

template <class M> long map_work(M &m, const std::vector<long> &k)
{
	for (long x : k)
		m.emplace(x, x);
	long hit = 0;
	for (long x : k)
		hit += m.find(x) != m.end();
	return hit;
}

double ms(const std::function<long()> &f, long &sink)
{
	auto t0 = std::chrono::steady_clock::now();
	sink += f();
	auto t1 = std::chrono::steady_clock::now();
	return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv)
{
	int runs = argc > 1 ? std::atoi(argv[1]) : 5;
	if (runs < 1)
		runs = 1;
	const std::vector<long> k = keys();
	long sink = 0;
	const char *workloads[] = { "vector push_back 10^7", "map insert+find 10^6",
				    "unordered_map insert+find 10^6" };
	std::vector<double> t[3][3]; /* [workload][default, rszshm, boost] */

	for (int run = 0; run < runs; run++) {
		/* default allocator */
		t[0][0].push_back(ms([&] { std::vector<int> v; return vec_work(v); }, sink));
		t[1][0].push_back(ms([&] { std::map<long, long> m; return map_work(m, k); }, sink));
		t[2][0].push_back(ms([&] { std::unordered_map<long, long> m; return map_work(m, k); }, sink));

		/* rszshm: a fresh region per run; destruction inside the timing */
		{
			rsz::region r(nullptr, rsz::options{}.excl().heap().len(1 << 20).span(size_t(2) << 30));
			using va = rsz::allocator<int>;
			using ma = rsz::allocator<std::pair<const long, long>>;
			t[0][1].push_back(ms([&] { std::vector<int, va> v(r.get_allocator<int>());
				return vec_work(v); }, sink));
			t[1][1].push_back(ms([&] {
				std::map<long, long, std::less<long>, ma> m(ma(r.base()));
				return map_work(m, k); }, sink));
			t[2][1].push_back(ms([&] {
				std::unordered_map<long, long, std::hash<long>, std::equal_to<long>, ma> m(
					16, std::hash<long>(), std::equal_to<long>(), ma(r.base()));
				return map_work(m, k); }, sink));
			rszshm_unlink(r.get());
			rszshm_rmdir(r.get());
		}

		/* Boost.Interprocess */
		{
			std::string name = "rszshm-bench-cxx-" + std::to_string(getpid());
			bip::shared_memory_object::remove(name.c_str());
			{
				bip::managed_shared_memory seg(bip::create_only, name.c_str(), size_t(2) << 30);
				using bva = bip::allocator<int, bip::managed_shared_memory::segment_manager>;
				using bma = bip::allocator<std::pair<const long, long>,
							   bip::managed_shared_memory::segment_manager>;
				t[0][2].push_back(ms([&] { bip::vector<int, bva> v(seg.get_segment_manager());
					return vec_work(v); }, sink));
				t[1][2].push_back(ms([&] {
					bip::map<long, long, std::less<long>, bma> m(std::less<long>(),
										     seg.get_segment_manager());
					return map_work(m, k); }, sink));
				t[2][2].push_back(ms([&] {
					boost::unordered_map<long, long, boost::hash<long>, std::equal_to<long>, bma> m(
						16, boost::hash<long>(), std::equal_to<long>(), seg.get_segment_manager());
					return map_work(m, k); }, sink));
			}
			bip::shared_memory_object::remove(name.c_str());
		}
	}
	std::printf("%-32s %12s %12s %12s %8s %8s\n", "workload (median ms)", "default", "rszshm",
		    "boost", "rsz/def", "bst/rsz");
	for (int w = 0; w < 3; w++) {
		double d = median(t[w][0]), r = median(t[w][1]), b = median(t[w][2]);
		std::printf("%-32s %12.1f %12.1f %12.1f %8.2f %8.2f\n", workloads[w], d, r, b, r / d, b / r);
	}
	return sink == 0;
}
