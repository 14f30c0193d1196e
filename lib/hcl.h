/*
 * HCL1 parser: the subset of HashiCorp Configuration Language that Vault uses for server
 * configuration files and ACL policies (docs/formats/hcl.md).
 *
 * The parser builds a plain tree of struct cf_hcl values. Nothing is merged or interpreted:
 * repeated keys and repeated blocks each keep their own entry in source order, and callers
 * (node/config.c, node/acl.c) decide what a duplicate means. Every node carries the line it
 * starts on so that callers can report "FILE:LINE: ..." for semantic errors too.
 */
#ifndef CF_LIB_HCL_H_
#define CF_LIB_HCL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

enum cf_hcl_kind {
    CF_HCL_NULL,
    CF_HCL_BOOL,
    CF_HCL_NUMBER,
    CF_HCL_STRING,
    CF_HCL_LIST,
    CF_HCL_OBJECT
};

struct cf_hcl;

struct cf_hcl_entry
{
    char *key;            /* owned, NUL-terminated */
    struct cf_hcl *value; /* owned */
};

struct cf_hcl
{
    enum cf_hcl_kind kind;
    int line;              /* 1-based source line where the value (or block) starts */
    bool b;                /* BOOL */
    double num;            /* NUMBER (also set for integer literals) */
    bool is_int;           /* NUMBER that is an integer literal (fits int64) */
    int64_t i;             /* the integer when is_int */
    char *str;             /* STRING (unescaped, NUL-terminated); owned */
    struct cf_hcl **items; /* LIST; owned, n_items elements */
    size_t n_items;
    struct cf_hcl_entry *entries; /* OBJECT: source order, duplicates kept; owned */
    size_t n_entries;
};

/* Parses HCL text. filename is used in messages only. On error returns CF_EMALFORMED and
 * errmsg = "FILE:LINE: what is wrong" (e.g. "server.hcl:3: expected '=' or '{' after
 * \"storage\""), or CF_ENOMEM ("FILE: out of memory"); *out is then NULL. On success *out is a
 * new OBJECT (the whole file, line 1) that the caller frees with cf_hcl_free. The text need not
 * be NUL-terminated; NUL bytes and invalid UTF-8 in it are errors. For a block such as
 * `storage "raft" { }` every object the block creates carries the line of its first key. */
int cf_hcl_parse(const char *text,
                 size_t len,
                 const char *filename,
                 struct cf_hcl **out,
                 char errmsg[CF_ERRMSG_SIZE]);

/* Frees a value and everything below it. NULL-safe. */
void cf_hcl_free(struct cf_hcl *v);

/* First entry of an OBJECT with this key, or NULL (also NULL when obj is not an object).
 * The result is borrowed from obj. */
const struct cf_hcl *cf_hcl_get(const struct cf_hcl *obj, const char *key);

/* Human name of a kind ("string", "number", "bool", "list", "object", "null") for messages. */
const char *cf_hcl_kind_name(enum cf_hcl_kind k);

#endif
