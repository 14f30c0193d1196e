/*
 * The engine interface: all that a secrets engine (engines/kv, engines/sys, later PKI ...) sees
 * of the node. A request arrives already authenticated and routed to the engine's mount; the
 * engine reads through its storage view (local, synchronous, decrypted by the barrier), writes
 * through batches that complete asynchronously once committed, and finishes by calling
 * node_request_done() exactly once, possibly after asynchronous steps, never before its writes
 * have been applied.
 */
#ifndef CF_NODE_ENGINE_H_
#define CF_NODE_ENGINE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/err.h"

struct node_core;
struct node_view;
struct node_write;
struct node_request;

enum node_op {
    NODE_OP_READ,
    NODE_OP_CREATE,
    NODE_OP_UPDATE,
    NODE_OP_DELETE,
    NODE_OP_LIST,
    NODE_OP_PATCH,
};

/* Name of an operation as Vault spells it ("read", "update", ...). */
const char *node_op_name(enum node_op op);

/* A response. Fields left NULL/0 are encoded as Vault's nulls and zeros. */
struct node_response
{
    int status;             /* 0 = 200 with a body, 204 without */
    json_t *data;           /* owned; NULL -> "data": null */
    json_t *warnings;       /* owned array of strings, or NULL */
    json_t *auth;           /* owned auth block, or NULL */
    json_t *errors;         /* owned array of strings; non-NULL makes this an error response */
    char *lease_id;         /* owned; NULL -> "" */
    int64_t lease_duration; /* seconds */
    bool renewable;
    /* Set by an engine whose secret has a lifetime: the core stores a lease with this data
     * (handed back to the engine's revoke_secret) and lease_duration, then fills lease_id. */
    json_t *lease_secret;   /* owned; non-NULL = make a lease */
    json_t *bare;           /* owned; non-envelope JSON body (sys lifecycle endpoints) */
    char *raw_content_type; /* owned; with raw_body: body written verbatim */
    uint8_t *raw_body;      /* owned */
    size_t raw_len;
    json_t *wrap_info;      /* owned; set on a wrapped response (core.md 6.1) */
    bool inject_top_level;  /* copy data's keys to the top level (core.md 1.4) */
    const char *mount_type; /* static string, e.g. "kv"; NULL -> "" */
    int64_t last_modified;  /* Unix seconds; > 0 adds a Last-Modified header */
    /* Set by the core on a standby: this node may not serve the request; the HTTP layer
     * forwards it to the active node (or answers 307, or 503 when none is known). */
    bool forward;
};

/* A new empty response; NULL on OOM. */
struct node_response *node_response_new(void);
void node_response_free(struct node_response *resp);
/* An error response {"errors":[msg]} with the given HTTP status; msg NULL -> "errors":[].
 * Returns NULL only on OOM. */
struct node_response *node_response_error(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 404 {"errors":[]}: what Vault answers for a read of a missing item. */
struct node_response *node_response_not_found(void);
/* Envelope response with data (takes ownership of data, which may be NULL). */
struct node_response *node_response_data(json_t *data);
/* Envelope response of a system endpoint whose data keys Vault also copies to the top level
 * (core.md 1.4); mount_type "system". Takes ownership of data. */
struct node_response *node_response_injected(json_t *data);
/* True when an envelope response carries nothing to say (Vault answers 204). */
bool node_response_is_empty(const struct node_response *resp);
/* The Vault JSON envelope of a non-error, non-raw, non-bare response (core.md 1.4): every key
 * present, top-level injection when asked. request_id NULL -> "". NULL on OOM. */
json_t *node_response_envelope(const struct node_response *resp, const char *request_id);

struct node_request
{
    enum node_op op;
    char *path;   /* owned; after /v1/, no leading '/', LIST paths end in '/' */
    json_t *data; /* owned; request body or query parameters; always an object */
    char *token;  /* owned; client token or NULL */
    char request_id[37];
    char *remote_addr;         /* owned, may be NULL */
    bool wants_body;           /* false for HEAD */
    int64_t wrap_ttl_s;        /* X-Vault-Wrap-TTL in seconds; 0 = no wrapping */
    int64_t if_modified_since; /* If-Modified-Since in Unix seconds; 0 = absent or unreadable */
    int64_t start_ns;          /* CLOCK_MONOTONIC when the request was made (metrics) */
    /* The body as sent, for the binary request types Vault passes through untouched
     * (application/ocsp-request); NULL otherwise (the body is in data). */
    uint8_t *raw_body; /* owned */
    size_t raw_len;
    /* Set by the router before the engine sees the request. */
    const char *mount_path; /* borrowed: "secret/" */
    const char *rel_path;   /* borrowed: path inside the mount, "foo/bar" */
    struct node_view *view; /* borrowed: the mount's storage view */
    struct node_core *core; /* borrowed */
    /* Set by the core from the client token before routing. */
    const char *cubbyhole_id;      /* borrowed: the token's cubbyhole namespace, NULL if none */
    int64_t mount_default_lease_s; /* the mount's effective default lease TTL (seconds) */
    int64_t mount_max_lease_s;     /* the mount's effective max lease TTL (seconds) */
    /* Completion, set by whoever submitted the request (api/route.c). */
    void (*done_cb)(struct node_request *req, struct node_response *resp);
    void *done_arg;
    /* private: the submitter's done_cb while the core tracks a routed request */
    void (*outer_done_cb)(struct node_request *req, struct node_response *resp);
    void *core_priv; /* private: the core's per-request state */
};

/* Allocates a request with a fresh request_id; takes ownership of path and data (data NULL ->
 * empty object). NULL on OOM (path and data are freed). */
struct node_request *node_request_new(enum node_op op, char *path, json_t *data);
void node_request_free(struct node_request *req);

/* Finishes a request: hands resp (owned) to done_cb. resp NULL means out of memory (500). */
void node_request_done(struct node_request *req, struct node_response *resp);

/* Engines ------------------------------------------------------------------------------ */

/* Completion of an asynchronous write: status CF_OK or an error. */
typedef void (*node_write_cb)(void *arg, int status);

struct node_engine_ops
{
    const char *type; /* "kv", "system", ... */
    /* Creates the engine instance for one mount. options: the mount's options object (may be
     * NULL). */
    int (*create)(struct node_view *view,
                  const json_t *options,
                  void **state,
                  char errmsg[CF_ERRMSG_SIZE]);
    void (*destroy)(void *state);
    /* Handles a routed request; must end in node_request_done exactly once. */
    void (*handle)(void *state, struct node_request *req);
    /* Optional existence check (Vault's ExistenceCheck): sets *exists for a create/update
     * request so the ACL can tell "create" from "update". NULL: every write is an update. */
    /* Optional: true when a performance standby may serve this write request itself because it
     * writes nothing (PKI issue/sign on a no_store role). NULL: writes go to the active node.
     * Reads are always tried locally; any storage write a standby attempts sends the request to
     * the active node instead. */
    bool (*standby_ok)(void *state, const struct node_request *req);
    int (*exists)(void *state, struct node_request *req, bool *exists);
    /* Optional NULL-terminated list of paths (relative to the mount) served without a token,
     * as Vault's PathsSpecial.Unauthenticated: "ca" exact, "cert/" followed by "*" a prefix,
     * "issuer/+/pem" with
     * '+' standing for one path segment. No token or ACL check applies to them. */
    const char *const *unauth_paths;
    /* Optional NULL-terminated list of paths (same patterns) that need the sudo capability
     * besides the operation's own, as Vault's PathsSpecial.Root (PKI's root and
     * root/sign-self-issued). */
    const char *const *sudo_paths;
    /* Optional: revokes the secret of a lease this engine asked for (node_response
     * lease_secret), when the lease expires or is revoked. cb(arg, status) fires once, maybe
     * inside the call; CF_OK lets the core delete the lease. */
    void (*revoke_secret)(void *state, const json_t *secret, node_write_cb cb, void *arg);
};

/* True when rel_path matches one of the patterns above. */
bool node_engine_path_matches(const char *const *patterns, const char *rel_path);

/* Storage views ------------------------------------------------------------------------ */

/* Reads the value at key (relative to the view). *val is cf_malloc'd plaintext (the caller
 * frees it); CF_ENOTFOUND when absent; CF_ESEALED while sealed; CF_ECORRUPT/CF_EAUTH when the
 * stored bytes do not decrypt. */
int node_view_get(struct node_view *v, const char *key, uint8_t **val, size_t *len);

/* Lists one level below prefix (which is "" or ends in '/'): a new JSON array of names, with
 * sub-folders as "name/", sorted, no duplicates. */
int node_view_list(struct node_view *v, const char *prefix, json_t **keys);

/* The FSM version (raft index of the last write) of key, for caches of parsed values.
 * CF_ENOTFOUND when absent. */
int node_view_version(struct node_view *v, const char *key, uint64_t *version);

/* Visits, in byte order, the keys (relative to the view) under prefix that sort after `after`
 * (NULL = from the start), without reading values: fn returns 0 to go on, non-zero to stop
 * (that value is returned). Paged scans of large folders (certs/, revoked/) use this instead of
 * node_view_list. The key pointer is valid only during the call. */
typedef int (*node_view_visit_fn)(void *arg, const char *key);
int node_view_scan(struct node_view *v,
                   const char *prefix,
                   const char *after,
                   node_view_visit_fn fn,
                   void *arg);

/* Runs work(arg) on the worker pool (heavy crypto: key generation, signing, CRL building),
 * then after(arg, status) on the loop: status CF_OK, or an error when the work could not be
 * queued (then work was not run). work must not touch storage or any loop-owned state. */
void node_view_work(struct node_view *v,
                    void (*work)(void *arg),
                    void (*after)(void *arg, int status),
                    void *arg);

/* A repeating or one-shot timer on the node's loop, for engine schedulers (CRL rebuilds,
 * tidy slices). cb runs on the loop. Stop it with node_timer_stop (which frees it); a timer
 * must be stopped before its engine instance is destroyed. NULL on OOM. */
struct node_timer;
struct node_timer *node_view_timer(struct node_view *v,
                                   uint64_t timeout_ms,
                                   uint64_t repeat_ms,
                                   void (*cb)(void *arg),
                                   void *arg);
void node_timer_stop(struct node_timer *t);
/* True while this node may write (unsealed active node): schedulers skip their work otherwise. */
bool node_view_writable(struct node_view *v);

/* Starts a write batch on the view; NULL on OOM. Every op is applied atomically on commit. */
struct node_write *node_view_write(struct node_view *v);
/* Adds a put (the value is encrypted now, under its full storage key). */
int node_write_put(struct node_write *w, const char *key, const uint8_t *val, size_t len);
int node_write_delete(struct node_write *w, const char *key);
/* Deletes every key under prefix (relative to the view). */
int node_write_delete_prefix(struct node_write *w, const char *prefix);
/* Adds the lease of this request's secret to the batch (Vault's leased secrets), so that the
 * secret's own writes and its lease commit together or not at all. The secret is handed back
 * to the engine's revoke_secret hook; duration_s is the lease's TTL. After a successful commit
 * and response the core sets the response's lease_id and schedules the expiry (the engine sets
 * lease_duration, and not lease_secret). One per request: CF_EEXIST for a second, CF_ENOMEM;
 * a failure is also reported by the commit. */
int node_write_lease(struct node_write *w,
                     struct node_request *req,
                     json_t *secret,
                     int64_t duration_s);
/* Discards an uncommitted batch. */
void node_write_free(struct node_write *w);

/* Commits the batch (and frees it). cb fires exactly once, never inside this call: CF_OK after
 * the batch is applied locally, else an error (CF_ENOTLEADER, CF_ESEALED, CF_ECANCELED ...). */
void node_write_commit(struct node_write *w, node_write_cb cb, void *arg);

/* Core services for the system backend ------------------------------------------------ */

/* Adds a keyring term and persists the keyring; cb as for node_write_commit. */
void node_core_rotate(struct node_core *core, node_write_cb cb, void *arg);
/* {"term":N,"install_time":"RFC3339","encryptions":N} for sys/key-status; NULL on OOM. */
json_t *node_core_key_status(struct node_core *core);
/* The mount-table description for sys/mounts-like listings (a new object). */
json_t *node_core_mounts_json(struct node_core *core);

#endif
