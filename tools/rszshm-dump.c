/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rszshm-dump.c - rszshm-dump: inspect region files from the command line.
 *
 *   rszshm-dump [-r] [-j] [-c] [-x NAME] FILE...
 *
 * This file is the command line: options, the loop over the files, and the
 * exit status (the worst of the files').  The work on each file is done by
 * dump_file() (dump.c), which the tests and the fuzzer call too.  The
 * manual is rszshm-dump.1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "dump.h"

#ifndef RSZSHM_DUMP_VERSION
#define RSZSHM_DUMP_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fputs("usage: rszshm-dump [options] FILE...\n"
	      "Show what rszshm region files hold; never writes to them.\n"
	      "  -r, --records   list the records: name, type, size, address, generation\n"
	      "  -x, --hex NAME  hexdump the value of the record NAME\n"
	      "  -j, --json      one JSON object per file instead of text\n"
	      "  -c, --check     check the heap and records; alone, print only the verdict\n"
	      "  -h, --help      print this help\n"
	      "  -V, --version   print the version\n"
	      "Exit status: 0 fine, 1 damaged, 2 unreadable, not a region, or bad usage.\n",
	      f);
}

static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "rszshm-dump: %s%s%s (try --help)\n", what, arg ? " " : "", arg ? arg : "");
	return DUMP_UNUSABLE;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "records", no_argument, NULL, 'r' },
		{ "hex", required_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct dump_opts o = { .records = false };
	int c, i, status = DUMP_OK;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":rx:jchV", longopts, NULL)) != -1) {
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
			o.json = true;
			break;
		case 'c':
			o.check = true;
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) == 0 ? DUMP_OK : DUMP_UNUSABLE;
		case 'V':
			puts("rszshm-dump " RSZSHM_DUMP_VERSION);
			return fflush(stdout) == 0 ? DUMP_OK : DUMP_UNUSABLE;
		case ':':
			return bad_usage("missing argument for", optopt == 'x' ? "--hex" : argv[optind - 1]);
		default:
			if (optopt) {
				char opt[3] = { '-', (char)optopt, '\0' };

				return bad_usage("unknown option", opt);
			}
			return bad_usage("unknown option", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return bad_usage("no file given", NULL);
	for (i = optind; i < argc; i++) {
		int s = dump_file(argv[i], &o, stdout, stderr);

		if (s > status)
			status = s;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "rszshm-dump: writing the output: %s\n", strerror(errno));
		return DUMP_UNUSABLE;
	}
	return status;
}
