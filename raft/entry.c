/*
 * Batches and the msgpack codec of log entries. Encoding uses msgpack-c's packer on a cf_buf;
 * decoding walks msgpack-c's unpacked object tree and copies keys and values out, refusing any
 * shape it does not expect (unknown fields, wrong types, non-string keys, trailing bytes).
 */
#include "raft/entry.h"

#include <string.h>

#include <msgpack.h>

#include "lib/mem.h"
#include "raft/store.h"

/* Batch builders (declared in raft/store.h) ------------------------------------------------ */

struct rft_batch *rft_batch_new(void)
{
    struct rft_batch *b = cf_calloc(1, sizeof(struct rft_batch));
    if (b != NULL) {
        b->min_format = RFT_ENTRY_FORMAT_MIN;
    }
    return b;
}

void rft_batch_free(struct rft_batch *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        cf_free(b->ops[i].key);
        cf_free(b->ops[i].val);
    }
    cf_free(b->ops);
    cf_free(b);
}

size_t rft_batch_count(const struct rft_batch *b)
{
    return b->n;
}

static int add_op(struct rft_batch *b,
                  enum rft_op_code code,
                  const char *key,
                  const uint8_t *val,
                  size_t len,
                  uint64_t version)
{
    size_t klen = strlen(key);
    if (klen == 0 || klen > RFT_KEY_MAX) {
        /* Every replica's decoder refuses such a key: committing it would stop the FSM. */
        return CF_EINVAL;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        struct rft_op *ops = cf_realloc(b->ops, cap * sizeof(*ops));
        if (ops == NULL) {
            return CF_ENOMEM;
        }
        b->ops = ops;
        b->cap = cap;
    }
    struct rft_op *op = &b->ops[b->n];
    memset(op, 0, sizeof(*op));
    op->code = code;
    op->key = cf_strdup(key);
    if (op->key == NULL) {
        return CF_ENOMEM;
    }
    if (code == RFT_OP_PUT || code == RFT_OP_PUT_IF_VERSION || code == RFT_OP_RESTORE) {
        op->val = cf_memdup(val, len);
        if (op->val == NULL) {
            cf_free(op->key);
            return CF_ENOMEM;
        }
        op->len = len;
    }
    op->version = version;
    if (code == RFT_OP_RESTORE && b->min_format < 2) {
        b->min_format = 2;
    }
    b->bytes += klen + len + 24;
    b->n++;
    return CF_OK;
}

int rft_batch_put(struct rft_batch *b, const char *key, const uint8_t *val, size_t len)
{
    return add_op(b, RFT_OP_PUT, key, val, len, 0);
}

int rft_batch_delete(struct rft_batch *b, const char *key)
{
    return add_op(b, RFT_OP_DELETE, key, NULL, 0, 0);
}

int rft_batch_delete_prefix(struct rft_batch *b, const char *prefix)
{
    return add_op(b, RFT_OP_DELETE_PREFIX, prefix, NULL, 0, 0);
}

int rft_batch_delete_if_present(struct rft_batch *b, const char *key)
{
    return add_op(b, RFT_OP_DELETE_IF_PRESENT, key, NULL, 0, 0);
}

int rft_batch_put_if_version(struct rft_batch *b,
                             const char *key,
                             const uint8_t *val,
                             size_t len,
                             uint64_t version)
{
    return add_op(b, RFT_OP_PUT_IF_VERSION, key, val, len, version);
}

int rft_batch_restore(struct rft_batch *b, const char *staging, const char *keep)
{
    size_t slen = strlen(staging);
    size_t klen = strlen(keep);
    if (klen == 0 || klen > RFT_KEY_MAX || strncmp(staging, keep, klen) == 0 ||
        strncmp(staging, keep, slen) == 0) {
        return CF_EINVAL; /* the staging prefix must lie outside what is kept, and vice versa */
    }
    return add_op(b, RFT_OP_RESTORE, staging, (const uint8_t *)keep, klen, 0);
}

/* Encoding ---------------------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    return cf_buf_append(data, p, n) == CF_OK ? 0 : -1;
}

int rft_entry_encode(struct rft_batch *const *batches,
                     size_t n,
                     uint64_t format,
                     struct cf_buf *out)
{
    if (format < RFT_ENTRY_FORMAT_MIN || format > RFT_ENTRY_FORMAT) {
        return CF_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (batches[i]->min_format > format) {
            return CF_EINVAL;
        }
    }
    size_t start = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    int err = 0;
    err |= msgpack_pack_array(&pk, 3);
    err |= msgpack_pack_uint32(&pk, (uint32_t)format);
    err |= msgpack_pack_uint32(&pk, RFT_ENTRY_GROUP);
    err |= msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n && err == 0; i++) {
        const struct rft_batch *b = batches[i];
        err |= msgpack_pack_array(&pk, (uint32_t)b->n);
        for (size_t j = 0; j < b->n && err == 0; j++) {
            const struct rft_op *op = &b->ops[j];
            size_t klen = strlen(op->key);
            switch (op->code) {
                case RFT_OP_PUT:
                case RFT_OP_RESTORE:
                    err |= msgpack_pack_array(&pk, 3);
                    break;
                case RFT_OP_PUT_IF_VERSION:
                    err |= msgpack_pack_array(&pk, 4);
                    break;
                case RFT_OP_DELETE:
                case RFT_OP_DELETE_PREFIX:
                case RFT_OP_DELETE_IF_PRESENT:
                    err |= msgpack_pack_array(&pk, 2);
                    break;
            }
            err |= msgpack_pack_uint32(&pk, (uint32_t)op->code);
            err |= msgpack_pack_str(&pk, klen);
            err |= msgpack_pack_str_body(&pk, op->key, klen);
            if (op->code == RFT_OP_PUT || op->code == RFT_OP_PUT_IF_VERSION ||
                op->code == RFT_OP_RESTORE) {
                err |= msgpack_pack_bin(&pk, op->len);
                err |= msgpack_pack_bin_body(&pk, op->val, op->len);
            }
            if (op->code == RFT_OP_PUT_IF_VERSION) {
                err |= msgpack_pack_uint64(&pk, op->version);
            }
        }
    }
    /* libraft's disk format needs entry buffers of a multiple of 8 bytes (it writes and reads
     * back only the length it was given, but pads to 8 on disk and assumes that the length
     * already was): pad with zero bytes. */
    static const uint8_t zeros[8];
    size_t pad = (8 - (out->len - start) % 8) % 8;
    if (err == 0 && pad > 0) {
        err = cf_buf_append(out, zeros, pad) == CF_OK ? 0 : -1;
    }
    return err == 0 ? CF_OK : CF_ENOMEM;
}

/* Decoding ---------------------------------------------------------------------------------- */

static bool get_uint(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return false;
    }
    *v = o->via.u64;
    return true;
}

static int decode_op(const msgpack_object *o, uint64_t format, struct rft_batch *b)
{
    uint64_t code;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2 ||
        !get_uint(&o->via.array.ptr[0], &code)) {
        return CF_EMALFORMED;
    }
    const msgpack_object *a = o->via.array.ptr;
    uint32_t size = o->via.array.size;
    const msgpack_object *k = &a[1];
    if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 || k->via.str.size > RFT_KEY_MAX ||
        memchr(k->via.str.ptr, '\0', k->via.str.size) != NULL) {
        return CF_EMALFORMED;
    }
    char key[RFT_KEY_MAX + 1];
    memcpy(key, k->via.str.ptr, k->via.str.size);
    key[k->via.str.size] = '\0';
    switch (code) {
        case RFT_OP_PUT:
        case RFT_OP_PUT_IF_VERSION: {
            uint64_t version = 0;
            bool conditional = code == RFT_OP_PUT_IF_VERSION;
            if (size != (conditional ? 4u : 3u) || a[2].type != MSGPACK_OBJECT_BIN ||
                (conditional && !get_uint(&a[3], &version))) {
                return CF_EMALFORMED;
            }
            return add_op(b, (enum rft_op_code)code, key, (const uint8_t *)a[2].via.bin.ptr,
                          a[2].via.bin.size, version);
        }
        case RFT_OP_DELETE:
        case RFT_OP_DELETE_PREFIX:
        case RFT_OP_DELETE_IF_PRESENT:
            if (size != 2) {
                return CF_EMALFORMED;
            }
            return add_op(b, (enum rft_op_code)code, key, NULL, 0, 0);
        case RFT_OP_RESTORE: {
            if (format < 2 || size != 3 || a[2].type != MSGPACK_OBJECT_BIN ||
                a[2].via.bin.size == 0 || a[2].via.bin.size > RFT_KEY_MAX ||
                memchr(a[2].via.bin.ptr, '\0', a[2].via.bin.size) != NULL) {
                return CF_EMALFORMED;
            }
            char keep[RFT_KEY_MAX + 1];
            memcpy(keep, a[2].via.bin.ptr, a[2].via.bin.size);
            keep[a[2].via.bin.size] = '\0';
            int rv = rft_batch_restore(b, key, keep);
            return rv == CF_EINVAL ? CF_EMALFORMED : rv;
        }
        default:
            return CF_EMALFORMED;
    }
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Walks the first msgpack object of p without allocating, checking that every length and
 * element count fits in the bytes left. msgpack-c allocates for an array's declared count
 * before reading its elements, so a 6-byte entry declaring 2^32 elements would make it
 * allocate tens of GiB. Every element takes at least one byte: `pending`, the number of
 * objects still to read, can never exceed the bytes left. */
static bool msgpack_sizes_ok(const uint8_t *p, size_t len)
{
    uint64_t pending = 1;
    size_t off = 0;
    while (pending > 0) {
        if (pending > len - off) {
            return false;
        }
        uint8_t t = p[off++];
        pending--;
        size_t lenbytes = 0; /* big-endian length field that follows t */
        uint64_t fixed = 0;  /* payload bytes known from t alone */
        int kind = 0;        /* 0: payload of `len` bytes, 1: array count, 2: map count */
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            continue;
        } else if (t >= 0x80 && t <= 0x8f) {
            pending += 2u * (t & 0x0fu);
            continue;
        } else if (t >= 0x90 && t <= 0x9f) {
            pending += t & 0x0fu;
            continue;
        } else if (t >= 0xa0 && t <= 0xbf) {
            fixed = t & 0x1fu;
        } else {
            /* bin/str 8,16,32: c4-c6, d9-db; ext 8,16,32: c7-c9 (+1 type byte); numbers:
             * ca-d3; fixext 1..16: d4-d8 (+1 type byte); array16/32: dc/dd; map16/32: de/df. */
            switch (t) {
                case 0xc4:
                case 0xd9:
                    lenbytes = 1;
                    break;
                case 0xc5:
                case 0xda:
                    lenbytes = 2;
                    break;
                case 0xc6:
                case 0xdb:
                    lenbytes = 4;
                    break;
                case 0xc7:
                    lenbytes = 1;
                    fixed = 1;
                    break;
                case 0xc8:
                    lenbytes = 2;
                    fixed = 1;
                    break;
                case 0xc9:
                    lenbytes = 4;
                    fixed = 1;
                    break;
                case 0xca:
                case 0xce:
                case 0xd2:
                    fixed = 4;
                    break;
                case 0xcb:
                case 0xcf:
                case 0xd3:
                    fixed = 8;
                    break;
                case 0xcc:
                case 0xd0:
                    fixed = 1;
                    break;
                case 0xcd:
                case 0xd1:
                    fixed = 2;
                    break;
                case 0xd4:
                case 0xd5:
                case 0xd6:
                case 0xd7:
                case 0xd8: /* fixext 1..16 */
                    fixed = 1 + (1u << (t - 0xd4));
                    break;
                case 0xdc:
                    lenbytes = 2;
                    kind = 1;
                    break;
                case 0xdd:
                    lenbytes = 4;
                    kind = 1;
                    break;
                case 0xde:
                    lenbytes = 2;
                    kind = 2;
                    break;
                case 0xdf:
                    lenbytes = 4;
                    kind = 2;
                    break;
                default:
                    return false; /* 0xc1: never used */
            }
        }
        if (lenbytes > len - off) {
            return false;
        }
        uint64_t n = get_be(p + off, lenbytes);
        off += lenbytes;
        if (kind == 1) {
            pending += n;
            continue;
        }
        if (kind == 2) {
            pending += 2 * n;
            continue;
        }
        if (n > len - off || fixed > len - off - n) {
            return false;
        }
        off += (size_t)(n + fixed);
    }
    return true;
}

/* After the msgpack object: nothing, or 1-7 zero bytes that end on a multiple of 8. */
static bool padding_ok(const uint8_t *p, size_t off, size_t len)
{
    if (off == len) {
        return true;
    }
    if (len - off >= 8 || len % 8 != 0) {
        return false;
    }
    for (size_t i = off; i < len; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

int rft_entry_decode(const uint8_t *p,
                     size_t len,
                     struct rft_batch ***out,
                     size_t *n_out,
                     uint64_t *format_out)
{
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    struct rft_batch **batches = NULL;
    size_t n = 0;
    int rv = CF_EMALFORMED;
    *format_out = 0;
    if (!msgpack_sizes_ok(p, len) ||
        msgpack_unpack_next(&u, (const char *)p, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        !padding_ok(p, off, len)) {
        goto out;
    }
    const msgpack_object *root = &u.data;
    uint64_t format;
    uint64_t type;
    /* The version comes first and decides the shape of the rest: a later format may have a
     * different number of fields, and must still be reported as a version to upgrade for. */
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 1 ||
        !get_uint(&root->via.array.ptr[0], &format)) {
        goto out;
    }
    *format_out = format;
    if (format < RFT_ENTRY_FORMAT_MIN || format > RFT_ENTRY_FORMAT) {
        rv = CF_EVERSION;
        goto out;
    }
    if (root->via.array.size != 3 || !get_uint(&root->via.array.ptr[1], &type)) {
        goto out;
    }
    if (type != RFT_ENTRY_GROUP) {
        rv = CF_EVERSION;
        goto out;
    }
    const msgpack_object *g = &root->via.array.ptr[2];
    if (g->type != MSGPACK_OBJECT_ARRAY) {
        goto out;
    }
    batches = cf_calloc(g->via.array.size ? g->via.array.size : 1, sizeof(*batches));
    if (batches == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < g->via.array.size; i++) {
        const msgpack_object *bo = &g->via.array.ptr[i];
        if (bo->type != MSGPACK_OBJECT_ARRAY) {
            goto out;
        }
        batches[n] = rft_batch_new();
        if (batches[n] == NULL) {
            rv = CF_ENOMEM;
            goto out;
        }
        n++;
        for (uint32_t j = 0; j < bo->via.array.size; j++) {
            int orv = decode_op(&bo->via.array.ptr[j], format, batches[n - 1]);
            if (orv != CF_OK) {
                rv = orv;
                goto out;
            }
        }
    }
    *out = batches;
    *n_out = n;
    batches = NULL;
    n = 0;
    rv = CF_OK;
out:
    for (size_t i = 0; i < n; i++) {
        rft_batch_free(batches[i]);
    }
    cf_free(batches);
    msgpack_unpacked_destroy(&u);
    return rv;
}
