/*
 * HTTP/2 side of a connection (nghttp2 server session): ALPN h2 over TLS and h2c with prior
 * knowledge on plain listeners. listener.c calls these; the session and the per-stream
 * exchanges live in struct api_conn (api/conn.h).
 */
#ifndef CF_API_HTTP2_H_
#define CF_API_HTTP2_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/http.h"

struct api_conn;
struct api__ex;

/* Creates the server session and queues our SETTINGS (256 streams, 1 MiB stream window). */
int api__h2_start(struct api_conn *c);
/* Feeds received bytes (the client preface included), then dispatches completed requests.
 * An error means the connection must close. */
int api__h2_recv(struct api_conn *c, const uint8_t *p, size_t n);
/* Submits the handler's response for x's stream (copies headers and body). */
void api__h2_respond(struct api__ex *x,
                     int status,
                     const struct api_header *headers,
                     size_t n_headers,
                     const uint8_t *body,
                     size_t body_len);
/* Listener shutdown: GOAWAY, finish the open streams, then close. */
void api__h2_drain(struct api_conn *c);
/* Idle or stalled connection: GOAWAY and finish. */
void api__h2_timeout(struct api_conn *c);
/* Sends what nghttp2 has queued (pausing while the socket is backed up); finishes the
 * connection when the session is over. No-op inside the read callback. */
void api__h2_send(struct api_conn *c);
/* True while some stream is still receiving its request. */
bool api__h2_receiving(const struct api_conn *c);
/* Frees the session (connection teardown; the exchanges are already detached). */
void api__h2_free(struct api_conn *c);
/* Frees the listener's nghttp2 callbacks (NULL-safe). */
void api__h2_callbacks_free(void *callbacks);

#endif
