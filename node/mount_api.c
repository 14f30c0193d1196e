/*
 * The mount API, Vault's wire behaviour: sys/mounts (the table), sys/mounts/:path (enable,
 * read, disable), sys/mounts/:path/tune, sys/remount (+ sys/remount/status/:id) and the
 * sys/internal/ui/mounts listings that the CLI uses to learn a mount's type and options.
 *
 * A change is checked against the live table first (every refusal changes nothing), then
 * written as one raft batch: a conditional put of the affected table (core/mounts or
 * core/local-mounts, node__mount_table_put) plus, for a disable, the deletion of every key
 * under logical/<uuid>/. Only once that batch is applied does the live table change and the
 * response go out. A concurrent change to the same table makes the conditional put fail
 * (CF_ECONFLICT); the request then starts over against the updated table, a few times at most.
 * The mount a pending change refers to is looked up again by uuid in the commit callback: a
 * seal in between empties the table, and the next unseal loads the committed state anyway.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/duration.h"
#include "node/internal.h"
#include "node/lease.h"

#define CF_LOG_MODULE "mount"
#include "lib/log.h"

#define MOUNT_ATTEMPTS 32      /* tries of one change; each round of a race has one winner */
#define MIGRATIONS_KEPT 32     /* finished remounts answered by sys/remount/status/:id */
#define MIGRATION_PATH_MAX 512 /* longer remount paths are kept truncated in that record */

/* Paths no mount may take, leave or be moved to (Vault's protectedMounts). */
static const char *const protected_paths[] = {"audit/", "auth/", "sys/", "cubbyhole/", "identity/"};
/* Paths whose tuning is limited to the audit key lists (Vault's untunableMounts). */
static const char *const untunable_paths[] = {"cubbyhole/", "sys/", "audit/", "identity/"};
/* Types that exist once, mounted by the core itself. */
static const char *const singleton_types[] = {"cubbyhole", "system",       "token",
                                              "identity",  "ns_cubbyhole", "ns_system",
                                              "ns_token",  "ns_identity"};
/* Fields of sys/mounts/:path/tune (unknown fields are ignored, as Vault's framework does). */
static const char *const tune_fields[] = {"default_lease_ttl",
                                          "max_lease_ttl",
                                          "description",
                                          "audit_non_hmac_request_keys",
                                          "audit_non_hmac_response_keys",
                                          "listing_visibility",
                                          "passthrough_request_headers",
                                          "allowed_response_headers",
                                          "options",
                                          "plugin_version",
                                          "token_type",
                                          "user_lockout_config"};
/* Config keys that hold lists of strings. */
static const char *const list_keys[] = {"audit_non_hmac_request_keys",
                                        "audit_non_hmac_response_keys",
                                        "passthrough_request_headers", "allowed_response_headers"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Finished remounts. The record is per process, tagged with its core; ids are random UUIDs. */
struct migration
{
    const struct node_core *core; /* borrowed, only compared */
    char id[37];
    char from[MIGRATION_PATH_MAX];
    char to[MIGRATION_PATH_MAX];
    char start[40];
    char end[40];
};
static struct migration migrations[MIGRATIONS_KEPT];
static unsigned migrations_next;

enum op_kind {
    OP_ENABLE,
    OP_DISABLE,
    OP_REMOUNT,
    OP_TUNE,
};

/* A change waiting for its commit. */
struct mount_op
{
    struct node_core *core;   /* borrowed */
    struct node_request *req; /* borrowed until answered */
    enum op_kind kind;
    unsigned attempt;         /* 0 for the first try */
    struct node_mount *fresh; /* OP_ENABLE: owned detached mount */
    char uuid[37];            /* the mount changed */
    json_t *entry;            /* owned: OP_REMOUNT, OP_TUNE new stored form */
    json_t *warnings;         /* owned array or NULL */
    char *from;               /* owned: OP_REMOUNT source path */
    char started[40];         /* OP_REMOUNT: RFC 3339 start time */
};

static bool dispatch(struct node_core *core, struct node_request *req, unsigned attempt);

/* Helpers ----------------------------------------------------------------------------- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *protected_prefix(const char *path)
{
    for (size_t i = 0; i < N_OF(protected_paths); i++) {
        if (has_prefix(path, protected_paths[i])) {
            return protected_paths[i];
        }
    }
    return NULL;
}

static void now_rfc3339(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

/* Vault's sanitizePath: no leading '/', exactly one trailing '/'. NULL on OOM. */
static char *sanitize_path(const char *p)
{
    while (*p == '/') {
        p++;
    }
    size_t n = strlen(p);
    char *out = cf_malloc(n + 2);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, p, n + 1);
    if (n == 0 || out[n - 1] != '/') {
        out[n] = '/';
        out[n + 1] = '\0';
    }
    return out;
}

/* True when a sanitized mount path is clean: non-empty segments, none "." or "..", all
 * printable. */
static bool path_clean(const char *p)
{
    if (strcmp(p, "/") == 0) {
        return false;
    }
    for (const unsigned char *c = (const unsigned char *)p; *c; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
    const char *seg = p;
    while (*seg != '\0') {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            return false;
        }
        seg += n + (end ? 1 : 0);
    }
    return true;
}

/* The live mount that conflicts with path (one is a prefix of the other), or NULL. */
static struct node_mount *conflict(struct node_core *core, const char *path)
{
    for (struct node_mount *m = core->mounts; m != NULL; m = m->next) {
        if (has_prefix(m->path, path) || has_prefix(path, m->path)) {
            return m;
        }
    }
    return NULL;
}

/* A string field: absent or null -> *out NULL. */
static bool field_string(const json_t *data, const char *key, const char **out)
{
    const json_t *v = json_object_get(data, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    *out = json_string_value(v);
    return *out != NULL;
}

/* A bool field as Vault's framework reads it: JSON bool or "true"/"false"/"1"/"0". */
static bool field_bool(const json_t *data, const char *key, bool *out)
{
    const json_t *v = json_object_get(data, key);
    *out = false;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)) {
        *out = true;
        return true;
    }
    return s != NULL && (strcmp(s, "false") == 0 || strcmp(s, "0") == 0);
}

enum ttl_parse {
    TTL_UNSET, /* absent, null or "" */
    TTL_SET,   /* *out holds seconds (0 for "system") */
    TTL_BAD,
};

/* A TTL: integer seconds or a duration string ("1h", "300"); "system" = 0. */
static enum ttl_parse parse_ttl(const json_t *v, int64_t *out)
{
    if (v == NULL || json_is_null(v)) {
        return TTL_UNSET;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out >= 0 ? TTL_SET : TTL_BAD;
    }
    const char *s = json_string_value(v);
    if (s == NULL) {
        return TTL_BAD;
    }
    if (s[0] == '\0') {
        return TTL_UNSET;
    }
    if (strcmp(s, "system") == 0) {
        *out = 0;
        return TTL_SET;
    }
    return cf_duration_parse_s(s, out) == CF_OK && *out >= 0 ? TTL_SET : TTL_BAD;
}

/* The text of a TTL value for an error message. */
static void ttl_text(const json_t *v, char *out, size_t n)
{
    if (json_is_string(v)) {
        snprintf(out, n, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
    } else {
        snprintf(out, n, "(not a string)");
    }
}

/* A list of strings: a JSON array of strings, or one comma-separated string (Vault splits
 * those). *out is a new array of the non-empty, trimmed items; false for any other shape. */
static bool parse_list(const json_t *v, json_t **out)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return false;
    }
    *out = arr;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s != '\0') {
            const char *comma = strchr(s, ',');
            size_t n = comma ? (size_t)(comma - s) : strlen(s);
            const char *b = s;
            const char *e = s + n;
            while (b < e && *b == ' ') {
                b++;
            }
            while (e > b && e[-1] == ' ') {
                e--;
            }
            if (e > b && json_array_append_new(arr, json_stringn(b, (size_t)(e - b))) != 0) {
                break;
            }
            s += n + (comma ? 1 : 0);
        }
        return true;
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item)
        {
            if (!json_is_string(item)) {
                json_decref(arr);
                *out = NULL;
                return false;
            }
            if (json_string_length(item) > 0) {
                json_array_append(arr, (json_t *)item);
            }
        }
        return true;
    }
    json_decref(arr);
    *out = NULL;
    return false;
}

/* Sets or (for an empty list) removes a list key of a config object. */
static int config_set_list(json_t *config, const char *key, json_t *list)
{
    if (json_array_size(list) == 0) {
        json_decref(list);
        json_object_del(config, key);
        return CF_OK;
    }
    return json_object_set_new(config, key, list) == 0 ? CF_OK : CF_ENOMEM;
}

static bool visibility_ok(const char *v)
{
    return strcmp(v, "") == 0 || strcmp(v, "unauth") == 0 || strcmp(v, "hidden") == 0;
}

/* Options as Vault's TypeKVPairs: an object whose values are strings (numbers and bools are
 * taken as their text). *out is a new object; NULL input -> empty object. */
static bool parse_options(const json_t *v, json_t **out)
{
    *out = json_object();
    if (*out == NULL) {
        return false;
    }
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (!json_is_object(v)) {
        json_decref(*out);
        *out = NULL;
        return false;
    }
    const char *k;
    const json_t *item;
    json_object_foreach((json_t *)v, k, item)
    {
        char buf[64];
        const char *s = json_string_value(item);
        if (json_is_integer(item)) {
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(item));
            s = buf;
        } else if (json_is_boolean(item)) {
            s = json_is_true(item) ? "true" : "false";
        }
        if (s == NULL || json_object_set_new(*out, k, json_string(s)) != 0) {
            json_decref(*out);
            *out = NULL;
            return false;
        }
    }
    return true;
}

static struct node_response *sys_response(json_t *data, bool inject)
{
    struct node_response *resp = node_response_data(data);
    if (resp != NULL) {
        resp->inject_top_level = inject;
        resp->mount_type = "system";
    }
    return resp;
}

static void respond(struct node_request *req, struct node_response *resp)
{
    node_request_done(req, resp);
}

static void op_free(struct mount_op *op)
{
    if (op == NULL) {
        return;
    }
    node__mount_free(op->fresh);
    json_decref(op->entry);
    json_decref(op->warnings);
    cf_free(op->from);
    cf_free(op);
}

static struct node_response *commit_error(int status)
{
    switch (status) {
        case CF_ESEALED:
            return node_response_error(503, "Vault is sealed");
        case CF_ECANCELED:
        case CF_ESHUTDOWN:
            return node_response_error(503, "Vault is shutting down");
        case CF_ENOTLEADER:
            return node_response_error(503, "node is not active");
        default:
            return node_response_error(500, "failed to update mount table: %s",
                                       cf_strerror(status));
    }
}

/* Applies a committed change to the live table. */
static void op_apply(struct mount_op *op)
{
    struct node_core *core = op->core;
    if (core->sealed || core->mounts == NULL) {
        return; /* the next unseal loads the committed table */
    }
    struct node_mount *m = node__mount_find_uuid(core, op->uuid);
    switch (op->kind) {
        case OP_ENABLE:
            if (m == NULL) {
                node__mount_insert(core, op->fresh);
                op->fresh = NULL;
            }
            return;
        case OP_DISABLE:
            if (m != NULL) {
                node__mount_unlink(core, m);
                node__mount_free(m);
            }
            return;
        case OP_REMOUNT: {
            char *to = cf_strdup(json_string_value(json_object_get(op->entry, "path")));
            if (m == NULL || to == NULL) {
                cf_free(to);
                return;
            }
            node__mount_unlink(core, m);
            cf_free(m->path);
            m->path = to;
            node__mount_insert(core, m);
            return;
        }
        case OP_TUNE: {
            if (m == NULL) {
                return;
            }
            char *desc = cf_strdup(json_string_value(json_object_get(op->entry, "description")));
            if (desc == NULL) {
                return;
            }
            cf_free(m->description);
            m->description = desc;
            json_t *config = json_object_get(op->entry, "config");
            json_decref(m->config);
            m->config = json_incref(config);
            m->default_lease_ttl_s =
                json_integer_value(json_object_get(config, "default_lease_ttl"));
            m->max_lease_ttl_s = json_integer_value(json_object_get(config, "max_lease_ttl"));
            json_t *options = json_object_get(op->entry, "options");
            json_decref(m->options);
            m->options = json_is_object(options) ? json_incref(options) : NULL;
            return;
        }
    }
}

/* Keeps a finished remount for sys/remount/status/:id; *id receives its new id. */
static const char *record_migration(const struct mount_op *op)
{
    char id[37];
    if (cf_uuid_v4(id) != CF_OK) {
        return NULL;
    }
    struct migration *mg = &migrations[migrations_next++ % MIGRATIONS_KEPT];
    memset(mg, 0, sizeof(*mg));
    mg->core = op->core;
    memcpy(mg->id, id, sizeof(id));
    snprintf(mg->from, sizeof(mg->from), "%s", op->from);
    snprintf(mg->to, sizeof(mg->to), "%s", json_string_value(json_object_get(op->entry, "path")));
    snprintf(mg->start, sizeof(mg->start), "%s", op->started);
    now_rfc3339(mg->end);
    return mg->id;
}

static void op_commit_cb(void *arg, int status)
{
    struct mount_op *op = arg;
    struct node_core *core = op->core;
    struct node_request *req = op->req;
    if (status == CF_ECONFLICT && op->attempt + 1 < MOUNT_ATTEMPTS && !core->sealed) {
        /* Another change of the same table won: start over against the new table. */
        unsigned next = op->attempt + 1;
        CF_LOG(CF_LOG_DEBUG, "mount table changed under %s, attempt %u", req->path, next + 1);
        op_free(op);
        dispatch(core, req, next);
        return;
    }
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "mount table change failed: %s", cf_strerror(status));
        op_free(op);
        respond(req, commit_error(status));
        return;
    }
    op_apply(op);
    struct node_response *resp = NULL;
    if (op->kind == OP_REMOUNT) {
        const char *id = record_migration(op);
        CF_LOG(CF_LOG_INFO, "mount %s moved to %s uuid=%s", op->from,
               json_string_value(json_object_get(op->entry, "path")), op->uuid);
        /* Vault moves asynchronously and answers with an id to poll; here the move is done
         * when the answer goes out, and the id reports success at once. */
        resp = sys_response(json_pack("{s:s}", "migration_id", id ? id : ""), true);
        if (resp != NULL) {
            resp->warnings = json_pack(
                "[s]",
                "Mount move has been queued. Progress will be reported in Vault's server log, "
                "tagged with the returned migration_id");
        }
    } else if (op->warnings != NULL) {
        resp = sys_response(NULL, false);
        if (resp != NULL) {
            resp->warnings = op->warnings;
            op->warnings = NULL;
        }
    } else {
        resp = node_response_new();
    }
    op_free(op);
    respond(req, resp);
}

/* Starts the commit of b for op (takes both). */
static void op_commit(struct mount_op *op, struct rft_batch *b)
{
    node__commit(op->core, b, op_commit_cb, op);
}

static struct mount_op *op_new(struct node_core *core,
                               struct node_request *req,
                               enum op_kind kind,
                               unsigned attempt)
{
    struct mount_op *op = cf_calloc(1, sizeof(*op));
    if (op != NULL) {
        op->core = core;
        op->req = req;
        op->kind = kind;
        op->attempt = attempt;
    }
    return op;
}

/* Reads -------------------------------------------------------------------------------- */

static void mounts_read(struct node_core *core, struct node_request *req)
{
    json_t *data = node_core_mounts_json(core);
    respond(req, data ? sys_response(data, true) : NULL);
}

static void mount_read(struct node_core *core, struct node_request *req, const char *path)
{
    struct node_mount *m = node__mount_match(core, path);
    if (m == NULL) {
        respond(req, node_response_error(400, "No secret engine mount at %s", path));
        return;
    }
    json_t *data = node__mount_info_json(m);
    respond(req, data ? sys_response(data, true) : NULL);
}

static void tune_read(struct node_core *core, struct node_request *req, const char *path)
{
    struct node_mount *m = node__mount_match(core, path);
    if (m == NULL) {
        respond(req, node_response_error(400, "cannot fetch sysview for path \"%s\"", path));
        return;
    }
    int64_t def;
    int64_t max;
    node__mount_ttls(core, m, &def, &max);
    json_t *data = json_pack("{s:s,s:I,s:I,s:O}", "description", m->description,
                             "default_lease_ttl", (json_int_t)def, "max_lease_ttl", (json_int_t)max,
                             "force_no_cache", json_object_get(m->config, "force_no_cache"));
    int rv = data ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK && m->external_entropy_access) {
        rv = json_object_set_new(data, "external_entropy_access", json_true());
    }
    for (size_t i = 0; rv == CF_OK && i < N_OF(list_keys); i++) {
        json_t *v = json_object_get(m->config, list_keys[i]);
        if (v != NULL) {
            rv = json_object_set(data, list_keys[i], v);
        }
    }
    json_t *vis = json_object_get(m->config, "listing_visibility");
    if (rv == CF_OK && json_string_length(vis) > 0) {
        rv = json_object_set(data, "listing_visibility", vis);
    }
    if (rv == CF_OK && json_object_size(m->options) > 0) {
        rv = json_object_set(data, "options", m->options);
    }
    if (rv != CF_OK) {
        json_decref(data);
        respond(req, NULL);
        return;
    }
    respond(req, sys_response(data, true));
}

static void ui_mounts_read(struct node_core *core, struct node_request *req)
{
    json_t *secret = json_object();
    json_t *data = json_pack("{s:o,s:{}}", "secret", secret, "auth");
    bool authed = req->token != NULL && req->token[0] != '\0';
    for (struct node_mount *m = core->mounts; data != NULL && m != NULL; m = m->next) {
        const char *vis = json_string_value(json_object_get(m->config, "listing_visibility"));
        bool unauth = vis != NULL && strcmp(vis, "unauth") == 0;
        json_t *info = NULL;
        if (authed) {
            if (!node__caller_mount_access(core, req, m->path)) {
                continue;
            }
            info = node__mount_info_json(m);
        } else if (unauth) {
            info = json_pack("{s:s,s:s,s:O?}", "type", m->type, "description", m->description,
                             "options", m->options);
        } else {
            continue;
        }
        if (info == NULL || json_object_set_new(secret, m->path, info) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    respond(req, data ? sys_response(data, false) : NULL);
}

static void ui_mount_read(struct node_core *core, struct node_request *req, const char *path)
{
    struct node_mount *m = node__mount_match(core, path);
    bool visible = false;
    if (m != NULL && req->token != NULL && req->token[0] != '\0') {
        visible = node__caller_mount_access(core, req, m->path);
    } else if (m != NULL) {
        const char *vis = json_string_value(json_object_get(m->config, "listing_visibility"));
        visible = vis != NULL && strcmp(vis, "unauth") == 0;
    }
    if (!visible) {
        /* 403, not 404: this path must not tell which mounts exist. */
        respond(req, node_response_error(403,
                                         "preflight capability check returned 403, please "
                                         "ensure client's policies grant access to path \"%s\"",
                                         path));
        return;
    }
    json_t *data = node__mount_info_json(m);
    if (data != NULL && json_object_set_new(data, "path", json_string(m->path)) != 0) {
        json_decref(data);
        data = NULL;
    }
    respond(req, data ? sys_response(data, false) : NULL);
}

static void remount_status(struct node_core *core, struct node_request *req, const char *id)
{
    for (size_t i = 0; i < MIGRATIONS_KEPT; i++) {
        const struct migration *mg = &migrations[i];
        if (mg->core == core && mg->id[0] != '\0' && strcmp(mg->id, id) == 0) {
            json_t *data =
                json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:s}}", "migration_id", mg->id, "migration_info",
                          "source_mount", mg->from, "target_mount", mg->to, "status", "success",
                          "start_time", mg->start, "end_time", mg->end);
            respond(req, data ? sys_response(data, false) : NULL);
            return;
        }
    }
    respond(req, node_response_not_found());
}

/* Enable ------------------------------------------------------------------------------- */

/* Builds the stored config object from an enable request's "config". NULL with *resp set to
 * the refusal (or NULL for OOM). */
static json_t *enable_config(const json_t *in,
                             const char **plugin_name,
                             struct node_response **resp)
{
    *resp = NULL;
    *plugin_name = NULL;
    if (in != NULL && !json_is_null(in) && !json_is_object(in)) {
        *resp = node_response_error(400, "unable to convert given mount config information");
        return NULL;
    }
    int64_t def = 0;
    int64_t max = 0;
    char text[128];
    const json_t *v = json_object_get(in, "default_lease_ttl");
    if (parse_ttl(v, &def) == TTL_BAD) {
        ttl_text(v, text, sizeof(text));
        *resp =
            node_response_error(400, "unable to parse default TTL of %s: invalid duration", text);
        return NULL;
    }
    v = json_object_get(in, "max_lease_ttl");
    if (parse_ttl(v, &max) == TTL_BAD) {
        ttl_text(v, text, sizeof(text));
        *resp = node_response_error(400, "unable to parse max TTL of %s: invalid duration", text);
        return NULL;
    }
    if (max != 0 && def > max) {
        *resp =
            node_response_error(400, "given default lease TTL greater than given max lease TTL");
        return NULL;
    }
    if (def > NODE_SYSTEM_LEASE_S && max == 0) {
        *resp = node_response_error(
            400, "given default lease TTL greater than system max lease TTL of %d",
            NODE_SYSTEM_LEASE_S);
        return NULL;
    }
    bool no_cache;
    if (!field_bool(in, "force_no_cache", &no_cache)) {
        *resp = node_response_error(400, "unable to convert given mount config information");
        return NULL;
    }
    const char *vis;
    if (!field_string(in, "listing_visibility", &vis) ||
        !field_string(in, "plugin_name", plugin_name)) {
        *resp = node_response_error(400, "unable to convert given mount config information");
        return NULL;
    }
    if (vis != NULL && !visibility_ok(vis)) {
        *resp = node_response_error(400, "invalid listing_visibility %s", vis);
        return NULL;
    }
    json_t *config = json_pack("{s:I,s:I,s:b}", "default_lease_ttl", (json_int_t)def,
                               "max_lease_ttl", (json_int_t)max, "force_no_cache", no_cache);
    if (config == NULL) {
        return NULL;
    }
    if (vis != NULL && vis[0] != '\0' &&
        json_object_set_new(config, "listing_visibility", json_string(vis)) != 0) {
        json_decref(config);
        return NULL;
    }
    for (size_t i = 0; i < N_OF(list_keys); i++) {
        json_t *list = NULL;
        if (!parse_list(json_object_get(in, list_keys[i]), &list)) {
            json_decref(config);
            *resp = node_response_error(400, "unable to parse given mount config information");
            return NULL;
        }
        if (config_set_list(config, list_keys[i], list) != CF_OK) {
            json_decref(config);
            return NULL;
        }
    }
    return config;
}

static void mount_enable(struct node_core *core,
                         struct node_request *req,
                         const char *path,
                         unsigned attempt)
{
    const json_t *d = req->data;
    const char *type;
    const char *desc;
    const char *plugin_name;
    bool local;
    bool seal_wrap;
    bool entropy;
    if (!field_string(d, "type", &type) || !field_string(d, "description", &desc) ||
        !field_string(d, "plugin_name", &plugin_name)) {
        respond(req, node_response_error(400,
                                         "type, description and plugin_name must be "
                                         "strings"));
        return;
    }
    if (!field_bool(d, "local", &local) || !field_bool(d, "seal_wrap", &seal_wrap) ||
        !field_bool(d, "external_entropy_access", &entropy)) {
        respond(req, node_response_error(400,
                                         "local, seal_wrap and external_entropy_access "
                                         "must be booleans"));
        return;
    }
    if (seal_wrap && core->auto_seal == NULL) {
        respond(req, node_response_error(400,
                                         "seal_wrap needs an auto-unseal seal (\"static\" or "
                                         "\"pkcs11\"); this node uses the Shamir seal"));
        return;
    }
    json_t *options = NULL;
    if (!parse_options(json_object_get(d, "options"), &options)) {
        respond(req, node_response_error(400, "options must be a map of strings"));
        return;
    }
    struct node_response *refusal = NULL;
    const char *config_plugin = NULL;
    json_t *config = enable_config(json_object_get(d, "config"), &config_plugin, &refusal);
    if (config == NULL) {
        json_decref(options);
        respond(req, refusal);
        return;
    }
    json_t *entry = NULL;
    struct node_mount *fresh = NULL;
    struct mount_op *op = NULL;
    struct rft_batch *b = NULL;
    struct node_response *resp = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";

    if (type == NULL || type[0] == '\0') {
        resp = node_response_error(400, "backend type must be specified as a string");
        goto out;
    }
    if (strcmp(type, "plugin") == 0) {
        type = config_plugin && config_plugin[0] ? config_plugin : plugin_name;
        if (type == NULL || type[0] == '\0') {
            resp = node_response_error(400, "plugin_name must be provided for plugin backend");
            goto out;
        }
    }
    const char *version = json_string_value(json_object_get(options, "version"));
    if (strcmp(type, "generic") == 0 || strcmp(type, "kv-v1") == 0) {
        if (strcmp(type, "kv-v1") == 0 &&
            json_object_set_new(options, "version", json_string("1")) != 0) {
            goto out;
        }
        type = "kv";
    } else if (strcmp(type, "kv-v2") == 0) {
        resp = node_response_error(400, "kv version 2 is not supported yet");
        goto out;
    } else if (strcmp(type, "kv") != 0 && version != NULL && version[0] != '\0') {
        resp = node_response_error(400, "secrets engine \"%s\" does not allow setting a version",
                                   type);
        goto out;
    }
    version = json_string_value(json_object_get(options, "version"));
    if (strcmp(type, "kv") == 0 && version != NULL && version[0] != '\0' &&
        strcmp(version, "1") != 0) {
        resp = node_response_error(400, "kv version %s is not supported yet", version);
        goto out;
    }
    if (!path_clean(path)) {
        resp = node_response_error(400, "invalid mount path \"%s\"", path);
        goto out;
    }
    if (protected_prefix(path) != NULL) {
        resp = node_response_error(403, "cannot mount \"%s\"", path);
        goto out;
    }
    for (size_t i = 0; i < N_OF(singleton_types); i++) {
        if (strcmp(type, singleton_types[i]) == 0) {
            resp = node_response_error(403, "mount type of \"%s\" is not mountable", type);
            goto out;
        }
    }
    struct node_mount *other = conflict(core, path);
    if (other != NULL) {
        resp = node_response_error(409, "path is already in use at %s", other->path);
        goto out;
    }
    if (node__engine_find(core, type) == NULL) {
        resp = node_response_error(400, "plugin not found in the catalog: %s", type);
        goto out;
    }
    char uuid[37];
    char accessor[64];
    if (node__mount_ids(core, type, uuid, accessor) != CF_OK) {
        resp = node_response_error(500, "could not generate mount identifiers");
        goto out;
    }
    entry = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:O?,s:b,s:b,s:b}", "path", path, "type", type,
                      "uuid", uuid, "accessor", accessor, "description", desc ? desc : "", "config",
                      config, "options", json_object_size(options) ? options : NULL, "local", local,
                      "seal_wrap", seal_wrap, "external_entropy_access", entropy);
    if (entry == NULL) {
        goto out;
    }
    int rv = node__mount_new(core, entry, &fresh, errmsg);
    if (rv == CF_ENOMEM) {
        goto out;
    }
    if (rv != CF_OK) {
        resp = node_response_error(400, "%s", errmsg[0] ? errmsg : cf_strerror(rv));
        goto out;
    }
    op = op_new(core, req, OP_ENABLE, attempt);
    b = rft_batch_new();
    if (op == NULL || b == NULL) {
        goto out;
    }
    rv = node__mount_table_put(core, b, local, NULL, entry);
    if (rv != CF_OK) {
        resp = commit_error(rv);
        goto out;
    }
    memcpy(op->uuid, uuid, sizeof(uuid));
    op->fresh = fresh;
    fresh = NULL;
    json_decref(entry);
    json_decref(config);
    json_decref(options);
    CF_LOG(CF_LOG_INFO, "enabling %s engine at %s uuid=%s", type, path, uuid);
    op_commit(op, b);
    return;
out:
    rft_batch_free(b);
    op_free(op);
    node__mount_free(fresh);
    json_decref(entry);
    json_decref(config);
    json_decref(options);
    respond(req, resp);
}

/* Disable ------------------------------------------------------------------------------ */

static void mount_disable_now(struct node_core *core,
                              struct node_request *req,
                              const char *path,
                              unsigned attempt)
{
    struct node_mount *m = node__mount_find(core, path);
    if (m == NULL) {
        /* Vault answers 204 so that this does not tell whether the mount existed. */
        respond(req, node_response_new());
        return;
    }
    if (protected_prefix(path) != NULL) {
        respond(req, node_response_error(400, "cannot unmount \"%s\"", path));
        return;
    }
    struct mount_op *op = op_new(core, req, OP_DISABLE, attempt);
    struct rft_batch *b = rft_batch_new();
    int rv = op && b ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        rv = node__mount_table_put(core, b, m->local, m, NULL);
    }
    if (rv == CF_OK) {
        rv = rft_batch_delete_prefix(b, m->view.prefix);
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        op_free(op);
        respond(req, rv == CF_ENOMEM ? NULL : commit_error(rv));
        return;
    }
    snprintf(op->uuid, sizeof(op->uuid), "%s", m->uuid);
    CF_LOG(CF_LOG_INFO, "disabling %s engine at %s uuid=%s", m->type, m->path, m->uuid);
    op_commit(op, b);
}

struct disable_op
{
    struct node_core *core;
    struct node_request *req;
    char *path;
    unsigned attempt;
};

static void leases_revoked_cb(void *arg, int status)
{
    struct disable_op *d = arg;
    if (status != CF_OK) {
        respond(d->req, node_response_error(400, "failed to revoke \"%s\" (%s): %s", d->path,
                                            d->path, cf_strerror(status)));
    } else {
        mount_disable_now(d->core, d->req, d->path, d->attempt);
    }
    cf_free(d->path);
    cf_free(d);
}

/* Vault: the mount's leases are revoked (through the engine) before it goes. */
static void mount_disable(struct node_core *core,
                          struct node_request *req,
                          const char *path,
                          unsigned attempt)
{
    struct node_mount *m = node__mount_find(core, path);
    if (m == NULL || protected_prefix(path) != NULL) {
        mount_disable_now(core, req, path, attempt);
        return;
    }
    struct disable_op *d = cf_calloc(1, sizeof(*d));
    char *p = cf_strdup(path);
    if (d == NULL || p == NULL) {
        cf_free(d);
        cf_free(p);
        respond(req, NULL);
        return;
    }
    d->core = core;
    d->req = req;
    d->path = p;
    d->attempt = attempt;
    node__lease_revoke_prefix(core, m->path, false, leases_revoked_cb, d);
}

/* Remount ------------------------------------------------------------------------------ */

static bool edge_space(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && (s[0] == ' ' || s[n - 1] == ' ');
}

static void remount(struct node_core *core, struct node_request *req, unsigned attempt)
{
    const char *from_in;
    const char *to_in;
    if (!field_string(req->data, "from", &from_in) || !field_string(req->data, "to", &to_in) ||
        from_in == NULL || to_in == NULL || from_in[0] == '\0' || to_in[0] == '\0') {
        respond(req, node_response_error(400,
                                         "both 'from' and 'to' path must be specified as "
                                         "a string"));
        return;
    }
    if (edge_space(from_in)) {
        respond(req, node_response_error(400, "'from' path cannot contain trailing whitespace"));
        return;
    }
    if (edge_space(to_in)) {
        respond(req, node_response_error(400, "'to' path cannot contain trailing whitespace"));
        return;
    }
    char *from = sanitize_path(from_in);
    char *to = sanitize_path(to_in);
    struct mount_op *op = NULL;
    struct rft_batch *b = NULL;
    struct node_response *resp = NULL;
    json_t *entry = NULL;
    if (from == NULL || to == NULL) {
        goto out;
    }
    if (!path_clean(to)) {
        resp = node_response_error(400, "invalid destination mount: path \"%s\" is not clean", to);
        goto out;
    }
    if (protected_prefix(from) != NULL) {
        resp = node_response_error(400, "cannot remount \"%s\"", from);
        goto out;
    }
    if (protected_prefix(to) != NULL) {
        resp = node_response_error(400, "cannot remount to destination %s", to);
        goto out;
    }
    struct node_mount *m = node__mount_find(core, from);
    if (m == NULL) {
        resp = node_response_error(400, "no matching mount at \"%s\"", from);
        goto out;
    }
    struct node_mount *other = conflict(core, to);
    if (other != NULL) {
        resp = node_response_error(400, "path already in use at \"%s\"", other->path);
        goto out;
    }
    entry = node__mount_entry_json(m);
    op = op_new(core, req, OP_REMOUNT, attempt);
    b = rft_batch_new();
    if (entry == NULL || op == NULL || b == NULL ||
        json_object_set_new(entry, "path", json_string(to)) != 0) {
        goto out;
    }
    int rv = node__mount_table_put(core, b, m->local, m, entry);
    if (rv != CF_OK) {
        resp = rv == CF_ENOMEM ? NULL : commit_error(rv);
        goto out;
    }
    snprintf(op->uuid, sizeof(op->uuid), "%s", m->uuid);
    now_rfc3339(op->started);
    op->entry = entry;
    op->from = from;
    cf_free(to);
    op_commit(op, b);
    return;
out:
    json_decref(entry);
    rft_batch_free(b);
    op_free(op);
    cf_free(from);
    cf_free(to);
    respond(req, resp);
}

/* Tune --------------------------------------------------------------------------------- */

/* Applies the tune fields of data to a copy of m's stored form. NULL with *resp set to the
 * refusal (NULL for OOM); *warning set for a kv version upgrade. */
static json_t *tune_entry(const struct node_mount *m,
                          const json_t *data,
                          const char *path,
                          json_t **warnings,
                          struct node_response **resp)
{
    *resp = NULL;
    *warnings = NULL;
    bool untunable = false;
    for (size_t i = 0; i < N_OF(untunable_paths); i++) {
        untunable = untunable || has_prefix(path, untunable_paths[i]);
    }
    if (untunable) {
        for (size_t i = 0; i < N_OF(tune_fields); i++) {
            if (json_object_get(data, tune_fields[i]) != NULL &&
                !has_prefix(tune_fields[i], "audit_non_hmac_")) {
                *resp = node_response_error(400, "cannot tune parameter %s of %s", tune_fields[i],
                                            path);
                return NULL;
            }
        }
    }
    json_t *entry = node__mount_entry_json(m);
    if (entry == NULL) {
        return NULL;
    }
    json_t *config = json_object_get(entry, "config");
    json_t *copy = json_deep_copy(config);
    if (copy == NULL || json_object_set_new(entry, "config", copy) != 0) {
        json_decref(entry);
        return NULL;
    }
    config = copy;
    int64_t def = m->default_lease_ttl_s;
    int64_t max = m->max_lease_ttl_s;
    const json_t *v = json_object_get(data, "default_lease_ttl");
    if (parse_ttl(v, &def) == TTL_BAD) {
        char text[128];
        ttl_text(v, text, sizeof(text));
        *resp = node_response_error(400, "unable to parse default lease TTL %s", text);
        goto fail;
    }
    v = json_object_get(data, "max_lease_ttl");
    if (parse_ttl(v, &max) == TTL_BAD) {
        char text[128];
        ttl_text(v, text, sizeof(text));
        *resp = node_response_error(400, "unable to parse max lease TTL %s", text);
        goto fail;
    }
    if (def != 0 && max != 0 && max < def) {
        *resp = node_response_error(400,
                                    "backend max lease TTL of %lld would be less than backend "
                                    "default lease TTL of %lld",
                                    (long long)max, (long long)def);
        goto fail;
    }
    if (json_object_set_new(config, "default_lease_ttl", json_integer(def)) != 0 ||
        json_object_set_new(config, "max_lease_ttl", json_integer(max)) != 0) {
        goto fail;
    }
    const char *desc;
    if (!field_string(data, "description", &desc)) {
        *resp = node_response_error(400, "description must be a string");
        goto fail;
    }
    if (desc != NULL && json_object_set_new(entry, "description", json_string(desc)) != 0) {
        goto fail;
    }
    for (size_t i = 0; i < N_OF(list_keys); i++) {
        v = json_object_get(data, list_keys[i]);
        if (v == NULL) {
            continue;
        }
        json_t *list = NULL;
        if (!parse_list(v, &list)) {
            *resp = node_response_error(400, "%s must be a list of strings", list_keys[i]);
            goto fail;
        }
        if (config_set_list(config, list_keys[i], list) != CF_OK) {
            goto fail;
        }
    }
    const char *vis;
    if (!field_string(data, "listing_visibility", &vis) || (vis != NULL && !visibility_ok(vis))) {
        *resp = node_response_error(400, "invalid listing_visibility %s", vis ? vis : "");
        goto fail;
    }
    if (vis != NULL && vis[0] == '\0') {
        json_object_del(config, "listing_visibility");
    } else if (vis != NULL &&
               json_object_set_new(config, "listing_visibility", json_string(vis)) != 0) {
        goto fail;
    }
    if (json_object_get(data, "token_type") != NULL) {
        *resp = node_response_error(400, "'token_type' can only be modified on auth mounts");
        goto fail;
    }
    if (json_object_get(data, "user_lockout_config") != NULL) {
        *resp = node_response_error(400,
                                    "tuning of user lockout configuration for auth type "
                                    "\"%s\" not allowed",
                                    m->type);
        goto fail;
    }
    const char *pv;
    if (!field_string(data, "plugin_version", &pv)) {
        *resp = node_response_error(400, "plugin_version must be a string");
        goto fail;
    }
    if (pv != NULL && pv[0] != '\0') {
        *resp = node_response_error(400, "plugin version %s of %s not found in the catalog", pv,
                                    m->type);
        goto fail;
    }
    json_t *opts = NULL;
    if (!parse_options(json_object_get(data, "options"), &opts)) {
        *resp = node_response_error(400, "options must be a map of strings");
        goto fail;
    }
    if (json_object_size(opts) > 0) {
        json_t *merged = m->options ? json_deep_copy(m->options) : json_object();
        const char *nv = json_string_value(json_object_get(opts, "version"));
        if (merged == NULL) {
            json_decref(opts);
            goto fail;
        }
        if (nv != NULL) {
            const char *cur = json_string_value(json_object_get(m->options, "version"));
            long curv = cur && cur[0] ? strtol(cur, NULL, 10) : 0;
            char *end = NULL;
            long newv = strtol(nv, &end, 10);
            if (nv[0] == '\0' || *end != '\0' || (newv != 1 && newv != 2)) {
                *resp = node_response_error(400, "invalid version provided: %s", nv);
            } else if (curv > newv) {
                *resp = node_response_error(400, "cannot downgrade mount from version %ld", curv);
            } else if (newv == 2 && strcmp(m->type, "kv") == 0) {
                *resp = node_response_error(400, "kv version 2 is not supported yet");
            } else if (curv < newv) {
                *warnings = json_pack("[s+]", "Upgrading mount from version ",
                                      curv == 0 ? "0 to version 1" : "1 to version 2",
                                      ". This mount will be unavailable for a brief period and "
                                      "will resume service shortly.");
            }
            if (*resp != NULL) {
                json_decref(merged);
                json_decref(opts);
                goto fail;
            }
        }
        const char *k;
        json_t *ov;
        json_object_foreach(opts, k, ov)
        {
            if (json_string_length(ov) == 0 && strcmp(k, "version") != 0) {
                json_object_del(merged, k);
            } else {
                json_object_set(merged, k, ov);
            }
        }
        json_object_set_new(entry, "options", json_object_size(merged) ? merged : json_null());
        if (json_object_size(merged) == 0) {
            json_decref(merged);
        }
    }
    json_decref(opts);
    return entry;
fail:
    json_decref(*warnings);
    *warnings = NULL;
    json_decref(entry);
    return NULL;
}

static void tune_write(struct node_core *core,
                       struct node_request *req,
                       const char *path,
                       unsigned attempt)
{
    struct node_mount *m = node__mount_match(core, path);
    json_t *warnings = NULL;
    struct node_response *resp = NULL;
    json_t *entry = NULL;
    if (m == NULL) {
        respond(req,
                node_response_error(400, "tune of path \"%s\" failed: no mount entry found", path));
        return;
    }
    entry = tune_entry(m, req->data, path, &warnings, &resp);
    if (entry == NULL) {
        respond(req, resp);
        return;
    }
    struct mount_op *op = op_new(core, req, OP_TUNE, attempt);
    struct rft_batch *b = rft_batch_new();
    int rv = op && b ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        rv = node__mount_table_put(core, b, m->local, m, entry);
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        op_free(op);
        json_decref(entry);
        json_decref(warnings);
        respond(req, rv == CF_ENOMEM ? NULL : commit_error(rv));
        return;
    }
    snprintf(op->uuid, sizeof(op->uuid), "%s", m->uuid);
    op->entry = entry;
    op->warnings = warnings;
    op_commit(op, b);
}

/* Routing ------------------------------------------------------------------------------ */

static void unsupported(struct node_request *req)
{
    respond(req, node_response_error(405, "unsupported operation"));
}

static bool is_write(const struct node_request *req)
{
    return req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
}

/* sys/mounts/<rest>: rest is "", "<path>" or "<path>/tune". */
static void mounts_route(struct node_core *core,
                         struct node_request *req,
                         const char *rest,
                         unsigned attempt)
{
    if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
        if (req->op == NODE_OP_READ) {
            mounts_read(core, req);
        } else {
            unsupported(req);
        }
        return;
    }
    size_t n = strlen(rest);
    bool tune = n > 5 && strcmp(rest + n - 5, "/tune") == 0;
    char *raw = cf_strndup(rest, tune ? n - 5 : n);
    char *path = raw ? sanitize_path(raw) : NULL;
    cf_free(raw);
    if (path == NULL) {
        respond(req, NULL);
        return;
    }
    if (tune && req->op == NODE_OP_READ) {
        tune_read(core, req, path);
    } else if (tune && is_write(req)) {
        tune_write(core, req, path, attempt);
    } else if (tune) {
        unsupported(req);
    } else if (req->op == NODE_OP_READ) {
        mount_read(core, req, path);
    } else if (is_write(req)) {
        mount_enable(core, req, path, attempt);
    } else if (req->op == NODE_OP_DELETE) {
        mount_disable(core, req, path, attempt);
    } else {
        unsupported(req);
    }
    cf_free(path);
}

static bool dispatch(struct node_core *core, struct node_request *req, unsigned attempt)
{
    const char *p = req->path;
    if (strcmp(p, "sys/mounts") == 0) {
        mounts_route(core, req, "", attempt);
        return true;
    }
    if (has_prefix(p, "sys/mounts/")) {
        mounts_route(core, req, p + strlen("sys/mounts/"), attempt);
        return true;
    }
    if (strcmp(p, "sys/remount") == 0) {
        if (is_write(req)) {
            remount(core, req, attempt);
        } else {
            unsupported(req);
        }
        return true;
    }
    if (has_prefix(p, "sys/remount/status/") && p[strlen("sys/remount/status/")] != '\0') {
        if (req->op == NODE_OP_READ) {
            remount_status(core, req, p + strlen("sys/remount/status/"));
        } else {
            unsupported(req);
        }
        return true;
    }
    if (strcmp(p, "sys/internal/ui/mounts") == 0 || strcmp(p, "sys/internal/ui/mounts/") == 0) {
        if (req->op == NODE_OP_READ) {
            ui_mounts_read(core, req);
        } else {
            unsupported(req);
        }
        return true;
    }
    if (has_prefix(p, "sys/internal/ui/mounts/")) {
        if (req->op != NODE_OP_READ) {
            unsupported(req);
            return true;
        }
        char *path = sanitize_path(p + strlen("sys/internal/ui/mounts/"));
        if (path == NULL) {
            respond(req, NULL);
            return true;
        }
        ui_mount_read(core, req, path);
        cf_free(path);
        return true;
    }
    return false;
}

bool node__mount_api_handle(struct node_core *core, struct node_request *req)
{
    return dispatch(core, req, 0);
}
