/*
 * Kernel AIO contexts closed off the loop thread: see aio_reap.h.
 *
 * unistd.h, which declares syscall() with glibc's leaf attribute, is deliberately not included:
 * this file's syscall() calls back into the file.
 *
 * The queue is a fixed ring under one mutex. When the ring is full (the reaper is more than
 * RING_SIZE destroys behind) or the reaper is not running, io_destroy is made inline, as
 * libraft would have made it.
 */
#include "raft/aio_reap.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

#define RING_SIZE 64

typedef long (*syscall_fn)(long number, ...);

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_work = PTHREAD_COND_INITIALIZER; /* the ring has an entry */
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER; /* the ring is empty and idle */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static long g_ring[RING_SIZE];
static size_t g_head;  /* index of the oldest entry */
static size_t g_count; /* entries in the ring */
static bool g_busy;    /* the reaper is in io_destroy */
static bool g_running; /* the reaper thread exists */
static size_t g_made;  /* destroys the reaper has made */

/* libc's syscall(3), found once. */
static syscall_fn real_syscall(void)
{
    static syscall_fn fn;
    syscall_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        /* A data pointer to a function pointer: POSIX requires dlsym's result to convert. */
        void *sym = dlsym(RTLD_NEXT, "syscall");
        if (sym == NULL) {
            /* Only a static link could lack it; nothing can be passed through then. */
            fputs("coffer: libc's syscall() not found (dlsym)\n", stderr);
            abort();
        }
        *(void **)&f = sym;
        __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    }
    return f;
}

static void *reaper_main(void *arg)
{
    (void)arg;
    syscall_fn sys = real_syscall();
    pthread_mutex_lock(&g_mu);
    for (;;) {
        while (g_count == 0) {
            pthread_cond_wait(&g_work, &g_mu);
        }
        long ctx = g_ring[g_head];
        g_head = (g_head + 1) % RING_SIZE;
        g_count--;
        g_busy = true;
        pthread_mutex_unlock(&g_mu);
        (void)sys(SYS_io_destroy, ctx); /* libraft ignores the result too */
        pthread_mutex_lock(&g_mu);
        g_busy = false;
        g_made++;
        if (g_count == 0) {
            pthread_cond_broadcast(&g_idle);
        }
    }
    return NULL;
}

/* A child of fork(2) has no reaper: it destroys inline. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&g_mu);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&g_mu);
}

static void fork_child(void)
{
    g_running = false;
    g_busy = false;
    g_count = 0;
    pthread_mutex_unlock(&g_mu);
}

static void start_once(void)
{
    if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0) {
        return;
    }
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return;
    }
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    (void)pthread_attr_setstacksize(&attr, 64 * 1024);
    /* The reaper takes no signals: it starts with all of them blocked. */
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int rv = pthread_create(&t, &attr, reaper_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rv == 0) {
        (void)pthread_setname_np(t, "coffer-aio");
        pthread_mutex_lock(&g_mu);
        g_running = true;
        pthread_mutex_unlock(&g_mu);
    }
}

void rft_aio_reap_start(void)
{
    pthread_once(&g_once, start_once);
}

size_t rft_aio_reap_drain(void)
{
    pthread_mutex_lock(&g_mu);
    while (g_count > 0 || g_busy) {
        pthread_cond_wait(&g_idle, &g_mu);
    }
    size_t made = g_made;
    pthread_mutex_unlock(&g_mu);
    return made;
}

/* Queues `ctx` for the reaper; false when it must be destroyed inline. */
static bool defer_destroy(long ctx)
{
    bool queued = false;
    pthread_mutex_lock(&g_mu);
    if (g_running && g_count < RING_SIZE) {
        g_ring[(g_head + g_count) % RING_SIZE] = ctx;
        g_count++;
        queued = true;
        pthread_cond_signal(&g_work);
    }
    pthread_mutex_unlock(&g_mu);
    return queued;
}

/* Interposes libc's syscall(3) for the whole process. Every system call takes at most six
 * arguments and the caller does not say how many it passed, so all six are read, as libc's own
 * syscall() does: on x86-64 the sixth is read from the caller's stack frame whether it was
 * passed or not. That read is within the caller's frame, but AddressSanitizer cannot know it
 * belongs to no local object, so this one function is not instrumented. */
__attribute__((no_sanitize("address"))) long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a1 = va_arg(ap, long);
    long a2 = va_arg(ap, long);
    long a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long);
    long a5 = va_arg(ap, long);
    long a6 = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_io_destroy && defer_destroy(a1)) {
        return 0;
    }
    return real_syscall()(number, a1, a2, a3, a4, a5, a6);
}
