/*
 * Fuzzes the Vault request decoder (api_route_decode): the input is split into method, target,
 * one content-type header and a body at the first three NUL separators, so the fuzzer can
 * reach every branch (methods, ?list=, percent-escapes, JSON and form bodies).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "api/http.h"
#include "api/route.h"
#include "lib/mem.h"
#include "node/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        json_set_alloc_funcs(cf_malloc, cf_free);
        init = 1;
    }
    char *copy = cf_malloc(size + 4);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    memset(copy + size, 0, 4);
    /* fields: method \0 target \0 content-type \0 body */
    char *fields[4] = {copy, NULL, NULL, NULL};
    size_t f = 1;
    for (size_t i = 0; i < size && f < 4; i++) {
        if (copy[i] == '\0') {
            fields[f++] = copy + i + 1;
        }
    }
    for (; f < 4; f++) {
        fields[f] = copy + size;
    }
    struct api_header h[2] = {
        {.name = (char *)"content-type", .value = fields[2]},
        {.name = (char *)"x-vault-token", .value = (char *)"root"},
    };
    struct api_exchange ex = {
        .method = fields[0],
        .target = fields[1],
        .headers = h,
        .n_headers = 2,
        .body = (const uint8_t *)fields[3],
        .body_len = (size_t)(copy + size - fields[3]),
        .remote_addr = "127.0.0.1",
        .http_version = 11,
    };
    struct node_request *req = NULL;
    int status = 0;
    char msg[API_ROUTE_MSG_SIZE];
    if (api_route_decode(&ex, &req, &status, msg) == 0) {
        node_request_free(req);
    }
    cf_free(copy);
    return 0;
}
