/*
 * The bridge between HTTP exchanges and the node core: decodes a Vault API request (method ->
 * operation, /v1/ path, query, JSON body, token headers) into a node_request, and encodes the
 * node_response as Vault's envelope, bare JSON, raw body or {"errors":[...]} (core.md 1).
 */
#ifndef CF_API_ROUTE_H_
#define CF_API_ROUTE_H_

struct api_exchange;
struct node_request;

#define API_ROUTE_MSG_SIZE 256

/* Decodes an exchange into a new node_request (*out). On failure returns non-zero and gives the
 * HTTP status and error text to answer with (msg "" = an empty error list). Pure: touches
 * nothing but its arguments, so it is fuzzed directly. */
int api_route_decode(const struct api_exchange *ex,
                     struct node_request **out,
                     int *status,
                     char msg[API_ROUTE_MSG_SIZE]);

/* Forwards an exchange this node may not serve to the active node and answers it (the HA layer,
 * replication/ha.c). */
typedef void (*api_route_forward_fn)(void *arg, struct api_exchange *ex);

struct api_route
{
    struct node_core *core;       /* serves the requests */
    api_route_forward_fn forward; /* NULL: standbys answer 307 to the active node */
    void *forward_arg;
};

/* An api_handler_fn: ctx is a struct api_route. */
void api_route_exchange(void *ctx, struct api_exchange *ex);

/* Answers ex with a 307 to the active node's API (same path and query), or 503 when no active
 * node is known. */
void api_route_redirect(struct node_core *core, struct api_exchange *ex);

#endif
