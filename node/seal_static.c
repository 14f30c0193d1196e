/*
 * The static key seal (`seal "static"`): a 256-bit key handed to the node from the environment,
 * from a secret file, or by an operator through sys/unseal. People see the key as a 24-word
 * BIP39 English phrase (lib/bip39.h); the AES-256-GCM key is the phrase's 32 bytes of entropy.
 *
 * The validation hash is the hex SHA-256 of the phrase in its canonical form (lower-case words
 * separated by single spaces, as `coffer operator generate-seal-key` prints it), so a phrase
 * typed with other spacing or capitals still matches. It is required for the manual provider
 * (there is nothing else to check an operator's phrase against) and checked, in constant time,
 * whenever it is configured.
 *
 * Once accepted the key is cloaked (lib/crypto.h cf_cloak): it is decrypted for each encrypt or
 * decrypt and zeroed at once. Ciphertext: format byte 0x01 || nonce || ciphertext || tag.
 *
 * Environment over config: SEAL_UNSEAL_PROVIDER, SEAL_UNSEAL_KEY (the phrase),
 * SEAL_UNSEAL_KEY_SECRET_PATH (a file holding the phrase), SEAL_UNSEAL_VALIDATION_HASH.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/bip39.h"
#include "lib/crypto.h"
#include "lib/mem.h"
#include "node/seal.h"

#define CF_LOG_MODULE "seal"
#include "lib/log.h"

#define STATIC_FORMAT 0x01
#define PHRASE_FILE_MAX 4096

struct static_seal
{
    struct node_seal base;
    char provider[16];
    bool have_hash;
    uint8_t hash[32];
    struct cf_cloak *key; /* NULL until a phrase is accepted */
};

int node_seal_static_phrase_hash(const char *phrase,
                                 uint8_t entropy[CF_BIP39_ENTROPY],
                                 char hash_hex[65],
                                 char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t ent[CF_BIP39_ENTROPY];
    char canon[CF_BIP39_PHRASE_MAX];
    int rv = cf_bip39_decode(phrase, ent, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    rv = cf_bip39_encode(ent, canon);
    uint8_t h[32];
    if (rv == CF_OK) {
        rv = cf_sha256(canon, strlen(canon), h);
    }
    if (rv == CF_OK) {
        cf_hex_encode(h, sizeof(h), hash_hex);
        if (entropy != NULL) {
            memcpy(entropy, ent, sizeof(ent));
        }
    }
    cf_cleanse(ent, sizeof(ent));
    cf_cleanse(canon, sizeof(canon));
    return rv;
}

int node_seal_static_generate(char phrase[CF_BIP39_PHRASE_MAX], char hash_hex[65])
{
    uint8_t ent[CF_BIP39_ENTROPY];
    char msg[CF_ERRMSG_SIZE];
    int rv = cf_random(ent, sizeof(ent));
    if (rv == CF_OK) {
        rv = cf_bip39_encode(ent, phrase);
    }
    cf_cleanse(ent, sizeof(ent));
    if (rv == CF_OK) {
        rv = node_seal_static_phrase_hash(phrase, NULL, hash_hex, msg);
    }
    return rv;
}

/* Parses a configured validation hash: 64 hex digits, an optional 0x prefix. */
static int parse_hash(const char *s, uint8_t out[32], char errmsg[CF_ERRMSG_SIZE])
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
    }
    size_t n = 0;
    if (strlen(s) != 64 || cf_hex_decode(s, 64, out, 32, &n) != CF_OK || n != 32) {
        cf_errmsg_printf(errmsg,
                         "seal \"static\": validation_hash must be the 64 hex digits of the "
                         "phrase's SHA-256 (a 0x prefix is allowed)");
        return CF_EINVAL;
    }
    return CF_OK;
}

/* Checks a phrase against the seal's hash and installs its key. Nothing changes on failure. */
static int accept_phrase(struct static_seal *s, const char *phrase, char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t ent[CF_BIP39_ENTROPY];
    char hex[65];
    char why[CF_ERRMSG_SIZE];
    int rv = node_seal_static_phrase_hash(phrase, ent, hex, why);
    if (rv == CF_EMALFORMED) {
        cf_errmsg_printf(errmsg, "the seal key phrase is not valid: %s", why);
        return CF_EAUTH;
    }
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "the seal key phrase could not be read: %s", cf_strerror(rv));
        return rv;
    }
    if (s->have_hash) {
        uint8_t h[32];
        size_t n = 0;
        cf_hex_decode(hex, 64, h, sizeof(h), &n);
        if (!cf_ct_equal(h, s->hash, sizeof(h))) {
            cf_cleanse(ent, sizeof(ent));
            cf_errmsg_printf(errmsg,
                             "the seal key phrase does not match the configured validation hash");
            return CF_EAUTH;
        }
    }
    struct cf_cloak *c = cf_cloak_new(ent, sizeof(ent));
    cf_cleanse(ent, sizeof(ent));
    if (c == NULL) {
        return CF_ENOMEM;
    }
    cf_cloak_free(s->key);
    s->key = c;
    return CF_OK;
}

/* Reads the phrase from a secret file, refusing one that is missing, empty, not a regular file
 * or open to group or others. *out is cf_malloc'd and cleansed by the caller. */
static int read_phrase_file(const char *path, char **out, char errmsg[CF_ERRMSG_SIZE])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cf_errmsg_printf(errmsg, "seal \"static\": cannot open key file %s: %s", path,
                         strerror(errno));
        return CF_EINVAL;
    }
    struct stat st;
    int rv = CF_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        cf_errmsg_printf(errmsg, "seal \"static\": key file %s is not a regular file", path);
        rv = CF_EINVAL;
    } else if ((st.st_mode & 077) != 0) {
        cf_errmsg_printf(errmsg,
                         "seal \"static\": key file %s is open to group or others (mode %04o); "
                         "it must be readable by its owner only (chmod 600)",
                         path, (unsigned)(st.st_mode & 07777));
        rv = CF_EINVAL;
    } else if (st.st_size == 0) {
        cf_errmsg_printf(errmsg, "seal \"static\": key file %s is empty", path);
        rv = CF_EINVAL;
    } else if (st.st_size > PHRASE_FILE_MAX) {
        cf_errmsg_printf(errmsg, "seal \"static\": key file %s is larger than %d bytes", path,
                         PHRASE_FILE_MAX);
        rv = CF_EINVAL;
    }
    char *buf = NULL;
    if (rv == CF_OK) {
        buf = cf_calloc(1, (size_t)st.st_size + 1);
        rv = buf ? CF_OK : CF_ENOMEM;
    }
    size_t got = 0;
    while (rv == CF_OK && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            cf_errmsg_printf(errmsg, "seal \"static\": read key file %s: %s", path,
                             n < 0 ? strerror(errno) : "short read");
            rv = CF_EIO;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (rv == CF_OK && strspn(buf, " \t\r\n") == got) {
        cf_errmsg_printf(errmsg, "seal \"static\": key file %s is empty", path);
        rv = CF_EINVAL;
    }
    if (rv != CF_OK && buf != NULL) {
        cf_cleanse(buf, got);
        CF_FREE(buf);
    }
    *out = buf;
    return rv;
}

static int with_key(struct static_seal *s, struct cf_secret **key, char errmsg[CF_ERRMSG_SIZE])
{
    if (s->key == NULL) {
        cf_errmsg_printf(errmsg, "the static seal has no key yet; post its phrase to sys/unseal");
        return CF_ESEALED;
    }
    int rv = cf_cloak_open(s->key, key);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "open the cloaked seal key: %s", cf_strerror(rv));
    }
    return rv;
}

static int static_encrypt(struct node_seal *base,
                          const uint8_t *aad,
                          size_t aad_len,
                          const uint8_t *pt,
                          size_t len,
                          uint8_t **out,
                          size_t *out_len,
                          char errmsg[CF_ERRMSG_SIZE])
{
    struct static_seal *s = (struct static_seal *)base;
    struct cf_secret *key = NULL;
    int rv = with_key(s, &key, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    size_t n = 1 + len + CF_AEAD_OVERHEAD;
    uint8_t *buf = cf_malloc(n);
    rv = buf ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        buf[0] = STATIC_FORMAT;
        rv = cf_aead_seal(key->data, aad, aad_len, pt, len, buf + 1);
    }
    cf_secret_free(key);
    if (rv != CF_OK) {
        cf_free(buf);
        cf_errmsg_printf(errmsg, "static seal encrypt: %s", cf_strerror(rv));
        return rv;
    }
    *out = buf;
    *out_len = n;
    return CF_OK;
}

static int static_decrypt(struct node_seal *base,
                          const uint8_t *aad,
                          size_t aad_len,
                          const uint8_t *ct,
                          size_t len,
                          uint8_t **out,
                          size_t *out_len,
                          char errmsg[CF_ERRMSG_SIZE])
{
    struct static_seal *s = (struct static_seal *)base;
    if (len < 1 + CF_AEAD_OVERHEAD) {
        cf_errmsg_printf(errmsg, "static seal: value of %zu bytes is too short", len);
        return CF_ECORRUPT;
    }
    if (ct[0] != STATIC_FORMAT) {
        cf_errmsg_printf(errmsg, "static seal: unknown value format %u", ct[0]);
        return CF_EVERSION;
    }
    struct cf_secret *key = NULL;
    int rv = with_key(s, &key, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    size_t n = len - 1 - CF_AEAD_OVERHEAD;
    uint8_t *buf = cf_malloc(n ? n : 1);
    rv = buf ? CF_OK : CF_ENOMEM;
    if (rv == CF_OK) {
        rv = cf_aead_open(key->data, aad, aad_len, ct + 1, len - 1, buf, &n);
    }
    cf_secret_free(key);
    if (rv != CF_OK) {
        cf_free(buf);
        cf_errmsg_printf(errmsg, "static seal decrypt: %s",
                         rv == CF_EAUTH ? "wrong key or damaged value" : cf_strerror(rv));
        return rv;
    }
    *out = buf;
    *out_len = n;
    return CF_OK;
}

static int static_provide_key(struct node_seal *base, const char *key, char errmsg[CF_ERRMSG_SIZE])
{
    return accept_phrase((struct static_seal *)base, key, errmsg);
}

static bool static_ready(const struct node_seal *base)
{
    return ((const struct static_seal *)base)->key != NULL;
}

static void static_free(struct node_seal *base)
{
    struct static_seal *s = (struct static_seal *)base;
    cf_cloak_free(s->key);
    cf_cleanse(s, sizeof(*s));
    cf_free(s);
}

static const struct node_seal_ops static_ops = {
    .type = "static",
    .encrypt = static_encrypt,
    .decrypt = static_decrypt,
    .provide_key = static_provide_key,
    .ready = static_ready,
    .free = static_free,
};

/* The environment's value, else the stanza's; NULL when neither is set (an empty environment
 * variable counts as unset). */
static const char *setting(const struct node_seal_stanza *st, const char *env, const char *key)
{
    const char *v = getenv(env);
    if (v != NULL && v[0] != '\0') {
        return v;
    }
    return key ? node_seal_param(st, key) : NULL;
}

static int load_key(struct static_seal *s,
                    const struct node_seal_stanza *st,
                    char errmsg[CF_ERRMSG_SIZE])
{
    if (strcmp(s->provider, "manual") == 0) {
        if (!s->have_hash) {
            cf_errmsg_printf(errmsg,
                             "seal \"static\": provider \"manual\" needs validation_hash (or "
                             "SEAL_UNSEAL_VALIDATION_HASH) to check the operator's phrase");
            return CF_EINVAL;
        }
        CF_LOG(CF_LOG_INFO,
               "static seal, manual provider: the node stays sealed until its phrase is posted "
               "to sys/unseal");
        return CF_OK;
    }
    char *phrase = NULL;
    int rv;
    if (strcmp(s->provider, "environment") == 0) {
        const char *p = getenv("SEAL_UNSEAL_KEY");
        if (p == NULL || p[0] == '\0') {
            cf_errmsg_printf(errmsg,
                             "seal \"static\": provider \"environment\" needs the phrase in "
                             "SEAL_UNSEAL_KEY");
            return CF_EINVAL;
        }
        phrase = cf_strdup(p);
        rv = phrase ? CF_OK : CF_ENOMEM;
        CF_LOG(CF_LOG_WARN,
               "WARNING! The seal key is taken from the environment "
               "(SEAL_UNSEAL_KEY).");
        CF_LOG(CF_LOG_WARN,
               "WARNING! Any process that can read this server's environment can "
               "read its seal key: use it for development only.");
    } else {
        const char *path = setting(st, "SEAL_UNSEAL_KEY_SECRET_PATH", "key_file");
        if (path == NULL) {
            cf_errmsg_printf(errmsg,
                             "seal \"static\": provider \"file\" needs key_file (or "
                             "SEAL_UNSEAL_KEY_SECRET_PATH)");
            return CF_EINVAL;
        }
        rv = read_phrase_file(path, &phrase, errmsg);
    }
    if (rv == CF_OK) {
        rv = accept_phrase(s, phrase, errmsg);
        if (rv == CF_EAUTH) {
            char why[CF_ERRMSG_SIZE];
            snprintf(why, sizeof(why), "%s", errmsg);
            cf_errmsg_printf(errmsg, "seal \"static\": %s", why);
            rv = CF_EINVAL;
        }
    }
    if (phrase != NULL) {
        cf_cleanse(phrase, strlen(phrase));
        cf_free(phrase);
    }
    return rv;
}

int node_seal_static_open(const struct node_seal_stanza *st,
                          struct node_seal **out,
                          char errmsg[CF_ERRMSG_SIZE])
{
    static const char *const allowed[] = {"provider", "validation_hash", "key_file", "disabled",
                                          NULL};
    *out = NULL;
    int rv = node_seal_check_params(st, allowed, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    const char *provider = setting(st, "SEAL_UNSEAL_PROVIDER", "provider");
    if (provider == NULL) {
        cf_errmsg_printf(errmsg,
                         "seal \"static\": provider is required: \"environment\", \"file\" or "
                         "\"manual\" (or SEAL_UNSEAL_PROVIDER)");
        return CF_EINVAL;
    }
    if (strcmp(provider, "environment") != 0 && strcmp(provider, "file") != 0 &&
        strcmp(provider, "manual") != 0) {
        cf_errmsg_printf(errmsg,
                         "seal \"static\": provider \"%s\" is not one of \"environment\", "
                         "\"file\", \"manual\"",
                         provider);
        return CF_EINVAL;
    }
    struct static_seal *s = cf_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CF_ENOMEM;
    }
    s->base.ops = &static_ops;
    snprintf(s->provider, sizeof(s->provider), "%s", provider);
    const char *hash = setting(st, "SEAL_UNSEAL_VALIDATION_HASH", "validation_hash");
    if (hash != NULL) {
        rv = parse_hash(hash, s->hash, errmsg);
        s->have_hash = rv == CF_OK;
    }
    if (rv == CF_OK) {
        rv = load_key(s, st, errmsg);
    }
    if (rv != CF_OK) {
        static_free(&s->base);
        return rv;
    }
    *out = &s->base;
    return CF_OK;
}
