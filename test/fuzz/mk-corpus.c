/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mk-corpus.c - writes fuzz-dump's seed corpus into a directory.
 *
 *   fuzz-mk-corpus OUTDIR
 *
 * Two seeds per image of seeds.c: OUTDIR/seed-NAME holds the whole region
 * file (fuzz-dump's "file" inputs), OUTDIR/seed-NAME.patch the one-byte
 * input that selects the same image unchanged ("patch" inputs: see
 * fuzz-dump.c).  Exit status 0, or 1 with a message.
 */
#define _GNU_SOURCE
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "seeds.h"

static void write_seed(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		err(1, "%s", path);
	if (write(fd, p, n) != (ssize_t)n || close(fd) < 0)
		err(1, "%s", path);
}

static void emit(const char *name, const void *p, size_t n, void *arg)
{
	static unsigned char image;
	unsigned char sel = (unsigned char)(0x80 | image++);
	char patch[64];

	write_seed(arg, name, p, n);
	snprintf(patch, sizeof(patch), "%s.patch", name);
	write_seed(arg, patch, &sel, 1);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		errx(1, "usage: fuzz-mk-corpus OUTDIR");
	return seeds_make(emit, argv[1]) == 0 ? 0 : 1;
}
