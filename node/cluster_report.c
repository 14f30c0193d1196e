/*
 * Versions across a cluster, for rolling upgrades (node/cluster.h): every node tells the
 * active node its build version and the highest raft entry format it knows; the active node
 * keeps both in the member records and writes log entries in the highest format that every
 * server of the raft configuration knows, so no server ever meets an entry it cannot apply.
 *
 * Reports travel on the cluster port under ALPN "coffer-info/1". The hello is the report,
 * JSON {"v":1,"version":"0.1.0","entry_format":2}; the node id is the peer's certificate CN,
 * so a node can only report for itself. A node reports every REPORT_TICK_MS while its own
 * member record (as replicated to it) differs from what it runs, and stops once it matches.
 * None of this needs the barrier: a sealed node reports too, since it applies entries as well.
 */
#include <stdio.h>
#include <string.h>

#include "lib/json.h"
#include "lib/mem.h"
#include "node/cluster.h"
#include "node/internal.h"
#include "raft/entry.h"
#include "raft/net.h"
#include "raft/store.h"
#include "raft/transport_tls.h"

#define CF_LOG_MODULE "cluster"
#include "lib/log.h"

#define REPORT_ALPN "coffer-info/1"
#define REPORT_TICK_MS 2000
#define REPORT_CONNECT_MS 5000
#define REPORTS_MAX 64
#define SERVERS_MAX 64

struct report
{
    char node_id[128];
    char version[64];
    uint64_t entry_format;
};

struct node_report
{
    struct node_core *core;
    uv_timer_t timer;
    struct rft_net_connect *connecting;
    bool handling; /* the ALPN handler is registered */
    bool writing;  /* a record update is being committed */
    bool closing;
    bool timer_closed;
    struct report pending[REPORTS_MAX];
    size_t n_pending;
};

static const char *rec_version(json_t *m)
{
    const char *v = json_string_value(json_object_get(m, "version"));
    return v != NULL ? v : "";
}

uint64_t node__member_entry_format(json_t *m)
{
    json_t *f = json_object_get(m, "entry_format");
    if (!json_is_integer(f) || json_integer_value(f) < RFT_ENTRY_FORMAT_MIN) {
        return RFT_ENTRY_FORMAT_MIN;
    }
    return (uint64_t)json_integer_value(f);
}

static void keep_report(struct node_report *r,
                        const char *node_id,
                        const char *version,
                        uint64_t entry_format)
{
    size_t i = 0;
    while (i < r->n_pending && strcmp(r->pending[i].node_id, node_id) != 0) {
        i++;
    }
    if (i == r->n_pending) {
        if (r->n_pending == REPORTS_MAX) {
            return;
        }
        r->n_pending++;
    }
    snprintf(r->pending[i].node_id, sizeof(r->pending[i].node_id), "%s", node_id);
    snprintf(r->pending[i].version, sizeof(r->pending[i].version), "%s", version);
    r->pending[i].entry_format = entry_format;
}

/* Server side: one report per tunnel. */
static void on_report(void *arg,
                      const char *peer,
                      const uint8_t *hello,
                      size_t hello_len,
                      uv_stream_t *stream)
{
    struct node_report *r = arg;
    json_t *j = json_loadb((const char *)hello, hello_len, 0, NULL);
    json_t *v = json_object_get(j, "version");
    json_t *f = json_object_get(j, "entry_format");
    if (json_integer_value(json_object_get(j, "v")) == 1 && json_is_string(v) &&
        json_string_length(v) < sizeof(r->pending[0].version) && json_is_integer(f) &&
        json_integer_value(f) >= RFT_ENTRY_FORMAT_MIN && strlen(peer) < 128) {
        keep_report(r, peer, json_string_value(v), (uint64_t)json_integer_value(f));
    } else {
        CF_LOG(CF_LOG_WARN, "malformed version report from %s", peer);
    }
    json_decref(j);
    uv_close((uv_handle_t *)stream, rft_net_stream_free);
}

static void maybe_free(struct node_report *r)
{
    if (r->closing && r->timer_closed && r->connecting == NULL) {
        cf_free(r);
    }
}

static void reported_cb(void *arg,
                        int status,
                        const char *peer,
                        uv_stream_t *stream,
                        const char *errmsg)
{
    struct node_report *r = arg;
    (void)peer;
    r->connecting = NULL;
    if (stream != NULL) {
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
    }
    if (r->closing) {
        maybe_free(r);
        return;
    }
    if (status != CF_OK && status != CF_ECANCELED) {
        CF_LOG(CF_LOG_DEBUG, "version report: %s", errmsg ? errmsg : cf_strerror(status));
    }
}

static void send_report(struct node_report *r)
{
    char addr[RFT_ADDRESS_MAX];
    if (r->connecting != NULL || rft_store_leader(r->core->store, addr) == 0) {
        return;
    }
    char hello[256];
    int n = snprintf(hello, sizeof(hello), "{\"v\":1,\"version\":\"%s\",\"entry_format\":%d}",
                     COFFER_VERSION, RFT_ENTRY_FORMAT);
    if (rft_net_connect(r->core->cfg.net, addr, REPORT_ALPN, (const uint8_t *)hello, (size_t)n,
                        REPORT_CONNECT_MS, reported_cb, r, &r->connecting) != CF_OK) {
        r->connecting = NULL;
    }
}

static void records_written_cb(void *arg, int status)
{
    struct node_core *core = arg;
    if (core->report != NULL) {
        core->report->writing = false;
    }
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "record member versions: %s", cf_strerror(status));
    }
}

/* Active node: writes the reports that change a member record. */
static void write_reports(struct node_report *r)
{
    struct node_core *core = r->core;
    struct rft_batch *b = NULL;
    for (size_t i = 0; i < r->n_pending; i++) {
        const struct report *p = &r->pending[i];
        json_t *m = node__cluster_member(core, p->node_id);
        if (m == NULL || (strcmp(rec_version(m), p->version) == 0 &&
                          node__member_entry_format(m) == p->entry_format)) {
            json_decref(m);
            continue;
        }
        CF_LOG(CF_LOG_INFO, "member %s runs version %s (entry formats up to %llu)", p->node_id,
               p->version, (unsigned long long)p->entry_format);
        json_object_set_new(m, "version", json_string(p->version));
        json_object_set_new(m, "entry_format", json_integer((json_int_t)p->entry_format));
        char *s = cf_json_dumps(m, NULL);
        json_decref(m);
        char key[512];
        snprintf(key, sizeof(key), "%s%s", NODE_PREFIX_CLUSTER_MEMBERS, p->node_id);
        if (b == NULL) {
            b = rft_batch_new();
        }
        if (s == NULL || b == NULL || rft_batch_put(b, key, (const uint8_t *)s, strlen(s)) != 0) {
            cf_free(s);
            rft_batch_free(b);
            return; /* out of memory: the reports stay for the next tick */
        }
        cf_free(s);
    }
    r->n_pending = 0;
    if (b != NULL) {
        r->writing = true;
        node__commit(core, b, records_written_cb, core);
    }
}

void node__cluster_gate(struct node_core *core)
{
    if (!rft_store_is_ready(core->store)) {
        return;
    }
    struct rft_server sv[SERVERS_MAX];
    size_t n = rft_store_servers(core->store, sv, SERVERS_MAX);
    uint64_t format = RFT_ENTRY_FORMAT;
    for (size_t i = 0; i < n && i < SERVERS_MAX; i++) {
        json_t *m = node__cluster_member_by_raft_id(core, sv[i].raft_id);
        uint64_t f = m != NULL ? node__member_entry_format(m) : RFT_ENTRY_FORMAT_MIN;
        if (m == NULL && sv[i].raft_id == rft_raft_id(core->node_id)) {
            f = RFT_ENTRY_FORMAT; /* this node, before or without a member record (dev mode) */
        }
        if (f < format) {
            format = f;
        }
        json_decref(m);
    }
    rft_store_set_entry_format(core->store, format);
}

static void tick(uv_timer_t *t)
{
    struct node_report *r = t->data;
    struct node_core *core = r->core;
    if (!rft_store_started(core->store) || !rft_store_is_synced(core->store)) {
        return;
    }
    json_t *own = node__cluster_member(core, core->node_id);
    bool current = own == NULL || (strcmp(rec_version(own), COFFER_VERSION) == 0 &&
                                   node__member_entry_format(own) == RFT_ENTRY_FORMAT);
    json_decref(own);
    bool active = node_core_is_active(core);
    if (!current) {
        if (active) {
            keep_report(r, core->node_id, COFFER_VERSION, RFT_ENTRY_FORMAT);
        } else {
            send_report(r);
        }
    }
    if (!active) {
        r->n_pending = 0; /* only the active node records; reporters send again */
        return;
    }
    if (!r->writing) {
        write_reports(r);
    }
    node__cluster_gate(core);
}

int node__report_start(struct node_core *core)
{
    if (core->cfg.net == NULL || core->report != NULL) {
        return CF_OK;
    }
    struct node_report *r = cf_calloc(1, sizeof(*r));
    if (r == NULL) {
        return CF_ENOMEM;
    }
    r->core = core;
    int rv = rft_net_handle(core->cfg.net, REPORT_ALPN, on_report, r);
    if (rv != CF_OK) {
        cf_free(r);
        return rv;
    }
    r->handling = true;
    uv_timer_init(core->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, tick, REPORT_TICK_MS, REPORT_TICK_MS);
    core->report = r;
    return CF_OK;
}

static void report_closed_cb(uv_handle_t *h)
{
    struct node_report *r = h->data;
    r->timer_closed = true;
    maybe_free(r);
}

void node__report_stop(struct node_core *core)
{
    struct node_report *r = core->report;
    if (r == NULL) {
        return;
    }
    core->report = NULL;
    if (r->handling) {
        rft_net_unhandle(core->cfg.net, REPORT_ALPN);
    }
    r->closing = true;
    if (r->connecting != NULL) {
        rft_net_connect_cancel(r->connecting); /* its callback frees r if the timer closed */
    }
    uv_close((uv_handle_t *)&r->timer, report_closed_cb);
}
