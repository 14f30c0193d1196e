/*
 * PKI private keys: generation (EVP_PKEY_Q_keygen), PEM parsing by block label, export as
 * PKCS#1/SEC1/PKCS#8 DER or PEM into cf_secret buffers, SPKI fingerprints and the signer's
 * digest-sign context (pki.md 1.2, 2.3, 3.5).
 *
 * Private key bytes only ever sit in cf_secret buffers or in OpenSSL memory that is cleansed
 * before it is released (OPENSSL_clear_free). Every function is shape E3(a): OpenSSL pointers
 * NULL at the top, one out: label.
 */
#include "engines/pki/key.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "engines/pki/der.h"
#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"

static const char *const type_names[] = {
    [PKI_KEY_RSA] = "rsa",
    [PKI_KEY_EC] = "ec",
    [PKI_KEY_ED25519] = "ed25519",
};

const char *pki_key_type_name(enum pki_key_type type)
{
    if ((unsigned)type >= sizeof(type_names) / sizeof(type_names[0])) {
        return "unknown";
    }
    return type_names[type];
}

int pki_key_type_parse(const char *s, enum pki_key_type *out, char *errmsg)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        if (s != NULL && strcmp(s, type_names[i]) == 0) {
            *out = (enum pki_key_type)i;
            return CF_OK;
        }
    }
    cf_errmsg_printf(errmsg, "unknown key type %s", s == NULL ? "" : s);
    return CF_EINVAL;
}

int pki_key_format_parse(const char *s, enum pki_key_format *out, char *errmsg)
{
    if (s == NULL || strcmp(s, "") == 0 || strcmp(s, "der") == 0 || strcmp(s, "pem") == 0) {
        *out = PKI_KEY_FORMAT_DER;
        return CF_OK;
    }
    if (strcmp(s, "pkcs8") == 0) {
        *out = PKI_KEY_FORMAT_PKCS8;
        return CF_OK;
    }
    cf_errmsg_printf(errmsg, "invalid private_key_format %s", s);
    return CF_EINVAL;
}

int pki_key_check_minimum(enum pki_key_type type, int bits, char *errmsg)
{
    if (type == PKI_KEY_RSA && bits < 2048) {
        cf_errmsg_printf(errmsg, "RSA keys < 2048 bits are unsafe and not supported: got %d", bits);
        return CF_EINVAL;
    }
    return CF_OK;
}

int pki_key_bits_resolve(enum pki_key_type type, int bits, int *out, char *errmsg)
{
    switch (type) {
        case PKI_KEY_RSA:
            if (bits == 0) {
                bits = 2048;
            }
            if (bits < 2048) {
                return pki_key_check_minimum(type, bits, errmsg);
            }
            if (bits != 2048 && bits != 3072 && bits != 4096 && bits != 8192) {
                cf_errmsg_printf(errmsg, "unsupported bit length for RSA key: %d", bits);
                return CF_EINVAL;
            }
            *out = bits;
            return CF_OK;
        case PKI_KEY_EC:
            if (bits == 0) {
                bits = 256;
            }
            if (bits != 224 && bits != 256 && bits != 384 && bits != 521) {
                cf_errmsg_printf(errmsg, "unsupported bit length for EC key: %d", bits);
                return CF_EINVAL;
            }
            *out = bits;
            return CF_OK;
        case PKI_KEY_ED25519:
            *out = 0;
            return CF_OK;
    }
    cf_errmsg_printf(errmsg, "unknown key type %d", (int)type);
    return CF_EINVAL;
}

static const char *curve_for_bits(int bits)
{
    switch (bits) {
        case 224:
            return "P-224";
        case 256:
            return "P-256";
        case 384:
            return "P-384";
        default:
            return "P-521";
    }
}

int pki_key_generate(enum pki_key_type type, int bits, EVP_PKEY **out, char *errmsg)
{
    int rv = pki_key_bits_resolve(type, bits, &bits, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    ERR_clear_error();
    EVP_PKEY *key = NULL;
    switch (type) {
        case PKI_KEY_RSA:
            key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
            break;
        case PKI_KEY_EC:
            key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve_for_bits(bits));
            break;
        case PKI_KEY_ED25519:
            key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
            break;
    }
    if (key == NULL) {
        return cf_err_from_ossl(errmsg, "generate key");
    }
    *out = key;
    return CF_OK;
}

int pki_key_describe(const EVP_PKEY *key, enum pki_key_type *type, int *bits, char *errmsg)
{
    int id = EVP_PKEY_get_base_id(key);
    if (id == EVP_PKEY_RSA) {
        *type = PKI_KEY_RSA;
        *bits = EVP_PKEY_get_bits(key);
        return CF_OK;
    }
    if (id == EVP_PKEY_ED25519) {
        *type = PKI_KEY_ED25519;
        *bits = 0;
        return CF_OK;
    }
    if (id == EVP_PKEY_EC) {
        char name[80] = "";
        size_t n = 0;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
                                           &n) != 1) {
            ERR_clear_error();
            cf_errmsg_printf(errmsg, "unsupported EC curve %s", "(explicit parameters)");
            return CF_EUNSUPPORTED;
        }
        int nid = OBJ_txt2nid(name);
        int b = 0;
        if (nid == NID_secp224r1) {
            b = 224;
        } else if (nid == NID_X9_62_prime256v1) {
            b = 256;
        } else if (nid == NID_secp384r1) {
            b = 384;
        } else if (nid == NID_secp521r1) {
            b = 521;
        } else {
            cf_errmsg_printf(errmsg, "unsupported EC curve %s", name);
            return CF_EUNSUPPORTED;
        }
        *type = PKI_KEY_EC;
        *bits = b;
        return CF_OK;
    }
    const char *name = EVP_PKEY_get0_type_name(key);
    cf_errmsg_printf(errmsg, "unsupported key algorithm %s", name == NULL ? "(unknown)" : name);
    return CF_EUNSUPPORTED;
}

int pki_key_from_der(const char *label,
                     const uint8_t *der,
                     size_t len,
                     EVP_PKEY **out,
                     char *errmsg)
{
    int rv = CF_OK;
    EVP_PKEY *key = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    const unsigned char *p = der;
    ERR_clear_error();
    if (len > LONG_MAX) {
        cf_errmsg_printf(errmsg, "failed to parse %s: too big", label);
        return CF_ETOOBIG;
    }
    if (strcmp(label, "PRIVATE KEY") == 0) {
        p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
        if (p8 != NULL) {
            key = EVP_PKCS82PKEY(p8);
        }
    } else if (strcmp(label, "RSA PRIVATE KEY") == 0) {
        key = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, (long)len);
    } else if (strcmp(label, "EC PRIVATE KEY") == 0) {
        key = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)len);
    } else {
        cf_errmsg_printf(errmsg, "unsupported PEM block type %s", label);
        return CF_EMALFORMED;
    }
    if (key == NULL) {
        cf_err_from_ossl(errmsg, "decode");
        cf_errmsg_wrapf(errmsg, "failed to parse %s", label);
        rv = CF_EMALFORMED;
        goto out;
    }
    if (p != der + len) {
        cf_errmsg_printf(errmsg, "failed to parse %s: trailing data after the key", label);
        rv = CF_EMALFORMED;
        goto out;
    }
    enum pki_key_type type;
    int bits;
    rv = pki_key_describe(key, &type, &bits, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    rv = pki_key_check_minimum(type, bits, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    *out = key;
    key = NULL;
out:
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(key);
    return rv;
}

int pki_key_from_pem(const char *pem, size_t len, EVP_PKEY **out, char *errmsg)
{
    int rv = CF_OK;
    BIO *bio = NULL;
    char *name = NULL;
    char *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    EVP_PKEY *key = NULL;
    ERR_clear_error();
    if (len > INT_MAX) {
        cf_errmsg_printf(errmsg, "PEM data too big");
        return CF_ETOOBIG;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        return cf_err_from_ossl(errmsg, "BIO_new_mem_buf");
    }
    for (;;) {
        if (PEM_read_bio(bio, &name, &header, &data, &dlen) != 1) {
            ERR_clear_error();
            cf_errmsg_printf(errmsg, "no data found in PEM block");
            rv = CF_EMALFORMED;
            goto out;
        }
        if (strcmp(name, "EC PARAMETERS") != 0) {
            break;
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        name = header = NULL;
        data = NULL;
    }
    if (strstr(header, "ENCRYPTED") != NULL || strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
        cf_errmsg_printf(errmsg, "encrypted private keys are not supported");
        rv = CF_EUNSUPPORTED;
        goto out;
    }
    rv = pki_key_from_der(name, data, (size_t)dlen, &key, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    char *n2 = NULL;
    char *h2 = NULL;
    unsigned char *d2 = NULL;
    long l2 = 0;
    if (PEM_read_bio(bio, &n2, &h2, &d2, &l2) == 1) {
        OPENSSL_free(n2);
        OPENSSL_free(h2);
        OPENSSL_clear_free(d2, (size_t)l2);
        cf_errmsg_printf(errmsg,
                         "only a single key can be present within the pem_bundle for importing");
        rv = CF_EMALFORMED;
        goto out;
    }
    ERR_clear_error();
    *out = key;
    key = NULL;
out:
    EVP_PKEY_free(key);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(data, dlen > 0 ? (size_t)dlen : 0);
    BIO_free(bio);
    return rv;
}

/* DER of the private key in the chosen format, and the PEM label that goes with it. */
static int key_der(const EVP_PKEY *key,
                   enum pki_key_format fmt,
                   unsigned char **der,
                   int *len,
                   const char **label,
                   char *errmsg)
{
    enum pki_key_type type;
    int bits;
    int rv = pki_key_describe(key, &type, &bits, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    ERR_clear_error();
    *der = NULL;
    bool pkcs8 = fmt != PKI_KEY_FORMAT_DER || type == PKI_KEY_ED25519;
    *label = pkcs8 ? "PRIVATE KEY" : type == PKI_KEY_RSA ? "RSA PRIVATE KEY" : "EC PRIVATE KEY";
    size_t n = 0;
    rv = pki_key_private_der(key, pkcs8, der, &n);
    if (rv == CF_OK && n <= INT32_MAX) {
        *len = (int)n;
        return CF_OK;
    }
    if (rv == CF_ENOMEM) {
        cf_errmsg_printf(errmsg, "out of memory");
        return rv;
    }
    if (!pkcs8) {
        *len = i2d_PrivateKey(key, der);
    } else {
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
        if (p8 == NULL) {
            return cf_err_from_ossl(errmsg, "encode private key");
        }
        *len = i2d_PKCS8_PRIV_KEY_INFO(p8, der);
        PKCS8_PRIV_KEY_INFO_free(p8);
    }
    if (*len <= 0 || *der == NULL) {
        return cf_err_from_ossl(errmsg, "encode private key");
    }
    return CF_OK;
}

int pki_key_to_der(const EVP_PKEY *key,
                   enum pki_key_format fmt,
                   struct cf_secret **out,
                   char *errmsg)
{
    unsigned char *der = NULL;
    int len = 0;
    const char *label;
    int rv = key_der(key, fmt, &der, &len, &label, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    struct cf_secret *s = cf_secret_from(der, (size_t)len);
    OPENSSL_clear_free(der, (size_t)len);
    if (s == NULL) {
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    *out = s;
    return CF_OK;
}

int pki_key_to_pem(const EVP_PKEY *key,
                   enum pki_key_format fmt,
                   struct cf_secret **out,
                   char *errmsg)
{
    unsigned char *der = NULL;
    int len = 0;
    const char *label;
    int rv = key_der(key, fmt, &der, &len, &label, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    struct cf_secret *s = cf_secret_new(pki_der_text_cap((size_t)len, label));
    if (s == NULL) {
        OPENSSL_clear_free(der, (size_t)len);
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    s->len = pki_der_text_write(der, (size_t)len, label, true, (char *)s->data) + 1;
    OPENSSL_clear_free(der, (size_t)len);
    *out = s;
    return CF_OK;
}

int pki_key_fingerprint(const EVP_PKEY *key, char out[PKI_KEY_FINGERPRINT_SIZE], char *errmsg)
{
    unsigned char *der = NULL;
    ERR_clear_error();
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0 || der == NULL) {
        return cf_err_from_ossl(errmsg, "encode public key");
    }
    uint8_t md[32];
    int rv = cf_sha256(der, (size_t)len, md);
    OPENSSL_free(der);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "sha256 failed");
        return rv;
    }
    cf_hex_encode(md, sizeof(md), out);
    return CF_OK;
}

int pki_key_signature_bits_check(enum pki_key_type type, int signature_bits, char *errmsg)
{
    if (type == PKI_KEY_ED25519) {
        return CF_OK;
    }
    if (signature_bits != 0 && signature_bits != 256 && signature_bits != 384 &&
        signature_bits != 512) {
        cf_errmsg_printf(errmsg, "unsupported hash signature algorithm: %d", signature_bits);
        return CF_EINVAL;
    }
    return CF_OK;
}

/* The hash Vault signs with for a signer of this type and size: bits of SHA-2 (256/384/512),
 * or 0 for pure Ed25519. */
static int choose_hash(enum pki_key_type type,
                       int key_bits,
                       int signature_bits,
                       int *hash,
                       char *errmsg)
{
    int rv = pki_key_signature_bits_check(type, signature_bits, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    switch (type) {
        case PKI_KEY_RSA:
            *hash = signature_bits == 0 ? 256 : signature_bits;
            break;
        case PKI_KEY_EC:
            *hash = key_bits == 384 ? 384 : key_bits == 521 ? 512 : 256;
            break;
        case PKI_KEY_ED25519:
            *hash = 0;
            break;
    }
    return CF_OK;
}

int pki_key_signature_alg(enum pki_key_type type,
                          int key_bits,
                          int signature_bits,
                          bool use_pss,
                          const struct pki_sig_alg **out,
                          char *errmsg)
{
    static const struct pki_sig_alg rsa[] = {
        {"SHA256WithRSA", NID_sha256WithRSAEncryption, true},
        {"SHA384WithRSA", NID_sha384WithRSAEncryption, true},
        {"SHA512WithRSA", NID_sha512WithRSAEncryption, true},
    };
    static const struct pki_sig_alg pss[] = {
        {"SHA256WithRSAPSS", NID_undef, false},
        {"SHA384WithRSAPSS", NID_undef, false},
        {"SHA512WithRSAPSS", NID_undef, false},
    };
    static const struct pki_sig_alg ec[] = {
        {"ECDSAWithSHA256", NID_ecdsa_with_SHA256, false},
        {"ECDSAWithSHA384", NID_ecdsa_with_SHA384, false},
        {"ECDSAWithSHA512", NID_ecdsa_with_SHA512, false},
    };
    static const struct pki_sig_alg ed25519 = {"PureEd25519", NID_ED25519, false};
    int hash;
    int rv = choose_hash(type, key_bits, signature_bits, &hash, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    int i = hash == 256 ? 0 : hash == 384 ? 1 : 2;
    switch (type) {
        case PKI_KEY_RSA:
            *out = use_pss ? &pss[i] : &rsa[i];
            break;
        case PKI_KEY_EC:
            *out = &ec[i];
            break;
        case PKI_KEY_ED25519:
            *out = &ed25519;
            break;
    }
    return CF_OK;
}

int pki_key_signature_algorithm_name(const EVP_PKEY *signer,
                                     int signature_bits,
                                     bool use_pss,
                                     const char **out,
                                     char *errmsg)
{
    enum pki_key_type type;
    int bits;
    const struct pki_sig_alg *alg = NULL;
    int rv = pki_key_describe(signer, &type, &bits, errmsg);
    if (rv == CF_OK) {
        rv = pki_key_signature_alg(type, bits, signature_bits, use_pss, &alg, errmsg);
    }
    if (rv == CF_OK) {
        *out = alg->name;
    }
    return rv;
}

int pki_key_sign_ctx_new(EVP_PKEY *signer,
                         int signature_bits,
                         bool use_pss,
                         EVP_MD_CTX **out,
                         char *errmsg)
{
    enum pki_key_type type;
    int bits;
    int hash = 0;
    int rv = pki_key_describe(signer, &type, &bits, errmsg);
    if (rv == CF_OK) {
        rv = choose_hash(type, bits, signature_bits, &hash, errmsg);
    }
    if (rv != CF_OK) {
        return rv;
    }
    const char *md = hash == 256   ? "SHA256"
                     : hash == 384 ? "SHA384"
                     : hash == 512 ? "SHA512"
                                   : NULL;
    ERR_clear_error();
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (mctx == NULL) {
        return cf_err_from_ossl(errmsg, "EVP_MD_CTX_new");
    }
    if (EVP_DigestSignInit_ex(mctx, &pctx, md, NULL, NULL, signer, NULL) <= 0) {
        rv = cf_err_from_ossl(errmsg, "sign init");
        goto err;
    }
    if (type == PKI_KEY_RSA && use_pss) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md, NULL) <= 0) {
            rv = cf_err_from_ossl(errmsg, "set PSS parameters");
            goto err;
        }
    }
    *out = mctx;
    return CF_OK;
err:
    EVP_MD_CTX_free(mctx);
    return rv;
}

int pki_key_sign_ctx_get(const EVP_MD_CTX *prepared,
                         EVP_PKEY *signer,
                         int signature_bits,
                         bool use_pss,
                         EVP_MD_CTX **out,
                         char *errmsg)
{
    if (prepared == NULL) {
        return pki_key_sign_ctx_new(signer, signature_bits, use_pss, out, errmsg);
    }
    ERR_clear_error();
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    if (mctx == NULL || EVP_MD_CTX_copy_ex(mctx, prepared) != 1) {
        EVP_MD_CTX_free(mctx);
        return cf_err_from_ossl(errmsg, "copy signing context");
    }
    *out = mctx;
    return CF_OK;
}

int pki_key_to_text(const EVP_PKEY *key,
                    enum pki_key_format fmt,
                    bool pem,
                    char **out,
                    char *errmsg)
{
    unsigned char *der = NULL;
    int len = 0;
    const char *label;
    int rv = key_der(key, fmt, &der, &len, &label, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    char *t = cf_malloc(pki_der_text_cap((size_t)len, label));
    if (t == NULL) {
        OPENSSL_clear_free(der, (size_t)len);
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    pki_der_text_write(der, (size_t)len, label, pem, t);
    OPENSSL_clear_free(der, (size_t)len);
    *out = t;
    return CF_OK;
}
