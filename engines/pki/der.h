/*
 * A small DER writer for the structures the PKI engine encodes by hand on hot paths (CRL
 * entries, SubjectPublicKeyInfo bit strings, private keys in SEC1, PKCS#1 and PKCS#8).
 * OpenSSL 3 encodes keys through its provider encoder/decoder machinery, which costs more
 * than the signature itself; the structures here are fixed and small, so writing them
 * directly is both faster and easy to check against OpenSSL's own output (the unit tests do).
 *
 * pki_der_next reads one element back (for the few fixed structures parsed by hand).
 *
 * Every writer appends to a struct cf_buf and returns CF_OK or CF_ENOMEM/CF_ETOOBIG; on error
 * the buffer holds a partial element and the caller discards it.
 */
#ifndef CF_ENGINES_PKI_DER_H_
#define CF_ENGINES_PKI_DER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

struct cf_buf;

/* DER tags used here. */
#define PKI_DER_INTEGER 0x02
#define PKI_DER_BIT_STRING 0x03
#define PKI_DER_OCTET_STRING 0x04
#define PKI_DER_NULL 0x05
#define PKI_DER_OID 0x06
#define PKI_DER_BOOLEAN 0x01
#define PKI_DER_UTF8STRING 0x0c
#define PKI_DER_PRINTABLESTRING 0x13
#define PKI_DER_UTCTIME 0x17
#define PKI_DER_GENERALIZEDTIME 0x18
#define PKI_DER_SEQUENCE 0x30
#define PKI_DER_SET 0x31
#define PKI_DER_CONTEXT(n) (0xa0 | (n))  /* [n] constructed */
#define PKI_DER_IMPLICIT(n) (0x80 | (n)) /* [n] primitive */

/* Writes a tag and a definite length into out (at most 10 bytes); returns the bytes written. */
size_t pki_der_header(uint8_t tag, size_t len, uint8_t *out);

/* Appends tag, length and body. */
int pki_der_put(struct cf_buf *out, uint8_t tag, const void *body, size_t len);

/* Appends an INTEGER holding the non-negative bn (a leading zero byte when its top bit is set). */
int pki_der_put_bn(struct cf_buf *out, const BIGNUM *bn);

/* Appends an INTEGER holding v. */
int pki_der_put_uint(struct cf_buf *out, unsigned v);

/* Appends the OBJECT IDENTIFIER of nid; CF_EINVAL for a nid without an OID. */
int pki_der_put_oid(struct cf_buf *out, int nid);

/* Appends a BIT STRING with no unused bits holding bytes. */
int pki_der_put_bits(struct cf_buf *out, const void *bytes, size_t len);

/* Reads one element of @tag at *p (definite length, at most 4 length bytes) and moves *p past
 * it; false when the bytes up to @end do not hold one. */
bool pki_der_next(const uint8_t **p,
                  const uint8_t *end,
                  uint8_t tag,
                  const uint8_t **body,
                  size_t *len);

/* Opens a constructed element: appends @tag and room for a short length, and stores in *mark
 * where it starts. Close it with pki_der_close once its contents are appended. */
int pki_der_open(struct cf_buf *out, uint8_t tag, size_t *mark);

/* Closes the element opened at @mark: writes its length, moving the contents when the length
 * needs more than one byte. */
int pki_der_close(struct cf_buf *out, size_t mark);

/* The DER as text (cf_malloc'd, NUL-terminated, NULL on OOM): Go's pem.EncodeToMemory layout
 * of 64 columns under "-----BEGIN @label-----", without the final newline, when @pem (as
 * Vault returns certificates and keys); else plain base64. */
char *pki_der_to_text(const uint8_t *der, size_t len, const char *label, bool pem);
/* The same into a caller's buffer of pki_der_text_cap bytes (locked memory for keys); returns
 * the text's length. */
size_t pki_der_text_cap(size_t len, const char *label);
size_t pki_der_text_write(const uint8_t *der, size_t len, const char *label, bool pem, char *out);

#endif
