/*
 * Lease creation and revocation (lease.h): a lease is written when an engine's response asks
 * for one, and revoked by asking its engine to revoke the secret, then deleting the entry.
 */
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/metrics.h"
#include "lib/mem.h"
#include "node/expire.h"
#include "node/internal.h"
#include "node/lease.h"
#include "node/token.h"

#define CF_LOG_MODULE "lease"
#include "lib/log.h"

/* Revoking one lease -------------------------------------------------------------------- */

struct revoke_op
{
    struct node_core *core;
    struct node_lease lease;
    bool force;
    node_write_cb cb;
    void *arg;
};

static void revoke_finish(void *arg, int status)
{
    struct revoke_op *op = arg;
    if (status == CF_OK) {
        cf_metrics_incr("vault.expire.revoke", NULL, NULL, 1);
    }
    struct node_core *core = op->core;
    op->cb(op->arg, status);
    node__lease_clear(&op->lease);
    cf_free(op);
    node__inflight_end(core); /* a seal waits for the engine's revocation to finish */
}

static void secret_revoked_cb(void *arg, int status)
{
    struct revoke_op *op = arg;
    if (status != CF_OK && !op->force) {
        CF_LOG(CF_LOG_WARN, "revoking the secret of lease %s failed: %s", op->lease.lease_id,
               cf_strerror(status));
        revoke_finish(op, status);
        return;
    }
    struct rft_batch *b = rft_batch_new();
    char key[sizeof(LEASE_PREFIX) + LEASE_ID_MAX];
    snprintf(key, sizeof(key), "%s%s", LEASE_PREFIX, op->lease.lease_id);
    if (b == NULL || rft_batch_delete(b, key) != CF_OK) {
        rft_batch_free(b);
        node__fail_later(op->core, revoke_finish, op, CF_ENOMEM);
        return;
    }
    node__commit(op->core, b, revoke_finish, op);
}

void node__lease_revoke(struct node_core *core,
                        const char *lease_id,
                        bool force,
                        node_write_cb cb,
                        void *arg)
{
    struct revoke_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        node__fail_later(core, cb, arg, CF_ENOMEM);
        return;
    }
    op->core = core;
    op->force = force;
    op->cb = cb;
    op->arg = arg;
    core->inflight++;
    int rv = node__lease_get(core, lease_id, &op->lease);
    if (rv != CF_OK) {
        node__fail_later(core, revoke_finish, op, rv);
        return;
    }
    struct node_mount *m = op->lease.mount_uuid[0] != '\0'
                               ? node__mount_find_uuid(core, op->lease.mount_uuid)
                               : node__mount_find(core, op->lease.mount);
    if (m == NULL || m->ops->revoke_secret == NULL) {
        node__defer(core, secret_revoked_cb, op, CF_OK); /* nothing to undo in the engine */
        return;
    }
    m->ops->revoke_secret(m->state, op->lease.secret, secret_revoked_cb, op);
}

/* Revoking by prefix -------------------------------------------------------------------- */

struct prefix_op
{
    struct node_core *core;
    json_t *ids;
    size_t next;
    bool force;
    int first_error;
    node_write_cb cb;
    void *arg;
};

struct id_scan
{
    size_t skip;
    json_t *ids;
};

static int id_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct id_scan *s = arg;
    (void)val;
    (void)len;
    return json_array_append_new(s->ids, json_string(key + s->skip)) != 0;
}

static void prefix_step(void *arg, int status)
{
    struct prefix_op *op = arg;
    if (op->next > 0 && status != CF_OK && status != CF_ENOTFOUND) {
        if (op->first_error == CF_OK) {
            op->first_error = status;
        }
        if (!op->force) {
            op->next = json_array_size(op->ids); /* stop here */
        }
    }
    if (op->next >= json_array_size(op->ids)) {
        op->cb(op->arg, op->force ? CF_OK : op->first_error);
        json_decref(op->ids);
        cf_free(op);
        return;
    }
    const char *id = json_string_value(json_array_get(op->ids, op->next++));
    node__lease_revoke(op->core, id, op->force, prefix_step, op);
}

void node__lease_revoke_prefix(struct node_core *core,
                               const char *prefix,
                               bool force,
                               node_write_cb cb,
                               void *arg)
{
    struct prefix_op *op = cf_calloc(1, sizeof(*op));
    json_t *ids = json_array();
    if (op == NULL || ids == NULL) {
        cf_free(op);
        json_decref(ids);
        node__fail_later(core, cb, arg, CF_ENOMEM);
        return;
    }
    char p[sizeof(LEASE_PREFIX) + LEASE_ID_MAX + 1];
    size_t n = strlen(prefix);
    snprintf(p, sizeof(p), "%s%s%s", LEASE_PREFIX, prefix,
             n > 0 && prefix[n - 1] != '/' ? "/" : "");
    struct id_scan s = {.skip = strlen(LEASE_PREFIX), .ids = ids};
    rft_store_scan(core->store, p, NULL, id_visit, &s);
    op->core = core;
    op->ids = ids;
    op->force = force;
    op->cb = cb;
    op->arg = arg;
    node__defer(core, prefix_step, op, CF_OK);
}

/* Creating a lease ------------------------------------------------------------------------ */

struct create_op
{
    struct node_core *core;
    struct node_response *resp;
    struct node_lease lease;
    node_write_cb cb;
    void *arg;
};

static void created_cb(void *arg, int status)
{
    struct create_op *op = arg;
    if (status == CF_OK) {
        node__expire_track_lease(op->core->expire, op->lease.lease_id, op->lease.token_hash,
                                 op->lease.expire_ns);
        json_decref(op->resp->lease_secret);
        op->resp->lease_secret = NULL;
        cf_free(op->resp->lease_id);
        op->resp->lease_id = op->lease.lease_id;
        op->lease.lease_id = NULL;
        op->resp->renewable = false;
    }
    op->cb(op->arg, status);
    node__lease_clear(&op->lease);
    cf_free(op);
}

void node__lease_create(struct node_core *core,
                        const struct node_request *req,
                        const char *token_hash,
                        struct node_response *resp,
                        node_write_cb cb,
                        void *arg)
{
    struct create_op *op = cf_calloc(1, sizeof(*op));
    char uuid[37];
    if (op == NULL || cf_uuid_v4(uuid) != CF_OK) {
        cf_free(op);
        node__fail_later(core, cb, arg, CF_ENOMEM);
        return;
    }
    op->core = core;
    op->resp = resp;
    op->cb = cb;
    op->arg = arg;
    size_t plen = strlen(req->path);
    while (plen > 0 && req->path[plen - 1] == '/') {
        plen--;
    }
    size_t idlen = plen + 1 + sizeof(uuid);
    op->lease.lease_id = cf_malloc(idlen);
    if (op->lease.lease_id != NULL) {
        snprintf(op->lease.lease_id, idlen, "%.*s/%s", (int)plen, req->path, uuid);
    }
    op->lease.path = cf_strdup(req->path);
    op->lease.mount = cf_strdup(req->mount_path != NULL ? req->mount_path : "");
    struct node_mount *m = req->mount_path != NULL ? node__mount_find(core, req->mount_path) : NULL;
    snprintf(op->lease.mount_uuid, sizeof(op->lease.mount_uuid), "%s", m != NULL ? m->uuid : "");
    op->lease.issue_ns = node__now_ns();
    int64_t secs = resp->lease_duration > 0 ? resp->lease_duration : 0;
    op->lease.expire_ns = op->lease.issue_ns + secs * 1000000000LL;
    op->lease.renewable = false;
    snprintf(op->lease.token_hash, sizeof(op->lease.token_hash), "%s",
             token_hash != NULL ? token_hash : "");
    op->lease.secret = json_incref(resp->lease_secret);
    struct rft_batch *b = rft_batch_new();
    int rv = b != NULL && op->lease.path != NULL && op->lease.mount != NULL
                 ? node__lease_batch_put(core, b, &op->lease)
                 : CF_ENOMEM;
    if (rv != CF_OK) {
        rft_batch_free(b);
        node__fail_later(core, created_cb, op, rv);
        return;
    }
    node__commit(core, b, created_cb, op);
}
