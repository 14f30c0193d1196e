/*
 * The expiration manager (node-internal): revokes tokens and leases (lease.h) when their TTL
 * runs out, without a
 * request touching them. The schedule is in storage (sys/expire/token/<hash> ->
 * {"expire_ns":N}, written with the token and rewritten by renewals); on unseal it is read
 * back into a min-heap and one libuv timer is armed for the earliest entry. A due entry is
 * checked against the token itself (a renewal may have moved it) and revoked through raft,
 * with its whole subtree. Expired tokens are refused by lookups before the purge runs.
 */
#ifndef CF_NODE_EXPIRE_H_
#define CF_NODE_EXPIRE_H_

#include <stdint.h>

#include <uv.h>

struct node_core;
struct node_expire;

/* Allocates the manager (idle). NULL on OOM. */
struct node_expire *node__expire_new(uv_loop_t *loop, struct node_core *core);
/* Stops the timer and frees the manager once libuv released the handle and no revocation it
 * started is still in flight. NULL-safe. */
void node__expire_close(struct node_expire *e);

/* Loads the schedule from storage and arms the timer (at unseal). Returns a cf_err. */
int node__expire_start(struct node_expire *e);
/* Forgets the schedule (at seal). */
void node__expire_stop(struct node_expire *e);

/* Schedules (or reschedules) the token with this hash to expire at expire_ns. */
void node__expire_track(struct node_expire *e, const char *hash, int64_t expire_ns);

/* Schedules the lease with this id (created by the token with token_hash, "" for none) to be
 * revoked at expire_ns. */
void node__expire_track_lease(struct node_expire *e,
                              const char *lease_id,
                              const char *token_hash,
                              int64_t expire_ns);
/* The token with this hash is being revoked: its leases become due now. NULL-safe. */
void node__expire_token_revoked(struct node_expire *e, const char *token_hash);

/* Number of scheduled entries (for tests and metrics). */
size_t node__expire_pending(const struct node_expire *e);

#endif
