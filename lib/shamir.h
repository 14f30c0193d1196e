/*
 * Shamir secret sharing over GF(2^8), compatible with Vault's shamir package: the field is
 * GF(2)[x]/(x^8+x^4+x^3+x+1) (0x11b, the AES polynomial), every secret byte gets its own random
 * polynomial whose constant term is that byte, and a share is the polynomial values followed by
 * one final byte, the share's x-coordinate. Shares produced by Vault combine here and the
 * reverse.
 */
#ifndef CF_LIB_SHAMIR_H_
#define CF_LIB_SHAMIR_H_

#include <stddef.h>
#include <stdint.h>

struct cf_secret;

#define CF_SHAMIR_MAX_PARTS 255

/* Splits a len-byte secret (len >= 1) into `parts` shares (2..255) of which any `threshold`
 * (2..parts) recover it. Each share is len+1 bytes: the y-values followed by ONE final byte
 * holding the share's x-coordinate (distinct, non-zero, in random order like Vault). On success
 * *out is a cf_malloc'd array of `parts` pointers, each a cf_secret; free it with
 * cf_shamir_free_shares. CF_EINVAL on bad parameters, CF_ENOMEM, CF_ECRYPTO on RNG failure. */
int cf_shamir_split(const uint8_t *secret,
                    size_t len,
                    unsigned parts,
                    unsigned threshold,
                    struct cf_secret ***out);

/* Frees the array from cf_shamir_split and every share in it (cleansed); NULL-safe. */
void cf_shamir_free_shares(struct cf_secret **shares, unsigned parts);

/* Combines n shares, each share_len bytes (share_len >= 2, so the secret is share_len-1 bytes),
 * into a new cf_secret in *out. CF_EINVAL when fewer than 2 shares, share_len < 2, a share has
 * x-coordinate 0 (never produced by a split), or two shares have the same x-coordinate. With
 * wrong shares it returns a wrong secret: callers detect it by decrypting. */
int cf_shamir_combine(const uint8_t *const *shares,
                      size_t share_len,
                      size_t n,
                      struct cf_secret **out);

#endif
