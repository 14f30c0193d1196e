/*
 * Unit tests for lib/tlsca.c: the cluster CA, node CSRs and signing, checked with OpenSSL's
 * own verifier (X509_verify_cert against the CA), plus refusals of bad CSRs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "lib/tlsca.h"

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

/* 1 when leaf verifies against ca with the given purpose. */
static int verifies(const char *ca_pem, const char *leaf_pem, int purpose)
{
    X509 *ca = pem_cert(ca_pem);
    X509 *leaf = pem_cert(leaf_pem);
    X509_STORE *st = X509_STORE_new();
    X509_STORE_add_cert(st, ca);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, st, leaf, NULL);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    X509_free(ca);
    X509_free(leaf);
    return ok;
}

static void test_ca_signs_node_cert(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE] = "";
    char *ca = NULL;
    char *cakey = NULL;
    char *key = NULL;
    char *csr = NULL;
    char *cert = NULL;
    char *cn = NULL;
    assert_int_equal(cf_tlsca_new_ca("test-ca", 30, &ca, &cakey, errmsg), CF_OK);
    assert_int_equal(cf_tlsca_new_csr("ignored-subject", &key, &csr, errmsg), CF_OK);
    assert_int_equal(cf_tlsca_sign(ca, cakey, csr, "node-2", 10, &cert, errmsg), CF_OK);
    assert_int_equal(verifies(ca, cert, X509_PURPOSE_SSL_SERVER), 1);
    assert_int_equal(verifies(ca, cert, X509_PURPOSE_SSL_CLIENT), 1);
    /* The CN is the node id given, not the CSR's subject. */
    assert_int_equal(cf_tlsca_cert_cn(cert, &cn, errmsg), CF_OK);
    assert_string_equal(cn, "node-2");
    /* Another CA does not vouch for it. */
    char *ca2 = NULL;
    char *ca2key = NULL;
    assert_int_equal(cf_tlsca_new_ca("other-ca", 30, &ca2, &ca2key, errmsg), CF_OK);
    assert_int_equal(verifies(ca2, cert, X509_PURPOSE_SSL_SERVER), 0);
    /* A node certificate cannot sign for others. */
    char *key3 = NULL;
    char *csr3 = NULL;
    char *cert3 = NULL;
    assert_int_equal(cf_tlsca_new_csr("x", &key3, &csr3, errmsg), CF_OK);
    assert_int_equal(cf_tlsca_sign(cert, key, csr3, "node-3", 10, &cert3, errmsg), CF_EINVAL);
    assert_null(cert3);
    cf_free(ca);
    cf_free(cakey);
    cf_free(key);
    cf_free(csr);
    cf_free(cert);
    cf_free(cn);
    cf_free(ca2);
    cf_free(ca2key);
    cf_free(key3);
    cf_free(csr3);
    cf_free(cert3);
}

static void test_sign_refuses_bad_csr(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE] = "";
    char *ca = NULL;
    char *cakey = NULL;
    char *key = NULL;
    char *csr = NULL;
    char *cert = NULL;
    assert_int_equal(cf_tlsca_new_ca("test-ca", 30, &ca, &cakey, errmsg), CF_OK);
    assert_int_equal(cf_tlsca_sign(ca, cakey, "not a csr", "n", 10, &cert, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "CSR"));
    assert_null(cert);
    /* A CSR whose signature was tampered with: flip a byte in the base64 body's tail. */
    assert_int_equal(cf_tlsca_new_csr("n", &key, &csr, errmsg), CF_OK);
    char *end = strstr(csr, "-----END");
    assert_non_null(end);
    char *p = end - 10;
    *p = *p == 'A' ? 'B' : 'A';
    int rv = cf_tlsca_sign(ca, cakey, csr, "n", 10, &cert, errmsg);
    assert_true(rv == CF_EAUTH || rv == CF_EMALFORMED);
    assert_null(cert);
    assert_int_equal(cf_tlsca_sign("junk", cakey, csr, "n", 10, &cert, errmsg), CF_ECORRUPT);
    assert_int_equal(cf_tlsca_cert_cn("junk", &end, errmsg), CF_EMALFORMED);
    cf_free(ca);
    cf_free(cakey);
    cf_free(key);
    cf_free(csr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_signs_node_cert),
        cmocka_unit_test(test_sign_refuses_bad_csr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
