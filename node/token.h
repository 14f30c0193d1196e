/*
 * The token store (node-internal): service tokens, their accessors, the parent/child tree and
 * their expiry, kept in storage under the keys of docs/formats/storage-layout.md. A token is
 * never stored: every index is keyed by HMAC-SHA256(salt, token) ("the hash"), so a lookup is
 * one keyed hash and one map probe whatever the token bytes are.
 *
 * Entries are JSON objects (fields in docs/formats/tokens.md). Use counts are consumed with a
 * conditional put on the entry's FSM version, so a limited-use token cannot be used more often
 * than allowed even by parallel requests or across a restart.
 */
#ifndef CF_NODE_TOKEN_H_
#define CF_NODE_TOKEN_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "node/engine.h"

struct node_core;
struct rft_batch;

#define TOKEN_PREFIX_ID "sys/token/id/"
#define TOKEN_PREFIX_ACCESSOR "sys/token/accessor/"
#define TOKEN_PREFIX_PARENT "sys/token/parent/"
#define TOKEN_PREFIX_EXPIRE "sys/expire/token/"
#define TOKEN_SYSTEM_TTL_S 2764800 /* 768h: Vault's default and max lease TTL */
#define TOKEN_HASH_LEN 64
#define TOKEN_MAX_LEN 512

struct node_token
{
    char hash[TOKEN_HASH_LEN + 1];
    uint64_t version; /* FSM version of the stored entry, for conditional writes */
    json_t *entry;    /* a reference; shared with the token cache: read-only, see below */
};

/* Frees the entry. NULL-safe; leaves t zeroed. */
void node__token_clear(struct node_token *t);

/* The entries node__token_get* return are shared with a cache of decoded entries (keyed by
 * hash, checked against the stored version and ciphertext on every lookup, so a write is seen
 * at once). Call this before changing t->entry: it gives t a private copy. CF_ENOMEM. */
int node__token_entry_own(struct node_token *t);

/* Drops every cached entry (on seal, and whenever storage is replaced wholesale). */
void node__token_cache_clear(struct node_core *core);

/* Current wall clock in nanoseconds. */
int64_t node__now_ns(void);
/* RFC 3339 UTC with nanoseconds ("2026-11-23T10:00:00.000000001Z"). */
void node__rfc3339(int64_t ns, char out[64]);
/* The storage prefix of the cubbyhole mount ("logical/<uuid>/"), NULL when none is mounted. */
const char *node__cubbyhole_prefix(struct node_core *core);

/* hash = hex HMAC-SHA256(salt, token). */
int node__token_hash(const struct cf_secret *salt,
                     const char *token,
                     char hash[TOKEN_HASH_LEN + 1]);

/* Reads an entry. CF_ENOTFOUND when absent (expired or spent entries are returned: see
 * node__token_live). */
int node__token_get(struct node_core *core, const char *token, struct node_token *out);
int node__token_get_hash(struct node_core *core, const char *hash, struct node_token *out);
int node__token_get_accessor(struct node_core *core, const char *accessor, struct node_token *out);

/* True when the token may be used: not past its expiry, uses not spent. */
bool node__token_live(const struct node_token *t, int64_t now_ns);

/* Field access ("" / 0 / false when absent). */
const char *node__token_str(const struct node_token *t, const char *field);
int64_t node__token_int(const struct node_token *t, const char *field);
bool node__token_bool(const struct node_token *t, const char *field);
bool node__token_has_policy(const struct node_token *t, const char *name);

struct node_token_params
{
    json_t *policies;         /* borrowed array of strings (already sorted and deduplicated) */
    const char *parent_hash;  /* NULL or "" for an orphan */
    const char *path;         /* creation path, e.g. "auth/token/create" */
    const char *display_name; /* full stored name, e.g. "token-web" */
    json_t *meta;             /* borrowed object or NULL */
    int64_t num_uses;
    int64_t ttl_s; /* 0 = never expires (root tokens only) */
    int64_t explicit_max_ttl_s;
    int64_t period_s;
    bool renewable;
};

/* Adds the creation of a token to batch b: the entry, the accessor index, the parent index and
 * the expiry index. salt NULL = the core's. On success *entry_out (may be NULL) receives the new
 * entry (owned) and hash the token's hash. The caller tracks the expiry after the commit. */
int node__token_batch_create(struct node_core *core,
                             const struct cf_secret *salt,
                             struct rft_batch *b,
                             const char *token,
                             const struct node_token_params *p,
                             json_t **entry_out,
                             char hash[TOKEN_HASH_LEN + 1]);

/* Adds the creation of a root token to b: root policy, no TTL, no parent, not renewable (sys/init
 * and sys/generate-root). salt NULL = the core's. */
int node__token_batch_root(struct node_core *core,
                           const struct cf_secret *salt,
                           struct rft_batch *b,
                           const char *token);

/* Adds the revocation of a token to b: its entry and indexes, its cubbyhole, and every
 * descendant (or, with orphan_children, its children are rewritten as orphans instead). */
int node__token_batch_revoke(struct node_core *core,
                             struct rft_batch *b,
                             const char *hash,
                             bool orphan_children);

/* Revokes a token (tree) and commits; cb as node_write_commit. */
void node__token_revoke(struct node_core *core,
                        const char *hash,
                        bool orphan_children,
                        node_write_cb cb,
                        void *arg);

/* Consumes one use of a limited-use token through a conditional put on its version; retries
 * when another request won the race. cb(arg, status, last): CF_OK with last=true when this was
 * the final use (the caller revokes the token after the request), CF_EDENIED when no use was
 * left or the token is gone. */
typedef void (*node_token_use_cb)(void *arg, int status, bool last);
void node__token_use(struct node_core *core, const char *hash, node_token_use_cb cb, void *arg);

/* Vault's auth block for a token (client_token may be "" for accessor-based calls). */
json_t *node__token_auth_json(const struct node_token *t, const char *client_token, int64_t now_ns);
/* Vault's token lookup data; id may be "" (lookup-accessor). */
json_t *node__token_lookup_json(const struct node_token *t, const char *id, int64_t now_ns);

/* Generates "hvs." + 24 base62 characters. */
int node__token_generate(char out[29]);

/* token_api.c: the auth/token/ endpoints. caller is the client's token; sudo tells whether the
 * caller holds root or sudo on the request path (ids, periods, no_parent, policies beyond its
 * own). Returns false when the path is not under auth/token/. */
bool node__token_api_handle(struct node_core *core,
                            struct node_request *req,
                            const struct node_token *caller,
                            bool sudo);
/* Parses a TTL field: integer seconds or a duration string. CF_ENOTFOUND when absent,
 * CF_EINVAL when malformed or negative. */
int node__ttl_field(const json_t *data, const char *name, int64_t *out_s);

#endif
