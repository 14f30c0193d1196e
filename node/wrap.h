/*
 * Response wrapping (node-internal; core.md section 6). A wrapped response is serialized as the
 * full Vault envelope and stored in the cubbyhole of a new single-use token whose only policy
 * is "response-wrapping"; the client gets wrap_info. sys/wrapping/unwrap and rewrap consume the
 * token with a delete-if-present in the same raft batch that revokes it, so of any number of
 * parallel calls exactly one wins, on any node and across restarts.
 */
#ifndef CF_NODE_WRAP_H_
#define CF_NODE_WRAP_H_

#include <stdbool.h>

#include "node/engine.h"
#include "node/token.h"

/* Wraps resp (owned) for req; cb gets the wrapped response (or an error response). */
typedef void (*node_wrap_cb)(struct node_request *req, struct node_response *resp);
void node__wrap_response(struct node_core *core,
                         struct node_request *req,
                         struct node_response *resp,
                         const struct node_token *caller,
                         node_wrap_cb cb);

/* The wrapping endpoints that run before the client token is checked: sys/wrapping/lookup
 * (unauthenticated) and unwrap/rewrap when the wrapping token is the client token. Returns
 * false when req is not one of them. */
bool node__wrap_preauth(struct node_core *core, struct node_request *req);
/* True when node__wrap_preauth would take req (decided on the path and body alone). */
bool node__wrap_preauth_applies(const struct node_request *req);

/* sys/wrapping/{wrap,lookup,unwrap,rewrap} for an authenticated caller (token in the body).
 * Returns false when the path is not one of them. */
bool node__wrap_api_handle(struct node_core *core, struct node_request *req);

#endif
