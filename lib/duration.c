/*
 * Duration parsing and formatting compatible with Go's time package, which is what Vault
 * uses (plus Vault's two extensions: a bare integer means seconds, and a "d" unit of 24h).
 *
 * Parsing follows time.ParseDuration: a sign, then one or more <decimal><unit> pairs, where
 * the decimal may have a fraction (".5h" and "5.h" are valid, "." is not). The sum is
 * accumulated in nanoseconds in a uint64 and must fit in int64 (1<<63 only when negative),
 * so anything over ~292 years is refused as overflow rather than wrapped.
 */
#include "lib/duration.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

#define NS_PER_MS UINT64_C(1000000)

struct unit
{
    const char *name;
    uint64_t ns;
};

static const struct unit units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
    {"ms", 1000000},
    {"s", UINT64_C(1000000000)},
    {"m", UINT64_C(60000000000)},
    {"h", UINT64_C(3600000000000)},
    {"d", UINT64_C(86400000000000)},
};

/* Leading digits as an integer; false on overflow. */
static bool leading_int(const char **s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = *s;
    while (*p >= '0' && *p <= '9') {
        if (v > (UINT64_C(1) << 63) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT64_C(1) << 63) {
            return false;
        }
        p++;
    }
    *s = p;
    *out = v;
    return true;
}

/* Fraction digits as value/scale; digits past what fits are dropped, as in Go. */
static void leading_fraction(const char **s, uint64_t *value, double *scale)
{
    const char *p = *s;
    uint64_t v = 0;
    double sc = 1;
    bool overflow = false;
    while (*p >= '0' && *p <= '9') {
        if (!overflow) {
            if (v > (UINT64_C(1) << 63) / 10) {
                overflow = true;
            } else {
                uint64_t y = v * 10 + (uint64_t)(*p - '0');
                if (y > UINT64_C(1) << 63) {
                    overflow = true;
                } else {
                    v = y;
                    sc *= 10;
                }
            }
        }
        p++;
    }
    *s = p;
    *value = v;
    *scale = sc;
}

static bool all_digits(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return true;
}

/* Go's ParseDuration (with "d"), in nanoseconds. */
static int parse_go(const char *s, bool *neg, uint64_t *out_ns)
{
    uint64_t total = 0;
    *neg = false;
    if (*s == '-' || *s == '+') {
        *neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *out_ns = 0;
        return CF_OK;
    }
    if (*s == '\0') {
        return CF_EINVAL;
    }
    while (*s != '\0') {
        uint64_t v = 0;
        uint64_t f = 0;
        double scale = 1;
        if (!(*s == '.' || (*s >= '0' && *s <= '9'))) {
            return CF_EINVAL;
        }
        const char *before = s;
        if (!leading_int(&s, &v)) {
            return CF_EINVAL;
        }
        bool pre = s != before;
        bool post = false;
        if (*s == '.') {
            s++;
            const char *fs = s;
            leading_fraction(&s, &f, &scale);
            post = s != fs;
        }
        if (!pre && !post) {
            return CF_EINVAL;
        }
        const char *us = s;
        while (*s != '\0' && *s != '.' && !(*s >= '0' && *s <= '9')) {
            s++;
        }
        size_t ulen = (size_t)(s - us);
        if (ulen == 0) {
            return CF_EINVAL;
        }
        uint64_t unit = 0;
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            if (strlen(units[k].name) == ulen && memcmp(units[k].name, us, ulen) == 0) {
                unit = units[k].ns;
                break;
            }
        }
        if (unit == 0) {
            return CF_EINVAL;
        }
        if (v > (UINT64_C(1) << 63) / unit) {
            return CF_EINVAL;
        }
        v *= unit;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)unit / scale));
            if (v > UINT64_C(1) << 63) {
                return CF_EINVAL;
            }
        }
        total += v;
        if (total > UINT64_C(1) << 63) {
            return CF_EINVAL;
        }
    }
    if (!*neg && total > (uint64_t)INT64_MAX) {
        return CF_EINVAL;
    }
    *out_ns = total;
    return CF_OK;
}

int cf_duration_parse_ms(const char *s, int64_t *out_ms)
{
    if (s == NULL) {
        return CF_EINVAL;
    }
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (all_digits(digits)) {
        /* Bare integer: seconds (Vault's parseutil). */
        uint64_t v = 0;
        const char *p = digits;
        if (!leading_int(&p, &v) || v > (uint64_t)INT64_MAX / 1000) {
            return CF_EINVAL;
        }
        int64_t ms = (int64_t)v * 1000;
        *out_ms = *s == '-' ? -ms : ms;
        return CF_OK;
    }
    bool neg;
    uint64_t ns;
    int rv = parse_go(s, &neg, &ns);
    if (rv != CF_OK) {
        return rv;
    }
    int64_t ms = (int64_t)(ns / NS_PER_MS);
    *out_ms = neg ? -ms : ms;
    return CF_OK;
}

int cf_duration_parse_s(const char *s, int64_t *out_s)
{
    int64_t ms;
    int rv = cf_duration_parse_ms(s, &ms);
    if (rv != CF_OK) {
        return rv;
    }
    *out_s = ms / 1000;
    return CF_OK;
}

void cf_duration_format_ms(int64_t ms, char *out, size_t n)
{
    if (out == NULL || n == 0) {
        return;
    }
    bool neg = ms < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    const char *sign = neg ? "-" : "";
    if (u == 0) {
        snprintf(out, n, "0s");
        return;
    }
    if (u < 1000) {
        snprintf(out, n, "%s%llums", sign, (unsigned long long)u);
        return;
    }
    /* Seconds with the millisecond fraction, trailing zeros dropped ("1.5s", "2s"). */
    char secs[32];
    uint64_t frac = u % 1000;
    uint64_t total_s = u / 1000;
    uint64_t sec = total_s % 60;
    if (frac == 0) {
        snprintf(secs, sizeof(secs), "%llus", (unsigned long long)sec);
    } else {
        char fd[4];
        snprintf(fd, sizeof(fd), "%03llu", (unsigned long long)frac);
        size_t fl = 3;
        while (fl > 0 && fd[fl - 1] == '0') {
            fl--;
        }
        snprintf(secs, sizeof(secs), "%llu.%.*ss", (unsigned long long)sec, (int)fl, fd);
    }
    uint64_t total_m = total_s / 60;
    if (total_m == 0) {
        snprintf(out, n, "%s%s", sign, secs);
    } else if (total_m < 60) {
        snprintf(out, n, "%s%llum%s", sign, (unsigned long long)total_m, secs);
    } else {
        snprintf(out, n, "%s%lluh%llum%s", sign, (unsigned long long)(total_m / 60),
                 (unsigned long long)(total_m % 60), secs);
    }
}
