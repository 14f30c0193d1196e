/*
 * Unit tests for replication/fwd_codec.c: request and response round trips (empty body, binary
 * body with NUL bytes, 256 headers, every limit at its maximum), every limit one past its
 * maximum (CF_ETOOBIG from both encoder and decoder), wrong types, missing and duplicate keys,
 * bad values, trailing bytes, truncation at every length (CF_EMALFORMED), a higher "v"
 * (CF_EVERSION naming both versions), unknown keys of every msgpack type skipped, and
 * allocation failures at every step of decoding. Every test checks cf_mem_live() for leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "replication/fwd_codec.h"

/* A msgpack writer for hand-made messages. */
struct mp
{
    struct cf_buf b;
    msgpack_packer pk;
};

static int mp_write(void *data, const char *p, size_t n)
{
    return cf_buf_append(data, p, n) == CF_OK ? 0 : -1;
}

static void mp_init(struct mp *m)
{
    cf_buf_init(&m->b);
    msgpack_packer_init(&m->pk, &m->b, mp_write);
}

static void mp_str(struct mp *m, const char *s)
{
    assert_int_equal(msgpack_pack_str_with_body(&m->pk, s, strlen(s)), 0);
}

static void mp_strn(struct mp *m, const char *s, size_t n)
{
    assert_int_equal(msgpack_pack_str_with_body(&m->pk, s, n), 0);
}

static void mp_uint(struct mp *m, uint64_t v)
{
    assert_int_equal(msgpack_pack_uint64(&m->pk, v), 0);
}

/* Fields of a request, each either the default value or written by `custom`. */
typedef void (*field_fn)(struct mp *m);

struct shape
{
    const char *omit;   /* key left out */
    const char *custom; /* key whose value custom() writes */
    field_fn fn;        /* for custom */
    const char *extra;  /* an extra key written (value: custom fn) after the others */
    unsigned version;   /* 0 = REPL_FWD_FORMAT */
};

static void default_value(struct mp *m, const char *key)
{
    if (strcmp(key, "m") == 0) {
        mp_str(m, "PUT");
    } else if (strcmp(key, "p") == 0) {
        mp_str(m, "/v1/secret/foo");
    } else if (strcmp(key, "h") == 0) {
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_array(&m->pk, 2);
        mp_str(m, "X-Vault-Token");
        mp_str(m, "s.abc");
    } else if (strcmp(key, "b") == 0) {
        msgpack_pack_bin_with_body(&m->pk, "{}", 2);
    } else if (strcmp(key, "ra") == 0) {
        mp_str(m, "10.0.0.1");
    } else if (strcmp(key, "rp") == 0) {
        mp_uint(m, 4242);
    } else if (strcmp(key, "s") == 0) {
        mp_uint(m, 204);
    } else if (strcmp(key, "i") == 0) {
        mp_uint(m, 7);
    }
}

static void build(struct mp *m, const char *const *keys, size_t n_keys, const struct shape *sh)
{
    mp_init(m);
    size_t n = 1 + n_keys - (sh->omit != NULL ? 1 : 0) + (sh->extra != NULL ? 1 : 0);
    msgpack_pack_map(&m->pk, (uint32_t)n);
    mp_str(m, "v");
    mp_uint(m, sh->version != 0 ? sh->version : REPL_FWD_FORMAT);
    for (size_t i = 0; i < n_keys; i++) {
        if (sh->omit != NULL && strcmp(sh->omit, keys[i]) == 0) {
            continue;
        }
        mp_str(m, keys[i]);
        if (sh->custom != NULL && strcmp(sh->custom, keys[i]) == 0) {
            sh->fn(m);
        } else {
            default_value(m, keys[i]);
        }
    }
    if (sh->extra != NULL) {
        mp_str(m, sh->extra);
        sh->fn(m);
    }
}

static const char *const req_keys[] = {"m", "p", "h", "b", "ra", "rp"};
static const char *const resp_keys[] = {"s", "h", "b", "i"};

static int decode_req(const struct mp *m, char *errmsg)
{
    struct repl_fwd_request r;
    errmsg[0] = '\0';
    int rv = repl_fwd_request_decode(m->b.data, m->b.len, &r, errmsg);
    if (rv != CF_OK) {
        assert_null(r.method);
        assert_null(r.headers);
        assert_null(r.body);
    }
    repl_fwd_request_free(&r);
    return rv;
}

static int decode_resp(const struct mp *m, char *errmsg)
{
    struct repl_fwd_response r;
    errmsg[0] = '\0';
    int rv = repl_fwd_response_decode(m->b.data, m->b.len, &r, errmsg);
    repl_fwd_response_free(&r);
    return rv;
}

/* Builds a request of the given shape and expects rv with `want` in the message. */
static void expect_req(const struct shape *sh, int rv, const char *want)
{
    struct mp m;
    char errmsg[CF_ERRMSG_SIZE];
    build(&m, req_keys, 6, sh);
    int got = decode_req(&m, errmsg);
    if (got != rv || (want != NULL && strstr(errmsg, want) == NULL)) {
        fail_msg("want %s \"%s\", got %s \"%s\"", cf_strerror(rv), want ? want : "",
                 cf_strerror(got), errmsg);
    }
    cf_buf_close(&m.b);
}

static void expect_resp(const struct shape *sh, int rv, const char *want)
{
    struct mp m;
    char errmsg[CF_ERRMSG_SIZE];
    build(&m, resp_keys, 4, sh);
    int got = decode_resp(&m, errmsg);
    if (got != rv || (want != NULL && strstr(errmsg, want) == NULL)) {
        fail_msg("want %s \"%s\", got %s \"%s\"", cf_strerror(rv), want ? want : "",
                 cf_strerror(got), errmsg);
    }
    cf_buf_close(&m.b);
}

static void check_req_equal(const struct repl_fwd_request *a, const struct repl_fwd_request *b)
{
    assert_string_equal(a->method, b->method);
    assert_string_equal(a->path, b->path);
    assert_int_equal(a->n_headers, b->n_headers);
    for (size_t i = 0; i < a->n_headers; i++) {
        assert_string_equal(a->headers[i].name, b->headers[i].name);
        assert_string_equal(a->headers[i].value, b->headers[i].value);
    }
    assert_int_equal(a->body_len, b->body_len);
    if (a->body_len > 0) {
        assert_memory_equal(a->body, b->body, a->body_len);
    } else {
        assert_null(b->body);
    }
    assert_string_equal(a->remote_addr != NULL ? a->remote_addr : "", b->remote_addr);
    assert_int_equal(a->remote_port, b->remote_port);
}

static void roundtrip_req(const struct repl_fwd_request *in)
{
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(repl_fwd_request_encode(in, &out), CF_OK);
    struct repl_fwd_request r;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = repl_fwd_request_decode(out.data, out.len, &r, errmsg);
    if (rv != CF_OK) {
        fail_msg("decode: %s", errmsg);
    }
    check_req_equal(in, &r);
    repl_fwd_request_free(&r);
    assert_null(r.method);
    cf_buf_close(&out);
}

/* Tests ------------------------------------------------------------------------------------- */

static void test_request_roundtrip(void **state)
{
    (void)state;
    long live = cf_mem_live();
    static const uint8_t bin[] = {0, 1, 0, 0xff, 0, 'x', 0};
    struct repl_fwd_header h[3] = {
        {"X-Vault-Token", "s.abc"}, {"Content-Type", "application/json"}, {"X-Empty", ""}};
    struct repl_fwd_request r = {
        .method = "POST",
        .path = "/v1/secret/foo?list=true",
        .headers = h,
        .n_headers = 3,
        .body = (uint8_t *)bin,
        .body_len = sizeof(bin),
        .remote_addr = "2001:db8::1",
        .remote_port = 65535,
    };
    roundtrip_req(&r);
    /* Empty body, no headers, no address. */
    struct repl_fwd_request e = {.method = "GET", .path = "/v1/sys/health"};
    roundtrip_req(&e);
    assert_int_equal(cf_mem_live(), live);
}

static void test_request_roundtrip_limits(void **state)
{
    (void)state;
    long live = cf_mem_live();
    /* 256 headers, the last of them exactly REPL_FWD_MAX_HEADER_BYTES; an 8 KiB path; a
     * 64-byte address; a 16-byte method. */
    struct repl_fwd_header *h = cf_calloc(REPL_FWD_MAX_HEADERS, sizeof(*h));
    char names[REPL_FWD_MAX_HEADERS][16];
    char *big = cf_malloc(REPL_FWD_MAX_HEADER_BYTES + 1);
    memset(big, 'v', REPL_FWD_MAX_HEADER_BYTES);
    big[REPL_FWD_MAX_HEADER_BYTES] = '\0';
    big[REPL_FWD_MAX_HEADER_BYTES - 1] = '\0'; /* name "n" + 16383 bytes */
    for (size_t i = 0; i < REPL_FWD_MAX_HEADERS; i++) {
        snprintf(names[i], sizeof(names[i]), "h%zu", i);
        h[i].name = names[i];
        h[i].value = "x";
    }
    h[REPL_FWD_MAX_HEADERS - 1].name = "n";
    h[REPL_FWD_MAX_HEADERS - 1].value = big;
    char *path = cf_malloc(REPL_FWD_MAX_PATH + 1);
    memset(path, 'p', REPL_FWD_MAX_PATH);
    path[0] = '/';
    path[REPL_FWD_MAX_PATH] = '\0';
    char addr[REPL_FWD_MAX_ADDR + 1];
    memset(addr, '1', REPL_FWD_MAX_ADDR);
    addr[REPL_FWD_MAX_ADDR] = '\0';
    struct repl_fwd_request r = {
        .method = "ABCDEFGHIJKLMNOP",
        .path = path,
        .headers = h,
        .n_headers = REPL_FWD_MAX_HEADERS,
        .remote_addr = addr,
    };
    roundtrip_req(&r);

    /* One past each limit: the encoder refuses. */
    struct cf_buf out;
    cf_buf_init(&out);
    r.n_headers = REPL_FWD_MAX_HEADERS + 1;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_ETOOBIG);
    r.n_headers = REPL_FWD_MAX_HEADERS;
    big[REPL_FWD_MAX_HEADER_BYTES - 1] = 'v';
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_ETOOBIG);
    big[REPL_FWD_MAX_HEADER_BYTES - 1] = '\0';
    path = cf_realloc(path, REPL_FWD_MAX_PATH + 2);
    path[REPL_FWD_MAX_PATH] = 'p';
    path[REPL_FWD_MAX_PATH + 1] = '\0';
    r.path = path;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_ETOOBIG);
    r.path = "/";
    char addr2[REPL_FWD_MAX_ADDR + 2];
    memset(addr2, '1', sizeof(addr2) - 1);
    addr2[sizeof(addr2) - 1] = '\0';
    r.remote_addr = addr2;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_ETOOBIG);
    r.remote_addr = NULL;
    r.body = (uint8_t *)"x";
    r.body_len = REPL_FWD_MAX_BODY + 1;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_ETOOBIG);
    r.body_len = 0;
    /* Bad arguments. */
    r.method = "GET X";
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    r.method = "ABCDEFGHIJKLMNOPQ";
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    r.method = NULL;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    r.method = "GET";
    r.path = "";
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    r.path = "/";
    r.remote_port = 65536;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    r.remote_port = -1;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    r.remote_port = 0;
    h[0].name = "";
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    h[0].name = NULL;
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_EINVAL);
    assert_int_equal(out.len, 0);
    cf_buf_close(&out);
    cf_free(path);
    cf_free(big);
    cf_free(h);
    assert_int_equal(cf_mem_live(), live);
}

static void test_big_body_roundtrip(void **state)
{
    (void)state;
    long live = cf_mem_live();
    size_t n = REPL_FWD_MAX_BODY;
    uint8_t *body = cf_malloc(n);
    for (size_t i = 0; i < n; i++) {
        body[i] = (uint8_t)(i * 131 + 7);
    }
    struct repl_fwd_response r = {.status = 200, .body = body, .body_len = n, .index = 9};
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(repl_fwd_response_encode(&r, &out), CF_OK);
    assert_true(out.len <= REPL_FWD_MAX_MESSAGE);
    struct repl_fwd_response d;
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(repl_fwd_response_decode(out.data, out.len, &d, errmsg), CF_OK);
    assert_int_equal(d.body_len, n);
    assert_memory_equal(d.body, body, n);
    repl_fwd_response_free(&d);
    /* One byte more: the 5-byte bin32 length says 64 MiB + 1 and the decoder refuses it. */
    cf_buf_reset(&out);
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 5);
    mp_str(&m, "v");
    mp_uint(&m, 1);
    mp_str(&m, "s");
    mp_uint(&m, 200);
    mp_str(&m, "h");
    msgpack_pack_array(&m.pk, 0);
    mp_str(&m, "i");
    mp_uint(&m, 1);
    mp_str(&m, "b");
    msgpack_pack_bin(&m.pk, n + 1);
    assert_int_equal(cf_buf_append(&m.b, body, n), CF_OK);
    assert_int_equal(cf_buf_append(&m.b, "x", 1), CF_OK);
    assert_int_equal(repl_fwd_response_decode(m.b.data, m.b.len, &d, errmsg), CF_ETOOBIG);
    assert_non_null(strstr(errmsg, "body larger than 67108864 bytes"));
    cf_buf_close(&m.b);
    r.body_len = n + 1;
    assert_int_equal(repl_fwd_response_encode(&r, &out), CF_ETOOBIG);
    cf_buf_close(&out);
    cf_free(body);
    assert_int_equal(cf_mem_live(), live);
}

static void test_response_roundtrip(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct repl_fwd_header h[2] = {{"Content-Type", "application/json"}, {"X-Vault-Index", "1"}};
    struct repl_fwd_response r = {.status = 599,
                                  .headers = h,
                                  .n_headers = 2,
                                  .body = (uint8_t *)"{\"a\":1}\0z",
                                  .body_len = 9,
                                  .index = UINT64_MAX};
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(repl_fwd_response_encode(&r, &out), CF_OK);
    struct repl_fwd_response d;
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(repl_fwd_response_decode(out.data, out.len, &d, errmsg), CF_OK);
    assert_int_equal(d.status, 599);
    assert_int_equal(d.n_headers, 2);
    assert_string_equal(d.headers[1].name, "X-Vault-Index");
    assert_string_equal(d.headers[1].value, "1");
    assert_int_equal(d.body_len, 9);
    assert_memory_equal(d.body, r.body, 9);
    assert_true(d.index == UINT64_MAX);
    repl_fwd_response_free(&d);
    /* A request decoder refuses a response and vice versa (different required keys). */
    struct repl_fwd_request q;
    assert_int_equal(repl_fwd_request_decode(out.data, out.len, &q, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "missing \"m\""));
    /* Empty body, status 100. */
    struct repl_fwd_response e = {.status = 100};
    cf_buf_reset(&out);
    assert_int_equal(repl_fwd_response_encode(&e, &out), CF_OK);
    assert_int_equal(repl_fwd_response_decode(out.data, out.len, &d, errmsg), CF_OK);
    assert_int_equal(d.status, 100);
    assert_null(d.body);
    assert_int_equal(d.n_headers, 0);
    repl_fwd_response_free(&d);
    e.status = 99;
    assert_int_equal(repl_fwd_response_encode(&e, &out), CF_EINVAL);
    e.status = 600;
    assert_int_equal(repl_fwd_response_encode(&e, &out), CF_EINVAL);
    cf_buf_close(&out);
    assert_int_equal(cf_mem_live(), live);
}

/* Value writers for shapes. */
static void w_uint(struct mp *m)
{
    mp_uint(m, 3);
}
static void w_str(struct mp *m)
{
    mp_str(m, "x");
}
static void w_bin(struct mp *m)
{
    msgpack_pack_bin_with_body(&m->pk, "x", 1);
}
static void w_neg(struct mp *m)
{
    msgpack_pack_int64(&m->pk, -1);
}
static void w_nil(struct mp *m)
{
    msgpack_pack_nil(&m->pk);
}
static void w_empty_str(struct mp *m)
{
    mp_str(m, "");
}
static void w_nul_str(struct mp *m)
{
    mp_strn(m, "/a\0b", 4);
}
static void w_method_space(struct mp *m)
{
    mp_str(m, "GE T");
}
static void w_method_long(struct mp *m)
{
    mp_str(m, "ABCDEFGHIJKLMNOPQ");
}
static void w_path_long(struct mp *m)
{
    char p[REPL_FWD_MAX_PATH + 1];
    memset(p, 'a', sizeof(p));
    mp_strn(m, p, sizeof(p));
}
static void w_addr_long(struct mp *m)
{
    char p[REPL_FWD_MAX_ADDR + 1];
    memset(p, '1', sizeof(p));
    mp_strn(m, p, sizeof(p));
}
static void w_port_big(struct mp *m)
{
    mp_uint(m, 65536);
}
static void w_status_low(struct mp *m)
{
    mp_uint(m, 99);
}
static void w_status_high(struct mp *m)
{
    mp_uint(m, 600);
}
static void w_hdr_257(struct mp *m)
{
    msgpack_pack_array(&m->pk, REPL_FWD_MAX_HEADERS + 1);
    for (int i = 0; i < REPL_FWD_MAX_HEADERS + 1; i++) {
        msgpack_pack_array(&m->pk, 2);
        mp_str(m, "a");
        mp_str(m, "b");
    }
}
static void w_hdr_big(struct mp *m)
{
    static char v[REPL_FWD_MAX_HEADER_BYTES];
    memset(v, 'v', sizeof(v));
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 2);
    mp_str(m, "a");
    mp_strn(m, v, sizeof(v)); /* 1 + 16384 bytes */
}
static void w_hdr_triple(struct mp *m)
{
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 3);
    mp_str(m, "a");
    mp_str(m, "b");
    mp_str(m, "c");
}
static void w_hdr_not_array(struct mp *m)
{
    msgpack_pack_array(&m->pk, 1);
    mp_str(m, "a");
}
static void w_hdr_name_bin(struct mp *m)
{
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 2);
    msgpack_pack_bin_with_body(&m->pk, "a", 1);
    mp_str(m, "b");
}
static void w_hdr_value_int(struct mp *m)
{
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 2);
    mp_str(m, "a");
    mp_uint(m, 1);
}
static void w_hdr_empty_name(struct mp *m)
{
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 2);
    mp_str(m, "");
    mp_str(m, "b");
}
static void w_hdr_nul(struct mp *m)
{
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 2);
    mp_str(m, "a");
    mp_strn(m, "b\0", 2);
}
static void w_hdr_map(struct mp *m)
{
    msgpack_pack_map(&m->pk, 1);
    mp_str(m, "a");
    mp_str(m, "b");
}
/* An unknown value using every msgpack type, nested. */
static void w_everything(struct mp *m)
{
    msgpack_pack_array(&m->pk, 14);
    msgpack_pack_nil(&m->pk);
    msgpack_pack_true(&m->pk);
    msgpack_pack_int64(&m->pk, -5);
    msgpack_pack_int64(&m->pk, INT64_MIN);
    msgpack_pack_uint64(&m->pk, UINT64_MAX);
    msgpack_pack_float(&m->pk, 1.5f);
    msgpack_pack_double(&m->pk, 2.5);
    mp_str(m, "a string longer than thirty-one bytes, str8");
    msgpack_pack_bin_with_body(&m->pk, "\0\1", 2);
    msgpack_pack_ext_with_body(&m->pk, "abcd", 4, 1);
    msgpack_pack_ext_with_body(&m->pk, "abc", 3, 2);
    msgpack_pack_map(&m->pk, 1);
    mp_str(m, "k");
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_map(&m->pk, 0);
    msgpack_pack_array(&m->pk, 20);
    for (int i = 0; i < 20; i++) {
        mp_uint(m, (uint64_t)i * 1000);
    }
    msgpack_pack_int8(&m->pk, -100);
}

static void test_request_refused(void **state)
{
    (void)state;
    long live = cf_mem_live();
    /* Missing keys. */
    expect_req(&(struct shape){.omit = "m"}, CF_EMALFORMED, "missing \"m\"");
    expect_req(&(struct shape){.omit = "p"}, CF_EMALFORMED, "missing \"p\"");
    expect_req(&(struct shape){.omit = "h"}, CF_EMALFORMED, "missing \"h\"");
    expect_req(&(struct shape){.omit = "b"}, CF_EMALFORMED, "missing \"b\"");
    expect_req(&(struct shape){.omit = "ra"}, CF_EMALFORMED, "missing \"ra\"");
    expect_req(&(struct shape){.omit = "rp"}, CF_EMALFORMED, "missing \"rp\"");
    /* Wrong types. */
    expect_req(&(struct shape){.custom = "m", .fn = w_uint}, CF_EMALFORMED, "\"m\": not a string");
    expect_req(&(struct shape){.custom = "p", .fn = w_bin}, CF_EMALFORMED, "\"p\": not a string");
    expect_req(&(struct shape){.custom = "h", .fn = w_str}, CF_EMALFORMED, "\"h\": not an array");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_map}, CF_EMALFORMED, "not an array");
    expect_req(&(struct shape){.custom = "b", .fn = w_str}, CF_EMALFORMED, "\"b\": not binary");
    expect_req(&(struct shape){.custom = "b", .fn = w_nil}, CF_EMALFORMED, "\"b\": not binary");
    expect_req(&(struct shape){.custom = "ra", .fn = w_uint}, CF_EMALFORMED, "\"ra\": not a str");
    expect_req(&(struct shape){.custom = "rp", .fn = w_str}, CF_EMALFORMED,
               "\"rp\": not an unsigned integer");
    expect_req(&(struct shape){.custom = "rp", .fn = w_neg}, CF_EMALFORMED, "\"rp\": not an uns");
    /* Bad values. */
    expect_req(&(struct shape){.custom = "m", .fn = w_empty_str}, CF_EMALFORMED, "\"m\": empty");
    expect_req(&(struct shape){.custom = "m", .fn = w_method_space}, CF_EMALFORMED,
               "not an HTTP method");
    expect_req(&(struct shape){.custom = "p", .fn = w_empty_str}, CF_EMALFORMED, "\"p\": empty");
    expect_req(&(struct shape){.custom = "p", .fn = w_nul_str}, CF_EMALFORMED, "NUL byte");
    expect_req(&(struct shape){.custom = "rp", .fn = w_port_big}, CF_EMALFORMED,
               "\"rp\": 65536 is above 65535");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_triple}, CF_EMALFORMED,
               "header 0: not a [name, value] pair");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_not_array}, CF_EMALFORMED,
               "header 0: not an array");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_name_bin}, CF_EMALFORMED,
               "header 0 name: not a string");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_value_int}, CF_EMALFORMED,
               "header 0 value: not a string");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_empty_name}, CF_EMALFORMED,
               "header 0: empty name");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_nul}, CF_EMALFORMED, "NUL byte");
    /* Limits. */
    expect_req(&(struct shape){.custom = "m", .fn = w_method_long}, CF_ETOOBIG,
               "\"m\": longer than 16 bytes");
    expect_req(&(struct shape){.custom = "p", .fn = w_path_long}, CF_ETOOBIG,
               "\"p\": longer than 8192 bytes");
    expect_req(&(struct shape){.custom = "ra", .fn = w_addr_long}, CF_ETOOBIG,
               "\"ra\": longer than 64 bytes");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_257}, CF_ETOOBIG,
               "more than 256 headers");
    expect_req(&(struct shape){.custom = "h", .fn = w_hdr_big}, CF_ETOOBIG,
               "header 0: name and value longer than 16384 bytes");
    /* Versions. */
    expect_req(&(struct shape){.version = 2}, CF_EVERSION,
               "format version 2 is newer than this node's 1");
    expect_req(&(struct shape){.version = 2, .custom = "m", .fn = w_uint}, CF_EVERSION,
               "format version 2");
    /* Unknown keys of every type are skipped. */
    expect_req(&(struct shape){.extra = "zz", .fn = w_everything}, CF_OK, NULL);
    expect_req(&(struct shape){.extra = "", .fn = w_nil}, CF_OK, NULL);
    /* A duplicate of a known or unknown key. */
    expect_req(&(struct shape){.extra = "p", .fn = w_str}, CF_EMALFORMED,
               "key \"p\" appears twice");
    expect_req(&(struct shape){.extra = "v", .fn = w_uint}, CF_EMALFORMED,
               "key \"v\" appears twice");
    assert_int_equal(cf_mem_live(), live);
}

static void test_response_refused(void **state)
{
    (void)state;
    long live = cf_mem_live();
    expect_resp(&(struct shape){0}, CF_OK, NULL);
    expect_resp(&(struct shape){.omit = "s"}, CF_EMALFORMED, "missing \"s\"");
    expect_resp(&(struct shape){.omit = "i"}, CF_EMALFORMED, "missing \"i\"");
    expect_resp(&(struct shape){.omit = "h"}, CF_EMALFORMED, "missing \"h\"");
    expect_resp(&(struct shape){.omit = "b"}, CF_EMALFORMED, "missing \"b\"");
    expect_resp(&(struct shape){.custom = "s", .fn = w_status_low}, CF_EMALFORMED,
                "status 99 is below 100");
    expect_resp(&(struct shape){.custom = "s", .fn = w_status_high}, CF_EMALFORMED,
                "600 is above 599");
    expect_resp(&(struct shape){.custom = "s", .fn = w_str}, CF_EMALFORMED, "\"s\": not an uns");
    expect_resp(&(struct shape){.custom = "i", .fn = w_neg}, CF_EMALFORMED, "\"i\": not an uns");
    expect_resp(&(struct shape){.custom = "b", .fn = w_str}, CF_EMALFORMED, "\"b\": not binary");
    expect_resp(&(struct shape){.custom = "h", .fn = w_hdr_257}, CF_ETOOBIG, "256 headers");
    expect_resp(&(struct shape){.version = 7}, CF_EVERSION,
                "forwarded response: format version 7 is newer than this node's 1");
    expect_resp(&(struct shape){.extra = "x", .fn = w_everything}, CF_OK, NULL);
    expect_resp(&(struct shape){.extra = "i", .fn = w_uint}, CF_EMALFORMED, "appears twice");
    assert_int_equal(cf_mem_live(), live);
}

/* Shapes of the whole message. */
static void test_message_shape(void **state)
{
    (void)state;
    long live = cf_mem_live();
    char errmsg[CF_ERRMSG_SIZE];
    struct mp m;
    /* Not a map. */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "message: not a map"));
    cf_buf_close(&m.b);
    /* Empty map. */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 0);
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "missing \"v\""));
    cf_buf_close(&m.b);
    /* "v" not first. */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "m");
    mp_str(&m, "GET");
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "first key is not \"v\""));
    cf_buf_close(&m.b);
    /* A non-string key. */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_str(&m, "v");
    mp_uint(&m, 1);
    mp_uint(&m, 5);
    mp_uint(&m, 5);
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "key: not a string"));
    cf_buf_close(&m.b);
    /* v = 0, v negative, v as a string. */
    struct shape v0 = {0};
    build(&m, req_keys, 6, &v0);
    m.b.data[3] = 0; /* map, fixstr "v", then the fixint version */
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "format version 0 is not valid"));
    m.b.data[3] = 0xff; /* negative fixint -1 */
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "\"v\": not an unsigned integer"));
    /* Trailing bytes. */
    m.b.data[3] = 1;
    assert_int_equal(cf_buf_append(&m.b, "\0", 1), CF_OK);
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "1 trailing bytes after the map"));
    cf_buf_close(&m.b);
    /* Too many keys (65 with "v"). */
    mp_init(&m);
    msgpack_pack_map(&m.pk, REPL_FWD_MAX_KEYS + 1);
    mp_str(&m, "v");
    mp_uint(&m, 1);
    for (int i = 0; i < REPL_FWD_MAX_KEYS; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        mp_str(&m, k);
        mp_uint(&m, 0);
    }
    assert_int_equal(decode_req(&m, errmsg), CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "more than 64 keys"));
    cf_buf_close(&m.b);
    /* Huge declared counts in few bytes: refused as truncated, without allocating. */
    static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(
        repl_fwd_request_decode(huge_map, sizeof(huge_map), &(struct repl_fwd_request){0}, errmsg),
        CF_EMALFORMED);
    static const uint8_t huge_hdrs[] = {0x83, 0xa1, 'v',  0x01, 0xa1, 'h',
                                        0xdd, 0xff, 0xff, 0xff, 0xff};
    struct repl_fwd_request q;
    assert_int_equal(repl_fwd_request_decode(huge_hdrs, sizeof(huge_hdrs), &q, errmsg),
                     CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "\"h\": truncated"));
    static const uint8_t huge_skip[] = {0x82, 0xa1, 'v',  0x01, 0xa1, 'z',
                                        0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(repl_fwd_request_decode(huge_skip, sizeof(huge_skip), &q, errmsg),
                     CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "unknown key: truncated"));
    static const uint8_t bad_byte[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 'z', 0xc1};
    assert_int_equal(repl_fwd_request_decode(bad_byte, sizeof(bad_byte), &q, errmsg),
                     CF_EMALFORMED);
    assert_non_null(strstr(errmsg, "invalid msgpack byte 0xc1"));
    assert_int_equal(repl_fwd_request_decode(NULL, 0, &q, errmsg), CF_EMALFORMED);
    assert_int_equal(cf_mem_live(), live);
}

/* Every proper prefix of a valid message is refused as malformed, without leaks. */
static void test_truncated(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct repl_fwd_header h[2] = {{"A", "b"}, {"Content-Type", "application/json"}};
    struct repl_fwd_request r = {.method = "POST",
                                 .path = "/v1/pki/issue/web",
                                 .headers = h,
                                 .n_headers = 2,
                                 .body = (uint8_t *)"{\"common_name\":\"a\"}",
                                 .body_len = 20,
                                 .remote_addr = "127.0.0.1",
                                 .remote_port = 1};
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(repl_fwd_request_encode(&r, &out), CF_OK);
    for (size_t n = 0; n < out.len; n++) {
        struct repl_fwd_request d;
        char errmsg[CF_ERRMSG_SIZE] = "";
        uint8_t *copy = cf_memdup(out.data, n > 0 ? n : 1); /* exact size, for ASan */
        assert_int_equal(repl_fwd_request_decode(copy, n, &d, errmsg), CF_EMALFORMED);
        assert_non_null(strstr(errmsg, "forwarded request: "));
        assert_null(d.method);
        cf_free(copy);
    }
    struct repl_fwd_response resp = {.status = 201, .headers = h, .n_headers = 2, .index = 1 << 20};
    cf_buf_reset(&out);
    assert_int_equal(repl_fwd_response_encode(&resp, &out), CF_OK);
    for (size_t n = 0; n < out.len; n++) {
        struct repl_fwd_response d;
        char errmsg[CF_ERRMSG_SIZE] = "";
        assert_int_equal(repl_fwd_response_decode(out.data, n, &d, errmsg), CF_EMALFORMED);
        assert_non_null(strstr(errmsg, "forwarded response: "));
    }
    cf_buf_close(&out);
    assert_int_equal(cf_mem_live(), live);
}

/* Allocation failure at every step of encode and decode: CF_ENOMEM, nothing leaked. */
static void test_alloc_failures(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct repl_fwd_header h[3] = {{"A", "b"}, {"C", "d"}, {"E", ""}};
    struct repl_fwd_request r = {.method = "POST",
                                 .path = "/v1/x",
                                 .headers = h,
                                 .n_headers = 3,
                                 .body = (uint8_t *)"body",
                                 .body_len = 4,
                                 .remote_addr = "::1",
                                 .remote_port = 80};
    struct cf_buf enc;
    cf_buf_init(&enc);
    assert_int_equal(repl_fwd_request_encode(&r, &enc), CF_OK);
    int rv = CF_ENOMEM;
    unsigned long n;
    for (n = 1; rv == CF_ENOMEM; n++) {
        struct repl_fwd_request d;
        char errmsg[CF_ERRMSG_SIZE];
        cf_mem_fail_after(n);
        rv = repl_fwd_request_decode(enc.data, enc.len, &d, errmsg);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            check_req_equal(&r, &d);
            repl_fwd_request_free(&d);
        } else {
            assert_int_equal(rv, CF_ENOMEM);
            assert_non_null(strstr(errmsg, "out of memory"));
        }
        assert_int_equal(cf_mem_live(), live + 1);
    }
    assert_true(n > 10);
    rv = CF_ENOMEM;
    for (n = 1; rv == CF_ENOMEM; n++) {
        struct cf_buf out;
        cf_buf_init(&out);
        cf_mem_fail_after(n);
        rv = repl_fwd_request_encode(&r, &out);
        cf_mem_fail_after(0);
        assert_true(rv == CF_OK || out.len == 0);
        cf_buf_close(&out);
    }
    assert_int_equal(rv, CF_OK);
    cf_buf_close(&enc);
    assert_int_equal(cf_mem_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_roundtrip),  cmocka_unit_test(test_request_roundtrip_limits),
        cmocka_unit_test(test_big_body_roundtrip), cmocka_unit_test(test_response_roundtrip),
        cmocka_unit_test(test_request_refused),    cmocka_unit_test(test_response_refused),
        cmocka_unit_test(test_message_shape),      cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
