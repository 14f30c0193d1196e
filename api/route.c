/*
 * Vault request decoding and response encoding.
 *
 * Request side (core.md 1.1/1.2): only /v1/ paths are API paths (anything else is 404 with an
 * empty error list); GET reads (or lists with ?list=true), LIST lists, POST/PUT update, DELETE
 * deletes, PATCH needs application/merge-patch+json (415 otherwise), HEAD reads without a body,
 * any other method is 405. Query parameters become the data of GET/LIST/DELETE/HEAD; POST/PUT/
 * PATCH bodies are a JSON object (or form-urlencoded when the body does not start with '{' or
 * '['). The token comes from X-Vault-Token, else "Authorization: Bearer".
 *
 * Response side (core.md 1.4-1.6): every envelope key present, 204 when there is nothing to
 * say, top-level injection where the engine asks for it, Cache-Control: no-store always.
 */
#include "api/route.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/http.h"
#include "lib/json.h"
#include "lib/duration.h"
#include "lib/mem.h"
#include "lib/rfc3339.h"
#include "node/core.h"
#include "node/engine.h"

static const char error_internal[] = "{\"errors\":[\"internal error\"]}";

/* Sends a response with Cache-Control: no-store, the content type when there is a body, and
 * Last-Modified when last_modified > 0. */
static void respond_state(struct api_exchange *ex,
                          int status,
                          const char *content_type,
                          const uint8_t *body,
                          size_t len,
                          int64_t last_modified,
                          const char *state)
{
    char date[CF_RFC3339_SIZE];
    struct api_header h[4] = {{.name = (char *)"cache-control", .value = (char *)"no-store"}};
    size_t n = 1;
    if (state != NULL && state[0] != '\0') {
        h[n].name = (char *)"x-vault-index";
        h[n++].value = (char *)state;
    }
    if (len > 0) {
        h[n].name = (char *)"content-type";
        h[n++].value = (char *)content_type;
    }
    if (last_modified > 0) {
        cf_http_date(last_modified, date);
        h[n].name = (char *)"last-modified";
        h[n++].value = date;
    }
    api_exchange_respond(ex, status, h, n, body, len);
}

static void respond(struct api_exchange *ex,
                    int status,
                    const char *content_type,
                    const uint8_t *body,
                    size_t len,
                    int64_t last_modified)
{
    respond_state(ex, status, content_type, body, len, last_modified, NULL);
}

static void respond_json(struct api_exchange *ex, int status, const char *body, size_t len)
{
    respond(ex, status, "application/json", (const uint8_t *)body, len, 0);
}

static void respond_error(struct api_exchange *ex, int status, const char *msg)
{
    json_t *j = json_pack("{s:[]}", "errors");
    if (j != NULL && msg != NULL) {
        json_array_append_new(json_object_get(j, "errors"), json_string(msg));
    }
    char *s = j ? cf_json_dumps(j, NULL) : NULL;
    json_decref(j);
    if (s == NULL) {
        respond_json(ex, 500, error_internal, sizeof(error_internal) - 1);
        return;
    }
    respond_json(ex, status, s, strlen(s));
    cf_free(s);
}

/* Percent-decoding; plus_space turns '+' into ' ' (query strings). NULL on bad escapes. */
static char *url_decode(const char *s, size_t n, bool plus_space)
{
    char *out = cf_malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2])) {
                cf_free(out);
                return NULL;
            }
            char hex[3] = {s[i + 1], s[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
            if (c == '\0') {
                cf_free(out); /* %00 would silently cut the string short */
                return NULL;
            }
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

/* True when s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
 * JSON, and so every response that echoes a path, can carry nothing else. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            min = 0x80;
            c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            min = 0x800;
            c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return false;
            }
            c = c << 6 | (p[i] & 0x3fu);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return false;
        }
        p += n + 1;
    }
    return true;
}

/* Parses "a=1&b=2" into obj (string values; the first of repeated keys wins). */
static int parse_form(const char *s, size_t n, json_t *obj)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '&') {
            j++;
        }
        const char *eq = memchr(s + i, '=', j - i);
        size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
        char *k = url_decode(s + i, klen, true);
        char *v = eq ? url_decode(eq + 1, (size_t)(s + j - eq - 1), true) : cf_strdup("");
        if (k == NULL || v == NULL || !utf8_valid(k) || !utf8_valid(v)) {
            cf_free(k);
            cf_free(v);
            return CF_EMALFORMED;
        }
        if (k[0] != '\0' && json_object_get(obj, k) == NULL) {
            json_object_set_new(obj, k, json_string(v));
        }
        cf_free(k);
        cf_free(v);
        i = j + 1;
    }
    return CF_OK;
}

static bool parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "") == 0 || strcmp(s, "1") == 0 || strcasecmp(s, "t") == 0 ||
        strcasecmp(s, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "0") == 0 || strcasecmp(s, "f") == 0 || strcasecmp(s, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

static const char *header_token(const struct api_exchange *ex)
{
    const char *t = api_exchange_header(ex, "x-vault-token");
    if (t != NULL && t[0] != '\0') {
        return t;
    }
    const char *a = api_exchange_header(ex, "authorization");
    if (a != NULL && strncasecmp(a, "Bearer ", 7) == 0) {
        a += 7;
        while (*a == ' ') {
            a++;
        }
        return a[0] ? a : NULL;
    }
    return NULL;
}

void api_route_redirect(struct node_core *core, struct api_exchange *ex)
{
    struct node_leader_info li;
    if (!node_core_leader(core, &li) || li.is_self || li.api_addr[0] == '\0') {
        respond_error(ex, 503, "no active Vault instance found");
        return;
    }
    size_t n = strlen(li.api_addr) + strlen(ex->target) + 1;
    char *loc = cf_malloc(n);
    if (loc == NULL) {
        respond_json(ex, 500, error_internal, sizeof(error_internal) - 1);
        return;
    }
    size_t al = strlen(li.api_addr);
    while (al > 0 && li.api_addr[al - 1] == '/') {
        al--;
    }
    snprintf(loc, n, "%.*s%s", (int)al, li.api_addr, ex->target);
    struct api_header h[2] = {{.name = (char *)"cache-control", .value = (char *)"no-store"},
                              {.name = (char *)"location", .value = loc}};
    api_exchange_respond(ex, 307, h, 2, NULL, 0);
    cf_free(loc);
}

static void route_done_cb(struct node_request *req, struct node_response *resp)
{
    struct api_exchange *ex = req->done_arg;
    if (resp != NULL && resp->forward) {
        struct api_route *rt = ex->data;
        const char *nf = api_exchange_header(ex, "x-vault-no-request-forwarding");
        if (rt->forward != NULL && (nf == NULL || nf[0] == '\0')) {
            rt->forward(rt->forward_arg, ex);
        } else {
            api_route_redirect(rt->core, ex);
        }
        node_response_free(resp);
        node_request_free(req);
        return;
    }
    /* After a write, X-Vault-Index lets the client read its own write from any node. */
    char state[NODE_STATE_TOKEN_SIZE] = "";
    if (resp != NULL && resp->errors == NULL && req->op != NODE_OP_READ &&
        req->op != NODE_OP_LIST) {
        node_core_state_token(((struct api_route *)ex->data)->core, state);
    }
    if (resp == NULL) {
        respond_json(ex, 500, error_internal, sizeof(error_internal) - 1);
    } else if (resp->errors != NULL) {
        json_t *j = json_pack("{s:O}", "errors", resp->errors);
        char *s = j ? cf_json_dumps(j, NULL) : NULL;
        json_decref(j);
        if (s == NULL) {
            respond_json(ex, 500, error_internal, sizeof(error_internal) - 1);
        } else {
            respond_json(ex, resp->status ? resp->status : 500, s, strlen(s));
            cf_free(s);
        }
    } else if (resp->status == 304) {
        respond(ex, 304, NULL, NULL, 0, resp->last_modified);
    } else if (resp->raw_body != NULL) {
        respond(ex, resp->status ? resp->status : 200,
                resp->raw_content_type ? resp->raw_content_type : "application/octet-stream",
                resp->raw_body, resp->raw_len, resp->last_modified);
    } else if (resp->bare != NULL) {
        char *s = cf_json_dumps(resp->bare, NULL);
        if (s == NULL) {
            respond_json(ex, 500, error_internal, sizeof(error_internal) - 1);
        } else {
            respond_json(ex, resp->status ? resp->status : 200, s, strlen(s));
            cf_free(s);
        }
    } else if (node_response_is_empty(resp)) {
        respond_state(ex, 204, "application/json", NULL, 0, 0, state);
    } else {
        json_t *env = node_response_envelope(resp, resp->wrap_info ? "" : req->request_id);
        size_t len = 0;
        char *s = env ? cf_json_dumps(env, &len) : NULL;
        json_decref(env);
        if (s == NULL) {
            respond_json(ex, 500, error_internal, sizeof(error_internal) - 1);
        } else {
            respond_state(ex, resp->status ? resp->status : 200, "application/json", (uint8_t *)s,
                          len, resp->last_modified, state);
            cf_free(s);
        }
    }
    node_response_free(resp);
    node_request_free(req);
}

/* Records a decode failure: status and message ("" = an empty error list). */
static int fail(int *status, char msg[API_ROUTE_MSG_SIZE], int code, const char *text)
{
    *status = code;
    snprintf(msg, API_ROUTE_MSG_SIZE, "%s", text ? text : "");
    return CF_EINVAL;
}

int api_route_decode(const struct api_exchange *ex,
                     struct node_request **out,
                     int *status,
                     char msg[API_ROUTE_MSG_SIZE])
{
    msg[0] = '\0';
    const char *target = ex->target;
    if (strncmp(target, "/v1/", 4) != 0) {
        return fail(status, msg, 404, NULL);
    }
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    char *path = url_decode(target + 4, plen - 4, false);
    if (path == NULL) {
        return fail(status, msg, 400, "invalid request path");
    }
    for (const char *c = path; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            cf_free(path);
            return fail(status, msg, 400, "path contains non-printable characters");
        }
    }
    if (!utf8_valid(path)) {
        cf_free(path);
        return fail(status, msg, 400, "invalid request path: not valid UTF-8");
    }
    json_t *data = json_object();
    if (data == NULL) {
        cf_free(path);
        return fail(status, msg, 500, "internal error");
    }
    if (q != NULL && parse_form(q + 1, strlen(q + 1), data) != CF_OK) {
        cf_free(path);
        json_decref(data);
        return fail(status, msg, 400, "invalid query string");
    }

    const char *m = ex->method;
    enum node_op op;
    bool body_data = false;
    bool head = false;
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
        op = NODE_OP_READ;
        head = m[0] == 'H';
        json_t *l = json_object_get(data, "list");
        if (l != NULL) {
            bool list;
            if (!parse_bool(json_string_value(l), &list)) {
                cf_free(path);
                json_decref(data);
                return fail(status, msg, 400, "invalid value for \"list\" parameter");
            }
            json_object_del(data, "list");
            if (list) {
                op = NODE_OP_LIST;
            }
        }
    } else if (strcmp(m, "LIST") == 0) {
        op = NODE_OP_LIST;
    } else if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0) {
        op = NODE_OP_UPDATE;
        body_data = true;
    } else if (strcmp(m, "DELETE") == 0) {
        op = NODE_OP_DELETE;
    } else if (strcmp(m, "PATCH") == 0) {
        const char *ct = api_exchange_header(ex, "content-type");
        if (ct == NULL || strncasecmp(ct, "application/merge-patch+json", 28) != 0) {
            cf_free(path);
            json_decref(data);
            return fail(status, msg, 415,
                        "PATCH requires the application/merge-patch+json content type");
        }
        op = NODE_OP_PATCH;
        body_data = true;
    } else {
        cf_free(path);
        json_decref(data);
        return fail(status, msg, 405, NULL);
    }

    const char *body_ct = api_exchange_header(ex, "content-type");
    /* Binary bodies passed through untouched: OCSP requests, and raft snapshots to restore
     * (clients send those with any content type, or none). */
    bool raw = body_data &&
               ((body_ct != NULL && strncasecmp(body_ct, "application/ocsp-request", 24) == 0) ||
                strcmp(path, "sys/storage/raft/snapshot") == 0 ||
                strcmp(path, "sys/storage/raft/snapshot-force") == 0);
    if (body_data && !raw) {
        json_decref(data);
        data = NULL;
        size_t i = 0;
        while (i < ex->body_len && isspace(ex->body[i])) {
            i++;
        }
        if (i == ex->body_len) {
            data = json_object();
        } else if (ex->body[i] == '{' || ex->body[i] == '[') {
            json_error_t jerr;
            data = json_loadb((const char *)ex->body, ex->body_len, JSON_REJECT_DUPLICATES, &jerr);
            if (data == NULL || !json_is_object(data)) {
                json_decref(data);
                cf_free(path);
                return fail(status, msg, 400, "error parsing JSON");
            }
        } else {
            const char *ct = api_exchange_header(ex, "content-type");
            data = json_object();
            if (ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
                parse_form((const char *)ex->body, ex->body_len, data) != CF_OK) {
                json_decref(data);
                cf_free(path);
                return fail(status, msg, 400, "error parsing JSON");
            }
        }
    }

    if (op == NODE_OP_LIST && (path[0] == '\0' || path[strlen(path) - 1] != '/')) {
        size_t n = strlen(path);
        char *p2 = cf_realloc(path, n + 2);
        if (p2 == NULL) {
            cf_free(path);
            json_decref(data);
            return fail(status, msg, 500, "internal error");
        }
        path = p2;
        path[n] = '/';
        path[n + 1] = '\0';
    }

    int64_t wrap_ttl = 0;
    const char *wt = api_exchange_header(ex, "x-vault-wrap-ttl");
    if (wt != NULL && wt[0] != '\0' &&
        (cf_duration_parse_s(wt, &wrap_ttl) != CF_OK || wrap_ttl < 0)) {
        cf_free(path);
        json_decref(data);
        return fail(status, msg, 400, "error parsing X-Vault-Wrap-TTL header: invalid duration");
    }
    struct node_request *req = node_request_new(op, path, data);
    if (req == NULL) {
        return fail(status, msg, 500, "internal error");
    }
    req->wrap_ttl_s = wrap_ttl;
    const char *ims = api_exchange_header(ex, "if-modified-since");
    if (ims == NULL || cf_http_date_parse(ims, &req->if_modified_since) != CF_OK) {
        req->if_modified_since = 0; /* an unreadable date is ignored (RFC 9110 13.1.3) */
    }
    if (raw && ex->body_len > 0) {
        req->raw_body = cf_memdup(ex->body, ex->body_len);
        if (req->raw_body == NULL) {
            node_request_free(req);
            return fail(status, msg, 500, "internal error");
        }
        req->raw_len = ex->body_len;
    }
    const char *tok = header_token(ex);
    req->token = tok ? cf_strdup(tok) : NULL;
    req->remote_addr = ex->remote_addr ? cf_strdup(ex->remote_addr) : NULL;
    req->wants_body = !head;
    *out = req;
    return CF_OK;
}

/* A request that names a state (X-Vault-Index) newer than this node has applied waits for it,
 * briefly; if it does not arrive, the active node serves the request. */
#define STATE_WAIT_MS 2000

struct state_wait
{
    struct api_exchange *ex;
    struct node_request *req;
};

static void state_waited_cb(void *arg, int status)
{
    struct state_wait *w = arg;
    struct api_route *rt = w->ex->data;
    if (status == CF_OK) {
        node_core_handle(rt->core, w->req);
    } else {
        struct node_response *r = node_response_new();
        if (r != NULL) {
            r->forward = true;
        }
        route_done_cb(w->req, r);
    }
    cf_free(w);
}

void api_route_exchange(void *ctx, struct api_exchange *ex)
{
    struct api_route *rt = ctx;
    struct node_core *core = rt->core;
    ex->data = rt;
    struct node_request *req = NULL;
    int status = 500;
    char msg[API_ROUTE_MSG_SIZE];
    if (api_route_decode(ex, &req, &status, msg) != CF_OK) {
        respond_error(ex, status, msg[0] ? msg : NULL);
        return;
    }
    req->done_cb = route_done_cb;
    req->done_arg = ex;
    const char *state = api_exchange_header(ex, "x-vault-index");
    uint64_t want = 0;
    if (state != NULL && !node_core_is_active(core) &&
        node_core_state_index(core, state, &want) == CF_OK &&
        want > node_core_applied_index(core)) {
        struct state_wait *w = cf_calloc(1, sizeof(*w));
        if (w != NULL) {
            w->ex = ex;
            w->req = req;
            node_core_wait_applied(core, want, STATE_WAIT_MS, state_waited_cb, w);
            return;
        }
    }
    node_core_handle(core, req);
}
