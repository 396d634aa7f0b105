/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seeds.h - real region images for fuzz-dump: made by the library in
 * memfds (RSZSHM_ANON: nothing in the file system), handed to a callback.
 */
#ifndef RSZSHM_FUZZ_SEEDS_H
#define RSZSHM_FUZZ_SEEDS_H

#include <stddef.h>

/* Called once per image, in a fixed order; @p is valid during the call. */
typedef void seed_emit(const char *name, const void *p, size_t n, void *arg);

/* Make every seed image; 0, or -1 with errno set and a message on stderr. */
int seeds_make(seed_emit *emit, void *arg);

#endif
