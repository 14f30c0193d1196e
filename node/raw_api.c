/*
 * sys/raw (read side): GET sys/raw/<key> returns a storage value as the barrier decrypts it,
 * LIST sys/raw/<prefix> the keys below a prefix, as Vault does when the config file sets
 * raw_storage_endpoint = true. sudo is needed (node/acl.c lists the path). It shows what the
 * barrier holds: seal-wrapped values stay wrapped, which is how an operator sees seal wrap at
 * work. core/ holds the seal's and the barrier's own keys and is never shown. Writes through
 * sys/raw are not offered: storage changes go through the engines.
 */
#include <string.h>

#include "lib/crypto.h"
#include "node/internal.h"

#define RAW_PREFIX "sys/raw/"

struct raw_list
{
    size_t skip;
    json_t *keys;
};

static int list_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct raw_list *l = arg;
    (void)val;
    (void)len;
    const char *name = key + l->skip;
    const char *slash = strchr(name, '/');
    json_t *s = slash ? json_stringn(name, (size_t)(slash - name) + 1) : json_string(name);
    size_t n = json_array_size(l->keys);
    if (s != NULL && n > 0 && json_equal(json_array_get(l->keys, n - 1), s)) {
        json_decref(s);
        return 0;
    }
    return s == NULL || json_array_append_new(l->keys, s) != 0;
}

static void raw_list(struct node_core *core, struct node_request *req, const char *prefix)
{
    struct raw_list l = {.skip = strlen(prefix), .keys = json_array()};
    struct node_response *resp = l.keys ? node_response_new() : NULL;
    if (resp != NULL && rft_store_scan(core->store, prefix, NULL, list_visit, &l) != 0) {
        node_response_free(resp);
        resp = NULL;
    }
    if (resp != NULL && json_array_size(l.keys) == 0) {
        node_response_free(resp);
        json_decref(l.keys);
        node_request_done(req, node_response_not_found());
        return;
    }
    if (resp != NULL) {
        resp->data = json_pack("{s:O}", "keys", l.keys);
    }
    json_decref(l.keys);
    node_request_done(req, resp);
}

static void raw_read(struct node_core *core, struct node_request *req, const char *key)
{
    const char *enc = json_string_value(json_object_get(req->data, "encoding"));
    if (enc != NULL && enc[0] != '\0' && strcmp(enc, "base64") != 0) {
        node_request_done(req, node_response_error(400, "invalid encoding \"%s\"", enc));
        return;
    }
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node__get(core, key, &val, &len);
    if (rv == CF_ENOTFOUND) {
        node_request_done(req, node_response_not_found());
        return;
    }
    if (rv != CF_OK) {
        node_request_done(req,
                          node_response_error(500, "cannot read %s: %s", key, cf_strerror(rv)));
        return;
    }
    json_t *value = NULL;
    if (enc != NULL && enc[0] != '\0') {
        char *b = cf_base64_encode(val, len);
        value = b ? json_string(b) : NULL;
        cf_free(b);
    } else {
        value = json_stringn((const char *)val, len);
    }
    cf_cleanse(val, len);
    cf_free(val);
    if (value == NULL) {
        node_request_done(req, node_response_error(400,
                                                   "the value of %s is not valid UTF-8; read it "
                                                   "with encoding=base64",
                                                   key));
        return;
    }
    struct node_response *resp = node_response_new();
    if (resp != NULL) {
        resp->data = json_pack("{s:o}", "value", value);
    } else {
        json_decref(value);
    }
    node_request_done(req, resp);
}

bool node__raw_api_handle(struct node_core *core, struct node_request *req)
{
    const char *p = req->path;
    if (!core->cfg.raw_storage_endpoint ||
        (strcmp(p, "sys/raw") != 0 && strncmp(p, RAW_PREFIX, strlen(RAW_PREFIX)) != 0)) {
        return false;
    }
    const char *key = strlen(p) > strlen(RAW_PREFIX) ? p + strlen(RAW_PREFIX) : "";
    if (strncmp(key, "core/", 5) == 0 || strcmp(key, "core") == 0 ||
        (key[0] == '\0' && req->op != NODE_OP_LIST)) {
        node_request_done(req, node_response_error(403, "cannot access %s through sys/raw",
                                                   key[0] ? key : "the storage root"));
        return true;
    }
    if (req->op == NODE_OP_LIST) {
        raw_list(core, req, key);
    } else if (req->op == NODE_OP_READ) {
        raw_read(core, req, key);
    } else {
        node_request_done(req, node_response_error(405,
                                                   "sys/raw is read-only on this server: "
                                                   "storage changes go through the engines"));
    }
    return true;
}
