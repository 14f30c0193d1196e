/*
 * Node-private cluster helpers (node/cluster.c, node/join.c, node/cluster_api.c): the cluster
 * CA and node certificates, member records, the active node's record, joining. Nothing outside
 * node/ includes this header; the public face is in node/core.h (node_core_leader, ...).
 */
#ifndef CF_NODE_CLUSTER_H_
#define CF_NODE_CLUSTER_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/err.h"
#include "node/core.h"

struct node_core;
struct node_request;
struct rft_batch;

#define NODE_KEY_CLUSTER_CA "core/cluster/ca"               /* barrier: {"cert","key"} PEM */
#define NODE_KEY_CLUSTER_ACTIVE "core/cluster/active"       /* raw JSON: the active node */
#define NODE_KEY_CLUSTER_AUTOPILOT "core/cluster/autopilot" /* raw JSON: autopilot config */
#define NODE_PREFIX_CLUSTER_MEMBERS "core/cluster/members/" /* raw JSON per node id */
#define NODE_PREFIX_CLUSTER_REMOVED "core/cluster/removed/" /* raw: removed node ids */

/* cluster.c */
/* Loads this node's cluster credentials from the data dir into the network (if any). */
int node__cluster_open(struct node_core *core, char errmsg[CF_ERRMSG_SIZE]);
/* Sets the network's credentials and keeps them in the data dir. */
int node__cluster_save_creds(struct node_core *core,
                             const char *ca,
                             const char *cert,
                             const char *key,
                             char errmsg[CF_ERRMSG_SIZE]);
/* The data dir belongs to a node that joined a cluster (its raft may still be empty). */
bool node__cluster_joined(const struct node_core *core);
int node__cluster_mark_joined(struct node_core *core, char errmsg[CF_ERRMSG_SIZE]);
/* For sys/init: a new cluster CA (barrier-encrypted), this node's certificate (kept in the data
 * dir and handed to the network) and its member record. */
int node__cluster_init_put(struct node_core *core,
                           struct rft_batch *b,
                           char errmsg[CF_ERRMSG_SIZE]);
/* Signs a joining node's CSR with the stored CA; *cert and *ca_cert are cf_malloc'd PEM. */
int node__cluster_sign(struct node_core *core,
                       const char *csr,
                       const char *node_id,
                       char **cert,
                       char **ca_cert,
                       char errmsg[CF_ERRMSG_SIZE]);
/* Adds a member record {"node_id","api_addr","cluster_addr","non_voter","version",
 * "entry_format"}: the build version the node reported and the highest raft entry format it
 * knows (1 while unknown). */
int node__cluster_member_put(struct rft_batch *b,
                             const char *node_id,
                             const char *api_addr,
                             const char *cluster_addr,
                             bool non_voter,
                             const char *version,
                             uint64_t entry_format);
/* A member record (new reference) or NULL. */
json_t *node__cluster_member(struct node_core *core, const char *node_id);
json_t *node__cluster_member_by_raft_id(struct node_core *core, uint64_t raft_id);
/* The stored active-node record (new reference) or NULL. */
json_t *node__cluster_active(struct node_core *core);
/* Writes this node's active record (after it became active). */
void node__cluster_announce_active(struct node_core *core);
/* Fills out with the active node when one is known (this node, or the raft leader whose active
 * record is stored); false when none is. */
bool node__cluster_leader_info(struct node_core *core, struct node_leader_info *out);

/* cluster_report.c: version reports and the entry-format gate (rolling upgrades). */
/* Registers the report protocol on the cluster port and starts the report timer. */
int node__report_start(struct node_core *core);
void node__report_stop(struct node_core *core);
/* Active node: writes new entries in the highest format every configured server knows. */
void node__cluster_gate(struct node_core *core);
/* The highest entry format a member record says its node knows (1 when it does not say). */
uint64_t node__member_entry_format(json_t *m);

/* snapshot.c: sys/storage/raft/snapshot (save, restore) and snapshot-force, on the active node;
 * true when it handled the request. */
bool node__snapshot_handle(struct node_core *core, struct node_request *req, bool sudo);

/* join.c: the unauthenticated raft join endpoints (sys/storage/raft/join, bootstrap/challenge,
 * bootstrap/answer) and the unseal of a node that joined; true when it handled the request. */
bool node__join_handle(struct node_core *core, struct node_request *req);
/* sys/unseal while a join waits for the unseal key (Shamir). */
void node__join_unseal(struct node_core *core, struct node_request *req);
/* Starts the retry_join loop when the node is fresh and the config has retry_join blocks. */
void node__join_start_retry(struct node_core *core);
/* Frees join and challenge state (closing). */
void node__join_free(struct node_core *core);

/* cluster_api.c: sys/storage/raft/{configuration,remove-peer,autopilot/...}, sys/step-down,
 * sys/ha-status; true when it handled the request. */
bool node__cluster_api_handle(struct node_core *core, struct node_request *req, bool sudo);
/* autopilot: started when this node becomes active, stopped when it stops being active. */
void node__autopilot_start(struct node_core *core);
void node__autopilot_stop(struct node_core *core);

#endif
