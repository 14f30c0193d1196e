/*
 * Kernel AIO contexts closed off the loop thread.
 *
 * libraft gives every open log segment its own kernel AIO context (io_setup(2)) and closes it
 * with a synchronous io_destroy(2) on the loop thread when the segment is finalized: when it is
 * full, and at the barrier before every snapshot. io_destroy waits for an RCU grace period
 * before it returns, which took 30-40 ms on the machines we measured, and for that time the
 * loop thread, and with it every request and every raft append, stood still.
 *
 * libraft makes its AIO calls through libc's syscall(3). This module defines syscall() in the
 * executable, which the dynamic linker binds ahead of libc's, and passes every call through
 * unchanged except io_destroy: that one is queued to a reaper thread, which makes the real call,
 * and returns 0 at once. libraft closes a segment only once its writes have completed and
 * never uses the context again, so nothing waits on the destroy.
 *
 * rft_aio_reap_start is called by rft_store_new; it starts the reaper thread once per
 * process (later calls return at once). If the thread cannot be started, io_destroy runs inline
 * as before.
 */
#ifndef CF_RAFT_AIO_REAP_H_
#define CF_RAFT_AIO_REAP_H_

#include <stddef.h>

/* Starts the reaper thread (once per process). */
void rft_aio_reap_start(void);

/* Blocks until every queued io_destroy has been made; returns how many have been made since
 * the process started. For tests. */
size_t rft_aio_reap_drain(void);

#endif /* CF_RAFT_AIO_REAP_H_ */
