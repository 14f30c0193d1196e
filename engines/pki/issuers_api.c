/*
 * Issuer and key management endpoints (pki.md 1.1, 1.3-1.5): LIST issuers / keys, issuer/:ref
 * and key/:ref read, update, patch and delete, config/issuers, root/replace, config/keys,
 * DELETE root, and the imports (config/ca, issuers/import/bundle|cert, intermediate/set-signed,
 * keys/import). Nothing here needs the worker pool: parsing a bundle is cheap.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/field.h"
#include "engines/pki/issuer.h"
#include "engines/pki/pki.h"
#include "lib/crypto.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

static struct node_response *bad(const char *msg)
{
    return node_response_error(400, "%s", msg);
}

/* LIST --------------------------------------------------------------------------------------- */

static void list_issuers(struct node_request *req, const struct pki_snap *s)
{
    json_t *keys = json_array();
    json_t *info = json_object();
    for (size_t i = 0; keys != NULL && info != NULL && i < s->n_issuers; i++) {
        const struct pki_issuer *is = &s->issuers[i];
        json_array_append_new(keys, json_string(is->id));
        json_object_set_new(info, is->id,
                            json_pack("{s:s, s:b, s:s, s:s}", "issuer_name", is->name, "is_default",
                                      strcmp(is->id, s->default_issuer) == 0, "serial_number",
                                      is->serial, "key_id", is->key_id));
    }
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        json_decref(info);
        pki_done(req, node_response_not_found());
        return;
    }
    pki_done(req, node_response_data(json_pack("{s:o, s:o}", "keys", keys, "key_info", info)));
}

static void list_keys(struct node_request *req, const struct pki_snap *s)
{
    json_t *keys = json_array();
    json_t *info = json_object();
    for (size_t i = 0; keys != NULL && info != NULL && i < s->n_keys; i++) {
        const struct pki_key_ent *k = &s->keys[i];
        json_array_append_new(keys, json_string(k->id));
        json_object_set_new(info, k->id,
                            json_pack("{s:s, s:b}", "key_name", k->name, "is_default",
                                      strcmp(k->id, s->default_key) == 0));
    }
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        json_decref(info);
        pki_done(req, node_response_not_found());
        return;
    }
    pki_done(req, node_response_data(json_pack("{s:o, s:o}", "keys", keys, "key_info", info)));
}

/* issuer/:ref -------------------------------------------------------------------------------- */

static const char *const sig_algs[] = {
    "SHA256WithRSA",
    "SHA384WithRSA",
    "SHA512WithRSA",
    "SHA256WithRSAPSS",
    "SHA384WithRSAPSS",
    "SHA512WithRSAPSS",
    "ECDSAWithSHA256",
    "ECDSAWithSHA384",
    "ECDSAWithSHA512",
    "PureEd25519",
    NULL,
};

static bool sig_alg_fits(const char *alg, const struct pki_issuer *is)
{
    if (alg[0] == '\0') {
        return true;
    }
    bool known = false;
    for (size_t i = 0; sig_algs[i] != NULL; i++) {
        known = known || strcmp(sig_algs[i], alg) == 0;
    }
    if (!known) {
        return false;
    }
    if (is->key == NULL) {
        return true;
    }
    switch (is->key->type) {
        case PKI_KEY_RSA:
            return strstr(alg, "RSA") != NULL;
        case PKI_KEY_EC:
            return strncmp(alg, "ECDSA", 5) == 0;
        case PKI_KEY_ED25519:
            return strcmp(alg, "PureEd25519") == 0;
    }
    return false;
}

static bool has_crl_sign(X509 *x)
{
    uint32_t ku = X509_get_key_usage(x);
    return ku == UINT32_MAX || (ku & KU_CRL_SIGN) != 0;
}

/* Applies the fields of a POST (patch=false: missing fields reset to defaults) or PATCH to the
 * stored entry. */
static int issuer_apply(const struct pki_snap *s,
                        const struct pki_issuer *is,
                        const json_t *d,
                        bool patch,
                        json_t *entry,
                        char *errmsg)
{
    const json_t *v;
    int rv;
    if ((v = json_object_get(d, "issuer_name")) != NULL || !patch) {
        const char *n = json_string_value(v);
        n = n != NULL ? n : "";
        if ((rv = pki_name_check(n, "issuer", errmsg)) != CF_OK) {
            return rv;
        }
        const struct pki_issuer *other = n[0] ? pki_snap_issuer(s, n) : NULL;
        if (other != NULL && other != is) {
            cf_errmsg_printf(errmsg, "issuer name already in use");
            return CF_EINVAL;
        }
        json_object_set_new(entry, "name", json_string(n));
    }
    if ((v = json_object_get(d, "leaf_not_after_behavior")) != NULL || !patch) {
        const char *b = json_string_value(v);
        b = b != NULL ? b : "err";
        if (strcmp(b, "err") != 0 && strcmp(b, "truncate") != 0 && strcmp(b, "permit") != 0) {
            cf_errmsg_printf(errmsg,
                             "Unknown value for field `leaf_not_after_behavior`. Possible "
                             "values are `err`, `truncate`, and `permit`.");
            return CF_EINVAL;
        }
        json_object_set_new(entry, "leaf_not_after_behavior", json_string(b));
    }
    if (json_object_get(d, "usage") != NULL || !patch) {
        json_t *list = NULL;
        rv = pki_field_strings(d, "usage", &list, errmsg);
        if (rv == CF_ENOTFOUND) {
            list = json_pack("[ssss]", "read-only", "issuing-certificates", "crl-signing",
                             "ocsp-signing");
            rv = list != NULL ? CF_OK : CF_ENOMEM;
        }
        uint32_t u = 0;
        if (rv == CF_OK) {
            rv = pki_usage_parse(list, &u, errmsg);
        }
        if (rv == CF_OK && (u & PKI_USAGE_CRL) && !has_crl_sign(is->cert)) {
            cf_errmsg_printf(errmsg,
                             "Requested usage crl-signing for issuer %s but the "
                             "certificate lacks the CRLSign key usage",
                             is->id);
            rv = CF_EINVAL;
        }
        if (rv == CF_OK && (u & PKI_USAGE_ISSUING) && !(is->usage & PKI_USAGE_ISSUING) &&
            is->revoked) {
            cf_errmsg_printf(errmsg,
                             "Unable to re-add issuing-certificates usage to a revoked "
                             "issuer");
            rv = CF_EINVAL;
        }
        if (rv != CF_OK) {
            json_decref(list);
            return rv;
        }
        json_object_set_new(entry, "usage", list);
    }
    if ((v = json_object_get(d, "revocation_signature_algorithm")) != NULL || !patch) {
        const char *a = json_string_value(v);
        a = a != NULL ? a : "";
        if (!sig_alg_fits(a, is)) {
            cf_errmsg_printf(errmsg,
                             "Unknown signature algorithm value or one that does not "
                             "match the issuer's key type: %s",
                             a);
            return CF_EINVAL;
        }
        json_object_set_new(entry, "revocation_signature_algorithm", json_string(a));
    }
    static const char *const aia[] = {"issuing_certificates", "crl_distribution_points",
                                      "delta_crl_distribution_points", "ocsp_servers"};
    for (size_t i = 0; i < 4; i++) {
        if (json_object_get(d, aia[i]) == NULL && patch) {
            continue;
        }
        json_t *list = NULL;
        rv = pki_field_strings(d, aia[i], &list, errmsg);
        if (rv == CF_ENOTFOUND) {
            list = json_array();
            rv = CF_OK;
        }
        if (rv != CF_OK) {
            return rv;
        }
        size_t k;
        json_t *u;
        json_array_foreach(list, k, u)
        {
            const char *url = json_string_value(u);
            if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0 &&
                strncmp(url, "ldap://", 7) != 0 && strncmp(url, "ldaps://", 8) != 0) {
                cf_errmsg_printf(errmsg,
                                 "invalid URL found in Authority Information Access (AIA) "
                                 "parameter %s: %s",
                                 aia[i], url);
                json_decref(list);
                return CF_EINVAL;
            }
        }
        json_object_set_new(entry, aia[i], list);
    }
    if ((v = json_object_get(d, "enable_aia_url_templating")) != NULL || !patch) {
        bool b = false;
        rv = pki_field_bool(d, "enable_aia_url_templating", &b, errmsg);
        if (rv != CF_OK && rv != CF_ENOTFOUND) {
            return rv;
        }
        json_object_set_new(entry, "enable_aia_url_templating", json_boolean(b));
    }
    if (json_object_get(d, "manual_chain") != NULL || !patch) {
        json_t *list = NULL;
        rv = pki_field_strings(d, "manual_chain", &list, errmsg);
        if (rv == CF_ENOTFOUND) {
            json_object_set_new(entry, "manual_chain", json_null());
            rv = CF_OK;
        } else if (rv == CF_OK) {
            json_t *ids = json_array();
            size_t k;
            json_t *r;
            json_array_foreach(list, k, r)
            {
                const char *ref = json_string_value(r);
                const struct pki_issuer *m =
                    strcmp(ref, "self") == 0 ? is : pki_snap_issuer(s, ref);
                if (m == NULL) {
                    cf_errmsg_printf(errmsg, "unable to find PKI issuer for reference: %s", ref);
                    rv = CF_EINVAL;
                    break;
                }
                if (k == 0 && m != is) {
                    cf_errmsg_printf(errmsg,
                                     "expected first cert in chain to be a self-reference, "
                                     "but was: %s/%s",
                                     ref, m->id);
                    rv = CF_EINVAL;
                    break;
                }
                json_array_append_new(ids, json_string(m->id));
            }
            json_decref(list);
            if (rv != CF_OK) {
                json_decref(ids);
                return rv;
            }
            json_object_set_new(entry, "manual_chain", json_array_size(ids) ? ids : json_null());
            if (json_array_size(ids) == 0) {
                json_decref(ids);
            }
        } else {
            return rv;
        }
    }
    return CF_OK;
}

static void issuer_write(struct pki_engine *e,
                         struct node_request *req,
                         const struct pki_snap *s,
                         const struct pki_issuer *is,
                         bool patch)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    json_t *entry = json_deep_copy(is->entry);
    int rv = entry != NULL ? issuer_apply(s, is, req->data, patch, entry, errmsg) : CF_ENOMEM;
    if (rv != CF_OK) {
        json_decref(entry);
        pki_done(req, rv == CF_ENOMEM ? NULL : bad(errmsg));
        return;
    }
    char ts[CF_RFC3339_SIZE];
    cf_rfc3339(cf_now_s(), ts);
    json_object_set_new(entry, "last_modified", json_string(ts));
    /* The reply is the issuer as it will read back. */
    struct pki_issuer copy = *is;
    copy.entry = entry;
    copy.name = (char *)json_string_value(json_object_get(entry, "name"));
    pki_usage_parse(json_object_get(entry, "usage"), &copy.usage, errmsg);
    json_t *reply = pki_issuer_json(s, &copy);
    char key[64];
    snprintf(key, sizeof(key), "config/issuer/%s", is->id);
    struct node_write *w = node_view_write(e->view);
    if (w == NULL || reply == NULL || pki_write_json(w, key, entry) != CF_OK) {
        node_write_free(w);
        json_decref(reply);
        json_decref(entry);
        pki_done(req, NULL);
        return;
    }
    json_decref(entry);
    pki_commit_reply(req, w, reply, NULL);
}

static void issuer_delete(struct pki_engine *e,
                          struct node_request *req,
                          const struct pki_snap *s,
                          const struct pki_issuer *is)
{
    char key[64];
    snprintf(key, sizeof(key), "config/issuer/%s", is->id);
    struct node_write *w = node_view_write(e->view);
    json_t *warnings = json_array();
    int rv = w != NULL && warnings != NULL ? node_write_delete(w, key) : CF_ENOMEM;
    if (rv == CF_OK && strcmp(is->id, s->default_issuer) == 0) {
        json_t *ci = json_pack("{s:s, s:b}", "default", "", "default_follows_latest_issuer",
                               s->default_follows_latest);
        rv = ci != NULL ? pki_write_json(w, "config/issuers", ci) : CF_ENOMEM;
        json_decref(ci);
        json_array_append_new(warnings,
                              json_string("Deleted issuer was the default; set a new default "
                                          "issuer with POST config/issuers, as none is set now."));
    }
    if (rv != CF_OK) {
        node_write_free(w);
        json_decref(warnings);
        pki_done(req, NULL);
        return;
    }
    json_t *data = json_array_size(warnings) ? json_object() : NULL;
    pki_commit_reply(req, w, data, warnings);
}

/* key/:ref ----------------------------------------------------------------------------------- */

static json_t *key_json(const struct pki_key_ent *k)
{
    return json_pack("{s:s, s:s, s:s}", "key_id", k->id, "key_name", k->name, "key_type",
                     pki_key_type_name(k->type));
}

static void key_write(struct pki_engine *e,
                      struct node_request *req,
                      const struct pki_snap *s,
                      const struct pki_key_ent *k)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    const char *n = json_string_value(json_object_get(req->data, "key_name"));
    n = n != NULL ? n : "";
    if (pki_name_check(n, "key", errmsg) != CF_OK) {
        pki_done(req, bad(errmsg));
        return;
    }
    const struct pki_key_ent *other = n[0] ? pki_snap_key(s, n) : NULL;
    if (other != NULL && other != k) {
        pki_done(req, bad("key name already in use"));
        return;
    }
    char key[64];
    snprintf(key, sizeof(key), "config/key/%s", k->id);
    uint8_t *val = NULL;
    size_t len = 0;
    json_t *entry = NULL;
    if (node_view_get(e->view, key, &val, &len) == CF_OK) {
        entry = json_loadb((const char *)val, len, 0, NULL);
        cf_cleanse(val, len);
    }
    cf_free(val);
    struct node_write *w = node_view_write(e->view);
    json_t *reply = key_json(k);
    if (entry == NULL || w == NULL || reply == NULL) {
        json_decref(entry);
        json_decref(reply);
        node_write_free(w);
        pki_done(req, NULL);
        return;
    }
    json_object_set_new(entry, "name", json_string(n));
    json_object_set_new(reply, "key_name", json_string(n));
    int rv = pki_write_json(w, key, entry);
    json_decref(entry);
    if (rv != CF_OK) {
        json_decref(reply);
        node_write_free(w);
        pki_done(req, NULL);
        return;
    }
    pki_commit_reply(req, w, reply, NULL);
}

static void key_delete(struct pki_engine *e,
                       struct node_request *req,
                       const struct pki_snap *s,
                       const struct pki_key_ent *k)
{
    for (size_t i = 0; i < s->n_issuers; i++) {
        if (strcmp(s->issuers[i].key_id, k->id) == 0) {
            pki_done(req,
                     node_response_error(400, "Failed to Delete Key.  Key in Use by Issuer: %s",
                                         s->issuers[i].id));
            return;
        }
    }
    char key[64];
    snprintf(key, sizeof(key), "config/key/%s", k->id);
    struct node_write *w = node_view_write(e->view);
    int rv = w != NULL ? node_write_delete(w, key) : CF_ENOMEM;
    if (rv == CF_OK && strcmp(k->id, s->default_key) == 0) {
        rv = node_write_put(w, "config/keys", (const uint8_t *)"{\"default\":\"\"}", 14);
    }
    if (rv != CF_OK) {
        node_write_free(w);
        pki_done(req, NULL);
        return;
    }
    pki_commit_reply(req, w, NULL, NULL);
}

/* config/issuers, config/keys, root ---------------------------------------------------------- */

static void config_issuers(struct pki_engine *e,
                           struct node_request *req,
                           const struct pki_snap *s,
                           bool replace)
{
    if (req->op == NODE_OP_READ && !replace) {
        pki_done(req, node_response_data(json_pack("{s:s, s:b}", "default", s->default_issuer,
                                                   "default_follows_latest_issuer",
                                                   s->default_follows_latest)));
        return;
    }
    char errmsg[CF_ERRMSG_SIZE] = "";
    const char *ref = json_string_value(json_object_get(req->data, "default"));
    if (replace && (ref == NULL || ref[0] == '\0')) {
        ref = "next";
    }
    const char *id = s->default_issuer;
    if (ref != NULL) {
        if (ref[0] == '\0' || strcmp(ref, "default") == 0) {
            pki_done(req, bad("Invalid issuer specification; must be non-empty and can't be "
                              "'default'."));
            return;
        }
        const struct pki_issuer *is = pki_snap_issuer(s, ref);
        if (is == NULL) {
            pki_done(req,
                     node_response_error(400, "unable to find PKI issuer for reference: %s", ref));
            return;
        }
        id = is->id;
    }
    bool follows = s->default_follows_latest;
    int rv = pki_field_bool(req->data, "default_follows_latest_issuer", &follows, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        pki_done(req, bad(errmsg));
        return;
    }
    json_t *ci = json_pack("{s:s, s:b}", "default", id, "default_follows_latest_issuer", follows);
    struct node_write *w = node_view_write(e->view);
    if (ci == NULL || w == NULL || pki_write_json(w, "config/issuers", ci) != CF_OK) {
        json_decref(ci);
        node_write_free(w);
        pki_done(req, NULL);
        return;
    }
    pki_commit_reply(req, w, ci, NULL);
}

static void config_keys(struct pki_engine *e, struct node_request *req, const struct pki_snap *s)
{
    if (req->op == NODE_OP_READ) {
        pki_done(req, node_response_data(json_pack("{s:s}", "default", s->default_key)));
        return;
    }
    const char *ref = json_string_value(json_object_get(req->data, "default"));
    if (ref == NULL || ref[0] == '\0' || strcmp(ref, "default") == 0) {
        pki_done(req, bad("Invalid key specification; must be non-empty and can't be 'default'."));
        return;
    }
    const struct pki_key_ent *k = pki_snap_key(s, ref);
    if (k == NULL) {
        pki_done(req, node_response_error(400, "unable to find PKI key for reference: %s", ref));
        return;
    }
    json_t *ck = json_pack("{s:s}", "default", k->id);
    struct node_write *w = node_view_write(e->view);
    if (ck == NULL || w == NULL || pki_write_json(w, "config/keys", ck) != CF_OK) {
        json_decref(ck);
        node_write_free(w);
        pki_done(req, NULL);
        return;
    }
    pki_commit_reply(req, w, ck, NULL);
}

static void delete_root(struct pki_engine *e, struct node_request *req)
{
    struct node_write *w = node_view_write(e->view);
    if (w == NULL || node_write_delete_prefix(w, "config/issuer/") != CF_OK ||
        node_write_delete_prefix(w, "config/key/") != CF_OK ||
        node_write_delete(w, "config/issuers") != CF_OK ||
        node_write_delete(w, "config/keys") != CF_OK) {
        node_write_free(w);
        pki_done(req, NULL);
        return;
    }
    json_t *warnings =
        json_pack("[s]",
                  "DELETE /root deletes all keys and issuers; prefer the new DELETE /key/:key_ref "
                  "and DELETE /issuer/:issuer_ref for finer granularity");
    pki_commit_reply(req, w, json_object(), warnings);
}

/* Imports ------------------------------------------------------------------------------------ */

static void import_bundle(struct pki_engine *e,
                          struct node_request *req,
                          const struct pki_snap *s,
                          bool allow_keys,
                          bool allow_certs,
                          bool set_signed)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    const char *pem = json_string_value(json_object_get(req->data, "pem_bundle"));
    const char *cert = json_string_value(json_object_get(req->data, "certificate"));
    if (set_signed) {
        pem = cert;
        cert = NULL;
        if (pem == NULL || pem[0] == '\0') {
            pki_done(req, bad("no certificate provided in the \"certificate\" parameter"));
            return;
        }
    }
    if ((pem == NULL || pem[0] == '\0') && (cert == NULL || cert[0] == '\0')) {
        pki_done(req, bad("'pem_bundle' and 'certificate' parameters were empty"));
        return;
    }
    if (pem != NULL && pem[0] && cert != NULL && cert[0]) {
        pki_done(req, bad("'pem_bundle' and 'certificate' parameters were both provided"));
        return;
    }
    if (pem == NULL || pem[0] == '\0') {
        pem = cert;
    }
    if (strlen(pem) < 75) {
        pki_done(req, bad("provided data for import was too short; perhaps a path was passed to "
                          "the API rather than the contents of a PEM file"));
        return;
    }
    struct pki_x509_bundle b;
    int rv = pki_x509_bundle_parse(pem, strlen(pem), &b, errmsg);
    if (rv != CF_OK) {
        pki_x509_bundle_close(&b);
        pki_done(req, bad(errmsg));
        return;
    }
    if (b.n_keys > 0 && !allow_keys) {
        pki_x509_bundle_close(&b);
        pki_done(req, bad("private keys found in the PEM bundle but not allowed by the path; use "
                          "/issuers/import/bundle"));
        return;
    }
    if (!allow_certs && b.n_certs > 0) {
        pki_x509_bundle_close(&b);
        pki_done(req, bad("certificates found in the PEM bundle but not allowed by the path"));
        return;
    }
    json_t *imp_issuers = json_array();
    json_t *imp_keys = json_array();
    json_t *ex_issuers = json_array();
    json_t *ex_keys = json_array();
    json_t *mapping = json_object();
    json_t *warnings = json_array();
    struct node_write *w = node_view_write(e->view);
    rv = imp_issuers && imp_keys && ex_issuers && ex_keys && mapping && warnings && w ? CF_OK
                                                                                      : CF_ENOMEM;
    /* Keys first, so certificates can find them. New keys: fingerprint -> id. */
    char(*new_fp)[PKI_KEY_FINGERPRINT_SIZE] = cf_calloc(b.n_keys + 1, sizeof(*new_fp));
    char(*new_id)[PKI_ID_SIZE] = cf_calloc(b.n_keys + 1, sizeof(*new_id));
    size_t n_new_keys = 0;
    if (new_fp == NULL || new_id == NULL) {
        rv = CF_ENOMEM;
    }
    bool no_default_key = pki_snap_key(s, s->default_key) == NULL;
    for (size_t i = 0; rv == CF_OK && i < b.n_keys; i++) {
        char fp[PKI_KEY_FINGERPRINT_SIZE];
        enum pki_key_type kt;
        int bits;
        rv = pki_key_fingerprint(b.keys[i], fp, errmsg);
        if (rv == CF_OK) {
            rv = pki_key_describe(b.keys[i], &kt, &bits, errmsg);
        }
        if (rv != CF_OK) {
            break;
        }
        const struct pki_key_ent *ex = pki_snap_key_by_fingerprint(s, fp);
        if (ex != NULL) {
            json_array_append_new(ex_keys, json_string(ex->id));
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < n_new_keys && !dup; k++) {
            dup = strcmp(new_fp[k], fp) == 0;
        }
        if (dup) {
            continue;
        }
        cf_uuid_v4(new_id[n_new_keys]);
        memcpy(new_fp[n_new_keys], fp, sizeof(fp));
        struct cf_secret *kp = NULL;
        rv = pki_key_to_pem(b.keys[i], PKI_KEY_FORMAT_DER, &kp, errmsg);
        if (rv == CF_OK) {
            json_t *ke =
                pki_key_entry_new(new_id[n_new_keys], "", kt, bits, (const char *)kp->data);
            char path[64];
            snprintf(path, sizeof(path), "config/key/%s", new_id[n_new_keys]);
            rv = ke != NULL ? pki_write_json(w, path, ke) : CF_ENOMEM;
            json_decref(ke);
        }
        cf_secret_free(kp);
        if (rv == CF_OK && no_default_key) {
            char buf[96];
            snprintf(buf, sizeof(buf), "{\"default\":\"%s\"}", new_id[n_new_keys]);
            rv = node_write_put(w, "config/keys", (const uint8_t *)buf, strlen(buf));
            no_default_key = false;
        }
        json_array_append_new(imp_keys, json_string(new_id[n_new_keys]));
        n_new_keys++;
    }
    /* Certificates. */
    size_t keyed_new = 0;
    char first_keyed[PKI_ID_SIZE] = "";
    char first_new[PKI_ID_SIZE] = "";
    for (size_t i = 0; rv == CF_OK && i < b.n_certs; i++) {
        X509 *x = b.certs[i];
        if (!pki_x509_is_ca(x)) {
            cf_errmsg_printf(errmsg, "refusing to import non-CA certificate");
            rv = CF_EINVAL;
            break;
        }
        char *xpem = NULL;
        if ((rv = pki_x509_cert_to_pem(x, &xpem, errmsg)) != CF_OK) {
            break;
        }
        const struct pki_issuer *ex = NULL;
        for (size_t k = 0; k < s->n_issuers && ex == NULL; k++) {
            if (X509_cmp(s->issuers[k].cert, x) == 0) {
                ex = &s->issuers[k];
            }
        }
        char fp[PKI_KEY_FINGERPRINT_SIZE];
        rv = pki_key_fingerprint(X509_get0_pubkey(x), fp, errmsg);
        const char *kid = "";
        const struct pki_key_ent *k = rv == CF_OK ? pki_snap_key_by_fingerprint(s, fp) : NULL;
        if (k != NULL) {
            kid = k->id;
        }
        for (size_t m = 0; rv == CF_OK && m < n_new_keys; m++) {
            if (strcmp(new_fp[m], fp) == 0) {
                kid = new_id[m];
            }
        }
        if (rv == CF_OK && ex != NULL) {
            json_array_append_new(ex_issuers, json_string(ex->id));
            if (ex->key_id[0] == '\0' && kid[0] != '\0') {
                /* A key for an issuer imported without one. */
                json_t *entry = json_deep_copy(ex->entry);
                json_object_set_new(entry, "key_id", json_string(kid));
                char path[64];
                snprintf(path, sizeof(path), "config/issuer/%s", ex->id);
                rv = entry != NULL ? pki_write_json(w, path, entry) : CF_ENOMEM;
                json_decref(entry);
            }
            json_object_set_new(mapping, ex->id, json_string(kid[0] ? kid : ex->key_id));
        } else if (rv == CF_OK) {
            char id[PKI_ID_SIZE];
            cf_uuid_v4(id);
            rv = pki_generate_put_issuer(w, s, id, "", kid, xpem, NULL, false, NULL);
            json_array_append_new(imp_issuers, json_string(id));
            json_object_set_new(mapping, id, json_string(kid));
            if (first_new[0] == '\0') {
                memcpy(first_new, id, sizeof(id));
            }
            if (kid[0] != '\0') {
                keyed_new++;
                if (first_keyed[0] == '\0') {
                    memcpy(first_keyed, id, sizeof(id));
                }
            }
        }
        cf_free(xpem);
    }
    /* Default issuer: set when the mount has none (or follows the latest) and the import brings
     * exactly one new issuer with a key, or only issuers without keys into an empty mount. */
    if (rv == CF_OK && json_array_size(imp_issuers) > 0) {
        bool need = pki_snap_issuer(s, "default") == NULL || s->default_follows_latest;
        const char *pick = keyed_new == 1                                            ? first_keyed
                           : keyed_new == 0 && pki_snap_issuer(s, "default") == NULL ? first_new
                                                                                     : NULL;
        if (need && pick != NULL) {
            json_t *ci = json_pack("{s:s, s:b}", "default", pick, "default_follows_latest_issuer",
                                   s->default_follows_latest);
            rv = ci != NULL ? pki_write_json(w, "config/issuers", ci) : CF_ENOMEM;
            json_decref(ci);
        } else if (need || keyed_new > 1) {
            json_array_append_new(
                warnings,
                json_string("Default issuer left unchanged; the import did not bring exactly one "
                            "new issuer with a key. Use POST config/issuers to choose one."));
        }
    }
    cf_free(new_fp);
    cf_free(new_id);
    pki_x509_bundle_close(&b);
    if (rv != CF_OK) {
        node_write_free(w);
        json_decref(imp_issuers);
        json_decref(imp_keys);
        json_decref(ex_issuers);
        json_decref(ex_keys);
        json_decref(mapping);
        json_decref(warnings);
        pki_done(req, rv == CF_ENOMEM ? NULL : bad(errmsg));
        return;
    }
    json_t *data = json_pack(
        "{s:o, s:o, s:o, s:o, s:o}", "imported_issuers",
        json_array_size(imp_issuers) ? imp_issuers : (json_decref(imp_issuers), json_null()),
        "imported_keys",
        json_array_size(imp_keys) ? imp_keys : (json_decref(imp_keys), json_null()), "mapping",
        mapping, "existing_issuers",
        json_array_size(ex_issuers) ? ex_issuers : (json_decref(ex_issuers), json_null()),
        "existing_keys", json_array_size(ex_keys) ? ex_keys : (json_decref(ex_keys), json_null()));
    pki_commit_reply(req, w, data, warnings);
}

static void keys_import(struct pki_engine *e, struct node_request *req, const struct pki_snap *s)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    const char *pem = json_string_value(json_object_get(req->data, "pem_bundle"));
    const char *name = json_string_value(json_object_get(req->data, "key_name"));
    name = name != NULL ? name : "";
    if (pem == NULL || strlen(pem) < 64) {
        pki_done(req, bad("provided data for import was too short; perhaps a path was passed to "
                          "the API rather than the contents of a PEM file"));
        return;
    }
    if (pki_name_check(name, "key", errmsg) != CF_OK) {
        pki_done(req, bad(errmsg));
        return;
    }
    EVP_PKEY *k = NULL;
    int rv = pki_key_from_pem(pem, strlen(pem), &k, errmsg);
    if (rv != CF_OK) {
        pki_done(req, bad(errmsg));
        return;
    }
    char fp[PKI_KEY_FINGERPRINT_SIZE];
    enum pki_key_type kt;
    int bits;
    rv = pki_key_fingerprint(k, fp, errmsg);
    if (rv == CF_OK) {
        rv = pki_key_describe(k, &kt, &bits, errmsg);
    }
    const struct pki_key_ent *ex = rv == CF_OK ? pki_snap_key_by_fingerprint(s, fp) : NULL;
    if (ex != NULL) {
        EVP_PKEY_free(k);
        struct node_response *resp = node_response_data(key_json(ex));
        if (resp != NULL) {
            resp->warnings = json_pack("[s]",
                                       "Key already imported, use key/ endpoint to update "
                                       "name.");
        }
        pki_done(req, resp);
        return;
    }
    if (rv == CF_OK && name[0] && pki_snap_key(s, name) != NULL) {
        cf_errmsg_printf(errmsg, "key name already in use");
        rv = CF_EINVAL;
    }
    struct cf_secret *kp = NULL;
    if (rv == CF_OK) {
        rv = pki_key_to_pem(k, PKI_KEY_FORMAT_DER, &kp, errmsg);
    }
    EVP_PKEY_free(k);
    if (rv != CF_OK) {
        pki_done(req, bad(errmsg));
        return;
    }
    char id[PKI_ID_SIZE];
    cf_uuid_v4(id);
    json_t *ke = pki_key_entry_new(id, name, kt, bits, (const char *)kp->data);
    cf_secret_free(kp);
    char path[64];
    snprintf(path, sizeof(path), "config/key/%s", id);
    struct node_write *w = node_view_write(e->view);
    rv = ke != NULL && w != NULL ? pki_write_json(w, path, ke) : CF_ENOMEM;
    json_decref(ke);
    if (rv == CF_OK && pki_snap_key(s, s->default_key) == NULL) {
        char buf[96];
        snprintf(buf, sizeof(buf), "{\"default\":\"%s\"}", id);
        rv = node_write_put(w, "config/keys", (const uint8_t *)buf, strlen(buf));
    }
    if (rv != CF_OK) {
        node_write_free(w);
        pki_done(req, NULL);
        return;
    }
    pki_commit_reply(req, w,
                     json_pack("{s:s, s:s, s:s}", "key_id", id, "key_name", name, "key_type",
                               pki_key_type_name(kt)),
                     NULL);
}

/* Routing ------------------------------------------------------------------------------------ */

/* "prefix<ref>" with ref a single segment: copies ref. */
static bool one_segment(const char *path, const char *prefix, char *ref, size_t n)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0) {
        return false;
    }
    const char *r = path + pl;
    if (r[0] == '\0' || strchr(r, '/') != NULL || strlen(r) >= n) {
        return false;
    }
    memcpy(ref, r, strlen(r) + 1);
    return true;
}

bool pki_issuers_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    char ref[256];
    enum node_op op = req->op;
    bool write = op == NODE_OP_UPDATE || op == NODE_OP_CREATE;
    int kind = 0;
    if (strcmp(p, "issuers/") == 0 || strcmp(p, "issuers") == 0) {
        kind = op == NODE_OP_LIST ? 1 : -1;
    } else if (strcmp(p, "keys/") == 0 || strcmp(p, "keys") == 0) {
        kind = op == NODE_OP_LIST ? 2 : -1;
    } else if (one_segment(p, "issuer/", ref, sizeof(ref))) {
        kind = 3;
    } else if (one_segment(p, "key/", ref, sizeof(ref))) {
        kind = 4;
    } else if (strcmp(p, "config/issuers") == 0) {
        kind = 5;
    } else if (strcmp(p, "root/replace") == 0) {
        kind = write ? 6 : -1;
    } else if (strcmp(p, "config/keys") == 0) {
        kind = 7;
    } else if (strcmp(p, "root") == 0) {
        kind = op == NODE_OP_DELETE ? 8 : -1;
    } else if (strcmp(p, "config/ca") == 0 || strcmp(p, "issuers/import/bundle") == 0) {
        kind = write ? 9 : -1;
    } else if (strcmp(p, "issuers/import/cert") == 0) {
        kind = write ? 10 : -1;
    } else if (strcmp(p, "intermediate/set-signed") == 0) {
        kind = write ? 11 : -1;
    } else if (strcmp(p, "keys/import") == 0) {
        kind = write ? 12 : -1;
    } else {
        return false;
    }
    if (kind < 0) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    struct pki_snap *s = pki_snap_get(e);
    if (s == NULL) {
        pki_done(req, node_response_error(500, "could not read the mount's issuers"));
        return true;
    }
    switch (kind) {
        case 1:
            list_issuers(req, s);
            break;
        case 2:
            list_keys(req, s);
            break;
        case 3: {
            const struct pki_issuer *is = pki_snap_issuer(s, ref);
            if (is == NULL) {
                pki_done(req, op == NODE_OP_READ
                                  ? node_response_not_found()
                                  : node_response_error(
                                        400, "unable to find PKI issuer for reference: %s", ref));
            } else if (op == NODE_OP_READ) {
                pki_done(req, node_response_data(pki_issuer_json(s, is)));
            } else if (op == NODE_OP_DELETE) {
                issuer_delete(e, req, s, is);
            } else if (write || op == NODE_OP_PATCH) {
                issuer_write(e, req, s, is, op == NODE_OP_PATCH);
            } else {
                pki_done(req, node_response_error(405, "unsupported operation"));
            }
            break;
        }
        case 4: {
            const struct pki_key_ent *k = pki_snap_key(s, ref);
            if (k == NULL) {
                pki_done(req, op == NODE_OP_READ
                                  ? node_response_not_found()
                                  : node_response_error(
                                        400, "unable to find PKI key for reference: %s", ref));
            } else if (op == NODE_OP_READ) {
                pki_done(req, node_response_data(key_json(k)));
            } else if (op == NODE_OP_DELETE) {
                key_delete(e, req, s, k);
            } else if (write) {
                key_write(e, req, s, k);
            } else {
                pki_done(req, node_response_error(405, "unsupported operation"));
            }
            break;
        }
        case 5:
        case 6:
            config_issuers(e, req, s, kind == 6);
            break;
        case 7:
            config_keys(e, req, s);
            break;
        case 8:
            delete_root(e, req);
            break;
        case 9:
            import_bundle(e, req, s, true, true, false);
            break;
        case 10:
            import_bundle(e, req, s, false, true, false);
            break;
        case 11:
            import_bundle(e, req, s, false, true, true);
            break;
        default:
            keys_import(e, req, s);
            break;
    }
    pki_snap_release(s);
    return true;
}
