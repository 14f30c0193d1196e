/*
 * Shamir secret sharing over GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1 (0x11b), laid out
 * as Vault lays out its shares: for a secret of n bytes a share is n+1 bytes, the y-values of
 * n independent random polynomials (one per secret byte, the byte as intercept) followed by
 * the share's x-coordinate. x-coordinates are distinct, non-zero and drawn in random order.
 *
 * Arithmetic is constant time: multiplication is a fixed 8-round shift-and-add with masks (no
 * tables indexed by secret data), and the inverse is a^254.
 */
#include "lib/shamir.h"

#include <string.h>

#include "lib/crypto.h"
#include "lib/err.h"

static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    uint8_t r = 0;
    for (int i = 0; i < 8; i++) {
        r ^= (uint8_t)(-(b & 1) & a);
        uint8_t hi = (uint8_t) - (a >> 7);
        a = (uint8_t)((a << 1) ^ (hi & 0x1b));
        b >>= 1;
    }
    return r;
}

static uint8_t gf_inv(uint8_t a)
{
    /* a^254 = a^-1 for a != 0 (and 0 for 0). */
    uint8_t r = 1;
    uint8_t p = a;
    for (int e = 254; e > 0; e >>= 1) {
        uint8_t m = (uint8_t) - (e & 1);
        uint8_t t = gf_mul(r, p);
        r = (uint8_t)((t & m) | (r & ~m));
        p = gf_mul(p, p);
    }
    return r;
}

void cf_shamir_free_shares(struct cf_secret **shares, unsigned parts)
{
    if (shares == NULL) {
        return;
    }
    for (unsigned i = 0; i < parts; i++) {
        cf_secret_free(shares[i]);
    }
    cf_free(shares);
}

/* A random permutation of 1..255 (Fisher-Yates with rejection sampling). */
static int random_xs(uint8_t xs[255])
{
    for (int i = 0; i < 255; i++) {
        xs[i] = (uint8_t)(i + 1);
    }
    for (int i = 254; i > 0; i--) {
        uint8_t r;
        unsigned limit = 256 - 256 % (unsigned)(i + 1);
        do {
            if (cf_random(&r, 1) != CF_OK) {
                return CF_ECRYPTO;
            }
        } while (r >= limit);
        int j = r % (i + 1);
        uint8_t t = xs[i];
        xs[i] = xs[j];
        xs[j] = t;
    }
    return CF_OK;
}

int cf_shamir_split(const uint8_t *secret,
                    size_t len,
                    unsigned parts,
                    unsigned threshold,
                    struct cf_secret ***out)
{
    if (len == 0 || parts < 2 || parts > 255 || threshold < 2 || threshold > parts) {
        return CF_EINVAL;
    }
    uint8_t xs[255];
    int rv = random_xs(xs);
    if (rv != CF_OK) {
        return rv;
    }
    struct cf_secret **shares = cf_calloc(parts, sizeof(*shares));
    struct cf_secret *coeffs = cf_secret_new(threshold);
    if (shares == NULL || coeffs == NULL) {
        cf_free(shares);
        cf_secret_free(coeffs);
        return CF_ENOMEM;
    }
    for (unsigned i = 0; i < parts; i++) {
        shares[i] = cf_secret_new(len + 1);
        if (shares[i] == NULL) {
            rv = CF_ENOMEM;
            goto out;
        }
        shares[i]->data[len] = xs[i];
    }
    for (size_t b = 0; b < len; b++) {
        coeffs->data[0] = secret[b];
        rv = cf_random(coeffs->data + 1, threshold - 1);
        if (rv != CF_OK) {
            goto out;
        }
        for (unsigned i = 0; i < parts; i++) {
            /* Horner: ((c[t-1] x + c[t-2]) x + ...) x + c[0] */
            uint8_t x = xs[i];
            uint8_t y = coeffs->data[threshold - 1];
            for (unsigned k = threshold - 1; k > 0; k--) {
                y = gf_mul(y, x) ^ coeffs->data[k - 1];
            }
            shares[i]->data[b] = y;
        }
    }
out:
    cf_secret_free(coeffs);
    if (rv != CF_OK) {
        cf_shamir_free_shares(shares, parts);
        return rv;
    }
    *out = shares;
    return CF_OK;
}

int cf_shamir_combine(const uint8_t *const *shares,
                      size_t share_len,
                      size_t n,
                      struct cf_secret **out)
{
    if (n < 2 || n > 255 || share_len < 2) {
        return CF_EINVAL;
    }
    size_t len = share_len - 1;
    uint8_t xs[255];
    for (size_t i = 0; i < n; i++) {
        xs[i] = shares[i][len];
        if (xs[i] == 0) {
            return CF_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (xs[j] == xs[i]) {
                return CF_EINVAL;
            }
        }
    }
    /* Lagrange basis at x = 0: l_i = prod_{j != i} x_j / (x_i + x_j). */
    uint8_t basis[255];
    for (size_t i = 0; i < n; i++) {
        uint8_t num = 1;
        uint8_t den = 1;
        for (size_t j = 0; j < n; j++) {
            if (j != i) {
                num = gf_mul(num, xs[j]);
                den = gf_mul(den, xs[i] ^ xs[j]);
            }
        }
        basis[i] = gf_mul(num, gf_inv(den));
    }
    struct cf_secret *s = cf_secret_new(len);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    for (size_t b = 0; b < len; b++) {
        uint8_t acc = 0;
        for (size_t i = 0; i < n; i++) {
            acc ^= gf_mul(shares[i][b], basis[i]);
        }
        s->data[b] = acc;
    }
    *out = s;
    return CF_OK;
}
