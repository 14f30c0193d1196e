/*
 * PKI mount configuration (pki.md 4.3, 4.6): config/crl, config/urls, config/cluster.
 *
 * Each is one JSON object in the mount's storage. A read returns the effective values (the
 * defaults before any write); a write changes only the fields it names, validates the result
 * as a whole with Vault's messages, and stores nothing when any check fails.
 */
#include <string.h>

#include "engines/pki/crl_build.h"
#include "engines/pki/field.h"
#include "engines/pki/pki.h"
#include "engines/pki/x509.h"
#include "lib/buf.h"
#include "lib/duration.h"
#include "lib/mem.h"

/* Storage ------------------------------------------------------------------------------------ */

/* The stored object at key, or a copy of defaults when absent; NULL on error. */
static json_t *load(struct pki_engine *e, const char *key, const char *defaults)
{
    json_t *out = json_loads(defaults, 0, NULL);
    json_t *stored = NULL;
    int rv = pki_read_json(e, key, &stored);
    if (rv == CF_ENOTFOUND) {
        return out;
    }
    if (!json_is_object(stored) || out == NULL) {
        json_decref(stored);
        json_decref(out);
        return NULL;
    }
    json_object_update_existing(out, stored); /* fields unknown to this version are dropped */
    json_decref(stored);
    return out;
}

/* load() for the hot paths (issuance, OCSP): the decoded value is kept in c and handed out (a new
 * reference, read-only) while the key's FSM version is unchanged. */
static json_t *load_cached(struct pki_engine *e,
                           struct pki_config_cache *c,
                           const char *key,
                           const char *defaults)
{
    uint64_t version = 0;
    int rv = node_view_version(e->view, key, &version);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return NULL;
    }
    if (rv == CF_ENOTFOUND) {
        version = 0;
    }
    if (c->j != NULL && c->version == version) {
        return json_incref(c->j);
    }
    json_t *j = load(e, key, defaults);
    if (j != NULL) {
        json_decref(c->j);
        c->j = json_incref(j);
        c->version = version;
    }
    return j;
}

/* Stores obj at key, then answers with reply (owned; NULL = 204). */
static void save(struct pki_engine *e,
                 struct node_request *req,
                 const char *key,
                 const json_t *obj,
                 json_t *reply)
{
    struct node_write *w = node_view_write(e->view);
    if (w != NULL && pki_write_json(w, key, obj) != CF_OK) {
        node_write_free(w);
        w = NULL;
    }
    pki_commit_reply(req, w, reply, NULL);
}

static void bad(struct node_request *req, const char *msg)
{
    pki_done(req, node_response_error(400, "%s", msg));
}

/* config/crl ----------------------------------------------------------------------------------- */

static const char crl_defaults[] =
    "{\"expiry\":\"72h\",\"disable\":false,\"ocsp_disable\":false,\"ocsp_expiry\":\"12h\","
    "\"auto_rebuild\":false,\"auto_rebuild_grace_period\":\"12h\",\"enable_delta\":false,"
    "\"delta_rebuild_interval\":\"15m\",\"cross_cluster_revocation\":false,"
    "\"unified_crl\":false,\"unified_crl_on_existing_paths\":false,"
    "\"max_crl_entries\":100000}";

json_t *pki_config_crl_get(struct pki_engine *e)
{
    return load(e, PKI_KEY_CONFIG_CRL, crl_defaults);
}

json_t *pki_config_crl_shared(struct pki_engine *e)
{
    return load_cached(e, &e->crl_cache, PKI_KEY_CONFIG_CRL, crl_defaults);
}

int64_t pki_config_secs(const json_t *cfg, const char *name)
{
    int64_t s = 0;
    const char *t = json_string_value(json_object_get(cfg, name));
    if (t == NULL || cf_duration_parse_s(t, &s) != CF_OK) {
        return 0;
    }
    return s;
}

static void crl_write(struct pki_engine *e, struct node_request *req)
{
    char msg[CF_ERRMSG_SIZE];
    json_t *cfg = pki_config_crl_get(e);
    if (cfg == NULL) {
        pki_done(req, node_response_error(500, "stored CRL configuration is unreadable"));
        return;
    }
    /* Vault rebuilds the CRLs when these change (pki.md 4.3). */
    bool was_disabled = json_is_true(json_object_get(cfg, "disable"));
    bool was_delta = json_is_true(json_object_get(cfg, "enable_delta"));
    bool was_auto = json_is_true(json_object_get(cfg, "auto_rebuild"));
    static const char *const durations[] = {"expiry", "ocsp_expiry", "auto_rebuild_grace_period",
                                            "delta_rebuild_interval"};
    static const char *const bools[] = {"disable",
                                        "ocsp_disable",
                                        "auto_rebuild",
                                        "enable_delta",
                                        "cross_cluster_revocation",
                                        "unified_crl",
                                        "unified_crl_on_existing_paths"};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        const char *text;
        int64_t secs;
        int rv = pki_field_duration_text(req->data, durations[i], &text, &secs, msg);
        if (rv == CF_EINVAL) {
            json_decref(cfg);
            bad(req, msg);
            return;
        }
        if (rv == CF_OK) {
            json_object_set_new(cfg, durations[i], json_string(text));
        }
    }
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        bool b;
        int rv = pki_field_bool(req->data, bools[i], &b, msg);
        if (rv == CF_EINVAL) {
            json_decref(cfg);
            bad(req, msg);
            return;
        }
        if (rv == CF_OK) {
            json_object_set_new(cfg, bools[i], json_boolean(b));
        }
    }
    int64_t max_entries;
    int rv = pki_field_int(req->data, "max_crl_entries", &max_entries, msg);
    if (rv == CF_EINVAL || (rv == CF_OK && max_entries != -1 && max_entries <= 0)) {
        json_decref(cfg);
        bad(req, rv == CF_EINVAL ? msg : "max_crl_entries must be -1 (unlimited) or positive");
        return;
    }
    if (rv == CF_OK) {
        json_object_set_new(cfg, "max_crl_entries", json_integer(max_entries));
    }

    /* Checks of the whole, with Vault's texts. */
    bool auto_rebuild = json_is_true(json_object_get(cfg, "auto_rebuild"));
    int64_t expiry = pki_config_secs(cfg, "expiry");
    int64_t grace = pki_config_secs(cfg, "auto_rebuild_grace_period");
    int64_t delta = pki_config_secs(cfg, "delta_rebuild_interval");
    const char *err = NULL;
    char buf[CF_ERRMSG_SIZE];
    if (auto_rebuild && grace >= expiry) {
        char g[32];
        char x[32];
        cf_duration_format_ms(grace * 1000, g, sizeof(g));
        cf_duration_format_ms(expiry * 1000, x, sizeof(x));
        cf_errmsg_printf(buf,
                         "CRL auto-rebuilding grace period (%s) must be strictly shorter than "
                         "CRL expiry (%s) value when auto-rebuilding of CRLs is enabled",
                         g, x);
        err = buf;
    } else if (json_is_true(json_object_get(cfg, "enable_delta")) && !auto_rebuild) {
        err =
            "Delta CRLs cannot be enabled when auto rebuilding is disabled as the complete CRL "
            "is always regenerated!";
    } else if (json_is_true(json_object_get(cfg, "enable_delta")) && delta >= expiry) {
        char d[32];
        char x[32];
        cf_duration_format_ms(delta * 1000, d, sizeof(d));
        cf_duration_format_ms(expiry * 1000, x, sizeof(x));
        cf_errmsg_printf(buf,
                         "CRL delta rebuild window (%s) must be strictly shorter than CRL "
                         "expiry (%s) value when delta CRLs are enabled",
                         d, x);
        err = buf;
    } else if (json_is_true(json_object_get(cfg, "cross_cluster_revocation")) && !auto_rebuild) {
        err =
            "Global, cross-cluster revocation queue cannot be enabled when auto rebuilding is "
            "disabled as the local cluster may not have the certificate entry!";
    } else if (json_is_true(json_object_get(cfg, "unified_crl")) && !auto_rebuild) {
        err =
            "unified_crl=true requires auto_rebuild=true, as unified CRLs cannot be rebuilt on "
            "every revocation.";
    } else if (json_is_true(json_object_get(cfg, "unified_crl_on_existing_paths")) &&
               !json_is_true(json_object_get(cfg, "unified_crl"))) {
        err = "unified_crl_on_existing_paths cannot be enabled if unified_crl is disabled";
    }
    if (err != NULL) {
        json_decref(cfg);
        bad(req, err);
        return;
    }
    bool rebuild = was_disabled != json_is_true(json_object_get(cfg, "disable")) ||
                   was_delta != json_is_true(json_object_get(cfg, "enable_delta")) ||
                   (was_auto && !auto_rebuild);
    struct node_write *w = node_view_write(e->view);
    if (w != NULL && pki_write_json(w, PKI_KEY_CONFIG_CRL, cfg) != CF_OK) {
        node_write_free(w);
        w = NULL;
    }
    pki_crl_commit_reply(e, req, w, json_deep_copy(cfg), rebuild);
    json_decref(cfg);
}

/* config/urls and config/cluster ----------------------------------------------------------------
 */

static const char urls_defaults[] =
    "{\"issuing_certificates\":[],\"crl_distribution_points\":[],"
    "\"delta_crl_distribution_points\":[],\"ocsp_servers\":[],\"enable_templating\":false}";

static const char cluster_defaults[] = "{\"path\":\"\",\"aia_path\":\"\"}";

/* A URL Vault would accept in an AIA field: a scheme we know and a host. Templated URLs are
 * checked when they are expanded at issuance. */
static bool url_ok(const char *u, bool templating)
{
    if (templating && strstr(u, "{{") != NULL) {
        return true;
    }
    static const char *const schemes[] = {"http://", "https://", "ldap://", "ldaps://"};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(u, schemes[i], n) == 0) {
            const char *host = u + n;
            return host[0] != '\0' && host[0] != '/' && strpbrk(host, " \t\r\n") == NULL;
        }
    }
    return false;
}

static void urls_write(struct pki_engine *e, struct node_request *req)
{
    char msg[CF_ERRMSG_SIZE];
    json_t *cfg = load(e, PKI_KEY_CONFIG_URLS, urls_defaults);
    if (cfg == NULL) {
        pki_done(req, node_response_error(500, "stored URL configuration is unreadable"));
        return;
    }
    bool templating = json_is_true(json_object_get(cfg, "enable_templating"));
    int rv = pki_field_bool(req->data, "enable_templating", &templating, msg);
    if (rv == CF_EINVAL) {
        json_decref(cfg);
        bad(req, msg);
        return;
    }
    json_object_set_new(cfg, "enable_templating", json_boolean(templating));
    static const char *const lists[] = {"issuing_certificates", "crl_distribution_points",
                                        "delta_crl_distribution_points", "ocsp_servers"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        json_t *l = NULL;
        rv = pki_field_strings(req->data, lists[i], &l, msg);
        if (rv == CF_EINVAL) {
            json_decref(cfg);
            bad(req, msg);
            return;
        }
        if (rv == CF_OK) {
            json_object_set_new(cfg, lists[i], l);
        }
        size_t k;
        json_t *u;
        json_array_foreach(json_object_get(cfg, lists[i]), k, u)
        {
            if (!url_ok(json_string_value(u), templating)) {
                cf_errmsg_printf(msg,
                                 "invalid URL found in Authority Information Access (AIA) "
                                 "parameter %s: %s",
                                 lists[i], json_string_value(u));
                json_decref(cfg);
                bad(req, msg);
                return;
            }
        }
    }
    save(e, req, PKI_KEY_CONFIG_URLS, cfg, NULL);
    json_decref(cfg);
}

static void cluster_write(struct pki_engine *e, struct node_request *req)
{
    char msg[CF_ERRMSG_SIZE];
    json_t *cfg = load(e, PKI_KEY_CONFIG_CLUSTER, cluster_defaults);
    if (cfg == NULL) {
        pki_done(req, node_response_error(500, "stored cluster configuration is unreadable"));
        return;
    }
    static const char *const fields[] = {"path", "aia_path"};
    for (size_t i = 0; i < 2; i++) {
        const char *v;
        int rv = pki_field_string(req->data, fields[i], &v, msg);
        if (rv == CF_EINVAL) {
            json_decref(cfg);
            bad(req, msg);
            return;
        }
        if (rv == CF_OK) {
            if (v[0] != '\0' && !url_ok(v, false)) {
                cf_errmsg_printf(msg, "failed to parse %s as a URL: %s", fields[i], v);
                json_decref(cfg);
                bad(req, msg);
                return;
            }
            json_object_set_new(cfg, fields[i], json_string(v));
        }
    }
    save(e, req, PKI_KEY_CONFIG_CLUSTER, cfg, json_deep_copy(cfg));
    json_decref(cfg);
}

/* Dispatch ---------------------------------------------------------------------------------- */

static void read_config(struct pki_engine *e,
                        struct node_request *req,
                        const char *key,
                        const char *defaults)
{
    json_t *cfg = load(e, key, defaults);
    if (cfg == NULL) {
        pki_done(req, node_response_error(500, "stored configuration is unreadable"));
        return;
    }
    pki_done(req, node_response_data(cfg));
}

bool pki_config_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    bool read = req->op == NODE_OP_READ;
    const char *key;
    const char *defaults;
    void (*writer)(struct pki_engine *, struct node_request *);
    if (strcmp(p, "config/crl") == 0) {
        key = PKI_KEY_CONFIG_CRL;
        defaults = crl_defaults;
        writer = crl_write;
    } else if (strcmp(p, "config/urls") == 0) {
        key = PKI_KEY_CONFIG_URLS;
        defaults = urls_defaults;
        writer = urls_write;
    } else if (strcmp(p, "config/cluster") == 0) {
        key = PKI_KEY_CONFIG_CLUSTER;
        defaults = cluster_defaults;
        writer = cluster_write;
    } else {
        return false;
    }
    if (read) {
        read_config(e, req, key, defaults);
    } else if (write) {
        writer(e, req);
    } else {
        pki_done(req, node_response_error(405, "unsupported operation"));
    }
    return true;
}

/* AIA ---------------------------------------------------------------------------------------- */

/* Replaces {{issuer_id}}, {{cluster_path}} and {{cluster_aia_path}} in url. */
static int aia_expand(const char *url,
                      const char *issuer_id,
                      const json_t *cluster,
                      char **out,
                      char *errmsg)
{
    struct
    {
        const char *var;
        const char *val;
        const char *field;
    } vars[] = {
        {"{{issuer_id}}", issuer_id, NULL},
        {"{{cluster_path}}", json_string_value(json_object_get(cluster, "path")), "path"},
        {"{{cluster_aia_path}}", json_string_value(json_object_get(cluster, "aia_path")),
         "aia_path"},
    };
    struct cf_buf b;
    cf_buf_init(&b);
    const char *p = url;
    while (*p != '\0') {
        bool hit = false;
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
            size_t vl = strlen(vars[i].var);
            if (strncmp(p, vars[i].var, vl) != 0) {
                continue;
            }
            if (vars[i].val == NULL || vars[i].val[0] == '\0') {
                cf_buf_close(&b);
                cf_errmsg_printf(errmsg,
                                 "unable to parse AIA URL information: unable to template AIA "
                                 "URLs as config/cluster's '%s' field is not set",
                                 vars[i].field != NULL ? vars[i].field : "issuer_id");
                return CF_EINVAL;
            }
            if (cf_buf_append_str(&b, vars[i].val) != CF_OK) {
                cf_buf_close(&b);
                return CF_ENOMEM;
            }
            p += vl;
            hit = true;
            break;
        }
        if (!hit) {
            if (cf_buf_append(&b, p, 1) != CF_OK) {
                cf_buf_close(&b);
                return CF_ENOMEM;
            }
            p++;
        }
    }
    if (cf_buf_append(&b, "", 1) != CF_OK) {
        cf_buf_close(&b);
        return CF_ENOMEM;
    }
    *out = (char *)cf_buf_steal(&b, NULL);
    return CF_OK;
}

int pki_config_aia(struct pki_engine *e,
                   const json_t *issuer_entry,
                   const char *issuer_id,
                   struct pki_x509_template *t,
                   char *errmsg)
{
    static const char *const lists[] = {"issuing_certificates", "crl_distribution_points",
                                        "ocsp_servers"};
    const json_t *src = NULL;
    bool templating = false;
    json_t *urls = NULL;
    for (size_t i = 0; issuer_entry != NULL && i < 3; i++) {
        if (json_array_size(json_object_get(issuer_entry, lists[i])) > 0 ||
            json_array_size(json_object_get(issuer_entry, "delta_crl_distribution_points")) > 0) {
            src = issuer_entry;
            templating = json_is_true(json_object_get(issuer_entry, "enable_aia_url_templating"));
        }
    }
    if (src == NULL) {
        urls = load_cached(e, &e->urls_cache, PKI_KEY_CONFIG_URLS, urls_defaults);
        if (urls == NULL) {
            cf_errmsg_printf(errmsg, "stored URL configuration is unreadable");
            return CF_ECORRUPT;
        }
        src = urls;
        templating = json_is_true(json_object_get(urls, "enable_templating"));
    }
    json_t *cluster =
        templating ? load_cached(e, &e->cluster_cache, PKI_KEY_CONFIG_CLUSTER, cluster_defaults)
                   : NULL;
    struct pki_x509_strs *dst[] = {&t->issuing_certificates, &t->crl_distribution_points,
                                   &t->ocsp_servers};
    int rv = CF_OK;
    for (size_t i = 0; i < 3 && rv == CF_OK; i++) {
        size_t k;
        const json_t *v;
        json_array_foreach(json_object_get(src, lists[i]), k, v)
        {
            const char *u = json_string_value(v);
            if (u == NULL) {
                continue;
            }
            char *x = NULL;
            rv = templating ? aia_expand(u, issuer_id, cluster, &x, errmsg) : CF_OK;
            if (rv == CF_OK) {
                rv = pki_x509_strs_add(dst[i], x != NULL ? x : u);
            }
            cf_free(x);
            if (rv != CF_OK) {
                break;
            }
        }
    }
    json_decref(cluster);
    json_decref(urls);
    return rv;
}
