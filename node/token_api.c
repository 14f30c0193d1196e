/*
 * The auth/token/ endpoints (core.md section 3): create, create-orphan, lookup, lookup-self,
 * lookup-accessor, renew, renew-self, renew-accessor, revoke, revoke-self, revoke-accessor,
 * revoke-orphan, accessors. Errors and TTL rules as Vault's token store has them.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "lib/json.h"
#include "lib/duration.h"
#include "node/expire.h"
#include "node/barrier.h"
#include "node/internal.h"
#include "node/policy_store.h"
#include "node/token.h"

#define CF_LOG_MODULE "token"
#include "lib/log.h"

int node__ttl_field(const json_t *data, const char *name, int64_t *out_s)
{
    const json_t *v = json_object_get(data, name);
    if (v == NULL || json_is_null(v)) {
        return CF_ENOTFOUND;
    }
    if (json_is_integer(v)) {
        *out_s = json_integer_value(v);
        return *out_s >= 0 ? CF_OK : CF_EINVAL;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (s[0] == '\0') {
            *out_s = 0;
            return CF_OK;
        }
        return cf_duration_parse_s(s, out_s) == CF_OK && *out_s >= 0 ? CF_OK : CF_EINVAL;
    }
    return CF_EINVAL;
}

static void done(struct node_request *req, struct node_response *resp)
{
    if (resp != NULL && resp->mount_type == NULL) {
        resp->mount_type = "token";
    }
    node_request_done(req, resp);
}

static struct node_response *auth_response(const struct node_token *t,
                                           const char *client_token,
                                           json_t *warnings)
{
    int64_t now = node__now_ns();
    struct node_response *resp = node_response_new();
    if (resp == NULL) {
        json_decref(warnings);
        return NULL;
    }
    resp->auth = node__token_auth_json(t, client_token, now);
    resp->warnings = warnings;
    if (resp->auth == NULL) {
        node_response_free(resp);
        return NULL;
    }
    return resp;
}

/* Policies ----------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Vault's sanitizing: trimmed, lowercased, sorted, deduplicated, "default" added unless asked
 * not to; "root" alone when present. A new array, or NULL on a bad element. */
static json_t *sanitize_policies(const json_t *in, bool add_default)
{
    const char *names[256];
    char *owned[256];
    size_t n = 0;
    bool root = false;
    json_t *out = json_array();
    if (out == NULL) {
        return NULL;
    }
    size_t i;
    const json_t *p;
    json_array_foreach(in, i, p)
    {
        const char *s = json_string_value(p);
        if (s == NULL || n >= 255) {
            goto fail;
        }
        while (isspace((unsigned char)*s)) {
            s++;
        }
        size_t len = strlen(s);
        while (len > 0 && isspace((unsigned char)s[len - 1])) {
            len--;
        }
        if (len == 0) {
            continue;
        }
        char *c = cf_strndup(s, len);
        if (c == NULL) {
            goto fail;
        }
        for (char *q = c; *q; q++) {
            *q = (char)tolower((unsigned char)*q);
        }
        if (strcmp(c, "root") == 0) {
            root = true;
        }
        owned[n] = c;
        names[n++] = c;
    }
    if (root) {
        json_array_append_new(out, json_string("root"));
        goto cleanup;
    }
    if (add_default) {
        names[n] = "default";
        owned[n++] = NULL;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && strcmp(names[k], names[k - 1]) == 0) {
            continue;
        }
        json_array_append_new(out, json_string(names[k]));
    }
cleanup:
    for (size_t k = 0; k < n; k++) {
        cf_free(owned[k]);
    }
    return out;
fail:
    for (size_t k = 0; k < n; k++) {
        cf_free(owned[k]);
    }
    json_decref(out);
    return NULL;
}

/* Policies from a field that is a list of strings or a comma-separated string. */
static json_t *policies_field(const json_t *v)
{
    if (json_is_array(v)) {
        return json_incref((json_t *)v);
    }
    json_t *arr = json_array();
    const char *s = json_string_value(v);
    while (arr != NULL && s != NULL && *s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        json_array_append_new(arr, json_stringn(s, n));
        s = c ? c + 1 : s + n;
    }
    return arr;
}

static bool has(const json_t *arr, const char *name)
{
    size_t i;
    const json_t *p;
    json_array_foreach(arr, i, p)
    {
        if (json_string_value(p) && strcmp(json_string_value(p), name) == 0) {
            return true;
        }
    }
    return false;
}

/* create / create-orphan ------------------------------------------------------------------ */

struct create_op
{
    struct node_core *core;
    struct node_request *req;
    char token[TOKEN_MAX_LEN + 1];
    char hash[TOKEN_HASH_LEN + 1];
    json_t *entry;
    json_t *warnings;
};

static void create_done_cb(void *arg, int status)
{
    struct create_op *op = arg;
    struct node_response *resp;
    if (status == CF_OK) {
        struct node_token t = {.entry = op->entry};
        node__expire_track(op->core->expire, op->hash, node__token_int(&t, "expire_ns"));
        resp = auth_response(&t, op->token, op->warnings);
        op->warnings = NULL;
    } else {
        resp = node_response_error(500, "failed to create token: %s", cf_strerror(status));
    }
    json_decref(op->entry);
    json_decref(op->warnings);
    cf_cleanse(op->token, sizeof(op->token));
    struct node_request *req = op->req;
    cf_free(op);
    done(req, resp);
}

static bool valid_custom_id(const char *id)
{
    return strncmp(id, "hvs.", 4) != 0 && strncmp(id, "s.", 2) != 0 &&
           strncmp(id, "hvb.", 4) != 0 && strncmp(id, "b.", 2) != 0 && strchr(id, '.') == NULL &&
           strlen(id) <= TOKEN_MAX_LEN;
}

static void handle_create(struct node_core *core,
                          struct node_request *req,
                          const struct node_token *caller,
                          bool sudo,
                          bool orphan_path)
{
    /* Clients send unset fields as null (hvac does): the same as absent. */
    const char *nk;
    json_t *nv;
    void *tmp;
    json_object_foreach_safe(req->data, tmp, nk, nv)
    {
        if (json_is_null(nv)) {
            json_object_del(req->data, nk);
        }
    }
    const json_t *d = req->data;
    bool caller_root = node__token_has_policy(caller, "root");
    bool priv = caller_root || sudo;
    char msg[256];
#define BAD(...)                                 \
    do {                                         \
        snprintf(msg, sizeof(msg), __VA_ARGS__); \
        goto bad;                                \
    } while (0)
    json_t *pol = NULL;
    json_t *meta = NULL;
    struct create_op *op = NULL;

    const char *type = json_string_value(json_object_get(d, "type"));
    if (type != NULL && strcmp(type, "service") != 0 && strcmp(type, "default") != 0 &&
        type[0] != '\0') {
        if (strcmp(type, "batch") == 0) {
            BAD("batch tokens are not supported by this server");
        }
        BAD("unsupported token type \"%s\"", type);
    }
    if (node__token_int(caller, "num_uses") != 0) {
        BAD("a token with a limited use count cannot create child tokens");
    }
    const json_t *idv = json_object_get(d, "id");
    const char *id = json_string_value(idv);
    if (idv != NULL && id == NULL) {
        BAD("invalid value for \"id\": must be a string");
    }
    if (id != NULL && id[0] != '\0') {
        if (!priv) {
            BAD("root or sudo privileges required to specify token id");
        }
        if (!valid_custom_id(id)) {
            BAD("custom token ID cannot have a \"hvs.\", \"s.\", \"hvb.\" or \"b.\" prefix, "
                "contain a period or exceed %d characters",
                TOKEN_MAX_LEN);
        }
    }
    bool no_parent = json_is_true(json_object_get(d, "no_parent"));
    if (no_parent && !priv && !orphan_path) {
        BAD("root or sudo privileges required to create orphan token");
    }
    bool orphan = orphan_path || no_parent;
    bool no_default = json_is_true(json_object_get(d, "no_default_policy"));
    const json_t *rv_renew = json_object_get(d, "renewable");
    if (rv_renew != NULL && !json_is_boolean(rv_renew)) {
        BAD("invalid value for \"renewable\": must be a boolean");
    }
    bool renewable = rv_renew == NULL || json_is_true(rv_renew);
    int64_t num_uses = 0;
    const json_t *nu = json_object_get(d, "num_uses");
    if (nu != NULL) {
        if (!json_is_integer(nu)) {
            BAD("invalid value for \"num_uses\": must be an integer");
        }
        num_uses = json_integer_value(nu);
        if (num_uses < 0) {
            BAD("number of uses cannot be negative");
        }
    }
    int64_t ttl = 0;
    int64_t max_ttl = 0;
    int64_t period = 0;
    int frv = node__ttl_field(d, "ttl", &ttl);
    if (frv == CF_ENOTFOUND) {
        frv = node__ttl_field(d, "lease", &ttl);
    }
    if (frv == CF_EINVAL) {
        BAD("error parsing ttl: invalid duration");
    }
    if (node__ttl_field(d, "explicit_max_ttl", &max_ttl) == CF_EINVAL) {
        BAD("error parsing explicit_max_ttl: invalid duration");
    }
    if (node__ttl_field(d, "period", &period) == CF_EINVAL) {
        BAD("error parsing period: invalid duration");
    }
    if (period > 0 && !priv) {
        BAD("root or sudo privileges required to create periodic token");
    }
    const json_t *mv = json_object_get(d, "meta");
    if (mv != NULL && !json_is_null(mv)) {
        if (!json_is_object(mv)) {
            BAD("invalid value for \"meta\": must be a map of strings");
        }
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)mv, k, v)
        {
            if (!json_is_string(v)) {
                BAD("invalid value for \"meta\": must be a map of strings");
            }
        }
        meta = json_deep_copy(mv);
    }
    const json_t *pv = json_object_get(d, "policies");
    if (pv != NULL && !json_is_array(pv) && !json_is_string(pv)) {
        BAD("invalid value for \"policies\": must be a list of strings");
    }
    json_t *raw = pv ? policies_field(pv) : NULL;
    if (raw == NULL) {
        /* Vault: a child without policies inherits its parent's. */
        raw = json_deep_copy(json_object_get(caller->entry, "policies"));
        if (raw != NULL && has(raw, "default") && no_default) {
            size_t i;
            json_t *p;
            json_array_foreach(raw, i, p)
            {
                if (strcmp(json_string_value(p), "default") == 0) {
                    json_array_remove(raw, i);
                    break;
                }
            }
        }
    }
    pol = sanitize_policies(raw, !no_default && !has(raw, "root"));
    json_decref(raw);
    if (pol == NULL) {
        BAD("invalid value for \"policies\": must be a list of strings");
    }
    if (has(pol, "root") && !caller_root) {
        BAD("root tokens may not be created without parent token being root");
    }
    if (!priv) {
        size_t i;
        json_t *p;
        json_array_foreach(pol, i, p)
        {
            const char *name = json_string_value(p);
            if (strcmp(name, "default") != 0 &&
                !has(json_object_get(caller->entry, "policies"), name)) {
                BAD("child policies must be subset of parent");
            }
        }
    }
    /* TTL rules (core.md 3.2). */
    int64_t sys_max = req->mount_max_lease_s > 0 ? req->mount_max_lease_s : TOKEN_SYSTEM_TTL_S;
    int64_t sys_def =
        req->mount_default_lease_s > 0 ? req->mount_default_lease_s : TOKEN_SYSTEM_TTL_S;
    json_t *warnings = NULL;
    if (period > 0) {
        ttl = period;
    } else if (ttl == 0 && !has(pol, "root")) {
        ttl = sys_def;
    }
    if (max_ttl > 0 && (ttl == 0 || ttl > max_ttl)) {
        ttl = max_ttl;
    }
    if (period == 0 && ttl > sys_max) {
        ttl = sys_max;
        warnings = json_pack("[s]", "TTL of the token was capped to the maximum lease TTL");
    }
    const char *dn_in = json_string_value(json_object_get(d, "display_name"));
    char dn[128];
    if (dn_in != NULL && dn_in[0] != '\0') {
        snprintf(dn, sizeof(dn), "token-%s", dn_in);
        for (char *q = dn; *q; q++) {
            if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_') {
                *q = '-';
            }
        }
    } else {
        snprintf(dn, sizeof(dn), "token");
    }

    op = cf_calloc(1, sizeof(*op));
    struct rft_batch *b = rft_batch_new();
    int rv = (op && b) ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        if (id != NULL && id[0] != '\0') {
            snprintf(op->token, sizeof(op->token), "%s", id);
            struct node_token existing;
            if (node__token_get(core, id, &existing) == CF_OK) {
                node__token_clear(&existing);
                rft_batch_free(b);
                json_decref(warnings);
                BAD("token with the given ID already exists");
            }
        } else {
            rv = node__token_generate(op->token);
        }
    }
    struct node_token_params p = {
        .policies = pol,
        .parent_hash = orphan ? NULL : caller->hash,
        .path = req->path,
        .display_name = dn,
        .meta = meta,
        .num_uses = num_uses,
        .ttl_s = ttl,
        .explicit_max_ttl_s = max_ttl,
        .period_s = period,
        .renewable = renewable && !(has(pol, "root") && ttl == 0),
    };
    if (rv == CF_OK) {
        rv = node__token_batch_create(core, NULL, b, op->token, &p, &op->entry, op->hash);
    }
    /* Vault warns about policies that do not exist (yet); the token gets them anyway. */
    size_t pi;
    json_t *pn;
    json_array_foreach(pol, pi, pn)
    {
        const char *name = json_string_value(pn);
        if (rv == CF_OK && !node__policy_exists(core, name)) {
            if (warnings == NULL) {
                warnings = json_array();
            }
            char w[300];
            snprintf(w, sizeof(w), "Policy \"%s\" does not exist", name);
            json_array_append_new(warnings, json_string(w));
        }
    }
    json_decref(pol);
    json_decref(meta);
    if (rv != CF_OK) {
        rft_batch_free(b);
        json_decref(warnings);
        if (op != NULL) {
            cf_cleanse(op->token, sizeof(op->token));
            cf_free(op);
        }
        done(req, node_response_error(500, "failed to create token: %s", cf_strerror(rv)));
        return;
    }
    op->core = core;
    op->req = req;
    op->warnings = warnings;
    node__commit(core, b, create_done_cb, op);
    return;
bad:
    json_decref(pol);
    json_decref(meta);
    if (op != NULL) {
        cf_cleanse(op->token, sizeof(op->token));
        cf_free(op);
    }
    done(req, node_response_error(400, "%s", msg));
#undef BAD
}

/* lookup ----------------------------------------------------------------------------------- */

static void respond_lookup(struct node_request *req, const struct node_token *t, const char *id)
{
    struct node_response *resp = node_response_data(node__token_lookup_json(t, id, node__now_ns()));
    done(req, resp);
}

/* Finds the token named by the body field "token" or "accessor"; 400/403 answered here. */
static bool find_target(struct node_core *core,
                        struct node_request *req,
                        bool by_accessor,
                        const char *unknown_msg,
                        int unknown_status,
                        struct node_token *t)
{
    const char *field = by_accessor ? "accessor" : "token";
    const char *v = json_string_value(json_object_get(req->data, field));
    if (v == NULL || v[0] == '\0') {
        done(req, node_response_error(400, by_accessor ? "missing accessor" : "missing token ID"));
        return false;
    }
    int rv = by_accessor ? node__token_get_accessor(core, v, t) : node__token_get(core, v, t);
    if (rv != CF_OK || !node__token_live(t, node__now_ns())) {
        node__token_clear(t);
        done(req, node_response_error(unknown_status, "%s", unknown_msg));
        return false;
    }
    return true;
}

/* renew ------------------------------------------------------------------------------------- */

struct renew_op
{
    struct node_core *core;
    struct node_request *req;
    struct node_token t;
    char *client_token;
    json_t *warnings;
};

static void renew_done_cb(void *arg, int status)
{
    struct renew_op *op = arg;
    struct node_response *resp;
    if (status == CF_OK) {
        node__expire_track(op->core->expire, op->t.hash, node__token_int(&op->t, "expire_ns"));
        resp = auth_response(&op->t, op->client_token, op->warnings);
        op->warnings = NULL;
    } else if (status == CF_ECONFLICT) {
        resp = node_response_error(400, "token not found");
    } else {
        resp = node_response_error(500, "failed to renew token: %s", cf_strerror(status));
    }
    struct node_request *req = op->req;
    node__token_clear(&op->t);
    json_decref(op->warnings);
    if (op->client_token != NULL) {
        cf_cleanse(op->client_token, strlen(op->client_token));
        cf_free(op->client_token);
    }
    cf_free(op);
    done(req, resp);
}

/* Renews t (owned by this call) and answers with its auth block. */
static void renew(struct node_core *core,
                  struct node_request *req,
                  struct node_token *t,
                  const char *client_token)
{
    int64_t inc = 0;
    if (node__ttl_field(req->data, "increment", &inc) == CF_EINVAL) {
        node__token_clear(t);
        done(req, node_response_error(400, "error parsing increment: invalid duration"));
        return;
    }
    if (!node__token_bool(t, "renewable") || node__token_int(t, "expire_ns") == 0) {
        node__token_clear(t);
        done(req, node_response_error(400, "lease is not renewable"));
        return;
    }
    int64_t now = node__now_ns();
    int64_t period = node__token_int(t, "period");
    int64_t ttl = period > 0 ? period : inc > 0 ? inc : node__token_int(t, "creation_ttl");
    int64_t expire = now + ttl * 1000000000;
    int64_t created = node__token_int(t, "creation_ns");
    int64_t max_ttl = node__token_int(t, "explicit_max_ttl");
    json_t *warnings = NULL;
    int64_t limit = 0;
    if (max_ttl > 0) {
        limit = created + max_ttl * 1000000000;
    }
    if (period == 0) {
        int64_t sys_limit = created + (int64_t)TOKEN_SYSTEM_TTL_S * 1000000000;
        if (limit == 0 || sys_limit < limit) {
            limit = sys_limit;
        }
    }
    if (limit != 0 && expire > limit) {
        expire = limit;
        warnings = json_pack("[s]", "TTL of the token was capped to its maximum TTL");
    }
    if (expire <= now) {
        node__token_clear(t);
        json_decref(warnings);
        done(req, node_response_error(400, "past the max TTL, cannot renew"));
        return;
    }
    if (node__token_entry_own(t) != CF_OK) {
        node__token_clear(t);
        json_decref(warnings);
        done(req, node_response_error(500, "out of memory"));
        return;
    }
    json_object_set_new(t->entry, "expire_ns", json_integer(expire));
    json_object_set_new(t->entry, "last_renewal_ns", json_integer(now));
    struct renew_op *op = cf_calloc(1, sizeof(*op));
    struct rft_batch *b = rft_batch_new();
    char *s = cf_json_dumps(t->entry, NULL);
    char key[256];
    int rv = (op && b && s) ? CF_OK : CF_ENOMEM;
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ID, t->hash);
    if (rv == CF_OK) {
        rv = barrier_encrypt(core->barrier, key, (const uint8_t *)s, strlen(s), &ct, &ctlen);
    }
    if (rv == CF_OK) {
        /* Conditional: a revocation or a use racing with this renewal wins. */
        rv = rft_batch_put_if_version(b, key, ct, ctlen, t->version);
    }
    cf_free(ct);
    cf_free(s);
    char idx[64];
    snprintf(idx, sizeof(idx), "{\"expire_ns\":%lld}", (long long)expire);
    snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_EXPIRE, t->hash);
    if (rv == CF_OK) {
        rv = node__batch_put(core, b, key, (const uint8_t *)idx, strlen(idx));
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        cf_free(op);
        node__token_clear(t);
        json_decref(warnings);
        done(req, node_response_error(500, "failed to renew token: %s", cf_strerror(rv)));
        return;
    }
    op->core = core;
    op->req = req;
    op->t = *t;
    op->client_token = cf_strdup(client_token);
    op->warnings = warnings;
    node__commit(core, b, renew_done_cb, op);
}

/* revoke ------------------------------------------------------------------------------------ */

static void revoke_done_cb(void *arg, int status)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        done(req, node_response_error(500, "failed to revoke token: %s", cf_strerror(status)));
        return;
    }
    done(req, node_response_new());
}

static void revoke_named(struct node_core *core,
                         struct node_request *req,
                         bool by_accessor,
                         bool orphan_children)
{
    const char *field = by_accessor ? "accessor" : "token";
    const char *v = json_string_value(json_object_get(req->data, field));
    if (v == NULL || v[0] == '\0') {
        done(req, node_response_error(400, by_accessor ? "missing accessor" : "missing token ID"));
        return;
    }
    struct node_token t;
    int rv = by_accessor ? node__token_get_accessor(core, v, &t) : node__token_get(core, v, &t);
    if (rv == CF_ENOTFOUND) {
        if (by_accessor) {
            done(req, node_response_error(400, "invalid accessor"));
        } else {
            done(req, node_response_new()); /* Vault: revoking an unknown token is a no-op */
        }
        return;
    }
    if (rv != CF_OK) {
        done(req, node_response_error(500, "%s", cf_strerror(rv)));
        return;
    }
    char hash[TOKEN_HASH_LEN + 1];
    memcpy(hash, t.hash, sizeof(hash));
    node__token_clear(&t);
    node__token_revoke(core, hash, orphan_children, revoke_done_cb, req);
}

/* accessors --------------------------------------------------------------------------------- */

struct acc_scan
{
    json_t *keys;
    size_t skip;
};

static int acc_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct acc_scan *a = arg;
    (void)val;
    (void)len;
    json_array_append_new(a->keys, json_string(key + a->skip));
    return 0;
}

/* Dispatch ---------------------------------------------------------------------------------- */

static bool is_write(const struct node_request *req)
{
    return req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
}

bool node__token_api_handle(struct node_core *core,
                            struct node_request *req,
                            const struct node_token *caller,
                            bool sudo)
{
    if (strncmp(req->path, "auth/token/", 11) != 0) {
        return false;
    }
    const char *p = req->path + 11;
    bool w = is_write(req);
    bool r = req->op == NODE_OP_READ;
    struct node_token t;
    if ((strcmp(p, "create") == 0 || strcmp(p, "create-orphan") == 0) && w) {
        handle_create(core, req, caller, sudo, p[6] == '-');
    } else if (strcmp(p, "lookup-self") == 0 && (r || w)) {
        respond_lookup(req, caller, req->token ? req->token : "");
    } else if (strcmp(p, "lookup") == 0 && (r || w)) {
        if (r && json_object_get(req->data, "token") == NULL) {
            respond_lookup(req, caller, req->token ? req->token : "");
        } else if (find_target(core, req, false, "bad token", 403, &t)) {
            respond_lookup(req, &t, json_string_value(json_object_get(req->data, "token")));
            node__token_clear(&t);
        }
    } else if (strcmp(p, "lookup-accessor") == 0 && w) {
        if (find_target(core, req, true, "invalid accessor", 400, &t)) {
            respond_lookup(req, &t, "");
            node__token_clear(&t);
        }
    } else if (strcmp(p, "renew-self") == 0 && w) {
        struct node_token self;
        if (node__token_get_hash(core, caller->hash, &self) != CF_OK) {
            done(req, node_response_error(400, "token not found"));
        } else {
            renew(core, req, &self, req->token ? req->token : "");
        }
    } else if (strcmp(p, "renew") == 0 && w) {
        if (find_target(core, req, false, "token not found", 400, &t)) {
            renew(core, req, &t, json_string_value(json_object_get(req->data, "token")));
        }
    } else if (strcmp(p, "renew-accessor") == 0 && w) {
        if (find_target(core, req, true, "invalid accessor", 400, &t)) {
            renew(core, req, &t, "");
        }
    } else if (strcmp(p, "revoke-self") == 0 && w) {
        node__token_revoke(core, caller->hash, false, revoke_done_cb, req);
    } else if (strcmp(p, "revoke") == 0 && w) {
        revoke_named(core, req, false, false);
    } else if (strcmp(p, "revoke-accessor") == 0 && w) {
        revoke_named(core, req, true, false);
    } else if (strcmp(p, "revoke-orphan") == 0 && w) {
        revoke_named(core, req, false, true);
    } else if (strcmp(p, "accessors/") == 0 && req->op == NODE_OP_LIST) {
        struct acc_scan a = {.keys = json_array(), .skip = strlen(TOKEN_PREFIX_ACCESSOR)};
        rft_store_scan(core->store, TOKEN_PREFIX_ACCESSOR, NULL, acc_visit, &a);
        done(req, node_response_data(json_pack("{s:o}", "keys", a.keys)));
    } else {
        static const char *const known[] = {
            "create",          "create-orphan", "lookup",         "lookup-self", "lookup-accessor",
            "renew",           "renew-self",    "renew-accessor", "revoke",      "revoke-self",
            "revoke-accessor", "revoke-orphan", "accessors/",
        };
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strcmp(p, known[i]) == 0) {
                done(req, node_response_error(405, "unsupported operation"));
                return true;
            }
        }
        done(req, node_response_error(404, "unsupported path"));
    }
    return true;
}
