/*
 * libFuzzer target for the OCSP request parsers of engines/pki (pki_ocsp_request_parse on the
 * bytes as a POST body, pki_ocsp_request_from_get on them as the GET path) and the CRL entry
 * encoder. A request that parses is matched against a fixed CA and answered; the answer must
 * decode as a successful OCSPResponse whose signature verifies. ASan/UBSan and the allocation
 * counter catch crashes, overflows and leaks.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "engines/pki/crl.h"
#include "engines/pki/key.h"
#include "engines/pki/ocsp.h"
#include "engines/pki/x509.h"
#include "lib/err.h"
#include "lib/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *ca_key;
static X509 *ca_cert;

static void ca_init(void)
{
    char errmsg[CF_ERRMSG_SIZE];
    if (ca_key != NULL) {
        return;
    }
    if (pki_key_generate(PKI_KEY_EC, 256, &ca_key, errmsg) != CF_OK) {
        abort();
    }
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("fuzz ocsp root");
    t.is_ca = true;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    t.not_before = (int64_t)time(NULL) - 60;
    t.not_after = t.not_before + 86400;
    if (pki_x509_cert_build(&t, ca_key, NULL, ca_key, &ca_cert, errmsg) != CF_OK) {
        abort();
    }
    pki_x509_template_close(&t);
}

static bool signature_ok(OCSP_BASICRESP *bs)
{
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *signers = sk_X509_new_null();
    bool ok = store != NULL && signers != NULL && sk_X509_push(signers, ca_cert) > 0 &&
              OCSP_basic_verify(bs, signers, store, OCSP_NOVERIFY | OCSP_TRUSTOTHER) == 1;
    sk_X509_free(signers);
    X509_STORE_free(store);
    return ok;
}

static void answer(struct pki_ocsp_req *r)
{
    char errmsg[CF_ERRMSG_SIZE];
    (void)pki_ocsp_match_issuer(r, ca_cert);
    struct pki_ocsp_answer a = {.status = PKI_OCSP_REVOKED,
                                .revoked_at = 1700000000,
                                .this_update = 1700000000,
                                .next_update = 1700003600,
                                .signer_cert = ca_cert,
                                .signer = ca_key};
    uint8_t *der = NULL;
    size_t len = 0;
    if (pki_ocsp_response_build(r, &a, &der, &len, errmsg) != CF_OK) {
        return; /* e.g. a nonce OpenSSL will not copy */
    }
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *bs = resp != NULL ? OCSP_response_get1_basic(resp) : NULL;
    if (bs == NULL || OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        !signature_ok(bs)) {
        abort();
    }
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    cf_free(der);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_init();
    long live = cf_mem_live();
    char errmsg[CF_ERRMSG_SIZE];
    struct pki_ocsp_req r;
    if (pki_ocsp_request_parse(data, size, &r, errmsg) == CF_OK) {
        if (r.serial_len == 0 || r.serial_len > 32 || r.md == NULL) {
            abort();
        }
        answer(&r);
        pki_ocsp_req_close(&r);
    }
    char *text = cf_malloc(size + 1);
    if (text != NULL) {
        memcpy(text, data, size);
        text[size] = '\0';
        if (pki_ocsp_request_from_get(text, &r, errmsg) == CF_OK) {
            answer(&r);
            pki_ocsp_req_close(&r);
        }
        cf_free(text);
    }
    /* The bytes as a serial for a CRL entry. */
    struct cf_buf b;
    cf_buf_init(&b);
    int rv = pki_crl_entry_add(&b, data, size, 1700000000);
    if (rv == CF_OK && b.len < 2 + 3 + 15) {
        abort();
    }
    cf_buf_close(&b);
    if (cf_mem_live() != live) {
        abort();
    }
    return 0;
}
