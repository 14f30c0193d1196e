/*
 * PKI private keys (pki.md sections 1.2, 2.3, 3.5): generation of the key types Vault offers,
 * parsing of PEM private keys, export in Vault's two private_key_format values, a stable
 * fingerprint for de-duplication, and the choice of signature algorithm for a signer.
 *
 * Keys are plain OpenSSL EVP_PKEY objects; every function says who owns what. Nothing here
 * keeps state between calls. Key generation is CPU-heavy (RSA-4096 takes about a second,
 * RSA-8192 tens of seconds): call it from a worker thread, never from the event loop.
 * Errors are enum cf_err with Vault's text in errmsg where pki.md gives one.
 */
#ifndef CF_ENGINES_PKI_KEY_H_
#define CF_ENGINES_PKI_KEY_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

struct cf_buf;
struct cf_secret;

enum pki_key_type {
    PKI_KEY_RSA = 0,
    PKI_KEY_EC,
    PKI_KEY_ED25519,
};

/* Vault's private_key_format: "der" (the default; PKCS#1 for RSA, SEC1 for EC, PKCS#8 for
 * Ed25519 which has no other form) or "pkcs8" (always "PRIVATE KEY"). */
enum pki_key_format {
    PKI_KEY_FORMAT_DER = 0,
    PKI_KEY_FORMAT_PKCS8,
};

/* Hex SHA-256 of the SubjectPublicKeyInfo DER, NUL-terminated. */
#define PKI_KEY_FINGERPRINT_SIZE 65

/* "rsa", "ec" or "ed25519" (Vault's private_key_type / key_type strings). */
const char *pki_key_type_name(enum pki_key_type type);

/* Parses a key_type request value ("rsa", "ec", "ed25519"; exact, lowercase as Vault).
 * CF_EINVAL with "unknown key type %s" for anything else, including "any" (a role-only value). */
int pki_key_type_parse(const char *s, enum pki_key_type *out, char *errmsg);

/* Parses private_key_format: "der", "" and "pem" mean PKI_KEY_FORMAT_DER, "pkcs8" the other.
 * CF_EINVAL with "invalid private_key_format %s" otherwise. */
int pki_key_format_parse(const char *s, enum pki_key_format *out, char *errmsg);

/* Resolves key_bits for a key type: 0 -> 2048 (rsa) / 256 (ec) / 0 (ed25519, bits ignored).
 * RSA accepts 2048, 3072, 4096, 8192; below 2048 fails with "RSA keys < 2048 bits are unsafe
 * and not supported: got %d", other sizes with "unsupported bit length for RSA key: %d".
 * EC accepts 224, 256, 384, 521, else "unsupported bit length for EC key: %d". CF_EINVAL. */
int pki_key_bits_resolve(enum pki_key_type type, int bits, int *out, char *errmsg);

/* Generates a new key. bits as for pki_key_bits_resolve (0 = default), which is applied first.
 * On success *out is a new key the caller frees with EVP_PKEY_free. CF_EINVAL for bad bits,
 * CF_ECRYPTO when OpenSSL fails. */
int pki_key_generate(enum pki_key_type type, int bits, EVP_PKEY **out, char *errmsg);

/* Tells the type and size of any key (private or public only): RSA modulus bits, EC curve bits
 * (224/256/384/521), 0 for Ed25519. Other algorithms (DSA, RSA-PSS-only keys, X25519, other
 * curves) fail with CF_EUNSUPPORTED and "unsupported key algorithm %s" or "unsupported EC
 * curve %s". Does not apply minimums; see pki_key_check_minimum. */
int pki_key_describe(const EVP_PKEY *key, enum pki_key_type *type, int *bits, char *errmsg);

/* Applies the safe minimums of pki.md 2.3 to a described key: RSA below 2048 bits fails with
 * CF_EINVAL and "RSA keys < 2048 bits are unsafe and not supported: got %d". */
int pki_key_check_minimum(enum pki_key_type type, int bits, char *errmsg);

/* Parses exactly one unencrypted PEM private key: "RSA PRIVATE KEY" (PKCS#1), "EC PRIVATE KEY"
 * (SEC1; a leading "EC PARAMETERS" block as openssl ecparam writes it is skipped) or "PRIVATE
 * KEY" (PKCS#8). The key must be of a supported type and pass pki_key_check_minimum.
 * Errors (CF_EMALFORMED unless said): "no data found in PEM block" when there is no PEM block,
 * "unsupported PEM block type %s", "encrypted private keys are not supported" (CF_EUNSUPPORTED),
 * "failed to parse %s: <reason>", "only a single key can be present within the pem_bundle for
 * importing" when more blocks follow. On success *out is a new key (EVP_PKEY_free). */
int pki_key_from_pem(const char *pem, size_t len, EVP_PKEY **out, char *errmsg);

/* Decodes the DER body of one PEM block whose label is @label (one of the three above).
 * Trailing bytes after the key are refused. Used by the PEM bundle splitter. */
int pki_key_from_der(const char *label,
                     const uint8_t *der,
                     size_t len,
                     EVP_PKEY **out,
                     char *errmsg);

/* Encodes the private key as DER in the given format (what Vault's format=der returns, base64'd
 * by the caller). *out is a cf_secret holding the bytes; free with cf_secret_free. */
int pki_key_to_der(const EVP_PKEY *key,
                   enum pki_key_format fmt,
                   struct cf_secret **out,
                   char *errmsg);

/* Encodes the private key as PEM text in the given format. *out is a cf_secret whose data is
 * the NUL-terminated text and whose len counts that NUL; free with cf_secret_free. */
int pki_key_to_pem(const EVP_PKEY *key,
                   enum pki_key_format fmt,
                   struct cf_secret **out,
                   char *errmsg);

/* The private key as response text, in unlocked memory (for leaf keys that leave the process in
 * the response anyway; mlock per issuance costs more than the signature): PEM as
 * pki_key_to_pem when pem, else base64 of the DER. *out is cf_malloc'd; the caller cleanses and
 * frees it. */
int pki_key_to_text(const EVP_PKEY *key,
                    enum pki_key_format fmt,
                    bool pem,
                    char **out,
                    char *errmsg);

/* Lowercase hex SHA-256 of the key's SubjectPublicKeyInfo DER: the same for a private key, its
 * public half, a CSR and a certificate carrying it, so it identifies a key for de-duplication. */
int pki_key_fingerprint(const EVP_PKEY *key, char out[PKI_KEY_FINGERPRINT_SIZE], char *errmsg);

/* Checks a signature_bits request value for a signer of the given type: 0, 256, 384 and 512
 * are accepted for RSA and EC; anything else (SHA-1's 160 included) fails with CF_EINVAL and
 * "unsupported hash signature algorithm: %d". Ed25519 ignores the value. */
int pki_key_signature_bits_check(enum pki_key_type type, int signature_bits, char *errmsg);

/* Prepares a digest-sign context for @signer as Vault picks the algorithm: RSA uses
 * signature_bits (0 -> SHA-256) with PKCS#1 v1.5, or RSASSA-PSS (salt = hash length, MGF1
 * with the same hash) when use_pss; EC uses the hash matched to the curve (224/256 -> SHA-256,
 * 384 -> SHA-384, 521 -> SHA-512) whatever signature_bits says; Ed25519 signs pure.
 * *out is for X509_sign_ctx, X509_REQ_sign_ctx or X509_CRL_sign_ctx; the caller frees it with
 * EVP_MD_CTX_free. @signer is borrowed and must outlive the context. */
int pki_key_sign_ctx_new(EVP_PKEY *signer,
                         int signature_bits,
                         bool use_pss,
                         EVP_MD_CTX **out,
                         char *errmsg);

/* pki_key_sign_ctx_new, or a copy of @prepared when it is not NULL: a context that
 * pki_key_sign_ctx_new made earlier for the same signer and choice (an issuer key's default,
 * kept with the key), which saves setting one up per signature. Same errors. */
int pki_key_sign_ctx_get(const EVP_MD_CTX *prepared,
                         EVP_PKEY *signer,
                         int signature_bits,
                         bool use_pss,
                         EVP_MD_CTX **out,
                         char *errmsg);

/* Go's x509.SignatureAlgorithm name for what pki_key_sign_ctx_new would pick ("SHA256WithRSA",
 * "SHA384WithRSAPSS", "ECDSAWithSHA256", "PureEd25519", ...), as Vault stores it in an issuer's
 * revocation_signature_algorithm. Same errors as pki_key_sign_ctx_new. */
int pki_key_signature_algorithm_name(const EVP_PKEY *signer,
                                     int signature_bits,
                                     bool use_pss,
                                     const char **out,
                                     char *errmsg);

/* A signature algorithm as pki_key_sign_ctx_new picks it. */
struct pki_sig_alg
{
    const char *name; /* Go's x509.SignatureAlgorithm name, as Vault stores it */
    int nid;          /* the OID's NID; NID_undef for RSASSA-PSS (parameters from the context) */
    bool null_param;  /* its AlgorithmIdentifier carries NULL (RSA PKCS#1 v1.5), else none */
};

/* The algorithm for a signer of this type and size (pki_key_describe's bits), from a static
 * table: no key is read, so callers that know the type keep it off the hot path. Errors as
 * pki_key_signature_bits_check. */
int pki_key_signature_alg(enum pki_key_type type,
                          int key_bits,
                          int signature_bits,
                          bool use_pss,
                          const struct pki_sig_alg **out,
                          char *errmsg);

/* Direct encodings (key_der.c): the same bytes OpenSSL writes, without its provider encoders.
 * Both return CF_EUNSUPPORTED for keys they do not cover (multi-prime RSA, RSA-PSS, explicit
 * or other curves); the caller then uses OpenSSL's own functions. */

/* The private key's DER: SEC1 (EC) or PKCS#1 (RSA) unless pkcs8, else PKCS#8; Ed25519 is always
 * PKCS#8. *der is OPENSSL_malloc'd; the caller frees it with OPENSSL_clear_free(*der, *len). */
int pki_key_private_der(const EVP_PKEY *key, bool pkcs8, unsigned char **der, size_t *len);

/* Appends the key's SubjectPublicKeyInfo DER (written directly; OpenSSL's encoder for keys the
 * direct writer does not cover). CF_ECRYPTO when OpenSSL cannot encode it either. */
int pki_key_spki_der(const EVP_PKEY *key, struct cf_buf *out);

/* The same two encodings for an EC key held as raw bytes (struct pki_leaf_key): @point is the
 * uncompressed public point, @scalar the private scalar padded to the order's size (CF_EINVAL
 * otherwise). The private key is SEC1 with the curve, or PKCS#8 when pkcs8. */
int pki_key_ec_raw_spki(int curve, const uint8_t *point, size_t plen, struct cf_buf *out);
int pki_key_ec_raw_private_der(int curve,
                               const uint8_t *scalar,
                               size_t slen,
                               const uint8_t *point,
                               size_t plen,
                               bool pkcs8,
                               struct cf_buf *out);

/* Direct decoding (csr_key.c). A library context with no providers: requests parsed in it keep
 * their public key undecoded (OSSL_DECODER's set-up costs more than the signature check).
 * NULL when it cannot be made. */
OSSL_LIB_CTX *pki_key_bare_libctx(void);

/* Builds the public key of @pub from its parameters: EC on P-224/P-256/P-384/P-521 (the
 * point's form kept), RSA, Ed25519. *out is a new key (EVP_PKEY_free). CF_EUNSUPPORTED for
 * other keys and CF_EMALFORMED for values OpenSSL refuses; the caller then decodes with
 * OpenSSL's decoders, which give the usual errors. */
int pki_key_from_spki_params(X509_PUBKEY *pub, EVP_PKEY **out);

/*
 * A leaf's new key (issue/:role). EC keys are made directly: a random scalar below the curve's
 * order and its public point from one curve group shared by every thread, without an EVP_PKEY
 * (OpenSSL 3 builds a fresh group, with its Montgomery set-up, for every EVP keygen, and reads
 * keys back through its parameter machinery; both cost more than the scalar multiplication).
 * RSA and Ed25519 keys are EVP_PKEYs from pki_key_generate. The key lives in the struct's own
 * memory and pki_leaf_key_close cleanses it.
 */
struct pki_leaf_key
{
    enum pki_key_type type;
    int bits;
    int curve;        /* EC: the curve's NID */
    uint8_t priv[66]; /* EC: the scalar, padded to the order's size */
    size_t priv_len;
    uint8_t pub[133]; /* EC: the uncompressed point */
    size_t pub_len;
    EVP_PKEY *pkey; /* RSA, Ed25519: owned */
};

/* Generates a key as pki_key_generate does (same bits rules and errors). */
int pki_leaf_key_generate(enum pki_key_type type, int bits, struct pki_leaf_key *k, char *errmsg);
/* Appends the key's SubjectPublicKeyInfo DER. */
int pki_leaf_key_spki(const struct pki_leaf_key *k, struct cf_buf *out, char *errmsg);
/* The private key as response text, as pki_key_to_text. */
int pki_leaf_key_text(const struct pki_leaf_key *k,
                      enum pki_key_format fmt,
                      bool pem,
                      char **out,
                      char *errmsg);
/* Cleanses the key and frees what it owns; NULL-safe, idempotent. */
void pki_leaf_key_close(struct pki_leaf_key *k);

#endif
