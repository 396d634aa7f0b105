/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replay.c - main() for fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput() once on each file given, or on each file of each
 * directory given, and prints how many it ran.  Exit status 0, or 1 if an
 * input could not be read (a crash is a crash).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0;
	FILE *f = fopen(path, "rb");

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (n == cap) {
			unsigned char *p = realloc(buf, cap = cap ? 2 * cap : 65536);

			if (!p) {
				fprintf(stderr, "replay: %s: %s\n", path, strerror(ENOMEM));
				free(buf);
				fclose(f);
				return -1;
			}
			buf = p;
		}
		size_t k = fread(buf + n, 1, cap - n, f);

		n += k;
		if (k == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long ran = 0;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **ents;
		int n;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if ((n = scandir(argv[i], &ents, NULL, alphasort)) < 0) {
				fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
				status = 1;
				continue;
			}
			for (int k = 0; k < n; k++) {
				char p[4096];

				if (ents[k]->d_name[0] != '.') {
					snprintf(p, sizeof(p), "%s/%s", argv[i], ents[k]->d_name);
					if (run_file(p) < 0)
						status = 1;
					else
						ran++;
				}
				free(ents[k]);
			}
			free(ents);
		} else if (run_file(argv[i]) < 0) {
			status = 1;
		} else {
			ran++;
		}
	}
	printf("replay: %lu inputs\n", ran);
	return status;
}
