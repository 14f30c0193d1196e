/*
 * ACL policies: parsing one policy (HCL, JSON, or either base64-encoded) into its path rules,
 * and the built-in policy texts. Merging a token's policies and deciding requests is
 * node/acl.h. Accepted syntax and refusals: docs/formats/policy.md.
 */
#ifndef CF_NODE_POLICY_H_
#define CF_NODE_POLICY_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/err.h"

enum acl_cap {
    ACL_CAP_DENY = 1u << 0,
    ACL_CAP_CREATE = 1u << 1,
    ACL_CAP_READ = 1u << 2,
    ACL_CAP_UPDATE = 1u << 3,
    ACL_CAP_DELETE = 1u << 4,
    ACL_CAP_LIST = 1u << 5,
    ACL_CAP_SUDO = 1u << 6,
    ACL_CAP_PATCH = 1u << 7,
};

/* One path rule of a policy. */
struct policy_rule
{
    char *path;              /* the pattern as written, '*' included */
    unsigned caps;           /* enum acl_cap bits */
    int64_t min_wrap_s;      /* 0 = none */
    int64_t max_wrap_s;      /* 0 = none */
    json_t *allowed_params;  /* object: lowercased key -> array of strings; NULL = none */
    json_t *denied_params;   /* same */
    json_t *required_params; /* array of lowercased strings; NULL = none */
    int line;
};

struct policy
{
    char *name;
    struct policy_rule *rules;
    size_t n_rules;
};

/* Parses policy text. name is lowercased and stored. CF_EMALFORMED with errmsg naming the line
 * ("line 3: unknown capability \"reed\"") for every syntax or semantic error; CF_ENOMEM. */
int policy_parse(const char *name,
                 const char *text,
                 size_t len,
                 struct policy **out,
                 char errmsg[CF_ERRMSG_SIZE]);
void policy_free(struct policy *p);
const char *policy_name(const struct policy *p);

/* Vault's default policy and the response-wrapping policy (core.md 4.4). */
const char *policy_default_text(void);
const char *policy_response_wrapping_text(void);

#endif
