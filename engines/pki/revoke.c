/*
 * Stored certificates and revocation entries (revoke.h), and the revocation endpoints.
 */
#include "engines/pki/revoke.h"

#include <string.h>

#include "engines/pki/pki.h"
#include "lib/mem.h"

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
