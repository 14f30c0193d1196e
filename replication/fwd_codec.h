/*
 * Wire format of forwarded requests and responses (standby -> active, replication/forward.c).
 * This is a format between server versions: a standby and its active node may run different
 * releases during a rolling upgrade, so it only ever grows in compatible ways.
 *
 * Each message is one msgpack map with short string keys; nothing may follow it.
 *
 *   request  {"v": uint (REPL_FWD_FORMAT, always the first key),
 *             "m": str   method, 1..16 bytes of HTTP token characters ("GET", "POST", ...)
 *             "p": str   path and query exactly as the client sent them, 1..8 KiB
 *             "h": array of [str name, str value] pairs, client headers in order, <= 256,
 *                  name non-empty, len(name) + len(value) <= 16 KiB
 *             "b": bin   body, <= 64 MiB (may be empty)
 *             "ra": str  client IP as the standby saw it, <= 64 bytes (may be empty)
 *             "rp": uint client port, 0..65535}
 *   response {"v": uint (first key),
 *             "s": uint  HTTP status of the forwarded response, 100..599
 *             "h": array of [str, str] pairs as above
 *             "b": bin   body, <= 64 MiB
 *             "i": uint  the active node's raft applied index after the request}
 *
 * Decoding is strict: every key listed is required and has exactly the type shown (integers in
 * any msgpack width, never negative), no key appears twice, no string holds a NUL byte, a map
 * has at most 64 keys. Keys this version does not know are skipped, so a later format may add
 * fields without a version bump; a change that an older decoder must not misread bumps "v",
 * and a decoder refuses a "v" above its own with CF_EVERSION. Limits give CF_ETOOBIG, every
 * other fault CF_EMALFORMED, each with a message naming the field.
 */
#ifndef CF_REPLICATION_FWD_CODEC_H_
#define CF_REPLICATION_FWD_CODEC_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

#define REPL_FWD_FORMAT 1

#define REPL_FWD_MAX_HEADERS 256
#define REPL_FWD_MAX_HEADER_BYTES ((size_t)16 << 10) /* name + value */
#define REPL_FWD_MAX_BODY ((size_t)64 << 20)
#define REPL_FWD_MAX_PATH ((size_t)8 << 10)
#define REPL_FWD_MAX_METHOD 16
#define REPL_FWD_MAX_ADDR 64
#define REPL_FWD_MAX_KEYS 64
/* Upper bound of an encoded message within the limits above (body, headers, path and the
 * framing around them); the transport refuses larger bodies before decoding. */
#define REPL_FWD_MAX_MESSAGE ((size_t)72 << 20)

struct repl_fwd_header
{
    char *name;  /* owned */
    char *value; /* owned */
};

struct repl_fwd_request
{
    char *method;                    /* owned; "GET", "POST", ... */
    char *path;                      /* owned; "/v1/secret/foo?list=true" as the client sent it */
    struct repl_fwd_header *headers; /* owned; client headers, order kept */
    size_t n_headers;
    uint8_t *body; /* owned; NULL when body_len == 0 after decoding */
    size_t body_len;
    char *remote_addr; /* owned; client IP as the standby saw it (NULL encodes as "") */
    int remote_port;   /* 0..65535 */
};

struct repl_fwd_response
{
    int status;                      /* 100..599 */
    struct repl_fwd_header *headers; /* owned */
    size_t n_headers;
    uint8_t *body; /* owned; NULL when body_len == 0 after decoding */
    size_t body_len;
    uint64_t index; /* the active node's raft applied index after the request */
};

/* Appends the encoding of r to out. CF_EINVAL for a NULL method, path or header name, a bad
 * method or port, CF_ETOOBIG past a limit (the same checks the decoder makes, so a sender
 * learns locally), CF_ENOMEM. On failure out keeps its previous length. */
int repl_fwd_request_encode(const struct repl_fwd_request *r, struct cf_buf *out);

/* Decodes exactly one request from p[0..n) into out (fully owned copies; p may be freed
 * afterwards). CF_EMALFORMED, CF_EVERSION or CF_ETOOBIG with errmsg set, or CF_ENOMEM; on
 * failure out is zeroed and owns nothing. */
int repl_fwd_request_decode(const uint8_t *p,
                            size_t n,
                            struct repl_fwd_request *out,
                            char errmsg[CF_ERRMSG_SIZE]);

/* Frees every member and zeroes r; NULL-safe, safe on a zeroed struct. */
void repl_fwd_request_free(struct repl_fwd_request *r);

/* As repl_fwd_request_encode; CF_EINVAL for a status outside 100..599. */
int repl_fwd_response_encode(const struct repl_fwd_response *r, struct cf_buf *out);

/* As repl_fwd_request_decode, for a response. */
int repl_fwd_response_decode(const uint8_t *p,
                             size_t n,
                             struct repl_fwd_response *out,
                             char errmsg[CF_ERRMSG_SIZE]);

/* Frees every member and zeroes r; NULL-safe. */
void repl_fwd_response_free(struct repl_fwd_response *r);

#endif
