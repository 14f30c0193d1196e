/*
 * Audit broker, hashing and formatting (see audit.h; formats in docs/formats/audit.md).
 *
 * The broker keeps a singly linked list of devices; a device is "live" once its file device
 * started (open plus test write). audit_log formats one line per live device (deep copy of the
 * entry, list elision, HMAC of the sensitive fields, "time" first, prefix) and hands it to the
 * device's batching writer; a request object counts the outstanding writes and fires the
 * caller's callback when the last one completes. Results that are known at once (no devices,
 * bad arguments, every device refused the line) are queued and fired from a uv_idle callback,
 * so no callback runs inside the call that started it. If even the small allocation for such a
 * deferred result fails, a fixed pool in the broker carries it; exhausting that pool aborts
 * (the caller would otherwise wait forever).
 *
 * Close: every device is closed (its queued lines are written first), then the deferred queue
 * drains, then the idle handle closes and the broker is freed.
 */
#define CF_LOG_MODULE "audit"

#include "node/audit.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/strconv.h"
#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "node/audit_file.h"

#define AUDIT_OOM_SLOTS 16
#define AUDIT_HASH_LEN (sizeof(AUDIT_HMAC_PREFIX) - 1 + 64)

/* A completion waiting for the idle handle; fire() runs it and frees its container. */
struct audit_deferred
{
    struct audit_deferred *next;
    void (*fire)(struct audit_broker *b, struct audit_deferred *d);
};

/* Carries a result when even its allocation failed. */
struct audit_oom_slot
{
    struct audit_deferred d;
    audit_log_cb log_cb;
    audit_enable_cb enable_cb;
    void *arg;
    int status;
    bool used;
};

struct audit_device
{
    struct audit_device *next;
    struct audit_broker *b; /* borrowed */
    char *path;             /* owned, ends in '/' */
    char *description;      /* owned */
    json_t *options;        /* owned; string values only */
    bool local;
    struct cf_secret *salt; /* owned */
    bool hmac_accessor;
    bool log_raw;
    bool elide;
    const char *prefix;      /* borrowed from options, "" when absent */
    struct audit_file *file; /* owned; freed by audit_file_close */
    bool live;
    bool closing; /* audit_file_close was called */
    audit_enable_cb enable_cb;
    void *enable_arg;
};

struct audit_broker
{
    uv_loop_t *loop; /* borrowed */
    uv_idle_t idle;
    struct audit_device *devices;
    struct audit_deferred *def_head;
    struct audit_deferred *def_tail;
    unsigned closing_files; /* devices whose file is still closing */
    bool closing;
    bool finishing; /* idle handle is closing */
    void (*close_cb)(void *arg);
    void *close_arg;
    struct audit_oom_slot oom[AUDIT_OOM_SLOTS];
};

/* One audit_log call. */
struct audit_log_req
{
    struct audit_deferred d; /* first: deferred completion */
    audit_log_cb cb;
    void *arg;
    unsigned waiting; /* device writes outstanding */
    unsigned ok;      /* device writes that succeeded */
    int status;       /* result when completed through the deferred queue */
};

/* An enable result known at once. */
struct audit_enable_res
{
    struct audit_deferred d; /* first */
    audit_enable_cb cb;
    void *arg;
    int status;
    char errmsg[CF_ERRMSG_SIZE];
};

static void broker_maybe_finish(struct audit_broker *b);

/* ---- Deferred completions ---- */

static void idle_cb(uv_idle_t *h)
{
    struct audit_broker *b = CF_CONTAINER_OF(h, struct audit_broker, idle);
    struct audit_deferred *d = b->def_head;
    b->def_head = NULL;
    b->def_tail = NULL;
    while (d != NULL) {
        struct audit_deferred *next = d->next;
        d->fire(b, d);
        d = next;
    }
    if (b->def_head == NULL) {
        uv_idle_stop(&b->idle);
    }
    if (b->closing) {
        broker_maybe_finish(b);
    }
}

static void defer(struct audit_broker *b, struct audit_deferred *d)
{
    d->next = NULL;
    if (b->def_tail != NULL) {
        b->def_tail->next = d;
    } else {
        b->def_head = d;
    }
    b->def_tail = d;
    if (!b->finishing) {
        uv_idle_start(&b->idle, idle_cb);
    }
}

static void oom_fire(struct audit_broker *b, struct audit_deferred *d)
{
    (void)b;
    struct audit_oom_slot *s = (struct audit_oom_slot *)d;
    s->used = false;
    if (s->log_cb != NULL) {
        s->log_cb(s->arg, s->status);
    } else {
        s->enable_cb(s->arg, s->status, "out of memory");
    }
}

static void defer_oom(struct audit_broker *b,
                      audit_log_cb log_cb,
                      audit_enable_cb enable_cb,
                      void *arg)
{
    for (size_t i = 0; i < AUDIT_OOM_SLOTS; i++) {
        struct audit_oom_slot *s = &b->oom[i];
        if (!s->used) {
            s->used = true;
            s->d.fire = oom_fire;
            s->log_cb = log_cb;
            s->enable_cb = enable_cb;
            s->arg = arg;
            s->status = CF_ENOMEM;
            defer(b, &s->d);
            return;
        }
    }
    cf_oom_abort();
}

static void enable_res_fire(struct audit_broker *b, struct audit_deferred *d)
{
    (void)b;
    struct audit_enable_res *r = (struct audit_enable_res *)d;
    r->cb(r->arg, r->status, r->status == CF_OK ? NULL : r->errmsg);
    cf_free(r);
}

static void defer_enable(struct audit_broker *b,
                         audit_enable_cb cb,
                         void *arg,
                         int status,
                         const char *errmsg)
{
    struct audit_enable_res *r = cf_calloc(1, sizeof(*r));
    if (r == NULL) {
        defer_oom(b, NULL, cb, arg);
        return;
    }
    r->d.fire = enable_res_fire;
    r->cb = cb;
    r->arg = arg;
    r->status = status;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
    defer(b, &r->d);
}

/* ---- Hashing ---- */

int audit_hash_string(const uint8_t *salt,
                      size_t salt_len,
                      const char *input,
                      size_t len,
                      char **out)
{
    *out = NULL;
    uint8_t mac[32];
    int rv = cf_hmac_sha256(salt, salt_len, input, len, mac);
    if (rv != CF_OK) {
        return rv;
    }
    char *s = cf_malloc(AUDIT_HASH_LEN + 1);
    if (s == NULL) {
        return CF_ENOMEM;
    }
    memcpy(s, AUDIT_HMAC_PREFIX, sizeof(AUDIT_HMAC_PREFIX) - 1);
    cf_hex_encode(mac, sizeof(mac), s + sizeof(AUDIT_HMAC_PREFIX) - 1);
    *out = s;
    return CF_OK;
}

struct hasher
{
    const uint8_t *salt;
    size_t salt_len;
};

/* Replaces the string value v (owned by a copy) with its hash. */
static int hash_value(const struct hasher *h, json_t *v)
{
    char *s = NULL;
    int rv =
        audit_hash_string(h->salt, h->salt_len, json_string_value(v), json_string_length(v), &s);
    if (rv != CF_OK) {
        return rv;
    }
    rv = json_string_setn_nocheck(v, s, AUDIT_HASH_LEN) == 0 ? CF_OK : CF_ENOMEM;
    cf_free(s);
    return rv;
}

/* Hashes obj[key] when it is a non-empty string. */
static int hash_field(const struct hasher *h, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) == 0) {
        return CF_OK;
    }
    return hash_value(h, v);
}

static bool key_ignored(const json_t *ignored, const char *key)
{
    if (key == NULL || !json_is_array(ignored)) {
        return false;
    }
    size_t i;
    const json_t *k;
    json_array_foreach(ignored, i, k)
    {
        if (json_is_string(k) && strcmp(json_string_value(k), key) == 0) {
            return true;
        }
    }
    return false;
}

/* Hashes every string value under v, except those whose innermost enclosing object key is in
 * ignored (strings inside arrays belong to the array's key), as Vault's hashWalker does. Keys
 * are never hashed; numbers, booleans and null stay. */
static int hash_walk(const struct hasher *h, json_t *v, const char *cur_key, const json_t *ignored)
{
    int rv = CF_OK;
    if (json_is_object(v)) {
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val)
        {
            if (json_is_string(val)) {
                if (!key_ignored(ignored, key)) {
                    rv = hash_value(h, val);
                }
            } else {
                rv = hash_walk(h, val, key, ignored);
            }
            if (rv != CF_OK) {
                return rv;
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val)
        {
            if (json_is_string(val)) {
                if (!key_ignored(ignored, cur_key)) {
                    rv = hash_value(h, val);
                }
            } else {
                rv = hash_walk(h, val, cur_key, ignored);
            }
            if (rv != CF_OK) {
                return rv;
            }
        }
    }
    return rv;
}

/* Hashes the token fields of an auth object. */
static int hash_auth(const struct hasher *h, json_t *auth, bool hmac_accessor)
{
    if (!json_is_object(auth)) {
        return CF_OK;
    }
    int rv = hash_field(h, auth, "client_token");
    if (rv == CF_OK && hmac_accessor) {
        rv = hash_field(h, auth, "accessor");
    }
    return rv;
}

/* The rule of core.md 11.2 applied in place to a private copy. */
static int hash_in_place(json_t *e,
                         const uint8_t *salt,
                         size_t salt_len,
                         bool hmac_accessor,
                         const struct audit_opts *opts)
{
    struct hasher h = {salt, salt_len};
    const json_t *req_keys = opts != NULL ? opts->non_hmac_request_keys : NULL;
    const json_t *resp_keys = opts != NULL ? opts->non_hmac_response_keys : NULL;

    int rv = hash_auth(&h, json_object_get(e, "auth"), hmac_accessor);
    if (rv != CF_OK) {
        return rv;
    }
    json_t *req = json_object_get(e, "request");
    if (json_is_object(req)) {
        rv = hash_field(&h, req, "client_token");
        if (rv == CF_OK && hmac_accessor) {
            rv = hash_field(&h, req, "client_token_accessor");
        }
        if (rv == CF_OK) {
            rv = hash_walk(&h, json_object_get(req, "data"), NULL, req_keys);
        }
        if (rv != CF_OK) {
            return rv;
        }
    }
    json_t *resp = json_object_get(e, "response");
    if (json_is_object(resp)) {
        rv = hash_auth(&h, json_object_get(resp, "auth"), hmac_accessor);
        if (rv == CF_OK) {
            rv = hash_walk(&h, json_object_get(resp, "data"), NULL, resp_keys);
        }
        json_t *wrap = json_object_get(resp, "wrap_info");
        if (rv == CF_OK && json_is_object(wrap)) {
            rv = hash_field(&h, wrap, "token");
            if (rv == CF_OK && hmac_accessor) {
                rv = hash_field(&h, wrap, "accessor");
            }
            if (rv == CF_OK && hmac_accessor) {
                rv = hash_field(&h, wrap, "wrapped_accessor");
            }
        }
    }
    return rv;
}

json_t *audit_hash_entry(const json_t *entry,
                         const uint8_t *salt,
                         size_t salt_len,
                         bool hmac_accessor,
                         const struct audit_opts *opts)
{
    if (!json_is_object(entry)) {
        return NULL;
    }
    json_t *copy = json_deep_copy(entry);
    if (copy == NULL) {
        return NULL;
    }
    if (hash_in_place(copy, salt, salt_len, hmac_accessor, opts) != CF_OK) {
        json_decref(copy);
        return NULL;
    }
    return copy;
}

/* elide_list_responses: for list operations, response.data.keys (array) and key_info (object)
 * become their element counts, as Vault does. */
static int elide_list(json_t *e)
{
    const char *op = json_string_value(json_object_get(json_object_get(e, "request"), "operation"));
    json_t *data = json_object_get(json_object_get(e, "response"), "data");
    if (op == NULL || strcmp(op, "list") != 0 || !json_is_object(data)) {
        return CF_OK;
    }
    json_t *keys = json_object_get(data, "keys");
    if (json_is_array(keys) &&
        json_object_set_new(data, "keys", json_integer((json_int_t)json_array_size(keys))) != 0) {
        return CF_ENOMEM;
    }
    json_t *info = json_object_get(data, "key_info");
    if (json_is_object(info) &&
        json_object_set_new(data, "key_info", json_integer((json_int_t)json_object_size(info))) !=
            0) {
        return CF_ENOMEM;
    }
    return CF_OK;
}

/* ---- Formatting ---- */

static void format_time(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

static int dump_cb(const char *p, size_t n, void *data)
{
    return cf_buf_append(data, p, n) == CF_OK ? 0 : -1;
}

/* Builds dev's line for entry into out (prefix, JSON, newline). */
static int format_line(const struct audit_device *dev,
                       const json_t *entry,
                       const struct audit_opts *opts,
                       const char *when,
                       struct cf_buf *out)
{
    if (!json_is_object(entry)) {
        return CF_EINVAL;
    }
    int rv = CF_ENOMEM;
    json_t *line = NULL;
    json_t *body = json_deep_copy(entry);
    if (body == NULL) {
        goto out;
    }
    if (dev->elide) {
        rv = elide_list(body);
        if (rv != CF_OK) {
            goto out;
        }
    }
    if (!dev->log_raw) {
        rv = hash_in_place(body, dev->salt->data, dev->salt->len, dev->hmac_accessor, opts);
        if (rv != CF_OK) {
            goto out;
        }
    }
    rv = CF_ENOMEM;
    line = json_object();
    if (line == NULL || json_object_set_new(line, "time", json_string(when)) != 0) {
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        if (strcmp(key, "time") != 0 && json_object_set(line, key, val) != 0) {
            goto out;
        }
    }
    if (cf_buf_append_str(out, dev->prefix) != CF_OK ||
        json_dump_callback(line, dump_cb, out, JSON_COMPACT) != 0 ||
        cf_buf_append(out, "\n", 1) != CF_OK) {
        goto out;
    }
    rv = CF_OK;
out:
    json_decref(line);
    json_decref(body);
    return rv;
}

/* ---- Logging ---- */

static void log_req_fire(struct audit_broker *b, struct audit_deferred *d)
{
    (void)b;
    struct audit_log_req *r = (struct audit_log_req *)d;
    r->cb(r->arg, r->status);
    cf_free(r);
}

static void dev_write_cb(void *arg, int status)
{
    struct audit_log_req *r = arg;
    if (status == CF_OK) {
        r->ok++;
    }
    if (--r->waiting > 0) {
        return;
    }
    r->cb(r->arg, r->ok > 0 ? CF_OK : CF_EIO);
    cf_free(r);
}

void audit_log(struct audit_broker *b,
               const json_t *entry,
               const struct audit_opts *opts,
               audit_log_cb cb,
               void *arg)
{
    struct audit_log_req *r = cf_calloc(1, sizeof(*r));
    if (r == NULL) {
        defer_oom(b, cb, NULL, arg);
        return;
    }
    r->d.fire = log_req_fire;
    r->cb = cb;
    r->arg = arg;
    if (b->closing) {
        r->status = CF_ESHUTDOWN;
        defer(b, &r->d);
        return;
    }
    char when[32];
    format_time(when);
    struct cf_buf line;
    cf_buf_init(&line);
    unsigned live = 0;
    for (struct audit_device *dev = b->devices; dev != NULL; dev = dev->next) {
        if (!dev->live) {
            continue;
        }
        live++;
        cf_buf_reset(&line);
        int rv = format_line(dev, entry, opts, when, &line);
        if (rv == CF_OK) {
            rv = audit_file_write(dev->file, (const char *)line.data, line.len, dev_write_cb, r);
        }
        if (rv == CF_OK) {
            r->waiting++;
        } else {
            CF_LOG(CF_LOG_ERROR, "audit device %s: entry not logged: %s", dev->path,
                   cf_strerror(rv));
        }
    }
    cf_buf_close(&line);
    if (r->waiting == 0) {
        r->status = live == 0 ? CF_OK : CF_EIO;
        defer(b, &r->d);
    }
}

/* ---- Devices ---- */

static void dev_free(struct audit_device *dev)
{
    if (dev == NULL) {
        return;
    }
    cf_free(dev->path);
    cf_free(dev->description);
    json_decref(dev->options);
    cf_secret_free(dev->salt);
    cf_free(dev);
}

static void dev_file_closed_cb(void *arg)
{
    struct audit_device *dev = arg;
    struct audit_broker *b = dev->b;
    dev_free(dev);
    b->closing_files--;
    if (b->closing) {
        broker_maybe_finish(b);
    }
}

/* Starts closing dev's file; dev is freed when that completes. dev must be unlinked. */
static void dev_close(struct audit_device *dev)
{
    if (dev->closing) {
        return;
    }
    dev->closing = true;
    dev->b->closing_files++;
    audit_file_close(dev->file, dev_file_closed_cb, dev);
}

static void dev_unlink(struct audit_broker *b, struct audit_device *dev)
{
    for (struct audit_device **pp = &b->devices; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == dev) {
            *pp = dev->next;
            dev->next = NULL;
            return;
        }
    }
}

/* Normalises a mount path to end in '/'. NULL on OOM. */
static char *norm_path(const char *path)
{
    size_t n = strlen(path);
    if (n > 0 && path[n - 1] == '/') {
        return cf_strdup(path);
    }
    char *s = cf_malloc(n + 2);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s, path, n);
    s[n] = '/';
    s[n + 1] = '\0';
    return s;
}

/* Finds a device by path (with or without the trailing '/'); live_only skips enables still in
 * progress. */
static struct audit_device *dev_find(const struct audit_broker *b, const char *path, bool live_only)
{
    size_t n = strlen(path);
    if (n > 0 && path[n - 1] == '/') {
        n--;
    }
    for (struct audit_device *dev = b->devices; dev != NULL; dev = dev->next) {
        if ((dev->live || !live_only) && strlen(dev->path) == n + 1 &&
            strncmp(dev->path, path, n) == 0) {
            return dev;
        }
    }
    return NULL;
}

/* Copies options into an object of strings. */
static int options_copy(const json_t *options, json_t **out, char *errmsg)
{
    *out = json_object();
    if (*out == NULL) {
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    if (options == NULL || json_is_null(options)) {
        return CF_OK;
    }
    if (!json_is_object(options)) {
        cf_errmsg_printf(errmsg, "options must be an object of strings");
        return CF_EINVAL;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)options, key, val)
    {
        json_t *s = NULL;
        if (json_is_string(val)) {
            s = json_stringn(json_string_value(val), json_string_length(val));
        } else if (json_is_boolean(val)) {
            s = json_string(json_is_true(val) ? "true" : "false");
        } else if (json_is_integer(val)) {
            char num[32];
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(val));
            s = json_string(num);
        } else {
            cf_errmsg_printf(errmsg, "option \"%s\" must be a string", key);
            return CF_EINVAL;
        }
        if (s == NULL || json_object_set_new(*out, key, s) != 0) {
            cf_errmsg_printf(errmsg, "out of memory");
            return CF_ENOMEM;
        }
    }
    return CF_OK;
}

static const char *opt_str(const json_t *opts, const char *key)
{
    return json_string_value(json_object_get(opts, key));
}

static int opt_bool(const json_t *opts, const char *key, bool dflt, bool *out, char *errmsg)
{
    const char *s = opt_str(opts, key);
    *out = dflt;
    if (s != NULL && !cf_parse_bool(s, out)) {
        cf_errmsg_printf(errmsg, "invalid value for %s: \"%s\" (want true or false)", key, s);
        return CF_EINVAL;
    }
    return CF_OK;
}

/* Parses the options of a file device into dev and *file_path / *mode. */
static int parse_options(struct audit_device *dev,
                         const char **file_path,
                         int *mode,
                         bool *skip_test,
                         char *errmsg)
{
    const json_t *o = dev->options;
    const char *fp = opt_str(o, "file_path");
    if (fp == NULL) {
        fp = opt_str(o, "path");
    }
    if (fp == NULL || fp[0] == '\0') {
        cf_errmsg_printf(errmsg, "file_path is required");
        return CF_EINVAL;
    }
    if (strcasecmp(fp, "stdout") == 0) {
        fp = "stdout";
    } else if (strcasecmp(fp, "discard") == 0) {
        fp = "discard";
    }
    *file_path = fp;

    const char *format = opt_str(o, "format");
    if (format != NULL && strcmp(format, "json") != 0) {
        if (strcmp(format, "jsonx") == 0) {
            cf_errmsg_printf(errmsg, "format \"jsonx\" is not supported; use \"json\"");
            return CF_EUNSUPPORTED;
        }
        cf_errmsg_printf(errmsg, "unknown format type \"%s\"", format);
        return CF_EINVAL;
    }

    *mode = 0600;
    const char *m = opt_str(o, "mode");
    if (m != NULL) {
        unsigned long v = 0;
        bool ok = m[0] != '\0' && strlen(m) <= 12;
        for (const char *p = m; ok && *p != '\0'; p++) {
            if (*p < '0' || *p > '7') {
                ok = false;
            } else {
                v = v * 8 + (unsigned long)(*p - '0');
            }
        }
        if (!ok || v > 07777) {
            cf_errmsg_printf(errmsg, "invalid mode \"%s\": want an octal file mode such as 0600",
                             m);
            return CF_EINVAL;
        }
        *mode = v == 0 ? AUDIT_FILE_NO_CHMOD : (int)v;
    }

    int rv = opt_bool(o, "hmac_accessor", true, &dev->hmac_accessor, errmsg);
    if (rv == CF_OK) {
        rv = opt_bool(o, "log_raw", false, &dev->log_raw, errmsg);
    }
    if (rv == CF_OK) {
        rv = opt_bool(o, "elide_list_responses", false, &dev->elide, errmsg);
    }
    if (rv == CF_OK) {
        rv = opt_bool(o, "skip_test", false, skip_test, errmsg);
    }
    if (rv != CF_OK) {
        return rv;
    }
    dev->prefix = opt_str(o, "prefix");
    if (dev->prefix == NULL) {
        dev->prefix = "";
    }
    return CF_OK;
}

static void dev_start_cb(void *arg, int status, const char *errmsg)
{
    struct audit_device *dev = arg;
    struct audit_broker *b = dev->b;
    audit_enable_cb cb = dev->enable_cb;
    void *cb_arg = dev->enable_arg;
    if (status == CF_OK && !dev->closing) {
        dev->live = true;
        CF_LOG(CF_LOG_INFO, "enabled audit device path=%s", dev->path);
        cb(cb_arg, CF_OK, NULL);
        return;
    }
    char msg[CF_ERRMSG_SIZE];
    if (status == CF_OK) {
        status = CF_ECANCELED;
        cf_errmsg_printf(msg, "audit broker closed before the device was enabled");
    } else {
        cf_errmsg_printf(msg, "%s", errmsg != NULL ? errmsg : cf_strerror(status));
    }
    CF_LOG(CF_LOG_WARN, "audit device %s not enabled: %s", dev->path, msg);
    /* Unlink and start the close before the callback, which may close the broker. */
    dev_unlink(b, dev);
    dev_close(dev);
    cb(cb_arg, status, msg);
}

/* Builds the test line Vault writes on enable: a request entry for sys/audit/test. */
static int test_line(const struct audit_device *dev, struct cf_buf *out)
{
    char id[37];
    int rv = cf_uuid_v4(id);
    if (rv != CF_OK) {
        return rv;
    }
    json_t *probe = json_pack("{s:s, s:{s:s}, s:{s:s, s:s, s:{s:s}, s:s}}", "type", "request",
                              "auth", "token_type", "default", "request", "id", id, "operation",
                              "update", "namespace", "id", "root", "path", "sys/audit/test");
    if (probe == NULL) {
        return CF_ENOMEM;
    }
    char when[32];
    format_time(when);
    rv = format_line(dev, probe, NULL, when, out);
    json_decref(probe);
    return rv;
}

void audit_device_enable(struct audit_broker *b,
                         const char *path,
                         const char *type,
                         const char *description,
                         const json_t *options,
                         bool local,
                         const uint8_t *salt,
                         size_t salt_len,
                         audit_enable_cb cb,
                         void *arg)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv;
    struct audit_device *dev = NULL;
    struct cf_buf line;
    cf_buf_init(&line);

    if (b->closing) {
        rv = CF_ESHUTDOWN;
        cf_errmsg_printf(errmsg, "audit broker is closing");
        goto fail;
    }
    if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0) {
        rv = CF_EINVAL;
        cf_errmsg_printf(errmsg, "audit path must not be empty");
        goto fail;
    }
    if (dev_find(b, path, false) != NULL) {
        rv = CF_EEXIST;
        cf_errmsg_printf(errmsg, "path already in use");
        goto fail;
    }
    if (type == NULL || strcmp(type, "file") != 0) {
        rv = CF_EUNSUPPORTED;
        cf_errmsg_printf(errmsg, "unknown audit backend type: %s", type != NULL ? type : "");
        goto fail;
    }
    if (salt == NULL || salt_len == 0) {
        rv = CF_EINVAL;
        cf_errmsg_printf(errmsg, "audit device salt must not be empty");
        goto fail;
    }
    rv = CF_ENOMEM;
    cf_errmsg_printf(errmsg, "out of memory");
    dev = cf_calloc(1, sizeof(*dev));
    if (dev == NULL) {
        goto fail;
    }
    dev->b = b;
    dev->local = local;
    dev->enable_cb = cb;
    dev->enable_arg = arg;
    dev->path = norm_path(path);
    dev->description = cf_strdup(description != NULL ? description : "");
    dev->salt = cf_secret_from(salt, salt_len);
    if (dev->path == NULL || dev->description == NULL || dev->salt == NULL) {
        goto fail;
    }
    rv = options_copy(options, &dev->options, errmsg);
    if (rv != CF_OK) {
        goto fail;
    }
    const char *file_path = NULL;
    int mode = 0;
    bool skip_test = false;
    rv = parse_options(dev, &file_path, &mode, &skip_test, errmsg);
    if (rv != CF_OK) {
        goto fail;
    }
    if (!skip_test) {
        rv = test_line(dev, &line);
        if (rv != CF_OK) {
            cf_errmsg_printf(errmsg, "audit test message: %s", cf_strerror(rv));
            goto fail;
        }
    }
    rv = audit_file_new(b->loop, file_path, mode, &dev->file, errmsg);
    if (rv != CF_OK) {
        goto fail;
    }
    dev->next = b->devices;
    b->devices = dev;
    audit_file_start(dev->file, skip_test ? NULL : (const char *)line.data, line.len, dev_start_cb,
                     dev);
    cf_buf_close(&line);
    return;

fail:
    cf_buf_close(&line);
    dev_free(dev);
    defer_enable(b, cb, arg, rv, errmsg);
}

int audit_device_disable(struct audit_broker *b, const char *path)
{
    if (path == NULL) {
        return CF_ENOTFOUND;
    }
    struct audit_device *dev = dev_find(b, path, true);
    if (dev == NULL) {
        return CF_ENOTFOUND;
    }
    dev_unlink(b, dev);
    CF_LOG(CF_LOG_INFO, "disabled audit device path=%s", dev->path);
    dev_close(dev);
    return CF_OK;
}

size_t audit_device_count(const struct audit_broker *b)
{
    size_t n = 0;
    for (const struct audit_device *dev = b->devices; dev != NULL; dev = dev->next) {
        n += dev->live ? 1 : 0;
    }
    return n;
}

json_t *audit_devices_json(const struct audit_broker *b)
{
    json_t *all = json_object();
    if (all == NULL) {
        return NULL;
    }
    for (const struct audit_device *dev = b->devices; dev != NULL; dev = dev->next) {
        if (!dev->live) {
            continue;
        }
        json_t *one =
            json_pack("{s:s, s:s, s:O, s:b, s:s}", "type", "file", "description", dev->description,
                      "options", dev->options, "local", dev->local, "path", dev->path);
        if (one == NULL || json_object_set_new(all, dev->path, one) != 0) {
            json_decref(all);
            return NULL;
        }
    }
    return all;
}

int audit_hash(const struct audit_broker *b, const char *path, const char *input, char **out)
{
    *out = NULL;
    if (path == NULL) {
        return CF_ENOTFOUND;
    }
    const struct audit_device *dev = dev_find(b, path, true);
    if (dev == NULL) {
        return CF_ENOTFOUND;
    }
    if (input == NULL) {
        return CF_EINVAL;
    }
    return audit_hash_string(dev->salt->data, dev->salt->len, input, strlen(input), out);
}

/* ---- Broker ---- */

struct audit_broker *audit_broker_new(uv_loop_t *loop)
{
    struct audit_broker *b = cf_calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->loop = loop;
    uv_idle_init(loop, &b->idle);
    return b;
}

static void idle_closed_cb(uv_handle_t *h)
{
    struct audit_broker *b = CF_CONTAINER_OF(h, struct audit_broker, idle);
    /* Results queued after the idle handle began closing. */
    while (b->def_head != NULL) {
        struct audit_deferred *d = b->def_head;
        b->def_head = d->next;
        if (b->def_head == NULL) {
            b->def_tail = NULL;
        }
        d->fire(b, d);
    }
    void (*cb)(void *arg) = b->close_cb;
    void *arg = b->close_arg;
    cf_free(b);
    if (cb != NULL) {
        cb(arg);
    }
}

static void broker_maybe_finish(struct audit_broker *b)
{
    if (b->finishing || b->closing_files > 0) {
        return;
    }
    if (b->def_head != NULL) {
        uv_idle_start(&b->idle, idle_cb); /* idle_cb calls back here once drained */
        return;
    }
    b->finishing = true;
    uv_close((uv_handle_t *)&b->idle, idle_closed_cb);
}

void audit_broker_close(struct audit_broker *b, void (*cb)(void *arg), void *arg)
{
    if (b == NULL || b->closing) {
        return;
    }
    b->closing = true;
    b->close_cb = cb;
    b->close_arg = arg;
    while (b->devices != NULL) {
        struct audit_device *dev = b->devices;
        b->devices = dev->next;
        dev->next = NULL;
        dev_close(dev);
    }
    broker_maybe_finish(b);
}
