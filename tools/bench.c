/* SPDX-License-Identifier: Apache-2.0 */
/* bench.c - rszshm-bench (not yet written). */
#include "bench.h"
int main(void) { return 0; }
