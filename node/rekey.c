/*
 * Rekey (core.md 2.9): new shares for the unseal key (sys/rekey/..., Shamir seal) or for the
 * recovery key (sys/rekey-recovery-key/..., auto-unseal seals), authorized by a quorum of the
 * current shares. init fixes the new share count and threshold; update collects current shares
 * with the rekey's nonce; at the threshold the combined key must equal the current one, then a
 * new random key replaces it in one Raft batch with the new seal configuration:
 *   - unseal key: the root key is encrypted again under the new unseal key (core/root-key);
 *   - recovery key: the new key is encrypted by the seal (core/recovery-key).
 * The new shares are returned once. PGP-encrypted shares, backups and verification are not
 * offered and are refused by name.
 */
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "node/barrier.h"
#include "node/internal.h"

#define CF_LOG_MODULE "core"
#include "lib/log.h"

#define NEW_KEY_LEN 32

struct node_rekey
{
    struct node_core *core; /* NULL once cancelled while a write is in flight */
    bool recovery;
    bool busy;
    char nonce[37];
    unsigned shares; /* the new configuration */
    unsigned threshold;
    struct node_share_set current; /* current shares entered so far */
};

struct rekey_write
{
    struct node_rekey *rk;
    struct node_request *req;
    struct cf_secret *key; /* the new key */
};

static unsigned required(const struct node_core *core, bool recovery)
{
    return recovery ? core->seal.recovery_threshold : core->seal.threshold;
}

static json_t *status_json(struct node_core *core, bool recovery)
{
    const struct node_rekey *rk = core->rekey;
    bool mine = rk != NULL && rk->recovery == recovery;
    return json_pack("{s:s,s:b,s:i,s:i,s:i,s:i,s:n,s:b,s:b}", "nonce", mine ? rk->nonce : "",
                     "started", mine, "t", mine ? (int)rk->threshold : 0, "n",
                     mine ? (int)rk->shares : 0, "progress", mine ? (int)rk->current.n : 0,
                     "required", (int)required(core, recovery), "pgp_fingerprints", "backup", 0,
                     "verification_required", 0);
}

static void reply(struct node_request *req, json_t *body)
{
    struct node_response *resp = body ? node_response_new() : NULL;
    if (resp == NULL) {
        json_decref(body);
        node_request_done(req, NULL);
        return;
    }
    resp->bare = body;
    node_request_done(req, resp);
}

static void rekey_free(struct node_rekey *rk)
{
    node__shares_reset(&rk->current);
    cf_cleanse(rk, sizeof(*rk));
    cf_free(rk);
}

void node__rekey_cancel(struct node_core *core)
{
    struct node_rekey *rk = core->rekey;
    core->rekey = NULL;
    if (rk == NULL) {
        return;
    }
    if (rk->busy) {
        rk->core = NULL; /* the write's callback frees it */
        return;
    }
    rekey_free(rk);
}

/* The same rules as sys/init for the new share count and threshold. */
static const char *check_config(json_t *data, int *shares, int *threshold)
{
    json_t *s = json_object_get(data, "secret_shares");
    json_t *t = json_object_get(data, "secret_threshold");
    if ((s != NULL && !json_is_integer(s)) || (t != NULL && !json_is_integer(t))) {
        return "secret_shares and secret_threshold must be integers";
    }
    *shares = s ? (int)json_integer_value(s) : 0;
    *threshold = t ? (int)json_integer_value(t) : 0;
    if (json_array_size(json_object_get(data, "pgp_keys")) > 0) {
        return "pgp_keys are not supported by this server";
    }
    if (json_is_true(json_object_get(data, "backup"))) {
        return "backup of PGP-encrypted keys is not supported by this server";
    }
    if (json_is_true(json_object_get(data, "require_verification"))) {
        return "require_verification is not supported by this server";
    }
    if (*shares < 1) {
        return "shares must be at least one";
    }
    if (*threshold < 1) {
        return "threshold must be at least one";
    }
    if (*shares > 1 && *threshold == 1) {
        return "threshold must be greater than one for multiple shares";
    }
    if (*shares > 255) {
        return "shares must be less than 256";
    }
    if (*threshold > *shares) {
        return "threshold cannot be larger than shares";
    }
    return NULL;
}

static void init_start(struct node_core *core, struct node_request *req, bool recovery)
{
    int shares = 0;
    int threshold = 0;
    const char *bad = check_config(req->data, &shares, &threshold);
    if (bad != NULL) {
        node_request_done(req, node_response_error(400, "%s", bad));
        return;
    }
    if (core->rekey != NULL) {
        node_request_done(req, node_response_error(400, "rekey already in progress"));
        return;
    }
    struct node_rekey *rk = cf_calloc(1, sizeof(*rk));
    if (rk == NULL || cf_uuid_v4(rk->nonce) != CF_OK) {
        cf_free(rk);
        node_request_done(req, NULL);
        return;
    }
    rk->core = core;
    rk->recovery = recovery;
    rk->shares = (unsigned)shares;
    rk->threshold = (unsigned)threshold;
    core->rekey = rk;
    CF_LOG(CF_LOG_INFO, "%s rekey started shares=%d threshold=%d nonce=%s",
           recovery ? "recovery key" : "unseal key", shares, threshold, rk->nonce);
    reply(req, status_json(core, recovery));
}

/* The new key and the seal configuration with the new share count and threshold. */
static int put_rekey(struct node_core *core,
                     struct rft_batch *b,
                     const struct node_rekey *rk,
                     const struct cf_secret *key,
                     char errmsg[CF_ERRMSG_SIZE])
{
    struct node_seal_config sc = core->seal;
    int rv;
    if (rk->recovery) {
        sc.recovery_shares = rk->shares;
        sc.recovery_threshold = rk->threshold;
        rv = node__seal_kept_key_put(core->auto_seal, b, NODE_KEY_RECOVERY_KEY, key, errmsg);
    } else {
        sc.shares = rk->shares;
        sc.threshold = rk->threshold;
        uint8_t *blob = NULL;
        size_t len = 0;
        rv = barrier_seal_root(core->barrier, key->data, key->len, &blob, &len);
        if (rv == CF_OK) {
            rv = rft_batch_put(b, NODE_KEY_ROOT, blob, len);
        }
        cf_free(blob);
    }
    return rv == CF_OK ? node__seal_config_put(b, &sc) : rv;
}

static void written_cb(void *arg, int status)
{
    struct rekey_write *w = arg;
    struct node_rekey *rk = w->rk;
    struct node_core *core = rk->core;
    rk->busy = false;
    json_t *hex = NULL;
    json_t *b64 = NULL;
    if (core == NULL) {
        node_request_done(w->req, node_response_error(400, "the rekey was cancelled"));
        rekey_free(rk);
    } else if (status != CF_OK) {
        node__shares_reset(&rk->current);
        node_request_done(w->req, node_response_error(500, "failed to store the new key: %s",
                                                      cf_strerror(status)));
    } else {
        node__load_seal_config(core);
        if (!rk->recovery) {
            struct cf_cloak *c = cf_cloak_new(w->key->data, w->key->len);
            if (c != NULL) {
                cf_cloak_free(core->unseal_key);
                core->unseal_key = c;
            }
        }
        int rv = node__shares_split(w->key, rk->shares, rk->threshold, &hex, &b64);
        json_t *j = rv == CF_OK
                        ? json_pack("{s:b,s:O,s:O,s:s,s:n,s:b,s:b}", "complete", 1, "keys", hex,
                                    "keys_base64", b64, "nonce", rk->nonce, "pgp_fingerprints",
                                    "backup", 0, "verification_required", 0)
                        : NULL;
        CF_LOG(CF_LOG_INFO, "%s rekey complete shares=%u threshold=%u",
               rk->recovery ? "recovery key" : "unseal key", rk->shares, rk->threshold);
        reply(w->req, j);
        json_decref(hex);
        json_decref(b64);
        core->rekey = NULL;
        rekey_free(rk);
    }
    cf_secret_free(w->key);
    cf_free(w);
}

static void update(struct node_core *core, struct node_request *req, bool recovery)
{
    struct node_rekey *rk = core->rekey;
    if (rk == NULL || rk->recovery != recovery) {
        node_request_done(req, node_response_error(400, "no rekey in progress"));
        return;
    }
    if (rk->busy) {
        node_request_done(req, node_response_error(400, "the rekey is completing"));
        return;
    }
    if (!node__shares_take(&rk->current, req, rk->nonce, "invalid key")) {
        return;
    }
    if (rk->current.n < required(core, recovery)) {
        reply(req, status_json(core, recovery));
        return;
    }
    struct cf_secret *key = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = node__shares_combine(&rk->current, &key);
    if (rv == CF_OK) {
        rv = node__key_verify(core, recovery, key, errmsg);
    }
    cf_secret_free(key);
    node__shares_reset(&rk->current);
    if (rv == CF_EAUTH || rv == CF_EINVAL) {
        node_request_done(req, node_response_error(400,
                                                   "rekey failed: the keys given do not "
                                                   "combine to the %s key",
                                                   recovery ? "recovery" : "unseal"));
        return;
    }
    struct rekey_write *w = rv == CF_OK ? cf_calloc(1, sizeof(*w)) : NULL;
    struct rft_batch *b = w ? rft_batch_new() : NULL;
    if (b != NULL) {
        w->rk = rk;
        w->req = req;
        w->key = cf_secret_new(NEW_KEY_LEN);
        rv = w->key ? cf_random(w->key->data, NEW_KEY_LEN) : CF_ENOMEM;
        if (rv == CF_OK) {
            rv = put_rekey(core, b, rk, w->key, errmsg);
        }
    } else if (rv == CF_OK) {
        rv = CF_ENOMEM;
    }
    if (rv != CF_OK) {
        rft_batch_free(b);
        if (w != NULL) {
            cf_secret_free(w->key);
            cf_free(w);
        }
        CF_LOG(CF_LOG_ERROR, "rekey failed: %s", errmsg[0] ? errmsg : cf_strerror(rv));
        node_request_done(req, node_response_error(500, "rekey failed: %s",
                                                   errmsg[0] ? errmsg : cf_strerror(rv)));
        return;
    }
    rk->busy = true;
    node__commit(core, b, written_cb, w);
}

bool node__rekey_handle(struct node_core *core, struct node_request *req)
{
    const char *p = req->path;
    bool recovery = strncmp(p, "sys/rekey-recovery-key/", 23) == 0;
    const char *rest = recovery ? p + 23 : strncmp(p, "sys/rekey/", 10) == 0 ? p + 10 : NULL;
    if (rest == NULL || (strcmp(rest, "init") != 0 && strcmp(rest, "update") != 0)) {
        return false;
    }
    bool init = strcmp(rest, "init") == 0;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (!node__initialized(core)) {
        node_request_done(req, node_response_error(400, "Vault is not initialized"));
    } else if (core->sealed) {
        node_request_done(req, node_response_error(503, "Vault is sealed"));
    } else if (recovery && core->auto_seal == NULL) {
        node_request_done(req, node_response_error(400,
                                                   "recovery keys are not used with the "
                                                   "Shamir seal; use sys/rekey"));
    } else if (!recovery && core->auto_seal != NULL) {
        node_request_done(req, node_response_error(400,
                                                   "the seal keeps the unseal key under an "
                                                   "auto-unseal seal; rekey the recovery "
                                                   "shares with sys/rekey-recovery-key"));
    } else if (init && req->op == NODE_OP_READ) {
        reply(req, status_json(core, recovery));
    } else if (init && write) {
        init_start(core, req, recovery);
    } else if (init && req->op == NODE_OP_DELETE) {
        node__rekey_cancel(core);
        node_request_done(req, node_response_new());
    } else if (!init && write) {
        update(core, req, recovery);
    } else {
        node_request_done(req, node_response_error(405, "unsupported operation"));
    }
    return true;
}
