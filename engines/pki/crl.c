/*
 * CRL encoding (crl.h): hand-encoded revocation entries spliced into an OpenSSL-made
 * TBSCertList, then signed.
 */
#include "engines/pki/crl.h"

#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/der.h"
#include "engines/pki/key.h"
#include "lib/err.h"
#include "lib/mem.h"

/* DER --------------------------------------------------------------------------------------- */

/* Reads the header of the element at p (in [p, end)): *hdr = header size, *body = body size.
 * Only the definite, short forms DER allows; false when malformed. */
static bool der_read(const uint8_t *p, const uint8_t *end, size_t *hdr, size_t *body)
{
    if (end - p < 2) {
        return false;
    }
    size_t h = 2;
    size_t l = p[1];
    if (l & 0x80) {
        size_t n = l & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - p) < 2 + n) {
            return false;
        }
        l = 0;
        for (size_t i = 0; i < n; i++) {
            l = (l << 8) | p[2 + i];
        }
        h += n;
    }
    if ((size_t)(end - p) - h < l) {
        return false;
    }
    *hdr = h;
    *body = l;
    return true;
}

/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
static size_t der_time(int64_t t, uint8_t *out)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    int year = tm.tm_year + 1900;
    char s[20];
    if (year >= 1950 && year < 2050) {
        snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = 0x17;
    } else {
        snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = 0x18;
    }
    size_t n = strlen(s);
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, n);
    return 2 + n;
}

int pki_crl_entry_add(struct cf_buf *entries,
                      const uint8_t *serial,
                      size_t serial_len,
                      int64_t revoked_at)
{
    return pki_crl_entry_add_ext(entries, serial, serial_len, revoked_at, NULL, 0);
}

int pki_crl_entry_add_ext(struct cf_buf *entries,
                          const uint8_t *serial,
                          size_t serial_len,
                          int64_t revoked_at,
                          const uint8_t *exts,
                          size_t exts_len)
{
    while (serial_len > 1 && serial[0] == 0) {
        serial++;
        serial_len--;
    }
    if (serial_len == 0 || serial_len > 32) {
        return CF_EINVAL;
    }
    bool pad = (serial[0] & 0x80) != 0;
    uint8_t body[2 + 33 + 2 + 15];
    size_t n = 0;
    body[n++] = 0x02;
    body[n++] = (uint8_t)(serial_len + (pad ? 1 : 0));
    if (pad) {
        body[n++] = 0x00;
    }
    memcpy(body + n, serial, serial_len);
    n += serial_len;
    n += der_time(revoked_at, body + n);
    uint8_t hdr[10];
    size_t h = pki_der_header(0x30, n + exts_len, hdr);
    int rv = cf_buf_append(entries, hdr, h);
    if (rv == CF_OK) {
        rv = cf_buf_append(entries, body, n);
    }
    if (rv == CF_OK && exts_len > 0) {
        rv = cf_buf_append(entries, exts, exts_len);
    }
    return rv;
}

/* The entry-less CRL ------------------------------------------------------------------------- */

static int add_akid(X509_CRL *crl, X509 *issuer, char *errmsg)
{
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    if (akid == NULL) {
        return CF_ENOMEM;
    }
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);
    ASN1_OCTET_STRING *id = NULL;
    if (ski != NULL) {
        id = ASN1_OCTET_STRING_dup(ski);
    } else {
        /* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (X509_pubkey_digest(issuer, EVP_sha1(), md, &mdlen) == 1) {
            id = ASN1_OCTET_STRING_new();
            if (id != NULL && ASN1_OCTET_STRING_set(id, md, (int)mdlen) != 1) {
                ASN1_OCTET_STRING_free(id);
                id = NULL;
            }
        }
    }
    if (id == NULL) {
        AUTHORITY_KEYID_free(akid);
        return cf_err_from_ossl(errmsg, "authority key identifier");
    }
    akid->keyid = id;
    int ok = X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0);
    AUTHORITY_KEYID_free(akid);
    return ok == 1 ? CF_OK : cf_err_from_ossl(errmsg, "authority key identifier");
}

static int add_number(X509_CRL *crl, int nid, int64_t v, int critical, char *errmsg)
{
    ASN1_INTEGER *n = ASN1_INTEGER_new();
    if (n == NULL) {
        return CF_ENOMEM;
    }
    int ok = ASN1_INTEGER_set_int64(n, v) == 1 && X509_CRL_add1_ext_i2d(crl, nid, n, critical, 0);
    ASN1_INTEGER_free(n);
    return ok ? CF_OK : cf_err_from_ossl(errmsg, "CRL number");
}

static int set_time(X509_CRL *crl, int64_t t, bool last, char *errmsg)
{
    ASN1_TIME *a = ASN1_TIME_set(NULL, (time_t)t);
    if (a == NULL) {
        return cf_err_from_ossl(errmsg, "CRL time");
    }
    int ok = last ? X509_CRL_set1_lastUpdate(crl, a) : X509_CRL_set1_nextUpdate(crl, a);
    ASN1_TIME_free(a);
    return ok == 1 ? CF_OK : cf_err_from_ossl(errmsg, "CRL time");
}

/* Makes and signs the CRL without entries; *tbs = its TBSCertList DER, *alg = the DER of its
 * signature AlgorithmIdentifier (both OPENSSL_malloc'd). */
static int empty_crl(const struct pki_crl_params *p,
                     uint8_t **tbs,
                     int *tbs_len,
                     uint8_t **alg,
                     int *alg_len,
                     char *errmsg)
{
    X509_CRL *crl = X509_CRL_new();
    EVP_MD_CTX *ctx = NULL;
    if (crl == NULL) {
        return CF_ENOMEM;
    }
    int rv = CF_OK;
    if (X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(p->issuer)) != 1) {
        rv = cf_err_from_ossl(errmsg, "CRL issuer");
    }
    if (rv == CF_OK) {
        rv = set_time(crl, p->this_update, true, errmsg);
    }
    if (rv == CF_OK) {
        rv = set_time(crl, p->next_update, false, errmsg);
    }
    if (rv == CF_OK) {
        rv = add_akid(crl, p->issuer, errmsg);
    }
    if (rv == CF_OK) {
        rv = add_number(crl, NID_crl_number, p->number, 0, errmsg);
    }
    if (rv == CF_OK && p->delta_base >= 0) {
        rv = add_number(crl, NID_delta_crl, p->delta_base, 1, errmsg);
    }
    for (int i = 0; rv == CF_OK && i < sk_X509_EXTENSION_num(p->extra_exts); i++) {
        if (X509_CRL_add_ext(crl, sk_X509_EXTENSION_value(p->extra_exts, i), -1) != 1) {
            rv = cf_err_from_ossl(errmsg, "CRL extension");
        }
    }
    if (rv == CF_OK) {
        rv = pki_key_sign_ctx_new(p->signer, p->signature_bits, p->use_pss, &ctx, errmsg);
    }
    if (rv == CF_OK && X509_CRL_sign_ctx(crl, ctx) <= 0) {
        rv = cf_err_from_ossl(errmsg, "sign CRL");
    }
    if (rv == CF_OK) {
        const X509_ALGOR *a = NULL;
        X509_CRL_get0_signature(crl, NULL, &a);
        *tbs = NULL;
        *alg = NULL;
        *tbs_len = i2d_re_X509_CRL_tbs(crl, tbs);
        *alg_len = a != NULL ? i2d_X509_ALGOR(a, alg) : -1;
        if (*tbs_len <= 0 || *alg_len <= 0) {
            OPENSSL_free(*tbs);
            OPENSSL_free(*alg);
            rv = cf_err_from_ossl(errmsg, "encode CRL");
        }
    }
    EVP_MD_CTX_free(ctx);
    X509_CRL_free(crl);
    return rv;
}

/* Splices the entries into tbs after its nextUpdate (the fifth element) into out. */
static int splice(const uint8_t *tbs,
                  size_t tbs_len,
                  const uint8_t *entries,
                  size_t entries_len,
                  struct cf_buf *out,
                  char *errmsg)
{
    const uint8_t *end = tbs + tbs_len;
    size_t h;
    size_t body;
    if (!der_read(tbs, end, &h, &body) || tbs[0] != 0x30 || h + body != tbs_len) {
        cf_errmsg_printf(errmsg, "unexpected TBSCertList encoding");
        return CF_EINTERNAL;
    }
    const uint8_t *first = tbs + h;
    const uint8_t *cut = first;
    for (int i = 0; i < 5; i++) {
        size_t eh;
        size_t eb;
        if (!der_read(cut, end, &eh, &eb)) {
            cf_errmsg_printf(errmsg, "unexpected TBSCertList encoding");
            return CF_EINTERNAL;
        }
        cut += eh + eb;
    }
    uint8_t lhdr[10];
    size_t lh = entries_len > 0 ? pki_der_header(0x30, entries_len, lhdr) : 0;
    size_t inner = body + lh + entries_len;
    uint8_t thdr[10];
    size_t th = pki_der_header(0x30, inner, thdr);
    int rv = cf_buf_reserve(out, th + inner);
    if (rv == CF_OK) {
        cf_buf_append(out, thdr, th);
        cf_buf_append(out, first, (size_t)(cut - first));
        if (entries_len > 0) {
            cf_buf_append(out, lhdr, lh);
            cf_buf_append(out, entries, entries_len);
        }
        cf_buf_append(out, cut, (size_t)(end - cut));
    }
    return rv;
}

int pki_crl_build(const struct pki_crl_params *p,
                  const uint8_t *entries,
                  size_t entries_len,
                  uint8_t **der,
                  size_t *len,
                  char *errmsg)
{
    uint8_t *tbs0 = NULL;
    uint8_t *alg = NULL;
    int tbs0_len = 0;
    int alg_len = 0;
    int rv = empty_crl(p, &tbs0, &tbs0_len, &alg, &alg_len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    struct cf_buf tbs;
    struct cf_buf out;
    cf_buf_init(&tbs);
    cf_buf_init(&out);
    EVP_MD_CTX *ctx = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    rv = splice(tbs0, (size_t)tbs0_len, entries, entries_len, &tbs, errmsg);
    if (rv == CF_OK) {
        rv = pki_key_sign_ctx_new(p->signer, p->signature_bits, p->use_pss, &ctx, errmsg);
    }
    if (rv == CF_OK && EVP_DigestSign(ctx, NULL, &sig_len, tbs.data, tbs.len) != 1) {
        rv = cf_err_from_ossl(errmsg, "sign CRL");
    }
    if (rv == CF_OK) {
        sig = cf_malloc(sig_len + 1);
        rv = sig == NULL ? CF_ENOMEM : CF_OK;
    }
    if (rv == CF_OK && EVP_DigestSign(ctx, sig + 1, &sig_len, tbs.data, tbs.len) != 1) {
        rv = cf_err_from_ossl(errmsg, "sign CRL");
    }
    if (rv == CF_OK) {
        sig[0] = 0; /* BIT STRING: no unused bits */
        uint8_t shdr[10];
        size_t sh = pki_der_header(0x03, sig_len + 1, shdr);
        size_t inner = tbs.len + (size_t)alg_len + sh + sig_len + 1;
        uint8_t ohdr[10];
        size_t oh = pki_der_header(0x30, inner, ohdr);
        rv = cf_buf_reserve(&out, oh + inner);
        if (rv == CF_OK) {
            cf_buf_append(&out, ohdr, oh);
            cf_buf_append(&out, tbs.data, tbs.len);
            cf_buf_append(&out, alg, (size_t)alg_len);
            cf_buf_append(&out, shdr, sh);
            cf_buf_append(&out, sig, sig_len + 1);
            *der = cf_buf_steal(&out, len);
        }
    }
    cf_free(sig);
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(tbs0);
    OPENSSL_free(alg);
    cf_buf_close(&tbs);
    cf_buf_close(&out);
    return rv;
}

void pki_crl_sigalg(const char *name, int *signature_bits, bool *use_pss)
{
    *signature_bits = 0;
    *use_pss = false;
    if (name == NULL || strncmp(name, "SHA", 3) != 0) {
        return;
    }
    if (strncmp(name + 3, "384", 3) == 0) {
        *signature_bits = 384;
    } else if (strncmp(name + 3, "512", 3) == 0) {
        *signature_bits = 512;
    } else if (strncmp(name + 3, "256", 3) == 0) {
        *signature_bits = 256;
    }
    size_t n = strlen(name);
    *use_pss = n > 3 && strcmp(name + n - 3, "PSS") == 0;
}

char *pki_crl_to_pem(const uint8_t *der, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) {
        return NULL;
    }
    char *out = NULL;
    if (PEM_write_bio(b, "X509 CRL", "", der, (long)len) > 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        out = n > 0 ? cf_strndup(p, (size_t)n) : NULL;
    }
    BIO_free(b);
    return out;
}
