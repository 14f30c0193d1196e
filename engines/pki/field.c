/* Request field typing (field.h). */
#include "engines/pki/field.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/duration.h"

static const json_t *field(const json_t *data, const char *name)
{
    const json_t *v = json_object_get(data, name);
    return json_is_null(v) ? NULL : v;
}

int pki_field_bool(const json_t *data, const char *name, bool *out, char errmsg[CF_ERRMSG_SIZE])
{
    const json_t *v = field(data, name);
    if (v == NULL) {
        return CF_ENOTFOUND;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return CF_OK;
    }
    const char *s = json_string_value(v);
    if (s != NULL) {
        if (strcmp(s, "1") == 0 || strcasecmp(s, "t") == 0 || strcasecmp(s, "true") == 0) {
            *out = true;
            return CF_OK;
        }
        if (strcmp(s, "0") == 0 || strcasecmp(s, "f") == 0 || strcasecmp(s, "false") == 0) {
            *out = false;
            return CF_OK;
        }
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = json_integer_value(v) == 1;
        return CF_OK;
    }
    cf_errmsg_printf(errmsg, "invalid value for \"%s\": must be a boolean", name);
    return CF_EINVAL;
}

int pki_field_int(const json_t *data, const char *name, int64_t *out, char errmsg[CF_ERRMSG_SIZE])
{
    const json_t *v = field(data, name);
    if (v == NULL) {
        return CF_ENOTFOUND;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return CF_OK;
    }
    const char *s = json_string_value(v);
    if (s != NULL && s[0] != '\0') {
        char *end = NULL;
        long long n = strtoll(s, &end, 10);
        if (end != NULL && *end == '\0') {
            *out = n;
            return CF_OK;
        }
    }
    cf_errmsg_printf(errmsg, "invalid value for \"%s\": must be an integer", name);
    return CF_EINVAL;
}

static int append_trimmed(json_t *arr, const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    if (n == 0) {
        return CF_OK;
    }
    return json_array_append_new(arr, json_stringn(s, n)) == 0 ? CF_OK : CF_ENOMEM;
}

int pki_field_strings(const json_t *data,
                      const char *name,
                      json_t **out,
                      char errmsg[CF_ERRMSG_SIZE])
{
    const json_t *v = field(data, name);
    if (v == NULL) {
        return CF_ENOTFOUND;
    }
    json_t *arr = json_array();
    if (arr == NULL) {
        return CF_ENOMEM;
    }
    int rv = CF_OK;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (rv == CF_OK && *s) {
            const char *c = strchr(s, ',');
            size_t n = c ? (size_t)(c - s) : strlen(s);
            rv = append_trimmed(arr, s, n);
            s = c ? c + 1 : s + n;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it)
        {
            if (!json_is_string(it)) {
                rv = CF_EINVAL;
                break;
            }
            rv = append_trimmed(arr, json_string_value(it), json_string_length(it));
        }
    } else {
        rv = CF_EINVAL;
    }
    if (rv != CF_OK) {
        json_decref(arr);
        if (rv == CF_EINVAL) {
            cf_errmsg_printf(errmsg, "invalid value for \"%s\": must be a list of strings", name);
        }
        return rv;
    }
    *out = arr;
    return CF_OK;
}

int pki_field_duration_text(const json_t *data,
                            const char *name,
                            const char **text,
                            int64_t *secs,
                            char errmsg[CF_ERRMSG_SIZE])
{
    const json_t *v = field(data, name);
    if (v == NULL) {
        return CF_ENOTFOUND;
    }
    const char *s = json_string_value(v);
    if (s == NULL || cf_duration_parse_s(s, secs) != CF_OK || *secs < 0) {
        cf_errmsg_printf(errmsg, "given %s could not be decoded: invalid duration", name);
        return CF_EINVAL;
    }
    *text = s;
    return CF_OK;
}

int pki_field_string(const json_t *data,
                     const char *name,
                     const char **out,
                     char errmsg[CF_ERRMSG_SIZE])
{
    const json_t *v = field(data, name);
    if (v == NULL) {
        return CF_ENOTFOUND;
    }
    if (!json_is_string(v)) {
        cf_errmsg_printf(errmsg, "invalid value for \"%s\": must be a string", name);
        return CF_EINVAL;
    }
    *out = json_string_value(v);
    return CF_OK;
}

int pki_field_seconds(const json_t *data,
                      const char *name,
                      int64_t *out,
                      char errmsg[CF_ERRMSG_SIZE])
{
    const json_t *v = field(data, name);
    if (v == NULL) {
        return CF_ENOTFOUND;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else if (json_is_real(v)) {
        *out = (int64_t)json_real_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (s[0] == '\0') {
            *out = 0;
            return CF_OK;
        }
        char *end = NULL;
        long long n = strtoll(s, &end, 10);
        if (end != NULL && *end == '\0') {
            *out = n;
        } else if (cf_duration_parse_s(s, out) != CF_OK) {
            cf_errmsg_printf(errmsg,
                             "error converting input %s for field \"%s\": time: invalid "
                             "duration \"%s\"",
                             s, name, s);
            return CF_EINVAL;
        }
    } else {
        cf_errmsg_printf(errmsg, "invalid value for \"%s\": must be a duration", name);
        return CF_EINVAL;
    }
    if (*out < 0) {
        cf_errmsg_printf(errmsg, "cannot provide negative value for \"%s\"", name);
        return CF_EINVAL;
    }
    return CF_OK;
}

int pki_field_bool_opt(const json_t *data, const char *name, bool *out, char errmsg[CF_ERRMSG_SIZE])
{
    int rv = pki_field_bool(data, name, out, errmsg);
    return rv == CF_ENOTFOUND ? CF_OK : rv;
}

int pki_field_seconds_opt(const json_t *data,
                          const char *name,
                          int64_t *out,
                          char errmsg[CF_ERRMSG_SIZE])
{
    int rv = pki_field_seconds(data, name, out, errmsg);
    return rv == CF_ENOTFOUND ? CF_OK : rv;
}
