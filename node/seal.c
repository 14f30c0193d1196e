/*
 * The seal stanza helpers and the choice of seal by type (node/seal.h).
 */
#include "node/seal.h"

#include <string.h>

#include "lib/mem.h"

const char *node_seal_param(const struct node_seal_stanza *st, const char *key)
{
    for (size_t i = 0; i < st->n_params; i++) {
        if (strcmp(st->keys[i], key) == 0) {
            return st->values[i];
        }
    }
    return NULL;
}

int node_seal_check_params(const struct node_seal_stanza *st,
                           const char *const *allowed,
                           char errmsg[CF_ERRMSG_SIZE])
{
    for (size_t i = 0; i < st->n_params; i++) {
        bool known = false;
        for (const char *const *a = allowed; *a != NULL && !known; a++) {
            known = strcmp(*a, st->keys[i]) == 0;
        }
        if (!known) {
            cf_errmsg_printf(errmsg, "seal \"%s\": unknown field \"%s\"", st->type, st->keys[i]);
            return CF_EINVAL;
        }
    }
    return CF_OK;
}

void node_seal_stanza_clear(struct node_seal_stanza *st)
{
    if (st == NULL) {
        return;
    }
    for (size_t i = 0; i < st->n_params; i++) {
        cf_free(st->keys[i]);
        if (st->values[i] != NULL) {
            cf_cleanse(st->values[i], strlen(st->values[i])); /* may hold a PIN */
        }
        cf_free(st->values[i]);
    }
    memset(st, 0, sizeof(*st));
}

int node_seal_open(const struct node_seal_stanza *st,
                   struct node_seal **out,
                   char errmsg[CF_ERRMSG_SIZE])
{
    *out = NULL;
    if (strcmp(st->type, "shamir") == 0) {
        return CF_OK;
    }
    if (strcmp(st->type, "static") == 0) {
        return node_seal_static_open(st, out, errmsg);
    }
    if (strcmp(st->type, "pkcs11") == 0) {
        return node_seal_pkcs11_open(st, out, errmsg);
    }
    cf_errmsg_printf(errmsg,
                     "seal type \"%s\" is not supported; use \"shamir\", \"static\" or "
                     "\"pkcs11\"",
                     st->type);
    return CF_EUNSUPPORTED;
}
