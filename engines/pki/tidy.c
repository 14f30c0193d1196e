/*
 * Tidy (pki.md 5): POST tidy, GET tidy-status, POST tidy-cancel, config/auto-tidy.
 *
 * A run walks certs/, then revoked/, then the issuers, PKI_TIDY_SLICE keys per loop turn: each
 * slice reads its keys, collects what is past NotAfter + the safety buffer into one write
 * batch, and the next slice starts only after that batch is committed (plus pause_duration),
 * so a run over millions of certificates never stalls other requests and never holds more than
 * one slice in memory. Cancellation is checked between slices. One run at a time per mount;
 * auto-tidy starts a run interval_duration after the previous one finished.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/crl_build.h"
#include "engines/pki/field.h"
#include "engines/pki/issuer.h"
#include "engines/pki/pki.h"
#include "engines/pki/revoke.h"
#include "lib/crypto.h"
#include "lib/duration.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

#define CF_LOG_MODULE "pki"
#include "lib/log.h"

#define PKI_TIDY_SLICE 500
#define KEY_AUTO "config/auto-tidy"
#define AUTO_CHECK_MS 5000

enum phase {
    PHASE_CERTS,
    PHASE_REVOKED,
    PHASE_ISSUERS,
    PHASE_DONE,
};

struct pki_tidy
{
    struct pki_engine *e;
    json_t *params; /* the run's flags and buffers (as tidy-status shows them); NULL = never ran */
    const char *state; /* Inactive, Running, Finished, Error, Cancelling, Cancelled */
    char error[CF_ERRMSG_SIZE];
    char message[160];
    int64_t started;
    int64_t finished;
    int64_t last_auto_finished;
    bool cancel;
    bool running;
    bool orphan; /* the engine is gone while a slice batch commits: free on its callback */
    enum phase phase;
    char after[256];
    size_t checked;
    int64_t cert_deleted;
    int64_t revoked_deleted;
    int64_t missing_issuer;
    int64_t issuers_deleted;
    bool rebuild_crl;
    struct node_timer *slice;
    struct node_timer *auto_timer;
};

/* Parameters ----------------------------------------------------------------------------------- */

static const char *const flags[] = {
    "tidy_cert_store",
    "tidy_revoked_certs",
    "tidy_revoked_cert_issuer_associations",
    "tidy_expired_issuers",
    "tidy_move_legacy_ca_bundle",
    "tidy_revocation_queue",
    "tidy_cross_cluster_revoked_certs",
    "tidy_acme",
    "tidy_cert_metadata",
    "tidy_cmpv2_nonce_store",
    "tidy_invalid_certs",
};

static const struct
{
    const char *name;
    int64_t dflt;
} buffers[] = {
    {"safety_buffer", 259200},
    {"issuer_safety_buffer", 31536000},
    {"revocation_queue_safety_buffer", 172800},
    {"acme_account_safety_buffer", 2592000},
};

#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))
#define N_BUFFERS (sizeof(buffers) / sizeof(buffers[0]))

static json_t *default_params(void)
{
    json_t *p = json_object();
    for (size_t i = 0; p != NULL && i < N_FLAGS; i++) {
        json_object_set_new(p, flags[i], json_false());
    }
    for (size_t i = 0; p != NULL && i < N_BUFFERS; i++) {
        json_object_set_new(p, buffers[i].name, json_integer(buffers[i].dflt));
    }
    if (p != NULL) {
        json_object_set_new(p, "pause_duration", json_string("0s"));
    }
    return p;
}

/* Applies the request's tidy fields onto p; CF_EINVAL with Vault's text. */
static int apply_params(const json_t *data, json_t *p, char *errmsg)
{
    for (size_t i = 0; i < N_FLAGS; i++) {
        bool b = json_is_true(json_object_get(p, flags[i]));
        int rv = pki_field_bool_opt(data, flags[i], &b, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
        json_object_set_new(p, flags[i], json_boolean(b));
    }
    bool alias = false; /* tidy_revocation_list: old name of tidy_revoked_certs */
    if (pki_field_bool_opt(data, "tidy_revocation_list", &alias, errmsg) != CF_OK) {
        return CF_EINVAL;
    }
    if (alias) {
        json_object_set_new(p, "tidy_revoked_certs", json_true());
    }
    for (size_t i = 0; i < N_BUFFERS; i++) {
        int64_t v = json_integer_value(json_object_get(p, buffers[i].name));
        bool given = json_object_get(data, buffers[i].name) != NULL;
        int rv = pki_field_seconds_opt(data, buffers[i].name, &v, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
        if (given && v <= 0) {
            cf_errmsg_printf(errmsg, "%s must be greater than zero", buffers[i].name);
            return CF_EINVAL;
        }
        json_object_set_new(p, buffers[i].name, json_integer(v));
    }
    const char *text;
    int64_t secs;
    int rv = pki_field_duration_text(data, "pause_duration", &text, &secs, errmsg);
    if (rv == CF_EINVAL) {
        return rv;
    }
    if (rv == CF_OK) {
        if (secs < 0) {
            cf_errmsg_printf(errmsg, "received invalid, negative pause duration: %s", text);
            return CF_EINVAL;
        }
        json_object_set_new(p, "pause_duration", json_string(text));
    }
    return CF_OK;
}

static bool flag(const json_t *p, const char *name)
{
    return json_is_true(json_object_get(p, name));
}

static int64_t num(const json_t *p, const char *name)
{
    return json_integer_value(json_object_get(p, name));
}

/* The run ---------------------------------------------------------------------------------------
 */

static void run_slice(void *arg);

static void run_end(struct pki_tidy *t, const char *state, const char *error)
{
    t->running = false;
    t->state = state;
    t->finished = cf_now_s();
    snprintf(t->error, sizeof(t->error), "%s", error != NULL ? error : "");
    if (t->rebuild_crl) {
        json_t *cfg = pki_config_crl_get(t->e);
        bool auto_rebuild = json_is_true(json_object_get(cfg, "auto_rebuild"));
        json_decref(cfg);
        if (!auto_rebuild) {
            pki_crl_rebuild(t->e, true, NULL, NULL);
        }
    }
    CF_LOG(CF_LOG_INFO, "tidy %s: %lld certificates, %lld revocations, %lld issuers removed", state,
           (long long)t->cert_deleted, (long long)t->revoked_deleted,
           (long long)t->issuers_deleted);
}

static void next_slice(struct pki_tidy *t)
{
    int64_t pause = 0;
    const char *pd = json_string_value(json_object_get(t->params, "pause_duration"));
    int64_t ms = 0;
    if (pd != NULL && cf_duration_parse_s(pd, &pause) == CF_OK) {
        ms = pause * 1000;
    }
    t->slice = node_view_timer(t->e->view, (uint64_t)ms, 0, run_slice, t);
    if (t->slice == NULL) {
        run_end(t, "Error", "out of memory");
    }
}

static void slice_committed(void *arg, int status)
{
    struct pki_tidy *t = arg;
    if (t->orphan) {
        json_decref(t->params);
        cf_free(t);
        return;
    }
    if (status != CF_OK) {
        char m[CF_ERRMSG_SIZE];
        cf_errmsg_printf(m, "could not delete entries: %s", cf_strerror(status));
        run_end(t, "Error", m);
        return;
    }
    next_slice(t);
}

struct keys
{
    char *k[PKI_TIDY_SLICE];
    size_t n;
};

static int keys_visit(void *arg, const char *key)
{
    struct keys *ks = arg;
    ks->k[ks->n] = cf_strdup(key);
    if (ks->k[ks->n] == NULL) {
        return -1;
    }
    return ++ks->n == PKI_TIDY_SLICE ? 1 : 0;
}

static bool expired(X509 *x, int64_t buffer, int64_t now)
{
    int64_t na = 0;
    return pki_x509_not_after(x, &na) == CF_OK && now > na + buffer;
}

/* One stored certificate: deleted once past NotAfter + safety_buffer. */
static int tidy_cert(struct pki_tidy *t, struct node_write *w, const char *key, int64_t now)
{
    char errmsg[CF_ERRMSG_SIZE];
    uint8_t *der = NULL;
    size_t len = 0;
    if (node_view_get(t->e->view, key, &der, &len) != CF_OK) {
        return CF_OK;
    }
    X509 *x = NULL;
    int rv = pki_x509_cert_from_der(der, len, &x, errmsg);
    cf_free(der);
    bool drop = rv != CF_OK ? flag(t->params, "tidy_invalid_certs")
                            : expired(x, num(t->params, "safety_buffer"), now);
    X509_free(x);
    if (drop) {
        t->cert_deleted++;
        return node_write_delete(w, key);
    }
    return CF_OK;
}

/* One revocation entry: deleted (with its certificate) past NotAfter + safety_buffer; with
 * tidy_revoked_cert_issuer_associations, an entry without a known issuer gets the issuer
 * whose key signed the certificate. */
static int tidy_revoked(struct pki_tidy *t,
                        struct node_write *w,
                        const struct pki_snap *s,
                        const char *key,
                        int64_t now)
{
    char errmsg[CF_ERRMSG_SIZE];
    json_t *v = NULL;
    if (pki_read_json(t->e, key, &v) != CF_OK) {
        return CF_OK;
    }
    const char *b64 = json_string_value(json_object_get(v, "certificate_bytes"));
    uint8_t *der = NULL;
    size_t len = 0;
    X509 *x = NULL;
    if (b64 != NULL && cf_base64_decode(b64, strlen(b64), &der, &len) == CF_OK) {
        pki_x509_cert_from_der(der, len, &x, errmsg);
    }
    cf_free(der);
    int rv = CF_OK;
    if (x != NULL && flag(t->params, "tidy_revoked_certs") &&
        expired(x, num(t->params, "safety_buffer"), now)) {
        char cert_key[160];
        snprintf(cert_key, sizeof(cert_key), "certs/%s", strrchr(key, '/') + 1);
        rv = node_write_delete(w, key);
        if (rv == CF_OK) {
            rv = node_write_delete(w, cert_key);
        }
        t->revoked_deleted++;
        t->rebuild_crl = true;
    } else if (x != NULL && flag(t->params, "tidy_revoked_cert_issuer_associations")) {
        const char *iid = json_string_value(json_object_get(v, "issuer_id"));
        if (iid == NULL || iid[0] == '\0' || pki_snap_issuer(s, iid) == NULL) {
            const struct pki_issuer *found = pki_snap_issuer_of(s, x);
            if (found != NULL) {
                json_object_set_new(v, "issuer_id", json_string(found->id));
                rv = pki_write_json(w, key, v);
            } else {
                t->missing_issuer++;
            }
        }
    }
    X509_free(x);
    json_decref(v);
    return rv;
}

static int tidy_issuers(struct pki_tidy *t, struct node_write *w, const struct pki_snap *s)
{
    int64_t now = cf_now_s();
    int64_t buffer = num(t->params, "issuer_safety_buffer");
    for (size_t i = 0; i < s->n_issuers; i++) {
        const struct pki_issuer *is = &s->issuers[i];
        if (strcmp(is->id, s->default_issuer) == 0 || now <= is->not_after + buffer) {
            continue;
        }
        char key[64];
        snprintf(key, sizeof(key), "config/issuer/%s", is->id);
        int rv = node_write_delete(w, key);
        if (rv != CF_OK) {
            return rv;
        }
        t->issuers_deleted++;
        t->rebuild_crl = true;
    }
    return CF_OK;
}

static void run_slice(void *arg)
{
    struct pki_tidy *t = arg;
    node_timer_stop(t->slice);
    t->slice = NULL;
    if (t->cancel) {
        run_end(t, "Cancelled", NULL);
        return;
    }
    while (t->phase != PHASE_DONE) {
        bool on = t->phase == PHASE_CERTS
                      ? flag(t->params, "tidy_cert_store") || flag(t->params, "tidy_invalid_certs")
                  : t->phase == PHASE_REVOKED
                      ? flag(t->params, "tidy_revoked_certs") ||
                            flag(t->params, "tidy_revoked_cert_issuer_associations")
                      : flag(t->params, "tidy_expired_issuers");
        if (on) {
            break;
        }
        t->phase++;
        t->after[0] = '\0';
    }
    if (t->phase == PHASE_DONE) {
        run_end(t, "Finished", NULL);
        return;
    }
    struct pki_snap *s = pki_snap_get(t->e);
    struct node_write *w = node_view_write(t->e->view);
    if (s == NULL || w == NULL) {
        if (s != NULL) {
            pki_snap_release(s);
        }
        node_write_free(w);
        run_end(t, "Error", "could not read the mount's issuers");
        return;
    }
    int rv = CF_OK;
    if (t->phase == PHASE_ISSUERS) {
        rv = tidy_issuers(t, w, s);
        t->phase = PHASE_DONE;
    } else {
        const char *prefix = t->phase == PHASE_CERTS ? "certs/" : "revoked/";
        struct keys ks = {.n = 0};
        int sv = node_view_scan(t->e->view, prefix, t->after[0] ? t->after : NULL, keys_visit, &ks);
        int64_t now = cf_now_s();
        rv = sv < 0 ? CF_ENOMEM : CF_OK;
        for (size_t i = 0; i < ks.n && rv == CF_OK; i++) {
            t->checked++;
            rv = t->phase == PHASE_CERTS ? tidy_cert(t, w, ks.k[i], now)
                                         : tidy_revoked(t, w, s, ks.k[i], now);
        }
        snprintf(t->message, sizeof(t->message), "Tidying %s: checking entry %zu",
                 t->phase == PHASE_CERTS ? "certificate store" : "revoked certificates",
                 t->checked);
        if (ks.n > 0) {
            snprintf(t->after, sizeof(t->after), "%s", ks.k[ks.n - 1]);
        }
        for (size_t i = 0; i < ks.n; i++) {
            cf_free(ks.k[i]);
        }
        if (ks.n < PKI_TIDY_SLICE) {
            t->phase++;
            t->after[0] = '\0';
            t->checked = 0;
        }
    }
    pki_snap_release(s);
    if (rv != CF_OK) {
        node_write_free(w);
        run_end(t, "Error", cf_strerror(rv));
        return;
    }
    node_write_commit(w, slice_committed, t);
}

/* Starts a run with params (owned). */
static void run_start(struct pki_tidy *t, json_t *params)
{
    json_decref(t->params);
    t->params = params;
    t->state = "Running";
    t->error[0] = '\0';
    t->message[0] = '\0';
    t->started = cf_now_s();
    t->finished = 0;
    t->cancel = false;
    t->running = true;
    t->phase = PHASE_CERTS;
    t->after[0] = '\0';
    t->checked = 0;
    t->cert_deleted = t->revoked_deleted = t->missing_issuer = t->issuers_deleted = 0;
    t->rebuild_crl = false;
    next_slice(t);
}

/* Endpoints ------------------------------------------------------------------------------------ */

static json_t *status_json(struct pki_tidy *t)
{
    json_t *d = t->params != NULL ? json_deep_copy(t->params) : default_params();
    if (d == NULL) {
        return NULL;
    }
    if (t->params == NULL) {
        /* Before any run every field is null, as Vault shows it. */
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(d, tmp, k, v)
        {
            json_object_set_new(d, k, json_null());
        }
    }
    char ts[CF_RFC3339_SIZE];
    json_object_set_new(d, "state", json_string(t->state));
    json_object_set_new(d, "error", t->error[0] ? json_string(t->error) : json_null());
    json_object_set_new(d, "message", t->message[0] ? json_string(t->message) : json_null());
    cf_rfc3339(t->started, ts);
    json_object_set_new(d, "time_started", t->started ? json_string(ts) : json_null());
    cf_rfc3339(t->finished, ts);
    json_object_set_new(d, "time_finished", t->finished ? json_string(ts) : json_null());
    cf_rfc3339(t->last_auto_finished, ts);
    json_object_set_new(d, "last_auto_tidy_finished",
                        t->last_auto_finished ? json_string(ts) : json_null());
    json_object_set_new(d, "cert_store_deleted_count", json_integer(t->cert_deleted));
    json_object_set_new(d, "revoked_cert_deleted_count", json_integer(t->revoked_deleted));
    json_object_set_new(d, "missing_issuer_cert_count", json_integer(t->missing_issuer));
    json_object_set_new(d, "issuers_deleted_count", json_integer(t->issuers_deleted));
    static const char *const zero[] = {
        "revocation_queue_deleted_count", "cross_revoked_cert_deleted_count",
        "total_acme_account_count",       "acme_account_deleted_count",
        "acme_account_revoked_count",     "acme_orders_deleted_count",
        "cert_metadata_deleted_count",    "cmpv2_nonce_deleted_count"};
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
        json_object_set_new(d, zero[i], json_integer(0));
    }
    return d;
}

static struct pki_tidy *tidy_of(struct pki_engine *e)
{
    if (e->tidy == NULL) {
        e->tidy = cf_calloc(1, sizeof(*e->tidy));
        if (e->tidy != NULL) {
            e->tidy->e = e;
            e->tidy->state = "Inactive";
        }
    }
    return e->tidy;
}

static void tidy_post(struct pki_tidy *t, struct node_request *req)
{
    char errmsg[CF_ERRMSG_SIZE];
    json_t *p = default_params();
    if (p == NULL || apply_params(req->data, p, errmsg) != CF_OK) {
        json_decref(p);
        pki_done(req, p == NULL ? NULL : node_response_error(400, "%s", errmsg));
        return;
    }
    struct node_response *r = node_response_new();
    if (r == NULL) {
        json_decref(p);
        pki_done(req, NULL);
        return;
    }
    r->status = 202;
    bool any = false;
    for (size_t i = 0; i < N_FLAGS; i++) {
        any = any || flag(p, flags[i]);
    }
    if (t->running) {
        r->warnings = json_pack("[s]", "Tidy operation already in progress.");
        json_decref(p);
    } else if (!any) {
        r->warnings = json_pack("[s]",
                                "Manual tidy requested but no tidy operations were set. Enable "
                                "at least one tidy operation to be run (tidy_cert_store / "
                                "tidy_revoked_certs / tidy_revoked_cert_issuer_associations / "
                                "tidy_expired_issuers).");
        json_decref(p);
    } else {
        r->warnings = json_pack("[s]",
                                "Tidy operation successfully started. Any information from the "
                                "operation will be printed to Vault's server logs.");
        run_start(t, p);
    }
    pki_done(req, r);
}

/* config/auto-tidy ------------------------------------------------------------------------------
 */

static json_t *auto_load(struct pki_engine *e)
{
    json_t *cfg = default_params();
    if (cfg == NULL) {
        return NULL;
    }
    json_object_set_new(cfg, "enabled", json_false());
    json_object_set_new(cfg, "interval_duration", json_integer(43200));
    json_object_set_new(cfg, "maintain_stored_certificate_counts", json_false());
    json_object_set_new(cfg, "publish_stored_certificate_count_metrics", json_false());
    json_object_set_new(cfg, "min_startup_backoff_duration", json_integer(300));
    json_object_set_new(cfg, "max_startup_backoff_duration", json_integer(900));
    json_t *stored = NULL;
    int rv = pki_read_json(e, KEY_AUTO, &stored);
    if (rv == CF_OK) {
        json_object_update_existing(cfg, stored);
    }
    json_decref(stored);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        json_decref(cfg);
        return NULL;
    }
    return cfg;
}

static void auto_write(struct pki_engine *e, struct node_request *req)
{
    char errmsg[CF_ERRMSG_SIZE];
    json_t *cfg = auto_load(e);
    if (cfg == NULL) {
        pki_done(req, node_response_error(500, "stored auto-tidy configuration is unreadable"));
        return;
    }
    int rv = apply_params(req->data, cfg, errmsg);
    static const char *const bools[] = {"enabled", "maintain_stored_certificate_counts",
                                        "publish_stored_certificate_count_metrics"};
    for (size_t i = 0; i < 3 && rv == CF_OK; i++) {
        bool b = json_is_true(json_object_get(cfg, bools[i]));
        rv = pki_field_bool_opt(req->data, bools[i], &b, errmsg);
        json_object_set_new(cfg, bools[i], json_boolean(b));
    }
    static const char *const secs[] = {"interval_duration", "min_startup_backoff_duration",
                                       "max_startup_backoff_duration"};
    for (size_t i = 0; i < 3 && rv == CF_OK; i++) {
        int64_t v = num(cfg, secs[i]);
        rv = pki_field_seconds_opt(req->data, secs[i], &v, errmsg);
        json_object_set_new(cfg, secs[i], json_integer(v));
    }
    if (rv == CF_OK &&
        json_is_true(json_object_get(cfg, "publish_stored_certificate_count_metrics")) &&
        !json_is_true(json_object_get(cfg, "maintain_stored_certificate_counts"))) {
        cf_errmsg_printf(errmsg,
                         "Can not publish a stored certificate count metric if not maintaining "
                         "the stored certificate count");
        rv = CF_EINVAL;
    }
    if (rv != CF_OK) {
        json_decref(cfg);
        pki_done(req, node_response_error(400, "%s", errmsg));
        return;
    }
    struct node_write *w = node_view_write(e->view);
    if (w != NULL && pki_write_json(w, KEY_AUTO, cfg) != CF_OK) {
        node_write_free(w);
        w = NULL;
    }
    pki_commit_reply(req, w, cfg, NULL);
}

static void auto_check(void *arg)
{
    struct pki_tidy *t = arg;
    if (t->running || !node_view_writable(t->e->view)) {
        return;
    }
    json_t *cfg = auto_load(t->e);
    if (cfg == NULL || !json_is_true(json_object_get(cfg, "enabled"))) {
        json_decref(cfg);
        return;
    }
    int64_t last = t->finished > 0 ? t->finished : 0;
    if (last > 0 && cf_now_s() < last + num(cfg, "interval_duration")) {
        json_decref(cfg);
        return;
    }
    if (t->finished > 0 && t->params != NULL) {
        t->last_auto_finished = t->finished;
    }
    static const char *const extra[] = {"enabled",
                                        "interval_duration",
                                        "maintain_stored_certificate_counts",
                                        "publish_stored_certificate_count_metrics",
                                        "min_startup_backoff_duration",
                                        "max_startup_backoff_duration"};
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        json_object_del(cfg, extra[i]);
    }
    run_start(t, cfg);
}

/* Routing ---------------------------------------------------------------------------------------
 */

bool pki_tidy_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    bool run = strcmp(p, "tidy") == 0;
    bool status = strcmp(p, "tidy-status") == 0;
    bool cancel = strcmp(p, "tidy-cancel") == 0;
    bool autot = strcmp(p, "config/auto-tidy") == 0;
    if (!run && !status && !cancel && !autot) {
        return false;
    }
    struct pki_tidy *t = tidy_of(e);
    if (t == NULL) {
        pki_done(req, NULL);
        return true;
    }
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (autot) {
        if (req->op == NODE_OP_READ) {
            pki_done(req, node_response_data(auto_load(e)));
        } else if (write) {
            auto_write(e, req);
        } else {
            pki_done(req, node_response_error(405, "unsupported operation"));
        }
        return true;
    }
    if ((status && req->op != NODE_OP_READ) || ((run || cancel) && !write)) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    if (run) {
        tidy_post(t, req);
        return true;
    }
    json_t *warnings = NULL;
    if (cancel) {
        if (!t->running) {
            warnings = json_pack(
                "[s]", "Tidy operation cannot be cancelled as none is currently running.");
        } else {
            t->cancel = true;
            t->state = "Cancelling";
        }
    }
    struct node_response *r = node_response_data(status_json(t));
    if (r != NULL) {
        r->warnings = warnings;
    } else {
        json_decref(warnings);
    }
    pki_done(req, r);
    return true;
}

int pki_tidy_start(struct pki_engine *e)
{
    struct pki_tidy *t = tidy_of(e);
    if (t == NULL) {
        return CF_ENOMEM;
    }
    t->auto_timer = node_view_timer(e->view, AUTO_CHECK_MS, AUTO_CHECK_MS, auto_check, t);
    return t->auto_timer != NULL ? CF_OK : CF_ENOMEM;
}

void pki_tidy_stop(struct pki_engine *e)
{
    struct pki_tidy *t = e->tidy;
    if (t == NULL) {
        return;
    }
    node_timer_stop(t->auto_timer);
    e->tidy = NULL;
    if (t->running && t->slice == NULL) {
        /* A slice batch is being committed and holds t: its callback frees it. */
        t->orphan = true;
        return;
    }
    node_timer_stop(t->slice);
    json_decref(t->params);
    cf_free(t);
}
