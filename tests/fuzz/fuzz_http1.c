/*
 * libFuzzer target for the HTTP/1.1 request decoder (api/http1.c). The first input byte picks
 * the limits and how the rest is split into feeds, so framing across arbitrary read
 * boundaries is exercised as well; every decoded request is checked for internal consistency.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/http1.h"
#include "lib/err.h"

static int request_cb(void *arg, struct api_request *req)
{
    size_t *count = arg;
    (*count)++;
    if (req->method == NULL || req->target == NULL || req->method[0] == 0) {
        abort();
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        for (const char *p = req->headers[i].name; *p != 0; p++) {
            if (*p >= 'A' && *p <= 'Z') {
                abort(); /* names are lowercased */
            }
        }
        (void)strlen(req->headers[i].value);
    }
    if (req->body_len > 0 && (req->body == NULL || req->body[req->body_len] != 0)) {
        abort();
    }
    if (req->http_version != 10 && req->http_version != 11) {
        abort();
    }
    /* Ask to stop now and then, as a connection under back-pressure would. */
    return (*count % 7) == 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    data++;
    size--;
    size_t max_header = (mode & 1) != 0 ? 256 : 0;
    size_t max_body = (mode & 2) != 0 ? 64 : 0;
    size_t chunk = (mode >> 2) == 0 ? size : (size_t)(mode >> 2);
    size_t count = 0;
    struct api_h1_decoder d;
    api_h1_decoder_init(&d, max_header, max_body, request_cb, &count);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t used = 0;
        int rv = api_h1_decoder_feed(&d, data + off, n, &used);
        if (rv == CF_ECANCELED) {
            if (used > n) {
                abort();
            }
            off += used;
            continue;
        }
        if (rv != CF_OK) {
            if (rv != CF_EMALFORMED && rv != CF_ETOOBIG && rv != CF_ENOMEM) {
                abort();
            }
            if (rv != CF_ENOMEM && d.error_status != 400 && d.error_status != 413 &&
                d.error_status != 431) {
                abort();
            }
            break;
        }
        off += n;
    }
    (void)api_h1_decoder_in_message(&d);
    (void)api_h1_decoder_in_body(&d);
    api_h1_decoder_close(&d);
    return 0;
}
