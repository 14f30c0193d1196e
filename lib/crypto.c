/*
 * Crypto primitives over OpenSSL 3 EVP: randomness, UUIDs, hex/base64, SHA-256, HMAC, AES-256-GCM
 * with a random 96-bit nonce, and cloaking (a secret kept encrypted in memory under an
 * ephemeral key). AES-GCM is on the storage hot path: the cipher is fetched once.
 */
#include "lib/crypto.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lib/err.h"

static EVP_CIPHER *gcm;
static EVP_MD *sha256;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
    gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int algorithms(void)
{
    pthread_once(&fetch_once, fetch_algorithms);
    return gcm != NULL && sha256 != NULL ? CF_OK : CF_ECRYPTO;
}

int cf_random(void *p, size_t n)
{
    if (n == 0) {
        return CF_OK;
    }
    if (n > INT32_MAX || RAND_bytes(p, (int)n) != 1) {
        return CF_ECRYPTO;
    }
    return CF_OK;
}

int cf_uuid_v4(char out[37])
{
    uint8_t b[16];
    int rv = cf_random(b, sizeof(b));
    if (rv != CF_OK) {
        return rv;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    return CF_OK;
}

int cf_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void cf_hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int cf_hex_decode(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (slen % 2 != 0) {
        return CF_EMALFORMED;
    }
    if (slen / 2 > cap) {
        return CF_ETOOBIG;
    }
    for (size_t i = 0; i < slen; i += 2) {
        int hi = hexval(s[i]);
        int lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) {
            return CF_EMALFORMED;
        }
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *outlen = slen / 2;
    return CF_OK;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cf_base64_encode(const uint8_t *p, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3) {
        return NULL;
    }
    char *out = cf_malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int cf_base64_decode(const char *s, size_t slen, uint8_t **out, size_t *outlen)
{
    if (slen % 4 != 0) {
        return CF_EMALFORMED;
    }
    uint8_t *o = cf_malloc(slen / 4 * 3 + 1);
    if (o == NULL) {
        return CF_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < slen; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + (size_t)j];
            if (c == '=' && i + 4 == slen && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad > 0 || (v[j] = b64val(c)) < 0) {
                cf_free(o);
                return CF_EMALFORMED;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        o[n++] = (uint8_t)(w >> 16);
        if (pad < 2) {
            o[n++] = (uint8_t)(w >> 8);
        }
        if (pad < 1) {
            o[n++] = (uint8_t)w;
        }
    }
    *out = o;
    *outlen = n;
    return CF_OK;
}

int cf_sha256(const void *p, size_t n, uint8_t out[32])
{
    if (algorithms() != CF_OK || EVP_Digest(p, n, out, NULL, sha256, NULL) != 1) {
        return CF_ECRYPTO;
    }
    return CF_OK;
}

int cf_hmac_sha256(const uint8_t *key, size_t klen, const void *p, size_t n, uint8_t out[32])
{
    size_t outlen = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, klen, p, n, out, 32, &outlen) == NULL ||
        outlen != 32) {
        return CF_ECRYPTO;
    }
    return CF_OK;
}

int cf_aead_seal(const uint8_t key[CF_AEAD_KEY_LEN],
                 const void *aad,
                 size_t aadlen,
                 const uint8_t *pt,
                 size_t ptlen,
                 uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = NULL;
    int rv = CF_ECRYPTO;
    int n = 0;
    if (ptlen > INT32_MAX - 64 || aadlen > INT32_MAX || algorithms() != CF_OK) {
        return CF_ETOOBIG;
    }
    uint8_t *nonce = out;
    uint8_t *ct = out + CF_AEAD_NONCE_LEN;
    if (cf_random(nonce, CF_AEAD_NONCE_LEN) != CF_OK) {
        return CF_ECRYPTO;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex2(ctx, gcm, key, nonce, NULL) != 1) {
        goto out;
    }
    if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) {
        goto out;
    }
    if (ptlen > 0 && EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1) {
        goto out;
    }
    if (EVP_EncryptFinal_ex(ctx, ct + ptlen, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CF_AEAD_TAG_LEN, ct + ptlen) != 1) {
        goto out;
    }
    rv = CF_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

int cf_aead_open(const uint8_t key[CF_AEAD_KEY_LEN],
                 const void *aad,
                 size_t aadlen,
                 const uint8_t *in,
                 size_t inlen,
                 uint8_t *out,
                 size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    int rv = CF_EAUTH;
    int n = 0;
    if (inlen < CF_AEAD_OVERHEAD) {
        return CF_EMALFORMED;
    }
    if (inlen > INT32_MAX || aadlen > INT32_MAX || algorithms() != CF_OK) {
        return CF_ETOOBIG;
    }
    size_t ctlen = inlen - CF_AEAD_OVERHEAD;
    const uint8_t *ct = in + CF_AEAD_NONCE_LEN;
    uint8_t tag[CF_AEAD_TAG_LEN];
    memcpy(tag, ct + ctlen, sizeof(tag));
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_DecryptInit_ex2(ctx, gcm, key, in, NULL) != 1) {
        rv = CF_ECRYPTO;
        goto out;
    }
    if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) {
        goto out;
    }
    if (ctlen > 0 && EVP_DecryptUpdate(ctx, out, &n, ct, (int)ctlen) != 1) {
        goto out;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CF_AEAD_TAG_LEN, tag) != 1 ||
        EVP_DecryptFinal_ex(ctx, out + ctlen, &n) != 1) {
        cf_cleanse(out, ctlen);
        goto out;
    }
    *outlen = ctlen;
    rv = CF_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

struct cf_cloak
{
    struct cf_secret *key; /* ephemeral AES key, locked memory */
    uint8_t *blob;         /* nonce || ciphertext || tag */
    size_t len;
};

struct cf_cloak *cf_cloak_new(const uint8_t *secret, size_t len)
{
    struct cf_cloak *c = cf_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->key = cf_secret_new(CF_AEAD_KEY_LEN);
    c->blob = cf_malloc(len + CF_AEAD_OVERHEAD);
    c->len = len + CF_AEAD_OVERHEAD;
    if (c->key == NULL || c->blob == NULL || cf_random(c->key->data, CF_AEAD_KEY_LEN) != CF_OK ||
        cf_aead_seal(c->key->data, NULL, 0, secret, len, c->blob) != CF_OK) {
        cf_cloak_free(c);
        return NULL;
    }
    return c;
}

int cf_cloak_open(const struct cf_cloak *c, struct cf_secret **out)
{
    struct cf_secret *s = cf_secret_new(c->len - CF_AEAD_OVERHEAD);
    size_t n = 0;
    if (s == NULL) {
        return CF_ENOMEM;
    }
    int rv = cf_aead_open(c->key->data, NULL, 0, c->blob, c->len, s->data, &n);
    if (rv != CF_OK) {
        cf_secret_free(s);
        return rv;
    }
    *out = s;
    return CF_OK;
}

void cf_cloak_free(struct cf_cloak *c)
{
    if (c == NULL) {
        return;
    }
    cf_secret_free(c->key);
    if (c->blob != NULL) {
        cf_cleanse(c->blob, c->len);
        cf_free(c->blob);
    }
    cf_free(c);
}
