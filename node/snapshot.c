/*
 * Raft snapshots that leave and re-enter a cluster (core.md 7): GET sys/storage/raft/snapshot
 * saves, POST sys/storage/raft/snapshot restores, POST sys/storage/raft/snapshot-force restores a
 * snapshot made by a cluster with other keys. The file format is docs/formats/raft-snapshot.md.
 *
 * Saving freezes the FSM on the loop (O(1)) and encodes the frozen copy on a worker thread.
 *
 * Restoring runs on the active node. The file is checked (magic, format, SHA-256, every record)
 * before anything is written. Without force, the snapshot's root key must open with this
 * cluster's unseal key (the same check Vault makes), so that the cluster stays unsealable. The
 * keys are then staged under core/restore/stage/ in batches of about 1 MiB, and one RESTORE entry
 * (raft entry format 2) swaps them in atomically on every node. The cluster's own records under
 * core/cluster/ (members, active node, cluster CA, autopilot, removed nodes) are kept: they
 * describe the cluster the snapshot lands in, not the one it came from. Afterwards every node
 * reloads from storage with the unseal key it holds; after a forced restore from another cluster
 * that fails and the nodes seal, to be unsealed with the keys of the snapshot's cluster.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/json.h"
#include "lib/mem.h"
#include "node/barrier.h"
#include "node/cluster.h"
#include "node/internal.h"
#include "raft/entry.h"
#include "raft/snapfile.h"
#include "raft/store.h"

#define CF_LOG_MODULE "snapshot"
#include "lib/log.h"

#define STAGE_PREFIX "core/restore/stage/"
#define RESTORE_PREFIX "core/restore/"
#define KEEP_PREFIX "core/cluster/"
#define STAGE_BATCH_BYTES (1024 * 1024)

/* Saving ------------------------------------------------------------------------------------- */

struct save_op
{
    uv_work_t work;
    struct node_core *core;
    struct node_request *req;
    struct rft_frozen *frozen;
    char *meta;
    struct cf_buf out;
    int rv;
};

static void save_work(uv_work_t *w)
{
    struct save_op *op = w->data;
    op->rv = rft_snapfile_encode(op->frozen, op->meta, strlen(op->meta), &op->out);
}

static void save_after(uv_work_t *w, int status)
{
    struct save_op *op = w->data;
    rft_frozen_release(op->frozen);
    struct node_response *r = NULL;
    if (status != 0 || op->rv != CF_OK) {
        r = node_response_error(500, "snapshot: %s", cf_strerror(status ? CF_EIO : op->rv));
    } else {
        r = node_response_new();
        if (r != NULL) {
            r->raw_content_type = cf_strdup("application/octet-stream");
            r->raw_len = op->out.len;
            r->raw_body = cf_buf_steal(&op->out, NULL);
            if (r->raw_content_type == NULL || r->raw_body == NULL) {
                node_response_free(r);
                r = NULL;
            }
        }
    }
    CF_LOG(CF_LOG_INFO, "snapshot saved (%zu bytes)", r != NULL ? r->raw_len : (size_t)0);
    cf_buf_close(&op->out);
    cf_free(op->meta);
    node_request_done(op->req, r);
    cf_free(op);
}

static void handle_save(struct node_core *core, struct node_request *req)
{
    struct save_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        node_request_done(req, NULL);
        return;
    }
    op->core = core;
    op->req = req;
    cf_buf_init(&op->out);
    op->frozen = rft_store_freeze(core->store);
    json_t *meta = json_pack(
        "{s:I,s:s,s:I,s:I,s:I,s:I}", "format", (json_int_t)RFT_SNAPFILE_FORMAT, "version",
        COFFER_VERSION, "index", (json_int_t)(op->frozen ? rft_frozen_index(op->frozen) : 0),
        "term", (json_int_t)(op->frozen ? rft_frozen_term(op->frozen) : 0), "keys",
        (json_int_t)rft_store_size(core->store), "created", (json_int_t)time(NULL));
    op->meta = meta != NULL ? cf_json_dumps(meta, NULL) : NULL;
    json_decref(meta);
    op->work.data = op;
    if (op->frozen == NULL || op->meta == NULL ||
        uv_queue_work(core->loop, &op->work, save_work, save_after) != 0) {
        rft_frozen_release(op->frozen);
        cf_free(op->meta);
        cf_free(op);
        node_request_done(req, NULL);
    }
}

/* Restoring ---------------------------------------------------------------------------------- */

struct restore_op
{
    struct node_core *core;
    struct node_request *req;
    bool force;
    struct rft_batch **batches; /* staging batches, then the swap */
    size_t n;
    size_t next;
    size_t cur_bytes;
    size_t keys;
    int rv;
    char errmsg[CF_ERRMSG_SIZE];
    /* the snapshot's own keys, to check them against this cluster's unseal key */
    uint8_t *root;
    size_t root_len;
    uint8_t *ring;
    size_t ring_len;
};

static void restore_op_free(struct restore_op *op)
{
    for (size_t i = op->next; i < op->n; i++) {
        rft_batch_free(op->batches[i]);
    }
    cf_free(op->batches);
    cf_free(op->root);
    cf_free(op->ring);
    cf_free(op);
}

static int add_batch(struct restore_op *op)
{
    struct rft_batch **nb = cf_realloc(op->batches, (op->n + 1) * sizeof(*nb));
    if (nb == NULL) {
        return CF_ENOMEM;
    }
    op->batches = nb;
    op->batches[op->n] = rft_batch_new();
    if (op->batches[op->n] == NULL) {
        return CF_ENOMEM;
    }
    op->n++;
    op->cur_bytes = 0;
    return CF_OK;
}

static int stage_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct restore_op *op = arg;
    if (strncmp(key, KEEP_PREFIX, strlen(KEEP_PREFIX)) == 0 ||
        strncmp(key, RESTORE_PREFIX, strlen(RESTORE_PREFIX)) == 0) {
        return 0; /* this cluster's records stay; a half-done restore is not data */
    }
    uint8_t **keep = NULL;
    size_t *keep_len = NULL;
    if (strcmp(key, NODE_KEY_ROOT) == 0) {
        keep = &op->root;
        keep_len = &op->root_len;
    } else if (strcmp(key, NODE_KEY_KEYRING) == 0) {
        keep = &op->ring;
        keep_len = &op->ring_len;
    }
    if (keep != NULL) {
        *keep = cf_memdup(val, len > 0 ? len : 1);
        if (*keep == NULL) {
            op->rv = CF_ENOMEM;
            return 1;
        }
        *keep_len = len;
    }
    char skey[RFT_KEY_MAX + 1];
    if (strlen(STAGE_PREFIX) + strlen(key) > RFT_KEY_MAX) {
        op->rv = CF_ETOOBIG;
        cf_errmsg_printf(op->errmsg, "the snapshot holds a key of %zu bytes, too long to restore",
                         strlen(key));
        return 1;
    }
    snprintf(skey, sizeof(skey), "%s%s", STAGE_PREFIX, key);
    if (op->cur_bytes + len > STAGE_BATCH_BYTES && rft_batch_count(op->batches[op->n - 1]) > 0) {
        op->rv = add_batch(op);
        if (op->rv != CF_OK) {
            return 1;
        }
    }
    op->rv = rft_batch_put(op->batches[op->n - 1], skey, val, len);
    op->cur_bytes += strlen(skey) + len;
    op->keys++;
    return op->rv != CF_OK;
}

/* Checks the file and splits it into staging batches. 400-class problems set errmsg. */
static int restore_parse(struct restore_op *op, const uint8_t *p, size_t len)
{
    const uint8_t *mp;
    size_t mlen;
    const uint8_t *body;
    size_t blen;
    int rv = rft_snapfile_open(p, len, &mp, &mlen, &body, &blen, op->errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    json_t *meta = json_loadb((const char *)mp, mlen, 0, NULL);
    bool meta_ok = json_is_object(meta);
    json_decref(meta);
    if (!meta_ok) {
        cf_errmsg_printf(op->errmsg, "snapshot metadata is not a JSON object");
        return CF_EMALFORMED;
    }
    rv = add_batch(op);
    if (rv == CF_OK) {
        rv = rft_batch_delete_prefix(op->batches[0], RESTORE_PREFIX);
    }
    if (rv != CF_OK) {
        return rv;
    }
    char errmsg[CF_ERRMSG_SIZE] = "";
    rv = rft_frozen_scan_encoded(body, blen, stage_visit, op, errmsg);
    if (rv != CF_OK) {
        if (op->rv != CF_OK) {
            return op->rv;
        }
        cf_errmsg_printf(op->errmsg, "%s", errmsg);
        return rv == CF_ENOMEM ? CF_ENOMEM : CF_EMALFORMED;
    }
    if (op->root == NULL || op->ring == NULL) {
        cf_errmsg_printf(op->errmsg,
                         "the snapshot holds no root key or keyring: it is not a "
                         "snapshot of an initialized cluster");
        return CF_EMALFORMED;
    }
    return CF_OK;
}

/* True when the snapshot's root key opens with the unseal key this node holds. */
static bool same_keys(struct node_core *core, const struct restore_op *op)
{
    struct cf_secret *k = NULL;
    struct barrier *b = barrier_new();
    bool ok = false;
    if (b != NULL && cf_cloak_open(core->unseal_key, &k) == CF_OK) {
        char errmsg[CF_ERRMSG_SIZE];
        ok = barrier_unseal(b, k->data, k->len, op->root, op->root_len, op->ring, op->ring_len,
                            errmsg) == CF_OK;
    }
    cf_secret_free(k);
    barrier_free(b);
    return ok;
}

static void restore_step(void *arg, int status);

static void dropped_cb(void *arg, int status)
{
    (void)arg;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "drop the staged restore: %s", cf_strerror(status));
    }
}

static void restore_fail(struct restore_op *op, int status)
{
    CF_LOG(CF_LOG_ERROR, "restore failed after %zu of %zu batches: %s", op->next, op->n,
           cf_strerror(status));
    /* Drop what was staged (best effort; the next restore drops it too). */
    struct rft_batch *b = rft_batch_new();
    if (b != NULL && rft_batch_delete_prefix(b, RESTORE_PREFIX) == CF_OK) {
        node__commit(op->core, b, dropped_cb, NULL);
    } else {
        rft_batch_free(b);
    }
    op->core->restoring = false;
    node_request_done(op->req, node_response_error(status == CF_ENOTLEADER ? 503 : 500,
                                                   "restore failed, nothing was changed: %s",
                                                   cf_strerror(status)));
    restore_op_free(op);
}

static void restore_step(void *arg, int status)
{
    struct restore_op *op = arg;
    struct node_core *core = op->core;
    if (status != CF_OK) {
        restore_fail(op, status);
        return;
    }
    if (op->next == op->n) {
        CF_LOG(CF_LOG_INFO, "restored a snapshot of %zu keys%s; reloading", op->keys,
               op->force ? " (forced)" : "");
        core->restoring = false;
        node_request_done(op->req, node_response_new());
        restore_op_free(op);
        /* Reload everything from the restored storage once idle (node__ha_update). */
        core->reload_pending = true;
        node__ha_update(core);
        return;
    }
    struct rft_batch *b = op->batches[op->next++];
    node__commit(core, b, restore_step, op);
}

static void handle_restore(struct node_core *core, struct node_request *req, bool force)
{
    if (req->raw_body == NULL || req->raw_len == 0) {
        node_request_done(req, node_response_error(400, "no snapshot in the request body"));
        return;
    }
    if (core->restoring) {
        node_request_done(req, node_response_error(400, "a snapshot restore is in progress"));
        return;
    }
    if (rft_store_entry_format(core->store) < 2) {
        node_request_done(
            req, node_response_error(503,
                                     "a server of this cluster runs a build that cannot apply "
                                     "restore entries (raft entry format 2): upgrade it first"));
        return;
    }
    struct restore_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        node_request_done(req, NULL);
        return;
    }
    op->core = core;
    op->req = req;
    op->force = force;
    int rv = restore_parse(op, req->raw_body, req->raw_len);
    if (rv == CF_OK && !force && !same_keys(core, op)) {
        cf_errmsg_printf(op->errmsg,
                         "the snapshot was made by a cluster with other keys (its root key does "
                         "not open with this cluster's unseal key); use "
                         "sys/storage/raft/snapshot-force to restore it anyway, then unseal with "
                         "the keys of the cluster it came from");
        rv = CF_EAUTH;
    }
    struct rft_batch *swap = NULL;
    if (rv == CF_OK) {
        json_t *mark = json_pack("{s:I,s:b,s:I}", "time", (json_int_t)time(NULL), "force", force,
                                 "keys", (json_int_t)op->keys);
        char *ms = mark != NULL ? cf_json_dumps(mark, NULL) : NULL;
        json_decref(mark);
        rv = add_batch(op);
        swap = rv == CF_OK ? op->batches[op->n - 1] : NULL;
        if (swap == NULL || ms == NULL ||
            rft_batch_restore(swap, STAGE_PREFIX, KEEP_PREFIX) != CF_OK ||
            rft_batch_put(swap, KEEP_PREFIX "restored", (const uint8_t *)ms, strlen(ms)) != CF_OK) {
            rv = CF_ENOMEM;
        }
        cf_free(ms);
    }
    if (rv != CF_OK) {
        int code = rv == CF_ENOMEM ? 500 : 400;
        node_request_done(
            req, node_response_error(code, "%s", op->errmsg[0] ? op->errmsg : cf_strerror(rv)));
        restore_op_free(op);
        return;
    }
    CF_LOG(CF_LOG_INFO, "restoring a snapshot of %zu keys in %zu entries%s", op->keys, op->n,
           force ? " (forced)" : "");
    core->restoring = true;
    restore_step(op, CF_OK);
}

bool node__snapshot_handle(struct node_core *core, struct node_request *req, bool sudo)
{
    const char *p = req->path;
    bool force = strcmp(p, "sys/storage/raft/snapshot-force") == 0;
    if (!force && strcmp(p, "sys/storage/raft/snapshot") != 0) {
        return false;
    }
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (!(write || (!force && req->op == NODE_OP_READ))) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
    } else if (!sudo) {
        node_request_done(req, node_response_error(403, "permission denied"));
    } else if (req->op == NODE_OP_READ) {
        handle_save(core, req);
    } else {
        handle_restore(core, req, force);
    }
    return true;
}
