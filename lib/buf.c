/* Growable byte buffer. */
#include "lib/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

void cf_buf_init(struct cf_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cf_buf_close(struct cf_buf *b)
{
    if (b == NULL) {
        return;
    }
    CF_FREE(b->data);
    b->len = 0;
    b->cap = 0;
}

void cf_buf_close_secure(struct cf_buf *b)
{
    if (b != NULL && b->data != NULL) {
        cf_cleanse(b->data, b->cap);
    }
    cf_buf_close(b);
}

void cf_buf_reset(struct cf_buf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = 0;
    }
}

int cf_buf_reserve(struct cf_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len - 1) {
        return CF_ETOOBIG;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap) {
        return CF_OK;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = cf_realloc(b->data, cap);
    if (p == NULL) {
        return CF_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return CF_OK;
}

int cf_buf_append(struct cf_buf *b, const void *p, size_t n)
{
    int rv = cf_buf_reserve(b, n);
    if (rv != CF_OK) {
        return rv;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = 0;
    return CF_OK;
}

int cf_buf_append_str(struct cf_buf *b, const char *s)
{
    return cf_buf_append(b, s, strlen(s));
}

int cf_buf_printf(struct cf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return CF_EINVAL;
    }
    int rv = cf_buf_reserve(b, (size_t)n);
    if (rv != CF_OK) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CF_OK;
}

uint8_t *cf_buf_steal(struct cf_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    cf_buf_init(b);
    return p;
}
