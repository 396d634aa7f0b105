/* SPDX-License-Identifier: Apache-2.0 */
/* heap.c - the in-region allocator (not yet written: every call fails ENOSYS). */
#define _GNU_SOURCE
#include <errno.h>

#include "internal.h"

int rszshm__heap_init(struct rszshm *r)
{
	(void)r;
	return -ENOSYS;
}

void *rszshm__heap_alloc(struct rszshm *r, size_t size, int *err)
{
	(void)r;
	(void)size;
	*err = -ENOSYS;
	return NULL;
}

int rszshm__heap_free(struct rszshm *r, void *p)
{
	(void)r;
	(void)p;
	return -ENOSYS;
}

int rszshm__heap_walk(const struct rszshm__view *v, struct rszshm_stats *st, char *msg,
		      size_t msglen)
{
	(void)v;
	(void)st;
	(void)msg;
	(void)msglen;
	return 0;
}
