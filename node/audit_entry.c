/*
 * The raw audit entries of requests and responses (audit_core.h). Secrets in them are plain
 * here; each device hashes its own copy (node/audit.c) before anything reaches a file.
 */
#include <string.h>

#include "node/audit_core.h"
#include "node/internal.h"
#include "node/token.h"

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v != NULL && v[0] != '\0') {
        json_object_set_new(o, k, json_string(v));
    }
}

static json_t *auth_of(const struct node_token *t, const json_t *granting, bool allowed)
{
    json_t *a = json_object();
    if (a == NULL) {
        return NULL;
    }
    char issue[64];
    node__rfc3339(node__token_int(t, "creation_ns"), issue);
    json_t *pol = json_object_get(t->entry, "policies");
    json_t *meta = json_object_get(t->entry, "meta");
    set_str(a, "accessor", node__token_str(t, "accessor"));
    set_str(a, "display_name", node__token_str(t, "display_name"));
    json_object_set(a, "policies", pol);
    json_object_set(a, "token_policies", pol);
    if (json_is_object(meta)) {
        json_object_set(a, "metadata", meta);
    }
    json_object_set_new(a, "token_type", json_string("service"));
    json_object_set_new(a, "token_ttl", json_integer(node__token_int(t, "creation_ttl")));
    json_object_set_new(a, "token_issue_time", json_string(issue));
    int64_t uses = node__token_int(t, "num_uses");
    if (uses != 0) {
        json_object_set_new(a, "remaining_uses", json_integer(uses < 0 ? 0 : uses));
    }
    json_t *pr = json_pack("{s:b}", "allowed", allowed);
    if (pr != NULL && granting != NULL) {
        json_object_set(pr, "granting_policies", (json_t *)granting);
    }
    json_object_set_new(a, "policy_results", pr);
    return a;
}

json_t *node__audit_entry(struct node_core *core,
                          const struct node_request *req,
                          const struct node_token *tok,
                          const json_t *granting,
                          const struct node_response *resp,
                          const char *error)
{
    const char *mpath = "";
    const char *mtype = "";
    const char *macc = "";
    if (strncmp(req->path, "auth/token/", 11) == 0) {
        mpath = "auth/token/";
        mtype = "token";
    } else {
        struct node_mount *m = node__mount_match(core, req->path);
        if (m != NULL) {
            mpath = m->path;
            mtype = m->type;
            macc = m->accessor;
        }
    }
    json_t *e = json_object();
    json_t *r = json_object();
    if (e == NULL || r == NULL) {
        json_decref(e);
        json_decref(r);
        return NULL;
    }
    json_object_set_new(e, "type", json_string(resp ? "response" : "request"));
    if (tok != NULL && tok->entry != NULL) {
        bool allowed = error == NULL || strcmp(error, "permission denied") != 0;
        json_object_set_new(e, "auth", auth_of(tok, granting, allowed));
    }
    json_object_set_new(r, "id", json_string(req->request_id));
    json_object_set_new(r, "operation", json_string(node_op_name(req->op)));
    set_str(r, "mount_point", mpath);
    set_str(r, "mount_type", mtype);
    set_str(r, "mount_accessor", macc);
    set_str(r, "client_token", req->token);
    if (tok != NULL && tok->entry != NULL) {
        set_str(r, "client_token_accessor", node__token_str(tok, "accessor"));
    }
    json_object_set_new(r, "namespace", json_pack("{s:s}", "id", "root"));
    json_object_set_new(r, "path", json_string(req->path));
    if (json_object_size(req->data) > 0) {
        json_object_set(r, "data", req->data);
    }
    set_str(r, "remote_address", req->remote_addr);
    if (req->wrap_ttl_s > 0) {
        json_object_set_new(r, "wrap_ttl", json_integer(req->wrap_ttl_s));
    }
    json_object_set_new(e, "request", r);
    if (resp != NULL) {
        json_t *o = json_object();
        if (o != NULL) {
            set_str(o, "mount_point", mpath);
            set_str(o, "mount_type", mtype);
            set_str(o, "mount_accessor", macc);
            if (resp->auth != NULL) {
                json_object_set(o, "auth", resp->auth);
            }
            if (resp->data != NULL) {
                json_object_set(o, "data", resp->data);
            }
            if (resp->warnings != NULL) {
                json_object_set(o, "warnings", resp->warnings);
            }
            if (resp->wrap_info != NULL) {
                json_object_set(o, "wrap_info", resp->wrap_info);
            }
            if (resp->lease_id != NULL && resp->lease_id[0] != '\0') {
                json_object_set_new(o, "secret", json_pack("{s:s}", "lease_id", resp->lease_id));
            }
            json_object_set_new(e, "response", o);
        }
    }
    if (error != NULL && error[0] != '\0') {
        json_object_set_new(e, "error", json_string(error));
    }
    return e;
}
