/*
 * GET sys/metrics: the process's metrics (lib/metrics.h) as Vault serves them: the go-metrics
 * JSON summary by default, the Prometheus text exposition with ?format=prometheus. A token with
 * read on sys/metrics is needed, as in Vault without unauthenticated_metrics_access.
 */
#include <string.h>

#include "lib/metrics.h"
#include "node/internal.h"

bool node__metrics_api_handle(struct node_core *core, struct node_request *req)
{
    (void)core;
    if (strcmp(req->path, "sys/metrics") != 0) {
        return false;
    }
    if (req->op != NODE_OP_READ) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    const char *format = json_string_value(json_object_get(req->data, "format"));
    struct node_response *resp = node_response_new();
    if (resp == NULL) {
        node_request_done(req, NULL);
        return true;
    }
    if (format == NULL || format[0] == '\0') {
        resp->bare = cf_metrics_json();
    } else if (strcmp(format, "prometheus") == 0) {
        char *text = cf_metrics_prometheus();
        resp->raw_content_type = cf_strdup("text/plain; version=0.0.4");
        if (text != NULL && resp->raw_content_type != NULL) {
            resp->raw_body = (uint8_t *)text;
            resp->raw_len = strlen(text);
        } else {
            cf_free(text);
            node_response_free(resp);
            resp = NULL;
        }
    } else {
        node_response_free(resp);
        resp =
            node_response_error(400, "format must be empty or \"prometheus\", not \"%s\"", format);
    }
    if (resp != NULL && resp->bare == NULL && resp->raw_body == NULL && resp->errors == NULL) {
        node_response_free(resp);
        resp = NULL;
    }
    node_request_done(req, resp);
    return true;
}
