/* Request parameters shared by CA generation and issuance (params.h). */
#include "engines/pki/params.h"

#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include "engines/pki/der.h"
#include "engines/pki/field.h"
#include "engines/pki/role.h"
#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

int pki_params_format(const json_t *data, enum pki_format *out, char *errmsg)
{
    const char *s = json_string_value(json_object_get(data, "format"));
    if (s == NULL || s[0] == '\0' || strcmp(s, "pem") == 0) {
        *out = PKI_FORMAT_PEM;
    } else if (strcmp(s, "der") == 0) {
        *out = PKI_FORMAT_DER;
    } else if (strcmp(s, "pem_bundle") == 0) {
        *out = PKI_FORMAT_PEM_BUNDLE;
    } else {
        cf_errmsg_printf(
            errmsg, "the \"format\" path parameter must be \"pem\", \"der\", or \"pem_bundle\"");
        return CF_EINVAL;
    }
    return CF_OK;
}

/* Appends each string of the request list @name to @l, skipping duplicates. */
static int add_list(const json_t *data, const char *name, struct pki_x509_strs *l, char *errmsg)
{
    json_t *arr = NULL;
    int rv = pki_field_strings(data, name, &arr, errmsg);
    if (rv == CF_ENOTFOUND) {
        return CF_OK;
    }
    if (rv != CF_OK) {
        return rv;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        bool dup = false;
        for (size_t k = 0; k < l->n && !dup; k++) {
            dup = strcmp(l->v[k], json_string_value(v)) == 0;
        }
        if (!dup && (rv = pki_x509_strs_add(l, json_string_value(v))) != CF_OK) {
            break;
        }
    }
    json_decref(arr);
    return rv;
}

int pki_params_subject(const json_t *data,
                       struct pki_x509_template *t,
                       bool with_user_ids,
                       char *errmsg)
{
    const char *cn = json_string_value(json_object_get(data, "common_name"));
    if (cn != NULL && cn[0] != '\0') {
        cf_free(t->common_name);
        t->common_name = cf_strdup(cn);
        if (t->common_name == NULL) {
            return CF_ENOMEM;
        }
    }
    const char *sn = json_string_value(json_object_get(data, "serial_number"));
    if (sn != NULL && sn[0] != '\0') {
        cf_free(t->serial_number);
        t->serial_number = cf_strdup(sn);
        if (t->serial_number == NULL) {
            return CF_ENOMEM;
        }
    }
    struct
    {
        const char *name;
        struct pki_x509_strs *l;
    } lists[] = {
        {"ou", &t->ou},
        {"organization", &t->organization},
        {"country", &t->country},
        {"locality", &t->locality},
        {"province", &t->province},
        {"street_address", &t->street_address},
        {"postal_code", &t->postal_code},
        {"user_ids", with_user_ids ? &t->user_ids : NULL},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (lists[i].l == NULL) {
            continue;
        }
        int rv = add_list(data, lists[i].name, lists[i].l, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

static int parse_other_san(const char *item, struct pki_x509_template *t, char *errmsg)
{
    const char *semi = strchr(item, ';');
    if (semi == NULL) {
        cf_errmsg_printf(errmsg, "error parsing other_sans: expected a semicolon in other SAN %s",
                         item);
        return CF_EINVAL;
    }
    const char *colon = strchr(semi, ':');
    if (colon == NULL) {
        cf_errmsg_printf(errmsg, "error parsing other_sans: expected a colon in other SAN %s",
                         item);
        return CF_EINVAL;
    }
    size_t tlen = (size_t)(colon - semi - 1);
    if (!((tlen == 4 && strncasecmp(semi + 1, "UTF8", 4) == 0) ||
          (tlen == 5 && strncasecmp(semi + 1, "UTF-8", 5) == 0))) {
        cf_errmsg_printf(errmsg,
                         "error parsing other_sans: only UTF8 other SANs are supported, got %.*s",
                         (int)tlen, semi + 1);
        return CF_EINVAL;
    }
    char *oid = cf_strndup(item, (size_t)(semi - item));
    if (oid == NULL) {
        return CF_ENOMEM;
    }
    int rv = pki_x509_template_add_other_san(t, oid, colon + 1);
    cf_free(oid);
    return rv;
}

int pki_params_sans(const json_t *data, struct pki_x509_template *t, char *errmsg)
{
    json_t *alt = NULL;
    int rv = pki_field_strings(data, "alt_names", &alt, errmsg);
    if (rv == CF_OK) {
        size_t i;
        json_t *v;
        json_array_foreach(alt, i, v)
        {
            const char *s = json_string_value(v);
            struct pki_x509_strs *l = strchr(s, '@') != NULL ? &t->email : &t->dns;
            bool dup = false;
            for (size_t k = 0; k < l->n && !dup; k++) {
                dup = strcmp(l->v[k], s) == 0;
            }
            if (!dup && (rv = pki_x509_strs_add(l, s)) != CF_OK) {
                break;
            }
        }
        json_decref(alt);
    }
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    if ((rv = add_list(data, "ip_sans", &t->ip, errmsg)) != CF_OK ||
        (rv = add_list(data, "uri_sans", &t->uri, errmsg)) != CF_OK) {
        return rv;
    }
    json_t *others = NULL;
    rv = pki_field_strings(data, "other_sans", &others, errmsg);
    if (rv == CF_ENOTFOUND) {
        return CF_OK;
    }
    if (rv != CF_OK) {
        return rv;
    }
    size_t i;
    json_t *v;
    json_array_foreach(others, i, v)
    {
        if ((rv = parse_other_san(json_string_value(v), t, errmsg)) != CF_OK) {
            break;
        }
    }
    json_decref(others);
    return rv;
}

int pki_params_cn_to_sans(struct pki_x509_template *t, char *errmsg)
{
    (void)errmsg;
    const char *cn = t->common_name;
    if (cn == NULL || cn[0] == '\0') {
        return CF_OK;
    }
    struct pki_x509_strs *l = NULL;
    char *ascii = NULL;
    if (strchr(cn, '@') != NULL) {
        l = &t->email;
    } else if (pki_names_hostname_ascii(cn, &ascii)) {
        l = &t->dns;
        cn = ascii; /* the DNS SAN carries the IDNA form */
    } else {
        return CF_OK;
    }
    for (size_t k = 0; k < l->n; k++) {
        if (strcmp(l->v[k], cn) == 0) {
            cf_free(ascii);
            return CF_OK;
        }
    }
    /* Vault puts the CN first. */
    int rv = pki_x509_strs_add(l, cn);
    cf_free(ascii);
    if (rv == CF_OK && l->n > 1) {
        char *last = l->v[l->n - 1];
        memmove(&l->v[1], &l->v[0], (l->n - 1) * sizeof(char *));
        l->v[0] = last;
    }
    return rv;
}

int pki_params_new_key(const json_t *data, enum pki_key_type *type, int *bits, char *errmsg)
{
    const char *kt = json_string_value(json_object_get(data, "key_type"));
    if (kt == NULL || kt[0] == '\0') {
        kt = "rsa";
    }
    int rv = pki_key_type_parse(kt, type, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    int64_t b = 0;
    rv = pki_field_int(data, "key_bits", &b, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    return pki_key_bits_resolve(*type, (int)b, bits, errmsg);
}

int pki_params_signature(const json_t *data,
                         enum pki_key_type signer_type,
                         struct pki_x509_template *t,
                         char *errmsg)
{
    int64_t sb = 0;
    int rv = pki_field_int(data, "signature_bits", &sb, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    if (rv == CF_OK) {
        if ((rv = pki_key_signature_bits_check(signer_type, (int)sb, errmsg)) != CF_OK) {
            return rv;
        }
        t->signature_bits = (int)sb;
    }
    bool pss = false;
    rv = pki_field_bool(data, "use_pss", &pss, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    if (rv == CF_OK) {
        t->use_pss = pss;
    }
    return CF_OK;
}

static void fmt_duration(int64_t s, char *out, size_t n)
{
    /* Go's Duration.String for whole seconds: "768h0m0s". */
    snprintf(out, n, "%lldh%lldm%llds", (long long)(s / 3600), (long long)(s % 3600 / 60),
             (long long)(s % 60));
}

int pki_params_validity(const json_t *data,
                        int64_t role_ttl,
                        int64_t role_max_ttl,
                        const char *role_not_after,
                        int64_t not_before_duration,
                        int64_t mount_default,
                        int64_t mount_max,
                        int64_t now,
                        struct pki_x509_template *t,
                        json_t *warnings,
                        char *errmsg)
{
    int64_t ttl = 0;
    int rv = pki_field_seconds(data, "ttl", &ttl, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    const char *na = json_string_value(json_object_get(data, "not_after"));
    if (na != NULL && na[0] == '\0') {
        na = NULL;
    }
    if (na == NULL && role_not_after != NULL && role_not_after[0] != '\0') {
        na = role_not_after;
    }
    if (ttl > 0 && na != NULL) {
        cf_errmsg_printf(errmsg,
                         "Either ttl or not_after should be provided. Both should not be "
                         "provided in the same request.");
        return CF_EINVAL;
    }
    if (ttl == 0) {
        ttl = role_ttl;
    }
    if (ttl == 0) {
        ttl = mount_default;
    }
    int64_t max = role_max_ttl > 0 ? role_max_ttl : mount_max;
    if (max > 0 && ttl > max && na == NULL) {
        if (warnings != NULL) {
            char a[48];
            char b[48];
            char w[160];
            fmt_duration(ttl, a, sizeof(a));
            fmt_duration(max, b, sizeof(b));
            snprintf(w, sizeof(w),
                     "TTL \"%s\" is longer than permitted maxTTL \"%s\", so maxTTL is being used",
                     a, b);
            json_array_append_new(warnings, json_string(w));
        }
        ttl = max;
    }
    if (na != NULL) {
        int64_t at = 0;
        if (cf_rfc3339_parse(na, &at) != CF_OK) {
            cf_errmsg_printf(errmsg,
                             "parsing time \"%s\" as \"2006-01-02T15:04:05Z07:00\": cannot "
                             "parse \"%s\" as \"2006\"",
                             na, na);
            return CF_EINVAL;
        }
        t->not_after = at;
    } else {
        t->not_after = now + ttl;
    }
    t->not_before = now - not_before_duration;
    return CF_OK;
}

int pki_params_cap_to_issuer(struct pki_x509_template *t,
                             int64_t issuer_not_after,
                             int behavior,
                             int64_t now,
                             char *errmsg)
{
    if (t->not_after <= issuer_not_after || behavior == 2) {
        return CF_OK;
    }
    if (behavior == 1) {
        if (issuer_not_after < now) {
            char a[CF_RFC3339_SIZE];
            cf_rfc3339_nano(issuer_not_after * 1000000000, a);
            cf_errmsg_printf(errmsg, "cannot satisfy request, as NotAfter date %s is in the past",
                             a);
            return CF_EINVAL;
        }
        t->not_after = issuer_not_after;
        return CF_OK;
    }
    char a[CF_RFC3339_SIZE];
    char b[CF_RFC3339_SIZE];
    cf_rfc3339_nano(t->not_after * 1000000000, a);
    cf_rfc3339_nano(issuer_not_after * 1000000000, b);
    cf_errmsg_printf(errmsg,
                     "cannot satisfy request, as TTL would result in notAfter of %s that is "
                     "beyond the expiration of the CA certificate at %s",
                     a, b);
    return CF_EINVAL;
}

int pki_params_ca(const json_t *data, struct pki_x509_template *t, char *errmsg)
{
    int64_t mpl = -1;
    int rv = pki_field_int(data, "max_path_length", &mpl, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    t->is_ca = true;
    t->max_path_length = mpl < 0 ? -1 : (int)mpl;
    t->key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    json_t *ku = NULL;
    if (pki_field_strings(data, "key_usage", &ku, errmsg) == CF_OK) {
        size_t i;
        json_t *v;
        json_array_foreach(ku, i, v)
        {
            if (strcasecmp(json_string_value(v), "DigitalSignature") == 0) {
                t->key_usage |= PKI_KU_DIGITAL_SIGNATURE;
            }
        }
        json_decref(ku);
    }
    struct
    {
        const char *name;
        struct pki_x509_strs *l;
    } lists[] = {
        {"permitted_dns_domains", &t->permitted_dns_domains},
        {"excluded_dns_domains", &t->excluded_dns_domains},
        {"permitted_ip_ranges", &t->permitted_ip_ranges},
        {"excluded_ip_ranges", &t->excluded_ip_ranges},
        {"permitted_email_addresses", &t->permitted_email_addresses},
        {"excluded_email_addresses", &t->excluded_email_addresses},
        {"permitted_uri_domains", &t->permitted_uri_domains},
        {"excluded_uri_domains", &t->excluded_uri_domains},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if ((rv = add_list(data, lists[i].name, lists[i].l, errmsg)) != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

/* One certificate in the requested encoding (PEM text or base64 DER); cf_free. */
static char *cert_text(X509 *x, enum pki_format fmt, char *errmsg)
{
    char *out = NULL;
    int rv = fmt == PKI_FORMAT_DER ? pki_x509_cert_to_base64(x, &out, errmsg)
                                   : pki_x509_cert_to_pem(x, &out, errmsg);
    return rv == CF_OK ? out : NULL;
}

/* The certificate being returned, in whichever form the caller holds it. */
struct leaf_in
{
    char *text; /* owned: the certificate in the requested encoding */
    const char *serial;
    int64_t expiration;
    char *keytext; /* owned, cleansed: the private key in the requested encoding, or NULL */
    const char *key_type;
};

/* The issuer chain: the X509s, and their PEM text when already made (else NULL). */
struct chain_in
{
    X509 *const *certs;
    char *const *pem;
    size_t n;
};

static char *chain_text(const struct chain_in *c, size_t i, enum pki_format fmt, char *errmsg)
{
    if (c->pem != NULL && fmt != PKI_FORMAT_DER) {
        return cf_strdup(c->pem[i]);
    }
    return cert_text(c->certs[i], fmt, errmsg);
}

/* A JSON string of PEM or base64 text, which is ASCII by construction (jansson's UTF-8 check
 * of every byte is skipped). */
static json_t *ascii(const char *s)
{
    return json_stringn_nocheck(s, strlen(s));
}

/* Assembles the response data from the parts; consumes in->text and in->keytext. */
static json_t *cert_data(struct leaf_in *in,
                         const struct chain_in *c,
                         enum pki_format fmt,
                         bool remove_roots,
                         bool with_chain,
                         char *errmsg)
{
    json_t *d = json_object();
    char *issuing = c->n > 0 ? chain_text(c, 0, fmt, errmsg) : cf_strdup(in->text);
    json_t *chain = json_array();
    struct cf_buf bundle;
    cf_buf_init(&bundle);
    bool ok = d != NULL && in->text != NULL && issuing != NULL && chain != NULL;
    if (ok && fmt == PKI_FORMAT_PEM_BUNDLE && in->keytext != NULL) {
        ok = cf_buf_append(&bundle, in->keytext, strlen(in->keytext)) == CF_OK &&
             cf_buf_append(&bundle, "\n", 1) == CF_OK;
    }
    if (ok && fmt == PKI_FORMAT_PEM_BUNDLE) {
        ok = cf_buf_append(&bundle, in->text, strlen(in->text)) == CF_OK;
    }
    for (size_t i = 0; ok && i < c->n; i++) {
        if (remove_roots && pki_x509_is_self_issued(c->certs[i])) {
            continue;
        }
        char *t = chain_text(c, i, fmt, errmsg);
        ok = t != NULL && json_array_append_new(chain, ascii(t)) == 0;
        if (ok && fmt == PKI_FORMAT_PEM_BUNDLE) {
            ok = cf_buf_append(&bundle, "\n", 1) == CF_OK &&
                 cf_buf_append(&bundle, t, strlen(t)) == CF_OK;
        }
        cf_free(t);
    }
    if (ok && fmt == PKI_FORMAT_PEM_BUNDLE) {
        ok = cf_buf_append(&bundle, "", 1) == CF_OK;
    }
    if (ok) {
        ok = json_object_set_new(
                 d, "certificate",
                 ascii(fmt == PKI_FORMAT_PEM_BUNDLE ? (char *)bundle.data : in->text)) == 0 &&
             json_object_set_new(d, "issuing_ca", ascii(issuing)) == 0 &&
             json_object_set_new(d, "serial_number", json_string(in->serial)) == 0 &&
             json_object_set_new(d, "expiration", json_integer(in->expiration)) == 0;
    }
    if (ok && with_chain && json_array_size(chain) > 0) {
        ok = json_object_set(d, "ca_chain", chain) == 0;
    }
    if (ok && in->keytext != NULL) {
        ok = json_object_set_new(d, "private_key", ascii(in->keytext)) == 0 &&
             json_object_set_new(d, "private_key_type", json_string(in->key_type)) == 0;
    }
    if (in->keytext != NULL) {
        cf_cleanse(in->keytext, strlen(in->keytext));
        cf_free(in->keytext);
        in->keytext = NULL;
    }
    cf_buf_close_secure(&bundle);
    cf_free(in->text);
    in->text = NULL;
    cf_free(issuing);
    json_decref(chain);
    if (!ok) {
        json_decref(d);
        return NULL;
    }
    return d;
}

json_t *pki_params_cert_data(X509 *cert,
                             X509 *const *issuer_chain,
                             size_t n_chain,
                             EVP_PKEY *key,
                             enum pki_format fmt,
                             enum pki_key_format key_fmt,
                             bool remove_roots,
                             bool with_chain,
                             char *errmsg)
{
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    struct leaf_in in = {.serial = serial};
    struct chain_in c = {.certs = issuer_chain, .n = n_chain};
    enum pki_key_type kt;
    int bits;
    bool ok = pki_x509_serial_hex(cert, serial, errmsg) == CF_OK &&
              pki_x509_not_after(cert, &in.expiration) == CF_OK;
    if (ok && key != NULL) {
        ok = pki_key_describe(key, &kt, &bits, errmsg) == CF_OK &&
             pki_key_to_text(key, key_fmt, fmt != PKI_FORMAT_DER, &in.keytext, errmsg) == CF_OK;
        in.key_type = ok ? pki_key_type_name(kt) : NULL;
    }
    if (ok) {
        in.text = cert_text(cert, fmt, errmsg);
        return cert_data(&in, &c, fmt, remove_roots, with_chain, errmsg);
    }
    if (in.keytext != NULL) {
        cf_cleanse(in.keytext, strlen(in.keytext));
        cf_free(in.keytext);
    }
    return NULL;
}

json_t *pki_params_leaf_data(const uint8_t *der,
                             size_t der_len,
                             const char *serial,
                             int64_t not_after,
                             X509 *const *issuer_chain,
                             char *const *issuer_chain_pem,
                             size_t n_chain,
                             const struct pki_leaf_key *key,
                             enum pki_format fmt,
                             enum pki_key_format key_fmt,
                             bool remove_roots,
                             char *errmsg)
{
    struct leaf_in in = {.serial = serial, .expiration = not_after};
    struct chain_in c = {.certs = issuer_chain, .pem = issuer_chain_pem, .n = n_chain};
    if (key != NULL) {
        if (pki_leaf_key_text(key, key_fmt, fmt != PKI_FORMAT_DER, &in.keytext, errmsg) != CF_OK) {
            return NULL;
        }
        in.key_type = pki_key_type_name(key->type);
    }
    in.text = pki_der_to_text(der, der_len, "CERTIFICATE", fmt != PKI_FORMAT_DER);
    return cert_data(&in, &c, fmt, remove_roots, true, errmsg);
}
