/*
 * libFuzzer target for lib/hcl.c and lib/duration.c. Each input is parsed as an HCL file
 * (from a NUL-terminated copy, with the length passed so embedded NULs reach the parser) and
 * the tree is walked and freed; short inputs are also parsed as durations and, when valid,
 * formatted. ASan/UBSan and the allocation counter catch crashes, overflows and leaks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/duration.h"
#include "lib/err.h"
#include "lib/hcl.h"
#include "lib/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every node so that a malformed tree (bad kind, dangling pointer) is noticed. */
static size_t walk(const struct cf_hcl *v)
{
    size_t n = 1;
    switch (v->kind) {
        case CF_HCL_STRING:
            n += strlen(v->str);
            break;
        case CF_HCL_LIST:
            for (size_t k = 0; k < v->n_items; k++) {
                n += walk(v->items[k]);
            }
            break;
        case CF_HCL_OBJECT:
            for (size_t k = 0; k < v->n_entries; k++) {
                n += strlen(v->entries[k].key) + walk(v->entries[k].value);
                if (cf_hcl_get(v, v->entries[k].key) == NULL) {
                    abort();
                }
            }
            break;
        case CF_HCL_NULL:
        case CF_HCL_BOOL:
        case CF_HCL_NUMBER:
            break;
    }
    if (v->line < 1 || cf_hcl_kind_name(v->kind) == NULL) {
        abort();
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = cf_mem_live();
    char *text = cf_malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    struct cf_hcl *v = NULL;
    char errmsg[CF_ERRMSG_SIZE];
    int rv = cf_hcl_parse(text, size, "fuzz.hcl", &v, errmsg);
    if (rv == CF_OK) {
        walk(v);
        cf_hcl_free(v);
    } else if (v != NULL || strncmp(errmsg, "fuzz.hcl:", 9) != 0) {
        abort();
    }

    if (size <= 64) {
        int64_t ms;
        if (cf_duration_parse_ms(text, &ms) == CF_OK) {
            char out[32];
            cf_duration_format_ms(ms, out, sizeof(out));
        }
    }
    cf_free(text);
    if (cf_mem_live() != live) {
        abort();
    }
    return 0;
}
