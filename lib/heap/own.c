/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heap/own.c - thread slots: which thread owns which cache, and adoption of
 * the caches of dead owners.
 *
 * Owns: the SLOTS runs (up to NSLOTRUNS segments of struct tslot, made on
 * first need under the heap lock and never taken back), the claim of a slot
 * by a thread, the test of an owner's life, adoption, and the process's
 * record of the slots its threads hold (released when a thread exits and
 * when the region is detached).  Built on seg.c (the heap lock, runs) and
 * arena.c (rszshm__heap_slot_flush(), which gives a cache's blocks back);
 * heap.c takes and gives cached blocks.
 *
 * Ownership.  A slot's owner word is the thread's id and its start time
 * (clock ticks after boot, from /proc), so a thread id the kernel
 * gives out again never inherits a slot.  A thread claims a slot once per
 * region: it takes a slot it already owns, or a free one (CAS from 0); the
 * claim first sweeps the slots, and every slot whose owner is dead (no such
 * thread, another start time, a zombie) is adopted: CAS to the claimer, its
 * cached blocks given back to their arenas, then freed.  A thread that
 * exits gives its slots back (a thread-specific destructor); rszshm_dt()
 * gives back the slots of all the process's threads in that region; a forked
 * child starts with none.  The process's record is a list under a mutex,
 * held by a claim and a detach with cancellation disabled (they read /proc,
 * whose calls are cancellation points).
 *
 * What a kill costs.  The owner's stores are ordered so that entries below
 * n are always free blocks with their bits set: a thread killed at any
 * instruction leaves a slot whose blocks the next claimer adopts, and loses
 * at most the one block it was moving (freed but not yet counted, or counted
 * out but not yet handed back).  The caches of a thread that stays alive are
 * not available to others: at most CACHE_CAP blocks of each of NCACHE
 * classes per thread, counted as free by rszshm_stats().
 *
 * Trust.  A slot's address comes from ctl->slot_runs, checked to name a
 * SLOTS run of this region; the entries are checked by heap.c before they
 * are followed or handed out.  Where /proc cannot tell (not mounted, or the
 * /proc of another PID namespace: writers share one, see lock.c) owners
 * count as alive, and a thread that cannot read its own start time
 * allocates through the arenas.  Start times are read from
 * /proc/TID/task/TID/stat for every thread, this one included: an emulator
 * (qemu-user) fakes /proc/PID/stat for its own process, and a word read one
 * way must never be compared with one read the other.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"

_Thread_local struct rszshm__heap_tl rszshm__heap_tl RSZSHM__HEAP_TLS;
uint64_t rszshm__heap_epoch = 1;
/* The process's slots, one entry per (thread, region). */
struct own {
	struct own *next;
	struct rszshm r;	/* a copy: the caller's handle may move */
	uintptr_t base;
	struct tslot *slot;
	uint64_t word;		/* the owner word the slot holds while ours */
	pid_t tid;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct own *reg;
static pthread_key_t exit_key;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static bool key_ok;
/* This thread's owner word, 0 until known (reset in a forked child). */
static _Thread_local uint64_t me RSZSHM__HEAP_TLS;

static void bump_epoch(void)
{
	__atomic_fetch_add(&rszshm__heap_epoch, 1, __ATOMIC_RELEASE);
}

/* ----------------------------------------------------------- identity */

/*
 * Thread @tid's start time, from /proc/TID/task/TID/stat: 1 alive (*start set),
 * 0 dead (no such thread, or a zombie), -1 unknown.
 */
static int thread_start(pid_t tid, uint64_t *start)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	char state = 0;
	int fd, i;
	ssize_t n;

	/* The task path, for every thread alike: an emulator (qemu-user)
	 * fakes /proc/PID/stat for its own process, not the task's file. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)tid, (int)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n == 0 || errno == ESRCH ? 0 : -1;
	buf[n] = '\0';
	/* "tid (comm) S f4 ... f22": comm may hold anything but the last ')'. */
	if (!(p = strrchr(buf, ')')) || sscanf(p + 1, " %c", &state) != 1)
		return -1;
	if (state == 'Z' || state == 'X' || state == 'x')
		return 0;
	/* p is at the space before field 3; starttime is field 22. */
	for (i = 3, p++; i < 22 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, " %llu", &v) != 1)
		return -1;
	*start = (uint64_t)v;
	return 1;
}

/*
 * Is /proc the one of this process's PID namespace (remembered per
 * process)?  Another one would name other threads by our numbers.
 */
static int proc_known;	/* 0 not yet asked, 1 ours, -1 not */

static bool proc_ours(void)
{
	if (!__atomic_load_n(&proc_known, __ATOMIC_RELAXED))
		__atomic_store_n(&proc_known, rszshm__sys_proc_ours() ? 1 : -1, __ATOMIC_RELAXED);
	return __atomic_load_n(&proc_known, __ATOMIC_RELAXED) == 1;
}

static uint64_t owner_word(pid_t tid, uint64_t start)
{
	return (uint64_t)tid | start << OWNER_TID_BITS;
}

/* Is the owner named by word @o dead?  Unknown counts as alive. */
static bool owner_dead(uint64_t o)
{
	pid_t tid = (pid_t)(o & (((uint64_t)1 << OWNER_TID_BITS) - 1));
	uint64_t start = 0;
	int rc;

	if (tid <= 0)
		return true;	/* no thread writes such a word */
	if (!proc_ours())
		return false;
	if (kill(tid, 0) < 0 && errno == ESRCH)
		return true;
	if ((rc = thread_start(tid, &start)) < 0)
		return false;
	return rc == 0 || owner_word(tid, start) != o;
}

/* This thread's owner word, or 0 if /proc cannot tell. */
static uint64_t my_word(void)
{
	uint64_t start;
	pid_t tid;

	if (me)
		return me;
	if (!proc_ours())
		return 0;
	tid = gettid();
	if (tid <= 0 || (uint64_t)tid >> OWNER_TID_BITS || thread_start(tid, &start) != 1 ||
	    start >> (64 - OWNER_TID_BITS))
		return 0;
	return me = owner_word(tid, start);
}

/* -------------------------------------------------------- SLOTS runs */

/* Under no lock: make SLOTS run @k if nobody has.  0 or a negative errno. */
static int slot_run_make(struct rszshm *r, struct ctl *h, unsigned k)
{
	struct seg *s;
	int rc;

	if ((rc = rszshm__heap_global_lock(r, h)) < 0)
		return rc;
	if (RD(h->slot_runs[k]) == 0 && (rc = rszshm__heap_run_take(r, h, 1, &s)) == 0) {
		memset((char *)s + SEG_HDR, 0, SEG - SEG_HDR);
		s->arena = 0;
		s->cls = 0;
		s->listed = 0;
		s->nblocks = SLOTS_PER_RUN;
		s->cursor = 0;
		s->used = 0;
		s->bsize = (uint32_t)sizeof(struct tslot);
		s->first = 64;
		s->next = 0;
		s->prev = 0;
		/* A crash between these two leaves a SLOTS run nobody names:
		 * the repair of the global part gives it back. */
		PUT(s->kind, K_SLOTS);
		PUT(h->slot_runs[k], (uint64_t)(uintptr_t)s);
	}
	rszshm__heap_global_unlock(r, h);
	return rc;
}

/* ------------------------------------------------------------ adoption */

/* Give every cached block of slot @t (owned by the caller) back. */
static void slot_empty(struct rszshm *r, struct ctl *h, struct tslot *t)
{
	unsigned c;

	for (c = 0; c < NCACHE; c++)
		rszshm__heap_slot_flush(r, h, t, c, CACHE_CAP);
}

/* Take over slot @t from dead owner @o, give its blocks back, free it. */
static void adopt(struct rszshm *r, struct ctl *h, struct tslot *t, uint64_t o, uint64_t mine)
{
	if (!__atomic_compare_exchange_n(&t->owner, &o, mine, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return;
	die_point();
	slot_empty(r, h, t);
	PUT(t->adoptions, RD(t->adoptions) + 1);
	die_point();
	PUT(t->owner, 0);
}

/*
 * Under reg_lock: sweep the slots (adopting dead owners' caches) and claim
 * one for this thread: one it owns already, else a free one.  NULL if none
 * is free or the region's slots are damaged.
 */
static struct tslot *claim(struct rszshm *r, struct ctl *h, uint64_t mine)
{
	struct tslot *t, *mine_slot = NULL, *free_slot = NULL;
	unsigned k, i, tries;
	uint64_t o, zero;
	void *run;

	for (k = 0; k < NSLOTRUNS; k++) {
		if (RD(h->slot_runs[k]) == 0 && !free_slot && !mine_slot &&
		    slot_run_make(r, h, k) < 0)
			break;
		if (!(run = rszshm__heap_slot_run(r, h, k)))
			break;
		for (i = 0; i < SLOTS_PER_RUN; i++) {
			t = slot_at(run, i);
			if ((o = GET(t->owner)) == 0) {
				if (!free_slot)
					free_slot = t;
			} else if (o == mine) {
				if (!mine_slot)
					mine_slot = t;
			} else if (owner_dead(o)) {
				adopt(r, h, t, o, mine);
				if (!free_slot && GET(t->owner) == 0)
					free_slot = t;
			}
		}
	}
	if (mine_slot)
		return mine_slot;
	/* Bounded: owner words another process keeps flipping cost tries,
	 * never a hang. */
	for (tries = 0; free_slot && tries < NSLOTRUNS * SLOTS_PER_RUN; tries++) {
		zero = 0;
		if (__atomic_compare_exchange_n(&free_slot->owner, &zero, mine, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return free_slot;
		/* Taken meanwhile: look once more from the start. */
		free_slot = NULL;
		for (k = 0; k < NSLOTRUNS && !free_slot && (run = rszshm__heap_slot_run(r, h, k)); k++)
			for (i = 0; i < SLOTS_PER_RUN && !free_slot; i++)
				if (GET(slot_at(run, i)->owner) == 0)
					free_slot = slot_at(run, i);
	}
	return NULL;
}

/* --------------------------------------------------- the process's side */

/* Under reg_lock: give back the slot of entry @e and drop the entry. */
static void release(struct own **link)
{
	struct own *e = *link;
	struct rszshm__guard g;
	struct ctl *h;

	/* The region is mapped (rszshm_dt() drops its entries first) and
	 * the slot was checked when it was claimed; a slot no longer ours
	 * (damage) is left alone.  A thread's exit runs this outside any
	 * call: its own frame keeps a file cut meanwhile from raising SIGBUS. */
	rszshm__guard_enter(&g, &e->r);
	if (get_ctl(&e->r, true, &h) == 0 && GET(e->slot->owner) == e->word) {
		slot_empty(&e->r, h, e->slot);
		PUT(e->slot->owner, 0);
	}
	rszshm__guard_leave(&g);
	*link = e->next;
	free(e);
}

/* Under reg_lock: give back every slot of thread @tid (0: any) in the
 * region at @base (0: any). */
static void release_all(uintptr_t base, pid_t tid)
{
	struct own **link;

	for (link = &reg; *link;)
		if ((!base || (*link)->base == base) && (!tid || (*link)->tid == tid))
			release(link);
		else
			link = &(*link)->next;
}

/* A thread exits: give back its slots in every region. */
static void thread_exit(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&reg_lock);
	release_all(0, gettid());
	pthread_mutex_unlock(&reg_lock);
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&reg_lock);
}

/* A forked child owns none of its parent's slots. */
static void fork_child(void)
{
	struct own *e;

	while ((e = reg)) {
		reg = e->next;
		free(e);
	}
	me = 0;
	proc_known = 0;	/* a child may be the first of a new PID namespace */
	memset(&rszshm__heap_tl, 0, sizeof(rszshm__heap_tl));
	bump_epoch();
	pthread_mutex_init(&reg_lock, NULL);
}

static void reg_init(void)
{
	key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* The library is unloaded (dlclose): no thread may run thread_exit() from
 * it any more.  glibc drops the fork handlers itself. */
__attribute__((destructor)) static void reg_fini(void)
{
	if (key_ok) {
		key_ok = false;
		pthread_key_delete(exit_key);
	}
}

struct tslot *rszshm__heap_slot_claim(struct rszshm *r, struct ctl *h)
{
	uintptr_t base = (uintptr_t)r->hdr;
	struct tslot *t = NULL;
	uint64_t mine, epoch;
	int cancel;
	pid_t tid;
	struct own *e;

	pthread_once(&reg_once, reg_init);
	if (!key_ok || !(mine = my_word()))
		goto out;
	tid = gettid();
	/* open() and read() of /proc are cancellation points: a thread
	 * cancelled there must not leave reg_lock held. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&reg_lock);
	epoch = RD(rszshm__heap_epoch);
	for (e = reg; e; e = e->next)
		if (e->base == base && e->tid == tid)
			break;
	if (e && GET(e->slot->owner) != mine) {
		/* Taken from us (damage): forget it, claim another. */
		struct own **link;

		for (link = &reg; *link != e; link = &(*link)->next)
			;
		*link = e->next;
		free(e);
		e = NULL;
	}
	if (e) {
		t = e->slot;
	} else if ((e = malloc(sizeof(*e)))) {
		if ((t = claim(r, h, mine))) {
			e->r = *r;
			e->base = base;
			e->slot = t;
			e->word = mine;
			e->tid = tid;
			e->next = reg;
			reg = e;
			pthread_setspecific(exit_key, (void *)1);
		} else {
			free(e);
		}
	}
	pthread_mutex_unlock(&reg_lock);
	pthread_setcancelstate(cancel, NULL);
	/* No slot: allocate through the arenas until the next detach. */
	rszshm__heap_tl.base = base;
	rszshm__heap_tl.epoch = epoch;
	rszshm__heap_tl.slot = t;
	rszshm__heap_tl.me = mine;
	return t;
out:
	rszshm__heap_tl.base = base;
	rszshm__heap_tl.epoch = RD(rszshm__heap_epoch);
	rszshm__heap_tl.slot = NULL;
	return NULL;
}

void rszshm__heap_detach(struct rszshm *r)
{
	int cancel;

	pthread_once(&reg_once, reg_init);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&reg_lock);
	release_all((uintptr_t)r->hdr, 0);
	bump_epoch();
	pthread_mutex_unlock(&reg_lock);
	pthread_setcancelstate(cancel, NULL);
}

/* Test hook: this thread allocates in @r through the arenas, with no
 * slot, until the process next detaches a region. */
void rszshm__heap_nocache(struct rszshm *r)
{
	rszshm__heap_tl.base = (uintptr_t)r->hdr;
	rszshm__heap_tl.epoch = RD(rszshm__heap_epoch);
	rszshm__heap_tl.slot = NULL;
}

/* Test hook: slot @k (counted over the SLOTS runs) of @r's heap. */
int rszshm__heap_slot_peek(struct rszshm *r, unsigned k, struct rszshm__slot_view *out)
{
	struct tslot *t;
	struct ctl *h;
	void *run;

	if (get_ctl(r, false, &h) < 0 || k >= NSLOTRUNS * SLOTS_PER_RUN ||
	    !(run = rszshm__heap_slot_run(r, h, k / SLOTS_PER_RUN)))
		return -1;
	t = slot_at(run, k % SLOTS_PER_RUN);
	out->owner = &t->owner;
	out->n = t->n;
	out->blk = &t->blk[0][0];
	out->ncache = NCACHE;
	out->cap = CACHE_CAP;
	out->nslots = NSLOTRUNS * SLOTS_PER_RUN;
	return 0;
}

/* Test hook: blocks in all of @r's thread caches. */
uint64_t rszshm__heap_cached(struct rszshm *r)
{
	struct ctl *h;
	uint64_t n = 0;
	unsigned k, i, c;
	void *run;

	if (get_ctl(r, false, &h) < 0)
		return 0;
	for (k = 0; k < NSLOTRUNS && (run = rszshm__heap_slot_run(r, h, k)); k++)
		for (i = 0; i < SLOTS_PER_RUN; i++)
			for (c = 0; c < NCACHE; c++)
				n += RD(slot_at(run, i)->n[c]);
	return n;
}

/* Test hook: adoptions recorded in region @r's slots. */
uint64_t rszshm__heap_adoptions(struct rszshm *r)
{
	struct ctl *h;
	uint64_t n = 0;
	unsigned k, i;
	void *run;

	if (get_ctl(r, false, &h) < 0)
		return 0;
	for (k = 0; k < NSLOTRUNS && (run = rszshm__heap_slot_run(r, h, k)); k++)
		for (i = 0; i < SLOTS_PER_RUN; i++)
			n += RD(slot_at(run, i)->adoptions);
	return n;
}
