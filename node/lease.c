/*
 * The lease store: encoding of sys/expire/id/<lease_id> entries, reads, puts and listings
 * (lease.h). Revocation and creation live in lease_revoke.c.
 */
#include "node/lease.h"

#include <stdio.h>
#include <string.h>

#include "lib/mem.h"
#include "node/barrier.h"
#include "node/internal.h"

void node__lease_clear(struct node_lease *l)
{
    if (l == NULL) {
        return;
    }
    cf_free(l->lease_id);
    cf_free(l->path);
    cf_free(l->mount);
    json_decref(l->secret);
    memset(l, 0, sizeof(*l));
}

json_t *node__lease_encode(const struct node_lease *l)
{
    if (l->lease_id == NULL || l->path == NULL || l->mount == NULL) {
        return NULL;
    }
    json_t *secret = l->secret != NULL ? json_deep_copy(l->secret) : json_object();
    if (secret == NULL) {
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:s, s:o}", "lease_id", l->lease_id,
                     "path", l->path, "mount", l->mount, "mount_uuid", l->mount_uuid, "issue_time",
                     (json_int_t)l->issue_ns, "expire_time", (json_int_t)l->expire_ns, "renewable",
                     l->renewable, "token_hash", l->token_hash, "secret", secret);
}

static char *str_field(const json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s != NULL ? cf_strdup(s) : NULL;
}

int node__lease_decode(const json_t *j, struct node_lease *out)
{
    memset(out, 0, sizeof(*out));
    const json_t *issue = json_object_get(j, "issue_time");
    const json_t *expire = json_object_get(j, "expire_time");
    const json_t *renew = json_object_get(j, "renewable");
    const json_t *secret = json_object_get(j, "secret");
    const char *th = json_string_value(json_object_get(j, "token_hash"));
    if (!json_is_object(j) || !json_is_integer(issue) || !json_is_integer(expire) ||
        !json_is_boolean(renew) || !json_is_object(secret) || th == NULL ||
        strlen(th) >= sizeof(out->token_hash)) {
        return CF_EINVAL;
    }
    out->lease_id = str_field(j, "lease_id");
    out->path = str_field(j, "path");
    out->mount = str_field(j, "mount");
    if (out->lease_id == NULL || out->path == NULL || out->mount == NULL ||
        !node__lease_id_valid(out->lease_id)) {
        node__lease_clear(out);
        return CF_EINVAL;
    }
    const char *mu = json_string_value(json_object_get(j, "mount_uuid"));
    snprintf(out->mount_uuid, sizeof(out->mount_uuid), "%s", mu != NULL ? mu : "");
    out->issue_ns = json_integer_value(issue);
    out->expire_ns = json_integer_value(expire);
    out->renewable = json_is_true(renew);
    snprintf(out->token_hash, sizeof(out->token_hash), "%s", th);
    out->secret = json_deep_copy(secret);
    if (out->secret == NULL) {
        node__lease_clear(out);
        return CF_ENOMEM;
    }
    return CF_OK;
}

bool node__lease_id_valid(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > LEASE_ID_MAX || id[0] == '/' || id[n - 1] == '/' ||
        strstr(id, "//") != NULL) {
        return false;
    }
    for (const char *p = id; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            return false;
        }
    }
    /* No "." or ".." segment. */
    const char *seg = id;
    while (seg != NULL) {
        const char *end = strchr(seg, '/');
        size_t len = end != NULL ? (size_t)(end - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
            return false;
        }
        seg = end != NULL ? end + 1 : NULL;
    }
    return true;
}

int node__lease_get(struct node_core *core, const char *lease_id, struct node_lease *out)
{
    memset(out, 0, sizeof(*out));
    if (!node__lease_id_valid(lease_id)) {
        return CF_ENOTFOUND;
    }
    char key[sizeof(LEASE_PREFIX) + LEASE_ID_MAX];
    snprintf(key, sizeof(key), "%s%s", LEASE_PREFIX, lease_id);
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node__get(core, key, &val, &len);
    if (rv != CF_OK) {
        return rv;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    rv = j != NULL ? node__lease_decode(j, out) : CF_ECORRUPT;
    json_decref(j);
    return rv;
}

int node__lease_batch_put(struct node_core *core, struct rft_batch *b, const struct node_lease *l)
{
    if (!node__lease_id_valid(l->lease_id)) {
        return CF_EINVAL;
    }
    json_t *j = node__lease_encode(l);
    if (j == NULL) {
        return CF_ENOMEM;
    }
    char key[sizeof(LEASE_PREFIX) + LEASE_ID_MAX];
    snprintf(key, sizeof(key), "%s%s", LEASE_PREFIX, l->lease_id);
    int rv = node__batch_put_json(core, b, key, j);
    json_decref(j);
    return rv;
}

struct list_ctx
{
    size_t skip;
    json_t *keys;
    int error;
};

static int list_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct list_ctx *c = arg;
    (void)val;
    (void)len;
    const char *rest = key + c->skip;
    const char *slash = strchr(rest, '/');
    size_t n = slash != NULL ? (size_t)(slash - rest) + 1 : strlen(rest);
    if (n == 0) {
        return 0;
    }
    json_t *name = json_stringn(rest, n);
    size_t last = json_array_size(c->keys);
    const char *prev = last > 0 ? json_string_value(json_array_get(c->keys, last - 1)) : NULL;
    if (name == NULL) {
        c->error = CF_ENOMEM;
        return 1;
    }
    /* Keys arrive sorted, so a folder's entries are adjacent. */
    if (prev != NULL && strcmp(prev, json_string_value(name)) == 0) {
        json_decref(name);
        return 0;
    }
    json_array_append_new(c->keys, name);
    return 0;
}

int node__lease_list(struct node_core *core, const char *prefix, json_t **keys)
{
    char p[sizeof(LEASE_PREFIX) + LEASE_ID_MAX];
    snprintf(p, sizeof(p), "%s%s", LEASE_PREFIX, prefix);
    struct list_ctx c = {.skip = strlen(p), .keys = json_array()};
    if (c.keys == NULL) {
        return CF_ENOMEM;
    }
    rft_store_scan(core->store, p, NULL, list_visit, &c);
    if (c.error != CF_OK) {
        json_decref(c.keys);
        return c.error;
    }
    *keys = c.keys;
    return CF_OK;
}

static int count_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    (void)key;
    (void)val;
    (void)len;
    (*(size_t *)arg)++;
    return 0;
}

size_t node__lease_count(struct node_core *core)
{
    size_t n = 0;
    rft_store_scan(core->store, LEASE_PREFIX, NULL, count_visit, &n);
    return n;
}
