/*
 * The policy endpoints (core.md section 4.1): sys/policies/acl, the legacy sys/policy, and
 * sys/capabilities, sys/capabilities-self, sys/capabilities-accessor.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "lib/json.h"
#include "lib/crypto.h"
#include "node/acl.h"
#include "node/internal.h"
#include "node/policy.h"
#include "node/policy_store.h"
#include "node/token.h"

static void done(struct node_request *req, struct node_response *resp)
{
    if (resp != NULL && resp->errors == NULL) {
        resp->mount_type = "system";
    }
    node_request_done(req, resp);
}

static bool is_write(const struct node_request *req)
{
    return req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
}

/* Lowercased copy of a policy name; NULL when empty, too long or not printable. */
static char *policy_name_of(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128) {
        return NULL;
    }
    char *out = cf_strdup(s);
    for (char *p = out; p != NULL && *p; p++) {
        if ((unsigned char)*p < 0x21 || *p == '/' || *p == 0x7f) {
            cf_free(out);
            return NULL;
        }
        *p = (char)tolower((unsigned char)*p);
    }
    return out;
}

struct list_ctx
{
    json_t *keys;
    size_t skip;
};

static int list_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct list_ctx *c = arg;
    (void)val;
    (void)len;
    json_array_append_new(c->keys, json_string(key + c->skip));
    return 0;
}

/* Names of every ACL policy: the stored ones, default and root. */
static json_t *policy_names(struct node_core *core)
{
    struct list_ctx c = {.keys = json_array(), .skip = strlen(POLICY_PREFIX)};
    if (c.keys == NULL) {
        return NULL;
    }
    rft_store_scan(core->store, POLICY_PREFIX, NULL, list_visit, &c);
    bool has_default = false;
    size_t i;
    json_t *v;
    json_array_foreach(c.keys, i, v)
    {
        if (strcmp(json_string_value(v), "default") == 0) {
            has_default = true;
        }
    }
    if (!has_default) {
        json_array_insert_new(c.keys, 0, json_string("default"));
    }
    json_array_append_new(c.keys, json_string("root"));
    return c.keys;
}

/* The stored text of a policy (default's built-in text when not stored); NULL if none. */
static char *policy_text(struct node_core *core, const char *name)
{
    char key[512];
    snprintf(key, sizeof(key), "%s%s", POLICY_PREFIX, name);
    uint8_t *val = NULL;
    size_t len = 0;
    if (node__get(core, key, &val, &len) != CF_OK) {
        return strcmp(name, "default") == 0 ? cf_strdup(policy_default_text()) : NULL;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    const char *t = json_string_value(json_object_get(j, "policy"));
    char *out = t ? cf_strdup(t) : NULL;
    json_decref(j);
    return out;
}

static void write_done_cb(void *arg, int status)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        done(req, node_response_error(500, "failed to store policy: %s", cf_strerror(status)));
        return;
    }
    done(req, node_response_new());
}

static void put_policy(struct node_core *core,
                       struct node_request *req,
                       const char *name_in,
                       bool legacy)
{
    char *name = policy_name_of(name_in);
    if (name == NULL) {
        done(req, node_response_error(400, "invalid policy name"));
        return;
    }
    if (strcmp(name, "root") == 0 || strcmp(name, "response-wrapping") == 0) {
        done(req, node_response_error(400, "cannot update \"%s\" policy", name));
        cf_free(name);
        return;
    }
    const json_t *pv = json_object_get(req->data, "policy");
    if (pv == NULL && legacy) {
        pv = json_object_get(req->data, "rules");
    }
    const char *text = json_string_value(pv);
    if (text == NULL || text[0] == '\0') {
        done(req, node_response_error(400, "'policy' parameter not supplied or empty"));
        cf_free(name);
        return;
    }
    char errmsg[CF_ERRMSG_SIZE];
    struct policy *p = NULL;
    if (policy_parse(name, text, strlen(text), &p, errmsg) != CF_OK) {
        done(req, node_response_error(400, "failed to parse policy: %s", errmsg));
        cf_free(name);
        return;
    }
    policy_free(p);
    json_t *j = json_pack("{s:s,s:s}", "name", name, "policy", text);
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    json_decref(j);
    char key[512];
    snprintf(key, sizeof(key), "%s%s", POLICY_PREFIX, name);
    cf_free(name);
    struct rft_batch *b = rft_batch_new();
    int rv = (s && b) ? node__batch_put(core, b, key, (const uint8_t *)s, strlen(s)) : CF_ENOMEM;
    cf_free(s);
    if (rv != CF_OK) {
        rft_batch_free(b);
        done(req, node_response_error(rv == CF_EINVAL ? 400 : 500, "failed to store policy: %s",
                                      cf_strerror(rv)));
        return;
    }
    node__commit(core, b, write_done_cb, req);
}

static void delete_policy(struct node_core *core, struct node_request *req, const char *name_in)
{
    char *name = policy_name_of(name_in);
    if (name == NULL) {
        done(req, node_response_error(400, "invalid policy name"));
        return;
    }
    if (strcmp(name, "default") == 0) {
        done(req, node_response_error(400, "cannot delete default policy"));
        cf_free(name);
        return;
    }
    if (strcmp(name, "root") == 0 || strcmp(name, "response-wrapping") == 0) {
        done(req, node_response_error(400, "cannot delete \"%s\" policy", name));
        cf_free(name);
        return;
    }
    char key[512];
    snprintf(key, sizeof(key), "%s%s", POLICY_PREFIX, name);
    cf_free(name);
    struct rft_batch *b = rft_batch_new();
    int rv = b ? rft_batch_delete(b, key) : CF_ENOMEM;
    if (rv != CF_OK) {
        rft_batch_free(b);
        done(req, node_response_error(500, "%s", cf_strerror(rv)));
        return;
    }
    node__commit(core, b, write_done_cb, req);
}

static void read_policy(struct node_core *core,
                        struct node_request *req,
                        const char *name_in,
                        bool legacy)
{
    char *name = policy_name_of(name_in);
    char *text = name ? policy_text(core, name) : NULL;
    if (text == NULL) {
        cf_free(name);
        done(req, node_response_not_found());
        return;
    }
    json_t *d = json_pack("{s:s,s:s}", "name", name, legacy ? "rules" : "policy", text);
    cf_free(name);
    cf_free(text);
    done(req, legacy ? node_response_injected(d) : node_response_data(d));
}

/* Capabilities ------------------------------------------------------------------------------ */

/* The paths of a capabilities request: "paths" (list or comma string) or "path". */
static json_t *cap_paths(const json_t *data)
{
    json_t *out = json_array();
    const json_t *v = json_object_get(data, "paths");
    if (v == NULL) {
        v = json_object_get(data, "path");
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (out != NULL && *s) {
            const char *c = strchr(s, ',');
            size_t n = c ? (size_t)(c - s) : strlen(s);
            if (n > 0) {
                json_array_append_new(out, json_stringn(s, n));
            }
            s = c ? c + 1 : s + n;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *p;
        json_array_foreach(v, i, p)
        {
            if (json_is_string(p)) {
                json_array_append(out, p);
            }
        }
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static void capabilities(struct node_request *req, const struct acl *acl)
{
    json_t *paths = cap_paths(req->data);
    if (paths == NULL) {
        done(req, node_response_error(400, "missing path"));
        return;
    }
    json_t *d = json_object();
    json_t *all = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(paths, i, p)
    {
        const char *path = json_string_value(p);
        while (*path == '/') {
            path++;
        }
        json_t *caps = acl ? acl_capabilities(acl, path) : json_pack("[s]", "deny");
        size_t k;
        json_t *c;
        json_array_foreach(caps, k, c)
        {
            bool seen = false;
            size_t m;
            json_t *e;
            json_array_foreach(all, m, e)
            {
                seen = seen || json_equal(e, c);
            }
            if (!seen) {
                json_array_append(all, c);
            }
        }
        json_object_set_new(d, json_string_value(p), caps);
    }
    /* Vault keeps "capabilities" for a single path (for old clients). */
    if (json_array_size(paths) == 1) {
        json_object_set_new(d, "capabilities", all);
    } else {
        json_decref(all);
    }
    json_decref(paths);
    done(req, node_response_injected(d));
}

/* Capabilities of another token, named by token or accessor. */
static void capabilities_of(struct node_core *core, struct node_request *req, bool by_accessor)
{
    const char *v =
        json_string_value(json_object_get(req->data, by_accessor ? "accessor" : "token"));
    struct node_token t;
    int rv = CF_ENOTFOUND;
    if (v != NULL && v[0] != '\0') {
        rv = by_accessor ? node__token_get_accessor(core, v, &t) : node__token_get(core, v, &t);
    }
    if (rv != CF_OK || !node__token_live(&t, node__now_ns())) {
        if (rv == CF_OK) {
            node__token_clear(&t);
        }
        done(req, node_response_error(400, by_accessor ? "invalid accessor" : "invalid token"));
        return;
    }
    const struct acl *acl = node__acl_for(core, json_object_get(t.entry, "policies"));
    node__token_clear(&t);
    capabilities(req, acl);
}

bool node__policy_api_handle(struct node_core *core,
                             struct node_request *req,
                             const struct acl *caller_acl)
{
    const char *p = req->path;
    bool legacy = false;
    if (strncmp(p, "sys/policies/acl", 16) == 0 && (p[16] == '\0' || p[16] == '/')) {
        p += 16;
    } else if (strncmp(p, "sys/policy", 10) == 0 && (p[10] == '\0' || p[10] == '/')) {
        p += 10;
        legacy = true;
    } else if (strcmp(p, "sys/capabilities") == 0) {
        is_write(req) ? capabilities_of(core, req, false)
                      : done(req, node_response_error(405, "unsupported operation"));
        return true;
    } else if (strcmp(p, "sys/capabilities-accessor") == 0) {
        is_write(req) ? capabilities_of(core, req, true)
                      : done(req, node_response_error(405, "unsupported operation"));
        return true;
    } else if (strcmp(p, "sys/capabilities-self") == 0) {
        is_write(req) ? capabilities(req, caller_acl)
                      : done(req, node_response_error(405, "unsupported operation"));
        return true;
    } else {
        return false;
    }
    if (*p == '/') {
        p++;
    }
    if (*p == '\0') {
        /* The collection: LIST (and for the legacy path, GET). */
        if (req->op == NODE_OP_LIST || (legacy && req->op == NODE_OP_READ)) {
            json_t *names = policy_names(core);
            if (legacy) {
                done(req, node_response_injected(
                              json_pack("{s:O,s:o}", "keys", names, "policies", names)));
            } else {
                done(req, node_response_data(json_pack("{s:o}", "keys", names)));
            }
        } else {
            done(req, node_response_error(405, "unsupported operation"));
        }
        return true;
    }
    switch (req->op) {
        case NODE_OP_READ:
            read_policy(core, req, p, legacy);
            return true;
        case NODE_OP_CREATE:
        case NODE_OP_UPDATE:
            put_policy(core, req, p, legacy);
            return true;
        case NODE_OP_DELETE:
            delete_policy(core, req, p);
            return true;
        case NODE_OP_LIST:
        case NODE_OP_PATCH:
            break;
    }
    done(req, node_response_error(405, "unsupported operation"));
    return true;
}
