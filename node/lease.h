/*
 * Leases (node-internal): the record of a secret an engine handed out with a lifetime, kept
 * so that it can be looked up, revoked on request, with its token or its mount, and revoked by
 * the expiration manager when its time runs out. One barrier-encrypted JSON entry per lease at
 * sys/expire/id/<lease_id>:
 *   {"lease_id","path","mount","mount_uuid","issue_time","expire_time","renewable":false,
 *    "token_hash","secret":{engine data}}   (mount_uuid optional when read)
 * Times are Unix nanoseconds. lease_id is "<request path>/<uuid>", as Vault spells it.
 */
#ifndef CF_NODE_LEASE_H_
#define CF_NODE_LEASE_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "node/engine.h"

struct node_core;
struct rft_batch;

#define LEASE_PREFIX "sys/expire/id/"
#define LEASE_ID_MAX 512 /* longest lease id accepted (bytes) */

struct node_lease
{
    char *lease_id;      /* owned */
    char *path;          /* owned: the request path that created it */
    char *mount;         /* owned: the mount path ("pki/") when the lease was made */
    char mount_uuid[37]; /* the mount's uuid ("" in entries without one): finds the engine
                            after a remount */
    int64_t issue_ns;    /* Unix ns */
    int64_t expire_ns;   /* Unix ns */
    bool renewable;      /* always false today (no engine renews) */
    char token_hash[65]; /* the creating token's hash, "" for none */
    json_t *secret;      /* owned: the engine's data for revoke_secret */
};

/* Frees what l owns and zeroes it. NULL-safe. */
void node__lease_clear(struct node_lease *l);

/* The stored JSON of l; NULL on OOM. */
json_t *node__lease_encode(const struct node_lease *l);
/* Reads a stored entry into out (owned copies). CF_EINVAL when a field is missing or of the
 * wrong type (out is then cleared). */
int node__lease_decode(const json_t *j, struct node_lease *out);

/* True when id is usable as a lease id: not empty, at most LEASE_ID_MAX bytes, no "..", no
 * leading '/', no empty segment. */
bool node__lease_id_valid(const char *id);

/* Reads the lease with this id. CF_ENOTFOUND when absent (or id invalid). */
int node__lease_get(struct node_core *core, const char *lease_id, struct node_lease *out);
/* Adds the put of l to batch b. */
int node__lease_batch_put(struct node_core *core, struct rft_batch *b, const struct node_lease *l);

/* Lease ids under prefix (one level, Vault's list: sub-folders end in '/'), sorted. */
int node__lease_list(struct node_core *core, const char *prefix, json_t **keys);

/* Revokes one lease: the mount's revoke_secret hook (unless force and it fails), then the
 * entry is deleted. cb(arg, status) fires once, never inside the call: CF_ENOTFOUND when there
 * is no such lease. */
void node__lease_revoke(struct node_core *core,
                        const char *lease_id,
                        bool force,
                        node_write_cb cb,
                        void *arg);
/* Revokes every lease whose id starts with prefix, one after the other; stops at the first
 * failure unless force. */
void node__lease_revoke_prefix(struct node_core *core,
                               const char *prefix,
                               bool force,
                               node_write_cb cb,
                               void *arg);

/* Fills *out with a new lease for the request (id "<path>/<uuid>", mount, times, the owning
 * token's hash, a reference to secret). CF_ENOMEM; *out is then empty. */
int node__lease_prepare(struct node_core *core,
                        const struct node_request *req,
                        const char *token_hash,
                        json_t *secret,
                        int64_t duration_s,
                        struct node_lease *out);
/* Once the lease is stored: schedules its expiry and moves its id into the response (lease_id,
 * renewable false, lease_secret cleared). */
void node__lease_attach(struct node_core *core, struct node_response *resp, struct node_lease *l);

/* Writes the lease a response asks for (resp->lease_secret), owned by the request's token,
 * then sets resp->lease_id and clears lease_secret. cb as for node_write_commit. */
void node__lease_create(struct node_core *core,
                        const struct node_request *req,
                        const char *token_hash,
                        struct node_response *resp,
                        node_write_cb cb,
                        void *arg);

/* core.c: makes the lease of a routed request whose engine writes it in its own batch
 * (node_write_lease); the request keeps it (*out is borrowed) until the response, when it is
 * attached. CF_EEXIST when the request already has one, CF_EINVAL outside a routed request. */
int node__call_lease(struct node_request *req,
                     json_t *secret,
                     int64_t duration_s,
                     struct node_lease **out);

/* Number of leases stored (for sys/metrics). */
size_t node__lease_count(struct node_core *core);

#endif
