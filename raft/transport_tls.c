/*
 * The Raft transport over mutual-TLS cluster tunnels (see transport_tls.h).
 *
 * Happy path: libraft's connect becomes rft_net_connect with the hello "8-byte BE raft id of this
 * node + its address"; once the tunnel is up, the server's CN must map to the raft id libraft
 * asked for, and the user end of the tunnel goes to libraft as its stream. On the accepting side
 * the ALPN handler parses the hello, checks that the certificate CN maps to the id in it and
 * passes the stream to libraft's accept callback. Failure modes: any failed or refused connect is
 * RAFT_NOCONNECTION (libraft retries after its retry delay); a malformed hello, an id that does
 * not match the certificate, or a stream arriving before listen or after close is closed at once.
 * Closing cancels pending connects and calls libraft's close callback from the loop once they
 * have all completed.
 */
#include "raft/transport_tls.h"

#include <stdio.h>
#include <string.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define CF_LOG_MODULE "raft"
#include "lib/bytes.h"
#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "raft/net.h"

struct pconn
{
    struct pconn *prev, *next;
    struct tls_transport *tt;    /* borrowed */
    struct raft_uv_connect *req; /* libraft's; completed exactly once */
    raft_uv_connect_cb cb;
    raft_id id;                 /* the id libraft wants to reach */
    struct rft_net_connect *nc; /* valid until conn_done_cb */
};

struct tls_transport
{
    struct raft_uv_transport *t; /* borrowed: the interface libraft holds */
    struct rft_net *net;         /* borrowed */
    raft_id id;                  /* this node, from init */
    char *address;               /* owned: this node's address, from init */
    raft_uv_accept_cb accept_cb; /* NULL until listen */
    bool closing;
    raft_uv_transport_close_cb close_cb;
    struct pconn *pending; /* connects in flight */
};

uint64_t rft_raft_id(const char *node_id)
{
    uint8_t md[32];
    if (cf_sha256(node_id, strlen(node_id), md) != CF_OK) {
        return 1;
    }
    uint64_t id = cf_get_be64(md);
    return id == 0 ? 1 : id;
}

/* Closing -------------------------------------------------------------------------------------- */

static void close_defer_cb(uv_handle_t *h)
{
    struct tls_transport *tt = h->data;
    cf_free(h);
    if (tt->close_cb != NULL) {
        tt->close_cb(tt->t);
    }
}

/* Fires libraft's close callback from the loop once no connect is pending. */
static void tr_maybe_closed(struct tls_transport *tt)
{
    if (!tt->closing || tt->pending != NULL) {
        return;
    }
    uv_check_t *defer = cf_malloc(sizeof(*defer));
    if (defer == NULL) {
        if (tt->close_cb != NULL) {
            tt->close_cb(tt->t);
        }
        return;
    }
    uv_check_init(rft_net_loop(tt->net), defer);
    defer->data = tt;
    uv_close((uv_handle_t *)defer, close_defer_cb);
}

/* Connecting ----------------------------------------------------------------------------------- */

static void conn_done_cb(void *arg,
                         int status,
                         const char *peer,
                         uv_stream_t *stream,
                         const char *errmsg)
{
    struct pconn *pc = arg;
    struct tls_transport *tt = pc->tt;
    if (pc->prev != NULL) {
        pc->prev->next = pc->next;
    } else {
        tt->pending = pc->next;
    }
    if (pc->next != NULL) {
        pc->next->prev = pc->prev;
    }
    int rv = 0;
    if (status == CF_OK && rft_raft_id(peer) != pc->id) {
        CF_LOG(CF_LOG_WARN, "peer %s does not hold the certificate of raft id %llx: refused", peer,
               (unsigned long long)pc->id);
        snprintf(tt->t->errmsg, sizeof(tt->t->errmsg), "peer %s is not raft id %llx", peer,
                 (unsigned long long)pc->id);
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
        stream = NULL;
        rv = RAFT_NOCONNECTION;
    } else if (status == CF_OK && tt->closing) {
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
        stream = NULL;
        rv = RAFT_CANCELED;
    } else if (status == CF_ECANCELED) {
        rv = RAFT_CANCELED;
    } else if (status != CF_OK) {
        CF_LOG(CF_LOG_DEBUG, "raft connect: %s", errmsg);
        snprintf(tt->t->errmsg, sizeof(tt->t->errmsg), "%s", errmsg);
        rv = RAFT_NOCONNECTION;
    }
    pc->cb(pc->req, stream, rv);
    cf_free(pc);
    tr_maybe_closed(tt);
}

static int tr_connect(struct raft_uv_transport *t,
                      struct raft_uv_connect *req,
                      raft_id id,
                      const char *address,
                      raft_uv_connect_cb cb)
{
    struct tls_transport *tt = t->impl;
    if (tt->closing) {
        snprintf(t->errmsg, sizeof(t->errmsg), "transport closing");
        return RAFT_CANCELED;
    }
    size_t alen = strlen(tt->address);
    if (alen + 8 > RFT_NET_HELLO_MAX) {
        snprintf(t->errmsg, sizeof(t->errmsg), "own address too long");
        return RAFT_INVALID;
    }
    uint8_t hello[RFT_NET_HELLO_MAX];
    cf_put_be64(hello, tt->id);
    memcpy(hello + 8, tt->address, alen);
    struct pconn *pc = cf_calloc(1, sizeof(*pc));
    if (pc == NULL) {
        return RAFT_NOMEM;
    }
    pc->tt = tt;
    pc->req = req;
    pc->cb = cb;
    pc->id = id;
    int rv = rft_net_connect(tt->net, address, RFT_TRANSPORT_TLS_ALPN, hello, alen + 8,
                             RFT_TRANSPORT_TLS_CONNECT_TIMEOUT_MS, conn_done_cb, pc, &pc->nc);
    if (rv != CF_OK) {
        cf_free(pc);
        snprintf(t->errmsg, sizeof(t->errmsg), "connect to %s: %s", address, cf_strerror(rv));
        return rv == CF_ENOMEM ? RAFT_NOMEM : RAFT_NOCONNECTION;
    }
    pc->next = tt->pending;
    if (tt->pending != NULL) {
        tt->pending->prev = pc;
    }
    tt->pending = pc;
    return 0;
}

/* Accepting ------------------------------------------------------------------------------------ */

static void tr_accept(void *arg,
                      const char *peer,
                      const uint8_t *hello,
                      size_t hello_len,
                      uv_stream_t *stream)
{
    struct tls_transport *tt = arg;
    if (tt->closing || tt->accept_cb == NULL) {
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
        return;
    }
    if (hello_len < 9 || memchr(hello + 8, '\0', hello_len - 8) != NULL) {
        CF_LOG(CF_LOG_WARN, "raft connection from %s: malformed hello: refused", peer);
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
        return;
    }
    raft_id id = cf_get_be64(hello);
    if (id != rft_raft_id(peer)) {
        CF_LOG(CF_LOG_WARN, "raft connection from %s claims raft id %llx: refused", peer,
               (unsigned long long)id);
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
        return;
    }
    char *address = cf_strndup((const char *)hello + 8, hello_len - 8);
    if (address == NULL) {
        uv_close((uv_handle_t *)stream, rft_net_stream_free);
        return;
    }
    tt->accept_cb(tt->t, id, address, stream);
    cf_free(address);
}

/* Interface ------------------------------------------------------------------------------------ */

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct tls_transport *tt = t->impl;
    char *copy = cf_strdup(address);
    if (copy == NULL) {
        return RAFT_NOMEM;
    }
    cf_free(tt->address);
    tt->address = copy;
    tt->id = id;
    return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct tls_transport *tt = t->impl;
    tt->accept_cb = cb;
    return 0;
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct tls_transport *tt = t->impl;
    tt->closing = true;
    tt->close_cb = cb;
    tt->accept_cb = NULL;
    for (struct pconn *pc = tt->pending; pc != NULL; pc = pc->next) {
        rft_net_connect_cancel(pc->nc);
    }
    tr_maybe_closed(tt);
}

int rft_transport_tls_init(struct raft_uv_transport *t, struct rft_net *net)
{
    memset(t, 0, sizeof(*t));
    struct tls_transport *tt = cf_calloc(1, sizeof(*tt));
    if (tt == NULL) {
        return CF_ENOMEM;
    }
    int rv = rft_net_handle(net, RFT_TRANSPORT_TLS_ALPN, tr_accept, tt);
    if (rv != CF_OK) {
        cf_free(tt);
        return rv;
    }
    tt->t = t;
    tt->net = net;
    t->impl = tt;
    t->init = tr_init;
    t->listen = tr_listen;
    t->connect = tr_connect;
    t->close = tr_close;
    return CF_OK;
}

void rft_transport_tls_close(struct raft_uv_transport *t)
{
    if (t == NULL || t->impl == NULL) {
        return;
    }
    struct tls_transport *tt = t->impl;
    rft_net_unhandle(tt->net, RFT_TRANSPORT_TLS_ALPN);
    cf_free(tt->address);
    cf_free(tt);
    t->impl = NULL;
}
