/*
 * Cross-file privates of node/: the core struct and the helpers its files share. Nothing
 * outside node/ includes this header.
 */
#ifndef CF_NODE_INTERNAL_H_
#define CF_NODE_INTERNAL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "lib/pool.h"
#include "node/core.h"
#include "node/engine.h"
#include "node/seal.h"
#include "raft/store.h"

struct barrier;
struct cf_cloak;
struct node_expire;
struct node_policy_store;
struct audit_broker;
struct core_call;

/* Storage keys of the core (docs/formats/storage-layout.md). */
#define NODE_KEY_SEAL_CONFIG "core/seal-config" /* plaintext JSON, readable while sealed */
#define NODE_KEY_ROOT "core/root-key"           /* root key under the unseal key */
#define NODE_KEY_KEYRING "core/keyring"         /* keyring under the root key */
#define NODE_KEY_CLUSTER "core/cluster"         /* barrier: {"name","id"} */
#define NODE_KEY_MOUNTS "core/mounts"           /* barrier: mount table JSON */
#define NODE_KEY_AUDIT "core/audit"             /* barrier: audit device table JSON */
#define NODE_KEY_TOKEN_SALT "core/token-salt"   /* barrier: 32 random bytes */
#define NODE_PREFIX_LOGICAL "logical/"          /* per-mount data: logical/<uuid>/ */

#define NODE_MAX_ENGINES 16
#define NODE_MAX_SHARES 255

struct node_view
{
    struct node_core *core; /* borrowed */
    char *prefix;           /* owned: "logical/<uuid>/" */
    bool seal_wrap;         /* values pass through core->auto_seal before the barrier */
};

struct node_mount
{
    char *path; /* "secret/" */
    char *type; /* "kv" */
    char *uuid;
    char *accessor;
    char *description;
    json_t *options; /* owned object of strings, may be NULL */
    json_t *config;  /* owned object, never NULL: default_lease_ttl, max_lease_ttl (seconds, 0 =
                        system default), force_no_cache, and when set the audit_non_hmac_*_keys,
                        listing_visibility, passthrough_request_headers, allowed_response_headers */
    bool local;      /* stored in core/local-mounts, never replicated */
    bool seal_wrap;
    bool external_entropy_access;
    int64_t default_lease_ttl_s;       /* 0 = the system default; mirrors config */
    int64_t max_lease_ttl_s;           /* 0 = the system default; mirrors config */
    const struct node_engine_ops *ops; /* borrowed from the registry */
    void *state;                       /* engine instance */
    struct node_view view;
    struct node_mount *next;
};

struct node_seal_config
{
    char type[16]; /* the seal init used: "shamir", "static", "pkcs11" */
    unsigned shares;
    unsigned threshold;
    unsigned recovery_shares; /* auto-unseal seals only */
    unsigned recovery_threshold;
};

/* Key shares entered by operators (node/keyshares.c). */
struct node_share_set
{
    struct cf_secret *parts[NODE_MAX_SHARES];
    unsigned n;
    char nonce[37]; /* set when the first share arrives */
};

struct node_core
{
    uv_loop_t *loop;
    struct node_core_config cfg; /* strings below are owned copies */
    char *storage_path;
    char *node_id;
    char *api_addr;
    char *cluster_addr;

    struct rft_store *store;
    struct cf_pool *pool; /* CPU work of engines (node_view_work); libuv's pool stays for I/O */
    struct barrier *barrier;
    const struct node_engine_ops *engines[NODE_MAX_ENGINES];
    size_t n_engines;

    node_core_ready_cb ready_cb;
    void *ready_arg;
    bool started;       /* raft running */
    bool storage_ready; /* log replayed, this node leads */
    bool closing;

    /* Seal state */
    bool sealed;
    bool initializing;
    struct node_seal_config seal; /* valid when initialized */
    struct node_seal *auto_seal;  /* the configured auto-unseal seal, or NULL */
    struct node_seal *old_seal;   /* a disabled auto-unseal seal being migrated away from */
    char old_seal_type[16];       /* type of the disabled seal block ("" = none) */
    bool migrating;               /* storage's seal is the disabled one: unseal with migrate */
    struct node_share_set unseal_shares; /* keys entered so far */
    struct node_genroot *genroot;        /* root generation in progress, or NULL */
    struct node_rekey *rekey;            /* rekey in progress, or NULL */
    struct node_sealwrap *sealwrap;      /* seal-wrap data keys (node/sealwrap.c) */
    uv_timer_t *seal_health;             /* auto-unseal seals: the health probe */
    bool seal_requested;                 /* seal once in-flight requests finish (seal health) */
    struct cf_cloak *unseal_key;         /* cloaked combined unseal key while unsealed */
    struct cf_secret *token_salt;        /* while unsealed */
    struct node__token_cache_slot *token_cache; /* decoded token entries (node/token.c) */
    char cluster_name[64];
    char cluster_id[37];
    int64_t active_since_ns;

    struct node_mount *mounts;          /* while unsealed; sys/ first */
    struct node_expire *expire;         /* token expiry schedule (running while unsealed) */
    struct node_policy_store *policies; /* parsed-policy and ACL caches */
    struct audit_broker *audit;         /* audit devices (open while unsealed) */
    unsigned audit_pending;             /* devices still opening after unseal */
    bool audit_broken;                  /* a stored device failed to open: refuse requests */
    struct core_call *audit_waiters;    /* requests waiting for audit_pending to reach 0 */
    unsigned inflight;                  /* routed requests not yet done */
    struct node_request *pending_seal;  /* sys/seal waiting for in-flight requests */

    /* Clustering (node/cluster.c, join.c, cluster_api.c) */
    struct node_join *join;            /* a join of this node in progress, or NULL */
    struct node_challenge *challenges; /* join challenges this (active) node handed out */
    struct node_report *report;        /* version reports (cluster_report.c) */
    bool restoring;                    /* a snapshot restore is staging (snapshot.c) */
    struct node_autopilot *autopilot;  /* while active */
    bool was_active;                   /* the HA role the loaded state was made for */
    uint64_t standby_writes;           /* writes a standby attempted (node__commit) */
    uint64_t lost_writes;              /* writes failed by a leadership loss */
    uint64_t loaded_versions[4];       /* versions of the tables the unsealed state was loaded
                                          from (node__state_versions) */
    bool reload_pending;               /* reload state for a new HA role once idle */
    uv_timer_t *ha_timer;              /* sealed leader hand-over, role checks */

    /* Work to run once storage is ready (init on a fresh node). */
    void (*on_storage_ready)(struct node_core *core);
    void *pending_init; /* struct init_op of lifecycle.c waiting for storage */
};

/* core.c */
bool node__initialized(const struct node_core *core);
/* Ends one unit of work counted in core->inflight (a routed request, a lease revocation):
 * a seal or HA reload waiting for the node to be idle runs when the count reaches 0. */
void node__inflight_end(struct node_core *core);
/* Runs fn(arg, status) from the loop soon (never inside the caller). */
void node__defer(struct node_core *core, void (*fn)(void *arg, int status), void *arg, int status);
/* Starts raft on a bootstrapped dir; the core's storage-ready handling follows. */
int node__start_store(struct node_core *core, char errmsg[CF_ERRMSG_SIZE]);
/* Adds the write of core/seal-config (plaintext JSON; recovery fields for auto-unseal seals). */
int node__seal_config_put(struct rft_batch *b, const struct node_seal_config *sc);
/* Reloads the seal configuration from storage into core->seal. */
void node__load_seal_config(struct node_core *core);
/* Reads a raw (non-barrier) value; borrowed pointer as rft_store_get. */
int node__raw_get(struct node_core *core, const char *key, const uint8_t **val, size_t *len);
/* Barrier read of a full storage key; *val cf_malloc'd. */
int node__get(struct node_core *core, const char *key, uint8_t **val, size_t *len);
/* Adds a barrier-encrypted put of a full storage key to a raft batch. */
int node__batch_put(struct node_core *core,
                    struct rft_batch *b,
                    const char *key,
                    const uint8_t *val,
                    size_t len);
/* Adds a barrier-encrypted put of j's compact JSON (the text is wiped after). */
int node__batch_put_json(struct node_core *core,
                         struct rft_batch *b,
                         const char *key,
                         const json_t *j);
/* Calls cb(arg, status) from the loop soon. */
void node__fail_later(struct node_core *core, node_write_cb cb, void *arg, int status);
/* Commits a raft batch; cb as node_write_commit. Takes ownership of b. */
void node__commit(struct node_core *core, struct rft_batch *b, node_write_cb cb, void *arg);

/* keyshares.c. Decodes a share (hex, else base64) and adds it. CF_EMALFORMED for neither
 * encoding, CF_EINVAL for a length that no share has, CF_EEXIST for a share already entered
 * (not added), CF_ETOOBIG past NODE_MAX_SHARES. */
int node__shares_add(struct node_share_set *set, const char *text);
/* Takes the request's "key" (and, when nonce is not NULL, checks its "nonce") and adds the
 * share. On a refusal it answers the request (400 with Vault's texts; invalid_msg for a share of
 * an impossible length) and returns false. A share given twice is accepted and not counted. */
bool node__shares_take(struct node_share_set *set,
                       struct node_request *req,
                       const char *nonce,
                       const char *invalid_msg);
/* The key the shares make (one share: the key itself). CF_EINVAL for mixed lengths or
 * coordinates; wrong shares give a wrong key, which node__key_verify detects. */
int node__shares_combine(const struct node_share_set *set, struct cf_secret **out);
/* Splits a key into n shares of threshold t (n = 1: the key itself) as arrays of hex and of
 * base64 strings (new references). */
int node__shares_split(const struct cf_secret *key,
                       unsigned n,
                       unsigned t,
                       json_t **hex_out,
                       json_t **b64_out);
/* Forgets every share (cleansed) and the nonce. */
void node__shares_reset(struct node_share_set *set);
/* CF_OK when key equals the unseal key (recovery false; the node must be unsealed) or the
 * recovery key kept by the seal (recovery true); CF_EAUTH when it does not; other errors with
 * errmsg. Constant-time comparison. */
int node__key_verify(struct node_core *core,
                     bool recovery,
                     const struct cf_secret *key,
                     char errmsg[CF_ERRMSG_SIZE]);

/* genroot.c: sys/generate-root/{attempt,update}; true when it handled the request. */
bool node__genroot_handle(struct node_core *core, struct node_request *req);
/* Ends a root generation in progress (sys/seal does). */
void node__genroot_cancel(struct node_core *core);
/* rekey.c: sys/rekey/{init,update} (unseal shares) and sys/rekey-recovery-key/{init,update}. */
bool node__rekey_handle(struct node_core *core, struct node_request *req);
/* Ends a rekey in progress (sys/seal does). */
void node__rekey_cancel(struct node_core *core);

/* sealwrap.c: values of seal_wrap mounts. Wraps val, to be stored at full key `key`, under the
 * auto-unseal seal; *out cf_malloc'd. CF_ESEALED without an auto-unseal seal, CF_EIO when the
 * seal fails. */
int node__seal_wrap(struct node_core *core,
                    const char *key,
                    const uint8_t *val,
                    size_t len,
                    uint8_t **out,
                    size_t *out_len);
/* Reverses node__seal_wrap; CF_ECORRUPT for a value that is not wrapped, damaged or moved. */
int node__seal_unwrap(struct node_core *core,
                      const char *key,
                      const uint8_t *val,
                      size_t len,
                      uint8_t **out,
                      size_t *out_len);
/* Forgets every data key (sealing does). */
void node__seal_wrap_forget(struct node_core *core);

/* migrate.c: seal migration. The number of shares a migration needs (unseal shares from
 * Shamir, recovery shares from an auto-unseal seal). */
unsigned node__migrate_threshold(const struct node_core *core);
/* Migrates with the combined key and answers req with status_fn's object, or an error (the
 * node is then sealed and storage unchanged). */
void node__migrate(struct node_core *core,
                   struct node_request *req,
                   const struct cf_secret *key,
                   json_t *(*status_fn)(struct node_core *core));

/* autounseal.c: the seal health probe (a timer while the core lives; auto-unseal seals). */
int node__seal_health_start(struct node_core *core);
void node__seal_health_stop(struct node_core *core);
/* core.c: seals now when nothing is in flight, else once the last in-flight request finishes;
 * new requests get 503 meanwhile. */
void node__seal_when_idle(struct node_core *core);

/* autounseal.c: keys kept by an auto-unseal seal (core->auto_seal). */
#define NODE_KEY_SEAL_UNSEAL_KEY "core/seal-unseal-key" /* raw: unseal key under the seal */
#define NODE_KEY_RECOVERY_KEY "core/recovery-key"       /* raw: recovery key under the seal */
/* Decrypts a key the seal keeps in storage (NODE_KEY_SEAL_UNSEAL_KEY, NODE_KEY_RECOVERY_KEY)
 * with `seal`; *out is a new secret. */
int node__seal_kept_key(struct node_core *core,
                        struct node_seal *seal,
                        const char *name,
                        struct cf_secret **out,
                        char errmsg[CF_ERRMSG_SIZE]);
/* Adds the write of such a key, encrypted by `seal` with its name as AAD. */
int node__seal_kept_key_put(struct node_seal *seal,
                            struct rft_batch *b,
                            const char *name,
                            const struct cf_secret *v,
                            char errmsg[CF_ERRMSG_SIZE]);
/* Unseals with the unseal key the seal keeps, when the node is initialized and sealed and the
 * seal is ready. CF_OK with errmsg empty when there is nothing to do (no seal, not ready, not
 * sealed); otherwise errmsg says what failed and the node stays sealed. */
int node__auto_unseal(struct node_core *core, char errmsg[CF_ERRMSG_SIZE]);
/* For init under an auto-unseal seal: adds the unseal key and a new recovery key, both
 * encrypted by the seal, to the batch. *recovery_key receives the recovery key to split. */
int node__auto_seal_init_put(struct node_core *core,
                             struct rft_batch *b,
                             const struct cf_secret *unseal_key,
                             struct cf_secret **recovery_key,
                             char errmsg[CF_ERRMSG_SIZE]);

/* seal_api.c: sys/tools/seal-key; true when it handled the request. */
bool node__seal_api_handle(struct node_core *core, struct node_request *req, bool sudo);

/* metrics_api.c: GET sys/metrics (JSON, or ?format=prometheus). */
bool node__metrics_api_handle(struct node_core *core, struct node_request *req);

/* raw_api.c: sys/raw reads when the config enables raw_storage_endpoint. */
bool node__raw_api_handle(struct node_core *core, struct node_request *req);
/* lease_api.c: sys/leases/..., sys/renew, sys/revoke... */
bool node__lease_api_handle(struct node_core *core, struct node_request *req);

/* join.c: unseals a joined node once its log caught up (no-op without such a join). */
int node__join_finish(struct node_core *core, char errmsg[CF_ERRMSG_SIZE]);
/* core.c: re-evaluates the HA role after a raft or seal change: a node that became active (or
 * stopped being active) reloads its state for the new role once idle. */
void node__ha_update(struct node_core *core);

/* core.c: the versions of the stored tables an unsealed node keeps in memory (keyring, mount
 * tables, audit table); a standby reloads when the active node changed one. */
void node__state_versions(struct node_core *core, uint64_t out[4]);

/* lifecycle.c: answers req with the seal status (200). */
void node__lifecycle_seal_status(struct node_core *core, struct node_request *req);
/* lifecycle.c: the bare-JSON sys endpoints. Returns true when it handled the request. */
bool node__lifecycle_handle(struct node_core *core, struct node_request *req);
/* Drops every key and mount (the seal itself). */
void node__seal_now(struct node_core *core);
/* Unseals with a combined key; CF_EAUTH when the key is wrong. */
int node__unseal_with_key(struct node_core *core,
                          const uint8_t *key,
                          size_t len,
                          char errmsg[CF_ERRMSG_SIZE]);
struct node_init_params
{
    unsigned shares; /* Shamir: the unseal key's shares; ignored under an auto-unseal seal */
    unsigned threshold;
    unsigned recovery_shares; /* auto-unseal seals: the recovery key's shares */
    unsigned recovery_threshold;
    const char *root_token_id; /* NULL = random */
};
/* Initializes and calls cb with sys/init's response object (keys, keys_base64, recovery_keys,
 * recovery_keys_base64 under an auto-unseal seal, root_token; borrowed), or an error. Under an
 * auto-unseal seal the node is unsealed when cb runs; under Shamir it is sealed. */
typedef void (*node_init_cb)(struct node_core *core,
                             void *arg,
                             int status,
                             json_t *result,
                             const char *errmsg);
void node__initialize(struct node_core *core,
                      const struct node_init_params *p,
                      node_init_cb cb,
                      void *arg);

/* core.c */
/* For the sys/internal/ui/mounts endpoints: true when the request's caller (authenticated by
 * the pipeline) may see mount_path: any capability on it or below it (Vault's hasMountAccess).
 * False for a request without a token. */
bool node__caller_mount_access(struct node_core *core,
                               const struct node_request *req,
                               const char *mount_path);
/* True when token names a live token whose policies allow sudo on path (root included). */
bool node__token_sudo(struct node_core *core, const char *token, const char *path);

/* mount.c */
#define NODE_KEY_LOCAL_MOUNTS "core/local-mounts" /* barrier: local (local:true) mount table */
#define NODE_SYSTEM_LEASE_S 2764800               /* 768h: the system default and max lease TTL */
/* Builds the default mount table JSON (sys is implicit): cubbyhole/, and kv v1 at secret/ if
 * asked. NULL on OOM. */
json_t *node__mounts_default(struct node_core *core, bool with_kv);
/* Instantiates the mounts from the stored tables core/mounts and core/local-mounts (at
 * unseal). A table without cubbyhole/ gets one, and entries stored in the wrong table move;
 * either change is written back in the background. */
int node__mounts_load(struct node_core *core, char errmsg[CF_ERRMSG_SIZE]);
void node__mounts_unload(struct node_core *core);
/* Longest-prefix match of path against the mount table; NULL when none. */
struct node_mount *node__mount_match(struct node_core *core, const char *path);
/* The mount whose path is exactly path ("secret/"), or NULL. */
struct node_mount *node__mount_find(struct node_core *core, const char *path);
/* The mount with this uuid, or NULL. */
struct node_mount *node__mount_find_uuid(struct node_core *core, const char *uuid);
/* The cubbyhole mount (NULL while sealed). */
struct node_mount *node__mount_cubbyhole(struct node_core *core);
/* The engine registered for a type, or NULL. */
const struct node_engine_ops *node__engine_find(struct node_core *core, const char *type);
/* Fresh identifiers for a new mount of type: a uuid and an accessor "<type>_<8 hex>" that no
 * live mount uses. CF_ECRYPTO when the RNG fails. */
int node__mount_ids(struct node_core *core, const char *type, char uuid[37], char accessor[64]);
/* The effective lease TTLs of a mount in seconds: the mount's own, or the system default
 * (NODE_SYSTEM_LEASE_S) where the table holds 0. */
void node__mount_ttls(const struct node_core *core,
                      const struct node_mount *m,
                      int64_t *def_s,
                      int64_t *max_s);
/* The mount's config object (borrowed; see struct node_mount), for the audit code. */
const json_t *node__mount_config(const struct node_mount *m);
/* Builds a detached mount (engine instance included) from a stored-form entry. CF_ECORRUPT
 * for a bad entry, the engine's code (errmsg set) when it refuses the options, CF_ENOMEM. */
int node__mount_new(struct node_core *core,
                    const json_t *entry,
                    struct node_mount **out,
                    char errmsg[CF_ERRMSG_SIZE]);
/* Destroys the engine instance and frees; NULL-safe. The mount must not be in the list. */
void node__mount_free(struct node_mount *m);
/* Links a detached mount into the table (kept ordered by descending path length). */
void node__mount_insert(struct node_core *core, struct node_mount *m);
/* Unlinks a mount from the table (the caller frees it). */
void node__mount_unlink(struct node_core *core, struct node_mount *m);
/* The stored form of a mount: {path,type,uuid,accessor,description,config,options,local,
 * seal_wrap,external_entropy_access}. NULL on OOM. */
json_t *node__mount_entry_json(const struct node_mount *m);
/* The API form of a mount (sys/mounts values). NULL on OOM. */
json_t *node__mount_info_json(const struct node_mount *m);
/* Adds to b a conditional put of one mount table (local or replicated): every live mount of
 * that class except `without`, plus `extra` (a stored-form entry) when not NULL. The put holds
 * only if the table is unchanged since this call (CF_ECONFLICT at commit otherwise). */
int node__mount_table_put(struct node_core *core,
                          struct rft_batch *b,
                          bool local,
                          const struct node_mount *without,
                          const json_t *extra);

/* mount_api.c: sys/mounts, sys/remount, sys/internal/ui/mounts. Returns false when the path
 * is not one of these; else it answers the request (possibly later). */
bool node__mount_api_handle(struct node_core *core, struct node_request *req);

#endif
