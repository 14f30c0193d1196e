/*
 * Mutual-TLS cluster tunnels (see net.h).
 *
 * Happy path, server side: the listener accepts a TCP connection, the tunnel runs the TLS 1.3
 * handshake over memory BIOs (the ALPN callback accepts only a protocol that has a handler), takes
 * the peer's CN from its verified certificate, asks allow(), reads the 4-byte length and the hello,
 * answers the ack byte, creates a socketpair and hands the user end to the handler. Client side:
 * TCP connect, handshake offering one ALPN id, same CN/allow checks, send the hello, wait for the
 * ack, then hand the user end to the connect callback. From then on the tunnel relays plaintext
 * between its end of the socketpair and the TLS connection, pausing the reading side while more
 * than HIGH_WATER bytes wait for the other.
 *
 * Failure modes: TCP errors, a failed handshake (OpenSSL's reason is reported to the connecting
 * side, the accepting side logs it), a refused peer, the deadline (10 s server side, the caller's
 * timeout client side) and EOF or an error on either side all close the whole tunnel: close_notify
 * and pending ciphertext are flushed with uv_shutdown when the TCP side is still healthy, pending
 * plaintext is flushed to the user end the same way, and a grace timer force-closes whatever has
 * not finished within CLOSE_GRACE_MS. A tunnel is freed once its three handles are closed; a
 * pending connect callback fires then, so it never fires twice nor inside an API call.
 */
#include "raft/net.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <raft.h>

#define CF_LOG_MODULE "net"
#include "lib/bytes.h"
#include "lib/log.h"
#include "lib/mem.h"

#define HIGH_WATER ((size_t)1 << 20) /* bytes queued for one side before the other pauses */
#define LOW_WATER (HIGH_WATER / 2)   /* resume below this */
#define SERVER_DEADLINE_MS 10000     /* handshake + hello, accepting side */
#define CLOSE_GRACE_MS 2000          /* flushing on close */
#define IO_BUF_SIZE 65536            /* uv read buffers */
#define READ_CHUNK 16384             /* plaintext per SSL_read (one TLS record) */
#define KEEPALIVE_S 30               /* TCP keepalive delay: finds peers that vanished */
#define PEER_MAX 256                 /* CN length limit, with the NUL */

struct handler
{
    char alpn[256]; /* "" = free slot */
    size_t alpn_len;
    rft_net_accept_cb cb;
    void *arg;
};

/* A connect request, embedded in its client tunnel. */
struct rft_net_connect
{
    rft_net_connect_cb cb;
    void *arg;
    bool pending; /* cb not fired yet */
};

enum tunnel_state {
    T_CONNECTING, /* client: TCP connect in flight */
    T_HANDSHAKE,
    T_HELLO, /* server: reading the hello; client: waiting for the ack */
    T_OPEN,  /* relaying */
    T_CLOSING,
};

struct tunnel
{
    struct tunnel *prev, *next; /* in net->tunnels */
    struct rft_net *net;        /* borrowed */
    bool client;
    enum tunnel_state state;
    unsigned open_handles; /* initialised handles not yet closed; freed at 0 */

    uv_tcp_t tcp;
    bool tcp_init;
    bool tcp_connected;
    bool tcp_dead;    /* EOF or error: no graceful shutdown */
    bool tcp_paused;  /* reading stopped: relay side over HIGH_WATER */
    uv_timer_t timer; /* deadline, then the close grace period */
    bool timer_init;
    uv_pipe_t relay; /* our end of the socketpair */
    bool relay_init;
    bool relay_dead;
    bool relay_paused; /* reading stopped: TCP side over HIGH_WATER */
    uv_shutdown_t tcp_shutdown;
    uv_shutdown_t relay_shutdown;
    uv_connect_t connect_req;

    SSL *ssl;       /* owned */
    BIO *rbio;      /* borrowed from ssl: network -> OpenSSL */
    BIO *wbio;      /* borrowed from ssl: OpenSSL -> network */
    bool ssl_fatal; /* no close_notify after a fatal error */

    char peer[PEER_MAX]; /* the peer's CN once verified */
    char addr[80];       /* client: the address dialled, for messages */
    char alpn[256];      /* client: the protocol offered */
    bool tcp_reading;

    /* Hello: server reads hdr then hello; client sends hello_out. */
    uint8_t hdr[4];
    size_t hdr_got;
    uint8_t *hello; /* owned */
    size_t hello_len;
    size_t hello_got;
    uint8_t *hello_out; /* owned: length prefix + bytes */
    size_t hello_out_len;

    struct rft_net_connect conn; /* client only */
    unsigned timeout_ms;
    int status; /* first failure, reported to conn.cb */
    char errmsg[CF_ERRMSG_SIZE];

    size_t tcp_queued;   /* ciphertext bytes in uv_write requests on tcp */
    size_t relay_queued; /* plaintext bytes in uv_write requests on relay */

    uint8_t tcp_buf[IO_BUF_SIZE];
    uint8_t relay_buf[IO_BUF_SIZE];
};

struct wreq
{
    uv_write_t req;
    struct tunnel *t; /* borrowed */
    size_t len;
    uint8_t data[];
};

struct rft_net
{
    uv_loop_t *loop; /* borrowed */
    SSL_CTX *ctx;    /* owned; NULL = no credentials */
    bool (*allow)(void *arg, const char *peer);
    void *allow_arg;
    struct handler handlers[RFT_NET_HANDLERS_MAX];
    uv_tcp_t listener;
    bool listener_init;
    int port;
    uv_timer_t anchor; /* never started: makes the close callback always asynchronous */
    uv_tcp_t reject;   /* accepts and drops a connection when no tunnel can be allocated */
    bool reject_busy;
    unsigned open_handles;  /* anchor + listener + reject while busy */
    struct tunnel *tunnels; /* list head */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void tunnel_drive(struct tunnel *t);
static void tunnel_close(struct tunnel *t);
static void tcp_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf);
static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void relay_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf);
static void relay_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Utilities ------------------------------------------------------------------------------------ */

static struct handler *handler_find(struct rft_net *n, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < RFT_NET_HANDLERS_MAX; i++) {
        struct handler *h = &n->handlers[i];
        if (h->alpn_len != 0 && h->alpn_len == len && memcmp(h->alpn, p, len) == 0) {
            return h;
        }
    }
    return NULL;
}

/* Parses "host:port", "[v6]:port" or "v6:port"; "localhost" is 127.0.0.1. */
static int parse_addr(const char *addr,
                      bool port_zero_ok,
                      struct sockaddr_storage *ss,
                      char errmsg[CF_ERRMSG_SIZE])
{
    if (addr == NULL || addr[0] == '\0') {
        cf_errmsg_printf(errmsg, "empty address");
        return CF_EINVAL;
    }
    char host[64];
    const char *port_s;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            cf_errmsg_printf(errmsg, "address %s: expected [ipv6]:port", addr);
            return CF_EINVAL;
        }
        hlen = (size_t)(close - addr - 1);
        if (hlen >= sizeof(host)) {
            cf_errmsg_printf(errmsg, "address %s: host too long", addr);
            return CF_EINVAL;
        }
        memcpy(host, addr + 1, hlen);
        port_s = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL) {
            cf_errmsg_printf(errmsg, "address %s: expected host:port", addr);
            return CF_EINVAL;
        }
        hlen = (size_t)(colon - addr);
        if (hlen >= sizeof(host)) {
            cf_errmsg_printf(errmsg, "address %s: host too long", addr);
            return CF_EINVAL;
        }
        memcpy(host, addr, hlen);
        port_s = colon + 1;
    }
    host[hlen] = '\0';
    unsigned long port = 0;
    size_t digits = strlen(port_s);
    if (digits == 0 || digits > 5 || strspn(port_s, "0123456789") != digits) {
        cf_errmsg_printf(errmsg, "address %s: bad port", addr);
        return CF_EINVAL;
    }
    for (size_t i = 0; i < digits; i++) {
        port = port * 10 + (unsigned long)(port_s[i] - '0');
    }
    if (port > 65535 || (port == 0 && !port_zero_ok)) {
        cf_errmsg_printf(errmsg, "address %s: port out of range", addr);
        return CF_EINVAL;
    }
    if (strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
        return CF_OK;
    }
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) {
        return CF_OK;
    }
    cf_errmsg_printf(errmsg, "address %s: host is not an IP literal or localhost", addr);
    return CF_EINVAL;
}

/* The subject CN of the verified peer certificate, or false. */
static bool peer_cn(SSL *ssl, char out[PEER_MAX])
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL) {
        return false;
    }
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) {
        return false;
    }
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, s);
    bool ok = len > 0 && len < PEER_MAX && memchr(utf8, '\0', (size_t)len) == NULL;
    if (ok) {
        memcpy(out, utf8, (size_t)len);
        out[len] = '\0';
    }
    OPENSSL_free(utf8);
    ERR_clear_error();
    return ok;
}

/* Tunnel lifetime ------------------------------------------------------------------------------ */

static void net_maybe_done(struct rft_net *n)
{
    if (!n->closing || n->open_handles > 0 || n->tunnels != NULL) {
        return;
    }
    void (*cb)(void *) = n->close_cb;
    void *arg = n->close_arg;
    SSL_CTX_free(n->ctx);
    cf_free(n);
    if (cb != NULL) {
        cb(arg);
    }
}

static void tunnel_destroy(struct tunnel *t)
{
    struct rft_net *n = t->net;
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        n->tunnels = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    if (t->client && t->conn.pending) {
        t->conn.pending = false;
        int status = t->status != CF_OK ? t->status : CF_ECANCELED;
        if (t->errmsg[0] == '\0') {
            cf_errmsg_printf(t->errmsg, "%s", cf_strerror(status));
        }
        t->conn.cb(t->conn.arg, status, NULL, NULL, t->errmsg);
    }
    SSL_free(t->ssl);
    cf_free(t->hello);
    cf_free(t->hello_out);
    cf_free(t);
    net_maybe_done(n);
}

static void tunnel_handle_close_cb(uv_handle_t *h)
{
    struct tunnel *t = h->data;
    if (--t->open_handles == 0) {
        tunnel_destroy(t);
    }
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, tunnel_handle_close_cb);
    }
}

/* Closes the timer once the TCP and relay handles are closing. */
static void tunnel_maybe_close_timer(struct tunnel *t)
{
    if (t->tcp_init && !uv_is_closing((uv_handle_t *)&t->tcp)) {
        return;
    }
    if (t->relay_init && !uv_is_closing((uv_handle_t *)&t->relay)) {
        return;
    }
    if (t->timer_init) {
        close_handle((uv_handle_t *)&t->timer);
    }
}

/* Records the first failure (reported to a pending connect) and closes the tunnel. */
static void tunnel_fail(struct tunnel *t, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tunnel_fail(struct tunnel *t, int status, const char *fmt, ...)
{
    if (t->state == T_CLOSING) {
        return;
    }
    if (t->status == CF_OK) {
        t->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
        va_end(ap);
    }
    if (!t->client) {
        CF_LOG(CF_LOG_WARN, "refused cluster connection%s%s: %s", t->peer[0] ? " from " : "",
               t->peer, t->errmsg);
    }
    tunnel_close(t);
}

/* A failure reported by OpenSSL: its reason, plus the verification result when there is one. */
static void tunnel_fail_ssl(struct tunnel *t, const char *what)
{
    char msg[CF_ERRMSG_SIZE];
    cf_err_from_ossl(msg, what);
    long vr = SSL_get_verify_result(t->ssl);
    t->ssl_fatal = true;
    if (vr != X509_V_OK) {
        tunnel_fail(t, CF_ECRYPTO, "%s (%s)", msg, X509_verify_cert_error_string(vr));
    } else {
        tunnel_fail(t, CF_ECRYPTO, "%s", msg);
    }
}

/* Writing -------------------------------------------------------------------------------------- */

static void tcp_write_cb(uv_write_t *req, int status)
{
    struct wreq *w = CF_CONTAINER_OF(req, struct wreq, req);
    struct tunnel *t = w->t;
    t->tcp_queued -= w->len;
    cf_free(w);
    if (status < 0) {
        if (t->state != T_CLOSING) {
            t->tcp_dead = true;
            tunnel_fail(t, CF_EIO, "write to %s: %s", t->peer, uv_strerror(status));
        }
        return;
    }
    if (t->state == T_OPEN && t->relay_paused && t->tcp_queued <= LOW_WATER) {
        t->relay_paused = false;
        uv_read_start((uv_stream_t *)&t->relay, relay_alloc_cb, relay_read_cb);
    }
}

/* Sends whatever OpenSSL has put in the write BIO. */
static void tunnel_flush(struct tunnel *t)
{
    char *data = NULL;
    long len = BIO_get_mem_data(t->wbio, &data);
    if (len <= 0 || !t->tcp_connected || t->tcp_dead || uv_is_closing((uv_handle_t *)&t->tcp)) {
        (void)BIO_reset(t->wbio);
        return;
    }
    struct wreq *w = cf_malloc(sizeof(*w) + (size_t)len);
    if (w == NULL) {
        (void)BIO_reset(t->wbio);
        t->tcp_dead = true;
        tunnel_fail(t, CF_ENOMEM, "out of memory");
        return;
    }
    memcpy(w->data, data, (size_t)len);
    (void)BIO_reset(t->wbio);
    w->t = t;
    w->len = (size_t)len;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)len);
    int rv = uv_write(&w->req, (uv_stream_t *)&t->tcp, &buf, 1, tcp_write_cb);
    if (rv != 0) {
        cf_free(w);
        t->tcp_dead = true;
        tunnel_fail(t, CF_EIO, "write: %s", uv_strerror(rv));
        return;
    }
    t->tcp_queued += (size_t)len;
}

/* Encrypts plaintext into the write BIO. */
static bool tunnel_ssl_write(struct tunnel *t, const void *p, size_t n)
{
    ERR_clear_error();
    size_t written = 0;
    if (n > 0 && (SSL_write_ex(t->ssl, p, n, &written) != 1 || written != n)) {
        tunnel_fail_ssl(t, "TLS write");
        return false;
    }
    return true;
}

static void relay_write_cb(uv_write_t *req, int status)
{
    struct wreq *w = CF_CONTAINER_OF(req, struct wreq, req);
    struct tunnel *t = w->t;
    t->relay_queued -= w->len;
    cf_free(w);
    if (status < 0) {
        if (t->state != T_CLOSING) {
            t->relay_dead = true;
            tunnel_fail(t, CF_EIO, "relay write: %s", uv_strerror(status));
        }
        return;
    }
    if (t->state == T_OPEN && t->tcp_paused && t->relay_queued <= LOW_WATER) {
        t->tcp_paused = false;
        tunnel_drive(t);
    }
}

/* Closing -------------------------------------------------------------------------------------- */

static void tcp_shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    struct tunnel *t = req->data;
    close_handle((uv_handle_t *)&t->tcp);
    tunnel_maybe_close_timer(t);
}

static void relay_shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    struct tunnel *t = req->data;
    close_handle((uv_handle_t *)&t->relay);
    tunnel_maybe_close_timer(t);
}

static void close_grace_cb(uv_timer_t *timer)
{
    struct tunnel *t = CF_CONTAINER_OF(timer, struct tunnel, timer);
    if (t->tcp_init) {
        close_handle((uv_handle_t *)&t->tcp);
    }
    if (t->relay_init) {
        close_handle((uv_handle_t *)&t->relay);
    }
    close_handle((uv_handle_t *)&t->timer);
}

/* Closes the whole tunnel: flushes what can be flushed, then closes the three handles. */
static void tunnel_close(struct tunnel *t)
{
    if (t->state == T_CLOSING) {
        return;
    }
    enum tunnel_state prev = t->state;
    t->state = T_CLOSING;
    bool waiting = false;
    if (t->tcp_init) {
        uv_read_stop((uv_stream_t *)&t->tcp);
        if (t->tcp_connected && !t->tcp_dead && t->ssl != NULL) {
            if (!t->ssl_fatal && (prev == T_HELLO || prev == T_OPEN)) {
                ERR_clear_error();
                (void)SSL_shutdown(t->ssl);
                ERR_clear_error();
            }
            tunnel_flush(t);
        }
        if (t->tcp_connected && !t->tcp_dead) {
            t->tcp_shutdown.data = t;
            if (uv_shutdown(&t->tcp_shutdown, (uv_stream_t *)&t->tcp, tcp_shutdown_cb) == 0) {
                waiting = true;
            } else {
                close_handle((uv_handle_t *)&t->tcp);
            }
        } else {
            close_handle((uv_handle_t *)&t->tcp);
        }
    }
    if (t->relay_init) {
        uv_read_stop((uv_stream_t *)&t->relay);
        bool shut = false;
        if (!t->relay_dead) {
            t->relay_shutdown.data = t;
            shut =
                uv_shutdown(&t->relay_shutdown, (uv_stream_t *)&t->relay, relay_shutdown_cb) == 0;
        }
        if (shut) {
            waiting = true;
        } else {
            close_handle((uv_handle_t *)&t->relay);
        }
    }
    if (t->timer_init) {
        uv_timer_stop(&t->timer);
        if (waiting) {
            uv_timer_start(&t->timer, close_grace_cb, CLOSE_GRACE_MS, 0);
        } else {
            close_handle((uv_handle_t *)&t->timer);
        }
    }
}

/* Relaying ------------------------------------------------------------------------------------- */

static void relay_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)size;
    struct tunnel *t = h->data;
    *buf = uv_buf_init((char *)t->relay_buf, sizeof(t->relay_buf));
}

static void relay_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct tunnel *t = s->data;
    if (nread == 0 || t->state != T_OPEN) {
        return;
    }
    if (nread < 0) {
        t->relay_dead = true;
        tunnel_close(t);
        return;
    }
    if (!tunnel_ssl_write(t, t->relay_buf, (size_t)nread)) {
        return;
    }
    tunnel_flush(t);
    if (t->state == T_OPEN && t->tcp_queued > HIGH_WATER) {
        t->relay_paused = true;
        uv_read_stop((uv_stream_t *)&t->relay);
    }
}

/* Creates the socketpair, starts relaying our end and returns the user end. */
static uv_stream_t *tunnel_open_pair(struct tunnel *t)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        tunnel_fail(t, CF_EIO, "socketpair: %s", strerror(errno));
        return NULL;
    }
    uv_pipe_t *user = raft_malloc(sizeof(*user));
    if (user == NULL) {
        close(fds[0]);
        close(fds[1]);
        tunnel_fail(t, CF_ENOMEM, "out of memory");
        return NULL;
    }
    uv_pipe_init(t->net->loop, &t->relay, 0);
    t->relay.data = t;
    t->relay_init = true;
    t->open_handles++;
    int rv = uv_pipe_open(&t->relay, fds[0]);
    if (rv != 0) {
        close(fds[0]);
        close(fds[1]);
        raft_free(user);
        t->relay_dead = true;
        tunnel_fail(t, CF_EIO, "relay: %s", uv_strerror(rv));
        return NULL;
    }
    uv_pipe_init(t->net->loop, user, 0);
    rv = uv_pipe_open(user, fds[1]);
    if (rv != 0) {
        close(fds[1]);
        uv_close((uv_handle_t *)user, rft_net_stream_free);
        tunnel_fail(t, CF_EIO, "relay: %s", uv_strerror(rv));
        return NULL;
    }
    rv = uv_read_start((uv_stream_t *)&t->relay, relay_alloc_cb, relay_read_cb);
    if (rv != 0) {
        uv_close((uv_handle_t *)user, rft_net_stream_free);
        tunnel_fail(t, CF_EIO, "relay: %s", uv_strerror(rv));
        return NULL;
    }
    return (uv_stream_t *)user;
}

/* Decrypts and forwards to the relay until OpenSSL needs more input or the relay is full. */
static void tunnel_pump(struct tunnel *t)
{
    while (t->state == T_OPEN && !t->tcp_paused) {
        struct wreq *w = cf_malloc(sizeof(*w) + READ_CHUNK);
        if (w == NULL) {
            tunnel_fail(t, CF_ENOMEM, "out of memory");
            return;
        }
        ERR_clear_error();
        size_t got = 0;
        int r = SSL_read_ex(t->ssl, w->data, READ_CHUNK, &got);
        if (r != 1) {
            cf_free(w);
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                return;
            }
            if (e == SSL_ERROR_ZERO_RETURN) {
                tunnel_close(t);
            } else {
                t->ssl_fatal = true;
                tunnel_fail_ssl(t, "TLS read");
            }
            return;
        }
        w->t = t;
        w->len = got;
        uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)got);
        int rv = uv_write(&w->req, (uv_stream_t *)&t->relay, &buf, 1, relay_write_cb);
        if (rv != 0) {
            cf_free(w);
            t->relay_dead = true;
            tunnel_fail(t, CF_EIO, "relay write: %s", uv_strerror(rv));
            return;
        }
        t->relay_queued += got;
        if (t->relay_queued > HIGH_WATER) {
            t->tcp_paused = true;
        }
    }
}

/* Handshake and hello -------------------------------------------------------------------------- */

static void tunnel_handshake_done(struct tunnel *t)
{
    struct rft_net *n = t->net;
    if (SSL_get_verify_result(t->ssl) != X509_V_OK || !peer_cn(t->ssl, t->peer)) {
        t->peer[0] = '\0';
        tunnel_fail(t, CF_ECRYPTO, "peer certificate has no usable subject CN");
        return;
    }
    const unsigned char *sel = NULL;
    unsigned int sel_len = 0;
    SSL_get0_alpn_selected(t->ssl, &sel, &sel_len);
    if (t->client) {
        if (sel_len == 0 || sel_len != strlen(t->alpn) || memcmp(sel, t->alpn, sel_len) != 0) {
            tunnel_fail(t, CF_ECRYPTO, "TLS handshake with %s: no application protocol selected",
                        t->addr);
            return;
        }
    } else if (sel_len == 0 || handler_find(n, sel, sel_len) == NULL) {
        tunnel_fail(t, CF_ECRYPTO, "no handler for the application protocol");
        return;
    }
    if (n->allow != NULL && !n->allow(n->allow_arg, t->peer)) {
        tunnel_fail(t, CF_EDENIED, "peer %s is not allowed", t->peer);
        return;
    }
    if (t->state != T_HANDSHAKE) {
        return; /* allow() closed the net */
    }
    t->state = T_HELLO;
    if (t->client) {
        if (tunnel_ssl_write(t, t->hello_out, t->hello_out_len)) {
            tunnel_flush(t);
        }
    }
}

/* Server: the hello is complete; answer the ack and hand the stream to the handler. */
static void tunnel_hand_over(struct tunnel *t)
{
    const unsigned char *sel = NULL;
    unsigned int sel_len = 0;
    SSL_get0_alpn_selected(t->ssl, &sel, &sel_len);
    struct handler *h = handler_find(t->net, sel, sel_len);
    if (h == NULL) {
        tunnel_fail(t, CF_ECANCELED, "handler removed");
        return;
    }
    uint8_t ack = RFT_NET_ACK;
    if (!tunnel_ssl_write(t, &ack, 1)) {
        return;
    }
    tunnel_flush(t);
    if (t->state == T_CLOSING) {
        return;
    }
    uv_stream_t *user = tunnel_open_pair(t);
    if (user == NULL) {
        return;
    }
    t->state = T_OPEN;
    uv_timer_stop(&t->timer);
    uint8_t *hello = t->hello;
    t->hello = NULL;
    static const uint8_t empty = 0;
    h->cb(h->arg, t->peer, hello != NULL ? hello : &empty, t->hello_len, user);
    cf_free(hello);
}

/* Client: the ack arrived; hand the stream to the connect callback. */
static void tunnel_connected(struct tunnel *t)
{
    uv_stream_t *user = tunnel_open_pair(t);
    if (user == NULL) {
        return;
    }
    t->state = T_OPEN;
    uv_timer_stop(&t->timer);
    t->conn.pending = false;
    t->conn.cb(t->conn.arg, CF_OK, t->peer, user, NULL);
}

/* Reads exactly n bytes into p (partially: *got advances). Returns 1 when complete, 0 when more
 * input is needed, -1 after failing the tunnel. */
static int tunnel_read_exact(struct tunnel *t, uint8_t *p, size_t n, size_t *got)
{
    while (*got < n) {
        ERR_clear_error();
        size_t r = 0;
        int ok = SSL_read_ex(t->ssl, p + *got, n - *got, &r);
        if (ok != 1) {
            int e = SSL_get_error(t->ssl, ok);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                return 0;
            }
            if (e == SSL_ERROR_ZERO_RETURN) {
                tunnel_fail(t, CF_EIO, "%s closed the connection before %s",
                            t->client ? t->addr : "peer",
                            t->client ? "accepting it (refused)" : "sending its hello");
            } else {
                tunnel_fail_ssl(t, t->client ? "refused by peer" : "TLS read");
            }
            return -1;
        }
        *got += r;
    }
    return 1;
}

static void tunnel_step_hello(struct tunnel *t)
{
    if (t->client) {
        uint8_t ack = 0;
        size_t got = 0;
        int r = tunnel_read_exact(t, &ack, 1, &got);
        if (r != 1) {
            return;
        }
        if (ack != RFT_NET_ACK) {
            tunnel_fail(t, CF_EMALFORMED, "%s: bad acceptance byte 0x%02x", t->addr, ack);
            return;
        }
        tunnel_connected(t);
        return;
    }
    if (t->hdr_got < sizeof(t->hdr)) {
        if (tunnel_read_exact(t, t->hdr, sizeof(t->hdr), &t->hdr_got) != 1) {
            return;
        }
        t->hello_len = cf_get_be32(t->hdr);
        if (t->hello_len > RFT_NET_HELLO_MAX) {
            tunnel_fail(t, CF_ETOOBIG, "hello of %zu bytes (max %d)", t->hello_len,
                        RFT_NET_HELLO_MAX);
            return;
        }
        if (t->hello_len > 0) {
            t->hello = cf_malloc(t->hello_len);
            if (t->hello == NULL) {
                tunnel_fail(t, CF_ENOMEM, "out of memory");
                return;
            }
        }
    }
    if (t->hello_len > 0 && tunnel_read_exact(t, t->hello, t->hello_len, &t->hello_got) != 1) {
        return;
    }
    tunnel_hand_over(t);
}

/* Advances the tunnel as far as the input allows, then sends what OpenSSL produced. */
static void tunnel_drive(struct tunnel *t)
{
    for (;;) {
        enum tunnel_state before = t->state;
        switch (t->state) {
            case T_HANDSHAKE: {
                ERR_clear_error();
                int r = SSL_do_handshake(t->ssl);
                if (r == 1) {
                    tunnel_handshake_done(t);
                    break;
                }
                int e = SSL_get_error(t->ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    char what[CF_ERRMSG_SIZE];
                    snprintf(what, sizeof(what), "TLS handshake%s%s", t->client ? " with " : "",
                             t->client ? t->addr : "");
                    tunnel_fail_ssl(t, what);
                }
                break;
            }
            case T_HELLO:
                tunnel_step_hello(t);
                break;
            case T_OPEN:
                tunnel_pump(t);
                break;
            case T_CONNECTING:
            case T_CLOSING:
                break;
        }
        if (t->state == T_CLOSING) {
            return;
        }
        tunnel_flush(t);
        if (t->state == before) {
            break;
        }
    }
    if (t->state == T_CLOSING) {
        return;
    }
    if (t->tcp_paused && t->tcp_reading) {
        uv_read_stop((uv_stream_t *)&t->tcp);
        t->tcp_reading = false;
    } else if (!t->tcp_paused && !t->tcp_reading) {
        int rv = uv_read_start((uv_stream_t *)&t->tcp, tcp_alloc_cb, tcp_read_cb);
        if (rv != 0) {
            t->tcp_dead = true;
            tunnel_fail(t, CF_EIO, "read: %s", uv_strerror(rv));
            return;
        }
        t->tcp_reading = true;
    }
}

/* TCP side ------------------------------------------------------------------------------------- */

static void tcp_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)size;
    struct tunnel *t = h->data;
    *buf = uv_buf_init((char *)t->tcp_buf, sizeof(t->tcp_buf));
}

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct tunnel *t = s->data;
    if (nread == 0 || t->state == T_CLOSING) {
        return;
    }
    if (nread < 0) {
        t->tcp_dead = true;
        if (t->state == T_OPEN) {
            tunnel_close(t);
        } else if (t->client) {
            tunnel_fail(t, CF_EIO, "%s closed the connection during the %s", t->addr,
                        t->state == T_HANDSHAKE ? "TLS handshake" : "acceptance (refused)");
        } else {
            tunnel_fail(t, CF_EIO, "peer closed the connection before its hello");
        }
        return;
    }
    if (BIO_write(t->rbio, t->tcp_buf, (int)nread) != (int)nread) {
        ERR_clear_error();
        tunnel_fail(t, CF_ENOMEM, "out of memory");
        return;
    }
    tunnel_drive(t);
}

static void deadline_cb(uv_timer_t *timer)
{
    struct tunnel *t = CF_CONTAINER_OF(timer, struct tunnel, timer);
    const char *phase = t->state == T_CONNECTING  ? "TCP connect"
                        : t->state == T_HANDSHAKE ? "TLS handshake"
                        : t->client               ? "acceptance"
                                                  : "hello";
    if (t->client) {
        tunnel_fail(t, CF_ETIMEDOUT, "connect to %s: timed out after %u ms (%s)", t->addr,
                    t->timeout_ms, phase);
    } else {
        tunnel_fail(t, CF_ETIMEDOUT, "timed out after %d ms (%s)", SERVER_DEADLINE_MS, phase);
    }
}

/* Allocates a tunnel, its timer and its SSL; NULL on OOM (nothing to clean up then). */
static struct tunnel *tunnel_new(struct rft_net *n, bool client)
{
    struct tunnel *t = cf_calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->net = n;
    t->client = client;
    t->state = client ? T_CONNECTING : T_HANDSHAKE;
    uv_timer_init(n->loop, &t->timer);
    t->timer.data = t;
    t->timer_init = true;
    t->open_handles = 1;
    uv_tcp_init(n->loop, &t->tcp);
    t->tcp.data = t;
    t->tcp_init = true;
    t->open_handles++;
    t->next = n->tunnels;
    if (n->tunnels != NULL) {
        n->tunnels->prev = t;
    }
    n->tunnels = t;
    return t;
}

/* Creates the SSL object with memory BIOs. */
static bool tunnel_ssl_new(struct tunnel *t)
{
    ERR_clear_error();
    t->ssl = SSL_new(t->net->ctx);
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        ERR_clear_error();
        tunnel_fail(t, CF_ENOMEM, "out of memory");
        return false;
    }
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_mem_eof_return(wbio, -1);
    SSL_set_bio(t->ssl, rbio, wbio);
    t->rbio = rbio;
    t->wbio = wbio;
    return true;
}

static void net_handle_close_cb(uv_handle_t *h);

static void reject_close_cb(uv_handle_t *h)
{
    struct rft_net *n = h->data;
    n->reject_busy = false;
    net_handle_close_cb(h);
}

static void listener_connection_cb(uv_stream_t *server, int status)
{
    struct rft_net *n = CF_CONTAINER_OF(server, struct rft_net, listener);
    if (status < 0 || n->closing) {
        CF_LOG(CF_LOG_WARN, "cluster listener: %s", uv_strerror(status));
        return;
    }
    struct tunnel *t = tunnel_new(n, false);
    if (t == NULL) {
        /* libuv stops accepting until this connection is taken: take it and drop it. */
        CF_LOG(CF_LOG_ERROR, "cluster listener: out of memory: connection dropped");
        if (!n->reject_busy) {
            uv_tcp_init(n->loop, &n->reject);
            n->reject.data = n;
            n->reject_busy = true;
            n->open_handles++;
            (void)uv_accept(server, (uv_stream_t *)&n->reject);
            uv_close((uv_handle_t *)&n->reject, reject_close_cb);
        }
        return;
    }
    int rv = uv_accept(server, (uv_stream_t *)&t->tcp);
    if (rv != 0) {
        tunnel_fail(t, CF_EIO, "accept: %s", uv_strerror(rv));
        return;
    }
    t->tcp_connected = true;
    /* Each unfinished handshake holds TLS state for up to SERVER_DEADLINE_MS: past the cap, new
     * connections are closed at once, so that a flood costs bounded memory. */
    unsigned pending = 0;
    for (struct tunnel *o = n->tunnels; o != NULL; o = o->next) {
        pending += o != t && !o->client && (o->state == T_HANDSHAKE || o->state == T_HELLO);
    }
    if (pending >= RFT_NET_PENDING_MAX) {
        t->tcp_dead = true;
        tunnel_fail(t, CF_EBUSY, "%u handshakes unfinished: connection refused", pending);
        return;
    }
    if (n->ctx == NULL) {
        t->tcp_dead = true;
        tunnel_fail(t, CF_ESEALED, "no cluster credentials");
        return;
    }
    if (!tunnel_ssl_new(t)) {
        return;
    }
    SSL_set_accept_state(t->ssl);
    uv_tcp_nodelay(&t->tcp, 1);
    uv_tcp_keepalive(&t->tcp, 1, KEEPALIVE_S);
    uv_timer_start(&t->timer, deadline_cb, SERVER_DEADLINE_MS, 0);
    tunnel_drive(t);
}

static void tcp_connect_cb(uv_connect_t *req, int status)
{
    struct tunnel *t = req->data;
    if (t->state == T_CLOSING) {
        return;
    }
    if (status < 0) {
        tunnel_fail(t, status == UV_ETIMEDOUT ? CF_ETIMEDOUT : CF_EIO, "connect to %s: %s", t->addr,
                    uv_strerror(status));
        return;
    }
    t->tcp_connected = true;
    t->state = T_HANDSHAKE;
    uv_tcp_nodelay(&t->tcp, 1);
    uv_tcp_keepalive(&t->tcp, 1, KEEPALIVE_S);
    tunnel_drive(t);
}

/* Credentials ---------------------------------------------------------------------------------- */

static int alpn_select_cb(SSL *ssl,
                          const unsigned char **out,
                          unsigned char *outlen,
                          const unsigned char *in,
                          unsigned int inlen,
                          void *arg)
{
    (void)ssl;
    struct rft_net *n = arg;
    /* Exactly one protocol, and one we have a handler for. */
    if (inlen < 2 || (unsigned)in[0] + 1 != inlen || handler_find(n, in + 1, in[0]) == NULL) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = in + 1;
    *outlen = in[0];
    return SSL_TLSEXT_ERR_OK;
}

/* Reads every certificate in a PEM string; CF_ECRYPTO when there is none or one is bad. */
static int read_certs(const char *pem,
                      const char *what,
                      STACK_OF(X509) * *out,
                      char errmsg[CF_ERRMSG_SIZE])
{
    int rv = CF_OK;
    BIO *bio = NULL;
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (sk == NULL) {
        return CF_ENOMEM;
    }
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL) {
            unsigned long e = ERR_peek_last_error();
            if (sk_X509_num(sk) > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM &&
                ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break;
            }
            rv = cf_err_from_ossl(errmsg, what);
            goto out;
        }
        if (sk_X509_push(sk, x) <= 0) {
            X509_free(x);
            rv = CF_ENOMEM;
            goto out;
        }
    }
    *out = sk;
    sk = NULL;
out:
    BIO_free(bio);
    sk_X509_pop_free(sk, X509_free);
    return rv;
}

static int ctx_build(struct rft_net *n,
                     const char *ca_pem,
                     const char *cert_pem,
                     const char *key_pem,
                     SSL_CTX **out,
                     char errmsg[CF_ERRMSG_SIZE])
{
    int rv = CF_OK;
    SSL_CTX *ctx = NULL;
    STACK_OF(X509) *cas = NULL;
    STACK_OF(X509) *chain = NULL;
    BIO *kbio = NULL;
    EVP_PKEY *key = NULL;
    ERR_clear_error();
    if (cert_pem == NULL || key_pem == NULL) {
        cf_errmsg_printf(errmsg, "certificate and key are required with a CA");
        return CF_EINVAL;
    }
    ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        rv = cf_err_from_ossl(errmsg, "SSL_CTX_new");
        goto out;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        rv = cf_err_from_ossl(errmsg, "set TLS 1.3");
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    rv = read_certs(ca_pem, "cluster CA certificate", &cas, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; i < sk_X509_num(cas); i++) {
        if (X509_STORE_add_cert(store, sk_X509_value(cas, i)) != 1) {
            rv = cf_err_from_ossl(errmsg, "add cluster CA certificate");
            goto out;
        }
    }
    rv = read_certs(cert_pem, "node certificate", &chain, errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) != 1) {
        rv = cf_err_from_ossl(errmsg, "use node certificate");
        goto out;
    }
    for (int i = 1; i < sk_X509_num(chain); i++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
            rv = cf_err_from_ossl(errmsg, "add chain certificate");
            goto out;
        }
    }
    kbio = BIO_new_mem_buf(key_pem, -1);
    if (kbio == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    key = PEM_read_bio_PrivateKey(kbio, NULL, NULL, NULL);
    if (key == NULL) {
        rv = cf_err_from_ossl(errmsg, "node key");
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        rv = cf_err_from_ossl(errmsg, "node key does not match its certificate");
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, n);
    *out = ctx;
    ctx = NULL;
out:
    if (rv == CF_ENOMEM) {
        cf_errmsg_printf(errmsg, "out of memory");
    }
    SSL_CTX_free(ctx);
    sk_X509_pop_free(cas, X509_free);
    sk_X509_pop_free(chain, X509_free);
    BIO_free(kbio);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rv;
}

/* Public API ----------------------------------------------------------------------------------- */

int rft_net_new(uv_loop_t *loop, struct rft_net **out)
{
    struct rft_net *n = cf_calloc(1, sizeof(*n));
    if (n == NULL) {
        return CF_ENOMEM;
    }
    n->loop = loop;
    uv_timer_init(loop, &n->anchor);
    n->anchor.data = n;
    n->open_handles = 1;
    *out = n;
    return CF_OK;
}

int rft_net_set_creds(struct rft_net *n,
                      const char *ca_pem,
                      const char *cert_pem,
                      const char *key_pem,
                      char errmsg[CF_ERRMSG_SIZE])
{
    SSL_CTX *ctx = NULL;
    if (ca_pem != NULL) {
        int rv = ctx_build(n, ca_pem, cert_pem, key_pem, &ctx, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
    }
    /* Live SSL objects hold their own reference to the old context. */
    SSL_CTX_free(n->ctx);
    n->ctx = ctx;
    return CF_OK;
}

void rft_net_set_allow(struct rft_net *n, bool (*allow)(void *arg, const char *peer), void *arg)
{
    n->allow = allow;
    n->allow_arg = arg;
}

int rft_net_handle(struct rft_net *n, const char *alpn, rft_net_accept_cb cb, void *arg)
{
    size_t len = alpn != NULL ? strlen(alpn) : 0;
    if (len == 0 || len > 255 || cb == NULL || n->listener_init || n->closing) {
        return CF_EINVAL;
    }
    if (handler_find(n, (const unsigned char *)alpn, len) != NULL) {
        return CF_EEXIST;
    }
    for (size_t i = 0; i < RFT_NET_HANDLERS_MAX; i++) {
        struct handler *h = &n->handlers[i];
        if (h->alpn_len == 0) {
            memcpy(h->alpn, alpn, len + 1);
            h->alpn_len = len;
            h->cb = cb;
            h->arg = arg;
            return CF_OK;
        }
    }
    return CF_ETOOBIG;
}

void rft_net_unhandle(struct rft_net *n, const char *alpn)
{
    struct handler *h = handler_find(n, (const unsigned char *)alpn, strlen(alpn));
    if (h != NULL) {
        memset(h, 0, sizeof(*h));
    }
}

static void net_handle_close_cb(uv_handle_t *h)
{
    struct rft_net *n = h->data;
    n->open_handles--;
    net_maybe_done(n);
}

int rft_net_listen(struct rft_net *n, const char *bind_addr, char errmsg[CF_ERRMSG_SIZE])
{
    if (n->closing) {
        cf_errmsg_printf(errmsg, "cluster net is closing");
        return CF_ESHUTDOWN;
    }
    if (n->listener_init) {
        cf_errmsg_printf(errmsg, "cluster net is already listening");
        return CF_EINVAL;
    }
    struct sockaddr_storage ss;
    int rv = parse_addr(bind_addr, true, &ss, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    uv_tcp_init(n->loop, &n->listener);
    n->listener.data = n;
    n->listener_init = true;
    n->open_handles++;
    int uvrv = uv_tcp_bind(&n->listener, (const struct sockaddr *)&ss, 0);
    if (uvrv == 0) {
        uvrv = uv_listen((uv_stream_t *)&n->listener, 128, listener_connection_cb);
    }
    if (uvrv != 0) {
        char what[CF_ERRMSG_SIZE];
        snprintf(what, sizeof(what), "listen on %s", bind_addr);
        rv = cf_err_from_uv(errmsg, uvrv, what);
        uv_close((uv_handle_t *)&n->listener, net_handle_close_cb);
        return rv;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (uv_tcp_getsockname(&n->listener, (struct sockaddr *)&bound, &len) == 0) {
        n->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                              : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
    return CF_OK;
}

uv_loop_t *rft_net_loop(const struct rft_net *n)
{
    return n->loop;
}

int rft_net_port(const struct rft_net *n)
{
    return n->port;
}

int rft_net_connect(struct rft_net *n,
                    const char *addr,
                    const char *alpn,
                    const uint8_t *hello,
                    size_t hello_len,
                    unsigned timeout_ms,
                    rft_net_connect_cb cb,
                    void *arg,
                    struct rft_net_connect **out)
{
    char errmsg[CF_ERRMSG_SIZE];
    if (out != NULL) {
        *out = NULL;
    }
    if (n->closing) {
        return CF_ESHUTDOWN;
    }
    size_t alen = alpn != NULL ? strlen(alpn) : 0;
    if (cb == NULL || alen == 0 || alen > 255 || hello_len > RFT_NET_HELLO_MAX ||
        (hello == NULL && hello_len > 0) || addr == NULL || strlen(addr) >= 80) {
        return CF_EINVAL;
    }
    struct sockaddr_storage ss;
    int rv = parse_addr(addr, false, &ss, errmsg);
    if (rv != CF_OK) {
        CF_LOG(CF_LOG_DEBUG, "%s", errmsg);
        return rv;
    }
    uint8_t *hello_out = cf_malloc(4 + hello_len);
    if (hello_out == NULL) {
        return CF_ENOMEM;
    }
    cf_put_be32(hello_out, (uint32_t)hello_len);
    if (hello_len > 0) {
        memcpy(hello_out + 4, hello, hello_len);
    }
    struct tunnel *t = tunnel_new(n, true);
    if (t == NULL) {
        cf_free(hello_out);
        return CF_ENOMEM;
    }
    t->hello_out = hello_out;
    t->hello_out_len = 4 + hello_len;
    snprintf(t->addr, sizeof(t->addr), "%s", addr);
    memcpy(t->alpn, alpn, alen + 1);
    t->conn.cb = cb;
    t->conn.arg = arg;
    t->conn.pending = true;
    t->timeout_ms = timeout_ms;
    if (out != NULL) {
        *out = &t->conn;
    }
    if (n->ctx == NULL) {
        tunnel_fail(t, CF_ESEALED, "connect to %s: no cluster credentials (sealed)", addr);
        return CF_OK;
    }
    if (!tunnel_ssl_new(t)) {
        return CF_OK;
    }
    SSL_set_connect_state(t->ssl);
    unsigned char wire[256];
    wire[0] = (unsigned char)alen;
    memcpy(wire + 1, alpn, alen);
    if (SSL_set_alpn_protos(t->ssl, wire, (unsigned)alen + 1) != 0) {
        tunnel_fail_ssl(t, "set ALPN");
        return CF_OK;
    }
    t->connect_req.data = t;
    int uvrv =
        uv_tcp_connect(&t->connect_req, &t->tcp, (const struct sockaddr *)&ss, tcp_connect_cb);
    if (uvrv != 0) {
        tunnel_fail(t, CF_EIO, "connect to %s: %s", addr, uv_strerror(uvrv));
        return CF_OK;
    }
    if (timeout_ms > 0) {
        uv_timer_start(&t->timer, deadline_cb, timeout_ms, 0);
    }
    return CF_OK;
}

void rft_net_connect_cancel(struct rft_net_connect *c)
{
    if (c == NULL || !c->pending) {
        return;
    }
    struct tunnel *t = CF_CONTAINER_OF(c, struct tunnel, conn);
    t->status = CF_ECANCELED;
    cf_errmsg_printf(t->errmsg, "connect to %s: canceled", t->addr);
    tunnel_close(t);
}

void rft_net_stream_free(uv_handle_t *h)
{
    raft_free(h);
}

void rft_net_close(struct rft_net *n, void (*cb)(void *arg), void *arg)
{
    if (n == NULL || n->closing) {
        return;
    }
    n->closing = true;
    n->close_cb = cb;
    n->close_arg = arg;
    if (n->listener_init && !uv_is_closing((uv_handle_t *)&n->listener)) {
        uv_close((uv_handle_t *)&n->listener, net_handle_close_cb);
    }
    for (struct tunnel *t = n->tunnels; t != NULL; t = t->next) {
        if (t->client && t->conn.pending) {
            t->status = CF_ECANCELED;
            cf_errmsg_printf(t->errmsg, "connect to %s: cluster net closed", t->addr);
        }
        tunnel_close(t);
    }
    uv_close((uv_handle_t *)&n->anchor, net_handle_close_cb);
}
