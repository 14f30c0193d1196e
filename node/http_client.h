/*
 * A small JSON-over-HTTP(S) client for node-to-node API calls (raft join: the joiner asks the
 * leader's API for a challenge and sends its answer). libcurl runs on the worker pool, so the
 * loop never blocks; the callback runs on the loop.
 */
#ifndef CF_NODE_HTTP_CLIENT_H_
#define CF_NODE_HTTP_CLIENT_H_

#include <jansson.h>
#include <uv.h>

#include "lib/err.h"

/* status: CF_OK when an HTTP response arrived (any code; body parsed as JSON when it is JSON,
 * else NULL), CF_EIO / CF_ETIMEDOUT with errmsg otherwise. body is a borrowed reference. */
typedef void (
    *node_http_cb)(void *arg, int status, long http_code, json_t *body, const char *errmsg);

/* POSTs body (compact JSON) to base_url + path ("/v1/..."). ca_pem: PEM trust anchors for
 * https (NULL = the system store); the certificate must match the URL's host. The timeout covers
 * the whole exchange. */
int node__http_post(uv_loop_t *loop,
                    const char *base_url,
                    const char *path,
                    const json_t *body,
                    const char *ca_pem,
                    unsigned timeout_ms,
                    node_http_cb cb,
                    void *arg);

#endif
