/*
 * Stored certificates and revocation entries (revoke.h), and the revocation endpoints.
 */
#include "engines/pki/revoke.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/crl_build.h"
#include "engines/pki/key.h"
#include "engines/pki/pki.h"
#include "engines/pki/x509.h"
#include "lib/crypto.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

void pki_serial_key(const char *prefix, const char *serial, char *out, size_t n)
{
    size_t pl = strlen(prefix);
    snprintf(out, n, "%s%s", prefix, serial);
    for (size_t i = pl; i < n && out[i] != '\0'; i++) {
        if (out[i] == ':') {
            out[i] = '-';
        }
    }
}

int pki_cert_load(struct pki_engine *e, const char *serial, uint8_t **der, size_t *len)
{
    char key[160];
    pki_serial_key("certs/", serial, key, sizeof(key));
    return node_view_get(e->view, key, der, len);
}

int pki_revocation_load(struct pki_engine *e, const char *serial, struct pki_revocation *out)
{
    char key[160];
    pki_serial_key("revoked/", serial, key, sizeof(key));
    uint8_t *val = NULL;
    size_t len = 0;
    int rv = node_view_get(e->view, key, &val, &len);
    if (rv != CF_OK) {
        return rv;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    if (j == NULL) {
        return CF_ECORRUPT;
    }
    out->time = json_integer_value(json_object_get(j, "revocation_time"));
    const char *id = json_string_value(json_object_get(j, "issuer_id"));
    snprintf(out->issuer_id, sizeof(out->issuer_id), "%s", id != NULL ? id : "");
    json_decref(j);
    return CF_OK;
}

/* Endpoints ------------------------------------------------------------------------------------ */

static json_t *revoked_data(int64_t t)
{
    char ts[CF_RFC3339_SIZE];
    cf_rfc3339(t, ts);
    return json_pack("{s:I, s:s, s:s}", "revocation_time", (json_int_t)t, "revocation_time_rfc3339",
                     ts, "state", "revoked");
}

static void bad(struct node_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bad(struct node_request *req, const char *fmt, ...)
{
    char m[CF_ERRMSG_SIZE + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    pki_done(req, node_response_error(400, "%s", m));
}

/* What revoke and revoke-with-key were given, checked. */
struct target
{
    X509 *cert;
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    uint8_t *der; /* the DER to store in certs/ for a certificate not stored yet (BYOC) */
    size_t der_len;
    const struct pki_issuer *issuer;
};

static void target_close(struct target *t)
{
    X509_free(t->cert);
    cf_free(t->der);
}

/* Fills t from the request; answers req and returns false on bad input. */
static bool target_read(struct pki_engine *e,
                        struct node_request *req,
                        const struct pki_snap *s,
                        struct target *t)
{
    char errmsg[CF_ERRMSG_SIZE];
    const char *serial = json_string_value(json_object_get(req->data, "serial_number"));
    const char *pem = json_string_value(json_object_get(req->data, "certificate"));
    serial = serial != NULL && serial[0] != '\0' ? serial : NULL;
    pem = pem != NULL && pem[0] != '\0' ? pem : NULL;
    if (serial == NULL && pem == NULL) {
        bad(req, "%s", "The serial number or certificate to revoke must be provided.");
        return false;
    }
    if (serial != NULL && pem != NULL) {
        bad(req, "%s", "Must provide either the certificate or the serial to revoke; not both.");
        return false;
    }
    if (pem != NULL) {
        if (strlen(pem) < 75) {
            bad(req, "%s",
                "Provided data for certificate was too short; perhaps a path parameter wasn't "
                "encoded?");
            return false;
        }
        if (pki_x509_cert_from_pem(pem, strlen(pem), &t->cert, errmsg) != CF_OK ||
            pki_x509_serial_hex(t->cert, t->serial, errmsg) != CF_OK) {
            bad(req, "error parsing certificate: %s", errmsg);
            return false;
        }
        t->issuer = pki_snap_issuer_of(s, t->cert);
        if (t->issuer == NULL) {
            bad(req, "%s",
                "unable to verify signature on presented cert from any present issuer in this "
                "mount; certificates from previous CAs will need to have their issuing CA and "
                "key re-imported if revoked");
            return false;
        }
        unsigned char *der = NULL;
        int n = i2d_X509(t->cert, &der);
        if (n <= 0) {
            pki_done(req, NULL);
            return false;
        }
        uint8_t *stored = NULL;
        size_t slen = 0;
        int rv = pki_cert_load(e, t->serial, &stored, &slen);
        if (rv == CF_OK && (slen != (size_t)n || memcmp(stored, der, slen) != 0)) {
            cf_free(stored);
            OPENSSL_free(der);
            pki_done(req, node_response_error(500,
                                              "certificate with same serial but unequal value "
                                              "already present in this cluster's storage; "
                                              "refusing to revoke"));
            return false;
        }
        if (rv == CF_ENOTFOUND) {
            t->der = cf_memdup(der, (size_t)n);
            t->der_len = (size_t)n;
        }
        cf_free(stored);
        OPENSSL_free(der);
        return true;
    }
    if (pki_x509_serial_normalize(serial, t->serial, errmsg) != CF_OK) {
        bad(req, "%s", errmsg);
        return false;
    }
    const struct pki_issuer *as_issuer = pki_snap_issuer_by_serial(s, t->serial);
    if (as_issuer != NULL) {
        bad(req, "adding issuer (id: %s) to its own CRL is not allowed", as_issuer->id);
        return false;
    }
    uint8_t *der = NULL;
    size_t len = 0;
    int rv = pki_cert_load(e, t->serial, &der, &len);
    if (rv == CF_OK) {
        rv = pki_x509_cert_from_der(der, len, &t->cert, errmsg);
    }
    cf_free(der);
    if (rv != CF_OK) {
        bad(req, "certificate with serial %s not found.", t->serial);
        return false;
    }
    t->issuer = pki_snap_issuer_of(s, t->cert);
    return true;
}

/* revoke-with-key: the private key must be the certificate's. */
static bool key_matches(struct node_request *req, X509 *cert)
{
    char errmsg[CF_ERRMSG_SIZE];
    const char *pem = json_string_value(json_object_get(req->data, "private_key"));
    if (pem == NULL || pem[0] == '\0') {
        bad(req, "%s", "Must have private key to revoke via the /revoke-with-key path.");
        return false;
    }
    if (strlen(pem) < 64) {
        bad(req, "%s",
            "Provided data for private_key was too short; perhaps a path parameter wasn't "
            "encoded?");
        return false;
    }
    EVP_PKEY *k = NULL;
    if (pki_key_from_pem(pem, strlen(pem), &k, errmsg) != CF_OK) {
        bad(req, "failed to parse provided private key: %s", errmsg);
        return false;
    }
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    bool same_type = pub != NULL && EVP_PKEY_get_base_id(pub) == EVP_PKEY_get_base_id(k);
    bool ok = same_type && EVP_PKEY_eq(k, pub) == 1;
    EVP_PKEY_free(k);
    if (!ok) {
        bad(req, "%s",
            same_type ? "provided private key does not match certificate's public key"
                      : "provided private key type does not match certificate's public key type");
    }
    return ok;
}

static void revoke_cert(struct pki_engine *e, struct node_request *req, bool with_key)
{
    struct pki_snap *s = pki_snap_get(e);
    if (s == NULL) {
        pki_done(req, node_response_error(500, "could not read the mount's issuers"));
        return;
    }
    struct target t = {0};
    if (!target_read(e, req, s, &t) || (with_key && !key_matches(req, t.cert))) {
        target_close(&t);
        pki_snap_release(s);
        return;
    }
    struct pki_revocation prev;
    if (pki_revocation_load(e, t.serial, &prev) == CF_OK) {
        pki_done(req, node_response_data(revoked_data(prev.time))); /* already revoked */
        target_close(&t);
        pki_snap_release(s);
        return;
    }
    int64_t now = cf_now_s();
    int64_t not_after = 0;
    pki_x509_not_after(t.cert, &not_after);
    if (not_after < now) {
        struct node_response *r = node_response_new();
        if (r != NULL) {
            char m[160];
            snprintf(m, sizeof(m),
                     "certificate with serial %s already expired; refusing to add "
                     "to CRL",
                     t.serial);
            r->warnings = json_pack("[s]", m);
        }
        pki_done(req, r);
        target_close(&t);
        pki_snap_release(s);
        return;
    }
    json_t *cfg = pki_config_crl_get(e);
    bool auto_rebuild = json_is_true(json_object_get(cfg, "auto_rebuild"));
    bool delta = json_is_true(json_object_get(cfg, "enable_delta"));
    json_decref(cfg);

    const char *issuer_id = t.issuer != NULL ? t.issuer->id : "";
    unsigned char *der = NULL;
    int n = i2d_X509(t.cert, &der);
    char *b64 = n > 0 ? cf_base64_encode(der, (size_t)n) : NULL;
    OPENSSL_free(der);
    char ts[CF_RFC3339_SIZE];
    cf_rfc3339(now, ts);
    json_t *entry =
        b64 != NULL ? json_pack("{s:s, s:I, s:s, s:s}", "certificate_bytes", b64, "revocation_time",
                                (json_int_t)now, "revocation_time_utc", ts, "issuer_id", issuer_id)
                    : NULL;
    cf_free(b64);
    char key[160];
    pki_serial_key("revoked/", t.serial, key, sizeof(key));
    struct node_write *w = entry != NULL ? node_view_write(e->view) : NULL;
    int rv = w != NULL ? pki_write_json(w, key, entry) : CF_ENOMEM;
    if (rv == CF_OK && t.der != NULL) {
        pki_serial_key("certs/", t.serial, key, sizeof(key));
        rv = node_write_put(w, key, t.der, t.der_len);
    }
    if (rv == CF_OK && auto_rebuild && delta) {
        rv = pki_crl_wal_put(w, t.serial, now, issuer_id);
    }
    json_decref(entry);
    if (rv != CF_OK) {
        node_write_free(w);
        w = NULL;
    }
    target_close(&t);
    pki_snap_release(s);
    pki_crl_commit_reply(e, req, w, revoked_data(now), !auto_rebuild);
}

/* issuer/:ref/revoke: the issuer is marked revoked, loses issuing-certificates usage and goes
 * on the CRLs of the issuers that signed it. */
static void issuer_revoke(struct pki_engine *e, struct node_request *req, const char *ref)
{
    struct pki_snap *s = pki_snap_get(e);
    if (s == NULL) {
        pki_done(req, node_response_error(500, "could not read the mount's issuers"));
        return;
    }
    const struct pki_issuer *is = pki_snap_issuer(s, ref);
    if (is == NULL) {
        pki_snap_release(s);
        pki_done(req, node_response_error(400, "unable to find PKI issuer for reference: %s", ref));
        return;
    }
    if (is->revoked) {
        pki_done(req, node_response_data(pki_issuer_json(s, is)));
        pki_snap_release(s);
        return;
    }
    int64_t now = cf_now_s();
    char ts[CF_RFC3339_SIZE];
    cf_rfc3339(now, ts);
    json_t *entry = json_deep_copy(is->entry);
    uint32_t usage = is->usage & ~PKI_USAGE_ISSUING;
    json_t *ul = json_pack("[s]", "read-only");
    if (usage & PKI_USAGE_CRL) {
        json_array_append_new(ul, json_string("crl-signing"));
    }
    if (usage & PKI_USAGE_OCSP) {
        json_array_append_new(ul, json_string("ocsp-signing"));
    }
    json_object_set_new(entry, "usage", ul);
    json_object_set_new(entry, "revoked", json_true());
    json_object_set_new(entry, "revocation_time", json_integer(now));
    json_object_set_new(entry, "revocation_time_rfc3339", json_string(ts));
    struct pki_issuer copy = *is;
    copy.entry = entry;
    copy.usage = usage;
    copy.revoked = true;
    copy.revocation_time = now;
    json_t *reply = pki_issuer_json(s, &copy);
    char key[64];
    snprintf(key, sizeof(key), "config/issuer/%s", is->id);
    pki_snap_release(s);
    struct node_write *w = node_view_write(e->view);
    int rv = w != NULL && entry != NULL ? pki_write_json(w, key, entry) : CF_ENOMEM;
    json_decref(entry);
    json_t *cfg = pki_config_crl_get(e);
    bool auto_rebuild = json_is_true(json_object_get(cfg, "auto_rebuild"));
    json_decref(cfg);
    if (rv != CF_OK) {
        node_write_free(w);
        w = NULL;
    }
    pki_crl_commit_reply(e, req, w, reply, !auto_rebuild);
}

bool pki_revoke_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    bool cert = strcmp(p, "revoke") == 0;
    bool with_key = strcmp(p, "revoke-with-key") == 0;
    char ref[256] = "";
    bool issuer = false;
    if (strncmp(p, "issuer/", 7) == 0) {
        const char *slash = strchr(p + 7, '/');
        size_t n = slash != NULL ? (size_t)(slash - (p + 7)) : 0;
        if (slash != NULL && strcmp(slash, "/revoke") == 0 && n > 0 && n < sizeof(ref)) {
            memcpy(ref, p + 7, n);
            ref[n] = '\0';
            issuer = true;
        }
    }
    if (!cert && !with_key && !issuer) {
        return false;
    }
    if (req->op != NODE_OP_UPDATE && req->op != NODE_OP_CREATE) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    if (issuer) {
        issuer_revoke(e, req, ref);
    } else {
        revoke_cert(e, req, with_key);
    }
    return true;
}

/* Lease revocation (node_engine_ops.revoke_secret) ---------------------------------------- */

struct secret_revoke
{
    node_write_cb cb;
    void *arg;
};

static void secret_revoke_done(struct node_request *req, struct node_response *resp)
{
    struct secret_revoke *sr = req->done_arg;
    int status = CF_OK;
    if (resp == NULL) {
        status = CF_ENOMEM;
    } else if (resp->errors != NULL && resp->status >= 500) {
        status = CF_EINTERNAL;
    }
    /* A 4xx (the serial is unknown here, e.g. tidied away) leaves nothing to revoke; an expired
     * certificate answers with a warning and stays off the CRL: both only drop the lease. */
    node_response_free(resp);
    node_write_cb cb = sr->cb;
    void *arg = sr->arg;
    cf_free(sr);
    node_request_free(req);
    cb(arg, status);
}

void pki_revoke_secret(void *state, const json_t *secret, node_write_cb cb, void *arg)
{
    struct pki_engine *e = state;
    const char *serial = json_string_value(json_object_get(secret, "serial_number"));
    struct secret_revoke *sr = cf_calloc(1, sizeof(*sr));
    char *path = cf_strdup("revoke");
    json_t *data = serial != NULL ? json_pack("{s:s}", "serial_number", serial) : NULL;
    struct node_request *req = NULL;
    if (sr != NULL && path != NULL && data != NULL) {
        req = node_request_new(NODE_OP_UPDATE, path, data);
        path = NULL;
        data = NULL;
    }
    cf_free(path);
    json_decref(data);
    if (req == NULL) {
        cf_free(sr);
        cb(arg, serial == NULL ? CF_EINVAL : CF_ENOMEM);
        return;
    }
    sr->cb = cb;
    sr->arg = arg;
    req->rel_path = req->path;
    req->mount_path = "";
    req->view = e->view;
    req->done_cb = secret_revoke_done;
    req->done_arg = sr;
    revoke_cert(e, req, false);
}
