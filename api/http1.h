/*
 * HTTP/1.1 request decoding (llhttp) and the HTTP/1.1 side of a connection.
 *
 * The decoder is independent of sockets so that it can be unit-tested and fuzzed: it consumes
 * bytes and hands out complete requests (method, target, lowercased headers, body decoded from
 * Content-Length or chunked framing) through a callback, one at a time and never from inside
 * llhttp. It enforces the header-block and body size limits and reports the HTTP status that
 * the connection should answer with when it refuses the input (400, 413, 431).
 *
 * llhttp 8 knows a fixed method set without Vault's LIST; the decoder sniffs "LIST " at the
 * start of each message and feeds llhttp "LINK " in its place, remembering the real verb.
 */
#ifndef CF_API_HTTP1_H_
#define CF_API_HTTP1_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "api/http.h"
#include "lib/buf.h"

/* A decoded request; also the storage behind an HTTP/2 exchange. */
struct api_request
{
    char *method;               /* points into block */
    char *target;               /* points into block */
    struct api_header *headers; /* points into block; names lowercase */
    size_t n_headers;
    uint8_t *body; /* owned, NUL-terminated; NULL when empty */
    size_t body_len;
    void *block;      /* owned: header array, method, target and header strings */
    int http_version; /* 10, 11 or 20 */
    bool keep_alive;  /* the connection may carry another request after this one */
    bool head;        /* method is HEAD: the response carries no body */
};

/* Frees the request's storage and zeroes it; NULL-safe. */
void api_request_clear(struct api_request *r);

/* Accumulates header names and values (possibly arriving in pieces) for one request. */
struct api_request_builder
{
    struct cf_buf strs; /* "name\0value\0..." with names lowercased */
    size_t *offs;       /* owned; offsets in strs: 2 per header (name, value) */
    size_t n_offs;      /* entries used in offs */
    size_t cap;         /* entries allocated in offs */
    int state;          /* private */
};

void api__reqb_init(struct api_request_builder *b);
void api__reqb_close(struct api_request_builder *b);
/* Appends to the current header name, starting a new header after a value. */
int api__reqb_name(struct api_request_builder *b, const char *p, size_t n);
/* Appends to the current header value. */
int api__reqb_value(struct api_request_builder *b, const char *p, size_t n);
/* Ends the current value (also for empty values). */
int api__reqb_end_value(struct api_request_builder *b);
/* Builds r->block with the headers, method and target; resets the builder. The body fields of
 * r are left alone. CF_ENOMEM on failure (r untouched). */
int api__reqb_finish(struct api_request_builder *b,
                     const char *method,
                     size_t method_len,
                     const char *target,
                     size_t target_len,
                     struct api_request *r);

/* Called with each complete request; takes the request's storage (req is zeroed on return by
 * the decoder). Returns 0 to go on decoding, nonzero to stop this feed (the decoder then
 * returns CF_ECANCELED and keeps the unparsed rest unconsumed). */
typedef int (*api_h1_request_cb)(void *arg, struct api_request *req);

struct api_h1_decoder
{
    llhttp_t parser;
    llhttp_settings_t settings;
    size_t max_header_size; /* bytes of request line and headers */
    size_t max_body_size;
    api_h1_request_cb cb;
    void *arg;                       /* for cb */
    struct api_request_builder hdrs; /* current message */
    struct cf_buf url;               /* current message's target */
    struct cf_buf body;              /* current message's body */
    size_t header_bytes;             /* counted against max_header_size */
    struct api_request ready;        /* completed message awaiting delivery */
    bool has_ready;
    bool at_start;     /* before the first byte of a message */
    uint8_t sniff_len; /* bytes of "LIST " matched at the message start */
    bool is_list;
    bool headers_done;
    bool expect_continue;   /* current message asked for 100-continue */
    bool done;              /* a non-keep-alive request ended the stream */
    int error;              /* enum cf_err once failed, sticky */
    int error_status;       /* 400, 413 or 431 when error is set by the input */
    const char *error_text; /* static text for the error body */
};

/* Sets up a decoder. Limits of 0 mean the defaults (64 KiB headers, 32 MiB body). */
void api_h1_decoder_init(struct api_h1_decoder *d,
                         size_t max_header_size,
                         size_t max_body_size,
                         api_h1_request_cb cb,
                         void *arg);
void api_h1_decoder_close(struct api_h1_decoder *d);

/* Consumes bytes. CF_OK when all were consumed (bytes after a request that closes the
 * connection are ignored); CF_EMALFORMED (status 400), CF_ETOOBIG (413 or 431, see
 * error_status) when the input is refused; CF_ENOMEM; CF_ECANCELED when the callback asked to
 * stop, with *consumed telling how far the decoder got. Errors are sticky. */
int api_h1_decoder_feed(struct api_h1_decoder *d, const uint8_t *p, size_t n, size_t *consumed);

/* True between the first byte of a request and its end (a timer should be running). */
bool api_h1_decoder_in_message(const struct api_h1_decoder *d);

/* True once the current message's headers are complete and its body is awaited. */
bool api_h1_decoder_in_body(const struct api_h1_decoder *d);

struct api_conn;
struct api__ex;

/* Connection glue (listener.c calls these). */
int api__h1_start(struct api_conn *c);
/* Feeds plaintext; returns CF_OK or an error after which the connection must close. */
int api__h1_recv(struct api_conn *c, const uint8_t *p, size_t n);
/* Serialises a response for an HTTP/1.1 exchange (api_exchange_respond). */
void api__h1_respond(struct api__ex *x,
                     int status,
                     const struct api_header *headers,
                     size_t n_headers,
                     const uint8_t *body,
                     size_t body_len);
/* Listener shutdown: stop taking requests, close once the in-flight ones are answered. */
void api__h1_drain(struct api_conn *c);
/* A request stalled past its deadline: 408 when nothing else is owed, then close. Also ends
 * an idle keep-alive connection. */
void api__h1_timeout(struct api_conn *c);
/* Frees the decoder (called when the connection is released). */
void api__h1_free(struct api_conn *c);

/* Formats an HTTP date for the current second into out (30 bytes at least). */
void api__http_date(char *out, size_t size);
/* Reason phrase for a status code ("Unknown" for others). */
const char *api__status_text(int status);

#endif
