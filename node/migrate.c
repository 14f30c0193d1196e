/*
 * Seal migration, as Vault does it: the config keeps the old seal's block with
 * disabled = "true" beside the new one (or alone, for a move back to Shamir), the node starts
 * sealed with "migration": true, and operators unseal with migrate=true:
 *   - Shamir -> static or pkcs11: with the unseal shares. The unseal key is then kept by the new
 *     seal, and the old unseal shares become the recovery shares (the recovery key is the old
 *     unseal key, its share count and threshold those of the old shares).
 *   - static or pkcs11 -> Shamir: with the recovery shares. The recovery key becomes the unseal
 *     key (the root key is encrypted again under it) and the recovery shares become the unseal
 *     shares; the keys the old seal kept are deleted. Seal-wrapped mounts cannot live under
 *     Shamir, so this move is refused while one exists.
 * Each move is one Raft batch; if it fails the node seals again and nothing changed. A move
 * between two auto-unseal seals is refused: go through Shamir.
 */
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "node/barrier.h"
#include "node/internal.h"

#define CF_LOG_MODULE "seal"
#include "lib/log.h"

struct migrate_op
{
    struct node_core *core;
    struct node_request *req;
    struct cf_secret *new_unseal_key; /* to Shamir: the recovery key */
    json_t *status;                   /* filled by the caller's status function */
    json_t *(*status_fn)(struct node_core *core);
};

static bool from_shamir(const struct node_core *core)
{
    return strcmp(core->seal.type, "shamir") == 0;
}

unsigned node__migrate_threshold(const struct node_core *core)
{
    return from_shamir(core) ? core->seal.threshold : core->seal.recovery_threshold;
}

/* Shamir -> auto: the combined key is the unseal key, and becomes the recovery key. */
static int to_auto(struct node_core *core,
                   const struct cf_secret *key,
                   struct rft_batch *b,
                   char errmsg[CF_ERRMSG_SIZE])
{
    int rv = node__unseal_with_key(core, key->data, key->len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    rv = node__seal_kept_key_put(core->auto_seal, b, NODE_KEY_SEAL_UNSEAL_KEY, key, errmsg);
    if (rv == CF_OK) {
        rv = node__seal_kept_key_put(core->auto_seal, b, NODE_KEY_RECOVERY_KEY, key, errmsg);
    }
    if (rv == CF_OK) {
        struct node_seal_config sc = {
            .shares = 1,
            .threshold = 1,
            .recovery_shares = core->seal.shares,
            .recovery_threshold = core->seal.threshold,
        };
        snprintf(sc.type, sizeof(sc.type), "%s", core->auto_seal->ops->type);
        rv = node__seal_config_put(b, &sc);
    }
    return rv;
}

static bool any_seal_wrapped(const struct node_core *core)
{
    for (const struct node_mount *m = core->mounts; m != NULL; m = m->next) {
        if (m->seal_wrap) {
            return true;
        }
    }
    return false;
}

/* auto -> Shamir: the combined key is the recovery key, and becomes the unseal key. */
static int to_shamir(struct node_core *core,
                     const struct cf_secret *key,
                     struct rft_batch *b,
                     char errmsg[CF_ERRMSG_SIZE])
{
    int rv = node__key_verify(core, true, key, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    struct cf_secret *unseal_key = NULL;
    rv = node__seal_kept_key(core, core->old_seal, NODE_KEY_SEAL_UNSEAL_KEY, &unseal_key, errmsg);
    if (rv == CF_OK) {
        rv = node__unseal_with_key(core, unseal_key->data, unseal_key->len, errmsg);
    }
    cf_secret_free(unseal_key);
    if (rv != CF_OK) {
        return rv;
    }
    if (any_seal_wrapped(core)) {
        cf_errmsg_printf(errmsg,
                         "seal-wrapped mounts cannot live under the Shamir seal: disable "
                         "them (or move their data to unwrapped mounts) first");
        return CF_EUNSUPPORTED;
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    rv = barrier_seal_root(core->barrier, key->data, key->len, &blob, &len);
    if (rv == CF_OK) {
        rv = rft_batch_put(b, NODE_KEY_ROOT, blob, len);
        cf_free(blob);
    }
    if (rv == CF_OK) {
        rv = rft_batch_delete(b, NODE_KEY_SEAL_UNSEAL_KEY);
    }
    if (rv == CF_OK) {
        rv = rft_batch_delete(b, NODE_KEY_RECOVERY_KEY);
    }
    if (rv == CF_OK) {
        struct node_seal_config sc = {
            .type = "shamir",
            .shares = core->seal.recovery_shares,
            .threshold = core->seal.recovery_threshold,
        };
        rv = node__seal_config_put(b, &sc);
    }
    return rv;
}

static void committed_cb(void *arg, int status)
{
    struct migrate_op *op = arg;
    struct node_core *core = op->core;
    if (status != CF_OK) {
        node__seal_now(core);
        CF_LOG(CF_LOG_ERROR, "seal migration failed to commit: %s", cf_strerror(status));
        node_request_done(
            op->req, node_response_error(500, "seal migration failed: %s", cf_strerror(status)));
    } else {
        char from[16];
        snprintf(from, sizeof(from), "%s", core->seal.type);
        node__load_seal_config(core);
        core->migrating = false;
        if (op->new_unseal_key != NULL) {
            struct cf_cloak *c = cf_cloak_new(op->new_unseal_key->data, op->new_unseal_key->len);
            if (c != NULL) {
                cf_cloak_free(core->unseal_key);
                core->unseal_key = c;
            }
        }
        CF_LOG(CF_LOG_INFO, "seal migrated from \"%s\" to \"%s\"", from, core->seal.type);
        struct node_response *resp = node_response_new();
        if (resp != NULL) {
            resp->bare = op->status_fn(core);
        }
        node_request_done(op->req, resp);
    }
    cf_secret_free(op->new_unseal_key);
    cf_free(op);
}

void node__migrate(struct node_core *core,
                   struct node_request *req,
                   const struct cf_secret *key,
                   json_t *(*status_fn)(struct node_core *core))
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    if (!from_shamir(core) && core->auto_seal != NULL) {
        node_request_done(req, node_response_error(400,
                                                   "migrating between two auto-unseal seals is "
                                                   "not supported: migrate to shamir first, "
                                                   "then to the new seal"));
        return;
    }
    struct migrate_op *op = cf_calloc(1, sizeof(*op));
    struct rft_batch *b = op ? rft_batch_new() : NULL;
    int rv = b ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        op->core = core;
        op->req = req;
        op->status_fn = status_fn;
        if (from_shamir(core)) {
            rv = to_auto(core, key, b, errmsg);
        } else {
            op->new_unseal_key = cf_secret_from(key->data, key->len);
            rv = op->new_unseal_key ? to_shamir(core, key, b, errmsg) : CF_ENOMEM;
        }
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        if (op != NULL) {
            cf_secret_free(op->new_unseal_key);
            cf_free(op);
        }
        node__seal_now(core);
        int status = rv == CF_EAUTH || rv == CF_EINVAL || rv == CF_EUNSUPPORTED ? 400 : 500;
        if (rv == CF_EAUTH || rv == CF_EINVAL) {
            node_request_done(req, node_response_error(status, "unseal failed, invalid key"));
        } else {
            CF_LOG(CF_LOG_ERROR, "seal migration refused: %s", errmsg);
            node_request_done(req, node_response_error(status, "seal migration failed: %s",
                                                       errmsg[0] ? errmsg : cf_strerror(rv)));
        }
        return;
    }
    node__commit(core, b, committed_cb, op);
}
