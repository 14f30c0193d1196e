/*
 * Persistent treap (see fsm.h). Items (key, value, version) are immutable and refcounted; tree
 * nodes hold a priority, two children and an item. own() makes a node exclusively ours before
 * it is changed: in place when its refcount is 1, else by copying it (the copy takes references
 * on the children and the item). split/merge consume the references they are given.
 *
 * Expected depth is O(log n), about 50 for a million keys, so the recursion is shallow.
 */
#include "raft/fsm.h"

#include <string.h>

#include "lib/bytes.h"
#include "lib/mem.h"

#define SNAP_MAGIC "CFSNAP01"
#define SNAP_VERSION 1

struct item
{
    uint32_t refs;
    uint64_t version;
    size_t vlen;
    uint8_t *val; /* points into this allocation, after the key */
    char key[];
};

struct rft_node
{
    uint32_t refs;
    uint32_t prio;
    struct rft_node *l;
    struct rft_node *r;
    struct item *item;
};

static struct item *item_new(const char *key, const uint8_t *val, size_t vlen, uint64_t version)
{
    size_t klen = strlen(key);
    if (klen > SIZE_MAX / 2 || vlen > SIZE_MAX / 2) {
        return NULL;
    }
    struct item *it = cf_malloc(sizeof(*it) + klen + 1 + vlen + 1);
    if (it == NULL) {
        return NULL;
    }
    it->refs = 1;
    it->version = version;
    it->vlen = vlen;
    memcpy(it->key, key, klen + 1);
    it->val = (uint8_t *)it->key + klen + 1;
    if (vlen > 0) {
        memcpy(it->val, val, vlen);
    }
    it->val[vlen] = 0;
    return it;
}

static void item_release(struct item *it)
{
    if (it != NULL && --it->refs == 0) {
        cf_free(it);
    }
}

static void node_release(struct rft_node *n)
{
    while (n != NULL && --n->refs == 0) {
        struct rft_node *r = n->r;
        node_release(n->l);
        item_release(n->item);
        cf_free(n);
        n = r; /* tail position: no recursion for the right spine */
    }
}

/* Spare nodes for the copies that own() makes along one search path, allocated before a put
 * starts changing the tree so that a put fails cleanly (CF_ENOMEM, map unchanged) instead of
 * running out of memory half-way through a split. Chained through l. */
struct reserve
{
    struct rft_node *free;
};

static void reserve_close(struct reserve *rs)
{
    while (rs->free != NULL) {
        struct rft_node *n = rs->free;
        rs->free = n->l;
        cf_free(n);
    }
}

/* Reserves one node for every node on key's search path that own() will have to copy: every
 * node from the first shared one (refs > 1) down, since copying a node shares its children. */
static int reserve_path(const struct rft_node *t, const char *key, struct reserve *rs)
{
    bool shared = false;
    rs->free = NULL;
    while (t != NULL) {
        shared = shared || t->refs > 1;
        if (shared) {
            struct rft_node *n = cf_malloc(sizeof(*n));
            if (n == NULL) {
                reserve_close(rs);
                return CF_ENOMEM;
            }
            n->l = rs->free;
            rs->free = n;
        }
        int c = strcmp(key, t->item->key);
        if (c == 0) {
            break;
        }
        t = c < 0 ? t->l : t->r;
    }
    return CF_OK;
}

/* Returns a node exclusively owned by the caller, in place of n (whose reference the caller
 * gives up); a copy comes from rs when it has one. NULL on OOM (then n is untouched and still
 * the caller's). */
static struct rft_node *own(struct rft_node *n, struct reserve *rs)
{
    if (n->refs == 1) {
        return n;
    }
    struct rft_node *c;
    if (rs != NULL && rs->free != NULL) {
        c = rs->free;
        rs->free = c->l;
    } else {
        c = cf_malloc(sizeof(*c));
    }
    if (c == NULL) {
        return NULL;
    }
    *c = *n;
    c->refs = 1;
    if (c->l != NULL) {
        c->l->refs++;
    }
    if (c->r != NULL) {
        c->r->refs++;
    }
    c->item->refs++;
    n->refs--;
    return c;
}

void rft_map_init(struct rft_map *m)
{
    memset(m, 0, sizeof(*m));
    m->prio_state = 0x9e3779b97f4a7c15ULL;
}

void rft_map_close(struct rft_map *m)
{
    node_release(m->root);
    m->root = NULL;
    m->count = 0;
}

static uint32_t next_prio(struct rft_map *m)
{
    uint64_t x = m->prio_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    m->prio_state = x;
    return (uint32_t)(x >> 32);
}

static const struct rft_node *find(const struct rft_node *n, const char *key)
{
    while (n != NULL) {
        int c = strcmp(key, n->item->key);
        if (c == 0) {
            return n;
        }
        n = c < 0 ? n->l : n->r;
    }
    return NULL;
}

int rft_map_get(const struct rft_map *m,
                const char *key,
                const uint8_t **val,
                size_t *len,
                uint64_t *version)
{
    const struct rft_node *n = find(m->root, key);
    if (n == NULL) {
        return CF_ENOTFOUND;
    }
    if (val != NULL) {
        *val = n->item->val;
    }
    if (len != NULL) {
        *len = n->item->vlen;
    }
    if (version != NULL) {
        *version = n->item->version;
    }
    return CF_OK;
}

/* Split t into keys < key (l) and keys > key (r); key itself is known to be absent. Out of
 * memory aborts: a half-split tree cannot be put back (rft_map_put reserves the copies first). */
static void split(struct rft_node *t,
                  const char *key,
                  struct rft_node **l,
                  struct rft_node **r,
                  struct reserve *rs)
{
    if (t == NULL) {
        *l = *r = NULL;
        return;
    }
    t = own(t, rs);
    if (t == NULL) {
        cf_oom_abort();
    }
    if (strcmp(t->item->key, key) < 0) {
        split(t->r, key, &t->r, r, rs);
        *l = t;
    } else {
        split(t->l, key, l, &t->l, rs);
        *r = t;
    }
}

static struct rft_node *merge(struct rft_node *a, struct rft_node *b)
{
    if (a == NULL) {
        return b;
    }
    if (b == NULL) {
        return a;
    }
    if (a->prio > b->prio) {
        a = own(a, NULL);
        if (a == NULL) {
            cf_oom_abort();
        }
        a->r = merge(a->r, b);
        return a;
    }
    b = own(b, NULL);
    if (b == NULL) {
        cf_oom_abort();
    }
    b->l = merge(a, b->l);
    return b;
}

/* Replaces the item of the node holding key (present) along an owned path. */
static struct rft_node *replace(struct rft_node *t,
                                const char *key,
                                struct item *it,
                                struct reserve *rs)
{
    t = own(t, rs);
    if (t == NULL) {
        cf_oom_abort();
    }
    int c = strcmp(key, t->item->key);
    if (c < 0) {
        t->l = replace(t->l, key, it, rs);
    } else if (c > 0) {
        t->r = replace(t->r, key, it, rs);
    } else {
        item_release(t->item);
        t->item = it;
    }
    return t;
}

int rft_map_put(struct rft_map *m,
                const char *key,
                const uint8_t *val,
                size_t len,
                uint64_t version)
{
    struct item *it = item_new(key, val, len, version);
    if (it == NULL) {
        return CF_ENOMEM;
    }
    struct reserve rs;
    if (reserve_path(m->root, key, &rs) != CF_OK) {
        item_release(it);
        return CF_ENOMEM;
    }
    if (find(m->root, key) != NULL) {
        m->root = replace(m->root, key, it, &rs);
        reserve_close(&rs);
        return CF_OK;
    }
    struct rft_node *n = cf_malloc(sizeof(*n));
    if (n == NULL) {
        reserve_close(&rs);
        item_release(it);
        return CF_ENOMEM;
    }
    n->refs = 1;
    n->prio = next_prio(m);
    n->l = n->r = NULL;
    n->item = it;
    struct rft_node *l;
    struct rft_node *r;
    split(m->root, key, &l, &r, &rs);
    reserve_close(&rs);
    m->root = merge(merge(l, n), r);
    m->count++;
    return CF_OK;
}

/* Height of t, or -1 on a broken invariant; keys must lie in (lo, hi) and priorities be at
 * most prio; *n counts the nodes. */
static int check(const struct rft_node *t,
                 const char *lo,
                 const char *hi,
                 uint32_t prio,
                 uint64_t *n)
{
    if (t == NULL) {
        return 0;
    }
    const char *k = t->item->key;
    if ((lo != NULL && strcmp(k, lo) <= 0) || (hi != NULL && strcmp(k, hi) >= 0) ||
        t->prio > prio) {
        return -1;
    }
    (*n)++;
    int l = check(t->l, lo, k, t->prio, n);
    int r = check(t->r, k, hi, t->prio, n);
    if (l < 0 || r < 0) {
        return -1;
    }
    return 1 + (l > r ? l : r);
}

int rft_map_check(const struct rft_map *m)
{
    uint64_t n = 0;
    int h = check(m->root, NULL, NULL, UINT32_MAX, &n);
    return h >= 0 && n == m->count ? h : -1;
}

static struct rft_node *del(struct rft_node *t, const char *key)
{
    t = own(t, NULL);
    if (t == NULL) {
        cf_oom_abort();
    }
    int c = strcmp(key, t->item->key);
    if (c < 0) {
        t->l = del(t->l, key);
        return t;
    }
    if (c > 0) {
        t->r = del(t->r, key);
        return t;
    }
    struct rft_node *m = merge(t->l, t->r);
    t->l = t->r = NULL;
    node_release(t);
    return m;
}

int rft_map_delete(struct rft_map *m, const char *key)
{
    if (find(m->root, key) == NULL) {
        return CF_ENOTFOUND;
    }
    m->root = del(m->root, key);
    m->count--;
    return CF_OK;
}

struct scan
{
    const char *prefix;
    size_t plen;
    const char *lo; /* lower bound */
    bool lo_exclusive;
    rft_map_visit_fn fn;
    void *arg;
    bool done;
    int rv;
};

static void walk(const struct rft_node *t, struct scan *s)
{
    while (t != NULL && !s->done) {
        int c = strcmp(t->item->key, s->lo);
        bool in = c > 0 || (c == 0 && !s->lo_exclusive);
        if (!in) {
            t = t->r; /* everything left of t is below the bound too */
            continue;
        }
        walk(t->l, s);
        if (s->done) {
            return;
        }
        if (strncmp(t->item->key, s->prefix, s->plen) != 0) {
            s->done = true; /* past the prefix range: every later key is too */
            return;
        }
        int rv = s->fn(s->arg, t->item->key, t->item->val, t->item->vlen, t->item->version);
        if (rv != 0) {
            s->done = true;
            s->rv = rv;
            return;
        }
        t = t->r;
    }
}

int rft_map_scan(const struct rft_node *root,
                 const char *prefix,
                 const char *after,
                 rft_map_visit_fn fn,
                 void *arg)
{
    struct scan s = {.prefix = prefix ? prefix : "", .fn = fn, .arg = arg};
    s.plen = strlen(s.prefix);
    s.lo = s.prefix;
    if (after != NULL && after[0] != '\0' && strcmp(after, s.prefix) >= 0) {
        s.lo = after;
        s.lo_exclusive = true;
    }
    walk(root, &s);
    return s.rv;
}

struct rft_node *rft_map_freeze(struct rft_map *m)
{
    if (m->root != NULL) {
        m->root->refs++;
    }
    return m->root;
}

void rft_map_release(struct rft_node *root)
{
    node_release(root);
}

/* Snapshot encoding ----------------------------------------------------------------------- */

struct enc
{
    struct cf_buf *out;
    int rv;
};

static int encode_visit(void *arg,
                        const char *key,
                        const uint8_t *val,
                        size_t len,
                        uint64_t version)
{
    struct enc *e = arg;
    size_t klen = strlen(key);
    uint8_t hdr[16];
    cf_put_be32(hdr, (uint32_t)klen);
    cf_put_be64(hdr + 4, version);
    cf_put_be32(hdr + 12, (uint32_t)len);
    if (klen > UINT32_MAX || len > UINT32_MAX) {
        e->rv = CF_ETOOBIG;
        return 1;
    }
    e->rv = cf_buf_append(e->out, hdr, sizeof(hdr));
    if (e->rv == CF_OK) {
        e->rv = cf_buf_append(e->out, key, klen);
    }
    if (e->rv == CF_OK) {
        e->rv = cf_buf_append(e->out, val, len);
    }
    return e->rv != CF_OK;
}

int rft_map_encode(const struct rft_node *root, uint64_t count, struct cf_buf *out)
{
    uint8_t hdr[8 + 1 + 8];
    memcpy(hdr, SNAP_MAGIC, 8);
    hdr[8] = SNAP_VERSION;
    cf_put_be64(hdr + 9, count);
    int rv = cf_buf_append(out, hdr, sizeof(hdr));
    if (rv != CF_OK) {
        return rv;
    }
    struct enc e = {.out = out};
    rft_map_scan(root, "", NULL, encode_visit, &e);
    return e.rv;
}

int rft_map_decode(struct rft_map *m, const uint8_t *p, size_t len, char errmsg[CF_ERRMSG_SIZE])
{
    if (len < 17 || memcmp(p, SNAP_MAGIC, 8) != 0) {
        cf_errmsg_printf(errmsg, "snapshot: bad magic");
        return CF_ECORRUPT;
    }
    if (p[8] != SNAP_VERSION) {
        cf_errmsg_printf(errmsg, "snapshot: format version %u, this build knows 1", p[8]);
        return CF_EVERSION;
    }
    uint64_t count = cf_get_be64(p + 9);
    size_t off = 17;
    struct rft_map fresh;
    rft_map_init(&fresh);
    fresh.prio_state = m->prio_state;
    char *prev = NULL;
    int rv = CF_OK;
    for (uint64_t i = 0; i < count; i++) {
        if (len - off < 16) {
            rv = CF_ECORRUPT;
            break;
        }
        uint32_t klen = cf_get_be32(p + off);
        uint64_t version = cf_get_be64(p + off + 4);
        uint32_t vlen = cf_get_be32(p + off + 12);
        off += 16;
        if (len - off < (size_t)klen + vlen || klen == 0) {
            rv = CF_ECORRUPT;
            break;
        }
        char *key = cf_strndup((const char *)p + off, klen);
        if (key == NULL) {
            rv = CF_ENOMEM;
            break;
        }
        if (strlen(key) != klen || (prev != NULL && strcmp(prev, key) >= 0)) {
            cf_free(key);
            rv = CF_ECORRUPT; /* embedded NUL, or keys not strictly ascending */
            break;
        }
        rv = rft_map_put(&fresh, key, p + off + klen, vlen, version);
        cf_free(prev);
        prev = key;
        if (rv != CF_OK) {
            break;
        }
        off += (size_t)klen + vlen;
    }
    cf_free(prev);
    /* After the records: nothing, or 1-7 zero bytes that end on a multiple of 8 (the store
     * pads snapshots to libraft's 8-byte alignment). */
    if (rv == CF_OK && off != len && (len - off >= 8 || len % 8 != 0)) {
        rv = CF_ECORRUPT;
    }
    for (size_t i = off; rv == CF_OK && i < len; i++) {
        if (p[i] != 0) {
            rv = CF_ECORRUPT;
        }
    }
    if (rv != CF_OK) {
        rft_map_close(&fresh);
        cf_errmsg_printf(errmsg, "snapshot: %s at byte %zu", cf_strerror(rv), off);
        return rv;
    }
    rft_map_close(m);
    *m = fresh;
    return CF_OK;
}
