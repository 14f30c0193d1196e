/* Log line formatting to stderr; one write(2) per line so lines from threads do not mix. */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum cf_log_level cf_log_threshold = CF_LOG_INFO;
static char node_id[64];

static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"};

bool cf_log_level_parse(const char *s, enum cf_log_level *out)
{
    static const struct
    {
        const char *name;
        enum cf_log_level level;
    } table[] = {
        {"trace", CF_LOG_TRACE}, {"debug", CF_LOG_DEBUG},  {"info", CF_LOG_INFO},
        {"warn", CF_LOG_WARN},   {"warning", CF_LOG_WARN}, {"error", CF_LOG_ERROR},
        {"err", CF_LOG_ERROR},   {"off", CF_LOG_OFF},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcasecmp(s, table[i].name) == 0) {
            *out = table[i].level;
            return true;
        }
    }
    return false;
}

void cf_log_set_level(enum cf_log_level level)
{
    cf_log_threshold = level;
}

void cf_log_set_node_id(const char *id)
{
    snprintf(node_id, sizeof(node_id), "%s", id == NULL ? "" : id);
}

void cf_log_write(enum cf_log_level level, const char *module, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level < CF_LOG_OFF ? level : CF_LOG_OFF], module,
                     node_id[0] ? node_id : "-");
    if (n < 0) {
        return;
    }
    size_t off = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
    va_end(ap);
    if (m > 0) {
        off += (size_t)m < sizeof(line) - off ? (size_t)m : sizeof(line) - off - 1;
    }
    if (off >= sizeof(line) - 1) {
        off = sizeof(line) - 2;
    }
    line[off++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, off);
    (void)w;
}
