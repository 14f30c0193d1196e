/*
 * sys/ endpoints that answer in the Vault envelope: sys/rotate (new keyring term),
 * sys/key-status, sys/mounts (read). Both key endpoints are root-protected in Vault; until ACLs
 * land, only the root token reaches any of them.
 */
#include "engines/sys/sys.h"

#include <string.h>

#include "node/engine.h"

static int sys_create(struct node_view *view,
                      const json_t *options,
                      void **state,
                      char errmsg[CF_ERRMSG_SIZE])
{
    (void)options;
    (void)errmsg;
    *state = view;
    return CF_OK;
}

static void sys_destroy(void *state)
{
    (void)state;
}

static void rotate_done_cb(void *arg, int status)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        node_request_done(req, node_response_error(500, "rotate keyring: %s", cf_strerror(status)));
        return;
    }
    node_request_done(req, node_response_new());
}

static void sys_handle(void *state, struct node_request *req)
{
    (void)state;
    const char *p = req->rel_path;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (strcmp(p, "rotate") == 0 || strcmp(p, "rotate/keyring") == 0) {
        if (!write) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
            return;
        }
        node_core_rotate(req->core, rotate_done_cb, req);
        return;
    }
    if (strcmp(p, "key-status") == 0) {
        if (req->op != NODE_OP_READ) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
            return;
        }
        node_request_done(req, node_response_injected(node_core_key_status(req->core)));
        return;
    }
    if (strcmp(p, "mounts") == 0 && req->op == NODE_OP_READ) {
        node_request_done(req, node_response_injected(node_core_mounts_json(req->core)));
        return;
    }
    node_request_done(req, node_response_error(404, "unsupported path"));
}

const struct node_engine_ops sys_engine_ops = {
    .type = "system",
    .create = sys_create,
    .destroy = sys_destroy,
    .handle = sys_handle,
};
