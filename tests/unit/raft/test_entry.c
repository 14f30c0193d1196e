/*
 * Unit tests for raft/entry.c: batch builders, the GROUP entry round trip with every op code,
 * and every way rft_entry_decode refuses an entry (malformed msgpack, trailing bytes, wrong
 * array sizes and types, unknown op codes, bad keys and values: CF_EMALFORMED; an unknown
 * format version or entry type: CF_EVERSION with the version reported). Allocation failures
 * are injected into encode and decode (rule T3); every test checks cf_mem_live() for leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "raft/entry.h"
#include "raft/store.h"

static void check_equal(const struct rft_batch *a, const struct rft_batch *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct rft_op *x = &a->ops[i];
        const struct rft_op *y = &b->ops[i];
        assert_int_equal(x->code, y->code);
        assert_string_equal(x->key, y->key);
        assert_int_equal(x->len, y->len);
        if (x->len > 0) {
            assert_memory_equal(x->val, y->val, x->len);
        }
        assert_int_equal(x->version, y->version);
        if (x->code == RFT_OP_PUT || x->code == RFT_OP_PUT_IF_VERSION ||
            x->code == RFT_OP_RESTORE) {
            assert_non_null(y->val);
        } else {
            assert_null(y->val);
        }
    }
}

static void free_batches(struct rft_batch **b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rft_batch_free(b[i]);
    }
    cf_free(b);
}

/* Three batches covering every op code, NUL bytes in values, an empty value and an empty
 * batch. */
static void build_batches(struct rft_batch *b[4])
{
    static const uint8_t bin[] = {0, 1, 0, 0xff, 0};
    char long_key[RFT_KEY_MAX + 1];
    memset(long_key, 'k', RFT_KEY_MAX);
    long_key[RFT_KEY_MAX] = '\0';
    for (int i = 0; i < 4; i++) {
        b[i] = rft_batch_new();
        assert_non_null(b[i]);
    }
    assert_int_equal(rft_batch_put(b[0], "logical/a/x", bin, sizeof(bin)), CF_OK);
    assert_int_equal(rft_batch_put(b[0], "empty", NULL, 0), CF_OK);
    assert_int_equal(rft_batch_delete(b[0], "logical/a/y"), CF_OK);
    assert_int_equal(rft_batch_delete_prefix(b[0], "logical/b/"), CF_OK);
    assert_int_equal(rft_batch_put(b[0], long_key, (const uint8_t *)"v", 1), CF_OK);
    assert_int_equal(rft_batch_delete_if_present(b[1], "sys/wrapping/t1"), CF_OK);
    assert_int_equal(rft_batch_put_if_version(b[1], "cas/1", (const uint8_t *)"v1", 2, 0), CF_OK);
    assert_int_equal(rft_batch_put_if_version(b[1], "cas/2", bin, 3, UINT64_MAX), CF_OK);
    assert_int_equal(rft_batch_put_if_version(b[1], "cas/3", NULL, 0, 7), CF_OK);
    assert_int_equal(rft_batch_put(b[3], "\xc3\xa9t\xc3\xa9", (const uint8_t *)"u", 1), CF_OK);
    assert_int_equal(rft_batch_count(b[0]), 5);
    assert_int_equal(rft_batch_count(b[1]), 4);
    assert_int_equal(rft_batch_count(b[2]), 0);
}

static void encode(struct rft_batch *const *b, size_t n, struct cf_buf *out)
{
    cf_buf_init(out);
    assert_int_equal(rft_entry_encode(b, n, RFT_ENTRY_FORMAT_MIN, out), CF_OK);
}

static void test_round_trip(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_batch *b[4];
    build_batches(b);
    struct cf_buf out;
    encode(b, 4, &out);
    assert_int_equal(out.len % 8, 0); /* padded for libraft */
    /* [1, 1, [...]] */
    assert_int_equal(out.data[0], 0x93);
    assert_int_equal(out.data[1], 0x01);
    assert_int_equal(out.data[2], 0x01);

    struct rft_batch **d = NULL;
    size_t n = 0;
    uint64_t format = 99;
    assert_int_equal(rft_entry_decode(out.data, out.len, &d, &n, &format), CF_OK);
    assert_int_equal(format, RFT_ENTRY_FORMAT_MIN);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < 4; i++) {
        check_equal(b[i], d[i]);
    }
    /* Re-encoding the decoded batches gives the same bytes. */
    struct cf_buf again;
    encode(d, n, &again);
    assert_int_equal(again.len, out.len);
    assert_memory_equal(again.data, out.data, out.len);
    cf_buf_close(&again);
    free_batches(d, n);

    /* A group of no batches. */
    struct cf_buf none;
    encode(NULL, 0, &none);
    assert_int_equal(rft_entry_decode(none.data, none.len, &d, &n, &format), CF_OK);
    assert_int_equal(n, 0);
    cf_free(d);
    cf_buf_close(&none);

    cf_buf_close(&out);
    for (int i = 0; i < 4; i++) {
        rft_batch_free(b[i]);
    }
    rft_batch_free(NULL);
    assert_int_equal(cf_mem_live(), live);
}

static void test_builder_refuses_bad_keys(void **state)
{
    (void)state;
    long live = cf_mem_live();
    char too_long[RFT_KEY_MAX + 2];
    memset(too_long, 'k', RFT_KEY_MAX + 1);
    too_long[RFT_KEY_MAX + 1] = '\0';
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(rft_batch_put(b, "", (const uint8_t *)"v", 1), CF_EINVAL);
    assert_int_equal(rft_batch_delete(b, ""), CF_EINVAL);
    assert_int_equal(rft_batch_delete_prefix(b, ""), CF_EINVAL);
    assert_int_equal(rft_batch_delete_if_present(b, ""), CF_EINVAL);
    assert_int_equal(rft_batch_put_if_version(b, "", NULL, 0, 0), CF_EINVAL);
    assert_int_equal(rft_batch_put(b, too_long, (const uint8_t *)"v", 1), CF_EINVAL);
    assert_int_equal(rft_batch_delete_prefix(b, too_long), CF_EINVAL);
    assert_int_equal(rft_batch_count(b), 0);
    assert_int_equal(b->bytes, 0);
    rft_batch_free(b);
    assert_int_equal(cf_mem_live(), live);
}

/* Hand-built entries ------------------------------------------------------------------------ */

struct mp
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void mp_init(struct mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(struct mp *m, const char *s, size_t n)
{
    msgpack_pack_str(&m->pk, n);
    msgpack_pack_str_body(&m->pk, s, n);
}

static void mp_bin(struct mp *m, const char *s, size_t n)
{
    msgpack_pack_bin(&m->pk, n);
    msgpack_pack_bin_body(&m->pk, s, n);
}

/* Starts [format, type, [ [ <one op, written by the caller> ] ] ]. */
static void mp_one_op(struct mp *m)
{
    mp_init(m);
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 1);
    msgpack_pack_uint32(&m->pk, RFT_ENTRY_GROUP);
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 1);
}

/* Decodes and expects refusal with `want`; returns the format reported. */
static uint64_t refuse(const void *p, size_t len, int want)
{
    long live = cf_mem_live();
    struct rft_batch **d = (struct rft_batch **)0x1;
    size_t n = 12345;
    uint64_t format = 99;
    int rv = rft_entry_decode(p, len, &d, &n, &format);
    assert_int_equal(rv, want);
    assert_ptr_equal(d, (struct rft_batch **)0x1); /* outputs untouched on failure */
    assert_int_equal(n, 12345);
    assert_int_equal(cf_mem_live(), live);
    return format;
}

static void refuse_mp(struct mp *m, int want)
{
    refuse(m->sb.data, m->sb.size, want);
    msgpack_sbuffer_destroy(&m->sb);
}

static void test_malformed(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_batch *b[4];
    build_batches(b);
    struct cf_buf out;
    encode(b, 4, &out);

    /* The msgpack object ends with the last value byte ('u'); zero padding follows. */
    size_t obj = out.len;
    while (out.data[obj - 1] == 0) {
        obj--;
    }
    assert_int_equal(out.data[obj - 1], 'u');
    assert_true(out.len - obj < 8);
    /* Truncated at every length: refused, except the bare object without its padding. */
    for (size_t n = 0; n < out.len; n++) {
        if (n == obj) {
            struct rft_batch **d;
            size_t nd;
            uint64_t format;
            assert_int_equal(rft_entry_decode(out.data, n, &d, &nd, &format), CF_OK);
            free_batches(d, nd);
            continue;
        }
        refuse(out.data, n, CF_EMALFORMED);
    }
    /* Trailing bytes: anything but zero padding that ends on a multiple of 8. */
    uint8_t *longer = cf_calloc(1, out.len + 16);
    memcpy(longer, out.data, out.len);
    refuse(longer, out.len + 8, CF_EMALFORMED); /* 8 or more zero bytes */
    refuse(longer, out.len + 1, CF_EMALFORMED);
    longer[out.len] = 0xc0;
    refuse(longer, out.len + 1, CF_EMALFORMED);
    assert_true(obj < out.len); /* this entry needs padding */
    longer[out.len - 1] = 1;    /* non-zero padding */
    refuse(longer, out.len, CF_EMALFORMED);
    cf_free(longer);
    /* Declared sizes far beyond the input (found by fuzz_raft_entry: msgpack-c allocated
     * 17 GB for this 26-byte input before noticing it ends). */
    refuse("\x93\x01\x01\x91\xdd\x1b\x77\xae\xe4\x73/wrapping/tok\0\0\0", 26, CF_EMALFORMED);
    refuse("\x93\x01\x01\xdd\xff\xff\xff\xff", 8, CF_EMALFORMED);
    refuse("\x93\x01\x01\xdf\xff\xff\xff\xff", 8, CF_EMALFORMED);
    refuse("\x93\x01\x01\xc6\xff\xff\xff\xff", 8, CF_EMALFORMED);
    refuse(
        "\x93\x01\x01\xdb\x00\x00\x00\x09"
        "abc",
        11, CF_EMALFORMED);
    refuse("\x93\x01\x01\xc9\x00\x00\x00\x01\x05", 9, CF_EMALFORMED);
    refuse("\x93\x01\x01\xd8\x05", 5, CF_EMALFORMED);
    /* Bytes that are not msgpack at all. */
    refuse("\xc1", 1, CF_EMALFORMED);
    refuse("\x93\x01\x01\xc1", 4, CF_EMALFORMED);

    struct mp m;
    /* Root not an array; wrong root sizes; format or type not an unsigned integer. */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 1);
    refuse_mp(&m, CF_EMALFORMED);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    refuse_mp(&m, CF_EMALFORMED);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_int32(&m.pk, -1);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_array(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    mp_str(&m, "1", 1);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_array(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_true(&m.pk);
    msgpack_pack_array(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    /* Group, batch or op not an array. */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_map(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    refuse_mp(&m, CF_EMALFORMED);
    mp_one_op(&m);
    mp_str(&m, "key", 3);
    refuse_mp(&m, CF_EMALFORMED);

    /* Ops: wrong sizes for each code. */
    mp_one_op(&m);
    msgpack_pack_array(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    mp_one_op(&m);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, RFT_OP_DELETE);
    refuse_mp(&m, CF_EMALFORMED);
    mp_one_op(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, RFT_OP_PUT);
    mp_str(&m, "k", 1);
    refuse_mp(&m, CF_EMALFORMED);
    mp_one_op(&m);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, RFT_OP_PUT);
    mp_str(&m, "k", 1);
    mp_bin(&m, "v", 1);
    msgpack_pack_uint32(&m.pk, 0);
    refuse_mp(&m, CF_EMALFORMED);
    mp_one_op(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, RFT_OP_PUT_IF_VERSION);
    mp_str(&m, "k", 1);
    mp_bin(&m, "v", 1);
    refuse_mp(&m, CF_EMALFORMED);
    static const enum rft_op_code two[] = {RFT_OP_DELETE, RFT_OP_DELETE_PREFIX,
                                           RFT_OP_DELETE_IF_PRESENT};
    for (size_t i = 0; i < 3; i++) {
        mp_one_op(&m);
        msgpack_pack_array(&m.pk, 3);
        msgpack_pack_uint32(&m.pk, two[i]);
        mp_str(&m, "k", 1);
        mp_bin(&m, "v", 1);
        refuse_mp(&m, CF_EMALFORMED);
    }
    /* Unknown op codes, and a code that is not an unsigned integer. */
    static const int64_t codes[] = {0, 6, 255, 1LL << 40};
    for (size_t i = 0; i < 4; i++) {
        mp_one_op(&m);
        msgpack_pack_array(&m.pk, 2);
        msgpack_pack_uint64(&m.pk, (uint64_t)codes[i]);
        mp_str(&m, "k", 1);
        refuse_mp(&m, CF_EMALFORMED);
    }
    mp_one_op(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int32(&m.pk, -2);
    mp_str(&m, "k", 1);
    refuse_mp(&m, CF_EMALFORMED);
    /* Keys: empty, with a NUL, too long, bin instead of str. */
    char long_key[RFT_KEY_MAX + 1];
    memset(long_key, 'k', sizeof(long_key));
    const struct
    {
        const char *p;
        size_t n;
        bool bin;
    } keys[] = {
        {"", 0, false}, {"a\0b", 3, false}, {long_key, RFT_KEY_MAX + 1, false}, {"k", 1, true}};
    for (size_t i = 0; i < 4; i++) {
        mp_one_op(&m);
        msgpack_pack_array(&m.pk, 2);
        msgpack_pack_uint32(&m.pk, RFT_OP_DELETE);
        if (keys[i].bin) {
            mp_bin(&m, keys[i].p, keys[i].n);
        } else {
            mp_str(&m, keys[i].p, keys[i].n);
        }
        refuse_mp(&m, CF_EMALFORMED);
    }
    /* Values: str, nil or integer instead of bin; version not an unsigned integer. */
    for (int i = 0; i < 3; i++) {
        mp_one_op(&m);
        msgpack_pack_array(&m.pk, 3);
        msgpack_pack_uint32(&m.pk, RFT_OP_PUT);
        mp_str(&m, "k", 1);
        if (i == 0) {
            mp_str(&m, "v", 1);
        } else if (i == 1) {
            msgpack_pack_nil(&m.pk);
        } else {
            msgpack_pack_uint32(&m.pk, 5);
        }
        refuse_mp(&m, CF_EMALFORMED);
    }
    for (int i = 0; i < 2; i++) {
        mp_one_op(&m);
        msgpack_pack_array(&m.pk, 4);
        msgpack_pack_uint32(&m.pk, RFT_OP_PUT_IF_VERSION);
        mp_str(&m, "k", 1);
        mp_bin(&m, "v", 1);
        if (i == 0) {
            msgpack_pack_int32(&m.pk, -1);
        } else {
            mp_str(&m, "1", 1);
        }
        refuse_mp(&m, CF_EMALFORMED);
    }
    /* A bad op after good ones in a later batch: everything decoded so far is freed. */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, RFT_OP_PUT);
    mp_str(&m, "a", 1);
    mp_bin(&m, "1", 1);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, RFT_OP_DELETE);
    mp_str(&m, "b", 1);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 9);
    mp_str(&m, "c", 1);
    refuse_mp(&m, CF_EMALFORMED);

    cf_buf_close(&out);
    for (int i = 0; i < 4; i++) {
        rft_batch_free(b[i]);
    }
    assert_int_equal(cf_mem_live(), live);
}

static void test_unknown_version(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct mp m;
    /* The next format with the same shape as this one. */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, RFT_ENTRY_FORMAT + 1);
    msgpack_pack_uint32(&m.pk, RFT_ENTRY_GROUP);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(refuse(m.sb.data, m.sb.size, CF_EVERSION), RFT_ENTRY_FORMAT + 1);
    msgpack_sbuffer_destroy(&m.sb);
    /* The next format with a different shape is still reported as a version, not as malformed. */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 5);
    msgpack_pack_uint32(&m.pk, RFT_ENTRY_FORMAT + 1);
    msgpack_pack_uint32(&m.pk, 7);
    msgpack_pack_map(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(refuse(m.sb.data, m.sb.size, CF_EVERSION), RFT_ENTRY_FORMAT + 1);
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    assert_int_equal(refuse(m.sb.data, m.sb.size, CF_EVERSION), UINT64_MAX);
    msgpack_sbuffer_destroy(&m.sb);
    /* Format 0 was never written. */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, RFT_ENTRY_GROUP);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(refuse(m.sb.data, m.sb.size, CF_EVERSION), 0);
    msgpack_sbuffer_destroy(&m.sb);
    /* Known format, unknown entry type. */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 2);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(refuse(m.sb.data, m.sb.size, CF_EVERSION), 1);
    msgpack_sbuffer_destroy(&m.sb);
    /* Malformed before the version is known: format reported as 0. */
    assert_int_equal(refuse("\x93\xa1x\x01\x90", 5, CF_EMALFORMED), 0);
    assert_int_equal(cf_mem_live(), live);
}

/* RESTORE needs format 2: the encoder refuses to write it in format 1, the decoder refuses to
 * read it from a format-1 entry, and it round-trips in format 2. */
static void test_restore_op_format(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_batch *b = rft_batch_new();
    assert_int_equal(b->min_format, 1);
    assert_int_equal(rft_batch_restore(b, "core/cluster/x/", "core/cluster/"), CF_EINVAL);
    assert_int_equal(rft_batch_restore(b, "core/", "core/cluster/"), CF_EINVAL);
    assert_int_equal(rft_batch_restore(b, "stage/", ""), CF_EINVAL);
    assert_int_equal(rft_batch_count(b), 0);
    assert_int_equal(rft_batch_put(b, "a", (const uint8_t *)"1", 1), CF_OK);
    assert_int_equal(rft_batch_restore(b, "stage/", "keep/"), CF_OK);
    assert_int_equal(b->min_format, 2);
    struct cf_buf out;
    cf_buf_init(&out);
    assert_int_equal(rft_entry_encode(&b, 1, 1, &out), CF_EINVAL);
    assert_int_equal(rft_entry_encode(&b, 1, RFT_ENTRY_FORMAT + 1, &out), CF_EINVAL);
    assert_int_equal(rft_entry_encode(&b, 1, 0, &out), CF_EINVAL);
    assert_int_equal(out.len, 0);
    assert_int_equal(rft_entry_encode(&b, 1, 2, &out), CF_OK);
    struct rft_batch **d = NULL;
    size_t n = 0;
    uint64_t format = 0;
    assert_int_equal(rft_entry_decode(out.data, out.len, &d, &n, &format), CF_OK);
    assert_int_equal(format, 2);
    assert_int_equal(n, 1);
    check_equal(b, d[0]);
    assert_int_equal(d[0]->min_format, 2);
    rft_batch_free(d[0]);
    cf_free(d);
    /* The same bytes with the format number changed to 1: RESTORE is not in format 1. */
    assert_int_equal(out.data[1], 0x02);
    out.data[1] = 0x01;
    assert_int_equal(refuse(out.data, out.len, CF_EMALFORMED), 1);
    cf_buf_close(&out);
    rft_batch_free(b);
    /* A RESTORE whose kept prefix is empty or contains the staging prefix is malformed. */
    struct mp m;
    mp_init(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, RFT_ENTRY_GROUP);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, RFT_OP_RESTORE);
    mp_str(&m, "stage/", 6);
    msgpack_pack_bin(&m.pk, 3);
    msgpack_pack_bin_body(&m.pk, "sta", 3);
    assert_int_equal(refuse(m.sb.data, m.sb.size, CF_EMALFORMED), 2);
    msgpack_sbuffer_destroy(&m.sb);
    assert_int_equal(cf_mem_live(), live);
}

static void test_faults(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct rft_batch *b[4];
    build_batches(b);
    struct cf_buf ref;
    encode(b, 4, &ref);
    for (unsigned long n = 1;; n++) {
        struct cf_buf out;
        cf_buf_init(&out);
        cf_mem_fail_after(n);
        int rv = rft_entry_encode(b, 4, RFT_ENTRY_FORMAT_MIN, &out);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            assert_int_equal(out.len, ref.len);
            assert_memory_equal(out.data, ref.data, ref.len);
            cf_buf_close(&out);
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        cf_buf_close(&out);
    }
    for (unsigned long n = 1;; n++) {
        long before = cf_mem_live();
        struct rft_batch **d = NULL;
        size_t nd = 0;
        uint64_t format;
        cf_mem_fail_after(n);
        int rv = rft_entry_decode(ref.data, ref.len, &d, &nd, &format);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            assert_int_equal(nd, 4);
            free_batches(d, nd);
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        assert_int_equal(cf_mem_live(), before);
    }
    /* Builders under faults leave the batch as it was. */
    struct rft_batch *x = rft_batch_new();
    unsigned long failures = 0;
    for (unsigned long n = 1;; n++) {
        cf_mem_fail_after(n);
        int rv = rft_batch_put(x, "key", (const uint8_t *)"val", 3);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            break;
        }
        failures++;
        assert_int_equal(rv, CF_ENOMEM);
        assert_int_equal(rft_batch_count(x), 0);
        assert_int_equal(x->bytes, 0);
    }
    assert_true(failures >= 2);
    assert_int_equal(rft_batch_count(x), 1);
    rft_batch_free(x);
    cf_mem_fail_after(1);
    assert_null(rft_batch_new());
    cf_mem_fail_after(0);

    cf_buf_close(&ref);
    for (int i = 0; i < 4; i++) {
        rft_batch_free(b[i]);
    }
    assert_int_equal(cf_mem_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_builder_refuses_bad_keys),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_unknown_version),
        cmocka_unit_test(test_restore_op_format),
        cmocka_unit_test(test_restore_op_format),
        cmocka_unit_test(test_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
