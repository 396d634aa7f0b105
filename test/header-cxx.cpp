// SPDX-License-Identifier: Apache-2.0
/*
 * header-cxx.cpp - rszshm.h from C++ (-std=c++11 -pedantic -Wall -Wextra
 * -Werror): every macro expands, the types are usable without the struct
 * keyword (the stats struct through rszshm_stats_t, since the function
 * rszshm_stats hides the bare type name in C++), and the functions link with
 * C linkage.  Like header-alone.c it only makes calls that fail early.
 */
#include <rszshm.h>
#include <rszshm.h>

#include <cerrno>
#include <cstdio>

int main()
{
	rszshm r;
	rszshm_scan scan = RSZSHM_DFLT_SCAN;
	rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	rszshm_stats_t st;
	struct rszshm_stats st2;
	char name[RSZSHM_PATH_MAX] = RSZSHM_DFLT_FNAME;
	int bad = 0;

	(void)it;
	(void)st2;
	it = RSZSHM_REC_ITER_INIT;
	if (scan.len == 0 || scan.iter != 10 || it.pos_[0] != 0)
		bad++;
	/* Both forms of rszshm_mk, with arguments that are refused at once. */
	if (rszshm_mk(&r, 0, name) != nullptr || errno != EINVAL)
		bad++;
	if (rszshm_mk(&r, 0, name, scan) != nullptr || errno != EINVAL)
		bad++;
	if (rszshm_at(&r, "") != nullptr || errno != EINVAL)
		bad++;
	if (rszshm_stats(nullptr, &st) != -1 || errno != EINVAL)
		bad++;
	/* The statement-expression macros (GNU extensions, marked so). */
	{
		rszshm *h = nullptr;

		if (rszshm_mkm(h, 0, name) != nullptr || h != nullptr)
			bad++;
		h = static_cast<rszshm *>(calloc(1, sizeof(*h)));
		if (!h || rszshm_rm(h) != -1)
			bad++;
		if (rszshm_free(h) != 0 || h != nullptr)
			bad++;
	}
	if (sizeof(rszshm_hdr) != 512 || RSZSHM_ALIGN != 16 || KiB != 1024)
		bad++;
	if (bad)
		std::fprintf(stderr, "header-cxx: %d checks failed\n", bad);
	return bad != 0;
}
