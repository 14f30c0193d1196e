/*
 * Request forwarding between the nodes of one cluster (DESIGN.md "Cluster model"): a standby
 * sends each request it may not serve to the active node over the cluster port (ALPN
 * "coffer-fwd/1", HTTP/2 with msgpack bodies, replication/forward.h) and answers its client
 * with the active node's response unchanged; the active node runs forwarded requests through
 * the same HTTP decoding and core as its own clients' (api/route.h).
 *
 * While no active node is known a forwarded request waits, bounded (REPL_HA_WAIT_MS), then
 * gets 503; when the connection to the active node fails, the client gets a 307 to the active
 * node's API address instead (as Vault does).
 */
#ifndef CF_REPLICATION_HA_H_
#define CF_REPLICATION_HA_H_

#include <uv.h>

#include "lib/err.h"

struct api_route;
struct api_exchange;
struct rft_net;
struct repl_ha;

#define REPL_HA_ALPN "coffer-fwd/1"
#define REPL_HA_WAIT_MS 10000
#define REPL_HA_TIMEOUT_MS 60000

/* Registers the forwarding protocol on net (before rft_net_listen) and serves forwarded
 * requests through route. */
int repl_ha_new(uv_loop_t *loop,
                struct rft_net *net,
                struct api_route *route,
                struct repl_ha **out);

/* An api_route_forward_fn: forwards ex to the active node and answers it. */
void repl_ha_forward(void *arg, struct api_exchange *ex);

/* Fails what waits with 503, closes the connections; cb fires once everything is closed. */
void repl_ha_close(struct repl_ha *ha, void (*cb)(void *arg), void *arg);

#endif
