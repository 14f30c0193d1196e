/* The PKI engine's entry point: instance life cycle and routing to the concern files. */
#include "engines/pki/pki.h"

#include "engines/pki/issuer.h"
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
    *state = e;
    return CF_OK;
}

static void pki_destroy(void *state)
{
    struct pki_engine *e = state;
    pki_snap_drop(e);
    pki_issue_drop_cache(e);
    cf_free(e);
}

void pki_done(struct node_request *req, struct node_response *resp)
{
    if (resp != NULL) {
        resp->mount_type = "pki";
    }
    node_request_done(req, resp);
}

static void pki_handle(void *state, struct node_request *req)
{
    struct pki_engine *e = state;
    if (pki_issue_handle(e, req) || pki_config_handle(e, req) || pki_role_handle(e, req) ||
        pki_generate_handle(e, req) || pki_issuers_handle(e, req) || pki_fetch_handle(e, req)) {
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
    .unauth_paths = unauth_paths,
};
