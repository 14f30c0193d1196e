/*
 * Durations as Vault writes them in configs and API parameters ("768h", "90s", "300"), and
 * Go-style formatting for responses. Values are carried in milliseconds; parsing is exact to
 * the nanosecond internally (Go's time.ParseDuration rules, so the range is Go's: about 292
 * years) and then truncated toward zero.
 */
#ifndef CF_LIB_DURATION_H_
#define CF_LIB_DURATION_H_

#include <stddef.h>
#include <stdint.h>

/* Parses a duration: a bare integer is seconds ("300"); otherwise Go's time.ParseDuration units
 * ns us µs ms s m h plus "d" (24h), with fractions and sequences ("1h30m", "1.5h", "90s",
 * "2d"). A leading '-' is accepted (callers reject negatives). Empty string, garbage, overflow
 * -> CF_EINVAL (and *out_ms is left untouched). */
int cf_duration_parse_ms(const char *s, int64_t *out_ms);

/* Same, in whole seconds (sub-second part truncated). */
int cf_duration_parse_s(const char *s, int64_t *out_s);

/* Formats like Go's time.Duration.String(): "0s", "500ms", "1m30s", "24h0m0s", "768h0m0s",
 * "1.5s". out must be >= 32 bytes (n is the size of out). */
void cf_duration_format_ms(int64_t ms, char *out, size_t n);

#endif
