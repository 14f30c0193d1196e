/* The system backend mounted at sys/ (the envelope endpoints; lifecycle ones live in node/). */
#ifndef CF_ENGINES_SYS_SYS_H_
#define CF_ENGINES_SYS_SYS_H_

extern const struct node_engine_ops sys_engine_ops;

#endif
