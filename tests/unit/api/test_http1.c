/*
 * HTTP/1.1 decoder (api/http1.c) on its own: framing (Content-Length, chunked, pipelining,
 * arbitrary splits), Vault's LIST verb, keep-alive rules and every refusal (400, 413, 431).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/http1.h"
#include "lib/err.h"
#include "lib/mem.h"

#define MAX_REQS 8

struct rec
{
    struct api_request reqs[MAX_REQS];
    size_t n;
    size_t stop_after; /* 0 = never ask to stop */
};

static int rec_cb(void *arg, struct api_request *req)
{
    struct rec *r = arg;
    assert_true(r->n < MAX_REQS);
    r->reqs[r->n++] = *req;
    memset(req, 0, sizeof(*req));
    return r->stop_after != 0 && r->n >= r->stop_after;
}

static void rec_clear(struct rec *r)
{
    for (size_t i = 0; i < r->n; i++) {
        api_request_clear(&r->reqs[i]);
    }
    r->n = 0;
}

static const char *hdr(const struct api_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}

static int feed_str(struct api_h1_decoder *d, const char *s)
{
    size_t used = 0;
    return api_h1_decoder_feed(d, (const uint8_t *)s, strlen(s), &used);
}

static void test_simple_get(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "GET /v1/sys/health?standbyok=true HTTP/1.1\r\n"
                              "Host: example\r\nX-Vault-Token: abc\r\nX-Empty:\r\n\r\n"),
                     CF_OK);
    assert_int_equal(r.n, 1);
    struct api_request *q = &r.reqs[0];
    assert_string_equal(q->method, "GET");
    assert_string_equal(q->target, "/v1/sys/health?standbyok=true");
    assert_int_equal(q->n_headers, 3);
    assert_string_equal(hdr(q, "host"), "example");
    assert_string_equal(hdr(q, "x-vault-token"), "abc");
    assert_string_equal(hdr(q, "x-empty"), "");
    assert_null(q->body);
    assert_int_equal(q->body_len, 0);
    assert_int_equal(q->http_version, 11);
    assert_true(q->keep_alive);
    assert_false(q->head);
    assert_false(api_h1_decoder_in_message(&d));
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_list_verb(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "LIST /v1/secret/ HTTP/1.1\r\nHost: x\r\n\r\n"
                              "LINK /l HTTP/1.1\r\nHost: x\r\n\r\n"
                              "LOCK /k HTTP/1.1\r\nHost: x\r\n\r\n"),
                     CF_OK);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.reqs[0].method, "LIST");
    assert_string_equal(r.reqs[0].target, "/v1/secret/");
    assert_string_equal(r.reqs[1].method, "LINK");
    assert_string_equal(r.reqs[2].method, "LOCK");
    rec_clear(&r);
    api_h1_decoder_close(&d);

    /* A longer verb that merely starts with LIST is refused. */
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d, "LISTX / HTTP/1.1\r\n\r\n"), CF_EMALFORMED);
    assert_int_equal(d.error_status, 400);
    assert_int_equal(r.n, 0);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_post_content_length(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "POST /v1/secret/foo HTTP/1.1\r\nContent-Length: 11\r\n"
                              "Content-Type: application/json\r\n\r\n{\"a\":\"bcd\"}"),
                     CF_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.reqs[0].method, "POST");
    assert_int_equal(r.reqs[0].body_len, 11);
    assert_memory_equal(r.reqs[0].body, "{\"a\":\"bcd\"}", 11);
    assert_int_equal(r.reqs[0].body[11], 0);
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_chunked(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"),
                     CF_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.reqs[0].body_len, 12);
    assert_memory_equal(r.reqs[0].body, "hello, world", 12);
    assert_null(hdr(&r.reqs[0], "x-trailer")); /* trailers are not request headers */
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static const char pipelined[] =
    "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
    "LIST /two/ HTTP/1.1\r\nHost: a\r\n\r\n"
    "POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
    "\r\n3\r\nabc\r\n0\r\n\r\n"
    "HEAD /four HTTP/1.1\r\nHost: a\r\n\r\n";

static void check_pipelined(struct rec *r)
{
    assert_int_equal(r->n, 4);
    assert_string_equal(r->reqs[0].target, "/one");
    assert_string_equal(r->reqs[1].method, "LIST");
    assert_string_equal(r->reqs[1].target, "/two/");
    assert_string_equal(r->reqs[2].method, "POST");
    assert_int_equal(r->reqs[2].body_len, 3);
    assert_memory_equal(r->reqs[2].body, "abc", 3);
    assert_string_equal(r->reqs[3].method, "HEAD");
    assert_true(r->reqs[3].head);
    for (size_t i = 0; i < 4; i++) {
        assert_true(r->reqs[i].keep_alive);
        assert_string_equal(hdr(&r->reqs[i], "host"), "a");
    }
}

static void test_pipelined(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d, pipelined), CF_OK);
    check_pipelined(&r);
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    for (size_t i = 0; i < sizeof(pipelined) - 1; i++) {
        size_t used = 0;
        assert_int_equal(api_h1_decoder_feed(&d, (const uint8_t *)pipelined + i, 1, &used), CF_OK);
        assert_int_equal(used, 1);
        if (i == 3) {
            assert_true(api_h1_decoder_in_message(&d));
        }
    }
    check_pipelined(&r);
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_header_too_large(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 64, 0, rec_cb, &r);
    char req[256];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Long: %080d\r\n\r\n", 0);
    assert_int_equal(feed_str(&d, req), CF_ETOOBIG);
    assert_int_equal(d.error_status, 431);
    assert_string_equal(d.error_text, "request header fields too large");
    assert_int_equal(r.n, 0);
    /* Sticky. */
    assert_int_equal(feed_str(&d, "GET / HTTP/1.1\r\n\r\n"), CF_ETOOBIG);
    api_h1_decoder_close(&d);

    /* Many tiny headers count as well. */
    api_h1_decoder_init(&d, 64, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "GET / HTTP/1.1\r\na:\r\nb:\r\nc:\r\nd:\r\ne:\r\nf:\r\n"
                              "g:\r\nh:\r\ni:\r\nj:\r\nk:\r\nl:\r\nm:\r\nn:\r\n\r\n"),
                     CF_ETOOBIG);
    assert_int_equal(d.error_status, 431);
    api_h1_decoder_close(&d);

    /* A long target too. */
    api_h1_decoder_init(&d, 64, 0, rec_cb, &r);
    snprintf(req, sizeof(req), "GET /%080d HTTP/1.1\r\n\r\n", 0);
    assert_int_equal(feed_str(&d, req), CF_ETOOBIG);
    assert_int_equal(d.error_status, 431);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_body_too_large(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    /* Declared length over the limit: refused at the headers, before any body. */
    api_h1_decoder_init(&d, 0, 10, rec_cb, &r);
    assert_int_equal(feed_str(&d, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), CF_ETOOBIG);
    assert_int_equal(d.error_status, 413);
    assert_string_equal(d.error_text, "http: request body too large");
    api_h1_decoder_close(&d);

    /* Exactly the limit is fine. */
    api_h1_decoder_init(&d, 0, 10, rec_cb, &r);
    assert_int_equal(feed_str(&d, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"),
                     CF_OK);
    assert_int_equal(r.n, 1);
    rec_clear(&r);
    api_h1_decoder_close(&d);

    /* Chunked bodies are counted as they arrive. */
    api_h1_decoder_init(&d, 0, 10, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "6\r\nabcdef\r\n"),
                     CF_OK);
    assert_true(api_h1_decoder_in_body(&d));
    assert_int_equal(feed_str(&d, "6\r\nghijkl\r\n0\r\n\r\n"), CF_ETOOBIG);
    assert_int_equal(d.error_status, 413);
    assert_int_equal(r.n, 0);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void expect_malformed(const char *input)
{
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d, input), CF_EMALFORMED);
    assert_int_equal(d.error_status, 400);
    assert_string_equal(d.error_text, "malformed request");
    assert_int_equal(r.n, 0);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_malformed("GARBAGE\r\n\r\n");
    expect_malformed("GET / HTTP/9.9\r\n\r\n");
    expect_malformed("GET  HTTP/1.1\r\n\r\n");
    expect_malformed("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n");
    expect_malformed("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    expect_malformed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
    expect_malformed("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
}

static void test_bad_chunk_size(void **state)
{
    (void)state;
    expect_malformed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
    expect_malformed(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "ffffffffffffffffff\r\n");
}

static void test_http10(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d, "GET /a HTTP/1.0\r\n\r\nGET /ignored HTTP/1.0\r\n\r\n"), CF_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.reqs[0].http_version, 10);
    assert_false(r.reqs[0].keep_alive);
    assert_false(api_h1_decoder_in_message(&d));
    rec_clear(&r);
    api_h1_decoder_close(&d);

    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                              "GET /b HTTP/1.0\r\n\r\n"),
                     CF_OK);
    assert_int_equal(r.n, 2);
    assert_true(r.reqs[0].keep_alive);
    assert_false(r.reqs[1].keep_alive);
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_connection_close(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"
                              "GET /b HTTP/1.1\r\n\r\n"),
                     CF_OK);
    assert_int_equal(r.n, 1);
    assert_false(r.reqs[0].keep_alive);
    /* Anything after a closing request is ignored, even garbage. */
    assert_int_equal(feed_str(&d, "GARBAGE"), CF_OK);
    assert_int_equal(r.n, 1);
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_callback_stop(void **state)
{
    (void)state;
    struct rec r = {.stop_after = 1};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    const char *two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    size_t used = 0;
    assert_int_equal(api_h1_decoder_feed(&d, (const uint8_t *)two, strlen(two), &used),
                     CF_ECANCELED);
    assert_int_equal(used, strlen("GET /a HTTP/1.1\r\n\r\n"));
    r.stop_after = 0;
    assert_int_equal(feed_str(&d, two + used), CF_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.reqs[1].target, "/b");
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

static void test_expect_continue(void **state)
{
    (void)state;
    struct rec r = {0};
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
    assert_int_equal(feed_str(&d,
                              "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\n"
                              "Content-Length: 2\r\n\r\n"),
                     CF_OK);
    assert_true(api_h1_decoder_in_body(&d));
    assert_true(d.expect_continue);
    assert_int_equal(feed_str(&d, "ok"), CF_OK);
    assert_int_equal(r.n, 1);
    assert_false(d.expect_continue);
    rec_clear(&r);
    api_h1_decoder_close(&d);
    assert_int_equal(cf_mem_live(), 0);
}

/* Every allocation failure is reported as CF_ENOMEM and leaks nothing (rule T3). */
static void test_alloc_failures(void **state)
{
    (void)state;
    for (unsigned long n = 1;; n++) {
        struct rec r = {0};
        struct api_h1_decoder d;
        api_h1_decoder_init(&d, 0, 0, rec_cb, &r);
        cf_mem_fail_after(n);
        int rv = feed_str(&d, pipelined);
        cf_mem_fail_after(0);
        rec_clear(&r);
        api_h1_decoder_close(&d);
        assert_int_equal(cf_mem_live(), 0);
        if (rv == CF_OK) {
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        assert_true(n < 1000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_list_verb),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_header_too_large),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_chunk_size),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
