/* JSON-over-HTTP(S) client on the worker pool (http_client.h). */
#include "node/http_client.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "lib/buf.h"
#include "lib/json.h"
#include "lib/mem.h"

#define MAX_RESPONSE (4u << 20)

struct http_op
{
    uv_work_t work;
    char *url;
    char *body;
    char *ca_pem;
    unsigned timeout_ms;
    node_http_cb cb;
    void *arg;
    /* results, written by the worker */
    int status;
    long code;
    struct cf_buf resp;
    char errmsg[CF_ERRMSG_SIZE];
};

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    struct http_op *op = arg;
    size_t len = size * n;
    if (op->resp.len + len > MAX_RESPONSE || cf_buf_append(&op->resp, p, len) != CF_OK) {
        return 0;
    }
    return len;
}

static void http_run(uv_work_t *w)
{
    struct http_op *op = CF_CONTAINER_OF(w, struct http_op, work);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        op->status = CF_ENOMEM;
        snprintf(op->errmsg, sizeof(op->errmsg), "out of memory");
        return;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, op->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, op->body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, op);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)op->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)op->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (op->ca_pem != NULL) {
        struct curl_blob blob = {
            .data = op->ca_pem, .len = strlen(op->ca_pem), .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &op->code);
        op->status = CF_OK;
    } else {
        op->status = rc == CURLE_OPERATION_TIMEDOUT ? CF_ETIMEDOUT : CF_EIO;
        snprintf(op->errmsg, sizeof(op->errmsg), "%s: %s", op->url,
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void http_done(uv_work_t *w, int status)
{
    struct http_op *op = CF_CONTAINER_OF(w, struct http_op, work);
    json_t *j = NULL;
    if (status != 0 && op->status == CF_OK) {
        op->status = CF_ECANCELED;
        snprintf(op->errmsg, sizeof(op->errmsg), "canceled");
    }
    if (op->status == CF_OK && op->resp.len > 0) {
        j = json_loadb((const char *)op->resp.data, op->resp.len, 0, NULL);
    }
    op->cb(op->arg, op->status, op->code, j, op->errmsg);
    json_decref(j);
    cf_buf_close(&op->resp);
    cf_free(op->url);
    if (op->body != NULL) {
        cf_cleanse(op->body, strlen(op->body));
    }
    cf_free(op->body);
    cf_free(op->ca_pem);
    cf_free(op);
}

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int node__http_post(uv_loop_t *loop,
                    const char *base_url,
                    const char *path,
                    const json_t *body,
                    const char *ca_pem,
                    unsigned timeout_ms,
                    node_http_cb cb,
                    void *arg)
{
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, global_init);
    struct http_op *op = cf_calloc(1, sizeof(*op));
    if (op == NULL) {
        return CF_ENOMEM;
    }
    size_t blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/') {
        blen--;
    }
    size_t ulen = blen + strlen(path) + 1;
    op->url = cf_malloc(ulen);
    op->body = cf_json_dumps(body, NULL);
    op->ca_pem = ca_pem ? cf_strdup(ca_pem) : NULL;
    if (op->url == NULL || op->body == NULL || (ca_pem && !op->ca_pem)) {
        cf_free(op->url);
        cf_free(op->body);
        cf_free(op->ca_pem);
        cf_free(op);
        return CF_ENOMEM;
    }
    snprintf(op->url, ulen, "%.*s%s", (int)blen, base_url, path);
    op->timeout_ms = timeout_ms;
    op->cb = cb;
    op->arg = arg;
    int rv = uv_queue_work(loop, &op->work, http_run, http_done);
    if (rv != 0) {
        cf_free(op->url);
        cf_free(op->body);
        cf_free(op->ca_pem);
        cf_free(op);
        return CF_EIO;
    }
    return CF_OK;
}
