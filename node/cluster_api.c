/*
 * Authenticated cluster endpoints (core.md 7, 2.5, 8) and autopilot:
 * sys/storage/raft/configuration, remove-peer, autopilot/state, autopilot/configuration,
 * sys/step-down, sys/ha-status. Autopilot runs on the active node: every second it promotes
 * non-voters that asked to vote once they have been healthy (recent contact, at most
 * max_trailing_logs behind) for server_stabilization_time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/duration.h"
#include "lib/json.h"
#include "lib/mem.h"
#include "node/cluster.h"
#include "node/internal.h"

#define CF_LOG_MODULE "cluster"
#include "lib/log.h"
#include "raft/transport_tls.h"

#define MAX_SERVERS 64
#define AUTOPILOT_TICK_MS 1000

struct ap_config
{
    bool cleanup_dead_servers;
    int64_t last_contact_threshold_ms;
    int64_t dead_server_last_contact_threshold_ms;
    int64_t max_trailing_logs;
    int64_t min_quorum;
    int64_t server_stabilization_time_ms;
};

struct ap_server
{
    uint64_t raft_id;
    uint64_t healthy_since_ms; /* loop time; 0 = not healthy */
    uint64_t failed_since_ms;  /* loop time it was first seen unhealthy; 0 = healthy */
    int64_t stable_since_s;    /* wall clock, for autopilot/state */
};

struct node_autopilot
{
    struct node_core *core;
    uv_timer_t timer;
    struct ap_server servers[MAX_SERVERS];
    bool promoting;
};

/* A peer removal: by remove-peer (req set) or by autopilot's dead server cleanup (req NULL). */
struct remove_op
{
    struct node_core *core;
    struct node_request *req;
    char id[128];
};

static void removed_cb(void *arg, int status, const char *errmsg);

static void ap_defaults(struct ap_config *c)
{
    memset(c, 0, sizeof(*c));
    c->last_contact_threshold_ms = 10000;
    c->dead_server_last_contact_threshold_ms = 24 * 3600 * 1000;
    c->max_trailing_logs = 1000;
    c->server_stabilization_time_ms = 10000;
}

static void ap_load(struct node_core *core, struct ap_config *c)
{
    ap_defaults(c);
    const uint8_t *v;
    size_t n;
    if (node__raw_get(core, NODE_KEY_CLUSTER_AUTOPILOT, &v, &n) != CF_OK) {
        return;
    }
    json_t *j = json_loadb((const char *)v, n, 0, NULL);
    c->cleanup_dead_servers = json_is_true(json_object_get(j, "cleanup_dead_servers"));
    c->last_contact_threshold_ms =
        json_integer_value(json_object_get(j, "last_contact_threshold_ms"));
    c->dead_server_last_contact_threshold_ms =
        json_integer_value(json_object_get(j, "dead_server_last_contact_threshold_ms"));
    c->max_trailing_logs = json_integer_value(json_object_get(j, "max_trailing_logs"));
    c->min_quorum = json_integer_value(json_object_get(j, "min_quorum"));
    c->server_stabilization_time_ms =
        json_integer_value(json_object_get(j, "server_stabilization_time_ms"));
    json_decref(j);
}

static struct node_response *forward_response(void)
{
    struct node_response *r = node_response_new();
    if (r != NULL) {
        r->forward = true;
    }
    return r;
}

static const char *member_id(json_t *m)
{
    const char *s = json_string_value(json_object_get(m, "node_id"));
    return s ? s : "";
}

/* Autopilot ---------------------------------------------------------------------------------- */

static struct ap_server *ap_slot(struct node_autopilot *ap, uint64_t id)
{
    struct ap_server *free_slot = NULL;
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (ap->servers[i].raft_id == id) {
            return &ap->servers[i];
        }
        if (free_slot == NULL && ap->servers[i].raft_id == 0) {
            free_slot = &ap->servers[i];
        }
    }
    if (free_slot != NULL) {
        memset(free_slot, 0, sizeof(*free_slot));
        free_slot->raft_id = id;
    }
    return free_slot;
}

/* Healthy: the leader heard from it within last_contact_threshold and it trails by at most
 * max_trailing_logs entries. */
static bool server_healthy(const struct rft_server *v, const struct ap_config *c, uint64_t last)
{
    if (v->leader) {
        return true;
    }
    bool contact =
        v->recent_contact || (v->last_contact_ms != UINT64_MAX &&
                              (int64_t)v->last_contact_ms <= c->last_contact_threshold_ms);
    return contact && last <= v->match_index + (uint64_t)c->max_trailing_logs;
}

static void promoted_cb(void *arg, int status, const char *errmsg)
{
    struct node_autopilot *ap = arg;
    ap->promoting = false;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "autopilot: promotion failed: %s", errmsg);
    }
}

/* cleanup_dead_servers: removes one voter that has been failed (no contact, or too far
 * behind) for dead_server_last_contact_threshold, as long as min_quorum voters remain. The
 * removal is the same as remove-peer's: the node is refused at the cluster port until it joins
 * again with a wiped data dir. */
static void cleanup_dead(struct node_autopilot *ap,
                         const struct ap_config *c,
                         const struct rft_server *sv,
                         size_t n,
                         uint64_t now)
{
    size_t voters = 0;
    for (size_t i = 0; i < n; i++) {
        voters += sv[i].voter;
    }
    for (size_t i = 0; i < n; i++) {
        struct ap_server *s = ap_slot(ap, sv[i].raft_id);
        if (sv[i].leader || !sv[i].voter || s == NULL || s->failed_since_ms == 0 ||
            (int64_t)(now - s->failed_since_ms) < c->dead_server_last_contact_threshold_ms ||
            (int64_t)voters - 1 < c->min_quorum) {
            continue;
        }
        json_t *m = node__cluster_member_by_raft_id(ap->core, sv[i].raft_id);
        struct remove_op *op = m != NULL ? cf_calloc(1, sizeof(*op)) : NULL;
        if (op != NULL) {
            op->core = ap->core;
            snprintf(op->id, sizeof(op->id), "%s", member_id(m));
            CF_LOG(CF_LOG_WARN, "autopilot: removing dead server %s (failed for %llu s)", op->id,
                   (unsigned long long)((now - s->failed_since_ms) / 1000));
            ap->promoting = true;
            rft_store_remove(ap->core->store, op->id, removed_cb, op);
        }
        json_decref(m);
        return; /* one change at a time */
    }
}

static void ap_tick(uv_timer_t *t)
{
    struct node_autopilot *ap = t->data;
    struct node_core *core = ap->core;
    if (!rft_store_is_ready(core->store) || ap->promoting) {
        return;
    }
    node__cluster_gate(core);
    struct ap_config c;
    ap_load(core, &c);
    struct rft_server sv[MAX_SERVERS];
    size_t n = rft_store_servers(core->store, sv, MAX_SERVERS);
    uint64_t last = rft_store_last_index(core->store);
    uint64_t now = uv_now(core->loop);
    for (size_t i = 0; i < n && i < MAX_SERVERS; i++) {
        struct ap_server *s = ap_slot(ap, sv[i].raft_id);
        if (s == NULL) {
            continue;
        }
        if (!server_healthy(&sv[i], &c, last)) {
            s->healthy_since_ms = 0;
            s->stable_since_s = 0;
            if (s->failed_since_ms == 0) {
                s->failed_since_ms = now;
            }
            continue;
        }
        s->failed_since_ms = 0;
        if (s->healthy_since_ms == 0) {
            s->healthy_since_ms = now;
            s->stable_since_s = (int64_t)time(NULL);
        }
        if (sv[i].voter || ap->promoting ||
            (int64_t)(now - s->healthy_since_ms) < c.server_stabilization_time_ms) {
            continue;
        }
        json_t *m = node__cluster_member_by_raft_id(core, sv[i].raft_id);
        bool wants_vote = m != NULL && !json_is_true(json_object_get(m, "non_voter"));
        if (wants_vote) {
            CF_LOG(CF_LOG_INFO, "autopilot: promoting %s to voter", member_id(m));
            ap->promoting = true;
            rft_store_set_voter(core->store, member_id(m), true, promoted_cb, ap);
        }
        json_decref(m);
    }
    if (c.cleanup_dead_servers && !ap->promoting) {
        cleanup_dead(ap, &c, sv, n < MAX_SERVERS ? n : MAX_SERVERS, now);
    }
}

void node__autopilot_start(struct node_core *core)
{
    if (core->autopilot != NULL) {
        return;
    }
    struct node_autopilot *ap = cf_calloc(1, sizeof(*ap));
    if (ap == NULL) {
        return;
    }
    ap->core = core;
    uv_timer_init(core->loop, &ap->timer);
    ap->timer.data = ap;
    uv_timer_start(&ap->timer, ap_tick, AUTOPILOT_TICK_MS, AUTOPILOT_TICK_MS);
    core->autopilot = ap;
}

static void ap_closed_cb(uv_handle_t *h)
{
    cf_free(h->data);
}

void node__autopilot_stop(struct node_core *core)
{
    struct node_autopilot *ap = core->autopilot;
    if (ap == NULL) {
        return;
    }
    core->autopilot = NULL;
    uv_close((uv_handle_t *)&ap->timer, ap_closed_cb);
}

/* Endpoints ---------------------------------------------------------------------------------- */

static void handle_configuration(struct node_core *core, struct node_request *req)
{
    struct rft_server sv[MAX_SERVERS];
    size_t n = rft_store_servers(core->store, sv, MAX_SERVERS);
    json_t *servers = json_array();
    for (size_t i = 0; i < n && i < MAX_SERVERS; i++) {
        json_t *m = node__cluster_member_by_raft_id(core, sv[i].raft_id);
        json_array_append_new(
            servers, json_pack("{s:s,s:s,s:b,s:s,s:b,s:I}", "node_id", member_id(m), "address",
                               sv[i].address, "leader", sv[i].leader, "protocol_version", "3",
                               "voter", sv[i].voter, "last_index", (json_int_t)sv[i].match_index));
        json_decref(m);
    }
    json_t *data =
        json_pack("{s:{s:I,s:o}}", "config", "index",
                  (json_int_t)rft_store_configuration_index(core->store), "servers", servers);
    node_request_done(req, node_response_data(data));
}

/* The end of an autopilot cleanup: the next change may start. */
static void cleanup_done(struct remove_op *op, int status)
{
    if (op->core->autopilot != NULL) {
        op->core->autopilot->promoting = false;
    }
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "autopilot: removing %s failed: %s", op->id, cf_strerror(status));
    } else {
        CF_LOG(CF_LOG_INFO, "autopilot: removed dead server %s", op->id);
    }
    cf_free(op);
}

static void removed_recorded_cb(void *arg, int status)
{
    struct remove_op *op = arg;
    if (op->req == NULL) {
        cleanup_done(op, status);
        return;
    }
    if (status != CF_OK) {
        node_request_done(op->req, node_response_error(500,
                                                       "removed from raft, but recording "
                                                       "the removal failed: %s",
                                                       cf_strerror(status)));
    } else {
        CF_LOG(CF_LOG_INFO, "removed node %s", op->id);
        node_request_done(op->req, node_response_new());
    }
    cf_free(op);
}

static void removed_cb(void *arg, int status, const char *errmsg)
{
    struct remove_op *op = arg;
    if (status != CF_OK && op->req == NULL) {
        cleanup_done(op, status);
        return;
    }
    if (status != CF_OK) {
        node_request_done(op->req, node_response_error(status == CF_ENOTFOUND ? 400 : 500,
                                                       "failed to remove peer: %s", errmsg));
        cf_free(op);
        return;
    }
    char key[512];
    struct rft_batch *b = rft_batch_new();
    snprintf(key, sizeof(key), "%s%s", NODE_PREFIX_CLUSTER_REMOVED, op->id);
    char mkey[512];
    snprintf(mkey, sizeof(mkey), "%s%s", NODE_PREFIX_CLUSTER_MEMBERS, op->id);
    if (b == NULL || rft_batch_put(b, key, (const uint8_t *)"1", 1) != CF_OK ||
        rft_batch_delete(b, mkey) != CF_OK) {
        rft_batch_free(b);
        removed_recorded_cb(op, CF_ENOMEM);
        return;
    }
    node__commit(op->core, b, removed_recorded_cb, op);
}

static void handle_remove_peer(struct node_core *core, struct node_request *req)
{
    const char *id = json_string_value(json_object_get(req->data, "server_id"));
    if (id == NULL || id[0] == '\0') {
        node_request_done(req, node_response_error(400, "no server id provided"));
        return;
    }
    if (strcmp(id, core->node_id) == 0) {
        node_request_done(req, node_response_error(400,
                                                   "the active node cannot remove itself; "
                                                   "step it down first"));
        return;
    }
    struct rft_server sv[MAX_SERVERS];
    size_t n = rft_store_servers(core->store, sv, MAX_SERVERS);
    bool found = false;
    for (size_t i = 0; i < n && i < MAX_SERVERS; i++) {
        found = found || sv[i].raft_id == rft_raft_id(id);
    }
    if (!found) {
        node_request_done(req, node_response_error(400,
                                                   "node \"%s\" is not a member of the "
                                                   "raft configuration",
                                                   id));
        return;
    }
    struct remove_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        node_request_done(req, NULL);
        return;
    }
    op->core = core;
    op->req = req;
    snprintf(op->id, sizeof(op->id), "%s", id);
    rft_store_remove(core->store, id, removed_cb, op);
}

static void duration_str(int64_t ms, char *out, size_t n)
{
    cf_duration_format_ms(ms, out, n);
}

/* upgrade_info (after Vault Enterprise's automated upgrades): the highest version any server
 * runs is the target; the voters that run it and the others. Coffer upgrades in place (a node's
 * binary is replaced), so while any voter runs an older version the status is
 * "await-new-voters", else "idle". */
struct upgrade
{
    char target[64];
    json_t *ids;      /* object id -> version */
    json_t *voter_of; /* object id -> true for voters */
};

static int version_cmp(const char *a, const char *b)
{
    while (*a != '\0' || *b != '\0') {
        unsigned long x = strtoul(a, (char **)&a, 10);
        unsigned long y = strtoul(b, (char **)&b, 10);
        if (x != y) {
            return x < y ? -1 : 1;
        }
        if (*a == '.') {
            a++;
        } else if (*a != '\0') {
            return strcmp(a, b);
        }
        if (*b == '.') {
            b++;
        } else if (*b != '\0') {
            return strcmp(a, b);
        }
    }
    return 0;
}

static void upgrade_note(struct upgrade *up, const char *id, const char *version, bool voter)
{
    json_object_set_new(up->ids, id, json_string(version));
    if (voter) {
        json_object_set_new(up->voter_of, id, json_true());
    }
    if (version[0] != '\0' && version_cmp(version, up->target) > 0) {
        snprintf(up->target, sizeof(up->target), "%s", version);
    }
}

static json_t *upgrade_info(struct upgrade *up)
{
    json_t *at = json_array();
    json_t *other = json_array();
    const char *id;
    json_t *v;
    json_object_foreach(up->ids, id, v)
    {
        if (json_object_get(up->voter_of, id) != NULL) {
            json_array_append_new(strcmp(json_string_value(v), up->target) == 0 ? at : other,
                                  json_string(id));
        }
    }
    json_t *r = json_pack(
        "{s:s,s:s,s:o,s:o}", "status", json_array_size(other) > 0 ? "await-new-voters" : "idle",
        "target_version", up->target, "target_version_voters", at, "other_version_voters", other);
    json_decref(up->ids);
    json_decref(up->voter_of);
    return r;
}

static void handle_autopilot_state(struct node_core *core, struct node_request *req)
{
    struct upgrade up = {.ids = json_object(), .voter_of = json_object()};
    struct ap_config c;
    ap_load(core, &c);
    struct rft_server sv[MAX_SERVERS];
    size_t n = rft_store_servers(core->store, sv, MAX_SERVERS);
    uint64_t last = rft_store_last_index(core->store);
    json_t *servers = json_object();
    json_t *voters = json_array();
    json_t *non_voters = json_array();
    const char *leader = "";
    json_t *leader_m = NULL;
    size_t healthy_voters = 0;
    size_t n_voters = 0;
    bool all_healthy = true;
    for (size_t i = 0; i < n && i < MAX_SERVERS; i++) {
        json_t *m = node__cluster_member_by_raft_id(core, sv[i].raft_id);
        const char *id = member_id(m);
        bool healthy = server_healthy(&sv[i], &c, last);
        all_healthy = all_healthy && healthy;
        struct ap_server *as = core->autopilot ? ap_slot(core->autopilot, sv[i].raft_id) : NULL;
        char lc[32];
        duration_str(sv[i].leader || sv[i].last_contact_ms == UINT64_MAX
                         ? 0
                         : (int64_t)sv[i].last_contact_ms,
                     lc, sizeof(lc));
        char since[40] = "0001-01-01T00:00:00Z";
        if (as != NULL && as->stable_since_s > 0) {
            time_t t = (time_t)as->stable_since_s;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        const char *status = sv[i].leader ? "leader" : sv[i].voter ? "voter" : "non-voter";
        const char *ver = json_string_value(json_object_get(m, "version"));
        json_object_set_new(
            servers, id,
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:b,s:s,s:s,s:s,s:s,s:s,s:n,s:I}", "id", id,
                      "name", id, "address", sv[i].address, "node_status",
                      healthy ? "alive" : "failed", "last_contact", lc, "last_term",
                      (json_int_t)rft_store_term(core->store), "last_index",
                      (json_int_t)sv[i].match_index, "healthy", healthy, "stable_since", since,
                      "status", status, "version", ver ? ver : "", "upgrade_version",
                      ver ? ver : "", "node_type", sv[i].voter ? "voter" : "non-voter", "meta",
                      "entry_format", (json_int_t)node__member_entry_format(m)));
        upgrade_note(&up, id, ver ? ver : "", sv[i].voter);
        if (sv[i].voter) {
            json_array_append_new(voters, json_string(id));
            n_voters++;
            healthy_voters += healthy;
        } else {
            json_array_append_new(non_voters, json_string(id));
        }
        if (sv[i].leader) {
            json_decref(leader_m);
            leader_m = json_incref(m);
        }
        json_decref(m);
    }
    leader = member_id(leader_m);
    size_t quorum = n_voters / 2 + 1;
    json_int_t tolerance = healthy_voters > quorum ? (json_int_t)(healthy_voters - quorum) : 0;
    json_t *data = json_pack(
        "{s:b,s:I,s:I,s:s,s:o,s:o,s:o,s:I,s:o}", "healthy", all_healthy && healthy_voters >= quorum,
        "failure_tolerance", tolerance, "optimistic_failure_tolerance", tolerance, "leader", leader,
        "voters", voters, "non_voters", json_array_size(non_voters) ? non_voters : json_null(),
        "servers", servers, "entry_format", (json_int_t)rft_store_entry_format(core->store),
        "upgrade_info", upgrade_info(&up));
    if (json_array_size(non_voters) == 0) {
        json_decref(non_voters);
    }
    json_decref(leader_m);
    node_request_done(req, node_response_data(data));
}

static int parse_dur(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v) * 1000;
        return *out >= 0 ? CF_OK : CF_EINVAL;
    }
    const char *s = json_string_value(v);
    return s ? cf_duration_parse_ms(s, out) : CF_EINVAL;
}

static int parse_int(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out >= 0 ? CF_OK : CF_EINVAL;
    }
    const char *s = json_string_value(v);
    char *end = NULL;
    long long n = s ? strtoll(s, &end, 10) : -1;
    if (s == NULL || *s == '\0' || *end != '\0' || n < 0) {
        return CF_EINVAL;
    }
    *out = n;
    return CF_OK;
}

static void written_cb(void *arg, int status)
{
    struct node_request *req = arg;
    node_request_done(req, status == CF_OK ? node_response_new()
                                           : node_response_error(500, "%s", cf_strerror(status)));
}

static void handle_autopilot_config(struct node_core *core, struct node_request *req)
{
    struct ap_config c;
    ap_load(core, &c);
    if (req->op == NODE_OP_READ) {
        char a[32];
        char b[32];
        char d[32];
        duration_str(c.last_contact_threshold_ms, a, sizeof(a));
        duration_str(c.dead_server_last_contact_threshold_ms, b, sizeof(b));
        duration_str(c.server_stabilization_time_ms, d, sizeof(d));
        node_request_done(
            req, node_response_data(json_pack(
                     "{s:b,s:s,s:s,s:I,s:I,s:s,s:b}", "cleanup_dead_servers",
                     c.cleanup_dead_servers, "last_contact_threshold", a,
                     "dead_server_last_contact_threshold", b, "max_trailing_logs",
                     (json_int_t)c.max_trailing_logs, "min_quorum", (json_int_t)c.min_quorum,
                     "server_stabilization_time", d, "disable_upgrade_migration", 0)));
        return;
    }
    const char *bad = NULL;
    json_t *v;
    if ((v = json_object_get(req->data, "cleanup_dead_servers")) != NULL) {
        if (json_is_boolean(v)) {
            c.cleanup_dead_servers = json_is_true(v);
        } else if (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 ||
                                         strcmp(json_string_value(v), "false") == 0)) {
            c.cleanup_dead_servers = strcmp(json_string_value(v), "true") == 0;
        } else {
            bad = "cleanup_dead_servers must be a boolean";
        }
    }
    if (!bad && (v = json_object_get(req->data, "last_contact_threshold")) &&
        parse_dur(v, &c.last_contact_threshold_ms) != CF_OK) {
        bad = "last_contact_threshold must be a duration";
    }
    if (!bad && (v = json_object_get(req->data, "dead_server_last_contact_threshold")) &&
        parse_dur(v, &c.dead_server_last_contact_threshold_ms) != CF_OK) {
        bad = "dead_server_last_contact_threshold must be a duration";
    }
    if (!bad && (v = json_object_get(req->data, "server_stabilization_time")) &&
        parse_dur(v, &c.server_stabilization_time_ms) != CF_OK) {
        bad = "server_stabilization_time must be a duration";
    }
    if (!bad && (v = json_object_get(req->data, "max_trailing_logs")) &&
        parse_int(v, &c.max_trailing_logs) != CF_OK) {
        bad = "max_trailing_logs must be a non-negative integer";
    }
    if (!bad && (v = json_object_get(req->data, "min_quorum")) &&
        parse_int(v, &c.min_quorum) != CF_OK) {
        bad = "min_quorum must be a non-negative integer";
    }
    if (!bad && c.dead_server_last_contact_threshold_ms < 60000) {
        bad = "dead_server_last_contact_threshold should not be less than 1m";
    }
    if (!bad && c.cleanup_dead_servers && c.min_quorum < 3) {
        bad = "min_quorum must be set when enabling dead server cleanup";
    }
    if (bad != NULL) {
        node_request_done(req, node_response_error(400, "%s", bad));
        return;
    }
    json_t *j =
        json_pack("{s:b,s:I,s:I,s:I,s:I,s:I}", "cleanup_dead_servers", c.cleanup_dead_servers,
                  "last_contact_threshold_ms", (json_int_t)c.last_contact_threshold_ms,
                  "dead_server_last_contact_threshold_ms",
                  (json_int_t)c.dead_server_last_contact_threshold_ms, "max_trailing_logs",
                  (json_int_t)c.max_trailing_logs, "min_quorum", (json_int_t)c.min_quorum,
                  "server_stabilization_time_ms", (json_int_t)c.server_stabilization_time_ms);
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    json_decref(j);
    struct rft_batch *b = s ? rft_batch_new() : NULL;
    if (b == NULL ||
        rft_batch_put(b, NODE_KEY_CLUSTER_AUTOPILOT, (const uint8_t *)s, strlen(s)) != CF_OK) {
        rft_batch_free(b);
        cf_free(s);
        node_request_done(req, NULL);
        return;
    }
    cf_free(s);
    node__commit(core, b, written_cb, req);
}

/* sys/ha-status: every member with its addresses, which one is active, and its version. */
static void handle_ha_status(struct node_core *core, struct node_request *req)
{
    struct rft_server sv[MAX_SERVERS];
    size_t n = rft_store_servers(core->store, sv, MAX_SERVERS);
    json_t *nodes = json_array();
    for (size_t i = 0; i < n && i < MAX_SERVERS; i++) {
        json_t *m = node__cluster_member_by_raft_id(core, sv[i].raft_id);
        const char *ver = json_string_value(json_object_get(m, "version"));
        const char *api = json_string_value(json_object_get(m, "api_addr"));
        const char *cl = json_string_value(json_object_get(m, "cluster_addr"));
        json_array_append_new(
            nodes,
            json_pack("{s:s,s:s,s:s,s:b,s:n,s:s,s:s,s:s}", "hostname", member_id(m), "api_address",
                      api ? api : "", "cluster_address", cl ? cl : sv[i].address, "active_node",
                      sv[i].leader, "last_echo", "version", ver ? ver : "", "upgrade_version",
                      ver ? ver : "", "redundancy_zone", ""));
        json_decref(m);
    }
    struct node_response *r = node_response_data(json_pack("{s:o}", "nodes", nodes));
    if (r != NULL) {
        r->inject_top_level = true;
    }
    node_request_done(req, r);
}

static void stepped_down_cb(void *arg, int status, const char *errmsg)
{
    struct node_request *req = arg;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "step-down: %s", errmsg);
    }
    node_request_done(req, node_response_new());
}

bool node__cluster_api_handle(struct node_core *core, struct node_request *req, bool sudo)
{
    const char *p = req->path;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (strcmp(p, "sys/step-down") == 0) {
        if (!write) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else if (!sudo) {
            node_request_done(req, node_response_error(403, "permission denied"));
        } else {
            CF_LOG(CF_LOG_INFO, "step-down requested");
            rft_store_transfer(core->store, NULL, stepped_down_cb, req);
        }
        return true;
    }
    if (strcmp(p, "sys/ha-status") == 0) {
        if (req->op != NODE_OP_READ) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else if (!rft_store_is_ready(core->store)) {
            node_request_done(req, forward_response());
        } else {
            handle_ha_status(core, req);
        }
        return true;
    }
    if (strncmp(p, "sys/storage/raft/", 17) != 0) {
        return false;
    }
    p += 17;
    if (!rft_store_is_ready(core->store)) {
        node_request_done(req, forward_response());
    } else if (node__snapshot_handle(core, req, sudo)) {
        return true;
    } else if (strcmp(p, "configuration") == 0) {
        if (req->op != NODE_OP_READ) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else {
            handle_configuration(core, req);
        }
    } else if (strcmp(p, "remove-peer") == 0) {
        if (!write) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else if (!sudo) {
            node_request_done(req, node_response_error(403, "permission denied"));
        } else {
            handle_remove_peer(core, req);
        }
    } else if (strcmp(p, "autopilot/state") == 0) {
        if (req->op != NODE_OP_READ) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else {
            handle_autopilot_state(core, req);
        }
    } else if (strcmp(p, "autopilot/configuration") == 0) {
        if (req->op != NODE_OP_READ && !write) {
            node_request_done(req, node_response_error(405, "unsupported operation"));
        } else {
            handle_autopilot_config(core, req);
        }
    } else {
        return false;
    }
    return true;
}
