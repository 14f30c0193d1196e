/*
 * Leaf certificates written as DER directly (engines/pki/cert_der.h).
 *
 * The layout follows RFC 5280 4.1 and the extension order and encodings of
 * pki_x509_cert_build (x509.c), which follows Go's x509.CreateCertificate as Vault uses it:
 * KeyUsage, ExtKeyUsage, BasicConstraints, SubjectKeyIdentifier, AuthorityKeyIdentifier,
 * AuthorityInfoAccess, SubjectAltName, CertificatePolicies, NameConstraints,
 * CRLDistributionPoints. Nested elements are opened and closed in place (der.h), so the whole
 * certificate is one buffer with no intermediate objects.
 */
#include "engines/pki/cert_der.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include "engines/pki/der.h"
#include "engines/pki/key.h"
#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"

/* GeneralName tags (RFC 5280 4.2.1.6). */
#define GN_OTHER PKI_DER_CONTEXT(0)
#define GN_EMAIL PKI_DER_IMPLICIT(1)
#define GN_DNS PKI_DER_IMPLICIT(2)
#define GN_URI PKI_DER_IMPLICIT(6)
#define GN_IP PKI_DER_IMPLICIT(7)

/* A dotted OID from a request (policy, EKU, otherName type). */
static int put_oid_text(struct cf_buf *b, const char *s, char *errmsg)
{
    ASN1_OBJECT *o = pki_x509_oid_syntax(s) ? OBJ_txt2obj(s, 1) : NULL;
    if (o == NULL) {
        ERR_clear_error();
        cf_errmsg_printf(errmsg, "invalid OID %s", s);
        return CF_EINVAL;
    }
    int rv = pki_der_put(b, PKI_DER_OID, OBJ_get0_data(o), OBJ_length(o));
    ASN1_OBJECT_free(o);
    return rv;
}

/* UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5). */
static int put_time(struct cf_buf *b, int64_t t, char *errmsg)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 > 9999) {
        cf_errmsg_printf(errmsg, "certificate time out of range");
        return CF_EINVAL;
    }
    int year = tm.tm_year + 1900;
    char s[32];
    bool utc = year >= 1950 && year < 2050;
    int n = snprintf(s, sizeof(s), utc ? "%02d%02d%02d%02d%02d%02dZ" : "%04d%02d%02d%02d%02d%02dZ",
                     utc ? year % 100 : year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
    return pki_der_put(b, utc ? PKI_DER_UTCTIME : PKI_DER_GENERALIZEDTIME, s, (size_t)n);
}

/* Name ------------------------------------------------------------------------------------- */

struct enc
{
    size_t off;
    size_t len;
    const uint8_t *base;
};

/* DER order of SET OF members: bytewise, a prefix first (OpenSSL's and X.690's rule). */
static int enc_cmp(const void *a, const void *b)
{
    const struct enc *x = a;
    const struct enc *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->base + x->off, y->base + y->off, n);
    if (c != 0) {
        return c;
    }
    return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

static int put_atv(struct cf_buf *b, int nid, const char *v)
{
    size_t m = 0;
    int rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    if (rv == CF_OK) {
        rv = pki_der_put_oid(b, nid);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(b, pki_x509_printable(v) ? PKI_DER_PRINTABLESTRING : PKI_DER_UTF8STRING, v,
                         strlen(v));
    }
    return rv == CF_OK ? pki_der_close(b, m) : rv;
}

/* Several values of one attribute as one RDN (a SET sorted in DER order). */
static int put_multi_rdn(struct cf_buf *b, int nid, const char *const *vals, size_t count)
{
    size_t live = 0;
    for (size_t i = 0; i < count; i++) {
        live += vals[i] != NULL && vals[i][0] != '\0';
    }
    if (live == 0) {
        return CF_OK;
    }
    size_t m = 0;
    int rv = pki_der_open(b, PKI_DER_SET, &m);
    if (rv != CF_OK || live == 1) {
        for (size_t i = 0; rv == CF_OK && i < count; i++) {
            if (vals[i] != NULL && vals[i][0] != '\0') {
                rv = put_atv(b, nid, vals[i]);
            }
        }
        return rv == CF_OK ? pki_der_close(b, m) : rv;
    }
    struct cf_buf tmp;
    cf_buf_init(&tmp);
    struct enc *e = cf_calloc(live, sizeof(*e));
    size_t k = 0;
    rv = e == NULL ? CF_ENOMEM : CF_OK;
    for (size_t i = 0; rv == CF_OK && i < count; i++) {
        if (vals[i] == NULL || vals[i][0] == '\0') {
            continue;
        }
        e[k].off = tmp.len;
        rv = put_atv(&tmp, nid, vals[i]);
        e[k].len = tmp.len - e[k].off;
        k++;
    }
    if (rv == CF_OK) {
        for (size_t i = 0; i < k; i++) {
            e[i].base = tmp.data;
        }
        qsort(e, k, sizeof(*e), enc_cmp);
        for (size_t i = 0; rv == CF_OK && i < k; i++) {
            rv = cf_buf_append(b, tmp.data + e[i].off, e[i].len);
        }
    }
    cf_free(e);
    cf_buf_close(&tmp);
    return rv == CF_OK ? pki_der_close(b, m) : rv;
}

/* The subject in Go's RDN order; *empty tells whether it has no attribute at all. */
static int put_name(struct cf_buf *b, const struct pki_x509_template *t, bool *empty)
{
    const char *cn = t->common_name;
    const char *sn = t->serial_number;
    const struct
    {
        int nid;
        const char *const *v;
        size_t n;
    } parts[] = {
        {NID_countryName, (const char *const *)t->country.v, t->country.n},
        {NID_organizationName, (const char *const *)t->organization.v, t->organization.n},
        {NID_organizationalUnitName, (const char *const *)t->ou.v, t->ou.n},
        {NID_localityName, (const char *const *)t->locality.v, t->locality.n},
        {NID_stateOrProvinceName, (const char *const *)t->province.v, t->province.n},
        {NID_streetAddress, (const char *const *)t->street_address.v, t->street_address.n},
        {NID_postalCode, (const char *const *)t->postal_code.v, t->postal_code.n},
        {NID_serialNumber, &sn, 1},
        {NID_commonName, &cn, 1},
    };
    size_t m = 0;
    int rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    size_t start = b->len;
    for (size_t i = 0; rv == CF_OK && i < sizeof(parts) / sizeof(parts[0]); i++) {
        rv = put_multi_rdn(b, parts[i].nid, parts[i].v, parts[i].n);
    }
    /* User IDs: one RDN each. */
    for (size_t i = 0; rv == CF_OK && i < t->user_ids.n; i++) {
        const char *v = t->user_ids.v[i];
        rv = put_multi_rdn(b, NID_userId, &v, 1);
    }
    *empty = b->len == start;
    return rv == CF_OK ? pki_der_close(b, m) : rv;
}

/* General names -------------------------------------------------------------------------- */

static int put_ia5(struct cf_buf *b, uint8_t tag, const char *s, char *errmsg)
{
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80) {
            cf_errmsg_printf(errmsg, "the value \"%s\" contains non-ASCII characters", s);
            return CF_EINVAL;
        }
    }
    return pki_der_put(b, tag, s, strlen(s));
}

static int put_ia5_list(struct cf_buf *b, uint8_t tag, const struct pki_x509_strs *l, char *errmsg)
{
    int rv = CF_OK;
    for (size_t i = 0; rv == CF_OK && i < l->n; i++) {
        rv = put_ia5(b, tag, l->v[i], errmsg);
    }
    return rv;
}

static int put_ip(struct cf_buf *b, const char *s, char *errmsg)
{
    uint8_t a[16];
    size_t n = pki_x509_parse_ip(s, a);
    if (n == 0) {
        cf_errmsg_printf(errmsg, "the value \"%s\" is not a valid IP address", s);
        return CF_EINVAL;
    }
    return pki_der_put(b, GN_IP, a, n);
}

/* otherName: type-id and a [0] EXPLICIT UTF8String value. */
static int put_other(struct cf_buf *b, const struct pki_x509_other_san *o, char *errmsg)
{
    size_t m = 0;
    size_t mv = 0;
    int rv = pki_der_open(b, GN_OTHER, &m);
    if (rv == CF_OK) {
        rv = put_oid_text(b, o->oid, errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_CONTEXT(0), &mv);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(b, PKI_DER_UTF8STRING, o->value, strlen(o->value));
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, mv);
    }
    return rv == CF_OK ? pki_der_close(b, m) : rv;
}

/* Extensions ------------------------------------------------------------------------------ */

/* Opens Extension { extnID, critical (only when TRUE), extnValue OCTET STRING { ... } }. */
static int ext_open(struct cf_buf *b, int nid, bool critical, size_t marks[2])
{
    static const uint8_t crit[] = {PKI_DER_BOOLEAN, 1, 0xff};
    int rv = pki_der_open(b, PKI_DER_SEQUENCE, &marks[0]);
    if (rv == CF_OK) {
        rv = pki_der_put_oid(b, nid);
    }
    if (rv == CF_OK && critical) {
        rv = cf_buf_append(b, crit, sizeof(crit));
    }
    return rv == CF_OK ? pki_der_open(b, PKI_DER_OCTET_STRING, &marks[1]) : rv;
}

static int ext_close(struct cf_buf *b, const size_t marks[2])
{
    int rv = pki_der_close(b, marks[1]);
    return rv == CF_OK ? pki_der_close(b, marks[0]) : rv;
}

/* An extension whose value is one element already encoded. */
static int ext_simple(struct cf_buf *b,
                      int nid,
                      bool critical,
                      uint8_t tag,
                      const void *p,
                      size_t n)
{
    size_t marks[2];
    int rv = ext_open(b, nid, critical, marks);
    if (rv == CF_OK) {
        rv = pki_der_put(b, tag, p, n);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

static int ext_key_usage(struct cf_buf *b, uint32_t ku)
{
    uint8_t bytes[2] = {0, 0};
    for (unsigned i = 0; (1u << i) <= PKI_KU_DECIPHER_ONLY; i++) {
        if ((ku & (1u << i)) != 0) {
            bytes[i / 8] |= (uint8_t)(0x80 >> (i % 8));
        }
    }
    size_t len = bytes[1] != 0 ? 2 : 1;
    uint8_t last = bytes[len - 1];
    uint8_t unused = 0;
    while (unused < 7 && (last & (1u << unused)) == 0) {
        unused++;
    }
    uint8_t body[3] = {unused, bytes[0], bytes[1]};
    return ext_simple(b, NID_key_usage, true, PKI_DER_BIT_STRING, body, len + 1);
}

static int ext_eku(struct cf_buf *b, const struct pki_x509_template *t, char *errmsg)
{
    size_t marks[2];
    size_t m = 0;
    int rv = ext_open(b, NID_ext_key_usage, false, marks);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    for (unsigned i = 0; rv == CF_OK && pki_x509_eku_nid(i) != NID_undef; i++) {
        if ((t->ext_key_usage & (1u << i)) != 0) {
            rv = pki_der_put_oid(b, pki_x509_eku_nid(i));
        }
    }
    for (size_t i = 0; rv == CF_OK && i < t->ext_key_usage_oids.n; i++) {
        rv = put_oid_text(b, t->ext_key_usage_oids.v[i], errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

static int ext_basic_constraints(struct cf_buf *b, const struct pki_x509_template *t)
{
    static const uint8_t ca_true[] = {PKI_DER_BOOLEAN, 1, 0xff};
    uint8_t body[16];
    size_t n = 0;
    if (t->is_ca) {
        memcpy(body, ca_true, sizeof(ca_true));
        n = sizeof(ca_true);
        if (t->max_path_length >= 0) {
            struct cf_buf tmp;
            cf_buf_init(&tmp);
            int rv = pki_der_put_uint(&tmp, (unsigned)t->max_path_length);
            if (rv != CF_OK || tmp.len > sizeof(body) - n) {
                cf_buf_close(&tmp);
                return rv != CF_OK ? rv : CF_EINVAL;
            }
            memcpy(body + n, tmp.data, tmp.len);
            n += tmp.len;
            cf_buf_close(&tmp);
        }
    }
    return ext_simple(b, NID_basic_constraints, true, PKI_DER_SEQUENCE, body, n);
}

/* AuthorityKeyIdentifier { [0] keyIdentifier }. */
static int ext_akid(struct cf_buf *b, const uint8_t *id, size_t n)
{
    size_t marks[2];
    size_t m = 0;
    int rv = ext_open(b, NID_authority_key_identifier, false, marks);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    if (rv == CF_OK) {
        rv = pki_der_put(b, PKI_DER_IMPLICIT(0), id, n);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

static int put_access(struct cf_buf *b, int method, const char *url, char *errmsg)
{
    size_t m = 0;
    int rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    if (rv == CF_OK) {
        rv = pki_der_put_oid(b, method);
    }
    if (rv == CF_OK) {
        rv = put_ia5(b, GN_URI, url, errmsg);
    }
    return rv == CF_OK ? pki_der_close(b, m) : rv;
}

static int ext_aia(struct cf_buf *b, const struct pki_x509_template *t, char *errmsg)
{
    size_t marks[2];
    size_t m = 0;
    int rv = ext_open(b, NID_info_access, false, marks);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    for (size_t i = 0; rv == CF_OK && i < t->ocsp_servers.n; i++) {
        rv = put_access(b, NID_ad_OCSP, t->ocsp_servers.v[i], errmsg);
    }
    for (size_t i = 0; rv == CF_OK && i < t->issuing_certificates.n; i++) {
        rv = put_access(b, NID_ad_ca_issuers, t->issuing_certificates.v[i], errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

/* Go's marshalSANs order: DNS, email, IP, URI, then the otherNames Vault adds. */
static int ext_san(struct cf_buf *b, const struct pki_x509_template *t, bool critical, char *errmsg)
{
    size_t marks[2];
    size_t m = 0;
    int rv = ext_open(b, NID_subject_alt_name, critical, marks);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    if (rv == CF_OK) {
        rv = put_ia5_list(b, GN_DNS, &t->dns, errmsg);
    }
    if (rv == CF_OK) {
        rv = put_ia5_list(b, GN_EMAIL, &t->email, errmsg);
    }
    for (size_t i = 0; rv == CF_OK && i < t->ip.n; i++) {
        rv = put_ip(b, t->ip.v[i], errmsg);
    }
    if (rv == CF_OK) {
        rv = put_ia5_list(b, GN_URI, &t->uri, errmsg);
    }
    for (size_t i = 0; rv == CF_OK && i < t->n_other_sans; i++) {
        rv = put_other(b, &t->other_sans[i], errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

static int ext_policies(struct cf_buf *b, const struct pki_x509_strs *oids, char *errmsg)
{
    size_t marks[2];
    size_t m = 0;
    int rv = ext_open(b, NID_certificate_policies, false, marks);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    for (size_t i = 0; rv == CF_OK && i < oids->n; i++) {
        size_t mi = 0;
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &mi);
        if (rv == CF_OK) {
            rv = put_oid_text(b, oids->v[i], errmsg);
        }
        if (rv == CF_OK) {
            rv = pki_der_close(b, mi);
        }
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

/* GeneralSubtree { base } for each entry of one list. */
static int put_subtrees(struct cf_buf *b, uint8_t tag, const struct pki_x509_strs *l, char *errmsg)
{
    int rv = CF_OK;
    for (size_t i = 0; rv == CF_OK && i < l->n; i++) {
        size_t m = 0;
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
        if (rv == CF_OK && tag == GN_IP) {
            uint8_t a[32];
            size_t n = 0;
            rv = pki_x509_cidr_parse(l->v[i], a, &n, errmsg);
            if (rv == CF_OK) {
                rv = pki_der_put(b, GN_IP, a, n);
            }
        } else if (rv == CF_OK) {
            rv = put_ia5(b, tag, l->v[i], errmsg);
        }
        if (rv == CF_OK) {
            rv = pki_der_close(b, m);
        }
    }
    return rv;
}

static int ext_name_constraints(struct cf_buf *b, const struct pki_x509_template *t, char *errmsg)
{
    const struct pki_x509_strs *lists[2][4] = {
        {&t->permitted_dns_domains, &t->permitted_ip_ranges, &t->permitted_email_addresses,
         &t->permitted_uri_domains},
        {&t->excluded_dns_domains, &t->excluded_ip_ranges, &t->excluded_email_addresses,
         &t->excluded_uri_domains},
    };
    static const uint8_t tags[4] = {GN_DNS, GN_IP, GN_EMAIL, GN_URI};
    size_t marks[2];
    size_t m = 0;
    int rv = ext_open(b, NID_name_constraints, true, marks);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    for (int k = 0; rv == CF_OK && k < 2; k++) {
        size_t n = 0;
        for (int i = 0; i < 4; i++) {
            n += lists[k][i]->n;
        }
        if (n == 0) {
            continue;
        }
        size_t mk = 0;
        rv = pki_der_open(b, PKI_DER_CONTEXT(k), &mk);
        for (int i = 0; rv == CF_OK && i < 4; i++) {
            rv = put_subtrees(b, tags[i], lists[k][i], errmsg);
        }
        if (rv == CF_OK) {
            rv = pki_der_close(b, mk);
        }
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

/* DistributionPoint { [0] { fullName [0] { URI } } } per URL. */
static int ext_crl_dp(struct cf_buf *b, const struct pki_x509_strs *urls, char *errmsg)
{
    size_t marks[2];
    size_t m = 0;
    int rv = ext_open(b, NID_crl_distribution_points, false, marks);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    for (size_t i = 0; rv == CF_OK && i < urls->n; i++) {
        size_t m1 = 0;
        size_t m2 = 0;
        size_t m3 = 0;
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m1);
        if (rv == CF_OK) {
            rv = pki_der_open(b, PKI_DER_CONTEXT(0), &m2);
        }
        if (rv == CF_OK) {
            rv = pki_der_open(b, PKI_DER_CONTEXT(0), &m3);
        }
        if (rv == CF_OK) {
            rv = put_ia5(b, GN_URI, urls->v[i], errmsg);
        }
        for (size_t k = 0; rv == CF_OK && k < 3; k++) {
            rv = pki_der_close(b, k == 0 ? m3 : k == 1 ? m2 : m1);
        }
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? ext_close(b, marks) : rv;
}

static bool any_name_constraint(const struct pki_x509_template *t)
{
    return t->permitted_dns_domains.n + t->excluded_dns_domains.n + t->permitted_ip_ranges.n +
               t->excluded_ip_ranges.n + t->permitted_email_addresses.n +
               t->excluded_email_addresses.n + t->permitted_uri_domains.n +
               t->excluded_uri_domains.n >
           0;
}

/* The subjectPublicKey bits of a SubjectPublicKeyInfo (for the key identifier): SEQUENCE {
 * AlgorithmIdentifier, BIT STRING }, after the BIT STRING's unused-bits byte. */
static int spki_bits(const uint8_t *spki, size_t len, const uint8_t **bits, size_t *n)
{
    const uint8_t *p = spki;
    const uint8_t *body = NULL;
    const uint8_t *alg = NULL;
    size_t blen = 0;
    size_t alen = 0;
    if (!pki_der_next(&p, spki + len, PKI_DER_SEQUENCE, &body, &blen)) {
        return CF_EMALFORMED;
    }
    p = body;
    const uint8_t *end = body + blen;
    if (!pki_der_next(&p, end, PKI_DER_SEQUENCE, &alg, &alen) ||
        !pki_der_next(&p, end, PKI_DER_BIT_STRING, &body, &blen) || blen < 1) {
        return CF_EMALFORMED;
    }
    *bits = body + 1;
    *n = blen - 1;
    return CF_OK;
}

/* serialNumber: t->serial or 159 random bits, never zero; colon hex of its magnitude. */
static int put_serial(struct cf_buf *b,
                      const struct pki_x509_template *t,
                      char hex_out[PKI_X509_SERIAL_HEX_SIZE],
                      char *errmsg)
{
    uint8_t s[21];
    size_t n = 20;
    if (t->serial_len > 0) {
        if (t->serial_len > sizeof(t->serial)) {
            cf_errmsg_printf(errmsg, "serial too long");
            return CF_EINVAL;
        }
        memcpy(s + 1, t->serial, t->serial_len);
        n = t->serial_len;
    }
    size_t lead = 0;
    for (int tries = 0;; tries++) {
        if (t->serial_len == 0) {
            if (tries == 8) {
                cf_errmsg_printf(errmsg, "random serial: RNG returned zeros");
                return CF_ECRYPTO;
            }
            if (cf_random(s + 1, 20) != CF_OK) {
                cf_errmsg_printf(errmsg, "random serial: RNG failure");
                return CF_ECRYPTO;
            }
            s[1] &= 0x7f;
        }
        for (lead = 0; lead < n && s[1 + lead] == 0; lead++) {
        }
        if (lead < n) {
            break;
        }
        if (t->serial_len > 0) {
            cf_errmsg_printf(errmsg, "serial must be positive");
            return CF_EINVAL;
        }
    }
    const uint8_t *mag = s + 1 + lead;
    size_t mlen = n - lead;
    static const char hex[] = "0123456789abcdef";
    char *p = hex_out;
    for (size_t i = 0; i < mlen; i++) {
        if (i > 0) {
            *p++ = ':';
        }
        *p++ = hex[mag[i] >> 4];
        *p++ = hex[mag[i] & 0xf];
    }
    *p = '\0';
    if (mag[0] & 0x80) { /* keep it positive */
        s[lead] = 0;
        return pki_der_put(b, PKI_DER_INTEGER, s + lead, mlen + 1);
    }
    return pki_der_put(b, PKI_DER_INTEGER, mag, mlen);
}

static int put_extensions(struct cf_buf *b,
                          const struct pki_x509_template *t,
                          const uint8_t *spki,
                          size_t spki_len,
                          const struct pki_cert_issuer *is,
                          bool subject_empty,
                          char *errmsg)
{
    size_t m3 = 0;
    size_t m = 0;
    int rv = pki_der_open(b, PKI_DER_CONTEXT(3), &m3);
    if (rv == CF_OK) {
        rv = pki_der_open(b, PKI_DER_SEQUENCE, &m);
    }
    if (rv == CF_OK && t->key_usage != 0) {
        rv = ext_key_usage(b, t->key_usage);
    }
    if (rv == CF_OK && (t->ext_key_usage != 0 || t->ext_key_usage_oids.n > 0)) {
        rv = ext_eku(b, t, errmsg);
    }
    if (rv == CF_OK && (t->is_ca || t->basic_constraints_valid_for_non_ca)) {
        rv = ext_basic_constraints(b, t);
    }
    if (rv == CF_OK) {
        uint8_t md[SHA_DIGEST_LENGTH];
        const uint8_t *id = t->skid;
        size_t idlen = t->skid_len;
        if (idlen > sizeof(t->skid)) {
            cf_errmsg_printf(errmsg, "subject key id too long");
            return CF_EINVAL;
        }
        if (idlen == 0) {
            const uint8_t *bits = NULL;
            size_t n = 0;
            rv = spki_bits(spki, spki_len, &bits, &n);
            if (rv != CF_OK) {
                cf_errmsg_printf(errmsg, "key identifier: malformed public key");
                return rv;
            }
            if (SHA1(bits, n, md) == NULL) {
                return cf_err_from_ossl(errmsg, "key identifier");
            }
            id = md;
            idlen = sizeof(md);
        }
        rv = ext_simple(b, NID_subject_key_identifier, false, PKI_DER_OCTET_STRING, id, idlen);
    }
    if (rv == CF_OK && is->skid_len > 0) {
        rv = ext_akid(b, is->skid, is->skid_len);
    }
    if (rv == CF_OK && t->ocsp_servers.n + t->issuing_certificates.n > 0) {
        rv = ext_aia(b, t, errmsg);
    }
    if (rv == CF_OK && t->dns.n + t->email.n + t->ip.n + t->uri.n + t->n_other_sans > 0) {
        /* RFC 5280 4.2.1.6: critical when the subject is empty. */
        rv = ext_san(b, t, subject_empty, errmsg);
    }
    if (rv == CF_OK && t->policy_identifiers.n > 0) {
        rv = ext_policies(b, &t->policy_identifiers, errmsg);
    }
    if (rv == CF_OK && any_name_constraint(t)) {
        rv = ext_name_constraints(b, t, errmsg);
    }
    if (rv == CF_OK && t->crl_distribution_points.n > 0) {
        rv = ext_crl_dp(b, &t->crl_distribution_points, errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(b, m);
    }
    return rv == CF_OK ? pki_der_close(b, m3) : rv;
}

/* The signature's AlgorithmIdentifier, written once and copied into the TBSCertificate and
 * the certificate. RSASSA-PSS parameters come from the signing context itself (the
 * provider's algorithm-id); the fixed identifiers are written here. */
static int sigalg_der(EVP_MD_CTX *mctx,
                      const struct pki_sig_alg *sa,
                      uint8_t *out,
                      size_t cap,
                      size_t *len,
                      char *errmsg)
{
    if (sa->nid == NID_undef) {
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, out, cap);
        params[1] = OSSL_PARAM_construct_end();
        if (EVP_PKEY_CTX_get_params(EVP_MD_CTX_get_pkey_ctx(mctx), params) != 1 ||
            params[0].return_size == 0 || params[0].return_size > cap) {
            return cf_err_from_ossl(errmsg, "signature algorithm");
        }
        *len = params[0].return_size;
        return CF_OK;
    }
    struct cf_buf b;
    cf_buf_init(&b);
    size_t m = 0;
    int rv = pki_der_open(&b, PKI_DER_SEQUENCE, &m);
    if (rv == CF_OK) {
        rv = pki_der_put_oid(&b, sa->nid);
    }
    if (rv == CF_OK && sa->null_param) {
        rv = pki_der_put(&b, PKI_DER_NULL, NULL, 0);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(&b, m);
    }
    if (rv == CF_OK && b.len > cap) {
        rv = CF_ETOOBIG;
    }
    if (rv == CF_OK) {
        memcpy(out, b.data, b.len);
        *len = b.len;
    }
    cf_buf_close(&b);
    return rv;
}

/* Writes the certificate into out, signed with mctx. */
static int build(const struct pki_x509_template *t,
                 const uint8_t *spki,
                 size_t spki_len,
                 const struct pki_cert_issuer *is,
                 const struct pki_sig_alg *sa,
                 EVP_MD_CTX *mctx,
                 struct cf_buf *out,
                 char serial[PKI_X509_SERIAL_HEX_SIZE],
                 char *errmsg)
{
    static const uint8_t v3[] = {PKI_DER_CONTEXT(0), 3, PKI_DER_INTEGER, 1, 2};
    uint8_t alg[256];
    size_t alg_len = 0;
    int rv = sigalg_der(mctx, sa, alg, sizeof(alg), &alg_len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    size_t m_cert = 0;
    size_t m_tbs = 0;
    size_t m_validity = 0;
    bool subject_empty = false;
    rv = cf_buf_reserve(out, 1024 + spki_len + is->name_len);
    if (rv == CF_OK) {
        rv = pki_der_open(out, PKI_DER_SEQUENCE, &m_cert);
    }
    if (rv == CF_OK) {
        rv = pki_der_open(out, PKI_DER_SEQUENCE, &m_tbs);
    }
    if (rv == CF_OK) {
        rv = cf_buf_append(out, v3, sizeof(v3));
    }
    if (rv == CF_OK) {
        rv = put_serial(out, t, serial, errmsg);
    }
    if (rv == CF_OK) {
        rv = cf_buf_append(out, alg, alg_len);
    }
    if (rv == CF_OK) {
        rv = cf_buf_append(out, is->name_der, is->name_len);
    }
    if (rv == CF_OK) {
        rv = pki_der_open(out, PKI_DER_SEQUENCE, &m_validity);
    }
    if (rv == CF_OK) {
        rv = put_time(out, t->not_before, errmsg);
    }
    if (rv == CF_OK) {
        rv = put_time(out, t->not_after, errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(out, m_validity);
    }
    if (rv == CF_OK) {
        rv = put_name(out, t, &subject_empty);
    }
    if (rv == CF_OK) {
        rv = cf_buf_append(out, spki, spki_len);
    }
    if (rv == CF_OK) {
        rv = put_extensions(out, t, spki, spki_len, is, subject_empty, errmsg);
    }
    if (rv == CF_OK) {
        rv = pki_der_close(out, m_tbs);
    }
    if (rv != CF_OK) {
        return rv;
    }
    /* Sign the TBSCertificate: everything after the certificate's own (still two-byte)
     * header. */
    size_t tbs_off = m_cert + 2;
    size_t tbs_len = out->len - tbs_off;
    size_t siglen = (size_t)EVP_PKEY_get_size(is->key);
    rv = cf_buf_append(out, alg, alg_len);
    if (rv == CF_OK) {
        rv = cf_buf_reserve(out, siglen + 16);
    }
    if (rv != CF_OK) {
        return rv;
    }
    /* The signature goes 8 bytes on, then moves back behind its BIT STRING header once its
     * length is known (ECDSA signatures vary in length). */
    uint8_t *sig = out->data + out->len + 8;
    if (EVP_DigestSign(mctx, sig, &siglen, out->data + tbs_off, tbs_len) != 1) {
        return cf_err_from_ossl(errmsg, "sign certificate");
    }
    uint8_t hdr[16];
    size_t h = pki_der_header(PKI_DER_BIT_STRING, siglen + 1, hdr);
    hdr[h++] = 0; /* unused bits */
    memmove(out->data + out->len + h, sig, siglen);
    memcpy(out->data + out->len, hdr, h);
    out->len += h + siglen;
    out->data[out->len] = 0;
    return pki_der_close(out, m_cert);
}

int pki_cert_der_build(const struct pki_x509_template *t,
                       const uint8_t *spki,
                       size_t spki_len,
                       const struct pki_cert_issuer *is,
                       struct cf_buf *out,
                       char serial[PKI_X509_SERIAL_HEX_SIZE],
                       char *errmsg)
{
    if (t->not_after < t->not_before) {
        cf_errmsg_printf(errmsg, "NotAfter is before NotBefore");
        return CF_EINVAL;
    }
    /* The algorithm from the issuer's key type and size (no key read), and whether it is the
     * key's default one, whose prepared context is copied. */
    const struct pki_sig_alg *sa = NULL;
    const struct pki_sig_alg *dflt = NULL;
    int rv = pki_key_signature_alg(is->key_type, is->key_bits, t->signature_bits, t->use_pss, &sa,
                                   errmsg);
    if (rv == CF_OK) {
        rv = pki_key_signature_alg(is->key_type, is->key_bits, 0, false, &dflt, errmsg);
    }
    if (rv != CF_OK) {
        return rv;
    }
    EVP_MD_CTX *mctx = NULL;
    rv = pki_key_sign_ctx_get(sa == dflt ? is->sign_default : NULL, is->key, t->signature_bits,
                              t->use_pss, &mctx, errmsg);
    if (rv == CF_OK) {
        rv = build(t, spki, spki_len, is, sa, mctx, out, serial, errmsg);
    }
    EVP_MD_CTX_free(mctx);
    if (rv == CF_ENOMEM) {
        cf_errmsg_printf(errmsg, "out of memory");
    }
    return rv;
}
