/*
 * The OCSP responder endpoints (pki.md 4.5): POST ocsp (body application/ocsp-request) and
 * GET ocsp/<base64 request>. The status comes from revoked/<serial>; the response is signed on
 * the worker pool by the issuer whose name and key hashes the request names (an issuer with a
 * key and ocsp-signing usage; the one recorded on the revocation first), or "unknown" signed by
 * the default issuer when no issuer of the mount matches.
 */
#include <string.h>

#include "engines/pki/crl.h"
#include "engines/pki/issuer.h"
#include "engines/pki/ocsp.h"
#include "engines/pki/pki.h"
#include "engines/pki/revoke.h"
#include "lib/crypto.h"
#include "lib/duration.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

struct ocsp_job
{
    struct node_request *req;
    struct pki_snap *snap;
    struct pki_ocsp_req parsed;
    struct pki_ocsp_answer answer;
    uint8_t *der;
    size_t len;
    int rv;
    char errmsg[CF_ERRMSG_SIZE];
};

static void ocsp_error(struct node_request *req, int http, int ocsp_status)
{
    uint8_t *der = NULL;
    size_t len = 0;
    struct node_response *r = NULL;
    if (pki_ocsp_error_response(ocsp_status, &der, &len) == CF_OK) {
        r = pki_raw_response("application/ocsp-response", der, len);
        if (r != NULL) {
            r->status = http;
        }
    }
    cf_free(der);
    pki_done(req, r);
}

static void job_free(struct ocsp_job *j)
{
    pki_ocsp_req_close(&j->parsed);
    if (j->snap != NULL) {
        pki_snap_release(j->snap);
    }
    cf_free(j->der);
    cf_free(j);
}

static void sign_work(void *arg)
{
    struct ocsp_job *j = arg;
    j->rv = pki_ocsp_response_build(&j->parsed, &j->answer, &j->der, &j->len, j->errmsg);
}

static void sign_after(void *arg, int status)
{
    struct ocsp_job *j = arg;
    if (status != CF_OK || j->rv != CF_OK) {
        ocsp_error(j->req, 500, OCSP_RESPONSE_STATUS_INTERNALERROR);
    } else {
        pki_done(j->req, pki_raw_response("application/ocsp-response", j->der, j->len));
    }
    job_free(j);
}

/* The colon-hex form of the request's serial, as stored keys name it. */
static void serial_text(const struct pki_ocsp_req *r, char out[PKI_X509_SERIAL_HEX_SIZE])
{
    const uint8_t *s = r->serial;
    size_t n = r->serial_len;
    while (n > 1 && s[0] == 0) {
        s++;
        n--;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char h[3];
        cf_hex_encode(s + i, 1, h);
        if (i > 0) {
            out[k++] = ':';
        }
        out[k++] = h[0];
        out[k++] = h[1];
    }
    out[k] = '\0';
}

static bool may_sign(const struct pki_issuer *is)
{
    return is != NULL && is->key != NULL && (is->usage & PKI_USAGE_OCSP);
}

static void answer(struct pki_engine *e, struct node_request *req, struct ocsp_job *j)
{
    json_t *cfg = pki_config_crl_shared(e);
    if (cfg == NULL || json_is_true(json_object_get(cfg, "ocsp_disable"))) {
        json_decref(cfg);
        ocsp_error(req, 401, OCSP_RESPONSE_STATUS_UNAUTHORIZED);
        job_free(j);
        return;
    }
    int64_t expiry = pki_config_secs(cfg, "ocsp_expiry");
    json_decref(cfg);
    j->snap = pki_snap_get(e);
    if (j->snap == NULL) {
        ocsp_error(req, 500, OCSP_RESPONSE_STATUS_INTERNALERROR);
        job_free(j);
        return;
    }
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    serial_text(&j->parsed, serial);
    struct pki_revocation rev;
    bool revoked = pki_revocation_load(e, serial, &rev) == CF_OK;
    const struct pki_issuer *signer = NULL;
    bool matched = false;
    for (size_t i = 0; i < j->snap->n_issuers; i++) {
        const struct pki_issuer *is = &j->snap->issuers[i];
        if (!pki_ocsp_match_issuer(&j->parsed, is->cert)) {
            continue;
        }
        matched = true;
        if (may_sign(is) && (signer == NULL || (revoked && strcmp(is->id, rev.issuer_id) == 0))) {
            signer = is;
        }
    }
    int64_t now = cf_now_s();
    j->answer.this_update = now;
    j->answer.next_update = expiry > 0 ? now + expiry : 0;
    if (!matched) {
        j->answer.status = PKI_OCSP_UNKNOWN;
        signer = pki_snap_issuer(j->snap, "default");
        signer = may_sign(signer) ? signer : NULL;
    } else if (revoked) {
        j->answer.status = PKI_OCSP_REVOKED;
        j->answer.revoked_at = rev.time;
    } else {
        j->answer.status = PKI_OCSP_GOOD;
    }
    if (signer == NULL) {
        ocsp_error(req, 401, OCSP_RESPONSE_STATUS_UNAUTHORIZED);
        job_free(j);
        return;
    }
    bool pss;
    pki_crl_sigalg(
        json_string_value(json_object_get(signer->entry, "revocation_signature_algorithm")),
        &j->answer.signature_bits, &pss); /* PSS is answered as PKCS#1 v1.5 */
    j->answer.signer_cert = signer->cert;
    j->answer.signer = signer->key->pkey;
    j->answer.sign_default = signer->key->sign_default;
    node_view_work(e->view, sign_work, sign_after, j);
}

bool pki_ocsp_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    bool post = strcmp(p, "ocsp") == 0;
    bool get = strncmp(p, "ocsp/", 5) == 0;
    if (!post && !get) {
        return false;
    }
    if ((post && req->op != NODE_OP_UPDATE && req->op != NODE_OP_CREATE) ||
        (get && req->op != NODE_OP_READ)) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    struct ocsp_job *j = cf_calloc(1, sizeof(*j));
    if (j == NULL) {
        pki_done(req, NULL);
        return true;
    }
    j->req = req;
    int rv = post ? pki_ocsp_request_parse(req->raw_body, req->raw_len, &j->parsed, j->errmsg)
                  : pki_ocsp_request_from_get(p + 5, &j->parsed, j->errmsg);
    if (rv != CF_OK) {
        ocsp_error(req, rv == CF_ENOMEM ? 500 : 400,
                   rv == CF_ENOMEM ? OCSP_RESPONSE_STATUS_INTERNALERROR
                                   : OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
        job_free(j);
        return true;
    }
    answer(e, req, j);
    return true;
}
