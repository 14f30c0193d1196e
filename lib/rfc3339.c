/* RFC 3339 formatting and parsing (rfc3339.h). */
#include "lib/rfc3339.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"

void cf_rfc3339(int64_t secs, char out[CF_RFC3339_SIZE])
{
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, CF_RFC3339_SIZE, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void cf_rfc3339_nano(int64_t ns, char out[CF_RFC3339_SIZE])
{
    int64_t secs = ns / 1000000000;
    long frac = (long)(ns % 1000000000);
    if (frac < 0) {
        frac += 1000000000;
        secs--;
    }
    cf_rfc3339(secs, out);
    if (frac == 0) {
        return;
    }
    char digits[16];
    snprintf(digits, sizeof(digits), "%09ld", frac);
    size_t n = strlen(digits);
    while (n > 0 && digits[n - 1] == '0') {
        digits[--n] = '\0';
    }
    size_t len = strlen(out);
    snprintf(out + len - 1, CF_RFC3339_SIZE - (len - 1), ".%sZ", digits);
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int cf_rfc3339_parse(const char *s, int64_t *secs)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se)) {
        return CF_EINVAL;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 59) {
        return CF_EINVAL;
    }
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return CF_EINVAL;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59) {
            return CF_EINVAL;
        }
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return CF_EINVAL;
    }
    if (*p != '\0') {
        return CF_EINVAL;
    }
    *secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    return CF_OK;
}

int64_t cf_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t cf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char wdays[7][4] = {"Thu", "Fri", "Sat", "Sun",
                                 "Mon", "Tue", "Wed"}; /* from 1970-01-01 */
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void cf_http_date(int64_t secs, char out[CF_RFC3339_SIZE])
{
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    snprintf(out, CF_RFC3339_SIZE, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             wdays[((days % 7) + 7) % 7], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int cf_http_date_parse(const char *s, int64_t *secs)
{
    int d, y, h, mi, se;
    if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || !digits(s + 5, 2, &d) || s[7] != ' ' ||
        s[11] != ' ' || !digits(s + 12, 4, &y) || s[16] != ' ' || !digits(s + 17, 2, &h) ||
        s[19] != ':' || !digits(s + 20, 2, &mi) || s[22] != ':' || !digits(s + 23, 2, &se) ||
        strcmp(s + 25, " GMT") != 0) {
        return CF_EINVAL;
    }
    int mo = 0;
    while (mo < 12 && strncmp(s + 8, months[mo], 3) != 0) {
        mo++;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 12 || d < 1 || d > mdays[mo] || (mo == 1 && d == 29 && !leap) || h > 23 || mi > 59 ||
        se > 60) {
        return CF_EINVAL;
    }
    int64_t days = days_from_civil(y, mo + 1, d);
    if (strncmp(s, wdays[((days % 7) + 7) % 7], 3) != 0) {
        return CF_EINVAL;
    }
    *secs = days * 86400 + h * 3600 + mi * 60 + (se == 60 ? 59 : se);
    return CF_OK;
}
