/*
 * Compact JSON output for jansson values, several times faster than json_dumps on the API's
 * responses (PEM certificates, long strings): strings are copied in runs between the few
 * bytes that need escaping instead of being walked one code point at a time, and nothing is
 * allocated per value. The bytes are json_dumps(value, JSON_COMPACT)'s for the same value:
 * object keys in insertion order, the same escapes ("\u001F" style for other control bytes),
 * non-ASCII UTF-8 copied as is. Unlike json_dumps it does not check UTF-8 (jansson's own
 * constructors already did) and it does not detect cycles (API values are trees).
 */
#ifndef CF_LIB_JSON_H_
#define CF_LIB_JSON_H_

#include <jansson.h>

struct cf_buf;

/* Appends the compact JSON text of j (any value, not only objects and arrays) to out; out
 * stays NUL-terminated. CF_OK, CF_ENOMEM, or CF_EINVAL for a value nesting deeper than
 * jansson's own limit (2048). On error out holds a partial text. */
int cf_json_dump(const json_t *j, struct cf_buf *out);

/* cf_json_dump into a new NUL-terminated string (cf_free), *len its length; NULL on error. */
char *cf_json_dumps(const json_t *j, size_t *len);

#endif
