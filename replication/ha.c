/* Standby -> active request forwarding (ha.h). */
#include "replication/ha.h"

#include <stdio.h>
#include <string.h>

#include "api/http.h"
#include "api/route.h"
#include "lib/mem.h"
#include "node/core.h"
#include "raft/net.h"
#include "replication/forward.h"

#define CF_LOG_MODULE "ha"
#include "lib/log.h"

#define POLL_MS 50
#define APPLY_WAIT_MS 2000
#define CONNECT_TIMEOUT_MS 5000

struct waiting
{
    struct api_exchange *ex;
    uint64_t deadline_ms;
    struct waiting *next;
};

/* A forwarded answer held until this node has applied the active node's index, so that the
 * client's next read here sees its own write (bounded by APPLY_WAIT_MS). */
struct held
{
    struct api_exchange *ex;
    int status;
    struct api_header *headers;
    size_t n_headers;
    uint8_t *body;
    size_t body_len;
    uint64_t index;
    uint64_t deadline_ms;
    struct held *next;
};

struct served
{
    struct repl_fwd_server *srv;
    struct served *next;
};

struct repl_ha
{
    uv_loop_t *loop;
    struct rft_net *net;
    struct api_route *route;
    /* client side: one connection to the active node */
    struct repl_fwd_client *client;
    char client_peer[128]; /* node id the client is connected to */
    struct rft_net_connect *connecting;
    char connecting_peer[128];
    struct waiting *waiting; /* requests waiting for an active node or a connection */
    struct waiting *waiting_tail;
    uv_timer_t timer;
    struct held *held; /* answers waiting for the local apply */
    uv_check_t check;  /* runs while something is held */
    /* server side */
    struct served *served;
    bool closing;
    bool timer_closed;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* Server side -------------------------------------------------------------------------------- */

struct fwd_ex
{
    struct api_exchange ex;  /* first: the route sees only this */
    struct api_route *route; /* outlives the HA layer (a late answer after close is fine) */
    struct repl_fwd_call *call;
    struct api_header *headers;
};

static void fwd_respond(struct api_exchange *ex,
                        int status,
                        const struct api_header *headers,
                        size_t n_headers,
                        const uint8_t *body,
                        size_t body_len)
{
    struct fwd_ex *fx = (struct fwd_ex *)ex;
    struct repl_fwd_header *h = n_headers ? cf_calloc(n_headers, sizeof(*h)) : NULL;
    for (size_t i = 0; h != NULL && i < n_headers; i++) {
        h[i].name = headers[i].name;
        h[i].value = headers[i].value;
    }
    struct repl_fwd_response resp = {
        .status = status,
        .headers = h,
        .n_headers = h ? n_headers : 0,
        .body = (uint8_t *)body,
        .body_len = body_len,
        .index = node_core_applied_index(fx->route->core),
    };
    repl_fwd_call_respond(fx->call, &resp);
    cf_free(h);
    cf_free(fx->headers);
    cf_free(fx);
}

static void on_call(void *arg, struct repl_fwd_call *call)
{
    struct repl_ha *ha = arg;
    struct repl_fwd_request *r = &call->req;
    struct fwd_ex *fx = cf_calloc(1, sizeof(*fx));
    struct api_header *h = r->n_headers ? cf_calloc(r->n_headers, sizeof(*h)) : NULL;
    if (fx == NULL || (r->n_headers && h == NULL)) {
        cf_free(fx);
        cf_free(h);
        struct repl_fwd_response resp = {.status = 500};
        repl_fwd_call_respond(call, &resp);
        return;
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        h[i].name = r->headers[i].name;
        h[i].value = r->headers[i].value;
    }
    fx->route = ha->route;
    fx->call = call;
    fx->headers = h;
    fx->ex.method = r->method;
    fx->ex.target = r->path;
    fx->ex.headers = h;
    fx->ex.n_headers = r->n_headers;
    fx->ex.body = r->body ? r->body : (const uint8_t *)"";
    fx->ex.body_len = r->body_len;
    fx->ex.remote_addr = r->remote_addr ? r->remote_addr : "";
    fx->ex.remote_port = r->remote_port;
    fx->ex.http_version = 20;
    fx->ex.tls = true;
    fx->ex.respond_fn = fwd_respond;
    api_route_exchange(ha->route, &fx->ex);
}

static void maybe_free(struct repl_ha *ha)
{
    if (ha->closing && ha->timer_closed && ha->served == NULL) {
        if (ha->close_cb != NULL) {
            ha->close_cb(ha->close_arg);
        }
        cf_free(ha);
    }
}

static void on_server_closed(void *arg, struct repl_fwd_server *srv)
{
    struct repl_ha *ha = arg;
    for (struct served **pp = &ha->served; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->srv == srv) {
            struct served *s = *pp;
            *pp = s->next;
            cf_free(s);
            break;
        }
    }
    maybe_free(ha);
}

static void on_accept(void *arg,
                      const char *peer,
                      const uint8_t *hello,
                      size_t hello_len,
                      uv_stream_t *stream)
{
    struct repl_ha *ha = arg;
    (void)hello;
    (void)hello_len;
    struct served *s = cf_calloc(1, sizeof(*s));
    if (s == NULL || ha->closing ||
        repl_fwd_server_new(ha->loop, stream, rft_net_stream_free, on_call, ha, on_server_closed,
                            &s->srv) != CF_OK) {
        cf_free(s);
        if (!ha->closing || s == NULL) {
            uv_close((uv_handle_t *)stream, rft_net_stream_free);
        }
        return;
    }
    CF_LOG(CF_LOG_DEBUG, "forwarding connection from %s", peer);
    s->next = ha->served;
    ha->served = s;
}

/* Client side -------------------------------------------------------------------------------- */

static void respond_503(struct api_exchange *ex, const char *msg)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"errors\":[\"%s\"]}", msg);
    struct api_header h[2] = {
        {.name = (char *)"cache-control", .value = (char *)"no-store"},
        {.name = (char *)"content-type", .value = (char *)"application/json"}};
    api_exchange_respond(ex, 503, h, 2, (const uint8_t *)body, strlen(body));
}

static void pump(struct repl_ha *ha);

static void held_free(struct held *hd)
{
    if (hd == NULL) {
        return;
    }
    for (size_t i = 0; i < hd->n_headers; i++) {
        cf_free(hd->headers[i].name);
        cf_free(hd->headers[i].value);
    }
    cf_free(hd->headers);
    cf_free(hd->body);
    cf_free(hd);
}

/* Answers the held responses whose index this node has applied, or whose wait is over. */
static void release_held(struct repl_ha *ha, bool all)
{
    uint64_t applied = node_core_applied_index(ha->route->core);
    uint64_t now = uv_now(ha->loop);
    struct held **pp = &ha->held;
    while (*pp != NULL) {
        struct held *hd = *pp;
        if (all || hd->index <= applied || hd->deadline_ms <= now) {
            *pp = hd->next;
            api_exchange_respond(hd->ex, hd->status, hd->headers, hd->n_headers, hd->body,
                                 hd->body_len);
            held_free(hd);
        } else {
            pp = &hd->next;
        }
    }
    if (ha->held == NULL) {
        uv_check_stop(&ha->check);
    }
}

static void check_cb(uv_check_t *c)
{
    release_held(c->data, false);
}

static void sent_cb(void *arg, int status, struct repl_fwd_response *resp, const char *errmsg)
{
    struct api_exchange *ex = arg;
    struct api_route *route = ex->data;
    if (status == CF_ECANCELED) {
        respond_503(ex, "Vault is shutting down");
        return;
    }
    if (status != CF_OK || resp == NULL) {
        CF_LOG(CF_LOG_WARN, "forwarding failed (%s): answering with a redirect", errmsg);
        api_route_redirect(route->core, ex);
        return;
    }
    struct repl_ha *ha = route->forward_arg;
    if (resp->index > node_core_applied_index(route->core) && !ha->closing) {
        struct held *hd = cf_calloc(1, sizeof(*hd));
        bool ok = hd != NULL;
        if (ok && resp->n_headers > 0) {
            hd->headers = cf_calloc(resp->n_headers, sizeof(*hd->headers));
            ok = hd->headers != NULL;
            for (size_t i = 0; ok && i < resp->n_headers; i++) {
                hd->headers[i].name = cf_strdup(resp->headers[i].name);
                hd->headers[i].value = cf_strdup(resp->headers[i].value);
                hd->n_headers = i + 1;
                ok = hd->headers[i].name && hd->headers[i].value;
            }
        }
        if (ok && resp->body_len > 0) {
            hd->body = cf_memdup(resp->body, resp->body_len);
            hd->body_len = resp->body_len;
            ok = hd->body != NULL;
        }
        if (ok) {
            hd->ex = ex;
            hd->status = resp->status;
            hd->index = resp->index;
            hd->deadline_ms = uv_now(ha->loop) + APPLY_WAIT_MS;
            hd->next = ha->held;
            if (ha->held == NULL) {
                uv_check_start(&ha->check, check_cb);
            }
            ha->held = hd;
            return;
        }
        held_free(hd);
    }
    struct api_header *h = resp->n_headers ? cf_calloc(resp->n_headers, sizeof(*h)) : NULL;
    size_t n = 0;
    for (size_t i = 0; h != NULL && i < resp->n_headers; i++) {
        h[n].name = resp->headers[i].name;
        h[n++].value = resp->headers[i].value;
    }
    api_exchange_respond(ex, resp->status, h, n, resp->body, resp->body_len);
    cf_free(h);
}

/* Hop-by-hop headers are not forwarded (RFC 9110 7.6.1); HTTP/2 pseudo-headers never are. */
static bool forwardable(const char *name)
{
    return name[0] != ':' && strcmp(name, "connection") != 0 && strcmp(name, "keep-alive") != 0 &&
           strcmp(name, "transfer-encoding") != 0 && strcmp(name, "upgrade") != 0 &&
           strcmp(name, "te") != 0 && strcmp(name, "content-length") != 0 &&
           strcmp(name, "host") != 0 && strcmp(name, "proxy-connection") != 0;
}

static void send_one(struct repl_ha *ha, struct api_exchange *ex)
{
    struct repl_fwd_header *h = ex->n_headers ? cf_calloc(ex->n_headers, sizeof(*h)) : NULL;
    size_t n = 0;
    for (size_t i = 0; h != NULL && i < ex->n_headers; i++) {
        if (forwardable(ex->headers[i].name)) {
            h[n].name = ex->headers[i].name;
            h[n++].value = ex->headers[i].value;
        }
    }
    struct repl_fwd_request req = {
        .method = (char *)ex->method,
        .path = (char *)ex->target,
        .headers = h,
        .n_headers = n,
        .body = (uint8_t *)ex->body,
        .body_len = ex->body_len,
        .remote_addr = (char *)ex->remote_addr,
        .remote_port = ex->remote_port,
    };
    int rv = repl_fwd_client_send(ha->client, &req, REPL_HA_TIMEOUT_MS, sent_cb, ex);
    cf_free(h);
    if (rv != CF_OK) {
        api_route_redirect(ha->route->core, ex);
    }
}

/* host:port of a cluster address URL. */
static void host_port(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    snprintf(out, cap, "%.*s", (int)strcspn(p, "/"), p);
}

static void connect_cb(void *arg,
                       int status,
                       const char *peer,
                       uv_stream_t *stream,
                       const char *errmsg)
{
    struct repl_ha *ha = arg;
    ha->connecting = NULL;
    if (status == CF_ECANCELED) {
        return;
    }
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "connect to the active node %s: %s", ha->connecting_peer, errmsg);
        /* Redirect what waits: the active node's API may still be reachable. */
        while (ha->waiting != NULL) {
            struct waiting *w = ha->waiting;
            ha->waiting = w->next;
            api_route_redirect(ha->route->core, w->ex);
            cf_free(w);
        }
        ha->waiting_tail = NULL;
        return;
    }
    if (strcmp(peer, ha->connecting_peer) != 0) {
        CF_LOG(CF_LOG_WARN, "the active node's cluster port answered as %s, not %s", peer,
               ha->connecting_peer);
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
        return;
    }
    if (ha->client != NULL) {
        repl_fwd_client_close(ha->client);
        ha->client = NULL;
    }
    if (repl_fwd_client_new(ha->loop, stream, rft_net_stream_free, &ha->client) != CF_OK) {
        ha->client = NULL;
        uv_close((uv_handle_t *)stream, rft_net_stream_free); /* still ours on failure */
        return;
    }
    snprintf(ha->client_peer, sizeof(ha->client_peer), "%s", peer);
    CF_LOG(CF_LOG_INFO, "forwarding to the active node %s", peer);
    pump(ha);
}

/* Sends what waits when the active node is known and connected; connects when needed; fails
 * waits past their deadline. */
static void pump(struct repl_ha *ha)
{
    if (ha->closing) {
        return;
    }
    if (node_core_is_active(ha->route->core)) {
        /* This node became the active one meanwhile: it serves what waits itself. */
        struct waiting *w = ha->waiting;
        ha->waiting = NULL;
        ha->waiting_tail = NULL;
        while (w != NULL) {
            struct waiting *next = w->next;
            api_route_exchange(ha->route, w->ex);
            cf_free(w);
            w = next;
        }
        return;
    }
    struct node_leader_info li;
    bool known = node_core_leader(ha->route->core, &li) && !li.is_self;
    if (known && ha->client != NULL &&
        (!repl_fwd_client_alive(ha->client) || strcmp(ha->client_peer, li.node_id) != 0)) {
        repl_fwd_client_close(ha->client);
        ha->client = NULL;
    }
    if (known && ha->client != NULL) {
        while (ha->waiting != NULL) {
            struct waiting *w = ha->waiting;
            ha->waiting = w->next;
            send_one(ha, w->ex);
            cf_free(w);
        }
        ha->waiting_tail = NULL;
        return;
    }
    if (known && ha->connecting == NULL && ha->waiting != NULL) {
        char addr[300];
        host_port(li.cluster_addr, addr, sizeof(addr));
        snprintf(ha->connecting_peer, sizeof(ha->connecting_peer), "%s", li.node_id);
        if (rft_net_connect(ha->net, addr, REPL_HA_ALPN, NULL, 0, CONNECT_TIMEOUT_MS, connect_cb,
                            ha, &ha->connecting) != CF_OK) {
            ha->connecting = NULL;
        }
    }
    uint64_t now = uv_now(ha->loop);
    struct waiting **pp = &ha->waiting;
    ha->waiting_tail = NULL;
    while (*pp != NULL) {
        struct waiting *w = *pp;
        if (w->deadline_ms <= now) {
            *pp = w->next;
            respond_503(w->ex, "no active Vault instance found");
            cf_free(w);
        } else {
            ha->waiting_tail = w;
            pp = &w->next;
        }
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct repl_ha *ha = t->data;
    if (ha->waiting != NULL) {
        pump(ha);
    }
    if (ha->held != NULL) {
        release_held(ha, false); /* deadlines pass even when the loop is otherwise idle */
    }
}

void repl_ha_forward(void *arg, struct api_exchange *ex)
{
    struct repl_ha *ha = arg;
    if (ex->respond_fn != NULL) {
        /* Already forwarded once: never bounce between nodes that disagree on the leader. */
        api_route_redirect(ha->route->core, ex);
        return;
    }
    if (ha->closing) {
        respond_503(ex, "Vault is shutting down");
        return;
    }
    struct waiting *w = cf_calloc(1, sizeof(*w));
    if (w == NULL) {
        respond_503(ex, "out of memory");
        return;
    }
    w->ex = ex;
    w->deadline_ms = uv_now(ha->loop) + REPL_HA_WAIT_MS;
    if (ha->waiting_tail != NULL) {
        ha->waiting_tail->next = w;
    } else {
        ha->waiting = w;
    }
    ha->waiting_tail = w;
    pump(ha);
}

int repl_ha_new(uv_loop_t *loop, struct rft_net *net, struct api_route *route, struct repl_ha **out)
{
    struct repl_ha *ha = cf_calloc(1, sizeof(*ha));
    if (ha == NULL) {
        return CF_ENOMEM;
    }
    ha->loop = loop;
    ha->net = net;
    ha->route = route;
    int rv = rft_net_handle(net, REPL_HA_ALPN, on_accept, ha);
    if (rv != CF_OK) {
        cf_free(ha);
        return rv;
    }
    uv_timer_init(loop, &ha->timer);
    ha->timer.data = ha;
    uv_check_init(loop, &ha->check);
    ha->check.data = ha;
    uv_timer_start(&ha->timer, timer_cb, POLL_MS, POLL_MS);
    *out = ha;
    return CF_OK;
}

static void ha_check_closed(uv_handle_t *h)
{
    struct repl_ha *ha = h->data;
    ha->timer_closed = true;
    maybe_free(ha);
}

static void ha_timer_closed(uv_handle_t *h)
{
    struct repl_ha *ha = h->data;
    uv_close((uv_handle_t *)&ha->check, ha_check_closed);
}

void repl_ha_close(struct repl_ha *ha, void (*cb)(void *arg), void *arg)
{
    if (ha == NULL) {
        if (cb != NULL) {
            cb(arg);
        }
        return;
    }
    ha->closing = true;
    ha->close_cb = cb;
    ha->close_arg = arg;
    /* The cluster port outlives this (the server closes it after the core): a peer whose
     * forwarding tunnel finished its hello after this point was handed to on_accept with the
     * freed ha (seen once under ASan in test_05_upgrade). From here on such peers are refused. */
    rft_net_unhandle(ha->net, REPL_HA_ALPN);
    release_held(ha, true);
    while (ha->waiting != NULL) {
        struct waiting *w = ha->waiting;
        ha->waiting = w->next;
        respond_503(w->ex, "Vault is shutting down");
        cf_free(w);
    }
    if (ha->connecting != NULL) {
        rft_net_connect_cancel(ha->connecting);
        ha->connecting = NULL;
    }
    if (ha->client != NULL) {
        repl_fwd_client_close(ha->client);
        ha->client = NULL;
    }
    for (struct served *s = ha->served, *next; s != NULL; s = next) {
        next = s->next;
        repl_fwd_server_close(s->srv); /* on_server_closed unlinks each when it is gone */
    }
    uv_close((uv_handle_t *)&ha->timer, ha_timer_closed);
}
