/*
 * PKI certificates and certificate requests (pki.md sections 1.2, 3.2, 3.3, 3.5): a template
 * struct that says what goes into a certificate, building and signing a certificate from it
 * (root, intermediate or leaf), parsing and verifying a CSR into the same template, creating an
 * intermediate's CSR, PEM bundle splitting, chain assembly and the small read helpers the
 * engine needs (is CA, self-issued, expiry, colon-hex serial).
 *
 * Certificates, CSRs and keys are OpenSSL objects (X509, X509_REQ, EVP_PKEY); outputs are new
 * objects or references the caller frees (X509_free, X509_REQ_free) and text the caller frees
 * with cf_free. Nothing here keeps state between calls; everything is safe to call from any
 * thread. Errors are enum cf_err with Vault's message text in errmsg where pki.md gives one.
 */
#ifndef CF_ENGINES_PKI_X509_H_
#define CF_ENGINES_PKI_X509_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>
#include <openssl/x509.h>

/* A growable list of owned strings. Zero-initialised is empty. */
struct pki_x509_strs
{
    char **v; /* owned, each entry owned */
    size_t n;
};

/* Appends a copy of s. CF_ENOMEM on OOM (the list is unchanged). */
int pki_x509_strs_add(struct pki_x509_strs *l, const char *s);
/* Frees every string and the array; the list is empty afterwards. NULL-safe. */
void pki_x509_strs_close(struct pki_x509_strs *l);

/* An otherName SAN with a UTF8String value (Vault's other_sans "oid;UTF8:value"). */
struct pki_x509_other_san
{
    char *oid;   /* owned, dotted form */
    char *value; /* owned */
};

/* Key usage bits (RFC 5280 order); names as Vault's key_usage values. */
#define PKI_KU_DIGITAL_SIGNATURE (1u << 0)
#define PKI_KU_CONTENT_COMMITMENT (1u << 1)
#define PKI_KU_KEY_ENCIPHERMENT (1u << 2)
#define PKI_KU_DATA_ENCIPHERMENT (1u << 3)
#define PKI_KU_KEY_AGREEMENT (1u << 4)
#define PKI_KU_CERT_SIGN (1u << 5)
#define PKI_KU_CRL_SIGN (1u << 6)
#define PKI_KU_ENCIPHER_ONLY (1u << 7)
#define PKI_KU_DECIPHER_ONLY (1u << 8)

/* Extended key usage bits; names as Vault's ext_key_usage values. */
#define PKI_EKU_ANY (1u << 0)
#define PKI_EKU_SERVER_AUTH (1u << 1)
#define PKI_EKU_CLIENT_AUTH (1u << 2)
#define PKI_EKU_CODE_SIGNING (1u << 3)
#define PKI_EKU_EMAIL_PROTECTION (1u << 4)
#define PKI_EKU_IPSEC_END_SYSTEM (1u << 5)
#define PKI_EKU_IPSEC_TUNNEL (1u << 6)
#define PKI_EKU_IPSEC_USER (1u << 7)
#define PKI_EKU_TIME_STAMPING (1u << 8)
#define PKI_EKU_OCSP_SIGNING (1u << 9)
#define PKI_EKU_MS_SGC (1u << 10)
#define PKI_EKU_NS_SGC (1u << 11)

/* The NID of the extended key usage at bit position i (PKI_EKU_ order), NID_undef past the
 * last. */
int pki_x509_eku_nid(unsigned i);

/* Maps a key_usage name ("DigitalSignature", ..., "DecipherOnly"; case-insensitive, spaces
 * around ignored) to its PKI_KU_ bit. CF_EINVAL and "unknown key usage %s" otherwise. */
int pki_x509_key_usage_parse(const char *name, uint32_t *bit, char *errmsg);

/* Maps an ext_key_usage name ("Any", "ServerAuth", ..., "NetscapeServerGatedCrypto";
 * case-insensitive) to its PKI_EKU_ bit. CF_EINVAL and "unknown ext key usage %s" otherwise. */
int pki_x509_ext_key_usage_parse(const char *name, uint32_t *bit, char *errmsg);

/* Helpers shared with the direct DER writer (cert_der.c). */
/* Go's asn1 PrintableString test ('*' allowed, '&' refused, as its Marshal does): subject values
 * that pass are PrintableString, others UTF8String. */
bool pki_x509_printable(const char *s);
/* Dotted OIDs only, as Go parses them: first arc 0-2, at least two arcs, no empty arc. */
bool pki_x509_oid_syntax(const char *s);
/* Parses IPv4 or IPv6 text into 4 or 16 bytes; 0 when it is not an address. */
size_t pki_x509_parse_ip(const char *s, uint8_t out[16]);
/* "addr/prefix" into address || mask (8 or 32 octets, *len) for name constraints; CF_EINVAL and
 * "invalid CIDR %s" otherwise. */
int pki_x509_cidr_parse(const char *s, uint8_t out[32], size_t *len, char *errmsg);

/*
 * What goes into a certificate or CSR. Initialise with pki_x509_template_init, fill the fields
 * (strings are owned: set them with cf_strdup or pki_x509_strs_add), release with
 * pki_x509_template_close. pki_x509_csr_read fills the same struct from a CSR.
 */
struct pki_x509_template
{
    /* Subject, in Go's RDN order C, O, OU, L, ST, street, postalCode, serialNumber, CN, UID;
     * several values of one attribute form one multi-valued RDN as Go writes them. */
    char *common_name;                   /* owned; NULL = none */
    struct pki_x509_strs country;        /* C */
    struct pki_x509_strs organization;   /* O */
    struct pki_x509_strs ou;             /* OU */
    struct pki_x509_strs locality;       /* L */
    struct pki_x509_strs province;       /* ST */
    struct pki_x509_strs street_address; /* street */
    struct pki_x509_strs postal_code;    /* postalCode */
    char *serial_number;                 /* owned; subject attribute 2.5.4.5, not the serial */
    struct pki_x509_strs user_ids;       /* UID 0.9.2342.19200300.100.1.1, one RDN each */

    /* Subject alternative names. */
    struct pki_x509_strs dns;
    struct pki_x509_strs email;
    struct pki_x509_strs ip;               /* text, IPv4 or IPv6 */
    struct pki_x509_strs uri;              /* absolute URIs */
    struct pki_x509_other_san *other_sans; /* owned array */
    size_t n_other_sans;

    /* Validity, unix seconds (UTCTime before 2050, GeneralizedTime after, per RFC 5280). */
    int64_t not_before;
    int64_t not_after;

    /* Basic constraints: CA:true when is_ca (critical, pathlen when max_path_length >= 0);
     * for a non-CA, CA:false only when basic_constraints_valid_for_non_ca. pki_x509_csr_read
     * sets has_basic_constraints when the CSR asked for the extension at all. */
    bool is_ca;
    int max_path_length; /* -1 = no pathlen */
    bool basic_constraints_valid_for_non_ca;
    bool has_basic_constraints;

    uint32_t key_usage;                      /* PKI_KU_ bits; 0 = no extension (critical) */
    uint32_t ext_key_usage;                  /* PKI_EKU_ bits */
    struct pki_x509_strs ext_key_usage_oids; /* dotted OIDs, after the named ones */

    /* Identifiers. */
    uint8_t skid[64];   /* subject key id override (Vault's skid); used when skid_len > 0 */
    size_t skid_len;    /* 0 = SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 (1)) */
    uint8_t serial[20]; /* certificate serial override (big-endian); used when serial_len > 0 */
    size_t serial_len;  /* 0 = 159 random bits, positive, as Vault */

    /* Authority information access and CRL distribution points (URLs). */
    struct pki_x509_strs issuing_certificates;
    struct pki_x509_strs ocsp_servers;
    struct pki_x509_strs crl_distribution_points;

    /* Name constraints (critical), added when any list is non-empty. IP ranges in CIDR
     * notation; URI domains as in RFC 5280 4.2.1.10. */
    struct pki_x509_strs permitted_dns_domains;
    struct pki_x509_strs excluded_dns_domains;
    struct pki_x509_strs permitted_ip_ranges;
    struct pki_x509_strs excluded_ip_ranges;
    struct pki_x509_strs permitted_email_addresses;
    struct pki_x509_strs excluded_email_addresses;
    struct pki_x509_strs permitted_uri_domains;
    struct pki_x509_strs excluded_uri_domains;

    struct pki_x509_strs policy_identifiers; /* dotted OIDs, certificatePolicies */

    /* Signature choice for the signer (see pki_key_sign_ctx_new). */
    int signature_bits; /* 0, 256, 384, 512 */
    bool use_pss;
};

/* Zeroes the template and sets max_path_length to -1. */
void pki_x509_template_init(struct pki_x509_template *t);
/* Frees every owned field; the template is re-initialised. NULL-safe. */
void pki_x509_template_close(struct pki_x509_template *t);
/* Appends an otherName SAN (copies both strings). CF_ENOMEM on OOM. */
int pki_x509_template_add_other_san(struct pki_x509_template *t,
                                    const char *oid,
                                    const char *value);

/*
 * Builds and signs a certificate for @subject_key (only its public half is used) from @t.
 * @issuer is the signing CA certificate and @signer its private key; with @issuer NULL the
 * certificate is self-signed (a root) and @signer must be the key of @subject_key. The issuer
 * name comes from @issuer's subject, AKI from its SKI. The signature follows t->signature_bits
 * and t->use_pss for RSA signers (pki_key_sign_ctx_new) and is verified before return. Leaf
 * issuance uses the direct writer of cert_der.h, which writes the same bytes.
 * Errors: CF_EINVAL for bad template values ("the value \"%s\" is not a valid IP address",
 * "invalid OID %s", "invalid CIDR %s", "NotAfter is before NotBefore", "unsupported hash
 * signature algorithm: %d", "issuer key does not match issuer certificate"), CF_ECRYPTO when
 * OpenSSL fails, CF_ENOMEM. On success *out is a new certificate (X509_free).
 */
int pki_x509_cert_build(const struct pki_x509_template *t,
                        EVP_PKEY *subject_key,
                        X509 *issuer,
                        EVP_PKEY *signer,
                        X509 **out,
                        char *errmsg);

/*
 * Creates a CSR for @key (intermediate/generate): subject and SANs from @t, KeyUsage when
 * t->key_usage is set, and a critical BasicConstraints CA:true when add_basic_constraints (the
 * AD CS workaround of pki.md 1.2). Signed with @key per t->signature_bits / t->use_pss.
 * *out is a new request (X509_REQ_free).
 */
int pki_x509_csr_create(const struct pki_x509_template *t,
                        EVP_PKEY *key,
                        bool add_basic_constraints,
                        X509_REQ **out,
                        char *errmsg);

/*
 * Parses exactly one PEM certificate request ("CERTIFICATE REQUEST" or "NEW CERTIFICATE
 * REQUEST"), reads its public key into *key and verifies its self-signature. Errors
 * (CF_EMALFORMED): "csr contains no data" when there is no PEM block, "certificate request could
 * not be parsed: %s" for bad DER, a wrong block type or an undecodable public key, "csr contains
 * more than one PEM block", "request signature invalid" when the signature does not verify or uses
 * an algorithm Go refuses (MD5, SHA-224, DSA). SHA-1 signed requests are accepted as Vault does
 * (the signature only proves possession of the key); we never sign with SHA-1. *out is a new
 * request (X509_REQ_free) and *key a new reference to its public key (EVP_PKEY_free); use it, not
 * X509_REQ_get0_pubkey, which may be NULL (the key is read directly from its parameters when it can
 * be, see pki_key_from_spki_params).
 */
int pki_x509_csr_parse(const char *pem, size_t len, X509_REQ **out, EVP_PKEY **key, char *errmsg);

/*
 * Reads a parsed request into @t (which must be initialised and is added to): every subject
 * attribute the template has, SANs (DNS, email, IP as text, URI, UTF8 otherNames; other
 * otherName value types are skipped), KeyUsage, ExtendedKeyUsage (known OIDs as PKI_EKU_ bits,
 * others into ext_key_usage_oids), BasicConstraints (has_basic_constraints, is_ca,
 * max_path_length). A duplicated or undecodable extension fails with CF_EMALFORMED and
 * "certificate request could not be parsed: bad %s extension"; strings with NUL bytes are
 * refused the same way.
 */
int pki_x509_csr_read(X509_REQ *req, struct pki_x509_template *t, char *errmsg);

/* PEM text of a request, without a final newline as Vault returns it; cf_free. */
int pki_x509_csr_to_pem(X509_REQ *req, char **out, char *errmsg);

/* PEM text of a certificate, without a final newline as Vault returns it; cf_free. */
int pki_x509_cert_to_pem(const X509 *x, char **out, char *errmsg);
/* DER of a certificate into a cf_malloc'd buffer. */
int pki_x509_cert_to_der(const X509 *x, uint8_t **der, size_t *len, char *errmsg);
/* Base64 (standard, padded) of the DER, as Vault's format=der returns it; cf_free. */
int pki_x509_cert_to_base64(const X509 *x, char **out, char *errmsg);
/* Decodes one DER certificate; trailing bytes are refused. CF_EMALFORMED
 * "certificate could not be parsed: %s". */
int pki_x509_cert_from_der(const uint8_t *der, size_t len, X509 **out, char *errmsg);

/* The certificates and keys of a PEM bundle, in input order. */
struct pki_x509_bundle
{
    X509 **certs; /* owned (each a reference the bundle holds) */
    size_t n_certs;
    EVP_PKEY **keys; /* owned */
    size_t n_keys;
};

/*
 * Splits a PEM bundle into certificates ("CERTIFICATE") and private keys (the labels
 * pki_key_from_pem accepts, with the same checks); "EC PARAMETERS" blocks and text between
 * blocks are skipped. Errors (CF_EMALFORMED unless said): "no data found in PEM block",
 * "unsupported PEM block type %s", "certificate could not be parsed: %s", the key errors of
 * pki_key_from_der, "encrypted private keys are not supported" (CF_EUNSUPPORTED).
 * @out is initialised here; release it with pki_x509_bundle_close (also after an error).
 */
int pki_x509_bundle_parse(const char *pem, size_t len, struct pki_x509_bundle *out, char *errmsg);
/* Frees every certificate and key; NULL-safe; the bundle is empty afterwards. */
void pki_x509_bundle_close(struct pki_x509_bundle *b);

/* Parses a PEM text that must hold exactly one certificate and no key: CF_EINVAL with "%d
 * certificates found in PEM file, expected 1" otherwise. *out is new (X509_free). */
int pki_x509_cert_from_pem(const char *pem, size_t len, X509 **out, char *errmsg);

/* A chain of certificate references, leaf first. */
struct pki_x509_chain
{
    X509 **v; /* owned references */
    size_t n;
};

/*
 * Orders a chain from @leaf up through @pool (any order, may hold unrelated certificates and
 * duplicates): each next element is a pool certificate whose subject names the current one's
 * issuer, whose key identifiers match when both are present (X509_check_issued) and whose key
 * verifies the current signature. Stops at a self-issued certificate or when no issuer is
 * found; never loops. out->v[0] is @leaf. Release with pki_x509_chain_close.
 */
int pki_x509_chain_build(X509 *leaf,
                         X509 *const *pool,
                         size_t n_pool,
                         struct pki_x509_chain *out,
                         char *errmsg);
/* Frees the references; NULL-safe. */
void pki_x509_chain_close(struct pki_x509_chain *c);

/* True when the certificate has BasicConstraints with CA:true. */
bool pki_x509_is_ca(const X509 *x);
/* True when the issuer and subject names are byte-for-byte equal (Vault's self-issued test). */
bool pki_x509_is_self_issued(const X509 *x);
/* NotBefore / NotAfter as unix seconds. CF_EMALFORMED when the time cannot be read. */
int pki_x509_not_before(const X509 *x, int64_t *out);
int pki_x509_not_after(const X509 *x, int64_t *out);

/* Colon-hex serial size: up to 32 serial bytes as "1a:2b:...", NUL-terminated. */
#define PKI_X509_SERIAL_HEX_SIZE 96

/* The certificate's serial as Vault shows it: minimal big-endian bytes of its magnitude, lowercase
 * hex joined by ':' ("0" serial gives ""). CF_ETOOBIG beyond 32 bytes. */
int pki_x509_serial_hex(const X509 *x, char out[PKI_X509_SERIAL_HEX_SIZE], char *errmsg);

/* Normalises a serial given by a user (colon- or hyphen-separated hex pairs, any case, as
 * pki.md section 0 accepts) to the colon lowercase form. CF_EINVAL "invalid serial number %s". */
int pki_x509_serial_normalize(const char *in, char out[PKI_X509_SERIAL_HEX_SIZE], char *errmsg);

#endif
