/*
 * Unit tests for node/seal_pkcs11.c against a real SoftHSM2 token (no mock): key generation and
 * a second open finding the same key, round trips, CF_EAUTH for a wrong AAD, a wrong key and any
 * flipped byte, CF_EVERSION / CF_ECORRUPT, each config refusal and its message, environment
 * overrides and their order, slot vs token label, concurrent use from 4 threads, recovery when
 * the login is dropped underneath, CF_EIO once the token is deleted while the seal is open, and
 * every allocation failure during open.
 *
 * The group setup makes a temporary SoftHSM2 token directory (SOFTHSM2_CONF) and initializes a
 * token "coffer" with softhsm2-util. Every test is skipped when the SoftHSM2 module or
 * softhsm2-util is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit-1/p11-kit/pkcs11.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "node/seal.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define UTIL "/usr/bin/softhsm2-util"

static bool have_hsm;
static char dir[64];
static char slot_text[32]; /* the slot SoftHSM assigned to token "coffer" */

#define NEED_HSM()       \
    do {                 \
        if (!have_hsm) { \
            skip();      \
        }                \
    } while (0)

/* ---- Token setup ---- */

/* Runs softhsm2-util with args; returns its exit status and (optionally) the slot it printed
 * for --init-token ("... is reassigned to slot 123"). */
static int run_util(const char *args, char *slot, size_t slot_size)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s 2>&1", UTIL, args);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof(line), p) != NULL) {
        const char *at = strstr(line, "to slot ");
        if (slot != NULL && at != NULL) {
            snprintf(slot, slot_size, "%lu", strtoul(at + strlen("to slot "), NULL, 10));
        }
    }
    return pclose(p);
}

static int init_token(const char *label, char *slot, size_t slot_size)
{
    char args[256];
    snprintf(args, sizeof(args), "--init-token --free --label %s --pin 1234 --so-pin 5678", label);
    return run_util(args, slot, slot_size);
}

static const char *const env_names[] = {
    "LIB",       "SLOT",           "TOKEN_LABEL",  "PIN",
    "KEY_LABEL", "HMAC_KEY_LABEL", "KEY_ID",       "HMAC_KEY_ID",
    "MECHANISM", "HMAC_MECHANISM", "GENERATE_KEY", "FORCE_RW_SESSION",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
        char var[64];
        snprintf(var, sizeof(var), "COFFER_HSM_%s", env_names[i]);
        unsetenv(var);
        snprintf(var, sizeof(var), "VAULT_HSM_%s", env_names[i]);
        unsetenv(var);
    }
}

static int group_setup(void **state)
{
    (void)state;
    clear_env();
    if (access(MODULE, R_OK) != 0 || access(UTIL, X_OK) != 0) {
        return 0;
    }
    snprintf(dir, sizeof(dir), "/tmp/cf_seal_pkcs11_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/tokens", dir);
    if (mkdir(path, 0700) != 0) {
        return -1;
    }
    char conf[128];
    snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", path);
    fclose(f);
    setenv("SOFTHSM2_CONF", conf, 1);
    if (init_token("coffer", slot_text, sizeof(slot_text)) != 0 || slot_text[0] == '\0') {
        return -1;
    }
    have_hsm = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
    }
    return 0;
}

struct fixture
{
    long live;
};

static int setup(void **state)
{
    long live = cf_mem_live();
    struct fixture *f = cf_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->live = live;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    clear_env();
    long live = f->live;
    cf_free(f);
    assert_int_equal(cf_mem_live(), live);
    return 0;
}

/* ---- Stanzas ---- */

static void set(struct node_seal_stanza *st, const char *key, const char *value)
{
    for (size_t i = 0; i < st->n_params; i++) {
        if (strcmp(st->keys[i], key) == 0) {
            cf_free(st->values[i]);
            st->values[i] = cf_strdup(value);
            return;
        }
    }
    assert_true(st->n_params < NODE_SEAL_MAX_PARAMS);
    st->keys[st->n_params] = cf_strdup(key);
    st->values[st->n_params] = cf_strdup(value);
    st->n_params++;
}

static void unset(struct node_seal_stanza *st, const char *key)
{
    for (size_t i = 0; i < st->n_params; i++) {
        if (strcmp(st->keys[i], key) == 0) {
            cf_free(st->keys[i]);
            cf_free(st->values[i]);
            st->n_params--;
            st->keys[i] = st->keys[st->n_params];
            st->values[i] = st->values[st->n_params];
            return;
        }
    }
}

/* lib, token_label, pin and key_label set; the key is created when missing. */
static void base(struct node_seal_stanza *st, const char *key_label)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->type, sizeof(st->type), "pkcs11");
    set(st, "lib", MODULE);
    set(st, "token_label", "coffer");
    set(st, "pin", "1234");
    set(st, "key_label", key_label);
    set(st, "generate_key", "true");
}

static struct node_seal *open_ok(struct node_seal_stanza *st)
{
    struct node_seal *s = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = node_seal_pkcs11_open(st, &s, errmsg);
    if (rv != CF_OK) {
        print_error("open: %s: %s\n", cf_strerror(rv), errmsg);
    }
    assert_int_equal(rv, CF_OK);
    assert_non_null(s);
    assert_true(s->ops->ready(s));
    assert_null(s->ops->provide_key);
    assert_string_equal(s->ops->type, "pkcs11");
    return s;
}

/* Expects open to fail with rv and an errmsg containing want. */
static void open_fails(struct node_seal_stanza *st, int want_rv, const char *want)
{
    struct node_seal *s = (struct node_seal *)1;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = node_seal_pkcs11_open(st, &s, errmsg);
    if (rv != want_rv || strstr(errmsg, want) == NULL) {
        print_error("got %s: \"%s\"; want %s: \"%s\"\n", cf_strerror(rv), errmsg,
                    cf_strerror(want_rv), want);
    }
    assert_int_equal(rv, want_rv);
    assert_null(s);
    assert_non_null(strstr(errmsg, want));
}

static void seal_ct(struct node_seal *s,
                    const char *aad,
                    const void *pt,
                    size_t n,
                    uint8_t **ct,
                    size_t *ct_len)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = node_seal_encrypt(s, (const uint8_t *)aad, strlen(aad), pt, n, ct, ct_len, errmsg);
    if (rv != CF_OK) {
        print_error("encrypt: %s\n", errmsg);
    }
    assert_int_equal(rv, CF_OK);
}

/* Decrypts and returns the code; on CF_OK compares with want. */
static int unseal_ct(struct node_seal *s,
                     const char *aad,
                     const uint8_t *ct,
                     size_t ct_len,
                     const void *want,
                     size_t want_len,
                     char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t *pt = (uint8_t *)1;
    size_t pt_len = 99;
    int rv =
        node_seal_decrypt(s, (const uint8_t *)aad, strlen(aad), ct, ct_len, &pt, &pt_len, errmsg);
    if (rv == CF_OK) {
        assert_int_equal(pt_len, want_len);
        if (want_len > 0) {
            assert_memory_equal(pt, want, want_len);
        }
        cf_free(pt);
    } else {
        assert_null(pt);
    }
    return rv;
}

/* ---- Direct PKCS#11 access (the test's own view of the token) ---- */

struct direct
{
    void *dl;
    CK_FUNCTION_LIST_PTR fn;
    bool finalize;
    CK_SESSION_HANDLE h;
};

static void direct_open(struct direct *d)
{
    d->dl = dlopen(MODULE, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(d->dl);
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(d->dl, "C_GetFunctionList");
    assert_non_null(get);
    assert_int_equal(get(&d->fn), CKR_OK);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = d->fn->C_Initialize(&args);
    assert_true(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
    d->finalize = rv == CKR_OK;
    CK_SLOT_ID slot = strtoul(slot_text, NULL, 10);
    assert_int_equal(
        d->fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &d->h), CKR_OK);
    rv = d->fn->C_Login(d->h, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4);
    assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
}

static void direct_close(struct direct *d)
{
    d->fn->C_CloseSession(d->h);
    if (d->finalize) {
        d->fn->C_Finalize(NULL);
    }
    dlclose(d->dl);
}

/* Number of secret keys of type kt with this label; *first (if not NULL) is one of them. */
static CK_ULONG direct_find(struct direct *d,
                            CK_KEY_TYPE kt,
                            const char *label,
                            CK_OBJECT_HANDLE *first)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    assert_int_equal(d->fn->C_FindObjectsInit(d->h, tmpl, 3), CKR_OK);
    CK_OBJECT_HANDLE found[8];
    CK_ULONG n = 0;
    assert_int_equal(d->fn->C_FindObjects(d->h, found, 8, &n), CKR_OK);
    assert_int_equal(d->fn->C_FindObjectsFinal(d->h), CKR_OK);
    if (first != NULL && n > 0) {
        *first = found[0];
    }
    return n;
}

static CK_ULONG direct_count(struct direct *d, CK_KEY_TYPE kt, const char *label)
{
    return direct_find(d, kt, label, NULL);
}

/* The attributes the seal gives a key it creates. */
static void check_created_key(struct direct *d, CK_OBJECT_HANDLE k, bool hmac)
{
    CK_BBOOL token = 0, priv = 0, sensitive = 0, extractable = 1, use1 = 0, use2 = 0;
    CK_ULONG len = 0;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_TOKEN, &token, sizeof(token)},
        {CKA_PRIVATE, &priv, sizeof(priv)},
        {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
        {CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {hmac ? CKA_SIGN : CKA_ENCRYPT, &use1, sizeof(use1)},
        {hmac ? CKA_VERIFY : CKA_DECRYPT, &use2, sizeof(use2)},
    };
    assert_int_equal(d->fn->C_GetAttributeValue(d->h, k, tmpl, 7), CKR_OK);
    assert_true(token && priv && sensitive && !extractable && use1 && use2);
    assert_int_equal(len, 32);
}

static void direct_aes_key(struct direct *d, const char *label)
{
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},   {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},   {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_OBJECT_HANDLE k;
    assert_int_equal(d->fn->C_GenerateKey(d->h, &mech, tmpl, 6, &k), CKR_OK);
}

/* ---- Tests ---- */

static void test_generate_then_find(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "gen");
    set(&st, "generate_key", "false");
    open_fails(&st, CF_ENOTFOUND,
               "seal \"pkcs11\": no key with label \"gen\" on the token; set generate_key = "
               "\"true\" to create it");

    set(&st, "generate_key", "true");
    set(&st, "hmac_key_label", "gen-hmac");
    struct node_seal *s1 = open_ok(&st);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    seal_ct(s1, "core/keyring", "root key", 8, &ct, &ct_len);
    node_seal_free(s1);

    /* The key and the HMAC key are on the token, once each, and not extractable. */
    struct direct d;
    direct_open(&d);
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    assert_int_equal(direct_find(&d, CKK_AES, "gen", &k), 1);
    check_created_key(&d, k, false);
    assert_int_equal(direct_find(&d, CKK_GENERIC_SECRET, "gen-hmac", &k), 1);
    check_created_key(&d, k, true);
    direct_close(&d);

    set(&st, "generate_key", "false");
    struct node_seal *s2 = open_ok(&st);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(unseal_ct(s2, "core/keyring", ct, ct_len, "root key", 8, errmsg), CF_OK);
    node_seal_free(s2);

    /* generate_key = true with the key present finds it instead of making a second one. */
    set(&st, "generate_key", "true");
    struct node_seal *s3 = open_ok(&st);
    assert_int_equal(unseal_ct(s3, "core/keyring", ct, ct_len, "root key", 8, errmsg), CF_OK);
    node_seal_free(s3);
    direct_open(&d);
    assert_int_equal(direct_count(&d, CKK_AES, "gen"), 1);
    direct_close(&d);

    cf_free(ct);
    node_seal_stanza_clear(&st);
}

static void test_round_trip(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "rt");
    struct node_seal *s = open_ok(&st);
    static const size_t sizes[] = {0, 1, 32, 100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *pt = cf_malloc(n + 1);
        assert_non_null(pt);
        for (size_t j = 0; j < n; j++) {
            pt[j] = (uint8_t)(j * 7 + 3);
        }
        uint8_t *a = NULL, *b = NULL;
        size_t a_len = 0, b_len = 0;
        seal_ct(s, "logical/x", pt, n, &a, &a_len);
        seal_ct(s, "logical/x", pt, n, &b, &b_len);
        assert_int_equal(a_len, n + 29);
        assert_int_equal(a[0], 0x01);
        /* Fresh IVs: the same value never seals the same way twice. */
        assert_int_equal(b_len, a_len);
        assert_memory_not_equal(a + 1, b + 1, 12);
        if (n >= 16) {
            assert_memory_not_equal(a + 13, pt, 16); /* not the plaintext */
        }
        char errmsg[CF_ERRMSG_SIZE] = "";
        assert_int_equal(unseal_ct(s, "logical/x", a, a_len, pt, n, errmsg), CF_OK);
        assert_int_equal(unseal_ct(s, "logical/x", b, b_len, pt, n, errmsg), CF_OK);
        cf_free(a);
        cf_free(b);
        cf_free(pt);
    }
    node_seal_free(s);
    node_seal_stanza_clear(&st);
}

static void test_tampering(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "tamper");
    struct node_seal *s = open_ok(&st);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    seal_ct(s, "sys/a", "secret value", 12, &ct, &ct_len);
    char errmsg[CF_ERRMSG_SIZE] = "";

    /* Wrong AAD: the value cannot be moved to another storage key. */
    assert_int_equal(unseal_ct(s, "sys/b", ct, ct_len, NULL, 0, errmsg), CF_EAUTH);
    assert_non_null(strstr(errmsg, "does not authenticate"));
    assert_int_equal(unseal_ct(s, "", ct, ct_len, NULL, 0, errmsg), CF_EAUTH);

    /* Every byte after the format byte is covered: IV, ciphertext, tag. */
    for (size_t i = 1; i < ct_len; i++) {
        ct[i] ^= 0x40;
        assert_int_equal(unseal_ct(s, "sys/a", ct, ct_len, NULL, 0, errmsg), CF_EAUTH);
        ct[i] ^= 0x40;
    }
    /* Truncated by one byte (still long enough to parse): the tag fails. */
    assert_int_equal(unseal_ct(s, "sys/a", ct, ct_len - 1, NULL, 0, errmsg), CF_EAUTH);
    /* And after all that the session pool still works. */
    assert_int_equal(unseal_ct(s, "sys/a", ct, ct_len, "secret value", 12, errmsg), CF_OK);

    /* Format byte. */
    ct[0] = 0x02;
    assert_int_equal(unseal_ct(s, "sys/a", ct, ct_len, NULL, 0, errmsg), CF_EVERSION);
    assert_non_null(strstr(errmsg, "0x02"));
    ct[0] = 0x00;
    assert_int_equal(unseal_ct(s, "sys/a", ct, ct_len, NULL, 0, errmsg), CF_EVERSION);
    ct[0] = 0x01;

    /* Too short to hold the IV and the tag. */
    assert_int_equal(unseal_ct(s, "sys/a", ct, 0, NULL, 0, errmsg), CF_ECORRUPT);
    assert_int_equal(unseal_ct(s, "sys/a", ct, 28, NULL, 0, errmsg), CF_ECORRUPT);
    assert_non_null(strstr(errmsg, "too short"));
    assert_int_equal(unseal_ct(s, "sys/a", ct, 1, NULL, 0, errmsg), CF_ECORRUPT);

    /* A different key (another label on the same token). */
    struct node_seal_stanza st2;
    base(&st2, "tamper-other");
    struct node_seal *other = open_ok(&st2);
    assert_int_equal(unseal_ct(other, "sys/a", ct, ct_len, NULL, 0, errmsg), CF_EAUTH);
    node_seal_free(other);
    node_seal_stanza_clear(&st2);

    cf_free(ct);
    node_seal_free(s);
    node_seal_stanza_clear(&st);
}

static void test_wrong_pin(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "rt");
    set(&st, "pin", "9999");
    open_fails(&st, CF_EAUTH, "CKR_PIN_INCORRECT");
    node_seal_stanza_clear(&st);
}

static void test_env_overrides(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "env");
    set(&st, "pin", "9999");
    open_fails(&st, CF_EAUTH, "CKR_PIN_INCORRECT");

    setenv("VAULT_HSM_PIN", "1234", 1);
    node_seal_free(open_ok(&st));

    /* COFFER_HSM_ is read before VAULT_HSM_. */
    setenv("COFFER_HSM_PIN", "8888", 1);
    open_fails(&st, CF_EAUTH, "CKR_PIN_INCORRECT");
    setenv("COFFER_HSM_PIN", "1234", 1);
    setenv("VAULT_HSM_PIN", "8888", 1);
    node_seal_free(open_ok(&st));
    /* An empty variable counts as unset. */
    setenv("COFFER_HSM_PIN", "", 1);
    open_fails(&st, CF_EAUTH, "CKR_PIN_INCORRECT");
    unsetenv("VAULT_HSM_PIN");
    unsetenv("COFFER_HSM_PIN");

    /* Other fields too: the environment supplies what the stanza lacks or overrides it. */
    unset(&st, "lib");
    set(&st, "pin", "1234");
    setenv("COFFER_HSM_LIB", MODULE, 1);
    setenv("COFFER_HSM_TOKEN_LABEL", "coffer", 1);
    set(&st, "token_label", "no-such-token");
    setenv("VAULT_HSM_KEY_LABEL", "env", 1);
    set(&st, "key_label", "env-not-this-one");
    set(&st, "generate_key", "false");
    node_seal_free(open_ok(&st));
    setenv("COFFER_HSM_GENERATE_KEY", "nope", 1);
    open_fails(&st, CF_EINVAL, "generate_key: \"nope\" is not a boolean");
    unsetenv("COFFER_HSM_GENERATE_KEY");
    setenv("COFFER_HSM_MECHANISM", "0x1085", 1);
    open_fails(&st, CF_EUNSUPPORTED, "only CKM_AES_GCM (0x1087)");
    node_seal_stanza_clear(&st);
}

static void test_refusals(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;

    base(&st, "rt");
    set(&st, "colour", "blue");
    open_fails(&st, CF_EINVAL, "seal \"pkcs11\": unknown field \"colour\"");
    node_seal_stanza_clear(&st);

    base(&st, "rt");
    unset(&st, "lib");
    open_fails(&st, CF_EINVAL, "missing \"lib\" (or env COFFER_HSM_LIB / VAULT_HSM_LIB)");
    node_seal_stanza_clear(&st);

    base(&st, "rt");
    unset(&st, "pin");
    open_fails(&st, CF_EINVAL, "missing \"pin\" (or env COFFER_HSM_PIN / VAULT_HSM_PIN)");
    node_seal_stanza_clear(&st);

    base(&st, "rt");
    set(&st, "pin", "");
    open_fails(&st, CF_EINVAL, "missing \"pin\"");
    node_seal_stanza_clear(&st);

    base(&st, "rt");
    unset(&st, "key_label");
    open_fails(&st, CF_EINVAL, "missing \"key_label\" or \"key_id\" (or env COFFER_HSM_KEY_LABEL");
    node_seal_stanza_clear(&st);

    base(&st, "rt");
    unset(&st, "token_label");
    open_fails(&st, CF_EINVAL, "missing \"slot\" or \"token_label\" (or env COFFER_HSM_SLOT");
    node_seal_stanza_clear(&st);

    /* Values. */
    static const struct
    {
        const char *key, *value, *want;
        int rv;
    } bad[] = {
        {"mechanism", "0x1085",
         "mechanism \"0x1085\" is not supported: only CKM_AES_GCM (0x1087) "
         "is supported by this build",
         CF_EUNSUPPORTED},
        {"mechanism", "4229", "only CKM_AES_GCM (0x1087)", CF_EUNSUPPORTED},
        {"mechanism", "gcm", "mechanism: \"gcm\" is not a number", CF_EINVAL},
        {"mechanism", "0x", "mechanism: \"0x\" is not a number", CF_EINVAL},
        {"hmac_mechanism", "sha", "hmac_mechanism: \"sha\" is not a number", CF_EINVAL},
        {"generate_key", "yes", "generate_key: \"yes\" is not a boolean", CF_EINVAL},
        {"force_rw_session", "2", "force_rw_session: \"2\" is not a boolean", CF_EINVAL},
        {"rsa_encrypt_local", "x", "rsa_encrypt_local: \"x\" is not a boolean", CF_EINVAL},
        {"rsa_oaep_hash", "md5", "rsa_oaep_hash: \"md5\" is not one of", CF_EINVAL},
        {"slot", "0x10", "slot: \"0x10\" is not a decimal number", CF_EINVAL},
        {"slot", "-1", "slot: \"-1\" is not a decimal number", CF_EINVAL},
        {"slot", "99999999999999999999999", "is not a decimal number", CF_EINVAL},
        {"key_id", "abc", "key_id: \"abc\" is not hex", CF_EINVAL},
        {"key_id", "zz", "key_id: \"zz\" is not hex", CF_EINVAL},
        {"hmac_key_id", "0xg0", "hmac_key_id: \"0xg0\" is not hex", CF_EINVAL},
        {"token_label", "no-such-token", "no token labelled \"no-such-token\"", CF_ENOTFOUND},
        {"lib", "/nonexistent/libhsm.so", "load module \"/nonexistent/libhsm.so\": ", CF_EIO},
        {"lib", "/usr/lib/x86_64-linux-gnu/libc.so.6", "has no C_GetFunctionList", CF_EIO},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(bad[i].value, "/usr/lib/x86_64-linux-gnu/libc.so.6") == 0 &&
            access(bad[i].value, R_OK) != 0) {
            continue;
        }
        base(&st, "rt");
        set(&st, bad[i].key, bad[i].value);
        open_fails(&st, bad[i].rv, bad[i].want);
        node_seal_stanza_clear(&st);
    }

    /* A missing module names the path and dlerror's reason. */
    base(&st, "rt");
    set(&st, "lib", "/nonexistent/libhsm.so");
    open_fails(&st, CF_EIO, "No such file or directory");
    node_seal_stanza_clear(&st);

    /* Accepted for Vault compatibility (and validated): the RSA / HMAC / default fields. */
    base(&st, "rt");
    set(&st, "mechanism", "4231");
    set(&st, "hmac_mechanism", "0x0251");
    set(&st, "rsa_oaep_hash", "sha256");
    set(&st, "rsa_encrypt_local", "false");
    set(&st, "default_key_label", "rt");
    set(&st, "default_hmac_key_label", "rt-hmac");
    set(&st, "force_rw_session", "true");
    set(&st, "disabled", "false");
    node_seal_free(open_ok(&st));
    node_seal_stanza_clear(&st);
}

static void test_slot_and_label(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "slot");
    struct node_seal *by_label = open_ok(&st);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    seal_ct(by_label, "a", "v", 1, &ct, &ct_len);
    node_seal_free(by_label);

    unset(&st, "token_label");
    set(&st, "slot", slot_text);
    struct node_seal *by_slot = open_ok(&st);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(unseal_ct(by_slot, "a", ct, ct_len, "v", 1, errmsg), CF_OK);
    node_seal_free(by_slot);

    /* Both: they must agree. */
    set(&st, "token_label", "coffer");
    node_seal_free(open_ok(&st));
    set(&st, "token_label", "other");
    char want[96];
    snprintf(want, sizeof(want), "slot %s holds no token labelled \"other\"", slot_text);
    open_fails(&st, CF_ENOTFOUND, want);

    /* A slot without a token. */
    unset(&st, "token_label");
    set(&st, "slot", "4000000000");
    open_fails(&st, CF_ENOTFOUND, "slot 4000000000 has no token");
    cf_free(ct);
    node_seal_stanza_clear(&st);
}

static void test_key_id_and_duplicates(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "with-id");
    set(&st, "key_id", "0xc0ffee01");
    struct node_seal *s = open_ok(&st);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    seal_ct(s, "a", "v", 1, &ct, &ct_len);
    node_seal_free(s);

    /* Found by CKA_ID alone. */
    unset(&st, "key_label");
    set(&st, "key_id", "C0FFEE01");
    set(&st, "generate_key", "false");
    s = open_ok(&st);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(unseal_ct(s, "a", ct, ct_len, "v", 1, errmsg), CF_OK);
    node_seal_free(s);
    set(&st, "key_id", "c0ffee02");
    open_fails(&st, CF_ENOTFOUND, "no key with id c0ffee02 on the token");
    cf_free(ct);
    node_seal_stanza_clear(&st);

    /* Two keys with one label: refused rather than guessed. */
    struct direct d;
    direct_open(&d);
    direct_aes_key(&d, "twice");
    direct_aes_key(&d, "twice");
    direct_close(&d);
    base(&st, "twice");
    open_fails(&st, CF_EINVAL, "more than one key with label \"twice\" on the token");
    node_seal_stanza_clear(&st);
}

struct worker
{
    struct node_seal *s;
    int id;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 500; i++) {
        char aad[32], pt[64];
        snprintf(aad, sizeof(aad), "t%d/%d", w->id, i);
        int n = snprintf(pt, sizeof(pt), "value %d of thread %d", i, w->id);
        uint8_t *ct = NULL, *back = NULL;
        size_t ct_len = 0, back_len = 0;
        char errmsg[CF_ERRMSG_SIZE];
        if (node_seal_encrypt(w->s, (const uint8_t *)aad, strlen(aad), (const uint8_t *)pt,
                              (size_t)n, &ct, &ct_len, errmsg) != CF_OK) {
            w->failures++;
            continue;
        }
        if (node_seal_decrypt(w->s, (const uint8_t *)aad, strlen(aad), ct, ct_len, &back, &back_len,
                              errmsg) != CF_OK ||
            back_len != (size_t)n || memcmp(back, pt, (size_t)n) != 0) {
            w->failures++;
        }
        cf_free(ct);
        cf_free(back);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "threads");
    struct node_seal *s = open_ok(&st);
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.s = s, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    node_seal_free(s);
    node_seal_stanza_clear(&st);
}

/* The login is dropped underneath the seal (another part of the process logs out, as an HSM
 * client restart or an operator tool would): the pooled sessions are no longer logged in, and
 * the seal recovers by logging in on a fresh session. */
static void test_logout_underneath(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "logout");
    struct node_seal *s = open_ok(&st);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    seal_ct(s, "a", "before", 6, &ct, &ct_len);

    struct direct d;
    direct_open(&d);
    assert_false(d.finalize); /* the seal initialized the module */
    assert_int_equal(d.fn->C_Logout(d.h), CKR_OK);
    /* The login is gone for every session of the process: the private key is invisible. */
    assert_int_equal(direct_count(&d, CKK_AES, "logout"), 0);
    direct_close(&d);

    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(unseal_ct(s, "a", ct, ct_len, "before", 6, errmsg), CF_OK);
    cf_free(ct);
    seal_ct(s, "a", "after", 5, &ct, &ct_len);
    assert_int_equal(unseal_ct(s, "a", ct, ct_len, "after", 5, errmsg), CF_OK);
    cf_free(ct);
    node_seal_free(s);
    node_seal_stanza_clear(&st);
}

/* The HSM goes away while the seal is open: the token is deleted (softhsm2-util removes its
 * directory) and the pooled sessions die with it. Encrypt and decrypt fail with CF_EIO and the
 * CKR_ name, after one retry on a fresh session. */
static void test_token_removed(void **state)
{
    (void)state;
    NEED_HSM();
    char slot[32] = "";
    assert_int_equal(init_token("doomed", slot, sizeof(slot)), 0);
    struct node_seal_stanza st;
    base(&st, "doomed-key");
    set(&st, "token_label", "doomed");
    struct node_seal *s = open_ok(&st);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    seal_ct(s, "a", "v", 1, &ct, &ct_len);
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(unseal_ct(s, "a", ct, ct_len, "v", 1, errmsg), CF_OK);

    assert_int_equal(run_util("--delete-token --token doomed", NULL, 0), 0);

    uint8_t *ct2 = NULL;
    size_t ct2_len = 0;
    int rv = node_seal_encrypt(s, (const uint8_t *)"a", 1, (const uint8_t *)"v", 1, &ct2, &ct2_len,
                               errmsg);
    print_message("encrypt after delete-token: %s: %s\n", cf_strerror(rv), errmsg);
    assert_int_equal(rv, CF_EIO);
    assert_null(ct2);
    assert_non_null(strstr(errmsg, "seal \"pkcs11\": encrypt: CKR_"));
    rv = unseal_ct(s, "a", ct, ct_len, NULL, 0, errmsg);
    print_message("decrypt after delete-token: %s: %s\n", cf_strerror(rv), errmsg);
    assert_int_equal(rv, CF_EIO);
    assert_non_null(strstr(errmsg, "seal \"pkcs11\": decrypt: CKR_"));
    assert_non_null(strstr(errmsg, "the key with label \"doomed-key\" is no longer on the token"));

    cf_free(ct);
    node_seal_free(s);
    node_seal_stanza_clear(&st);
}

/* Every allocation during open fails in turn: CF_ENOMEM, nothing leaked, then success. */
static void test_open_alloc_failures(void **state)
{
    (void)state;
    NEED_HSM();
    struct node_seal_stanza st;
    base(&st, "oom");
    node_seal_free(open_ok(&st)); /* the key exists from here on */
    for (unsigned long n = 1;; n++) {
        long live = cf_mem_live();
        struct node_seal *s = NULL;
        char errmsg[CF_ERRMSG_SIZE] = "";
        cf_mem_fail_after(n);
        int rv = node_seal_pkcs11_open(&st, &s, errmsg);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            assert_true(n > 1);
            node_seal_free(s);
            assert_int_equal(cf_mem_live(), live);
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        assert_null(s);
        assert_int_equal(cf_mem_live(), live);
    }
    node_seal_stanza_clear(&st);
}

/* Not a timed assertion: prints what 10,000 encrypt+decrypt pairs of 64 bytes cost. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_then_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_and_label, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_id_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_underneath, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
