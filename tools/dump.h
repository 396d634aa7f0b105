/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dump.h - the engine of rszshm-dump: read one region file, print what it
 * holds, and judge it.
 *
 * dump_file() is the whole per-file work of the tool: rszshm-dump.c calls it
 * for each FILE argument, the dump tests call it in-process, and the fuzzer
 * (test/fuzz/fuzz-dump.c) feeds it arbitrary bytes.  It only reads the file
 * (open read-only, mapped PROT_READ at any address), takes no lock, allocates
 * nothing whose size comes from the file, and bounds every walk.
 */
#ifndef RSZSHM_DUMP_H
#define RSZSHM_DUMP_H

#include <stdbool.h>
#include <stdio.h>

#include <rszshm.h>

/* Exit statuses of the tool, and results of dump_file(). */
enum dump_status {
	DUMP_OK = 0,		/* read and consistent */
	DUMP_DAMAGED = 1,	/* a region, but its heap or record index is damaged */
	DUMP_UNUSABLE = 2,	/* unreadable, not a region, or bad usage */
};

/* What to print for each file; all false/NULL prints the summary alone. */
struct dump_opts {
	bool records;		/* --records: the table of records */
	bool json;		/* --json, --json-lines: a JSON object per file */
	bool check;		/* --check: print the verdict of the consistency check */
	const char *hex;	/* --hex NAME: a hexdump of that record's value */
};

/*
 * dump_file - print what the region file @path holds, as @o asks
 * @path: the file (never written, never locked)
 * @o: what to print
 * @out: where the output goes
 * @err: where the one-line diagnostics go ("rszshm-dump: PATH: problem")
 *
 * Safe on any file at all: a file that is not a region, or a region whose
 * header, heap or records are damaged, gives a diagnostic and a status, never
 * a crash, an endless loop or an allocation sized by the file.  A file that
 * shrinks while being read (SIGBUS) is reported as unreadable.  Installs a
 * SIGBUS handler for the duration of the call: not thread-safe.
 *
 * With @o->json, prints one JSON object on one line, without a newline: the
 * caller puts the objects in an array or on lines of their own.
 *
 * Returns: a enum dump_status.
 */
int dump_file(const char *path, const struct dump_opts *o, FILE *out, FILE *err);

/* What dump_probe() found in a file. */
struct dump_info {
	bool region;			/* the header validated and the check ran */
	struct rszshm_hdr hdr;		/* the header, when @region */
	uint64_t base;			/* the recorded base address */
	uint64_t len;			/* the recorded length */
	uint64_t alloc_bytes;		/* blocks the file has on storage */
	bool damaged;			/* the check's verdict, when @region */
	struct rszshm_stats st;		/* the heap's figures, when not @damaged */
	char error[512];		/* the first problem found, "" if none */
};

/*
 * dump_probe - as dump_file(), but print nothing: fill @info and return the
 * status.  Same safety (and the same SIGBUS handler: not thread-safe).
 */
int dump_probe(const char *path, struct dump_info *info);

#endif /* RSZSHM_DUMP_H */
