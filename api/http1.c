/*
 * HTTP/1.1: the request decoder over llhttp, and the connection side that turns decoded
 * requests into exchanges and writes their responses back in request order.
 *
 * Happy path: bytes from the socket (or TLS) go to api_h1_decoder_feed; llhttp's callbacks
 * collect target, headers and body; on_message_complete pauses llhttp so the request is handed
 * out between llhttp_execute calls, never from inside llhttp. The connection queues one
 * exchange per request; a response is written as soon as every earlier one has been, so
 * pipelined answers keep their order even when the handler finishes them out of order.
 *
 * Refused input (malformed syntax, headers over max_header_size, a body over max_request_size)
 * is answered with Vault's JSON error shape after the responses already owed, and the
 * connection is then closed.
 */
#include "api/http1.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/conn.h"
#include "lib/err.h"
#include "lib/mem.h"

#define DEFAULT_MAX_HEADER ((size_t)64 << 10)
#define DEFAULT_MAX_BODY ((size_t)32 << 20)

static const char list_verb[] = "LIST ";
/* A verb llhttp knows, of the same length, fed in place of "LIST ". */
static const char list_standin[] = "LINK ";

enum { REQB_NONE = 0, REQB_NAME, REQB_VALUE };

/* ---- request storage ---- */

void api_request_clear(struct api_request *r)
{
    if (r == NULL) {
        return;
    }
    cf_free(r->block);
    cf_free(r->body);
    memset(r, 0, sizeof(*r));
}

void api__reqb_init(struct api_request_builder *b)
{
    memset(b, 0, sizeof(*b));
    cf_buf_init(&b->strs);
}

void api__reqb_close(struct api_request_builder *b)
{
    if (b == NULL) {
        return;
    }
    cf_buf_close(&b->strs);
    CF_FREE(b->offs);
    b->n_offs = 0;
    b->cap = 0;
    b->state = REQB_NONE;
}

static void reqb_reset(struct api_request_builder *b)
{
    cf_buf_reset(&b->strs);
    b->n_offs = 0;
    b->state = REQB_NONE;
}

static int reqb_push_off(struct api_request_builder *b)
{
    if (b->n_offs == b->cap) {
        size_t cap = b->cap == 0 ? 32 : b->cap * 2;
        size_t *o = cf_realloc(b->offs, cap * sizeof(*o));
        if (o == NULL) {
            return CF_ENOMEM;
        }
        b->offs = o;
        b->cap = cap;
    }
    b->offs[b->n_offs++] = b->strs.len;
    return CF_OK;
}

int api__reqb_name(struct api_request_builder *b, const char *p, size_t n)
{
    if (b->state != REQB_NAME) {
        if (b->state == REQB_VALUE) {
            int rv = api__reqb_end_value(b);
            if (rv != CF_OK) {
                return rv;
            }
        }
        int rv = reqb_push_off(b);
        if (rv != CF_OK) {
            return rv;
        }
        b->state = REQB_NAME;
    }
    int rv = cf_buf_reserve(&b->strs, n);
    if (rv != CF_OK) {
        return rv;
    }
    uint8_t *dst = b->strs.data + b->strs.len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        dst[i] = (ch >= 'A' && ch <= 'Z') ? (uint8_t)(ch + 32) : ch;
    }
    b->strs.len += n;
    b->strs.data[b->strs.len] = 0;
    return CF_OK;
}

int api__reqb_value(struct api_request_builder *b, const char *p, size_t n)
{
    if (b->state == REQB_NONE) {
        /* A value without a name cannot come from llhttp or nghttp2; ignore it. */
        return CF_OK;
    }
    if (b->state == REQB_NAME) {
        int rv = cf_buf_append(&b->strs, "", 1);
        if (rv == CF_OK) {
            rv = reqb_push_off(b);
        }
        if (rv != CF_OK) {
            return rv;
        }
        b->state = REQB_VALUE;
    }
    return cf_buf_append(&b->strs, p, n);
}

int api__reqb_end_value(struct api_request_builder *b)
{
    if (b->state == REQB_NONE) {
        return CF_OK;
    }
    if (b->state == REQB_NAME) {
        int rv = api__reqb_value(b, "", 0);
        if (rv != CF_OK) {
            return rv;
        }
    }
    int rv = cf_buf_append(&b->strs, "", 1);
    if (rv != CF_OK) {
        return rv;
    }
    b->state = REQB_NONE;
    return CF_OK;
}

int api__reqb_finish(struct api_request_builder *b,
                     const char *method,
                     size_t method_len,
                     const char *target,
                     size_t target_len,
                     struct api_request *r)
{
    if (b->state != REQB_NONE) {
        int rv = api__reqb_end_value(b);
        if (rv != CF_OK) {
            return rv;
        }
    }
    size_t n = b->n_offs / 2;
    size_t arr = n * sizeof(struct api_header);
    size_t size = arr + method_len + 1 + target_len + 1 + b->strs.len + 1;
    char *block = cf_malloc(size);
    if (block == NULL) {
        return CF_ENOMEM;
    }
    struct api_header *h = (struct api_header *)(void *)block;
    char *s = block + arr;
    memcpy(s, method, method_len);
    s[method_len] = 0;
    r->method = s;
    s += method_len + 1;
    if (target_len > 0) {
        memcpy(s, target, target_len);
    }
    s[target_len] = 0;
    r->target = s;
    s += target_len + 1;
    if (b->strs.len > 0) {
        memcpy(s, b->strs.data, b->strs.len);
    }
    s[b->strs.len] = 0;
    for (size_t i = 0; i < n; i++) {
        h[i].name = s + b->offs[2 * i];
        h[i].value = s + b->offs[2 * i + 1];
    }
    r->headers = n > 0 ? h : NULL;
    r->n_headers = n;
    r->block = block;
    reqb_reset(b);
    return CF_OK;
}

/* ---- decoder ---- */

static struct api_h1_decoder *dec_of(llhttp_t *p)
{
    return p->data;
}

static int dec_fail(struct api_h1_decoder *d, int err, int status, const char *text)
{
    if (d->error == CF_OK) {
        d->error = err;
        d->error_status = status;
        d->error_text = text;
    }
    return HPE_USER;
}

static int dec_count_header(struct api_h1_decoder *d, size_t n)
{
    d->header_bytes += n;
    if (d->header_bytes > d->max_header_size) {
        return dec_fail(d, CF_ETOOBIG, 431, "request header fields too large");
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct api_h1_decoder *d = dec_of(p);
    d->header_bytes = d->sniff_len;
    d->headers_done = false;
    d->expect_continue = false;
    cf_buf_reset(&d->url);
    reqb_reset(&d->hdrs);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct api_h1_decoder *d = dec_of(p);
    int rv = dec_count_header(d, n);
    if (rv != 0) {
        return rv;
    }
    if (cf_buf_append(&d->url, at, n) != CF_OK) {
        return dec_fail(d, CF_ENOMEM, 500, "out of memory");
    }
    return 0;
}

/* RFC 9110 tchar: llhttp's loose mode lets some non-token bytes (spaces) through. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
        return true;
    }
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct api_h1_decoder *d = dec_of(p);
    int rv = dec_count_header(d, n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)at[i])) {
            return dec_fail(d, CF_EMALFORMED, 400, "malformed request");
        }
    }
    if (d->headers_done) {
        return 0; /* trailers are checked and counted, not kept */
    }
    if (api__reqb_name(&d->hdrs, at, n) != CF_OK) {
        return dec_fail(d, CF_ENOMEM, 500, "out of memory");
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct api_h1_decoder *d = dec_of(p);
    int rv = dec_count_header(d, n);
    if (rv != 0 || d->headers_done) {
        return rv;
    }
    if (api__reqb_value(&d->hdrs, at, n) != CF_OK) {
        return dec_fail(d, CF_ENOMEM, 500, "out of memory");
    }
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct api_h1_decoder *d = dec_of(p);
    if (d->headers_done) {
        return 0;
    }
    /* Each header line costs its separators too, so many empty headers still count. */
    int rv = dec_count_header(d, 4);
    if (rv != 0) {
        return rv;
    }
    if (api__reqb_end_value(&d->hdrs) != CF_OK) {
        return dec_fail(d, CF_ENOMEM, 500, "out of memory");
    }
    return 0;
}

static bool dec_has_expect_continue(const struct api_h1_decoder *d)
{
    const struct api_request_builder *b = &d->hdrs;
    for (size_t i = 0; i + 1 < b->n_offs; i += 2) {
        const char *name = (const char *)b->strs.data + b->offs[i];
        const char *value = (const char *)b->strs.data + b->offs[i + 1];
        if (strcmp(name, "expect") == 0 && strcasecmp(value, "100-continue") == 0) {
            return true;
        }
    }
    return false;
}

static int on_headers_complete(llhttp_t *p)
{
    struct api_h1_decoder *d = dec_of(p);
    d->headers_done = true;
    cf_buf_reset(&d->body);
    if ((p->flags & F_CONTENT_LENGTH) != 0 && (p->flags & F_CHUNKED) == 0) {
        if (p->content_length > d->max_body_size) {
            return dec_fail(d, CF_ETOOBIG, 413, "http: request body too large");
        }
        if (p->content_length > 0 && cf_buf_reserve(&d->body, (size_t)p->content_length) != CF_OK) {
            return dec_fail(d, CF_ENOMEM, 500, "out of memory");
        }
    }
    d->expect_continue = p->http_major == 1 && p->http_minor >= 1 && dec_has_expect_continue(d);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct api_h1_decoder *d = dec_of(p);
    if (n > d->max_body_size - d->body.len) {
        return dec_fail(d, CF_ETOOBIG, 413, "http: request body too large");
    }
    if (cf_buf_append(&d->body, at, n) != CF_OK) {
        return dec_fail(d, CF_ENOMEM, 500, "out of memory");
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct api_h1_decoder *d = dec_of(p);
    const char *method =
        d->is_list ? "LIST" : llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
    struct api_request *r = &d->ready;
    memset(r, 0, sizeof(*r));
    if (api__reqb_finish(&d->hdrs, method, strlen(method), (const char *)d->url.data, d->url.len,
                         r) != CF_OK) {
        return dec_fail(d, CF_ENOMEM, 500, "out of memory");
    }
    r->http_version = p->http_major == 1 && p->http_minor == 0 ? 10 : 11;
    r->keep_alive = llhttp_should_keep_alive(p) != 0 && p->upgrade == 0;
    r->head = !d->is_list && llhttp_get_method(p) == HTTP_HEAD;
    if (d->body.len > 0) {
        size_t len = 0;
        r->body = cf_buf_steal(&d->body, &len);
        r->body_len = len;
    } else {
        cf_buf_reset(&d->body);
    }
    d->has_ready = true;
    d->at_start = true;
    d->sniff_len = 0;
    d->is_list = false;
    d->headers_done = false;
    d->expect_continue = false;
    return HPE_PAUSED;
}

void api_h1_decoder_init(struct api_h1_decoder *d,
                         size_t max_header_size,
                         size_t max_body_size,
                         api_h1_request_cb cb,
                         void *arg)
{
    memset(d, 0, sizeof(*d));
    d->max_header_size = max_header_size ? max_header_size : DEFAULT_MAX_HEADER;
    d->max_body_size = max_body_size ? max_body_size : DEFAULT_MAX_BODY;
    d->cb = cb;
    d->arg = arg;
    api__reqb_init(&d->hdrs);
    cf_buf_init(&d->url);
    cf_buf_init(&d->body);
    llhttp_settings_init(&d->settings);
    d->settings.on_message_begin = on_message_begin;
    d->settings.on_url = on_url;
    d->settings.on_header_field = on_header_field;
    d->settings.on_header_value = on_header_value;
    d->settings.on_header_value_complete = on_header_value_complete;
    d->settings.on_headers_complete = on_headers_complete;
    d->settings.on_body = on_body;
    d->settings.on_message_complete = on_message_complete;
    llhttp_init(&d->parser, HTTP_REQUEST, &d->settings);
    d->parser.data = d;
    d->at_start = true;
}

void api_h1_decoder_close(struct api_h1_decoder *d)
{
    if (d == NULL) {
        return;
    }
    api__reqb_close(&d->hdrs);
    cf_buf_close(&d->url);
    cf_buf_close(&d->body);
    api_request_clear(&d->ready);
    d->has_ready = false;
}

/* Runs llhttp over [p, p+n); *used tells how much it consumed. */
static int dec_run(struct api_h1_decoder *d, const char *p, size_t n, size_t *used)
{
    llhttp_errno_t e = llhttp_execute(&d->parser, p, n);
    switch (e) {
        case HPE_OK:
            *used = n;
            return CF_OK;
        case HPE_PAUSED:
            *used = (size_t)(llhttp_get_error_pos(&d->parser) - p);
            llhttp_resume(&d->parser);
            return CF_OK;
        case HPE_PAUSED_UPGRADE:
            *used = (size_t)(llhttp_get_error_pos(&d->parser) - p);
            llhttp_resume_after_upgrade(&d->parser);
            return CF_OK;
        case HPE_USER:
            *used = 0;
            return d->error != CF_OK ? d->error : CF_EINTERNAL;
        case HPE_INTERNAL:
        case HPE_STRICT:
        case HPE_CR_EXPECTED:
        case HPE_LF_EXPECTED:
        case HPE_UNEXPECTED_CONTENT_LENGTH:
        case HPE_UNEXPECTED_SPACE:
        case HPE_CLOSED_CONNECTION:
        case HPE_INVALID_METHOD:
        case HPE_INVALID_URL:
        case HPE_INVALID_CONSTANT:
        case HPE_INVALID_VERSION:
        case HPE_INVALID_HEADER_TOKEN:
        case HPE_INVALID_CONTENT_LENGTH:
        case HPE_INVALID_CHUNK_SIZE:
        case HPE_INVALID_STATUS:
        case HPE_INVALID_EOF_STATE:
        case HPE_INVALID_TRANSFER_ENCODING:
        case HPE_CB_MESSAGE_BEGIN:
        case HPE_CB_HEADERS_COMPLETE:
        case HPE_CB_MESSAGE_COMPLETE:
        case HPE_CB_CHUNK_HEADER:
        case HPE_CB_CHUNK_COMPLETE:
        case HPE_PAUSED_H2_UPGRADE:
        case HPE_CB_URL_COMPLETE:
        case HPE_CB_STATUS_COMPLETE:
        case HPE_CB_METHOD_COMPLETE:
        case HPE_CB_VERSION_COMPLETE:
        case HPE_CB_HEADER_FIELD_COMPLETE:
        case HPE_CB_HEADER_VALUE_COMPLETE:
        case HPE_CB_CHUNK_EXTENSION_NAME_COMPLETE:
        case HPE_CB_CHUNK_EXTENSION_VALUE_COMPLETE:
        case HPE_CB_RESET:
        default:
            break;
    }
    *used = 0;
    dec_fail(d, CF_EMALFORMED, 400, "malformed request");
    return d->error;
}

int api_h1_decoder_feed(struct api_h1_decoder *d, const uint8_t *p, size_t n, size_t *consumed)
{
    size_t i = 0;
    int rv = d->error;
    while (rv == CF_OK && i < n && !d->done) {
        if (d->at_start) {
            char ch = (char)p[i];
            if (d->sniff_len == 0 && (ch == '\r' || ch == '\n')) {
                i++; /* blank lines between messages are tolerated */
                continue;
            }
            size_t used = 0;
            if (ch == list_verb[d->sniff_len]) {
                d->sniff_len++;
                i++;
                if (d->sniff_len == sizeof(list_verb) - 1) {
                    d->at_start = false;
                    d->is_list = true;
                    rv = dec_run(d, list_standin, sizeof(list_standin) - 1, &used);
                }
                continue;
            }
            d->at_start = false;
            if (d->sniff_len > 0) {
                rv = dec_run(d, list_verb, d->sniff_len, &used);
            }
            continue;
        }
        size_t used = 0;
        rv = dec_run(d, (const char *)p + i, n - i, &used);
        i += used;
        if (rv != CF_OK || !d->has_ready) {
            continue;
        }
        d->has_ready = false;
        struct api_request req = d->ready;
        memset(&d->ready, 0, sizeof(d->ready));
        if (!req.keep_alive) {
            d->done = true;
        }
        if (d->cb(d->arg, &req) != 0) {
            api_request_clear(&req);
            if (consumed != NULL) {
                *consumed = i;
            }
            return CF_ECANCELED;
        }
        api_request_clear(&req);
    }
    if (consumed != NULL) {
        *consumed = rv == CF_OK ? n : i;
    }
    return rv;
}

bool api_h1_decoder_in_message(const struct api_h1_decoder *d)
{
    return !d->done && (!d->at_start || d->sniff_len > 0);
}

bool api_h1_decoder_in_body(const struct api_h1_decoder *d)
{
    return !d->done && !d->at_start && d->headers_done;
}

/* ---- responses ---- */

const char *api__status_text(int status)
{
    switch (status) {
        case 100:
            return "Continue";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 206:
            return "Partial Content";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 303:
            return "See Other";
        case 304:
            return "Not Modified";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 412:
            return "Precondition Failed";
        case 413:
            return "Request Entity Too Large";
        case 415:
            return "Unsupported Media Type";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 472:
            return "Data Consistency Failed";
        case 473:
            return "Performance Standby";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "Unknown";
    }
}

void api__http_date(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0 && size > 0) {
        out[0] = 0;
    }
}

static const char *listener_date(struct api_listener *l)
{
    time_t now = time(NULL);
    if (now != l->date_sec || l->date[0] == 0) {
        l->date_sec = now;
        api__http_date(l->date, sizeof(l->date));
    }
    return l->date;
}

/* Headers the protocol code owns, dropped from what the handler passes. */
static bool h1_reserved_header(const char *name)
{
    return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "connection") == 0 ||
           strcasecmp(name, "transfer-encoding") == 0 || strcasecmp(name, "keep-alive") == 0 ||
           strcasecmp(name, "date") == 0 || strcasecmp(name, "upgrade") == 0;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int append_uint(struct cf_buf *b, size_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return cf_buf_append(b, tmp + i, sizeof(tmp) - i);
}

static int h1_serialize(struct api_listener *l,
                        struct cf_buf *b,
                        const struct api__ex *x,
                        int status,
                        const struct api_header *headers,
                        size_t n_headers,
                        const uint8_t *body,
                        size_t body_len)
{
    if (status < 200 || status > 999) {
        status = 500; /* interim responses are not final answers */
    }
    bool no_body = status == 204 || status == 304;
    int rv = cf_buf_reserve(b, 128 + (x->req.head || no_body ? 0 : body_len));
    if (rv == CF_OK) {
        char line[64];
        int len =
            snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, api__status_text(status));
        rv = cf_buf_append(b, line, (size_t)len);
    }
    for (size_t i = 0; rv == CF_OK && i < n_headers; i++) {
        const char *name = headers[i].name;
        const char *value = headers[i].value != NULL ? headers[i].value : "";
        if (name == NULL || name[0] == 0 || h1_reserved_header(name) || has_crlf(name) ||
            strchr(name, ':') != NULL || has_crlf(value)) {
            continue;
        }
        rv = cf_buf_append_str(b, name);
        if (rv == CF_OK) {
            rv = cf_buf_append(b, ": ", 2);
        }
        if (rv == CF_OK) {
            rv = cf_buf_append_str(b, value);
        }
        if (rv == CF_OK) {
            rv = cf_buf_append(b, "\r\n", 2);
        }
    }
    if (rv == CF_OK) {
        rv = cf_buf_append(b, "Date: ", 6);
    }
    if (rv == CF_OK) {
        rv = cf_buf_append_str(b, listener_date(l));
    }
    if (rv == CF_OK && !no_body) {
        rv = cf_buf_append(b, "\r\nContent-Length: ", 18);
        if (rv == CF_OK) {
            rv = append_uint(b, body_len);
        }
    }
    if (rv == CF_OK) {
        if (!x->keep_alive) {
            rv = cf_buf_append_str(b, "\r\nConnection: close\r\n\r\n");
        } else if (x->req.http_version == 10) {
            rv = cf_buf_append_str(b, "\r\nConnection: keep-alive\r\n\r\n");
        } else {
            rv = cf_buf_append(b, "\r\n\r\n", 4);
        }
    }
    if (rv == CF_OK && !no_body && !x->req.head && body_len > 0) {
        rv = cf_buf_append(b, body, body_len);
    }
    return rv;
}

/* Writes every response whose turn has come; finishes the connection when one of them was
 * the last it will carry. */
static void h1_pump(struct api_conn *c)
{
    bool end = false;
    while (!end && c->ex_head != NULL && c->ex_head->responded) {
        struct api__ex *x = c->ex_head;
        if (cf_buf_append(&c->out, x->out.data, x->out.len) != CF_OK) {
            api__conn_close(c);
            return;
        }
        end = !x->keep_alive;
        api__ex_unlink(x);
        x->proto_owns = false;
        api__ex_maybe_free(x);
    }
    if (end || ((c->draining || c->eof) && c->ex_head == NULL)) {
        api__conn_finish(c);
        return;
    }
    api__conn_flush(c);
    api__conn_update(c);
}

void api__h1_respond(struct api__ex *x,
                     int status,
                     const struct api_header *headers,
                     size_t n_headers,
                     const uint8_t *body,
                     size_t body_len)
{
    struct api_conn *c = x->conn;
    struct cf_buf *dst = x == c->ex_head ? &c->out : &x->out;
    if (h1_serialize(c->l, dst, x, status, headers, n_headers, body, body_len) != CF_OK) {
        api__conn_close(c);
        return;
    }
    if (dst == &x->out) {
        x->responded = true;
        h1_pump(c);
        return;
    }
    bool end = !x->keep_alive;
    api__ex_unlink(x);
    x->proto_owns = false;
    api__ex_maybe_free(x);
    if (end) {
        api__conn_finish(c);
        return;
    }
    h1_pump(c);
}

/* Answers refused input after the responses already owed, then closes. */
static void h1_refuse(struct api_conn *c, int status, const char *text)
{
    struct api__ex *x = api__ex_new(c);
    if (x == NULL) {
        api__conn_close(c);
        return;
    }
    x->keep_alive = false;
    x->req.http_version = 11;
    char body[128];
    int len = snprintf(body, sizeof(body), "{\"errors\":[\"%s\"]}", text);
    const struct api_header hdr = {.name = "Content-Type", .value = "application/json"};
    api__h1_respond(x, status, &hdr, 1, (const uint8_t *)body, (size_t)len);
}

static int h1_request_cb(void *arg, struct api_request *req)
{
    struct api_conn *c = arg;
    c->h1_msgs++;
    c->sent_continue = false;
    struct api__ex *x = api__ex_new(c);
    if (x == NULL) {
        api__conn_close(c);
        return 1;
    }
    x->req = *req;
    memset(req, 0, sizeof(*req));
    x->keep_alive = x->req.keep_alive;
    api__conn_dispatch(c, x);
    return c->closing || c->draining || c->finishing;
}

int api__h1_start(struct api_conn *c)
{
    api_h1_decoder_init(&c->h1, c->l->max_header_size, c->l->max_request_size, h1_request_cb, c);
    c->h1_started = true;
    return CF_OK;
}

int api__h1_recv(struct api_conn *c, const uint8_t *p, size_t n)
{
    if (c->draining || c->finishing || c->eof || c->h1.error != CF_OK || c->h1.done) {
        return CF_OK;
    }
    size_t used = 0;
    int rv = api_h1_decoder_feed(&c->h1, p, n, &used);
    if (c->closing) {
        return CF_OK;
    }
    switch (rv) {
        case CF_OK:
        case CF_ECANCELED:
            break;
        case CF_EMALFORMED:
        case CF_ETOOBIG:
            h1_refuse(c, c->h1.error_status, c->h1.error_text);
            return CF_OK;
        default:
            return rv;
    }
    if (api_h1_decoder_in_message(&c->h1)) {
        if (!c->msg_active || c->msg_start_msgs != c->h1_msgs) {
            c->msg_active = true;
            c->msg_start_msgs = c->h1_msgs;
            c->msg_start_ms = uv_now(c->l->loop);
        }
        if (api_h1_decoder_in_body(&c->h1) && c->h1.expect_continue && !c->sent_continue &&
            c->ex_head == NULL) {
            c->sent_continue = true;
            if (cf_buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n") != CF_OK) {
                return CF_ENOMEM;
            }
        }
    } else {
        c->msg_active = false;
    }
    return CF_OK;
}

void api__h1_drain(struct api_conn *c)
{
    c->draining = true;
    c->msg_active = false;
    if (c->ex_tail == NULL) {
        api__conn_finish(c);
        return;
    }
    c->ex_tail->keep_alive = false;
    if (c->ex_head->responded) {
        h1_pump(c);
    }
}

void api__h1_free(struct api_conn *c)
{
    if (c->h1_started) {
        api_h1_decoder_close(&c->h1);
        c->h1_started = false;
    }
}

void api__h1_timeout(struct api_conn *c)
{
    if (!c->h1_started || !api_h1_decoder_in_message(&c->h1)) {
        api__conn_finish(c);
        return;
    }
    c->h1.done = true;
    c->msg_active = false;
    if (c->ex_head == NULL) {
        h1_refuse(c, 408, "request timeout");
        return;
    }
    /* Answer what is in flight, then close. */
    c->ex_tail->keep_alive = false;
    if (c->ex_head->responded) {
        h1_pump(c);
    }
}
