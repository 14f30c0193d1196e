/*
 * cubbyhole: each token's private kv v1 store. The core sets req->cubbyhole_id from the client
 * token; every key of that token lives under "<cubbyhole_id>/" inside the mount's view, so a
 * token can neither see nor name another token's keys (the id never holds '/'). A read
 * returns the stored object with lease_duration 0; a write replaces the object and answers
 * 204 once committed; list is one level; delete is idempotent. When a token goes away the
 * token store removes its whole subtree with cubbyhole_destroy() in the same batch.
 */
#include "engines/cubbyhole/cubbyhole.h"

#include <string.h>

#include "lib/json.h"
#include "lib/mem.h"
#include "node/engine.h"

static int cubby_create(struct node_view *view,
                        const json_t *options,
                        void **state,
                        char errmsg[CF_ERRMSG_SIZE])
{
    (void)options;
    (void)errmsg;
    *state = view;
    return CF_OK;
}

static void cubby_destroy(void *state)
{
    (void)state;
}

static bool id_ok(const char *id)
{
    return id != NULL && id[0] != '\0' && strchr(id, '/') == NULL;
}

/* "<id>/<rel>" (cf_malloc'd), with a '/' appended when dir is set and rel lacks one. */
static char *token_key(const char *id, const char *rel, bool dir)
{
    size_t il = strlen(id);
    size_t rl = strlen(rel);
    bool add_slash = dir && rl > 0 && rel[rl - 1] != '/';
    char *k = cf_malloc(il + 1 + rl + (add_slash ? 1 : 0) + 1);
    if (k == NULL) {
        return NULL;
    }
    memcpy(k, id, il);
    k[il] = '/';
    memcpy(k + il + 1, rel, rl);
    if (add_slash) {
        k[il + 1 + rl] = '/';
        rl++;
    }
    k[il + 1 + rl] = '\0';
    return k;
}

int cubbyhole_destroy(struct node_write *w, const char *cubbyhole_id)
{
    if (!id_ok(cubbyhole_id)) {
        return CF_EINVAL;
    }
    char *prefix = token_key(cubbyhole_id, "", false);
    if (prefix == NULL) {
        return CF_ENOMEM;
    }
    int rv = node_write_delete_prefix(w, prefix);
    cf_free(prefix);
    return rv;
}

static struct node_response *with_type(struct node_response *resp)
{
    if (resp != NULL) {
        resp->mount_type = "cubbyhole";
    }
    return resp;
}

static void cubby_read(struct node_view *view, struct node_request *req, const char *key)
{
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node_view_get(view, key, &val, &len);
    if (rv == CF_ENOTFOUND) {
        node_request_done(req, node_response_not_found());
        return;
    }
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(rv == CF_ESEALED ? 503 : 500, "read failed: %s",
                                                   cf_strerror(rv)));
        return;
    }
    json_t *obj = json_loadb((const char *)val, len, 0, NULL);
    cf_cleanse(val, len);
    cf_free(val);
    if (obj == NULL) {
        node_request_done(req, node_response_error(500, "json decoding failed"));
        return;
    }
    node_request_done(req, with_type(node_response_data(obj)));
}

static void cubby_list(struct node_view *view, struct node_request *req, const char *prefix)
{
    json_t *keys = NULL;
    int rv = node_view_list(view, prefix, &keys);
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(rv == CF_ESEALED ? 503 : 500, "list failed: %s",
                                                   cf_strerror(rv)));
        return;
    }
    node_request_done(req, with_type(node_response_data(json_pack("{s:o}", "keys", keys))));
}

static void write_done_cb(void *arg, int status)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        node_request_done(req, node_response_error(
                                   status == CF_ESEALED ? 503 : 500, "failed to write: %s",
                                   status == CF_ESEALED ? "Vault is sealed" : cf_strerror(status)));
        return;
    }
    node_request_done(req, node_response_new());
}

static void cubby_write(struct node_view *view, struct node_request *req, const char *key)
{
    char *s = cf_json_dumps(req->data, NULL);
    struct node_write *w = node_view_write(view);
    if (s == NULL || w == NULL) {
        cf_free(s);
        node_write_free(w);
        node_request_done(req, NULL);
        return;
    }
    size_t n = strlen(s);
    int rv = node_write_put(w, key, (const uint8_t *)s, n);
    cf_cleanse(s, n);
    cf_free(s);
    if (rv == CF_EINVAL) {
        node_write_free(w);
        node_request_done(req, node_response_error(400, "invalid path: too long"));
        return;
    }
    node_write_commit(w, write_done_cb, req);
}

static void cubby_delete(struct node_view *view, struct node_request *req, const char *key)
{
    struct node_write *w = node_view_write(view);
    if (w == NULL) {
        node_request_done(req, NULL);
        return;
    }
    node_write_delete(w, key);
    node_write_commit(w, write_done_cb, req);
}

static void cubby_handle(void *state, struct node_request *req)
{
    struct node_view *view = state;
    if (!id_ok(req->cubbyhole_id)) {
        node_request_done(req, node_response_error(400, "client token empty"));
        return;
    }
    const char *rel = req->rel_path;
    size_t rl = strlen(rel);
    bool is_dir = rl == 0 || rel[rl - 1] == '/';
    if (req->op == NODE_OP_PATCH) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
        return;
    }
    if (req->op != NODE_OP_LIST && req->op != NODE_OP_DELETE && rl == 0) {
        node_request_done(req, node_response_error(400, "missing path"));
        return;
    }
    if ((req->op == NODE_OP_CREATE || req->op == NODE_OP_UPDATE) &&
        json_object_size(req->data) == 0) {
        node_request_done(req, node_response_error(400, "missing data fields"));
        return;
    }
    char *key = token_key(req->cubbyhole_id, rel, req->op == NODE_OP_LIST);
    if (key == NULL) {
        node_request_done(req, NULL);
        return;
    }
    switch (req->op) {
        case NODE_OP_LIST:
            cubby_list(view, req, key);
            break;
        case NODE_OP_READ:
            if (is_dir) {
                node_request_done(req, node_response_not_found());
            } else {
                cubby_read(view, req, key);
            }
            break;
        case NODE_OP_CREATE:
        case NODE_OP_UPDATE:
            if (is_dir) {
                node_request_done(req,
                                  node_response_error(400, "cannot write to a path ending in '/'"));
            } else {
                cubby_write(view, req, key);
            }
            break;
        case NODE_OP_DELETE:
            cubby_delete(view, req, key);
            break;
        case NODE_OP_PATCH:
            break;
    }
    cf_free(key);
}

static int cubby_exists(void *state, struct node_request *req, bool *exists)
{
    struct node_view *view = state;
    *exists = false;
    size_t rl = strlen(req->rel_path);
    if (!id_ok(req->cubbyhole_id) || rl == 0 || req->rel_path[rl - 1] == '/') {
        return CF_OK;
    }
    char *key = token_key(req->cubbyhole_id, req->rel_path, false);
    if (key == NULL) {
        return CF_ENOMEM;
    }
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node_view_get(view, key, &val, &len);
    cf_free(key);
    if (rv == CF_OK) {
        cf_cleanse(val, len);
        cf_free(val);
        *exists = true;
    }
    return rv == CF_ENOTFOUND ? CF_OK : rv;
}

const struct node_engine_ops cubbyhole_engine_ops = {
    .type = "cubbyhole",
    .create = cubby_create,
    .destroy = cubby_destroy,
    .handle = cubby_handle,
    .exists = cubby_exists,
};
