/*
 * Internal state shared by the listener (listener.c), TLS (tls.c) and the two protocol
 * implementations (http1.c, http2.c): the listener, one struct api_conn per accepted TCP
 * connection, and struct api__ex, the listener-side wrapper around each api_exchange.
 *
 * Ownership of an exchange is split in two flags. handler_owns is true from dispatch until
 * api_exchange_respond; proto_owns is true while the connection still needs it (queued for
 * in-order HTTP/1.1 output, or an open HTTP/2 stream whose response is being sent). The
 * exchange is freed when both are false. When a connection dies, its exchanges are detached
 * (conn = NULL, proto_owns = false) so that a late respond only frees them (rule A4).
 */
#ifndef CF_API_CONN_H_
#define CF_API_CONN_H_

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "api/http.h"
#include "api/http1.h"
#include "api/http2.h"
#include "api/tls.h"
#include "lib/buf.h"

#define API__READ_BUF_SIZE 65536
#define API__GRACE_MS 5000
#define API__LINGER_MS 2000
/* Pipelined HTTP/1.1 requests in flight before reading pauses. */
#define API__MAX_PIPELINE 64
/* Unsent bytes before reading pauses (the client is not reading its responses). */
#define API__MAX_WRITE_BACKLOG ((size_t)4 << 20)

#define api__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct api_listener
{
    uv_loop_t *loop; /* borrowed */
    uv_tcp_t server;
    uv_timer_t grace_timer; /* bounds the graceful close */
    api_handler_fn handler;
    void *ctx;        /* for handler */
    SSL_CTX *ssl_ctx; /* owned reference; NULL for plain listeners */
    char *cert_file;  /* owned */
    char *key_file;   /* owned */
    int tls_min_version;
    int port;
    size_t max_request_size;
    size_t max_header_size;
    uint64_t idle_timeout_ms;
    uint64_t read_header_timeout_ms;
    uint64_t read_timeout_ms;
    void *h2_callbacks;     /* owned nghttp2_session_callbacks, created on first use */
    struct api_conn *conns; /* list of live connections */
    size_t n_conns;         /* including those closing */
    int handles_open;       /* server and grace timer, until closed */
    bool closing;
    bool grace_closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    time_t date_sec;                  /* second of the cached Date header */
    char date[40];                    /* cached "Date: ..." value */
    uint8_t rbuf[API__READ_BUF_SIZE]; /* socket reads (consumed within the read callback) */
    uint8_t tbuf[API__READ_BUF_SIZE]; /* TLS plaintext (likewise) */
};

enum api__proto {
    API__PROTO_SNIFF = 0, /* waiting for the first bytes (or the TLS handshake) */
    API__PROTO_H1,
    API__PROTO_H2,
};

struct api__ex;

struct api_conn
{
    uv_tcp_t tcp;
    uv_timer_t timer;       /* header, read, idle and linger deadlines */
    uv_check_t flush_check; /* api__conn_flush_later: runs once at the end of a loop turn */
    uv_shutdown_t shutdown_req;
    struct api_listener *l; /* borrowed; outlives the connection */
    struct api_conn *prev;  /* listener's list */
    struct api_conn *next;
    bool use_tls;
    struct api_tls tls;
    enum api__proto proto;
    uint8_t sniff_len;        /* bytes of the HTTP/2 preface matched so far */
    struct api_h1_decoder h1; /* when proto == H1 */
    bool h1_started;
    uint64_t h1_msgs; /* requests completed, to restart the header timer */
    uint64_t msg_start_msgs;
    bool msg_active; /* a request is partly received */
    uint64_t msg_start_ms;
    bool sent_continue;       /* 100 Continue sent for the current request */
    void *h2;                 /* owned nghttp2_session when proto == H2 */
    struct api__ex *h2_ready; /* requests complete, to dispatch after nghttp2 returns */
    struct api__ex *ex_head;  /* exchanges, in request order */
    struct api__ex *ex_tail;
    size_t n_ex;
    struct cf_buf out;     /* plaintext staged for the next flush */
    size_t writes_pending; /* uv_write requests outstanding */
    size_t write_bytes;    /* bytes in them */
    uint64_t accept_ms;
    uint64_t last_activity_ms;
    uint64_t timer_due; /* 0 when the timer is stopped */
    int pending_closes; /* uv_close calls not yet called back */
    bool closing;       /* handles are closing; every entry point checks this */
    bool draining;      /* listener is closing: finish in-flight work, then close */
    bool finishing;     /* responses done: flush, shut down, linger, close */
    bool lingering;     /* write side shut down; discarding input until EOF */
    bool reading;
    bool in_io;         /* inside the read callback: flush once at its end */
    bool flush_armed;   /* flush_check is started */
    bool eof;           /* peer shut down its side after sending requests */
    bool shut_started;  /* uv_shutdown issued */
    uint64_t finish_ms; /* when finishing or lingering began */
    char remote_addr[INET6_ADDRSTRLEN];
    int remote_port;
};

struct api__ex
{
    struct api_exchange pub; /* what the handler sees */
    struct api_conn *conn;   /* borrowed; NULL once detached */
    struct api__ex *prev;    /* conn's list */
    struct api__ex *next;
    struct api__ex *ready_next; /* conn's h2_ready list */
    struct api_request req;     /* owned storage behind pub */
    bool handler_owns;
    bool proto_owns;
    bool responded;
    bool keep_alive; /* HTTP/1.1: the connection stays open after this one */
    bool dispatched;
    bool stream_closed;            /* HTTP/2 stream closed while waiting for dispatch */
    bool refused;                  /* HTTP/2: answered internally (400, 413, 431) */
    bool hdr_too_large;            /* HTTP/2: header block over max_header_size */
    bool in_ready;                 /* HTTP/2: on the conn's h2_ready list */
    int32_t stream_id;             /* HTTP/2 */
    size_t header_bytes;           /* HTTP/2: counted against max_header_size */
    struct api_request_builder hb; /* HTTP/2: headers being received */
    struct cf_buf body;            /* HTTP/2: body being received */
    char *h2_method;               /* owned, HTTP/2 :method until dispatch */
    char *h2_path;                 /* owned, HTTP/2 :path until dispatch */
    char *h2_authority;            /* owned, HTTP/2 :authority until dispatch */
    struct cf_buf out;             /* HTTP/1.1: serialised response waiting for its turn;
                                      HTTP/2: response body being sent */
    size_t out_off;                /* HTTP/2: body bytes already handed to nghttp2 */
    char remote_addr[INET6_ADDRSTRLEN];
};

/* Allocates an exchange linked at the tail of c's list (proto_owns set). NULL on OOM. */
struct api__ex *api__ex_new(struct api_conn *c);
/* Unlinks x from its connection's list. */
void api__ex_unlink(struct api__ex *x);
/* Frees x if neither the handler nor the protocol still owns it. */
void api__ex_maybe_free(struct api__ex *x);
/* Fills x->pub from x->req and calls the handler. */
void api__conn_dispatch(struct api_conn *c, struct api__ex *x);

/* Sends the staged plaintext (through TLS when in use). No-op inside the read callback, which
 * flushes once when it ends. */
void api__conn_flush(struct api_conn *c);
/* Sends what the protocol has ready at the end of this loop turn (the check phase), so the
 * responses that complete in one turn (a batch of worker completions) leave in one write.
 * No-op inside the read callback, which flushes once when it ends. */
void api__conn_flush_later(struct api_conn *c);
/* Flushes, sends close_notify, shuts down the write side, lingers, then closes. */
void api__conn_finish(struct api_conn *c);
/* Closes at once; exchanges are detached. */
void api__conn_close(struct api_conn *c);
/* Re-evaluates reading (back-pressure) and the deadline timer after a state change. */
void api__conn_update(struct api_conn *c);

#endif
