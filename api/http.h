/*
 * Protocol-neutral HTTP exchanges between the listeners (HTTP/1.1 via llhttp, HTTP/2 via
 * nghttp2, over TLS or plain TCP) and the handler that routes them (api/route.c).
 *
 * A listener decodes one request into a struct api_exchange and hands it to the handler. The
 * handler answers exactly once with api_exchange_respond(), possibly much later (after raft
 * commits). If the client has gone away meanwhile, respond just releases the exchange (rule A4):
 * the exchange is owned by the listener code and detached from its connection/stream on reset.
 */
#ifndef CF_API_HTTP_H_
#define CF_API_HTTP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

struct uv_loop_s;
struct api_listener;

struct api_header
{
    char *name; /* lowercase */
    char *value;
};

struct api_exchange
{
    /* Request, filled by the protocol code; read-only for the handler. */
    const char *method; /* "GET", "LIST", ... */
    const char *target; /* raw request target, e.g. "/v1/sys/health?standbyok=true" */
    const struct api_header *headers;
    size_t n_headers;
    const uint8_t *body; /* NUL-terminated after body_len for convenience */
    size_t body_len;
    const char *remote_addr; /* textual peer address */
    int remote_port;
    int http_version; /* 10, 11 or 20 */
    bool tls;
    void *data; /* the handler's */
    /* Set only on exchanges made outside a listener (a request forwarded from a standby): then
     * api_exchange_respond hands the response to this function instead of a connection. */
    void (*respond_fn)(struct api_exchange *ex,
                       int status,
                       const struct api_header *headers,
                       size_t n_headers,
                       const uint8_t *body,
                       size_t body_len);
};

/* Case-insensitive header lookup; the first value or NULL. */
const char *api_exchange_header(const struct api_exchange *ex, const char *name);

/* Sends the response and releases the exchange (do not touch it afterwards). Call exactly once,
 * on the loop thread. The body and headers are copied. For HEAD requests the body is not sent.
 * Content-Length (HTTP/1.1) and connection management are added by the protocol code. */
void api_exchange_respond(struct api_exchange *ex,
                          int status,
                          const struct api_header *headers,
                          size_t n_headers,
                          const uint8_t *body,
                          size_t body_len);

typedef void (*api_handler_fn)(void *ctx, struct api_exchange *ex);

struct api_listener_config
{
    const char *address; /* "host:port"; borrowed */
    bool tls_disable;
    const char *tls_cert_file;       /* PEM, may hold the chain; borrowed */
    const char *tls_key_file;        /* borrowed */
    int tls_min_version;             /* 12 or 13 (TLS 1.2 minimum always) */
    size_t max_request_size;         /* body limit in bytes; 0 = 32 MiB; larger -> 413 */
    size_t max_header_size;          /* total header bytes; 0 = 64 KiB; larger -> 431 */
    uint64_t idle_timeout_ms;        /* keep-alive idle; 0 = 5 min */
    uint64_t read_header_timeout_ms; /* time to receive a full header block; 0 = 10 s */
    uint64_t read_timeout_ms;        /* time to receive a full request; 0 = 30 s */
};

/* Binds and starts accepting. Errors (bad address, port in use, unreadable cert) are returned
 * with a message. The handler is called on the loop thread. */
int api_listener_new(struct uv_loop_s *loop,
                     const struct api_listener_config *cfg,
                     api_handler_fn handler,
                     void *ctx,
                     struct api_listener **out,
                     char errmsg[CF_ERRMSG_SIZE]);

/* Re-reads the certificate and key (SIGHUP). On failure the old ones stay in use. */
int api_listener_reload_tls(struct api_listener *l, char errmsg[CF_ERRMSG_SIZE]);

/* The bound port (useful when the config asked for port 0). */
int api_listener_port(const struct api_listener *l);

/* Graceful stop: stops accepting, lets in-flight exchanges finish (up to a grace period), closes
 * every connection, then calls cb and frees the listener. NULL-safe. */
void api_listener_close(struct api_listener *l, void (*cb)(void *arg), void *arg);

#endif
