/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - rszshm-mirror's command line (see rszshm-mirror.1).
 *
 *   rszshm-mirror push REGION  --server URL --bucket NAME [options]
 *   rszshm-mirror pull REPLICA --server URL --bucket NAME [options]
 *
 * Exit status: 0 stopped by SIGINT or SIGTERM (or done, with --once);
 * 1 a failure while running; 2 bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mirror.h"

#ifndef RSZSHM_TOOLS_VERSION
#define RSZSHM_TOOLS_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fputs("usage: rszshm-mirror push REGION  --server URL --bucket NAME [options]\n"
	      "       rszshm-mirror pull REPLICA --server URL --bucket NAME [options]\n"
	      "Mirror a region's records to a NATS JetStream key-value bucket (push), or a\n"
	      "bucket into a replica region on this host (pull).\n"
	      "  -s, --server URL        nats://host:port or tls://host:port; several, comma-separated\n"
	      "  -b, --bucket NAME       the bucket (A-Z a-z 0-9 _ -); made if it does not exist\n"
	      "      --creds FILE        NATS credentials file (JWT and NKey seed)\n"
	      "      --user NAME         user name; the password comes from --password-file\n"
	      "                          or $RSZSHM_MIRROR_PASSWORD, never from the command line\n"
	      "      --password-file FILE\n"
	      "      --tls-ca FILE       CA certificates to check the server's\n"
	      "      --tls-cert FILE, --tls-key FILE  this client's certificate and key\n"
	      "      --replicas N        copies of a bucket this run makes (default 1)\n"
	      "      --plain LO[-HI]     push: records of these type tags are plain bytes (no\n"
	      "                          warning for published pointers); 'all' for every tag\n"
	      "      --len BYTES         pull: initial heap length of a replica it makes (default 1 MiB)\n"
	      "      --mode OCTAL        pull: permissions of a replica it makes (default 0644)\n"
	      "      --once              push: send the current state and exit;\n"
	      "                          pull: apply the current state and exit\n"
	      "  -v, --verbose           progress on stderr each second\n"
	      "  -h, --help, -V, --version\n",
	      f);
}

static int bad(const char *msg, const char *arg)
{
	fprintf(stderr, TOOL ": %s%s%s (try --help)\n", msg, arg ? ": " : "", arg ? arg : "");
	return 2;
}

static bool bucket_ok(const char *b)
{
	size_t n = strlen(b);

	if (!n || n > 63)
		return false;
	return strspn(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static bool number(const char *s, unsigned long long max, int base, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, base);
	return s[0] && s[0] != '-' && !*end && !errno && *out <= max;
}

static bool parse_plain(const char *s, struct mirror_opts *o)
{
	unsigned long long lo, hi;
	char buf[64], *dash;

	if (!strcmp(s, "all"))
		return o->plain_all = true;
	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	if ((dash = strchr(buf, '-')))
		*dash++ = '\0';
	if (!number(buf, UINT32_MAX, 0, &lo) || !number(dash ? dash : buf, UINT32_MAX, 0, &hi) || hi < lo)
		return false;
	o->plain_lo = (uint32_t)lo;
	o->plain_hi = (uint32_t)hi;
	o->plain_range = true;
	return true;
}

static pthread_t main_thread;

/* Any thread may take the signal (the client has threads of its own): it
 * is handed on to the main thread, whose wait it ends. */
static void on_signal(int sig)
{
	int e = errno;

	mirror_stop = 1;
	if (!pthread_equal(pthread_self(), main_thread))
		pthread_kill(main_thread, sig);
	errno = e;
}

enum { O_CREDS = 256, O_USER, O_PASSFILE, O_CA, O_CERT, O_KEY, O_REPLICAS, O_PLAIN, O_LEN,
       O_MODE, O_ONCE };

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "server", required_argument, NULL, 's' },
		{ "bucket", required_argument, NULL, 'b' },
		{ "creds", required_argument, NULL, O_CREDS },
		{ "user", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PASSFILE },
		{ "tls-ca", required_argument, NULL, O_CA },
		{ "tls-cert", required_argument, NULL, O_CERT },
		{ "tls-key", required_argument, NULL, O_KEY },
		{ "replicas", required_argument, NULL, O_REPLICAS },
		{ "plain", required_argument, NULL, O_PLAIN },
		{ "len", required_argument, NULL, O_LEN },
		{ "mode", required_argument, NULL, O_MODE },
		{ "once", no_argument, NULL, O_ONCE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct mirror_opts o = { .replicas = 1, .len = 1 << 20, .mode = 0644 };
	unsigned long long v;
	struct sigaction sa;
	const char *cmd, *path;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:b:vhV", longs, NULL)) != -1) {
		switch (c) {
		case 's': o.server = optarg; break;
		case 'b': o.bucket = optarg; break;
		case O_CREDS: o.creds = optarg; break;
		case O_USER: o.user = optarg; break;
		case O_PASSFILE: o.pass_file = optarg; break;
		case O_CA: o.tls_ca = optarg; break;
		case O_CERT: o.tls_cert = optarg; break;
		case O_KEY: o.tls_key = optarg; break;
		case O_REPLICAS:
			if (!number(optarg, 5, 10, &v) || v < 1)
				return bad("--replicas takes 1 to 5", optarg);
			o.replicas = (int)v;
			break;
		case O_PLAIN:
			if (!parse_plain(optarg, &o))
				return bad("--plain takes LO[-HI] (type tags) or 'all'", optarg);
			break;
		case O_LEN:
			if (!number(optarg, SIZE_MAX, 0, &v) || v == 0)
				return bad("--len takes a length in bytes", optarg);
			o.len = (size_t)v;
			break;
		case O_MODE:
			if (!number(optarg, 0777, 8, &v))
				return bad("--mode takes octal permissions up to 0777", optarg);
			o.mode = (mode_t)v;
			break;
		case O_ONCE: o.once = true; break;
		case 'v': o.verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("rszshm-mirror %s (NATS C client %s)\n", RSZSHM_TOOLS_VERSION,
				 nats_GetVersion()); return 0;
		case ':': return bad("this option needs a value", argv[optind - 1]);
		default: return bad("unknown option", argv[optind - 1]);
		}
	}
	if (optind + 2 != argc)
		return bad(optind + 2 < argc ? "too many arguments" : "needs a command and a path", NULL);
	cmd = argv[optind];
	path = argv[optind + 1];
	if (strcmp(cmd, "push") && strcmp(cmd, "pull"))
		return bad("the command is push or pull", cmd);
	if (!path[0])
		return bad("the path is empty", NULL);
	if (!o.server)
		return bad("--server URL is needed", NULL);
	if (!o.bucket)
		return bad("--bucket NAME is needed", NULL);
	if (!bucket_ok(o.bucket))
		return bad("a bucket name is 1 to 63 of A-Z a-z 0-9 _ -", o.bucket);
	if (o.pass_file && !o.user)
		return bad("--password-file needs --user", NULL);
	if (o.tls_key && !o.tls_cert)
		return bad("--tls-key needs --tls-cert", NULL);

	if (nats_Open(-1) != NATS_OK) {
		fprintf(stderr, TOOL ": the NATS client would not start\n");
		return 1;
	}
	main_thread = pthread_self();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: the main thread's wait ends */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = !strcmp(cmd, "push") ? mirror_push(path, &o) : mirror_pull(path, &o);
	nats_CloseAndWait(2000);	/* the client's threads gone: nothing left behind */
	return rc;
}
