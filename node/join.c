/*
 * Joining a cluster (core.md 7 "Join flow"), both sides.
 *
 * Active node: bootstrap/challenge hands a joiner a random nonce encrypted under the barrier,
 * with what it needs to open it once it holds the unseal key: the seal configuration, the
 * stored root-key and keyring blobs (ciphertext, as they sit in storage) and, under an
 * auto-unseal seal, the unseal key the seal keeps. bootstrap/answer takes the nonce back in
 * clear (proof that the joiner holds the unseal key), signs the joiner's CSR with the cluster
 * CA, records the member and adds it to Raft as a non-voter (autopilot promotes it).
 *
 * Joiner: sys/storage/raft/join (or retry_join from the config) fetches the challenge; the
 * operator then unseals with the cluster's shares (an auto-unseal seal opens the key itself);
 * the joiner opens the challenge, answers with a CSR, keeps its certificate in the data dir,
 * starts Raft with an empty configuration and, once its log has caught up, unseals from its own
 * storage like any node.
 */
#include <stdio.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/json.h"
#include "lib/mem.h"
#include "lib/tlsca.h"
#include "node/barrier.h"
#include "node/cluster.h"
#include "node/http_client.h"
#include "node/internal.h"

#define CF_LOG_MODULE "join"
#include "lib/log.h"
#include "raft/entry.h"
#include "raft/transport_tls.h"

#define CHALLENGE_LEN 32
#define CHALLENGE_TTL_MS (120 * 1000)
#define MAX_CHALLENGES 64
#define HTTP_TIMEOUT_MS 10000
#define RETRY_MS 2000

struct node_challenge
{
    char server_id[128];
    uint8_t nonce[CHALLENGE_LEN];
    uint64_t expires_ms;
    struct node_challenge *next;
};

enum join_phase {
    JOIN_CHALLENGE, /* asking the leader for a challenge */
    JOIN_UNSEAL,    /* waiting for the unseal key */
    JOIN_ANSWER,    /* answering */
    JOIN_SYNC,      /* raft started; waiting for the log to catch up */
};

struct node_join
{
    struct node_core *core;
    enum join_phase phase;
    char *leader; /* API address of the leader answering this join */
    char *ca_pem; /* its API CA, or NULL */
    bool non_voter;
    bool retry;        /* retry_join: keep trying other leaders on failure */
    size_t next_retry; /* index of the next retry_join block to try */
    uv_timer_t *retry_timer;
    json_t *challenge;            /* the challenge response data */
    struct cf_cloak *key;         /* the unseal key once known */
    struct node_request *pending; /* sys/storage/raft/join or sys/unseal waiting for us */
    char *key_pem;                /* the CSR's key until the answer arrives */
};

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The highest entry format a joining node says it knows; 1 (every build reads it) when it does
 * not say. */
static uint64_t joiner_entry_format(const json_t *data)
{
    json_t *f = json_object_get(data, "entry_format");
    if (!json_is_integer(f) || json_integer_value(f) < RFT_ENTRY_FORMAT_MIN) {
        return RFT_ENTRY_FORMAT_MIN;
    }
    return (uint64_t)json_integer_value(f);
}

static struct node_response *joined_response(void)
{
    struct node_response *r = node_response_new();
    if (r != NULL) {
        r->status = 200;
        r->bare = json_pack("{s:b}", "joined", 1);
        if (r->bare == NULL) {
            node_response_free(r);
            r = NULL;
        }
    }
    return r;
}

/* Leader side -------------------------------------------------------------------------------- */

static void challenges_expire(struct node_core *core)
{
    uint64_t now = uv_now(core->loop);
    struct node_challenge **pp = &core->challenges;
    while (*pp != NULL) {
        struct node_challenge *c = *pp;
        if (c->expires_ms <= now) {
            *pp = c->next;
            cf_cleanse(c, sizeof(*c));
            cf_free(c);
        } else {
            pp = &c->next;
        }
    }
}

static int b64_of_raw(struct node_core *core, const char *key, json_t *obj, const char *name)
{
    const uint8_t *v;
    size_t n;
    if (node__raw_get(core, key, &v, &n) != CF_OK) {
        return CF_OK;
    }
    char *b = cf_base64_encode(v, n);
    if (b == NULL) {
        return CF_ENOMEM;
    }
    int rv = json_object_set_new(obj, name, json_string(b)) == 0 ? CF_OK : CF_ENOMEM;
    cf_free(b);
    return rv;
}

static void handle_challenge(struct node_core *core, struct node_request *req)
{
    const char *sid = str(req->data, "server_id");
    if (sid == NULL || sid[0] == '\0' ||
        strlen(sid) >= sizeof(((struct node_challenge *)0)->server_id)) {
        node_request_done(req, node_response_error(400, "no server id provided"));
        return;
    }
    challenges_expire(core);
    size_t n = 0;
    struct node_challenge *c = NULL;
    for (struct node_challenge *x = core->challenges; x != NULL; x = x->next, n++) {
        if (strcmp(x->server_id, sid) == 0) {
            c = x;
        }
    }
    if (c == NULL && n >= MAX_CHALLENGES) {
        node_request_done(req, node_response_error(503, "too many joins in progress"));
        return;
    }
    if (c == NULL) {
        c = cf_calloc(1, sizeof(*c));
        if (c == NULL) {
            node_request_done(req, NULL);
            return;
        }
        snprintf(c->server_id, sizeof(c->server_id), "%s", sid);
        c->next = core->challenges;
        core->challenges = c;
    }
    c->expires_ms = uv_now(core->loop) + CHALLENGE_TTL_MS;
    char path[256];
    snprintf(path, sizeof(path), "core/cluster/challenge/%s", sid);
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    int rv = cf_random(c->nonce, sizeof(c->nonce));
    if (rv == CF_OK) {
        rv = barrier_encrypt(core->barrier, path, c->nonce, sizeof(c->nonce), &ct, &ctlen);
    }
    char *b = rv == CF_OK ? cf_base64_encode(ct, ctlen) : NULL;
    cf_free(ct);
    const uint8_t *sc;
    size_t sclen;
    json_t *seal = node__raw_get(core, NODE_KEY_SEAL_CONFIG, &sc, &sclen) == CF_OK
                       ? json_loadb((const char *)sc, sclen, 0, NULL)
                       : NULL;
    json_t *data = b && seal ? json_pack("{s:s,s:o}", "challenge", b, "seal_config", seal) : NULL;
    cf_free(b);
    if (data == NULL) {
        json_decref(seal);
    }
    if (data == NULL || b64_of_raw(core, NODE_KEY_ROOT, data, "root_key") != CF_OK ||
        b64_of_raw(core, NODE_KEY_KEYRING, data, "keyring") != CF_OK ||
        b64_of_raw(core, NODE_KEY_SEAL_UNSEAL_KEY, data, "seal_unseal_key") != CF_OK) {
        json_decref(data);
        node_request_done(req, node_response_error(500, "could not create the challenge"));
        return;
    }
    CF_LOG(CF_LOG_INFO, "join challenge issued server_id=%s", sid);
    node_request_done(req, node_response_data(data));
}

struct answer_op
{
    struct node_core *core;
    struct node_request *req;
    char *server_id;
    char *cluster_addr;
    char *cert;
    char *ca_cert;
};

static void answer_op_free(struct answer_op *op)
{
    cf_free(op->server_id);
    cf_free(op->cluster_addr);
    cf_free(op->cert);
    cf_free(op->ca_cert);
    cf_free(op);
}

/* host:port of a cluster address (scheme and path dropped). */
static void raft_address(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/");
    snprintf(out, cap, "%.*s", (int)n, p);
}

static void answer_added_cb(void *arg, int status, const char *errmsg)
{
    struct answer_op *op = arg;
    struct node_core *core = op->core;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_ERROR, "add %s to raft: %s", op->server_id, errmsg);
        node_request_done(op->req, node_response_error(500,
                                                       "failed to add the node to the "
                                                       "raft configuration: %s",
                                                       errmsg));
        answer_op_free(op);
        return;
    }
    struct rft_server servers[64];
    size_t n = rft_store_servers(core->store, servers, 64);
    json_t *peers = json_array();
    for (size_t i = 0; i < n && i < 64; i++) {
        json_t *m = node__cluster_member_by_raft_id(core, servers[i].raft_id);
        json_array_append_new(
            peers, json_pack("{s:s,s:s,s:s}", "id", m && str(m, "node_id") ? str(m, "node_id") : "",
                             "address", servers[i].address, "suffrage",
                             servers[i].voter ? "voter" : "non-voter"));
        json_decref(m);
    }
    json_t *data =
        json_pack("{s:o,s:{s:s,s:s},s:I}", "peers", peers, "tls", "ca_cert", op->ca_cert, "cert",
                  op->cert, "index", (json_int_t)rft_store_applied_index(core->store));
    CF_LOG(CF_LOG_INFO, "node %s joined as a non-voter address=%s", op->server_id,
           op->cluster_addr);
    node_request_done(op->req, node_response_data(data));
    answer_op_free(op);
}

static void answer_recorded_cb(void *arg, int status)
{
    struct answer_op *op = arg;
    if (status != CF_OK) {
        node_request_done(op->req, node_response_error(500, "failed to record the member: %s",
                                                       cf_strerror(status)));
        answer_op_free(op);
        return;
    }
    char addr[RFT_ADDRESS_MAX];
    raft_address(op->cluster_addr, addr, sizeof(addr));
    rft_store_add_nonvoter(op->core->store, op->server_id, addr, answer_added_cb, op);
}

static void handle_answer(struct node_core *core, struct node_request *req)
{
    const char *sid = str(req->data, "server_id");
    const char *answer = str(req->data, "answer");
    const char *caddr = str(req->data, "cluster_addr");
    const char *aaddr = str(req->data, "api_addr");
    const char *csr = str(req->data, "csr");
    bool non_voter = json_is_true(json_object_get(req->data, "non_voter"));
    if (sid == NULL || sid[0] == '\0') {
        node_request_done(req, node_response_error(400, "no server id provided"));
        return;
    }
    if (answer == NULL || caddr == NULL || caddr[0] == '\0' || csr == NULL) {
        node_request_done(req, node_response_error(400,
                                                   "answer, cluster_addr and csr are "
                                                   "required"));
        return;
    }
    challenges_expire(core);
    struct node_challenge **pp = &core->challenges;
    while (*pp != NULL && strcmp((*pp)->server_id, sid) != 0) {
        pp = &(*pp)->next;
    }
    uint8_t *plain = NULL;
    size_t plen = 0;
    bool ok = *pp != NULL && cf_base64_decode(answer, strlen(answer), &plain, &plen) == CF_OK &&
              plen == CHALLENGE_LEN && cf_ct_equal(plain, (*pp)->nonce, CHALLENGE_LEN) == 1;
    if (plain != NULL) {
        cf_cleanse(plain, plen);
        cf_free(plain);
    }
    if (!ok) {
        node_request_done(req, node_response_error(400, "invalid answer given"));
        return;
    }
    struct node_challenge *c = *pp;
    *pp = c->next; /* single use */
    cf_cleanse(c, sizeof(*c));
    cf_free(c);
    if (joiner_entry_format(req->data) < rft_store_entry_format(core->store)) {
        node_request_done(
            req, node_response_error(400,
                                     "this node's build reads raft entry formats up to %llu, and "
                                     "the cluster writes format %llu: run a newer build to join",
                                     (unsigned long long)joiner_entry_format(req->data),
                                     (unsigned long long)rft_store_entry_format(core->store)));
        return;
    }
    char addr[RFT_ADDRESS_MAX];
    raft_address(caddr, addr, sizeof(addr));
    struct rft_server servers[64];
    size_t n = rft_store_servers(core->store, servers, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
        if (servers[i].raft_id == rft_raft_id(sid)) {
            node_request_done(req, node_response_error(400,
                                                       "node \"%s\" is already a member of the "
                                                       "cluster; remove it first",
                                                       sid));
            return;
        }
        if (strcmp(servers[i].address, addr) == 0) {
            node_request_done(req, node_response_error(400,
                                                       "cluster address %s is already used by "
                                                       "another member",
                                                       addr));
            return;
        }
    }
    struct answer_op *op = cf_calloc(1, sizeof(*op));
    char errmsg[CF_ERRMSG_SIZE] = "";
    if (op == NULL || (op->server_id = cf_strdup(sid)) == NULL ||
        (op->cluster_addr = cf_strdup(caddr)) == NULL) {
        if (op != NULL) {
            answer_op_free(op);
        }
        node_request_done(req, NULL);
        return;
    }
    op->core = core;
    op->req = req;
    int rv = node__cluster_sign(core, csr, sid, &op->cert, &op->ca_cert, errmsg);
    if (rv != CF_OK) {
        node_request_done(
            req,
            node_response_error(rv == CF_EMALFORMED || rv == CF_EAUTH ? 400 : 500, "%s", errmsg));
        answer_op_free(op);
        return;
    }
    struct rft_batch *b = rft_batch_new();
    char rkey[512];
    snprintf(rkey, sizeof(rkey), "%s%s", NODE_PREFIX_CLUSTER_REMOVED, sid);
    if (b == NULL ||
        node__cluster_member_put(b, sid, aaddr ? aaddr : "", caddr, non_voter,
                                 str(req->data, "version") ? str(req->data, "version") : "",
                                 joiner_entry_format(req->data)) != CF_OK ||
        rft_batch_delete(b, rkey) != CF_OK) {
        rft_batch_free(b);
        node_request_done(req, NULL);
        answer_op_free(op);
        return;
    }
    node__commit(core, b, answer_recorded_cb, op);
}

/* Joiner side -------------------------------------------------------------------------------- */

static void join_free(struct node_join *j)
{
    if (j == NULL) {
        return;
    }
    if (j->retry_timer != NULL) {
        uv_close((uv_handle_t *)j->retry_timer, (uv_close_cb)cf_free);
    }
    cf_free(j->leader);
    cf_free(j->ca_pem);
    json_decref(j->challenge);
    cf_cloak_free(j->key);
    if (j->key_pem != NULL) {
        cf_cleanse(j->key_pem, strlen(j->key_pem));
    }
    cf_free(j->key_pem);
    cf_free(j);
}

void node__join_free(struct node_core *core)
{
    struct node_join *j = core->join;
    core->join = NULL;
    if (j != NULL && j->pending != NULL) {
        node_request_done(j->pending, node_response_error(503, "Vault is shutting down"));
    }
    join_free(j);
    while (core->challenges != NULL) {
        struct node_challenge *c = core->challenges;
        core->challenges = c->next;
        cf_cleanse(c, sizeof(*c));
        cf_free(c);
    }
}

static void join_fail(struct node_join *j, int code, const char *msg);
static void try_next_leader(struct node_join *j);

static void retry_timer_cb(uv_timer_t *t)
{
    struct node_join *j = t->data;
    try_next_leader(j);
}

/* A failed step: answers the waiting request; a retry_join keeps going after a pause. */
static void join_fail(struct node_join *j, int code, const char *msg)
{
    struct node_core *core = j->core;
    CF_LOG(CF_LOG_WARN, "join via %s failed: %s", j->leader ? j->leader : "?", msg);
    if (j->pending != NULL) {
        struct node_request *req = j->pending;
        j->pending = NULL;
        node_request_done(req, node_response_error(code, "failed to join raft cluster: %s", msg));
    }
    if (j->retry && !core->closing) {
        j->phase = JOIN_CHALLENGE;
        json_decref(j->challenge);
        j->challenge = NULL;
        core->seal.threshold = 0;
        if (j->retry_timer == NULL) {
            j->retry_timer = cf_calloc(1, sizeof(*j->retry_timer));
            if (j->retry_timer == NULL) {
                cf_oom_abort();
            }
            uv_timer_init(core->loop, j->retry_timer);
            j->retry_timer->data = j;
        }
        uv_timer_start(j->retry_timer, retry_timer_cb, RETRY_MS, 0);
        return;
    }
    core->join = NULL;
    core->seal.threshold = 0;
    join_free(j);
}

static void join_with_key(struct node_join *j, const uint8_t *key, size_t len);

static void challenge_cb(void *arg, int status, long code, json_t *body, const char *errmsg)
{
    struct node_join *j = arg;
    struct node_core *core = j->core;
    if (core->join != j) {
        join_free(j); /* the core let go of this join meanwhile */
        return;
    }
    if (status != CF_OK || code != 200) {
        char msg[CF_ERRMSG_SIZE];
        json_t *errs = json_object_get(body, "errors");
        snprintf(msg, sizeof(msg), "%s",
                 status != CF_OK ? errmsg
                 : json_string_value(json_array_get(errs, 0))
                     ? json_string_value(json_array_get(errs, 0))
                     : "the leader refused the challenge request");
        join_fail(j, status != CF_OK ? 500 : 400, msg);
        return;
    }
    json_t *data = json_object_get(body, "data");
    json_t *sc = json_object_get(data, "seal_config");
    if (str(data, "challenge") == NULL || str(data, "root_key") == NULL ||
        str(data, "keyring") == NULL || !json_is_object(sc)) {
        join_fail(j, 500, "the leader's challenge lacks fields (is it a Coffer node?)");
        return;
    }
    j->challenge = json_incref(data);
    j->phase = JOIN_UNSEAL;
    const char *type = str(sc, "type");
    snprintf(core->seal.type, sizeof(core->seal.type), "%s", type ? type : "shamir");
    core->seal.shares = (unsigned)json_integer_value(json_object_get(sc, "secret_shares"));
    core->seal.threshold = (unsigned)json_integer_value(json_object_get(sc, "secret_threshold"));
    core->seal.recovery_shares =
        (unsigned)json_integer_value(json_object_get(sc, "recovery_shares"));
    core->seal.recovery_threshold =
        (unsigned)json_integer_value(json_object_get(sc, "recovery_threshold"));
    CF_LOG(CF_LOG_INFO, "join challenge received from %s seal=%s", j->leader, core->seal.type);
    if (j->pending != NULL) {
        struct node_request *req = j->pending;
        j->pending = NULL;
        node_request_done(req, joined_response());
    }
    if (strcmp(core->seal.type, "shamir") != 0) {
        /* An auto-unseal seal opens the unseal key by itself. */
        const char *blob = str(data, "seal_unseal_key");
        uint8_t *ct = NULL;
        size_t ctlen = 0;
        uint8_t *k = NULL;
        size_t klen = 0;
        char emsg[CF_ERRMSG_SIZE] = "";
        int rv = CF_EINVAL;
        if (core->auto_seal == NULL || strcmp(core->auto_seal->ops->type, core->seal.type) != 0) {
            snprintf(emsg, sizeof(emsg), "the cluster uses seal \"%s\"; configure the same seal",
                     core->seal.type);
        } else if (blob == NULL || cf_base64_decode(blob, strlen(blob), &ct, &ctlen) != CF_OK) {
            snprintf(emsg, sizeof(emsg), "the challenge lacks the sealed unseal key");
        } else {
            rv = node_seal_decrypt(core->auto_seal, (const uint8_t *)NODE_KEY_SEAL_UNSEAL_KEY,
                                   strlen(NODE_KEY_SEAL_UNSEAL_KEY), ct, ctlen, &k, &klen, emsg);
        }
        cf_free(ct);
        if (rv != CF_OK) {
            join_fail(j, 500, emsg);
            return;
        }
        join_with_key(j, k, klen);
        cf_cleanse(k, klen);
        cf_free(k);
    }
}

static void try_next_leader(struct node_join *j)
{
    struct node_core *core = j->core;
    if (j->retry && core->cfg.n_retry_join > 0) {
        const struct node_retry_join *r = &core->cfg.retry_join[j->next_retry];
        j->next_retry = (j->next_retry + 1) % core->cfg.n_retry_join;
        cf_free(j->leader);
        cf_free(j->ca_pem);
        j->leader = cf_strdup(r->leader_api_addr);
        j->ca_pem = r->leader_ca_cert ? cf_strdup(r->leader_ca_cert) : NULL;
        j->non_voter = core->cfg.retry_join_as_non_voter;
        if (j->leader == NULL) {
            cf_oom_abort();
        }
    }
    j->phase = JOIN_CHALLENGE;
    json_t *body = json_pack("{s:s}", "server_id", core->node_id);
    int rv =
        body ? node__http_post(core->loop, j->leader, "/v1/sys/storage/raft/bootstrap/challenge",
                               body, j->ca_pem, HTTP_TIMEOUT_MS, challenge_cb, j)
             : CF_ENOMEM;
    json_decref(body);
    if (rv != CF_OK) {
        join_fail(j, 500, cf_strerror(rv));
    }
}

static void answer_cb(void *arg, int status, long code, json_t *body, const char *errmsg)
{
    struct node_join *j = arg;
    struct node_core *core = j->core;
    if (core->join != j) {
        join_free(j);
        return;
    }
    json_t *data = json_object_get(body, "data");
    json_t *tls = json_object_get(data, "tls");
    if (status != CF_OK || code != 200 || str(tls, "cert") == NULL || str(tls, "ca_cert") == NULL) {
        char msg[CF_ERRMSG_SIZE];
        json_t *errs = json_object_get(body, "errors");
        snprintf(msg, sizeof(msg), "%s",
                 status != CF_OK ? errmsg
                 : json_string_value(json_array_get(errs, 0))
                     ? json_string_value(json_array_get(errs, 0))
                     : "the leader refused the answer");
        join_fail(j, 500, msg);
        return;
    }
    char emsg[CF_ERRMSG_SIZE] = "";
    int rv =
        node__cluster_save_creds(core, str(tls, "ca_cert"), str(tls, "cert"), j->key_pem, emsg);
    if (rv == CF_OK) {
        rv = node__cluster_mark_joined(core, emsg);
    }
    if (rv == CF_OK && !core->started) {
        rv = node__start_store(core, emsg);
    }
    if (rv != CF_OK) {
        join_fail(j, 500, emsg);
        return;
    }
    j->phase = JOIN_SYNC;
    j->retry = false;
    CF_LOG(CF_LOG_INFO, "joined the cluster via %s; waiting for the log to catch up", j->leader);
    if (j->pending != NULL) {
        struct node_request *req = j->pending;
        j->pending = NULL;
        node__lifecycle_seal_status(core, req); /* sealed until the log has caught up */
    }
    /* store_ready_cb (core.c) unseals with j->key once raft reports the follower synced. */
}

/* Opens the challenge with the unseal key and answers it. */
static void join_with_key(struct node_join *j, const uint8_t *key, size_t len)
{
    struct node_core *core = j->core;
    json_t *data = j->challenge;
    uint8_t *root = NULL;
    uint8_t *ring = NULL;
    uint8_t *ct = NULL;
    uint8_t *nonce = NULL;
    size_t root_len = 0;
    size_t ring_len = 0;
    size_t ctlen = 0;
    size_t nlen = 0;
    char emsg[CF_ERRMSG_SIZE] = "";
    int rv = CF_EMALFORMED;
    const char *r = str(data, "root_key");
    const char *k = str(data, "keyring");
    const char *c = str(data, "challenge");
    if (cf_base64_decode(r, strlen(r), &root, &root_len) == CF_OK &&
        cf_base64_decode(k, strlen(k), &ring, &ring_len) == CF_OK &&
        cf_base64_decode(c, strlen(c), &ct, &ctlen) == CF_OK) {
        rv = barrier_unseal(core->barrier, key, len, root, root_len, ring, ring_len, emsg);
    }
    char path[256];
    snprintf(path, sizeof(path), "core/cluster/challenge/%s", core->node_id);
    if (rv == CF_OK) {
        rv = barrier_decrypt(core->barrier, path, ct, ctlen, &nonce, &nlen);
        if (rv != CF_OK) {
            snprintf(emsg, sizeof(emsg), "the challenge does not open: %s", cf_strerror(rv));
        }
    }
    barrier_seal(core->barrier); /* reopened from this node's own storage after the sync */
    cf_free(root);
    cf_free(ring);
    cf_free(ct);
    if (rv != CF_OK) {
        if (nonce != NULL) {
            cf_cleanse(nonce, nlen);
            cf_free(nonce);
        }
        bool wrong_key = rv == CF_EAUTH || rv == CF_EINVAL;
        if (j->pending != NULL) {
            struct node_request *req = j->pending;
            j->pending = NULL;
            node_request_done(req,
                              node_response_error(wrong_key ? 400 : 500, "%s",
                                                  wrong_key ? "unseal failed, invalid key" : emsg));
        }
        if (!wrong_key) {
            join_fail(j, 500, emsg);
        }
        return;
    }
    char *b64 = cf_base64_encode(nonce, nlen);
    cf_cleanse(nonce, nlen);
    cf_free(nonce);
    char *csr = NULL;
    rv = b64 ? cf_tlsca_new_csr(core->node_id, &j->key_pem, &csr, emsg) : CF_ENOMEM;
    j->key = rv == CF_OK ? cf_cloak_new(key, len) : NULL;
    json_t *body = rv == CF_OK && j->key
                       ? json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:I}", "server_id", core->node_id,
                                   "answer", b64, "cluster_addr", core->cluster_addr, "api_addr",
                                   core->api_addr, "csr", csr, "non_voter", j->non_voter, "version",
                                   COFFER_VERSION, "entry_format", (json_int_t)RFT_ENTRY_FORMAT)
                       : NULL;
    cf_free(b64);
    cf_free(csr);
    if (body == NULL) {
        join_fail(j, 500, emsg[0] ? emsg : "out of memory");
        return;
    }
    j->phase = JOIN_ANSWER;
    rv = node__http_post(core->loop, j->leader, "/v1/sys/storage/raft/bootstrap/answer", body,
                         j->ca_pem, HTTP_TIMEOUT_MS, answer_cb, j);
    json_decref(body);
    if (rv != CF_OK) {
        join_fail(j, 500, cf_strerror(rv));
    }
}

void node__join_unseal(struct node_core *core, struct node_request *req)
{
    struct node_join *j = core->join;
    if (j->phase != JOIN_UNSEAL) {
        node_request_done(req, node_response_error(503, j->phase == JOIN_CHALLENGE
                                                            ? "the join is still contacting the "
                                                              "leader"
                                                            : "the join is in progress"));
        return;
    }
    if (j->pending != NULL) {
        node_request_done(req, node_response_error(503, "an unseal is already in progress"));
        return;
    }
    json_t *jkey = json_object_get(req->data, "key");
    if (json_is_true(json_object_get(req->data, "reset"))) {
        node__shares_reset(&core->unseal_shares);
        node__lifecycle_seal_status(core, req);
        return;
    }
    if (!json_is_string(jkey) || json_string_length(jkey) == 0) {
        node_request_done(req, node_response_error(400,
                                                   "'key' must be specified in request body as "
                                                   "JSON, or 'reset' set to true"));
        return;
    }
    if (!node__shares_take(&core->unseal_shares, req, NULL, "unseal failed, invalid key")) {
        return;
    }
    if (core->unseal_shares.n < core->seal.threshold) {
        node__lifecycle_seal_status(core, req);
        return;
    }
    struct cf_secret *combined = NULL;
    int rv = node__shares_combine(&core->unseal_shares, &combined);
    node__shares_reset(&core->unseal_shares);
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(400, "unseal failed, invalid key"));
        return;
    }
    j->pending = req;
    join_with_key(j, combined->data, combined->len);
    cf_secret_free(combined);
}

int node__join_finish(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    struct node_join *j = core->join;
    if (j == NULL || j->phase != JOIN_SYNC || j->key == NULL) {
        return CF_OK;
    }
    struct cf_secret *k = NULL;
    int rv = cf_cloak_open(j->key, &k);
    if (rv == CF_OK) {
        rv = node__unseal_with_key(core, k->data, k->len, errmsg);
    }
    cf_secret_free(k);
    core->join = NULL;
    join_free(j);
    return rv;
}

static void start_join(struct node_core *core,
                       struct node_request *req,
                       const char *leader,
                       const char *ca_pem,
                       bool non_voter,
                       bool retry)
{
    struct node_join *j = cf_calloc(1, sizeof(*j));
    if (j == NULL) {
        if (req != NULL) {
            node_request_done(req, NULL);
        }
        return;
    }
    j->core = core;
    j->retry = retry;
    j->non_voter = non_voter;
    if (leader != NULL) {
        j->leader = cf_strdup(leader);
        j->ca_pem = ca_pem ? cf_strdup(ca_pem) : NULL;
    }
    core->join = j;
    if (req != NULL && !retry) {
        j->pending = req;
    } else if (req != NULL) {
        node_request_done(req, joined_response());
    }
    try_next_leader(j);
}

void node__join_start_retry(struct node_core *core)
{
    if (core->cfg.n_retry_join == 0 || core->join != NULL || node__initialized(core) ||
        node__cluster_joined(core)) {
        return;
    }
    CF_LOG(CF_LOG_INFO, "retry_join: %zu leader address(es) configured", core->cfg.n_retry_join);
    start_join(core, NULL, NULL, NULL, core->cfg.retry_join_as_non_voter, true);
}

static void handle_join(struct node_core *core, struct node_request *req)
{
    const char *leader = str(req->data, "leader_api_addr");
    if (node__initialized(core) || node__cluster_joined(core) || core->initializing) {
        node_request_done(req, node_response_error(400,
                                                   "node is already initialized or "
                                                   "part of a cluster"));
        return;
    }
    if (core->join != NULL) {
        node_request_done(req, node_response_error(400, "a join is already in progress"));
        return;
    }
    if (core->cfg.net == NULL) {
        node_request_done(req, node_response_error(400,
                                                   "this node has no cluster port "
                                                   "(dev mode cannot join a cluster)"));
        return;
    }
    if ((leader == NULL || leader[0] == '\0') && core->cfg.n_retry_join == 0) {
        node_request_done(req, node_response_error(400, "leader_api_addr is required"));
        return;
    }
    if (leader != NULL && strncmp(leader, "http://", 7) != 0 &&
        strncmp(leader, "https://", 8) != 0) {
        node_request_done(req, node_response_error(400,
                                                   "leader_api_addr must be an http:// or "
                                                   "https:// URL"));
        return;
    }
    json_t *jr = json_object_get(req->data, "retry");
    json_t *jn = json_object_get(req->data, "non_voter");
    if ((jr != NULL && !json_is_boolean(jr)) || (jn != NULL && !json_is_boolean(jn))) {
        node_request_done(req, node_response_error(400, "retry and non_voter must be booleans"));
        return;
    }
    const char *ca = str(req->data, "leader_ca_cert");
    start_join(core, req, leader && leader[0] ? leader : NULL, ca && ca[0] ? ca : NULL,
               json_is_true(jn), json_is_true(jr) || leader == NULL || leader[0] == '\0');
}

bool node__join_handle(struct node_core *core, struct node_request *req)
{
    const char *p = req->path;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (strncmp(p, "sys/storage/raft/", 17) != 0) {
        return false;
    }
    p += 17;
    if (strcmp(p, "join") == 0) {
        if (!write) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else {
            handle_join(core, req);
        }
        return true;
    }
    if (strcmp(p, "bootstrap/challenge") != 0 && strcmp(p, "bootstrap/answer") != 0) {
        return false;
    }
    if (!write) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
    } else if (core->sealed) {
        node_request_done(req, node_response_error(503, "Vault is sealed"));
    } else if (!rft_store_is_ready(core->store)) {
        struct node_response *r = node_response_new();
        if (r != NULL) {
            r->forward = true;
        }
        node_request_done(req, r);
    } else if (strcmp(p, "bootstrap/challenge") == 0) {
        handle_challenge(core, req);
    } else {
        handle_answer(core, req);
    }
    return true;
}
