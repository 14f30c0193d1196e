/*
 * sys/generate-root/attempt and sys/generate-root/update (core.md 2.10): a new root token from a
 * quorum of key holders, as Vault does it. The attempt creates a one-time pad (base62, as long as
 * a root token); the holders then post their shares with the attempt's nonce: unseal shares under
 * the Shamir seal, recovery shares under an auto-unseal seal. At the threshold the combined key
 * must equal the unseal key (or the recovery key the seal keeps); then a root token is written
 * and returned only as base64 (no padding) of its bytes XOR the pad, which only the holder of
 * the pad can read. A wrong combination ends the progress, as a wrong unseal does.
 */
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "node/internal.h"
#include "node/token.h"

#define CF_LOG_MODULE "core"
#include "lib/log.h"

#define OTP_LEN 28 /* the length of a root token: "hvs." and 24 base62 characters */

struct node_genroot
{
    struct node_core *core;
    bool busy; /* the new root token is being written */
    char nonce[37];
    char otp[OTP_LEN + 1];
    struct node_share_set shares;
    char encoded[64]; /* set once complete */
};

static bool recovery_mode(const struct node_core *core)
{
    return core->auto_seal != NULL;
}

static unsigned required(const struct node_core *core)
{
    return recovery_mode(core) ? core->seal.recovery_threshold : core->seal.threshold;
}

static json_t *status_json(struct node_core *core, const struct node_genroot *g)
{
    bool started = g != NULL;
    const char *enc = g != NULL ? g->encoded : "";
    return json_pack("{s:b,s:s,s:i,s:i,s:s,s:s,s:s,s:i,s:b}", "started", started, "nonce",
                     started ? g->nonce : "", "progress", started ? (int)g->shares.n : 0,
                     "required", (int)required(core), "encoded_token", enc, "encoded_root_token",
                     enc, "pgp_fingerprint", "", "otp_length", OTP_LEN, "complete", enc[0] != '\0');
}

static void reply(struct node_request *req, int status, json_t *body)
{
    struct node_response *resp = body ? node_response_new() : NULL;
    if (resp == NULL) {
        json_decref(body);
        node_request_done(req, NULL);
        return;
    }
    resp->status = status;
    resp->bare = body;
    node_request_done(req, resp);
}

static void genroot_clear(struct node_core *core)
{
    struct node_genroot *g = core->genroot;
    if (g == NULL) {
        return;
    }
    node__shares_reset(&g->shares);
    cf_cleanse(g, sizeof(*g));
    cf_free(g);
    core->genroot = NULL;
}

void node__genroot_cancel(struct node_core *core)
{
    if (core->genroot != NULL && core->genroot->busy) {
        core->genroot->core = NULL; /* the write's callback frees it */
        core->genroot = NULL;
        return;
    }
    genroot_clear(core);
}

static void attempt_start(struct node_core *core, struct node_request *req)
{
    json_t *pgp = json_object_get(req->data, "pgp_key");
    if (json_string_length(pgp) > 0) {
        node_request_done(req, node_response_error(400,
                                                   "pgp_key is not supported by this "
                                                   "server; use the one-time pad"));
        return;
    }
    if (json_object_get(req->data, "otp") != NULL) {
        node_request_done(req, node_response_error(400,
                                                   "a client-supplied otp is not supported: "
                                                   "the server generates the one-time pad"));
        return;
    }
    if (core->genroot != NULL) {
        node_request_done(req, node_response_error(400, "root generation already in progress"));
        return;
    }
    struct node_genroot *g = cf_calloc(1, sizeof(*g));
    if (g == NULL || cf_uuid_v4(g->nonce) != CF_OK || node__token_generate(g->otp) != CF_OK) {
        cf_free(g);
        node_request_done(req, NULL);
        return;
    }
    /* The pad is random base62 like a token; its "hvs." head is replaced by random characters
     * too, so that every byte of the pad is secret. */
    char extra[OTP_LEN + 1];
    if (node__token_generate(extra) != CF_OK) {
        cf_free(g);
        node_request_done(req, NULL);
        return;
    }
    memcpy(g->otp, extra + 4, 4);
    cf_cleanse(extra, sizeof(extra));
    g->core = core;
    core->genroot = g;
    CF_LOG(CF_LOG_INFO, "root generation started nonce=%s", g->nonce);
    json_t *j = status_json(core, g);
    if (j != NULL) {
        json_object_set_new(j, "otp", json_string(g->otp));
    }
    reply(req, 200, j);
}

struct genroot_write
{
    struct node_genroot *g;
    struct node_request *req;
    char token[TOKEN_MAX_LEN + 1];
};

static void written_cb(void *arg, int status)
{
    struct genroot_write *w = arg;
    struct node_genroot *g = w->g;
    g->busy = false;
    if (g->core == NULL) { /* cancelled or sealed meanwhile */
        node_request_done(w->req, node_response_error(400, "root generation was cancelled"));
        node__shares_reset(&g->shares);
        cf_free(g);
    } else if (status != CF_OK) {
        node_request_done(w->req, node_response_error(500, "failed to store the root token: %s",
                                                      cf_strerror(status)));
        node__shares_reset(&g->shares);
    } else {
        uint8_t x[OTP_LEN];
        for (size_t i = 0; i < OTP_LEN; i++) {
            x[i] = (uint8_t)(w->token[i] ^ g->otp[i]);
        }
        char *b = cf_base64_encode(x, sizeof(x));
        cf_cleanse(x, sizeof(x));
        if (b != NULL) {
            size_t n = strlen(b);
            while (n > 0 && b[n - 1] == '=') {
                b[--n] = '\0'; /* Vault: base64 without padding */
            }
            snprintf(g->encoded, sizeof(g->encoded), "%s", b);
            cf_free(b);
        }
        CF_LOG(CF_LOG_INFO, "root generation complete: a new root token was created");
        json_t *j = status_json(g->core, g);
        json_object_set_new(j, "progress", json_integer(required(g->core)));
        reply(w->req, 200, j);
        genroot_clear(g->core); /* the attempt ends with its answer */
    }
    cf_cleanse(w->token, sizeof(w->token));
    cf_free(w);
}

static int write_root_token(struct node_core *core, struct genroot_write *w)
{
    if (node__token_generate(w->token) != CF_OK) {
        return CF_ECRYPTO;
    }
    struct rft_batch *b = rft_batch_new();
    int rv = b ? node__token_batch_root(core, core->token_salt, b, w->token) : CF_ENOMEM;
    if (rv != CF_OK) {
        rft_batch_free(b);
        return rv;
    }
    node__commit(core, b, written_cb, w);
    return CF_OK;
}

static void update(struct node_core *core, struct node_request *req)
{
    struct node_genroot *g = core->genroot;
    if (g == NULL) {
        node_request_done(req, node_response_error(400, "no root generation in progress"));
        return;
    }
    if (g->busy) {
        node_request_done(req, node_response_error(400, "root generation is completing"));
        return;
    }
    if (!node__shares_take(&g->shares, req, g->nonce, "invalid key")) {
        return;
    }
    snprintf(g->shares.nonce, sizeof(g->shares.nonce), "%s", g->nonce);
    if (g->shares.n < required(core)) {
        reply(req, 200, status_json(core, g));
        return;
    }
    struct cf_secret *key = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = node__shares_combine(&g->shares, &key);
    if (rv == CF_OK) {
        rv = node__key_verify(core, recovery_mode(core), key, errmsg);
    }
    cf_secret_free(key);
    if (rv != CF_OK) {
        node__shares_reset(&g->shares);
        if (rv == CF_EAUTH || rv == CF_EINVAL) {
            node_request_done(req,
                              node_response_error(400,
                                                  "root generation failed: the %s "
                                                  "keys given do not combine to the "
                                                  "%s key",
                                                  recovery_mode(core) ? "recovery" : "unseal",
                                                  recovery_mode(core) ? "recovery" : "unseal"));
        } else {
            CF_LOG(CF_LOG_ERROR, "root generation: %s", errmsg);
            node_request_done(req, node_response_error(500, "root generation failed: %s", errmsg));
        }
        return;
    }
    struct genroot_write *w = cf_calloc(1, sizeof(*w));
    if (w == NULL) {
        node_request_done(req, NULL);
        return;
    }
    w->g = g;
    w->req = req;
    g->busy = true;
    rv = write_root_token(core, w);
    if (rv != CF_OK) {
        g->busy = false;
        cf_free(w);
        node_request_done(req,
                          node_response_error(500, "create the root token: %s", cf_strerror(rv)));
    }
}

bool node__genroot_handle(struct node_core *core, struct node_request *req)
{
    bool attempt = strcmp(req->path, "sys/generate-root/attempt") == 0;
    if (!attempt && strcmp(req->path, "sys/generate-root/update") != 0) {
        return false;
    }
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (!node__initialized(core)) {
        node_request_done(req, node_response_error(400, "Vault is not initialized"));
    } else if (core->sealed) {
        node_request_done(req, node_response_error(503, "Vault is sealed"));
    } else if (attempt && req->op == NODE_OP_READ) {
        reply(req, 200, status_json(core, core->genroot));
    } else if (attempt && write) {
        attempt_start(core, req);
    } else if (attempt && req->op == NODE_OP_DELETE) {
        node__genroot_cancel(core);
        node_request_done(req, node_response_new());
    } else if (!attempt && write) {
        update(core, req);
    } else {
        node_request_done(req, node_response_error(405, "unsupported operation"));
    }
    return true;
}
