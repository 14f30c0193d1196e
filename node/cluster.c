/*
 * The cluster side of a node (docs/formats/storage-layout.md "core/cluster"):
 *
 * - The cluster CA, created by sys/init and kept barrier-encrypted at core/cluster/ca, signs one
 *   certificate per node (subject CN = node id) for the mutual-TLS cluster port.
 * - A node keeps its own key, certificate and the CA certificate in <data dir>/cluster-tls.json
 *   (mode 0600), so that Raft runs while the node is sealed: a restarted standby catches up and
 *   counts toward quorum before anyone unseals it, as etcd or Consul nodes do with their TLS
 *   keys. The key only lets its holder speak on the cluster port; every value the Raft log
 *   carries is barrier-encrypted, and removing a peer refuses its identity cluster-wide.
 * - Member records (core/cluster/members/<id>, plaintext JSON) map node ids to their API and
 *   cluster addresses; core/cluster/active names the active node (for sys/leader, 307s and
 *   forwarding); core/cluster/removed/<id> lists ids refused at the handshake.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/mem.h"
#include "lib/tlsca.h"
#include "node/barrier.h"
#include "raft/entry.h"
#include "node/cluster.h"
#include "node/internal.h"
#include "raft/net.h"

#define CF_LOG_MODULE "cluster"
#include "lib/log.h"
#include "raft/transport_tls.h"

#define CREDS_FILE "cluster-tls.json"
#define JOINED_FILE "cluster-joined"
#define CA_DAYS (10 * 365)
#define NODE_DAYS (10 * 365)

/* Local files ------------------------------------------------------------------------------- */

static void dir_file(const struct node_core *core, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", core->storage_path, name);
}

/* Writes a file atomically (temp file, fsync, rename, fsync of the dir), mode 0600. */
static int write_file(const struct node_core *core,
                      const char *name,
                      const char *text,
                      char errmsg[CF_ERRMSG_SIZE])
{
    char path[4096];
    char tmp[4200];
    dir_file(core, name, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        cf_errmsg_printf(errmsg, "create %s: %s", tmp, strerror(errno));
        return CF_EIO;
    }
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        cf_errmsg_printf(errmsg, "write %s: %s", path, strerror(errno));
        unlink(tmp);
        return CF_EIO;
    }
    int dfd = open(core->storage_path, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return CF_OK;
}

bool node__cluster_joined(const struct node_core *core)
{
    char path[4096];
    dir_file(core, JOINED_FILE, path, sizeof(path));
    return access(path, F_OK) == 0;
}

int node__cluster_mark_joined(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    return write_file(core, JOINED_FILE, "joined\n", errmsg);
}

int node__cluster_save_creds(struct node_core *core,
                             const char *ca,
                             const char *cert,
                             const char *key,
                             char errmsg[CF_ERRMSG_SIZE])
{
    if (core->cfg.net != NULL) {
        int rv = rft_net_set_creds(core->cfg.net, ca, cert, key, errmsg);
        if (rv != CF_OK) {
            return rv;
        }
    }
    json_t *j = json_pack("{s:s,s:s,s:s}", "ca_cert", ca, "cert", cert, "key", key);
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    json_decref(j);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    int rv = write_file(core, CREDS_FILE, s, errmsg);
    cf_cleanse(s, strlen(s));
    cf_free(s);
    return rv;
}

static bool allow_peer(void *arg, const char *peer)
{
    struct node_core *core = arg;
    char key[512];
    snprintf(key, sizeof(key), "%s%s", NODE_PREFIX_CLUSTER_REMOVED, peer);
    if (rft_store_get(core->store, key, NULL, NULL, NULL) == CF_OK) {
        CF_LOG(CF_LOG_WARN, "refused a connection from removed node %s", peer);
        return false;
    }
    return true;
}

int node__cluster_open(struct node_core *core, char errmsg[CF_ERRMSG_SIZE])
{
    if (core->cfg.net == NULL) {
        return CF_OK;
    }
    rft_net_set_allow(core->cfg.net, allow_peer, core);
    int hrv = node__report_start(core);
    if (hrv != CF_OK) {
        cf_errmsg_printf(errmsg, "version reports: %s", cf_strerror(hrv));
        return hrv;
    }
    char path[4096];
    dir_file(core, CREDS_FILE, path, sizeof(path));
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (j == NULL) {
        if (access(path, F_OK) == 0) {
            cf_errmsg_printf(errmsg, "%s: %s", path, jerr.text);
            return CF_ECORRUPT;
        }
        return CF_OK; /* not part of a cluster yet */
    }
    const char *ca = json_string_value(json_object_get(j, "ca_cert"));
    const char *cert = json_string_value(json_object_get(j, "cert"));
    const char *key = json_string_value(json_object_get(j, "key"));
    int rv = CF_ECORRUPT;
    if (ca == NULL || cert == NULL || key == NULL) {
        cf_errmsg_printf(errmsg, "%s lacks ca_cert, cert or key", path);
    } else {
        rv = rft_net_set_creds(core->cfg.net, ca, cert, key, errmsg);
        if (rv != CF_OK) {
            cf_errmsg_wrapf(errmsg, "%s", path);
        }
    }
    if (key != NULL) {
        cf_cleanse((void *)key, strlen(key));
    }
    json_decref(j);
    return rv;
}

/* Member records ---------------------------------------------------------------------------- */

int node__cluster_member_put(struct rft_batch *b,
                             const char *node_id,
                             const char *api_addr,
                             const char *cluster_addr,
                             bool non_voter,
                             const char *version,
                             uint64_t entry_format)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:b,s:s,s:I}", "node_id", node_id, "api_addr", api_addr,
                          "cluster_addr", cluster_addr, "non_voter", non_voter, "version", version,
                          "entry_format", (json_int_t)entry_format);
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    json_decref(j);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    char key[512];
    snprintf(key, sizeof(key), "%s%s", NODE_PREFIX_CLUSTER_MEMBERS, node_id);
    int rv = rft_batch_put(b, key, (const uint8_t *)s, strlen(s));
    cf_free(s);
    return rv;
}

json_t *node__cluster_member(struct node_core *core, const char *node_id)
{
    char key[512];
    snprintf(key, sizeof(key), "%s%s", NODE_PREFIX_CLUSTER_MEMBERS, node_id);
    const uint8_t *v;
    size_t n;
    if (rft_store_get(core->store, key, &v, &n, NULL) != CF_OK) {
        return NULL;
    }
    return json_loadb((const char *)v, n, 0, NULL);
}

struct member_find
{
    uint64_t raft_id;
    json_t *found;
};

static int member_find_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct member_find *f = arg;
    const char *id = key + strlen(NODE_PREFIX_CLUSTER_MEMBERS);
    if (rft_raft_id(id) == f->raft_id) {
        f->found = json_loadb((const char *)val, len, 0, NULL);
        return 1;
    }
    return 0;
}

json_t *node__cluster_member_by_raft_id(struct node_core *core, uint64_t raft_id)
{
    struct member_find f = {.raft_id = raft_id};
    rft_store_scan(core->store, NODE_PREFIX_CLUSTER_MEMBERS, NULL, member_find_visit, &f);
    return f.found;
}

/* Init: the CA and this node's certificate -------------------------------------------------- */

/* Creates a key and CSR for this node and has the CA (PEM pair) sign it. */
static int issue_own(const char *node_id,
                     const char *ca_cert,
                     const char *ca_key,
                     char **cert,
                     char **key,
                     char errmsg[CF_ERRMSG_SIZE])
{
    char *csr = NULL;
    int rv = cf_tlsca_new_csr(node_id, key, &csr, errmsg);
    if (rv == CF_OK) {
        rv = cf_tlsca_sign(ca_cert, ca_key, csr, node_id, NODE_DAYS, cert, errmsg);
        if (rv != CF_OK) {
            cf_cleanse(*key, strlen(*key));
            CF_FREE(*key);
        }
    }
    cf_free(csr);
    return rv;
}

int node__cluster_init_put(struct node_core *core, struct rft_batch *b, char errmsg[CF_ERRMSG_SIZE])
{
    char *ca_cert = NULL;
    char *ca_key = NULL;
    char *cert = NULL;
    char *key = NULL;
    int rv = cf_tlsca_new_ca("coffer-cluster-ca", CA_DAYS, &ca_cert, &ca_key, errmsg);
    if (rv == CF_OK) {
        rv = issue_own(core->node_id, ca_cert, ca_key, &cert, &key, errmsg);
    }
    if (rv == CF_OK) {
        json_t *j = json_pack("{s:s,s:s}", "cert", ca_cert, "key", ca_key);
        rv = j ? node__batch_put_json(core, b, NODE_KEY_CLUSTER_CA, j) : CF_ENOMEM;
        json_decref(j);
    }
    if (rv == CF_OK) {
        rv = node__cluster_member_put(b, core->node_id, core->api_addr, core->cluster_addr, false,
                                      COFFER_VERSION, RFT_ENTRY_FORMAT);
    }
    if (rv == CF_OK) {
        rv = node__cluster_save_creds(core, ca_cert, cert, key, errmsg);
    }
    if (ca_key != NULL) {
        cf_cleanse(ca_key, strlen(ca_key));
    }
    if (key != NULL) {
        cf_cleanse(key, strlen(key));
    }
    cf_free(ca_cert);
    cf_free(ca_key);
    cf_free(cert);
    cf_free(key);
    return rv;
}

int node__cluster_sign(struct node_core *core,
                       const char *csr,
                       const char *node_id,
                       char **cert,
                       char **ca_cert,
                       char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t *v = NULL;
    size_t n = 0;
    int rv = node__get(core, NODE_KEY_CLUSTER_CA, &v, &n);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg,
                         "read the cluster CA: %s (a forced snapshot restore from another "
                         "cluster leaves the CA sealed under this cluster's former keys: nodes "
                         "cannot join until the cluster is rebuilt from a single node)",
                         cf_strerror(rv));
        return rv;
    }
    json_t *j = json_loadb((const char *)v, n, 0, NULL);
    cf_cleanse(v, n);
    cf_free(v);
    const char *c = json_string_value(json_object_get(j, "cert"));
    const char *k = json_string_value(json_object_get(j, "key"));
    if (c == NULL || k == NULL) {
        json_decref(j);
        cf_errmsg_printf(errmsg, "the stored cluster CA is damaged");
        return CF_ECORRUPT;
    }
    rv = cf_tlsca_sign(c, k, csr, node_id, NODE_DAYS, cert, errmsg);
    if (rv == CF_OK) {
        *ca_cert = cf_strdup(c);
        if (*ca_cert == NULL) {
            CF_FREE(*cert);
            rv = CF_ENOMEM;
        }
    }
    cf_cleanse((void *)k, strlen(k));
    json_decref(j);
    return rv;
}

/* The active node's record ------------------------------------------------------------------ */

json_t *node__cluster_active(struct node_core *core)
{
    const uint8_t *v;
    size_t n;
    if (rft_store_get(core->store, NODE_KEY_CLUSTER_ACTIVE, &v, &n, NULL) != CF_OK) {
        return NULL;
    }
    return json_loadb((const char *)v, n, 0, NULL);
}

static void active_written_cb(void *arg, int status)
{
    struct node_core *core = arg;
    if (status != CF_OK) {
        CF_LOG(CF_LOG_WARN, "record the active node: %s", cf_strerror(status));
        return;
    }
    CF_LOG(CF_LOG_INFO, "active node=%s term=%llu", core->node_id,
           (unsigned long long)rft_store_term(core->store));
}

void node__cluster_announce_active(struct node_core *core)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I}", "node_id", core->node_id, "api_addr",
                          core->api_addr, "cluster_addr", core->cluster_addr, "term",
                          (json_int_t)rft_store_term(core->store), "since",
                          (json_int_t)(core->active_since_ns / 1000000000));
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    json_decref(j);
    struct rft_batch *b = s ? rft_batch_new() : NULL;
    if (b == NULL ||
        rft_batch_put(b, NODE_KEY_CLUSTER_ACTIVE, (const uint8_t *)s, strlen(s)) != CF_OK) {
        rft_batch_free(b);
        cf_free(s);
        CF_LOG(CF_LOG_WARN, "record the active node: out of memory");
        return;
    }
    cf_free(s);
    node__commit(core, b, active_written_cb, core);
}

bool node__cluster_leader_info(struct node_core *core, struct node_leader_info *out)
{
    memset(out, 0, sizeof(*out));
    if (rft_store_is_ready(core->store)) {
        out->is_self = true;
        snprintf(out->node_id, sizeof(out->node_id), "%s", core->node_id);
        snprintf(out->api_addr, sizeof(out->api_addr), "%s", core->api_addr);
        snprintf(out->cluster_addr, sizeof(out->cluster_addr), "%s", core->cluster_addr);
        return true;
    }
    char raddr[RFT_ADDRESS_MAX];
    uint64_t lid = rft_store_leader(core->store, raddr);
    if (lid == 0) {
        return false;
    }
    json_t *a = node__cluster_active(core);
    const char *nid = json_string_value(json_object_get(a, "node_id"));
    bool ok = nid != NULL && rft_raft_id(nid) == lid;
    if (ok) {
        snprintf(out->node_id, sizeof(out->node_id), "%s", nid);
        snprintf(out->api_addr, sizeof(out->api_addr), "%s",
                 json_string_value(json_object_get(a, "api_addr")) ?: "");
        snprintf(out->cluster_addr, sizeof(out->cluster_addr), "%s",
                 json_string_value(json_object_get(a, "cluster_addr")) ?: "");
        out->since = json_integer_value(json_object_get(a, "since"));
    }
    json_decref(a);
    return ok;
}
