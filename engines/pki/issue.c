/*
 * Leaf issuance (pki.md 3): issue/:role, sign/:role, sign-verbatim(/:role) and their
 * issuer/:ref/... forms.
 *
 * The loop resolves the role (cached by FSM version) and the issuer snapshot, reads the AIA
 * configuration, and hands a job holding references to both to the worker pool. Everything
 * else runs there: CSR parsing and verification, the role's name policy, validity, key
 * generation, signing and encoding of the response. Back on the loop a no_store certificate is
 * answered at once; a stored one is written as certs/<serial> (the raft store groups the writes
 * of one loop turn into one entry) and answered once applied.
 */
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "engines/pki/cert_der.h"
#include "engines/pki/field.h"
#include "engines/pki/issuer.h"
#include "engines/pki/params.h"
#include "engines/pki/pki.h"
#include "engines/pki/revoke.h"
#include "engines/pki/role.h"
#include "lib/buf.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

enum issue_kind {
    ISSUE_ISSUE,
    ISSUE_SIGN,
    ISSUE_VERBATIM,
};

/* Role cache --------------------------------------------------------------------------------- */

struct pki_role_ref
{
    struct pki_role role;
    uint64_t version;
    int refs;
    struct pki_role_ref *next;
};

static void role_ref_release(struct pki_role_ref *r)
{
    if (r != NULL && --r->refs == 0) {
        pki_role_close(&r->role);
        cf_free(r);
    }
}

/* The role with a new reference; NULL with errmsg set when absent or unreadable. */
static struct pki_role_ref *role_get(struct pki_engine *e, const char *name, int *rv, char *errmsg)
{
    char key[192];
    snprintf(key, sizeof(key), "role/%s", name);
    uint64_t ver = 0;
    *rv = node_view_version(e->view, key, &ver);
    struct pki_role_ref **pp = &e->roles;
    for (struct pki_role_ref *c = *pp; c != NULL; pp = &c->next, c = c->next) {
        if (strcmp(c->role.name, name) == 0) {
            if (*rv == CF_OK && c->version == ver) {
                c->refs++;
                return c;
            }
            *pp = c->next;
            role_ref_release(c);
            break;
        }
    }
    if (*rv != CF_OK) {
        return NULL;
    }
    struct pki_role_ref *r = cf_calloc(1, sizeof(*r));
    if (r == NULL) {
        *rv = CF_ENOMEM;
        return NULL;
    }
    *rv = pki_role_load(e, name, &r->role, errmsg);
    if (*rv != CF_OK) {
        cf_free(r);
        return NULL;
    }
    r->version = ver;
    r->refs = 2; /* the cache's and the caller's */
    r->next = e->roles;
    e->roles = r;
    return r;
}

void pki_issue_drop_cache(struct pki_engine *e)
{
    struct pki_role_ref *c = e->roles;
    while (c != NULL) {
        struct pki_role_ref *n = c->next;
        role_ref_release(c);
        c = n;
    }
    e->roles = NULL;
}

/* The synthetic role of sign-verbatim (pki.md 3.3). */
static void verbatim_role(struct pki_role *r, const struct pki_role *base)
{
    pki_role_init(r);
    r->allow_any_name = true;
    r->allow_localhost = true;
    r->allow_ip_sans = true;
    r->allow_wildcard_certificates = true;
    r->enforce_hostnames = false;
    r->key_type_any = true;
    r->key_bits = 0;
    r->signature_bits = 0;
    r->cn_validations = PKI_CN_VALIDATE_DISABLED;
    r->require_cn = false;
    r->server_flag = false;
    r->client_flag = false;
    r->ext_key_usage_bits = 0;
    pki_x509_strs_add(&r->allowed_other_sans, "*");
    pki_x509_strs_add(&r->allowed_serial_numbers, "*");
    pki_x509_strs_add(&r->allowed_uri_sans, "*");
    pki_x509_strs_add(&r->allowed_user_ids, "*");
    if (base != NULL) {
        r->ttl_s = base->ttl_s;
        r->max_ttl_s = base->max_ttl_s;
        r->generate_lease = base->generate_lease;
        r->no_store = base->no_store;
        r->not_before_duration_s = base->not_before_duration_s;
        r->basic_constraints_valid_for_non_ca = base->basic_constraints_valid_for_non_ca;
        cf_free(r->not_after);
        r->not_after = base->not_after != NULL ? cf_strdup(base->not_after) : NULL;
    }
}

/* Jobs --------------------------------------------------------------------------------------- */

struct issue_job
{
    struct pki_engine *e;
    struct node_request *req;
    enum issue_kind kind;
    struct pki_role_ref *role; /* reference, NULL for sign-verbatim without a role */
    struct pki_role verbatim;  /* sign-verbatim's role */
    const struct pki_role *r;  /* the role in effect */
    struct pki_snap *snap;     /* reference */
    const struct pki_issuer *issuer;
    struct pki_x509_template aia; /* AIA URLs read on the loop */
    int64_t mount_default;
    int64_t mount_max;
    bool no_store;
    /* Results. */
    int rv;
    int status;
    char errmsg[CF_ERRMSG_SIZE];
    json_t *data;
    json_t *warnings;
    uint8_t *der;
    size_t der_len;
    char serial[PKI_X509_SERIAL_HEX_SIZE];
    int64_t not_after; /* Unix seconds, for the lease */
};

static void job_free(struct issue_job *j)
{
    role_ref_release(j->role);
    pki_role_close(&j->verbatim);
    pki_snap_release(j->snap);
    pki_x509_template_close(&j->aia);
    json_decref(j->data);
    json_decref(j->warnings);
    cf_free(j->der);
    cf_free(j);
}

/* Copies a strs list into another (appending). */
static int strs_copy(struct pki_x509_strs *dst, const struct pki_x509_strs *src)
{
    for (size_t i = 0; i < src->n; i++) {
        int rv = pki_x509_strs_add(dst, src->v[i]);
        if (rv != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

/* Checks a CSR's public key against the role (pki.md 2.3). */
static int check_csr_key(struct issue_job *j, EVP_PKEY *pk)
{
    enum pki_key_type kt;
    int bits = 0;
    const struct pki_role *r = j->r;
    int rv = pki_key_describe(pk, &kt, &bits, j->errmsg);
    if (rv != CF_OK) {
        cf_errmsg_printf(j->errmsg, "Unknown key type in CSR: %s",
                         OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
        return CF_EINVAL;
    }
    if (r->key_type_any) {
        if (kt == PKI_KEY_RSA && bits < 2048) {
            cf_errmsg_printf(j->errmsg, "RSA keys < 2048 bits are unsafe and not supported");
            return CF_EINVAL;
        }
        return CF_OK;
    }
    if (kt != r->key_type) {
        cf_errmsg_printf(j->errmsg, "role requires keys of type %s",
                         pki_key_type_name(r->key_type));
        return CF_EINVAL;
    }
    if (kt == PKI_KEY_RSA && bits < 2048) {
        cf_errmsg_printf(j->errmsg,
                         "Vault requires a minimum of a 2048-bit key, but CSR's key is %d bits",
                         bits);
        return CF_EINVAL;
    }
    if (kt != PKI_KEY_ED25519 && bits < r->key_bits) {
        cf_errmsg_printf(j->errmsg,
                         "role requires a minimum of a %d-bit key, but CSR's key is %d bits",
                         r->key_bits, bits);
        return CF_EINVAL;
    }
    return CF_OK;
}

/* The names of the request (or CSR) into t, checked against the role. */
static int names(struct issue_job *j, struct pki_x509_template *t, X509_REQ *csr)
{
    const json_t *d = j->req->data;
    const struct pki_role *r = j->r;
    struct pki_x509_template ct;
    pki_x509_template_init(&ct);
    int rv = CF_OK;
    if (csr != NULL) {
        rv = pki_x509_csr_read(csr, &ct, j->errmsg);
        if (rv == CF_OK && ct.has_basic_constraints && j->warnings != NULL) {
            json_array_append_new(j->warnings,
                                  json_string("specified CSR contained a Basic Constraints "
                                              "extension that was ignored during issuance"));
        }
    }
    bool verbatim = j->kind == ISSUE_VERBATIM;
    const char *req_cn = json_string_value(json_object_get(d, "common_name"));
    if (rv == CF_OK) {
        bool from_csr = csr != NULL && (verbatim || r->use_csr_common_name);
        const char *cn = from_csr ? ct.common_name : req_cn;
        if (from_csr && req_cn != NULL && req_cn[0] != '\0' && !verbatim) {
            json_array_append_new(j->warnings,
                                  json_string("the common_name field was provided but the role "
                                              "is set with \"use_csr_common_name\" set to true"));
        }
        if (cn != NULL && cn[0] != '\0') {
            t->common_name = cf_strdup(cn);
            rv = t->common_name != NULL ? CF_OK : CF_ENOMEM;
        }
    }
    if (rv == CF_OK && r->require_cn && (t->common_name == NULL || t->common_name[0] == '\0')) {
        cf_errmsg_printf(j->errmsg,
                         "the common_name field is required, or must be provided in a CSR with "
                         "\"use_csr_common_name\" set to true, unless \"require_cn\" is set to "
                         "false");
        rv = CF_EINVAL;
    }
    bool sans_from_csr = csr != NULL && (verbatim || r->use_csr_sans);
    if (rv == CF_OK && sans_from_csr) {
        if (!verbatim && json_object_get(d, "alt_names") != NULL) {
            json_array_append_new(j->warnings,
                                  json_string("the alt_names field was provided but the role is "
                                              "set with \"use_csr_sans\" set to true"));
        }
        if ((rv = strs_copy(&t->dns, &ct.dns)) == CF_OK &&
            (rv = strs_copy(&t->email, &ct.email)) == CF_OK &&
            (rv = strs_copy(&t->ip, &ct.ip)) == CF_OK &&
            (rv = strs_copy(&t->uri, &ct.uri)) == CF_OK) {
            for (size_t i = 0; rv == CF_OK && i < ct.n_other_sans; i++) {
                rv = pki_x509_template_add_other_san(t, ct.other_sans[i].oid,
                                                     ct.other_sans[i].value);
            }
        }
    } else if (rv == CF_OK) {
        rv = pki_params_sans(d, t, j->errmsg);
    }
    bool exclude = false;
    if (rv == CF_OK) {
        rv = pki_field_bool_opt(d, "exclude_cn_from_sans", &exclude, j->errmsg);
    }
    /* Subject serial number and user ids. */
    if (rv == CF_OK) {
        const char *sn = json_string_value(json_object_get(d, "serial_number"));
        if ((sn == NULL || sn[0] == '\0') && csr != NULL && ct.serial_number != NULL) {
            sn = ct.serial_number;
        }
        if (sn != NULL && sn[0] != '\0') {
            rv = pki_names_check_serial_number(r, sn, j->errmsg);
            if (rv == CF_OK) {
                t->serial_number = cf_strdup(sn);
                rv = t->serial_number != NULL ? CF_OK : CF_ENOMEM;
            }
        }
    }
    if (rv == CF_OK) {
        json_t *ids = NULL;
        int r2 = pki_field_strings(d, "user_ids", &ids, j->errmsg);
        if (r2 == CF_OK) {
            size_t i;
            json_t *v;
            json_array_foreach(ids, i, v)
            {
                if ((rv = pki_x509_strs_add(&t->user_ids, json_string_value(v))) != CF_OK) {
                    break;
                }
            }
            json_decref(ids);
        } else if (r2 != CF_ENOTFOUND) {
            rv = r2;
        }
        if (rv == CF_OK && csr != NULL) {
            rv = strs_copy(&t->user_ids, &ct.user_ids);
        }
        if (rv == CF_OK && t->user_ids.n > 0) {
            rv = pki_names_check_user_ids(r, &t->user_ids, j->errmsg);
        }
    }
    /* The name policy. */
    if (rv == CF_OK && t->common_name != NULL && t->common_name[0] != '\0') {
        rv = pki_names_check_cn(r, t->common_name, j->errmsg);
    }
    if (rv == CF_OK && !exclude) {
        rv = pki_params_cn_to_sans(t, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_names_check_dns(r, &t->dns, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_names_check_email(r, &t->email, j->errmsg);
    }
    if (rv == CF_OK && t->ip.n > 0) {
        rv = pki_names_check_ips(r, &t->ip, sans_from_csr, j->errmsg);
    }
    if (rv == CF_OK && t->uri.n > 0) {
        rv = pki_names_check_uris(r, &t->uri, sans_from_csr, j->errmsg);
    }
    if (rv == CF_OK && t->n_other_sans > 0) {
        rv = pki_names_check_other_sans(r, t->other_sans, t->n_other_sans, j->errmsg);
    }
    /* Verbatim keeps the CSR's subject; roles add their subject fields. */
    if (rv == CF_OK && verbatim && csr != NULL) {
        if ((rv = strs_copy(&t->country, &ct.country)) == CF_OK &&
            (rv = strs_copy(&t->organization, &ct.organization)) == CF_OK &&
            (rv = strs_copy(&t->ou, &ct.ou)) == CF_OK &&
            (rv = strs_copy(&t->locality, &ct.locality)) == CF_OK &&
            (rv = strs_copy(&t->province, &ct.province)) == CF_OK &&
            (rv = strs_copy(&t->street_address, &ct.street_address)) == CF_OK) {
            rv = strs_copy(&t->postal_code, &ct.postal_code);
        }
        /* Key usages of the CSR, else the request's. */
        t->key_usage = ct.key_usage;
        t->ext_key_usage = ct.ext_key_usage;
        if (rv == CF_OK) {
            rv = strs_copy(&t->ext_key_usage_oids, &ct.ext_key_usage_oids);
        }
    } else if (rv == CF_OK) {
        if ((rv = strs_copy(&t->country, &r->country)) == CF_OK &&
            (rv = strs_copy(&t->organization, &r->organization)) == CF_OK &&
            (rv = strs_copy(&t->ou, &r->ou)) == CF_OK &&
            (rv = strs_copy(&t->locality, &r->locality)) == CF_OK &&
            (rv = strs_copy(&t->province, &r->province)) == CF_OK &&
            (rv = strs_copy(&t->street_address, &r->street_address)) == CF_OK) {
            rv = strs_copy(&t->postal_code, &r->postal_code);
        }
    }
    pki_x509_template_close(&ct);
    return rv;
}

/* Verbatim's key usages: the CSR's, else the request's key_usage / ext_key_usage. */
static int verbatim_usages(struct issue_job *j, struct pki_x509_template *t)
{
    const json_t *d = j->req->data;
    int rv = CF_OK;
    if (t->key_usage == 0) {
        json_t *ku = NULL;
        int r2 = pki_field_strings(d, "key_usage", &ku, j->errmsg);
        if (r2 == CF_ENOTFOUND) {
            t->key_usage =
                PKI_KU_DIGITAL_SIGNATURE | PKI_KU_KEY_AGREEMENT | PKI_KU_KEY_ENCIPHERMENT;
        } else if (r2 != CF_OK) {
            return r2;
        }
        size_t i;
        json_t *v;
        json_array_foreach(ku, i, v)
        {
            uint32_t bit;
            if ((rv = pki_x509_key_usage_parse(json_string_value(v), &bit, j->errmsg)) != CF_OK) {
                break;
            }
            t->key_usage |= bit;
        }
        json_decref(ku);
    }
    if (rv == CF_OK && t->ext_key_usage == 0 && t->ext_key_usage_oids.n == 0) {
        json_t *eku = NULL;
        if (pki_field_strings(d, "ext_key_usage", &eku, j->errmsg) == CF_OK) {
            size_t i;
            json_t *v;
            json_array_foreach(eku, i, v)
            {
                uint32_t bit;
                if ((rv = pki_x509_ext_key_usage_parse(json_string_value(v), &bit, j->errmsg)) !=
                    CF_OK) {
                    break;
                }
                t->ext_key_usage |= bit;
            }
            json_decref(eku);
        }
        json_t *oids = NULL;
        if (rv == CF_OK && pki_field_strings(d, "ext_key_usage_oids", &oids, j->errmsg) == CF_OK) {
            size_t i;
            json_t *v;
            json_array_foreach(oids, i, v)
            {
                if ((rv = pki_x509_strs_add(&t->ext_key_usage_oids, json_string_value(v))) !=
                    CF_OK) {
                    break;
                }
            }
            json_decref(oids);
        }
    }
    return rv;
}

static void issue_work(void *arg)
{
    struct issue_job *j = arg;
    const json_t *d = j->req->data;
    const struct pki_role *r = j->r;
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    X509_REQ *csr = NULL;
    EVP_PKEY *csr_key = NULL;
    struct pki_leaf_key newkey;
    bool have_key = false;
    struct cf_buf spki;
    cf_buf_init(&spki);
    struct cf_buf der;
    cf_buf_init(&der);
    enum pki_format fmt = PKI_FORMAT_PEM;
    enum pki_key_format kfmt = PKI_KEY_FORMAT_DER;
    int rv = pki_params_format(d, &fmt, j->errmsg);
    if (rv == CF_OK) {
        const char *kf = json_string_value(json_object_get(d, "private_key_format"));
        rv = pki_key_format_parse(kf != NULL ? kf : "", &kfmt, j->errmsg);
    }
    /* The subject key: a CSR's, or a new one. */
    enum pki_key_type kt = r->key_type;
    int bits = r->key_bits;
    if (rv == CF_OK && j->kind != ISSUE_ISSUE) {
        const char *pem = json_string_value(json_object_get(d, "csr"));
        if (pem == NULL || pem[0] == '\0') {
            cf_errmsg_printf(j->errmsg, "\"csr\" is empty");
            rv = CF_EINVAL;
        } else {
            rv = pki_x509_csr_parse(pem, strlen(pem), &csr, &csr_key, j->errmsg);
        }
        if (rv == CF_OK) {
            rv = check_csr_key(j, csr_key);
        }
    } else if (rv == CF_OK) {
        const char *rkt = json_string_value(json_object_get(d, "key_type"));
        bool asked = (rkt != NULL && rkt[0] != '\0') || json_object_get(d, "key_bits") != NULL;
        if (r->key_type_any) {
            if (!asked) {
                cf_errmsg_printf(j->errmsg,
                                 "role key type \"any\" not allowed for issuing certificates "
                                 "without providing key_type and/or key_bits request parameters");
                rv = CF_EINVAL;
            } else {
                rv = pki_params_new_key(d, &kt, &bits, j->errmsg);
            }
        } else if (asked) {
            json_array_append_new(j->warnings,
                                  json_string("parameters key_type and key_bits ignored as role "
                                              "had specific values"));
        }
    }
    if (rv == CF_OK) {
        rv = names(j, &t, csr);
    }
    if (rv == CF_OK && j->kind == ISSUE_VERBATIM) {
        rv = verbatim_usages(j, &t);
    } else if (rv == CF_OK) {
        t.key_usage = r->key_usage_bits;
        t.ext_key_usage = r->ext_key_usage_bits;
        rv = strs_copy(&t.ext_key_usage_oids, &r->ext_key_usage_oids);
        if (rv == CF_OK) {
            rv = strs_copy(&t.policy_identifiers, &r->policy_identifiers);
        }
    }
    if (rv == CF_OK) {
        /* sign-verbatim lets the request override the role. */
        t.basic_constraints_valid_for_non_ca = r->basic_constraints_valid_for_non_ca;
        if (j->kind == ISSUE_VERBATIM) {
            rv = pki_field_bool_opt(d, "basic_constraints_valid_for_non_ca",
                                    &t.basic_constraints_valid_for_non_ca, j->errmsg);
        }
    }
    if (rv == CF_OK) {
        t.signature_bits = r->signature_bits;
        t.use_pss = r->use_pss;
        if (j->kind == ISSUE_VERBATIM) {
            rv = pki_params_signature(d, j->issuer->key->type, &t, j->errmsg);
        }
        if (j->issuer->key->type != PKI_KEY_RSA) {
            t.use_pss = false;
        }
        if (j->issuer->key->type == PKI_KEY_RSA && t.signature_bits == 0) {
            t.signature_bits = 256;
        }
    }
    int64_t now = cf_now_s();
    if (rv == CF_OK) {
        rv = pki_params_validity(d, r->ttl_s, r->max_ttl_s, r->not_after, r->not_before_duration_s,
                                 j->mount_default, j->mount_max, now, &t, j->warnings, j->errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_params_cap_to_issuer(&t, j->issuer->not_after, (int)j->issuer->leaf_behavior, now,
                                      j->errmsg);
    }
    if (rv == CF_OK) {
        if ((rv = strs_copy(&t.issuing_certificates, &j->aia.issuing_certificates)) == CF_OK &&
            (rv = strs_copy(&t.crl_distribution_points, &j->aia.crl_distribution_points)) ==
                CF_OK) {
            rv = strs_copy(&t.ocsp_servers, &j->aia.ocsp_servers);
        }
    }
    if (rv == CF_OK && csr == NULL) {
        rv = pki_leaf_key_generate(kt, bits, &newkey, j->errmsg);
        have_key = rv == CF_OK;
    }
    if (rv == CF_OK && csr != NULL) {
        rv = pki_key_spki_der(csr_key, &spki);
        if (rv != CF_OK) {
            cf_errmsg_printf(j->errmsg, "encode public key: %s", cf_strerror(rv));
        }
    } else if (rv == CF_OK) {
        rv = pki_leaf_key_spki(&newkey, &spki, j->errmsg);
    }
    if (rv == CF_OK) {
        /* The issuer's key and certificate were matched when it was stored. */
        const struct pki_issuer *is = j->issuer;
        const struct pki_cert_issuer ci = {
            .name_der = is->subject_der,
            .name_len = is->subject_der_len,
            .skid = is->skid,
            .skid_len = is->skid_len,
            .key = is->key->pkey,
            .key_type = is->key->type,
            .key_bits = is->key->bits,
            .sign_default = is->key->sign_default,
        };
        rv = pki_cert_der_build(&t, spki.data, spki.len, &ci, &der, j->serial, j->errmsg);
    }
    bool remove_roots = false;
    if (rv == CF_OK) {
        rv = pki_field_bool_opt(d, "remove_roots_from_chain", &remove_roots, j->errmsg);
    }
    if (rv == CF_OK) {
        j->data = pki_params_leaf_data(
            der.data, der.len, j->serial, t.not_after, j->issuer->chain, j->issuer->chain_pem,
            j->issuer->n_chain, have_key ? &newkey : NULL, fmt, kfmt, remove_roots, j->errmsg);
        rv = j->data != NULL ? CF_OK : CF_ENOMEM;
    }
    if (rv == CF_OK && !j->no_store) {
        j->der = cf_buf_steal(&der, &j->der_len);
    }
    if (rv == CF_OK) {
        j->not_after = t.not_after;
    }
    if (rv == CF_OK && t.not_before > 0) {
        json_object_set_new(j->data, "not_before", json_integer(t.not_before));
    }
    if (have_key) {
        pki_leaf_key_close(&newkey);
    }
    cf_buf_close(&spki);
    cf_buf_close(&der);
    X509_REQ_free(csr);
    EVP_PKEY_free(csr_key);
    pki_x509_template_close(&t);
    j->rv = rv;
}

/* Seconds until the certificate's NotAfter, the lease's TTL. */
static int64_t lease_left(const struct issue_job *j)
{
    int64_t left = j->not_after - cf_now_s();
    return left > 0 ? left : 0;
}

static void stored(void *arg, int status)
{
    struct issue_job *j = arg;
    if (status != CF_OK) {
        pki_done(j->req, node_response_error(500, "unable to store certificate locally: %s",
                                             cf_strerror(status)));
        job_free(j);
        return;
    }
    struct node_response *resp = node_response_data(j->data);
    j->data = NULL;
    if (resp != NULL && json_array_size(j->warnings) > 0) {
        resp->warnings = json_incref(j->warnings);
    }
    if (resp != NULL && j->r->generate_lease && !j->no_store) {
        /* pki.md 3.4 (6): the lease went into the certificate's own batch (issue_after); the
         * core fills lease_id. */
        resp->lease_duration = lease_left(j);
    }
    pki_done(j->req, resp);
    job_free(j);
}

static void issue_after(void *arg, int status)
{
    struct issue_job *j = arg;
    if (status != CF_OK || j->rv != CF_OK) {
        int code = status != CF_OK || j->rv == CF_ENOMEM || j->rv == CF_ECRYPTO ? 500 : 400;
        pki_done(j->req,
                 node_response_error(code, "%s", j->errmsg[0] ? j->errmsg : cf_strerror(j->rv)));
        job_free(j);
        return;
    }
    if (j->no_store) {
        stored(j, CF_OK);
        return;
    }
    char key[160];
    pki_serial_key("certs/", j->serial, key, sizeof(key));
    struct node_write *w = node_view_write(j->e->view);
    int rv = w != NULL ? node_write_put(w, key, j->der, j->der_len) : CF_ENOMEM;
    if (rv == CF_OK && j->r->generate_lease) {
        /* The certificate and its lease commit together: revoking the lease revokes it. */
        json_t *secret = json_pack("{s:s}", "serial_number", j->serial);
        rv = secret != NULL ? node_write_lease(w, j->req, secret, lease_left(j)) : CF_ENOMEM;
        json_decref(secret);
    }
    if (rv != CF_OK) {
        node_write_free(w);
        stored(j, rv);
        return;
    }
    node_write_commit(w, stored, j);
}

static void issue_start(struct pki_engine *e,
                        struct node_request *req,
                        enum issue_kind kind,
                        const char *issuer_ref,
                        const char *role_name)
{
    struct issue_job *j = cf_calloc(1, sizeof(*j));
    if (j == NULL) {
        pki_done(req, NULL);
        return;
    }
    j->e = e;
    j->req = req;
    j->kind = kind;
    j->mount_default = req->mount_default_lease_s;
    j->mount_max = req->mount_max_lease_s;
    j->warnings = json_array();
    pki_x509_template_init(&j->aia);
    int rv = CF_OK;
    if (role_name != NULL) {
        j->role = role_get(e, role_name, &rv, j->errmsg);
        if (j->role == NULL) {
            if (rv == CF_ENOTFOUND) {
                pki_done(req, node_response_error(400, "unknown role: %s", role_name));
            } else {
                pki_done(req, node_response_error(500, "%s", j->errmsg));
            }
            job_free(j);
            return;
        }
    }
    if (kind == ISSUE_VERBATIM) {
        verbatim_role(&j->verbatim, j->role != NULL ? &j->role->role : NULL);
        j->r = &j->verbatim;
    } else {
        j->r = &j->role->role;
    }
    j->no_store = j->r->no_store;
    j->snap = pki_snap_get(e);
    if (j->snap == NULL || j->warnings == NULL) {
        pki_done(req, node_response_error(500, "could not read the mount's issuers"));
        job_free(j);
        return;
    }
    const char *ref = issuer_ref != NULL ? issuer_ref
                      : j->role != NULL  ? j->role->role.issuer_ref
                                         : "default";
    j->issuer = pki_snap_issuer(j->snap, ref);
    if (j->issuer == NULL || j->issuer->key == NULL || !(j->issuer->usage & PKI_USAGE_ISSUING)) {
        if (j->issuer == NULL && strcmp(ref, "default") != 0) {
            pki_done(req,
                     node_response_error(400, "unable to find PKI issuer for reference: %s", ref));
        } else {
            pki_done(req, node_response_error(
                              400, "could not fetch the CA certificate (was one set?): %s",
                              j->issuer == NULL ? "no default issuer currently configured"
                                                : "the issuer cannot issue certificates"));
        }
        job_free(j);
        return;
    }
    rv = pki_config_aia(e, j->issuer->entry, j->issuer->id, &j->aia, j->errmsg);
    if (rv != CF_OK) {
        pki_done(req, node_response_error(400, "%s", j->errmsg));
        job_free(j);
        return;
    }
    node_view_work(e->view, issue_work, issue_after, j);
}

/* Routing ------------------------------------------------------------------------------------ */

/* Splits "a/b" style single segments. */
static bool segment(const char *s, char *out, size_t n, const char **rest)
{
    const char *slash = strchr(s, '/');
    size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (len == 0 || len >= n) {
        return false;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    *rest = slash != NULL ? slash + 1 : NULL;
    return true;
}

bool pki_issue_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    char ref[256];
    char role[256];
    const char *issuer_ref = NULL;
    const char *rest = NULL;
    if (strncmp(p, "issuer/", 7) == 0) {
        if (!segment(p + 7, ref, sizeof(ref), &rest) || rest == NULL) {
            return false;
        }
        issuer_ref = ref;
        p = rest;
    }
    enum issue_kind kind;
    const char *role_name = NULL;
    if (strncmp(p, "issue/", 6) == 0) {
        kind = ISSUE_ISSUE;
        role_name = p + 6;
    } else if (strncmp(p, "sign/", 5) == 0) {
        kind = ISSUE_SIGN;
        role_name = p + 5;
    } else if (strcmp(p, "sign-verbatim") == 0) {
        kind = ISSUE_VERBATIM;
    } else if (strncmp(p, "sign-verbatim/", 14) == 0) {
        kind = ISSUE_VERBATIM;
        role_name = p + 14;
    } else {
        return false;
    }
    if (role_name != NULL) {
        const char *r2 = NULL;
        if (!segment(role_name, role, sizeof(role), &r2) || r2 != NULL) {
            return false;
        }
        role_name = role;
    }
    if (req->op != NODE_OP_UPDATE && req->op != NODE_OP_CREATE) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    issue_start(e, req, kind, issuer_ref, role_name);
    return true;
}
