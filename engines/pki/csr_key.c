/*
 * Public keys of certificate requests read directly (engines/pki/key.h, "Direct decoding").
 *
 * d2i_X509_REQ decodes the request's public key through OSSL_DECODER, whose context set-up
 * walks every decoder of every provider: about 180 us per request on the issuance path, more
 * than verifying the request's signature. pki_x509_csr_parse therefore parses requests in a
 * library context that has no providers, so the key is left undecoded (nothing else in the
 * request depends on it), and the key is built here from its parameters: EC points on the four
 * curves Vault offers from a copy of the curve's parameters, RSA moduli through
 * EVP_PKEY_fromdata, Ed25519 as a raw key. The point is checked to be on its curve by OpenSSL's
 * import. Anything else is reported as
 * CF_EUNSUPPORTED and the caller decodes the request the usual way.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "engines/pki/der.h"
#include "engines/pki/key.h"
#include "lib/err.h"

static OSSL_LIB_CTX *bare_ctx;
static pthread_once_t bare_once = PTHREAD_ONCE_INIT;

static void bare_init(void)
{
    /* The "null" provider keeps the context from loading the default one on first use. */
    OSSL_LIB_CTX *c = OSSL_LIB_CTX_new();
    if (c != NULL && OSSL_PROVIDER_load(c, "null") == NULL) {
        OSSL_LIB_CTX_free(c);
        c = NULL;
    }
    ERR_clear_error();
    bare_ctx = c;
}

OSSL_LIB_CTX *pki_key_bare_libctx(void)
{
    pthread_once(&bare_once, bare_init);
    return bare_ctx;
}

static EVP_PKEY *from_params(const char *type, const OSSL_PARAM *params)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) != 1) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return k;
}

/* One parameters-only key per curve, made once and only read afterwards: a request's key starts
 * as a copy of its curve's parameters (which duplicates the group with its Montgomery set-up
 * instead of building it again from the curve's name, a quarter of the cost of
 * EVP_PKEY_fromdata) and then takes its point. */
static const int ec_curves[] = {NID_secp224r1, NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
#define N_EC_CURVES (sizeof(ec_curves) / sizeof(ec_curves[0]))
static EVP_PKEY *ec_params[N_EC_CURVES];
static pthread_once_t ec_params_once = PTHREAD_ONCE_INIT;

static void ec_params_init(void)
{
    for (size_t i = 0; i < N_EC_CURVES; i++) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (ctx == NULL || EVP_PKEY_paramgen_init(ctx) != 1 ||
            EVP_PKEY_CTX_set_group_name(ctx, OBJ_nid2sn(ec_curves[i])) != 1 ||
            EVP_PKEY_paramgen(ctx, &ec_params[i]) != 1) {
            ec_params[i] = NULL;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    ERR_clear_error();
}

static int ec_key(const void *pval, int ptype, const uint8_t *pk, int pklen, EVP_PKEY **out)
{
    if (ptype != V_ASN1_OBJECT || pklen < 1) {
        return CF_EUNSUPPORTED; /* explicit parameters: left to OpenSSL's decoder */
    }
    int curve = OBJ_obj2nid(pval);
    size_t i = 0;
    while (i < N_EC_CURVES && ec_curves[i] != curve) {
        i++;
    }
    /* Uncompressed or compressed points; hybrid ones are left to OpenSSL's decoder. */
    if (i == N_EC_CURVES || (pk[0] != 0x04 && pk[0] != 0x02 && pk[0] != 0x03)) {
        return CF_EUNSUPPORTED;
    }
    pthread_once(&ec_params_once, ec_params_init);
    if (ec_params[i] == NULL) {
        return CF_EUNSUPPORTED;
    }
    /* The point is checked to be on the curve, and its form (compressed or not) is kept for
     * writing it back, as OpenSSL's decoder does. */
    EVP_PKEY *k = EVP_PKEY_new();
    if (k == NULL || EVP_PKEY_copy_parameters(k, ec_params[i]) != 1 ||
        EVP_PKEY_set1_encoded_public_key(k, pk, (size_t)pklen) != 1) {
        EVP_PKEY_free(k);
        return CF_EMALFORMED;
    }
    *out = k;
    return CF_OK;
}

/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, both positive. */
static int rsa_key(int ptype, const uint8_t *pk, int pklen, EVP_PKEY **out)
{
    if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF) {
        return CF_EUNSUPPORTED;
    }
    const uint8_t *p = pk;
    const uint8_t *end = pk + pklen;
    const uint8_t *seq = NULL;
    size_t seqlen = 0;
    const uint8_t *nb = NULL;
    const uint8_t *eb = NULL;
    size_t nl = 0;
    size_t el = 0;
    if (!pki_der_next(&p, end, PKI_DER_SEQUENCE, &seq, &seqlen) || p != end) {
        return CF_EUNSUPPORTED;
    }
    p = seq;
    end = seq + seqlen;
    if (!pki_der_next(&p, end, PKI_DER_INTEGER, &nb, &nl) ||
        !pki_der_next(&p, end, PKI_DER_INTEGER, &eb, &el) || p != end || nl == 0 || el == 0 ||
        (nb[0] & 0x80) != 0 || (eb[0] & 0x80) != 0) {
        return CF_EUNSUPPORTED;
    }
    BIGNUM *n = BN_bin2bn(nb, (int)nl, NULL);
    BIGNUM *e = BN_bin2bn(eb, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    int rv = CF_ENOMEM;
    if (n != NULL && e != NULL && bld != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL) {
        *out = from_params("RSA", params);
        rv = *out != NULL ? CF_OK : CF_EMALFORMED;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return rv;
}

int pki_key_from_spki_params(X509_PUBKEY *pub, EVP_PKEY **out)
{
    ASN1_OBJECT *alg = NULL;
    const unsigned char *pk = NULL;
    int pklen = 0;
    X509_ALGOR *pa = NULL;
    *out = NULL;
    if (pub == NULL || X509_PUBKEY_get0_param(&alg, &pk, &pklen, &pa, pub) != 1 || pk == NULL) {
        ERR_clear_error();
        return CF_EUNSUPPORTED;
    }
    int ptype = V_ASN1_UNDEF;
    const void *pval = NULL;
    X509_ALGOR_get0(NULL, &ptype, &pval, pa);
    int rv;
    switch (OBJ_obj2nid(alg)) {
        case NID_X9_62_id_ecPublicKey:
            rv = ec_key(pval, ptype, pk, pklen, out);
            break;
        case NID_rsaEncryption:
            rv = rsa_key(ptype, pk, pklen, out);
            break;
        case NID_ED25519:
            rv = CF_EUNSUPPORTED;
            if (ptype == V_ASN1_UNDEF && pklen == 32) {
                *out = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, pk, (size_t)pklen);
                rv = *out != NULL ? CF_OK : CF_EMALFORMED;
            }
            break;
        default:
            rv = CF_EUNSUPPORTED;
            break;
    }
    ERR_clear_error();
    return rv;
}
