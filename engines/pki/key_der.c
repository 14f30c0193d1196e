/*
 * Hand encoding of keys (engines/pki/key.h, "Direct encodings"): SubjectPublicKeyInfo
 * contents and private keys in SEC1, PKCS#1 and PKCS#8, written with engines/pki/der.h from
 * the key's parameters. OpenSSL 3 routes i2d_PrivateKey, EVP_PKEY2PKCS8 and X509_set_pubkey
 * through its provider encoders (and X509_set_pubkey decodes the result again); on the
 * issuance path that cost more than keygen and signing together. The output is byte for byte
 * what OpenSSL writes (tests/unit/engines/pki/test_key.c compares them); keys these writers
 * do not cover (multi-prime RSA, RSA-PSS, explicit curves) report CF_EUNSUPPORTED and the
 * callers fall back to OpenSSL's encoders.
 *
 * Private-key buffers are sized up front so they never move (no stale copy is left behind
 * by a realloc) and are cleansed when freed.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "engines/pki/der.h"
#include "engines/pki/key.h"
#include "lib/buf.h"
#include "lib/err.h"

/* Room for the largest key written here (RSA-8192 PKCS#8 is about 4.8 KB). */
#define KEY_DER_CAP 8192

static int ec_curve_nid(const EVP_PKEY *key)
{
    char name[80] = "";
    size_t n = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &n) !=
        1) {
        ERR_clear_error();
        return NID_undef;
    }
    return OBJ_txt2nid(name);
}

/* The public point, uncompressed. A key that asks for another form (OpenSSL keeps the form a
 * parsed point came in, and writes it back that way) is left to OpenSSL. */
static int ec_point(const EVP_PKEY *key, uint8_t *out, size_t cap, size_t *len)
{
    char form[32] = "";
    size_t n = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, form,
                                       sizeof(form), &n) == 1 &&
        strcmp(form, OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 0) {
        return CF_EUNSUPPORTED;
    }
    ERR_clear_error();
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, cap, len) !=
        1) {
        ERR_clear_error();
        return CF_EUNSUPPORTED;
    }
    return CF_OK;
}

/* Appends the DER of a BIGNUM parameter of key as an INTEGER. */
static int put_bn_param(struct cf_buf *out, const EVP_PKEY *key, const char *name)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) {
        ERR_clear_error();
        return CF_EUNSUPPORTED;
    }
    int rv = pki_der_put_bn(out, bn);
    BN_clear_free(bn);
    return rv;
}

/* Hands the bytes of b to OpenSSL's allocator (X509_PUBKEY_set0_param and the callers of the
 * private-key writer free with OPENSSL_free / OPENSSL_clear_free). */
static unsigned char *to_openssl(const struct cf_buf *b)
{
    unsigned char *p = OPENSSL_malloc(b->len > 0 ? b->len : 1);
    if (p != NULL && b->len > 0) {
        memcpy(p, b->data, b->len);
    }
    return p;
}

/* The parts of a SubjectPublicKeyInfo: the algorithm, its parameter (a curve, NULL for RSA,
 * absent for Ed25519) and the public key bits, read from the key's parameters. */
struct spki_parts
{
    int alg;
    int curve; /* EC only */
    int ptype; /* V_ASN1_OBJECT (curve), V_ASN1_NULL or V_ASN1_UNDEF */
    struct cf_buf bits;
};

static int spki_parts_of(const EVP_PKEY *key, struct spki_parts *sp)
{
    int id = EVP_PKEY_get_base_id(key);
    cf_buf_init(&sp->bits);
    sp->curve = NID_undef;
    sp->ptype = V_ASN1_UNDEF;
    int rv = CF_OK;
    if (id == EVP_PKEY_EC) {
        uint8_t point[160];
        size_t n = 0;
        sp->curve = ec_curve_nid(key);
        if (sp->curve == NID_undef || OBJ_nid2obj(sp->curve) == NULL) {
            return CF_EUNSUPPORTED;
        }
        rv = ec_point(key, point, sizeof(point), &n);
        if (rv == CF_OK) {
            rv = cf_buf_append(&sp->bits, point, n);
        }
        sp->alg = NID_X9_62_id_ecPublicKey;
        sp->ptype = V_ASN1_OBJECT;
    } else if (id == EVP_PKEY_RSA) {
        struct cf_buf seq;
        cf_buf_init(&seq);
        rv = put_bn_param(&seq, key, OSSL_PKEY_PARAM_RSA_N);
        if (rv == CF_OK) {
            rv = put_bn_param(&seq, key, OSSL_PKEY_PARAM_RSA_E);
        }
        if (rv == CF_OK) {
            rv = pki_der_put(&sp->bits, PKI_DER_SEQUENCE, seq.data, seq.len);
        }
        cf_buf_close(&seq);
        sp->alg = NID_rsaEncryption;
        sp->ptype = V_ASN1_NULL;
    } else if (id == EVP_PKEY_ED25519) {
        uint8_t raw[32];
        size_t n = sizeof(raw);
        if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != sizeof(raw)) {
            ERR_clear_error();
            return CF_EUNSUPPORTED;
        }
        rv = cf_buf_append(&sp->bits, raw, n);
        sp->alg = NID_ED25519;
    } else {
        return CF_EUNSUPPORTED;
    }
    if (rv != CF_OK) {
        cf_buf_close(&sp->bits);
    }
    return rv;
}

/* SEQUENCE { SEQUENCE { alg, param }, BIT STRING bits }. */
static int spki_write(int alg,
                      int curve,
                      int ptype,
                      const uint8_t *bits,
                      size_t n,
                      struct cf_buf *out)
{
    size_t m_spki = 0;
    size_t m_alg = 0;
    int rv = pki_der_open(out, PKI_DER_SEQUENCE, &m_spki);
    if (rv == CF_OK) {
        rv = pki_der_open(out, PKI_DER_SEQUENCE, &m_alg);
    }
    if (rv == CF_OK) {
        rv = pki_der_put_oid(out, alg);
    }
    if (rv == CF_OK && ptype == V_ASN1_OBJECT) {
        rv = pki_der_put_oid(out, curve);
    } else if (rv == CF_OK && ptype == V_ASN1_NULL) {
        rv = pki_der_put(out, PKI_DER_NULL, NULL, 0);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(out, m_alg);
    }
    if (rv == CF_OK) {
        rv = pki_der_put_bits(out, bits, n);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(out, m_spki);
    }
    return rv;
}

int pki_key_spki_der(const EVP_PKEY *key, struct cf_buf *out)
{
    struct spki_parts sp;
    int rv = spki_parts_of(key, &sp);
    if (rv == CF_OK) {
        rv = spki_write(sp.alg, sp.curve, sp.ptype, sp.bits.data, sp.bits.len, out);
        cf_buf_close(&sp.bits);
        return rv;
    }
    if (rv != CF_EUNSUPPORTED) {
        return rv;
    }
    /* Keys the direct writer does not cover: OpenSSL's encoder. */
    ERR_clear_error();
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0 || der == NULL) {
        ERR_clear_error();
        return CF_ECRYPTO;
    }
    rv = cf_buf_append(out, der, (size_t)n);
    OPENSSL_free(der);
    return rv;
}

int pki_key_ec_raw_spki(int curve, const uint8_t *point, size_t plen, struct cf_buf *out)
{
    return spki_write(NID_X9_62_id_ecPublicKey, curve, V_ASN1_OBJECT, point, plen, out);
}

/* The order's size in bytes, which the private scalar is padded to (as OpenSSL writes it). */
static size_t ec_order_len(int curve)
{
    return curve == NID_secp224r1          ? 28
           : curve == NID_X9_62_prime256v1 ? 32
           : curve == NID_secp384r1        ? 48
           : curve == NID_secp521r1        ? 66
                                           : 0;
}

/* ECPrivateKey (RFC 5915): version 1, the private scalar padded to the order's size, the
 * curve unless inside PKCS#8 (whose AlgorithmIdentifier names it), and the public point. */
static int ec_private_raw(int curve,
                          const uint8_t *scalar,
                          size_t olen,
                          const uint8_t *point,
                          size_t plen,
                          bool with_curve,
                          struct cf_buf *out)
{
    struct cf_buf seq;
    cf_buf_init(&seq);
    struct cf_buf tmp;
    cf_buf_init(&tmp);
    int rv = cf_buf_reserve(&seq, 512);
    if (rv == CF_OK) {
        rv = cf_buf_reserve(&tmp, 256);
    }
    if (rv == CF_OK) {
        rv = pki_der_put_uint(&seq, 1);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(&seq, PKI_DER_OCTET_STRING, scalar, olen);
    }
    if (rv == CF_OK && with_curve) {
        rv = pki_der_put_oid(&tmp, curve);
        if (rv == CF_OK) {
            rv = pki_der_put(&seq, PKI_DER_CONTEXT(0), tmp.data, tmp.len);
        }
        cf_buf_reset(&tmp);
    }
    if (rv == CF_OK) {
        rv = pki_der_put_bits(&tmp, point, plen);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(&seq, PKI_DER_CONTEXT(1), tmp.data, tmp.len);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(out, PKI_DER_SEQUENCE, seq.data, seq.len);
    }
    cf_buf_close_secure(&seq);
    cf_buf_close(&tmp);
    return rv;
}

static int ec_private(const EVP_PKEY *key, int curve, bool with_curve, struct cf_buf *out)
{
    uint8_t point[160];
    size_t plen = 0;
    int rv = ec_point(key, point, sizeof(point), &plen);
    if (rv != CF_OK) {
        return rv;
    }
    BIGNUM *priv = NULL;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv) != 1) {
        ERR_clear_error();
        return CF_EUNSUPPORTED;
    }
    size_t olen = ec_order_len(curve);
    uint8_t scalar[66];
    if (olen == 0 || BN_bn2binpad(priv, scalar, (int)olen) != (int)olen) {
        BN_clear_free(priv);
        return CF_EUNSUPPORTED;
    }
    BN_clear_free(priv);
    rv = ec_private_raw(curve, scalar, olen, point, plen, with_curve, out);
    OPENSSL_cleanse(scalar, sizeof(scalar));
    return rv;
}

/* RSAPrivateKey (RFC 8017 A.1.2) of a two-prime key. */
static int rsa_private(const EVP_PKEY *key, struct cf_buf *out)
{
    static const char *const names[] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    BIGNUM *third = NULL;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR3, &third) == 1) {
        BN_clear_free(third);
        return CF_EUNSUPPORTED; /* multi-prime */
    }
    ERR_clear_error();
    struct cf_buf seq;
    cf_buf_init(&seq);
    int rv = cf_buf_reserve(&seq, KEY_DER_CAP);
    if (rv == CF_OK) {
        rv = pki_der_put_uint(&seq, 0);
    }
    for (size_t i = 0; rv == CF_OK && i < sizeof(names) / sizeof(names[0]); i++) {
        rv = put_bn_param(&seq, key, names[i]);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(out, PKI_DER_SEQUENCE, seq.data, seq.len);
    }
    cf_buf_close_secure(&seq);
    return rv;
}

/* PrivateKeyInfo (RFC 5208): version 0, the algorithm and the inner key as an OCTET STRING. */
static int pkcs8_wrap(int alg, int curve, const struct cf_buf *inner, struct cf_buf *out)
{
    struct cf_buf algid;
    cf_buf_init(&algid);
    struct cf_buf seq;
    cf_buf_init(&seq);
    int rv = cf_buf_reserve(&seq, inner->len + 64);
    if (rv == CF_OK) {
        rv = pki_der_put_oid(&algid, alg);
    }
    if (rv == CF_OK && alg == NID_X9_62_id_ecPublicKey) {
        rv = pki_der_put_oid(&algid, curve);
    } else if (rv == CF_OK && alg == NID_rsaEncryption) {
        rv = pki_der_put(&algid, PKI_DER_NULL, NULL, 0);
    }
    if (rv == CF_OK) {
        rv = pki_der_put_uint(&seq, 0);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(&seq, PKI_DER_SEQUENCE, algid.data, algid.len);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(&seq, PKI_DER_OCTET_STRING, inner->data, inner->len);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(out, PKI_DER_SEQUENCE, seq.data, seq.len);
    }
    cf_buf_close(&algid);
    cf_buf_close_secure(&seq);
    return rv;
}

int pki_key_private_der(const EVP_PKEY *key, bool pkcs8, unsigned char **der, size_t *len)
{
    int id = EVP_PKEY_get_base_id(key);
    struct cf_buf inner;
    cf_buf_init(&inner);
    struct cf_buf out;
    cf_buf_init(&out);
    int rv = cf_buf_reserve(&inner, KEY_DER_CAP);
    if (rv == CF_OK) {
        rv = cf_buf_reserve(&out, KEY_DER_CAP + 64);
    }
    int alg = NID_undef;
    int curve = NID_undef;
    if (rv != CF_OK) {
        /* nothing more */
    } else if (id == EVP_PKEY_EC) {
        curve = ec_curve_nid(key);
        alg = NID_X9_62_id_ecPublicKey;
        rv = curve == NID_undef ? CF_EUNSUPPORTED : ec_private(key, curve, !pkcs8, &inner);
    } else if (id == EVP_PKEY_RSA) {
        alg = NID_rsaEncryption;
        rv = rsa_private(key, &inner);
    } else if (id == EVP_PKEY_ED25519) {
        uint8_t raw[32];
        size_t n = sizeof(raw);
        alg = NID_ED25519;
        pkcs8 = true; /* Ed25519 has no other form */
        if (EVP_PKEY_get_raw_private_key(key, raw, &n) != 1 || n != sizeof(raw)) {
            ERR_clear_error();
            rv = CF_EUNSUPPORTED;
        } else {
            rv = pki_der_put(&inner, PKI_DER_OCTET_STRING, raw, n);
        }
        OPENSSL_cleanse(raw, sizeof(raw));
    } else {
        rv = CF_EUNSUPPORTED;
    }
    if (rv == CF_OK && pkcs8) {
        rv = pkcs8_wrap(alg, curve, &inner, &out);
    } else if (rv == CF_OK) {
        rv = cf_buf_append(&out, inner.data, inner.len);
    }
    unsigned char *p = rv == CF_OK ? to_openssl(&out) : NULL;
    if (rv == CF_OK && p == NULL) {
        rv = CF_ENOMEM;
    }
    if (rv == CF_OK) {
        *der = p;
        *len = out.len;
    }
    cf_buf_close_secure(&inner);
    cf_buf_close_secure(&out);
    return rv;
}

int pki_key_ec_raw_private_der(int curve,
                               const uint8_t *scalar,
                               size_t slen,
                               const uint8_t *point,
                               size_t plen,
                               bool pkcs8,
                               struct cf_buf *out)
{
    if (slen != ec_order_len(curve) || slen == 0) {
        return CF_EINVAL;
    }
    if (!pkcs8) {
        return ec_private_raw(curve, scalar, slen, point, plen, true, out);
    }
    struct cf_buf inner;
    cf_buf_init(&inner);
    int rv = cf_buf_reserve(&inner, 512);
    if (rv == CF_OK) {
        rv = ec_private_raw(curve, scalar, slen, point, plen, false, &inner);
    }
    if (rv == CF_OK) {
        rv = pkcs8_wrap(NID_X9_62_id_ecPublicKey, curve, &inner, out);
    }
    cf_buf_close_secure(&inner);
    return rv;
}
