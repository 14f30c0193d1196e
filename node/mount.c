/*
 * The mount table: which engine answers which path prefix. Stored barrier-encrypted at
 * core/mounts as a JSON array of {path, type, uuid, accessor, description, options, local,
 * seal_wrap}; loaded at unseal into a linked list of live mounts, each with its engine
 * instance and storage view under logical/<uuid>/. The system backend (sys/) is built in and
 * never stored. The mount API (sys/mounts) arrives with the tokens/mounts issue and takes this
 * table over.
 */
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "node/internal.h"

#define CF_LOG_MODULE "mount"
#include "lib/log.h"

static json_t *mount_entry(const char *path, const char *type, const char *description, bool local)
{
    char uuid[37];
    uint8_t r[4];
    char hex[9];
    char accessor[64];
    if (cf_uuid_v4(uuid) != CF_OK || cf_random(r, sizeof(r)) != CF_OK) {
        return NULL;
    }
    cf_hex_encode(r, sizeof(r), hex);
    snprintf(accessor, sizeof(accessor), "%s_%s", type, hex);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:n,s:b,s:b}", "path", path, "type", type, "uuid", uuid,
                     "accessor", accessor, "description", description, "options", "local", local,
                     "seal_wrap", 0);
}

json_t *node__mounts_default(struct node_core *core, bool with_kv)
{
    (void)core;
    json_t *arr = json_array();
    if (arr == NULL) {
        return NULL;
    }
    if (with_kv) {
        json_t *kv = mount_entry("secret/", "kv", "key/value secret storage", false);
        if (kv == NULL || json_array_append_new(arr, kv) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static const struct node_engine_ops *find_engine(struct node_core *core, const char *type)
{
    for (size_t i = 0; i < core->n_engines; i++) {
        if (strcmp(core->engines[i]->type, type) == 0) {
            return core->engines[i];
        }
    }
    return NULL;
}

static void mount_free(struct node_mount *m)
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
    cf_free(m->view.prefix);
    cf_free(m);
}

static int mount_add(struct node_core *core, const json_t *e, char errmsg[CF_ERRMSG_SIZE])
{
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *uuid = json_string_value(json_object_get(e, "uuid"));
    if (path == NULL || type == NULL || uuid == NULL) {
        cf_errmsg_printf(errmsg, "mount table entry lacks path, type or uuid");
        return CF_ECORRUPT;
    }
    const struct node_engine_ops *ops = find_engine(core, type);
    if (ops == NULL) {
        cf_errmsg_printf(errmsg, "mount %s: unknown engine type %s", path, type);
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
    m->options = json_deep_copy(json_object_get(e, "options"));
    m->local = json_is_true(json_object_get(e, "local"));
    m->seal_wrap = json_is_true(json_object_get(e, "seal_wrap"));
    m->ops = ops;
    m->view.core = core;
    size_t n = strlen(NODE_PREFIX_LOGICAL) + strlen(uuid) + 2;
    m->view.prefix = cf_malloc(n);
    if (m->path == NULL || m->type == NULL || m->uuid == NULL || m->accessor == NULL ||
        m->description == NULL || m->view.prefix == NULL) {
        mount_free(m);
        return CF_ENOMEM;
    }
    snprintf(m->view.prefix, n, "%s%s/", NODE_PREFIX_LOGICAL, uuid);
    int rv = ops->create(&m->view, m->options, &m->state, errmsg);
    if (rv != CF_OK) {
        m->state = NULL;
        mount_free(m);
        return rv;
    }
    /* Keep the list ordered by descending path length: the first prefix match is the longest. */
    struct node_mount **pp = &core->mounts;
    while (*pp != NULL && strlen((*pp)->path) >= strlen(m->path)) {
        pp = &(*pp)->next;
    }
    m->next = *pp;
    *pp = m;
    return CF_OK;
}

int node__mounts_load(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t *val = NULL;
    size_t len = 0;
    json_t *table = NULL;
    int rv = node__get(core, NODE_KEY_MOUNTS, &val, &len);
    if (rv == CF_ENOTFOUND) {
        table = json_array();
        rv = table ? CF_OK : CF_ENOMEM;
    } else if (rv == CF_OK) {
        table = json_loadb((const char *)val, len, 0, NULL);
        rv = json_is_array(table) ? CF_OK : CF_ECORRUPT;
    }
    cf_free(val);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "read mount table: %s", cf_strerror(rv));
        json_decref(table);
        return rv;
    }
    /* The system backend is always mounted. */
    json_t *sys = json_pack("{s:s,s:s,s:s,s:s,s:s}", "path", "sys/", "type", "system", "uuid",
                            "system", "accessor", "system_00000000", "description",
                            "system endpoints used for control, policy and debugging");
    if (sys == NULL) {
        json_decref(table);
        return CF_ENOMEM;
    }
    rv = mount_add(core, sys, errmsg);
    json_decref(sys);
    size_t i;
    json_t *e;
    json_array_foreach(table, i, e)
    {
        if (rv != CF_OK) {
            break;
        }
        rv = mount_add(core, e, errmsg);
    }
    json_decref(table);
    if (rv != CF_OK) {
        node__mounts_unload(core);
    }
    return rv;
}

void node__mounts_unload(struct node_core *core)
{
    while (core->mounts != NULL) {
        struct node_mount *m = core->mounts;
        core->mounts = m->next;
        mount_free(m);
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

json_t *node_core_mounts_json(struct node_core *core)
{
    json_t *out = json_object();
    for (struct node_mount *m = core->mounts; out != NULL && m != NULL; m = m->next) {
        json_t *info =
            json_pack("{s:s,s:{s:i,s:b,s:i},s:s,s:b,s:b,s:O?,s:s,s:s,s:b,s:s,s:s}", "accessor",
                      m->accessor, "config", "default_lease_ttl", 0, "force_no_cache", 0,
                      "max_lease_ttl", 0, "description", m->description, "external_entropy_access",
                      0, "local", m->local, "options", m->options, "plugin_version", "",
                      "running_plugin_version", "v" COFFER_VERSION "+builtin", "seal_wrap",
                      m->seal_wrap, "type", m->type, "uuid", m->uuid);
        if (info == NULL || json_object_set_new(out, m->path, info) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
