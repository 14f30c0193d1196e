/*
 * The expiration manager: a binary min-heap of (time, token hash) with one timer (expire.h).
 */
#include "node/expire.h"

#include <stdio.h>
#include <string.h>

#include "lib/mem.h"
#include "node/barrier.h"
#include "node/internal.h"
#include "node/token.h"

#define CF_LOG_MODULE "expire"
#include "lib/log.h"

#define EXPIRE_BATCH_MAX 256 /* revocations started per timer tick */

struct expire_item
{
    int64_t at_ns;
    char hash[TOKEN_HASH_LEN + 1];
};

struct node_expire
{
    uv_timer_t timer;
    struct node_core *core;
    struct expire_item *heap;
    size_t n;
    size_t cap;
    bool running;
    unsigned inflight; /* revocations not yet committed */
};

static void heap_swap(struct expire_item *a, struct expire_item *b)
{
    struct expire_item t = *a;
    *a = *b;
    *b = t;
}

static int heap_push(struct node_expire *e, const char *hash, int64_t at_ns)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        struct expire_item *h = cf_realloc(e->heap, cap * sizeof(*h));
        if (h == NULL) {
            return CF_ENOMEM;
        }
        e->heap = h;
        e->cap = cap;
    }
    size_t i = e->n++;
    e->heap[i].at_ns = at_ns;
    snprintf(e->heap[i].hash, sizeof(e->heap[i].hash), "%s", hash);
    while (i > 0 && e->heap[(i - 1) / 2].at_ns > e->heap[i].at_ns) {
        heap_swap(&e->heap[(i - 1) / 2], &e->heap[i]);
        i = (i - 1) / 2;
    }
    return CF_OK;
}

static void heap_pop(struct node_expire *e)
{
    e->heap[0] = e->heap[--e->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        size_t m = i;
        if (l < e->n && e->heap[l].at_ns < e->heap[m].at_ns) {
            m = l;
        }
        if (r < e->n && e->heap[r].at_ns < e->heap[m].at_ns) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(&e->heap[i], &e->heap[m]);
        i = m;
    }
}

static void timer_cb(uv_timer_t *t);

static void arm(struct node_expire *e)
{
    if (!e->running || e->n == 0) {
        uv_timer_stop(&e->timer);
        return;
    }
    int64_t now = node__now_ns();
    int64_t wait_ms = e->heap[0].at_ns > now ? (e->heap[0].at_ns - now) / 1000000 + 1 : 0;
    uv_timer_start(&e->timer, timer_cb, (uint64_t)wait_ms, 0);
}

struct node_expire *node__expire_new(uv_loop_t *loop, struct node_core *core)
{
    struct node_expire *e = cf_calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->core = core;
    uv_timer_init(loop, &e->timer);
    return e;
}

static void close_cb(uv_handle_t *h)
{
    struct node_expire *e = CF_CONTAINER_OF(h, struct node_expire, timer);
    cf_free(e->heap);
    cf_free(e);
}

void node__expire_close(struct node_expire *e)
{
    if (e == NULL) {
        return;
    }
    e->running = false;
    uv_timer_stop(&e->timer);
    uv_close((uv_handle_t *)&e->timer, close_cb);
}

struct load_ctx
{
    struct node_expire *e;
    size_t skip;
    int error;
};

static int load_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct load_ctx *c = arg;
    uint8_t *pt = NULL;
    size_t ptlen = 0;
    if (barrier_decrypt(c->e->core->barrier, key, val, len, &pt, &ptlen) != CF_OK) {
        CF_LOG(CF_LOG_WARN, "unreadable expiry entry %s skipped", key);
        return 0;
    }
    json_t *j = json_loadb((const char *)pt, ptlen, 0, NULL);
    cf_free(pt);
    int64_t at = json_integer_value(json_object_get(j, "expire_ns"));
    json_decref(j);
    const char *hash = key + c->skip;
    if (strlen(hash) == TOKEN_HASH_LEN && heap_push(c->e, hash, at) != CF_OK) {
        c->error = CF_ENOMEM;
        return 1;
    }
    return 0;
}

int node__expire_start(struct node_expire *e)
{
    e->n = 0;
    struct load_ctx c = {.e = e, .skip = strlen(TOKEN_PREFIX_EXPIRE)};
    rft_store_scan(e->core->store, TOKEN_PREFIX_EXPIRE, NULL, load_visit, &c);
    if (c.error != CF_OK) {
        return c.error;
    }
    e->running = true;
    CF_LOG(CF_LOG_INFO, "expiration manager loaded %zu entries", e->n);
    arm(e);
    return CF_OK;
}

void node__expire_stop(struct node_expire *e)
{
    e->running = false;
    e->n = 0;
    uv_timer_stop(&e->timer);
}

void node__expire_track(struct node_expire *e, const char *hash, int64_t expire_ns)
{
    if (!e->running || expire_ns == 0) {
        return;
    }
    if (heap_push(e, hash, expire_ns) != CF_OK) {
        /* Still safe: the token is refused once expired, and the next unseal reloads it. */
        CF_LOG(CF_LOG_WARN, "out of memory scheduling a token expiry");
        return;
    }
    arm(e);
}

size_t node__expire_pending(const struct node_expire *e)
{
    return e->n;
}

static void revoked_cb(void *arg, int status)
{
    struct node_expire *e = arg;
    e->inflight--;
    if (status != CF_OK && status != CF_ECANCELED) {
        CF_LOG(CF_LOG_WARN, "expiry revocation failed: %s", cf_strerror(status));
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct node_expire *e = CF_CONTAINER_OF(t, struct node_expire, timer);
    struct node_core *core = e->core;
    int64_t now = node__now_ns();
    unsigned started = 0;
    while (e->running && e->n > 0 && e->heap[0].at_ns <= now && started < EXPIRE_BATCH_MAX) {
        struct expire_item it = e->heap[0];
        heap_pop(e);
        struct node_token tok;
        if (node__token_get_hash(core, it.hash, &tok) != CF_OK) {
            continue; /* already revoked */
        }
        int64_t at = node__token_int(&tok, "expire_ns");
        node__token_clear(&tok);
        if (at == 0) {
            continue;
        }
        if (at > now) { /* renewed since it was scheduled */
            heap_push(e, it.hash, at);
            continue;
        }
        e->inflight++;
        started++;
        node__token_revoke(core, it.hash, false, revoked_cb, e);
    }
    arm(e);
}
