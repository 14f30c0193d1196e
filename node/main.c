/*
 * The composition root: `coffer server -config=FILE` or `coffer server -dev [...]`.
 *
 * Wires the layers: the node core (storage, barrier, engines) and the API listeners that feed
 * it. Start-up order: load config -> open storage -> replay the log (a bootstrapped node) ->
 * bind listeners -> serve. Dev mode initializes and unseals a node in a fresh temporary data
 * dir, prints the unseal key and root token, and removes the dir on exit. SIGTERM/SIGINT stop
 * gracefully (listeners drain, raft closes); SIGHUP reloads the listeners' TLS certificates.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "api/http.h"
#include "api/route.h"
#include "engines/cubbyhole/cubbyhole.h"
#include "engines/kv/kv.h"
#include "engines/pki/pki.h"
#include "engines/sys/sys.h"
#include "lib/mem.h"
#include "node/config.h"
#include "node/core.h"
#include "node/engine.h"
#include "node/seal.h"
#include "raft/net.h"
#include "raft/transport_tls.h"
#include "replication/ha.h"

#define CF_LOG_MODULE "server"
#include "lib/log.h"

/* jemalloc's settings when the release build links it (CMakeLists.txt COFFER_JEMALLOC; the
 * MALLOC_CONF environment variable still overrides them). Two arenas instead of jemalloc's
 * four per CPU: the threads' caches take nearly every allocation anyway, and with eight arenas
 * the peak RSS of 100,000 stored and revoked certificates (tests/bench/bench_crl.sh) was
 * 763 MiB against 400 MiB with two (glibc: 575 MiB), at the same CPU per request. Unused
 * without jemalloc. */
extern const char *malloc_conf;
const char *malloc_conf = "narenas:2";

struct server
{
    uv_loop_t loop;
    struct node_config cfg;
    struct node_core *core;
    struct api_route route;
    struct rft_net *net;                /* the cluster port; NULL in dev mode */
    struct raft_uv_transport transport; /* raft over net */
    bool transport_inited;
    struct repl_ha *ha;
    char *retry_join_ca[NODE_CONFIG_MAX_RETRY_JOIN]; /* PEM read from leader_ca_cert_file */
    struct api_listener *listeners[NODE_CONFIG_MAX_LISTENERS];
    size_t n_listeners;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    bool dev;
    const char *dev_root_token;
    char dev_dir[64];
    char cluster_bind[300]; /* host:port the cluster port listens on */
    bool stopping;
    int exit_code;
    size_t closing; /* listeners still closing */
};

static void usage(void)
{
    fputs(
        "Usage: coffer server -config=FILE\n"
        "       coffer server -dev [-dev-root-token-id=ID] [-dev-listen-address=HOST:PORT]\n"
        "       coffer operator generate-seal-key\n"
        "       coffer version\n",
        stderr);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Shutdown ----------------------------------------------------------------------------- */

static void net_closed_cb(void *arg)
{
    struct server *s = arg;
    s->net = NULL;
}

static void core_closed_cb(void *arg)
{
    struct server *s = arg;
    s->core = NULL;
    /* libraft has closed its transport with the store: the network can go now. */
    if (s->transport_inited) {
        rft_transport_tls_close(&s->transport);
        s->transport_inited = false;
    }
    if (s->net != NULL) {
        rft_net_close(s->net, net_closed_cb, s);
    }
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
}

/* After a failed start: the store is gone; close the cluster port. */
static void startup_failed_cb(void *arg)
{
    struct server *s = arg;
    if (s->transport_inited) {
        rft_transport_tls_close(&s->transport);
        s->transport_inited = false;
    }
    if (s->net != NULL) {
        rft_net_close(s->net, net_closed_cb, s);
    }
}

static void ha_closed_cb(void *arg)
{
    struct server *s = arg;
    s->ha = NULL;
    node_core_close(s->core, core_closed_cb, s);
}

static void listener_closed_cb(void *arg)
{
    struct server *s = arg;
    if (--s->closing == 0) {
        repl_ha_close(s->ha, ha_closed_cb, s);
    }
}

static void server_stop(struct server *s, int exit_code)
{
    if (s->stopping) {
        return;
    }
    s->stopping = true;
    s->exit_code = exit_code;
    CF_LOG(CF_LOG_INFO, "shutting down");
    s->closing = s->n_listeners;
    if (s->closing == 0) {
        if (s->core != NULL) {
            repl_ha_close(s->ha, ha_closed_cb, s);
        } else {
            core_closed_cb(s);
        }
        return;
    }
    for (size_t i = 0; i < s->n_listeners; i++) {
        api_listener_close(s->listeners[i], listener_closed_cb, s);
    }
    s->n_listeners = 0;
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct server *s = h->data;
    if (signum == SIGHUP) {
        for (size_t i = 0; i < s->n_listeners; i++) {
            char errmsg[CF_ERRMSG_SIZE] = "";
            if (api_listener_reload_tls(s->listeners[i], errmsg) != CF_OK) {
                CF_LOG(CF_LOG_ERROR, "reload TLS certificate: %s", errmsg);
            } else {
                CF_LOG(CF_LOG_INFO, "reloaded TLS certificate listener=%zu", i);
            }
        }
        return;
    }
    server_stop(s, 0);
}

/* Start-up ------------------------------------------------------------------------------ */

static int start_listeners(struct server *s)
{
    for (size_t i = 0; i < s->cfg.n_listeners; i++) {
        const struct node_listener_config *l = &s->cfg.listeners[i];
        struct api_listener_config lc = {
            .address = l->address,
            .tls_disable = l->tls_disable,
            .tls_cert_file = l->tls_cert_file,
            .tls_key_file = l->tls_key_file,
            .tls_min_version = l->tls_min_version,
            .max_request_size = l->max_request_size,
            .idle_timeout_ms = l->idle_timeout_ms,
            .read_header_timeout_ms = l->read_header_timeout_ms,
            .read_timeout_ms = l->read_timeout_ms,
        };
        char errmsg[CF_ERRMSG_SIZE] = "";
        int rv = api_listener_new(&s->loop, &lc, api_route_exchange, &s->route,
                                  &s->listeners[s->n_listeners], errmsg);
        if (rv != CF_OK) {
            fprintf(stderr, "coffer: listener %s: %s\n", l->address, errmsg);
            return rv;
        }
        s->n_listeners++;
        CF_LOG(CF_LOG_INFO, "listening address=%s tls=%s", l->address,
               l->tls_disable ? "disabled" : "enabled");
    }
    return CF_OK;
}

static void print_banner(struct server *s)
{
    printf(
        "==> Coffer server configuration:\n\n"
        "             Api Address: %s\n"
        "             Cluster Address: %s\n"
        "                 Storage: raft\n"
        "                 Version: Coffer v%s\n\n",
        s->cfg.api_addr ? s->cfg.api_addr : "", s->cfg.cluster_addr ? s->cfg.cluster_addr : "",
        COFFER_VERSION);
    printf("==> Coffer server started! Log data will stream in below:\n\n");
    fflush(stdout);
}

static void dev_ready_cb(void *arg,
                         int status,
                         const char *unseal_key_b64,
                         const char *root_token,
                         const char *errmsg)
{
    struct server *s = arg;
    if (status != CF_OK) {
        fprintf(stderr, "coffer: dev mode setup failed: %s\n", errmsg ? errmsg : "");
        server_stop(s, 1);
        return;
    }
    if (start_listeners(s) != CF_OK) {
        server_stop(s, 1);
        return;
    }
    print_banner(s);
    printf(
        "WARNING! dev mode is enabled! In this mode, Coffer runs with a temporary data\n"
        "directory (removed on exit), starts unsealed with a single unseal key, and the\n"
        "root token is already authenticated to the CLI.\n\n"
        "You may need to set the following environment variables:\n\n"
        "    $ export VAULT_ADDR='%s'\n\n"
        "The unseal key and root token are displayed below in case you want to\n"
        "seal/unseal the Vault or re-authenticate.\n\n"
        "Unseal Key: %s\n"
        "Root Token: %s\n\n"
        "Development mode should NOT be used in production installations!\n\n",
        s->cfg.api_addr, unseal_key_b64, root_token);
    fflush(stdout);
}

static void core_ready_cb(void *arg, int status, const char *errmsg)
{
    struct server *s = arg;
    if (status != CF_OK) {
        fprintf(stderr, "coffer: %s\n", errmsg ? errmsg : cf_strerror(status));
        server_stop(s, 1);
        return;
    }
    if (s->dev) {
        node_core_dev_init(s->core, s->dev_root_token, dev_ready_cb, s);
        return;
    }
    if (start_listeners(s) != CF_OK) {
        server_stop(s, 1);
        return;
    }
    print_banner(s);
}

/* Builds the in-memory configuration of dev mode. */
static int dev_config(struct server *s, const char *listen)
{
    snprintf(s->dev_dir, sizeof(s->dev_dir), "/tmp/coffer-dev-XXXXXX");
    if (mkdtemp(s->dev_dir) == NULL) {
        fprintf(stderr, "coffer: create dev data dir: %s\n", strerror(errno));
        s->dev_dir[0] = '\0';
        return CF_EIO;
    }
    char url[300];
    char curl[300];
    const char *colon = strrchr(listen, ':');
    int port = colon ? (int)strtol(colon + 1, NULL, 10) : 8200;
    snprintf(url, sizeof(url), "http://%s", listen);
    snprintf(curl, sizeof(curl), "https://%.*s:%d", (int)(colon ? colon - listen : 0), listen,
             port + 1);
    struct node_config *c = &s->cfg;
    c->storage_path = cf_strdup(s->dev_dir);
    c->node_id = cf_strdup("dev");
    c->api_addr = cf_strdup(url);
    c->cluster_addr = cf_strdup(curl);
    snprintf(c->seals[0].type, sizeof(c->seals[0].type), "shamir");
    c->n_seals = 1;
    c->n_listeners = 1;
    c->listeners[0].address = cf_strdup(listen);
    c->listeners[0].tls_disable = true;
    c->listeners[0].tls_min_version = 12;
    c->ui = true;
    if (c->storage_path == NULL || c->node_id == NULL || c->api_addr == NULL ||
        c->cluster_addr == NULL || c->listeners[0].address == NULL) {
        return CF_ENOMEM;
    }
    return CF_OK;
}

/* Fills defaults that depend on the listener: api_addr and cluster_addr. */
static int config_defaults(struct node_config *c)
{
    const struct node_listener_config *l = &c->listeners[0];
    const char *colon = strrchr(l->address, ':');
    int port = colon ? (int)strtol(colon + 1, NULL, 10) : 8200;
    const char *host = l->address;
    int hostlen = colon ? (int)(colon - host) : (int)strlen(host);
    if (hostlen == 0 || (hostlen == 7 && strncmp(host, "0.0.0.0", 7) == 0)) {
        host = "127.0.0.1";
        hostlen = 9;
    }
    char buf[300];
    if (c->api_addr == NULL) {
        snprintf(buf, sizeof(buf), "%s://%.*s:%d", l->tls_disable ? "http" : "https", hostlen, host,
                 port);
        c->api_addr = cf_strdup(buf);
    }
    if (c->cluster_addr == NULL) {
        snprintf(buf, sizeof(buf), "https://%.*s:%d", hostlen, host, port + 1);
        c->cluster_addr = cf_strdup(buf);
    }
    if (c->node_id == NULL) {
        c->node_id = cf_strdup("node1");
    }
    return c->api_addr && c->cluster_addr && c->node_id ? CF_OK : CF_ENOMEM;
}

static char *read_text_file(const char *path, char errmsg[CF_ERRMSG_SIZE])
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        cf_errmsg_printf(errmsg, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = cf_malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
    }
    return buf;
}

/* The mutual-TLS cluster port and raft's transport over it. Binds to the first listener's
 * cluster_address, else its host with the port of cluster_addr. */
static int cluster_setup(struct server *s, char errmsg[CF_ERRMSG_SIZE])
{
    const struct node_listener_config *l = &s->cfg.listeners[0];
    if (l->cluster_address != NULL) {
        snprintf(s->cluster_bind, sizeof(s->cluster_bind), "%s", l->cluster_address);
    } else {
        /* The listener's host, on the port of cluster_addr (api port + 1 by default). */
        const char *colon = strrchr(l->address, ':');
        const char *ccolon = s->cfg.cluster_addr ? strrchr(s->cfg.cluster_addr, ':') : NULL;
        int port = colon ? (int)strtol(colon + 1, NULL, 10) + 1 : 8201;
        if (ccolon != NULL && strtol(ccolon + 1, NULL, 10) > 0) {
            port = (int)strtol(ccolon + 1, NULL, 10);
        }
        snprintf(s->cluster_bind, sizeof(s->cluster_bind), "%.*s:%d",
                 (int)(colon ? colon - l->address : (long)strlen(l->address)), l->address, port);
    }
    for (size_t i = 0; i < s->cfg.n_retry_join; i++) {
        if (s->cfg.retry_join[i].leader_ca_cert_file != NULL) {
            s->retry_join_ca[i] = read_text_file(s->cfg.retry_join[i].leader_ca_cert_file, errmsg);
            if (s->retry_join_ca[i] == NULL) {
                return CF_EIO;
            }
        }
    }
    int rv = rft_net_new(&s->loop, &s->net);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "%s", cf_strerror(rv));
        return rv;
    }
    rv = rft_transport_tls_init(&s->transport, s->net);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "raft transport: %s", cf_strerror(rv));
        return rv;
    }
    s->transport_inited = true;
    return CF_OK;
}

static int run_server(int argc, char **argv)
{
    struct server s;
    memset(&s, 0, sizeof(s));
    const char *config_file = NULL;
    const char *listen = "127.0.0.1:8200";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-') {
            a++;
        }
        if (strncmp(a, "-config=", 8) == 0) {
            config_file = a + 8;
        } else if (strcmp(a, "-config") == 0 && i + 1 < argc) {
            config_file = argv[++i];
        } else if (strcmp(a, "-dev") == 0) {
            s.dev = true;
        } else if (strncmp(a, "-dev-root-token-id=", 19) == 0) {
            s.dev_root_token = a + 19;
        } else if (strncmp(a, "-dev-listen-address=", 20) == 0) {
            listen = a + 20;
        } else {
            fprintf(stderr, "coffer: unknown flag %s\n", argv[i]);
            usage();
            return 2;
        }
    }
    if (!s.dev && config_file == NULL) {
        usage();
        return 2;
    }
    if (s.dev_root_token != NULL && strchr(s.dev_root_token, '.') != NULL &&
        strncmp(s.dev_root_token, "hvs.", 4) != 0) {
        fprintf(stderr, "coffer: -dev-root-token-id must not contain '.'\n");
        return 2;
    }

    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = s.dev ? dev_config(&s, listen) : node_config_load(config_file, &s.cfg, errmsg);
    if (rv == CF_OK && !s.dev) {
        rv = config_defaults(&s.cfg);
    }
    if (rv != CF_OK) {
        fprintf(stderr, "coffer: config error: %s\n", errmsg[0] ? errmsg : cf_strerror(rv));
        goto out;
    }
    enum cf_log_level lvl = CF_LOG_INFO;
    if (s.cfg.log_level != NULL) {
        cf_log_level_parse(s.cfg.log_level, &lvl);
    }
    cf_log_set_level(lvl);
    cf_log_set_node_id(s.cfg.node_id);
    cf_secret_set_mlock(!s.cfg.disable_mlock);

    struct node_seal *seal = NULL;
    struct node_seal *old_seal = NULL;
    const char *old_seal_type = NULL;
    for (size_t i = 0; i < s.cfg.n_seals && rv == CF_OK; i++) {
        if (s.cfg.seals[i].disabled) {
            old_seal_type = s.cfg.seals[i].type;
            rv = node_seal_open(&s.cfg.seals[i], &old_seal, errmsg);
        } else {
            rv = node_seal_open(&s.cfg.seals[i], &seal, errmsg);
        }
    }
    if (rv != CF_OK) {
        node_seal_free(seal);
        node_seal_free(old_seal);
        fprintf(stderr, "coffer: seal error: %s\n", errmsg[0] ? errmsg : cf_strerror(rv));
        goto out;
    }
    uv_loop_init(&s.loop);
    if (!s.dev) {
        rv = cluster_setup(&s, errmsg);
        if (rv != CF_OK) {
            fprintf(stderr, "coffer: cluster port: %s\n", errmsg);
            node_seal_free(seal);
            node_seal_free(old_seal);
            if (s.net != NULL) {
                rft_net_close(s.net, NULL, NULL);
            }
            uv_run(&s.loop, UV_RUN_DEFAULT);
            uv_loop_close(&s.loop);
            goto out;
        }
    }
    struct node_core_config ccfg = {
        .seal = seal,
        .old_seal = old_seal,
        .old_seal_type = old_seal_type,
        .storage_path = s.cfg.storage_path,
        .node_id = s.cfg.node_id,
        .api_addr = s.cfg.api_addr,
        .cluster_addr = s.cfg.cluster_addr,
        .mount_kv_at_secret = true,
        .dev = s.dev,
        .raw_storage_endpoint = s.cfg.raw_storage_endpoint,
        .net = s.net,
        .transport = s.transport_inited ? &s.transport : NULL,
        .retry_join_as_non_voter = s.cfg.retry_join_as_non_voter,
        .snapshot_threshold = s.cfg.snapshot_threshold,
        .trailing_logs = s.cfg.trailing_logs,
    };
    for (size_t i = 0; i < s.cfg.n_retry_join; i++) {
        ccfg.retry_join[i].leader_api_addr = s.cfg.retry_join[i].leader_api_addr;
        ccfg.retry_join[i].leader_ca_cert = s.retry_join_ca[i];
        ccfg.retry_join[i].leader_tls_servername = s.cfg.retry_join[i].leader_tls_servername;
    }
    ccfg.n_retry_join = s.cfg.n_retry_join;
    rv = node_core_new(&s.loop, &ccfg, &s.core, errmsg);
    s.route.core = s.core;
    if (rv == CF_OK && s.net != NULL) {
        rv = repl_ha_new(&s.loop, s.net, &s.route, &s.ha);
        if (rv == CF_OK) {
            s.route.forward = repl_ha_forward;
            s.route.forward_arg = s.ha;
            rv = rft_net_listen(s.net, s.cluster_bind, errmsg);
        } else {
            cf_errmsg_printf(errmsg, "request forwarding: %s", cf_strerror(rv));
        }
    }
    if (rv == CF_OK) {
        node_core_register_engine(s.core, &sys_engine_ops);
        node_core_register_engine(s.core, &kv_engine_ops);
        node_core_register_engine(s.core, &cubbyhole_engine_ops);
        node_core_register_engine(s.core, &pki_engine_ops);
        rv = node_core_start(s.core, core_ready_cb, &s, errmsg);
    }
    if (rv != CF_OK) {
        fprintf(stderr, "coffer: %s\n", errmsg[0] ? errmsg : cf_strerror(rv));
        s.exit_code = 1;
        if (s.ha != NULL) {
            repl_ha_close(s.ha, NULL, NULL);
            s.ha = NULL;
        }
        if (s.core != NULL) {
            node_core_close(s.core, startup_failed_cb, &s);
            s.core = NULL;
        } else {
            startup_failed_cb(&s);
        }
        uv_run(&s.loop, UV_RUN_DEFAULT);
        uv_loop_close(&s.loop);
        goto out;
    }
    uv_signal_init(&s.loop, &s.sigterm);
    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sighup);
    s.sigterm.data = s.sigint.data = s.sighup.data = &s;
    uv_signal_start(&s.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&s.sigint, signal_cb, SIGINT);
    uv_signal_start(&s.sighup, signal_cb, SIGHUP);

    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s.loop) != 0) {
        CF_LOG(CF_LOG_WARN, "event loop closed with handles still open");
    }
    rv = s.exit_code == 0 ? CF_OK : CF_EINTERNAL;
out:
    if (s.dev_dir[0] != '\0') {
        nftw(s.dev_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    for (size_t i = 0; i < NODE_CONFIG_MAX_RETRY_JOIN; i++) {
        cf_free(s.retry_join_ca[i]);
    }
    node_config_close(&s.cfg);
    return rv == CF_OK ? 0 : 1;
}

/* `coffer operator generate-seal-key`: a new static seal key for another node's config. */
static int generate_seal_key(void)
{
    char phrase[CF_BIP39_PHRASE_MAX];
    char hash[65];
    if (node_seal_static_generate(phrase, hash) != CF_OK) {
        fprintf(stderr, "coffer: could not generate a seal key\n");
        return 1;
    }
    printf(
        "Seal key (24-word phrase): %s\n"
        "Validation hash (SHA-256): %s\n\n"
        "Give the phrase to the node through SEAL_UNSEAL_KEY, a key file readable by its\n"
        "owner only, or sys/unseal (provider \"manual\"); put the validation hash in the\n"
        "seal \"static\" block. Keep the phrase secret: it opens this node's storage.\n",
        phrase, hash);
    cf_cleanse(phrase, sizeof(phrase));
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    json_set_alloc_funcs(cf_malloc, cf_free);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "version") == 0) {
        printf("Coffer v%s\n", COFFER_VERSION);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "operator") == 0 &&
        strcmp(argv[2], "generate-seal-key") == 0) {
        return generate_seal_key();
    }
    if (argc >= 2 && strcmp(argv[1], "server") == 0) {
        return run_server(argc - 2, argv + 2);
    }
    usage();
    return 2;
}
