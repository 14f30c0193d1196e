/*
 * Creating CA material (pki.md 1.1-1.3): root/generate (and issuers/generate/root, root/rotate),
 * intermediate/generate (and issuers/generate/intermediate, intermediate/cross-sign),
 * root/sign-intermediate and issuer/:ref/sign-intermediate, root/sign-self-issued and
 * issuer/:ref/sign-self-issued, keys/generate.
 *
 * Each request is checked on the loop, its key generation and signing run on the worker pool,
 * and its entries are written in one raft batch; the response is sent once they are applied.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/field.h"
#include "engines/pki/issuer.h"
#include "engines/pki/params.h"
#include "engines/pki/pki.h"
#include "lib/crypto.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

enum gen_kind {
    GEN_ROOT,
    GEN_CSR,
    GEN_SIGN_INTERMEDIATE,
    GEN_SIGN_SELF_ISSUED,
    GEN_KEY,
};

struct gen_job
{
    struct pki_engine *e;
    struct node_request *req;
    struct pki_snap *snap; /* reference */
    enum gen_kind kind;
    bool exported;
    bool new_key;
    bool add_basic_constraints;
    bool use_csr_values;
    struct pki_x509_template t;
    enum pki_key_type key_type;
    int key_bits;
    EVP_PKEY *key;        /* the subject key: existing (reference) or generated */
    X509 *issuer_cert;    /* sign-*: reference */
    EVP_PKEY *issuer_key; /* sign-*: reference */
    X509 **issuer_chain;  /* sign-intermediate: references */
    size_t n_issuer_chain;
    X509_REQ *csr;     /* sign-intermediate input */
    EVP_PKEY *csr_key; /* its public key */
    X509 *self_issued; /* sign-self-issued input */
    enum pki_format fmt;
    enum pki_key_format key_fmt;
    char *issuer_name;
    char *key_name;
    char issuer_id[PKI_ID_SIZE];
    char key_id[PKI_ID_SIZE];
    json_t *warnings;
    /* Results of the work. */
    int rv;
    char errmsg[CF_ERRMSG_SIZE];
    X509 *cert;
    X509_REQ *out_csr;
    char *cert_pem;
    struct cf_secret *key_pem; /* storage form of a new key */
    json_t *data;
};

static void job_free(struct gen_job *j)
{
    pki_snap_release(j->snap);
    pki_x509_template_close(&j->t);
    EVP_PKEY_free(j->key);
    X509_free(j->issuer_cert);
    EVP_PKEY_free(j->issuer_key);
    for (size_t i = 0; i < j->n_issuer_chain; i++) {
        X509_free(j->issuer_chain[i]);
    }
    cf_free(j->issuer_chain);
    X509_REQ_free(j->csr);
    EVP_PKEY_free(j->csr_key);
    X509_free(j->self_issued);
    cf_free(j->issuer_name);
    cf_free(j->key_name);
    json_decref(j->warnings);
    X509_free(j->cert);
    X509_REQ_free(j->out_csr);
    cf_free(j->cert_pem);
    cf_secret_free(j->key_pem);
    json_decref(j->data);
    cf_free(j);
}

static void fail(struct gen_job *j, int status, const char *msg)
{
    pki_done(j->req, node_response_error(status, "%s", msg));
    job_free(j);
}

static const char aia_warning[] =
    "This mount hasn't configured any authority information access (AIA) fields; this may make "
    "it harder for systems to find missing certificates in the chain or to validate revocation "
    "status of certificates. Consider updating /config/urls or the newly generated issuer with "
    "this information.";

/* Work (worker pool) ------------------------------------------------------------------------- */

static int work_key(struct gen_job *j)
{
    if (j->new_key) {
        int rv = pki_key_generate(j->key_type, j->key_bits, &j->key, j->errmsg);
        if (rv != CF_OK) {
            return rv;
        }
        return pki_key_to_pem(j->key, PKI_KEY_FORMAT_DER, &j->key_pem, j->errmsg);
    }
    return CF_OK;
}

static int csr_to_data(struct gen_job *j)
{
    char *pem = NULL;
    int rv = pki_x509_csr_to_pem(j->out_csr, &pem, j->errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    char *text = pem;
    if (j->fmt == PKI_FORMAT_DER) {
        unsigned char *der = NULL;
        int n = i2d_X509_REQ(j->out_csr, &der);
        text = n > 0 ? cf_base64_encode(der, (size_t)n) : NULL;
        OPENSSL_free(der);
        cf_free(pem);
        pem = NULL;
        if (text == NULL) {
            return CF_ENOMEM;
        }
    }
    j->data = json_pack("{s:s}", "csr", text);
    cf_free(text); /* pem itself in the PEM case, already freed in the DER case */
    if (j->data == NULL) {
        return CF_ENOMEM;
    }
    if (j->exported) {
        struct cf_secret *s = NULL;
        rv = j->fmt == PKI_FORMAT_DER ? pki_key_to_der(j->key, j->key_fmt, &s, j->errmsg)
                                      : pki_key_to_pem(j->key, j->key_fmt, &s, j->errmsg);
        if (rv != CF_OK) {
            return rv;
        }
        char *k = j->fmt == PKI_FORMAT_DER
                      ? cf_base64_encode(s->data, s->len)
                      : cf_strndup((const char *)s->data, strlen((const char *)s->data));
        cf_secret_free(s);
        if (k == NULL) {
            return CF_ENOMEM;
        }
        size_t kl = strlen(k);
        while (kl > 0 && k[kl - 1] == '\n') {
            k[--kl] = '\0';
        }
        if (j->fmt == PKI_FORMAT_PEM_BUNDLE) {
            const char *csr = json_string_value(json_object_get(j->data, "csr"));
            size_t n = kl + 1 + strlen(csr) + 1;
            char *both = cf_malloc(n);
            if (both == NULL) {
                cf_free(k);
                return CF_ENOMEM;
            }
            snprintf(both, n, "%s\n%s", k, csr);
            json_object_set_new(j->data, "csr", json_string(both));
            cf_free(both);
        }
        json_object_set_new(j->data, "private_key", json_string(k));
        json_object_set_new(j->data, "private_key_type",
                            json_string(pki_key_type_name(j->key_type)));
        cf_cleanse(k, kl);
        cf_free(k);
    }
    return CF_OK;
}

/* sign-self-issued: the same certificate, re-signed by the issuer. */
static int resign(struct gen_job *j)
{
    X509 *x = X509_dup(j->self_issued);
    if (x == NULL) {
        return CF_ENOMEM;
    }
    int rv = CF_ECRYPTO;
    EVP_MD_CTX *ctx = NULL;
    if (X509_set_issuer_name(x, X509_get_subject_name(j->issuer_cert)) == 1) {
        int loc = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1);
        if (loc >= 0) {
            X509_EXTENSION_free(X509_delete_ext(x, loc));
        }
        const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(j->issuer_cert);
        AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
        bool ok = akid != NULL;
        if (ok && skid != NULL) {
            akid->keyid = ASN1_OCTET_STRING_dup(skid);
            ok = akid->keyid != NULL && X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0,
                                                          X509V3_ADD_REPLACE) == 1;
        }
        AUTHORITY_KEYID_free(akid);
        if (ok) {
            rv = pki_key_sign_ctx_new(j->issuer_key, j->t.signature_bits, j->t.use_pss, &ctx,
                                      j->errmsg);
        }
        if (rv == CF_OK) {
            rv = X509_sign_ctx(x, ctx) > 0 ? CF_OK : CF_ECRYPTO;
        }
    }
    EVP_MD_CTX_free(ctx);
    if (rv != CF_OK) {
        X509_free(x);
        if (j->errmsg[0] == '\0') {
            cf_errmsg_printf(j->errmsg, "error signing self-issued certificate");
        }
        return rv;
    }
    j->cert = x;
    return CF_OK;
}

static void gen_work(void *arg)
{
    struct gen_job *j = arg;
    int rv = work_key(j);
    switch (j->kind) {
        case GEN_ROOT:
            if (rv == CF_OK) {
                rv = pki_x509_cert_build(&j->t, j->key, NULL, j->key, &j->cert, j->errmsg);
            }
            break;
        case GEN_CSR:
            if (rv == CF_OK) {
                rv = pki_x509_csr_create(&j->t, j->key, j->add_basic_constraints, &j->out_csr,
                                         j->errmsg);
            }
            if (rv == CF_OK) {
                rv = csr_to_data(j);
            }
            break;
        case GEN_SIGN_INTERMEDIATE:
            if (rv == CF_OK) {
                rv = pki_x509_cert_build(&j->t, j->csr_key, j->issuer_cert, j->issuer_key, &j->cert,
                                         j->errmsg);
            }
            break;
        case GEN_SIGN_SELF_ISSUED:
            if (rv == CF_OK) {
                rv = resign(j);
            }
            break;
        case GEN_KEY:
            break;
    }
    if (rv == CF_OK && j->cert != NULL) {
        rv = pki_x509_cert_to_pem(j->cert, &j->cert_pem, j->errmsg);
    }
    if (rv == CF_OK && j->cert != NULL) {
        bool chain = j->kind == GEN_SIGN_INTERMEDIATE;
        j->data = pki_params_cert_data(j->cert, j->issuer_chain, j->n_issuer_chain,
                                       j->exported && j->kind == GEN_ROOT ? j->key : NULL, j->fmt,
                                       j->key_fmt, false, chain, j->errmsg);
        rv = j->data != NULL ? CF_OK : CF_ENOMEM;
    }
    j->rv = rv;
}

/* Commit (loop) ------------------------------------------------------------------------------ */

static void committed(void *arg, int status)
{
    struct gen_job *j = arg;
    if (status != CF_OK) {
        char msg[CF_ERRMSG_SIZE];
        cf_errmsg_printf(msg, "failed to store the new entries: %s", cf_strerror(status));
        fail(j, 500, msg);
        return;
    }
    struct node_response *resp = node_response_data(j->data);
    j->data = NULL;
    if (resp != NULL && json_array_size(j->warnings) > 0) {
        resp->warnings = j->warnings;
        j->warnings = NULL;
    }
    pki_done(j->req, resp);
    job_free(j);
}

static bool name_taken_issuer(const struct pki_snap *s, const char *name)
{
    for (size_t i = 0; name[0] != '\0' && i < s->n_issuers; i++) {
        if (strcmp(s->issuers[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool name_taken_key(const struct pki_snap *s, const char *name)
{
    for (size_t i = 0; name[0] != '\0' && i < s->n_keys; i++) {
        if (strcmp(s->keys[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds the new key's entry (and the default key when there is none). */
static int put_key(struct gen_job *j, struct node_write *w, const struct pki_snap *s)
{
    json_t *ke = pki_key_entry_new(j->key_id, j->key_name ? j->key_name : "", j->key_type,
                                   j->key_bits, (const char *)j->key_pem->data);
    char path[64];
    snprintf(path, sizeof(path), "config/key/%s", j->key_id);
    int rv = ke != NULL ? pki_write_json(w, path, ke) : CF_ENOMEM;
    json_decref(ke);
    if (rv == CF_OK && pki_snap_key(s, s->default_key) == NULL) {
        char buf[96];
        snprintf(buf, sizeof(buf), "{\"default\":\"%s\"}", j->key_id);
        rv = node_write_put(w, "config/keys", (const uint8_t *)buf, strlen(buf));
    }
    return rv;
}

int pki_generate_put_issuer(struct node_write *w,
                            const struct pki_snap *s,
                            const char *issuer_id,
                            const char *name,
                            const char *key_id,
                            const char *pem,
                            const char *sigalg,
                            bool may_default,
                            bool *made_default)
{
    json_t *ie = pki_issuer_entry_new(issuer_id, name, key_id, pem);
    if (ie == NULL) {
        return CF_ENOMEM;
    }
    if (sigalg != NULL) {
        json_object_set_new(ie, "revocation_signature_algorithm", json_string(sigalg));
    }
    char ts[CF_RFC3339_SIZE];
    cf_rfc3339(cf_now_s(), ts);
    json_object_set_new(ie, "last_modified", json_string(ts));
    char path[64];
    snprintf(path, sizeof(path), "config/issuer/%s", issuer_id);
    int rv = pki_write_json(w, path, ie);
    json_decref(ie);
    bool set_default =
        may_default && (pki_snap_issuer(s, "default") == NULL || s->default_follows_latest);
    if (rv == CF_OK && set_default) {
        json_t *ci = json_pack("{s:s, s:b}", "default", issuer_id, "default_follows_latest_issuer",
                               s->default_follows_latest);
        rv = ci != NULL ? pki_write_json(w, "config/issuers", ci) : CF_ENOMEM;
        json_decref(ci);
    }
    if (made_default != NULL) {
        *made_default = set_default;
    }
    return rv;
}

static void gen_after(void *arg, int status)
{
    struct gen_job *j = arg;
    if (status != CF_OK) {
        fail(j, 500, "could not schedule the work");
        return;
    }
    if (j->rv != CF_OK) {
        fail(j, j->rv == CF_ENOMEM || j->rv == CF_ECRYPTO ? 500 : 400,
             j->errmsg[0] ? j->errmsg : cf_strerror(j->rv));
        return;
    }
    /* Names may have been taken while the work ran: check against the current snapshot. */
    struct pki_snap *s = pki_snap_get(j->e);
    if (s == NULL) {
        fail(j, 500, "could not read the mount's issuers");
        return;
    }
    if (j->issuer_name != NULL && j->kind == GEN_ROOT && name_taken_issuer(s, j->issuer_name)) {
        pki_snap_release(s);
        fail(j, 400, "issuer name already in use");
        return;
    }
    if (j->key_name != NULL && j->new_key && name_taken_key(s, j->key_name)) {
        pki_snap_release(s);
        fail(j, 400, "key name already in use");
        return;
    }
    struct node_write *w = node_view_write(j->e->view);
    int rv = w != NULL ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK && j->new_key) {
        rv = put_key(j, w, s);
    }
    if (rv == CF_OK && j->kind == GEN_ROOT) {
        const char *alg = NULL;
        char em[CF_ERRMSG_SIZE];
        if (pki_key_signature_algorithm_name(j->key, j->t.signature_bits, j->t.use_pss, &alg, em) !=
            CF_OK) {
            alg = NULL;
        }
        rv = pki_generate_put_issuer(w, s, j->issuer_id, j->issuer_name ? j->issuer_name : "",
                                     j->key_id, j->cert_pem, alg, true, NULL);
        json_object_set_new(j->data, "issuer_id", json_string(j->issuer_id));
        json_object_set_new(j->data, "issuer_name",
                            json_string(j->issuer_name ? j->issuer_name : ""));
        json_object_set_new(j->data, "key_id", json_string(j->key_id));
        json_object_set_new(j->data, "key_name", json_string(j->key_name ? j->key_name : ""));
    }
    if (rv == CF_OK && j->kind == GEN_CSR) {
        json_object_set_new(j->data, "key_id", json_string(j->key_id));
        json_object_set_new(j->data, "key_name", json_string(j->key_name ? j->key_name : ""));
    }
    if (rv == CF_OK && j->kind == GEN_KEY) {
        j->data =
            json_pack("{s:s, s:s, s:s}", "key_id", j->key_id, "key_name",
                      j->key_name ? j->key_name : "", "key_type", pki_key_type_name(j->key_type));
        if (j->data != NULL && j->exported) {
            const char *pem = (const char *)j->key_pem->data;
            size_t n = strlen(pem);
            while (n > 0 && pem[n - 1] == '\n') {
                n--;
            }
            json_object_set_new(j->data, "private_key", json_stringn(pem, n));
        }
    }
    pki_snap_release(s);
    if (rv != CF_OK || w == NULL) {
        node_write_free(w);
        fail(j, 500, "could not prepare the new entries");
        return;
    }
    if (!j->new_key && j->kind != GEN_ROOT) {
        /* sign-intermediate, sign-self-issued and CSRs on existing keys store nothing. */
        node_write_free(w);
        committed(j, CF_OK);
        return;
    }
    node_write_commit(w, committed, j);
}

/* Requests (loop) ---------------------------------------------------------------------------- */

static struct gen_job *job_new(struct pki_engine *e, struct node_request *req, enum gen_kind kind)
{
    struct gen_job *j = cf_calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->e = e;
    j->req = req;
    j->kind = kind;
    pki_x509_template_init(&j->t);
    j->warnings = json_array();
    j->snap = pki_snap_get(e);
    if (j->warnings == NULL || j->snap == NULL) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* Reads the key choice of a generation request of type @type. */
static int choose_key(struct gen_job *j, const char *type)
{
    const json_t *d = j->req->data;
    if (strcmp(type, "kms") == 0) {
        cf_errmsg_printf(j->errmsg, "managed keys (type kms) are not supported by this server");
        return CF_EUNSUPPORTED;
    }
    j->exported = strcmp(type, "exported") == 0;
    if (strcmp(type, "existing") == 0) {
        const char *ref = json_string_value(json_object_get(d, "key_ref"));
        if (ref == NULL || ref[0] == '\0') {
            ref = "default";
        }
        const struct pki_key_ent *k = pki_snap_key(j->snap, ref);
        if (k == NULL) {
            cf_errmsg_printf(j->errmsg, "unable to find PKI key for reference: %s", ref);
            return CF_EINVAL;
        }
        EVP_PKEY_up_ref(k->pkey);
        j->key = k->pkey;
        j->key_type = k->type;
        j->key_bits = k->bits;
        snprintf(j->key_id, sizeof(j->key_id), "%s", k->id);
        j->key_name = cf_strdup(k->name);
        return j->key_name != NULL ? CF_OK : CF_ENOMEM;
    }
    int rv = pki_params_new_key(d, &j->key_type, &j->key_bits, j->errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    const char *kn = json_string_value(json_object_get(d, "key_name"));
    kn = kn != NULL ? kn : "";
    if ((rv = pki_name_check(kn, "key", j->errmsg)) != CF_OK) {
        return rv;
    }
    if (name_taken_key(j->snap, kn)) {
        cf_errmsg_printf(j->errmsg, "key name already in use");
        return CF_EINVAL;
    }
    j->key_name = cf_strdup(kn);
    j->new_key = true;
    cf_uuid_v4(j->key_id);
    return j->key_name != NULL ? CF_OK : CF_ENOMEM;
}

static int parse_key_format(struct gen_job *j)
{
    const char *kf = json_string_value(json_object_get(j->req->data, "private_key_format"));
    return pki_key_format_parse(kf != NULL ? kf : "", &j->key_fmt, j->errmsg);
}

static void start(struct gen_job *j)
{
    node_view_work(j->e->view, gen_work, gen_after, j);
}

static void finish_bad(struct gen_job *j, int rv)
{
    fail(j, rv == CF_ENOMEM ? 500 : 400, j->errmsg[0] ? j->errmsg : cf_strerror(rv));
}

/* The part of root and CSR generation requests they share: format, key, subject, SANs and
 * signature choice (pki.md 1.2). */
static int ca_request(struct gen_job *j, const char *type)
{
    const json_t *d = j->req->data;
    int rv = pki_params_format(d, &j->fmt, j->errmsg);
    if (rv == CF_OK) {
        rv = parse_key_format(j);
    }
    if (rv == CF_OK) {
        rv = choose_key(j, type);
    }
    if (rv == CF_OK) {
        rv = pki_params_subject(d, &j->t, false, j->errmsg);
    }
    if (rv == CF_OK && (j->t.common_name == NULL || j->t.common_name[0] == '\0')) {
        cf_errmsg_printf(j->errmsg,
                         "the common_name field is required, or must be provided in a "
                         "CSR with \"use_csr_common_name\" set to true, unless "
                         "\"require_cn\" is set to false");
        rv = CF_EINVAL;
    }
    if (rv == CF_OK) {
        rv = pki_params_sans(d, &j->t, j->errmsg);
    }
    bool exclude = false;
    if (rv == CF_OK) {
        rv = pki_field_bool_opt(d, "exclude_cn_from_sans", &exclude, j->errmsg);
    }
    if (rv == CF_OK && !exclude) {
        rv = pki_params_cn_to_sans(&j->t, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_params_signature(d, j->key_type, &j->t, j->errmsg);
    }
    return rv;
}

static void root_generate(struct pki_engine *e, struct node_request *req, const char *type)
{
    struct gen_job *j = job_new(e, req, GEN_ROOT);
    if (j == NULL) {
        pki_done(req, NULL);
        return;
    }
    const json_t *d = req->data;
    bool rotate = strncmp(req->rel_path, "root/rotate/", 12) == 0;
    int rv = ca_request(j, type);
    if (rv == CF_OK) {
        rv = pki_params_ca(d, &j->t, j->errmsg);
    }
    int64_t nbd = 30;
    if (rv == CF_OK) {
        rv = pki_field_seconds_opt(d, "not_before_duration", &nbd, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_params_validity(d, 0, 0, NULL, nbd, req->mount_default_lease_s,
                                 req->mount_max_lease_s, cf_now_s(), &j->t, j->warnings, j->errmsg);
    }
    const char *in = json_string_value(json_object_get(d, "issuer_name"));
    in = in != NULL ? in : "";
    if (rv == CF_OK && rotate && in[0] == '\0' && !name_taken_issuer(j->snap, "next")) {
        in = "next";
    }
    if (rv == CF_OK) {
        rv = pki_name_check(in, "issuer", j->errmsg);
    }
    if (rv == CF_OK && name_taken_issuer(j->snap, in)) {
        cf_errmsg_printf(j->errmsg, "issuer name already in use");
        rv = CF_EINVAL;
    }
    if (rv == CF_OK) {
        j->issuer_name = cf_strdup(in);
        cf_uuid_v4(j->issuer_id);
        rv = j->issuer_name != NULL ? CF_OK : CF_ENOMEM;
    }
    if (rv == CF_OK) {
        rv = pki_config_aia(e, NULL, j->issuer_id, &j->t, j->errmsg);
    }
    if (rv != CF_OK) {
        finish_bad(j, rv);
        return;
    }
    if (j->t.issuing_certificates.n == 0 && j->t.crl_distribution_points.n == 0 &&
        j->t.ocsp_servers.n == 0) {
        json_array_append_new(j->warnings, json_string(aia_warning));
    }
    if (j->t.max_path_length == 0) {
        json_array_append_new(
            j->warnings,
            json_string("Max path length of the generated certificate is zero. This certificate "
                        "cannot be used to issue intermediate CA certificates."));
    }
    start(j);
}

static void csr_generate(struct pki_engine *e, struct node_request *req, const char *type)
{
    struct gen_job *j = job_new(e, req, GEN_CSR);
    if (j == NULL) {
        pki_done(req, NULL);
        return;
    }
    const json_t *d = req->data;
    int rv = ca_request(j, type);
    if (rv == CF_OK) {
        rv = pki_field_bool_opt(d, "add_basic_constraints", &j->add_basic_constraints, j->errmsg);
    }
    json_t *ku = NULL;
    if (rv == CF_OK && pki_field_strings(d, "key_usage", &ku, j->errmsg) == CF_OK) {
        size_t i;
        json_t *v;
        json_array_foreach(ku, i, v)
        {
            uint32_t bit = 0;
            if ((rv = pki_x509_key_usage_parse(json_string_value(v), &bit, j->errmsg)) != CF_OK) {
                break;
            }
            j->t.key_usage |= bit;
        }
        json_decref(ku);
    }
    if (rv != CF_OK) {
        finish_bad(j, rv);
        return;
    }
    start(j);
}

static void keys_generate(struct pki_engine *e, struct node_request *req, const char *type)
{
    struct gen_job *j = job_new(e, req, GEN_KEY);
    if (j == NULL) {
        pki_done(req, NULL);
        return;
    }
    int rv = strcmp(type, "existing") == 0 ? CF_EINVAL : choose_key(j, type);
    if (rv != CF_OK && j->errmsg[0] == '\0') {
        cf_errmsg_printf(j->errmsg, "unsupported key generation type %s", type);
    }
    if (rv != CF_OK) {
        finish_bad(j, rv);
        return;
    }
    start(j);
}

/* The issuer of a sign-* request: issuer/:ref/... or the default. */
static const struct pki_issuer *signing_issuer(struct gen_job *j, const char *ref)
{
    const struct pki_issuer *is = pki_snap_issuer(j->snap, ref);
    if (is == NULL) {
        if (strcmp(ref, "default") == 0) {
            cf_errmsg_printf(j->errmsg,
                             "could not fetch the CA certificate (was one set?): no "
                             "default issuer currently configured");
        } else {
            cf_errmsg_printf(j->errmsg, "unable to find PKI issuer for reference: %s", ref);
        }
        return NULL;
    }
    if (is->key == NULL || (is->usage & PKI_USAGE_ISSUING) == 0) {
        cf_errmsg_printf(j->errmsg,
                         "could not fetch the CA certificate (was one set?): issuer %s "
                         "cannot issue certificates",
                         is->id);
        return NULL;
    }
    return is;
}

static void sign_intermediate(struct pki_engine *e, struct node_request *req, const char *ref)
{
    struct gen_job *j = job_new(e, req, GEN_SIGN_INTERMEDIATE);
    if (j == NULL) {
        pki_done(req, NULL);
        return;
    }
    const json_t *d = req->data;
    const struct pki_issuer *is = signing_issuer(j, ref);
    int rv = is != NULL ? CF_OK : CF_EINVAL;
    const char *csr = json_string_value(json_object_get(d, "csr"));
    if (rv == CF_OK && (csr == NULL || csr[0] == '\0')) {
        cf_errmsg_printf(j->errmsg, "\"csr\" is empty");
        rv = CF_EINVAL;
    }
    if (rv == CF_OK) {
        rv = pki_x509_csr_parse(csr, strlen(csr), &j->csr, &j->csr_key, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_params_format(d, &j->fmt, j->errmsg);
    }
    enum pki_key_type kt = PKI_KEY_RSA;
    int bits = 0;
    if (rv == CF_OK) {
        rv = pki_key_describe(j->csr_key, &kt, &bits, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_key_check_minimum(kt, bits, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_field_bool_opt(d, "use_csr_values", &j->use_csr_values, j->errmsg);
    }
    if (rv == CF_OK && j->use_csr_values) {
        rv = pki_x509_csr_read(j->csr, &j->t, j->errmsg);
        j->t.is_ca = false;
        j->t.has_basic_constraints = false;
    } else if (rv == CF_OK) {
        /* Only the CN comes from the CSR when the request gives none. */
        struct pki_x509_template ct;
        pki_x509_template_init(&ct);
        rv = pki_x509_csr_read(j->csr, &ct, j->errmsg);
        if (rv == CF_OK && ct.common_name != NULL) {
            j->t.common_name = ct.common_name;
            ct.common_name = NULL;
        }
        pki_x509_template_close(&ct);
        if (rv == CF_OK) {
            rv = pki_params_subject(d, &j->t, false, j->errmsg);
        }
        if (rv == CF_OK) {
            rv = pki_params_sans(d, &j->t, j->errmsg);
        }
        bool exclude = false;
        if (rv == CF_OK) {
            rv = pki_field_bool_opt(d, "exclude_cn_from_sans", &exclude, j->errmsg);
        }
        if (rv == CF_OK && !exclude) {
            rv = pki_params_cn_to_sans(&j->t, j->errmsg);
        }
    }
    if (rv == CF_OK) {
        rv = pki_params_signature(d, is->key->type, &j->t, j->errmsg);
    }
    uint32_t csr_ku = j->t.key_usage;
    if (rv == CF_OK) {
        rv = pki_params_ca(d, &j->t, j->errmsg);
        j->t.key_usage |= csr_ku & PKI_KU_DIGITAL_SIGNATURE;
    }
    if (rv == CF_OK) {
        /* Path length under a constrained parent. */
        long parent = X509_get_pathlen(is->cert);
        if (parent == 0) {
            cf_errmsg_printf(j->errmsg,
                             "signing certificate has a max path length of 0, and "
                             "cannot issue further CA certificates");
            rv = CF_EINVAL;
        } else if (parent > 0 && (j->t.max_path_length < 0 || j->t.max_path_length >= parent)) {
            j->t.max_path_length = (int)parent - 1;
        }
    }
    int64_t nbd = 30;
    if (rv == CF_OK) {
        rv = pki_field_seconds_opt(d, "not_before_duration", &nbd, j->errmsg);
    }
    int64_t now = cf_now_s();
    if (rv == CF_OK) {
        rv = pki_params_validity(d, 0, 0, NULL, nbd, req->mount_default_lease_s,
                                 req->mount_max_lease_s, now, &j->t, j->warnings, j->errmsg);
    }
    const char *skid = json_string_value(json_object_get(d, "skid"));
    if (rv == CF_OK && skid != NULL && skid[0] != '\0') {
        char hex[256];
        size_t n = 0;
        for (const char *p = skid; *p && n + 1 < sizeof(hex); p++) {
            if (*p != ':' && *p != '-' && *p != ' ') {
                hex[n++] = *p;
            }
        }
        hex[n] = '\0';
        size_t out = 0;
        if (cf_hex_decode(hex, n, j->t.skid, sizeof(j->t.skid), &out) != CF_OK || out == 0) {
            cf_errmsg_printf(j->errmsg, "unable to parse subject key identifier (skid) value %s",
                             skid);
            rv = CF_EINVAL;
        }
        j->t.skid_len = out;
    }
    if (rv == CF_OK) {
        rv = pki_config_aia(e, is->entry, is->id, &j->t, j->errmsg);
    }
    if (rv != CF_OK) {
        finish_bad(j, rv);
        return;
    }
    if (j->t.not_after > is->not_after) {
        json_array_append_new(
            j->warnings,
            json_string("The expiration time for the signed certificate is after the CA's "
                        "expiration time. If the new certificate is not treated as a root, "
                        "validation paths with the certificate past the issuing CA's expiration "
                        "time will fail."));
    }
    if (j->t.issuing_certificates.n == 0 && j->t.crl_distribution_points.n == 0 &&
        j->t.ocsp_servers.n == 0) {
        json_array_append_new(j->warnings, json_string(aia_warning));
    }
    j->key_type = kt;
    X509_up_ref(is->cert);
    j->issuer_cert = is->cert;
    EVP_PKEY_up_ref(is->key->pkey);
    j->issuer_key = is->key->pkey;
    j->issuer_chain = cf_calloc(is->n_chain + 1, sizeof(X509 *));
    if (j->issuer_chain == NULL) {
        fail(j, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < is->n_chain; i++) {
        X509_up_ref(is->chain[i]);
        j->issuer_chain[j->n_issuer_chain++] = is->chain[i];
    }
    start(j);
}

static void sign_self_issued(struct pki_engine *e, struct node_request *req, const char *ref)
{
    struct gen_job *j = job_new(e, req, GEN_SIGN_SELF_ISSUED);
    if (j == NULL) {
        pki_done(req, NULL);
        return;
    }
    const json_t *d = req->data;
    const struct pki_issuer *is = signing_issuer(j, ref);
    int rv = is != NULL ? CF_OK : CF_EINVAL;
    const char *pem = json_string_value(json_object_get(d, "certificate"));
    if (rv == CF_OK) {
        rv = pki_x509_cert_from_pem(pem ? pem : "", pem ? strlen(pem) : 0, &j->self_issued,
                                    j->errmsg);
    }
    if (rv == CF_OK && !pki_x509_is_ca(j->self_issued)) {
        cf_errmsg_printf(j->errmsg, "given certificate is not a CA certificate");
        rv = CF_EINVAL;
    }
    if (rv == CF_OK && !pki_x509_is_self_issued(j->self_issued)) {
        cf_errmsg_printf(j->errmsg, "given certificate is not self-issued");
        rv = CF_EINVAL;
    }
    bool match = false;
    if (rv == CF_OK) {
        rv = pki_field_bool_opt(d, "require_matching_certificate_algorithms", &match, j->errmsg);
    }
    if (rv == CF_OK && match) {
        int a = X509_get_signature_nid(j->self_issued);
        int b = X509_get_signature_nid(is->cert);
        if (a != b) {
            cf_errmsg_printf(j->errmsg,
                             "signing certificate's signature algorithm (%s) does not "
                             "match the given certificate's (%s)",
                             OBJ_nid2ln(b), OBJ_nid2ln(a));
            rv = CF_EINVAL;
        }
    }
    if (rv == CF_OK) {
        rv = pki_params_signature(d, is->key->type, &j->t, j->errmsg);
    }
    if (rv != CF_OK) {
        finish_bad(j, rv);
        return;
    }
    X509_up_ref(is->cert);
    j->issuer_cert = is->cert;
    EVP_PKEY_up_ref(is->key->pkey);
    j->issuer_key = is->key->pkey;
    j->issuer_chain = cf_calloc(1, sizeof(X509 *));
    if (j->issuer_chain == NULL) {
        fail(j, 500, "out of memory");
        return;
    }
    X509_up_ref(is->cert);
    j->issuer_chain[j->n_issuer_chain++] = is->cert;
    start(j);
}

/* Routing ------------------------------------------------------------------------------------ */

static bool gen_type(const char *s)
{
    return strcmp(s, "internal") == 0 || strcmp(s, "exported") == 0 || strcmp(s, "existing") == 0 ||
           strcmp(s, "kms") == 0;
}

/* If path is prefix + one of the generation types, returns the type. */
static const char *typed(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) == 0 && gen_type(path + n)) {
        return path + n;
    }
    return NULL;
}

/* Copies the ref of "issuer/<ref>/<suffix>" into ref; false when path is not of that shape. */
static bool issuer_path(const char *path, const char *suffix, char *ref, size_t n)
{
    if (strncmp(path, "issuer/", 7) != 0) {
        return false;
    }
    const char *r = path + 7;
    const char *slash = strchr(r, '/');
    if (slash == NULL || slash == r || strcmp(slash + 1, suffix) != 0 || (size_t)(slash - r) >= n) {
        return false;
    }
    memcpy(ref, r, (size_t)(slash - r));
    ref[slash - r] = '\0';
    return true;
}

bool pki_generate_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    const char *t;
    char ref[256];
    if ((t = typed(p, "root/generate/")) != NULL || (t = typed(p, "issuers/generate/root/")) ||
        (t = typed(p, "root/rotate/")) != NULL) {
        if (!write) {
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        root_generate(e, req, t);
        return true;
    }
    if ((t = typed(p, "intermediate/generate/")) != NULL ||
        (t = typed(p, "issuers/generate/intermediate/")) != NULL ||
        (strcmp(p, "intermediate/cross-sign") == 0 && (t = "existing"))) {
        if (!write) {
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        csr_generate(e, req, t);
        return true;
    }
    if ((t = typed(p, "keys/generate/")) != NULL) {
        if (!write) {
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        keys_generate(e, req, t);
        return true;
    }
    bool si = strcmp(p, "root/sign-intermediate") == 0;
    if (si || issuer_path(p, "sign-intermediate", ref, sizeof(ref))) {
        if (!write) {
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        sign_intermediate(e, req, si ? "default" : ref);
        return true;
    }
    bool ss = strcmp(p, "root/sign-self-issued") == 0;
    if (ss || issuer_path(p, "sign-self-issued", ref, sizeof(ref))) {
        if (!write) {
            pki_done(req, node_response_error(405, "unsupported operation"));
            return true;
        }
        sign_self_issued(e, req, ss ? "default" : ref);
        return true;
    }
    return false;
}
