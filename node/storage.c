/*
 * Storage views: an engine's window on the store, under "logical/<mount uuid>/". Reads decrypt
 * through the barrier on the loop thread (AES-GCM of a small value costs about a microsecond);
 * writes encrypt at once, under the value's full storage key, and commit as one raft batch.
 *
 * Seal wrap: in a mount enabled with seal_wrap=true every value is first wrapped under the
 * auto-unseal seal (node/sealwrap.c), and the result goes through the barrier as usual.
 */
#include "node/engine.h"

#include <string.h>

#include "lib/buf.h"
#include "node/barrier.h"
#include "node/internal.h"
#include "node/lease.h"

struct node_write
{
    struct node_view *view; /* borrowed */
    struct rft_batch *batch;
    int error; /* first failure while building; reported at commit */
};

static char *full_key(const struct node_view *v, const char *key)
{
    size_t plen = strlen(v->prefix);
    size_t klen = strlen(key);
    char *k = cf_malloc(plen + klen + 1);
    if (k != NULL) {
        memcpy(k, v->prefix, plen);
        memcpy(k + plen, key, klen + 1);
    }
    return k;
}

int node_view_get(struct node_view *v, const char *key, uint8_t **val, size_t *len)
{
    if (v->core->sealed) {
        return CF_ESEALED;
    }
    char *k = full_key(v, key);
    if (k == NULL) {
        return CF_ENOMEM;
    }
    int rv = node__get(v->core, k, val, len);
    if (rv == CF_OK && v->seal_wrap) {
        uint8_t *pt = NULL;
        size_t pt_len = 0;
        rv = node__seal_unwrap(v->core, k, *val, *len, &pt, &pt_len);
        cf_cleanse(*val, *len);
        cf_free(*val);
        *val = pt;
        *len = pt_len;
    }
    cf_free(k);
    return rv;
}

struct list_ctx
{
    size_t skip; /* bytes of the full prefix to drop */
    json_t *keys;
    char *resume; /* when a folder was found: scan again after this key */
    int error;
};

static int list_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct list_ctx *c = arg;
    (void)val;
    (void)len;
    const char *name = key + c->skip;
    const char *slash = strchr(name, '/');
    if (slash == NULL) {
        if (json_array_append_new(c->keys, json_string(name)) != 0) {
            c->error = CF_ENOMEM;
            return 1;
        }
        return 0;
    }
    /* A folder: emit "name/" once and skip its whole subtree by resuming the scan after
     * "<prefix>name/\xff", so a folder of a million keys costs one lookup. Keys of the folder
     * that sort after that resume point (a 0xff byte right after the slash) come back here:
     * the folder was just emitted, so they are passed over one by one. */
    size_t n = (size_t)(slash - name) + 1;
    size_t nkeys = json_array_size(c->keys);
    const char *last = nkeys ? json_string_value(json_array_get(c->keys, nkeys - 1)) : NULL;
    if (last != NULL && strlen(last) == n && strncmp(last, name, n) == 0) {
        return 0;
    }
    char *dir = cf_strndup(name, n);
    if (dir == NULL || json_array_append_new(c->keys, json_string(dir)) != 0) {
        cf_free(dir);
        c->error = CF_ENOMEM;
        return 1;
    }
    cf_free(dir);
    size_t rlen = c->skip + n;
    c->resume = cf_malloc(rlen + 2);
    if (c->resume == NULL) {
        c->error = CF_ENOMEM;
        return 1;
    }
    memcpy(c->resume, key, rlen);
    c->resume[rlen] = (char)0xff;
    c->resume[rlen + 1] = '\0';
    return 1;
}

int node_view_list(struct node_view *v, const char *prefix, json_t **keys)
{
    if (v->core->sealed) {
        return CF_ESEALED;
    }
    char *p = full_key(v, prefix);
    json_t *arr = json_array();
    if (p == NULL || arr == NULL) {
        cf_free(p);
        json_decref(arr);
        return CF_ENOMEM;
    }
    struct list_ctx c = {.skip = strlen(p), .keys = arr};
    char *after = NULL;
    for (;;) {
        c.resume = NULL;
        rft_store_scan(v->core->store, p, after, list_visit, &c);
        cf_free(after);
        after = c.resume;
        if (c.error != CF_OK || after == NULL) {
            break;
        }
    }
    cf_free(after);
    cf_free(p);
    if (c.error != CF_OK) {
        json_decref(arr);
        return c.error;
    }
    *keys = arr;
    return CF_OK;
}

struct node_write *node_view_write(struct node_view *v)
{
    struct node_write *w = cf_calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->view = v;
    w->batch = rft_batch_new();
    if (w->batch == NULL) {
        cf_free(w);
        return NULL;
    }
    return w;
}

int node_write_put(struct node_write *w, const char *key, const uint8_t *val, size_t len)
{
    if (w->view->core->sealed) {
        return w->error = CF_ESEALED;
    }
    char *k = full_key(w->view, key);
    if (k == NULL) {
        return w->error = CF_ENOMEM;
    }
    int rv;
    if (w->view->seal_wrap) {
        uint8_t *wrapped = NULL;
        size_t wlen = 0;
        rv = node__seal_wrap(w->view->core, k, val, len, &wrapped, &wlen);
        if (rv == CF_OK) {
            rv = node__batch_put(w->view->core, w->batch, k, wrapped, wlen);
            cf_free(wrapped);
        }
    } else {
        rv = node__batch_put(w->view->core, w->batch, k, val, len);
    }
    cf_free(k);
    if (rv != CF_OK) {
        w->error = rv;
    }
    return rv;
}

int node_write_delete(struct node_write *w, const char *key)
{
    char *k = full_key(w->view, key);
    if (k == NULL) {
        return w->error = CF_ENOMEM;
    }
    int rv = rft_batch_delete(w->batch, k);
    cf_free(k);
    if (rv != CF_OK) {
        w->error = rv;
    }
    return rv;
}

int node_write_delete_prefix(struct node_write *w, const char *prefix)
{
    char *k = full_key(w->view, prefix);
    if (k == NULL) {
        return w->error = CF_ENOMEM;
    }
    int rv = rft_batch_delete_prefix(w->batch, k);
    cf_free(k);
    if (rv != CF_OK) {
        w->error = rv;
    }
    return rv;
}

void node_write_free(struct node_write *w)
{
    if (w == NULL) {
        return;
    }
    rft_batch_free(w->batch);
    cf_free(w);
}

int node_write_lease(struct node_write *w,
                     struct node_request *req,
                     json_t *secret,
                     int64_t duration_s)
{
    struct node_lease *l = NULL;
    int rv = node__call_lease(req, secret, duration_s, &l);
    if (rv == CF_OK) {
        rv = node__lease_batch_put(w->view->core, w->batch, l);
    }
    if (rv != CF_OK && w->error == CF_OK) {
        w->error = rv;
    }
    return rv;
}

void node_write_commit(struct node_write *w, node_write_cb cb, void *arg)
{
    struct node_core *core = w->view->core;
    struct rft_batch *b = w->batch;
    int error = w->error;
    if (error == CF_OK && core->sealed) {
        error = CF_ESEALED;
    }
    cf_free(w);
    if (error != CF_OK) {
        rft_batch_free(b);
        node__fail_later(core, cb, arg, error);
        return;
    }
    node__commit(core, b, cb, arg);
}

int node_view_version(struct node_view *v, const char *key, uint64_t *version)
{
    if (v->core->sealed) {
        return CF_ESEALED;
    }
    char *k = full_key(v, key);
    if (k == NULL) {
        return CF_ENOMEM;
    }
    int rv = rft_store_get(v->core->store, k, NULL, NULL, version);
    cf_free(k);
    return rv;
}

struct scan_ctx
{
    size_t skip;
    node_view_visit_fn fn;
    void *arg;
};

static int scan_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct scan_ctx *c = arg;
    (void)val;
    (void)len;
    return c->fn(c->arg, key + c->skip);
}

int node_view_scan(struct node_view *v,
                   const char *prefix,
                   const char *after,
                   node_view_visit_fn fn,
                   void *arg)
{
    if (v->core->sealed) {
        return CF_ESEALED;
    }
    char *p = full_key(v, prefix);
    char *a = after != NULL ? full_key(v, after) : NULL;
    if (p == NULL || (after != NULL && a == NULL)) {
        cf_free(p);
        cf_free(a);
        return CF_ENOMEM;
    }
    struct scan_ctx c = {.skip = strlen(v->prefix), .fn = fn, .arg = arg};
    int rv = rft_store_scan(v->core->store, p, a, scan_visit, &c);
    cf_free(p);
    cf_free(a);
    return rv;
}
