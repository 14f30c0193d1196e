/*
 * Unit tests for raft/aio_reap.c: syscall(3) passes other system calls through with their
 * arguments and results; before the reaper starts, io_destroy is made inline; after it starts,
 * io_destroy returns at once and the context is really gone once the reaper has drained (the
 * kernel then refuses io_submit on it with EINVAL). The tests run in this order.
 */
#include <errno.h>
#include <linux/aio_abi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "raft/aio_reap.h"

static aio_context_t new_ctx(void)
{
    aio_context_t ctx = 0;
    assert_int_equal(syscall(SYS_io_setup, 4L, &ctx), 0);
    assert_true(ctx != 0);
    /* io_submit of no requests succeeds on a live context. */
    assert_int_equal(syscall(SYS_io_submit, ctx, 0L, NULL), 0);
    return ctx;
}

static void assert_gone(aio_context_t ctx)
{
    errno = 0;
    assert_int_equal(syscall(SYS_io_submit, ctx, 0L, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_pass_through(void **state)
{
    (void)state;
    assert_int_equal(syscall(SYS_getpid), getpid());
    /* Six arguments and an error result: pread64 on a bad descriptor. */
    char b[4];
    errno = 0;
    assert_int_equal(syscall(SYS_pread64, -1, b, sizeof(b), 0L), -1);
    assert_int_equal(errno, EBADF);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "abc", 3), 3);
    assert_int_equal(syscall(SYS_read, fds[0], b, sizeof(b)), 3);
    assert_memory_equal(b, "abc", 3);
    close(fds[0]);
    close(fds[1]);
}

static void test_inline_before_start(void **state)
{
    (void)state;
    aio_context_t ctx = new_ctx();
    assert_int_equal(syscall(SYS_io_destroy, ctx), 0);
    assert_gone(ctx); /* made at once: nothing was queued */
    assert_int_equal(rft_aio_reap_drain(), 0);
}

static void test_deferred_after_start(void **state)
{
    (void)state;
    rft_aio_reap_start();
    rft_aio_reap_start(); /* once per process */
    aio_context_t ctx[3];
    for (int i = 0; i < 3; i++) {
        ctx[i] = new_ctx();
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(syscall(SYS_io_destroy, ctx[i]), 0);
    }
    assert_int_equal(rft_aio_reap_drain(), 3);
    for (int i = 0; i < 3; i++) {
        assert_gone(ctx[i]);
    }
    /* More than the queue holds at once: the overflow is made inline, every one is gone. */
    enum { N = 100 };
    aio_context_t many[N];
    for (int i = 0; i < N; i++) {
        many[i] = new_ctx();
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(syscall(SYS_io_destroy, many[i]), 0);
    }
    size_t made = rft_aio_reap_drain();
    assert_true(made > 3 && made <= 3 + N);
    for (int i = 0; i < N; i++) {
        assert_gone(many[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pass_through),
        cmocka_unit_test(test_inline_before_start),
        cmocka_unit_test(test_deferred_after_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
