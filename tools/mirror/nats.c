/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats.c - the connection to NATS and the bucket.
 *
 * Everything a deployment needs (credentials, TLS, a cluster's other
 * servers, reconnection) is the NATS client's: this file only sets its
 * options.  A server down at start is retried here, with backoff from
 * 100 ms to 5 s, a line on stderr each time; once connected, the client
 * reconnects by itself for ever, and tells us (l->reconnected) so that the
 * caller resynchronises.
 *
 * A bucket that does not exist is made with: history 1 (a key keeps its
 * newest value only), file storage, no TTL, no size limit but the server's
 * payload limit per value, and --replicas copies (1 by default).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "mirror.h"

volatile sig_atomic_t mirror_stop;

int64_t mirror_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

const char *mirror_err(natsStatus s)
{
	const char *last = nats_GetLastError(NULL);

	return last && *last ? last : natsStatus_GetText(s);
}

static void on_reconnect(natsConnection *nc, void *closure)
{
	struct mirror_link *l = closure;

	(void)nc;
	__atomic_store_n(&l->reconnected, 1, __ATOMIC_RELEASE);
	fprintf(stderr, TOOL ": reconnected to the server\n");
}

/* An asynchronous publish the server refused or never acknowledged. */
static void on_pub_err(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	struct mirror_link *l = closure;

	(void)js;
	if (__atomic_fetch_add(&l->pub_failed, 1, __ATOMIC_ACQ_REL) == 0)
		fprintf(stderr, TOOL ": the server refused a value: %s\n",
			pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
}

static void on_disconnect(natsConnection *nc, void *closure)
{
	struct mirror_link *l = closure;

	(void)nc;
	if (!mirror_stop && !__atomic_load_n(&l->closing, __ATOMIC_ACQUIRE))
		fprintf(stderr, TOOL ": lost the server; reconnecting\n");
}

/* The password, from --password-file or $RSZSHM_MIRROR_PASSWORD, never argv. */
static int password(const struct mirror_opts *o, char *buf, size_t len)
{
	const char *env = getenv("RSZSHM_MIRROR_PASSWORD");
	FILE *f;

	if (!o->pass_file) {
		if (!env) {
			fprintf(stderr, TOOL ": --user needs --password-file or $RSZSHM_MIRROR_PASSWORD\n");
			return -1;
		}
		strlcpy(buf, env, len);
		return 0;
	}
	if (!(f = fopen(o->pass_file, "r"))) {
		fprintf(stderr, TOOL ": %s: %s\n", o->pass_file, strerror(errno));
		return -1;
	}
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static natsStatus options(natsOptions **out, struct mirror_link *l, const struct mirror_opts *o)
{
	natsOptions *opts;
	natsStatus s;
	char pass[512];

	if ((s = natsOptions_Create(&opts)) != NATS_OK)
		return s;
	s = natsOptions_SetURL(opts, o->server);
	if (s == NATS_OK)
		s = natsOptions_SetName(opts, TOOL);
	/* A change goes out at once, not at the client's next flush: the
	 * pusher batches by itself (a pass), and latency is what a mirror
	 * is judged by. */
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 250);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(opts, on_reconnect, l);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(opts, on_disconnect, l);
	if (s == NATS_OK && o->creds)
		s = natsOptions_SetUserCredentialsFromFiles(opts, o->creds, NULL);
	if (s == NATS_OK && o->user) {
		if (password(o, pass, sizeof(pass)) < 0) {
			natsOptions_Destroy(opts);
			return NATS_INVALID_ARG;
		}
		s = natsOptions_SetUserInfo(opts, o->user, pass);
		explicit_bzero(pass, sizeof(pass));
	}
	if (s == NATS_OK && (o->tls_ca || o->tls_cert || !strncmp(o->server, "tls://", 6)))
		s = natsOptions_SetSecure(opts, true);
	if (s == NATS_OK && o->tls_ca)
		s = natsOptions_LoadCATrustedCertificates(opts, o->tls_ca);
	if (s == NATS_OK && o->tls_cert)
		s = natsOptions_LoadCertificatesChain(opts, o->tls_cert, o->tls_key ? o->tls_key : o->tls_cert);
	if (s != NATS_OK) {
		natsOptions_Destroy(opts);
		return s;
	}
	*out = opts;
	return NATS_OK;
}

static void nap(int64_t ns)
{
	struct timespec t = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };

	nanosleep(&t, NULL);	/* a signal ends it early: mirror_stop is checked */
}

int mirror_bucket(struct mirror_link *l, const struct mirror_opts *o)
{
	unsigned tries;
	kvConfig cfg;
	natsStatus s;

	if (l->kv) {
		kvStore_Destroy(l->kv);
		l->kv = NULL;
	}
	/* Open, or make: a pusher and its pullers often start together on a
	 * new bucket, and all but one maker then find it made (the server
	 * refuses the others: the stream's subjects overlap), so a refused
	 * make looks again before it gives up. */
	for (tries = 0; tries < 3; tries++) {
		s = js_KeyValue(&l->kv, l->js, o->bucket);
		if (s != NATS_NOT_FOUND)
			break;
		kvConfig_Init(&cfg);
		cfg.Bucket = o->bucket;
		cfg.Description = "records of an rszshm region (rszshm-mirror)";
		cfg.History = 1;
		cfg.StorageType = js_FileStorage;
		cfg.Replicas = o->replicas;
		s = js_CreateKeyValue(&l->kv, l->js, &cfg);
		if (s == NATS_OK && o->verbose)
			fprintf(stderr, TOOL ": made bucket %s\n", o->bucket);
		if (s == NATS_OK)
			break;
	}
	if (s != NATS_OK) {
		fprintf(stderr, TOOL ": bucket %s: %s\n", o->bucket, mirror_err(s));
		return -1;
	}
	return 0;
}

int mirror_connect(struct mirror_link *l, const struct mirror_opts *o)
{
	int64_t wait = 100 * 1000000LL;
	natsOptions *opts;
	jsOptions jo;
	natsStatus s;

	memset(l, 0, sizeof(*l));
	strlcpy(l->bucket, o->bucket, sizeof(l->bucket));
	if ((s = options(&opts, l, o)) != NATS_OK) {
		if (s != NATS_INVALID_ARG || !o->user)
			fprintf(stderr, TOOL ": %s: %s\n", o->server, mirror_err(s));
		return -1;
	}
	for (;;) {
		s = natsConnection_Connect(&l->nc, opts);
		if (s == NATS_OK || mirror_stop)
			break;
		if (s != NATS_NO_SERVER && s != NATS_TIMEOUT && s != NATS_IO_ERROR)
			break;	/* authorization, TLS, a bad URL: retrying will not help */
		fprintf(stderr, TOOL ": %s: %s; retrying in %.1f s\n", o->server, mirror_err(s),
			(double)wait / 1e9);
		nap(wait);
		if ((wait *= 2) > 5 * 1000000000LL)
			wait = 5 * 1000000000LL;
	}
	natsOptions_Destroy(opts);
	if (s != NATS_OK) {
		if (!mirror_stop)
			fprintf(stderr, TOOL ": %s: %s\n", o->server, mirror_err(s));
		return -1;
	}
	l->max_payload = natsConnection_GetMaxPayload(l->nc);
	jsOptions_Init(&jo);
	/* At most 4096 values unacknowledged; a publish waits up to 10 s for
	 * room (a slow link is waited for, not taken for a failure). */
	jo.PublishAsync.MaxPending = 4096;
	jo.PublishAsync.StallWait = 10000;
	jo.PublishAsync.ErrHandler = on_pub_err;
	jo.PublishAsync.ErrHandlerClosure = l;
	if ((s = natsConnection_JetStream(&l->js, l->nc, &jo)) != NATS_OK) {
		fprintf(stderr, TOOL ": %s: JetStream: %s\n", o->server, mirror_err(s));
		mirror_close(l);
		return -1;
	}
	if (mirror_bucket(l, o) < 0) {
		mirror_close(l);
		return -1;
	}
	return 0;
}

void mirror_close(struct mirror_link *l)
{
	if (l->kv)
		kvStore_Destroy(l->kv);
	if (l->js)
		jsCtx_Destroy(l->js);
	if (l->nc) {
		__atomic_store_n(&l->closing, 1, __ATOMIC_RELEASE);
		natsConnection_Close(l->nc);
		natsConnection_Destroy(l->nc);
	}
	l->kv = NULL;
	l->js = NULL;
	l->nc = NULL;
}
