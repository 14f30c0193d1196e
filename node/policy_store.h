/*
 * The policy store (node-internal): ACL policies kept in storage at sys/policy/<name> as
 * {"name":..,"policy":"<text>"}, parsed once and cached by (name, FSM version), and the
 * merged ACL of a token's policy set cached by (set, versions). Looking versions up in the FSM
 * on every request keeps the caches right on any node whatever raft applied.
 *
 * Built-ins: "root" (everything), "response-wrapping" (fixed text, never stored) and
 * "default" (Vault's text until an operator stores another).
 */
#ifndef CF_NODE_POLICY_STORE_H_
#define CF_NODE_POLICY_STORE_H_

#include <stdbool.h>

#include <jansson.h>

#include "node/engine.h"

struct node_core;
struct acl;
struct node_policy_store;

#define POLICY_PREFIX "sys/policy/"

struct node_policy_store *node__policy_store_new(void);
void node__policy_store_free(struct node_policy_store *ps);
/* Drops every cached policy and ACL (at seal). */
void node__policy_store_clear(struct node_policy_store *ps);

/* The ACL for a token's policies (array of names); borrowed until the next call. Policies that
 * do not exist contribute nothing. NULL on OOM or unreadable storage. */
const struct acl *node__acl_for(struct node_core *core, const json_t *policies);

/* True when a policy of that name exists (stored or built in). */
bool node__policy_exists(struct node_core *core, const char *name);

/* policy_api.c: sys/policies/acl, sys/policy, sys/capabilities(-self,-accessor). caller_acl
 * is the caller's ACL (for capabilities-self). Returns false when the path is not its. */
bool node__policy_api_handle(struct node_core *core,
                             struct node_request *req,
                             const struct acl *caller_acl);

#endif
