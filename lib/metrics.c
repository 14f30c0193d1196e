/*
 * Metrics registry (lib/metrics.h): a fixed open-addressed table of series under one mutex.
 */
#include "lib/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/mem.h"

#define NAME_MAX_LEN 96
#define LABEL_MAX_LEN 64
#define TABLE (CF_METRICS_MAX * 2)

struct series
{
    bool used;
    bool sample; /* false: counter */
    char name[NAME_MAX_LEN];
    char lkey[LABEL_MAX_LEN];
    char lval[LABEL_MAX_LEN];
    uint64_t count;
    double sum;
    double sumsq;
    double min;
    double max;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series table[TABLE];
static unsigned n_series;
static uint64_t dropped;
static int64_t started_ns;

int64_t cf_metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double cf_metrics_since_ms(int64_t start_ns)
{
    return (double)(cf_metrics_now_ns() - start_ns) / 1e6;
}

static uint64_t hash(const char *name, const char *lk, const char *lv)
{
    uint64_t h = 1469598103934665603ULL;
    const char *parts[3] = {name, lk ? lk : "", lv ? lv : ""};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p; p++) {
            h = (h ^ (uint8_t)*p) * 1099511628211ULL;
        }
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

/* The series for name+label (lock held); NULL when the table is full or a string too long. */
static struct series *find(const char *name, const char *lk, const char *lv, bool sample)
{
    lk = lk ? lk : "";
    lv = lv ? lv : "";
    if (strlen(name) >= NAME_MAX_LEN || strlen(lk) >= LABEL_MAX_LEN ||
        strlen(lv) >= LABEL_MAX_LEN) {
        return NULL;
    }
    if (started_ns == 0) {
        started_ns = cf_metrics_now_ns();
    }
    for (uint64_t i = hash(name, lk, lv) % TABLE, probes = 0; probes < TABLE;
         i = (i + 1) % TABLE, probes++) {
        struct series *s = &table[i];
        if (!s->used) {
            if (n_series >= CF_METRICS_MAX) {
                return NULL;
            }
            s->used = true;
            s->sample = sample;
            snprintf(s->name, sizeof(s->name), "%s", name);
            snprintf(s->lkey, sizeof(s->lkey), "%s", lk);
            snprintf(s->lval, sizeof(s->lval), "%s", lv);
            n_series++;
            return s;
        }
        if (s->sample == sample && strcmp(s->name, name) == 0 && strcmp(s->lkey, lk) == 0 &&
            strcmp(s->lval, lv) == 0) {
            return s;
        }
    }
    return NULL;
}

static void add(const char *name, const char *lk, const char *lv, bool sample, double v)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, lk, lv, sample);
    if (s == NULL) {
        dropped++;
    } else {
        if (s->count == 0 || v < s->min) {
            s->min = v;
        }
        if (s->count == 0 || v > s->max) {
            s->max = v;
        }
        s->count++;
        s->sum += v;
        s->sumsq += v * v;
    }
    pthread_mutex_unlock(&lock);
}

void cf_metrics_incr(const char *name, const char *label_key, const char *label_value, uint64_t n)
{
    add(name, label_key, label_value, false, (double)n);
}

void cf_metrics_sample(const char *name,
                       const char *label_key,
                       const char *label_value,
                       double value)
{
    add(name, label_key, label_value, true, value);
}

static json_t *series_json(const struct series *s, double uptime_s)
{
    double mean = s->count ? s->sum / (double)s->count : 0;
    double var =
        s->count > 1 ? (s->sumsq - s->sum * s->sum / (double)s->count) / (double)(s->count - 1) : 0;
    json_t *labels = json_object();
    if (s->lkey[0] != '\0') {
        json_object_set_new(labels, s->lkey, json_string(s->lval));
    }
    return json_pack("{s:s,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:o}", "Name", s->name, "Count",
                     (json_int_t)s->count, "Rate", uptime_s > 0 ? s->sum / uptime_s : 0, "Sum",
                     s->sum, "Min", s->min, "Max", s->max, "Mean", mean, "Stddev",
                     var > 0 ? sqrt(var) : 0, "Labels", labels);
}

json_t *cf_metrics_json(void)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
    json_t *counters = json_array();
    json_t *samples = json_array();
    json_t *j = json_pack("{s:s,s:[],s:[],s:o,s:o}", "Timestamp", ts, "Gauges", "Points",
                          "Counters", counters, "Samples", samples);
    if (j == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&lock);
    double uptime = started_ns ? (double)(cf_metrics_now_ns() - started_ns) / 1e9 : 0;
    for (unsigned i = 0; i < TABLE; i++) {
        if (table[i].used) {
            json_array_append_new(table[i].sample ? samples : counters,
                                  series_json(&table[i], uptime));
        }
    }
    uint64_t lost = dropped;
    pthread_mutex_unlock(&lock);
    if (lost > 0) {
        struct series d = {.used = true, .count = 1, .sum = (double)lost};
        snprintf(d.name, sizeof(d.name), "coffer.metrics.dropped");
        json_array_append_new(counters, series_json(&d, uptime));
    }
    return j;
}

/* name with dots and other non-[a-zA-Z0-9_:] characters as underscores. */
static void prom_name(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

/* A text being built; err keeps the first failure. */
struct text
{
    struct cf_buf b;
    int err;
};

#define OUT(t, ...)                                    \
    do {                                               \
        int rv_ = cf_buf_printf(&(t)->b, __VA_ARGS__); \
        (t)->err = (t)->err ? (t)->err : rv_;          \
    } while (0)

static void prom_labels(struct text *b, const struct series *s)
{
    if (s->lkey[0] == '\0') {
        return;
    }
    char k[LABEL_MAX_LEN];
    prom_name(s->lkey, k, sizeof(k));
    OUT(b, "{%s=\"", k);
    for (const char *p = s->lval; *p; p++) {
        if (*p == '"' || *p == '\\') {
            OUT(b, "\\%c", *p);
        } else if (*p == '\n') {
            OUT(b, "\\n");
        } else {
            OUT(b, "%c", *p);
        }
    }
    OUT(b, "\"}");
}

char *cf_metrics_prometheus(void)
{
    struct text b = {.err = 0};
    cf_buf_init(&b.b);
    pthread_mutex_lock(&lock);
    /* Series of one name share their TYPE line: emit names in table order, once each. */
    for (unsigned i = 0; i < TABLE; i++) {
        if (!table[i].used) {
            continue;
        }
        bool first = true;
        for (unsigned j = 0; j < i; j++) {
            if (table[j].used && table[j].sample == table[i].sample &&
                strcmp(table[j].name, table[i].name) == 0) {
                first = false;
                break;
            }
        }
        if (!first) {
            continue;
        }
        char name[NAME_MAX_LEN];
        prom_name(table[i].name, name, sizeof(name));
        OUT(&b, "# TYPE %s %s\n", name, table[i].sample ? "summary" : "counter");
        for (unsigned j = i; j < TABLE; j++) {
            const struct series *s = &table[j];
            if (!s->used || s->sample != table[i].sample || strcmp(s->name, table[i].name) != 0) {
                continue;
            }
            if (s->sample) {
                OUT(&b, "%s_sum", name);
                prom_labels(&b, s);
                OUT(&b, " %.6f\n%s_count", s->sum, name);
                prom_labels(&b, s);
                OUT(&b, " %llu\n", (unsigned long long)s->count);
            } else {
                OUT(&b, "%s", name);
                prom_labels(&b, s);
                OUT(&b, " %.0f\n", s->sum);
            }
        }
    }
    pthread_mutex_unlock(&lock);
    if (b.err != 0 || b.b.data == NULL) {
        cf_buf_close(&b.b);
        return b.err != 0 ? NULL : cf_strdup("");
    }
    return (char *)cf_buf_steal(&b.b, NULL);
}

void cf_metrics_reset(void)
{
    pthread_mutex_lock(&lock);
    memset(table, 0, sizeof(table));
    n_series = 0;
    dropped = 0;
    started_ns = 0;
    pthread_mutex_unlock(&lock);
}
