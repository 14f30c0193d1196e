/*
 * The request pipeline and the core's life cycle.
 *
 * A request first meets the lifecycle endpoints (sys/init, sys/unseal, ... which answer bare
 * JSON and work while sealed); then the seal check (503 "Vault is sealed"), the token check
 * (403 "permission denied"), the longest-prefix mount match (404 for no route) and the engine.
 * Routed requests are counted in-flight so that sys/seal can wait for them before it drops
 * the keys. Storage writes go through node__commit, which completes only after raft applied the
 * batch locally, so a response never goes out before the write it reports.
 */
#include "node/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/json.h"
#include "lib/metrics.h"
#include "lib/crypto.h"
#include "node/barrier.h"
#include "node/acl.h"
#include "node/audit.h"
#include "node/audit_core.h"
#include "node/expire.h"
#include "node/cluster.h"
#include "node/internal.h"
#include "node/policy_store.h"
#include "node/token.h"
#include "node/lease.h"
#include "node/wrap.h"

#define CF_LOG_MODULE "core"
#include "lib/log.h"

bool node__initialized(const struct node_core *core)
{
    if (core->join != NULL && core->seal.threshold > 0) {
        return true; /* joined a cluster whose seal configuration we know */
    }
    if (!core->storage_ready || core->store == NULL) {
        return false;
    }
    return rft_store_get(core->store, NODE_KEY_SEAL_CONFIG, NULL, NULL, NULL) == CF_OK;
}

/* Deferred callbacks ------------------------------------------------------------------- */

struct defer
{
    uv_timer_t timer;
    void (*fn)(void *arg, int status);
    void *arg;
    int status;
};

static void defer_close_cb(uv_handle_t *h)
{
    cf_free(CF_CONTAINER_OF(h, struct defer, timer));
}

static void defer_timer_cb(uv_timer_t *t)
{
    struct defer *d = CF_CONTAINER_OF(t, struct defer, timer);
    d->fn(d->arg, d->status);
    uv_close((uv_handle_t *)&d->timer, defer_close_cb);
}

void node__defer(struct node_core *core, void (*fn)(void *arg, int status), void *arg, int status)
{
    struct defer *d = cf_calloc(1, sizeof(*d));
    if (d == NULL) {
        cf_oom_abort(); /* a lost completion would hang a client forever */
    }
    d->fn = fn;
    d->arg = arg;
    d->status = status;
    uv_timer_init(core->loop, &d->timer);
    uv_timer_start(&d->timer, defer_timer_cb, 0, 0);
}

/* Storage helpers ---------------------------------------------------------------------- */

int node__raw_get(struct node_core *core, const char *key, const uint8_t **val, size_t *len)
{
    return rft_store_get(core->store, key, val, len, NULL);
}

int node__get(struct node_core *core, const char *key, uint8_t **val, size_t *len)
{
    const uint8_t *ct;
    size_t ctlen;
    int rv = rft_store_get(core->store, key, &ct, &ctlen, NULL);
    if (rv != CF_OK) {
        return rv;
    }
    return barrier_decrypt(core->barrier, key, ct, ctlen, val, len);
}

int node__batch_put(struct node_core *core,
                    struct rft_batch *b,
                    const char *key,
                    const uint8_t *val,
                    size_t len)
{
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    int rv = barrier_encrypt(core->barrier, key, val, len, &ct, &ctlen);
    if (rv != CF_OK) {
        return rv;
    }
    rv = rft_batch_put(b, key, ct, ctlen);
    cf_free(ct);
    return rv;
}

int node__batch_put_json(struct node_core *core,
                         struct rft_batch *b,
                         const char *key,
                         const json_t *j)
{
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    if (s == NULL) {
        return CF_ENOMEM;
    }
    int rv = node__batch_put(core, b, key, (const uint8_t *)s, strlen(s));
    cf_cleanse(s, strlen(s));
    cf_free(s);
    return rv;
}

struct commit
{
    struct rft_apply_req req;
    struct node_core *core;
    node_write_cb cb;
    void *arg;
};

static void commit_apply_cb(struct rft_apply_req *req, int status)
{
    struct commit *c = CF_CONTAINER_OF(req, struct commit, req);
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "storage write failed: %s", cf_strerror(status));
    }
    if (status == CF_ENOTLEADER) {
        c->core->lost_writes++;
    }
    rft_apply_req_close(req);
    c->cb(c->arg, status);
    cf_free(c);
}

struct commit_fail
{
    node_write_cb cb;
    void *arg;
};

static void commit_fail_cb(void *arg, int status)
{
    struct commit_fail *f = arg;
    f->cb(f->arg, status);
    cf_free(f);
}

void node__fail_later(struct node_core *core, node_write_cb cb, void *arg, int status)
{
    struct commit_fail *f = cf_calloc(1, sizeof(*f));
    if (f == NULL) {
        cf_oom_abort();
    }
    f->cb = cb;
    f->arg = arg;
    node__defer(core, commit_fail_cb, f, status);
}

void node__commit(struct node_core *core, struct rft_batch *b, node_write_cb cb, void *arg)
{
    if (core->closing) {
        rft_batch_free(b);
        node__fail_later(core, cb, arg, CF_ECANCELED);
        return;
    }
    struct commit *c = cf_calloc(1, sizeof(*c));
    if (c == NULL) {
        rft_batch_free(b);
        node__fail_later(core, cb, arg, CF_ENOMEM);
        return;
    }
    c->cb = cb;
    c->arg = arg;
    c->core = core;
    if (!rft_store_is_ready(core->store)) {
        core->standby_writes++; /* a standby's request that writes goes to the active node */
        core->lost_writes++;    /* one that began on the active node gets 503 */
    }
    int rv = rft_store_apply(core->store, &c->req, b, commit_apply_cb);
    if (rv != CF_OK) {
        cf_free(c);
        node__fail_later(core, cb, arg, rv);
    }
}

/* Engine-facing core services ---------------------------------------------------------- */

struct rotate_op
{
    struct node_core *core;
    node_write_cb cb;
    void *arg;
};

static void rotate_done_cb(void *arg, int status)
{
    struct rotate_op *op = arg;
    if (status == CF_OK) {
        struct barrier_term_info info;
        barrier_term_info(op->core->barrier, &info);
        CF_LOG(CF_LOG_INFO, "keyring rotated term=%u", info.term);
    }
    op->cb(op->arg, status);
    cf_free(op);
}

void node_core_rotate(struct node_core *core, node_write_cb cb, void *arg)
{
    struct rotate_op *op = cf_calloc(1, sizeof(*op));
    struct rft_batch *b = rft_batch_new();
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    uint32_t term = 0;
    int rv = CF_ENOMEM;
    if (op == NULL || b == NULL) {
        goto fail;
    }
    op->core = core;
    op->cb = cb;
    op->arg = arg;
    /* The new term is used for encryption at once; it is persisted with the keyring before
     * the caller hears of success. If the commit fails the in-memory term is still valid:
     * values it encrypted were never committed either. */
    rv = barrier_rotate(core->barrier, &term);
    if (rv == CF_OK) {
        rv = barrier_encode_keyring(core->barrier, &blob, &bloblen);
    }
    if (rv == CF_OK) {
        rv = rft_batch_put(b, NODE_KEY_KEYRING, blob, bloblen);
    }
    cf_free(blob);
    if (rv != CF_OK) {
        goto fail;
    }
    node__commit(core, b, rotate_done_cb, op);
    return;
fail:
    rft_batch_free(b);
    cf_free(op);
    node__fail_later(core, cb, arg, rv);
}

json_t *node_core_key_status(struct node_core *core)
{
    struct barrier_term_info info;
    char when[64];
    barrier_term_info(core->barrier, &info);
    node__rfc3339(info.install_time_ns, when);
    return json_pack("{s:I,s:s,s:I}", "term", (json_int_t)info.term, "install_time", when,
                     "encryptions", (json_int_t)info.encryptions);
}

/* The pipeline ------------------------------------------------------------------------- */

/* Per-request state of a routed request. */
struct core_call
{
    struct node_request *req;
    struct node_token token;    /* the caller's token; entry NULL before authentication */
    json_t *granting;           /* the ACL's granting policies (for audit), or NULL */
    bool revoke_after;          /* the request spent the token's last use */
    bool sudo;                  /* the caller holds root or sudo on the path */
    bool audited;               /* the request entry was written */
    bool standby_local;         /* a performance standby serves this request itself */
    uint64_t lost_writes;       /* core->lost_writes when it started */
    uint64_t standby_writes;    /* core->standby_writes when it started */
    struct node_response *resp; /* while the response entry is being written */
    struct node_lease *lease;   /* owned: a lease the engine wrote with its own batch */
    struct core_call *next;     /* in core->audit_waiters */
};

static struct node_response *forward_response(void)
{
    struct node_response *r = node_response_new();
    if (r != NULL) {
        r->forward = true;
    }
    return r;
}

static void idle_check(struct node_core *core);

static void call_complete(struct node_request *req, struct node_response *resp)
{
    struct node_core *core = req->core;
    struct core_call *call = req->core_priv;
    if (call->standby_local && core->standby_writes != call->standby_writes) {
        /* A storage write was attempted while this standby served the request (by it, or by a
         * request running at the same time): the active node serves it instead. */
        node_response_free(resp);
        resp = forward_response();
    } else if (!call->standby_local && core->lost_writes != call->lost_writes) {
        /* Leadership was lost with a write in flight: whether it commits is unknown. */
        node_response_free(resp);
        resp = node_response_error(503,
                                   "the node lost leadership before the write committed; "
                                   "retry against the active node");
    }
    req->core_priv = NULL;
    node__token_clear(&call->token);
    json_decref(call->granting);
    if (call->lease != NULL) {
        node__lease_clear(call->lease);
        cf_free(call->lease);
    }
    cf_free(call);
    core->inflight--;
    cf_metrics_sample("vault.core.handle_request", NULL, NULL, cf_metrics_since_ms(req->start_ns));
    req->done_cb = req->outer_done_cb;
    node_request_done(req, resp);
    idle_check(core);
}

void node__inflight_end(struct node_core *core)
{
    core->inflight--;
    idle_check(core);
}

static void idle_check(struct node_core *core)
{
    if ((core->pending_seal != NULL || core->seal_requested) && core->inflight == 0) {
        struct node_request *seal = core->pending_seal;
        core->pending_seal = NULL;
        core->seal_requested = false;
        node__seal_now(core);
        if (seal != NULL) {
            node_request_done(seal, node_response_new());
        }
    }
    if (core->reload_pending && core->inflight == 0) {
        node__ha_update(core);
    }
}

void node__seal_when_idle(struct node_core *core)
{
    if (core->inflight == 0) {
        node__seal_now(core);
        return;
    }
    core->seal_requested = true;
}

static const char *error_of(const struct node_response *resp)
{
    if (resp == NULL) {
        return "internal error";
    }
    if (resp->errors != NULL) {
        const char *e = json_string_value(json_array_get(resp->errors, 0));
        return e ? e : "error";
    }
    return NULL;
}

static struct node_response *internal_error(void)
{
    return node_response_error(500, "internal error");
}

/* The mount's non-HMAC key lists for the entries of req. */
static void audit_opts_for(struct node_core *core,
                           const struct node_request *req,
                           struct audit_opts *opts)
{
    const json_t *cfg = NULL;
    struct node_mount *m = node__mount_match(core, req->path);
    if (m != NULL) {
        cfg = node__mount_config(m);
    }
    opts->non_hmac_request_keys = json_object_get(cfg, "audit_non_hmac_request_keys");
    opts->non_hmac_response_keys = json_object_get(cfg, "audit_non_hmac_response_keys");
}

static void response_audited_cb(void *arg, int status)
{
    struct node_request *req = arg;
    struct core_call *call = req->core_priv;
    struct node_response *resp = call->resp;
    call->resp = NULL;
    if (status != CF_OK) {
        /* Vault: a response no device could record is not sent. */
        node_response_free(resp);
        resp = internal_error();
    }
    call_complete(req, resp);
}

/* Writes the response entry, then completes. */
static void audit_response(struct node_request *req, struct node_response *resp)
{
    struct node_core *core = req->core;
    struct core_call *call = req->core_priv;
    if (core->audit == NULL || audit_device_count(core->audit) == 0) {
        call_complete(req, resp);
        return;
    }
    json_t *e = node__audit_entry(core, req, call->token.entry ? &call->token : NULL,
                                  call->granting, resp, error_of(resp));
    if (e == NULL) {
        node_response_free(resp);
        call_complete(req, internal_error());
        return;
    }
    struct audit_opts opts;
    audit_opts_for(core, req, &opts);
    call->resp = resp;
    audit_log(core->audit, e, &opts, response_audited_cb, req);
    json_decref(e);
}

struct revoke_after
{
    struct node_request *req;
    struct node_response *resp;
};

static void revoke_after_cb(void *arg, int status)
{
    struct revoke_after *ra = arg;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "revoking a spent token failed: %s", cf_strerror(status));
    }
    audit_response(ra->req, ra->resp);
    cf_free(ra);
}

/* After wrapping: revokes a token whose last use this was, then audits the response. */
static void after_wrap(struct node_request *req, struct node_response *resp)
{
    struct core_call *call = req->core_priv;
    if (call->revoke_after && call->token.entry != NULL) {
        struct revoke_after *ra = cf_calloc(1, sizeof(*ra));
        if (ra == NULL) {
            cf_oom_abort();
        }
        ra->req = req;
        ra->resp = resp;
        node__token_revoke(req->core, call->token.hash, false, revoke_after_cb, ra);
        return;
    }
    audit_response(req, resp);
}

static void routed_finish(struct node_request *req, struct node_response *resp);

static void lease_created_cb(void *arg, int status)
{
    struct node_request *req = arg;
    struct core_call *call = req->core_priv;
    struct node_response *resp = call->resp;
    call->resp = NULL;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "storing a lease failed: %s", cf_strerror(status));
        node_response_free(resp);
        resp = node_response_error(500, "failed to register lease: %s", cf_strerror(status));
    }
    routed_finish(req, resp);
}

int node__call_lease(struct node_request *req,
                     json_t *secret,
                     int64_t duration_s,
                     struct node_lease **out)
{
    struct core_call *call = req->core_priv;
    if (call == NULL) {
        return CF_EINVAL;
    }
    if (call->lease != NULL) {
        return CF_EEXIST;
    }
    struct node_lease *l = cf_calloc(1, sizeof(*l));
    if (l == NULL) {
        return CF_ENOMEM;
    }
    int rv = node__lease_prepare(req->core, req, call->token.entry ? call->token.hash : NULL,
                                 secret, duration_s, l);
    if (rv != CF_OK) {
        cf_free(l);
        return rv;
    }
    call->lease = l;
    *out = l;
    return CF_OK;
}

/* Ends a routed request: the lease an engine asked for, then routed_finish. */
static void routed_done_cb(struct node_request *req, struct node_response *resp)
{
    struct core_call *call = req->core_priv;
    if (call->lease != NULL) {
        /* Written in the engine's own batch: on success it is stored, and only its expiry and
         * the response's lease_id remain. */
        if (resp != NULL && resp->errors == NULL) {
            node__lease_attach(req->core, resp, call->lease);
        } else {
            CF_LOG(CF_LOG_WARN,
                   "request with a lease in its write batch failed; the lease, if "
                   "stored, is revoked at its expiry");
        }
        routed_finish(req, resp);
        return;
    }
    if (resp != NULL && resp->lease_secret != NULL && resp->errors == NULL) {
        call->resp = resp;
        node__lease_create(req->core, req, call->token.entry ? call->token.hash : NULL, resp,
                           lease_created_cb, req);
        return;
    }
    routed_finish(req, resp);
}

/* Vault's empty-list 404, wrapping, spent tokens, the response audit, the in-flight count and a
 * waiting seal. */
static void routed_finish(struct node_request *req, struct node_response *resp)
{
    struct node_core *core = req->core;
    struct core_call *call = req->core_priv;
    bool plain = resp != NULL && resp->errors == NULL && resp->bare == NULL &&
                 resp->raw_body == NULL && resp->wrap_info == NULL;
    if (plain && req->op == NODE_OP_LIST && req->wrap_ttl_s == 0) {
        /* Vault: a list with no keys is a 404 with an empty error list. */
        json_t *keys = resp->data ? json_object_get(resp->data, "keys") : NULL;
        if ((keys == NULL || json_array_size(keys) == 0) && resp->warnings == NULL) {
            node_response_free(resp);
            resp = node_response_not_found();
            plain = false;
        }
    }
    if (plain && req->wrap_ttl_s > 0 && !node_response_is_empty(resp) && !core->sealed) {
        node__wrap_response(core, req, resp, call->token.entry ? &call->token : NULL, after_wrap);
        return;
    }
    after_wrap(req, resp);
}

/* Hands an authenticated request to the built-in handler or the engine that owns its path. */
static void dispatch(struct node_core *core, struct node_request *req)
{
    struct core_call *call = req->core_priv;
    if (call->standby_local && req->op != NODE_OP_READ && req->op != NODE_OP_LIST) {
        struct node_mount *sm = node__mount_match(core, req->path);
        if (sm == NULL || sm->ops->standby_ok == NULL || strncmp(req->path, "sys/", 4) == 0) {
            node_request_done(req, forward_response());
            return;
        }
        req->mount_path = sm->path;
        req->rel_path = strlen(req->path) >= strlen(sm->path) ? req->path + strlen(sm->path) : "";
        req->view = &sm->view;
        if (!sm->ops->standby_ok(sm->state, req)) {
            node_request_done(req, forward_response());
            return;
        }
    }
    if (node__token_api_handle(core, req, &call->token, call->sudo) ||
        node__wrap_api_handle(core, req) || node__mount_api_handle(core, req) ||
        node__audit_api_handle(core, req) || node__seal_api_handle(core, req, call->sudo) ||
        node__raw_api_handle(core, req) || node__lease_api_handle(core, req) ||
        node__metrics_api_handle(core, req) || node__cluster_api_handle(core, req, call->sudo)) {
        return;
    }
    if (strncmp(req->path, "sys/policies/acl", 16) == 0 ||
        strncmp(req->path, "sys/policy", 10) == 0 ||
        strncmp(req->path, "sys/capabilities", 16) == 0) {
        const struct acl *acl = node__acl_for(core, json_object_get(call->token.entry, "policies"));
        if (node__policy_api_handle(core, req, acl)) {
            return;
        }
    }
    struct node_mount *m = node__mount_match(core, req->path);
    if (m == NULL) {
        node_request_done(req, node_response_error(404,
                                                   "no handler for route \"%s\". route entry "
                                                   "not found.",
                                                   req->path));
        return;
    }
    req->mount_path = m->path;
    size_t mlen = strlen(m->path);
    req->rel_path = strlen(req->path) >= mlen ? req->path + mlen : "";
    req->view = &m->view;
    node__mount_ttls(core, m, &req->mount_default_lease_s, &req->mount_max_lease_s);
    m->ops->handle(m->state, req);
}

static void use_cb(void *arg, int status, bool last)
{
    struct node_request *req = arg;
    struct core_call *call = req->core_priv;
    if (status != CF_OK) {
        node_request_done(req, node_response_error(403, "permission denied"));
        return;
    }
    call->revoke_after = last;
    /* Handlers see the entry as this use left it (lookup-self shows the uses left). */
    char hash[TOKEN_HASH_LEN + 1];
    memcpy(hash, call->token.hash, sizeof(hash));
    node__token_clear(&call->token);
    if (node__token_get_hash(req->core, hash, &call->token) != CF_OK) {
        node_request_done(req, node_response_error(403, "permission denied"));
        return;
    }
    dispatch(req->core, req);
}

/* After the request entry is written: consume a use, then dispatch. */
static void authorized(struct node_core *core, struct node_request *req)
{
    struct core_call *call = req->core_priv;
    if (call->standby_local && node__token_int(&call->token, "num_uses") > 0) {
        node_request_done(req, forward_response()); /* a use count is a write */
        return;
    }
    if (node__token_int(&call->token, "num_uses") > 0) {
        node__token_use(core, call->token.hash, use_cb, req);
        return;
    }
    dispatch(core, req);
}

/* What runs once the request entry is recorded. */
enum after_audit {
    AFTER_DISPATCH,
    AFTER_PREAUTH,
    AFTER_DENY,
};

struct req_audit
{
    struct node_request *req;
    enum after_audit next;
};

static void after_request_audit(struct node_request *req, enum after_audit next)
{
    struct node_core *core = req->core;
    switch (next) {
        case AFTER_DISPATCH:
            authorized(core, req);
            return;
        case AFTER_PREAUTH:
            node__wrap_preauth(core, req);
            return;
        case AFTER_DENY:
            node_request_done(req, node_response_error(403, "permission denied"));
            return;
    }
}

static void request_audited_cb(void *arg, int status)
{
    struct req_audit *ra = arg;
    struct node_request *req = ra->req;
    enum after_audit next = ra->next;
    cf_free(ra);
    if (status != CF_OK) {
        node_request_done(req, internal_error());
        return;
    }
    after_request_audit(req, next);
}

/* Writes the request entry (when devices are enabled), then continues with next. */
static void audit_request(struct node_request *req, enum after_audit next, const char *error)
{
    struct node_core *core = req->core;
    struct core_call *call = req->core_priv;
    if (core->audit == NULL || audit_device_count(core->audit) == 0) {
        after_request_audit(req, next);
        return;
    }
    json_t *e = node__audit_entry(core, req, call->token.entry ? &call->token : NULL,
                                  call->granting, NULL, error);
    struct req_audit *ra = cf_calloc(1, sizeof(*ra));
    if (e == NULL || ra == NULL) {
        json_decref(e);
        cf_free(ra);
        node_request_done(req, internal_error());
        return;
    }
    ra->req = req;
    ra->next = next;
    struct audit_opts opts;
    audit_opts_for(core, req, &opts);
    audit_log(core->audit, e, &opts, request_audited_cb, ra);
    json_decref(e);
}

/* Existence check: an update of a missing item is a create (core.md 1.1). */
static enum node_op acl_op(struct node_core *core, struct node_request *req)
{
    if (req->op != NODE_OP_UPDATE) {
        return req->op;
    }
    struct node_mount *m = node__mount_match(core, req->path);
    if (m == NULL || m->ops->exists == NULL || strncmp(req->path, "sys/", 4) == 0) {
        return req->op;
    }
    size_t mlen = strlen(m->path);
    req->mount_path = m->path;
    req->rel_path = strlen(req->path) >= mlen ? req->path + mlen : "";
    req->view = &m->view;
    bool exists = true;
    if (m->ops->exists(m->state, req, &exists) == CF_OK && !exists) {
        req->op = NODE_OP_CREATE;
    }
    return req->op;
}

/* Authenticates and authorizes a routed request, then audits it. */
static void authorize(struct node_core *core, struct node_request *req)
{
    struct core_call *call = req->core_priv;
    if (node__wrap_preauth_applies(req)) {
        audit_request(req, AFTER_PREAUTH, NULL);
        return;
    }
    /* sys/internal/ui/mounts is unauthenticated in Vault: no ACL check on the path itself; the
     * handler shows a caller only the mounts it has access to (node__caller_mount_access). */
    bool ui_mounts = strncmp(req->path, "sys/internal/ui/mounts", 22) == 0;
    if (ui_mounts && (req->token == NULL || req->token[0] == '\0')) {
        audit_request(req, AFTER_DISPATCH, NULL);
        return;
    }
    /* An engine's unauthenticated paths (PKI's ca, crl, cert/..., ocsp): no token, no ACL. */
    struct node_mount *um = ui_mounts ? NULL : node__mount_match(core, req->path);
    if (um != NULL && um->ops->unauth_paths != NULL && strncmp(req->path, "sys/", 4) != 0 &&
        node_engine_path_matches(um->ops->unauth_paths, req->path + strlen(um->path))) {
        audit_request(req, AFTER_DISPATCH, NULL);
        return;
    }
    if (req->token == NULL || node__token_get(core, req->token, &call->token) != CF_OK ||
        !node__token_live(&call->token, node__now_ns())) {
        node__token_clear(&call->token);
        audit_request(req, AFTER_DENY, "permission denied");
        return;
    }
    const char *cubby = node__token_str(&call->token, "cubbyhole_id");
    req->cubbyhole_id = cubby[0] ? cubby : NULL;
    if (ui_mounts) {
        audit_request(req, AFTER_DISPATCH, NULL);
        return;
    }
    const struct acl *acl = node__acl_for(core, json_object_get(call->token.entry, "policies"));
    if (acl == NULL) {
        node_request_done(req, internal_error());
        return;
    }
    struct acl_request ar = {
        .op = acl_op(core, req),
        .path = req->path,
        .data = req->data,
        .wrap_ttl_s = req->wrap_ttl_s,
        .need_sudo =
            acl_path_is_sudo(req->path) ||
            (um != NULL && um->ops->sudo_paths != NULL && strncmp(req->path, "sys/", 4) != 0 &&
             node_engine_path_matches(um->ops->sudo_paths, req->path + strlen(um->path))),
    };
    struct acl_result res;
    memset(&res, 0, sizeof(res));
    if (acl_check(acl, &ar, &res) != CF_OK) {
        json_decref(res.granting_policies);
        node_request_done(req, internal_error());
        return;
    }
    call->granting = res.granting_policies;
    call->sudo = res.is_root || (res.caps & ACL_CAP_SUDO) != 0;
    if (!res.allowed) {
        audit_request(req, AFTER_DENY, "permission denied");
        return;
    }
    audit_request(req, AFTER_DISPATCH, NULL);
}

void node__audit_release_waiters(struct node_core *core)
{
    struct core_call *list = core->audit_waiters;
    core->audit_waiters = NULL;
    /* Oldest first: the list was built by prepending. */
    struct core_call *rev = NULL;
    while (list != NULL) {
        struct core_call *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev != NULL) {
        struct core_call *n = rev->next;
        rev->next = NULL;
        if (core->sealed || core->audit_broken) {
            node_request_done(
                rev->req,
                node_response_error(
                    503, "%s", core->sealed ? "Vault is sealed" : "audit devices unavailable"));
        } else {
            authorize(core, rev->req);
        }
        rev = n;
    }
}

bool node__caller_mount_access(struct node_core *core,
                               const struct node_request *req,
                               const char *mount_path)
{
    const struct core_call *call = req->core_priv;
    if (call == NULL || call->token.entry == NULL) {
        return false;
    }
    const struct acl *acl = node__acl_for(core, json_object_get(call->token.entry, "policies"));
    return acl != NULL && acl_has_access_under(acl, mount_path);
}

bool node__token_sudo(struct node_core *core, const char *token, const char *path)
{
    struct node_token t;
    if (token == NULL || core->sealed || node__token_get(core, token, &t) != CF_OK) {
        return false;
    }
    bool ok = false;
    if (node__token_live(&t, node__now_ns())) {
        const struct acl *acl = node__acl_for(core, json_object_get(t.entry, "policies"));
        struct acl_request ar = {.op = NODE_OP_UPDATE, .path = path, .need_sudo = true};
        struct acl_result res;
        memset(&res, 0, sizeof(res));
        ok = acl != NULL && acl_check(acl, &ar, &res) == CF_OK && res.allowed;
        json_decref(res.granting_policies);
    }
    node__token_clear(&t);
    return ok;
}

static void reload_if_stale(struct node_core *core);

void node_core_handle(struct node_core *core, struct node_request *req)
{
    req->core = core;
    if (core->closing) {
        node_request_done(req, node_response_error(503, "Vault is shutting down"));
        return;
    }
    if (node__lifecycle_handle(core, req)) {
        return;
    }
    if (core->sealed || core->pending_seal != NULL || core->seal_requested) {
        node_request_done(req, node_response_error(503, "Vault is sealed"));
        return;
    }
    bool standby = !rft_store_is_ready(core->store);
    reload_if_stale(core);
    if (core->reload_pending || (standby && (req->wrap_ttl_s > 0 || req->op == NODE_OP_DELETE ||
                                             req->op == NODE_OP_PATCH))) {
        /* The active node serves this request (api/route forwards it). */
        node_request_done(req, forward_response());
        return;
    }
    if (core->audit_broken) {
        node_request_done(req, node_response_error(503, "audit devices unavailable"));
        return;
    }
    struct core_call *call = cf_calloc(1, sizeof(*call));
    if (call == NULL) {
        node_request_done(req, NULL);
        return;
    }
    call->req = req;
    call->standby_local = standby;
    call->standby_writes = core->standby_writes;
    call->lost_writes = core->lost_writes;
    req->core_priv = call;
    /* Route completions through routed_done_cb to keep the in-flight count. */
    core->inflight++;
    req->outer_done_cb = req->done_cb;
    req->done_cb = routed_done_cb;
    if (core->audit_pending > 0) {
        call->next = core->audit_waiters; /* the devices are still opening after unseal */
        core->audit_waiters = call;
        return;
    }
    authorize(core, req);
}

/* Life cycle --------------------------------------------------------------------------- */

int node_core_new(uv_loop_t *loop,
                  const struct node_core_config *cfg,
                  struct node_core **out,
                  char errmsg[CF_ERRMSG_SIZE])
{
    struct node_core *core = cf_calloc(1, sizeof(*core));
    if (core == NULL) {
        node_seal_free(cfg->seal);
        node_seal_free(cfg->old_seal);
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    core->auto_seal = cfg->seal;
    core->old_seal = cfg->old_seal;
    snprintf(core->old_seal_type, sizeof(core->old_seal_type), "%s",
             cfg->old_seal_type ? cfg->old_seal_type : "");
    core->loop = loop;
    core->sealed = true;
    core->storage_path = cf_strdup(cfg->storage_path);
    core->node_id = cf_strdup(cfg->node_id);
    core->api_addr = cf_strdup(cfg->api_addr ? cfg->api_addr : "");
    core->cluster_addr = cf_strdup(cfg->cluster_addr ? cfg->cluster_addr : "");
    core->barrier = barrier_new();
    core->expire = node__expire_new(loop, core);
    core->policies = node__policy_store_new();
    core->audit = audit_broker_new(loop);
    unsigned threads = uv_available_parallelism();
    if (cf_pool_new(loop, threads > 0 ? threads : 1, &core->pool) != CF_OK) {
        core->pool = NULL;
    }
    if (core->expire == NULL || core->policies == NULL || core->audit == NULL ||
        core->pool == NULL || core->storage_path == NULL || core->node_id == NULL ||
        core->api_addr == NULL || core->cluster_addr == NULL || core->barrier == NULL ||
        node__seal_health_start(core) != CF_OK) {
        cf_errmsg_printf(errmsg, "out of memory");
        node_core_close(core, NULL, NULL);
        return CF_ENOMEM;
    }
    core->cfg = *cfg;
    core->cfg.storage_path = core->storage_path;
    core->cfg.node_id = core->node_id;
    core->cfg.api_addr = core->api_addr;
    core->cfg.cluster_addr = core->cluster_addr;

    /* The raft address is host:port of the cluster address (scheme stripped). */
    const char *raddr = core->cluster_addr;
    const char *p = strstr(raddr, "://");
    if (p != NULL) {
        raddr = p + 3;
    }
    char rbuf[RFT_ADDRESS_MAX];
    snprintf(rbuf, sizeof(rbuf), "%.*s", (int)strcspn(raddr, "/"), raddr);
    struct rft_store_config scfg = {
        .dir = core->storage_path,
        .node_id = core->node_id,
        .address = rbuf[0] ? rbuf : "127.0.0.1:8201",
        .snapshot_threshold = cfg->snapshot_threshold,
        .snapshot_trailing = cfg->trailing_logs,
        .transport = cfg->transport,
    };
    int rv = rft_store_new(loop, &scfg, &core->store, errmsg);
    if (rv != CF_OK) {
        cf_errmsg_wrapf(errmsg, "storage %s", core->storage_path);
        node_core_close(core, NULL, NULL);
        return rv;
    }
    rv = node__cluster_open(core, errmsg);
    if (rv != CF_OK) {
        node_core_close(core, NULL, NULL);
        return rv;
    }
    *out = core;
    return CF_OK;
}

int node_core_register_engine(struct node_core *core, const struct node_engine_ops *ops)
{
    if (core->n_engines >= NODE_MAX_ENGINES) {
        return CF_ETOOBIG;
    }
    core->engines[core->n_engines++] = ops;
    return CF_OK;
}

void node__load_seal_config(struct node_core *core)
{
    const uint8_t *val;
    size_t len;
    if (node__raw_get(core, NODE_KEY_SEAL_CONFIG, &val, &len) != CF_OK) {
        return;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    snprintf(core->seal.type, sizeof(core->seal.type), "%s", type ? type : "shamir");
    core->seal.shares = (unsigned)json_integer_value(json_object_get(j, "secret_shares"));
    core->seal.threshold = (unsigned)json_integer_value(json_object_get(j, "secret_threshold"));
    core->seal.recovery_shares =
        (unsigned)json_integer_value(json_object_get(j, "recovery_shares"));
    core->seal.recovery_threshold =
        (unsigned)json_integer_value(json_object_get(j, "recovery_threshold"));
    json_decref(j);
}

int node__seal_config_put(struct rft_batch *b, const struct node_seal_config *sc)
{
    json_t *j = json_pack("{s:s,s:i,s:i}", "type", sc->type, "secret_shares", (int)sc->shares,
                          "secret_threshold", (int)sc->threshold);
    if (j != NULL && strcmp(sc->type, "shamir") != 0) {
        json_object_set_new(j, "recovery_shares", json_integer(sc->recovery_shares));
        json_object_set_new(j, "recovery_threshold", json_integer(sc->recovery_threshold));
    }
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    json_decref(j);
    int rv = s ? rft_batch_put(b, NODE_KEY_SEAL_CONFIG, (const uint8_t *)s, strlen(s)) : CF_ENOMEM;
    cf_free(s);
    return rv;
}

static void core_ready_notify(void *arg, int status)
{
    struct node_core *core = arg;
    if (core->ready_cb != NULL) {
        node_core_ready_cb cb = core->ready_cb;
        core->ready_cb = NULL;
        cb(core->ready_arg, status, NULL);
    }
}

static void store_ready_cb(struct rft_store *s, void *arg)
{
    struct node_core *core = arg;
    if (!rft_store_is_synced(s)) {
        return;
    }
    bool first = !core->storage_ready;
    core->storage_ready = true;
    if (first) {
        node__load_seal_config(core);
        CF_LOG(CF_LOG_INFO, "storage ready applied_index=%llu initialized=%s",
               (unsigned long long)rft_store_applied_index(core->store),
               node__initialized(core) ? "true" : "false");
        const char *want = core->auto_seal ? core->auto_seal->ops->type : "shamir";
        if (node__initialized(core) && strcmp(core->seal.type, want) != 0 &&
            strcmp(core->seal.type, core->old_seal_type) == 0) {
            core->migrating = true;
            CF_LOG(CF_LOG_WARN,
                   "seal migration from \"%s\" to \"%s\" pending: unseal with migrate=true "
                   "and the %s shares",
                   core->seal.type, want,
                   strcmp(core->seal.type, "shamir") == 0 ? "unseal" : "recovery");
        } else if (node__initialized(core) && core->auto_seal != NULL) {
            char errmsg[CF_ERRMSG_SIZE] = "";
            if (node__auto_unseal(core, errmsg) != CF_OK && errmsg[0] != '\0') {
                CF_LOG(CF_LOG_ERROR, "auto-unseal failed, the node stays sealed: %s", errmsg);
            }
        }
    }
    if (core->join != NULL) {
        char errmsg[CF_ERRMSG_SIZE] = "";
        if (node__join_finish(core, errmsg) != CF_OK) {
            CF_LOG(CF_LOG_ERROR, "unseal after joining failed, the node stays sealed: %s", errmsg);
        }
    }
    if (core->on_storage_ready != NULL) {
        void (*fn)(struct node_core *) = core->on_storage_ready;
        core->on_storage_ready = NULL;
        fn(core);
    }
    core_ready_notify(core, CF_OK);
    node__ha_update(core);
}

/* HA roles ------------------------------------------------------------------------------ */

#define HA_TICK_MS 1000

/* Reloads the unsealed state for the HA role the node now has (expiry and autopilot run only
 * on the active node; a new active node rereads everything the old one wrote). */
static void ha_reload(struct node_core *core)
{
    core->reload_pending = false;
    if (core->sealed || core->unseal_key == NULL || core->closing) {
        return;
    }
    struct cf_secret *k = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = cf_cloak_open(core->unseal_key, &k);
    bool active = rft_store_is_ready(core->store);
    CF_LOG(CF_LOG_INFO, "reloading for role %s", active ? "active" : "standby");
    node__autopilot_stop(core);
    if (rv == CF_OK) {
        node__seal_now(core);
        rv = node__unseal_with_key(core, k->data, k->len, errmsg);
    }
    cf_secret_free(k);
    if (rv != CF_OK) {
        CF_LOG(CF_LOG_ERROR, "reload for the new role failed, the node is sealed: %s",
               errmsg[0] ? errmsg : cf_strerror(rv));
    }
}

static void ha_tick_cb(uv_timer_t *t)
{
    struct node_core *core = t->data;
    node__ha_update(core);
    /* A sealed node cannot serve: if it leads, it hands leadership to another voter. */
    if (core->sealed && core->store != NULL && rft_store_is_ready(core->store) &&
        node__initialized(core) && rft_store_servers(core->store, NULL, 0) > 1) {
        CF_LOG(CF_LOG_INFO, "sealed leader: handing leadership to another voter");
        rft_store_transfer(core->store, NULL, NULL, NULL);
    }
    /* A standby reloads when the active node rewrote the keyring, mount or audit tables (a
     * snapshot restore, say), without waiting for a request to notice. */
    reload_if_stale(core);
}

void node__ha_update(struct node_core *core)
{
    if (core->closing || core->store == NULL) {
        return;
    }
    if (core->ha_timer == NULL && rft_store_started(core->store)) {
        core->ha_timer = cf_calloc(1, sizeof(*core->ha_timer));
        if (core->ha_timer == NULL) {
            cf_oom_abort();
        }
        uv_timer_init(core->loop, core->ha_timer);
        core->ha_timer->data = core;
        uv_timer_start(core->ha_timer, ha_tick_cb, HA_TICK_MS, HA_TICK_MS);
    }
    if (core->sealed) {
        return;
    }
    bool active = rft_store_is_ready(core->store);
    if (active != core->was_active) {
        core->reload_pending = true; /* new requests are forwarded meanwhile */
    }
    if (core->reload_pending && core->inflight == 0) {
        ha_reload(core);
        return; /* the unseal inside calls back here with the new role */
    }
    if (active && core->autopilot == NULL && !core->reload_pending) {
        node__cluster_gate(core);
        node__cluster_announce_active(core);
        node__autopilot_start(core);
    }
}

void node__state_versions(struct node_core *core, uint64_t out[4])
{
    static const char *const keys[4] = {NODE_KEY_KEYRING, NODE_KEY_MOUNTS, NODE_KEY_LOCAL_MOUNTS,
                                        NODE_KEY_AUDIT};
    for (int i = 0; i < 4; i++) {
        out[i] = 0;
        rft_store_get(core->store, keys[i], NULL, NULL, &out[i]);
    }
}

/* A standby whose in-memory tables are older than storage reloads them (once idle). */
static void reload_if_stale(struct node_core *core)
{
    if (core->sealed || core->reload_pending || core->store == NULL ||
        rft_store_is_ready(core->store)) {
        return;
    }
    uint64_t v[4];
    node__state_versions(core, v);
    if (memcmp(v, core->loaded_versions, sizeof(v)) == 0) {
        return;
    }
    CF_LOG(CF_LOG_INFO, "the active node changed the keyring, mount or audit tables: reloading");
    core->reload_pending = true;
    node__ha_update(core);
}

bool node_core_leader(struct node_core *core, struct node_leader_info *out)
{
    return node__cluster_leader_info(core, out);
}

bool node_core_is_active(const struct node_core *core)
{
    return !core->sealed && rft_store_is_ready(core->store) && !core->reload_pending;
}

uint64_t node_core_applied_index(const struct node_core *core)
{
    return rft_store_applied_index(core->store);
}

void node_core_state_token(struct node_core *core, char out[NODE_STATE_TOKEN_SIZE])
{
    out[0] = '\0';
    if (core->sealed) {
        return;
    }
    char plain[96];
    int n = snprintf(plain, sizeof(plain), "v1:%s:%llu", core->cluster_id,
                     (unsigned long long)rft_store_applied_index(core->store));
    char *b = cf_base64_encode((const uint8_t *)plain, (size_t)n);
    if (b != NULL) {
        snprintf(out, NODE_STATE_TOKEN_SIZE, "%s", b);
        cf_free(b);
    }
}

int node_core_state_index(struct node_core *core, const char *token, uint64_t *index)
{
    uint8_t *p = NULL;
    size_t n = 0;
    if (core->sealed || cf_base64_decode(token, strlen(token), &p, &n) != CF_OK) {
        return CF_EINVAL;
    }
    char buf[96];
    snprintf(buf, sizeof(buf), "%.*s", (int)(n < sizeof(buf) - 1 ? n : sizeof(buf) - 1),
             (const char *)p);
    cf_free(p);
    size_t cl = strlen(core->cluster_id);
    if (strncmp(buf, "v1:", 3) != 0 || strncmp(buf + 3, core->cluster_id, cl) != 0 ||
        buf[3 + cl] != ':') {
        return CF_EINVAL;
    }
    char *end = NULL;
    unsigned long long v = strtoull(buf + 4 + cl, &end, 10);
    if (end == buf + 4 + cl || *end != '\0') {
        return CF_EINVAL;
    }
    *index = v;
    return CF_OK;
}

struct apply_wait
{
    struct node_core *core;
    uv_timer_t timer;
    uint64_t index;
    uint64_t deadline_ms;
    void (*cb)(void *arg, int status);
    void *arg;
};

static void apply_wait_closed(uv_handle_t *h)
{
    cf_free(h->data);
}

static void apply_wait_tick(uv_timer_t *t)
{
    struct apply_wait *w = t->data;
    bool done = w->core->closing || rft_store_applied_index(w->core->store) >= w->index;
    if (!done && uv_now(w->core->loop) < w->deadline_ms) {
        return;
    }
    uv_timer_stop(t);
    w->cb(w->arg, done && !w->core->closing ? CF_OK : CF_ETIMEDOUT);
    uv_close((uv_handle_t *)t, apply_wait_closed);
}

void node_core_wait_applied(struct node_core *core,
                            uint64_t index,
                            unsigned timeout_ms,
                            void (*cb)(void *arg, int status),
                            void *arg)
{
    struct apply_wait *w = cf_calloc(1, sizeof(*w));
    if (w == NULL) {
        cf_oom_abort();
    }
    w->core = core;
    w->index = index;
    w->deadline_ms = uv_now(core->loop) + timeout_ms;
    w->cb = cb;
    w->arg = arg;
    uv_timer_init(core->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, apply_wait_tick, 0, 2);
}

int node_core_start(struct node_core *core,
                    node_core_ready_cb ready_cb,
                    void *arg,
                    char errmsg[CF_ERRMSG_SIZE])
{
    core->ready_cb = ready_cb;
    core->ready_arg = arg;
    if (!rft_store_bootstrapped(core->store) && !node__cluster_joined(core)) {
        /* Fresh node: nothing to replay; sys/init bootstraps raft, or the node joins. */
        node__defer(core, core_ready_notify, core, CF_OK);
        node__join_start_retry(core);
        return CF_OK;
    }
    int rv = node__start_store(core, errmsg);
    if (rv == CF_OK && rft_store_servers(core->store, NULL, 0) != 1) {
        /* A cluster member: its storage is ready only once a leader has brought it up to date,
         * which may take a while (or the rest of the cluster); serve sealed meanwhile. */
        node__defer(core, core_ready_notify, core, CF_OK);
    }
    return rv;
}

int node__start_store(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    int rv = rft_store_start(core->store, store_ready_cb, core, errmsg);
    if (rv != CF_OK) {
        cf_errmsg_wrapf(errmsg, "start storage %s", core->storage_path);
        return rv;
    }
    core->started = true;
    return CF_OK;
}

struct close_op
{
    struct node_core *core;
    void (*cb)(void *arg);
    void *arg;
    int waiting; /* the store and the worker pool, each closing */
};

static void core_free(struct node_core *core)
{
    node__seal_now(core);
    node__expire_close(core->expire);
    node__policy_store_free(core->policies);
    audit_broker_close(core->audit, NULL, NULL);
    barrier_free(core->barrier);
    node_seal_free(core->auto_seal);
    node_seal_free(core->old_seal);
    cf_free(core->storage_path);
    cf_free(core->node_id);
    cf_free(core->api_addr);
    cf_free(core->cluster_addr);
    cf_free(core);
}

/* The store and the worker pool close concurrently; the core goes when both have. */
static void part_closed_cb(void *arg)
{
    struct close_op *op = arg;
    if (--op->waiting > 0) {
        return;
    }
    core_free(op->core);
    if (op->cb != NULL) {
        op->cb(op->arg);
    }
    cf_free(op);
}

void node_core_close(struct node_core *core, void (*cb)(void *arg), void *arg)
{
    if (core == NULL) {
        return;
    }
    core->closing = true;
    node__seal_health_stop(core);
    node__autopilot_stop(core);
    node__report_stop(core);
    node__join_free(core);
    if (core->ha_timer != NULL) {
        uv_close((uv_handle_t *)core->ha_timer, (uv_close_cb)cf_free);
        core->ha_timer = NULL;
    }
    struct close_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        cf_oom_abort();
    }
    op->core = core;
    op->cb = cb;
    op->arg = arg;
    /* Work already running finishes and its completion runs while the core is whole; work
     * not yet started completes with CF_ECANCELED. */
    op->waiting = 1 + (core->pool != NULL) + (core->store != NULL);
    if (core->pool != NULL) {
        struct cf_pool *pool = core->pool;
        core->pool = NULL;
        cf_pool_close(pool, part_closed_cb, op);
    }
    if (core->store != NULL) {
        rft_store_close(core->store, part_closed_cb, op);
    }
    part_closed_cb(op);
}
