/* Error code table and error-message helpers. */
#include "lib/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <uv.h>

static const char *const messages[] = {
#define CF_ERR_MSG(name, msg) msg,
    CF_ERR_TABLE(CF_ERR_MSG)
#undef CF_ERR_MSG
};

const char *cf_strerror(int err)
{
    if (err < 0 || err >= CF_ERR__COUNT) {
        return "unknown error";
    }
    return messages[err];
}

void cf_errmsg_printf(char *errmsg, const char *fmt, ...)
{
    if (errmsg == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, CF_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

void cf_errmsg_wrapf(char *errmsg, const char *fmt, ...)
{
    if (errmsg == NULL) {
        return;
    }
    char prefix[CF_ERRMSG_SIZE];
    char old[CF_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    snprintf(old, sizeof(old), "%s", errmsg);
    if (old[0] == '\0') {
        snprintf(errmsg, CF_ERRMSG_SIZE, "%s", prefix);
    } else {
        snprintf(errmsg, CF_ERRMSG_SIZE, "%s: %s", prefix, old);
    }
}

int cf_err_from_ossl(char *errmsg, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[160] = "unknown OpenSSL error";
    if (e != 0) {
        ERR_error_string_n(e, reason, sizeof(reason));
    }
    ERR_clear_error();
    cf_errmsg_printf(errmsg, "%s: %s", what, reason);
    return CF_ECRYPTO;
}

int cf_err_from_uv(char *errmsg, int uv_rv, const char *what)
{
    cf_errmsg_printf(errmsg, "%s: %s", what, uv_strerror(uv_rv));
    switch (uv_rv) {
        case UV_ENOMEM:
            return CF_ENOMEM;
        case UV_ECANCELED:
            return CF_ECANCELED;
        case UV_ETIMEDOUT:
            return CF_ETIMEDOUT;
        case UV_EINVAL:
            return CF_EINVAL;
        case UV_EADDRINUSE:
            return CF_EBUSY;
        default:
            return CF_EIO;
    }
}
