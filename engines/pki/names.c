/*
 * The role name policy (role.h, pki.md 2.4): which common names, DNS names, email addresses,
 * IP and URI SANs, other SANs, subject serial numbers and user ids a role lets into a
 * certificate, with Vault's messages.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "engines/pki/role.h"
#include "lib/mem.h"

bool pki_names_glob(const char *pattern, const char *s)
{
    /* '*' matches any run; iterative with one backtrack point, linear in practice. */
    const char *star = NULL;
    const char *resume = NULL;
    while (*s != '\0') {
        if (*pattern == '*') {
            star = pattern++;
            resume = s;
        } else if (*pattern == *s) {
            pattern++;
            s++;
        } else if (star != NULL) {
            pattern = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*') {
        pattern++;
    }
    return *pattern == '\0';
}

/* Hostname shape: optional "*." prefix, labels of letters, digits and inner hyphens, optional
 * trailing dot; 253 characters, labels of 63. */
static bool hostname_regex(const char *s)
{
    if (strncmp(s, "*.", 2) == 0) {
        s += 2;
    }
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n > 253) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!isalnum((unsigned char)c) && c != '-') {
                return false;
            }
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-') {
            return false;
        }
        start = i + 1;
    }
    return true;
}

/* IDNA ToASCII (non-transitional, then transitional); NULL when the name is not valid IDNA. */
/* True when IDNA processing would return name unchanged: labels of 1-63 lowercase letters,
 * digits and hyphens, none starting or ending with a hyphen or with hyphens in its third and
 * fourth places (which covers the "xn--" punycode labels idn2 has to check). The common case skips
 * libidn2's Unicode work. */
static bool plain_ldh(const char *name)
{
    size_t label = 0;
    for (const char *p = name;; p++) {
        if (*p == '.' || *p == '\0') {
            const char *first = p - label;
            if (label == 0 || label > 63 || first[0] == '-' || p[-1] == '-' ||
                (label >= 4 && first[2] == '-' && first[3] == '-')) {
                return false;
            }
            if (*p == '\0') {
                return true;
            }
            label = 0;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            return false;
        }
        label++;
    }
}

static char *to_ascii(const char *name)
{
    if (plain_ldh(name)) {
        return cf_strdup(name);
    }
    char *out = NULL;
    int rc = idn2_to_ascii_8z(name, &out, IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        out = NULL;
        rc = idn2_to_ascii_8z(name, &out, IDN2_TRANSITIONAL);
    }
    if (rc != IDN2_OK || out == NULL) {
        return NULL;
    }
    char *copy = cf_strdup(out);
    idn2_free(out);
    return copy;
}

bool pki_names_hostname_ascii(const char *name, char **ascii)
{
    bool wild = strncmp(name, "*.", 2) == 0;
    char *a = to_ascii(wild ? name + 2 : name);
    bool ok = a != NULL && hostname_regex(a);
    if (ok && ascii != NULL) {
        size_t n = strlen(a) + 3;
        *ascii = cf_malloc(n);
        if (*ascii == NULL) {
            ok = false;
        } else {
            snprintf(*ascii, n, "%s%s", wild ? "*." : "", a);
        }
    }
    cf_free(a);
    return ok;
}

static bool has_suffix_ci(const char *s, const char *suffix)
{
    size_t a = strlen(s);
    size_t b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static bool wildcard_label_ok(const char *label)
{
    /* "*", "*L", "L*", "L*L" with L a hostname label part. */
    const char *star = strchr(label, '*');
    if (star == NULL || strchr(star + 1, '*') != NULL) {
        return false;
    }
    for (const char *p = label; *p; p++) {
        if (p != star && !isalnum((unsigned char)*p) && *p != '-') {
            return false;
        }
    }
    return true;
}

bool pki_names_allowed(const struct pki_role *r, const char *name)
{
    if (name[0] == '\0') {
        return false;
    }
    const char *reduced = name;
    bool is_email = false;
    const char *at = strchr(name, '@');
    if (at != NULL) {
        if (strchr(at + 1, '@') != NULL) {
            return false;
        }
        reduced = at + 1;
        is_email = true;
    }
    bool is_wildcard = strchr(reduced, '*') != NULL;
    char label[256] = "";
    if (is_wildcard) {
        if (!r->allow_wildcard_certificates) {
            return false;
        }
        const char *dot = strchr(reduced, '.');
        size_t ll = dot != NULL ? (size_t)(dot - reduced) : strlen(reduced);
        if (ll >= sizeof(label)) {
            return false;
        }
        memcpy(label, reduced, ll);
        label[ll] = '\0';
        if (strchr(label, '*') == NULL || strchr(strchr(label, '*') + 1, '*') != NULL) {
            return false;
        }
        reduced = dot != NULL ? dot + 1 : "";
        if (strchr(reduced, '*') != NULL) {
            return false;
        }
    }
    if (is_email && is_wildcard) {
        return false;
    }
    if (r->enforce_hostnames) {
        if (reduced[0] != '\0') {
            char *a = to_ascii(reduced);
            bool ok = a != NULL && hostname_regex(a);
            cf_free(a);
            if (!ok) {
                return false;
            }
        }
        if (is_wildcard && !wildcard_label_ok(label)) {
            return false;
        }
    }
    if (r->allow_any_name) {
        return true;
    }
    if (r->allow_localhost) {
        if (strcasecmp(reduced, "localhost") == 0 || strcasecmp(reduced, "localdomain") == 0) {
            if (!is_wildcard || r->allow_subdomains) {
                return true;
            }
        }
        if (r->allow_subdomains &&
            (has_suffix_ci(reduced, ".localhost") || has_suffix_ci(reduced, ".localdomain"))) {
            return true;
        }
    }
    for (size_t i = 0; i < r->allowed_domains.n; i++) {
        const char *d = r->allowed_domains.v[i];
        if (d[0] == '\0') {
            continue;
        }
        if (r->allowed_domains_template && strstr(d, "{{") != NULL) {
            continue; /* identity templates need an entity; none exists here */
        }
        if (r->allow_bare_domains &&
            (strcasecmp(name, d) == 0 || (is_email && strcasecmp(reduced, d) == 0))) {
            return true;
        }
        if (r->allow_subdomains) {
            size_t dl = strlen(d);
            size_t rl = strlen(reduced);
            if (rl > dl + 1 && strcasecmp(reduced + rl - dl, d) == 0 &&
                reduced[rl - dl - 1] == '.') {
                return true;
            }
            if (is_wildcard && strcasecmp(reduced, d) == 0) {
                return true;
            }
        }
        if (r->allow_glob_domains && strchr(d, '*') != NULL && pki_names_glob(d, name)) {
            return true;
        }
    }
    return false;
}

int pki_names_check_cn(const struct pki_role *r, const char *cn, char *errmsg)
{
    if (cn == NULL || cn[0] == '\0' || (r->cn_validations & PKI_CN_VALIDATE_DISABLED)) {
        return CF_OK;
    }
    if (!pki_names_allowed(r, cn)) {
        cf_errmsg_printf(errmsg, "common name %s not allowed by this role", cn);
        return CF_EINVAL;
    }
    uint32_t need = strchr(cn, '@') != NULL ? PKI_CN_VALIDATE_EMAIL : PKI_CN_VALIDATE_HOSTNAME;
    uint32_t have = r->cn_validations != 0 ? r->cn_validations
                                           : (PKI_CN_VALIDATE_EMAIL | PKI_CN_VALIDATE_HOSTNAME);
    if ((have & need) == 0) {
        cf_errmsg_printf(errmsg, "common name %s not allowed by this role", cn);
        return CF_EINVAL;
    }
    return CF_OK;
}

int pki_names_check_dns(const struct pki_role *r, const struct pki_x509_strs *dns, char *errmsg)
{
    for (size_t i = 0; i < dns->n; i++) {
        if (!pki_names_allowed(r, dns->v[i])) {
            cf_errmsg_printf(errmsg, "subject alternate name %s not allowed by this role",
                             dns->v[i]);
            return CF_EINVAL;
        }
    }
    return CF_OK;
}

int pki_names_check_email(const struct pki_role *r, const struct pki_x509_strs *email, char *errmsg)
{
    for (size_t i = 0; i < email->n; i++) {
        if (!pki_names_allowed(r, email->v[i])) {
            cf_errmsg_printf(errmsg, "email address %s not allowed by this role", email->v[i]);
            return CF_EINVAL;
        }
    }
    return CF_OK;
}

/* Go's %q of s into out. */
static void go_quote(const char *s, char *out, size_t n)
{
    size_t o = 0;
    if (n < 3) {
        return;
    }
    out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < n; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

int pki_names_check_ips(const struct pki_role *r,
                        const struct pki_x509_strs *ips,
                        bool from_csr,
                        char *errmsg)
{
    if (ips->n > 0 && !r->allow_ip_sans) {
        cf_errmsg_printf(errmsg,
                         "IP Subject Alternative Names are not allowed in this role, but was "
                         "provided via %s",
                         from_csr ? "CSR" : "the API");
        return CF_EINVAL;
    }
    for (size_t i = 0; i < ips->n; i++) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, ips->v[i], buf) != 1 && inet_pton(AF_INET6, ips->v[i], buf) != 1) {
            char q[300];
            go_quote(ips->v[i], q, sizeof(q));
            cf_errmsg_printf(errmsg, "the value %s is not a valid IP address", q);
            return CF_EINVAL;
        }
    }
    return CF_OK;
}

static bool uri_valid(const char *u)
{
    if (!isalpha((unsigned char)u[0])) {
        return false;
    }
    const char *p = u;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '.' || *p == '-') {
        p++;
    }
    if (*p != ':') {
        return false;
    }
    for (p = u; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return true;
}

int pki_names_check_uris(const struct pki_role *r,
                         const struct pki_x509_strs *uris,
                         bool from_csr,
                         char *errmsg)
{
    const char *via = from_csr ? "CSR" : "the API";
    if (uris->n > 0 && r->allowed_uri_sans.n == 0) {
        cf_errmsg_printf(errmsg,
                         "URI Subject Alternative Names are not allowed in this role, but were "
                         "provided via %s",
                         via);
        return CF_EINVAL;
    }
    for (size_t i = 0; i < uris->n; i++) {
        if (!uri_valid(uris->v[i])) {
            char q[300];
            go_quote(uris->v[i], q, sizeof(q));
            cf_errmsg_printf(errmsg,
                             "the provided URI Subject Alternative Name %s is not a valid URI", q);
            return CF_EINVAL;
        }
        bool ok = false;
        for (size_t k = 0; k < r->allowed_uri_sans.n && !ok; k++) {
            const char *pat = r->allowed_uri_sans.v[k];
            if (r->allowed_uri_sans_template && strstr(pat, "{{") != NULL) {
                continue;
            }
            ok = pki_names_glob(pat, uris->v[i]);
        }
        if (!ok) {
            cf_errmsg_printf(errmsg,
                             "URI Subject Alternative Names were provided via %s which are not "
                             "valid for this role",
                             via);
            return CF_EINVAL;
        }
    }
    return CF_OK;
}

int pki_names_parse_other_san(const char *item, char **oid, char **value, char *errmsg)
{
    const char *semi = strchr(item, ';');
    const char *colon = semi != NULL ? strchr(semi, ':') : NULL;
    if (semi == NULL || colon == NULL) {
        cf_errmsg_printf(errmsg, "invalid other_sans value %s: expected <oid>;UTF8:<value>", item);
        return CF_EINVAL;
    }
    size_t tl = (size_t)(colon - semi - 1);
    if (!((tl == 4 && strncasecmp(semi + 1, "UTF8", 4) == 0) ||
          (tl == 5 && strncasecmp(semi + 1, "UTF-8", 5) == 0))) {
        cf_errmsg_printf(errmsg, "invalid other_sans value %s: only UTF8 values are supported",
                         item);
        return CF_EINVAL;
    }
    *oid = cf_strndup(item, (size_t)(semi - item));
    *value = cf_strdup(colon + 1);
    if (*oid == NULL || *value == NULL) {
        cf_free(*oid);
        cf_free(*value);
        return CF_ENOMEM;
    }
    return CF_OK;
}

int pki_names_check_other_sans(const struct pki_role *r,
                               const struct pki_x509_other_san *sans,
                               size_t n,
                               char *errmsg)
{
    for (size_t i = 0; i < n; i++) {
        bool oid_known = false;
        bool ok = false;
        for (size_t k = 0; k < r->allowed_other_sans.n && !ok; k++) {
            const char *a = r->allowed_other_sans.v[k];
            if (strcmp(a, "*") == 0) {
                ok = true;
                break;
            }
            char *oid = NULL;
            char *glob = NULL;
            char em[CF_ERRMSG_SIZE];
            if (pki_names_parse_other_san(a, &oid, &glob, em) != CF_OK) {
                continue;
            }
            if (strcmp(oid, sans[i].oid) == 0) {
                oid_known = true;
                ok = pki_names_glob(glob, sans[i].value);
            }
            cf_free(oid);
            cf_free(glob);
        }
        if (!ok) {
            if (oid_known) {
                cf_errmsg_printf(errmsg, "other SAN %s not allowed for OID %s by this role",
                                 sans[i].value, sans[i].oid);
            } else {
                cf_errmsg_printf(errmsg, "other SAN OID %s not allowed by this role", sans[i].oid);
            }
            return CF_EINVAL;
        }
    }
    return CF_OK;
}

int pki_names_check_serial_number(const struct pki_role *r, const char *sn, char *errmsg)
{
    if (sn == NULL || sn[0] == '\0') {
        return CF_OK;
    }
    for (size_t i = 0; i < r->allowed_serial_numbers.n; i++) {
        if (pki_names_glob(r->allowed_serial_numbers.v[i], sn)) {
            return CF_OK;
        }
    }
    cf_errmsg_printf(errmsg, "serial_number %s not allowed by this role", sn);
    return CF_EINVAL;
}

static void lower(const char *in, char *out, size_t n)
{
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++) {
        out[i] = (char)tolower((unsigned char)in[i]);
    }
    out[i] = '\0';
}

int pki_names_check_user_ids(const struct pki_role *r,
                             const struct pki_x509_strs *ids,
                             char *errmsg)
{
    for (size_t i = 0; i < ids->n; i++) {
        char id[512];
        lower(ids->v[i], id, sizeof(id));
        bool ok = false;
        for (size_t k = 0; k < r->allowed_user_ids.n && !ok; k++) {
            char pat[512];
            lower(r->allowed_user_ids.v[k], pat, sizeof(pat));
            ok = strcmp(pat, "*") == 0 || strcmp(pat, id) == 0 || pki_names_glob(pat, id);
        }
        if (!ok) {
            cf_errmsg_printf(errmsg, "user_id %s is not allowed by this role", ids->v[i]);
            return CF_EINVAL;
        }
    }
    return CF_OK;
}
