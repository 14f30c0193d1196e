/*
 * Raft log entries (docs/formats/raft-entries.md): msgpack [format_version, type, payload].
 * The main type is GROUP: a list of batches, each an atomic list of operations. This module
 * builds batches, encodes groups and decodes them back; apply semantics live in store.c.
 */
#ifndef CF_RAFT_ENTRY_H_
#define CF_RAFT_ENTRY_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Entry formats (docs/formats/raft-entries.md). Every format up to RFT_ENTRY_FORMAT is read;
 * a leader writes the highest format every voter knows (rft_store_set_entry_format). Format 2
 * adds the RESTORE op. A build made with COFFER_VERSION_BUMP_FOR_TESTS knows one more format,
 * 3, the same shape as 2 under a new number, so that the upgrade path can be tested. */
#define RFT_ENTRY_FORMAT_MIN 1
#ifdef COFFER_VERSION_BUMP_FOR_TESTS
#define RFT_ENTRY_FORMAT 3 /* highest entry format this build reads and writes */
#else
#define RFT_ENTRY_FORMAT 2 /* highest entry format this build reads and writes */
#endif
#define RFT_KEY_MAX 4096 /* longest key, in bytes, that an entry may carry */

enum rft_entry_type {
    RFT_ENTRY_GROUP = 1,
};

enum rft_op_code {
    RFT_OP_PUT = 1,
    RFT_OP_DELETE = 2,
    RFT_OP_DELETE_PREFIX = 3,
    RFT_OP_DELETE_IF_PRESENT = 4,
    RFT_OP_PUT_IF_VERSION = 5,
    RFT_OP_RESTORE = 6, /* format >= 2: key = staging prefix, val = kept prefix */
};

struct rft_op
{
    enum rft_op_code code;
    char *key;    /* owned */
    uint8_t *val; /* owned; PUT and PUT_IF_VERSION */
    size_t len;
    uint64_t version; /* PUT_IF_VERSION: expected version, 0 = absent */
};

struct rft_batch
{
    struct rft_op *ops; /* owned */
    size_t n;
    size_t cap;
    size_t bytes;        /* approximate encoded size */
    uint64_t min_format; /* lowest entry format that can carry every op (1 or 2) */
};

/* Encodes batches as one GROUP entry of entry format `format` (RFT_ENTRY_FORMAT_MIN ..
 * RFT_ENTRY_FORMAT, and at least every batch's min_format, else CF_EINVAL), appended to out and
 * padded with zero bytes to a multiple of 8 bytes (libraft's disk format needs entry buffers of
 * such lengths). */
int rft_entry_encode(struct rft_batch *const *batches,
                     size_t n,
                     uint64_t format,
                     struct cf_buf *out);

/* Decodes a GROUP entry (optionally followed by 1-7 zero bytes that end on a multiple of 8)
 * into a new array of batches (free each with rft_batch_free and the array with cf_free).
 * CF_EVERSION for an unknown format version or type (*format_out tells
 * the version found), CF_EMALFORMED for anything else that is wrong (including an op that its
 * entry's format does not have). */
int rft_entry_decode(const uint8_t *p,
                     size_t len,
                     struct rft_batch ***out,
                     size_t *n_out,
                     uint64_t *format_out);

#endif
