/*
 * libFuzzer target for lib/bip39.c: every input is decoded as a seal key phrase; a phrase that
 * decodes must encode back to the same entropy.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bip39.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    uint8_t e[CF_BIP39_ENTROPY];
    char errmsg[CF_ERRMSG_SIZE];
    if (cf_bip39_decode(text, e, errmsg) == CF_OK) {
        char phrase[CF_BIP39_PHRASE_MAX];
        uint8_t back[CF_BIP39_ENTROPY];
        if (cf_bip39_encode(e, phrase) != CF_OK || cf_bip39_decode(phrase, back, errmsg) != CF_OK ||
            memcmp(e, back, sizeof(e)) != 0) {
            abort();
        }
    }
    free(text);
    return 0;
}
