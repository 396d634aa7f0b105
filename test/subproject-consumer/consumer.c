/* SPDX-License-Identifier: Apache-2.0 */
/* The smallest program using rszshm: make a region, write, read, remove. */
#include <stdio.h>
#include <string.h>
#include <rszshm.h>

int main(void)
{
	struct rszshm r;

	if (!rszshm_mk(&r, 1 << 20, NULL)) {
		perror("rszshm_mk");
		return 1;
	}
	strcpy(r.dat, "hello");
	printf("%s from %s\n", (char *)r.dat, r.fname);
	return rszshm_rm(&r) == 0 && rszshm_dt(&r) == 0 ? 0 : 1;
}
