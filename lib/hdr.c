/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hdr.c - the on-file header, and the rules every header must pass.
 *
 * The format (version 2), at file offset 0, native byte order, 512 bytes:
 *
 *   offset size field      rule checked by rszshm__hdr_validate()
 *   0      8    magic      == RSZSHM_MAGIC ("RSZSHM\x1a\n")          EPROTO
 *   8      4    version    == RSZSHM_FORMAT_VERSION                  EPROTONOSUPPORT
 *   12     4    hdr_size   == sizeof(struct rszshm_hdr) (512)        EPROTONOSUPPORT
 *   16     8    page_size  == this machine's page size               EPROTONOSUPPORT
 *   24     8    flags      only RSZSHM_ALLOCATE|HEAP|ANON            EPROTONOSUPPORT
 *   32     8    addr       non-zero, page aligned, addr + max fits   EBADMSG
 *                          the address space
 *   40     8    max        page aligned, at least one page           EBADMSG
 *   48     8    flen       page aligned, hdr_size < flen <= max      EBADMSG
 *   56     8    reserved   0                                         EBADMSG
 *   64     448  private    locks, roots of the heap and records, and the
 *                          words waiters sleep on (struct rszshm__shared);
 *                          checked by their own layers (version 2 added
 *                          the wait words and each record's stamp)
 *
 * and the file itself must be at least as long as the header, and at least
 * flen bytes long (ENODATA).  A header is only ever trusted after this check,
 * and only read with pread(2): a truncated file never raises SIGBUS here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "internal.h"

_Static_assert(sizeof(struct rszshm_hdr) == 512, "the on-file header is 512 bytes");
_Static_assert(offsetof(struct rszshm_hdr, addr) == 32, "format v1 layout");
_Static_assert(offsetof(struct rszshm_hdr, flen) == 48, "format v1 layout");
_Static_assert(offsetof(struct rszshm_hdr, private_) == 64, "format v1 layout");

void rszshm__hdr_init(struct rszshm_hdr *h, void *addr, uint64_t max, uint64_t flen,
		      unsigned flags)
{
	memset(h, 0, sizeof(*h));
	h->magic = RSZSHM_MAGIC;
	h->version = RSZSHM_FORMAT_VERSION;
	h->hdr_size = sizeof(*h);
	h->page_size = rszshm__page_size();
	h->flags = flags & RSZSHM__HDR_FLAGS;
	h->addr_bits_ = (uintptr_t)addr;
	h->max = max;
	h->flen = flen;
}

#define BAD(err, text) do { *why = (text); return -(err); } while (0)

int rszshm__hdr_validate(const struct rszshm_hdr *h, uint64_t file_size, const char **why)
{
	const char *ignore;
	uint64_t pg = rszshm__page_size();

	if (!why)
		why = &ignore;
	if (file_size < sizeof(*h))
		BAD(ENODATA, "file is shorter than a header");
	if (h->magic != RSZSHM_MAGIC)
		BAD(EPROTO, "not an rszshm region (bad magic)");
	if (h->version != RSZSHM_FORMAT_VERSION)
		BAD(EPROTONOSUPPORT, "unsupported format version");
	if (h->hdr_size != sizeof(*h))
		BAD(EPROTONOSUPPORT, "header size differs from this build's");
	if (h->page_size != pg)
		BAD(EPROTONOSUPPORT, "made with another page size");
	if (h->flags & ~(uint64_t)RSZSHM__HDR_FLAGS)
		BAD(EPROTONOSUPPORT, "unknown flags");
	if (h->addr_bits_ == 0)
		BAD(EBADMSG, "base address is zero");
	if (h->addr_bits_ % pg)
		BAD(EBADMSG, "base address is not page aligned");
	if (h->addr_bits_ > UINTPTR_MAX)
		BAD(EBADMSG, "base address does not fit a pointer");
	/* One page is the smallest span rszshm_mk() makes (flen <= max). */
	if (h->max % pg || h->max < pg)
		BAD(EBADMSG, "span is misaligned or too small");
	if (h->max > UINTPTR_MAX - h->addr_bits_ || h->max > SIZE_MAX)
		BAD(EBADMSG, "span runs past the end of the address space");
	if (h->flen % pg)
		BAD(EBADMSG, "length is not page aligned");
	if (h->flen <= sizeof(*h) || h->flen > h->max)
		BAD(EBADMSG, "length is outside the span");
	if (h->reserved_ != 0)
		BAD(EBADMSG, "reserved field is not zero");
	if (file_size < h->flen)
		BAD(ENODATA, "file is shorter than the length in its header (truncated)");
	return 0;
}

int rszshm__hdr_read(int fd, struct rszshm_hdr *h, uint64_t *file_size, const char **why)
{
	const char *ignore;
	bool regular;
	ssize_t n;
	int rc;

	if (!why)
		why = &ignore;
	*why = NULL;
	rc = rszshm__sys_fsize(fd, file_size, &regular);
	if (rc < 0)
		return rc;
	if (!regular)
		BAD(EPROTO, "not a regular file");
	n = rszshm__sys_pread(fd, h, sizeof(*h), 0);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(*h))
		BAD(ENODATA, "file is shorter than a header");
	return rszshm__hdr_validate(h, *file_size, why);
}
