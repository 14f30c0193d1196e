/*
 * Unit tests for raft/fsm.c, the persistent treap behind the FSM: basic put/get/replace/delete,
 * 10,000 random keys checked against a sorted-array reference (lookups and ordered scans with
 * prefix and `after` bounds, including node/storage.c's "\xff" resume keys), persistence of
 * frozen roots under later writes, the snapshot codec (round trip and every refusal, with the
 * map unchanged after a refused decode) and allocation-failure injection (rule T3). Every test
 * ends with a leak check on cf_mem_live().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "raft/fsm.h"

/* Reference model: a sorted array of entries ---------------------------------------------- */

struct ref_entry
{
    char *key;
    uint8_t *val;
    size_t len;
    uint64_t version;
};

struct ref
{
    struct ref_entry *e;
    size_t n;
    size_t cap;
};

static size_t ref_lower(const struct ref *r, const char *key)
{
    size_t lo = 0;
    size_t hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(r->e[mid].key, key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static struct ref_entry *ref_find(const struct ref *r, const char *key)
{
    size_t i = ref_lower(r, key);
    return i < r->n && strcmp(r->e[i].key, key) == 0 ? &r->e[i] : NULL;
}

static void ref_put(struct ref *r, const char *key, const uint8_t *val, size_t len, uint64_t v)
{
    size_t i = ref_lower(r, key);
    if (i < r->n && strcmp(r->e[i].key, key) == 0) {
        free(r->e[i].val);
    } else {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->e = realloc(r->e, r->cap * sizeof(*r->e));
            assert_non_null(r->e);
        }
        memmove(&r->e[i + 1], &r->e[i], (r->n - i) * sizeof(*r->e));
        r->e[i].key = strdup(key);
        r->n++;
    }
    r->e[i].val = malloc(len ? len : 1);
    if (len > 0) {
        memcpy(r->e[i].val, val, len);
    }
    r->e[i].len = len;
    r->e[i].version = v;
}

static void ref_delete(struct ref *r, const char *key)
{
    size_t i = ref_lower(r, key);
    assert_true(i < r->n && strcmp(r->e[i].key, key) == 0);
    free(r->e[i].key);
    free(r->e[i].val);
    memmove(&r->e[i], &r->e[i + 1], (r->n - i - 1) * sizeof(*r->e));
    r->n--;
}

static void ref_copy(const struct ref *src, struct ref *dst)
{
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->n; i++) {
        ref_put(dst, src->e[i].key, src->e[i].val, src->e[i].len, src->e[i].version);
    }
}

static void ref_free(struct ref *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->e[i].key);
        free(r->e[i].val);
    }
    free(r->e);
    memset(r, 0, sizeof(*r));
}

/* Scans compared against the reference --------------------------------------------------- */

struct collect
{
    const struct ref *ref; /* expected entries, in order */
    size_t *idx;           /* indexes into ref of the expected entries */
    size_t n_idx;
    size_t pos;
    int stop_at; /* return non-zero at this visit (-1 = never) */
};

static int check_visit(void *arg, const char *key, const uint8_t *val, size_t len, uint64_t ver)
{
    struct collect *c = arg;
    assert_true(c->pos < c->n_idx);
    const struct ref_entry *e = &c->ref->e[c->idx[c->pos]];
    assert_string_equal(key, e->key);
    assert_int_equal(len, e->len);
    assert_memory_equal(val, e->val, len);
    assert_int_equal(val[len], 0); /* values are NUL-terminated past their length */
    assert_int_equal(ver, e->version);
    c->pos++;
    if (c->stop_at >= 0 && (int)c->pos == c->stop_at) {
        return 7;
    }
    return 0;
}

/* Checks rft_map_scan(root, prefix, after) yields exactly the reference's keys that start with
 * prefix and sort strictly after `after` (no bound when NULL or ""). */
static void check_scan(const struct rft_node *root,
                       const struct ref *r,
                       const char *prefix,
                       const char *after)
{
    struct collect c = {.ref = r, .stop_at = -1};
    c.idx = malloc((r->n + 1) * sizeof(size_t));
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < r->n; i++) {
        if (strncmp(r->e[i].key, prefix, plen) != 0) {
            continue;
        }
        if (after != NULL && after[0] != '\0' && strcmp(r->e[i].key, after) <= 0) {
            continue;
        }
        c.idx[c.n_idx++] = i;
    }
    assert_int_equal(rft_map_scan(root, prefix, after, check_visit, &c), 0);
    assert_int_equal(c.pos, c.n_idx);
    if (c.n_idx >= 2) {
        /* A visitor's non-zero return stops the scan and is returned. */
        c.pos = 0;
        c.stop_at = 2;
        assert_int_equal(rft_map_scan(root, prefix, after, check_visit, &c), 7);
        assert_int_equal(c.pos, 2);
    }
    free(c.idx);
}

static void check_all(const struct rft_node *root, const struct ref *r)
{
    check_scan(root, r, "", NULL);
}

static void check_map(const struct rft_map *m, const struct ref *r)
{
    assert_int_equal(m->count, r->n);
    assert_true(rft_map_check(m) >= 0);
    check_all(m->root, r);
    for (size_t i = 0; i < r->n; i++) {
        const uint8_t *val;
        size_t len;
        uint64_t ver;
        assert_int_equal(rft_map_get(m, r->e[i].key, &val, &len, &ver), CF_OK);
        assert_int_equal(len, r->e[i].len);
        assert_memory_equal(val, r->e[i].val, len);
        assert_int_equal(ver, r->e[i].version);
    }
}

/* Random keys over a small alphabet so that prefixes share a lot; 0xfe/0xff bytes check that
 * the order is unsigned byte order. */
static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static bool keys_without_ff; /* for listings: storage keys are UTF-8, which has no 0xff byte */

static void rand_key(char *out)
{
    static const char alpha[] = "ab/c\xfe\xff";
    size_t n = 1 + rnd() % 8;
    size_t k = sizeof(alpha) - (keys_without_ff ? 2 : 1);
    for (size_t i = 0; i < n; i++) {
        out[i] = alpha[rnd() % k];
    }
    out[n] = '\0';
}

static size_t rand_val(uint8_t *out)
{
    size_t n = rnd() % 5 == 0 ? 0 : rnd() % 40;
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint8_t)(rnd() % 3 == 0 ? 0 : rnd());
    }
    return n;
}

/* Fills the map and the reference with n random puts (some of them replacements). */
static void fill(struct rft_map *m, struct ref *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char key[16];
        uint8_t val[64];
        rand_key(key);
        size_t len = rand_val(val);
        uint64_t ver = rnd();
        assert_int_equal(rft_map_put(m, key, val, len, ver), CF_OK);
        ref_put(r, key, val, len, ver);
    }
}

/* Tests ------------------------------------------------------------------------------------ */

static void test_basic(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map m;
    rft_map_init(&m);
    const uint8_t *val;
    size_t len;
    uint64_t ver;
    assert_int_equal(rft_map_get(&m, "a", &val, &len, &ver), CF_ENOTFOUND);
    assert_int_equal(rft_map_delete(&m, "a"), CF_ENOTFOUND);

    assert_int_equal(rft_map_put(&m, "b", (const uint8_t *)"two", 3, 2), CF_OK);
    assert_int_equal(rft_map_put(&m, "a", (const uint8_t *)"one", 3, 1), CF_OK);
    assert_int_equal(rft_map_put(&m, "c", NULL, 0, 3), CF_OK);
    assert_int_equal(m.count, 3);
    assert_int_equal(rft_map_get(&m, "a", &val, &len, &ver), CF_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(val, "one", 3);
    assert_int_equal(ver, 1);
    assert_int_equal(rft_map_get(&m, "c", &val, &len, &ver), CF_OK);
    assert_int_equal(len, 0);
    assert_int_equal(ver, 3);
    assert_int_equal(rft_map_get(&m, "c", NULL, NULL, NULL), CF_OK);

    /* Replace keeps the count and changes value and version. */
    assert_int_equal(rft_map_put(&m, "a", (const uint8_t *)"uno\0x", 5, 9), CF_OK);
    assert_int_equal(m.count, 3);
    assert_int_equal(rft_map_get(&m, "a", &val, &len, &ver), CF_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(val, "uno\0x", 5);
    assert_int_equal(ver, 9);

    assert_int_equal(rft_map_delete(&m, "b"), CF_OK);
    assert_int_equal(rft_map_delete(&m, "b"), CF_ENOTFOUND);
    assert_int_equal(rft_map_get(&m, "b", NULL, NULL, NULL), CF_ENOTFOUND);
    assert_int_equal(m.count, 2);
    assert_int_equal(rft_map_delete(&m, "a"), CF_OK);
    assert_int_equal(rft_map_delete(&m, "c"), CF_OK);
    assert_int_equal(m.count, 0);
    assert_null(m.root);
    rft_map_close(&m);
    rft_map_close(&m); /* idempotent */
    assert_int_equal(cf_mem_live(), live);
}

/* Lists the immediate children of prefix the way node/storage.c does: a key with a '/' after
 * the prefix becomes "name/" once, and the scan resumes after "<prefix>name/\xff". */
struct list_ctx
{
    size_t skip;
    char names[16384][16];
    size_t n;
    char resume[64];
    bool have_resume;
};

static int list_visit(void *arg, const char *key, const uint8_t *val, size_t len, uint64_t ver)
{
    struct list_ctx *c = arg;
    (void)val;
    (void)len;
    (void)ver;
    const char *name = key + c->skip;
    const char *slash = strchr(name, '/');
    assert_true(c->n < 16384);
    if (slash == NULL) {
        snprintf(c->names[c->n++], 16, "%s", name);
        return 0;
    }
    size_t n = (size_t)(slash - name) + 1;
    snprintf(c->names[c->n++], 16, "%.*s", (int)n, name);
    snprintf(c->resume, sizeof(c->resume), "%.*s\xff", (int)(c->skip + n), key);
    c->have_resume = true;
    return 1;
}

static void check_list(const struct rft_node *root, const struct ref *r, const char *prefix)
{
    struct list_ctx *c = calloc(1, sizeof(*c));
    c->skip = strlen(prefix);
    char after[64] = "";
    for (int rounds = 0;; rounds++) {
        assert_true(rounds < 100000);
        c->have_resume = false;
        rft_map_scan(root, prefix, after, list_visit, c);
        if (!c->have_resume) {
            break;
        }
        memcpy(after, c->resume, sizeof(after));
    }
    /* Expected: unique first components, in order. */
    size_t k = 0;
    char last[16] = "";
    for (size_t i = 0; i < r->n; i++) {
        if (strncmp(r->e[i].key, prefix, c->skip) != 0) {
            continue;
        }
        const char *name = r->e[i].key + c->skip;
        const char *slash = strchr(name, '/');
        char want[16];
        if (slash == NULL) {
            snprintf(want, sizeof(want), "%s", name);
        } else {
            snprintf(want, sizeof(want), "%.*s", (int)(slash - name + 1), name);
        }
        if (slash != NULL && strcmp(want, last) == 0) {
            continue;
        }
        assert_true(k < c->n);
        assert_string_equal(c->names[k], want);
        memcpy(last, want, sizeof(last));
        k++;
    }
    assert_int_equal(k, c->n);
    free(c);
}

static void test_random_against_reference(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map m;
    struct ref r = {0};
    rft_map_init(&m);
    fill(&m, &r, 10000);
    /* Delete a third of the keys. */
    for (size_t i = 0; i < r.n; i += 3) {
        char key[16];
        snprintf(key, sizeof(key), "%s", r.e[i].key);
        assert_int_equal(rft_map_delete(&m, key), CF_OK);
        ref_delete(&r, key);
    }
    check_map(&m, &r);
    /* Absent keys. */
    for (int i = 0; i < 2000; i++) {
        char key[16];
        rand_key(key);
        bool present = ref_find(&r, key) != NULL;
        assert_int_equal(rft_map_get(&m, key, NULL, NULL, NULL), present ? CF_OK : CF_ENOTFOUND);
    }

    static const char *prefixes[] = {"", "a", "a/", "ab", "c/b", "\xff", "\xfe/", "zz", "b/a/c"};
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        const char *pre = prefixes[p];
        char buf[64];
        check_scan(m.root, &r, pre, NULL);
        check_scan(m.root, &r, pre, "");
        check_scan(m.root, &r, pre, pre);    /* after == prefix: the prefix key itself excluded */
        check_scan(m.root, &r, pre, "\x01"); /* before the prefix range */
        check_scan(m.root, &r, pre, "\xff\xff\xff\xff\xff\xff\xff\xff\xff"); /* after all */
        snprintf(buf, sizeof(buf), "%s\xff", pre); /* after the whole prefix range */
        check_scan(m.root, &r, pre, buf);
        snprintf(buf, sizeof(buf), "%sb/\xff", pre); /* resume key inside the range */
        check_scan(m.root, &r, pre, buf);
        snprintf(buf, sizeof(buf), "%sa", pre);
        check_scan(m.root, &r, pre, buf);
        /* Range boundaries just outside the prefix range: the predecessor of the prefix. */
        if (pre[0] != '\0') {
            snprintf(buf, sizeof(buf), "%.*s", (int)strlen(pre) - 1, pre);
            check_scan(m.root, &r, pre, buf);
        }
        for (int i = 0; i < 40; i++) {
            /* Existing keys and keys that are not in the map, inside and outside the range. */
            char key[32];
            if (i % 2 == 0 && r.n > 0) {
                snprintf(key, sizeof(key), "%s", r.e[rnd() % r.n].key);
            } else {
                char tail[16];
                rand_key(tail);
                snprintf(key, sizeof(key), "%s%s", i % 4 == 1 ? pre : "", tail);
            }
            check_scan(m.root, &r, pre, key);
        }
    }
    rft_map_close(&m);
    ref_free(&r);

    /* Folder listings as node/storage.c does them, over keys without 0xff bytes (a key
     * "a/\xff..." would sort after the resume key "a/\xff"). */
    keys_without_ff = true;
    rft_map_init(&m);
    fill(&m, &r, 10000);
    keys_without_ff = false;
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        check_list(m.root, &r, prefixes[p]);
        check_scan(m.root, &r, prefixes[p], NULL);
    }
    rft_map_close(&m);
    ref_free(&r);
    assert_int_equal(cf_mem_live(), live);
}

/* Keys put in order (the worst case of an unbalanced tree), then deleted in order: the treap
 * keeps its invariants and a logarithmic height throughout (a tree without rebalancing would
 * be 20,000 deep). */
static void test_balance(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map m;
    rft_map_init(&m);
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "logical/pki/certs/%08d", i);
        assert_int_equal(rft_map_put(&m, key, (const uint8_t *)"v", 1, (uint64_t)i), CF_OK);
        if (i % 1000 == 999) {
            int h = rft_map_check(&m);
            assert_true(h > 0 && h < 64);
        }
    }
    /* Replacements keep the shape's invariants too. */
    for (int i = 0; i < n; i += 7) {
        char key[32];
        snprintf(key, sizeof(key), "logical/pki/certs/%08d", i);
        assert_int_equal(rft_map_put(&m, key, (const uint8_t *)"w", 1, 1), CF_OK);
    }
    assert_int_equal(m.count, (uint64_t)n);
    assert_true(rft_map_check(&m) > 0);
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "logical/pki/certs/%08d", i);
        assert_int_equal(rft_map_delete(&m, key), CF_OK);
        if (i % 1000 == 0) {
            assert_true(rft_map_check(&m) >= 0);
        }
    }
    assert_int_equal(m.count, 0);
    assert_int_equal(rft_map_check(&m), 0);
    rft_map_close(&m);
    assert_int_equal(cf_mem_live(), live);
}

static void test_persistence(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map m;
    struct ref r = {0};
    rft_map_init(&m);
    fill(&m, &r, 3000);

    struct rft_node *frozen = rft_map_freeze(&m);
    struct ref old;
    ref_copy(&r, &old);

    /* Churn the live map: new keys, replacements and deletes; a second freeze half-way. */
    struct rft_node *frozen2 = NULL;
    struct ref mid = {0};
    for (int i = 0; i < 6000; i++) {
        if (i == 3000) {
            frozen2 = rft_map_freeze(&m);
            ref_copy(&r, &mid);
        }
        if (rnd() % 3 == 0 && r.n > 0) {
            char key[16];
            snprintf(key, sizeof(key), "%s", r.e[rnd() % r.n].key);
            assert_int_equal(rft_map_delete(&m, key), CF_OK);
            ref_delete(&r, key);
        } else {
            char key[16];
            uint8_t val[64];
            rand_key(key);
            size_t len = rand_val(val);
            uint64_t ver = rnd();
            assert_int_equal(rft_map_put(&m, key, val, len, ver), CF_OK);
            ref_put(&r, key, val, len, ver);
        }
    }
    check_all(frozen, &old);
    check_scan(frozen, &old, "a/", NULL);
    check_all(frozen2, &mid);
    check_map(&m, &r);

    /* Releasing one frozen root leaves the others intact. */
    rft_map_release(frozen);
    check_all(frozen2, &mid);
    check_map(&m, &r);
    rft_map_release(frozen2);
    check_map(&m, &r);
    rft_map_release(NULL);

    /* A frozen root outlives the map it came from. */
    frozen = rft_map_freeze(&m);
    rft_map_close(&m);
    check_all(frozen, &r);
    rft_map_release(frozen);

    ref_free(&old);
    ref_free(&mid);
    ref_free(&r);
    assert_int_equal(cf_mem_live(), live);
}

/* Snapshot codec --------------------------------------------------------------------------- */

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map m;
    struct ref r = {0};
    rft_map_init(&m);
    for (int i = 0; i < 10000; i++) {
        char key[32];
        uint8_t val[64];
        snprintf(key, sizeof(key), "k/%05d/%c", (int)(rnd() % 100000), "ab\xff"[i % 3]);
        size_t len = i % 7 == 0 ? 0 : rand_val(val);
        uint64_t ver = i % 11 == 0 ? UINT64_MAX : rnd();
        assert_int_equal(rft_map_put(&m, key, val, len, ver), CF_OK);
        ref_put(&r, key, val, len, ver);
    }
    struct rft_node *frozen = rft_map_freeze(&m);
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(rft_map_encode(frozen, m.count, &out), CF_OK);
    /* Writes after the freeze do not reach the snapshot. */
    assert_int_equal(rft_map_put(&m, "later", (const uint8_t *)"x", 1, 1), CF_OK);
    rft_map_release(frozen);
    assert_memory_equal(out.data, "CFSNAP01\x01", 9);

    struct rft_map d;
    rft_map_init(&d);
    assert_int_equal(rft_map_put(&d, "old", (const uint8_t *)"gone", 4, 5), CF_OK);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(rft_map_decode(&d, out.data, out.len, errmsg), CF_OK);
    check_map(&d, &r);
    assert_int_equal(rft_map_get(&d, "old", NULL, NULL, NULL), CF_ENOTFOUND);
    assert_int_equal(rft_map_get(&d, "later", NULL, NULL, NULL), CF_ENOTFOUND);
    /* The decoded map keeps working. */
    assert_int_equal(rft_map_put(&d, "k/new", (const uint8_t *)"n", 1, 2), CF_OK);
    assert_int_equal(rft_map_delete(&d, r.e[0].key), CF_OK);

    /* Empty map. */
    struct cf_buf empty;
    cf_buf_init(&empty);
    assert_int_equal(rft_map_encode(NULL, 0, &empty), CF_OK);
    assert_int_equal(empty.len, 17);
    assert_int_equal(rft_map_decode(&d, empty.data, empty.len, errmsg), CF_OK);
    assert_int_equal(d.count, 0);
    assert_null(d.root);

    cf_buf_close(&empty);
    cf_buf_close(&out);
    rft_map_close(&d);
    rft_map_close(&m);
    ref_free(&r);
    assert_int_equal(cf_mem_live(), live);
}

/* Builds a snapshot by hand: header with `count`, then records. */
struct snap
{
    uint8_t b[512];
    size_t len;
};

static void be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

static void snap_header(struct snap *s, uint8_t version, uint64_t count)
{
    memcpy(s->b, "CFSNAP01", 8);
    s->b[8] = version;
    be(s->b + 9, count, 8);
    s->len = 17;
}

static void snap_record(struct snap *s, const char *key, size_t klen, const char *val, size_t vlen)
{
    be(s->b + s->len, klen, 4);
    be(s->b + s->len + 4, 42, 8);
    be(s->b + s->len + 12, vlen, 4);
    s->len += 16;
    memcpy(s->b + s->len, key, klen);
    s->len += klen;
    memcpy(s->b + s->len, val, vlen);
    s->len += vlen;
}

static void expect_refused(struct rft_map *m,
                           const struct ref *r,
                           const uint8_t *p,
                           size_t len,
                           int want)
{
    long live = cf_mem_live();
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = rft_map_decode(m, p, len, errmsg);
    assert_int_equal(rv, want);
    assert_true(strncmp(errmsg, "snapshot: ", 10) == 0);
    assert_true(strlen(errmsg) > 10);
    check_map(m, r);
    assert_int_equal(cf_mem_live(), live);
}

static void test_snapshot_refused(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map m;
    struct ref r = {0};
    rft_map_init(&m);
    fill(&m, &r, 200);

    struct snap s;
    snap_header(&s, 1, 3);
    snap_record(&s, "a", 1, "1", 1);
    snap_record(&s, "b/c", 3, "", 0);
    snap_record(&s, "b/d", 3, "x\0y", 3);
    struct rft_map ok;
    rft_map_init(&ok);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(rft_map_decode(&ok, s.b, s.len, errmsg), CF_OK);
    assert_int_equal(ok.count, 3);
    rft_map_close(&ok);

    /* Truncated at every length. */
    for (size_t n = 0; n < s.len; n++) {
        expect_refused(&m, &r, s.b, n, CF_ECORRUPT);
    }
    /* Trailing bytes. */
    struct snap t = s;
    t.b[t.len++] = 0;
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    /* Bad magic. */
    t = s;
    t.b[0] = 'X';
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    /* Unknown version. */
    t = s;
    t.b[8] = 2;
    expect_refused(&m, &r, t.b, t.len, CF_EVERSION);
    char msg[CF_ERRMSG_SIZE];
    assert_int_equal(rft_map_decode(&m, t.b, t.len, msg), CF_EVERSION);
    assert_non_null(strstr(msg, "version 2"));
    /* Count larger than the records present, and smaller (then the rest is trailing). */
    t = s;
    be(t.b + 9, 4, 8);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    t = s;
    be(t.b + 9, 2, 8);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    t = s;
    be(t.b + 9, UINT64_MAX, 8);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);

    /* Keys not ascending, duplicate keys. */
    snap_header(&t, 1, 2);
    snap_record(&t, "b", 1, "", 0);
    snap_record(&t, "a", 1, "", 0);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    snap_header(&t, 1, 2);
    snap_record(&t, "a", 1, "", 0);
    snap_record(&t, "a", 1, "", 0);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    /* Embedded NUL in a key, empty key. */
    snap_header(&t, 1, 1);
    snap_record(&t, "a\0b", 3, "", 0);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    snap_header(&t, 1, 1);
    snap_record(&t, "", 0, "v", 1);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    /* Lengths past the end (including ones that overflow 32-bit sums). */
    snap_header(&t, 1, 1);
    snap_record(&t, "a", 1, "v", 1);
    be(t.b + 17, 0xffffffffu, 4);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);
    snap_header(&t, 1, 1);
    snap_record(&t, "a", 1, "v", 1);
    be(t.b + 17 + 12, 0xffffffffu, 4);
    expect_refused(&m, &r, t.b, t.len, CF_ECORRUPT);

    rft_map_close(&m);
    ref_free(&r);
    assert_int_equal(cf_mem_live(), live);
}

/* Fault injection -------------------------------------------------------------------------- */

/* Runs one put under "fail the Nth allocation" for N = 1, 2, ... until it succeeds; every
 * failure must leave the map (and a frozen root, when given) exactly as it was. */
static void put_under_faults(struct rft_map *m,
                             struct ref *r,
                             const struct rft_node *frozen,
                             const struct ref *frozen_ref,
                             const char *key)
{
    uint8_t val[8] = {1, 0, 2, 0, 3, 0, 4, 0};
    for (unsigned long n = 1;; n++) {
        long live = cf_mem_live();
        cf_mem_fail_after(n);
        int rv = rft_map_put(m, key, val, sizeof(val), n);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            ref_put(r, key, val, sizeof(val), n);
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        assert_int_equal(cf_mem_live(), live);
        assert_true(n < 1000);
    }
    check_map(m, r);
    if (frozen != NULL) {
        check_all(frozen, frozen_ref);
    }
}

static void test_put_faults(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map m;
    struct ref r = {0};
    rft_map_init(&m);
    fill(&m, &r, 500);

    /* Unshared tree: insert and replace. */
    put_under_faults(&m, &r, NULL, NULL, "new/key");
    put_under_faults(&m, &r, NULL, NULL, r.e[r.n / 2].key);

    /* With a frozen root every node on the path must be copied first. */
    struct rft_node *frozen = rft_map_freeze(&m);
    struct ref old;
    ref_copy(&r, &old);
    put_under_faults(&m, &r, frozen, &old, "new/key2");
    put_under_faults(&m, &r, frozen, &old, r.e[r.n / 3].key);
    put_under_faults(&m, &r, frozen, &old, "\xff\xff\xff");
    rft_map_release(frozen);
    check_map(&m, &r);

    rft_map_close(&m);
    ref_free(&old);
    ref_free(&r);
    assert_int_equal(cf_mem_live(), live);
}

static void test_decode_faults(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_map src;
    struct ref r = {0};
    rft_map_init(&src);
    fill(&src, &r, 300);
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(rft_map_encode(src.root, src.count, &out), CF_OK);
    rft_map_close(&src);

    struct rft_map m;
    struct ref mref = {0};
    rft_map_init(&m);
    fill(&m, &mref, 50);
    for (unsigned long n = 1;; n++) {
        long before = cf_mem_live();
        char errmsg[CF_ERRMSG_SIZE] = "";
        cf_mem_fail_after(n);
        int rv = rft_map_decode(&m, out.data, out.len, errmsg);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        assert_non_null(strstr(errmsg, "out of memory"));
        assert_int_equal(cf_mem_live(), before);
        check_map(&m, &mref);
        assert_true(n < 10000);
    }
    check_map(&m, &r);

    /* Encoding under faults: CF_ENOMEM, nothing leaked. */
    for (unsigned long n = 1;; n++) {
        struct cf_buf b;
        cf_buf_init(&b);
        long before = cf_mem_live();
        cf_mem_fail_after(n);
        int rv = rft_map_encode(m.root, m.count, &b);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            assert_int_equal(b.len, out.len);
            assert_memory_equal(b.data, out.data, out.len);
            cf_buf_close(&b);
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        cf_buf_close(&b);
        assert_int_equal(cf_mem_live(), before);
    }

    rft_map_close(&m);
    cf_buf_close(&out);
    ref_free(&r);
    ref_free(&mref);
    assert_int_equal(cf_mem_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_persistence),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_refused),
        cmocka_unit_test(test_put_faults),
        cmocka_unit_test(test_decode_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
