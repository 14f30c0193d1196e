/* Unit tests for lib/bip39.c: published-style vectors (cross-checked with Debian's
 * python3-mnemonic), round trips, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/bip39.h"
#include "lib/crypto.h"

struct vector
{
    const char *hex;
    const char *phrase;
};

/* Produced by python3-mnemonic 0.19 (Mnemonic("english").to_mnemonic). */
static const struct vector vectors[] = {
    {"0000000000000000000000000000000000000000000000000000000000000000",
     "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
     "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
     "abandon art"},
    {"7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
     "legal winner thank year wave sausage worth useful legal winner thank year wave sausage "
     "worth useful legal winner thank year wave sausage worth title"},
    {"8080808080808080808080808080808080808080808080808080808080808080",
     "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount "
     "doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless"},
    {"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo "
     "vote"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "abandon amount liar amount expire adjust cage candy arch gather drum bullet absurd math era "
     "live bid rhythm alien crouch range attend journey unaware"},
    {"48ed5fade657faa76151391250b189412721d463aacb1fad7108e5c1b8120b59",
     "employ helmet twin smile leisure father luxury cheese banner machine girl liquid improve "
     "tuition modify floor cabbage high drama slide breeze animal coin cross"},
};

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        uint8_t e[CF_BIP39_ENTROPY];
        size_t n = 0;
        assert_int_equal(cf_hex_decode(vectors[i].hex, 64, e, sizeof(e), &n), CF_OK);
        char phrase[CF_BIP39_PHRASE_MAX];
        assert_int_equal(cf_bip39_encode(e, phrase), CF_OK);
        assert_string_equal(phrase, vectors[i].phrase);
        uint8_t back[CF_BIP39_ENTROPY];
        char errmsg[CF_ERRMSG_SIZE];
        assert_int_equal(cf_bip39_decode(vectors[i].phrase, back, errmsg), CF_OK);
        assert_memory_equal(back, e, sizeof(e));
    }
}

static void test_round_trip_and_spacing(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        uint8_t e[CF_BIP39_ENTROPY];
        uint8_t back[CF_BIP39_ENTROPY];
        char phrase[CF_BIP39_PHRASE_MAX];
        char errmsg[CF_ERRMSG_SIZE];
        assert_int_equal(cf_random(e, sizeof(e)), CF_OK);
        assert_int_equal(cf_bip39_encode(e, phrase), CF_OK);
        assert_true(strlen(phrase) < CF_BIP39_PHRASE_MAX);
        assert_int_equal(cf_bip39_decode(phrase, back, errmsg), CF_OK);
        assert_memory_equal(back, e, sizeof(e));
    }
    uint8_t back[CF_BIP39_ENTROPY];
    char errmsg[CF_ERRMSG_SIZE];
    assert_int_equal(cf_bip39_decode("  ZOO zoo\tzoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo "
                                     "zoo zoo zoo zoo zoo zoo zoo zoo zoo\nVote \n",
                                     back, errmsg),
                     CF_OK);
    assert_int_equal(back[0], 0xff);
}

static void expect_refused(const char *phrase, const char *needle)
{
    uint8_t e[CF_BIP39_ENTROPY];
    memset(e, 0xaa, sizeof(e));
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(cf_bip39_decode(phrase, e, errmsg), CF_EMALFORMED);
    if (strstr(errmsg, needle) == NULL) {
        fail_msg("\"%s\" lacks \"%s\"", errmsg, needle);
    }
    assert_int_equal(e[0], 0xaa); /* nothing written */
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("", "has 0");
    expect_refused(
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo "
        "zoo zoo zoo vote",
        "has 23");
    expect_refused(
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo "
        "zoo zoo zoo zoo zoo vote",
        "has 25");
    expect_refused(
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo "
        "zoo zoo zoo zoo zoo",
        "checksum");
    expect_refused(
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo "
        "zoo zoo zoo zoo qwerty",
        "word 24");
    expect_refused(
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo "
        "zoo zoo zoo zoo abcdefghijklmnopqrstuvwxyz",
        "word 24");
}

static void test_word_list_matches_debian(void **state)
{
    (void)state;
    FILE *f = fopen("/usr/lib/python3/dist-packages/mnemonic/wordlist/english.txt", "r");
    if (f == NULL) {
        skip();
    }
    char line[64];
    size_t i = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        assert_true(i < CF_BIP39_WORDS);
        assert_string_equal(line, cf_bip39_words[i]);
        i++;
    }
    fclose(f);
    assert_int_equal(i, CF_BIP39_WORDS);
    for (i = 1; i < CF_BIP39_WORDS; i++) {
        assert_true(strcmp(cf_bip39_words[i - 1], cf_bip39_words[i]) < 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_round_trip_and_spacing),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_word_list_matches_debian),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
