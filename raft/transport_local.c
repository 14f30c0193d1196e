/* The no-network raft transport (see transport_local.h). */
#include "raft/transport_local.h"

#include <stdio.h>
#include <string.h>

#include <raft.h>
#include <raft/uv.h>

#include "lib/err.h"

static int local_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    (void)t;
    (void)id;
    (void)address;
    return 0;
}

static int local_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    (void)t;
    (void)cb;
    return 0;
}

static int local_connect(struct raft_uv_transport *t,
                         struct raft_uv_connect *req,
                         raft_id id,
                         const char *address,
                         raft_uv_connect_cb cb)
{
    (void)req;
    (void)id;
    (void)cb;
    snprintf(t->errmsg, sizeof(t->errmsg), "no cluster transport: cannot reach %s", address);
    return RAFT_NOCONNECTION;
}

static void local_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    if (cb != NULL) {
        cb(t);
    }
}

int rft_transport_local_init(struct raft_uv_transport *t, struct uv_loop_s *loop)
{
    memset(t, 0, sizeof(*t));
    t->data = loop;
    t->init = local_init;
    t->listen = local_listen;
    t->connect = local_connect;
    t->close = local_close;
    return CF_OK;
}

void rft_transport_local_close(struct raft_uv_transport *t)
{
    (void)t;
}
