/*
 * Seals: what holds the key that opens the barrier (DESIGN.md "Seals and keys").
 *
 * The Shamir seal needs no object: operators bring the unseal key as shares. Every other seal
 * ("static", "pkcs11") is an auto-unseal seal, a struct node_seal that encrypts and decrypts
 * small values with a key it keeps to itself: the unseal key and the recovery key at init, and
 * every value of a mount enabled with seal_wrap=true. Such values are bound to their storage
 * key through the AAD, so a wrapped value cannot be moved to another key.
 *
 * A seal is configured by one `seal "TYPE" { ... }` block of the config file, handed over as a
 * struct node_seal_stanza (every value as text, as Vault's seals take them). Each seal refuses
 * fields it does not know.
 *
 * Threads: node_seal_encrypt and node_seal_decrypt may be called from any thread at once
 * (seal-wrapped values are written and read on the worker pool); provide_key, ready and free
 * are called on the loop only.
 */
#ifndef CF_NODE_SEAL_H_
#define CF_NODE_SEAL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/bip39.h"
#include "lib/err.h"

#define NODE_SEAL_MAX_PARAMS 32

/* One `seal "TYPE" { ... }` block. Booleans and numbers are kept as their text ("true", "42"). */
struct node_seal_stanza
{
    char type[16];
    bool disabled; /* `disabled = "true"`: the seal being migrated away from */
    int line;      /* line of the block in the config file, for messages */
    size_t n_params;
    char *keys[NODE_SEAL_MAX_PARAMS]; /* owned */
    char *values[NODE_SEAL_MAX_PARAMS];
};

/* The value of `key` in the stanza, or NULL when absent. */
const char *node_seal_param(const struct node_seal_stanza *st, const char *key);

/* CF_EINVAL with errmsg `seal "TYPE": unknown field "KEY"` when the stanza holds a key that is
 * not in `allowed` (NULL-terminated list). */
int node_seal_check_params(const struct node_seal_stanza *st,
                           const char *const *allowed,
                           char errmsg[CF_ERRMSG_SIZE]);

/* Frees the owned strings of a stanza and zeroes it; NULL-safe. */
void node_seal_stanza_clear(struct node_seal_stanza *st);

struct node_seal;

struct node_seal_ops
{
    const char *type; /* "static", "pkcs11": shown by sys/seal-status */
    /* Encrypts len bytes; *out (cf_malloc'd) is self-describing (format byte, nonce, tag), and
     * aad is bound to it. CF_ESEALED when the seal has no key yet (manual provider), CF_EIO when
     * the key holder fails (errmsg names the cause, e.g. a CKR_ name), CF_ENOMEM. */
    int (*encrypt)(struct node_seal *s,
                   const uint8_t *aad,
                   size_t aad_len,
                   const uint8_t *pt,
                   size_t len,
                   uint8_t **out,
                   size_t *out_len,
                   char errmsg[CF_ERRMSG_SIZE]);
    /* Reverses encrypt. CF_EAUTH for a wrong key, a wrong aad or any tampering, CF_EVERSION
     * for an unknown format byte, CF_ECORRUPT for a value too short, and the encrypt errors. */
    int (*decrypt)(struct node_seal *s,
                   const uint8_t *aad,
                   size_t aad_len,
                   const uint8_t *ct,
                   size_t len,
                   uint8_t **out,
                   size_t *out_len,
                   char errmsg[CF_ERRMSG_SIZE]);
    /* Optional (NULL when the seal never takes a key from an operator): checks and installs a
     * key given through sys/unseal. CF_EAUTH with errmsg when it is refused; nothing changes. */
    int (*provide_key)(struct node_seal *s, const char *key, char errmsg[CF_ERRMSG_SIZE]);
    /* True once the seal can encrypt and decrypt. */
    bool (*ready)(const struct node_seal *s);
    void (*free)(struct node_seal *s);
};

struct node_seal
{
    const struct node_seal_ops *ops;
};

/* Opens the seal that a stanza describes, by its type: "static" or "pkcs11". "shamir" is not an
 * object: *out is NULL and CF_OK. An unknown type: CF_EUNSUPPORTED with errmsg. Other failures
 * are the seal's own (a bad field, a missing key file, an HSM that refuses the PIN) with a
 * message that says which. */
int node_seal_open(const struct node_seal_stanza *st,
                   struct node_seal **out,
                   char errmsg[CF_ERRMSG_SIZE]);

/* The static key seal: node/seal_static.c. */
int node_seal_static_open(const struct node_seal_stanza *st,
                          struct node_seal **out,
                          char errmsg[CF_ERRMSG_SIZE]);

/* The SHA-256 validation hash (64 lower-case hex digits) of a phrase in its canonical form, and
 * its entropy when `entropy` is not NULL. CF_EMALFORMED with errmsg for a phrase that is not a
 * valid 24-word BIP39 English mnemonic (wrong word count, unknown word, wrong checksum). */
int node_seal_static_phrase_hash(const char *phrase,
                                 uint8_t entropy[CF_BIP39_ENTROPY],
                                 char hash_hex[65],
                                 char errmsg[CF_ERRMSG_SIZE]);

/* A new random seal key as its phrase and validation hash. */
int node_seal_static_generate(char phrase[CF_BIP39_PHRASE_MAX], char hash_hex[65]);

/* The PKCS#11 HSM seal: node/seal_pkcs11.c. */
int node_seal_pkcs11_open(const struct node_seal_stanza *st,
                          struct node_seal **out,
                          char errmsg[CF_ERRMSG_SIZE]);

static inline int node_seal_encrypt(struct node_seal *s,
                                    const uint8_t *aad,
                                    size_t aad_len,
                                    const uint8_t *pt,
                                    size_t len,
                                    uint8_t **out,
                                    size_t *out_len,
                                    char errmsg[CF_ERRMSG_SIZE])
{
    return s->ops->encrypt(s, aad, aad_len, pt, len, out, out_len, errmsg);
}

static inline int node_seal_decrypt(struct node_seal *s,
                                    const uint8_t *aad,
                                    size_t aad_len,
                                    const uint8_t *ct,
                                    size_t len,
                                    uint8_t **out,
                                    size_t *out_len,
                                    char errmsg[CF_ERRMSG_SIZE])
{
    return s->ops->decrypt(s, aad, aad_len, ct, len, out, out_len, errmsg);
}

/* Frees a seal; NULL-safe. */
static inline void node_seal_free(struct node_seal *s)
{
    if (s != NULL) {
        s->ops->free(s);
    }
}

#endif
