/*
 * Audit as the core uses it (node-internal): the device table, the sys/audit endpoints and the
 * raw entries handed to the broker (node/audit.h) for every routed request and response.
 */
#ifndef CF_NODE_AUDIT_CORE_H_
#define CF_NODE_AUDIT_CORE_H_

#include <stdbool.h>

#include <jansson.h>

#include "lib/err.h"
#include "node/engine.h"

struct node_core;
struct node_token;

/* Opens every device of the stored table (at unseal). Requests wait until all have answered. */
int node__audit_load(struct node_core *core, char errmsg[CF_ERRMSG_SIZE]);
/* Closes every device (at seal). */
void node__audit_unload(struct node_core *core);
/* Runs the requests that waited for the devices (core.c). */
void node__audit_release_waiters(struct node_core *core);

/* sys/audit, sys/audit/:path, sys/audit-hash/:path. False when the path is not its. */
bool node__audit_api_handle(struct node_core *core, struct node_request *req);

/* The raw entry (core.md 11.3, without "time") of a request (resp NULL) or of its response.
 * tok: the caller's token or NULL; granting: the ACL's granting policies or NULL; error: ""
 * or the failure. A new object, NULL on OOM. */
json_t *node__audit_entry(struct node_core *core,
                          const struct node_request *req,
                          const struct node_token *tok,
                          const json_t *granting,
                          const struct node_response *resp,
                          const char *error);

#endif
