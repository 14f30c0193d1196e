/*
 * Unit tests for raft/net.c on a real libuv loop and real sockets on 127.0.0.1 (ephemeral
 * ports), with a cluster CA, node certificates (CN = node id) and an unrelated second CA made in
 * the test with OpenSSL. Covers: bytes both ways, 16 MiB each way intact (SHA-256), the hello
 * delivered exactly and the stream starting right after it (also when the hello and the first
 * stream bytes share one TLS record, through a raw OpenSSL client in a thread), back-pressure,
 * many tunnels at once, every refusal (no client certificate, client or server certificate from
 * another CA, unknown or several ALPN ids, allow() false on either side, no credentials,
 * oversized hello, closed port, a blackhole that never handshakes, cancel), bad arguments and
 * bad PEM, and close semantics (EOF on the peer's end, rft_net_close with live tunnels). Every
 * test ends with uv_loop_close() == 0 and no live allocations.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "raft/net.h"

#define TIMEOUT_MS 20000
#define ALPN "test/1"

/* Certificates ----------------------------------------------------------------------------------
 */

struct creds
{
    char *ca;   /* trust anchor PEM */
    char *cert; /* own certificate PEM */
    char *key;  /* own key PEM */
};

struct ca
{
    X509 *cert;
    EVP_PKEY *key;
};

static char *bio_to_str(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *s = cf_strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static char *cert_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    return bio_to_str(b);
}

static char *key_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    return bio_to_str(b);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, const struct ca *issuer)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->cert) : name);
    X509_set_pubkey(x, key);
    if (issuer == NULL) {
        add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer->cert, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, issuer->cert, NID_key_usage, "critical,digitalSignature");
        add_ext(x, issuer->cert, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    assert_true(X509_sign(x, issuer != NULL ? issuer->key : key, EVP_sha256()) > 0);
    return x;
}

static void ca_init(struct ca *ca, const char *cn)
{
    ca->key = EVP_EC_gen("P-256");
    assert_non_null(ca->key);
    ca->cert = make_cert(cn, ca->key, NULL);
}

static void ca_close(struct ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
}

/* Credentials for node `cn` with a certificate from `issuer`, trusting `trust`. */
static void creds_make(struct creds *c,
                       const char *cn,
                       const struct ca *issuer,
                       const struct ca *trust)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = make_cert(cn, key, issuer);
    c->ca = cert_pem(trust->cert);
    c->cert = cert_pem(x);
    c->key = key_pem(key);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void creds_free(struct creds *c)
{
    CF_FREE(c->ca);
    CF_FREE(c->cert);
    CF_FREE(c->key);
}

/* Fixture ---------------------------------------------------------------------------------------
 */

struct fx
{
    uv_loop_t loop;
    struct ca ca1;
    struct ca ca2;
    struct creds a;     /* node-a from ca1 */
    struct creds b;     /* node-b from ca1 */
    struct creds rogue; /* node-r from ca2, trusting ca1 */
    struct creds alien; /* node-a from ca1, trusting only ca2 */
    long live;
};

static int setup(void **state)
{
    struct fx *f = cf_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->live = cf_mem_live() - 1;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    ca_init(&f->ca1, "cluster CA");
    ca_init(&f->ca2, "other CA");
    creds_make(&f->a, "node-a", &f->ca1, &f->ca1);
    creds_make(&f->b, "node-b", &f->ca1, &f->ca1);
    creds_make(&f->rogue, "node-r", &f->ca2, &f->ca1);
    creds_make(&f->alien, "node-x", &f->ca1, &f->ca2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    ca_close(&f->ca1);
    ca_close(&f->ca2);
    creds_free(&f->a);
    creds_free(&f->b);
    creds_free(&f->rogue);
    creds_free(&f->alien);
    long live = f->live;
    cf_free(f);
    assert_int_equal(cf_mem_live(), live);
    return 0;
}

static void run_until(struct fx *f, bool (*done)(void *), void *arg)
{
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (!done(arg)) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
        assert_true(uv_now(&f->loop) - start < TIMEOUT_MS);
    }
}

static bool flag_done(void *arg)
{
    return *(bool *)arg;
}

static void run_for(struct fx *f, unsigned ms)
{
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (uv_now(&f->loop) - start < ms) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&f->loop);
    }
}

/* Nets ------------------------------------------------------------------------------------------
 */

struct accepted
{
    int count;
    char peer[256];
    uint8_t hello[RFT_NET_HELLO_MAX];
    size_t hello_len;
    uv_stream_t *streams[64];
    uint8_t tag[64]; /* first hello byte of each stream */
};

static void accept_cb(void *arg,
                      const char *peer,
                      const uint8_t *hello,
                      size_t hello_len,
                      uv_stream_t *stream)
{
    struct accepted *acc = arg;
    assert_true(acc->count < 64);
    snprintf(acc->peer, sizeof(acc->peer), "%s", peer);
    memcpy(acc->hello, hello, hello_len);
    acc->hello_len = hello_len;
    acc->tag[acc->count] = hello_len > 0 ? hello[0] : 0;
    acc->streams[acc->count++] = stream;
}

struct conres
{
    bool done;
    int status;
    char peer[256];
    char errmsg[CF_ERRMSG_SIZE];
    uv_stream_t *stream;
    bool *inside; /* set while the initiating call runs */
};

static void connect_cb(void *arg,
                       int status,
                       const char *peer,
                       uv_stream_t *stream,
                       const char *errmsg)
{
    struct conres *r = arg;
    assert_false(r->done);
    if (r->inside != NULL) {
        assert_false(*r->inside);
    }
    r->done = true;
    r->status = status;
    r->stream = stream;
    if (status == CF_OK) {
        assert_non_null(stream);
        snprintf(r->peer, sizeof(r->peer), "%s", peer);
    } else {
        assert_null(stream);
        assert_non_null(errmsg);
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
    }
}

static bool conres_done(void *arg)
{
    return ((struct conres *)arg)->done;
}

static struct rft_net *net_make(struct fx *f,
                                const struct creds *c,
                                struct accepted *acc,
                                bool listen)
{
    struct rft_net *n = NULL;
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(rft_net_new(&f->loop, &n), CF_OK);
    if (c != NULL) {
        assert_int_equal(rft_net_set_creds(n, c->ca, c->cert, c->key, errmsg), CF_OK);
    }
    if (acc != NULL) {
        assert_int_equal(rft_net_handle(n, ALPN, accept_cb, acc), CF_OK);
    }
    if (listen) {
        assert_int_equal(rft_net_listen(n, "127.0.0.1:0", errmsg), CF_OK);
        assert_true(rft_net_port(n) > 0);
    }
    return n;
}

static void net_closed_cb(void *arg)
{
    *(bool *)arg = true;
}

static void net_close_wait(struct fx *f, struct rft_net *n)
{
    bool closed = false;
    rft_net_close(n, net_closed_cb, &closed);
    assert_false(closed);
    run_until(f, flag_done, &closed);
}

static void addr_of(const struct rft_net *n, char out[64])
{
    snprintf(out, 64, "127.0.0.1:%d", rft_net_port(n));
}

/* Connects and runs until the callback fired. */
static void dial(struct fx *f,
                 struct rft_net *n,
                 const char *addr,
                 const char *alpn,
                 const uint8_t *hello,
                 size_t len,
                 unsigned timeout_ms,
                 struct conres *r)
{
    bool inside = true;
    memset(r, 0, sizeof(*r));
    r->inside = &inside;
    assert_int_equal(rft_net_connect(n, addr, alpn, hello, len, timeout_ms, connect_cb, r, NULL),
                     CF_OK);
    inside = false;
    assert_false(r->done);
    run_until(f, conres_done, r);
    r->inside = NULL;
}

/* Stream endpoints: write a deterministic byte sequence, hash what arrives ----------------------
 */

struct endp
{
    uv_stream_t *s;
    uint64_t tx_seed;
    size_t to_send;
    size_t produced;
    unsigned inflight;
    EVP_MD_CTX *tx_md;
    EVP_MD_CTX *rx_md;
    size_t rx;
    bool eof;
    bool closed;
    bool reading;
    uint8_t first[16]; /* the first bytes received */
    uint8_t rbuf[65536];
};

struct wr
{
    uv_write_t req;
    struct endp *e;
    uint8_t data[65536];
};

static uint8_t next_byte(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint8_t)(*s >> 24);
}

static void endp_pump(struct endp *e);

static void endp_write_cb(uv_write_t *req, int status)
{
    struct wr *w = CF_CONTAINER_OF(req, struct wr, req);
    struct endp *e = w->e;
    cf_free(w);
    e->inflight--;
    if (status == 0) {
        endp_pump(e);
    }
}

static void endp_pump(struct endp *e)
{
    while (e->produced < e->to_send && e->inflight < 4 && !e->closed) {
        struct wr *w = cf_malloc(sizeof(*w));
        assert_non_null(w);
        w->e = e;
        size_t n = e->to_send - e->produced;
        if (n > sizeof(w->data)) {
            n = sizeof(w->data);
        }
        for (size_t i = 0; i < n; i++) {
            w->data[i] = next_byte(&e->tx_seed);
        }
        EVP_DigestUpdate(e->tx_md, w->data, n);
        e->produced += n;
        uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)n);
        assert_int_equal(uv_write(&w->req, e->s, &buf, 1, endp_write_cb), 0);
        e->inflight++;
    }
}

static void endp_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)size;
    struct endp *e = h->data;
    *buf = uv_buf_init((char *)e->rbuf, sizeof(e->rbuf));
}

static void endp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct endp *e = s->data;
    if (nread < 0) {
        e->eof = true;
        uv_read_stop(s);
        return;
    }
    for (ssize_t i = 0; i < nread && e->rx + (size_t)i < sizeof(e->first); i++) {
        e->first[e->rx + (size_t)i] = e->rbuf[i];
    }
    EVP_DigestUpdate(e->rx_md, e->rbuf, (size_t)nread);
    e->rx += (size_t)nread;
}

static struct endp *endp_new(uv_stream_t *s, uint64_t seed, size_t to_send, bool read)
{
    struct endp *e = cf_calloc(1, sizeof(*e));
    assert_non_null(e);
    e->s = s;
    e->tx_seed = seed;
    e->to_send = to_send;
    e->tx_md = EVP_MD_CTX_new();
    e->rx_md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(e->tx_md, EVP_sha256(), NULL);
    EVP_DigestInit_ex(e->rx_md, EVP_sha256(), NULL);
    s->data = e;
    if (read) {
        e->reading = true;
        assert_int_equal(uv_read_start(s, endp_alloc_cb, endp_read_cb), 0);
    }
    endp_pump(e);
    return e;
}

static void endp_close_cb(uv_handle_t *h)
{
    struct endp *e = h->data;
    e->closed = true;
    rft_net_stream_free(h);
}

static void endp_close(struct endp *e)
{
    if (!uv_is_closing((uv_handle_t *)e->s)) {
        uv_close((uv_handle_t *)e->s, endp_close_cb);
    }
}

static bool endp_closed(void *arg)
{
    return ((struct endp *)arg)->closed;
}

static bool endp_eof(void *arg)
{
    return ((struct endp *)arg)->eof;
}

static void endp_free(struct endp *e)
{
    EVP_MD_CTX_free(e->tx_md);
    EVP_MD_CTX_free(e->rx_md);
    cf_free(e);
}

/* Digest of what `from` sent equals digest of what `to` received. */
static void assert_same(struct endp *from, struct endp *to)
{
    assert_int_equal(to->rx, from->to_send);
    uint8_t a[32], b[32];
    unsigned la = 0, lb = 0;
    EVP_MD_CTX *ca = EVP_MD_CTX_new();
    EVP_MD_CTX *cb = EVP_MD_CTX_new();
    EVP_MD_CTX_copy_ex(ca, from->tx_md);
    EVP_MD_CTX_copy_ex(cb, to->rx_md);
    EVP_DigestFinal_ex(ca, a, &la);
    EVP_DigestFinal_ex(cb, b, &lb);
    EVP_MD_CTX_free(ca);
    EVP_MD_CTX_free(cb);
    assert_memory_equal(a, b, 32);
}

struct pair
{
    struct endp *c; /* client end */
    struct endp *s; /* server end */
    size_t n;
};

static bool pair_done(void *arg)
{
    struct pair *p = arg;
    return p->c->rx == p->n && p->s->rx == p->n;
}

/* Tests: data -----------------------------------------------------------------------------------
 */

/* Connects node-b to node-a and returns both user ends. */
static void open_tunnel(struct fx *f,
                        struct rft_net *sn,
                        struct accepted *acc,
                        struct rft_net *cn,
                        struct conres *r)
{
    char addr[64];
    addr_of(sn, addr);
    int before = acc->count;
    dial(f, cn, addr, ALPN, (const uint8_t *)"hi", 2, 5000, r);
    assert_int_equal(r->status, CF_OK);
    assert_string_equal(r->peer, "node-a");
    while (acc->count == before) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_string_equal(acc->peer, "node-b");
}

static void transfer(struct fx *f, size_t n)
{
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    struct conres r;
    open_tunnel(f, sn, &acc, cn, &r);
    struct pair p = {.n = n};
    p.c = endp_new(r.stream, 0x1234567, n, true);
    p.s = endp_new(acc.streams[0], 0x7654321, n, true);
    run_until(f, pair_done, &p);
    assert_same(p.c, p.s);
    assert_same(p.s, p.c);
    endp_close(p.c);
    endp_close(p.s);
    run_until(f, endp_closed, p.c);
    run_until(f, endp_closed, p.s);
    endp_free(p.c);
    endp_free(p.s);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

static void test_exchange_small(void **state)
{
    transfer(*state, 5);
}

static void test_exchange_16mib(void **state)
{
    transfer(*state, (size_t)16 << 20);
}

/* Replacing or clearing credentials leaves live tunnels alone. */
static void test_creds_replaced_keeps_tunnels(void **state)
{
    struct fx *f = *state;
    char errmsg[CF_ERRMSG_SIZE];
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    struct conres r;
    open_tunnel(f, sn, &acc, cn, &r);
    assert_int_equal(rft_net_set_creds(cn, f->a.ca, f->a.cert, f->a.key, errmsg), CF_OK);
    assert_int_equal(rft_net_set_creds(sn, NULL, NULL, NULL, errmsg), CF_OK);
    struct pair p = {.n = 100000};
    p.c = endp_new(r.stream, 11, p.n, true);
    p.s = endp_new(acc.streams[0], 12, p.n, true);
    run_until(f, pair_done, &p);
    assert_same(p.c, p.s);
    assert_same(p.s, p.c);
    endp_close(p.c);
    run_until(f, endp_eof, p.s);
    endp_close(p.s);
    run_until(f, endp_closed, p.c);
    run_until(f, endp_closed, p.s);
    endp_free(p.c);
    endp_free(p.s);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

/* The receiver does not read: the sender's own stream queue grows instead of the tunnels'
 * memory, and everything still arrives once it reads. */
static void test_backpressure(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    struct conres r;
    open_tunnel(f, sn, &acc, cn, &r);
    size_t n = (size_t)32 << 20;
    struct endp *tx = endp_new(r.stream, 42, n, true);
    struct endp *rx = endp_new(acc.streams[0], 43, 0, false);
    for (int i = 0; i < 20; i++) {
        endp_pump(tx);
        run_for(f, 20);
    }
    /* Two tunnels hold at most ~2 x 1 MiB plus socket buffers: most is still unsent. */
    assert_true(tx->produced < n);
    assert_true(rx->rx == 0);
    assert_int_equal(uv_read_start(rx->s, endp_alloc_cb, endp_read_cb), 0);
    while (rx->rx < n) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_same(tx, rx);
    endp_close(tx);
    endp_close(rx);
    run_until(f, endp_closed, tx);
    run_until(f, endp_closed, rx);
    endp_free(tx);
    endp_free(rx);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

static void test_hello_exact(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    char addr[64];
    addr_of(sn, addr);
    size_t sizes[] = {0, 1, 100, RFT_NET_HELLO_MAX};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t hello[RFT_NET_HELLO_MAX];
        for (size_t i = 0; i < sizes[k]; i++) {
            hello[i] = (uint8_t)(i * 7 + k);
        }
        struct conres r;
        dial(f, cn, addr, ALPN, sizes[k] > 0 ? hello : NULL, sizes[k], 5000, &r);
        assert_int_equal(r.status, CF_OK);
        while (acc.count <= (int)k) {
            uv_run(&f->loop, UV_RUN_ONCE);
        }
        assert_int_equal(acc.hello_len, sizes[k]);
        assert_memory_equal(acc.hello, hello, sizes[k]);
        /* The stream starts right after the hello. */
        struct endp *c = endp_new(r.stream, 9, 0, true);
        struct endp *s = endp_new(acc.streams[k], 9, 0, true);
        uv_buf_t b = uv_buf_init((char *)"XYZW", 4);
        assert_true(uv_try_write(r.stream, &b, 1) == 4);
        while (s->rx < 4) {
            uv_run(&f->loop, UV_RUN_ONCE);
        }
        assert_memory_equal(s->first, "XYZW", 4);
        endp_close(c);
        run_until(f, endp_eof, s);
        endp_close(s);
        run_until(f, endp_closed, c);
        run_until(f, endp_closed, s);
        endp_free(c);
        endp_free(s);
    }
    /* A hello over the limit is refused before anything goes out. */
    static uint8_t big[RFT_NET_HELLO_MAX + 1];
    struct conres r = {0};
    assert_int_equal(rft_net_connect(cn, addr, ALPN, big, sizeof(big), 1000, connect_cb, &r, NULL),
                     CF_EINVAL);
    assert_int_equal(rft_net_connect(cn, addr, ALPN, NULL, 3, 1000, connect_cb, &r, NULL),
                     CF_EINVAL);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
    assert_false(r.done);
}

static void test_many_tunnels(void **state)
{
    struct fx *f = *state;
    enum { N = 24 };
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    char addr[64];
    addr_of(sn, addr);
    static struct conres r[N];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++) {
        uint8_t hello = (uint8_t)i;
        assert_int_equal(rft_net_connect(cn, addr, ALPN, &hello, 1, 5000, connect_cb, &r[i], NULL),
                         CF_OK);
    }
    for (int i = 0; i < N; i++) {
        run_until(f, conres_done, &r[i]);
        assert_int_equal(r[i].status, CF_OK);
    }
    while (acc.count < N) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    struct endp *c[N];
    struct endp *s[N];
    for (int i = 0; i < N; i++) {
        c[i] = endp_new(r[i].stream, (uint64_t)i + 1, 200000, true);
        s[i] = NULL;
        for (int j = 0; j < N; j++) {
            if (acc.tag[j] == i) {
                assert_null(s[i]);
                s[i] = endp_new(acc.streams[j], (uint64_t)i + 1000, 200000, true);
            }
        }
        assert_non_null(s[i]);
    }
    for (int i = 0; i < N; i++) {
        struct pair p = {.c = c[i], .s = s[i], .n = 200000};
        run_until(f, pair_done, &p);
    }
    for (int i = 0; i < N; i++) {
        assert_same(c[i], s[i]);
        assert_same(s[i], c[i]);
    }
    net_close_wait(f, sn);
    for (int i = 0; i < N; i++) {
        run_until(f, endp_eof, c[i]);
        endp_close(c[i]);
        endp_close(s[i]);
    }
    for (int i = 0; i < N; i++) {
        run_until(f, endp_closed, c[i]);
        run_until(f, endp_closed, s[i]);
        endp_free(c[i]);
        endp_free(s[i]);
    }
    net_close_wait(f, cn);
}

/* Tests: refusals -------------------------------------------------------------------------------
 */

static void expect_refused(struct fx *f,
                           const struct creds *server,
                           const struct creds *client,
                           const char *alpn,
                           int status,
                           const char *needle)
{
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, server, &acc, true);
    struct rft_net *cn = net_make(f, client, NULL, false);
    char addr[64];
    addr_of(sn, addr);
    struct conres r;
    dial(f, cn, addr, alpn, (const uint8_t *)"x", 1, 5000, &r);
    if (r.status != status || strstr(r.errmsg, needle) == NULL) {
        print_error("status %d errmsg \"%s\"\n", r.status, r.errmsg);
    }
    assert_int_equal(r.status, status);
    assert_non_null(strstr(r.errmsg, needle));
    run_for(f, 50);
    assert_int_equal(acc.count, 0);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

static void test_refuse_client_other_ca(void **state)
{
    struct fx *f = *state;
    expect_refused(f, &f->a, &f->rogue, ALPN, CF_ECRYPTO, "alert");
}

static void test_refuse_server_other_ca(void **state)
{
    struct fx *f = *state;
    expect_refused(f, &f->rogue, &f->b, ALPN, CF_ECRYPTO, "certificate verify failed");
}

static void test_refuse_client_trusts_other_ca(void **state)
{
    struct fx *f = *state;
    expect_refused(f, &f->a, &f->alien, ALPN, CF_ECRYPTO, "certificate verify failed");
}

static void test_refuse_unknown_alpn(void **state)
{
    struct fx *f = *state;
    expect_refused(f, &f->a, &f->b, "nope/1", CF_ECRYPTO, "no application protocol");
}

static bool allow_none(void *arg, const char *peer)
{
    (void)peer;
    (*(int *)arg)++;
    return false;
}

static void test_refuse_allow(void **state)
{
    struct fx *f = *state;
    /* The server refuses the client. */
    struct accepted acc = {0};
    int calls = 0;
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    rft_net_set_allow(sn, allow_none, &calls);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    char addr[64];
    addr_of(sn, addr);
    struct conres r;
    dial(f, cn, addr, ALPN, NULL, 0, 5000, &r);
    assert_int_equal(r.status, CF_EIO);
    assert_non_null(strstr(r.errmsg, "refused"));
    assert_int_equal(calls, 1);
    assert_int_equal(acc.count, 0);
    /* The client refuses the server. */
    rft_net_set_allow(sn, NULL, NULL);
    int ccalls = 0;
    rft_net_set_allow(cn, allow_none, &ccalls);
    dial(f, cn, addr, ALPN, NULL, 0, 5000, &r);
    assert_int_equal(r.status, CF_EDENIED);
    assert_non_null(strstr(r.errmsg, "node-a"));
    assert_int_equal(ccalls, 1);
    run_for(f, 50);
    assert_int_equal(acc.count, 0);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

static void test_refuse_no_creds(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, NULL, NULL, false);
    char addr[64];
    addr_of(sn, addr);
    struct conres r;
    dial(f, cn, addr, ALPN, NULL, 0, 5000, &r);
    assert_int_equal(r.status, CF_ESEALED);
    /* Credentials set, then cleared again. */
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(rft_net_set_creds(cn, f->b.ca, f->b.cert, f->b.key, errmsg), CF_OK);
    dial(f, cn, addr, ALPN, NULL, 0, 5000, &r);
    assert_int_equal(r.status, CF_OK);
    uv_close((uv_handle_t *)r.stream, rft_net_stream_free);
    while (acc.count < 1) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)acc.streams[0], rft_net_stream_free);
    assert_int_equal(rft_net_set_creds(cn, NULL, NULL, NULL, errmsg), CF_OK);
    dial(f, cn, addr, ALPN, NULL, 0, 5000, &r);
    assert_int_equal(r.status, CF_ESEALED);
    /* A server without credentials refuses everyone. */
    assert_int_equal(rft_net_set_creds(cn, f->b.ca, f->b.cert, f->b.key, errmsg), CF_OK);
    assert_int_equal(rft_net_set_creds(sn, NULL, NULL, NULL, errmsg), CF_OK);
    dial(f, cn, addr, ALPN, NULL, 0, 5000, &r);
    assert_int_equal(r.status, CF_EIO);
    run_for(f, 50);
    assert_int_equal(acc.count, 1);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

static void plain_close_cb(uv_handle_t *h)
{
    cf_free(h);
}

static void test_refuse_closed_port(void **state)
{
    struct fx *f = *state;
    /* Find a free port, then close it. */
    uv_tcp_t *tcp = cf_malloc(sizeof(*tcp));
    uv_tcp_init(&f->loop, tcp);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(tcp, (const struct sockaddr *)&sa, 0), 0);
    int len = sizeof(sa);
    uv_tcp_getsockname(tcp, (struct sockaddr *)&sa, &len);
    uv_close((uv_handle_t *)tcp, plain_close_cb);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    struct conres r;
    dial(f, cn, addr, ALPN, NULL, 0, 5000, &r);
    assert_int_equal(r.status, CF_EIO);
    assert_non_null(strstr(r.errmsg, "connection refused"));
    assert_non_null(strstr(r.errmsg, addr));
    net_close_wait(f, cn);
}

/* A plain TCP server that accepts and never speaks. */
struct blackhole
{
    uv_tcp_t server;
    uv_tcp_t *conns[8];
    int n;
};

static void blackhole_conn_cb(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    struct blackhole *b = CF_CONTAINER_OF(server, struct blackhole, server);
    uv_tcp_t *c = cf_malloc(sizeof(*c));
    uv_tcp_init(server->loop, c);
    assert_int_equal(uv_accept(server, (uv_stream_t *)c), 0);
    b->conns[b->n++] = c;
}

static int blackhole_start(struct fx *f, struct blackhole *b)
{
    memset(b, 0, sizeof(*b));
    uv_tcp_init(&f->loop, &b->server);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&b->server, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&b->server, 8, blackhole_conn_cb), 0);
    int len = sizeof(sa);
    uv_tcp_getsockname(&b->server, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

static void blackhole_stop(struct fx *f, struct blackhole *b)
{
    for (int i = 0; i < b->n; i++) {
        uv_close((uv_handle_t *)b->conns[i], plain_close_cb);
    }
    uv_close((uv_handle_t *)&b->server, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_refuse_timeout(void **state)
{
    struct fx *f = *state;
    struct blackhole b;
    char addr[64];
    snprintf(addr, sizeof(addr), "localhost:%d", blackhole_start(f, &b));
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    struct conres r;
    dial(f, cn, addr, ALPN, NULL, 0, 300, &r);
    uv_update_time(&f->loop);
    uint64_t took = uv_now(&f->loop) - start;
    assert_int_equal(r.status, CF_ETIMEDOUT);
    assert_non_null(strstr(r.errmsg, "TLS handshake"));
    assert_true(took >= 290 && took < 3000);
    net_close_wait(f, cn);
    blackhole_stop(f, &b);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct blackhole b;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", blackhole_start(f, &b));
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    struct conres r = {0};
    bool inside = true;
    r.inside = &inside;
    struct rft_net_connect *c = NULL;
    assert_int_equal(rft_net_connect(cn, addr, ALPN, NULL, 0, 0, connect_cb, &r, &c), CF_OK);
    assert_non_null(c);
    run_for(f, 50);
    assert_false(r.done);
    rft_net_connect_cancel(c);
    inside = false;
    assert_false(r.done);
    run_until(f, conres_done, &r);
    assert_int_equal(r.status, CF_ECANCELED);
    /* rft_net_close cancels the pending ones too. */
    struct conres r2 = {0};
    assert_int_equal(rft_net_connect(cn, addr, ALPN, NULL, 0, 0, connect_cb, &r2, NULL), CF_OK);
    run_for(f, 50);
    net_close_wait(f, cn);
    assert_true(r2.done);
    assert_int_equal(r2.status, CF_ECANCELED);
    blackhole_stop(f, &b);
}

/* Raw OpenSSL client in a thread, for what rft_net never sends ----------------------------------
 */

struct raw
{
    int port;
    const struct creds *creds; /* trust + optional cert */
    bool with_cert;
    const unsigned char *alpn_wire;
    unsigned alpn_len;
    const uint8_t *send; /* written in one SSL_write after the handshake */
    size_t send_len;
    /* results */
    bool handshake_ok;
    bool got_ack;
    uint8_t extra[16];
    size_t extra_len;
    char error[256];
    volatile bool done;
};

static void *raw_main(void *arg)
{
    struct raw *w = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    BIO *b = BIO_new_mem_buf(w->creds->ca, -1);
    X509 *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
    X509_free(ca);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (w->with_cert) {
        b = BIO_new_mem_buf(w->creds->cert, -1);
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        BIO_free(b);
        b = BIO_new_mem_buf(w->creds->key, -1);
        EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
        SSL_CTX_use_certificate(ctx, x);
        SSL_CTX_use_PrivateKey(ctx, k);
        X509_free(x);
        EVP_PKEY_free(k);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL *ssl = NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(w->error, sizeof(w->error), "connect failed");
        goto out;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (w->alpn_len > 0) {
        SSL_set_alpn_protos(ssl, w->alpn_wire, w->alpn_len);
    }
    if (SSL_connect(ssl) != 1) {
        ERR_error_string_n(ERR_get_error(), w->error, sizeof(w->error));
        goto out;
    }
    w->handshake_ok = true;
    if (w->send_len > 0 && SSL_write(ssl, w->send, (int)w->send_len) <= 0) {
        ERR_error_string_n(ERR_get_error(), w->error, sizeof(w->error));
        goto out;
    }
    uint8_t buf[17];
    size_t have = 0;
    while (have < sizeof(buf)) {
        int r = SSL_read(ssl, buf + have, (int)(sizeof(buf) - have));
        if (r <= 0) {
            unsigned long e = ERR_get_error();
            if (e != 0) {
                ERR_error_string_n(e, w->error, sizeof(w->error));
            } else {
                snprintf(w->error, sizeof(w->error), "closed");
            }
            break;
        }
        have += (size_t)r;
    }
    if (have > 0) {
        w->got_ack = buf[0] == RFT_NET_ACK;
        w->extra_len = have - 1;
        memcpy(w->extra, buf + 1, w->extra_len);
    }
out:
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    OPENSSL_thread_stop();
    w->done = true;
    return NULL;
}

static bool raw_done(void *arg)
{
    return ((struct raw *)arg)->done;
}

/* Runs the loop without blocking until the thread is done (it cannot wake the loop). */
static void raw_wait(struct fx *f, struct raw *w)
{
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (!raw_done(w)) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&f->loop);
        assert_true(uv_now(&f->loop) - start < TIMEOUT_MS);
    }
}

static void raw_run(struct fx *f, struct raw *w)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_main, w), 0);
    raw_wait(f, w);
    pthread_join(th, NULL);
}

static const unsigned char alpn_wire[] = "\x06test/1";
static const unsigned char alpn_two[] = "\x06test/1\x06test/2";

static void test_raw_no_client_cert(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct raw w = {.port = rft_net_port(sn),
                    .creds = &f->b,
                    .with_cert = false,
                    .alpn_wire = alpn_wire,
                    .alpn_len = 7,
                    .send = (const uint8_t *)"\0\0\0\0",
                    .send_len = 4};
    raw_run(f, &w);
    assert_false(w.got_ack);
    assert_non_null(strstr(w.error, "certificate required"));
    assert_int_equal(acc.count, 0);
    net_close_wait(f, sn);
}

/* More than RFT_NET_PENDING_MAX connections that never finish a handshake: the next one is
 * closed at once; once they go, connections are served again. */
static void test_handshake_cap(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    int fds[RFT_NET_PENDING_MAX];
    for (int i = 0; i < RFT_NET_PENDING_MAX; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)rft_net_port(sn))};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    run_for(f, 200); /* all accepted, all waiting for a ClientHello */
    struct raw w = {.port = rft_net_port(sn),
                    .creds = &f->b,
                    .with_cert = true,
                    .alpn_wire = alpn_wire,
                    .alpn_len = 7,
                    .send = (const uint8_t *)"\0\0\0\0",
                    .send_len = 4};
    raw_run(f, &w);
    assert_false(w.handshake_ok);
    assert_false(w.got_ack);
    assert_int_equal(acc.count, 0);
    for (int i = 0; i < RFT_NET_PENDING_MAX; i++) {
        close(fds[i]);
    }
    run_for(f, 200);
    struct raw w2 = w;
    memset(w2.error, 0, sizeof(w2.error));
    w2.done = false;
    raw_run(f, &w2);
    assert_true(w2.got_ack);
    run_for(f, 50);
    assert_int_equal(acc.count, 1);
    uv_close((uv_handle_t *)acc.streams[0], rft_net_stream_free);
    net_close_wait(f, sn);
}

static void test_raw_alpn(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    /* No ALPN at all. */
    struct raw w = {.port = rft_net_port(sn),
                    .creds = &f->b,
                    .with_cert = true,
                    .send = (const uint8_t *)"\0\0\0\0",
                    .send_len = 4};
    raw_run(f, &w);
    assert_false(w.got_ack);
    /* Two protocols offered. */
    struct raw w2 = {.port = rft_net_port(sn),
                     .creds = &f->b,
                     .with_cert = true,
                     .alpn_wire = alpn_two,
                     .alpn_len = 14};
    raw_run(f, &w2);
    assert_false(w2.handshake_ok);
    assert_non_null(strstr(w2.error, "no application protocol"));
    run_for(f, 50);
    assert_int_equal(acc.count, 0);
    net_close_wait(f, sn);
}

/* The hello and the first stream bytes in one TLS record: the handler gets exactly the hello and
 * the stream starts with the rest. */
static void test_raw_hello_and_data(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    static const uint8_t msg[] = {0, 0, 0, 3, 'a', 'b', 'c', 'D', 'A', 'T', 'A'};
    struct raw w = {.port = rft_net_port(sn),
                    .creds = &f->b,
                    .with_cert = true,
                    .alpn_wire = alpn_wire,
                    .alpn_len = 7,
                    .send = msg,
                    .send_len = sizeof(msg)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_main, &w), 0);
    while (acc.count < 1) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(acc.hello_len, 3);
    assert_memory_equal(acc.hello, "abc", 3);
    struct endp *s = endp_new(acc.streams[0], 1, 0, true);
    while (s->rx < 4) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(s->rx, 4);
    assert_memory_equal(s->first, "DATA", 4);
    /* The server end writes; the raw client sees the ack then those bytes. */
    uv_buf_t b = uv_buf_init((char *)"0123456789abcdef", 16);
    assert_int_equal(uv_try_write(s->s, &b, 1), 16);
    raw_wait(f, &w);
    pthread_join(th, NULL);
    assert_true(w.got_ack);
    assert_int_equal(w.extra_len, 16);
    assert_memory_equal(w.extra, "0123456789abcdef", 16);
    endp_close(s);
    run_until(f, endp_closed, s);
    endp_free(s);
    net_close_wait(f, sn);
}

static void test_raw_hello_too_big(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    static const uint8_t msg[] = {0, 0, 0x10, 0x01, 'x'};
    struct raw w = {.port = rft_net_port(sn),
                    .creds = &f->b,
                    .with_cert = true,
                    .alpn_wire = alpn_wire,
                    .alpn_len = 7,
                    .send = msg,
                    .send_len = sizeof(msg)};
    raw_run(f, &w);
    assert_true(w.handshake_ok);
    assert_false(w.got_ack);
    assert_int_equal(acc.count, 0);
    net_close_wait(f, sn);
}

/* The accepting side closes a connection that has not finished handshake + hello in 10 s: one
 * plain TCP client that never speaks and one TLS client that never sends its hello. */
struct silent
{
    uv_tcp_t tcp;
    uv_connect_t req;
    bool eof;
    char buf[64];
};

static void silent_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)size;
    struct silent *s = CF_CONTAINER_OF(h, struct silent, tcp);
    *buf = uv_buf_init(s->buf, sizeof(s->buf));
}

static void silent_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct silent *s = CF_CONTAINER_OF(st, struct silent, tcp);
    if (nread < 0) {
        s->eof = true;
    }
}

static void silent_connect_cb(uv_connect_t *req, int status)
{
    struct silent *s = CF_CONTAINER_OF(req, struct silent, req);
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&s->tcp, silent_alloc, silent_read);
}

static void test_server_deadline(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct silent s = {0};
    uv_tcp_init(&f->loop, &s.tcp);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", rft_net_port(sn), &sa);
    assert_int_equal(
        uv_tcp_connect(&s.req, &s.tcp, (const struct sockaddr *)&sa, silent_connect_cb), 0);
    struct raw w = {.port = rft_net_port(sn),
                    .creds = &f->b,
                    .with_cert = true,
                    .alpn_wire = alpn_wire,
                    .alpn_len = 7};
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_main, &w), 0);
    raw_wait(f, &w);
    pthread_join(th, NULL);
    while (!s.eof) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_update_time(&f->loop);
    uint64_t took = uv_now(&f->loop) - start;
    assert_true(took >= 9500 && took < 13000);
    assert_true(w.handshake_ok);
    assert_false(w.got_ack);
    assert_int_equal(acc.count, 0);
    uv_close((uv_handle_t *)&s.tcp, NULL);
    net_close_wait(f, sn);
}

/* Tests: arguments ------------------------------------------------------------------------------
 */

static void test_bad_args(void **state)
{
    struct fx *f = *state;
    char errmsg[CF_ERRMSG_SIZE];
    struct accepted acc = {0};
    struct rft_net *n = net_make(f, NULL, NULL, false);
    /* Credentials. */
    assert_int_equal(rft_net_set_creds(n, "garbage", f->a.cert, f->a.key, errmsg), CF_ECRYPTO);
    assert_non_null(strstr(errmsg, "cluster CA certificate"));
    assert_int_equal(rft_net_set_creds(n, f->a.ca, "garbage", f->a.key, errmsg), CF_ECRYPTO);
    assert_non_null(strstr(errmsg, "node certificate"));
    assert_int_equal(rft_net_set_creds(n, f->a.ca, f->a.cert, "garbage", errmsg), CF_ECRYPTO);
    assert_non_null(strstr(errmsg, "node key"));
    assert_int_equal(rft_net_set_creds(n, f->a.ca, f->a.cert, f->b.key, errmsg), CF_ECRYPTO);
    assert_non_null(strstr(errmsg, "does not match"));
    assert_int_equal(rft_net_set_creds(n, f->a.ca, NULL, NULL, errmsg), CF_EINVAL);
    /* Handlers. */
    assert_int_equal(rft_net_handle(n, "", accept_cb, &acc), CF_EINVAL);
    assert_int_equal(rft_net_handle(n, ALPN, NULL, &acc), CF_EINVAL);
    for (int i = 0; i < RFT_NET_HANDLERS_MAX; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p/%d", i);
        assert_int_equal(rft_net_handle(n, id, accept_cb, &acc), CF_OK);
    }
    assert_int_equal(rft_net_handle(n, "p/0", accept_cb, &acc), CF_EEXIST);
    assert_int_equal(rft_net_handle(n, "p/9", accept_cb, &acc), CF_ETOOBIG);
    rft_net_unhandle(n, "p/0");
    assert_int_equal(rft_net_handle(n, "p/9", accept_cb, &acc), CF_OK);
    /* Addresses. */
    const char *bad[] = {
        "",        "127.0.0.1", "127.0.0.1:",    "127.0.0.1:x", "127.0.0.1:70000", "example.com:80",
        "[::1:80", "[::1]80",   "1.2.3.4:123456"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errmsg[0] = '\0';
        assert_int_equal(rft_net_listen(n, bad[i], errmsg), CF_EINVAL);
        assert_true(errmsg[0] != '\0');
        struct conres r = {0};
        assert_int_equal(rft_net_connect(n, bad[i], ALPN, NULL, 0, 0, connect_cb, &r, NULL),
                         CF_EINVAL);
    }
    struct conres r = {0};
    assert_int_equal(rft_net_connect(n, "127.0.0.1:0", ALPN, NULL, 0, 0, connect_cb, &r, NULL),
                     CF_EINVAL);
    assert_int_equal(rft_net_connect(n, "127.0.0.1:1", "", NULL, 0, 0, connect_cb, &r, NULL),
                     CF_EINVAL);
    /* Listening: IPv6, then in use. */
    assert_int_equal(rft_net_listen(n, "[::1]:0", errmsg), CF_OK);
    assert_int_equal(rft_net_handle(n, "late/1", accept_cb, &acc), CF_EINVAL);
    assert_int_equal(rft_net_listen(n, "127.0.0.1:0", errmsg), CF_EINVAL);
    struct rft_net *n2 = net_make(f, NULL, NULL, false);
    char addr[64];
    snprintf(addr, sizeof(addr), "[::1]:%d", rft_net_port(n));
    assert_int_not_equal(rft_net_listen(n2, addr, errmsg), CF_OK);
    assert_non_null(strstr(errmsg, addr));
    assert_non_null(strstr(errmsg, "address already in use"));
    net_close_wait(f, n2);
    net_close_wait(f, n);
    assert_false(r.done);
}

/* Allocation failures at every step of a connect and accept: the callback fires exactly once,
 * nothing leaks (ASan, cf_mem_live in teardown), and a later connect works. */
static void test_oom(void **state)
{
    struct fx *f = *state;
    struct rft_net *n = NULL;
    cf_mem_fail_after(1);
    assert_int_equal(rft_net_new(&f->loop, &n), CF_ENOMEM);
    cf_mem_fail_after(0);
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    char addr[64];
    addr_of(sn, addr);
    int closed = 0;
    bool succeeded = false;
    for (unsigned long k = 1; k < 200 && !succeeded; k++) {
        struct conres r = {0};
        cf_mem_fail_after(k);
        int rv = rft_net_connect(cn, addr, ALPN, (const uint8_t *)"hello", 5, 2000, connect_cb, &r,
                                 NULL);
        if (rv == CF_OK) {
            run_until(f, conres_done, &r);
        } else {
            assert_int_equal(rv, CF_ENOMEM);
        }
        cf_mem_fail_after(0);
        if (r.done && r.status == CF_OK) {
            uv_close((uv_handle_t *)r.stream, rft_net_stream_free);
            succeeded = true;
        }
        run_for(f, 20);
        while (closed < acc.count) {
            uv_close((uv_handle_t *)acc.streams[closed++], rft_net_stream_free);
        }
        acc.count = closed = 0;
    }
    assert_true(succeeded);
    struct conres r;
    dial(f, cn, addr, ALPN, NULL, 0, 2000, &r);
    assert_int_equal(r.status, CF_OK);
    uv_close((uv_handle_t *)r.stream, rft_net_stream_free);
    while (acc.count < 1) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)acc.streams[0], rft_net_stream_free);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

/* Tests: close semantics ------------------------------------------------------------------------
 */

static void test_close_user_end(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    struct conres r;
    /* The client closes first (after sending data that must still arrive). */
    open_tunnel(f, sn, &acc, cn, &r);
    struct endp *c = endp_new(r.stream, 5, 300000, true);
    struct endp *s = endp_new(acc.streams[0], 6, 0, true);
    while (c->produced < c->to_send || c->inflight > 0) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    endp_close(c);
    run_until(f, endp_eof, s);
    assert_same(c, s);
    endp_close(s);
    run_until(f, endp_closed, c);
    run_until(f, endp_closed, s);
    endp_free(c);
    endp_free(s);
    /* The server closes first. */
    open_tunnel(f, sn, &acc, cn, &r);
    c = endp_new(r.stream, 5, 0, true);
    s = endp_new(acc.streams[1], 6, 0, true);
    endp_close(s);
    run_until(f, endp_eof, c);
    endp_close(c);
    run_until(f, endp_closed, c);
    run_until(f, endp_closed, s);
    endp_free(c);
    endp_free(s);
    net_close_wait(f, cn);
    net_close_wait(f, sn);
}

static void test_close_net_with_live_tunnels(void **state)
{
    struct fx *f = *state;
    struct accepted acc = {0};
    struct rft_net *sn = net_make(f, &f->a, &acc, true);
    struct rft_net *cn = net_make(f, &f->b, NULL, false);
    struct conres r1, r2;
    open_tunnel(f, sn, &acc, cn, &r1);
    open_tunnel(f, sn, &acc, cn, &r2);
    struct endp *c1 = endp_new(r1.stream, 1, 1 << 20, true);
    struct endp *s1 = endp_new(acc.streams[0], 2, 1 << 20, true);
    struct endp *c2 = endp_new(r2.stream, 3, 0, false);
    struct endp *s2 = endp_new(acc.streams[1], 4, 0, false);
    run_for(f, 20);
    /* Both nets close while data is in flight and two user ends are not even reading. */
    bool sclosed = false, cclosed = false;
    rft_net_close(sn, net_closed_cb, &sclosed);
    rft_net_close(cn, net_closed_cb, &cclosed);
    assert_false(sclosed);
    assert_false(cclosed);
    run_until(f, flag_done, &sclosed);
    run_until(f, flag_done, &cclosed);
    run_until(f, endp_eof, c1);
    run_until(f, endp_eof, s1);
    struct endp *all[] = {c1, s1, c2, s2};
    for (int i = 0; i < 4; i++) {
        endp_close(all[i]);
    }
    for (int i = 0; i < 4; i++) {
        run_until(f, endp_closed, all[i]);
        endp_free(all[i]);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exchange_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exchange_16mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creds_replaced_keeps_tunnels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_tunnels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_client_other_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_server_other_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_client_trusts_other_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_unknown_alpn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_no_creds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_closed_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_no_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_alpn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_hello_and_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_hello_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_user_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_net_with_live_tunnels, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
