/*
 * PKI roles (pki.md 2.1, 2.2): Vault's defaults, the request body -> role conversion with
 * Vault's checks and messages, the read shape, the storage encoding and the role endpoints.
 */
#include <string.h>

#include "engines/pki/role.h"
#include "lib/mem.h"

static const char *const default_key_usage[] = {
    "DigitalSignature",
    "KeyAgreement",
    "KeyEncipherment",
};

void pki_role_init(struct pki_role *r)
{
    memset(r, 0, sizeof(*r));
    r->not_before_duration_s = 30;
    r->allow_localhost = true;
    r->allow_wildcard_certificates = true;
    r->enforce_hostnames = true;
    r->allow_ip_sans = true;
    r->cn_validations = PKI_CN_VALIDATE_EMAIL | PKI_CN_VALIDATE_HOSTNAME;
    r->require_cn = true;
    r->use_csr_common_name = true;
    r->use_csr_sans = true;
    r->key_type = PKI_KEY_RSA;
    r->key_bits = 2048;
    r->signature_bits = 256;
    r->server_flag = true;
    r->client_flag = true;
    r->key_usage_bits = PKI_KU_DIGITAL_SIGNATURE | PKI_KU_KEY_AGREEMENT | PKI_KU_KEY_ENCIPHERMENT;
    r->ext_key_usage_bits = PKI_EKU_SERVER_AUTH | PKI_EKU_CLIENT_AUTH;
    for (size_t i = 0; i < sizeof(default_key_usage) / sizeof(default_key_usage[0]); i++) {
        if (pki_x509_strs_add(&r->key_usage, default_key_usage[i]) != CF_OK) {
            cf_oom_abort();
        }
    }
}

void pki_role_close(struct pki_role *r)
{
    if (r == NULL) {
        return;
    }
    cf_free(r->name);
    cf_free(r->issuer_ref);
    cf_free(r->not_after);
    struct pki_x509_strs *lists[] = {
        &r->allowed_domains,    &r->allowed_uri_sans,
        &r->allowed_other_sans, &r->allowed_serial_numbers,
        &r->allowed_user_ids,   &r->key_usage,
        &r->ext_key_usage,      &r->ext_key_usage_oids,
        &r->policy_identifiers, &r->ou,
        &r->organization,       &r->country,
        &r->locality,           &r->province,
        &r->street_address,     &r->postal_code,
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        pki_x509_strs_close(lists[i]);
    }
    memset(r, 0, sizeof(*r));
}
