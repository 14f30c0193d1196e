/*
 * Unauthenticated certificate fetches and certificate listing (pki.md 4.2): ca, ca/pem,
 * ca_chain, cert/ca, cert/ca_chain, cert/:serial (+/raw, /raw/pem), issuer/:ref/{json,der,pem},
 * LIST certs (paged through storage with after/limit) and LIST certs/revoked.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "engines/pki/field.h"
#include "engines/pki/issuer.h"
#include "engines/pki/pki.h"
#include "engines/pki/revoke.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

struct node_response *pki_raw_response(const char *content_type, const void *body, size_t len)
{
    /* An empty body is Vault's 204. */
    struct node_response *r = node_response_new();
    if (r == NULL) {
        return NULL;
    }
    if (len == 0) {
        r->status = 204;
        return r;
    }
    r->raw_content_type = cf_strdup(content_type);
    r->raw_body = cf_memdup(body, len);
    r->raw_len = len;
    if (r->raw_content_type == NULL || r->raw_body == NULL) {
        node_response_free(r);
        return NULL;
    }
    return r;
}

static struct node_response *cert_der_response(X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0) {
        return NULL;
    }
    struct node_response *r = pki_raw_response("application/pkix-cert", der, (size_t)n);
    OPENSSL_free(der);
    return r;
}

static struct node_response *pem_response(const char *content_type, const char *pem)
{
    return pki_raw_response(content_type, pem, strlen(pem));
}

/* The issuer's chain as one PEM text, each certificate followed by a newline. */
static char *chain_text(const struct pki_issuer *is)
{
    struct cf_buf b;
    cf_buf_init(&b);
    for (size_t i = 0; i < is->n_chain; i++) {
        if (cf_buf_append_str(&b, is->chain_pem[i]) != CF_OK || cf_buf_append(&b, "\n", 1)) {
            cf_buf_close(&b);
            return NULL;
        }
    }
    if (cf_buf_append(&b, "", 1) != CF_OK) {
        cf_buf_close(&b);
        return NULL;
    }
    return (char *)cf_buf_steal(&b, NULL);
}

static void issuer_fetch(struct node_request *req,
                         const struct pki_snap *s,
                         const char *ref,
                         const char *what)
{
    const struct pki_issuer *is = pki_snap_issuer(s, ref);
    if (is == NULL) {
        pki_done(req, node_response_not_found());
        return;
    }
    if (strcmp(what, "der") == 0) {
        pki_done(req, pki_dated(req, cert_der_response(is->cert), is->last_modified));
    } else if (strcmp(what, "pem") == 0) {
        char *pem = cf_malloc(strlen(is->pem) + 2);
        if (pem != NULL) {
            snprintf(pem, strlen(is->pem) + 2, "%s\n", is->pem);
        }
        pki_done(req,
                 pki_dated(req, pem ? pem_response("application/pem-certificate-chain", pem) : NULL,
                           is->last_modified));
        cf_free(pem);
    } else {
        json_t *chain = json_array();
        for (size_t i = 0; chain != NULL && i < is->n_chain; i++) {
            json_array_append_new(chain, json_string(is->chain_pem[i]));
        }
        pki_done(req, pki_dated(req,
                                node_response_data(json_pack(
                                    "{s:s, s:o, s:s, s:s}", "certificate", is->pem, "ca_chain",
                                    chain, "issuer_id", is->id, "issuer_name", is->name)),
                                is->last_modified));
    }
}

/* cert/:serial and its raw forms. */
static void cert_fetch(struct pki_engine *e,
                       struct node_request *req,
                       const struct pki_snap *s,
                       const char *serial_in,
                       int form /* 0 json, 1 der, 2 pem */)
{
    const struct pki_issuer *def = pki_snap_issuer(s, "default");
    if (strcmp(serial_in, "ca") == 0 || strcmp(serial_in, "ca_chain") == 0) {
        if (def == NULL) {
            pki_done(req, node_response_not_found());
            return;
        }
        bool chain = strcmp(serial_in, "ca_chain") == 0;
        if (form == 1) {
            pki_done(req, pki_dated(req, cert_der_response(def->cert), def->last_modified));
            return;
        }
        char *text = chain ? chain_text(def) : cf_strdup(def->pem);
        if (text == NULL) {
            pki_done(req, NULL);
            return;
        }
        if (form == 2) {
            pki_done(req, pki_dated(req, pem_response("application/pem-certificate-chain", text),
                                    def->last_modified));
        } else {
            json_t *d = json_pack("{s:s, s:i, s:s}", "certificate", chain ? text : def->pem,
                                  "revocation_time", 0, "revocation_time_rfc3339", "");
            if (d != NULL && chain) {
                json_object_set_new(d, "ca_chain", json_string(text));
            }
            pki_done(req, pki_dated(req, node_response_data(d), def->last_modified));
        }
        cf_free(text);
        return;
    }
    char errmsg[CF_ERRMSG_SIZE];
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    if (pki_x509_serial_normalize(serial_in, serial, errmsg) != CF_OK) {
        pki_done(req, node_response_not_found());
        return;
    }
    uint8_t *der = NULL;
    size_t len = 0;
    X509 *x = NULL;
    const struct pki_issuer *as_issuer = pki_snap_issuer_by_serial(s, serial);
    if (as_issuer != NULL) {
        X509_up_ref(as_issuer->cert);
        x = as_issuer->cert;
    } else if (pki_cert_load(e, serial, &der, &len) == CF_OK) {
        pki_x509_cert_from_der(der, len, &x, errmsg);
    }
    cf_free(der);
    if (x == NULL) {
        pki_done(req, node_response_not_found());
        return;
    }
    if (form == 1) {
        pki_done(req, cert_der_response(x));
        X509_free(x);
        return;
    }
    char *pem = NULL;
    if (pki_x509_cert_to_pem(x, &pem, errmsg) != CF_OK) {
        X509_free(x);
        pki_done(req, NULL);
        return;
    }
    X509_free(x);
    if (form == 2) {
        size_t n = strlen(pem);
        char *t = cf_malloc(n + 2);
        if (t != NULL) {
            memcpy(t, pem, n);
            t[n] = '\n';
            t[n + 1] = '\0';
        }
        pki_done(req, t ? pem_response("application/pem-certificate-chain", t) : NULL);
        cf_free(t);
        cf_free(pem);
        return;
    }
    struct pki_revocation rev;
    json_t *d = json_pack("{s:s, s:i, s:s}", "certificate", pem, "revocation_time", 0,
                          "revocation_time_rfc3339", "");
    cf_free(pem);
    if (d != NULL && pki_revocation_load(e, serial, &rev) == CF_OK) {
        char ts[CF_RFC3339_SIZE];
        cf_rfc3339(rev.time, ts);
        json_object_set_new(d, "revocation_time", json_integer(rev.time));
        json_object_set_new(d, "revocation_time_rfc3339", json_string(ts));
        json_object_set_new(d, "issuer_id", json_string(rev.issuer_id));
    }
    pki_done(req, node_response_data(d));
}

/* LIST certs ---------------------------------------------------------------------------------- */

struct list_page
{
    json_t *keys;
    int64_t limit;
};

static int page_visit(void *arg, const char *key)
{
    struct list_page *p = arg;
    const char *name = strrchr(key, '/');
    name = name != NULL ? name + 1 : key;
    char colon[PKI_X509_SERIAL_HEX_SIZE];
    size_t n = strlen(name);
    if (n >= sizeof(colon)) {
        return 0;
    }
    for (size_t i = 0; i <= n; i++) {
        colon[i] = name[i] == '-' ? ':' : name[i];
    }
    if (json_array_append_new(p->keys, json_string(colon)) != 0) {
        return -1;
    }
    return p->limit > 0 && (int64_t)json_array_size(p->keys) >= p->limit ? 1 : 0;
}

static void list_serials(struct pki_engine *e, struct node_request *req, const char *prefix)
{
    char errmsg[CF_ERRMSG_SIZE];
    int64_t limit = 0;
    int rv = pki_field_int(req->data, "limit", &limit, errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        pki_done(req, node_response_error(400, "%s", errmsg));
        return;
    }
    const char *after = json_string_value(json_object_get(req->data, "after"));
    char after_key[160];
    if (after != NULL && after[0] != '\0') {
        char hy[PKI_X509_SERIAL_HEX_SIZE];
        snprintf(hy, sizeof(hy), "%s", after);
        for (char *c = hy; *c; c++) {
            *c = *c == ':' ? '-' : *c;
        }
        snprintf(after_key, sizeof(after_key), "%s%s", prefix, hy);
    }
    struct list_page p = {.keys = json_array(), .limit = limit};
    if (p.keys == NULL) {
        pki_done(req, NULL);
        return;
    }
    rv = node_view_scan(e->view, prefix, after && after[0] ? after_key : NULL, page_visit, &p);
    if (rv < 0) {
        json_decref(p.keys);
        pki_done(req, NULL);
        return;
    }
    if (json_array_size(p.keys) == 0) {
        json_decref(p.keys);
        pki_done(req, node_response_not_found());
        return;
    }
    pki_done(req, node_response_data(json_pack("{s:o}", "keys", p.keys)));
}

/* Routing ------------------------------------------------------------------------------------ */

bool pki_fetch_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    if (req->op == NODE_OP_LIST) {
        if (strcmp(p, "certs/") == 0 || strcmp(p, "certs") == 0) {
            list_serials(e, req, "certs/");
            return true;
        }
        if (strcmp(p, "certs/revoked/") == 0 || strcmp(p, "certs/revoked") == 0) {
            list_serials(e, req, "revoked/");
            return true;
        }
        return false;
    }
    bool is_ca = strcmp(p, "ca") == 0 || strcmp(p, "ca/pem") == 0 || strcmp(p, "ca_chain") == 0;
    bool is_cert = strncmp(p, "cert/", 5) == 0;
    char ref[256] = "";
    const char *what = NULL;
    if (strncmp(p, "issuer/", 7) == 0) {
        const char *r = p + 7;
        const char *slash = strchr(r, '/');
        if (slash != NULL && (size_t)(slash - r) < sizeof(ref) &&
            (strcmp(slash + 1, "json") == 0 || strcmp(slash + 1, "der") == 0 ||
             strcmp(slash + 1, "pem") == 0)) {
            memcpy(ref, r, (size_t)(slash - r));
            ref[slash - r] = '\0';
            what = slash + 1;
        }
    }
    if (!is_ca && !is_cert && what == NULL) {
        return false;
    }
    if (req->op != NODE_OP_READ) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    struct pki_snap *s = pki_snap_get(e);
    if (s == NULL) {
        pki_done(req, node_response_error(500, "could not read the mount's issuers"));
        return true;
    }
    if (what != NULL) {
        issuer_fetch(req, s, ref, what);
    } else if (is_ca) {
        const struct pki_issuer *def = pki_snap_issuer(s, "default");
        if (def == NULL) {
            pki_done(req, pki_raw_response("application/pkix-cert", "", 0));
        } else if (strcmp(p, "ca") == 0) {
            pki_done(req, pki_dated(req, cert_der_response(def->cert), def->last_modified));
        } else if (strcmp(p, "ca/pem") == 0) {
            char *t = cf_malloc(strlen(def->pem) + 2);
            if (t != NULL) {
                snprintf(t, strlen(def->pem) + 2, "%s\n", def->pem);
            }
            pki_done(req,
                     pki_dated(req, t ? pem_response("application/pem-certificate-chain", t) : NULL,
                               def->last_modified));
            cf_free(t);
        } else {
            char *t = chain_text(def);
            pki_done(req, pki_dated(req, t ? pem_response("application/pkix-cert", t) : NULL,
                                    def->last_modified));
            cf_free(t);
        }
    } else {
        char serial[PKI_X509_SERIAL_HEX_SIZE + 16];
        const char *rest = p + 5;
        int form = 0;
        size_t n = strlen(rest);
        if (n > 8 && strcmp(rest + n - 8, "/raw/pem") == 0) {
            form = 2;
            n -= 8;
        } else if (n > 4 && strcmp(rest + n - 4, "/raw") == 0) {
            form = 1;
            n -= 4;
        }
        if (n == 0 || n >= sizeof(serial) || memchr(rest, '/', n) != NULL) {
            pki_done(req, node_response_not_found());
        } else {
            memcpy(serial, rest, n);
            serial[n] = '\0';
            cert_fetch(e, req, s, serial, form);
        }
    }
    pki_snap_release(s);
    return true;
}
