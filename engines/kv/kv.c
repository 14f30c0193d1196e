/*
 * kv version 1. A read returns the stored object as `data`, with lease_duration taken from the
 * object's own "ttl" field when present, else the mount's default lease TTL (set by the core
 * from the mount table; 768h when unset); a write replaces the whole object (and commits
 * through raft before the 204 goes out); list is one level; delete is idempotent. PATCH is not
 * a kv v1 operation (405). The existence check (true when the key holds a value) lets the ACL
 * tell a create from an update.
 */
#include "engines/kv/kv.h"

#include <string.h>

#include "lib/json.h"
#include "lib/duration.h"
#include "lib/mem.h"
#include "node/engine.h"

#define KV_DEFAULT_LEASE_S 2764800 /* 768h, Vault's system default */

static int kv_create(struct node_view *view,
                     const json_t *options,
                     void **state,
                     char errmsg[CF_ERRMSG_SIZE])
{
    const char *version = json_string_value(json_object_get(options, "version"));
    if (version != NULL && strcmp(version, "1") != 0) {
        cf_errmsg_printf(errmsg, "kv version %s is not supported yet", version);
        return CF_EUNSUPPORTED;
    }
    *state = view;
    return CF_OK;
}

static void kv_destroy(void *state)
{
    (void)state;
}

/* Reads "ttl" as Vault's passthrough backend does: seconds or a duration string. */
static int ttl_of(const json_t *obj, int64_t *out)
{
    const json_t *t = json_object_get(obj, "ttl");
    if (t == NULL) {
        return CF_ENOTFOUND;
    }
    if (json_is_integer(t)) {
        *out = json_integer_value(t);
        return *out >= 0 ? CF_OK : CF_EINVAL;
    }
    if (json_is_string(t)) {
        return cf_duration_parse_s(json_string_value(t), out) == CF_OK && *out >= 0 ? CF_OK
                                                                                    : CF_EINVAL;
    }
    return CF_EINVAL;
}

static void kv_read(struct node_view *view, struct node_request *req)
{
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node_view_get(view, req->rel_path, &val, &len);
    if (rv == CF_ENOTFOUND) {
        node_request_done(req, node_response_not_found());
        return;
    }
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(500, "read %s: %s", req->path, cf_strerror(rv)));
        return;
    }
    json_t *obj = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    if (obj == NULL) {
        node_request_done(req,
                          node_response_error(500, "stored value at %s is not JSON", req->path));
        return;
    }
    int64_t ttl = req->mount_default_lease_s > 0 ? req->mount_default_lease_s : KV_DEFAULT_LEASE_S;
    (void)ttl_of(obj, &ttl);
    struct node_response *resp = node_response_data(obj);
    if (resp != NULL) {
        resp->lease_duration = ttl;
        resp->mount_type = "kv";
    }
    node_request_done(req, resp);
}

static void kv_list(struct node_view *view, struct node_request *req)
{
    json_t *keys = NULL;
    int rv = node_view_list(view, req->rel_path, &keys);
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(500, "list %s: %s", req->path, cf_strerror(rv)));
        return;
    }
    struct node_response *resp = node_response_data(json_pack("{s:o}", "keys", keys));
    if (resp != NULL) {
        resp->mount_type = "kv";
    }
    node_request_done(req, resp);
}

static void kv_write_done_cb(void *arg, int status)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        node_request_done(req, node_response_error(
                                   status == CF_ESEALED ? 503 : 500, "%s",
                                   status == CF_ESEALED ? "Vault is sealed" : cf_strerror(status)));
        return;
    }
    node_request_done(req, node_response_new());
}

static void kv_write(struct node_view *view, struct node_request *req)
{
    if (json_object_size(req->data) == 0) {
        node_request_done(req, node_response_error(400, "missing data fields"));
        return;
    }
    int64_t ttl;
    if (ttl_of(req->data, &ttl) == CF_EINVAL) {
        node_request_done(req, node_response_error(400, "failed to parse ttl for entry"));
        return;
    }
    char *s = cf_json_dumps(req->data, NULL);
    struct node_write *w = node_view_write(view);
    if (s == NULL || w == NULL) {
        cf_free(s);
        node_write_free(w);
        node_request_done(req, NULL);
        return;
    }
    int rv = node_write_put(w, req->rel_path, (const uint8_t *)s, strlen(s));
    cf_cleanse(s, strlen(s));
    cf_free(s);
    if (rv == CF_EINVAL) {
        node_write_free(w);
        node_request_done(req, node_response_error(400, "invalid path: too long"));
        return;
    }
    node_write_commit(w, kv_write_done_cb, req);
}

static void kv_delete(struct node_view *view, struct node_request *req)
{
    struct node_write *w = node_view_write(view);
    if (w == NULL) {
        node_request_done(req, NULL);
        return;
    }
    node_write_delete(w, req->rel_path);
    node_write_commit(w, kv_write_done_cb, req);
}

static void kv_handle(void *state, struct node_request *req)
{
    struct node_view *view = state;
    bool is_dir = req->rel_path[0] == '\0' || req->rel_path[strlen(req->rel_path) - 1] == '/';
    switch (req->op) {
        case NODE_OP_LIST:
            kv_list(view, req);
            return;
        case NODE_OP_READ:
            if (is_dir) {
                node_request_done(req, node_response_not_found());
                return;
            }
            kv_read(view, req);
            return;
        case NODE_OP_CREATE:
        case NODE_OP_UPDATE:
            if (is_dir) {
                node_request_done(req, node_response_error(400,
                                                           "cannot write to a path "
                                                           "ending in '/'"));
                return;
            }
            kv_write(view, req);
            return;
        case NODE_OP_DELETE:
            kv_delete(view, req);
            return;
        case NODE_OP_PATCH:
            break;
    }
    node_request_done(req, node_response_error(405, "unsupported operation"));
}

static int kv_exists(void *state, struct node_request *req, bool *exists)
{
    struct node_view *view = state;
    size_t n = strlen(req->rel_path);
    *exists = false;
    if (n == 0 || req->rel_path[n - 1] == '/') {
        return CF_OK;
    }
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node_view_get(view, req->rel_path, &val, &len);
    if (rv == CF_OK) {
        cf_cleanse(val, len);
        cf_free(val);
        *exists = true;
    }
    return rv == CF_ENOTFOUND ? CF_OK : rv;
}

const struct node_engine_ops kv_engine_ops = {
    .type = "kv",
    .create = kv_create,
    .destroy = kv_destroy,
    .handle = kv_handle,
    .exists = kv_exists,
};
