/*
 * Request field typing of the PKI engine, as Vault's framework converts fields (pki.md 0):
 * booleans from JSON bools or "true"/"false"/"1"/"0"; comma-string slices from a JSON array
 * or a comma-separated string; durations from integer seconds or a duration string.
 * Each returns CF_OK, CF_ENOTFOUND when the field is absent (or null), or CF_EINVAL with
 * errmsg naming the field.
 */
#ifndef CF_ENGINES_PKI_FIELD_H_
#define CF_ENGINES_PKI_FIELD_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/err.h"

int pki_field_bool(const json_t *data, const char *name, bool *out, char errmsg[CF_ERRMSG_SIZE]);
int pki_field_int(const json_t *data, const char *name, int64_t *out, char errmsg[CF_ERRMSG_SIZE]);
/* A new array of strings (empty items dropped, surrounding spaces trimmed). */
int pki_field_strings(const json_t *data,
                      const char *name,
                      json_t **out,
                      char errmsg[CF_ERRMSG_SIZE]);
/* A duration kept as the string given (Vault's TypeString durations such as config/crl expiry);
 * *text is borrowed from data, *secs its value. */
int pki_field_duration_text(const json_t *data,
                            const char *name,
                            const char **text,
                            int64_t *secs,
                            char errmsg[CF_ERRMSG_SIZE]);
int pki_field_string(const json_t *data,
                     const char *name,
                     const char **out,
                     char errmsg[CF_ERRMSG_SIZE]);

/* Vault's TypeDurationSecond: integer seconds, a numeric string or a duration string ("72h");
 * "" is 0; negative values are refused. */
int pki_field_seconds(const json_t *data,
                      const char *name,
                      int64_t *out,
                      char errmsg[CF_ERRMSG_SIZE]);

/* As pki_field_bool / pki_field_seconds, but an absent field is CF_OK and leaves *out as it was
 * (the caller's default). */
int pki_field_bool_opt(const json_t *data,
                       const char *name,
                       bool *out,
                       char errmsg[CF_ERRMSG_SIZE]);
int pki_field_seconds_opt(const json_t *data,
                          const char *name,
                          int64_t *out,
                          char errmsg[CF_ERRMSG_SIZE]);

#endif
