/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dump.c - the engine of rszshm-dump (see dump.h): one file in; a summary,
 * a table of records, a hexdump or a JSON object out; and a status.
 *
 * For each file:
 *   1. stat(2) it: only a regular file is ever opened, so a FIFO or a device
 *      never blocks the tool or sees an open(2);
 *   2. rszshm__view_open(): open read-only, pread and validate the header,
 *      map the recorded length PROT_READ at whatever address the kernel
 *      picks (the recorded base may well be taken in this process);
 *   3. rszshm__check_view(): the header, the heap and the record index,
 *      each walk bounded; it also gives the heap's figures;
 *   4. print.  Every address read from the file is translated with
 *      rszshm__view_ptr(), which refuses anything outside the mapping;
 *      records are iterated only through an index that passed its check,
 *      and never more of them than the region's length can hold.
 *
 * Only the first problem found in a file is reported, as one line on @err:
 * "rszshm-dump: PATH: problem".  The status is the worst one seen.  All the
 * output is streamed: nothing is allocated in proportion to the file.
 *
 * Bytes that come from outside (paths, record names, the check's message)
 * are escaped: with vis(3) in text, so that every diagnostic and table row
 * stays one line; in JSON, each byte outside printable ASCII becomes
 * \u00XX, so the output is valid JSON whatever the bytes, and each code
 * point of a string gives back one byte.
 *
 * A file truncated by someone else while it is mapped would raise SIGBUS
 * at the next read past its new end: every read of the view runs inside
 * the library's guard (lib/guard.c), which patches the fault over, and the
 * file is then reported ("file shrank while being read").  The tool keeps
 * running: rszshm-dump --list goes on to the next file.
 */
#define _GNU_SOURCE
#define LIBBSD_NETBSD_VIS
#include <errno.h>
#include <inttypes.h>
#include <libutil.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <vis.h>

#include "internal.h"
#include "dump.h"

#define TOOL "rszshm-dump"

/* Reopens when the region grew between the header read and the map. */
#define OPEN_TRIES 3
/* No record takes fewer bytes of the region than this: bounds iteration. */
#define MIN_REC_BYTES 16
/* vis(3) flags: paths and messages keep spaces; names in tables do not. */
#define VIS_TEXT (VIS_CSTYLE | VIS_OCTAL | VIS_TAB | VIS_NL)
#define VIS_NAME (VIS_CSTYLE | VIS_OCTAL | VIS_WHITE)

struct dump {
	const char *path;
	const struct dump_opts *o;
	FILE *out;
	FILE *err;
	char *vpath;			/* @path, vis-encoded */
	struct rszshm__view v;
	struct rszshm_hdr h;		/* the header, as mapped at open */
	uint64_t alloc_bytes;		/* blocks the file has on disk/in memory */
	struct rszshm_stats st;
	bool checked;			/* the check ran; @damaged is its verdict */
	bool damaged;
	bool index_ok;			/* the record index passed its walk */
	char violation[256];
	char error[512];		/* the first problem reported, "" if none */
	int status;
	bool probe;			/* dump_probe(): stop after the check, print nothing */
	const char *closers[4];		/* JSON still open, innermost last */
	int nclosers;
};

/* ------------------------------------------------------------ output */

static void json_str(FILE *f, const char *s, size_t n)
{
	size_t i;

	fputc('"', f);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, f);
		else
			fprintf(f, "\\u%04x", c);
	}
	fputc('"', f);
}

static void json_key(struct dump *d, const char *key)
{
	fprintf(d->out, ",\"%s\":", key);
}

static void json_push(struct dump *d, const char *closer)
{
	if (d->nclosers < (int)(sizeof(d->closers) / sizeof(d->closers[0])))
		d->closers[d->nclosers++] = closer;
}

static void json_pop(struct dump *d)
{
	if (d->nclosers > 0)
		fputs(d->closers[--d->nclosers], d->out);
}

/* @n bytes in human form: "4.0G (4294967296 bytes)". */
/* A raw region's capacity, as a handle's cap (include/rszshm.h): after the
 * header, less the spill page while the region is shorter than its span. */
static uint64_t raw_bytes(const struct rszshm_hdr *h)
{
	return h->flen - h->hdr_size - (h->flen < h->max ? h->page_size : 0);
}

static const char *human(char *buf, size_t len, uint64_t n)
{
	char h[8];

	if (n > INT64_MAX ||
	    humanize_number(h, 5, (int64_t)n, "", HN_AUTOSCALE, HN_DECIMAL | HN_NOSPACE | HN_B) < 0)
		snprintf(buf, len, "%" PRIu64 " bytes", n);
	else
		snprintf(buf, len, "%s (%" PRIu64 " bytes)", h, n);
	return buf;
}

/*
 * Report a problem of the file: the first one goes to @err as one line;
 * every one raises the status.
 */
__attribute__((format(printf, 3, 4)))
static void complain(struct dump *d, int status, const char *fmt, ...)
{
	char vmsg[4 * sizeof(d->error) + 1];
	va_list ap;

	if (status > d->status)
		d->status = status;
	if (d->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	if (!d->err)
		return;
	strvis(vmsg, d->error, VIS_TEXT);
	fprintf(d->err, TOOL ": %s: %s\n", d->vpath, vmsg);
}

/* ----------------------------------------------------------- records */

typedef int rec_fn(struct dump *d, const struct rszshm_rec_info *info, void *arg);

/*
 * Call @fn for each record of the view, in the index's order, until it
 * returns non-zero.  Returns 0, or -1 once the problem is reported.
 */
static int each_record(struct dump *d, rec_fn *fn, void *arg)
{
	struct rszshm_rec_iter it = RSZSHM_REC_ITER_INIT;
	struct rszshm_rec_info info;
	uint64_t n, bound = d->v.len / MIN_REC_BYTES;
	int rc;

	if (!(d->h.flags & RSZSHM_HEAP))
		return 0;
	if (!d->index_ok) {
		complain(d, DUMP_DAMAGED, "damaged: the record index cannot be walked");
		return -1;
	}
	for (n = 0;; n++) {
		memset(&info, 0, sizeof(info));
		rc = rszshm__rec_view_next(&d->v, &it, &info);
		if (rc == 0)
			return 0;
		if (rc == -EBADMSG) {
			complain(d, DUMP_DAMAGED, "damaged: the record index cannot be walked");
			return -1;
		}
		if (rc < 0) {
			complain(d, DUMP_UNUSABLE, "reading the records: %s", strerror(-rc));
			return -1;
		}
		if (n >= bound) {
			complain(d, DUMP_DAMAGED, "damaged: the record index never ends");
			return -1;
		}
		info.name[sizeof(info.name) - 1] = '\0';
		if (fn(d, &info, arg))
			return 0;
	}
}

static int print_rec(struct dump *d, const struct rszshm_rec_info *info, void *arg)
{
	uint64_t *n = arg;

	if (d->o->json) {
		fprintf(d->out, "%s{\"name\":", (*n)++ ? "," : "");
		json_str(d->out, info->name, strlen(info->name));
		fprintf(d->out, ",\"type\":%" PRIu32 ",\"size\":%zu,\"address\":\"0x%" PRIxPTR "\""
			",\"generation\":%" PRIu64 ",\"copied\":%s}",
			info->type, info->size, (uintptr_t)info->ptr, info->gen,
			info->copied ? "true" : "false");
	} else {
		char vname[4 * sizeof(info->name) + 1];

		strvis(vname, info->name, VIS_NAME);
		fprintf(d->out, "    %-24s 0x%08" PRIx32 " %12zu  0x%016" PRIxPTR " %10" PRIu64 "  %s\n",
			vname, info->type, info->size, (uintptr_t)info->ptr, info->gen,
			info->copied ? "copy" : "pointer");
		(*n)++;
	}
	return 0;
}

static void print_records(struct dump *d)
{
	uint64_t n = 0;

	if (d->o->json) {
		json_key(d, "records");
		fputc('[', d->out);
		json_push(d, "]");
	} else {
		fprintf(d->out, "  records:\n    %-24s %10s %12s  %-18s %10s  %s\n",
			"NAME", "TYPE", "SIZE", "ADDRESS", "GEN", "KIND");
	}
	if (each_record(d, print_rec, &n) < 0 && !d->o->json)
		fprintf(d->out, "    (stopped: the record index is damaged)\n");
	else if (n == 0 && !d->o->json)
		fprintf(d->out, "    (none)\n");
	if (d->o->json)
		json_pop(d);
}

struct found {
	bool yes;
	struct rszshm_rec_info info;
};

static int find_rec(struct dump *d, const struct rszshm_rec_info *info, void *arg)
{
	struct found *f = arg;

	if (strcmp(info->name, d->o->hex) != 0)
		return 0;
	f->yes = true;
	f->info = *info;
	return 1;
}

static void hex_line(FILE *f, uint64_t off, const unsigned char *b, size_t k)
{
	size_t i;

	fprintf(f, "    %08" PRIx64 " ", off);
	for (i = 0; i < 16; i++) {
		if (i == 8)
			fputc(' ', f);
		if (i < k)
			fprintf(f, " %02x", b[i]);
		else
			fputs("   ", f);
	}
	fputs("  |", f);
	for (i = 0; i < k; i++)
		fputc(b[i] >= 0x20 && b[i] < 0x7f ? b[i] : '.', f);
	fputs("|\n", f);
}

static void print_hex(struct dump *d)
{
	struct found f = { .yes = false };
	const struct rszshm_rec_info *info = &f.info;
	const unsigned char *p = NULL;
	uint64_t off;

	if (each_record(d, find_rec, &f) < 0)
		return;
	if (!f.yes) {
		complain(d, DUMP_UNUSABLE, "no record named \"%s\"", d->o->hex);
		return;
	}
	if (info->size > 0 &&
	    !(p = rszshm__view_ptr(&d->v, (uintptr_t)info->ptr, info->size))) {
		complain(d, DUMP_DAMAGED, "damaged: record \"%s\" (%zu bytes at 0x%" PRIxPTR
			 ") lies outside the region", info->name, info->size, (uintptr_t)info->ptr);
		return;
	}
	if (d->o->json) {
		json_key(d, "hex");
		fputs("{\"name\":", d->out);
		json_str(d->out, info->name, strlen(info->name));
		fprintf(d->out, ",\"address\":\"0x%" PRIxPTR "\",\"size\":%zu,\"bytes\":\"",
			(uintptr_t)info->ptr, info->size);
		json_push(d, "\"}");
	} else {
		char vname[4 * sizeof(info->name) + 1];

		strvis(vname, info->name, VIS_NAME);
		fprintf(d->out, "  record %s: %zu bytes at 0x%" PRIxPTR "\n", vname, info->size,
			(uintptr_t)info->ptr);
	}
	for (off = 0; off < info->size; off += 16) {
		unsigned char b[16];
		size_t i, k = info->size - off < 16 ? (size_t)(info->size - off) : 16;

		memcpy(b, p + off, k);	/* a SIGBUS here is caught: see guarded() */
		if (d->o->json) {
			for (i = 0; i < k; i++)
				fprintf(d->out, "%02x", b[i]);
		} else {
			hex_line(d->out, off, b, k);
		}
	}
	if (d->o->json)
		json_pop(d);
}

/* ----------------------------------------------------------- summary */

/*
 * The header's locks, as their words say now: free, held by a thread id
 * (of the holder's PID namespace), or left by a holder that died.  A word
 * is whatever the file holds (a co-writer may have written it): what it
 * names is reported, not believed.  The word is glibc's __lock, the first
 * int of pthread_mutex_t (lib/lock.c).
 */
static const struct {
	const char *name;
	size_t off;
} dump_locks[] = {
	{ "grow", offsetof(struct rszshm__shared, grow_lock) },
	{ "user", offsetof(struct rszshm__shared, user_lock) },
	{ "heap", offsetof(struct rszshm__shared, heap_lock) },
	{ "records", offsetof(struct rszshm__shared, rec_lock) },
};

static unsigned lock_word(struct dump *d, size_t off)
{
	const char *sh = (const char *)rszshm__shared(rszshm__view_hdr(&d->v));

	return __atomic_load_n((const unsigned *)(const void *)(sh + off), __ATOMIC_RELAXED);
}

static void print_locks(struct dump *d)
{
	char line[256];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(dump_locks) / sizeof(dump_locks[0]); i++) {
		unsigned v = lock_word(d, dump_locks[i].off), tid = v & FUTEX_TID_MASK;
		bool died = v & FUTEX_OWNER_DIED;

		if (d->o->json) {
			fprintf(d->out, "%s\"%s\":{\"holder\":", i ? "," : ",\"locks\":{",
				dump_locks[i].name);
			if (tid)
				fprintf(d->out, "%u", tid);
			else
				fputs("null", d->out);
			fprintf(d->out, ",\"holder_died\":%s,\"waiters\":%s}", died ? "true" : "false",
				v & FUTEX_WAITERS ? "true" : "false");
			continue;
		}
		if (tid)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s held by thread %u%s",
					      i ? ", " : "", dump_locks[i].name, tid,
					      died ? " (holder died)" : "");
		else
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %s", i ? ", " : "",
					      dump_locks[i].name, died ? "left by a dead holder" : "free");
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
	}
	if (d->o->json)
		fputc('}', d->out);
	else
		fprintf(d->out, "  %-16s %s\n", "locks", line);
}

static void print_summary(struct dump *d)
{
	const struct rszshm_hdr *h = &d->h;
	const struct rszshm_stats *st = &d->st;
	bool heap = h->flags & RSZSHM_HEAP;
	bool allocate = h->flags & RSZSHM_ALLOCATE;
	char a[64], b[64], c[64], abi[96];

	rszshm__hdr_abi_name(h->abi, abi, sizeof(abi));
	if (d->o->json) {
		fprintf(d->out, ",\"format_version\":%" PRIu32 ",\"abi\":\"%s\"", h->version, abi);
		fprintf(d->out, ",\"base\":\"0x%" PRIx64 "\""
			",\"span_bytes\":%" PRIu64 ",\"length_bytes\":%" PRIu64
			",\"allocated_bytes\":%" PRIu64 ",\"backing\":\"%s\",\"anonymous\":%s"
			",\"heap\":%s",
			d->v.base, h->max, d->v.len, d->alloc_bytes,
			allocate ? "allocated" : "sparse", h->flags & RSZSHM_ANON ? "true" : "false",
			heap ? "true" : "false");
		if (!heap)
			fprintf(d->out, ",\"raw_bytes\":%" PRIu64, raw_bytes(h));
		else if (d->damaged)
			fputs(",\"heap_stats\":null", d->out);
		else
			fprintf(d->out, ",\"heap_stats\":{\"used_bytes\":%" PRIu64
				",\"free_bytes\":%" PRIu64 ",\"blocks\":%" PRIu64
				",\"largest_free_bytes\":%" PRIu64 ",\"records\":%" PRIu64 "}",
				st->used_bytes, st->free_bytes, st->blocks,
				st->largest_free_bytes, st->records);
		print_locks(d);
		return;
	}
	fprintf(d->out, "%s\n", d->vpath);
	fprintf(d->out, "  %-16s %" PRIu32 "\n", "format version", h->version);
	fprintf(d->out, "  %-16s %s\n", "abi", abi);
	fprintf(d->out, "  %-16s 0x%" PRIx64 "\n", "base address", d->v.base);
	fprintf(d->out, "  %-16s %s\n", "span", human(a, sizeof(a), h->max));
	fprintf(d->out, "  %-16s %s\n", "length", human(a, sizeof(a), d->v.len));
	fprintf(d->out, "  %-16s %s, %s on storage\n", "backing",
		allocate ? "allocated" : "sparse", human(a, sizeof(a), d->alloc_bytes));
	fprintf(d->out, "  %-16s %s\n", "anonymous", h->flags & RSZSHM_ANON ? "yes" : "no");
	fprintf(d->out, "  %-16s %s\n", "heap", heap ? "yes" : "no");
	if (!heap) {
		fprintf(d->out, "  %-16s %s\n", "raw area",
			human(a, sizeof(a), raw_bytes(h)));
	} else if (d->damaged) {
		fprintf(d->out, "  %-16s %s\n", "heap stats", "unavailable: the region is damaged");
	} else {
		fprintf(d->out, "  %-16s %s in %" PRIu64 " blocks\n", "heap in use",
			human(a, sizeof(a), st->used_bytes), st->blocks);
		fprintf(d->out, "  %-16s %s, largest block %s\n", "heap free",
			human(b, sizeof(b), st->free_bytes),
			human(c, sizeof(c), st->largest_free_bytes));
		fprintf(d->out, "  %-16s %" PRIu64 "\n", "records", st->records);
	}
	print_locks(d);
}

static void print_verdict(struct dump *d, bool alone)
{
	char vmsg[4 * sizeof(d->violation) + 1];

	strvis(vmsg, d->violation, VIS_TEXT);
	if (alone)
		fprintf(d->out, "%s: %s%s\n", d->vpath, d->damaged ? "damaged: " : "ok",
			d->damaged ? vmsg : "");
	else
		fprintf(d->out, "  %-16s %s%s\n", "check", d->damaged ? "damaged: " : "ok",
			d->damaged ? vmsg : "");
}

/* ------------------------------------------------------------- steps */

static void shrank(struct dump *d)
{
	while (d->nclosers > 0)
		json_pop(d);
	complain(d, DUMP_UNUSABLE, "file shrank while being read");
}

/* The header, as the view now has it.  0 or -1 (reported). */
static int read_hdr(struct dump *d)
{
	struct rszshm__guard g;

	rszshm__guard_enter_view(&g, &d->v);
	memcpy(&d->h, rszshm__view_hdr(&d->v), sizeof(d->h));
	if (rszshm__guard_leave(&g)) {
		shrank(d);
		return -1;
	}
	return 0;
}

/* Step 2: open a view whose length matches the header's. 0 or -1 (reported). */
static int open_view(struct dump *d)
{
	const char *why;
	struct stat st;
	int rc, tries;

	for (tries = 1;; tries++) {
		rc = rszshm__view_open(d->path, &d->v, &why);
		if (rc < 0) {
			complain(d, DUMP_UNUSABLE, "%s", why ? why : strerror(-rc));
			return -1;
		}
		if (read_hdr(d) < 0)
			return -1;
		if (d->h.flen == d->v.len || tries == OPEN_TRIES)
			break;
		rszshm__view_close(&d->v);
	}
	if (fstat(d->v.fd, &st) == 0)
		d->alloc_bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}

/* Steps 3 and 4, on the view. */
static void dump_body(struct dump *d)
{
	const struct dump_opts *o = d->o;
	int rc;

	rc = rszshm__check_view(&d->v, &d->st, d->violation, sizeof(d->violation));
	if (rc < 0) {
		complain(d, DUMP_UNUSABLE, "checking: %s", strerror(-rc));
		return;
	}
	d->checked = true;
	d->damaged = rc != 0;
	d->index_ok = true;
	if (d->damaged) {
		struct rszshm_stats ignore;
		char msg[8];

		complain(d, DUMP_DAMAGED, "damaged: %s", d->violation);
		/*
		 * The records are walked only through an index that passes its
		 * own check (the damage may lie in the heap alone): a damaged
		 * one could make every step of the iteration rescan the list.
		 */
		memset(&ignore, 0, sizeof(ignore));
		d->index_ok = (d->h.flags & RSZSHM_HEAP) &&
			      rszshm__rec_walk(&d->v, &ignore, msg, sizeof(msg)) == 0;
	}
	if (d->probe)
		return;
	if (o->check && !o->records && !o->hex && !o->json) {
		print_verdict(d, true);
		return;
	}
	print_summary(d);
	if (o->check && !o->json)
		print_verdict(d, false);
	if (o->records)
		print_records(d);
	if (o->hex)
		print_hex(d);
}

/* Steps 2 to 4, every read of the view inside a guard frame. */
static void guarded(struct dump *d)
{
	struct rszshm__guard g;

	if (open_view(d) < 0)
		return;
	rszshm__guard_enter_view(&g, &d->v);
	dump_body(d);
	if (rszshm__guard_leave(&g))
		shrank(d);
}

/* Step 1: only regular files are opened.  0 or -1 (reported). */
static int check_type(struct dump *d)
{
	struct stat st;

	if (stat(d->path, &st) < 0) {
		complain(d, DUMP_UNUSABLE, "%s", strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		complain(d, DUMP_UNUSABLE, "%s", strerror(EISDIR));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		complain(d, DUMP_UNUSABLE, "not a regular file");
		return -1;
	}
	return 0;
}

int dump_file(const char *path, const struct dump_opts *o, FILE *out, FILE *err)
{
	struct dump d;

	memset(&d, 0, sizeof(d));
	d.path = path;
	d.o = o;
	d.out = out;
	d.err = err;
	d.v.fd = -1;
	if (!(d.vpath = malloc(4 * strlen(path) + 1))) {
		fprintf(err, TOOL ": %s\n", strerror(ENOMEM));
		return DUMP_UNUSABLE;
	}
	strvis(d.vpath, path, VIS_TEXT);
	if (o->json) {
		fputs("{\"file\":", out);
		json_str(out, path, strlen(path));
	}
	if (check_type(&d) == 0)
		guarded(&d);
	rszshm__view_close(&d.v);
	if (o->json) {
		if (d.checked) {
			fprintf(out, ",\"consistent\":%s,\"violation\":", d.damaged ? "false" : "true");
			if (d.damaged)
				json_str(out, d.violation, strlen(d.violation));
			else
				fputs("null", out);
		}
		if (d.error[0]) {
			json_key(&d, "error");
			json_str(out, d.error, strlen(d.error));
		}
		fputc('}', out);
	}
	free(d.vpath);
	return d.status;
}

int dump_probe(const char *path, struct dump_info *info)
{
	static const struct dump_opts none = { .json = false };
	struct dump d;

	memset(&d, 0, sizeof(d));
	memset(info, 0, sizeof(*info));
	d.path = path;
	d.o = &none;
	d.v.fd = -1;
	d.probe = true;
	if (!(d.vpath = malloc(4 * strlen(path) + 1))) {
		snprintf(info->error, sizeof(info->error), "%s", strerror(ENOMEM));
		return DUMP_UNUSABLE;
	}
	strvis(d.vpath, path, VIS_TEXT);
	if (check_type(&d) == 0)
		guarded(&d);
	rszshm__view_close(&d.v);
	info->region = d.checked;
	info->hdr = d.h;
	info->base = d.v.base;
	info->len = d.h.flen;
	info->alloc_bytes = d.alloc_bytes;
	info->damaged = d.damaged;
	info->st = d.st;
	snprintf(info->error, sizeof(info->error), "%s", d.error);
	free(d.vpath);
	return d.status;
}
