/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hdr.c - the on-file header, and the rules every header must pass.
 *
 * The format (version 3), at file offset 0, native byte order, 512 bytes:
 *
 *   offset size field      rule checked by rszshm__hdr_validate()
 *   0      8    magic      == RSZSHM_MAGIC ("RSZSHM\x1a\n")          EPROTO
 *                          (byte-swapped: the other byte order)      EPROTONOSUPPORT
 *   8      4    version    == RSZSHM_FORMAT_VERSION                  EPROTONOSUPPORT
 *   56     8    abi        == this build's ABI (see below)           EPROTONOSUPPORT
 *   12     4    hdr_size   == sizeof(struct rszshm_hdr) (512)        EPROTONOSUPPORT
 *   16     8    page_size  == this machine's page size               EPROTONOSUPPORT
 *   24     8    flags      only RSZSHM_ALLOCATE|HEAP|ANON            EPROTONOSUPPORT
 *   32     8    addr       non-zero, page aligned, addr + max fits   EBADMSG
 *                          this machine's user address space
 *   40     8    max        page aligned, at least one page           EBADMSG
 *   48     8    flen       page aligned, hdr_size < flen <= max      EBADMSG
 *   64     448  private    locks, roots of the heap and records, the PID
 *                          namespace of the attached writers, and the
 *                          words waiters sleep on (struct rszshm__shared);
 *                          checked by their own layers (version 2 added
 *                          the ABI, the namespace, the wait words and each
 *                          record's stamp; version 3 the heap's thread
 *                          slots)
 *
 * and the file itself must be at least as long as the header, and at least
 * flen bytes long (ENODATA).  The rules are checked in the order above, but
 * abi right after version: a region from another ABI is refused for that
 * reason, whatever its other fields look like to this build.
 *
 * The ABI word (version 1 called it reserved, and kept it 0) says what decides
 * whether a build can use the region's private area, whose locks are
 * pthread_mutex_t laid out by the C library of one architecture:
 *
 *   bits 0-15   ELF machine of the build (EM_X86_64, EM_386, EM_AARCH64, ...;
 *               0 for an architecture not listed in abi_machine())
 *   bits 16-23  sizeof(void *)
 *   bits 24-31  sizeof(pthread_mutex_t)
 *   bits 32-39  byte order: 1 little-endian, 2 big-endian
 *   bits 40-55  0
 *   bits 56-63  'A', so that a zero word never passes
 *
 * Two builds share a region only if their words are equal: x86-64 with
 * x86-64, i386 with i386, aarch64 with aarch64, whatever the compiler.
 *
 * A header is only ever trusted after this check, and only read with
 * pread(2): a truncated file never raises SIGBUS here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

_Static_assert(sizeof(struct rszshm_hdr) == 512, "the on-file header is 512 bytes");
_Static_assert(offsetof(struct rszshm_hdr, addr) == 32, "format v1 layout");
_Static_assert(offsetof(struct rszshm_hdr, flen) == 48, "format v1 layout");
_Static_assert(offsetof(struct rszshm_hdr, abi) == 56, "format v2 layout");
_Static_assert(offsetof(struct rszshm_hdr, private_) == 64, "format v1 layout");

static unsigned abi_machine(void)
{
#if defined(__x86_64__)
	return 62;	/* EM_X86_64 (x32 too: told apart by the pointer size) */
#elif defined(__i386__)
	return 3;	/* EM_386 */
#elif defined(__aarch64__)
	return 183;	/* EM_AARCH64 */
#elif defined(__arm__)
	return 40;	/* EM_ARM */
#elif defined(__riscv)
	return 243;	/* EM_RISCV */
#elif defined(__powerpc64__)
	return 21;	/* EM_PPC64 */
#elif defined(__powerpc__)
	return 20;	/* EM_PPC */
#elif defined(__s390__)
	return 22;	/* EM_S390 */
#elif defined(__mips__)
	return 8;	/* EM_MIPS */
#elif defined(__loongarch__)
	return 258;	/* EM_LOONGARCH */
#else
	return 0;	/* EM_NONE: not listed */
#endif
}

uint64_t rszshm__hdr_abi(void)
{
	const uint16_t one = 1;
	uint64_t order = *(const unsigned char *)&one == 1 ? 1 : 2;

	return (uint64_t)abi_machine() | (uint64_t)sizeof(void *) << 16 |
	       (uint64_t)sizeof(pthread_mutex_t) << 24 | order << 32 | (uint64_t)'A' << 56;
}

static const char *machine_name(unsigned em)
{
	switch (em) {
	case 62: return "x86-64";
	case 3: return "i386";
	case 183: return "aarch64";
	case 40: return "arm";
	case 243: return "riscv";
	case 21: return "ppc64";
	case 20: return "ppc";
	case 22: return "s390";
	case 8: return "mips";
	case 258: return "loongarch";
	default: return NULL;
	}
}

int rszshm__hdr_abi_name(uint64_t abi, char *buf, size_t len)
{
	const char *m = machine_name((unsigned)(abi & 0xffff));
	unsigned order = (unsigned)(abi >> 32 & 0xff);
	char other[24];

	if (abi >> 56 != 'A' || (abi >> 40 & 0xffff) != 0)
		return snprintf(buf, len, "unknown ABI %#llx", (unsigned long long)abi);
	if (!m) {
		snprintf(other, sizeof(other), "machine %u", (unsigned)(abi & 0xffff));
		m = other;
	}
	return snprintf(buf, len, "%s (%u-bit pointers, %s-endian, %u-byte locks)", m,
			(unsigned)(abi >> 16 & 0xff) * 8,
			order == 1 ? "little" : order == 2 ? "big" : "unknown",
			(unsigned)(abi >> 24 & 0xff));
}

/* The refusal names both ABIs; the text lives per thread, like strerror's. */
static const char *abi_why(uint64_t theirs)
{
	static _Thread_local char text[256];
	char a[96], b[96];

	rszshm__hdr_abi_name(theirs, a, sizeof(a));
	rszshm__hdr_abi_name(rszshm__hdr_abi(), b, sizeof(b));
	snprintf(text, sizeof(text), "made by another ABI: %s; this build is %s", a, b);
	return text;
}

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
	h->abi = rszshm__hdr_abi();
}

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static uintptr_t user_end = UINTPTR_MAX;
static pthread_once_t user_end_once = PTHREAD_ONCE_INIT;

/*
 * Can a page at @a be mapped here (or is one there already)?  A raw mmap,
 * not sys.c's wrapper: this looks at the machine, it makes no region, and
 * must not count as a call for the fault injector.
 */
static bool page_fits(uintptr_t a, size_t pg)
{
	void *m = mmap((void *)a, pg, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (m == MAP_FAILED)
		return errno == EEXIST;
	munmap(m, pg);
	/* Elsewhere: a kernel that ignores MAP_FIXED_NOREPLACE (before 4.17)
	 * took it as a hint, which says nothing. */
	return m == (void *)a;
}

/*
 * The end of the user address space: x86-64 has 47 bits of it, or 56 with
 * 5-level paging, arm64 48 or 52, and so on, decided by the kernel at boot.
 * The highest 2^b - 2 pages that can be mapped tells which: the space ends
 * at 2^b less a page (the kernel keeps the top page of x86-64's as a guard).
 * If no probe answers (an old kernel), only the pointer width bounds it.
 * A 32-bit space ends at no power of two: 4 GiB less a page or two under a
 * 64-bit kernel (x86-64 keeps 0xffffe000 up), 3, 2 or 1 GiB under a 32-bit
 * kernel's split; the first of those whose last page can be mapped tells.
 */
static void find_user_end(void)
{
	size_t pg = rszshm__page_size();
	unsigned b;

	if (UINTPTR_MAX <= 0xffffffffu) {
		const uint64_t ends[] = { (1ULL << 32) - pg, (1ULL << 32) - 2 * pg,
					  3ULL << 30, 2ULL << 30, 1ULL << 30 };

		for (b = 0; b < sizeof(ends) / sizeof(ends[0]); b++) {
			if (page_fits((uintptr_t)(ends[b] - pg), pg)) {
				user_end = (uintptr_t)ends[b];
				return;
			}
		}
		return;
	}
	for (b = sizeof(uintptr_t) * 8 - 1; b >= 24; b--) {
		uintptr_t top = (uintptr_t)1 << b;

		if (page_fits(top - 2 * pg, pg)) {
			user_end = top - pg;
			return;
		}
	}
}

uintptr_t rszshm__hdr_user_end(void)
{
	pthread_once(&user_end_once, find_user_end);
	return user_end;
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
	if (h->magic == __builtin_bswap64(RSZSHM_MAGIC))
		BAD(EPROTONOSUPPORT, "made by a machine of the other byte order");
	if (h->magic != RSZSHM_MAGIC)
		BAD(EPROTO, "not an rszshm region (bad magic)");
	if (h->version != RSZSHM_FORMAT_VERSION)
		BAD(EPROTONOSUPPORT, "unsupported format version");
	if (h->abi != rszshm__hdr_abi())
		BAD(EPROTONOSUPPORT, abi_why(h->abi));
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
	if (h->addr_bits_ + h->max > rszshm__hdr_user_end())
		BAD(EBADMSG, "span runs past this machine's user address space");
	if (h->flen % pg)
		BAD(EBADMSG, "length is not page aligned");
	if (h->flen <= sizeof(*h) || h->flen > h->max)
		BAD(EBADMSG, "length is outside the span");
	if (file_size < h->flen)
		BAD(ENODATA, "file is shorter than the length in its header (truncated)");
	return 0;
}

/*
 * The header, then the file's size: a grower extends the file before it
 * publishes the new length in the header, so a length read before the size
 * is never more than that size.  A size read first could be older than the
 * length, and a region being grown would look truncated: the first try uses
 * the size read first anyway (it is also what tells a regular file), since
 * nearly every header fits it, and a header that does not check out is read
 * again, with the size after it, while it keeps changing under us (a few
 * times at most), so neither a read that raced a write nor a stale size is
 * taken for damage.
 */
void (*rszshm__hdr_hook)(int point);

int rszshm__hdr_read(int fd, struct rszshm_hdr *h, uint64_t *file_size, const char **why)
{
	struct rszshm_hdr prev;
	const char *ignore;
	bool regular;
	unsigned tries;
	ssize_t n;
	int rc = 0;

	if (!why)
		why = &ignore;
	*why = NULL;
	/* What kind of file, before reading it (a FIFO or directory refuses pread). */
	if ((rc = rszshm__sys_fsize(fd, file_size, &regular)) < 0)
		return rc;
	if (!regular)
		BAD(EPROTO, "not a regular file");
	if (__builtin_expect(rszshm__hdr_hook != NULL, 0))
		rszshm__hdr_hook(1);
	for (tries = 0; tries < 8; tries++) {
		*why = NULL;
		n = rszshm__sys_pread(fd, h, sizeof(*h), 0);
		if (n < 0)
			return (int)n;
		/* The first try checks against the size read just before: most
		 * headers fit it, and one that does not (grown meanwhile) is
		 * tried again against a size read after it. */
		if (tries > 0 && (rc = rszshm__sys_fsize(fd, file_size, NULL)) < 0)
			return rc;
		if ((size_t)n < sizeof(*h))
			BAD(ENODATA, "file is shorter than a header");
		rc = rszshm__hdr_validate(h, *file_size, why);
		if (rc == 0 || (tries > 0 && memcmp(&prev, h, sizeof(*h)) == 0))
			return rc;
		prev = *h;
	}
	return rc;
}
