/* Unit tests for engines/pki/field.c: Vault's request field typing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engines/pki/field.h"

static json_t *data;
static char errmsg[CF_ERRMSG_SIZE];

static int setup(void **state)
{
    (void)state;
    data = json_loads(
        "{\"bt\":true,\"bs\":\"false\",\"b1\":\"1\",\"bx\":\"maybe\",\"n\":null,"
        "\"i\":42,\"is\":\"-7\",\"ix\":\"4x\",\"l\":\" a, b ,,c \",\"la\":[\"x\","
        "\" y \"],\"lx\":[1],\"d\":\"72h\",\"dx\":\"soon\",\"s\":\"str\"}",
        0, NULL);
    return data ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(data);
    return 0;
}

static void test_bools(void **state)
{
    (void)state;
    bool b = false;
    assert_int_equal(pki_field_bool(data, "bt", &b, errmsg), CF_OK);
    assert_true(b);
    assert_int_equal(pki_field_bool(data, "bs", &b, errmsg), CF_OK);
    assert_false(b);
    assert_int_equal(pki_field_bool(data, "b1", &b, errmsg), CF_OK);
    assert_true(b);
    assert_int_equal(pki_field_bool(data, "bx", &b, errmsg), CF_EINVAL);
    assert_non_null(strstr(errmsg, "\"bx\""));
    assert_int_equal(pki_field_bool(data, "n", &b, errmsg), CF_ENOTFOUND);
    assert_int_equal(pki_field_bool(data, "absent", &b, errmsg), CF_ENOTFOUND);
}

static void test_ints_and_strings(void **state)
{
    (void)state;
    int64_t i = 0;
    assert_int_equal(pki_field_int(data, "i", &i, errmsg), CF_OK);
    assert_int_equal(i, 42);
    assert_int_equal(pki_field_int(data, "is", &i, errmsg), CF_OK);
    assert_int_equal(i, -7);
    assert_int_equal(pki_field_int(data, "ix", &i, errmsg), CF_EINVAL);
    const char *s = NULL;
    assert_int_equal(pki_field_string(data, "s", &s, errmsg), CF_OK);
    assert_string_equal(s, "str");
    assert_int_equal(pki_field_string(data, "i", &s, errmsg), CF_EINVAL);
}

static void test_lists(void **state)
{
    (void)state;
    json_t *l = NULL;
    assert_int_equal(pki_field_strings(data, "l", &l, errmsg), CF_OK);
    char *dump = json_dumps(l, JSON_COMPACT);
    assert_string_equal(dump, "[\"a\",\"b\",\"c\"]");
    free(dump);
    json_decref(l);
    assert_int_equal(pki_field_strings(data, "la", &l, errmsg), CF_OK);
    dump = json_dumps(l, JSON_COMPACT);
    assert_string_equal(dump, "[\"x\",\"y\"]");
    free(dump);
    json_decref(l);
    assert_int_equal(pki_field_strings(data, "lx", &l, errmsg), CF_EINVAL);
    assert_int_equal(pki_field_strings(data, "i", &l, errmsg), CF_EINVAL);
}

static void test_durations(void **state)
{
    (void)state;
    const char *t = NULL;
    int64_t secs = 0;
    assert_int_equal(pki_field_duration_text(data, "d", &t, &secs, errmsg), CF_OK);
    assert_string_equal(t, "72h");
    assert_int_equal(secs, 72 * 3600);
    assert_int_equal(pki_field_duration_text(data, "dx", &t, &secs, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "given dx could not be decoded: invalid duration");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_ints_and_strings),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
