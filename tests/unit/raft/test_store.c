/*
 * Unit tests for raft/store.c on a real libuv loop and libraft's disk backend, in a mkdtemp
 * data dir: bootstrap, leadership and the ready callback, applies (plain and conditional ops,
 * grouping of applies submitted in one loop turn), reads and scans, recovery from the log and
 * from snapshots after a reopen, cancellation on close, refusals (not ready, bootstrapped twice,
 * node id of another node), a corrupt or truncated data dir at start (each case in a forked
 * child so that an abort fails only that case), and an entry of an unknown format version
 * written into the log through libraft directly. Every test ends with uv_loop_close() == 0 and
 * no live allocations.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "raft/entry.h"
#include "raft/internal.h"
#include "raft/snapfile.h"
#include "raft/store.h"
#include "raft/transport_local.h"

#define NODE_ID "node-1"
#define ADDRESS "127.0.0.1:8201"
#define TIMEOUT_MS 10000

struct fx
{
    uv_loop_t loop;
    char dir[64];
    struct rft_store *s;
    unsigned threshold; /* snapshot threshold; 0 = store default */
    unsigned trailing;
    int ready_calls;
    bool closed;
    long live; /* cf_mem_live() at setup */
};

/* Loop helpers ----------------------------------------------------------------------------- */

static void run_until(struct fx *f, const bool *flag)
{
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (!*flag) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
        assert_true(uv_now(&f->loop) - start < TIMEOUT_MS);
    }
}

/* Runs the loop for about ms milliseconds. */
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

static void ready_cb(struct rft_store *s, void *arg)
{
    struct fx *f = arg;
    assert_ptr_equal(s, f->s);
    assert_true(rft_store_is_ready(s));
    f->ready_calls++;
}

static int store_new(struct fx *f, const char *node_id, char errmsg[CF_ERRMSG_SIZE])
{
    struct rft_store_config cfg = {
        .dir = f->dir,
        .node_id = node_id,
        .address = ADDRESS,
        .snapshot_threshold = f->threshold,
        .snapshot_trailing = f->trailing,
        .election_timeout_ms = 100,
        .heartbeat_timeout_ms = 20,
    };
    errmsg[0] = '\0';
    return rft_store_new(&f->loop, &cfg, &f->s, errmsg);
}

/* Opens the dir, bootstraps it when asked, starts and waits for the ready callback. */
static void store_open(struct fx *f, bool bootstrap)
{
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(store_new(f, NODE_ID, errmsg), CF_OK);
    assert_int_equal(rft_store_bootstrapped(f->s), !bootstrap);
    if (bootstrap) {
        assert_int_equal(rft_store_bootstrap(f->s, errmsg), CF_OK);
        assert_true(rft_store_bootstrapped(f->s));
    }
    f->ready_calls = 0;
    int rv = rft_store_start(f->s, ready_cb, f, errmsg);
    if (rv != CF_OK) {
        fprintf(stderr, "start: %s\n", errmsg);
    }
    assert_int_equal(rv, CF_OK);
    assert_int_equal(f->ready_calls, 0); /* never from inside start */
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (f->ready_calls == 0) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
        assert_true(uv_now(&f->loop) - start < TIMEOUT_MS);
    }
    assert_true(rft_store_is_ready(f->s));
    assert_true(rft_store_term(f->s) >= 1);
    assert_int_equal(rft_store_applied_index(f->s), rft_store_last_index(f->s));
}

static void close_cb(void *arg)
{
    struct fx *f = arg;
    f->closed = true;
}

static void store_close(struct fx *f)
{
    f->closed = false;
    rft_store_close(f->s, close_cb, f);
    f->s = NULL;
    run_until(f, &f->closed);
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

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->live = cf_mem_live();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/coffer-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->threshold = 64;
    f->trailing = 32;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->s != NULL) {
        store_close(f);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rm_rf(f->dir);
    assert_int_equal(cf_mem_live(), f->live);
    free(f);
    return 0;
}

/* Applies ------------------------------------------------------------------------------------ */

struct req
{
    struct rft_apply_req req;
    int status;
    bool done;
    int order; /* completion order */
};

static int completions;

static void apply_cb(struct rft_apply_req *r, int status)
{
    struct req *q = CF_CONTAINER_OF(r, struct req, req);
    assert_false(q->done);
    q->status = status;
    q->done = true;
    q->order = completions++;
}

static int submit(struct fx *f, struct req *q, struct rft_batch *b)
{
    memset(q, 0, sizeof(*q));
    q->status = -1;
    return rft_store_apply(f->s, &q->req, b, apply_cb);
}

/* Submits and waits; returns the completion status. */
static int apply(struct fx *f, struct req *q, struct rft_batch *b)
{
    assert_int_equal(submit(f, q, b), CF_OK);
    assert_false(q->done); /* never from inside apply */
    run_until(f, &q->done);
    return q->status;
}

static void put(struct fx *f, const char *key, const char *val)
{
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, key, (const uint8_t *)val, strlen(val)), CF_OK);
    struct req q;
    assert_int_equal(apply(f, &q, b), CF_OK);
    rft_apply_req_close(&q.req);
}

static void check_value(struct fx *f, const char *key, const char *val)
{
    const uint8_t *v;
    size_t len;
    if (val == NULL) {
        assert_int_equal(rft_store_get(f->s, key, &v, &len, NULL), CF_ENOTFOUND);
        return;
    }
    assert_int_equal(rft_store_get(f->s, key, &v, &len, NULL), CF_OK);
    assert_int_equal(len, strlen(val));
    assert_memory_equal(v, val, len);
}

/* Concatenates "key=value;" for every key under prefix: a compact picture of the content. */
static int dump_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct cf_buf *out = arg;
    assert_int_equal(cf_buf_append_str(out, key), CF_OK);
    assert_int_equal(cf_buf_append(out, "=", 1), CF_OK);
    for (size_t i = 0; i < len; i++) {
        char c = val[i] == 0 ? '@' : (char)val[i]; /* NULs shown as '@' */
        assert_int_equal(cf_buf_append(out, &c, 1), CF_OK);
    }
    assert_int_equal(cf_buf_append(out, ";", 1), CF_OK);
    return 0;
}

static char *dump(struct fx *f, const char *prefix, const char *after)
{
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(cf_buf_append(&out, "", 0), CF_OK);
    assert_int_equal(rft_store_scan(f->s, prefix, after, dump_visit, &out), 0);
    char *s = strdup(out.data != NULL ? (char *)out.data : "");
    cf_buf_close(&out);
    return s;
}

static void check_dump(struct fx *f, const char *prefix, const char *after, const char *want)
{
    char *got = dump(f, prefix, after);
    assert_string_equal(got, want);
    free(got);
}

/* Tests ------------------------------------------------------------------------------------ */

static void test_apply_and_read(void **state)
{
    struct fx *f = *state;
    char errmsg[CF_ERRMSG_SIZE];
    store_open(f, true);
    assert_int_equal(rft_store_bootstrap(f->s, errmsg), CF_EEXIST);
    assert_non_null(strstr(errmsg, "already bootstrapped"));

    /* Puts, deletes and delete_prefix in one batch and across batches. */
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "a/1", (const uint8_t *)"one", 3), CF_OK);
    assert_int_equal(rft_batch_put(b, "a/2", (const uint8_t *)"two", 3), CF_OK);
    assert_int_equal(rft_batch_put(b, "a/sub/3", (const uint8_t *)"three", 5), CF_OK);
    assert_int_equal(rft_batch_put(b, "b/1", (const uint8_t *)"x\0y", 3), CF_OK);
    assert_int_equal(rft_batch_put(b, "b/2", NULL, 0), CF_OK);
    assert_int_equal(rft_batch_put(b, "c/1", (const uint8_t *)"c", 1), CF_OK);
    assert_int_equal(rft_batch_put(b, "c/2", (const uint8_t *)"c", 1), CF_OK);
    struct req q;
    assert_int_equal(apply(f, &q, b), CF_OK);
    uint64_t idx = q.req.index;
    assert_true(idx > 1);
    assert_null(q.req.old_values);
    rft_apply_req_close(&q.req);
    assert_int_equal(rft_store_applied_index(f->s), idx);
    assert_true(rft_store_commit_index(f->s) >= idx);
    assert_int_equal(rft_store_size(f->s), 7);

    const uint8_t *v;
    size_t len;
    uint64_t ver;
    assert_int_equal(rft_store_get(f->s, "b/1", &v, &len, &ver), CF_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "x\0y", 3);
    assert_int_equal(ver, idx); /* version = index of the last write */
    assert_int_equal(rft_store_get(f->s, "b/2", NULL, &len, NULL), CF_OK);
    assert_int_equal(len, 0);
    assert_int_equal(rft_store_get(f->s, "nope", NULL, NULL, NULL), CF_ENOTFOUND);

    b = rft_batch_new();
    assert_int_equal(rft_batch_delete(b, "a/2"), CF_OK);
    assert_int_equal(rft_batch_delete(b, "absent"), CF_OK); /* deleting nothing is fine */
    assert_int_equal(rft_batch_delete_prefix(b, "c/"), CF_OK);
    assert_int_equal(rft_batch_put(b, "a/1", (const uint8_t *)"uno", 3), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_OK);
    assert_true(q.req.index > idx);
    rft_apply_req_close(&q.req);
    assert_int_equal(rft_store_get(f->s, "a/1", NULL, NULL, &ver), CF_OK);
    assert_int_equal(ver, q.req.index);
    check_dump(f, "", NULL, "a/1=uno;a/sub/3=three;b/1=x@y;b/2=;");
    check_dump(f, "a/", NULL, "a/1=uno;a/sub/3=three;");
    check_dump(f, "a/", "a/1", "a/sub/3=three;");
    check_dump(f, "a/", "a/\xff", "");
    check_dump(f, "a/", "", "a/1=uno;a/sub/3=three;");
    check_dump(f, "c/", NULL, "");
    assert_int_equal(rft_store_size(f->s), 4);

    /* Batches with bad keys are refused while building. */
    b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "", (const uint8_t *)"v", 1), CF_EINVAL);
    rft_batch_free(b);
}

/* RESTORE is refused until the format gate allows format 2; then it replaces everything but
 * the kept prefix with the staged keys, in one entry written in format 2. */
static void test_restore_and_format_gate(void **state)
{
    struct fx *f = *state;
    store_open(f, true);
    assert_int_equal(rft_store_entry_format(f->s), RFT_ENTRY_FORMAT_MIN);
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "old/1", (const uint8_t *)"o", 1), CF_OK);
    assert_int_equal(rft_batch_put(b, "keep/1", (const uint8_t *)"k", 1), CF_OK);
    assert_int_equal(rft_batch_put(b, "stage/new/1", (const uint8_t *)"n1", 2), CF_OK);
    assert_int_equal(rft_batch_put(b, "stage/new/2", (const uint8_t *)"n2", 2), CF_OK);
    assert_int_equal(rft_batch_put(b, "stage/keep/2", (const uint8_t *)"x", 1), CF_OK);
    /* A live key that sorts after its staged replacement ("z" > "s"), and one before it. */
    assert_int_equal(rft_batch_put(b, "z/1", (const uint8_t *)"old", 3), CF_OK);
    assert_int_equal(rft_batch_put(b, "stage/z/1", (const uint8_t *)"new", 3), CF_OK);
    assert_int_equal(rft_batch_put(b, "new/1", (const uint8_t *)"old", 3), CF_OK);
    struct req q;
    assert_int_equal(apply(f, &q, b), CF_OK);
    rft_apply_req_close(&q.req);
    assert_int_equal(rft_store_applied_format(f->s), 1);

    b = rft_batch_new();
    assert_int_equal(rft_batch_restore(b, "stage/", "keep/"), CF_OK);
    struct rft_apply_req r;
    assert_int_equal(rft_store_apply(f->s, &r, b, NULL), CF_EVERSION);
    check_dump(f, "", NULL,
               "keep/1=k;new/1=old;old/1=o;stage/keep/2=x;stage/new/1=n1;stage/new/2=n2;"
               "stage/z/1=new;z/1=old;");

    rft_store_set_entry_format(f->s, 99); /* clamped to what this build knows */
    assert_int_equal(rft_store_entry_format(f->s), RFT_ENTRY_FORMAT);
    rft_store_set_entry_format(f->s, 2);
    b = rft_batch_new();
    assert_int_equal(rft_batch_restore(b, "stage/", "keep/"), CF_OK);
    assert_int_equal(rft_batch_put(b, "keep/marker", (const uint8_t *)"m", 1), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_OK);
    uint64_t idx = q.req.index;
    rft_apply_req_close(&q.req);
    assert_int_equal(rft_store_applied_format(f->s), 2);
    check_dump(f, "", NULL, "keep/1=k;keep/marker=m;new/1=n1;new/2=n2;z/1=new;");
    uint64_t ver;
    assert_int_equal(rft_store_get(f->s, "new/1", NULL, NULL, &ver), CF_OK);
    assert_int_equal(ver, idx);

    /* It survives a reopen (replayed from the log, or from a snapshot). */
    store_close(f);
    store_open(f, false);
    check_dump(f, "", NULL, "keep/1=k;keep/marker=m;new/1=n1;new/2=n2;z/1=new;");
}

/* Snapshot files: a frozen copy framed with metadata and a checksum; later writes do not show
 * in it; damaged and foreign files are refused with their reason. */
static void test_snapfile(void **state)
{
    struct fx *f = *state;
    store_open(f, true);
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "a", (const uint8_t *)"1", 1), CF_OK);
    assert_int_equal(rft_batch_put(b, "b/c", (const uint8_t *)"2\0", 2), CF_OK);
    struct req q;
    assert_int_equal(apply(f, &q, b), CF_OK);
    rft_apply_req_close(&q.req);
    struct rft_frozen *fz = rft_store_freeze(f->s);
    assert_non_null(fz);
    assert_int_equal(rft_frozen_index(fz), rft_store_applied_index(f->s));
    b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "later", (const uint8_t *)"x", 1), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_OK);
    rft_apply_req_close(&q.req);

    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(rft_snapfile_encode(fz, "{}", 2, &out), CF_OK);
    rft_frozen_release(fz);
    const uint8_t *meta;
    const uint8_t *body;
    size_t mlen;
    size_t blen;
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(rft_snapfile_open(out.data, out.len, &meta, &mlen, &body, &blen, errmsg),
                     CF_OK);
    assert_int_equal(mlen, 2);
    assert_memory_equal(meta, "{}", 2);
    struct cf_buf seen;
    cf_buf_init(&seen);
    assert_int_equal(rft_frozen_scan_encoded(body, blen, dump_visit, &seen, errmsg), CF_OK);
    assert_int_equal(cf_buf_append(&seen, "", 1), CF_OK);
    assert_string_equal((char *)seen.data, "a=1;b/c=2@;");
    cf_buf_close(&seen);

    /* Refusals. */
    uint8_t *copy = malloc(out.len);
    memcpy(copy, out.data, out.len);
    copy[out.len / 2] ^= 1;
    assert_int_equal(rft_snapfile_open(copy, out.len, &meta, &mlen, &body, &blen, errmsg),
                     CF_ECORRUPT);
    assert_non_null(strstr(errmsg, "checksum"));
    memcpy(copy, out.data, out.len);
    copy[11] = 9; /* file format 9 */
    assert_int_equal(rft_snapfile_open(copy, out.len, &meta, &mlen, &body, &blen, errmsg),
                     CF_EVERSION);
    assert_non_null(strstr(errmsg, "format 9"));
    memcpy(copy, out.data, out.len);
    copy[0] = 'X';
    assert_int_equal(rft_snapfile_open(copy, out.len, &meta, &mlen, &body, &blen, errmsg),
                     CF_EMALFORMED);
    assert_int_equal(rft_snapfile_open(out.data, 20, &meta, &mlen, &body, &blen, errmsg),
                     CF_EMALFORMED);
    free(copy);
    /* A body that is not an FSM encoding. */
    assert_int_equal(rft_frozen_scan_encoded((const uint8_t *)"nonsense-bytes-here", 19, dump_visit,
                                             &seen, errmsg),
                     CF_ECORRUPT);
    cf_buf_close(&out);
}

static void test_conditional(void **state)
{
    struct fx *f = *state;
    store_open(f, true);
    struct req q;

    /* put_if_version 0: only when absent. */
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put_if_version(b, "cas", (const uint8_t *)"v1", 2, 0), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_OK);
    uint64_t v1 = q.req.index;
    rft_apply_req_close(&q.req);
    check_value(f, "cas", "v1");

    b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "other", (const uint8_t *)"o", 1), CF_OK);
    assert_int_equal(rft_batch_put_if_version(b, "cas", (const uint8_t *)"v2", 2, 0), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_ECONFLICT);
    assert_int_equal(q.req.failed_op, 1);
    rft_apply_req_close(&q.req);
    check_value(f, "cas", "v1");
    check_value(f, "other", NULL); /* nothing of a failed batch is applied */

    /* put_if_version with the current version succeeds; a stale one conflicts. */
    b = rft_batch_new();
    assert_int_equal(rft_batch_put_if_version(b, "cas", (const uint8_t *)"v2", 2, v1), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_OK);
    rft_apply_req_close(&q.req);
    check_value(f, "cas", "v2");
    b = rft_batch_new();
    assert_int_equal(rft_batch_put_if_version(b, "cas", (const uint8_t *)"v3", 2, v1), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_ECONFLICT);
    assert_int_equal(q.req.failed_op, 0);
    rft_apply_req_close(&q.req);

    /* delete_if_present returns the old value; the second one conflicts. */
    put(f, "single-use", "secret\0bytes");
    b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "log", (const uint8_t *)"l", 1), CF_OK);
    assert_int_equal(rft_batch_delete_if_present(b, "single-use"), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_OK);
    assert_int_equal(q.req.n_old_values, 2);
    assert_null(q.req.old_values[0].data);
    assert_int_equal(q.req.old_values[1].len, 6);
    assert_memory_equal(q.req.old_values[1].data, "secret", 6);
    rft_apply_req_close(&q.req);
    assert_null(q.req.old_values);
    check_value(f, "single-use", NULL);
    check_value(f, "log", "l");

    b = rft_batch_new();
    assert_int_equal(rft_batch_delete_if_present(b, "single-use"), CF_OK);
    assert_int_equal(apply(f, &q, b), CF_ECONFLICT);
    assert_int_equal(q.req.failed_op, 0);
    assert_null(q.req.old_values);
    rft_apply_req_close(&q.req);

    /* Conflicting and succeeding batches grouped into one entry are independent. */
    struct req g[3];
    b = rft_batch_new();
    assert_int_equal(rft_batch_put_if_version(b, "g", (const uint8_t *)"1", 1, 0), CF_OK);
    assert_int_equal(submit(f, &g[0], b), CF_OK);
    b = rft_batch_new();
    assert_int_equal(rft_batch_put_if_version(b, "g", (const uint8_t *)"2", 1, 0), CF_OK);
    assert_int_equal(submit(f, &g[1], b), CF_OK);
    b = rft_batch_new();
    assert_int_equal(rft_batch_delete_if_present(b, "g"), CF_OK);
    assert_int_equal(submit(f, &g[2], b), CF_OK);
    run_until(f, &g[2].done);
    assert_true(g[0].done && g[1].done);
    assert_int_equal(g[0].status, CF_OK);
    assert_int_equal(g[1].status, CF_ECONFLICT);
    assert_int_equal(g[2].status, CF_OK);
    assert_int_equal(g[0].req.index, g[2].req.index);
    assert_memory_equal(g[2].req.old_values[0].data, "1", 1);
    for (int i = 0; i < 3; i++) {
        rft_apply_req_close(&g[i].req);
    }
    check_value(f, "g", NULL);
}

#define N_GROUPED 300

static void test_grouping_and_reopen(void **state)
{
    struct fx *f = *state;
    store_open(f, true);
    static struct req q[N_GROUPED];
    completions = 0;
    for (int i = 0; i < N_GROUPED; i++) {
        char key[32];
        char val[32];
        snprintf(key, sizeof(key), "k/%04d", i);
        snprintf(val, sizeof(val), "v%d", i);
        struct rft_batch *b = rft_batch_new();
        assert_int_equal(rft_batch_put(b, key, (const uint8_t *)val, strlen(val)), CF_OK);
        if (i % 10 == 9) {
            assert_int_equal(rft_batch_delete(b, "k/0000"), CF_OK);
        }
        assert_int_equal(submit(f, &q[i], b), CF_OK);
    }
    run_until(f, &q[N_GROUPED - 1].done);
    uint64_t first = q[0].req.index;
    int same = 0;
    for (int i = 0; i < N_GROUPED; i++) {
        assert_true(q[i].done);
        assert_int_equal(q[i].status, CF_OK);
        assert_int_equal(q[i].order, i); /* completion in submission order */
        same += q[i].req.index == first;
        rft_apply_req_close(&q[i].req);
    }
    assert_true(same == N_GROUPED); /* all in one entry: well under the 1 MiB cap */
    assert_int_equal(rft_store_size(f->s), N_GROUPED - 1);
    char *before = dump(f, "", NULL);
    uint64_t last = rft_store_last_index(f->s);

    store_close(f);
    store_open(f, false);
    assert_true(rft_store_last_index(f->s) > last); /* the new term's barrier */
    char *after = dump(f, "", NULL);
    assert_string_equal(before, after);
    free(after);
    check_value(f, "k/0000", NULL);
    check_value(f, "k/0299", "v299");
    put(f, "k/0000", "back");
    store_close(f);
    store_open(f, false);
    check_value(f, "k/0000", "back");
    free(before);
}

static unsigned count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    }
    closedir(d);
    return n;
}

static void test_snapshots(void **state)
{
    struct fx *f = *state;
    store_open(f, true);
    /* 400 entries with a threshold of 64: several snapshots, older segments removed. */
    for (int i = 0; i < 400; i++) {
        char key[32];
        char val[64];
        snprintf(key, sizeof(key), "s/%03d", i % 150);
        snprintf(val, sizeof(val), "value %d with a NUL here:", i);
        struct rft_batch *b = rft_batch_new();
        assert_int_equal(rft_batch_put(b, key, (const uint8_t *)val, strlen(val) + 1), CF_OK);
        if (i % 7 == 0) {
            snprintf(key, sizeof(key), "s/%03d", (i * 13) % 150);
            assert_int_equal(rft_batch_delete(b, key), CF_OK);
        }
        struct req q;
        assert_int_equal(apply(f, &q, b), CF_OK);
        rft_apply_req_close(&q.req);
    }
    /* Let the last asynchronous snapshot finish. */
    run_for(f, 200);
    assert_true(count_files(f->dir, "snapshot-") >= 1);
    char *before = dump(f, "", NULL);
    size_t size = rft_store_size(f->s);
    store_close(f);
    assert_true(count_files(f->dir, "snapshot-") >= 1);

    store_open(f, false);
    char *after = dump(f, "", NULL);
    assert_string_equal(before, after);
    assert_int_equal(rft_store_size(f->s), size);
    free(after);
    /* Keep writing on top of the restored snapshot, reopen again. */
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "t/%03d", i);
        put(f, key, "t");
    }
    free(before);
    before = dump(f, "", NULL);
    store_close(f);
    store_open(f, false);
    after = dump(f, "", NULL);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

/* The threshold follows the snapshot's size: the bytes of the last snapshot over the average
 * entry of the log since the one before, within [RFT_SNAPSHOT_THRESHOLD,
 * RFT_SNAPSHOT_THRESHOLD_MAX]. */
static void test_snapshot_threshold_for(void **state)
{
    (void)state;
    /* 100 MB snapshot, 64-byte entries: 1.6M entries hold it, capped. */
    assert_int_equal(rft__snapshot_threshold_for(100u << 20, 64 * 1000, 1000),
                     RFT_SNAPSHOT_THRESHOLD_MAX);
    /* 8 MB snapshot, 256-byte entries: 32768 entries. */
    assert_int_equal(rft__snapshot_threshold_for(8u << 20, 256 * 500, 500), 32768);
    /* A small store keeps the default. */
    assert_int_equal(rft__snapshot_threshold_for(4096, 1000 * 100, 100), RFT_SNAPSHOT_THRESHOLD);
    /* No entries since the last snapshot, or entries of 0 bytes on average: the default, and
     * no division by zero. */
    assert_int_equal(rft__snapshot_threshold_for(8u << 20, 0, 0), RFT_SNAPSHOT_THRESHOLD);
    assert_int_equal(rft__snapshot_threshold_for(8u << 20, 3, 10), RFT_SNAPSHOT_THRESHOLD_MAX);
}

/* A store without a configured threshold retunes it after each snapshot; a configured one
 * keeps it. */
static void test_snapshot_retune(void **state)
{
    struct fx *f = *state;
    f->threshold = 0;
    store_open(f, true);
    assert_int_equal(f->s->raft.snapshot.threshold, RFT_SNAPSHOT_THRESHOLD);
    raft_set_snapshot_threshold(&f->s->raft, 8); /* a snapshot soon */
    for (int i = 0; i < 12; i++) {
        char key[32];
        snprintf(key, sizeof(key), "r/%02d", i);
        put(f, key, "v");
    }
    run_for(f, 200);
    assert_true(count_files(f->dir, "snapshot-") >= 1);
    assert_int_equal(f->s->raft.snapshot.threshold, RFT_SNAPSHOT_THRESHOLD);
    store_close(f);

    f->threshold = 16;
    store_open(f, false);
    for (int i = 0; i < 40; i++) {
        char key[32];
        snprintf(key, sizeof(key), "f/%02d", i);
        put(f, key, "v");
    }
    run_for(f, 200);
    assert_int_equal(f->s->raft.snapshot.threshold, 16);
}

/* Closing while a snapshot is being encoded on the worker pool: the store must not be freed
 * under the worker (nor raft closed under its completion). */
struct close_later
{
    uv_timer_t timer;
    struct fx *f;
};

static void close_later_cb(uv_timer_t *t)
{
    struct close_later *c = CF_CONTAINER_OF(t, struct close_later, timer);
    rft_store_close(c->f->s, close_cb, c->f);
    c->f->s = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_close_during_snapshot(void **state)
{
    struct fx *f = *state;
    f->threshold = 4;
    f->trailing = 2;
    store_open(f, true);
    /* Three big entries (the barrier makes a fourth); the apply of the last one crosses the
     * threshold, so a snapshot of 150,000 keys starts right after its callback. */
    struct req q;
    for (int e = 0; e < 3; e++) {
        struct rft_batch *b = rft_batch_new();
        for (int i = 0; i < 50000; i++) {
            char key[32];
            snprintf(key, sizeof(key), "big/%d/%06d", e, i);
            assert_int_equal(rft_batch_put(b, key, (const uint8_t *)"0123456789", 10), CF_OK);
        }
        assert_int_equal(apply(f, &q, b), CF_OK);
        rft_apply_req_close(&q.req);
        if (rft_store_applied_index(f->s) >= 4) {
            break;
        }
    }
    struct close_later c = {.f = f};
    uv_timer_init(&f->loop, &c.timer);
    uv_timer_start(&c.timer, close_later_cb, 0, 0);
    f->closed = false;
    run_until(f, &f->closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);

    /* Whatever was persisted reopens cleanly. */
    store_open(f, false);
    check_value(f, "big/0/000000", "0123456789");
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(store_new(f, NODE_ID, errmsg), CF_OK);
    assert_false(rft_store_bootstrapped(f->s));
    assert_false(rft_store_is_ready(f->s));
    /* Not started: not leader. The batch is taken (freed) either way. */
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "k", (const uint8_t *)"v", 1), CF_OK);
    struct req q;
    assert_int_equal(submit(f, &q, b), CF_ENOTLEADER);
    assert_int_equal(rft_store_bootstrap(f->s, errmsg), CF_OK);
    assert_int_equal(rft_store_bootstrap(f->s, errmsg), CF_EEXIST);
    assert_true(strlen(errmsg) > 0);
    f->ready_calls = 0;
    assert_int_equal(rft_store_start(f->s, ready_cb, f, errmsg), CF_OK);
    /* Started, not yet leader. */
    b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "k", (const uint8_t *)"v", 1), CF_OK);
    assert_int_equal(submit(f, &q, b), CF_ENOTLEADER);
    store_close(f);

    /* Closing a store that was never started. */
    assert_int_equal(store_new(f, NODE_ID, errmsg), CF_OK);
    store_close(f);
    rft_store_close(NULL, close_cb, f);

    /* A dir pinned to another node id. */
    assert_int_equal(store_new(f, "node-2", errmsg), CF_EINVAL);
    assert_null(f->s);
    assert_non_null(strstr(errmsg, "\"node-1\""));
    assert_non_null(strstr(errmsg, "\"node-2\""));
    assert_non_null(strstr(errmsg, f->dir));
}

static void test_cancel_on_close(void **state)
{
    struct fx *f = *state;
    store_open(f, true);
    put(f, "before", "x");
    /* Queued and never submitted: canceled by close. */
    struct req q[8];
    for (int i = 0; i < 4; i++) {
        struct rft_batch *b = rft_batch_new();
        assert_int_equal(rft_batch_put(b, "queued", (const uint8_t *)"q", 1), CF_OK);
        assert_int_equal(submit(f, &q[i], b), CF_OK);
    }
    f->closed = false;
    rft_store_close(f->s, close_cb, f);
    f->s = NULL;
    for (int i = 0; i < 4; i++) {
        assert_true(q[i].done);
        assert_int_equal(q[i].status, CF_ECANCELED);
    }
    run_until(f, &f->closed);

    /* Submitted to raft but not yet committed when close comes: canceled too (or done). */
    store_open(f, false);
    check_value(f, "queued", NULL);
    for (int i = 0; i < 8; i++) {
        struct rft_batch *b = rft_batch_new();
        assert_int_equal(rft_batch_put(b, "inflight", (const uint8_t *)"i", 1), CF_OK);
        assert_int_equal(submit(f, &q[i], b), CF_OK);
        uv_run(&f->loop, UV_RUN_NOWAIT); /* the check handle hands each one to raft */
    }
    f->closed = false;
    rft_store_close(f->s, close_cb, f);
    f->s = NULL;
    run_until(f, &f->closed);
    /* How many had committed depends on the disk; each completed exactly once either way. */
    for (int i = 0; i < 8; i++) {
        assert_true(q[i].done);
        assert_true(q[i].status == CF_OK || q[i].status == CF_ECANCELED);
        rft_apply_req_close(&q[i].req);
    }
}

/* Corrupt data dirs ------------------------------------------------------------------------ */

/* Writes `n` entries "seq/NNNNN" (one per apply) with optional restarts in between, so that
 * the dir holds closed segments, snapshots and an open segment. */
static void write_seq(struct fx *f, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "seq/%05d", i);
        put(f, key, "0123456789abcdef0123456789abcdef");
    }
}

static const char *find_file(const char *dir, bool (*match)(const char *name), char *out)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    out[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (match(e->d_name) && (out[0] == '\0' || strcmp(e->d_name, out) > 0)) {
            snprintf(out, 256, "%s", e->d_name); /* the latest one */
        }
    }
    closedir(d);
    return out[0] ? out : NULL;
}

static bool is_closed_segment(const char *name)
{
    return strlen(name) == 33 && name[16] == '-' && name[0] >= '0' && name[0] <= '9';
}

static bool is_open_segment(const char *name)
{
    return strncmp(name, "open-", 5) == 0;
}

static void garbage(const char *dir, const char *name, off_t at, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)(i * 7 + 0x5a);
    }
    assert_true(n <= sizeof(junk));
    assert_int_equal(pwrite(fd, junk, n, at), (ssize_t)n);
    close(fd);
}

static off_t file_size(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void truncate_to(const char *dir, const char *name, off_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(truncate(path, size), 0);
}

enum outcome {
    OUT_REFUSED = 10, /* new or start returned an error with a message */
    OUT_STARTED = 11, /* became ready */
};

/* In a child: open the dir and report how it went through the exit status; an abort or a
 * sanitizer report shows up as a signal or another status. */
static int child_open(struct fx *f, int *seq_present)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = store_new(f, NODE_ID, errmsg);
    if (rv != CF_OK) {
        fprintf(stderr, "rft_store_new: %s: %s\n", cf_strerror(rv), errmsg);
        return strlen(errmsg) > 0 ? OUT_REFUSED : 1;
    }
    f->ready_calls = 0;
    rv = rft_store_start(f->s, ready_cb, f, errmsg);
    if (rv != CF_OK) {
        fprintf(stderr, "rft_store_start: %s: %s\n", cf_strerror(rv), errmsg);
        store_close(f);
        return strlen(errmsg) > 0 ? OUT_REFUSED : 2;
    }
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (f->ready_calls == 0 && uv_now(&f->loop) - start < 3000) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
    }
    if (f->ready_calls == 0) {
        fprintf(stderr, "never became ready\n");
        store_close(f);
        return 3;
    }
    /* The sequence present must be a prefix 0..k-1 of what was written. */
    int k = 0;
    for (;; k++) {
        char key[32];
        snprintf(key, sizeof(key), "seq/%05d", k);
        if (rft_store_get(f->s, key, NULL, NULL, NULL) != CF_OK) {
            break;
        }
    }
    if ((size_t)k != rft_store_size(f->s)) {
        fprintf(stderr, "holes in the sequence: %d of %zu\n", k, rft_store_size(f->s));
        store_close(f);
        return 4;
    }
    *seq_present = k;
    store_close(f);
    return uv_loop_close(&f->loop) == 0 ? OUT_STARTED : 5;
}

/* Runs child_open in a child process; returns its exit status (or 100 + signal). */
static int open_in_child(struct fx *f, int *seq_present)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        struct fx c = *f; /* with a loop of its own: the parent's is not the child's to use */
        c.s = NULL;
        if (uv_loop_init(&c.loop) != 0) {
            _exit(6);
        }
        int k = -1;
        int out = child_open(&c, &k);
        if (write(pipefd[1], &k, sizeof(k)) != (ssize_t)sizeof(k)) {
            _exit(7);
        }
        _exit(out);
    }
    close(pipefd[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    int k = -1;
    if (read(pipefd[0], &k, sizeof(k)) != (ssize_t)sizeof(k)) {
        k = -1;
    }
    close(pipefd[0]);
    *seq_present = k;
    if (WIFSIGNALED(status)) {
        return 100 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

#define SEQ_TOTAL 300

/* Builds a dir with snapshots, closed segments and open segments: 150 entries and a clean
 * close, then 150 more in a child process that is killed (SIGKILL) once they are committed,
 * as a crash leaves it. With a threshold of 1000 for the second part, no snapshot covers its
 * entries. */
static void prepare(struct fx *f)
{
    f->threshold = 64;
    f->trailing = 32;
    store_open(f, true);
    write_seq(f, 0, SEQ_TOTAL / 2);
    run_for(f, 100);
    store_close(f);
    f->threshold = 1000;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fx c = *f;
        c.s = NULL;
        if (uv_loop_init(&c.loop) != 0) {
            _exit(6);
        }
        store_open(&c, false);
        write_seq(&c, SEQ_TOTAL / 2, SEQ_TOTAL / 2);
        kill(getpid(), SIGKILL);
        _exit(7);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_corrupt_metadata(void **state)
{
    struct fx *f = *state;
    prepare(f);
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_STARTED);
    assert_int_equal(k, SEQ_TOTAL);
    garbage(f->dir, "metadata1", 0, 32);
    garbage(f->dir, "metadata2", 0, 32);
    assert_int_equal(open_in_child(f, &k), OUT_REFUSED);
}

static void test_corrupt_closed_segment(void **state)
{
    struct fx *f = *state;
    prepare(f);
    char name[256];
    assert_non_null(find_file(f->dir, is_closed_segment, name));
    truncate_to(f->dir, name, file_size(f->dir, name) / 2);
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_REFUSED);
}

static void test_corrupt_closed_segment_bytes(void **state)
{
    struct fx *f = *state;
    prepare(f);
    char name[256];
    assert_non_null(find_file(f->dir, is_closed_segment, name));
    garbage(f->dir, name, file_size(f->dir, name) / 2, 64);
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_REFUSED);
}

/* The newest snapshot's data or meta file: snapshot-<term>-<index>-<timestamp>[.meta]. */
static void newest_snapshot(const char *dir, bool meta, char *out)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    unsigned long long best = 0;
    out[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        unsigned long long term;
        unsigned long long index;
        unsigned long long ts;
        if (sscanf(e->d_name, "snapshot-%llu-%llu-%llu", &term, &index, &ts) != 3 ||
            (strstr(e->d_name, ".meta") != NULL) != meta || index < best) {
            continue;
        }
        best = index;
        snprintf(out, 256, "%s", e->d_name);
    }
    closedir(d);
    assert_true(out[0] != '\0');
}

static void test_corrupt_snapshot(void **state)
{
    struct fx *f = *state;
    prepare(f);
    char name[256];
    newest_snapshot(f->dir, false, name);
    garbage(f->dir, name, 0,
            (size_t)(file_size(f->dir, name) < 4096 ? file_size(f->dir, name) : 4096));
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_REFUSED);
}

static void test_corrupt_snapshot_meta(void **state)
{
    struct fx *f = *state;
    prepare(f);
    char name[256];
    newest_snapshot(f->dir, true, name);
    garbage(f->dir, name, 8, 16);
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_REFUSED);
}

/* Bytes of an open segment up to its last non-zero byte (libraft preallocates them). */
static off_t used_bytes(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    off_t used = 0;
    off_t pos = 0;
    int c;
    while ((c = fgetc(fp)) != EOF) {
        pos++;
        if (c != 0) {
            used = pos;
        }
    }
    fclose(fp);
    return used;
}

/* The open segment holding the most data. */
static off_t fullest_open_segment(const char *dir, char *out)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    off_t best = 0;
    out[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (!is_open_segment(e->d_name)) {
            continue;
        }
        off_t used = used_bytes(dir, e->d_name);
        if (used > best) {
            best = used;
            snprintf(out, 256, "%s", e->d_name);
        }
    }
    closedir(d);
    assert_true(best > 0);
    return best;
}

/* kill -9 in the middle of a write leaves a torn last batch: cut the file inside it, and
 * also (next case) keep the size but zero the tail, as a preallocated file would show it. */
static void test_torn_open_segment(void **state)
{
    struct fx *f = *state;
    prepare(f);
    char name[256];
    off_t used = fullest_open_segment(f->dir, name);
    assert_true(used > 100);
    truncate_to(f->dir, name, used - 37);
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_STARTED);
    assert_true(k >= SEQ_TOTAL / 2);
    assert_true(k < SEQ_TOTAL);
}

static void test_torn_open_segment_zeroed(void **state)
{
    struct fx *f = *state;
    prepare(f);
    char name[256];
    off_t used = fullest_open_segment(f->dir, name);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    static const uint8_t zeros[37];
    assert_int_equal(pwrite(fd, zeros, sizeof(zeros), used - 37), (ssize_t)sizeof(zeros));
    close(fd);
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_STARTED);
    assert_true(k >= SEQ_TOTAL / 2);
    assert_true(k < SEQ_TOTAL);
}

static void test_killed_store_recovers(void **state)
{
    struct fx *f = *state;
    prepare(f);
    int k;
    assert_int_equal(open_in_child(f, &k), OUT_STARTED);
    assert_int_equal(k, SEQ_TOTAL);
}

/* An entry of an unknown format version, written into the log with libraft directly (the
 * store's API cannot submit one). The store must not apply it nor anything after it, and
 * must stay up without becoming ready. */
struct raw
{
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    bool closed;
    int applied;
};

static int raw_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct raw *r = fsm->data;
    (void)buf;
    r->applied++;
    *result = NULL;
    return 0;
}

static void raw_apply_cb(struct raft_apply *req, int status, void *result)
{
    bool *done = req->data;
    (void)result;
    assert_int_equal(status, 0);
    *done = true;
}

static void raw_closed_cb(struct raft *raft)
{
    struct raw *r = CF_CONTAINER_OF(raft, struct raw, raft);
    r->closed = true;
}

static void raw_submit(struct fx *f, struct raw *r, const void *p, size_t len)
{
    struct raft_apply req;
    bool done = false;
    req.data = &done;
    struct raft_buffer buf = {.base = raft_malloc(len), .len = len};
    memcpy(buf.base, p, len);
    assert_int_equal(raft_apply(&r->raft, &req, &buf, 1, raw_apply_cb), 0);
    run_until(f, &done);
}

static void test_unknown_entry_version(void **state)
{
    struct fx *f = *state;
    f->threshold = 100000;
    f->trailing = 100000;
    store_open(f, true);
    put(f, "good/1", "1");
    store_close(f);

    struct raw *r = calloc(1, sizeof(*r));
    uint8_t h[32];
    assert_int_equal(cf_sha256(NODE_ID, strlen(NODE_ID), h), CF_OK);
    raft_id id = 0;
    for (int i = 0; i < 8; i++) {
        id = id << 8 | h[i];
    }
    assert_int_equal(rft_transport_local_init(&r->transport, &f->loop), CF_OK);
    assert_int_equal(raft_uv_init(&r->io, &f->loop, f->dir, &r->transport), 0);
    r->fsm.version = 1;
    r->fsm.data = r;
    r->fsm.apply = raw_apply;
    assert_int_equal(raft_init(&r->raft, &r->io, &r->fsm, id, ADDRESS), 0);
    raft_set_election_timeout(&r->raft, 100);
    raft_set_heartbeat_timeout(&r->raft, 20);
    raft_set_snapshot_threshold(&r->raft, 100000);
    assert_int_equal(raft_start(&r->raft), 0);
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    while (raft_state(&r->raft) != RAFT_LEADER) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
        assert_true(uv_now(&f->loop) - start < TIMEOUT_MS);
    }
    /* [99, 1, []]: format 99, padded to 8 bytes as libraft needs */
    raw_submit(f, r, "\x93\x63\x01\x90\0\0\0\0", 8);
    /* A well-formed format-1 entry after it. */
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "good/2", (const uint8_t *)"2", 1), CF_OK);
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(rft_entry_encode(&b, 1, 1, &out), CF_OK);
    raw_submit(f, r, out.data, out.len);
    cf_buf_close(&out);
    rft_batch_free(b);
    raft_close(&r->raft, raw_closed_cb);
    run_until(f, &r->closed);
    raft_uv_close(&r->io);
    rft_transport_local_close(&r->transport);
    free(r);

    /* A single voter commits its whole log while starting: start refuses, naming the entry
     * and the version, with everything before it applied and nothing after it. */
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(store_new(f, NODE_ID, errmsg), CF_OK);
    f->ready_calls = 0;
    assert_int_equal(rft_store_start(f->s, ready_cb, f, errmsg), CF_EVERSION);
    assert_non_null(strstr(errmsg, f->dir));
    assert_non_null(strstr(errmsg, "format version 99"));
    assert_non_null(strstr(errmsg, "upgrade"));
    assert_false(rft_store_is_ready(f->s));
    check_value(f, "good/1", "1");
    check_value(f, "good/2", NULL);
    /* Writes are refused. */
    b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "k", (const uint8_t *)"v", 1), CF_OK);
    struct req q;
    assert_int_equal(submit(f, &q, b), CF_ENOTLEADER);
    store_close(f);
    /* The same again: the dir is left as it was. */
    assert_int_equal(store_new(f, NODE_ID, errmsg), CF_OK);
    assert_int_equal(rft_store_start(f->s, ready_cb, f, errmsg), CF_EVERSION);
    store_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_and_format_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouping_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
        cmocka_unit_test(test_snapshot_threshold_for),
        cmocka_unit_test_setup_teardown(test_snapshot_retune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_during_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_closed_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_closed_segment_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_snapshot_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_store_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_open_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_open_segment_zeroed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_entry_version, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
