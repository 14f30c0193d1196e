/*
 * Seal wrap for mounts enabled with seal_wrap=true: envelope encryption under the auto-unseal
 * seal, as KMS- and HSM-backed seal wraps do it. Each value is encrypted in software with
 * AES-256-GCM under a data key (DEK); the DEK itself is encrypted by the seal (the HSM or the
 * static key) and stored beside the value, so no value can be read without the seal. The
 * storage key is the AAD of the value, so a wrapped value cannot be moved to another key.
 *
 * Wrapped form: "\0sw\x02" || u16 BE length of the sealed DEK || sealed DEK || nonce ||
 * ciphertext || tag. That string then goes through the barrier like any value.
 *
 * Speed: a DEK serves up to DEK_MAX_USES writes or DEK_MAX_AGE_NS, then a new one is made (one
 * seal call per rotation, not per write). Reads keep the DEKs they opened in a small cache keyed
 * by the SHA-256 of the sealed DEK, in locked memory, so a value read again costs no seal call.
 * Sealing the node forgets every DEK (node__seal_wrap_forget).
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "node/internal.h"

#define CF_LOG_MODULE "storage"
#include "lib/log.h"

#define WRAP_MAGIC_LEN 4
#define DEK_LEN 32
#define DEK_MAX_USES 1000000
#define DEK_MAX_AGE_NS (3600LL * 1000000000LL)
#define DEK_CACHE 64
#define DEK_AAD "coffer/seal-wrap-dek"

static const uint8_t WRAP_MAGIC[WRAP_MAGIC_LEN] = {0x00, 's', 'w', 0x02};

struct dek_slot
{
    bool used;
    uint8_t id[32]; /* SHA-256 of the sealed DEK */
    struct cf_secret *key;
};

struct node_sealwrap
{
    pthread_mutex_t lock;
    /* The DEK new values are written with. */
    struct cf_secret *cur;
    uint8_t *cur_sealed;
    size_t cur_sealed_len;
    uint64_t cur_uses;
    int64_t cur_born_ns;
    /* DEKs opened for reads. */
    struct dek_slot cache[DEK_CACHE];
    unsigned next_slot;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct node_sealwrap *state(struct node_core *core)
{
    if (core->sealwrap == NULL) {
        struct node_sealwrap *w = cf_calloc(1, sizeof(*w));
        if (w != NULL) {
            pthread_mutex_init(&w->lock, NULL);
        }
        core->sealwrap = w;
    }
    return core->sealwrap;
}

static void drop_current(struct node_sealwrap *w)
{
    cf_secret_free(w->cur);
    cf_free(w->cur_sealed);
    w->cur = NULL;
    w->cur_sealed = NULL;
    w->cur_sealed_len = 0;
    w->cur_uses = 0;
}

void node__seal_wrap_forget(struct node_core *core)
{
    struct node_sealwrap *w = core->sealwrap;
    if (w == NULL) {
        return;
    }
    drop_current(w);
    for (unsigned i = 0; i < DEK_CACHE; i++) {
        cf_secret_free(w->cache[i].key);
    }
    pthread_mutex_destroy(&w->lock);
    cf_cleanse(w, sizeof(*w));
    cf_free(w);
    core->sealwrap = NULL;
}

/* Makes a new current DEK (w locked). */
static int rotate(struct node_core *core, struct node_sealwrap *w, char errmsg[CF_ERRMSG_SIZE])
{
    struct cf_secret *k = cf_secret_new(DEK_LEN);
    if (k == NULL) {
        return CF_ENOMEM;
    }
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    int rv = cf_random(k->data, DEK_LEN);
    if (rv == CF_OK) {
        rv = node_seal_encrypt(core->auto_seal, (const uint8_t *)DEK_AAD, strlen(DEK_AAD), k->data,
                               DEK_LEN, &sealed, &sealed_len, errmsg);
    }
    if (rv == CF_OK && sealed_len > 0xffff) {
        cf_free(sealed);
        rv = CF_ETOOBIG;
    }
    if (rv != CF_OK) {
        cf_secret_free(k);
        return rv;
    }
    drop_current(w);
    w->cur = k;
    w->cur_sealed = sealed;
    w->cur_sealed_len = sealed_len;
    w->cur_born_ns = mono_ns();
    return CF_OK;
}

int node__seal_wrap(struct node_core *core,
                    const char *key,
                    const uint8_t *val,
                    size_t len,
                    uint8_t **out,
                    size_t *out_len)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    struct node_sealwrap *w = core->auto_seal ? state(core) : NULL;
    if (w == NULL) {
        return core->auto_seal ? CF_ENOMEM : CF_ESEALED;
    }
    pthread_mutex_lock(&w->lock);
    int rv = CF_OK;
    if (w->cur == NULL || w->cur_uses >= DEK_MAX_USES ||
        mono_ns() - w->cur_born_ns > DEK_MAX_AGE_NS) {
        rv = rotate(core, w, errmsg);
    }
    uint8_t *buf = NULL;
    size_t n = 0;
    if (rv == CF_OK) {
        n = WRAP_MAGIC_LEN + 2 + w->cur_sealed_len + len + CF_AEAD_OVERHEAD;
        buf = cf_malloc(n);
        rv = buf ? CF_OK : CF_ENOMEM;
    }
    if (rv == CF_OK) {
        uint8_t *p = buf;
        memcpy(p, WRAP_MAGIC, WRAP_MAGIC_LEN);
        p += WRAP_MAGIC_LEN;
        *p++ = (uint8_t)(w->cur_sealed_len >> 8);
        *p++ = (uint8_t)w->cur_sealed_len;
        memcpy(p, w->cur_sealed, w->cur_sealed_len);
        p += w->cur_sealed_len;
        rv = cf_aead_seal(w->cur->data, key, strlen(key), val, len, p);
        w->cur_uses++;
    }
    pthread_mutex_unlock(&w->lock);
    if (rv != CF_OK) {
        CF_LOG(CF_LOG_ERROR, "seal wrap of %s failed: %s", key,
               errmsg[0] ? errmsg : cf_strerror(rv));
        cf_free(buf);
        return rv;
    }
    *out = buf;
    *out_len = n;
    return CF_OK;
}

/* The DEK of a sealed blob: from the cache, else opened by the seal and cached (w locked).
 * *dek is a copy the caller frees. */
static int open_dek(struct node_core *core,
                    struct node_sealwrap *w,
                    const uint8_t *sealed,
                    size_t sealed_len,
                    struct cf_secret **dek,
                    char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t id[32];
    int rv = cf_sha256(sealed, sealed_len, id);
    if (rv != CF_OK) {
        return rv;
    }
    for (unsigned i = 0; i < DEK_CACHE; i++) {
        if (w->cache[i].used && memcmp(w->cache[i].id, id, sizeof(id)) == 0) {
            *dek = cf_secret_from(w->cache[i].key->data, w->cache[i].key->len);
            return *dek ? CF_OK : CF_ENOMEM;
        }
    }
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    rv = node_seal_decrypt(core->auto_seal, (const uint8_t *)DEK_AAD, strlen(DEK_AAD), sealed,
                           sealed_len, &pt, &pt_len, errmsg);
    if (rv != CF_OK) {
        return rv;
    }
    struct cf_secret *k = pt_len == DEK_LEN ? cf_secret_from(pt, pt_len) : NULL;
    cf_cleanse(pt, pt_len);
    cf_free(pt);
    if (k == NULL) {
        return pt_len == DEK_LEN ? CF_ENOMEM : CF_ECORRUPT;
    }
    struct dek_slot *s = &w->cache[w->next_slot];
    w->next_slot = (w->next_slot + 1) % DEK_CACHE;
    cf_secret_free(s->key);
    s->used = true;
    memcpy(s->id, id, sizeof(id));
    s->key = k;
    *dek = cf_secret_from(k->data, k->len);
    return *dek ? CF_OK : CF_ENOMEM;
}

int node__seal_unwrap(struct node_core *core,
                      const char *key,
                      const uint8_t *val,
                      size_t len,
                      uint8_t **out,
                      size_t *out_len)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    if (len < WRAP_MAGIC_LEN + 2 || memcmp(val, WRAP_MAGIC, WRAP_MAGIC_LEN) != 0) {
        CF_LOG(CF_LOG_ERROR, "%s in a seal-wrapped mount is not seal-wrapped", key);
        return CF_ECORRUPT;
    }
    size_t sealed_len = ((size_t)val[WRAP_MAGIC_LEN] << 8) | val[WRAP_MAGIC_LEN + 1];
    size_t head = WRAP_MAGIC_LEN + 2 + sealed_len;
    if (len < head + CF_AEAD_OVERHEAD) {
        CF_LOG(CF_LOG_ERROR, "seal-wrapped value %s is truncated", key);
        return CF_ECORRUPT;
    }
    struct node_sealwrap *w = core->auto_seal ? state(core) : NULL;
    if (w == NULL) {
        return core->auto_seal ? CF_ENOMEM : CF_ESEALED;
    }
    struct cf_secret *dek = NULL;
    pthread_mutex_lock(&w->lock);
    int rv = open_dek(core, w, val + WRAP_MAGIC_LEN + 2, sealed_len, &dek, errmsg);
    pthread_mutex_unlock(&w->lock);
    size_t n = len - head - CF_AEAD_OVERHEAD;
    uint8_t *buf = NULL;
    if (rv == CF_OK) {
        buf = cf_malloc(n ? n : 1);
        rv = buf ? CF_OK : CF_ENOMEM;
    }
    if (rv == CF_OK) {
        rv = cf_aead_open(dek->data, key, strlen(key), val + head, len - head, buf, &n);
    }
    cf_secret_free(dek);
    if (rv != CF_OK) {
        CF_LOG(CF_LOG_ERROR, "seal unwrap of %s failed: %s", key,
               errmsg[0] ? errmsg : cf_strerror(rv));
        cf_free(buf);
        return rv == CF_EAUTH ? CF_ECORRUPT : rv;
    }
    *out = buf;
    *out_len = n;
    return CF_OK;
}
