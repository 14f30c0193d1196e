/* Big-endian integer encoding for on-disk formats (barrier headers, keyring, snapshots). */
#ifndef CF_LIB_BYTES_H_
#define CF_LIB_BYTES_H_

#include <stdint.h>

static inline void cf_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t cf_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void cf_put_be64(uint8_t *p, uint64_t v)
{
    cf_put_be32(p, (uint32_t)(v >> 32));
    cf_put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t cf_get_be64(const uint8_t *p)
{
    return (uint64_t)cf_get_be32(p) << 32 | cf_get_be32(p + 4);
}

#endif
