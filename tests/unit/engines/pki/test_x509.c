/*
 * Unit tests for engines/pki/x509.c. A root -> intermediate (through a CSR) -> leaf chain is
 * built with our API and verified by OpenSSL's X509_verify_cert with a trust store (and by
 * `openssl verify` when the binary exists); every key type signs and is verified; every
 * extension is read back with OpenSSL's own decoders; CSRs written by OpenSSL are read; and
 * every bad input (bad CSR signature, garbage PEM, two CSRs, bad template values, SHA-1, wrong
 * keys) is refused with its message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/dsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "engines/pki/key.h"
#include "lib/buf.h"
#include "engines/pki/x509.h"
#include "lib/err.h"
#include "lib/mem.h"

static EVP_PKEY *gen(enum pki_key_type type, int bits)
{
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *k = NULL;
    assert_int_equal(pki_key_generate(type, bits, &k, errmsg), CF_OK);
    return k;
}

static void add(struct pki_x509_strs *l, const char *s)
{
    assert_int_equal(pki_x509_strs_add(l, s), CF_OK);
}

static void set_validity(struct pki_x509_template *t, int64_t secs)
{
    int64_t now = (int64_t)time(NULL);
    t->not_before = now - 30;
    t->not_after = now + secs;
}

/* A root CA certificate for key k (self-signed). */
static X509 *make_root(EVP_PKEY *k, const char *cn)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup(cn);
    t.is_ca = true;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    set_validity(&t, 86400);
    X509 *x = NULL;
    int rv = pki_x509_cert_build(&t, k, NULL, k, &x, errmsg);
    if (rv != CF_OK) {
        fail_msg("root: %s", errmsg);
    }
    pki_x509_template_close(&t);
    return x;
}

/* Verifies leaf against a store holding root, with untrusted intermediates; returns the
 * X509_V_ code. */
static int verify(X509 *root, X509 *const *untrusted, size_t n, X509 *leaf, const char *host)
{
    X509_STORE *store = X509_STORE_new();
    assert_int_equal(X509_STORE_add_cert(store, root), 1);
    STACK_OF(X509) *chain = sk_X509_new_null();
    for (size_t i = 0; i < n; i++) {
        sk_X509_push(chain, untrusted[i]);
    }
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
    if (host != NULL) {
        X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), host, 0);
    }
    int ok = X509_verify_cert(ctx);
    int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(chain);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

static char *name_text(const X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char *p = NULL;
    long len = BIO_get_mem_data(b, &p);
    char *s = cf_strndup(p, (size_t)len);
    BIO_free(b);
    return s;
}

struct chain
{
    EVP_PKEY *root_key, *int_key, *leaf_key;
    X509 *root, *inter, *leaf;
    char *csr_pem;
};

/* root (EC P-384) -> intermediate (RSA-2048, from a CSR, pathlen 0, name constraints,
 * AIA/CRL URLs) -> leaf (Ed25519) with every SAN kind and subject field. */
static void build_chain(struct chain *c)
{
    char errmsg[CF_ERRMSG_SIZE];
    c->root_key = gen(PKI_KEY_EC, 384);
    c->int_key = gen(PKI_KEY_RSA, 2048);
    c->leaf_key = gen(PKI_KEY_ED25519, 0);
    c->root = make_root(c->root_key, "Coffer Root");

    /* intermediate/generate: a CSR from a subject template. */
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("Coffer Intermediate");
    add(&t.organization, "Coffer");
    add(&t.country, "DE");
    X509_REQ *req = NULL;
    assert_int_equal(pki_x509_csr_create(&t, c->int_key, true, &req, errmsg), CF_OK);
    assert_int_equal(pki_x509_csr_to_pem(req, &c->csr_pem, errmsg), CF_OK);
    X509_REQ_free(req);
    pki_x509_template_close(&t);

    /* root/sign-intermediate: parse, read the CSR into a template, add CA fields, sign. */
    req = NULL;
    EVP_PKEY *req_key = NULL;
    assert_int_equal(pki_x509_csr_parse(c->csr_pem, strlen(c->csr_pem), &req, &req_key, errmsg),
                     CF_OK);
    pki_x509_template_init(&t);
    assert_int_equal(pki_x509_csr_read(req, &t, errmsg), CF_OK);
    assert_string_equal(t.common_name, "Coffer Intermediate");
    assert_true(t.has_basic_constraints);
    assert_true(t.is_ca);
    t.max_path_length = 0;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    set_validity(&t, 3600);
    add(&t.permitted_dns_domains, "example.com");
    add(&t.permitted_dns_domains, ".example.org");
    add(&t.excluded_dns_domains, "bad.example.com");
    add(&t.permitted_ip_ranges, "10.0.0.0/8");
    add(&t.permitted_ip_ranges, "2001:db8::/32");
    add(&t.issuing_certificates, "http://pki.example.com/v1/pki/ca");
    add(&t.ocsp_servers, "http://pki.example.com/v1/pki/ocsp");
    add(&t.crl_distribution_points, "http://pki.example.com/v1/pki/crl");
    t.signature_bits = 512;
    assert_int_equal(pki_x509_cert_build(&t, req_key, c->root, c->root_key, &c->inter, errmsg),
                     CF_OK);
    pki_x509_template_close(&t);
    X509_REQ_free(req);
    EVP_PKEY_free(req_key);

    /* issue: a leaf with every SAN and subject field. */
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("www.example.com");
    add(&t.country, "US");
    add(&t.organization, "Example Org");
    add(&t.ou, "Unit A");
    add(&t.ou, "Unit B");
    add(&t.locality, "Springfield");
    add(&t.province, "Oregon");
    add(&t.street_address, "1 Main St");
    add(&t.postal_code, "97001");
    t.serial_number = cf_strdup("SN-42");
    add(&t.user_ids, "alice");
    add(&t.dns, "www.example.com");
    add(&t.dns, "api.example.org");
    add(&t.email, "ops@example.com");
    add(&t.ip, "10.1.2.3");
    add(&t.ip, "2001:db8::1");
    add(&t.uri, "spiffe://example.com/svc");
    assert_int_equal(pki_x509_template_add_other_san(&t, "1.3.6.1.4.1.311.20.2.3", "a@b.c"), CF_OK);
    t.key_usage = PKI_KU_DIGITAL_SIGNATURE | PKI_KU_KEY_AGREEMENT | PKI_KU_KEY_ENCIPHERMENT;
    t.ext_key_usage = PKI_EKU_SERVER_AUTH | PKI_EKU_CLIENT_AUTH;
    add(&t.ext_key_usage_oids, "1.2.3.4.5");
    add(&t.policy_identifiers, "2.23.140.1.2.1");
    t.basic_constraints_valid_for_non_ca = true;
    t.signature_bits = 512;
    set_validity(&t, 600);
    assert_int_equal(pki_x509_cert_build(&t, c->leaf_key, c->inter, c->int_key, &c->leaf, errmsg),
                     CF_OK);
    pki_x509_template_close(&t);
}

static void free_chain(struct chain *c)
{
    X509_free(c->root);
    X509_free(c->inter);
    X509_free(c->leaf);
    EVP_PKEY_free(c->root_key);
    EVP_PKEY_free(c->int_key);
    EVP_PKEY_free(c->leaf_key);
    cf_free(c->csr_pem);
}

static void test_chain_verifies(void **state)
{
    (void)state;
    struct chain c = {0};
    build_chain(&c);
    assert_int_equal(verify(c.root, &c.inter, 1, c.leaf, "www.example.com"), X509_V_OK);
    assert_int_equal(verify(c.root, &c.inter, 1, c.inter, NULL), X509_V_OK);
    /* Without the intermediate there is no path; against the wrong root neither. */
    assert_int_not_equal(verify(c.root, NULL, 0, c.leaf, NULL), X509_V_OK);
    EVP_PKEY *other = gen(PKI_KEY_EC, 256);
    X509 *other_root = make_root(other, "Coffer Root");
    assert_int_not_equal(verify(other_root, &c.inter, 1, c.leaf, NULL), X509_V_OK);
    X509_free(other_root);
    EVP_PKEY_free(other);
    /* The host check runs against the SANs. */
    assert_int_equal(X509_check_host(c.leaf, "api.example.org", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(c.leaf, "evil.example.net", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(c.leaf, "10.1.2.3", 0), 1);
    assert_int_equal(X509_check_ip_asc(c.leaf, "2001:db8::1", 0), 1);
    assert_int_equal(X509_check_email(c.leaf, "ops@example.com", 0, 0), 1);
    assert_int_equal(X509_verify(c.leaf, c.int_key), 1);
    assert_int_equal(X509_verify(c.inter, c.root_key), 1);
    assert_int_equal(X509_verify(c.root, c.root_key), 1);
    /* Signature algorithms: the EC P-384 root signs with SHA-384 whatever signature_bits says,
     * the RSA intermediate with the requested SHA-512. */
    assert_int_equal(X509_get_signature_nid(c.root), NID_ecdsa_with_SHA384);
    assert_int_equal(X509_get_signature_nid(c.inter), NID_ecdsa_with_SHA384);
    assert_int_equal(X509_get_signature_nid(c.leaf), NID_sha512WithRSAEncryption);
    free_chain(&c);
}

/* The same chain checked by the openssl binary. */
static void test_chain_openssl_cli(void **state)
{
    (void)state;
    if (access("/usr/bin/openssl", X_OK) != 0) {
        skip();
    }
    char errmsg[CF_ERRMSG_SIZE];
    struct chain c = {0};
    build_chain(&c);
    char dir[] = "/tmp/cf-pki-x509-XXXXXX";
    assert_non_null(mkdtemp(dir));
    X509 *certs[] = {c.root, c.inter, c.leaf};
    const char *names[] = {"root.pem", "int.pem", "leaf.pem"};
    char path[256];
    for (int i = 0; i < 3; i++) {
        char *pem = NULL;
        assert_int_equal(pki_x509_cert_to_pem(certs[i], &pem, errmsg), CF_OK);
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "w");
        fprintf(f, "%s\n", pem);
        fclose(f);
        cf_free(pem);
    }
    snprintf(path, sizeof(path), "%s/csr.pem", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", c.csr_pem);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl verify -CAfile root.pem -untrusted int.pem -verify_hostname "
             "www.example.com leaf.pem >out.txt 2>&1 && openssl req -verify -noout -in csr.pem "
             ">>out.txt 2>&1",
             dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat %s/out.txt >&2", dir);
        if (system(cmd) != 0) {
            print_error("could not show %s/out.txt\n", dir);
        }
    }
    assert_int_equal(rc, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free_chain(&c);
}

static void test_extensions_read_back(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct chain c = {0};
    build_chain(&c);

    /* Subject in Go's order with a multi-valued OU RDN. */
    char *subj = name_text(X509_get_subject_name(c.leaf));
    assert_string_equal(subj,
                        "UID=alice,CN=www.example.com,serialNumber=SN-42,postalCode=97001,"
                        "street=1 Main St,ST=Oregon,L=Springfield,OU=Unit B+OU=Unit A,"
                        "O=Example Org,C=US");
    cf_free(subj);
    char *iss = name_text(X509_get_issuer_name(c.leaf));
    assert_string_equal(iss, "CN=Coffer Intermediate,O=Coffer,C=DE");
    cf_free(iss);

    /* Key usage (critical), EKU with the raw OID, BasicConstraints CA:false (critical). */
    assert_int_equal(X509_get_key_usage(c.leaf),
                     KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT | KU_KEY_ENCIPHERMENT);
    assert_int_equal(X509_get_extended_key_usage(c.leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    int crit = -1;
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(c.leaf, NID_ext_key_usage, &crit, NULL);
    assert_int_equal(sk_ASN1_OBJECT_num(eku), 3);
    char oid[64];
    OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_OBJECT_value(eku, 2), 1);
    assert_string_equal(oid, "1.2.3.4.5");
    assert_int_equal(crit, 0);
    EXTENDED_KEY_USAGE_free(eku);
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(c.leaf, NID_key_usage, &crit, NULL);
    assert_int_equal(crit, 1);
    ASN1_BIT_STRING_free(ku);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(c.leaf, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(bc->ca, 0);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    assert_false(pki_x509_is_ca(c.leaf));
    assert_true(pki_x509_is_ca(c.inter));
    assert_true(pki_x509_is_ca(c.root));
    assert_int_equal(X509_get_pathlen(c.inter), 0);
    assert_int_equal(X509_get_pathlen(c.root), -1);
    bc = X509_get_ext_d2i(c.inter, NID_basic_constraints, &crit, NULL);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    assert_int_equal(X509_get_key_usage(c.inter), KU_KEY_CERT_SIGN | KU_CRL_SIGN);

    /* SKI = SHA-1 of the key bits; AKI = the issuer's SKI; a root's AKI is its own SKI. */
    unsigned char md[20];
    unsigned int mdlen = 0;
    assert_int_equal(X509_pubkey_digest(c.inter, EVP_sha1(), md, &mdlen), 1);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(c.inter);
    assert_non_null(ski);
    assert_int_equal(ASN1_STRING_length(ski), 20);
    assert_memory_equal(ASN1_STRING_get0_data(ski), md, 20);
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c.leaf), ski), 0);
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c.inter),
                                           X509_get0_subject_key_id(c.root)),
                     0);
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c.root), X509_get0_subject_key_id(c.root)),
        0);

    /* AIA: OCSP then CA issuers; CRL distribution point. */
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(c.inter, NID_info_access, &crit, NULL);
    assert_int_equal(sk_ACCESS_DESCRIPTION_num(aia), 2);
    ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, 0);
    assert_int_equal(OBJ_obj2nid(ad->method), NID_ad_OCSP);
    assert_string_equal(
        (const char *)ASN1_STRING_get0_data(ad->location->d.uniformResourceIdentifier),
        "http://pki.example.com/v1/pki/ocsp");
    ad = sk_ACCESS_DESCRIPTION_value(aia, 1);
    assert_int_equal(OBJ_obj2nid(ad->method), NID_ad_ca_issuers);
    AUTHORITY_INFO_ACCESS_free(aia);
    CRL_DIST_POINTS *dps = X509_get_ext_d2i(c.inter, NID_crl_distribution_points, &crit, NULL);
    assert_int_equal(sk_DIST_POINT_num(dps), 1);
    GENERAL_NAME *gn =
        sk_GENERAL_NAME_value(sk_DIST_POINT_value(dps, 0)->distpoint->name.fullname, 0);
    assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                        "http://pki.example.com/v1/pki/crl");
    CRL_DIST_POINTS_free(dps);

    /* Name constraints, critical. */
    NAME_CONSTRAINTS *nc = X509_get_ext_d2i(c.inter, NID_name_constraints, &crit, NULL);
    assert_non_null(nc);
    assert_int_equal(crit, 1);
    assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees), 4);
    assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 1);
    GENERAL_SUBTREE *st = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, 2);
    assert_int_equal(st->base->type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(st->base->d.iPAddress), 8);
    assert_memory_equal(ASN1_STRING_get0_data(st->base->d.iPAddress), "\x0a\0\0\0\xff\0\0\0", 8);
    NAME_CONSTRAINTS_free(nc);

    /* SANs including the otherName. */
    GENERAL_NAMES *sans = X509_get_ext_d2i(c.leaf, NID_subject_alt_name, &crit, NULL);
    assert_int_equal(crit, 0);
    assert_int_equal(sk_GENERAL_NAME_num(sans), 7);
    gn = sk_GENERAL_NAME_value(sans, 6);
    assert_int_equal(gn->type, GEN_OTHERNAME);
    OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id, 1);
    assert_string_equal(oid, "1.3.6.1.4.1.311.20.2.3");
    assert_int_equal(gn->d.otherName->value->type, V_ASN1_UTF8STRING);
    GENERAL_NAMES_free(sans);

    /* Policies. */
    CERTIFICATEPOLICIES *pol = X509_get_ext_d2i(c.leaf, NID_certificate_policies, &crit, NULL);
    assert_int_equal(sk_POLICYINFO_num(pol), 1);
    OBJ_obj2txt(oid, sizeof(oid), sk_POLICYINFO_value(pol, 0)->policyid, 1);
    assert_string_equal(oid, "2.23.140.1.2.1");
    CERTIFICATEPOLICIES_free(pol);

    /* Serial: positive, at most 20 bytes, colon hex lowercase. */
    const ASN1_INTEGER *sn = X509_get0_serialNumber(c.leaf);
    BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
    assert_false(BN_is_negative(bn));
    assert_true(BN_num_bits(bn) <= 159);
    char want[PKI_X509_SERIAL_HEX_SIZE] = "";
    unsigned char b[20];
    int n = BN_bn2bin(bn, b);
    for (int i = 0; i < n; i++) {
        snprintf(want + strlen(want), 4, i == 0 ? "%02x" : ":%02x", b[i]);
    }
    BN_free(bn);
    char hex[PKI_X509_SERIAL_HEX_SIZE];
    assert_int_equal(pki_x509_serial_hex(c.leaf, hex, errmsg), CF_OK);
    assert_string_equal(hex, want);
    char hex2[PKI_X509_SERIAL_HEX_SIZE];
    assert_int_equal(pki_x509_serial_hex(c.inter, hex2, errmsg), CF_OK);
    assert_string_not_equal(hex, hex2);

    /* Self-issued and times. */
    assert_true(pki_x509_is_self_issued(c.root));
    assert_false(pki_x509_is_self_issued(c.inter));
    int64_t nb = 0;
    int64_t na = 0;
    assert_int_equal(pki_x509_not_before(c.leaf, &nb), CF_OK);
    assert_int_equal(pki_x509_not_after(c.leaf, &na), CF_OK);
    assert_int_equal(na - nb, 630);
    free_chain(&c);
}

/* Name constraints are enforced by OpenSSL's verifier on our certificates. */
static void test_name_constraints_enforced(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct chain c = {0};
    build_chain(&c);
    const char *names[] = {"www.example.com", "bad.example.com", "x.other.net", "a.example.org"};
    const int want[] = {X509_V_OK, X509_V_ERR_EXCLUDED_VIOLATION, X509_V_ERR_PERMITTED_VIOLATION,
                        X509_V_OK};
    for (int i = 0; i < 4; i++) {
        struct pki_x509_template t;
        pki_x509_template_init(&t);
        add(&t.dns, names[i]);
        set_validity(&t, 60);
        X509 *leaf = NULL;
        assert_int_equal(pki_x509_cert_build(&t, c.leaf_key, c.inter, c.int_key, &leaf, errmsg),
                         CF_OK);
        assert_int_equal(verify(c.root, &c.inter, 1, leaf, NULL), want[i]);
        if (i == 0) {
            /* Empty subject: the SAN extension is critical (RFC 5280 4.2.1.6). */
            int crit = -1;
            GENERAL_NAMES *g = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
            assert_int_equal(crit, 1);
            GENERAL_NAMES_free(g);
            assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
        }
        X509_free(leaf);
        pki_x509_template_close(&t);
    }
    /* A leaf IP outside 10/8 is refused too. */
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("www.example.com");
    add(&t.ip, "192.168.1.1");
    set_validity(&t, 60);
    X509 *leaf = NULL;
    assert_int_equal(pki_x509_cert_build(&t, c.leaf_key, c.inter, c.int_key, &leaf, errmsg), CF_OK);
    assert_int_equal(verify(c.root, &c.inter, 1, leaf, NULL), X509_V_ERR_PERMITTED_VIOLATION);
    X509_free(leaf);
    pki_x509_template_close(&t);
    free_chain(&c);
}

/* Every key type as a root that signs a leaf of every key type. */
static void test_every_key_type(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    const struct
    {
        enum pki_key_type type;
        int bits;
        int sig_nid;
    } kinds[] = {
        {PKI_KEY_RSA, 2048, NID_sha256WithRSAEncryption},
        {PKI_KEY_RSA, 3072, NID_sha256WithRSAEncryption},
        {PKI_KEY_EC, 224, NID_ecdsa_with_SHA256},
        {PKI_KEY_EC, 256, NID_ecdsa_with_SHA256},
        {PKI_KEY_EC, 384, NID_ecdsa_with_SHA384},
        {PKI_KEY_EC, 521, NID_ecdsa_with_SHA512},
        {PKI_KEY_ED25519, 0, NID_ED25519},
    };
    size_t nk = sizeof(kinds) / sizeof(kinds[0]);
    EVP_PKEY *keys[7];
    for (size_t i = 0; i < nk; i++) {
        keys[i] = gen(kinds[i].type, kinds[i].bits);
    }
    for (size_t i = 0; i < nk; i++) {
        X509 *root = make_root(keys[i], "root");
        assert_int_equal(X509_get_signature_nid(root), kinds[i].sig_nid);
        for (size_t k = 0; k < nk; k++) {
            struct pki_x509_template t;
            pki_x509_template_init(&t);
            t.common_name = cf_strdup("leaf.example.com");
            add(&t.dns, "leaf.example.com");
            t.ext_key_usage = PKI_EKU_SERVER_AUTH;
            t.key_usage = PKI_KU_DIGITAL_SIGNATURE;
            set_validity(&t, 60);
            X509 *leaf = NULL;
            assert_int_equal(pki_x509_cert_build(&t, keys[k], root, keys[i], &leaf, errmsg), CF_OK);
            assert_int_equal(verify(root, NULL, 0, leaf, "leaf.example.com"), X509_V_OK);
            assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), keys[k]), 1);
            X509_free(leaf);
            pki_x509_template_close(&t);
        }
        X509_free(root);
    }
    for (size_t i = 0; i < nk; i++) {
        EVP_PKEY_free(keys[i]);
    }
}

static void test_pss_and_signature_bits(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *k = gen(PKI_KEY_RSA, 2048);
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("pss root");
    t.is_ca = true;
    t.key_usage = PKI_KU_CERT_SIGN | PKI_KU_CRL_SIGN;
    t.use_pss = true;
    t.signature_bits = 384;
    set_validity(&t, 60);
    X509 *root = NULL;
    assert_int_equal(pki_x509_cert_build(&t, k, NULL, k, &root, errmsg), CF_OK);
    assert_int_equal(X509_get_signature_nid(root), NID_rsassaPss);
    int md = 0;
    int pk = 0;
    int secbits = 0;
    uint32_t flags = 0;
    assert_int_equal(X509_get_signature_info(root, &md, &pk, &secbits, &flags), 1);
    assert_int_equal(md, NID_sha384);
    assert_int_equal(verify(root, NULL, 0, root, NULL), X509_V_OK);
    X509_free(root);
    root = NULL;
    /* SHA-1 and other sizes are refused before anything is signed. */
    t.use_pss = false;
    t.signature_bits = 160;
    assert_int_equal(pki_x509_cert_build(&t, k, NULL, k, &root, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported hash signature algorithm: 160");
    assert_null(root);
    t.signature_bits = 1;
    X509_REQ *req = NULL;
    assert_int_equal(pki_x509_csr_create(&t, k, false, &req, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unsupported hash signature algorithm: 1");
    assert_null(req);
    pki_x509_template_close(&t);
    EVP_PKEY_free(k);
}

static void expect_build_refused(struct pki_x509_template *t, const char *msg)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    EVP_PKEY *k = gen(PKI_KEY_EC, 256);
    X509 *x = NULL;
    int rv = pki_x509_cert_build(t, k, NULL, k, &x, errmsg);
    if (rv != CF_EINVAL || strcmp(errmsg, msg) != 0) {
        fail_msg("rv=%d errmsg=\"%s\" want \"%s\"", rv, errmsg, msg);
    }
    assert_null(x);
    EVP_PKEY_free(k);
    pki_x509_template_close(t);
    pki_x509_template_init(t);
    set_validity(t, 60);
}

static void test_template_refusals(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    set_validity(&t, 60);
    add(&t.ip, "10.0.0.300");
    expect_build_refused(&t, "the value \"10.0.0.300\" is not a valid IP address");
    add(&t.ip, "example.com");
    expect_build_refused(&t, "the value \"example.com\" is not a valid IP address");
    add(&t.ext_key_usage_oids, "1.2.x");
    expect_build_refused(&t, "invalid OID 1.2.x");
    add(&t.policy_identifiers, "not an oid");
    expect_build_refused(&t, "invalid OID not an oid");
    assert_int_equal(pki_x509_template_add_other_san(&t, "1.2..3", "v"), CF_OK);
    expect_build_refused(&t, "invalid OID 1.2..3");
    add(&t.ext_key_usage_oids, "3.1");
    expect_build_refused(&t, "invalid OID 3.1");
    add(&t.ext_key_usage_oids, "1");
    expect_build_refused(&t, "invalid OID 1");
    add(&t.ext_key_usage_oids, "1.2.");
    expect_build_refused(&t, "invalid OID 1.2.");
    add(&t.permitted_ip_ranges, "10.0.0.0/33");
    expect_build_refused(&t, "invalid CIDR 10.0.0.0/33");
    add(&t.excluded_ip_ranges, "10.0.0.0");
    expect_build_refused(&t, "invalid CIDR 10.0.0.0");
    add(&t.excluded_ip_ranges, "10.0.0.0/-1");
    expect_build_refused(&t, "invalid CIDR 10.0.0.0/-1");
    add(&t.excluded_ip_ranges, "10.0.0.0/ 8");
    expect_build_refused(&t, "invalid CIDR 10.0.0.0/ 8");
    add(&t.excluded_ip_ranges, "10.0.0.0/8x");
    expect_build_refused(&t, "invalid CIDR 10.0.0.0/8x");
    add(&t.permitted_ip_ranges, "2001:db8::/129");
    expect_build_refused(&t, "invalid CIDR 2001:db8::/129");
    add(&t.dns,
        "b\xc3\xbc"
        "cher.de");
    expect_build_refused(&t,
                         "the value \"b\xc3\xbc"
                         "cher.de\" contains non-ASCII characters");
    t.not_after = t.not_before - 1;
    expect_build_refused(&t, "NotAfter is before NotBefore");

    /* Wrong keys. */
    EVP_PKEY *a = gen(PKI_KEY_EC, 256);
    EVP_PKEY *b = gen(PKI_KEY_EC, 256);
    X509 *root = make_root(a, "root");
    X509 *x = NULL;
    assert_int_equal(pki_x509_cert_build(&t, b, NULL, a, &x, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "self-signed certificate: signer is not the subject key");
    assert_int_equal(pki_x509_cert_build(&t, b, root, b, &x, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "issuer key does not match issuer certificate");
    assert_null(x);
    /* Serial override is used as given; zero is refused. */
    t.serial[0] = 0x01;
    t.serial[1] = 0xab;
    t.serial_len = 2;
    assert_int_equal(pki_x509_cert_build(&t, a, NULL, a, &x, errmsg), CF_OK);
    char hex[PKI_X509_SERIAL_HEX_SIZE];
    assert_int_equal(pki_x509_serial_hex(x, hex, errmsg), CF_OK);
    assert_string_equal(hex, "01:ab");
    X509_free(x);
    x = NULL;
    t.serial[0] = 0;
    t.serial[1] = 0;
    assert_int_equal(pki_x509_cert_build(&t, a, NULL, a, &x, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "serial must be positive");
    /* Far future NotAfter (Vault's 9999-12-31T23:59:59Z) is GeneralizedTime. */
    t.serial_len = 0;
    t.not_after = 253402300799;
    assert_int_equal(pki_x509_cert_build(&t, a, NULL, a, &x, errmsg), CF_OK);
    assert_int_equal(ASN1_STRING_type(X509_get0_notAfter(x)), V_ASN1_GENERALIZEDTIME);
    assert_int_equal(ASN1_STRING_type(X509_get0_notBefore(x)), V_ASN1_UTCTIME);
    int64_t na = 0;
    assert_int_equal(pki_x509_not_after(x, &na), CF_OK);
    assert_int_equal(na, 253402300799);
    X509_free(x);
    /* Subject key id override. */
    x = NULL;
    memcpy(t.skid, "\x01\x02\x03", 3);
    t.skid_len = 3;
    assert_int_equal(pki_x509_cert_build(&t, a, NULL, a, &x, errmsg), CF_OK);
    assert_int_equal(ASN1_STRING_length(X509_get0_subject_key_id(x)), 3);
    X509_free(x);
    X509_free(root);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    pki_x509_template_close(&t);
}

/* A CSR written by OpenSSL itself, with the given extensions; signed with key and md. */
static char *ossl_csr_md(EVP_PKEY *key,
                         const EVP_MD *md,
                         const char *cn,
                         const char *san,
                         const char *ku,
                         const char *eku,
                         const char *bc)
{
    X509_REQ *req = X509_REQ_new();
    X509_REQ_set_version(req, 0);
    X509_NAME *n = X509_REQ_get_subject_name(req);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)"Ops", -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    const char *vals[] = {san, ku, eku, bc};
    const int nids[] = {NID_subject_alt_name, NID_key_usage, NID_ext_key_usage,
                        NID_basic_constraints};
    for (int i = 0; i < 4; i++) {
        if (vals[i] != NULL) {
            X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, nids[i], vals[i]);
            assert_non_null(e);
            sk_X509_EXTENSION_push(exts, e);
        }
    }
    if (sk_X509_EXTENSION_num(exts) > 0) {
        X509_REQ_add_extensions(req, exts);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    assert_true(X509_REQ_sign(req, key, md) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, req);
    char *p = NULL;
    long len = BIO_get_mem_data(b, &p);
    char *s = cf_strndup(p, (size_t)len);
    BIO_free(b);
    X509_REQ_free(req);
    return s;
}

static char *ossl_csr(EVP_PKEY *key,
                      const char *cn,
                      const char *san,
                      const char *ku,
                      const char *eku,
                      const char *bc)
{
    const EVP_MD *md = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    return ossl_csr_md(key, md, cn, san, ku, eku, bc);
}

static void test_csr_read_openssl_written(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *k = gen(PKI_KEY_EC, 256);
    char *pem = ossl_csr(k, "svc.example.com",
                         "DNS:svc.example.com,DNS:alt.example.com,IP:192.0.2.7,IP:::1,"
                         "email:a@example.com,URI:https://example.com/x,"
                         "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn@example.com",
                         "critical,digitalSignature,keyEncipherment", "serverAuth,1.2.3.4.99",
                         "critical,CA:TRUE,pathlen:3");
    X509_REQ *req = NULL;
    EVP_PKEY *req_key = NULL;
    assert_int_equal(pki_x509_csr_parse(pem, strlen(pem), &req, &req_key, errmsg), CF_OK);
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    assert_int_equal(pki_x509_csr_read(req, &t, errmsg), CF_OK);
    assert_string_equal(t.common_name, "svc.example.com");
    assert_int_equal(t.ou.n, 1);
    assert_string_equal(t.ou.v[0], "Ops");
    assert_int_equal(t.dns.n, 2);
    assert_string_equal(t.dns.v[1], "alt.example.com");
    assert_int_equal(t.ip.n, 2);
    assert_string_equal(t.ip.v[0], "192.0.2.7");
    assert_string_equal(t.ip.v[1], "::1");
    assert_int_equal(t.email.n, 1);
    assert_string_equal(t.uri.v[0], "https://example.com/x");
    assert_int_equal(t.n_other_sans, 1);
    assert_string_equal(t.other_sans[0].oid, "1.3.6.1.4.1.311.20.2.3");
    assert_string_equal(t.other_sans[0].value, "upn@example.com");
    assert_int_equal(t.key_usage, PKI_KU_DIGITAL_SIGNATURE | PKI_KU_KEY_ENCIPHERMENT);
    assert_int_equal(t.ext_key_usage, PKI_EKU_SERVER_AUTH);
    assert_int_equal(t.ext_key_usage_oids.n, 1);
    assert_string_equal(t.ext_key_usage_oids.v[0], "1.2.3.4.99");
    assert_true(t.has_basic_constraints);
    assert_true(t.is_ca);
    assert_int_equal(t.max_path_length, 3);
    char fp1[PKI_KEY_FINGERPRINT_SIZE];
    char fp2[PKI_KEY_FINGERPRINT_SIZE];
    assert_int_equal(pki_key_fingerprint(k, fp1, errmsg), CF_OK);
    assert_int_equal(pki_key_fingerprint(req_key, fp2, errmsg), CF_OK);
    assert_int_equal(EVP_PKEY_eq(req_key, k), 1);
    assert_string_equal(fp1, fp2);

    /* The template read from the CSR round-trips into a certificate (use_csr_values). */
    t.is_ca = false;
    set_validity(&t, 60);
    X509 *root = make_root(k, "root");
    X509 *leaf = NULL;
    assert_int_equal(pki_x509_cert_build(&t, req_key, root, k, &leaf, errmsg), CF_OK);
    assert_int_equal(X509_check_host(leaf, "alt.example.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
    X509_free(leaf);
    X509_free(root);
    pki_x509_template_close(&t);
    X509_REQ_free(req);
    EVP_PKEY_free(req_key);
    cf_free(pem);

    /* A CSR without extensions and an Ed25519 one. */
    EVP_PKEY *ed = gen(PKI_KEY_ED25519, 0);
    pem = ossl_csr(ed, "plain", NULL, NULL, NULL, NULL);
    req = NULL;
    assert_int_equal(pki_x509_csr_parse(pem, strlen(pem), &req, &req_key, errmsg), CF_OK);
    assert_int_equal(EVP_PKEY_eq(req_key, ed), 1);
    EVP_PKEY_free(req_key);
    pki_x509_template_init(&t);
    assert_int_equal(pki_x509_csr_read(req, &t, errmsg), CF_OK);
    assert_false(t.has_basic_constraints);
    assert_int_equal(t.dns.n + t.key_usage + t.ext_key_usage, 0);
    pki_x509_template_close(&t);
    X509_REQ_free(req);
    cf_free(pem);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(k);
}

static void test_csr_create(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *k = gen(PKI_KEY_RSA, 2048);
    struct pki_x509_template t;
    pki_x509_template_init(&t);
    t.common_name = cf_strdup("Intermediate");
    add(&t.dns, "int.example.com");
    t.key_usage = PKI_KU_DIGITAL_SIGNATURE;
    for (int bc = 0; bc < 2; bc++) {
        X509_REQ *req = NULL;
        assert_int_equal(pki_x509_csr_create(&t, k, bc == 1, &req, errmsg), CF_OK);
        assert_int_equal(X509_REQ_verify(req, k), 1);
        assert_int_equal(X509_REQ_get_signature_nid(req), NID_sha256WithRSAEncryption);
        STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
        int crit = -1;
        BASIC_CONSTRAINTS *b = X509V3_get_d2i(exts, NID_basic_constraints, &crit, NULL);
        if (bc) {
            assert_non_null(b);
            assert_int_not_equal(b->ca, 0);
            assert_null(b->pathlen);
            assert_int_equal(crit, 1);
        } else {
            assert_null(b);
        }
        BASIC_CONSTRAINTS_free(b);
        GENERAL_NAMES *g = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
        assert_int_equal(sk_GENERAL_NAME_num(g), 1);
        GENERAL_NAMES_free(g);
        ASN1_BIT_STRING *ku = X509V3_get_d2i(exts, NID_key_usage, &crit, NULL);
        assert_int_equal(ASN1_BIT_STRING_get_bit(ku, 0), 1);
        ASN1_BIT_STRING_free(ku);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        X509_REQ_free(req);
    }
    pki_x509_template_close(&t);
    EVP_PKEY_free(k);
}

static void expect_csr_refused(const char *pem, const char *msg)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    X509_REQ *req = NULL;
    EVP_PKEY *key = NULL;
    int rv = pki_x509_csr_parse(pem, strlen(pem), &req, &key, errmsg);
    assert_null(key);
    if (rv != CF_EMALFORMED || strncmp(errmsg, msg, strlen(msg)) != 0) {
        fail_msg("rv=%d errmsg=\"%s\" want \"%s\"", rv, errmsg, msg);
    }
    assert_null(req);
}

static void test_csr_refusals(void **state)
{
    (void)state;
    EVP_PKEY *k = gen(PKI_KEY_EC, 256);
    char *pem = ossl_csr(k, "x", "DNS:x.example.com", NULL, NULL, NULL);

    /* Bad signature: flip one bit of the signature value (the last DER byte). */
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(req, &der);
    X509_REQ_free(req);
    der[len - 1] ^= 0x01;
    const unsigned char *p = der;
    req = d2i_X509_REQ(NULL, &p, len);
    assert_non_null(req);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, req);
    char *bp = NULL;
    long bl = BIO_get_mem_data(b, &bp);
    char *bad = cf_strndup(bp, (size_t)bl);
    BIO_free(b);
    X509_REQ_free(req);
    expect_csr_refused(bad, "request signature invalid");
    cf_free(bad);

    /* A flipped byte in the subject also breaks the signature. */
    char *cn = NULL;
    for (int i = 0; i + 1 < len; i++) {
        if (der[i] == 0x0c && der[i + 1] == 0x01 && der[i + 2] == 'x') {
            cn = (char *)der + i + 2;
            break;
        }
    }
    assert_non_null(cn);
    der[len - 1] ^= 0x01;
    *cn = 'y';
    b = BIO_new(BIO_s_mem());
    PEM_write_bio(b, "CERTIFICATE REQUEST", "", der, len);
    bl = BIO_get_mem_data(b, &bp);
    bad = cf_strndup(bp, (size_t)bl);
    BIO_free(b);
    expect_csr_refused(bad, "request signature invalid");
    cf_free(bad);

    /* Truncated DER, trailing DER, wrong label. */
    *cn = 'x';
    b = BIO_new(BIO_s_mem());
    PEM_write_bio(b, "CERTIFICATE REQUEST", "", der, len - 5);
    bl = BIO_get_mem_data(b, &bp);
    bad = cf_strndup(bp, (size_t)bl);
    BIO_free(b);
    expect_csr_refused(bad, "certificate request could not be parsed: decode:");
    cf_free(bad);
    unsigned char *longer = OPENSSL_malloc((size_t)len + 3);
    memcpy(longer, der, (size_t)len);
    memset(longer + len, 0, 3);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio(b, "NEW CERTIFICATE REQUEST", "", longer, len + 3);
    bl = BIO_get_mem_data(b, &bp);
    bad = cf_strndup(bp, (size_t)bl);
    BIO_free(b);
    expect_csr_refused(bad, "certificate request could not be parsed: trailing data");
    cf_free(bad);
    OPENSSL_free(longer);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio(b, "CERTIFICATE", "", der, len);
    bl = BIO_get_mem_data(b, &bp);
    bad = cf_strndup(bp, (size_t)bl);
    BIO_free(b);
    expect_csr_refused(bad,
                       "certificate request could not be parsed: PEM block type CERTIFICATE is "
                       "not a certificate request");
    cf_free(bad);
    OPENSSL_free(der);

    /* Signature algorithms: SHA-1 is accepted as Vault (Go) does; MD5, SHA-224 and DSA are
     * refused although the signatures are correct. */
    EVP_PKEY *rsa = gen(PKI_KEY_RSA, 2048);
    char *s1 = ossl_csr_md(rsa, EVP_sha1(), "x", NULL, NULL, NULL, NULL);
    X509_REQ *ok = NULL;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *ok_key = NULL;
    assert_int_equal(pki_x509_csr_parse(s1, strlen(s1), &ok, &ok_key, errmsg), CF_OK);
    X509_REQ_free(ok);
    EVP_PKEY_free(ok_key);
    cf_free(s1);
    EVP_MD *md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    assert_non_null(md5);
    s1 = ossl_csr_md(rsa, md5, "x", NULL, NULL, NULL, NULL);
    expect_csr_refused(s1, "request signature invalid");
    cf_free(s1);
    EVP_MD_free(md5);
    s1 = ossl_csr_md(rsa, EVP_sha224(), "x", NULL, NULL, NULL, NULL);
    expect_csr_refused(s1, "request signature invalid");
    cf_free(s1);
    EVP_PKEY_free(rsa);
    EVP_PKEY *params = NULL;
    EVP_PKEY *dsa = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL);
    assert_non_null(pc);
    assert_int_equal(EVP_PKEY_paramgen_init(pc), 1);
    assert_int_equal(EVP_PKEY_CTX_set_dsa_paramgen_bits(pc, 2048), 1);
    assert_int_equal(EVP_PKEY_paramgen(pc, &params), 1);
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
    assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
    assert_int_equal(EVP_PKEY_keygen(kc, &dsa), 1);
    s1 = ossl_csr_md(dsa, EVP_sha256(), "x", NULL, NULL, NULL, NULL);
    expect_csr_refused(s1, "request signature invalid");
    cf_free(s1);
    EVP_PKEY_free(dsa);
    EVP_PKEY_CTX_free(kc);
    EVP_PKEY_free(params);
    EVP_PKEY_CTX_free(pc);

    /* Two CSRs in one PEM, garbage, empty, broken base64. */
    size_t n = strlen(pem);
    char *two = cf_malloc(2 * n + 1);
    memcpy(two, pem, n);
    memcpy(two + n, pem, n + 1);
    expect_csr_refused(two, "csr contains more than one PEM block");
    cf_free(two);
    expect_csr_refused("", "csr contains no data");
    expect_csr_refused("garbage garbage", "csr contains no data");
    expect_csr_refused(
        "-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE "
        "REQUEST-----\n",
        "csr contains no data");
    expect_csr_refused(
        "-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE "
        "REQUEST-----\n",
        "certificate request could not be parsed");
    cf_free(pem);
    EVP_PKEY_free(k);
}

/* PEM of a request's DER (as written by OpenSSL, possibly altered). */
static char *der_to_csr_pem(const unsigned char *der, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio(b, "CERTIFICATE REQUEST", "", der, (long)len) > 0);
    char *bp = NULL;
    long bl = BIO_get_mem_data(b, &bp);
    char *s = cf_strndup(bp, (size_t)bl);
    BIO_free(b);
    return s;
}

/* The request's public key is read from its parameters (no OpenSSL decoder: the request's own
 * X509_PUBKEY stays undecoded) for every key kind Vault issues for, equal to the signer's key
 * and re-encoded to the same SubjectPublicKeyInfo; other keys go through OpenSSL's decoders. */
static void test_csr_key_direct(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    EVP_PKEY *compressed = gen(PKI_KEY_EC, 256);
    assert_int_equal(
        EVP_PKEY_set_utf8_string_param(compressed, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
        1);
    EVP_PKEY *keys[] = {gen(PKI_KEY_EC, 224), gen(PKI_KEY_EC, 256),   gen(PKI_KEY_EC, 384),
                        gen(PKI_KEY_EC, 521), gen(PKI_KEY_RSA, 2048), gen(PKI_KEY_ED25519, 0),
                        compressed,           EVP_EC_gen("secp256k1")};
    size_t n = sizeof(keys) / sizeof(keys[0]);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(keys[i]);
        bool direct = i + 1 < n; /* secp256k1 is left to OpenSSL's decoder */
        char *pem = ossl_csr(keys[i], "k.example.com", NULL, NULL, NULL, NULL);
        X509_REQ *req = NULL;
        EVP_PKEY *key = NULL;
        assert_int_equal(pki_x509_csr_parse(pem, strlen(pem), &req, &key, errmsg), CF_OK);
        assert_int_equal(EVP_PKEY_eq(key, keys[i]), 1);
        if (direct) {
            assert_null(X509_REQ_get0_pubkey(req));
        } else {
            assert_ptr_equal(X509_REQ_get0_pubkey(req), key);
        }
        ERR_clear_error();
        /* The certificate gets the key as OpenSSL encodes it (a compressed point stays so). */
        struct cf_buf spki;
        cf_buf_init(&spki);
        assert_int_equal(pki_key_spki_der(key, &spki), CF_OK);
        unsigned char *ref = NULL;
        int rn = i2d_PUBKEY(keys[i], &ref);
        assert_int_equal(spki.len, (size_t)rn);
        assert_memory_equal(spki.data, ref, spki.len);
        OPENSSL_free(ref);
        cf_buf_close(&spki);
        X509_REQ_free(req);
        EVP_PKEY_free(key);
        cf_free(pem);
    }

    /* A point that is not on its curve: refused as undecodable, as OpenSSL's decoder does. */
    char *pem = ossl_csr(keys[1], "k.example.com", NULL, NULL, NULL, NULL);
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(req, &der);
    X509_REQ_free(req);
    uint8_t point[65];
    size_t plen = 0;
    assert_int_equal(EVP_PKEY_get_octet_string_param(keys[1], OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                     point, sizeof(point), &plen),
                     1);
    unsigned char *at = memmem(der, (size_t)len, point, plen);
    assert_non_null(at);
    at[plen - 1] ^= 0x01;
    char *bad = der_to_csr_pem(der, (size_t)len);
    expect_csr_refused(bad,
                       "certificate request could not be parsed: public key could not be "
                       "decoded");
    cf_free(bad);
    OPENSSL_free(der);
    cf_free(pem);
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY_free(keys[i]);
    }
}

static void test_bundle(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct chain c = {0};
    build_chain(&c);
    char *root_pem = NULL;
    char *int_pem = NULL;
    struct cf_secret *key_pem = NULL;
    assert_int_equal(pki_x509_cert_to_pem(c.root, &root_pem, errmsg), CF_OK);
    assert_int_equal(pki_x509_cert_to_pem(c.inter, &int_pem, errmsg), CF_OK);
    assert_int_equal(pki_key_to_pem(c.int_key, PKI_KEY_FORMAT_DER, &key_pem, errmsg), CF_OK);
    assert_true(root_pem[strlen(root_pem) - 1] == '-');
    char buf[16384];
    snprintf(buf, sizeof(buf), "%s\n%s\nsome comment\n%s\n", int_pem, (const char *)key_pem->data,
             root_pem);
    struct pki_x509_bundle b;
    assert_int_equal(pki_x509_bundle_parse(buf, strlen(buf), &b, errmsg), CF_OK);
    assert_int_equal(b.n_certs, 2);
    assert_int_equal(b.n_keys, 1);
    assert_int_equal(X509_cmp(b.certs[0], c.inter), 0);
    assert_int_equal(X509_cmp(b.certs[1], c.root), 0);
    assert_int_equal(EVP_PKEY_eq(b.keys[0], c.int_key), 1);
    pki_x509_bundle_close(&b);

    X509 *x = NULL;
    assert_int_equal(pki_x509_cert_from_pem(buf, strlen(buf), &x, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "2 certificates found in PEM file, expected 1");
    assert_int_equal(pki_x509_cert_from_pem(root_pem, strlen(root_pem), &x, errmsg), CF_OK);
    assert_int_equal(X509_cmp(x, c.root), 0);
    X509_free(x);
    x = NULL;
    const char *k = (const char *)key_pem->data;
    assert_int_equal(pki_x509_cert_from_pem(k, strlen(k), &x, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "0 certificates found in PEM file, expected 1");

    /* DER and base64 forms agree with OpenSSL's encoding. */
    uint8_t *der = NULL;
    size_t dlen = 0;
    assert_int_equal(pki_x509_cert_to_der(c.leaf, &der, &dlen, errmsg), CF_OK);
    unsigned char *ref = NULL;
    int rlen = i2d_X509(c.leaf, &ref);
    assert_int_equal(dlen, (size_t)rlen);
    assert_memory_equal(der, ref, dlen);
    char *b64 = NULL;
    assert_int_equal(pki_x509_cert_to_base64(c.leaf, &b64, errmsg), CF_OK);
    unsigned char *dec = cf_malloc(strlen(b64));
    int declen = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)strlen(b64));
    assert_true(declen >= rlen);
    assert_memory_equal(dec, ref, (size_t)rlen);
    cf_free(dec);
    cf_free(b64);
    assert_int_equal(pki_x509_cert_from_der(der, dlen, &x, errmsg), CF_OK);
    X509_free(x);
    assert_int_equal(pki_x509_cert_from_der(der, dlen - 1, &x, errmsg), CF_EMALFORMED);
    OPENSSL_free(ref);
    cf_free(der);

    /* Refusals. */
    const struct
    {
        const char *pem;
        int rv;
        const char *msg;
    } bad[] = {
        {"", CF_EMALFORMED, "no data found in PEM block"},
        {"just text\n", CF_EMALFORMED, "no data found in PEM block"},
        {"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n", CF_EMALFORMED,
         "certificate could not be parsed"},
        {"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n", CF_EMALFORMED,
         "failed to decode PEM block"},
        {"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n", CF_EMALFORMED,
         "unsupported PEM block type X509 CRL"},
        {"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
         CF_EUNSUPPORTED, "encrypted private keys are not supported"},
        {"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n", CF_EMALFORMED,
         "failed to parse PRIVATE KEY"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = pki_x509_bundle_parse(bad[i].pem, strlen(bad[i].pem), &b, errmsg);
        if (rv != bad[i].rv || strncmp(errmsg, bad[i].msg, strlen(bad[i].msg)) != 0) {
            fail_msg("case %zu: rv=%d errmsg=\"%s\"", i, rv, errmsg);
        }
        pki_x509_bundle_close(&b);
    }
    /* A valid block followed by a damaged one. */
    snprintf(buf, sizeof(buf), "%s\n-----BEGIN CERTIFICATE-----\nMIIB\n", root_pem);
    assert_int_equal(pki_x509_bundle_parse(buf, strlen(buf), &b, errmsg), CF_EMALFORMED);
    assert_string_equal(errmsg, "failed to decode PEM block");
    pki_x509_bundle_close(&b);

    cf_free(root_pem);
    cf_free(int_pem);
    cf_secret_free(key_pem);
    free_chain(&c);
}

static void test_chain_build(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct chain c = {0};
    build_chain(&c);
    EVP_PKEY *ok = gen(PKI_KEY_EC, 256);
    X509 *unrelated = make_root(ok, "Coffer Intermediate");
    X509 *pool[] = {c.root, unrelated, c.leaf, c.inter, c.root, c.inter};
    struct pki_x509_chain ch;
    assert_int_equal(pki_x509_chain_build(c.leaf, pool, 6, &ch, errmsg), CF_OK);
    assert_int_equal(ch.n, 3);
    assert_ptr_equal(ch.v[0], c.leaf);
    assert_ptr_equal(ch.v[1], c.inter);
    assert_ptr_equal(ch.v[2], c.root);
    pki_x509_chain_close(&ch);
    /* Missing root: stops at the intermediate. A root alone is a chain of one. */
    X509 *pool2[] = {unrelated, c.inter};
    assert_int_equal(pki_x509_chain_build(c.leaf, pool2, 2, &ch, errmsg), CF_OK);
    assert_int_equal(ch.n, 2);
    pki_x509_chain_close(&ch);
    assert_int_equal(pki_x509_chain_build(c.root, pool, 6, &ch, errmsg), CF_OK);
    assert_int_equal(ch.n, 1);
    pki_x509_chain_close(&ch);
    assert_int_equal(pki_x509_chain_build(c.leaf, NULL, 0, &ch, errmsg), CF_OK);
    assert_int_equal(ch.n, 1);
    pki_x509_chain_close(&ch);
    X509_free(unrelated);
    EVP_PKEY_free(ok);
    free_chain(&c);
}

static void test_names_and_serials(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    uint32_t bit = 0;
    assert_int_equal(pki_x509_key_usage_parse("digitalsignature", &bit, errmsg), CF_OK);
    assert_int_equal(bit, PKI_KU_DIGITAL_SIGNATURE);
    assert_int_equal(pki_x509_key_usage_parse(" CRLSign ", &bit, errmsg), CF_OK);
    assert_int_equal(bit, PKI_KU_CRL_SIGN);
    assert_int_equal(pki_x509_key_usage_parse("DecipherOnly", &bit, errmsg), CF_OK);
    assert_int_equal(bit, PKI_KU_DECIPHER_ONLY);
    assert_int_equal(pki_x509_key_usage_parse("Signing", &bit, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unknown key usage Signing");
    assert_int_equal(pki_x509_ext_key_usage_parse("serverauth", &bit, errmsg), CF_OK);
    assert_int_equal(bit, PKI_EKU_SERVER_AUTH);
    assert_int_equal(pki_x509_ext_key_usage_parse("NetscapeServerGatedCrypto", &bit, errmsg),
                     CF_OK);
    assert_int_equal(bit, PKI_EKU_NS_SGC);
    assert_int_equal(pki_x509_ext_key_usage_parse("WebAuth", &bit, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "unknown ext key usage WebAuth");

    char out[PKI_X509_SERIAL_HEX_SIZE];
    assert_int_equal(pki_x509_serial_normalize("1A-2B-3c", out, errmsg), CF_OK);
    assert_string_equal(out, "1a:2b:3c");
    assert_int_equal(pki_x509_serial_normalize("0f", out, errmsg), CF_OK);
    assert_string_equal(out, "0f");
    static const char *bad[] = {"", "1", "1a:2", "1a-2b:3c", "1a::2b", "zz", "1a:2b:", "1a2b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pki_x509_serial_normalize(bad[i], out, errmsg), CF_EINVAL);
    }
    assert_string_equal(errmsg, "invalid serial number 1a2b");
}

/* Rule T3: allocation failures in CSR reading and bundle parsing leak nothing. */
static void test_alloc_failures(void **state)
{
    (void)state;
    char errmsg[CF_ERRMSG_SIZE];
    struct chain c = {0};
    build_chain(&c);
    EVP_PKEY *k = gen(PKI_KEY_EC, 256);
    char *csr = ossl_csr(k, "svc", "DNS:a.example.com,IP:10.0.0.1,URI:https://x/y", NULL,
                         "serverAuth,1.2.3.4", NULL);
    X509_REQ *req = NULL;
    EVP_PKEY *req_key = NULL;
    assert_int_equal(pki_x509_csr_parse(csr, strlen(csr), &req, &req_key, errmsg), CF_OK);
    EVP_PKEY_free(req_key);
    char *root_pem = NULL;
    assert_int_equal(pki_x509_cert_to_pem(c.root, &root_pem, errmsg), CF_OK);
    char buf[8192];
    snprintf(buf, sizeof(buf), "%s\n%s\n", root_pem, root_pem);
    for (int which = 0; which < 2; which++) {
        for (unsigned long n = 1;; n++) {
            long live = cf_mem_live();
            struct pki_x509_template t;
            struct pki_x509_bundle b;
            pki_x509_template_init(&t);
            cf_mem_fail_after(n);
            int rv = which == 0 ? pki_x509_csr_read(req, &t, errmsg)
                                : pki_x509_bundle_parse(buf, strlen(buf), &b, errmsg);
            cf_mem_fail_after(0);
            if (which == 0) {
                pki_x509_template_close(&t);
            } else {
                pki_x509_bundle_close(&b);
            }
            assert_int_equal(cf_mem_live(), live);
            if (rv == CF_OK) {
                break;
            }
            assert_int_equal(rv, CF_ENOMEM);
        }
    }
    cf_free(root_pem);
    X509_REQ_free(req);
    cf_free(csr);
    EVP_PKEY_free(k);
    free_chain(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_verifies),
        cmocka_unit_test(test_chain_openssl_cli),
        cmocka_unit_test(test_extensions_read_back),
        cmocka_unit_test(test_name_constraints_enforced),
        cmocka_unit_test(test_every_key_type),
        cmocka_unit_test(test_pss_and_signature_bits),
        cmocka_unit_test(test_template_refusals),
        cmocka_unit_test(test_csr_read_openssl_written),
        cmocka_unit_test(test_csr_create),
        cmocka_unit_test(test_csr_refusals),
        cmocka_unit_test(test_csr_key_direct),
        cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_chain_build),
        cmocka_unit_test(test_names_and_serials),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
