/*
 * Unit tests for lib/shamir.c: split/combine round trips over sizes and thresholds, every
 * subset, parameter validation, allocation-failure cleanup, and combine against known vectors
 * computed by an independent reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/shamir.h"

/* Splits, checks shape (lengths, distinct non-zero x), combines the first `threshold` shares
 * and all shares, and returns the shares for further checks. */
static struct cf_secret **split_checked(const uint8_t *secret,
                                        size_t len,
                                        unsigned parts,
                                        unsigned threshold)
{
    struct cf_secret **shares = NULL;
    assert_int_equal(cf_shamir_split(secret, len, parts, threshold, &shares), CF_OK);
    bool seen[256] = {false};
    for (unsigned i = 0; i < parts; i++) {
        assert_int_equal(shares[i]->len, len + 1);
        uint8_t x = shares[i]->data[len];
        assert_int_not_equal(x, 0);
        assert_false(seen[x]);
        seen[x] = true;
    }
    const uint8_t *ptrs[CF_SHAMIR_MAX_PARTS];
    for (unsigned i = 0; i < parts; i++) {
        ptrs[i] = shares[i]->data;
    }
    struct cf_secret *got = NULL;
    assert_int_equal(cf_shamir_combine(ptrs, len + 1, threshold, &got), CF_OK);
    assert_int_equal(got->len, len);
    assert_memory_equal(got->data, secret, len);
    cf_secret_free(got);
    assert_int_equal(cf_shamir_combine(ptrs + (parts - threshold), len + 1, threshold, &got),
                     CF_OK);
    assert_memory_equal(got->data, secret, len);
    cf_secret_free(got);
    assert_int_equal(cf_shamir_combine(ptrs, len + 1, parts, &got), CF_OK);
    assert_memory_equal(got->data, secret, len);
    cf_secret_free(got);
    return shares;
}

static void test_round_trip_sizes(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 2, 15, 16, 32, 33, 100};
    static const unsigned pt[][2] = {{2, 2}, {3, 2}, {5, 3}, {10, 10}, {20, 7}, {255, 2}};
    uint8_t secret[100];
    long live = cf_mem_live();
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        for (size_t k = 0; k < sizeof(pt) / sizeof(pt[0]); k++) {
            assert_int_equal(cf_random(secret, lens[l]), CF_OK);
            struct cf_secret **shares = split_checked(secret, lens[l], pt[k][0], pt[k][1]);
            cf_shamir_free_shares(shares, pt[k][0]);
        }
    }
    assert_int_equal(cf_mem_live(), live);
}

static void test_255_of_255(void **state)
{
    (void)state;
    uint8_t secret[4] = {0xde, 0xad, 0xbe, 0xef};
    struct cf_secret **shares = split_checked(secret, sizeof(secret), 255, 255);
    /* All 255 x-coordinates are used: a permutation of 1..255. */
    bool seen[256] = {false};
    for (unsigned i = 0; i < 255; i++) {
        seen[shares[i]->data[4]] = true;
    }
    for (unsigned x = 1; x < 256; x++) {
        assert_true(seen[x]);
    }
    /* 254 of them are not enough. */
    const uint8_t *ptrs[255];
    for (unsigned i = 0; i < 255; i++) {
        ptrs[i] = shares[i]->data;
    }
    struct cf_secret *got = NULL;
    assert_int_equal(cf_shamir_combine(ptrs, 5, 254, &got), CF_OK);
    assert_memory_not_equal(got->data, secret, 4);
    cf_secret_free(got);
    cf_shamir_free_shares(shares, 255);
}

static void test_x_order_is_random(void **state)
{
    (void)state;
    uint8_t secret[1] = {7};
    int sequential = 0;
    for (int round = 0; round < 8; round++) {
        struct cf_secret **shares = NULL;
        assert_int_equal(cf_shamir_split(secret, 1, 5, 2, &shares), CF_OK);
        bool seq = true;
        for (unsigned i = 0; i < 5; i++) {
            seq = seq && shares[i]->data[1] == i + 1;
        }
        sequential += seq;
        cf_shamir_free_shares(shares, 5);
    }
    assert_true(sequential < 8);
}

static void test_every_subset(void **state)
{
    (void)state;
    uint8_t secret[32];
    assert_int_equal(cf_random(secret, sizeof(secret)), CF_OK);
    const unsigned parts = 6;
    const unsigned threshold = 3;
    struct cf_secret **shares = NULL;
    assert_int_equal(cf_shamir_split(secret, sizeof(secret), parts, threshold, &shares), CF_OK);
    for (unsigned mask = 1; mask < (1u << parts); mask++) {
        const uint8_t *ptrs[6];
        size_t n = 0;
        /* Reverse order on odd masks: order must not matter. */
        for (unsigned i = 0; i < parts; i++) {
            unsigned bit = (mask & 1) ? parts - 1 - i : i;
            if (mask & (1u << bit)) {
                ptrs[n++] = shares[bit]->data;
            }
        }
        struct cf_secret *got = NULL;
        if (n < 2) {
            assert_int_equal(cf_shamir_combine(ptrs, sizeof(secret) + 1, n, &got), CF_EINVAL);
            continue;
        }
        assert_int_equal(cf_shamir_combine(ptrs, sizeof(secret) + 1, n, &got), CF_OK);
        if (n >= threshold) {
            assert_memory_equal(got->data, secret, sizeof(secret));
        } else {
            assert_memory_not_equal(got->data, secret, sizeof(secret));
        }
        cf_secret_free(got);
    }
    cf_shamir_free_shares(shares, parts);
}

static void test_split_bad_params(void **state)
{
    (void)state;
    uint8_t secret[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct cf_secret **shares = NULL;
    long live = cf_mem_live();
    assert_int_equal(cf_shamir_split(secret, 0, 3, 2, &shares), CF_EINVAL);
    assert_int_equal(cf_shamir_split(secret, 8, 3, 4, &shares), CF_EINVAL);
    assert_int_equal(cf_shamir_split(secret, 8, 3, 1, &shares), CF_EINVAL);
    assert_int_equal(cf_shamir_split(secret, 8, 3, 0, &shares), CF_EINVAL);
    assert_int_equal(cf_shamir_split(secret, 8, 1, 1, &shares), CF_EINVAL);
    assert_int_equal(cf_shamir_split(secret, 8, 0, 0, &shares), CF_EINVAL);
    assert_int_equal(cf_shamir_split(secret, 8, 256, 2, &shares), CF_EINVAL);
    assert_int_equal(cf_shamir_split(secret, 8, 256, 256, &shares), CF_EINVAL);
    assert_null(shares);
    assert_int_equal(cf_mem_live(), live);
}

static void test_combine_bad_input(void **state)
{
    (void)state;
    uint8_t a[3] = {1, 2, 5};
    uint8_t b[3] = {3, 4, 5};
    uint8_t c[3] = {3, 4, 6};
    uint8_t z[3] = {3, 4, 0};
    struct cf_secret *got = NULL;
    const uint8_t *dup[2] = {a, b};
    assert_int_equal(cf_shamir_combine(dup, 3, 2, &got), CF_EINVAL);
    const uint8_t *zero[2] = {a, z};
    assert_int_equal(cf_shamir_combine(zero, 3, 2, &got), CF_EINVAL);
    const uint8_t *one[1] = {a};
    assert_int_equal(cf_shamir_combine(one, 3, 1, &got), CF_EINVAL);
    const uint8_t *ok[2] = {a, c};
    assert_int_equal(cf_shamir_combine(ok, 1, 2, &got), CF_EINVAL);
    assert_int_equal(cf_shamir_combine(ok, 0, 2, &got), CF_EINVAL);
    assert_null(got);
    /* More shares than distinct non-zero x-coordinates exist. */
    const uint8_t *many[256];
    for (int i = 0; i < 256; i++) {
        many[i] = (i % 2) ? a : c;
    }
    assert_int_equal(cf_shamir_combine(many, 3, 256, &got), CF_EINVAL);
    /* Duplicate x anywhere in a larger set. */
    const uint8_t *three[3] = {a, c, b};
    assert_int_equal(cf_shamir_combine(three, 3, 3, &got), CF_EINVAL);
    assert_null(got);
    /* The same two shares with distinct x are accepted. */
    assert_int_equal(cf_shamir_combine(ok, 3, 2, &got), CF_OK);
    assert_int_equal(got->len, 2);
    cf_secret_free(got);
}

static void test_split_fault_injection(void **state)
{
    (void)state;
    uint8_t secret[16] = {0};
    long live = cf_mem_live();
    int rv = CF_ENOMEM;
    unsigned long n;
    for (n = 1; n < 100 && rv != CF_OK; n++) {
        struct cf_secret **shares = NULL;
        cf_mem_fail_after(n);
        rv = cf_shamir_split(secret, sizeof(secret), 5, 3, &shares);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            cf_shamir_free_shares(shares, 5);
        } else {
            assert_int_equal(rv, CF_ENOMEM);
            assert_null(shares);
        }
        assert_int_equal(cf_mem_live(), live);
    }
    assert_int_equal(rv, CF_OK);
    assert_true(n > 5);
}

/*
 * Known vectors. They were computed by a separate Python reference written for this test (not
 * part of the tree): GF(2^8) modulo 0x11b with log/exp tables over generator 3 (so a different
 * multiply from the bitwise one under test, itself checked against FIPS-197's {57}*{83} = {c1}),
 * fixed polynomials f_b(x) = secret[b] + c_1 x + ... + c_{t-1} x^{t-1} evaluated at the listed
 * x-coordinates, each share written as y-bytes || x. Coefficients: v1 c_k = 0x10 + 7b + k;
 * v2 c_k = 0xa5 ^ (31b + 17k); v3 c_k = b*b + 13k + 0x5c (all mod 256).
 */
struct known_vector
{
    const char *secret; /* hex */
    unsigned threshold;
    unsigned parts;
    const char *shares[7]; /* hex, y || x */
};

static const struct known_vector known[] = {
    /* "hello", threshold 2, x = 1, 2, 3 */
    {"68656c6c6f", 2, 3, {"797d734a4201", "4a5552203502", "5b4d4d061803"}},
    /* 00..0f, threshold 3, x = 0x35, 0x01, 0xff, 0x80, 0x7a */
    {"000102030405060708090a0b0c0d0e0f",
     3,
     5,
     {"748ccd0db4a4c350e1f125ab120265f635", "33702d12171411161b18151a1f1c191e01",
      "35d6e600bff0bcbf0847b22996d99596ff", "01cf6f716f36b5b2a4fd12a9b7ee6d6a80",
      "49c9c56dfa6d6aab34a35934a33433f27a"}},
    /* "coffer-known-vector-32-bytes!!!!", threshold 5, x = 200, 9, 77, 150, 3, 254, 42 */
    {"636f666665722d6b6e6f776e2d766563746f722d33322d627974657321212121",
     5,
     7,
     {"85a1a587081b08ce55498a81ebdad03892476cf2f57b7b2742dceb694c1d4999c8",
      "eb71926cbc8843bb8b80559b6c7e6433fcebebf17255972d9cae935df8464dca09",
      "8f41ca4de507352a7905d0edc88c572398f5250dd670ef206e9118dca1f1e8914d",
      "d1f5ba10673c8d920964992ab3e0f057c6897b69ade65f481e8159ef238261f296",
      "eedea32728c8734094df73d7d41863a7f945c0adca3d9d13835d8f276c17505303",
      "a44b9e7ebc9cefc591aeab09c868995fb371b211d66ecd5886dd9bbff801e501fe",
      "637a6e439b2c1069321f0ddd5de8bf8a744f267a43b9d98925c0d6e4df58a7e62a"}},
};

static void test_known_vectors(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof(known) / sizeof(known[0]); v++) {
        const struct known_vector *kv = &known[v];
        uint8_t secret[64];
        size_t slen = 0;
        assert_int_equal(
            cf_hex_decode(kv->secret, strlen(kv->secret), secret, sizeof(secret), &slen), CF_OK);
        uint8_t sh[7][65];
        const uint8_t *ptrs[7];
        for (unsigned i = 0; i < kv->parts; i++) {
            size_t n = 0;
            assert_int_equal(
                cf_hex_decode(kv->shares[i], strlen(kv->shares[i]), sh[i], sizeof(sh[i]), &n),
                CF_OK);
            assert_int_equal(n, slen + 1);
            ptrs[i] = sh[i];
        }
        /* Every window of `threshold` consecutive shares, and all of them, give the secret. */
        for (unsigned start = 0; start + kv->threshold <= kv->parts; start++) {
            struct cf_secret *got = NULL;
            assert_int_equal(cf_shamir_combine(ptrs + start, slen + 1, kv->threshold, &got), CF_OK);
            assert_int_equal(got->len, slen);
            assert_memory_equal(got->data, secret, slen);
            cf_secret_free(got);
        }
        struct cf_secret *got = NULL;
        assert_int_equal(cf_shamir_combine(ptrs, slen + 1, kv->parts, &got), CF_OK);
        assert_memory_equal(got->data, secret, slen);
        cf_secret_free(got);
        if (kv->threshold > 2) {
            assert_int_equal(cf_shamir_combine(ptrs, slen + 1, kv->threshold - 1, &got), CF_OK);
            assert_memory_not_equal(got->data, secret, slen);
            cf_secret_free(got);
        }
        /* One flipped y-byte in one share changes that byte of the result. */
        sh[0][0] ^= 1;
        assert_int_equal(cf_shamir_combine(ptrs, slen + 1, kv->threshold, &got), CF_OK);
        assert_memory_not_equal(got->data, secret, slen);
        assert_memory_equal(got->data + 1, secret + 1, slen - 1);
        cf_secret_free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_sizes),      cmocka_unit_test(test_255_of_255),
        cmocka_unit_test(test_x_order_is_random),     cmocka_unit_test(test_every_subset),
        cmocka_unit_test(test_split_bad_params),      cmocka_unit_test(test_combine_bad_input),
        cmocka_unit_test(test_split_fault_injection), cmocka_unit_test(test_known_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
