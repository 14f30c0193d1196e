/*
 * Audit broker: the table of enabled audit devices, the hashing rule of core.md 11.2 and the
 * entry formatting of 11.3. The core builds one raw (plaintext) entry per request and per
 * response and hands it to audit_log; every device adds "time", hashes its own copy with its
 * own salt (unless log_raw), applies its prefix and appends one JSON line through its file
 * device (node/audit_file.h). The request may proceed when at least one device accepted the
 * line (core.md 11.4). Loop-thread only; no callback ever fires inside the call that started
 * it (rule A3). Formats: docs/formats/audit.md.
 */
#ifndef CF_NODE_AUDIT_H_
#define CF_NODE_AUDIT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "lib/err.h"

/* Prefix of every hashed value: "hmac-sha256:" followed by 64 lowercase hex digits. */
#define AUDIT_HMAC_PREFIX "hmac-sha256:"

struct audit_broker;

/* Creates an empty broker on loop. NULL on OOM. */
struct audit_broker *audit_broker_new(uv_loop_t *loop);

/* Closes every device (flushing pending writes; pending callbacks get CF_ECANCELED if they
 * cannot complete; enables still in progress complete with CF_ECANCELED) and frees the broker;
 * cb (may be NULL) fires once all handles are closed, never inside this call. audit_log calls
 * made while closing complete with CF_ESHUTDOWN. NULL-safe (cb is then not called). */
void audit_broker_close(struct audit_broker *b, void (*cb)(void *arg), void *arg);

/* Result of audit_device_enable; errmsg is NULL on success and only valid during the call. */
typedef void (*audit_enable_cb)(void *arg, int status, const char *errmsg);

/* Enables a device at path (a missing trailing '/' is added: "file" -> "file/"). type must be
 * "file" (else CF_EUNSUPPORTED, "unknown audit backend type: x"). options is a JSON object of
 * strings as Vault stores them (JSON booleans and integers are accepted and turned into
 * strings); NULL means no options:
 *   file_path (required; "path" is accepted as an alias; "stdout" and "discard" special,
 *     case-insensitive), mode (octal, default "0600"; "0000" = do not chmod), format ("json";
 *     "jsonx" -> CF_EUNSUPPORTED), hmac_accessor ("true"), log_raw ("false"), prefix (""),
 *     elide_list_responses ("false"), skip_test ("false"). Booleans parse like Go's
 *     strconv.ParseBool. Unknown options are kept and listed, as in Vault.
 * salt (salt_len > 0, copied into locked memory) is the device's HMAC key; the caller keeps it
 * in storage. Unless skip_test, a test request entry (path "sys/audit/test") is written as
 * Vault does. cb fires exactly once, never inside this call: CF_OK once the device is live;
 * otherwise the device is not added and the status is CF_EEXIST ("path already in use"; a
 * device being enabled also holds its path), CF_EINVAL / CF_EUNSUPPORTED for bad arguments, or
 * CF_EIO with e.g. "sanity check failed; unable to open \"/x/y\" for writing: No such file or
 * directory". */
void audit_device_enable(struct audit_broker *b,
                         const char *path,
                         const char *type,
                         const char *description,
                         const json_t *options,
                         bool local,
                         const uint8_t *salt,
                         size_t salt_len,
                         audit_enable_cb cb,
                         void *arg);

/* Disables a live device (path with or without the trailing '/'): it leaves the table at once
 * and its queued lines are still written before its file closes. CF_ENOTFOUND when no live
 * device has that path (an enable still in progress counts as absent). */
int audit_device_disable(struct audit_broker *b, const char *path);

/* Number of live devices. */
size_t audit_device_count(const struct audit_broker *b);

/* sys/audit listing, a new object:
 * {"file/":{"type":"file","description":"","options":{...},"local":false,"path":"file/"}}.
 * NULL on OOM. */
json_t *audit_devices_json(const struct audit_broker *b);

/* sys/audit-hash: *out = "hmac-sha256:<hex>" of input under the device's salt (cf_malloc'd).
 * CF_ENOTFOUND (no live device at path), CF_EINVAL (input NULL), CF_ENOMEM, CF_ECRYPTO. */
int audit_hash(const struct audit_broker *b, const char *path, const char *input, char **out);

struct audit_opts
{
    const json_t *non_hmac_request_keys;  /* array of strings or NULL (mount config) */
    const json_t *non_hmac_response_keys; /* array of strings or NULL */
};

/* Result of audit_log. */
typedef void (*audit_log_cb)(void *arg, int status);

/* Logs one entry to every live device. entry (borrowed, not modified) is the raw entry shaped
 * as core.md 11.3 without "time". Each device writes "time" (RFC 3339 UTC with microseconds)
 * first, then the entry's members, hashed with its salt unless log_raw, after its prefix, as
 * one line. cb fires once, never inside this call: CF_OK when at least one device wrote the
 * line into its file (the write completed; fdatasync is periodic) or when no device is
 * enabled; CF_EIO when every device failed; CF_ESHUTDOWN while the broker closes. opts may be
 * NULL. */
void audit_log(struct audit_broker *b,
               const json_t *entry,
               const struct audit_opts *opts,
               audit_log_cb cb,
               void *arg);

/* The hashing rule alone: a new deep copy of entry with the fields of core.md 11.2 replaced by
 * "hmac-sha256:<hex>" under salt. opts may be NULL. NULL on OOM, on an HMAC failure or when
 * entry is not an object. */
json_t *audit_hash_entry(const json_t *entry,
                         const uint8_t *salt,
                         size_t salt_len,
                         bool hmac_accessor,
                         const struct audit_opts *opts);

/* HMACs one string: *out = "hmac-sha256:<hex>" (cf_malloc'd). CF_ENOMEM or CF_ECRYPTO. */
int audit_hash_string(const uint8_t *salt,
                      size_t salt_len,
                      const char *input,
                      size_t len,
                      char **out);

#endif
