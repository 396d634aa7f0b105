/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mirror.h - rszshm-mirror: a region's records in a NATS key-value bucket.
 *
 * The program uses the library's public API only.  Its files, lowest first:
 *
 *   codec.c  record names as bucket keys and back; a value's 8-byte header
 *            (no NATS, no region: the unit tests' part)
 *   nats.c   connecting (retried with backoff), the bucket (opened, or
 *            made with the documented settings), reconnection flags
 *   feed.c   the bucket's entries in order: each key's newest, then every
 *            new one (a pull consumer)
 *   push.c   region -> bucket: the whole index, then every change
 *   pull.c   bucket -> replica region: the current state, then every update
 *   main.c   the command line
 *
 * Data flows one way: main.c calls push.c or pull.c, which call feed.c,
 * nats.c and codec.c; feed.c calls nats.c.
 */
#ifndef RSZSHM_MIRROR_H
#define RSZSHM_MIRROR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nats/nats.h>

#include "rszshm.h"

#define TOOL "rszshm-mirror"

/* ------------------------------------------------------------- codec.c */

/* Longest key a record name becomes: every byte escaped as "=XX". */
#define MIRROR_KEY_MAX (3 * RSZSHM_NAME_MAX)
/* A value in the bucket: "rsz1", the type tag (little-endian), the bytes. */
#define MIRROR_HDR 8

/* @name as a bucket key in @key (room MIRROR_KEY_MAX + 1): the bytes
 * A-Z a-z 0-9 - _ / stay, every other byte becomes "=XX" (hex). */
void mirror_key(const char *name, char *key);
/* The record name of @key in @name (room RSZSHM_NAME_MAX + 1): 0, or -1 if
 * @key is not one mirror_key() makes. */
int mirror_name(const char *key, char *name);
/* Writes the header of a value of type @type at @out. */
void mirror_hdr(uint32_t type, unsigned char *out);
/* The type of the value @v of @len bytes: 0, or -1 if it has no header. */
int mirror_type(const void *v, size_t len, uint32_t *type);

/* -------------------------------------------------------------- nats.c */

struct mirror_opts {
	const char *server;	/* URL(s), comma-separated */
	const char *bucket;
	const char *creds;	/* --creds FILE */
	const char *user;	/* --user, the password from pass_file or the env */
	const char *pass_file;
	const char *tls_ca, *tls_cert, *tls_key;
	int replicas;		/* of a bucket we make */
	uint32_t plain_lo, plain_hi;	/* type tags that are plain bytes */
	bool plain_range, plain_all;
	bool once;		/* push: sync and exit; pull: apply the state, exit */
	bool verbose;
	size_t len;		/* pull: initial heap length of a replica we make */
	mode_t mode;		/* pull: its mode */
};

struct mirror_link {
	natsConnection *nc;
	jsCtx *js;
	kvStore *kv;
	char bucket[64];
	int reconnected;	/* set by the client's thread (__atomic) */
	int pub_failed;		/* publishes refused, by the client's thread (__atomic) */
	int closing;		/* we close it: a disconnection is no news (__atomic) */
	int64_t max_payload;
};

/* Set by SIGINT and SIGTERM: stop at the next chance. */
extern volatile sig_atomic_t mirror_stop;

/* Connect, retrying with backoff (said on stderr) until connected or
 * mirror_stop; then open the bucket, making it if it does not exist.
 * 0, or -1 with a line on stderr. */
int mirror_connect(struct mirror_link *l, const struct mirror_opts *o);
/* Open the bucket again (after a reconnection: the server may have lost it). */
int mirror_bucket(struct mirror_link *l, const struct mirror_opts *o);
void mirror_close(struct mirror_link *l);
/* A NATS status as one line. */
const char *mirror_err(natsStatus s);
/* Monotonic time in ns. */
int64_t mirror_now(void);

/* -------------------------------------------------------------- feed.c */

struct mirror_feed {
	natsSubscription *sub;
	natsMsgList batch;	/* fetched; the next entry is batch.Msgs[at] */
	int at;
	natsMsg *cur;		/* the entry last returned */
	uint64_t next;		/* the consumer sequence the next entry has */
	const char *bucket;	/* the link's, for messages */
	size_t prefix;		/* length of "$KV.<bucket>." */
	bool say_current;	/* the next call says "the current values are in" */
	bool current;		/* ... and it has */
};

/* One entry; its pointers hold until the next call on the feed. */
struct mirror_entry {
	const char *key;
	const void *value;
	size_t len;
	bool deleted;		/* a delete or purge marker */
	uint64_t pending;	/* entries the server had yet to send */
};

/* A feed of @l's bucket from its current state (the values left out when
 * @keys_only): 0, or -1 with a line on stderr. */
int mirror_feed_open(struct mirror_feed *f, struct mirror_link *l, bool keys_only);
/* The next entry in @e: 1; 0 once, when the current values are all in;
 * -2 if none came in @ms; -1 (a line on stderr) if the feed broke: a gap,
 * a consumer the server lost, an error.  Then close it and open another. */
int mirror_feed_next(struct mirror_feed *f, struct mirror_entry *e, int ms);
/* Closes @f (deleting its consumer); a zeroed or closed feed is a no-op. */
void mirror_feed_close(struct mirror_feed *f);

/* ------------------------------------------------------ push.c, pull.c */

int mirror_push(const char *region, const struct mirror_opts *o);
int mirror_pull(const char *replica, const struct mirror_opts *o);

#endif /* RSZSHM_MIRROR_H */
