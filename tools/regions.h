/* SPDX-License-Identifier: Apache-2.0 */
/*
 * regions.h - find the region files in directories and the processes that
 * map them: the engine of rszshm-dump --list and of rszshm-clean.
 *
 * Which processes map a file is read from /proc/PID/maps, matching the
 * file's device and inode (so a renamed or deleted-and-recreated name is
 * never confused with another file).  A process whose maps the caller may
 * not read (another user's, for a non-root caller) is counted as unseen: a
 * file no visible process maps is "stale" only as far as the caller can see.
 */
#ifndef RSZSHM_REGIONS_H
#define RSZSHM_REGIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "dump.h"

/* Every file mapping of every process visible in /proc. */
struct procmaps {
	struct procmap {
		dev_t dev;
		ino_t ino;
		pid_t pid;
	} *m;
	size_t n, cap;
	unsigned unseen;	/* processes whose maps could not be read */
};

/* Read /proc/ (all of it, once).  0, or -1 with errno set (ENOMEM, or
 * /proc unreadable). */
int procmaps_load(struct procmaps *pm);
void procmaps_free(struct procmaps *pm);
/* The processes mapping (@dev, @ino): up to @max pids into @pids, each once;
 * returns how many there are in all. */
size_t procmaps_find(const struct procmaps *pm, dev_t dev, ino_t ino, pid_t *pids, size_t max);

/* One file met by the walk. */
struct region {
	const char *path;
	struct stat st;		/* lstat(2) of @path */
	int open_errno;		/* the file could not be read: why (@info unset) */
	struct dump_info info;	/* dump_probe()'s findings, when readable */
};

/*
 * regions_walk - call @fn for each region file under @dir
 *
 * @dir itself when it is a regular file; otherwise the regular files in it
 * and in its subdirectories one level down (where the library's template,
 * RSZSHM_DFLT_FNAME, puts them).  Symbolic links are not followed.  A file
 * whose header does not validate is not a region and is skipped; one that
 * cannot be opened is passed with @open_errno set (it may be a region).
 * A directory that cannot be read gives a line on @err.
 *
 * Returns: 0, or -1 if @dir or a subdirectory could not be read.
 */
typedef void region_fn(const struct region *r, void *arg);
int regions_walk(const char *dir, region_fn *fn, void *arg, FILE *err, const char *tool);

/* The first @max bytes of the command name of @pid ("?" if gone). */
void proc_comm(pid_t pid, char *buf, size_t max);

/* @s with vis(3) escapes (C style, octal, whitespace but spaces escaped), so
 * that it prints as one line; @buf must hold 4 * strlen(@s) + 1 bytes, or
 * the result is cut short. */
const char *vis_str(char *buf, size_t len, const char *s);

/* Write @s as a JSON string (any byte outside printable ASCII as \u00XX). */
void json_string(FILE *f, const char *s);

#endif /* RSZSHM_REGIONS_H */
