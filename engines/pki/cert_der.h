/*
 * Leaf certificates written as DER directly (issue, sign, sign-verbatim).
 *
 * pki_x509_cert_build assembles an X509 object field by field, encodes it through OpenSSL's
 * ASN.1 templates to sign it, and every later step (PEM text, serial, storage DER) walks that
 * object again; on the issuance path this cost several times the signature itself. Here the
 * TBSCertificate is written straight from the template into one buffer, signed once, and the
 * result is the certificate's DER. The bytes are the ones pki_x509_cert_build writes for the
 * same template, key, serial and times (tests/unit/engines/pki/test_cert_der.c compares them
 * field for field across the template's features), so the two builders are interchangeable.
 *
 * Safe from any thread; nothing is kept between calls.
 */
#ifndef CF_ENGINES_PKI_CERT_DER_H_
#define CF_ENGINES_PKI_CERT_DER_H_

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "engines/pki/key.h"
#include "engines/pki/x509.h"

struct cf_buf;

/* What the signing issuer contributes, prepared once per issuer (struct pki_issuer). */
struct pki_cert_issuer
{
    const uint8_t *name_der; /* the issuer certificate's subject Name, DER */
    size_t name_len;
    const uint8_t *skid; /* its subject key identifier; skid_len 0 = no AKI (as Go) */
    size_t skid_len;
    EVP_PKEY *key;              /* the issuer's private key; borrowed */
    enum pki_key_type key_type; /* its type and size, as pki_key_describe tells them */
    int key_bits;
    /* optional: a signing context for key with the default algorithm (signature_bits 0, no
     * PSS), copied for each signature that uses that algorithm instead of being set up anew;
     * only read, so one template serves every thread */
    const EVP_MD_CTX *sign_default;
};

/*
 * Builds and signs a certificate from @t for the public key @spki (SubjectPublicKeyInfo DER),
 * issued by @is, and appends its DER to @out. The serial (t->serial or 159 random bits) is
 * written to @serial as colon hex. The signature algorithm follows pki_key_sign_ctx_new.
 * Errors: as pki_x509_cert_build for bad template values (CF_EINVAL, same messages);
 * CF_ECRYPTO, CF_ENOMEM. On error @out holds a partial certificate the caller discards.
 */
int pki_cert_der_build(const struct pki_x509_template *t,
                       const uint8_t *spki,
                       size_t spki_len,
                       const struct pki_cert_issuer *is,
                       struct cf_buf *out,
                       char serial[PKI_X509_SERIAL_HEX_SIZE],
                       char *errmsg);

#endif
