/*
 * CRL builds (crl_build.h): the job that scans revocations in slices, signs on the worker pool
 * and commits the pieces, the queue of callers waiting for builds, and the auto-rebuild
 * scheduler.
 */
#include "engines/pki/crl_build.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/crl.h"
#include "engines/pki/issuer.h"
#include "engines/pki/pki.h"
#include "engines/pki/revoke.h"
#include "lib/crypto.h"
#include "lib/duration.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

#define CF_LOG_MODULE "pki"
#include "lib/log.h"

#define KEY_STATE "crls/config"
#define WAL_PREFIX "delta-wal/"

struct waiter
{
    pki_crl_done_cb cb;
    void *arg;
    struct waiter *next;
};

/* One CRL set of a job. */
struct set
{
    char id[PKI_CRL_SET_ID_SIZE];
    const struct pki_issuer *signer; /* NULL: no member may sign CRLs; the set is skipped */
    struct cf_buf entries;
    size_t n_entries;
    int64_t number;          /* last CRL Number used (from crls/config) */
    int64_t complete_number; /* CRL Number of the current complete CRL, 0 = none */
    /* Results of the worker. */
    uint8_t *der;
    size_t len;
    uint8_t *delta_der;
    size_t delta_len;
    int64_t new_complete; /* 0 = not built */
    int64_t new_delta;    /* 0 = not built */
    int rv;
    char errmsg[CF_ERRMSG_SIZE];
};

struct job
{
    struct pki_crl_sched *sched; /* NULL once the engine stopped the scheduler */
    struct pki_engine *e;
    struct pki_snap *snap;
    bool complete;
    bool disabled;
    bool delta_enabled;
    int64_t expiry_s;
    int64_t max_entries;
    int64_t now;
    struct set *sets;
    size_t n_sets;
    int *issuer_set; /* per snapshot issuer: index into sets, -1 without a key */
    int def_set;
    char after[256];
    bool scan_started;
    char **wal; /* complete builds: delta-wal/ keys seen before the scan, deleted after */
    size_t n_wal;
    size_t cap_wal;
    size_t total;
    json_t *state;
    json_t *warnings;
    struct waiter *waiters;
    size_t pending;
    int write_status;
    int rv;
    char errmsg[CF_ERRMSG_SIZE];
};

struct pki_crl_sched
{
    struct pki_engine *e;
    struct job *running;
    struct waiter *next_complete; /* waiting for the next complete build */
    struct waiter *next_delta;    /* waiting for the next delta (or complete) build */
    bool want_complete;
    bool want_delta;
    struct node_timer *kick;
    struct node_timer *slice;
    struct node_timer *tick;
};

static void job_next_slice(void *arg);
static void job_finish(struct job *j);

/* Sets ----------------------------------------------------------------------------------------- */

bool pki_crl_set_id(const struct pki_issuer *is, char out[PKI_CRL_SET_ID_SIZE])
{
    memcpy(out, is->crl_set, PKI_CRL_SET_ID_SIZE);
    return out[0] != '\0';
}

static int64_t jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* crls/config as stored, or an empty state; NULL when unreadable. */
static json_t *state_load(struct pki_engine *e)
{
    json_t *st = NULL;
    int rv = pki_read_json(e, KEY_STATE, &st);
    if (rv == CF_ENOTFOUND) {
        return json_pack("{s:{}}", "sets");
    }
    if (rv != CF_OK || !json_is_object(json_object_get(st, "sets"))) {
        json_decref(st);
        return NULL;
    }
    return st;
}

/* Finds the issuer index in the snapshot; -1 when unknown. */
static int issuer_index(const struct pki_snap *s, const char *id)
{
    for (size_t i = 0; i < s->n_issuers; i++) {
        if (strcmp(s->issuers[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int job_sets(struct job *j)
{
    const struct pki_snap *s = j->snap;
    j->sets = cf_calloc(s->n_issuers + 1, sizeof(*j->sets));
    j->issuer_set = cf_calloc(s->n_issuers + 1, sizeof(int));
    if (j->sets == NULL || j->issuer_set == NULL) {
        return CF_ENOMEM;
    }
    json_t *stored = json_object_get(j->state, "sets");
    for (size_t i = 0; i < s->n_issuers; i++) {
        const struct pki_issuer *is = &s->issuers[i];
        char id[PKI_CRL_SET_ID_SIZE];
        j->issuer_set[i] = -1;
        if (!pki_crl_set_id(is, id)) {
            continue;
        }
        size_t k = 0;
        while (k < j->n_sets && strcmp(j->sets[k].id, id) != 0) {
            k++;
        }
        if (k == j->n_sets) {
            struct set *n = &j->sets[j->n_sets++];
            memcpy(n->id, id, sizeof(n->id));
            cf_buf_init(&n->entries);
            json_t *st = json_object_get(stored, id);
            n->number = jint(st, "number");
            n->complete_number = jint(st, "complete_number");
        }
        j->issuer_set[i] = (int)k;
        bool is_default = strcmp(is->id, s->default_issuer) == 0;
        if ((is->usage & PKI_USAGE_CRL) && is->key != NULL &&
            (j->sets[k].signer == NULL || is_default)) {
            j->sets[k].signer = is;
        }
    }
    int d = issuer_index(s, s->default_issuer);
    j->def_set = d >= 0 ? j->issuer_set[d] : -1;
    for (size_t k = 0; k < j->n_sets; k++) {
        if (j->sets[k].signer == NULL) {
            char w[200];
            snprintf(w, sizeof(w),
                     "Skipping CRL building for issuer set %s: no issuer of the set has the key "
                     "and the crl-signing usage",
                     j->sets[k].id);
            json_array_append_new(j->warnings, json_string(w));
        }
    }
    return CF_OK;
}

static int add_entry(struct job *j, int set, const uint8_t *serial, size_t n, int64_t when)
{
    if (set < 0 || j->sets[set].signer == NULL) {
        return CF_OK; /* no CRL to carry it (Vault skips these sets too) */
    }
    j->total++;
    if (j->max_entries > 0 && (int64_t)j->total > j->max_entries) {
        cf_errmsg_printf(j->errmsg,
                         "error building CRL: revocation list size (%zu) exceeds configured "
                         "maximum (%lld)",
                         j->total, (long long)j->max_entries);
        return CF_ETOOBIG;
    }
    j->sets[set].n_entries++;
    return pki_crl_entry_add(&j->sets[set].entries, serial, n, when);
}

/* Revoked issuers go on the CRL of an issuer in another set whose certificate signed them,
 * never on their own (pki.md 4.4). */
static int add_revoked_issuers(struct job *j)
{
    const struct pki_snap *s = j->snap;
    for (size_t i = 0; i < s->n_issuers; i++) {
        const struct pki_issuer *is = &s->issuers[i];
        if (!is->revoked) {
            continue;
        }
        for (size_t p = 0; p < s->n_issuers; p++) {
            const struct pki_issuer *par = &s->issuers[p];
            int ps = j->issuer_set[p];
            if (p == i || ps < 0 || ps == j->issuer_set[i] ||
                X509_check_issued(par->cert, is->cert) != X509_V_OK ||
                X509_verify(is->cert, X509_get0_pubkey(par->cert)) != 1) {
                continue;
            }
            const ASN1_INTEGER *sn = X509_get0_serialNumber(is->cert);
            int rv = add_entry(j, ps, ASN1_STRING_get0_data(sn), (size_t)ASN1_STRING_length(sn),
                               is->revocation_time);
            if (rv != CF_OK) {
                return rv;
            }
            break;
        }
    }
    return CF_OK;
}

/* The serial bytes of "prefix/aa-bb-..." */
static size_t key_serial(const char *key, uint8_t out[32])
{
    const char *name = strrchr(key, '/');
    name = name != NULL ? name + 1 : key;
    size_t n = 0;
    while (name[0] != '\0' && name[1] != '\0' && n < 32) {
        uint8_t b;
        size_t got = 0;
        if (cf_hex_decode(name, 2, &b, 1, &got) != CF_OK || got != 1) {
            return 0;
        }
        out[n++] = b;
        name += 2;
        if (*name == '-' || *name == ':') {
            name++;
        } else if (*name != '\0') {
            return 0;
        }
    }
    return n;
}

/* Job life ------------------------------------------------------------------------------------- */

static void waiters_fire(struct waiter *w, int status, const char *errmsg, const json_t *warn)
{
    while (w != NULL) {
        struct waiter *next = w->next;
        if (w->cb != NULL) {
            w->cb(w->arg, status, errmsg, warn);
        }
        cf_free(w);
        w = next;
    }
}

static void job_free(struct job *j)
{
    for (size_t k = 0; k < j->n_sets; k++) {
        cf_buf_close(&j->sets[k].entries);
        cf_free(j->sets[k].der);
        cf_free(j->sets[k].delta_der);
    }
    cf_free(j->sets);
    cf_free(j->issuer_set);
    for (size_t i = 0; i < j->n_wal; i++) {
        cf_free(j->wal[i]);
    }
    cf_free(j->wal);
    json_decref(j->state);
    json_decref(j->warnings);
    if (j->snap != NULL) {
        pki_snap_release(j->snap);
    }
    cf_free(j);
}

static void sched_kick(struct pki_crl_sched *s);

/* Ends the job: its waiters hear the outcome, the next queued build starts. */
static void job_end(struct job *j)
{
    struct pki_crl_sched *s = j->sched;
    if (j->rv != CF_OK) {
        CF_LOG(CF_LOG_WARN, "CRL build failed: %s", j->errmsg);
    }
    waiters_fire(j->waiters, j->rv, j->errmsg, j->warnings);
    j->waiters = NULL;
    if (s != NULL) {
        s->running = NULL;
        if (s->want_complete || s->want_delta) {
            sched_kick(s);
        }
    }
    job_free(j);
}

static void job_fail(struct job *j, int rv, const char *msg)
{
    j->rv = rv;
    if (msg != NULL) {
        cf_errmsg_printf(j->errmsg, "%s", msg);
    }
    job_end(j);
}

static int wal_visit(void *arg, const char *key)
{
    struct job *j = arg;
    if (j->n_wal == j->cap_wal) {
        size_t cap = j->cap_wal ? j->cap_wal * 2 : 64;
        char **nw = cf_realloc(j->wal, cap * sizeof(*nw));
        if (nw == NULL) {
            return -1;
        }
        j->wal = nw;
        j->cap_wal = cap;
    }
    j->wal[j->n_wal] = cf_strdup(key);
    return j->wal[j->n_wal++] == NULL ? -1 : 0;
}

static struct job *job_new(struct pki_crl_sched *s, bool complete)
{
    struct job *j = cf_calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->sched = s;
    j->e = s->e;
    j->complete = complete;
    j->def_set = -1;
    j->warnings = json_array();
    j->now = cf_now_s();
    return j;
}

static int job_prepare(struct job *j)
{
    json_t *cfg = pki_config_crl_get(j->e);
    if (cfg == NULL) {
        cf_errmsg_printf(j->errmsg, "stored CRL configuration is unreadable");
        return CF_ECORRUPT;
    }
    j->disabled = json_is_true(json_object_get(cfg, "disable"));
    j->delta_enabled = json_is_true(json_object_get(cfg, "enable_delta"));
    j->expiry_s = pki_config_secs(cfg, "expiry");
    j->max_entries = jint(cfg, "max_crl_entries");
    json_decref(cfg);
    j->snap = pki_snap_get(j->e);
    j->state = state_load(j->e);
    if (j->snap == NULL || j->state == NULL || j->warnings == NULL) {
        cf_errmsg_printf(j->errmsg, "could not read the mount's issuers or CRL state");
        return CF_EIO;
    }
    int rv = job_sets(j);
    if (rv == CF_OK && j->complete && !j->disabled) {
        rv = add_revoked_issuers(j);
    }
    if (rv == CF_OK && j->complete &&
        node_view_scan(j->e->view, WAL_PREFIX, NULL, wal_visit, j) < 0) {
        rv = CF_ENOMEM;
    }
    return rv;
}

/* Scanning ------------------------------------------------------------------------------------- */

struct slice_keys
{
    char *keys[PKI_CRL_SLICE];
    size_t n;
};

static int slice_visit(void *arg, const char *key)
{
    struct slice_keys *k = arg;
    k->keys[k->n] = cf_strdup(key);
    if (k->keys[k->n] == NULL) {
        return -1;
    }
    k->n++;
    return k->n == PKI_CRL_SLICE ? 1 : 0;
}

bool pki_crl_entry_fields(const char *s, size_t n, int64_t *when, char *iid, size_t cap)
{
    static const char tk[] = "\"revocation_time\":";
    static const char ik[] = "\"issuer_id\":\"";
    const char *t = memmem(s, n, tk, sizeof(tk) - 1);
    const char *i = memmem(s, n, ik, sizeof(ik) - 1);
    if (t == NULL || i == NULL) {
        return false;
    }
    const char *p = t + sizeof(tk) - 1;
    const char *end = s + n;
    bool neg = p < end && *p == '-';
    p += neg;
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 18) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || (p < end && *p >= '0' && *p <= '9')) {
        return false;
    }
    const char *q = i + sizeof(ik) - 1;
    size_t k = 0;
    while (q < end && *q != '"' && *q != '\\' && k + 1 < cap) {
        iid[k++] = *q++;
    }
    if (q >= end || *q != '"') {
        return false;
    }
    iid[k] = '\0';
    *when = neg ? -v : v;
    return true;
}

static int slice_entry(struct job *j, const char *key)
{
    uint8_t serial[32];
    size_t n = key_serial(key, serial);
    if (n == 0) {
        return CF_OK; /* not a serial (nothing else is stored there) */
    }
    uint8_t *raw = NULL;
    size_t len = 0;
    if (node_view_get(j->e->view, key, &raw, &len) != CF_OK) {
        return CF_OK; /* deleted meanwhile by tidy */
    }
    int64_t when = 0;
    char iid[128];
    const char *id = iid;
    json_t *v = NULL;
    if (!pki_crl_entry_fields((const char *)raw, len, &when, iid, sizeof(iid))) {
        v = json_loadb((const char *)raw, len, 0, NULL);
        if (v == NULL) {
            cf_free(raw);
            return CF_OK; /* unreadable: as before, not on the CRL (tidy reports it) */
        }
        when = jint(v, "revocation_time");
        id = json_string_value(json_object_get(v, "issuer_id"));
    }
    cf_free(raw);
    int idx = id != NULL ? issuer_index(j->snap, id) : -1;
    int set = idx >= 0 && j->issuer_set[idx] >= 0 ? j->issuer_set[idx] : j->def_set;
    json_decref(v);
    return add_entry(j, set, serial, n, when);
}

static void job_work(void *arg);
static void job_built(void *arg, int status);

static void job_next_slice(void *arg)
{
    struct job *j = arg;
    struct pki_crl_sched *s = j->sched;
    if (s != NULL) {
        node_timer_stop(s->slice);
        s->slice = NULL;
    }
    if (s == NULL) {
        job_fail(j, CF_ECANCELED, "the mount was unmounted or sealed");
        return;
    }
    bool scan = !j->disabled || !j->complete;
    const char *prefix = j->complete ? "revoked/" : WAL_PREFIX;
    struct slice_keys k = {.n = 0};
    int rv = CF_OK;
    if (scan) {
        rv = node_view_scan(j->e->view, prefix, j->scan_started ? j->after : NULL, slice_visit, &k);
        rv = rv < 0 ? rv : CF_OK;
        j->scan_started = true;
    }
    for (size_t i = 0; i < k.n && rv == CF_OK; i++) {
        rv = slice_entry(j, k.keys[i]);
    }
    if (k.n > 0) {
        snprintf(j->after, sizeof(j->after), "%s", k.keys[k.n - 1]);
    }
    for (size_t i = 0; i < k.n; i++) {
        cf_free(k.keys[i]);
    }
    if (rv != CF_OK) {
        job_fail(j, rv, j->errmsg[0] ? NULL : "could not read the revocations");
        return;
    }
    if (k.n == PKI_CRL_SLICE) {
        s->slice = node_view_timer(j->e->view, 0, 0, job_next_slice, j);
        if (s->slice == NULL) {
            job_fail(j, CF_ENOMEM, "out of memory");
        }
        return;
    }
    node_view_work(j->e->view, job_work, job_built, j);
}

/* Signing (worker pool) ------------------------------------------------------------------------ */

static void job_work(void *arg)
{
    struct job *j = arg;
    for (size_t k = 0; k < j->n_sets; k++) {
        struct set *st = &j->sets[k];
        if (st->signer == NULL) {
            continue;
        }
        int bits;
        bool pss;
        pki_crl_sigalg(
            json_string_value(json_object_get(st->signer->entry, "revocation_signature_algorithm")),
            &bits, &pss);
        struct pki_crl_params p = {
            .issuer = st->signer->cert,
            .signer = st->signer->key->pkey,
            .signature_bits = bits,
            .use_pss = pss,
            .this_update = j->now,
            .next_update = j->now + j->expiry_s,
        };
        int64_t number = st->number;
        int64_t base = st->complete_number;
        if (j->complete) {
            p.number = ++number;
            p.delta_base = -1;
            st->rv = pki_crl_build(&p, st->entries.data, st->entries.len, &st->der, &st->len,
                                   st->errmsg);
            if (st->rv != CF_OK) {
                continue;
            }
            st->new_complete = number;
            base = number;
        }
        if (!j->delta_enabled || base == 0) {
            continue;
        }
        p.number = ++number;
        p.delta_base = base;
        /* After a complete build the delta starts empty: everything is on the complete CRL. */
        const uint8_t *ents = j->complete ? NULL : st->entries.data;
        size_t elen = j->complete ? 0 : st->entries.len;
        st->rv = pki_crl_build(&p, ents, elen, &st->delta_der, &st->delta_len, st->errmsg);
        if (st->rv == CF_OK) {
            st->new_delta = number;
        }
    }
}

/* Committing ----------------------------------------------------------------------------------- */

static void piece_committed(void *arg, int status)
{
    struct job *j = arg;
    if (status != CF_OK && j->write_status == CF_OK) {
        j->write_status = status;
    }
    if (--j->pending > 0) {
        return;
    }
    if (j->write_status != CF_OK || j->sched == NULL) {
        char m[CF_ERRMSG_SIZE];
        cf_errmsg_printf(m, "could not store the CRL: %s", cf_strerror(j->write_status));
        job_fail(j, j->write_status != CF_OK ? j->write_status : CF_ECANCELED, m);
        return;
    }
    job_finish(j);
}

/* The piece size: PKI_CRL_CHUNK_SIZE, or COFFER_PKI_CRL_CHUNK_BYTES (at least 1024) so tests
 * can make CRLs of many pieces without a million revocations. */
static size_t chunk_size(void)
{
    const char *v = getenv("COFFER_PKI_CRL_CHUNK_BYTES");
    long n = v != NULL ? strtol(v, NULL, 10) : 0;
    return n >= 1024 && n <= (long)PKI_CRL_CHUNK_SIZE ? (size_t)n : PKI_CRL_CHUNK_SIZE;
}

static size_t pieces(size_t len)
{
    size_t c = chunk_size();
    return (len + c - 1) / c;
}

/* Submits the pieces of one CRL; each its own batch. */
static int put_pieces(struct job *j,
                      const char *set,
                      int64_t number,
                      const uint8_t *der,
                      size_t len)
{
    size_t csize = chunk_size();
    size_t n = pieces(len);
    for (size_t i = 0; i < n; i++) {
        struct node_write *w = node_view_write(j->e->view);
        if (w == NULL) {
            return CF_ENOMEM;
        }
        char key[128];
        int rv = CF_OK;
        if (i == 0) {
            /* Pieces left by an earlier build with this number that failed to finish. */
            snprintf(key, sizeof(key), "crls/%s/%lld/", set, (long long)number);
            rv = node_write_delete_prefix(w, key);
        }
        snprintf(key, sizeof(key), "crls/%s/%lld/%06zu", set, (long long)number, i);
        size_t off = i * csize;
        size_t sz = len - off < csize ? len - off : csize;
        if (rv == CF_OK) {
            rv = node_write_put(w, key, der + off, sz);
        }
        if (rv != CF_OK) {
            node_write_free(w);
            return rv;
        }
        j->pending++;
        node_write_commit(w, piece_committed, j);
    }
    return CF_OK;
}

static void job_built(void *arg, int status)
{
    struct job *j = arg;
    if (status != CF_OK || j->sched == NULL) {
        job_fail(j, status != CF_OK ? status : CF_ECANCELED, "could not run the CRL build");
        return;
    }
    j->pending = 1; /* held until every piece is submitted */
    int rv = CF_OK;
    for (size_t k = 0; k < j->n_sets && rv == CF_OK; k++) {
        struct set *st = &j->sets[k];
        if (st->signer == NULL) {
            continue;
        }
        if (st->rv != CF_OK) {
            char w[CF_ERRMSG_SIZE + 64];
            snprintf(w, sizeof(w), "Error building CRL for issuer %s: %s", st->signer->id,
                     st->errmsg);
            json_array_append_new(j->warnings, json_string(w));
            continue;
        }
        if (st->new_complete > 0) {
            rv = put_pieces(j, st->id, st->new_complete, st->der, st->len);
        }
        if (rv == CF_OK && st->new_delta > 0) {
            rv = put_pieces(j, st->id, st->new_delta, st->delta_der, st->delta_len);
        }
    }
    if (rv != CF_OK && j->write_status == CF_OK) {
        j->write_status = rv;
    }
    piece_committed(j, CF_OK);
}

static void wal_dropped(void *arg, int status)
{
    (void)arg;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "could not drop delta WAL entries: %s", cf_strerror(status));
    }
}

static void flip_committed(void *arg, int status)
{
    struct job *j = arg;
    j->rv = status;
    if (status != CF_OK) {
        cf_errmsg_printf(j->errmsg, "could not store the CRL state: %s", cf_strerror(status));
    } else {
        /* The revocations of the delta-wal/ are on the complete CRLs now; drop them in batches
         * of bounded size (a failure only means they reappear on one delta CRL). */
        for (size_t i = 0; i < j->n_wal && j->sched != NULL;) {
            struct node_write *w = node_view_write(j->e->view);
            if (w == NULL) {
                break;
            }
            for (size_t n = 0; n < 5000 && i < j->n_wal; n++, i++) {
                node_write_delete(w, j->wal[i]);
            }
            node_write_commit(w, wal_dropped, NULL);
        }
    }
    job_end(j);
}

static void drop_pieces(struct node_write *w,
                        const char *set,
                        int64_t number,
                        int64_t keep1,
                        int64_t keep2)
{
    if (number <= 0 || number == keep1 || number == keep2) {
        return;
    }
    char key[128];
    snprintf(key, sizeof(key), "crls/%s/%lld/", set, (long long)number);
    node_write_delete_prefix(w, key);
}

/* Switches crls/config to the new CRLs and deletes the pieces they replace, in one batch. */
static void job_finish(struct job *j)
{
    json_t *sets = json_object_get(j->state, "sets");
    struct node_write *w = node_view_write(j->e->view);
    if (w == NULL) {
        job_fail(j, CF_ENOMEM, "out of memory");
        return;
    }
    char ts[CF_RFC3339_SIZE];
    cf_rfc3339(j->now, ts);
    bool any_complete = false;
    bool any_delta = false;
    for (size_t k = 0; k < j->n_sets; k++) {
        struct set *st = &j->sets[k];
        if (st->signer == NULL || st->rv != CF_OK ||
            (st->new_complete == 0 && st->new_delta == 0)) {
            continue;
        }
        json_t *o = json_object_get(sets, st->id);
        if (o == NULL) {
            o = json_object();
            json_object_set_new(sets, st->id, o);
        }
        int64_t old_complete = jint(o, "complete_number");
        int64_t old_delta = jint(o, "delta_number");
        int64_t keep_c = st->new_complete > 0 ? st->new_complete : old_complete;
        int64_t keep_d = st->new_delta > 0 ? st->new_delta : (j->complete ? 0 : old_delta);
        if (st->new_complete > 0) {
            any_complete = true;
            json_object_set_new(o, "complete_number", json_integer(st->new_complete));
            json_object_set_new(o, "chunks", json_integer((json_int_t)pieces(st->len)));
            json_object_set_new(o, "len", json_integer((json_int_t)st->len));
            json_object_set_new(o, "this_update", json_integer(j->now));
            json_object_set_new(o, "next_update", json_integer(j->now + j->expiry_s));
            json_object_set_new(o, "entries", json_integer((json_int_t)st->n_entries));
        }
        if (st->new_delta > 0 || j->complete) {
            any_delta = true;
            json_object_set_new(o, "delta_number", json_integer(st->new_delta));
            json_object_set_new(o, "delta_chunks", json_integer((json_int_t)pieces(st->delta_len)));
            json_object_set_new(o, "delta_len", json_integer((json_int_t)st->delta_len));
            json_object_set_new(o, "delta_this_update", json_integer(j->now));
        }
        int64_t top = st->new_delta > st->new_complete ? st->new_delta : st->new_complete;
        json_object_set_new(o, "number", json_integer(top));
        drop_pieces(w, st->id, old_complete, keep_c, keep_d);
        drop_pieces(w, st->id, old_delta, keep_c, keep_d);
    }
    if (any_complete) {
        json_object_set_new(j->state, "last_modified", json_string(ts));
    }
    if (any_delta) {
        json_object_set_new(j->state, "delta_last_modified", json_string(ts));
    }
    json_object_set_new(j->state, "delta_built_at", json_integer(j->now));
    if (pki_write_json(w, KEY_STATE, j->state) != CF_OK) {
        node_write_free(w);
        job_fail(j, CF_ENOMEM, "out of memory");
        return;
    }
    node_write_commit(w, flip_committed, j);
}

/* Queue and scheduler -------------------------------------------------------------------------- */

static void sched_start_job(void *arg)
{
    struct pki_crl_sched *s = arg;
    node_timer_stop(s->kick);
    s->kick = NULL;
    if (s->running != NULL || (!s->want_complete && !s->want_delta)) {
        return;
    }
    bool complete = s->want_complete;
    struct job *j = job_new(s, complete);
    struct waiter *ws = s->next_complete;
    /* A complete build also rebuilds the delta CRLs: it serves delta waiters too. */
    if (complete) {
        struct waiter **tail = &ws;
        while (*tail != NULL) {
            tail = &(*tail)->next;
        }
        *tail = s->next_delta;
        s->next_delta = NULL;
        s->want_delta = false;
    } else {
        ws = s->next_delta;
        s->next_delta = NULL;
        s->want_delta = false;
    }
    if (complete) {
        s->next_complete = NULL;
        s->want_complete = false;
    }
    if (j == NULL) {
        waiters_fire(ws, CF_ENOMEM, "out of memory", NULL);
        return;
    }
    j->waiters = ws;
    s->running = j;
    if (!node_view_writable(s->e->view)) {
        job_fail(j, CF_ENOTLEADER, "CRLs are built only by the active node");
        return;
    }
    int rv = job_prepare(j);
    if (rv != CF_OK) {
        job_fail(j, rv, j->errmsg[0] ? NULL : "could not prepare the CRL build");
        return;
    }
    job_next_slice(j);
}

static void sched_kick(struct pki_crl_sched *s)
{
    if (s->kick == NULL && s->running == NULL) {
        s->kick = node_view_timer(s->e->view, 0, 0, sched_start_job, s);
    }
}

void pki_crl_rebuild(struct pki_engine *e, bool complete, pki_crl_done_cb cb, void *arg)
{
    struct pki_crl_sched *s = e->crl;
    struct waiter *w = cb != NULL ? cf_calloc(1, sizeof(*w)) : NULL;
    if (w != NULL) {
        w->cb = cb;
        w->arg = arg;
        struct waiter **head = complete ? &s->next_complete : &s->next_delta;
        w->next = *head;
        *head = w;
    } else if (cb != NULL) {
        cb(arg, CF_ENOMEM, "out of memory", NULL); /* rare: OOM; documented exception */
        return;
    }
    if (complete) {
        s->want_complete = true;
    } else {
        s->want_delta = true;
    }
    sched_kick(s);
}

static int wal_any(void *arg, const char *key)
{
    (void)key;
    *(bool *)arg = true;
    return 1;
}

static void sched_tick(void *arg)
{
    struct pki_crl_sched *s = arg;
    struct pki_engine *e = s->e;
    if (s->running != NULL || s->kick != NULL || !node_view_writable(e->view)) {
        return;
    }
    json_t *cfg = pki_config_crl_get(e);
    if (cfg == NULL || !json_is_true(json_object_get(cfg, "auto_rebuild"))) {
        json_decref(cfg);
        return;
    }
    int64_t grace = pki_config_secs(cfg, "auto_rebuild_grace_period");
    int64_t interval = pki_config_secs(cfg, "delta_rebuild_interval");
    bool delta = json_is_true(json_object_get(cfg, "enable_delta"));
    json_decref(cfg);
    json_t *st = state_load(e);
    if (st == NULL) {
        return;
    }
    int64_t now = cf_now_s();
    const char *id;
    json_t *o;
    bool complete = false;
    json_t *sets = json_object_get(st, "sets");
    json_object_foreach(sets, id, o)
    {
        if (jint(o, "next_update") - grace <= now) {
            complete = true;
        }
    }
    /* A set that never had a CRL (a new issuer with its own key) gets one now. */
    struct pki_snap *snap = complete ? NULL : pki_snap_get(e);
    for (size_t i = 0; snap != NULL && i < snap->n_issuers && !complete; i++) {
        char sid[PKI_CRL_SET_ID_SIZE];
        const struct pki_issuer *is = &snap->issuers[i];
        complete = (is->usage & PKI_USAGE_CRL) && is->key != NULL && pki_crl_set_id(is, sid) &&
                   json_object_get(sets, sid) == NULL;
    }
    if (snap != NULL) {
        pki_snap_release(snap);
    }
    int64_t built = jint(st, "delta_built_at");
    json_decref(st);
    if (complete) {
        pki_crl_rebuild(e, true, NULL, NULL);
        return;
    }
    bool waiting = false;
    if (delta && now >= built + interval &&
        node_view_scan(e->view, WAL_PREFIX, NULL, wal_any, &waiting) >= 0 && waiting) {
        pki_crl_rebuild(e, false, NULL, NULL);
    }
}

int pki_crl_start(struct pki_engine *e)
{
    struct pki_crl_sched *s = cf_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CF_ENOMEM;
    }
    s->e = e;
    s->tick = node_view_timer(e->view, PKI_CRL_TICK_MS, PKI_CRL_TICK_MS, sched_tick, s);
    if (s->tick == NULL) {
        cf_free(s);
        return CF_ENOMEM;
    }
    e->crl = s;
    return CF_OK;
}

void pki_crl_stop(struct pki_engine *e)
{
    struct pki_crl_sched *s = e->crl;
    if (s == NULL) {
        return;
    }
    node_timer_stop(s->tick);
    node_timer_stop(s->kick);
    struct job *j = s->running;
    if (j != NULL) {
        j->sched = NULL;
        if (s->slice != NULL) {
            /* Between slices: nothing else will call the job back. */
            node_timer_stop(s->slice);
            job_fail(j, CF_ECANCELED, "the mount was unmounted or sealed");
        }
        /* Otherwise a worker or commit callback is pending and ends the job. */
    }
    waiters_fire(s->next_complete, CF_ECANCELED, "the mount was unmounted or sealed", NULL);
    waiters_fire(s->next_delta, CF_ECANCELED, "the mount was unmounted or sealed", NULL);
    cf_free(s);
    e->crl = NULL;
}

/* Commit, rebuild, reply -------------------------------------------------------------------- */

struct commit_op
{
    struct pki_engine *e;
    struct node_request *req;
    json_t *data;     /* owned reply data */
    json_t *warnings; /* owned, may be NULL */
    bool rebuild;     /* auto_rebuild off: the CRLs are rebuilt before the answer */
};

static void op_reply(struct commit_op *op, struct node_response *r)
{
    if (r != NULL && json_array_size(op->warnings) > 0) {
        r->warnings = json_incref(op->warnings);
    }
    json_decref(op->warnings);
    pki_done(op->req, r);
    cf_free(op);
}

static void op_rebuilt(void *arg, int status, const char *errmsg, const json_t *warnings)
{
    struct commit_op *op = arg;
    if (status != CF_OK) {
        json_decref(op->data);
        op_reply(op, node_response_error(500, "error encountered during CRL building: %s", errmsg));
        return;
    }
    size_t i;
    json_t *w;
    json_array_foreach(warnings, i, w)
    {
        char t[CF_ERRMSG_SIZE + 64];
        snprintf(t, sizeof(t), "Warning %zu during CRL rebuild: %s", i + 1, json_string_value(w));
        if (op->warnings == NULL) {
            op->warnings = json_array();
        }
        json_array_append_new(op->warnings, json_string(t));
    }
    op_reply(op, node_response_data(op->data));
}

static void op_committed(void *arg, int status)
{
    struct commit_op *op = arg;
    if (status != CF_OK) {
        json_decref(op->data);
        op_reply(op, node_response_error(500, "failed to store the revocation: %s",
                                         cf_strerror(status)));
        return;
    }
    if (op->rebuild) {
        pki_crl_rebuild(op->e, true, op_rebuilt, op);
        return;
    }
    op_reply(op, node_response_data(op->data));
}

void pki_crl_commit_reply(struct pki_engine *e,
                          struct node_request *req,
                          struct node_write *w,
                          json_t *data,
                          bool rebuild)
{
    struct commit_op *op = w != NULL && data != NULL ? cf_calloc(1, sizeof(*op)) : NULL;
    if (op == NULL) {
        node_write_free(w);
        json_decref(data);
        pki_done(req, NULL);
        return;
    }
    op->e = e;
    op->req = req;
    op->data = data;
    op->rebuild = rebuild;
    node_write_commit(w, op_committed, op);
}

/* Reading -------------------------------------------------------------------------------------- */

int pki_crl_load(struct pki_engine *e,
                 const struct pki_issuer *is,
                 bool delta,
                 uint8_t **der,
                 size_t *len,
                 int64_t *built_at)
{
    char id[PKI_CRL_SET_ID_SIZE];
    *der = NULL;
    *len = 0;
    if (!pki_crl_set_id(is, id)) {
        return CF_ENOTFOUND;
    }
    json_t *st = state_load(e);
    if (st == NULL) {
        return CF_EIO;
    }
    json_t *o = json_object_get(json_object_get(st, "sets"), id);
    int64_t number = jint(o, delta ? "delta_number" : "complete_number");
    int64_t chunks = jint(o, delta ? "delta_chunks" : "chunks");
    int64_t total = jint(o, delta ? "delta_len" : "len");
    if (built_at != NULL) {
        *built_at = jint(o, delta ? "delta_this_update" : "this_update");
    }
    json_decref(st);
    if (o == NULL) {
        return CF_ENOTFOUND;
    }
    if (number == 0) {
        return CF_OK; /* no delta CRL */
    }
    struct cf_buf b;
    cf_buf_init(&b);
    int rv = cf_buf_reserve(&b, (size_t)total);
    for (int64_t i = 0; i < chunks && rv == CF_OK; i++) {
        char key[128];
        snprintf(key, sizeof(key), "crls/%s/%lld/%06lld", id, (long long)number, (long long)i);
        uint8_t *p = NULL;
        size_t n = 0;
        rv = node_view_get(e->view, key, &p, &n);
        if (rv == CF_OK) {
            rv = cf_buf_append(&b, p, n);
        }
        cf_free(p);
    }
    if (rv == CF_OK && b.len != (size_t)total) {
        rv = CF_ECORRUPT;
    }
    if (rv != CF_OK) {
        cf_buf_close(&b);
        return rv == CF_ENOTFOUND ? CF_ECORRUPT : rv;
    }
    *der = cf_buf_steal(&b, len);
    return CF_OK;
}

int pki_crl_wal_put(struct node_write *w,
                    const char *serial,
                    int64_t revoked_at,
                    const char *issuer_id)
{
    char key[160];
    pki_serial_key(WAL_PREFIX, serial, key, sizeof(key));
    json_t *v =
        json_pack("{s:I, s:s}", "revocation_time", (json_int_t)revoked_at, "issuer_id", issuer_id);
    if (v == NULL) {
        return CF_ENOMEM;
    }
    int rv = pki_write_json(w, key, v);
    json_decref(v);
    return rv;
}
