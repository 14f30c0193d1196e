/*
 * Compact JSON output (lib/json.h).
 */
#include "lib/json.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#define MAX_DEPTH 2048

/* The bytes a JSON string cannot hold as they are. */
static inline bool needs_escape(uint8_t c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* A word with each byte equal to b. */
#define BYTES(b) ((uint64_t)0x0101010101010101ull * (uint8_t)(b))

/* Whether any byte of the word needs escaping: below 0x20 (the classic "has less than" test;
 * exact for a bound below 0x80), or equal to '"' or '\\' (a zero byte after xor). */
static inline bool word_needs_escape(uint64_t v)
{
    const uint64_t high = BYTES(0x80);
    uint64_t q = v ^ BYTES('"');
    uint64_t b = v ^ BYTES('\\');
    return (((v - BYTES(0x20)) & ~v) | ((q - BYTES(1)) & ~q) | ((b - BYTES(1)) & ~b)) & high;
}

/* The end of the run of bytes from p that need no escaping: eight at a time while no byte in
 * the word needs it, then byte by byte. */
static const uint8_t *plain_run(const uint8_t *p, const uint8_t *end)
{
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        if (word_needs_escape(v)) {
            break;
        }
        p += 8;
    }
    while (p < end && !needs_escape(*p)) {
        p++;
    }
    return p;
}

static int put_string(struct cf_buf *out, const char *s, size_t n)
{
    /* Worst case 6 bytes per input byte, plus the quotes. */
    int rv = cf_buf_reserve(out, n + 2);
    if (rv != CF_OK) {
        return rv;
    }
    out->data[out->len++] = '"';
    const uint8_t *p = (const uint8_t *)s;
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *run = p;
        p = plain_run(p, end);
        if (p > run) {
            rv = cf_buf_append(out, run, (size_t)(p - run));
            if (rv != CF_OK) {
                return rv;
            }
        }
        if (p == end) {
            break;
        }
        char esc[8];
        size_t k = 2;
        esc[0] = '\\';
        switch (*p) {
            case '"':
                esc[1] = '"';
                break;
            case '\\':
                esc[1] = '\\';
                break;
            case '\b':
                esc[1] = 'b';
                break;
            case '\f':
                esc[1] = 'f';
                break;
            case '\n':
                esc[1] = 'n';
                break;
            case '\r':
                esc[1] = 'r';
                break;
            case '\t':
                esc[1] = 't';
                break;
            default:
                k = (size_t)snprintf(esc, sizeof(esc), "\\u%04X", *p);
                break;
        }
        rv = cf_buf_append(out, esc, k);
        if (rv != CF_OK) {
            return rv;
        }
        p++;
    }
    return cf_buf_append(out, "\"", 1);
}

/* jansson's real format: 17 significant digits, ".0" when the text would read as an integer,
 * no '+' and no leading zeros in the exponent ("1e+20" is "1e20"). */
static int put_real(struct cf_buf *out, double v)
{
    char num[64];
    int n = snprintf(num, sizeof(num), "%.17g", v);
    if (n <= 0 || (size_t)n >= sizeof(num) - 3) {
        return CF_EINVAL;
    }
    if (strchr(num, '.') == NULL && strchr(num, 'e') == NULL) {
        memcpy(num + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(num, 'e');
    if (e != NULL) {
        char *start = e + 1;
        char *end = start + 1;
        if (*start == '-') {
            start++;
        }
        while (*end == '0') {
            end++;
        }
        if (end != start) {
            memmove(start, end, (size_t)(num + n - end) + 1);
            n -= (int)(end - start);
        }
    }
    return cf_buf_append(out, num, (size_t)n);
}

static int dump(const json_t *j, struct cf_buf *out, int depth)
{
    if (depth > MAX_DEPTH) {
        return CF_EINVAL;
    }
    char num[64];
    int rv;
    switch (json_typeof(j)) {
        case JSON_NULL:
            return cf_buf_append(out, "null", 4);
        case JSON_TRUE:
            return cf_buf_append(out, "true", 4);
        case JSON_FALSE:
            return cf_buf_append(out, "false", 5);
        case JSON_INTEGER: {
            int n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
            return cf_buf_append(out, num, (size_t)n);
        }
        case JSON_REAL:
            return put_real(out, json_real_value(j));
        case JSON_STRING:
            return put_string(out, json_string_value(j), json_string_length(j));
        case JSON_ARRAY: {
            rv = cf_buf_append(out, "[", 1);
            size_t n = json_array_size(j);
            for (size_t i = 0; rv == CF_OK && i < n; i++) {
                if (i > 0) {
                    rv = cf_buf_append(out, ",", 1);
                }
                if (rv == CF_OK) {
                    rv = dump(json_array_get(j, i), out, depth + 1);
                }
            }
            return rv == CF_OK ? cf_buf_append(out, "]", 1) : rv;
        }
        case JSON_OBJECT: {
            rv = cf_buf_append(out, "{", 1);
            bool first = true;
            for (void *it = json_object_iter((json_t *)j); rv == CF_OK && it != NULL;
                 it = json_object_iter_next((json_t *)j, it)) {
                if (!first) {
                    rv = cf_buf_append(out, ",", 1);
                }
                first = false;
                if (rv == CF_OK) {
                    rv = put_string(out, json_object_iter_key(it), json_object_iter_key_len(it));
                }
                if (rv == CF_OK) {
                    rv = cf_buf_append(out, ":", 1);
                }
                if (rv == CF_OK) {
                    rv = dump(json_object_iter_value(it), out, depth + 1);
                }
            }
            return rv == CF_OK ? cf_buf_append(out, "}", 1) : rv;
        }
    }
    return CF_EINVAL;
}

int cf_json_dump(const json_t *j, struct cf_buf *out)
{
    if (j == NULL) {
        return CF_EINVAL;
    }
    return dump(j, out, 0);
}

char *cf_json_dumps(const json_t *j, size_t *len)
{
    struct cf_buf b;
    cf_buf_init(&b);
    if (cf_json_dump(j, &b) != CF_OK || cf_buf_reserve(&b, 0) != CF_OK) {
        cf_buf_close(&b);
        return NULL;
    }
    return (char *)cf_buf_steal(&b, len);
}
