/*
 * The storage barrier: a keyring of AES-256-GCM keys, one per term, opened by the root key,
 * which is itself opened by the unseal key. Every stored value is encrypted under the active
 * term with a header naming the term, so values written before a rotation still decrypt
 * (docs/formats/barrier.md, docs/formats/keyring.md). Keys live in locked memory (cf_secret)
 * and are cleansed when the barrier seals.
 *
 * barrier_decrypt does not modify the barrier, so worker threads may call it on a barrier the
 * loop thread does not change meanwhile.
 */
#include "node/barrier.h"

#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/bytes.h"
#include "lib/mem.h"

#define VALUE_VERSION 1
#define BLOB_VERSION 1
#define KEYRING_VERSION 1
#define HEADER_LEN 5
#define MAX_TERMS 65536
#define TERM_RECORD_LEN (4 + 8 + BARRIER_KEY_LEN)

_Static_assert(HEADER_LEN == 1 + sizeof(uint32_t), "value header is version + term");
_Static_assert(BARRIER_KEY_LEN == CF_AEAD_KEY_LEN, "barrier keys are AES-256 keys");

struct barrier_term
{
    uint32_t term;
    int64_t install_time_ns;
    uint64_t encryptions; /* since unseal, in memory only */
    struct cf_secret *key;
};

struct barrier
{
    struct cf_secret *root;     /* NULL while sealed */
    struct barrier_term *terms; /* ascending by term */
    size_t n_terms;
    uint32_t active; /* active term number */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct barrier *barrier_new(void)
{
    return cf_calloc(1, sizeof(struct barrier));
}

void barrier_seal(struct barrier *b)
{
    if (b == NULL) {
        return;
    }
    cf_secret_free(b->root);
    b->root = NULL;
    for (size_t i = 0; i < b->n_terms; i++) {
        cf_secret_free(b->terms[i].key);
    }
    CF_FREE(b->terms);
    b->n_terms = 0;
    b->active = 0;
}

void barrier_free(struct barrier *b)
{
    barrier_seal(b);
    cf_free(b);
}

bool barrier_is_unsealed(const struct barrier *b)
{
    return b->root != NULL && b->n_terms > 0;
}

static int add_term(struct barrier *b, uint32_t term, int64_t when, const uint8_t *key)
{
    if (b->n_terms >= MAX_TERMS) {
        return CF_ETOOBIG;
    }
    struct barrier_term *t = cf_realloc(b->terms, (b->n_terms + 1) * sizeof(*t));
    if (t == NULL) {
        return CF_ENOMEM;
    }
    b->terms = t;
    struct barrier_term *nt = &b->terms[b->n_terms];
    nt->key = key ? cf_secret_from(key, BARRIER_KEY_LEN) : cf_secret_new(BARRIER_KEY_LEN);
    if (nt->key == NULL) {
        return CF_ENOMEM;
    }
    if (key == NULL && cf_random(nt->key->data, BARRIER_KEY_LEN) != CF_OK) {
        cf_secret_free(nt->key);
        return CF_ECRYPTO;
    }
    nt->term = term;
    nt->install_time_ns = when;
    nt->encryptions = 0;
    b->n_terms++;
    return CF_OK;
}

int barrier_generate(struct barrier *b, char errmsg[CF_ERRMSG_SIZE])
{
    barrier_seal(b);
    b->root = cf_secret_new(BARRIER_KEY_LEN);
    int rv = b->root ? cf_random(b->root->data, BARRIER_KEY_LEN) : CF_ENOMEM;
    if (rv == CF_OK) {
        rv = add_term(b, 1, now_ns(), NULL);
    }
    if (rv != CF_OK) {
        barrier_seal(b);
        cf_errmsg_printf(errmsg, "generate barrier keys: %s", cf_strerror(rv));
        return rv;
    }
    b->active = 1;
    return CF_OK;
}

/* blob = version || AES-GCM(key, aad, plaintext) */
static int seal_blob(const uint8_t *key,
                     const char *aad,
                     const uint8_t *pt,
                     size_t len,
                     uint8_t **out,
                     size_t *outlen)
{
    uint8_t *o = cf_malloc(1 + len + CF_AEAD_OVERHEAD);
    if (o == NULL) {
        return CF_ENOMEM;
    }
    o[0] = BLOB_VERSION;
    int rv = cf_aead_seal(key, aad, strlen(aad), pt, len, o + 1);
    if (rv != CF_OK) {
        cf_free(o);
        return rv;
    }
    *out = o;
    *outlen = 1 + len + CF_AEAD_OVERHEAD;
    return CF_OK;
}

static int open_blob(const uint8_t *key,
                     const char *aad,
                     const uint8_t *blob,
                     size_t len,
                     struct cf_secret **out)
{
    if (len < 1 + CF_AEAD_OVERHEAD) {
        return CF_ECORRUPT;
    }
    if (blob[0] != BLOB_VERSION) {
        return CF_EVERSION;
    }
    struct cf_secret *s = cf_secret_new(len - 1 - CF_AEAD_OVERHEAD);
    size_t n = 0;
    if (s == NULL) {
        return CF_ENOMEM;
    }
    int rv = cf_aead_open(key, aad, strlen(aad), blob + 1, len - 1, s->data, &n);
    if (rv != CF_OK) {
        cf_secret_free(s);
        return rv == CF_EMALFORMED ? CF_ECORRUPT : rv;
    }
    *out = s;
    return CF_OK;
}

int barrier_seal_root(const struct barrier *b,
                      const uint8_t *unseal_key,
                      size_t klen,
                      uint8_t **out,
                      size_t *outlen)
{
    if (b->root == NULL) {
        return CF_ESEALED;
    }
    if (klen != CF_AEAD_KEY_LEN) {
        return CF_EINVAL;
    }
    return seal_blob(unseal_key, "core/root-key", b->root->data, BARRIER_KEY_LEN, out, outlen);
}

int barrier_encode_keyring(const struct barrier *b, uint8_t **out, size_t *outlen)
{
    if (!barrier_is_unsealed(b)) {
        return CF_ESEALED;
    }
    size_t len = 1 + 4 + 4 + b->n_terms * TERM_RECORD_LEN;
    struct cf_secret *pt = cf_secret_new(len);
    if (pt == NULL) {
        return CF_ENOMEM;
    }
    uint8_t *p = pt->data;
    *p++ = KEYRING_VERSION;
    cf_put_be32(p, b->active);
    p += 4;
    cf_put_be32(p, (uint32_t)b->n_terms);
    p += 4;
    for (size_t i = 0; i < b->n_terms; i++) {
        cf_put_be32(p, b->terms[i].term);
        cf_put_be64(p + 4, (uint64_t)b->terms[i].install_time_ns);
        memcpy(p + 12, b->terms[i].key->data, BARRIER_KEY_LEN);
        p += TERM_RECORD_LEN;
    }
    int rv = seal_blob(b->root->data, "core/keyring", pt->data, len, out, outlen);
    cf_secret_free(pt);
    return rv;
}

static int decode_keyring(struct barrier *b, const struct cf_secret *pt)
{
    const uint8_t *p = pt->data;
    if (pt->len < 9) {
        return CF_ECORRUPT;
    }
    if (p[0] != KEYRING_VERSION) {
        return CF_EVERSION;
    }
    uint32_t active = cf_get_be32(p + 1);
    uint32_t n = cf_get_be32(p + 5);
    if (n == 0 || n > MAX_TERMS || pt->len != 9 + (size_t)n * TERM_RECORD_LEN) {
        return CF_ECORRUPT;
    }
    p += 9;
    bool found = false;
    for (uint32_t i = 0; i < n; i++, p += TERM_RECORD_LEN) {
        uint32_t term = cf_get_be32(p);
        if (term == 0 || (b->n_terms > 0 && term <= b->terms[b->n_terms - 1].term)) {
            return CF_ECORRUPT;
        }
        int rv = add_term(b, term, (int64_t)cf_get_be64(p + 4), p + 12);
        if (rv != CF_OK) {
            return rv;
        }
        found = found || term == active;
    }
    if (!found) {
        return CF_ECORRUPT;
    }
    b->active = active;
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
    struct cf_secret *root = NULL;
    struct cf_secret *ring = NULL;
    barrier_seal(b);
    if (klen != CF_AEAD_KEY_LEN) {
        cf_errmsg_printf(errmsg, "unseal key must be %d bytes", CF_AEAD_KEY_LEN);
        return CF_EAUTH;
    }
    int rv = open_blob(unseal_key, "core/root-key", root_blob, root_len, &root);
    if (rv != CF_OK) {
        cf_errmsg_printf(errmsg, "decrypt root key: %s", cf_strerror(rv));
        return rv;
    }
    if (root->len != BARRIER_KEY_LEN) {
        cf_secret_free(root);
        cf_errmsg_printf(errmsg, "decrypt root key: wrong length");
        return CF_ECORRUPT;
    }
    rv = open_blob(root->data, "core/keyring", keyring_blob, keyring_len, &ring);
    if (rv == CF_OK) {
        rv = decode_keyring(b, ring);
    }
    cf_secret_free(ring);
    if (rv != CF_OK) {
        cf_secret_free(root);
        barrier_seal(b);
        cf_errmsg_printf(errmsg, "decrypt keyring: %s", cf_strerror(rv));
        return rv == CF_EAUTH ? CF_ECORRUPT : rv;
    }
    b->root = root;
    return CF_OK;
}

int barrier_rotate(struct barrier *b, uint32_t *new_term)
{
    if (!barrier_is_unsealed(b)) {
        return CF_ESEALED;
    }
    uint32_t term = b->terms[b->n_terms - 1].term + 1;
    int rv = add_term(b, term, now_ns(), NULL);
    if (rv != CF_OK) {
        return rv;
    }
    b->active = term;
    *new_term = term;
    return CF_OK;
}

static const struct barrier_term *find_term(const struct barrier *b, uint32_t term)
{
    size_t lo = 0;
    size_t hi = b->n_terms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->terms[mid].term == term) {
            return &b->terms[mid];
        }
        if (b->terms[mid].term < term) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* AAD = the 5 header bytes followed by the storage path. */
static uint8_t *make_aad(const uint8_t header[HEADER_LEN], const char *path, size_t *len)
{
    size_t plen = strlen(path);
    uint8_t *aad = cf_malloc(HEADER_LEN + plen);
    if (aad != NULL) {
        memcpy(aad, header, HEADER_LEN);
        memcpy(aad + HEADER_LEN, path, plen);
        *len = HEADER_LEN + plen;
    }
    return aad;
}

int barrier_encrypt(struct barrier *b,
                    const char *path,
                    const uint8_t *pt,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen)
{
    if (!barrier_is_unsealed(b)) {
        return CF_ESEALED;
    }
    if (len > SIZE_MAX - HEADER_LEN - CF_AEAD_OVERHEAD) {
        return CF_ETOOBIG;
    }
    struct barrier_term *t = (struct barrier_term *)find_term(b, b->active);
    uint8_t *o = cf_malloc(HEADER_LEN + len + CF_AEAD_OVERHEAD);
    if (o == NULL) {
        return CF_ENOMEM;
    }
    o[0] = VALUE_VERSION;
    cf_put_be32(o + 1, t->term);
    size_t aadlen = 0;
    uint8_t *aad = make_aad(o, path, &aadlen);
    int rv = aad ? cf_aead_seal(t->key->data, aad, aadlen, pt, len, o + HEADER_LEN) : CF_ENOMEM;
    cf_free(aad);
    if (rv != CF_OK) {
        cf_free(o);
        return rv;
    }
    t->encryptions++;
    *out = o;
    *outlen = HEADER_LEN + len + CF_AEAD_OVERHEAD;
    return CF_OK;
}

int barrier_decrypt(const struct barrier *b,
                    const char *path,
                    const uint8_t *ct,
                    size_t len,
                    uint8_t **out,
                    size_t *outlen)
{
    if (!barrier_is_unsealed(b)) {
        return CF_ESEALED;
    }
    if (len < HEADER_LEN + CF_AEAD_OVERHEAD) {
        return CF_ECORRUPT;
    }
    if (ct[0] != VALUE_VERSION) {
        return CF_EVERSION;
    }
    const struct barrier_term *t = find_term(b, cf_get_be32(ct + 1));
    if (t == NULL) {
        return CF_ENOTFOUND;
    }
    size_t ptcap = len - HEADER_LEN - CF_AEAD_OVERHEAD;
    uint8_t *o = cf_malloc(ptcap + 1);
    size_t aadlen = 0;
    uint8_t *aad = make_aad(ct, path, &aadlen);
    if (o == NULL || aad == NULL) {
        cf_free(o);
        cf_free(aad);
        return CF_ENOMEM;
    }
    size_t n = 0;
    int rv = cf_aead_open(t->key->data, aad, aadlen, ct + HEADER_LEN, len - HEADER_LEN, o, &n);
    cf_free(aad);
    if (rv != CF_OK) {
        cf_free(o);
        return rv;
    }
    o[n] = 0;
    *out = o;
    *outlen = n;
    return CF_OK;
}

void barrier_term_info(const struct barrier *b, struct barrier_term_info *out)
{
    memset(out, 0, sizeof(*out));
    const struct barrier_term *t = barrier_is_unsealed(b) ? find_term(b, b->active) : NULL;
    if (t != NULL) {
        out->term = t->term;
        out->install_time_ns = t->install_time_ns;
        out->encryptions = t->encryptions;
    }
}
