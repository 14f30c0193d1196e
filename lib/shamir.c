/*
 * Shamir secret sharing over GF(2^8) (Vault-compatible; see shamir.h).
 *
 * Field arithmetic is constant time: multiplication is a fixed eight-round shift-and-add with
 * masks instead of branches, and the inverse is a^254 by a fixed chain of squarings, so no
 * table is indexed by secret bytes and no branch depends on them. Splitting evaluates, for each
 * secret byte, a fresh random polynomial of degree threshold-1 at every share's x with Horner's
 * rule; combining computes the Lagrange basis at x = 0 once and then one weighted sum per byte.
 * A 255-of-255 split of 32 bytes costs about 2M multiplications.
 */
#include "lib/shamir.h"

#include <stdbool.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"

/* Product in GF(2^8) modulo x^8+x^4+x^3+x+1; branch-free. */
static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    uint8_t r = 0;
    for (int i = 0; i < 8; i++) {
        r ^= (uint8_t)(-(b & 1) & a);
        uint8_t carry = (uint8_t) - (a >> 7);
        a = (uint8_t)((a << 1) ^ (carry & 0x1b));
        b >>= 1;
    }
    return r;
}

/* Multiplicative inverse as a^254 (a^255 = 1 for a != 0); maps 0 to 0. */
static uint8_t gf_inv(uint8_t a)
{
    uint8_t sq = a;
    uint8_t r = 1;
    for (int i = 0; i < 7; i++) {
        sq = gf_mul(sq, sq);
        r = gf_mul(r, sq);
    }
    return r;
}

/* Uniform integer in [0, bound) for bound in 1..256, by rejection sampling. */
static int random_below(unsigned bound, unsigned *out)
{
    unsigned limit = 256 - 256 % bound;
    for (;;) {
        uint8_t b;
        int rv = cf_random(&b, 1);
        if (rv != CF_OK) {
            return rv;
        }
        if (b < limit) {
            *out = b % bound;
            return CF_OK;
        }
    }
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

int cf_shamir_split(const uint8_t *secret,
                    size_t len,
                    unsigned parts,
                    unsigned threshold,
                    struct cf_secret ***out)
{
    uint8_t xs[CF_SHAMIR_MAX_PARTS];
    uint8_t coef[CF_SHAMIR_MAX_PARTS];
    struct cf_secret **shares = NULL;
    int rv;

    if (len == 0 || len == SIZE_MAX || parts < 2 || parts > CF_SHAMIR_MAX_PARTS || threshold < 2 ||
        threshold > parts) {
        return CF_EINVAL;
    }

    /* x-coordinates: a random permutation of 1..255 (Fisher-Yates), first `parts` used. */
    for (unsigned i = 0; i < CF_SHAMIR_MAX_PARTS; i++) {
        xs[i] = (uint8_t)(i + 1);
    }
    for (unsigned i = CF_SHAMIR_MAX_PARTS - 1; i > 0; i--) {
        unsigned j;
        rv = random_below(i + 1, &j);
        if (rv != CF_OK) {
            goto out;
        }
        uint8_t t = xs[i];
        xs[i] = xs[j];
        xs[j] = t;
    }

    shares = cf_calloc(parts, sizeof(*shares));
    if (shares == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    for (unsigned p = 0; p < parts; p++) {
        shares[p] = cf_secret_new(len + 1);
        if (shares[p] == NULL) {
            rv = CF_ENOMEM;
            goto out;
        }
        shares[p]->data[len] = xs[p];
    }

    /* Per byte: f(x) = secret[b] + coef[0] x + ... + coef[t-2] x^(t-1), by Horner. */
    for (size_t b = 0; b < len; b++) {
        rv = cf_random(coef, threshold - 1);
        if (rv != CF_OK) {
            goto out;
        }
        for (unsigned p = 0; p < parts; p++) {
            uint8_t x = xs[p];
            uint8_t acc = 0;
            for (unsigned k = threshold - 1; k > 0; k--) {
                acc = gf_mul(acc, x) ^ coef[k - 1];
            }
            shares[p]->data[b] = gf_mul(acc, x) ^ secret[b];
        }
    }
    *out = shares;
    shares = NULL;
    rv = CF_OK;
out:
    cf_cleanse(coef, sizeof(coef));
    cf_shamir_free_shares(shares, parts);
    return rv;
}

int cf_shamir_combine(const uint8_t *const *shares,
                      size_t share_len,
                      size_t n,
                      struct cf_secret **out)
{
    uint8_t xs[CF_SHAMIR_MAX_PARTS];
    uint8_t basis[CF_SHAMIR_MAX_PARTS];
    bool seen[256] = {false};

    if (n < 2 || n > CF_SHAMIR_MAX_PARTS || share_len < 2) {
        return CF_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t x = shares[i][share_len - 1];
        if (x == 0 || seen[x]) {
            return CF_EINVAL;
        }
        seen[x] = true;
        xs[i] = x;
    }

    /* Lagrange basis at 0: l_i(0) = prod_{j != i} x_j / (x_j - x_i); minus is XOR here. */
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

    size_t len = share_len - 1;
    struct cf_secret *s = cf_secret_new(len);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    for (size_t b = 0; b < len; b++) {
        uint8_t acc = 0;
        for (size_t i = 0; i < n; i++) {
            acc ^= gf_mul(basis[i], shares[i][b]);
        }
        s->data[b] = acc;
    }
    *out = s;
    return CF_OK;
}
