/*
 * Cluster membership on the store (store.h "Membership"): configuration changes queued and run
 * one at a time (libraft refuses a second change while one is uncommitted), leadership
 * transfer, and the server list with the leader's view of each follower.
 */
#include <stdio.h>
#include <string.h>

#include "lib/mem.h"
#include "raft/internal.h"

#define CF_LOG_MODULE "raft"
#include "lib/log.h"
#include "raft/transport_tls.h"

enum change_kind {
    CHANGE_ADD,    /* raft_add (spare), then assign standby */
    CHANGE_ASSIGN, /* raft_assign to `role` */
    CHANGE_REMOVE, /* raft_remove */
};

struct rft_change_op
{
    struct rft_store *s;
    enum change_kind kind;
    raft_id id;
    char *node_id;
    char *address;
    int role;
    bool added; /* CHANGE_ADD: the spare is in, the assign follows */
    rft_change_cb cb;
    void *arg;
    struct rft_change_op *next;
};

static void run_next(struct rft_store *s);

struct deferred
{
    uv_timer_t timer;
    rft_change_cb cb;
    void *arg;
    int status;
    char errmsg[CF_ERRMSG_SIZE];
};

static void deferred_closed_cb(uv_handle_t *h)
{
    cf_free(h->data);
}

static void deferred_fire_cb(uv_timer_t *t)
{
    struct deferred *d = t->data;
    d->cb(d->arg, d->status, d->errmsg);
    uv_close((uv_handle_t *)&d->timer, deferred_closed_cb);
}

/* Calls cb from the loop soon (never inside the caller). */
static void fire_later(struct rft_store *s,
                       rft_change_cb cb,
                       void *arg,
                       int status,
                       const char *msg)
{
    if (cb == NULL) {
        return;
    }
    struct deferred *d = cf_calloc(1, sizeof(*d));
    if (d == NULL) {
        cf_oom_abort();
    }
    d->cb = cb;
    d->arg = arg;
    d->status = status;
    snprintf(d->errmsg, sizeof(d->errmsg), "%s", msg ? msg : "");
    uv_timer_init(s->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, deferred_fire_cb, 0, 0);
}

static void op_free(struct rft_change_op *op)
{
    cf_free(op->node_id);
    cf_free(op->address);
    cf_free(op);
}

static void op_finish(struct rft_change_op *op, int status, const char *msg)
{
    struct rft_store *s = op->s;
    if (status == CF_OK) {
        CF_LOG(CF_LOG_INFO, "configuration change done node=%s", op->node_id);
    } else {
        CF_LOG(CF_LOG_WARN, "configuration change failed node=%s: %s", op->node_id, msg);
    }
    op->cb(op->arg, status, msg);
    op_free(op);
    run_next(s);
}

static int status_of(int rv)
{
    switch (rv) {
        case RAFT_NOTFOUND:
        case RAFT_BADID:
            return CF_ENOTFOUND;
        case RAFT_DUPLICATEID:
        case RAFT_DUPLICATEADDRESS:
            return CF_EEXIST;
        default:
            return rft__err_from_raft(rv);
    }
}

static void change_cb(struct raft_change *req, int status);

/* Starts the next step of the head op; finishes it at once on a synchronous failure. */
static void start_op(struct rft_store *s)
{
    struct rft_change_op *op = s->changes;
    int rv;
    s->change_req.data = op;
    if (s->closing) {
        s->changes = op->next;
        op_finish(op, CF_ECANCELED, "the store is closing");
        return;
    }
    switch (op->kind) {
        case CHANGE_ADD:
            rv = op->added ? raft_assign(&s->raft, &s->change_req, op->id, RAFT_STANDBY, change_cb)
                           : raft_add(&s->raft, &s->change_req, op->id, op->address, change_cb);
            break;
        case CHANGE_ASSIGN:
            rv = raft_assign(&s->raft, &s->change_req, op->id, op->role, change_cb);
            break;
        case CHANGE_REMOVE:
            rv = raft_remove(&s->raft, &s->change_req, op->id, change_cb);
            break;
        default:
            rv = RAFT_INVALID;
            break;
    }
    if (rv == 0) {
        s->change_running = true;
        return;
    }
    char msg[CF_ERRMSG_SIZE];
    snprintf(msg, sizeof(msg), "%s",
             op->kind == CHANGE_ASSIGN && rv == RAFT_BADROLE ? "the server already has that role"
             : raft_errmsg(&s->raft)[0]                      ? raft_errmsg(&s->raft)
                                                             : raft_strerror(rv));
    s->changes = op->next;
    if (s->changes == NULL) {
        s->changes_tail = NULL;
    }
    int st = rv == RAFT_BADROLE ? CF_EEXIST : status_of(rv);
    /* Finish from the loop: the caller may be inside its own submit call. */
    fire_later(s, op->cb, op->arg, st, msg);
    op_free(op);
    run_next(s);
}

static void change_cb(struct raft_change *req, int status)
{
    struct rft_change_op *op = req->data;
    struct rft_store *s = op->s;
    s->change_running = false;
    if (status == 0 && op->kind == CHANGE_ADD && !op->added) {
        op->added = true;
        start_op(s);
        return;
    }
    s->changes = op->next;
    if (s->changes == NULL) {
        s->changes_tail = NULL;
    }
    op_finish(op, status == 0 ? CF_OK : status_of(status),
              status == 0 ? "" : raft_strerror(status));
}

static void run_next(struct rft_store *s)
{
    if (!s->change_running && s->changes != NULL) {
        start_op(s);
    }
}

static void submit(struct rft_store *s,
                   enum change_kind kind,
                   const char *node_id,
                   const char *address,
                   int role,
                   rft_change_cb cb,
                   void *arg)
{
    if (s->closing || !s->started) {
        fire_later(s, cb, arg, CF_ECANCELED, "the store is not running");
        return;
    }
    if (raft_state(&s->raft) != RAFT_LEADER) {
        fire_later(s, cb, arg, CF_ENOTLEADER, "this node is not the leader");
        return;
    }
    struct rft_change_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL || (op->node_id = cf_strdup(node_id)) == NULL ||
        (address != NULL && (op->address = cf_strdup(address)) == NULL)) {
        cf_oom_abort();
    }
    op->s = s;
    op->kind = kind;
    op->id = rft_raft_id(node_id);
    op->role = role;
    op->cb = cb;
    op->arg = arg;
    if (s->changes_tail != NULL) {
        s->changes_tail->next = op;
    } else {
        s->changes = op;
    }
    s->changes_tail = op;
    run_next(s);
}

void rft_store_add_nonvoter(struct rft_store *s,
                            const char *node_id,
                            const char *address,
                            rft_change_cb cb,
                            void *arg)
{
    submit(s, CHANGE_ADD, node_id, address, RAFT_STANDBY, cb, arg);
}

void rft_store_set_voter(struct rft_store *s,
                         const char *node_id,
                         bool voter,
                         rft_change_cb cb,
                         void *arg)
{
    submit(s, CHANGE_ASSIGN, node_id, NULL, voter ? RAFT_VOTER : RAFT_STANDBY, cb, arg);
}

void rft_store_remove(struct rft_store *s, const char *node_id, rft_change_cb cb, void *arg)
{
    submit(s, CHANGE_REMOVE, node_id, NULL, 0, cb, arg);
}

void rft__changes_cancel(struct rft_store *s)
{
    /* The running change (if any) is failed by raft_close; the queued ones never started. */
    struct rft_change_op *op = s->changes;
    if (s->change_running && op != NULL) {
        op = op->next;
        s->changes->next = NULL;
        s->changes_tail = s->changes;
    } else {
        s->changes = NULL;
        s->changes_tail = NULL;
    }
    while (op != NULL) {
        struct rft_change_op *next = op->next;
        fire_later(s, op->cb, op->arg, CF_ECANCELED, "the store is closing");
        op_free(op);
        op = next;
    }
}

/* Leadership transfer -------------------------------------------------------------------- */

static void transfer_cb(struct raft_transfer *req)
{
    struct rft_store *s = req->data;
    s->transfer_pending = false;
    rft_change_cb cb = s->transfer_cb;
    void *arg = s->transfer_arg;
    s->transfer_cb = NULL;
    bool moved = raft_state(&s->raft) != RAFT_LEADER;
    if (cb != NULL) {
        cb(arg, moved ? CF_OK : CF_ETIMEDOUT,
           moved ? "" : "leadership did not move within the election timeout");
    }
}

void rft_store_transfer(struct rft_store *s, const char *node_id, rft_change_cb cb, void *arg)
{
    if (s->closing || !s->started || raft_state(&s->raft) != RAFT_LEADER) {
        fire_later(s, cb, arg, CF_ENOTLEADER, "this node is not the leader");
        return;
    }
    if (s->transfer_pending) {
        fire_later(s, cb, arg, CF_EBUSY, "a leadership transfer is already in progress");
        return;
    }
    raft_id id = node_id ? rft_raft_id(node_id) : 0;
    s->transfer_req.data = s;
    int rv = raft_transfer(&s->raft, &s->transfer_req, id, transfer_cb);
    if (rv != 0) {
        fire_later(s, cb, arg, rv == RAFT_NOTFOUND || rv == RAFT_BADID ? CF_ENOTFOUND : CF_EIO,
                   rv == RAFT_NOTFOUND ? "there is no other voter to lead" : raft_strerror(rv));
        return;
    }
    s->transfer_pending = true;
    s->transfer_cb = cb;
    s->transfer_arg = arg;
}

/* Server list ------------------------------------------------------------------------------ */

void rft__contacts_update(struct rft_store *s)
{
    const struct raft_configuration *c = &s->raft.configuration;
    uint64_t now = uv_now(s->loop);
    for (unsigned i = 0; i < c->n && s->raft.leader_state.progress != NULL; i++) {
        if (!s->raft.leader_state.progress[i].recent_recv) {
            continue;
        }
        raft_id id = c->servers[i].id;
        int slot = -1;
        for (int j = 0; j < RFT__MAX_CONTACTS; j++) {
            if (s->contacts[j].id == id) {
                slot = j;
                break;
            }
            if (slot < 0 && s->contacts[j].id == 0) {
                slot = j;
            }
        }
        if (slot >= 0) {
            s->contacts[slot].id = id;
            s->contacts[slot].last_ms = now;
        }
    }
}

size_t rft_store_servers(struct rft_store *s, struct rft_server *out, size_t cap)
{
    const struct raft_configuration *c = &s->raft.configuration;
    bool leader = s->started && raft_state(&s->raft) == RAFT_LEADER;
    raft_id leader_id = 0;
    const char *leader_addr = NULL;
    if (s->started) {
        raft_leader(&s->raft, &leader_id, &leader_addr);
    }
    uint64_t now = uv_now(s->loop);
    for (unsigned i = 0; i < c->n && i < cap; i++) {
        struct rft_server *v = &out[i];
        memset(v, 0, sizeof(*v));
        v->raft_id = c->servers[i].id;
        snprintf(v->address, sizeof(v->address), "%s", c->servers[i].address);
        v->voter = c->servers[i].role == RAFT_VOTER;
        v->leader = c->servers[i].id == leader_id;
        if (!leader || s->raft.leader_state.progress == NULL) {
            continue;
        }
        if (c->servers[i].id == s->id) {
            v->match_index = raft_last_index(&s->raft);
            v->recent_contact = true;
            continue;
        }
        v->match_index = s->raft.leader_state.progress[i].match_index;
        v->recent_contact = s->raft.leader_state.progress[i].recent_recv;
        v->last_contact_ms = UINT64_MAX;
        for (int j = 0; j < RFT__MAX_CONTACTS; j++) {
            if (s->contacts[j].id == v->raft_id) {
                v->last_contact_ms = now - s->contacts[j].last_ms;
            }
        }
    }
    return c->n;
}

uint64_t rft_store_leader(struct rft_store *s, char address[RFT_ADDRESS_MAX])
{
    raft_id id = 0;
    const char *addr = NULL;
    if (s->started && !s->closing) {
        raft_leader(&s->raft, &id, &addr);
    }
    snprintf(address, RFT_ADDRESS_MAX, "%s", addr ? addr : "");
    return id;
}

uint64_t rft_store_configuration_index(const struct rft_store *s)
{
    return s->raft.configuration_index;
}
