/*
 * HTTP/2 connections over nghttp2 (ALPN h2 over TLS, or h2c with prior knowledge on plain
 * listeners): one server session per connection and one exchange per stream.
 *
 * Happy path: received bytes go to nghttp2_session_mem_recv; the callbacks collect each
 * stream's pseudo-headers, headers and body into its exchange, and a stream whose request has
 * ended is put on the connection's ready list. Once nghttp2 has returned, ready exchanges are
 * handed to the handler (never from inside nghttp2). A response is submitted with a data
 * provider reading from the exchange's copy of the body; output is produced with
 * nghttp2_session_mem_send and written by the connection, pausing while the socket is backed up.
 *
 * Failure modes: a stream reset before the handler answers detaches its exchange, and the late
 * api_exchange_respond only frees it (rule A4); bodies over max_request_size get 413 and
 * header blocks over max_header_size get 431 without reaching the handler; protocol errors end
 * the session with GOAWAY (nghttp2) and the connection closes once that is sent.
 */
#include "api/http2.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "api/conn.h"
#include "lib/mem.h"

#define H2_MAX_STREAMS 256
#define H2_STREAM_WINDOW (1 << 20)
#define H2_CONN_WINDOW (16 << 20)
/* Output staged per flush, and the socket backlog at which nghttp2 output pauses. */
#define H2_FLUSH_CHUNK ((size_t)64 << 10)
#define H2_MAX_BACKLOG ((size_t)1 << 20)

static struct api__ex *stream_ex(nghttp2_session *s, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(s, stream_id);
}

static ssize_t data_read_cb(nghttp2_session *s,
                            int32_t stream_id,
                            uint8_t *buf,
                            size_t length,
                            uint32_t *data_flags,
                            nghttp2_data_source *source,
                            void *ud)
{
    (void)s;
    (void)stream_id;
    (void)ud;
    struct api__ex *x = source->ptr;
    size_t left = x->out.len - x->out_off;
    size_t n = left < length ? left : length;
    if (n > 0) {
        memcpy(buf, x->out.data + x->out_off, n);
    }
    x->out_off += n;
    if (x->out_off == x->out.len) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static bool h2_reserved_header(const char *name)
{
    return name[0] == ':' || strcasecmp(name, "content-length") == 0 ||
           strcasecmp(name, "connection") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
           strcasecmp(name, "keep-alive") == 0 || strcasecmp(name, "upgrade") == 0 ||
           strcasecmp(name, "proxy-connection") == 0 || strcasecmp(name, "te") == 0;
}

/* Header fields the handler may send: not ours, and no CR/LF that a client would refuse. */
static bool h2_header_ok(const struct api_header *h)
{
    if (h->name == NULL || h->name[0] == 0 || h2_reserved_header(h->name) ||
        strpbrk(h->name, "\r\n: ") != NULL) {
        return false;
    }
    return h->value == NULL || strpbrk(h->value, "\r\n") == NULL;
}

/* Submits a response on x's stream (copies everything it needs). */
static int h2_submit(struct api_conn *c,
                     struct api__ex *x,
                     int status,
                     const struct api_header *headers,
                     size_t n_headers,
                     const uint8_t *body,
                     size_t body_len)
{
    if (status < 200 || status > 999) {
        status = 500;
    }
    bool no_body = status == 204 || status == 304;
    nghttp2_nv *nva = cf_calloc(n_headers + 2, sizeof(*nva));
    struct cf_buf names;
    cf_buf_init(&names);
    size_t *name_offs = cf_calloc(n_headers + 1, sizeof(*name_offs));
    int rv = nva == NULL || name_offs == NULL ? CF_ENOMEM : CF_OK;
    size_t k = 0;
    char st[8];
    char cl[24];
    snprintf(st, sizeof(st), "%d", status);
    if (rv == CF_OK) {
        nva[k++] =
            (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP2_NV_FLAG_NONE};
    }
    /* Names must be lowercase in HTTP/2: copy them lowered, then point at the copies. */
    size_t used = 0;
    for (size_t i = 0; rv == CF_OK && i < n_headers; i++) {
        const char *name = headers[i].name;
        if (!h2_header_ok(&headers[i])) {
            continue;
        }
        name_offs[used++] = names.len;
        size_t len = strlen(name);
        rv = cf_buf_reserve(&names, len + 1);
        for (size_t j = 0; rv == CF_OK && j <= len; j++) {
            char ch = name[j];
            names.data[names.len++] = (uint8_t)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
    }
    for (size_t i = 0, u = 0; rv == CF_OK && i < n_headers; i++) {
        if (!h2_header_ok(&headers[i])) {
            continue;
        }
        const char *value = headers[i].value != NULL ? headers[i].value : "";
        char *lname = (char *)names.data + name_offs[u++];
        nva[k++] = (nghttp2_nv){(uint8_t *)lname, (uint8_t *)value, strlen(lname), strlen(value),
                                NGHTTP2_NV_FLAG_NONE};
    }
    if (rv == CF_OK && !no_body) {
        snprintf(cl, sizeof(cl), "%zu", body_len);
        nva[k++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)cl, 14, strlen(cl),
                                NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_data_provider dp = {.source.ptr = x, .read_callback = data_read_cb};
    bool with_body = !no_body && !x->req.head && body_len > 0;
    if (rv == CF_OK && with_body) {
        cf_buf_reset(&x->out);
        x->out_off = 0;
        rv = cf_buf_append(&x->out, body, body_len);
    }
    if (rv == CF_OK) {
        int r = nghttp2_submit_response(c->h2, x->stream_id, nva, k, with_body ? &dp : NULL);
        if (r != 0) {
            rv = CF_EINTERNAL;
        }
    }
    cf_free(nva);
    cf_free(name_offs);
    cf_buf_close(&names);
    if (rv != CF_OK) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, x->stream_id, NGHTTP2_INTERNAL_ERROR);
    }
    x->responded = true;
    return rv;
}

/* Answers a request internally (it never reaches the handler). */
static void h2_refuse(struct api_conn *c, struct api__ex *x, int status, const char *text)
{
    x->refused = true;
    cf_buf_close(&x->body);
    char body[128];
    int len = snprintf(body, sizeof(body), "{\"errors\":[\"%s\"]}", text);
    const struct api_header hdr = {.name = "content-type", .value = "application/json"};
    (void)h2_submit(c, x, status, &hdr, 1, (const uint8_t *)body, (size_t)len);
}

static int on_begin_headers_cb(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct api_conn *c = ud;
    if (c->closing || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct api__ex *x = api__ex_new(c);
    if (x == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    x->stream_id = frame->hd.stream_id;
    x->req.http_version = 20;
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, x);
    return 0;
}

static int set_pseudo(char **dst, const uint8_t *value, size_t len)
{
    if (*dst != NULL) {
        return CF_EMALFORMED;
    }
    *dst = cf_strndup((const char *)value, len);
    return *dst == NULL ? CF_ENOMEM : CF_OK;
}

static int on_header_cb(nghttp2_session *s,
                        const nghttp2_frame *frame,
                        const uint8_t *name,
                        size_t namelen,
                        const uint8_t *value,
                        size_t valuelen,
                        uint8_t flags,
                        void *ud)
{
    (void)flags;
    struct api_conn *c = ud;
    if (c->closing || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct api__ex *x = stream_ex(s, frame->hd.stream_id);
    if (x == NULL || x->hdr_too_large) {
        return 0;
    }
    /* RFC 9113 section 6.5.2 accounting: name, value and 32 bytes per field. */
    x->header_bytes += namelen + valuelen + 32;
    if (x->header_bytes > c->l->max_header_size) {
        x->hdr_too_large = true;
        return 0;
    }
    int rv = CF_OK;
    if (namelen > 0 && name[0] == ':') {
        if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
            rv = set_pseudo(&x->h2_method, value, valuelen);
        } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
            rv = set_pseudo(&x->h2_path, value, valuelen);
        } else if (namelen == 10 && memcmp(name, ":authority", 10) == 0) {
            rv = set_pseudo(&x->h2_authority, value, valuelen);
        }
    } else {
        rv = api__reqb_name(&x->hb, (const char *)name, namelen);
        if (rv == CF_OK) {
            rv = api__reqb_value(&x->hb, (const char *)value, valuelen);
        }
        if (rv == CF_OK) {
            rv = api__reqb_end_value(&x->hb);
        }
    }
    return rv == CF_OK ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static bool builder_has(const struct api_request_builder *b, const char *name)
{
    for (size_t i = 0; i + 1 < b->n_offs; i += 2) {
        if (strcmp((const char *)b->strs.data + b->offs[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* The request on x's stream has ended: build it and queue it for dispatch. */
static void h2_complete(struct api_conn *c, struct api__ex *x)
{
    if (x->refused || x->dispatched || x->in_ready) {
        return;
    }
    if (x->hdr_too_large) {
        h2_refuse(c, x, 431, "request header fields too large");
        return;
    }
    if (x->h2_method == NULL || x->h2_path == NULL) {
        h2_refuse(c, x, 400, "malformed request");
        return;
    }
    int rv = CF_OK;
    if (x->h2_authority != NULL && !builder_has(&x->hb, "host")) {
        rv = api__reqb_name(&x->hb, "host", 4);
        if (rv == CF_OK) {
            rv = api__reqb_value(&x->hb, x->h2_authority, strlen(x->h2_authority));
        }
        if (rv == CF_OK) {
            rv = api__reqb_end_value(&x->hb);
        }
    }
    if (rv == CF_OK) {
        rv = api__reqb_finish(&x->hb, x->h2_method, strlen(x->h2_method), x->h2_path,
                              strlen(x->h2_path), &x->req);
    }
    if (rv != CF_OK) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, x->stream_id, NGHTTP2_INTERNAL_ERROR);
        x->refused = true;
        return;
    }
    api__reqb_close(&x->hb);
    if (x->body.len > 0) {
        size_t len = 0;
        x->req.body = cf_buf_steal(&x->body, &len);
        x->req.body_len = len;
    }
    x->req.http_version = 20;
    x->req.keep_alive = true;
    x->req.head = strcmp(x->req.method, "HEAD") == 0;
    CF_FREE(x->h2_method);
    CF_FREE(x->h2_path);
    CF_FREE(x->h2_authority);
    /* Append to the ready list, keeping request order. */
    x->in_ready = true;
    x->ready_next = NULL;
    struct api__ex **pp = &c->h2_ready;
    while (*pp != NULL) {
        pp = &(*pp)->ready_next;
    }
    *pp = x;
}

static int on_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct api_conn *c = ud;
    if (c->closing) {
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    struct api__ex *x = stream_ex(s, frame->hd.stream_id);
    if (x == NULL) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && x->hdr_too_large && !x->refused) {
        h2_refuse(c, x, 431, "request header fields too large");
        return 0;
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        h2_complete(c, x);
    }
    return 0;
}

static int on_data_chunk_recv_cb(nghttp2_session *s,
                                 uint8_t flags,
                                 int32_t stream_id,
                                 const uint8_t *data,
                                 size_t len,
                                 void *ud)
{
    (void)flags;
    struct api_conn *c = ud;
    if (c->closing) {
        return 0;
    }
    struct api__ex *x = stream_ex(s, stream_id);
    if (x == NULL || x->refused || x->dispatched || x->in_ready) {
        return 0;
    }
    if (len > c->l->max_request_size - x->body.len) {
        h2_refuse(c, x, 413, "http: request body too large");
        return 0;
    }
    /* One connection may hold up to 256 streams: bound the body bytes it keeps in memory at
     * once (received and not yet answered) to twice the per-request limit. A stream that would
     * pass it is refused with REFUSED_STREAM, which tells the client it may retry. */
    size_t held = 0;
    for (struct api__ex *e = c->ex_head; e != NULL; e = e->next) {
        held += e->body.len + e->req.body_len;
    }
    size_t cap = c->l->max_request_size > SIZE_MAX / 2 ? SIZE_MAX : 2 * c->l->max_request_size;
    if (len > cap || held > cap - len) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_REFUSED_STREAM);
        x->refused = true;
        return 0;
    }
    if (cf_buf_append(&x->body, data, len) != CF_OK) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_INTERNAL_ERROR);
        x->refused = true;
    }
    return 0;
}

static int on_stream_close_cb(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
    (void)error_code;
    struct api_conn *c = ud;
    if (c->closing) {
        return 0;
    }
    struct api__ex *x = stream_ex(s, stream_id);
    if (x == NULL) {
        return 0;
    }
    nghttp2_session_set_stream_user_data(s, stream_id, NULL);
    api__ex_unlink(x);
    x->proto_owns = false;
    if (x->in_ready) {
        x->stream_closed = true; /* the dispatch loop frees it */
        return 0;
    }
    if (x->handler_owns) {
        x->conn = NULL; /* detached: a late respond only frees it */
    }
    api__ex_maybe_free(x);
    return 0;
}

static nghttp2_session_callbacks *h2_callbacks(struct api_listener *l)
{
    if (l->h2_callbacks != NULL) {
        return l->h2_callbacks;
    }
    nghttp2_session_callbacks *cbs = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
    l->h2_callbacks = cbs;
    return cbs;
}

void api__h2_callbacks_free(void *callbacks)
{
    nghttp2_session_callbacks_del(callbacks);
}

int api__h2_start(struct api_conn *c)
{
    nghttp2_session_callbacks *cbs = h2_callbacks(c->l);
    if (cbs == NULL) {
        return CF_ENOMEM;
    }
    nghttp2_session *s = NULL;
    if (nghttp2_session_server_new(&s, cbs, c) != 0) {
        return CF_ENOMEM;
    }
    size_t max_hdr = c->l->max_header_size;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         max_hdr > UINT32_MAX ? UINT32_MAX : (uint32_t)max_hdr},
    };
    if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
        nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0) {
        nghttp2_session_del(s);
        return CF_ENOMEM;
    }
    c->h2 = s;
    return CF_OK;
}

int api__h2_recv(struct api_conn *c, const uint8_t *p, size_t n)
{
    if (c->h2 == NULL || c->finishing) {
        return CF_OK;
    }
    ssize_t r = nghttp2_session_mem_recv(c->h2, p, n);
    if (r < 0) {
        return CF_EMALFORMED;
    }
    struct api__ex *x;
    while (!c->closing && (x = c->h2_ready) != NULL) {
        c->h2_ready = x->ready_next;
        x->ready_next = NULL;
        x->in_ready = false;
        if (x->stream_closed) {
            api__ex_maybe_free(x);
            continue;
        }
        api__conn_dispatch(c, x);
    }
    return CF_OK;
}

void api__h2_send(struct api_conn *c)
{
    if (c->closing || c->in_io || c->h2 == NULL || c->finishing) {
        return;
    }
    for (;;) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            api__conn_close(c);
            return;
        }
        if (n == 0) {
            break;
        }
        if (cf_buf_append(&c->out, data, (size_t)n) != CF_OK) {
            api__conn_close(c);
            return;
        }
        if (c->out.len >= H2_FLUSH_CHUNK) {
            api__conn_flush(c);
            if (c->closing) {
                return;
            }
            if (c->write_bytes >= H2_MAX_BACKLOG) {
                return; /* resumed when the socket drains */
            }
        }
    }
    api__conn_flush(c);
    if (c->closing) {
        return;
    }
    if (nghttp2_session_want_read(c->h2) == 0 && nghttp2_session_want_write(c->h2) == 0) {
        api__conn_finish(c);
    }
}

void api__h2_respond(struct api__ex *x,
                     int status,
                     const struct api_header *headers,
                     size_t n_headers,
                     const uint8_t *body,
                     size_t body_len)
{
    struct api_conn *c = x->conn;
    (void)h2_submit(c, x, status, headers, n_headers, body, body_len);
    /* Responses finished in the same loop turn on this connection go out in one write. */
    api__conn_flush_later(c);
}

void api__h2_drain(struct api_conn *c)
{
    c->draining = true;
    if (c->h2 == NULL) {
        api__conn_close(c);
        return;
    }
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          NGHTTP2_NO_ERROR, NULL, 0);
    api__h2_send(c);
}

void api__h2_timeout(struct api_conn *c)
{
    if (c->h2 == NULL) {
        api__conn_close(c);
        return;
    }
    nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
    api__h2_send(c);
}

bool api__h2_receiving(const struct api_conn *c)
{
    for (const struct api__ex *x = c->ex_head; x != NULL; x = x->next) {
        if (!x->dispatched && !x->refused) {
            return true;
        }
    }
    return false;
}

void api__h2_free(struct api_conn *c)
{
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
}
