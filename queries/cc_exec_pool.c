/*
 * cc_exec_pool.c: the engine's threads (cc_exec_par_for() in
 * cc_exec_internal.h). One pool per process, started lazily and kept: a
 * query used to start and join its own threads for every parallel step
 * (two or three per query), which cost more than a small query's counting.
 *
 * A parallel loop is a job of n_threads chunks. Chunk t always runs with
 * thread index t (the index of the per-thread count arrays), so a job's
 * result does not depend on which OS thread ran which chunk. The caller
 * queues its job, then claims and runs chunks itself until none is left,
 * and only then waits for the chunks that helpers took: a query finishes
 * even when every helper is busy with other queries' jobs (the server runs
 * several queries at once on its own threads), and a helper that cannot be
 * started only makes the caller do more.
 *
 * Helpers block every signal (the server's signal handling stays on its own
 * threads) and live until the process exits; they hold no query state
 * between jobs.
 *
 * Must never: run a chunk twice or not at all; return to the caller before
 * every chunk of its job has finished.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "cc_exec_internal.h"

struct pool_job {
    void (*fn)(void *ctx, unsigned thread, uint64_t begin, uint64_t end);
    void *ctx;
    uint64_t begin[CC_EXEC_MAX_THREADS], end[CC_EXEC_MAX_THREADS];
    unsigned n_chunks;
    unsigned claimed;  /* chunks taken so far (under pool_lock) */
    unsigned finished; /* chunks run to the end (under pool_lock) */
    struct pool_job *next;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER; /* a job has unclaimed chunks */
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER; /* a chunk finished */
static struct pool_job *pool_queue; /* jobs with unclaimed chunks, oldest first */
static unsigned pool_helpers;       /* helper threads started */

/* Claims the next chunk of job, taking the job off the queue once its last
 * chunk is claimed. Under pool_lock; job has an unclaimed chunk. */
static unsigned claim_chunk(struct pool_job *job)
{
    unsigned t = job->claimed++;
    if (job->claimed == job->n_chunks) {
        struct pool_job **link = &pool_queue;
        while (*link != job)
            link = &(*link)->next;
        *link = job->next;
    }
    return t;
}

/* Runs chunk t of job, outside the lock, and counts it finished. */
static void run_chunk(struct pool_job *job, unsigned t)
{
    pthread_mutex_unlock(&pool_lock);
    job->fn(job->ctx, t, job->begin[t], job->end[t]);
    pthread_mutex_lock(&pool_lock);
    if (++job->finished == job->n_chunks)
        pthread_cond_broadcast(&pool_done);
}

static void *helper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        while (!pool_queue)
            pthread_cond_wait(&pool_work, &pool_lock);
        struct pool_job *job = pool_queue;
        run_chunk(job, claim_chunk(job));
    }
    return NULL;
}

/* Starts helpers until there are `wanted` (fewer if the system refuses).
 * Under pool_lock. */
static void start_helpers(unsigned wanted)
{
    if (pool_helpers >= wanted)
        return;
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        while (pool_helpers < wanted) {
            pthread_t id;
            if (pthread_create(&id, &attr, helper_main, NULL) != 0)
                break;
            pool_helpers++;
        }
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void cc_exec_par_for(unsigned n_threads, uint64_t n, uint64_t align,
                     void (*fn)(void *, unsigned, uint64_t, uint64_t), void *ctx)
{
    if (n_threads > CC_EXEC_MAX_THREADS)
        n_threads = CC_EXEC_MAX_THREADS;
    if (n_threads < 2 || n < 4096) {
        fn(ctx, 0, 0, n);
        for (unsigned t = 1; t < n_threads; t++)
            fn(ctx, t, n, n);
        return;
    }
    struct pool_job job = {.fn = fn, .ctx = ctx, .n_chunks = n_threads};
    uint64_t chunk = (n + n_threads - 1) / n_threads;
    chunk = (chunk + align - 1) / align * align;
    for (unsigned t = 0; t < n_threads; t++) {
        uint64_t b = (uint64_t)t * chunk, e = b + chunk;
        job.begin[t] = b < n ? b : n;
        job.end[t] = e < n ? e : n;
    }
    pthread_mutex_lock(&pool_lock);
    start_helpers(CC_EXEC_MAX_THREADS - 1 < n_threads - 1 ? CC_EXEC_MAX_THREADS - 1
                                                          : n_threads - 1);
    struct pool_job **tail = &pool_queue;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &job;
    if (n_threads > 2)
        pthread_cond_broadcast(&pool_work);
    else
        pthread_cond_signal(&pool_work);
    /* the caller's own share: whatever no helper has taken yet */
    while (job.claimed < job.n_chunks)
        run_chunk(&job, claim_chunk(&job));
    while (job.finished < job.n_chunks)
        pthread_cond_wait(&pool_done, &pool_lock);
    pthread_mutex_unlock(&pool_lock);
}
