/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rszshm-clean.c - rszshm-clean: remove stale region files.
 *
 *   rszshm-clean [-n] [-v] [DIR|FILE...]
 *
 * A separate program, not a flag of rszshm-dump: rszshm-dump promises never
 * to write, so that it can be run on anything, by anyone, at any time; this
 * one removes files, and says so in its name.
 *
 * A file is removed only if its header validates (it is a region: other
 * files are never touched) and no process maps it.  The processes are found
 * in /proc/PID/maps by the file's device and inode (regions.c).  To narrow
 * the race with a process attaching at that moment, a file found stale is
 * first renamed to a tombstone name in its directory (from then on nobody
 * can open it by name), the processes are looked at again, and only then is
 * it unlinked; if a process maps it by then, it is renamed back.  What
 * remains: a process that opened the file before the rename and maps it
 * after the second look keeps a mapping of a file that has no name any
 * more; its data stays valid for it, but nobody else can attach to it.
 *
 * A caller who cannot read the maps of some processes (another user's, for
 * a non-root caller) cannot see whether they map a file: then only files
 * that nobody but their owner may open (mode without group and other bits)
 * and that the caller owns are removed; root sees every process.
 *
 * After removing a file, its directory is removed too if it is one the
 * library's template makes (rszshm_XXXXXX) and is now empty.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "regions.h"

#ifndef RSZSHM_TOOLS_VERSION
#define RSZSHM_TOOLS_VERSION "unknown"
#endif

#define TOOL "rszshm-clean"

struct clean {
	bool dry_run;
	bool verbose;
	struct procmaps pm;
	unsigned removed, kept;
	int status;
};

static void usage(FILE *f)
{
	fputs("usage: rszshm-clean [-n] [-v] [DIR|FILE...]\n"
	      "Remove the stale region files (mapped by no process) in each DIR (default\n"
	      "/dev/shm and its subdirectories) or FILE.  Files that are not regions, and\n"
	      "regions some process maps, are left alone.\n"
	      "  -n, --dry-run   say what would be removed, remove nothing\n"
	      "  -v, --verbose   also say which regions are kept, and why\n"
	      "  -h, --help      print this help\n"
	      "  -V, --version   print the version\n"
	      "Exit status: 0 done, 1 a stale region could not be removed, 2 bad usage or\n"
	      "a DIR or FILE that cannot be read.\n",
	      f);
}

static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, TOOL ": %s%s%s (try --help)\n", what, arg ? " " : "", arg ? arg : "");
	return 2;
}

/* The processes that map (@dev, @ino) now, looking at /proc again. */
static size_t mappers_now(struct clean *c, const struct region *r)
{
	size_t n;

	procmaps_free(&c->pm);
	if (procmaps_load(&c->pm) < 0)
		return (size_t)-1;
	n = procmaps_find(&c->pm, r->st.st_dev, r->st.st_ino, NULL, 0);
	return n;
}

static bool may_judge(const struct clean *c, const struct region *r)
{
	if (c->pm.unseen == 0)
		return true;
	return r->st.st_uid == geteuid() && (r->st.st_mode & 077) == 0;
}

/* Paths are printed with vis(3) escapes: one line each, whatever the bytes. */
static const char *vp(const char *path)
{
	static char buf[4 * PATH_MAX + 1];

	return vis_str(buf, sizeof(buf), path);
}

static void keep(struct clean *c, const struct region *r, const char *why)
{
	c->kept++;
	if (c->verbose)
		printf("kept %s: %s\n", vp(r->path), why);
}

/* Remove @r's directory if the library's template made it and it is empty. */
static void remove_dir(const char *path)
{
	char copy[PATH_MAX], *dir, *base;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	base = strrchr(dir, '/');
	base = base ? base + 1 : dir;
	if (strncmp(base, "rszshm_", 7) == 0 && strlen(base) == 13)
		rmdir(dir);	/* ENOTEMPTY: something else lives there; leave it */
}

static void clean_one(const struct region *r, void *arg)
{
	struct clean *c = arg;
	char tomb[PATH_MAX], copy[PATH_MAX];
	size_t n;

	if (r->open_errno) {
		keep(c, r, strerror(r->open_errno));
		return;
	}
	n = procmaps_find(&c->pm, r->st.st_dev, r->st.st_ino, NULL, 0);
	if (n > 0) {
		keep(c, r, "mapped by a process");
		return;
	}
	if (!may_judge(c, r)) {
		keep(c, r, "others may map it and their processes cannot be seen");
		return;
	}
	if (c->dry_run) {
		printf("would remove %s\n", vp(r->path));
		return;
	}
	/* The tombstone: same directory, a name no attacher uses. */
	snprintf(copy, sizeof(copy), "%s", r->path);
	if ((size_t)snprintf(tomb, sizeof(tomb), "%s/.rszshm-clean.%d.%lu", dirname(copy),
			     (int)getpid(), (unsigned long)r->st.st_ino) >= sizeof(tomb)) {
		fprintf(stderr, TOOL ": %s: %s\n", vp(r->path), strerror(ENAMETOOLONG));
		c->status = 1;
		return;
	}
	if (renameat2(AT_FDCWD, r->path, AT_FDCWD, tomb, RENAME_NOREPLACE) < 0) {
		if (errno == ENOENT)
			return;	/* someone else removed it */
		fprintf(stderr, TOOL ": %s: %s\n", vp(r->path), strerror(errno));
		c->status = 1;
		return;
	}
	/* Nobody opens it by name now: look at the processes once more. */
	n = mappers_now(c, r);
	if (n != 0) {
		if (renameat2(AT_FDCWD, tomb, AT_FDCWD, r->path, RENAME_NOREPLACE) < 0) {
			fprintf(stderr, TOOL ": %s: a process mapped it meanwhile, and putting it"
				" back failed (%s): it is now %s\n", vp(r->path), strerror(errno), tomb);
			c->status = 1;
		}
		keep(c, r, n == (size_t)-1 ? "cannot read /proc" : "a process mapped it meanwhile");
		return;
	}
	if (unlink(tomb) < 0) {
		fprintf(stderr, TOOL ": %s: %s\n", vp(tomb), strerror(errno));
		c->status = 1;
		return;
	}
	c->removed++;
	printf("removed %s\n", vp(r->path));
	remove_dir(r->path);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static char *dflt[] = { (char *)"/dev/shm" };
	struct clean c = { .status = 0 };
	char **dirs;
	int ch, i, ndirs;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "nvhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			c.dry_run = true;
			break;
		case 'v':
			c.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) == 0 ? 0 : 2;
		case 'V':
			puts(TOOL " " RSZSHM_TOOLS_VERSION);
			return fflush(stdout) == 0 ? 0 : 2;
		default:
			if (optopt) {
				char opt[3] = { '-', (char)optopt, '\0' };

				return bad_usage("unknown option", opt);
			}
			return bad_usage("unknown option", argv[optind - 1]);
		}
	}
	dirs = optind < argc ? argv + optind : dflt;
	ndirs = optind < argc ? argc - optind : 1;
	if (procmaps_load(&c.pm) < 0) {
		fprintf(stderr, TOOL ": reading /proc: %s\n", strerror(errno));
		return 2;
	}
	for (i = 0; i < ndirs; i++)
		if (regions_walk(dirs[i], clean_one, &c, stderr, TOOL) < 0)
			c.status = 2;
	procmaps_free(&c.pm);
	if (c.verbose)
		printf("%u removed, %u kept\n", c.removed, c.kept);
	if (fflush(stdout) != 0)
		return 2;
	return c.status;
}
