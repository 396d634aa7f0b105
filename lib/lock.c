/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lock.c - robust, process-shared mutexes kept inside a region.
 *
 * A holder that dies (killed, or exits with the lock held) does not block the
 * others: the next locker gets the lock with EOWNERDEAD, which these wrappers
 * turn into a return of 1.  That caller repairs the structure the lock guards
 * and calls rszshm__lock_consistent() before unlocking; a lock unlocked
 * without that becomes unusable (ENOTRECOVERABLE), which is reported, never
 * silently passed on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>

#include "internal.h"

int rszshm__lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc;

	if ((rc = pthread_mutexattr_init(&a)) != 0)
		return -rc;
	if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
	    (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
	    (rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) == 0)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

static int took(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == EOWNERDEAD)
		return 1;
	return -rc;
}

int rszshm__lock(pthread_mutex_t *m)
{
	return took(pthread_mutex_lock(m));
}

int rszshm__trylock(pthread_mutex_t *m)
{
	return took(pthread_mutex_trylock(m));
}

int rszshm__lock_consistent(pthread_mutex_t *m)
{
	return -pthread_mutex_consistent(m);
}

int rszshm__unlock(pthread_mutex_t *m)
{
	return -pthread_mutex_unlock(m);
}
