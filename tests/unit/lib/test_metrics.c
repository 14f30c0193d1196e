/* Unit tests for lib/metrics.c: counters and samples with labels, the go-metrics JSON summary,
 * the Prometheus text, concurrent updates, and the series limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "lib/mem.h"
#include "lib/metrics.h"

static json_t *find(json_t *arr, const char *name, const char *label)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *l = json_string_value(json_object_get(json_object_get(e, "Labels"), "mount"));
        if (strcmp(json_string_value(json_object_get(e, "Name")), name) == 0 &&
            ((label == NULL && l == NULL) || (label && l && strcmp(label, l) == 0))) {
            return e;
        }
    }
    return NULL;
}

static void test_counters_and_samples(void **state)
{
    (void)state;
    cf_metrics_reset();
    cf_metrics_incr("a.count", NULL, NULL, 2);
    cf_metrics_incr("a.count", NULL, NULL, 3);
    cf_metrics_sample("a.time", "mount", "pki/", 1.0);
    cf_metrics_sample("a.time", "mount", "pki/", 3.0);
    cf_metrics_sample("a.time", "mount", "other/", 10.0);
    json_t *j = cf_metrics_json();
    assert_non_null(j);
    json_t *c = find(json_object_get(j, "Counters"), "a.count", NULL);
    assert_non_null(c);
    assert_int_equal(json_integer_value(json_object_get(c, "Count")), 2);
    assert_true(json_real_value(json_object_get(c, "Sum")) == 5.0);
    json_t *s = find(json_object_get(j, "Samples"), "a.time", "pki/");
    assert_non_null(s);
    assert_int_equal(json_integer_value(json_object_get(s, "Count")), 2);
    assert_true(json_real_value(json_object_get(s, "Sum")) == 4.0);
    assert_true(json_real_value(json_object_get(s, "Min")) == 1.0);
    assert_true(json_real_value(json_object_get(s, "Max")) == 3.0);
    assert_true(json_real_value(json_object_get(s, "Mean")) == 2.0);
    double sd = json_real_value(json_object_get(s, "Stddev"));
    assert_true(sd > 1.414 && sd < 1.415); /* sample stddev of {1, 3} = sqrt(2) */
    assert_non_null(find(json_object_get(j, "Samples"), "a.time", "other/"));
    assert_int_equal(json_array_size(json_object_get(j, "Gauges")), 0);
    json_decref(j);

    char *text = cf_metrics_prometheus();
    assert_non_null(text);
    assert_non_null(strstr(text, "# TYPE a_count counter\na_count 5\n"));
    assert_non_null(strstr(text, "# TYPE a_time summary\n"));
    assert_non_null(strstr(text, "a_time_sum{mount=\"pki/\"} 4.000000\n"));
    assert_non_null(strstr(text, "a_time_count{mount=\"pki/\"} 2\n"));
    assert_non_null(strstr(text, "a_time_count{mount=\"other/\"} 1\n"));
    /* One TYPE line per name. */
    assert_null(strstr(strstr(text, "# TYPE a_time") + 1, "# TYPE a_time"));
    cf_free(text);
}

static void test_label_escaping(void **state)
{
    (void)state;
    cf_metrics_reset();
    cf_metrics_incr("x", "mount", "a\"b\\c\nd", 1);
    char *text = cf_metrics_prometheus();
    assert_non_null(strstr(text, "x{mount=\"a\\\"b\\\\c\\nd\"} 1\n"));
    cf_free(text);
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        cf_metrics_incr("t.count", NULL, NULL, 1);
        cf_metrics_sample("t.time", NULL, NULL, 0.5);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    cf_metrics_reset();
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, worker, NULL);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    json_t *j = cf_metrics_json();
    json_t *c = find(json_object_get(j, "Counters"), "t.count", NULL);
    assert_true(json_real_value(json_object_get(c, "Sum")) == 40000.0);
    json_t *s = find(json_object_get(j, "Samples"), "t.time", NULL);
    assert_int_equal(json_integer_value(json_object_get(s, "Count")), 40000);
    json_decref(j);
}

static void test_limit(void **state)
{
    (void)state;
    cf_metrics_reset();
    char name[32];
    for (int i = 0; i < CF_METRICS_MAX + 10; i++) {
        snprintf(name, sizeof(name), "series.%d", i);
        cf_metrics_incr(name, NULL, NULL, 1);
    }
    char longname[200];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cf_metrics_incr(longname, NULL, NULL, 1);
    json_t *j = cf_metrics_json();
    json_t *d = find(json_object_get(j, "Counters"), "coffer.metrics.dropped", NULL);
    assert_non_null(d);
    assert_true(json_real_value(json_object_get(d, "Sum")) == 11.0);
    assert_int_equal(json_array_size(json_object_get(j, "Counters")), CF_METRICS_MAX + 1);
    json_decref(j);
    cf_metrics_reset();
}

int main(void)
{
    json_set_alloc_funcs(cf_malloc, cf_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_and_samples),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
