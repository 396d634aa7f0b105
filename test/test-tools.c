/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test-tools.c - operating regions: rszshm-dump --list and --watch, the JSON
 * forms, rszshm-clean, and the command line of every installed program.
 *
 * The tests run the built programs ($RSZSHM_DUMP, $RSZSHM_CLEAN,
 * $RSZSHM_DEMO) on regions made in directories of their own under the run's
 * scratch directory, never on /dev/shm as a whole (other programs' regions
 * live there).  A process that maps a region is a helper, exec'd, attached
 * by name like any other program, and held until the test closes its pipe.
 * JSON is parsed by Python's json module ($RSZSHM_PYTHON): a real parser,
 * and the stricter of the two the output is meant for.  The test that
 * drops privileges runs only as root (it needs a user to drop to).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "test-common.h"

#define NOBODY 65534

/* ------------------------------------------------- running a program */

static const char *prog(const char *env)
{
	const char *p = getenv(env);

	ck_assert_msg(p != NULL, "%s is not set: run this through meson test", env);
	return p;
}

/* Run @argv (argv[0] the program's path) as @uid (or as we are, if 0): the
 * build's programs through its exe wrapper (qemu-user for a cross build), if
 * any; python3 is the host's own. */
static void run_argv(struct test_output *r, uid_t uid, char **argv)
{
	test_capture(r, uid, strcmp(argv[0], prog("RSZSHM_PYTHON")) == 0, argv[0], argv);
}

/* Run the program $@env with the arguments given (NULL-terminated). */
#define run(r, env, ...) run_as((r), 0, (env), __VA_ARGS__)
static void run_as(struct test_output *r, uid_t uid, const char *env, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)prog(env);
	va_start(ap, env);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	run_argv(r, uid, argv);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/*
 * Parse @json with Python's json module and print the Python expression
 * @expr of it (d is the parsed document) into @out: the test fails if the
 * text is not JSON.
 */
static char *py(const char *json, const char *expr, char *out, size_t len)
{
	static unsigned seq;
	char path[256];
	struct test_output r;
	FILE *f;

	test_path(path, sizeof(path), "json-%d-%u", (int)getpid(), seq++);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(json, f);
	ck_assert_int_eq(fclose(f), 0);
	run(&r, "RSZSHM_PYTHON", "-c",
	    "import json, sys\n"
	    "d = json.load(open(sys.argv[1]))\n"
	    "print(eval(sys.argv[2]))\n", path, expr, NULL);
	ck_assert_msg(r.status == 0, "python3 refused the JSON:\n%s\n%s", json, r.err.p);
	snprintf(out, len, "%s", r.out.p);
	out[strcspn(out, "\n")] = '\0';
	test_output_free(&r);
	unlink(path);
	return out;
}

#define ck_assert_py(json, expr, want) do { \
	char got_[4096]; \
	ck_assert_str_eq(py((json), (expr), got_, sizeof(got_)), (want)); \
} while (0)

/* ------------------------------------------------------------ regions */

/* A directory of its own for one test's regions: @buf. */
static char *fresh_dir(char *buf, size_t len, const char *name)
{
	test_path(buf, len, "%s", name);
	ck_assert_int_eq(mkdir(buf, 0755), 0);
	return buf;
}

static void make_region(const char *path, unsigned flags, unsigned nrecs)
{
	struct rszshm r;
	char name[32];

	test_track(path);
	ck_assert_msg(rszshm_mk_flags(&r, 60 * KiB, path, RSZSHM_DFLT_SCAN, flags) != NULL,
		      "mk %s: %s", path, strerror(errno));
	for (unsigned k = 0; k < nrecs; k++) {
		snprintf(name, sizeof(name), "rec-%u", k);
		ck_assert_int_eq(rszshm_rec_put(&r, name, k, name, strlen(name)), 0);
	}
	ck_assert_int_eq(rszshm_dt(&r), 0);
}

/* A process that maps @path until @h->release is closed. */
struct holder {
	pid_t pid;
	int release;	/* close it and the holder detaches and exits */
	char pids[16];	/* its pid, as text */
};

static void hold(struct holder *h, const char *path)
{
	int up[2], down[2];
	char w[16], r[16];

	/* Only the helper's ends cross the exec: it must see @release's end. */
	ck_assert_int_eq(pipe2(up, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(down, O_CLOEXEC), 0);
	ck_assert_int_eq(fcntl(up[1], F_SETFD, 0), 0);
	ck_assert_int_eq(fcntl(down[0], F_SETFD, 0), 0);
	snprintf(w, sizeof(w), "%d", up[1]);
	snprintf(r, sizeof(r), "%d", down[0]);
	h->pid = test_exec_helper("hold", path, w, r, NULL);
	close(up[1]);
	close(down[0]);
	test_wait_byte(up[0]);	/* attached */
	close(up[0]);
	h->release = down[1];
	snprintf(h->pids, sizeof(h->pids), "%d", (int)h->pid);
}

static void release(struct holder *h)
{
	close(h->release);
	ck_assert_int_eq(test_wait(h->pid), 0);
}

/* helper: attach PATH, post on fd W, detach when fd R reaches its end. */
static int helper_hold(int argc, char **argv)
{
	struct rszshm r;
	char c;
	int w, rd;

	HCHECK(argc == 4);
	w = atoi(argv[2]);
	rd = atoi(argv[3]);
	HCHECK(rszshm_at(&r, argv[1]) != NULL);
	HCHECK(write(w, "", 1) == 1);
	close(w);
	while (read(rd, &c, 1) != 0)
		;
	HCHECK(rszshm_dt(&r) == 0);
	return 0;
}

/* -------------------------------------------------------------- list */

START_TEST(test_list_shows_who_maps_a_region_and_when_it_is_stale)
{
	char dir[256], path[300], expr[512], want[64], comm[32];
	struct holder h;
	struct test_output t;

	/* The holders' command as the kernel shows it: "test-tools", or the
	 * emulator's name under an exe wrapper (qemu-user). */
	{
		FILE *f = fopen("/proc/self/comm", "r");

		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(fgets(comm, sizeof(comm), f));
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		if (!getenv("RSZSHM_EXE_WRAPPER") || !*getenv("RSZSHM_EXE_WRAPPER"))
			ck_assert_str_eq(comm, "test-tools");
	}
	fresh_dir(dir, sizeof(dir), "list-live");
	snprintf(path, sizeof(path), "%s/live", dir);
	make_region(path, RSZSHM_HEAP, 3);
	hold(&h, path);

	run(&t, "RSZSHM_DUMP", "--list", "--json", dir, NULL);
	ck_assert_msg(t.status == 0, "status %d: %s", t.status, t.err.p);
	ck_assert_py(t.out.p, "len(d)", "1");
	ck_assert_py(t.out.p, "d[0]['file']", path);
	ck_assert_py(t.out.p, "(d[0]['heap'], d[0]['records'], d[0]['length_bytes'] > 0)",
		     "(True, 3, True)");
	ck_assert_py(t.out.p, "d[0]['stale']", "False");
	snprintf(expr, sizeof(expr), "[p['pid'] for p in d[0]['mapped_by']] == [%s]", h.pids);
	ck_assert_py(t.out.p, expr, "True");
	ck_assert_py(t.out.p, "d[0]['mapped_by'][0]['command']", comm);
	test_output_free(&t);
	/* In text: one header line, one line per region, naming the process. */
	run(&t, "RSZSHM_DUMP", "--list", dir, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_uint_eq(count_lines(t.out.p), 2);
	snprintf(want, sizeof(want), "mapped by %s (%s)", h.pids, comm);
	ck_assert_msg(strstr(t.out.p, want), "no \"%s\" in:\n%s", want, t.out.p);
	test_output_free(&t);

	release(&h);
	run(&t, "RSZSHM_DUMP", "--list", "--json", dir, NULL);
	ck_assert_py(t.out.p, "(d[0]['stale'], d[0]['mapped_by'], d[0]['mapped_by_count'])",
		     "(True, [], 0)");
	test_output_free(&t);
	run(&t, "RSZSHM_DUMP", "--list", dir, NULL);
	ck_assert_msg(strstr(t.out.p, "  stale\n"), "not stale:\n%s", t.out.p);
	test_output_free(&t);
}
END_TEST

START_TEST(test_list_skips_files_that_are_not_regions)
{
	char dir[256], sub[300], path[320], tmpl[320];
	unsigned char junk[8192];
	struct test_output t;
	int fd;

	fresh_dir(dir, sizeof(dir), "list-mixed");
	/* Regions: one raw at the top, one where the template puts them. */
	snprintf(path, sizeof(path), "%s/raw", dir);
	make_region(path, 0, 0);
	snprintf(tmpl, sizeof(tmpl), "%s/rszshm_XXXXXX/0", dir);
	{
		struct rszshm r;

		ck_assert_ptr_nonnull(rszshm_mk(&r, 60 * KiB, tmpl));
		test_track(r.fname);
		snprintf(tmpl, sizeof(tmpl), "%s", r.fname);
		ck_assert_int_eq(rszshm_dt(&r), 0);
	}
	/* Not regions: empty, random bytes, a FIFO, a symlink, a subdirectory's junk. */
	snprintf(path, sizeof(path), "%s/empty", dir);
	ck_assert_int_ge(fd = open(path, O_CREAT | O_WRONLY, 0644), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/junk", dir);
	ck_assert_int_ge(fd = open(path, O_CREAT | O_WRONLY, 0644), 0);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	snprintf(path, sizeof(path), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	snprintf(path, sizeof(path), "%s/link", dir);
	ck_assert_int_eq(symlink(tmpl, path), 0);
	snprintf(sub, sizeof(sub), "%s/other", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	snprintf(path, sizeof(path), "%s/other/text", dir);
	ck_assert_int_ge(fd = open(path, O_CREAT | O_WRONLY, 0644), 0);
	ck_assert_int_eq(write(fd, "hello\n", 6), 6);
	close(fd);

	run(&t, "RSZSHM_DUMP", "--list", "--json", dir, NULL);
	ck_assert_msg(t.status == 0, "status %d: %s", t.status, t.err.p);
	/* Skipped silently (a note about unseen processes may come). */
	ck_assert_msg(!strstr(t.err.p, dir), "%s", t.err.p);
	snprintf(path, sizeof(path), "%s/raw", dir);
	{
		char expr[1024];

		snprintf(expr, sizeof(expr), "sorted(r['file'] for r in d) == sorted(['%s', '%s'])",
			 path, tmpl);
		ck_assert_py(t.out.p, expr, "True");
	}
	ck_assert_py(t.out.p, "[(r['heap'], r['records']) for r in d]",
		     "[(False, None), (False, None)]");
	test_output_free(&t);
	/* In text too: the header and two rows, nothing on stderr. */
	run(&t, "RSZSHM_DUMP", "--list", dir, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_uint_eq(count_lines(t.out.p), 3);
	ck_assert_msg(!strstr(t.err.p, dir), "%s", t.err.p);
	test_output_free(&t);
	/* A directory that is not there: a diagnostic and status 2. */
	snprintf(path, sizeof(path), "%s/nowhere", dir);
	run(&t, "RSZSHM_DUMP", "--list", path, NULL);
	ck_assert_int_eq(t.status, 2);
	ck_assert_msg(strstr(t.err.p, "/nowhere: No such file or directory\n"), "%s", t.err.p);
	test_output_free(&t);
}
END_TEST

/*
 * As a user who is not root: another user's region that this one may not
 * read is listed as unreadable, with its owner; its own region is listed in
 * full; the processes it cannot see are counted, not guessed.
 */
START_TEST(test_list_works_for_a_user_who_is_not_root)
{
	char dir[256], mine[300], theirs[300], expr[512];
	struct holder h;
	struct test_output t;

	if (geteuid() != 0) {
		fprintf(stderr, "%s: skipped: needs root to drop privileges\n", __func__);
		return;
	}
	/* The user must be able to reach the directory. */
	ck_assert_int_eq(chmod(test_dir(), 0711), 0);
	fresh_dir(dir, sizeof(dir), "list-users");
	snprintf(mine, sizeof(mine), "%s/nobodys", dir);
	snprintf(theirs, sizeof(theirs), "%s/roots", dir);
	make_region(mine, RSZSHM_HEAP, 2);
	ck_assert_int_eq(chown(mine, NOBODY, NOBODY), 0);
	make_region(theirs, 0, 0);
	ck_assert_int_eq(chmod(theirs, 0600), 0);
	hold(&h, theirs);	/* root's process: the user cannot see its maps */

	run_as(&t, NOBODY, "RSZSHM_DUMP", "--list", "--json", dir, NULL);
	ck_assert_msg(t.status == 0, "status %d: %s", t.status, t.err.p);
	ck_assert_py(t.out.p, "len(d)", "2");
	snprintf(expr, sizeof(expr), "[(r['readable'], r['owner_uid'], r['records']) for r in d"
		 " if r['file'] == '%s']", mine);
	ck_assert_py(t.out.p, expr, "[(True, 65534, 2)]");
	snprintf(expr, sizeof(expr), "[(r['readable'], r['owner'], r['mode'], r['length_bytes'],"
		 " r['error']) for r in d if r['file'] == '%s']", theirs);
	ck_assert_py(t.out.p, expr, "[(False, 'root', '0600', None, 'Permission denied')]");
	ck_assert_py(t.out.p, "all(r['unseen_processes'] > 0 for r in d)", "True");
	/* ...and says so. */
	ck_assert_msg(strstr(t.err.p, "could not be read"), "stderr: %s", t.err.p);
	test_output_free(&t);
	/* Root sees the process that maps its region. */
	run(&t, "RSZSHM_DUMP", "--list", "--json", theirs, NULL);
	snprintf(expr, sizeof(expr), "[p['pid'] for p in d[0]['mapped_by']] == [%s]", h.pids);
	ck_assert_py(t.out.p, expr, "True");
	test_output_free(&t);
	release(&h);
	ck_assert_int_eq(chmod(test_dir(), 0700), 0);
}
END_TEST

/* -------------------------------------------------------------- JSON */

START_TEST(test_json_of_several_files_is_one_array)
{
	char dir[256], a[300], b[300], missing[300];
	struct test_output t;

	fresh_dir(dir, sizeof(dir), "json-many");
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	make_region(a, 0, 0);
	make_region(b, RSZSHM_HEAP, 1);
	run(&t, "RSZSHM_DUMP", "--json", "--records", a, missing, b, NULL);
	ck_assert_int_eq(t.status, 2);
	ck_assert_py(t.out.p, "[r['file'].rsplit('/', 1)[1] for r in d]", "['a', 'missing', 'b']");
	ck_assert_py(t.out.p, "('error' in d[1], [x['name'] for x in d[2]['records']])",
		     "(True, ['rec-0'])");
	test_output_free(&t);
	/* No file that works: still an array. */
	run(&t, "RSZSHM_DUMP", "--json", missing, NULL);
	ck_assert_py(t.out.p, "len(d)", "1");
	test_output_free(&t);
	/* An empty listing is an empty array. */
	snprintf(missing, sizeof(missing), "%s/empty", dir);
	ck_assert_int_eq(mkdir(missing, 0755), 0);
	run(&t, "RSZSHM_DUMP", "--list", "--json", missing, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_py(t.out.p, "d", "[]");
	test_output_free(&t);
	/* JSON Lines: each line parses alone, one per file. */
	run(&t, "RSZSHM_DUMP", "--json-lines", a, b, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_uint_eq(count_lines(t.out.p), 2);
	{
		char *nl = strchr(t.out.p, '\n');

		*nl = '\0';
		ck_assert_py(t.out.p, "d['heap']", "False");
		ck_assert_py(nl + 1, "d['heap']", "True");
	}
	test_output_free(&t);
}
END_TEST

/* ------------------------------------------------------------- watch */

START_TEST(test_watch_stops_after_count)
{
	char dir[256], path[300];
	struct test_output t;

	fresh_dir(dir, sizeof(dir), "watch-count");
	snprintf(path, sizeof(path), "%s/quiet", dir);
	make_region(path, RSZSHM_HEAP, 2);
	run(&t, "RSZSHM_DUMP", "--watch=0.01", "--count", "1", path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_msg(strncmp(t.out.p, "=== ", 4) == 0 && strstr(t.out.p, " snapshot 1\n"),
		      "%s", t.out.p);
	ck_assert_msg(strstr(t.out.p, "rec-1"), "no records in:\n%s", t.out.p);
	test_output_free(&t);
	run(&t, "RSZSHM_DUMP", "--watch=0.01", "--count", "1", "--json", path, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_py(t.out.p, "(len(d), d[0]['snapshot'], d[0]['region']['heap_stats']['records'])",
		     "(1, 1, 2)");
	test_output_free(&t);
	/* Bad usage. */
	run(&t, "RSZSHM_DUMP", "--watch=0", path, NULL);
	ck_assert_int_eq(t.status, 2);
	test_output_free(&t);
	run(&t, "RSZSHM_DUMP", "--count", "2", path, NULL);
	ck_assert_int_eq(t.status, 2);
	ck_assert_uint_eq(count_lines(t.err.p), 1);
	test_output_free(&t);
	run(&t, "RSZSHM_DUMP", "--watch", path, path, NULL);
	ck_assert_int_eq(t.status, 2);
	test_output_free(&t);
}
END_TEST

/* Read one line from @fd into @buf (a byte at a time: nothing read ahead). */
static void read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	for (;;) {
		ssize_t k = read(fd, buf + n, 1);

		if (k < 0 && errno == EINTR)
			continue;
		ck_assert_msg(k == 1, "the watch ended early");
		if (buf[n] == '\n' || ++n == len - 1)
			break;
	}
	buf[n] = '\0';
}

/*
 * A record added while the tool watches: the first snapshot comes at once;
 * the test waits for it, adds the record, and a later snapshot holds it.
 * Not necessarily the next one: a put allocates the value before it links
 * the record, and a look between the two already sees a change (the heap's
 * figures).  No timing: the test reads snapshots until the record shows up,
 * and fails if the watch ends (--count 100) without it.
 */
START_TEST(test_watch_shows_a_change)
{
	const char *tool = prog("RSZSHM_DUMP");
	char dir[256], path[300], line[8192];
	struct rszshm r;
	int po[2];
	pid_t pid;

	fresh_dir(dir, sizeof(dir), "watch-change");
	snprintf(path, sizeof(path), "%s/producer", dir);
	make_region(path, RSZSHM_HEAP, 1);
	ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	pid = test_fork();
	if (pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		alarm(60);
		char *argv[] = { (char *)tool, (char *)"--watch=0.01", (char *)"--count",
				 (char *)"100", (char *)"--json-lines", path, NULL };

		test_execv(tool, argv);
		_exit(127);
	}
	close(po[1]);
	read_line(po[0], line, sizeof(line));
	ck_assert_py(line, "(d['snapshot'], [x['name'] for x in d['region']['records']])",
		     "(1, ['rec-0'])");
	ck_assert_ptr_nonnull(rszshm_at(&r, path));
	ck_assert_int_eq(rszshm_rec_put(&r, "fresh", 5, "new", 3), 0);
	ck_assert_int_eq(rszshm_dt(&r), 0);
	do
		read_line(po[0], line, sizeof(line));
	while (!strstr(line, "\"fresh\""));
	ck_assert_py(line, "(d['snapshot'] >= 2, sorted(x['name'] for x in d['region']['records']))",
		     "(True, ['fresh', 'rec-0'])");
	close(po[0]);
	kill(pid, SIGKILL);
	test_wait(pid);
}
END_TEST

/* ------------------------------------------------------------- clean */

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

START_TEST(test_clean_never_removes_a_mapped_region)
{
	char dir[256], live[300], stale[300], other[300];
	struct holder h;
	struct test_output t;
	int fd;

	fresh_dir(dir, sizeof(dir), "clean");
	snprintf(live, sizeof(live), "%s/live", dir);
	snprintf(stale, sizeof(stale), "%s/stale", dir);
	snprintf(other, sizeof(other), "%s/not-a-region", dir);
	make_region(live, RSZSHM_HEAP, 1);
	make_region(stale, 0, 0);
	ck_assert_int_ge(fd = open(other, O_CREAT | O_WRONLY, 0600), 0);
	close(fd);
	hold(&h, live);

	/* A dry run removes nothing. */
	run(&t, "RSZSHM_CLEAN", "--dry-run", dir, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert_uint_eq(count_lines(t.out.p), 1);
	ck_assert_msg(strstr(t.out.p, "would remove ") && strstr(t.out.p, "/stale\n"), "%s",
		      t.out.p);
	ck_assert(exists(stale));
	test_output_free(&t);

	run(&t, "RSZSHM_CLEAN", "-v", dir, NULL);
	ck_assert_msg(t.status == 0, "status %d: %s", t.status, t.err.p);
	ck_assert_msg(strstr(t.out.p, "kept ") && strstr(t.out.p, "/live: mapped by a process"),
		      "%s", t.out.p);
	ck_assert(exists(live));
	ck_assert(!exists(stale));
	ck_assert(exists(other));	/* not a region: never touched */
	test_output_free(&t);

	/* The holder's mapping is unharmed; once it has gone, the region goes. */
	release(&h);
	run(&t, "RSZSHM_CLEAN", dir, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert(!exists(live));
	ck_assert(exists(other));
	test_output_free(&t);
}
END_TEST

/*
 * As a user who is not root, who cannot see root's processes: a stale
 * region only its owner may open goes; one others may open (and so map,
 * unseen) stays.
 */
START_TEST(test_clean_as_a_user_keeps_what_others_may_map)
{
	char dir[256], private[300], shared[300];
	struct test_output t;

	if (geteuid() != 0) {
		fprintf(stderr, "%s: skipped: needs root to drop privileges\n", __func__);
		return;
	}
	ck_assert_int_eq(chmod(test_dir(), 0711), 0);
	fresh_dir(dir, sizeof(dir), "clean-user");
	ck_assert_int_eq(chown(dir, NOBODY, NOBODY), 0);
	snprintf(private, sizeof(private), "%s/private", dir);
	snprintf(shared, sizeof(shared), "%s/shared", dir);
	make_region(private, 0, 0);
	make_region(shared, 0, 0);
	ck_assert_int_eq(chmod(private, 0600), 0);
	ck_assert_int_eq(chmod(shared, 0644), 0);
	ck_assert_int_eq(chown(private, NOBODY, NOBODY), 0);
	ck_assert_int_eq(chown(shared, NOBODY, NOBODY), 0);
	run_as(&t, NOBODY, "RSZSHM_CLEAN", "-v", dir, NULL);
	ck_assert_msg(t.status == 0, "status %d: %s", t.status, t.err.p);
	ck_assert(!exists(private));
	ck_assert_msg(exists(shared), "%s", t.out.p);
	ck_assert_msg(strstr(t.out.p, "/shared: others may map it"), "%s", t.out.p);
	test_output_free(&t);
	ck_assert_int_eq(chmod(test_dir(), 0700), 0);
}
END_TEST

START_TEST(test_clean_removes_the_template_directory)
{
	char dir[256], tmpl[320], sub[320];
	struct rszshm r;
	struct test_output t;

	fresh_dir(dir, sizeof(dir), "clean-tmpl");
	snprintf(tmpl, sizeof(tmpl), "%s/rszshm_XXXXXX/0", dir);
	ck_assert_ptr_nonnull(rszshm_mk(&r, 60 * KiB, tmpl));
	test_track(r.fname);
	snprintf(sub, sizeof(sub), "%s", r.fname);
	*strrchr(sub, '/') = '\0';
	ck_assert_int_eq(rszshm_dt(&r), 0);
	run(&t, "RSZSHM_CLEAN", dir, NULL);
	ck_assert_int_eq(t.status, 0);
	ck_assert(!exists(r.fname));
	ck_assert(!exists(sub));
	ck_assert(exists(dir));
	test_output_free(&t);
}
END_TEST

/* ------------------------------------------------------ command lines */

START_TEST(test_every_program_takes_help_and_version)
{
	static const char *const envs[] = { "RSZSHM_DUMP", "RSZSHM_CLEAN", "RSZSHM_DEMO" };
	static const char *const names[] = { "rszshm-dump", "rszshm-clean", "rszshm-demo" };

	for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
		char want[64];
		struct test_output t;

		snprintf(want, sizeof(want), "%s %s\n", names[i], getenv("RSZSHM_VERSION"));
		run(&t, envs[i], "--version", NULL);
		ck_assert_int_eq(t.status, 0);
		ck_assert_str_eq(t.out.p, want);
		test_output_free(&t);
		run(&t, envs[i], "-V", NULL);
		ck_assert_str_eq(t.out.p, want);
		test_output_free(&t);
		run(&t, envs[i], "--help", NULL);
		ck_assert_int_eq(t.status, 0);
		ck_assert_msg(strncmp(t.out.p, "usage: ", 7) == 0, "%s --help: %s", names[i],
			      t.out.p);
		test_output_free(&t);
		run(&t, envs[i], "-h", NULL);
		ck_assert_int_eq(t.status, 0);
		ck_assert_msg(strncmp(t.out.p, "usage: ", 7) == 0, "%s -h", names[i]);
		test_output_free(&t);
		/* Bad usage: status 2, one line pointing at --help, nothing on stdout. */
		run(&t, envs[i], "--no-such-option", NULL);
		ck_assert_int_eq(t.status, 2);
		ck_assert_str_eq(t.out.p, "");
		ck_assert_uint_eq(count_lines(t.err.p), 1);
		ck_assert_msg(strstr(t.err.p, "--help"), "%s: %s", names[i], t.err.p);
		test_output_free(&t);
	}
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("tools");

	TEST_ADD(s, test_list_shows_who_maps_a_region_and_when_it_is_stale);
	TEST_ADD(s, test_list_skips_files_that_are_not_regions);
	TEST_ADD(s, test_list_works_for_a_user_who_is_not_root);
	TEST_ADD(s, test_json_of_several_files_is_one_array);
	TEST_ADD(s, test_watch_stops_after_count);
	TEST_ADD(s, test_watch_shows_a_change);
	TEST_ADD(s, test_clean_never_removes_a_mapped_region);
	TEST_ADD(s, test_clean_as_a_user_keeps_what_others_may_map);
	TEST_ADD(s, test_clean_removes_the_template_directory);
	TEST_ADD(s, test_every_program_takes_help_and_version);
	return s;
}

const struct test_helper test_helpers[] = {
	{ "hold", helper_hold },
	{ NULL, NULL },
};
