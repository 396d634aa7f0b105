/* SPDX-License-Identifier: Apache-2.0 */
/* bench-rec.c - rszshm-bench's rec workloads (not yet written). */
#include "bench.h"

void bench_rec(const struct bench_opts *o)
{
	(void)o;
}

int bench_rec_child(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return -1;
}
