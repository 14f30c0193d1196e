/*
 * TLS for the listeners: server SSL_CTX construction (certificate chain, key, minimum version,
 * ALPN h2 / http/1.1) and a per-connection TLS state machine over memory BIOs, so the libuv
 * stream code never blocks inside OpenSSL: ciphertext read from the socket is pushed into the
 * read BIO, plaintext comes out of SSL_read, and whatever OpenSSL wants to send accumulates in
 * the write BIO until the connection writes it to the socket.
 */
#ifndef CF_API_TLS_H_
#define CF_API_TLS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "lib/err.h"

/* Builds a server context from a PEM certificate file (leaf first, then the chain) and a PEM
 * key. min_version is 12 or 13 (0 means 12). Compression and renegotiation are disabled and
 * ALPN prefers h2 over http/1.1. CF_EINVAL for a bad version, CF_ECRYPTO/CF_EIO otherwise. */
int api__tls_ctx_new(const char *cert_file,
                     const char *key_file,
                     int min_version,
                     SSL_CTX **out,
                     char errmsg[CF_ERRMSG_SIZE]);

struct api_tls
{
    SSL *ssl;  /* owned */
    BIO *rbio; /* borrowed from ssl: network -> OpenSSL */
    BIO *wbio; /* borrowed from ssl: OpenSSL -> network */
    bool handshake_done;
};

/* Creates the SSL object for one accepted connection (server side). */
int api__tls_init(struct api_tls *t, SSL_CTX *ctx);
/* Frees the SSL object; NULL-safe and safe on a zeroed struct. */
void api__tls_close(struct api_tls *t);

/* Pushes ciphertext received from the peer. */
int api__tls_feed(struct api_tls *t, const uint8_t *p, size_t n);

/* Advances the handshake; *done is set once it has completed. CF_ECRYPTO when it failed. */
int api__tls_handshake(struct api_tls *t, bool *done, char errmsg[CF_ERRMSG_SIZE]);

/* Reads decrypted bytes. *n == 0 means no more for now. CF_EIO once the peer sent
 * close_notify or the stream is broken. */
int api__tls_read(struct api_tls *t, uint8_t *buf, size_t cap, size_t *n);

/* Encrypts plaintext into the write BIO. */
int api__tls_write(struct api_tls *t, const uint8_t *p, size_t n);

/* Queues a close_notify alert. */
void api__tls_shutdown(struct api_tls *t);

/* Ciphertext waiting to be sent (borrowed until api__tls_out_reset). */
void api__tls_out(struct api_tls *t, const uint8_t **p, size_t *n);
void api__tls_out_reset(struct api_tls *t);

enum api__alpn {
    API__ALPN_NONE = 0,
    API__ALPN_HTTP1,
    API__ALPN_H2,
};

/* The ALPN protocol selected in the handshake. */
enum api__alpn api__tls_alpn(const struct api_tls *t);

#endif
