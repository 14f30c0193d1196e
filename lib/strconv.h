/*
 * Go's strconv parsers that Vault's string-typed settings follow (audit device options, seal
 * stanzas such as generate_key = "true").
 */
#ifndef CF_LIB_STRCONV_H_
#define CF_LIB_STRCONV_H_

#include <stdbool.h>

/* Go's strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False. False (and *out
 * untouched) for anything else. */
bool cf_parse_bool(const char *s, bool *out);

#endif
