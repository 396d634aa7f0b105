/* SPDX-License-Identifier: Apache-2.0 */
/*
 * feed.c - the bucket's entries, in order, through a pull consumer.
 *
 * A feed is what the client's watcher (kvStore_Watch(), and kvStore_Keys()
 * built on it) gives: each key's newest entry, then the marker "the current
 * values are all in", then every new entry.  It is made here, not taken
 * from the client, because the watcher is an ordered push consumer that
 * the client recreates on a thread of its own when it misses heartbeats or
 * messages (after a server restart, say), and libnats 3.4 frees the old
 * consumer's name on that thread while a watcher being stopped may still
 * read it (jsSub_deleteConsumer()): a use-after-free, met in the mirror's
 * server-restart test under AddressSanitizer.  A pull consumer is never
 * recreated behind the caller's back, so its name stays put until the feed
 * is closed.
 *
 * The consumer is an ephemeral one in the server's memory, acknowledging
 * nothing, delivering the last entry per key first; the server drops it a
 * minute after its reader is gone (a mirror killed leaves nothing behind
 * for long).  Each fetch waits for the first entry and returns with what
 * there is then, up to a batch: a trickle of changes costs one round trip
 * each, a flood goes in batches.  Anything doubtful (a gap
 * in the consumer's sequence, a consumer the server lost, any error) ends
 * the feed: the caller makes another from the current state, as it does
 * after a reconnection anyway.
 */
#include <stdio.h>
#include <string.h>

#include "mirror.h"

#define FEED_BATCH 256
#define FEED_IDLE_NS (60 * 1000000000LL)	/* the server drops a feed unread this long */

int mirror_feed_open(struct mirror_feed *f, struct mirror_link *l, bool keys_only)
{
	char filter[sizeof(l->bucket) + 8], stream[sizeof(l->bucket) + 4];
	jsConsumerInfo *ci = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	memset(f, 0, sizeof(*f));
	snprintf(filter, sizeof(filter), "$KV.%s.>", l->bucket);
	snprintf(stream, sizeof(stream), "KV_%s", l->bucket);
	f->bucket = l->bucket;
	f->prefix = strlen(filter) - 1;
	f->next = 1;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Config.DeliverPolicy = js_DeliverLastPerSubject;
	so.Config.AckPolicy = js_AckNone;
	so.Config.HeadersOnly = keys_only;
	so.Config.MemoryStorage = true;
	so.Config.InactiveThreshold = FEED_IDLE_NS;
	s = js_PullSubscribe(&f->sub, l->js, filter, NULL, NULL, &so, &jerr);
	if (s == NATS_OK)
		s = natsSubscription_GetConsumerInfo(&ci, f->sub, NULL, &jerr);
	if (s != NATS_OK) {
		fprintf(stderr, TOOL ": bucket %s: %s: %s\n", l->bucket, keys_only ? "keys" : "watch",
			mirror_err(s));
		mirror_feed_close(f);
		return -1;
	}
	f->say_current = ci->NumPending == 0;	/* an empty bucket */
	jsConsumerInfo_Destroy(ci);
	return 0;
}

/* Fetch up to a batch, waiting at most @ms for the first entry: 1 if some
 * came, 0 if none, -1 on an error (said).  A no-wait request with an
 * expiry is the server's "wait for the first, then return what there is". */
static int fetch(struct mirror_feed *f, int ms)
{
	jsFetchRequest req;
	natsStatus s;

	natsMsgList_Destroy(&f->batch);
	f->at = 0;
	jsFetchRequest_Init(&req);
	req.Batch = FEED_BATCH;
	req.NoWait = true;
	req.Expires = (int64_t)ms * 1000000;
	s = natsSubscription_FetchRequest(&f->batch, f->sub, &req);
	if (s == NATS_OK)
		return f->batch.Count > 0;
	if (s == NATS_TIMEOUT)
		return 0;
	fprintf(stderr, TOOL ": bucket %s: fetch: %s\n", f->bucket, mirror_err(s));
	return -1;
}

int mirror_feed_next(struct mirror_feed *f, struct mirror_entry *e, int ms)
{
	jsMsgMetaData *meta = NULL;
	const char *op = NULL;
	natsMsg *m;
	int rc;

	natsMsg_Destroy(f->cur);
	f->cur = NULL;
	if (f->say_current) {
		f->say_current = false;
		f->current = true;
		return 0;
	}
	if (f->at == f->batch.Count && (rc = fetch(f, ms)) <= 0)
		return rc < 0 ? -1 : -2;
	m = f->cur = f->batch.Msgs[f->at];
	f->batch.Msgs[f->at++] = NULL;	/* ours now: natsMsgList_Destroy() skips it */
	if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
		fprintf(stderr, TOOL ": bucket %s: an entry without JetStream metadata\n", f->bucket);
		return -1;
	}
	rc = meta->Sequence.Consumer == f->next ? 1 : -1;
	if (rc < 0)
		fprintf(stderr, TOOL ": bucket %s: entry %llu came when %llu was due; reading again\n",
			f->bucket, (unsigned long long)meta->Sequence.Consumer, (unsigned long long)f->next);
	f->next = meta->Sequence.Consumer + 1;
	e->pending = meta->NumPending;
	jsMsgMetaData_Destroy(meta);
	if (rc < 0)
		return -1;
	if (strlen(natsMsg_GetSubject(m)) <= f->prefix) {
		fprintf(stderr, TOOL ": bucket %s: an entry of subject %s\n", f->bucket, natsMsg_GetSubject(m));
		return -1;
	}
	e->key = natsMsg_GetSubject(m) + f->prefix;
	e->value = natsMsg_GetData(m);
	e->len = (size_t)natsMsg_GetDataLength(m);
	e->deleted = natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op &&
		     (!strcmp(op, "DEL") || !strcmp(op, "PURGE"));
	if (!f->current && e->pending == 0)
		f->say_current = true;
	return 1;
}

void mirror_feed_close(struct mirror_feed *f)
{
	natsMsg_Destroy(f->cur);
	natsMsgList_Destroy(&f->batch);
	if (f->sub) {
		natsSubscription_Unsubscribe(f->sub);	/* deletes the consumer */
		natsSubscription_Destroy(f->sub);
	}
	memset(f, 0, sizeof(*f));
}
