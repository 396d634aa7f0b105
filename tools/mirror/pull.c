/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pull.c - the bucket into a replica region on this host.
 *
 * The replica is a heap region, opened or made (RSZSHM_CREATE): the puller
 * is its only writer, and local consumers attach it (read-only, typically)
 * and use rszshm_rec_get() and rszshm_rec_wait() as on the source.  A watch
 * of the whole bucket (a feed, feed.c) first delivers each key's current
 * value, then every update; a put becomes rszshm_rec_put() with the value's
 * type tag, a delete rszshm_rec_remove().  A value equal to the replica's (type and
 * bytes) is not written again, so consumers wake only for real changes.
 * When the current values are in, the replica's records that the bucket
 * does not have are removed: a replica left by an earlier run, or a late
 * joiner, is then the bucket's state.  After a reconnection, or when the
 * feed breaks, the watch is made again, from the current state, the same
 * way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "mirror.h"

struct pull {
	const char *replica;
	const struct mirror_opts *o;
	struct rszshm r;
	struct mirror_link l;
	char (*names)[RSZSHM_NAME_MAX + 1];	/* the replica's, at the watch's start */
	bool *met;				/* ... and met among the current values */
	size_t n;
	unsigned char *buf;
	size_t cap;
	uint64_t applied, skipped, removed;
	uint64_t applied_at_report;
	int64_t report_at;
	uint64_t lag;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The replica's names, sorted, with none met yet. */
static int snapshot(struct pull *p)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	size_t cap = 0;
	int rc;

	p->n = 0;
	while ((rc = rszshm_rec_next(&p->r, &it, &info)) == 1) {
		if (p->n == cap) {
			size_t c = cap ? 2 * cap : 256;
			void *v = reallocarray(p->names, c, sizeof(*p->names));

			if (!v)
				return -1;
			p->names = v;
			cap = c;
		}
		strlcpy(p->names[p->n++], info.name, sizeof(*p->names));
	}
	if (rc < 0)
		return -1;
	if (p->n)
		qsort(p->names, p->n, sizeof(*p->names), cmp_name);
	free(p->met);
	if (!(p->met = calloc(p->n + 1, sizeof(*p->met))))
		return -1;
	return 0;
}

static void meet(struct pull *p, const char *name)
{
	char (*hit)[RSZSHM_NAME_MAX + 1];

	if (p->n && (hit = bsearch(name, p->names, p->n, sizeof(*p->names), cmp_name)))
		p->met[hit - p->names] = true;
}

/* Is @name's value in the replica already @v (type @type, @len bytes)? */
static bool same(struct pull *p, const char *name, uint32_t type, const void *v, size_t len)
{
	struct rszshm_rec_info info;
	ssize_t n;

	if (p->cap < len + 1) {
		unsigned char *b = realloc(p->buf, len + 1);

		if (!b)
			return false;
		p->buf = b;
		p->cap = len + 1;
	}
	n = rszshm_rec_get(&p->r, name, p->buf, p->cap, &info);
	return n >= 0 && (size_t)n == len && info.type == type && memcmp(p->buf, v, len) == 0;
}

/* Apply one entry of the feed: 0, or -1 if the replica failed. */
static int apply(struct pull *p, const struct mirror_entry *e, bool initial)
{
	const char *key = e->key;
	const unsigned char *v = e->value;
	size_t len = e->len;
	char name[RSZSHM_NAME_MAX + 1];
	uint32_t type;

	p->lag = e->pending;
	if (mirror_name(key, name) < 0) {
		fprintf(stderr, TOOL ": bucket %s: key %s is not a record name: skipped\n", p->l.bucket, key);
		return 0;
	}
	if (initial)
		meet(p, name);
	if (e->deleted) {
		if (rszshm_rec_remove(&p->r, name) == 0)
			p->removed++;
		else if (errno != ENOENT)
			goto fail;
		return 0;
	}
	if (mirror_type(v, len, &type) < 0) {
		fprintf(stderr, TOOL ": bucket %s: key %s: not a value rszshm-mirror wrote: skipped\n",
			p->l.bucket, key);
		return 0;
	}
	if (same(p, name, type, v + MIRROR_HDR, len - MIRROR_HDR)) {
		p->skipped++;
		return 0;
	}
	if (rszshm_rec_put(&p->r, name, type, v + MIRROR_HDR, len - MIRROR_HDR) == 0) {
		p->applied++;
		return 0;
	}
	if (errno == ENOMEM || errno == ENOSPC || errno == EFBIG) {
		fprintf(stderr, TOOL ": %s: record %s (%zu bytes): %s: skipped\n", p->replica, name,
			len - MIRROR_HDR, strerror(errno));
		return 0;
	}
fail:
	fprintf(stderr, TOOL ": %s: record %s: %s\n", p->replica, name, strerror(errno));
	return -1;
}

/* The current values are in: remove what the bucket does not have. */
static int settle(struct pull *p)
{
	for (size_t i = 0; i < p->n; i++) {
		if (p->met[i])
			continue;
		if (rszshm_rec_remove(&p->r, p->names[i]) == 0)
			p->removed++;
		else if (errno != ENOENT) {
			fprintf(stderr, TOOL ": %s: record %s: %s\n", p->replica, p->names[i], strerror(errno));
			return -1;
		}
	}
	p->n = 0;
	return 0;
}

static void report(struct pull *p, bool force)
{
	int64_t now = mirror_now();

	if (!p->o->verbose || (!force && now - p->report_at < 1000000000))
		return;
	fprintf(stderr, TOOL ": pull %s: %llu values applied, %llu unchanged, %llu removed, %.0f values/s, %llu updates pending at the last one\n",
		p->replica, (unsigned long long)p->applied, (unsigned long long)p->skipped,
		(unsigned long long)p->removed,
		p->report_at ? (double)(p->applied - p->applied_at_report) * 1e9 / (double)(now - p->report_at) : 0.0,
		(unsigned long long)p->lag);
	p->report_at = now;
	p->applied_at_report = p->applied;
}

/* One watch, from the current state: 0 to stop, 1 to watch again, -1 error. */
static int watch(struct pull *p)
{
	struct mirror_feed f;
	struct mirror_entry e;
	bool initial = true;
	int rc = 1, n;

	if (snapshot(p) < 0) {
		fprintf(stderr, TOOL ": %s: %s\n", p->replica, strerror(errno));
		return -1;
	}
	if (mirror_feed_open(&f, &p->l, false) < 0)
		return 1;
	while (!mirror_stop) {
		n = mirror_feed_next(&f, &e, 250);
		if (n == -2) {
			if (__atomic_exchange_n(&p->l.reconnected, 0, __ATOMIC_ACQ_REL))
				break;	/* watch again, from the current state */
			report(p, false);
			continue;
		}
		if (n < 0)
			break;	/* said; watch again */
		if (n == 0) {	/* the current values are all in */
			if (initial && settle(p) < 0) {
				rc = -1;
				break;
			}
			initial = false;
			if (p->o->once) {
				rc = 0;
				break;
			}
			continue;
		}
		if (apply(p, &e, initial) < 0) {
			rc = -1;
			break;
		}
		report(p, false);
	}
	if (mirror_stop)
		rc = 0;
	mirror_feed_close(&f);
	return rc;
}

int mirror_pull(const char *replica, const struct mirror_opts *o)
{
	struct rszshm_opts ro = { .flags = RSZSHM_CREATE | RSZSHM_HEAP, .mode = o->mode, .len = o->len };
	struct pull p = { .replica = replica, .o = o };
	struct timespec second = { 1, 0 };
	int rc = 1;

	if (!rszshm_open(&p.r, replica, &ro)) {
		fprintf(stderr, TOOL ": %s\n", rszshm_errmsg());	/* names the file */
		return 1;
	}
	if (mirror_connect(&p.l, o) < 0)
		goto out;
	while ((rc = watch(&p)) == 1) {
		nanosleep(&second, NULL);	/* a server that keeps failing is not hammered */
		if (mirror_bucket(&p.l, o) < 0 && mirror_stop)
			break;
	}
	report(&p, true);
	rc = rc < 0 ? 1 : 0;
	mirror_close(&p.l);
out:
	free(p.names);
	free(p.met);
	free(p.buf);
	rszshm_dt(&p.r);
	return rc;
}
