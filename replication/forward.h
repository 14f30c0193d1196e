/*
 * Request forwarding standby -> active over one HTTP/2 connection (nghttp2) on an already
 * connected stream (the cluster port; TLS, if any, sits behind the uv_stream_t given here).
 *
 * Each forwarded request is one HTTP/2 stream: POST /coffer.fwd/v1, content-type
 * application/msgpack, body = repl_fwd_request_encode(). The answer is HTTP 200 with an
 * application/msgpack body = repl_fwd_response_encode(); the forwarded response's own status is
 * inside. A body that does not decode gets 400 (text/plain reason), another method or path 404,
 * another content-type 415, a body over REPL_FWD_MAX_MESSAGE 413; other streams are unaffected.
 *
 * Everything runs on the loop thread. Callbacks never run inside the call that started them.
 */
#ifndef CF_REPLICATION_FORWARD_H_
#define CF_REPLICATION_FORWARD_H_

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "lib/err.h"
#include "replication/fwd_codec.h"

#define REPL_FWD_PATH "/coffer.fwd/v1"
#define REPL_FWD_CONTENT_TYPE "application/msgpack"

/* Client (standby side) --------------------------------------------------------------------- */

struct repl_fwd_client;

/* Starts an HTTP/2 client session on `stream` and sends the preface. On success the client
 * owns the stream: it closes it with uv_close and frees it with free_stream(handle) in the
 * close callback. On failure (CF_ENOMEM, or CF_EIO when reading cannot start) the caller keeps
 * the stream. */
int repl_fwd_client_new(uv_loop_t *loop,
                        uv_stream_t *stream,
                        void (*free_stream)(uv_handle_t *),
                        struct repl_fwd_client **out);

/* Completion of one forwarded request. status: CF_OK with resp (owned by the client, valid
 * during the callback only; errmsg NULL); CF_ETIMEDOUT; CF_EIO when the connection broke or the
 * active answered with an HTTP error (errmsg says which); CF_EMALFORMED / CF_EVERSION /
 * CF_ETOOBIG when the response body does not decode; CF_ECANCELED when the client was closed.
 * resp is NULL unless status is CF_OK. */
typedef void (*repl_fwd_done_cb)(void *arg,
                                 int status,
                                 struct repl_fwd_response *resp,
                                 const char *errmsg);

/* Encodes req (copied; the caller may free it on return) and sends it. On CF_OK, cb fires
 * exactly once, never inside this call: with the response, CF_ETIMEDOUT after timeout_ms (0 =
 * no timeout; the stream is reset and a late answer ignored), CF_EIO if the connection breaks,
 * CF_ECANCELED on repl_fwd_client_close. Up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS
 * (assumed 100 until its SETTINGS arrive) are in flight; more wait in order. Any other return
 * (encode errors CF_EINVAL/CF_ETOOBIG/CF_ENOMEM; CF_EIO once the connection is not alive;
 * CF_ECANCELED after close) means cb will not fire. */
int repl_fwd_client_send(struct repl_fwd_client *c,
                         const struct repl_fwd_request *req,
                         unsigned timeout_ms,
                         repl_fwd_done_cb cb,
                         void *arg);

/* False once the connection broke, the peer sent GOAWAY, or the client is closing. */
bool repl_fwd_client_alive(const struct repl_fwd_client *c);

/* Requests sent and not yet completed (on the wire or waiting for a stream slot). */
size_t repl_fwd_client_inflight(const struct repl_fwd_client *c);

/* Closes the connection; every pending request completes with CF_ECANCELED (after this call
 * returns), then the client is freed. The callbacks may still call the functions above with c;
 * nothing after the last of them. NULL-safe; a second call does nothing. */
void repl_fwd_client_close(struct repl_fwd_client *c);

/* Server (active side) ---------------------------------------------------------------------- */

struct repl_fwd_server;

/* One decoded forwarded request handed to the handler. */
struct repl_fwd_call
{
    struct repl_fwd_request req; /* decoded; owned by the call (the handler may steal members
                                    and NULL them) */
};

typedef void (*repl_fwd_handler)(void *arg, struct repl_fwd_call *call);

/* Serves one connection on `stream` (ownership as for repl_fwd_client_new). handler runs for
 * each decoded request, from the loop, never inside this call; answer each call exactly once
 * with repl_fwd_call_respond, possibly much later. closed_cb (may be NULL) fires once when the
 * connection is gone (EOF, protocol or I/O error, or repl_fwd_server_close), always from the
 * loop; the server is freed right after it returns and s must not be used afterwards. */
int repl_fwd_server_new(uv_loop_t *loop,
                        uv_stream_t *stream,
                        void (*free_stream)(uv_handle_t *),
                        repl_fwd_handler handler,
                        void *arg,
                        void (*closed_cb)(void *arg, struct repl_fwd_server *s),
                        struct repl_fwd_server **out);

/* Answers call with resp (copied) and frees the call. If the stream was reset or the
 * connection died meanwhile, it only frees the call. A response that cannot be encoded
 * (limits) is answered with HTTP 500 and a text reason. */
void repl_fwd_call_respond(struct repl_fwd_call *call, const struct repl_fwd_response *resp);

/* Closes the connection (calls not yet answered are detached; respond only frees them); then
 * closed_cb fires and the server is freed. Does nothing if the connection is already closing. */
void repl_fwd_server_close(struct repl_fwd_server *s);

#endif
