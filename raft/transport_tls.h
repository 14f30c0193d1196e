/*
 * A raft_uv_transport over the mutual-TLS cluster tunnels of raft/net.h, ALPN "coffer-raft/1".
 *
 * Connecting sends a hello of the 8-byte big-endian raft id of this node followed by its address
 * (no NUL); the accepting side refuses a hello whose id is not the raft id of the peer's
 * certificate CN, and the connecting side refuses a server whose CN does not map to the id
 * libraft asked for, so a node cannot pose as another. Raft ids come from node ids through
 * rft_raft_id.
 */
#ifndef CF_RAFT_TRANSPORT_TLS_H_
#define CF_RAFT_TRANSPORT_TLS_H_

#include <stdint.h>

#define RFT_TRANSPORT_TLS_ALPN "coffer-raft/1"
#define RFT_TRANSPORT_TLS_CONNECT_TIMEOUT_MS 3000

struct raft_uv_transport;
struct rft_net;

/* Initialises t (before raft_uv_init) and registers the ALPN handler on net, so it must run
 * before rft_net_listen. Accepted raft streams are closed until libraft calls listen. The net is
 * borrowed and must outlive the transport. CF_ENOMEM, or the rft_net_handle error. */
int rft_transport_tls_init(struct raft_uv_transport *t, struct rft_net *net);

/* Unregisters the handler and frees what init allocated; call after libraft has closed the
 * transport (its raft_io close completed) and before the net is closed. NULL-safe on a transport
 * that init did not set up. */
void rft_transport_tls_close(struct raft_uv_transport *t);

/* The raft id of a node id string: the first 8 bytes of SHA-256(node_id), big-endian; 0 maps
 * to 1 (libraft reserves 0). */
uint64_t rft_raft_id(const char *node_id);

#endif
