/* SPDX-License-Identifier: Apache-2.0 */
/*
 * regions.c - find region files and the processes that map them (see
 * regions.h).  Reads only: directories, /proc, and each file through
 * dump_probe() (read-only, bounded, the file cut under it reported).
 */
#define _GNU_SOURCE
#define LIBBSD_NETBSD_VIS
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vis.h>

#include "regions.h"

static int procmaps_add(struct procmaps *pm, unsigned maj, unsigned min, unsigned long long ino,
			pid_t pid)
{
	struct procmap *m;

	if (pm->n > 0) {
		m = &pm->m[pm->n - 1];
		/* A region is several adjacent lines of one process: keep one. */
		if (m->pid == pid && m->dev == makedev(maj, min) && m->ino == (ino_t)ino)
			return 0;
	}
	if (pm->n == pm->cap) {
		size_t cap = pm->cap ? 2 * pm->cap : 256;

		if (!(m = reallocarray(pm->m, cap, sizeof(*m))))
			return -1;
		pm->m = m;
		pm->cap = cap;
	}
	pm->m[pm->n++] = (struct procmap){ makedev(maj, min), (ino_t)ino, pid };
	return 0;
}

/* One process's maps: its file mappings (inode not 0) into @pm. */
static int procmaps_pid(struct procmaps *pm, pid_t pid)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(path, "re"))) {
		if (errno == EACCES || errno == EPERM)
			pm->unseen++;
		return 0;	/* gone (ENOENT, ESRCH): it maps nothing now */
	}
	while (getline(&line, &cap, f) > 0) {
		unsigned maj, min;
		unsigned long long ino;	/* 64 bits even where long is 32 */

		if (sscanf(line, "%*x-%*x %*s %*x %x:%x %llu", &maj, &min, &ino) == 3 && ino != 0 &&
		    (rc = procmaps_add(pm, maj, min, ino, pid)) < 0)
			break;
	}
	/* Reading may fail after a successful open (the process went away). */
	free(line);
	fclose(f);
	return rc;
}

int procmaps_load(struct procmaps *pm)
{
	struct dirent *e;
	pid_t self = getpid();
	DIR *d;

	memset(pm, 0, sizeof(*pm));
	if (!(d = opendir("/proc")))
		return -1;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (!isdigit((unsigned char)e->d_name[0]) || *end || pid <= 0 || pid > INT_MAX ||
		    pid == self)
			continue;
		if (procmaps_pid(pm, (pid_t)pid) < 0) {
			int saved = errno;

			closedir(d);
			procmaps_free(pm);
			errno = saved;
			return -1;
		}
	}
	closedir(d);
	return 0;
}

void procmaps_free(struct procmaps *pm)
{
	free(pm->m);
	memset(pm, 0, sizeof(*pm));
}

size_t procmaps_find(const struct procmaps *pm, dev_t dev, ino_t ino, pid_t *pids, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < pm->n; i++) {
		const struct procmap *m = &pm->m[i];
		size_t k;

		if (m->dev != dev || m->ino != ino)
			continue;
		for (k = 0; k < n && k < max; k++)
			if (pids[k] == m->pid)
				break;
		if (k < n && k < max)
			continue;
		if (n < max)
			pids[n] = m->pid;
		n++;
	}
	return n;
}

void proc_comm(pid_t pid, char *buf, size_t max)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	snprintf(buf, max, "?");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, buf, max - 1);
	close(fd);
	if (n <= 0) {
		snprintf(buf, max, "?");
		return;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

const char *vis_str(char *buf, size_t len, const char *s)
{
	if (strsnvis(buf, len, s, VIS_CSTYLE | VIS_OCTAL | VIS_TAB | VIS_NL, "") < 0)
		buf[len - 1] = '\0';
	return buf;
}

void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, f);
		else
			fprintf(f, "\\u%04x", c);
	}
	fputc('"', f);
}

/* One regular file: a region (or unreadable) goes to @fn, others are skipped. */
static void visit(const char *path, const struct stat *st, region_fn *fn, void *arg)
{
	struct region r;
	int fd;

	memset(&r, 0, sizeof(r));
	r.path = path;
	r.st = *st;
	/* Can it be read at all?  (O_NONBLOCK: a FIFO swapped in never blocks.) */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return;	/* removed since the directory was read */
		r.open_errno = errno;
		fn(&r, arg);
		return;
	}
	close(fd);
	dump_probe(path, &r.info);
	if (r.info.region)
		fn(&r, arg);
}

/* The entries of @dir, in name order (for stable output); @depth 0 or 1. */
static int walk_dir(const char *dir, int depth, region_fn *fn, void *arg, FILE *err,
		    const char *tool)
{
	struct dirent **names;
	int i, n, rc = 0;

	if ((n = scandir(dir, &names, NULL, alphasort)) < 0) {
		char vdir[4 * PATH_MAX + 1];
		int e = errno;

		/* A subdirectory (another user's, say) is noted, not an error. */
		fprintf(err, "%s: %s: %s%s\n", tool, vis_str(vdir, sizeof(vdir), dir), strerror(e),
			depth ? " (not listed)" : "");
		return depth ? 0 : -1;
	}
	for (i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char path[PATH_MAX];
		struct stat st;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    (size_t)snprintf(path, sizeof(path), "%s%s%s", dir,
				     dir[strlen(dir) - 1] == '/' ? "" : "/", name) >= sizeof(path) ||
		    lstat(path, &st) < 0)
			continue;
		if (S_ISREG(st.st_mode))
			visit(path, &st, fn, arg);
		else if (S_ISDIR(st.st_mode) && depth == 0 &&
			 walk_dir(path, 1, fn, arg, err, tool) < 0)
			rc = -1;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int regions_walk(const char *dir, region_fn *fn, void *arg, FILE *err, const char *tool)
{
	struct stat st;

	if (lstat(dir, &st) < 0) {
		char vdir[4 * PATH_MAX + 1];
		int e = errno;

		fprintf(err, "%s: %s: %s\n", tool, vis_str(vdir, sizeof(vdir), dir), strerror(e));
		return -1;
	}
	if (S_ISREG(st.st_mode)) {
		visit(dir, &st, fn, arg);
		return 0;
	}
	return walk_dir(dir, 0, fn, arg, err, tool);
}
