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

/* Exit statuses of the tool, and results of dump_file(). */
enum dump_status {
	DUMP_OK = 0,		/* read and consistent */
	DUMP_DAMAGED = 1,	/* a region, but its heap or record index is damaged */
	DUMP_UNUSABLE = 2,	/* unreadable, not a region, or bad usage */
};

/* What to print for each file; all false/NULL prints the summary alone. */
struct dump_opts {
	bool records;		/* --records: the table of records */
	bool json;		/* --json: one JSON object per file, one line each */
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
 * Returns: a enum dump_status.
 */
int dump_file(const char *path, const struct dump_opts *o, FILE *out, FILE *err);

#endif /* RSZSHM_DUMP_H */
