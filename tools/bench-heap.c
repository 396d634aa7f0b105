/* SPDX-License-Identifier: Apache-2.0 */
/* bench-heap.c - rszshm-bench's heap workloads (not yet written). */
#include "bench.h"

void bench_heap(const struct bench_opts *o)
{
	(void)o;
}

int bench_heap_child(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return -1;
}
