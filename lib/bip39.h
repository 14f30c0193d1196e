/*
 * BIP-0039 mnemonics for 256-bit keys: 32 bytes of entropy <-> 24 English words (the last word
 * carries the 8-bit SHA-256 checksum). Used by the static seal (issue 6) to show a seal key to
 * people and to take it back from them.
 */
#ifndef CF_LIB_BIP39_H_
#define CF_LIB_BIP39_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define CF_BIP39_WORDS 2048
#define CF_BIP39_ENTROPY 32
#define CF_BIP39_PHRASE_WORDS 24
#define CF_BIP39_PHRASE_MAX (CF_BIP39_PHRASE_WORDS * 9) /* 8 letters + separator each */

/* The English word list, sorted. */
extern const char *const cf_bip39_words[CF_BIP39_WORDS];

/* The 24-word phrase of entropy (words separated by one space, NUL-terminated). */
int cf_bip39_encode(const uint8_t entropy[CF_BIP39_ENTROPY], char out[CF_BIP39_PHRASE_MAX]);

/* Decodes a phrase (words separated by any whitespace, ASCII case ignored). CF_EMALFORMED with
 * errmsg for a wrong word count, an unknown word (named with its position) or a checksum
 * mismatch; entropy is written only on success. */
int cf_bip39_decode(const char *phrase,
                    uint8_t entropy[CF_BIP39_ENTROPY],
                    char errmsg[CF_ERRMSG_SIZE]);

#endif
