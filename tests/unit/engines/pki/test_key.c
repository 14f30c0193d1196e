/*
 * Unit tests for engines/pki/key.c. Keys we generate and export are read back by OpenSSL's own
 * decoders (PEM_read_bio_PrivateKey, d2i_AutoPrivateKey) and, when the binary exists, by the
 * openssl CLI; signatures made through pki_key_sign_ctx_new are checked with X509_verify and
 * their algorithm read back from the certificate. Every refusal of pki.md 2.3 and every kind
 * of bad PEM input is tested with its message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "engines/pki/key.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

/* PEM text of a key written by OpenSSL itself; traditional = PKCS#1/SEC1, else PKCS#8. */
static char *ossl_pem(EVP_PKEY *k, int traditional)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    if (traditional) {
        assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL), 1);
    } else {
        assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    }
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *s = cf_strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static EVP_PKEY *ossl_read(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    return k;
}

static void test_type_and_format_parse(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    enum pki_key_type t;
    assert_int_equal(pki_key_type_parse("rsa", &t, errmsg), CF_OK);
    assert_int_equal(t, PKI_KEY_RSA);
    assert_int_equal(pki_key_type_parse("ec", &t, errmsg), CF_OK);
    assert_int_equal(t, PKI_KEY_EC);
    assert_int_equal(pki_key_type_parse("ed25519", &t, errmsg), CF_OK);
    assert_int_equal(t, PKI_KEY_ED25519);
    assert_string_equal(pki_key_type_name(PKI_KEY_EC), "ec");
    assert_int_equal(pki_key_type_parse("dsa", &t, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unknown key type dsa");
    assert_int_equal(pki_key_type_parse("any", &t, errmsg), CF_EINVAL);
    assert_int_equal(pki_key_type_parse("RSA", &t, errmsg), CF_EINVAL);
    assert_int_equal(pki_key_type_parse("", &t, errmsg), CF_EINVAL);

    enum pki_key_format f;
    assert_int_equal(pki_key_format_parse("der", &f, errmsg), CF_OK);
    assert_int_equal(f, PKI_KEY_FORMAT_DER);
    assert_int_equal(pki_key_format_parse("", &f, errmsg), CF_OK);
    assert_int_equal(pki_key_format_parse("pem", &f, errmsg), CF_OK);
    assert_int_equal(f, PKI_KEY_FORMAT_DER);
    assert_int_equal(pki_key_format_parse("pkcs8", &f, errmsg), CF_OK);
    assert_int_equal(f, PKI_KEY_FORMAT_PKCS8);
    assert_int_equal(pki_key_format_parse("pkcs12", &f, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "invalid private_key_format pkcs12");
}

static void test_bits_resolve(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    int b = -1;
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_RSA, 0, &b, errmsg), CF_OK);
    assert_int_equal(b, 2048);
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_EC, 0, &b, errmsg), CF_OK);
    assert_int_equal(b, 256);
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_ED25519, 4096, &b, errmsg), CF_OK);
    assert_int_equal(b, 0);
    static const int rsa_ok[] = {2048, 3072, 4096, 8192};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pki_key_bits_resolve(PKI_KEY_RSA, rsa_ok[i], &b, errmsg), CF_OK);
        assert_int_equal(b, rsa_ok[i]);
    }
    static const int ec_ok[] = {224, 256, 384, 521};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pki_key_bits_resolve(PKI_KEY_EC, ec_ok[i], &b, errmsg), CF_OK);
        assert_int_equal(b, ec_ok[i]);
    }
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_RSA, 1024, &b, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "RSA keys < 2048 bits are unsafe and not supported: got 1024");
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_RSA, -5, &b, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "RSA keys < 2048 bits are unsafe and not supported: got -5");
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_RSA, 2049, &b, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported bit length for RSA key: 2049");
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_RSA, 16384, &b, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported bit length for RSA key: 16384");
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_EC, 192, &b, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported bit length for EC key: 192");
    assert_int_equal(pki_key_bits_resolve(PKI_KEY_EC, 512, &b, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported bit length for EC key: 512");
    EVP_PKEY *k = NULL;
    assert_int_equal(pki_key_generate(PKI_KEY_RSA, 1024, &k, errmsg), CF_EINVAL);
    assert_null(k);
    assert_int_equal(pki_key_generate(PKI_KEY_EC, 255, &k, errmsg), CF_EINVAL);
    assert_int_equal(pki_key_generate((enum pki_key_type)7, 0, &k, errmsg), CF_EINVAL);
    assert_null(k);
}

/* Generates, describes, exports in both formats and reads back with OpenSSL. */
static void gen_roundtrip(enum pki_key_type type, int bits, int want_bits, const char *der_label)
{
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *k = NULL;
    assert_int_equal(pki_key_generate(type, bits, &k, errmsg), CF_OK);
    enum pki_key_type t2;
    int b2;
    assert_int_equal(pki_key_describe(k, &t2, &b2, errmsg), CF_OK);
    assert_int_equal(t2, type);
    assert_int_equal(b2, want_bits);
    if (type == PKI_KEY_RSA) {
        assert_int_equal(EVP_PKEY_get_bits(k), want_bits);
    }

    char fp[PKI_KEY_FINGERPRINT_SIZE];
    assert_int_equal(pki_key_fingerprint(k, fp, errmsg), CF_OK);
    assert_int_equal(strlen(fp), 64);

    for (int f = 0; f < 2; f++) {
        struct cf_secret *pem = NULL;
        assert_int_equal(pki_key_to_pem(k, (enum pki_key_format)f, &pem, errmsg), CF_OK);
        const char *text = (const char *)pem->data;
        assert_int_equal(strlen(text) + 1, pem->len);
        char begin[64];
        snprintf(begin, sizeof(begin), "-----BEGIN %s-----\n", f == 0 ? der_label : "PRIVATE KEY");
        assert_memory_equal(text, begin, strlen(begin));
        assert_true(text[strlen(text) - 1] == '-');
        /* OpenSSL reads it back as the same key. */
        EVP_PKEY *back = ossl_read(text);
        assert_non_null(back);
        assert_int_equal(EVP_PKEY_eq(k, back), 1);
        EVP_PKEY_free(back);
        /* And so do we, with the same fingerprint. */
        EVP_PKEY *ours = NULL;
        assert_int_equal(pki_key_from_pem(text, strlen(text), &ours, errmsg), CF_OK);
        char fp2[PKI_KEY_FINGERPRINT_SIZE];
        assert_int_equal(pki_key_fingerprint(ours, fp2, errmsg), CF_OK);
        assert_string_equal(fp, fp2);
        EVP_PKEY_free(ours);
        cf_secret_free(pem);

        struct cf_secret *der = NULL;
        assert_int_equal(pki_key_to_der(k, (enum pki_key_format)f, &der, errmsg), CF_OK);
        const unsigned char *p = der->data;
        back = d2i_AutoPrivateKey(NULL, &p, (long)der->len);
        assert_non_null(back);
        assert_ptr_equal(p, der->data + der->len);
        assert_int_equal(EVP_PKEY_eq(k, back), 1);
        EVP_PKEY_free(back);
        cf_secret_free(der);
    }
    EVP_PKEY_free(k);
}

static void test_generate_rsa(void **state)
{
    (void)state;
    gen_roundtrip(PKI_KEY_RSA, 0, 2048, "RSA PRIVATE KEY");
    gen_roundtrip(PKI_KEY_RSA, 3072, 3072, "RSA PRIVATE KEY");
    gen_roundtrip(PKI_KEY_RSA, 4096, 4096, "RSA PRIVATE KEY");
    /* RSA-8192 generation takes tens of seconds; run it only when asked. */
    if (getenv("COFFER_SLOW_TESTS") != NULL) {
        gen_roundtrip(PKI_KEY_RSA, 8192, 8192, "RSA PRIVATE KEY");
    }
}

static void test_generate_ec_ed25519(void **state)
{
    (void)state;
    gen_roundtrip(PKI_KEY_EC, 0, 256, "EC PRIVATE KEY");
    gen_roundtrip(PKI_KEY_EC, 224, 224, "EC PRIVATE KEY");
    gen_roundtrip(PKI_KEY_EC, 384, 384, "EC PRIVATE KEY");
    gen_roundtrip(PKI_KEY_EC, 521, 521, "EC PRIVATE KEY");
    gen_roundtrip(PKI_KEY_ED25519, 0, 0, "PRIVATE KEY");
}

static void test_parse_openssl_written(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(ec);
    assert_non_null(rsa);
    EVP_PKEY *keys[] = {ec, rsa};
    for (int i = 0; i < 2; i++) {
        for (int trad = 0; trad < 2; trad++) {
            char *pem = ossl_pem(keys[i], trad);
            assert_non_null(
                strstr(pem, trad ? (i == 0 ? "EC PRIVATE" : "RSA PRIVATE") : "BEGIN PRIVATE KEY"));
            EVP_PKEY *k = NULL;
            assert_int_equal(pki_key_from_pem(pem, strlen(pem), &k, errmsg), CF_OK);
            assert_int_equal(EVP_PKEY_eq(k, keys[i]), 1);
            EVP_PKEY_free(k);
            cf_free(pem);
        }
    }
    /* `openssl ecparam -genkey` style: EC PARAMETERS block first, text around the blocks. */
    char *sec1 = ossl_pem(ec, 1);
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "some text\n-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC "
             "PARAMETERS-----\n%s\n",
             sec1);
    EVP_PKEY *k = NULL;
    assert_int_equal(pki_key_from_pem(buf, strlen(buf), &k, errmsg), CF_OK);
    assert_int_equal(EVP_PKEY_eq(k, ec), 1);
    EVP_PKEY_free(k);
    cf_free(sec1);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}

static void expect_refused(const char *pem, int code, const char *msg_prefix)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    EVP_PKEY *k = NULL;
    int rv = pki_key_from_pem(pem, strlen(pem), &k, errmsg);
    if (rv != code || strncmp(errmsg, msg_prefix, strlen(msg_prefix)) != 0) {
        fail_msg("rv=%d errmsg=\"%s\" want %d \"%s\"", rv, errmsg, code, msg_prefix);
    }
    assert_null(k);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    /* RSA-1024 in both encodings. */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(small);
    for (int trad = 0; trad < 2; trad++) {
        char *pem = ossl_pem(small, trad);
        expect_refused(pem, CF_EINVAL,
                       "RSA keys < 2048 bits are unsafe and not supported: got 1024");
        cf_free(pem);
    }
    EVP_PKEY_free(small);

    /* Unsupported algorithms and curves. */
    EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    char *pem = ossl_pem(x, 0);
    expect_refused(pem, CF_EUNSUPPORTED, "unsupported key algorithm X25519");
    cf_free(pem);
    EVP_PKEY_free(x);
    EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    pem = ossl_pem(k1, 1);
    expect_refused(pem, CF_EUNSUPPORTED, "unsupported EC curve secp256k1");
    cf_free(pem);
    EVP_PKEY_free(k1);

    /* Encrypted keys, both styles. */
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(b, ec, EVP_aes_128_cbc(), "pw", 2, NULL, NULL),
                     1);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    pem = cf_strndup(p, (size_t)n);
    BIO_free(b);
    expect_refused(pem, CF_EUNSUPPORTED, "encrypted private keys are not supported");
    cf_free(pem);
    b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, ec, EVP_aes_128_cbc(),
                                                          (unsigned char *)"pw", 2, NULL, NULL),
                     1);
    n = BIO_get_mem_data(b, &p);
    pem = cf_strndup(p, (size_t)n);
    BIO_free(b);
    expect_refused(pem, CF_EUNSUPPORTED, "encrypted private keys are not supported");
    cf_free(pem);

    /* Two keys. */
    char *one = ossl_pem(ec, 1);
    char two[8192];
    snprintf(two, sizeof(two), "%s%s", one, one);
    expect_refused(two, CF_EMALFORMED,
                   "only a single key can be present within the pem_bundle for importing");
    /* A certificate label, a wrong label for the body, a corrupted body. */
    char *swapped = cf_strdup(one);
    char *at = strstr(swapped, "BEGIN EC");
    memcpy(at + 6, "XX", 2);
    at = strstr(swapped, "END EC");
    memcpy(at + 4, "XX", 2);
    expect_refused(swapped, CF_EMALFORMED, "unsupported PEM block type XX PRIVATE KEY");
    cf_free(swapped);
    char rsa_label[8192];
    const char *body = strchr(one, '\n') + 1;
    const char *end = strstr(one, "-----END");
    snprintf(rsa_label, sizeof(rsa_label),
             "-----BEGIN RSA PRIVATE KEY-----\n%.*s-----END RSA PRIVATE KEY-----\n",
             (int)(end - body), body);
    expect_refused(rsa_label, CF_EMALFORMED, "failed to parse RSA PRIVATE KEY");
    snprintf(rsa_label, sizeof(rsa_label),
             "-----BEGIN CERTIFICATE-----\n%.*s-----END CERTIFICATE-----\n", (int)(end - body),
             body);
    expect_refused(rsa_label, CF_EMALFORMED, "unsupported PEM block type CERTIFICATE");
    cf_free(one);
    EVP_PKEY_free(ec);

    /* No PEM at all, empty, truncated, bad base64. */
    expect_refused("", CF_EMALFORMED, "no data found in PEM block");
    expect_refused("hello world", CF_EMALFORMED, "no data found in PEM block");
    expect_refused("-----BEGIN PRIVATE KEY-----\nAAAA\n", CF_EMALFORMED,
                   "no data found in PEM block");
    expect_refused("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", CF_EMALFORMED,
                   "no data found in PEM block");
    expect_refused("-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n",
                   CF_EMALFORMED, "failed to parse PRIVATE KEY");
}

static void test_der_trailing_bytes(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    struct cf_secret *der = NULL;
    assert_int_equal(pki_key_to_der(ec, PKI_KEY_FORMAT_PKCS8, &der, errmsg), CF_OK);
    uint8_t *buf = cf_malloc(der->len + 2);
    memcpy(buf, der->data, der->len);
    buf[der->len] = 0;
    buf[der->len + 1] = 0;
    EVP_PKEY *k = NULL;
    assert_int_equal(pki_key_from_der("PRIVATE KEY", buf, der->len, &k, errmsg), CF_OK);
    EVP_PKEY_free(k);
    k = NULL;
    assert_int_equal(pki_key_from_der("PRIVATE KEY", buf, der->len + 2, &k, errmsg), CF_EMALFORMED);
    assert_string_equal(errmsg, "failed to parse PRIVATE KEY: trailing data after the key");
    assert_null(k);
    assert_int_equal(pki_key_from_der("PRIVATE KEY", buf, der->len - 1, &k, errmsg), CF_EMALFORMED);
    assert_null(k);
    cf_free(buf);
    cf_secret_free(der);
    EVP_PKEY_free(ec);
}

/* The fingerprint equals SHA-256 over what `openssl pkey -pubout -outform DER` prints. */
static void test_fingerprint(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *a = NULL;
    EVP_PKEY *b = NULL;
    assert_int_equal(pki_key_generate(PKI_KEY_EC, 256, &a, errmsg), CF_OK);
    assert_int_equal(pki_key_generate(PKI_KEY_EC, 256, &b, errmsg), CF_OK);
    char fa[PKI_KEY_FINGERPRINT_SIZE];
    char fb[PKI_KEY_FINGERPRINT_SIZE];
    char fpub[PKI_KEY_FINGERPRINT_SIZE];
    assert_int_equal(pki_key_fingerprint(a, fa, errmsg), CF_OK);
    assert_int_equal(pki_key_fingerprint(b, fb, errmsg), CF_OK);
    assert_string_not_equal(fa, fb);
    /* Public half only. */
    unsigned char *spki = NULL;
    int n = i2d_PUBKEY(a, &spki);
    assert_true(n > 0);
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
    assert_int_equal(pki_key_fingerprint(pub, fpub, errmsg), CF_OK);
    assert_string_equal(fa, fpub);
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(spki, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    char hex[65];
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    assert_string_equal(fa, hex);
    OPENSSL_free(spki);
    EVP_PKEY_free(pub);

    if (access("/usr/bin/openssl", X_OK) == 0) {
        char dir[] = "/tmp/cf-pki-key-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[128];
        snprintf(path, sizeof(path), "%s/k.pem", dir);
        struct cf_secret *pem = NULL;
        assert_int_equal(pki_key_to_pem(a, PKI_KEY_FORMAT_DER, &pem, errmsg), CF_OK);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs((const char *)pem->data, f);
        fputc('\n', f);
        fclose(f);
        cf_secret_free(pem);
        char cmd[512];
        snprintf(cmd, sizeof(cmd),
                 "openssl pkey -in %s -pubout -outform DER 2>/dev/null | openssl dgst -sha256 "
                 "-r",
                 path);
        FILE *pp = popen(cmd, "r");
        assert_non_null(pp);
        char line[256] = "";
        assert_non_null(fgets(line, sizeof(line), pp));
        assert_int_equal(pclose(pp), 0);
        assert_memory_equal(line, fa, 64);
        unlink(path);
        rmdir(dir);
    }
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
}

static void test_signature_bits(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    static const int ok[] = {0, 256, 384, 512};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pki_key_signature_bits_check(PKI_KEY_RSA, ok[i], errmsg), CF_OK);
        assert_int_equal(pki_key_signature_bits_check(PKI_KEY_EC, ok[i], errmsg), CF_OK);
    }
    static const int bad[] = {1, 160, 224, 255, 1024, -1};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(pki_key_signature_bits_check(PKI_KEY_RSA, bad[i], errmsg), CF_EINVAL);
        char want[64];
        snprintf(want, sizeof(want), "unsupported hash signature algorithm: %d", bad[i]);
        assert_string_equal(errmsg, want);
        assert_int_equal(pki_key_signature_bits_check(PKI_KEY_EC, bad[i], errmsg), CF_EINVAL);
    }
    assert_int_equal(pki_key_signature_bits_check(PKI_KEY_ED25519, 160, errmsg), CF_OK);
}

/* Signs a bare certificate with the context and returns its signature NID after X509_verify. */
static int sign_and_verify(EVP_PKEY *k, int sigbits, bool pss, int *mdnid)
{
    char errmsg[CF_ERRMSG_SIZE];
    EVP_MD_CTX *ctx = NULL;
    int rv = pki_key_sign_ctx_new(k, sigbits, pss, &ctx, errmsg);
    if (rv != CF_OK) {
        return -rv;
    }
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 60);
    X509_set_pubkey(x, k);
    assert_true(X509_sign_ctx(x, ctx) > 0);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(X509_verify(x, k), 1);
    int nid = X509_get_signature_nid(x);
    *mdnid = NID_undef;
    int pknid = NID_undef;
    if (nid != NID_rsassaPss) {
        assert_int_equal(OBJ_find_sigid_algs(nid, mdnid, &pknid), 1);
    } else {
        /* The PSS hash lives in the parameters; X509_get_signature_info reports it. */
        int secbits = 0;
        uint32_t flags = 0;
        assert_int_equal(X509_get_signature_info(x, mdnid, &pknid, &secbits, &flags), 1);
    }
    X509_free(x);
    return nid;
}

static void test_sign_ctx(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *rsa = NULL;
    EVP_PKEY *p384 = NULL;
    EVP_PKEY *p521 = NULL;
    EVP_PKEY *ed = NULL;
    assert_int_equal(pki_key_generate(PKI_KEY_RSA, 2048, &rsa, errmsg), CF_OK);
    assert_int_equal(pki_key_generate(PKI_KEY_EC, 384, &p384, errmsg), CF_OK);
    assert_int_equal(pki_key_generate(PKI_KEY_EC, 521, &p521, errmsg), CF_OK);
    assert_int_equal(pki_key_generate(PKI_KEY_ED25519, 0, &ed, errmsg), CF_OK);
    int md;
    assert_int_equal(sign_and_verify(rsa, 0, false, &md), NID_sha256WithRSAEncryption);
    assert_int_equal(sign_and_verify(rsa, 384, false, &md), NID_sha384WithRSAEncryption);
    assert_int_equal(sign_and_verify(rsa, 512, false, &md), NID_sha512WithRSAEncryption);
    assert_int_equal(sign_and_verify(rsa, 0, true, &md), NID_rsassaPss);
    assert_int_equal(md, NID_sha256);
    assert_int_equal(sign_and_verify(rsa, 512, true, &md), NID_rsassaPss);
    assert_int_equal(md, NID_sha512);
    assert_int_equal(sign_and_verify(rsa, 160, false, &md), -CF_EINVAL);
    /* EC: the curve decides, signature_bits is ignored once valid. */
    assert_int_equal(sign_and_verify(p384, 256, false, &md), NID_ecdsa_with_SHA384);
    assert_int_equal(sign_and_verify(p521, 0, true, &md), NID_ecdsa_with_SHA512);
    assert_int_equal(sign_and_verify(p384, 160, false, &md), -CF_EINVAL);
    assert_int_equal(sign_and_verify(ed, 384, false, &md), NID_ED25519);

    const char *name = NULL;
    assert_int_equal(pki_key_signature_algorithm_name(rsa, 0, false, &name, errmsg), CF_OK);
    assert_string_equal(name, "SHA256WithRSA");
    assert_int_equal(pki_key_signature_algorithm_name(rsa, 384, true, &name, errmsg), CF_OK);
    assert_string_equal(name, "SHA384WithRSAPSS");
    assert_int_equal(pki_key_signature_algorithm_name(p521, 256, false, &name, errmsg), CF_OK);
    assert_string_equal(name, "ECDSAWithSHA512");
    assert_int_equal(pki_key_signature_algorithm_name(ed, 0, false, &name, errmsg), CF_OK);
    assert_string_equal(name, "PureEd25519");
    assert_int_equal(pki_key_signature_algorithm_name(rsa, 160, false, &name, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported hash signature algorithm: 160");
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(ed);
}

/* Rule T3: every allocation failure is reported as CF_ENOMEM and leaks nothing. */
static void test_alloc_failures(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *ec = NULL;
    assert_int_equal(pki_key_generate(PKI_KEY_EC, 256, &ec, errmsg), CF_OK);
    for (int f = 0; f < 2; f++) {
        int done = 0;
        for (unsigned long n = 1; !done; n++) {
            long live = cf_mem_live();
            struct cf_secret *s = NULL;
            cf_mem_fail_after(n);
            int rv = pki_key_to_pem(ec, (enum pki_key_format)f, &s, errmsg);
            cf_mem_fail_after(0);
            if (rv == CF_OK) {
                cf_secret_free(s);
                done = 1;
            } else {
                assert_int_equal(rv, CF_ENOMEM);
            }
            assert_int_equal(cf_mem_live(), live);
            s = NULL;
            cf_mem_fail_after(n);
            rv = pki_key_to_der(ec, (enum pki_key_format)f, &s, errmsg);
            cf_mem_fail_after(0);
            if (rv == CF_OK) {
                cf_secret_free(s);
            } else {
                assert_int_equal(rv, CF_ENOMEM);
                done = 0;
            }
            assert_int_equal(cf_mem_live(), live);
        }
    }
    EVP_PKEY_free(ec);
}

/* The direct encodings write exactly what OpenSSL's encoders write, for every key type and
 * size offered and for keys parsed from outside (compressed EC points included). */
static void check_direct(EVP_PKEY *k)
{
    unsigned char *ours = NULL;
    size_t n = 0;
    unsigned char *ref = NULL;
    int rn;
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
        assert_int_equal(pki_key_private_der(k, false, &ours, &n), CF_OK);
        rn = i2d_PrivateKey(k, &ref);
        assert_true(rn > 0);
        assert_int_equal(n, (size_t)rn);
        assert_memory_equal(ours, ref, n);
        OPENSSL_clear_free(ours, n);
        OPENSSL_free(ref);
        ref = NULL;
    }
    assert_int_equal(pki_key_private_der(k, true, &ours, &n), CF_OK);
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
    assert_non_null(p8);
    rn = i2d_PKCS8_PRIV_KEY_INFO(p8, &ref);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_int_equal(n, (size_t)rn);
    assert_memory_equal(ours, ref, n);
    OPENSSL_clear_free(ours, n);
    OPENSSL_free(ref);
    ref = NULL;

    struct cf_buf spki;
    cf_buf_init(&spki);
    assert_int_equal(pki_key_spki_der(k, &spki), CF_OK);
    rn = i2d_PUBKEY(k, &ref);
    assert_int_equal(spki.len, (size_t)rn);
    assert_memory_equal(spki.data, ref, spki.len);
    /* and it decodes back to the same key */
    const unsigned char *q = spki.data;
    EVP_PKEY *back = d2i_PUBKEY(NULL, &q, (long)spki.len);
    assert_non_null(back);
    assert_int_equal(EVP_PKEY_eq(back, k), 1);
    EVP_PKEY_free(back);
    OPENSSL_free(ref);
    cf_buf_close(&spki);
}

static void test_direct_encodings(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    static const struct
    {
        enum pki_key_type type;
        int bits;
    } cases[] = {
        {PKI_KEY_RSA, 2048}, {PKI_KEY_RSA, 3072}, {PKI_KEY_EC, 224},    {PKI_KEY_EC, 256},
        {PKI_KEY_EC, 384},   {PKI_KEY_EC, 521},   {PKI_KEY_ED25519, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int rep = 0; rep < 4; rep++) { /* scalars with leading zero bytes show up */
            EVP_PKEY *k = NULL;
            assert_int_equal(pki_key_generate(cases[i].type, cases[i].bits, &k, errmsg), CF_OK);
            check_direct(k);
            EVP_PKEY_free(k);
        }
    }
    /* Keys outside the direct encoders are reported, not mis-encoded: another algorithm, and a
     * P-256 key that wants its point compressed (as one parsed from a compressed point does). */
    EVP_PKEY *c = EVP_EC_gen("P-256");
    assert_non_null(c);
    assert_int_equal(
        EVP_PKEY_set_utf8_string_param(c, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
        1);
    EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    assert_non_null(x);
    EVP_PKEY *refused[] = {c, x};
    for (size_t i = 0; i < 2; i++) {
        unsigned char *der = NULL;
        size_t n = 0;
        assert_int_equal(pki_key_private_der(refused[i], true, &der, &n), CF_EUNSUPPORTED);
        /* The SubjectPublicKeyInfo falls back to OpenSSL's encoder: still the right bytes. */
        struct cf_buf spki;
        cf_buf_init(&spki);
        assert_int_equal(pki_key_spki_der(refused[i], &spki), CF_OK);
        unsigned char *ref = NULL;
        int rn = i2d_PUBKEY(refused[i], &ref);
        assert_int_equal(spki.len, (size_t)rn);
        assert_memory_equal(spki.data, ref, spki.len);
        OPENSSL_free(ref);
        cf_buf_close(&spki);
    }
    EVP_PKEY_free(c);
    EVP_PKEY_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_and_format_parse), cmocka_unit_test(test_bits_resolve),
        cmocka_unit_test(test_generate_rsa),          cmocka_unit_test(test_generate_ec_ed25519),
        cmocka_unit_test(test_parse_openssl_written), cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_der_trailing_bytes),    cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_signature_bits),        cmocka_unit_test(test_sign_ctx),
        cmocka_unit_test(test_alloc_failures),        cmocka_unit_test(test_direct_encodings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
