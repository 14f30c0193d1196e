/* The cluster CA (tlsca.h) on OpenSSL 3. */
#include "lib/tlsca.h"

#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/crypto.h"
#include "lib/mem.h"

static char *bio_text(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    return n > 0 ? cf_strndup(p, (size_t)n) : NULL;
}

static char *key_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1) {
        out = bio_text(b);
    }
    BIO_free(b);
    return out;
}

static char *cert_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b != NULL && PEM_write_bio_X509(b, x) == 1) {
        out = bio_text(b);
    }
    BIO_free(b);
    return out;
}

static X509 *read_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

static EVP_PKEY *read_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = e != NULL && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok ? CF_OK : CF_ECRYPTO;
}

/* A certificate with a random 20-byte serial, subject CN, and validity now-60s .. +days. */
static X509 *new_cert(const char *cn, unsigned days)
{
    X509 *x = X509_new();
    uint8_t serial[20];
    if (x == NULL || cf_random(serial, sizeof(serial)) != CF_OK) {
        X509_free(x);
        return NULL;
    }
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    X509_NAME *name = X509_NAME_new();
    bool ok = bn != NULL && name != NULL && X509_set_version(x, 2) == 1 &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                         -1, 0) == 1 &&
              X509_set_subject_name(x, name) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), -60) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) != NULL;
    BN_free(bn);
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

int cf_tlsca_new_ca(const char *cn,
                    unsigned days,
                    char **cert_out,
                    char **key_out,
                    char errmsg[CF_ERRMSG_SIZE])
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? new_cert(cn, days) : NULL;
    int rv = x ? CF_OK : CF_ECRYPTO;
    if (rv == CF_OK &&
        (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_set_pubkey(x, k) != 1)) {
        rv = CF_ECRYPTO;
    }
    if (rv == CF_OK) {
        rv = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    }
    if (rv == CF_OK) {
        rv = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (rv == CF_OK) {
        rv = add_ext(x, x, NID_subject_key_identifier, "hash");
    }
    if (rv == CF_OK && X509_sign(x, k, EVP_sha256()) <= 0) {
        rv = CF_ECRYPTO;
    }
    char *c = rv == CF_OK ? cert_pem(x) : NULL;
    char *kp = rv == CF_OK ? key_pem(k) : NULL;
    X509_free(x);
    EVP_PKEY_free(k);
    if (c == NULL || kp == NULL) {
        cf_free(c);
        if (kp != NULL) {
            cf_cleanse(kp, strlen(kp));
        }
        cf_free(kp);
        return cf_err_from_ossl(errmsg, "create the cluster CA");
    }
    *cert_out = c;
    *key_out = kp;
    return CF_OK;
}

int cf_tlsca_new_csr(const char *cn, char **key_out, char **csr_out, char errmsg[CF_ERRMSG_SIZE])
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509_REQ *r = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    char *kp = NULL;
    char *cp = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (k != NULL && r != NULL && name != NULL && b != NULL &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) == 1 &&
        X509_REQ_set_subject_name(r, name) == 1 && X509_REQ_set_pubkey(r, k) == 1 &&
        X509_REQ_sign(r, k, EVP_sha256()) > 0 && PEM_write_bio_X509_REQ(b, r) == 1) {
        cp = bio_text(b);
        kp = key_pem(k);
    }
    BIO_free(b);
    X509_NAME_free(name);
    X509_REQ_free(r);
    EVP_PKEY_free(k);
    if (cp == NULL || kp == NULL) {
        cf_free(cp);
        if (kp != NULL) {
            cf_cleanse(kp, strlen(kp));
        }
        cf_free(kp);
        return cf_err_from_ossl(errmsg, "create the node key");
    }
    *key_out = kp;
    *csr_out = cp;
    return CF_OK;
}

int cf_tlsca_sign(const char *ca_cert_pem,
                  const char *ca_key_pem,
                  const char *csr_pem,
                  const char *cn,
                  unsigned days,
                  char **cert_out,
                  char errmsg[CF_ERRMSG_SIZE])
{
    X509 *ca = read_cert(ca_cert_pem);
    EVP_PKEY *cak = read_key(ca_key_pem);
    BIO *b = BIO_new_mem_buf(csr_pem, -1);
    X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    EVP_PKEY *pub = req ? X509_REQ_get0_pubkey(req) : NULL;
    X509 *x = NULL;
    int rv = CF_OK;
    if (ca == NULL || cak == NULL) {
        cf_errmsg_printf(errmsg, "the cluster CA is unreadable");
        rv = CF_ECORRUPT;
    } else if (X509_check_ca(ca) == 0) {
        cf_errmsg_printf(errmsg, "the issuing certificate is not a CA");
        rv = CF_EINVAL;
    } else if (req == NULL || pub == NULL) {
        cf_errmsg_printf(errmsg, "the certificate request is not a PEM CSR");
        rv = CF_EMALFORMED;
    } else if (X509_REQ_verify(req, pub) != 1) {
        cf_errmsg_printf(errmsg, "the certificate request's signature does not verify");
        rv = CF_EAUTH;
    }
    if (rv == CF_OK) {
        x = new_cert(cn, days);
        if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 ||
            X509_set_pubkey(x, pub) != 1) {
            rv = CF_ECRYPTO;
        }
        if (rv == CF_OK && ASN1_TIME_compare(X509_get0_notAfter(ca), X509_get0_notAfter(x)) < 0 &&
            X509_set1_notAfter(x, X509_get0_notAfter(ca)) != 1) {
            rv = CF_ECRYPTO;
        }
    }
    char san[300];
    snprintf(san, sizeof(san), "DNS:%s", cn);
    if (rv == CF_OK) {
        rv = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE");
    }
    if (rv == CF_OK) {
        rv = add_ext(x, ca, NID_key_usage, "critical,digitalSignature,keyAgreement");
    }
    if (rv == CF_OK) {
        rv = add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    if (rv == CF_OK) {
        rv = add_ext(x, ca, NID_subject_alt_name, san);
    }
    if (rv == CF_OK) {
        rv = add_ext(x, ca, NID_authority_key_identifier, "keyid:always");
    }
    if (rv == CF_OK && X509_sign(x, cak, EVP_sha256()) <= 0) {
        rv = CF_ECRYPTO;
    }
    char *out = rv == CF_OK ? cert_pem(x) : NULL;
    if (rv == CF_OK && out == NULL) {
        rv = CF_ENOMEM;
    }
    if (rv == CF_ECRYPTO) {
        cf_err_from_ossl(errmsg, "sign the node certificate");
    }
    X509_free(x);
    X509_REQ_free(req);
    X509_free(ca);
    EVP_PKEY_free(cak);
    if (rv == CF_OK) {
        *cert_out = out;
    }
    return rv;
}

int cf_tlsca_cert_cn(const char *pem, char **cn, char errmsg[CF_ERRMSG_SIZE])
{
    X509 *x = read_cert(pem);
    char buf[256];
    int n =
        x ? X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf))
          : -1;
    X509_free(x);
    if (n <= 0) {
        cf_errmsg_printf(errmsg, "not a PEM certificate with a subject CN");
        return CF_EMALFORMED;
    }
    *cn = cf_strdup(buf);
    return *cn ? CF_OK : CF_ENOMEM;
}
