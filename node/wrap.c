/*
 * Response wrapping: wrapping tokens, their cubbyhole contents and the sys/wrapping endpoints
 * (wrap.h).
 *
 * A wrapping token's cubbyhole holds two entries: "response" = {"response":"<envelope JSON>"}
 * and "wrapinfo" = {"creation_ttl":secs,"creation_time":"RFC3339","creation_path":".."}.
 */
#include "node/wrap.h"

#include <stdio.h>
#include <string.h>

#include "node/expire.h"
#include "node/barrier.h"
#include "node/internal.h"

#define CF_LOG_MODULE "wrap"
#include "lib/json.h"
#include "lib/log.h"

#define WRAP_POLICY "response-wrapping"
#define WRAP_INVALID "wrapping token is not valid or does not exist"

static struct node_response *invalid(void)
{
    return node_response_error(400, WRAP_INVALID);
}

static int cubby_key(struct node_core *core,
                     const struct node_token *t,
                     const char *name,
                     char out[512])
{
    const char *cp = node__cubbyhole_prefix(core);
    const char *cid = node__token_str(t, "cubbyhole_id");
    if (cp == NULL || cid[0] == '\0') {
        return CF_ENOTFOUND;
    }
    snprintf(out, 512, "%s%s/%s", cp, cid, name);
    return CF_OK;
}

/* Puts j (a new reference, consumed). */
static int put_json(struct node_core *core, struct rft_batch *b, const char *key, json_t *j)
{
    int rv = node__batch_put_json(core, b, key, j);
    json_decref(j);
    return rv;
}

static json_t *get_json(struct node_core *core, const char *key)
{
    uint8_t *val = NULL;
    size_t len = 0;
    if (node__get(core, key, &val, &len) != CF_OK) {
        return NULL;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_cleanse(val, len);
    cf_free(val);
    return j;
}

/* A new wrapping token holding envelope (a JSON string) in b. */
struct wrapped
{
    char hash[TOKEN_HASH_LEN + 1];
    int64_t expire_ns;
    json_t *wrap_info;
};

static int build_wrap(struct node_core *core,
                      struct rft_batch *b,
                      const char *envelope,
                      int64_t ttl_s,
                      const char *creation_path,
                      const char *display_name,
                      const char *wrapped_accessor,
                      struct wrapped *out)
{
    char token[29];
    json_t *entry = NULL;
    json_t *pol = json_pack("[s]", WRAP_POLICY);
    int rv = pol ? node__token_generate(token) : CF_ENOMEM;
    struct node_token_params p = {
        .policies = pol,
        .path = creation_path,
        .display_name = display_name,
        .num_uses = 1,
        .ttl_s = ttl_s,
        .explicit_max_ttl_s = ttl_s,
        .renewable = false,
    };
    if (rv == CF_OK) {
        rv = node__token_batch_create(core, NULL, b, token, &p, &entry, out->hash);
    }
    json_decref(pol);
    if (rv != CF_OK) {
        cf_cleanse(token, sizeof(token));
        return rv;
    }
    struct node_token t = {.entry = entry};
    char when[64];
    node__rfc3339(node__token_int(&t, "creation_ns"), when);
    char key[512];
    rv = cubby_key(core, &t, "response", key);
    if (rv == CF_OK) {
        rv = put_json(core, b, key, json_pack("{s:s}", "response", envelope));
    }
    if (rv == CF_OK) {
        rv = cubby_key(core, &t, "wrapinfo", key);
    }
    if (rv == CF_OK) {
        rv = put_json(core, b, key,
                      json_pack("{s:I,s:s,s:s}", "creation_ttl", (json_int_t)ttl_s, "creation_time",
                                when, "creation_path", creation_path));
    }
    if (rv == CF_OK) {
        out->expire_ns = node__token_int(&t, "expire_ns");
        out->wrap_info = json_pack("{s:s,s:s,s:I,s:s,s:s}", "token", token, "accessor",
                                   node__token_str(&t, "accessor"), "ttl", (json_int_t)ttl_s,
                                   "creation_time", when, "creation_path", creation_path);
        if (out->wrap_info == NULL) {
            rv = CF_ENOMEM;
        } else if (wrapped_accessor != NULL && wrapped_accessor[0] != '\0') {
            json_object_set_new(out->wrap_info, "wrapped_accessor", json_string(wrapped_accessor));
        }
    }
    cf_cleanse(token, sizeof(token));
    node__token_clear(&t);
    return rv;
}

/* Wrapping a response --------------------------------------------------------------------- */

struct wrap_op
{
    struct node_core *core;
    struct node_request *req;
    node_wrap_cb cb;
    struct wrapped w;
};

static void wrap_committed_cb(void *arg, int status)
{
    struct wrap_op *op = arg;
    struct node_response *resp;
    if (status != CF_OK) {
        json_decref(op->w.wrap_info);
        resp = node_response_error(500, "failed to wrap the response: %s", cf_strerror(status));
    } else {
        node__expire_track(op->core->expire, op->w.hash, op->w.expire_ns);
        resp = node_response_new();
        if (resp != NULL) {
            resp->wrap_info = op->w.wrap_info;
        } else {
            json_decref(op->w.wrap_info);
        }
    }
    op->cb(op->req, resp);
    cf_free(op);
}

void node__wrap_response(struct node_core *core,
                         struct node_request *req,
                         struct node_response *resp,
                         const struct node_token *caller,
                         node_wrap_cb cb)
{
    json_t *env = node_response_envelope(resp, req->request_id);
    char *s = env ? cf_json_dumps(env, NULL) : NULL;
    json_decref(env);
    const char *wrapped_acc = json_string_value(json_object_get(resp->auth, "accessor"));
    char *acc = wrapped_acc ? cf_strdup(wrapped_acc) : NULL;
    node_response_free(resp);
    struct wrap_op *op = cf_calloc(1, sizeof(*op));
    struct rft_batch *b = rft_batch_new();
    int rv = (s && op && b) ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        const char *dn = caller ? node__token_str(caller, "display_name") : "";
        rv = build_wrap(core, b, s, req->wrap_ttl_s, req->path, dn, acc, &op->w);
    }
    if (s != NULL) {
        cf_cleanse(s, strlen(s));
        cf_free(s);
    }
    cf_free(acc);
    if (rv != CF_OK) {
        rft_batch_free(b);
        cf_free(op);
        cb(req, node_response_error(500, "failed to wrap the response: %s", cf_strerror(rv)));
        return;
    }
    op->core = core;
    op->req = req;
    op->cb = cb;
    node__commit(core, b, wrap_committed_cb, op);
}

/* Validation ----------------------------------------------------------------------------- */

/* CF_OK when token names a live wrapping token; t then holds it. */
static int validate(struct node_core *core, const char *token, struct node_token *t)
{
    int rv = node__token_get(core, token, t);
    if (rv != CF_OK) {
        return rv;
    }
    json_t *pol = json_object_get(t->entry, "policies");
    if (!node__token_live(t, node__now_ns()) || json_array_size(pol) != 1 ||
        !node__token_has_policy(t, WRAP_POLICY)) {
        node__token_clear(t);
        return CF_ENOTFOUND;
    }
    return CF_OK;
}

/* sys/wrapping/lookup ---------------------------------------------------------------------- */

static void do_lookup(struct node_core *core, struct node_request *req, const char *token)
{
    struct node_token t;
    if (validate(core, token, &t) != CF_OK) {
        node_request_done(req, invalid());
        return;
    }
    char key[512];
    json_t *info = cubby_key(core, &t, "wrapinfo", key) == CF_OK ? get_json(core, key) : NULL;
    node__token_clear(&t);
    if (info == NULL) {
        node_request_done(req, invalid());
        return;
    }
    struct node_response *resp = node_response_data(info);
    if (resp != NULL) {
        resp->mount_type = "system";
    }
    node_request_done(req, resp);
}

/* sys/wrapping/unwrap and rewrap ----------------------------------------------------------- */

struct consume_op
{
    struct node_core *core;
    struct node_request *req;
    char *response; /* the stored envelope */
    bool rewrap;
    struct wrapped w;
};

static void consume_free(struct consume_op *op)
{
    if (op->response != NULL) {
        cf_cleanse(op->response, strlen(op->response));
        cf_free(op->response);
    }
    cf_free(op);
}

static void consumed_cb(void *arg, int status)
{
    struct consume_op *op = arg;
    struct node_request *req = op->req;
    struct node_response *resp;
    if (status == CF_ECONFLICT) {
        json_decref(op->w.wrap_info);
        resp = invalid(); /* another call consumed it first */
    } else if (status != CF_OK) {
        json_decref(op->w.wrap_info);
        resp = node_response_error(500, "%s", cf_strerror(status));
    } else if (op->rewrap) {
        node__expire_track(op->core->expire, op->w.hash, op->w.expire_ns);
        resp = node_response_new();
        if (resp != NULL) {
            resp->wrap_info = op->w.wrap_info;
        } else {
            json_decref(op->w.wrap_info);
        }
    } else {
        resp = node_response_new();
        if (resp != NULL) {
            resp->raw_content_type = cf_strdup("application/json");
            resp->raw_len = strlen(op->response);
            resp->raw_body = (uint8_t *)op->response;
            op->response = NULL;
            resp->status = 200;
            if (resp->raw_content_type == NULL) {
                node_response_free(resp);
                resp = NULL;
            }
        }
    }
    consume_free(op);
    node_request_done(req, resp);
}

static void do_consume(struct node_core *core,
                       struct node_request *req,
                       const char *token,
                       bool rewrap)
{
    struct node_token t;
    if (validate(core, token, &t) != CF_OK) {
        node_request_done(req, invalid());
        return;
    }
    char key[512];
    json_t *stored = cubby_key(core, &t, "response", key) == CF_OK ? get_json(core, key) : NULL;
    json_t *info = cubby_key(core, &t, "wrapinfo", key) == CF_OK ? get_json(core, key) : NULL;
    const char *env = json_string_value(json_object_get(stored, "response"));
    struct consume_op *op = cf_calloc(1, sizeof(*op));
    struct rft_batch *b = rft_batch_new();
    int rv = (op && b) ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK && (env == NULL || info == NULL)) {
        rv = CF_ENOTFOUND;
    }
    if (rv == CF_OK) {
        op->response = cf_strdup(env);
        rv = op->response ? CF_OK : CF_ENOMEM;
    }
    /* The condition that makes the token single-use: this batch applies only if the entry is
     * still there when raft applies it. */
    char idkey[sizeof(TOKEN_PREFIX_ID) + TOKEN_HASH_LEN];
    snprintf(idkey, sizeof(idkey), "%s%s", TOKEN_PREFIX_ID, t.hash);
    if (rv == CF_OK) {
        rv = rft_batch_delete_if_present(b, idkey);
    }
    if (rv == CF_OK) {
        rv = node__token_batch_revoke(core, b, t.hash, false);
    }
    if (rv == CF_OK && rewrap) {
        int64_t ttl = json_integer_value(json_object_get(info, "creation_ttl"));
        const char *path = json_string_value(json_object_get(info, "creation_path"));
        rv = build_wrap(core, b, env, ttl, path ? path : "", node__token_str(&t, "display_name"),
                        NULL, &op->w);
    }
    node__token_clear(&t);
    json_decref(stored);
    json_decref(info);
    if (rv != CF_OK) {
        rft_batch_free(b);
        if (op != NULL) {
            consume_free(op);
        }
        node_request_done(
            req, rv == CF_ENOTFOUND ? invalid() : node_response_error(500, "%s", cf_strerror(rv)));
        return;
    }
    op->core = core;
    op->req = req;
    op->rewrap = rewrap;
    node__commit(core, b, consumed_cb, op);
}

/* Dispatch ---------------------------------------------------------------------------------- */

static bool is_write(const struct node_request *req)
{
    return req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
}

/* The body token: NULL when absent; "" when present but empty or not a string. */
static const char *body_token(const struct node_request *req)
{
    json_t *t = json_object_get(req->data, "token");
    if (t == NULL) {
        return NULL;
    }
    return json_string_value(t) ? json_string_value(t) : "";
}

bool node__wrap_preauth_applies(const struct node_request *req)
{
    const char *p = req->path;
    bool lookup = strcmp(p, "sys/wrapping/lookup") == 0;
    bool unwrap = strcmp(p, "sys/wrapping/unwrap") == 0;
    bool rewrap = strcmp(p, "sys/wrapping/rewrap") == 0;
    if (!lookup && !unwrap && !rewrap) {
        return false;
    }
    const char *bt = body_token(req);
    /* With a token in the body, unwrap and rewrap are a third-party caller's requests:
     * authenticated as usual first. */
    return lookup || bt == NULL || bt[0] == '\0';
}

bool node__wrap_preauth(struct node_core *core, struct node_request *req)
{
    if (!node__wrap_preauth_applies(req)) {
        return false;
    }
    bool lookup = strcmp(req->path, "sys/wrapping/lookup") == 0;
    bool rewrap = strcmp(req->path, "sys/wrapping/rewrap") == 0;
    const char *bt = body_token(req);
    if (!is_write(req) && !(lookup && req->op == NODE_OP_READ)) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    if (bt != NULL && bt[0] == '\0') {
        node_request_done(req, node_response_error(400, "empty token in request body"));
        return true;
    }
    const char *tok = bt ? bt : req->token;
    if (tok == NULL || tok[0] == '\0') {
        if (lookup) {
            node_request_done(req, node_response_error(400, "missing \"token\" value in input"));
        } else {
            node_request_done(req, node_response_error(403, "permission denied"));
        }
        return true;
    }
    if (lookup) {
        do_lookup(core, req, tok);
    } else {
        do_consume(core, req, tok, rewrap);
    }
    return true;
}

bool node__wrap_api_handle(struct node_core *core, struct node_request *req)
{
    const char *p = req->path;
    if (strncmp(p, "sys/wrapping/", 13) != 0) {
        return false;
    }
    p += 13;
    if (strcmp(p, "wrap") == 0) {
        if (!is_write(req)) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        if (req->wrap_ttl_s <= 0) {
            node_request_done(
                req, node_response_error(400, "endpoint requires response wrapping to be used"));
            return true;
        }
        if (json_object_size(req->data) == 0) {
            node_request_done(req, node_response_error(400, "missing data to wrap"));
            return true;
        }
        struct node_response *resp = node_response_data(json_deep_copy(req->data));
        if (resp != NULL) {
            resp->inject_top_level = true;
            resp->mount_type = "system";
        }
        node_request_done(req, resp);
        return true;
    }
    bool unwrap = strcmp(p, "unwrap") == 0;
    bool rewrap = strcmp(p, "rewrap") == 0;
    if (!unwrap && !rewrap && strcmp(p, "lookup") != 0) {
        return false;
    }
    if (!is_write(req)) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    const char *bt = body_token(req);
    if (bt == NULL || bt[0] == '\0') {
        node_request_done(req, node_response_error(400, "missing \"token\" value in input"));
        return true;
    }
    if (unwrap || rewrap) {
        do_consume(core, req, bt, rewrap);
    } else {
        do_lookup(core, req, bt);
    }
    return true;
}
