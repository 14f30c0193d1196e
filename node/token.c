/*
 * Tokens, as far as the foundation needs them: the root token made at init. Tokens are never
 * stored in plaintext: an entry lives under sys/token/id/<hex HMAC-SHA256(salt, token)>, so a
 * lookup is one keyed hash and one map probe, and the hash comparison happens inside the map
 * on values that do not depend on the token bytes an attacker controls in any useful way.
 * The full token store (the auth/token endpoints) replaces this with the tokens issue.
 */
#include <string.h>

#include "lib/crypto.h"
#include "node/internal.h"

static const char base62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int node__token_generate(char out[29])
{
    memcpy(out, "hvs.", 4);
    size_t n = 4;
    while (n < 28) {
        uint8_t r[32];
        int rv = cf_random(r, sizeof(r));
        if (rv != CF_OK) {
            return rv;
        }
        for (size_t i = 0; i < sizeof(r) && n < 28; i++) {
            if (r[i] < 248) { /* 248 = 62 * 4: keeps the choice uniform */
                out[n++] = base62[r[i] % 62];
            }
        }
        cf_cleanse(r, sizeof(r));
    }
    out[28] = '\0';
    return CF_OK;
}

int node__token_key(const struct cf_secret *salt, const char *token, char out[128])
{
    uint8_t mac[32];
    int rv = cf_hmac_sha256(salt->data, salt->len, token, strlen(token), mac);
    if (rv != CF_OK) {
        return rv;
    }
    size_t plen = strlen(NODE_PREFIX_TOKEN);
    memcpy(out, NODE_PREFIX_TOKEN, plen);
    cf_hex_encode(mac, sizeof(mac), out + plen);
    return CF_OK;
}

bool node__token_valid(struct node_core *core, const char *token)
{
    if (core->token_salt == NULL || token[0] == '\0' || strlen(token) > 512) {
        return false;
    }
    char key[128];
    if (node__token_key(core->token_salt, token, key) != CF_OK) {
        return false;
    }
    uint8_t *val = NULL;
    size_t len = 0;
    if (node__get(core, key, &val, &len) != CF_OK) {
        return false;
    }
    cf_free(val);
    return true;
}
