/*
 * A pool of worker threads for CPU-heavy work (key generation, signing, CRL building), with
 * completions delivered on a libuv loop.
 *
 * Why not libuv's own pool: libraft does its disk writes and segment preparation on libuv's
 * thread pool. When that pool also runs a queue of signatures, each durable append waits
 * behind them, and stored issuance (which needs the append) slows to a fraction of the
 * no-store rate. Keeping CPU work on its own threads leaves libuv's pool to I/O.
 *
 * cf_pool_submit may be called from the loop thread only; work runs on a pool thread (FIFO),
 * after runs on the loop thread with CF_OK, or CF_ECANCELED when the pool was closed before the
 * work started (the work function is then not run). Close is asynchronous: work already
 * running finishes, every after callback runs, then close_cb.
 */
#ifndef CF_LIB_POOL_H_
#define CF_LIB_POOL_H_

#include <uv.h>

struct cf_pool;

/* Starts @threads worker threads (at least 1). CF_ENOMEM, or CF_EIO when a thread or the async
 * handle cannot be made. */
int cf_pool_new(uv_loop_t *loop, unsigned threads, struct cf_pool **out);

/* Queues one job. CF_ENOMEM on OOM, CF_ECANCELED after close began; after is not called then. */
int cf_pool_submit(struct cf_pool *p,
                   void (*work)(void *arg),
                   void (*after)(void *arg, int status),
                   void *arg);

/* Jobs queued or running, for tests and metrics. */
unsigned cf_pool_pending(const struct cf_pool *p);

/* Stops the pool: queued jobs that have not started are cancelled, running ones finish, every
 * after callback runs, the threads are joined, then close_cb(arg) runs on the loop and the pool
 * is freed. NULL-safe. */
void cf_pool_close(struct cf_pool *p, void (*close_cb)(void *arg), void *arg);

#endif
