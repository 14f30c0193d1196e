/*
 * The replicated store (store.h): libraft with its libuv disk backend, an FSM over the
 * persistent map of fsm.c, and write grouping.
 *
 * Writes: rft_store_apply queues the request; a uv_check handle (runs once per loop turn,
 * after I/O callbacks) encodes every queued batch into one GROUP entry, capped near 1 MiB, and
 * hands it to raft_apply. libraft appends (one fsync for the whole group), commits and calls
 * the FSM, which applies the batches in order and leaves a per-batch result; the apply callback
 * routes each result to its request. libraft passes the FSM's result only to the leader's
 * request, so the FSM parks each result in `parked` and frees any that nobody claimed before
 * the next apply (followers, replay at start).
 *
 * Leadership: libraft 0.15 has no state-change callback, so a 20 ms timer watches raft_state.
 * On becoming leader the store appends a barrier; once it applies, every earlier entry is in
 * the FSM and the store is ready.
 *
 * Entries of an unknown format version make apply fail: libraft then stops applying and the
 * node stays at the last entry it understood, logging which version it needs.
 *
 * Snapshots: `snapshot` freezes the map root on the loop (O(1)); `snapshot_async` serializes
 * it on a worker thread; `snapshot_finalize` releases the frozen root on the loop.
 */
#include "raft/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "lib/crypto.h"
#include "lib/mem.h"
#include "raft/aio_reap.h"
#include "raft/entry.h"
#include "raft/fsm.h"
#include "raft/internal.h"
#include "raft/transport_local.h"
#include "raft/transport_tls.h"

#define CF_LOG_MODULE "raft"
#include "lib/log.h"

#define GROUP_MAX_BYTES (1024 * 1024)
#define BATCH_MAX_BYTES (64u * 1024 * 1024)
#define LEADER_POLL_MS 20

int rft__err_from_raft(int rv)
{
    switch (rv) {
        case 0:
            return CF_OK;
        case RAFT_NOMEM:
            return CF_ENOMEM;
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            return CF_ENOTLEADER;
        case RAFT_SHUTDOWN:
        case RAFT_CANCELED:
            return CF_ECANCELED;
        case RAFT_TOOBIG:
            return CF_ETOOBIG;
        case RAFT_CORRUPT:
        case RAFT_MALFORMED:
            return CF_ECORRUPT;
        default:
            return CF_EIO;
    }
}

/* FSM ------------------------------------------------------------------------------------- */

static void group_result_free(struct group_result *g)
{
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        for (size_t j = 0; j < g->r[i].n_old; j++) {
            cf_free(g->r[i].old[j].data);
        }
        cf_free(g->r[i].old);
    }
    cf_free(g);
}

struct prefix_collect
{
    char **keys;
    size_t n;
    size_t cap;
};

static int collect_visit(void *arg,
                         const char *key,
                         const uint8_t *val,
                         size_t len,
                         uint64_t version)
{
    struct prefix_collect *c = arg;
    (void)val;
    (void)len;
    (void)version;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **k = cf_realloc(c->keys, cap * sizeof(*k));
        if (k == NULL) {
            cf_oom_abort();
        }
        c->keys = k;
        c->cap = cap;
    }
    c->keys[c->n] = cf_strdup(key);
    if (c->keys[c->n] == NULL) {
        cf_oom_abort();
    }
    c->n++;
    return 0;
}

/* RESTORE: everything outside `keep` and `staging` goes; what is under `staging` moves to its
 * own name. The map is rebuilt from a frozen copy of the old one so that the old values stay
 * valid while they are copied. */
static void apply_restore(struct rft_store *s,
                          const char *staging,
                          const char *keep_bytes,
                          size_t keep_len,
                          uint64_t index)
{
    char keep[RFT_KEY_MAX + 1];
    memcpy(keep, keep_bytes, keep_len);
    keep[keep_len] = '\0';
    size_t slen = strlen(staging);
    struct prefix_collect all = {0};
    rft_map_scan(s->map.root, "", NULL, collect_visit, &all);
    struct rft_node *old = rft_map_freeze(&s->map);
    /* First everything that goes, then the moves: a staged key's new name may sort after the
     * staged key and must not be deleted once it was written. */
    for (size_t k = 0; k < all.n; k++) {
        const char *key = all.keys[k];
        if (strncmp(key, keep, keep_len) != 0 && strncmp(key, staging, slen) != 0) {
            rft_map_delete(&s->map, key);
        }
    }
    for (size_t k = 0; k < all.n; k++) {
        const char *key = all.keys[k];
        if (strncmp(key, staging, slen) == 0) {
            rft_map_delete(&s->map, key);
            if (key[slen] != '\0' && strncmp(key + slen, keep, keep_len) != 0) {
                struct rft_map view = {.root = old};
                const uint8_t *v;
                size_t len;
                if (rft_map_get(&view, key, &v, &len, NULL) == CF_OK &&
                    rft_map_put(&s->map, key + slen, v, len, index) != CF_OK) {
                    cf_oom_abort();
                }
            }
        }
        cf_free(all.keys[k]);
    }
    cf_free(all.keys);
    rft_map_release(old);
}

/* Applies one batch atomically: conditions are checked against the state before the batch;
 * if one fails nothing is applied. */
static void apply_batch(struct rft_store *s,
                        const struct rft_batch *b,
                        uint64_t index,
                        struct group_result *res,
                        size_t bi)
{
    res->r[bi].status = CF_OK;
    size_t n_cond = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct rft_op *op = &b->ops[i];
        if (op->code == RFT_OP_DELETE_IF_PRESENT) {
            n_cond++;
            if (rft_map_get(&s->map, op->key, NULL, NULL, NULL) != CF_OK) {
                res->r[bi].status = CF_ECONFLICT;
                res->r[bi].failed_op = i;
                return;
            }
        } else if (op->code == RFT_OP_PUT_IF_VERSION) {
            uint64_t v = 0;
            if (rft_map_get(&s->map, op->key, NULL, NULL, &v) != CF_OK) {
                v = 0;
            }
            if (v != op->version) {
                res->r[bi].status = CF_ECONFLICT;
                res->r[bi].failed_op = i;
                return;
            }
        }
    }
    if (n_cond > 0) {
        res->r[bi].old = cf_calloc(b->n, sizeof(struct rft_value));
        if (res->r[bi].old == NULL) {
            cf_oom_abort();
        }
        res->r[bi].n_old = b->n;
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct rft_op *op = &b->ops[i];
        switch (op->code) {
            case RFT_OP_PUT:
            case RFT_OP_PUT_IF_VERSION:
                if (rft_map_put(&s->map, op->key, op->val, op->len, index) != CF_OK) {
                    cf_oom_abort();
                }
                break;
            case RFT_OP_DELETE:
                rft_map_delete(&s->map, op->key);
                break;
            case RFT_OP_DELETE_IF_PRESENT: {
                const uint8_t *v;
                size_t len;
                if (rft_map_get(&s->map, op->key, &v, &len, NULL) == CF_OK) {
                    res->r[bi].old[i].data = cf_memdup(v, len);
                    if (res->r[bi].old[i].data == NULL && len > 0) {
                        cf_oom_abort();
                    }
                    res->r[bi].old[i].len = len;
                    rft_map_delete(&s->map, op->key);
                }
                break;
            }
            case RFT_OP_DELETE_PREFIX: {
                struct prefix_collect c = {0};
                rft_map_scan(s->map.root, op->key, NULL, collect_visit, &c);
                for (size_t k = 0; k < c.n; k++) {
                    rft_map_delete(&s->map, c.keys[k]);
                    cf_free(c.keys[k]);
                }
                cf_free(c.keys);
                break;
            }
            case RFT_OP_RESTORE:
                apply_restore(s, op->key, (const char *)op->val, op->len, index);
                break;
        }
    }
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct rft_store *s = fsm->data;
    s->log_entries++;
    s->log_bytes += buf->len;
    group_result_free(s->parked); /* nobody claimed the previous result */
    s->parked = NULL;
    *result = NULL;
    uint64_t index = raft_last_applied(&s->raft) + 1;
    struct rft_batch **batches = NULL;
    size_t n = 0;
    uint64_t format = 0;
    int rv = rft_entry_decode(buf->base, buf->len, &batches, &n, &format);
    if (rv == CF_ENOMEM) {
        cf_oom_abort();
    }
    if (rv != CF_OK) {
        if (!s->halted) {
            if (rv == CF_EVERSION) {
                s->halt_err = CF_EVERSION;
                cf_errmsg_printf(s->halt_msg,
                                 "entry at index %llu has format version %llu; this build knows "
                                 "up to %d: upgrade this node",
                                 (unsigned long long)index, (unsigned long long)format,
                                 RFT_ENTRY_FORMAT);
            } else {
                s->halt_err = CF_ECORRUPT;
                cf_errmsg_printf(s->halt_msg, "entry at index %llu is malformed; not applying it",
                                 (unsigned long long)index);
            }
            CF_LOG(CF_LOG_ERROR, "%s", s->halt_msg);
        }
        s->halted = true;
        return RAFT_MALFORMED;
    }
    struct group_result *res = cf_calloc(1, sizeof(*res) + n * sizeof(res->r[0]));
    if (res == NULL) {
        cf_oom_abort();
    }
    res->n = n;
    for (size_t i = 0; i < n; i++) {
        apply_batch(s, batches[i], index, res, i);
        rft_batch_free(batches[i]);
    }
    cf_free(batches);
    s->parked = res;
    s->fsm_index = index;
    s->applied_format = format;
    *result = res;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct rft_store *s = fsm->data;
    if (s->snap_root != NULL) {
        return RAFT_BUSY;
    }
    s->snap_root = rft_map_freeze(&s->map);
    s->snap_count = s->map.count;
    s->snap_log_entries = s->log_entries;
    s->snap_log_bytes = s->log_bytes;
    s->log_entries = 0;
    s->log_bytes = 0;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct rft_store *s = fsm->data;
    struct cf_buf out;
    cf_buf_init(&out);
    int rv = rft_map_encode(s->snap_root, s->snap_count, &out);
    struct raft_buffer *b = cf_malloc(sizeof(*b));
    if (rv != CF_OK || b == NULL) {
        cf_buf_close(&out);
        cf_free(b);
        return RAFT_NOMEM;
    }
    static const uint8_t zeros[8];
    if (cf_buf_append(&out, zeros, (8 - out.len % 8) % 8) != CF_OK) {
        cf_buf_close(&out);
        cf_free(b);
        return RAFT_NOMEM;
    }
    b->len = out.len;
    b->base = cf_buf_steal(&out, NULL);
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

/* Every snapshot writes the whole FSM, so a fixed number of entries between snapshots makes
 * the snapshot work per write grow with the store: with a million stored certificates, most
 * of the CPU went to snapshots. After each snapshot the threshold becomes the number of
 * entries (at the recent average size) that hold as many bytes as the snapshot, so snapshot
 * work stays proportional to what is written, and the log between snapshots holds about one
 * snapshot's worth of bytes (a restart replays at most that). Never below the default. */
unsigned rft__snapshot_threshold_for(uint64_t snap_bytes, uint64_t log_bytes, uint64_t log_entries)
{
    uint64_t want = RFT_SNAPSHOT_THRESHOLD;
    if (log_entries > 0) {
        uint64_t avg = log_bytes / log_entries;
        want = avg > 0 ? snap_bytes / avg : snap_bytes;
    }
    if (want < RFT_SNAPSHOT_THRESHOLD) {
        want = RFT_SNAPSHOT_THRESHOLD;
    }
    return want > RFT_SNAPSHOT_THRESHOLD_MAX ? RFT_SNAPSHOT_THRESHOLD_MAX : (unsigned)want;
}

static void snapshot_retune(struct rft_store *s, uint64_t snap_bytes)
{
    if (s->snap_adaptive) {
        raft_set_snapshot_threshold(
            &s->raft,
            rft__snapshot_threshold_for(snap_bytes, s->snap_log_bytes, s->snap_log_entries));
    }
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct rft_store *s = fsm->data;
    if (*bufs != NULL) {
        uint64_t bytes = 0;
        for (unsigned i = 0; i < *n_bufs; i++) {
            bytes += (*bufs)[i].len;
        }
        snapshot_retune(s, bytes);
        for (unsigned i = 0; i < *n_bufs; i++) {
            cf_free((*bufs)[i].base);
        }
        cf_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    rft_map_release(s->snap_root);
    s->snap_root = NULL;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct rft_store *s = fsm->data;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = rft_map_decode(&s->map, buf->base, buf->len, errmsg);
    if (rv != CF_OK) {
        s->halt_err = rv == CF_EVERSION ? CF_EVERSION : CF_ECORRUPT;
        cf_errmsg_printf(s->halt_msg, "restore snapshot: %s", errmsg);
        CF_LOG(CF_LOG_ERROR, "%s", s->halt_msg);
        return rv == CF_ENOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
    }
    CF_LOG(CF_LOG_INFO, "restored a snapshot of %llu keys", (unsigned long long)s->map.count);
    raft_free(buf->base);
    return 0;
}

/* libraft's uv backend (0.15) lacks io->async_work, which async snapshots need; raft_io is an
 * interface, so the store supplies it: run the work on the libuv pool, the callback on the
 * loop. */
struct async_work
{
    uv_work_t work;
    struct rft_store *store;
    struct raft_io_async_work *req;
    int status;
};

static void async_work_run(uv_work_t *w)
{
    struct async_work *a = CF_CONTAINER_OF(w, struct async_work, work);
    a->status = a->req->work(a->req);
}

static void async_work_done(uv_work_t *w, int status)
{
    struct async_work *a = CF_CONTAINER_OF(w, struct async_work, work);
    struct rft_store *s = a->store;
    struct raft_io_async_work *req = a->req;
    int rv = status == UV_ECANCELED ? RAFT_CANCELED : a->status;
    cf_free(a);
    s->async_pending--;
    req->cb(req, rv);
}

/* Every message reaches libraft through here: AppendEntries carry the leader's commit index,
 * and an InstallSnapshot's last index is committed on the leader that sends it. Messages of
 * an older term than the highest seen are libraft's to refuse and tell nothing. */
static void io_recv(struct raft_io *io, struct raft_message *msg)
{
    struct rft_store *s = CF_CONTAINER_OF(io, struct rft_store, io);
    uint64_t term = 0;
    uint64_t commit = 0;
    if (msg->type == RAFT_IO_APPEND_ENTRIES) {
        term = msg->append_entries.term;
        commit = msg->append_entries.leader_commit;
    } else if (msg->type == RAFT_IO_INSTALL_SNAPSHOT) {
        term = msg->install_snapshot.term;
        commit = msg->install_snapshot.last_index;
    }
    if (term > s->leader_commit_term) {
        s->leader_commit_term = term;
        s->leader_commit = commit;
    } else if (term == s->leader_commit_term && commit > s->leader_commit) {
        s->leader_commit = commit;
    }
    s->raft_recv(io, msg);
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct rft_store *s = CF_CONTAINER_OF(io, struct rft_store, io);
    s->raft_recv = recv;
    return s->uv_start_fn(io, msecs, tick, io_recv);
}

static int io_async_work(struct raft_io *io,
                         struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    struct rft_store *s = CF_CONTAINER_OF(io, struct rft_store, io);
    struct async_work *a = cf_calloc(1, sizeof(*a));
    if (a == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    a->store = s;
    a->req = req;
    int rv = uv_queue_work(s->loop, &a->work, async_work_run, async_work_done);
    if (rv != 0) {
        cf_free(a);
        return RAFT_IOERR;
    }
    s->async_pending++;
    return 0;
}

/* Data dir ---------------------------------------------------------------------------------- */

static bool is_closed_segment(const char *name)
{
    /* "%016llu-%016llu" */
    if (strlen(name) != 33 || name[16] != '-') {
        return false;
    }
    for (int i = 0; i < 33; i++) {
        if (i != 16 && (name[i] < '0' || name[i] > '9')) {
            return false;
        }
    }
    return true;
}

static bool dir_bootstrapped(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        found = is_closed_segment(e->d_name) || strncmp(e->d_name, "snapshot-", 9) == 0;
    }
    closedir(d);
    return found;
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Finds where the batches of an open segment stop fitting in the file. libraft's layout
 * (uv_segment.c, uv_encoding.c; little endian): a u64 format, then batches of u32 header crc,
 * u32 data crc, u64 entry count n, n entry headers of 16 bytes (u64 term, u8 type, 3 unused,
 * u32 data length) and the entries' data. A batch of count 0 is the zeroed, preallocated
 * rest of the file. Returns the offset of the first batch that runs past the end, or -1 when
 * every batch fits. */
static off_t torn_tail(int fd, off_t size)
{
    if (size == 0) {
        return -1;
    }
    if (size < 8) {
        return 0;
    }
    off_t off = 8;
    while (off < size) {
        uint8_t pre[16];
        if (size - off < (off_t)sizeof(pre) || pread(fd, pre, sizeof(pre), off) != sizeof(pre)) {
            return off;
        }
        uint64_t n = get_le(pre + 8, 8);
        if (n == 0) {
            return -1;
        }
        if (n > (uint64_t)(size - off) / 16) {
            return off; /* the entry headers alone run past the end */
        }
        uint64_t data = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint8_t hdr[16];
            if (pread(fd, hdr, sizeof(hdr), off + 16 + (off_t)i * 16) != sizeof(hdr)) {
                return off;
            }
            data += get_le(hdr + 12, 4);
        }
        uint64_t end = (uint64_t)off + 16 + n * 16 + data;
        if (end > (uint64_t)size) {
            return off;
        }
        off = (off_t)end;
    }
    return -1;
}

/* A crash can leave an open segment cut inside its last batch (no preallocation, or a file
 * system that lost the tail). libraft 0.15 truncates a torn batch it can read to the end
 * (checksum mismatch), but one cut short makes it fail with a short read and then crash on its
 * error path. Cut such a batch off here, as libraft would: it was never acknowledged. */
static int repair_open_segments(const char *dir, char errmsg[CF_ERRMSG_SIZE])
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        cf_errmsg_printf(errmsg, "open %s: %s", dir, strerror(errno));
        return CF_EIO;
    }
    int rv = CF_OK;
    struct dirent *e;
    while (rv == CF_OK && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "open-", 5) != 0) {
            continue;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDWR);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            cf_errmsg_printf(errmsg, "open %s: %s", path, strerror(errno));
            rv = CF_EIO;
        } else {
            off_t cut = torn_tail(fd, st.st_size);
            if (cut >= 0) {
                CF_LOG(CF_LOG_WARN, "%s: torn last batch at byte %lld (of %lld): truncating", path,
                       (long long)cut, (long long)st.st_size);
                if (ftruncate(fd, cut) != 0 || fsync(fd) != 0) {
                    cf_errmsg_printf(errmsg, "truncate %s: %s", path, strerror(errno));
                    rv = CF_EIO;
                }
            }
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    closedir(d);
    return rv;
}

/* The node id is pinned to the data dir: a dir written as one node never starts as another. */
static int check_node_id(struct rft_store *s, char errmsg[CF_ERRMSG_SIZE])
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/node-id", s->dir);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char stored[256] = "";
        size_t n = fread(stored, 1, sizeof(stored) - 1, f);
        fclose(f);
        stored[n] = '\0';
        stored[strcspn(stored, "\n")] = '\0';
        if (strcmp(stored, s->node_id) != 0) {
            cf_errmsg_printf(errmsg, "%s holds node id \"%s\", but the config says \"%s\"", path,
                             stored, s->node_id);
            return CF_EINVAL;
        }
        return CF_OK;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        cf_errmsg_printf(errmsg, "create %s: %s", path, strerror(errno));
        return CF_EIO;
    }
    size_t len = strlen(s->node_id);
    bool ok = write(fd, s->node_id, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        cf_errmsg_printf(errmsg, "write %s: %s", path, strerror(errno));
        return CF_EIO;
    }
    return CF_OK;
}

/* Life cycle -------------------------------------------------------------------------------- */

static void flush_queue(struct rft_store *s);
static void close_now(struct rft_store *s);
static void io_close_once(struct raft_io *io, raft_io_close_cb cb);

/* libraft 0.15 must not be closed while (a) an io_async_work it handed us is running: it does
 * not wait for it, and the completion goes back into the closed raft; or (b) more than one
 * disk append is pending: the canceled appends each truncate the log from their index and the
 * second one trips over the first (log.c removeSuffix). Closing waits for both to drain. */
static bool raft_busy(const struct rft_store *s)
{
    return s->async_pending > 0 || s->inflight_groups > 0 || s->barrier_pending ||
           s->change_running || s->transfer_pending;
}

static void check_cb(uv_check_t *h)
{
    struct rft_store *s = CF_CONTAINER_OF(h, struct rft_store, check);
    if (s->close_deferred) {
        if (!raft_busy(s)) {
            close_now(s);
        }
        return;
    }
    if (s->queue_head != NULL) {
        flush_queue(s);
    }
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct rft_store *s = CF_CONTAINER_OF(req, struct rft_store, barrier);
    s->barrier_pending = false;
    if (s->closing) {
        return;
    }
    if (status != 0 || raft_state(&s->raft) != RAFT_LEADER) {
        CF_LOG(CF_LOG_WARN, "leader barrier failed: %s", raft_strerror(status));
        return;
    }
    s->ready = true;
    s->synced = true;
    CF_LOG(CF_LOG_INFO, "leader ready term=%llu applied_index=%llu",
           (unsigned long long)s->raft.current_term,
           (unsigned long long)raft_last_applied(&s->raft));
    if (s->ready_cb != NULL) {
        s->ready_cb(s, s->ready_arg);
    }
}

/* A follower is synced once it knows a leader and has applied every entry that leader said was
 * committed: from then on its FSM is a (possibly stale) copy of the cluster's. The leader's
 * commit index comes from its messages (io_recv): the follower's own commit_index is no measure,
 * since libraft starts it at 1 (or at the snapshot) and caps it at the follower's own log, so a
 * restarted follower whose leader had compacted the entries it lacked looked synced before the
 * snapshot that brought it up to date arrived, and came up with its old state. */
static bool follower_synced(struct rft_store *s)
{
    return raft_state(&s->raft) == RAFT_FOLLOWER && s->raft.follower_state.current_leader.id != 0 &&
           s->leader_commit > 0 && s->leader_commit_term == s->raft.current_term &&
           raft_last_applied(&s->raft) >= s->leader_commit;
}

static void poll_cb(uv_timer_t *t)
{
    struct rft_store *s = CF_CONTAINER_OF(t, struct rft_store, poll);
    if (s->closing) {
        return;
    }
    bool leader = raft_state(&s->raft) == RAFT_LEADER;
    if (leader) {
        rft__contacts_update(s);
    }
    if (leader && !s->ready && !s->barrier_pending) {
        s->barrier_pending = true;
        int rv = raft_barrier(&s->raft, &s->barrier, barrier_cb);
        if (rv != 0) {
            s->barrier_pending = false;
            CF_LOG(CF_LOG_WARN, "leader barrier: %s", raft_strerror(rv));
        }
    } else if (!leader && s->ready) {
        s->ready = false;
        CF_LOG(CF_LOG_WARN, "lost leadership");
        if (s->ready_cb != NULL) {
            s->ready_cb(s, s->ready_arg);
        }
    }
    if (!s->synced && !leader && follower_synced(s)) {
        s->synced = true;
        CF_LOG(CF_LOG_INFO, "follower synced term=%llu applied_index=%llu",
               (unsigned long long)s->raft.current_term,
               (unsigned long long)raft_last_applied(&s->raft));
        if (s->ready_cb != NULL) {
            s->ready_cb(s, s->ready_arg);
        }
    }
}

int rft_store_new(uv_loop_t *loop,
                  const struct rft_store_config *cfg,
                  struct rft_store **out,
                  char errmsg[CF_ERRMSG_SIZE])
{
    rft_aio_reap_start(); /* libraft's segment closes must not stall the loop */
    struct rft_store *s = cf_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CF_ENOMEM;
    }
    s->loop = loop;
    s->entry_format = RFT_ENTRY_FORMAT_MIN;
    s->cfg = *cfg;
    s->dir = cf_strdup(cfg->dir);
    s->node_id = cf_strdup(cfg->node_id);
    s->address = cf_strdup(cfg->address);
    rft_map_init(&s->map);
    int rv = CF_ENOMEM;
    if (s->dir == NULL || s->node_id == NULL || s->address == NULL) {
        goto err;
    }
    if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
        cf_errmsg_printf(errmsg, "create %s: %s", s->dir, strerror(errno));
        rv = CF_EIO;
        goto err;
    }
    rv = check_node_id(s, errmsg);
    if (rv != CF_OK) {
        goto err;
    }
    rv = repair_open_segments(s->dir, errmsg);
    if (rv != CF_OK) {
        goto err;
    }
    s->id = rft_raft_id(s->node_id);
    if (cfg->transport != NULL) {
        s->net = cfg->transport;
    } else {
        rv = rft_transport_local_init(&s->transport, loop);
        if (rv != CF_OK) {
            goto err;
        }
        s->transport_inited = true;
        s->net = &s->transport;
    }
    int r = raft_uv_init(&s->io, loop, s->dir, s->net);
    if (r != 0) {
        cf_errmsg_printf(errmsg, "open raft log in %s: %s", s->dir, s->io.errmsg);
        rv = rft__err_from_raft(r);
        goto err;
    }
    s->io_inited = true;
    /* libraft's auto-recovery moves a corrupt last segment aside and starts without it, which
     * silently drops committed writes: refuse to start instead (torn tails of open segments,
     * which a crash leaves, are still truncated by libraft as before). */
    raft_uv_set_auto_recovery(&s->io, false);
    s->uv_close_fn = s->io.close;
    s->io.close = io_close_once;
    s->uv_start_fn = s->io.start;
    s->io.start = io_start;
    s->io.version = 2;
    s->io.async_work = io_async_work;
    s->fsm.version = 3;
    s->fsm.data = s;
    s->fsm.apply = fsm_apply;
    s->fsm.snapshot = fsm_snapshot;
    s->fsm.snapshot_async = fsm_snapshot_async;
    s->fsm.snapshot_finalize = fsm_snapshot_finalize;
    s->fsm.restore = fsm_restore;
    r = raft_init(&s->raft, &s->io, &s->fsm, s->id, s->address);
    if (r != 0) {
        cf_errmsg_printf(errmsg, "init raft in %s: %s", s->dir, raft_errmsg(&s->raft));
        rv = rft__err_from_raft(r);
        goto err;
    }
    s->raft_inited = true;
    s->raft.data = s;
    raft_set_election_timeout(&s->raft, cfg->election_timeout_ms ? cfg->election_timeout_ms : 1000);
    raft_set_heartbeat_timeout(&s->raft,
                               cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms : 100);
    /* Pre-vote: a node cut off from the others (a partition, a paused process) does not bump
     * its term while alone, so when it comes back it follows the current leader instead of
     * forcing a new election. */
    raft_set_pre_vote(&s->raft, true);
    s->snap_adaptive = cfg->snapshot_threshold == 0;
    raft_set_snapshot_threshold(
        &s->raft, cfg->snapshot_threshold ? cfg->snapshot_threshold : RFT_SNAPSHOT_THRESHOLD);
    raft_set_snapshot_trailing(&s->raft, cfg->snapshot_trailing ? cfg->snapshot_trailing : 10240);
    uv_check_init(loop, &s->check);
    uv_timer_init(loop, &s->poll);
    uv_idle_init(loop, &s->reap);
    s->handles_open = 3;
    *out = s;
    return CF_OK;
err:
    /* Nothing asynchronous has started yet: free synchronously. */
    if (s->io_inited) {
        raft_uv_close(&s->io);
    }
    if (s->transport_inited) {
        rft_transport_local_close(&s->transport);
    }
    cf_free(s->dir);
    cf_free(s->node_id);
    cf_free(s->address);
    cf_free(s);
    return rv;
}

bool rft_store_bootstrapped(const struct rft_store *s)
{
    return dir_bootstrapped(s->dir);
}

int rft_store_bootstrap(struct rft_store *s, char errmsg[CF_ERRMSG_SIZE])
{
    if (rft_store_bootstrapped(s)) {
        cf_errmsg_printf(errmsg, "%s is already bootstrapped", s->dir);
        return CF_EEXIST;
    }
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int r = raft_configuration_add(&conf, s->id, s->address, RAFT_VOTER);
    if (r == 0) {
        r = raft_bootstrap(&s->raft, &conf);
    }
    raft_configuration_close(&conf);
    if (r != 0) {
        cf_errmsg_printf(errmsg, "bootstrap raft in %s: %s", s->dir, raft_errmsg(&s->raft));
        return rft__err_from_raft(r);
    }
    CF_LOG(CF_LOG_INFO, "bootstrapped single-voter cluster id=%llu address=%s",
           (unsigned long long)s->id, s->address);
    return CF_OK;
}

int rft_store_start(struct rft_store *s,
                    rft_store_ready_cb ready_cb,
                    void *arg,
                    char errmsg[CF_ERRMSG_SIZE])
{
    s->ready_cb = ready_cb;
    s->ready_arg = arg;
    int r = raft_start(&s->raft);
    if (r != 0 && s->halt_msg[0] != '\0' && r != RAFT_NOMEM) {
        /* The FSM refused the snapshot, or an entry: a single voter commits and applies its
         * log inside raft_start. */
        cf_errmsg_printf(errmsg, "load raft log from %s: %s", s->dir, s->halt_msg);
        return s->halt_err;
    }
    if (r != 0) {
        cf_errmsg_printf(errmsg, "load raft log from %s: %s", s->dir, raft_errmsg(&s->raft));
        return rft__err_from_raft(r);
    }
    s->started = true;
    uv_check_start(&s->check, check_cb);
    uv_timer_start(&s->poll, poll_cb, 0, LEADER_POLL_MS);
    return CF_OK;
}

void rft_store_set_entry_format(struct rft_store *s, uint64_t format)
{
    if (format < RFT_ENTRY_FORMAT_MIN) {
        format = RFT_ENTRY_FORMAT_MIN;
    }
    if (format > RFT_ENTRY_FORMAT) {
        format = RFT_ENTRY_FORMAT;
    }
    if (format != s->entry_format) {
        CF_LOG(CF_LOG_INFO, "writing log entries in format %llu (was %llu)",
               (unsigned long long)format, (unsigned long long)s->entry_format);
    }
    s->entry_format = format;
}

uint64_t rft_store_entry_format(const struct rft_store *s)
{
    return s->entry_format;
}

uint64_t rft_store_applied_format(const struct rft_store *s)
{
    return s->applied_format;
}

bool rft_store_is_ready(const struct rft_store *s)
{
    return s->ready;
}

bool rft_store_is_synced(const struct rft_store *s)
{
    return s->synced;
}

bool rft_store_started(const struct rft_store *s)
{
    return s->started;
}

uint64_t rft_store_applied_index(const struct rft_store *s)
{
    if (!s->raft_inited) {
        return 0;
    }
    uint64_t a = raft_last_applied((struct raft *)&s->raft);
    return s->fsm_index > a ? s->fsm_index : a;
}

uint64_t rft_store_commit_index(const struct rft_store *s)
{
    return s->raft_inited ? s->raft.commit_index : 0;
}

uint64_t rft_store_last_index(const struct rft_store *s)
{
    return s->raft_inited ? raft_last_index((struct raft *)&s->raft) : 0;
}

uint64_t rft_store_term(const struct rft_store *s)
{
    return s->raft.current_term;
}

size_t rft_store_size(const struct rft_store *s)
{
    return s->map.count;
}

int rft_store_get(const struct rft_store *s,
                  const char *key,
                  const uint8_t **val,
                  size_t *len,
                  uint64_t *version)
{
    return rft_map_get(&s->map, key, val, len, version);
}

struct scan_adapter
{
    rft_store_visit_fn fn;
    void *arg;
};

struct rft_frozen
{
    struct rft_node *root;
    size_t count;
    uint64_t index;
    uint64_t term;
};

struct rft_frozen *rft_store_freeze(struct rft_store *s)
{
    struct rft_frozen *f = cf_calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->root = rft_map_freeze(&s->map);
    f->count = s->map.count;
    f->index = rft_store_applied_index(s);
    f->term = rft_store_term(s);
    return f;
}

uint64_t rft_frozen_index(const struct rft_frozen *f)
{
    return f->index;
}

uint64_t rft_frozen_term(const struct rft_frozen *f)
{
    return f->term;
}

int rft_frozen_encode(const struct rft_frozen *f, struct cf_buf *out)
{
    return rft_map_encode(f->root, f->count, out);
}

void rft_frozen_release(struct rft_frozen *f)
{
    if (f != NULL) {
        rft_map_release(f->root);
        cf_free(f);
    }
}

struct encoded_scan
{
    rft_store_visit_fn fn;
    void *arg;
};

static int encoded_visit(void *arg,
                         const char *key,
                         const uint8_t *val,
                         size_t len,
                         uint64_t version)
{
    struct encoded_scan *e = arg;
    (void)version;
    return e->fn(e->arg, key, val, len);
}

int rft_frozen_scan_encoded(const uint8_t *p,
                            size_t len,
                            rft_store_visit_fn fn,
                            void *arg,
                            char errmsg[CF_ERRMSG_SIZE])
{
    struct rft_map m;
    rft_map_init(&m);
    int rv = rft_map_decode(&m, p, len, errmsg);
    if (rv == CF_OK) {
        struct encoded_scan e = {.fn = fn, .arg = arg};
        rv = rft_map_scan(m.root, "", NULL, encoded_visit, &e);
    }
    rft_map_close(&m);
    return rv;
}

static int scan_visit(void *arg, const char *key, const uint8_t *val, size_t len, uint64_t version)
{
    struct scan_adapter *a = arg;
    (void)version;
    return a->fn(a->arg, key, val, len);
}

int rft_store_scan(const struct rft_store *s,
                   const char *prefix,
                   const char *after,
                   rft_store_visit_fn fn,
                   void *arg)
{
    struct scan_adapter a = {.fn = fn, .arg = arg};
    return rft_map_scan(s->map.root, prefix, after, scan_visit, &a);
}

/* Writes -------------------------------------------------------------------------------------- */

static void complete(struct rft_apply_req *req, int status)
{
    rft_batch_free(req->batch);
    req->batch = NULL;
    req->cb(req, status);
}

static void group_apply_cb(struct raft_apply *apply, int status, void *result)
{
    struct group *g = CF_CONTAINER_OF(apply, struct group, apply);
    struct rft_store *s = g->store;
    struct group_result *res = result;
    if (res != NULL && res == s->parked) {
        s->parked = NULL; /* claimed */
    }
    s->inflight_groups--;
    int st = rft__err_from_raft(status);
    if (st != CF_OK && s->closing) {
        st = CF_ECANCELED; /* raft_close fails pending applies with RAFT_LEADERSHIPLOST */
    }
    if (st == CF_OK && (res == NULL || res->n != g->n)) {
        st = CF_EIO;
    }
    for (size_t i = 0; i < g->n; i++) {
        struct rft_apply_req *req = g->reqs[i];
        req->index = apply->index;
        if (st != CF_OK) {
            complete(req, st);
            continue;
        }
        req->failed_op = res->r[i].failed_op;
        req->old_values = res->r[i].old;
        req->n_old_values = res->r[i].n_old;
        res->r[i].old = NULL;
        res->r[i].n_old = 0;
        complete(req, res->r[i].status);
    }
    group_result_free(res);
    cf_free(g->reqs);
    cf_free(g);
}

/* Submits the first `n` queued requests as one entry. */
static void submit_group(struct rft_store *s, size_t n)
{
    struct group *g = cf_calloc(1, sizeof(*g));
    struct rft_batch **batches = cf_calloc(n, sizeof(*batches));
    struct cf_buf buf;
    cf_buf_init(&buf);
    int rv = CF_ENOMEM;
    if (g != NULL) {
        g->reqs = cf_calloc(n, sizeof(*g->reqs));
    }
    if (g == NULL || g->reqs == NULL || batches == NULL) {
        goto fail;
    }
    g->store = s;
    g->n = n;
    for (size_t i = 0; i < n; i++) {
        struct rft_apply_req *req = s->queue_head;
        s->queue_head = req->next;
        if (s->queue_head == NULL) {
            s->queue_tail = NULL;
        }
        req->next = NULL;
        g->reqs[i] = req;
        batches[i] = req->batch;
        s->queue_bytes -= req->batch->bytes;
    }
    uint64_t format = s->entry_format;
    for (size_t i = 0; i < n; i++) {
        if (batches[i]->min_format > format) {
            format = batches[i]->min_format; /* checked against the gate in rft_store_apply */
        }
    }
    rv = rft_entry_encode(batches, n, format, &buf);
    cf_free(batches);
    batches = NULL;
    if (rv != CF_OK) {
        goto fail_reqs;
    }
    /* rft_entry_encode pads to libraft's 8-byte alignment; the buffer comes from raft_malloc
     * since libraft frees it. */
    struct raft_buffer rb = {.base = raft_malloc(buf.len), .len = buf.len};
    if (rb.base == NULL) {
        rv = CF_ENOMEM;
        goto fail_reqs;
    }
    memcpy(rb.base, buf.data, buf.len);
    cf_buf_close(&buf);
    int r = raft_apply(&s->raft, &g->apply, &rb, 1, group_apply_cb);
    if (r != 0) {
        raft_free(rb.base);
        rv = rft__err_from_raft(r);
        goto fail_reqs;
    }
    s->inflight_groups++;
    return;
fail_reqs:
    cf_buf_close(&buf);
    for (size_t i = 0; i < g->n; i++) {
        complete(g->reqs[i], rv);
    }
    cf_free(g->reqs);
    cf_free(g);
    return;
fail:
    cf_free(batches);
    if (g != NULL) {
        cf_free(g->reqs);
        cf_free(g);
    }
    /* Fail the whole queue: nothing could be grouped. */
    while (s->queue_head != NULL) {
        struct rft_apply_req *req = s->queue_head;
        s->queue_head = req->next;
        s->queue_bytes -= req->batch->bytes;
        complete(req, CF_ENOMEM);
    }
    s->queue_tail = NULL;
}

static void flush_queue(struct rft_store *s)
{
    while (s->queue_head != NULL) {
        if (!s->ready) {
            struct rft_apply_req *req = s->queue_head;
            s->queue_head = req->next;
            if (s->queue_head == NULL) {
                s->queue_tail = NULL;
            }
            s->queue_bytes -= req->batch->bytes;
            complete(req, CF_ENOTLEADER);
            continue;
        }
        size_t n = 0;
        size_t bytes = 0;
        for (struct rft_apply_req *r = s->queue_head; r != NULL; r = r->next) {
            if (n > 0 && bytes + r->batch->bytes > GROUP_MAX_BYTES) {
                break;
            }
            bytes += r->batch->bytes;
            n++;
        }
        submit_group(s, n);
    }
}

int rft_store_apply(struct rft_store *s,
                    struct rft_apply_req *req,
                    struct rft_batch *batch,
                    rft_apply_cb cb)
{
    if (s->closing) {
        rft_batch_free(batch);
        return CF_ECANCELED;
    }
    if (!s->ready) {
        rft_batch_free(batch);
        return CF_ENOTLEADER;
    }
    if (batch->bytes > BATCH_MAX_BYTES) {
        rft_batch_free(batch);
        return CF_ETOOBIG;
    }
    if (batch->min_format > s->entry_format) {
        rft_batch_free(batch);
        return CF_EVERSION; /* a voter would stop at this entry */
    }
    req->cb = cb;
    req->batch = batch;
    req->next = NULL;
    req->index = 0;
    req->failed_op = 0;
    req->old_values = NULL;
    req->n_old_values = 0;
    if (s->queue_tail != NULL) {
        s->queue_tail->next = req;
    } else {
        s->queue_head = req;
    }
    s->queue_tail = req;
    s->queue_bytes += batch->bytes;
    return CF_OK;
}

void rft_apply_req_close(struct rft_apply_req *req)
{
    for (size_t i = 0; i < req->n_old_values; i++) {
        cf_free(req->old_values[i].data);
    }
    cf_free(req->old_values);
    req->old_values = NULL;
    req->n_old_values = 0;
}

/* Close ----------------------------------------------------------------------------------- */

static void store_free(struct rft_store *s)
{
    group_result_free(s->parked);
    rft_map_release(s->snap_root);
    rft_map_close(&s->map);
    cf_free(s->dir);
    cf_free(s->node_id);
    cf_free(s->address);
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    cf_free(s);
    if (cb != NULL) {
        cb(arg);
    }
}

static void maybe_free(struct rft_store *s)
{
    if (s->handles_open == 0 && !s->raft_inited) {
        store_free(s);
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct rft_store *s = h->data;
    s->handles_open--;
    maybe_free(s);
}

/* Counts the loop's handles whose close callback has not run yet. */
static void count_closing(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h)) {
        (*(int *)arg)++;
    }
}

/* raft is closed; libraft's uv backend may still have handles of an open segment's writer
 * closing (their callbacks touch the backend's memory). Frees the backend once the loop has
 * no closing handle left: they are all closed within the loop turns that follow. */
static void reap_cb(uv_idle_t *h)
{
    struct rft_store *s = CF_CONTAINER_OF(h, struct rft_store, reap);
    int closing = 0;
    uv_walk(s->loop, count_closing, &closing);
    if (closing > 0) {
        return;
    }
    uv_idle_stop(&s->reap);
    raft_uv_close(&s->io);
    if (s->transport_inited) {
        rft_transport_local_close(&s->transport);
    }
    s->raft_inited = false;
    s->reap.data = s;
    uv_close((uv_handle_t *)&s->reap, handle_closed_cb);
}

static void raft_closed_cb(struct raft *r)
{
    struct rft_store *s = r->data;
    uv_idle_start(&s->reap, reap_cb);
}

/* libraft 0.15 removes a finalized open segment from its queue before that segment's writer
 * has closed its handles; when the backend's other close callbacks run first, the backend
 * reports itself closed, and the writer's late close callback reports it again, calling
 * raft's close callback a second time (a double free, then a use after free once the store
 * is gone). Passes the first report on and drops any later one. */
static void io_closed_once(struct raft_io *io)
{
    struct rft_store *s = CF_CONTAINER_OF(io, struct rft_store, io);
    if (s->io_close_fired) {
        CF_LOG(CF_LOG_DEBUG, "libraft reported its backend closed twice: second report dropped");
        return;
    }
    s->io_close_fired = true;
    s->raft_io_closed(io);
}

static void io_close_once(struct raft_io *io, raft_io_close_cb cb)
{
    struct rft_store *s = CF_CONTAINER_OF(io, struct rft_store, io);
    s->raft_io_closed = cb;
    s->uv_close_fn(io, io_closed_once);
}

static void close_now(struct rft_store *s)
{
    s->close_deferred = false;
    s->check.data = s;
    s->poll.data = s;
    uv_close((uv_handle_t *)&s->check, handle_closed_cb);
    uv_close((uv_handle_t *)&s->poll, handle_closed_cb);
    /* libraft fails its pending requests before raft_closed_cb. */
    raft_close(&s->raft, raft_closed_cb);
}

void rft_store_close(struct rft_store *s, void (*cb)(void *arg), void *arg)
{
    if (s == NULL) {
        return;
    }
    s->closing = true;
    s->ready = false;
    s->close_cb = cb;
    rft__changes_cancel(s);
    s->close_arg = arg;
    while (s->queue_head != NULL) {
        struct rft_apply_req *req = s->queue_head;
        s->queue_head = req->next;
        complete(req, CF_ECANCELED);
    }
    s->queue_tail = NULL;
    if (raft_busy(s)) {
        s->close_deferred = true; /* check_cb closes once raft is idle */
        return;
    }
    close_now(s);
}
