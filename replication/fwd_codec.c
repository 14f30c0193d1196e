/*
 * Codec of forwarded requests and responses (format in fwd_codec.h). Encoding uses msgpack-c's
 * packer on a cf_buf. Decoding reads the bytes with a small cursor instead of msgpack-c's
 * object tree: the tree allocates for an array's declared count before reading it (a 5-byte
 * array header can ask for gigabytes), and the cursor gives exact types and a message naming
 * the field at fault without an intermediate copy of a 64 MiB body. Every read checks the
 * bytes left first; skipping an unknown value is iterative (no recursion on nesting depth).
 */
#include "replication/fwd_codec.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "lib/mem.h"

/* Encoding ---------------------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    return cf_buf_append(data, p, n) == CF_OK ? 0 : -1;
}

static bool method_ok(const char *m, size_t len)
{
    if (len == 0 || len > REPL_FWD_MAX_METHOD) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)m[i];
        bool alnum =
            (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!alnum && (ch == 0 || strchr("!#$%&'*+-.^_`|~", ch) == NULL)) {
            return false;
        }
    }
    return true;
}

static int check_headers(const struct repl_fwd_header *h, size_t n)
{
    if (n > REPL_FWD_MAX_HEADERS) {
        return CF_ETOOBIG;
    }
    if (n > 0 && h == NULL) {
        return CF_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (h[i].name == NULL || h[i].name[0] == '\0') {
            return CF_EINVAL;
        }
        size_t len = strlen(h[i].name) + (h[i].value != NULL ? strlen(h[i].value) : 0);
        if (len > REPL_FWD_MAX_HEADER_BYTES) {
            return CF_ETOOBIG;
        }
    }
    return CF_OK;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    return msgpack_pack_str_with_body(pk, s != NULL ? s : "", len);
}

static int pack_common(msgpack_packer *pk,
                       const struct repl_fwd_header *h,
                       size_t n_headers,
                       const uint8_t *body,
                       size_t body_len)
{
    int err = 0;
    err |= pack_str(pk, "h");
    err |= msgpack_pack_array(pk, (uint32_t)n_headers);
    for (size_t i = 0; i < n_headers && err == 0; i++) {
        err |= msgpack_pack_array(pk, 2);
        err |= pack_str(pk, h[i].name);
        err |= pack_str(pk, h[i].value);
    }
    err |= pack_str(pk, "b");
    err |= msgpack_pack_bin_with_body(pk, body_len > 0 ? body : (const uint8_t *)"", body_len);
    return err;
}

int repl_fwd_request_encode(const struct repl_fwd_request *r, struct cf_buf *out)
{
    if (r->method == NULL || r->path == NULL || !method_ok(r->method, strlen(r->method)) ||
        r->path[0] == '\0' || r->remote_port < 0 || r->remote_port > 65535 ||
        (r->body_len > 0 && r->body == NULL)) {
        return CF_EINVAL;
    }
    if (strlen(r->path) > REPL_FWD_MAX_PATH || r->body_len > REPL_FWD_MAX_BODY ||
        (r->remote_addr != NULL && strlen(r->remote_addr) > REPL_FWD_MAX_ADDR)) {
        return CF_ETOOBIG;
    }
    int rv = check_headers(r->headers, r->n_headers);
    if (rv != CF_OK) {
        return rv;
    }
    size_t start = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    int err = 0;
    err |= msgpack_pack_map(&pk, 7);
    err |= pack_str(&pk, "v");
    err |= msgpack_pack_uint32(&pk, REPL_FWD_FORMAT);
    err |= pack_str(&pk, "m");
    err |= pack_str(&pk, r->method);
    err |= pack_str(&pk, "p");
    err |= pack_str(&pk, r->path);
    err |= pack_common(&pk, r->headers, r->n_headers, r->body, r->body_len);
    err |= pack_str(&pk, "ra");
    err |= pack_str(&pk, r->remote_addr);
    err |= pack_str(&pk, "rp");
    err |= msgpack_pack_uint32(&pk, (uint32_t)r->remote_port);
    if (err != 0) {
        out->len = start;
        return CF_ENOMEM;
    }
    return CF_OK;
}

int repl_fwd_response_encode(const struct repl_fwd_response *r, struct cf_buf *out)
{
    if (r->status < 100 || r->status > 599 || (r->body_len > 0 && r->body == NULL)) {
        return CF_EINVAL;
    }
    if (r->body_len > REPL_FWD_MAX_BODY) {
        return CF_ETOOBIG;
    }
    int rv = check_headers(r->headers, r->n_headers);
    if (rv != CF_OK) {
        return rv;
    }
    size_t start = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    int err = 0;
    err |= msgpack_pack_map(&pk, 5);
    err |= pack_str(&pk, "v");
    err |= msgpack_pack_uint32(&pk, REPL_FWD_FORMAT);
    err |= pack_str(&pk, "s");
    err |= msgpack_pack_uint32(&pk, (uint32_t)r->status);
    err |= pack_common(&pk, r->headers, r->n_headers, r->body, r->body_len);
    err |= pack_str(&pk, "i");
    err |= msgpack_pack_uint64(&pk, r->index);
    if (err != 0) {
        out->len = start;
        return CF_ENOMEM;
    }
    return CF_OK;
}

/* Decoding ---------------------------------------------------------------------------------- */

struct rd
{
    const uint8_t *p;
    size_t len;
    size_t off;
    const char *what; /* "request" or "response", for messages */
    char *errmsg;
};

enum rd_kind {
    RD_STR,
    RD_BIN,
    RD_UINT,
    RD_ARRAY,
    RD_MAP,
};

static const char *kind_name(enum rd_kind k)
{
    switch (k) {
        case RD_STR:
            return "a string";
        case RD_BIN:
            return "binary";
        case RD_UINT:
            return "an unsigned integer";
        case RD_ARRAY:
            return "an array";
        case RD_MAP:
            return "a map";
    }
    return "?";
}

static int fail(struct rd *r, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct rd *r, int rv, const char *fmt, ...)
{
    char text[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cf_errmsg_printf(r->errmsg, "forwarded %s: %s", r->what, text);
    return rv;
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Reads one value of the given kind. For strings and bins *ptr points into the input and *v
 * is the length; for arrays and maps *v is the count; for integers *v is the value. */
static int rd_value(struct rd *r,
                    enum rd_kind kind,
                    const char *field,
                    const uint8_t **ptr,
                    uint64_t *v)
{
    if (r->off >= r->len) {
        return fail(r, CF_EMALFORMED, "%s: truncated", field);
    }
    uint8_t t = r->p[r->off];
    size_t lenbytes = 0;
    bool inline_val = false;
    uint64_t inl = 0;
    bool match = false;
    switch (kind) {
        case RD_STR:
            if (t >= 0xa0 && t <= 0xbf) {
                match = inline_val = true;
                inl = t & 0x1fu;
            } else if (t >= 0xd9 && t <= 0xdb) {
                match = true;
                lenbytes = (size_t)1 << (t - 0xd9);
            }
            break;
        case RD_BIN:
            if (t >= 0xc4 && t <= 0xc6) {
                match = true;
                lenbytes = (size_t)1 << (t - 0xc4);
            }
            break;
        case RD_UINT:
            if (t <= 0x7f) {
                match = inline_val = true;
                inl = t;
            } else if (t >= 0xcc && t <= 0xcf) {
                match = true;
                lenbytes = (size_t)1 << (t - 0xcc);
            }
            break;
        case RD_ARRAY:
            if (t >= 0x90 && t <= 0x9f) {
                match = inline_val = true;
                inl = t & 0x0fu;
            } else if (t == 0xdc || t == 0xdd) {
                match = true;
                lenbytes = t == 0xdc ? 2 : 4;
            }
            break;
        case RD_MAP:
            if (t >= 0x80 && t <= 0x8f) {
                match = inline_val = true;
                inl = t & 0x0fu;
            } else if (t == 0xde || t == 0xdf) {
                match = true;
                lenbytes = t == 0xde ? 2 : 4;
            }
            break;
    }
    if (!match) {
        return fail(r, CF_EMALFORMED, "%s: not %s", field, kind_name(kind));
    }
    r->off++;
    if (inline_val) {
        *v = inl;
    } else {
        if (lenbytes > r->len - r->off) {
            return fail(r, CF_EMALFORMED, "%s: truncated", field);
        }
        *v = get_be(r->p + r->off, lenbytes);
        r->off += lenbytes;
    }
    if (kind == RD_STR || kind == RD_BIN) {
        if (*v > r->len - r->off) {
            return fail(r, CF_EMALFORMED, "%s: truncated", field);
        }
        *ptr = r->p + r->off;
        r->off += (size_t)*v;
    } else if (kind == RD_ARRAY || kind == RD_MAP) {
        /* Every element takes at least one byte. */
        uint64_t min = kind == RD_MAP ? 2 * *v : *v;
        if (min > r->len - r->off) {
            return fail(r, CF_EMALFORMED, "%s: truncated", field);
        }
    }
    return CF_OK;
}

/* Skips one value of any type (an unknown key's). */
static int rd_skip(struct rd *r, const char *field)
{
    uint64_t pending = 1;
    while (pending > 0) {
        if (pending > r->len - r->off) {
            return fail(r, CF_EMALFORMED, "%s: truncated", field);
        }
        uint8_t t = r->p[r->off++];
        pending--;
        size_t lenbytes = 0;
        uint64_t fixed = 0;
        int kind = 0; /* 0: payload of `n + fixed` bytes, 1: array count, 2: map count */
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            continue;
        } else if (t >= 0x80 && t <= 0x8f) {
            pending += 2u * (t & 0x0fu);
            continue;
        } else if (t >= 0x90 && t <= 0x9f) {
            pending += t & 0x0fu;
            continue;
        } else if (t >= 0xa0 && t <= 0xbf) {
            fixed = t & 0x1fu;
        } else if (t >= 0xc4 && t <= 0xc6) {
            lenbytes = (size_t)1 << (t - 0xc4);
        } else if (t >= 0xc7 && t <= 0xc9) {
            lenbytes = (size_t)1 << (t - 0xc7);
            fixed = 1;
        } else if (t == 0xca || t == 0xce || t == 0xd2) {
            fixed = 4;
        } else if (t == 0xcb || t == 0xcf || t == 0xd3) {
            fixed = 8;
        } else if (t == 0xcc || t == 0xd0) {
            fixed = 1;
        } else if (t == 0xcd || t == 0xd1) {
            fixed = 2;
        } else if (t >= 0xd4 && t <= 0xd8) {
            fixed = 1 + ((uint64_t)1 << (t - 0xd4));
        } else if (t >= 0xd9 && t <= 0xdb) {
            lenbytes = (size_t)1 << (t - 0xd9);
        } else if (t == 0xdc || t == 0xdd) {
            lenbytes = t == 0xdc ? 2 : 4;
            kind = 1;
        } else if (t == 0xde || t == 0xdf) {
            lenbytes = t == 0xde ? 2 : 4;
            kind = 2;
        } else {
            return fail(r, CF_EMALFORMED, "%s: invalid msgpack byte 0x%02x", field, t);
        }
        if (lenbytes > r->len - r->off) {
            return fail(r, CF_EMALFORMED, "%s: truncated", field);
        }
        uint64_t n = get_be(r->p + r->off, lenbytes);
        r->off += lenbytes;
        if (kind == 1) {
            pending += n;
        } else if (kind == 2) {
            pending += 2 * n;
        } else {
            if (n > r->len - r->off || fixed > r->len - r->off - n) {
                return fail(r, CF_EMALFORMED, "%s: truncated", field);
            }
            r->off += (size_t)(n + fixed);
        }
    }
    return CF_OK;
}

/* A string value copied out as a C string: no NUL inside, at most max bytes (CF_ETOOBIG). */
static int rd_cstr(struct rd *r, const char *field, size_t max, bool empty_ok, char **out)
{
    const uint8_t *s = NULL;
    uint64_t len = 0;
    int rv = rd_value(r, RD_STR, field, &s, &len);
    if (rv != CF_OK) {
        return rv;
    }
    if (len > max) {
        return fail(r, CF_ETOOBIG, "%s: longer than %zu bytes", field, max);
    }
    if (len == 0 && !empty_ok) {
        return fail(r, CF_EMALFORMED, "%s: empty", field);
    }
    if (memchr(s, '\0', (size_t)len) != NULL) {
        return fail(r, CF_EMALFORMED, "%s: contains a NUL byte", field);
    }
    *out = cf_strndup((const char *)s, (size_t)len);
    return *out == NULL ? CF_ENOMEM : CF_OK;
}

static int rd_headers(struct rd *r, struct repl_fwd_header **out, size_t *n_out)
{
    uint64_t n = 0;
    const uint8_t *unused = NULL;
    int rv = rd_value(r, RD_ARRAY, "\"h\"", &unused, &n);
    if (rv != CF_OK) {
        return rv;
    }
    if (n > REPL_FWD_MAX_HEADERS) {
        return fail(r, CF_ETOOBIG, "\"h\": more than %d headers", REPL_FWD_MAX_HEADERS);
    }
    struct repl_fwd_header *h = cf_calloc(n > 0 ? (size_t)n : 1, sizeof(*h));
    if (h == NULL) {
        return CF_ENOMEM;
    }
    *out = h;
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        char field[40];
        snprintf(field, sizeof(field), "header %zu", i);
        uint64_t two = 0;
        rv = rd_value(r, RD_ARRAY, field, &unused, &two);
        if (rv != CF_OK) {
            return rv;
        }
        if (two != 2) {
            return fail(r, CF_EMALFORMED, "%s: not a [name, value] pair", field);
        }
        const uint8_t *name = NULL;
        const uint8_t *value = NULL;
        uint64_t nlen = 0;
        uint64_t vlen = 0;
        char nfield[48];
        char vfield[48];
        snprintf(nfield, sizeof(nfield), "%s name", field);
        snprintf(vfield, sizeof(vfield), "%s value", field);
        rv = rd_value(r, RD_STR, nfield, &name, &nlen);
        if (rv == CF_OK) {
            rv = rd_value(r, RD_STR, vfield, &value, &vlen);
        }
        if (rv != CF_OK) {
            return rv;
        }
        if (nlen + vlen > REPL_FWD_MAX_HEADER_BYTES) {
            return fail(r, CF_ETOOBIG, "%s: name and value longer than %zu bytes", field,
                        REPL_FWD_MAX_HEADER_BYTES);
        }
        if (nlen == 0) {
            return fail(r, CF_EMALFORMED, "%s: empty name", field);
        }
        if (memchr(name, '\0', (size_t)nlen) != NULL || memchr(value, '\0', (size_t)vlen) != NULL) {
            return fail(r, CF_EMALFORMED, "%s: contains a NUL byte", field);
        }
        h[i].name = cf_strndup((const char *)name, (size_t)nlen);
        h[i].value = cf_strndup((const char *)value, (size_t)vlen);
        *n_out = i + 1;
        if (h[i].name == NULL || h[i].value == NULL) {
            return CF_ENOMEM;
        }
    }
    return CF_OK;
}

static int rd_body(struct rd *r, uint8_t **out, size_t *len_out)
{
    const uint8_t *b = NULL;
    uint64_t len = 0;
    int rv = rd_value(r, RD_BIN, "\"b\"", &b, &len);
    if (rv != CF_OK) {
        return rv;
    }
    if (len > REPL_FWD_MAX_BODY) {
        return fail(r, CF_ETOOBIG, "\"b\": body larger than %zu bytes", REPL_FWD_MAX_BODY);
    }
    if (len == 0) {
        return CF_OK;
    }
    *out = cf_memdup(b, (size_t)len);
    if (*out == NULL) {
        return CF_ENOMEM;
    }
    *len_out = (size_t)len;
    return CF_OK;
}

static int rd_uint_max(struct rd *r, const char *field, uint64_t max, uint64_t *v)
{
    const uint8_t *unused = NULL;
    int rv = rd_value(r, RD_UINT, field, &unused, v);
    if (rv == CF_OK && *v > max) {
        return fail(r, CF_EMALFORMED, "%s: %llu is above %llu", field, (unsigned long long)*v,
                    (unsigned long long)max);
    }
    return rv;
}

/* Opens the message: a map whose first key is "v" with a known version. On success *n_keys
 * is the number of keys left. */
static int rd_open(struct rd *r, uint64_t *n_keys)
{
    const uint8_t *k = NULL;
    uint64_t n = 0;
    uint64_t klen = 0;
    int rv = rd_value(r, RD_MAP, "message", &k, &n);
    if (rv != CF_OK) {
        return rv;
    }
    if (n > REPL_FWD_MAX_KEYS) {
        return fail(r, CF_EMALFORMED, "more than %d keys", REPL_FWD_MAX_KEYS);
    }
    if (n == 0) {
        return fail(r, CF_EMALFORMED, "missing \"v\"");
    }
    rv = rd_value(r, RD_STR, "key 0", &k, &klen);
    if (rv != CF_OK) {
        return rv;
    }
    if (klen != 1 || k[0] != 'v') {
        return fail(r, CF_EMALFORMED, "the first key is not \"v\"");
    }
    uint64_t v = 0;
    const uint8_t *unused = NULL;
    rv = rd_value(r, RD_UINT, "\"v\"", &unused, &v);
    if (rv != CF_OK) {
        return rv;
    }
    if (v > REPL_FWD_FORMAT) {
        cf_errmsg_printf(r->errmsg,
                         "forwarded %s: format version %llu is newer than this node's %d "
                         "(upgrade this node)",
                         r->what, (unsigned long long)v, REPL_FWD_FORMAT);
        return CF_EVERSION;
    }
    if (v == 0) {
        return fail(r, CF_EMALFORMED, "format version 0 is not valid");
    }
    *n_keys = n - 1;
    return CF_OK;
}

/* Reads the next key. *idx is its index in keys[] or -1 for an unknown key (whose value the
 * caller skips). Duplicates of any key, known or not, are refused; seen[] holds the key spans
 * read so far (at most REPL_FWD_MAX_KEYS). */
struct key_span
{
    const uint8_t *p;
    size_t len;
};

static int rd_key(struct rd *r,
                  const char *const *keys,
                  size_t n_known,
                  struct key_span *seen,
                  size_t *n_seen,
                  int *idx)
{
    const uint8_t *k = NULL;
    uint64_t klen = 0;
    int rv = rd_value(r, RD_STR, "key", &k, &klen);
    if (rv != CF_OK) {
        return rv;
    }
    for (size_t i = 0; i < *n_seen; i++) {
        if (seen[i].len == klen && memcmp(seen[i].p, k, (size_t)klen) == 0) {
            return fail(r, CF_EMALFORMED, "key \"%.*s\" appears twice", klen > 16 ? 16 : (int)klen,
                        (const char *)k);
        }
    }
    seen[*n_seen].p = k;
    seen[*n_seen].len = (size_t)klen;
    (*n_seen)++;
    *idx = -1;
    for (size_t i = 0; i < n_known; i++) {
        if (strlen(keys[i]) == klen && memcmp(keys[i], k, (size_t)klen) == 0) {
            *idx = (int)i;
        }
    }
    return CF_OK;
}

static int rd_close(struct rd *r, const char *const *keys, size_t n_known, unsigned found)
{
    for (size_t i = 0; i < n_known; i++) {
        if ((found & (1u << i)) == 0) {
            return fail(r, CF_EMALFORMED, "missing \"%s\"", keys[i]);
        }
    }
    if (r->off != r->len) {
        return fail(r, CF_EMALFORMED, "%zu trailing bytes after the map", r->len - r->off);
    }
    return CF_OK;
}

static const char *const req_keys[] = {"m", "p", "h", "b", "ra", "rp"};
#define N_REQ_KEYS (sizeof(req_keys) / sizeof(req_keys[0]))

static int request_fields(struct rd *r, struct repl_fwd_request *out)
{
    uint64_t n = 0;
    int rv = rd_open(r, &n);
    if (rv != CF_OK) {
        return rv;
    }
    struct key_span seen[REPL_FWD_MAX_KEYS];
    size_t n_seen = 1;
    seen[0].p = (const uint8_t *)"v";
    seen[0].len = 1;
    unsigned found = 0;
    for (uint64_t i = 0; i < n; i++) {
        int idx = -1;
        rv = rd_key(r, req_keys, N_REQ_KEYS, seen, &n_seen, &idx);
        if (rv != CF_OK) {
            return rv;
        }
        uint64_t port = 0;
        switch (idx) {
            case 0:
                rv = rd_cstr(r, "\"m\"", REPL_FWD_MAX_METHOD, false, &out->method);
                if (rv == CF_OK && !method_ok(out->method, strlen(out->method))) {
                    rv = fail(r, CF_EMALFORMED, "\"m\": not an HTTP method");
                }
                break;
            case 1:
                rv = rd_cstr(r, "\"p\"", REPL_FWD_MAX_PATH, false, &out->path);
                break;
            case 2:
                rv = rd_headers(r, &out->headers, &out->n_headers);
                break;
            case 3:
                rv = rd_body(r, &out->body, &out->body_len);
                break;
            case 4:
                rv = rd_cstr(r, "\"ra\"", REPL_FWD_MAX_ADDR, true, &out->remote_addr);
                break;
            case 5:
                rv = rd_uint_max(r, "\"rp\"", 65535, &port);
                out->remote_port = (int)port;
                break;
            default:
                rv = rd_skip(r, "unknown key");
                break;
        }
        if (rv != CF_OK) {
            return rv;
        }
        if (idx >= 0) {
            found |= 1u << idx;
        }
    }
    return rd_close(r, req_keys, N_REQ_KEYS, found);
}

int repl_fwd_request_decode(const uint8_t *p,
                            size_t n,
                            struct repl_fwd_request *out,
                            char errmsg[CF_ERRMSG_SIZE])
{
    memset(out, 0, sizeof(*out));
    struct rd r = {.p = p, .len = n, .what = "request", .errmsg = errmsg};
    int rv = request_fields(&r, out);
    if (rv != CF_OK) {
        if (rv == CF_ENOMEM) {
            cf_errmsg_printf(errmsg, "forwarded request: out of memory");
        }
        repl_fwd_request_free(out);
    }
    return rv;
}

static void free_headers(struct repl_fwd_header *h, size_t n)
{
    for (size_t i = 0; h != NULL && i < n; i++) {
        cf_free(h[i].name);
        cf_free(h[i].value);
    }
    cf_free(h);
}

void repl_fwd_request_free(struct repl_fwd_request *r)
{
    if (r == NULL) {
        return;
    }
    cf_free(r->method);
    cf_free(r->path);
    free_headers(r->headers, r->n_headers);
    cf_free(r->body);
    cf_free(r->remote_addr);
    memset(r, 0, sizeof(*r));
}

static const char *const resp_keys[] = {"s", "h", "b", "i"};
#define N_RESP_KEYS (sizeof(resp_keys) / sizeof(resp_keys[0]))

static int response_fields(struct rd *r, struct repl_fwd_response *out)
{
    uint64_t n = 0;
    int rv = rd_open(r, &n);
    if (rv != CF_OK) {
        return rv;
    }
    struct key_span seen[REPL_FWD_MAX_KEYS];
    size_t n_seen = 1;
    seen[0].p = (const uint8_t *)"v";
    seen[0].len = 1;
    unsigned found = 0;
    for (uint64_t i = 0; i < n; i++) {
        int idx = -1;
        rv = rd_key(r, resp_keys, N_RESP_KEYS, seen, &n_seen, &idx);
        if (rv != CF_OK) {
            return rv;
        }
        uint64_t v = 0;
        const uint8_t *unused = NULL;
        switch (idx) {
            case 0:
                rv = rd_uint_max(r, "\"s\"", 599, &v);
                if (rv == CF_OK && v < 100) {
                    rv = fail(r, CF_EMALFORMED, "\"s\": status %llu is below 100",
                              (unsigned long long)v);
                }
                out->status = (int)v;
                break;
            case 1:
                rv = rd_headers(r, &out->headers, &out->n_headers);
                break;
            case 2:
                rv = rd_body(r, &out->body, &out->body_len);
                break;
            case 3:
                rv = rd_value(r, RD_UINT, "\"i\"", &unused, &out->index);
                break;
            default:
                rv = rd_skip(r, "unknown key");
                break;
        }
        if (rv != CF_OK) {
            return rv;
        }
        if (idx >= 0) {
            found |= 1u << idx;
        }
    }
    return rd_close(r, resp_keys, N_RESP_KEYS, found);
}

int repl_fwd_response_decode(const uint8_t *p,
                             size_t n,
                             struct repl_fwd_response *out,
                             char errmsg[CF_ERRMSG_SIZE])
{
    memset(out, 0, sizeof(*out));
    struct rd r = {.p = p, .len = n, .what = "response", .errmsg = errmsg};
    int rv = response_fields(&r, out);
    if (rv != CF_OK) {
        if (rv == CF_ENOMEM) {
            cf_errmsg_printf(errmsg, "forwarded response: out of memory");
        }
        repl_fwd_response_free(out);
    }
    return rv;
}

void repl_fwd_response_free(struct repl_fwd_response *r)
{
    if (r == NULL) {
        return;
    }
    free_headers(r->headers, r->n_headers);
    cf_free(r->body);
    memset(r, 0, sizeof(*r));
}
