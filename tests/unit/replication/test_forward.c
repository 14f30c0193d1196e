/*
 * Unit tests for replication/forward.c on one real libuv loop: a socketpair with a uv_pipe_t
 * on each end, a forwarding client on one and a server on the other (no TLS, which sits behind
 * the stream in production). Covered: one round trip with headers and body intact; 500
 * concurrent requests answered out of order (deferred with timers) and matched to their
 * callers, with the server never holding more than 256 at once; 8 MiB bodies both ways; a
 * handler that never answers (CF_ETIMEDOUT, then a harmless late respond and a working
 * connection); the server closed mid-flight (CF_EIO exactly once per pending request); the
 * client closed with requests pending (CF_ECANCELED, never inside the call); garbage instead
 * of HTTP/2 on either side (clean close); and, with a raw nghttp2 client, 404 / 415 / 400
 * refusals next to a good request on the same connection. Every test ends with
 * uv_loop_close() == 0 and no live allocations.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "replication/forward.h"

enum mode {
    MODE_ECHO,  /* answer at once */
    MODE_DEFER, /* answer from a timer, delay varying per request */
    MODE_HOLD,  /* keep the call for the test */
};

#define MAX_HELD 64

struct fx
{
    uv_loop_t loop;
    struct repl_fwd_client *c;
    struct repl_fwd_server *s;
    enum mode mode;
    int handled;         /* calls seen by the handler */
    int outstanding;     /* handled and not yet answered */
    int max_outstanding; /* peak of outstanding */
    int server_closed;   /* closed_cb count */
    struct repl_fwd_call *held[MAX_HELD];
    int n_held;
    bool in_api; /* inside a client API call: callbacks must not run */
    long live;
};

static void free_pipe(uv_handle_t *h)
{
    cf_free(h);
}

static uv_pipe_t *pipe_on(uv_loop_t *loop, int fd)
{
    uv_pipe_t *p = cf_malloc(sizeof(*p));
    assert_non_null(p);
    assert_int_equal(uv_pipe_init(loop, p, 0), 0);
    assert_int_equal(uv_pipe_open(p, fd), 0);
    return p;
}

/* The response the handler gives: status 201, the request's headers plus two of its own,
 * the body with every byte xor 0x5a, index 1000 + remote_port. */
static void answer(struct fx *f, struct repl_fwd_call *call)
{
    const struct repl_fwd_request *q = &call->req;
    size_t n = q->n_headers + 2;
    struct repl_fwd_header *h = cf_calloc(n, sizeof(*h));
    assert_non_null(h);
    for (size_t i = 0; i < q->n_headers; i++) {
        h[i] = q->headers[i];
    }
    h[q->n_headers] = (struct repl_fwd_header){"X-Method", q->method};
    h[q->n_headers + 1] = (struct repl_fwd_header){"X-Path", q->path};
    uint8_t *body = q->body_len > 0 ? cf_malloc(q->body_len) : NULL;
    for (size_t i = 0; i < q->body_len; i++) {
        body[i] = q->body[i] ^ 0x5a;
    }
    struct repl_fwd_response r = {.status = 201,
                                  .headers = h,
                                  .n_headers = n,
                                  .body = body,
                                  .body_len = q->body_len,
                                  .index = 1000 + (uint64_t)q->remote_port};
    f->outstanding--;
    repl_fwd_call_respond(call, &r);
    cf_free(body);
    cf_free(h);
}

struct defer
{
    uv_timer_t t;
    struct fx *f;
    struct repl_fwd_call *call;
};

static void defer_close_cb(uv_handle_t *h)
{
    cf_free(CF_CONTAINER_OF(h, struct defer, t));
}

static void defer_cb(uv_timer_t *t)
{
    struct defer *d = CF_CONTAINER_OF(t, struct defer, t);
    answer(d->f, d->call);
    uv_close((uv_handle_t *)t, defer_close_cb);
}

static void handler(void *arg, struct repl_fwd_call *call)
{
    struct fx *f = arg;
    f->handled++;
    f->outstanding++;
    if (f->outstanding > f->max_outstanding) {
        f->max_outstanding = f->outstanding;
    }
    switch (f->mode) {
        case MODE_ECHO:
            answer(f, call);
            break;
        case MODE_DEFER: {
            struct defer *d = cf_malloc(sizeof(*d));
            assert_non_null(d);
            d->f = f;
            d->call = call;
            uv_timer_init(&f->loop, &d->t);
            /* Delays 0..49 ms in a scrambled order: answers come back out of order. */
            uv_timer_start(&d->t, defer_cb, (uint64_t)(call->req.remote_port * 7919 % 50), 0);
            break;
        }
        case MODE_HOLD:
            assert_true(f->n_held < MAX_HELD);
            f->held[f->n_held++] = call;
            break;
    }
}

static void server_closed_cb(void *arg, struct repl_fwd_server *s)
{
    struct fx *f = arg;
    assert_ptr_equal(s, f->s);
    f->server_closed++;
    f->s = NULL;
}

static void respond_held(struct fx *f)
{
    for (int i = 0; i < f->n_held; i++) {
        answer(f, f->held[i]);
    }
    f->n_held = 0;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->live = cf_mem_live();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    uv_pipe_t *cp = pipe_on(&f->loop, sv[0]);
    uv_pipe_t *sp = pipe_on(&f->loop, sv[1]);
    assert_int_equal(repl_fwd_client_new(&f->loop, (uv_stream_t *)cp, free_pipe, &f->c), CF_OK);
    assert_int_equal(repl_fwd_server_new(&f->loop, (uv_stream_t *)sp, free_pipe, handler, f,
                                         server_closed_cb, &f->s),
                     CF_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    respond_held(f);
    repl_fwd_client_close(f->c);
    repl_fwd_server_close(f->s);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(cf_mem_live(), f->live);
    free(f);
    return 0;
}

/* Runs the loop until *flag reaches want (or fails after 10 s). */
static void run_until(struct fx *f, const int *flag, int want)
{
    uint64_t start = uv_hrtime();
    while (*flag < want) {
        uv_run(&f->loop, UV_RUN_ONCE);
        if (uv_hrtime() - start > 10000000000ull) {
            fail_msg("timed out waiting: %d of %d", *flag, want);
        }
    }
}

/* Client side request records. */
struct call_rec
{
    struct fx *f;
    int id;
    int calls; /* callback count (must end at 1) */
    int status;
    int resp_status;
    uint64_t index;
    char errmsg[CF_ERRMSG_SIZE];
    struct cf_buf body;
    size_t n_headers;
    char hdr0[64];
    char method[16];
    char path[64];
    int *done; /* incremented on callback */
};

static void rec_cb(void *arg, int status, struct repl_fwd_response *resp, const char *errmsg)
{
    struct call_rec *r = arg;
    assert_false(r->f->in_api);
    r->calls++;
    r->status = status;
    if (status == CF_OK) {
        assert_non_null(resp);
        assert_null(errmsg);
        r->resp_status = resp->status;
        r->index = resp->index;
        cf_buf_init(&r->body);
        assert_int_equal(cf_buf_append(&r->body, resp->body, resp->body_len), CF_OK);
        r->n_headers = resp->n_headers;
        for (size_t i = 0; i < resp->n_headers; i++) {
            if (i == 0) {
                snprintf(r->hdr0, sizeof(r->hdr0), "%s=%s", resp->headers[0].name,
                         resp->headers[0].value);
            }
            if (strcmp(resp->headers[i].name, "X-Method") == 0) {
                snprintf(r->method, sizeof(r->method), "%s", resp->headers[i].value);
            }
            if (strcmp(resp->headers[i].name, "X-Path") == 0) {
                snprintf(r->path, sizeof(r->path), "%s", resp->headers[i].value);
            }
        }
    } else {
        assert_null(resp);
        assert_non_null(errmsg);
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
    }
    (*r->done)++;
}

static int send_req(struct fx *f, struct call_rec *r, const uint8_t *body, size_t len, unsigned ms)
{
    char hv[32];
    snprintf(hv, sizeof(hv), "id-%d", r->id);
    struct repl_fwd_header h[2] = {{"X-Request-Id", hv}, {"X-Vault-Token", "s.tok"}};
    char path[64];
    snprintf(path, sizeof(path), "/v1/secret/data/k%d?version=2", r->id);
    struct repl_fwd_request q = {.method = "PUT",
                                 .path = path,
                                 .headers = h,
                                 .n_headers = 2,
                                 .body = (uint8_t *)body,
                                 .body_len = len,
                                 .remote_addr = "192.0.2.7",
                                 .remote_port = r->id};
    r->f = f;
    f->in_api = true;
    int rv = repl_fwd_client_send(f->c, &q, ms, rec_cb, r);
    f->in_api = false;
    return rv;
}

static void check_echo(const struct call_rec *r, const uint8_t *body, size_t len)
{
    if (r->status != CF_OK) {
        fail_msg("request %d: %s: %s", r->id, cf_strerror(r->status), r->errmsg);
    }
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->resp_status, 201);
    assert_int_equal(r->index, 1000 + (uint64_t)r->id);
    assert_int_equal(r->n_headers, 4);
    char want[64];
    snprintf(want, sizeof(want), "X-Request-Id=id-%d", r->id);
    assert_string_equal(r->hdr0, want);
    assert_string_equal(r->method, "PUT");
    snprintf(want, sizeof(want), "/v1/secret/data/k%d?version=2", r->id);
    assert_string_equal(r->path, want);
    assert_int_equal(r->body.len, len);
    for (size_t i = 0; i < len; i++) {
        if (r->body.data[i] != (body[i] ^ 0x5a)) {
            fail_msg("request %d: body byte %zu differs", r->id, i);
        }
    }
}

/* Tests ------------------------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_ECHO;
    static const uint8_t body[] = "{\"data\":{\"a\":\"b\"}}\0\1\2";
    int done = 0;
    struct call_rec r = {.id = 17, .done = &done};
    assert_int_equal(send_req(f, &r, body, sizeof(body), 5000), CF_OK);
    assert_int_equal(repl_fwd_client_inflight(f->c), 1);
    assert_int_equal(done, 0); /* never inside send */
    run_until(f, &done, 1);
    check_echo(&r, body, sizeof(body));
    assert_int_equal(repl_fwd_client_inflight(f->c), 0);
    assert_true(repl_fwd_client_alive(f->c));
    /* An empty body too. */
    struct call_rec e = {.id = 18, .done = &done};
    assert_int_equal(send_req(f, &e, NULL, 0, 0), CF_OK);
    run_until(f, &done, 2);
    check_echo(&e, NULL, 0);
    cf_buf_close(&r.body);
    cf_buf_close(&e.body);
    /* Encode errors come back from send, without a callback. */
    struct repl_fwd_request bad = {.method = "GET", .path = ""};
    assert_int_equal(repl_fwd_client_send(f->c, &bad, 0, rec_cb, &e), CF_EINVAL);
}

#define N_MANY 500

static void test_many_out_of_order(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_DEFER;
    struct call_rec *r = calloc(N_MANY, sizeof(*r));
    int done = 0;
    uint8_t bodies[N_MANY][8];
    for (int i = 0; i < N_MANY; i++) {
        r[i].id = i + 1;
        r[i].done = &done;
        snprintf((char *)bodies[i], sizeof(bodies[i]), "b%d", i + 1);
        assert_int_equal(send_req(f, &r[i], bodies[i], sizeof(bodies[i]), 20000), CF_OK);
    }
    assert_int_equal(repl_fwd_client_inflight(f->c), N_MANY);
    run_until(f, &done, N_MANY);
    for (int i = 0; i < N_MANY; i++) {
        check_echo(&r[i], bodies[i], sizeof(bodies[i]));
        cf_buf_close(&r[i].body);
    }
    assert_int_equal(f->handled, N_MANY);
    /* The server's SETTINGS raised the client's limit past the 100 it assumes at first, and
     * the client never opened more streams than the server allows. */
    assert_true(f->max_outstanding > 100);
    assert_true(f->max_outstanding <= 256);
    free(r);
}

static void test_big_bodies(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_ECHO;
    size_t n = (size_t)8 << 20;
    uint8_t *body = cf_malloc(n);
    for (size_t i = 0; i < n; i++) {
        body[i] = (uint8_t)((i * 2654435761u) >> 13);
    }
    int done = 0;
    struct call_rec r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct call_rec){.id = i + 1, .done = &done};
        assert_int_equal(send_req(f, &r[i], body, n, 60000), CF_OK);
    }
    run_until(f, &done, 3);
    for (int i = 0; i < 3; i++) {
        check_echo(&r[i], body, n);
        cf_buf_close(&r[i].body);
    }
    cf_free(body);
}

static void test_timeout_late_respond(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_HOLD;
    int done = 0;
    struct call_rec r = {.id = 5, .done = &done};
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(send_req(f, &r, (const uint8_t *)"x", 1, 100), CF_OK);
    run_until(f, &done, 1);
    assert_int_equal(r.status, CF_ETIMEDOUT);
    assert_non_null(strstr(r.errmsg, "within 100 ms"));
    assert_true(uv_now(&f->loop) - t0 >= 100);
    assert_int_equal(f->n_held, 1);
    /* Let the reset reach the server, then answer late: only frees the call. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    respond_held(f);
    /* The connection still works, and the late answer was not delivered to anyone. */
    f->mode = MODE_ECHO;
    struct call_rec r2 = {.id = 6, .done = &done};
    assert_int_equal(send_req(f, &r2, (const uint8_t *)"yz", 2, 5000), CF_OK);
    run_until(f, &done, 2);
    check_echo(&r2, (const uint8_t *)"yz", 2);
    assert_int_equal(r.calls, 1);
    cf_buf_close(&r2.body);
}

static void close_server_cb(uv_timer_t *t)
{
    struct fx *f = t->data;
    repl_fwd_server_close(f->s);
    repl_fwd_server_close(f->s); /* the second does nothing */
    uv_close((uv_handle_t *)t, NULL);
}

static void test_server_closed_midflight(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_HOLD;
    int done = 0;
    struct call_rec r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct call_rec){.id = i + 1, .done = &done};
        assert_int_equal(send_req(f, &r[i], (const uint8_t *)"q", 1, 0), CF_OK);
    }
    run_until(f, &f->handled, 8);
    /* Close from a timer, not from inside the library. */
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    t.data = f;
    uv_timer_start(&t, close_server_cb, 0, 0);
    run_until(f, &done, 8);
    run_until(f, &f->server_closed, 1);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(r[i].status, CF_EIO);
        assert_non_null(strstr(r[i].errmsg, "connection to the active node broken"));
    }
    /* Late answers to the dead connection only free the calls. */
    respond_held(f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(r[i].calls, 1);
    }
    assert_int_equal(f->server_closed, 1);
    assert_false(repl_fwd_client_alive(f->c));
    assert_int_equal(repl_fwd_client_inflight(f->c), 0);
    struct call_rec late = {.id = 99, .done = &done};
    assert_int_equal(send_req(f, &late, NULL, 0, 0), CF_EIO);
    assert_int_equal(late.calls, 0);
}

static void test_client_closed_pending(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_HOLD;
    int done = 0;
    struct call_rec r[6];
    for (int i = 0; i < 6; i++) {
        r[i] = (struct call_rec){.id = i + 1, .done = &done};
        assert_int_equal(send_req(f, &r[i], (const uint8_t *)"q", 1, 30000), CF_OK);
    }
    run_until(f, &f->handled, 4); /* some on the server, maybe some still on the way */
    f->in_api = true;
    repl_fwd_client_close(f->c);
    f->in_api = false;
    f->c = NULL;
    assert_int_equal(done, 0);
    run_until(f, &done, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].status, CF_ECANCELED);
        assert_int_equal(r[i].calls, 1);
    }
    /* The server sees the connection end; answering its held calls only frees them. */
    run_until(f, &f->server_closed, 1);
    respond_held(f);
}

static void test_garbage_to_server(void **state)
{
    struct fx *f = *state;
    /* Replace the fixture's client with raw bytes on a second socketpair's server. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct repl_fwd_server *s2 = NULL;
    int closed_before = f->server_closed;
    struct repl_fwd_server *keep = f->s;
    assert_int_equal(repl_fwd_server_new(&f->loop, (uv_stream_t *)pipe_on(&f->loop, sv[1]),
                                         free_pipe, handler, f, server_closed_cb, &s2),
                     CF_OK);
    f->s = s2;
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage garbage";
    assert_int_equal(write(sv[0], junk, sizeof(junk)), (ssize_t)sizeof(junk));
    run_until(f, &f->server_closed, closed_before + 1);
    assert_int_equal(f->handled, 0);
    /* The server closed its end: reading the raw end reaches EOF. */
    char buf[4096];
    ssize_t n;
    do {
        n = read(sv[0], buf, sizeof(buf));
    } while (n > 0);
    assert_int_equal(n, 0);
    close(sv[0]);
    f->s = keep;
}

static void test_garbage_to_client(void **state)
{
    struct fx *f = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct repl_fwd_client *c2 = NULL;
    assert_int_equal(
        repl_fwd_client_new(&f->loop, (uv_stream_t *)pipe_on(&f->loop, sv[1]), free_pipe, &c2),
        CF_OK);
    struct repl_fwd_client *keep = f->c;
    f->c = c2;
    int done = 0;
    struct call_rec r = {.id = 1, .done = &done};
    assert_int_equal(send_req(f, &r, (const uint8_t *)"x", 1, 0), CF_OK);
    static const char junk[] = "HTTP/1.1 200 OK\r\n\r\nnot http/2 at all, not at all";
    assert_int_equal(write(sv[0], junk, sizeof(junk)), (ssize_t)sizeof(junk));
    run_until(f, &done, 1);
    assert_int_equal(r.status, CF_EIO);
    assert_non_null(strstr(r.errmsg, "connection to the active node broken"));
    assert_false(repl_fwd_client_alive(c2));
    char buf[4096];
    ssize_t n;
    do {
        n = read(sv[0], buf, sizeof(buf));
    } while (n > 0);
    assert_int_equal(n, 0);
    close(sv[0]);
    repl_fwd_client_close(c2);
    f->c = keep;
}

/* A raw nghttp2 client on a non-blocking socket, driven between loop iterations. */
struct raw_stream
{
    int32_t id;
    int status;
    char body[512];
    size_t len;
    bool closed;
};

struct raw
{
    int fd;
    nghttp2_session *h2;
    struct raw_stream st[4];
    int n_closed;
};

static struct raw_stream *raw_find(struct raw *w, int32_t id)
{
    for (int i = 0; i < 4; i++) {
        if (w->st[i].id == id) {
            return &w->st[i];
        }
    }
    return NULL;
}

static int raw_header_cb(nghttp2_session *s,
                         const nghttp2_frame *fr,
                         const uint8_t *name,
                         size_t nl,
                         const uint8_t *value,
                         size_t vl,
                         uint8_t flags,
                         void *ud)
{
    (void)s;
    (void)flags;
    struct raw_stream *x = raw_find(ud, fr->hd.stream_id);
    if (x != NULL && nl == 7 && memcmp(name, ":status", 7) == 0) {
        x->status = atoi((const char *)value);
        (void)vl;
    }
    return 0;
}

static int raw_data_cb(nghttp2_session *s,
                       uint8_t flags,
                       int32_t id,
                       const uint8_t *data,
                       size_t len,
                       void *ud)
{
    (void)s;
    (void)flags;
    struct raw_stream *x = raw_find(ud, id);
    if (x != NULL && len < sizeof(x->body) - x->len) {
        memcpy(x->body + x->len, data, len);
        x->len += len;
    }
    return 0;
}

static int raw_close_cb(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)s;
    (void)code;
    struct raw *w = ud;
    struct raw_stream *x = raw_find(w, id);
    if (x != NULL) {
        x->closed = true;
        w->n_closed++;
    }
    return 0;
}

struct raw_body
{
    const uint8_t *p;
    size_t len;
    size_t off;
};

static ssize_t raw_read_cb(nghttp2_session *s,
                           int32_t id,
                           uint8_t *buf,
                           size_t length,
                           uint32_t *flags,
                           nghttp2_data_source *src,
                           void *ud)
{
    (void)s;
    (void)id;
    (void)ud;
    struct raw_body *b = src->ptr;
    size_t n = b->len - b->off < length ? b->len - b->off : length;
    memcpy(buf, b->p + b->off, n);
    b->off += n;
    if (b->off == b->len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static void raw_submit(struct raw *w,
                       int slot,
                       const char *method,
                       const char *path,
                       const char *ctype,
                       struct raw_body *b)
{
    nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), 0},
    };
    nghttp2_data_provider dp = {.source.ptr = b, .read_callback = raw_read_cb};
    w->st[slot].id = nghttp2_submit_request(w->h2, NULL, nva, 5, b != NULL ? &dp : NULL, NULL);
    assert_true(w->st[slot].id > 0);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_ECHO;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct repl_fwd_server *s2 = NULL;
    struct repl_fwd_server *keep = f->s;
    assert_int_equal(repl_fwd_server_new(&f->loop, (uv_stream_t *)pipe_on(&f->loop, sv[1]),
                                         free_pipe, handler, f, server_closed_cb, &s2),
                     CF_OK);
    f->s = s2;
    struct raw w = {.fd = sv[0]};
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, raw_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, raw_data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_close_cb);
    assert_int_equal(nghttp2_session_client_new(&w.h2, cbs, &w), 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(w.h2, 0, NULL, 0);

    struct cf_buf good;
    cf_buf_init(&good);
    struct repl_fwd_request q = {.method = "GET", .path = "/v1/sys/health", .remote_port = 3};
    assert_int_equal(repl_fwd_request_encode(&q, &good), CF_OK);
    struct raw_body b_good = {good.data, good.len, 0};
    struct raw_body b_bad = {(const uint8_t *)"\x81\xa1v\x01", 4, 0};
    struct raw_body b_ct = {good.data, good.len, 0};
    raw_submit(&w, 0, "POST", "/other", REPL_FWD_CONTENT_TYPE, NULL);
    raw_submit(&w, 1, "POST", REPL_FWD_PATH, REPL_FWD_CONTENT_TYPE, &b_bad);
    raw_submit(&w, 2, "POST", REPL_FWD_PATH, REPL_FWD_CONTENT_TYPE, &b_good);
    raw_submit(&w, 3, "POST", REPL_FWD_PATH, "application/json", &b_ct);

    uint64_t start = uv_hrtime();
    while (w.n_closed < 4) {
        const uint8_t *data;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(w.h2, &data)) > 0) {
            assert_int_equal(write(w.fd, data, (size_t)n), n);
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uint8_t buf[16384];
        n = read(w.fd, buf, sizeof(buf));
        if (n > 0) {
            assert_true(nghttp2_session_mem_recv(w.h2, buf, (size_t)n) == n);
        } else {
            assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        }
        if (uv_hrtime() - start > 10000000000ull) {
            fail_msg("raw client timed out");
        }
    }
    assert_int_equal(w.st[0].status, 404);
    assert_int_equal(w.st[1].status, 400);
    w.st[1].body[w.st[1].len] = '\0';
    assert_non_null(strstr(w.st[1].body, "forwarded request: missing \"m\""));
    assert_int_equal(w.st[2].status, 200);
    struct repl_fwd_response resp;
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(
        repl_fwd_response_decode((const uint8_t *)w.st[2].body, w.st[2].len, &resp, errmsg), CF_OK);
    assert_int_equal(resp.status, 201);
    assert_int_equal(resp.index, 1003);
    repl_fwd_response_free(&resp);
    assert_int_equal(w.st[3].status, 415);
    assert_int_equal(f->handled, 1);
    nghttp2_session_del(w.h2);
    cf_buf_close(&good);
    close(w.fd);
    run_until(f, &f->server_closed, 1);
    f->s = keep;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the server does (node/main.c) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_late_respond, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closed_midflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_closed_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_to_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_to_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
