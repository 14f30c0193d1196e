/*
 * The file audit device: appends lines to a file (or fd 1 for "stdout", or nowhere for
 * "discard") without ever blocking the loop thread.
 *
 * Each device owns one small io_uring whose completions are signalled on an eventfd watched by
 * a uv_poll_t, so every callback runs on the loop thread. Lines written during one loop turn
 * are batched into a single IORING_OP_WRITE submitted from a uv_prepare callback; at most one
 * write is in flight per device, so appends keep their order and a failed batch can be undone.
 * The open (and chmod) runs on the uv worker pool. Durability: fdatasync (IORING_OP_FSYNC with
 * IORING_FSYNC_DATASYNC) runs at most once per second while something was written, and once at
 * close; a write callback means the bytes reached the page cache, not the disk.
 */
#ifndef CF_NODE_AUDIT_FILE_H_
#define CF_NODE_AUDIT_FILE_H_

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "lib/err.h"

/* Passed as mode to leave the file's permission bits alone (option mode "0000"). */
#define AUDIT_FILE_NO_CHMOD (-1)
/* Fdatasync period while lines are being written. */
#define AUDIT_FILE_SYNC_MS 1000

struct audit_file;

/* Start result: CF_OK when the device is open and its test line (if any) was written;
 * otherwise an error and a message such as
 * "sanity check failed; unable to open \"/x/y\" for writing: No such file or directory". */
typedef void (*audit_file_start_cb)(void *arg, int status, const char *errmsg);
/* Write result: CF_OK when the whole batch holding the line was written, CF_EIO when the write
 * failed or was short (the file is then truncated back, see audit_file_write), CF_ECANCELED
 * when the device closed before the line could be written. */
typedef void (*audit_file_write_cb)(void *arg, int status);
/* Fires once the device's handles are closed and its memory freed. */
typedef void (*audit_file_close_cb)(void *arg);

/* Creates a device for file_path ("stdout" and "discard" are special; compare them
 * case-insensitively before calling if needed). mode is the permission to chmod to after open
 * (also the creation mode) or AUDIT_FILE_NO_CHMOD (then a new file gets 0600). Sets up the
 * io_uring (depth 64), its eventfd and the uv handles, but does no file I/O. On error writes
 * errmsg and returns CF_ENOMEM, CF_EINVAL (empty path) or CF_EIO (io_uring setup failed). */
int audit_file_new(uv_loop_t *loop,
                   const char *file_path,
                   int mode,
                   struct audit_file **out,
                   char errmsg[CF_ERRMSG_SIZE]);

/* Opens the file on the worker pool (O_APPEND|O_CREAT|O_WRONLY|O_CLOEXEC), chmods it unless
 * told not to (and never /dev/null or other non-regular files), then writes test_line (may be
 * NULL; copied) through the ring. cb fires once, never inside this call. Call once per
 * device, before any audit_file_write; lines written while the start is in progress are held
 * and written in the test line's batch or the next one. */
void audit_file_start(struct audit_file *f,
                      const char *test_line,
                      size_t len,
                      audit_file_start_cb cb,
                      void *arg);

/* Queues len bytes (copied; the caller includes the newline) for the next batch. cb fires once,
 * never inside this call, when the batch write completes. A short or failed write fails every
 * line of its batch and, for a regular file, the file is cut back (ftruncate on the worker pool)
 * to its length before that write so no partial line stays. Returns CF_ESHUTDOWN after close
 * began or CF_ENOMEM (cb will then not fire). */
int audit_file_write(struct audit_file *f,
                     const char *line,
                     size_t len,
                     audit_file_write_cb cb,
                     void *arg);

/* Number of bytes queued or in flight (for tests and metrics). */
size_t audit_file_pending_bytes(const struct audit_file *f);

/* Counters since the device was created (for tests and metrics). */
struct audit_file_stats
{
    unsigned long writes;        /* IORING_OP_WRITE submitted (one per batch) */
    unsigned long bytes;         /* bytes written by completed, whole writes */
    unsigned long syncs;         /* fdatasync submitted */
    unsigned long failed_writes; /* failed or short writes */
    unsigned long truncations;   /* cut-backs after a short write */
};
void audit_file_get_stats(const struct audit_file *f, struct audit_file_stats *out);

/* Flushes queued lines, waits for writes in flight, runs a final fdatasync when something was
 * written, closes the file and the handles, frees the device and then calls cb (may be NULL).
 * Lines that cannot be written any more (the open failed or never happened) complete with
 * CF_ECANCELED, as does a start still in progress. NULL-safe (cb is then not called). */
void audit_file_close(struct audit_file *f, audit_file_close_cb cb, void *arg);

#endif
