/*
 * CRL encoding (pki.md 4.4, RFC 5280 section 5): revocation entries encoded one at a time into
 * a buffer, and a v2 CRL built and signed around them.
 *
 * Why not OpenSSL's X509_CRL_add0_revoked: it keeps an X509_REVOKED object (several hundred
 * bytes in allocations) per entry and sorts and re-encodes them all at signing time, which for
 * the 1,000,000-entry CRLs of the issue costs seconds and hundreds of MiB. Here an entry is its
 * final DER (about 40 bytes) the moment it is added, so memory stays near the CRL's size. The
 * parts that are not lists (issuer name, times, extensions, the signature AlgorithmIdentifier)
 * are still produced by OpenSSL from an entry-less CRL, and the entries are spliced into that
 * TBSCertList before it is signed, so only the entry list is encoded by hand.
 *
 * Everything here is pure computation, safe on any thread: build on the worker pool.
 */
#ifndef CF_ENGINES_PKI_CRL_H_
#define CF_ENGINES_PKI_CRL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "lib/buf.h"

/* Size of one stored piece of a built CRL: well under the Raft entry (group) limit of 1 MiB,
 * so a CRL of any length is committed as several entries, never one that is too large. */
#define PKI_CRL_CHUNK_SIZE (512u * 1024u)

/* Appends one revokedCertificates entry (SEQUENCE { serial INTEGER, revocationDate Time }) to
 * entries. serial is the big-endian magnitude (leading zero bytes are dropped; at most 32
 * bytes), revoked_at Unix seconds. CF_EINVAL for an empty or too long serial, CF_ENOMEM. */
int pki_crl_entry_add(struct cf_buf *entries,
                      const uint8_t *serial,
                      size_t serial_len,
                      int64_t revoked_at);

/* The same with crlEntryExtensions: exts is the DER of the Extensions SEQUENCE
 * (i2d_X509_EXTENSIONS), appended as is; NULL or 0 bytes for none. */
int pki_crl_entry_add_ext(struct cf_buf *entries,
                          const uint8_t *serial,
                          size_t serial_len,
                          int64_t revoked_at,
                          const uint8_t *exts,
                          size_t exts_len);

/* What goes into a CRL besides its entries. */
struct pki_crl_params
{
    X509 *issuer;        /* borrowed: the CA certificate whose subject is the CRL issuer */
    EVP_PKEY *signer;    /* borrowed: its private key */
    int signature_bits;  /* RSA digest size (0 = 256); see pki_key_sign_ctx_new */
    bool use_pss;        /* RSA-PSS signature */
    int64_t number;      /* CRL Number extension */
    int64_t delta_base;  /* Delta CRL Indicator (critical) when >= 0; -1 for a complete CRL */
    int64_t this_update; /* Unix seconds */
    int64_t next_update; /* Unix seconds */
    /* Further CRL extensions after those above (sign-revocation-list); NULL for none. */
    const STACK_OF(X509_EXTENSION) * extra_exts;
};

/* Builds the signed DER CRL: version 2, signature algorithm of the signer, issuer = the issuer
 * certificate's subject, thisUpdate/nextUpdate, the n entries (the bytes pki_crl_entry_add
 * wrote; none gives a CRL without a revokedCertificates field), and the extensions Authority
 * Key Identifier (the issuer's subject key id, else SHA-1 of its public key), CRL Number and,
 * for a delta, Delta CRL Indicator. *der is cf_malloc'd. CF_ECRYPTO with OpenSSL's reason. */
int pki_crl_build(const struct pki_crl_params *p,
                  const uint8_t *entries,
                  size_t entries_len,
                  uint8_t **der,
                  size_t *len,
                  char *errmsg);

/* Maps an issuer's revocation_signature_algorithm (Go names, pki.md 1.4) to what
 * pki_key_sign_ctx_new takes: "" picks the defaults (0, false). Unknown names also give the
 * defaults: the issuer endpoint refuses them before they are stored. */
void pki_crl_sigalg(const char *name, int *signature_bits, bool *use_pss);

/* PEM text ("X509 CRL" block) of a DER CRL; cf_malloc'd, NUL-terminated. NULL on OOM. */
char *pki_crl_to_pem(const uint8_t *der, size_t len);

#endif
