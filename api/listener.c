/*
 * Listeners and connections: accept, read, TLS, protocol selection, writes, deadlines and
 * graceful close, plus the protocol-neutral half of struct api_exchange.
 *
 * Happy path: a connection is accepted with TCP_NODELAY and starts reading into a buffer
 * shared by the listener (it is consumed before the read callback returns). Over TLS the
 * handshake runs on memory BIOs and ALPN picks HTTP/2 or HTTP/1.1; without ALPN (and on plain
 * listeners) the first bytes are compared with the HTTP/2 client preface. Responses produced
 * while a read is being processed are staged and written once at its end, with uv_try_write
 * first and a queued uv_write only for what the socket did not take.
 *
 * Failure modes: read or write errors close the connection and detach its exchanges, so a
 * handler answering later only frees them (rule A4). One timer per connection enforces the
 * header, request and keep-alive idle deadlines and bounds a client that stops reading. A
 * connection that must end flushes, sends close_notify, shuts down its write side and discards
 * input for a short linger so the peer sees the last response rather than a reset.
 * api_listener_close stops accepting, lets in-flight exchanges finish for up to 5 s, then
 * closes what remains; handles are counted (rule O2) and the listener is freed last.
 */
#include "api/http.h"

#include <string.h>
#include <strings.h>

#include <uv.h>

#define CF_LOG_MODULE "api"
#include "api/conn.h"
#include "api/http1.h"
#include "api/http2.h"
#include "api/tls.h"
#include "lib/log.h"
#include "lib/mem.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

#define DEFAULT_MAX_REQUEST ((size_t)32 << 20)
#define DEFAULT_MAX_HEADER ((size_t)64 << 10)
#define DEFAULT_IDLE_MS (5 * 60 * 1000)
#define DEFAULT_READ_HEADER_MS (10 * 1000)
#define DEFAULT_READ_MS (30 * 1000)

static void listener_maybe_destroy(struct api_listener *l);
static void conn_timer_arm(struct api_conn *c);

/* ---- exchanges ---- */

struct api__ex *api__ex_new(struct api_conn *c)
{
    struct api__ex *x = cf_calloc(1, sizeof(*x));
    if (x == NULL) {
        return NULL;
    }
    x->conn = c;
    x->proto_owns = true;
    x->keep_alive = true;
    cf_buf_init(&x->out);
    cf_buf_init(&x->body);
    api__reqb_init(&x->hb);
    memcpy(x->remote_addr, c->remote_addr, sizeof(x->remote_addr));
    x->prev = c->ex_tail;
    if (c->ex_tail != NULL) {
        c->ex_tail->next = x;
    } else {
        c->ex_head = x;
    }
    c->ex_tail = x;
    c->n_ex++;
    return x;
}

void api__ex_unlink(struct api__ex *x)
{
    struct api_conn *c = x->conn;
    if (c == NULL) {
        return;
    }
    if (x->prev == NULL && x->next == NULL && c->ex_head != x) {
        return; /* not linked */
    }
    if (x->prev != NULL) {
        x->prev->next = x->next;
    } else {
        c->ex_head = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    } else {
        c->ex_tail = x->prev;
    }
    x->prev = NULL;
    x->next = NULL;
    c->n_ex--;
}

void api__ex_maybe_free(struct api__ex *x)
{
    if (x->handler_owns || x->proto_owns || x->in_ready) {
        return;
    }
    api_request_clear(&x->req);
    cf_buf_close(&x->out);
    cf_buf_close(&x->body);
    api__reqb_close(&x->hb);
    cf_free(x->h2_method);
    cf_free(x->h2_path);
    cf_free(x->h2_authority);
    cf_free(x);
}

void api__conn_dispatch(struct api_conn *c, struct api__ex *x)
{
    struct api_exchange *e = &x->pub;
    e->method = x->req.method;
    e->target = x->req.target;
    e->headers = x->req.headers;
    e->n_headers = x->req.n_headers;
    e->body = x->req.body != NULL ? x->req.body : (const uint8_t *)"";
    e->body_len = x->req.body_len;
    e->remote_addr = x->remote_addr;
    e->remote_port = c->remote_port;
    e->http_version = x->req.http_version;
    e->tls = c->use_tls;
    e->data = NULL;
    x->dispatched = true;
    x->handler_owns = true;
    c->l->handler(c->l->ctx, e);
}

const char *api_exchange_header(const struct api_exchange *ex, const char *name)
{
    if (ex == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < ex->n_headers; i++) {
        if (strcasecmp(ex->headers[i].name, name) == 0) {
            return ex->headers[i].value;
        }
    }
    return NULL;
}

void api_exchange_respond(struct api_exchange *ex,
                          int status,
                          const struct api_header *headers,
                          size_t n_headers,
                          const uint8_t *body,
                          size_t body_len)
{
    if (ex->respond_fn != NULL) {
        ex->respond_fn(ex, status, headers, n_headers, body, body_len);
        return;
    }
    if (ex == NULL) {
        return;
    }
    struct api__ex *x = api__container_of(ex, struct api__ex, pub);
    if (!x->handler_owns) {
        CF_LOG(CF_LOG_ERROR, "api_exchange_respond called twice");
        return;
    }
    x->handler_owns = false;
    struct api_conn *c = x->conn;
    if (c == NULL || c->closing) {
        api__ex_maybe_free(x);
        return;
    }
    if (body == NULL) {
        body_len = 0;
    }
    if (c->proto == API__PROTO_H2) {
        api__h2_respond(x, status, headers, n_headers, body, body_len);
    } else {
        api__h1_respond(x, status, headers, n_headers, body, body_len);
    }
}

/* ---- connection teardown ---- */

static void conn_close_cb(uv_handle_t *h)
{
    struct api_conn *c = h->data;
    if (--c->pending_closes > 0) {
        return;
    }
    struct api_listener *l = c->l;
    api__h1_free(c);
    api__h2_free(c);
    api__tls_close(&c->tls);
    cf_buf_close(&c->out);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    l->n_conns--;
    cf_free(c);
    listener_maybe_destroy(l);
}

void api__conn_close(struct api_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->h2_ready = NULL;
    struct api__ex *x = c->ex_head;
    while (x != NULL) {
        struct api__ex *next = x->next;
        x->prev = NULL;
        x->next = NULL;
        x->conn = NULL;
        x->proto_owns = false;
        x->in_ready = false;
        api__ex_maybe_free(x);
        x = next;
    }
    c->ex_head = NULL;
    c->ex_tail = NULL;
    c->n_ex = 0;
    c->pending_closes = 3;
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
    uv_close((uv_handle_t *)&c->flush_check, conn_close_cb);
}

/* ---- writes ---- */

struct api__wreq
{
    uv_write_t req;
    struct api_conn *conn; /* borrowed; alive until after this callback */
    size_t len;
    uint8_t data[];
};

static void conn_write_cb(uv_write_t *req, int status)
{
    struct api__wreq *w = api__container_of(req, struct api__wreq, req);
    struct api_conn *c = w->conn;
    c->writes_pending--;
    c->write_bytes -= w->len;
    cf_free(w);
    if (c->closing) {
        return;
    }
    if (status < 0) {
        CF_LOG(CF_LOG_DEBUG, "write to %s: %s", c->remote_addr, uv_strerror(status));
        api__conn_close(c);
        return;
    }
    c->last_activity_ms = uv_now(c->l->loop);
    if (c->proto == API__PROTO_H2 && c->write_bytes == 0) {
        api__h2_send(c);
        if (c->closing) {
            return;
        }
    }
    api__conn_update(c);
}

/* Writes bytes to the socket: directly when nothing is queued, else (or for the rest) as a
 * queued uv_write of a copy. False when the connection was closed. */
static bool conn_send(struct api_conn *c, const uint8_t *p, size_t n)
{
    if (c->writes_pending == 0) {
        uv_buf_t b = uv_buf_init((char *)p, n > UINT32_MAX ? UINT32_MAX : (unsigned int)n);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r >= 0) {
            p += r;
            n -= (size_t)r;
        } else if (r != UV_EAGAIN) {
            CF_LOG(CF_LOG_DEBUG, "write to %s: %s", c->remote_addr, uv_strerror(r));
            api__conn_close(c);
            return false;
        }
    }
    if (n == 0) {
        return true;
    }
    struct api__wreq *w = cf_malloc(sizeof(*w) + n);
    if (w == NULL) {
        api__conn_close(c);
        return false;
    }
    w->conn = c;
    w->len = n;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned int)n);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
    if (r != 0) {
        cf_free(w);
        api__conn_close(c);
        return false;
    }
    c->writes_pending++;
    c->write_bytes += n;
    return true;
}

static void conn_flush_now(struct api_conn *c)
{
    if (c->closing) {
        return;
    }
    if (c->use_tls) {
        if (c->out.len > 0) {
            if (api__tls_write(&c->tls, c->out.data, c->out.len) != CF_OK) {
                api__conn_close(c);
                return;
            }
            cf_buf_reset(&c->out);
        }
        const uint8_t *p = NULL;
        size_t n = 0;
        api__tls_out(&c->tls, &p, &n);
        if (n > 0) {
            bool ok = conn_send(c, p, n);
            if (!ok) {
                return;
            }
            api__tls_out_reset(&c->tls);
        }
    } else if (c->out.len > 0) {
        if (!conn_send(c, c->out.data, c->out.len)) {
            return;
        }
        cf_buf_reset(&c->out);
    }
    if (c->out.cap > ((size_t)256 << 10)) {
        cf_buf_close(&c->out); /* do not keep a large buffer on an idle connection */
    }
}

void api__conn_flush(struct api_conn *c)
{
    if (c->closing || c->in_io) {
        return;
    }
    conn_flush_now(c);
}

/* Sends what the protocol has ready, then re-evaluates reading and the deadline. */
static void conn_send_ready(struct api_conn *c)
{
    if (c->proto == API__PROTO_H2) {
        api__h2_send(c);
    } else {
        conn_flush_now(c);
    }
    api__conn_update(c);
}

/* A closing connection's check handle is closed, and so stopped, before this can run. */
static void flush_check_cb(uv_check_t *h)
{
    struct api_conn *c = h->data;
    uv_check_stop(h);
    c->flush_armed = false;
    conn_send_ready(c);
}

void api__conn_flush_later(struct api_conn *c)
{
    if (c->closing || c->in_io || c->flush_armed) {
        return;
    }
    c->flush_armed = true;
    uv_check_start(&c->flush_check, flush_check_cb);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct api_conn *c = api__container_of(req, struct api_conn, shutdown_req);
    if (c->closing) {
        return;
    }
    if (status < 0 || c->eof) {
        api__conn_close(c);
        return;
    }
    c->lingering = true;
    c->finish_ms = uv_now(c->l->loop);
    api__conn_update(c);
}

static void conn_finish_now(struct api_conn *c)
{
    if (c->closing || c->shut_started) {
        return;
    }
    c->shut_started = true;
    if (c->use_tls && c->tls.handshake_done) {
        conn_flush_now(c);
        if (c->closing) {
            return;
        }
        api__tls_shutdown(&c->tls);
    }
    conn_flush_now(c);
    if (c->closing) {
        return;
    }
    c->finish_ms = uv_now(c->l->loop);
    int r = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_shutdown_cb);
    if (r != 0) {
        api__conn_close(c);
        return;
    }
    api__conn_update(c);
}

void api__conn_finish(struct api_conn *c)
{
    if (c->closing || c->finishing) {
        return;
    }
    c->finishing = true;
    c->msg_active = false;
    c->finish_ms = uv_now(c->l->loop);
    if (!c->in_io) {
        conn_finish_now(c);
    }
}

/* ---- deadlines and back-pressure ---- */

static uint64_t conn_deadline(const struct api_conn *c)
{
    const struct api_listener *l = c->l;
    if (c->lingering) {
        return c->finish_ms + API__LINGER_MS;
    }
    if (c->writes_pending > 0) {
        /* Bounded wait for a client that does not read its responses. */
        return c->last_activity_ms + l->idle_timeout_ms;
    }
    if (c->finishing) {
        return c->finish_ms + API__LINGER_MS;
    }
    switch (c->proto) {
        case API__PROTO_SNIFF:
            return c->accept_ms + l->read_header_timeout_ms;
        case API__PROTO_H1:
            if (c->msg_active) {
                uint64_t to = l->read_timeout_ms;
                if (!api_h1_decoder_in_body(&c->h1) && l->read_header_timeout_ms < to) {
                    to = l->read_header_timeout_ms;
                }
                return c->msg_start_ms + to;
            }
            if (c->n_ex > 0 || c->draining) {
                return 0; /* the handler is working; the grace timer bounds draining */
            }
            if (c->h1_msgs == 0) {
                return c->accept_ms + l->read_header_timeout_ms;
            }
            return c->last_activity_ms + l->idle_timeout_ms;
        case API__PROTO_H2:
            if (api__h2_receiving(c)) {
                return c->last_activity_ms + l->read_timeout_ms;
            }
            if (c->n_ex > 0 || c->draining) {
                return 0;
            }
            return c->last_activity_ms + l->idle_timeout_ms;
    }
    return 0;
}

static void conn_timer_cb(uv_timer_t *t)
{
    struct api_conn *c = api__container_of(t, struct api_conn, timer);
    c->timer_due = 0;
    if (c->closing) {
        return;
    }
    uint64_t due = conn_deadline(c);
    if (due == 0) {
        return;
    }
    if (uv_now(c->l->loop) < due) {
        conn_timer_arm(c);
        return;
    }
    if (c->lingering || c->finishing || c->writes_pending > 0 || c->proto == API__PROTO_SNIFF) {
        api__conn_close(c);
        return;
    }
    CF_LOG(CF_LOG_DEBUG, "connection %s:%d timed out", c->remote_addr, c->remote_port);
    if (c->proto == API__PROTO_H1) {
        api__h1_timeout(c);
    } else {
        api__h2_timeout(c);
    }
    if (!c->closing) {
        api__conn_update(c);
    }
}

static void conn_timer_arm(struct api_conn *c)
{
    uint64_t due = conn_deadline(c);
    if (due == 0) {
        if (c->timer_due != 0) {
            uv_timer_stop(&c->timer);
            c->timer_due = 0;
        }
        return;
    }
    if (c->timer_due != 0 && c->timer_due <= due) {
        return; /* fires earlier and re-checks then */
    }
    uint64_t now = uv_now(c->l->loop);
    uv_timer_start(&c->timer, conn_timer_cb, due > now ? due - now : 0, 0);
    c->timer_due = due;
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct api_conn *c = h->data;
    buf->base = (char *)c->l->rbuf;
    buf->len = sizeof(c->l->rbuf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void api__conn_update(struct api_conn *c)
{
    if (c->closing) {
        return;
    }
    bool want = !c->eof;
    if (want && !c->finishing && !c->lingering) {
        want = c->write_bytes < API__MAX_WRITE_BACKLOG &&
               (c->proto != API__PROTO_H1 || c->n_ex < API__MAX_PIPELINE);
    }
    if (want && c->finishing && !c->lingering) {
        want = false; /* resumed (discarding) once the write side is shut down */
    }
    if (want != c->reading) {
        int r = want ? uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb)
                     : uv_read_stop((uv_stream_t *)&c->tcp);
        if (r != 0) {
            api__conn_close(c);
            return;
        }
        c->reading = want;
    }
    conn_timer_arm(c);
}

/* ---- reads ---- */

static int conn_deliver(struct api_conn *c, const uint8_t *p, size_t n)
{
    switch (c->proto) {
        case API__PROTO_H1:
            return api__h1_recv(c, p, n);
        case API__PROTO_H2:
            return api__h2_recv(c, p, n);
        case API__PROTO_SNIFF:
            break;
    }
    size_t m = H2_PREFACE_LEN - c->sniff_len;
    if (m > n) {
        m = n;
    }
    int rv;
    if (memcmp(p, h2_preface + c->sniff_len, m) == 0) {
        c->sniff_len = (uint8_t)(c->sniff_len + m);
        if (c->sniff_len < H2_PREFACE_LEN) {
            return CF_OK;
        }
        c->proto = API__PROTO_H2;
        rv = api__h2_start(c);
        if (rv == CF_OK) {
            rv = api__h2_recv(c, (const uint8_t *)h2_preface, H2_PREFACE_LEN);
        }
        if (rv == CF_OK && !c->closing && n > m) {
            rv = api__h2_recv(c, p + m, n - m);
        }
        return rv;
    }
    c->proto = API__PROTO_H1;
    rv = api__h1_start(c);
    if (rv == CF_OK && c->sniff_len > 0) {
        rv = api__h1_recv(c, (const uint8_t *)h2_preface, c->sniff_len);
    }
    if (rv == CF_OK && !c->closing) {
        rv = api__h1_recv(c, p, n);
    }
    return rv;
}

static int conn_recv_tls(struct api_conn *c, const uint8_t *p, size_t n)
{
    int rv = api__tls_feed(&c->tls, p, n);
    if (rv != CF_OK) {
        return rv;
    }
    if (!c->tls.handshake_done) {
        char errmsg[CF_ERRMSG_SIZE] = "";
        bool done = false;
        rv = api__tls_handshake(&c->tls, &done, errmsg);
        if (rv != CF_OK) {
            CF_LOG(CF_LOG_DEBUG, "%s:%d: %s", c->remote_addr, c->remote_port, errmsg);
            conn_flush_now(c); /* the alert */
            return rv;
        }
        if (!done) {
            return CF_OK;
        }
        switch (api__tls_alpn(&c->tls)) {
            case API__ALPN_H2:
                c->proto = API__PROTO_H2;
                rv = api__h2_start(c);
                break;
            case API__ALPN_HTTP1:
                c->proto = API__PROTO_H1;
                rv = api__h1_start(c);
                break;
            case API__ALPN_NONE:
                break;
        }
        if (rv != CF_OK) {
            return rv;
        }
    }
    uint8_t *buf = c->l->tbuf;
    while (!c->closing && !c->finishing) {
        size_t got = 0;
        rv = api__tls_read(&c->tls, buf, sizeof(c->l->tbuf), &got);
        if (rv != CF_OK || got == 0) {
            return rv;
        }
        rv = conn_deliver(c, buf, got);
        if (rv != CF_OK) {
            return rv;
        }
    }
    return CF_OK;
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct api_conn *c = s->data;
    if (c->closing || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && c->proto == API__PROTO_H1 && c->ex_head != NULL && !c->finishing &&
            !c->lingering) {
            /* Half-close after sending requests: answer them, then close. */
            c->eof = true;
            api__conn_update(c);
            return;
        }
        api__conn_close(c);
        return;
    }
    c->last_activity_ms = uv_now(c->l->loop);
    if (c->finishing || c->lingering) {
        return; /* discarding */
    }
    c->in_io = true;
    int rv = c->use_tls ? conn_recv_tls(c, (const uint8_t *)buf->base, (size_t)nread)
                        : conn_deliver(c, (const uint8_t *)buf->base, (size_t)nread);
    c->in_io = false;
    if (c->closing) {
        return;
    }
    if (rv != CF_OK) {
        api__conn_close(c);
        return;
    }
    if (c->finishing) {
        conn_finish_now(c);
        return;
    }
    conn_send_ready(c);
}

/* ---- listener ---- */

static void conn_drain(struct api_conn *c)
{
    if (c->closing || c->finishing) {
        return;
    }
    switch (c->proto) {
        case API__PROTO_SNIFF:
            api__conn_close(c);
            return;
        case API__PROTO_H1:
            api__h1_drain(c);
            break;
        case API__PROTO_H2:
            api__h2_drain(c);
            break;
    }
    if (!c->closing) {
        api__conn_update(c);
    }
}

static void listener_connection_cb(uv_stream_t *server, int status)
{
    struct api_listener *l = server->data;
    if (status < 0) {
        CF_LOG(CF_LOG_WARN, "accept on port %d: %s", l->port, uv_strerror(status));
        return;
    }
    struct api_conn *c = cf_calloc(1, sizeof(*c));
    if (c == NULL) {
        CF_LOG(CF_LOG_ERROR, "accept on port %d: out of memory", l->port);
        return;
    }
    c->l = l;
    if (uv_tcp_init(l->loop, &c->tcp) != 0) {
        cf_free(c);
        return;
    }
    (void)uv_timer_init(l->loop, &c->timer);
    (void)uv_check_init(l->loop, &c->flush_check);
    c->tcp.data = c;
    c->timer.data = c;
    c->flush_check.data = c;
    c->next = l->conns;
    if (l->conns != NULL) {
        l->conns->prev = c;
    }
    l->conns = c;
    l->n_conns++;
    c->accept_ms = uv_now(l->loop);
    c->last_activity_ms = c->accept_ms;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || l->closing) {
        api__conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->remote_addr, sizeof(c->remote_addr));
            c->remote_port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->remote_addr, sizeof(c->remote_addr));
            c->remote_port = ntohs(a->sin_port);
        }
    }
    if (l->ssl_ctx != NULL) {
        c->use_tls = true;
        if (api__tls_init(&c->tls, l->ssl_ctx) != CF_OK) {
            api__conn_close(c);
            return;
        }
    }
    api__conn_update(c);
}

static int parse_address(const char *address,
                         struct sockaddr_storage *ss,
                         char errmsg[CF_ERRMSG_SIZE])
{
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon[1] == '\0') {
        cf_errmsg_printf(errmsg, "address %s: expected host:port", address);
        return CF_EINVAL;
    }
    unsigned long port = 0;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            cf_errmsg_printf(errmsg, "address %s: bad port", address);
            return CF_EINVAL;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535) {
        cf_errmsg_printf(errmsg, "address %s: bad port", address);
        return CF_EINVAL;
    }
    char host[INET6_ADDRSTRLEN + 2];
    size_t hlen = (size_t)(colon - address);
    if (hlen >= 2 && address[0] == '[' && address[hlen - 1] == ']') {
        address++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        cf_errmsg_printf(errmsg, "address %s: host must be an IP address", address);
        return CF_EINVAL;
    }
    memcpy(host, address, hlen);
    host[hlen] = '\0';
    if (hlen == 0) {
        snprintf(host, sizeof(host), "0.0.0.0");
    } else if (strcasecmp(host, "localhost") == 0) {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
        return CF_OK;
    }
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) {
        return CF_OK;
    }
    cf_errmsg_printf(errmsg, "address %s: host must be an IP address", address);
    return CF_EINVAL;
}

static void listener_free(struct api_listener *l)
{
    SSL_CTX_free(l->ssl_ctx);
    api__h2_callbacks_free(l->h2_callbacks);
    cf_free(l->cert_file);
    cf_free(l->key_file);
    cf_free(l);
}

static void listener_failed_close_cb(uv_handle_t *h)
{
    listener_free(h->data);
}

int api_listener_new(struct uv_loop_s *loop,
                     const struct api_listener_config *cfg,
                     api_handler_fn handler,
                     void *ctx,
                     struct api_listener **out,
                     char errmsg[CF_ERRMSG_SIZE])
{
    *out = NULL;
    if (loop == NULL || cfg == NULL || handler == NULL || cfg->address == NULL) {
        cf_errmsg_printf(errmsg, "listener: loop, config, address and handler are required");
        return CF_EINVAL;
    }
    struct sockaddr_storage ss;
    int rv = parse_address(cfg->address, &ss, errmsg);
    if (rv != CF_OK) {
        cf_errmsg_wrapf(errmsg, "listener");
        return rv;
    }
    struct api_listener *l = cf_calloc(1, sizeof(*l));
    if (l == NULL) {
        cf_errmsg_printf(errmsg, "listener: out of memory");
        return CF_ENOMEM;
    }
    l->loop = loop;
    l->handler = handler;
    l->ctx = ctx;
    l->max_request_size = cfg->max_request_size ? cfg->max_request_size : DEFAULT_MAX_REQUEST;
    l->max_header_size = cfg->max_header_size ? cfg->max_header_size : DEFAULT_MAX_HEADER;
    l->idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : DEFAULT_IDLE_MS;
    l->read_header_timeout_ms =
        cfg->read_header_timeout_ms ? cfg->read_header_timeout_ms : DEFAULT_READ_HEADER_MS;
    l->read_timeout_ms = cfg->read_timeout_ms ? cfg->read_timeout_ms : DEFAULT_READ_MS;
    l->tls_min_version = cfg->tls_min_version;
    if (!cfg->tls_disable) {
        l->cert_file = cf_strdup(cfg->tls_cert_file);
        l->key_file = cf_strdup(cfg->tls_key_file);
        if ((cfg->tls_cert_file != NULL && l->cert_file == NULL) ||
            (cfg->tls_key_file != NULL && l->key_file == NULL)) {
            cf_errmsg_printf(errmsg, "out of memory");
            rv = CF_ENOMEM;
        } else {
            rv = api__tls_ctx_new(l->cert_file, l->key_file, l->tls_min_version, &l->ssl_ctx,
                                  errmsg);
        }
        if (rv != CF_OK) {
            cf_errmsg_wrapf(errmsg, "listener %s: tls", cfg->address);
            listener_free(l);
            return rv;
        }
    }
    int r = uv_tcp_init(loop, &l->server);
    if (r != 0) {
        rv = cf_err_from_uv(errmsg, r, "tcp init");
        cf_errmsg_wrapf(errmsg, "listener %s", cfg->address);
        listener_free(l);
        return rv;
    }
    l->server.data = l;
    r = uv_tcp_bind(&l->server, (const struct sockaddr *)&ss, 0);
    const char *what = "bind";
    if (r == 0) {
        what = "listen";
        r = uv_listen((uv_stream_t *)&l->server, 1024, listener_connection_cb);
    }
    if (r != 0) {
        rv = cf_err_from_uv(errmsg, r, what);
        cf_errmsg_wrapf(errmsg, "listener %s", cfg->address);
        uv_close((uv_handle_t *)&l->server, listener_failed_close_cb);
        return rv;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (uv_tcp_getsockname(&l->server, (struct sockaddr *)&bound, &blen) == 0) {
        if (bound.ss_family == AF_INET6) {
            l->port = ntohs(((const struct sockaddr_in6 *)&bound)->sin6_port);
        } else {
            l->port = ntohs(((const struct sockaddr_in *)&bound)->sin_port);
        }
    }
    (void)uv_timer_init(loop, &l->grace_timer);
    l->grace_timer.data = l;
    l->handles_open = 2;
    CF_LOG(CF_LOG_INFO, "listening on %s port=%d tls=%s", cfg->address, l->port,
           l->ssl_ctx != NULL ? "on" : "off");
    *out = l;
    return CF_OK;
}

int api_listener_reload_tls(struct api_listener *l, char errmsg[CF_ERRMSG_SIZE])
{
    if (l == NULL || l->ssl_ctx == NULL) {
        cf_errmsg_printf(errmsg, "reload TLS: TLS is disabled on this listener");
        return CF_EINVAL;
    }
    SSL_CTX *ctx = NULL;
    int rv = api__tls_ctx_new(l->cert_file, l->key_file, l->tls_min_version, &ctx, errmsg);
    if (rv != CF_OK) {
        cf_errmsg_wrapf(errmsg, "reload TLS");
        return rv;
    }
    SSL_CTX_free(l->ssl_ctx); /* live connections keep their own reference */
    l->ssl_ctx = ctx;
    CF_LOG(CF_LOG_INFO, "TLS certificate reloaded port=%d", l->port);
    return CF_OK;
}

int api_listener_port(const struct api_listener *l)
{
    return l != NULL ? l->port : 0;
}

static void listener_handle_close_cb(uv_handle_t *h)
{
    struct api_listener *l = h->data;
    l->handles_open--;
    listener_maybe_destroy(l);
}

static void listener_maybe_destroy(struct api_listener *l)
{
    if (!l->closing || l->n_conns > 0) {
        return;
    }
    if (!l->grace_closing) {
        l->grace_closing = true;
        uv_close((uv_handle_t *)&l->grace_timer, listener_handle_close_cb);
        return;
    }
    if (l->handles_open > 0) {
        return;
    }
    void (*cb)(void *) = l->close_cb;
    void *arg = l->close_arg;
    listener_free(l);
    if (cb != NULL) {
        cb(arg);
    }
}

static void listener_grace_cb(uv_timer_t *t)
{
    struct api_listener *l = t->data;
    struct api_conn *c = l->conns;
    while (c != NULL) {
        struct api_conn *next = c->next;
        api__conn_close(c);
        c = next;
    }
}

void api_listener_close(struct api_listener *l, void (*cb)(void *arg), void *arg)
{
    if (l == NULL || l->closing) {
        return;
    }
    l->closing = true;
    l->close_cb = cb;
    l->close_arg = arg;
    uv_close((uv_handle_t *)&l->server, listener_handle_close_cb);
    struct api_conn *c = l->conns;
    while (c != NULL) {
        struct api_conn *next = c->next;
        conn_drain(c);
        c = next;
    }
    if (l->n_conns > 0) {
        uv_timer_start(&l->grace_timer, listener_grace_cb, API__GRACE_MS, 0);
    }
    listener_maybe_destroy(l);
}
