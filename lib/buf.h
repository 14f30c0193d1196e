/* Growable byte buffer (curl's dynbuf). Always NUL-terminated past len for convenience. */
#ifndef CF_LIB_BUF_H_
#define CF_LIB_BUF_H_

#include <stddef.h>
#include <stdint.h>

struct cf_buf
{
    uint8_t *data; /* owned; NULL until first append */
    size_t len;
    size_t cap;
};

void cf_buf_init(struct cf_buf *b);
/* Frees the storage and resets to empty; NULL-safe. */
void cf_buf_close(struct cf_buf *b);
/* Cleanses then frees (for buffers that held secrets). */
void cf_buf_close_secure(struct cf_buf *b);
void cf_buf_reset(struct cf_buf *b);
/* Ensures room for n more bytes; CF_ENOMEM or CF_ETOOBIG on failure. */
int cf_buf_reserve(struct cf_buf *b, size_t n);
int cf_buf_append(struct cf_buf *b, const void *p, size_t n);
int cf_buf_append_str(struct cf_buf *b, const char *s);
int cf_buf_printf(struct cf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the storage to the caller (who frees it with cf_free) and resets the buffer. */
uint8_t *cf_buf_steal(struct cf_buf *b, size_t *len);

#endif
