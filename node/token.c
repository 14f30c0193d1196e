/*
 * The token store: entries, indexes, revocation trees and use counts (node/token.h).
 */
#include "node/token.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/json.h"
#include "lib/crypto.h"
#include "node/barrier.h"
#include "node/expire.h"
#include "node/internal.h"

#define CF_LOG_MODULE "token"
#include "lib/log.h"

static const char base62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int64_t node__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int node__token_generate(char out[29])
{
    memcpy(out, "hvs.", 4);
    size_t n = 4;
    while (n < 28) {
        uint8_t r[32];
        int rv = cf_random(r, sizeof(r));
        if (rv != CF_OK) {
            return rv;
        }
        for (size_t i = 0; i < sizeof(r) && n < 28; i++) {
            if (r[i] < 248) { /* 248 = 62 * 4: keeps the choice uniform */
                out[n++] = base62[r[i] % 62];
            }
        }
        cf_cleanse(r, sizeof(r));
    }
    out[28] = '\0';
    return CF_OK;
}

int node__token_hash(const struct cf_secret *salt, const char *token, char hash[TOKEN_HASH_LEN + 1])
{
    uint8_t mac[32];
    int rv = cf_hmac_sha256(salt->data, salt->len, token, strlen(token), mac);
    if (rv != CF_OK) {
        return rv;
    }
    cf_hex_encode(mac, sizeof(mac), hash);
    hash[TOKEN_HASH_LEN] = '\0';
    return CF_OK;
}

void node__token_clear(struct node_token *t)
{
    if (t == NULL) {
        return;
    }
    json_decref(t->entry);
    memset(t, 0, sizeof(*t));
}

/* Reads and decrypts a JSON value; *version from the FSM. */
static int get_json(struct node_core *core, const char *key, json_t **out, uint64_t *version)
{
    const uint8_t *ct;
    size_t ctlen;
    int rv = rft_store_get(core->store, key, &ct, &ctlen, version);
    if (rv != CF_OK) {
        return rv;
    }
    uint8_t *val = NULL;
    size_t len = 0;
    rv = barrier_decrypt(core->barrier, key, ct, ctlen, &val, &len);
    if (rv != CF_OK) {
        return rv;
    }
    json_t *j = json_loadb((const char *)val, len, 0, NULL);
    cf_free(val);
    if (!json_is_object(j)) {
        json_decref(j);
        return CF_ECORRUPT;
    }
    *out = j;
    return CF_OK;
}

/* The token cache: a direct-mapped table of decoded entries. Token hashes are HMAC output, so
 * their first hex digits spread evenly over the slots. A slot is valid for a lookup only when
 * the stored value still has the version and the leading ciphertext bytes (which hold the
 * write's random nonce) the slot was filled from, so every write, delete or restore misses. */
#define TOKEN_CACHE_SLOTS 1024
#define TOKEN_CACHE_TAG 32

struct node__token_cache_slot
{
    char hash[TOKEN_HASH_LEN + 1];
    uint64_t version;
    size_t ct_len;
    uint8_t tag[TOKEN_CACHE_TAG];
    json_t *entry; /* NULL = empty */
};

static struct node__token_cache_slot *cache_slot(struct node_core *core, const char *hash)
{
    if (core->token_cache == NULL) {
        core->token_cache = cf_calloc(TOKEN_CACHE_SLOTS, sizeof(*core->token_cache));
        if (core->token_cache == NULL) {
            return NULL;
        }
    }
    unsigned i = 0;
    for (int k = 0; k < 3; k++) {
        char c = hash[k];
        i = i << 4 | (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return &core->token_cache[i % TOKEN_CACHE_SLOTS];
}

void node__token_cache_clear(struct node_core *core)
{
    if (core->token_cache == NULL) {
        return;
    }
    for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++) {
        json_decref(core->token_cache[i].entry);
    }
    cf_free(core->token_cache);
    core->token_cache = NULL;
}

int node__token_entry_own(struct node_token *t)
{
    json_t *copy = json_deep_copy(t->entry);
    if (copy == NULL) {
        return CF_ENOMEM;
    }
    json_decref(t->entry);
    t->entry = copy;
    return CF_OK;
}

int node__token_get_hash(struct node_core *core, const char *hash, struct node_token *out)
{
    memset(out, 0, sizeof(*out));
    if (core->sealed || strlen(hash) != TOKEN_HASH_LEN ||
        strspn(hash, "0123456789abcdef") != TOKEN_HASH_LEN) {
        return CF_ENOTFOUND;
    }
    char key[sizeof(TOKEN_PREFIX_ID) + TOKEN_HASH_LEN];
    snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ID, hash);
    const uint8_t *ct;
    size_t ctlen;
    uint64_t version;
    int rv = rft_store_get(core->store, key, &ct, &ctlen, &version);
    struct node__token_cache_slot *slot = cache_slot(core, hash);
    if (rv != CF_OK) {
        if (slot != NULL && slot->entry != NULL && strcmp(slot->hash, hash) == 0) {
            json_decref(slot->entry);
            slot->entry = NULL;
        }
        return rv;
    }
    size_t tag = ctlen < TOKEN_CACHE_TAG ? ctlen : TOKEN_CACHE_TAG;
    if (slot != NULL && slot->entry != NULL && slot->version == version && slot->ct_len == ctlen &&
        memcmp(slot->tag, ct, tag) == 0 && strcmp(slot->hash, hash) == 0) {
        out->entry = json_incref(slot->entry);
    } else {
        rv = get_json(core, key, &out->entry, NULL);
        if (rv != CF_OK) {
            return rv;
        }
        if (slot != NULL) {
            json_decref(slot->entry);
            memcpy(slot->hash, hash, TOKEN_HASH_LEN + 1);
            slot->version = version;
            slot->ct_len = ctlen;
            memcpy(slot->tag, ct, tag);
            slot->entry = json_incref(out->entry);
        }
    }
    out->version = version;
    memcpy(out->hash, hash, TOKEN_HASH_LEN + 1);
    return CF_OK;
}

int node__token_get(struct node_core *core, const char *token, struct node_token *out)
{
    memset(out, 0, sizeof(*out));
    if (core->token_salt == NULL || token == NULL || token[0] == '\0' ||
        strlen(token) > TOKEN_MAX_LEN) {
        return CF_ENOTFOUND;
    }
    char hash[TOKEN_HASH_LEN + 1];
    int rv = node__token_hash(core->token_salt, token, hash);
    if (rv != CF_OK) {
        return rv;
    }
    return node__token_get_hash(core, hash, out);
}

int node__token_get_accessor(struct node_core *core, const char *accessor, struct node_token *out)
{
    memset(out, 0, sizeof(*out));
    if (core->sealed || accessor == NULL || accessor[0] == '\0' || strlen(accessor) > 128 ||
        strchr(accessor, '/') != NULL) {
        return CF_ENOTFOUND;
    }
    char key[256];
    snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ACCESSOR, accessor);
    json_t *idx = NULL;
    int rv = get_json(core, key, &idx, NULL);
    if (rv != CF_OK) {
        return rv;
    }
    const char *hash = json_string_value(json_object_get(idx, "hash"));
    rv = hash ? node__token_get_hash(core, hash, out) : CF_ECORRUPT;
    json_decref(idx);
    return rv;
}

const char *node__token_str(const struct node_token *t, const char *field)
{
    const char *s = json_string_value(json_object_get(t->entry, field));
    return s ? s : "";
}

int64_t node__token_int(const struct node_token *t, const char *field)
{
    return json_integer_value(json_object_get(t->entry, field));
}

bool node__token_bool(const struct node_token *t, const char *field)
{
    return json_is_true(json_object_get(t->entry, field));
}

bool node__token_has_policy(const struct node_token *t, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(t->entry, "policies"), i, p)
    {
        if (strcmp(json_string_value(p) ? json_string_value(p) : "", name) == 0) {
            return true;
        }
    }
    return false;
}

bool node__token_live(const struct node_token *t, int64_t now_ns)
{
    if (t->entry == NULL || node__token_int(t, "num_uses") < 0) {
        return false;
    }
    int64_t exp = node__token_int(t, "expire_ns");
    return exp == 0 || exp > now_ns;
}

/* Creation ------------------------------------------------------------------------------ */

static int put_json_new(struct node_core *core, struct rft_batch *b, const char *key, json_t *j)
{
    if (j == NULL) {
        return CF_ENOMEM;
    }
    int rv = node__batch_put_json(core, b, key, j);
    json_decref(j);
    return rv;
}

int node__token_batch_create(struct node_core *core,
                             const struct cf_secret *salt,
                             struct rft_batch *b,
                             const char *token,
                             const struct node_token_params *p,
                             json_t **entry_out,
                             char hash[TOKEN_HASH_LEN + 1])
{
    char accessor[29];
    char cubby[37];
    int rv = node__token_hash(salt ? salt : core->token_salt, token, hash);
    if (rv == CF_OK) {
        rv = node__token_generate(accessor);
    }
    if (rv == CF_OK) {
        rv = cf_uuid_v4(cubby);
    }
    if (rv != CF_OK) {
        return rv;
    }
    int64_t now = node__now_ns();
    int64_t expire = p->ttl_s > 0 ? now + p->ttl_s * 1000000000 : 0;
    bool orphan = p->parent_hash == NULL || p->parent_hash[0] == '\0';
    json_t *e = json_pack(
        "{s:s,s:s,s:O,s:s,s:s,s:s,s:O,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s,s:s,s:b}", "hash", hash,
        "accessor", accessor + 4, "policies", p->policies, "parent", orphan ? "" : p->parent_hash,
        "path", p->path, "display_name", p->display_name, "meta", p->meta ? p->meta : json_null(),
        "num_uses", (json_int_t)p->num_uses, "creation_time", (json_int_t)(now / 1000000000),
        "creation_ns", (json_int_t)now, "creation_ttl", (json_int_t)p->ttl_s, "expire_ns",
        (json_int_t)expire, "explicit_max_ttl", (json_int_t)p->explicit_max_ttl_s, "period",
        (json_int_t)p->period_s, "renewable", p->renewable, "type", "service", "cubbyhole_id",
        cubby, "orphan", orphan);
    if (e == NULL) {
        return CF_ENOMEM;
    }
    char key[512];
    snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ID, hash);
    rv = node__batch_put_json(core, b, key, e);
    if (rv == CF_OK) {
        snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ACCESSOR, accessor + 4);
        rv = put_json_new(core, b, key, json_pack("{s:s}", "hash", hash));
    }
    if (rv == CF_OK && !orphan) {
        snprintf(key, sizeof(key), "%s%s/%s", TOKEN_PREFIX_PARENT, p->parent_hash, hash);
        rv = put_json_new(core, b, key, json_object());
    }
    if (rv == CF_OK && expire != 0) {
        snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_EXPIRE, hash);
        rv = put_json_new(core, b, key, json_pack("{s:I}", "expire_ns", (json_int_t)expire));
    }
    if (rv == CF_OK && entry_out != NULL) {
        *entry_out = e;
    } else {
        json_decref(e);
    }
    return rv;
}

/* Revocation ---------------------------------------------------------------------------- */

const char *node__cubbyhole_prefix(struct node_core *core)
{
    struct node_mount *m = node__mount_cubbyhole(core);
    return m ? m->view.prefix : NULL;
}

struct child_scan
{
    json_t *hashes; /* array of child hashes */
    size_t skip;
};

static int child_visit(void *arg, const char *key, const uint8_t *val, size_t len)
{
    struct child_scan *c = arg;
    (void)val;
    (void)len;
    const char *h = key + c->skip;
    if (strlen(h) == TOKEN_HASH_LEN) {
        json_array_append_new(c->hashes, json_string(h));
    }
    return 0;
}

static int children_of(struct node_core *core, const char *hash, json_t *out)
{
    char prefix[sizeof(TOKEN_PREFIX_PARENT) + TOKEN_HASH_LEN + 2];
    snprintf(prefix, sizeof(prefix), "%s%s/", TOKEN_PREFIX_PARENT, hash);
    struct child_scan c = {.hashes = out, .skip = strlen(prefix)};
    return rft_store_scan(core->store, prefix, NULL, child_visit, &c);
}

/* Deletes one token's own keys (not its children's). */
static int delete_one(struct node_core *core, struct rft_batch *b, const struct node_token *t)
{
    char key[512];
    int rv;
    snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ID, t->hash);
    rv = rft_batch_delete(b, key);
    const char *acc = node__token_str(t, "accessor");
    if (rv == CF_OK && acc[0] != '\0') {
        snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ACCESSOR, acc);
        rv = rft_batch_delete(b, key);
    }
    const char *parent = node__token_str(t, "parent");
    if (rv == CF_OK && parent[0] != '\0') {
        snprintf(key, sizeof(key), "%s%s/%s", TOKEN_PREFIX_PARENT, parent, t->hash);
        rv = rft_batch_delete(b, key);
    }
    if (rv == CF_OK) {
        snprintf(key, sizeof(key), "%s%s/", TOKEN_PREFIX_PARENT, t->hash);
        rv = rft_batch_delete_prefix(b, key);
    }
    if (rv == CF_OK) {
        snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_EXPIRE, t->hash);
        rv = rft_batch_delete(b, key);
    }
    const char *cubby = node__token_str(t, "cubbyhole_id");
    const char *cp = node__cubbyhole_prefix(core);
    if (rv == CF_OK && cubby[0] != '\0' && cp != NULL) {
        snprintf(key, sizeof(key), "%s%s/", cp, cubby);
        rv = rft_batch_delete_prefix(b, key);
    }
    return rv;
}

int node__token_batch_revoke(struct node_core *core,
                             struct rft_batch *b,
                             const char *hash,
                             bool orphan_children)
{
    json_t *queue = json_array();
    if (queue == NULL || json_array_append_new(queue, json_string(hash)) != 0) {
        json_decref(queue);
        return CF_ENOMEM;
    }
    int rv = CF_OK;
    /* Breadth first over the tree; the queue grows as children are found. */
    for (size_t i = 0; rv == CF_OK && i < json_array_size(queue); i++) {
        const char *h = json_string_value(json_array_get(queue, i));
        struct node_token t;
        int grv = node__token_get_hash(core, h, &t);
        if (grv == CF_ENOTFOUND) {
            continue;
        }
        if (grv != CF_OK) {
            rv = grv;
            break;
        }
        rv = delete_one(core, b, &t);
        node__token_clear(&t);
        /* Its leases are revoked by the expiration manager, each through its engine. */
        node__expire_token_revoked(core->expire, h);
        if (rv != CF_OK) {
            break;
        }
        if (i == 0 && orphan_children) {
            json_t *kids = json_array();
            rv = kids ? children_of(core, h, kids) : CF_ENOMEM;
            size_t k;
            json_t *kh;
            json_array_foreach(kids, k, kh)
            {
                struct node_token c;
                if (rv != CF_OK || node__token_get_hash(core, json_string_value(kh), &c) != CF_OK) {
                    continue;
                }
                if (node__token_entry_own(&c) != CF_OK) {
                    node__token_clear(&c);
                    rv = CF_ENOMEM;
                    continue;
                }
                json_object_set_new(c.entry, "parent", json_string(""));
                json_object_set_new(c.entry, "orphan", json_true());
                char key[512];
                snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ID, c.hash);
                rv = node__batch_put_json(core, b, key, c.entry);
                node__token_clear(&c);
            }
            json_decref(kids);
            break;
        }
        if (json_array_size(queue) > 100000) {
            rv = CF_ETOOBIG;
            break;
        }
        rv = children_of(core, h, queue);
    }
    json_decref(queue);
    return rv;
}

void node__token_revoke(struct node_core *core,
                        const char *hash,
                        bool orphan_children,
                        node_write_cb cb,
                        void *arg)
{
    struct rft_batch *b = rft_batch_new();
    int rv = b ? node__token_batch_revoke(core, b, hash, orphan_children) : CF_ENOMEM;
    if (rv != CF_OK) {
        rft_batch_free(b);
        node__fail_later(core, cb, arg, rv);
        return;
    }
    node__commit(core, b, cb, arg);
}

/* Use counts ---------------------------------------------------------------------------- */

struct use_op
{
    struct node_core *core;
    char hash[TOKEN_HASH_LEN + 1];
    node_token_use_cb cb;
    void *arg;
    bool last;
    int tries;
};

static void use_try(struct use_op *op);

static void use_done_cb(void *arg, int status)
{
    struct use_op *op = arg;
    if (status == CF_ECONFLICT && op->tries < 64) {
        use_try(op); /* another request consumed a use first: read again */
        return;
    }
    op->cb(op->arg, status == CF_ECONFLICT ? CF_EDENIED : status, op->last);
    cf_free(op);
}

static void use_fail_cb(void *arg, int status)
{
    struct use_op *op = arg;
    op->cb(op->arg, status, false);
    cf_free(op);
}

static void use_try(struct use_op *op)
{
    struct node_core *core = op->core;
    struct node_token t;
    op->tries++;
    int rv = node__token_get_hash(core, op->hash, &t);
    if (rv != CF_OK || !node__token_live(&t, node__now_ns())) {
        node__token_clear(&t);
        node__defer(core, use_fail_cb, op, CF_EDENIED);
        return;
    }
    int64_t uses = node__token_int(&t, "num_uses");
    if (uses == 0) { /* unlimited: nothing to consume */
        node__token_clear(&t);
        node__defer(core, use_fail_cb, op, CF_OK);
        return;
    }
    op->last = uses == 1;
    if (node__token_entry_own(&t) != CF_OK) {
        node__token_clear(&t);
        node__defer(core, use_fail_cb, op, CF_ENOMEM);
        return;
    }
    /* -1 marks a spent token: it stays readable (for the request that spent it) until the
     * revocation that follows the request, but no new request may use it. */
    json_object_set_new(t.entry, "num_uses", json_integer(op->last ? -1 : uses - 1));
    char key[sizeof(TOKEN_PREFIX_ID) + TOKEN_HASH_LEN];
    snprintf(key, sizeof(key), "%s%s", TOKEN_PREFIX_ID, op->hash);
    struct rft_batch *b = rft_batch_new();
    char *s = cf_json_dumps(t.entry, NULL);
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    rv = (b && s) ? barrier_encrypt(core->barrier, key, (const uint8_t *)s, strlen(s), &ct, &ctlen)
                  : CF_ENOMEM;
    if (rv == CF_OK) {
        rv = rft_batch_put_if_version(b, key, ct, ctlen, t.version);
    }
    cf_free(ct);
    cf_free(s);
    node__token_clear(&t);
    if (rv != CF_OK) {
        rft_batch_free(b);
        node__defer(core, use_fail_cb, op, rv);
        return;
    }
    node__commit(core, b, use_done_cb, op);
}

void node__token_use(struct node_core *core, const char *hash, node_token_use_cb cb, void *arg)
{
    struct use_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        cf_oom_abort();
    }
    op->core = core;
    snprintf(op->hash, sizeof(op->hash), "%s", hash);
    op->cb = cb;
    op->arg = arg;
    use_try(op);
}

/* JSON shapes --------------------------------------------------------------------------- */

static int64_t ttl_left(const struct node_token *t, int64_t now_ns)
{
    int64_t exp = node__token_int(t, "expire_ns");
    if (exp == 0) {
        return 0;
    }
    return exp > now_ns ? (exp - now_ns) / 1000000000 : 0;
}

/* Whole seconds left, rounded up: a token created with ttl=1h reports 3600. */
static int64_t ttl_left_ceil(const struct node_token *t, int64_t now_ns)
{
    int64_t exp = node__token_int(t, "expire_ns");
    if (exp == 0 || exp <= now_ns) {
        return 0;
    }
    return (exp - now_ns + 999999999) / 1000000000;
}

json_t *node__token_auth_json(const struct node_token *t, const char *client_token, int64_t now_ns)
{
    json_t *pol = json_object_get(t->entry, "policies");
    json_t *meta = json_object_get(t->entry, "meta");
    int64_t uses = node__token_int(t, "num_uses");
    return json_pack("{s:s,s:s,s:O,s:O,s:O,s:I,s:b,s:s,s:s,s:b,s:n,s:I}", "client_token",
                     client_token, "accessor", node__token_str(t, "accessor"), "policies", pol,
                     "token_policies", pol, "metadata", json_is_object(meta) ? meta : json_null(),
                     "lease_duration", (json_int_t)ttl_left_ceil(t, now_ns), "renewable",
                     node__token_bool(t, "renewable"), "entity_id", "", "token_type", "service",
                     "orphan", node__token_bool(t, "orphan"), "mfa_requirement", "num_uses",
                     (json_int_t)(uses < 0 ? 0 : uses));
}

void node__rfc3339(int64_t ns, char out[64])
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ns % 1000000000));
}

json_t *node__token_lookup_json(const struct node_token *t, const char *id, int64_t now_ns)
{
    char issue[64];
    char expire[64];
    int64_t exp = node__token_int(t, "expire_ns");
    int64_t uses = node__token_int(t, "num_uses");
    node__rfc3339(node__token_int(t, "creation_ns"), issue);
    if (exp != 0) {
        node__rfc3339(exp, expire);
    }
    json_t *meta = json_object_get(t->entry, "meta");
    json_t *j = json_pack(
        "{s:s,s:I,s:I,s:s,s:s,s:o,s:I,s:s,s:[],s:s,s:O,s:I,s:b,s:s,s:O,s:b,s:I,s:s}", "accessor",
        node__token_str(t, "accessor"), "creation_time",
        (json_int_t)node__token_int(t, "creation_time"), "creation_ttl",
        (json_int_t)node__token_int(t, "creation_ttl"), "display_name",
        node__token_str(t, "display_name"), "entity_id", "", "expire_time",
        exp ? json_string(expire) : json_null(), "explicit_max_ttl",
        (json_int_t)node__token_int(t, "explicit_max_ttl"), "id", id, "identity_policies",
        "issue_time", issue, "meta", json_is_object(meta) ? meta : json_null(), "num_uses",
        (json_int_t)(uses < 0 ? 0 : uses), "orphan", node__token_bool(t, "orphan"), "path",
        node__token_str(t, "path"), "policies", json_object_get(t->entry, "policies"), "renewable",
        node__token_bool(t, "renewable"), "ttl", (json_int_t)ttl_left(t, now_ns), "type",
        "service");
    if (j == NULL) {
        return NULL;
    }
    int64_t period = node__token_int(t, "period");
    if (period > 0) {
        json_object_set_new(j, "period", json_integer(period));
    }
    int64_t renewed = node__token_int(t, "last_renewal_ns");
    if (renewed > 0) {
        char when[64];
        node__rfc3339(renewed, when);
        json_object_set_new(j, "last_renewal", json_string(when));
        json_object_set_new(j, "last_renewal_time", json_integer(renewed / 1000000000));
    }
    return j;
}

int node__token_batch_root(struct node_core *core,
                           const struct cf_secret *salt,
                           struct rft_batch *b,
                           const char *token)
{
    json_t *pol = json_pack("[s]", "root");
    struct node_token_params p = {
        .policies = pol,
        .path = "auth/token/root",
        .display_name = "root",
    };
    char hash[TOKEN_HASH_LEN + 1];
    int rv = pol ? node__token_batch_create(core, salt, b, token, &p, NULL, hash) : CF_ENOMEM;
    json_decref(pol);
    return rv;
}
