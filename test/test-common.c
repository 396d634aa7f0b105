/* SPDX-License-Identifier: Apache-2.0 */
/* test-common.c - main(), the scratch directory, helpers; see test-common.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-common.h"

#define DIR_ENV "RSZSHM_TEST_DIR"
#define TRACK_FILE "tracked"

static char self[PATH_MAX];

const char *test_dir(void)
{
	const char *d = getenv(DIR_ENV);

	ck_assert_msg(d != NULL, "no scratch directory");
	return d;
}

char *test_path(char *buf, size_t len, const char *fmt, ...)
{
	char leaf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(leaf, sizeof(leaf), fmt, ap);
	va_end(ap);
	n = snprintf(buf, len, "%s/%s", test_dir(), leaf);
	ck_assert_msg(n > 0 && (size_t)n < len, "path too long");
	return buf;
}

char *test_tmpl(char *buf, size_t len, const char *name)
{
	return test_path(buf, len, "%s_XXXXXX/0", name);
}

void test_track(const char *fname)
{
	char list[PATH_MAX];
	FILE *f;

	snprintf(list, sizeof(list), "%s/%s", test_dir(), TRACK_FILE);
	f = fopen(list, "a");
	ck_assert_msg(f != NULL, "open %s: %s", list, strerror(errno));
	fprintf(f, "%s\n", fname);
	fclose(f);
}

static void remove_tracked(const char *dir)
{
	char list[PATH_MAX], line[PATH_MAX];
	FILE *f;

	snprintf(list, sizeof(list), "%s/%s", dir, TRACK_FILE);
	if (!(f = fopen(list, "r")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char *slash;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		unlink(line);
		if ((slash = strrchr(line, '/')) && strstr(line, "rszshm_")) {
			*slash = '\0';
			rmdir(line);
		}
	}
	fclose(f);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void test_add(Suite *s, const char *name, const TTest *fn, int timeout_s)
{
	TCase *tc = tcase_create(name);

	if (timeout_s > 0)
		tcase_set_timeout(tc, timeout_s);
	tcase_add_test(tc, fn);
	suite_add_tcase(s, tc);
}

const char *test_missing(unsigned need)
{
	if (need & TEST_NEED_ROBUST) {
		void *head;
		size_t len;

		if (syscall(SYS_get_robust_list, 0, &head, &len) == -1 && errno == ENOSYS)
			return "robust futexes (get_robust_list: ENOSYS)";
	}
	if (need & TEST_NEED_NOREPLACE) {
		long pg = sysconf(_SC_PAGESIZE);
		void *a = mmap(NULL, (size_t)pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		void *b = MAP_FAILED;

		ck_assert_msg(a != MAP_FAILED, "mmap: %s", strerror(errno));
		b = mmap(a, (size_t)pg, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		munmap(a, (size_t)pg);
		if (b != MAP_FAILED) {
			if (b != a)
				munmap(b, (size_t)pg);
			return "MAP_FIXED_NOREPLACE (mapped over a mapping, or elsewhere)";
		}
	}
	if (need & TEST_NEED_SUBREAPER) {
		int v = 0;

		if (prctl(PR_GET_CHILD_SUBREAPER, &v) == -1)
			return "PR_SET_CHILD_SUBREAPER (prctl fails)";
	}
	return NULL;
}

int test_execv(const char *path, char *const argv[])
{
	const char *w = getenv("RSZSHM_EXE_WRAPPER");
	char *args[64], words[1024], *save = NULL, *tok;
	int n = 0, i;

	if (!w || !*w || strlen(w) >= sizeof(words))
		return execv(path, argv);
	strcpy(words, w);
	for (tok = strtok_r(words, " ", &save); tok && n < 32; tok = strtok_r(NULL, " ", &save))
		args[n++] = tok;
	if (n == 0)
		return execv(path, argv);
	args[n++] = (char *)path;
	/* argv[0] is the wrapper's to set; the program gets @path as its own. */
	for (i = 1; argv[0] && argv[i] && n < 63; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	return execvp(args[0], args);
}

static pid_t exec_helper(uid_t uid, const char *name, va_list ap)
{
	char *argv[32], fdpath[64];
	const char *path = self;
	int argc = 0, prog = -1;
	pid_t pid;

	argv[argc++] = self;
	argv[argc++] = (char *)"--helper";
	argv[argc++] = (char *)name;
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	argv[argc] = NULL;
	/* As in test_capture(): another user may not reach the build directory. */
	if (uid) {
		prog = open(self, O_RDONLY);
		ck_assert_msg(prog >= 0, "open %s: %s", self, strerror(errno));
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", prog);
		path = fdpath;
	}
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (uid && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
			    setresuid(uid, uid, uid) < 0))
			_exit(126);
		test_execv(path, argv);
		_exit(127);
	}
	if (prog >= 0)
		close(prog);
	return pid;
}

pid_t test_exec_helper(const char *name, ...)
{
	va_list ap;
	pid_t pid;

	va_start(ap, name);
	pid = exec_helper(0, name, ap);
	va_end(ap);
	return pid;
}

pid_t test_exec_helper_as(uid_t uid, const char *name, ...)
{
	va_list ap;
	pid_t pid;

	va_start(ap, name);
	pid = exec_helper(uid, name, ap);
	va_end(ap);
	return pid;
}

int test_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

pid_t test_fork(void)
{
	pid_t pid = fork();

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	return pid;
}

void test_post(int fd)
{
	char c = 1;

	ck_assert_msg(write(fd, &c, 1) == 1, "write: %s", strerror(errno));
}

void test_wait_byte(int fd)
{
	ssize_t n;
	char c;

	while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	ck_assert_msg(n == 1, "pipe closed before its byte (peer died?)");
}

static int run_helper(int argc, char **argv)
{
	const struct test_helper *h;

	for (h = test_helpers; h->name; h++)
		if (strcmp(h->name, argv[2]) == 0)
			return h->fn(argc - 2, argv + 2);
	fprintf(stderr, "no helper named %s\n", argv[2]);
	return 2;
}

int main(int argc, char **argv)
{
	char dir[] = "/dev/shm/rszshm-test-XXXXXX";
	SRunner *sr;
	int failed;

	/* A helper run as another user (test_exec_helper_as()) may not reach
	 * its own program's directory; it needs no path of its own. */
	if (argc >= 3 && strcmp(argv[1], "--helper") == 0) {
		if (!realpath(argv[0], self) && !realpath("/proc/self/exe", self))
			snprintf(self, sizeof(self), "%s", argv[0]);
		return run_helper(argc, argv);
	}
	if (!realpath(argv[0], self) && !realpath("/proc/self/exe", self)) {
		perror("realpath");
		return 99;
	}

	if (!mkdtemp(dir)) {
		perror("mkdtemp /dev/shm");
		return 99;
	}
	setenv(DIR_ENV, dir, 1);
	/* A child that dies on a broken pipe should say so in its status. */
	signal(SIGPIPE, SIG_IGN);

	sr = srunner_create(test_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	remove_tracked(dir);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ------------------------------------------------ scratch directories */

char *test_subdir(char *buf, size_t len, const char *name)
{
	test_path(buf, len, "%s", name);
	ck_assert_msg(mkdir(buf, 0700) == 0, "mkdir %s: %s", buf, strerror(errno));
	return buf;
}

char *test_in_dir(char *buf, const char *dir, const char *leaf)
{
	int n = snprintf(buf, RSZSHM_PATH_MAX, "%s/%s", dir, leaf);

	ck_assert_msg(n > 0 && n < RSZSHM_PATH_MAX, "path too long");
	return buf;
}

int test_dir_count(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

int test_small_tmpfs(const char *dir)
{
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("rszshm-test", dir, "tmpfs", 0, "size=1m,mode=0700") < 0)
		return -1;
	return 0;
}

bool test_can_mount_tmpfs(void)
{
	/* Outside a test: no ck_assert (test_dir() has one), so the scratch
	 * directory comes from the environment main() set. */
	const char *scratch = getenv("RSZSHM_TEST_DIR");
	char dir[RSZSHM_PATH_MAX];
	pid_t pid;
	int st;

	if (!scratch || snprintf(dir, sizeof(dir), "%s/mount-probe", scratch) >= (int)sizeof(dir))
		return false;
	if (mkdir(dir, 0700) < 0)
		return false;
	pid = fork();
	if (pid == 0)
		_exit(test_small_tmpfs(dir) == 0 ? 0 : 1);
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return false;
	rmdir(dir);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ------------------------------------------- running a program, captured */

static void buf_read(struct test_buf *b, int fd, bool *open)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0 && errno == EINTR)
		return;
	ck_assert_msg(n >= 0, "read: %s", strerror(errno));
	if (n == 0) {
		*open = false;
		return;
	}
	ck_assert_ptr_nonnull(b->p = realloc(b->p, b->n + (size_t)n + 1));
	memcpy(b->p + b->n, chunk, (size_t)n);
	b->n += (size_t)n;
	b->p[b->n] = '\0';
}

void test_capture(struct test_output *o, uid_t uid, bool host, const char *path,
		  char *const argv[])
{
	bool open_out = true, open_err = true;
	int po[2], pe[2], prog = -1;
	char fdpath[32];
	pid_t pid;

	/*
	 * Another user may not reach @path (a build directory under /root, mode
	 * 0700): open it now, and exec it as /proc/self/fd/N once the child has
	 * become that user, which needs execute permission on the file only.
	 */
	if (uid) {
		prog = open(path, O_RDONLY);
		ck_assert_msg(prog >= 0, "open %s: %s", path, strerror(errno));
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", prog);
		path = fdpath;
	}
	memset(o, 0, sizeof(*o));
	ck_assert_ptr_nonnull(o->out.p = strdup(""));
	ck_assert_ptr_nonnull(o->err.p = strdup(""));
	ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
	pid = test_fork();
	if (pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		alarm(60);
		if (uid && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
			    setresuid(uid, uid, uid) < 0))
			_exit(126);
		if (host)
			execv(path, argv);
		else
			test_execv(path, argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	if (prog >= 0)
		close(prog);
	while (open_out || open_err) {
		struct pollfd fds[2] = { { open_out ? po[0] : -1, POLLIN, 0 },
					 { open_err ? pe[0] : -1, POLLIN, 0 } };

		if (poll(fds, 2, -1) < 0) {
			ck_assert_int_eq(errno, EINTR);
			continue;
		}
		if (fds[0].revents)
			buf_read(&o->out, po[0], &open_out);
		if (fds[1].revents)
			buf_read(&o->err, pe[0], &open_err);
	}
	close(po[0]);
	close(pe[0]);
	o->status = test_wait(pid);
}

void test_output_free(struct test_output *o)
{
	free(o->out.p);
	free(o->err.p);
	memset(o, 0, sizeof(*o));
}
