/*
 * Error codes shared by every layer. Fallible functions return enum cf_err (CF_OK == 0);
 * detail text goes into a caller buffer of CF_ERRMSG_SIZE bytes (rule E4). Foreign codes are
 * converted once, at the boundary, by the cf_err_from_* helpers.
 */
#ifndef CF_LIB_ERR_H_
#define CF_LIB_ERR_H_

#include <stddef.h>

#define CF_ERRMSG_SIZE 256

#define CF_ERR_TABLE(X)                        \
    X(CF_OK, "ok")                             \
    X(CF_ENOMEM, "out of memory")              \
    X(CF_EINVAL, "invalid argument")           \
    X(CF_EMALFORMED, "malformed input")        \
    X(CF_ETOOBIG, "too big")                   \
    X(CF_ENOTFOUND, "not found")               \
    X(CF_EEXIST, "already exists")             \
    X(CF_ECONFLICT, "condition failed")        \
    X(CF_EIO, "I/O error")                     \
    X(CF_ECRYPTO, "crypto failure")            \
    X(CF_EAUTH, "authentication failed")       \
    X(CF_EDENIED, "permission denied")         \
    X(CF_ESEALED, "Vault is sealed")           \
    X(CF_ENOTINIT, "Vault is not initialized") \
    X(CF_ENOTLEADER, "not the raft leader")    \
    X(CF_ECANCELED, "canceled")                \
    X(CF_EBUSY, "busy")                        \
    X(CF_ETIMEDOUT, "timed out")               \
    X(CF_EUNSUPPORTED, "unsupported")          \
    X(CF_ECORRUPT, "corrupt data")             \
    X(CF_EVERSION, "unknown format version")   \
    X(CF_ESHUTDOWN, "shutting down")           \
    X(CF_EINTERNAL, "internal error")

enum cf_err {
#define CF_ERR_ENUM(name, msg) name,
    CF_ERR_TABLE(CF_ERR_ENUM)
#undef CF_ERR_ENUM
        CF_ERR__COUNT
};

/* Static text for a code; never NULL. */
const char *cf_strerror(int err);

/* Writes printf-style text into errmsg (CF_ERRMSG_SIZE bytes), truncating safely. */
void cf_errmsg_printf(char *errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the text already in errmsg: "prefix: old text" (raft's ErrMsgWrapf). */
void cf_errmsg_wrapf(char *errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drains OpenSSL's error queue into errmsg as "what: reason" and returns CF_ECRYPTO. */
int cf_err_from_ossl(char *errmsg, const char *what);

/* Converts a libuv error (negative errno) into a code, writing "what: uv text" to errmsg. */
int cf_err_from_uv(char *errmsg, int uv_rv, const char *what);

#endif
