/* Request and response objects shared by the core, the engines and the API layer. */
#include "lib/metrics.h"
#include "node/engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/mem.h"

const char *node_op_name(enum node_op op)
{
    switch (op) {
        case NODE_OP_READ:
            return "read";
        case NODE_OP_CREATE:
            return "create";
        case NODE_OP_UPDATE:
            return "update";
        case NODE_OP_DELETE:
            return "delete";
        case NODE_OP_LIST:
            return "list";
        case NODE_OP_PATCH:
            return "patch";
    }
    return "unknown";
}

struct node_response *node_response_new(void)
{
    return cf_calloc(1, sizeof(struct node_response));
}

void node_response_free(struct node_response *resp)
{
    if (resp == NULL) {
        return;
    }
    json_decref(resp->data);
    json_decref(resp->warnings);
    json_decref(resp->auth);
    json_decref(resp->errors);
    json_decref(resp->bare);
    json_decref(resp->wrap_info);
    json_decref(resp->lease_secret);
    cf_free(resp->lease_id);
    cf_free(resp->raw_content_type);
    cf_free(resp->raw_body);
    cf_free(resp);
}

struct node_response *node_response_error(int status, const char *fmt, ...)
{
    struct node_response *resp = node_response_new();
    if (resp == NULL) {
        return NULL;
    }
    resp->status = status;
    resp->errors = json_array();
    if (resp->errors == NULL) {
        node_response_free(resp);
        return NULL;
    }
    if (fmt != NULL) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (json_array_append_new(resp->errors, json_string(msg)) != 0) {
            node_response_free(resp);
            return NULL;
        }
    }
    return resp;
}

struct node_response *node_response_not_found(void)
{
    return node_response_error(404, NULL);
}

struct node_response *node_response_data(json_t *data)
{
    struct node_response *resp = node_response_new();
    if (resp == NULL) {
        json_decref(data);
        return NULL;
    }
    resp->data = data;
    return resp;
}

struct node_request *node_request_new(enum node_op op, char *path, json_t *data)
{
    struct node_request *req = cf_calloc(1, sizeof(*req));
    if (data == NULL) {
        data = json_object();
    }
    if (req == NULL || data == NULL || path == NULL || cf_uuid_v4(req->request_id) != CF_OK) {
        cf_free(req);
        cf_free(path);
        json_decref(data);
        return NULL;
    }
    req->op = op;
    req->path = path;
    req->data = data;
    req->wants_body = true;
    req->start_ns = cf_metrics_now_ns();
    return req;
}

void node_request_free(struct node_request *req)
{
    if (req == NULL) {
        return;
    }
    cf_free(req->path);
    json_decref(req->data);
    if (req->token != NULL) {
        cf_cleanse(req->token, strlen(req->token));
        cf_free(req->token);
    }
    cf_free(req->remote_addr);
    cf_free(req->raw_body);
    cf_free(req);
}

void node_request_done(struct node_request *req, struct node_response *resp)
{
    req->done_cb(req, resp);
}

bool node_response_is_empty(const struct node_response *resp)
{
    return resp->data == NULL && resp->auth == NULL && resp->warnings == NULL &&
           resp->wrap_info == NULL && resp->status == 0;
}

json_t *node_response_envelope(const struct node_response *resp, const char *request_id)
{
    json_t *env = json_object();
    if (env == NULL) {
        return NULL;
    }
    int rv = 0;
    rv |= json_object_set_new(env, "request_id", json_string(request_id ? request_id : ""));
    rv |= json_object_set_new(env, "lease_id", json_string(resp->lease_id ? resp->lease_id : ""));
    rv |= json_object_set_new(env, "renewable", json_boolean(resp->renewable));
    rv |= json_object_set_new(env, "lease_duration", json_integer(resp->lease_duration));
    rv |= json_object_set(env, "data", resp->data ? resp->data : json_null());
    rv |= json_object_set(env, "wrap_info", resp->wrap_info ? resp->wrap_info : json_null());
    rv |= json_object_set(env, "warnings", resp->warnings ? resp->warnings : json_null());
    rv |= json_object_set(env, "auth", resp->auth ? resp->auth : json_null());
    rv |= json_object_set_new(env, "mount_type",
                              json_string(resp->mount_type ? resp->mount_type : ""));
    if (rv == 0 && resp->inject_top_level && json_is_object(resp->data)) {
        const char *k;
        json_t *v;
        json_object_foreach(resp->data, k, v)
        {
            if (json_object_get(env, k) == NULL) {
                rv |= json_object_set(env, k, v);
            }
        }
    }
    if (rv != 0) {
        json_decref(env);
        return NULL;
    }
    return env;
}

struct node_response *node_response_injected(json_t *data)
{
    struct node_response *resp = node_response_data(data);
    if (resp != NULL) {
        resp->inject_top_level = true;
        resp->mount_type = "system";
    }
    return resp;
}
