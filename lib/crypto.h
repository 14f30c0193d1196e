/*
 * Crypto primitives shared by every layer (rule K): randomness, constant-time compare, hex and
 * base64, SHA-256, HMAC-SHA-256, AES-256-GCM with random nonces, and cloaked secrets.
 *
 * All functions are thread-safe. The OpenSSL algorithm objects are fetched once per process
 * (lazily, under pthread_once) and kept for its lifetime, so the AEAD hot path (every storage
 * read and write goes through the barrier) costs one EVP_CIPHER_CTX and no other allocation.
 */
#ifndef CF_LIB_CRYPTO_H_
#define CF_LIB_CRYPTO_H_

#include <stddef.h>
#include <stdint.h>

struct cf_secret;

#define CF_AEAD_KEY_LEN 32
#define CF_AEAD_NONCE_LEN 12
#define CF_AEAD_TAG_LEN 16
#define CF_AEAD_OVERHEAD (CF_AEAD_NONCE_LEN + CF_AEAD_TAG_LEN)

/* Fills p with n bytes from RAND_bytes. CF_ECRYPTO when the RNG fails. */
int cf_random(void *p, size_t n);

/* Writes a random (version 4, variant 1) UUID, lowercase, NUL-terminated. CF_ECRYPTO on RNG
 * failure. */
int cf_uuid_v4(char out[37]);

/* Compares n bytes in constant time (CRYPTO_memcmp); returns 1 when equal, 0 otherwise. */
int cf_ct_equal(const void *a, const void *b, size_t n);

/* Writes n bytes as lowercase hex into out, which must hold 2n+1 bytes (NUL-terminated). */
void cf_hex_encode(const uint8_t *p, size_t n, char *out);

/* Decodes slen hex digits (either case) into out (cap bytes); *outlen receives slen/2.
 * CF_EMALFORMED on odd length or a non-hex character, CF_ETOOBIG if slen/2 > cap. */
int cf_hex_decode(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *outlen);

/* Encodes with the standard alphabet (RFC 4648 section 4) and '=' padding. Returns a
 * NUL-terminated string the caller frees with cf_free; NULL on OOM or overflow. */
char *cf_base64_encode(const uint8_t *p, size_t n);

/* Decodes standard base64: the length must be a multiple of 4, '=' only as the last one or two
 * characters, no whitespace. Like Go's StdEncoding (which Vault uses) the unused low bits of the
 * last group are ignored. CF_EMALFORMED on bad input, CF_ENOMEM on OOM. On success *out is
 * cf_malloc'd (never NULL, even for empty input) and *outlen holds its length. */
int cf_base64_decode(const char *s, size_t slen, uint8_t **out, size_t *outlen);

/* SHA-256 of n bytes. CF_ECRYPTO on OpenSSL failure. */
int cf_sha256(const void *p, size_t n, uint8_t out[32]);

/* HMAC-SHA-256 of n bytes under a klen-byte key (klen may be 0). CF_ECRYPTO on failure. */
int cf_hmac_sha256(const uint8_t *key, size_t klen, const void *p, size_t n, uint8_t out[32]);

/* AES-256-GCM with a fresh random 96-bit nonce. out receives nonce||ciphertext||tag, that is
 * ptlen + CF_AEAD_OVERHEAD bytes; out must not overlap pt. aad may be NULL when aadlen is 0.
 * Random nonces bound the safe use of one key to about 2^32 messages; the barrier counts
 * encryptions per key so that callers can rotate in time. CF_ECRYPTO on failure. */
int cf_aead_seal(const uint8_t key[CF_AEAD_KEY_LEN],
                 const void *aad,
                 size_t aadlen,
                 const uint8_t *pt,
                 size_t ptlen,
                 uint8_t *out);

/* Reverses cf_aead_seal: out needs inlen - CF_AEAD_OVERHEAD bytes and *outlen receives that
 * length. CF_EAUTH on a wrong key or AAD or any tampering (out is then zeroed),
 * CF_EMALFORMED when inlen < CF_AEAD_OVERHEAD, CF_ECRYPTO on OpenSSL failure. */
int cf_aead_open(const uint8_t key[CF_AEAD_KEY_LEN],
                 const void *aad,
                 size_t aadlen,
                 const uint8_t *in,
                 size_t inlen,
                 uint8_t *out,
                 size_t *outlen);

/* Cloaking: a secret kept encrypted in memory under an ephemeral random key (itself in a
 * cf_secret), decrypted only for the moment it is used. A memory dump or a stray read of the
 * heap then shows ciphertext, and the key lives apart in locked memory. */
struct cf_cloak;

/* Cloaks a copy of len bytes (len may be 0). NULL on OOM or RNG failure. */
struct cf_cloak *cf_cloak_new(const uint8_t *secret, size_t len);

/* Decrypts into a new cf_secret in *out; the caller frees it with cf_secret_free at once after
 * use. CF_ENOMEM on OOM, CF_ECRYPTO/CF_EAUTH if the cloak was damaged. */
int cf_cloak_open(const struct cf_cloak *c, struct cf_secret **out);

/* Cleanses and frees; NULL-safe. */
void cf_cloak_free(struct cf_cloak *c);

#endif
