/*
 * Request forwarding standby -> active: one HTTP/2 connection (nghttp2, driven with
 * mem_recv/mem_send) on a connected uv_stream_t, many concurrent forwarded requests on it.
 *
 * Both ends share struct fwd_conn: reads go to nghttp2_session_mem_recv from the read callback;
 * output is pulled with nghttp2_session_mem_send into 64 KiB write requests. Output generation
 * pauses while 1 MiB is queued in uv_write and resumes from the write callback, so a peer that
 * does not read stops getting WINDOW_UPDATEs and is held back by HTTP/2 flow control (we keep
 * reading its frames; nghttp2 bounds the control frames it will queue). Nothing in nghttp2 is
 * re-entered: user callbacks run only after mem_recv has returned.
 *
 * Client happy path: send encodes the request and queues it; pump opens a stream per request up
 * to the peer's SETTINGS_MAX_CONCURRENT_STREAMS; the response is collected per stream, decoded
 * at END_STREAM and the request moved to a done list, which a uv_idle drains into the user
 * callbacks (so no callback runs inside repl_fwd_client_send or _close). One uv_timer, armed at
 * the earliest deadline, expires requests (their streams are reset with CANCEL).
 *
 * Server happy path: each stream's body is collected, checked (method, path, content-type,
 * size) and decoded; good requests are handed to the handler after mem_recv returns; the answer
 * is submitted with a data provider reading from the call's encoded copy.
 *
 * Failure modes: EOF, read/write errors and protocol errors (nghttp2 reports them; garbage
 * instead of a preface is one) break the connection: a best-effort GOAWAY is written without
 * blocking, the stream is closed; the client fails every pending request with CF_EIO, the
 * server detaches the calls the handler holds (respond only frees them) and fires closed_cb.
 * A stream reset by the peer fails only its own request or detaches only its own call.
 */
#define CF_LOG_MODULE "fwd"
#include "replication/forward.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define FWD_MAX_STREAMS 256
#define FWD_STREAM_WINDOW (4 << 20)
#define FWD_CONN_WINDOW (16 << 20)
#define FWD_MAX_HEADER_LIST (16 << 10)
#define FWD_WRITE_CHUNK ((size_t)64 << 10)
#define FWD_MAX_BACKLOG ((size_t)1 << 20)
#define FWD_READ_BUF 65536
#define FWD_NO_DEADLINE UINT64_MAX

#define FWD_NV(n, v)                                                                   \
    {                                                                                  \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE \
    }

/* Connection core --------------------------------------------------------------------------- */

struct fwd_conn;

struct fwd_conn_ops
{
    void (*after_recv)(struct fwd_conn *c); /* mem_recv returned; may run user callbacks */
    void (*broken)(struct fwd_conn *c);     /* the connection just broke (c->errmsg says why) */
    void (*closed)(struct fwd_conn *c);     /* the stream handle is closed and freed */
};

struct fwd_conn
{
    uv_loop_t *loop;                    /* borrowed */
    uv_stream_t *stream;                /* owned; NULL once closed */
    void (*free_stream)(uv_handle_t *); /* frees stream in its close callback */
    const struct fwd_conn_ops *ops;
    nghttp2_session *h2; /* owned; deleted by the owner after ops->closed */
    size_t write_bytes;  /* handed to uv_write and not yet written */
    bool down;           /* no more I/O: broken or closed; the stream is closing */
    bool in_recv;        /* inside nghttp2_session_mem_recv */
    bool in_flush;
    char errmsg[CF_ERRMSG_SIZE]; /* why the connection broke */
    uint8_t rbuf[FWD_READ_BUF];  /* socket reads, consumed within the read callback */
};

struct fwd_write
{
    uv_write_t req;
    struct fwd_conn *conn; /* borrowed; outlives the write (libuv ends writes before close) */
    struct cf_buf buf;
};

static void conn_stream_close_cb(uv_handle_t *h)
{
    struct fwd_conn *c = h->data;
    c->free_stream(h);
    c->stream = NULL;
    c->ops->closed(c);
}

/* Writes whatever nghttp2 has queued (a GOAWAY) without blocking, before closing. Skipped when
 * writes are queued: the bytes would go out of order. */
static void conn_send_final(struct fwd_conn *c)
{
    if (c->write_bytes > 0 || c->h2 == NULL) {
        return;
    }
    uint8_t buf[1024];
    size_t len = 0;
    for (;;) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n <= 0 || (size_t)n > sizeof(buf) - len) {
            break;
        }
        memcpy(buf + len, data, (size_t)n);
        len += (size_t)n;
    }
    if (len > 0) {
        uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
        (void)uv_try_write(c->stream, &b, 1);
    }
}

/* Stops all I/O and closes the stream; ops->closed follows from the loop. */
static void conn_shut(struct fwd_conn *c, uint32_t goaway_code)
{
    if (c->down) {
        return;
    }
    c->down = true;
    if (c->h2 != NULL) {
        nghttp2_session_terminate_session(c->h2, goaway_code);
        conn_send_final(c);
    }
    uv_read_stop(c->stream);
    uv_close((uv_handle_t *)c->stream, conn_stream_close_cb);
}

static void conn_break(struct fwd_conn *c, uint32_t goaway_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_break(struct fwd_conn *c, uint32_t goaway_code, const char *fmt, ...)
{
    if (c->down) {
        return;
    }
    char text[CF_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cf_errmsg_printf(c->errmsg, "%s", text);
    CF_LOG(CF_LOG_INFO, "forwarding connection closed: %s", c->errmsg);
    conn_shut(c, goaway_code);
    c->ops->broken(c);
}

static void conn_flush(struct fwd_conn *c);

static void conn_write_cb(uv_write_t *req, int status)
{
    struct fwd_write *w = CF_CONTAINER_OF(req, struct fwd_write, req);
    struct fwd_conn *c = w->conn;
    c->write_bytes -= w->buf.len;
    cf_buf_close(&w->buf);
    cf_free(w);
    if (c->down) {
        return;
    }
    if (status < 0) {
        conn_break(c, NGHTTP2_INTERNAL_ERROR, "write: %s", uv_strerror(status));
        return;
    }
    conn_flush(c);
}

static int conn_submit_write(struct fwd_conn *c, struct fwd_write *w)
{
    w->conn = c;
    uv_buf_t b = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    int rv = uv_write(&w->req, c->stream, &b, 1, conn_write_cb);
    if (rv < 0) {
        cf_buf_close(&w->buf);
        cf_free(w);
        return rv;
    }
    c->write_bytes += w->buf.len;
    return 0;
}

/* Moves nghttp2's output to the socket until it has nothing more or the backlog is full. */
static void conn_flush(struct fwd_conn *c)
{
    if (c->down || c->in_recv || c->in_flush) {
        return;
    }
    c->in_flush = true;
    struct fwd_write *w = NULL;
    const char *err = NULL;
    int uv_err = 0;
    while (err == NULL && c->write_bytes < FWD_MAX_BACKLOG) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            err = nghttp2_strerror((int)n);
            break;
        }
        if (n == 0) {
            break;
        }
        if (w == NULL) {
            w = cf_calloc(1, sizeof(*w));
            if (w == NULL) {
                err = "out of memory";
                break;
            }
            cf_buf_init(&w->buf);
        }
        if (cf_buf_append(&w->buf, data, (size_t)n) != CF_OK) {
            err = "out of memory";
            break;
        }
        if (w->buf.len >= FWD_WRITE_CHUNK) {
            uv_err = conn_submit_write(c, w);
            w = NULL;
            if (uv_err < 0) {
                err = uv_strerror(uv_err);
            }
        }
    }
    if (w != NULL && err == NULL && w->buf.len > 0) {
        uv_err = conn_submit_write(c, w);
        w = NULL;
        if (uv_err < 0) {
            err = uv_strerror(uv_err);
        }
    }
    if (w != NULL) {
        cf_buf_close(&w->buf);
        cf_free(w);
    }
    c->in_flush = false;
    if (err != NULL) {
        conn_break(c, NGHTTP2_INTERNAL_ERROR, "send: %s", err);
        return;
    }
    if (nghttp2_session_want_read(c->h2) == 0 && nghttp2_session_want_write(c->h2) == 0 &&
        c->write_bytes == 0) {
        conn_break(c, NGHTTP2_NO_ERROR, "HTTP/2 session ended (GOAWAY)");
    }
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct fwd_conn *c = h->data;
    *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct fwd_conn *c = stream->data;
    (void)buf;
    if (c->down || nread == 0) {
        return;
    }
    if (nread == UV_EOF) {
        conn_break(c, NGHTTP2_NO_ERROR, "connection closed by the peer");
        return;
    }
    if (nread < 0) {
        conn_break(c, NGHTTP2_INTERNAL_ERROR, "read: %s", uv_strerror((int)nread));
        return;
    }
    c->in_recv = true;
    ssize_t r = nghttp2_session_mem_recv(c->h2, c->rbuf, (size_t)nread);
    c->in_recv = false;
    if (r < 0) {
        conn_break(c, NGHTTP2_PROTOCOL_ERROR, "HTTP/2: %s", nghttp2_strerror((int)r));
        return;
    }
    c->ops->after_recv(c);
    conn_flush(c);
}

/* Starts reading and sends what the session has queued (preface, SETTINGS). */
static int conn_start(struct fwd_conn *c,
                      uv_loop_t *loop,
                      uv_stream_t *stream,
                      void (*free_stream)(uv_handle_t *),
                      const struct fwd_conn_ops *ops)
{
    c->loop = loop;
    c->stream = stream;
    c->free_stream = free_stream;
    c->ops = ops;
    stream->data = c;
    int rv = uv_read_start(stream, conn_alloc_cb, conn_read_cb);
    if (rv < 0) {
        return CF_EIO;
    }
    conn_flush(c);
    return CF_OK;
}

static int session_settings(nghttp2_session *s, const nghttp2_settings_entry *iv, size_t n)
{
    if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, n) != 0 ||
        nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, FWD_CONN_WINDOW) != 0) {
        return CF_ENOMEM;
    }
    return CF_OK;
}

/* Client ------------------------------------------------------------------------------------ */

struct fwd_req;

struct fwd_list
{
    struct fwd_req *head;
    struct fwd_req *tail;
    size_t n;
};

struct fwd_req
{
    struct fwd_req *prev;
    struct fwd_req *next;
    struct fwd_list *list; /* the client list holding it */
    struct cf_buf body;    /* the encoded request */
    size_t body_off;       /* bytes handed to nghttp2 */
    int32_t stream_id;     /* 0 until submitted */
    unsigned timeout_ms;
    uint64_t deadline;             /* uv_now() ms, FWD_NO_DEADLINE for none */
    struct cf_buf rx;              /* response body received so far */
    int http_status;               /* of the HTTP/2 response, 0 until seen */
    int status;                    /* result once done */
    struct repl_fwd_response resp; /* decoded when status == CF_OK */
    repl_fwd_done_cb cb;
    void *arg;
    char errmsg[CF_ERRMSG_SIZE];
};

struct repl_fwd_client
{
    struct fwd_conn conn;
    uv_timer_t timer;         /* fires at the earliest deadline */
    uv_idle_t idle;           /* runs while the done list is not empty */
    struct fwd_list queued;   /* waiting for a stream slot, in send order */
    struct fwd_list inflight; /* on a stream */
    struct fwd_list done;     /* completed, callback not yet called */
    uint64_t armed;           /* deadline the timer is set for, FWD_NO_DEADLINE if none */
    int handles_open;         /* stream, timer and idle until closed */
    bool goaway;              /* the peer sent GOAWAY: no new streams */
    bool closing;
};

static void list_push(struct fwd_list *l, struct fwd_req *r)
{
    r->list = l;
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = r;
    } else {
        l->head = r;
    }
    l->tail = r;
    l->n++;
}

static void list_remove(struct fwd_req *r)
{
    struct fwd_list *l = r->list;
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        l->head = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    } else {
        l->tail = r->prev;
    }
    l->n--;
    r->list = NULL;
    r->prev = r->next = NULL;
}

static void req_free(struct fwd_req *r)
{
    cf_buf_close(&r->body);
    cf_buf_close(&r->rx);
    repl_fwd_response_free(&r->resp);
    cf_free(r);
}

static void client_idle_cb(uv_idle_t *idle);

/* Completes r with status (errmsg already in r->errmsg unless CF_OK) and queues its callback. */
static void req_finish(struct repl_fwd_client *c, struct fwd_req *r, int status)
{
    list_remove(r);
    if (r->stream_id > 0 && !c->conn.down) {
        nghttp2_session_set_stream_user_data(c->conn.h2, r->stream_id, NULL);
    }
    r->status = status;
    cf_buf_close(&r->rx);
    cf_buf_close(&r->body);
    list_push(&c->done, r);
    if (!c->closing) {
        uv_idle_start(&c->idle, client_idle_cb);
    }
}

static void req_fail(struct repl_fwd_client *c, struct fwd_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void req_fail(struct repl_fwd_client *c, struct fwd_req *r, int status, const char *fmt, ...)
{
    char text[CF_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cf_errmsg_printf(r->errmsg, "%s", text);
    req_finish(c, r, status);
}

static void fail_list(struct repl_fwd_client *c, struct fwd_list *l, int status, const char *why)
{
    while (l->head != NULL) {
        req_fail(c, l->head, status, "%s", why);
    }
}

static void client_deliver(struct repl_fwd_client *c)
{
    struct fwd_req *r;
    while ((r = c->done.head) != NULL) {
        list_remove(r);
        r->cb(r->arg, r->status, r->status == CF_OK ? &r->resp : NULL,
              r->status == CF_OK ? NULL : r->errmsg);
        req_free(r);
    }
}

static void client_idle_cb(uv_idle_t *idle)
{
    struct repl_fwd_client *c = CF_CONTAINER_OF(idle, struct repl_fwd_client, idle);
    uv_idle_stop(idle);
    client_deliver(c);
}

static void client_maybe_destroy(struct repl_fwd_client *c)
{
    if (!c->closing || c->handles_open > 0) {
        return;
    }
    client_deliver(c);
    nghttp2_session_del(c->conn.h2);
    cf_free(c);
}

static void client_handle_close_cb(uv_handle_t *h)
{
    struct repl_fwd_client *c = h->data;
    c->handles_open--;
    client_maybe_destroy(c);
}

/* The response on r's stream has ended. */
static void req_complete(struct repl_fwd_client *c, struct fwd_req *r)
{
    if (r->http_status != 200) {
        char text[121];
        size_t n = r->rx.len < sizeof(text) - 1 ? r->rx.len : sizeof(text) - 1;
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = r->rx.data[i];
            text[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
        }
        text[n] = '\0';
        req_fail(c, r, CF_EIO, "active node answered HTTP %d: %s", r->http_status, text);
        return;
    }
    int rv = repl_fwd_response_decode(r->rx.data, r->rx.len, &r->resp, r->errmsg);
    req_finish(c, r, rv);
}

static ssize_t client_data_cb(nghttp2_session *s,
                              int32_t stream_id,
                              uint8_t *buf,
                              size_t length,
                              uint32_t *data_flags,
                              nghttp2_data_source *source,
                              void *ud)
{
    (void)source;
    (void)ud;
    struct fwd_req *r = nghttp2_session_get_stream_user_data(s, stream_id);
    if (r == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* completed already: reset the stream */
    }
    size_t left = r->body.len - r->body_off;
    size_t n = left < length ? left : length;
    if (n > 0) {
        memcpy(buf, r->body.data + r->body_off, n);
    }
    r->body_off += n;
    if (r->body_off == r->body.len) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static int client_header_cb(nghttp2_session *s,
                            const nghttp2_frame *frame,
                            const uint8_t *name,
                            size_t namelen,
                            const uint8_t *value,
                            size_t valuelen,
                            uint8_t flags,
                            void *ud)
{
    (void)flags;
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    struct fwd_req *r = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (r == NULL || namelen != 7 || memcmp(name, ":status", 7) != 0) {
        return 0;
    }
    int st = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++) {
        st = st * 10 + (value[i] - '0');
    }
    r->http_status = valuelen == 3 ? st : 0;
    return 0;
}

static int client_data_chunk_cb(nghttp2_session *s,
                                uint8_t flags,
                                int32_t stream_id,
                                const uint8_t *data,
                                size_t len,
                                void *ud)
{
    (void)flags;
    struct repl_fwd_client *c = ud;
    struct fwd_req *r = nghttp2_session_get_stream_user_data(s, stream_id);
    if (r == NULL) {
        return 0;
    }
    if (len > REPL_FWD_MAX_MESSAGE - r->rx.len) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
        req_fail(c, r, CF_ETOOBIG, "forwarded response: body larger than %zu bytes",
                 REPL_FWD_MAX_MESSAGE);
        return 0;
    }
    if (cf_buf_append(&r->rx, data, len) != CF_OK) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
        req_fail(c, r, CF_ENOMEM, "forwarded response: out of memory");
    }
    return 0;
}

static int client_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct repl_fwd_client *c = ud;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        return 0;
    }
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
        return 0;
    }
    struct fwd_req *r = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (r != NULL) {
        req_complete(c, r);
    }
    return 0;
}

static int client_stream_close_cb(nghttp2_session *s, int32_t stream_id, uint32_t code, void *ud)
{
    struct repl_fwd_client *c = ud;
    struct fwd_req *r = nghttp2_session_get_stream_user_data(s, stream_id);
    if (r != NULL) {
        req_fail(c, r, CF_EIO, "stream closed by the active node before the response ended (%s)",
                 nghttp2_http2_strerror(code));
    }
    return 0;
}

/* Opens streams for queued requests while the peer allows more. */
static void client_pump(struct repl_fwd_client *c)
{
    if (c->closing || c->conn.down) {
        return;
    }
    if (c->goaway) {
        fail_list(c, &c->queued, CF_EIO, "the active node is closing the connection (GOAWAY)");
        return;
    }
    uint32_t max =
        nghttp2_session_get_remote_settings(c->conn.h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    while (c->queued.head != NULL && c->inflight.n < max) {
        struct fwd_req *r = c->queued.head;
        char cl[24];
        snprintf(cl, sizeof(cl), "%zu", r->body.len);
        const nghttp2_nv nva[] = {
            FWD_NV(":method", "POST"),
            FWD_NV(":scheme", "http"),
            FWD_NV(":authority", "coffer"),
            FWD_NV(":path", REPL_FWD_PATH),
            FWD_NV("content-type", REPL_FWD_CONTENT_TYPE),
            FWD_NV("content-length", cl),
        };
        nghttp2_data_provider dp = {.source.ptr = NULL, .read_callback = client_data_cb};
        int32_t id =
            nghttp2_submit_request(c->conn.h2, NULL, nva, sizeof(nva) / sizeof(nva[0]), &dp, r);
        if (id < 0) {
            req_fail(c, r, CF_EIO, "HTTP/2 submit: %s", nghttp2_strerror(id));
            if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
                c->goaway = true;
                fail_list(c, &c->queued, CF_EIO, "HTTP/2 stream ids exhausted");
            }
            continue;
        }
        list_remove(r);
        r->stream_id = id;
        list_push(&c->inflight, r);
    }
}

static void client_timer_cb(uv_timer_t *t);

static void client_rearm(struct repl_fwd_client *c, uint64_t deadline)
{
    if (deadline >= c->armed || c->closing) {
        return;
    }
    uint64_t now = uv_now(c->conn.loop);
    c->armed = deadline;
    uv_timer_start(&c->timer, client_timer_cb, deadline > now ? deadline - now : 0, 0);
}

static void expire_list(struct repl_fwd_client *c, struct fwd_list *l, uint64_t now)
{
    struct fwd_req *r = l->head;
    while (r != NULL) {
        struct fwd_req *next = r->next;
        if (r->deadline <= now) {
            if (r->stream_id > 0 && !c->conn.down) {
                nghttp2_submit_rst_stream(c->conn.h2, NGHTTP2_FLAG_NONE, r->stream_id,
                                          NGHTTP2_CANCEL);
            }
            req_fail(c, r, CF_ETIMEDOUT, "no answer from the active node within %u ms",
                     r->timeout_ms);
        }
        r = next;
    }
}

static uint64_t min_deadline(const struct fwd_list *l)
{
    uint64_t m = FWD_NO_DEADLINE;
    for (const struct fwd_req *r = l->head; r != NULL; r = r->next) {
        m = r->deadline < m ? r->deadline : m;
    }
    return m;
}

static void client_timer_cb(uv_timer_t *t)
{
    struct repl_fwd_client *c = CF_CONTAINER_OF(t, struct repl_fwd_client, timer);
    uint64_t now = uv_now(c->conn.loop);
    c->armed = FWD_NO_DEADLINE;
    expire_list(c, &c->queued, now);
    expire_list(c, &c->inflight, now);
    uint64_t q = min_deadline(&c->queued);
    uint64_t f = min_deadline(&c->inflight);
    client_rearm(c, q < f ? q : f);
    client_pump(c);
    conn_flush(&c->conn);
}

static void client_after_recv(struct fwd_conn *conn)
{
    struct repl_fwd_client *c = CF_CONTAINER_OF(conn, struct repl_fwd_client, conn);
    client_pump(c);
}

static void client_broken(struct fwd_conn *conn)
{
    struct repl_fwd_client *c = CF_CONTAINER_OF(conn, struct repl_fwd_client, conn);
    char why[CF_ERRMSG_SIZE];
    snprintf(why, sizeof(why), "connection to the active node broken: %s", conn->errmsg);
    fail_list(c, &c->inflight, CF_EIO, why);
    fail_list(c, &c->queued, CF_EIO, why);
    uv_timer_stop(&c->timer);
    c->armed = FWD_NO_DEADLINE;
}

static void client_closed(struct fwd_conn *conn)
{
    struct repl_fwd_client *c = CF_CONTAINER_OF(conn, struct repl_fwd_client, conn);
    c->handles_open--;
    client_maybe_destroy(c);
}

static const struct fwd_conn_ops client_ops = {
    .after_recv = client_after_recv,
    .broken = client_broken,
    .closed = client_closed,
};

int repl_fwd_client_new(uv_loop_t *loop,
                        uv_stream_t *stream,
                        void (*free_stream)(uv_handle_t *),
                        struct repl_fwd_client **out)
{
    struct repl_fwd_client *c = cf_calloc(1, sizeof(*c));
    nghttp2_session_callbacks *cbs = NULL;
    int rv = CF_ENOMEM;
    if (c == NULL || nghttp2_session_callbacks_new(&cbs) != 0) {
        goto err;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, client_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, client_data_chunk_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, client_frame_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, client_stream_close_cb);
    if (nghttp2_session_client_new(&c->conn.h2, cbs, c) != 0) {
        goto err;
    }
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, FWD_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, FWD_MAX_HEADER_LIST},
    };
    if (session_settings(c->conn.h2, iv, sizeof(iv) / sizeof(iv[0])) != CF_OK) {
        goto err;
    }
    c->armed = FWD_NO_DEADLINE;
    rv = conn_start(&c->conn, loop, stream, free_stream, &client_ops);
    if (rv != CF_OK) {
        goto err;
    }
    nghttp2_session_callbacks_del(cbs);
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->idle);
    c->timer.data = c;
    c->idle.data = c;
    c->handles_open = 3;
    *out = c;
    return CF_OK;
err:
    nghttp2_session_callbacks_del(cbs);
    if (c != NULL) {
        nghttp2_session_del(c->conn.h2);
        cf_free(c);
    }
    return rv;
}

int repl_fwd_client_send(struct repl_fwd_client *c,
                         const struct repl_fwd_request *req,
                         unsigned timeout_ms,
                         repl_fwd_done_cb cb,
                         void *arg)
{
    if (c->closing) {
        return CF_ECANCELED;
    }
    if (!repl_fwd_client_alive(c)) {
        return CF_EIO;
    }
    struct fwd_req *r = cf_calloc(1, sizeof(*r));
    if (r == NULL) {
        return CF_ENOMEM;
    }
    cf_buf_init(&r->body);
    cf_buf_init(&r->rx);
    int rv = repl_fwd_request_encode(req, &r->body);
    if (rv != CF_OK) {
        req_free(r);
        return rv;
    }
    r->cb = cb;
    r->arg = arg;
    r->timeout_ms = timeout_ms;
    r->deadline = timeout_ms > 0 ? uv_now(c->conn.loop) + timeout_ms : FWD_NO_DEADLINE;
    list_push(&c->queued, r);
    client_rearm(c, r->deadline);
    client_pump(c);
    conn_flush(&c->conn);
    return CF_OK;
}

bool repl_fwd_client_alive(const struct repl_fwd_client *c)
{
    return !c->closing && !c->conn.down && !c->goaway;
}

size_t repl_fwd_client_inflight(const struct repl_fwd_client *c)
{
    return c->queued.n + c->inflight.n;
}

void repl_fwd_client_close(struct repl_fwd_client *c)
{
    if (c == NULL || c->closing) {
        return;
    }
    fail_list(c, &c->inflight, CF_ECANCELED, "forwarding client closed");
    fail_list(c, &c->queued, CF_ECANCELED, "forwarding client closed");
    c->closing = true;
    uv_idle_stop(&c->idle);
    conn_shut(&c->conn, NGHTTP2_NO_ERROR);
    uv_close((uv_handle_t *)&c->timer, client_handle_close_cb);
    uv_close((uv_handle_t *)&c->idle, client_handle_close_cb);
}

/* Server ------------------------------------------------------------------------------------ */

struct fwd_call
{
    struct repl_fwd_call pub;
    struct repl_fwd_server *s; /* NULL once detached (connection gone) */
    struct fwd_call *prev;     /* in s->calls while attached */
    struct fwd_call *next;
    struct fwd_call *ready_next; /* in s->ready while waiting for dispatch */
    int32_t stream_id;
    struct cf_buf rx;  /* request body so far */
    struct cf_buf out; /* response body being sent */
    size_t out_off;
    int refuse;       /* -1 once answered without the handler */
    bool method_ok;   /* :method is POST */
    bool path_ok;     /* :path is REPL_FWD_PATH */
    bool ctype_ok;    /* content-type is application/msgpack */
    bool stream_open; /* nghttp2 still has the stream */
    bool in_ready;
    bool handler_owns; /* from dispatch until respond */
};

struct repl_fwd_server
{
    struct fwd_conn conn;
    repl_fwd_handler handler;
    void *arg;
    void (*closed_cb)(void *arg, struct repl_fwd_server *s);
    struct fwd_call *calls; /* attached calls */
    struct fwd_call *ready_head;
    struct fwd_call *ready_tail;
    bool closing;
};

static void call_unlink(struct fwd_call *x)
{
    struct repl_fwd_server *s = x->s;
    if (s == NULL) {
        return;
    }
    if (x->prev != NULL) {
        x->prev->next = x->next;
    } else {
        s->calls = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    }
    x->prev = x->next = NULL;
    x->s = NULL;
}

static void call_free(struct fwd_call *x)
{
    call_unlink(x);
    repl_fwd_request_free(&x->pub.req);
    cf_buf_close(&x->rx);
    cf_buf_close(&x->out);
    cf_free(x);
}

static ssize_t server_data_cb(nghttp2_session *s,
                              int32_t stream_id,
                              uint8_t *buf,
                              size_t length,
                              uint32_t *data_flags,
                              nghttp2_data_source *source,
                              void *ud)
{
    (void)source;
    (void)ud;
    struct fwd_call *x = nghttp2_session_get_stream_user_data(s, stream_id);
    if (x == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
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

/* Submits a response with x->out as the body. */
static void server_submit(struct repl_fwd_server *s, struct fwd_call *x, int status, const char *ct)
{
    char st[8];
    char cl[24];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(cl, sizeof(cl), "%zu", x->out.len);
    const nghttp2_nv nva[] = {
        FWD_NV(":status", st),
        FWD_NV("content-type", ct),
        FWD_NV("content-length", cl),
    };
    x->out_off = 0;
    nghttp2_data_provider dp = {.source.ptr = NULL, .read_callback = server_data_cb};
    if (nghttp2_submit_response(s->conn.h2, x->stream_id, nva, sizeof(nva) / sizeof(nva[0]),
                                x->out.len > 0 ? &dp : NULL) != 0) {
        nghttp2_submit_rst_stream(s->conn.h2, NGHTTP2_FLAG_NONE, x->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
}

static void server_text(struct repl_fwd_server *s, struct fwd_call *x, int status, const char *text)
{
    cf_buf_reset(&x->out);
    if (cf_buf_append_str(&x->out, text) != CF_OK || cf_buf_append_str(&x->out, "\n") != CF_OK) {
        cf_buf_reset(&x->out);
    }
    server_submit(s, x, status, "text/plain; charset=utf-8");
}

static int server_begin_headers_cb(nghttp2_session *ss, const nghttp2_frame *frame, void *ud)
{
    struct repl_fwd_server *s = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct fwd_call *x = cf_calloc(1, sizeof(*x));
    if (x == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    cf_buf_init(&x->rx);
    cf_buf_init(&x->out);
    x->stream_id = frame->hd.stream_id;
    x->stream_open = true;
    x->s = s;
    x->next = s->calls;
    if (s->calls != NULL) {
        s->calls->prev = x;
    }
    s->calls = x;
    nghttp2_session_set_stream_user_data(ss, frame->hd.stream_id, x);
    return 0;
}

static bool ctype_is_msgpack(const uint8_t *v, size_t len)
{
    size_t n = sizeof(REPL_FWD_CONTENT_TYPE) - 1;
    if (len < n || strncasecmp((const char *)v, REPL_FWD_CONTENT_TYPE, n) != 0) {
        return false;
    }
    return len == n || v[n] == ';' || v[n] == ' ';
}

static int server_header_cb(nghttp2_session *ss,
                            const nghttp2_frame *frame,
                            const uint8_t *name,
                            size_t namelen,
                            const uint8_t *value,
                            size_t valuelen,
                            uint8_t flags,
                            void *ud)
{
    (void)flags;
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct fwd_call *x = nghttp2_session_get_stream_user_data(ss, frame->hd.stream_id);
    if (x == NULL) {
        return 0;
    }
    if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        x->method_ok = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        size_t n = sizeof(REPL_FWD_PATH) - 1;
        x->path_ok = valuelen == n && memcmp(value, REPL_FWD_PATH, n) == 0;
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        x->ctype_ok = ctype_is_msgpack(value, valuelen);
    }
    return 0;
}

static int server_data_chunk_cb(nghttp2_session *ss,
                                uint8_t flags,
                                int32_t stream_id,
                                const uint8_t *data,
                                size_t len,
                                void *ud)
{
    (void)flags;
    struct repl_fwd_server *s = ud;
    struct fwd_call *x = nghttp2_session_get_stream_user_data(ss, stream_id);
    if (x == NULL || x->refuse != 0) {
        return 0;
    }
    /* Refused at once, without waiting for the rest of the body (which is then dropped). */
    if (len > REPL_FWD_MAX_MESSAGE - x->rx.len) {
        cf_buf_close(&x->rx);
        server_text(s, x, 413, "forwarded request too large");
        x->refuse = -1;
        return 0;
    }
    if (cf_buf_append(&x->rx, data, len) != CF_OK) {
        cf_buf_close(&x->rx);
        server_text(s, x, 503, "out of memory");
        x->refuse = -1;
    }
    return 0;
}

/* The request on x's stream has ended: refuse it or queue it for the handler. */
static void server_request_done(struct repl_fwd_server *s, struct fwd_call *x)
{
    if (x->in_ready || x->handler_owns || x->refuse < 0) {
        return;
    }
    if (!x->method_ok || !x->path_ok || !x->ctype_ok) {
        cf_buf_close(&x->rx);
        if (!x->method_ok || !x->path_ok) {
            server_text(s, x, 404, "not found: expected POST " REPL_FWD_PATH);
        } else {
            server_text(s, x, 415, "content-type must be " REPL_FWD_CONTENT_TYPE);
        }
        x->refuse = -1;
        return;
    }
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = repl_fwd_request_decode(x->rx.data, x->rx.len, &x->pub.req, errmsg);
    cf_buf_close(&x->rx);
    if (rv != CF_OK) {
        CF_LOG(CF_LOG_WARN, "refused a forwarded request: %s", errmsg);
        server_text(s, x, rv == CF_ENOMEM ? 503 : 400, errmsg);
        x->refuse = -1;
        return;
    }
    x->in_ready = true;
    x->ready_next = NULL;
    if (s->ready_tail != NULL) {
        s->ready_tail->ready_next = x;
    } else {
        s->ready_head = x;
    }
    s->ready_tail = x;
}

static int server_frame_recv_cb(nghttp2_session *ss, const nghttp2_frame *frame, void *ud)
{
    struct repl_fwd_server *s = ud;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
        return 0;
    }
    struct fwd_call *x = nghttp2_session_get_stream_user_data(ss, frame->hd.stream_id);
    if (x != NULL) {
        server_request_done(s, x);
    }
    return 0;
}

static int server_stream_close_cb(nghttp2_session *ss, int32_t stream_id, uint32_t code, void *ud)
{
    (void)code;
    (void)ud;
    struct fwd_call *x = nghttp2_session_get_stream_user_data(ss, stream_id);
    if (x == NULL) {
        return 0;
    }
    nghttp2_session_set_stream_user_data(ss, stream_id, NULL);
    x->stream_open = false;
    if (x->in_ready) {
        return 0; /* the dispatch loop frees it */
    }
    if (x->handler_owns) {
        call_unlink(x); /* detached: respond only frees it */
        return 0;
    }
    call_free(x);
    return 0;
}

/* Drops every call: those the handler holds are detached, the rest freed. */
static void server_drop_calls(struct repl_fwd_server *s)
{
    s->ready_head = s->ready_tail = NULL;
    while (s->calls != NULL) {
        struct fwd_call *x = s->calls;
        x->in_ready = false;
        if (x->handler_owns) {
            call_unlink(x);
        } else {
            call_free(x);
        }
    }
}

static void server_after_recv(struct fwd_conn *conn)
{
    struct repl_fwd_server *s = CF_CONTAINER_OF(conn, struct repl_fwd_server, conn);
    struct fwd_call *x;
    while (!s->closing && (x = s->ready_head) != NULL) {
        s->ready_head = x->ready_next;
        if (s->ready_head == NULL) {
            s->ready_tail = NULL;
        }
        x->ready_next = NULL;
        x->in_ready = false;
        if (!x->stream_open) {
            call_free(x);
            continue;
        }
        x->handler_owns = true;
        s->handler(s->arg, &x->pub);
    }
}

static void server_broken(struct fwd_conn *conn)
{
    struct repl_fwd_server *s = CF_CONTAINER_OF(conn, struct repl_fwd_server, conn);
    s->closing = true;
    server_drop_calls(s);
}

static void server_closed(struct fwd_conn *conn)
{
    struct repl_fwd_server *s = CF_CONTAINER_OF(conn, struct repl_fwd_server, conn);
    if (s->closed_cb != NULL) {
        s->closed_cb(s->arg, s);
    }
    nghttp2_session_del(s->conn.h2);
    cf_free(s);
}

static const struct fwd_conn_ops server_ops = {
    .after_recv = server_after_recv,
    .broken = server_broken,
    .closed = server_closed,
};

int repl_fwd_server_new(uv_loop_t *loop,
                        uv_stream_t *stream,
                        void (*free_stream)(uv_handle_t *),
                        repl_fwd_handler handler,
                        void *arg,
                        void (*closed_cb)(void *arg, struct repl_fwd_server *s),
                        struct repl_fwd_server **out)
{
    struct repl_fwd_server *s = cf_calloc(1, sizeof(*s));
    nghttp2_session_callbacks *cbs = NULL;
    int rv = CF_ENOMEM;
    if (s == NULL || nghttp2_session_callbacks_new(&cbs) != 0) {
        goto err;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, server_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, server_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, server_data_chunk_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, server_frame_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, server_stream_close_cb);
    if (nghttp2_session_server_new(&s->conn.h2, cbs, s) != 0) {
        goto err;
    }
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, FWD_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, FWD_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, FWD_MAX_HEADER_LIST},
    };
    if (session_settings(s->conn.h2, iv, sizeof(iv) / sizeof(iv[0])) != CF_OK) {
        goto err;
    }
    s->handler = handler;
    s->arg = arg;
    s->closed_cb = closed_cb;
    rv = conn_start(&s->conn, loop, stream, free_stream, &server_ops);
    if (rv != CF_OK) {
        goto err;
    }
    nghttp2_session_callbacks_del(cbs);
    *out = s;
    return CF_OK;
err:
    nghttp2_session_callbacks_del(cbs);
    if (s != NULL) {
        nghttp2_session_del(s->conn.h2);
        cf_free(s);
    }
    return rv;
}

void repl_fwd_call_respond(struct repl_fwd_call *call, const struct repl_fwd_response *resp)
{
    struct fwd_call *x = CF_CONTAINER_OF(call, struct fwd_call, pub);
    struct repl_fwd_server *s = x->s;
    x->handler_owns = false;
    if (s == NULL || !x->stream_open || s->closing) {
        call_free(x);
        return;
    }
    /* Encoded before the request is freed: resp may point into it. */
    cf_buf_reset(&x->out);
    int rv = repl_fwd_response_encode(resp, &x->out);
    repl_fwd_request_free(&x->pub.req);
    if (rv != CF_OK) {
        char text[CF_ERRMSG_SIZE];
        snprintf(text, sizeof(text), "encode forwarded response: %s", cf_strerror(rv));
        server_text(s, x, 500, text);
    } else {
        server_submit(s, x, 200, REPL_FWD_CONTENT_TYPE);
    }
    conn_flush(&s->conn);
}

void repl_fwd_server_close(struct repl_fwd_server *s)
{
    if (s == NULL || s->closing) {
        return;
    }
    s->closing = true;
    /* Shut first: the final GOAWAY write may still read a response body from a call. */
    conn_shut(&s->conn, NGHTTP2_NO_ERROR);
    server_drop_calls(s);
}
