/*
 * The storage barrier: every value written to storage is encrypted here and every value read is
 * decrypted here, with AES-256-GCM under a keyring of numbered terms. The active term encrypts;
 * all terms decrypt, so values written before a rotation stay readable. The keyring is persisted
 * encrypted under the root key, and the root key encrypted under the unseal key (which the seal
 * protects). Formats: docs/formats/barrier.md (values) and docs/formats/keyring.md (blobs).
 *
 * Threads: barrier_encrypt, barrier_decrypt, barrier_term_info, barrier_seal_root and
 * barrier_encode_keyring only read the keyring (under a shared lock) and may run concurrently
 * from any thread; barrier_generate, barrier_unseal, barrier_seal and barrier_rotate take the
 * lock exclusively.
 */
#ifndef CF_NODE_BARRIER_H_
#define CF_NODE_BARRIER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define BARRIER_KEY_LEN 32
/* Bytes before the AEAD output in an encrypted value: version (1) and term (4, big-endian). */
#define BARRIER_HEADER_LEN 5
/* Encrypted size minus plaintext size: header, 12-byte nonce, 16-byte tag. */
#define BARRIER_OVERHEAD 33

struct barrier;

struct barrier_term_info
{
    uint32_t term;           /* 0 when sealed */
    int64_t install_time_ns; /* wall clock, ns since the Unix epoch */
    uint64_t encryptions;    /* values encrypted with this term since unseal (memory only) */
};

/* A sealed, empty barrier; NULL on OOM. */
struct barrier *barrier_new(void);

/* Cleanses every key and frees; NULL-safe. */
void barrier_free(struct barrier *b);

/* True once barrier_generate or barrier_unseal succeeded and until barrier_seal. */
bool barrier_is_unsealed(const struct barrier *b);

/* For initialisation: a fresh random root key and a keyring holding term 1; the barrier is
 * unsealed on success. CF_EINVAL if already unsealed, CF_ENOMEM, CF_ECRYPTO. */
int barrier_generate(struct barrier *b, char errmsg[CF_ERRMSG_SIZE]);

/* The root key encrypted under the unseal key (klen must be BARRIER_KEY_LEN), AAD
 * "core/root-key". *out is cf_malloc'd. CF_ESEALED, CF_EINVAL, CF_ENOMEM, CF_ECRYPTO. */
int barrier_seal_root(const struct barrier *b,
                      const uint8_t *unseal_key,
                      size_t klen,
                      uint8_t **out,
                      size_t *outlen);

/* The keyring (every term, the active term, install times), serialized and encrypted under the
 * root key with AAD "core/keyring". *out is cf_malloc'd. CF_ESEALED, CF_ENOMEM, CF_ECRYPTO. */
int barrier_encode_keyring(const struct barrier *b, uint8_t **out, size_t *outlen);

/* Decrypts the root key with the unseal key, then the keyring with the root key, and unseals.
 * CF_EAUTH when the unseal key is wrong; CF_ECORRUPT for a damaged blob or a keyring that the
 * root key does not open; CF_EVERSION for an unknown blob or keyring version; CF_EINVAL if klen
 * is not BARRIER_KEY_LEN or the barrier is already unsealed. On any failure nothing changes and
 * the barrier stays sealed. */
int barrier_unseal(struct barrier *b,
                   const uint8_t *unseal_key,
                   size_t klen,
                   const uint8_t *root_blob,
                   size_t root_len,
                   const uint8_t *keyring_blob,
                   size_t keyring_len,
                   char errmsg[CF_ERRMSG_SIZE]);

/* Drops every key from memory (cleansed); the barrier is sealed afterwards. */
void barrier_seal(struct barrier *b);

/* Adds term N+1 with a fresh key and makes it active; *new_term receives it. The caller persists
 * barrier_encode_keyring afterwards. CF_ESEALED, CF_ENOMEM, CF_ECRYPTO, CF_ETOOBIG when the
 * term counter is exhausted. */
int barrier_rotate(struct barrier *b, uint32_t *new_term);

/* Encrypts len bytes to be stored at `path`; the header and the path are the AAD, so a value
 * cannot be moved to another key. *out (cf_malloc'd) holds len + BARRIER_OVERHEAD bytes.
 * Counts one encryption for the active term. CF_ESEALED, CF_ENOMEM, CF_ETOOBIG, CF_ECRYPTO. */
int barrier_encrypt(struct barrier *b,
                    const char *path,
                    const uint8_t *pt,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen);

/* Decrypts a value read from `path`; *out is cf_malloc'd (never NULL on success, even for an
 * empty value). CF_EAUTH for a wrong path or any tampering, CF_ENOTFOUND for a term not in the
 * keyring, CF_EVERSION for an unknown header version, CF_ECORRUPT when shorter than
 * BARRIER_OVERHEAD, CF_ESEALED, CF_ENOMEM. Never modifies the barrier. */
int barrier_decrypt(const struct barrier *b,
                    const char *path,
                    const uint8_t *ct,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen);

/* The active term's number, install time and encryption count; all zero when sealed. */
void barrier_term_info(const struct barrier *b, struct barrier_term_info *out);

#endif
