/*
 * libFuzzer target for the decoders of replicated data: raft log entries (msgpack GROUP
 * entries, raft/entry.c), FSM snapshots (raft/fsm.c) and snapshot files restored from clients
 * (raft/snapfile.c). Each input goes to all three. A decoded
 * entry is re-encoded and decoded again (it must round-trip); a decoded snapshot is scanned
 * and re-encoded, and must give back the input bytes exactly. ASan/UBSan and the allocation
 * counter catch crashes, overflows and leaks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "raft/entry.h"
#include "raft/fsm.h"
#include "raft/snapfile.h"
#include "raft/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void free_batches(struct rft_batch **b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rft_batch_free(b[i]);
    }
    cf_free(b);
}

static void fuzz_entry(const uint8_t *data, size_t size)
{
    struct rft_batch **b = NULL;
    size_t n = 0;
    uint64_t format = 0;
    int rv = rft_entry_decode(data, size, &b, &n, &format);
    if (rv != CF_OK) {
        if (rv != CF_EMALFORMED && rv != CF_EVERSION && rv != CF_ENOMEM) {
            abort();
        }
        return;
    }
    if (format < RFT_ENTRY_FORMAT_MIN || format > RFT_ENTRY_FORMAT) {
        abort();
    }
    struct cf_buf out;
    cf_buf_init(&out);
    if (rft_entry_encode(b, n, format, &out) == CF_OK) {
        struct rft_batch **b2 = NULL;
        size_t n2 = 0;
        if (out.len % 8 != 0 || rft_entry_decode(out.data, out.len, &b2, &n2, &format) != CF_OK ||
            n2 != n) {
            abort();
        }
        for (size_t i = 0; i < n; i++) {
            if (b2[i]->n != b[i]->n) {
                abort();
            }
            for (size_t j = 0; j < b[i]->n; j++) {
                const struct rft_op *x = &b[i]->ops[j];
                const struct rft_op *y = &b2[i]->ops[j];
                if (x->code != y->code || strcmp(x->key, y->key) != 0 || x->len != y->len ||
                    x->version != y->version || (x->len > 0 && memcmp(x->val, y->val, x->len))) {
                    abort();
                }
            }
        }
        free_batches(b2, n2);
    }
    cf_buf_close(&out);
    free_batches(b, n);
}

static int count_visit(void *arg, const char *key, const uint8_t *val, size_t len, uint64_t v)
{
    size_t *n = arg;
    (void)val;
    (void)len;
    (void)v;
    if (key[0] == '\0') {
        abort();
    }
    (*n)++;
    return 0;
}

static void fuzz_snapshot(const uint8_t *data, size_t size)
{
    struct rft_map m;
    rft_map_init(&m);
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = rft_map_decode(&m, data, size, errmsg);
    if (rv != CF_OK) {
        if (errmsg[0] == '\0' || m.root != NULL || m.count != 0) {
            abort();
        }
        rft_map_close(&m);
        return;
    }
    size_t n = 0;
    rft_map_scan(m.root, "", NULL, count_visit, &n);
    if (n != m.count) {
        abort();
    }
    struct cf_buf out;
    cf_buf_init(&out);
    /* Re-encoding gives the input back, less the zero padding (up to 7 bytes, to a multiple
     * of 8) that the decoder accepts and the store appends. */
    if (rft_map_encode(m.root, m.count, &out) == CF_OK &&
        (out.len > size || size - out.len >= 8 || memcmp(out.data, data, out.len) != 0 ||
         (size != out.len && size % 8 != 0))) {
        abort();
    }
    for (size_t i = out.len; i < size; i++) {
        if (data[i] != 0) {
            abort();
        }
    }
    cf_buf_close(&out);
    rft_map_close(&m);
}

static int file_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    (void)key;
    (void)val;
    (void)len;
    (*(size_t *)arg)++;
    return 0;
}

/* Snapshot files as restored from clients (raft/snapfile.c): framing and checksum, then the FSM
 * body. Inputs rarely carry a valid SHA-256; the body decoder is fuzzed directly above. */
static void fuzz_snapfile(const uint8_t *data, size_t size)
{
    const uint8_t *meta;
    const uint8_t *body;
    size_t mlen;
    size_t blen;
    char errmsg[CF_ERRMSG_SIZE];
    int rv = rft_snapfile_open(data, size, &meta, &mlen, &body, &blen, errmsg);
    if (rv != CF_OK) {
        if (rv != CF_EMALFORMED && rv != CF_EVERSION && rv != CF_ECORRUPT) {
            abort();
        }
        return;
    }
    if (meta < data || body + blen > data + size || mlen > RFT_SNAPFILE_META_MAX) {
        abort();
    }
    size_t n = 0;
    (void)rft_frozen_scan_encoded(body, blen, file_visit, &n, errmsg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = cf_mem_live();
    fuzz_entry(data, size);
    fuzz_snapshot(data, size);
    fuzz_snapfile(data, size);
    if (cf_mem_live() != live) {
        abort();
    }
    return 0;
}
