/*
 * The project's allocator (rule M1) and secret-byte holder (rule M2).
 *
 * All allocation goes through cf_malloc/cf_calloc/cf_realloc/cf_free so that tests can count
 * allocations and inject failures ("fail the Nth allocation", rule T3). Secrets live in
 * struct cf_secret: mlock'd (unless disabled process-wide) and cleansed before free.
 */
#ifndef CF_LIB_MEM_H_
#define CF_LIB_MEM_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *cf_malloc(size_t n);
void *cf_calloc(size_t count, size_t size);
void *cf_realloc(void *p, size_t n);
void cf_free(void *p);
/* Copies a NUL-terminated string; NULL on OOM or when s is NULL. */
char *cf_strdup(const char *s);
/* Copies n bytes and appends a NUL; NULL on OOM. */
char *cf_strndup(const char *s, size_t n);
/* Copies n bytes; NULL on OOM (or n == 0 and the allocator returned NULL). */
void *cf_memdup(const void *p, size_t n);

/* The struct that embeds member `member` at address ptr (rule A1). */
#define CF_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define CF_FREE(p)  \
    do {            \
        cf_free(p); \
        (p) = NULL; \
    } while (0)

/* Test hook: make the Nth allocation from now fail (1 = the next one); 0 disables. */
void cf_mem_fail_after(unsigned long n);
/* Test hook: count live allocations from now on (off by default: one counter shared by every
 * thread costs a contended atomic per allocation on the server's hot paths). The unit tests
 * turn it on before main (tests/unit/mem_track.c). */
void cf_mem_track(void);
/* Number of live allocations made through cf_malloc and friends while tracking is on (for leak
 * checks in tests). */
long cf_mem_live(void);

/* Aborts the process after logging; only for the raft FSM apply path (rule E6). */
_Noreturn void cf_oom_abort(void);

/* Secret bytes. */
struct cf_secret
{
    uint8_t *data; /* owned; locked and cleansed on free */
    size_t len;
    bool locked; /* mlock succeeded */
};

/* Turns mlock off for every later cf_secret (config disable_mlock). */
void cf_secret_set_mlock(bool enabled);
/* Allocates len zeroed secret bytes; NULL on OOM. */
struct cf_secret *cf_secret_new(size_t len);
/* Allocates and copies; NULL on OOM. */
struct cf_secret *cf_secret_from(const void *p, size_t len);
/* Cleanses, unlocks and frees; NULL-safe. */
void cf_secret_free(struct cf_secret *s);
/* Cleanses arbitrary memory (OPENSSL_cleanse). */
void cf_cleanse(void *p, size_t n);

#endif
