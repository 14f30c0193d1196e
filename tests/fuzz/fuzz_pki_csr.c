/*
 * libFuzzer target for the outside-bytes parsers of engines/pki: CSRs (pki_x509_csr_parse and
 * pki_x509_csr_read), PEM bundles (pki_x509_bundle_parse, pki_x509_cert_from_pem), PEM private
 * keys (pki_key_from_pem) and user-given serials (pki_x509_serial_normalize). A CSR that parses
 * is also signed into a certificate by a fixed test CA, so values read from the request go
 * through the extension builders. ASan/UBSan and the allocation counter catch crashes, overflows
 * and leaks; a successful parse that returns inconsistent results aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "engines/pki/key.h"
#include "engines/pki/x509.h"
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

static void fuzz_csr(const char *text, size_t size)
{
    char errmsg[CF_ERRMSG_SIZE];
    X509_REQ *req = NULL;
    if (pki_x509_csr_parse(text, size, &req, errmsg) != CF_OK) {
        if (req != NULL || errmsg[0] == '\0') {
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
        X509 *x = NULL;
        if (pki_x509_cert_build(&t, X509_REQ_get0_pubkey(req), ca_cert, ca_key, &x, errmsg) ==
            CF_OK) {
            char hex[PKI_X509_SERIAL_HEX_SIZE];
            if (pki_x509_serial_hex(x, hex, errmsg) != CF_OK || X509_verify(x, ca_key) != 1) {
                abort();
            }
            X509_free(x);
        }
    }
    pki_x509_template_close(&t);
    X509_REQ_free(req);
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
