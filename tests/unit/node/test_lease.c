/* Unit tests for node/lease.c: the stored form of a lease (encode -> decode round trip, the
 * fields Vault-style tools read, refusal of entries missing or mistyping a field) and lease id
 * checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/mem.h"
#include "node/lease.h"

static void fill(struct node_lease *l)
{
    memset(l, 0, sizeof(*l));
    l->lease_id = cf_strdup("pki/issue/web/0b4e8a52-9d1f-4c0e-8f3a-2d6b1c7e9a10");
    l->path = cf_strdup("pki/issue/web");
    l->mount = cf_strdup("pki/");
    snprintf(l->mount_uuid, sizeof(l->mount_uuid), "%s", "5f0c2a9e-1b7d-4e3a-9c8f-0a1b2c3d4e5f");
    l->issue_ns = 1700000000123456789LL;
    l->expire_ns = 1700000003123456789LL;
    memset(l->token_hash, 'a', 64);
    l->secret = json_pack("{s:s}", "serial_number", "1a:2b:3c");
    assert_non_null(l->lease_id);
    assert_non_null(l->secret);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct node_lease l;
    fill(&l);
    json_t *j = node__lease_encode(&l);
    assert_non_null(j);
    /* The stored field names of the brief's format. */
    assert_string_equal(json_string_value(json_object_get(j, "lease_id")), l.lease_id);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "pki/issue/web");
    assert_string_equal(json_string_value(json_object_get(j, "mount")), "pki/");
    assert_true(json_is_false(json_object_get(j, "renewable")));
    assert_int_equal(json_integer_value(json_object_get(j, "expire_time")), l.expire_ns);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "secret"), "serial_number")),
        "1a:2b:3c");

    struct node_lease back;
    assert_int_equal(node__lease_decode(j, &back), CF_OK);
    assert_string_equal(back.lease_id, l.lease_id);
    assert_string_equal(back.path, l.path);
    assert_string_equal(back.mount, l.mount);
    assert_string_equal(back.mount_uuid, l.mount_uuid);
    assert_int_equal(back.issue_ns, l.issue_ns);
    assert_int_equal(back.expire_ns, l.expire_ns);
    assert_false(back.renewable);
    assert_string_equal(back.token_hash, l.token_hash);
    assert_true(json_equal(back.secret, l.secret));
    /* The decoded secret is a copy: the stored JSON can go. */
    json_decref(j);
    assert_string_equal(json_string_value(json_object_get(back.secret, "serial_number")),
                        "1a:2b:3c");
    node__lease_clear(&back);
    node__lease_clear(&l);
    assert_null(l.lease_id);
    node__lease_clear(NULL);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    struct node_lease l;
    fill(&l);
    json_t *good = node__lease_encode(&l);
    assert_non_null(good);
    static const char *const fields[] = {"lease_id",    "path",      "mount",      "issue_time",
                                         "expire_time", "renewable", "token_hash", "secret"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *j = json_deep_copy(good);
        json_object_del(j, fields[i]);
        struct node_lease out;
        assert_int_equal(node__lease_decode(j, &out), CF_EINVAL);
        assert_null(out.lease_id);
        json_object_set_new(j, fields[i], json_string("x")); /* wrong type for most */
        int rv = node__lease_decode(j, &out);
        if (i < 3) { /* strings: "x" is a valid value */
            assert_int_equal(rv, CF_OK);
            node__lease_clear(&out);
        } else if (strcmp(fields[i], "token_hash") == 0) {
            assert_int_equal(rv, CF_OK);
            node__lease_clear(&out);
        } else {
            assert_int_equal(rv, CF_EINVAL);
        }
        json_decref(j);
    }
    /* Entries written without mount_uuid are read with "". */
    json_t *old = json_deep_copy(good);
    json_object_del(old, "mount_uuid");
    struct node_lease o;
    assert_int_equal(node__lease_decode(old, &o), CF_OK);
    assert_string_equal(o.mount_uuid, "");
    node__lease_clear(&o);
    json_decref(old);
    json_t *bad = json_deep_copy(good);
    json_object_set_new(bad, "lease_id", json_string("../core/keyring"));
    struct node_lease out;
    assert_int_equal(node__lease_decode(bad, &out), CF_EINVAL);
    json_decref(bad);
    assert_int_equal(node__lease_decode(json_null(), &out), CF_EINVAL);
    json_decref(good);
    node__lease_clear(&l);
}

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(node__lease_id_valid("pki/issue/web/abc"));
    assert_true(node__lease_id_valid("x"));
    assert_false(node__lease_id_valid(NULL));
    assert_false(node__lease_id_valid(""));
    assert_false(node__lease_id_valid("/pki/issue"));
    assert_false(node__lease_id_valid("pki/issue/"));
    assert_false(node__lease_id_valid("pki//issue"));
    assert_false(node__lease_id_valid("pki/../core"));
    assert_false(node__lease_id_valid("pki/./x"));
    assert_false(node__lease_id_valid(".."));
    assert_false(node__lease_id_valid("a\nb"));
    assert_true(node__lease_id_valid("pki/a..b"));
    char big[LEASE_ID_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(node__lease_id_valid(big));
    big[LEASE_ID_MAX] = '\0';
    assert_true(node__lease_id_valid(big));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_id_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
