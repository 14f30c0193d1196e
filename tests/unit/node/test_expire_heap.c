/* Unit tests for node/expire_heap.c: items come out in time order whatever order they went in,
 * tokens and leases share one schedule, revoking a token brings only its own leases forward
 * (and marks them forced), clear frees and leaves a usable heap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "node/expire_heap.h"

static void test_order(void **state)
{
    (void)state;
    struct expire_heap h = {0};
    assert_null(node__eheap_peek(&h));
    struct expire_item it;
    assert_false(node__eheap_pop(&h, &it));
    /* A fixed pseudo-random permutation of 0..999 (times), 1000 > the first capacity. */
    for (unsigned i = 0; i < 1000; i++) {
        unsigned t = (i * 617u) % 1000u;
        char key[32];
        snprintf(key, sizeof(key), "k%u", t);
        assert_int_equal(
            node__eheap_push(&h, t % 2 ? EXPIRE_LEASE : EXPIRE_TOKEN, key, NULL, (int64_t)t * 10),
            CF_OK);
    }
    assert_int_equal(h.n, 1000);
    assert_int_equal(node__eheap_count(&h, EXPIRE_LEASE), 500);
    assert_int_equal(node__eheap_count(&h, EXPIRE_TOKEN), 500);
    for (unsigned t = 0; t < 1000; t++) {
        assert_int_equal(node__eheap_peek(&h)->at_ns, (int64_t)t * 10);
        assert_true(node__eheap_pop(&h, &it));
        char key[32];
        snprintf(key, sizeof(key), "k%u", t);
        assert_string_equal(it.key, key);
        assert_int_equal(it.kind, t % 2 ? EXPIRE_LEASE : EXPIRE_TOKEN);
        assert_false(it.forced);
        cf_free(it.key);
    }
    assert_int_equal(h.n, 0);
    node__eheap_clear(&h);
}

static void test_due_token(void **state)
{
    (void)state;
    struct expire_heap h = {0};
    char ta[65];
    char tb[65];
    memset(ta, 'a', 64);
    ta[64] = '\0';
    memset(tb, 'b', 64);
    tb[64] = '\0';
    assert_int_equal(node__eheap_push(&h, EXPIRE_LEASE, "pki/issue/r/1", ta, 5000), CF_OK);
    assert_int_equal(node__eheap_push(&h, EXPIRE_LEASE, "pki/issue/r/2", tb, 1000), CF_OK);
    assert_int_equal(node__eheap_push(&h, EXPIRE_LEASE, "pki/issue/r/3", ta, 9000), CF_OK);
    assert_int_equal(node__eheap_push(&h, EXPIRE_TOKEN, ta, NULL, 7000), CF_OK);
    assert_int_equal(node__eheap_push(&h, EXPIRE_LEASE, "pki/issue/r/4", "", 3000), CF_OK);
    /* The token entry itself (kind token) and other tokens' leases are not touched. */
    assert_int_equal(node__eheap_due_token(&h, ta, 100), 2);
    assert_int_equal(node__eheap_due_token(&h, "", 0), 0);
    assert_int_equal(node__eheap_due_token(&h, NULL, 0), 0);
    assert_int_equal(node__eheap_due_token(&h, "nope", 0), 0);
    struct expire_item it;
    const char *want[] = {"pki/issue/r/1", "pki/issue/r/3", "pki/issue/r/2", "pki/issue/r/4", ta};
    const int64_t at[] = {100, 100, 1000, 3000, 7000};
    const bool forced[] = {true, true, false, false, false};
    for (size_t i = 0; i < 5; i++) {
        assert_true(node__eheap_pop(&h, &it));
        if (i < 2) { /* the two forced ones tie at 100: either order */
            assert_true(strcmp(it.key, want[0]) == 0 || strcmp(it.key, want[1]) == 0);
        } else {
            assert_string_equal(it.key, want[i]);
        }
        assert_int_equal(it.at_ns, at[i]);
        assert_int_equal(it.forced, forced[i]);
        cf_free(it.key);
    }
    /* A time already earlier than the revocation stays. */
    assert_int_equal(node__eheap_push(&h, EXPIRE_LEASE, "x/1", tb, 50), CF_OK);
    assert_int_equal(node__eheap_due_token(&h, tb, 100), 1);
    assert_int_equal(node__eheap_peek(&h)->at_ns, 50);
    assert_true(node__eheap_peek(&h)->forced);
    node__eheap_clear(&h);
    assert_int_equal(h.n, 0);
    assert_null(h.v);
    assert_int_equal(node__eheap_push(&h, EXPIRE_TOKEN, "again", NULL, 1), CF_OK);
    assert_int_equal(h.n, 1);
    node__eheap_clear(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_due_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
