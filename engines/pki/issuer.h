/*
 * Issuers and keys of one PKI mount (pki.md 1): their storage entries, and the parsed snapshot
 * the engine works from.
 *
 * Storage (replicated class): config/key/<id> = {"id","name","type","bits","private_key"(PEM)},
 * config/issuer/<id> = the issuer entry (fields of pki.md 1.4 plus "certificate" PEM),
 * config/issuers = {"default","default_follows_latest_issuer"}, config/keys = {"default"}.
 *
 * A snapshot (struct pki_snap) is every issuer and key parsed once (certificates, private keys,
 * chains), refcounted, immutable once built. pki_snap_get returns the current one, rebuilding it
 * only when the FSM versions of those keys changed, so a request costs a few map lookups and no
 * parsing; worker-pool jobs hold a reference for their duration (refs are taken and dropped on
 * the loop thread only).
 */
#ifndef CF_ENGINES_PKI_ISSUER_H_
#define CF_ENGINES_PKI_ISSUER_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/types.h>

#include "engines/pki/key.h"
#include "engines/pki/x509.h"

struct pki_engine;
struct node_request;
struct node_write;

#define PKI_ID_SIZE 37
#define PKI_SET_ID_SIZE 33

/* Issuer usage bits (pki.md 1.4 usage). read-only is implicit. */
#define PKI_USAGE_ISSUING (1u << 0)
#define PKI_USAGE_CRL (1u << 1)
#define PKI_USAGE_OCSP (1u << 2)
#define PKI_USAGE_ALL (PKI_USAGE_ISSUING | PKI_USAGE_CRL | PKI_USAGE_OCSP)

enum pki_leaf_behavior {
    PKI_LEAF_ERR = 0,
    PKI_LEAF_TRUNCATE,
    PKI_LEAF_PERMIT,
};

struct pki_key_ent
{
    char id[PKI_ID_SIZE];
    char *name; /* owned, "" when unnamed */
    enum pki_key_type type;
    int bits;
    EVP_PKEY *pkey; /* owned reference */
    char fingerprint[PKI_KEY_FINGERPRINT_SIZE];
    /* owned: a signing context with the default algorithm (signature_bits 0, no PSS), copied
     * per signature (cert_der.h); NULL when it could not be made */
    EVP_MD_CTX *sign_default;
};

struct pki_issuer
{
    char id[PKI_ID_SIZE];
    char *name;                    /* owned, "" when unnamed */
    char key_id[PKI_ID_SIZE];      /* "" when the mount has no key for it */
    char crl_set[PKI_SET_ID_SIZE]; /* its CRL set (crl_build.h), "" without a key */
    const struct pki_key_ent *key; /* borrowed from the snapshot, NULL without a key */
    X509 *cert;                    /* owned reference */
    char *pem;                     /* owned, no final newline */
    uint8_t *subject_der;          /* owned: the certificate's subject Name, DER */
    size_t subject_der_len;
    uint8_t skid[64]; /* the certificate's subject key identifier (AKI of what it signs) */
    size_t skid_len;  /* 0 when it has none */
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    int64_t not_before;
    int64_t not_after;
    uint32_t usage; /* PKI_USAGE_ bits */
    enum pki_leaf_behavior leaf_behavior;
    bool revoked;
    int64_t revocation_time;
    int64_t last_modified; /* Unix seconds of the entry's last change, 0 when unknown */
    json_t *entry;         /* owned: the stored entry as read */
    /* ca_chain: this issuer first, then its parents (manual_chain or computed). */
    X509 **chain; /* owned references */
    char **chain_pem;
    size_t n_chain;
};

struct pki_snap
{
    int refs;
    struct pki_issuer *issuers; /* owned array, sorted by id */
    size_t n_issuers;
    struct pki_key_ent *keys; /* owned array, sorted by id */
    size_t n_keys;
    char default_issuer[PKI_ID_SIZE]; /* "" when none */
    bool default_follows_latest;
    char default_key[PKI_ID_SIZE];
    /* What the snapshot was built from: storage keys and FSM versions, in scan order. */
    char **src_keys;
    uint64_t *src_versions;
    size_t n_src;
};

/* The current snapshot with a new reference (drop it with pki_snap_release). NULL on OOM or when
 * storage cannot be read (sealed); an entry that does not parse is skipped and logged. */
struct pki_snap *pki_snap_get(struct pki_engine *e);
void pki_snap_release(struct pki_snap *s);
/* Drops the engine's cached snapshot (engine destroy). */
void pki_snap_drop(struct pki_engine *e);

/* Resolves an issuer reference: "default", an id or a name. NULL when nothing matches. */
const struct pki_issuer *pki_snap_issuer(const struct pki_snap *s, const char *ref);
/* Resolves a key reference the same way. */
const struct pki_key_ent *pki_snap_key(const struct pki_snap *s, const char *ref);
/* The issuer whose certificate has this serial (colon hex), or NULL. */
const struct pki_issuer *pki_snap_issuer_by_serial(const struct pki_snap *s, const char *serial);
/* The issuer of the mount whose certificate names and whose key signed x, or NULL. */
const struct pki_issuer *pki_snap_issuer_of(const struct pki_snap *s, X509 *x);
/* The key with this public-key fingerprint, or NULL. */
const struct pki_key_ent *pki_snap_key_by_fingerprint(const struct pki_snap *s, const char *fp);

/* Checks a new issuer/key name against pki.md 0: CF_EINVAL with Vault's messages for
 * "default" and bad characters. "" is allowed (unnamed). */
int pki_name_check(const char *name, const char *what, char *errmsg);

/* Parses a usage list ("read-only,issuing-certificates,crl-signing,ocsp-signing"). */
int pki_usage_parse(const json_t *list, uint32_t *out, char *errmsg);
/* The usage text Vault shows ("read-only,issuing-certificates,..."); static storage. */
const char *pki_usage_text(uint32_t usage, char *buf, size_t n);

/* A new stored-issuer entry with Vault's defaults for @cert (PEM) and @key_id. */
json_t *pki_issuer_entry_new(const char *id, const char *name, const char *key_id, const char *pem);
/* A new stored-key entry. */
json_t *pki_key_entry_new(const char *id,
                          const char *name,
                          enum pki_key_type type,
                          int bits,
                          const char *private_pem);

/* The issuer's JSON as GET issuer/:ref returns it (pki.md 1.4). */
json_t *pki_issuer_json(const struct pki_snap *s, const struct pki_issuer *is);

/* generate.c: adds the entry of a new issuer (id, name, key_id "" when none, certificate PEM,
 * revocation_signature_algorithm or NULL) to w, and when may_default and the mount has no default
 * issuer (or follows the latest) makes it the default; *made_default (optional) tells. */
int pki_generate_put_issuer(struct node_write *w,
                            const struct pki_snap *s,
                            const char *issuer_id,
                            const char *name,
                            const char *key_id,
                            const char *pem,
                            const char *sigalg,
                            bool may_default,
                            bool *made_default);

/* issuers_api.c: issuer/key endpoints; false when rel_path is not one of them. */
bool pki_issuers_handle(struct pki_engine *e, struct node_request *req);
/* generate.c: root/generate, intermediate/generate, sign-intermediate, imports ... */
bool pki_generate_handle(struct pki_engine *e, struct node_request *req);
/* fetch.c: ca, ca_chain, cert/..., certs LIST, issuer/:ref/{json,der,pem}. */
bool pki_fetch_handle(struct pki_engine *e, struct node_request *req);

#endif
