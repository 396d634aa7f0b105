/* SPDX-License-Identifier: Apache-2.0 */
/* test-core.c - span, header, mapping, growth (lib/span.c, hdr.c, map.c). */
#define _GNU_SOURCE
#include "test-common.h"

START_TEST(test_mk_at_roundtrip)
{
	char path[256];
	struct rszshm a, b;

	test_path(path, sizeof(path), "roundtrip");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk(&a, 4096, path));
	ck_assert_ptr_eq(a.hdr->addr, a.hdr);
	*(int *)a.dat = 42;
	ck_assert_int_eq(rszshm_dt(&a), 0);
	ck_assert_ptr_nonnull(rszshm_at(&b, path));
	ck_assert_int_eq(*(int *)b.dat, 42);
	ck_assert_int_eq(rszshm_grow(&b), 1);
	ck_assert_uint_eq(b.flen, 2 * (4096 + 4096));
	ck_assert_int_eq(rszshm_dt(&b), 0);
	ck_assert_int_eq(rszshm_unlink(&b), 0);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("core");

	TEST_ADD(s, test_mk_at_roundtrip);
	return s;
}

const struct test_helper test_helpers[] = { { NULL, NULL } };
