/*
 * Logging (rule G1). CF_LOG checks the level before evaluating its arguments. Each .c file
 * defines CF_LOG_MODULE before including this header; lines look like
 *   2026-11-22T10:00:00.123Z INFO  raft node1 leader elected term=3
 * Never log key material, secret values, tokens or request bodies (G3).
 */
#ifndef CF_LIB_LOG_H_
#define CF_LIB_LOG_H_

#include <stdbool.h>

enum cf_log_level {
    CF_LOG_TRACE = 0,
    CF_LOG_DEBUG,
    CF_LOG_INFO,
    CF_LOG_WARN,
    CF_LOG_ERROR,
    CF_LOG_OFF,
};

extern enum cf_log_level cf_log_threshold;

/* Parses "trace|debug|info|warn|warning|error|off"; returns false when unknown. */
bool cf_log_level_parse(const char *s, enum cf_log_level *out);
void cf_log_set_level(enum cf_log_level level);
/* Sets the node id printed on every line (copied; NULL clears it). */
void cf_log_set_node_id(const char *node_id);

void cf_log_write(enum cf_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifndef CF_LOG_MODULE
#define CF_LOG_MODULE "coffer"
#endif

#define CF_LOG(level, ...)                                     \
    do {                                                       \
        if ((level) >= cf_log_threshold) {                     \
            cf_log_write((level), CF_LOG_MODULE, __VA_ARGS__); \
        }                                                      \
    } while (0)

#endif
