/* Stress test of the helper pool (src_c/fastwb_pool.h), written to run under
 * ThreadSanitizer as well as at -O2:
 *
 *   gcc -std=c11 -fsanitize=thread -O1 -g -pthread -Isrc_c tests/c/pool_stress.c -o pool_stress
 *   TSAN_OPTIONS="halt_on_error=1 exitcode=66" ./pool_stress [JOBS_PER_CALLER]
 *
 * Several caller threads submit many short jobs at once, each with its own
 * task count (0 to 40) and team size (1 to 8), so most callers find the pool
 * busy and run their tasks themselves while one caller's job runs on the
 * helpers; some tasks submit a job of their own from inside a job (a nested
 * call, which must run serially). Every task writes its own slot of the job's
 * output with plain (non-atomic) stores and the caller checks every slot after
 * fwb_pool_run returns: a task run twice or not at all, or run with another
 * job's context, is a wrong result (exit status 1), and a missing
 * happens-before edge between a task and the caller that reads its result is a
 * data race that ThreadSanitizer reports. Then one job asks for more threads
 * than the pool's cap, two tasks of one job must run at the same time (so
 * a pool that never starts its helpers fails), and (not under ThreadSanitizer, which does not support
 * threads started after a multithreaded fork) a forked child runs jobs on
 * helpers of its own.
 *
 * Exit status: 0 all right, 1 a wrong result, 2 bad usage or a failed system
 * call; ThreadSanitizer's own status (TSAN_OPTIONS exitcode) on a race. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fastwb_pool.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#define CALLERS 4
#define MAX_COUNT 40
#define MAX_TEAM 8
#define NESTED_COUNT 5

typedef struct {
    long id;                  /* which job: each task checks it sees its own job's context */
    int count;
    int *hits;                /* hits[i]: how often task i ran (must be 1) */
    long *seen;               /* seen[i]: the id task i saw in its context */
    long *value;              /* value[i]: what task i computed */
    int nested;               /* tasks also submit a job from inside this one */
    pthread_t caller;
    atomic_long *on_helper;   /* tasks that ran on a thread other than the caller */
} job_t;

static atomic_long helper_tasks;
static atomic_int failures;

static void fail(const char *what, long job, int index) {
    fprintf(stderr, "pool_stress: FAIL: %s (job %ld, task %d)\n", what, job, index);
    atomic_fetch_add(&failures, 1);
}

/* Some work, a few hundred ns to a few us: long enough for helpers to claim tasks. */
static long work(long id, int index) {
    long x = id * 1000003L + index;
    int i, rounds = 50 + (int)((id + index) % 7) * 60;
    for (i = 0; i < rounds; i++) x = x * 6364136223846793005L + 1442695040888963407L;
    return x;
}

static void inner_task(void *ctx, int index) {
    long *slots = ctx;
    slots[index] += index + 1;
}

static void task(void *ctx, int index) {
    job_t *job = ctx;
    if (index < 0 || index >= job->count) {
        fail("task index out of range", job->id, index);
        return;
    }
    job->hits[index]++;
    job->seen[index] = job->id;
    job->value[index] = work(job->id, index);
    if (!pthread_equal(pthread_self(), job->caller)) atomic_fetch_add(job->on_helper, 1);
    if (job->nested && index % 3 == 0) {
        /* a job submitted from inside a job finds the pool busy: it runs here, serially */
        long slots[NESTED_COUNT] = {0};
        int i;
        fwb_pool_run(inner_task, slots, NESTED_COUNT, 4);
        for (i = 0; i < NESTED_COUNT; i++)
            if (slots[i] != i + 1) {
                fail("nested job: wrong result", job->id, index);
                break;
            }
    }
}

/* Run one job of `count` tasks on a team of `team` and check every task's result. */
static void run_job(long id, int count, int team, int nested) {
    int hits[MAX_COUNT * 4] = {0};
    long seen[MAX_COUNT * 4] = {0}, value[MAX_COUNT * 4] = {0};
    atomic_long on_helper = 0;
    job_t job = {id, count, hits, seen, value, nested, pthread_self(), &on_helper};
    int i;
    fwb_pool_run(task, &job, count, team);
    for (i = 0; i < count; i++) {
        if (hits[i] != 1) {
            fprintf(stderr, "pool_stress: task %d of job %ld ran %d times\n", i, id, hits[i]);
            fail("a task did not run exactly once", id, i);
        } else if (seen[i] != id) {
            fail("a task saw another job's context", id, i);
        } else if (value[i] != work(id, i)) {
            fail("a task's result is wrong", id, i);
        }
    }
    atomic_fetch_add(&helper_tasks, atomic_load(&on_helper));
}

/* Two tasks that wait for each other (up to 10 s): they can only meet if a
 * helper runs one while the caller runs the other, so this fails if the pool
 * never starts helpers, however busy the machine. */
typedef struct {
    atomic_int started;
    atomic_int met;
} meeting_t;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void meet_task(void *ctx, int index) {
    meeting_t *m = ctx;
    double deadline = now_s() + 10.0;
    (void)index;
    atomic_fetch_add(&m->started, 1);
    while (atomic_load(&m->started) < 2 && now_s() < deadline) sched_yield();
    if (atomic_load(&m->started) == 2) atomic_store(&m->met, 1);
}

static void meet(const char *where) {
    meeting_t m = {0, 0};
    fwb_pool_run(meet_task, &m, 2, 2);
    if (!atomic_load(&m.met)) {
        fprintf(stderr, "pool_stress: FAIL: no helper joined a job within 10 s (%s)\n", where);
        atomic_fetch_add(&failures, 1);
    }
}

typedef struct {
    int rank;
    int jobs;
} caller_t;

static void *caller(void *arg) {
    caller_t *me = arg;
    unsigned state = 12345u + 7919u * (unsigned)me->rank;
    int j;
    for (j = 0; j < me->jobs; j++) {
        state = state * 1103515245u + 12345u;
        int count = (int)((state >> 8) % (MAX_COUNT + 1));          /* 0 .. 40 tasks */
        int team = 1 + (int)((state >> 20) % MAX_TEAM);              /* 1 .. 8 threads */
        int nested = ((state >> 4) & 15) == 0;
        run_job((long)me->rank * 1000000L + j + 1, count, team, nested);
        if (((state >> 12) & 31) == 0) usleep(200);  /* let helpers fall asleep now and then */
    }
    return NULL;
}

static int run_callers(int jobs) {
    pthread_t threads[CALLERS];
    caller_t args[CALLERS];
    int i;
    for (i = 0; i < CALLERS; i++) {
        args[i].rank = i;
        args[i].jobs = jobs;
        if (pthread_create(&threads[i], NULL, caller, &args[i]) != 0) {
            perror("pool_stress: pthread_create");
            return 2;
        }
    }
    for (i = 0; i < CALLERS; i++) pthread_join(threads[i], NULL);
    return 0;
}

#ifndef UNDER_TSAN
/* After fork() the child has no helpers: the pool must start new ones there. */
static int run_in_child(int jobs) {
    pid_t pid;
    int status;
    fflush(NULL);                 /* nothing buffered is written twice */
    pid = fork();
    if (pid < 0) {
        perror("pool_stress: fork");
        return 2;
    }
    if (pid == 0) {
        caller_t me = {CALLERS, jobs};
        caller(&me);
        meet("in the forked child");
        _exit(atomic_load(&failures) ? 1 : 0);
    }
    if (waitpid(pid, &status, 0) != pid) {
        perror("pool_stress: waitpid");
        return 2;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pool_stress: FAIL: the forked child exited with status %d\n", status);
        return 1;
    }
    return 0;
}
#endif

int main(int argc, char **argv) {
    int jobs = argc > 1 ? atoi(argv[1]) : 300;
    int rc;
    if (argc > 2 || jobs <= 0) {
        fprintf(stderr, "usage: %s [JOBS_PER_CALLER]\n", argv[0]);
        return 2;
    }
    /* one caller alone first: every job gets the pool */
    {
        caller_t me = {CALLERS + 1, jobs};
        caller(&me);
    }
    if ((rc = run_callers(jobs)) != 0) return rc;
    /* more threads than the pool's cap (63 helpers), and than tasks */
    run_job(-1, MAX_COUNT * 4, 100, 0);
    run_job(-2, 3, 100, 0);
    meet("after the stress");
#ifndef UNDER_TSAN
    if ((rc = run_in_child(jobs / 4 + 1)) != 0) return rc;
#endif
    if (atomic_load(&failures)) {
        fprintf(stderr, "pool_stress: %d failures\n", atomic_load(&failures));
        return 1;
    }
    printf("pool_stress: %d callers x %d jobs, %ld tasks on helpers: ok\n", CALLERS, jobs,
           atomic_load(&helper_tasks));
    return 0;
}
