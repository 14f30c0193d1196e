/*
 * Unit tests for node/audit_file.c, the io_uring file audit device: open errors and their
 * messages, chmod rules (including "never chmod /dev/null"), batching of lines written in one
 * loop turn into one write, ordering, callbacks never inside the call and exactly once,
 * re-entrant writes from callbacks, periodic and final fdatasync, stdout and discard, close
 * with pending lines, and ENOSPC on a tiny tmpfs (short write cut back to whole lines; skipped
 * when not root or when mount fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "node/audit_file.h"

struct fixture
{
    uv_loop_t loop;
    char dir[64];
    long live;
};

static int setup(void **state)
{
    struct fixture *f = cf_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->live = cf_mem_live();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cf_audit_file_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(cf_mem_live(), f->live);
    cf_free(f);
    return 0;
}

struct start_res
{
    int calls;
    int status;
    char errmsg[CF_ERRMSG_SIZE];
};

static void start_cb(void *arg, int status, const char *errmsg)
{
    struct start_res *r = arg;
    r->calls++;
    r->status = status;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg != NULL ? errmsg : "");
}

struct write_res
{
    int calls;
    int status;
    int order; /* sequence number at completion */
};

static int g_seq;

static void write_cb(void *arg, int status)
{
    struct write_res *r = arg;
    r->calls++;
    r->status = status;
    r->order = g_seq++;
}

static void close_cb(void *arg)
{
    (*(int *)arg)++;
}

static void path_in(const struct fixture *f, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", f->dir, name);
}

/* Reads a whole file into a NUL-terminated cf_malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    struct cf_str
    {
        char *p;
        size_t n;
    } s = {NULL, 0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        s.p = cf_realloc(s.p, s.n + got + 1);
        assert_non_null(s.p);
        memcpy(s.p + s.n, chunk, got);
        s.n += got;
    }
    fclose(fp);
    if (s.p == NULL) {
        s.p = cf_calloc(1, 1);
    }
    s.p[s.n] = '\0';
    if (len != NULL) {
        *len = s.n;
    }
    return s.p;
}

/* Creates and starts a device; asserts the start result. */
static struct audit_file *open_dev(struct fixture *f,
                                   const char *path,
                                   int mode,
                                   const char *test_line,
                                   int want)
{
    struct audit_file *af = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(audit_file_new(&f->loop, path, mode, &af, errmsg), CF_OK);
    struct start_res r = {0};
    audit_file_start(af, test_line, test_line ? strlen(test_line) : 0, start_cb, &r);
    assert_int_equal(r.calls, 0); /* never inside the call */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, want);
    return af;
}

static void close_dev(struct fixture *f, struct audit_file *af)
{
    int closed = 0;
    audit_file_close(af, close_cb, &closed);
    assert_int_equal(closed, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
}

static void test_new_bad_args(void **state)
{
    struct fixture *f = *state;
    struct audit_file *af = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(audit_file_new(&f->loop, "", 0600, &af, errmsg), CF_EINVAL);
    assert_null(af);
    assert_string_equal(errmsg, "file_path must not be empty");
    assert_int_equal(audit_file_new(&f->loop, "/tmp/x", 010000, &af, errmsg), CF_EINVAL);
    assert_null(af);
    assert_int_equal(audit_file_new(&f->loop, "/tmp/x", -5, &af, errmsg), CF_EINVAL);
    assert_null(af);
}

static void test_open_missing_dir(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "no/such/dir/audit.log", path, sizeof(path));
    struct audit_file *af = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(audit_file_new(&f->loop, path, 0600, &af, errmsg), CF_OK);
    struct start_res r = {0};
    audit_file_start(af, "x\n", 2, start_cb, &r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, CF_EIO);
    char want[CF_ERRMSG_SIZE];
    snprintf(want, sizeof(want),
             "sanity check failed; unable to open \"%s\" for writing: No such file or directory",
             path);
    assert_string_equal(r.errmsg, want);
    /* A failed device refuses lines and still closes cleanly. */
    struct write_res w = {0};
    assert_int_equal(audit_file_write(af, "y\n", 2, write_cb, &w), CF_EIO);
    close_dev(f, af);
    assert_int_equal(w.calls, 0);
}

static void test_open_directory(void **state)
{
    struct fixture *f = *state;
    struct audit_file *af = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(audit_file_new(&f->loop, f->dir, 0600, &af, errmsg), CF_OK);
    struct start_res r = {0};
    audit_file_start(af, "x\n", 2, start_cb, &r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.status, CF_EIO);
    assert_non_null(strstr(r.errmsg, "Is a directory"));
    assert_non_null(strstr(r.errmsg, "sanity check failed"));
    close_dev(f, af);
}

static void test_test_line_and_append(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "a.log", path, sizeof(path));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("old line\n", fp);
    fclose(fp);
    struct audit_file *af = open_dev(f, path, 0600, "test line\n", CF_OK);
    struct write_res w = {0};
    assert_int_equal(audit_file_write(af, "entry\n", 6, write_cb, &w), CF_OK);
    assert_int_equal(w.calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.status, CF_OK);
    char *s = slurp(path, NULL);
    assert_string_equal(s, "old line\ntest line\nentry\n");
    cf_free(s);
    close_dev(f, af);
}

static void test_mode(void **state)
{
    struct fixture *f = *state;
    char path[128];
    struct stat st;
    path_in(f, "m.log", path, sizeof(path));
    struct audit_file *af = open_dev(f, path, 0640, "t\n", CF_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    close_dev(f, af);

    /* An existing file is chmodded to the configured mode. */
    assert_int_equal(chmod(path, 0644), 0);
    af = open_dev(f, path, 0600, "t\n", CF_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    close_dev(f, af);

    /* "0000": leave the mode alone. */
    assert_int_equal(chmod(path, 0644), 0);
    af = open_dev(f, path, AUDIT_FILE_NO_CHMOD, "t\n", CF_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    close_dev(f, af);
}

static void test_dev_null_not_chmodded(void **state)
{
    struct fixture *f = *state;
    struct stat before;
    struct stat after;
    assert_int_equal(stat("/dev/null", &before), 0);
    struct audit_file *af = open_dev(f, "/dev/null", 0600, "t\n", CF_OK);
    struct write_res w = {0};
    assert_int_equal(audit_file_write(af, "entry\n", 6, write_cb, &w), CF_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w.status, CF_OK);
    close_dev(f, af);
    assert_int_equal(stat("/dev/null", &after), 0);
    assert_int_equal(after.st_mode, before.st_mode);
}

#define NBATCH 500

static void test_batching(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "b.log", path, sizeof(path));
    struct audit_file *af = open_dev(f, path, 0600, NULL, CF_OK);
    struct audit_file_stats st0;
    audit_file_get_stats(af, &st0);
    assert_int_equal(st0.writes, 0); /* no test line, no write */

    struct write_res *w = cf_calloc(NBATCH, sizeof(*w));
    assert_non_null(w);
    char line[64];
    size_t total = 0;
    g_seq = 0;
    for (int i = 0; i < NBATCH; i++) {
        int n = snprintf(line, sizeof(line), "line %04d\n", i);
        total += (size_t)n;
        assert_int_equal(audit_file_write(af, line, (size_t)n, write_cb, &w[i]), CF_OK);
    }
    assert_int_equal(audit_file_pending_bytes(af), total);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < NBATCH; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].status, CF_OK);
        assert_int_equal(w[i].order, i); /* fired in queue order */
    }
    struct audit_file_stats st;
    audit_file_get_stats(af, &st);
    assert_int_equal(st.writes, 1); /* one loop turn, one write */
    assert_int_equal(st.bytes, total);
    assert_int_equal(audit_file_pending_bytes(af), 0);

    size_t len = 0;
    char *s = slurp(path, &len);
    assert_int_equal(len, total);
    for (int i = 0; i < NBATCH; i++) {
        snprintf(line, sizeof(line), "line %04d\n", i);
        assert_memory_equal(s + (size_t)i * strlen(line), line, strlen(line));
    }
    cf_free(s);
    cf_free(w);
    close_dev(f, af);
}

/* Writes from inside a completion callback land in a later batch. */
struct chain
{
    struct audit_file *af;
    int left;
    int calls;
};

static void chain_cb(void *arg, int status)
{
    struct chain *c = arg;
    assert_int_equal(status, CF_OK);
    c->calls++;
    if (c->left > 0) {
        c->left--;
        assert_int_equal(audit_file_write(c->af, "again\n", 6, chain_cb, c), CF_OK);
    }
}

static void test_reentrant_write(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "r.log", path, sizeof(path));
    struct audit_file *af = open_dev(f, path, 0600, NULL, CF_OK);
    struct chain c = {af, 3, 0};
    assert_int_equal(audit_file_write(af, "first\n", 6, chain_cb, &c), CF_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.calls, 4);
    char *s = slurp(path, NULL);
    assert_string_equal(s, "first\nagain\nagain\nagain\n");
    cf_free(s);
    close_dev(f, af);
}

static void timer_cb(uv_timer_t *t)
{
    (void)t;
}

static void test_fdatasync_periodic_and_final(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "s.log", path, sizeof(path));
    struct audit_file *af = open_dev(f, path, 0600, "t\n", CF_OK);
    struct audit_file_stats st;
    audit_file_get_stats(af, &st);
    assert_int_equal(st.syncs, 0); /* not per line */

    /* Keep the loop alive past one sync period: the unref'd sync timer fires once. */
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, timer_cb, AUDIT_FILE_SYNC_MS + 300, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    audit_file_get_stats(af, &st);
    assert_int_equal(st.syncs, 1);

    /* Nothing written since: no further sync, even after another period. */
    uv_timer_start(&t, timer_cb, AUDIT_FILE_SYNC_MS + 300, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    audit_file_get_stats(af, &st);
    assert_int_equal(st.syncs, 1);

    /* A write then an immediate close: the close runs the final sync. */
    struct write_res w = {0};
    assert_int_equal(audit_file_write(af, "x\n", 2, write_cb, &w), CF_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns once written: the sync timer is unref'd */
    assert_int_equal(w.calls, 1);
    audit_file_get_stats(af, &st);
    assert_int_equal(st.syncs, 1);
    int closed = 0;
    audit_file_close(af, close_cb, &closed);
    /* The close submits the final sync at once; af is only freed by a later close callback. */
    audit_file_get_stats(af, &st);
    assert_int_equal(st.syncs, 2);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    char *s = slurp(path, NULL);
    assert_string_equal(s, "t\nx\n");
    cf_free(s);
}

static void test_close_flushes_pending(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "c.log", path, sizeof(path));
    struct audit_file *af = open_dev(f, path, 0600, NULL, CF_OK);
    struct write_res w[3] = {{0}};
    assert_int_equal(audit_file_write(af, "a\n", 2, write_cb, &w[0]), CF_OK);
    assert_int_equal(audit_file_write(af, "b\n", 2, write_cb, &w[1]), CF_OK);
    int closed = 0;
    audit_file_close(af, close_cb, &closed);
    assert_int_equal(audit_file_write(af, "c\n", 2, write_cb, &w[2]), CF_ESHUTDOWN);
    assert_int_equal(w[0].calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(w[0].calls, 1);
    assert_int_equal(w[0].status, CF_OK);
    assert_int_equal(w[1].status, CF_OK);
    assert_int_equal(w[2].calls, 0);
    char *s = slurp(path, NULL);
    assert_string_equal(s, "a\nb\n");
    cf_free(s);
}

static void test_close_while_opening(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "o.log", path, sizeof(path));
    struct audit_file *af = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(audit_file_new(&f->loop, path, 0600, &af, errmsg), CF_OK);
    struct start_res r = {0};
    audit_file_start(af, "t\n", 2, start_cb, &r);
    struct write_res w = {0};
    assert_int_equal(audit_file_write(af, "a\n", 2, write_cb, &w), CF_OK);
    int closed = 0;
    audit_file_close(af, close_cb, &closed);
    assert_int_equal(r.calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(w.calls, 1);
    /* Either the open was cancelled (nothing written) or it ran and the lines were flushed. */
    if (r.status == CF_OK) {
        assert_int_equal(w.status, CF_OK);
        char *s = slurp(path, NULL);
        assert_string_equal(s, "t\na\n");
        cf_free(s);
    } else {
        assert_int_equal(r.status, CF_ECANCELED);
        assert_int_equal(w.status, CF_ECANCELED);
    }
}

static void test_close_unstarted(void **state)
{
    struct fixture *f = *state;
    struct audit_file *af = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(audit_file_new(&f->loop, "/nonexistent/x", 0600, &af, errmsg), CF_OK);
    close_dev(f, af);
    audit_file_close(NULL, close_cb, NULL); /* NULL-safe, no callback */
}

static void test_discard(void **state)
{
    struct fixture *f = *state;
    struct audit_file *af = open_dev(f, "discard", 0600, "t\n", CF_OK);
    struct write_res w[2] = {{0}};
    assert_int_equal(audit_file_write(af, "a\n", 2, write_cb, &w[0]), CF_OK);
    assert_int_equal(audit_file_write(af, "b\n", 2, write_cb, &w[1]), CF_OK);
    assert_int_equal(w[0].calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w[0].calls, 1);
    assert_int_equal(w[0].status, CF_OK);
    assert_int_equal(w[1].calls, 1);
    struct audit_file_stats st;
    audit_file_get_stats(af, &st);
    assert_int_equal(st.writes, 0);
    close_dev(f, af);
}

static void test_stdout(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "stdout.txt", path, sizeof(path));
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);

    struct audit_file *af = open_dev(f, "stdout", 0600, "probe\n", CF_OK);
    struct write_res w = {0};
    assert_int_equal(audit_file_write(af, "entry\n", 6, write_cb, &w), CF_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w.status, CF_OK);
    close_dev(f, af);

    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    /* fd 1 itself stays open after the device closes. */
    assert_true(fcntl(STDOUT_FILENO, F_GETFD) >= 0);
    char *s = slurp(path, NULL);
    assert_string_equal(s, "probe\nentry\n");
    cf_free(s);
}

/* Fills the filesystem at dir with a filler file until ENOSPC. */
static void fill_fs(const char *dir)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    assert_true(fd >= 0);
    char block[512];
    memset(block, 'z', sizeof(block));
    for (;;) {
        ssize_t n = write(fd, block, sizeof(block));
        if (n < (ssize_t)sizeof(block)) {
            break;
        }
    }
    close(fd);
}

static bool mount_tiny_tmpfs(const char *dir)
{
    if (geteuid() != 0) {
        return false;
    }
    return mount("tmpfs", dir, "tmpfs", 0, "size=64k") == 0;
}

static void test_enospc_short_write(void **state)
{
    struct fixture *f = *state;
    char mnt[128];
    path_in(f, "mnt", mnt, sizeof(mnt));
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (!mount_tiny_tmpfs(mnt)) {
        skip();
    }
    char path[160];
    snprintf(path, sizeof(path), "%s/audit.log", mnt);
    struct audit_file *af = open_dev(f, path, 0600, "test\n", CF_OK);
    fill_fs(mnt);

    /* Larger than the rest of the log file's page: partly written, then ENOSPC. */
    size_t big = 12000;
    char *line = cf_malloc(big);
    assert_non_null(line);
    memset(line, 'a', big - 1);
    line[big - 1] = '\n';
    struct write_res w[2] = {{0}};
    assert_int_equal(audit_file_write(af, line, big, write_cb, &w[0]), CF_OK);
    assert_int_equal(audit_file_write(af, "small\n", 6, write_cb, &w[1]), CF_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w[0].calls, 1);
    assert_int_equal(w[0].status, CF_EIO);
    assert_int_equal(w[1].calls, 1);
    assert_int_equal(w[1].status, CF_EIO); /* same batch, same fate */
    struct audit_file_stats st;
    audit_file_get_stats(af, &st);
    assert_int_equal(st.failed_writes, 1);
    assert_int_equal(st.truncations, 1);
    char *s = slurp(path, NULL);
    assert_string_equal(s, "test\n"); /* cut back: no partial line */
    cf_free(s);

    /* Still full: fails again and is cut back again. */
    struct write_res w2 = {0};
    assert_int_equal(audit_file_write(af, line, big, write_cb, &w2), CF_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w2.status, CF_EIO);
    s = slurp(path, NULL);
    assert_string_equal(s, "test\n");
    cf_free(s);

    /* Space freed: the device works again. */
    char filler[160];
    snprintf(filler, sizeof(filler), "%s/filler", mnt);
    assert_int_equal(unlink(filler), 0);
    struct write_res w3 = {0};
    assert_int_equal(audit_file_write(af, "after\n", 6, write_cb, &w3), CF_OK);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w3.status, CF_OK);
    s = slurp(path, NULL);
    assert_string_equal(s, "test\nafter\n");
    cf_free(s);
    cf_free(line);
    close_dev(f, af);
    assert_int_equal(umount(mnt), 0);
}

static void test_start_fails_on_full_fs(void **state)
{
    struct fixture *f = *state;
    char mnt[128];
    path_in(f, "mnt2", mnt, sizeof(mnt));
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (!mount_tiny_tmpfs(mnt)) {
        skip();
    }
    fill_fs(mnt);
    char path[160];
    snprintf(path, sizeof(path), "%s/audit.log", mnt);
    struct audit_file *af = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(audit_file_new(&f->loop, path, 0600, &af, errmsg), CF_OK);
    struct start_res r = {0};
    audit_file_start(af, "test line\n", 10, start_cb, &r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, CF_EIO);
    assert_non_null(strstr(r.errmsg, "audit backend failed test message"));
    assert_non_null(strstr(r.errmsg, "No space left on device"));
    close_dev(f, af);
    assert_int_equal(umount(mnt), 0);
}

static void test_alloc_failures(void **state)
{
    struct fixture *f = *state;
    char path[128];
    path_in(f, "oom.log", path, sizeof(path));
    for (unsigned long n = 1;; n++) {
        long live = cf_mem_live();
        struct audit_file *af = NULL;
        char errmsg[CF_ERRMSG_SIZE] = "";
        cf_mem_fail_after(n);
        int rv = audit_file_new(&f->loop, path, 0600, &af, errmsg);
        if (rv != CF_OK) {
            cf_mem_fail_after(0);
            assert_int_equal(rv, CF_ENOMEM);
            assert_null(af);
            assert_int_equal(cf_mem_live(), live);
            continue;
        }
        struct start_res r = {0};
        audit_file_start(af, "t\n", 2, start_cb, &r);
        struct write_res w = {0};
        int wrv = audit_file_write(af, "x\n", 2, write_cb, &w);
        cf_mem_fail_after(0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(r.calls, 1);
        assert_int_equal(w.calls, wrv == CF_OK ? 1 : 0);
        close_dev(f, af);
        assert_int_equal(cf_mem_live(), live);
        if (r.status == CF_OK && wrv == CF_OK) {
            break;
        }
        assert_true(n < 50);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_test_line_and_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dev_null_not_chmodded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fdatasync_periodic_and_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_opening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_unstarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc_short_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_fails_on_full_fs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
