/*
 * libFuzzer target for the forwarding codec (replication/fwd_codec.c): each input goes to both
 * the request and the response decoder. A refusal must be one of the documented codes with a
 * message and leave the output zeroed; a decoded message must re-encode and decode again to
 * the same fields. The allocation counter catches leaks, ASan/UBSan the rest.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "replication/fwd_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_refusal(int rv, const char *errmsg)
{
    if (rv != CF_EMALFORMED && rv != CF_EVERSION && rv != CF_ETOOBIG && rv != CF_ENOMEM) {
        abort();
    }
    if (errmsg[0] == '\0') {
        abort();
    }
}

static void same_headers(const struct repl_fwd_header *a,
                         size_t na,
                         const struct repl_fwd_header *b,
                         size_t nb)
{
    if (na != nb) {
        abort();
    }
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].value, b[i].value) != 0) {
            abort();
        }
    }
}

static void same_body(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    if (na != nb || (na > 0 && memcmp(a, b, na) != 0) || (na == 0 && (a != NULL || b != NULL))) {
        abort();
    }
}

static void fuzz_request(const uint8_t *data, size_t size)
{
    struct repl_fwd_request r;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = repl_fwd_request_decode(data, size, &r, errmsg);
    if (rv != CF_OK) {
        check_refusal(rv, errmsg);
        if (r.method != NULL || r.path != NULL || r.headers != NULL || r.body != NULL) {
            abort();
        }
        return;
    }
    struct cf_buf out;
    cf_buf_init(&out);
    if (repl_fwd_request_encode(&r, &out) != CF_OK) {
        abort();
    }
    struct repl_fwd_request d;
    if (repl_fwd_request_decode(out.data, out.len, &d, errmsg) != CF_OK) {
        abort();
    }
    if (strcmp(r.method, d.method) != 0 || strcmp(r.path, d.path) != 0 ||
        strcmp(r.remote_addr, d.remote_addr) != 0 || r.remote_port != d.remote_port) {
        abort();
    }
    same_headers(r.headers, r.n_headers, d.headers, d.n_headers);
    same_body(r.body, r.body_len, d.body, d.body_len);
    repl_fwd_request_free(&d);
    repl_fwd_request_free(&r);
    cf_buf_close(&out);
}

static void fuzz_response(const uint8_t *data, size_t size)
{
    struct repl_fwd_response r;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = repl_fwd_response_decode(data, size, &r, errmsg);
    if (rv != CF_OK) {
        check_refusal(rv, errmsg);
        if (r.headers != NULL || r.body != NULL || r.status != 0) {
            abort();
        }
        return;
    }
    if (r.status < 100 || r.status > 599) {
        abort();
    }
    struct cf_buf out;
    cf_buf_init(&out);
    if (repl_fwd_response_encode(&r, &out) != CF_OK) {
        abort();
    }
    struct repl_fwd_response d;
    if (repl_fwd_response_decode(out.data, out.len, &d, errmsg) != CF_OK) {
        abort();
    }
    if (r.status != d.status || r.index != d.index) {
        abort();
    }
    same_headers(r.headers, r.n_headers, d.headers, d.n_headers);
    same_body(r.body, r.body_len, d.body, d.body_len);
    repl_fwd_response_free(&d);
    repl_fwd_response_free(&r);
    cf_buf_close(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = cf_mem_live();
    fuzz_request(data, size);
    fuzz_response(data, size);
    if (cf_mem_live() != live) {
        abort();
    }
    return 0;
}
