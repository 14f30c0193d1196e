/* The cubbyhole secrets engine (core.md 5.2): per-token private storage, kv v1 semantics. */
#ifndef CF_ENGINES_CUBBYHOLE_CUBBYHOLE_H_
#define CF_ENGINES_CUBBYHOLE_CUBBYHOLE_H_

struct node_engine_ops;
struct node_write;

extern const struct node_engine_ops cubbyhole_engine_ops;

/* Adds to w (a batch on the cubbyhole mount's view) the deletion of every key of one token's
 * cubbyhole; the token store calls it when the token is revoked or expires. CF_EINVAL for an
 * empty id or one holding '/', else what node_write_delete_prefix returns. */
int cubbyhole_destroy(struct node_write *w, const char *cubbyhole_id);

#endif
