/*
 * Unit tests for raft/transport_tls.c: real libraft instances (raft_uv disk backend in mkdtemp
 * dirs, one loop) talking over rft_net tunnels on 127.0.0.1 with certificates made in the test
 * (CN = node id). A 3-voter cluster elects a leader and replicates 100 entries to every FSM; an
 * impostor (a cluster-CA certificate whose CN is not the node id it claims) cannot stand in for a
 * missing voter, while the real node can; the transport refuses, at its own level, a server whose
 * CN is not the id asked for, malformed hellos and hellos whose id is not the certificate's, and
 * streams arriving before listen. rft_raft_id is checked against its definition. Every test ends
 * with uv_loop_close() == 0 and no live allocations.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "lib/bytes.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "raft/net.h"
#include "raft/transport_tls.h"

#define TIMEOUT_MS 10000
#define N_ENTRIES 100

/* Certificates ----------------------------------------------------------------------------------
 */

struct ca
{
    X509 *cert;
    EVP_PKEY *key;
    char *pem;
};

struct creds
{
    char *cert;
    char *key;
};

static char *bio_to_str(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *s = cf_strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    add_ext(x, issuer != NULL ? issuer : x, NID_basic_constraints,
            issuer != NULL ? "critical,CA:FALSE" : "critical,CA:TRUE");
    if (issuer != NULL) {
        add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void creds_make(struct creds *c, const struct ca *ca, const char *cn)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = make_cert(cn, key, ca->cert, ca->key);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    c->cert = bio_to_str(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    c->key = bio_to_str(b);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void creds_free(struct creds *c)
{
    CF_FREE(c->cert);
    CF_FREE(c->key);
}

/* Nodes -----------------------------------------------------------------------------------------
 */

struct node
{
    char dir[64];
    struct rft_net *net;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm;
    raft_id id;
    char address[64];
    uint64_t applied; /* FSM: entries applied */
    uint64_t sum;     /* FSM: sum of the applied values */
    bool running;
    bool raft_closed;
    bool net_closed;
};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct node *n = fsm->data;
    if (buf->len != 8) {
        return RAFT_MALFORMED;
    }
    n->applied++;
    n->sum += cf_get_be64(buf->base);
    *result = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct node *n = fsm->data;
    *bufs = raft_malloc(sizeof(**bufs));
    if (*bufs == NULL) {
        return RAFT_NOMEM;
    }
    (*bufs)[0].len = 16;
    (*bufs)[0].base = raft_malloc(16);
    if ((*bufs)[0].base == NULL) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    cf_put_be64((*bufs)[0].base, n->applied);
    cf_put_be64((uint8_t *)(*bufs)[0].base + 8, n->sum);
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct node *n = fsm->data;
    if (buf->len != 16) {
        return RAFT_MALFORMED;
    }
    n->applied = cf_get_be64(buf->base);
    n->sum = cf_get_be64((uint8_t *)buf->base + 8);
    raft_free(buf->base);
    return 0;
}

struct fx
{
    uv_loop_t loop;
    struct ca ca;
    struct creds creds[4]; /* node-1, node-2, node-3, node-x */
    struct node nodes[4];
    long live;
};

static int setup(void **state)
{
    struct fx *f = cf_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->live = cf_mem_live() - 1;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->ca.key = EVP_EC_gen("P-256");
    f->ca.cert = make_cert("cluster CA", f->ca.key, NULL, NULL);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, f->ca.cert);
    f->ca.pem = bio_to_str(b);
    const char *cns[] = {"node-1", "node-2", "node-3", "node-x"};
    for (int i = 0; i < 4; i++) {
        creds_make(&f->creds[i], &f->ca, cns[i]);
    }
    *state = f;
    return 0;
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < 4; i++) {
        creds_free(&f->creds[i]);
    }
    X509_free(f->ca.cert);
    EVP_PKEY_free(f->ca.key);
    cf_free(f->ca.pem);
    long live = f->live;
    cf_free(f);
    assert_int_equal(cf_mem_live(), live);
    return 0;
}

static void run_until(struct fx *f, bool (*done)(struct fx *, void *), void *arg)
{
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (!done(f, arg)) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
        assert_true(uv_now(&f->loop) - start < TIMEOUT_MS);
    }
}

static void run_for(struct fx *f, unsigned ms)
{
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (uv_now(&f->loop) - start < ms) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&f->loop);
    }
}

/* Starts the net, transport and listener of a node whose certificate is creds and whose raft id
 * is rft_raft_id(claimed_id); port 0 = ephemeral. */
static void node_listen(struct fx *f,
                        struct node *n,
                        const struct creds *c,
                        const char *claimed_id,
                        int port)
{
    char errmsg[CF_ERRMSG_SIZE];
    memset(n, 0, sizeof(*n));
    n->id = rft_raft_id(claimed_id);
    assert_int_equal(rft_net_new(&f->loop, &n->net), CF_OK);
    assert_int_equal(rft_net_set_creds(n->net, f->ca.pem, c->cert, c->key, errmsg), CF_OK);
    assert_int_equal(rft_transport_tls_init(&n->transport, n->net), CF_OK);
    char bind[64];
    snprintf(bind, sizeof(bind), "127.0.0.1:%d", port);
    assert_int_equal(rft_net_listen(n->net, bind, errmsg), CF_OK);
    snprintf(n->address, sizeof(n->address), "127.0.0.1:%d", rft_net_port(n->net));
}

/* Starts raft on a listening node, bootstrapped with conf. */
static void node_start(struct fx *f, struct node *n, const struct raft_configuration *conf)
{
    snprintf(n->dir, sizeof(n->dir), "/tmp/cf-ttls-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    assert_int_equal(raft_uv_init(&n->io, &f->loop, n->dir, &n->transport), 0);
    raft_uv_set_connect_retry_delay(&n->io, 50);
    n->fsm.version = 1;
    n->fsm.data = n;
    n->fsm.apply = fsm_apply;
    n->fsm.snapshot = fsm_snapshot;
    n->fsm.restore = fsm_restore;
    assert_int_equal(raft_init(&n->raft, &n->io, &n->fsm, n->id, n->address), 0);
    n->raft.data = n;
    raft_set_election_timeout(&n->raft, 150);
    raft_set_heartbeat_timeout(&n->raft, 30);
    assert_int_equal(raft_bootstrap(&n->raft, conf), 0);
    assert_int_equal(raft_start(&n->raft), 0);
    n->running = true;
}

static void net_closed_cb(void *arg)
{
    ((struct node *)arg)->net_closed = true;
}

static void raft_closed_cb(struct raft *r)
{
    struct node *n = r->data;
    raft_uv_close(&n->io);
    n->raft_closed = true;
}

static bool node_closed(struct fx *f, void *arg)
{
    (void)f;
    struct node *n = arg;
    return n->raft_closed;
}

static bool node_net_closed(struct fx *f, void *arg)
{
    (void)f;
    return ((struct node *)arg)->net_closed;
}

static void node_stop(struct fx *f, struct node *n)
{
    if (n->running) {
        raft_close(&n->raft, raft_closed_cb);
        run_until(f, node_closed, n);
        n->running = false;
    }
    rft_transport_tls_close(&n->transport);
    rft_net_close(n->net, net_closed_cb, n);
    run_until(f, node_net_closed, n);
    if (n->dir[0] != '\0') {
        rm_rf(n->dir);
    }
}

static void conf_make(struct raft_configuration *conf, struct node *nodes[3])
{
    raft_configuration_init(conf);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(raft_configuration_add(conf, nodes[i]->id, nodes[i]->address, RAFT_VOTER),
                         0);
    }
}

static struct node *leader_of(struct fx *f, int count)
{
    struct node *leader = NULL;
    for (int i = 0; i < count; i++) {
        struct node *n = &f->nodes[i];
        if (n->running && raft_state(&n->raft) == RAFT_LEADER) {
            leader = n;
        }
    }
    return leader;
}

static bool has_leader(struct fx *f, void *arg)
{
    return leader_of(f, *(int *)arg) != NULL;
}

/* Applies ---------------------------------------------------------------------------------------
 */

struct apply
{
    struct raft_apply req;
    int *done;
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct apply *a = CF_CONTAINER_OF(req, struct apply, req);
    assert_int_equal(status, 0);
    (*a->done)++;
    cf_free(a);
}

static bool all_applied(struct fx *f, void *arg)
{
    uint64_t want = *(uint64_t *)arg;
    for (int i = 0; i < 3; i++) {
        if (f->nodes[i].applied < want) {
            return false;
        }
    }
    return true;
}

static bool count_reached(struct fx *f, void *arg)
{
    (void)f;
    return ((int *)arg)[0] >= ((int *)arg)[1];
}

/* Tests -----------------------------------------------------------------------------------------
 */

static void test_raft_id(void **state)
{
    (void)state;
    /* The first 8 bytes of SHA-256, computed here independently. */
    uint8_t md[32];
    unsigned len = 0;
    EVP_Digest("node-1", 6, md, &len, EVP_sha256(), NULL);
    assert_int_equal(rft_raft_id("node-1"), cf_get_be64(md));
    assert_true(rft_raft_id("node-1") != rft_raft_id("node-2"));
    assert_true(rft_raft_id("") != 0);
}

static void test_three_nodes_replicate(void **state)
{
    struct fx *f = *state;
    struct node *ns[3] = {&f->nodes[0], &f->nodes[1], &f->nodes[2]};
    const char *ids[3] = {"node-1", "node-2", "node-3"};
    for (int i = 0; i < 3; i++) {
        node_listen(f, ns[i], &f->creds[i], ids[i], 0);
    }
    struct raft_configuration conf;
    conf_make(&conf, ns);
    for (int i = 0; i < 3; i++) {
        node_start(f, ns[i], &conf);
    }
    raft_configuration_close(&conf);
    int three = 3;
    run_until(f, has_leader, &three);
    struct node *leader = leader_of(f, 3);
    int done[2] = {0, N_ENTRIES};
    uint64_t want_sum = 0;
    for (int i = 0; i < N_ENTRIES; i++) {
        struct apply *a = cf_malloc(sizeof(*a));
        assert_non_null(a);
        a->done = &done[0];
        struct raft_buffer buf = {.base = raft_malloc(8), .len = 8};
        assert_non_null(buf.base);
        cf_put_be64(buf.base, (uint64_t)i * 3 + 1);
        want_sum += (uint64_t)i * 3 + 1;
        assert_int_equal(raft_apply(&leader->raft, &a->req, &buf, 1, apply_cb), 0);
    }
    run_until(f, count_reached, done);
    uint64_t want = N_ENTRIES;
    run_until(f, all_applied, &want);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->nodes[i].applied, N_ENTRIES);
        assert_int_equal(f->nodes[i].sum, want_sum);
    }
    for (int i = 0; i < 3; i++) {
        node_stop(f, ns[i]);
    }
}

/* node-x holds a valid cluster certificate but claims node-2's raft id. With node-3 absent,
 * node-1 can only elect a leader with node-2's vote: the impostor's never counts, the real
 * node-2's does. */
static void test_impostor_refused(void **state)
{
    struct fx *f = *state;
    struct node *n1 = &f->nodes[0];
    struct node *imp = &f->nodes[1];
    struct node *n3 = &f->nodes[2];
    node_listen(f, n1, &f->creds[0], "node-1", 0);
    node_listen(f, imp, &f->creds[3], "node-2", 0);
    node_listen(f, n3, &f->creds[2], "node-3", 0); /* address only: never started */
    struct node *ns[3] = {n1, imp, n3};
    struct raft_configuration conf;
    conf_make(&conf, ns);
    int imp_port = rft_net_port(imp->net);
    node_start(f, n1, &conf);
    node_start(f, imp, &conf);
    run_for(f, 1500);
    assert_true(raft_state(&n1->raft) != RAFT_LEADER);
    assert_true(raft_state(&imp->raft) != RAFT_LEADER);
    assert_int_equal(n1->raft.current_term > 1, true); /* elections did run */
    node_stop(f, imp);
    /* The real node-2 on the same address. */
    struct node *n2 = &f->nodes[3];
    node_listen(f, n2, &f->creds[1], "node-2", imp_port);
    node_start(f, n2, &conf);
    raft_configuration_close(&conf);
    int four = 4;
    run_until(f, has_leader, &four);
    node_stop(f, n2);
    node_stop(f, n1);
    node_stop(f, n3);
}

/* Transport level: connect/accept checks without a cluster. */
struct conn_req
{
    struct raft_uv_connect req;
    bool done;
    int status;
    struct uv_stream_s *stream;
};

static void tr_connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct conn_req *c = CF_CONTAINER_OF(req, struct conn_req, req);
    c->done = true;
    c->status = status;
    c->stream = stream;
}

static bool conn_done(struct fx *f, void *arg)
{
    (void)f;
    return ((struct conn_req *)arg)->done;
}

struct accepted
{
    int count;
    raft_id id;
    char address[64];
};

static void tr_accept_cb(struct raft_uv_transport *t,
                         raft_id id,
                         const char *address,
                         struct uv_stream_s *stream)
{
    struct accepted *a = t->data;
    a->count++;
    a->id = id;
    snprintf(a->address, sizeof(a->address), "%s", address);
    uv_close((uv_handle_t *)stream, rft_net_stream_free);
}

struct net_conn
{
    bool done;
    int status;
    uv_stream_t *stream;
    bool eof;
};

static void net_conn_cb(void *arg,
                        int status,
                        const char *peer,
                        uv_stream_t *stream,
                        const char *errmsg)
{
    (void)peer;
    (void)errmsg;
    struct net_conn *c = arg;
    c->done = true;
    c->status = status;
    c->stream = stream;
}

static bool net_conn_done(struct fx *f, void *arg)
{
    (void)f;
    return ((struct net_conn *)arg)->done;
}

static char eof_buf[64];

static void eof_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    *buf = uv_buf_init(eof_buf, sizeof(eof_buf));
}

static void eof_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0) {
        ((struct net_conn *)s->data)->eof = true;
    }
}

static bool net_conn_eof(struct fx *f, void *arg)
{
    (void)f;
    return ((struct net_conn *)arg)->eof;
}

/* Dials the server's raft ALPN from client's net with a raw hello; returns once the server has
 * closed the stream (EOF), failing the test if that does not happen. */
static bool raw_hello_refused(struct fx *f,
                              struct node *client,
                              struct node *server,
                              const uint8_t *hello,
                              size_t len)
{
    struct net_conn c = {0};
    assert_int_equal(rft_net_connect(client->net, server->address, RFT_TRANSPORT_TLS_ALPN, hello,
                                     len, 3000, net_conn_cb, &c, NULL),
                     CF_OK);
    run_until(f, net_conn_done, &c);
    assert_int_equal(c.status, CF_OK);
    c.stream->data = &c;
    uv_read_start(c.stream, eof_alloc, eof_read);
    run_until(f, net_conn_eof, &c);
    bool refused = c.eof;
    uv_close((uv_handle_t *)c.stream, rft_net_stream_free);
    run_for(f, 10);
    return refused;
}

static void tr_close_cb(struct raft_uv_transport *t)
{
    *(bool *)t->data = true;
}

static bool flag_set(struct fx *f, void *arg)
{
    (void)f;
    return *(bool *)arg;
}

static void test_transport_checks(void **state)
{
    struct fx *f = *state;
    struct node *srv = &f->nodes[0];
    struct node *cli = &f->nodes[1];
    node_listen(f, srv, &f->creds[0], "node-1", 0);
    node_listen(f, cli, &f->creds[1], "node-2", 0);
    struct accepted acc = {0};
    srv->transport.data = &acc;
    assert_int_equal(srv->transport.init(&srv->transport, srv->id, srv->address), 0);
    assert_int_equal(cli->transport.init(&cli->transport, cli->id, cli->address), 0);

    uint8_t good[64];
    cf_put_be64(good, rft_raft_id("node-2"));
    memcpy(good + 8, cli->address, strlen(cli->address));
    size_t good_len = 8 + strlen(cli->address);
    /* Before listen, raft streams are closed. */
    assert_true(raw_hello_refused(f, cli, srv, good, good_len));
    assert_int_equal(acc.count, 0);
    assert_int_equal(srv->transport.listen(&srv->transport, tr_accept_cb), 0);

    /* The client refuses a server whose CN is not the id asked for. */
    struct conn_req c = {0};
    assert_int_equal(cli->transport.connect(&cli->transport, &c.req, rft_raft_id("node-3"),
                                            srv->address, tr_connect_cb),
                     0);
    assert_false(c.done);
    run_until(f, conn_done, &c);
    assert_int_equal(c.status, RAFT_NOCONNECTION);
    assert_null(c.stream);
    assert_non_null(strstr(cli->transport.errmsg, "node-1"));
    /* (The server had no reason to refuse node-2: it accepted, then saw the stream close.) */
    while (acc.count < 1) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }

    /* The right id connects, and the server learns the client's id and address. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(cli->transport.connect(&cli->transport, &c.req, rft_raft_id("node-1"),
                                            srv->address, tr_connect_cb),
                     0);
    run_until(f, conn_done, &c);
    assert_int_equal(c.status, 0);
    assert_non_null(c.stream);
    uv_close((uv_handle_t *)c.stream, rft_net_stream_free);
    while (acc.count < 2) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(acc.id, rft_raft_id("node-2"));
    assert_string_equal(acc.address, cli->address);

    /* Malformed hellos and an id that is not the certificate's are closed by the server. */
    uint8_t bad[64];
    memcpy(bad, good, good_len);
    assert_true(raw_hello_refused(f, cli, srv, bad, 0));
    assert_true(raw_hello_refused(f, cli, srv, bad, 8));
    bad[8] = '\0';
    assert_true(raw_hello_refused(f, cli, srv, bad, good_len));
    cf_put_be64(bad, rft_raft_id("node-3"));
    memcpy(bad + 8, good + 8, good_len - 8);
    assert_true(raw_hello_refused(f, cli, srv, bad, good_len));
    assert_int_equal(acc.count, 2);
    /* The well-formed hello is accepted (the accept callback closes it, hence EOF too). */
    assert_true(raw_hello_refused(f, cli, srv, good, good_len));
    assert_int_equal(acc.count, 3);

    /* Closing cancels a pending connect; close cb fires from the loop after it. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(cli->transport.connect(&cli->transport, &c.req, rft_raft_id("node-1"),
                                            srv->address, tr_connect_cb),
                     0);
    bool closed = false;
    cli->transport.data = &closed;
    cli->transport.close(&cli->transport, tr_close_cb);
    assert_false(c.done);
    assert_false(closed);
    run_until(f, conn_done, &c);
    assert_int_equal(c.status, RAFT_CANCELED);
    run_until(f, flag_set, &closed);
    /* A closed transport refuses new connects. */
    struct conn_req c2 = {0};
    assert_int_not_equal(cli->transport.connect(&cli->transport, &c2.req, rft_raft_id("node-1"),
                                                srv->address, tr_connect_cb),
                         0);
    srv->transport.close(&srv->transport, NULL);
    run_for(f, 20);
    node_stop(f, cli);
    node_stop(f, srv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_id),
        cmocka_unit_test_setup_teardown(test_three_nodes_replicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_impostor_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
