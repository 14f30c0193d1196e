/*
 * Shamir secret sharing over GF(2^8) (polynomial 0x11b), in Vault's share layout: a share of an
 * n-byte secret is n+1 bytes, the y-values followed by the x-coordinate.
 */
#ifndef CF_LIB_SHAMIR_H_
#define CF_LIB_SHAMIR_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/mem.h"

/* Splits secret into `parts` shares (2..255), any `threshold` (2..parts) of which recover it.
 * *out is a cf_malloc'd array of parts secrets; free with cf_shamir_free_shares. CF_EINVAL on
 * bad parameters (len 0 included). */
int cf_shamir_split(const uint8_t *secret,
                    size_t len,
                    unsigned parts,
                    unsigned threshold,
                    struct cf_secret ***out);
void cf_shamir_free_shares(struct cf_secret **shares, unsigned parts);
/* Combines n shares of share_len bytes each. CF_EINVAL for fewer than 2 shares, share_len < 2,
 * a zero or repeated x-coordinate. Wrong shares give a wrong secret: callers detect that by
 * decrypting with it. */
int cf_shamir_combine(const uint8_t *const *shares,
                      size_t share_len,
                      size_t n,
                      struct cf_secret **out);

#endif
