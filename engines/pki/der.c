/*
 * DER writer (engines/pki/der.h).
 */
#include "engines/pki/der.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

size_t pki_der_header(uint8_t tag, size_t len, uint8_t *out)
{
    out[0] = tag;
    if (len < 0x80) {
        out[1] = (uint8_t)len;
        return 2;
    }
    size_t n = 0;
    for (size_t l = len; l > 0; l >>= 8) {
        n++;
    }
    out[1] = (uint8_t)(0x80 | n);
    for (size_t i = 0; i < n; i++) {
        out[2 + i] = (uint8_t)(len >> (8 * (n - 1 - i)));
    }
    return 2 + n;
}

int pki_der_put(struct cf_buf *out, uint8_t tag, const void *body, size_t len)
{
    uint8_t hdr[16];
    size_t h = pki_der_header(tag, len, hdr);
    int rv = cf_buf_reserve(out, h + len);
    if (rv != CF_OK) {
        return rv;
    }
    memcpy(out->data + out->len, hdr, h);
    if (len > 0) {
        memcpy(out->data + out->len + h, body, len);
    }
    out->len += h + len;
    out->data[out->len] = 0;
    return CF_OK;
}

int pki_der_put_bn(struct cf_buf *out, const BIGNUM *bn)
{
    if (BN_is_negative(bn)) {
        return CF_EINVAL;
    }
    int n = BN_num_bytes(bn);
    size_t len = n == 0 ? 1 : (size_t)n;
    bool pad = n > 0 && BN_num_bits(bn) % 8 == 0; /* top bit set: keep it positive */
    uint8_t hdr[16];
    size_t h = pki_der_header(PKI_DER_INTEGER, len + pad, hdr);
    int rv = cf_buf_reserve(out, h + len + pad);
    if (rv != CF_OK) {
        return rv;
    }
    uint8_t *p = out->data + out->len;
    memcpy(p, hdr, h);
    p += h;
    if (pad) {
        *p++ = 0;
    }
    if (n == 0) {
        *p = 0;
    } else if (BN_bn2bin(bn, p) != n) {
        return CF_ECRYPTO;
    }
    out->len += h + len + pad;
    out->data[out->len] = 0;
    return CF_OK;
}

int pki_der_put_uint(struct cf_buf *out, unsigned v)
{
    uint8_t b[sizeof(v) + 1];
    size_t n = 0;
    uint8_t tmp[sizeof(v)];
    size_t t = 0;
    do {
        tmp[t++] = (uint8_t)(v & 0xff);
        v >>= 8;
    } while (v > 0);
    if (tmp[t - 1] & 0x80) {
        b[n++] = 0;
    }
    while (t > 0) {
        b[n++] = tmp[--t];
    }
    return pki_der_put(out, PKI_DER_INTEGER, b, n);
}

int pki_der_put_oid(struct cf_buf *out, int nid)
{
    const ASN1_OBJECT *o = OBJ_nid2obj(nid);
    size_t len = o != NULL ? OBJ_length(o) : 0;
    const unsigned char *data = o != NULL ? OBJ_get0_data(o) : NULL;
    if (len == 0 || data == NULL) {
        return CF_EINVAL;
    }
    return pki_der_put(out, PKI_DER_OID, data, len);
}

int pki_der_put_bits(struct cf_buf *out, const void *bytes, size_t len)
{
    uint8_t hdr[16];
    size_t h = pki_der_header(PKI_DER_BIT_STRING, len + 1, hdr);
    int rv = cf_buf_reserve(out, h + 1 + len);
    if (rv != CF_OK) {
        return rv;
    }
    uint8_t *p = out->data + out->len;
    memcpy(p, hdr, h);
    p[h] = 0; /* unused bits */
    memcpy(p + h + 1, bytes, len);
    out->len += h + 1 + len;
    out->data[out->len] = 0;
    return CF_OK;
}

int pki_der_open(struct cf_buf *out, uint8_t tag, size_t *mark)
{
    int rv = cf_buf_reserve(out, 2);
    if (rv != CF_OK) {
        return rv;
    }
    *mark = out->len;
    out->data[out->len++] = tag;
    out->data[out->len++] = 0;
    out->data[out->len] = 0;
    return CF_OK;
}

int pki_der_close(struct cf_buf *out, size_t mark)
{
    size_t body = out->len - mark - 2;
    uint8_t hdr[16];
    size_t h = pki_der_header(out->data[mark], body, hdr);
    if (h > 2) {
        int rv = cf_buf_reserve(out, h - 2);
        if (rv != CF_OK) {
            return rv;
        }
        memmove(out->data + mark + h, out->data + mark + 2, body);
        out->len += h - 2;
        out->data[out->len] = 0;
    }
    memcpy(out->data + mark, hdr, h);
    return CF_OK;
}

size_t pki_der_text_cap(size_t len, const char *label)
{
    return 2 * (strlen(label) + 16) + (len + 47) / 48 * 65 + 1;
}

size_t pki_der_text_write(const uint8_t *der, size_t len, const char *label, bool pem, char *out)
{
    size_t cap = pki_der_text_cap(len, label);
    char *p = out;
    if (pem) {
        p += snprintf(p, cap, "-----BEGIN %s-----\n", label);
    }
    for (size_t off = 0; off < len; off += 48) {
        size_t n = len - off < 48 ? len - off : 48;
        p += EVP_EncodeBlock((unsigned char *)p, der + off, (int)n);
        if (pem) {
            *p++ = '\n';
        }
    }
    if (pem) {
        p += snprintf(p, cap - (size_t)(p - out), "-----END %s-----", label);
    }
    *p = '\0';
    return (size_t)(p - out);
}

char *pki_der_to_text(const uint8_t *der, size_t len, const char *label, bool pem)
{
    char *out = cf_malloc(pki_der_text_cap(len, label));
    if (out != NULL) {
        pki_der_text_write(der, len, label, pem, out);
    }
    return out;
}

bool pki_der_next(const uint8_t **p,
                  const uint8_t *end,
                  uint8_t tag,
                  const uint8_t **body,
                  size_t *len)
{
    if (end - *p < 2 || (*p)[0] != tag) {
        return false;
    }
    size_t l = (*p)[1];
    const uint8_t *q = *p + 2;
    if (l & 0x80) {
        size_t k = l & 0x7f;
        if (k == 0 || k > 4 || (size_t)(end - q) < k) {
            return false;
        }
        l = 0;
        for (size_t i = 0; i < k; i++) {
            l = (l << 8) | q[i];
        }
        q += k;
    }
    if ((size_t)(end - q) < l) {
        return false;
    }
    *body = q;
    *len = l;
    *p = q + l;
    return true;
}
