/*
 * GET sys/metrics: the process's metrics (lib/metrics.h) as Vault serves them: the go-metrics
 * JSON summary by default, the Prometheus text exposition with ?format=prometheus. A token with
 * read on sys/metrics is needed, as in Vault without unauthenticated_metrics_access.
 */
#include <string.h>

#include <stdio.h>

#include "lib/metrics.h"
#include "node/internal.h"
#include "node/lease.h"

#define NUM_LEASES "vault.expire.num_leases"

/* The gauges kept outside lib/metrics: the number of stored leases (0 while sealed). */
static size_t num_leases(struct node_core *core)
{
    return core->sealed ? 0 : node__lease_count(core);
}

static json_t *gauges_json(struct node_core *core)
{
    return json_pack("[{s:s, s:I, s:{}}]", "Name", NUM_LEASES, "Value",
                     (json_int_t)num_leases(core), "Labels");
}

static char *with_gauges_text(struct node_core *core, char *text)
{
    if (text == NULL) {
        return NULL;
    }
    size_t n = strlen(text) + 128;
    char *out = cf_malloc(n);
    if (out != NULL) {
        snprintf(out, n, "%s# TYPE vault_expire_num_leases gauge\nvault_expire_num_leases %zu\n",
                 text, num_leases(core));
    }
    cf_free(text);
    return out;
}

bool node__metrics_api_handle(struct node_core *core, struct node_request *req)
{
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
        json_t *g = resp->bare != NULL ? gauges_json(core) : NULL;
        if (g == NULL || json_object_set_new(resp->bare, "Gauges", g) != 0) {
            json_decref(resp->bare);
            resp->bare = NULL;
        }
    } else if (strcmp(format, "prometheus") == 0) {
        char *text = with_gauges_text(core, cf_metrics_prometheus());
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
