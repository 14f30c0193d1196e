/*
 * Crypto primitives over OpenSSL 3 EVP (rule K).
 *
 * The three algorithm objects (AES-256-GCM, SHA-256, HMAC) are fetched once, on first use,
 * under pthread_once and kept for the life of the process; if a fetch fails every later call
 * that needs it returns CF_ECRYPTO. OpenSSL lengths are ints, so long inputs are fed in 1 GiB
 * chunks. Hex and base64 conversions use arithmetic instead of lookup tables so that decoding
 * an unseal key or a token does not leak its digits through the data cache.
 */
#include "lib/crypto.h"

#include <stdbool.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "lib/err.h"
#include "lib/mem.h"

#define CHUNK_MAX ((size_t)1 << 30)

static const char CLOAK_AAD[] = "coffer/cloak";

static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *alg_aes_gcm; /* owned for the process lifetime */
static EVP_MD *alg_sha256;      /* owned for the process lifetime */

static void algs_init(void)
{
    alg_aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    alg_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    ERR_clear_error();
}

static void algs_load(void)
{
    pthread_once(&algs_once, algs_init);
}

int cf_random(void *p, size_t n)
{
    uint8_t *q = p;
    while (n > 0) {
        size_t chunk = n < CHUNK_MAX ? n : CHUNK_MAX;
        if (RAND_bytes(q, (int)chunk) != 1) {
            ERR_clear_error();
            return CF_ECRYPTO;
        }
        q += chunk;
        n -= chunk;
    }
    return CF_OK;
}

int cf_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* Maps a nibble (0..15) to '0'..'9','a'..'f' without a branch or a table. */
static char hex_digit(int v)
{
    return (char)('0' + v + (((9 - v) >> 8) & ('a' - '0' - 10)));
}

/* Maps a hex digit to 0..15, or -1; each range test is a sign mask, not a branch. */
static int hex_value(int c)
{
    int v = -1;
    v += (((('0' - 1) - c) & (c - ('9' + 1))) >> 8) & (c - '0' + 1);
    v += (((('A' - 1) - c) & (c - ('F' + 1))) >> 8) & (c - 'A' + 11);
    v += (((('a' - 1) - c) & (c - ('f' + 1))) >> 8) & (c - 'a' + 11);
    return v;
}

void cf_hex_encode(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digit(p[i] >> 4);
        out[2 * i + 1] = hex_digit(p[i] & 0x0f);
    }
    out[2 * n] = '\0';
}

int cf_hex_decode(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (slen % 2 != 0) {
        return CF_EMALFORMED;
    }
    if (slen / 2 > cap) {
        return CF_ETOOBIG;
    }
    int bad = 0;
    for (size_t i = 0; i < slen / 2; i++) {
        int hi = hex_value((unsigned char)s[2 * i]);
        int lo = hex_value((unsigned char)s[2 * i + 1]);
        bad |= hi | lo;
        out[i] = (uint8_t)(((hi & 0x0f) << 4) | (lo & 0x0f));
    }
    if (bad < 0) {
        cf_cleanse(out, slen / 2);
        return CF_EMALFORMED;
    }
    *outlen = slen / 2;
    return CF_OK;
}

int cf_uuid_v4(char out[37])
{
    uint8_t b[16];
    char hex[33];
    if (cf_random(b, sizeof(b)) != CF_OK) {
        return CF_ECRYPTO;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    cf_hex_encode(b, sizeof(b), hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
    return CF_OK;
}

/* Maps 0..63 to the standard base64 alphabet with sign masks instead of a table. */
static char b64_digit(int v)
{
    int c = 'A' + v;
    c += ((25 - v) >> 8) & ('a' - 'A' - 26);
    c -= ((51 - v) >> 8) & (('a' + 26) - '0');
    c -= ((61 - v) >> 8) & (('0' + 10) - '+');
    c += ((62 - v) >> 8) & ('/' - '+' - 1);
    return (char)c;
}

/* Maps a base64 character to 0..63, or -1 (also for '='). */
static int b64_value(int c)
{
    int v = -1;
    v += (((('A' - 1) - c) & (c - ('Z' + 1))) >> 8) & (c - 'A' + 1);
    v += (((('a' - 1) - c) & (c - ('z' + 1))) >> 8) & (c - 'a' + 27);
    v += (((('0' - 1) - c) & (c - ('9' + 1))) >> 8) & (c - '0' + 53);
    v += (((('+' - 1) - c) & (c - ('+' + 1))) >> 8) & 63;
    v += (((('/' - 1) - c) & (c - ('/' + 1))) >> 8) & 64;
    return v;
}

char *cf_base64_encode(const uint8_t *p, size_t n)
{
    if (n / 3 >= (SIZE_MAX - 1) / 4 - 1) {
        return NULL;
    }
    size_t olen = (n + 2) / 3 * 4;
    char *out = cf_malloc(olen + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t i = 0;
    size_t o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_digit((int)(w >> 18) & 63);
        out[o++] = b64_digit((int)(w >> 12) & 63);
        out[o++] = b64_digit((int)(w >> 6) & 63);
        out[o++] = b64_digit((int)w & 63);
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)p[i] << 16;
        out[o++] = b64_digit((int)(w >> 18) & 63);
        out[o++] = b64_digit((int)(w >> 12) & 63);
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64_digit((int)(w >> 18) & 63);
        out[o++] = b64_digit((int)(w >> 12) & 63);
        out[o++] = b64_digit((int)(w >> 6) & 63);
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

int cf_base64_decode(const char *s, size_t slen, uint8_t **out, size_t *outlen)
{
    if (slen % 4 != 0) {
        return CF_EMALFORMED;
    }
    size_t pad = 0;
    if (slen > 0 && s[slen - 1] == '=') {
        pad = s[slen - 2] == '=' ? 2 : 1;
    }
    size_t olen = slen / 4 * 3 - pad;
    uint8_t *buf = cf_malloc(olen);
    if (buf == NULL) {
        return CF_ENOMEM;
    }
    int bad = 0;
    size_t o = 0;
    for (size_t i = 0; i < slen; i += 4) {
        bool last = i + 4 == slen;
        size_t ndig = last ? 4 - pad : 4;
        uint32_t w = 0;
        for (size_t k = 0; k < 4; k++) {
            int v = 0;
            if (k < ndig) {
                v = b64_value((unsigned char)s[i + k]);
                bad |= v;
            }
            w = w << 6 | (uint32_t)(v & 63);
        }
        size_t nbytes = ndig - 1;
        for (size_t k = 0; k < nbytes; k++) {
            buf[o++] = (uint8_t)(w >> (16 - 8 * k));
        }
    }
    if (bad < 0) {
        cf_cleanse(buf, olen);
        cf_free(buf);
        return CF_EMALFORMED;
    }
    *out = buf;
    *outlen = olen;
    return CF_OK;
}

/* Feeds n bytes to a digest in int-sized chunks. */
static bool digest_update(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    const uint8_t *q = p;
    while (n > 0) {
        size_t chunk = n < CHUNK_MAX ? n : CHUNK_MAX;
        if (EVP_DigestUpdate(ctx, q, chunk) <= 0) {
            return false;
        }
        q += chunk;
        n -= chunk;
    }
    return true;
}

int cf_sha256(const void *p, size_t n, uint8_t out[32])
{
    EVP_MD_CTX *ctx = NULL;
    int rv = CF_ECRYPTO;
    algs_load();
    if (alg_sha256 == NULL) {
        return CF_ECRYPTO;
    }
    ERR_clear_error();
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex2(ctx, alg_sha256, NULL) <= 0) {
        goto out;
    }
    if (!digest_update(ctx, p, n)) {
        goto out;
    }
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(ctx, out, &mdlen) <= 0 || mdlen != 32) {
        goto out;
    }
    rv = CF_OK;
out:
    EVP_MD_CTX_free(ctx);
    if (rv != CF_OK) {
        ERR_clear_error();
    }
    return rv;
}

/* HMAC (RFC 2104) over the SHA-256 fetched once: H(K^opad || H(K^ipad || m)). OpenSSL's
 * EVP_MAC fetches its digest by name on every init, which cost more than the hashing on the
 * per-request token lookup. */
int cf_hmac_sha256(const uint8_t *key, size_t klen, const void *p, size_t n, uint8_t out[32])
{
    enum { BLOCK = 64 };
    uint8_t k0[BLOCK] = {0};
    uint8_t pad[BLOCK];
    uint8_t inner[32];
    algs_load();
    if (alg_sha256 == NULL) {
        return CF_ECRYPTO;
    }
    int rv = CF_OK;
    if (klen > BLOCK) {
        rv = cf_sha256(key, klen, k0);
    } else if (klen > 0) {
        memcpy(k0, key, klen);
    }
    if (rv != CF_OK) {
        return rv;
    }
    ERR_clear_error();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    bool ok = ctx != NULL;
    for (int round = 0; ok && round < 2; round++) {
        for (size_t i = 0; i < BLOCK; i++) {
            pad[i] = k0[i] ^ (round == 0 ? 0x36 : 0x5c);
        }
        ok = EVP_DigestInit_ex2(ctx, alg_sha256, NULL) > 0 &&
             EVP_DigestUpdate(ctx, pad, BLOCK) > 0 &&
             (round == 0 ? digest_update(ctx, p, n) : EVP_DigestUpdate(ctx, inner, 32) > 0) &&
             EVP_DigestFinal_ex(ctx, round == 0 ? inner : out, &mdlen) > 0 && mdlen == 32;
    }
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    if (!ok) {
        ERR_clear_error();
        return ctx == NULL ? CF_ENOMEM : CF_ECRYPTO;
    }
    return CF_OK;
}

/* Feeds n bytes through EVP_CipherUpdate in int-sized chunks; out == NULL feeds AAD. */
static bool cipher_update(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t n, uint8_t *out)
{
    while (n > 0) {
        size_t chunk = n < CHUNK_MAX ? n : CHUNK_MAX;
        int outl = 0;
        if (EVP_CipherUpdate(ctx, out, &outl, in, (int)chunk) <= 0 || (size_t)outl != chunk) {
            return false;
        }
        in += chunk;
        if (out != NULL) {
            out += chunk;
        }
        n -= chunk;
    }
    return true;
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
    algs_load();
    if (alg_aes_gcm == NULL) {
        return CF_ECRYPTO;
    }
    ERR_clear_error();
    rv = cf_random(out, CF_AEAD_NONCE_LEN);
    if (rv != CF_OK) {
        goto out;
    }
    rv = CF_ECRYPTO;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    if (EVP_EncryptInit_ex2(ctx, alg_aes_gcm, key, out, NULL) <= 0) {
        goto out;
    }
    if (!cipher_update(ctx, aad, aadlen, NULL)) {
        goto out;
    }
    if (!cipher_update(ctx, pt, ptlen, out + CF_AEAD_NONCE_LEN)) {
        goto out;
    }
    int outl = 0;
    if (EVP_EncryptFinal_ex(ctx, out + CF_AEAD_NONCE_LEN + ptlen, &outl) <= 0 || outl != 0) {
        goto out;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CF_AEAD_TAG_LEN,
                            out + CF_AEAD_NONCE_LEN + ptlen) <= 0) {
        goto out;
    }
    rv = CF_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (rv != CF_OK) {
        ERR_clear_error();
    }
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
    int rv = CF_ECRYPTO;
    if (inlen < CF_AEAD_OVERHEAD) {
        return CF_EMALFORMED;
    }
    algs_load();
    if (alg_aes_gcm == NULL) {
        return CF_ECRYPTO;
    }
    size_t ctlen = inlen - CF_AEAD_OVERHEAD;
    uint8_t tag[CF_AEAD_TAG_LEN];
    memcpy(tag, in + inlen - CF_AEAD_TAG_LEN, CF_AEAD_TAG_LEN);
    ERR_clear_error();
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    if (EVP_DecryptInit_ex2(ctx, alg_aes_gcm, key, in, NULL) <= 0) {
        goto out;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CF_AEAD_TAG_LEN, tag) <= 0) {
        goto out;
    }
    if (!cipher_update(ctx, aad, aadlen, NULL)) {
        goto out;
    }
    if (!cipher_update(ctx, in + CF_AEAD_NONCE_LEN, ctlen, out)) {
        goto out;
    }
    int outl = 0;
    if (EVP_DecryptFinal_ex(ctx, out + ctlen, &outl) <= 0) {
        cf_cleanse(out, ctlen);
        rv = CF_EAUTH;
        goto out;
    }
    *outlen = ctlen;
    rv = CF_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (rv != CF_OK) {
        ERR_clear_error();
    }
    return rv;
}

struct cf_cloak
{
    struct cf_secret *key; /* owned; ephemeral AES key, locked memory */
    uint8_t *blob;         /* owned; nonce||ciphertext||tag of the secret */
    size_t len;            /* plaintext length */
};

void cf_cloak_free(struct cf_cloak *c)
{
    if (c == NULL) {
        return;
    }
    cf_secret_free(c->key);
    if (c->blob != NULL) {
        cf_cleanse(c->blob, c->len + CF_AEAD_OVERHEAD);
        cf_free(c->blob);
    }
    cf_free(c);
}

struct cf_cloak *cf_cloak_new(const uint8_t *secret, size_t len)
{
    if (len > SIZE_MAX - CF_AEAD_OVERHEAD) {
        return NULL;
    }
    struct cf_cloak *c = cf_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->len = len;
    c->key = cf_secret_new(CF_AEAD_KEY_LEN);
    if (c->key == NULL) {
        goto err;
    }
    c->blob = cf_malloc(len + CF_AEAD_OVERHEAD);
    if (c->blob == NULL) {
        goto err;
    }
    if (cf_random(c->key->data, CF_AEAD_KEY_LEN) != CF_OK) {
        goto err;
    }
    if (cf_aead_seal(c->key->data, CLOAK_AAD, sizeof(CLOAK_AAD) - 1, secret, len, c->blob) !=
        CF_OK) {
        goto err;
    }
    return c;
err:
    cf_cloak_free(c);
    return NULL;
}

int cf_cloak_open(const struct cf_cloak *c, struct cf_secret **out)
{
    struct cf_secret *s = cf_secret_new(c->len);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    size_t n = 0;
    int rv = cf_aead_open(c->key->data, CLOAK_AAD, sizeof(CLOAK_AAD) - 1, c->blob,
                          c->len + CF_AEAD_OVERHEAD, s->data, &n);
    if (rv != CF_OK) {
        cf_secret_free(s);
        return rv;
    }
    *out = s;
    return CF_OK;
}
