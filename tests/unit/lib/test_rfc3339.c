/*
 * Unit tests for lib/rfc3339.c: RFC 3339 output and parsing (offsets, fractions, refusals) and
 * HTTP dates (IMF-fixdate) both ways, with RFC 9110's example, round trips over a range of
 * dates, and the refusal of obsolete forms, wrong day names and impossible dates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/rfc3339.h"

static void test_rfc3339(void **state)
{
    (void)state;
    char out[CF_RFC3339_SIZE];
    cf_rfc3339(784111777, out);
    assert_string_equal(out, "1994-11-06T08:49:37Z");
    int64_t t = 0;
    assert_int_equal(cf_rfc3339_parse("1994-11-06T08:49:37Z", &t), CF_OK);
    assert_int_equal(t, 784111777);
    assert_int_equal(cf_rfc3339_parse("1994-11-06T10:49:37.123+02:00", &t), CF_OK);
    assert_int_equal(t, 784111777);
    static const char *const bad[] = {"",
                                      "1994-11-06",
                                      "1994-13-06T08:49:37Z",
                                      "1994-02-29T08:49:37Z",
                                      "1994-11-06T08:49:37",
                                      "1994-11-06T08:49:37Zx",
                                      "1994-11-06T24:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cf_rfc3339_parse(bad[i], &t), CF_EINVAL);
    }
}

static void test_http_date(void **state)
{
    (void)state;
    char out[CF_RFC3339_SIZE];
    cf_http_date(784111777, out);
    assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    cf_http_date(0, out);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    int64_t t = 0;
    assert_int_equal(cf_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), CF_OK);
    assert_int_equal(t, 784111777);
    assert_int_equal(cf_http_date_parse("Sat, 29 Feb 2020 23:59:59 GMT", &t), CF_OK);
    /* every day from 1970 to about 2090, through both functions */
    for (int64_t s = 0; s < (int64_t)120 * 365 * 86400; s += 86400 + 3607) {
        cf_http_date(s, out);
        assert_int_equal(cf_http_date_parse(out, &t), CF_OK);
        assert_int_equal(t, s);
    }
    static const char *const bad[] = {
        "",
        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850 */
        "Sun Nov  6 08:49:37 1994",       /* asctime */
        "Mon, 06 Nov 1994 08:49:37 GMT",  /* wrong day name */
        "Sun, 06 Nox 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Fri, 29 Feb 2019 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cf_http_date_parse(bad[i], &t) != CF_EINVAL) {
            fail_msg("accepted %s", bad[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_http_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
