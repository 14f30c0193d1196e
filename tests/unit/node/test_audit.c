/*
 * Unit tests for node/audit.c: the hashing rule of core.md 11.2 (which fields change, non-HMAC
 * keys, hmac_accessor false, nothing else touched, input not modified), a known HMAC vector,
 * the entry lines (valid JSON, "time" first in RFC 3339 with microseconds, prefix, log_raw,
 * list elision), the test line written on enable, batching of many audit_log calls, discard,
 * every refused enable argument with its message, duplicate paths, disable, listing,
 * audit_hash, close with pending lines and enables, ENOSPC on a tiny tmpfs with one and two
 * devices (skipped when not root or when mount fails), and allocation-failure loops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "node/audit.h"

static const uint8_t SALT_A[] = "salt-a-0123456789";
static const uint8_t SALT_B[] = "salt-b-9876543210";
#define SALT_A_LEN (sizeof(SALT_A) - 1)
#define SALT_B_LEN (sizeof(SALT_B) - 1)

static const char *SAMPLE =
    "{\"type\":\"response\","
    "\"auth\":{\"client_token\":\"s.tok\",\"accessor\":\"acc1\",\"display_name\":\"token\","
    "\"policies\":[\"default\"],\"token_ttl\":3600,\"metadata\":{\"user\":\"bob\"}},"
    "\"request\":{\"id\":\"req-1\",\"operation\":\"update\",\"path\":\"secret/foo\","
    "\"remote_address\":\"127.0.0.1\",\"remote_port\":5000,\"client_token\":\"s.tok\","
    "\"client_token_accessor\":\"acc1\",\"data\":{\"password\":\"hunter2\",\"n\":5,"
    "\"flag\":true,\"nothing\":null,\"nested\":{\"x\":\"y\",\"deep\":[\"a\",2,{\"z\":\"w\"}]},"
    "\"list\":[\"l1\",\"l2\"]}},"
    "\"response\":{\"auth\":{\"client_token\":\"s.new\",\"accessor\":\"acc2\","
    "\"policies\":[\"p\"]},\"secret\":{\"lease_id\":\"secret/foo/123\"},"
    "\"data\":{\"password\":\"p2\",\"ttl\":10},"
    "\"wrap_info\":{\"token\":\"w.tok\",\"accessor\":\"wacc\",\"wrapped_accessor\":\"wrapped\","
    "\"creation_path\":\"secret/foo\",\"ttl\":60},\"warnings\":[\"warn\"]},"
    "\"error\":\"\"}";

static json_t *load(const char *s)
{
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (j == NULL) {
        fail_msg("bad JSON in test: %s", err.text);
    }
    return j;
}

/* The expected hash, built from the primitives directly. */
static const char *H(const uint8_t *salt, size_t salt_len, const char *s)
{
    static char out[8][80];
    static int slot;
    uint8_t mac[32];
    assert_int_equal(cf_hmac_sha256(salt, salt_len, s, strlen(s), mac), CF_OK);
    char hex[65];
    cf_hex_encode(mac, sizeof(mac), hex);
    char *o = out[slot++ % 8];
    snprintf(o, 80, "hmac-sha256:%s", hex);
    return o;
}

static const char *at(const json_t *root, const char *p)
{
    /* Dotted path with numeric array indexes: "request.data.nested.deep.0". */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", p);
    const json_t *cur = root;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ".", &save); tok != NULL; tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur)) {
            cur = json_array_get(cur, (size_t)atoi(tok));
        } else {
            cur = json_object_get(cur, tok);
        }
        if (cur == NULL) {
            fail_msg("missing %s", p);
        }
    }
    if (!json_is_string(cur)) {
        fail_msg("%s is not a string", p);
    }
    return json_string_value(cur);
}

static json_int_t at_int(const json_t *root, const char *p1, const char *p2, const char *p3)
{
    const json_t *v = json_object_get(json_object_get(json_object_get(root, p1), p2), p3);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* ---- Hashing ---- */

static void test_hash_string_vector(void **state)
{
    (void)state;
    char *out = NULL;
    const char *msg = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(audit_hash_string((const uint8_t *)"key", 3, msg, strlen(msg), &out), CF_OK);
    assert_string_equal(
        out, "hmac-sha256:f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    cf_free(out);
}

static void test_hash_fields(void **state)
{
    (void)state;
    json_t *e = load(SAMPLE);
    json_t *orig = json_deep_copy(e);
    json_t *h = audit_hash_entry(e, SALT_A, SALT_A_LEN, true, NULL);
    assert_non_null(h);
    assert_true(json_equal(e, orig)); /* input untouched */
    const uint8_t *s = SALT_A;
    size_t n = SALT_A_LEN;

    assert_string_equal(at(h, "auth.client_token"), H(s, n, "s.tok"));
    assert_string_equal(at(h, "auth.accessor"), H(s, n, "acc1"));
    assert_string_equal(at(h, "auth.display_name"), "token");
    assert_string_equal(at(h, "auth.policies.0"), "default");
    assert_string_equal(at(h, "auth.metadata.user"), "bob");
    assert_string_equal(at(h, "request.id"), "req-1");
    assert_string_equal(at(h, "request.path"), "secret/foo");
    assert_string_equal(at(h, "request.operation"), "update");
    assert_string_equal(at(h, "request.remote_address"), "127.0.0.1");
    assert_string_equal(at(h, "request.client_token"), H(s, n, "s.tok"));
    assert_string_equal(at(h, "request.client_token_accessor"), H(s, n, "acc1"));
    assert_string_equal(at(h, "request.data.password"), H(s, n, "hunter2"));
    assert_string_equal(at(h, "request.data.nested.x"), H(s, n, "y"));
    assert_string_equal(at(h, "request.data.nested.deep.0"), H(s, n, "a"));
    assert_string_equal(at(h, "request.data.nested.deep.2.z"), H(s, n, "w"));
    assert_string_equal(at(h, "request.data.list.0"), H(s, n, "l1"));
    assert_string_equal(at(h, "request.data.list.1"), H(s, n, "l2"));
    const json_t *data = json_object_get(json_object_get(h, "request"), "data");
    assert_int_equal(json_integer_value(json_object_get(data, "n")), 5);
    assert_true(json_is_true(json_object_get(data, "flag")));
    assert_true(json_is_null(json_object_get(data, "nothing")));
    assert_int_equal(json_integer_value(json_array_get(
                         json_object_get(json_object_get(data, "nested"), "deep"), 1)),
                     2);
    assert_int_equal(json_object_size(data), 6); /* keys are not renamed */
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(h, "request"), "remote_port")), 5000);
    assert_string_equal(at(h, "response.auth.client_token"), H(s, n, "s.new"));
    assert_string_equal(at(h, "response.auth.accessor"), H(s, n, "acc2"));
    assert_string_equal(at(h, "response.auth.policies.0"), "p");
    assert_string_equal(at(h, "response.secret.lease_id"), "secret/foo/123");
    assert_string_equal(at(h, "response.data.password"), H(s, n, "p2"));
    assert_string_equal(at(h, "response.wrap_info.token"), H(s, n, "w.tok"));
    assert_string_equal(at(h, "response.wrap_info.accessor"), H(s, n, "wacc"));
    assert_string_equal(at(h, "response.wrap_info.wrapped_accessor"), H(s, n, "wrapped"));
    assert_string_equal(at(h, "response.wrap_info.creation_path"), "secret/foo");
    assert_string_equal(at(h, "response.warnings.0"), "warn");
    assert_string_equal(at(h, "error"), "");
    assert_string_equal(at(h, "type"), "response");

    /* A different salt gives different values. */
    json_t *h2 = audit_hash_entry(e, SALT_B, SALT_B_LEN, true, NULL);
    assert_string_equal(at(h2, "auth.client_token"), H(SALT_B, SALT_B_LEN, "s.tok"));
    assert_string_not_equal(at(h2, "auth.client_token"), at(h, "auth.client_token"));
    json_decref(h2);
    json_decref(h);
    json_decref(orig);
    json_decref(e);

    /* Not an object: refused. */
    json_t *arr = load("[1]");
    assert_null(audit_hash_entry(arr, SALT_A, SALT_A_LEN, true, NULL));
    json_decref(arr);
}

static void test_hash_no_accessor(void **state)
{
    (void)state;
    json_t *e = load(SAMPLE);
    json_t *h = audit_hash_entry(e, SALT_A, SALT_A_LEN, false, NULL);
    assert_non_null(h);
    assert_string_equal(at(h, "auth.accessor"), "acc1");
    assert_string_equal(at(h, "request.client_token_accessor"), "acc1");
    assert_string_equal(at(h, "response.auth.accessor"), "acc2");
    assert_string_equal(at(h, "response.wrap_info.accessor"), "wacc");
    assert_string_equal(at(h, "response.wrap_info.wrapped_accessor"), "wrapped");
    /* Tokens are still hashed. */
    assert_string_equal(at(h, "auth.client_token"), H(SALT_A, SALT_A_LEN, "s.tok"));
    assert_string_equal(at(h, "request.client_token"), H(SALT_A, SALT_A_LEN, "s.tok"));
    assert_string_equal(at(h, "response.wrap_info.token"), H(SALT_A, SALT_A_LEN, "w.tok"));
    json_decref(h);
    json_decref(e);
}

static void test_hash_non_hmac_keys(void **state)
{
    (void)state;
    json_t *e = load(SAMPLE);
    json_t *req_keys = load("[\"password\",\"list\",\"deep\"]");
    struct audit_opts opts = {req_keys, NULL};
    json_t *h = audit_hash_entry(e, SALT_A, SALT_A_LEN, true, &opts);
    assert_non_null(h);
    assert_string_equal(at(h, "request.data.password"), "hunter2");
    assert_string_equal(at(h, "request.data.list.0"), "l1"); /* array under a listed key */
    assert_string_equal(at(h, "request.data.nested.deep.0"), "a");
    /* The innermost key decides: "z" is not listed. */
    assert_string_equal(at(h, "request.data.nested.deep.2.z"), H(SALT_A, SALT_A_LEN, "w"));
    assert_string_equal(at(h, "request.data.nested.x"), H(SALT_A, SALT_A_LEN, "y"));
    /* Request keys do not apply to the response. */
    assert_string_equal(at(h, "response.data.password"), H(SALT_A, SALT_A_LEN, "p2"));
    /* Nor to the token fields. */
    assert_string_equal(at(h, "auth.client_token"), H(SALT_A, SALT_A_LEN, "s.tok"));
    json_decref(h);

    json_t *resp_keys = load("[\"password\"]");
    struct audit_opts opts2 = {NULL, resp_keys};
    h = audit_hash_entry(e, SALT_A, SALT_A_LEN, true, &opts2);
    assert_string_equal(at(h, "response.data.password"), "p2");
    assert_string_equal(at(h, "request.data.password"), H(SALT_A, SALT_A_LEN, "hunter2"));
    json_decref(h);
    json_decref(resp_keys);
    json_decref(req_keys);
    json_decref(e);
}

/* ---- Broker fixture ---- */

struct fixture
{
    uv_loop_t loop;
    struct audit_broker *b;
    char dir[64];
    long live;
};

static int setup(void **state)
{
    struct fixture *f = cf_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->live = cf_mem_live();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->b = audit_broker_new(&f->loop);
    assert_non_null(f->b);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cf_audit_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static void close_cb(void *arg)
{
    (*(int *)arg)++;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int closed = 0;
    if (f->b != NULL) {
        audit_broker_close(f->b, close_cb, &closed);
        assert_int_equal(closed, 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(closed, 1);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(cf_mem_live(), f->live);
    cf_free(f);
    return 0;
}

struct enable_res
{
    int calls;
    int status;
    char errmsg[CF_ERRMSG_SIZE];
};

static void enable_cb(void *arg, int status, const char *errmsg)
{
    struct enable_res *r = arg;
    r->calls++;
    r->status = status;
    if (status == CF_OK) {
        assert_null(errmsg);
    }
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg != NULL ? errmsg : "");
}

/* Enables a device with options given as JSON text; returns the status, errmsg in r. */
static int enable_full(struct fixture *f,
                       const char *path,
                       const char *type,
                       const char *options,
                       const uint8_t *salt,
                       size_t salt_len,
                       struct enable_res *r)
{
    memset(r, 0, sizeof(*r));
    json_t *o = options != NULL ? load(options) : NULL;
    audit_device_enable(f->b, path, type, "", o, false, salt, salt_len, enable_cb, r);
    json_decref(o);
    assert_int_equal(r->calls, 0); /* never inside the call */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->calls, 1);
    return r->status;
}

static void enable_ok(struct fixture *f, const char *path, const char *options)
{
    struct enable_res r;
    int rv = enable_full(f, path, "file", options, SALT_A, SALT_A_LEN, &r);
    if (rv != CF_OK) {
        fail_msg("enable %s: %s", path, r.errmsg);
    }
}

/* Options JSON for a file in the fixture dir, with extra members. */
static const char *file_opts(struct fixture *f, const char *name, const char *extra)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "{\"file_path\":\"%s/%s\"%s%s}", f->dir, name, extra[0] ? "," : "",
             extra);
    return buf;
}

struct log_res
{
    int calls;
    int status;
};

static void log_cb(void *arg, int status)
{
    struct log_res *r = arg;
    r->calls++;
    r->status = status;
}

static int log_one(struct fixture *f, const json_t *entry, const struct audit_opts *opts)
{
    struct log_res r = {0};
    audit_log(f->b, entry, opts, log_cb, &r);
    assert_int_equal(r.calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    return r.status;
}

/* Reads the file's lines: each must end in '\n', start with prefix and parse as a JSON object.
 * Returns an array of the parsed lines. */
static json_t *read_lines(struct fixture *f, const char *name, const char *prefix)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    json_t *lines = json_array();
    char buf[65536];
    while (fgets(buf, sizeof(buf), fp) != NULL) {
        size_t n = strlen(buf);
        assert_true(n > 0 && buf[n - 1] == '\n');
        assert_memory_equal(buf, prefix, strlen(prefix));
        json_error_t err;
        json_t *j = json_loads(buf + strlen(prefix), 0, &err);
        if (j == NULL) {
            fail_msg("line is not JSON: %s (%s)", buf, err.text);
        }
        assert_true(json_is_object(j));
        json_array_append_new(lines, j);
    }
    fclose(fp);
    return lines;
}

/* "time" is RFC 3339 UTC with microseconds and within a minute of now. */
static void check_time(const json_t *line)
{
    const char *t = json_string_value(json_object_get(line, "time"));
    assert_non_null(t);
    assert_int_equal(strlen(t), 27);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(rest);
    assert_int_equal(rest[0], '.');
    for (int i = 1; i <= 6; i++) {
        assert_true(rest[i] >= '0' && rest[i] <= '9');
    }
    assert_string_equal(rest + 7, "Z");
    time_t when = timegm(&tm);
    time_t now = time(NULL);
    assert_true(when <= now + 1 && when >= now - 60);
}

/* ---- Broker tests ---- */

static void test_no_devices(void **state)
{
    struct fixture *f = *state;
    json_t *e = load(SAMPLE);
    assert_int_equal(audit_device_count(f->b), 0);
    assert_int_equal(log_one(f, e, NULL), CF_OK);
    json_decref(e);
}

static void test_enable_and_log(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "file", file_opts(f, "audit.log", ""));
    assert_int_equal(audit_device_count(f->b), 1);
    json_t *e = load(SAMPLE);
    assert_int_equal(log_one(f, e, NULL), CF_OK);

    json_t *lines = read_lines(f, "audit.log", "");
    assert_int_equal(json_array_size(lines), 2);
    /* The test line Vault writes on enable. */
    json_t *probe = json_array_get(lines, 0);
    check_time(probe);
    assert_string_equal(at(probe, "type"), "request");
    assert_string_equal(at(probe, "request.path"), "sys/audit/test");
    assert_string_equal(at(probe, "request.operation"), "update");
    assert_int_equal(strlen(at(probe, "request.id")), 36);
    /* The entry: hashed with the device salt, time added. */
    json_t *line = json_array_get(lines, 1);
    check_time(line);
    assert_string_equal(at(line, "type"), "response");
    assert_string_equal(at(line, "request.data.password"), H(SALT_A, SALT_A_LEN, "hunter2"));
    assert_string_equal(at(line, "auth.client_token"), H(SALT_A, SALT_A_LEN, "s.tok"));
    assert_string_equal(at(line, "request.path"), "secret/foo");
    /* Everything but time equals the hashing rule's output. */
    json_t *want = audit_hash_entry(e, SALT_A, SALT_A_LEN, true, NULL);
    json_object_del(line, "time");
    assert_true(json_equal(line, want));
    json_decref(want);
    json_decref(lines);

    /* "time" is the first member of the raw line. */
    char path[160];
    snprintf(path, sizeof(path), "%s/audit.log", f->dir);
    FILE *fp = fopen(path, "r");
    char buf[4096];
    assert_non_null(fgets(buf, sizeof(buf), fp));
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_memory_equal(buf, "{\"time\":\"", 9);
    json_decref(e);
}

static void test_log_opts_non_hmac(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "file", file_opts(f, "audit.log", "\"hmac_accessor\":\"false\""));
    json_t *e = load(SAMPLE);
    json_t *keys = load("[\"password\"]");
    struct audit_opts opts = {keys, keys};
    assert_int_equal(log_one(f, e, &opts), CF_OK);
    json_t *lines = read_lines(f, "audit.log", "");
    json_t *line = json_array_get(lines, 1);
    assert_string_equal(at(line, "request.data.password"), "hunter2");
    assert_string_equal(at(line, "response.data.password"), "p2");
    assert_string_equal(at(line, "auth.accessor"), "acc1");
    assert_string_equal(at(line, "auth.client_token"), H(SALT_A, SALT_A_LEN, "s.tok"));
    json_decref(lines);
    json_decref(keys);
    json_decref(e);
}

static void test_log_raw_and_prefix(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "raw", file_opts(f, "raw.log", "\"log_raw\":\"true\",\"prefix\":\"PFX \""));
    json_t *e = load(SAMPLE);
    assert_int_equal(log_one(f, e, NULL), CF_OK);
    json_t *lines = read_lines(f, "raw.log", "PFX ");
    assert_int_equal(json_array_size(lines), 2);
    json_t *line = json_array_get(lines, 1);
    json_object_del(line, "time");
    assert_true(json_equal(line, e)); /* raw: exactly the entry */
    json_decref(lines);
    json_decref(e);
}

static void test_elide_list_responses(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "el", file_opts(f, "el.log", "\"elide_list_responses\":\"true\""));
    enable_ok(f, "plain", file_opts(f, "plain.log", ""));
    json_t *list = load(
        "{\"type\":\"response\",\"request\":{\"operation\":\"list\",\"path\":\"secret/\"},"
        "\"response\":{\"data\":{\"keys\":[\"a\",\"b\",\"c\"],\"key_info\":{\"a\":{},\"b\":{}}}}}");
    json_t *read = load(
        "{\"type\":\"response\",\"request\":{\"operation\":\"read\",\"path\":\"secret/\"},"
        "\"response\":{\"data\":{\"keys\":[\"a\",\"b\",\"c\"]}}}");
    assert_int_equal(log_one(f, list, NULL), CF_OK);
    assert_int_equal(log_one(f, read, NULL), CF_OK);
    json_t *lines = read_lines(f, "el.log", "");
    assert_int_equal(json_array_size(lines), 3);
    const json_t *d1 =
        json_object_get(json_object_get(json_array_get(lines, 1), "response"), "data");
    assert_int_equal(json_integer_value(json_object_get(d1, "keys")), 3);
    assert_int_equal(json_integer_value(json_object_get(d1, "key_info")), 2);
    /* Not a list operation: untouched (and hashed). */
    assert_string_equal(at(json_array_get(lines, 2), "response.data.keys.0"),
                        H(SALT_A, SALT_A_LEN, "a"));
    json_decref(lines);
    /* A device without the option keeps the keys. */
    lines = read_lines(f, "plain.log", "");
    assert_string_equal(at(json_array_get(lines, 1), "response.data.keys.2"),
                        H(SALT_A, SALT_A_LEN, "c"));
    json_decref(lines);
    json_decref(read);
    json_decref(list);
}

#define NLOG 300

static void test_batching(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "file", file_opts(f, "audit.log", ""));
    struct log_res *r = cf_calloc(NLOG, sizeof(*r));
    assert_non_null(r);
    for (int i = 0; i < NLOG; i++) {
        json_t *e = json_pack("{s:s, s:{s:s, s:{s:i}}}", "type", "request", "request", "path",
                              "secret/x", "data", "i", i);
        audit_log(f->b, e, NULL, log_cb, &r[i]);
        json_decref(e);
    }
    for (int i = 0; i < NLOG; i++) {
        assert_int_equal(r[i].calls, 0);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < NLOG; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, CF_OK);
    }
    json_t *lines = read_lines(f, "audit.log", "");
    assert_int_equal(json_array_size(lines), NLOG + 1);
    for (int i = 0; i < NLOG; i++) {
        assert_int_equal(at_int(json_array_get(lines, (size_t)i + 1), "request", "data", "i"), i);
    }
    json_decref(lines);
    cf_free(r);
}

static void test_discard(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "d", "{\"file_path\":\"DISCARD\"}");
    assert_int_equal(audit_device_count(f->b), 1);
    json_t *e = load(SAMPLE);
    assert_int_equal(log_one(f, e, NULL), CF_OK);
    json_decref(e);
    json_t *all = audit_devices_json(f->b);
    assert_string_equal(at(all, "d/.options.file_path"), "DISCARD");
    json_decref(all);
}

struct bad_case
{
    const char *path;
    const char *type;
    const char *options;
    int salt_len; /* -1: SALT_A */
    int status;
    const char *errmsg;
};

static void test_enable_refused(void **state)
{
    struct fixture *f = *state;
    const struct bad_case cases[] = {
        {"s", "socket", "{\"file_path\":\"discard\"}", -1, CF_EUNSUPPORTED,
         "unknown audit backend type: socket"},
        {"s", "", "{\"file_path\":\"discard\"}", -1, CF_EUNSUPPORTED,
         "unknown audit backend type: "},
        {"s", "file", "{}", -1, CF_EINVAL, "file_path is required"},
        {"s", "file", NULL, -1, CF_EINVAL, "file_path is required"},
        {"s", "file", "{\"file_path\":\"\"}", -1, CF_EINVAL, "file_path is required"},
        {"s", "file", "{\"file_path\":\"discard\",\"format\":\"jsonx\"}", -1, CF_EUNSUPPORTED,
         "format \"jsonx\" is not supported; use \"json\""},
        {"s", "file", "{\"file_path\":\"discard\",\"format\":\"xml\"}", -1, CF_EINVAL,
         "unknown format type \"xml\""},
        {"s", "file", "{\"file_path\":\"discard\",\"mode\":\"0800\"}", -1, CF_EINVAL,
         "invalid mode \"0800\": want an octal file mode such as 0600"},
        {"s", "file", "{\"file_path\":\"discard\",\"mode\":\"abc\"}", -1, CF_EINVAL,
         "invalid mode \"abc\": want an octal file mode such as 0600"},
        {"s", "file", "{\"file_path\":\"discard\",\"mode\":\"\"}", -1, CF_EINVAL,
         "invalid mode \"\": want an octal file mode such as 0600"},
        {"s", "file", "{\"file_path\":\"discard\",\"mode\":\"17777\"}", -1, CF_EINVAL,
         "invalid mode \"17777\": want an octal file mode such as 0600"},
        {"s", "file", "{\"file_path\":\"discard\",\"hmac_accessor\":\"yes\"}", -1, CF_EINVAL,
         "invalid value for hmac_accessor: \"yes\" (want true or false)"},
        {"s", "file", "{\"file_path\":\"discard\",\"log_raw\":\"2\"}", -1, CF_EINVAL,
         "invalid value for log_raw: \"2\" (want true or false)"},
        {"s", "file", "{\"file_path\":\"discard\",\"elide_list_responses\":\"nah\"}", -1, CF_EINVAL,
         "invalid value for elide_list_responses: \"nah\" (want true or false)"},
        {"s", "file", "{\"file_path\":\"discard\",\"skip_test\":\"maybe\"}", -1, CF_EINVAL,
         "invalid value for skip_test: \"maybe\" (want true or false)"},
        {"s", "file", "[1]", -1, CF_EINVAL, "options must be an object of strings"},
        {"s", "file", "{\"file_path\":[\"x\"]}", -1, CF_EINVAL,
         "option \"file_path\" must be a string"},
        {"s", "file", "{\"file_path\":\"discard\",\"prefix\":1.5}", -1, CF_EINVAL,
         "option \"prefix\" must be a string"},
        {"", "file", "{\"file_path\":\"discard\"}", -1, CF_EINVAL, "audit path must not be empty"},
        {"/", "file", "{\"file_path\":\"discard\"}", -1, CF_EINVAL, "audit path must not be empty"},
        {"s", "file", "{\"file_path\":\"discard\"}", 0, CF_EINVAL,
         "audit device salt must not be empty"},
        {"s", "file", "{\"file_path\":\"/nonexistent_cf_dir/x/y\"}", -1, CF_EIO,
         "sanity check failed; unable to open \"/nonexistent_cf_dir/x/y\" for writing: No such "
         "file or directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        struct enable_res r;
        int rv = enable_full(f, c->path, c->type, c->options, SALT_A,
                             c->salt_len < 0 ? SALT_A_LEN : (size_t)c->salt_len, &r);
        if (rv != c->status || strcmp(r.errmsg, c->errmsg) != 0) {
            fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rv, r.errmsg, c->status,
                     c->errmsg);
        }
        assert_int_equal(audit_device_count(f->b), 0);
    }
    json_t *all = audit_devices_json(f->b);
    assert_int_equal(json_object_size(all), 0);
    json_decref(all);
    /* Lenient options: JSON booleans and integers as Vault's weak decoding. */
    enable_ok(f, "lenient", "{\"file_path\":\"discard\",\"log_raw\":true,\"mode\":600}");
    all = audit_devices_json(f->b);
    assert_string_equal(at(all, "lenient/.options.log_raw"), "true");
    assert_string_equal(at(all, "lenient/.options.mode"), "600");
    json_decref(all);
}

static void test_duplicate_path(void **state)
{
    struct fixture *f = *state;
    /* Two enables of the same path in one turn: the first holds the path. */
    struct enable_res r1 = {0};
    struct enable_res r2 = {0};
    json_t *o = load(file_opts(f, "a.log", ""));
    audit_device_enable(f->b, "file", "file", "", o, false, SALT_A, SALT_A_LEN, enable_cb, &r1);
    audit_device_enable(f->b, "file/", "file", "", o, false, SALT_A, SALT_A_LEN, enable_cb, &r2);
    json_decref(o);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.status, CF_OK);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.status, CF_EEXIST);
    assert_string_equal(r2.errmsg, "path already in use");
    struct enable_res r3;
    assert_int_equal(
        enable_full(f, "file/", "file", "{\"file_path\":\"discard\"}", SALT_A, SALT_A_LEN, &r3),
        CF_EEXIST);
    assert_int_equal(audit_device_count(f->b), 1);
}

static void test_disable(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "a", file_opts(f, "a.log", ""));
    enable_ok(f, "b/", file_opts(f, "b.log", ""));
    assert_int_equal(audit_device_count(f->b), 2);
    assert_int_equal(audit_device_disable(f->b, "a"), CF_OK);
    assert_int_equal(audit_device_disable(f->b, "a/"), CF_ENOTFOUND);
    assert_int_equal(audit_device_disable(f->b, "zzz"), CF_ENOTFOUND);
    assert_int_equal(audit_device_count(f->b), 1);
    char *h = NULL;
    assert_int_equal(audit_hash(f->b, "a/", "x", &h), CF_ENOTFOUND);
    assert_null(h);
    json_t *e = load(SAMPLE);
    assert_int_equal(log_one(f, e, NULL), CF_OK);
    json_decref(e);
    json_t *la = read_lines(f, "a.log", "");
    json_t *lb = read_lines(f, "b.log", "");
    assert_int_equal(json_array_size(la), 1); /* only the test line */
    assert_int_equal(json_array_size(lb), 2);
    json_decref(la);
    json_decref(lb);
    json_t *all = audit_devices_json(f->b);
    assert_int_equal(json_object_size(all), 1);
    assert_non_null(json_object_get(all, "b/"));
    json_decref(all);
    /* The path is free again. */
    enable_ok(f, "a/", file_opts(f, "a.log", ""));
    assert_int_equal(audit_device_count(f->b), 2);
}

static void test_listing(void **state)
{
    struct fixture *f = *state;
    struct enable_res r = {0};
    char opts[512];
    snprintf(opts, sizeof(opts),
             "{\"file_path\":\"%s/l.log\",\"mode\":\"0640\",\"prefix\":\"x\",\"foo\":\"bar\"}",
             f->dir);
    json_t *o = load(opts);
    audit_device_enable(f->b, "mine", "file", "my audit", o, true, SALT_A, SALT_A_LEN, enable_cb,
                        &r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.status, CF_OK);
    json_t *all = audit_devices_json(f->b);
    json_t *want = json_pack("{s:{s:s, s:s, s:O, s:b, s:s}}", "mine/", "type", "file",
                             "description", "my audit", "options", o, "local", 1, "path", "mine/");
    assert_true(json_equal(all, want));
    json_decref(want);
    json_decref(all);
    json_decref(o);
    char path[160];
    snprintf(path, sizeof(path), "%s/l.log", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
}

static void test_mode_0000(void **state)
{
    struct fixture *f = *state;
    char path[160];
    snprintf(path, sizeof(path), "%s/keep.log", f->dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(path, 0644), 0);
    enable_ok(f, "keep", file_opts(f, "keep.log", "\"mode\":\"0000\""));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    /* Default mode: 0600. */
    enable_ok(f, "dflt", file_opts(f, "dflt.log", ""));
    snprintf(path, sizeof(path), "%s/dflt.log", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_skip_test(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "quiet", file_opts(f, "q.log", "\"skip_test\":\"true\""));
    json_t *lines = read_lines(f, "q.log", "");
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
}

static void test_audit_hash(void **state)
{
    struct fixture *f = *state;
    struct enable_res r;
    enable_ok(f, "a", "{\"file_path\":\"discard\"}");
    assert_int_equal(
        enable_full(f, "b", "file", "{\"file_path\":\"discard\"}", SALT_B, SALT_B_LEN, &r), CF_OK);
    char *h1 = NULL;
    char *h2 = NULL;
    char *h3 = NULL;
    assert_int_equal(audit_hash(f->b, "a", "secret", &h1), CF_OK);
    assert_int_equal(audit_hash(f->b, "a/", "secret", &h2), CF_OK);
    assert_int_equal(audit_hash(f->b, "b/", "secret", &h3), CF_OK);
    assert_string_equal(h1, h2); /* deterministic per salt */
    assert_string_equal(h1, H(SALT_A, SALT_A_LEN, "secret"));
    assert_string_equal(h3, H(SALT_B, SALT_B_LEN, "secret"));
    assert_string_not_equal(h1, h3);
    cf_free(h1);
    cf_free(h2);
    cf_free(h3);
    char *h = NULL;
    assert_int_equal(audit_hash(f->b, "nope", "secret", &h), CF_ENOTFOUND);
    assert_int_equal(audit_hash(f->b, "a", NULL, &h), CF_EINVAL);
    assert_null(h);
}

static void test_close_with_pending(void **state)
{
    struct fixture *f = *state;
    enable_ok(f, "file", file_opts(f, "audit.log", ""));
    json_t *e = load(SAMPLE);
    struct log_res r[5] = {{0}};
    for (int i = 0; i < 4; i++) {
        audit_log(f->b, e, NULL, log_cb, &r[i]);
    }
    /* An enable still in progress when the broker closes. */
    struct enable_res er = {0};
    json_t *o = load(file_opts(f, "late.log", ""));
    audit_device_enable(f->b, "late", "file", "", o, false, SALT_A, SALT_A_LEN, enable_cb, &er);
    json_decref(o);
    int closed = 0;
    audit_broker_close(f->b, close_cb, &closed);
    audit_log(f->b, e, NULL, log_cb, &r[4]); /* after close began */
    f->b = NULL;
    assert_int_equal(r[0].calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, CF_OK); /* flushed before the file closed */
    }
    assert_int_equal(r[4].calls, 1);
    assert_int_equal(r[4].status, CF_ESHUTDOWN);
    assert_int_equal(er.calls, 1);
    assert_int_equal(er.status, CF_ECANCELED);
    json_t *lines = read_lines(f, "audit.log", "");
    assert_int_equal(json_array_size(lines), 5);
    json_decref(lines);
    json_decref(e);
}

/* ---- ENOSPC ---- */

static bool mount_tiny_tmpfs(const char *dir)
{
    if (geteuid() != 0) {
        return false;
    }
    return mount("tmpfs", dir, "tmpfs", 0, "size=64k") == 0;
}

static void fill_fs(const char *dir)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    assert_true(fd >= 0);
    char block[512];
    memset(block, 'z', sizeof(block));
    while (write(fd, block, sizeof(block)) == (ssize_t)sizeof(block)) {
    }
    close(fd);
}

/* An entry whose line is about 12 KB. */
static json_t *big_entry(void)
{
    char *v = cf_malloc(12000);
    assert_non_null(v);
    memset(v, 'v', 11999);
    v[11999] = '\0';
    json_t *e = json_pack("{s:s, s:{s:s, s:{s:s}}}", "type", "request", "request", "path", "x",
                          "data", "big", v);
    cf_free(v);
    return e;
}

static void test_enospc(void **state)
{
    struct fixture *f = *state;
    char mnt[128];
    snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (!mount_tiny_tmpfs(mnt)) {
        skip();
    }
    enable_ok(f, "full", file_opts(f, "mnt/audit.log", "\"log_raw\":\"true\""));
    enable_ok(f, "ok", file_opts(f, "ok.log", "\"log_raw\":\"true\""));
    fill_fs(mnt);
    json_t *e = big_entry();
    json_t *small = load("{\"type\":\"request\",\"request\":{\"path\":\"small\"}}");

    /* Two devices, one failing: the entry is logged. */
    assert_int_equal(log_one(f, e, NULL), CF_OK);
    assert_int_equal(log_one(f, small, NULL), CF_OK);
    json_t *ok = read_lines(f, "ok.log", "");
    assert_int_equal(json_array_size(ok), 3);
    json_decref(ok);
    /* The full device's file holds only whole lines (read_lines checks each). */
    json_t *full = read_lines(f, "mnt/audit.log", "");
    for (size_t i = 1; i < json_array_size(full); i++) {
        assert_string_not_equal(at(json_array_get(full, i), "request.path"), "x");
    }
    json_decref(full);

    /* Only the failing device left: the caller gets an error. */
    assert_int_equal(audit_device_disable(f->b, "ok"), CF_OK);
    assert_int_equal(log_one(f, e, NULL), CF_EIO);
    full = read_lines(f, "mnt/audit.log", "");
    for (size_t i = 1; i < json_array_size(full); i++) {
        assert_string_not_equal(at(json_array_get(full, i), "request.path"), "x");
    }
    json_decref(full);
    json_decref(small);
    json_decref(e);
    /* Close everything before unmounting. */
    int closed = 0;
    audit_broker_close(f->b, close_cb, &closed);
    f->b = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(umount(mnt), 0);
}

/* ---- Allocation failures ---- */

static void test_alloc_failures(void **state)
{
    struct fixture *f = *state;
    json_t *e = load(SAMPLE);
    json_t *opts = load(file_opts(f, "oom.log", ""));
    json_t *dopts = load("{\"file_path\":\"discard\"}");
    bool done = false;
    for (unsigned long n = 1; !done; n++) {
        assert_true(n < 2000);
        long live = cf_mem_live();
        cf_mem_fail_after(n);
        struct audit_broker *b = audit_broker_new(&f->loop);
        if (b == NULL) {
            cf_mem_fail_after(0);
            assert_int_equal(cf_mem_live(), live);
            continue;
        }
        struct enable_res r1 = {0};
        struct enable_res r2 = {0};
        audit_device_enable(b, "file", "file", "d", opts, false, SALT_A, SALT_A_LEN, enable_cb,
                            &r1);
        audit_device_enable(b, "dis", "file", "d", dopts, false, SALT_A, SALT_A_LEN, enable_cb,
                            &r2);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(r1.calls, 1);
        assert_int_equal(r2.calls, 1);
        struct log_res lr = {0};
        audit_log(b, e, NULL, log_cb, &lr);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(lr.calls, 1);
        json_t *all = audit_devices_json(b);
        char *h = NULL;
        int hrv = audit_hash(b, "file", "x", &h);
        cf_mem_fail_after(0);
        done = r1.status == CF_OK && r2.status == CF_OK && lr.status == CF_OK && all != NULL &&
               hrv == CF_OK;
        json_decref(all);
        cf_free(h);
        int closed = 0;
        audit_broker_close(b, close_cb, &closed);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(closed, 1);
        assert_int_equal(cf_mem_live(), live);
    }
    json_decref(dopts);
    json_decref(opts);
    json_decref(e);
}

int main(void)
{
    json_set_alloc_funcs(cf_malloc, cf_free);
    cf_log_set_level(CF_LOG_WARN); /* the allocation loop enables hundreds of devices */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_string_vector),
        cmocka_unit_test(test_hash_fields),
        cmocka_unit_test(test_hash_no_accessor),
        cmocka_unit_test(test_hash_non_hmac_keys),
        cmocka_unit_test_setup_teardown(test_no_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enable_and_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_opts_non_hmac, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_raw_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_list_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enable_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_0000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_test, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
