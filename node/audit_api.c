/*
 * Audit in the core: the device table (core/audit), the sys/audit and sys/audit-hash endpoints,
 * loading the devices at unseal, and the raw request/response entries the broker hashes and
 * writes (core.md section 11).
 *
 * The device table is a barrier-encrypted JSON array of {path, type, description, options,
 * local, salt (base64)}. Enabling opens the device first (the broker's test write) and commits
 * the table after; a failed commit closes the device again, so the table and the live devices
 * agree. While the devices named by the table are being opened at unseal, requests wait.
 */
#include <stdio.h>
#include <string.h>

#include "lib/json.h"
#include "lib/crypto.h"
#include "node/audit.h"
#include "node/internal.h"
#include "node/audit_core.h"
#include "node/token.h"

#define CF_LOG_MODULE "audit"
#include "lib/log.h"

#define AUDIT_SALT_LEN 32

/* The table ------------------------------------------------------------------------------- */

static json_t *load_table(struct node_core *core)
{
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node__get(core, NODE_KEY_AUDIT, &val, &len);
    if (rv == CF_ENOTFOUND) {
        return json_array();
    }
    if (rv != CF_OK) {
        return NULL;
    }
    json_t *t = json_loadb((const char *)val, len, 0, NULL);
    cf_cleanse(val, len);
    cf_free(val);
    if (!json_is_array(t)) {
        json_decref(t);
        return NULL;
    }
    return t;
}

static int commit_table(struct node_core *core, json_t *table, node_write_cb cb, void *arg)
{
    char *s = cf_json_dumps(table, NULL);
    struct rft_batch *b = rft_batch_new();
    int rv = (s && b) ? node__batch_put(core, b, NODE_KEY_AUDIT, (const uint8_t *)s, strlen(s))
                      : CF_ENOMEM;
    if (s != NULL) {
        cf_cleanse(s, strlen(s));
        cf_free(s);
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        return rv;
    }
    node__commit(core, b, cb, arg);
    return CF_OK;
}

/* Loading at unseal -------------------------------------------------------------------------- */

static void load_enabled_cb(void *arg, int status, const char *errmsg)
{
    struct node_core *core = arg;
    if (status != CF_OK) {
        /* The device stays off; with no live device the broker records nothing, so refuse
         * requests instead of serving them unaudited (Vault refuses to unseal). */
        CF_LOG(CF_LOG_ERROR, "audit device failed to open at unseal: %s", errmsg);
        core->audit_broken = true;
    }
    if (--core->audit_pending == 0) {
        node__audit_release_waiters(core);
    }
}

int node__audit_load(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    json_t *table = load_table(core);
    if (table == NULL) {
        cf_errmsg_printf(errmsg, "read audit table: unreadable");
        return CF_ECORRUPT;
    }
    core->audit_broken = false;
    size_t i;
    json_t *e;
    core->audit_pending = 1; /* held until every device below has been started */
    json_array_foreach(table, i, e)
    {
        const char *salt64 = json_string_value(json_object_get(e, "salt"));
        uint8_t *salt = NULL;
        size_t saltlen = 0;
        if (salt64 == NULL || cf_base64_decode(salt64, strlen(salt64), &salt, &saltlen) != CF_OK) {
            core->audit_broken = true;
            continue;
        }
        core->audit_pending++;
        audit_device_enable(
            core->audit, json_string_value(json_object_get(e, "path")),
            json_string_value(json_object_get(e, "type")),
            json_string_value(json_object_get(e, "description")), json_object_get(e, "options"),
            json_is_true(json_object_get(e, "local")), salt, saltlen, load_enabled_cb, core);
        cf_cleanse(salt, saltlen);
        cf_free(salt);
    }
    json_decref(table);
    if (--core->audit_pending == 0) {
        node__audit_release_waiters(core);
    }
    return CF_OK;
}

void node__audit_unload(struct node_core *core)
{
    json_t *list = audit_devices_json(core->audit);
    const char *path;
    json_t *v;
    json_object_foreach(list, path, v)
    {
        audit_device_disable(core->audit, path);
    }
    json_decref(list);
}

/* sys/audit/:path ------------------------------------------------------------------------- */

struct enable_op
{
    struct node_core *core;
    struct node_request *req;
    char *path;
    json_t *table; /* the new table to commit */
};

static void enable_op_free(struct enable_op *op)
{
    cf_free(op->path);
    json_decref(op->table);
    cf_free(op);
}

static void enable_committed_cb(void *arg, int status)
{
    struct enable_op *op = arg;
    struct node_request *req = op->req;
    if (status != CF_OK) {
        audit_device_disable(op->core->audit, op->path);
        node_request_done(req, node_response_error(500, "failed to store the audit table: %s",
                                                   cf_strerror(status)));
    } else {
        CF_LOG(CF_LOG_INFO, "enabled audit device %s", op->path);
        node_request_done(req, node_response_new());
    }
    enable_op_free(op);
}

static void enable_opened_cb(void *arg, int status, const char *errmsg)
{
    struct enable_op *op = arg;
    if (status != CF_OK) {
        node_request_done(op->req, node_response_error(400, "%s", errmsg));
        enable_op_free(op);
        return;
    }
    int rv = commit_table(op->core, op->table, enable_committed_cb, op);
    if (rv != CF_OK) {
        audit_device_disable(op->core->audit, op->path);
        node_request_done(op->req, node_response_error(500, "%s", cf_strerror(rv)));
        enable_op_free(op);
    }
}

/* Options are stored as strings, as Vault keeps them. */
static json_t *string_options(const json_t *in, char msg[256])
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        if (json_is_string(v)) {
            json_object_set(out, k, v);
        } else if (json_is_boolean(v)) {
            json_object_set_new(out, k, json_string(json_is_true(v) ? "true" : "false"));
        } else if (json_is_integer(v)) {
            char n[32];
            snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(v));
            json_object_set_new(out, k, json_string(n));
        } else {
            snprintf(msg, 256, "invalid value for option \"%s\": must be a string", k);
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static void enable(struct node_core *core, struct node_request *req, const char *path)
{
    char msg[256];
    const char *type = json_string_value(json_object_get(req->data, "type"));
    if (type == NULL || type[0] == '\0') {
        node_request_done(req, node_response_error(400, "type is required"));
        return;
    }
    const json_t *ov = json_object_get(req->data, "options");
    if (ov != NULL && !json_is_object(ov) && !json_is_null(ov)) {
        node_request_done(req, node_response_error(400, "options must be a map"));
        return;
    }
    json_t *opts = json_is_object(ov) ? string_options(ov, msg) : json_object();
    if (opts == NULL) {
        node_request_done(req, node_response_error(400, "%s", msg));
        return;
    }
    const char *desc = json_string_value(json_object_get(req->data, "description"));
    bool local = json_is_true(json_object_get(req->data, "local"));
    uint8_t salt[AUDIT_SALT_LEN];
    json_t *table = load_table(core);
    char *salt64 = NULL;
    struct enable_op *op = cf_calloc(1, sizeof(*op));
    int rv = (table && op) ? cf_random(salt, sizeof(salt)) : CF_ENOMEM;
    if (rv == CF_OK) {
        salt64 = cf_base64_encode(salt, sizeof(salt));
        rv = salt64 ? CF_OK : CF_ENOMEM;
    }
    json_t *entry = NULL;
    if (rv == CF_OK) {
        entry = json_pack("{s:s,s:s,s:s,s:O,s:b,s:s}", "path", path, "type", type, "description",
                          desc ? desc : "", "options", opts, "local", local, "salt", salt64);
        rv = entry && json_array_append_new(table, entry) == 0 ? CF_OK : CF_ENOMEM;
    }
    cf_free(salt64);
    if (rv != CF_OK) {
        json_decref(opts);
        json_decref(table);
        cf_free(op);
        cf_cleanse(salt, sizeof(salt));
        node_request_done(req, node_response_error(500, "%s", cf_strerror(rv)));
        return;
    }
    op->core = core;
    op->req = req;
    op->path = cf_strdup(path);
    op->table = table;
    audit_device_enable(core->audit, path, type, desc ? desc : "", opts, local, salt, sizeof(salt),
                        enable_opened_cb, op);
    cf_cleanse(salt, sizeof(salt));
    json_decref(opts);
}

static void disable_committed_cb(void *arg, int status)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        node_request_done(req, node_response_error(500, "failed to store the audit table: %s",
                                                   cf_strerror(status)));
        return;
    }
    node_request_done(req, node_response_new());
}

static void disable(struct node_core *core, struct node_request *req, const char *path)
{
    json_t *table = load_table(core);
    if (table == NULL) {
        node_request_done(req, node_response_error(500, "audit table unreadable"));
        return;
    }
    size_t i;
    json_t *e;
    bool found = false;
    json_array_foreach(table, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0) {
            json_array_remove(table, i);
            found = true;
            break;
        }
    }
    if (!found) {
        json_decref(table);
        node_request_done(req, node_response_new()); /* Vault: disabling nothing is fine */
        return;
    }
    /* The device stops first: an entry that cannot be written must not be logged as if it
     * were, and a failed commit leaves the device off but still in the table, which the next
     * unseal reopens. */
    audit_device_disable(core->audit, path);
    int rv = commit_table(core, table, disable_committed_cb, req);
    json_decref(table);
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(500, "%s", cf_strerror(rv)));
    }
}

/* "file" -> "file/"; NULL when empty or too long. */
static char *device_path(const char *p)
{
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/') {
        n--;
    }
    if (n == 0 || n > 200) {
        return NULL;
    }
    char *out = cf_malloc(n + 2);
    if (out != NULL) {
        memcpy(out, p, n);
        out[n] = '/';
        out[n + 1] = '\0';
    }
    return out;
}

bool node__audit_api_handle(struct node_core *core, struct node_request *req)
{
    const char *p = req->path;
    bool w = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (strcmp(p, "sys/audit") == 0 || strcmp(p, "sys/audit/") == 0) {
        if (req->op != NODE_OP_READ) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        node_request_done(req, node_response_injected(audit_devices_json(core->audit)));
        return true;
    }
    bool hash = strncmp(p, "sys/audit-hash/", 15) == 0;
    if (!hash && strncmp(p, "sys/audit/", 10) != 0) {
        return false;
    }
    char *path = device_path(p + (hash ? 15 : 10));
    if (path == NULL) {
        node_request_done(req, node_response_error(400, "invalid audit device path"));
        return true;
    }
    if (hash) {
        const char *input = json_string_value(json_object_get(req->data, "input"));
        char *out = NULL;
        if (!w) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else if (input == NULL) {
            node_request_done(req, node_response_error(400, "missing \"input\""));
        } else if (audit_hash(core->audit, path, input, &out) != CF_OK) {
            node_request_done(req, node_response_error(400, "unknown audit backend %s", path));
        } else {
            node_request_done(req, node_response_injected(json_pack("{s:s}", "hash", out)));
            cf_free(out);
        }
    } else if (w) {
        enable(core, req, path);
    } else if (req->op == NODE_OP_DELETE) {
        disable(core, req, path);
    } else {
        node_request_done(req, node_response_error(405, "unsupported operation"));
    }
    cf_free(path);
    return true;
}
