/*
 * The node core: seal state, barrier, storage, root token and mount table of one node, and the
 * request pipeline of DESIGN.md (sealed? -> token -> route -> engine -> storage -> response).
 *
 * Lifecycle: node_core_new() opens the raft data dir; node_core_start() starts raft when the
 * dir is already bootstrapped and calls ready_cb once the log has been replayed (at once for a
 * fresh dir, which is bootstrapped by sys/init). Requests enter through node_core_handle() and
 * complete through their done_cb. node_core_close() cancels what is pending and frees all.
 */
#ifndef CF_NODE_CORE_H_
#define CF_NODE_CORE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

struct uv_loop_s;
struct node_core;
struct node_request;
struct node_engine_ops;

struct node_seal;
struct rft_net;
struct raft_uv_transport;

#define NODE_MAX_RETRY_JOIN 8

/* A retry_join block of the storage stanza. */
struct node_retry_join
{
    const char *leader_api_addr; /* borrowed */
    const char *leader_ca_cert;  /* PEM text (read from leader_ca_cert_file), or NULL */
    const char *leader_tls_servername;
};

struct node_core_config
{
    const char *storage_path;   /* raft data dir; borrowed */
    const char *node_id;        /* borrowed */
    const char *api_addr;       /* advertised API URL; borrowed */
    const char *cluster_addr;   /* advertised cluster URL or host:port; borrowed */
    bool mount_kv_at_secret;    /* mount kv v1 at secret/ at init (until sys/mounts lands) */
    bool dev;                   /* dev mode (sys/tools/seal-key without sudo) */
    bool raw_storage_endpoint;  /* sys/raw reads (config raw_storage_endpoint) */
    struct node_seal *seal;     /* auto-unseal seal (node/seal.h), owned by the core from
                                   node_core_new on, even when it fails; NULL = Shamir */
    struct node_seal *old_seal; /* a disabled auto-unseal seal (migration), owned likewise */
    const char *old_seal_type;  /* type of the disabled seal block, NULL when none */
    /* Clustering (NULL net: a node that never opens the cluster port, as in dev mode). */
    struct rft_net *net;                 /* borrowed; the mutual-TLS cluster port */
    struct raft_uv_transport *transport; /* borrowed; raft over net */
    struct node_retry_join retry_join[NODE_MAX_RETRY_JOIN];
    size_t n_retry_join;
    bool retry_join_as_non_voter;
    unsigned snapshot_threshold; /* 0 = the store's adaptive default (raft/store.h) */
    unsigned trailing_logs;      /* 0 = the store's default */
};

int node_core_new(struct uv_loop_s *loop,
                  const struct node_core_config *cfg,
                  struct node_core **out,
                  char errmsg[CF_ERRMSG_SIZE]);

/* Registers an engine type (the composition root registers every built-in engine). */
int node_core_register_engine(struct node_core *core, const struct node_engine_ops *ops);

typedef void (*node_core_ready_cb)(void *arg, int status, const char *errmsg);

/* Starts storage. ready_cb fires once (never inside this call) when requests may be served. */
int node_core_start(struct node_core *core,
                    node_core_ready_cb ready_cb,
                    void *arg,
                    char errmsg[CF_ERRMSG_SIZE]);

/* Handles one request; req->done_cb fires exactly once (possibly inside this call). */
void node_core_handle(struct node_core *core, struct node_request *req);

/* Dev mode: initializes with one share (root token id from root_token_id, or random when NULL)
 * and unseals. cb receives the unseal key (base64) and the root token, or an error. */
typedef void (*node_core_dev_cb)(void *arg,
                                 int status,
                                 const char *unseal_key_b64,
                                 const char *root_token,
                                 const char *errmsg);
void node_core_dev_init(struct node_core *core,
                        const char *root_token_id,
                        node_core_dev_cb cb,
                        void *arg);

/* The active node as this node knows it. */
struct node_leader_info
{
    bool is_self;
    char node_id[128];
    char api_addr[256];
    char cluster_addr[256];
    int64_t since; /* Unix seconds it became active (0 = unknown) */
};
/* True when an active node is known (this node or another); fills out. */
bool node_core_leader(struct node_core *core, struct node_leader_info *out);
/* True while this node is unsealed and the active node, its state loaded for that role. */
bool node_core_is_active(const struct node_core *core);
/* The raft index applied on this node (X-Vault-Index). */
uint64_t node_core_applied_index(const struct node_core *core);

/* X-Vault-Index: a token naming this cluster and the index this node has applied
 * (base64 of "v1:<cluster id>:<index>"); "" when sealed. */
#define NODE_STATE_TOKEN_SIZE 128
void node_core_state_token(struct node_core *core, char out[NODE_STATE_TOKEN_SIZE]);
/* The index of a state token this cluster made; CF_EINVAL for anything else. */
int node_core_state_index(struct node_core *core, const char *token, uint64_t *index);
/* Calls cb(arg, CF_OK) from the loop once this node has applied `index`, or
 * cb(arg, CF_ETIMEDOUT) after timeout_ms. */
void node_core_wait_applied(struct node_core *core,
                            uint64_t index,
                            unsigned timeout_ms,
                            void (*cb)(void *arg, int status),
                            void *arg);

/* Closes storage and frees the core; cb fires when done. NULL-safe. */
void node_core_close(struct node_core *core, void (*cb)(void *arg), void *arg);

#endif
