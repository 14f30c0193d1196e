/*
 * libFuzzer target for the outside-bytes parsers of engines/pki: CSRs (pki_x509_csr_parse and
 * pki_x509_csr_read), PEM bundles (pki_x509_bundle_parse, pki_x509_cert_from_pem), PEM private
 * keys (pki_key_from_pem) and user-given serials (pki_x509_serial_normalize). A CSR that parses
 * is also signed into a certificate by a fixed test CA, so values read from the request go
 * through the extension builders, once with OpenSSL's encoder and once with the direct DER
 * writer (cert_der.h), which must agree byte for byte. ASan/UBSan and the allocation counter catch
 * crashes, overflows and leaks; a successful parse that returns inconsistent results aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/cert_der.h"
#include "engines/pki/key.h"
#include "engines/pki/x509.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *ca_key;
static X509 *ca_cert;

/* A fixed P-256 CA, made once per process. */
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
    t.common_name = cf_strdup("fuzz root");
    t.is_ca = true;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    t.not_before = (int64_t)time(NULL) - 60;
    t.not_after = t.not_before + 86400;
    if (pki_x509_cert_build(&t, ca_key, NULL, ca_key, &ca_cert, errmsg) != CF_OK) {
        abort();
    }
    pki_x509_template_close(&t);
}

/* The direct DER writer (cert_der.h) must agree with pki_x509_cert_build on the same template:
 * both refuse, or both succeed with the same TBSCertificate. */
static void compare_der(const struct pki_x509_template *t, EVP_PKEY *key, X509 *ref, int ref_rv)
{
    static uint8_t *name;
    static int name_len;
    char errmsg[CF_ERRMSG_SIZE];
    if (name == NULL) {
        name_len = i2d_X509_NAME(X509_get_subject_name(ca_cert), &name);
        if (name_len <= 0) {
            abort();
        }
    }
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(ca_cert);
    struct pki_cert_issuer ci = {
        .name_der = name,
        .name_len = (size_t)name_len,
        .skid = ASN1_STRING_get0_data(skid),
        .skid_len = (size_t)ASN1_STRING_length(skid),
        .key = ca_key,
    };
    if (pki_key_describe(ca_key, &ci.key_type, &ci.key_bits, errmsg) != CF_OK) {
        abort();
    }
    struct cf_buf spki;
    cf_buf_init(&spki);
    struct cf_buf der;
    cf_buf_init(&der);
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    int rv = pki_key_spki_der(key, &spki);
    if (rv == CF_OK) {
        rv = pki_cert_der_build(t, spki.data, spki.len, &ci, &der, serial, errmsg);
    }
    if ((rv == CF_OK) != (ref_rv == CF_OK)) {
        abort();
    }
    if (rv == CF_OK) {
        const unsigned char *p = der.data;
        X509 *got = d2i_X509(NULL, &p, (long)der.len);
        unsigned char *a = NULL;
        unsigned char *b = NULL;
        int al = got != NULL ? i2d_re_X509_tbs(got, &a) : -1;
        int bl = i2d_re_X509_tbs(ref, &b);
        if (got == NULL || al <= 0 || al != bl || memcmp(a, b, (size_t)al) != 0 ||
            X509_verify(got, ca_key) != 1) {
            abort();
        }
        OPENSSL_free(a);
        OPENSSL_free(b);
        X509_free(got);
    }
    cf_buf_close(&spki);
    cf_buf_close(&der);
}

static void fuzz_csr(const char *text, size_t size)
{
    char errmsg[CF_ERRMSG_SIZE];
    X509_REQ *req = NULL;
    EVP_PKEY *key = NULL;
    if (pki_x509_csr_parse(text, size, &req, &key, errmsg) != CF_OK) {
        if (req != NULL || key != NULL || errmsg[0] == '\0') {
            abort();
        }
        return;
    }
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    if (pki_x509_csr_read(req, &t, errmsg) == CF_OK) {
        t.is_ca = false;
        t.not_before = (int64_t)time(NULL);
        t.not_after = t.not_before + 60;
        memcpy(t.serial, "\x42\x01\x02\x03\x04\x05\x06\x07", 8);
        t.serial_len = 8;
        X509 *x = NULL;
        int rv = pki_x509_cert_build(&t, key, ca_cert, ca_key, &x, errmsg);
        if (rv == CF_OK) {
            char hex[PKI_X509_SERIAL_HEX_SIZE];
            if (pki_x509_serial_hex(x, hex, errmsg) != CF_OK || X509_verify(x, ca_key) != 1) {
                abort();
            }
        }
        compare_der(&t, key, x, rv);
        X509_free(x);
    }
    pki_x509_template_close(&t);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
}

static void fuzz_bundle(const char *text, size_t size)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct pki_x509_bundle b;
    int rv = pki_x509_bundle_parse(text, size, &b, errmsg);
    if (rv == CF_OK) {
        if (b.n_certs + b.n_keys == 0) {
            abort();
        }
        for (size_t i = 0; i < b.n_certs; i++) {
            char *pem = NULL;
            if (pki_x509_cert_to_pem(b.certs[i], &pem, errmsg) == CF_OK) {
                X509 *back = NULL;
                if (pki_x509_cert_from_pem(pem, strlen(pem), &back, errmsg) != CF_OK) {
                    abort();
                }
                X509_free(back);
                cf_free(pem);
            }
            (void)pki_x509_is_ca(b.certs[i]);
            (void)pki_x509_is_self_issued(b.certs[i]);
            int64_t t;
            (void)pki_x509_not_after(b.certs[i], &t);
        }
        if (b.n_certs > 0) {
            struct pki_x509_chain ch;
            if (pki_x509_chain_build(b.certs[0], b.certs, b.n_certs, &ch, errmsg) == CF_OK) {
                if (ch.n == 0 || ch.n > b.n_certs + 1) {
                    abort();
                }
                pki_x509_chain_close(&ch);
            }
        }
    }
    pki_x509_bundle_close(&b);
    X509 *x = NULL;
    if (pki_x509_cert_from_pem(text, size, &x, errmsg) == CF_OK) {
        X509_free(x);
    }
    EVP_PKEY *k = NULL;
    if (pki_key_from_pem(text, size, &k, errmsg) == CF_OK) {
        char fp[PKI_KEY_FINGERPRINT_SIZE];
        if (pki_key_fingerprint(k, fp, errmsg) != CF_OK) {
            abort();
        }
        EVP_PKEY_free(k);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_init();
    long live = cf_mem_live();
    char *text = cf_malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    fuzz_csr(text, size);
    fuzz_bundle(text, size);
    if (size < PKI_X509_SERIAL_HEX_SIZE) {
        char out[PKI_X509_SERIAL_HEX_SIZE];
        char errmsg[CF_ERRMSG_SIZE];
        if (pki_x509_serial_normalize(text, out, errmsg) == CF_OK && strlen(out) != strlen(text)) {
            abort();
        }
    }
    cf_free(text);
    if (cf_mem_live() != live) {
        abort();
    }
    return 0;
}
