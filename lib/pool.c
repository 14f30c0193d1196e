/*
 * Worker pool (lib/pool.h). One mutex guards the job queue, the done list and the flags; a
 * condition variable wakes idle workers; an eventfd polled by the loop wakes the loop, whose
 * callback takes the whole done list at once and runs the after callbacks outside the lock.
 *
 * Why an eventfd and not a uv_async_t: uv_async_send marks the handle busy, writes libuv's
 * wake-up fd, then marks it pending; the loop, woken by that write, spins and calls
 * sched_yield() until the sender has finished. When the loop thread preempted a worker between
 * the write and the mark, it yielded to whatever else was runnable (the load generator, in the
 * benchmarks) for 3 to 5 ms at a time. Here a worker writes the eventfd only when the done list
 * goes from empty to not empty, and the loop never waits for a worker.
 *
 * The workers run at the process's own priority. They used to be niced (10) below the loop
 * thread so that its turns came first; measured, that cost more than it gave: the loop
 * preempted workers in the middle of a signature at every wake-up, and P-256 issuance took
 * about 10% more CPU per request, CSR signing (one verify and one signature per request) 20 to
 * 30% more, while stored issuance gained at most a few percent.
 */
#include "lib/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/mem.h"

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
    uv_poll_t poll; /* on efd */
    int efd;        /* eventfd: the done list became non-empty */
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

/* Wakes the loop; mu is not held. */
static void wake(struct cf_pool *p)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(p->efd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN would mean the counter is near 2^64: the loop is woken already. */
}

/* Puts a finished job on the done list; mu is held. True when the list was empty, and so the
 * caller must wake the loop: a list that is not empty has a wake-up on its way, and the loop
 * reads the eventfd before it takes the list, so it takes this job with the others. */
static bool push_done(struct cf_pool *p, struct job *j)
{
    bool was_empty = p->done_head == NULL;
    push(&p->done_head, &p->done_tail, j);
    return was_empty;
}

static void *worker(void *arg)
{
    struct cf_pool *p = arg;
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
        bool must_wake = push_done(p, j);
        pthread_mutex_unlock(&p->mu);
        if (must_wake) {
            wake(p);
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_free(struct cf_pool *p)
{
    if (p->efd >= 0) {
        close(p->efd);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    cf_free(p->threads);
    cf_free(p);
}

static void poll_closed(uv_handle_t *h)
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
    uv_close((uv_handle_t *)&p->poll, poll_closed);
}

static void poll_cb(uv_poll_t *h, int poll_status, int events)
{
    (void)poll_status; /* an eventfd has no error to report; the done list is read either way */
    (void)events;
    struct cf_pool *p = h->data;
    uint64_t count;
    ssize_t n;
    do {
        n = read(p->efd, &count, sizeof(count)); /* resets the counter; EAGAIN: already 0 */
    } while (n < 0 && errno == EINTR);
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
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0 || uv_poll_init(loop, &p->poll, p->efd) != 0) {
        pool_free(p);
        return CF_EIO;
    }
    p->poll.data = p;
    if (uv_poll_start(&p->poll, UV_READABLE, poll_cb) != 0) {
        uv_close((uv_handle_t *)&p->poll, poll_closed);
        return CF_EIO;
    }
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            break;
        }
        p->n_threads++;
    }
    if (p->n_threads == 0) {
        uv_close((uv_handle_t *)&p->poll, poll_closed);
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
    wake(p); /* the loop runs the cancelled afters, and closes once the workers are idle */
}
