/*
 * The issuer/key snapshot of a PKI mount (issuer.h): reading config/issuer/, config/key/,
 * config/issuers and config/keys, parsing them once, computing chains, and the small entry
 * helpers the endpoints share.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <openssl/x509v3.h>

#define CF_LOG_MODULE "pki"
#include "engines/pki/issuer.h"
#include "lib/buf.h"
#include "lib/crypto.h"
#include "engines/pki/pki.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

static bool crl_set_of(const struct pki_issuer *is, char out[PKI_SET_ID_SIZE]);

/* Sources ------------------------------------------------------------------------------------ */

struct src_list
{
    char **keys;
    uint64_t *versions;
    size_t n;
    struct pki_engine *e;
    int error;
};

static int src_add(struct src_list *l, const char *key)
{
    uint64_t ver = 0;
    if (node_view_version(l->e->view, key, &ver) != CF_OK) {
        return CF_OK; /* raced away: not a source */
    }
    char **k = cf_realloc(l->keys, (l->n + 1) * sizeof(*k));
    if (k == NULL) {
        return CF_ENOMEM;
    }
    l->keys = k;
    uint64_t *v = cf_realloc(l->versions, (l->n + 1) * sizeof(*v));
    if (v == NULL) {
        return CF_ENOMEM;
    }
    l->versions = v;
    l->keys[l->n] = cf_strdup(key);
    if (l->keys[l->n] == NULL) {
        return CF_ENOMEM;
    }
    l->versions[l->n] = ver;
    l->n++;
    return CF_OK;
}

static int src_visit(void *arg, const char *key)
{
    struct src_list *l = arg;
    if (src_add(l, key) != CF_OK) {
        l->error = CF_ENOMEM;
        return 1;
    }
    return 0;
}

static void src_free(struct src_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        cf_free(l->keys[i]);
    }
    cf_free(l->keys);
    cf_free(l->versions);
    memset(l, 0, sizeof(*l));
}

/* The storage keys a snapshot depends on, with their versions. */
static int src_collect(struct pki_engine *e, struct src_list *l)
{
    memset(l, 0, sizeof(*l));
    l->e = e;
    int rv = node_view_scan(e->view, "config/issuer/", NULL, src_visit, l);
    if (rv == CF_OK || rv == 1) {
        rv = node_view_scan(e->view, "config/key/", NULL, src_visit, l);
    }
    if ((rv == CF_OK || rv == 1) && l->error == CF_OK) {
        rv = src_add(l, "config/issuers");
        if (rv == CF_OK) {
            rv = src_add(l, "config/keys");
        }
    } else {
        rv = l->error != CF_OK ? l->error : rv;
    }
    if (rv != CF_OK) {
        src_free(l);
    }
    return rv;
}

static bool src_same(const struct pki_snap *s, const struct src_list *l)
{
    if (s->n_src != l->n) {
        return false;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (s->src_versions[i] != l->versions[i] || strcmp(s->src_keys[i], l->keys[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* Parsing ------------------------------------------------------------------------------------ */

static json_t *load_json(struct pki_engine *e, const char *key)
{
    uint8_t *val = NULL;
    size_t len = 0;
    if (node_view_get(e->view, key, &val, &len) != CF_OK) {
        return NULL;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_cleanse(val, len);
    cf_free(val);
    return j;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static int parse_key(struct pki_engine *e, const char *skey, struct pki_key_ent *out)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    json_t *j = load_json(e, skey);
    const char *pem = jstr(j, "private_key");
    EVP_PKEY *pk = NULL;
    int rv = j == NULL ? CF_ECORRUPT : pki_key_from_pem(pem, strlen(pem), &pk, errmsg);
    if (rv == CF_OK) {
        rv = pki_key_describe(pk, &out->type, &out->bits, errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_key_fingerprint(pk, out->fingerprint, errmsg);
    }
    if (rv == CF_OK) {
        snprintf(out->id, sizeof(out->id), "%s", jstr(j, "id"));
        out->name = cf_strdup(jstr(j, "name"));
        out->pkey = pk;
        pk = NULL;
        if (out->name == NULL) {
            rv = CF_ENOMEM;
        }
        if (pki_key_sign_ctx_new(out->pkey, 0, false, &out->sign_default, errmsg) != CF_OK) {
            out->sign_default = NULL; /* each signature then makes its own */
        }
    } else {
        CF_LOG(CF_LOG_WARN, "skipping unreadable key entry %s: %s", skey, errmsg);
    }
    EVP_PKEY_free(pk);
    json_decref(j);
    return rv;
}

static enum pki_leaf_behavior leaf_behavior(const char *s)
{
    if (strcmp(s, "truncate") == 0) {
        return PKI_LEAF_TRUNCATE;
    }
    if (strcmp(s, "permit") == 0) {
        return PKI_LEAF_PERMIT;
    }
    return PKI_LEAF_ERR;
}

/* What leaf issuance copies from the issuer certificate (cert_der.h): its subject Name DER and
 * its subject key identifier. */
static int issuer_signing_parts(X509 *x, struct pki_issuer *out, char *errmsg)
{
    unsigned char *der = NULL;
    int n = i2d_X509_NAME(X509_get_subject_name(x), &der);
    if (n <= 0 || der == NULL) {
        return cf_err_from_ossl(errmsg, "encode issuer name");
    }
    out->subject_der = cf_memdup(der, (size_t)n);
    out->subject_der_len = (size_t)n;
    OPENSSL_free(der);
    if (out->subject_der == NULL) {
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x);
    ERR_clear_error();
    out->skid_len = 0;
    if (skid != NULL && (size_t)ASN1_STRING_length(skid) <= sizeof(out->skid)) {
        out->skid_len = (size_t)ASN1_STRING_length(skid);
        memcpy(out->skid, ASN1_STRING_get0_data(skid), out->skid_len);
    }
    return CF_OK;
}

static int parse_issuer(struct pki_engine *e, const char *skey, struct pki_issuer *out)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    json_t *j = load_json(e, skey);
    const char *pem = jstr(j, "certificate");
    X509 *x = NULL;
    int rv = j == NULL ? CF_ECORRUPT : pki_x509_cert_from_pem(pem, strlen(pem), &x, errmsg);
    if (rv == CF_OK) {
        rv = pki_x509_serial_hex(x, out->serial, errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_x509_not_after(x, &out->not_after);
    }
    if (rv == CF_OK) {
        rv = pki_x509_not_before(x, &out->not_before);
    }
    if (rv == CF_OK) {
        rv = pki_x509_cert_to_pem(x, &out->pem, errmsg);
    }
    if (rv == CF_OK) {
        rv = issuer_signing_parts(x, out, errmsg);
    }
    if (rv != CF_OK) {
        CF_LOG(CF_LOG_WARN, "skipping unreadable issuer entry %s: %s", skey, errmsg);
        X509_free(x);
        json_decref(j);
        return rv;
    }
    snprintf(out->id, sizeof(out->id), "%s", jstr(j, "id"));
    snprintf(out->key_id, sizeof(out->key_id), "%s", jstr(j, "key_id"));
    out->name = cf_strdup(jstr(j, "name"));
    out->cert = x;
    crl_set_of(out, out->crl_set);
    out->leaf_behavior = leaf_behavior(jstr(j, "leaf_not_after_behavior"));
    if (pki_usage_parse(json_object_get(j, "usage"), &out->usage, errmsg) != CF_OK) {
        out->usage = PKI_USAGE_ALL;
    }
    out->revoked = json_is_true(json_object_get(j, "revoked"));
    out->revocation_time = json_integer_value(json_object_get(j, "revocation_time"));
    const char *lm = json_string_value(json_object_get(j, "last_modified"));
    if (lm == NULL || cf_rfc3339_parse(lm, &out->last_modified) != CF_OK) {
        out->last_modified = 0;
    }
    out->entry = j;
    return out->name == NULL ? CF_ENOMEM : CF_OK;
}

/* The issuer's CRL set (issuers sharing key and subject share a CRL, pki.md 4.4): the first 32
 * hex digits of SHA-256("key_id/" + subject DER); "" without a key. */
static bool crl_set_of(const struct pki_issuer *is, char out[PKI_SET_ID_SIZE])
{
    out[0] = '\0';
    if (is->key_id[0] == '\0') {
        return false;
    }
    unsigned char *der = NULL;
    int n = i2d_X509_NAME(X509_get_subject_name(is->cert), &der);
    if (n <= 0) {
        return false;
    }
    struct cf_buf b;
    cf_buf_init(&b);
    uint8_t md[32];
    bool ok = cf_buf_append_str(&b, is->key_id) == CF_OK && cf_buf_append(&b, "/", 1) == CF_OK &&
              cf_buf_append(&b, der, (size_t)n) == CF_OK && cf_sha256(b.data, b.len, md) == CF_OK;
    OPENSSL_free(der);
    cf_buf_close(&b);
    if (!ok) {
        return false;
    }
    cf_hex_encode(md, 16, out);
    out[32] = '\0';
    return true;
}

static void issuer_close(struct pki_issuer *is)
{
    cf_free(is->name);
    X509_free(is->cert);
    cf_free(is->pem);
    cf_free(is->subject_der);
    json_decref(is->entry);
    for (size_t i = 0; i < is->n_chain; i++) {
        X509_free(is->chain[i]);
        cf_free(is->chain_pem[i]);
    }
    cf_free(is->chain);
    cf_free(is->chain_pem);
}

static int cmp_issuer(const void *a, const void *b)
{
    return strcmp(((const struct pki_issuer *)a)->id, ((const struct pki_issuer *)b)->id);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const struct pki_key_ent *)a)->id, ((const struct pki_key_ent *)b)->id);
}

/* Chains ------------------------------------------------------------------------------------- */

static int chain_set(struct pki_issuer *is, X509 *const *certs, size_t n)
{
    is->chain = cf_calloc(n, sizeof(*is->chain));
    is->chain_pem = cf_calloc(n, sizeof(*is->chain_pem));
    if (is->chain == NULL || is->chain_pem == NULL) {
        return CF_ENOMEM;
    }
    char errmsg[CF_ERRMSG_SIZE];
    for (size_t i = 0; i < n; i++) {
        if (pki_x509_cert_to_pem(certs[i], &is->chain_pem[i], errmsg) != CF_OK) {
            return CF_ENOMEM;
        }
        X509_up_ref(certs[i]);
        is->chain[i] = certs[i];
        is->n_chain = i + 1;
    }
    return CF_OK;
}

/* ca_chain of one issuer: manual_chain when set (unknown refs skipped), else built through every
 * issuer of the mount. */
static int chain_compute(struct pki_snap *s, struct pki_issuer *is)
{
    const json_t *manual = json_object_get(is->entry, "manual_chain");
    if (json_is_array(manual) && json_array_size(manual) > 0) {
        X509 **v = cf_calloc(json_array_size(manual), sizeof(*v));
        if (v == NULL) {
            return CF_ENOMEM;
        }
        size_t n = 0;
        size_t i;
        const json_t *ref;
        json_array_foreach(manual, i, ref)
        {
            const struct pki_issuer *p = pki_snap_issuer(s, json_string_value(ref));
            if (p != NULL) {
                v[n++] = p->cert;
            }
        }
        int rv = chain_set(is, v, n);
        cf_free(v);
        return rv;
    }
    X509 **pool = cf_calloc(s->n_issuers + 1, sizeof(*pool));
    if (pool == NULL) {
        return CF_ENOMEM;
    }
    for (size_t i = 0; i < s->n_issuers; i++) {
        pool[i] = s->issuers[i].cert;
    }
    struct pki_x509_chain c = {0};
    char errmsg[CF_ERRMSG_SIZE];
    int rv = pki_x509_chain_build(is->cert, pool, s->n_issuers, &c, errmsg);
    if (rv == CF_OK) {
        rv = chain_set(is, c.v, c.n);
    }
    pki_x509_chain_close(&c);
    cf_free(pool);
    return rv;
}

/* Snapshot ----------------------------------------------------------------------------------- */

void pki_snap_release(struct pki_snap *s)
{
    if (s == NULL || --s->refs > 0) {
        return;
    }
    for (size_t i = 0; i < s->n_issuers; i++) {
        issuer_close(&s->issuers[i]);
    }
    cf_free(s->issuers);
    for (size_t i = 0; i < s->n_keys; i++) {
        cf_free(s->keys[i].name);
        EVP_PKEY_free(s->keys[i].pkey);
        EVP_MD_CTX_free(s->keys[i].sign_default);
    }
    cf_free(s->keys);
    for (size_t i = 0; i < s->n_src; i++) {
        cf_free(s->src_keys[i]);
    }
    cf_free(s->src_keys);
    cf_free(s->src_versions);
    cf_free(s);
}

static struct pki_snap *snap_build(struct pki_engine *e, struct src_list *l)
{
    struct pki_snap *s = cf_calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->refs = 1;
    s->issuers = cf_calloc(l->n + 1, sizeof(*s->issuers));
    s->keys = cf_calloc(l->n + 1, sizeof(*s->keys));
    if (s->issuers == NULL || s->keys == NULL) {
        pki_snap_release(s);
        return NULL;
    }
    int rv = CF_OK;
    for (size_t i = 0; i < l->n && rv != CF_ENOMEM; i++) {
        const char *k = l->keys[i];
        if (strncmp(k, "config/issuer/", 14) == 0) {
            rv = parse_issuer(e, k, &s->issuers[s->n_issuers]);
            if (rv == CF_OK) {
                s->n_issuers++;
            } else {
                issuer_close(&s->issuers[s->n_issuers]);
                memset(&s->issuers[s->n_issuers], 0, sizeof(s->issuers[0]));
            }
        } else if (strncmp(k, "config/key/", 11) == 0) {
            rv = parse_key(e, k, &s->keys[s->n_keys]);
            if (rv == CF_OK) {
                s->n_keys++;
            } else {
                cf_free(s->keys[s->n_keys].name);
                EVP_PKEY_free(s->keys[s->n_keys].pkey);
                EVP_MD_CTX_free(s->keys[s->n_keys].sign_default);
                memset(&s->keys[s->n_keys], 0, sizeof(s->keys[0]));
            }
        }
    }
    if (rv == CF_ENOMEM) {
        pki_snap_release(s);
        return NULL;
    }
    qsort(s->issuers, s->n_issuers, sizeof(*s->issuers), cmp_issuer);
    qsort(s->keys, s->n_keys, sizeof(*s->keys), cmp_key);
    json_t *ci = load_json(e, "config/issuers");
    snprintf(s->default_issuer, sizeof(s->default_issuer), "%s", jstr(ci, "default"));
    s->default_follows_latest = json_is_true(json_object_get(ci, "default_follows_latest_issuer"));
    json_decref(ci);
    json_t *ck = load_json(e, "config/keys");
    snprintf(s->default_key, sizeof(s->default_key), "%s", jstr(ck, "default"));
    json_decref(ck);
    for (size_t i = 0; i < s->n_issuers; i++) {
        struct pki_issuer *is = &s->issuers[i];
        is->key = is->key_id[0] ? pki_snap_key(s, is->key_id) : NULL;
        if (chain_compute(s, is) != CF_OK) {
            pki_snap_release(s);
            return NULL;
        }
    }
    s->src_keys = l->keys;
    s->src_versions = l->versions;
    s->n_src = l->n;
    memset(l, 0, sizeof(*l));
    return s;
}

struct pki_snap *pki_snap_get(struct pki_engine *e)
{
    struct src_list l;
    if (src_collect(e, &l) != CF_OK) {
        return NULL;
    }
    if (e->snap != NULL && src_same(e->snap, &l)) {
        src_free(&l);
        e->snap->refs++;
        return e->snap;
    }
    struct pki_snap *s = snap_build(e, &l);
    src_free(&l);
    if (s == NULL) {
        return NULL;
    }
    pki_snap_release(e->snap);
    e->snap = s;
    s->refs++;
    return s;
}

void pki_snap_drop(struct pki_engine *e)
{
    pki_snap_release(e->snap);
    e->snap = NULL;
}

const struct pki_issuer *pki_snap_issuer(const struct pki_snap *s, const char *ref)
{
    if (s == NULL || ref == NULL || ref[0] == '\0') {
        return NULL;
    }
    if (strcmp(ref, "default") == 0) {
        ref = s->default_issuer;
    }
    for (size_t i = 0; i < s->n_issuers; i++) {
        if (strcmp(s->issuers[i].id, ref) == 0) {
            return &s->issuers[i];
        }
    }
    for (size_t i = 0; i < s->n_issuers; i++) {
        if (s->issuers[i].name[0] != '\0' && strcmp(s->issuers[i].name, ref) == 0) {
            return &s->issuers[i];
        }
    }
    return NULL;
}

const struct pki_key_ent *pki_snap_key(const struct pki_snap *s, const char *ref)
{
    if (s == NULL || ref == NULL || ref[0] == '\0') {
        return NULL;
    }
    if (strcmp(ref, "default") == 0) {
        ref = s->default_key;
    }
    for (size_t i = 0; i < s->n_keys; i++) {
        if (strcmp(s->keys[i].id, ref) == 0) {
            return &s->keys[i];
        }
    }
    for (size_t i = 0; i < s->n_keys; i++) {
        if (s->keys[i].name[0] != '\0' && strcmp(s->keys[i].name, ref) == 0) {
            return &s->keys[i];
        }
    }
    return NULL;
}

const struct pki_issuer *pki_snap_issuer_by_serial(const struct pki_snap *s, const char *serial)
{
    for (size_t i = 0; s != NULL && i < s->n_issuers; i++) {
        if (strcmp(s->issuers[i].serial, serial) == 0) {
            return &s->issuers[i];
        }
    }
    return NULL;
}

const struct pki_issuer *pki_snap_issuer_of(const struct pki_snap *s, X509 *x)
{
    for (size_t i = 0; i < s->n_issuers; i++) {
        const struct pki_issuer *is = &s->issuers[i];
        if (X509_check_issued(is->cert, x) == X509_V_OK &&
            X509_verify(x, X509_get0_pubkey(is->cert)) == 1) {
            return is;
        }
    }
    return NULL;
}

const struct pki_key_ent *pki_snap_key_by_fingerprint(const struct pki_snap *s, const char *fp)
{
    for (size_t i = 0; s != NULL && i < s->n_keys; i++) {
        if (strcmp(s->keys[i].fingerprint, fp) == 0) {
            return &s->keys[i];
        }
    }
    return NULL;
}

/* Names, usage, entries ---------------------------------------------------------------------- */

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

int pki_name_check(const char *name, const char *what, char *errmsg)
{
    if (name[0] == '\0') {
        return CF_OK;
    }
    if (strcmp(name, "default") == 0) {
        cf_errmsg_printf(errmsg, "reserved keyword 'default' can not be used as %s name", what);
        return CF_EINVAL;
    }
    size_t n = strlen(name);
    bool ok = word_char(name[0]) && word_char(name[n - 1]);
    for (size_t i = 0; ok && i < n; i++) {
        ok = word_char(name[i]) || name[i] == '.' || name[i] == '-';
    }
    if (!ok) {
        cf_errmsg_printf(errmsg, "%s name contained invalid characters", what);
        return CF_EINVAL;
    }
    return CF_OK;
}

int pki_usage_parse(const json_t *list, uint32_t *out, char *errmsg)
{
    uint32_t u = 0;
    size_t i;
    const json_t *v;
    if (!json_is_array(list)) {
        cf_errmsg_printf(errmsg, "usage must be a list");
        return CF_EINVAL;
    }
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL) {
            cf_errmsg_printf(errmsg, "usage must be a list of strings");
            return CF_EINVAL;
        }
        if (strcmp(s, "read-only") == 0) {
            continue;
        }
        if (strcmp(s, "issuing-certificates") == 0) {
            u |= PKI_USAGE_ISSUING;
        } else if (strcmp(s, "crl-signing") == 0) {
            u |= PKI_USAGE_CRL;
        } else if (strcmp(s, "ocsp-signing") == 0) {
            u |= PKI_USAGE_OCSP;
        } else {
            cf_errmsg_printf(errmsg, "Unable to parse specified usages: unknown usage: %s", s);
            return CF_EINVAL;
        }
    }
    *out = u;
    return CF_OK;
}

const char *pki_usage_text(uint32_t usage, char *buf, size_t n)
{
    snprintf(buf, n, "read-only%s%s%s", (usage & PKI_USAGE_ISSUING) ? ",issuing-certificates" : "",
             (usage & PKI_USAGE_CRL) ? ",crl-signing" : "",
             (usage & PKI_USAGE_OCSP) ? ",ocsp-signing" : "");
    return buf;
}

json_t *pki_issuer_entry_new(const char *id, const char *name, const char *key_id, const char *pem)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:n, s:s, s:[ssss], s:s, s:[], s:[], s:[], s:[],"
        " s:b, s:b, s:i}",
        "id", id, "name", name, "key_id", key_id, "certificate", pem, "manual_chain",
        "leaf_not_after_behavior", "err", "usage", "read-only", "issuing-certificates",
        "crl-signing", "ocsp-signing", "revocation_signature_algorithm", "", "issuing_certificates",
        "crl_distribution_points", "delta_crl_distribution_points", "ocsp_servers",
        "enable_aia_url_templating", 0, "revoked", 0, "revocation_time", 0);
}

json_t *pki_key_entry_new(const char *id,
                          const char *name,
                          enum pki_key_type type,
                          int bits,
                          const char *private_pem)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:s}", "id", id, "name", name, "type",
                     pki_key_type_name(type), "bits", bits, "private_key", private_pem);
}

static json_t *copy_list(const json_t *entry, const char *k)
{
    const json_t *v = json_object_get(entry, k);
    return json_is_array(v) ? json_deep_copy(v) : json_array();
}

json_t *pki_issuer_json(const struct pki_snap *s, const struct pki_issuer *is)
{
    (void)s;
    char ubuf[96];
    json_t *chain = json_array();
    for (size_t i = 0; chain != NULL && i < is->n_chain; i++) {
        json_array_append_new(chain, json_string(is->chain_pem[i]));
    }
    const json_t *manual = json_object_get(is->entry, "manual_chain");
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:O, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:b}",
        "issuer_id", is->id, "issuer_name", is->name, "key_id", is->key_id, "certificate", is->pem,
        "ca_chain", chain, "manual_chain",
        json_is_array(manual) && json_array_size(manual) ? manual : json_null(), "serial_number",
        is->serial, "leaf_not_after_behavior",
        jstr(is->entry, "leaf_not_after_behavior")[0] ? jstr(is->entry, "leaf_not_after_behavior")
                                                      : "err",
        "usage", pki_usage_text(is->usage, ubuf, sizeof(ubuf)), "revocation_signature_algorithm",
        jstr(is->entry, "revocation_signature_algorithm"), "issuing_certificates",
        copy_list(is->entry, "issuing_certificates"), "crl_distribution_points",
        copy_list(is->entry, "crl_distribution_points"), "delta_crl_distribution_points",
        copy_list(is->entry, "delta_crl_distribution_points"), "ocsp_servers",
        copy_list(is->entry, "ocsp_servers"), "enable_aia_url_templating",
        json_is_true(json_object_get(is->entry, "enable_aia_url_templating")), "revoked",
        is->revoked);
    if (o != NULL && is->revoked) {
        char ts[CF_RFC3339_SIZE];
        cf_rfc3339(is->revocation_time, ts);
        json_object_set_new(o, "revocation_time", json_integer(is->revocation_time));
        json_object_set_new(o, "revocation_time_rfc3339", json_string(ts));
    }
    return o;
}
