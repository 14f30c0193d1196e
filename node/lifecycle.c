/*
 * The lifecycle endpoints that answer bare JSON (core.md section 2): sys/init, sys/seal-status,
 * sys/unseal, sys/seal, sys/health, sys/leader; and the init/unseal/seal mechanics behind them.
 *
 * Init on a fresh node bootstraps raft as a single voter, waits until this node leads, then
 * writes in one batch: the seal configuration (plaintext), the root key under the unseal key,
 * the keyring under the root key, the token salt, the root token entry, the cluster identity
 * and the mount table. The unseal key is split into Shamir shares (one share = the key itself).
 * Unseal collects shares (duplicates ignored), combines them at the threshold and opens the
 * barrier; a wrong combination resets the progress, as Vault does.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/json.h"
#include "lib/crypto.h"
#include "lib/shamir.h"
#include "node/barrier.h"
#include "node/audit_core.h"
#include "node/expire.h"
#include "node/policy_store.h"
#include "node/cluster.h"
#include "node/internal.h"
#include "node/token.h"

#define CF_LOG_MODULE "core"
#include "lib/log.h"

#define UNSEAL_KEY_LEN 32

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct node_response *bare(int status, json_t *body)
{
    struct node_response *resp = node_response_new();
    if (resp == NULL || body == NULL) {
        node_response_free(resp);
        json_decref(body);
        return NULL;
    }
    resp->status = status;
    resp->bare = body;
    return resp;
}

/* Seal status ------------------------------------------------------------------------- */

static void reset_unseal_progress(struct node_core *core)
{
    node__shares_reset(&core->unseal_shares);
}

static json_t *seal_status_json(struct node_core *core)
{
    bool init = node__initialized(core);
    /* Once initialized, the seal storage was made with (during a migration, the old one). */
    bool recovery = init ? strcmp(core->seal.type, "shamir") != 0 : core->auto_seal != NULL;
    const char *type = init              ? core->seal.type
                       : core->auto_seal ? core->auto_seal->ops->type
                                         : "shamir";
    unsigned t = recovery ? core->seal.recovery_threshold : core->seal.threshold;
    unsigned n = recovery ? core->seal.recovery_shares : core->seal.shares;
    json_t *j =
        json_pack("{s:s,s:b,s:b,s:i,s:i,s:i,s:s,s:s,s:s,s:b,s:b,s:s}", "type", type, "initialized",
                  init, "sealed", core->sealed, "t", init ? (int)t : 0, "n", init ? (int)n : 0,
                  "progress", (int)core->unseal_shares.n, "nonce", core->unseal_shares.nonce,
                  "version", COFFER_VERSION, "build_date", "2026-11-22T00:00:00Z", "migration",
                  core->migrating, "recovery_seal", recovery, "storage_type", "raft");
    if (j != NULL && recovery) {
        json_object_set_new(j, "recovery_seal_type", json_string("shamir"));
    }
    if (j != NULL && !core->sealed) {
        json_object_set_new(j, "cluster_name", json_string(core->cluster_name));
        json_object_set_new(j, "cluster_id", json_string(core->cluster_id));
    }
    return j;
}

void node__lifecycle_seal_status(struct node_core *core, struct node_request *req)
{
    node_request_done(req, bare(200, seal_status_json(core)));
}

/* Seal ---------------------------------------------------------------------------------- */

void node__seal_now(struct node_core *core)
{
    if (core->expire != NULL) {
        node__expire_stop(core->expire);
    }
    if (core->audit != NULL) {
        node__audit_unload(core);
    }
    node__policy_store_clear(core->policies);
    node__mounts_unload(core);
    if (core->barrier != NULL) {
        barrier_seal(core->barrier);
    }
    cf_cloak_free(core->unseal_key);
    core->unseal_key = NULL;
    cf_secret_free(core->token_salt);
    core->token_salt = NULL;
    node__token_cache_clear(core);
    reset_unseal_progress(core);
    node__genroot_cancel(core);
    node__rekey_cancel(core);
    node__seal_wrap_forget(core);
    if (!core->sealed) {
        CF_LOG(CF_LOG_INFO, "sealed");
    }
    core->sealed = true;
}

static void handle_seal(struct node_core *core, struct node_request *req)
{
    if (core->sealed) {
        node_request_done(req, node_response_error(503, "Vault is sealed"));
        return;
    }
    if (!node__token_sudo(core, req->token, "sys/seal")) {
        node_request_done(req, node_response_error(403, "permission denied"));
        return;
    }
    if (core->inflight > 0) {
        if (core->pending_seal != NULL) {
            node_request_done(req, node_response_error(400, "seal already in progress"));
            return;
        }
        core->pending_seal = req; /* answered once in-flight requests drain */
        return;
    }
    node__seal_now(core);
    node_request_done(req, node_response_new());
}

/* Unseal -------------------------------------------------------------------------------- */

static int load_after_unseal(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node__get(core, NODE_KEY_TOKEN_SALT, &val, &len);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "read token salt: %s", cf_strerror(rv));
        return rv;
    }
    core->token_salt = cf_secret_from(val, len);
    cf_cleanse(val, len);
    cf_free(val);
    if (core->token_salt == NULL) {
        return CF_ENOMEM;
    }
    rv = node__get(core, NODE_KEY_CLUSTER, &val, &len);
    if (rv == CF_OK) {
        json_t *j = json_loadb((const char *)val, len, 0, NULL);
        snprintf(core->cluster_name, sizeof(core->cluster_name), "%s",
                 json_string_value(json_object_get(j, "name")) ?: "");
        snprintf(core->cluster_id, sizeof(core->cluster_id), "%s",
                 json_string_value(json_object_get(j, "id")) ?: "");
        json_decref(j);
        cf_free(val);
    }
    rv = node__mounts_load(core, errmsg);
    if (rv == CF_OK && core->expire != NULL && rft_store_is_ready(core->store)) {
        /* Only the active node expires tokens; a standby starts when it becomes active. */
        rv = node__expire_start(core->expire);
        if (rv != CF_OK) {
            cf_errmsg_printf(errmsg, "load expiry schedule: %s", cf_strerror(rv));
            node__mounts_unload(core);
        }
    }
    if (rv == CF_OK && core->audit != NULL) {
        rv = node__audit_load(core, errmsg);
        if (rv != CF_OK) {
            node__expire_stop(core->expire);
            node__mounts_unload(core);
        }
    }
    return rv;
}

int node__unseal_with_key(struct node_core *core,
                          const uint8_t *key,
                          size_t len,
                          char errmsg[CF_ERRMSG_SIZE])
{
    const uint8_t *root;
    const uint8_t *ring;
    size_t root_len;
    size_t ring_len;
    if (node__raw_get(core, NODE_KEY_ROOT, &root, &root_len) != CF_OK ||
        node__raw_get(core, NODE_KEY_KEYRING, &ring, &ring_len) != CF_OK) {
        cf_errmsg_printf(errmsg, "stored keys are missing");
        return CF_ECORRUPT;
    }
    int rv = barrier_unseal(core->barrier, key, len, root, root_len, ring, ring_len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    rv = load_after_unseal(core, errmsg);
    if (rv != CF_OK) {
        node__seal_now(core);
        return rv;
    }
    core->unseal_key = cf_cloak_new(key, len);
    if (core->unseal_key == NULL) {
        node__seal_now(core);
        return CF_ENOMEM;
    }
    core->sealed = false;
    node__state_versions(core, core->loaded_versions);
    core->was_active = rft_store_is_ready(core->store);
    if (core->was_active) {
        core->active_since_ns = now_ns();
    }
    CF_LOG(CF_LOG_INFO, "unsealed cluster=%s role=%s", core->cluster_name,
           core->was_active ? "active" : "standby");
    node__ha_update(core);
    return CF_OK;
}

/* sys/unseal under an auto-unseal seal: a seal that takes its key from an operator (the static
 * seal's manual provider) gets it here, also before init; then the node unseals with the key the
 * seal keeps. Recovery keys do not unseal (they authorize generate-root and rekey). */
static void handle_auto_unseal(struct node_core *core, struct node_request *req, json_t *jkey)
{
    struct node_seal *seal = core->auto_seal;
    char errmsg[CF_ERRMSG_SIZE] = "";
    if (!seal->ops->ready(seal)) {
        if (seal->ops->provide_key == NULL) {
            node_request_done(req, node_response_error(500, "the seal is not available"));
            return;
        }
        if (!json_is_string(jkey) || json_string_length(jkey) == 0) {
            node_request_done(req, node_response_error(400,
                                                       "'key' must be specified in request "
                                                       "body as JSON, or 'reset' set to true"));
            return;
        }
        int rv = seal->ops->provide_key(seal, json_string_value(jkey), errmsg);
        if (rv != CF_OK) {
            node_request_done(req, node_response_error(rv == CF_EAUTH ? 400 : 500,
                                                       "unseal failed, invalid key: %s", errmsg));
            return;
        }
        CF_LOG(CF_LOG_INFO, "the seal key was provided through sys/unseal");
    }
    if (node__initialized(core) && core->sealed) {
        int rv = node__auto_unseal(core, errmsg);
        if (rv != CF_OK) {
            CF_LOG(CF_LOG_ERROR, "auto-unseal failed: %s", errmsg);
            node_request_done(req, node_response_error(500, "unseal failed: %s", errmsg));
            return;
        }
    }
    node_request_done(req, bare(200, seal_status_json(core)));
}

/* sys/unseal while a seal migration is pending: shares of the old seal, with migrate=true. */
static void handle_migrate_unseal(struct node_core *core, struct node_request *req)
{
    json_t *jreset = json_object_get(req->data, "reset");
    if (json_is_true(jreset)) {
        reset_unseal_progress(core);
        node_request_done(req, bare(200, seal_status_json(core)));
        return;
    }
    if (!json_is_true(json_object_get(req->data, "migrate"))) {
        node_request_done(req, node_response_error(400,
                                                   "a seal migration is pending: unseal with "
                                                   "\"migrate\": true and the shares of the "
                                                   "old seal"));
        return;
    }
    json_t *jkey = json_object_get(req->data, "key");
    if (!json_is_string(jkey) || json_string_length(jkey) == 0) {
        node_request_done(req, node_response_error(400,
                                                   "'key' must be specified in request "
                                                   "body as JSON, or 'reset' set to true"));
        return;
    }
    if (!node__shares_take(&core->unseal_shares, req, NULL, "unseal failed, invalid key")) {
        return;
    }
    if (core->unseal_shares.n < node__migrate_threshold(core)) {
        node_request_done(req, bare(200, seal_status_json(core)));
        return;
    }
    struct cf_secret *combined = NULL;
    int rv = node__shares_combine(&core->unseal_shares, &combined);
    reset_unseal_progress(core);
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(400, "unseal failed, invalid key"));
        return;
    }
    node__migrate(core, req, combined, seal_status_json);
    cf_secret_free(combined);
}

static void handle_unseal(struct node_core *core, struct node_request *req)
{
    if (core->migrating && core->sealed) {
        handle_migrate_unseal(core, req);
        return;
    }
    if (core->auto_seal != NULL) {
        json_t *jreset = json_object_get(req->data, "reset");
        if (jreset != NULL && !json_is_boolean(jreset)) {
            node_request_done(req, node_response_error(400, "'reset' must be a boolean"));
            return;
        }
        if (json_is_true(jreset)) {
            node_request_done(req, bare(200, seal_status_json(core)));
            return;
        }
        handle_auto_unseal(core, req, json_object_get(req->data, "key"));
        return;
    }
    if (core->join != NULL && core->sealed) {
        node__join_unseal(core, req);
        return;
    }
    if (!node__initialized(core)) {
        node_request_done(req, node_response_error(400, "Vault is not initialized"));
        return;
    }
    json_t *jreset = json_object_get(req->data, "reset");
    json_t *jkey = json_object_get(req->data, "key");
    if (jreset != NULL && !json_is_boolean(jreset)) {
        node_request_done(req, node_response_error(400, "'reset' must be a boolean"));
        return;
    }
    if (json_is_true(jreset)) {
        if (!core->sealed) {
            node_request_done(req, node_response_error(400, "vault is unsealed"));
            return;
        }
        reset_unseal_progress(core);
        node_request_done(req, bare(200, seal_status_json(core)));
        return;
    }
    if (jkey == NULL || (json_is_string(jkey) && json_string_length(jkey) == 0)) {
        node_request_done(req, node_response_error(400,
                                                   "'key' must be specified in request "
                                                   "body as JSON, or 'reset' set to true"));
        return;
    }
    if (!json_is_string(jkey)) {
        node_request_done(req, node_response_error(400, "'key' must be a string"));
        return;
    }
    if (!core->sealed) {
        node_request_done(req, bare(200, seal_status_json(core)));
        return;
    }
    if (!node__shares_take(&core->unseal_shares, req, NULL, "unseal failed, invalid key")) {
        return;
    }
    if (core->unseal_shares.n < core->seal.threshold) {
        node_request_done(req, bare(200, seal_status_json(core)));
        return;
    }
    struct cf_secret *combined = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = node__shares_combine(&core->unseal_shares, &combined);
    reset_unseal_progress(core);
    if (rv == CF_OK) {
        rv = node__unseal_with_key(core, combined->data, combined->len, errmsg);
    }
    cf_secret_free(combined);
    if (rv == CF_EAUTH || rv == CF_EINVAL) {
        node_request_done(req, node_response_error(400, "unseal failed, invalid key"));
        return;
    }
    if (rv != CF_OK) {
        CF_LOG(CF_LOG_ERROR, "unseal failed: %s", errmsg);
        node_request_done(req, node_response_error(500, "unseal failed: %s", errmsg));
        return;
    }
    node_request_done(req, bare(200, seal_status_json(core)));
}

/* Init ---------------------------------------------------------------------------------- */

struct init_op
{
    struct node_core *core;
    unsigned shares;
    unsigned threshold;
    unsigned recovery_shares; /* auto-unseal seals */
    unsigned recovery_threshold;
    char root_token[129];
    struct cf_secret *unseal_key;
    struct cf_secret *recovery_key; /* auto-unseal seals, once the batch is built */
    node_init_cb cb;
    void *arg;
};

static void init_op_free(struct init_op *op)
{
    cf_secret_free(op->unseal_key);
    cf_secret_free(op->recovery_key);
    cf_cleanse(op->root_token, sizeof(op->root_token));
    cf_free(op);
}

static void init_fail(struct init_op *op, int status, const char *msg)
{
    struct node_core *core = op->core;
    core->initializing = false;
    barrier_seal(core->barrier);
    op->cb(core, op->arg, status, NULL, msg);
    init_op_free(op);
}

static void init_committed_cb(void *arg, int status)
{
    struct init_op *op = arg;
    struct node_core *core = op->core;
    if (status != CF_OK) {
        init_fail(op, status, "write the initial state to storage");
        return;
    }
    node__load_seal_config(core);
    json_t *hex = NULL;
    json_t *b64 = NULL;
    json_t *rhex = NULL;
    json_t *rb64 = NULL;
    json_t *result = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "split the keys";
    bool recovery = op->recovery_key != NULL;
    int rv = recovery ? node__shares_split(op->recovery_key, op->recovery_shares,
                                           op->recovery_threshold, &rhex, &rb64)
                      : node__shares_split(op->unseal_key, op->shares, op->threshold, &hex, &b64);
    core->initializing = false;
    /* Shamir: the node stays sealed after init; an auto-unseal seal unseals it at once. */
    barrier_seal(core->barrier);
    if (rv == CF_OK && recovery) {
        hex = json_array();
        b64 = json_array();
        rv = hex && b64
                 ? node__unseal_with_key(core, op->unseal_key->data, op->unseal_key->len, errmsg)
                 : CF_ENOMEM;
    }
    if (rv == CF_OK) {
        result = json_pack("{s:O,s:O,s:s}", "keys", hex, "keys_base64", b64, "root_token",
                           op->root_token);
        rv = result ? CF_OK : CF_ENOMEM;
    }
    if (rv == CF_OK && recovery) {
        json_object_set(result, "recovery_keys", rhex);
        json_object_set(result, "recovery_keys_base64", rb64);
    }
    if (rv != CF_OK) {
        op->cb(core, op->arg, rv, NULL, errmsg);
    } else {
        if (recovery) {
            CF_LOG(CF_LOG_INFO, "initialized seal=%s recovery_shares=%u recovery_threshold=%u",
                   core->seal.type, op->recovery_shares, op->recovery_threshold);
        } else {
            CF_LOG(CF_LOG_INFO, "initialized shares=%u threshold=%u", op->shares, op->threshold);
        }
        op->cb(core, op->arg, CF_OK, result, NULL);
    }
    json_decref(result);
    json_decref(hex);
    json_decref(b64);
    json_decref(rhex);
    json_decref(rb64);
    init_op_free(op);
}

/* Puts j (a new reference, consumed; NULL = out of memory). */
static int put_json(struct node_core *core, struct rft_batch *b, const char *key, json_t *j)
{
    int rv = node__batch_put_json(core, b, key, j);
    json_decref(j);
    return rv;
}

static int build_init_batch(struct init_op *op, struct rft_batch *b, char *errmsg)
{
    struct node_core *core = op->core;
    uint8_t *blob = NULL;
    size_t len = 0;
    int rv = barrier_generate(core->barrier, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    struct node_seal *seal = core->auto_seal;
    struct node_seal_config sc = {
        .shares = op->shares,
        .threshold = op->threshold,
        .recovery_shares = op->recovery_shares,
        .recovery_threshold = op->recovery_threshold,
    };
    snprintf(sc.type, sizeof(sc.type), "%s", seal ? seal->ops->type : "shamir");
    rv = node__seal_config_put(b, &sc);
    if (rv == CF_OK) {
        rv = barrier_seal_root(core->barrier, op->unseal_key->data, op->unseal_key->len, &blob,
                               &len);
    }
    if (rv == CF_OK) {
        rv = rft_batch_put(b, NODE_KEY_ROOT, blob, len);
        CF_FREE(blob);
    }
    if (rv == CF_OK && seal != NULL) {
        rv = node__auto_seal_init_put(core, b, op->unseal_key, &op->recovery_key, errmsg);
    }
    if (rv == CF_OK) {
        rv = barrier_encode_keyring(core->barrier, &blob, &len);
    }
    if (rv == CF_OK) {
        rv = rft_batch_put(b, NODE_KEY_KEYRING, blob, len);
        CF_FREE(blob);
    }
    uint8_t salt[32];
    if (rv == CF_OK) {
        rv = cf_random(salt, sizeof(salt));
    }
    if (rv == CF_OK) {
        rv = node__batch_put(core, b, NODE_KEY_TOKEN_SALT, salt, sizeof(salt));
    }
    if (rv == CF_OK) {
        struct cf_secret s = {.data = salt, .len = sizeof(salt)};
        rv = node__token_batch_root(core, &s, b, op->root_token);
    }
    cf_cleanse(salt, sizeof(salt));
    char cid[37];
    uint8_t r[4];
    char rh[9];
    if (rv == CF_OK && cf_uuid_v4(cid) == CF_OK && cf_random(r, sizeof(r)) == CF_OK) {
        char name[64];
        cf_hex_encode(r, sizeof(r), rh);
        snprintf(name, sizeof(name), "vault-cluster-%s", rh);
        rv = put_json(core, b, NODE_KEY_CLUSTER, json_pack("{s:s,s:s}", "name", name, "id", cid));
    }
    if (rv == CF_OK) {
        rv = node__cluster_init_put(core, b, errmsg);
    }
    if (rv == CF_OK) {
        /* The default table, split by replication class as mount.c stores it. */
        json_t *all = node__mounts_default(core, core->cfg.mount_kv_at_secret);
        json_t *shared = json_array();
        json_t *local = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(all, i, e)
        {
            json_array_append(json_is_true(json_object_get(e, "local")) ? local : shared, e);
        }
        json_decref(all);
        rv = (all && shared && local) ? put_json(core, b, NODE_KEY_MOUNTS, shared) : CF_ENOMEM;
        if (rv == CF_OK) {
            rv = put_json(core, b, NODE_KEY_LOCAL_MOUNTS, local);
        } else {
            json_decref(local);
        }
    }
    return rv;
}

static void init_write(struct init_op *op)
{
    struct node_core *core = op->core;
    char errmsg[CF_ERRMSG_SIZE] = "";
    if (node__initialized(core)) {
        init_fail(op, CF_EEXIST, "Vault is already initialized");
        return;
    }
    struct rft_batch *b = rft_batch_new();
    int rv = b ? build_init_batch(op, b, errmsg) : CF_ENOMEM;
    if (rv != CF_OK) {
        rft_batch_free(b);
        init_fail(op, rv, errmsg[0] ? errmsg : cf_strerror(rv));
        return;
    }
    node__commit(core, b, init_committed_cb, op);
}

static void init_storage_ready(struct node_core *core)
{
    struct init_op *op = core->pending_init;
    core->pending_init = NULL;
    if (op != NULL) {
        init_write(op);
    }
}

void node__initialize(struct node_core *core,
                      const struct node_init_params *p,
                      node_init_cb cb,
                      void *arg)
{
    struct init_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        cb(core, arg, CF_ENOMEM, NULL, "out of memory");
        return;
    }
    op->core = core;
    op->shares = core->auto_seal ? 1 : p->shares;
    op->threshold = core->auto_seal ? 1 : p->threshold;
    op->recovery_shares = p->recovery_shares;
    op->recovery_threshold = p->recovery_threshold;
    op->cb = cb;
    op->arg = arg;
    int rv = CF_OK;
    if (p->root_token_id != NULL && p->root_token_id[0] != '\0') {
        snprintf(op->root_token, sizeof(op->root_token), "%s", p->root_token_id);
    } else {
        rv = node__token_generate(op->root_token);
    }
    op->unseal_key = cf_secret_new(UNSEAL_KEY_LEN);
    if (rv != CF_OK || op->unseal_key == NULL ||
        cf_random(op->unseal_key->data, UNSEAL_KEY_LEN) != CF_OK) {
        cb(core, arg, CF_ECRYPTO, NULL, "generate keys");
        init_op_free(op);
        return;
    }
    core->initializing = true;
    if (core->storage_ready) {
        init_write(op);
        return;
    }
    char errmsg[CF_ERRMSG_SIZE] = "";
    if (!rft_store_bootstrapped(core->store)) {
        rv = rft_store_bootstrap(core->store, errmsg);
        if (rv != CF_OK) {
            init_fail(op, rv, errmsg);
            return;
        }
    }
    core->pending_init = op;
    core->on_storage_ready = init_storage_ready;
    if (!core->started) {
        rv = node__start_store(core, errmsg);
        if (rv != CF_OK) {
            core->pending_init = NULL;
            core->on_storage_ready = NULL;
            init_fail(op, rv, errmsg);
        }
    }
}

static void init_http_cb(struct node_core *core,
                         void *arg,
                         int status,
                         json_t *result,
                         const char *errmsg)
{
    struct node_request *req = arg;
    (void)core;
    if (status == CF_EEXIST) {
        node_request_done(req, node_response_error(400, "Vault is already initialized"));
        return;
    }
    if (status != CF_OK) {
        CF_LOG(CF_LOG_ERROR, "init failed: %s", errmsg ? errmsg : cf_strerror(status));
        node_request_done(req, node_response_error(500, "failed to initialize: %s",
                                                   errmsg ? errmsg : cf_strerror(status)));
        return;
    }
    node_request_done(req, bare(200, json_incref(result)));
}

static int get_uint_field(json_t *data, const char *name, int *out, char *msg, size_t msglen)
{
    json_t *v = json_object_get(data, name);
    if (v == NULL || json_is_null(v)) {
        *out = 0;
        return CF_OK;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v) > 100000 ? 100000 : (int)json_integer_value(v);
        if (json_integer_value(v) < -100000) {
            *out = -100000;
        }
        return CF_OK;
    }
    snprintf(msg, msglen, "failed to parse JSON input: %s must be an integer", name);
    return CF_EINVAL;
}

static void handle_init(struct node_core *core, struct node_request *req)
{
    if (req->op == NODE_OP_READ) {
        node_request_done(req,
                          bare(200, json_pack("{s:b}", "initialized", node__initialized(core))));
        return;
    }
    if (node__initialized(core) || core->initializing || core->join != NULL ||
        (core->started && !core->storage_ready)) {
        node_request_done(req, node_response_error(400, "Vault is already initialized"));
        return;
    }
    char msg[256] = "";
    int shares;
    int threshold;
    int rshares;
    int rthreshold;
    if (get_uint_field(req->data, "secret_shares", &shares, msg, sizeof(msg)) != CF_OK ||
        get_uint_field(req->data, "secret_threshold", &threshold, msg, sizeof(msg)) != CF_OK ||
        get_uint_field(req->data, "recovery_shares", &rshares, msg, sizeof(msg)) != CF_OK ||
        get_uint_field(req->data, "recovery_threshold", &rthreshold, msg, sizeof(msg)) != CF_OK) {
        node_request_done(req, node_response_error(400, "%s", msg));
        return;
    }
    json_t *pgp = json_object_get(req->data, "pgp_keys");
    if (core->auto_seal != NULL) {
        /* An auto-unseal seal keeps the unseal key: secret_shares and secret_threshold do not
         * apply (hvac sends its defaults), and the recovery key is split instead, 5 of 3 when
         * not given, as the Vault CLI does. */
        if (rshares == 0 && rthreshold == 0) {
            rshares = 5;
            rthreshold = 3;
        }
        if (rshares < 1) {
            snprintf(msg, sizeof(msg), "recovery shares must be at least one");
        } else if (rthreshold < 1) {
            snprintf(msg, sizeof(msg), "recovery threshold must be at least one");
        } else if (rshares > 1 && rthreshold == 1) {
            snprintf(msg, sizeof(msg),
                     "recovery threshold must be greater than one for multiple shares");
        } else if (rshares > 255) {
            snprintf(msg, sizeof(msg), "recovery shares must be less than 256");
        } else if (rthreshold > rshares) {
            snprintf(msg, sizeof(msg), "recovery threshold cannot be larger than recovery shares");
        } else if (json_array_size(json_object_get(req->data, "recovery_pgp_keys")) > 0) {
            snprintf(msg, sizeof(msg), "recovery_pgp_keys are not supported by this server");
        }
    } else if (rshares != 0 || rthreshold != 0) {
        snprintf(msg, sizeof(msg),
                 "parameters recovery_shares,recovery_threshold not applicable "
                 "to seal type shamir");
    } else if (shares < 1) {
        snprintf(msg, sizeof(msg), "shares must be at least one");
    } else if (threshold < 1) {
        snprintf(msg, sizeof(msg), "threshold must be at least one");
    } else if (shares > 1 && threshold == 1) {
        snprintf(msg, sizeof(msg), "threshold must be greater than one for multiple shares");
    } else if (shares > 255) {
        snprintf(msg, sizeof(msg), "shares must be less than 256");
    } else if (threshold > shares) {
        snprintf(msg, sizeof(msg), "threshold cannot be larger than shares");
    } else if (pgp != NULL && !json_is_null(pgp) && json_array_size(pgp) > 0) {
        if (json_array_size(pgp) != (size_t)shares) {
            snprintf(msg, sizeof(msg),
                     "count mismatch between number of provided PGP keys and "
                     "number of shares");
        } else {
            snprintf(msg, sizeof(msg), "pgp_keys are not supported by this server");
        }
    } else if (json_object_get(req->data, "root_token_pgp_key") != NULL &&
               json_string_length(json_object_get(req->data, "root_token_pgp_key")) > 0) {
        snprintf(msg, sizeof(msg), "root_token_pgp_key is not supported by this server");
    }
    if (msg[0] != '\0') {
        node_request_done(req, node_response_error(400, "%s", msg));
        return;
    }
    if (core->auto_seal != NULL && !core->auto_seal->ops->ready(core->auto_seal)) {
        node_request_done(req, node_response_error(400,
                                                   "the seal has no key yet: post the seal key "
                                                   "phrase to sys/unseal first"));
        return;
    }
    struct node_init_params p = {
        .shares = (unsigned)shares,
        .threshold = (unsigned)threshold,
        .recovery_shares = (unsigned)rshares,
        .recovery_threshold = (unsigned)rthreshold,
    };
    node__initialize(core, &p, init_http_cb, req);
}

/* Health and leader --------------------------------------------------------------------- */

static int query_code(struct node_request *req, const char *name, int def, bool *bad)
{
    json_t *v = json_object_get(req->data, name);
    if (v == NULL) {
        return def;
    }
    const char *s = json_string_value(v);
    char *end = NULL;
    long n = s ? strtol(s, &end, 10) : 0;
    if (s == NULL || *s == '\0' || *end != '\0' || n < 1 || n > 999) {
        *bad = true;
        return def;
    }
    return (int)n;
}

static bool query_bool(struct node_request *req, const char *name, bool *bad)
{
    json_t *v = json_object_get(req->data, name);
    if (v == NULL) {
        return false;
    }
    const char *s = json_string_value(v);
    if (s == NULL) {
        *bad = true;
        return false;
    }
    if (*s == '\0' || strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "t") == 0) {
        return true;
    }
    if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcmp(s, "f") == 0) {
        return false;
    }
    *bad = true;
    return false;
}

static void handle_health(struct node_core *core, struct node_request *req)
{
    bool bad = false;
    int active = query_code(req, "activecode", 200, &bad);
    int standby = query_code(req, "standbycode", 429, &bad);
    (void)query_code(req, "drsecondarycode", 472, &bad);
    int perf = query_code(req, "performancestandbycode", 473, &bad);
    int sealed = query_code(req, "sealedcode", 503, &bad);
    int uninit = query_code(req, "uninitcode", 501, &bad);
    bool standbyok = query_bool(req, "standbyok", &bad);
    bool perfok = query_bool(req, "perfstandbyok", &bad);
    if (bad) {
        node_request_done(req, node_response_error(400, NULL));
        return;
    }
    bool init = node__initialized(core);
    /* Every unsealed standby is a performance standby (it serves reads itself). */
    bool is_standby = !core->sealed && !rft_store_is_ready(core->store);
    int code = !init                      ? uninit
               : core->sealed             ? sealed
               : is_standby && !perfok    ? perf
               : is_standby && !standbyok ? standby
                                          : active;
    json_t *j = json_pack("{s:b,s:b,s:b,s:b,s:s,s:s,s:I,s:s,s:b}", "initialized", init, "sealed",
                          core->sealed, "standby", is_standby || core->sealed,
                          "performance_standby", is_standby, "replication_performance_mode",
                          "disabled", "replication_dr_mode", "disabled", "server_time_utc",
                          (json_int_t)time(NULL), "version", COFFER_VERSION, "enterprise", 0);
    if (j != NULL && !core->sealed) {
        json_object_set_new(j, "cluster_name", json_string(core->cluster_name));
        json_object_set_new(j, "cluster_id", json_string(core->cluster_id));
    }
    if (j != NULL && core->store != NULL && rft_store_started(core->store)) {
        json_object_set_new(j, "raft_applied_index",
                            json_integer((json_int_t)rft_store_applied_index(core->store)));
    }
    node_request_done(req, bare(code, j));
}

static void rfc3339_ns(int64_t ns, char out[64])
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ns % 1000000000));
}

static void handle_leader(struct node_core *core, struct node_request *req)
{
    if (core->sealed) {
        node_request_done(req, node_response_error(503, "Vault is sealed"));
        return;
    }
    struct node_leader_info li;
    bool known = node_core_leader(core, &li);
    char when[64] = "0001-01-01T00:00:00Z";
    if (li.is_self) {
        rfc3339_ns(core->active_since_ns, when);
    }
    const char *scheme_addr = known ? li.cluster_addr : "";
    char caddr[300];
    snprintf(caddr, sizeof(caddr), "%s%s",
             scheme_addr[0] && strstr(scheme_addr, "://") == NULL ? "https://" : "", scheme_addr);
    json_t *j = json_pack(
        "{s:b,s:b,s:s,s:s,s:s,s:b,s:i,s:i,s:I,s:I}", "ha_enabled", 1, "is_self", li.is_self,
        "active_time", when, "leader_address", known ? li.api_addr : "", "leader_cluster_address",
        caddr, "performance_standby", !li.is_self, "performance_standby_last_remote_wal", 0,
        "last_wal", 0, "raft_committed_index", (json_int_t)rft_store_commit_index(core->store),
        "raft_applied_index", (json_int_t)rft_store_applied_index(core->store));
    node_request_done(req, bare(200, j));
}

/* Dispatch ------------------------------------------------------------------------------ */

static void method_not_allowed(struct node_request *req)
{
    node_request_done(req, node_response_error(405, "unsupported operation"));
}

bool node__lifecycle_handle(struct node_core *core, struct node_request *req)
{
    const char *p = req->path;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (strcmp(p, "sys/init") == 0) {
        if (req->op != NODE_OP_READ && !write) {
            method_not_allowed(req);
        } else {
            handle_init(core, req);
        }
    } else if (strcmp(p, "sys/seal-status") == 0) {
        if (req->op != NODE_OP_READ) {
            method_not_allowed(req);
        } else {
            node_request_done(req, bare(200, seal_status_json(core)));
        }
    } else if (strcmp(p, "sys/unseal") == 0) {
        if (!write) {
            method_not_allowed(req);
        } else {
            handle_unseal(core, req);
        }
    } else if (strcmp(p, "sys/seal") == 0) {
        if (!write) {
            method_not_allowed(req);
        } else {
            handle_seal(core, req);
        }
    } else if (strcmp(p, "sys/health") == 0) {
        if (req->op != NODE_OP_READ) {
            method_not_allowed(req);
        } else {
            handle_health(core, req);
        }
    } else if (strcmp(p, "sys/leader") == 0) {
        if (req->op != NODE_OP_READ) {
            method_not_allowed(req);
        } else {
            handle_leader(core, req);
        }
    } else {
        return node__join_handle(core, req) || node__genroot_handle(core, req) ||
               node__rekey_handle(core, req);
    }
    return true;
}

/* Dev mode ------------------------------------------------------------------------------ */

struct dev_op
{
    node_core_dev_cb cb;
    void *arg;
};

static void dev_init_cb(struct node_core *core,
                        void *arg,
                        int status,
                        json_t *result,
                        const char *errmsg)
{
    struct dev_op *op = arg;
    json_t *keys_b64 = json_object_get(result, "keys_base64");
    const char *root_token = json_string_value(json_object_get(result, "root_token"));
    if (status != CF_OK) {
        op->cb(op->arg, status, NULL, NULL, errmsg);
        cf_free(op);
        return;
    }
    const char *b64 = json_string_value(json_array_get(keys_b64, 0));
    uint8_t *key = NULL;
    size_t len = 0;
    char msg[CF_ERRMSG_SIZE] = "";
    int rv = cf_base64_decode(b64, strlen(b64), &key, &len);
    if (rv == CF_OK) {
        rv = node__unseal_with_key(core, key, len, msg);
    }
    if (key != NULL) {
        cf_cleanse(key, len);
        cf_free(key);
    }
    op->cb(op->arg, rv, b64, root_token, rv == CF_OK ? NULL : msg);
    cf_free(op);
}

void node_core_dev_init(struct node_core *core,
                        const char *root_token_id,
                        node_core_dev_cb cb,
                        void *arg)
{
    struct dev_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        cb(arg, CF_ENOMEM, NULL, NULL, "out of memory");
        return;
    }
    op->cb = cb;
    op->arg = arg;
    struct node_init_params p = {.shares = 1, .threshold = 1, .root_token_id = root_token_id};
    node__initialize(core, &p, dev_init_cb, op);
}
