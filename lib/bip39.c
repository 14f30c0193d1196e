/*
 * BIP-0039 encoding of 256-bit entropy (bip39.h): 264 bits = entropy || first byte of
 * SHA-256(entropy), read as 24 big-endian 11-bit word indexes.
 */
#include "lib/bip39.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/mem.h"

int cf_bip39_encode(const uint8_t entropy[CF_BIP39_ENTROPY], char out[CF_BIP39_PHRASE_MAX])
{
    uint8_t bits[CF_BIP39_ENTROPY + 1];
    uint8_t digest[32];
    int rv = cf_sha256(entropy, CF_BIP39_ENTROPY, digest);
    if (rv != CF_OK) {
        return rv;
    }
    memcpy(bits, entropy, CF_BIP39_ENTROPY);
    bits[CF_BIP39_ENTROPY] = digest[0];
    size_t o = 0;
    for (size_t w = 0; w < CF_BIP39_PHRASE_WORDS; w++) {
        unsigned idx = 0;
        for (size_t b = 0; b < 11; b++) {
            size_t bit = w * 11 + b;
            idx = idx << 1 | ((bits[bit / 8] >> (7 - bit % 8)) & 1u);
        }
        const char *word = cf_bip39_words[idx];
        size_t n = strlen(word);
        if (w > 0) {
            out[o++] = ' ';
        }
        memcpy(out + o, word, n);
        o += n;
    }
    out[o] = '\0';
    cf_cleanse(bits, sizeof(bits));
    return CF_OK;
}

static int cmp_word(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

int cf_bip39_decode(const char *phrase,
                    uint8_t entropy[CF_BIP39_ENTROPY],
                    char errmsg[CF_ERRMSG_SIZE])
{
    uint8_t bits[CF_BIP39_ENTROPY + 1] = {0};
    size_t nwords = 0;
    const char *p = phrase;
    int rv = CF_OK;
    for (;;) {
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char word[16];
        size_t n = 0;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            if (n < sizeof(word) - 1) {
                word[n] = (char)tolower((unsigned char)*p);
            }
            n++;
            p++;
        }
        nwords++;
        if (nwords > CF_BIP39_PHRASE_WORDS) {
            continue; /* counted for the message below */
        }
        word[n < sizeof(word) ? n : sizeof(word) - 1] = '\0';
        const char *const *hit = n < sizeof(word) ? bsearch(word, cf_bip39_words, CF_BIP39_WORDS,
                                                            sizeof(cf_bip39_words[0]), cmp_word)
                                                  : NULL;
        if (hit == NULL) {
            if (rv == CF_OK) {
                cf_errmsg_printf(errmsg, "word %zu of the seal key phrase is not a BIP39 word",
                                 nwords);
            }
            rv = CF_EMALFORMED;
            continue;
        }
        unsigned idx = (unsigned)(hit - cf_bip39_words);
        for (size_t b = 0; b < 11; b++) {
            size_t bit = (nwords - 1) * 11 + b;
            if ((idx >> (10 - b)) & 1u) {
                bits[bit / 8] |= (uint8_t)(1u << (7 - bit % 8));
            }
        }
    }
    if (nwords != CF_BIP39_PHRASE_WORDS) {
        cf_errmsg_printf(errmsg, "a seal key phrase has %d words, this one has %zu",
                         CF_BIP39_PHRASE_WORDS, nwords);
        rv = CF_EMALFORMED;
    }
    if (rv == CF_OK) {
        uint8_t digest[32];
        rv = cf_sha256(bits, CF_BIP39_ENTROPY, digest);
        if (rv == CF_OK && digest[0] != bits[CF_BIP39_ENTROPY]) {
            cf_errmsg_printf(errmsg, "the seal key phrase's checksum word does not match");
            rv = CF_EMALFORMED;
        }
        if (rv == CF_OK) {
            memcpy(entropy, bits, CF_BIP39_ENTROPY);
        }
    }
    cf_cleanse(bits, sizeof(bits));
    return rv;
}
