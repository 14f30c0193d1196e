/*
 * Snapshot files (snapfile.h): framing and the SHA-256 check.
 */
#include "raft/snapfile.h"

#include <string.h>

#include "lib/bytes.h"
#include "lib/crypto.h"
#include "raft/store.h"

#define MAGIC "COFFSNAP"
#define HEADER 16 /* magic, u32 file format, u32 metadata length */
#define SUM 32

int rft_snapfile_encode(const struct rft_frozen *f,
                        const char *meta,
                        size_t meta_len,
                        struct cf_buf *out)
{
    if (meta_len > RFT_SNAPFILE_META_MAX) {
        return CF_EINVAL;
    }
    size_t start = out->len;
    uint8_t hdr[HEADER];
    memcpy(hdr, MAGIC, 8);
    cf_put_be32(hdr + 8, RFT_SNAPFILE_FORMAT);
    cf_put_be32(hdr + 12, (uint32_t)meta_len);
    int rv = cf_buf_append(out, hdr, sizeof(hdr));
    if (rv == CF_OK) {
        rv = cf_buf_append(out, meta, meta_len);
    }
    if (rv == CF_OK) {
        rv = rft_frozen_encode(f, out);
    }
    uint8_t sum[SUM];
    if (rv == CF_OK) {
        rv = cf_sha256(out->data + start, out->len - start, sum);
    }
    if (rv == CF_OK) {
        rv = cf_buf_append(out, sum, sizeof(sum));
    }
    return rv;
}

int rft_snapfile_open(const uint8_t *p,
                      size_t len,
                      const uint8_t **meta,
                      size_t *meta_len,
                      const uint8_t **body,
                      size_t *body_len,
                      char errmsg[CF_ERRMSG_SIZE])
{
    if (len < HEADER + SUM || memcmp(p, MAGIC, 8) != 0) {
        cf_errmsg_printf(errmsg, "not a Coffer raft snapshot (bad magic)");
        return CF_EMALFORMED;
    }
    uint32_t format = cf_get_be32(p + 8);
    if (format != RFT_SNAPFILE_FORMAT) {
        cf_errmsg_printf(errmsg, "snapshot file format %u; this build reads format %d", format,
                         RFT_SNAPFILE_FORMAT);
        return CF_EVERSION;
    }
    uint8_t sum[SUM];
    if (cf_sha256(p, len - SUM, sum) != CF_OK || !cf_ct_equal(sum, p + len - SUM, SUM)) {
        cf_errmsg_printf(errmsg, "snapshot checksum mismatch: the file is damaged");
        return CF_ECORRUPT;
    }
    uint32_t mlen = cf_get_be32(p + 12);
    if (mlen > RFT_SNAPFILE_META_MAX || mlen > len - HEADER - SUM) {
        cf_errmsg_printf(errmsg, "snapshot metadata length %u is out of range", mlen);
        return CF_EMALFORMED;
    }
    *meta = p + HEADER;
    *meta_len = mlen;
    *body = p + HEADER + mlen;
    *body_len = len - HEADER - mlen - SUM;
    return CF_OK;
}
