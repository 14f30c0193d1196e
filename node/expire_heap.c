/*
 * The expiration schedule's min-heap (expire_heap.h).
 */
#include "node/expire_heap.h"

#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

static void swap(struct expire_item *a, struct expire_item *b)
{
    struct expire_item t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(struct expire_heap *h, size_t i)
{
    while (i > 0 && h->v[(i - 1) / 2].at_ns > h->v[i].at_ns) {
        swap(&h->v[(i - 1) / 2], &h->v[i]);
        i = (i - 1) / 2;
    }
}

static void sift_down(struct expire_heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        size_t m = i;
        if (l < h->n && h->v[l].at_ns < h->v[m].at_ns) {
            m = l;
        }
        if (r < h->n && h->v[r].at_ns < h->v[m].at_ns) {
            m = r;
        }
        if (m == i) {
            return;
        }
        swap(&h->v[i], &h->v[m]);
        i = m;
    }
}

int node__eheap_push(struct expire_heap *h,
                     enum expire_kind kind,
                     const char *key,
                     const char *token_hash,
                     int64_t at_ns)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct expire_item *v = cf_realloc(h->v, cap * sizeof(*v));
        if (v == NULL) {
            return CF_ENOMEM;
        }
        h->v = v;
        h->cap = cap;
    }
    char *k = cf_strdup(key);
    if (k == NULL) {
        return CF_ENOMEM;
    }
    struct expire_item *it = &h->v[h->n];
    memset(it, 0, sizeof(*it));
    it->at_ns = at_ns;
    it->kind = kind;
    it->key = k;
    snprintf(it->token_hash, sizeof(it->token_hash), "%s", token_hash ? token_hash : "");
    sift_up(h, h->n++);
    return CF_OK;
}

const struct expire_item *node__eheap_peek(const struct expire_heap *h)
{
    return h->n > 0 ? &h->v[0] : NULL;
}

bool node__eheap_pop(struct expire_heap *h, struct expire_item *out)
{
    if (h->n == 0) {
        return false;
    }
    *out = h->v[0];
    h->v[0] = h->v[--h->n];
    sift_down(h, 0);
    return true;
}

size_t node__eheap_due_token(struct expire_heap *h, const char *token_hash, int64_t at_ns)
{
    size_t hits = 0;
    if (token_hash == NULL || token_hash[0] == '\0') {
        return 0;
    }
    for (size_t i = 0; i < h->n; i++) {
        struct expire_item *it = &h->v[i];
        if (it->kind == EXPIRE_LEASE && strcmp(it->token_hash, token_hash) == 0) {
            it->at_ns = at_ns < it->at_ns ? at_ns : it->at_ns;
            it->forced = true;
            hits++;
        }
    }
    if (hits > 0) { /* rebuild: times only went down, but anywhere in the array */
        for (size_t i = h->n / 2; i-- > 0;) {
            sift_down(h, i);
        }
    }
    return hits;
}

size_t node__eheap_count(const struct expire_heap *h, enum expire_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        n += h->v[i].kind == kind;
    }
    return n;
}

void node__eheap_clear(struct expire_heap *h)
{
    for (size_t i = 0; i < h->n; i++) {
        cf_free(h->v[i].key);
    }
    cf_free(h->v);
    memset(h, 0, sizeof(*h));
}
