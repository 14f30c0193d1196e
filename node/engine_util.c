/*
 * Engine services that are not storage: unauthenticated path patterns, the worker pool hop,
 * timers and the writable test (engine.h).
 */
#include <string.h>

#include <uv.h>

#include "lib/mem.h"
#include "node/engine.h"
#include "node/internal.h"

bool node_engine_path_matches(const char *const *patterns, const char *rel_path)
{
    if (patterns == NULL) {
        return false;
    }
    for (size_t i = 0; patterns[i] != NULL; i++) {
        const char *p = patterns[i];
        const char *s = rel_path;
        bool ok = true;
        while (*p != '\0') {
            if (p[0] == '*' && p[1] == '\0') {
                s += strlen(s);
                p++;
                break;
            }
            if (p[0] == '+' && (p[1] == '/' || p[1] == '\0')) {
                size_t seg = strcspn(s, "/");
                if (seg == 0) {
                    ok = false;
                    break;
                }
                s += seg;
                p++;
                continue;
            }
            if (*p != *s) {
                ok = false;
                break;
            }
            p++;
            s++;
        }
        if (ok && *s == '\0') {
            return true;
        }
    }
    return false;
}

/* A job the pool would not take, whose after callback runs from the loop. */
struct view_work
{
    void (*after)(void *arg, int status);
    void *arg;
};

static void work_fail(void *arg, int status)
{
    struct view_work *w = arg;
    void (*after)(void *, int) = w->after;
    void *warg = w->arg;
    cf_free(w);
    after(warg, status);
}

void node_view_work(struct node_view *v,
                    void (*work)(void *arg),
                    void (*after)(void *arg, int status),
                    void *arg)
{
    int rv = v->core->pool != NULL ? cf_pool_submit(v->core->pool, work, after, arg) : CF_ECANCELED;
    if (rv == CF_OK) {
        return;
    }
    /* The after callback still runs, from the loop, as with a job that was cancelled. */
    struct view_work *w = cf_calloc(1, sizeof(*w));
    if (w == NULL) {
        cf_oom_abort();
    }
    w->after = after;
    w->arg = arg;
    node__defer(v->core, work_fail, w, rv);
}

struct node_timer
{
    uv_timer_t timer;
    void (*cb)(void *arg);
    void *arg;
};

static void timer_fire(uv_timer_t *t)
{
    struct node_timer *nt = t->data;
    nt->cb(nt->arg);
}

struct node_timer *node_view_timer(struct node_view *v,
                                   uint64_t timeout_ms,
                                   uint64_t repeat_ms,
                                   void (*cb)(void *arg),
                                   void *arg)
{
    struct node_timer *t = cf_calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->cb = cb;
    t->arg = arg;
    uv_timer_init(v->core->loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, timer_fire, timeout_ms, repeat_ms);
    return t;
}

static void timer_closed(uv_handle_t *h)
{
    cf_free(h->data);
}

void node_timer_stop(struct node_timer *t)
{
    if (t == NULL) {
        return;
    }
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, timer_closed);
}

bool node_view_writable(struct node_view *v)
{
    return !v->core->sealed && rft_store_is_ready(v->core->store);
}
