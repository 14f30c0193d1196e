/*
 * The file audit device on liburing (see audit_file.h for the contract).
 *
 * Happy path: audit_file_write appends the line to the pending batch and starts a uv_prepare;
 * the prepare callback (just before the loop polls) swaps the pending batch into the writing
 * slot and submits one IORING_OP_WRITE at the file position (O_APPEND). The ring's eventfd
 * wakes a uv_poll_t; its callback reaps completions, fires every waiter of the batch and
 * submits the next batch at once if lines arrived meanwhile. A one-shot timer (unref'd, so an
 * idle device never keeps the loop alive) submits an fdatasync one period after the first
 * write that followed the previous sync.
 *
 * Failure modes: open/chmod errors fail the start with a "sanity check failed" message; a
 * failed write fails its batch with CF_EIO; a short write additionally cuts the file back by the
 * bytes that did land (fstat + ftruncate on the worker pool), so the file only ever holds whole
 * lines. The device stays usable after a write error (a later write may succeed once space is
 * freed). If io_uring_submit itself fails, the SQE stays queued and the prepare callback
 * retries the submit.
 */
#define CF_LOG_MODULE "audit"

#include "node/audit_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mem.h"

#define AFILE_RING_DEPTH 64
#define AFILE_KEEP_BUF (1u << 20) /* batch buffers above this are freed after use */

enum afile_kind {
    AFILE_FILE,
    AFILE_STDOUT,
    AFILE_DISCARD,
};

enum afile_op_kind {
    AFILE_OP_WRITE,
    AFILE_OP_FSYNC,
    AFILE_OP_CLOSE,
};

/* One ring operation; the SQE's user data points here (rule A6). */
struct afile_op
{
    enum afile_op_kind kind;
};

struct afile_waiter
{
    audit_file_write_cb cb;
    void *arg;
};

/* Lines batched into one write, and whom to tell when it completes. */
struct afile_batch
{
    struct cf_buf data;
    struct afile_waiter *w; /* owned */
    size_t nw;
    size_t capw;
};

enum afile_job {
    AFILE_JOB_OPEN,
    AFILE_JOB_TRUNCATE,
};

/* Worker-pool job: the open at start, or the cut-back after a short write. Only these fields
 * (and the immutable path and mode of the device) are touched off the loop thread. */
struct afile_work
{
    uv_work_t req;
    enum afile_job job;
    int fd;           /* open: result; truncate: file to cut */
    int err;          /* errno of the failing step, 0 on success */
    const char *what; /* failing step: "open", "stat", "chmod", "ftruncate" */
    bool regular;     /* open: S_ISREG */
    size_t cut;       /* truncate: bytes to remove from the end */
};

struct audit_file
{
    uv_loop_t *loop; /* borrowed */
    char *path;      /* owned */
    enum afile_kind kind;
    int mode;     /* chmod target or AUDIT_FILE_NO_CHMOD */
    int fd;       /* -1 when not open */
    bool regular; /* fd is a regular file: truncate and fdatasync apply */
    bool open;    /* fd (or discard) usable */
    bool failed;  /* the open failed; writes are refused */

    struct io_uring ring;
    bool ring_ok;
    int efd; /* eventfd registered with the ring, -1 if none */
    uv_poll_t poll;
    bool poll_init;
    uv_prepare_t prepare;
    uv_timer_t timer;
    unsigned handles_open; /* initialised uv handles not yet closed */

    unsigned inflight; /* ring operations not yet reaped */
    bool need_submit;  /* io_uring_submit failed; retry from the prepare callback */
    struct afile_op op_write;
    struct afile_op op_fsync;
    struct afile_op op_close;

    struct afile_batch pending; /* accumulating */
    struct afile_batch writing; /* submitted (or being cut back) */
    bool write_busy;            /* writing holds a batch */
    bool fsync_busy;
    bool dirty; /* written since the last fdatasync was submitted */
    bool close_busy;

    struct afile_work work;
    bool work_busy;
    struct audit_file_stats stats;

    audit_file_start_cb start_cb; /* NULL once fired */
    void *start_arg;
    int start_err; /* start failed before queueing its waiter; fired from prepare */
    char start_errmsg[CF_ERRMSG_SIZE]; /* why the start failed, if it did */
    char errtext[CF_ERRMSG_SIZE];      /* last write failure, for the start message */

    bool closing;
    bool in_close_step;
    bool close_again;
    bool teardown;
    audit_file_close_cb close_cb;
    void *close_arg;
};

static void close_step(struct audit_file *f);
static void flush(struct audit_file *f);
static void prepare_cb(uv_prepare_t *h);
static void ring_poll_cb(uv_poll_t *h, int status, int events);

static const char *errno_text(int err, char *buf, size_t n)
{
    return strerror_r(err, buf, n);
}

static void batch_init(struct afile_batch *b)
{
    cf_buf_init(&b->data);
    b->w = NULL;
    b->nw = 0;
    b->capw = 0;
}

static void batch_close(struct afile_batch *b)
{
    cf_buf_close(&b->data);
    CF_FREE(b->w);
    b->nw = 0;
    b->capw = 0;
}

/* Detaches the waiters of b (caller frees the array), empties its data, and fires every waiter
 * with status. Callbacks may queue new lines or close the device. */
static void batch_fire(struct afile_batch *b, int status)
{
    struct afile_waiter *w = b->w;
    size_t n = b->nw;
    b->w = NULL;
    b->nw = 0;
    b->capw = 0;
    if (b->data.cap > AFILE_KEEP_BUF) {
        cf_buf_close(&b->data);
    } else {
        cf_buf_reset(&b->data);
    }
    for (size_t i = 0; i < n; i++) {
        w[i].cb(w[i].arg, status);
    }
    cf_free(w);
}

static void update_poll(struct audit_file *f)
{
    if (!f->poll_init || f->teardown) {
        return;
    }
    bool active = uv_is_active((uv_handle_t *)&f->poll);
    if (f->inflight > 0 && !active) {
        int rv = uv_poll_start(&f->poll, UV_READABLE, ring_poll_cb);
        if (rv != 0) {
            CF_LOG(CF_LOG_ERROR, "uv_poll_start on the ring eventfd: %s", uv_strerror(rv));
        }
    } else if (f->inflight == 0 && active) {
        uv_poll_stop(&f->poll);
    }
}

static void ring_push(struct audit_file *f)
{
    int rv = io_uring_submit(&f->ring);
    if (rv < 0) {
        /* The SQE stays in the submission queue; try again before the next poll. */
        f->need_submit = true;
        if (!f->teardown) {
            uv_prepare_start(&f->prepare, prepare_cb);
        }
        CF_LOG(CF_LOG_WARN, "io_uring_submit: %s (will retry)", strerror(-rv));
        return;
    }
    f->need_submit = false;
}

/* Takes an SQE, or NULL when the ring is unusable or full (never in practice: at most three
 * operations are in flight on a 64-deep ring). */
static struct io_uring_sqe *get_sqe(struct audit_file *f)
{
    if (!f->ring_ok) {
        return NULL;
    }
    return io_uring_get_sqe(&f->ring);
}

static void sync_timer_cb(uv_timer_t *t);

/* Arms the one-shot fdatasync timer when something was written since the last sync. */
static void schedule_sync(struct audit_file *f)
{
    if (!f->regular || !f->dirty || f->fsync_busy || f->closing ||
        uv_is_active((uv_handle_t *)&f->timer)) {
        return;
    }
    uv_timer_start(&f->timer, sync_timer_cb, AUDIT_FILE_SYNC_MS, 0);
}

static bool submit_fsync(struct audit_file *f)
{
    struct io_uring_sqe *sqe = get_sqe(f);
    if (sqe == NULL) {
        return false;
    }
    io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
    f->stats.syncs++;
    io_uring_sqe_set_data(sqe, &f->op_fsync);
    f->inflight++;
    f->fsync_busy = true;
    f->dirty = false;
    ring_push(f);
    update_poll(f);
    return true;
}

static void sync_timer_cb(uv_timer_t *t)
{
    struct audit_file *f = CF_CONTAINER_OF(t, struct audit_file, timer);
    if (f->closing || f->fsync_busy || !f->dirty || !f->open) {
        return;
    }
    if (!submit_fsync(f)) {
        CF_LOG(CF_LOG_WARN, "audit file %s: no ring slot for fdatasync", f->path);
    }
}

static void truncate_work(uv_work_t *req);
static void truncate_after(uv_work_t *req, int status);

/* The write of f->writing finished with res (bytes or -errno): fires its waiters, or after a
 * short write first cuts the file back (the waiters fire when that is done). The caller then
 * kicks the next batch; lines queued by the callbacks wait for it. */
static void write_done(struct audit_file *f, int res)
{
    size_t len = f->writing.data.len;
    char eb[128];
    if (res >= 0 && (size_t)res == len) {
        f->stats.bytes += len;
        f->dirty = f->dirty || len > 0;
        schedule_sync(f);
        f->write_busy = false;
        batch_fire(&f->writing, CF_OK);
        return;
    }
    f->stats.failed_writes++;
    if (res < 0) {
        cf_errmsg_printf(f->errtext, "write \"%s\": %s", f->path, errno_text(-res, eb, sizeof(eb)));
    } else {
        cf_errmsg_printf(f->errtext, "write \"%s\": short write (%d of %zu bytes)", f->path, res,
                         len);
    }
    CF_LOG(CF_LOG_ERROR, "audit %s; %zu line(s) not logged", f->errtext, f->writing.nw);
    if (res > 0 && f->regular) {
        /* Cut the partial batch off so the file holds only whole lines. */
        f->work.job = AFILE_JOB_TRUNCATE;
        f->work.fd = f->fd;
        f->work.cut = (size_t)res;
        f->work.err = 0;
        f->work.what = NULL;
        int rv = uv_queue_work(f->loop, &f->work.req, truncate_work, truncate_after);
        if (rv == 0) {
            f->stats.truncations++;
            f->work_busy = true;
            return;
        }
        CF_LOG(CF_LOG_ERROR, "audit file %s: cannot queue the cut-back: %s", f->path,
               uv_strerror(rv));
    }
    f->write_busy = false;
    batch_fire(&f->writing, CF_EIO);
}

/* After a ring completion or a worker job: continue with the next batch, or the close. */
static void kick(struct audit_file *f)
{
    if (f->closing) {
        close_step(f);
    } else {
        flush(f);
    }
}

static void truncate_work(uv_work_t *req)
{
    struct afile_work *w = CF_CONTAINER_OF(req, struct afile_work, req);
    struct stat st;
    if (fstat(w->fd, &st) != 0) {
        w->err = errno;
        w->what = "stat";
        return;
    }
    if ((uint64_t)st.st_size < w->cut) {
        w->err = EINVAL;
        w->what = "size";
        return;
    }
    if (ftruncate(w->fd, st.st_size - (off_t)w->cut) != 0) {
        w->err = errno;
        w->what = "ftruncate";
    }
}

static void truncate_after(uv_work_t *req, int status)
{
    struct audit_file *f = CF_CONTAINER_OF(req, struct audit_file, work.req);
    f->work_busy = false;
    if (status != 0 || f->work.err != 0) {
        char eb[128];
        CF_LOG(CF_LOG_ERROR, "audit file %s: cutting a partial batch back failed: %s: %s", f->path,
               f->work.what ? f->work.what : "queue",
               status != 0 ? uv_strerror(status) : errno_text(f->work.err, eb, sizeof(eb)));
    }
    f->write_busy = false;
    batch_fire(&f->writing, CF_EIO);
    kick(f);
}

static void op_done(struct audit_file *f, struct afile_op *op, int res)
{
    char eb[128];
    switch (op->kind) {
        case AFILE_OP_WRITE:
            write_done(f, res);
            kick(f);
            break;
        case AFILE_OP_FSYNC:
            f->fsync_busy = false;
            if (res < 0) {
                CF_LOG(CF_LOG_WARN, "audit file %s: fdatasync: %s", f->path,
                       errno_text(-res, eb, sizeof(eb)));
            }
            if (f->closing) {
                close_step(f);
            } else {
                schedule_sync(f);
            }
            break;
        case AFILE_OP_CLOSE:
            f->close_busy = false;
            if (res < 0) {
                CF_LOG(CF_LOG_WARN, "audit file %s: close: %s", f->path,
                       errno_text(-res, eb, sizeof(eb)));
            }
            f->fd = -1;
            f->open = false;
            close_step(f);
            break;
    }
}

static void ring_poll_cb(uv_poll_t *h, int status, int events)
{
    (void)events;
    struct audit_file *f = CF_CONTAINER_OF(h, struct audit_file, poll);
    if (status < 0) {
        CF_LOG(CF_LOG_WARN, "audit file %s: ring eventfd poll: %s", f->path, uv_strerror(status));
    }
    uint64_t v;
    ssize_t n = read(f->efd, &v, sizeof(v));
    (void)n; /* EAGAIN when already drained: completions are still reaped below */
    struct io_uring_cqe *cqe = NULL;
    while (f->ring_ok && io_uring_peek_cqe(&f->ring, &cqe) == 0) {
        struct afile_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&f->ring, cqe);
        f->inflight--;
        op_done(f, op, res);
    }
    update_poll(f);
}

/* Moves the pending batch into the writing slot and submits it, or completes it at once for
 * discard and for batches without bytes (lines queued by those callbacks go to the next
 * prepare round, so a callback that logs again cannot recurse here). */
static void flush(struct audit_file *f)
{
    if (f->write_busy || f->pending.nw == 0 || !f->open || f->teardown) {
        return;
    }
    struct afile_batch tmp = f->writing;
    f->writing = f->pending;
    f->pending = tmp;
    f->write_busy = true;
    if (f->kind == AFILE_DISCARD || f->writing.data.len == 0) {
        write_done(f, (int)f->writing.data.len);
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(f);
    if (sqe == NULL || f->writing.data.len > UINT32_MAX / 2) {
        write_done(f, -(sqe == NULL ? EBUSY : EFBIG));
        return;
    }
    io_uring_prep_write(sqe, f->fd, f->writing.data.data, (unsigned)f->writing.data.len,
                        (uint64_t)-1);
    io_uring_sqe_set_data(sqe, &f->op_write);
    f->stats.writes++;
    f->inflight++;
    ring_push(f);
    update_poll(f);
}

/* Fires a start that failed before it could queue its waiter (out of memory). */
static void fire_deferred_start(struct audit_file *f)
{
    if (f->start_err == CF_OK || f->start_cb == NULL) {
        return;
    }
    audit_file_start_cb cb = f->start_cb;
    int st = f->start_err;
    f->start_cb = NULL;
    f->start_err = CF_OK;
    cb(f->start_arg, st, f->start_errmsg);
}

static void prepare_cb(uv_prepare_t *h)
{
    struct audit_file *f = CF_CONTAINER_OF(h, struct audit_file, prepare);
    /* Stopped first: anything queued by the callbacks below starts it again. */
    uv_prepare_stop(&f->prepare);
    if (f->need_submit) {
        ring_push(f);
    }
    fire_deferred_start(f);
    if (f->closing) {
        close_step(f);
        return;
    }
    if (f->failed && f->pending.nw > 0) {
        batch_fire(&f->pending, CF_EIO);
        return;
    }
    flush(f);
}

static int queue_line(struct audit_file *f,
                      const char *line,
                      size_t len,
                      audit_file_write_cb cb,
                      void *arg)
{
    struct afile_batch *b = &f->pending;
    if (b->nw == b->capw) {
        size_t cap = b->capw ? b->capw * 2 : 16;
        struct afile_waiter *w = cf_realloc(b->w, cap * sizeof(*w));
        if (w == NULL) {
            return CF_ENOMEM;
        }
        b->w = w;
        b->capw = cap;
    }
    if (len > 0 && f->kind != AFILE_DISCARD) {
        int rv = cf_buf_append(&b->data, line, len);
        if (rv != CF_OK) {
            return rv;
        }
    }
    b->w[b->nw].cb = cb;
    b->w[b->nw].arg = arg;
    b->nw++;
    if (!uv_is_active((uv_handle_t *)&f->prepare)) {
        uv_prepare_start(&f->prepare, prepare_cb);
    }
    return CF_OK;
}

int audit_file_new(uv_loop_t *loop,
                   const char *file_path,
                   int mode,
                   struct audit_file **out,
                   char errmsg[CF_ERRMSG_SIZE])
{
    *out = NULL;
    if (file_path == NULL || file_path[0] == '\0') {
        cf_errmsg_printf(errmsg, "file_path must not be empty");
        return CF_EINVAL;
    }
    if (mode != AUDIT_FILE_NO_CHMOD && (mode < 0 || mode > 07777)) {
        cf_errmsg_printf(errmsg, "invalid file mode %o", (unsigned)mode);
        return CF_EINVAL;
    }
    struct audit_file *f = cf_calloc(1, sizeof(*f));
    if (f == NULL) {
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    f->loop = loop;
    f->fd = -1;
    f->efd = -1;
    f->mode = mode;
    f->op_write.kind = AFILE_OP_WRITE;
    f->op_fsync.kind = AFILE_OP_FSYNC;
    f->op_close.kind = AFILE_OP_CLOSE;
    batch_init(&f->pending);
    batch_init(&f->writing);
    f->path = cf_strdup(file_path);
    if (f->path == NULL) {
        cf_free(f);
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    if (strcmp(file_path, "stdout") == 0) {
        f->kind = AFILE_STDOUT;
    } else if (strcmp(file_path, "discard") == 0) {
        f->kind = AFILE_DISCARD;
    } else {
        f->kind = AFILE_FILE;
    }
    int rv;
    if (f->kind != AFILE_DISCARD) {
        rv = io_uring_queue_init(AFILE_RING_DEPTH, &f->ring, 0);
        if (rv < 0) {
            cf_errmsg_printf(errmsg, "io_uring setup failed: %s", strerror(-rv));
            rv = -rv == ENOMEM ? CF_ENOMEM : CF_EIO;
            goto err_after_alloc;
        }
        f->ring_ok = true;
        f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (f->efd < 0) {
            cf_errmsg_printf(errmsg, "eventfd: %s", strerror(errno));
            rv = CF_EIO;
            goto err_after_ring;
        }
        rv = io_uring_register_eventfd(&f->ring, f->efd);
        if (rv < 0) {
            cf_errmsg_printf(errmsg, "io_uring_register_eventfd: %s", strerror(-rv));
            rv = CF_EIO;
            goto err_after_eventfd;
        }
        rv = uv_poll_init(loop, &f->poll, f->efd);
        if (rv != 0) {
            rv = cf_err_from_uv(errmsg, rv, "uv_poll_init");
            goto err_after_eventfd;
        }
        f->poll_init = true;
        f->handles_open++;
    }
    uv_prepare_init(loop, &f->prepare);
    uv_timer_init(loop, &f->timer);
    uv_unref((uv_handle_t *)&f->timer);
    f->handles_open += 2;
    *out = f;
    return CF_OK;

err_after_eventfd:
    close(f->efd);
err_after_ring:
    io_uring_queue_exit(&f->ring);
err_after_alloc:
    cf_free(f->path);
    cf_free(f);
    return rv;
}

static void start_write_cb(void *arg, int status)
{
    struct audit_file *f = arg;
    audit_file_start_cb cb = f->start_cb;
    f->start_cb = NULL;
    if (status == CF_OK) {
        cb(f->start_arg, CF_OK, NULL);
        return;
    }
    if (f->start_errmsg[0] == '\0') {
        if (status == CF_ECANCELED) {
            cf_errmsg_printf(f->start_errmsg, "audit device closed before its test write");
        } else {
            cf_errmsg_printf(f->start_errmsg, "audit backend failed test message: %s",
                             f->errtext[0] ? f->errtext : cf_strerror(status));
        }
    }
    cb(f->start_arg, status, f->start_errmsg);
}

static void open_work(uv_work_t *req)
{
    struct audit_file *f = CF_CONTAINER_OF(req, struct audit_file, work.req);
    struct afile_work *w = &f->work;
    mode_t cmode = f->mode == AUDIT_FILE_NO_CHMOD ? 0600 : (mode_t)f->mode;
    int fd = open(f->path, O_APPEND | O_CREAT | O_WRONLY | O_CLOEXEC, cmode);
    if (fd < 0) {
        w->err = errno;
        w->what = "open";
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        w->err = errno;
        w->what = "stat";
        close(fd);
        return;
    }
    w->regular = S_ISREG(st.st_mode);
    /* Like Vault, never chmod /dev/null; nor any other device, FIFO or socket. */
    if (f->mode != AUDIT_FILE_NO_CHMOD && w->regular && fchmod(fd, (mode_t)f->mode) != 0) {
        w->err = errno;
        w->what = "chmod";
        close(fd);
        return;
    }
    w->fd = fd;
}

static void open_after(uv_work_t *req, int status)
{
    struct audit_file *f = CF_CONTAINER_OF(req, struct audit_file, work.req);
    struct afile_work *w = &f->work;
    f->work_busy = false;
    if (status != 0 || w->err != 0) {
        int st = CF_EIO;
        if (status == UV_ECANCELED) {
            st = CF_ECANCELED;
            cf_errmsg_printf(f->start_errmsg, "audit device closed before it opened");
        } else if (status != 0) {
            cf_errmsg_printf(f->start_errmsg, "sanity check failed; unable to open \"%s\": %s",
                             f->path, uv_strerror(status));
        } else {
            char eb[128];
            const char *text = errno_text(w->err, eb, sizeof(eb));
            if (strcmp(w->what, "open") == 0) {
                cf_errmsg_printf(f->start_errmsg,
                                 "sanity check failed; unable to open \"%s\" for writing: %s",
                                 f->path, text);
            } else {
                cf_errmsg_printf(f->start_errmsg,
                                 "sanity check failed; unable to open \"%s\" for writing: %s: %s",
                                 f->path, w->what, text);
            }
        }
        f->failed = true;
        batch_fire(&f->pending, st);
        if (f->closing) {
            close_step(f);
        }
        return;
    }
    f->fd = w->fd;
    f->regular = w->regular;
    f->open = true;
    if (f->closing) {
        close_step(f);
    } else {
        flush(f);
    }
}

void audit_file_start(struct audit_file *f,
                      const char *test_line,
                      size_t len,
                      audit_file_start_cb cb,
                      void *arg)
{
    f->start_cb = cb;
    f->start_arg = arg;
    /* The start is a waiter like any line: its batch's write result is the start result. */
    int rv = queue_line(f, test_line, test_line != NULL ? len : 0, start_write_cb, f);
    if (rv != CF_OK) {
        /* Reported from the prepare callback (never inside this call). */
        cf_errmsg_printf(f->start_errmsg, "audit device start: %s", cf_strerror(rv));
        f->start_err = rv;
        f->failed = true;
        uv_prepare_start(&f->prepare, prepare_cb);
        return;
    }
    switch (f->kind) {
        case AFILE_DISCARD:
            f->open = true;
            break;
        case AFILE_STDOUT:
            f->fd = STDOUT_FILENO;
            f->regular = false;
            f->open = true;
            break;
        case AFILE_FILE:
            f->work.job = AFILE_JOB_OPEN;
            f->work.err = 0;
            f->work.what = NULL;
            f->work.fd = -1;
            rv = uv_queue_work(f->loop, &f->work.req, open_work, open_after);
            if (rv != 0) {
                cf_errmsg_printf(f->start_errmsg, "sanity check failed; unable to open \"%s\": %s",
                                 f->path, uv_strerror(rv));
                f->failed = true;
                /* The prepare callback fails the queued start waiter. */
            } else {
                f->work_busy = true;
            }
            break;
    }
}

int audit_file_write(struct audit_file *f,
                     const char *line,
                     size_t len,
                     audit_file_write_cb cb,
                     void *arg)
{
    if (f->closing) {
        return CF_ESHUTDOWN;
    }
    if (f->failed) {
        return CF_EIO;
    }
    return queue_line(f, line, len, cb, arg);
}

size_t audit_file_pending_bytes(const struct audit_file *f)
{
    return f->pending.data.len + (f->write_busy ? f->writing.data.len : 0);
}

void audit_file_get_stats(const struct audit_file *f, struct audit_file_stats *out)
{
    *out = f->stats;
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct audit_file *f = h->data;
    if (--f->handles_open > 0) {
        return;
    }
    if (f->ring_ok) {
        io_uring_queue_exit(&f->ring);
    }
    if (f->efd >= 0) {
        close(f->efd);
    }
    batch_close(&f->pending);
    batch_close(&f->writing);
    cf_free(f->path);
    audit_file_close_cb cb = f->close_cb;
    void *arg = f->close_arg;
    cf_free(f);
    if (cb != NULL) {
        cb(arg);
    }
}

static void close_step_once(struct audit_file *f)
{
    if (f->teardown || f->work_busy) {
        return; /* a worker job's after-callback calls back here */
    }
    fire_deferred_start(f);
    if (f->failed || !f->open) {
        if (f->pending.nw > 0 && !f->write_busy) {
            batch_fire(&f->pending, f->failed ? CF_EIO : CF_ECANCELED);
            f->close_again = true;
            return;
        }
    } else if (f->pending.nw > 0) {
        flush(f);
        if (f->pending.nw > 0 || f->write_busy) {
            return;
        }
    }
    if (f->write_busy || f->fsync_busy || f->close_busy) {
        return;
    }
    uv_timer_stop(&f->timer);
    if (f->open && f->regular && f->dirty) {
        if (submit_fsync(f)) {
            return;
        }
    }
    if (f->kind == AFILE_FILE && f->fd >= 0) {
        struct io_uring_sqe *sqe = get_sqe(f);
        if (sqe != NULL) {
            io_uring_prep_close(sqe, f->fd);
            io_uring_sqe_set_data(sqe, &f->op_close);
            f->inflight++;
            f->close_busy = true;
            ring_push(f);
            update_poll(f);
            return;
        }
        close(f->fd);
        f->fd = -1;
        f->open = false;
    }
    if (f->inflight > 0) {
        return;
    }
    f->teardown = true;
    if (f->poll_init) {
        f->poll.data = f;
        uv_close((uv_handle_t *)&f->poll, handle_closed_cb);
    }
    f->prepare.data = f;
    uv_close((uv_handle_t *)&f->prepare, handle_closed_cb);
    f->timer.data = f;
    uv_close((uv_handle_t *)&f->timer, handle_closed_cb);
}

/* Advances the close as far as it can go now; called again by every completion. Callbacks
 * fired from here may re-enter; they only mark another round. */
static void close_step(struct audit_file *f)
{
    if (f->in_close_step) {
        f->close_again = true;
        return;
    }
    f->in_close_step = true;
    do {
        f->close_again = false;
        close_step_once(f);
    } while (f->close_again && !f->teardown);
    f->in_close_step = false;
}

void audit_file_close(struct audit_file *f, audit_file_close_cb cb, void *arg)
{
    if (f == NULL) {
        return;
    }
    if (f->closing) {
        return;
    }
    f->closing = true;
    f->close_cb = cb;
    f->close_arg = arg;
    if (f->work_busy && f->work.job == AFILE_JOB_OPEN) {
        uv_cancel((uv_req_t *)&f->work.req);
    }
    close_step(f);
}
