/*
 * Unit tests for engines/pki/crl.c. Every CRL built here is decoded by OpenSSL (d2i_X509_CRL),
 * its signature verified against the issuer's public key (X509_CRL_verify), and its entries,
 * CRL Number, Authority Key Identifier and Delta CRL Indicator read back through OpenSSL's own
 * accessors; the PEM form is read by `openssl crl` when the CLI exists. Signers: RSA PKCS#1,
 * RSA-PSS, EC P-256 and P-384, Ed25519. Set PKI_CRL_BIG=1 to also build a 1,000,000-entry CRL
 * and print its build time and size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/crl.h"
#include "engines/pki/crl_build.h"
#include "engines/pki/key.h"
#include "engines/pki/x509.h"
#include "lib/err.h"
#include "lib/mem.h"

struct ca
{
    EVP_PKEY *key;
    X509 *cert;
};

static struct ca make_ca(enum pki_key_type type, int bits)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct ca ca = {0};
    assert_int_equal(pki_key_generate(type, bits, &ca.key, errmsg), CF_OK);
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("CRL test CA");
    t.is_ca = true;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    t.not_before = time(NULL) - 60;
    t.not_after = time(NULL) + 86400;
    assert_int_equal(pki_x509_cert_build(&t, ca.key, NULL, ca.key, &ca.cert, errmsg), CF_OK);
    pki_x509_template_close(&t);
    return ca;
}

static void free_ca(struct ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
}

static X509_CRL *decode(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    assert_non_null(crl);
    assert_ptr_equal(p, der + len);
    return crl;
}

static int64_t ext_int(X509_CRL *crl, int nid, int *crit)
{
    ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, nid, crit, NULL);
    if (n == NULL) {
        return -1;
    }
    int64_t v = 0;
    assert_int_equal(ASN1_INTEGER_get_int64(&v, n), 1);
    ASN1_INTEGER_free(n);
    return v;
}

/* Builds a CRL with n entries (serial i+1, some with the high bit set) and checks it. */
static void check_signer(enum pki_key_type type, int bits, bool pss, size_t n, int64_t delta)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct ca ca = make_ca(type, bits);
    struct cf_buf entries;
    cf_buf_init(&entries);
    int64_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        uint8_t serial[20] = {0};
        serial[0] = (i % 2) ? 0x80 : 0x00; /* odd: high bit set, needs a 0x00 pad */
        serial[19] = (uint8_t)(i + 1);
        serial[18] = (uint8_t)((i + 1) >> 8);
        assert_int_equal(pki_crl_entry_add(&entries, serial, sizeof(serial), now - (int64_t)i),
                         CF_OK);
    }
    struct pki_crl_params p = {
        .issuer = ca.cert,
        .signer = ca.key,
        .use_pss = pss,
        .number = 7,
        .delta_base = delta,
        .this_update = now,
        .next_update = now + 3600,
    };
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_crl_build(&p, entries.data, entries.len, &der, &len, errmsg), CF_OK);
    X509_CRL *crl = decode(der, len);
    EVP_PKEY *pub = X509_get0_pubkey(ca.cert);
    assert_int_equal(X509_CRL_verify(crl, pub), 1);
    assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca.cert)), 0);
    int day = 0;
    int sec = 0;
    assert_int_equal(
        ASN1_TIME_diff(&day, &sec, X509_CRL_get0_nextUpdate(crl), X509_CRL_get0_lastUpdate(crl)),
        1);
    assert_int_equal(day * 86400 + sec, -3600);

    STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
    assert_int_equal(rev != NULL ? sk_X509_REVOKED_num(rev) : 0, (int)n);
    for (size_t i = 0; i < n && i < 3; i++) {
        X509_REVOKED *r = sk_X509_REVOKED_value(rev, (int)i);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
        assert_int_equal(BN_is_negative(bn), 0);
        assert_int_equal(BN_is_bit_set(bn, 159), (i % 2) ? 1 : 0);
        assert_int_equal((BN_get_word(bn) & 0xffff) == 0 ? 0 : 1, 1);
        BN_free(bn);
        int cmp = ASN1_TIME_cmp_time_t(X509_REVOKED_get0_revocationDate(r), now - (int64_t)i);
        assert_int_equal(cmp, 0);
    }

    int crit = -1;
    assert_int_equal(ext_int(crl, NID_crl_number, &crit), 7);
    assert_int_equal(crit, 0);
    assert_int_equal(ext_int(crl, NID_delta_crl, &crit), delta);
    if (delta >= 0) {
        assert_int_equal(crit, 1);
    }
    AUTHORITY_KEYID *akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
    assert_non_null(akid);
    assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca.cert)), 0);
    AUTHORITY_KEYID_free(akid);

    /* A CRL of another issuer's key must not verify. */
    struct ca other = make_ca(PKI_KEY_EC, 256);
    assert_int_not_equal(X509_CRL_verify(crl, X509_get0_pubkey(other.cert)), 1);
    free_ca(&other);

    X509_CRL_free(crl);
    cf_free(der);
    cf_buf_close(&entries);
    free_ca(&ca);
}

static void test_rsa(void **state)
{
    (void)state;
    check_signer(PKI_KEY_RSA, 2048, false, 5, -1);
}

static void test_rsa_pss_delta(void **state)
{
    (void)state;
    check_signer(PKI_KEY_RSA, 2048, true, 3, 6);
}

static void test_ec(void **state)
{
    (void)state;
    check_signer(PKI_KEY_EC, 256, false, 300, -1);
    check_signer(PKI_KEY_EC, 384, false, 2, 1);
}

static void test_ed25519_empty(void **state)
{
    (void)state;
    check_signer(PKI_KEY_ED25519, 0, false, 0, -1);
}

static void test_entry_bounds(void **state)
{
    (void)state;
    struct cf_buf b;
    cf_buf_init(&b);
    uint8_t big[33] = {1};
    assert_int_equal(pki_crl_entry_add(&b, big, 33, 0), CF_EINVAL);
    assert_int_equal(pki_crl_entry_add(&b, big, 0, 0), CF_EINVAL);
    assert_int_equal(b.len, 0);
    /* Leading zeros are dropped: 00 00 05 encodes as INTEGER 05. */
    uint8_t z[3] = {0, 0, 5};
    assert_int_equal(pki_crl_entry_add(&b, z, 3, 0), CF_OK);
    assert_int_equal(b.data[2], 0x02);
    assert_int_equal(b.data[3], 1);
    assert_int_equal(b.data[4], 5);
    /* 2050 and later: GeneralizedTime. */
    cf_buf_reset(&b);
    assert_int_equal(pki_crl_entry_add(&b, z, 3, 2556144000 /* 2051-01-01 */), CF_OK);
    assert_int_equal(b.data[5], 0x18);
    cf_buf_close(&b);
}

static void test_sigalg(void **state)
{
    (void)state;
    int bits;
    bool pss;
    pki_crl_sigalg("SHA384WithRSAPSS", &bits, &pss);
    assert_int_equal(bits, 384);
    assert_true(pss);
    pki_crl_sigalg("SHA512WithRSA", &bits, &pss);
    assert_int_equal(bits, 512);
    assert_false(pss);
    pki_crl_sigalg("", &bits, &pss);
    assert_int_equal(bits, 0);
    pki_crl_sigalg("PureEd25519", &bits, &pss);
    assert_int_equal(bits, 0);
    assert_false(pss);
}

static void test_pem_cli(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct ca ca = make_ca(PKI_KEY_EC, 256);
    struct cf_buf entries;
    cf_buf_init(&entries);
    uint8_t s[2] = {0x12, 0x34};
    assert_int_equal(pki_crl_entry_add(&entries, s, 2, time(NULL)), CF_OK);
    struct pki_crl_params p = {.issuer = ca.cert,
                               .signer = ca.key,
                               .number = 1,
                               .delta_base = -1,
                               .this_update = time(NULL),
                               .next_update = time(NULL) + 60};
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_crl_build(&p, entries.data, entries.len, &der, &len, errmsg), CF_OK);
    char *pem = pki_crl_to_pem(der, len);
    assert_non_null(pem);
    assert_non_null(strstr(pem, "-----BEGIN X509 CRL-----"));
    if (system("openssl version >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/cf_crl_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof(cmd),
                 "openssl crl -in %s -noout -text 2>/dev/null | grep -q 'Serial Number: 1234'",
                 path);
        int rc = system(cmd);
        unlink(path);
        assert_int_equal(rc, 0);
    }
    cf_free(pem);
    cf_free(der);
    cf_buf_close(&entries);
    free_ca(&ca);
}

static void test_big(void **state)
{
    (void)state;
    const char *big = getenv("PKI_CRL_BIG");
    if (big == NULL || strcmp(big, "1") != 0) {
        skip();
    }
    char errmsg[CF_ERRMSG_SIZE];
    struct ca ca = make_ca(PKI_KEY_EC, 256);
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct cf_buf entries;
    cf_buf_init(&entries);
    for (uint32_t i = 0; i < 1000000; i++) {
        uint8_t s[20] = {0x3a};
        memcpy(s + 16, &i, 4);
        assert_int_equal(pki_crl_entry_add(&entries, s, 20, 1700000000 + i), CF_OK);
    }
    struct pki_crl_params p = {.issuer = ca.cert,
                               .signer = ca.key,
                               .number = 1,
                               .delta_base = -1,
                               .this_update = time(NULL),
                               .next_update = time(NULL) + 60};
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_crl_build(&p, entries.data, entries.len, &der, &len, errmsg), CF_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    X509_CRL *crl = decode(der, len);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca.cert)), 1);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1000000);
    printf("# 1,000,000 entries: built in %.3f s, %zu bytes\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, len);
    X509_CRL_free(crl);
    cf_free(der);
    cf_buf_close(&entries);
    free_ca(&ca);
}

/* The revoked/ entry reader agrees with jansson on the entries Coffer writes and declines
 * (for the caller to parse) whatever is not in the plain form. */
static void test_entry_fields(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{\"certificate_bytes\":\"MIIB+/"
        "==\",\"issuer_id\":\"6f1c2a4e-0000-4000-8000-0123456789ab\","
        "\"revocation_time\":1700000000,\"revocation_time_utc\":\"2023-11-14T22:13:20Z\"}",
        "{\"revocation_time\":-5,\"issuer_id\":\"\"}",
        "{ \"issuer_id\":\"x\", \"revocation_time\":0 }",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t when = 99;
        char id[128];
        assert_true(pki_crl_entry_fields(good[i], strlen(good[i]), &when, id, sizeof(id)));
        json_t *j = json_loads(good[i], 0, NULL);
        assert_non_null(j);
        assert_int_equal(when, json_integer_value(json_object_get(j, "revocation_time")));
        assert_string_equal(id, json_string_value(json_object_get(j, "issuer_id")));
        json_decref(j);
    }
    static const char *const declined[] = {
        "{\"issuer_id\":\"a\"}",
        "{\"revocation_time\":5}",
        "{\"issuer_id\":\"a\\u0041\",\"revocation_time\":5}",
        "{\"issuer_id\":\"a\",\"revocation_time\":\"5\"}",
        "{\"issuer_id\":\"a\",\"revocation_time\":12345678901234567890}",
        "{\"issuer_id\":\"unterminated",
        "{\"note\":\"\\\"issuer_id\\\":\\\"a\\\"\",\"revocation_time\":5}",
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
        int64_t when = 0;
        char id[128];
        if (pki_crl_entry_fields(declined[i], strlen(declined[i]), &when, id, sizeof(id))) {
            fail_msg("accepted %s", declined[i]);
        }
    }
    /* an id longer than the buffer is declined, not cut */
    char big[400];
    snprintf(big, sizeof(big), "{\"issuer_id\":\"%0200d\",\"revocation_time\":1}", 7);
    int64_t when = 0;
    char id[128];
    assert_false(pki_crl_entry_fields(big, strlen(big), &when, id, sizeof(id)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsa),          cmocka_unit_test(test_rsa_pss_delta),
        cmocka_unit_test(test_ec),           cmocka_unit_test(test_ed25519_empty),
        cmocka_unit_test(test_entry_bounds), cmocka_unit_test(test_sigalg),
        cmocka_unit_test(test_pem_cli),      cmocka_unit_test(test_big),
        cmocka_unit_test(test_entry_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
