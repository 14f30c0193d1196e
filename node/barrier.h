/*
 * The storage barrier: an AES-256-GCM keyring with terms. The root key opens the keyring and the
 * unseal key opens the root key. Values are encrypted under the active term with the storage key
 * as additional data; older terms keep decrypting after a rotation. Formats:
 * docs/formats/barrier.md and docs/formats/keyring.md.
 */
#ifndef CF_NODE_BARRIER_H_
#define CF_NODE_BARRIER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define BARRIER_KEY_LEN 32

struct barrier;

struct barrier_term_info
{
    uint32_t term;
    int64_t install_time_ns; /* wall clock, ns since the epoch */
    uint64_t encryptions;    /* since this node unsealed */
};

/* A sealed, empty barrier; NULL on OOM. */
struct barrier *barrier_new(void);
/* Cleanses every key and frees; NULL-safe. */
void barrier_free(struct barrier *b);
bool barrier_is_unsealed(const struct barrier *b);
/* A fresh random root key and a keyring holding term 1; leaves the barrier unsealed. */
int barrier_generate(struct barrier *b, char errmsg[CF_ERRMSG_SIZE]);
/* The root key encrypted under the 32-byte unseal key (AAD "core/root-key"); *out cf_malloc'd. */
int barrier_seal_root(const struct barrier *b,
                      const uint8_t *unseal_key,
                      size_t klen,
                      uint8_t **out,
                      size_t *outlen);
/* The keyring, serialized and encrypted under the root key (AAD "core/keyring"). */
int barrier_encode_keyring(const struct barrier *b, uint8_t **out, size_t *outlen);
/* Opens the root key with the unseal key, then the keyring. CF_EAUTH when the unseal key is
 * wrong (the barrier stays sealed); CF_ECORRUPT / CF_EVERSION for bad blobs. */
int barrier_unseal(struct barrier *b,
                   const uint8_t *unseal_key,
                   size_t klen,
                   const uint8_t *root_blob,
                   size_t root_len,
                   const uint8_t *keyring_blob,
                   size_t keyring_len,
                   char errmsg[CF_ERRMSG_SIZE]);
/* Drops every key from memory. */
void barrier_seal(struct barrier *b);
/* Adds term N+1 with a fresh key and makes it active; persist barrier_encode_keyring after. */
int barrier_rotate(struct barrier *b, uint32_t *new_term);
/* Encrypts a value stored at path; *out cf_malloc'd. CF_ESEALED while sealed. */
int barrier_encrypt(struct barrier *b,
                    const char *path,
                    const uint8_t *pt,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen);
/* Decrypts; *out is cf_malloc'd with a NUL after the plaintext. CF_EAUTH for a wrong path or
 * tampering, CF_ENOTFOUND for an unknown term, CF_EVERSION for an unknown header version,
 * CF_ECORRUPT when too short, CF_ESEALED while sealed. Does not modify the barrier. */
int barrier_decrypt(const struct barrier *b,
                    const char *path,
                    const uint8_t *ct,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen);
/* The active term (all zero while sealed). */
void barrier_term_info(const struct barrier *b, struct barrier_term_info *out);

#endif
