/*
 * The expiration manager: the schedule of tokens and leases (expire_heap.c) with one timer
 * (expire.h).
 */
#include "node/expire.h"

#include <stdio.h>
#include <string.h>

#include "lib/mem.h"
#include "node/barrier.h"
#include "node/expire_heap.h"
#include "node/internal.h"
#include "node/lease.h"
#include "node/token.h"

#define CF_LOG_MODULE "expire"
#include "lib/log.h"

#define EXPIRE_BATCH_MAX 256 /* revocations started per timer tick */
#define EXPIRE_RETRY_S 10    /* a failed lease revocation is tried again after this */

struct node_expire
{
    uv_timer_t timer;
    struct node_core *core;
    struct expire_heap heap;
    bool running;
    unsigned inflight; /* revocations not yet committed */
    bool closed;       /* the timer handle is closed: freed when inflight reaches 0 */
};

static void timer_cb(uv_timer_t *t);

static void arm(struct node_expire *e)
{
    const struct expire_item *first = node__eheap_peek(&e->heap);
    if (!e->running || first == NULL) {
        uv_timer_stop(&e->timer);
        return;
    }
    int64_t now = node__now_ns();
    int64_t wait_ms = first->at_ns > now ? (first->at_ns - now) / 1000000 + 1 : 0;
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

static void maybe_free(struct node_expire *e)
{
    if (e->closed && e->inflight == 0) {
        node__eheap_clear(&e->heap);
        cf_free(e);
    }
}

static void close_cb(uv_handle_t *h)
{
    struct node_expire *e = CF_CONTAINER_OF(h, struct node_expire, timer);
    e->closed = true;
    maybe_free(e); /* else when the last revocation in flight reports */
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

/* True when the lease's token was revoked (its leases go with it, even when the revocation
 * was interrupted by a restart). */
static bool token_gone(struct node_core *core, const char *token_hash)
{
    struct node_token tok;
    if (token_hash[0] == '\0') {
        return false;
    }
    int rv = node__token_get_hash(core, token_hash, &tok);
    if (rv == CF_OK) {
        node__token_clear(&tok);
    }
    return rv == CF_ENOTFOUND;
}

struct load_ctx
{
    struct node_expire *e;
    size_t skip;
    int error;
    bool lease;
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
    if (c->lease) {
        struct node_lease l;
        if (j == NULL || node__lease_decode(j, &l) != CF_OK) {
            CF_LOG(CF_LOG_WARN, "unreadable lease %s skipped", key);
            json_decref(j);
            return 0;
        }
        json_decref(j);
        int64_t at = token_gone(c->e->core, l.token_hash) ? 0 : l.expire_ns;
        int rv = node__eheap_push(&c->e->heap, EXPIRE_LEASE, l.lease_id, l.token_hash, at);
        node__lease_clear(&l);
        if (rv != CF_OK) {
            c->error = rv;
            return 1;
        }
        return 0;
    }
    int64_t at = json_integer_value(json_object_get(j, "expire_ns"));
    json_decref(j);
    const char *hash = key + c->skip;
    if (strlen(hash) == TOKEN_HASH_LEN &&
        node__eheap_push(&c->e->heap, EXPIRE_TOKEN, hash, NULL, at) != CF_OK) {
        c->error = CF_ENOMEM;
        return 1;
    }
    return 0;
}

int node__expire_start(struct node_expire *e)
{
    node__eheap_clear(&e->heap);
    struct load_ctx c = {.e = e, .skip = strlen(TOKEN_PREFIX_EXPIRE)};
    rft_store_scan(e->core->store, TOKEN_PREFIX_EXPIRE, NULL, load_visit, &c);
    struct load_ctx lc = {.e = e, .skip = strlen(LEASE_PREFIX), .lease = true};
    if (c.error == CF_OK) {
        rft_store_scan(e->core->store, LEASE_PREFIX, NULL, load_visit, &lc);
    }
    if (c.error != CF_OK || lc.error != CF_OK) {
        node__eheap_clear(&e->heap);
        return c.error != CF_OK ? c.error : lc.error;
    }
    e->running = true;
    CF_LOG(CF_LOG_INFO, "expiration manager loaded %zu tokens and %zu leases",
           node__eheap_count(&e->heap, EXPIRE_TOKEN), node__eheap_count(&e->heap, EXPIRE_LEASE));
    arm(e);
    return CF_OK;
}

void node__expire_stop(struct node_expire *e)
{
    e->running = false;
    node__eheap_clear(&e->heap);
    uv_timer_stop(&e->timer);
}

void node__expire_track(struct node_expire *e, const char *hash, int64_t expire_ns)
{
    if (!e->running || expire_ns == 0) {
        return;
    }
    if (node__eheap_push(&e->heap, EXPIRE_TOKEN, hash, NULL, expire_ns) != CF_OK) {
        /* Still safe: the token is refused once expired, and the next unseal reloads it. */
        CF_LOG(CF_LOG_WARN, "out of memory scheduling a token expiry");
        return;
    }
    arm(e);
}

void node__expire_track_lease(struct node_expire *e,
                              const char *lease_id,
                              const char *token_hash,
                              int64_t expire_ns)
{
    if (!e->running) {
        return;
    }
    if (node__eheap_push(&e->heap, EXPIRE_LEASE, lease_id, token_hash, expire_ns) != CF_OK) {
        /* The next unseal reloads it from storage. */
        CF_LOG(CF_LOG_WARN, "out of memory scheduling a lease expiry");
        return;
    }
    arm(e);
}

void node__expire_token_revoked(struct node_expire *e, const char *token_hash)
{
    if (e == NULL || !e->running) {
        return;
    }
    if (node__eheap_due_token(&e->heap, token_hash, node__now_ns()) > 0) {
        arm(e);
    }
}

size_t node__expire_pending(const struct node_expire *e)
{
    return e->heap.n;
}

static void revoked_cb(void *arg, int status)
{
    struct node_expire *e = arg;
    e->inflight--;
    if (status != CF_OK && status != CF_ECANCELED) {
        CF_LOG(CF_LOG_WARN, "expiry revocation failed: %s", cf_strerror(status));
    }
    maybe_free(e);
}

/* A lease revocation in flight: put back on the schedule when it fails (the engine could not
 * revoke the secret now), so that a lease never stays stored unscheduled. */
struct lease_retry
{
    struct node_expire *e;
    char *lease_id;
    char token_hash[TOKEN_HASH_LEN + 1];
};

static void lease_revoked_cb(void *arg, int status)
{
    struct lease_retry *r = arg;
    struct node_expire *e = r->e;
    e->inflight--;
    if (status != CF_OK && status != CF_ENOTFOUND && status != CF_ECANCELED && e->running) {
        CF_LOG(CF_LOG_WARN, "lease %s: revocation failed (%s); retrying in %d s", r->lease_id,
               cf_strerror(status), EXPIRE_RETRY_S);
        node__eheap_push(&e->heap, EXPIRE_LEASE, r->lease_id, r->token_hash,
                         node__now_ns() + (int64_t)EXPIRE_RETRY_S * 1000000000LL);
        arm(e);
    }
    cf_free(r->lease_id);
    cf_free(r);
    maybe_free(e);
}

/* A due lease: revoked unless it is gone or (not forced) its stored expiry moved. */
static bool lease_due(struct node_expire *e, const struct expire_item *it, int64_t now)
{
    struct node_lease l;
    if (node__lease_get(e->core, it->key, &l) != CF_OK) {
        return false; /* already revoked */
    }
    int64_t at = l.expire_ns;
    bool orphan = token_gone(e->core, l.token_hash);
    node__lease_clear(&l);
    if (!it->forced && !orphan && at > now) {
        node__eheap_push(&e->heap, EXPIRE_LEASE, it->key, it->token_hash, at);
        return false;
    }
    struct lease_retry *r = cf_calloc(1, sizeof(*r));
    char *id = cf_strdup(it->key);
    if (r == NULL || id == NULL) {
        cf_free(r);
        cf_free(id);
        CF_LOG(CF_LOG_WARN, "out of memory revoking lease %s; retried at the next unseal", it->key);
        return false;
    }
    r->e = e;
    r->lease_id = id;
    snprintf(r->token_hash, sizeof(r->token_hash), "%s", it->token_hash);
    e->inflight++;
    node__lease_revoke(e->core, it->key, false, lease_revoked_cb, r);
    return true;
}

static bool token_due(struct node_expire *e, const struct expire_item *it, int64_t now)
{
    struct node_token tok;
    if (node__token_get_hash(e->core, it->key, &tok) != CF_OK) {
        return false; /* already revoked */
    }
    int64_t at = node__token_int(&tok, "expire_ns");
    node__token_clear(&tok);
    if (at == 0) {
        return false;
    }
    if (at > now) { /* renewed since it was scheduled */
        node__eheap_push(&e->heap, EXPIRE_TOKEN, it->key, NULL, at);
        return false;
    }
    e->inflight++;
    node__token_revoke(e->core, it->key, false, revoked_cb, e);
    return true;
}

static void timer_cb(uv_timer_t *t)
{
    struct node_expire *e = CF_CONTAINER_OF(t, struct node_expire, timer);
    int64_t now = node__now_ns();
    unsigned started = 0;
    while (e->running && started < EXPIRE_BATCH_MAX) {
        const struct expire_item *first = node__eheap_peek(&e->heap);
        if (first == NULL || first->at_ns > now) {
            break;
        }
        struct expire_item it;
        node__eheap_pop(&e->heap, &it);
        bool began = it.kind == EXPIRE_LEASE ? lease_due(e, &it, now) : token_due(e, &it, now);
        started += began;
        cf_free(it.key);
    }
    arm(e);
}
