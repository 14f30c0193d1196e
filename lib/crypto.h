/*
 * Crypto primitives (OpenSSL 3 EVP): randomness, UUIDs, hex/base64, SHA-256, HMAC-SHA256,
 * AES-256-GCM with random nonces, and cloaking of in-memory secrets. All functions are safe to
 * call from worker threads.
 */
#ifndef CF_LIB_CRYPTO_H_
#define CF_LIB_CRYPTO_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/mem.h"

#define CF_AEAD_KEY_LEN 32
#define CF_AEAD_NONCE_LEN 12
#define CF_AEAD_TAG_LEN 16
#define CF_AEAD_OVERHEAD (CF_AEAD_NONCE_LEN + CF_AEAD_TAG_LEN)

/* Fills p with n random bytes (RAND_bytes); CF_ECRYPTO on failure. */
int cf_random(void *p, size_t n);
/* A random UUID v4, lowercase, NUL-terminated. */
int cf_uuid_v4(char out[37]);
/* Constant-time comparison; 1 when equal. */
int cf_ct_equal(const void *a, const void *b, size_t n);
/* Lowercase hex; out holds 2n+1 bytes. */
void cf_hex_encode(const uint8_t *p, size_t n, char *out);
/* Hex of either case. CF_EMALFORMED on odd length or a bad digit, CF_ETOOBIG past cap. */
int cf_hex_decode(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *outlen);
/* Standard base64 with padding; a new string (cf_free), NULL on OOM. */
char *cf_base64_encode(const uint8_t *p, size_t n);
/* Standard base64 (padding required, no whitespace); *out is cf_malloc'd. CF_EMALFORMED. */
int cf_base64_decode(const char *s, size_t slen, uint8_t **out, size_t *outlen);
int cf_sha256(const void *p, size_t n, uint8_t out[32]);
int cf_hmac_sha256(const uint8_t *key, size_t klen, const void *p, size_t n, uint8_t out[32]);

/* AES-256-GCM with a fresh random nonce: out receives nonce || ciphertext || tag, that is
 * ptlen + CF_AEAD_OVERHEAD bytes. */
int cf_aead_seal(const uint8_t key[CF_AEAD_KEY_LEN],
                 const void *aad,
                 size_t aadlen,
                 const uint8_t *pt,
                 size_t ptlen,
                 uint8_t *out);
/* The reverse; out needs inlen - CF_AEAD_OVERHEAD bytes. CF_EAUTH on a wrong key, wrong AAD or
 * any tampering (out is cleansed), CF_EMALFORMED when too short. */
int cf_aead_open(const uint8_t key[CF_AEAD_KEY_LEN],
                 const void *aad,
                 size_t aadlen,
                 const uint8_t *in,
                 size_t inlen,
                 uint8_t *out,
                 size_t *outlen);

/* Cloaking: a secret kept encrypted in memory under an ephemeral random key (in locked memory),
 * decrypted only for the moment it is used. */
struct cf_cloak;
/* NULL on OOM or RNG failure. */
struct cf_cloak *cf_cloak_new(const uint8_t *secret, size_t len);
/* A fresh plaintext copy; free it with cf_secret_free as soon as it has been used. */
int cf_cloak_open(const struct cf_cloak *c, struct cf_secret **out);
/* Cleanses and frees; NULL-safe. */
void cf_cloak_free(struct cf_cloak *c);

#endif
