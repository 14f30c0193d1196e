/*
 * Cross-file privates of raft/: the store struct that store.c (log, FSM glue, writes) and
 * membership.c (configuration changes, server list) share. Nothing outside raft/ includes it.
 */
#ifndef CF_RAFT_INTERNAL_H_
#define CF_RAFT_INTERNAL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "lib/err.h"
#include "raft/fsm.h"
#include "raft/store.h"

struct rft_change_op;

#define RFT__MAX_CONTACTS 16

struct group_result
{
    size_t n;
    struct
    {
        int status;
        size_t failed_op;
        struct rft_value *old;
        size_t n_old;
    } r[];
};

struct group
{
    struct raft_apply apply;
    struct rft_store *store;
    struct rft_apply_req **reqs;
    size_t n;
};

struct rft_store
{
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport; /* the no-network one, when cfg.transport is NULL */
    struct raft_uv_transport *net;      /* the transport libraft uses */
    struct raft_fsm fsm;
    struct rft_map map;
    char *dir;
    char *node_id;
    char *address;
    raft_id id;
    bool raft_inited;
    bool io_inited;
    bool transport_inited;
    bool started;
    bool ready;
    uint64_t fsm_index; /* index of the entry the FSM applied last (libraft counts it after the
                           apply callbacks have run) */
    bool synced;        /* a follower that has applied everything its leader said was committed */
    bool barrier_pending;
    bool closing;
    uint64_t entry_format;   /* format new entries are written in (rft_store_set_entry_format) */
    uint64_t applied_format; /* format of the last command entry the FSM applied (0 = none) */
    bool halted;             /* an entry could not be applied */
    int halt_err;            /* CF_EVERSION or CF_ECORRUPT, with halt_msg */
    char halt_msg[CF_ERRMSG_SIZE];
    struct rft_store_config cfg;

    rft_store_ready_cb ready_cb;
    void *ready_arg;

    /* queued, not yet submitted */
    struct rft_apply_req *queue_head;
    struct rft_apply_req *queue_tail;
    size_t queue_bytes;
    size_t inflight_groups;

    /* membership.c: configuration changes run one at a time, in order */
    struct rft_change_op *changes;
    struct rft_change_op *changes_tail;
    bool change_running;
    struct raft_change change_req;
    struct raft_transfer transfer_req;
    bool transfer_pending;
    rft_change_cb transfer_cb;
    void *transfer_arg;

    struct
    {
        raft_id id;
        uint64_t last_ms; /* loop time it was last seen in contact */
    } contacts[RFT__MAX_CONTACTS];

    struct group_result *parked; /* last apply's result until claimed */

    struct rft_node *snap_root; /* frozen for the snapshot in progress */
    uint64_t snap_count;
    /* The snapshot threshold follows the snapshot's size (store.c snapshot_retune) unless the
     * configuration fixed it: applied entries and their bytes since the last freeze, and the
     * same for the snapshot in progress. */
    bool snap_adaptive;
    uint64_t log_entries, log_bytes;
    uint64_t snap_log_entries, snap_log_bytes;
    unsigned async_pending; /* io_async_work requests on the worker pool */
    bool close_deferred;    /* rft_store_close waits for raft_busy() to turn false */

    uv_check_t check;
    uv_timer_t poll;
    uv_idle_t reap; /* after raft_close: waits for libraft's last handle closes */
    struct raft_barrier barrier;
    /* libraft 0.15's io close callback can fire twice (see io_close_once): the real close of
     * the uv backend and the callback raft gave it. */
    void (*uv_close_fn)(struct raft_io *io, raft_io_close_cb cb);
    /* libraft's uv start and libraft's receive callback, which io_start wraps to read the
     * leader's commit index off the messages it receives (follower_synced). */
    int (*uv_start_fn)(struct raft_io *io,
                       unsigned msecs,
                       raft_io_tick_cb tick,
                       raft_io_recv_cb recv);
    raft_io_recv_cb raft_recv;
    uint64_t leader_commit; /* the highest commit index sent by a leader of leader_commit_term */
    uint64_t leader_commit_term;
    raft_io_close_cb raft_io_closed;
    bool io_close_fired;
    int handles_open;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* membership.c: fails every queued configuration change (closing). */
void rft__changes_cancel(struct rft_store *s);
/* membership.c: notes which servers the leader heard from (the poll timer calls it). */
void rft__contacts_update(struct rft_store *s);
/* store.c: libraft's error code as a cf_err. */
int rft__err_from_raft(int rv);

/* The snapshot threshold after a snapshot of snap_bytes, when the log_entries applied since the
 * previous one held log_bytes (store.c snapshot_retune): as many entries as hold snap_bytes at
 * that average, within [RFT_SNAPSHOT_THRESHOLD, RFT_SNAPSHOT_THRESHOLD_MAX]. */
unsigned rft__snapshot_threshold_for(uint64_t snap_bytes, uint64_t log_bytes, uint64_t log_entries);

#endif
