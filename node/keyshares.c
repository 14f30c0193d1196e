/*
 * Key shares as operators enter them (sys/unseal, sys/generate-root/update, the rekey updates):
 * decoding as Vault does (hex first, then standard base64), duplicates ignored, combination at
 * the threshold; and the check of a combined key against the key it must equal (the unseal key
 * the node holds cloaked, or the recovery key the seal keeps), in constant time.
 */
#include <string.h>

#include "lib/crypto.h"
#include "lib/shamir.h"
#include "node/internal.h"

#define SHARE_MIN 16
#define SHARE_MAX 33 /* a 32-byte key plus the x-coordinate */

static int decode(const char *s, struct cf_secret **out)
{
    size_t slen = strlen(s);
    uint8_t buf[256];
    size_t n = 0;
    if (cf_hex_decode(s, slen, buf, sizeof(buf), &n) == CF_OK) {
        *out = cf_secret_from(buf, n);
        cf_cleanse(buf, sizeof(buf));
        return *out ? CF_OK : CF_ENOMEM;
    }
    uint8_t *b = NULL;
    if (cf_base64_decode(s, slen, &b, &n) != CF_OK) {
        return CF_EMALFORMED;
    }
    *out = cf_secret_from(b, n);
    cf_cleanse(b, n);
    cf_free(b);
    return *out ? CF_OK : CF_ENOMEM;
}

int node__shares_add(struct node_share_set *set, const char *text)
{
    struct cf_secret *key = NULL;
    int rv = decode(text, &key);
    if (rv != CF_OK) {
        return rv;
    }
    if (key->len < SHARE_MIN || key->len > SHARE_MAX) {
        cf_secret_free(key);
        return CF_EINVAL;
    }
    for (unsigned i = 0; i < set->n; i++) {
        const struct cf_secret *p = set->parts[i];
        if (p->len == key->len && cf_ct_equal(p->data, key->data, key->len)) {
            cf_secret_free(key);
            return CF_EEXIST;
        }
    }
    if (set->n == NODE_MAX_SHARES) {
        cf_secret_free(key);
        return CF_ETOOBIG;
    }
    if (set->n == 0) {
        cf_uuid_v4(set->nonce);
    }
    set->parts[set->n++] = key;
    return CF_OK;
}

bool node__shares_take(struct node_share_set *set,
                       struct node_request *req,
                       const char *nonce,
                       const char *invalid_msg)
{
    json_t *jkey = json_object_get(req->data, "key");
    if (nonce != NULL) {
        const char *given = json_string_value(json_object_get(req->data, "nonce"));
        if (!json_is_string(jkey) || json_string_length(jkey) == 0) {
            node_request_done(req, node_response_error(400,
                                                       "'key' must be specified in request "
                                                       "body as JSON"));
            return false;
        }
        if (given == NULL || strcmp(given, nonce) != 0) {
            node_request_done(req, node_response_error(400, "incorrect nonce supplied"));
            return false;
        }
    }
    int rv = node__shares_add(set, json_string_value(jkey));
    if (rv == CF_EMALFORMED) {
        node_request_done(req,
                          node_response_error(400, "'key' must be a valid hex or base64 string"));
        return false;
    }
    if (rv == CF_EINVAL) {
        node_request_done(req, node_response_error(400, "%s", invalid_msg));
        return false;
    }
    if (rv != CF_OK && rv != CF_EEXIST) { /* the same share twice does not count */
        node_request_done(req, NULL);
        return false;
    }
    return true;
}

int node__shares_combine(const struct node_share_set *set, struct cf_secret **out)
{
    if (set->n == 0) {
        return CF_EINVAL;
    }
    if (set->n == 1) {
        *out = cf_secret_from(set->parts[0]->data, set->parts[0]->len);
        return *out ? CF_OK : CF_ENOMEM;
    }
    const uint8_t *parts[NODE_MAX_SHARES];
    size_t plen = set->parts[0]->len;
    for (unsigned i = 0; i < set->n; i++) {
        if (set->parts[i]->len != plen) {
            return CF_EINVAL;
        }
        parts[i] = set->parts[i]->data;
    }
    return cf_shamir_combine(parts, plen, set->n, out);
}

void node__shares_reset(struct node_share_set *set)
{
    for (unsigned i = 0; i < set->n; i++) {
        cf_secret_free(set->parts[i]);
        set->parts[i] = NULL;
    }
    set->n = 0;
    set->nonce[0] = '\0';
}

int node__key_verify(struct node_core *core,
                     bool recovery,
                     const struct cf_secret *key,
                     char errmsg[CF_ERRMSG_SIZE])
{
    struct cf_secret *want = NULL;
    int rv;
    if (!recovery) {
        rv = core->unseal_key ? cf_cloak_open(core->unseal_key, &want) : CF_ESEALED;
    } else {
        struct node_seal *seal = core->migrating ? core->old_seal : core->auto_seal;
        rv = seal ? node__seal_kept_key(core, seal, NODE_KEY_RECOVERY_KEY, &want, errmsg)
                  : CF_EINVAL;
    }
    if (rv != CF_OK) {
        if (errmsg[0] == '\0') {
            cf_errmsg_printf(errmsg, "read the %s key: %s", recovery ? "recovery" : "unseal",
                             cf_strerror(rv));
        }
        return rv;
    }
    bool same = want->len == key->len && cf_ct_equal(want->data, key->data, key->len);
    cf_secret_free(want);
    return same ? CF_OK : CF_EAUTH;
}

int node__shares_split(const struct cf_secret *key,
                       unsigned n,
                       unsigned t,
                       json_t **hex_out,
                       json_t **b64_out)
{
    json_t *hex = json_array();
    json_t *b64 = json_array();
    struct cf_secret **shares = NULL;
    int rv = (hex && b64) ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK && n > 1) {
        rv = cf_shamir_split(key->data, key->len, n, t, &shares);
    }
    for (unsigned i = 0; rv == CF_OK && i < n; i++) {
        const struct cf_secret *s = shares ? shares[i] : key;
        char h[2 * (32 + 1) + 1];
        cf_hex_encode(s->data, s->len, h);
        char *b = cf_base64_encode(s->data, s->len);
        if (b == NULL) {
            rv = CF_ENOMEM;
            break;
        }
        json_array_append_new(hex, json_string(h));
        json_array_append_new(b64, json_string(b));
        cf_cleanse(h, sizeof(h));
        cf_cleanse(b, strlen(b));
        cf_free(b);
    }
    if (shares != NULL) {
        cf_shamir_free_shares(shares, n);
    }
    if (rv != CF_OK) {
        json_decref(hex);
        json_decref(b64);
        return rv;
    }
    *hex_out = hex;
    *b64_out = b64;
    return CF_OK;
}
