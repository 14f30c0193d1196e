/*
 * PKI roles (pki.md 2.1, 2.2): Vault's defaults, the request body -> role conversion with
 * Vault's checks and messages, the read shape, the storage encoding and the role endpoints.
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "engines/pki/role.h"

#include "engines/pki/field.h"
#include "engines/pki/issuer.h"
#include "engines/pki/pki.h"
#include "lib/rfc3339.h"
#include "lib/mem.h"

static const char *const default_key_usage[] = {
    "DigitalSignature",
    "KeyAgreement",
    "KeyEncipherment",
};

void pki_role_init(struct pki_role *r)
{
    memset(r, 0, sizeof(*r));
    r->not_before_duration_s = 30;
    r->issuer_ref = cf_strdup("default");
    r->not_after = cf_strdup("");
    if (r->issuer_ref == NULL || r->not_after == NULL) {
        cf_oom_abort();
    }
    r->allow_localhost = true;
    r->allow_wildcard_certificates = true;
    r->enforce_hostnames = true;
    r->allow_ip_sans = true;
    r->cn_validations = PKI_CN_VALIDATE_EMAIL | PKI_CN_VALIDATE_HOSTNAME;
    r->require_cn = true;
    r->use_csr_common_name = true;
    r->use_csr_sans = true;
    r->key_type = PKI_KEY_RSA;
    r->key_bits = 2048;
    r->signature_bits = 256;
    r->server_flag = true;
    r->client_flag = true;
    r->key_usage_bits = PKI_KU_DIGITAL_SIGNATURE | PKI_KU_KEY_AGREEMENT | PKI_KU_KEY_ENCIPHERMENT;
    r->ext_key_usage_bits = PKI_EKU_SERVER_AUTH | PKI_EKU_CLIENT_AUTH;
    for (size_t i = 0; i < sizeof(default_key_usage) / sizeof(default_key_usage[0]); i++) {
        if (pki_x509_strs_add(&r->key_usage, default_key_usage[i]) != CF_OK) {
            cf_oom_abort();
        }
    }
}

void pki_role_close(struct pki_role *r)
{
    if (r == NULL) {
        return;
    }
    cf_free(r->name);
    cf_free(r->issuer_ref);
    cf_free(r->not_after);
    struct pki_x509_strs *lists[] = {
        &r->allowed_domains,    &r->allowed_uri_sans,
        &r->allowed_other_sans, &r->allowed_serial_numbers,
        &r->allowed_user_ids,   &r->key_usage,
        &r->ext_key_usage,      &r->ext_key_usage_oids,
        &r->policy_identifiers, &r->ou,
        &r->organization,       &r->country,
        &r->locality,           &r->province,
        &r->street_address,     &r->postal_code,
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        pki_x509_strs_close(lists[i]);
    }
    memset(r, 0, sizeof(*r));
}

/* JSON ---------------------------------------------------------------------------------------- */

struct bool_field
{
    const char *name;
    size_t off;
};

#define BF(f)                            \
    {                                    \
#f, offsetof(struct pki_role, f) \
    }
static const struct bool_field bool_fields[] = {
    BF(allow_localhost),
    BF(allowed_domains_template),
    BF(allow_bare_domains),
    BF(allow_subdomains),
    BF(allow_glob_domains),
    BF(allow_wildcard_certificates),
    BF(allow_any_name),
    BF(enforce_hostnames),
    BF(allow_ip_sans),
    BF(allowed_uri_sans_template),
    BF(require_cn),
    BF(use_csr_common_name),
    BF(use_csr_sans),
    BF(use_pss),
    BF(server_flag),
    BF(client_flag),
    BF(code_signing_flag),
    BF(email_protection_flag),
    BF(basic_constraints_valid_for_non_ca),
    BF(generate_lease),
    BF(no_store),
    BF(no_store_metadata),
};
#undef BF

struct list_field
{
    const char *name;
    size_t off;
};

#define LF(f)                            \
    {                                    \
#f, offsetof(struct pki_role, f) \
    }
static const struct list_field list_fields[] = {
    LF(allowed_domains),
    LF(allowed_uri_sans),
    LF(allowed_other_sans),
    LF(allowed_serial_numbers),
    LF(allowed_user_ids),
    LF(key_usage),
    LF(ext_key_usage),
    LF(ext_key_usage_oids),
    LF(ou),
    LF(organization),
    LF(country),
    LF(locality),
    LF(province),
    LF(street_address),
    LF(postal_code),
};
#undef LF

static int set_list(struct pki_x509_strs *l, const json_t *arr)
{
    pki_x509_strs_close(l);
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        int rv = pki_x509_strs_add(l, json_string_value(v));
        if (rv != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

static bool oid_valid(const char *s)
{
    /* Dotted decimal, at least two arcs. */
    int arcs = 0;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
        arcs++;
        if (*p == '.') {
            p++;
            if (*p == '\0') {
                return false;
            }
        } else if (*p != '\0') {
            return false;
        }
    }
    return arcs >= 2;
}

/* policy_identifiers: a list of OIDs, or a JSON list of {"oid": ...} objects (as text). */
static int parse_policies(const json_t *data, struct pki_role *r, char *errmsg)
{
    const json_t *v = json_object_get(data, "policy_identifiers");
    if (v == NULL || json_is_null(v)) {
        return CF_ENOTFOUND;
    }
    json_t *parsed = NULL;
    const json_t *list = v;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s == ' ') {
            s++;
        }
        if (*s == '[') {
            parsed = json_loads(s, 0, NULL);
            list = parsed;
        }
    }
    json_t *strs = NULL;
    int rv = CF_OK;
    if (list == v) {
        rv = pki_field_strings(data, "policy_identifiers", &strs, errmsg);
        list = strs;
    }
    pki_x509_strs_close(&r->policy_identifiers);
    size_t i;
    const json_t *it;
    json_array_foreach(list, i, it)
    {
        if (rv != CF_OK) {
            break;
        }
        const char *oid = json_is_object(it) ? json_string_value(json_object_get(it, "oid"))
                                             : json_string_value(it);
        if (oid == NULL || !oid_valid(oid)) {
            cf_errmsg_printf(errmsg, "invalid policy identifier %s", oid != NULL ? oid : "");
            rv = CF_EINVAL;
            break;
        }
        rv = pki_x509_strs_add(&r->policy_identifiers, oid);
    }
    if (list == NULL && rv == CF_OK) {
        cf_errmsg_printf(errmsg, "invalid policy identifiers");
        rv = CF_EINVAL;
    }
    json_decref(parsed);
    json_decref(strs);
    return rv;
}

static int check_other_sans(const struct pki_role *r, char *errmsg)
{
    for (size_t i = 0; i < r->allowed_other_sans.n; i++) {
        const char *s = r->allowed_other_sans.v[i];
        if (strcmp(s, "*") == 0) {
            continue;
        }
        const char *semi = strchr(s, ';');
        const char *colon = semi != NULL ? strchr(semi, ':') : NULL;
        if (semi == NULL || colon == NULL) {
            cf_errmsg_printf(errmsg,
                             "error parsing allowed_other_sans: expected an other SAN of "
                             "the form <oid>;UTF8:<value>, got %s",
                             s);
            return CF_EINVAL;
        }
        size_t tl = (size_t)(colon - semi - 1);
        char *oid = cf_strndup(s, (size_t)(semi - s));
        bool ok = oid != NULL && oid_valid(oid) &&
                  ((tl == 4 && strncasecmp(semi + 1, "UTF8", 4) == 0) ||
                   (tl == 5 && strncasecmp(semi + 1, "UTF-8", 5) == 0));
        cf_free(oid);
        if (!ok) {
            cf_errmsg_printf(errmsg, "error parsing allowed_other_sans: invalid other SAN %s", s);
            return CF_EINVAL;
        }
    }
    return CF_OK;
}

int pki_role_apply(struct pki_role *r, const json_t *data, json_t *warnings, char *errmsg)
{
    int rv;
    for (size_t i = 0; i < sizeof(bool_fields) / sizeof(bool_fields[0]); i++) {
        bool b;
        rv = pki_field_bool(data, bool_fields[i].name, &b, errmsg);
        if (rv == CF_OK) {
            *(bool *)((char *)r + bool_fields[i].off) = b;
        } else if (rv != CF_ENOTFOUND) {
            return rv;
        }
    }
    for (size_t i = 0; i < sizeof(list_fields) / sizeof(list_fields[0]); i++) {
        json_t *arr = NULL;
        rv = pki_field_strings(data, list_fields[i].name, &arr, errmsg);
        if (rv == CF_OK) {
            rv = set_list((struct pki_x509_strs *)((char *)r + list_fields[i].off), arr);
            json_decref(arr);
        }
        if (rv != CF_OK && rv != CF_ENOTFOUND) {
            return rv;
        }
    }
    rv = parse_policies(data, r, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    struct
    {
        const char *name;
        int64_t *out;
    } durations[] = {
        {"ttl", &r->ttl_s},
        {"max_ttl", &r->max_ttl_s},
        {"not_before_duration", &r->not_before_duration_s},
    };
    for (size_t i = 0; i < 3; i++) {
        rv = pki_field_seconds(data, durations[i].name, durations[i].out, errmsg);
        if (rv != CF_OK && rv != CF_ENOTFOUND) {
            return rv;
        }
    }
    const char *s;
    if ((rv = pki_field_string(data, "issuer_ref", &s, errmsg)) == CF_OK) {
        cf_free(r->issuer_ref);
        r->issuer_ref = cf_strdup(s[0] ? s : "default");
    } else if (rv != CF_ENOTFOUND) {
        return rv;
    }
    if ((rv = pki_field_string(data, "not_after", &s, errmsg)) == CF_OK) {
        int64_t t;
        if (s[0] != '\0' && cf_rfc3339_parse(s, &t) != CF_OK) {
            cf_errmsg_printf(errmsg, "invalid not_after: %s is not an RFC 3339 time", s);
            return CF_EINVAL;
        }
        cf_free(r->not_after);
        r->not_after = cf_strdup(s);
    } else if (rv != CF_ENOTFOUND) {
        return rv;
    }
    if ((rv = pki_field_string(data, "key_type", &s, errmsg)) == CF_OK) {
        if (strcmp(s, "any") == 0) {
            r->key_type_any = true;
        } else {
            enum pki_key_type kt;
            if ((rv = pki_key_type_parse(s, &kt, errmsg)) != CF_OK) {
                return rv;
            }
            r->key_type_any = false;
            r->key_type = kt;
        }
        if (json_object_get(data, "key_bits") == NULL) {
            r->key_bits = 0;
        }
        if (json_object_get(data, "signature_bits") == NULL) {
            r->signature_bits = 0;
        }
    } else if (rv != CF_ENOTFOUND) {
        return rv;
    }
    int64_t n;
    if ((rv = pki_field_int(data, "key_bits", &n, errmsg)) == CF_OK) {
        r->key_bits = (int)n;
    } else if (rv != CF_ENOTFOUND) {
        return rv;
    }
    if ((rv = pki_field_int(data, "signature_bits", &n, errmsg)) == CF_OK) {
        r->signature_bits = (int)n;
    } else if (rv != CF_ENOTFOUND) {
        return rv;
    }
    json_t *cnv = NULL;
    if ((rv = pki_field_strings(data, "cn_validations", &cnv, errmsg)) == CF_OK) {
        uint32_t bits = 0;
        size_t i;
        json_t *v;
        json_array_foreach(cnv, i, v)
        {
            const char *c = json_string_value(v);
            if (strcasecmp(c, "email") == 0) {
                bits |= PKI_CN_VALIDATE_EMAIL;
            } else if (strcasecmp(c, "hostname") == 0) {
                bits |= PKI_CN_VALIDATE_HOSTNAME;
            } else if (strcasecmp(c, "disabled") == 0) {
                bits |= PKI_CN_VALIDATE_DISABLED;
            } else {
                json_decref(cnv);
                cf_errmsg_printf(errmsg, "cn_validations value incorrect: unknown value: '%s'", c);
                return CF_EINVAL;
            }
        }
        json_decref(cnv);
        if ((bits & PKI_CN_VALIDATE_DISABLED) && bits != PKI_CN_VALIDATE_DISABLED) {
            cf_errmsg_printf(errmsg,
                             "cn_validations value incorrect: cannot specify 'disabled' "
                             "along with other values");
            return CF_EINVAL;
        }
        r->cn_validations = bits != 0 ? bits : (PKI_CN_VALIDATE_EMAIL | PKI_CN_VALIDATE_HOSTNAME);
    } else if (rv != CF_ENOTFOUND) {
        return rv;
    }

    /* Whole-role checks. */
    if (r->key_type_any) {
        r->key_bits = 0;
        if (r->signature_bits != 0 && r->signature_bits != 256 && r->signature_bits != 384 &&
            r->signature_bits != 512) {
            cf_errmsg_printf(errmsg, "unsupported hash signature algorithm: %d", r->signature_bits);
            return CF_EINVAL;
        }
    } else {
        int bits = 0;
        if ((rv = pki_key_bits_resolve(r->key_type, r->key_bits, &bits, errmsg)) != CF_OK) {
            return rv;
        }
        r->key_bits = bits;
        if ((rv = pki_key_signature_bits_check(r->key_type, r->signature_bits, errmsg)) != CF_OK) {
            return rv;
        }
        if (r->key_type == PKI_KEY_RSA && r->signature_bits == 0) {
            r->signature_bits = 256;
        }
    }
    if (r->max_ttl_s > 0 && r->ttl_s > r->max_ttl_s) {
        cf_errmsg_printf(errmsg, "\"ttl\" value must be less than \"max_ttl\" value");
        return CF_EINVAL;
    }
    r->key_usage_bits = 0;
    for (size_t i = 0; i < r->key_usage.n; i++) {
        uint32_t bit;
        if ((rv = pki_x509_key_usage_parse(r->key_usage.v[i], &bit, errmsg)) != CF_OK) {
            return rv;
        }
        r->key_usage_bits |= bit;
    }
    r->ext_key_usage_bits = 0;
    for (size_t i = 0; i < r->ext_key_usage.n; i++) {
        uint32_t bit;
        if ((rv = pki_x509_ext_key_usage_parse(r->ext_key_usage.v[i], &bit, errmsg)) != CF_OK) {
            return rv;
        }
        r->ext_key_usage_bits |= bit;
    }
    r->ext_key_usage_bits |= (r->server_flag ? PKI_EKU_SERVER_AUTH : 0) |
                             (r->client_flag ? PKI_EKU_CLIENT_AUTH : 0) |
                             (r->code_signing_flag ? PKI_EKU_CODE_SIGNING : 0) |
                             (r->email_protection_flag ? PKI_EKU_EMAIL_PROTECTION : 0);
    for (size_t i = 0; i < r->ext_key_usage_oids.n; i++) {
        if (!oid_valid(r->ext_key_usage_oids.v[i])) {
            cf_errmsg_printf(errmsg,
                             "\"%s\" could not be parsed as a valid oid for an extended key usage",
                             r->ext_key_usage_oids.v[i]);
            return CF_EINVAL;
        }
    }
    if ((rv = check_other_sans(r, errmsg)) != CF_OK) {
        return rv;
    }
    if (r->no_store && r->generate_lease) {
        r->generate_lease = false;
        if (warnings != NULL) {
            json_array_append_new(warnings,
                                  json_string("mutually exclusive values no_store=true and "
                                              "generate_lease=true were both specified; "
                                              "no_store=true takes priority"));
        }
    } else if (r->generate_lease && warnings != NULL) {
        json_array_append_new(
            warnings,
            json_string("it is encouraged to disable generate_lease and rely on PKI's native "
                        "capabilities when possible; this option can cause Vault-wide "
                        "issues with large numbers of issued certificates"));
    }
    if (r->issuer_ref == NULL || r->not_after == NULL) {
        return CF_ENOMEM;
    }
    return CF_OK;
}

static json_t *strs_json(const struct pki_x509_strs *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < l->n; i++) {
        json_array_append_new(a, json_string(l->v[i]));
    }
    return a;
}

json_t *pki_role_to_json(const struct pki_role *r)
{
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(bool_fields) / sizeof(bool_fields[0]); i++) {
        json_object_set_new(o, bool_fields[i].name,
                            json_boolean(*(const bool *)((const char *)r + bool_fields[i].off)));
    }
    for (size_t i = 0; i < sizeof(list_fields) / sizeof(list_fields[0]); i++) {
        json_object_set_new(
            o, list_fields[i].name,
            strs_json((const struct pki_x509_strs *)((const char *)r + list_fields[i].off)));
    }
    json_object_set_new(o, "policy_identifiers", strs_json(&r->policy_identifiers));
    json_t *cnv = json_array();
    if (r->cn_validations & PKI_CN_VALIDATE_DISABLED) {
        json_array_append_new(cnv, json_string("disabled"));
    } else {
        if (r->cn_validations & PKI_CN_VALIDATE_EMAIL) {
            json_array_append_new(cnv, json_string("email"));
        }
        if (r->cn_validations & PKI_CN_VALIDATE_HOSTNAME) {
            json_array_append_new(cnv, json_string("hostname"));
        }
    }
    json_object_set_new(o, "cn_validations", cnv);
    json_object_set_new(o, "ttl", json_integer(r->ttl_s));
    json_object_set_new(o, "max_ttl", json_integer(r->max_ttl_s));
    json_object_set_new(o, "not_before_duration", json_integer(r->not_before_duration_s));
    json_object_set_new(o, "issuer_ref", json_string(r->issuer_ref ? r->issuer_ref : "default"));
    json_object_set_new(o, "not_after", json_string(r->not_after ? r->not_after : ""));
    json_object_set_new(o, "key_type",
                        json_string(r->key_type_any ? "any" : pki_key_type_name(r->key_type)));
    json_object_set_new(o, "key_bits", json_integer(r->key_bits));
    json_object_set_new(o, "signature_bits", json_integer(r->signature_bits));
    json_object_set_new(o, "allow_token_displayname", json_false());
    return o;
}

/* Storage and endpoints --------------------------------------------------------------------- */

static bool role_name_ok(const char *n)
{
    if (n[0] == '\0' || strlen(n) > 128) {
        return false;
    }
    for (const char *p = n; *p; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.' || *p == '@')) {
            return false;
        }
    }
    return true;
}

int pki_role_load(struct pki_engine *e, const char *name, struct pki_role *r, char *errmsg)
{
    char key[192];
    snprintf(key, sizeof(key), "role/%s", name);
    pki_role_init(r);
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node_view_get(e->view, key, &val, &len);
    if (rv != CF_OK) {
        pki_role_close(r);
        return rv;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    if (j == NULL) {
        pki_role_close(r);
        cf_errmsg_printf(errmsg, "stored role %s is unreadable", name);
        return CF_ECORRUPT;
    }
    rv = pki_role_apply(r, j, NULL, errmsg);
    json_decref(j);
    if (rv == CF_OK) {
        r->name = cf_strdup(name);
        rv = r->name != NULL ? CF_OK : CF_ENOMEM;
    }
    if (rv != CF_OK) {
        pki_role_close(r);
    }
    return rv;
}

static void role_write(struct pki_engine *e, struct node_request *req, const char *name)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    struct pki_role r;
    bool patch = req->op == NODE_OP_PATCH;
    if (patch) {
        int rv = pki_role_load(e, name, &r, errmsg);
        if (rv == CF_ENOTFOUND) {
            pki_done(req, node_response_not_found());
            return;
        }
        if (rv != CF_OK) {
            pki_done(req, node_response_error(500, "%s", errmsg));
            return;
        }
    } else {
        pki_role_init(&r);
    }
    json_t *warnings = json_array();
    int rv = pki_role_apply(&r, req->data, warnings, errmsg);
    if (rv != CF_OK) {
        pki_role_close(&r);
        json_decref(warnings);
        pki_done(req, rv == CF_ENOMEM ? NULL : node_response_error(400, "%s", errmsg));
        return;
    }
    struct pki_snap *s = pki_snap_get(e);
    if (s != NULL && strcmp(r.issuer_ref, "default") != 0 &&
        pki_snap_issuer(s, r.issuer_ref) == NULL) {
        char w[300];
        snprintf(w, sizeof(w), "issuer_ref %s does not resolve to an issuer of this mount yet",
                 r.issuer_ref);
        json_array_append_new(warnings, json_string(w));
    }
    pki_snap_release(s);
    json_t *j = pki_role_to_json(&r);
    pki_role_close(&r);
    char key[192];
    snprintf(key, sizeof(key), "role/%s", name);
    struct node_write *w = node_view_write(e->view);
    if (w != NULL && (j == NULL || pki_write_json(w, key, j) != CF_OK)) {
        node_write_free(w);
        w = NULL;
    }
    pki_commit_reply(req, w, j, warnings);
}

bool pki_role_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    if (strcmp(p, "roles/") == 0 || strcmp(p, "roles") == 0) {
        if (req->op != NODE_OP_LIST) {
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        json_t *keys = NULL;
        if (node_view_list(e->view, "role/", &keys) != CF_OK) {
            pki_done(req, NULL);
            return true;
        }
        if (json_array_size(keys) == 0) {
            json_decref(keys);
            pki_done(req, node_response_not_found());
            return true;
        }
        pki_done(req, node_response_data(json_pack("{s:o}", "keys", keys)));
        return true;
    }
    if (strncmp(p, "roles/", 6) != 0) {
        return false;
    }
    const char *name = p + 6;
    if (!role_name_ok(name)) {
        pki_done(req, node_response_error(400, "invalid role name %s", name));
        return true;
    }
    char errmsg[CF_ERRMSG_SIZE] = "";
    switch (req->op) {
        case NODE_OP_READ: {
            struct pki_role r;
            int rv = pki_role_load(e, name, &r, errmsg);
            if (rv == CF_ENOTFOUND) {
                pki_done(req, node_response_not_found());
            } else if (rv != CF_OK) {
                pki_done(req, node_response_error(500, "%s", errmsg));
            } else {
                pki_done(req, node_response_data(pki_role_to_json(&r)));
                pki_role_close(&r);
            }
            return true;
        }
        case NODE_OP_CREATE:
        case NODE_OP_UPDATE:
        case NODE_OP_PATCH:
            role_write(e, req, name);
            return true;
        case NODE_OP_DELETE: {
            char key[192];
            snprintf(key, sizeof(key), "role/%s", name);
            struct node_write *w = node_view_write(e->view);
            if (w != NULL && node_write_delete(w, key) != CF_OK) {
                node_write_free(w);
                w = NULL;
            }
            pki_commit_reply(req, w, NULL, NULL);
            return true;
        }
        case NODE_OP_LIST:
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
    }
    return true;
}

bool pki_role_exists(struct pki_engine *e, const char *rel_path)
{
    if (strncmp(rel_path, "roles/", 6) != 0) {
        return true;
    }
    uint64_t v;
    char key[192];
    snprintf(key, sizeof(key), "role/%s", rel_path + 6);
    return node_view_version(e->view, key, &v) == CF_OK;
}
