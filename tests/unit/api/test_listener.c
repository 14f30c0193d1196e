/*
 * Listeners on a real libuv loop (api/listener.c, tls.c, http1.c, http2.c). The loop runs on
 * the test thread; a client thread talks to it over blocking sockets (plain, OpenSSL, or an
 * nghttp2 client session) and asks the loop for actions (answer held exchanges, close the
 * listener) through a uv_async. Every test ends with uv_loop_close(loop) == 0 and no live
 * allocations.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "api/http.h"
#include "lib/err.h"
#include "lib/mem.h"

enum {
    CMD_DONE = 1,
    CMD_RESPOND_HELD = 2,
    CMD_CLOSE_LISTENER = 4,
};

#define MAX_HELD 8

struct fx
{
    uv_loop_t loop;
    uv_async_t async;
    struct api_listener *l;
    struct api_listener_config cfg;
    int port;
    pthread_t th;
    void (*client)(struct fx *f);
    atomic_int cmds;
    atomic_int closed;     /* listener close callback ran */
    atomic_int handled;    /* requests seen by the handler */
    atomic_int held_count; /* exchanges held (read by the client) */
    struct api_exchange *held[MAX_HELD];
    size_t n_held;
    bool listener_closed;
    char dir[64]; /* TLS material */
    char cert[128];
    char key[128];
    char client_error[256]; /* assertion failures from the client thread */
};

static void client_fail(struct fx *f, const char *fmt, ...)
{
    if (f->client_error[0] != 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->client_error, sizeof(f->client_error), fmt, ap);
    va_end(ap);
}

#define CHECK(f, cond)                                                \
    do {                                                              \
        if (!(cond)) {                                                \
            client_fail((f), "%s:%d: %s", __FILE__, __LINE__, #cond); \
            return;                                                   \
        }                                                             \
    } while (0)

/* ---- the loop side ---- */

struct later
{
    uv_timer_t t;
    struct api_exchange *ex;
};

static void later_close_cb(uv_handle_t *h)
{
    cf_free(h->data);
}

static void echo_respond(struct api_exchange *ex, int status)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%s %s %.*s", ex->method, ex->target,
                     (int)(ex->body_len > 200 ? 200 : ex->body_len), (const char *)ex->body);
    const char *xh = api_exchange_header(ex, "X-Test");
    struct api_header h[2] = {{.name = "Content-Type", .value = "text/plain"},
                              {.name = "X-Echo", .value = (char *)(xh != NULL ? xh : "none")}};
    api_exchange_respond(ex, status, h, 2, (const uint8_t *)buf, (size_t)n);
}

static void later_cb(uv_timer_t *t)
{
    struct later *lt = t->data;
    echo_respond(lt->ex, 200);
    uv_close((uv_handle_t *)t, later_close_cb);
}

static void handler(void *ctx, struct api_exchange *ex)
{
    struct fx *f = ctx;
    atomic_fetch_add(&f->handled, 1);
    if (strncmp(ex->target, "/slow", 5) == 0) {
        struct later *lt = cf_calloc(1, sizeof(*lt));
        lt->ex = ex;
        uv_timer_init(&f->loop, &lt->t);
        lt->t.data = lt;
        uv_timer_start(&lt->t, later_cb, 100, 0);
        return;
    }
    if (strncmp(ex->target, "/hold", 5) == 0 && f->n_held < MAX_HELD) {
        f->held[f->n_held++] = ex;
        atomic_fetch_add(&f->held_count, 1);
        return;
    }
    if (strcmp(ex->target, "/peer") == 0) {
        char buf[128];
        int n = snprintf(buf, sizeof(buf), "%s %d %d %d", ex->remote_addr, ex->remote_port > 0,
                         ex->tls, ex->http_version);
        api_exchange_respond(ex, 200, NULL, 0, (const uint8_t *)buf, (size_t)n);
        return;
    }
    echo_respond(ex, 200);
}

static void listener_closed_cb(void *arg)
{
    struct fx *f = arg;
    atomic_store(&f->closed, 1);
}

static void respond_held(struct fx *f)
{
    for (size_t i = 0; i < f->n_held; i++) {
        echo_respond(f->held[i], 200);
    }
    f->n_held = 0;
}

static void async_cb(uv_async_t *a)
{
    struct fx *f = a->data;
    int cmds = atomic_exchange(&f->cmds, 0);
    if ((cmds & CMD_RESPOND_HELD) != 0) {
        respond_held(f);
    }
    if ((cmds & CMD_CLOSE_LISTENER) != 0 && !f->listener_closed) {
        f->listener_closed = true;
        api_listener_close(f->l, listener_closed_cb, f);
    }
    if ((cmds & CMD_DONE) != 0) {
        pthread_join(f->th, NULL);
        respond_held(f);
        if (!f->listener_closed) {
            f->listener_closed = true;
            api_listener_close(f->l, listener_closed_cb, f);
        }
        uv_close((uv_handle_t *)&f->async, NULL);
    }
}

static void post(struct fx *f, int cmd)
{
    atomic_fetch_or(&f->cmds, cmd);
    uv_async_send(&f->async);
}

static void *client_main(void *arg)
{
    struct fx *f = arg;
    f->client(f);
    post(f, CMD_DONE);
    return NULL;
}

/* Starts the listener described by f->cfg, runs the client thread against it until it is
 * done, closes everything and checks that nothing leaked. */
static void run(struct fx *f, void (*client)(struct fx *f))
{
    long live = cf_mem_live();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = api_listener_new(&f->loop, &f->cfg, handler, f, &f->l, errmsg);
    if (rv != CF_OK) {
        fail_msg("api_listener_new: %s", errmsg);
    }
    f->port = api_listener_port(f->l);
    assert_true(f->port > 0);
    f->async.data = f;
    assert_int_equal(uv_async_init(&f->loop, &f->async, async_cb), 0);
    f->client = client;
    assert_int_equal(pthread_create(&f->th, NULL, client_main, f), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(atomic_load(&f->closed), 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->client_error[0] != 0) {
        fail_msg("client: %s", f->client_error);
    }
    assert_int_equal(cf_mem_live(), live);
}

static void plain_cfg(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    f->cfg.address = "127.0.0.1:0";
    f->cfg.tls_disable = true;
}

/* ---- blocking client helpers ---- */

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return false;
        }
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

struct resp
{
    int status;
    char head[2048];
    char body[4096];
    size_t body_len;
    bool close;
};

/* Buffered reader over a plain socket or an SSL connection. */
struct reader
{
    int fd;
    SSL *ssl;
    char buf[8192];
    size_t len;
};

static ssize_t reader_fill(struct reader *r)
{
    if (r->len == sizeof(r->buf)) {
        return -1;
    }
    ssize_t n;
    if (r->ssl != NULL) {
        int k = SSL_read(r->ssl, r->buf + r->len, (int)(sizeof(r->buf) - r->len));
        n = k > 0 ? k : 0;
    } else {
        n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
    }
    if (n > 0) {
        r->len += (size_t)n;
    }
    return n;
}

/* Reads one HTTP/1.1 response; false on EOF or timeout before a whole one arrived. */
static bool read_resp(struct reader *r, struct resp *out, bool head_request)
{
    memset(out, 0, sizeof(*out));
    char *end;
    for (;;) {
        r->buf[r->len < sizeof(r->buf) ? r->len : sizeof(r->buf) - 1] = 0;
        end = r->len > 0 ? memmem(r->buf, r->len, "\r\n\r\n", 4) : NULL;
        if (end != NULL) {
            break;
        }
        if (reader_fill(r) <= 0) {
            return false;
        }
    }
    size_t hlen = (size_t)(end - r->buf) + 4;
    if (hlen >= sizeof(out->head)) {
        return false;
    }
    memcpy(out->head, r->buf, hlen);
    out->head[hlen] = 0;
    out->status = atoi(out->head + 9);
    const char *cl = strcasestr(out->head, "\r\nContent-Length: ");
    size_t blen = cl != NULL ? (size_t)strtoul(cl + 18, NULL, 10) : 0;
    if (head_request) {
        blen = 0;
    }
    out->close = strcasestr(out->head, "\r\nConnection: close") != NULL;
    while (r->len < hlen + blen) {
        if (reader_fill(r) <= 0) {
            return false;
        }
    }
    if (blen >= sizeof(out->body)) {
        return false;
    }
    memcpy(out->body, r->buf + hlen, blen);
    out->body[blen] = 0;
    out->body_len = blen;
    memmove(r->buf, r->buf + hlen + blen, r->len - hlen - blen);
    r->len -= hlen + blen;
    return true;
}

static bool at_eof(struct reader *r)
{
    return r->len == 0 && reader_fill(r) == 0;
}

/* ---- HTTP/1.1 ---- */

static void client_keepalive(struct fx *f)
{
    int fd = connect_to(f->port);
    CHECK(f, fd >= 0);
    struct reader r = {.fd = fd};
    struct resp res;
    CHECK(f, send_str(fd, "GET /v1/one HTTP/1.1\r\nHost: x\r\nX-Test: t1\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 200);
    CHECK(f, strcmp(res.body, "GET /v1/one ") == 0);
    CHECK(f, strstr(res.head, "X-Echo: t1\r\n") != NULL);
    CHECK(f, strstr(res.head, "Date: ") != NULL);
    CHECK(f, !res.close);
    /* Same connection, second request with a body, then LIST. */
    CHECK(f, send_str(fd, "POST /v1/two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 200);
    CHECK(f, strcmp(res.body, "POST /v1/two hello") == 0);
    CHECK(f, send_str(fd, "LIST /v1/secret/ HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, strcmp(res.body, "LIST /v1/secret/ ") == 0);
    /* HEAD: Content-Length of the body, no body. */
    CHECK(f, send_str(fd, "HEAD /v1/h HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, true));
    CHECK(f, strstr(res.head, "Content-Length: 11\r\n") != NULL);
    CHECK(f, send_str(fd, "GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, strcmp(res.body, "127.0.0.1 1 0 11") == 0);
    CHECK(f, res.close);
    CHECK(f, at_eof(&r));
    close(fd);
    CHECK(f, atomic_load(&f->handled) == 5);
}

static void test_keepalive(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_keepalive);
}

static void client_pipeline(struct fx *f)
{
    int fd = connect_to(f->port);
    CHECK(f, fd >= 0);
    struct reader r = {.fd = fd};
    struct resp res;
    /* The first is answered 100 ms after the second: responses must keep request order. */
    CHECK(f, send_str(fd,
                      "GET /slow1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /slow2 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /last HTTP/1.0\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, strcmp(res.body, "GET /slow1 ") == 0);
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, strcmp(res.body, "GET /fast ") == 0);
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, strcmp(res.body, "GET /slow2 ") == 0);
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, strcmp(res.body, "GET /last ") == 0);
    CHECK(f, res.close); /* HTTP/1.0 without keep-alive */
    CHECK(f, at_eof(&r));
    close(fd);
}

static void test_pipeline_order(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_pipeline);
}

static void client_limits(struct fx *f)
{
    struct resp res;
    /* Body over max_request_size: 413, Vault's JSON, then close. */
    int fd = connect_to(f->port);
    CHECK(f, fd >= 0);
    struct reader r = {.fd = fd};
    CHECK(f, send_str(fd, "PUT /v1/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"));
    CHECK(f, send_all(fd,
                      "0123456789012345678901234567890123456789012345678901234567890123456789"
                      "012345678901234567890123456789",
                      100));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 413);
    CHECK(f, strcmp(res.body, "{\"errors\":[\"http: request body too large\"]}") == 0);
    CHECK(f, strstr(res.head, "Content-Type: application/json\r\n") != NULL);
    CHECK(f, res.close);
    CHECK(f, at_eof(&r));
    close(fd);

    /* Within the limit on a fresh connection. */
    fd = connect_to(f->port);
    r = (struct reader){.fd = fd};
    CHECK(f, send_str(fd, "PUT /v1/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 200);
    /* Then a chunked body that grows past the limit on the same connection. */
    CHECK(f, send_str(fd,
                      "PUT /v1/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "20\r\n01234567890123456789012345678901\r\n"
                      "20\r\n01234567890123456789012345678901\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 413);
    CHECK(f, at_eof(&r));
    close(fd);

    /* Header block over max_header_size: 431. */
    fd = connect_to(f->port);
    r = (struct reader){.fd = fd};
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    char req[800];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %s\r\n\r\n", big);
    CHECK(f, send_str(fd, req));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 431);
    CHECK(f, strcmp(res.body, "{\"errors\":[\"request header fields too large\"]}") == 0);
    CHECK(f, at_eof(&r));
    close(fd);

    /* Malformed: 400 after the responses already owed. */
    fd = connect_to(f->port);
    r = (struct reader){.fd = fd};
    CHECK(f, send_str(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 200);
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 400);
    CHECK(f, strcmp(res.body, "{\"errors\":[\"malformed request\"]}") == 0);
    CHECK(f, res.close);
    CHECK(f, at_eof(&r));
    close(fd);
}

static void test_limits(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    f.cfg.max_request_size = 50;
    f.cfg.max_header_size = 512;
    run(&f, client_limits);
}

static void client_slow(struct fx *f)
{
    struct resp res;
    /* A client that sends half a request and stalls. */
    int stalled = connect_to(f->port);
    CHECK(f, stalled >= 0);
    CHECK(f, send_str(stalled, "GET /v1/half HTTP/1.1\r\nHost: x\r\n"));
    /* Meanwhile others are served. */
    for (int i = 0; i < 3; i++) {
        int fd = connect_to(f->port);
        struct reader r = {.fd = fd};
        CHECK(f, send_str(fd, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"));
        CHECK(f, read_resp(&r, &res, false));
        CHECK(f, res.status == 200);
        close(fd);
    }
    struct reader r = {.fd = stalled};
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 408);
    CHECK(f, strcmp(res.body, "{\"errors\":[\"request timeout\"]}") == 0);
    CHECK(f, at_eof(&r));
    close(stalled);

    /* An idle keep-alive connection is closed after idle_timeout. */
    int fd = connect_to(f->port);
    r = (struct reader){.fd = fd};
    CHECK(f, send_str(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, at_eof(&r));
    close(fd);

    /* A connection that never sends anything is closed at read_header_timeout. */
    fd = connect_to(f->port);
    r = (struct reader){.fd = fd};
    CHECK(f, at_eof(&r));
    close(fd);
}

static void test_slow_clients(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    f.cfg.read_header_timeout_ms = 300;
    f.cfg.idle_timeout_ms = 300;
    run(&f, client_slow);
}

static void client_graceful(struct fx *f)
{
    int fd = connect_to(f->port);
    CHECK(f, fd >= 0);
    struct reader r = {.fd = fd};
    struct resp res;
    int idle = connect_to(f->port);
    CHECK(f, idle >= 0);
    CHECK(f, send_str(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
    for (int i = 0; i < 500 && atomic_load(&f->held_count) < 1; i++) {
        usleep(2000);
    }
    CHECK(f, atomic_load(&f->held_count) == 1);
    post(f, CMD_CLOSE_LISTENER);
    /* The idle connection is closed at once; the busy one after its response. */
    struct reader ri = {.fd = idle};
    CHECK(f, at_eof(&ri));
    close(idle);
    usleep(50000);
    CHECK(f, connect_to(f->port) < 0);
    post(f, CMD_RESPOND_HELD);
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 200);
    CHECK(f, strcmp(res.body, "GET /hold ") == 0);
    CHECK(f, res.close);
    CHECK(f, at_eof(&r));
    close(fd);
}

static void test_graceful_close(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_graceful);
}

static void client_gone(struct fx *f)
{
    int fd = connect_to(f->port);
    CHECK(f, fd >= 0);
    CHECK(f, send_str(fd,
                      "GET /hold1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /hold2 HTTP/1.1\r\nHost: x\r\n\r\n"));
    for (int i = 0; i < 500 && atomic_load(&f->held_count) < 2; i++) {
        usleep(2000);
    }
    CHECK(f, atomic_load(&f->held_count) == 2);
    close(fd);
    usleep(100000); /* the server notices and detaches both exchanges */
    post(f, CMD_RESPOND_HELD);
    usleep(50000);
    /* Still serving. */
    fd = connect_to(f->port);
    struct reader r = {.fd = fd};
    struct resp res;
    CHECK(f, send_str(fd, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(f, read_resp(&r, &res, false));
    CHECK(f, res.status == 200);
    close(fd);
}

static void test_client_gone(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_gone);
}

/* ---- HTTP/2 with prior knowledge (h2c) ---- */

struct h2c
{
    int fd;
    SSL *ssl;
    int32_t ids[8];
    int status[8];
    char body[8][256];
    size_t body_len[8];
    int closed[8];
    uint32_t error[8];
    int n;
    const char *upload;
    size_t upload_len;
    size_t upload_off;
};

static int h2c_slot(struct h2c *h, int32_t id)
{
    for (int i = 0; i < h->n; i++) {
        if (h->ids[i] == id) {
            return i;
        }
    }
    return -1;
}

static ssize_t h2c_send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)s;
    (void)flags;
    struct h2c *h = ud;
    if (h->ssl != NULL) {
        return SSL_write(h->ssl, data, (int)len) > 0 ? (ssize_t)len : NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return send_all(h->fd, data, len) ? (ssize_t)len : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int h2c_header_cb(nghttp2_session *s,
                         const nghttp2_frame *frame,
                         const uint8_t *name,
                         size_t namelen,
                         const uint8_t *value,
                         size_t valuelen,
                         uint8_t flags,
                         void *ud)
{
    (void)s;
    (void)flags;
    (void)valuelen;
    struct h2c *h = ud;
    int i = h2c_slot(h, frame->hd.stream_id);
    if (i >= 0 && namelen == 7 && memcmp(name, ":status", 7) == 0) {
        h->status[i] = atoi((const char *)value);
    }
    return 0;
}

static int h2c_data_cb(nghttp2_session *s,
                       uint8_t flags,
                       int32_t id,
                       const uint8_t *data,
                       size_t len,
                       void *ud)
{
    (void)s;
    (void)flags;
    struct h2c *h = ud;
    int i = h2c_slot(h, id);
    if (i >= 0 && h->body_len[i] + len < sizeof(h->body[i])) {
        memcpy(h->body[i] + h->body_len[i], data, len);
        h->body_len[i] += len;
    }
    return 0;
}

static int h2c_close_cb(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
    (void)s;
    struct h2c *h = ud;
    int i = h2c_slot(h, id);
    if (i >= 0) {
        h->closed[i] = 1;
        h->error[i] = err;
    }
    return 0;
}

static ssize_t h2c_upload_cb(nghttp2_session *s,
                             int32_t id,
                             uint8_t *buf,
                             size_t length,
                             uint32_t *flags,
                             nghttp2_data_source *src,
                             void *ud)
{
    (void)s;
    (void)id;
    (void)src;
    struct h2c *h = ud;
    size_t n = h->upload_len - h->upload_off;
    if (n > length) {
        n = length;
    }
    memcpy(buf, h->upload + h->upload_off, n);
    h->upload_off += n;
    if (h->upload_off == h->upload_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static nghttp2_session *h2c_new(struct h2c *h)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, h2c_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2c_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2c_data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2c_close_cb);
    nghttp2_session *s = NULL;
    nghttp2_session_client_new(&s, cbs, h);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
    return s;
}

#define NV(n, v)                                                                       \
    {                                                                                  \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE \
    }

static int32_t h2c_request(nghttp2_session *s, struct h2c *h, const char *method, const char *path)
{
    nghttp2_nv nva[] = {NV(":method", method), NV(":path", path), NV(":scheme", "http"),
                        NV(":authority", "example"), NV("x-test", "h2")};
    int32_t id = nghttp2_submit_request(s, NULL, nva, sizeof(nva) / sizeof(nva[0]), NULL, NULL);
    h->ids[h->n++] = id;
    return id;
}

static int32_t h2c_post(nghttp2_session *s,
                        struct h2c *h,
                        const char *path,
                        const char *body,
                        size_t len)
{
    nghttp2_nv nva[] = {NV(":method", "POST"), NV(":path", path), NV(":scheme", "http"),
                        NV(":authority", "example")};
    h->upload = body;
    h->upload_len = len;
    h->upload_off = 0;
    nghttp2_data_provider dp = {.read_callback = h2c_upload_cb};
    int32_t id = nghttp2_submit_request(s, NULL, nva, sizeof(nva) / sizeof(nva[0]), &dp, NULL);
    h->ids[h->n++] = id;
    return id;
}

/* Exchanges frames until stream slot i is closed; false on error or timeout. */
static bool h2c_wait(nghttp2_session *s, struct h2c *h, int i)
{
    while (!h->closed[i]) {
        if (nghttp2_session_send(s) != 0) {
            return false;
        }
        uint8_t buf[16384];
        ssize_t n;
        if (h->ssl != NULL) {
            int k = SSL_read(h->ssl, buf, sizeof(buf));
            n = k > 0 ? k : 0;
        } else {
            n = recv(h->fd, buf, sizeof(buf), 0);
        }
        if (n <= 0) {
            return false;
        }
        if (nghttp2_session_mem_recv(s, buf, (size_t)n) < 0) {
            return false;
        }
    }
    return nghttp2_session_send(s) == 0;
}

static void client_h2c(struct fx *f)
{
    struct h2c h = {.fd = connect_to(f->port)};
    CHECK(f, h.fd >= 0);
    nghttp2_session *s = h2c_new(&h);
    h2c_request(s, &h, "GET", "/v1/h2");
    h2c_request(s, &h, "GET", "/peer");
    h2c_request(s, &h, "LIST", "/v1/secret/");
    bool ok = h2c_wait(s, &h, 0) && h2c_wait(s, &h, 1) && h2c_wait(s, &h, 2);
    if (ok) {
        h2c_post(s, &h, "/v1/post", "payload", 7);
        ok = h2c_wait(s, &h, 3);
    }
    nghttp2_session_del(s);
    close(h.fd);
    CHECK(f, ok);
    CHECK(f, h.status[0] == 200);
    CHECK(f, strcmp(h.body[0], "GET /v1/h2 ") == 0);
    CHECK(f, strcmp(h.body[1], "127.0.0.1 1 0 20") == 0);
    CHECK(f, strcmp(h.body[2], "LIST /v1/secret/ ") == 0);
    CHECK(f, h.status[3] == 200);
    CHECK(f, strcmp(h.body[3], "POST /v1/post payload") == 0);
}

static void test_h2c(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_h2c);
}

/* Responses made outside the read callback (here four held streams answered in one loop turn,
 * as worker completions are) leave at the end of that turn; each reaches its stream, and the
 * connection answers later requests the same way. */
static void client_h2c_batch(struct fx *f)
{
    struct h2c h = {.fd = connect_to(f->port)};
    CHECK(f, h.fd >= 0);
    nghttp2_session *s = h2c_new(&h);
    for (int k = 0; k < 4; k++) {
        char path[16];
        snprintf(path, sizeof(path), "/hold%d", k);
        h2c_request(s, &h, "GET", path);
    }
    bool ok = nghttp2_session_send(s) == 0;
    for (int i = 0; ok && i < 500 && atomic_load(&f->held_count) < 4; i++) {
        usleep(2000);
    }
    ok = ok && atomic_load(&f->held_count) == 4;
    if (ok) {
        post(f, CMD_RESPOND_HELD);
        for (int k = 0; ok && k < 4; k++) {
            ok = h2c_wait(s, &h, k);
        }
    }
    for (int round = 0; ok && round < 2; round++) {
        h2c_request(s, &h, "GET", round == 0 ? "/hold4" : "/hold5");
        ok = nghttp2_session_send(s) == 0;
        for (int i = 0; ok && i < 500 && atomic_load(&f->held_count) < 5 + round; i++) {
            usleep(2000);
        }
        if (ok) {
            post(f, CMD_RESPOND_HELD);
            ok = h2c_wait(s, &h, 4 + round);
        }
    }
    nghttp2_session_del(s);
    close(h.fd);
    CHECK(f, ok);
    for (int k = 0; k < 6; k++) {
        char want[32];
        snprintf(want, sizeof(want), "GET /hold%d ", k);
        CHECK(f, h.status[k] == 200);
        CHECK(f, strcmp(h.body[k], want) == 0);
    }
}

static void test_h2c_batch(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_h2c_batch);
}

static void client_h2c_limits(struct fx *f)
{
    struct h2c h = {.fd = connect_to(f->port)};
    CHECK(f, h.fd >= 0);
    nghttp2_session *s = h2c_new(&h);
    static char big[200];
    memset(big, 'b', sizeof(big));
    h2c_post(s, &h, "/v1/big", big, sizeof(big));
    bool ok = h2c_wait(s, &h, 0);
    /* A stream reset before the handler answers: the exchange is detached. */
    int32_t id = 0;
    if (ok) {
        id = h2c_request(s, &h, "GET", "/hold");
        ok = nghttp2_session_send(s) == 0;
    }
    for (int i = 0; ok && i < 500 && atomic_load(&f->held_count) < 1; i++) {
        usleep(2000);
    }
    if (ok && atomic_load(&f->held_count) == 1) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        ok = nghttp2_session_send(s) == 0;
        usleep(100000);
        post(f, CMD_RESPOND_HELD);
        usleep(50000);
        h2c_request(s, &h, "GET", "/after");
        ok = ok && h2c_wait(s, &h, 2);
    }
    nghttp2_session_del(s);
    close(h.fd);
    CHECK(f, ok);
    CHECK(f, atomic_load(&f->held_count) == 1);
    CHECK(f, h.status[0] == 413);
    CHECK(f, strcmp(h.body[0], "{\"errors\":[\"http: request body too large\"]}") == 0);
    CHECK(f, h.status[2] == 200);
    CHECK(f, strcmp(h.body[2], "GET /after ") == 0);
}

static void test_h2c_limits(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    f.cfg.max_request_size = 100;
    run(&f, client_h2c_limits);
}

/* Bodies held by one connection are capped at twice max_request_size (100 here): two held
 * 90-byte uploads fit, a third stream is refused with REFUSED_STREAM, and once the held ones
 * are answered the connection takes uploads again. */
static void client_h2c_conn_cap(struct fx *f)
{
    struct h2c h = {.fd = connect_to(f->port)};
    CHECK(f, h.fd >= 0);
    nghttp2_session *s = h2c_new(&h);
    static char body[90];
    memset(body, 'c', sizeof(body));
    bool ok = true;
    for (int k = 0; ok && k < 2; k++) {
        h2c_post(s, &h, "/hold", body, sizeof(body));
        ok = nghttp2_session_send(s) == 0;
        for (int i = 0; ok && i < 500 && atomic_load(&f->held_count) < k + 1; i++) {
            usleep(2000);
        }
        ok = ok && atomic_load(&f->held_count) == k + 1;
    }
    if (ok) {
        h2c_post(s, &h, "/v1/third", body, sizeof(body));
        ok = h2c_wait(s, &h, 2);
    }
    if (ok) {
        post(f, CMD_RESPOND_HELD);
        ok = h2c_wait(s, &h, 0) && h2c_wait(s, &h, 1);
    }
    if (ok) {
        h2c_post(s, &h, "/v1/fourth", body, sizeof(body));
        ok = h2c_wait(s, &h, 3);
    }
    nghttp2_session_del(s);
    close(h.fd);
    CHECK(f, ok);
    CHECK(f, h.error[2] == NGHTTP2_REFUSED_STREAM);
    CHECK(f, h.status[2] == 0);
    CHECK(f, h.status[0] == 200 && h.status[1] == 200);
    CHECK(f, h.status[3] == 200);
}

static void test_h2c_conn_cap(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    f.cfg.max_request_size = 100;
    run(&f, client_h2c_conn_cap);
}

static void client_h2_drain(struct fx *f)
{
    struct h2c h = {.fd = connect_to(f->port)};
    CHECK(f, h.fd >= 0);
    nghttp2_session *s = h2c_new(&h);
    h2c_request(s, &h, "GET", "/hold");
    bool ok = nghttp2_session_send(s) == 0;
    for (int i = 0; ok && i < 500 && atomic_load(&f->held_count) < 1; i++) {
        usleep(2000);
    }
    post(f, CMD_CLOSE_LISTENER);
    usleep(50000);
    post(f, CMD_RESPOND_HELD);
    ok = ok && h2c_wait(s, &h, 0);
    /* After GOAWAY and the last stream, the server closes the connection. */
    uint8_t buf[1024];
    ssize_t n = 1;
    while (ok && n > 0) {
        n = recv(h.fd, buf, sizeof(buf), 0);
        if (n > 0 && nghttp2_session_mem_recv(s, buf, (size_t)n) < 0) {
            ok = false;
        }
    }
    nghttp2_session_del(s);
    close(h.fd);
    CHECK(f, ok);
    CHECK(f, n == 0);
    CHECK(f, h.status[0] == 200);
    CHECK(f, strcmp(h.body[0], "GET /hold ") == 0);
}

static void test_h2_drain(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_h2_drain);
}

static void client_grace_expiry(struct fx *f)
{
    int fd = connect_to(f->port);
    CHECK(f, fd >= 0);
    CHECK(f, send_str(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
    for (int i = 0; i < 500 && atomic_load(&f->held_count) < 1; i++) {
        usleep(2000);
    }
    CHECK(f, atomic_load(&f->held_count) == 1);
    post(f, CMD_CLOSE_LISTENER);
    /* The handler never answers: the connection is closed when the grace period ends, and
     * the listener is released; the late answer (at CMD_DONE) only frees the exchange. */
    struct reader r = {.fd = fd};
    CHECK(f, at_eof(&r));
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&f->closed) == 0; i++) {
        usleep(2000);
    }
    CHECK(f, atomic_load(&f->closed) == 1);
}

static void test_grace_expiry(void **state)
{
    (void)state;
    struct fx f;
    plain_cfg(&f);
    run(&f, client_grace_expiry);
}

/* ---- TLS ---- */

static void write_self_signed(struct fx *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/cf_listener_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pkey);
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, pkey);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *fp = fopen(f->cert, "w");
    assert_non_null(fp);
    PEM_write_X509(fp, x);
    fclose(fp);
    fp = fopen(f->key, "w");
    assert_non_null(fp);
    PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL);
    fclose(fp);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void remove_self_signed(struct fx *f)
{
    unlink(f->cert);
    unlink(f->key);
    rmdir(f->dir);
}

/* Connects with TLS offering the given ALPN list; the caller frees ssl and ctx. */
static SSL *tls_connect(struct fx *f,
                        const unsigned char *alpn,
                        unsigned alpn_len,
                        SSL_CTX **ctx_out,
                        int *fd_out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, f->cert, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int fd = connect_to(f->port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_alpn_protos(ssl, alpn, alpn_len);
    *ctx_out = ctx;
    *fd_out = fd;
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        close(fd);
        *ctx_out = NULL;
        return NULL;
    }
    return ssl;
}

static void client_tls(struct fx *f)
{
    SSL_CTX *ctx = NULL;
    int fd = -1;
    /* h2 offered first: negotiated, and a request over it works. */
    SSL *ssl = tls_connect(f, (const unsigned char *)"\x02h2\x08http/1.1", 12, &ctx, &fd);
    CHECK(f, ssl != NULL);
    const unsigned char *sel = NULL;
    unsigned sel_len = 0;
    SSL_get0_alpn_selected(ssl, &sel, &sel_len);
    bool h2 = sel_len == 2 && memcmp(sel, "h2", 2) == 0;
    struct h2c h = {.fd = fd, .ssl = ssl};
    bool ok = false;
    if (h2) {
        nghttp2_session *s = h2c_new(&h);
        h2c_request(s, &h, "GET", "/peer");
        ok = h2c_wait(s, &h, 0);
        nghttp2_session_del(s);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    CHECK(f, h2);
    CHECK(f, ok);
    CHECK(f, strcmp(h.body[0], "127.0.0.1 1 1 20") == 0);

    /* Only http/1.1 offered: HTTP/1.1 over TLS, keep-alive. */
    ssl = tls_connect(f, (const unsigned char *)"\x08http/1.1", 9, &ctx, &fd);
    CHECK(f, ssl != NULL);
    SSL_get0_alpn_selected(ssl, &sel, &sel_len);
    bool h1 = sel_len == 8 && memcmp(sel, "http/1.1", 8) == 0;
    struct reader r = {.fd = fd, .ssl = ssl};
    struct resp res1 = {0};
    struct resp res2 = {0};
    const char *req = "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n";
    ok = SSL_write(ssl, req, (int)strlen(req)) > 0 && read_resp(&r, &res1, false) &&
         SSL_write(ssl, "POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 42) > 0 &&
         read_resp(&r, &res2, false);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    CHECK(f, h1);
    CHECK(f, ok);
    CHECK(f, strcmp(res1.body, "127.0.0.1 1 1 11") == 0);
    CHECK(f, strcmp(res2.body, "POST /p hi") == 0);

    /* No ALPN at all: the first bytes decide (HTTP/1.1 here). */
    ssl = tls_connect(f, (const unsigned char *)"", 0, &ctx, &fd);
    CHECK(f, ssl != NULL);
    r = (struct reader){.fd = fd, .ssl = ssl};
    ok = SSL_write(ssl, req, (int)strlen(req)) > 0 && read_resp(&r, &res1, false);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    CHECK(f, ok);
    CHECK(f, res1.status == 200);

    /* Plain HTTP to a TLS port is refused without a response. */
    fd = connect_to(f->port);
    r = (struct reader){.fd = fd};
    CHECK(f, send_str(fd, req));
    CHECK(f, at_eof(&r));
    close(fd);
}

static void test_tls(void **state)
{
    (void)state;
    struct fx f;
    memset(&f, 0, sizeof(f));
    write_self_signed(&f);
    f.cfg.address = "127.0.0.1:0";
    f.cfg.tls_cert_file = f.cert;
    f.cfg.tls_key_file = f.key;
    run(&f, client_tls);
    remove_self_signed(&f);
}

static void client_tls13(struct fx *f)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    int fd = connect_to(f->port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    int r = SSL_connect(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    CHECK(f, r != 1);
}

static void test_tls_min_version(void **state)
{
    (void)state;
    struct fx f;
    memset(&f, 0, sizeof(f));
    write_self_signed(&f);
    f.cfg.address = "127.0.0.1:0";
    f.cfg.tls_cert_file = f.cert;
    f.cfg.tls_key_file = f.key;
    f.cfg.tls_min_version = 13;
    run(&f, client_tls13);
    remove_self_signed(&f);
}

/* ---- configuration errors and reload ---- */

static void noop_handler(void *ctx, struct api_exchange *ex)
{
    (void)ctx;
    api_exchange_respond(ex, 204, NULL, 0, NULL, 0);
}

static void expect_new_fails(uv_loop_t *loop,
                             const struct api_listener_config *cfg,
                             int code,
                             const char *needle)
{
    struct api_listener *l = (struct api_listener *)1;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(api_listener_new(loop, cfg, noop_handler, NULL, &l, errmsg), code);
    assert_null(l);
    if (strstr(errmsg, needle) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", errmsg, needle);
    }
}

static void closed_flag_cb(void *arg)
{
    *(int *)arg = 1;
}

static void test_config_errors(void **state)
{
    (void)state;
    struct fx f;
    memset(&f, 0, sizeof(f));
    write_self_signed(&f);
    long live = cf_mem_live();
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct api_listener_config cfg = {.address = "127.0.0.1", .tls_disable = true};
    expect_new_fails(&loop, &cfg, CF_EINVAL, "expected host:port");
    cfg.address = "127.0.0.1:99999";
    expect_new_fails(&loop, &cfg, CF_EINVAL, "bad port");
    cfg.address = "example.com:8200";
    expect_new_fails(&loop, &cfg, CF_EINVAL, "host must be an IP address");
    cfg.address = "[::1:8200";
    expect_new_fails(&loop, &cfg, CF_EINVAL, "host must be an IP address");

    /* Port in use. */
    struct api_listener *l = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    cfg.address = "127.0.0.1:0";
    assert_int_equal(api_listener_new(&loop, &cfg, noop_handler, NULL, &l, errmsg), CF_OK);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", api_listener_port(l));
    cfg.address = addr;
    expect_new_fails(&loop, &cfg, CF_EBUSY, "address already in use");
    /* Reload on a plain listener is refused. */
    assert_int_equal(api_listener_reload_tls(l, errmsg), CF_EINVAL);
    assert_non_null(strstr(errmsg, "TLS is disabled"));
    int closed = 0;
    api_listener_close(l, closed_flag_cb, &closed);
    assert_int_equal(closed, 0); /* never from inside the call */

    /* TLS material. */
    struct api_listener_config tcfg = {.address = "127.0.0.1:0"};
    expect_new_fails(&loop, &tcfg, CF_EINVAL, "tls_cert_file and tls_key_file are required");
    tcfg.tls_cert_file = "/nonexistent/cert.pem";
    tcfg.tls_key_file = f.key;
    expect_new_fails(&loop, &tcfg, CF_ECRYPTO, "load certificate /nonexistent/cert.pem");
    tcfg.tls_cert_file = f.cert;
    tcfg.tls_key_file = f.cert;
    expect_new_fails(&loop, &tcfg, CF_ECRYPTO, "load key");
    tcfg.tls_key_file = f.key;
    tcfg.tls_min_version = 11;
    expect_new_fails(&loop, &tcfg, CF_EINVAL, "tls_min_version 11");

    /* Reload: a broken file is refused and the old context stays; a good one is taken. */
    tcfg.tls_min_version = 0;
    assert_int_equal(api_listener_new(&loop, &tcfg, noop_handler, NULL, &l, errmsg), CF_OK);
    FILE *fp = fopen(f.cert, "r");
    char pem[4096];
    size_t pem_len = fread(pem, 1, sizeof(pem), fp);
    fclose(fp);
    fp = fopen(f.cert, "w");
    fputs("not a certificate\n", fp);
    fclose(fp);
    assert_int_equal(api_listener_reload_tls(l, errmsg), CF_ECRYPTO);
    assert_non_null(strstr(errmsg, "reload TLS: load certificate"));
    fp = fopen(f.cert, "w");
    fwrite(pem, 1, pem_len, fp);
    fclose(fp);
    assert_int_equal(api_listener_reload_tls(l, errmsg), CF_OK);
    int closed2 = 0;
    api_listener_close(l, closed_flag_cb, &closed2);
    api_listener_close(NULL, closed_flag_cb, &closed2);

    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(closed, 1);
    assert_int_equal(closed2, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(cf_mem_live(), live);
    remove_self_signed(&f);
}

/* api_listener_new under allocation failures: every failure is reported and cleaned up. */
static void test_new_alloc_failures(void **state)
{
    (void)state;
    struct fx f;
    memset(&f, 0, sizeof(f));
    write_self_signed(&f);
    long live = cf_mem_live();
    struct api_listener_config cfg = {
        .address = "127.0.0.1:0", .tls_cert_file = f.cert, .tls_key_file = f.key};
    for (unsigned long n = 1;; n++) {
        uv_loop_t loop;
        assert_int_equal(uv_loop_init(&loop), 0);
        struct api_listener *l = NULL;
        char errmsg[CF_ERRMSG_SIZE] = "";
        cf_mem_fail_after(n);
        int rv = api_listener_new(&loop, &cfg, noop_handler, NULL, &l, errmsg);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            api_listener_close(l, NULL, NULL);
        } else {
            assert_int_equal(rv, CF_ENOMEM);
        }
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        assert_int_equal(cf_mem_live(), live);
        if (rv == CF_OK) {
            break;
        }
        assert_true(n < 100);
    }
    remove_self_signed(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_pipeline_order),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_slow_clients),
        cmocka_unit_test(test_graceful_close),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_h2c),
        cmocka_unit_test(test_h2c_batch),
        cmocka_unit_test(test_h2c_limits),
        cmocka_unit_test(test_h2c_conn_cap),
        cmocka_unit_test(test_h2_drain),
        cmocka_unit_test(test_grace_expiry),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_tls_min_version),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_new_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
