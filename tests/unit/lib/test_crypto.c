/*
 * Unit tests for lib/crypto.c against published vectors: RFC 4648 (hex, base64), FIPS 180-2
 * (SHA-256), RFC 4231 (HMAC-SHA-256), the GCM specification's AES-256 test cases 13, 14 and 16
 * (McGrew and Viega), plus the refusal of every kind of bad input, tampering, and cloaking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crypto.h"
#include "lib/err.h"
#include "lib/mem.h"

/* Decodes a hex literal from a test vector into a fresh buffer (cf_free). */
static uint8_t *unhex(const char *s, size_t *len)
{
    size_t cap = strlen(s) / 2;
    uint8_t *p = cf_malloc(cap);
    assert_non_null(p);
    assert_int_equal(cf_hex_decode(s, strlen(s), p, cap, len), CF_OK);
    return p;
}

static void test_hex_rfc4648(void **state)
{
    (void)state;
    char out[13];
    cf_hex_encode((const uint8_t *)"foobar", 6, out);
    assert_string_equal(out, "666f6f626172");
    cf_hex_encode((const uint8_t *)"", 0, out);
    assert_string_equal(out, "");
    uint8_t buf[8];
    size_t n = 99;
    assert_int_equal(cf_hex_decode("666F6F626172", 12, buf, sizeof(buf), &n), CF_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(buf, "foobar", 6);
    assert_int_equal(cf_hex_decode("666f6F626172", 12, buf, sizeof(buf), &n), CF_OK);
    assert_memory_equal(buf, "foobar", 6);
    assert_int_equal(cf_hex_decode("", 0, buf, sizeof(buf), &n), CF_OK);
    assert_int_equal(n, 0);
    /* Every byte value round-trips. */
    uint8_t all[256];
    char allhex[513];
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
    }
    cf_hex_encode(all, 256, allhex);
    assert_int_equal(strlen(allhex), 512);
    assert_memory_equal(allhex, "000102", 6);
    assert_memory_equal(allhex + 504, "fcfdfeff", 8);
    uint8_t back[256];
    assert_int_equal(cf_hex_decode(allhex, 512, back, sizeof(back), &n), CF_OK);
    assert_memory_equal(back, all, 256);
}

static void test_hex_bad_input(void **state)
{
    (void)state;
    uint8_t buf[4];
    size_t n = 0;
    assert_int_equal(cf_hex_decode("abc", 3, buf, sizeof(buf), &n), CF_EMALFORMED);
    assert_int_equal(cf_hex_decode("0102030405", 10, buf, sizeof(buf), &n), CF_ETOOBIG);
    /* Characters just outside each accepted range, and other junk. */
    static const char *bad[] = {"0/", "0:", "@0", "G0", "0`", "0g", " 0", "0\n", "0x", "\3770"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cf_hex_decode(bad[i], 2, buf, sizeof(buf), &n), CF_EMALFORMED);
    }
    char two[3] = {0};
    for (int c = 0; c < 256; c++) {
        two[0] = 'a';
        two[1] = (char)c;
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        assert_int_equal(cf_hex_decode(two, 2, buf, sizeof(buf), &n), ok ? CF_OK : CF_EMALFORMED);
    }
    /* An embedded NUL counts as a bad digit, not a terminator. */
    assert_int_equal(cf_hex_decode("00\0000", 4, buf, sizeof(buf), &n), CF_EMALFORMED);
}

/* The leak checks below rely on the count being kept in unit tests (mem_track.c). */
static void test_mem_live_counts(void **state)
{
    (void)state;
    long live = cf_mem_live();
    char *a = cf_malloc(8);
    char *b = cf_strdup("x");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(cf_mem_live(), live + 2);
    cf_free(a);
    cf_free(b);
    assert_int_equal(cf_mem_live(), live);
}

static void test_base64_rfc4648(void **state)
{
    (void)state;
    static const char *vec[][2] = {{"", ""},
                                   {"f", "Zg=="},
                                   {"fo", "Zm8="},
                                   {"foo", "Zm9v"},
                                   {"foob", "Zm9vYg=="},
                                   {"fooba", "Zm9vYmE="},
                                   {"foobar", "Zm9vYmFy"}};
    long live = cf_mem_live();
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char *enc = cf_base64_encode((const uint8_t *)vec[i][0], strlen(vec[i][0]));
        assert_non_null(enc);
        assert_string_equal(enc, vec[i][1]);
        cf_free(enc);
        uint8_t *dec = NULL;
        size_t n = 99;
        assert_int_equal(cf_base64_decode(vec[i][1], strlen(vec[i][1]), &dec, &n), CF_OK);
        assert_non_null(dec);
        assert_int_equal(n, strlen(vec[i][0]));
        assert_memory_equal(dec, vec[i][0], n);
        cf_free(dec);
    }
    /* The whole alphabet, including '+' and '/'. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
    }
    char *enc = cf_base64_encode(all, 48);
    assert_string_equal(enc, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v");
    cf_free(enc);
    enc = cf_base64_encode(all + 208, 48);
    assert_string_equal(enc, "0NHS09TV1tfY2drb3N3e3+Dh4uPk5ebn6Onq6+zt7u/w8fLz9PX29/j5+vv8/f7/");
    cf_free(enc);
    for (size_t len = 0; len <= 256; len++) {
        enc = cf_base64_encode(all, len);
        assert_non_null(enc);
        uint8_t *dec = NULL;
        size_t n = 0;
        assert_int_equal(cf_base64_decode(enc, strlen(enc), &dec, &n), CF_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, all, len);
        cf_free(dec);
        cf_free(enc);
    }
    /* Unused low bits of the last group are ignored, as in Go's StdEncoding. */
    uint8_t *dec = NULL;
    size_t n = 0;
    assert_int_equal(cf_base64_decode("Zh==", 4, &dec, &n), CF_OK);
    assert_int_equal(n, 1);
    assert_int_equal(dec[0], 'f');
    cf_free(dec);
    assert_int_equal(cf_mem_live(), live);
}

static void test_base64_bad_input(void **state)
{
    (void)state;
    static const char *bad[] = {
        "Zg=",  "Zg",     "Z",    "Zg=a", "Z===",     "====",     "Zg==Zg==", "Zm9-",
        "Zm9_", "Zm9v\n", "Zm 9", " Zm9", "Zm9v====", "Zm8=Zm8=", "Zm.v",     "Zm9vYg=\n"};
    long live = cf_mem_live();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *dec = NULL;
        size_t n = 0;
        assert_int_equal(cf_base64_decode(bad[i], strlen(bad[i]), &dec, &n), CF_EMALFORMED);
        assert_null(dec);
    }
    /* Every byte value in the last position: exactly the alphabet and '=' are accepted. */
    char four[5] = "AAA?";
    for (int c = 0; c < 256; c++) {
        four[3] = (char)c;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || c == '=';
        uint8_t *dec = NULL;
        size_t n = 0;
        int rv = cf_base64_decode(four, 4, &dec, &n);
        assert_int_equal(rv, ok ? CF_OK : CF_EMALFORMED);
        cf_free(dec);
    }
    /* NUL inside the given length is a bad character. */
    uint8_t *dec = NULL;
    size_t n = 0;
    assert_int_equal(cf_base64_decode("Zm\0v", 4, &dec, &n), CF_EMALFORMED);
    assert_int_equal(cf_mem_live(), live);
}

static void test_base64_oom(void **state)
{
    (void)state;
    cf_mem_fail_after(1);
    assert_null(cf_base64_encode((const uint8_t *)"foo", 3));
    cf_mem_fail_after(1);
    uint8_t *dec = NULL;
    size_t n = 0;
    assert_int_equal(cf_base64_decode("Zm9v", 4, &dec, &n), CF_ENOMEM);
    cf_mem_fail_after(0);
    assert_null(dec);
}

static void test_sha256_fips(void **state)
{
    (void)state;
    static const char *vec[][2] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        uint8_t md[32];
        char hex[65];
        assert_int_equal(cf_sha256(vec[i][0], strlen(vec[i][0]), md), CF_OK);
        cf_hex_encode(md, 32, hex);
        assert_string_equal(hex, vec[i][1]);
    }
    /* FIPS 180-2 long message: one million 'a'. */
    char *a = cf_malloc(1000000);
    memset(a, 'a', 1000000);
    uint8_t md[32];
    char hex[65];
    assert_int_equal(cf_sha256(a, 1000000, md), CF_OK);
    cf_hex_encode(md, 32, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    cf_free(a);
}

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t key[131];
    uint8_t mac[32];
    char hex[65];
    /* Test case 1. */
    memset(key, 0x0b, 20);
    assert_int_equal(cf_hmac_sha256(key, 20, "Hi There", 8, mac), CF_OK);
    cf_hex_encode(mac, 32, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* Test case 2. */
    const char *d2 = "what do ya want for nothing?";
    assert_int_equal(cf_hmac_sha256((const uint8_t *)"Jefe", 4, d2, strlen(d2), mac), CF_OK);
    cf_hex_encode(mac, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 3. */
    uint8_t d3[50];
    memset(key, 0xaa, 20);
    memset(d3, 0xdd, sizeof(d3));
    assert_int_equal(cf_hmac_sha256(key, 20, d3, sizeof(d3), mac), CF_OK);
    cf_hex_encode(mac, 32, hex);
    assert_string_equal(hex, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    /* Test case 6: key longer than the block size. */
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    memset(key, 0xaa, 131);
    assert_int_equal(cf_hmac_sha256(key, 131, d6, strlen(d6), mac), CF_OK);
    cf_hex_encode(mac, 32, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* Empty key and message (value from Python's hmac module). */
    assert_int_equal(cf_hmac_sha256(NULL, 0, "", 0, mac), CF_OK);
    cf_hex_encode(mac, 32, hex);
    assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* GCM spec test cases 13/14/16 (AES-256): opening the published ciphertext gives the
 * published plaintext, and any other key/AAD/ciphertext is refused. */
static void test_aead_known_answers(void **state)
{
    (void)state;
    static const struct
    {
        const char *key, *iv, *aad, *pt, *ct, *tag;
    } vec[] = {
        {"0000000000000000000000000000000000000000000000000000000000000000",
         "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
        {"0000000000000000000000000000000000000000000000000000000000000000",
         "000000000000000000000000", "", "00000000000000000000000000000000",
         "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
         "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e"
         "2449a6b525b16aedf5aa0de657ba637b39",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b"
         "1056828838c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"},
    };
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        size_t klen, ivlen, aadlen, ptlen, ctlen, taglen;
        uint8_t *key = unhex(vec[i].key, &klen);
        uint8_t *iv = unhex(vec[i].iv, &ivlen);
        uint8_t *aad = unhex(vec[i].aad, &aadlen);
        uint8_t *pt = unhex(vec[i].pt, &ptlen);
        uint8_t *ct = unhex(vec[i].ct, &ctlen);
        uint8_t *tag = unhex(vec[i].tag, &taglen);
        size_t inlen = ivlen + ctlen + taglen;
        uint8_t *in = cf_malloc(inlen);
        memcpy(in, iv, ivlen);
        memcpy(in + ivlen, ct, ctlen);
        memcpy(in + ivlen + ctlen, tag, taglen);
        uint8_t out[64];
        size_t outlen = 99;
        assert_int_equal(cf_aead_open(key, aad, aadlen, in, inlen, out, &outlen), CF_OK);
        assert_int_equal(outlen, ptlen);
        assert_memory_equal(out, pt, ptlen);
        /* Wrong AAD. */
        assert_int_equal(cf_aead_open(key, "x", 1, in, inlen, out, &outlen), CF_EAUTH);
        /* Wrong key. */
        key[31] ^= 0x80;
        assert_int_equal(cf_aead_open(key, aad, aadlen, in, inlen, out, &outlen), CF_EAUTH);
        key[31] ^= 0x80;
        /* Every flipped bit position class: each byte of nonce, ciphertext and tag. */
        for (size_t b = 0; b < inlen; b++) {
            in[b] ^= 0x01;
            assert_int_equal(cf_aead_open(key, aad, aadlen, in, inlen, out, &outlen), CF_EAUTH);
            in[b] ^= 0x01;
        }
        cf_free(in);
        cf_free(key);
        cf_free(iv);
        cf_free(aad);
        cf_free(pt);
        cf_free(ct);
        cf_free(tag);
    }
}

static void test_aead_round_trip(void **state)
{
    (void)state;
    uint8_t key[CF_AEAD_KEY_LEN];
    assert_int_equal(cf_random(key, sizeof(key)), CF_OK);
    static const size_t lens[] = {0, 1, 15, 16, 17, 1000, 65536};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i];
        uint8_t *pt = cf_malloc(len);
        uint8_t *ct = cf_malloc(len + CF_AEAD_OVERHEAD);
        uint8_t *ct2 = cf_malloc(len + CF_AEAD_OVERHEAD);
        uint8_t *back = cf_malloc(len);
        assert_int_equal(cf_random(pt, len), CF_OK);
        assert_int_equal(cf_aead_seal(key, "aad", 3, pt, len, ct), CF_OK);
        assert_int_equal(cf_aead_seal(key, "aad", 3, pt, len, ct2), CF_OK);
        /* Fresh nonce each time. */
        assert_memory_not_equal(ct, ct2, CF_AEAD_NONCE_LEN);
        size_t n = 99;
        assert_int_equal(cf_aead_open(key, "aad", 3, ct, len + CF_AEAD_OVERHEAD, back, &n), CF_OK);
        assert_int_equal(n, len);
        assert_memory_equal(back, pt, len);
        assert_int_equal(cf_aead_open(key, "aaD", 3, ct, len + CF_AEAD_OVERHEAD, back, &n),
                         CF_EAUTH);
        assert_int_equal(cf_aead_open(key, NULL, 0, ct, len + CF_AEAD_OVERHEAD, back, &n),
                         CF_EAUTH);
        /* Truncated by one byte: still long enough to parse, so it is an auth failure. */
        if (len > 0) {
            assert_int_equal(cf_aead_open(key, "aad", 3, ct, len + CF_AEAD_OVERHEAD - 1, back, &n),
                             CF_EAUTH);
        }
        cf_free(pt);
        cf_free(ct);
        cf_free(ct2);
        cf_free(back);
    }
}

static void test_aead_short_input(void **state)
{
    (void)state;
    uint8_t key[CF_AEAD_KEY_LEN] = {0};
    uint8_t in[CF_AEAD_OVERHEAD] = {0};
    uint8_t out[1];
    size_t n = 0;
    for (size_t len = 0; len < CF_AEAD_OVERHEAD; len++) {
        assert_int_equal(cf_aead_open(key, NULL, 0, in, len, out, &n), CF_EMALFORMED);
    }
    /* Exactly the overhead is a well-formed (empty) message that fails authentication. */
    assert_int_equal(cf_aead_open(key, NULL, 0, in, CF_AEAD_OVERHEAD, out, &n), CF_EAUTH);
}

static void test_random_and_uuid(void **state)
{
    (void)state;
    uint8_t a[32] = {0};
    uint8_t b[32] = {0};
    assert_int_equal(cf_random(a, sizeof(a)), CF_OK);
    assert_int_equal(cf_random(b, sizeof(b)), CF_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(cf_random(NULL, 0), CF_OK);
    char u1[37];
    char u2[37];
    for (int round = 0; round < 50; round++) {
        assert_int_equal(cf_uuid_v4(u1), CF_OK);
        assert_int_equal(strlen(u1), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                assert_int_equal(u1[i], '-');
            } else {
                assert_true((u1[i] >= '0' && u1[i] <= '9') || (u1[i] >= 'a' && u1[i] <= 'f'));
            }
        }
        assert_int_equal(u1[14], '4');
        assert_non_null(strchr("89ab", u1[19]));
    }
    assert_int_equal(cf_uuid_v4(u2), CF_OK);
    assert_string_not_equal(u1, u2);
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_int_equal(cf_ct_equal("abcd", "abcd", 4), 1);
    assert_int_equal(cf_ct_equal("abcd", "abce", 4), 0);
    assert_int_equal(cf_ct_equal("xbcd", "abcd", 4), 0);
    assert_int_equal(cf_ct_equal("abcd", "abce", 3), 1);
    assert_int_equal(cf_ct_equal("a", "b", 0), 1);
}

static void test_cloak(void **state)
{
    (void)state;
    long live = cf_mem_live();
    const uint8_t secret[] = "the unseal key, 32 bytes long!!";
    struct cf_cloak *c = cf_cloak_new(secret, sizeof(secret));
    assert_non_null(c);
    for (int i = 0; i < 3; i++) {
        struct cf_secret *s = NULL;
        assert_int_equal(cf_cloak_open(c, &s), CF_OK);
        assert_int_equal(s->len, sizeof(secret));
        assert_memory_equal(s->data, secret, sizeof(secret));
        cf_secret_free(s);
    }
    cf_cloak_free(c);
    cf_cloak_free(NULL);
    /* Empty secret. */
    c = cf_cloak_new(NULL, 0);
    assert_non_null(c);
    struct cf_secret *s = NULL;
    assert_int_equal(cf_cloak_open(c, &s), CF_OK);
    assert_int_equal(s->len, 0);
    cf_secret_free(s);
    cf_cloak_free(c);
    assert_int_equal(cf_mem_live(), live);
}

static void test_cloak_fault_injection(void **state)
{
    (void)state;
    long live = cf_mem_live();
    const uint8_t secret[16] = {1, 2, 3};
    struct cf_cloak *c = NULL;
    unsigned long n;
    for (n = 1; n < 50 && c == NULL; n++) {
        cf_mem_fail_after(n);
        c = cf_cloak_new(secret, sizeof(secret));
        cf_mem_fail_after(0);
        if (c == NULL) {
            assert_int_equal(cf_mem_live(), live);
        }
    }
    assert_non_null(c);
    assert_true(n > 2);
    struct cf_secret *s = NULL;
    cf_mem_fail_after(1);
    assert_int_equal(cf_cloak_open(c, &s), CF_ENOMEM);
    cf_mem_fail_after(0);
    assert_null(s);
    assert_int_equal(cf_cloak_open(c, &s), CF_OK);
    assert_memory_equal(s->data, secret, sizeof(secret));
    cf_secret_free(s);
    cf_cloak_free(c);
    assert_int_equal(cf_mem_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_rfc4648),
        cmocka_unit_test(test_hex_bad_input),
        cmocka_unit_test(test_mem_live_counts),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_bad_input),
        cmocka_unit_test(test_base64_oom),
        cmocka_unit_test(test_sha256_fips),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_aead_known_answers),
        cmocka_unit_test(test_aead_round_trip),
        cmocka_unit_test(test_aead_short_input),
        cmocka_unit_test(test_random_and_uuid),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_cloak),
        cmocka_unit_test(test_cloak_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
