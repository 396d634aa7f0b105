/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rszshm-dump.c - rszshm-dump: inspect region files from the command line.
 *
 *   rszshm-dump [-r] [-j|--json-lines] [-c] [-x NAME] FILE...
 *   rszshm-dump --list [-j|--json-lines] [DIR|FILE...]
 *   rszshm-dump --watch[=SECONDS] [--count N] [-j|--json-lines] FILE
 *
 * This file is the command line: options, the three modes, and the exit
 * status (the worst of the files').  The work on each file is done by
 * dump_file() (dump.c), which the tests and the fuzzer call too; --list
 * finds the regions and their processes with regions.c.  The manual is
 * rszshm-dump.1.  The tool never writes to a region file, never removes one
 * (that is rszshm-clean's job) and never takes a lock.
 *
 * JSON: --json prints one array for the whole run, one element per file (or
 * per region listed, or per watch snapshot), each element on a line of its
 * own; --json-lines prints the same elements as JSON Lines, one per line
 * with no array around them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <libutil.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dump.h"
#include "regions.h"

#ifndef RSZSHM_TOOLS_VERSION
#define RSZSHM_TOOLS_VERSION "unknown"
#endif

#define TOOL "rszshm-dump"
#define MAX_PIDS 64		/* processes named per region; the count is exact */

enum json_form { JSON_NONE, JSON_ARRAY, JSON_LINES };

/* The elements of the output: an array, lines, or text. */
struct out {
	FILE *f;
	enum json_form form;
	unsigned long n;	/* elements begun */
};

static void item_begin(struct out *o)
{
	if (o->form == JSON_ARRAY)
		fputs(o->n ? ",\n" : "[", o->f);
	o->n++;
}

static void item_end(struct out *o)
{
	if (o->form == JSON_LINES)
		fputc('\n', o->f);
}

static void out_end(struct out *o)
{
	if (o->form == JSON_ARRAY)
		fputs(o->n ? "]\n" : "[]\n", o->f);
}

static void usage(FILE *f)
{
	fputs("usage: rszshm-dump [options] FILE...\n"
	      "       rszshm-dump --list [-j] [DIR|FILE...]\n"
	      "       rszshm-dump --watch[=SECONDS] [--count N] [-j] FILE\n"
	      "Show what rszshm region files hold; never writes to them.\n"
	      "  -r, --records        list the records: name, type, size, address, generation\n"
	      "  -x, --hex NAME       hexdump the value of the record NAME\n"
	      "  -c, --check          check the heap and records; alone, print only the verdict\n"
	      "  -l, --list           list the regions in each DIR (default /dev/shm and its\n"
	      "                       subdirectories): size, owner, the processes mapping\n"
	      "                       each, and whether it is stale (mapped by none)\n"
	      "  -w, --watch[=SECS]   print FILE's summary and records again whenever they\n"
	      "                       change, looking every SECS seconds (default 1)\n"
	      "  -n, --count N        with --watch: stop after N snapshots\n"
	      "  -j, --json           JSON: one array, an element per file, region or snapshot\n"
	      "      --json-lines     JSON Lines: the same elements, one per line, no array\n"
	      "  -h, --help           print this help\n"
	      "  -V, --version        print the version\n"
	      "Exit status: 0 fine, 1 damaged, 2 unreadable, not a region, or bad usage.\n",
	      f);
}

static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, TOOL ": %s%s%s (try --help)\n", what, arg ? " " : "", arg ? arg : "");
	return DUMP_UNUSABLE;
}

/* -------------------------------------------------------------- list */

struct list {
	struct out *o;
	struct procmaps pm;
	unsigned long shown;
	unsigned long stale;	/* regions listed that no visible process maps */
};

static const char *size_str(char *buf, size_t len, uint64_t n)
{
	if (n > INT64_MAX ||
	    humanize_number(buf, len < 5 ? len : 5, (int64_t)n, "", HN_AUTOSCALE,
			    HN_DECIMAL | HN_NOSPACE | HN_B) < 0)
		snprintf(buf, len, "%" PRIu64, n);
	return buf;
}

static const char *owner_str(char *buf, size_t len, uid_t uid)
{
	struct passwd *pw = getpwuid(uid);

	if (pw && pw->pw_name)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
	return buf;
}

static void list_json(struct list *l, const struct region *r, const pid_t *pids, size_t npids)
{
	FILE *f = l->o->f;
	const struct dump_info *in = &r->info;
	char owner[64], comm[64];
	size_t i;

	fputs("{\"file\":", f);
	json_string(f, r->path);
	fprintf(f, ",\"readable\":%s,\"owner_uid\":%u,\"owner\":", r->open_errno ? "false" : "true",
		(unsigned)r->st.st_uid);
	json_string(f, owner_str(owner, sizeof(owner), r->st.st_uid));
	fprintf(f, ",\"mode\":\"%04o\"", (unsigned)(r->st.st_mode & 07777));
	if (r->open_errno) {
		fputs(",\"length_bytes\":null,\"allocated_bytes\":null,\"span_bytes\":null,\"base\":null,\"heap\":null"
		      ",\"records\":null,\"consistent\":null", f);
	} else {
		fprintf(f, ",\"length_bytes\":%" PRIu64 ",\"allocated_bytes\":%" PRIu64
			",\"span_bytes\":%" PRIu64 ",\"base\":\"0x%" PRIx64 "\",\"heap\":%s"
			",\"records\":", in->len, in->alloc_bytes, in->hdr.max, in->base,
			in->hdr.flags & RSZSHM_HEAP ? "true" : "false");
		if ((in->hdr.flags & RSZSHM_HEAP) && !in->damaged)
			fprintf(f, "%" PRIu64, in->st.records);
		else
			fputs("null", f);
		fprintf(f, ",\"consistent\":%s", in->damaged ? "false" : "true");
	}
	fputs(",\"mapped_by\":[", f);
	for (i = 0; i < npids && i < MAX_PIDS; i++) {
		proc_comm(pids[i], comm, sizeof(comm));
		fprintf(f, "%s{\"pid\":%d,\"command\":", i ? "," : "", (int)pids[i]);
		json_string(f, comm);
		fputc('}', f);
	}
	fprintf(f, "],\"mapped_by_count\":%zu,\"stale\":%s,\"unseen_processes\":%u,\"error\":",
		npids, npids ? "false" : "true", l->pm.unseen);
	if (r->open_errno)
		json_string(f, strerror(r->open_errno));
	else if (in->error[0])
		json_string(f, in->error);
	else
		fputs("null", f);
	fputc('}', f);
}

static void list_text(struct list *l, const struct region *r, const pid_t *pids, size_t npids)
{
	FILE *f = l->o->f;
	const struct dump_info *in = &r->info;
	char len[16], span[16], base[24], recs[24], owner[64], comm[64];
	char vpath[4 * PATH_MAX + 1], vcomm[4 * sizeof(comm) + 1];
	const char *kind;
	size_t i;

	if (l->shown == 0)
		fprintf(f, "%-32s %6s %6s %-14s %-4s %7s %-8s %4s  %s\n", "PATH", "LENGTH", "SPAN",
			"BASE", "KIND", "RECORDS", "OWNER", "MODE", "STATE");
	if (r->open_errno) {
		snprintf(len, sizeof(len), "-");
		snprintf(span, sizeof(span), "-");
		snprintf(base, sizeof(base), "-");
		snprintf(recs, sizeof(recs), "-");
		kind = "-";
	} else {
		size_str(len, sizeof(len), in->len);
		size_str(span, sizeof(span), in->hdr.max);
		snprintf(base, sizeof(base), "0x%" PRIx64, in->base);
		kind = in->hdr.flags & RSZSHM_HEAP ? "heap" : "raw";
		if ((in->hdr.flags & RSZSHM_HEAP) && !in->damaged)
			snprintf(recs, sizeof(recs), "%" PRIu64, in->st.records);
		else
			snprintf(recs, sizeof(recs), "-");
	}
	fprintf(f, "%-32s %6s %6s %-14s %-4s %7s %-8s %04o  ",
		vis_str(vpath, sizeof(vpath), r->path), len, span, base, kind, recs,
		owner_str(owner, sizeof(owner), r->st.st_uid), (unsigned)(r->st.st_mode & 07777));
	if (r->open_errno)
		fprintf(f, "unreadable (%s), ", strerror(r->open_errno));
	else if (in->damaged)
		fputs("damaged, ", f);
	if (npids == 0) {
		fputs("stale\n", f);
		return;
	}
	fputs("mapped by", f);
	for (i = 0; i < npids && i < MAX_PIDS; i++) {
		proc_comm(pids[i], comm, sizeof(comm));
		fprintf(f, "%s %d (%s)", i ? "," : "", (int)pids[i],
			vis_str(vcomm, sizeof(vcomm), comm));
	}
	if (npids > MAX_PIDS)
		fprintf(f, " and %zu more", npids - MAX_PIDS);
	fputc('\n', f);
}

static void list_one(const struct region *r, void *arg)
{
	struct list *l = arg;
	pid_t pids[MAX_PIDS];
	size_t n = procmaps_find(&l->pm, r->st.st_dev, r->st.st_ino, pids, MAX_PIDS);

	item_begin(l->o);
	if (l->o->form == JSON_NONE)
		list_text(l, r, pids, n);
	else
		list_json(l, r, pids, n);
	item_end(l->o);
	l->shown++;
	l->stale += n == 0;
}

static int list_main(struct out *o, char **dirs, int ndirs)
{
	static char *dflt[] = { (char *)"/dev/shm" };
	struct list l = { .o = o };
	int i, status = DUMP_OK;

	if (ndirs == 0) {
		dirs = dflt;
		ndirs = 1;
	}
	if (procmaps_load(&l.pm) < 0) {
		fprintf(stderr, TOOL ": reading /proc: %s\n", strerror(errno));
		return DUMP_UNUSABLE;
	}
	for (i = 0; i < ndirs; i++)
		if (regions_walk(dirs[i], list_one, &l, stderr, TOOL) < 0)
			status = DUMP_UNUSABLE;
	out_end(o);
	if (o->form == JSON_NONE && l.shown == 0)
		fputs("no regions\n", o->f);
	fflush(o->f);	/* the note comes after the list, in a terminal too */
	if (l.pm.unseen && l.stale)
		fprintf(stderr, TOOL ": the maps of %u process%s could not be read (another user's"
			" or hidden): \"stale\" means that no process whose maps could be read maps"
			" the file\n", l.pm.unseen, l.pm.unseen == 1 ? "" : "es");
	procmaps_free(&l.pm);
	return status;
}

/* ------------------------------------------------------------- watch */

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

/*
 * Wait until the region may have changed: for now, @secs seconds (or until
 * SIGINT/SIGTERM).  This is the one place to change for waiting on the
 * region itself once the library can wait for a change of its records.
 */
static void wait_for_change(const char *path, double secs)
{
	struct timespec ts;

	(void)path;
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	if (!stop)
		nanosleep(&ts, NULL);	/* EINTR: a signal came, @stop says which */
}

/*
 * Print @path's summary and records (and its diagnostic, if any) each time
 * they differ from the last snapshot printed; @count snapshots at most (0:
 * until interrupted).  Returns the status of the last snapshot.
 */
static int watch_main(struct out *o, const struct dump_opts *dopts, const char *path,
		      double secs, unsigned long count)
{
	char *last = NULL, *snap = NULL, *err = NULL;
	size_t lastlen = 0, snaplen = 0, errlen = 0;
	struct sigaction sa;
	unsigned long shown = 0;
	int status = DUMP_OK;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);	/* no SA_RESTART: the wait ends */
	sigaction(SIGTERM, &sa, NULL);
	while (!stop && (count == 0 || shown < count)) {
		FILE *ms = open_memstream(&snap, &snaplen), *es = open_memstream(&err, &errlen);

		if (!ms || !es) {
			if (ms)
				fclose(ms);
			if (es)
				fclose(es);
			fprintf(stderr, TOOL ": %s\n", strerror(ENOMEM));
			status = DUMP_UNUSABLE;
			break;
		}
		status = dump_file(path, dopts, ms, es);
		fclose(es);
		if (errlen)
			fwrite(err, 1, errlen, ms);	/* a change of diagnostic is a change */
		fclose(ms);
		if (!last || snaplen != lastlen || memcmp(snap, last, snaplen) != 0) {
			char when[32];
			time_t now = time(NULL);
			struct tm tm;

			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
			shown++;
			item_begin(o);
			if (o->form == JSON_NONE) {
				fprintf(o->f, "=== %s snapshot %lu\n", when, shown);
				fwrite(snap, 1, snaplen - errlen, o->f);
				if (errlen)
					fwrite(err, 1, errlen, o->f);
			} else {
				fprintf(o->f, "{\"time\":\"%s\",\"snapshot\":%lu,\"status\":%d,\"region\":",
					when, shown, status);
				fwrite(snap, 1, snaplen - errlen, o->f);
				fputc('}', o->f);
			}
			item_end(o);
			if (fflush(o->f) != 0)
				break;	/* the reader went away */
			if (errlen && o->form != JSON_NONE)
				fwrite(err, 1, errlen, stderr);
			free(last);
			last = snap;
			lastlen = snaplen;
		} else {
			free(snap);
		}
		snap = NULL;
		free(err);
		err = NULL;
		if (count == 0 || shown < count)
			wait_for_change(path, secs);
	}
	free(last);
	out_end(o);
	return status;
}

/* -------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	enum { OPT_JSON_LINES = 0x100 };
	static const struct option longopts[] = {
		{ "records", no_argument, NULL, 'r' },
		{ "hex", required_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "json-lines", no_argument, NULL, OPT_JSON_LINES },
		{ "check", no_argument, NULL, 'c' },
		{ "list", no_argument, NULL, 'l' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct dump_opts o = { .records = false };
	struct out out = { .f = stdout, .form = JSON_NONE };
	bool list = false, watch = false;
	double secs = 1;
	unsigned long count = 0;
	int c, i, status = DUMP_OK;
	char *end;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":rx:jclw::n:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.records = true;
			break;
		case 'x':
			if (!optarg[0])
				return bad_usage("--hex needs a record name", NULL);
			o.hex = optarg;
			break;
		case 'j':
			out.form = JSON_ARRAY;
			break;
		case OPT_JSON_LINES:
			out.form = JSON_LINES;
			break;
		case 'c':
			o.check = true;
			break;
		case 'l':
			list = true;
			break;
		case 'w':
			watch = true;
			if (optarg) {
				errno = 0;
				secs = strtod(optarg, &end);
				if (errno || end == optarg || *end || !isfinite(secs) || secs <= 0 ||
				    secs > 86400)
					return bad_usage("--watch wants 0 < SECONDS <= 86400, not", optarg);
			}
			break;
		case 'n':
			errno = 0;
			count = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || count == 0 || optarg[0] == '-')
				return bad_usage("--count wants a number > 0, not", optarg);
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) == 0 ? DUMP_OK : DUMP_UNUSABLE;
		case 'V':
			puts(TOOL " " RSZSHM_TOOLS_VERSION);
			return fflush(stdout) == 0 ? DUMP_OK : DUMP_UNUSABLE;
		case ':':
			return bad_usage("missing argument for",
					 optopt == 'x' ? "--hex" : optopt == 'n' ? "--count" :
					 argv[optind - 1]);
		default:
			if (optopt) {
				char opt[3] = { '-', (char)optopt, '\0' };

				return bad_usage("unknown option", opt);
			}
			return bad_usage("unknown option", argv[optind - 1]);
		}
	}
	o.json = out.form != JSON_NONE;
	if (list && watch)
		return bad_usage("--list and --watch do not go together", NULL);
	if (count && !watch)
		return bad_usage("--count goes with --watch", NULL);
	if (list && (o.records || o.hex || o.check))
		return bad_usage("--list takes only --json or --json-lines", NULL);
	if (list) {
		status = list_main(&out, argv + optind, argc - optind);
	} else if (watch) {
		if (argc - optind != 1)
			return bad_usage("--watch takes one FILE", NULL);
		o.records = true;
		status = watch_main(&out, &o, argv[optind], secs, count);
	} else {
		if (optind >= argc)
			return bad_usage("no file given", NULL);
		for (i = optind; i < argc; i++) {
			int s;

			item_begin(&out);
			s = dump_file(argv[i], &o, stdout, stderr);
			item_end(&out);
			if (s > status)
				status = s;
		}
		out_end(&out);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, TOOL ": writing the output: %s\n", strerror(errno));
		return DUMP_UNUSABLE;
	}
	return status;
}
