/*
 * Request parameters shared by CA generation and leaf issuance (pki.md 1.2, 3.2, 3.4, 3.5):
 * output format, subject and SANs, new-key type, signature choice, validity, and the response
 * data of a certificate in the three formats. Pure functions over the request JSON.
 */
#ifndef CF_ENGINES_PKI_PARAMS_H_
#define CF_ENGINES_PKI_PARAMS_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/types.h>

#include "engines/pki/key.h"
#include "engines/pki/x509.h"
#include "lib/err.h"

enum pki_format {
    PKI_FORMAT_PEM = 0,
    PKI_FORMAT_DER,
    PKI_FORMAT_PEM_BUNDLE,
};

/* format: "pem" (default), "der", "pem_bundle"; else CF_EINVAL with Vault's message. */
int pki_params_format(const json_t *data, enum pki_format *out, char *errmsg);

/* Subject attributes (ou, organization, country, locality, province, street_address,
 * postal_code, serial_number, user_ids when with_user_ids) and common_name into @t. */
int pki_params_subject(const json_t *data,
                       struct pki_x509_template *t,
                       bool with_user_ids,
                       char *errmsg);

/* SANs of the request: alt_names ('@' -> email, else DNS), ip_sans, uri_sans, other_sans. */
int pki_params_sans(const json_t *data, struct pki_x509_template *t, char *errmsg);

/* Adds the CN to the SANs as Vault does unless exclude_cn_from_sans: an email CN to the email
 * SANs, a hostname-shaped CN (after IDNA) to the DNS SANs; no duplicates. */
int pki_params_cn_to_sans(struct pki_x509_template *t, char *errmsg);

/* key_type (default "rsa") and key_bits (default 0) of a new key, resolved and checked. */
int pki_params_new_key(const json_t *data, enum pki_key_type *type, int *bits, char *errmsg);

/* signature_bits and use_pss into t, checked for a signer of @signer_type. */
int pki_params_signature(const json_t *data,
                         enum pki_key_type signer_type,
                         struct pki_x509_template *t,
                         char *errmsg);

/* Validity (pki.md 3.4 steps 1-4): ttl / not_after of the request over the role's (role_ttl,
 * role_max_ttl, role_not_after may be 0/NULL), the mount's default and max; NotBefore = now -
 * not_before_duration. A capped TTL adds Vault's warning to @warnings (may be NULL). */
int pki_params_validity(const json_t *data,
                        int64_t role_ttl,
                        int64_t role_max_ttl,
                        const char *role_not_after,
                        int64_t not_before_duration,
                        int64_t mount_default,
                        int64_t mount_max,
                        int64_t now,
                        struct pki_x509_template *t,
                        json_t *warnings,
                        char *errmsg);

/* Step 5: the issuer's NotAfter against t->not_after per leaf_not_after_behavior
 * (0 err, 1 truncate, 2 permit). */
int pki_params_cap_to_issuer(struct pki_x509_template *t,
                             int64_t issuer_not_after,
                             int behavior,
                             int64_t now,
                             char *errmsg);

/* Name constraints and max_path_length of a CA request into @t. */
int pki_params_ca(const json_t *data, struct pki_x509_template *t, char *errmsg);

/* The response data of a certificate (pki.md 3.5): certificate, issuing_ca, ca_chain (the
 * chain of the issuer, issuer first; roots dropped when remove_roots), serial_number,
 * expiration, and the private key when @key is not NULL (private_key, private_key_type).
 * @issuer_chain may be NULL (a root: issuing_ca is the certificate itself). */
json_t *pki_params_cert_data(X509 *cert,
                             X509 *const *issuer_chain,
                             size_t n_chain,
                             EVP_PKEY *key,
                             enum pki_format fmt,
                             enum pki_key_format key_fmt,
                             bool remove_roots,
                             bool with_chain,
                             char *errmsg);

/* The same for a leaf held as DER (cert_der.h) with its serial and NotAfter, the issuer's chain
 * with its PEM text (struct pki_issuer's chain and chain_pem) and the new key or NULL; ca_chain
 * is always included. */
json_t *pki_params_leaf_data(const uint8_t *der,
                             size_t der_len,
                             const char *serial,
                             int64_t not_after,
                             X509 *const *issuer_chain,
                             char *const *issuer_chain_pem,
                             size_t n_chain,
                             const struct pki_leaf_key *key,
                             enum pki_format fmt,
                             enum pki_key_format key_fmt,
                             bool remove_roots,
                             char *errmsg);

#endif
