// SPDX-License-Identifier: Apache-2.0
// From ccan's rszshm module (https://ccodearchive.net/info/rszshm.html),
// by Dan Good <dan@dancancode.com>, Apache-2.0: the module's documented
// example, unchanged below this comment but for its include line.
// fork x times, grow and fill shared memory cooperatively
#include <assert.h>
#include <err.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <rszshm.h>

#define ok(x) ({ int n = (x); if (n == -1) err(1, "%s", #x); n; })

int main(int argc, char *argv[]) {
        int pidcnt, stopval, n, i;
        struct rszshm *r;
        char *m;

        assert(argc == 3);
        pidcnt  = atoi(argv[1]);
        stopval = atoi(argv[2]);
        assert(pidcnt > 0 && stopval > 0);

        if (!rszshm_mkm(r, 4096, NULL))
                err(1, "rszshm_mkm");

        printf("%s\n", r->fname);

        for (n = 0; n < pidcnt - 1; n++)
                if (ok(fork()) == 0)
                        break;

        m = (char *) r->dat + sizeof(int);
        #define next() (__sync_fetch_and_add((int *) r->dat, 1))

        for(i = next(); i < stopval; i = next()) {
                if (i >= r->cap - sizeof(int))
                        ok(rszshm_grow(r));
                assert(m[i] == '\0');
                m[i] = 'A' + n;
                kill(0, 0); // busy work
        }

        rszshm_free(r);
        return 0;
}
// $ ./foo 8 $((4*1024*1024-28))
// /dev/shm/rszshm_LAsEvt/0
// $ tail -c +29 /dev/shm/rszshm_LAsEvt/0 | sed 's/./&\n/g' | sort | uniq -c | tr '\n' '\t'; echo
//  515532 A   527251 B    512930 C    513062 D    544326 E    545876 F    512936 G    522363 H
