/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-dump.c - rszshm-dump (tools/rszshm-dump.c, tools/dump.c).
 *
 * Most tests run the built tool (its path comes in $RSZSHM_DUMP) on files
 * the test makes, with stdout and stderr captured through pipes, and check
 * its output against the handle that made the region: summary fields, the
 * record table, the hexdump, the JSON (parsed by the small parser below),
 * and every exit status with its one-line diagnostic.  The in-process tests
 * call dump_file(), the tool's engine, directly: on a region this process
 * maps at its recorded base (so the engine's own view must go elsewhere),
 * and on thousands of randomly corrupted copies of a populated heap region.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dump.h"
#include "internal.h"
#include "test-common.h"

/* --------------------------------------------------- running the tool */

/* Run the tool with the arguments given (NULL-terminated); fills @r. */
static void run_tool(struct test_output *r, ...)
{
	const char *tool = getenv("RSZSHM_DUMP");
	char *argv[16];
	int argc = 0;
	va_list ap;

	ck_assert_msg(tool != NULL, "RSZSHM_DUMP is not set: run this through meson test");
	argv[argc++] = (char *)"rszshm-dump";
	va_start(ap, r);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	test_capture(r, 0, false, tool, argv);
}

static size_t count_char(const char *s, size_t n, char c)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

/* Exactly one diagnostic line, "rszshm-dump: @name: ...", containing @what. */
static void assert_one_error(const struct test_output *r, const char *name, const char *what)
{
	char prefix[512];

	snprintf(prefix, sizeof(prefix), "rszshm-dump: %s: ", name);
	ck_assert_msg(r->err.n > 0 && r->err.p[r->err.n - 1] == '\n' &&
		      count_char(r->err.p, r->err.n, '\n') == 1,
		      "not one line on stderr: [%s]", r->err.p);
	ck_assert_msg(strncmp(r->err.p, prefix, strlen(prefix)) == 0,
		      "stderr [%s] does not start with [%s]", r->err.p, prefix);
	if (what)
		ck_assert_msg(strstr(r->err.p, what), "stderr [%s] lacks [%s]", r->err.p, what);
}

/* ---------------------------------------------- reading the text output */

/* The value of the summary line "  KEY<pad> value", or NULL; in @buf. */
static const char *field(const char *out, const char *key, char *buf, size_t len)
{
	char prefix[64];
	const char *l;

	snprintf(prefix, sizeof(prefix), "  %-16s ", key);
	for (l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, prefix, strlen(prefix)) == 0) {
			const char *v = l + strlen(prefix);
			size_t n = strcspn(v, "\n");

			ck_assert_uint_lt(n, len);
			memcpy(buf, v, n);
			buf[n] = '\0';
			return buf;
		}
	}
	return NULL;
}

/* The exact byte count of a field "4.0K (4096 bytes)". */
static uint64_t field_bytes(const char *out, const char *key)
{
	char buf[256];
	const char *v = field(out, key, buf, sizeof(buf));
	uint64_t n;

	ck_assert_msg(v != NULL, "no \"%s\" in [%s]", key, out);
	ck_assert_msg(strchr(v, '(') && sscanf(strchr(v, '('), "(%" SCNu64 " bytes)", &n) == 1,
		      "no byte count in \"%s\"", v);
	return n;
}

/* ------------------------------------------------------ a JSON parser */

/*
 * Enough JSON to check the tool's: the whole grammar is validated, strings
 * are decoded (\u00XX to one byte, as the tool writes any byte), numbers
 * kept as text.
 */
enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype t;
	char *s;		/* J_STR: the bytes (NUL added); J_NUM: the text */
	size_t len;
	size_t n;		/* J_ARR, J_OBJ: members */
	struct jv **kids;
	struct jv **keys;	/* J_OBJ: J_STR keys */
};

struct jp {
	const char *p;
	const char *end;
};

#define JFAIL(j, what) ck_abort_msg("JSON: %s at offset %td", (what), (j)->p - start_)

static const char *start_;

static void jws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool jlit(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	return true;
}

static int jhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static struct jv *jnew(enum jtype t)
{
	struct jv *v = calloc(1, sizeof(*v));

	ck_assert_ptr_nonnull(v);
	v->t = t;
	return v;
}

static struct jv *jstring(struct jp *j)
{
	struct jv *v = jnew(J_STR);
	size_t cap = 16;

	v->s = malloc(cap);
	ck_assert_ptr_nonnull(v->s);
	j->p++;	/* the opening quote */
	for (;;) {
		unsigned c;

		if (j->p >= j->end)
			JFAIL(j, "unterminated string");
		c = (unsigned char)*j->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			JFAIL(j, "control character in a string");
		if (c >= 0x80)
			JFAIL(j, "non-ASCII byte (the tool escapes every one)");
		if (c == '\\') {
			if (j->p >= j->end)
				JFAIL(j, "unterminated escape");
			switch (*j->p++) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case '/': c = '/'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u':
				c = 0;
				for (int i = 0; i < 4; i++) {
					int h = j->p < j->end ? jhex(*j->p++) : -1;

					if (h < 0)
						JFAIL(j, "bad \\u escape");
					c = c * 16 + (unsigned)h;
				}
				if (c > 0xff)
					JFAIL(j, "code point above 0xff (the tool writes bytes)");
				break;
			default:
				JFAIL(j, "bad escape");
			}
		}
		if (v->len + 2 > cap) {
			cap *= 2;
			v->s = realloc(v->s, cap);
			ck_assert_ptr_nonnull(v->s);
		}
		v->s[v->len++] = (char)c;
	}
	v->s[v->len] = '\0';
	return v;
}

static struct jv *jvalue(struct jp *j, int depth);

static void jadd(struct jv *v, struct jv *key, struct jv *kid)
{
	v->kids = realloc(v->kids, (v->n + 1) * sizeof(*v->kids));
	v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
	ck_assert(v->kids && v->keys);
	v->kids[v->n] = kid;
	v->keys[v->n] = key;
	v->n++;
}

static struct jv *jcompound(struct jp *j, int depth, bool obj)
{
	struct jv *v = jnew(obj ? J_OBJ : J_ARR);
	char close = obj ? '}' : ']';

	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return v;
	}
	for (;;) {
		struct jv *key = NULL;

		jws(j);
		if (obj) {
			if (j->p >= j->end || *j->p != '"')
				JFAIL(j, "expected a key");
			key = jstring(j);
			jws(j);
			if (j->p >= j->end || *j->p++ != ':')
				JFAIL(j, "expected ':'");
		}
		jadd(v, key, jvalue(j, depth + 1));
		jws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return v;
		}
		JFAIL(j, "expected ',' or a closing bracket");
	}
}

static struct jv *jnumber(struct jp *j)
{
	const char *s = j->p;
	struct jv *v;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (j->p < j->end && *j->p >= '1' && *j->p <= '9')
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	else
		JFAIL(j, "bad number");
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			JFAIL(j, "bad fraction");
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			JFAIL(j, "bad exponent");
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	v = jnew(J_NUM);
	v->s = strndup(s, (size_t)(j->p - s));
	v->len = (size_t)(j->p - s);
	return v;
}

static struct jv *jvalue(struct jp *j, int depth)
{
	if (depth > 32)
		JFAIL(j, "nested too deep");
	jws(j);
	if (j->p >= j->end)
		JFAIL(j, "expected a value");
	switch (*j->p) {
	case '{':
		return jcompound(j, depth, true);
	case '[':
		return jcompound(j, depth, false);
	case '"':
		return jstring(j);
	case 'n':
		if (jlit(j, "null"))
			return jnew(J_NULL);
		break;
	case 't':
		if (jlit(j, "true"))
			return jnew(J_TRUE);
		break;
	case 'f':
		if (jlit(j, "false"))
			return jnew(J_FALSE);
		break;
	default:
		return jnumber(j);
	}
	JFAIL(j, "bad literal");
	return NULL;
}

/* Parse one JSON text of @n bytes: one value, then only white space. */
static struct jv *jparse(const char *text, size_t n)
{
	struct jp j = { text, text + n };
	struct jv *v;

	start_ = text;
	v = jvalue(&j, 0);
	jws(&j);
	if (j.p != j.end)
		JFAIL(&j, "trailing bytes");
	return v;
}

static void jfree(struct jv *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		jfree(v->kids[i]);
		jfree(v->keys[i]);
	}
	free(v->kids);
	free(v->keys);
	free(v->s);
	free(v);
}

/* Member @key of object @o, or NULL; a key given twice fails the test. */
static const struct jv *jget(const struct jv *o, const char *key)
{
	const struct jv *found = NULL;

	ck_assert_int_eq(o->t, J_OBJ);
	for (size_t i = 0; i < o->n; i++) {
		if (o->keys[i]->len == strlen(key) && memcmp(o->keys[i]->s, key, o->keys[i]->len) == 0) {
			ck_assert_msg(!found, "key \"%s\" twice", key);
			found = o->kids[i];
		}
	}
	return found;
}

static const struct jv *jreq(const struct jv *o, const char *key, enum jtype t)
{
	const struct jv *v = jget(o, key);

	ck_assert_msg(v != NULL, "no key \"%s\"", key);
	ck_assert_msg(v->t == t, "key \"%s\" has type %d, not %d", key, v->t, t);
	return v;
}

static uint64_t jnum(const struct jv *o, const char *key)
{
	const struct jv *v = jreq(o, key, J_NUM);
	char *end;
	uint64_t n;

	errno = 0;
	n = strtoull(v->s, &end, 10);
	ck_assert_msg(*end == '\0' && errno == 0 && v->s[0] != '-', "\"%s\" is not a count: %s",
		      key, v->s);
	return n;
}

static uint64_t jaddr(const struct jv *o, const char *key)
{
	const struct jv *v = jreq(o, key, J_STR);
	char *end;
	uint64_t n;

	ck_assert_msg(strncmp(v->s, "0x", 2) == 0, "\"%s\" is not hex: %s", key, v->s);
	n = strtoull(v->s + 2, &end, 16);
	ck_assert_msg(*end == '\0' && v->s[2], "\"%s\" is not hex: %s", key, v->s);
	return n;
}

static bool jbool(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);

	ck_assert_msg(v && (v->t == J_TRUE || v->t == J_FALSE), "\"%s\" is not a boolean", key);
	return v->t == J_TRUE;
}

/* The tool's JSON output for one file: one line, an array of one object. */
static struct jv *json_of(const struct test_output *r)
{
	struct jv *a, *v;

	ck_assert_msg(r->out.n > 0 && r->out.p[r->out.n - 1] == '\n' &&
		      count_char(r->out.p, r->out.n, '\n') == 1,
		      "JSON output is not one line: [%s]", r->out.p);
	a = jparse(r->out.p, r->out.n);
	ck_assert_msg(a->t == J_ARR && a->n == 1, "JSON output is not [ONE]: [%s]", r->out.p);
	v = a->kids[0];
	a->n = 0;
	jfree(a);
	return v;
}

/* ------------------------------------------------------------ regions */

static void make_raw(struct rszshm *r, const char *path, unsigned flags)
{
	test_track(path);
	ck_assert_msg(rszshm_mk_flags(r, 60 * KiB, path, RSZSHM_DFLT_SCAN, flags) != NULL,
		      "mk %s: %s", path, strerror(errno));
}

/* Records of the populated heap region; the odd name has every kind of byte. */
#define ODD_NAME "odd \"name\" \\ \n\t\x01\x7f\xff"
static const struct {
	const char *name;
	uint32_t type;
	size_t size;
	bool copy;
} recs[] = {
	{ "alpha", 7, 40, true },
	{ "beta", 0x1234abcd, 300, true },
	{ "gamma", 3, 100, false },
	{ ODD_NAME, 9, 5, true },
};
#define NRECS (sizeof(recs) / sizeof(recs[0]))

static void fill_value(unsigned char *p, size_t n, unsigned k)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + k * 31 + 1);
}

/*
 * A heap region with the records above: copies made by rszshm_rec_put(),
 * and one value allocated in the heap and published by rszshm_rec_add().
 */
static void make_heap(struct rszshm *r, const char *path)
{
	unsigned char v[512];

	test_track(path);
	ck_assert_msg(rszshm_mk_flags(r, 60 * KiB, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP) != NULL,
		      "mk heap %s: %s", path, strerror(errno));
	for (unsigned k = 0; k < NRECS; k++) {
		if (recs[k].copy) {
			fill_value(v, recs[k].size, k);
			ck_assert_int_eq(rszshm_rec_put(r, recs[k].name, recs[k].type, v,
							recs[k].size), 0);
		} else {
			unsigned char *p = rszshm_alloc(r, recs[k].size);

			ck_assert_ptr_nonnull(p);
			fill_value(p, recs[k].size, k);
			ck_assert_int_eq(rszshm_rec_add(r, recs[k].name, recs[k].type, p,
							recs[k].size), 0);
		}
	}
	/* A replaced value: generation 2. */
	fill_value(v, recs[0].size, 0);
	ck_assert_int_eq(rszshm_rec_put(r, recs[0].name, recs[0].type, v, recs[0].size), 0);
	ck_assert_int_eq(rszshm_check(r, NULL, 0), 0);
}

static char *vis_name(char *buf, size_t len, const char *name)
{
	/* As the tool writes names in tables: C-style escapes, spaces too. */
	size_t o = 0;

	for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
		char e[8];

		switch (*s) {
		case ' ': strcpy(e, "\\s"); break;
		case '\n': strcpy(e, "\\n"); break;
		case '\t': strcpy(e, "\\t"); break;
		case '\\': strcpy(e, "\\\\"); break;
		default:
			if (*s < 0x20 || *s >= 0x7f)
				snprintf(e, sizeof(e), "\\%03o", *s);
			else
				snprintf(e, sizeof(e), "%c", *s);
		}
		ck_assert_uint_lt(o + strlen(e), len);
		strcpy(buf + o, e);
		o += strlen(e);
	}
	buf[o] = '\0';
	return buf;
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	test_track(path);
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Overwrite @n bytes at the region's address @addr of the file @path. */
static void poke(const char *path, uint64_t base, uint64_t addr, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, p, n, (off_t)(addr - base)), (ssize_t)n);
	close(fd);
}

/* ------------------------------------------------------------- tests */

START_TEST(test_summary_matches_the_handle)
{
	char path[256], buf[256];
	struct rszshm r;
	struct test_output t;

	test_path(path, sizeof(path), "summary");
	make_raw(&r, path, 0);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_str_eq(t.err.p, "");
	ck_assert_msg(strncmp(t.out.p, path, strlen(path)) == 0 && t.out.p[strlen(path)] == '\n',
		      "first line is not the path: [%s]", t.out.p);
	ck_assert_uint_eq(strtoul(field(t.out.p, "format version", buf, sizeof(buf)), NULL, 10),
			  RSZSHM_FORMAT_VERSION);
	rszshm__hdr_abi_name(rszshm__hdr_abi(), path, sizeof(path));
	ck_assert_str_eq(field(t.out.p, "abi", buf, sizeof(buf)), path);
	snprintf(path, sizeof(path), "0x%" PRIxPTR, (uintptr_t)r.hdr);
	ck_assert_str_eq(field(t.out.p, "base address", buf, sizeof(buf)), path);
	ck_assert_uint_eq(field_bytes(t.out.p, "span"), r.max);
	ck_assert_uint_eq(field_bytes(t.out.p, "length"), r.flen);
	ck_assert_uint_eq(field_bytes(t.out.p, "raw area"), r.cap);
	ck_assert_str_eq(field(t.out.p, "heap", buf, sizeof(buf)), "no");
	ck_assert_str_eq(field(t.out.p, "anonymous", buf, sizeof(buf)), "no");
	ck_assert_ptr_nonnull(field(t.out.p, "backing", buf, sizeof(buf)));
	ck_assert_msg(strncmp(buf, "sparse, ", 8) == 0, "backing: %s", buf);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* The summary names who each lock word says holds it: the user lock taken
 * by this thread, in text and in JSON; the others free. */
START_TEST(test_summary_names_lock_holders)
{
	char path[256], buf[256], want[128];
	struct rszshm r;
	struct test_output t;
	const struct jv *locks, *user, *grow;
	struct jv *j;

	test_path(path, sizeof(path), "locks");
	make_heap(&r, path);
	ck_assert_int_eq(rszshm_lock(&r), 0);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 0);
	snprintf(want, sizeof(want), "grow free, user held by thread %d, heap free, records free",
		 (int)gettid());
	ck_assert_str_eq(field(t.out.p, "locks", buf, sizeof(buf)), want);
	test_output_free(&t);
	run_tool(&t, "--json", path, NULL);
	ck_assert_int_eq(t.status, 0);
	j = json_of(&t);
	locks = jreq(j, "locks", J_OBJ);
	user = jreq(locks, "user", J_OBJ);
	ck_assert_uint_eq(jnum(user, "holder"), (uint64_t)gettid());
	ck_assert(!jbool(user, "holder_died"));
	grow = jreq(locks, "grow", J_OBJ);
	jreq(grow, "holder", J_NULL);
	jfree(j);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_unlock(&r), 0);
	run_tool(&t, path, NULL);
	ck_assert_str_eq(field(t.out.p, "locks", buf, sizeof(buf)),
			 "grow free, user free, heap free, records free");
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_summary_shows_allocated_backing)
{
	char path[256], buf[256];
	struct rszshm r;
	struct test_output t;
	struct jv *j;

	test_path(path, sizeof(path), "allocated");
	make_raw(&r, path, RSZSHM_ALLOCATE);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_ptr_nonnull(field(t.out.p, "backing", buf, sizeof(buf)));
	ck_assert_msg(strncmp(buf, "allocated, ", 11) == 0, "backing: %s", buf);
	test_output_free(&t);
	run_tool(&t, "--json", path, NULL);
	j = json_of(&t);
	ck_assert_str_eq(jreq(j, "backing", J_STR)->s, "allocated");
	/* Every block of the file is allocated. */
	ck_assert_uint_ge(jnum(j, "allocated_bytes"), r.flen);
	jfree(j);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_summary_follows_growth)
{
	char path[256];
	struct rszshm r;
	struct test_output t;

	test_path(path, sizeof(path), "growth");
	make_raw(&r, path, 0);
	ck_assert_int_eq(rszshm_grow_to(&r, 1 * MiB), 0);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_uint_eq(field_bytes(t.out.p, "length"), 1 * MiB);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_json_matches_the_handle)
{
	char path[256];
	struct rszshm r;
	struct test_output t;
	struct jv *j;

	test_path(path, sizeof(path), "json");
	make_raw(&r, path, 0);
	run_tool(&t, "--json", "--records", path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_str_eq(t.err.p, "");
	j = json_of(&t);
	ck_assert_str_eq(jreq(j, "file", J_STR)->s, path);
	ck_assert_uint_eq(jnum(j, "format_version"), RSZSHM_FORMAT_VERSION);
	ck_assert_uint_eq(jaddr(j, "base"), (uintptr_t)r.hdr);
	ck_assert_uint_eq(jnum(j, "span_bytes"), r.max);
	ck_assert_uint_eq(jnum(j, "length_bytes"), r.flen);
	ck_assert_uint_eq(jnum(j, "raw_bytes"), r.cap);
	ck_assert_str_eq(jreq(j, "backing", J_STR)->s, "sparse");
	ck_assert(!jbool(j, "anonymous"));
	ck_assert(!jbool(j, "heap"));
	ck_assert(jbool(j, "consistent"));
	jreq(j, "violation", J_NULL);
	ck_assert_uint_eq(jreq(j, "records", J_ARR)->n, 0);
	ck_assert_ptr_null(jget(j, "error"));
	ck_assert_ptr_null(jget(j, "heap_stats"));
	jfree(j);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_any_byte_in_a_path_survives)
{
	static const char odd[] = "dir \"q\" \\ \n\t\x01\x7f\xff";
	char dir[256], path[300], want[1024];
	struct rszshm r;
	struct test_output t;
	struct jv *j;

	test_path(dir, sizeof(dir), "%s", odd);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/0", dir);
	make_raw(&r, path, 0);
	run_tool(&t, "--json", path, NULL);
	ck_assert_int_eq(t.status, 0);
	j = json_of(&t);
	ck_assert_uint_eq(jreq(j, "file", J_STR)->len, strlen(path));
	ck_assert_str_eq(jreq(j, "file", J_STR)->s, path);
	jfree(j);
	test_output_free(&t);
	/* In text, the path stays on one line; so does a diagnostic naming it. */
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_ptr_null(memchr(t.out.p, '\t', t.out.n));
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(rszshm_unlink(&r), 0);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 2);
	ck_assert_uint_eq(count_char(t.err.p, t.err.n, '\n'), 1);
	snprintf(want, sizeof(want), "%s", "dir \"q\" \\\\ \\n\\t\\001\\177\\377/0: No such file");
	ck_assert_msg(strstr(t.err.p, want), "[%s] lacks [%s]", t.err.p, want);
	test_output_free(&t);
}
END_TEST

START_TEST(test_heap_summary_counts_records)
{
	char path[256], buf[256], want[32];
	struct rszshm_stats st;
	struct rszshm r;
	struct test_output t;
	struct jv *j;
	const struct jv *hs;

	test_path(path, sizeof(path), "heap-summary");
	make_heap(&r, path);
	ck_assert_int_eq(rszshm_stats(&r, &st), 0);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_str_eq(t.err.p, "");
	ck_assert_str_eq(field(t.out.p, "heap", buf, sizeof(buf)), "yes");
	snprintf(want, sizeof(want), "%zu", NRECS);
	ck_assert_str_eq(field(t.out.p, "records", buf, sizeof(buf)), want);
	ck_assert_uint_eq(field_bytes(t.out.p, "heap in use"), st.used_bytes);
	ck_assert_uint_eq(field_bytes(t.out.p, "heap free"), st.free_bytes);
	test_output_free(&t);
	run_tool(&t, "--json", path, NULL);
	j = json_of(&t);
	ck_assert(jbool(j, "heap"));
	hs = jreq(j, "heap_stats", J_OBJ);
	ck_assert_uint_eq(jnum(hs, "records"), NRECS);
	ck_assert_uint_eq(jnum(hs, "used_bytes"), st.used_bytes);
	ck_assert_uint_eq(jnum(hs, "free_bytes"), st.free_bytes);
	ck_assert_uint_eq(jnum(hs, "blocks"), st.blocks);
	ck_assert_uint_eq(jnum(hs, "largest_free_bytes"), st.largest_free_bytes);
	ck_assert_ptr_null(jget(j, "raw_bytes"));
	jfree(j);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_records_table_lists_every_record)
{
	char path[256], line[1024], vname[512];
	struct rszshm r;
	struct test_output t;

	test_path(path, sizeof(path), "table");
	make_heap(&r, path);
	run_tool(&t, "--records", path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_str_eq(t.err.p, "");
	ck_assert_ptr_nonnull(strstr(t.out.p, "\n  records:\n    NAME "));
	for (unsigned k = 0; k < NRECS; k++) {
		struct rszshm_rec_info info;

		ck_assert_ptr_nonnull(rszshm_rec_find(&r, recs[k].name, &info));
		snprintf(line, sizeof(line),
			 "\n    %-24s 0x%08" PRIx32 " %12zu  0x%016" PRIxPTR " %10" PRIu64 "  %s\n",
			 vis_name(vname, sizeof(vname), recs[k].name), recs[k].type, recs[k].size,
			 (uintptr_t)info.ptr, info.gen, recs[k].copy ? "copy" : "pointer");
		ck_assert_msg(strstr(t.out.p, line), "no row [%s] in [%s]", line + 1, t.out.p);
	}
	/* One row per record, in the table after the summary. */
	ck_assert_uint_eq(count_char(strstr(t.out.p, "  records:"), strlen(strstr(t.out.p,
				     "  records:")), '\n'), NRECS + 2);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_json_records_match_the_index)
{
	char path[256];
	struct rszshm r;
	struct test_output t;
	struct jv *j;
	const struct jv *a;

	test_path(path, sizeof(path), "json-records");
	make_heap(&r, path);
	run_tool(&t, "--json", "--records", "--check", path, NULL);
	ck_assert_int_eq(t.status, 0);
	j = json_of(&t);
	a = jreq(j, "records", J_ARR);
	ck_assert_uint_eq(a->n, NRECS);
	for (unsigned k = 0; k < NRECS; k++) {
		const struct jv *e = a->kids[k];
		const struct jv *name = jreq(e, "name", J_STR);
		struct rszshm_rec_info info;

		/* In insertion order; every byte of the name comes back. */
		ck_assert_uint_eq(name->len, strlen(recs[k].name));
		ck_assert_int_eq(memcmp(name->s, recs[k].name, name->len), 0);
		ck_assert_ptr_nonnull(rszshm_rec_find(&r, recs[k].name, &info));
		ck_assert_uint_eq(jnum(e, "type"), recs[k].type);
		ck_assert_uint_eq(jnum(e, "size"), recs[k].size);
		ck_assert_uint_eq(jaddr(e, "address"), (uintptr_t)info.ptr);
		ck_assert_uint_eq(jnum(e, "generation"), info.gen);
		ck_assert_int_eq(jbool(e, "copied"), recs[k].copy);
	}
	ck_assert_uint_eq(jnum(a->kids[0], "generation"), 2);
	ck_assert(jbool(j, "consistent"));
	jfree(j);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_hex_shows_the_record_bytes)
{
	char path[256];
	struct rszshm_rec_info info;
	unsigned char want[512], got[512];
	struct rszshm r;
	struct test_output t;
	struct jv *j;
	const struct jv *h, *bytes;
	const char *l;
	size_t n = 0;

	test_path(path, sizeof(path), "hex");
	make_heap(&r, path);
	fill_value(want, recs[1].size, 1);
	run_tool(&t, "--hex", "beta", path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_ptr_nonnull(rszshm_rec_find(&r, "beta", &info));
	l = strstr(t.out.p, "\n  record beta: 300 bytes at ");
	ck_assert_msg(l != NULL, "no hexdump header in [%s]", t.out.p);
	/* Lines "    OFFSET  xx xx ...  xx  |ascii|". */
	for (l = strchr(l + 1, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
		const char *p = l + 1;
		char *end;
		unsigned long off = strtoul(p + 4, &end, 16);

		ck_assert_uint_eq(off, n);
		for (p = end; *p != '|';) {
			while (*p == ' ')
				p++;
			if (*p == '|')
				break;
			ck_assert(jhex(p[0]) >= 0 && jhex(p[1]) >= 0);
			ck_assert_uint_lt(n, sizeof(got));
			got[n++] = (unsigned char)(jhex(p[0]) * 16 + jhex(p[1]));
			p += 2;
		}
	}
	ck_assert_uint_eq(n, recs[1].size);
	ck_assert_int_eq(memcmp(got, want, n), 0);
	test_output_free(&t);

	run_tool(&t, "--json", "--hex", "gamma", path, NULL);
	ck_assert_int_eq(t.status, 0);
	j = json_of(&t);
	h = jreq(j, "hex", J_OBJ);
	ck_assert_str_eq(jreq(h, "name", J_STR)->s, "gamma");
	ck_assert_uint_eq(jnum(h, "size"), recs[2].size);
	bytes = jreq(h, "bytes", J_STR);
	ck_assert_uint_eq(bytes->len, 2 * recs[2].size);
	fill_value(want, recs[2].size, 2);
	for (size_t i = 0; i < recs[2].size; i++)
		ck_assert_int_eq(jhex(bytes->s[2 * i]) * 16 + jhex(bytes->s[2 * i + 1]), want[i]);
	jfree(j);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_hex_of_a_missing_record_exits_2)
{
	char path[256];
	struct rszshm r;
	struct test_output t;

	test_path(path, sizeof(path), "hex-missing");
	make_raw(&r, path, 0);
	run_tool(&t, "--hex", "nosuch", path, NULL);
	ck_assert_int_eq(t.status, 2);
	assert_one_error(&t, path, "no record named \"nosuch\"");
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_check_alone_prints_the_verdict)
{
	char path[256], want[300];
	struct rszshm r;
	struct test_output t;

	test_path(path, sizeof(path), "check-ok");
	make_heap(&r, path);
	run_tool(&t, "--check", path, NULL);
	ck_assert_int_eq(t.status, 0);
	snprintf(want, sizeof(want), "%s: ok\n", path);
	ck_assert_str_eq(t.out.p, want);
	ck_assert_str_eq(t.err.p, "");
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

START_TEST(test_fresh_heap_region_is_consistent)
{
	char path[256], want[300];
	struct rszshm r;
	struct test_output t;

	/* The smallest heap region: nothing carved past the control block. */
	test_path(path, sizeof(path), "fresh-heap");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk_flags(&r, 1, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP));
	run_tool(&t, "--check", path, NULL);
	snprintf(want, sizeof(want), "%s: ok\n", path);
	ck_assert_str_eq(t.out.p, want);
	ck_assert_int_eq(t.status, 0);
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/* Damage a heap region where its header's heap or record root points. */
static void damage_at(const char *name, bool index)
{
	char path[256], want[300];
	unsigned char junk[64];
	const struct rszshm__shared *sh;
	struct rszshm r;
	struct test_output t;
	uint64_t base, at;

	test_path(path, sizeof(path), "%s", name);
	make_heap(&r, path);
	sh = rszshm__shared(r.hdr);
	base = (uintptr_t)r.hdr;
	at = index ? sh->recs : sh->heap;
	ck_assert_uint_ne(at, 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	memset(junk, 0xa5, sizeof(junk));
	poke(path, base, at, junk, sizeof(junk));

	run_tool(&t, "--check", path, NULL);
	ck_assert_int_eq(t.status, 1);
	assert_one_error(&t, path, "damaged: ");
	snprintf(want, sizeof(want), "%s: damaged: ", path);
	ck_assert_msg(strncmp(t.out.p, want, strlen(want)) == 0 &&
		      count_char(t.out.p, t.out.n, '\n') == 1, "verdict: [%s]", t.out.p);
	test_output_free(&t);
	/* Every mode sees the damage. */
	run_tool(&t, "--records", "--json", path, NULL);
	ck_assert_int_eq(t.status, 1);
	assert_one_error(&t, path, "damaged: ");
	jfree(json_of(&t));
	test_output_free(&t);
}

START_TEST(test_damaged_heap_exits_1)
{
	damage_at("damaged-heap", false);
}
END_TEST

START_TEST(test_damaged_record_index_exits_1)
{
	damage_at("damaged-index", true);
}
END_TEST

START_TEST(test_missing_file_exits_2)
{
	char path[256];
	struct test_output t;
	struct jv *j;

	test_path(path, sizeof(path), "nosuch/0");
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 2);
	ck_assert_str_eq(t.out.p, "");
	assert_one_error(&t, path, strerror(ENOENT));
	test_output_free(&t);
	/* With --json, scripts still get an object for the file. */
	run_tool(&t, "--json", path, NULL);
	ck_assert_int_eq(t.status, 2);
	j = json_of(&t);
	ck_assert_str_eq(jreq(j, "file", J_STR)->s, path);
	ck_assert_str_eq(jreq(j, "error", J_STR)->s, strerror(ENOENT));
	jfree(j);
	test_output_free(&t);
}
END_TEST

START_TEST(test_directory_exits_2)
{
	struct test_output t;

	run_tool(&t, test_dir(), NULL);
	ck_assert_int_eq(t.status, 2);
	assert_one_error(&t, test_dir(), strerror(EISDIR));
	test_output_free(&t);
}
END_TEST

START_TEST(test_empty_file_exits_2)
{
	char path[256];
	struct test_output t;

	test_path(path, sizeof(path), "empty");
	write_file(path, "", 0);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 2);
	assert_one_error(&t, path, "shorter than a header");
	test_output_free(&t);
}
END_TEST

START_TEST(test_random_bytes_exit_2)
{
	char path[256];
	unsigned char junk[8192];
	struct test_output t;

	srandom(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)random();
	test_path(path, sizeof(path), "junk");
	write_file(path, junk, sizeof(junk));
	run_tool(&t, "--records", "--check", path, NULL);
	ck_assert_int_eq(t.status, 2);
	assert_one_error(&t, path, "not an rszshm region (bad magic)");
	test_output_free(&t);
}
END_TEST

START_TEST(test_truncated_region_exits_2)
{
	char path[256];
	struct rszshm r;
	struct test_output t;

	test_path(path, sizeof(path), "truncated");
	make_raw(&r, path, 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_int_eq(truncate(path, 4096), 0);
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 2);
	assert_one_error(&t, path, "truncated");
	test_output_free(&t);
}
END_TEST

START_TEST(test_damaged_header_exits_2)
{
	char path[256];
	struct rszshm r;
	struct test_output t;
	uint64_t bad = 12345;	/* not page aligned */
	uint64_t base;

	test_path(path, sizeof(path), "bad-header");
	make_raw(&r, path, 0);
	base = (uintptr_t)r.hdr;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	poke(path, base, base + offsetof(struct rszshm_hdr, flen), &bad, sizeof(bad));
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 2);
	assert_one_error(&t, path, "length is not page aligned");
	test_output_free(&t);
}
END_TEST

/*
 * A span that runs past this machine's user address space (47 bits on most
 * x86-64, 56 with 5-level paging; probed by the library) is a damaged
 * header: EBADMSG from rszshm_at(), status 2 from rszshm-dump, even with
 * --check.  Never ENOMEM from a failed claim, never "ok".
 */
START_TEST(test_span_past_the_address_space_is_damage)
{
	uint64_t end = rszshm__hdr_user_end(), base, addr, max;
	char path[256];
	struct rszshm r, s;
	struct test_output t;

#if UINTPTR_MAX > 0xffffffffu
	ck_assert_msg(end == (1ULL << 47) - 4096 || end == (1ULL << 48) - 4096 ||
		      end == (1ULL << 52) - 4096 || end == (1ULL << 56) - 4096 ||
		      end == (1ULL << 57) - 4096 || end == UINTPTR_MAX,
		      "user address space ends at %#" PRIx64 "?", (uint64_t)end);
#endif
	test_path(path, sizeof(path), "past-space");
	make_raw(&r, path, 0);
	base = (uintptr_t)r.hdr;
	max = r.max;
	/* Half the span below the end of the space, half past it. */
	addr = (end - max / 2) & ~(uint64_t)4095;
	ck_assert_int_eq(rszshm_dt(&r), 0);
	poke(path, base, base + offsetof(struct rszshm_hdr, addr_bits_), &addr, sizeof(addr));
	errno = 0;
	ck_assert_ptr_null(rszshm_at(&s, path));
	ck_assert_int_eq(errno, EBADMSG);
	run_tool(&t, "--check", path, NULL);
	ck_assert_int_eq(t.status, 2);
	/* On 32-bit builds half the span past the end also runs past 4 GiB,
	 * which is found first: the text says "address space" either way. */
	assert_one_error(&t, path, UINTPTR_MAX > 0xffffffffu ? "user address space"
							      : "address space");
	test_output_free(&t);

	/* Ending exactly at the end of the space is fine. */
	addr = (end - max) & ~(uint64_t)4095;
	poke(path, base, base + offsetof(struct rszshm_hdr, addr_bits_), &addr, sizeof(addr));
	run_tool(&t, "--check", path, NULL);
	ck_assert_msg(t.status == 0, "status %d: %s", t.status, t.err.p);
	test_output_free(&t);
}
END_TEST

START_TEST(test_fifo_exits_2_without_blocking)
{
	char path[256];
	struct test_output t;

	test_path(path, sizeof(path), "fifo");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	test_track(path);
	/* No writer: an open(2) would block, and the alarm would kill the tool. */
	run_tool(&t, path, NULL);
	ck_assert_int_eq(t.status, 2);
	assert_one_error(&t, path, "not a regular file");
	test_output_free(&t);
}
END_TEST

static void assert_usage_error(const struct test_output *t, const char *what)
{
	ck_assert_int_eq(t->status, 2);
	ck_assert_str_eq(t->out.p, "");
	ck_assert_msg(strncmp(t->err.p, "rszshm-dump: ", 13) == 0 && strstr(t->err.p, what) &&
		      count_char(t->err.p, t->err.n, '\n') == 1, "usage error: [%s]", t->err.p);
}

START_TEST(test_bad_usage_exits_2)
{
	struct test_output t;

	run_tool(&t, NULL);
	assert_usage_error(&t, "no file given");
	test_output_free(&t);
	run_tool(&t, "--bogus", "x", NULL);
	assert_usage_error(&t, "unknown option --bogus");
	test_output_free(&t);
	run_tool(&t, "-z", "x", NULL);
	assert_usage_error(&t, "unknown option -z");
	test_output_free(&t);
	run_tool(&t, "--hex", NULL);
	assert_usage_error(&t, "missing argument for --hex");
	test_output_free(&t);
	run_tool(&t, "--hex", "", "x", NULL);
	assert_usage_error(&t, "--hex needs a record name");
	test_output_free(&t);
}
END_TEST

START_TEST(test_help_and_version)
{
	char want[64];
	struct test_output t;

	run_tool(&t, "--help", NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_msg(strncmp(t.out.p, "usage: rszshm-dump", 18) == 0, "[%s]", t.out.p);
	ck_assert_str_eq(t.err.p, "");
	test_output_free(&t);
	run_tool(&t, "-V", NULL);
	ck_assert_int_eq(t.status, 0);
	snprintf(want, sizeof(want), "rszshm-dump %d.%d.%d\n", RSZSHM_VERSION_MAJOR,
		 RSZSHM_VERSION_MINOR, RSZSHM_VERSION_PATCH);
	ck_assert_str_eq(t.out.p, want);
	test_output_free(&t);
}
END_TEST

START_TEST(test_several_files_give_the_worst_status)
{
	char good[256], missing[256], damaged[256];
	unsigned char junk[64];
	struct rszshm a, b;
	struct test_output t;
	struct jv *j;
	uint64_t base, at;

	test_path(good, sizeof(good), "good");
	test_path(missing, sizeof(missing), "missing");
	test_path(damaged, sizeof(damaged), "damaged");
	make_raw(&a, good, 0);
	make_heap(&b, damaged);
	base = (uintptr_t)b.hdr;
	at = rszshm__shared(b.hdr)->recs;
	ck_assert_int_eq(rszshm_dt(&b), 0);
	memset(junk, 0x5a, sizeof(junk));
	poke(damaged, base, at, junk, sizeof(junk));

	run_tool(&t, "--check", good, good, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_uint_eq(count_char(t.out.p, t.out.n, '\n'), 2);
	test_output_free(&t);
	run_tool(&t, "--check", good, damaged, good, NULL);
	ck_assert_int_eq(t.status, 1);
	assert_one_error(&t, damaged, "damaged: ");
	ck_assert_uint_eq(count_char(t.out.p, t.out.n, '\n'), 3);
	test_output_free(&t);
	run_tool(&t, "--check", missing, damaged, good, NULL);
	ck_assert_int_eq(t.status, 2);
	ck_assert_uint_eq(count_char(t.err.p, t.err.n, '\n'), 2);
	test_output_free(&t);
	run_tool(&t, "--json", good, missing, good, NULL);
	ck_assert_int_eq(t.status, 2);
	/* One array, one element per file, on a line of its own. */
	ck_assert_uint_eq(count_char(t.out.p, t.out.n, '\n'), 3);
	j = jparse(t.out.p, t.out.n);
	ck_assert_int_eq(j->t, J_ARR);
	ck_assert_uint_eq(j->n, 3);
	jfree(j);
	test_output_free(&t);
	/* --json-lines: the same elements, one object per line. */
	run_tool(&t, "--json-lines", good, missing, good, NULL);
	ck_assert_int_eq(t.status, 2);
	ck_assert_uint_eq(count_char(t.out.p, t.out.n, '\n'), 3);
	for (char *l = t.out.p, *e; *l; l = e + 1) {
		e = strchr(l, '\n');
		j = jparse(l, (size_t)(e - l));
		ck_assert_int_eq(j->t, J_OBJ);
		jfree(j);
	}
	test_output_free(&t);
	ck_assert_int_eq(rszshm_dt(&a), 0);
}
END_TEST

/*
 * A file truncated while the tool reads it: the tool is dumping a large
 * record into a pipe the test does not drain, so it is stalled in the
 * middle (its view is open: output only starts after that); the test cuts
 * the file to one page, then drains.  The next page the tool reads is past
 * the end of the file (SIGBUS), which must become a diagnostic.
 */
START_TEST(test_file_shrinking_while_read_exits_2)
{
	const char *tool = getenv("RSZSHM_DUMP");
	char path[256], chunk[65536], err[1024] = "";
	int po[2], pe[2];
	struct rszshm r;
	unsigned char *big;
	ssize_t n, e = 0;
	pid_t pid;

	ck_assert_ptr_nonnull(tool);
	test_path(path, sizeof(path), "shrinking");
	test_track(path);
	ck_assert_ptr_nonnull(rszshm_mk_flags(&r, 64 * KiB, path, RSZSHM_DFLT_SCAN, RSZSHM_HEAP));
	ck_assert_ptr_nonnull(big = rszshm_alloc(&r, 8 * MiB));
	memset(big, 0x3c, 8 * MiB);
	ck_assert_int_eq(rszshm_rec_add(&r, "big", 1, big, 8 * MiB), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);

	ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
	pid = test_fork();
	if (pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		alarm(60);
		char *av[] = { (char *)"rszshm-dump", (char *)"--hex", (char *)"big", path, NULL };

		test_execv(tool, av);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	ck_assert_int_gt(read(po[0], chunk, sizeof(chunk)), 0);
	ck_assert_int_eq(truncate(path, 4096), 0);
	while ((n = read(po[0], chunk, sizeof(chunk))) > 0)
		;
	while ((n = read(pe[0], err + e, sizeof(err) - 1 - (size_t)e)) > 0)
		e += n;
	close(po[0]);
	close(pe[0]);
	ck_assert_int_eq(test_wait(pid), 2);
	ck_assert_msg(strstr(err, "file shrank while being read") &&
		      count_char(err, (size_t)e, '\n') == 1, "stderr: [%s]", err);
}
END_TEST

START_TEST(test_engine_works_while_the_base_is_taken)
{
	static const struct dump_opts o = { .json = true, .records = true, .check = true };
	char path[256], *out = NULL, *err = NULL;
	size_t outlen = 0, errlen = 0;
	struct rszshm r;
	FILE *fo, *fe;
	struct jv *j;

	/* This process maps the region at its recorded base... */
	test_path(path, sizeof(path), "in-process");
	make_raw(&r, path, 0);
	((unsigned char *)r.dat)[0] = 0x42;
	/* ...so the engine's view has to go somewhere else. */
	ck_assert_ptr_nonnull(fo = open_memstream(&out, &outlen));
	ck_assert_ptr_nonnull(fe = open_memstream(&err, &errlen));
	ck_assert_int_eq(dump_file(path, &o, fo, fe), DUMP_OK);
	fclose(fo);
	fclose(fe);
	ck_assert_str_eq(err, "");
	j = jparse(out, outlen);
	ck_assert_uint_eq(jaddr(j, "base"), (uintptr_t)r.hdr);
	ck_assert_uint_eq(jnum(j, "length_bytes"), r.flen);
	jfree(j);
	free(out);
	free(err);
	/* The handle's mapping is untouched. */
	ck_assert_uint_eq(((unsigned char *)r.dat)[0], 0x42);
	((unsigned char *)r.dat)[r.cap - 1] = 1;
	ck_assert_int_eq(rszshm_dt(&r), 0);
}
END_TEST

/*
 * Thousands of corrupted copies of a populated heap region go through the
 * engine with every output on: each must give a documented status (a crash,
 * a hang or a sanitizer report fails the test).  Each copy gets 1 to 4
 * changes, aimed at the header, the heap's control block, the record index,
 * or anywhere: flipped bytes, random words, zeros, all ones, and addresses
 * that point inside, at the edge of, or just past the region; one in
 * sixteen is also truncated.
 */
#define CORRUPTIONS 3000

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

START_TEST(test_random_corruptions_give_documented_statuses)
{
	static const struct dump_opts opts[] = {
		{ .records = true, .check = true, .hex = "beta" },
		{ .records = true, .json = true, .hex = ODD_NAME },
	};
	char path[256], work[256];
	unsigned counts[3] = { 0, 0, 0 };
	uint64_t base, len, areas[3], seed = 0x9e3779b97f4a7c15ULL;
	unsigned char *pristine, *copy;
	struct rszshm r;
	FILE *null;
	int fd;

	test_path(path, sizeof(path), "pristine");
	make_heap(&r, path);
	base = (uintptr_t)r.hdr;
	len = r.flen;
	areas[0] = 0;
	areas[1] = rszshm__shared(r.hdr)->heap - base;
	areas[2] = rszshm__shared(r.hdr)->recs - base;
	ck_assert_ptr_nonnull(pristine = malloc(len));
	ck_assert_ptr_nonnull(copy = malloc(len));
	memcpy(pristine, r.hdr, len);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	ck_assert_ptr_nonnull(null = fopen("/dev/null", "w"));

	test_path(work, sizeof(work), "corrupt");
	write_file(work, pristine, len);
	ck_assert_int_eq(dump_file(work, &opts[0], null, null), DUMP_OK);
	ck_assert_int_eq(dump_file(work, &opts[1], null, null), DUMP_OK);
	ck_assert_int_ge(fd = open(work, O_RDWR | O_CLOEXEC), 0);
	for (unsigned i = 0; i < CORRUPTIONS; i++) {
		unsigned changes = 1 + (unsigned)(rnd(&seed) % 4);
		uint64_t size = len;
		int rc;

		memcpy(copy, pristine, len);
		for (unsigned c = 0; c < changes; c++) {
			unsigned where = (unsigned)(rnd(&seed) % 4);
			uint64_t off = where < 3 ? areas[where] + rnd(&seed) % 256 : rnd(&seed) % len;
			uint64_t word;

			switch (rnd(&seed) % 6) {
			case 0:
				word = rnd(&seed);
				break;
			case 1:
				word = 0;
				break;
			case 2:
				word = ~(uint64_t)0;
				break;
			case 3:
				word = base + (rnd(&seed) % (len + 64) & ~(uint64_t)7);
				break;
			case 4:
				word = base + len - rnd(&seed) % 64;
				break;
			default:
				off = off < len ? off : len - 1;
				copy[off] ^= (unsigned char)(1 + rnd(&seed) % 255);
				continue;
			}
			off &= ~(uint64_t)7;
			if (off + 8 <= len)
				memcpy(copy + off, &word, 8);
		}
		if (rnd(&seed) % 16 == 0)
			size = rnd(&seed) % len;
		ck_assert_int_eq(pwrite(fd, copy, size, 0), (ssize_t)size);
		ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
		rc = dump_file(work, &opts[i % 2], null, null);
		ck_assert_msg(rc == DUMP_OK || rc == DUMP_DAMAGED || rc == DUMP_UNUSABLE,
			      "corruption %u: status %d", i, rc);
		counts[rc]++;
	}
	close(fd);
	fclose(null);
	free(pristine);
	free(copy);
	/* The corruptions reach past the header: some copies read as damaged. */
	ck_assert_uint_gt(counts[DUMP_DAMAGED], 0);
	ck_assert_uint_gt(counts[DUMP_UNUSABLE], 0);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("dump");

	TEST_ADD(s, test_summary_matches_the_handle);
	TEST_ADD(s, test_summary_shows_allocated_backing);
	TEST_ADD(s, test_summary_names_lock_holders);
	TEST_ADD(s, test_summary_follows_growth);
	TEST_ADD(s, test_json_matches_the_handle);
	TEST_ADD(s, test_any_byte_in_a_path_survives);
	TEST_ADD(s, test_heap_summary_counts_records);
	TEST_ADD(s, test_records_table_lists_every_record);
	TEST_ADD(s, test_json_records_match_the_index);
	TEST_ADD(s, test_hex_shows_the_record_bytes);
	TEST_ADD(s, test_hex_of_a_missing_record_exits_2);
	TEST_ADD(s, test_check_alone_prints_the_verdict);
	TEST_ADD(s, test_fresh_heap_region_is_consistent);
	TEST_ADD(s, test_damaged_heap_exits_1);
	TEST_ADD(s, test_damaged_record_index_exits_1);
	TEST_ADD(s, test_missing_file_exits_2);
	TEST_ADD(s, test_directory_exits_2);
	TEST_ADD(s, test_empty_file_exits_2);
	TEST_ADD(s, test_random_bytes_exit_2);
	TEST_ADD(s, test_truncated_region_exits_2);
	TEST_ADD(s, test_damaged_header_exits_2);
	TEST_ADD(s, test_span_past_the_address_space_is_damage);
	TEST_ADD(s, test_fifo_exits_2_without_blocking);
	TEST_ADD(s, test_bad_usage_exits_2);
	TEST_ADD(s, test_help_and_version);
	TEST_ADD(s, test_several_files_give_the_worst_status);
	TEST_ADD(s, test_file_shrinking_while_read_exits_2);
	TEST_ADD(s, test_engine_works_while_the_base_is_taken);
	TEST_ADD(s, test_random_corruptions_give_documented_statuses);
	return s;
}

const struct test_helper test_helpers[] = { { NULL, NULL } };
