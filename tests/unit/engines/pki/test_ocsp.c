/*
 * Unit tests for engines/pki/ocsp.c. Requests are made by OpenSSL's own OCSP request API;
 * responses are checked by OpenSSL: OCSP_basic_verify against the CA (no certificates are
 * included, so the CA is given as the trusted signer), OCSP_resp_find_status for good, revoked
 * and unknown with their times, OCSP_check_nonce for the echoed nonce. Garbage, truncated and
 * oversized requests are refused, in both the DER and the GET (base64) forms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "engines/pki/key.h"
#include "engines/pki/ocsp.h"
#include "engines/pki/x509.h"
#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"

struct pair
{
    EVP_PKEY *key;
    X509 *cert;
};

static struct pair make(enum pki_key_type type, int bits, const char *cn, struct pair *issuer)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct pair p = {0};
    assert_int_equal(pki_key_generate(type, bits, &p.key, errmsg), CF_OK);
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup(cn);
    t.is_ca = issuer == NULL;
    t.key_usage = issuer == NULL ? PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN : PKI_KU_DIGITAL_SIGNATURE;
    t.not_before = time(NULL) - 60;
    t.not_after = time(NULL) + 86400;
    assert_int_equal(pki_x509_cert_build(&t, p.key, issuer ? issuer->cert : NULL,
                                         issuer ? issuer->key : p.key, &p.cert, errmsg),
                     CF_OK);
    pki_x509_template_close(&t);
    return p;
}

static void drop(struct pair *p)
{
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
}

/* DER of an OCSP request for leaf under ca, with the hash and optionally a nonce. */
static uint8_t *request_der(X509 *leaf, X509 *ca, const EVP_MD *md, bool nonce, size_t *len)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_cert_to_id(md, leaf, ca);
    assert_non_null(OCSP_request_add0_id(req, id));
    if (nonce) {
        assert_int_equal(OCSP_request_add1_nonce(req, NULL, 16), 1);
    }
    unsigned char *p = NULL;
    int n = i2d_OCSP_REQUEST(req, &p);
    assert_true(n > 0);
    uint8_t *out = cf_memdup(p, (size_t)n);
    OPENSSL_free(p);
    OCSP_REQUEST_free(req);
    *len = (size_t)n;
    return out;
}

/* Builds a response for r and checks it with OpenSSL; returns the status found. */
static int respond_and_check(struct pki_ocsp_req *r,
                             struct pair *ca,
                             X509 *leaf,
                             enum pki_ocsp_status st,
                             int64_t revoked_at)
{
    char errmsg[CF_ERRMSG_SIZE];
    int64_t now = time(NULL);
    struct pki_ocsp_answer a = {.status = st,
                                .revoked_at = revoked_at,
                                .this_update = now,
                                .next_update = now + 3600,
                                .signer_cert = ca->cert,
                                .signer = ca->key};
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_ocsp_response_build(r, &a, &der, &len, errmsg), CF_OK);
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    assert_non_null(resp);
    assert_int_equal(OCSP_response_status(resp), OCSP_RESPONSE_STATUS_SUCCESSFUL);
    OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
    assert_non_null(bs);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, ca->cert);
    STACK_OF(X509) *signers = sk_X509_new_null();
    sk_X509_push(signers, ca->cert);
    assert_int_equal(OCSP_basic_verify(bs, signers, store, OCSP_TRUSTOTHER), 1);
    assert_int_equal(OCSP_resp_get0_certs(bs) ? sk_X509_num(OCSP_resp_get0_certs(bs)) : 0, 0);
    OCSP_CERTID *id = OCSP_cert_to_id(r->md, leaf, ca->cert);
    int status = -1;
    int reason = 0;
    ASN1_GENERALIZEDTIME *rev = NULL;
    ASN1_GENERALIZEDTIME *thisupd = NULL;
    ASN1_GENERALIZEDTIME *nextupd = NULL;
    assert_int_equal(OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd, &nextupd), 1);
    assert_int_equal(OCSP_check_validity(thisupd, nextupd, 300, -1), 1);
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        assert_int_equal(ASN1_TIME_cmp_time_t(rev, (time_t)revoked_at), 0);
        assert_int_equal(reason, OCSP_REVOKED_STATUS_NOSTATUS);
    }
    OCSP_CERTID_free(id);
    sk_X509_free(signers);
    X509_STORE_free(store);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    cf_free(der);
    return status;
}

static void check_key_type(enum pki_key_type type, int bits)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct pair ca = make(type, bits, "OCSP CA", NULL);
    struct pair leaf = make(PKI_KEY_EC, 256, "leaf", &ca);
    size_t len = 0;
    uint8_t *der = request_der(leaf.cert, ca.cert, EVP_sha1(), false, &len);
    struct pki_ocsp_req r;
    assert_int_equal(pki_ocsp_request_parse(der, len, &r, errmsg), CF_OK);
    assert_true(pki_ocsp_match_issuer(&r, ca.cert));
    assert_false(pki_ocsp_match_issuer(&r, leaf.cert));
    assert_int_equal(respond_and_check(&r, &ca, leaf.cert, PKI_OCSP_GOOD, 0),
                     V_OCSP_CERTSTATUS_GOOD);
    assert_int_equal(respond_and_check(&r, &ca, leaf.cert, PKI_OCSP_REVOKED, time(NULL) - 100),
                     V_OCSP_CERTSTATUS_REVOKED);
    assert_int_equal(respond_and_check(&r, &ca, leaf.cert, PKI_OCSP_UNKNOWN, 0),
                     V_OCSP_CERTSTATUS_UNKNOWN);
    pki_ocsp_req_close(&r);
    cf_free(der);
    drop(&leaf);
    drop(&ca);
}

static void test_ec(void **state)
{
    (void)state;
    check_key_type(PKI_KEY_EC, 256);
    check_key_type(PKI_KEY_EC, 384);
}

static void test_rsa_and_ed25519(void **state)
{
    (void)state;
    check_key_type(PKI_KEY_RSA, 2048);
    check_key_type(PKI_KEY_ED25519, 0);
}

static void test_nonce_and_sha256(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct pair ca = make(PKI_KEY_EC, 256, "CA", NULL);
    struct pair leaf = make(PKI_KEY_EC, 256, "leaf", &ca);
    size_t len = 0;
    uint8_t *der = request_der(leaf.cert, ca.cert, EVP_sha256(), true, &len);
    struct pki_ocsp_req r;
    assert_int_equal(pki_ocsp_request_parse(der, len, &r, errmsg), CF_OK);
    assert_ptr_equal(r.md, EVP_sha256());
    assert_true(pki_ocsp_match_issuer(&r, ca.cert));
    const ASN1_INTEGER *sn = X509_get0_serialNumber(leaf.cert);
    assert_int_equal(r.serial_len, (size_t)ASN1_STRING_length(sn));
    assert_memory_equal(r.serial, ASN1_STRING_get0_data(sn), r.serial_len);
    struct pki_ocsp_answer a = {.status = PKI_OCSP_GOOD,
                                .this_update = time(NULL),
                                .signer_cert = ca.cert,
                                .signer = ca.key};
    uint8_t *rd = NULL;
    size_t rl = 0;
    assert_int_equal(pki_ocsp_response_build(&r, &a, &rd, &rl, errmsg), CF_OK);
    const unsigned char *p = rd;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)rl);
    OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
    assert_int_equal(OCSP_check_nonce(r.req, bs), 1);
    /* next_update 0: no nextUpdate. */
    OCSP_SINGLERESP *single = OCSP_resp_get0(bs, 0);
    ASN1_GENERALIZEDTIME *nextupd = (ASN1_GENERALIZEDTIME *)1;
    OCSP_single_get0_status(single, NULL, NULL, NULL, &nextupd);
    assert_null(nextupd);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    cf_free(rd);

    /* The GET form: standard base64 percent-encoded, and URL-safe without padding. */
    char *b64 = cf_base64_encode(der, len);
    char enc[4096];
    size_t k = 0;
    for (const char *c = b64; *c; c++) {
        if (*c == '/' || *c == '+' || *c == '=') {
            k += (size_t)snprintf(enc + k, sizeof(enc) - k, "%%%02X", (unsigned char)*c);
        } else {
            enc[k++] = *c;
        }
    }
    enc[k] = '\0';
    struct pki_ocsp_req g;
    assert_int_equal(pki_ocsp_request_from_get(enc, &g, errmsg), CF_OK);
    assert_memory_equal(g.serial, r.serial, r.serial_len);
    pki_ocsp_req_close(&g);
    for (char *c = b64; *c; c++) {
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    }
    char *eq = strchr(b64, '=');
    if (eq != NULL) {
        *eq = '\0';
    }
    assert_int_equal(pki_ocsp_request_from_get(b64, &g, errmsg), CF_OK);
    pki_ocsp_req_close(&g);
    cf_free(b64);
    pki_ocsp_req_close(&r);
    cf_free(der);
    drop(&leaf);
    drop(&ca);
}

static void test_bad_requests(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct pki_ocsp_req r;
    const uint8_t garbage[] = "not an OCSP request";
    assert_int_equal(pki_ocsp_request_parse(garbage, sizeof(garbage), &r, errmsg), CF_EMALFORMED);
    assert_null(r.req);
    /* A truncated real request. */
    struct pair ca = make(PKI_KEY_EC, 256, "CA", NULL);
    struct pair leaf = make(PKI_KEY_EC, 256, "leaf", &ca);
    size_t len = 0;
    uint8_t *der = request_der(leaf.cert, ca.cert, EVP_sha1(), true, &len);
    for (size_t cut = 0; cut < len; cut += 7) {
        assert_int_equal(pki_ocsp_request_parse(der, cut, &r, errmsg), CF_EMALFORMED);
    }
    /* Trailing bytes. */
    uint8_t *more = cf_malloc(len + 1);
    memcpy(more, der, len);
    more[len] = 0;
    assert_int_equal(pki_ocsp_request_parse(more, len + 1, &r, errmsg), CF_EMALFORMED);
    cf_free(more);
    /* Oversized. */
    uint8_t *big = cf_calloc(1, PKI_OCSP_MAX_REQUEST + 1);
    assert_int_equal(pki_ocsp_request_parse(big, PKI_OCSP_MAX_REQUEST + 1, &r, errmsg), CF_ETOOBIG);
    cf_free(big);
    /* An empty request list. */
    OCSP_REQUEST *empty = OCSP_REQUEST_new();
    unsigned char *p = NULL;
    int n = i2d_OCSP_REQUEST(empty, &p);
    assert_int_equal(pki_ocsp_request_parse(p, (size_t)n, &r, errmsg), CF_EMALFORMED);
    OPENSSL_free(p);
    OCSP_REQUEST_free(empty);
    /* GET forms. */
    assert_int_not_equal(pki_ocsp_request_from_get("", &r, errmsg), CF_OK);
    assert_int_not_equal(pki_ocsp_request_from_get("!!!!", &r, errmsg), CF_OK);
    assert_int_not_equal(pki_ocsp_request_from_get("%zz%", &r, errmsg), CF_OK);
    cf_free(der);
    drop(&leaf);
    drop(&ca);
}

static void test_error_response(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_ocsp_error_response(OCSP_RESPONSE_STATUS_UNAUTHORIZED, &der, &len), CF_OK);
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    assert_non_null(resp);
    assert_int_equal(OCSP_response_status(resp), OCSP_RESPONSE_STATUS_UNAUTHORIZED);
    assert_null(OCSP_response_get1_basic(resp));
    OCSP_RESPONSE_free(resp);
    cf_free(der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ec),
        cmocka_unit_test(test_rsa_and_ed25519),
        cmocka_unit_test(test_nonce_and_sha256),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_error_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
