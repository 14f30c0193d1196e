/*
 * Unit tests for lib/json.c: cf_json_dump writes exactly json_dumps(JSON_COMPACT)'s bytes for
 * hand-picked values (escapes, control bytes, UTF-8, reals, integer extremes, empty and nested
 * containers, keys that need escaping) and for thousands of random trees; too-deep nesting is
 * refused; allocation failures are reported and leak nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/mem.h"

static void same_as_jansson(const json_t *j)
{
    char *ref = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(ref);
    size_t n = 0;
    char *ours = cf_json_dumps(j, &n);
    assert_non_null(ours);
    if (n != strlen(ref) || strcmp(ours, ref) != 0) {
        fail_msg("cf_json_dump wrote %s, json_dumps %s", ours, ref);
    }
    cf_free(ours);
    cf_free(ref);
}

static void test_fixed_values(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "null",
        "true",
        "false",
        "0",
        "-9223372036854775808",
        "9223372036854775807",
        "\"\"",
        "\"plain text\"",
        "\"quote \\\" backslash \\\\ slash / end\"",
        "\"\\b\\f\\n\\r\\t \\u0001 \\u001f \\u007f\"",
        "\"caf\\u00e9 \\u2028 \\ud83d\\ude00 \xe6\x97\xa5\"",
        "[]",
        "{}",
        "[[],{},[{}],{\"a\":[]}]",
        "{\"k\\\"ey\":1,\"b\":[true,false,null],\"\\n\":{\"x\":\"y\"}}",
        "[1.5,0.1,-2.0,1e300,1e-300,123456789012345678.0,3.0e20,2.5e-5,0.0]",
        "{\"z\":1,\"a\":2,\"m\":3}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_error_t e;
        json_t *j = json_loads(texts[i], JSON_DECODE_ANY, &e);
        if (j == NULL) {
            fail_msg("parse %s: %s", texts[i], e.text);
        }
        same_as_jansson(j);
        json_decref(j);
    }
    /* A string with an embedded NUL and a key with one. */
    json_t *o = json_object();
    json_object_setn_new(o, "a\0b", 3, json_stringn("x\0y", 3));
    same_as_jansson(o);
    json_decref(o);
}

static unsigned long rng = 12345;
static unsigned next(unsigned mod)
{
    rng = rng * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned)((rng >> 33) % mod);
}

static json_t *random_value(int depth)
{
    unsigned kind = depth > 4 ? next(5) : next(7);
    switch (kind) {
        case 0:
            return json_null();
        case 1:
            return json_boolean(next(2));
        case 2:
            return json_integer((json_int_t)next(1u << 31) * (next(2) ? -1 : 1) *
                                (json_int_t)next(100000));
        case 3:
            return json_real((double)next(1u << 30) / (double)(next(1000) + 1) *
                             (next(2) ? 1e-10 : 1e10));
        case 4: {
            char s[64];
            size_t n = next(sizeof(s));
            for (size_t i = 0; i < n; i++) {
                s[i] = (char)(next(3) == 0 ? next(0x20) + 1 : next(0x5f) + 0x20);
            }
            return json_stringn(s, n);
        }
        case 5: {
            json_t *a = json_array();
            unsigned n = next(5);
            for (unsigned i = 0; i < n; i++) {
                json_array_append_new(a, random_value(depth + 1));
            }
            return a;
        }
        default: {
            json_t *o = json_object();
            unsigned n = next(5);
            for (unsigned i = 0; i < n; i++) {
                char k[16];
                snprintf(k, sizeof(k), "k%u\t%u", next(1000), i);
                json_object_set_new(o, k, random_value(depth + 1));
            }
            return o;
        }
    }
}

static void test_random_trees(void **state)
{
    (void)state;
    for (int i = 0; i < 3000; i++) {
        json_t *j = random_value(0);
        same_as_jansson(j);
        json_decref(j);
    }
}

/* Long plain runs (the dumper scans them eight bytes at a time) with one byte that needs
 * escaping at every position, beside DEL and ASCII that do not. */
static void test_escape_positions(void **state)
{
    (void)state;
    static const char specials[] = {'"', '\\', '\n', '\0', 0x01, 0x1f, '\t'};
    static const char plain[] = "Ab/~ \x7fzZ09-_.:=+";
    char s[48];
    for (size_t k = 0; k < sizeof(specials); k++) {
        for (size_t pos = 0; pos < sizeof(s); pos++) {
            for (size_t i = 0; i < sizeof(s); i++) {
                s[i] = plain[i % (sizeof(plain) - 1)];
            }
            s[pos] = specials[k];
            json_t *j = json_stringn(s, sizeof(s));
            assert_non_null(j);
            same_as_jansson(j);
            json_decref(j);
        }
    }
}

static void test_too_deep(void **state)
{
    (void)state;
    json_t *root = json_array();
    json_t *cur = root;
    for (int i = 0; i < 2100; i++) {
        json_t *a = json_array();
        json_array_append_new(cur, a);
        cur = a;
    }
    struct cf_buf b;
    cf_buf_init(&b);
    assert_int_equal(cf_json_dump(root, &b), CF_EINVAL);
    cf_buf_close(&b);
    size_t n = 1;
    assert_null(cf_json_dumps(root, &n));
    json_decref(root);
    assert_null(cf_json_dumps(NULL, &n));
}

static void test_alloc_failures(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:s,s:[i,i,{s:s}]}", "certificate", "-----BEGIN-----\nAAAA\n", "list",
                          1, 2, "x", "\"y\"");
    for (unsigned long n = 1;; n++) {
        long live = cf_mem_live();
        cf_mem_fail_after(n);
        size_t len = 0;
        char *s = cf_json_dumps(j, &len);
        cf_mem_fail_after(0);
        if (s != NULL) {
            cf_free(s);
            assert_int_equal(cf_mem_live(), live);
            break;
        }
        assert_int_equal(cf_mem_live(), live);
    }
    json_decref(j);
}

int main(void)
{
    json_set_alloc_funcs(cf_malloc, cf_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_values),     cmocka_unit_test(test_random_trees),
        cmocka_unit_test(test_escape_positions), cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
