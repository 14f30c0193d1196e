/*
 * Unit tests for engines/pki/cert_der.c and engines/pki/leaf_key.c. The direct DER writer must
 * produce the TBSCertificate pki_x509_cert_build (OpenSSL's ASN.1 encoder) produces for the
 * same template, subject key, serial and times, byte for byte: every template feature, every
 * issuer key type and signature choice, and issuers with and without a subject key id are
 * compared, and each certificate's signature is checked with X509_verify. Leaf keys are read
 * back by OpenSSL's own decoders and checked pairwise. Bad template values are refused with
 * pki_x509_cert_build's messages.
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

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/cert_der.h"
#include "engines/pki/key.h"
#include "engines/pki/x509.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

static EVP_PKEY *gen(enum pki_key_type type, int bits)
{
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *k = NULL;
    assert_int_equal(pki_key_generate(type, bits, &k, errmsg), CF_OK);
    return k;
}

static void add(struct pki_x509_strs *l, const char *s)
{
    assert_int_equal(pki_x509_strs_add(l, s), CF_OK);
}

static void fixed(struct pki_x509_template *t, uint8_t first)
{
    t->not_before = 1795000000;
    t->not_after = 1795003600;
    for (size_t i = 0; i < 20; i++) {
        t->serial[i] = (uint8_t)(first + i * 7);
    }
    t->serial_len = 20;
}

static X509 *make_root(EVP_PKEY *k)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("Root");
    add(&t.organization, "Coffer");
    t.is_ca = true;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    fixed(&t, 1);
    X509 *x = NULL;
    assert_int_equal(pki_x509_cert_build(&t, k, NULL, k, &x, errmsg), CF_OK);
    pki_x509_template_close(&t);
    return x;
}

/* An issuer certificate without a subject key id (made by OpenSSL directly). */
static X509 *make_bare_root(EVP_PKEY *k)
{
    X509 *x = X509_new();
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"Bare", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    assert_null(X509_get0_subject_key_id(x));
    ERR_clear_error();
    return x;
}

struct issuer
{
    X509 *cert;
    EVP_PKEY *key;
    uint8_t *name;
    size_t name_len;
    struct pki_cert_issuer ci;
    EVP_MD_CTX *sign_default;
};

static void issuer_init(struct issuer *is, X509 *cert, EVP_PKEY *key)
{
    is->cert = cert;
    is->key = key;
    unsigned char *der = NULL;
    int n = i2d_X509_NAME(X509_get_subject_name(cert), &der);
    assert_true(n > 0);
    is->name = cf_memdup(der, (size_t)n);
    is->name_len = (size_t)n;
    OPENSSL_free(der);
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(cert);
    ERR_clear_error();
    is->ci.name_der = is->name;
    is->ci.name_len = is->name_len;
    is->ci.skid = skid != NULL ? ASN1_STRING_get0_data(skid) : NULL;
    is->ci.skid_len = skid != NULL ? (size_t)ASN1_STRING_length(skid) : 0;
    is->ci.key = key;
    char em[CF_ERRMSG_SIZE];
    assert_int_equal(pki_key_describe(key, &is->ci.key_type, &is->ci.key_bits, em), CF_OK);
    /* As the snapshot prepares it; the bare issuer below signs without one. */
    char errmsg[CF_ERRMSG_SIZE];
    is->sign_default = NULL;
    if (X509_get0_subject_key_id(cert) != NULL) {
        assert_int_equal(pki_key_sign_ctx_new(key, 0, false, &is->sign_default, errmsg), CF_OK);
    }
    ERR_clear_error();
    is->ci.sign_default = is->sign_default;
}

static void issuer_close(struct issuer *is)
{
    cf_free(is->name);
    EVP_MD_CTX_free(is->sign_default);
    X509_free(is->cert);
    EVP_PKEY_free(is->key);
}

/* DER of x's TBSCertificate (re-encoded by OpenSSL). */
static uint8_t *tbs_der(X509 *x, int *len)
{
    unsigned char *p = NULL;
    *len = i2d_re_X509_tbs(x, &p);
    assert_true(*len > 0);
    return p;
}

/* Builds t both ways for spki/subject and compares; returns the direct one (X509_free). */
static X509 *compare(const struct pki_x509_template *t,
                     EVP_PKEY *subject,
                     const uint8_t *spki,
                     size_t spki_len,
                     struct issuer *is)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    X509 *ref = NULL;
    int rv = pki_x509_cert_build(t, subject, is->cert, is->key, &ref, errmsg);
    if (rv != CF_OK) {
        fail_msg("reference build: %s", errmsg);
    }
    struct cf_buf der;
    cf_buf_init(&der);
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    rv = pki_cert_der_build(t, spki, spki_len, &is->ci, &der, serial, errmsg);
    if (rv != CF_OK) {
        fail_msg("direct build: %s", errmsg);
    }
    X509 *got = NULL;
    assert_int_equal(pki_x509_cert_from_der(der.data, der.len, &got, errmsg), CF_OK);
    /* Our DER is what OpenSSL re-encodes from it (it is canonical DER). */
    unsigned char *again = NULL;
    int alen = i2d_X509(got, &again);
    assert_int_equal((size_t)alen, der.len);
    assert_memory_equal(again, der.data, der.len);
    OPENSSL_free(again);
    /* The TBSCertificate matches the reference byte for byte. */
    int rlen = 0;
    int glen = 0;
    uint8_t *r = tbs_der(ref, &rlen);
    uint8_t *g = tbs_der(got, &glen);
    if (rlen != glen || memcmp(r, g, (size_t)rlen) != 0) {
        BIO *b = BIO_new_fp(stderr, BIO_NOCLOSE);
        X509_print(b, ref);
        X509_print(b, got);
        BIO_free(b);
        fail_msg("TBSCertificate differs (reference %d bytes, direct %d bytes)", rlen, glen);
    }
    OPENSSL_free(r);
    OPENSSL_free(g);
    /* The outer signature algorithm too, and the signature verifies. */
    const X509_ALGOR *ra = NULL;
    const X509_ALGOR *ga = NULL;
    X509_get0_signature(NULL, &ra, ref);
    X509_get0_signature(NULL, &ga, got);
    assert_int_equal(X509_ALGOR_cmp(ra, ga), 0);
    assert_int_equal(X509_verify(got, X509_get0_pubkey(is->cert)), 1);
    char want[PKI_X509_SERIAL_HEX_SIZE];
    assert_int_equal(pki_x509_serial_hex(got, want, errmsg), CF_OK);
    assert_string_equal(serial, want);
    X509_free(ref);
    cf_buf_close(&der);
    return got;
}

static X509 *compare_key(const struct pki_x509_template *t, EVP_PKEY *subject, struct issuer *is)
{
    struct cf_buf spki;
    cf_buf_init(&spki);
    assert_int_equal(pki_key_spki_der(subject, &spki), CF_OK);
    /* Same bytes as OpenSSL's own SubjectPublicKeyInfo encoder. */
    unsigned char *ref = NULL;
    int n = i2d_PUBKEY(subject, &ref);
    assert_int_equal((size_t)n, spki.len);
    assert_memory_equal(ref, spki.data, spki.len);
    OPENSSL_free(ref);
    X509 *x = compare(t, subject, spki.data, spki.len, is);
    cf_buf_close(&spki);
    return x;
}

/* A leaf template with every feature of the template. */
static void full_template(struct pki_x509_template *t)
{
    pki_x509_template_init(t);
    t->common_name = cf_strdup("www.example.com");
    add(&t->country, "US");
    add(&t->organization, "Example Org");
    add(&t->ou, "Unit B");
    add(&t->ou, "Unit A");
    add(&t->ou, "Unit");
    add(&t->ou, "");
    add(&t->locality, "Springfield");
    add(&t->province, "Oregon");
    add(&t->street_address, "1 Main St & Co"); /* '&' is not printable: UTF8String */
    add(&t->postal_code, "97001");
    t->serial_number = cf_strdup("SN-42");
    add(&t->user_ids, "alice");
    add(&t->user_ids,
        "b\xc3\xb6"
        "b");
    add(&t->dns, "www.example.com");
    add(&t->dns, "*.example.org");
    add(&t->email, "ops@example.com");
    add(&t->ip, "10.1.2.3");
    add(&t->ip, "2001:db8::1");
    add(&t->uri, "spiffe://example.com/svc");
    assert_int_equal(pki_x509_template_add_other_san(t, "1.3.6.1.4.1.311.20.2.3", "a@b.c"), CF_OK);
    assert_int_equal(pki_x509_template_add_other_san(t, "1.2.3.4", "v\xc3\xa4lue"), CF_OK);
    t->key_usage = 0x1ff; /* every bit, DecipherOnly in the second byte */
    t->ext_key_usage = 0xfff;
    add(&t->ext_key_usage_oids, "1.2.3.4.5");
    add(&t->ext_key_usage_oids, "2.999.1234567890123");
    add(&t->policy_identifiers, "2.23.140.1.2.1");
    add(&t->policy_identifiers, "1.3.6.1.4.1.44947.1.1.1");
    add(&t->issuing_certificates, "http://pki.example.com/v1/pki/ca");
    add(&t->issuing_certificates, "http://pki2.example.com/ca");
    add(&t->ocsp_servers, "http://pki.example.com/v1/pki/ocsp");
    add(&t->crl_distribution_points, "http://pki.example.com/v1/pki/crl");
    add(&t->crl_distribution_points, "ldap://crl.example.com/x");
    t->basic_constraints_valid_for_non_ca = true;
    fixed(t, 0x91); /* top bit set: the serial INTEGER needs a leading zero */
}

static void test_full_leaf_every_signer(void **state)
{
    (void)state;
    struct
    {
        enum pki_key_type type;
        int bits;
        int signature_bits;
        bool pss;
    } signers[] = {
        {PKI_KEY_EC, 256, 0, false},     {PKI_KEY_EC, 384, 0, false},
        {PKI_KEY_EC, 521, 256, false},   {PKI_KEY_EC, 224, 0, false},
        {PKI_KEY_RSA, 2048, 0, false},   {PKI_KEY_RSA, 2048, 384, false},
        {PKI_KEY_RSA, 2048, 512, false}, {PKI_KEY_RSA, 2048, 256, true},
        {PKI_KEY_RSA, 2048, 512, true},  {PKI_KEY_ED25519, 0, 0, false},
    };
    EVP_PKEY *subjects[] = {gen(PKI_KEY_EC, 256), gen(PKI_KEY_RSA, 2048), gen(PKI_KEY_ED25519, 0),
                            gen(PKI_KEY_EC, 521)};
    for (size_t i = 0; i < sizeof(signers) / sizeof(signers[0]); i++) {
        EVP_PKEY *k = gen(signers[i].type, signers[i].bits);
        struct issuer is;
        issuer_init(&is, make_root(k), k);
        for (size_t s = 0; s < sizeof(subjects) / sizeof(subjects[0]); s++) {
            struct pki_x509_template t;
            full_template(&t);
            t.signature_bits = signers[i].signature_bits;
            t.use_pss = signers[i].pss;
            X509_free(compare_key(&t, subjects[s], &is));
            pki_x509_template_close(&t);
        }
        issuer_close(&is);
    }
    for (size_t s = 0; s < sizeof(subjects) / sizeof(subjects[0]); s++) {
        EVP_PKEY_free(subjects[s]);
    }
}

static void test_ca_fields_and_edges(void **state)
{
    (void)state;
    EVP_PKEY *k = gen(PKI_KEY_EC, 256);
    EVP_PKEY *sub = gen(PKI_KEY_EC, 384);
    struct issuer is;
    issuer_init(&is, make_root(k), k);
    struct issuer bare;
    EVP_PKEY *bk = gen(PKI_KEY_RSA, 2048);
    issuer_init(&bare, make_bare_root(bk), bk);

    /* An intermediate: CA with pathlen, name constraints of every kind. */
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("Intermediate");
    t.is_ca = true;
    t.max_path_length = 3;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    add(&t.permitted_dns_domains, "example.com");
    add(&t.permitted_dns_domains, ".example.org");
    add(&t.excluded_dns_domains, "bad.example.com");
    add(&t.permitted_ip_ranges, "10.0.0.0/8");
    add(&t.permitted_ip_ranges, "2001:db8::/33");
    add(&t.excluded_ip_ranges, "192.168.1.7/20");
    add(&t.permitted_email_addresses, "example.com");
    add(&t.excluded_email_addresses, "x@example.com");
    add(&t.permitted_uri_domains, ".example.com");
    add(&t.excluded_uri_domains, "evil.example.com");
    fixed(&t, 3);
    X509_free(compare_key(&t, sub, &is));
    X509_free(compare_key(&t, sub, &bare)); /* no issuer SKI: no AKI */
    /* CA without pathlen; only excluded constraints. */
    t.max_path_length = -1;
    pki_x509_strs_close(&t.permitted_dns_domains);
    pki_x509_strs_close(&t.permitted_ip_ranges);
    pki_x509_strs_close(&t.permitted_email_addresses);
    pki_x509_strs_close(&t.permitted_uri_domains);
    X509_free(compare_key(&t, sub, &is));
    pki_x509_template_close(&t);

    /* Empty subject: SANs become critical. Far-future NotAfter is GeneralizedTime. */
    pki_x509_template_init(&t);
    add(&t.dns, "only.example.com");
    fixed(&t, 0);
    t.serial[0] = 0;
    t.serial[1] = 0; /* leading zero bytes are dropped from the INTEGER */
    t.not_after = 253402300799;
    X509 *x = compare_key(&t, sub, &is);
    assert_int_equal(ASN1_STRING_type(X509_get0_notAfter(x)), V_ASN1_GENERALIZEDTIME);
    X509_free(x);
    /* No SANs, no key usage; a short serial; SKI override. */
    pki_x509_strs_close(&t.dns);
    t.common_name = cf_strdup("x");
    t.serial_len = 1;
    t.serial[0] = 0x80;
    memcpy(t.skid, "\x01\x02\x03", 3);
    t.skid_len = 3;
    t.not_before = -631152000; /* 1950: UTCTime lower bound */
    X509_free(compare_key(&t, sub, &is));
    t.not_before = -631152001; /* 1949: GeneralizedTime */
    X509_free(compare_key(&t, sub, &is));
    pki_x509_template_close(&t);

    /* Multi-valued RDN members sorted in DER order whatever their input order. */
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("n");
    add(&t.organization, "bb");
    add(&t.organization, "a");
    add(&t.organization, "ab");
    add(&t.organization, "\xc3\xa9");
    add(&t.organization, "b");
    fixed(&t, 5);
    X509_free(compare_key(&t, sub, &is));
    pki_x509_template_close(&t);

    issuer_close(&is);
    issuer_close(&bare);
    EVP_PKEY_free(sub);
}

static void test_random_serials(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *k = gen(PKI_KEY_EC, 256);
    struct issuer is;
    issuer_init(&is, make_root(k), k);
    struct cf_buf spki;
    cf_buf_init(&spki);
    assert_int_equal(pki_key_spki_der(k, &spki), CF_OK);
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("r");
    t.not_before = 1795000000;
    t.not_after = 1795003600;
    char prev[PKI_X509_SERIAL_HEX_SIZE] = "";
    for (int i = 0; i < 50; i++) {
        struct cf_buf der;
        cf_buf_init(&der);
        char serial[PKI_X509_SERIAL_HEX_SIZE];
        assert_int_equal(pki_cert_der_build(&t, spki.data, spki.len, &is.ci, &der, serial, errmsg),
                         CF_OK);
        X509 *x = NULL;
        assert_int_equal(pki_x509_cert_from_der(der.data, der.len, &x, errmsg), CF_OK);
        char want[PKI_X509_SERIAL_HEX_SIZE];
        assert_int_equal(pki_x509_serial_hex(x, want, errmsg), CF_OK);
        assert_string_equal(serial, want);
        assert_string_not_equal(serial, prev);
        /* 159 bits at most: positive, at most 20 bytes. */
        const ASN1_INTEGER *ai = X509_get0_serialNumber(x);
        assert_true(ASN1_STRING_length(ai) <= 20);
        assert_int_equal(ASN1_STRING_type(ai), V_ASN1_INTEGER);
        snprintf(prev, sizeof(prev), "%s", serial);
        X509_free(x);
        cf_buf_close(&der);
    }
    pki_x509_template_close(&t);
    cf_buf_close(&spki);
    issuer_close(&is);
}

/* Each refusal of pki_x509_cert_build, with the same message from both builders. */
static void test_refusals_match(void **state)
{
    (void)state;
    EVP_PKEY *k = gen(PKI_KEY_EC, 256);
    struct issuer is;
    issuer_init(&is, make_root(k), k);
    struct cf_buf spki;
    cf_buf_init(&spki);
    assert_int_equal(pki_key_spki_der(k, &spki), CF_OK);
    static const struct
    {
        const char *field;
        const char *value;
        const char *msg;
    } bad[] = {
        {"ip", "10.0.0.300", "the value \"10.0.0.300\" is not a valid IP address"},
        {"eku", "1.2.x", "invalid OID 1.2.x"},
        {"eku", "3.1", "invalid OID 3.1"},
        {"policy", "not an oid", "invalid OID not an oid"},
        {"other", "1.2..3", "invalid OID 1.2..3"},
        {"pip", "10.0.0.0/33", "invalid CIDR 10.0.0.0/33"},
        {"eip", "10.0.0.0", "invalid CIDR 10.0.0.0"},
        {"pip", "2001:db8::/129", "invalid CIDR 2001:db8::/129"},
        {"dns",
         "b\xc3\xbc"
         "cher.de",
         "the value \"b\xc3\xbc"
         "cher.de\" contains non-ASCII characters"},
        {"uri", "http://\xc3\xa4", "the value \"http://\xc3\xa4\" contains non-ASCII characters"},
        {"time", "", "NotAfter is before NotBefore"},
        {"serial0", "", "serial must be positive"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pki_x509_template t;
        pki_x509_template_init(&t);
        t.common_name = cf_strdup("x");
        fixed(&t, 1);
        const char *f = bad[i].field;
        if (strcmp(f, "ip") == 0) {
            add(&t.ip, bad[i].value);
        } else if (strcmp(f, "eku") == 0) {
            add(&t.ext_key_usage_oids, bad[i].value);
        } else if (strcmp(f, "policy") == 0) {
            add(&t.policy_identifiers, bad[i].value);
        } else if (strcmp(f, "other") == 0) {
            assert_int_equal(pki_x509_template_add_other_san(&t, bad[i].value, "v"), CF_OK);
        } else if (strcmp(f, "pip") == 0) {
            add(&t.permitted_ip_ranges, bad[i].value);
        } else if (strcmp(f, "eip") == 0) {
            add(&t.excluded_ip_ranges, bad[i].value);
        } else if (strcmp(f, "dns") == 0) {
            add(&t.dns, bad[i].value);
        } else if (strcmp(f, "uri") == 0) {
            add(&t.uri, bad[i].value);
        } else if (strcmp(f, "time") == 0) {
            t.not_after = t.not_before - 1;
        } else {
            memset(t.serial, 0, sizeof(t.serial));
        }
        char e1[CF_ERRMSG_SIZE] = "";
        char e2[CF_ERRMSG_SIZE] = "";
        X509 *x = NULL;
        assert_int_equal(pki_x509_cert_build(&t, k, is.cert, k, &x, e1), CF_EINVAL);
        assert_null(x);
        struct cf_buf der;
        cf_buf_init(&der);
        char serial[PKI_X509_SERIAL_HEX_SIZE];
        assert_int_equal(pki_cert_der_build(&t, spki.data, spki.len, &is.ci, &der, serial, e2),
                         CF_EINVAL);
        assert_string_equal(e1, bad[i].msg);
        assert_string_equal(e2, bad[i].msg);
        cf_buf_close(&der);
        pki_x509_template_close(&t);
    }
    cf_buf_close(&spki);
    issuer_close(&is);
}

/* Leaf keys: every type and size, read back by OpenSSL, pairwise-consistent, and certified by
 * the direct writer with the same SubjectPublicKeyInfo OpenSSL encodes. */
static void test_leaf_keys(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *ik = gen(PKI_KEY_EC, 256);
    struct issuer is;
    issuer_init(&is, make_root(ik), ik);
    struct
    {
        enum pki_key_type type;
        int bits;
        int want_bits;
    } kinds[] = {
        {PKI_KEY_EC, 224, 224}, {PKI_KEY_EC, 0, 256},      {PKI_KEY_EC, 384, 384},
        {PKI_KEY_EC, 521, 521}, {PKI_KEY_RSA, 2048, 2048}, {PKI_KEY_ED25519, 0, 0},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        for (int rep = 0; rep < (kinds[i].type == PKI_KEY_EC ? 20 : 1); rep++) {
            struct pki_leaf_key lk;
            assert_int_equal(pki_leaf_key_generate(kinds[i].type, kinds[i].bits, &lk, errmsg),
                             CF_OK);
            assert_int_equal(lk.bits, kinds[i].want_bits);
            for (int f = 0; f < 2; f++) {
                char *pem = NULL;
                assert_int_equal(
                    pki_leaf_key_text(&lk, f == 0 ? PKI_KEY_FORMAT_DER : PKI_KEY_FORMAT_PKCS8, true,
                                      &pem, errmsg),
                    CF_OK);
                const char *label =
                    f == 1 || kinds[i].type == PKI_KEY_ED25519 ? "-----BEGIN PRIVATE KEY-----"
                    : kinds[i].type == PKI_KEY_EC              ? "-----BEGIN EC PRIVATE KEY-----"
                                                               : "-----BEGIN RSA PRIVATE KEY-----";
                assert_memory_equal(pem, label, strlen(label));
                BIO *b = BIO_new_mem_buf(pem, -1);
                EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
                BIO_free(b);
                assert_non_null(k);
                EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
                assert_int_equal(EVP_PKEY_pairwise_check(c), 1);
                EVP_PKEY_CTX_free(c);
                enum pki_key_type kt;
                int bits = -1;
                assert_int_equal(pki_key_describe(k, &kt, &bits, errmsg), CF_OK);
                assert_int_equal(kt, kinds[i].type);
                assert_int_equal(bits, kinds[i].want_bits);
                /* OpenSSL writes the same private key text for the key it read. */
                char *ref = NULL;
                assert_int_equal(
                    pki_key_to_text(k, f == 0 ? PKI_KEY_FORMAT_DER : PKI_KEY_FORMAT_PKCS8, true,
                                    &ref, errmsg),
                    CF_OK);
                assert_string_equal(pem, ref);
                cf_free(ref);
                if (f == 0 && rep == 0) {
                    struct cf_buf spki;
                    cf_buf_init(&spki);
                    assert_int_equal(pki_leaf_key_spki(&lk, &spki, errmsg), CF_OK);
                    struct pki_x509_template t;
                    pki_x509_template_init(&t);
                    t.common_name = cf_strdup("leaf");
                    add(&t.dns, "leaf.example.com");
                    t.key_usage = PKI_KU_DIGITAL_SIGNATURE;
                    fixed(&t, 9);
                    X509_free(compare(&t, k, spki.data, spki.len, &is));
                    pki_x509_template_close(&t);
                    cf_buf_close(&spki);
                }
                EVP_PKEY_free(k);
                cf_free(pem);
            }
            pki_leaf_key_close(&lk);
        }
    }
    struct pki_leaf_key lk;
    assert_int_equal(pki_leaf_key_generate(PKI_KEY_EC, 255, &lk, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported bit length for EC key: 255");
    assert_int_equal(pki_leaf_key_generate(PKI_KEY_RSA, 1024, &lk, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "RSA keys < 2048 bits are unsafe and not supported: got 1024");
    issuer_close(&is);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_leaf_every_signer),
        cmocka_unit_test(test_ca_fields_and_edges),
        cmocka_unit_test(test_random_serials),
        cmocka_unit_test(test_refusals_match),
        cmocka_unit_test(test_leaf_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
