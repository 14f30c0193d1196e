/* Unit tests for node/seal_static.c and the stanza helpers of node/seal.c: providers, the
 * validation hash, the key file checks, encrypt/decrypt with AAD, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/crypto.h"
#include "lib/mem.h"
#include "node/seal.h"

/* The BIP39 vector for 32 bytes of 0x7f ("legal winner thank year wave sausage worth useful
 * legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth
 * title"); its hash is checked against an independent SHA-256 below. */
static const char *PHRASE =
    "legal winner thank year wave sausage worth useful legal winner "
    "thank year wave sausage worth useful legal winner thank year wave "
    "sausage worth title";

static void stanza(struct node_seal_stanza *st, const char *const *kv)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->type, sizeof(st->type), "static");
    for (size_t i = 0; kv[i] != NULL; i += 2) {
        st->keys[st->n_params] = cf_strdup(kv[i]);
        st->values[st->n_params] = cf_strdup(kv[i + 1]);
        st->n_params++;
    }
}

static char hash_of(const char *phrase, char hex[65])
{
    char msg[CF_ERRMSG_SIZE];
    assert_int_equal(node_seal_static_phrase_hash(phrase, NULL, hex, msg), CF_OK);
    return hex[0];
}

static int open_with(const char *const *kv, struct node_seal **out, char *msg)
{
    struct node_seal_stanza st;
    stanza(&st, kv);
    int rv = node_seal_static_open(&st, out, msg);
    node_seal_stanza_clear(&st);
    return rv;
}

static void test_phrase_hash_and_entropy(void **state)
{
    (void)state;
    char hex[65];
    uint8_t ent[32];
    char msg[CF_ERRMSG_SIZE];
    assert_int_equal(node_seal_static_phrase_hash(PHRASE, ent, hex, msg), CF_OK);
    for (size_t i = 0; i < sizeof(ent); i++) {
        assert_int_equal(ent[i], 0x7f);
    }
    uint8_t h[32];
    char want[65];
    cf_sha256(PHRASE, strlen(PHRASE), h);
    cf_hex_encode(h, sizeof(h), want);
    assert_string_equal(hex, want);
    /* Other spacing and capitals hash the same (canonical form). */
    char loud[400];
    snprintf(loud, sizeof(loud),
             "  LEGAL   winner\tthank year wave sausage worth useful legal "
             "winner thank year wave sausage worth useful legal winner thank "
             "year wave sausage worth TITLE\n");
    char hex2[65];
    assert_int_equal(node_seal_static_phrase_hash(loud, NULL, hex2, msg), CF_OK);
    assert_string_equal(hex, hex2);
    assert_int_equal(node_seal_static_phrase_hash("legal winner", NULL, hex2, msg), CF_EMALFORMED);

    char phrase[CF_BIP39_PHRASE_MAX];
    char gh[65];
    assert_int_equal(node_seal_static_generate(phrase, gh), CF_OK);
    assert_string_equal(gh, (hash_of(phrase, hex2), hex2));
    assert_string_not_equal(phrase, PHRASE);
}

static void test_environment_round_trip(void **state)
{
    (void)state;
    char msg[CF_ERRMSG_SIZE] = "";
    char hex[65];
    hash_of(PHRASE, hex);
    char prefixed[70];
    snprintf(prefixed, sizeof(prefixed), "0X%s", hex);
    for (char *p = prefixed + 2; *p; p++) {
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    }
    setenv("SEAL_UNSEAL_KEY", PHRASE, 1);
    struct node_seal *s = NULL;
    const char *kv[] = {"provider", "environment", "validation_hash", prefixed, NULL};
    assert_int_equal(open_with(kv, &s, msg), CF_OK);
    assert_non_null(s);
    assert_true(s->ops->ready(s));
    assert_string_equal(s->ops->type, "static");

    const uint8_t pt[] = "the unseal key";
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    assert_int_equal(
        node_seal_encrypt(s, (const uint8_t *)"a", 1, pt, sizeof(pt), &ct, &ct_len, msg), CF_OK);
    assert_int_equal(ct_len, 1 + sizeof(pt) + CF_AEAD_OVERHEAD);
    assert_null(memmem(ct, ct_len, pt, sizeof(pt) - 1));
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(node_seal_decrypt(s, (const uint8_t *)"a", 1, ct, ct_len, &out, &out_len, msg),
                     CF_OK);
    assert_int_equal(out_len, sizeof(pt));
    assert_memory_equal(out, pt, sizeof(pt));
    cf_free(out);
    /* Wrong AAD, a flipped byte, an unknown format, a short value. */
    assert_int_equal(node_seal_decrypt(s, (const uint8_t *)"b", 1, ct, ct_len, &out, &out_len, msg),
                     CF_EAUTH);
    ct[ct_len - 1] ^= 1;
    assert_int_equal(node_seal_decrypt(s, (const uint8_t *)"a", 1, ct, ct_len, &out, &out_len, msg),
                     CF_EAUTH);
    ct[ct_len - 1] ^= 1;
    ct[0] = 2;
    assert_int_equal(node_seal_decrypt(s, (const uint8_t *)"a", 1, ct, ct_len, &out, &out_len, msg),
                     CF_EVERSION);
    assert_int_equal(node_seal_decrypt(s, (const uint8_t *)"a", 1, ct, 10, &out, &out_len, msg),
                     CF_ECORRUPT);
    cf_free(ct);
    /* The empty value round-trips too. */
    assert_int_equal(node_seal_encrypt(s, NULL, 0, pt, 0, &ct, &ct_len, msg), CF_OK);
    assert_int_equal(node_seal_decrypt(s, NULL, 0, ct, ct_len, &out, &out_len, msg), CF_OK);
    assert_int_equal(out_len, 0);
    cf_free(out);
    cf_free(ct);
    node_seal_free(s);
    unsetenv("SEAL_UNSEAL_KEY");
}

static void test_refusals(void **state)
{
    (void)state;
    char msg[CF_ERRMSG_SIZE];
    struct node_seal *s = NULL;
    unsetenv("SEAL_UNSEAL_KEY");
    unsetenv("SEAL_UNSEAL_PROVIDER");
    const char *unknown[] = {"provider", "manual", "pin", "1", NULL};
    assert_int_equal(open_with(unknown, &s, msg), CF_EINVAL);
    assert_string_equal(msg, "seal \"static\": unknown field \"pin\"");
    const char *none[] = {NULL};
    assert_int_equal(open_with(none, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "provider is required"));
    const char *env[] = {"provider", "environment", NULL};
    assert_int_equal(open_with(env, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "SEAL_UNSEAL_KEY"));
    const char *manual[] = {"provider", "manual", NULL};
    assert_int_equal(open_with(manual, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "needs validation_hash"));
    const char *badhash[] = {"provider", "manual", "validation_hash", "0xabc", NULL};
    assert_int_equal(open_with(badhash, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "64 hex digits"));
    /* A wrong phrase against a hash, and a wrong checksum word. */
    setenv("SEAL_UNSEAL_KEY", PHRASE, 1);
    const char *wrong[] = {"provider", "environment", "validation_hash",
                           "0000000000000000000000000000000000000000000000000000000000000000",
                           NULL};
    assert_int_equal(open_with(wrong, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "does not match the configured validation hash"));
    char bad[400];
    snprintf(bad, sizeof(bad), "%.*s wrong", (int)(strlen(PHRASE) - 6), PHRASE);
    setenv("SEAL_UNSEAL_KEY", bad, 1);
    assert_int_equal(open_with(env, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "checksum"));
    unsetenv("SEAL_UNSEAL_KEY");
    assert_null(s);
}

static void test_manual_provide_key(void **state)
{
    (void)state;
    char msg[CF_ERRMSG_SIZE];
    char hex[65];
    hash_of(PHRASE, hex);
    struct node_seal *s = NULL;
    const char *kv[] = {"provider", "manual", "validation_hash", hex, NULL};
    assert_int_equal(open_with(kv, &s, msg), CF_OK);
    assert_false(s->ops->ready(s));
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    assert_int_equal(node_seal_encrypt(s, NULL, 0, (const uint8_t *)"x", 1, &ct, &ct_len, msg),
                     CF_ESEALED);
    char other[CF_BIP39_PHRASE_MAX];
    char oh[65];
    node_seal_static_generate(other, oh);
    assert_int_equal(s->ops->provide_key(s, other, msg), CF_EAUTH);
    assert_false(s->ops->ready(s));
    assert_int_equal(s->ops->provide_key(s, "legal winner", msg), CF_EAUTH);
    assert_false(s->ops->ready(s));
    assert_int_equal(s->ops->provide_key(s, PHRASE, msg), CF_OK);
    assert_true(s->ops->ready(s));
    assert_int_equal(node_seal_encrypt(s, NULL, 0, (const uint8_t *)"x", 1, &ct, &ct_len, msg),
                     CF_OK);
    cf_free(ct);
    node_seal_free(s);
}

static void test_key_file_checks(void **state)
{
    (void)state;
    char dir[] = "/tmp/coffer-seal-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/key", dir);
    const char *kv[] = {"provider", "file", "key_file", path, NULL};
    char msg[CF_ERRMSG_SIZE];
    struct node_seal *s = NULL;
    assert_int_equal(open_with(kv, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "cannot open key file"));
    FILE *f = fopen(path, "w");
    fclose(f);
    chmod(path, 0600);
    assert_int_equal(open_with(kv, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "is empty"));
    f = fopen(path, "w");
    fprintf(f, "%s\n", PHRASE);
    fclose(f);
    chmod(path, 0640);
    assert_int_equal(open_with(kv, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "open to group or others (mode 0640)"));
    chmod(path, 0602);
    assert_int_equal(open_with(kv, &s, msg), CF_EINVAL);
    chmod(path, 0400);
    assert_int_equal(open_with(kv, &s, msg), CF_OK);
    assert_true(s->ops->ready(s));
    node_seal_free(s);
    /* SEAL_UNSEAL_KEY_SECRET_PATH overrides key_file; a directory is not a key file. */
    setenv("SEAL_UNSEAL_KEY_SECRET_PATH", dir, 1);
    assert_int_equal(open_with(kv, &s, msg), CF_EINVAL);
    assert_non_null(strstr(msg, "not a regular file"));
    unsetenv("SEAL_UNSEAL_KEY_SECRET_PATH");
    unlink(path);
    rmdir(dir);
}

static void test_open_by_type(void **state)
{
    (void)state;
    char msg[CF_ERRMSG_SIZE];
    struct node_seal_stanza st;
    const char *none[] = {NULL};
    stanza(&st, none);
    snprintf(st.type, sizeof(st.type), "shamir");
    struct node_seal *s = (struct node_seal *)&st; /* must be reset to NULL */
    assert_int_equal(node_seal_open(&st, &s, msg), CF_OK);
    assert_null(s);
    snprintf(st.type, sizeof(st.type), "awskms");
    assert_int_equal(node_seal_open(&st, &s, msg), CF_EUNSUPPORTED);
    assert_non_null(strstr(msg, "awskms"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phrase_hash_and_entropy),
        cmocka_unit_test(test_environment_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_manual_provide_key),
        cmocka_unit_test(test_key_file_checks),
        cmocka_unit_test(test_open_by_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
