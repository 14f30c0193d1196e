/*
 * Mutual-TLS cluster tunnels over one cluster port.
 *
 * Every cluster connection is TLS 1.3 with certificates from the cluster CA on both sides; ALPN
 * picks the protocol ("coffer-raft/1", "coffer-fwd/1", ...). Once the handshake is done and the
 * connecting side's hello has been read, the tunnel creates a socketpair, wraps one end in a
 * uv_pipe_t and hands it to the user as a plain uv_stream_t; the tunnel relays bytes between its
 * own end and the TLS connection. All functions run on the loop thread.
 *
 * Wire protocol after the handshake: the client sends a 4-byte big-endian length and that many
 * hello bytes (at most RFT_NET_HELLO_MAX); the server reads exactly those, then answers one
 * byte RFT_NET_ACK once it has a handler for the stream; everything after the hello (client to
 * server) and after the ack (server to client) is the user's stream. The ack lets the client
 * report a refusal that the server decides after the TLS 1.3 handshake (bad client certificate,
 * allow() false) as a connect error instead of a stream that ends at once.
 */
#ifndef CF_RAFT_NET_H_
#define CF_RAFT_NET_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "lib/err.h"

#define RFT_NET_HELLO_MAX 4096
#define RFT_NET_HANDLERS_MAX 8
/* Accepted connections still in their TLS handshake or hello at once; more are closed. */
#define RFT_NET_PENDING_MAX 64
#define RFT_NET_ACK 0x01

struct rft_net;
struct rft_net_connect;

/* Creates a net without credentials (every handshake is refused until rft_net_set_creds).
 * CF_ENOMEM on OOM. */
int rft_net_new(uv_loop_t *loop, struct rft_net **out);

/* Sets (or replaces) the credentials: PEM of the cluster CA certificate(s) (the only trust
 * anchors), this node's certificate (leaf first, then any chain) and its private key. NULL ca_pem
 * clears them: then every handshake is refused and connects fail with CF_ESEALED. Replacing does
 * not drop live tunnels. CF_ECRYPTO with errmsg for bad PEM or a key that does not match. */
int rft_net_set_creds(struct rft_net *n,
                      const char *ca_pem,
                      const char *cert_pem,
                      const char *key_pem,
                      char errmsg[CF_ERRMSG_SIZE]);

/* Optional: called with the peer's certificate CN after the handshake (both directions); false
 * refuses the peer (used for removed nodes). */
void rft_net_set_allow(struct rft_net *n, bool (*allow)(void *arg, const char *peer), void *arg);

/* Handler for one accepted tunnel: the peer's CN, the hello bytes the connecting side sent and
 * the user end of the tunnel. The stream is the handler's: it must uv_close it and, in the close
 * callback, rft_net_stream_free it. */
typedef void (*rft_net_accept_cb)(void *arg,
                                  const char *peer,
                                  const uint8_t *hello,
                                  size_t hello_len,
                                  uv_stream_t *stream);

/* Registers the handler for one ALPN protocol id (1..255 bytes). At most RFT_NET_HANDLERS_MAX.
 * Must be called before rft_net_listen. CF_EINVAL for a bad id or after listen, CF_EEXIST for a
 * second handler of one id, CF_ETOOBIG past the limit. */
int rft_net_handle(struct rft_net *n, const char *alpn, rft_net_accept_cb cb, void *arg);

/* Removes the handler of alpn (for owners that go away before the net): from then on peers
 * offering it are refused at the handshake, and tunnels still reading their hello are closed.
 * The callback is never called after this returns. Unknown ids are ignored. */
void rft_net_unhandle(struct rft_net *n, const char *alpn);

/* Listens on "host:port" (IPv4 literal, "[IPv6]" or bare IPv6 literal, or "localhost"; port 0
 * picks a free port, see rft_net_port). CF_EINVAL for a bad address, otherwise the bind error
 * with a clear errmsg. */
int rft_net_listen(struct rft_net *n, const char *bind_addr, char errmsg[CF_ERRMSG_SIZE]);

/* The loop the net runs on. */
uv_loop_t *rft_net_loop(const struct rft_net *n);

/* The port rft_net_listen bound (useful with port 0); 0 when not listening. */
int rft_net_port(const struct rft_net *n);

/* Outcome of rft_net_connect. On CF_OK, peer is the server's CN and stream is the caller's
 * (same rule as for accepted streams). Otherwise stream is NULL and errmsg says why. */
typedef void (*rft_net_connect_cb)(void *arg,
                                   int status,
                                   const char *peer,
                                   uv_stream_t *stream,
                                   const char *errmsg);

/* Connects to "host:port", handshakes offering exactly `alpn`, sends `hello` (0..4096 bytes; may
 * be NULL when hello_len is 0), waits for the server's ack and calls cb once: CF_OK, or an error
 * with a message (CF_EIO connection refused or closed, CF_ETIMEDOUT after timeout_ms (0 = none),
 * CF_ECRYPTO handshake failure naming OpenSSL's reason, CF_EDENIED peer refused by allow(),
 * CF_ESEALED no credentials, CF_ECANCELED canceled). cb never fires inside this call.
 * Synchronous errors (no cb then): CF_EINVAL bad address/alpn/hello, CF_ESHUTDOWN net closing,
 * CF_ENOMEM. *out (may be NULL) is valid until cb fires: rft_net_connect_cancel makes cb fire
 * with CF_ECANCELED from the loop soon (never inside cancel), and nothing after that. */
int rft_net_connect(struct rft_net *n,
                    const char *addr,
                    const char *alpn,
                    const uint8_t *hello,
                    size_t hello_len,
                    unsigned timeout_ms,
                    rft_net_connect_cb cb,
                    void *arg,
                    struct rft_net_connect **out);

/* Cancels a connect whose cb has not fired yet (see rft_net_connect). */
void rft_net_connect_cancel(struct rft_net_connect *c);

/* Frees a user-end stream inside its uv_close callback (raft_free: libraft frees the streams
 * it owns the same way). */
void rft_net_stream_free(uv_handle_t *h);

/* Stops listening, cancels connects (their cb fires with CF_ECANCELED), closes every tunnel
 * (the user ends then see EOF) and calls cb when all the net's own handles are closed; the net
 * is freed then. cb may be NULL. */
void rft_net_close(struct rft_net *n, void (*cb)(void *arg), void *arg);

#endif
