/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.c - the consistency check and statistics of a region.
 *
 * Works on a view (internal.h), so the same walk serves a live handle
 * (rszshm_check(), rszshm_stats()) and a file mapped read-only at another
 * address (rszshm-dump).  The header is checked by hdr.c's rules, its lock
 * area by lock.c's, the heap by heap/walk.c, the records by rec-walk.c;
 * each is bounded and never follows a stored pointer without
 * rszshm__view_ptr().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "internal.h"

static void say(char *msg, size_t msglen, const char *text)
{
	if (msg && msglen)
		strlcpy(msg, text, msglen);
}

/* The header's four locks: each as rszshm__lock_init() and the lock
 * functions can have left it (type fields, a word some holder could write). */
static int check_locks(const struct rszshm_hdr *h, char *msg, size_t msglen)
{
	static const struct {
		size_t off;
		const char *name;
	} locks[] = {
		{ offsetof(struct rszshm__shared, grow_lock), "grow lock" },
		{ offsetof(struct rszshm__shared, user_lock), "user lock" },
		{ offsetof(struct rszshm__shared, heap_lock), "heap lock" },
		{ offsetof(struct rszshm__shared, rec_lock), "record index lock" },
	};
	const unsigned char *s = (const unsigned char *)rszshm__shared(h);
	const char *why;
	char text[160];

	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++) {
		if (rszshm__lock_validate((const pthread_mutex_t *)(s + locks[i].off), &why) == 0)
			continue;
		snprintf(text, sizeof(text), "%s: %s", locks[i].name, why);
		say(msg, msglen, text);
		return 1;
	}
	return 0;
}

int rszshm__check_view(const struct rszshm__view *v, struct rszshm_stats *st, char *msg,
		       size_t msglen)
{
	const struct rszshm_hdr *h = rszshm__view_hdr(v);
	const char *why = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	if (msg && msglen)
		msg[0] = '\0';
	if (rszshm__hdr_validate(h, v->len, &why) < 0 || h->flen > v->len) {
		say(msg, msglen, why ? why : "header length is past the mapped file");
		return 1;
	}
	if ((rc = check_locks(h, msg, msglen)) != 0)
		return rc;
	st->region_bytes = h->flen;
	st->span_bytes = h->max;
	if (!(h->flags & RSZSHM_HEAP))
		return 0;
	if ((rc = rszshm__heap_walk(v, st, msg, msglen)) != 0)
		return rc;
	return rszshm__rec_walk(v, st, msg, msglen);
}

/*
 * The walk reads the whole region: compare with the file's real size first,
 * every time (one fstat against an O(length) walk), so that a file
 * truncated below its header's length, or a length raised past the file, is
 * reported as damage instead of raising SIGBUS in the walk.
 */
static int check_handle(struct rszshm *r, struct rszshm_stats *st, char *msg, size_t msglen)
{
	struct rszshm__view v;
	uint64_t fsize;
	int rc;

	if ((rc = rszshm__map_usable(r, false)) < 0)
		return rc;
	rszshm__view_of(r, &v);
	if ((rc = rszshm__sys_fsize(r->fd, &fsize, NULL)) < 0)
		return rc;
	if (fsize < v.len)
		v.len = fsize;
	return rszshm__check_view(&v, st, msg, msglen);
}

static int do_check(struct rszshm *r, char *msg, size_t msglen)
{
	struct rszshm_stats st;
	int rc = check_handle(r, &st, msg, msglen);

	return rc < 0 ? RSZSHM__FAIL(rc, -1) : rc;
}

int rszshm_check(struct rszshm *r, char *msg, size_t msglen)
{
	RSZSHM__GUARDED(r, int, -1, do_check(r, msg, msglen));
}

static int do_stats(struct rszshm *r, struct rszshm_stats *st)
{
	char msg[160];
	int rc;

	if (!st)
		return RSZSHM__FAIL(-EINVAL, -1);
	rc = check_handle(r, st, msg, sizeof(msg));
	if (rc == 1)
		rc = -EBADMSG;
	return rc < 0 ? RSZSHM__FAIL(rc, -1) : 0;
}

int rszshm_stats(struct rszshm *r, struct rszshm_stats *st)
{
	RSZSHM__GUARDED(r, int, -1, do_stats(r, st));
}
