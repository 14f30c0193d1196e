/*
 * Certificates and CSRs for the PKI engine: the template struct, certificate building and
 * signing, CSR creation, parsing, verification and reading, PEM bundles, chains and the small
 * readers (pki.md 1.2, 3.2, 3.3, 3.5).
 *
 * Happy path of an issuance: the engine fills a pki_x509_template from the request and role
 * (or from pki_x509_csr_read), calls pki_x509_cert_build with the issuer's certificate and key,
 * and renders the result with pki_x509_cert_to_pem / _base64 and pki_x509_serial_hex. Every
 * value from the outside (IP text, OIDs, CIDRs, strings) is checked while the extensions are
 * built, so a bad template fails with CF_EINVAL and a message before anything is signed. The
 * signed certificate is verified against the issuer key before it is returned.
 *
 * Extensions are built from OpenSSL's typed structures (never from config strings), in the order
 * Go's x509.CreateCertificate writes them, so that the certificates look like Vault's.
 */
#include "engines/pki/x509.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/key.h"
#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"

/* ---- string lists and the template ---- */

int pki_x509_strs_add(struct pki_x509_strs *l, const char *s)
{
    if (l->n >= SIZE_MAX / sizeof(char *) - 1) {
        return CF_ETOOBIG;
    }
    char *c = cf_strdup(s);
    if (c == NULL) {
        return CF_ENOMEM;
    }
    char **v = cf_realloc(l->v, (l->n + 1) * sizeof(char *));
    if (v == NULL) {
        cf_free(c);
        return CF_ENOMEM;
    }
    v[l->n++] = c;
    l->v = v;
    return CF_OK;
}

void pki_x509_strs_close(struct pki_x509_strs *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        cf_free(l->v[i]);
    }
    CF_FREE(l->v);
    l->n = 0;
}

void pki_x509_template_init(struct pki_x509_template *t)
{
    memset(t, 0, sizeof(*t));
    t->max_path_length = -1;
}

void pki_x509_template_close(struct pki_x509_template *t)
{
    if (t == NULL) {
        return;
    }
    struct pki_x509_strs *lists[] = {
        &t->country,
        &t->organization,
        &t->ou,
        &t->locality,
        &t->province,
        &t->street_address,
        &t->postal_code,
        &t->user_ids,
        &t->dns,
        &t->email,
        &t->ip,
        &t->uri,
        &t->ext_key_usage_oids,
        &t->issuing_certificates,
        &t->ocsp_servers,
        &t->crl_distribution_points,
        &t->permitted_dns_domains,
        &t->excluded_dns_domains,
        &t->permitted_ip_ranges,
        &t->excluded_ip_ranges,
        &t->permitted_email_addresses,
        &t->excluded_email_addresses,
        &t->permitted_uri_domains,
        &t->excluded_uri_domains,
        &t->policy_identifiers,
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        pki_x509_strs_close(lists[i]);
    }
    for (size_t i = 0; i < t->n_other_sans; i++) {
        cf_free(t->other_sans[i].oid);
        cf_free(t->other_sans[i].value);
    }
    cf_free(t->other_sans);
    cf_free(t->common_name);
    cf_free(t->serial_number);
    pki_x509_template_init(t);
}

int pki_x509_template_add_other_san(struct pki_x509_template *t, const char *oid, const char *value)
{
    if (t->n_other_sans >= SIZE_MAX / sizeof(*t->other_sans) - 1) {
        return CF_ETOOBIG;
    }
    char *o = cf_strdup(oid);
    char *v = cf_strdup(value);
    struct pki_x509_other_san *arr =
        o == NULL || v == NULL
            ? NULL
            : cf_realloc(t->other_sans, (t->n_other_sans + 1) * sizeof(*t->other_sans));
    if (arr == NULL) {
        cf_free(o);
        cf_free(v);
        return CF_ENOMEM;
    }
    arr[t->n_other_sans].oid = o;
    arr[t->n_other_sans].value = v;
    t->other_sans = arr;
    t->n_other_sans++;
    return CF_OK;
}

/* ---- key usage names ---- */

static const char *const ku_names[] = {
    "DigitalSignature", "ContentCommitment", "KeyEncipherment", "DataEncipherment", "KeyAgreement",
    "CertSign",         "CRLSign",           "EncipherOnly",    "DecipherOnly",
};

struct eku_def
{
    const char *name;
    const char *oid;
    int nid;
};

static const struct eku_def eku_defs[] = {
    {"Any", "2.5.29.37.0", NID_anyExtendedKeyUsage},
    {"ServerAuth", "1.3.6.1.5.5.7.3.1", NID_server_auth},
    {"ClientAuth", "1.3.6.1.5.5.7.3.2", NID_client_auth},
    {"CodeSigning", "1.3.6.1.5.5.7.3.3", NID_code_sign},
    {"EmailProtection", "1.3.6.1.5.5.7.3.4", NID_email_protect},
    {"IPSECEndSystem", "1.3.6.1.5.5.7.3.5", NID_ipsecEndSystem},
    {"IPSECTunnel", "1.3.6.1.5.5.7.3.6", NID_ipsecTunnel},
    {"IPSECUser", "1.3.6.1.5.5.7.3.7", NID_ipsecUser},
    {"TimeStamping", "1.3.6.1.5.5.7.3.8", NID_time_stamp},
    {"OCSPSigning", "1.3.6.1.5.5.7.3.9", NID_OCSP_sign},
    {"MicrosoftServerGatedCrypto", "1.3.6.1.4.1.311.10.3.3", NID_ms_sgc},
    {"NetscapeServerGatedCrypto", "2.16.840.1.113730.4.1", NID_ns_sgc},
};

#define N_KU (sizeof(ku_names) / sizeof(ku_names[0]))
#define N_EKU (sizeof(eku_defs) / sizeof(eku_defs[0]))

/* Compares a name with surrounding spaces ignored, case-insensitively. */
static bool name_eq(const char *in, const char *name)
{
    while (*in == ' ') {
        in++;
    }
    size_t n = strlen(in);
    while (n > 0 && in[n - 1] == ' ') {
        n--;
    }
    return n == strlen(name) && strncasecmp(in, name, n) == 0;
}

int pki_x509_eku_nid(unsigned i)
{
    return i < N_EKU ? eku_defs[i].nid : NID_undef;
}

int pki_x509_key_usage_parse(const char *name, uint32_t *bit, char *errmsg)
{
    for (size_t i = 0; i < N_KU; i++) {
        if (name_eq(name, ku_names[i])) {
            *bit = 1u << i;
            return CF_OK;
        }
    }
    cf_errmsg_printf(errmsg, "unknown key usage %s", name);
    return CF_EINVAL;
}

int pki_x509_ext_key_usage_parse(const char *name, uint32_t *bit, char *errmsg)
{
    for (size_t i = 0; i < N_EKU; i++) {
        if (name_eq(name, eku_defs[i].name)) {
            *bit = 1u << i;
            return CF_OK;
        }
    }
    cf_errmsg_printf(errmsg, "unknown ext key usage %s", name);
    return CF_EINVAL;
}

/* ---- building blocks ---- */

bool pki_x509_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr(" '()+,-./:=?*", c) != NULL;
        if (!ok) {
            return false;
        }
    }
    return true;
}

static int oom(char *errmsg)
{
    ERR_clear_error();
    cf_errmsg_printf(errmsg, "out of memory");
    return CF_ENOMEM;
}

/* Appends values as one (multi-valued) RDN, or as one RDN each when !multi. */
static int name_add(X509_NAME *n,
                    int nid,
                    const char *const *vals,
                    size_t count,
                    bool multi,
                    char *errmsg)
{
    bool first = true;
    for (size_t i = 0; i < count; i++) {
        const char *v = vals[i];
        if (v == NULL || v[0] == '\0') {
            continue;
        }
        if (strlen(v) > INT_MAX) {
            cf_errmsg_printf(errmsg, "subject value too long");
            return CF_EINVAL;
        }
        int type = pki_x509_printable(v) ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
        if (X509_NAME_add_entry_by_NID(n, nid, type, (const unsigned char *)v, (int)strlen(v), -1,
                                       first || !multi ? 0 : -1) != 1) {
            return oom(errmsg);
        }
        first = false;
    }
    return CF_OK;
}

static int build_name(const struct pki_x509_template *t, X509_NAME **out, char *errmsg)
{
    X509_NAME *n = X509_NAME_new();
    if (n == NULL) {
        return oom(errmsg);
    }
    const char *cn = t->common_name;
    const char *sn = t->serial_number;
    int rv = CF_OK;
    struct
    {
        int nid;
        const char *const *v;
        size_t n;
        bool multi;
    } parts[] = {
        {NID_countryName, (const char *const *)t->country.v, t->country.n, true},
        {NID_organizationName, (const char *const *)t->organization.v, t->organization.n, true},
        {NID_organizationalUnitName, (const char *const *)t->ou.v, t->ou.n, true},
        {NID_localityName, (const char *const *)t->locality.v, t->locality.n, true},
        {NID_stateOrProvinceName, (const char *const *)t->province.v, t->province.n, true},
        {NID_streetAddress, (const char *const *)t->street_address.v, t->street_address.n, true},
        {NID_postalCode, (const char *const *)t->postal_code.v, t->postal_code.n, true},
        {NID_serialNumber, &sn, 1, true},
        {NID_commonName, &cn, 1, true},
        {NID_userId, (const char *const *)t->user_ids.v, t->user_ids.n, false},
    };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rv == CF_OK; i++) {
        rv = name_add(n, parts[i].nid, parts[i].v, parts[i].n, parts[i].multi, errmsg);
    }
    if (rv != CF_OK) {
        X509_NAME_free(n);
        return rv;
    }
    *out = n;
    return CF_OK;
}

/* A GENERAL_NAME holding an IA5String (DNS, email, URI); ASCII only. */
static int gn_ia5(int type, const char *s, GENERAL_NAME **out, char *errmsg)
{
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80) {
            cf_errmsg_printf(errmsg, "the value \"%s\" contains non-ASCII characters", s);
            return CF_EINVAL;
        }
    }
    if (strlen(s) > INT_MAX) {
        cf_errmsg_printf(errmsg, "name too long");
        return CF_EINVAL;
    }
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (ia5 == NULL || gn == NULL || ASN1_STRING_set(ia5, s, (int)strlen(s)) != 1) {
        ASN1_IA5STRING_free(ia5);
        GENERAL_NAME_free(gn);
        return oom(errmsg);
    }
    GENERAL_NAME_set0_value(gn, type, ia5);
    *out = gn;
    return CF_OK;
}

size_t pki_x509_parse_ip(const char *s, uint8_t out[16])
{
    if (inet_pton(AF_INET, s, out) == 1) {
        return 4;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        return 16;
    }
    return 0;
}

static int gn_octets(const uint8_t *p, size_t n, GENERAL_NAME **out, char *errmsg)
{
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (os == NULL || gn == NULL || ASN1_OCTET_STRING_set(os, p, (int)n) != 1) {
        ASN1_OCTET_STRING_free(os);
        GENERAL_NAME_free(gn);
        return oom(errmsg);
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
    *out = gn;
    return CF_OK;
}

static int gn_ip(const char *s, GENERAL_NAME **out, char *errmsg)
{
    uint8_t a[16];
    size_t n = pki_x509_parse_ip(s, a);
    if (n == 0) {
        cf_errmsg_printf(errmsg, "the value \"%s\" is not a valid IP address", s);
        return CF_EINVAL;
    }
    return gn_octets(a, n, out, errmsg);
}

int pki_x509_cidr_parse(const char *s, uint8_t out[32], size_t *len, char *errmsg)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash == NULL ? 0 : (size_t)(slash - s);
    if (slash == NULL || alen >= sizeof(buf)) {
        cf_errmsg_printf(errmsg, "invalid CIDR %s", s);
        return CF_EINVAL;
    }
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(out, 0, 32);
    size_t n = pki_x509_parse_ip(buf, out);
    char *end = NULL;
    long prefix = strtol(slash + 1, &end, 10);
    if (n == 0 || slash[1] < '0' || slash[1] > '9' || *end != '\0' || prefix > (long)n * 8) {
        cf_errmsg_printf(errmsg, "invalid CIDR %s", s);
        return CF_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        long bits = prefix - (long)i * 8;
        uint8_t m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        out[n + i] = m;
        out[i] &= m;
    }
    *len = 2 * n;
    return CF_OK;
}

/* "addr/prefix" into address || mask (8 or 32 octets) for name constraints. */
static int gn_cidr(const char *s, GENERAL_NAME **out, char *errmsg)
{
    uint8_t a[32];
    size_t n = 0;
    int rv = pki_x509_cidr_parse(s, a, &n, errmsg);
    return rv == CF_OK ? gn_octets(a, n, out, errmsg) : rv;
}

bool pki_x509_oid_syntax(const char *s)
{
    if (s[0] < '0' || s[0] > '2' || s[1] != '.') {
        return false;
    }
    size_t digits = 0;
    for (const char *p = s + 2;; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
        } else if ((*p == '.' || *p == '\0') && digits > 0 && digits <= 20) {
            if (*p == '\0') {
                return true;
            }
            digits = 0;
        } else {
            return false;
        }
    }
}

static int oid_obj(const char *s, ASN1_OBJECT **out, char *errmsg)
{
    ASN1_OBJECT *o = pki_x509_oid_syntax(s) ? OBJ_txt2obj(s, 1) : NULL;
    if (o == NULL) {
        ERR_clear_error();
        cf_errmsg_printf(errmsg, "invalid OID %s", s);
        return CF_EINVAL;
    }
    *out = o;
    return CF_OK;
}

static int gn_other(const struct pki_x509_other_san *o, GENERAL_NAME **out, char *errmsg)
{
    ASN1_OBJECT *oid = NULL;
    int rv = oid_obj(o->oid, &oid, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    ASN1_UTF8STRING *str = ASN1_UTF8STRING_new();
    ASN1_TYPE *val = ASN1_TYPE_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (str == NULL || val == NULL || gn == NULL || strlen(o->value) > INT_MAX ||
        ASN1_STRING_set(str, o->value, (int)strlen(o->value)) != 1) {
        ASN1_OBJECT_free(oid);
        ASN1_UTF8STRING_free(str);
        ASN1_TYPE_free(val);
        GENERAL_NAME_free(gn);
        return oom(errmsg);
    }
    ASN1_TYPE_set(val, V_ASN1_UTF8STRING, str);
    if (GENERAL_NAME_set0_othername(gn, oid, val) != 1) {
        ASN1_OBJECT_free(oid);
        ASN1_TYPE_free(val);
        GENERAL_NAME_free(gn);
        return oom(errmsg);
    }
    *out = gn;
    return CF_OK;
}

static int push_gn(GENERAL_NAMES *gens, GENERAL_NAME *gn, char *errmsg)
{
    if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
        GENERAL_NAME_free(gn);
        return oom(errmsg);
    }
    return CF_OK;
}

static int push_ia5_list(GENERAL_NAMES *gens, int type, const struct pki_x509_strs *l, char *errmsg)
{
    for (size_t i = 0; i < l->n; i++) {
        GENERAL_NAME *gn = NULL;
        int rv = gn_ia5(type, l->v[i], &gn, errmsg);
        if (rv == CF_OK) {
            rv = push_gn(gens, gn, errmsg);
        }
        if (rv != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

/* The SAN extension value, or NULL in *out when the template has no SANs. */
static int build_sans(const struct pki_x509_template *t, GENERAL_NAMES **out, char *errmsg)
{
    *out = NULL;
    if (t->dns.n + t->email.n + t->ip.n + t->uri.n + t->n_other_sans == 0) {
        return CF_OK;
    }
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    if (gens == NULL) {
        return oom(errmsg);
    }
    /* Go's marshalSANs order: DNS, email, IP, URI, then the otherNames Vault adds. */
    int rv = push_ia5_list(gens, GEN_DNS, &t->dns, errmsg);
    if (rv == CF_OK) {
        rv = push_ia5_list(gens, GEN_EMAIL, &t->email, errmsg);
    }
    for (size_t i = 0; i < t->ip.n && rv == CF_OK; i++) {
        GENERAL_NAME *gn = NULL;
        rv = gn_ip(t->ip.v[i], &gn, errmsg);
        if (rv == CF_OK) {
            rv = push_gn(gens, gn, errmsg);
        }
    }
    if (rv == CF_OK) {
        rv = push_ia5_list(gens, GEN_URI, &t->uri, errmsg);
    }
    for (size_t i = 0; i < t->n_other_sans && rv == CF_OK; i++) {
        GENERAL_NAME *gn = NULL;
        rv = gn_other(&t->other_sans[i], &gn, errmsg);
        if (rv == CF_OK) {
            rv = push_gn(gens, gn, errmsg);
        }
    }
    if (rv != CF_OK) {
        GENERAL_NAMES_free(gens);
        return rv;
    }
    *out = gens;
    return CF_OK;
}

/* Encodes @value as extension @nid and appends it to *exts. The value stays the caller's. */
static int add_ext(STACK_OF(X509_EXTENSION) * *exts, int nid, void *value, int crit, char *errmsg)
{
    if (X509V3_add1_i2d(exts, nid, value, crit, X509V3_ADD_APPEND) != 1) {
        return cf_err_from_ossl(errmsg, "encode extension");
    }
    return CF_OK;
}

static int ext_key_usage(STACK_OF(X509_EXTENSION) * *exts, uint32_t ku, char *errmsg)
{
    if (ku == 0) {
        return CF_OK;
    }
    ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
    if (bs == NULL) {
        return oom(errmsg);
    }
    int rv = CF_OK;
    for (size_t i = 0; i < N_KU; i++) {
        if ((ku & (1u << i)) != 0 && ASN1_BIT_STRING_set_bit(bs, (int)i, 1) != 1) {
            rv = oom(errmsg);
        }
    }
    if (rv == CF_OK) {
        rv = add_ext(exts, NID_key_usage, bs, 1, errmsg);
    }
    ASN1_BIT_STRING_free(bs);
    return rv;
}

static int ext_eku(STACK_OF(X509_EXTENSION) * *exts,
                   const struct pki_x509_template *t,
                   char *errmsg)
{
    if (t->ext_key_usage == 0 && t->ext_key_usage_oids.n == 0) {
        return CF_OK;
    }
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    if (eku == NULL) {
        return oom(errmsg);
    }
    int rv = CF_OK;
    for (size_t i = 0; i < N_EKU + t->ext_key_usage_oids.n && rv == CF_OK; i++) {
        const char *oid = NULL;
        if (i < N_EKU) {
            if ((t->ext_key_usage & (1u << i)) == 0) {
                continue;
            }
            oid = eku_defs[i].oid;
        } else {
            oid = t->ext_key_usage_oids.v[i - N_EKU];
        }
        ASN1_OBJECT *o = NULL;
        rv = oid_obj(oid, &o, errmsg);
        if (rv == CF_OK && sk_ASN1_OBJECT_push(eku, o) <= 0) {
            ASN1_OBJECT_free(o);
            rv = oom(errmsg);
        }
    }
    if (rv == CF_OK) {
        rv = add_ext(exts, NID_ext_key_usage, eku, 0, errmsg);
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rv;
}

static int ext_basic_constraints(STACK_OF(X509_EXTENSION) * *exts,
                                 bool ca,
                                 int max_path_length,
                                 char *errmsg)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    if (bc == NULL) {
        return oom(errmsg);
    }
    int rv = CF_OK;
    bc->ca = ca ? 0xff : 0;
    if (ca && max_path_length >= 0) {
        bc->pathlen = ASN1_INTEGER_new();
        if (bc->pathlen == NULL || ASN1_INTEGER_set(bc->pathlen, max_path_length) != 1) {
            rv = oom(errmsg);
        }
    }
    if (rv == CF_OK) {
        rv = add_ext(exts, NID_basic_constraints, bc, 1, errmsg);
    }
    BASIC_CONSTRAINTS_free(bc);
    return rv;
}

static int ext_octets(STACK_OF(X509_EXTENSION) * *exts,
                      int nid,
                      const uint8_t *p,
                      size_t n,
                      char *errmsg)
{
    int rv = CF_OK;
    if (nid == NID_subject_key_identifier) {
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        if (os == NULL || ASN1_OCTET_STRING_set(os, p, (int)n) != 1) {
            rv = oom(errmsg);
        } else {
            rv = add_ext(exts, nid, os, 0, errmsg);
        }
        ASN1_OCTET_STRING_free(os);
        return rv;
    }
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    if (akid == NULL) {
        return oom(errmsg);
    }
    akid->keyid = ASN1_OCTET_STRING_new();
    if (akid->keyid == NULL || ASN1_OCTET_STRING_set(akid->keyid, p, (int)n) != 1) {
        rv = oom(errmsg);
    } else {
        rv = add_ext(exts, nid, akid, 0, errmsg);
    }
    AUTHORITY_KEYID_free(akid);
    return rv;
}

static int ext_aia(STACK_OF(X509_EXTENSION) * *exts,
                   const struct pki_x509_template *t,
                   char *errmsg)
{
    if (t->ocsp_servers.n + t->issuing_certificates.n == 0) {
        return CF_OK;
    }
    AUTHORITY_INFO_ACCESS *aia = sk_ACCESS_DESCRIPTION_new_null();
    if (aia == NULL) {
        return oom(errmsg);
    }
    int rv = CF_OK;
    size_t total = t->ocsp_servers.n + t->issuing_certificates.n;
    for (size_t i = 0; i < total && rv == CF_OK; i++) {
        bool ocsp = i < t->ocsp_servers.n;
        const char *url =
            ocsp ? t->ocsp_servers.v[i] : t->issuing_certificates.v[i - t->ocsp_servers.n];
        ACCESS_DESCRIPTION *ad = ACCESS_DESCRIPTION_new();
        if (ad == NULL) {
            rv = oom(errmsg);
            break;
        }
        ASN1_OBJECT_free(ad->method);
        ad->method = OBJ_nid2obj(ocsp ? NID_ad_OCSP : NID_ad_ca_issuers);
        GENERAL_NAME_free(ad->location);
        ad->location = NULL;
        rv = gn_ia5(GEN_URI, url, &ad->location, errmsg);
        if (rv == CF_OK && sk_ACCESS_DESCRIPTION_push(aia, ad) <= 0) {
            rv = oom(errmsg);
        }
        if (rv != CF_OK) {
            ACCESS_DESCRIPTION_free(ad);
        }
    }
    if (rv == CF_OK) {
        rv = add_ext(exts, NID_info_access, aia, 0, errmsg);
    }
    AUTHORITY_INFO_ACCESS_free(aia);
    return rv;
}

static int ext_crl_dp(STACK_OF(X509_EXTENSION) * *exts,
                      const struct pki_x509_strs *urls,
                      char *errmsg)
{
    if (urls->n == 0) {
        return CF_OK;
    }
    CRL_DIST_POINTS *dps = sk_DIST_POINT_new_null();
    if (dps == NULL) {
        return oom(errmsg);
    }
    int rv = CF_OK;
    for (size_t i = 0; i < urls->n && rv == CF_OK; i++) {
        DIST_POINT *dp = DIST_POINT_new();
        GENERAL_NAME *gn = NULL;
        if (dp == NULL || (dp->distpoint = DIST_POINT_NAME_new()) == NULL ||
            (dp->distpoint->name.fullname = GENERAL_NAMES_new()) == NULL) {
            DIST_POINT_free(dp);
            rv = oom(errmsg);
            break;
        }
        dp->distpoint->type = 0;
        rv = gn_ia5(GEN_URI, urls->v[i], &gn, errmsg);
        if (rv == CF_OK) {
            rv = push_gn(dp->distpoint->name.fullname, gn, errmsg);
        }
        if (rv == CF_OK && sk_DIST_POINT_push(dps, dp) <= 0) {
            rv = oom(errmsg);
        }
        if (rv != CF_OK) {
            DIST_POINT_free(dp);
        }
    }
    if (rv == CF_OK) {
        rv = add_ext(exts, NID_crl_distribution_points, dps, 0, errmsg);
    }
    CRL_DIST_POINTS_free(dps);
    return rv;
}

static int ext_policies(STACK_OF(X509_EXTENSION) * *exts,
                        const struct pki_x509_strs *oids,
                        char *errmsg)
{
    if (oids->n == 0) {
        return CF_OK;
    }
    CERTIFICATEPOLICIES *pol = sk_POLICYINFO_new_null();
    if (pol == NULL) {
        return oom(errmsg);
    }
    int rv = CF_OK;
    for (size_t i = 0; i < oids->n && rv == CF_OK; i++) {
        POLICYINFO *pi = POLICYINFO_new();
        if (pi == NULL) {
            rv = oom(errmsg);
            break;
        }
        ASN1_OBJECT_free(pi->policyid);
        pi->policyid = NULL;
        rv = oid_obj(oids->v[i], &pi->policyid, errmsg);
        if (rv == CF_OK && sk_POLICYINFO_push(pol, pi) <= 0) {
            rv = oom(errmsg);
        }
        if (rv != CF_OK) {
            POLICYINFO_free(pi);
        }
    }
    if (rv == CF_OK) {
        rv = add_ext(exts, NID_certificate_policies, pol, 0, errmsg);
    }
    CERTIFICATEPOLICIES_free(pol);
    return rv;
}

/* Appends subtrees of one kind to *subtrees (created on first use). */
static int add_subtrees(STACK_OF(GENERAL_SUBTREE) * *subtrees,
                        int kind,
                        const struct pki_x509_strs *l,
                        char *errmsg)
{
    for (size_t i = 0; i < l->n; i++) {
        if (*subtrees == NULL && (*subtrees = sk_GENERAL_SUBTREE_new_null()) == NULL) {
            return oom(errmsg);
        }
        GENERAL_NAME *gn = NULL;
        int rv =
            kind == GEN_IPADD ? gn_cidr(l->v[i], &gn, errmsg) : gn_ia5(kind, l->v[i], &gn, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
        GENERAL_SUBTREE *st = GENERAL_SUBTREE_new();
        if (st == NULL) {
            GENERAL_NAME_free(gn);
            return oom(errmsg);
        }
        GENERAL_NAME_free(st->base);
        st->base = gn;
        if (sk_GENERAL_SUBTREE_push(*subtrees, st) <= 0) {
            GENERAL_SUBTREE_free(st);
            return oom(errmsg);
        }
    }
    return CF_OK;
}

static int ext_name_constraints(STACK_OF(X509_EXTENSION) * *exts,
                                const struct pki_x509_template *t,
                                char *errmsg)
{
    const struct
    {
        bool permitted;
        int kind;
        const struct pki_x509_strs *l;
    } parts[] = {
        {true, GEN_DNS, &t->permitted_dns_domains},
        {true, GEN_IPADD, &t->permitted_ip_ranges},
        {true, GEN_EMAIL, &t->permitted_email_addresses},
        {true, GEN_URI, &t->permitted_uri_domains},
        {false, GEN_DNS, &t->excluded_dns_domains},
        {false, GEN_IPADD, &t->excluded_ip_ranges},
        {false, GEN_EMAIL, &t->excluded_email_addresses},
        {false, GEN_URI, &t->excluded_uri_domains},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        total += parts[i].l->n;
    }
    if (total == 0) {
        return CF_OK;
    }
    NAME_CONSTRAINTS *nc = NAME_CONSTRAINTS_new();
    if (nc == NULL) {
        return oom(errmsg);
    }
    int rv = CF_OK;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rv == CF_OK; i++) {
        rv = add_subtrees(parts[i].permitted ? &nc->permittedSubtrees : &nc->excludedSubtrees,
                          parts[i].kind, parts[i].l, errmsg);
    }
    if (rv == CF_OK) {
        rv = add_ext(exts, NID_name_constraints, nc, 1, errmsg);
    }
    NAME_CONSTRAINTS_free(nc);
    return rv;
}

/* SHA-1 of the subjectPublicKey bits of @x (RFC 5280 4.2.1.2 method 1). */
static int key_id(const X509 *x, uint8_t out[EVP_MAX_MD_SIZE], size_t *len, char *errmsg)
{
    unsigned int n = 0;
    if (X509_pubkey_digest(x, EVP_sha1(), out, &n) != 1) {
        return cf_err_from_ossl(errmsg, "key identifier");
    }
    *len = n;
    return CF_OK;
}

/*
 * The extensions of a certificate (x != NULL; its public key is set) or of a CSR (x == NULL:
 * SANs, KeyUsage and, when csr_bc, BasicConstraints CA:true only), in Go's order.
 */
static int build_exts(const struct pki_x509_template *t,
                      const X509 *x,
                      X509 *issuer,
                      bool csr_bc,
                      bool subject_empty,
                      STACK_OF(X509_EXTENSION) * *exts,
                      char *errmsg)
{
    int rv = ext_key_usage(exts, t->key_usage, errmsg);
    if (rv == CF_OK && x != NULL) {
        rv = ext_eku(exts, t, errmsg);
    }
    if (rv != CF_OK) {
        return rv;
    }
    if (x == NULL ? csr_bc : (t->is_ca || t->basic_constraints_valid_for_non_ca)) {
        rv = ext_basic_constraints(exts, x == NULL || t->is_ca, x == NULL ? -1 : t->max_path_length,
                                   errmsg);
        if (rv != CF_OK) {
            return rv;
        }
    }
    if (x != NULL) {
        uint8_t skid[EVP_MAX_MD_SIZE > 64 ? EVP_MAX_MD_SIZE : 64];
        size_t skid_len = 0;
        if (t->skid_len > 0) {
            if (t->skid_len > sizeof(t->skid)) {
                cf_errmsg_printf(errmsg, "subject key id too long");
                return CF_EINVAL;
            }
            memcpy(skid, t->skid, t->skid_len);
            skid_len = t->skid_len;
        } else {
            rv = key_id(x, skid, &skid_len, errmsg);
            if (rv != CF_OK) {
                return rv;
            }
        }
        rv = ext_octets(exts, NID_subject_key_identifier, skid, skid_len, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
        /* AKI: the issuer's SKI (or our own for a root); omitted when the issuer has none, as
         * Go does. */
        if (issuer == NULL) {
            rv = ext_octets(exts, NID_authority_key_identifier, skid, skid_len, errmsg);
        } else {
            const ASN1_OCTET_STRING *iskid = X509_get0_subject_key_id(issuer);
            ERR_clear_error();
            if (iskid != NULL) {
                rv = ext_octets(exts, NID_authority_key_identifier, ASN1_STRING_get0_data(iskid),
                                (size_t)ASN1_STRING_length(iskid), errmsg);
            }
        }
        if (rv == CF_OK) {
            rv = ext_aia(exts, t, errmsg);
        }
        if (rv != CF_OK) {
            return rv;
        }
    }
    GENERAL_NAMES *sans = NULL;
    rv = build_sans(t, &sans, errmsg);
    if (rv == CF_OK && sans != NULL) {
        /* RFC 5280 4.2.1.6: critical when the subject is empty. */
        rv = add_ext(exts, NID_subject_alt_name, sans, subject_empty ? 1 : 0, errmsg);
    }
    GENERAL_NAMES_free(sans);
    if (rv != CF_OK || x == NULL) {
        return rv;
    }
    rv = ext_policies(exts, &t->policy_identifiers, errmsg);
    if (rv == CF_OK) {
        rv = ext_name_constraints(exts, t, errmsg);
    }
    if (rv == CF_OK) {
        rv = ext_crl_dp(exts, &t->crl_distribution_points, errmsg);
    }
    return rv;
}

/* 159 random bits, non-zero: Go's rand.Int(rand.Reader, 2^159) as Vault draws serials. */
static int random_serial(ASN1_INTEGER *ai, const struct pki_x509_template *t, char *errmsg)
{
    uint8_t b[20];
    size_t n = sizeof(b);
    if (t->serial_len > 0) {
        if (t->serial_len > sizeof(t->serial)) {
            cf_errmsg_printf(errmsg, "serial too long");
            return CF_EINVAL;
        }
        memcpy(b, t->serial, t->serial_len);
        n = t->serial_len;
    }
    for (int tries = 0; tries < 8; tries++) {
        if (t->serial_len == 0) {
            if (cf_random(b, sizeof(b)) != CF_OK) {
                cf_errmsg_printf(errmsg, "random serial: RNG failure");
                return CF_ECRYPTO;
            }
            b[0] &= 0x7f;
        }
        BIGNUM *bn = BN_bin2bn(b, (int)n, NULL);
        if (bn == NULL) {
            return oom(errmsg);
        }
        bool zero = BN_is_zero(bn);
        ASN1_INTEGER *r = zero ? NULL : BN_to_ASN1_INTEGER(bn, ai);
        BN_free(bn);
        if (zero && t->serial_len > 0) {
            cf_errmsg_printf(errmsg, "serial must be positive");
            return CF_EINVAL;
        }
        if (!zero) {
            return r == NULL ? oom(errmsg) : CF_OK;
        }
    }
    cf_errmsg_printf(errmsg, "random serial: RNG returned zeros");
    return CF_ECRYPTO;
}

int pki_x509_cert_build(const struct pki_x509_template *t,
                        EVP_PKEY *subject_key,
                        X509 *issuer,
                        EVP_PKEY *signer,
                        X509 **out,
                        char *errmsg)
{
    int rv = CF_OK;
    X509 *x = NULL;
    X509_NAME *subj = NULL;
    EVP_MD_CTX *mctx = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    ERR_clear_error();

    if (issuer == NULL && EVP_PKEY_eq(subject_key, signer) != 1) {
        ERR_clear_error();
        cf_errmsg_printf(errmsg, "self-signed certificate: signer is not the subject key");
        return CF_EINVAL;
    }
    if (issuer != NULL && X509_check_private_key(issuer, signer) != 1) {
        ERR_clear_error();
        cf_errmsg_printf(errmsg, "issuer key does not match issuer certificate");
        return CF_EINVAL;
    }
    if (t->not_after < t->not_before) {
        cf_errmsg_printf(errmsg, "NotAfter is before NotBefore");
        return CF_EINVAL;
    }
    rv = pki_key_sign_ctx_new(signer, t->signature_bits, t->use_pss, &mctx, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    x = X509_new();
    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1) {
        rv = oom(errmsg);
        goto out;
    }
    rv = random_serial(X509_get_serialNumber(x), t, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    rv = build_name(t, &subj, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    if (X509_set_subject_name(x, subj) != 1 ||
        X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : subj) != 1 ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)t->not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)t->not_after) == NULL) {
        rv = cf_err_from_ossl(errmsg, "certificate fields");
        goto out;
    }
    if (X509_set_pubkey(x, subject_key) != 1) {
        rv = cf_err_from_ossl(errmsg, "set public key");
        goto out;
    }
    rv = build_exts(t, x, issuer, false, X509_NAME_entry_count(subj) == 0, &exts, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        if (X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1) != 1) {
            rv = cf_err_from_ossl(errmsg, "add extension");
            goto out;
        }
    }
    if (X509_sign_ctx(x, mctx) <= 0) {
        rv = cf_err_from_ossl(errmsg, "sign certificate");
        goto out;
    }
    EVP_PKEY *vk = issuer != NULL ? X509_get0_pubkey(issuer) : subject_key;
    if (vk == NULL || X509_verify(x, vk) != 1) {
        rv = cf_err_from_ossl(errmsg, "verify new certificate");
        goto out;
    }
    *out = x;
    x = NULL;
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    EVP_MD_CTX_free(mctx);
    X509_NAME_free(subj);
    X509_free(x);
    return rv;
}

int pki_x509_csr_create(const struct pki_x509_template *t,
                        EVP_PKEY *key,
                        bool add_basic_constraints,
                        X509_REQ **out,
                        char *errmsg)
{
    int rv = CF_OK;
    X509_REQ *req = NULL;
    X509_NAME *subj = NULL;
    EVP_MD_CTX *mctx = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    ERR_clear_error();
    rv = pki_key_sign_ctx_new(key, t->signature_bits, t->use_pss, &mctx, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    req = X509_REQ_new();
    if (req == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1) {
        rv = oom(errmsg);
        goto out;
    }
    rv = build_name(t, &subj, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    if (X509_REQ_set_subject_name(req, subj) != 1 || X509_REQ_set_pubkey(req, key) != 1) {
        rv = cf_err_from_ossl(errmsg, "request fields");
        goto out;
    }
    rv = build_exts(t, NULL, NULL, add_basic_constraints, X509_NAME_entry_count(subj) == 0, &exts,
                    errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    if (sk_X509_EXTENSION_num(exts) > 0 && X509_REQ_add_extensions(req, exts) != 1) {
        rv = cf_err_from_ossl(errmsg, "add extensions");
        goto out;
    }
    if (X509_REQ_sign_ctx(req, mctx) <= 0) {
        rv = cf_err_from_ossl(errmsg, "sign request");
        goto out;
    }
    *out = req;
    req = NULL;
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    EVP_MD_CTX_free(mctx);
    X509_NAME_free(subj);
    X509_REQ_free(req);
    return rv;
}

/* ---- parsing ---- */

/* One PEM block read from a BIO. */
struct pem_block
{
    char *name;
    char *header;
    unsigned char *data;
    long len;
};

static void pem_block_clear(struct pem_block *b)
{
    OPENSSL_free(b->name);
    OPENSSL_free(b->header);
    OPENSSL_clear_free(b->data, b->len > 0 ? (size_t)b->len : 0);
    memset(b, 0, sizeof(*b));
}

/* 1 = block read, 0 = no more blocks, -1 = a damaged block. */
static int pem_next(BIO *bio, struct pem_block *b)
{
    pem_block_clear(b);
    if (PEM_read_bio(bio, &b->name, &b->header, &b->data, &b->len) == 1) {
        return 1;
    }
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE ? 0 : -1;
}

static BIO *mem_bio(const char *pem, size_t len, char *errmsg, int *rv)
{
    if (len > INT_MAX) {
        cf_errmsg_printf(errmsg, "PEM data too big");
        *rv = CF_ETOOBIG;
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        *rv = oom(errmsg);
    }
    return bio;
}

/* The signature algorithms Go's CertificateRequest.CheckSignature accepts (Vault refuses the
 * rest as an invalid signature): RSA PKCS#1 v1.5 and ECDSA with SHA-1/256/384/512, RSA-PSS and
 * Ed25519. MD5, SHA-224 and DSA signatures are refused. */
static bool csr_sig_alg_ok(const X509_REQ *req)
{
    int nid = X509_REQ_get_signature_nid(req);
    if (nid == NID_rsassaPss || nid == NID_ED25519) {
        return true;
    }
    int md = NID_undef;
    int pk = NID_undef;
    if (OBJ_find_sigid_algs(nid, &md, &pk) != 1) {
        return false;
    }
    bool md_ok = md == NID_sha1 || md == NID_sha256 || md == NID_sha384 || md == NID_sha512;
    return md_ok && (pk == NID_rsaEncryption || pk == NID_X9_62_id_ecPublicKey);
}

/* Decodes the request's DER: in the provider-less context with the key built from its
 * parameters when that covers the key, else with OpenSSL's decoders. NULL *req on bad DER. */
static int csr_decode(const uint8_t *der, long len, X509_REQ **req, EVP_PKEY **key, char *errmsg)
{
    OSSL_LIB_CTX *bare = pki_key_bare_libctx();
    for (int pass = bare != NULL ? 0 : 1; pass < 2; pass++) {
        const unsigned char *p = der;
        *req = pass == 0 ? (X509_REQ *)ASN1_item_d2i_ex(NULL, &p, len, ASN1_ITEM_rptr(X509_REQ),
                                                        bare, NULL)
                         : d2i_X509_REQ(NULL, &p, len);
        if (*req == NULL) {
            cf_err_from_ossl(errmsg, "decode");
            cf_errmsg_wrapf(errmsg, "certificate request could not be parsed");
            return CF_EMALFORMED;
        }
        if (p != der + len) {
            cf_errmsg_printf(errmsg, "certificate request could not be parsed: trailing data");
            return CF_EMALFORMED;
        }
        ERR_clear_error();
        if (pass == 0 && pki_key_from_spki_params(X509_REQ_get_X509_PUBKEY(*req), key) == CF_OK) {
            return CF_OK;
        }
        if (pass == 1) {
            *key = X509_REQ_get0_pubkey(*req);
            if (*key == NULL || EVP_PKEY_up_ref(*key) != 1) {
                ERR_clear_error();
                *key = NULL;
                cf_errmsg_printf(errmsg,
                                 "certificate request could not be parsed: public key could not "
                                 "be decoded");
                return CF_EMALFORMED;
            }
            return CF_OK;
        }
        X509_REQ_free(*req);
        *req = NULL;
    }
    return CF_EMALFORMED; /* not reached */
}

int pki_x509_csr_parse(const char *pem, size_t len, X509_REQ **out, EVP_PKEY **key, char *errmsg)
{
    int rv = CF_OK;
    X509_REQ *req = NULL;
    EVP_PKEY *pk = NULL;
    struct pem_block b = {0};
    ERR_clear_error();
    BIO *bio = mem_bio(pem, len, errmsg, &rv);
    if (bio == NULL) {
        return rv;
    }
    if (pem_next(bio, &b) != 1) {
        cf_errmsg_printf(errmsg, "csr contains no data");
        rv = CF_EMALFORMED;
        goto out;
    }
    if (strcmp(b.name, "CERTIFICATE REQUEST") != 0 &&
        strcmp(b.name, "NEW CERTIFICATE REQUEST") != 0) {
        cf_errmsg_printf(errmsg,
                         "certificate request could not be parsed: PEM block type %s is not a "
                         "certificate request",
                         b.name);
        rv = CF_EMALFORMED;
        goto out;
    }
    rv = csr_decode(b.data, b.len, &req, &pk, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    if (pem_next(bio, &b) != 0) {
        cf_errmsg_printf(errmsg, "csr contains more than one PEM block");
        rv = CF_EMALFORMED;
        goto out;
    }
    /* Verified in the default context whichever context the request was parsed in. */
    if (!csr_sig_alg_ok(req) || X509_REQ_verify_ex(req, pk, NULL, NULL) != 1) {
        ERR_clear_error();
        cf_errmsg_printf(errmsg, "request signature invalid");
        rv = CF_EMALFORMED;
        goto out;
    }
    *out = req;
    *key = pk;
    req = NULL;
    pk = NULL;
out:
    pem_block_clear(&b);
    X509_REQ_free(req);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return rv;
}

static int bad_ext(const char *what, char *errmsg)
{
    ERR_clear_error();
    cf_errmsg_printf(errmsg, "certificate request could not be parsed: bad %s extension", what);
    return CF_EMALFORMED;
}

/* Copies an ASN1 string that must not hold NUL bytes. */
static int str_copy(const ASN1_STRING *s, char **out)
{
    const unsigned char *p = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);
    if (n < 0 || memchr(p, '\0', (size_t)n) != NULL) {
        return CF_EMALFORMED;
    }
    *out = cf_strndup((const char *)p, (size_t)n);
    return *out == NULL ? CF_ENOMEM : CF_OK;
}

static int strs_add_asn1(struct pki_x509_strs *l, const ASN1_STRING *s)
{
    char *c = NULL;
    int rv = str_copy(s, &c);
    if (rv == CF_OK) {
        rv = pki_x509_strs_add(l, c);
        cf_free(c);
    }
    return rv;
}

static int read_subject(X509_NAME *n, struct pki_x509_template *t, char *errmsg)
{
    for (int i = 0; i < X509_NAME_entry_count(n); i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(n, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(e);
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, d);
        if (len < 0) {
            return bad_ext("subject", errmsg);
        }
        int rv = CF_OK;
        if (memchr(utf8, '\0', (size_t)len) != NULL) {
            rv = CF_EMALFORMED;
        } else {
            const char *v = (const char *)utf8;
            char **single = NULL;
            struct pki_x509_strs *list = NULL;
            switch (nid) {
                case NID_commonName:
                    single = &t->common_name;
                    break;
                case NID_serialNumber:
                    single = &t->serial_number;
                    break;
                case NID_countryName:
                    list = &t->country;
                    break;
                case NID_organizationName:
                    list = &t->organization;
                    break;
                case NID_organizationalUnitName:
                    list = &t->ou;
                    break;
                case NID_localityName:
                    list = &t->locality;
                    break;
                case NID_stateOrProvinceName:
                    list = &t->province;
                    break;
                case NID_streetAddress:
                    list = &t->street_address;
                    break;
                case NID_postalCode:
                    list = &t->postal_code;
                    break;
                case NID_userId:
                    list = &t->user_ids;
                    break;
                default:
                    break;
            }
            if (single != NULL) {
                char *c = cf_strdup(v);
                if (c == NULL) {
                    rv = CF_ENOMEM;
                } else {
                    cf_free(*single);
                    *single = c;
                }
            } else if (list != NULL) {
                rv = pki_x509_strs_add(list, v);
            }
        }
        OPENSSL_free(utf8);
        if (rv == CF_ENOMEM) {
            return oom(errmsg);
        }
        if (rv != CF_OK) {
            return bad_ext("subject", errmsg);
        }
    }
    return CF_OK;
}

static int read_sans(GENERAL_NAMES *gens, struct pki_x509_template *t, char *errmsg)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        int rv = CF_OK;
        switch (gn->type) {
            case GEN_DNS:
                rv = strs_add_asn1(&t->dns, gn->d.dNSName);
                break;
            case GEN_EMAIL:
                rv = strs_add_asn1(&t->email, gn->d.rfc822Name);
                break;
            case GEN_URI:
                rv = strs_add_asn1(&t->uri, gn->d.uniformResourceIdentifier);
                break;
            case GEN_IPADD: {
                char text[INET6_ADDRSTRLEN];
                int n = ASN1_STRING_length(gn->d.iPAddress);
                const unsigned char *p = ASN1_STRING_get0_data(gn->d.iPAddress);
                if ((n != 4 && n != 16) ||
                    inet_ntop(n == 4 ? AF_INET : AF_INET6, p, text, sizeof(text)) == NULL) {
                    rv = CF_EMALFORMED;
                } else {
                    rv = pki_x509_strs_add(&t->ip, text);
                }
                break;
            }
            case GEN_OTHERNAME: {
                ASN1_TYPE *v = gn->d.otherName->value;
                if (v == NULL || v->type != V_ASN1_UTF8STRING) {
                    break;
                }
                char oid[128];
                int on = OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id, 1);
                char *val = NULL;
                if (on <= 0 || (size_t)on >= sizeof(oid)) {
                    rv = CF_EMALFORMED;
                } else {
                    rv = str_copy(v->value.utf8string, &val);
                }
                if (rv == CF_OK) {
                    rv = pki_x509_template_add_other_san(t, oid, val);
                }
                cf_free(val);
                break;
            }
            default:
                break;
        }
        if (rv == CF_ENOMEM) {
            return oom(errmsg);
        }
        if (rv != CF_OK) {
            return bad_ext("subject alternative name", errmsg);
        }
    }
    return CF_OK;
}

/* Decodes extension @nid from @exts: CF_OK with *out NULL when absent. */
static int get_ext(STACK_OF(X509_EXTENSION) * exts,
                   int nid,
                   const char *what,
                   void **out,
                   char *errmsg)
{
    int crit = -1;
    *out = X509V3_get_d2i(exts, nid, &crit, NULL);
    if (*out == NULL && crit != -1) {
        return bad_ext(what, errmsg);
    }
    return CF_OK;
}

int pki_x509_csr_read(X509_REQ *req, struct pki_x509_template *t, char *errmsg)
{
    int rv = CF_OK;
    GENERAL_NAMES *sans = NULL;
    ASN1_BIT_STRING *ku = NULL;
    EXTENDED_KEY_USAGE *eku = NULL;
    BASIC_CONSTRAINTS *bc = NULL;
    ERR_clear_error();
    rv = read_subject(X509_REQ_get_subject_name(req), t, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    ERR_clear_error();
    if (exts == NULL) {
        return CF_OK;
    }
    void *v = NULL;
    rv = get_ext(exts, NID_subject_alt_name, "subject alternative name", &v, errmsg);
    sans = v;
    if (rv == CF_OK) {
        rv = get_ext(exts, NID_key_usage, "key usage", &v, errmsg);
        ku = v;
    }
    if (rv == CF_OK) {
        rv = get_ext(exts, NID_ext_key_usage, "extended key usage", &v, errmsg);
        eku = v;
    }
    if (rv == CF_OK) {
        rv = get_ext(exts, NID_basic_constraints, "basic constraints", &v, errmsg);
        bc = v;
    }
    if (rv != CF_OK) {
        goto out;
    }
    if (sans != NULL) {
        rv = read_sans(sans, t, errmsg);
        if (rv != CF_OK) {
            goto out;
        }
    }
    if (ku != NULL) {
        for (size_t i = 0; i < N_KU; i++) {
            if (ASN1_BIT_STRING_get_bit(ku, (int)i)) {
                t->key_usage |= 1u << i;
            }
        }
    }
    for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
        char oid[128];
        int on = OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_OBJECT_value(eku, i), 1);
        if (on <= 0 || (size_t)on >= sizeof(oid)) {
            rv = bad_ext("extended key usage", errmsg);
            goto out;
        }
        size_t k = 0;
        while (k < N_EKU && strcmp(eku_defs[k].oid, oid) != 0) {
            k++;
        }
        if (k < N_EKU) {
            t->ext_key_usage |= 1u << k;
        } else if (pki_x509_strs_add(&t->ext_key_usage_oids, oid) != CF_OK) {
            rv = oom(errmsg);
            goto out;
        }
    }
    if (bc != NULL) {
        t->has_basic_constraints = true;
        t->is_ca = bc->ca != 0;
        if (bc->pathlen != NULL) {
            long pl = ASN1_INTEGER_get(bc->pathlen);
            if (pl < 0 || pl > INT_MAX) {
                rv = bad_ext("basic constraints", errmsg);
                goto out;
            }
            t->max_path_length = (int)pl;
        }
    }
out:
    GENERAL_NAMES_free(sans);
    ASN1_BIT_STRING_free(ku);
    EXTENDED_KEY_USAGE_free(eku);
    BASIC_CONSTRAINTS_free(bc);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rv;
}

/* ---- output ---- */

/* Copies a memory BIO's text without its final newline. */
static int bio_text(BIO *b, char **out, char *errmsg)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    while (n > 0 && p[n - 1] == '\n') {
        n--;
    }
    char *s = cf_strndup(p, (size_t)n);
    if (s == NULL) {
        return oom(errmsg);
    }
    *out = s;
    return CF_OK;
}

int pki_x509_csr_to_pem(X509_REQ *req, char **out, char *errmsg)
{
    ERR_clear_error();
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) {
        return oom(errmsg);
    }
    int rv = PEM_write_bio_X509_REQ(b, req) == 1 ? bio_text(b, out, errmsg)
                                                 : cf_err_from_ossl(errmsg, "encode request");
    BIO_free(b);
    return rv;
}

int pki_x509_cert_to_pem(const X509 *x, char **out, char *errmsg)
{
    ERR_clear_error();
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) {
        return oom(errmsg);
    }
    int rv = PEM_write_bio_X509(b, x) == 1 ? bio_text(b, out, errmsg)
                                           : cf_err_from_ossl(errmsg, "encode certificate");
    BIO_free(b);
    return rv;
}

int pki_x509_cert_to_der(const X509 *x, uint8_t **der, size_t *len, char *errmsg)
{
    ERR_clear_error();
    unsigned char *p = NULL;
    int n = i2d_X509(x, &p);
    if (n <= 0 || p == NULL) {
        return cf_err_from_ossl(errmsg, "encode certificate");
    }
    *der = cf_memdup(p, (size_t)n);
    OPENSSL_free(p);
    if (*der == NULL) {
        return oom(errmsg);
    }
    *len = (size_t)n;
    return CF_OK;
}

int pki_x509_cert_to_base64(const X509 *x, char **out, char *errmsg)
{
    uint8_t *der = NULL;
    size_t len = 0;
    int rv = pki_x509_cert_to_der(x, &der, &len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    *out = cf_base64_encode(der, len);
    cf_free(der);
    return *out == NULL ? oom(errmsg) : CF_OK;
}

int pki_x509_cert_from_der(const uint8_t *der, size_t len, X509 **out, char *errmsg)
{
    ERR_clear_error();
    if (len > LONG_MAX) {
        cf_errmsg_printf(errmsg, "certificate could not be parsed: too big");
        return CF_ETOOBIG;
    }
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        cf_err_from_ossl(errmsg, "decode");
        cf_errmsg_wrapf(errmsg, "certificate could not be parsed");
        return CF_EMALFORMED;
    }
    if (p != der + len) {
        X509_free(x);
        cf_errmsg_printf(errmsg, "certificate could not be parsed: trailing data");
        return CF_EMALFORMED;
    }
    *out = x;
    return CF_OK;
}

/* ---- bundles and chains ---- */

void pki_x509_bundle_close(struct pki_x509_bundle *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n_certs; i++) {
        X509_free(b->certs[i]);
    }
    for (size_t i = 0; i < b->n_keys; i++) {
        EVP_PKEY_free(b->keys[i]);
    }
    cf_free(b->certs);
    cf_free(b->keys);
    memset(b, 0, sizeof(*b));
}

/* Makes room for one more element in a pointer array of n (typed per caller). */
#define GROW(arr, n, rv, errmsg)                                    \
    do {                                                            \
        __typeof__(arr) grown_ = NULL;                              \
        if ((n) < SIZE_MAX / sizeof(*(arr)) - 1) {                  \
            grown_ = cf_realloc((arr), ((n) + 1) * sizeof(*(arr))); \
        }                                                           \
        if (grown_ == NULL) {                                       \
            (rv) = oom(errmsg);                                     \
        } else {                                                    \
            (arr) = grown_;                                         \
        }                                                           \
    } while (0)

int pki_x509_bundle_parse(const char *pem, size_t len, struct pki_x509_bundle *out, char *errmsg)
{
    memset(out, 0, sizeof(*out));
    int rv = CF_OK;
    struct pem_block b = {0};
    ERR_clear_error();
    BIO *bio = mem_bio(pem, len, errmsg, &rv);
    if (bio == NULL) {
        return rv;
    }
    size_t blocks = 0;
    for (;;) {
        int r = pem_next(bio, &b);
        if (r == 0 && blocks > 0) {
            break;
        }
        if (r != 1) {
            cf_errmsg_printf(errmsg,
                             r == 0 ? "no data found in PEM block" : "failed to decode PEM block");
            rv = CF_EMALFORMED;
            goto out;
        }
        blocks++;
        if (strcmp(b.name, "EC PARAMETERS") == 0) {
            continue;
        }
        if (strcmp(b.name, "CERTIFICATE") == 0) {
            X509 *x = NULL;
            GROW(out->certs, out->n_certs, rv, errmsg);
            if (rv == CF_OK) {
                rv = pki_x509_cert_from_der(b.data, (size_t)b.len, &x, errmsg);
            }
            if (rv != CF_OK) {
                goto out;
            }
            out->certs[out->n_certs++] = x;
            continue;
        }
        if (strstr(b.header, "ENCRYPTED") != NULL || strcmp(b.name, "ENCRYPTED PRIVATE KEY") == 0) {
            cf_errmsg_printf(errmsg, "encrypted private keys are not supported");
            rv = CF_EUNSUPPORTED;
            goto out;
        }
        EVP_PKEY *k = NULL;
        GROW(out->keys, out->n_keys, rv, errmsg);
        if (rv == CF_OK) {
            rv = pki_key_from_der(b.name, b.data, (size_t)b.len, &k, errmsg);
        }
        if (rv != CF_OK) {
            goto out;
        }
        out->keys[out->n_keys++] = k;
    }
    if (out->n_certs + out->n_keys == 0) {
        cf_errmsg_printf(errmsg, "no data found in PEM block");
        rv = CF_EMALFORMED;
    }
out:
    pem_block_clear(&b);
    BIO_free(bio);
    return rv;
}

int pki_x509_cert_from_pem(const char *pem, size_t len, X509 **out, char *errmsg)
{
    struct pki_x509_bundle b;
    int rv = pki_x509_bundle_parse(pem, len, &b, errmsg);
    if (rv == CF_OK && (b.n_certs != 1 || b.n_keys != 0)) {
        cf_errmsg_printf(errmsg, "%zu certificates found in PEM file, expected 1", b.n_certs);
        rv = CF_EINVAL;
    }
    if (rv == CF_OK) {
        *out = b.certs[0];
        b.n_certs = 0;
    }
    pki_x509_bundle_close(&b);
    return rv;
}

void pki_x509_chain_close(struct pki_x509_chain *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        X509_free(c->v[i]);
    }
    CF_FREE(c->v);
    c->n = 0;
}

int pki_x509_chain_build(X509 *leaf,
                         X509 *const *pool,
                         size_t n_pool,
                         struct pki_x509_chain *out,
                         char *errmsg)
{
    out->n = 0;
    out->v = NULL;
    if (n_pool >= SIZE_MAX / sizeof(X509 *) - 1) {
        return oom(errmsg);
    }
    out->v = cf_calloc(n_pool + 1, sizeof(X509 *));
    if (out->v == NULL) {
        return oom(errmsg);
    }
    X509_up_ref(leaf);
    out->v[out->n++] = leaf;
    X509 *cur = leaf;
    while (!pki_x509_is_self_issued(cur) && out->n < n_pool + 1) {
        X509 *next = NULL;
        for (size_t i = 0; i < n_pool && next == NULL; i++) {
            bool seen = false;
            for (size_t k = 0; k < out->n && !seen; k++) {
                seen = X509_cmp(out->v[k], pool[i]) == 0;
            }
            if (seen || X509_check_issued(pool[i], cur) != X509_V_OK) {
                continue;
            }
            EVP_PKEY *pk = X509_get0_pubkey(pool[i]);
            if (pk != NULL && X509_verify(cur, pk) == 1) {
                next = pool[i];
            }
        }
        ERR_clear_error();
        if (next == NULL) {
            break;
        }
        X509_up_ref(next);
        out->v[out->n++] = next;
        cur = next;
    }
    return CF_OK;
}

/* ---- readers ---- */

bool pki_x509_is_ca(const X509 *x)
{
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    bool ca = bc != NULL && bc->ca != 0;
    BASIC_CONSTRAINTS_free(bc);
    ERR_clear_error();
    return ca;
}

bool pki_x509_is_self_issued(const X509 *x)
{
    const unsigned char *a = NULL;
    const unsigned char *b = NULL;
    size_t alen = 0;
    size_t blen = 0;
    if (X509_NAME_get0_der(X509_get_subject_name(x), &a, &alen) != 1 ||
        X509_NAME_get0_der(X509_get_issuer_name(x), &b, &blen) != 1) {
        ERR_clear_error();
        return false;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

static int asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        ERR_clear_error();
        return CF_EMALFORMED;
    }
    *out = (int64_t)timegm(&tm);
    return CF_OK;
}

int pki_x509_not_before(const X509 *x, int64_t *out)
{
    return asn1_time_unix(X509_get0_notBefore(x), out);
}

int pki_x509_not_after(const X509 *x, int64_t *out)
{
    return asn1_time_unix(X509_get0_notAfter(x), out);
}

int pki_x509_serial_hex(const X509 *x, char out[PKI_X509_SERIAL_HEX_SIZE], char *errmsg)
{
    const ASN1_INTEGER *ai = X509_get0_serialNumber(x);
    BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
    if (bn == NULL) {
        return cf_err_from_ossl(errmsg, "serial");
    }
    uint8_t b[32];
    int n = BN_num_bytes(bn);
    if (n > (int)sizeof(b)) {
        BN_free(bn);
        cf_errmsg_printf(errmsg, "serial number longer than %zu bytes", sizeof(b));
        return CF_ETOOBIG;
    }
    BN_bn2bin(bn, b);
    BN_free(bn);
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            *p++ = ':';
        }
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0xf];
    }
    *p = '\0';
    return CF_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int pki_x509_serial_normalize(const char *in, char out[PKI_X509_SERIAL_HEX_SIZE], char *errmsg)
{
    size_t n = strlen(in);
    bool ok = n >= 2 && (n + 1) % 3 == 0 && n < PKI_X509_SERIAL_HEX_SIZE;
    char sep = n > 2 ? in[2] : ':';
    for (size_t i = 0; ok && i < n; i++) {
        if (i % 3 == 2) {
            ok = in[i] == sep && (sep == ':' || sep == '-');
        } else {
            ok = hexval(in[i]) >= 0;
        }
    }
    if (!ok) {
        cf_errmsg_printf(errmsg, "invalid serial number %.60s", in);
        return CF_EINVAL;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[i] = i % 3 == 2 ? ':' : hex[hexval(in[i])];
    }
    out[n] = '\0';
    return CF_OK;
}
