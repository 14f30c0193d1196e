/*
 * PKI roles (pki.md 2): the role struct, its JSON forms (request body -> role with Vault's
 * defaults and errors, role -> Vault's read shape, stable storage encoding), and the role
 * endpoints (role.c). The name policy that decides which names a role lets into a certificate
 * (pki.md 2.4) is names.c, declared here too because it works on the role struct.
 */
#ifndef CF_ENGINES_PKI_ROLE_H_
#define CF_ENGINES_PKI_ROLE_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "engines/pki/key.h"
#include "engines/pki/x509.h"
#include "lib/err.h"

/* cn_validations bits; an empty set means the default {email, hostname}. */
#define PKI_CN_VALIDATE_EMAIL (1u << 0)
#define PKI_CN_VALIDATE_HOSTNAME (1u << 1)
#define PKI_CN_VALIDATE_DISABLED (1u << 2)

/* One role. Lists are owned string lists (x509.h); initialise with pki_role_init (Vault's
 * defaults), release with pki_role_close. */
struct pki_role
{
    char *name;       /* owned */
    char *issuer_ref; /* owned; "default" */
    int64_t ttl_s;    /* 0 = mount default */
    int64_t max_ttl_s;
    int64_t not_before_duration_s; /* 30 */
    char *not_after;               /* owned; "" = none; RFC3339 */

    /* Name policy (pki.md 2.4). */
    bool allow_localhost; /* true */
    struct pki_x509_strs allowed_domains;
    bool allowed_domains_template;
    bool allow_bare_domains;
    bool allow_subdomains;
    bool allow_glob_domains;
    bool allow_wildcard_certificates; /* true */
    bool allow_any_name;
    bool enforce_hostnames; /* true */
    bool allow_ip_sans;     /* true */
    struct pki_x509_strs allowed_uri_sans;
    bool allowed_uri_sans_template;
    struct pki_x509_strs allowed_other_sans; /* "oid;UTF8:glob" entries or "*" */
    struct pki_x509_strs allowed_serial_numbers;
    struct pki_x509_strs allowed_user_ids;
    uint32_t cn_validations;  /* PKI_CN_VALIDATE_ bits */
    bool require_cn;          /* true */
    bool use_csr_common_name; /* true */
    bool use_csr_sans;        /* true */

    /* Keys and signatures. */
    bool key_type_any;
    enum pki_key_type key_type; /* rsa; meaningless when key_type_any */
    int key_bits;               /* resolved: 2048 / 256 / 0 */
    int signature_bits;         /* resolved: 256 for rsa, 0 otherwise */
    bool use_pss;

    /* Extensions. */
    struct pki_x509_strs key_usage; /* names as given; default DigitalSignature, KeyAgreement,
                                       KeyEncipherment */
    uint32_t key_usage_bits;        /* PKI_KU_ bits of key_usage */
    struct pki_x509_strs ext_key_usage;
    uint32_t ext_key_usage_bits; /* PKI_EKU_ bits of ext_key_usage and the four flags */
    struct pki_x509_strs ext_key_usage_oids;
    bool server_flag; /* true */
    bool client_flag; /* true */
    bool code_signing_flag;
    bool email_protection_flag;
    struct pki_x509_strs policy_identifiers; /* dotted OIDs */
    bool basic_constraints_valid_for_non_ca;

    /* Subject. */
    struct pki_x509_strs ou;
    struct pki_x509_strs organization;
    struct pki_x509_strs country;
    struct pki_x509_strs locality;
    struct pki_x509_strs province;
    struct pki_x509_strs street_address;
    struct pki_x509_strs postal_code;

    /* Storage and leases. */
    bool generate_lease;
    bool no_store;
    bool no_store_metadata;
};

/* Sets every field to Vault's default (a role written with an empty body). Aborts on OOM
 * (a few short strings). */
void pki_role_init(struct pki_role *r);
/* Frees every owned field; the role is zeroed afterwards. NULL-safe. */
void pki_role_close(struct pki_role *r);

/* Storage ----------------------------------------------------------------------------------- */

struct pki_engine;
struct node_request;

/* role.c: LIST roles, GET/POST/PATCH/DELETE roles/:name. False when rel_path is not a role
 * path. */
bool pki_role_handle(struct pki_engine *e, struct node_request *req);

/* Applies the fields present in data (a request body or a stored role) to r, then checks and
 * resolves the whole role (key bits, signature bits, usages, ttl <= max_ttl ...). Vault's
 * messages in errmsg (CF_EINVAL); warnings (may be NULL) gets Vault's role warnings. */
int pki_role_apply(struct pki_role *r, const json_t *data, json_t *warnings, char *errmsg);

/* The role as GET roles/:name returns it (also its storage form). */
json_t *pki_role_to_json(const struct pki_role *r);

/* Existence check for the ACL: false only for roles/<name> that is not stored. */
bool pki_role_exists(struct pki_engine *e, const char *rel_path);

/* Loads role @name. CF_ENOTFOUND when absent; on success @r (initialised here) must be closed
 * by the caller. */
int pki_role_load(struct pki_engine *e, const char *name, struct pki_role *r, char *errmsg);

/* Name policy (names.c, pki.md 2.4) ----------------------------------------------------------
 *
 * All functions are pure: they read the role and the names and never keep state. "Allowed"
 * returns CF_OK; a refusal returns CF_EINVAL (Vault answers 400) with Vault's message in
 * errmsg. Names are compared as Vault does: hostnames case-insensitively, after IDNA to ASCII
 * when enforce_hostnames is set.
 */

/* validateNames for one name (a DNS name, a wildcard or an email address): true when the role
 * lets it in. */
bool pki_names_allowed(const struct pki_role *r, const char *name);

/* validateCommonName: the CN against the role (cn_validations, then pki_names_allowed).
 * Refusal: "common name %s not allowed by this role". An empty CN is allowed here (require_cn
 * is checked by the caller). */
int pki_names_check_cn(const struct pki_role *r, const char *cn, char *errmsg);

/* DNS SANs and email SANs. Refusals: "subject alternate name %s not allowed by this role",
 * "email address %s not allowed by this role". */
int pki_names_check_dns(const struct pki_role *r, const struct pki_x509_strs *dns, char *errmsg);
int pki_names_check_email(const struct pki_role *r,
                          const struct pki_x509_strs *email,
                          char *errmsg);

/* IP SANs (text form). from_csr picks "the API" or "CSR" in the message. Refusals: "the value
 * %q is not a valid IP address" (Go's %q quoting), "IP Subject Alternative Names are not
 * allowed in this role, but was provided via %s". */
int pki_names_check_ips(const struct pki_role *r,
                        const struct pki_x509_strs *ips,
                        bool from_csr,
                        char *errmsg);

/* URI SANs against allowed_uri_sans globs. Refusals: "URI Subject Alternative Names are not
 * allowed in this role, but were provided via the API" (or "via CSR"), "URI Subject
 * Alternative Names were provided via the API which are not valid for this role" (or "via CSR
 * which are"), "the provided URI Subject Alternative Name %q is not a valid URI". */
int pki_names_check_uris(const struct pki_role *r,
                         const struct pki_x509_strs *uris,
                         bool from_csr,
                         char *errmsg);

/* other_sans against allowed_other_sans. Refusals: "other SAN %s not allowed for OID %s by
 * this role", "other SAN OID %s not allowed by this role". */
int pki_names_check_other_sans(const struct pki_role *r,
                               const struct pki_x509_other_san *sans,
                               size_t n,
                               char *errmsg);

/* Parses one other_sans request item "oid;UTF8:value" (also "UTF-8"); CF_EINVAL with
 * "invalid other_sans value %s" style messages otherwise. *oid and *value are cf_malloc'd. */
int pki_names_parse_other_san(const char *item, char **oid, char **value, char *errmsg);

/* The subject serial_number attribute against allowed_serial_numbers globs. "" is allowed.
 * Refusal: "serial_number %s not allowed by this role". */
int pki_names_check_serial_number(const struct pki_role *r, const char *sn, char *errmsg);

/* user_ids against allowed_user_ids (case-insensitive exact or glob, "*" any). Refusal:
 * "user_id %s is not allowed by this role". */
int pki_names_check_user_ids(const struct pki_role *r,
                             const struct pki_x509_strs *ids,
                             char *errmsg);

/* True when name (after IDNA ToASCII) is hostname-shaped as the SAN assembly wants: Vault adds
 * a CN to the DNS SANs and keeps a DNS alt name only when this holds. *ascii (optional) gets the
 * cf_malloc'd ASCII form. */
bool pki_names_hostname_ascii(const char *name, char **ascii);

/* Go-style glob used by the role: '*' matches any run of characters, dots included; no other
 * metacharacters. Case-sensitive. */
bool pki_names_glob(const char *pattern, const char *s);

#endif
