/*
 * OCSP (RFC 6960) requests and responses for the PKI responder (pki.md 4.5): parsing a request
 * (DER from a POST body, or the base64 of the GET form), matching its CertID against a CA
 * certificate, and building the signed BasicOCSPResponse or an error response.
 *
 * The ASN.1 is OpenSSL's (d2i_OCSP_REQUEST, OCSP_basic_sign_ctx); this module decides what is
 * accepted and what is answered. Pure computation: safe on any thread.
 */
#ifndef CF_ENGINES_PKI_OCSP_H_
#define CF_ENGINES_PKI_OCSP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ocsp.h>

/* Requests larger than this are refused (Vault's limit). */
#define PKI_OCSP_MAX_REQUEST 2048

/* The first CertID of a request (Vault answers only that one) and the request itself, kept for
 * echoing the nonce. */
struct pki_ocsp_req
{
    OCSP_REQUEST *req; /* owned */
    OCSP_CERTID *id;   /* borrowed from req */
    const EVP_MD *md;  /* the CertID's hash algorithm */
    uint8_t serial[32];
    size_t serial_len;
};

/* Parses a DER OCSPRequest. CF_ETOOBIG above PKI_OCSP_MAX_REQUEST, CF_EMALFORMED for anything
 * that is not an OCSPRequest with at least one CertID using a known hash, a serial of 1..32
 * bytes and no trailing bytes; the text goes to errmsg. Release with pki_ocsp_req_close. */
int pki_ocsp_request_parse(const uint8_t *der, size_t len, struct pki_ocsp_req *out, char *errmsg);

/* Decodes the GET form (the path after "ocsp/"): any remaining %XX escapes, then base64 in the
 * standard or the URL-safe alphabet, padding optional. Then as pki_ocsp_request_parse. */
int pki_ocsp_request_from_get(const char *tail, struct pki_ocsp_req *out, char *errmsg);

void pki_ocsp_req_close(struct pki_ocsp_req *r);

/* True when the request's issuerNameHash and issuerKeyHash are those of ca (computed with the
 * request's hash algorithm). */
bool pki_ocsp_match_issuer(const struct pki_ocsp_req *r, X509 *ca);

enum pki_ocsp_status {
    PKI_OCSP_GOOD = V_OCSP_CERTSTATUS_GOOD,
    PKI_OCSP_REVOKED = V_OCSP_CERTSTATUS_REVOKED,
    PKI_OCSP_UNKNOWN = V_OCSP_CERTSTATUS_UNKNOWN,
};

/* What the response says, and who signs it. */
struct pki_ocsp_answer
{
    enum pki_ocsp_status status;
    int64_t revoked_at;  /* PKI_OCSP_REVOKED: revocationTime (reason left out: unspecified) */
    int64_t this_update; /* Unix seconds */
    int64_t next_update; /* 0 = no nextUpdate */
    X509 *signer_cert;   /* borrowed: the CA; the responder id is its key hash */
    EVP_PKEY *signer;    /* borrowed: its key */
    int signature_bits;  /* RSA digest (0 = 256); RSA always PKCS#1 v1.5 here */
    /* borrowed, may be NULL: the signer's prepared context for signature_bits 0 (the key's
     * default), copied per response instead of setting one up */
    const EVP_MD_CTX *sign_default;
};

/* Builds a successful OCSPResponse: one SingleResponse with the request's CertID as sent, the
 * nonce echoed when the request had one (RFC 8954), no certificates. *der cf_malloc'd. */
int pki_ocsp_response_build(const struct pki_ocsp_req *r,
                            const struct pki_ocsp_answer *a,
                            uint8_t **der,
                            size_t *len,
                            char *errmsg);

/* An unsigned OCSPResponse carrying only a status (OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
 * _INTERNALERROR, _UNAUTHORIZED ...). *der cf_malloc'd. CF_ENOMEM. */
int pki_ocsp_error_response(int ocsp_status, uint8_t **der, size_t *len);

#endif
