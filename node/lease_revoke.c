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

int node__lease_prepare(struct node_core *core,
                        const struct node_request *req,
                        const char *token_hash,
                        json_t *secret,
                        int64_t duration_s,
                        struct node_lease *out)
{
    memset(out, 0, sizeof(*out));
    char uuid[37];
    if (cf_uuid_v4(uuid) != CF_OK) {
        return CF_ENOMEM;
    }
    size_t plen = strlen(req->path);
    while (plen > 0 && req->path[plen - 1] == '/') {
        plen--;
    }
    size_t idlen = plen + 1 + sizeof(uuid);
    out->lease_id = cf_malloc(idlen);
    if (out->lease_id != NULL) {
        snprintf(out->lease_id, idlen, "%.*s/%s", (int)plen, req->path, uuid);
    }
    out->path = cf_strdup(req->path);
    out->mount = cf_strdup(req->mount_path != NULL ? req->mount_path : "");
    struct node_mount *m = req->mount_path != NULL ? node__mount_find(core, req->mount_path) : NULL;
    snprintf(out->mount_uuid, sizeof(out->mount_uuid), "%s", m != NULL ? m->uuid : "");
    out->issue_ns = node__now_ns();
    out->expire_ns = out->issue_ns + (duration_s > 0 ? duration_s : 0) * 1000000000LL;
    out->renewable = false;
    snprintf(out->token_hash, sizeof(out->token_hash), "%s", token_hash != NULL ? token_hash : "");
    out->secret = json_incref(secret);
    if (out->lease_id == NULL || out->path == NULL || out->mount == NULL) {
        node__lease_clear(out);
        return CF_ENOMEM;
    }
    return CF_OK;
}

void node__lease_attach(struct node_core *core, struct node_response *resp, struct node_lease *l)
{
    node__expire_track_lease(core->expire, l->lease_id, l->token_hash, l->expire_ns);
    json_decref(resp->lease_secret);
    resp->lease_secret = NULL;
    cf_free(resp->lease_id);
    resp->lease_id = l->lease_id;
    l->lease_id = NULL;
    resp->renewable = false;
}

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
        node__lease_attach(op->core, op->resp, &op->lease);
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
    if (op == NULL) {
        node__fail_later(core, cb, arg, CF_ENOMEM);
        return;
    }
    op->core = core;
    op->resp = resp;
    op->cb = cb;
    op->arg = arg;
    int rv = node__lease_prepare(core, req, token_hash, resp->lease_secret, resp->lease_duration,
                                 &op->lease);
    struct rft_batch *b = rv == CF_OK ? rft_batch_new() : NULL;
    if (rv == CF_OK) {
        rv = b != NULL ? node__lease_batch_put(core, b, &op->lease) : CF_ENOMEM;
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        node__fail_later(core, created_cb, op, rv);
        return;
    }
    node__commit(core, b, created_cb, op);
}
