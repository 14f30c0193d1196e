/*
 * CRL helper endpoints (pki.md 1.6): issuer/:ref/resign-crls combines CRLs the issuer's key
 * signed (typically one per cluster) into one CRL signed again by that issuer, and
 * issuer/:ref/sign-revocation-list signs a CRL from a list of entries given in the request.
 * Neither stores anything. Parameters are checked on the loop with Vault's texts (400); the
 * given CRLs are decoded, verified against the issuer's key and merged, and the new CRL encoded
 * with crl.c and signed, on the worker pool.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/crl.h"
#include "engines/pki/field.h"
#include "engines/pki/issuer.h"
#include "engines/pki/pki.h"
#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/duration.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"

/* Entries of the CRL being made, by serial (big-endian magnitude, leading zeros dropped). */
struct entry
{
    uint8_t serial[32];
    size_t serial_len;
    int64_t revoked_at;
    uint8_t *exts; /* cf_malloc'd DER of the entry's extensions, or NULL */
    size_t exts_len;
};

struct sign_job
{
    struct node_request *req;
    struct pki_snap *snap; /* keeps the issuer's certificate and key alive */
    struct pki_crl_params p;
    struct entry *entries;
    size_t n_entries;
    STACK_OF(X509_EXTENSION) * exts;
    bool der;
    json_t *warnings;
    json_t *crls; /* resign-crls: the PEM CRLs, read and merged on the worker pool */
    uint8_t *out;
    size_t out_len;
    int rv;
    char errmsg[CF_ERRMSG_SIZE];
};

static void job_free(struct sign_job *j)
{
    for (size_t i = 0; i < j->n_entries; i++) {
        cf_free(j->entries[i].exts);
    }
    cf_free(j->entries);
    sk_X509_EXTENSION_pop_free(j->exts, X509_EXTENSION_free);
    json_decref(j->warnings);
    json_decref(j->crls);
    cf_free(j->out);
    if (j->snap != NULL) {
        pki_snap_release(j->snap);
    }
    cf_free(j);
}

static void fail(struct sign_job *j, int status, const char *msg)
{
    pki_done(j->req, node_response_error(status, "%s", msg));
    job_free(j);
}

/* Appends an entry (serial as a big-endian magnitude). */
static int entry_push(struct sign_job *j, const uint8_t *serial, size_t n, int64_t at)
{
    while (n > 1 && serial[0] == 0) {
        serial++;
        n--;
    }
    if (n > sizeof(j->entries[0].serial)) {
        return CF_EINVAL;
    }
    struct entry *e = cf_realloc(j->entries, (j->n_entries + 1) * sizeof(*e));
    if (e == NULL) {
        return CF_ENOMEM;
    }
    j->entries = e;
    e = &j->entries[j->n_entries++];
    memset(e, 0, sizeof(*e));
    if (n == 0) {
        e->serial_len = 1; /* serial 0 */
    } else {
        memcpy(e->serial, serial, n);
        e->serial_len = n;
    }
    e->revoked_at = at;
    return CF_OK;
}

static long find_serial(const struct sign_job *j, const uint8_t *serial, size_t n)
{
    while (n > 1 && serial[0] == 0) {
        serial++;
        n--;
    }
    for (size_t i = 0; i < j->n_entries; i++) {
        if (j->entries[i].serial_len == n && memcmp(j->entries[i].serial, serial, n) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* Common parameters --------------------------------------------------------------------- */

static int parse_format(struct sign_job *j)
{
    const json_t *f = json_object_get(j->req->data, "format");
    const char *fmt = json_is_string(f) ? json_string_value(f) : "pem";
    if (strcasecmp(fmt, "pem") == 0 || strcasecmp(fmt, "der") == 0) {
        j->der = strcasecmp(fmt, "der") == 0;
        return CF_OK;
    }
    cf_errmsg_printf(j->errmsg, "unknown format value of %s", fmt);
    return CF_EINVAL;
}

/* next_update, crl_number and delta_crl_base_number. */
static int parse_numbers(struct sign_job *j)
{
    const json_t *d = j->req->data;
    int64_t next = 72 * 3600;
    const json_t *nu = json_object_get(d, "next_update");
    if (nu != NULL && !json_is_null(nu)) {
        const char *s = json_string_value(nu);
        if (json_is_integer(nu)) {
            next = json_integer_value(nu);
        } else if (s == NULL || cf_duration_parse_s(s, &next) != CF_OK) {
            cf_errmsg_printf(j->errmsg, "invalid value for next_update: invalid duration %s",
                             s != NULL ? s : "");
            return CF_EINVAL;
        }
    }
    if (next <= 0) {
        cf_errmsg_printf(j->errmsg, "next_update parameter must be greater than 0");
        return CF_EINVAL;
    }
    int64_t number = 0;
    int64_t base = -1;
    int rv = pki_field_int(d, "crl_number", &number, j->errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    rv = pki_field_int(d, "delta_crl_base_number", &base, j->errmsg);
    if (rv != CF_OK && rv != CF_ENOTFOUND) {
        return rv;
    }
    if (number < 0) {
        cf_errmsg_printf(j->errmsg, "crl_number parameter must be 0 or greater");
        return CF_EINVAL;
    }
    if (base < -1) {
        cf_errmsg_printf(j->errmsg, "delta_crl_base_number parameter must be -1 or greater");
        return CF_EINVAL;
    }
    int64_t now = cf_now_s();
    j->p.number = number;
    j->p.delta_base = base;
    j->p.this_update = now;
    j->p.next_update = now + next;
    return CF_OK;
}

/* The issuer: known, with its key and the crl-signing usage; fills the signing parameters. */
static int resolve_issuer(struct pki_engine *e, struct sign_job *j, const char *ref)
{
    j->snap = pki_snap_get(e);
    if (j->snap == NULL) {
        cf_errmsg_printf(j->errmsg, "could not read the mount's issuers");
        return CF_EIO;
    }
    const struct pki_issuer *is = pki_snap_issuer(j->snap, ref);
    if (is == NULL) {
        cf_errmsg_printf(j->errmsg,
                         "failed to resolve issuer issuer_ref: unable to find PKI issuer for "
                         "reference: %s",
                         ref);
        return CF_EINVAL;
    }
    if (is->key == NULL) {
        cf_errmsg_printf(j->errmsg,
                         "unable to fetch corresponding key for issuer %s; unable to use this "
                         "issuer for signing CRLs",
                         is->id);
        return CF_EINVAL;
    }
    if ((is->usage & PKI_USAGE_CRL) == 0) {
        cf_errmsg_printf(j->errmsg,
                         "error while attempting to use issuer %s: requested usage crl-signing "
                         "but the issuer does not have it",
                         is->id);
        return CF_EINVAL;
    }
    pki_crl_sigalg(json_string_value(json_object_get(is->entry, "revocation_signature_algorithm")),
                   &j->p.signature_bits, &j->p.use_pss);
    j->p.issuer = is->cert;
    j->p.signer = is->key->pkey;
    return CF_OK;
}

/* ASN.1 time to Unix seconds. */
static int64_t asn1_secs(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    return (int64_t)timegm(&tm);
}

/* resign-crls ------------------------------------------------------------------------------ */

/* One PEM CRL, alone in its string (whitespace may follow). */
static X509_CRL *pem_crl(const char *pem, char *why, size_t why_size)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509_CRL *crl = b != NULL ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
    char *rest = NULL;
    long n = crl != NULL ? BIO_get_mem_data(b, &rest) : 0;
    for (long i = 0; i < n; i++) {
        if (!isspace((unsigned char)rest[i])) {
            X509_CRL_free(crl);
            crl = NULL;
            snprintf(why, why_size, "invalid crl; should be one PEM block only");
            break;
        }
    }
    if (crl == NULL && n == 0) {
        snprintf(why, why_size, "no valid PEM encoded CRL found");
    }
    BIO_free(b);
    ERR_clear_error();
    return crl;
}

/* Adds the entries of crl; a serial seen before keeps its oldest revocation time (warned). */
static int merge(struct sign_job *j, X509_CRL *crl)
{
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
    for (int i = 0; i < sk_X509_REVOKED_num(revoked); i++) {
        const X509_REVOKED *r = sk_X509_REVOKED_value(revoked, i);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
        uint8_t serial[32];
        int n = bn != NULL ? BN_num_bytes(bn) : -1;
        if (n < 0 || n > (int)sizeof(serial) || BN_is_negative(bn)) {
            BN_free(bn);
            cf_errmsg_printf(j->errmsg, "unsupported serial number in a provided CRL");
            return CF_EINVAL;
        }
        BN_bn2bin(bn, serial);
        BN_free(bn);
        int64_t at = asn1_secs(X509_REVOKED_get0_revocationDate(r));
        long k = find_serial(j, serial, (size_t)n);
        if (k < 0) {
            int rv = entry_push(j, serial, (size_t)n, at);
            if (rv != CF_OK) {
                return rv;
            }
            continue;
        }
        if (j->entries[k].revoked_at == at) {
            continue;
        }
        char hex[3 * sizeof(serial) + 1] = "";
        for (int b = 0; b < n; b++) {
            snprintf(hex + 3 * b, sizeof(hex) - 3 * (size_t)b, b + 1 < n ? "%02x:" : "%02x",
                     serial[b]);
        }
        char w[256];
        snprintf(w, sizeof(w),
                 "Duplicate serial %s with different revocation times detected, using oldest "
                 "revocation time",
                 hex);
        json_array_append_new(j->warnings, json_string(w));
        if (at < j->entries[k].revoked_at) {
            j->entries[k].revoked_at = at;
        }
    }
    return CF_OK;
}

static int resign_params(struct sign_job *j, struct pki_engine *e, const char *ref)
{
    int rv = parse_format(j);
    if (rv == CF_OK) {
        rv = parse_numbers(j);
    }
    if (rv == CF_OK) {
        rv = pki_field_strings(j->req->data, "crls", &j->crls, j->errmsg);
        if (rv == CF_ENOTFOUND) {
            j->crls = json_array();
            rv = j->crls != NULL ? CF_OK : CF_ENOMEM;
        }
    }
    if (rv == CF_OK) {
        rv = resolve_issuer(e, j, ref);
    }
    return rv;
}

/* On the worker: decodes the given CRLs, checks each was signed by the issuer's key and merges
 * their entries. CF_EINVAL with Vault's text for a CRL that is not one PEM block or was signed
 * by another key. */
static int resign_read(struct sign_job *j)
{
    EVP_PKEY *pub = X509_get0_pubkey(j->p.issuer);
    size_t i;
    const json_t *v;
    int rv = CF_OK;
    json_array_foreach(j->crls, i, v)
    {
        char why[96] = "";
        X509_CRL *crl = pem_crl(json_string_value(v), why, sizeof(why));
        if (crl == NULL) {
            cf_errmsg_printf(j->errmsg, "failed decoding crl %zu: %s", i, why);
            return CF_EINVAL;
        }
        if (pub == NULL || X509_CRL_verify(crl, pub) != 1) {
            ERR_clear_error();
            cf_errmsg_printf(j->errmsg, "CRL index: %zu was not signed by requested issuer", i);
            rv = CF_EINVAL;
        } else {
            rv = merge(j, crl);
        }
        X509_CRL_free(crl);
        if (rv != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

/* sign-revocation-list ----------------------------------------------------------------------- */

/* An OID in dotted form, numbers only. NULL when malformed. */
static ASN1_OBJECT *dotted_oid(const char *s)
{
    if (s[0] == '\0' || strspn(s, "0123456789.") != strlen(s)) {
        return NULL;
    }
    return OBJ_txt2obj(s, 1);
}

/* One {id, critical, value} map into an extension. */
static int one_ext(struct sign_job *j, const json_t *m, X509_EXTENSION **out)
{
    const json_t *id = json_object_get(m, "id");
    if (id == NULL) {
        cf_errmsg_printf(j->errmsg, "missing id field");
        return CF_EINVAL;
    }
    const char *ids = json_string_value(id);
    if (ids == NULL) {
        cf_errmsg_printf(j->errmsg, "'id' field value was not a string");
        return CF_EINVAL;
    }
    if (ids[0] == '\0') {
        cf_errmsg_printf(j->errmsg, "zero length object identifier");
        return CF_EINVAL;
    }
    ASN1_OBJECT *obj = dotted_oid(ids);
    if (obj == NULL) {
        ERR_clear_error();
        cf_errmsg_printf(j->errmsg, "failed parsing object identifier %s", ids);
        return CF_EINVAL;
    }
    static const struct
    {
        int nid;
        const char *what;
        const char *oid;
    } reserved[] = {
        {NID_authority_key_identifier, "authority key object identifier", "2.5.29.35"},
        {NID_crl_number, "crl number object identifier", "2.5.29.20"},
        {NID_delta_crl, "delta crl object identifier", "2.5.29.27"},
    };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (OBJ_obj2nid(obj) == reserved[i].nid) {
            ASN1_OBJECT_free(obj);
            cf_errmsg_printf(j->errmsg, "%s (%s) is reserved", reserved[i].what, reserved[i].oid);
            return CF_EINVAL;
        }
    }
    bool critical = false;
    const json_t *c = json_object_get(m, "critical");
    if (json_is_boolean(c)) {
        critical = json_is_true(c);
    } else if (json_is_string(c) && json_string_value(c)[0] != '\0') {
        const char *cs = json_string_value(c);
        if (strcmp(cs, "true") == 0 || strcmp(cs, "1") == 0) {
            critical = true;
        } else if (strcmp(cs, "false") != 0 && strcmp(cs, "0") != 0) {
            ASN1_OBJECT_free(obj);
            cf_errmsg_printf(j->errmsg, "critical field value failed to be parsed: %s", cs);
            return CF_EINVAL;
        }
    } else if (c != NULL && !json_is_null(c) && !json_is_string(c)) {
        ASN1_OBJECT_free(obj);
        cf_errmsg_printf(j->errmsg, "critical field value failed to be parsed");
        return CF_EINVAL;
    }
    const json_t *v = json_object_get(m, "value");
    const char *vs = json_string_value(v);
    uint8_t *bytes = NULL;
    size_t blen = 0;
    int rv = CF_OK;
    if (v == NULL) {
        cf_errmsg_printf(j->errmsg, "missing 'value' field");
        rv = CF_EINVAL;
    } else if (vs == NULL) {
        cf_errmsg_printf(j->errmsg, "'value' field value was not a string");
        rv = CF_EINVAL;
    } else if (vs[0] != '\0' && cf_base64_decode(vs, strlen(vs), &bytes, &blen) != CF_OK) {
        cf_errmsg_printf(j->errmsg, "failed base64 decoding 'value' field");
        rv = CF_EINVAL;
    }
    ASN1_OCTET_STRING *os = rv == CF_OK ? ASN1_OCTET_STRING_new() : NULL;
    if (rv == CF_OK &&
        (os == NULL ||
         ASN1_OCTET_STRING_set(os, bytes != NULL ? bytes : (const uint8_t *)"", (int)blen) != 1 ||
         (*out = X509_EXTENSION_create_by_OBJ(NULL, obj, critical ? 1 : 0, os)) == NULL)) {
        rv = CF_ENOMEM;
    }
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    cf_free(bytes);
    return rv;
}

/* A list of extension maps (Vault's parseExtensionsParam): *out a new stack. */
static int ext_list(struct sign_job *j, const json_t *list, STACK_OF(X509_EXTENSION) * *out)
{
    STACK_OF(X509_EXTENSION) *sk = sk_X509_EXTENSION_new_null();
    if (sk == NULL) {
        return CF_ENOMEM;
    }
    size_t i;
    const json_t *m;
    int rv = CF_OK;
    json_array_foreach(list, i, m)
    {
        if (!json_is_object(m)) {
            cf_errmsg_printf(j->errmsg, "extension entry %zu not a map", i);
            rv = CF_EINVAL;
            break;
        }
        X509_EXTENSION *x = NULL;
        rv = one_ext(j, m, &x);
        if (rv != CF_OK) {
            char inner[CF_ERRMSG_SIZE];
            snprintf(inner, sizeof(inner), "%s", j->errmsg);
            cf_errmsg_printf(j->errmsg, "failed parsing extension entry %zu: %s", i, inner);
            break;
        }
        for (int k = 0; k < sk_X509_EXTENSION_num(sk); k++) {
            if (OBJ_cmp(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(sk, k)),
                        X509_EXTENSION_get_object(x)) == 0) {
                char txt[128];
                OBJ_obj2txt(txt, sizeof(txt), X509_EXTENSION_get_object(x), 1);
                cf_errmsg_printf(j->errmsg, "duplicate extension id: %s", txt);
                rv = CF_EINVAL;
            }
        }
        if (rv != CF_OK || sk_X509_EXTENSION_push(sk, x) <= 0) {
            X509_EXTENSION_free(x);
            rv = rv != CF_OK ? rv : CF_ENOMEM;
            break;
        }
    }
    if (rv != CF_OK) {
        sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
        return rv;
    }
    *out = sk;
    return CF_OK;
}

/* Vault's serial_number forms: hex with optional ':', '.', '-' or ' ' separators. */
static int hex_serial(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    char digits[256];
    size_t k = 0;
    for (const char *p = s; *p; p++) {
        if (*p == ':' || *p == '.' || *p == '-' || *p == ' ') {
            continue;
        }
        if (!isxdigit((unsigned char)*p) || k + 1 >= sizeof(digits)) {
            return CF_EINVAL;
        }
        digits[k++] = *p;
    }
    if (k % 2 != 0 || k / 2 > cap) {
        return CF_EINVAL;
    }
    for (size_t i = 0; i < k / 2; i++) {
        char b[3] = {digits[2 * i], digits[2 * i + 1], '\0'};
        out[i] = (uint8_t)strtoul(b, NULL, 16);
    }
    *n = k / 2;
    return CF_OK;
}

/* Vault's ParseAbsoluteTime: RFC 3339, or Unix seconds as a number or numeric string. */
static int abs_time(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return CF_OK;
    }
    if (json_is_real(v)) {
        *out = (int64_t)json_real_value(v);
        return CF_OK;
    }
    const char *s = json_string_value(v);
    if (s == NULL || s[0] == '\0') {
        return CF_EINVAL;
    }
    if (strspn(s, "0123456789") == strlen(s) && strlen(s) < 19) {
        *out = strtoll(s, NULL, 10);
        return CF_OK;
    }
    return cf_rfc3339_parse(s, out);
}

static int entry_params(struct sign_job *j, size_t i, const json_t *m, const size_t *orig)
{
    const json_t *sn = json_object_get(m, "serial_number");
    const char *ss = json_string_value(sn);
    uint8_t serial[32];
    size_t n = 0;
    if (sn == NULL) {
        cf_errmsg_printf(j->errmsg,
                         "failed parsing serial_number from entry %zu: missing 'serial_number' "
                         "field",
                         i);
        return CF_EINVAL;
    }
    if (ss == NULL || hex_serial(ss, serial, sizeof(serial), &n) != CF_OK) {
        cf_errmsg_printf(j->errmsg,
                         "failed parsing serial_number from entry %zu: 'serial_number' failed "
                         "converting to bytes",
                         i);
        return CF_EINVAL;
    }
    long seen = find_serial(j, serial, n);
    if (seen >= 0) {
        cf_errmsg_printf(j->errmsg, "duplicate serial number: %s, original entry %zu and %zu", ss,
                         orig[seen], i);
        return CF_EINVAL;
    }
    const json_t *rt = json_object_get(m, "revocation_time");
    int64_t at = 0;
    if (rt == NULL) {
        cf_errmsg_printf(j->errmsg,
                         "failed parsing revocation_time from entry %zu: missing "
                         "'revocation_time' field",
                         i);
        return CF_EINVAL;
    }
    if (abs_time(rt, &at) != CF_OK) {
        cf_errmsg_printf(j->errmsg,
                         "failed parsing revocation_time from entry %zu: failed "
                         "parsing time",
                         i);
        return CF_EINVAL;
    }
    int rv = entry_push(j, serial, n, at);
    if (rv != CF_OK) {
        return rv;
    }
    const json_t *ex = json_object_get(m, "extensions");
    if (ex == NULL || json_is_null(ex) || (json_is_string(ex) && json_string_value(ex)[0] == 0)) {
        return CF_OK;
    }
    if (!json_is_array(ex)) {
        cf_errmsg_printf(j->errmsg,
                         "failed parsing extensions from entry %zu: 'extensions' field did not "
                         "contain a slice",
                         i);
        return CF_EINVAL;
    }
    STACK_OF(X509_EXTENSION) *sk = NULL;
    rv = ext_list(j, ex, &sk);
    if (rv != CF_OK) {
        char inner[CF_ERRMSG_SIZE];
        snprintf(inner, sizeof(inner), "%s", j->errmsg);
        cf_errmsg_printf(j->errmsg, "failed parsing extensions from entry %zu: %s", i, inner);
        return rv;
    }
    if (sk_X509_EXTENSION_num(sk) > 0) {
        unsigned char *der = NULL;
        int len = i2d_X509_EXTENSIONS((X509_EXTENSIONS *)sk, &der);
        struct entry *e = &j->entries[j->n_entries - 1];
        e->exts = len > 0 ? cf_memdup(der, (size_t)len) : NULL;
        e->exts_len = e->exts != NULL ? (size_t)len : 0;
        OPENSSL_free(der);
        rv = e->exts != NULL ? CF_OK : CF_ENOMEM;
    }
    sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
    return rv;
}

static int list_params(struct sign_job *j, struct pki_engine *e, const char *ref)
{
    int rv = parse_numbers(j);
    if (rv == CF_OK) {
        rv = parse_format(j);
    }
    const json_t *list = json_object_get(j->req->data, "revoked_certs");
    size_t n = json_array_size(list);
    size_t *orig = rv == CF_OK ? cf_calloc(n + 1, sizeof(*orig)) : NULL;
    if (rv == CF_OK && orig == NULL) {
        rv = CF_ENOMEM;
    }
    size_t i;
    const json_t *m;
    json_array_foreach(list, i, m)
    {
        if (rv != CF_OK) {
            break;
        }
        if (!json_is_object(m)) {
            continue; /* Vault skips what is not a map */
        }
        orig[j->n_entries] = i; /* the request index of the entry about to be added */
        rv = entry_params(j, i, m, orig);
    }
    cf_free(orig);
    const json_t *ex = json_object_get(j->req->data, "extensions");
    if (rv == CF_OK && ex != NULL && !json_is_null(ex)) {
        if (!json_is_array(ex)) {
            cf_errmsg_printf(j->errmsg, "extensions must be a list of maps");
            rv = CF_EINVAL;
        } else {
            rv = ext_list(j, ex, &j->exts);
        }
    }
    if (rv == CF_OK) {
        rv = resolve_issuer(e, j, ref);
    }
    return rv;
}

/* Signing ---------------------------------------------------------------------------------- */

static void sign_work(void *arg)
{
    struct sign_job *j = arg;
    struct cf_buf entries;
    cf_buf_init(&entries);
    j->rv = j->crls != NULL ? resign_read(j) : CF_OK;
    for (size_t i = 0; j->rv == CF_OK && i < j->n_entries; i++) {
        const struct entry *e = &j->entries[i];
        j->rv = pki_crl_entry_add_ext(&entries, e->serial, e->serial_len, e->revoked_at, e->exts,
                                      e->exts_len);
    }
    j->p.extra_exts = j->exts;
    if (j->rv == CF_OK) {
        j->rv = pki_crl_build(&j->p, entries.data, entries.len, &j->out, &j->out_len, j->errmsg);
    }
    cf_buf_close(&entries);
}

static void sign_after(void *arg, int status)
{
    struct sign_job *j = arg;
    if (status == CF_OK && j->rv == CF_EINVAL) { /* a refused CRL (resign-crls) */
        fail(j, 400, j->errmsg);
        return;
    }
    if (status != CF_OK || j->rv != CF_OK) {
        pki_done(j->req, node_response_error(500, "error creating new CRL: %s",
                                             j->errmsg[0] ? j->errmsg : cf_strerror(status)));
        job_free(j);
        return;
    }
    char *text = j->der ? cf_base64_encode(j->out, j->out_len) : pki_crl_to_pem(j->out, j->out_len);
    struct node_response *r =
        text != NULL ? node_response_data(json_pack("{s:s}", "crl", text)) : NULL;
    if (r != NULL && json_array_size(j->warnings) > 0) {
        r->warnings = json_incref(j->warnings);
    }
    cf_free(text);
    pki_done(j->req, r);
    job_free(j);
}

bool pki_crl_sign_handle(struct pki_engine *e, struct node_request *req)
{
    const char *p = req->rel_path;
    if (strncmp(p, "issuer/", 7) != 0) {
        return false;
    }
    const char *slash = strchr(p + 7, '/');
    bool resign = slash != NULL && strcmp(slash, "/resign-crls") == 0;
    bool list = slash != NULL && strcmp(slash, "/sign-revocation-list") == 0;
    char ref[256];
    size_t n = slash != NULL ? (size_t)(slash - (p + 7)) : 0;
    if ((!resign && !list) || n == 0 || n >= sizeof(ref)) {
        return false;
    }
    memcpy(ref, p + 7, n);
    ref[n] = '\0';
    if (req->op != NODE_OP_UPDATE && req->op != NODE_OP_CREATE) {
        pki_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    struct sign_job *j = cf_calloc(1, sizeof(*j));
    if (j != NULL) {
        j->warnings = json_array();
    }
    if (j == NULL || j->warnings == NULL) {
        cf_free(j);
        pki_done(req, NULL);
        return true;
    }
    j->req = req;
    int rv = resign ? resign_params(j, e, ref) : list_params(j, e, ref);
    if (rv != CF_OK) {
        fail(j, rv == CF_ENOMEM || rv == CF_EIO ? 500 : 400,
             j->errmsg[0] ? j->errmsg : cf_strerror(rv));
        return true;
    }
    node_view_work(e->view, sign_work, sign_after, j);
    return true;
}
