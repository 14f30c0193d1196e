/*
 * The file of a raft snapshot that leaves the cluster (GET sys/storage/raft/snapshot) and
 * comes back (POST .../snapshot, .../snapshot-force): docs/formats/raft-snapshot.md. A header
 * (magic, file format, metadata length), metadata JSON, the FSM body of rft_frozen_encode, and
 * a SHA-256 of everything before it. This module only frames and checks; the node layer reads
 * the metadata and restores the keys.
 */
#ifndef CF_RAFT_SNAPFILE_H_
#define CF_RAFT_SNAPFILE_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

struct rft_frozen;

#define RFT_SNAPFILE_FORMAT 1
#define RFT_SNAPFILE_META_MAX (64 * 1024)

/* Appends the whole file for a frozen copy and its metadata (meta_len <= RFT_SNAPFILE_META_MAX,
 * else CF_EINVAL). Runs on any thread, as rft_frozen_encode. CF_ENOMEM, CF_ECRYPTO. */
int rft_snapfile_encode(const struct rft_frozen *f,
                        const char *meta,
                        size_t meta_len,
                        struct cf_buf *out);

/* Checks a file and points into it: the metadata bytes and the FSM body (for
 * rft_frozen_scan_encoded). CF_EMALFORMED (not such a file, lengths out of range), CF_EVERSION
 * (a file format this build does not read), CF_ECORRUPT (checksum mismatch), each with errmsg. */
int rft_snapfile_open(const uint8_t *p,
                      size_t len,
                      const uint8_t **meta,
                      size_t *meta_len,
                      const uint8_t **body,
                      size_t *body_len,
                      char errmsg[CF_ERRMSG_SIZE]);

#endif
