/*
 * ACL merging, matching and request decisions (acl.h).
 */
#include "node/acl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/mem.h"

struct acl_entry
{
    char *pattern;     /* as written, '*' included */
    size_t prefix_len; /* bytes before a trailing '*' (= strlen when not a glob) */
    bool glob;
    bool plus;
    size_t wild_pos; /* index of the first '+' or '*' */
    unsigned n_plus;
    unsigned caps;
    int64_t min_wrap_s;
    int64_t max_wrap_s;
    json_t *allowed;  /* object or NULL */
    json_t *denied;   /* object or NULL */
    json_t *required; /* array or NULL */
    json_t *granting; /* array of policy names */
};

struct acl
{
    bool root;
    struct acl_entry *exact; /* sorted by pattern */
    size_t n_exact;
    struct acl_entry *wild; /* sorted by priority, highest first */
    size_t n_wild;
};

bool acl_is_root(const struct acl *acl)
{
    return acl->root;
}

static void entry_clear(struct acl_entry *e)
{
    cf_free(e->pattern);
    json_decref(e->allowed);
    json_decref(e->denied);
    json_decref(e->required);
    json_decref(e->granting);
}

void acl_free(struct acl *acl)
{
    if (acl == NULL) {
        return;
    }
    for (size_t i = 0; i < acl->n_exact; i++) {
        entry_clear(&acl->exact[i]);
    }
    for (size_t i = 0; i < acl->n_wild; i++) {
        entry_clear(&acl->wild[i]);
    }
    cf_free(acl->exact);
    cf_free(acl->wild);
    cf_free(acl);
}

/* Merging ------------------------------------------------------------------------------------ */

static int64_t lowest_nonzero(int64_t a, int64_t b)
{
    if (a == 0) {
        return b;
    }
    if (b == 0) {
        return a;
    }
    return a < b ? a : b;
}

/* Unites parameter maps: a key with an empty list (any value) stays empty. */
static int merge_params(json_t **dst, const json_t *src)
{
    if (src == NULL) {
        return CF_OK;
    }
    if (*dst == NULL) {
        *dst = json_deep_copy(src);
        return *dst ? CF_OK : CF_ENOMEM;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)src, k, v)
    {
        json_t *have = json_object_get(*dst, k);
        if (have == NULL) {
            if (json_object_set_new(*dst, k, json_deep_copy(v)) != 0) {
                return CF_ENOMEM;
            }
        } else if (json_array_size(have) == 0 || json_array_size(v) == 0) {
            json_array_clear(have);
        } else {
            json_array_extend(have, v);
        }
    }
    return CF_OK;
}

static int merge_rule(struct acl_entry *e, const struct policy_rule *r, const char *policy)
{
    if ((e->caps | r->caps) & ACL_CAP_DENY) {
        e->caps = ACL_CAP_DENY;
    } else {
        e->caps |= r->caps;
    }
    e->min_wrap_s = lowest_nonzero(e->min_wrap_s, r->min_wrap_s);
    e->max_wrap_s = lowest_nonzero(e->max_wrap_s, r->max_wrap_s);
    int rv = merge_params(&e->allowed, r->allowed_params);
    if (rv == CF_OK) {
        rv = merge_params(&e->denied, r->denied_params);
    }
    if (rv == CF_OK && r->required_params != NULL) {
        if (e->required == NULL) {
            e->required = json_array();
        }
        rv = e->required && json_array_extend(e->required, r->required_params) == 0 ? CF_OK
                                                                                    : CF_ENOMEM;
    }
    bool named = false;
    size_t i;
    json_t *g;
    json_array_foreach(e->granting, i, g)
    {
        named = named || strcmp(json_string_value(g), policy) == 0;
    }
    if (rv == CF_OK && !named && json_array_append_new(e->granting, json_string(policy)) != 0) {
        rv = CF_ENOMEM;
    }
    return rv;
}

static int entry_init(struct acl_entry *e, const char *pattern)
{
    memset(e, 0, sizeof(*e));
    e->pattern = cf_strdup(pattern);
    e->granting = json_array();
    if (e->pattern == NULL || e->granting == NULL) {
        return CF_ENOMEM;
    }
    size_t n = strlen(pattern);
    e->glob = n > 0 && pattern[n - 1] == '*';
    e->prefix_len = e->glob ? n - 1 : n;
    e->wild_pos = n;
    for (size_t i = 0; i < n; i++) {
        if (pattern[i] == '+' && (i == 0 || pattern[i - 1] == '/') &&
            (i + 1 == n || pattern[i + 1] == '/')) {
            e->plus = true;
            e->n_plus++;
            if (i < e->wild_pos) {
                e->wild_pos = i;
            }
        }
    }
    if (e->glob && n - 1 < e->wild_pos) {
        e->wild_pos = n - 1;
    }
    return CF_OK;
}

static int cmp_exact(const void *a, const void *b)
{
    return strcmp(((const struct acl_entry *)a)->pattern, ((const struct acl_entry *)b)->pattern);
}

/* Vault's priority, highest first: the first wildcard later; not ending in '*'; fewer '+';
 * longer; lexicographically larger. */
static int cmp_wild(const void *a, const void *b)
{
    const struct acl_entry *x = a;
    const struct acl_entry *y = b;
    if (x->wild_pos != y->wild_pos) {
        return x->wild_pos > y->wild_pos ? -1 : 1;
    }
    if (x->glob != y->glob) {
        return x->glob ? 1 : -1;
    }
    if (x->n_plus != y->n_plus) {
        return x->n_plus < y->n_plus ? -1 : 1;
    }
    size_t lx = strlen(x->pattern);
    size_t ly = strlen(y->pattern);
    if (lx != ly) {
        return lx > ly ? -1 : 1;
    }
    return -strcmp(x->pattern, y->pattern);
}

static struct acl_entry *find_pattern(struct acl_entry *list, size_t n, const char *pattern)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].pattern, pattern) == 0) {
            return &list[i];
        }
    }
    return NULL;
}

int acl_new(const struct policy *const *policies, size_t n, struct acl **out)
{
    struct acl *acl = cf_calloc(1, sizeof(*acl));
    if (acl == NULL) {
        return CF_ENOMEM;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(policies[i]->name, "root") == 0) {
            acl->root = true;
        }
        total += policies[i]->n_rules;
    }
    acl->exact = cf_calloc(total ? total : 1, sizeof(*acl->exact));
    acl->wild = cf_calloc(total ? total : 1, sizeof(*acl->wild));
    if (acl->exact == NULL || acl->wild == NULL) {
        acl_free(acl);
        return CF_ENOMEM;
    }
    int rv = CF_OK;
    for (size_t i = 0; rv == CF_OK && i < n; i++) {
        const struct policy *p = policies[i];
        for (size_t j = 0; rv == CF_OK && j < p->n_rules; j++) {
            const struct policy_rule *r = &p->rules[j];
            if (strstr(r->path, "{{") != NULL) {
                continue; /* templated paths need an identity store: they never match */
            }
            struct acl_entry probe;
            rv = entry_init(&probe, r->path);
            if (rv != CF_OK) {
                entry_clear(&probe);
                break;
            }
            bool wild = probe.glob || probe.plus;
            struct acl_entry *list = wild ? acl->wild : acl->exact;
            size_t *cnt = wild ? &acl->n_wild : &acl->n_exact;
            struct acl_entry *e = find_pattern(list, *cnt, r->path);
            if (e == NULL) {
                list[*cnt] = probe;
                e = &list[(*cnt)++];
            } else {
                entry_clear(&probe);
            }
            rv = merge_rule(e, r, p->name);
        }
    }
    if (rv != CF_OK) {
        acl_free(acl);
        return rv;
    }
    qsort(acl->exact, acl->n_exact, sizeof(*acl->exact), cmp_exact);
    qsort(acl->wild, acl->n_wild, sizeof(*acl->wild), cmp_wild);
    *out = acl;
    return CF_OK;
}

/* Matching ----------------------------------------------------------------------------------- */

/* Does a wildcard entry match path? '+' matches exactly one segment; a trailing '*' makes the
 * rest a prefix match. */
static bool wild_match(const struct acl_entry *e, const char *path)
{
    const char *p = e->pattern;
    const char *end = p + e->prefix_len;
    const char *s = path;
    while (p < end) {
        if (*p == '+' && (p == e->pattern || p[-1] == '/') &&
            (p + 1 == end || p[1] == '/' || (p + 1 == end && e->glob))) {
            /* one segment of the path */
            while (*s && *s != '/') {
                s++;
            }
            p++;
            continue;
        }
        if (*s != *p) {
            return false;
        }
        s++;
        p++;
    }
    return e->glob || *s == '\0';
}

static const struct acl_entry *find_exact(const struct acl *acl, const char *path)
{
    struct acl_entry key = {.pattern = (char *)path};
    return bsearch(&key, acl->exact, acl->n_exact, sizeof(*acl->exact), cmp_exact);
}

static const struct acl_entry *find_wild(const struct acl *acl, const char *path)
{
    for (size_t i = 0; i < acl->n_wild; i++) {
        if (wild_match(&acl->wild[i], path)) {
            return &acl->wild[i];
        }
    }
    return NULL;
}

/* The rule that applies to path (core.md 4.3), with LIST's trailing-slash retries. */
static const struct acl_entry *lookup(const struct acl *acl, const char *path, bool list)
{
    size_t n = strlen(path);
    char trimmed[4096];
    bool can_trim = list && n > 0 && path[n - 1] == '/' && n < sizeof(trimmed);
    if (can_trim) {
        memcpy(trimmed, path, n - 1);
        trimmed[n - 1] = '\0';
    }
    const struct acl_entry *e = find_exact(acl, path);
    if (e == NULL && can_trim) {
        e = find_exact(acl, trimmed);
    }
    if (e == NULL) {
        e = find_wild(acl, path);
    }
    if (e == NULL && can_trim) {
        e = find_wild(acl, trimmed);
    }
    return e;
}

static unsigned cap_for(enum node_op op)
{
    switch (op) {
        case NODE_OP_READ:
            return ACL_CAP_READ;
        case NODE_OP_CREATE:
            return ACL_CAP_CREATE;
        case NODE_OP_UPDATE:
            return ACL_CAP_UPDATE;
        case NODE_OP_DELETE:
            return ACL_CAP_DELETE;
        case NODE_OP_LIST:
            return ACL_CAP_LIST;
        case NODE_OP_PATCH:
            return ACL_CAP_PATCH;
    }
    return ACL_CAP_DENY;
}

/* A request value as text for value lists; NULL when it has no scalar form. */
static const char *value_text(const json_t *v, char buf[64])
{
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        snprintf(buf, 64, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, 64, "%g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v)) {
        return json_is_true(v) ? "true" : "false";
    }
    return NULL;
}

/* Does value match one of the listed values (with '*' prefix/suffix globs)? */
static bool value_listed(const json_t *list, const json_t *value)
{
    if (json_is_array(value)) {
        size_t i;
        json_t *v;
        json_array_foreach(value, i, v)
        {
            if (!value_listed(list, v)) {
                return false;
            }
        }
        return json_array_size(value) > 0;
    }
    char buf[64];
    const char *s = value_text(value, buf);
    if (s == NULL) {
        return false;
    }
    size_t sl = strlen(s);
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        const char *pat = json_string_value(p);
        size_t pl = strlen(pat);
        if (pl > 0 && pat[pl - 1] == '*' && strncmp(s, pat, pl - 1) == 0) {
            return true;
        }
        if (pl > 0 && pat[0] == '*' && sl >= pl - 1 && strcmp(s + sl - (pl - 1), pat + 1) == 0) {
            return true;
        }
        if (strcmp(s, pat) == 0) {
            return true;
        }
    }
    return false;
}

/* allowed/denied/required parameters; true when the data passes. */
static bool params_ok(const struct acl_entry *e, const json_t *data)
{
    size_t i;
    json_t *r;
    json_array_foreach(e->required, i, r)
    {
        bool found = false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)data, k, v)
        {
            found = found || strcasecmp(k, json_string_value(r)) == 0;
        }
        if (!found) {
            return false;
        }
    }
    if (json_object_size(data) == 0) {
        return true;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)data, k, v)
    {
        char lk[256];
        snprintf(lk, sizeof(lk), "%s", k);
        for (char *c = lk; *c; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        if (e->denied != NULL) {
            json_t *all = json_object_get(e->denied, "*");
            json_t *d = json_object_get(e->denied, lk);
            if (all != NULL && (json_array_size(all) == 0 || value_listed(all, v))) {
                return false;
            }
            if (d != NULL && (json_array_size(d) == 0 || value_listed(d, v))) {
                return false;
            }
        }
        if (e->allowed != NULL) {
            json_t *a = json_object_get(e->allowed, lk);
            if (a == NULL) {
                a = json_object_get(e->allowed, "*");
            }
            if (a == NULL) {
                return false;
            }
            if (json_array_size(a) > 0 && !value_listed(a, v)) {
                return false;
            }
        }
    }
    return true;
}

static json_t *granting_json(const struct acl_entry *e)
{
    json_t *out = json_array();
    size_t i;
    json_t *g;
    json_array_foreach(e->granting, i, g)
    {
        json_array_append_new(
            out, json_pack("{s:O,s:s,s:s}", "name", g, "namespace_id", "root", "type", "acl"));
    }
    return out;
}

int acl_check(const struct acl *acl, const struct acl_request *r, struct acl_result *out)
{
    memset(out, 0, sizeof(*out));
    if (acl->root) {
        out->allowed = true;
        out->is_root = true;
        out->caps = ~0u & ~(unsigned)ACL_CAP_DENY;
        out->granting_policies =
            json_pack("[{s:s,s:s,s:s}]", "name", "root", "namespace_id", "root", "type", "acl");
        return out->granting_policies ? CF_OK : CF_ENOMEM;
    }
    const struct acl_entry *e = lookup(acl, r->path, r->op == NODE_OP_LIST);
    if (e == NULL) {
        out->reason = "no matching rule";
        return CF_OK;
    }
    out->caps = e->caps;
    if (e->caps & ACL_CAP_DENY) {
        out->reason = "denied by rule";
        return CF_OK;
    }
    if ((e->caps & cap_for(r->op)) == 0) {
        out->reason = "capability not granted";
        return CF_OK;
    }
    if (r->need_sudo && (e->caps & ACL_CAP_SUDO) == 0) {
        out->reason = "sudo required";
        return CF_OK;
    }
    if (e->min_wrap_s > 0 || e->max_wrap_s > 0) {
        if (r->wrap_ttl_s <= 0 || (e->max_wrap_s > 0 && r->wrap_ttl_s > e->max_wrap_s) ||
            (e->min_wrap_s > 0 && r->wrap_ttl_s < e->min_wrap_s)) {
            out->reason = "wrapping TTL outside the policy's bounds";
            return CF_OK;
        }
    }
    bool checks_params = r->op == NODE_OP_READ || r->op == NODE_OP_CREATE ||
                         r->op == NODE_OP_UPDATE || r->op == NODE_OP_PATCH;
    if (checks_params && r->data != NULL && !params_ok(e, r->data)) {
        out->reason = "parameters not allowed";
        return CF_OK;
    }
    out->allowed = true;
    out->granting_policies = granting_json(e);
    return out->granting_policies ? CF_OK : CF_ENOMEM;
}

json_t *acl_capabilities(const struct acl *acl, const char *path)
{
    if (acl->root) {
        return json_pack("[s]", "root");
    }
    const struct acl_entry *e = lookup(acl, path, false);
    if (e == NULL || (e->caps & ACL_CAP_DENY) || e->caps == 0) {
        return json_pack("[s]", "deny");
    }
    static const struct
    {
        const char *name;
        unsigned bit;
    } order[] = {
        {"create", ACL_CAP_CREATE}, {"delete", ACL_CAP_DELETE}, {"list", ACL_CAP_LIST},
        {"patch", ACL_CAP_PATCH},   {"read", ACL_CAP_READ},     {"sudo", ACL_CAP_SUDO},
        {"update", ACL_CAP_UPDATE},
    };
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < sizeof(order) / sizeof(order[0]); i++) {
        if (e->caps & order[i].bit) {
            json_array_append_new(out, json_string(order[i].name));
        }
    }
    return out;
}

static bool entry_under(const struct acl_entry *e, const char *mount, size_t mlen)
{
    if (e->caps == 0 || (e->caps & ACL_CAP_DENY)) {
        return false;
    }
    /* The literal part of the pattern: up to a trailing '*' or the first '+'. */
    size_t lit = e->prefix_len;
    if (e->plus && e->wild_pos < lit) {
        lit = e->wild_pos;
    }
    if (lit >= mlen) {
        return strncmp(e->pattern, mount, mlen) == 0; /* a rule inside the mount */
    }
    /* A rule whose literal part is a prefix of the mount covers it if it is a glob or goes on
     * with a '+' segment. */
    return (e->glob || e->plus) && strncmp(e->pattern, mount, lit) == 0;
}

bool acl_has_access_under(const struct acl *acl, const char *mount_path)
{
    if (acl->root) {
        return true;
    }
    size_t mlen = strlen(mount_path);
    char bare[512];
    bool trim = mlen > 0 && mount_path[mlen - 1] == '/' && mlen < sizeof(bare);
    if (trim) {
        memcpy(bare, mount_path, mlen - 1);
        bare[mlen - 1] = '\0';
        if (find_exact(acl, bare) != NULL && entry_under(find_exact(acl, bare), bare, mlen - 1)) {
            return true;
        }
    }
    for (size_t i = 0; i < acl->n_exact; i++) {
        if (entry_under(&acl->exact[i], mount_path, mlen)) {
            return true;
        }
    }
    for (size_t i = 0; i < acl->n_wild; i++) {
        if (entry_under(&acl->wild[i], mount_path, mlen)) {
            return true;
        }
    }
    return false;
}

bool acl_path_is_sudo(const char *path)
{
    static const char *const exact[] = {
        "sys/audit",
        "sys/audit/",
        "sys/rotate",
        "sys/seal",
        "sys/step-down",
        "sys/remount",
        "sys/raw",
        "sys/raw/",
        "sys/config/cors",
        "auth/token/accessors",
        "auth/token/accessors/",
        "auth/token/revoke-orphan",
    };
    static const char *const prefix[] = {
        "sys/audit/",
        "sys/auth/",
        "sys/raw/",
        "sys/rotate/",
        "sys/config/auditing/",
        "sys/config/ui/headers/",
        "sys/plugins/catalog/",
        "sys/revoke-prefix/",
        "sys/revoke-force/",
        "sys/leases/revoke-prefix/",
        "sys/leases/revoke-force/",
        "sys/leases/lookup/",
        "sys/internal/inspect/",
    };
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        if (strcmp(path, exact[i]) == 0) {
            return true;
        }
    }
    for (size_t i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++) {
        if (strncmp(path, prefix[i], strlen(prefix[i])) == 0) {
            return true;
        }
    }
    return false;
}
