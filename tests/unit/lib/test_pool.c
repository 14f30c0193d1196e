/*
 * Unit tests for lib/pool.c: every job runs once on a pool thread and its completion runs on
 * the loop thread; one thread runs jobs in order; closing cancels jobs not started (their
 * completions still run, with CF_ECANCELED), lets the running one finish, and calls the close
 * callback after every completion; nothing is accepted after close.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/pool.h"

#define N_JOBS 200

struct state
{
    pthread_t loop_thread;
    atomic_int ran[N_JOBS];
    int done_status[N_JOBS];
    int done[N_JOBS];
    int order[N_JOBS];
    atomic_int next_order;
    int n_done;
    int closed;
    int done_before_close;
    atomic_int gate;         /* the slow job waits while 0 */
    atomic_int on_loop_work; /* work that ran on the loop thread (must stay 0) */
};

struct arg
{
    struct state *s;
    int i;
};

static struct arg args[N_JOBS];

static void work(void *a)
{
    struct arg *x = a;
    if (pthread_equal(pthread_self(), x->s->loop_thread)) {
        atomic_fetch_add(&x->s->on_loop_work, 1);
    }
    x->s->order[x->i] = atomic_fetch_add(&x->s->next_order, 1);
    atomic_fetch_add(&x->s->ran[x->i], 1);
}

static void slow_work(void *a)
{
    struct arg *x = a;
    while (atomic_load(&x->s->gate) == 0) {
        usleep(1000);
    }
    work(a);
}

static void after(void *a, int status)
{
    struct arg *x = a;
    assert_true(pthread_equal(pthread_self(), x->s->loop_thread));
    x->s->done[x->i]++;
    x->s->done_status[x->i] = status;
    x->s->n_done++;
}

static void closed(void *a)
{
    struct state *s = a;
    s->closed++;
    s->done_before_close = s->n_done;
}

static void test_runs_every_job(void **state)
{
    (void)state;
    static struct state s;
    s.loop_thread = pthread_self();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cf_pool *p = NULL;
    assert_int_equal(cf_pool_new(&loop, 3, &p), CF_OK);
    for (int i = 0; i < N_JOBS; i++) {
        args[i] = (struct arg){&s, i};
        assert_int_equal(cf_pool_submit(p, work, after, &args[i]), CF_OK);
    }
    assert_int_equal(cf_pool_pending(p), N_JOBS);
    while (s.n_done < N_JOBS) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(cf_pool_pending(p), 0);
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(atomic_load(&s.ran[i]), 1);
        assert_int_equal(s.done[i], 1);
        assert_int_equal(s.done_status[i], CF_OK);
    }
    cf_pool_close(p, closed, &s);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(s.closed, 1);
    assert_int_equal(atomic_load(&s.on_loop_work), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_one_thread_in_order(void **state)
{
    (void)state;
    static struct state s;
    s.loop_thread = pthread_self();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cf_pool *p = NULL;
    assert_int_equal(cf_pool_new(&loop, 1, &p), CF_OK);
    for (int i = 0; i < 50; i++) {
        args[i] = (struct arg){&s, i};
        assert_int_equal(cf_pool_submit(p, work, after, &args[i]), CF_OK);
    }
    while (s.n_done < 50) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < 50; i++) {
        assert_int_equal(s.order[i], i);
    }
    cf_pool_close(p, closed, &s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_cancels_queued(void **state)
{
    (void)state;
    static struct state s;
    s.loop_thread = pthread_self();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cf_pool *p = NULL;
    assert_int_equal(cf_pool_new(&loop, 1, &p), CF_OK);
    args[0] = (struct arg){&s, 0};
    assert_int_equal(cf_pool_submit(p, slow_work, after, &args[0]), CF_OK);
    for (int i = 1; i < 10; i++) {
        args[i] = (struct arg){&s, i};
        assert_int_equal(cf_pool_submit(p, work, after, &args[i]), CF_OK);
    }
    /* Let the one thread take the slow job, then close while the rest wait. */
    usleep(50000);
    cf_pool_close(p, closed, &s);
    assert_int_equal(cf_pool_submit(p, work, after, &args[0]), CF_ECANCELED);
    atomic_store(&s.gate, 1);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.done_before_close, 10); /* every completion ran before close_cb */
    assert_int_equal(atomic_load(&s.ran[0]), 1);
    assert_int_equal(s.done_status[0], CF_OK);
    for (int i = 1; i < 10; i++) {
        assert_int_equal(s.done[i], 1);
        assert_int_equal(s.done_status[i], CF_ECANCELED);
        assert_int_equal(atomic_load(&s.ran[i]), 0);
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_every_job),
        cmocka_unit_test(test_one_thread_in_order),
        cmocka_unit_test(test_close_cancels_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
