/*
 * The ACL of a token: its policies merged, and the decision on one request (core.md 4.3).
 *
 * Exact rules sit in a sorted array (binary search); wildcard rules ('*' suffix, '+' segments)
 * sit in one array sorted by Vault's priority, so the first match is the one that applies.
 * The same pattern in several policies merges into one rule (capabilities united, deny wins,
 * parameter lists united, the lowest non-zero wrapping bounds kept).
 */
#ifndef CF_NODE_ACL_H_
#define CF_NODE_ACL_H_

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "node/engine.h"
#include "node/policy.h"

struct acl;

/* Merges policies (borrowed, not kept). A policy named "root" makes a root ACL. */
int acl_new(const struct policy *const *policies, size_t n, struct acl **out);
void acl_free(struct acl *acl);
bool acl_is_root(const struct acl *acl);

struct acl_request
{
    enum node_op op;
    const char *path;   /* after /v1/; LIST paths end in '/' */
    const json_t *data; /* request data (object) or NULL */
    int64_t wrap_ttl_s; /* 0 = not wrapped */
    bool need_sudo;     /* the path is root-protected */
};

struct acl_result
{
    bool allowed;
    unsigned caps; /* of the rule that applied */
    bool is_root;
    const char *reason;        /* static text when denied */
    json_t *granting_policies; /* new array of {"name","namespace_id","type"} or NULL */
};

/* Decides one request. CF_OK (with out filled) or CF_ENOMEM. Caller frees
 * out->granting_policies. */
int acl_check(const struct acl *acl, const struct acl_request *r, struct acl_result *out);

/* sys/capabilities: a new sorted array of capability names, ["root"] or ["deny"]. */
json_t *acl_capabilities(const struct acl *acl, const char *path);

/* True when the ACL grants any capability on mount_path ("secret/") or anything below it, or a
 * rule above it covers it (Vault's hasMountAccess, for sys/internal/ui/mounts). */
bool acl_has_access_under(const struct acl *acl, const char *mount_path);

/* True when path needs sudo (root-protected paths of core.md 4.2 and its appendix). */
bool acl_path_is_sudo(const char *path);

#endif
