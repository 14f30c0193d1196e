/*
 * The expiration manager's schedule (node-internal): a binary min-heap of (time, kind, key)
 * where key is a token hash or a lease id; lease entries also carry the hash of the token that
 * created them, so that revoking a token can bring its leases forward. No I/O, no clock: the
 * manager (expire.c) owns the timer.
 */
#ifndef CF_NODE_EXPIRE_HEAP_H_
#define CF_NODE_EXPIRE_HEAP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum expire_kind {
    EXPIRE_TOKEN,
    EXPIRE_LEASE,
};

struct expire_item
{
    int64_t at_ns;
    enum expire_kind kind;
    bool forced;         /* due now whatever its stored expiry says (token revoked) */
    char *key;           /* owned: token hash or lease id */
    char token_hash[65]; /* leases: the creating token's hash, "" for none */
};

struct expire_heap
{
    struct expire_item *v;
    size_t n;
    size_t cap;
};

/* Adds an item (key and token_hash copied; token_hash NULL -> ""). CF_ENOMEM on OOM. */
int node__eheap_push(struct expire_heap *h,
                     enum expire_kind kind,
                     const char *key,
                     const char *token_hash,
                     int64_t at_ns);
/* The earliest item, or NULL when empty (borrowed; valid until the next change). */
const struct expire_item *node__eheap_peek(const struct expire_heap *h);
/* Removes the earliest item into *out (which then owns key). False when empty. */
bool node__eheap_pop(struct expire_heap *h, struct expire_item *out);
/* Makes every lease of this token due at at_ns (and forced); returns how many. */
size_t node__eheap_due_token(struct expire_heap *h, const char *token_hash, int64_t at_ns);
/* Items of this kind. */
size_t node__eheap_count(const struct expire_heap *h, enum expire_kind kind);
/* Frees every item and the array; the heap is empty and reusable afterwards. */
void node__eheap_clear(struct expire_heap *h);

#endif
