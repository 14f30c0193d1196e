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
    const uint8_t *ct;
    size_t ct_len;
    if (node__raw_get(core, NODE_KEY_SEAL_UNSEAL_KEY, &ct, &ct_len) != CF_OK) {
        cf_errmsg_printf(errmsg, "the seal-wrapped unseal key is missing from storage");
        return CF_ECORRUPT;
    }
    uint8_t *key = NULL;
    size_t len = 0;
    const char *aad = NODE_KEY_SEAL_UNSEAL_KEY;
    int rv =
        node_seal_decrypt(seal, (const uint8_t *)aad, strlen(aad), ct, ct_len, &key, &len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    rv = node__unseal_with_key(core, key, len, errmsg);
    cf_cleanse(key, len);
    cf_free(key);
    if (rv == CF_OK) {
        CF_LOG(CF_LOG_INFO, "unsealed by seal \"%s\"", seal->ops->type);
    }
    return rv;
}

static int put_wrapped(struct node_core *core,
                       struct rft_batch *b,
                       const char *name,
                       const struct cf_secret *v,
                       char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    int rv = node_seal_encrypt(core->auto_seal, (const uint8_t *)name, strlen(name), v->data,
                               v->len, &ct, &ct_len, errmsg);
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
        rv = put_wrapped(core, b, NODE_KEY_SEAL_UNSEAL_KEY, unseal_key, errmsg);
    }
    if (rv == CF_OK) {
        rv = put_wrapped(core, b, NODE_KEY_RECOVERY_KEY, rk, errmsg);
    }
    if (rv != CF_OK) {
        cf_secret_free(rk);
        return rv;
    }
    *recovery_key = rk;
    return CF_OK;
}
