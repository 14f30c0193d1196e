/*
 * Process-wide metrics in the shape Vault's sys/metrics shows (go-metrics' in-memory sink):
 * counters, and samples (timers in milliseconds) with count, sum, min, max, mean and standard
 * deviation, each keyed by a dotted name ("vault.secrets.pki.issue") and at most one label
 * ("mount" = "pki/"). Values accumulate from process start.
 *
 * Threads: every function may be called from any thread; updates take one short mutex.
 * At most CF_METRICS_MAX distinct name+label series are kept; further series are dropped and
 * counted in "coffer.metrics.dropped".
 */
#ifndef CF_LIB_METRICS_H_
#define CF_LIB_METRICS_H_

#include <stdint.h>

#include <jansson.h>

#define CF_METRICS_MAX 512

/* Adds n to a counter. label_key and label_value may both be NULL (no label). */
void cf_metrics_incr(const char *name, const char *label_key, const char *label_value, uint64_t n);

/* Adds one sample (a duration in milliseconds, or any value) to a sample series. */
void cf_metrics_sample(const char *name,
                       const char *label_key,
                       const char *label_value,
                       double value);

/* Milliseconds between two CLOCK_MONOTONIC readings taken with cf_metrics_now_ns. */
int64_t cf_metrics_now_ns(void);
double cf_metrics_since_ms(int64_t start_ns);

/* The go-metrics JSON summary: {"Timestamp","Gauges":[],"Points":[],"Counters":[...],
 * "Samples":[...]}, each series {"Name","Count","Rate","Sum","Min","Max","Mean","Stddev",
 * "Labels":{...}}. NULL on OOM. */
json_t *cf_metrics_json(void);

/* The Prometheus text exposition (version 0.0.4): counters as `<name>` counters, samples as
 * summaries (`_sum`, `_count`); dots become underscores. cf_malloc'd; NULL on OOM. */
char *cf_metrics_prometheus(void);

/* Forgets every series (tests). */
void cf_metrics_reset(void);

#endif
