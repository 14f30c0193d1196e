/*
 * The mount table: which engine answers which path prefix. Two barrier-encrypted JSON arrays
 * hold it: core/mounts (replicated mounts) and core/local-mounts (local:true mounts, which stay
 * in their cluster). Each entry is {path, type, uuid, accessor, description, config, options,
 * local, seal_wrap, external_entropy_access}; docs/formats/storage-layout.md has the details.
 * At unseal both are loaded into one linked list of live mounts, longest path first, each with
 * its engine instance and storage view under logical/<uuid>/. The system backend (sys/) is
 * built in and never stored.
 *
 * Changes to the table (node/mount_api.c) are conditional puts on the table's raft version:
 * two concurrent changes cannot both commit on the same base, so one never undoes the other;
 * the loser sees CF_ECONFLICT and starts again from the updated table. The in-memory list
 * changes only once a commit succeeded.
 */
#include <stdio.h>
#include <string.h>

#include "lib/json.h"
#include "lib/crypto.h"
#include "node/barrier.h"
#include "node/internal.h"

#define CF_LOG_MODULE "mount"
#include "lib/log.h"

#define CUBBYHOLE_DESCRIPTION "per-token private secret storage"

const struct node_engine_ops *node__engine_find(struct node_core *core, const char *type)
{
    for (size_t i = 0; i < core->n_engines; i++) {
        if (strcmp(core->engines[i]->type, type) == 0) {
            return core->engines[i];
        }
    }
    return NULL;
}

int node__mount_ids(struct node_core *core, const char *type, char uuid[37], char accessor[64])
{
    int rv = cf_uuid_v4(uuid);
    if (rv != CF_OK) {
        return rv;
    }
    for (;;) {
        uint8_t r[4];
        char hex[9];
        rv = cf_random(r, sizeof(r));
        if (rv != CF_OK) {
            return rv;
        }
        cf_hex_encode(r, sizeof(r), hex);
        snprintf(accessor, 64, "%s_%s", type, hex);
        bool taken = false;
        for (struct node_mount *m = core->mounts; m != NULL && !taken; m = m->next) {
            taken = strcmp(m->accessor, accessor) == 0;
        }
        if (!taken) {
            return CF_OK;
        }
    }
}

static json_t *default_config(void)
{
    return json_pack("{s:i,s:i,s:b}", "default_lease_ttl", 0, "max_lease_ttl", 0, "force_no_cache",
                     0);
}

static json_t *mount_entry(struct node_core *core,
                           const char *path,
                           const char *type,
                           const char *description,
                           bool local)
{
    char uuid[37];
    char accessor[64];
    if (node__mount_ids(core, type, uuid, accessor) != CF_OK) {
        return NULL;
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:n,s:b,s:b,s:b}", "path", path, "type", type,
                     "uuid", uuid, "accessor", accessor, "description", description, "config",
                     default_config(), "options", "local", local, "seal_wrap", 0,
                     "external_entropy_access", 0);
}

json_t *node__mounts_default(struct node_core *core, bool with_kv)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return NULL;
    }
    json_t *cubby = mount_entry(core, "cubbyhole/", "cubbyhole", CUBBYHOLE_DESCRIPTION, true);
    if (cubby == NULL || json_array_append_new(arr, cubby) != 0) {
        json_decref(arr);
        return NULL;
    }
    if (with_kv) {
        json_t *kv = mount_entry(core, "secret/", "kv", "key/value secret storage", false);
        if (kv == NULL || json_array_append_new(arr, kv) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

void node__mount_free(struct node_mount *m)
{
    if (m == NULL) {
        return;
    }
    if (m->ops != NULL && m->state != NULL) {
        m->ops->destroy(m->state);
    }
    cf_free(m->path);
    cf_free(m->type);
    cf_free(m->uuid);
    cf_free(m->accessor);
    cf_free(m->description);
    json_decref(m->options);
    json_decref(m->config);
    cf_free(m->view.prefix);
    cf_free(m);
}

/* A TTL of the stored config: a non-negative integer of seconds; absent = 0. */
static int config_ttl(const json_t *config, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(config, key);
    if (v == NULL || json_is_null(v)) {
        *out = 0;
        return CF_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return CF_ECORRUPT;
    }
    *out = json_integer_value(v);
    return CF_OK;
}

int node__mount_new(struct node_core *core,
                    const json_t *e,
                    struct node_mount **out,
                    char errmsg[CF_ERRMSG_SIZE])
{
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *uuid = json_string_value(json_object_get(e, "uuid"));
    if (path == NULL || type == NULL || uuid == NULL) {
        cf_errmsg_printf(errmsg, "mount table entry lacks path, type or uuid");
        return CF_ECORRUPT;
    }
    const struct node_engine_ops *ops = node__engine_find(core, type);
    if (ops == NULL) {
        cf_errmsg_printf(errmsg, "mount %s: unknown engine type %s", path, type);
        return CF_ECORRUPT;
    }
    const json_t *config = json_object_get(e, "config");
    const json_t *options = json_object_get(e, "options");
    if ((config != NULL && !json_is_object(config) && !json_is_null(config)) ||
        (options != NULL && !json_is_object(options) && !json_is_null(options))) {
        cf_errmsg_printf(errmsg, "mount %s: config or options is not an object", path);
        return CF_ECORRUPT;
    }
    struct node_mount *m = cf_calloc(1, sizeof(*m));
    if (m == NULL) {
        return CF_ENOMEM;
    }
    const char *acc = json_string_value(json_object_get(e, "accessor"));
    const char *desc = json_string_value(json_object_get(e, "description"));
    m->path = cf_strdup(path);
    m->type = cf_strdup(type);
    m->uuid = cf_strdup(uuid);
    m->accessor = cf_strdup(acc ? acc : "");
    m->description = cf_strdup(desc ? desc : "");
    m->options = json_is_object(options) ? json_deep_copy(options) : NULL;
    m->config = json_is_object(config) ? json_deep_copy(config) : default_config();
    m->local = json_is_true(json_object_get(e, "local"));
    m->seal_wrap = json_is_true(json_object_get(e, "seal_wrap"));
    m->external_entropy_access = json_is_true(json_object_get(e, "external_entropy_access"));
    m->ops = ops;
    m->view.core = core;
    m->view.seal_wrap = m->seal_wrap;
    size_t n = strlen(NODE_PREFIX_LOGICAL) + strlen(uuid) + 2;
    m->view.prefix = cf_malloc(n);
    if (m->path == NULL || m->type == NULL || m->uuid == NULL || m->accessor == NULL ||
        m->description == NULL || m->view.prefix == NULL || m->config == NULL ||
        (json_is_object(options) && m->options == NULL)) {
        node__mount_free(m);
        return CF_ENOMEM;
    }
    /* Old tables have no TTL keys: complete the config so that every reader sees all three. */
    if ((json_object_get(m->config, "force_no_cache") == NULL &&
         json_object_set_new(m->config, "force_no_cache", json_false()) != 0) ||
        config_ttl(m->config, "default_lease_ttl", &m->default_lease_ttl_s) != CF_OK ||
        config_ttl(m->config, "max_lease_ttl", &m->max_lease_ttl_s) != CF_OK ||
        json_object_set_new(m->config, "default_lease_ttl", json_integer(m->default_lease_ttl_s)) !=
            0 ||
        json_object_set_new(m->config, "max_lease_ttl", json_integer(m->max_lease_ttl_s)) != 0) {
        cf_errmsg_printf(errmsg, "mount %s: bad lease TTL in config", path);
        node__mount_free(m);
        return CF_ECORRUPT;
    }
    snprintf(m->view.prefix, n, "%s%s/", NODE_PREFIX_LOGICAL, uuid);
    int rv = ops->create(&m->view, m->options, &m->state, errmsg);
    if (rv != CF_OK) {
        m->state = NULL;
        node__mount_free(m);
        return rv;
    }
    *out = m;
    return CF_OK;
}

void node__mount_insert(struct node_core *core, struct node_mount *m)
{
    /* Keep the list ordered by descending path length: the first prefix match is the longest. */
    struct node_mount **pp = &core->mounts;
    while (*pp != NULL && strlen((*pp)->path) >= strlen(m->path)) {
        pp = &(*pp)->next;
    }
    m->next = *pp;
    *pp = m;
}

void node__mount_unlink(struct node_core *core, struct node_mount *m)
{
    for (struct node_mount **pp = &core->mounts; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            m->next = NULL;
            return;
        }
    }
}

static int mount_add(struct node_core *core, const json_t *e, char errmsg[CF_ERRMSG_SIZE])
{
    const char *path = json_string_value(json_object_get(e, "path"));
    if (path != NULL && node__mount_find(core, path) != NULL) {
        cf_errmsg_printf(errmsg, "mount table holds %s twice", path);
        return CF_ECORRUPT;
    }
    struct node_mount *m = NULL;
    int rv = node__mount_new(core, e, &m, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    node__mount_insert(core, m);
    return CF_OK;
}

/* Reads one stored table: an array, or a new empty one when the key is absent. */
static int read_table(struct node_core *core,
                      const char *key,
                      json_t **out,
                      char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t *val = NULL;
    size_t len = 0;
    json_t *table = NULL;
    int rv = node__get(core, key, &val, &len);
    if (rv == CF_ENOTFOUND) {
        table = json_array();
        rv = table ? CF_OK : CF_ENOMEM;
    } else if (rv == CF_OK) {
        table = json_loadb((const char *)val, len, 0, NULL);
        rv = json_is_array(table) ? CF_OK : CF_ECORRUPT;
    }
    cf_free(val);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "read %s: %s", key, cf_strerror(rv));
        json_decref(table);
        return rv;
    }
    *out = table;
    return CF_OK;
}

static void rewrite_done_cb(void *arg, int status)
{
    (void)arg;
    if (status == CF_OK) {
        CF_LOG(CF_LOG_INFO, "mount table rewritten in the current layout");
    } else {
        CF_LOG(CF_LOG_WARN, "mount table rewrite failed: %s (retried at next unseal)",
               cf_strerror(status));
    }
}

/* Writes both tables from the live list, in the background. */
static void rewrite_tables(struct node_core *core)
{
    struct rft_batch *b = rft_batch_new();
    int rv = b ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        rv = node__mount_table_put(core, b, false, NULL, NULL);
    }
    if (rv == CF_OK) {
        rv = node__mount_table_put(core, b, true, NULL, NULL);
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        rewrite_done_cb(NULL, rv);
        return;
    }
    node__commit(core, b, rewrite_done_cb, NULL);
}

/* Adds the entries of one stored table; *misplaced is set for an entry of the other class. */
static int add_table(struct node_core *core,
                     const json_t *table,
                     bool local,
                     bool *misplaced,
                     char errmsg[CF_ERRMSG_SIZE])
{
    size_t i;
    const json_t *e;
    json_array_foreach(table, i, e)
    {
        if (json_is_true(json_object_get(e, "local")) != local) {
            *misplaced = true;
        }
        int rv = mount_add(core, e, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

int node__mounts_load(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    json_t *repl = NULL;
    json_t *local = NULL;
    json_t *sys = NULL;
    int rv = read_table(core, NODE_KEY_MOUNTS, &repl, errmsg);
    if (rv == CF_OK) {
        rv = read_table(core, NODE_KEY_LOCAL_MOUNTS, &local, errmsg);
    }
    if (rv == CF_OK) {
        /* The system backend is always mounted. */
        sys = json_pack("{s:s,s:s,s:s,s:s,s:s}", "path", "sys/", "type", "system", "uuid", "system",
                        "accessor", "system_00000000", "description",
                        "system endpoints used for control, policy and debugging");
        rv = sys ? mount_add(core, sys, errmsg) : CF_ENOMEM;
    }
    bool rewrite = false;
    if (rv == CF_OK) {
        rv = add_table(core, repl, false, &rewrite, errmsg);
    }
    if (rv == CF_OK) {
        rv = add_table(core, local, true, &rewrite, errmsg);
    }
    if (rv == CF_OK && node__mount_cubbyhole(core) == NULL &&
        node__engine_find(core, "cubbyhole") != NULL) {
        /* A table from before cubbyhole existed. */
        json_t *cubby = mount_entry(core, "cubbyhole/", "cubbyhole", CUBBYHOLE_DESCRIPTION, true);
        rv = cubby ? mount_add(core, cubby, errmsg) : CF_ENOMEM;
        json_decref(cubby);
        rewrite = true;
    }
    json_decref(sys);
    json_decref(repl);
    json_decref(local);
    if (rv != CF_OK) {
        node__mounts_unload(core);
        return rv;
    }
    if (rewrite) {
        rewrite_tables(core);
    }
    return CF_OK;
}

void node__mounts_unload(struct node_core *core)
{
    while (core->mounts != NULL) {
        struct node_mount *m = core->mounts;
        core->mounts = m->next;
        node__mount_free(m);
    }
}

struct node_mount *node__mount_match(struct node_core *core, const char *path)
{
    for (struct node_mount *m = core->mounts; m != NULL; m = m->next) {
        size_t n = strlen(m->path);
        /* "secret/" matches "secret/x" and also "secret" (the mount root without slash). */
        if (strncmp(path, m->path, n) == 0 ||
            (strlen(path) == n - 1 && strncmp(path, m->path, n - 1) == 0)) {
            return m;
        }
    }
    return NULL;
}

struct node_mount *node__mount_find(struct node_core *core, const char *path)
{
    for (struct node_mount *m = core->mounts; m != NULL; m = m->next) {
        if (strcmp(m->path, path) == 0) {
            return m;
        }
    }
    return NULL;
}

struct node_mount *node__mount_find_uuid(struct node_core *core, const char *uuid)
{
    for (struct node_mount *m = core->mounts; m != NULL; m = m->next) {
        if (strcmp(m->uuid, uuid) == 0) {
            return m;
        }
    }
    return NULL;
}

struct node_mount *node__mount_cubbyhole(struct node_core *core)
{
    for (struct node_mount *m = core->mounts; m != NULL; m = m->next) {
        if (strcmp(m->type, "cubbyhole") == 0) {
            return m;
        }
    }
    return NULL;
}

void node__mount_ttls(const struct node_core *core,
                      const struct node_mount *m,
                      int64_t *def_s,
                      int64_t *max_s)
{
    (void)core;
    *def_s = m->default_lease_ttl_s > 0 ? m->default_lease_ttl_s : NODE_SYSTEM_LEASE_S;
    *max_s = m->max_lease_ttl_s > 0 ? m->max_lease_ttl_s : NODE_SYSTEM_LEASE_S;
}

const json_t *node__mount_config(const struct node_mount *m)
{
    return m->config;
}

json_t *node__mount_entry_json(const struct node_mount *m)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:O?,s:b,s:b,s:b}", "path", m->path, "type", m->type,
                     "uuid", m->uuid, "accessor", m->accessor, "description", m->description,
                     "config", m->config, "options", m->options, "local", m->local, "seal_wrap",
                     m->seal_wrap, "external_entropy_access", m->external_entropy_access);
}

json_t *node__mount_info_json(const struct node_mount *m)
{
    bool vault_builtin = strcmp(m->type, "system") == 0 || strcmp(m->type, "cubbyhole") == 0;
    json_t *info = json_pack(
        "{s:s,s:o,s:s,s:b,s:b,s:O?,s:s,s:s,s:s,s:b,s:s,s:s}", "accessor", m->accessor, "config",
        json_deep_copy(m->config), "description", m->description, "external_entropy_access",
        m->external_entropy_access, "local", m->local, "options", m->options, "plugin_version", "",
        "running_plugin_version",
        vault_builtin ? "v" COFFER_VERSION "+builtin.vault" : "v" COFFER_VERSION "+builtin",
        "running_sha256", "", "seal_wrap", m->seal_wrap, "type", m->type, "uuid", m->uuid);
    if (info != NULL && strcmp(m->type, "kv") == 0 &&
        json_object_set_new(info, "deprecation_status", json_string("supported")) != 0) {
        json_decref(info);
        return NULL;
    }
    return info;
}

int node__mount_table_put(struct node_core *core,
                          struct rft_batch *b,
                          bool local,
                          const struct node_mount *without,
                          const json_t *extra)
{
    const char *key = local ? NODE_KEY_LOCAL_MOUNTS : NODE_KEY_MOUNTS;
    json_t *arr = json_array();
    int rv = arr ? CF_OK : CF_ENOMEM;
    for (struct node_mount *m = core->mounts; rv == CF_OK && m != NULL; m = m->next) {
        if (m == without || m->local != local || strcmp(m->type, "system") == 0) {
            continue;
        }
        json_t *e = node__mount_entry_json(m);
        if (e == NULL || json_array_append_new(arr, e) != 0) {
            rv = CF_ENOMEM;
        }
    }
    if (rv == CF_OK && extra != NULL && json_array_append(arr, (json_t *)extra) != 0) {
        rv = CF_ENOMEM;
    }
    char *s = rv == CF_OK ? cf_json_dumps(arr, NULL) : NULL;
    json_decref(arr);
    if (rv == CF_OK && s == NULL) {
        rv = CF_ENOMEM;
    }
    uint64_t version = 0;
    if (rv == CF_OK) {
        int grv = rft_store_get(core->store, key, NULL, NULL, &version);
        if (grv == CF_ENOTFOUND) {
            version = 0;
        } else if (grv != CF_OK) {
            rv = grv;
        }
    }
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    if (rv == CF_OK) {
        rv = barrier_encrypt(core->barrier, key, (const uint8_t *)s, strlen(s), &ct, &ctlen);
    }
    if (rv == CF_OK) {
        rv = rft_batch_put_if_version(b, key, ct, ctlen, version);
    }
    cf_free(ct);
    cf_free(s);
    return rv;
}

json_t *node_core_mounts_json(struct node_core *core)
{
    json_t *out = json_object();
    for (struct node_mount *m = core->mounts; out != NULL && m != NULL; m = m->next) {
        json_t *info = node__mount_info_json(m);
        if (info == NULL || json_object_set_new(out, m->path, info) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
