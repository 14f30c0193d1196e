/*
 * TLS contexts and memory-BIO TLS sessions for the listeners (see tls.h).
 *
 * Happy path: api__tls_init gives each accepted connection an SSL in server mode whose read and
 * write BIOs are memory BIOs. The connection feeds ciphertext, drives the handshake, reads
 * plaintext and sends whatever accumulated in the write BIO. Failure modes: a bad handshake or a
 * corrupt record makes the calls return an error and the connection is closed; nothing here
 * blocks or touches the socket.
 */
#include "api/tls.h"

#include <string.h>

#include <openssl/err.h>

#include "lib/mem.h"

/* ALPN wire format, in server preference order. */
static const unsigned char alpn_protos[] = "\x02h2\x08http/1.1";

static int alpn_select_cb(SSL *ssl,
                          const unsigned char **out,
                          unsigned char *outlen,
                          const unsigned char *in,
                          unsigned int inlen,
                          void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel = NULL;
    unsigned char sel_len = 0;
    if (SSL_select_next_proto(&sel, &sel_len, alpn_protos, sizeof(alpn_protos) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

int api__tls_ctx_new(const char *cert_file,
                     const char *key_file,
                     int min_version,
                     SSL_CTX **out,
                     char errmsg[CF_ERRMSG_SIZE])
{
    int rv = CF_OK;
    SSL_CTX *ctx = NULL;
    *out = NULL;
    if (cert_file == NULL || cert_file[0] == '\0' || key_file == NULL || key_file[0] == '\0') {
        cf_errmsg_printf(errmsg, "tls_cert_file and tls_key_file are required");
        return CF_EINVAL;
    }
    int version;
    if (min_version == 0 || min_version == 12) {
        version = TLS1_2_VERSION;
    } else if (min_version == 13) {
        version = TLS1_3_VERSION;
    } else {
        cf_errmsg_printf(errmsg, "tls_min_version %d: must be 12 (tls12) or 13 (tls13)",
                         min_version);
        return CF_EINVAL;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        rv = cf_err_from_ossl(errmsg, "SSL_CTX_new");
        goto out;
    }
    if (SSL_CTX_set_min_proto_version(ctx, version) != 1) {
        rv = cf_err_from_ossl(errmsg, "set minimum TLS version");
        goto out;
    }
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        char what[CF_ERRMSG_SIZE];
        snprintf(what, sizeof(what), "load certificate %s", cert_file);
        rv = cf_err_from_ossl(errmsg, what);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        char what[CF_ERRMSG_SIZE];
        snprintf(what, sizeof(what), "load key %s", key_file);
        rv = cf_err_from_ossl(errmsg, what);
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        rv = cf_err_from_ossl(errmsg, "key does not match certificate");
        goto out;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return rv;
}

int api__tls_init(struct api_tls *t, SSL_CTX *ctx)
{
    memset(t, 0, sizeof(*t));
    t->ssl = SSL_new(ctx);
    if (t->ssl == NULL) {
        ERR_clear_error();
        return CF_ENOMEM;
    }
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    if (rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(t->ssl);
        t->ssl = NULL;
        ERR_clear_error();
        return CF_ENOMEM;
    }
    /* An empty read BIO means "no data yet", not end of file. */
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_mem_eof_return(wbio, -1);
    SSL_set_bio(t->ssl, rbio, wbio);
    t->rbio = rbio;
    t->wbio = wbio;
    SSL_set_accept_state(t->ssl);
    return CF_OK;
}

void api__tls_close(struct api_tls *t)
{
    if (t == NULL) {
        return;
    }
    SSL_free(t->ssl);
    memset(t, 0, sizeof(*t));
}

int api__tls_feed(struct api_tls *t, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (size_t)1 << 30 ? 1 << 30 : (int)n;
        int w = BIO_write(t->rbio, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return CF_ENOMEM;
        }
        p += w;
        n -= (size_t)w;
    }
    return CF_OK;
}

int api__tls_handshake(struct api_tls *t, bool *done, char errmsg[CF_ERRMSG_SIZE])
{
    *done = t->handshake_done;
    if (t->handshake_done) {
        return CF_OK;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->handshake_done = true;
        *done = true;
        return CF_OK;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return CF_OK;
    }
    return cf_err_from_ossl(errmsg, "TLS handshake");
}

int api__tls_read(struct api_tls *t, uint8_t *buf, size_t cap, size_t *n)
{
    *n = 0;
    ERR_clear_error();
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, buf, cap, &got);
    if (r == 1) {
        *n = got;
        return CF_OK;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return CF_OK;
    }
    ERR_clear_error();
    return CF_EIO;
}

int api__tls_write(struct api_tls *t, const uint8_t *p, size_t n)
{
    if (n == 0) {
        return CF_OK;
    }
    ERR_clear_error();
    size_t written = 0;
    if (SSL_write_ex(t->ssl, p, n, &written) != 1 || written != n) {
        ERR_clear_error();
        return CF_EIO;
    }
    return CF_OK;
}

void api__tls_shutdown(struct api_tls *t)
{
    if (t->ssl != NULL && t->handshake_done) {
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

void api__tls_out(struct api_tls *t, const uint8_t **p, size_t *n)
{
    char *data = NULL;
    long len = BIO_get_mem_data(t->wbio, &data);
    *p = (const uint8_t *)data;
    *n = len > 0 ? (size_t)len : 0;
}

void api__tls_out_reset(struct api_tls *t)
{
    (void)BIO_reset(t->wbio);
}

enum api__alpn api__tls_alpn(const struct api_tls *t)
{
    const unsigned char *p = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0) {
        return API__ALPN_H2;
    }
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0) {
        return API__ALPN_HTTP1;
    }
    return API__ALPN_NONE;
}
