/* SPDX-License-Identifier: Apache-2.0 */
/*
 * abi-probe.c - one side of the cross-ABI test (test/cross-abi.sh), built by
 * every build: "abi-probe mk PATH" makes a heap region with a record in it
 * and leaves the file; "abi-probe at PATH" attaches it and reports what
 * happened.  No fork, no threads: it runs under any emulator.
 *
 * Exit status of "at": 0 attached and the record is there, 3 refused with
 * EPROTONOSUPPORT, 1 anything else; 2 usage or setup error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rszshm.h>

int main(int argc, char **argv)
{
	struct rszshm r;
	struct rszshm_rec_info info;
	static const char hello[] = "made here";

	if (argc != 3) {
		fprintf(stderr, "usage: abi-probe mk|at PATH\n");
		return 2;
	}
	if (strcmp(argv[1], "mk") == 0) {
		if (!rszshm_mk_flags(&r, 64 * KiB, argv[2], RSZSHM_DFLT_SCAN, RSZSHM_HEAP) ||
		    rszshm_rec_put(&r, "hello", 1, hello, sizeof(hello)) != 0) {
			fprintf(stderr, "abi-probe: mk %s: %s\n", argv[2], strerror(errno));
			return 2;
		}
		printf("made %s at %p\n", argv[2], (void *)r.hdr);
		return rszshm_dt(&r) == 0 ? 0 : 2;
	}
	if (strcmp(argv[1], "at") != 0) {
		fprintf(stderr, "usage: abi-probe mk|at PATH\n");
		return 2;
	}
	if (!rszshm_at(&r, argv[2])) {
		int err = errno;

		printf("refused %s: %s%s\n", argv[2], strerror(err),
		       err == EPROTONOSUPPORT ? " (EPROTONOSUPPORT)" : "");
		return err == EPROTONOSUPPORT ? 3 : 1;
	}
	if (!rszshm_rec_find(&r, "hello", &info) || info.size != sizeof(hello) ||
	    memcmp(info.ptr, hello, sizeof(hello)) != 0) {
		printf("attached %s, but its record is not there\n", argv[2]);
		rszshm_dt(&r);
		return 1;
	}
	printf("attached %s at %p\n", argv[2], (void *)r.hdr);
	return rszshm_dt(&r) == 0 ? 0 : 1;
}
