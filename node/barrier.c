/*
 * The storage barrier: a keyring of AES-256-GCM keys numbered by term (see barrier.h).
 *
 * Happy path: sys/init calls barrier_generate and persists barrier_seal_root and
 * barrier_encode_keyring; later boots call barrier_unseal with both blobs. Every storage read
 * and write then goes through barrier_decrypt/barrier_encrypt, from the loop thread and from
 * worker threads, so those two only take a shared lock, build the AAD on the stack for paths
 * up to AAD_STACK bytes, and make one allocation (the output). Failures: a wrong unseal key
 * (CF_EAUTH, nothing changes), damaged or foreign blobs (CF_ECORRUPT / CF_EVERSION), tampered
 * values (CF_EAUTH) and terms missing from the keyring (CF_ENOTFOUND).
 *
 * All key bytes (root key, term keys, the keyring plaintext) live in cf_secret buffers and are
 * cleansed when dropped. Random nonces bound a key to about 2^32 encryptions; the per-term
 * counter reported by barrier_term_info lets the core rotate well before that.
 */
#include "node/barrier.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/bytes.h"
#include "lib/mem.h"

#define BARRIER_FORMAT_VERSION 1 /* encrypted value header */
#define BLOB_VERSION 1           /* root key and keyring blobs */
#define KEYRING_VERSION 1        /* keyring plaintext */
#define KEYRING_HEADER_LEN 9     /* version (1), active term (4), count (4) */
#define KEYRING_ENTRY_LEN 44     /* term (4), install time (8), key (32) */
#define ROOT_BLOB_LEN (1 + CF_AEAD_OVERHEAD + BARRIER_KEY_LEN)
#define AAD_STACK 512

static const char ROOT_AAD[] = "core/root-key";
static const char KEYRING_AAD[] = "core/keyring";

/* The fixed header of an encrypted value, as laid out on disk. */
struct barrier_wire_header
{
    uint8_t version;    /* BARRIER_FORMAT_VERSION */
    uint8_t term_be[4]; /* keyring term, big-endian */
};
_Static_assert(sizeof(struct barrier_wire_header) == BARRIER_HEADER_LEN,
               "barrier header is 5 bytes on disk");
_Static_assert(BARRIER_OVERHEAD == BARRIER_HEADER_LEN + CF_AEAD_OVERHEAD,
               "BARRIER_OVERHEAD matches the AEAD overhead");
_Static_assert(BARRIER_KEY_LEN == CF_AEAD_KEY_LEN, "barrier keys are AES-256 keys");
_Static_assert(KEYRING_ENTRY_LEN == 4 + 8 + BARRIER_KEY_LEN, "keyring entry layout");

struct barrier_key
{
    uint32_t term;
    int64_t install_time_ns;
    atomic_uint_least64_t encryptions; /* memory only; relaxed increments */
    struct cf_secret *key;             /* owned; BARRIER_KEY_LEN bytes */
};

struct keyring
{
    struct cf_secret *root;    /* owned; BARRIER_KEY_LEN bytes */
    struct barrier_key **keys; /* owned; sorted by strictly ascending term */
    size_t n;                  /* number of keys; the last one is the active term */
};

struct barrier
{
    pthread_rwlock_t *lock; /* owned; shared for readers, exclusive for keyring changes */
    bool unsealed;
    struct keyring kr; /* empty while sealed */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void key_free(struct barrier_key *k)
{
    if (k == NULL) {
        return;
    }
    cf_secret_free(k->key);
    cf_free(k);
}

/* A key for `term` with `key_bytes` copied in, or fresh random bytes when NULL. */
static int key_new(uint32_t term,
                   int64_t install_time_ns,
                   const uint8_t *key_bytes,
                   struct barrier_key **out)
{
    struct barrier_key *k = cf_calloc(1, sizeof(*k));
    if (k == NULL) {
        return CF_ENOMEM;
    }
    k->term = term;
    k->install_time_ns = install_time_ns;
    atomic_init(&k->encryptions, 0);
    k->key = cf_secret_new(BARRIER_KEY_LEN);
    if (k->key == NULL) {
        key_free(k);
        return CF_ENOMEM;
    }
    if (key_bytes != NULL) {
        memcpy(k->key->data, key_bytes, BARRIER_KEY_LEN);
    } else if (cf_random(k->key->data, BARRIER_KEY_LEN) != CF_OK) {
        key_free(k);
        return CF_ECRYPTO;
    }
    *out = k;
    return CF_OK;
}

static void keyring_clear(struct keyring *kr)
{
    for (size_t i = 0; i < kr->n; i++) {
        key_free(kr->keys[i]);
    }
    CF_FREE(kr->keys);
    kr->n = 0;
    cf_secret_free(kr->root);
    kr->root = NULL;
}

/* The key for `term`, by binary search; NULL when absent. */
static const struct barrier_key *keyring_find(const struct keyring *kr, uint32_t term)
{
    size_t lo = 0;
    size_t hi = kr->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t t = kr->keys[mid]->term;
        if (t == term) {
            return kr->keys[mid];
        }
        if (t < term) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

struct barrier *barrier_new(void)
{
    struct barrier *b = cf_calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->lock = cf_malloc(sizeof(*b->lock));
    if (b->lock == NULL) {
        cf_free(b);
        return NULL;
    }
    /* Writers first: a seal must not wait behind a steady stream of worker-pool reads. */
    pthread_rwlockattr_t attr;
    int rv = pthread_rwlockattr_init(&attr);
    if (rv == 0) {
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        rv = pthread_rwlock_init(b->lock, &attr);
        pthread_rwlockattr_destroy(&attr);
    }
    if (rv != 0) {
        cf_free(b->lock);
        cf_free(b);
        return NULL;
    }
    return b;
}

void barrier_free(struct barrier *b)
{
    if (b == NULL) {
        return;
    }
    keyring_clear(&b->kr);
    pthread_rwlock_destroy(b->lock);
    cf_free(b->lock);
    cf_free(b);
}

bool barrier_is_unsealed(const struct barrier *b)
{
    pthread_rwlock_rdlock(b->lock);
    bool unsealed = b->unsealed;
    pthread_rwlock_unlock(b->lock);
    return unsealed;
}

int barrier_generate(struct barrier *b, char errmsg[CF_ERRMSG_SIZE])
{
    struct keyring kr = {0};
    int rv;
    kr.root = cf_secret_new(BARRIER_KEY_LEN);
    kr.keys = cf_calloc(1, sizeof(*kr.keys));
    if (kr.root == NULL || kr.keys == NULL) {
        cf_errmsg_printf(errmsg, "generate keyring: %s", cf_strerror(CF_ENOMEM));
        rv = CF_ENOMEM;
        goto out;
    }
    rv = cf_random(kr.root->data, BARRIER_KEY_LEN);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "generate root key: %s", cf_strerror(rv));
        goto out;
    }
    rv = key_new(1, now_ns(), NULL, &kr.keys[0]);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "generate term 1 key: %s", cf_strerror(rv));
        goto out;
    }
    kr.n = 1;
    pthread_rwlock_wrlock(b->lock);
    if (b->unsealed) {
        rv = CF_EINVAL;
        cf_errmsg_printf(errmsg, "generate keyring: barrier is already unsealed");
    } else {
        b->kr = kr;
        b->unsealed = true;
        memset(&kr, 0, sizeof(kr));
    }
    pthread_rwlock_unlock(b->lock);
out:
    keyring_clear(&kr);
    return rv;
}

/* Seals pt into a blob: version byte || nonce || ciphertext || tag. */
static int blob_seal(const uint8_t *key,
                     const char *aad,
                     size_t aadlen,
                     const uint8_t *pt,
                     size_t ptlen,
                     uint8_t **out,
                     size_t *outlen)
{
    if (ptlen > SIZE_MAX - 1 - CF_AEAD_OVERHEAD) {
        return CF_ETOOBIG;
    }
    size_t len = 1 + CF_AEAD_OVERHEAD + ptlen;
    uint8_t *blob = cf_malloc(len);
    if (blob == NULL) {
        return CF_ENOMEM;
    }
    blob[0] = BLOB_VERSION;
    int rv = cf_aead_seal(key, aad, aadlen, pt, ptlen, blob + 1);
    if (rv != CF_OK) {
        cf_free(blob);
        return rv;
    }
    *out = blob;
    *outlen = len;
    return CF_OK;
}

int barrier_seal_root(const struct barrier *b,
                      const uint8_t *unseal_key,
                      size_t klen,
                      uint8_t **out,
                      size_t *outlen)
{
    if (klen != BARRIER_KEY_LEN) {
        return CF_EINVAL;
    }
    pthread_rwlock_rdlock(b->lock);
    int rv = CF_ESEALED;
    if (b->unsealed) {
        rv = blob_seal(unseal_key, ROOT_AAD, sizeof(ROOT_AAD) - 1, b->kr.root->data,
                       BARRIER_KEY_LEN, out, outlen);
    }
    pthread_rwlock_unlock(b->lock);
    return rv;
}

int barrier_encode_keyring(const struct barrier *b, uint8_t **out, size_t *outlen)
{
    struct cf_secret *pt = NULL;
    int rv;
    pthread_rwlock_rdlock(b->lock);
    if (!b->unsealed) {
        rv = CF_ESEALED;
        goto out;
    }
    const struct keyring *kr = &b->kr;
    if (kr->n > UINT32_MAX || kr->n > (SIZE_MAX - KEYRING_HEADER_LEN) / KEYRING_ENTRY_LEN) {
        rv = CF_ETOOBIG;
        goto out;
    }
    pt = cf_secret_new(KEYRING_HEADER_LEN + kr->n * KEYRING_ENTRY_LEN);
    if (pt == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    uint8_t *p = pt->data;
    p[0] = KEYRING_VERSION;
    cf_put_be32(p + 1, kr->keys[kr->n - 1]->term);
    cf_put_be32(p + 5, (uint32_t)kr->n);
    p += KEYRING_HEADER_LEN;
    for (size_t i = 0; i < kr->n; i++) {
        const struct barrier_key *k = kr->keys[i];
        cf_put_be32(p, k->term);
        cf_put_be64(p + 4, (uint64_t)k->install_time_ns);
        memcpy(p + 12, k->key->data, BARRIER_KEY_LEN);
        p += KEYRING_ENTRY_LEN;
    }
    rv = blob_seal(kr->root->data, KEYRING_AAD, sizeof(KEYRING_AAD) - 1, pt->data, pt->len, out,
                   outlen);
out:
    pthread_rwlock_unlock(b->lock);
    cf_secret_free(pt);
    return rv;
}

/* Parses a keyring plaintext (KEYRING_VERSION) into kr->keys; kr->root is left alone. */
static int keyring_decode(const uint8_t *p,
                          size_t len,
                          struct keyring *kr,
                          char errmsg[CF_ERRMSG_SIZE])
{
    if (len < 1) {
        cf_errmsg_printf(errmsg, "keyring is empty");
        return CF_ECORRUPT;
    }
    if (p[0] != KEYRING_VERSION) {
        cf_errmsg_printf(errmsg, "keyring version %u is not supported", p[0]);
        return CF_EVERSION;
    }
    if (len < KEYRING_HEADER_LEN) {
        cf_errmsg_printf(errmsg, "keyring is truncated");
        return CF_ECORRUPT;
    }
    uint32_t active = cf_get_be32(p + 1);
    uint32_t count = cf_get_be32(p + 5);
    if (count == 0 || count > (len - KEYRING_HEADER_LEN) / KEYRING_ENTRY_LEN ||
        len != KEYRING_HEADER_LEN + (size_t)count * KEYRING_ENTRY_LEN) {
        cf_errmsg_printf(errmsg, "keyring length %zu does not hold %" PRIu32 " keys", len, count);
        return CF_ECORRUPT;
    }
    kr->keys = cf_calloc(count, sizeof(*kr->keys));
    if (kr->keys == NULL) {
        cf_errmsg_printf(errmsg, "keyring: %s", cf_strerror(CF_ENOMEM));
        return CF_ENOMEM;
    }
    const uint8_t *e = p + KEYRING_HEADER_LEN;
    uint32_t prev = 0;
    for (uint32_t i = 0; i < count; i++, e += KEYRING_ENTRY_LEN) {
        uint32_t term = cf_get_be32(e);
        if (term <= prev) {
            cf_errmsg_printf(errmsg, "keyring terms are not ascending at term %" PRIu32, term);
            return CF_ECORRUPT;
        }
        prev = term;
        int rv = key_new(term, (int64_t)cf_get_be64(e + 4), e + 12, &kr->keys[i]);
        if (rv != CF_OK) {
            cf_errmsg_printf(errmsg, "keyring: %s", cf_strerror(rv));
            return rv;
        }
        kr->n++;
    }
    if (active != prev) {
        cf_errmsg_printf(errmsg, "keyring active term %" PRIu32 " is not its newest term %" PRIu32,
                         active, prev);
        return CF_ECORRUPT;
    }
    return CF_OK;
}

/* Checks a blob's version and length; the AEAD part starts at blob + 1. */
static int blob_check(const uint8_t *blob,
                      size_t len,
                      const char *what,
                      char errmsg[CF_ERRMSG_SIZE])
{
    if (len < 1) {
        cf_errmsg_printf(errmsg, "%s is empty", what);
        return CF_ECORRUPT;
    }
    if (blob[0] != BLOB_VERSION) {
        cf_errmsg_printf(errmsg, "%s version %u is not supported", what, blob[0]);
        return CF_EVERSION;
    }
    if (len < 1 + CF_AEAD_OVERHEAD) {
        cf_errmsg_printf(errmsg, "%s is truncated", what);
        return CF_ECORRUPT;
    }
    return CF_OK;
}

int barrier_unseal(struct barrier *b,
                   const uint8_t *unseal_key,
                   size_t klen,
                   const uint8_t *root_blob,
                   size_t root_len,
                   const uint8_t *keyring_blob,
                   size_t keyring_len,
                   char errmsg[CF_ERRMSG_SIZE])
{
    struct keyring kr = {0};
    struct cf_secret *pt = NULL;
    int rv;
    size_t n = 0;

    if (klen != BARRIER_KEY_LEN) {
        cf_errmsg_printf(errmsg, "unseal key is %zu bytes, want %d", klen, BARRIER_KEY_LEN);
        return CF_EINVAL;
    }
    rv = blob_check(root_blob, root_len, "root key blob", errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    if (root_len != ROOT_BLOB_LEN) {
        cf_errmsg_printf(errmsg, "root key blob is %zu bytes, want %d", root_len, ROOT_BLOB_LEN);
        rv = CF_ECORRUPT;
        goto out;
    }
    kr.root = cf_secret_new(BARRIER_KEY_LEN);
    if (kr.root == NULL) {
        cf_errmsg_printf(errmsg, "root key: %s", cf_strerror(CF_ENOMEM));
        rv = CF_ENOMEM;
        goto out;
    }
    rv = cf_aead_open(unseal_key, ROOT_AAD, sizeof(ROOT_AAD) - 1, root_blob + 1, root_len - 1,
                      kr.root->data, &n);
    if (rv == CF_EAUTH) {
        cf_errmsg_printf(errmsg, "root key does not decrypt: the unseal key is wrong");
        goto out;
    }
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "decrypt root key: %s", cf_strerror(rv));
        goto out;
    }

    rv = blob_check(keyring_blob, keyring_len, "keyring blob", errmsg);
    if (rv != CF_OK) {
        goto out;
    }
    pt = cf_secret_new(keyring_len - 1 - CF_AEAD_OVERHEAD);
    if (pt == NULL) {
        cf_errmsg_printf(errmsg, "keyring: %s", cf_strerror(CF_ENOMEM));
        rv = CF_ENOMEM;
        goto out;
    }
    rv = cf_aead_open(kr.root->data, KEYRING_AAD, sizeof(KEYRING_AAD) - 1, keyring_blob + 1,
                      keyring_len - 1, pt->data, &n);
    if (rv == CF_EAUTH) {
        cf_errmsg_printf(errmsg, "keyring does not decrypt under the root key");
        rv = CF_ECORRUPT;
        goto out;
    }
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "decrypt keyring: %s", cf_strerror(rv));
        goto out;
    }
    rv = keyring_decode(pt->data, pt->len, &kr, errmsg);
    if (rv != CF_OK) {
        goto out;
    }

    pthread_rwlock_wrlock(b->lock);
    if (b->unsealed) {
        cf_errmsg_printf(errmsg, "barrier is already unsealed");
        rv = CF_EINVAL;
    } else {
        b->kr = kr;
        b->unsealed = true;
        memset(&kr, 0, sizeof(kr));
    }
    pthread_rwlock_unlock(b->lock);
out:
    cf_secret_free(pt);
    keyring_clear(&kr);
    return rv;
}

void barrier_seal(struct barrier *b)
{
    pthread_rwlock_wrlock(b->lock);
    keyring_clear(&b->kr);
    b->unsealed = false;
    pthread_rwlock_unlock(b->lock);
}

int barrier_rotate(struct barrier *b, uint32_t *new_term)
{
    struct barrier_key *k = NULL;
    int rv;
    pthread_rwlock_wrlock(b->lock);
    if (!b->unsealed) {
        rv = CF_ESEALED;
        goto out;
    }
    struct keyring *kr = &b->kr;
    uint32_t last = kr->keys[kr->n - 1]->term;
    if (last == UINT32_MAX || kr->n >= SIZE_MAX / sizeof(*kr->keys)) {
        rv = CF_ETOOBIG;
        goto out;
    }
    rv = key_new(last + 1, now_ns(), NULL, &k);
    if (rv != CF_OK) {
        goto out;
    }
    struct barrier_key **keys = cf_realloc(kr->keys, (kr->n + 1) * sizeof(*keys));
    if (keys == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    keys[kr->n] = k;
    k = NULL;
    kr->keys = keys;
    kr->n++;
    *new_term = last + 1;
out:
    pthread_rwlock_unlock(b->lock);
    key_free(k);
    return rv;
}

/* Points *aad at header || path, in stackbuf when it fits, else in a cf_malloc'd buffer that
 * the caller frees when *aad != stackbuf. */
static int aad_build(const uint8_t *header,
                     const char *path,
                     uint8_t *stackbuf,
                     uint8_t **aad,
                     size_t *aadlen)
{
    size_t plen = strlen(path);
    if (plen > SIZE_MAX - BARRIER_HEADER_LEN) {
        return CF_ETOOBIG;
    }
    size_t len = BARRIER_HEADER_LEN + plen;
    uint8_t *p = stackbuf;
    if (len > AAD_STACK) {
        p = cf_malloc(len);
        if (p == NULL) {
            return CF_ENOMEM;
        }
    }
    memcpy(p, header, BARRIER_HEADER_LEN);
    memcpy(p + BARRIER_HEADER_LEN, path, plen);
    *aad = p;
    *aadlen = len;
    return CF_OK;
}

int barrier_encrypt(struct barrier *b,
                    const char *path,
                    const uint8_t *pt,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen)
{
    uint8_t stackbuf[AAD_STACK];
    uint8_t *aad = NULL;
    uint8_t *buf = NULL;
    size_t aadlen = 0;
    int rv;
    if (len > SIZE_MAX - BARRIER_OVERHEAD) {
        return CF_ETOOBIG;
    }
    pthread_rwlock_rdlock(b->lock);
    if (!b->unsealed) {
        rv = CF_ESEALED;
        goto out;
    }
    struct barrier_key *k = b->kr.keys[b->kr.n - 1];
    buf = cf_malloc(len + BARRIER_OVERHEAD);
    if (buf == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    buf[0] = BARRIER_FORMAT_VERSION;
    cf_put_be32(buf + 1, k->term);
    rv = aad_build(buf, path, stackbuf, &aad, &aadlen);
    if (rv != CF_OK) {
        goto out;
    }
    rv = cf_aead_seal(k->key->data, aad, aadlen, pt, len, buf + BARRIER_HEADER_LEN);
    if (rv != CF_OK) {
        goto out;
    }
    atomic_fetch_add_explicit(&k->encryptions, 1, memory_order_relaxed);
    *out = buf;
    *outlen = len + BARRIER_OVERHEAD;
    buf = NULL;
out:
    pthread_rwlock_unlock(b->lock);
    if (aad != stackbuf) {
        cf_free(aad);
    }
    cf_free(buf);
    return rv;
}

int barrier_decrypt(const struct barrier *b,
                    const char *path,
                    const uint8_t *ct,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen)
{
    uint8_t stackbuf[AAD_STACK];
    uint8_t *aad = NULL;
    uint8_t *buf = NULL;
    size_t aadlen = 0;
    int rv;
    pthread_rwlock_rdlock(b->lock);
    if (!b->unsealed) {
        rv = CF_ESEALED;
        goto out;
    }
    if (len < 1) {
        rv = CF_ECORRUPT;
        goto out;
    }
    if (ct[0] != BARRIER_FORMAT_VERSION) {
        rv = CF_EVERSION;
        goto out;
    }
    if (len < BARRIER_OVERHEAD) {
        rv = CF_ECORRUPT;
        goto out;
    }
    const struct barrier_key *k = keyring_find(&b->kr, cf_get_be32(ct + 1));
    if (k == NULL) {
        rv = CF_ENOTFOUND;
        goto out;
    }
    rv = aad_build(ct, path, stackbuf, &aad, &aadlen);
    if (rv != CF_OK) {
        goto out;
    }
    buf = cf_malloc(len - BARRIER_OVERHEAD);
    if (buf == NULL) {
        rv = CF_ENOMEM;
        goto out;
    }
    size_t n = 0;
    rv = cf_aead_open(k->key->data, aad, aadlen, ct + BARRIER_HEADER_LEN, len - BARRIER_HEADER_LEN,
                      buf, &n);
    if (rv != CF_OK) {
        goto out;
    }
    *out = buf;
    *outlen = n;
    buf = NULL;
out:
    pthread_rwlock_unlock(b->lock);
    if (aad != stackbuf) {
        cf_free(aad);
    }
    cf_free(buf);
    return rv;
}

void barrier_term_info(const struct barrier *b, struct barrier_term_info *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(b->lock);
    if (b->unsealed) {
        const struct barrier_key *k = b->kr.keys[b->kr.n - 1];
        out->term = k->term;
        out->install_time_ns = k->install_time_ns;
        out->encryptions = atomic_load_explicit(&k->encryptions, memory_order_relaxed);
    }
    pthread_rwlock_unlock(b->lock);
}
