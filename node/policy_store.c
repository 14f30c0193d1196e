/*
 * The policy store: stored policies, the built-ins and the caches (policy_store.h).
 */
#include "node/policy_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "node/acl.h"
#include "node/barrier.h"
#include "node/internal.h"
#include "node/policy.h"

#define CF_LOG_MODULE "policy"
#include "lib/log.h"

#define POLICY_CACHE 256
#define ACL_CACHE 64
#define VERSION_BUILTIN UINT64_MAX

struct cached_policy
{
    char *name;
    uint64_t version;
    struct policy *p;
};

struct cached_acl
{
    char *key; /* "name@version\n..." */
    struct acl *acl;
};

struct node_policy_store
{
    struct cached_policy pol[POLICY_CACHE];
    size_t next_pol;
    struct cached_acl acls[ACL_CACHE];
    size_t next_acl;
};

struct node_policy_store *node__policy_store_new(void)
{
    return cf_calloc(1, sizeof(struct node_policy_store));
}

void node__policy_store_clear(struct node_policy_store *ps)
{
    if (ps == NULL) {
        return;
    }
    for (size_t i = 0; i < POLICY_CACHE; i++) {
        cf_free(ps->pol[i].name);
        policy_free(ps->pol[i].p);
    }
    for (size_t i = 0; i < ACL_CACHE; i++) {
        cf_free(ps->acls[i].key);
        acl_free(ps->acls[i].acl);
    }
    memset(ps, 0, sizeof(*ps));
}

void node__policy_store_free(struct node_policy_store *ps)
{
    node__policy_store_clear(ps);
    cf_free(ps);
}

/* The FSM version of a stored policy; 0 when none is stored. */
static uint64_t stored_version(struct node_core *core, const char *name)
{
    char key[512];
    uint64_t version = 0;
    if (strlen(name) > 256) {
        return 0;
    }
    snprintf(key, sizeof(key), "%s%s", POLICY_PREFIX, name);
    if (rft_store_get(core->store, key, NULL, NULL, &version) != CF_OK) {
        return 0;
    }
    return version;
}

/* Version that identifies the policy's current text: the stored version, VERSION_BUILTIN for
 * a built-in text, 0 when the policy does not exist. */
static uint64_t policy_version(struct node_core *core, const char *name)
{
    if (strcmp(name, "response-wrapping") == 0) {
        return VERSION_BUILTIN;
    }
    uint64_t v = stored_version(core, name);
    if (v == 0 && strcmp(name, "default") == 0) {
        return VERSION_BUILTIN;
    }
    return v;
}

static struct policy *load_policy(struct node_core *core, const char *name, uint64_t version)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct policy *p = NULL;
    if (version == VERSION_BUILTIN) {
        const char *text =
            strcmp(name, "default") == 0 ? policy_default_text() : policy_response_wrapping_text();
        if (policy_parse(name, text, strlen(text), &p, errmsg) != CF_OK) {
            CF_LOG(CF_LOG_ERROR, "built-in policy %s: %s", name, errmsg);
            return NULL;
        }
        return p;
    }
    char key[512];
    snprintf(key, sizeof(key), "%s%s", POLICY_PREFIX, name);
    uint8_t *val = NULL;
    size_t len = 0;
    if (node__get(core, key, &val, &len) != CF_OK) {
        return NULL;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    const char *text = json_string_value(json_object_get(j, "policy"));
    if (text == NULL || policy_parse(name, text, strlen(text), &p, errmsg) != CF_OK) {
        CF_LOG(CF_LOG_WARN, "stored policy %s is unusable", name);
        p = NULL;
    }
    json_decref(j);
    return p;
}

static const struct policy *get_policy(struct node_core *core, const char *name, uint64_t version)
{
    struct node_policy_store *ps = core->policies;
    for (size_t i = 0; i < POLICY_CACHE; i++) {
        if (ps->pol[i].name != NULL && ps->pol[i].version == version &&
            strcmp(ps->pol[i].name, name) == 0) {
            return ps->pol[i].p;
        }
    }
    struct policy *p = load_policy(core, name, version);
    char *n = cf_strdup(name);
    if (p == NULL || n == NULL) {
        policy_free(p);
        cf_free(n);
        return NULL;
    }
    struct cached_policy *slot = &ps->pol[ps->next_pol];
    ps->next_pol = (ps->next_pol + 1) % POLICY_CACHE;
    cf_free(slot->name);
    policy_free(slot->p);
    slot->name = n;
    slot->version = version;
    slot->p = p;
    return p;
}

bool node__policy_exists(struct node_core *core, const char *name)
{
    return strcmp(name, "root") == 0 || policy_version(core, name) != 0;
}

const struct acl *node__acl_for(struct node_core *core, const json_t *policies)
{
    struct node_policy_store *ps = core->policies;
    struct cf_buf key;
    cf_buf_init(&key);
    size_t n = json_array_size(policies);
    if (n > 64) {
        n = 64;
    }
    uint64_t versions[64];
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(policies, i));
        char tag[48];
        versions[i] =
            name ? (strcmp(name, "root") == 0 ? VERSION_BUILTIN : policy_version(core, name)) : 0;
        snprintf(tag, sizeof(tag), "@%" PRIu64 "\n", versions[i]);
        if (name == NULL || cf_buf_append(&key, name, strlen(name)) != CF_OK ||
            cf_buf_append(&key, tag, strlen(tag)) != CF_OK) {
            cf_buf_close(&key);
            return NULL;
        }
    }
    if (cf_buf_append(&key, "", 1) != CF_OK) {
        cf_buf_close(&key);
        return NULL;
    }
    const char *k = (const char *)key.data;
    for (size_t i = 0; i < ACL_CACHE; i++) {
        if (ps->acls[i].key != NULL && strcmp(ps->acls[i].key, k) == 0) {
            cf_buf_close(&key);
            return ps->acls[i].acl;
        }
    }
    const struct policy *list[64];
    size_t m = 0;
    struct policy *root = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(policies, i));
        if (strcmp(name, "root") == 0) {
            char errmsg[CF_ERRMSG_SIZE];
            if (root == NULL && policy_parse("root", "", 0, &root, errmsg) == CF_OK) {
                list[m++] = root;
            }
            continue;
        }
        if (versions[i] == 0) {
            continue; /* deleted or never created: contributes nothing */
        }
        const struct policy *p = get_policy(core, name, versions[i]);
        if (p != NULL) {
            list[m++] = p;
        }
    }
    struct acl *acl = NULL;
    int rv = acl_new(list, m, &acl);
    policy_free(root);
    char *kcopy = rv == CF_OK ? cf_strdup(k) : NULL;
    cf_buf_close(&key);
    if (kcopy == NULL) {
        acl_free(acl);
        return NULL;
    }
    struct cached_acl *slot = &ps->acls[ps->next_acl];
    ps->next_acl = (ps->next_acl + 1) % ACL_CACHE;
    cf_free(slot->key);
    acl_free(slot->acl);
    slot->key = kcopy;
    slot->acl = acl;
    return acl;
}
