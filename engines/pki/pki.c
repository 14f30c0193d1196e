/* The PKI engine's entry point: instance life cycle and routing to the concern files. */
#include "lib/metrics.h"
#include "engines/pki/pki.h"

#include <string.h>

#include "engines/pki/crl_build.h"
#include "engines/pki/issuer.h"
#include "engines/pki/revoke.h"
#include "engines/pki/role.h"
#include "lib/mem.h"

static int pki_create(struct node_view *view,
                      const json_t *options,
                      void **state,
                      char errmsg[CF_ERRMSG_SIZE])
{
    (void)options;
    struct pki_engine *e = cf_calloc(1, sizeof(*e));
    if (e == NULL) {
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    e->view = view;
    if (pki_crl_start(e) != CF_OK || pki_tidy_start(e) != CF_OK) {
        pki_crl_stop(e);
        pki_tidy_stop(e);
        cf_free(e);
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    *state = e;
    return CF_OK;
}

static void pki_destroy(void *state)
{
    struct pki_engine *e = state;
    pki_crl_stop(e);
    pki_tidy_stop(e);
    pki_snap_drop(e);
    pki_issue_drop_cache(e);
    json_decref(e->urls_cache.j);
    json_decref(e->cluster_cache.j);
    json_decref(e->crl_cache.j);
    cf_free(e);
}

/* The metric of a request that issues, signs or revokes ("vault.secrets.pki.issue", ...), or
 * NULL. issuer/:ref/ forms count with the plain ones. */
static const char *metric_of(const struct node_request *req)
{
    const char *p = req->rel_path;
    if (p == NULL || (req->op != NODE_OP_UPDATE && req->op != NODE_OP_CREATE)) {
        return NULL;
    }
    bool issuer_form = strncmp(p, "issuer/", 7) == 0;
    if (issuer_form) {
        const char *slash = strchr(p + 7, '/');
        p = slash != NULL ? slash + 1 : "";
        if (strcmp(p, "revoke") == 0) {
            return NULL; /* issuer/:ref/revoke revokes the issuer itself */
        }
    }
    if (strncmp(p, "issue/", 6) == 0) {
        return "vault.secrets.pki.issue";
    }
    if (strncmp(p, "sign/", 5) == 0) {
        return "vault.secrets.pki.sign";
    }
    if (strcmp(p, "sign-verbatim") == 0 || strncmp(p, "sign-verbatim/", 14) == 0) {
        return "vault.secrets.pki.sign_verbatim";
    }
    if (strcmp(p, "revoke") == 0 || strcmp(p, "revoke-with-key") == 0) {
        return "vault.secrets.pki.revoke";
    }
    return NULL;
}

/* A performance standby issues and signs on roles that store nothing (no_store, no lease); the
 * active node does everything else. */
static bool pki_standby_ok(void *state, const struct node_request *req)
{
    struct pki_engine *e = state;
    const char *metric = metric_of(req);
    if (metric == NULL || strcmp(metric, "vault.secrets.pki.revoke") == 0) {
        return false;
    }
    const char *p = req->rel_path;
    if (strncmp(p, "issuer/", 7) == 0) {
        p = strchr(p + 7, '/');
        p = p ? p + 1 : "";
    }
    const char *role = strchr(p, '/');
    if (role == NULL || role[1] == '\0') {
        return false; /* sign-verbatim without a role stores by default */
    }
    struct pki_role r;
    char errmsg[CF_ERRMSG_SIZE];
    bool ok = pki_role_load(e, role + 1, &r, errmsg) == CF_OK && r.no_store && !r.generate_lease;
    pki_role_close(&r);
    return ok;
}

void pki_done(struct node_request *req, struct node_response *resp)
{
    const char *metric = metric_of(req);
    /* Lease revocations (pki_revoke_secret) run without a mount path: not counted. */
    if (metric != NULL && req->mount_path != NULL && req->mount_path[0] != '\0') {
        if (resp != NULL && resp->errors == NULL) {
            cf_metrics_sample(metric, "mount", req->mount_path, cf_metrics_since_ms(req->start_ns));
        } else {
            char failed[64];
            snprintf(failed, sizeof(failed), "%s.failures", metric);
            cf_metrics_incr(failed, "mount", req->mount_path, 1);
        }
    }
    if (resp != NULL) {
        resp->mount_type = "pki";
    }
    node_request_done(req, resp);
}

int pki_read_json(struct pki_engine *e, const char *key, json_t **out)
{
    uint8_t *val = NULL;
    size_t len = 0;
    *out = NULL;
    int rv = node_view_get(e->view, key, &val, &len);
    if (rv != CF_OK) {
        return rv;
    }
    *out = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    return *out != NULL ? CF_OK : CF_ECORRUPT;
}

int pki_write_json(struct node_write *w, const char *key, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    int rv = node_write_put(w, key, (const uint8_t *)s, strlen(s));
    cf_cleanse(s, strlen(s));
    cf_free(s);
    return rv;
}

struct reply_op
{
    struct node_request *req;
    json_t *data;
    json_t *warnings;
};

static void reply_committed(void *arg, int status)
{
    struct reply_op *op = arg;
    struct node_response *resp;
    if (status != CF_OK) {
        json_decref(op->data);
        resp = node_response_error(500, "failed to store: %s", cf_strerror(status));
    } else {
        resp = node_response_data(op->data);
        if (resp != NULL && json_array_size(op->warnings) > 0) {
            resp->warnings = json_incref(op->warnings);
        }
    }
    json_decref(op->warnings);
    pki_done(op->req, resp);
    cf_free(op);
}

void pki_commit_reply(struct node_request *req,
                      struct node_write *w,
                      json_t *data,
                      json_t *warnings)
{
    struct reply_op *op = w != NULL ? cf_calloc(1, sizeof(*op)) : NULL;
    if (op == NULL) {
        node_write_free(w);
        json_decref(data);
        json_decref(warnings);
        pki_done(req, NULL);
        return;
    }
    op->req = req;
    op->data = data;
    op->warnings = warnings;
    node_write_commit(w, reply_committed, op);
}

static void pki_handle(void *state, struct node_request *req)
{
    struct pki_engine *e = state;
    if (pki_issue_handle(e, req) || pki_config_handle(e, req) || pki_role_handle(e, req) ||
        pki_generate_handle(e, req) || pki_revoke_handle(e, req) || pki_crl_handle(e, req) ||
        pki_crl_sign_handle(e, req) || pki_ocsp_handle(e, req) || pki_tidy_handle(e, req) ||
        pki_issuers_handle(e, req) || pki_fetch_handle(e, req)) {
        return;
    }
    pki_done(req, node_response_error(404, "unsupported path"));
}

/* pki.md 0: paths served without a token. */
static const char *const unauth_paths[] = {
    "cert/*",
    "ca",
    "ca/pem",
    "ca_chain",
    "crl",
    "crl/pem",
    "crl/delta",
    "crl/delta/pem",
    "issuer/+/der",
    "issuer/+/pem",
    "issuer/+/json",
    "issuer/+/crl",
    "issuer/+/crl/der",
    "issuer/+/crl/pem",
    "issuer/+/crl/delta",
    "issuer/+/crl/delta/der",
    "issuer/+/crl/delta/pem",
    "issuers/",
    "ocsp",
    "ocsp/*",
    NULL,
};

/* pki.md 0: paths that need sudo. */
static const char *const sudo_paths[] = {
    "root",
    "root/sign-self-issued",
    NULL,
};

static int pki_exists(void *state, struct node_request *req, bool *exists)
{
    *exists = pki_role_exists(state, req->rel_path);
    return CF_OK;
}

const struct node_engine_ops pki_engine_ops = {
    .type = "pki",
    .create = pki_create,
    .destroy = pki_destroy,
    .handle = pki_handle,
    .exists = pki_exists,
    .standby_ok = pki_standby_ok,
    .unauth_paths = unauth_paths,
    .sudo_paths = sudo_paths,
    .revoke_secret = pki_revoke_secret,
};

struct node_response *pki_dated(const struct node_request *req, struct node_response *r, int64_t lm)
{
    if (r == NULL || r->errors != NULL || lm <= 0) {
        return r;
    }
    if (req->if_modified_since > 0 && req->if_modified_since >= lm) {
        node_response_free(r);
        r = node_response_new();
        if (r != NULL) {
            r->status = 304;
        }
    }
    if (r != NULL) {
        r->last_modified = lm;
    }
    return r;
}
