/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-dump.c - libFuzzer target over rszshm-dump's engine.
 *
 * An input is one of two kinds, told apart by its first byte:
 *  - a "file" input (first byte below 0x80, as every region file's is: its
 *    magic starts with 'R'): the input is the whole file;
 *  - a "patch" input (first byte 0x80 or above): the file is one of the
 *    real region images of seeds.c, chosen by the low bits of that byte,
 *    changed by the patches that follow.  Each patch is 4 bytes, OFFSET (24
 *    bits, little-endian, taken modulo the image's length) and N, then N
 *    bytes written at OFFSET (cut at the image's end); N = 0 truncates the
 *    file at OFFSET instead.  Small inputs thus reach deep into the heap and
 *    record walkers, which whole-file inputs of hundreds of KiB rarely do.
 *
 * The file is written to a memfd that dump_file() (tools/dump.c) reads
 * through /proc/self/fd like any path, as the tool does: header checks,
 * mapping, the consistency walk, the record table, the hexdump and the
 * JSON; twice, in text and in JSON, with --hex on names the seeds use.
 * Output goes to /dev/null: only crashes, hangs, leaks, sanitizer reports
 * and statuses outside 0..2 count.
 *
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer,address), this is a
 * libFuzzer binary; otherwise replay.c gives it a main() that runs each
 * input once, as the test 'fuzz-dump' (suite fuzz).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dump.h"
#include "seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IMAGES 8

static struct image {
	unsigned char *p;
	size_t n;
} images[MAX_IMAGES];
static unsigned nimages;
static unsigned char *scratch;	/* the patched image */
static size_t scratch_len;

static int fd = -1;
static char path[64];
static FILE *null;

static void keep(const char *name, const void *p, size_t n, void *arg)
{
	(void)name;
	(void)arg;
	if (nimages == MAX_IMAGES || !(images[nimages].p = malloc(n)))
		abort();
	memcpy(images[nimages].p, p, n);
	images[nimages++].n = n;
	if (n > scratch_len && !(scratch = realloc(scratch, scratch_len = n)))
		abort();
}

static void setup(void)
{
	fd = memfd_create("fuzz-dump", MFD_CLOEXEC);
	null = fopen("/dev/null", "w");
	if (fd < 0 || !null || seeds_make(keep, NULL) < 0 || nimages == 0) {
		perror("fuzz-dump: setup");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
}

/* Build the file of a patch input in @scratch; returns its length. */
static size_t patch(const uint8_t *data, size_t size)
{
	const struct image *im = &images[(data[0] & 0x7f) % nimages];
	size_t len = im->n, i = 1;

	memcpy(scratch, im->p, len);
	while (size - i >= 4) {
		size_t off = (data[i] | (size_t)data[i + 1] << 8 | (size_t)data[i + 2] << 16) % im->n;
		size_t n = data[i + 3];

		i += 4;
		if (n == 0) {
			len = off < len ? off : len;
			continue;
		}
		n = n < size - i ? n : size - i;
		memcpy(scratch + off, data + i, n < im->n - off ? n : im->n - off);
		i += n;
	}
	return len;
}

/*
 * Make the memfd hold @p: only the pages that differ from what it holds are
 * written (most inputs change a few bytes of a large image), and its length
 * is set last.
 */
static void write_file(const uint8_t *p, size_t n)
{
	static unsigned char *held;
	static size_t held_len, held_cap;
	const size_t pg = 4096;

	if (n > held_cap) {
		if (!(held = realloc(held, n)))
			abort();
		memset(held + held_cap, 0, n - held_cap);
		held_cap = n;
	}
	for (size_t off = 0; off < n; off += pg) {
		size_t k = n - off < pg ? n - off : pg;

		if (off + k <= held_len && memcmp(held + off, p + off, k) == 0)
			continue;
		if (pwrite(fd, p + off, k, (off_t)off) != (ssize_t)k)
			abort();
		memcpy(held + off, p + off, k);
	}
	if (n != held_len && ftruncate(fd, (off_t)n) < 0)
		abort();
	/* Bytes past a shorter file read back as zeros if it grows again. */
	if (n < held_len)
		memset(held + n, 0, held_len - n);
	held_len = n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dump_opts opts[] = {
		{ .records = true, .check = true, .hex = "beta" },
		{ .records = true, .json = true, .hex = "alpha" },
	};

	if (fd < 0)
		setup();
	if (size > 0 && data[0] >= 0x80)
		write_file(scratch, patch(data, size));
	else
		write_file(data, size);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		int rc = dump_file(path, &opts[i], null, null);

		if (rc < DUMP_OK || rc > DUMP_UNUSABLE)
			abort();
	}
	return 0;
}
