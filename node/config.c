/*
 * Config file loading: read the file, parse HCL (lib/hcl.c), walk the tree and copy the values
 * into struct node_config, checking each key's type. Every error carries FILE:LINE.
 */
#include "node/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/duration.h"
#include "lib/hcl.h"
#include "lib/log.h"
#include "lib/mem.h"

#define MAX_CONFIG_SIZE (1024 * 1024)

struct walk
{
    const char *file;
    char *errmsg;
};

static int fail(struct walk *w, const struct cf_hcl *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct walk *w, const struct cf_hcl *v, const char *fmt, ...)
{
    char what[CF_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cf_errmsg_printf(w->errmsg, "%s:%d: %s", w->file, v ? v->line : 0, what);
    return CF_EINVAL;
}

static int get_string(struct walk *w, const char *key, const struct cf_hcl *v, char **out)
{
    if (v->kind != CF_HCL_STRING) {
        return fail(w, v, "%s must be a string, not a %s", key, cf_hcl_kind_name(v->kind));
    }
    char *s = cf_strdup(v->str);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    cf_free(*out);
    *out = s;
    return CF_OK;
}

/* Vault accepts booleans also as strings ("true"). */
static int get_bool(struct walk *w, const char *key, const struct cf_hcl *v, bool *out)
{
    if (v->kind == CF_HCL_BOOL) {
        *out = v->b;
        return CF_OK;
    }
    if (v->kind == CF_HCL_STRING) {
        if (strcasecmp(v->str, "true") == 0 || strcmp(v->str, "1") == 0) {
            *out = true;
            return CF_OK;
        }
        if (strcasecmp(v->str, "false") == 0 || strcmp(v->str, "0") == 0) {
            *out = false;
            return CF_OK;
        }
    }
    return fail(w, v, "%s must be a boolean", key);
}

static int get_duration_ms(struct walk *w, const char *key, const struct cf_hcl *v, uint64_t *out)
{
    int64_t ms = 0;
    if (v->kind == CF_HCL_NUMBER && v->is_int && v->i >= 0) {
        ms = v->i * 1000;
    } else if (v->kind != CF_HCL_STRING || cf_duration_parse_ms(v->str, &ms) != CF_OK || ms < 0) {
        return fail(w, v, "%s must be a duration such as \"30s\"", key);
    }
    *out = (uint64_t)ms;
    return CF_OK;
}

/* A count from 1 to 2^30, as an integer or a string of digits (Vault reads these raft options
 * as strings). */
static int get_count(struct walk *w, const char *key, const struct cf_hcl *v, unsigned *out)
{
    long long n = -1;
    if (v->kind == CF_HCL_NUMBER && v->is_int) {
        n = v->i;
    } else if (v->kind == CF_HCL_STRING && v->str[0] >= '0' && v->str[0] <= '9' &&
               strlen(v->str) <= 10) {
        char *end = NULL;
        n = strtoll(v->str, &end, 10);
        if (*end != '\0') {
            n = -1;
        }
    }
    if (n < 1 || n > (1LL << 30)) {
        return fail(w, v, "%s must be a whole number from 1 to %lld", key, 1LL << 30);
    }
    *out = (unsigned)n;
    return CF_OK;
}

/* The body of a labelled block: `storage "raft" { ... }` is storage -> {raft -> body}. */
static int block_body(struct walk *w,
                      const char *key,
                      const struct cf_hcl *v,
                      const char **label,
                      const struct cf_hcl **body)
{
    if (v->kind != CF_HCL_OBJECT || v->n_entries != 1 ||
        v->entries[0].value->kind != CF_HCL_OBJECT) {
        return fail(w, v, "%s must be a block with one label, such as %s \"...\" { }", key, key);
    }
    *label = v->entries[0].key;
    *body = v->entries[0].value;
    return CF_OK;
}

static int parse_retry_join(struct walk *w, const struct cf_hcl *v, struct node_config *cfg)
{
    if (v->kind != CF_HCL_OBJECT) {
        return fail(w, v, "retry_join must be a block");
    }
    if (cfg->n_retry_join >= NODE_CONFIG_MAX_RETRY_JOIN) {
        return fail(w, v, "too many retry_join blocks (at most %d)", NODE_CONFIG_MAX_RETRY_JOIN);
    }
    struct node_retry_join_config *r = &cfg->retry_join[cfg->n_retry_join++];
    int rv = CF_OK;
    for (size_t i = 0; i < v->n_entries && rv == CF_OK; i++) {
        const char *k = v->entries[i].key;
        const struct cf_hcl *e = v->entries[i].value;
        if (strcmp(k, "leader_api_addr") == 0) {
            rv = get_string(w, k, e, &r->leader_api_addr);
            if (rv == CF_OK && strncmp(r->leader_api_addr, "http://", 7) != 0 &&
                strncmp(r->leader_api_addr, "https://", 8) != 0) {
                rv = fail(w, e, "leader_api_addr must be an http:// or https:// URL");
            }
        } else if (strcmp(k, "leader_ca_cert_file") == 0) {
            rv = get_string(w, k, e, &r->leader_ca_cert_file);
        } else if (strcmp(k, "leader_tls_servername") == 0) {
            rv = get_string(w, k, e, &r->leader_tls_servername);
        } else if (strcmp(k, "auto_join") == 0 || strcmp(k, "auto_join_scheme") == 0 ||
                   strcmp(k, "auto_join_port") == 0 || strcmp(k, "leader_client_cert_file") == 0 ||
                   strcmp(k, "leader_client_key_file") == 0 || strcmp(k, "leader_ca_cert") == 0 ||
                   strcmp(k, "leader_client_cert") == 0 || strcmp(k, "leader_client_key") == 0) {
            rv = fail(w, e, "retry_join %s is not supported by this server", k);
        } else {
            rv = fail(w, e, "unknown key \"%s\" in retry_join", k);
        }
    }
    if (rv == CF_OK && r->leader_api_addr == NULL) {
        rv = fail(w, v, "retry_join needs leader_api_addr");
    }
    return rv;
}

static int parse_storage(struct walk *w, const struct cf_hcl *v, struct node_config *cfg)
{
    const char *type = NULL;
    const struct cf_hcl *body = NULL;
    int rv = block_body(w, "storage", v, &type, &body);
    if (rv != CF_OK) {
        return rv;
    }
    if (strcmp(type, "raft") != 0) {
        return fail(w, v, "storage type \"%s\" is not supported; use storage \"raft\"", type);
    }
    for (size_t i = 0; i < body->n_entries && rv == CF_OK; i++) {
        const char *k = body->entries[i].key;
        const struct cf_hcl *e = body->entries[i].value;
        if (strcmp(k, "path") == 0) {
            rv = get_string(w, k, e, &cfg->storage_path);
        } else if (strcmp(k, "node_id") == 0) {
            rv = get_string(w, k, e, &cfg->node_id);
        } else if (strcmp(k, "snapshot_threshold") == 0) {
            rv = get_count(w, k, e, &cfg->snapshot_threshold);
        } else if (strcmp(k, "trailing_logs") == 0) {
            rv = get_count(w, k, e, &cfg->trailing_logs);
        } else if (strcmp(k, "performance_multiplier") == 0 ||
                   strcmp(k, "snapshot_interval") == 0 || strcmp(k, "max_entry_size") == 0 ||
                   strcmp(k, "autopilot_reconcile_interval") == 0 ||
                   strcmp(k, "autopilot_update_interval") == 0) {
            /* Accepted; Coffer's own defaults apply. */
        } else if (strcmp(k, "retry_join") == 0) {
            if (e->kind == CF_HCL_LIST) {
                for (size_t j = 0; j < e->n_items && rv == CF_OK; j++) {
                    rv = parse_retry_join(w, e->items[j], cfg);
                }
            } else {
                rv = parse_retry_join(w, e, cfg);
            }
        } else if (strcmp(k, "retry_join_as_non_voter") == 0) {
            rv = get_bool(w, k, e, &cfg->retry_join_as_non_voter);
        } else {
            rv = fail(w, e, "unknown key \"%s\" in storage \"raft\"", k);
        }
    }
    if (rv == CF_OK && cfg->storage_path == NULL) {
        rv = fail(w, v, "storage \"raft\" needs a path");
    }
    return rv;
}

static int parse_listener(struct walk *w, const struct cf_hcl *v, struct node_config *cfg)
{
    const char *type = NULL;
    const struct cf_hcl *body = NULL;
    int rv = block_body(w, "listener", v, &type, &body);
    if (rv != CF_OK) {
        return rv;
    }
    if (strcmp(type, "tcp") != 0) {
        return fail(w, v, "listener type \"%s\" is not supported; use listener \"tcp\"", type);
    }
    if (cfg->n_listeners >= NODE_CONFIG_MAX_LISTENERS) {
        return fail(w, v, "too many listeners");
    }
    struct node_listener_config *l = &cfg->listeners[cfg->n_listeners++];
    l->tls_min_version = 12;
    char *minv = NULL;
    for (size_t i = 0; i < body->n_entries && rv == CF_OK; i++) {
        const char *k = body->entries[i].key;
        const struct cf_hcl *e = body->entries[i].value;
        if (strcmp(k, "address") == 0) {
            rv = get_string(w, k, e, &l->address);
            if (rv == CF_OK && strrchr(l->address, ':') == NULL) {
                rv = fail(w, e, "address \"%s\" must be host:port", l->address);
            }
        } else if (strcmp(k, "tls_disable") == 0) {
            rv = get_bool(w, k, e, &l->tls_disable);
        } else if (strcmp(k, "tls_cert_file") == 0) {
            rv = get_string(w, k, e, &l->tls_cert_file);
        } else if (strcmp(k, "tls_key_file") == 0) {
            rv = get_string(w, k, e, &l->tls_key_file);
        } else if (strcmp(k, "tls_min_version") == 0) {
            rv = get_string(w, k, e, &minv);
            if (rv == CF_OK) {
                if (strcmp(minv, "tls12") == 0) {
                    l->tls_min_version = 12;
                } else if (strcmp(minv, "tls13") == 0) {
                    l->tls_min_version = 13;
                } else {
                    rv = fail(w, e, "tls_min_version \"%s\" is not supported; use tls12 or tls13",
                              minv);
                }
            }
        } else if (strcmp(k, "max_request_size") == 0) {
            if (e->kind != CF_HCL_NUMBER || !e->is_int || e->i < 0) {
                rv = fail(w, e, "%s must be a non-negative integer", k);
            } else {
                l->max_request_size = (uint64_t)e->i;
            }
        } else if (strcmp(k, "http_idle_timeout") == 0) {
            rv = get_duration_ms(w, k, e, &l->idle_timeout_ms);
        } else if (strcmp(k, "http_read_header_timeout") == 0) {
            rv = get_duration_ms(w, k, e, &l->read_header_timeout_ms);
        } else if (strcmp(k, "http_read_timeout") == 0) {
            rv = get_duration_ms(w, k, e, &l->read_timeout_ms);
        } else if (strcmp(k, "cluster_address") == 0) {
            rv = get_string(w, k, e, &l->cluster_address);
        } else if (strcmp(k, "tls_max_version") == 0 || strcmp(k, "tls_cipher_suites") == 0 ||
                   strcmp(k, "tls_client_ca_file") == 0 ||
                   strcmp(k, "tls_disable_client_certs") == 0 ||
                   strcmp(k, "tls_require_and_verify_client_cert") == 0 ||
                   strcmp(k, "max_request_duration") == 0 || strcmp(k, "http_write_timeout") == 0 ||
                   strcmp(k, "telemetry") == 0 || strcmp(k, "profiling") == 0 ||
                   strcmp(k, "x_forwarded_for_authorized_addrs") == 0 ||
                   strcmp(k, "custom_response_headers") == 0) {
            /* Accepted Vault keys without behaviour yet. */
        } else {
            rv = fail(w, e, "unknown key \"%s\" in listener \"tcp\"", k);
        }
    }
    cf_free(minv);
    if (rv == CF_OK && l->address == NULL) {
        l->address = cf_strdup("127.0.0.1:8200");
        rv = l->address ? CF_OK : CF_ENOMEM;
    }
    if (rv == CF_OK && !l->tls_disable && (l->tls_cert_file == NULL || l->tls_key_file == NULL)) {
        rv = fail(w, v,
                  "listener \"tcp\" needs tls_cert_file and tls_key_file, or "
                  "tls_disable = true");
    }
    return rv;
}

/* A seal block's value as text: Vault's seals take strings, and accept booleans and numbers. */
static int seal_value_text(struct walk *w, const char *k, const struct cf_hcl *e, char **out)
{
    char num[64];
    const char *text = NULL;
    if (e->kind == CF_HCL_STRING) {
        text = e->str;
    } else if (e->kind == CF_HCL_BOOL) {
        text = e->b ? "true" : "false";
    } else if (e->kind == CF_HCL_NUMBER) {
        if (e->is_int) {
            snprintf(num, sizeof(num), "%lld", (long long)e->i);
        } else {
            snprintf(num, sizeof(num), "%.17g", e->num);
        }
        text = num;
    } else {
        return fail(w, e, "seal field %s must be a string, not a %s", k, cf_hcl_kind_name(e->kind));
    }
    *out = cf_strdup(text);
    return *out ? CF_OK : CF_ENOMEM;
}

static int parse_seal(struct walk *w, const struct cf_hcl *v, struct node_config *cfg)
{
    const char *type = NULL;
    const struct cf_hcl *body = NULL;
    int rv = block_body(w, "seal", v, &type, &body);
    if (rv != CF_OK) {
        return rv;
    }
    if (strcmp(type, "shamir") != 0 && strcmp(type, "static") != 0 && strcmp(type, "pkcs11") != 0) {
        return fail(w, v,
                    "seal type \"%s\" is not supported by this build; use \"shamir\", "
                    "\"static\" or \"pkcs11\"",
                    type);
    }
    if (cfg->n_seals == NODE_CONFIG_MAX_SEALS) {
        return fail(w, v, "at most %d seal blocks are allowed (two only while migrating)",
                    NODE_CONFIG_MAX_SEALS);
    }
    struct node_seal_stanza *st = &cfg->seals[cfg->n_seals++];
    snprintf(st->type, sizeof(st->type), "%s", type);
    st->line = v->line;
    for (size_t i = 0; i < body->n_entries && rv == CF_OK; i++) {
        const char *k = body->entries[i].key;
        const struct cf_hcl *e = body->entries[i].value;
        if (node_seal_param(st, k) != NULL) {
            rv = fail(w, e, "seal \"%s\": %s is given twice", type, k);
        } else if (strcmp(k, "disabled") == 0) {
            rv = get_bool(w, k, e, &st->disabled);
        } else if (st->n_params == NODE_SEAL_MAX_PARAMS) {
            rv = fail(w, e, "seal \"%s\": too many fields", type);
        } else {
            st->keys[st->n_params] = cf_strdup(k);
            rv = st->keys[st->n_params] ? seal_value_text(w, k, e, &st->values[st->n_params])
                                        : CF_ENOMEM;
            if (rv != CF_OK) {
                CF_FREE(st->keys[st->n_params]);
            } else {
                st->n_params++;
            }
        }
    }
    return rv;
}

/* At most one enabled seal; without a seal block, SEAL_UNSEAL_PROVIDER in the environment
 * selects the static seal (its fields then come from the environment), else Shamir. */
static int check_seals(struct walk *w, struct node_config *cfg)
{
    size_t enabled = 0;
    for (size_t i = 0; i < cfg->n_seals; i++) {
        enabled += cfg->seals[i].disabled ? 0 : 1;
    }
    if (cfg->n_seals == 2 && enabled != 1) {
        cf_errmsg_printf(w->errmsg,
                         "%s:%d: with two seal blocks exactly one must have disabled = \"true\" "
                         "(the seal being migrated away from)",
                         w->file, cfg->seals[1].line);
        return CF_EINVAL;
    }
    if (cfg->n_seals == 0) {
        const char *p = getenv("SEAL_UNSEAL_PROVIDER");
        struct node_seal_stanza *st = &cfg->seals[cfg->n_seals++];
        snprintf(st->type, sizeof(st->type), "%s", p && p[0] ? "static" : "shamir");
    }
    return CF_OK;
}

static int walk_root(struct walk *w, const struct cf_hcl *root, struct node_config *cfg)
{
    int rv = CF_OK;
    bool have_storage = false;
    for (size_t i = 0; i < root->n_entries && rv == CF_OK; i++) {
        const char *k = root->entries[i].key;
        const struct cf_hcl *e = root->entries[i].value;
        if (strcmp(k, "storage") == 0) {
            if (have_storage) {
                rv = fail(w, e, "only one storage block is allowed");
            } else {
                have_storage = true;
                rv = parse_storage(w, e, cfg);
            }
        } else if (strcmp(k, "listener") == 0) {
            rv = parse_listener(w, e, cfg);
        } else if (strcmp(k, "seal") == 0) {
            rv = parse_seal(w, e, cfg);
        } else if (strcmp(k, "api_addr") == 0) {
            rv = get_string(w, k, e, &cfg->api_addr);
        } else if (strcmp(k, "cluster_addr") == 0) {
            rv = get_string(w, k, e, &cfg->cluster_addr);
        } else if (strcmp(k, "disable_mlock") == 0) {
            rv = get_bool(w, k, e, &cfg->disable_mlock);
        } else if (strcmp(k, "ui") == 0) {
            rv = get_bool(w, k, e, &cfg->ui);
        } else if (strcmp(k, "raw_storage_endpoint") == 0) {
            rv = get_bool(w, k, e, &cfg->raw_storage_endpoint);
        } else if (strcmp(k, "log_level") == 0) {
            rv = get_string(w, k, e, &cfg->log_level);
            enum cf_log_level lvl;
            if (rv == CF_OK && !cf_log_level_parse(cfg->log_level, &lvl)) {
                rv = fail(w, e,
                          "log_level \"%s\" is not one of trace, debug, info, warn, "
                          "error",
                          cfg->log_level);
            }
        } else if (strcmp(k, "cluster_name") == 0 || strcmp(k, "default_lease_ttl") == 0 ||
                   strcmp(k, "max_lease_ttl") == 0 || strcmp(k, "disable_clustering") == 0 ||
                   strcmp(k, "disable_performance_standby") == 0 || strcmp(k, "pid_file") == 0 ||
                   strcmp(k, "enable_response_header_hostname") == 0 ||
                   strcmp(k, "enable_response_header_raft_node_id") == 0 ||
                   strcmp(k, "introspection_endpoint") == 0 || strcmp(k, "telemetry") == 0 ||
                   strcmp(k, "log_format") == 0 || strcmp(k, "disable_cache") == 0) {
            /* Accepted Vault keys without behaviour yet. */
        } else {
            rv = fail(w, e, "unknown configuration key \"%s\"", k);
        }
    }
    if (rv == CF_OK && !have_storage) {
        cf_errmsg_printf(w->errmsg, "%s: a storage \"raft\" block is required", w->file);
        rv = CF_EINVAL;
    }
    if (rv == CF_OK && cfg->n_listeners == 0) {
        cf_errmsg_printf(w->errmsg, "%s: at least one listener \"tcp\" block is required", w->file);
        rv = CF_EINVAL;
    }
    if (rv == CF_OK) {
        rv = check_seals(w, cfg);
    }
    return rv;
}

int node_config_load(const char *file, struct node_config *cfg, char errmsg[CF_ERRMSG_SIZE])
{
    memset(cfg, 0, sizeof(*cfg));
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        cf_errmsg_printf(errmsg, "%s: %s", file, strerror(errno));
        return CF_EIO;
    }
    char *text = cf_malloc(MAX_CONFIG_SIZE + 1);
    size_t n = text ? fread(text, 1, MAX_CONFIG_SIZE + 1, f) : 0;
    bool read_err = ferror(f) != 0;
    fclose(f);
    if (text == NULL) {
        return CF_ENOMEM;
    }
    if (read_err || n > MAX_CONFIG_SIZE) {
        cf_free(text);
        cf_errmsg_printf(errmsg, "%s: %s", file, read_err ? "read error" : "file too large");
        return CF_EIO;
    }
    text[n] = '\0';
    struct cf_hcl *root = NULL;
    int rv = cf_hcl_parse(text, n, file, &root, errmsg);
    cf_free(text);
    if (rv != CF_OK) {
        return rv;
    }
    struct walk w = {.file = file, .errmsg = errmsg};
    rv = walk_root(&w, root, cfg);
    cf_hcl_free(root);
    if (rv != CF_OK) {
        if (rv == CF_ENOMEM) {
            cf_errmsg_printf(errmsg, "%s: out of memory", file);
        }
        node_config_close(cfg);
    }
    return rv;
}

void node_config_close(struct node_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    cf_free(cfg->storage_path);
    cf_free(cfg->node_id);
    for (size_t i = 0; i < cfg->n_retry_join; i++) {
        cf_free(cfg->retry_join[i].leader_api_addr);
        cf_free(cfg->retry_join[i].leader_ca_cert_file);
        cf_free(cfg->retry_join[i].leader_tls_servername);
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        cf_free(cfg->listeners[i].address);
        cf_free(cfg->listeners[i].tls_cert_file);
        cf_free(cfg->listeners[i].tls_key_file);
        cf_free(cfg->listeners[i].cluster_address);
    }
    cf_free(cfg->api_addr);
    cf_free(cfg->cluster_addr);
    cf_free(cfg->log_level);
    for (size_t i = 0; i < cfg->n_seals; i++) {
        node_seal_stanza_clear(&cfg->seals[i]);
    }
    memset(cfg, 0, sizeof(*cfg));
}
