/* The kv secrets engine, version 1 (core.md 5.3): one JSON object per path, full replace. */
#ifndef CF_ENGINES_KV_KV_H_
#define CF_ENGINES_KV_KV_H_

extern const struct node_engine_ops kv_engine_ops;

#endif
