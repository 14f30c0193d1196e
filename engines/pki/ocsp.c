/*
 * OCSP requests and responses (ocsp.h).
 */
#include "engines/pki/ocsp.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "engines/pki/key.h"
#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"

void pki_ocsp_req_close(struct pki_ocsp_req *r)
{
    OCSP_REQUEST_free(r->req);
    memset(r, 0, sizeof(*r));
}

int pki_ocsp_request_parse(const uint8_t *der, size_t len, struct pki_ocsp_req *out, char *errmsg)
{
    memset(out, 0, sizeof(*out));
    if (len > PKI_OCSP_MAX_REQUEST) {
        cf_errmsg_printf(errmsg, "OCSP request is larger than %d bytes", PKI_OCSP_MAX_REQUEST);
        return CF_ETOOBIG;
    }
    const unsigned char *p = der;
    out->req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    if (out->req == NULL || p != der + len) {
        pki_ocsp_req_close(out);
        cf_errmsg_printf(errmsg, "unable to parse OCSP request");
        return CF_EMALFORMED;
    }
    OCSP_ONEREQ *one =
        OCSP_request_onereq_count(out->req) > 0 ? OCSP_request_onereq_get0(out->req, 0) : NULL;
    out->id = one != NULL ? OCSP_onereq_get0_id(one) : NULL;
    ASN1_OBJECT *alg = NULL;
    ASN1_INTEGER *serial = NULL;
    if (out->id == NULL || OCSP_id_get0_info(NULL, &alg, NULL, &serial, out->id) != 1) {
        pki_ocsp_req_close(out);
        cf_errmsg_printf(errmsg, "OCSP request holds no certificate id");
        return CF_EMALFORMED;
    }
    out->md = EVP_get_digestbyobj(alg);
    int slen = ASN1_STRING_length(serial);
    if (out->md == NULL || slen <= 0 || slen > 32 || ASN1_STRING_type(serial) != V_ASN1_INTEGER) {
        pki_ocsp_req_close(out);
        cf_errmsg_printf(errmsg, "unsupported hash algorithm or serial in OCSP request");
        return CF_EMALFORMED;
    }
    out->serial_len = (size_t)slen;
    memcpy(out->serial, ASN1_STRING_get0_data(serial), out->serial_len);
    return CF_OK;
}

int pki_ocsp_request_from_get(const char *tail, struct pki_ocsp_req *out, char *errmsg)
{
    memset(out, 0, sizeof(*out));
    size_t n = strlen(tail);
    if (n == 0 || n > PKI_OCSP_MAX_REQUEST * 2) {
        cf_errmsg_printf(errmsg, "unable to parse OCSP request");
        return n == 0 ? CF_EMALFORMED : CF_ETOOBIG;
    }
    char *s = cf_malloc(n + 4);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = tail[i];
        uint8_t b;
        size_t got = 0;
        if (c == '%' && i + 2 < n + 1 && cf_hex_decode(tail + i + 1, 2, &b, 1, &got) == CF_OK &&
            got == 1) {
            c = (char)b;
            i += 2;
        }
        s[k++] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (k % 4 != 0) {
        s[k++] = '=';
    }
    s[k] = '\0';
    uint8_t *der = NULL;
    size_t len = 0;
    int rv = cf_base64_decode(s, k, &der, &len);
    cf_free(s);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "unable to decode the base64 OCSP request");
        return rv == CF_ENOMEM ? rv : CF_EMALFORMED;
    }
    rv = pki_ocsp_request_parse(der, len, out, errmsg);
    cf_free(der);
    return rv;
}

bool pki_ocsp_match_issuer(const struct pki_ocsp_req *r, X509 *ca)
{
    ASN1_OCTET_STRING *name_hash = NULL;
    ASN1_OCTET_STRING *key_hash = NULL;
    if (OCSP_id_get0_info(&name_hash, NULL, &key_hash, NULL, r->id) != 1) {
        return false;
    }
    unsigned char nh[EVP_MAX_MD_SIZE];
    unsigned char kh[EVP_MAX_MD_SIZE];
    unsigned int nl = 0;
    unsigned int kl = 0;
    if (X509_NAME_digest(X509_get_subject_name(ca), r->md, nh, &nl) != 1 ||
        X509_pubkey_digest(ca, r->md, kh, &kl) != 1) {
        return false;
    }
    return ASN1_STRING_length(name_hash) == (int)nl &&
           memcmp(ASN1_STRING_get0_data(name_hash), nh, nl) == 0 &&
           ASN1_STRING_length(key_hash) == (int)kl &&
           memcmp(ASN1_STRING_get0_data(key_hash), kh, kl) == 0;
}

static int steal_der(OCSP_RESPONSE *resp, uint8_t **der, size_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_OCSP_RESPONSE(resp, &p);
    if (n <= 0) {
        return CF_ENOMEM;
    }
    *der = cf_memdup(p, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(p);
    return *der != NULL ? CF_OK : CF_ENOMEM;
}

int pki_ocsp_response_build(const struct pki_ocsp_req *r,
                            const struct pki_ocsp_answer *a,
                            uint8_t **der,
                            size_t *len,
                            char *errmsg)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *cid = OCSP_CERTID_dup(r->id);
    ASN1_TIME *thisupd = ASN1_TIME_set(NULL, (time_t)a->this_update);
    ASN1_TIME *nextupd = a->next_update > 0 ? ASN1_TIME_set(NULL, (time_t)a->next_update) : NULL;
    ASN1_TIME *revtime =
        a->status == PKI_OCSP_REVOKED ? ASN1_TIME_set(NULL, (time_t)a->revoked_at) : NULL;
    EVP_MD_CTX *ctx = NULL;
    OCSP_RESPONSE *resp = NULL;
    int rv = CF_OK;
    if (bs == NULL || cid == NULL || thisupd == NULL || (a->next_update > 0 && nextupd == NULL) ||
        (a->status == PKI_OCSP_REVOKED && revtime == NULL)) {
        rv = CF_ENOMEM;
    }
    if (rv == CF_OK &&
        OCSP_basic_add1_status(bs, cid, (int)a->status,
                               a->status == PKI_OCSP_REVOKED ? OCSP_REVOKED_STATUS_NOSTATUS : 0,
                               revtime, thisupd, nextupd) == NULL) {
        rv = cf_err_from_ossl(errmsg, "OCSP status");
    }
    if (rv == CF_OK && OCSP_copy_nonce(bs, r->req) <= 0) {
        rv = cf_err_from_ossl(errmsg, "OCSP nonce");
    }
    if (rv == CF_OK) {
        rv = pki_key_sign_ctx_get(a->signature_bits == 0 ? a->sign_default : NULL, a->signer,
                                  a->signature_bits, false, &ctx, errmsg);
    }
    if (rv == CF_OK &&
        OCSP_basic_sign_ctx(bs, a->signer_cert, ctx, NULL, OCSP_NOCERTS | OCSP_RESPID_KEY) != 1) {
        rv = cf_err_from_ossl(errmsg, "sign OCSP response");
    }
    if (rv == CF_OK) {
        resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
        rv = resp != NULL ? steal_der(resp, der, len) : CF_ENOMEM;
    }
    OCSP_RESPONSE_free(resp);
    EVP_MD_CTX_free(ctx);
    ASN1_TIME_free(thisupd);
    ASN1_TIME_free(nextupd);
    ASN1_TIME_free(revtime);
    OCSP_CERTID_free(cid);
    OCSP_BASICRESP_free(bs);
    return rv;
}

int pki_ocsp_error_response(int ocsp_status, uint8_t **der, size_t *len)
{
    OCSP_RESPONSE *resp = OCSP_response_create(ocsp_status, NULL);
    if (resp == NULL) {
        return CF_ENOMEM;
    }
    int rv = steal_der(resp, der, len);
    OCSP_RESPONSE_free(resp);
    return rv;
}
