/* Unit tests for node/keyshares.c: share intake as Vault decodes it (hex, then base64), duplicates,
 * impossible lengths, and split -> combine round trips for the share counts that init, rekey
 * and migration produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crypto.h"
#include "lib/mem.h"
#include "node/internal.h"

static struct cf_secret *random_key(void)
{
    struct cf_secret *k = cf_secret_new(32);
    assert_non_null(k);
    assert_int_equal(cf_random(k->data, k->len), CF_OK);
    return k;
}

static void test_intake(void **state)
{
    (void)state;
    struct node_share_set set;
    memset(&set, 0, sizeof(set));
    assert_int_equal(node__shares_add(&set, "not a share!"), CF_EMALFORMED);
    assert_int_equal(node__shares_add(&set, "AAAA"), CF_EINVAL); /* 3 bytes */
    assert_int_equal(set.n, 0);
    assert_string_equal(set.nonce, "");
    char hex[67];
    memset(hex, 'a', 66);
    hex[66] = '\0';
    assert_int_equal(node__shares_add(&set, hex), CF_OK); /* 33 bytes: a 32-byte key's share */
    assert_int_equal(set.n, 1);
    assert_int_equal(strlen(set.nonce), 36);
    assert_int_equal(node__shares_add(&set, hex), CF_EEXIST);
    /* The same bytes in base64 are the same share. */
    uint8_t raw[33];
    memset(raw, 0xaa, sizeof(raw));
    char *b64 = cf_base64_encode(raw, sizeof(raw));
    assert_int_equal(node__shares_add(&set, b64), CF_EEXIST);
    cf_free(b64);
    assert_int_equal(set.n, 1);
    char big[80];
    memset(big, 'b', 68);
    big[68] = '\0';
    assert_int_equal(node__shares_add(&set, big), CF_EINVAL); /* 34 bytes */
    node__shares_reset(&set);
    assert_int_equal(set.n, 0);
    assert_string_equal(set.nonce, "");
}

static void round_trip(unsigned n, unsigned t)
{
    struct cf_secret *key = random_key();
    json_t *hex = NULL;
    json_t *b64 = NULL;
    assert_int_equal(node__shares_split(key, n, t, &hex, &b64), CF_OK);
    assert_int_equal(json_array_size(hex), n);
    assert_int_equal(json_array_size(b64), n);
    /* Any t of the shares, entered in hex or base64, give the key back; fewer do not. */
    for (unsigned start = 0; start + t <= n; start++) {
        struct node_share_set set;
        memset(&set, 0, sizeof(set));
        for (unsigned i = 0; i < t; i++) {
            json_t *arr = (i % 2) ? b64 : hex;
            assert_int_equal(
                node__shares_add(&set, json_string_value(json_array_get(arr, start + i))), CF_OK);
        }
        struct cf_secret *back = NULL;
        assert_int_equal(node__shares_combine(&set, &back), CF_OK);
        assert_int_equal(back->len, key->len);
        assert_memory_equal(back->data, key->data, key->len);
        cf_secret_free(back);
        if (t > 1) {
            struct node_share_set fewer;
            memset(&fewer, 0, sizeof(fewer));
            for (unsigned i = 0; i + 1 < t; i++) {
                node__shares_add(&fewer, json_string_value(json_array_get(hex, start + i)));
            }
            if (t > 2) {
                assert_int_equal(node__shares_combine(&fewer, &back), CF_OK);
                assert_memory_not_equal(back->data, key->data, key->len);
                cf_secret_free(back);
            }
            node__shares_reset(&fewer);
        }
        node__shares_reset(&set);
    }
    json_decref(hex);
    json_decref(b64);
    cf_secret_free(key);
}

static void test_split_combine(void **state)
{
    (void)state;
    round_trip(1, 1);
    round_trip(3, 2);
    round_trip(5, 3);
    round_trip(10, 10);
}

static void test_mixed_lengths_refused(void **state)
{
    (void)state;
    struct node_share_set set;
    memset(&set, 0, sizeof(set));
    char a[67];
    char b[65];
    memset(a, 'c', 66);
    a[66] = '\0';
    memset(b, 'd', 64);
    b[64] = '\0';
    assert_int_equal(node__shares_add(&set, a), CF_OK);
    assert_int_equal(node__shares_add(&set, b), CF_OK);
    struct cf_secret *out = NULL;
    assert_int_equal(node__shares_combine(&set, &out), CF_EINVAL);
    assert_null(out);
    node__shares_reset(&set);
    assert_int_equal(node__shares_combine(&set, &out), CF_EINVAL);
}

int main(void)
{
    json_set_alloc_funcs(cf_malloc, cf_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intake),
        cmocka_unit_test(test_split_combine),
        cmocka_unit_test(test_mixed_lengths_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
