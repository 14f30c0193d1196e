/*
 * A raft_uv_transport that opens no network port: it never accepts and every connect fails.
 * A single-voter node needs no peers, and an unauthenticated Raft port must never be open; the
 * mutual-TLS cluster transport replaces this when clustering lands.
 */
#ifndef CF_RAFT_TRANSPORT_LOCAL_H_
#define CF_RAFT_TRANSPORT_LOCAL_H_

struct raft_uv_transport;
struct uv_loop_s;

int rft_transport_local_init(struct raft_uv_transport *t, struct uv_loop_s *loop);
/* Frees what init allocated (after libraft has closed the transport). */
void rft_transport_local_close(struct raft_uv_transport *t);

#endif
