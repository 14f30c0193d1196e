/*
 * The replicated store: a canonical libraft log whose FSM is an ordered in-memory map from key
 * (string) to value (bytes). This is the storage API for the layers above (DESIGN.md
 * "Storage"): reads are local and synchronous; writes are batches of operations applied
 * atomically, asynchronous, and complete once committed and applied to the local FSM.
 *
 * Happy path: rft_store_new() opens the data dir; a fresh dir is bootstrapped as a single-voter
 * cluster by rft_store_bootstrap() (done at sys/init), then rft_store_start() starts raft. The
 * ready callback fires once this node is leader and a barrier entry of its term is applied, so
 * every entry written before is visible in the FSM. Batches submitted in the same loop turn are
 * grouped into one log entry (one fsync), which is where write throughput comes from.
 *
 * Failure modes: a corrupt or truncated data dir makes new/start fail with a message naming the
 * file; losing leadership completes pending applies with CF_ENOTLEADER; closing the store
 * completes them with CF_ECANCELED. A conditional operation that fails aborts its whole batch
 * (CF_ECONFLICT) and nothing in that batch is applied; other batches grouped in the same entry
 * are unaffected.
 *
 * Everything here runs on the loop thread only.
 */
#ifndef CF_RAFT_STORE_H_
#define CF_RAFT_STORE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

struct uv_loop_s;
struct rft_store;
struct rft_batch;

#define RFT_SNAPSHOT_THRESHOLD 8192
#define RFT_SNAPSHOT_THRESHOLD_MAX (1u << 20)

struct rft_store_config
{
    const char *dir;     /* data dir (created if missing); borrowed */
    const char *node_id; /* this node's id string; borrowed */
    const char *address; /* advertised cluster address "host:port"; borrowed */
    /* entries between snapshots; 0 = RFT_SNAPSHOT_THRESHOLD at first, then as many entries as
     * hold the last snapshot's bytes (at most RFT_SNAPSHOT_THRESHOLD_MAX) */
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;    /* entries kept after a snapshot; 0 = default 10240 */
    unsigned election_timeout_ms;  /* 0 = default 1000 */
    unsigned heartbeat_timeout_ms; /* 0 = default 100 */
    /* The network libraft uses (raft/transport_tls.h), borrowed and outliving the store; NULL
     * = none (transport_local.h: a single node that never opens a port). */
    struct raft_uv_transport *transport;
};

struct raft_uv_transport;

/* Opens (or creates) the data dir and loads libraft's state. Fails with a clear message when the
 * dir holds files libraft cannot read. */
int rft_store_new(struct uv_loop_s *loop,
                  const struct rft_store_config *cfg,
                  struct rft_store **out,
                  char errmsg[CF_ERRMSG_SIZE]);

/* Closes raft and the store. Pending applies complete with CF_ECANCELED first. cb fires once,
 * from the loop, after every handle is closed; the store is freed before cb. NULL-safe (then cb
 * is not called). */
void rft_store_close(struct rft_store *s, void (*cb)(void *arg), void *arg);

/* True when the data dir holds a raft configuration (bootstrapped earlier or by a snapshot). */
bool rft_store_bootstrapped(const struct rft_store *s);

/* Writes a single-voter configuration holding this node. CF_EEXIST if already bootstrapped. */
int rft_store_bootstrap(struct rft_store *s, char errmsg[CF_ERRMSG_SIZE]);

typedef void (*rft_store_ready_cb)(struct rft_store *s, void *arg);

/* Starts raft. ready_cb fires (from the loop, never inside this call) each time this node
 * becomes leader and has applied a barrier of its term, when it loses leadership, and once when
 * it first becomes a synced follower (rft_store_is_synced). A dir that is not bootstrapped
 * starts with no configuration: the node waits for a leader to add it (cluster join). */
int rft_store_start(struct rft_store *s,
                    rft_store_ready_cb ready_cb,
                    void *arg,
                    char errmsg[CF_ERRMSG_SIZE]);

/* Entry formats (raft/entry.h). New entries are written in `format`, clamped to the formats
 * this build knows; the default is RFT_ENTRY_FORMAT_MIN, which every build reads. The node
 * layer raises it to the highest format every voter knows. */
void rft_store_set_entry_format(struct rft_store *s, uint64_t format);
uint64_t rft_store_entry_format(const struct rft_store *s);
/* Format of the last command entry this node applied (0 before any). */
uint64_t rft_store_applied_format(const struct rft_store *s);

/* True while this node is leader with its barrier applied (writes are accepted). */
bool rft_store_is_ready(const struct rft_store *s);
/* True once this node has been a ready leader, or a follower that applied everything its
 * leader had committed: its FSM holds the cluster's data (possibly stale on a follower). */
bool rft_store_is_synced(const struct rft_store *s);
/* True once rft_store_start succeeded. */
bool rft_store_started(const struct rft_store *s);

/* Membership (raft/membership.c). Changes run one at a time in submission order, on the
 * leader only; cb fires once, never inside the call: CF_OK when the new configuration is
 * committed, CF_ENOTLEADER, CF_ENOTFOUND (unknown server), CF_EEXIST (already there),
 * CF_ECANCELED (closing) or CF_EIO, with a message. */
typedef void (*rft_change_cb)(void *arg, int status, const char *errmsg);
/* Adds a server as a non-voter that receives the log (libraft's standby role). */
void rft_store_add_nonvoter(struct rft_store *s,
                            const char *node_id,
                            const char *address,
                            rft_change_cb cb,
                            void *arg);
/* Makes a non-voter a voter (libraft first lets it catch up) or a voter a non-voter. */
void rft_store_set_voter(struct rft_store *s,
                         const char *node_id,
                         bool voter,
                         rft_change_cb cb,
                         void *arg);
/* Removes a server from the configuration. */
void rft_store_remove(struct rft_store *s, const char *node_id, rft_change_cb cb, void *arg);
/* Hands leadership to node_id (NULL: the most up-to-date voter). cb gets CF_OK when another
 * node leads afterwards, CF_ETIMEDOUT when this node still does. */
void rft_store_transfer(struct rft_store *s, const char *node_id, rft_change_cb cb, void *arg);

#define RFT_ADDRESS_MAX 256
struct rft_server
{
    uint64_t raft_id;
    char address[RFT_ADDRESS_MAX];
    bool voter;
    bool leader;
    /* Known on the leader only (0/false elsewhere): */
    uint64_t match_index;     /* highest entry known to be on the server */
    bool recent_contact;      /* it answered within the election timeout */
    uint64_t last_contact_ms; /* ms since this leader last heard from it (0 for itself) */
};
/* Copies up to cap servers of the current configuration; returns how many there are. */
size_t rft_store_servers(struct rft_store *s, struct rft_server *out, size_t cap);
/* The leader this node knows of: raft id (0 = none) and its address ("" = none). */
uint64_t rft_store_leader(struct rft_store *s, char address[RFT_ADDRESS_MAX]);
/* Index of the current configuration entry. */
uint64_t rft_store_configuration_index(const struct rft_store *s);

/* Raft indexes and term, for sys/leader and X-Vault-Index. */
uint64_t rft_store_applied_index(const struct rft_store *s);
uint64_t rft_store_commit_index(const struct rft_store *s);
uint64_t rft_store_last_index(const struct rft_store *s);
uint64_t rft_store_term(const struct rft_store *s);
size_t rft_store_size(const struct rft_store *s); /* number of keys in the FSM */

/* Reads. The value pointer is borrowed: valid until the loop next applies an entry (do not hold
 * it across an asynchronous step). CF_ENOTFOUND if absent. version = raft index of the last
 * write to the key. Any of val/len/version may be NULL. */
int rft_store_get(const struct rft_store *s,
                  const char *key,
                  const uint8_t **val,
                  size_t *len,
                  uint64_t *version);

/* Visits, in byte order, every key that starts with prefix and sorts after `after` (NULL or ""
 * = from the start). fn returns 0 to continue, non-zero to stop (that value is returned). */
typedef int (*rft_store_visit_fn)(void *arg, const char *key, const uint8_t *val, size_t len);
int rft_store_scan(const struct rft_store *s,
                   const char *prefix,
                   const char *after,
                   rft_store_visit_fn fn,
                   void *arg);

/* Frozen copies, for snapshots that leave the node (sys/storage/raft/snapshot). Freezing is
 * O(1) and later writes do not show in the copy. rft_frozen_encode may run on any thread (it only
 * reads); freeze and release run on the loop. The encoding is the FSM snapshot body of
 * docs/formats/raft-snapshot.md. */
struct rft_frozen;
struct rft_frozen *rft_store_freeze(struct rft_store *s); /* NULL on OOM */
uint64_t rft_frozen_index(const struct rft_frozen *f);    /* applied index when frozen */
uint64_t rft_frozen_term(const struct rft_frozen *f);
int rft_frozen_encode(const struct rft_frozen *f, struct cf_buf *out);
void rft_frozen_release(struct rft_frozen *f);
/* Decodes a body made by rft_frozen_encode and visits every key in order; CF_ECORRUPT or
 * CF_EVERSION with errmsg when it does not decode (fn is not called then). */
int rft_frozen_scan_encoded(const uint8_t *p,
                            size_t len,
                            rft_store_visit_fn fn,
                            void *arg,
                            char errmsg[CF_ERRMSG_SIZE]);

/* Batches. Keys are copied; values are copied. Every builder returns CF_OK, CF_ENOMEM, or
 * CF_EINVAL for an empty key or one longer than RFT_KEY_MAX (4096) bytes (the batch is then
 * unchanged). */
struct rft_batch *rft_batch_new(void);
void rft_batch_free(struct rft_batch *b);
size_t rft_batch_count(const struct rft_batch *b);
int rft_batch_put(struct rft_batch *b, const char *key, const uint8_t *val, size_t len);
int rft_batch_delete(struct rft_batch *b, const char *key);
/* Deletes every key that starts with prefix. */
int rft_batch_delete_prefix(struct rft_batch *b, const char *prefix);
/* Condition: key is present. On success the old value is returned in req->old_values[i]. */
int rft_batch_delete_if_present(struct rft_batch *b, const char *key);
/* Condition: key's version equals `version` (0 = key must be absent). */
int rft_batch_put_if_version(struct rft_batch *b,
                             const char *key,
                             const uint8_t *val,
                             size_t len,
                             uint64_t version);

/* Replaces the whole store except the keys under `keep`: every key outside `keep` and
 * `staging` is deleted, then every key under `staging` moves to its name without that prefix
 * (names that would fall under `keep` are dropped). Needs entry format 2 (rft_store_apply
 * refuses it with CF_EVERSION while a voter does not know format 2). CF_EINVAL when either
 * prefix is empty or one starts with the other. */
int rft_batch_restore(struct rft_batch *b, const char *staging, const char *keep);

struct rft_value
{
    uint8_t *data; /* owned by the request; freed by rft_apply_req_close */
    size_t len;
};

struct rft_apply_req;
typedef void (*rft_apply_cb)(struct rft_apply_req *req, int status);

struct rft_apply_req
{
    void *data; /* caller's */
    /* Results, valid inside the callback until rft_apply_req_close. */
    uint64_t index;               /* raft index of the entry that carried the batch */
    size_t failed_op;             /* with CF_ECONFLICT: index of the op whose condition failed */
    struct rft_value *old_values; /* one per op, for delete_if_present; NULL if none */
    size_t n_old_values;
    /* private */
    rft_apply_cb cb;
    struct rft_batch *batch;
    struct rft_apply_req *next;
};

/* Submits a batch. Takes ownership of `batch` always (even on error). The callback fires exactly
 * once, never inside this call, after the batch is committed and applied locally (CF_OK), or with
 * CF_ECONFLICT, CF_ENOTLEADER, CF_ETOOBIG, CF_EIO or CF_ECANCELED. Returns CF_OK when the callback
 * will fire; any other value means it will not. */
int rft_store_apply(struct rft_store *s,
                    struct rft_apply_req *req,
                    struct rft_batch *batch,
                    rft_apply_cb cb);

/* Frees the result values of a completed request (not the request itself). */
void rft_apply_req_close(struct rft_apply_req *req);

#endif
