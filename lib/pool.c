/*
 * Worker pool (lib/pool.h). One mutex guards the job queue, the done list and the flags; a
 * condition variable wakes idle workers; a uv_async_t wakes the loop, whose callback takes the
 * whole done list at once and runs the after callbacks outside the lock.
 */
#include "lib/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/mem.h"

/* The workers' nice value relative to the process. */
#define CF_POOL_NICE 10

struct job
{
    struct job *next;
    void (*work)(void *arg);
    void (*after)(void *arg, int status);
    void *arg;
    int status;
};

struct cf_pool
{
    uv_async_t async;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    unsigned n_threads;
    struct job *queue_head; /* guarded by mu */
    struct job *queue_tail;
    struct job *done_head; /* guarded by mu; completion order */
    struct job *done_tail;
    unsigned pending; /* submitted, after not yet run (loop thread) */
    unsigned running; /* threads inside work (mu) */
    bool stopping;    /* mu */
    bool closing;     /* loop thread */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void push(struct job **head, struct job **tail, struct job *j)
{
    j->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = j;
    } else {
        *head = j;
    }
    *tail = j;
}

static void *worker(void *arg)
{
    struct cf_pool *p = arg;
    /* Below the loop thread: the loop's turns (raft appends, responses) come first, so queued
     * CPU work does not delay them (Linux applies nice per thread). */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), CF_POOL_NICE); /* not fatal */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->queue_head == NULL && !p->stopping) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        struct job *j = p->queue_head;
        if (j == NULL) {
            break; /* stopping and nothing left to run */
        }
        p->queue_head = j->next;
        if (p->queue_head == NULL) {
            p->queue_tail = NULL;
        }
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j->work(j->arg);
        j->status = CF_OK;
        pthread_mutex_lock(&p->mu);
        p->running--;
        push(&p->done_head, &p->done_tail, j);
        pthread_mutex_unlock(&p->mu);
        uv_async_send(&p->async);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_free(struct cf_pool *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    cf_free(p->threads);
    cf_free(p);
}

static void async_closed(uv_handle_t *h)
{
    struct cf_pool *p = h->data;
    void (*cb)(void *) = p->close_cb;
    void *arg = p->close_arg;
    pool_free(p);
    if (cb != NULL) {
        cb(arg);
    }
}

static void finish_close(struct cf_pool *p)
{
    for (unsigned i = 0; i < p->n_threads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    p->n_threads = 0;
    uv_close((uv_handle_t *)&p->async, async_closed);
}

static void async_cb(uv_async_t *h)
{
    struct cf_pool *p = h->data;
    pthread_mutex_lock(&p->mu);
    struct job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    bool idle = p->running == 0 && p->queue_head == NULL;
    pthread_mutex_unlock(&p->mu);
    while (j != NULL) {
        struct job *next = j->next;
        void (*after)(void *, int) = j->after;
        void *arg = j->arg;
        int status = j->status;
        cf_free(j);
        p->pending--;
        after(arg, status);
        j = next;
    }
    if (p->closing && idle && p->pending == 0) {
        finish_close(p);
    }
}

int cf_pool_new(uv_loop_t *loop, unsigned threads, struct cf_pool **out)
{
    struct cf_pool *p = cf_calloc(1, sizeof(*p));
    if (threads == 0) {
        threads = 1;
    }
    if (p == NULL || (p->threads = cf_calloc(threads, sizeof(*p->threads))) == NULL) {
        cf_free(p);
        return CF_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (uv_async_init(loop, &p->async, async_cb) != 0) {
        pool_free(p);
        return CF_EIO;
    }
    p->async.data = p;
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            break;
        }
        p->n_threads++;
    }
    if (p->n_threads == 0) {
        uv_close((uv_handle_t *)&p->async, async_closed);
        return CF_EIO;
    }
    *out = p;
    return CF_OK;
}

int cf_pool_submit(struct cf_pool *p,
                   void (*work)(void *arg),
                   void (*after)(void *arg, int status),
                   void *arg)
{
    if (p->closing) {
        return CF_ECANCELED;
    }
    struct job *j = cf_calloc(1, sizeof(*j));
    if (j == NULL) {
        return CF_ENOMEM;
    }
    j->work = work;
    j->after = after;
    j->arg = arg;
    p->pending++;
    pthread_mutex_lock(&p->mu);
    push(&p->queue_head, &p->queue_tail, j);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return CF_OK;
}

unsigned cf_pool_pending(const struct cf_pool *p)
{
    return p->pending;
}

void cf_pool_close(struct cf_pool *p, void (*close_cb)(void *arg), void *arg)
{
    if (p == NULL || p->closing) {
        return;
    }
    p->closing = true;
    p->close_cb = close_cb;
    p->close_arg = arg;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    /* Jobs not started are cancelled: they complete with CF_ECANCELED on the loop. */
    while (p->queue_head != NULL) {
        struct job *j = p->queue_head;
        p->queue_head = j->next;
        j->status = CF_ECANCELED;
        push(&p->done_head, &p->done_tail, j);
    }
    p->queue_tail = NULL;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}
