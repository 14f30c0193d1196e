/* Unit tests for api/route.c's request decoding (core.md 1.1/1.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "api/http.h"
#include "api/route.h"
#include "lib/mem.h"
#include "node/engine.h"

struct dec
{
    int rv;
    int status;
    char msg[API_ROUTE_MSG_SIZE];
    struct node_request *req;
};

static struct dec decode(const char *method,
                         const char *target,
                         const char *ctype,
                         const char *body,
                         const char *token,
                         const char *auth)
{
    struct api_header h[3];
    size_t n = 0;
    if (ctype != NULL) {
        h[n++] = (struct api_header){.name = (char *)"content-type", .value = (char *)ctype};
    }
    if (token != NULL) {
        h[n++] = (struct api_header){.name = (char *)"x-vault-token", .value = (char *)token};
    }
    if (auth != NULL) {
        h[n++] = (struct api_header){.name = (char *)"authorization", .value = (char *)auth};
    }
    struct api_exchange ex = {
        .method = method,
        .target = target,
        .headers = h,
        .n_headers = n,
        .body = (const uint8_t *)(body ? body : ""),
        .body_len = body ? strlen(body) : 0,
    };
    struct dec d = {0};
    d.rv = api_route_decode(&ex, &d.req, &d.status, d.msg);
    return d;
}

static void test_methods(void **state)
{
    (void)state;
    struct dec d = decode("GET", "/v1/secret/foo", NULL, NULL, "t", NULL);
    assert_int_equal(d.rv, 0);
    assert_int_equal(d.req->op, NODE_OP_READ);
    assert_string_equal(d.req->path, "secret/foo");
    assert_string_equal(d.req->token, "t");
    node_request_free(d.req);

    d = decode("GET", "/v1/secret?list=true&x=1", NULL, NULL, NULL, NULL);
    assert_int_equal(d.req->op, NODE_OP_LIST);
    assert_string_equal(d.req->path, "secret/");
    assert_null(json_object_get(d.req->data, "list"));
    assert_string_equal(json_string_value(json_object_get(d.req->data, "x")), "1");
    node_request_free(d.req);

    d = decode("LIST", "/v1/secret/dir", NULL, NULL, NULL, NULL);
    assert_int_equal(d.req->op, NODE_OP_LIST);
    assert_string_equal(d.req->path, "secret/dir/");
    node_request_free(d.req);

    d = decode("GET", "/v1/secret/%C3%A9t%C3%A9/%F0%9F%94%91", NULL, NULL, NULL, NULL);
    assert_int_equal(d.rv, 0);
    assert_string_equal(d.req->path, "secret/\xc3\xa9t\xc3\xa9/\xf0\x9f\x94\x91");
    node_request_free(d.req);

    d = decode("PUT", "/v1/secret/a%20b", NULL, "{\"k\":\"v\"}", NULL, NULL);
    assert_int_equal(d.req->op, NODE_OP_UPDATE);
    assert_string_equal(d.req->path, "secret/a b");
    assert_string_equal(json_string_value(json_object_get(d.req->data, "k")), "v");
    node_request_free(d.req);

    d = decode("POST", "/v1/secret/f", "application/x-www-form-urlencoded", "a=1&b=x+y%21", NULL,
               NULL);
    assert_int_equal(d.rv, 0);
    assert_string_equal(json_string_value(json_object_get(d.req->data, "b")), "x y!");
    node_request_free(d.req);

    d = decode("POST", "/v1/secret/e", NULL, "", NULL, NULL);
    assert_int_equal(json_object_size(d.req->data), 0);
    node_request_free(d.req);

    d = decode("DELETE", "/v1/secret/x", NULL, NULL, NULL, "Bearer  tok2");
    assert_int_equal(d.req->op, NODE_OP_DELETE);
    assert_string_equal(d.req->token, "tok2");
    node_request_free(d.req);

    d = decode("HEAD", "/v1/sys/health", NULL, NULL, NULL, "Basic abc");
    assert_int_equal(d.req->op, NODE_OP_READ);
    assert_false(d.req->wants_body);
    assert_null(d.req->token); /* non-Bearer Authorization is ignored */
    node_request_free(d.req);

    d = decode("PATCH", "/v1/secret/x", "application/merge-patch+json", "{}", NULL, NULL);
    assert_int_equal(d.req->op, NODE_OP_PATCH);
    node_request_free(d.req);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct
    {
        const char *method;
        const char *target;
        const char *ctype;
        const char *body;
        int status;
        const char *msg;
    } cases[] = {
        {"GET", "/v2/secret/x", NULL, NULL, 404, ""},
        {"GET", "/ui", NULL, NULL, 404, ""},
        {"OPTIONS", "/v1/secret/x", NULL, NULL, 405, ""},
        {"PATCH", "/v1/secret/x", "application/json", "{}", 415, "merge-patch"},
        {"POST", "/v1/secret/x", NULL, "{bad", 400, "error parsing JSON"},
        {"POST", "/v1/secret/x", NULL, "[1,2]", 400, "error parsing JSON"},
        {"POST", "/v1/secret/x", NULL, "{\"a\":1,\"a\":2}", 400, "error parsing JSON"},
        {"POST", "/v1/secret/x", NULL, "a=1", 400, "error parsing JSON"},
        {"GET", "/v1/secret/%zz", NULL, NULL, 400, "invalid request path"},
        {"GET", "/v1/secret/%0a", NULL, NULL, 400, "non-printable"},
        {"GET", "/v1/secret/x?list=maybe", NULL, NULL, 400, "list"},
        {"GET", "/v1/secret/x?a=%g1", NULL, NULL, 400, "query"},
        {"GET", "/v1/secret/a%00b", NULL, NULL, 400, "invalid request path"},
        {"GET", "/v1/secret/a%FFb", NULL, NULL, 400, "UTF-8"},
        {"GET", "/v1/secret/%C0%AF", NULL, NULL, 400, "UTF-8"},
        {"GET", "/v1/secret/%ED%A0%80", NULL, NULL, 400, "UTF-8"},
        {"GET", "/v1/secret/x?a=%FF", NULL, NULL, 400, "query"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long live = cf_mem_live();
        struct dec d =
            decode(cases[i].method, cases[i].target, cases[i].ctype, cases[i].body, NULL, NULL);
        if (d.rv == 0) {
            fail_msg("case %zu accepted", i);
        }
        assert_int_equal(d.status, cases[i].status);
        if (strstr(d.msg, cases[i].msg) == NULL) {
            fail_msg("case %zu: '%s' lacks '%s'", i, d.msg, cases[i].msg);
        }
        assert_null(d.req);
        assert_int_equal(cf_mem_live(), live);
    }
}

int main(void)
{
    json_set_alloc_funcs(cf_malloc, cf_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
