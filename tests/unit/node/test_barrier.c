/*
 * Unit tests for node/barrier.c: value round trips, AAD binding to the path, every single-byte
 * tamper, rotation, seal/unseal with right and wrong keys, keyring persistence, version and
 * corruption handling of every blob, concurrent readers, and allocation-failure loops. Some
 * blobs and values are built by hand from docs/formats/barrier.md and keyring.md, so the code
 * is checked against the written formats and not only against itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "node/barrier.h"

static const uint8_t UNSEAL_KEY[BARRIER_KEY_LEN] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20};

struct fixture
{
    struct barrier *b;
    long live; /* cf_mem_live() at setup */
};

static int setup(void **state)
{
    struct fixture *f = cf_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->live = cf_mem_live();
    f->b = barrier_new();
    assert_non_null(f->b);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(barrier_generate(f->b, errmsg), CF_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    barrier_free(f->b);
    assert_int_equal(cf_mem_live(), f->live);
    cf_free(f);
    return 0;
}

/* Encrypts and returns the ciphertext (cf_free). */
static uint8_t *enc(struct barrier *b, const char *path, const char *pt, size_t *len)
{
    uint8_t *ct = NULL;
    assert_int_equal(barrier_encrypt(b, path, (const uint8_t *)pt, strlen(pt), &ct, len), CF_OK);
    assert_int_equal(*len, strlen(pt) + BARRIER_OVERHEAD);
    return ct;
}

/* Decrypts and checks the plaintext. */
static void dec_expect(const struct barrier *b,
                       const char *path,
                       const uint8_t *ct,
                       size_t len,
                       const char *want)
{
    uint8_t *pt = NULL;
    size_t n = 0;
    assert_int_equal(barrier_decrypt(b, path, ct, len, &pt, &n), CF_OK);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(pt, want, n);
    cf_free(pt);
}

static int dec_rv(const struct barrier *b, const char *path, const uint8_t *ct, size_t len)
{
    uint8_t *pt = NULL;
    size_t n = 0;
    int rv = barrier_decrypt(b, path, ct, len, &pt, &n);
    if (rv == CF_OK) {
        cf_free(pt);
    } else {
        assert_null(pt);
    }
    return rv;
}

/* The root key, recovered from the sealed blob as docs/formats/keyring.md describes. */
static void root_key_of(const struct barrier *b, uint8_t root[BARRIER_KEY_LEN])
{
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(barrier_seal_root(b, UNSEAL_KEY, BARRIER_KEY_LEN, &blob, &len), CF_OK);
    assert_int_equal(len, 1 + CF_AEAD_OVERHEAD + BARRIER_KEY_LEN);
    assert_int_equal(blob[0], 1);
    size_t n = 0;
    assert_int_equal(cf_aead_open(UNSEAL_KEY, "core/root-key", 13, blob + 1, len - 1, root, &n),
                     CF_OK);
    assert_int_equal(n, BARRIER_KEY_LEN);
    cf_free(blob);
}

/* Persists both blobs of b. */
static void persist(const struct barrier *b,
                    uint8_t **root,
                    size_t *rootlen,
                    uint8_t **kr,
                    size_t *krlen)
{
    assert_int_equal(barrier_seal_root(b, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen), CF_OK);
    assert_int_equal(barrier_encode_keyring(b, kr, krlen), CF_OK);
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    assert_true(barrier_is_unsealed(f->b));
    static const size_t sizes[] = {0, 1, 16, 100, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *pt = cf_malloc(sizes[i]);
        assert_int_equal(cf_random(pt, sizes[i]), CF_OK);
        uint8_t *ct = NULL;
        size_t ctlen = 0;
        assert_int_equal(barrier_encrypt(f->b, "logical/abc/key", pt, sizes[i], &ct, &ctlen),
                         CF_OK);
        assert_int_equal(ctlen, sizes[i] + BARRIER_OVERHEAD);
        /* Header: version 1, term 1 big-endian. */
        assert_int_equal(ct[0], 1);
        assert_int_equal(ct[1], 0);
        assert_int_equal(ct[2], 0);
        assert_int_equal(ct[3], 0);
        assert_int_equal(ct[4], 1);
        uint8_t *back = NULL;
        size_t n = 99;
        assert_int_equal(barrier_decrypt(f->b, "logical/abc/key", ct, ctlen, &back, &n), CF_OK);
        assert_non_null(back);
        assert_int_equal(n, sizes[i]);
        assert_memory_equal(back, pt, n);
        cf_free(back);
        cf_free(ct);
        cf_free(pt);
    }
    /* A path longer than the stack AAD buffer. */
    char longpath[3000];
    memset(longpath, 'p', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    size_t len = 0;
    uint8_t *ct = enc(f->b, longpath, "value", &len);
    dec_expect(f->b, longpath, ct, len, "value");
    longpath[2000] = 'q';
    assert_int_equal(dec_rv(f->b, longpath, ct, len), CF_EAUTH);
    cf_free(ct);
    /* The same plaintext encrypts differently each time. */
    size_t l1, l2;
    uint8_t *c1 = enc(f->b, "k", "same", &l1);
    uint8_t *c2 = enc(f->b, "k", "same", &l2);
    assert_memory_not_equal(c1, c2, l1);
    cf_free(c1);
    cf_free(c2);
}

static void test_path_mismatch(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    uint8_t *ct = enc(f->b, "sys/token/id/abc", "secret", &len);
    static const char *wrong[] = {"sys/token/id/abd", "sys/token/id/ab",  "sys/token/id/abcd", "",
                                  "SYS/token/id/abc", "sys/token/id/abc "};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        assert_int_equal(dec_rv(f->b, wrong[i], ct, len), CF_EAUTH);
    }
    dec_expect(f->b, "sys/token/id/abc", ct, len, "secret");
    cf_free(ct);
    /* The empty path is a path like any other. */
    ct = enc(f->b, "", "x", &len);
    dec_expect(f->b, "", ct, len, "x");
    assert_int_equal(dec_rv(f->b, "a", ct, len), CF_EAUTH);
    cf_free(ct);
}

static void test_every_byte_tamper(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    uint8_t *ct = enc(f->b, "core/x", "sixteen byte val", &len);
    for (size_t i = 0; i < len; i++) {
        uint8_t orig = ct[i];
        for (int v = 0; v < 256; v++) {
            if (v == orig) {
                continue;
            }
            ct[i] = (uint8_t)v;
            int rv = dec_rv(f->b, "core/x", ct, len);
            if (i == 0) {
                assert_int_equal(rv, CF_EVERSION);
            } else if (i < BARRIER_HEADER_LEN) {
                assert_int_equal(rv, CF_ENOTFOUND);
            } else {
                assert_int_equal(rv, CF_EAUTH);
            }
        }
        ct[i] = orig;
    }
    /* Every truncation. */
    for (size_t l = 0; l < len; l++) {
        int rv = dec_rv(f->b, "core/x", ct, l);
        assert_int_equal(rv, l < BARRIER_OVERHEAD ? CF_ECORRUPT : CF_EAUTH);
    }
    /* An appended byte. */
    uint8_t *longer = cf_malloc(len + 1);
    memcpy(longer, ct, len);
    longer[len] = 0;
    assert_int_equal(dec_rv(f->b, "core/x", longer, len + 1), CF_EAUTH);
    cf_free(longer);
    dec_expect(f->b, "core/x", ct, len, "sixteen byte val");
    cf_free(ct);
}

static void test_rotate(void **state)
{
    struct fixture *f = *state;
    struct barrier_term_info ti;
    barrier_term_info(f->b, &ti);
    assert_int_equal(ti.term, 1);
    assert_int_equal(ti.encryptions, 0);
    assert_true(ti.install_time_ns > 1600000000LL * 1000000000LL);
    size_t l1 = 0;
    uint8_t *c1 = enc(f->b, "a", "one", &l1);
    barrier_term_info(f->b, &ti);
    assert_int_equal(ti.encryptions, 1);

    /* Persist the keyring as it was before the rotation. */
    uint8_t *root = NULL, *kr_old = NULL;
    size_t rootlen = 0, krlen_old = 0;
    persist(f->b, &root, &rootlen, &kr_old, &krlen_old);

    uint32_t term = 0;
    assert_int_equal(barrier_rotate(f->b, &term), CF_OK);
    assert_int_equal(term, 2);
    barrier_term_info(f->b, &ti);
    assert_int_equal(ti.term, 2);
    assert_int_equal(ti.encryptions, 0);
    size_t l2 = 0;
    uint8_t *c2 = enc(f->b, "a", "two", &l2);
    assert_int_equal(c2[4], 2);
    assert_int_equal(c1[4], 1);
    dec_expect(f->b, "a", c1, l1, "one");
    dec_expect(f->b, "a", c2, l2, "two");
    barrier_term_info(f->b, &ti);
    assert_int_equal(ti.encryptions, 1);
    /* Term 2's ciphertext relabelled as term 1 fails: the header is in the AAD. */
    c2[4] = 1;
    assert_int_equal(dec_rv(f->b, "a", c2, l2), CF_EAUTH);
    c2[4] = 2;

    assert_int_equal(barrier_rotate(f->b, &term), CF_OK);
    assert_int_equal(term, 3);
    dec_expect(f->b, "a", c1, l1, "one");
    dec_expect(f->b, "a", c2, l2, "two");

    /* A barrier unsealed from the old keyring reads term 1 but not term 2. */
    struct barrier *old = barrier_new();
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(
        barrier_unseal(old, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr_old, krlen_old, errmsg),
        CF_OK);
    dec_expect(old, "a", c1, l1, "one");
    assert_int_equal(dec_rv(old, "a", c2, l2), CF_ENOTFOUND);
    barrier_free(old);
    cf_free(root);
    cf_free(kr_old);
    cf_free(c1);
    cf_free(c2);
}

static void test_keyring_round_trip(void **state)
{
    struct fixture *f = *state;
    uint32_t term = 0;
    size_t l1 = 0, l2 = 0, l3 = 0;
    uint8_t *c1 = enc(f->b, "p", "t1", &l1);
    assert_int_equal(barrier_rotate(f->b, &term), CF_OK);
    uint8_t *c2 = enc(f->b, "p", "t2", &l2);
    assert_int_equal(barrier_rotate(f->b, &term), CF_OK);
    uint8_t *c3 = enc(f->b, "p", "t3", &l3);
    struct barrier_term_info before;
    barrier_term_info(f->b, &before);

    uint8_t *root = NULL, *kr = NULL;
    size_t rootlen = 0, krlen = 0;
    persist(f->b, &root, &rootlen, &kr, &krlen);
    /* docs/formats/keyring.md: 1 + 28 + (9 + 3 * 44) bytes. */
    assert_int_equal(krlen, 1 + CF_AEAD_OVERHEAD + 9 + 3 * 44);
    assert_int_equal(kr[0], 1);

    struct barrier *b2 = barrier_new();
    assert_false(barrier_is_unsealed(b2));
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(
        barrier_unseal(b2, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, krlen, errmsg), CF_OK);
    assert_true(barrier_is_unsealed(b2));
    struct barrier_term_info after;
    barrier_term_info(b2, &after);
    assert_int_equal(after.term, 3);
    assert_int_equal(after.install_time_ns, before.install_time_ns);
    assert_int_equal(after.encryptions, 0);
    dec_expect(b2, "p", c1, l1, "t1");
    dec_expect(b2, "p", c2, l2, "t2");
    dec_expect(b2, "p", c3, l3, "t3");
    /* The new barrier writes with term 3 and the original reads it. */
    size_t l4 = 0;
    uint8_t *c4 = enc(b2, "p", "t3 again", &l4);
    assert_int_equal(c4[4], 3);
    dec_expect(f->b, "p", c4, l4, "t3 again");
    /* Rotation continues from the restored term. */
    assert_int_equal(barrier_rotate(b2, &term), CF_OK);
    assert_int_equal(term, 4);
    /* The same root key: the re-encoded keyring opens under it. */
    uint8_t r1[BARRIER_KEY_LEN], r2[BARRIER_KEY_LEN];
    root_key_of(f->b, r1);
    root_key_of(b2, r2);
    assert_memory_equal(r1, r2, BARRIER_KEY_LEN);
    /* Unsealing an unsealed barrier is refused. */
    assert_int_equal(
        barrier_unseal(b2, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, krlen, errmsg),
        CF_EINVAL);
    assert_string_equal(errmsg, "barrier is already unsealed");
    barrier_free(b2);
    cf_free(root);
    cf_free(kr);
    cf_free(c1);
    cf_free(c2);
    cf_free(c3);
    cf_free(c4);
}

static void test_wrong_unseal_key(void **state)
{
    struct fixture *f = *state;
    uint8_t *root = NULL, *kr = NULL;
    size_t rootlen = 0, krlen = 0;
    persist(f->b, &root, &rootlen, &kr, &krlen);
    struct barrier *b2 = barrier_new();
    char errmsg[CF_ERRMSG_SIZE] = "";
    uint8_t wrong[BARRIER_KEY_LEN];
    memcpy(wrong, UNSEAL_KEY, sizeof(wrong));
    for (size_t i = 0; i < BARRIER_KEY_LEN; i += 7) {
        wrong[i] ^= 0x40;
        errmsg[0] = '\0';
        assert_int_equal(
            barrier_unseal(b2, wrong, BARRIER_KEY_LEN, root, rootlen, kr, krlen, errmsg), CF_EAUTH);
        assert_string_equal(errmsg, "root key does not decrypt: the unseal key is wrong");
        assert_false(barrier_is_unsealed(b2));
        wrong[i] ^= 0x40;
    }
    /* Wrong key length. */
    assert_int_equal(barrier_unseal(b2, UNSEAL_KEY, 16, root, rootlen, kr, krlen, errmsg),
                     CF_EINVAL);
    assert_false(barrier_is_unsealed(b2));
    size_t n = 0;
    uint8_t *pt = NULL;
    assert_int_equal(barrier_decrypt(b2, "p", root, rootlen, &pt, &n), CF_ESEALED);
    /* Then the right key works. */
    assert_int_equal(
        barrier_unseal(b2, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, krlen, errmsg), CF_OK);
    assert_true(barrier_is_unsealed(b2));
    barrier_free(b2);
    cf_free(root);
    cf_free(kr);
}

static void test_seal_drops_keys(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    uint8_t *ct = enc(f->b, "p", "v", &len);
    uint8_t *root = NULL, *kr = NULL;
    size_t rootlen = 0, krlen = 0;
    persist(f->b, &root, &rootlen, &kr, &krlen);
    barrier_seal(f->b);
    assert_false(barrier_is_unsealed(f->b));
    uint8_t *out = NULL;
    size_t n = 0;
    assert_int_equal(barrier_encrypt(f->b, "p", (const uint8_t *)"v", 1, &out, &n), CF_ESEALED);
    assert_int_equal(barrier_decrypt(f->b, "p", ct, len, &out, &n), CF_ESEALED);
    assert_null(out);
    assert_int_equal(barrier_seal_root(f->b, UNSEAL_KEY, BARRIER_KEY_LEN, &out, &n), CF_ESEALED);
    assert_int_equal(barrier_encode_keyring(f->b, &out, &n), CF_ESEALED);
    uint32_t term = 0;
    assert_int_equal(barrier_rotate(f->b, &term), CF_ESEALED);
    struct barrier_term_info ti = {1, 1, 1};
    barrier_term_info(f->b, &ti);
    assert_int_equal(ti.term, 0);
    assert_int_equal(ti.install_time_ns, 0);
    assert_int_equal(ti.encryptions, 0);
    /* Sealing twice is harmless; unsealing again restores access. */
    barrier_seal(f->b);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(
        barrier_unseal(f->b, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, krlen, errmsg), CF_OK);
    dec_expect(f->b, "p", ct, len, "v");
    /* Generating over an unsealed barrier is refused. */
    assert_int_equal(barrier_generate(f->b, errmsg), CF_EINVAL);
    assert_string_equal(errmsg, "generate keyring: barrier is already unsealed");
    dec_expect(f->b, "p", ct, len, "v");
    cf_free(ct);
    cf_free(root);
    cf_free(kr);
}

static void test_unknown_value_version(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    uint8_t *ct = enc(f->b, "p", "v", &len);
    static const uint8_t versions[] = {0, 2, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        ct[0] = versions[i];
        assert_int_equal(dec_rv(f->b, "p", ct, len), CF_EVERSION);
        /* A lone unknown version byte is reported as such, not as truncation. */
        assert_int_equal(dec_rv(f->b, "p", ct, 1), CF_EVERSION);
    }
    cf_free(ct);
}

/* Unseals a fresh barrier with the fixture's root blob and a given keyring blob. */
static int unseal_with(const uint8_t *root,
                       size_t rootlen,
                       const uint8_t *kr,
                       size_t krlen,
                       char errmsg[CF_ERRMSG_SIZE])
{
    struct barrier *b = barrier_new();
    assert_non_null(b);
    errmsg[0] = '\0';
    int rv = barrier_unseal(b, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, krlen, errmsg);
    assert_true(barrier_is_unsealed(b) == (rv == CF_OK));
    if (rv != CF_OK) {
        assert_true(errmsg[0] != '\0');
    }
    barrier_free(b);
    return rv;
}

static void test_bad_blobs(void **state)
{
    struct fixture *f = *state;
    uint8_t *root = NULL, *kr = NULL;
    size_t rootlen = 0, krlen = 0;
    persist(f->b, &root, &rootlen, &kr, &krlen);
    char errmsg[CF_ERRMSG_SIZE];

    /* Root blob: empty, truncated, overlong, unknown version, tampered. */
    assert_int_equal(unseal_with(NULL, 0, kr, krlen, errmsg), CF_ECORRUPT);
    for (size_t l = 1; l < rootlen; l++) {
        assert_int_equal(unseal_with(root, l, kr, krlen, errmsg), CF_ECORRUPT);
    }
    uint8_t *longer = cf_malloc(rootlen + 1);
    memcpy(longer, root, rootlen);
    longer[rootlen] = 0;
    assert_int_equal(unseal_with(longer, rootlen + 1, kr, krlen, errmsg), CF_ECORRUPT);
    cf_free(longer);
    root[0] = 2;
    assert_int_equal(unseal_with(root, rootlen, kr, krlen, errmsg), CF_EVERSION);
    assert_string_equal(errmsg, "root key blob version 2 is not supported");
    root[0] = 1;
    for (size_t i = 1; i < rootlen; i++) {
        root[i] ^= 0x20;
        assert_int_equal(unseal_with(root, rootlen, kr, krlen, errmsg), CF_EAUTH);
        root[i] ^= 0x20;
    }

    /* Keyring blob: empty, truncated, unknown version, tampered. */
    assert_int_equal(unseal_with(root, rootlen, NULL, 0, errmsg), CF_ECORRUPT);
    for (size_t l = 1; l < krlen; l++) {
        int rv = unseal_with(root, rootlen, kr, l, errmsg);
        assert_int_equal(rv, CF_ECORRUPT);
    }
    kr[0] = 0;
    assert_int_equal(unseal_with(root, rootlen, kr, krlen, errmsg), CF_EVERSION);
    assert_string_equal(errmsg, "keyring blob version 0 is not supported");
    kr[0] = 1;
    for (size_t i = 1; i < krlen; i++) {
        kr[i] ^= 0x01;
        assert_int_equal(unseal_with(root, rootlen, kr, krlen, errmsg), CF_ECORRUPT);
        assert_string_equal(errmsg, "keyring does not decrypt under the root key");
        kr[i] ^= 0x01;
    }

    /* A keyring from another initialisation does not open under this root key. */
    struct barrier *other = barrier_new();
    assert_int_equal(barrier_generate(other, errmsg), CF_OK);
    uint8_t *kr2 = NULL;
    size_t krlen2 = 0;
    assert_int_equal(barrier_encode_keyring(other, &kr2, &krlen2), CF_OK);
    assert_int_equal(unseal_with(root, rootlen, kr2, krlen2, errmsg), CF_ECORRUPT);
    barrier_free(other);
    cf_free(kr2);

    /* Root and keyring blobs swapped. */
    assert_int_equal(unseal_with(kr, krlen, root, rootlen, errmsg), CF_ECORRUPT);

    assert_int_equal(unseal_with(root, rootlen, kr, krlen, errmsg), CF_OK);
    cf_free(root);
    cf_free(kr);
}

/* Builds a keyring blob by hand from docs/formats/keyring.md. */
struct hand_entry
{
    uint32_t term;
    int64_t time;
    uint8_t fill; /* key = 32 bytes of this value */
};

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint8_t *hand_keyring(const uint8_t root[BARRIER_KEY_LEN],
                             uint8_t version,
                             uint32_t active,
                             uint32_t count,
                             const struct hand_entry *e,
                             size_t nentries,
                             size_t extra,
                             size_t *outlen)
{
    size_t ptlen = 9 + nentries * 44 + extra;
    uint8_t *pt = cf_calloc(1, ptlen);
    pt[0] = version;
    be32(pt + 1, active);
    be32(pt + 5, count);
    for (size_t i = 0; i < nentries; i++) {
        uint8_t *q = pt + 9 + i * 44;
        be32(q, e[i].term);
        be32(q + 4, (uint32_t)((uint64_t)e[i].time >> 32));
        be32(q + 8, (uint32_t)e[i].time);
        memset(q + 12, e[i].fill, 32);
    }
    uint8_t *blob = cf_malloc(1 + CF_AEAD_OVERHEAD + ptlen);
    blob[0] = 1;
    assert_int_equal(cf_aead_seal(root, "core/keyring", 12, pt, ptlen, blob + 1), CF_OK);
    cf_free(pt);
    *outlen = 1 + CF_AEAD_OVERHEAD + ptlen;
    return blob;
}

static void test_hand_built_keyring(void **state)
{
    struct fixture *f = *state;
    uint8_t rootkey[BARRIER_KEY_LEN];
    root_key_of(f->b, rootkey);
    uint8_t *root = NULL;
    size_t rootlen = 0;
    assert_int_equal(barrier_seal_root(f->b, UNSEAL_KEY, BARRIER_KEY_LEN, &root, &rootlen), CF_OK);
    char errmsg[CF_ERRMSG_SIZE];
    size_t len = 0;
    uint8_t *kr;

    /* A valid keyring with known keys: terms 5 and 9, active 9. */
    const struct hand_entry good[] = {{5, 1700000000000000000LL, 0xa5}, {9, -1, 0x3c}};
    kr = hand_keyring(rootkey, 1, 9, 2, good, 2, 0, &len);
    struct barrier *b = barrier_new();
    assert_int_equal(barrier_unseal(b, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, len, errmsg),
                     CF_OK);
    cf_free(kr);
    struct barrier_term_info ti;
    barrier_term_info(b, &ti);
    assert_int_equal(ti.term, 9);
    assert_int_equal(ti.install_time_ns, -1);
    /* A value built by hand from docs/formats/barrier.md under term 5's key decrypts. */
    uint8_t key5[32];
    memset(key5, 0xa5, sizeof(key5));
    uint8_t val[5 + CF_AEAD_OVERHEAD + 3] = {1, 0, 0, 0, 5};
    uint8_t aad[5 + 8];
    memcpy(aad, val, 5);
    memcpy(aad + 5, "kv/x/foo", 8);
    assert_int_equal(cf_aead_seal(key5, aad, sizeof(aad), (const uint8_t *)"bar", 3, val + 5),
                     CF_OK);
    dec_expect(b, "kv/x/foo", val, sizeof(val), "bar");
    /* And a value the barrier writes opens by hand under term 9's key. */
    size_t clen = 0;
    uint8_t *c = enc(b, "kv/x/foo", "baz", &clen);
    assert_memory_equal(c, "\x01\x00\x00\x00\x09", 5);
    uint8_t key9[32];
    memset(key9, 0x3c, sizeof(key9));
    memcpy(aad, c, 5);
    uint8_t back[3];
    size_t n = 0;
    assert_int_equal(cf_aead_open(key9, aad, sizeof(aad), c + 5, clen - 5, back, &n), CF_OK);
    assert_memory_equal(back, "baz", 3);
    cf_free(c);
    /* Unknown terms between and around the stored ones. */
    val[4] = 7;
    assert_int_equal(dec_rv(b, "kv/x/foo", val, sizeof(val)), CF_ENOTFOUND);
    val[4] = 4;
    assert_int_equal(dec_rv(b, "kv/x/foo", val, sizeof(val)), CF_ENOTFOUND);
    val[4] = 10;
    assert_int_equal(dec_rv(b, "kv/x/foo", val, sizeof(val)), CF_ENOTFOUND);
    barrier_free(b);

    /* Keyring plaintext version 2. */
    kr = hand_keyring(rootkey, 2, 9, 2, good, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_EVERSION);
    assert_string_equal(errmsg, "keyring version 2 is not supported");
    cf_free(kr);
    /* No keys. */
    kr = hand_keyring(rootkey, 1, 0, 0, NULL, 0, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    /* Count larger than the entries present, smaller, and trailing bytes. */
    kr = hand_keyring(rootkey, 1, 9, 3, good, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    kr = hand_keyring(rootkey, 1, 9, 1, good, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    kr = hand_keyring(rootkey, 1, 9, 2, good, 2, 1, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    kr = hand_keyring(rootkey, 1, 9, 0xffffffffu, good, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    /* Header cut short. */
    {
        uint8_t pt[5] = {1, 0, 0, 0, 9};
        uint8_t blob[1 + CF_AEAD_OVERHEAD + sizeof(pt)];
        blob[0] = 1;
        assert_int_equal(cf_aead_seal(rootkey, "core/keyring", 12, pt, sizeof(pt), blob + 1),
                         CF_OK);
        assert_int_equal(unseal_with(root, rootlen, blob, sizeof(blob), errmsg), CF_ECORRUPT);
        /* Empty plaintext. */
        assert_int_equal(cf_aead_seal(rootkey, "core/keyring", 12, pt, 0, blob + 1), CF_OK);
        assert_int_equal(unseal_with(root, rootlen, blob, 1 + CF_AEAD_OVERHEAD, errmsg),
                         CF_ECORRUPT);
    }
    /* Terms out of order, duplicated, or zero. */
    const struct hand_entry desc[] = {{9, 0, 1}, {5, 0, 2}};
    kr = hand_keyring(rootkey, 1, 5, 2, desc, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    const struct hand_entry dup[] = {{5, 0, 1}, {5, 0, 2}};
    kr = hand_keyring(rootkey, 1, 5, 2, dup, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    const struct hand_entry zero[] = {{0, 0, 1}};
    kr = hand_keyring(rootkey, 1, 0, 1, zero, 1, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    /* Active term not the newest, or absent. */
    kr = hand_keyring(rootkey, 1, 5, 2, good, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    kr = hand_keyring(rootkey, 1, 10, 2, good, 2, 0, &len);
    assert_int_equal(unseal_with(root, rootlen, kr, len, errmsg), CF_ECORRUPT);
    cf_free(kr);
    /* Wrong AAD on an otherwise valid keyring. */
    {
        uint8_t pt[9 + 44] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
        uint8_t blob[1 + CF_AEAD_OVERHEAD + sizeof(pt)];
        blob[0] = 1;
        assert_int_equal(cf_aead_seal(rootkey, "core/root-key", 13, pt, sizeof(pt), blob + 1),
                         CF_OK);
        assert_int_equal(unseal_with(root, rootlen, blob, sizeof(blob), errmsg), CF_ECORRUPT);
        assert_int_equal(cf_aead_seal(rootkey, "core/keyring", 12, pt, sizeof(pt), blob + 1),
                         CF_OK);
        assert_int_equal(unseal_with(root, rootlen, blob, sizeof(blob), errmsg), CF_OK);
    }

    /* The last possible term cannot rotate. */
    const struct hand_entry last[] = {{UINT32_MAX, 0, 7}};
    kr = hand_keyring(rootkey, 1, UINT32_MAX, 1, last, 1, 0, &len);
    b = barrier_new();
    assert_int_equal(barrier_unseal(b, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, len, errmsg),
                     CF_OK);
    uint32_t term = 0;
    assert_int_equal(barrier_rotate(b, &term), CF_ETOOBIG);
    barrier_term_info(b, &ti);
    assert_int_equal(ti.term, UINT32_MAX);
    barrier_free(b);
    cf_free(kr);
    cf_free(root);
}

struct reader_arg
{
    const struct barrier *b;
    const uint8_t *ct;
    size_t len;
    int failures;
};

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    for (int i = 0; i < 2000; i++) {
        uint8_t *pt = NULL;
        size_t n = 0;
        if (barrier_decrypt(a->b, "shared/path", a->ct, a->len, &pt, &n) != CF_OK || n != 5 ||
            memcmp(pt, "hello", 5) != 0) {
            a->failures++;
        }
        cf_free(pt);
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    uint8_t *ct = enc(f->b, "shared/path", "hello", &len);
    pthread_t th[4];
    struct reader_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct reader_arg){f->b, ct, len, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
    }
    /* Meanwhile the owner writes and rotates. */
    for (int i = 0; i < 20; i++) {
        size_t l = 0;
        uint8_t *c = enc(f->b, "other", "w", &l);
        cf_free(c);
        uint32_t term = 0;
        assert_int_equal(barrier_rotate(f->b, &term), CF_OK);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    cf_free(ct);
}

/* Runs every allocating operation with the Nth allocation failing, until all succeed. */
static void test_fault_injection(void **state)
{
    (void)state;
    long live = cf_mem_live();
    bool done = false;
    unsigned long n;
    for (n = 1; n < 1000 && !done; n++) {
        char errmsg[CF_ERRMSG_SIZE] = "";
        struct barrier *b = NULL, *b2 = NULL;
        uint8_t *root = NULL, *kr = NULL, *ct = NULL, *pt = NULL;
        size_t rootlen = 0, krlen = 0, ctlen = 0, ptlen = 0;
        uint32_t term = 0;
        int rv;
        cf_mem_fail_after(n);
        b = barrier_new();
        if (b == NULL) {
            goto next;
        }
        rv = barrier_generate(b, errmsg);
        if (rv != CF_OK) {
            assert_int_equal(rv, CF_ENOMEM);
            assert_true(errmsg[0] != '\0');
            assert_false(barrier_is_unsealed(b));
            goto next;
        }
        rv = barrier_rotate(b, &term);
        if (rv != CF_OK) {
            assert_int_equal(rv, CF_ENOMEM);
            struct barrier_term_info ti;
            barrier_term_info(b, &ti);
            assert_int_equal(ti.term, 1);
            goto next;
        }
        rv = barrier_seal_root(b, UNSEAL_KEY, BARRIER_KEY_LEN, &root, &rootlen);
        if (rv != CF_OK) {
            assert_int_equal(rv, CF_ENOMEM);
            goto next;
        }
        rv = barrier_encode_keyring(b, &kr, &krlen);
        if (rv != CF_OK) {
            assert_int_equal(rv, CF_ENOMEM);
            goto next;
        }
        rv = barrier_encrypt(b, "p", (const uint8_t *)"value", 5, &ct, &ctlen);
        if (rv != CF_OK) {
            assert_int_equal(rv, CF_ENOMEM);
            goto next;
        }
        b2 = barrier_new();
        if (b2 == NULL) {
            goto next;
        }
        rv = barrier_unseal(b2, UNSEAL_KEY, BARRIER_KEY_LEN, root, rootlen, kr, krlen, errmsg);
        if (rv != CF_OK) {
            assert_int_equal(rv, CF_ENOMEM);
            assert_true(errmsg[0] != '\0');
            assert_false(barrier_is_unsealed(b2));
            goto next;
        }
        rv = barrier_decrypt(b2, "p", ct, ctlen, &pt, &ptlen);
        if (rv != CF_OK) {
            assert_int_equal(rv, CF_ENOMEM);
            goto next;
        }
        assert_memory_equal(pt, "value", 5);
        done = true;
    next:
        cf_mem_fail_after(0);
        cf_free(pt);
        cf_free(ct);
        cf_free(kr);
        cf_free(root);
        barrier_free(b2);
        barrier_free(b);
        assert_int_equal(cf_mem_live(), live);
    }
    assert_true(done);
    assert_true(n > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_byte_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_unseal_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_drops_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_value_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_built_keyring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
