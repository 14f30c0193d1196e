/*
 * Allocator wrappers with a fault-injection hook, and locked secret buffers.
 * The live count is kept only when a test asked for it (cf_mem_track): the server allocates
 * from the loop and every worker, and one shared atomic counter made each allocation and free
 * a contended cache line (about 4% of the CPU of an issuance).
 */
#include "lib/mem.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>

static atomic_ulong fail_countdown;
static atomic_long live;
static bool track_live;
static bool mlock_enabled = true;

static bool should_fail(void)
{
    unsigned long n = atomic_load(&fail_countdown);
    if (n == 0) {
        return false;
    }
    if (atomic_fetch_sub(&fail_countdown, 1) == 1) {
        return true;
    }
    return false;
}

void cf_mem_fail_after(unsigned long n)
{
    atomic_store(&fail_countdown, n);
}

void cf_mem_track(void)
{
    track_live = true;
}

long cf_mem_live(void)
{
    return atomic_load(&live);
}

void *cf_malloc(size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    void *p = malloc(n == 0 ? 1 : n);
    if (p != NULL && track_live) {
        atomic_fetch_add(&live, 1);
    }
    return p;
}

void *cf_calloc(size_t count, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
    if (p != NULL && track_live) {
        atomic_fetch_add(&live, 1);
    }
    return p;
}

void *cf_realloc(void *p, size_t n)
{
    if (p == NULL) {
        return cf_malloc(n);
    }
    if (should_fail()) {
        return NULL;
    }
    return realloc(p, n == 0 ? 1 : n);
}

void cf_free(void *p)
{
    if (p == NULL) {
        return;
    }
    if (track_live) {
        atomic_fetch_sub(&live, 1);
    }
    free(p);
}

char *cf_strdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    return cf_strndup(s, strlen(s));
}

char *cf_strndup(const char *s, size_t n)
{
    if (n == SIZE_MAX) {
        return NULL;
    }
    char *p = cf_malloc(n + 1);
    if (p == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}

void *cf_memdup(const void *p, size_t n)
{
    void *q = cf_malloc(n);
    if (q != NULL && n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

_Noreturn void cf_oom_abort(void)
{
    fputs("coffer: out of memory on the FSM apply path; aborting\n", stderr);
    abort();
}

void cf_secret_set_mlock(bool enabled)
{
    mlock_enabled = enabled;
}

void cf_cleanse(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        OPENSSL_cleanse(p, n);
    }
}

struct cf_secret *cf_secret_new(size_t len)
{
    struct cf_secret *s = cf_calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->data = cf_calloc(1, len == 0 ? 1 : len);
    if (s->data == NULL) {
        cf_free(s);
        return NULL;
    }
    s->len = len;
    if (mlock_enabled && len > 0) {
        s->locked = mlock(s->data, len) == 0;
    }
    return s;
}

struct cf_secret *cf_secret_from(const void *p, size_t len)
{
    struct cf_secret *s = cf_secret_new(len);
    if (s != NULL && len > 0) {
        memcpy(s->data, p, len);
    }
    return s;
}

void cf_secret_free(struct cf_secret *s)
{
    if (s == NULL) {
        return;
    }
    if (s->data != NULL) {
        OPENSSL_cleanse(s->data, s->len);
        if (s->locked) {
            munlock(s->data, s->len);
        }
        cf_free(s->data);
    }
    cf_free(s);
}
