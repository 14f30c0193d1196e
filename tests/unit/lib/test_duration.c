/*
 * Unit tests for lib/duration.c: Go time.ParseDuration compatibility (plus bare seconds and
 * "d"), refusal of malformed and overflowing input, and Go's Duration.String() output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/duration.h"
#include "lib/err.h"

struct parse_case
{
    const char *in;
    int64_t ms;
};

static void test_parse_good(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"300", 300000},
        {"0", 0},
        {"-0", 0},
        {"007", 7000},
        {"-300", -300000},
        {"0s", 0},
        {"1h30m", 5400000},
        {"1.5h", 5400000},
        {"90s", 90000},
        {"2d", 172800000},
        {"1.5d", 129600000},
        {"500ms", 500},
        {"1.5s", 1500},
        {".5s", 500},
        {"5.s", 5000},
        {"0.1s", 100},
        {"1.0009s", 1000},
        {"1500us", 1},
        {"1500\xc2\xb5s", 1},
        {"1500\xce\xbcs", 1},
        {"999999ns", 0},
        {"1000000ns", 1},
        {"-5m", -300000},
        {"+5m", 300000},
        {"-1.5h", -5400000},
        {"768h", 2764800000},
        {"1h0m0s", 3600000},
        {"1h1m1s1ms", 3661001},
        {"1d12h", 129600000},
        {"2562047h", INT64_C(9223369200000)},
        {"2562047h47m16.854775807s", INT64_C(9223372036854)},
        {"9223372036854775807ns", INT64_C(9223372036854)},
        {"-9223372036854775808ns", -INT64_C(9223372036854)},
        {"106751d", INT64_C(9223286400000)},
        {"0.000000001s", 0},
        {"1.00000000000000000000000000001s", 1000},
        {"9223372036854775", INT64_C(9223372036854775000)},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int64_t ms = 12345;
        int rv = cf_duration_parse_ms(cases[k].in, &ms);
        if (rv != CF_OK || ms != cases[k].ms) {
            fail_msg("\"%s\": rv %d ms %lld, want %lld", cases[k].in, rv, (long long)ms,
                     (long long)cases[k].ms);
        }
    }
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "abc",
        "5x",
        "1h-",
        "-",
        "+",
        ".",
        ".s",
        "1..5s",
        "s",
        "h1",
        " 5s",
        "5s ",
        "5 s",
        "1h 30m",
        "1e3s",
        "5S",
        "1h30",
        "--5s",
        "0x10s",
        "2562048h",
        "106752d",
        "9223372036854775808ns",
        "-9223372036854775809ns",
        "99999999999999999999s",
        "9223372036854776",
        "99999999999999999999999",
        "5s\xc2",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int64_t ms = 777;
        int rv = cf_duration_parse_ms(bad[k], &ms);
        if (rv != CF_EINVAL || ms != 777) {
            fail_msg("\"%s\": rv %d ms %lld, want CF_EINVAL and untouched", bad[k], rv,
                     (long long)ms);
        }
        int64_t s = 777;
        assert_int_equal(cf_duration_parse_s(bad[k], &s), CF_EINVAL);
        assert_int_equal(s, 777);
    }
    int64_t ms;
    assert_int_equal(cf_duration_parse_ms(NULL, &ms), CF_EINVAL);
}

static void test_parse_seconds(void **state)
{
    (void)state;
    int64_t s = 0;
    assert_int_equal(cf_duration_parse_s("1.9s", &s), CF_OK);
    assert_int_equal(s, 1);
    assert_int_equal(cf_duration_parse_s("90m", &s), CF_OK);
    assert_int_equal(s, 5400);
    assert_int_equal(cf_duration_parse_s("-1.5s", &s), CF_OK);
    assert_int_equal(s, -1);
    assert_int_equal(cf_duration_parse_s("300", &s), CF_OK);
    assert_int_equal(s, 300);
    assert_int_equal(cf_duration_parse_s("999ms", &s), CF_OK);
    assert_int_equal(s, 0);
    assert_int_equal(cf_duration_parse_s("768h", &s), CF_OK);
    assert_int_equal(s, 2764800);
}

struct fmt_case
{
    int64_t ms;
    const char *out; /* what Go's time.Duration(ms * time.Millisecond).String() prints */
};

static void test_format(void **state)
{
    (void)state;
    static const struct fmt_case cases[] = {
        {0, "0s"},
        {1, "1ms"},
        {500, "500ms"},
        {999, "999ms"},
        {1000, "1s"},
        {1500, "1.5s"},
        {1010, "1.01s"},
        {1001, "1.001s"},
        {59999, "59.999s"},
        {60000, "1m0s"},
        {60500, "1m0.5s"},
        {90000, "1m30s"},
        {3600000, "1h0m0s"},
        {3661001, "1h1m1.001s"},
        {86400000, "24h0m0s"},
        {2764800000, "768h0m0s"},
        {-1, "-1ms"},
        {-1500, "-1.5s"},
        {-90000, "-1m30s"},
        {INT64_C(9223372036854), "2562047h47m16.854s"},
        {INT64_MAX, "2562047788015h12m55.807s"},
        {INT64_MIN, "-2562047788015h12m55.808s"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char out[32];
        memset(out, 'x', sizeof(out));
        cf_duration_format_ms(cases[k].ms, out, sizeof(out));
        assert_string_equal(out, cases[k].out);
    }
    /* A short buffer is truncated, never overrun. */
    char small[4] = "zzz";
    cf_duration_format_ms(90000, small, sizeof(small));
    assert_string_equal(small, "1m3");
}

static void test_round_trip(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"1h30m", "1h30m0s"}, {"90s", "1m30s"},     {"2d", "48h0m0s"},
        {"1.5s", "1.5s"},     {"500ms", "500ms"},   {"0", "0s"},
        {"300", "5m0s"},      {"768h", "768h0m0s"}, {"32d", "768h0m0s"},
        {"1m0.5s", "1m0.5s"}, {"-90s", "-1m30s"},   {"1h1m1.001s", "1h1m1.001s"},
    };
    for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
        int64_t ms;
        char out[32];
        assert_int_equal(cf_duration_parse_ms(pairs[k][0], &ms), CF_OK);
        cf_duration_format_ms(ms, out, sizeof(out));
        assert_string_equal(out, pairs[k][1]);
        /* Go's output parses back to the same value. */
        int64_t again;
        assert_int_equal(cf_duration_parse_ms(out, &again), CF_OK);
        assert_true(again == ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),    cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_seconds), cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
