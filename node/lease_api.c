/*
 * sys/leases endpoints (and Vault's legacy sys/renew, sys/revoke*): lookup, list, renew (no
 * lease is renewable today), revoke, revoke-prefix and revoke-force. The sudo ones (list,
 * revoke-prefix, revoke-force) are checked by the core (node/acl.c lists them).
 */
#include <stdio.h>
#include <string.h>

#include "lib/mem.h"
#include "node/internal.h"
#include "node/lease.h"
#include "node/token.h"

#define CF_LOG_MODULE "lease"
#include "lib/log.h"

static bool starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* The lease id of a request: the path tail after base, else the body's lease_id (or, for the
 * legacy sys/renew, url_lease_id). NULL when neither is given. */
static const char *lease_id_of(const struct node_request *req, const char *base)
{
    if (base != NULL && starts(req->path, base) && req->path[strlen(base)] != '\0') {
        return req->path + strlen(base);
    }
    const char *id = json_string_value(json_object_get(req->data, "lease_id"));
    return id != NULL && id[0] != '\0' ? id : NULL;
}

static void lookup(struct node_core *core, struct node_request *req)
{
    const char *id = lease_id_of(req, NULL);
    if (id == NULL) {
        node_request_done(req, node_response_error(400, "missing lease id"));
        return;
    }
    struct node_lease l;
    int rv = node__lease_get(core, id, &l);
    if (rv == CF_ENOTFOUND) {
        node_request_done(req, node_response_error(400, "invalid lease"));
        return;
    }
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(500, "%s", cf_strerror(rv)));
        return;
    }
    char issued[64];
    char expires[64];
    node__rfc3339(l.issue_ns, issued);
    node__rfc3339(l.expire_ns, expires);
    int64_t left = (l.expire_ns - node__now_ns()) / 1000000000LL;
    json_t *d = json_pack("{s:s, s:s, s:s, s:n, s:b, s:I}", "id", l.lease_id, "issue_time", issued,
                          "expire_time", expires, "last_renewal_time", "renewable", l.renewable,
                          "ttl", (json_int_t)(left > 0 ? left : 0));
    node__lease_clear(&l);
    node_request_done(req, d != NULL ? node_response_data(d) : NULL);
}

static void list_leases(struct node_core *core, struct node_request *req, const char *prefix)
{
    json_t *keys = NULL;
    int rv = node__lease_list(core, prefix, &keys);
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(500, "%s", cf_strerror(rv)));
        return;
    }
    node_request_done(req, node_response_data(json_pack("{s:o}", "keys", keys)));
}

static void renew(struct node_core *core, struct node_request *req, const char *base)
{
    const char *id = lease_id_of(req, base);
    if (id == NULL) {
        id = json_string_value(json_object_get(req->data, "url_lease_id"));
    }
    if (id == NULL || id[0] == '\0') {
        node_request_done(req, node_response_error(400, "lease_id must be specified"));
        return;
    }
    struct node_lease l;
    int rv = node__lease_get(core, id, &l);
    if (rv == CF_ENOTFOUND) {
        node_request_done(req, node_response_error(400, "lease not found"));
        return;
    }
    bool renewable = rv == CF_OK && l.renewable;
    node__lease_clear(&l);
    if (rv != CF_OK) {
        node_request_done(req, node_response_error(500, "%s", cf_strerror(rv)));
        return;
    }
    if (!renewable) {
        node_request_done(req, node_response_error(400, "lease is not renewable"));
        return;
    }
    node_request_done(req, node_response_error(500, "lease renewal is not supported"));
}

static void revoked_cb(void *arg, int status)
{
    struct node_request *req = arg;
    if (status == CF_OK || status == CF_ENOTFOUND) {
        node_request_done(req, node_response_new()); /* 204; Vault: unknown ids too */
        return;
    }
    node_request_done(req,
                      node_response_error(500, "failed to revoke lease: %s", cf_strerror(status)));
}

static void background_cb(void *arg, int status)
{
    (void)arg;
    if (status != CF_OK && status != CF_ENOTFOUND) {
        CF_LOG(CF_LOG_WARN, "background lease revocation failed: %s", cf_strerror(status));
    }
}

/* Vault's "sync" (default true): false answers 202 at once and revokes in the background. */
static bool async_asked(struct node_request *req)
{
    const json_t *v = json_object_get(req->data, "sync");
    const char *s = json_string_value(v);
    return json_is_false(v) || (s != NULL && (strcmp(s, "false") == 0 || strcmp(s, "0") == 0));
}

static void accepted(struct node_request *req)
{
    struct node_response *r = node_response_new();
    if (r != NULL) {
        r->status = 202;
    }
    node_request_done(req, r);
}

static void revoke_one(struct node_core *core, struct node_request *req, const char *base)
{
    const char *id = lease_id_of(req, base);
    if (id == NULL) {
        node_request_done(req, node_response_error(400, "invalid request"));
        return;
    }
    if (async_asked(req)) {
        node__lease_revoke(core, id, false, background_cb, NULL);
        accepted(req);
        return;
    }
    node__lease_revoke(core, id, false, revoked_cb, req);
}

static void revoke_prefix(struct node_core *core,
                          struct node_request *req,
                          const char *base,
                          bool force)
{
    const char *prefix = req->path + strlen(base);
    if (prefix[0] == '\0') {
        node_request_done(req, node_response_error(400, "missing prefix"));
        return;
    }
    if (async_asked(req)) {
        node__lease_revoke_prefix(core, prefix, force, background_cb, NULL);
        accepted(req);
        return;
    }
    node__lease_revoke_prefix(core, prefix, force, revoked_cb, req);
}

bool node__lease_api_handle(struct node_core *core, struct node_request *req)
{
    const char *p = req->path;
    bool write = req->op == NODE_OP_UPDATE || req->op == NODE_OP_CREATE;
    if (!starts(p, "sys/leases/") && !starts(p, "sys/renew") && !starts(p, "sys/revoke")) {
        return false;
    }
    if (req->op == NODE_OP_LIST && starts(p, "sys/leases/lookup/")) {
        list_leases(core, req, p + strlen("sys/leases/lookup/"));
        return true;
    }
    if (!write) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    if (strcmp(p, "sys/leases/lookup") == 0) {
        lookup(core, req);
    } else if (starts(p, "sys/leases/revoke-prefix/")) {
        revoke_prefix(core, req, "sys/leases/revoke-prefix/", false);
    } else if (starts(p, "sys/revoke-prefix/")) {
        revoke_prefix(core, req, "sys/revoke-prefix/", false);
    } else if (starts(p, "sys/leases/revoke-force/")) {
        revoke_prefix(core, req, "sys/leases/revoke-force/", true);
    } else if (starts(p, "sys/revoke-force/")) {
        revoke_prefix(core, req, "sys/revoke-force/", true);
    } else if (strcmp(p, "sys/leases/revoke") == 0 || starts(p, "sys/leases/revoke/")) {
        revoke_one(core, req, "sys/leases/revoke/");
    } else if (strcmp(p, "sys/revoke") == 0 || starts(p, "sys/revoke/")) {
        revoke_one(core, req, "sys/revoke/");
    } else if (strcmp(p, "sys/leases/renew") == 0 || starts(p, "sys/leases/renew/")) {
        renew(core, req, "sys/leases/renew/");
    } else if (strcmp(p, "sys/renew") == 0 || starts(p, "sys/renew/")) {
        renew(core, req, "sys/renew/");
    } else {
        return false;
    }
    return true;
}
