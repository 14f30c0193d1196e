/*
 * RFC 3339 timestamps as Go's time package writes and reads them (the forms Vault's JSON uses),
 * and HTTP dates (RFC 9110 IMF-fixdate, for Last-Modified and If-Modified-Since).
 */
#ifndef CF_LIB_RFC3339_H_
#define CF_LIB_RFC3339_H_

#include <stdint.h>

#define CF_RFC3339_SIZE 40

/* "2006-01-02T15:04:05Z" for unix seconds (UTC). */
void cf_rfc3339(int64_t secs, char out[CF_RFC3339_SIZE]);

/* Go's RFC3339Nano of unix nanoseconds in UTC: fractional digits with trailing zeros dropped,
 * none when the fraction is zero ("2006-01-02T15:04:05.5Z"). */
void cf_rfc3339_nano(int64_t ns, char out[CF_RFC3339_SIZE]);

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)" (T or t, Z or z) into unix seconds,
 * the fraction dropped. CF_EINVAL when malformed or out of range. */
int cf_rfc3339_parse(const char *s, int64_t *secs);

/* "Sun, 06 Nov 1994 08:49:37 GMT" for unix seconds. */
void cf_http_date(int64_t secs, char out[CF_RFC3339_SIZE]);

/* Parses an IMF-fixdate (the form above; the day name is checked against the date) into unix
 * seconds. The obsolete RFC 850 and asctime forms are refused (a server then ignores the
 * header, as RFC 9110 asks for any value it cannot read). CF_EINVAL when malformed. */
int cf_http_date_parse(const char *s, int64_t *secs);

/* Current wall-clock time in unix seconds / nanoseconds. */
int64_t cf_now_s(void);
int64_t cf_now_ns(void);

#endif
