/*
 * The PKCS#11 HSM seal (node/seal.h): an AES-256 key that never leaves the HSM encrypts and
 * decrypts the seal's values with CKM_AES_GCM. Configured like Vault's `seal "pkcs11"` block,
 * with COFFER_HSM_<NAME> and then VAULT_HSM_<NAME> environment variables taking precedence.
 * The HMAC and RSA fields (and default_*_label) belong to Vault's other mechanisms: they are
 * checked for form and, for hmac_key_label with generate_key, the HMAC key is created as Vault
 * does, but a GCM value uses one key only.
 *
 * Happy path: open loads the vendor module (dlopen + C_GetFunctionList; shared and counted per
 * process, since C_Initialize/C_Finalize and login state are per process), finds the slot by
 * number or token label, logs in with the user PIN and finds the key by label and/or CKA_ID;
 * with generate_key = "true" a missing key is created on the token. Each value is
 *   0x01 || 12-byte random IV || AES-GCM ciphertext || 16-byte tag      (29 bytes overhead)
 * with the caller's AAD bound through CK_GCM_PARAMS.
 *
 * Threads: encrypt and decrypt run on many threads at once. A PKCS#11 session runs one
 * operation at a time, so each call borrows a session from a mutex-guarded stack of idle,
 * logged-in sessions, opening a new one when none is idle (at most SESSIONS_IDLE_MAX are kept).
 *
 * Failure modes: a session that fails is closed rather than pooled (a module may leave an
 * operation half-done). When the failure says the session, the login, the device or the key
 * handle is gone (CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_REMOVED, CKR_USER_NOT_LOGGED_IN, ...)
 * every idle session is dropped and the operation is retried once on a fresh session, logging
 * in and looking the key up again. A second failure is CF_EIO with the CKR_ name. A GCM tag
 * that does not verify is CF_EAUTH (see tag_failure for modules that do not say so plainly).
 * The PIN stays in a cf_secret for the life of the seal, since that re-login needs it.
 */
#include "node/seal.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit-1/p11-kit/pkcs11.h>

#include "lib/strconv.h"
#include "lib/crypto.h"
#include "lib/mem.h"

#define CF_LOG_MODULE "seal"
#include "lib/log.h"

#define FORMAT_GCM 0x01
#define IV_LEN 12
#define TAG_LEN 16
#define HEADER_LEN (1 + IV_LEN)
#define OVERHEAD (HEADER_LEN + TAG_LEN)
#define KEY_LEN 32
#define KEY_ID_MAX 64
#define SESSIONS_IDLE_MAX 16

/* PKCS#11 3.0 return values that the p11-kit header does not name. */
#define CKR_TOKEN_RESOURCE_EXCEEDED_ 0x201UL
#define CKR_OPERATION_CANCEL_FAILED_ 0x202UL

/* ---- CKR_ names ---- */

struct ckr_name
{
    CK_RV rv;
    const char *name;
};

#define CKR_ROW(x) \
    {              \
        x, #x      \
    }
static const struct ckr_name ckr_names[] = {
    CKR_ROW(CKR_OK),
    CKR_ROW(CKR_CANCEL),
    CKR_ROW(CKR_HOST_MEMORY),
    CKR_ROW(CKR_SLOT_ID_INVALID),
    CKR_ROW(CKR_GENERAL_ERROR),
    CKR_ROW(CKR_FUNCTION_FAILED),
    CKR_ROW(CKR_ARGUMENTS_BAD),
    CKR_ROW(CKR_NO_EVENT),
    CKR_ROW(CKR_NEED_TO_CREATE_THREADS),
    CKR_ROW(CKR_CANT_LOCK),
    CKR_ROW(CKR_ATTRIBUTE_READ_ONLY),
    CKR_ROW(CKR_ATTRIBUTE_SENSITIVE),
    CKR_ROW(CKR_ATTRIBUTE_TYPE_INVALID),
    CKR_ROW(CKR_ATTRIBUTE_VALUE_INVALID),
    CKR_ROW(CKR_ACTION_PROHIBITED),
    CKR_ROW(CKR_DATA_INVALID),
    CKR_ROW(CKR_DATA_LEN_RANGE),
    CKR_ROW(CKR_DEVICE_ERROR),
    CKR_ROW(CKR_DEVICE_MEMORY),
    CKR_ROW(CKR_DEVICE_REMOVED),
    CKR_ROW(CKR_ENCRYPTED_DATA_INVALID),
    CKR_ROW(CKR_ENCRYPTED_DATA_LEN_RANGE),
    CKR_ROW(CKR_FUNCTION_CANCELED),
    CKR_ROW(CKR_FUNCTION_NOT_PARALLEL),
    CKR_ROW(CKR_FUNCTION_NOT_SUPPORTED),
    CKR_ROW(CKR_KEY_HANDLE_INVALID),
    CKR_ROW(CKR_KEY_SIZE_RANGE),
    CKR_ROW(CKR_KEY_TYPE_INCONSISTENT),
    CKR_ROW(CKR_KEY_NOT_NEEDED),
    CKR_ROW(CKR_KEY_CHANGED),
    CKR_ROW(CKR_KEY_NEEDED),
    CKR_ROW(CKR_KEY_INDIGESTIBLE),
    CKR_ROW(CKR_KEY_FUNCTION_NOT_PERMITTED),
    CKR_ROW(CKR_KEY_NOT_WRAPPABLE),
    CKR_ROW(CKR_KEY_UNEXTRACTABLE),
    CKR_ROW(CKR_MECHANISM_INVALID),
    CKR_ROW(CKR_MECHANISM_PARAM_INVALID),
    CKR_ROW(CKR_OBJECT_HANDLE_INVALID),
    CKR_ROW(CKR_OPERATION_ACTIVE),
    CKR_ROW(CKR_OPERATION_NOT_INITIALIZED),
    CKR_ROW(CKR_PIN_INCORRECT),
    CKR_ROW(CKR_PIN_INVALID),
    CKR_ROW(CKR_PIN_LEN_RANGE),
    CKR_ROW(CKR_PIN_EXPIRED),
    CKR_ROW(CKR_PIN_LOCKED),
    CKR_ROW(CKR_SESSION_CLOSED),
    CKR_ROW(CKR_SESSION_COUNT),
    CKR_ROW(CKR_SESSION_HANDLE_INVALID),
    CKR_ROW(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    CKR_ROW(CKR_SESSION_READ_ONLY),
    CKR_ROW(CKR_SESSION_EXISTS),
    CKR_ROW(CKR_SESSION_READ_ONLY_EXISTS),
    CKR_ROW(CKR_SESSION_READ_WRITE_SO_EXISTS),
    CKR_ROW(CKR_SIGNATURE_INVALID),
    CKR_ROW(CKR_SIGNATURE_LEN_RANGE),
    CKR_ROW(CKR_TEMPLATE_INCOMPLETE),
    CKR_ROW(CKR_TEMPLATE_INCONSISTENT),
    CKR_ROW(CKR_TOKEN_NOT_PRESENT),
    CKR_ROW(CKR_TOKEN_NOT_RECOGNIZED),
    CKR_ROW(CKR_TOKEN_WRITE_PROTECTED),
    CKR_ROW(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    CKR_ROW(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    CKR_ROW(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    CKR_ROW(CKR_USER_ALREADY_LOGGED_IN),
    CKR_ROW(CKR_USER_NOT_LOGGED_IN),
    CKR_ROW(CKR_USER_PIN_NOT_INITIALIZED),
    CKR_ROW(CKR_USER_TYPE_INVALID),
    CKR_ROW(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    CKR_ROW(CKR_USER_TOO_MANY_TYPES),
    CKR_ROW(CKR_WRAPPED_KEY_INVALID),
    CKR_ROW(CKR_WRAPPED_KEY_LEN_RANGE),
    CKR_ROW(CKR_WRAPPING_KEY_HANDLE_INVALID),
    CKR_ROW(CKR_WRAPPING_KEY_SIZE_RANGE),
    CKR_ROW(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    CKR_ROW(CKR_RANDOM_SEED_NOT_SUPPORTED),
    CKR_ROW(CKR_RANDOM_NO_RNG),
    CKR_ROW(CKR_DOMAIN_PARAMS_INVALID),
    CKR_ROW(CKR_CURVE_NOT_SUPPORTED),
    CKR_ROW(CKR_BUFFER_TOO_SMALL),
    CKR_ROW(CKR_SAVED_STATE_INVALID),
    CKR_ROW(CKR_INFORMATION_SENSITIVE),
    CKR_ROW(CKR_STATE_UNSAVEABLE),
    CKR_ROW(CKR_CRYPTOKI_NOT_INITIALIZED),
    CKR_ROW(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    CKR_ROW(CKR_MUTEX_BAD),
    CKR_ROW(CKR_MUTEX_NOT_LOCKED),
    CKR_ROW(CKR_NEW_PIN_MODE),
    CKR_ROW(CKR_NEXT_OTP),
    CKR_ROW(CKR_EXCEEDED_MAX_ITERATIONS),
    CKR_ROW(CKR_FIPS_SELF_TEST_FAILED),
    CKR_ROW(CKR_LIBRARY_LOAD_FAILED),
    CKR_ROW(CKR_PIN_TOO_WEAK),
    CKR_ROW(CKR_PUBLIC_KEY_INVALID),
    CKR_ROW(CKR_FUNCTION_REJECTED),
    {CKR_TOKEN_RESOURCE_EXCEEDED_, "CKR_TOKEN_RESOURCE_EXCEEDED"},
    {CKR_OPERATION_CANCEL_FAILED_, "CKR_OPERATION_CANCEL_FAILED"},
};
#undef CKR_ROW

/* Names rv ("CKR_PIN_INCORRECT"); unknown and vendor codes as "CKR_0x80000123". */
static const char *ckr_name(CK_RV rv, char buf[32])
{
    for (size_t i = 0; i < sizeof(ckr_names) / sizeof(ckr_names[0]); i++) {
        if (ckr_names[i].rv == rv) {
            return ckr_names[i].name;
        }
    }
    snprintf(buf, 32, "CKR_0x%lx", (unsigned long)rv);
    return buf;
}

/* Writes `seal "pkcs11": WHAT: CKR_NAME` and returns err. */
static int ckr_fail(char errmsg[CF_ERRMSG_SIZE], int err, const char *what, CK_RV rv)
{
    char buf[32];
    cf_errmsg_printf(errmsg, "seal \"pkcs11\": %s: %s", what, ckr_name(rv, buf));
    return err;
}

/* The failures after which the session (or its login, or the device) is gone: drop the idle
 * sessions and retry once on a fresh one. The handle codes are here because a token that was
 * removed and put back gives the key a new handle. */
static bool ckr_retryable(CK_RV rv)
{
    switch (rv) {
        case CKR_SESSION_HANDLE_INVALID:
        case CKR_SESSION_CLOSED:
        case CKR_DEVICE_REMOVED:
        case CKR_TOKEN_NOT_PRESENT:
        case CKR_DEVICE_ERROR:
        case CKR_USER_NOT_LOGGED_IN:
        case CKR_KEY_HANDLE_INVALID:
        case CKR_OBJECT_HANDLE_INVALID:
            return true;
        default:
            return false;
    }
}

/* ---- Loaded modules ----
 *
 * Sessions, login state and C_Initialize/C_Finalize are per process and module, not per seal:
 * a second seal on the same module (seal migration, tests) must not C_Finalize it under the
 * first. So modules are shared, counted, and finalized when the last seal lets go. */

struct p11_module
{
    void *dl;                /* dlopen handle; owned */
    CK_FUNCTION_LIST_PTR fn; /* borrowed from the module */
    bool finalize;           /* we called C_Initialize, so we call C_Finalize */
    unsigned refs;           /* open seals using it */
    struct p11_module *next; /* in modules */
};

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module *modules; /* guarded by modules_lock */

static int module_get(const char *path, struct p11_module **out, char errmsg[CF_ERRMSG_SIZE])
{
    int rv = CF_OK;
    pthread_mutex_lock(&modules_lock);
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *why = dlerror();
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": load module \"%s\": %s", path,
                         why != NULL ? why : "unknown error");
        rv = CF_EIO;
        goto out;
    }
    /* dlopen hands back the same handle for the same file under any path spelling. */
    for (struct p11_module *m = modules; m != NULL; m = m->next) {
        if (m->dl == dl) {
            dlclose(dl);
            m->refs++;
            *out = m;
            goto out;
        }
    }
    CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    if (get_list == NULL) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": module \"%s\" has no C_GetFunctionList", path);
        dlclose(dl);
        rv = CF_EIO;
        goto out;
    }
    CK_FUNCTION_LIST_PTR fn = NULL;
    CK_RV crv = get_list(&fn);
    if (crv != CKR_OK || fn == NULL) {
        rv = ckr_fail(errmsg, CF_EIO, "C_GetFunctionList", crv != CKR_OK ? crv : CKR_GENERAL_ERROR);
        dlclose(dl);
        goto out;
    }
    /* The module does its own locking with OS primitives; we hand it no callbacks. */
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    crv = fn->C_Initialize(&args);
    if (crv != CKR_OK && crv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        char what[CF_ERRMSG_SIZE];
        snprintf(what, sizeof(what), "C_Initialize of \"%s\"", path);
        rv = ckr_fail(errmsg, CF_EIO, what, crv);
        dlclose(dl);
        goto out;
    }
    struct p11_module *m = cf_calloc(1, sizeof(*m));
    if (m == NULL) {
        if (crv == CKR_OK) {
            fn->C_Finalize(NULL);
        }
        dlclose(dl);
        rv = CF_ENOMEM;
        goto out;
    }
    m->dl = dl;
    m->fn = fn;
    /* Someone else in the process initialized it: finalizing would pull it from under them. */
    m->finalize = crv == CKR_OK;
    m->refs = 1;
    m->next = modules;
    modules = m;
    *out = m;
out:
    pthread_mutex_unlock(&modules_lock);
    return rv;
}

/* Drops one reference; the last one finalizes (which closes every session) and unloads. */
static void module_put(struct p11_module *m)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&modules_lock);
    if (--m->refs == 0) {
        for (struct p11_module **p = &modules; *p != NULL; p = &(*p)->next) {
            if (*p == m) {
                *p = m->next;
                break;
            }
        }
        if (m->finalize) {
            m->fn->C_Finalize(NULL);
        }
        dlclose(m->dl);
        cf_free(m);
    }
    pthread_mutex_unlock(&modules_lock);
}

/* ---- The seal object ---- */

struct seal_pkcs11
{
    struct node_seal base;
    struct p11_module *mod;  /* shared; module_put in seal_free */
    CK_FUNCTION_LIST_PTR fn; /* mod->fn */
    CK_SLOT_ID slot;
    CK_FLAGS session_flags; /* CKF_SERIAL_SESSION, plus CKF_RW_SESSION with force_rw_session */
    struct cf_secret *pin;  /* owned; NUL-terminated; needed to log in again after a loss */
    char *key_label;        /* owned; NULL when the key is found by key_id only */
    uint8_t key_id[KEY_ID_MAX];
    size_t key_id_len; /* 0 = no CKA_ID in the search */
    pthread_mutex_t lock;
    CK_OBJECT_HANDLE key;     /* guarded by lock: may change after a re-lookup */
    CK_SESSION_HANDLE anchor; /* never used for operations; see node_seal_pkcs11_open */
    CK_SESSION_HANDLE idle[SESSIONS_IDLE_MAX]; /* guarded by lock */
    size_t n_idle;
};

/* ---- Configuration ---- */

/* "0x1087" (hex) or "4231" (decimal); nothing else, no sign, no octal. */
static bool parse_ulong(const char *s, unsigned long *out)
{
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (*s == '\0') {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        bool ok =
            base == 16 ? strchr("0123456789abcdefABCDEF", *p) != NULL : (*p >= '0' && *p <= '9');
        if (!ok) {
            return false;
        }
    }
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, base);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

/* CKA_ID as hex, with or without 0x: "0a1b" -> {0x0a, 0x1b}. */
static bool parse_hex_id(const char *s, uint8_t out[KEY_ID_MAX], size_t *len)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
    }
    return s[0] != '\0' && cf_hex_decode(s, strlen(s), out, KEY_ID_MAX, len) == CF_OK;
}

/* The fields taken from COFFER_HSM_<NAME> / VAULT_HSM_<NAME> before the stanza. */
static const char *const env_fields[] = {
    "lib",       "slot",           "token_label",  "pin",
    "key_label", "hmac_key_label", "key_id",       "hmac_key_id",
    "mechanism", "hmac_mechanism", "generate_key", "force_rw_session",
    NULL,
};

static const char *const allowed_fields[] = {
    "lib",
    "slot",
    "token_label",
    "pin",
    "key_label",
    "hmac_key_label",
    "key_id",
    "hmac_key_id",
    "default_key_label",
    "default_hmac_key_label",
    "mechanism",
    "hmac_mechanism",
    "generate_key",
    "force_rw_session",
    "rsa_encrypt_local",
    "rsa_oaep_hash",
    "disabled",
    NULL,
};

/* The environment's value of field, else the stanza's; NULL when neither (or empty). */
static const char *field(const struct node_seal_stanza *st, const char *name)
{
    for (const char *const *f = env_fields; *f != NULL; f++) {
        if (strcmp(*f, name) != 0) {
            continue;
        }
        static const char *const prefixes[] = {"COFFER_HSM_", "VAULT_HSM_"};
        for (size_t i = 0; i < 2; i++) {
            char var[64];
            size_t n = (size_t)snprintf(var, sizeof(var), "%s%s", prefixes[i], name);
            for (size_t j = strlen(prefixes[i]); j < n; j++) {
                var[j] = (char)(var[j] >= 'a' && var[j] <= 'z' ? var[j] - 'a' + 'A' : var[j]);
            }
            const char *v = getenv(var);
            if (v != NULL && v[0] != '\0') {
                return v;
            }
        }
    }
    const char *v = node_seal_param(st, name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Everything open needs, read and checked before the module is touched. */
struct config
{
    const char *lib, *slot, *token_label, *pin, *key_label, *hmac_key_label;
    const char *hmac_key_id_text;
    uint8_t key_id[KEY_ID_MAX], hmac_key_id[KEY_ID_MAX];
    size_t key_id_len, hmac_key_id_len;
    CK_SLOT_ID slot_num;
    bool generate_key, force_rw;
};

static int config_bool(const struct node_seal_stanza *st,
                       const char *name,
                       bool *out,
                       char errmsg[CF_ERRMSG_SIZE])
{
    const char *v = field(st, name);
    *out = false;
    if (v != NULL && !cf_parse_bool(v, out)) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": %s: \"%s\" is not a boolean", name, v);
        return CF_EINVAL;
    }
    return CF_OK;
}

static int config_read(const struct node_seal_stanza *st,
                       struct config *c,
                       char errmsg[CF_ERRMSG_SIZE])
{
    memset(c, 0, sizeof(*c));
    int rv = node_seal_check_params(st, allowed_fields, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    c->lib = field(st, "lib");
    c->slot = field(st, "slot");
    c->token_label = field(st, "token_label");
    c->pin = field(st, "pin");
    c->key_label = field(st, "key_label");
    c->hmac_key_label = field(st, "hmac_key_label");
    const char *key_id = field(st, "key_id");
    const char *hmac_key_id = field(st, "hmac_key_id");
    if (c->lib == NULL) {
        cf_errmsg_printf(
            errmsg, "seal \"pkcs11\": missing \"lib\" (or env COFFER_HSM_LIB / VAULT_HSM_LIB)");
        return CF_EINVAL;
    }
    if (c->slot == NULL && c->token_label == NULL) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": missing \"slot\" or \"token_label\" (or env "
                         "COFFER_HSM_SLOT / COFFER_HSM_TOKEN_LABEL, VAULT_HSM_SLOT / "
                         "VAULT_HSM_TOKEN_LABEL)");
        return CF_EINVAL;
    }
    if (c->pin == NULL) {
        cf_errmsg_printf(
            errmsg, "seal \"pkcs11\": missing \"pin\" (or env COFFER_HSM_PIN / VAULT_HSM_PIN)");
        return CF_EINVAL;
    }
    if (c->key_label == NULL && key_id == NULL) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": missing \"key_label\" or \"key_id\" (or env "
                         "COFFER_HSM_KEY_LABEL / COFFER_HSM_KEY_ID, VAULT_HSM_KEY_LABEL / "
                         "VAULT_HSM_KEY_ID)");
        return CF_EINVAL;
    }
    unsigned long slot = 0;
    bool hex = c->slot != NULL && c->slot[0] == '0' && (c->slot[1] == 'x' || c->slot[1] == 'X');
    if (c->slot != NULL && (hex || !parse_ulong(c->slot, &slot))) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": slot: \"%s\" is not a decimal number", c->slot);
        return CF_EINVAL;
    }
    c->slot_num = slot;
    if (key_id != NULL && !parse_hex_id(key_id, c->key_id, &c->key_id_len)) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": key_id: \"%s\" is not hex (at most %d bytes)",
                         key_id, KEY_ID_MAX);
        return CF_EINVAL;
    }
    if (hmac_key_id != NULL && !parse_hex_id(hmac_key_id, c->hmac_key_id, &c->hmac_key_id_len)) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": hmac_key_id: \"%s\" is not hex (at most %d bytes)",
                         hmac_key_id, KEY_ID_MAX);
        return CF_EINVAL;
    }
    const char *mech = field(st, "mechanism");
    unsigned long m = CKM_AES_GCM;
    if (mech != NULL && !parse_ulong(mech, &m)) {
        cf_errmsg_printf(
            errmsg, "seal \"pkcs11\": mechanism: \"%s\" is not a number (e.g. \"0x1087\")", mech);
        return CF_EINVAL;
    }
    if (m != CKM_AES_GCM) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": mechanism \"%s\" is not supported: only CKM_AES_GCM "
                         "(0x1087) is supported by this build",
                         mech);
        return CF_EUNSUPPORTED;
    }
    /* HMAC and RSA settings belong to Vault's other mechanisms; with GCM they are checked for
     * form only (a typo should not wait until someone switches mechanism). */
    const char *hmac_mech = field(st, "hmac_mechanism");
    unsigned long hm = 0;
    if (hmac_mech != NULL && !parse_ulong(hmac_mech, &hm)) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": hmac_mechanism: \"%s\" is not a number",
                         hmac_mech);
        return CF_EINVAL;
    }
    const char *oaep = node_seal_param(st, "rsa_oaep_hash");
    if (oaep != NULL && strcmp(oaep, "sha1") != 0 && strcmp(oaep, "sha224") != 0 &&
        strcmp(oaep, "sha256") != 0 && strcmp(oaep, "sha384") != 0 && strcmp(oaep, "sha512") != 0) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": rsa_oaep_hash: \"%s\" is not one of sha1, sha224, "
                         "sha256, sha384, sha512",
                         oaep);
        return CF_EINVAL;
    }
    bool unused = false;
    rv = config_bool(st, "rsa_encrypt_local", &unused, errmsg);
    if (rv == CF_OK) {
        rv = config_bool(st, "disabled", &unused, errmsg);
    }
    if (rv == CF_OK) {
        rv = config_bool(st, "generate_key", &c->generate_key, errmsg);
    }
    if (rv == CF_OK) {
        rv = config_bool(st, "force_rw_session", &c->force_rw, errmsg);
    }
    return rv;
}

/* ---- Slots, sessions, keys ---- */

/* Length of a PKCS#11 label without its space padding. */
static size_t label_len(const unsigned char *label, size_t n)
{
    while (n > 0 && (label[n - 1] == ' ' || label[n - 1] == '\0')) {
        n--;
    }
    return n;
}

/* The slots that hold a token; *slots is cf_malloc'd. */
static int slots_with_token(CK_FUNCTION_LIST_PTR fn,
                            CK_SLOT_ID **slots,
                            CK_ULONG *n,
                            char errmsg[CF_ERRMSG_SIZE])
{
    *slots = NULL;
    *n = 0;
    CK_RV crv = fn->C_GetSlotList(CK_TRUE, NULL, n);
    if (crv != CKR_OK) {
        return ckr_fail(errmsg, CF_EIO, "C_GetSlotList", crv);
    }
    if (*n == 0) {
        return CF_OK;
    }
    *slots = cf_calloc(*n, sizeof(**slots));
    if (*slots == NULL) {
        return CF_ENOMEM;
    }
    crv = fn->C_GetSlotList(CK_TRUE, *slots, n);
    if (crv != CKR_OK) {
        CF_FREE(*slots);
        return ckr_fail(errmsg, CF_EIO, "C_GetSlotList", crv);
    }
    return CF_OK;
}

/* Resolves c->slot / c->token_label to a slot that holds the token. With both, the token in
 * that slot must carry that label. */
static int slot_find(CK_FUNCTION_LIST_PTR fn,
                     const struct config *c,
                     CK_SLOT_ID *out,
                     char errmsg[CF_ERRMSG_SIZE])
{
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    int rv = slots_with_token(fn, &slots, &n, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    size_t found = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        if (c->slot != NULL && slots[i] != c->slot_num) {
            continue;
        }
        if (c->token_label != NULL) {
            CK_TOKEN_INFO info;
            CK_RV crv = fn->C_GetTokenInfo(slots[i], &info);
            if (crv != CKR_OK) {
                rv = ckr_fail(errmsg, CF_EIO, "C_GetTokenInfo", crv);
                goto out;
            }
            size_t ll = label_len(info.label, sizeof(info.label));
            if (ll != strlen(c->token_label) || memcmp(info.label, c->token_label, ll) != 0) {
                continue;
            }
        }
        if (found++ == 0) {
            *out = slots[i];
        }
    }
    if (found == 0 && c->slot != NULL && c->token_label != NULL) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": slot %s holds no token labelled \"%s\"", c->slot,
                         c->token_label);
        rv = CF_ENOTFOUND;
    } else if (found == 0 && c->slot != NULL) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": slot %s has no token", c->slot);
        rv = CF_ENOTFOUND;
    } else if (found == 0) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": no token labelled \"%s\"", c->token_label);
        rv = CF_ENOTFOUND;
    } else if (found > 1) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": %zu tokens are labelled \"%s\"; set \"slot\" to choose",
                         found, c->token_label);
        rv = CF_EINVAL;
    }
out:
    cf_free(slots);
    return rv;
}

/* Opens a session on the seal's slot and logs it in. A login that is already there (another
 * session of ours holds it) is fine: login state is per application and token. */
static CK_RV session_open(struct seal_pkcs11 *s, CK_FLAGS extra, CK_SESSION_HANDLE *out)
{
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_RV crv = s->fn->C_OpenSession(s->slot, s->session_flags | extra, NULL, NULL, &h);
    if (crv != CKR_OK) {
        return crv;
    }
    crv = s->fn->C_Login(h, CKU_USER, s->pin->data,
                         (CK_ULONG)(s->pin->len - 1) /* without the NUL */);
    if (crv != CKR_OK && crv != CKR_USER_ALREADY_LOGGED_IN) {
        s->fn->C_CloseSession(h);
        return crv;
    }
    *out = h;
    return CKR_OK;
}

/* An idle session, or a new one. */
static CK_RV session_get(struct seal_pkcs11 *s, CK_SESSION_HANDLE *out)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_idle > 0) {
        *out = s->idle[--s->n_idle];
        pthread_mutex_unlock(&s->lock);
        return CKR_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return session_open(s, 0, out);
}

static void session_put(struct seal_pkcs11 *s, CK_SESSION_HANDLE h)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_idle < SESSIONS_IDLE_MAX) {
        s->idle[s->n_idle++] = h;
        h = CK_INVALID_HANDLE;
    }
    pthread_mutex_unlock(&s->lock);
    if (h != CK_INVALID_HANDLE) {
        s->fn->C_CloseSession(h);
    }
}

/* Closes every idle session (they are likely as dead as the one that just failed). */
static void sessions_drop_idle(struct seal_pkcs11 *s)
{
    CK_SESSION_HANDLE idle[SESSIONS_IDLE_MAX];
    pthread_mutex_lock(&s->lock);
    size_t n = s->n_idle;
    memcpy(idle, s->idle, n * sizeof(idle[0]));
    s->n_idle = 0;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        s->fn->C_CloseSession(idle[i]);
    }
}

/* Finds the one secret key of key_type carrying label and/or id. *nfound is how many match
 * (0, 1, or 2 meaning "more than one"). */
static CK_RV key_find(CK_FUNCTION_LIST_PTR fn,
                      CK_SESSION_HANDLE h,
                      CK_KEY_TYPE key_type,
                      const char *label,
                      const uint8_t *id,
                      size_t id_len,
                      CK_OBJECT_HANDLE *out,
                      CK_ULONG *nfound)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[4] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &key_type, sizeof(key_type)},
    };
    CK_ULONG n = 2;
    if (label != NULL) {
        tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)label, strlen(label)};
    }
    if (id_len > 0) {
        tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, id_len};
    }
    CK_RV crv = fn->C_FindObjectsInit(h, tmpl, n);
    if (crv != CKR_OK) {
        return crv;
    }
    CK_OBJECT_HANDLE found[2];
    *nfound = 0;
    crv = fn->C_FindObjects(h, found, 2, nfound);
    CK_RV crv_final = fn->C_FindObjectsFinal(h);
    if (crv == CKR_OK) {
        crv = crv_final;
    }
    if (crv == CKR_OK && *nfound > 0) {
        *out = found[0];
    }
    return crv;
}

/* Creates a token key: AES-256 for encryption, or a 32-byte generic secret for HMAC. The key
 * is sensitive and not extractable, as Vault creates it. */
static CK_RV key_generate(CK_FUNCTION_LIST_PTR fn,
                          CK_SESSION_HANDLE h,
                          bool hmac,
                          const char *label,
                          const uint8_t *id,
                          size_t id_len,
                          CK_OBJECT_HANDLE *out)
{
    CK_MECHANISM mech = {hmac ? CKM_GENERIC_SECRET_KEY_GEN : CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = hmac ? CKK_GENERIC_SECRET : CKK_AES;
    CK_ULONG len = KEY_LEN;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[13] = {
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},   {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
    };
    CK_ULONG n = 7;
    if (hmac) {
        tmpl[n++] = (CK_ATTRIBUTE){CKA_SIGN, &yes, sizeof(yes)};
        tmpl[n++] = (CK_ATTRIBUTE){CKA_VERIFY, &yes, sizeof(yes)};
    } else {
        tmpl[n++] = (CK_ATTRIBUTE){CKA_ENCRYPT, &yes, sizeof(yes)};
        tmpl[n++] = (CK_ATTRIBUTE){CKA_DECRYPT, &yes, sizeof(yes)};
    }
    if (label != NULL) {
        tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)label, strlen(label)};
    }
    if (id_len > 0) {
        tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, id_len};
    }
    return fn->C_GenerateKey(h, &mech, tmpl, n, out);
}

/* Describes the key for messages: `label "x"`, `id 0a0b`, or both. */
static void key_describe(const char *label, const uint8_t *id, size_t id_len, char *buf, size_t n)
{
    size_t off = 0;
    if (label != NULL) {
        off = (size_t)snprintf(buf, n, "label \"%s\"", label);
    }
    if (id_len > 0 && off < n) {
        off += (size_t)snprintf(buf + off, n - off, "%sid ", label != NULL ? " and " : "");
        for (size_t i = 0; i < id_len && off + 2 < n; i++) {
            off += (size_t)snprintf(buf + off, n - off, "%02x", id[i]);
        }
    }
}

/* Finds the key, or creates it when allowed (on a read-write session, which key creation
 * needs even when the pool's sessions are read-only). */
static int key_find_or_generate(struct seal_pkcs11 *s,
                                CK_SESSION_HANDLE h,
                                bool hmac,
                                const char *label,
                                const uint8_t *id,
                                size_t id_len,
                                bool generate,
                                CK_OBJECT_HANDLE *out,
                                char errmsg[CF_ERRMSG_SIZE])
{
    char what[160];
    key_describe(label, id, id_len, what, sizeof(what));
    const char *kind = hmac ? "HMAC key" : "key";
    CK_ULONG nfound = 0;
    CK_RV crv =
        key_find(s->fn, h, hmac ? CKK_GENERIC_SECRET : CKK_AES, label, id, id_len, out, &nfound);
    if (crv != CKR_OK) {
        return ckr_fail(errmsg, CF_EIO, "find key", crv);
    }
    if (nfound > 1) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": more than one %s with %s on the token; give each a "
                         "distinct label or set key_id",
                         kind, what);
        return CF_EINVAL;
    }
    if (nfound == 1) {
        return CF_OK;
    }
    if (!generate) {
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": no %s with %s on the token; set generate_key = "
                         "\"true\" to create it",
                         kind, what);
        return CF_ENOTFOUND;
    }
    CK_SESSION_HANDLE rw = h;
    if ((s->session_flags & CKF_RW_SESSION) == 0) {
        crv = session_open(s, CKF_RW_SESSION, &rw);
        if (crv != CKR_OK) {
            return ckr_fail(errmsg, CF_EIO, "open a read-write session to create the key", crv);
        }
    }
    crv = key_generate(s->fn, rw, hmac, label, id, id_len, out);
    if (rw != h) {
        s->fn->C_CloseSession(rw);
    }
    if (crv != CKR_OK) {
        char op[200];
        snprintf(op, sizeof(op), "create %s with %s", kind, what);
        return ckr_fail(errmsg, CF_EIO, op, crv);
    }
    CF_LOG(CF_LOG_INFO, "pkcs11: created %s with %s", kind, what);
    return CF_OK;
}

/* ---- Encrypt and decrypt ---- */

/* One GCM operation: what goes in, what comes out, and how it failed. */
struct gcm_op
{
    bool enc;
    const uint8_t *iv;  /* IV_LEN bytes; borrowed */
    const uint8_t *aad; /* borrowed */
    size_t aad_len;
    const uint8_t *in; /* borrowed */
    size_t in_len;
    uint8_t *out;   /* owned by the caller, who frees it; may be grown */
    size_t out_cap; /* bytes at out */
    size_t out_len;
    bool at_init;  /* the failure came from C_EncryptInit / C_DecryptInit */
    bool key_gone; /* the retry found no key (or two) with the configured label / id */
    CK_RV first;   /* the failure that caused a retry, for messages */
};

/* One C_EncryptInit + C_Encrypt (or decrypt) on session h. A module that wants a bigger
 * output buffer (CKR_BUFFER_TOO_SMALL keeps the operation alive) gets it. */
static CK_RV gcm_run(CK_FUNCTION_LIST_PTR fn,
                     CK_SESSION_HANDLE h,
                     CK_OBJECT_HANDLE key,
                     struct gcm_op *op)
{
    CK_GCM_PARAMS gcm;
    memset(&gcm, 0, sizeof(gcm));
    gcm.pIv = (CK_BYTE_PTR)op->iv;
    gcm.ulIvLen = IV_LEN;
    gcm.ulIvBits = IV_LEN * 8; /* modules disagree on which one they read; set both */
    gcm.pAAD = (CK_BYTE_PTR)op->aad;
    gcm.ulAADLen = op->aad_len;
    gcm.ulTagBits = TAG_LEN * 8;
    CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof(gcm)};
    CK_RV crv = op->enc ? fn->C_EncryptInit(h, &mech, key) : fn->C_DecryptInit(h, &mech, key);
    op->at_init = crv != CKR_OK;
    if (crv != CKR_OK) {
        return crv;
    }
    /* A non-NULL buffer even for zero bytes: a NULL one means "tell me the length". */
    static uint8_t empty[1];
    CK_BYTE_PTR src = op->in_len > 0 ? (CK_BYTE_PTR)op->in : empty;
    for (int tries = 0; tries < 2; tries++) {
        CK_ULONG n = op->out_cap;
        CK_BYTE_PTR dst = op->out_cap > 0 ? op->out : empty;
        crv = op->enc ? fn->C_Encrypt(h, src, op->in_len, dst, &n)
                      : fn->C_Decrypt(h, src, op->in_len, dst, &n);
        if (crv == CKR_OK) {
            if (n > op->out_cap) {
                return CKR_GENERAL_ERROR; /* a module that overran our buffer */
            }
            op->out_len = n;
            return CKR_OK;
        }
        if (crv != CKR_BUFFER_TOO_SMALL || n <= op->out_cap) {
            return crv;
        }
        uint8_t *bigger = cf_realloc(op->out, n);
        if (bigger == NULL) {
            return CKR_HOST_MEMORY;
        }
        op->out = bigger;
        op->out_cap = n;
    }
    return crv;
}

/* Runs gcm_run with the pool: a failed session is closed, never pooled; a retryable failure
 * drops the idle sessions and tries once more on a fresh session with the key looked up
 * again. Returns the last CKR. */
static CK_RV pooled_run(struct seal_pkcs11 *s, struct gcm_op *op)
{
    CK_RV crv = CKR_OK;
    op->at_init = true;
    op->key_gone = false;
    op->first = CKR_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
        crv = attempt == 0 ? session_get(s, &h) : session_open(s, 0, &h);
        if (crv != CKR_OK) {
            if (attempt == 0 && ckr_retryable(crv)) {
                op->first = crv;
                sessions_drop_idle(s);
                continue;
            }
            return crv;
        }
        if (attempt > 0) {
            CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
            CK_ULONG nfound = 0;
            crv =
                key_find(s->fn, h, CKK_AES, s->key_label, s->key_id, s->key_id_len, &key, &nfound);
            if (crv != CKR_OK || nfound != 1) {
                op->key_gone = crv == CKR_OK;
                s->fn->C_CloseSession(h);
                return crv != CKR_OK ? crv : op->first;
            }
            pthread_mutex_lock(&s->lock);
            s->key = key;
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_lock(&s->lock);
        CK_OBJECT_HANDLE key = s->key;
        pthread_mutex_unlock(&s->lock);
        crv = gcm_run(s->fn, h, key, op);
        if (crv == CKR_OK) {
            session_put(s, h);
            return CKR_OK;
        }
        /* Whatever failed may have left an operation active on it. */
        s->fn->C_CloseSession(h);
        if (!ckr_retryable(crv)) {
            return crv;
        }
        char buf[32];
        CF_LOG(CF_LOG_WARN, "pkcs11: %s failed with %s; %s", op->enc ? "encrypt" : "decrypt",
               ckr_name(crv, buf), attempt == 0 ? "retrying on a new session" : "giving up");
        op->first = crv;
        sessions_drop_idle(s);
    }
    return crv;
}

/* The CF_EIO message for a failed operation. */
static int op_fail(const struct seal_pkcs11 *s,
                   const struct gcm_op *op,
                   CK_RV crv,
                   char errmsg[CF_ERRMSG_SIZE])
{
    const char *what = op->enc ? "encrypt" : "decrypt";
    if (op->key_gone) {
        char key[160];
        char buf[32];
        key_describe(s->key_label, s->key_id, s->key_id_len, key, sizeof(key));
        cf_errmsg_printf(errmsg,
                         "seal \"pkcs11\": %s: %s; the key with %s is no longer on the token", what,
                         ckr_name(crv, buf), key);
        return CF_EIO;
    }
    return ckr_fail(errmsg, CF_EIO, what, crv);
}

static int seal_encrypt(struct node_seal *base,
                        const uint8_t *aad,
                        size_t aad_len,
                        const uint8_t *pt,
                        size_t len,
                        uint8_t **out,
                        size_t *out_len,
                        char errmsg[CF_ERRMSG_SIZE])
{
    struct seal_pkcs11 *s = CF_CONTAINER_OF(base, struct seal_pkcs11, base);
    *out = NULL;
    *out_len = 0;
    if (len > SIZE_MAX - OVERHEAD || len > ULONG_MAX - OVERHEAD || aad_len > ULONG_MAX) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": value too big");
        return CF_ETOOBIG;
    }
    uint8_t iv[IV_LEN];
    int rv = cf_random(iv, sizeof(iv));
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": random IV: %s", cf_strerror(rv));
        return rv;
    }
    struct gcm_op op = {
        .enc = true, .iv = iv, .aad = aad, .aad_len = aad_len, .in = pt, .in_len = len};
    op.out_cap = len + TAG_LEN;
    op.out = cf_malloc(op.out_cap);
    if (op.out == NULL) {
        return CF_ENOMEM;
    }
    CK_RV crv = pooled_run(s, &op);
    if (crv != CKR_OK) {
        cf_free(op.out);
        return crv == CKR_HOST_MEMORY ? CF_ENOMEM : op_fail(s, &op, crv, errmsg);
    }
    if (op.out_len != len + TAG_LEN) {
        cf_free(op.out);
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": encrypt: module returned %zu bytes for %zu",
                         op.out_len, len);
        return CF_EIO;
    }
    uint8_t *res = cf_malloc(HEADER_LEN + op.out_len);
    if (res == NULL) {
        cf_free(op.out);
        return CF_ENOMEM;
    }
    res[0] = FORMAT_GCM;
    memcpy(res + 1, iv, IV_LEN);
    memcpy(res + HEADER_LEN, op.out, op.out_len);
    *out = res;
    *out_len = HEADER_LEN + op.out_len;
    cf_free(op.out);
    return CF_OK;
}

/* Whether a failed C_Decrypt means "the GCM tag did not verify". CKR_ENCRYPTED_DATA_INVALID
 * says so, but modules also answer with generic codes (SoftHSM 2.6 returns CKR_GENERAL_ERROR
 * for a bad tag). For those, the key is tried on a value of our own: when that round trip
 * works, the HSM is fine and it was the value that failed; when it does not, the HSM is the
 * problem (CF_EIO). The probe costs two operations, on the failure path only. */
static bool tag_failure(struct seal_pkcs11 *s, const struct gcm_op *failed, CK_RV crv)
{
    if (failed->at_init || failed->key_gone) {
        return false; /* the data was not looked at */
    }
    switch (crv) {
        case CKR_ENCRYPTED_DATA_INVALID:
        case CKR_ENCRYPTED_DATA_LEN_RANGE:
        case CKR_SIGNATURE_INVALID:
            return true;
        case CKR_GENERAL_ERROR:
        case CKR_FUNCTION_FAILED:
        case CKR_DATA_INVALID:
        case CKR_DATA_LEN_RANGE:
            break;
        default:
            return false;
    }
    uint8_t iv[IV_LEN];
    uint8_t probe[16] = {0};
    struct gcm_op enc = {.enc = true, .iv = iv, .in = probe, .in_len = sizeof(probe)};
    struct gcm_op dec = {.enc = false, .iv = iv};
    enc.out_cap = dec.out_cap = sizeof(probe) + TAG_LEN;
    enc.out = cf_malloc(enc.out_cap);
    dec.out = cf_malloc(dec.out_cap);
    bool ok = enc.out != NULL && dec.out != NULL && cf_random(iv, sizeof(iv)) == CF_OK &&
              pooled_run(s, &enc) == CKR_OK;
    if (ok) {
        dec.in = enc.out;
        dec.in_len = enc.out_len;
        ok = pooled_run(s, &dec) == CKR_OK && dec.out_len == sizeof(probe) &&
             memcmp(dec.out, probe, sizeof(probe)) == 0;
    }
    cf_free(enc.out);
    cf_free(dec.out);
    return ok;
}

static int seal_decrypt(struct node_seal *base,
                        const uint8_t *aad,
                        size_t aad_len,
                        const uint8_t *ct,
                        size_t len,
                        uint8_t **out,
                        size_t *out_len,
                        char errmsg[CF_ERRMSG_SIZE])
{
    struct seal_pkcs11 *s = CF_CONTAINER_OF(base, struct seal_pkcs11, base);
    *out = NULL;
    *out_len = 0;
    if (len < 1) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": sealed value is empty");
        return CF_ECORRUPT;
    }
    if (ct[0] != FORMAT_GCM) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": unknown sealed value format 0x%02x", ct[0]);
        return CF_EVERSION;
    }
    if (len < OVERHEAD) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": sealed value too short (%zu bytes, need %d)",
                         len, OVERHEAD);
        return CF_ECORRUPT;
    }
    if (len > ULONG_MAX || aad_len > ULONG_MAX) {
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": value too big");
        return CF_ETOOBIG;
    }
    struct gcm_op op = {.enc = false,
                        .iv = ct + 1,
                        .aad = aad,
                        .aad_len = aad_len,
                        .in = ct + HEADER_LEN,
                        .in_len = len - HEADER_LEN};
    /* Room for the tag too: some modules ask for it before they strip it. */
    op.out_cap = op.in_len;
    op.out = cf_malloc(op.out_cap);
    if (op.out == NULL) {
        return CF_ENOMEM;
    }
    CK_RV crv = pooled_run(s, &op);
    if (crv != CKR_OK) {
        cf_free(op.out);
        if (crv == CKR_HOST_MEMORY) {
            return CF_ENOMEM;
        }
        if (tag_failure(s, &op, crv)) {
            cf_errmsg_printf(errmsg,
                             "seal \"pkcs11\": decrypt: the value does not authenticate "
                             "(wrong key, wrong context or tampered)");
            return CF_EAUTH;
        }
        return op_fail(s, &op, crv, errmsg);
    }
    if (op.out_len != op.in_len - TAG_LEN) {
        cf_cleanse(op.out, op.out_len);
        cf_free(op.out);
        cf_errmsg_printf(errmsg, "seal \"pkcs11\": decrypt: module returned %zu bytes for %zu",
                         op.out_len, op.in_len - TAG_LEN);
        return CF_EIO;
    }
    *out = op.out;
    *out_len = op.out_len;
    return CF_OK;
}

static bool seal_ready(const struct node_seal *base)
{
    (void)base; /* the object exists only once open found the key and logged in */
    return true;
}

static void seal_free(struct node_seal *base)
{
    struct seal_pkcs11 *s = CF_CONTAINER_OF(base, struct seal_pkcs11, base);
    pthread_mutex_lock(&modules_lock);
    bool last = s->mod->refs == 1;
    pthread_mutex_unlock(&modules_lock);
    for (size_t i = 0; i < s->n_idle; i++) {
        s->fn->C_CloseSession(s->idle[i]);
    }
    /* Logging out is per application and token: only the module's last seal may do it (the
     * others' sessions share the login). C_Finalize in module_put closes what remains. */
    if (last) {
        s->fn->C_Logout(s->anchor);
    }
    s->fn->C_CloseSession(s->anchor);
    module_put(s->mod);
    pthread_mutex_destroy(&s->lock);
    cf_secret_free(s->pin);
    cf_free(s->key_label);
    cf_free(s);
}

static const struct node_seal_ops pkcs11_ops = {
    .type = "pkcs11",
    .encrypt = seal_encrypt,
    .decrypt = seal_decrypt,
    .provide_key = NULL,
    .ready = seal_ready,
    .free = seal_free,
};

int node_seal_pkcs11_open(const struct node_seal_stanza *st,
                          struct node_seal **out,
                          char errmsg[CF_ERRMSG_SIZE])
{
    *out = NULL;
    struct config c;
    int rv = config_read(st, &c, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    struct seal_pkcs11 *s = cf_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CF_ENOMEM;
    }
    s->base.ops = &pkcs11_ops;
    s->key = CK_INVALID_HANDLE;
    s->session_flags = CKF_SERIAL_SESSION | (c.force_rw ? CKF_RW_SESSION : 0);
    s->key_id_len = c.key_id_len;
    memcpy(s->key_id, c.key_id, c.key_id_len);
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        cf_free(s);
        return CF_ENOMEM;
    }
    s->pin = cf_secret_from(c.pin, strlen(c.pin) + 1);
    if (s->pin == NULL) {
        rv = CF_ENOMEM;
        goto err_after_mutex;
    }
    if (c.key_label != NULL) {
        s->key_label = cf_strdup(c.key_label);
        if (s->key_label == NULL) {
            rv = CF_ENOMEM;
            goto err_after_pin;
        }
    }
    rv = module_get(c.lib, &s->mod, errmsg);
    if (rv != CF_OK) {
        goto err_after_pin;
    }
    s->fn = s->mod->fn;
    rv = slot_find(s->fn, &c, &s->slot, errmsg);
    if (rv != CF_OK) {
        goto err_after_module;
    }
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_RV crv = session_open(s, 0, &h);
    if (crv != CKR_OK) {
        rv = ckr_fail(errmsg, CF_EIO, "open a session and log in", crv);
        if (crv == CKR_PIN_INCORRECT || crv == CKR_PIN_LOCKED || crv == CKR_PIN_INVALID ||
            crv == CKR_PIN_LEN_RANGE || crv == CKR_PIN_EXPIRED) {
            rv = CF_EAUTH;
        }
        goto err_after_module;
    }
    rv = key_find_or_generate(s, h, false, s->key_label, s->key_id, s->key_id_len, c.generate_key,
                              &s->key, errmsg);
    if (rv == CF_OK && c.generate_key && (c.hmac_key_label != NULL || c.hmac_key_id_len > 0)) {
        /* Vault's GCM seal does not use it, but creates it alongside, and so do we: a later
         * switch to an HMAC-using mechanism finds the pair that Vault would have made. */
        CK_OBJECT_HANDLE hmac = CK_INVALID_HANDLE;
        rv = key_find_or_generate(s, h, true, c.hmac_key_label, c.hmac_key_id, c.hmac_key_id_len,
                                  true, &hmac, errmsg);
    }
    if (rv != CF_OK) {
        s->fn->C_CloseSession(h);
        goto err_after_module;
    }
    /* The first session stays open, idle, for the seal's life. Closing an application's last
     * session logs it out, and some modules (SoftHSM) then invalidate every object handle:
     * without an anchor, a pool that drains to zero after failures would churn through login
     * and key lookup again. */
    s->anchor = h;
    CF_LOG(CF_LOG_INFO, "pkcs11: seal open on slot %lu", (unsigned long)s->slot);
    *out = &s->base;
    return CF_OK;

err_after_module:
    module_put(s->mod);
err_after_pin:
    cf_free(s->key_label);
    cf_secret_free(s->pin);
err_after_mutex:
    pthread_mutex_destroy(&s->lock);
    cf_free(s);
    return rv;
}
