/*
 * Auto-unseal: the unseal key kept by a seal (node/seal.h) instead of by operators' shares.
 *
 * At init the unseal key and a new 32-byte recovery key are encrypted by the seal and stored
 * raw (outside the barrier, which they open): core/seal-unseal-key and core/recovery-key, each
 * bound to its key name through the AAD. The recovery key is split into the recovery shares that
 * init returns. At start, and whenever an operator asks through sys/unseal, the node decrypts
 * the unseal key with the seal and opens the barrier; a seal that fails leaves the node sealed.
 */
#include <string.h>

#include "lib/crypto.h"
#include "node/internal.h"

#define CF_LOG_MODULE "seal"
#include "lib/log.h"

#define RECOVERY_KEY_LEN 32

int node__seal_kept_key(struct node_core *core,
                        struct node_seal *seal,
                        const char *name,
                        struct cf_secret **out,
                        char errmsg[CF_ERRMSG_SIZE])
{
    const uint8_t *ct;
    size_t ct_len;
    if (node__raw_get(core, name, &ct, &ct_len) != CF_OK) {
        cf_errmsg_printf(errmsg, "%s is missing from storage", name);
        return CF_ECORRUPT;
    }
    uint8_t *pt = NULL;
    size_t len = 0;
    int rv =
        node_seal_decrypt(seal, (const uint8_t *)name, strlen(name), ct, ct_len, &pt, &len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    *out = cf_secret_from(pt, len);
    cf_cleanse(pt, len);
    cf_free(pt);
    return *out ? CF_OK : CF_ENOMEM;
}

int node__auto_unseal(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    struct node_seal *seal = core->auto_seal;
    errmsg[0] = '\0';
    if (seal == NULL || !core->sealed || !node__initialized(core) || !seal->ops->ready(seal)) {
        return CF_OK;
    }
    if (strcmp(core->seal.type, seal->ops->type) != 0) {
        cf_errmsg_printf(errmsg,
                         "storage was initialized with seal \"%s\" but the configuration has "
                         "seal \"%s\"; keep the old seal's block with disabled = \"true\" to "
                         "migrate",
                         core->seal.type, seal->ops->type);
        return CF_EINVAL;
    }
    struct cf_secret *key = NULL;
    int rv = node__seal_kept_key(core, seal, NODE_KEY_SEAL_UNSEAL_KEY, &key, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    rv = node__unseal_with_key(core, key->data, key->len, errmsg);
    cf_secret_free(key);
    if (rv == CF_OK) {
        CF_LOG(CF_LOG_INFO, "unsealed by seal \"%s\"", seal->ops->type);
    }
    return rv;
}

int node__seal_kept_key_put(struct node_seal *seal,
                            struct rft_batch *b,
                            const char *name,
                            const struct cf_secret *v,
                            char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    int rv = node_seal_encrypt(seal, (const uint8_t *)name, strlen(name), v->data, v->len, &ct,
                               &ct_len, errmsg);
    if (rv == CF_OK) {
        rv = rft_batch_put(b, name, ct, ct_len);
        cf_free(ct);
    }
    return rv;
}

int node__auto_seal_init_put(struct node_core *core,
                             struct rft_batch *b,
                             const struct cf_secret *unseal_key,
                             struct cf_secret **recovery_key,
                             char errmsg[CF_ERRMSG_SIZE])
{
    struct cf_secret *rk = cf_secret_new(RECOVERY_KEY_LEN);
    if (rk == NULL) {
        return CF_ENOMEM;
    }
    int rv = cf_random(rk->data, rk->len);
    if (rv == CF_OK) {
        rv = node__seal_kept_key_put(core->auto_seal, b, NODE_KEY_SEAL_UNSEAL_KEY, unseal_key,
                                     errmsg);
    }
    if (rv == CF_OK) {
        rv = node__seal_kept_key_put(core->auto_seal, b, NODE_KEY_RECOVERY_KEY, rk, errmsg);
    }
    if (rv != CF_OK) {
        cf_secret_free(rk);
        return rv;
    }
    *recovery_key = rk;
    return CF_OK;
}

/* Seal health ---------------------------------------------------------------------------
 * While unsealed by an auto-unseal seal, the node asks the seal every SEAL_HEALTH_MS to encrypt
 * and decrypt a probe value. Day-to-day work uses data keys that are already open (seal wrap) or
 * the barrier keys in memory, so without this probe a lost HSM would go unnoticed until a
 * restart. A failed probe (after the seal's own retry on a fresh session) seals the node once
 * its in-flight requests finish: a node whose seal fails stays sealed rather than serving, and
 * sys/unseal or a restart tries again. */

#define SEAL_HEALTH_MS 5000
#define PROBE_AAD "coffer/seal-health"

static int probe(struct node_seal *seal, char errmsg[CF_ERRMSG_SIZE])
{
    static const uint8_t pt[] = "coffer seal health probe";
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    uint8_t *back = NULL;
    size_t back_len = 0;
    int rv = node_seal_encrypt(seal, (const uint8_t *)PROBE_AAD, strlen(PROBE_AAD), pt, sizeof(pt),
                               &ct, &ct_len, errmsg);
    if (rv == CF_OK) {
        rv = node_seal_decrypt(seal, (const uint8_t *)PROBE_AAD, strlen(PROBE_AAD), ct, ct_len,
                               &back, &back_len, errmsg);
    }
    if (rv == CF_OK && (back_len != sizeof(pt) || memcmp(back, pt, sizeof(pt)) != 0)) {
        cf_errmsg_printf(errmsg, "the probe value came back changed");
        rv = CF_ECRYPTO;
    }
    cf_free(ct);
    cf_free(back);
    return rv;
}

static void health_cb(uv_timer_t *t)
{
    struct node_core *core = t->data;
    if (core == NULL || core->sealed || core->auto_seal == NULL || core->seal_requested) {
        return;
    }
    char errmsg[CF_ERRMSG_SIZE] = "";
    if (probe(core->auto_seal, errmsg) == CF_OK) {
        return;
    }
    CF_LOG(CF_LOG_ERROR, "the seal failed its health check, sealing the node: %s", errmsg);
    node__seal_when_idle(core);
}

int node__seal_health_start(struct node_core *core)
{
    if (core->auto_seal == NULL) {
        return CF_OK;
    }
    uv_timer_t *t = cf_calloc(1, sizeof(*t));
    if (t == NULL) {
        return CF_ENOMEM;
    }
    uv_timer_init(core->loop, t);
    t->data = core;
    uv_timer_start(t, health_cb, SEAL_HEALTH_MS, SEAL_HEALTH_MS);
    uv_unref((uv_handle_t *)t);
    core->seal_health = t;
    return CF_OK;
}

static void health_closed(uv_handle_t *h)
{
    cf_free(h);
}

void node__seal_health_stop(struct node_core *core)
{
    if (core->seal_health != NULL) {
        core->seal_health->data = NULL;
        uv_close((uv_handle_t *)core->seal_health, health_closed);
        core->seal_health = NULL;
    }
}
