/* SPDX-License-Identifier: Apache-2.0 */
/**
 * rszshm - resizable, fixed-address shared memory for Linux
 *
 * A region is a file (in /dev/shm, on disk, or a memfd) mapped MAP_SHARED at
 * the same address in every process that uses it.  Because the address is the
 * same everywhere, plain pointers stored inside the region are valid in every
 * process, and the region can grow while processes are attached.
 *
 *   address space of every attached process
 *
 *   addr                               addr+flen                   addr+max
 *   |<- header ->|<---- data (dat) ---->|<---- not yet in the file ---->|
 *   |            MAP_SHARED view of the file, over the whole span      |
 *   '-- span claimed once, at one address, with a PROT_NONE probe -----'
 *
 * rszshm_mk() finds a free span of scan.len bytes in the middle of the
 * address space (see "The address plan" below), creates the file, writes a header at
 * file offset 0 that records the span's address and length, and maps the file
 * over the whole span.  rszshm_at() reads and validates the header of an
 * existing file and maps it at the recorded address, refusing if anything is
 * already mapped there.  Growing a region extends the file; since every process
 * already maps the whole span, the new pages appear in all of them at once,
 * with no call and no remap.  An access past the current length faults
 * (SIGBUS); it never lands in process-private memory.
 *
 * A region is used in one of two ways, chosen when it is made:
 *  - raw (the ccan way): the caller owns the bytes from @dat to @dat + @cap
 *    and grows the region itself with rszshm_grow() or rszshm_grow_to();
 *  - heap (RSZSHM_HEAP): the library keeps an allocator and a table of named
 *    records inside the region (rszshm_alloc(), rszshm_rec_add(), ...).  Such
 *    a region has no raw area: @dat is NULL and @cap 0, so raw writes cannot
 *    clobber the heap by accident, and the heap calls refuse a raw region.
 *
 * Concurrency: every call that changes a region's shared state (grow, heap,
 * records, the user lock) is safe from any thread of any attached process at
 * once, however the process got its handle (rszshm_mk, rszshm_at, or fork).
 * The shared state is guarded by robust process-shared mutexes kept in the
 * header: a process that dies holding one does not block the others, and the
 * library repairs what it was doing.  A handle (struct rszshm) may be used by
 * several threads at once for those calls; rszshm_dt() and rszshm_rm() must
 * not race with other calls on the same handle.
 *
 * Locks: what a caller can rely on.  The lock words live in the file, so
 * they are untrusted input like the rest of it: a file copied while a lock
 * was held, a disk-backed region reopened after a power cut, or a word a
 * co-writer scribbled on.  Whatever the file says:
 *  - no lock call (rszshm_lock(), and the grow, heap and record calls that
 *    lock inside) waits for ever on a holder that cannot be alive.  A locker
 *    that finds the lock busy waits in bounded steps (1 ms, doubling to 1 s)
 *    and after each one checks the holder the lock word names; when that
 *    thread does not exist, or does not map this region's file at this
 *    address (a copy, another boot, a process that detached), or the word is
 *    one no holder writes, the lock is taken as if its holder had died: the
 *    library repairs what it guards, and rszshm_lock() returns 1.
 *  - a lock whose type fields are damaged is refused with EBADMSG, never
 *    followed; rszshm_check() reports a damaged lock area.
 *  - the first writer to attach a region that no process has attached (its
 *    maker included) rewrites the header's locks: a held or damaged one
 *    becomes "holder died", so its next user repairs.  "Attached" is an
 *    open-file-description lock (fcntl F_OFD_SETLK, on one byte at offset
 *    2^63 - 2) that every writable handle holds on its file until the last
 *    copy of its descriptor (@fd) is closed.
 *  - a live holder that maps the region keeps its lock while it lives, but
 *    no locker waits for it longer than its handle's lock bound
 *    (struct rszshm_opts.lock_timeout_ms: 30 s unless set; handles from
 *    rszshm_mk() and rszshm_at() have the default): the call then fails
 *    with ETIMEDOUT and changed nothing, and may be retried.  That bounds
 *    what a co-writer can do by writing a lock word naming a live thread
 *    of its own (a word set through the file, with no locking thread): it
 *    delays writers by the bound, it never holds them for ever.  Where /proc
 *    cannot tell (a holder of another user, a /proc mounted for another PID
 *    namespace) the holder is presumed alive, up to the bound.  The check
 *    costs nothing until a locker has waited.  Readers (lookups, waits)
 *    take no lock.
 *  - uncontended, a lock and an unlock cost one atomic operation each.
 * PID namespaces: two processes of different PID namespaces can have the
 * same thread id, which the robust locks cannot tell apart.  So writers of
 * one region must share a PID namespace: rszshm_at() of a writable handle
 * fails with EXDEV while writers of another namespace are attached (the
 * region records the namespace of its writers; when none is attached, the
 * next one's namespace replaces it).  Read-only handles take no lock and may
 * attach from anywhere.
 *
 * Trust model.  Everything in a region's file is untrusted input to the
 * library: the header, the heap's and the record index's bookkeeping, the
 * lock words.  A co-writer (any process with write access to the file,
 * whether it means harm or has a bug; or anything else that changes the
 * file: a copy taken mid-update, a disk after a power cut) can change any
 * byte of it at any time, and so can damage, forge or remove any data in
 * the region: block contents, record values, names, which blocks are live.
 * The library does not try to tell a co-writer's bytes from its own.  What
 * it guarantees regardless, for every call on any bytes whatever:
 *  - no crash, hang or stray access: no call raises a signal, loops for
 *    ever, or reads, writes, frees or allocates outside the region it was
 *    called on (not in another region attached to the same process, not in
 *    the process's own memory), whatever it finds there.  Every address
 *    read from a region is checked against that region's span, its header
 *    and the file's real length (fstat) before it is followed, and every
 *    walk is bounded;
 *  - damage is reported: a damaged header is refused (the errnos below);
 *    damage met by a heap or record call gives EBADMSG (nothing changed) or
 *    ENOTRECOVERABLE (the repair after a dead holder met damage it cannot
 *    repair; later writers get it too); rszshm_check() reports every kind
 *    of damage that a call refuses;
 *  - what the library hands out (blocks from rszshm_alloc() and
 *    rszshm_realloc(), sizes from rszshm_usable_size(), values from
 *    rszshm_rec_find(), rszshm_rec_get() and rszshm_rec_next()) lies inside
 *    the region, past its header and inside its file.
 * It cannot guarantee that data are right, that a block it hands out after
 * damage is not also in use elsewhere, or that the caller's own accesses do
 * not fault: a file truncated by another process below its header's length
 * raises SIGBUS at the first touch of a page past the new end, by the
 * caller.  The library's own touches never do: every call that reads or
 * writes through a mapping runs inside a per-thread guard, and a SIGBUS
 * handler (installed when the first region is mapped, chained to the one it
 * replaced for every fault that is not the library's own) maps zero pages
 * over what the cut removed; the call then fails with ENODATA, and the
 * region's pages are the file's again.  A program that installs its own
 * SIGBUS handler after attaching must chain to the one it replaced, as any
 * SIGBUS handler should; attaching again re-installs the library's.  What
 * the locks guarantee against a lock word a co-writer set is said under
 * "Locks", above.
 *
 * Errors of every call.  Besides those each function lists:
 *   ENODATA    the region's file was truncated by another process while the
 *              call read or wrote through the mapping (see the trust model
 *              above): the call's result is withheld and nothing it read is
 *              handed out; what it wrote may be lost.  The handle stays
 *              usable: once the file is whole again the call works again.
 *   ETIMEDOUT  a call that takes a lock (growth, rszshm_lock(), the heap's
 *              and the records' writers, rszshm_open() waiting on another
 *              maker) waited longer than the handle's lock bound for a
 *              holder that looked alive (see "Locks" above); it changed
 *              nothing and may be retried.
 *
 * What may live in a region: plain data and pointers into the same region.
 * Never pointers to process-private memory (stack, malloc, globals), function
 * pointers or vtables (code is mapped at different addresses in different
 * processes), file descriptors, or process-private locks.
 *
 * The address plan (64-bit builds): so that a process can attach any set of
 * regions made by other processes, rszshm_mk() keeps a table of the spans
 * that the live regions of this user hold, /dev/shm/.rszshm-plan2-<euid>, and
 * gives each new region a span no live region holds.  The default scan (any
 * scan with RSZSHM_DFLT_SCAN's start, hop and iter) is placed next to the
 * last region placed, anywhere from 24 to 72 TiB, from a random starting
 * point per table, and if longer than 64 MiB starts 64 MiB below a GiB
 * boundary (detaching a region whose head alone was touched then costs the
 * kernel a walk of 32 page-table entries, not 512); any other scan is
 * searched in ccan's documented order,
 * passing over spans live regions hold.  An entry lasts while its file (same
 * device and inode) exists, or while its maker lives until the file has its
 * name; entries of removed files and killed makers are dropped when next in
 * the way.  Trust model: the table is advice.  It is used only if it is a
 * regular file of this user that no one else may write (opened O_NOFOLLOW),
 * it is mapped once per process (1.2 MiB of address space, kept until exit;
 * no descriptor is kept) and checked (a damaged one is reset; one truncated
 * by another process under a call costs that call a fallback, never a
 * signal), and its lock (a word in the table naming its holder's pid; taken
 * at once from a holder no longer alive, after the wait from one that has
 * held it for 2 s) is waited for at most 0.2 s with the table unchanged
 * (2 s in all while its holders keep changing it); threads take turns, and
 * fork() waits for a use under way.  When it cannot be used or has no
 * room, the span is placed as without it (random spans of the middle, then
 * the spiral), and every span is claimed with MAP_FIXED_NOREPLACE: a bad
 * table can cost a later attach ENOSPC, never a failed rszshm_mk() nor a
 * mapping over memory in use.  Tables are per user, so another user can
 * neither fill nor damage yours; the regions of two users do not see each
 * other and meet only by chance (their tables start at random points: about
 * (n + m) / 12,000 for n and m regions of 4 GiB).  $RSZSHM_PLAN (read with
 * secure_getenv) names another table file, or "off" turns the plan off.
 *
 * Errors: functions return NULL or -1 and set errno.  The errno values that
 * describe a file, used by every function that reads a header:
 *
 *   ENOENT          the file does not exist
 *   ENODATA         the file is shorter than a header, or shorter than the
 *                   length its header records (truncated)
 *   EPROTO          the file is not an rszshm region (bad magic)
 *   EPROTONOSUPPORT the region was made by an incompatible version or build
 *                   (format version, another ABI: architecture, pointer
 *                   size or byte order, header size, page size, unknown
 *                   flags)
 *   EBADMSG         the header is damaged (a field out of range, misaligned,
 *                   or inconsistent with another)
 *   ENOSPC          the region's recorded address range is already in use in
 *                   this process (nothing is ever mapped over it)
 *   EXDEV           writers of another PID namespace have the region attached
 *                   (its locks cannot exclude across namespaces)
 *
 * rszshm_errmsg() gives the reason for the calling thread's last failure as
 * text, naming the field or the conflict ("file is shorter than the length
 * in its header", "span ... is in use in this process (by NAME)").
 *
 * Caveats:
 *  - fork(): children inherit the mapping and the handle and may use both;
 *    they must not call rszshm_at() for a region they already map.
 *  - kill -9: a process killed at any point leaves the region usable; the
 *    next user of a lock it held repairs the structure the lock guards.
 *  - Descriptors: a process that maps a region for writing must keep a copy
 *    of its descriptor (@fd) open (do not close it, e.g. with closefrom() in
 *    a forked child): when none is open, the next attacher takes the region
 *    for unattached and rewrites the locks the process may hold.
 *  - PID namespaces: see "Locks" above; a child moved into another PID
 *    namespace (unshare(CLONE_NEWPID), then fork) must not use a mapping it
 *    inherited for writing.
 *  - A full /dev/shm: pages of a sparse region get their memory when first
 *    touched; if the file system is full then, the toucher gets SIGBUS.  Make
 *    the region with RSZSHM_ALLOCATE to get ENOSPC from the grow instead.
 *  - 32-bit builds: the default span is 256 MiB; the address space is small
 *    and probes fail more often.  Regions are not shared between 32- and
 *    64-bit processes (the header records its build and is refused).
 *  - Limits: file names up to RSZSHM_PATH_MAX - 1 bytes; a region's length is
 *    at most its span (scan.len, fixed at creation).
 *  - Several regions in one process: any set of regions made on the machine
 *    by one user with the default scan can be attached at once.  A span is
 *    given again once its file is removed, so a process that still maps a
 *    removed region may get ENOSPC attaching the region that took its span.
 */
#ifndef RSZSHM_H
#define RSZSHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RSZSHM_API __attribute__((visibility("default")))
#else
#define RSZSHM_API
#endif

/** The library's version, also in rszshm.pc. */
#define RSZSHM_VERSION_MAJOR 1
#define RSZSHM_VERSION_MINOR 1
#define RSZSHM_VERSION_PATCH 0

/*
 * Size units, as ccan's rszshm.h defines them (its documented examples use
 * them).  Define RSZSHM_NO_UNITS before including this header to keep them out.
 */
#ifndef RSZSHM_NO_UNITS
#ifndef KiB
#define KiB (1024UL)
#endif
#ifndef MiB
#define MiB (KiB * KiB)
#endif
#ifndef GiB
#define GiB (MiB * KiB)
#endif
#if defined(__x86_64__) || defined(__aarch64__) || (defined(__SIZEOF_POINTER__) && __SIZEOF_POINTER__ == 8)
#ifndef TiB
#define TiB (GiB * KiB)
#endif
#endif
#endif

/**
 * struct rszshm_scan - where rszshm_mk() looks for a free span of addresses
 * @start: first address to try (page aligned, not NULL)
 * @len: length of the span to claim: the most the region can ever grow to,
 *       header included (rounded up to a page)
 * @hop: distance between tries
 * @iter: number of tries
 *
 * The addresses tried are start, start - hop, start + hop, start - 2*hop,
 * start + 2*hop, ... (a spiral around @start), @iter of them.  Claiming a span
 * costs address space only: no memory and no commit charge.
 */
struct rszshm_scan {
	void *start;
	size_t len;
	size_t hop;
	unsigned iter;
};

/**
 * RSZSHM_DFLT_SCAN - the default search: on 64-bit builds a 4 GiB span,
 * which the address plan places between 24 and 72 TiB, apart from the spans
 * of live regions (its fields still say ccan's 10 tries, 1 TiB apart, around
 * 64 TiB: the search used when the plan cannot be); on 32-bit builds 10
 * tries of 256 MiB around 1.5 GiB.
 */
#if defined(__SIZEOF_POINTER__) && __SIZEOF_POINTER__ == 8
#define RSZSHM_DFLT_SCAN_ARGS_ (void *)(64ULL << 40), 4ULL << 30, 1ULL << 40, 10
#else
#define RSZSHM_DFLT_SCAN_ARGS_ (void *)((1024UL + 512UL) << 20), 256UL << 20, 256UL << 20, 10
#endif
#ifdef __cplusplus
/* C++ has no compound literals: the same value from an inline function. */
static inline struct rszshm_scan rszshm_dflt_scan_(void)
{
	struct rszshm_scan s = { RSZSHM_DFLT_SCAN_ARGS_ };
	return s;
}
#define RSZSHM_DFLT_SCAN (rszshm_dflt_scan_())
#else
#define RSZSHM_DFLT_SCAN ((struct rszshm_scan){ RSZSHM_DFLT_SCAN_ARGS_ })
#endif

/** Longest file name, terminating NUL included. */
#define RSZSHM_PATH_MAX 128
/** File name used when rszshm_mk() is given NULL; XXXXXX is made unique. */
#define RSZSHM_DFLT_FNAME "/dev/shm/rszshm_XXXXXX/0"

/** First 8 bytes of every region file: "RSZSHM\x1a\n" read little-endian. */
#define RSZSHM_MAGIC 0x0a1a4d48535a5352ULL
/** Version of the on-file format this library reads and writes. */
#define RSZSHM_FORMAT_VERSION 3u

/*
 * Flags, for rszshm_mk_flags() (RSZSHM_ALLOCATE, RSZSHM_HEAP, RSZSHM_ANON,
 * recorded in the header) and rszshm_at_flags() (RSZSHM_RDONLY).
 */
/** Allocate the file's blocks at creation and at every grow (no sparse file). */
#define RSZSHM_ALLOCATE 0x1u
/** The region holds a heap and named records instead of a raw area. */
#define RSZSHM_HEAP 0x2u
/** The region is a memfd with no name: shared only with forked children. */
#define RSZSHM_ANON 0x4u
/** Attach read-only: the mapping is PROT_READ and nothing is ever written. */
#define RSZSHM_RDONLY 0x100u
/** rszshm_open(): make the region if the name does not exist. */
#define RSZSHM_CREATE 0x200u
/** rszshm_open() with RSZSHM_CREATE: fail with EEXIST if the name exists. */
#define RSZSHM_EXCL 0x400u

/* An unnamed union is C11 and C++; GNU compilers take it in C99 too. */
#if !defined(__cplusplus) && defined(__GNUC__)
#define RSZSHM_EXT_ __extension__
#else
#define RSZSHM_EXT_
#endif

/**
 * struct rszshm_hdr - the header at the start of every region file
 * @magic: RSZSHM_MAGIC
 * @version: RSZSHM_FORMAT_VERSION
 * @hdr_size: sizeof(struct rszshm_hdr); the raw area starts right after it
 * @page_size: page size of the machine that made the region
 * @flags: RSZSHM_ALLOCATE, RSZSHM_HEAP, RSZSHM_ANON as given at creation
 * @addr: address of the region in every process (the header's own address)
 * @max: length of the span: the most @flen can grow to
 * @flen: current length of the file, header included; grows, never shrinks
 * @abi: the ABI of the build that made the region: its architecture,
 *       pointer size, byte order and the size of the locks kept in the
 *       header.  Only a build of the same ABI attaches the region (see
 *       "Sharing" in the README): x86-64 with x86-64, i386 with i386, aarch64
 *       with aarch64, whichever compiler built the library
 *
 * Layout (format version 3), in the byte order of the machine that made it:
 * magic at offset 0, version 8, hdr_size 12, page_size 16, flags 24, addr 32
 * (8 bytes on every build: the pointer, and on 32-bit builds zero padding),
 * max 40, flen 48, abi 56, then 448 bytes private to the library.
 *
 * Every field but @flen is set at creation and never changes; @flen is
 * updated (atomically) by whichever process grows the region.  All fields are
 * read-only to users.  The rest of the header holds the library's locks and
 * the roots of the heap and the record index.
 */
struct rszshm_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;
	uint64_t page_size;
	uint64_t flags;
	RSZSHM_EXT_ union {
		void *addr;
		uint64_t addr_bits_;
	};
	uint64_t max;
	uint64_t flen;
	uint64_t abi;
	uint64_t private_[56];
};

/**
 * struct rszshm - handle for a mapped region (one per process, or shared by
 * the threads of one process)
 * @fd: file descriptor of the region's file (open O_CLOEXEC)
 * @flen: length of the region as this handle last saw it; refreshed by
 *        rszshm_up(), rszshm_grow() and rszshm_grow_to()
 * @fname: path of the file ("" for a RSZSHM_ANON region)
 * @hdr: the header, at the start of the mapping; @hdr == @hdr->addr
 * @dat: the raw area, right after the header (NULL in a heap region)
 * @cap: length of the raw area (0 in a heap region): @flen -
 *       sizeof(struct rszshm_hdr), less one page (the spill page) while the
 *       region is shorter than its span.  The spill page is part of the file:
 *       a write that races a grow by a few bytes (as in ccan's documented
 *       fork-and-fill example, where a worker whose handle was stale
 *       refreshes instead of growing) lands in shared memory, not past the
 *       end of the file
 * @flags: RSZSHM_* flags of the region and of this attachment (bits from
 *         0x10000 up are the library's own: test flags with &)
 * @max: length of the span, as validated when the handle was made
 *
 * All fields are read-only to users.  @flen and @cap may lag behind the
 * region's real length (@hdr->flen) until refreshed; every address below
 * @hdr->flen is usable at once anyway.
 */
struct rszshm {
	int fd;
	size_t flen;
	char fname[RSZSHM_PATH_MAX];
	struct rszshm_hdr *hdr;
	void *dat;
	size_t cap;
	unsigned flags;
	size_t max;
};

/**
 * rszshm_mk - make a new region and map it
 * @r: handle to fill in
 * @flen: initial length of the raw area, at least 1
 * @fname: path of the file to create, or NULL for RSZSHM_DFLT_FNAME
 * @scan: (optional) where to look for a free span; RSZSHM_DFLT_SCAN if omitted
 *
 * The file's length is @flen plus the header, rounded up to a page, plus the
 * spill page (see struct rszshm), so @r->cap is at least @flen.  If the
 * directory part of @fname ends in XXXXXX, mkdtemp(3) makes it unique.  The
 * file must not exist: it is created with O_CREAT | O_EXCL | O_NOFOLLOW |
 * O_CLOEXEC and mode 0600 (exactly: the umask plays no part; rszshm_open()
 * takes another mode), whatever its name.  The span is placed by the
 * address plan (see the top of this file): RSZSHM_DFLT_SCAN anywhere in the
 * middle of the address space apart from live regions' spans, any other scan
 * by the spiral search described at struct rszshm_scan, passing over spans
 * live regions hold; the file is then mapped over it and its header written
 * and flushed, and the span is entered in the plan.  On failure nothing is
 * left behind: no mapping, no descriptor, no file, no directory, no entry.
 *
 * Called with three arguments, it uses RSZSHM_DFLT_SCAN.  To pass a compound
 * literal as @scan, put parentheses around it.
 *
 * Safety: thread-safe.  Not async-signal-safe.
 * Errors:
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL   @r is NULL, @flen is 0, @fname is too long (RSZSHM_PATH_MAX),
 *            or @scan has a NULL start, zero len, hop or iter, or a len too
 *            small to hold @flen and the header
 *   ENOSPC   no try of the scan found the span free (the plan never adds
 *            this error: when its own search fails, the scan is tried
 *            again without it)
 *   ENOMEM   the span is larger than the address space
 *   EEXIST   the file exists
 *   and the errors of mkdtemp(3), open(2), ftruncate(2), mmap(2), msync(2).
 * Example:
 *	struct rszshm r;
 *
 *	if (!rszshm_mk(&r, 4 * MiB, NULL))
 *		err(1, "rszshm_mk");
 *	printf("%s at %p\n", r.fname, (void *)r.hdr);
 *
 * Returns: @r->dat on success, NULL with errno set on failure.
 * See also: rszshm_mk_flags(), rszshm_at(), rszshm_rm()
 */
RSZSHM_API void *rszshm_mk(struct rszshm *r, size_t flen, const char *fname,
			   struct rszshm_scan scan);
#define rszshm_mk_4args_(a, b, c, d, ...) a, b, c, d
#define rszshm_mk(...) rszshm_mk(rszshm_mk_4args_(__VA_ARGS__, RSZSHM_DFLT_SCAN, 0))

/**
 * rszshm_mk_flags - make a new region, with options
 * @r, @flen, @fname, @scan: as for rszshm_mk()
 * @flags: RSZSHM_ALLOCATE, RSZSHM_HEAP, RSZSHM_ANON, or'd
 *
 * RSZSHM_ALLOCATE allocates the file's blocks now and at every grow
 * (fallocate(2)), so a full file system fails the grow with ENOSPC instead of
 * a SIGBUS at the first touch of a page.  RSZSHM_HEAP makes a heap region
 * (see the top of this file): @flen is then the initial length available to
 * the heap.  RSZSHM_ANON makes the file a memfd with no name (@fname is
 * ignored and @r->fname is ""): only this process and its forked children can
 * map it, and nothing is left behind when they exit.
 *
 * Errors: ENODATA (see "Errors of every call");
 * those of rszshm_mk(), and EINVAL for an unknown flag.
 * Returns: @r->dat on success (the region's base @r->hdr for a heap region,
 * which has no raw area), NULL with errno set on failure.
 */
RSZSHM_API void *rszshm_mk_flags(struct rszshm *r, size_t flen, const char *fname,
				 struct rszshm_scan scan, unsigned flags);

/**
 * struct rszshm_opts - how rszshm_open() makes or attaches a region
 * @flags: RSZSHM_CREATE, RSZSHM_EXCL, RSZSHM_RDONLY, and for a region it
 *         makes RSZSHM_HEAP, RSZSHM_ALLOCATE, RSZSHM_ANON; or'd
 * @mode: permission bits of a file it makes (at most 0777); 0 means 0600.
 *        Applied exactly with fchmod(2): the umask plays no part.  A
 *        directory it makes from a template (XXXXXX/) gets the same bits
 *        for group and others, plus search (x) wherever they may read or
 *        write, and always 0700 for the owner: 0600 -> 0700, 0660 -> 0770,
 *        0644 -> 0755.  The file's group is the maker's (or the directory's
 *        with a setgid directory), as for any file.
 * @len: initial length of the raw area (of the heap, with RSZSHM_HEAP), at
 *       least 1; as rszshm_mk()'s @flen.  Used only when it makes the region
 * @scan: where to look for a free span; all zero means RSZSHM_DFLT_SCAN
 * @init: (optional) initializer, called once by the process that makes the
 *        region, with the region mapped and laid out (a heap is usable) but
 *        before it appears under its name.  Returns 0, or a positive errno
 *        value that rszshm_open() then fails with (ECANCELED for a negative
 *        value); the region is then removed without ever having been seen
 * @arg: passed to @init
 * @lock_timeout_ms: the longest any call on this handle waits for a lock
 *        whose holder looks alive (the user lock, and the grow, heap and
 *        record locks inside the calls), in milliseconds, rounded up to a
 *        multiple of 100; the call then fails with ETIMEDOUT and nothing
 *        changed.  0 means RSZSHM_LOCK_TIMEOUT_DFLT (30 s);
 *        RSZSHM_LOCK_FOREVER waits as long as the holder lives.  At most
 *        RSZSHM_LOCK_TIMEOUT_MAX.  It also bounds this call's own waits
 *        (another maker of the same name, a first attacher rewriting the
 *        header's locks).  Handles from rszshm_mk() and rszshm_at() use
 *        the default.  See "Locks" at the top of this file.
 *
 * Zero-initialize it and set what you need: an all-zero struct attaches an
 * existing region read-write, as rszshm_at() does.
 */
struct rszshm_opts {
	unsigned flags;
	mode_t mode;
	size_t len;
	struct rszshm_scan scan;
	int (*init)(struct rszshm *r, void *arg);
	void *arg;
	unsigned lock_timeout_ms;
};

/* struct rszshm_opts.lock_timeout_ms: the default, no bound, the largest. */
#define RSZSHM_LOCK_TIMEOUT_DFLT 30000u
#define RSZSHM_LOCK_FOREVER 0xffffffffu
#define RSZSHM_LOCK_TIMEOUT_MAX 1638200u

/**
 * rszshm_open - attach a region, or make it: one call for every case
 * @r: handle to fill in
 * @fname: path of the region's file; with RSZSHM_CREATE, NULL means
 *         RSZSHM_DFLT_FNAME and a directory part ending in XXXXXX is made
 *         unique as in rszshm_mk() (so that call always makes a new region);
 *         ignored with RSZSHM_ANON
 * @opts: what to do (see struct rszshm_opts); NULL attaches read-write
 *
 * Without RSZSHM_CREATE it attaches @fname as rszshm_at_flags() does.  With
 * RSZSHM_CREATE | RSZSHM_EXCL it makes a new region as rszshm_mk_flags()
 * does, and fails with EEXIST if @fname exists.  With RSZSHM_CREATE alone it
 * attaches @fname if it exists and makes it otherwise, race-free: when any
 * number of processes call it at once on one name, exactly one makes the
 * region (and runs @opts->init) and every one ends up attached to that same
 * region.  A region it attaches keeps the length and flags its maker gave
 * it; @opts->len, @opts->mode and @opts->scan are then unused (but an
 * existing raw region asked for with RSZSHM_HEAP is refused with EEXIST).
 *
 * Makers of one name serialise on flock(2) of a lock file beside it,
 * ".<leaf>.rszshm-lock" in the same directory (so that directory must be
 * writable to make a region, as for any new file); its holder removes it,
 * and the kernel drops the lock of a holder that dies.  The lock is taken
 * only when the name was found missing: attaching an existing region takes
 * no lock.
 *
 * What other processes see: a made region appears under its name complete,
 * header, heap and initializer's work included, or not at all.  The file is
 * built unnamed (O_TMPFILE) and linked under its name last; on a file system
 * without O_TMPFILE it is built under a temporary name ".rszshm-tmp-XXXXXX"
 * in the same directory and linked under the real name last (link(2), which
 * never replaces a file).  A maker killed before the link leaves nothing
 * under the name (with the fallback, its temporary file may remain; on
 * every failure that returns, it is removed).
 *
 * Safety: thread-safe; many threads and processes may call it at once on
 * one name.  Not async-signal-safe.  @opts->init runs in the calling thread.
 * Errors:
 *   ETIMEDOUT  a lock stayed held past the handle's lock bound
 *            (see "Errors of every call"); nothing changed
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL   @r is NULL; @fname is NULL or "" without RSZSHM_CREATE, or too
 *            long; an unknown flag; RSZSHM_RDONLY with RSZSHM_CREATE or a
 *            making flag; RSZSHM_ANON without RSZSHM_CREATE; @opts->mode
 *            past 0777; @opts->lock_timeout_ms past RSZSHM_LOCK_TIMEOUT_MAX
 *            (and not RSZSHM_LOCK_FOREVER); when making: as rszshm_mk()
 *            (@opts->len 0, ...)
 *   EEXIST   RSZSHM_EXCL and @fname exists; or RSZSHM_HEAP and @fname is a
 *            raw region
 *   EAGAIN   RSZSHM_CREATE: the maker lock's file kept vanishing under
 *            this call (removed by its holders) through 64 tries
 *   ECANCELED, or the errno @opts->init returned: the initializer failed
 *   EACCES   the file or its directory does not permit this user
 *   and the errors of rszshm_mk_flags(), rszshm_at_flags() and flock(2).
 * Example:
 *	static int setup(struct rszshm *r, void *arg)
 *	{
 *		struct counters *c = rszshm_zalloc(r, sizeof(*c));
 *
 *		return c && rszshm_rec_add(r, "counters", 1, c, sizeof(*c)) == 0
			? 0 : errno;
 *	}
 *	...
 *	struct rszshm_opts o = { .flags = RSZSHM_CREATE | RSZSHM_HEAP,
 *				 .mode = 0660, .len = 1 * MiB, .init = setup };
 *	struct rszshm r;
 *
 *	if (!rszshm_open(&r, "/dev/shm/myservice", &o))
 *		errx(1, "%s", rszshm_errmsg());
 *
 * Returns: as rszshm_mk_flags() and rszshm_at(): @r->dat, or @r->hdr for a
 * heap region; NULL with errno set (and rszshm_errmsg()) on failure.
 * See also: rszshm_mk_flags(), rszshm_at_flags(), rszshm_errmsg()
 */
RSZSHM_API void *rszshm_open(struct rszshm *r, const char *fname,
			     const struct rszshm_opts *opts);

/**
 * rszshm_errmsg - why the last failed call of this thread failed, as text
 *
 * Like dlerror(3): a text for the last rszshm call of the calling thread
 * that failed, naming the file, the field or the conflict where the library
 * knows it ("/dev/shm/x: file is shorter than the length in its header
 * (truncated)", "span 0x400000000000+4 GiB is in use in this process (by
 * /dev/shm/rszshm_AbC123/0)"), and strerror(errno)'s text otherwise.
 * Successful calls leave it as it is; errno is still set as documented.
 *
 * Safety: thread-safe (each thread has its own text); the text stays valid
 * until the thread's next failing rszshm call.
 * Example:
 *	if (!rszshm_at(&r, name))
 *		errx(1, "%s", rszshm_errmsg());
 *
 * Returns: the text, or NULL if no rszshm call of this thread has failed.
 */
RSZSHM_API const char *rszshm_errmsg(void);

/**
 * rszshm_mkm - allocate a handle with malloc() and call rszshm_mk() on it
 * @r: a struct rszshm * lvalue, set to the new handle or to NULL
 * @fl, @fn: as for rszshm_mk()
 *
 * Example:
 *	struct rszshm *r;
 *
 *	if (!rszshm_mkm(r, 4 * MiB, NULL))
 *		err(1, "rszshm_mkm");
 *	...
 *	rszshm_rm(r);
 *	rszshm_free(r);
 *
 * Returns: the result of rszshm_mk(); release the handle with rszshm_free().
 */
#define rszshm_mkm(r, fl, fn) __extension__ ({					\
	void *rszshm_p_ = NULL;						\
	(r) = (struct rszshm *)malloc(sizeof(*(r)));			\
	if ((r) && !(rszshm_p_ = rszshm_mk((r), (fl), (fn)))) {		\
		free(r);						\
		(r) = 0;						\
	}								\
	rszshm_p_;							\
})

/**
 * rszshm_at - attach ("map") an existing region by its file name
 * @r: handle to fill in
 * @fname: path of a file made by rszshm_mk()
 *
 * Opens the file, reads its header with pread(2) and checks every field (see
 * the errno table at the top of this file); maps the file over the recorded
 * span with MAP_FIXED_NOREPLACE, so that nothing already mapped in this
 * process is ever replaced; then reads the file's size (statx(2)) and
 * checks it against the header before reading anything through the mapping,
 * so that a file truncated before or while attaching is ENODATA, never
 * SIGBUS, and a region grown meanwhile is attached at its new length.  A
 * forked child already has the
 * region and must not attach it again.  The handle marks the file attached
 * (see "Locks" at the top); if no writer had it attached, the header's locks
 * are rewritten for this boot and namespace first.
 *
 * Safety: thread-safe.  Not async-signal-safe.
 * Errors:
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL   @r or @fname is NULL, @fname is "" or too long
 *   ENOENT, ENODATA, EPROTO, EPROTONOSUPPORT, EBADMSG, ENOSPC  see the table
 *   EXDEV    writers of another PID namespace have the region attached
 *   and the errors of open(2), pread(2), mmap(2), statx(2), fstat(2), fcntl(2).
 * Example:
 *	struct rszshm r;
 *
 *	if (!rszshm_at(&r, "/dev/shm/rszshm_LAsEvt/0"))
 *		err(1, "rszshm_at");
 *
 * Returns: @r->dat on success (@r->hdr for a heap region), NULL with errno
 * set on failure.
 */
RSZSHM_API void *rszshm_at(struct rszshm *r, const char *fname);

/**
 * rszshm_at_flags - attach an existing region, with options
 * @r, @fname: as for rszshm_at()
 * @flags: 0 or RSZSHM_RDONLY
 *
 * RSZSHM_RDONLY opens the file read-only and maps it PROT_READ: for readers
 * that must not write and for inspection tools.  Calls that would write
 * (grow, flush, the heap and record writers, the user lock) fail with EPERM.
 * One exception: while it sleeps, rszshm_rec_wait() or rszshm_rec_wait_any()
 * adds the caller to a waiter count in the header, through a mapping of
 * the header's page it makes for the wait if the file can be opened for
 * writing; the records and the heap are never written.
 *
 * Errors: ENODATA (see "Errors of every call");
 * those of rszshm_at(), and EINVAL for an unknown flag.
 * Returns: as rszshm_at().
 */
RSZSHM_API void *rszshm_at_flags(struct rszshm *r, const char *fname, unsigned flags);

/**
 * rszshm_atm - allocate a handle with malloc() and call rszshm_at() on it
 * @r: a struct rszshm * lvalue, set to the new handle or to NULL
 * @f: as for rszshm_at()
 *
 * Returns: the result of rszshm_at(); release the handle with rszshm_free().
 */
#define rszshm_atm(r, f) __extension__ ({						\
	void *rszshm_p_ = NULL;						\
	(r) = (struct rszshm *)malloc(sizeof(*(r)));			\
	if ((r) && !(rszshm_p_ = rszshm_at((r), (f)))) {		\
		free(r);						\
		(r) = 0;						\
	}								\
	rszshm_p_;							\
})

/**
 * rszshm_dt - detach: flush, unmap and close
 * @r: handle
 *
 * In a heap region, first gives back the free blocks the process's threads
 * keep cached in it (see rszshm_alloc()).  Flushes the region to its file
 * (msync(2) with MS_SYNC, skipped for read-only handles, and for a file on
 * tmpfs - /dev/shm, a memfd - whose pages are the file: there is nothing to
 * write), unmaps the whole span and closes the descriptor.  Resets every
 * field but @fname (which rszshm_rm() needs).  Calling it again on a
 * detached handle does nothing and returns 0.  Other processes are not
 * affected.  (Telling tmpfs without a call needs Linux 6.8's unique mount
 * ids; on older kernels every writer's detach flushes.)  rszshm_flush()
 * flushes whatever the file system.
 *
 * Safety: not with other calls on the same handle, in any thread (see the
 * top of this file), and no call on it after.
 * Errors: EINVAL @r is NULL; and the errors of msync(2), munmap(2), close(2)
 * (the handle is detached all the same).
 * Returns: 0 on success, -1 with errno set if any step failed.
 */
RSZSHM_API int rszshm_dt(struct rszshm *r);

/**
 * rszshm_up - refresh the handle's view of the region's length
 * @r: handle
 *
 * Reads the region's current length from the header and updates @r->flen
 * and @r->cap.  No remap is needed: memory below the new length is already
 * usable in this process, whether or not this is called.
 *
 * Safety: any thread.  Lock-free.
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r is NULL or detached; EBADMSG the header's length is
 * outside the span, or past the end of the file (the header was damaged:
 * a longer length is compared with the file's size, fstat(2), before it is
 * recorded); the errors of fstat(2).
 * Returns: 1 if the handle was updated, 0 if it was current, -1 on error.
 */
RSZSHM_API int rszshm_up(struct rszshm *r);

/**
 * rszshm_grow - double the region, unless another process already grew it
 * @r: handle
 *
 * If the region grew since this handle last looked (see rszshm_up()), the
 * handle is refreshed and nothing else is done.  Otherwise the file is
 * extended to twice its length (at most the span).  Growth is serialized
 * across every process and thread, however they got their handle, and never
 * shrinks the file below a length the library made: a grower killed after
 * extending the file and before publishing the length has that length
 * published by the next one.  (A file lengthened outside the library, by
 * other than whole pages within the span, is set to the new length.)  The
 * new length is visible to every attached process at once.  Costs O(1) in
 * the region's length: no copy, no page touched (but with RSZSHM_ALLOCATE,
 * allocating the new blocks).
 *
 * Safety: any thread of any attached process; takes the region's grow lock.
 * Errors:
 *   ETIMEDOUT  a lock stayed held past the handle's lock bound
 *            (see "Errors of every call"); nothing changed
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL   @r is NULL or detached
 *   EPERM    @r is read-only
 *   ENOMEM   the region already fills its span
 *   ENOSPC   RSZSHM_ALLOCATE and the file system is full
 *   EBADMSG  the header's length is outside the span, or past the end of
 *            the file
 *   and the errors of fstat(2), ftruncate(2) and fallocate(2).
 * Example:
 *	if (i >= r->cap && rszshm_grow(r) == -1)
 *		err(1, "grow %s", r->fname);
 *
 * Returns: 1 on success, -1 with errno set on failure.
 * See also: rszshm_grow_to()
 */
RSZSHM_API int rszshm_grow(struct rszshm *r);

/**
 * rszshm_grow_to - grow the region to at least @flen bytes
 * @r: handle
 * @flen: wanted length of the file, header included (rounded up to a page)
 *
 * Like rszshm_grow() but to a given length, in one step.  A region already
 * at least that long is left as it is.  The handle is refreshed either way.
 *
 * Safety and errors: as rszshm_grow(); ENOMEM if @flen is past the span.
 * Returns: 0 on success, -1 with errno set on failure.
 */
RSZSHM_API int rszshm_grow_to(struct rszshm *r, size_t flen);

/**
 * rszshm_flush - write a range of the region back to its file
 * @r: handle
 * @addr: start of the range (rounded down to a page); NULL for the whole region
 * @len: length of the range (ignored when @addr is NULL)
 *
 * Calls msync(2) with MS_SYNC.  Useful for regions kept in a disk file, to
 * be reopened later (at the same address) by rszshm_at().
 *
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r is NULL or detached, or the range is not inside the
 * region; EPERM @r is read-only; and the errors of msync(2).
 * Returns: 0 on success, -1 with errno set on failure.
 */
RSZSHM_API int rszshm_flush(struct rszshm *r, const void *addr, size_t len);

/**
 * rszshm_unlink - remove the region's file
 * @r: handle (attached or detached)
 *
 * Processes that have the region mapped keep it; no new process can attach.
 * The address plan releases the region's span: a later rszshm_mk() may place
 * a new region there (a file removed with plain unlink(2) is noticed too, by
 * the next rszshm_mk() that finds its span in the way).
 * Returns: the result of unlink(2) on @r->fname.
 */
RSZSHM_API int rszshm_unlink(struct rszshm *r);

/**
 * rszshm_rmdir - remove the directory that holds the region's file
 * @r: handle (attached or detached)
 *
 * Errors: ENOTDIR @r->fname has no '/'; and the errors of rmdir(2).
 * Returns: the result of rmdir(2) on the directory part of @r->fname.
 */
RSZSHM_API int rszshm_rmdir(struct rszshm *r);

/**
 * rszshm_rm - remove the region's file, then its directory
 * @r: handle
 *
 * For files made in a mkdtemp(3) directory (the default name).
 * Returns: 0 on success, -1 with errno set on failure.
 */
#define rszshm_rm(r) __extension__ ({							\
	int rszshm_ret_ = rszshm_unlink(r);				\
	if (rszshm_ret_ == 0)						\
		rszshm_ret_ = rszshm_rmdir(r);				\
	rszshm_ret_;							\
})

/**
 * rszshm_free - rszshm_dt() a handle from rszshm_mkm()/rszshm_atm(), then
 * free it and set @r to NULL
 *
 * Returns: the result of rszshm_dt().
 */
#define rszshm_free(r) __extension__ ({						\
	int rszshm_i_ = rszshm_dt(r);					\
	free(r);							\
	(r) = 0;							\
	rszshm_i_;							\
})

/* ------------------------------------------------------------------------
 * The region lock: one robust lock per region, for users' own structures.
 * ------------------------------------------------------------------------ */

/**
 * rszshm_lock - take the region's user lock
 * @r: handle
 *
 * A process-shared, robust lock kept in the header.  If its holder died
 * while holding it, the lock is made consistent and handed to the caller,
 * which gets 1 instead of 0 and should check the data the lock guards.
 * The same happens for a holder that cannot be alive (the lock word came
 * with a copied file, from another boot, or names no thread that maps the
 * region): never a wait for ever (see "Locks" at the top).  Not recursive.
 *
 * Safety: any thread of any attached process.
 * Errors: ETIMEDOUT, ENODATA (see "Errors of every call");
 * EINVAL @r is NULL or detached; EPERM @r is read-only; EDEADLK the
 * caller already holds it (or the lock word names the caller's thread id);
 * EBADMSG the lock's type fields are damaged; ENOTRECOVERABLE a previous
 * taker after a dead holder unlocked without repairing.
 * Returns: 0 when taken, 1 when taken after its previous holder died, -1 on
 * error.
 */
RSZSHM_API int rszshm_lock(struct rszshm *r);

/**
 * rszshm_trylock - take the region's user lock if it is free
 *
 * Never checks the holder: a lock held by a holder that cannot be alive
 * gives EBUSY until an rszshm_lock() (or the first attach) recovers it.
 *
 * Errors: ENODATA (see "Errors of every call");
 * as rszshm_lock(), and EBUSY when another holds it.
 * Returns: as rszshm_lock().
 */
RSZSHM_API int rszshm_trylock(struct rszshm *r);

/**
 * rszshm_unlock - release the region's user lock
 *
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r is NULL or detached; EPERM the caller does not hold it.
 * Returns: 0 on success, -1 on error.
 */
RSZSHM_API int rszshm_unlock(struct rszshm *r);

/* ------------------------------------------------------------------------
 * The heap: an allocator whose whole state lives in a RSZSHM_HEAP region.
 *
 * Thread caches.  Each thread that allocates in a heap region owns a slot in
 * it, holding up to 16 free blocks of each size up to 1 KiB (at most 100 KiB
 * per thread), so that a thread allocating and freeing small blocks takes no
 * lock and no atomic read-modify-write: a free puts the block in the
 * caller's cache, whichever process allocated it; an allocation takes from
 * it; a full or empty cache moves 8 blocks to or from the shared arenas
 * under one lock.  The slot names its thread (thread id and start time);
 * it is given back when the thread exits and, for all of a process's
 * threads, by rszshm_dt().  The cache of a thread that died without giving
 * it back (a killed process, one that exited without rszshm_dt()) is
 * adopted by the next thread of any process to claim a slot in the region.
 * A process that calls exec without rszshm_dt() keeps its main thread's
 * cache until it ends (the thread lives on) or attaches and allocates
 * again (then that thread takes its slot back).  Blocks in caches are free: rszshm_stats() counts them so, and a
 * second free of one fails with EINVAL.  A region has slots for 96 threads
 * at once; further threads allocate through the arenas (correct, slower).
 * A thread that finds the span full gives its own cache back and tries
 * again, but blocks cached by other live threads stay theirs.
 * ------------------------------------------------------------------------ */

/** Alignment of every block rszshm_alloc() returns. */
#define RSZSHM_ALIGN 16

/**
 * rszshm_alloc - allocate @size bytes from the region's heap
 * @r: handle of a heap region
 * @size: bytes wanted (0 gives a unique minimal block)
 *
 * The block is aligned to RSZSHM_ALIGN and its address is valid in every
 * attached process.  A block freed by any process is reused by any other
 * (through the freeing thread's cache first, see above).  The region grows
 * on demand, up to its span.  The first allocation of a thread in a region
 * claims its cache slot (a look at /proc for each slot whose owner may have
 * died).
 *
 * A thread killed at any point inside rszshm_alloc() or rszshm_dealloc()
 * loses at most one block: the one it was moving (handing out, or between
 * its cache and an arena).  Its cache is adopted as described above; the
 * next process to use a heap lock it held rebuilds the lock's bookkeeping
 * from the segment headers and bitmaps; rszshm_check() passes before and
 * after.
 *
 * Safety: any thread of any attached process at once.
 * Errors: ETIMEDOUT, ENODATA (see "Errors of every call");
 * EINVAL @r is NULL, detached or not a heap region; EPERM @r is
 * read-only; ENOMEM the span is full; EBADMSG the heap's control block is
 * damaged; ENOTRECOVERABLE the heap's bookkeeping is damaged (a process
 * died holding a heap lock, or the region was written over) and rebuilding
 * it from the segment headers did not repair it: damaged segments are never
 * used again; the errors of rszshm_grow_to().
 * Returns: the block, or NULL with errno set.
 */
RSZSHM_API void *rszshm_alloc(struct rszshm *r, size_t size);

/** rszshm_zalloc - as rszshm_alloc(), with the block zeroed. */
RSZSHM_API void *rszshm_zalloc(struct rszshm *r, size_t size);

/**
 * rszshm_alloc_aligned - as rszshm_alloc(), aligned to @align
 * @align: a power of two, at most 64 KiB
 *
 * Errors: ETIMEDOUT, ENODATA (see "Errors of every call");
 * those of rszshm_alloc(), and EINVAL for a bad @align.
 */
RSZSHM_API void *rszshm_alloc_aligned(struct rszshm *r, size_t align, size_t size);

/**
 * rszshm_realloc - resize a block
 * @p: a block of this region, or NULL (then as rszshm_alloc())
 * @size: new size
 *
 * Keeps the first min(old, @size) bytes.  On failure @p is left as it was.
 * Errors: ETIMEDOUT, ENODATA (see "Errors of every call");
 * those of rszshm_alloc(), EINVAL if @p is not a live block, and
 * EBADMSG if its run header is damaged (its length past the heap's end).
 * Returns: the block (possibly moved), or NULL with errno set.
 */
RSZSHM_API void *rszshm_realloc(struct rszshm *r, void *p, size_t size);

/**
 * rszshm_dealloc - return a block to the heap
 * @p: a block of this region, or NULL (does nothing)
 *
 * Any process may free any live block, whichever process allocated it
 * (a producer process may allocate and a consumer process free).  A block
 * of up to 1 KiB goes to the calling thread's cache (see above), a larger
 * one to its arena.  A thread killed inside rszshm_dealloc() loses at most
 * one block (see rszshm_alloc()); a block whose free was under way is
 * either free or still live (then rszshm_dealloc() of it succeeds in
 * another process).
 *
 * Safety: any thread of any attached process at once; usually lock-free.
 * Errors: ETIMEDOUT, ENODATA (see "Errors of every call");
 * EINVAL @r is NULL, detached or not a heap region, or @p is not a
 * live block of this region (not allocated, or already freed: detected
 * where the heap's bookkeeping shows it); EPERM @r is read-only; EBADMSG the
 * heap's control block, or the run header of @p, is damaged;
 * ENOTRECOVERABLE as rszshm_alloc().
 * Returns: 0 on success, -1 with errno set.
 */
RSZSHM_API int rszshm_dealloc(struct rszshm *r, void *p);

/**
 * rszshm_usable_size - bytes usable in a block (at least its requested size)
 *
 * The bytes from @p to the end of its block, which never reach past the
 * region or its file.
 * Returns: the size, or 0 with errno EINVAL if @p is not a block of the heap,
 * EBADMSG if its run header is damaged.
 */
RSZSHM_API size_t rszshm_usable_size(struct rszshm *r, const void *p);

/* ------------------------------------------------------------------------
 * Named records: a hash index of names in a heap region.
 *
 * A record maps a name to a value: either a pointer into the region
 * published with rszshm_rec_add() (the caller keeps owning the memory), or a
 * copy of some bytes stored with rszshm_rec_put() (the library owns it, and
 * replaces it on the next put).  Another process attaches the region by its
 * file name and looks the name up; since the region is at the same address
 * everywhere, the pointers inside a published structure work as they are.
 *
 * The index lives in the region: a hash table (O(1) expected lookups; open
 * addressing, at most half full, doubling as it fills) and a list in
 * insertion order.  Writers
 * (add, put, remove, clear) serialize on a robust lock in the header; a
 * writer killed at any point leaves an update that the next writer
 * completes.  Readers (find, get, next) take no lock: they read the index
 * optimistically and retry if a writer changed it meanwhile, so they never
 * wait for a writer's copy, and they work on read-only attachments.
 * ------------------------------------------------------------------------ */

/** Longest record name, terminating NUL excluded. */
#define RSZSHM_NAME_MAX 63

/**
 * struct rszshm_rec_info - what a record holds, as one consistent snapshot
 * @name: the record's name, NUL-terminated
 * @type: the caller's type tag, as given to the last add or put
 * @size: size of the value, in bytes
 * @ptr: address of the value (valid in every attached process; for a
 *       copied value, only until the record is next replaced or removed)
 * @gen: generation: 1 when the record is made, +1 each time rszshm_rec_put()
 *       replaces its value
 * @copied: true if the value is a copy kept by the library (rszshm_rec_put()),
 *          false if it is a pointer published by rszshm_rec_add()
 */
struct rszshm_rec_info {
	char name[RSZSHM_NAME_MAX + 1];
	uint32_t type;
	size_t size;
	void *ptr;
	uint64_t gen;
	bool copied;
};

/**
 * struct rszshm_rec_iter - position of an iteration over the records
 *
 * Set to RSZSHM_REC_ITER_INIT before the first rszshm_rec_next().  It holds
 * the insertion id and address of the last record returned (private: copy
 * it, don't interpret it).  An iterator belongs to one process and one
 * region.
 */
struct rszshm_rec_iter {
	uint64_t pos_[2];
};
#ifdef __cplusplus
static inline struct rszshm_rec_iter rszshm_rec_iter_init_(void)
{
	struct rszshm_rec_iter it = { { 0, 0 } };
	return it;
}
#define RSZSHM_REC_ITER_INIT (rszshm_rec_iter_init_())
#else
#define RSZSHM_REC_ITER_INIT ((struct rszshm_rec_iter){ { 0, 0 } })
#endif

/**
 * rszshm_rec_add - publish a pointer into the region under a name
 * @r: handle of a heap region
 * @name: 1 to RSZSHM_NAME_MAX bytes, NUL-terminated
 * @type: a tag of the caller's choice, returned by lookups
 * @ptr: the value's address: not NULL, inside the region past the header
 *       (usually a block from rszshm_alloc())
 * @size: the value's size; @ptr + @size must lie inside the region
 *
 * Makes a new record; the name must not exist.  The pointer is stored as
 * it is: the library never reads, copies or frees what it points to (the
 * caller keeps owning it, and may free it after removing the record).  Other
 * processes see the record as soon as the call returns.
 *
 * Safety: any thread of any attached process; takes the index lock (robust)
 * for O(1) expected work, O(n) when the hash table doubles.  Not
 * async-signal-safe.
 * Errors:
 *   ETIMEDOUT  a lock stayed held past the handle's lock bound
 *            (see "Errors of every call"); nothing changed
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL        @r is NULL, detached or not a heap region; @name is NULL
 *                 or ""; @ptr is NULL or [@ptr, @ptr + @size) is not inside
 *                 the region
 *   EPERM         @r is read-only
 *   ENAMETOOLONG  @name is longer than RSZSHM_NAME_MAX
 *   EEXIST        a record of that name exists
 *   ENOMEM        the heap is full (the region fills its span)
 *   EBADMSG       the index is damaged (found while looking the name up)
 *   ENOTRECOVERABLE  a writer died in the index and it could not be repaired
 *   and the errors of rszshm_alloc().
 * Example:
 *	struct node *head = rszshm_alloc(&r, sizeof(*head));
 *
 *	head->next = NULL;
 *	if (rszshm_rec_add(&r, "list", 1, head, sizeof(*head)) == -1)
 *		err(1, "rszshm_rec_add");
 *
 * Returns: 0 on success, -1 with errno set.
 * See also: rszshm_rec_put(), rszshm_rec_find(), rszshm_rec_remove()
 */
RSZSHM_API int rszshm_rec_add(struct rszshm *r, const char *name, uint32_t type,
			      void *ptr, size_t size);

/**
 * rszshm_rec_put - store a copy of some bytes under a name, making or
 * replacing the record
 * @r: handle of a heap region
 * @name: 1 to RSZSHM_NAME_MAX bytes, NUL-terminated
 * @type: a tag of the caller's choice, returned by lookups
 * @data: the bytes to copy (may be NULL when @size is 0)
 * @size: how many
 *
 * Copies @data into a new heap block, then (under the index lock, for O(1)
 * work) makes the record, or gives the existing record the new block, type
 * and size and bumps its generation.  A record keeps its place in the
 * insertion order when its value is replaced.  The old copy is freed; a
 * pointer the record published with rszshm_rec_add() is left alone (the
 * record now holds a copy).  The first value is kept in the record's own
 * block (one block per new record, and one cache miss less per lookup);
 * after a replacement those bytes stay unused until the record is removed.  Readers in other processes see either the old
 * value or the new one, never a mix: rszshm_rec_get() copies are untorn.
 * This is TMapFile's Add and Update in one call.
 *
 * Safety: as rszshm_rec_add(); the copy is made before the lock is taken.
 * Errors: ETIMEDOUT, ENODATA (see "Errors of every call");
 * those of rszshm_rec_add() but EEXIST, and EINVAL if @data is
 * NULL with a non-zero @size.
 * Example:
 *	struct stats s = { .events = n };
 *
 *	if (rszshm_rec_put(&r, "stats", 2, &s, sizeof(s)) == -1)
 *		err(1, "rszshm_rec_put");
 *
 * Returns: 0 on success, -1 with errno set.  On failure the record is as it was.
 * See also: rszshm_rec_get()
 */
RSZSHM_API int rszshm_rec_put(struct rszshm *r, const char *name, uint32_t type,
			      const void *data, size_t size);

/**
 * rszshm_rec_find - look a name up
 * @r: handle of a heap region (read-only handles too)
 * @name: the name
 * @info: (optional) filled with the record's fields, all from one moment
 *
 * O(1) expected: one hash, a slot or two, one record.  The address returned
 * is valid in every attached process.  For a published pointer
 * (rszshm_rec_add()) it stays valid as long as its owner keeps the memory;
 * for a copied value (rszshm_rec_put()) only until the record is next
 * replaced or removed, by any process: to read a value that others update,
 * use rszshm_rec_get().
 *
 * Safety: any thread of any attached process; lock-free (after repeated
 * interference from writers a writable handle takes the index lock briefly;
 * a read-only handle keeps retrying).  Not async-signal-safe.
 * Errors:
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL        @r is NULL, detached or not a heap region; @name is NULL or ""
 *   ENAMETOOLONG  @name is longer than RSZSHM_NAME_MAX
 *   ENOENT        no record has that name
 *   EBADMSG       the index is damaged, or the record's value does not lie
 *                 inside the region past its header (never handed out)
 *   EAGAIN        read-only @r: the index stayed mid-update, with no writer
 *                 in the index lock (one died in it and no writer has
 *                 repaired it yet) or with one holding it past the handle's
 *                 lock bound (struct rszshm_opts.lock_timeout_ms)
 *   ENOTRECOVERABLE  writable @r fell back to the lock and the index could
 *                 not be repaired
 * Example:
 *	const struct node *n = rszshm_rec_find(&r, "list", NULL);
 *
 *	for (; n; n = n->next)	// pointers made by another process
 *		printf("%d\n", n->value);
 *
 * Returns: the value's address, or NULL with errno set.
 */
RSZSHM_API void *rszshm_rec_find(struct rszshm *r, const char *name,
				 struct rszshm_rec_info *info);

/**
 * rszshm_rec_get - copy a record's value, never torn
 * @r: handle of a heap region (read-only handles too)
 * @name: the name
 * @buf: where to copy (may be NULL when @len is 0: asks the size)
 * @len: room in @buf; at most @len bytes are copied
 * @info: (optional) the record's fields, from the same moment as the copy
 *
 * Copies the value as one version: while other processes replace it with
 * rszshm_rec_put(), the copy (and @info) is always one whole version, never
 * a mix of two, and the reader never waits for a writer's copy.  Works for
 * published pointers too, copying their memory (which their owner may be
 * changing: that is the owner's business).  Like snprintf(3), returns the
 * value's full size even when @len is smaller.
 *
 * Safety: as rszshm_rec_find().
 * Errors: ENODATA (see "Errors of every call");
 * those of rszshm_rec_find(), and EINVAL if @buf is NULL with a
 * non-zero @len; EOVERFLOW the size does not fit ssize_t.
 * Example:
 *	struct stats s;
 *
 *	if (rszshm_rec_get(&r, "stats", &s, sizeof(s), NULL) != sizeof(s))
 *		errx(1, "no stats");
 *
 * Returns: the value's size (possibly more than @len), or -1 with errno set.
 */
RSZSHM_API ssize_t rszshm_rec_get(struct rszshm *r, const char *name, void *buf,
				  size_t len, struct rszshm_rec_info *info);

/**
 * rszshm_rec_remove - remove a record
 * @r: handle of a heap region
 * @name: the name
 *
 * Unlinks the record and frees it, and its value if it is a copy
 * (rszshm_rec_put()).  A pointer published with rszshm_rec_add() is never
 * freed: its owner frees it.  Lookups in other processes stop finding the
 * name as soon as the call returns; an iteration in progress carries on
 * with the next record.
 *
 * Safety: as rszshm_rec_add().
 * Errors:
 *   ETIMEDOUT  a lock stayed held past the handle's lock bound
 *            (see "Errors of every call"); nothing changed
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL        @r is NULL, detached or not a heap region; @name is NULL or ""
 *   EPERM         @r is read-only
 *   ENAMETOOLONG  @name is longer than RSZSHM_NAME_MAX
 *   ENOENT        no record has that name
 *   EBADMSG       the index is damaged
 *   ENOTRECOVERABLE  a writer died in the index and it could not be repaired
 * Returns: 0 on success, -1 with errno set.
 */
RSZSHM_API int rszshm_rec_remove(struct rszshm *r, const char *name);

/**
 * rszshm_rec_clear - remove every record
 * @r: handle of a heap region
 *
 * Removes, oldest first, each record that existed when the call started, as
 * rszshm_rec_remove() would (one short lock hold each, so readers and other
 * writers go on meanwhile); records other processes add during the call are
 * kept.  TMapFile's RemoveAll.  The index itself stays (its root in the
 * header's segment, and its slot array).
 *
 * Safety: as rszshm_rec_add(); O(n).
 * Errors: ETIMEDOUT, ENODATA (see "Errors of every call");
 * EINVAL @r is NULL, detached or not a heap region; EPERM @r is
 * read-only; EBADMSG, ENOTRECOVERABLE as rszshm_rec_remove().  Some records
 * may have been removed when it fails.
 * Returns: 0 on success (also when there was nothing to remove), -1 with
 * errno set.
 */
RSZSHM_API int rszshm_rec_clear(struct rszshm *r);

/**
 * rszshm_rec_next - the next record in insertion order
 * @r: handle of a heap region (read-only handles too)
 * @it: position, RSZSHM_REC_ITER_INIT to start; advanced on success
 * @info: (optional) filled with the record's fields
 *
 * Iterates in the order the records were made (replacing a value keeps the
 * place; removing and putting again moves the name to the end).  O(1) per
 * step; if the last record returned has been removed meanwhile, the step
 * scans from the oldest record for the next one.  Other processes may add
 * and remove records during an iteration: every record that exists for the
 * whole iteration is returned exactly once, none is returned twice, records
 * made meanwhile may be returned (after all older ones), removed ones are not
 * returned after their removal.
 *
 * Safety: as rszshm_rec_find().
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r is NULL, detached or not a heap region, or @it is NULL;
 * EBADMSG the index is damaged (a loop in the list included, or a value
 * outside the region or in its header: as rszshm_rec_find()); EAGAIN,
 * ENOTRECOVERABLE as rszshm_rec_find().
 * Example:
 *	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
 *	struct rszshm_rec_info info;
 *
 *	while (rszshm_rec_next(&r, &it, &info) == 1)
 *		printf("%s: %zu bytes\n", info.name, info.size);
 *
 * Returns: 1 with @info filled, 0 at the end, -1 with errno set.
 */
RSZSHM_API int rszshm_rec_next(struct rszshm *r, struct rszshm_rec_iter *it,
			       struct rszshm_rec_info *info);

/* ------------------------------------------------------------------------
 * Waiting for records to change: producers and consumers with no polling.
 *
 * A consumer sleeps until a record it shows is put again, removed or made,
 * or until anything in the index changes, then copies what it needs with
 * rszshm_rec_get().  Writers wake sleepers with futexes kept in the header;
 * a put with nobody waiting makes no system call for it.  A waiter or a
 * writer killed at any point leaves nothing to repair: a waiter killed
 * asleep only leaves writers making a wake-up call nobody needs; a writer
 * killed between its change and its wake-up dies holding the index lock,
 * and the next writer to take it wakes every waiter (until then, waiters
 * sleep to their timeout).
 *
 * Ordering: when a wait returns because of a change, everything the
 * writer stored before its add, put or remove is visible to the waiter
 * (the writer publishes with release stores, the waiter reads with
 * acquire loads), so a rszshm_rec_get() after it returns that version or
 * a later one.
 * ------------------------------------------------------------------------ */

/**
 * rszshm_rec_wait - sleep until a record changes
 * @r: handle of a heap region (read-only handles too)
 * @name: the record's name (it need not exist)
 * @seen: in: the record's stamp as the caller last saw it, 0 for "no
 *        such record"; out: its stamp now
 * @timeout_ms: longest wait in milliseconds; -1 waits for ever, 0 only looks
 *
 * A record's stamp is a number the region gives each change of the index:
 * it changes whenever the record is put, made, or removed (then it is 0),
 * and a name removed and made again never gets back an old stamp.  It is
 * not @gen of struct rszshm_rec_info.  Returns as soon as the stamp
 * differs from *@seen, at once if it already does: start with *@seen = 0
 * to get the stamp of an existing record at once, or to sleep until the
 * record is made.  A change made after the caller obtained *@seen always
 * ends the wait.  Several changes in a row may end one wait: the caller
 * sees the latest (copy it with rszshm_rec_get(), which may return a
 * version newer still: the next wait then returns at once, and the copy
 * after it may be the same version; compare @gen of struct rszshm_rec_info
 * to skip it).  See the section above for what the waiter sees.
 *
 * A read-only handle announces itself through a writable mapping of the
 * header's first page made for the wait (the caller needs write permission
 * on the file, not a writable handle).  Without it (a file the caller may
 * only read) the wait still ends on every change, but looks again every
 * 10 ms instead of being woken: a change can then take up to 10 ms to end
 * it.  Spurious wake-ups are hidden (the call sleeps again).  Waiting
 * costs no CPU; each call may make a few system calls before sleeping,
 * among them one membarrier(2) (MEMBARRIER_CMD_GLOBAL_EXPEDITED: an
 * interrupt to each CPU running a process that writes records, so that
 * writers need no full fence); a call that finds its change at once, or a
 * poll (@timeout_ms 0), makes none.  Where the kernel (or a seccomp filter)
 * refuses membarrier, the wait looks again every 10 ms as above.
 *
 * Safety: any thread of any attached process, any number of waiters; takes
 * no lock.  Not async-signal-safe.  A signal caught by a handler installed
 * without SA_RESTART ends the wait (EINTR); with SA_RESTART the wait goes on.
 * Errors:
 *   ENODATA  the file was cut under the call (see "Errors of every call")
 *   EINVAL        @r is NULL, detached or not a heap region; @name is NULL
 *                 or ""; @seen is NULL
 *   ENAMETOOLONG  @name is longer than RSZSHM_NAME_MAX
 *   ETIMEDOUT     @timeout_ms passed with no change (*@seen is left alone)
 *   EINTR         a signal handler (installed without SA_RESTART) ran
 *   EBADMSG, EAGAIN, ENOTRECOVERABLE  as rszshm_rec_find()
 * Example:
 *	uint64_t seen = 0;
 *	struct hist h;
 *
 *	while (rszshm_rec_wait(&r, "hist", &seen, -1) == 0)
 *		if (seen && rszshm_rec_get(&r, "hist", &h, sizeof(h), NULL) > 0)
 *			show(&h);
 *
 * Returns: 0 with *@seen updated, -1 with errno set.
 * See also: rszshm_rec_wait_any()
 */
RSZSHM_API int rszshm_rec_wait(struct rszshm *r, const char *name, uint64_t *seen,
			       int timeout_ms);

/**
 * rszshm_rec_changes - how many changes the record index has had
 * @r: handle of a heap region (read-only handles too)
 *
 * Counts adds, puts, removes (a rszshm_rec_clear() counts one per record)
 * since the region was made; a writer that died and was recovered from
 * counts one more.  Pass it to rszshm_rec_wait_any().
 *
 * Safety: any thread; one atomic load.
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r is NULL, detached or not a heap region.
 * Returns: the count (0 in a new region), or 0 with errno set.
 */
RSZSHM_API uint64_t rszshm_rec_changes(struct rszshm *r);

/**
 * rszshm_rec_wait_any - sleep until anything in the record index changes
 * @r: handle of a heap region (read-only handles too)
 * @seen: in: rszshm_rec_changes() as the caller last saw it; out: the
 *        count now
 * @timeout_ms: as rszshm_rec_wait()
 *
 * Returns as soon as the count differs from *@seen (an add, put or remove
 * by anyone, each record of a clear): a browser that shows every record
 * then walks them again with rszshm_rec_next().  Otherwise as
 * rszshm_rec_wait(), read-only handles and ordering included.
 *
 * Safety: as rszshm_rec_wait().
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r is NULL, detached or not a heap region, or @seen is
 * NULL; ETIMEDOUT; EINTR.
 * Example:
 *	uint64_t seen = rszshm_rec_changes(&r);
 *
 *	for (;;) {
 *		show_all(&r);
 *		if (rszshm_rec_wait_any(&r, &seen, 1000) == -1 && errno != ETIMEDOUT)
 *			break;
 *	}
 *
 * Returns: 0 with *@seen updated, -1 with errno set.
 */
RSZSHM_API int rszshm_rec_wait_any(struct rszshm *r, uint64_t *seen, int timeout_ms);

/* ------------------------------------------------------------------------
 * Consistency check and statistics.
 * ------------------------------------------------------------------------ */

/**
 * struct rszshm_stats - a region's figures
 * @region_bytes: current length of the region (header included)
 * @span_bytes: length of its span
 * @used_bytes: bytes in live heap blocks (usable sizes)
 * @free_bytes: bytes the heap holds free, ready for reuse
 * @blocks: live heap blocks
 * @largest_free_bytes: largest block the heap can give without growing
 * @records: named records
 *
 * The function rszshm_stats() has the same name, which C allows (structs have
 * their own name space).  In C++ the function hides the bare type name, so
 * declare a struct with the keyword, "struct rszshm_stats st;", or with the
 * typedef rszshm_stats_t, in C or C++.  Neither name changes, so C sources
 * keep compiling.
 */
struct rszshm_stats {
	uint64_t region_bytes;
	uint64_t span_bytes;
	uint64_t used_bytes;
	uint64_t free_bytes;
	uint64_t blocks;
	uint64_t largest_free_bytes;
	uint64_t records;
};
typedef struct rszshm_stats rszshm_stats_t;

/**
 * rszshm_check - walk the header, the heap and the record index
 * @r: handle (read-only handles too)
 * @msg: (optional) where to put a one-line description of the first damage
 * @msglen: size of @msg
 *
 * Checks every header field and the header's four locks (type fields as
 * made, a lock word and owner some holder could have written; a lock merely
 * held is not damage), then, in a heap region, every segment and free
 * list of the heap and every slot and record of the index, following each
 * stored pointer only after checking it lies inside the region, and bounding
 * every walk (a loop is damage, not a hang).  Reports the first violation:
 * every kind of damage that a heap or record call refuses is reported.  On
 * an attached handle the header's length is compared with the file's real
 * size (a length past the end of the file is damage, not SIGBUS).
 * Meant for tests, for tools (rszshm-dump --check) and after a crash; the
 * walk reads without locks, so run it when no process is writing, or treat a
 * report as "look again".
 *
 * Safety: any thread; takes no lock; O(region length).
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r is NULL or detached; ENOMEM no memory for the walk's
 * bitmaps (one bit per heap block).
 * Returns: 0 if consistent, 1 if damaged (the first violation in @msg), -1
 * with errno set on error.
 */
RSZSHM_API int rszshm_check(struct rszshm *r, char *msg, size_t msglen);

/**
 * rszshm_stats - a region's figures
 * @r: handle (read-only handles too)
 * @st: filled in; the heap fields are 0 in a raw region
 *
 * Computed by the same walk as rszshm_check(), so it costs as much.
 *
 * Safety: as rszshm_check().
 * Errors: ENODATA (see "Errors of every call");
 * EINVAL @r or @st is NULL, or @r is detached; EBADMSG the region
 * is damaged (rszshm_check() says where).
 * Returns: 0 on success, -1 with errno set.
 */
RSZSHM_API int rszshm_stats(struct rszshm *r, struct rszshm_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* RSZSHM_H */
