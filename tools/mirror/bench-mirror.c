/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-mirror.c - rszshm-mirror's latency and throughput, beside NATS's own.
 *
 *   rszshm-bench-mirror --server URL --mirror PATH [--runs N] [--dir DIR]
 *
 * Needs a running server with JetStream (nats-server -js).  Each workload
 * is timed --runs times (5) and the median printed, beside its floor, the
 * same bytes through the same client without the mirror, and the ratio:
 *
 *   latency     rszshm_rec_put() on a source region to the return of
 *               rszshm_rec_wait() on a replica that `rszshm-mirror push`
 *               and `pull` (this host's processes) keep; median and p99 of
 *               1,000 round trips, one record of 64 bytes.  Floor: a bare
 *               publish of 64 bytes to a subscriber's NextMsg(), another
 *               connection of this process; and a second floor, a
 *               JetStream key-value put to a watcher of the key (what the
 *               mirror's bytes go through), one connection.
 *   throughput  records per second: N records of 64 B (20,000) or 64 KiB
 *               (1,000) put as fast as the source takes them, until the
 *               replica holds the last.  Floor: N messages of that size
 *               published and all received by a subscriber.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "rszshm.h"

static const char *server, *mirror_bin, *dir = "/dev/shm";
static int runs = 5;
static int bucket_seq;

static int64_t now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "rszshm-bench-mirror: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(1);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, int n, int p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp64);
	return v[(n - 1) * p / 100];
}

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && v[k - 1] > v[k]; k--) {
			double t = v[k];

			v[k] = v[k - 1];
			v[k - 1] = t;
		}
	return v[n / 2];
}

/* ----------------------------------------------------------- the floor */

struct bare {
	natsConnection *pub, *sub;
	natsSubscription *s;
};

static void bare_open(struct bare *b, const char *subj)
{
	if (natsConnection_ConnectTo(&b->pub, server) != NATS_OK ||
	    natsConnection_ConnectTo(&b->sub, server) != NATS_OK ||
	    natsConnection_SubscribeSync(&b->s, b->sub, subj) != NATS_OK ||
	    natsSubscription_SetPendingLimits(b->s, -1, -1) != NATS_OK ||
	    natsConnection_Flush(b->sub) != NATS_OK)
		die("bare NATS connection");
}

static void bare_close(struct bare *b)
{
	natsSubscription_Destroy(b->s);
	natsConnection_Destroy(b->sub);
	natsConnection_Destroy(b->pub);
}

static void bare_latency(int n, int64_t *lat)
{
	char v[64] = "x";
	struct bare b;

	bare_open(&b, "bench.lat");
	for (int i = 0; i < n; i++) {
		natsMsg *m;
		int64_t t0 = now();

		if (natsConnection_Publish(b.pub, "bench.lat", v, sizeof(v)) != NATS_OK ||
		    natsConnection_Flush(b.pub) != NATS_OK ||
		    natsSubscription_NextMsg(&m, b.s, 5000) != NATS_OK)
			die("bare publish");
		lat[i] = now() - t0;
		natsMsg_Destroy(m);
	}
	bare_close(&b);
}

static double bare_rate(int n, size_t len)
{
	char *v = calloc(1, len);
	struct bare b;
	int64_t t0;

	if (!v)
		die("calloc");
	bare_open(&b, "bench.rate");
	t0 = now();
	for (int i = 0; i < n; i++)
		if (natsConnection_Publish(b.pub, "bench.rate", v, (int)len) != NATS_OK)
			die("bare publish");
	natsConnection_Flush(b.pub);
	for (int i = 0; i < n; i++) {
		natsMsg *m;

		if (natsSubscription_NextMsg(&m, b.s, 10000) != NATS_OK)
			die("bare receive");
		natsMsg_Destroy(m);
	}
	double r = n * 1e9 / (double)(now() - t0);

	bare_close(&b);
	free(v);
	return r;
}

/* The key-value floor: a put through JetStream to a watcher of the
 * bucket, one client, no region on either side. */
static void kv_latency(int n, int64_t *lat)
{
	char v[64] = "x", bucket[32];
	natsConnection *nc;
	kvWatcher *w;
	kvConfig cfg;
	kvStore *kv;
	kvEntry *e;
	jsCtx *js;

	snprintf(bucket, sizeof(bucket), "bench-kv-%d", (int)getpid());
	kvConfig_Init(&cfg);
	cfg.Bucket = bucket;
	cfg.History = 1;
	if (natsConnection_ConnectTo(&nc, server) != NATS_OK ||
	    natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
	    js_CreateKeyValue(&kv, js, &cfg) != NATS_OK ||
	    kvStore_Watch(&w, kv, "lat", NULL) != NATS_OK ||
	    kvWatcher_Next(&e, w, 5000) != NATS_OK)	/* no value yet: the marker */
		die("key-value bucket");
	kvEntry_Destroy(e);
	for (int i = 0; i < n; i++) {
		int64_t t0 = now();

		if (kvStore_Put(NULL, kv, "lat", v, sizeof(v)) != NATS_OK ||
		    kvWatcher_Next(&e, w, 5000) != NATS_OK || !e)
			die("key-value put");
		lat[i] = now() - t0;
		kvEntry_Destroy(e);
	}
	kvWatcher_Destroy(w);
	kvStore_Destroy(kv);
	js_DeleteKeyValue(js, bucket);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}

/* ---------------------------------------------------------- the mirror */

struct pair {
	char src_path[256], rep_path[256], bucket[32];
	struct rszshm src, rep;
	pid_t push, pull;
};

static pid_t run(const char *cmd, const char *path, const char *bucket)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char *argv[] = { (char *)mirror_bin, (char *)cmd, (char *)path, "--server",
				 (char *)server, "--bucket", (char *)bucket, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(mirror_bin, argv);
		_exit(127);
	}
	return pid;
}

static void pair_open(struct pair *p)
{
	struct rszshm_opts o = { .flags = RSZSHM_CREATE | RSZSHM_EXCL | RSZSHM_HEAP, .len = 1 << 20 };

	snprintf(p->bucket, sizeof(p->bucket), "bench-%d-%d", (int)getpid(), bucket_seq++);
	snprintf(p->src_path, sizeof(p->src_path), "%s/%s-src", dir, p->bucket);
	snprintf(p->rep_path, sizeof(p->rep_path), "%s/%s-rep", dir, p->bucket);
	if (!rszshm_open(&p->src, p->src_path, &o) || !rszshm_open(&p->rep, p->rep_path, &o))
		die(rszshm_errmsg());
	p->push = run("push", p->src_path, p->bucket);
	p->pull = run("pull", p->rep_path, p->bucket);
}

static void pair_close(struct pair *p)
{
	kill(p->push, SIGTERM);
	kill(p->pull, SIGTERM);
	waitpid(p->push, NULL, 0);
	waitpid(p->pull, NULL, 0);
	rszshm_dt(&p->src);
	rszshm_dt(&p->rep);
	unlink(p->src_path);
	unlink(p->rep_path);
	/* The server keeps no bench's bucket. */
	natsConnection *nc;
	jsCtx *js;

	if (natsConnection_ConnectTo(&nc, server) == NATS_OK) {
		if (natsConnection_JetStream(&js, nc, NULL) == NATS_OK) {
			js_DeleteKeyValue(js, p->bucket);
			jsCtx_Destroy(js);
		}
		natsConnection_Destroy(nc);
	}
}

/* Wait until the replica holds @n records. */
static void await_count(struct pair *p, uint64_t n)
{
	uint64_t seen = rszshm_rec_changes(&p->rep);
	struct rszshm_stats st;

	while (rszshm_stats(&p->rep, &st) == 0 && st.records < n)
		if (rszshm_rec_wait_any(&p->rep, &seen, 30000) < 0)
			die("the replica did not follow");
}

/* Wait until the replica's @name holds the 8 bytes @want at its start. */
static void await(struct pair *p, const char *name, uint64_t want, uint64_t *seen)
{
	uint64_t got = 0;

	for (;;) {
		if (rszshm_rec_get(&p->rep, name, &got, sizeof(got), NULL) >= (ssize_t)sizeof(got) &&
		    got == want)
			return;
		if (rszshm_rec_wait(&p->rep, name, seen, 30000) < 0)
			die("the replica did not follow");
	}
}

static void mirror_latency(int n, int64_t *lat)
{
	uint64_t v[8] = { 0 }, seen = 0;
	struct pair p;

	pair_open(&p);
	for (int i = 0; i <= n; i++) {
		int64_t t0 = now();

		v[0] = (uint64_t)i + 1;
		if (rszshm_rec_put(&p.src, "lat", 1, v, sizeof(v)) < 0)
			die("put");
		await(&p, "lat", v[0], &seen);
		if (i)		/* the first waits for the connections */
			lat[i - 1] = now() - t0;
	}
	pair_close(&p);
}

static double mirror_rate(int n, size_t len)
{
	uint64_t *v = calloc(1, len), seen = 0;
	char name[32];
	struct pair p;
	int64_t t0;

	if (!v || len < sizeof(*v))
		die("calloc");
	pair_open(&p);
	v[0] = 1;	/* the connections are up once this one is through */
	if (rszshm_rec_put(&p.src, "warm", 1, v, len) < 0)
		die("put");
	await(&p, "warm", 1, &seen);
	t0 = now();
	for (int i = 0; i < n; i++) {
		v[0] = (uint64_t)i + 2;
		snprintf(name, sizeof(name), "r%d", i);
		if (rszshm_rec_put(&p.src, name, 1, v, len) < 0)
			die("put");
	}
	await_count(&p, (uint64_t)n + 1);
	double r = n * 1e9 / (double)(now() - t0);

	pair_close(&p);
	free(v);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "server", required_argument, NULL, 's' },
		{ "mirror", required_argument, NULL, 'm' },
		{ "runs", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	enum { LAT = 1000 };
	static int64_t lat[LAT];
	double m50[16], m99[16], f50[16], f99[16], k50[16], k99[16];
	struct utsname u;
	int c;

	while ((c = getopt_long(argc, argv, "s:m:r:d:", longs, NULL)) != -1) {
		switch (c) {
		case 's': server = optarg; break;
		case 'm': mirror_bin = optarg; break;
		case 'r': runs = atoi(optarg); break;
		case 'd': dir = optarg; break;
		default:
			fprintf(stderr, "usage: rszshm-bench-mirror --server URL --mirror PATH [--runs N] [--dir DIR]\n");
			return 2;
		}
	}
	if (!server || !mirror_bin || runs < 1 || runs > 16) {
		fprintf(stderr, "usage: rszshm-bench-mirror --server URL --mirror PATH [--runs N] [--dir DIR]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	uname(&u);
	printf("# %s %s, %ld CPUs, NATS C client %s, %d runs, medians\n", u.sysname, u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), nats_GetVersion(), runs);
	printf("%-22s %14s %14s %8s\n", "workload", "rszshm-mirror", "bare NATS", "ratio");
	for (int r = 0; r < runs; r++) {
		mirror_latency(LAT, lat);
		m50[r] = (double)pct(lat, LAT, 50) / 1e3;
		m99[r] = (double)pct(lat, LAT, 99) / 1e3;
		bare_latency(LAT, lat);
		f50[r] = (double)pct(lat, LAT, 50) / 1e3;
		f99[r] = (double)pct(lat, LAT, 99) / 1e3;
		kv_latency(LAT, lat);
		k50[r] = (double)pct(lat, LAT, 50) / 1e3;
		k99[r] = (double)pct(lat, LAT, 99) / 1e3;
	}
	double a = median(m50, runs), b = median(f50, runs);

	printf("%-22s %11.1f us %11.1f us %7.1fx\n", "latency-64B-median", a, b, a / b);
	a = median(m99, runs);
	b = median(f99, runs);
	printf("%-22s %11.1f us %11.1f us %7.1fx\n", "latency-64B-p99", a, b, a / b);
	a = median(m50, runs);
	b = median(k50, runs);
	printf("%-22s %11.1f us %11.1f us %7.1fx  (floor: key-value put to watch)\n",
	       "latency-64B-median", a, b, a / b);
	a = median(m99, runs);
	b = median(k99, runs);
	printf("%-22s %11.1f us %11.1f us %7.1fx  (floor: key-value put to watch)\n",
	       "latency-64B-p99", a, b, a / b);
	const struct { const char *name; size_t len; int n; } tp[] = {
		{ "throughput-64B", 64, 20000 },
		{ "throughput-64KiB", 64 * 1024, 1000 },
	};
	for (size_t k = 0; k < 2; k++) {
		for (int r = 0; r < runs; r++) {
			m50[r] = mirror_rate(tp[k].n, tp[k].len);
			f50[r] = bare_rate(tp[k].n, tp[k].len);
		}
		a = median(m50, runs);
		b = median(f50, runs);
		printf("%-22s %10.0f r/s %10.0f m/s %7.2fx\n", tp[k].name, a, b, a / b);
	}
	return 0;
}
