/* SPDX-License-Identifier: Apache-2.0 */
/*
 * header-alone.c - rszshm.h on its own, in strict C11 (-std=c11 -pedantic
 * -Werror): it includes what it needs, survives being included twice, and
 * its macros expand in a plain C11 translation unit.  Linked against the
 * shared library, so it is also a link test; it runs without touching the
 * file system (it only checks arguments that fail early).
 */
#include <rszshm.h>
#include <rszshm.h>

#include <errno.h>
#include <stdio.h>

int main(void)
{
	struct rszshm r;
	struct rszshm_scan scan = RSZSHM_DFLT_SCAN;
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	char name[RSZSHM_PATH_MAX] = RSZSHM_DFLT_FNAME;
	int bad = 0;

	(void)it;
	/* Both forms of rszshm_mk, with arguments that are refused at once. */
	if (rszshm_mk(&r, 0, name) != NULL || errno != EINVAL)
		bad++;
	if (rszshm_mk(&r, 0, name, scan) != NULL || errno != EINVAL)
		bad++;
	if (rszshm_mk(&r, 0, NULL, ((struct rszshm_scan){ scan.start, 4 * GiB, 1 * GiB, 1 })) != NULL)
		bad++;
	if (rszshm_at(&r, "") != NULL || errno != EINVAL)
		bad++;
	if (rszshm_dt(NULL) != -1)
		bad++;
	/* The statement-expression macros (GNU extensions, marked so). */
	{
		struct rszshm *h = calloc(1, sizeof(*h));

		if (!h || rszshm_rm(h) != -1)	/* no name: unlink("") fails */
			bad++;
		if (rszshm_free(h) != 0 || h != NULL)
			bad++;
	}
	if (sizeof(struct rszshm_hdr) != 512 || RSZSHM_ALIGN != 16 || KiB != 1024)
		bad++;
	if (RSZSHM_VERSION_MAJOR < 1)
		bad++;
	if (bad)
		fprintf(stderr, "header-alone: %d checks failed\n", bad);
	return bad != 0;
}
