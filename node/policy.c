/*
 * Policy parsing (policy.h). JSON policies are turned into the same tree the HCL parser
 * builds, so both go through one interpreter and one set of error messages.
 */
#include "node/policy.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/duration.h"
#include "lib/hcl.h"
#include "lib/mem.h"

#define POLICY_MAX_RULES 4096

static const char default_text[] =
    "# Allow tokens to look up their own properties\n"
    "path \"auth/token/lookup-self\" {\n    capabilities = [\"read\"]\n}\n\n"
    "# Allow tokens to renew themselves\n"
    "path \"auth/token/renew-self\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow tokens to revoke themselves\n"
    "path \"auth/token/revoke-self\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow a token to look up its own capabilities on a path\n"
    "path \"sys/capabilities-self\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow a token to look up its own entity by id or name\n"
    "path \"identity/entity/id/{{identity.entity.id}}\" {\n  capabilities = [\"read\"]\n}\n"
    "path \"identity/entity/name/{{identity.entity.name}}\" {\n  capabilities = [\"read\"]\n}\n\n"
    "# Allow a token to look up its resultant ACL from all policies\n"
    "path \"sys/internal/ui/resultant-acl\" {\n    capabilities = [\"read\"]\n}\n\n"
    "# Allow a token to renew a lease via lease_id in the request body\n"
    "path \"sys/renew\" {\n    capabilities = [\"update\"]\n}\n"
    "path \"sys/leases/renew\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow looking up lease properties\n"
    "path \"sys/leases/lookup\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow a token to manage its own cubbyhole\n"
    "path \"cubbyhole/*\" {\n    capabilities = [\"create\", \"read\", \"update\", \"delete\", "
    "\"list\"]\n}\n\n"
    "# Allow a token to wrap arbitrary values in a response-wrapping token\n"
    "path \"sys/wrapping/wrap\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow a token to look up the creation time and TTL of a given response-wrapping token\n"
    "path \"sys/wrapping/lookup\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow a token to unwrap a response-wrapping token\n"
    "path \"sys/wrapping/unwrap\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow general purpose tools\n"
    "path \"sys/tools/hash\" {\n    capabilities = [\"update\"]\n}\n"
    "path \"sys/tools/hash/*\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow checking the status of a Control Group request if the user has the accessor\n"
    "path \"sys/control-group/request\" {\n    capabilities = [\"update\"]\n}\n\n"
    "# Allow a token to make requests to the Authorization Endpoint for OIDC providers\n"
    "path \"identity/oidc/provider/+/authorize\" {\n    capabilities = [\"read\", "
    "\"update\"]\n}\n";

static const char wrapping_text[] =
    "path \"cubbyhole/response\" {\n    capabilities = [\"create\", \"read\"]\n}\n\n"
    "path \"sys/wrapping/unwrap\" {\n    capabilities = [\"update\"]\n}\n";

const char *policy_default_text(void)
{
    return default_text;
}

const char *policy_response_wrapping_text(void)
{
    return wrapping_text;
}

const char *policy_name(const struct policy *p)
{
    return p->name;
}

static void rule_clear(struct policy_rule *r)
{
    cf_free(r->path);
    json_decref(r->allowed_params);
    json_decref(r->denied_params);
    json_decref(r->required_params);
}

void policy_free(struct policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_rules; i++) {
        rule_clear(&p->rules[i]);
    }
    cf_free(p->rules);
    cf_free(p->name);
    cf_free(p);
}

/* JSON -> HCL tree -------------------------------------------------------------------------- */

static struct cf_hcl *from_json(const json_t *j, int depth)
{
    if (depth > 32) {
        return NULL;
    }
    struct cf_hcl *v = cf_calloc(1, sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    v->line = 1;
    switch (json_typeof(j)) {
        case JSON_OBJECT: {
            v->kind = CF_HCL_OBJECT;
            size_t n = json_object_size(j);
            v->entries = cf_calloc(n ? n : 1, sizeof(*v->entries));
            if (v->entries == NULL) {
                break;
            }
            const char *k;
            json_t *x;
            json_object_foreach((json_t *)j, k, x)
            {
                struct cf_hcl_entry *e = &v->entries[v->n_entries];
                e->key = cf_strdup(k);
                e->value = from_json(x, depth + 1);
                v->n_entries++;
                if (e->key == NULL || e->value == NULL) {
                    cf_hcl_free(v);
                    return NULL;
                }
            }
            return v;
        }
        case JSON_ARRAY: {
            v->kind = CF_HCL_LIST;
            size_t n = json_array_size(j);
            v->items = cf_calloc(n ? n : 1, sizeof(*v->items));
            if (v->items == NULL) {
                break;
            }
            for (size_t i = 0; i < n; i++) {
                v->items[i] = from_json(json_array_get(j, i), depth + 1);
                v->n_items++;
                if (v->items[i] == NULL) {
                    cf_hcl_free(v);
                    return NULL;
                }
            }
            return v;
        }
        case JSON_STRING:
            v->kind = CF_HCL_STRING;
            v->str = cf_strdup(json_string_value(j));
            if (v->str == NULL) {
                break;
            }
            return v;
        case JSON_INTEGER:
            v->kind = CF_HCL_NUMBER;
            v->is_int = true;
            v->i = json_integer_value(j);
            v->num = (double)v->i;
            return v;
        case JSON_REAL:
            v->kind = CF_HCL_NUMBER;
            v->num = json_real_value(j);
            return v;
        case JSON_TRUE:
        case JSON_FALSE:
            v->kind = CF_HCL_BOOL;
            v->b = json_is_true(j);
            return v;
        case JSON_NULL:
            v->kind = CF_HCL_NULL;
            return v;
    }
    cf_hcl_free(v);
    return NULL;
}

/* Interpretation ----------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int bad(char errmsg[CF_ERRMSG_SIZE],
                                                     int line,
                                                     const char *fmt,
                                                     ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cf_errmsg_printf(errmsg, "line %d: %s", line, what);
    return CF_EMALFORMED;
}

static int cap_bit(const char *s, unsigned *bit)
{
    static const struct
    {
        const char *name;
        unsigned bit;
    } caps[] = {
        {"deny", ACL_CAP_DENY},     {"create", ACL_CAP_CREATE}, {"read", ACL_CAP_READ},
        {"update", ACL_CAP_UPDATE}, {"delete", ACL_CAP_DELETE}, {"list", ACL_CAP_LIST},
        {"sudo", ACL_CAP_SUDO},     {"patch", ACL_CAP_PATCH},
    };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        if (strcmp(s, caps[i].name) == 0) {
            *bit = caps[i].bit;
            return CF_OK;
        }
    }
    return CF_EINVAL;
}

/* Legacy `policy = "read"` shorthand. */
static int legacy_caps(const char *s, unsigned *caps)
{
    if (strcmp(s, "deny") == 0) {
        *caps = ACL_CAP_DENY;
    } else if (strcmp(s, "read") == 0) {
        *caps = ACL_CAP_READ | ACL_CAP_LIST;
    } else if (strcmp(s, "write") == 0) {
        *caps = ACL_CAP_CREATE | ACL_CAP_READ | ACL_CAP_UPDATE | ACL_CAP_DELETE | ACL_CAP_LIST |
                ACL_CAP_PATCH;
    } else if (strcmp(s, "sudo") == 0) {
        *caps = ACL_CAP_CREATE | ACL_CAP_READ | ACL_CAP_UPDATE | ACL_CAP_DELETE | ACL_CAP_LIST |
                ACL_CAP_PATCH | ACL_CAP_SUDO;
    } else {
        return CF_EINVAL;
    }
    return CF_OK;
}

static char *lowercase(const char *s)
{
    char *c = cf_strdup(s);
    for (char *p = c; p != NULL && *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    return c;
}

static int wrap_ttl(const struct cf_hcl *v, int64_t *out, const char *key, char *errmsg)
{
    if (v->kind == CF_HCL_NUMBER && v->is_int && v->i >= 0) {
        *out = v->i;
        return CF_OK;
    }
    if (v->kind == CF_HCL_STRING && cf_duration_parse_s(v->str, out) == CF_OK && *out >= 0) {
        return CF_OK;
    }
    return bad(errmsg, v->line, "invalid duration for %s", key);
}

/* A list of strings value (as an array of lowercased strings). */
static int string_list(const struct cf_hcl *v,
                       bool lower,
                       json_t **out,
                       const char *key,
                       char *errmsg)
{
    if (v->kind != CF_HCL_LIST) {
        return bad(errmsg, v->line, "%s must be a list of strings", key);
    }
    json_t *arr = json_array();
    if (arr == NULL) {
        return CF_ENOMEM;
    }
    for (size_t i = 0; i < v->n_items; i++) {
        const struct cf_hcl *it = v->items[i];
        char num[32];
        const char *s = NULL;
        if (it->kind == CF_HCL_STRING) {
            s = it->str;
        } else if (it->kind == CF_HCL_NUMBER && it->is_int) {
            snprintf(num, sizeof(num), "%lld", (long long)it->i);
            s = num;
        } else if (it->kind == CF_HCL_BOOL) {
            s = it->b ? "true" : "false";
        } else {
            json_decref(arr);
            return bad(errmsg, it->line, "%s must be a list of strings", key);
        }
        char *c = lower ? lowercase(s) : cf_strdup(s);
        if (c == NULL || json_array_append_new(arr, json_string(c)) != 0) {
            cf_free(c);
            json_decref(arr);
            return CF_ENOMEM;
        }
        cf_free(c);
    }
    *out = arr;
    return CF_OK;
}

/* allowed_parameters / denied_parameters: an object of lists. Repeated keys merge. */
static int param_map(const struct cf_hcl *v, json_t **out, const char *key, char *errmsg)
{
    if (v->kind == CF_HCL_LIST && v->n_items == 1 && v->items[0]->kind == CF_HCL_OBJECT) {
        v = v->items[0]; /* HCL1 writes a map value as a one-element list of objects, too */
    }
    if (v->kind != CF_HCL_OBJECT) {
        return bad(errmsg, v->line, "%s must be a map of lists", key);
    }
    json_t *obj = *out ? *out : json_object();
    if (obj == NULL) {
        return CF_ENOMEM;
    }
    for (size_t i = 0; i < v->n_entries; i++) {
        json_t *vals = NULL;
        int rv = string_list(v->entries[i].value, false, &vals, key, errmsg);
        if (rv != CF_OK) {
            if (*out == NULL) {
                json_decref(obj);
            }
            return rv;
        }
        char *k = lowercase(v->entries[i].key);
        json_t *prev = k ? json_object_get(obj, k) : NULL;
        if (prev != NULL) {
            json_array_extend(prev, vals);
            json_decref(vals);
        } else if (k == NULL || json_object_set_new(obj, k, vals) != 0) {
            cf_free(k);
            if (*out == NULL) {
                json_decref(obj);
            }
            return CF_ENOMEM;
        }
        cf_free(k);
    }
    *out = obj;
    return CF_OK;
}

static int parse_rule(const char *path,
                      const struct cf_hcl *body,
                      int line,
                      struct policy_rule *r,
                      char *errmsg)
{
    memset(r, 0, sizeof(*r));
    r->line = line;
    if (path[0] == '\0') {
        return bad(errmsg, line, "path rule needs a path name");
    }
    if (body->kind != CF_HCL_OBJECT) {
        return bad(errmsg, body->line, "path \"%s\" must be a block", path);
    }
    const char *p = path;
    while (*p == '/') {
        p++; /* Vault trims a leading slash */
    }
    r->path = cf_strdup(p);
    if (r->path == NULL) {
        return CF_ENOMEM;
    }
    bool have_caps = false;
    for (size_t i = 0; i < body->n_entries; i++) {
        const char *k = body->entries[i].key;
        const struct cf_hcl *v = body->entries[i].value;
        int rv = CF_OK;
        if (strcmp(k, "capabilities") == 0) {
            if (v->kind != CF_HCL_LIST) {
                return bad(errmsg, v->line, "capabilities must be a list of strings");
            }
            have_caps = true;
            for (size_t j = 0; j < v->n_items; j++) {
                unsigned bit;
                if (v->items[j]->kind != CF_HCL_STRING) {
                    return bad(errmsg, v->items[j]->line, "capabilities must be a list of strings");
                }
                if (cap_bit(v->items[j]->str, &bit) != CF_OK) {
                    return bad(errmsg, v->items[j]->line, "unknown capability \"%s\"",
                               v->items[j]->str);
                }
                r->caps |= bit;
            }
        } else if (strcmp(k, "policy") == 0) {
            unsigned caps;
            if (v->kind != CF_HCL_STRING || legacy_caps(v->str, &caps) != CF_OK) {
                return bad(errmsg, v->line, "policy must be one of deny, read, write, sudo");
            }
            have_caps = true;
            r->caps |= caps;
        } else if (strcmp(k, "min_wrapping_ttl") == 0) {
            rv = wrap_ttl(v, &r->min_wrap_s, k, errmsg);
        } else if (strcmp(k, "max_wrapping_ttl") == 0) {
            rv = wrap_ttl(v, &r->max_wrap_s, k, errmsg);
        } else if (strcmp(k, "allowed_parameters") == 0) {
            rv = param_map(v, &r->allowed_params, k, errmsg);
        } else if (strcmp(k, "denied_parameters") == 0) {
            rv = param_map(v, &r->denied_params, k, errmsg);
        } else if (strcmp(k, "required_parameters") == 0) {
            json_t *req = NULL;
            rv = string_list(v, true, &req, k, errmsg);
            if (rv == CF_OK) {
                if (r->required_params == NULL) {
                    r->required_params = req;
                } else {
                    json_array_extend(r->required_params, req);
                    json_decref(req);
                }
            }
        } else {
            return bad(errmsg, v->line, "unknown key \"%s\" in path rule", k);
        }
        if (rv != CF_OK) {
            return rv;
        }
    }
    if (!have_caps) {
        return bad(errmsg, line, "path \"%s\" has no capabilities", path);
    }
    if (r->min_wrap_s > 0 && r->max_wrap_s > 0 && r->min_wrap_s > r->max_wrap_s) {
        return bad(errmsg, line, "max_wrapping_ttl cannot be less than min_wrapping_ttl");
    }
    if (r->caps & ACL_CAP_DENY) {
        r->caps = ACL_CAP_DENY;
    }
    return CF_OK;
}

static int add_rule(struct policy *p, size_t *cap, struct policy_rule *r)
{
    if (p->n_rules == *cap) {
        size_t n = *cap ? *cap * 2 : 8;
        struct policy_rule *rs = cf_realloc(p->rules, n * sizeof(*rs));
        if (rs == NULL) {
            return CF_ENOMEM;
        }
        p->rules = rs;
        *cap = n;
    }
    p->rules[p->n_rules++] = *r;
    return CF_OK;
}

static int interpret(struct policy *p, const struct cf_hcl *root, char *errmsg)
{
    size_t cap = 0;
    for (size_t i = 0; i < root->n_entries; i++) {
        const char *k = root->entries[i].key;
        const struct cf_hcl *v = root->entries[i].value;
        if (strcmp(k, "name") == 0 && v->kind == CF_HCL_STRING) {
            continue;
        }
        if (strcmp(k, "path") != 0) {
            return bad(errmsg, v->line, "unknown top-level key \"%s\"", k);
        }
        /* path "x" { } is path -> { x -> { } }; JSON may list several paths in one object,
         * and HCL1 also accepts path = [ { x = { } } ]. */
        const struct cf_hcl *obj = v;
        if (v->kind == CF_HCL_LIST && v->n_items == 1) {
            obj = v->items[0];
        }
        if (obj->kind != CF_HCL_OBJECT) {
            return bad(errmsg, v->line, "path rule needs a path name");
        }
        if (obj->n_entries == 0) {
            return bad(errmsg, v->line, "path rule needs a path name");
        }
        for (size_t j = 0; j < obj->n_entries; j++) {
            if (p->n_rules >= POLICY_MAX_RULES) {
                return bad(errmsg, v->line, "too many path rules");
            }
            struct policy_rule r;
            int rv = parse_rule(obj->entries[j].key, obj->entries[j].value,
                                obj->entries[j].value->line, &r, errmsg);
            if (rv == CF_OK) {
                rv = add_rule(p, &cap, &r);
            }
            if (rv != CF_OK) {
                rule_clear(&r);
                return rv;
            }
        }
    }
    return CF_OK;
}

/* When text is base64 of something printable, Vault uses the decoded text. */
static char *maybe_base64(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!isalnum((unsigned char)c) && c != '+' && c != '/' && c != '=' && c != '\n' &&
            c != '\r') {
            return NULL;
        }
    }
    uint8_t *dec = NULL;
    size_t dlen = 0;
    if (len == 0 || cf_base64_decode(text, len, &dec, &dlen) != CF_OK) {
        return NULL;
    }
    char *out = cf_malloc(dlen + 1);
    if (out != NULL) {
        memcpy(out, dec, dlen);
        out[dlen] = '\0';
    }
    cf_free(dec);
    return out;
}

int policy_parse(const char *name,
                 const char *text,
                 size_t len,
                 struct policy **out,
                 char errmsg[CF_ERRMSG_SIZE])
{
    *out = NULL;
    struct policy *p = cf_calloc(1, sizeof(*p));
    char *decoded = maybe_base64(text, len);
    if (decoded != NULL) {
        text = decoded;
        len = strlen(decoded);
    }
    if (p == NULL || (p->name = lowercase(name)) == NULL) {
        cf_free(decoded);
        policy_free(p);
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i])) {
        i++;
    }
    struct cf_hcl *tree = NULL;
    int rv;
    if (i < len && text[i] == '{') {
        json_error_t jerr;
        json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL || !json_is_object(j)) {
            cf_errmsg_printf(errmsg, "line %d: %s", j ? 1 : jerr.line,
                             j ? "a JSON policy must be an object" : jerr.text);
            json_decref(j);
            rv = CF_EMALFORMED;
        } else {
            tree = from_json(j, 0);
            json_decref(j);
            rv = tree ? CF_OK : CF_ENOMEM;
        }
    } else {
        char msg[CF_ERRMSG_SIZE];
        rv = cf_hcl_parse(text, len, "", &tree, msg);
        if (rv != CF_OK) {
            /* ":3: what" -> "line 3: what" */
            int line = 0;
            int used = 0;
            if (sscanf(msg, ":%d:%n", &line, &used) == 1 && used > 0) {
                const char *rest = msg + used;
                while (*rest == ' ') {
                    rest++;
                }
                cf_errmsg_printf(errmsg, "line %d: %s", line, rest);
            } else {
                cf_errmsg_printf(errmsg, "%s", msg);
            }
        }
    }
    if (rv == CF_OK) {
        rv = interpret(p, tree, errmsg);
    }
    cf_hcl_free(tree);
    cf_free(decoded);
    if (rv != CF_OK) {
        if (rv == CF_ENOMEM) {
            cf_errmsg_printf(errmsg, "out of memory");
        }
        policy_free(p);
        return rv;
    }
    *out = p;
    return CF_OK;
}
