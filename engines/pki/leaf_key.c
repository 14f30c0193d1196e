/*
 * New keys for leaf certificates (engines/pki/key.h, struct pki_leaf_key).
 *
 * An EC key is a scalar d drawn uniformly from [1, n-1] (rejection sampling over bytes from
 * the private DRBG, masked to the order's bit length) and the point d*G, computed with one
 * EC_GROUP per curve made once and shared read-only by every thread. OpenSSL's own keygen does
 * the same arithmetic (its generator multiplication is the constant-time one either way; the
 * scalar is flagged BN_FLG_CONSTTIME as OpenSSL flags it), but through EVP it first builds a
 * new group with its Montgomery context for each key.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>

#include "engines/pki/der.h"
#include "engines/pki/key.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

static const int curve_nids[] = {NID_secp224r1, NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
#define N_CURVES (sizeof(curve_nids) / sizeof(curve_nids[0]))

/* Made once, never changed afterwards, never freed (they stay reachable). */
static EC_GROUP *groups[N_CURVES];
static BIGNUM *orders[N_CURVES];
static pthread_once_t groups_once = PTHREAD_ONCE_INIT;

static void groups_init(void)
{
    for (size_t i = 0; i < N_CURVES; i++) {
        groups[i] = EC_GROUP_new_by_curve_name(curve_nids[i]);
        if (groups[i] != NULL) {
            orders[i] = BN_dup(EC_GROUP_get0_order(groups[i]));
        }
    }
    ERR_clear_error();
}

static size_t curve_index(int bits)
{
    switch (bits) {
        case 224:
            return 0;
        case 256:
            return 1;
        case 384:
            return 2;
        default:
            return 3;
    }
}

/* The scalar d and point d*G on curve i, into k. */
static int ec_generate(size_t i, struct pki_leaf_key *k, char *errmsg)
{
    pthread_once(&groups_once, groups_init);
    const EC_GROUP *g = groups[i];
    const BIGNUM *order = orders[i];
    if (g == NULL || order == NULL) {
        cf_errmsg_printf(errmsg, "generate key: curve unavailable");
        return CF_ECRYPTO;
    }
    int obits = BN_num_bits(order);
    size_t olen = (size_t)BN_num_bytes(order);
    BN_CTX *ctx = BN_CTX_secure_new();
    BIGNUM *d = BN_secure_new();
    EC_POINT *q = EC_POINT_new(g);
    int rv = ctx == NULL || d == NULL || q == NULL ? CF_ENOMEM : CF_OK;
    bool drawn = false;
    for (int tries = 0; rv == CF_OK && !drawn && tries < 64; tries++) {
        if (RAND_priv_bytes(k->priv, (int)olen) != 1) {
            rv = CF_ECRYPTO;
            break;
        }
        if (obits % 8 != 0) {
            k->priv[0] &= (uint8_t)(0xff >> (8 - obits % 8));
        }
        if (BN_bin2bn(k->priv, (int)olen, d) == NULL) {
            rv = CF_ENOMEM;
            break;
        }
        drawn = !BN_is_zero(d) && BN_cmp(d, order) < 0;
    }
    if (rv == CF_OK && !drawn) {
        rv = CF_ECRYPTO;
    }
    if (rv == CF_OK) {
        BN_set_flags(d, BN_FLG_CONSTTIME);
        k->priv_len = olen;
        if (EC_POINT_mul(g, q, d, NULL, NULL, ctx) != 1) {
            rv = CF_ECRYPTO;
        }
    }
    if (rv == CF_OK) {
        k->pub_len =
            EC_POINT_point2oct(g, q, POINT_CONVERSION_UNCOMPRESSED, k->pub, sizeof(k->pub), ctx);
        rv = k->pub_len > 0 ? CF_OK : CF_ECRYPTO;
    }
    BN_clear_free(d);
    EC_POINT_free(q);
    BN_CTX_free(ctx);
    if (rv != CF_OK) {
        OPENSSL_cleanse(k->priv, sizeof(k->priv));
        k->priv_len = 0;
        if (rv == CF_ENOMEM) {
            cf_errmsg_printf(errmsg, "out of memory");
        } else {
            cf_err_from_ossl(errmsg, "generate key");
        }
        return rv;
    }
    k->curve = curve_nids[i];
    return CF_OK;
}

int pki_leaf_key_generate(enum pki_key_type type, int bits, struct pki_leaf_key *k, char *errmsg)
{
    memset(k, 0, sizeof(*k));
    k->type = type;
    int rv = pki_key_bits_resolve(type, bits, &k->bits, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    if (type == PKI_KEY_EC) {
        return ec_generate(curve_index(k->bits), k, errmsg);
    }
    return pki_key_generate(type, k->bits, &k->pkey, errmsg);
}

int pki_leaf_key_spki(const struct pki_leaf_key *k, struct cf_buf *out, char *errmsg)
{
    int rv = k->pkey != NULL ? pki_key_spki_der(k->pkey, out)
                             : pki_key_ec_raw_spki(k->curve, k->pub, k->pub_len, out);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "encode public key: %s", cf_strerror(rv));
    }
    return rv;
}

int pki_leaf_key_text(const struct pki_leaf_key *k,
                      enum pki_key_format fmt,
                      bool pem,
                      char **out,
                      char *errmsg)
{
    if (k->pkey != NULL) {
        return pki_key_to_text(k->pkey, fmt, pem, out, errmsg);
    }
    bool pkcs8 = fmt == PKI_KEY_FORMAT_PKCS8;
    struct cf_buf der;
    cf_buf_init(&der);
    int rv = cf_buf_reserve(&der, 512); /* sized once: no realloc leaves a copy behind */
    if (rv == CF_OK) {
        rv = pki_key_ec_raw_private_der(k->curve, k->priv, k->priv_len, k->pub, k->pub_len, pkcs8,
                                        &der);
    }
    char *t = rv == CF_OK ? pki_der_to_text(der.data, der.len,
                                            pkcs8 ? "PRIVATE KEY" : "EC PRIVATE KEY", pem)
                          : NULL;
    cf_buf_close_secure(&der);
    if (t == NULL) {
        cf_errmsg_printf(errmsg, "encode private key: %s",
                         cf_strerror(rv == CF_OK ? CF_ENOMEM : rv));
        return rv == CF_OK ? CF_ENOMEM : rv;
    }
    *out = t;
    return CF_OK;
}

void pki_leaf_key_close(struct pki_leaf_key *k)
{
    if (k == NULL) {
        return;
    }
    EVP_PKEY_free(k->pkey);
    OPENSSL_cleanse(k, sizeof(*k));
}
