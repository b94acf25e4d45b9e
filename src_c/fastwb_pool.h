/* A small pool of helper threads for the chunks of one training step.
 *
 * fwb_pool_run(fn, ctx, count, threads) runs fn(ctx, 0) .. fn(ctx, count - 1)
 * on the calling thread and up to threads - 1 helpers, and returns when all
 * are done. Tasks are claimed one at a time from a shared counter, and the
 * caller claims too, so a helper that the operating system has not scheduled
 * (a busy machine) delays nothing: the caller runs the tasks no helper took,
 * and waits only for tasks a helper is actually running. OpenMP's parallel
 * regions instead end in a barrier that every thread of the team must reach,
 * which on an oversubscribed two-core machine made a step 60 times slower.
 *
 * Helpers spin briefly for the next job (the steps of an epoch follow each
 * other within microseconds), then sleep on a condition variable. A caller
 * that finds the pool busy (another thread's step) runs its tasks itself.
 * After fork() the child starts a new pool (the helpers are not copied).
 * Helpers run each job under its caller's floating-point control word (its
 * flush-to-zero choice). Without pthreads (or with FWB_POOL_DISABLED) every
 * call runs serially. */
#ifndef FASTWB_POOL_H
#define FASTWB_POOL_H

#include "fastwb_fpmode.h"

typedef void (*fwb_task_f)(void *ctx, int index);

#if defined(__unix__) || defined(__APPLE__)
#define FWB_POOL_THREADS 1
#endif

#if defined(FWB_POOL_THREADS) && !defined(FWB_POOL_DISABLED)

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#define FWB_POOL_MAX_HELPERS 63
#define FWB_POOL_SPIN 20000          /* polls before a helper sleeps: ~50-100 us */

static struct {
    pthread_mutex_t lock;            /* guards sleeping and waking */
    pthread_cond_t wake;
    atomic_flag busy;                /* one job at a time */
    atomic_ullong generation;        /* bumped for each job */
    atomic_ullong open;              /* the generation of the job open to helpers, 0: none */
    atomic_int active;               /* helpers looking at the current job */
    atomic_int next;                 /* next task to claim */
    atomic_int finished;             /* tasks done */
    int wanted;                      /* helpers this job may use */
    int count;
    fwb_fp_word word;                /* the caller's control word */
    fwb_task_f fn;
    void *ctx;
    int helpers;                     /* started so far */
    pid_t pid;                       /* of the process that started them */
} fwb_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, ATOMIC_FLAG_INIT};

static inline void fwb_pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Wait until *value == target ("finished" climbs to the task count, "active"
 * falls to 0). A helper that holds a task may have been preempted on a busy
 * machine: after a short spin, give it the core. */
static void fwb_pool_wait(atomic_int *value, int target) {
    int spins = 0;
    while (atomic_load(value) != target) {
        if (++spins < FWB_POOL_SPIN / 4)
            fwb_pool_pause();
        else
            sched_yield();
    }
}

/* Claim and run the open job's tasks until none are left. */
static void fwb_pool_work(void) {
    int count = fwb_pool.count;
    fwb_fp_adopt(fwb_pool.word);
    for (;;) {
        int i = atomic_fetch_add(&fwb_pool.next, 1);
        if (i >= count) return;
        fwb_pool.fn(fwb_pool.ctx, i);
        atomic_fetch_add(&fwb_pool.finished, 1);
    }
}

/* A helper joins a job only while it is open, and counts itself in `active`
 * before looking: the caller closes the job, then waits for `active` to drop
 * to 0, so no helper reads a job's fields after its caller has moved on. The
 * two sides each write their flag and then read the other's (sequentially
 * consistent), so at least one of them sees the other. */
static void *fwb_pool_helper(void *arg) {
    int rank = (int)(size_t)arg;           /* 1-based: helper r joins jobs wanting >= r */
    unsigned long long seen = atomic_load(&fwb_pool.generation), now;
    for (;;) {
        int spins = 0;
        while ((now = atomic_load(&fwb_pool.generation)) == seen) {
            if (++spins < FWB_POOL_SPIN) {
                fwb_pool_pause();
                continue;
            }
            pthread_mutex_lock(&fwb_pool.lock);
            while ((now = atomic_load(&fwb_pool.generation)) == seen)
                pthread_cond_wait(&fwb_pool.wake, &fwb_pool.lock);
            pthread_mutex_unlock(&fwb_pool.lock);
            break;
        }
        seen = now;
        atomic_fetch_add(&fwb_pool.active, 1);
        if (atomic_load(&fwb_pool.open) == now && rank <= fwb_pool.wanted)
            fwb_pool_work();
        atomic_fetch_sub(&fwb_pool.active, 1);
    }
    return NULL;
}

/* Start helpers up to `wanted`; returns how many there are. */
static int fwb_pool_grow(int wanted) {
    if (fwb_pool.pid != getpid()) {          /* first use, or a forked child */
        pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_cond_t fresh_wake = PTHREAD_COND_INITIALIZER;
        fwb_pool.lock = fresh_lock;
        fwb_pool.wake = fresh_wake;
        atomic_store(&fwb_pool.active, 0);
        fwb_pool.helpers = 0;
        fwb_pool.pid = getpid();
    }
    if (wanted > FWB_POOL_MAX_HELPERS) wanted = FWB_POOL_MAX_HELPERS;
    while (fwb_pool.helpers < wanted) {
        pthread_t thread;
        pthread_attr_t attr;
        int ok;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&thread, &attr, fwb_pool_helper,
                            (void *)(size_t)(fwb_pool.helpers + 1)) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        fwb_pool.helpers++;
    }
    return fwb_pool.helpers;
}

static void fwb_pool_run(fwb_task_f fn, void *ctx, int count, int threads) {
    int helpers, i;
    unsigned long long job;
    if (threads > count) threads = count;
    if (threads <= 1 || atomic_flag_test_and_set(&fwb_pool.busy)) {
        for (i = 0; i < count; i++) fn(ctx, i);
        return;
    }
    helpers = fwb_pool_grow(threads - 1);
    fwb_pool.fn = fn;
    fwb_pool.ctx = ctx;
    fwb_pool.count = count;
    fwb_pool.word = fwb_fp_get();
    fwb_pool.wanted = helpers < threads - 1 ? helpers : threads - 1;
    atomic_store(&fwb_pool.next, 0);
    atomic_store(&fwb_pool.finished, 0);
    job = atomic_load(&fwb_pool.generation) + 1;
    if (job == 0) job = 1;                   /* 0 means "no job open" */
    atomic_store(&fwb_pool.open, job);
    pthread_mutex_lock(&fwb_pool.lock);      /* no sleeping helper can miss the wake-up */
    atomic_store(&fwb_pool.generation, job);
    pthread_cond_broadcast(&fwb_pool.wake);
    pthread_mutex_unlock(&fwb_pool.lock);
    fwb_pool_work();
    atomic_store(&fwb_pool.open, 0);
    fwb_pool_wait(&fwb_pool.finished, count);
    fwb_pool_wait(&fwb_pool.active, 0);
    atomic_flag_clear(&fwb_pool.busy);
}

#else

static void fwb_pool_run(fwb_task_f fn, void *ctx, int count, int threads) {
    int i;
    (void)threads;
    for (i = 0; i < count; i++) fn(ctx, i);
}

#endif
#endif
