/* SPDX-License-Identifier: Apache-2.0 */
/*
 * push.c - a region's records into the bucket, then every change.
 *
 * The region is attached read-only: the pusher changes nothing in it.  It
 * works in passes.  A pass walks the index (rszshm_rec_next()) and, for
 * each record, asks whether its stamp moved since the last pass
 * (rszshm_rec_wait() with no wait): a record whose stamp moved is copied
 * (rszshm_rec_get(): one whole version) and published; a record of the
 * last pass that this one did not meet is deleted from the bucket.  The
 * publishes of a pass go out asynchronously and the pass ends when the
 * server has acknowledged them all.  Between passes the pusher sleeps in
 * rszshm_rec_wait_any(), from the change count read before the pass began:
 * a change made during a pass starts the next one.  So any number of
 * changes costs at most one pass behind: quick successive changes of one
 * record are coalesced (its newest value is sent), and the lag never grows
 * without bound.
 *
 * A full pass (at start, after a reconnection, after a publish the server
 * did not acknowledge) sends every record and deletes the bucket's keys
 * that the region does not have: the bucket then converges on the region
 * whatever was lost, a pusher killed and restarted included.
 */
#define _GNU_SOURCE	/* asprintf */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "mirror.h"

#define FEED_LIST_MS 5000	/* longest the listing of the keys waits for an entry */

struct ent {
	char name[RSZSHM_NAME_MAX + 1];
	uint64_t stamp;		/* as last sent (or skipped) */
	bool warned_ptr;	/* said it is a published pointer */
	bool warned_big;	/* said it is over the payload limit */
};

struct ents {
	struct ent *v;
	size_t n, cap;
};

struct push {
	const char *region;
	const struct mirror_opts *o;
	struct rszshm r;
	struct mirror_link l;
	struct ents prev, cur;
	unsigned char *buf;
	size_t cap;
	uint64_t sent, deleted, passes;
	uint64_t sent_at_report;
	int64_t report_at;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

static struct ent *find(struct ents *e, const char *name)
{
	struct ent key;

	strlcpy(key.name, name, sizeof(key.name));
	return e->n ? bsearch(&key, e->v, e->n, sizeof(*e->v), by_name) : NULL;
}

static struct ent *append(struct ents *e)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 256;
		struct ent *v = reallocarray(e->v, cap, sizeof(*v));

		if (!v)
			return NULL;
		e->v = v;
		e->cap = cap;
	}
	return &e->v[e->n++];
}

static void subject(const struct push *p, const char *name, char *subj, size_t len)
{
	char key[MIRROR_KEY_MAX + 1];

	mirror_key(name, key);
	snprintf(subj, len, "$KV.%s.%s", p->l.bucket, key);
}

static bool plain(const struct mirror_opts *o, uint32_t type)
{
	return o->plain_all || (o->plain_range && type >= o->plain_lo && type <= o->plain_hi);
}

/* Copy @name's value behind a header: its length, 0 if it went, -1 on error. */
static ssize_t copy(struct push *p, const char *name, struct rszshm_rec_info *info)
{
	for (;;) {
		ssize_t n = rszshm_rec_get(&p->r, name, p->buf + MIRROR_HDR, p->cap - MIRROR_HDR, info);

		if (n < 0)
			return errno == ENOENT ? 0 : -1;
		if ((size_t)n <= p->cap - MIRROR_HDR) {
			mirror_hdr(info->type, p->buf);
			return n + MIRROR_HDR;
		}
		unsigned char *b = realloc(p->buf, (size_t)n + MIRROR_HDR);

		if (!b)
			return -1;
		p->buf = b;
		p->cap = (size_t)n + MIRROR_HDR;
	}
}

/*
 * The region failed a call: say so.  -1 (try again: a full pass after a
 * second) for what passes, EAGAIN (a writer died mid-update and none has
 * repaired the index yet) and ENOMEM; -2 (stop) for the rest: the region
 * is not a heap region, is damaged, or was cut.
 */
static int region_err(struct push *p, const char *name)
{
	int e = errno;

	fprintf(stderr, TOOL ": %s%s%s: %s\n", p->region, name ? ": record " : "", name ? name : "",
		strerror(e));
	return e == EAGAIN || e == ENOMEM || e == ETIMEDOUT ? -1 : -2;
}

/* Publish the record @e names: 1 sent, 0 not (gone or skipped), -1 or -2
 * as region_err() (-1 too for what the client refused). */
static int send(struct push *p, struct ent *e)
{
	struct rszshm_rec_info info;
	char subj[MIRROR_KEY_MAX + 80];
	natsStatus s;
	ssize_t n;

	if ((n = copy(p, e->name, &info)) <= 0)
		return n < 0 ? region_err(p, e->name) : 0;
	if (p->l.max_payload > 0 && n > p->l.max_payload) {
		if (!e->warned_big)
			fprintf(stderr, TOOL ": %s: record %s: %zd bytes, over the server's maximum payload of %lld: skipped\n",
				p->region, e->name, n, (long long)p->l.max_payload);
		e->warned_big = true;
		return 0;
	}
	if (!info.copied && !plain(p->o, info.type) && !e->warned_ptr) {
		fprintf(stderr, TOOL ": %s: record %s points at memory the library did not copy (rszshm_rec_add): mirrored as its %zu-byte block only; pointers in it mean nothing on another host\n",
			p->region, e->name, info.size);
		e->warned_ptr = true;
	}
	subject(p, e->name, subj, sizeof(subj));
	s = js_PublishAsync(p->l.js, subj, p->buf, (int)n, NULL);
	if (s != NATS_OK) {
		fprintf(stderr, TOOL ": %s: record %s: %s\n", p->region, e->name, mirror_err(s));
		return -1;
	}
	p->sent++;
	return 1;
}

static int send_delete(struct push *p, const char *key_subject)
{
	natsMsg *m = NULL;
	natsStatus s;

	s = natsMsg_Create(&m, key_subject, NULL, NULL, 0);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
	if (s == NATS_OK)
		s = js_PublishMsgAsync(p->l.js, &m, NULL);
	natsMsg_Destroy(m);
	if (s != NATS_OK) {
		fprintf(stderr, TOOL ": %s: delete: %s\n", p->region, mirror_err(s));
		return -1;
	}
	p->deleted++;
	return 0;
}

/* Full pass: delete the bucket's keys that this pass did not meet.  They
 * are listed first (a feed of keys only, to its "current values are in")
 * and deleted after, so the deletes do not lengthen the listing. */
static int delete_strays(struct push *p)
{
	char name[RSZSHM_NAME_MAX + 1];
	char **strays = NULL;	/* their subjects: a key not of ours may be long */
	size_t n = 0, cap = 0;
	struct mirror_feed f;
	struct mirror_entry e;
	int rc;

	if (mirror_feed_open(&f, &p->l, true) < 0)
		return -1;
	while ((rc = mirror_feed_next(&f, &e, FEED_LIST_MS)) == 1) {
		if (e.deleted || (mirror_name(e.key, name) == 0 && find(&p->cur, name)))
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 64;
			void *v = reallocarray(strays, c, sizeof(*strays));

			if (!v) {
				rc = -1;
				break;
			}
			strays = v;
			cap = c;
		}
		if (asprintf(&strays[n], "$KV.%s.%s", p->l.bucket, e.key) < 0) {
			rc = -1;
			break;
		}
		n++;
	}
	mirror_feed_close(&f);
	if (rc == -2)
		fprintf(stderr, TOOL ": bucket %s: keys: no answer in %d ms\n", p->l.bucket, FEED_LIST_MS);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = send_delete(p, strays[i]);
	for (size_t i = 0; i < n; i++)
		free(strays[i]);
	free(strays);
	return rc == 0 ? 0 : -1;
}

/* One pass (see the top of the file): 0; -1 to do a full pass again; -2
 * the region failed (region_err()). */
static int pass(struct push *p, bool full)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	jsPubOptions po;
	struct ents t;
	size_t k = 0;
	natsStatus s;
	int rc;

	p->cur.n = 0;
	while ((rc = rszshm_rec_next(&p->r, &it, &info)) == 1) {
		struct ent *old = find(&p->prev, info.name), *e;

		if (!(e = append(&p->cur)))
			return region_err(p, NULL);
		strlcpy(e->name, info.name, sizeof(e->name));
		e->stamp = old && !full ? old->stamp : 0;
		e->warned_ptr = old && old->warned_ptr;
		e->warned_big = old && old->warned_big;
	}
	if (rc < 0)
		return region_err(p, NULL);
	/* A record moved while we walked may be met twice: keep one. */
	qsort(p->cur.v, p->cur.n, sizeof(*p->cur.v), by_name);
	for (size_t i = 0; i < p->cur.n; i++)
		if (!k || strcmp(p->cur.v[k - 1].name, p->cur.v[i].name))
			p->cur.v[k++] = p->cur.v[i];
	p->cur.n = k;

	for (size_t i = 0; i < p->cur.n; i++) {
		struct ent *e = &p->cur.v[i];
		uint64_t stamp = e->stamp;

		if (rszshm_rec_wait(&p->r, e->name, &stamp, 0) < 0) {
			if (errno == ETIMEDOUT)
				continue;	/* unchanged since it was sent */
			return region_err(p, e->name);
		}
		if (stamp && (rc = send(p, e)) < 0)
			return rc;
		e->stamp = stamp;	/* 0: removed since the walk; deleted next pass */
	}
	for (size_t i = 0; !full && i < p->prev.n; i++) {
		char subj[MIRROR_KEY_MAX + 80];

		if (find(&p->cur, p->prev.v[i].name))
			continue;
		subject(p, p->prev.v[i].name, subj, sizeof(subj));
		if (send_delete(p, subj) < 0)
			return -1;
	}
	if (full && delete_strays(p) < 0)
		return -1;

	/* Wait for the acknowledgements; those a lost server owed never come:
	 * after a reconnection, drop them and send everything again. */
	jsPubOptions_Init(&po);
	po.MaxWait = 250;
	for (int64_t start = mirror_now();;) {
		s = js_PublishAsyncComplete(p->l.js, &po);
		if (s != NATS_TIMEOUT)
			break;
		if (__atomic_load_n(&p->l.reconnected, __ATOMIC_ACQUIRE) || mirror_stop ||
		    mirror_now() - start > 30 * 1000000000LL) {
			natsMsgList pending;

			if (js_PublishAsyncGetPendingList(&pending, p->l.js) == NATS_OK)
				natsMsgList_Destroy(&pending);
			break;
		}
	}
	if (s != NATS_OK || __atomic_exchange_n(&p->l.pub_failed, 0, __ATOMIC_ACQ_REL)) {
		if (s != NATS_OK && !mirror_stop)
			fprintf(stderr, TOOL ": bucket %s: %s; sending everything again\n", p->l.bucket,
				mirror_err(s));
		return -1;
	}
	t = p->prev;
	p->prev = p->cur;
	p->cur = t;
	p->passes++;
	return 0;
}

static void report(struct push *p, uint64_t seen, bool force)
{
	int64_t now = mirror_now();
	uint64_t changes = rszshm_rec_changes(&p->r);

	if (!p->o->verbose || (!force && now - p->report_at < 1000000000))
		return;
	fprintf(stderr, TOOL ": push %s: %zu records, %llu values sent, %llu deletes, %.0f values/s, lag %llu changes\n",
		p->region, p->prev.n, (unsigned long long)p->sent, (unsigned long long)p->deleted,
		p->report_at ? (double)(p->sent - p->sent_at_report) * 1e9 / (double)(now - p->report_at) : 0.0,
		(unsigned long long)(changes > seen ? changes - seen : 0));
	p->report_at = now;
	p->sent_at_report = p->sent;
}

static void nap_1s(void)
{
	struct timespec t = { 1, 0 };

	nanosleep(&t, NULL);
}

int mirror_push(const char *region, const struct mirror_opts *o)
{
	struct rszshm_opts ro = { .flags = RSZSHM_RDONLY };
	struct push p = { .region = region, .o = o };
	bool full = true;
	uint64_t seen;
	int status = 1, rc;

	if (!rszshm_open(&p.r, region, &ro)) {
		fprintf(stderr, TOOL ": %s\n", rszshm_errmsg());	/* names the file */
		return 1;
	}
	errno = 0;
	if (rszshm_rec_changes(&p.r) == 0 && errno) {
		fprintf(stderr, TOOL ": %s: %s\n", region,
			errno == EINVAL ? "not a heap region (it has no records)" : strerror(errno));
		goto out_region;
	}
	if (!(p.buf = malloc(p.cap = 64 * 1024)))
		goto out_region;
	if (mirror_connect(&p.l, o) < 0)
		goto out_buf;
	seen = rszshm_rec_changes(&p.r);
	for (;;) {
		if (__atomic_exchange_n(&p.l.reconnected, 0, __ATOMIC_ACQ_REL)) {
			full = true;
			if (mirror_bucket(&p.l, o) < 0)
				goto retry;
		}
		if ((rc = pass(&p, full)) == -2)
			goto out;
		if (rc < 0)
			goto retry;
		full = false;
		report(&p, seen, false);
		if (o->once) {
			status = 0;
			break;
		}
		/* Idle until a change, a reconnection, or a refusal the client
		 * reported after the pass had its acknowledgements (its error
		 * callback may run after the pending count fell): then send
		 * everything again, or a refused value stays missing until its
		 * record changes. */
		while (!mirror_stop && rszshm_rec_wait_any(&p.r, &seen, 1000) < 0) {
			if (errno == ETIMEDOUT && !__atomic_load_n(&p.l.reconnected, __ATOMIC_ACQUIRE) &&
			    !__atomic_load_n(&p.l.pub_failed, __ATOMIC_ACQUIRE))
				continue;
			if (errno == ETIMEDOUT || errno == EINTR)
				break;
			fprintf(stderr, TOOL ": %s: %s\n", region, strerror(errno));
			goto out;
		}
		if (mirror_stop) {
			status = 0;
			break;
		}
		if (__atomic_exchange_n(&p.l.pub_failed, 0, __ATOMIC_ACQ_REL))
			full = true;
		continue;
retry:
		full = true;
		if (mirror_stop) {
			status = 0;	/* asked to stop: not a failure */
			break;
		}
		nap_1s();
	}
	report(&p, seen, true);
out:
	mirror_close(&p.l);
out_buf:
	free(p.buf);
	free(p.prev.v);
	free(p.cur.v);
out_region:
	rszshm_dt(&p.r);
	return status;
}
