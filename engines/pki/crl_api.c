/*
 * CRL endpoints (pki.md 4.2): crl, crl/pem, crl/delta, crl/delta/pem, issuer/:ref/crl (JSON),
 * issuer/:ref/crl/{der,pem}, issuer/:ref/crl/delta(/der,/pem), cert/crl and cert/delta-crl (and
 * their /raw, /raw/pem), crl/rotate and crl/rotate-delta. A set whose CRL was never built gets
 * one built before the answer (Vault builds it when the issuer is created).
 */
#include <string.h>

#include "engines/pki/crl.h"
#include "engines/pki/crl_build.h"
#include "engines/pki/issuer.h"
#include "engines/pki/pki.h"
#include "lib/mem.h"

enum form {
    FORM_DER,       /* application/pkix-crl */
    FORM_PEM,       /* application/x-pem-file */
    FORM_JSON_CRL,  /* {"crl": PEM} */
    FORM_JSON_CERT, /* {"certificate": PEM, "revocation_time": 0, ...} as cert/:serial */
};

struct fetch
{
    struct pki_engine *e;
    struct node_request *req;
    char ref[256];
    bool delta;
    enum form form;
};

static struct node_response *crl_response(enum form form, const uint8_t *der, size_t len)
{
    if (form == FORM_DER) {
        return pki_raw_response("application/pkix-crl", der, len);
    }
    char *pem = len > 0 ? pki_crl_to_pem(der, len) : cf_strdup("");
    if (pem == NULL) {
        return NULL;
    }
    struct node_response *r;
    if (form == FORM_PEM) {
        r = pki_raw_response("application/x-pem-file", pem, strlen(pem));
    } else if (form == FORM_JSON_CRL) {
        r = node_response_data(json_pack("{s:s}", "crl", pem));
    } else {
        r = node_response_data(json_pack("{s:s, s:i, s:s}", "certificate", pem, "revocation_time",
                                         0, "revocation_time_rfc3339", ""));
    }
    cf_free(pem);
    return r;
}

static void serve(struct fetch *f, bool may_build);

static void built(void *arg, int status, const char *errmsg, const json_t *warnings)
{
    (void)warnings;
    struct fetch *f = arg;
    if (status != CF_OK) {
        pki_done(f->req, node_response_error(500, "could not build the CRL: %s", errmsg));
        cf_free(f);
        return;
    }
    serve(f, false);
}

static void serve(struct fetch *f, bool may_build)
{
    struct pki_snap *s = pki_snap_get(f->e);
    if (s == NULL) {
        pki_done(f->req, node_response_error(500, "could not read the mount's issuers"));
        cf_free(f);
        return;
    }
    const struct pki_issuer *is = pki_snap_issuer(s, f->ref);
    uint8_t *der = NULL;
    size_t len = 0;
    int64_t built_at = 0;
    int rv = is != NULL ? pki_crl_load(f->e, is, f->delta, &der, &len, &built_at) : CF_ENOTFOUND;
    bool can_build = is != NULL && is->key != NULL && (is->usage & PKI_USAGE_CRL);
    pki_snap_release(s);
    if (rv == CF_ENOTFOUND && can_build && may_build) {
        pki_crl_rebuild(f->e, true, built, f);
        return;
    }
    struct node_response *r;
    if (is == NULL && strcmp(f->ref, "default") != 0) {
        r = node_response_error(404, "unable to find PKI issuer for reference: %s", f->ref);
    } else if (rv == CF_OK || rv == CF_ENOTFOUND) {
        r = pki_dated(f->req, crl_response(f->form, der, len), rv == CF_OK ? built_at : 0);
    } else {
        r = node_response_error(500, "could not read the CRL: %s", cf_strerror(rv));
    }
    cf_free(der);
    pki_done(f->req, r);
    cf_free(f);
}

static void fetch_start(struct pki_engine *e,
                        struct node_request *req,
                        const char *ref,
                        size_t ref_len,
                        bool delta,
                        enum form form)
{
    struct fetch *f = cf_calloc(1, sizeof(*f));
    if (f == NULL || ref_len >= sizeof(f->ref)) {
        cf_free(f);
        pki_done(req, f == NULL ? NULL : node_response_not_found());
        return;
    }
    f->e = e;
    f->req = req;
    memcpy(f->ref, ref, ref_len);
    f->delta = delta;
    f->form = form;
    serve(f, true);
}

/* crl/rotate, crl/rotate-delta ----------------------------------------------------------------- */

static void rotated(void *arg, int status, const char *errmsg, const json_t *warnings)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        pki_done(req, node_response_error(500, "error building CRL: %s", errmsg));
        return;
    }
    struct node_response *r = node_response_data(json_pack("{s:b}", "success", 1));
    if (r != NULL && json_array_size(warnings) > 0) {
        r->warnings = json_deep_copy(warnings);
    }
    pki_done(req, r);
}

static void rotate(struct pki_engine *e, struct node_request *req, bool delta)
{
    if (delta) {
        json_t *cfg = pki_config_crl_get(e);
        bool on = json_is_true(json_object_get(cfg, "enable_delta"));
        json_decref(cfg);
        if (!on) {
            struct node_response *r = node_response_data(json_pack("{s:b}", "success", 1));
            if (r != NULL) {
                r->warnings = json_pack("[s]",
                                        "requested rebuild of delta CRL when delta CRL is not "
                                        "enabled; this is a no-op");
            }
            pki_done(req, r);
            return;
        }
    }
    pki_crl_rebuild(e, !delta, rotated, req);
}

/* Routing -------------------------------------------------------------------------------------- */

static bool suffix_form(const char *rest, bool *delta, enum form *form, enum form json_form)
{
    static const struct
    {
        const char *s;
        bool delta;
        enum form form; /* FORM_JSON_CRL stands for json_form */
    } map[] = {
        {"", false, FORM_JSON_CRL},     {"/der", false, FORM_DER},
        {"/pem", false, FORM_PEM},      {"/delta", true, FORM_JSON_CRL},
        {"/delta/der", true, FORM_DER}, {"/delta/pem", true, FORM_PEM},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(rest, map[i].s) == 0) {
            *delta = map[i].delta;
            *form = map[i].form == FORM_JSON_CRL ? json_form : map[i].form;
            return true;
        }
    }
    return false;
}

bool pki_crl_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    bool delta = false;
    enum form form = FORM_DER;
    if (strcmp(p, "crl/rotate") == 0 || strcmp(p, "crl/rotate-delta") == 0) {
        if (req->op != NODE_OP_READ) {
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        rotate(e, req, strcmp(p, "crl/rotate-delta") == 0);
        return true;
    }
    const char *ref = "default";
    size_t ref_len = 7;
    bool match = false;
    if (strncmp(p, "crl", 3) == 0 && (p[3] == '\0' || p[3] == '/')) {
        /* crl, crl/pem, crl/delta, crl/delta/pem: DER unless /pem. */
        match = suffix_form(p + 3, &delta, &form, FORM_DER) &&
                (form == FORM_PEM || strcmp(p + 3, "") == 0 || strcmp(p + 3, "/delta") == 0);
    } else if (strncmp(p, "cert/", 5) == 0) {
        static const char *const names[] = {"crl", "delta-crl"};
        for (size_t i = 0; i < 2 && !match; i++) {
            size_t n = strlen(names[i]);
            const char *rest = p + 5 + n;
            if (strncmp(p + 5, names[i], n) != 0) {
                continue;
            }
            delta = i == 1;
            if (*rest == '\0') {
                form = FORM_JSON_CERT;
                match = true;
            } else if (strcmp(rest, "/raw") == 0) {
                form = FORM_DER;
                match = true;
            } else if (strcmp(rest, "/raw/pem") == 0) {
                form = FORM_PEM;
                match = true;
            }
        }
    } else if (strncmp(p, "issuer/", 7) == 0) {
        const char *r = p + 7;
        const char *slash = strchr(r, '/');
        if (slash != NULL && strncmp(slash, "/crl", 4) == 0) {
            ref = r;
            ref_len = (size_t)(slash - r);
            match = suffix_form(slash + 4, &delta, &form, FORM_JSON_CRL);
        }
    }
    if (!match) {
        return false;
    }
    if (req->op != NODE_OP_READ) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    fetch_start(e, req, ref, ref_len, delta, form);
    return true;
}
