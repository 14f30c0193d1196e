/*
 * The FSM's ordered map: key (string) -> {value bytes, version}. A persistent treap: nodes are
 * shared between the live tree and frozen snapshot roots, and a node is changed in place only
 * while nothing else references it (copy-on-write along the path otherwise). So freezing the
 * map for a snapshot is O(1) and the frozen copy can be serialized on a worker thread while the
 * loop keeps writing. Reference counts are touched only on the loop thread.
 */
#ifndef CF_RAFT_FSM_H_
#define CF_RAFT_FSM_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

struct rft_node;

struct rft_map
{
    struct rft_node *root; /* owned reference */
    size_t count;
    uint64_t prio_state; /* PRNG state for treap priorities */
};

void rft_map_init(struct rft_map *m);
void rft_map_close(struct rft_map *m);

/* Lookup; borrowed pointers valid until the map next changes. */
int rft_map_get(const struct rft_map *m,
                const char *key,
                const uint8_t **val,
                size_t *len,
                uint64_t *version);
/* Insert or replace. CF_ENOMEM on allocation failure (the map is unchanged). */
int rft_map_put(struct rft_map *m,
                const char *key,
                const uint8_t *val,
                size_t len,
                uint64_t version);
/* Checks the treap's invariants (keys in order, every priority at most its parent's, count);
 * returns the tree's height, or -1 when an invariant is broken. For tests. */
int rft_map_check(const struct rft_map *m);

/* Remove; CF_ENOTFOUND when absent. */
int rft_map_delete(struct rft_map *m, const char *key);

/* In-order visit of keys starting with prefix and greater than after (NULL = no bound). */
typedef int (*rft_map_visit_fn)(void *arg,
                                const char *key,
                                const uint8_t *val,
                                size_t len,
                                uint64_t version);
int rft_map_scan(const struct rft_node *root,
                 const char *prefix,
                 const char *after,
                 rft_map_visit_fn fn,
                 void *arg);

/* Freezing: a new reference to the current root (release it with rft_map_release). */
struct rft_node *rft_map_freeze(struct rft_map *m);
void rft_map_release(struct rft_node *root);

/* Snapshot format (docs/formats/snapshot.md): serializes a frozen root. Safe on a worker
 * thread while the loop mutates the live map. */
int rft_map_encode(const struct rft_node *root, uint64_t count, struct cf_buf *out);
/* Replaces the map's content with a decoded snapshot; on error the map is unchanged. */
int rft_map_decode(struct rft_map *m, const uint8_t *p, size_t len, char errmsg[CF_ERRMSG_SIZE]);

#endif
